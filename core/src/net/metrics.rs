//! What a metrics scrape reads. The HTTP endpoint that serves it
//! (`GET /metrics`) is the web layer's (`switchboard-web`); the counters
//! and the text rendering are `crate::metrics`.

use std::sync::Arc;

use crate::lifecycle::Tracker;
use crate::routing::Router;

/// The handles a scrape reads: the counters and the gauges read at
/// scrape time.
#[derive(Clone)]
pub struct Scrape {
    pub router: Router,
    pub connections: Tracker,
    /// Its register of links is read for the link gauges.
    pub federation: Arc<crate::s2s::Federation>,
}

impl Scrape {
    /// The counters plus the gauges read now.
    pub fn snapshot(&self) -> crate::metrics::Snapshot {
        let mut s = self.router.metrics().snapshot(
            self.router.sessions().count(),
            self.connections.live(),
            self.router.services().gauges(),
        );
        s.s2s_links = self.federation.registry().established();
        s
    }

    /// The Prometheus text exposition of [`Scrape::snapshot`].
    pub fn render(&self) -> String {
        crate::metrics::render(&self.snapshot())
    }
}
