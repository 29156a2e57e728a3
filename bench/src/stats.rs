//! Latency statistics: exact percentiles over the recorded samples.

use std::time::Duration;

/// Recorded durations. A run records at most a few million samples, so
/// keeping them all and sorting once is simpler and exact.
#[derive(Debug, Default, Clone)]
pub struct Samples {
    v: Vec<Duration>,
}

impl Samples {
    pub fn push(&mut self, d: Duration) {
        self.v.push(d);
    }

    pub fn extend(&mut self, other: Samples) {
        self.v.extend(other.v);
    }

    pub fn len(&self) -> usize {
        self.v.len()
    }

    pub fn is_empty(&self) -> bool {
        self.v.is_empty()
    }

    /// The `p`-th percentile (0–100, nearest rank), `None` when empty.
    pub fn percentile(&mut self, p: f64) -> Option<Duration> {
        if self.v.is_empty() {
            return None;
        }
        self.v.sort_unstable();
        let rank = ((p / 100.0) * self.v.len() as f64).ceil() as usize;
        Some(self.v[rank.clamp(1, self.v.len()) - 1])
    }
}

/// Milliseconds with two decimals, or `-` for no value.
pub fn ms(d: Option<Duration>) -> String {
    match d {
        Some(d) => format!("{:.2}", d.as_secs_f64() * 1000.0),
        None => "-".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let mut s = Samples::default();
        for i in (1..=100).rev() {
            s.push(Duration::from_millis(i));
        }
        assert_eq!(s.percentile(50.0), Some(Duration::from_millis(50)));
        assert_eq!(s.percentile(99.0), Some(Duration::from_millis(99)));
        assert_eq!(s.percentile(100.0), Some(Duration::from_millis(100)));
        assert_eq!(s.percentile(0.0), Some(Duration::from_millis(1)));
        assert_eq!(Samples::default().percentile(50.0), None);
        assert_eq!(ms(Some(Duration::from_micros(1500))), "1.50");
    }
}
