//! In-process services under the supervisor, through the real router: a
//! service that panics is restarted, stanzas sent while it is down bounce
//! with `remote-server-timeout`, and a service cannot send as anyone else.
//!
//! The two services here are test doubles written for this test (a
//! service that panics on request, and one that hands the test its
//! inbox); the real services (the directory, transports) are tested end
//! to end against the binary.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use switchboard_core::services::{Provider, ServicePlan};
use switchboard_core::Server;
use switchboard_service::{BoxFuture, Identity, Outbox, Service, ServiceContext};
use switchboard_xml::{ns, Element};
use tokio::sync::mpsc;

/// Echoes every message back with the number of its run; panics on a
/// message whose body is "crash".
struct Crashy {
    runs: Arc<AtomicUsize>,
}

impl Service for Crashy {
    fn identity(&self) -> Identity {
        Identity {
            category: "component".into(),
            kind: "generic".into(),
            name: "Crashy".into(),
        }
    }

    fn run(&self, ctx: ServiceContext, mut inbox: mpsc::Receiver<Element>) -> BoxFuture {
        let run = self.runs.fetch_add(1, Ordering::SeqCst) + 1;
        Box::pin(async move {
            while let Some(m) = inbox.recv().await {
                let body = m.child_text("body", ns::CLIENT).unwrap_or_default();
                if body == "crash" {
                    panic!("asked to crash");
                }
                if m.attr("type") == Some("error") {
                    continue;
                }
                let reply = Element::new("message", ns::CLIENT)
                    .with_attr("from", ctx.jid.clone())
                    .with_attr("to", m.attr("from").unwrap_or_default().to_string())
                    .with_child(Element::new("body", ns::CLIENT).with_text(format!("run {run}")));
                let _ = ctx.out.send(reply).await;
            }
        })
    }
}

/// What the probe hands the test: its outbox and its inbox.
type Handoff = mpsc::Sender<(Outbox, mpsc::Receiver<Element>)>;

/// Gives the test its outbox and forwards its inbox to the test.
struct Probe {
    handoff: Arc<Mutex<Option<Handoff>>>,
}

impl Service for Probe {
    fn identity(&self) -> Identity {
        Identity {
            category: "component".into(),
            kind: "generic".into(),
            name: "Probe".into(),
        }
    }

    fn run(&self, ctx: ServiceContext, inbox: mpsc::Receiver<Element>) -> BoxFuture {
        let tx = self.handoff.lock().unwrap().take();
        Box::pin(async move {
            if let Some(tx) = tx {
                let _ = tx.send((ctx.out.clone(), inbox)).await;
            }
            // Stay up: the test owns the inbox now.
            std::future::pending::<()>().await;
        })
    }
}

fn message(from: &str, to: &str, body: &str) -> Element {
    Element::new("message", ns::CLIENT)
        .with_attr("from", from)
        .with_attr("to", to)
        .with_attr("id", body)
        .with_child(Element::new("body", ns::CLIENT).with_text(body))
}

async fn next(inbox: &mut mpsc::Receiver<Element>) -> Element {
    tokio::time::timeout(Duration::from_secs(5), inbox.recv())
        .await
        .expect("a stanza within 5 s")
        .expect("the probe's inbox is open")
}

fn plan(id: &str, kind: &str, service: Arc<dyn Service>) -> ServicePlan {
    ServicePlan {
        config: switchboard_config::ServiceConfig {
            id: id.into(),
            kind: kind.into(),
            secret: None,
            element: Element::new("service", "").with_attr("id", id),
        },
        provider: Provider::InProcess(service),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_service_bounces_while_down_and_comes_back() {
    let home = tempfile::tempdir().unwrap();
    let text = r#"<switchboard>
        <host name="localhost"/>
        <listen><c2s addr="127.0.0.1:0"/></listen>
    </switchboard>"#;
    let config = switchboard_config::parse(text, "test.xml", home.path()).unwrap();
    let stores =
        switchboard_spool::store::file::FileStores::open(home.path().join("spool")).unwrap();
    let runs = Arc::new(AtomicUsize::new(0));
    let (handoff_tx, mut handoff_rx) = mpsc::channel(1);
    let plans = vec![
        plan(
            "crashy.localhost",
            "crashy",
            Arc::new(Crashy { runs: runs.clone() }),
        ),
        plan(
            "probe.localhost",
            "probe",
            Arc::new(Probe {
                handoff: Arc::new(Mutex::new(Some(handoff_tx))),
            }),
        ),
    ];
    let server = Server::start(config, home.path(), stores, false, plans)
        .await
        .unwrap();
    let (out, mut inbox) = handoff_rx.recv().await.unwrap();

    out.send(message("probe.localhost", "crashy.localhost", "one"))
        .await
        .unwrap();
    let echo = next(&mut inbox).await;
    assert_eq!(
        echo.child_text("body", ns::CLIENT).as_deref(),
        Some("run 1")
    );

    out.send(message("probe.localhost", "crashy.localhost", "crash"))
        .await
        .unwrap();
    // Until the crash is noticed, a stanza may still reach the dying run's
    // inbox (and go with it); once it is, stanzas bounce. Keep asking.
    let mut bounce = None;
    for n in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let id = format!("while-down-{n}");
        out.send(message("probe.localhost", "crashy.localhost", &id))
            .await
            .unwrap();
        if let Ok(Some(reply)) =
            tokio::time::timeout(Duration::from_millis(100), inbox.recv()).await
        {
            bounce = Some(reply);
            break;
        }
    }
    let bounce = bounce.expect("a bounce while the service is down");
    assert_eq!(
        bounce.attr("type"),
        Some("error"),
        "{}",
        bounce.to_xml_string()
    );
    assert!(
        bounce.to_xml_string().contains("remote-server-timeout"),
        "{}",
        bounce.to_xml_string()
    );

    // The first restart comes after about a second.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    out.send(message("probe.localhost", "crashy.localhost", "again"))
        .await
        .unwrap();
    let echo = next(&mut inbox).await;
    assert_eq!(
        echo.child_text("body", ns::CLIENT).as_deref(),
        Some("run 2")
    );
    assert_eq!(runs.load(Ordering::SeqCst), 2);

    // A service speaking for another domain is not routed.
    out.send(message("crashy.localhost", "probe.localhost", "forged"))
        .await
        .unwrap();
    assert!(
        tokio::time::timeout(Duration::from_millis(300), inbox.recv())
            .await
            .is_err(),
        "a stanza with a foreign 'from' was delivered"
    );
    server.shutdown().await;
}
