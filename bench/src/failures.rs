//! Counting failed connections by kind, for the end-of-run report.

use std::collections::BTreeMap;
use std::sync::Mutex;

use crate::client::Failure;

/// Distinct kinds kept; further kinds are counted under "other".
const MAX_KINDS: usize = 20;

/// Failure counts by "step: detail", safe to share between tasks.
#[derive(Debug, Default)]
pub struct Failures {
    kinds: Mutex<BTreeMap<String, u64>>,
}

impl Failures {
    pub fn record(&self, f: &Failure) {
        let mut kinds = self.kinds.lock().unwrap_or_else(|e| e.into_inner());
        let key = f.to_string();
        if kinds.len() >= MAX_KINDS && !kinds.contains_key(&key) {
            *kinds.entry("other".into()).or_default() += 1;
        } else {
            *kinds.entry(key).or_default() += 1;
        }
    }

    pub fn total(&self) -> u64 {
        self.kinds
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .sum()
    }

    /// One line per kind, most frequent first, for stderr.
    pub fn lines(&self) -> Vec<String> {
        let kinds = self.kinds.lock().unwrap_or_else(|e| e.into_inner());
        let mut v: Vec<_> = kinds.iter().collect();
        v.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        v.into_iter().map(|(k, n)| format!("{n} × {k}")).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_caps_kinds() {
        let f = Failures::default();
        for i in 0..30 {
            f.record(&Failure {
                step: "tls",
                detail: format!("e{i}"),
            });
        }
        f.record(&Failure {
            step: "tls",
            detail: "e0".into(),
        });
        assert_eq!(f.total(), 31);
        let lines = f.lines();
        assert_eq!(lines.len(), MAX_KINDS + 1);
        assert_eq!(lines[0], "10 × other");
        assert_eq!(lines[1], "2 × tls: e0");
    }
}
