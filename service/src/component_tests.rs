//! The connector against a scripted server on a real loopback socket: one
//! that routes the component's stanzas back like a real server would (the
//! link stays up on keepalives), and one that goes silent after the
//! handshake (the link is replaced).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::*;
use crate::credentials::SecretKey;
use crate::{BoxFuture, Identity, ServiceStore};

/// A service that does nothing but count its runs and stay up.
struct Idle {
    runs: Arc<AtomicUsize>,
}

impl Service for Idle {
    fn identity(&self) -> Identity {
        Identity {
            category: "component".into(),
            kind: "generic".into(),
            name: "Idle".into(),
        }
    }
    fn run(&self, _ctx: ServiceContext, mut inbox: mpsc::Receiver<Element>) -> BoxFuture {
        self.runs.fetch_add(1, Ordering::SeqCst);
        Box::pin(async move { while inbox.recv().await.is_some() {} })
    }
}

/// Accepts connections forever; after the handshake, echoes every byte
/// back (`echo`) or says nothing more. Returns the address and the number
/// of keepalive pings seen.
async fn scripted_server(echo: bool) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let pings = Arc::new(AtomicUsize::new(0));
    let seen = pings.clone();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let mut got = String::new();
                while !got.contains("<stream:stream") || !got.contains('>') {
                    let n = tcp.read(&mut buf).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    got.push_str(&String::from_utf8_lossy(&buf[..n]));
                }
                tcp.write_all(
                    b"<stream:stream xmlns='jabber:component:accept' \
                      xmlns:stream='http://etherx.jabber.org/streams' id='abc' from='c.localhost'>",
                )
                .await
                .unwrap();
                let mut got = String::new();
                while !got.contains("</handshake>") {
                    let n = tcp.read(&mut buf).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    got.push_str(&String::from_utf8_lossy(&buf[..n]));
                }
                tcp.write_all(b"<handshake/>").await.unwrap();
                loop {
                    let n = tcp.read(&mut buf).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    let text = String::from_utf8_lossy(&buf[..n]);
                    seen.fetch_add(text.matches(KEEPALIVE_ID).count(), Ordering::SeqCst);
                    if echo {
                        // A stanza from the component to itself comes back.
                        tcp.write_all(&buf[..n]).await.unwrap();
                    }
                }
            });
        }
    });
    (addr, pings)
}

fn context() -> ServiceContext {
    ServiceContext {
        jid: "c.localhost".into(),
        out: Outbox::channel().0,
        store: ServiceStore::new(
            switchboard_spool::store::memory::MemoryStores::new().service_data,
            "c.localhost",
        ),
        key: Arc::new(SecretKey::generate()),
        config: Element::new("service", ""),
        admins: Vec::new(),
        metrics: Default::default(),
    }
}

#[tokio::test]
async fn an_answered_keepalive_keeps_the_link() {
    let (addr, pings) = scripted_server(true).await;
    let runs = Arc::new(AtomicUsize::new(0));
    let mut opts = ConnectOptions::new(addr, "s");
    opts.keepalive = Duration::from_millis(100);
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(run(
        Arc::new(Idle { runs: runs.clone() }),
        context(),
        opts,
        stopped,
    ));
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert!(
        pings.load(Ordering::SeqCst) >= 3,
        "{} pings, {} runs",
        pings.load(Ordering::SeqCst),
        runs.load(Ordering::SeqCst)
    );
    assert_eq!(runs.load(Ordering::SeqCst), 1, "the link was replaced");
    stop.send(true).unwrap();
    task.await.unwrap();
}

#[tokio::test]
async fn a_silent_server_is_taken_for_dead_and_replaced() {
    let (addr, pings) = scripted_server(false).await;
    let runs = Arc::new(AtomicUsize::new(0));
    let mut opts = ConnectOptions::new(addr, "s");
    opts.keepalive = Duration::from_millis(100);
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(run(
        Arc::new(Idle { runs: runs.clone() }),
        context(),
        opts,
        stopped,
    ));
    // Dead after 250 ms of silence, then a reconnect after about 1 s.
    tokio::time::sleep(Duration::from_millis(2000)).await;
    assert!(pings.load(Ordering::SeqCst) >= 1);
    assert!(
        runs.load(Ordering::SeqCst) >= 2,
        "the dead link was not replaced"
    );
    stop.send(true).unwrap();
    task.await.unwrap();
}
