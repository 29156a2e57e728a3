//! Operating group chat on the real binary: the metrics endpoint counts
//! rooms, occupants and groupchat messages (the service's own numbers,
//! through the service metrics seam), and `switchboard rooms
//! list|show|announce|destroy` reaches the rooms over the admin socket
//! (the server runs the service's own admin commands).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use switchboard_integration_tests::muc::{codes, Occupant};
use switchboard_integration_tests::{ServerBuilder, TestServer, WAIT};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const MUC: &str = "conference.localhost";
const ROOM: &str = "kitchen@conference.localhost";

fn server() -> TestServer {
    ServerBuilder::new()
        .config(r#"<metrics addr="127.0.0.1:0"/>"#)
        .also(&format!(r#"<service id="{MUC}" type="muc"/>"#))
        .user("alice@localhost", "alice-pw")
        .user("bob@localhost", "bob-pw")
        .start()
}

/// Every sample of a scrape, `name{labels}` → value.
async fn scrape(server: &TestServer) -> HashMap<String, f64> {
    let mut tcp = TcpStream::connect(server.listener("metrics"))
        .await
        .expect("connect to metrics");
    tcp.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(WAIT, tcp.read_to_end(&mut out))
        .await
        .expect("the metrics endpoint answers")
        .unwrap();
    let text = String::from_utf8(out).unwrap();
    let (_, body) = text.split_once("\r\n\r\n").expect("a head and a body");
    body.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (k, v) = l.rsplit_once(' ').expect("`name value`");
            (k.to_string(), v.parse().expect("a number"))
        })
        .collect()
}

fn sample(name: &str) -> String {
    format!("switchboard_service_{name}{{service=\"{MUC}\"}}")
}

/// Scrapes until the service's numbers are `want` (rooms, occupants,
/// messages, copies): the service publishes them after each stanza it
/// handles, which is after the clients saw its answers.
async fn until(server: &TestServer, want: [f64; 4]) {
    let names = [
        "muc_rooms",
        "muc_occupants",
        "muc_messages_total",
        "muc_message_copies_total",
    ];
    let deadline = Instant::now() + WAIT;
    loop {
        let m = scrape(server).await;
        let got: Vec<f64> = names
            .iter()
            .map(|n| m.get(&sample(n)).copied().unwrap_or(-1.0))
            .collect();
        if got == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "service metrics never became {want:?} (rooms, occupants, messages, copies); last {got:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_and_the_rooms_commands() {
    let server = server();
    until(&server, [0.0, 0.0, 0.0, 0.0]).await;
    let mut alice = Occupant::login(&server, "alice", MUC).await;
    let mut bob = Occupant::login(&server, "bob", MUC).await;
    alice.create(ROOM, "Alice").await;
    bob.join(ROOM, "Bob").await;
    alice.drain().await;
    until(&server, [1.0, 2.0, 0.0, 0.0]).await;
    alice.say(ROOM, "soup is ready").await;
    bob.heard().await;
    until(&server, [1.0, 2.0, 1.0, 2.0]).await;

    let out = server.cli(&["rooms", "list", MUC], None);
    assert!(out.status.success(), "{out}");
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "a header and the kitchen: {out}");
    assert!(lines[0].starts_with("Room\t"), "{out}");
    assert!(lines[1].starts_with(&format!("{ROOM}\t")), "{out}");
    assert!(lines[1].contains("\t2\t"), "two occupants: {out}");

    let out = server.cli(&["rooms", "show", ROOM], None);
    assert!(out.status.success(), "{out}");
    assert!(
        out.stdout
            .contains("Occupants: Alice (alice@localhost), Bob (bob@localhost)"),
        "{out}"
    );
    let out = server.cli(&["rooms", "show", "cellar@conference.localhost"], None);
    assert!(!out.status.success(), "{out}");
    assert!(out.stderr.contains("item-not-found"), "{out}");

    let out = server.cli(&["rooms", "announce", MUC], Some("Closing at ten.\n"));
    assert!(out.status.success(), "{out}");
    for c in [&mut alice, &mut bob] {
        let m = c
            .wait_for("the announcement", |e| {
                e.name == "message" && e.attr("from") == Some(ROOM)
            })
            .await;
        assert_eq!(
            m.child_text("body", "jabber:client").as_deref(),
            Some("Closing at ten.")
        );
    }

    let out = server.cli(
        &["rooms", "destroy", ROOM, "--reason", "closed for the night"],
        None,
    );
    assert!(out.status.success(), "{out}");
    for c in [&mut alice, &mut bob] {
        let p = c
            .wait_for("the destroy notice", |e| {
                e.name == "presence" && e.attr("type") == Some("unavailable")
            })
            .await;
        assert!(codes(&p).contains(&110), "{}", p.to_xml_string());
        assert!(
            p.to_xml_string().contains("closed for the night"),
            "{}",
            p.to_xml_string()
        );
    }
    until(&server, [0.0, 0.0, 1.0, 2.0]).await;
    let out = server.cli(&["rooms", "list", MUC], None);
    assert_eq!(out.stdout.lines().count(), 1, "only the header: {out}");
    // A hostname that is no service here.
    let out = server.cli(&["rooms", "list", "chat.localhost"], None);
    assert!(!out.status.success(), "{out}");
}
