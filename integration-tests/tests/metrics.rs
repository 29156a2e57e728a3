//! The Prometheus metrics endpoint, scraped over a real socket from the
//! real binary: off unless configured, `GET /metrics` in the text format,
//! 404 elsewhere, and counters that move with logins, failed logins,
//! messages, server-generated errors and spool writes.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use switchboard_integration_tests::{RawClient, ServerBuilder, TestServer, WAIT};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn server() -> TestServer {
    ServerBuilder::new()
        .config(r#"<metrics addr="127.0.0.1:0"/>"#)
        .also(r#"<service id="users.localhost" type="directory"/>"#)
        .user("alice@localhost", "alice-pw")
        .user("bob@localhost", "bob-pw")
        .user("carol@localhost", "carol-pw")
        .start()
}

/// Sends `request` and reads the whole answer (the server closes).
async fn http(addr: SocketAddr, request: &str) -> String {
    let mut tcp = TcpStream::connect(addr).await.expect("connect to metrics");
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(WAIT, tcp.read_to_end(&mut out))
        .await
        .expect("the metrics endpoint answers and closes")
        .unwrap();
    String::from_utf8(out).expect("UTF-8 answer")
}

/// Scrapes `/metrics`: every sample line, `name{labels}` → value.
async fn scrape(server: &TestServer) -> HashMap<String, f64> {
    let answer = http(
        server.listener("metrics"),
        "GET /metrics HTTP/1.1\r\nHost: localhost\r\nAccept: text/plain\r\n\r\n",
    )
    .await;
    let (head, body) = answer.split_once("\r\n\r\n").expect("a head and a body");
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(
        head.contains("Content-Type: text/plain; version=0.0.4"),
        "{head}"
    );
    assert!(
        head.contains(&format!("Content-Length: {}\r\n", body.len())),
        "{head}"
    );
    body.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (k, v) = l.rsplit_once(' ').expect("`name value`");
            (k.to_string(), v.parse().expect("a number"))
        })
        .collect()
}

fn get(m: &HashMap<String, f64>, key: &str) -> f64 {
    *m.get(key)
        .unwrap_or_else(|| panic!("no sample {key} in {m:#?}"))
}

/// Scrapes until `ok` holds (the server counts asynchronously), at most
/// [`WAIT`]; returns the scrape that satisfied it.
async fn until(
    server: &TestServer,
    what: &str,
    ok: impl Fn(&HashMap<String, f64>) -> bool,
) -> HashMap<String, f64> {
    let deadline = Instant::now() + WAIT;
    loop {
        let m = scrape(server).await;
        if ok(&m) {
            return m;
        }
        assert!(Instant::now() < deadline, "never saw {what}: {m:#?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn login(server: &TestServer, user: &str, password: &str) -> RawClient {
    let mut c = RawClient::login(server.c2s(), server.tls_config(), user, password, "desk")
        .await
        .unwrap();
    c.send("<presence/>").await.unwrap();
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_move_with_logins_messages_errors_and_spool_writes() {
    let server = server();
    let before = scrape(&server).await;
    assert_eq!(get(&before, "switchboard_sessions"), 0.0);
    assert_eq!(get(&before, "switchboard_logins_total"), 0.0);
    assert_eq!(get(&before, "switchboard_login_failures_total"), 0.0);
    assert_eq!(
        get(&before, r#"switchboard_stanzas_in_total{type="message"}"#),
        0.0
    );
    assert_eq!(
        get(
            &before,
            r#"switchboard_service_up{service="users.localhost"}"#
        ),
        1.0
    );
    assert_eq!(
        get(
            &before,
            r#"switchboard_service_queue_depth{service="users.localhost"}"#
        ),
        0.0
    );
    let writes_before = get(&before, "switchboard_spool_writes_total");

    // A wrong password is a failed login, not a login.
    let refused = RawClient::login(server.c2s(), server.tls_config(), "alice", "wrong", "x").await;
    assert!(refused.is_err(), "a wrong password is refused");

    let mut alice = login(&server, "alice", "alice-pw").await;
    let mut bob = login(&server, "bob", "bob-pw").await;
    // An IQ the router answers (resource binding happens inside the
    // stream negotiation and is not a routed stanza).
    let pong = alice.ping("localhost").await.unwrap();
    assert!(
        pong.contains("type=\"result\"") || pong.contains("type='result'"),
        "{pong}"
    );
    alice
        .send(
            "<message to='bob@localhost/desk' type='chat' id='m1'><body>hello bob</body></message>",
        )
        .await
        .unwrap();
    bob.read_until("hello bob", WAIT).await.unwrap();
    // To an account that does not exist: the server answers with an error.
    alice
        .send("<message to='nobody@localhost' type='chat' id='m2'><body>anyone?</body></message>")
        .await
        .unwrap();
    alice.read_until("service-unavailable", WAIT).await.unwrap();
    // A malformed address: the stream machine answers before routing.
    alice
        .send("<message to='a@@localhost' type='chat' id='m4'><body>?</body></message>")
        .await
        .unwrap();
    alice.read_until("jid-malformed", WAIT).await.unwrap();
    // To carol, who is offline: stored in her spool file.
    alice
        .send("<message to='carol@localhost' type='chat' id='m3'><body>later</body></message>")
        .await
        .unwrap();

    // The archive writes too (alice's chat with bob), so a spool write
    // alone does not say carol's message was routed: wait for both.
    let after = until(
        &server,
        "the offline message routed and a spool write",
        |m| {
            get(m, "switchboard_spool_writes_total") > writes_before
                && get(m, r#"switchboard_stanzas_in_total{type="message"}"#) >= 3.0
        },
    )
    .await;
    assert_eq!(get(&after, "switchboard_sessions"), 2.0);
    assert!(get(&after, "switchboard_connections") >= 2.0, "{after:#?}");
    assert_eq!(get(&after, "switchboard_logins_total"), 2.0);
    assert_eq!(get(&after, "switchboard_login_failures_total"), 1.0);
    assert_eq!(
        get(&after, r#"switchboard_stanzas_in_total{type="message"}"#),
        3.0
    );
    assert!(get(&after, r#"switchboard_stanzas_in_total{type="presence"}"#) >= 2.0);
    assert_eq!(
        get(&after, r#"switchboard_stanzas_in_total{type="iq"}"#),
        1.0,
        "the ping"
    );
    assert!(
        get(&after, r#"switchboard_stanzas_out_total{type="iq"}"#) >= 1.0,
        "the pong"
    );
    // Bob's message and alice's error reply.
    assert!(get(&after, r#"switchboard_stanzas_out_total{type="message"}"#) >= 2.0);
    assert_eq!(
        get(&after, "switchboard_stanza_errors_total"),
        2.0,
        "nobody and a@@"
    );
    let count = get(&after, "switchboard_spool_write_seconds_count");
    assert_eq!(count, get(&after, "switchboard_spool_writes_total"));
    assert_eq!(
        count,
        get(
            &after,
            r#"switchboard_spool_write_seconds_bucket{le="+Inf"}"#
        )
    );
    assert!(get(&after, "switchboard_spool_write_seconds_sum") > 0.0);

    // Sessions go back down when the clients leave.
    alice.close().await;
    bob.close().await;
    until(&server, "the sessions ending", |m| {
        get(m, "switchboard_sessions") == 0.0
    })
    .await;
}

#[tokio::test]
async fn only_get_metrics_is_served() {
    let server = server();
    let addr = server.listener("metrics");
    let answer = http(addr, "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n").await;
    assert!(answer.starts_with("HTTP/1.1 404 Not Found\r\n"), "{answer}");
    let answer = http(addr, "POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n").await;
    assert!(answer.starts_with("HTTP/1.1 405 "), "{answer}");
    // A head that never ends is cut off at the size limit.
    let huge = format!("GET /metrics HTTP/1.1\r\nX: {}", "a".repeat(20_000));
    let answer = http(addr, &huge).await;
    assert!(answer.starts_with("HTTP/1.1 431 "), "{answer}");
    // The HELP and TYPE lines are there.
    let answer = http(addr, "GET /metrics HTTP/1.0\r\n\r\n").await;
    assert!(
        answer.contains("# TYPE switchboard_spool_write_seconds histogram\n"),
        "{answer}"
    );
}

#[test]
fn metrics_are_off_by_default() {
    let server = ServerBuilder::new().start();
    assert!(
        server.listeners().iter().all(|(kind, _)| kind != "metrics"),
        "{:?}",
        server.listeners()
    );
}
