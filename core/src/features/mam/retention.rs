//! Archive retention: each host's `<archive retention>` is how long its
//! users' messages are kept. A background task runs at start-up and then
//! every [`EVERY`], removing what is older from the archives of each host
//! that has a limit (`ArchiveStore::expire`, one domain at a time, so a
//! group chat service's rooms keep their own retention). A reload's new
//! retention applies at the next run.

use std::sync::Arc;
use std::time::Duration;

use switchboard_service::time;
use switchboard_spool::store::ArchiveStore;

use crate::settings::{LiveSettings, Settings};

/// How often old messages are removed.
pub const EVERY: Duration = Duration::from_secs(3600);

/// Removes what each host's retention no longer keeps; how many went.
pub async fn expire_now(store: &dyn ArchiveStore, settings: &Settings, now_micros: u64) -> u64 {
    let mut gone = 0;
    for host in &settings.hosts {
        let Some(keep) = host.archive.retention else {
            continue;
        };
        let before = now_micros.saturating_sub(keep.as_micros().min(u64::MAX as u128) as u64);
        match store.expire(&host.name, before).await {
            Ok(0) => {}
            Ok(n) => {
                tracing::info!(host = %host.name, removed = n, "expired old archived messages");
                gone += n;
            }
            Err(e) => tracing::error!(host = %host.name, "cannot expire archived messages: {e}"),
        }
    }
    gone
}

/// The background task.
pub async fn run(store: Arc<dyn ArchiveStore>, settings: Arc<LiveSettings>) {
    let mut every = tokio::time::interval(EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        expire_now(store.as_ref(), &settings.get(), time::now_micros()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_spool::store::memory::MemoryStores;
    use switchboard_spool::store::{ArchiveEntry, ArchiveQuery};
    use switchboard_xml::{ns, Element};

    #[tokio::test]
    async fn each_host_keeps_its_own_retention() {
        let stores = MemoryStores::new();
        let store = stores.archive.as_ref();
        let day = 86_400_000_000u64;
        let now = 100 * day;
        for (owner, age_days) in [
            ("alice@a.example", 40),
            ("alice@a.example", 10),
            ("bob@b.example", 40),
            ("room@conference.a.example", 40),
        ] {
            let e = ArchiveEntry {
                id: format!("{owner}-{age_days}"),
                timestamp: now - age_days * day,
                with: "x@y".into(),
                stanza: Element::new("message", ns::CLIENT),
            };
            store.append(owner, &e).await.unwrap();
        }
        let mut settings = Settings::for_hosts(&["a.example", "b.example"]);
        settings.hosts[0].archive.retention = Some(Duration::from_secs(30 * 86_400));
        assert_eq!(expire_now(store, &settings, now).await, 1);
        let count = |owner: &'static str| async move {
            let q = ArchiveQuery {
                max: 10,
                ..Default::default()
            };
            store
                .query(owner, &q)
                .await
                .unwrap()
                .unwrap()
                .count
                .unwrap()
        };
        assert_eq!(
            count("alice@a.example").await,
            1,
            "the 40-day-old message went"
        );
        assert_eq!(
            count("bob@b.example").await,
            1,
            "b.example keeps everything"
        );
        assert_eq!(
            count("room@conference.a.example").await,
            1,
            "rooms keep their own"
        );
    }
}
