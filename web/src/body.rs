//! Time limits on request bodies, so that a client that trickles its
//! body (slowloris with the headers sent whole) cannot hold a connection,
//! one of `max-connections`, or an upload's file open for ever:
//!
//! * a bounded body (BOSH, the console's forms) must arrive whole within
//!   `<web body-timeout>`; [`collect`] reads it under that deadline and
//!   `max-body-bytes`;
//! * an upload may be large and slow, so its [`Deadline`] is
//!   `body-timeout` plus one second for every `min-body-rate` bytes that
//!   arrived (Apache's `mod_reqtimeout` model), and no more than
//!   `body-timeout` may pass without a byte.
//!
//! hyper has a limit on the request head only (`header-timeout`, in
//! `listener.rs`).

use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use tokio::time::Instant;

use crate::reply::{self, Body};

/// Why a bounded body was not read.
#[derive(Debug)]
pub(crate) enum BodyError {
    /// More than the limit.
    TooLarge,
    /// Not all of it within the body timeout.
    TimedOut,
    /// The connection failed or closed before the end.
    Cut,
}

/// Reads a whole body of at most `max` bytes within `timeout`.
pub(crate) async fn collect(
    body: Incoming,
    max: usize,
    timeout: Duration,
) -> Result<Bytes, BodyError> {
    match tokio::time::timeout(timeout, Limited::new(body, max).collect()).await {
        Err(_) => Err(BodyError::TimedOut),
        Ok(Ok(b)) => Ok(b.to_bytes()),
        Ok(Err(e))
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            Err(BodyError::TooLarge)
        }
        Ok(Err(_)) => Err(BodyError::Cut),
    }
}

/// The answer to a body that did not arrive in time: 408, and the
/// connection closes (the rest of the body is not waited for).
pub(crate) fn timed_out(why: String) -> Response<Body> {
    let mut r = reply::error(StatusCode::REQUEST_TIMEOUT, why);
    r.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    r
}

/// The time an upload's body has left, as bytes arrive.
pub(crate) struct Deadline {
    start: Instant,
    timeout: Duration,
    min_rate: u64,
    received: u64,
}

impl Deadline {
    /// Starts the clock now.
    pub fn new(timeout: Duration, min_rate: u64) -> Deadline {
        Deadline {
            start: Instant::now(),
            timeout,
            min_rate: min_rate.max(1),
            received: 0,
        }
    }

    /// Counts `n` more bytes received.
    pub fn received(&mut self, n: usize) {
        self.received = self.received.saturating_add(n as u64);
    }

    /// When the next piece of the body must have arrived: the earlier of
    /// the idle limit from now and the limit the average rate allows.
    pub fn next(&self) -> Instant {
        let earned = Duration::from_secs_f64(self.received as f64 / self.min_rate as f64);
        let overall = self.start + self.timeout + earned;
        overall.min(Instant::now() + self.timeout)
    }

    /// How long the body has been arriving.
    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_deadline_grows_with_the_bytes_and_never_past_the_idle_limit() {
        let mut d = Deadline::new(Duration::from_secs(30), 1024);
        let start = Instant::now();
        assert_eq!(d.next(), start + Duration::from_secs(30));
        // A trickle: 29 s pass with 29 bytes; the overall limit has grown
        // by 29/1024 s only, so the next byte is due within about 1 s.
        tokio::time::advance(Duration::from_secs(29)).await;
        d.received(29);
        let left = d.next() - Instant::now();
        assert!(left < Duration::from_millis(1100), "{left:?}");
        // A fast body earns time: 10 MiB in 29 s allows 10240 s more, but
        // no more than the idle limit from now.
        d.received(10 << 20);
        assert_eq!(d.next(), Instant::now() + Duration::from_secs(30));
    }
}
