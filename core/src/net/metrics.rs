//! What a metrics scrape reads. The HTTP endpoint that serves it
//! (`GET /metrics`) is the web layer's (`switchboard-web`); the counters
//! and the text rendering are `crate::metrics`.

use crate::lifecycle::Tracker;
use crate::routing::Router;

/// The handles a scrape reads: the counters and the gauges read at
/// scrape time.
#[derive(Clone)]
pub struct Scrape {
    pub router: Router,
    pub connections: Tracker,
}

impl Scrape {
    /// The counters plus the gauges read now.
    pub fn snapshot(&self) -> crate::metrics::Snapshot {
        self.router.metrics().snapshot(
            self.router.sessions().count(),
            self.connections.live(),
            self.router.services().gauges(),
        )
    }

    /// The Prometheus text exposition of [`Scrape::snapshot`].
    pub fn render(&self) -> String {
        crate::metrics::render(&self.snapshot())
    }
}
