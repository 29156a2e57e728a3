//! Runs an in-process service and restarts it when it stops or panics.
//!
//! Each run gets a fresh inbox and outbox. While a run is live its inbox is
//! in the router's slot; when it ends the slot is emptied (stanzas to the
//! service then bounce with `remote-server-timeout`), the admins are told,
//! and the service is started again after a backoff that doubles from one
//! second up to a minute, and starts over once a run has lasted a minute.

use std::sync::Arc;
use std::time::Duration;

use switchboard_link::backoff::{Backoff, Jitter, Policy};
use switchboard_service::{Outbox, Service, ServiceContext, QUEUE_CAPACITY};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::lifecycle::ShutdownSignal;
use crate::routing::Router;
use crate::settings::LiveSettings;

/// Restart delays: doubling from one second to a minute, each within a
/// tenth of its nominal value either way, so that services that failed
/// together (a shared dependency went away) do not all retry at once. The
/// same link kit policy type as every other reconnecting link.
const RESTART: Policy = Policy {
    first: Duration::from_secs(1),
    max: Duration::from_secs(60),
    attempts: None,
    jitter: Jitter::Range(0.9, 1.1),
};
/// A run this long counts as healthy: the next failure starts the backoff
/// over.
const HEALTHY_RUN: Duration = Duration::from_secs(60);

/// Supervises one service until the server shuts down. It fills and
/// empties the service's router slot, and tells the admins (as the
/// settings name them) when the service fails.
pub async fn supervise(
    router: Router,
    settings: Arc<LiveSettings>,
    mut shutdown: ShutdownSignal,
    service: Arc<dyn Service>,
    base: ServiceContext,
) {
    let host = base.jid.clone();
    let mut backoff = Backoff::new(RESTART);
    loop {
        let (in_tx, in_rx) = mpsc::channel(QUEUE_CAPACITY);
        let (outbox, out_rx) = Outbox::channel();
        let ctx = ServiceContext {
            out: outbox,
            ..base.clone()
        };
        tokio::spawn(pump(router.clone(), host.clone(), out_rx));
        router.services().set_inbox(&host, Some(in_tx.clone()));
        let started = Instant::now();
        let mut run = tokio::spawn(service.run(ctx, in_rx));
        let outcome = tokio::select! {
            r = &mut run => r,
            _ = shutdown.wait() => {
                router.services().set_inbox(&host, None);
                // Closing the inbox asks the service to finish; it gets a
                // moment to do so (sign users off a network, say).
                drop(in_tx);
                if tokio::time::timeout(Duration::from_secs(2), &mut run).await.is_err() {
                    run.abort();
                }
                return;
            }
        };
        router.services().release(&host, &in_tx);
        let why = match outcome {
            Ok(()) => "stopped".to_string(),
            Err(e) if e.is_panic() => format!("crashed: {}", panic_message(e.into_panic())),
            Err(e) => format!("was cancelled: {e}"),
        };
        if started.elapsed() >= HEALTHY_RUN {
            backoff.reset();
        }
        let delay = backoff.failed().unwrap_or(RESTART.max);
        tracing::error!(service = %host, "service {why}; restarting in {}s", delay.as_secs_f32().round());
        crate::notices::admins::notify(
            &router,
            &settings.get(),
            &host,
            &format!(
                "Service {host} {}",
                why.split(':').next().unwrap_or("stopped")
            ),
            &format!(
                "The service {host} {why}. It will be restarted in {} s; until then \
                 stanzas to it are answered with remote-server-timeout.",
                delay.as_secs_f32().round()
            ),
        );
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = shutdown.wait() => return,
        }
    }
}

/// Routes what the service sends until every copy of its outbox is gone.
async fn pump(router: Router, host: String, mut out: mpsc::Receiver<switchboard_xml::Element>) {
    while let Some(stanza) = out.recv().await {
        if let Err(problem) = router.route_from_service(&host, stanza) {
            // A bug in the service, not something a user did: log it loudly
            // and drop the stanza rather than let it speak for others.
            tracing::error!(service = %host, "dropped a stanza from the service: {problem}");
        }
    }
}

fn panic_message(p: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic without a message".to_string()
    }
}
