//! BOSH (XEP-0124, XEP-0206) against the real binary, request by
//! request as a browser library sends them: a session, SASL, a stream
//! restart, resource binding, chat both ways with a TCP client (a held
//! request answered when a message arrives), a retried request answered
//! again, stream management resumed on a new BOSH session after the old
//! one went idle, and the refusals: an unknown session, a request id out
//! of order, a body that is not XML or too large, a domain the server
//! does not have, a session over the per-address limit.

use switchboard_integration_tests::ws::http;
use switchboard_integration_tests::{Client, ServerBuilder, TestServer};

const NS: &str = "http://jabber.org/protocol/httpbind";

fn server_with(bosh: &str) -> TestServer {
    ServerBuilder::new()
        .config(r#"<listen><c2s addr="127.0.0.1:0"/><https addr="127.0.0.1:0"/></listen>"#)
        .config(&format!("<web>{bosh}</web>"))
        .user("alice@localhost", "alice-pw")
        .user("bob@localhost", "bob-pw")
        .start()
}

fn server() -> TestServer {
    server_with(r#"<bosh max-wait="20s"/>"#)
}

/// POSTs `body` to `/http-bind`; the status line and the answer's body.
async fn post(server: &TestServer, body: &str) -> (String, String) {
    let req = format!(
        "POST /http-bind HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/xml; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let t = std::time::Instant::now();
    let answer = http(
        server.listener("https"),
        Some(server.tls_config()),
        req.as_bytes(),
    )
    .await;
    eprintln!("POST after {:?}: {body}\nanswer: {answer}", t.elapsed());
    let (head, body) = answer
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP answer: {answer:?}"));
    (
        head.lines().next().unwrap_or_default().to_string(),
        body.to_string(),
    )
}

fn attr(body: &str, name: &str) -> Option<String> {
    let key = format!(" {name}='");
    let at = body.find(&key)? + key.len();
    Some(body[at..at + body[at..].find('\'')?].to_string())
}

/// A BOSH client's state: the session id and the next request id.
struct Bosh {
    sid: String,
    rid: u64,
}

impl Bosh {
    async fn start(server: &TestServer) -> (Bosh, String) {
        let rid = 4_000_000;
        let (status, body) = post(
            server,
            &format!(
                "<body xmlns='{NS}' xmlns:xmpp='urn:xmpp:xbosh' to='localhost' rid='{rid}' \
                 wait='3' hold='1' ver='1.11' xmpp:version='1.0' xml:lang='en'/>"
            ),
        )
        .await;
        assert!(status.contains(" 200 "), "{status} {body}");
        let sid = attr(&body, "sid").unwrap_or_else(|| panic!("no sid: {body}"));
        assert_eq!(attr(&body, "hold").as_deref(), Some("1"), "{body}");
        assert_eq!(attr(&body, "requests").as_deref(), Some("2"), "{body}");
        (Bosh { sid, rid: rid + 1 }, body)
    }

    /// The next request, with `payload` inside and `extra` attributes.
    fn request(&mut self, payload: &str, extra: &str) -> String {
        let rid = self.rid;
        self.rid += 1;
        format!(
            "<body xmlns='{NS}' xmlns:xmpp='urn:xmpp:xbosh' sid='{}' rid='{rid}'{extra}>{payload}</body>",
            self.sid
        )
    }

    async fn send(&mut self, server: &TestServer, payload: &str) -> String {
        let req = self.request(payload, "");
        let (status, body) = post(server, &req).await;
        assert!(status.contains(" 200 "), "{status} {body}");
        body
    }

    /// Sends requests until an answer contains `what` (each waits for the
    /// server to have something to say); returns that answer.
    async fn until(&mut self, server: &TestServer, what: &str) -> String {
        for _ in 0..10 {
            let body = self.send(server, "").await;
            if body.contains(what) {
                return body;
            }
            assert!(
                !body.contains("type='terminate'"),
                "the session ended: {body}"
            );
        }
        panic!("no answer with {what}");
    }
}

fn plain(user: &str, password: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0{password}"))
}

/// Logs in as `user`, bound to `resource`.
async fn login(server: &TestServer, user: &str, password: &str, resource: &str) -> Bosh {
    let (mut b, created) = Bosh::start(server).await;
    assert!(
        created.contains("<mechanism>PLAIN</mechanism>"),
        "{created}"
    );
    assert!(!created.contains("starttls"), "{created}");
    let answer = b
        .send(
            server,
            &format!(
                "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{}</auth>",
                plain(user, password)
            ),
        )
        .await;
    let answer = if answer.contains("<success") {
        answer
    } else {
        b.until(server, "<success").await
    };
    assert!(answer.contains("<success"), "{answer}");
    let req = b.request("", " to='localhost' xmpp:restart='true'");
    let (_, features) = post(server, &req).await;
    assert!(
        features.contains("urn:ietf:params:xml:ns:xmpp-bind"),
        "{features}"
    );
    let bound = b
        .send(
            server,
            &format!(
                "<iq xmlns='jabber:client' type='set' id='bind1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>\
                 <resource>{resource}</resource></bind></iq>"
            ),
        )
        .await;
    let bound = if bound.contains("<jid>") {
        bound
    } else {
        b.until(server, "<jid>").await
    };
    assert!(
        bound.contains(&format!("<jid>{user}@localhost/{resource}</jid>")),
        "{bound}"
    );
    b
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bosh_client_logs_in_and_chats_with_a_tcp_client() {
    let server = server();
    let mut alice = login(&server, "alice", "alice-pw", "web").await;
    let mut bob = Client::login(&server, "bob", "bob-pw", "desk").await;

    // Alice to Bob.
    let sent = alice
        .send(
            &server,
            "<message xmlns='jabber:client' to='bob@localhost/desk' type='chat' id='b1'>\
             <body>hello over BOSH</body></message>",
        )
        .await;
    assert!(!sent.contains("type='terminate'"), "{sent}");
    let got = bob
        .expect("alice's message", |m| m.contains("hello over BOSH"))
        .await;
    assert!(
        got.contains("from=\"alice@localhost/web\"") || got.contains("from='alice@localhost/web'"),
        "{got}"
    );

    // A request held open is answered when Bob writes.
    let req = alice.request("", "");
    let srv = &server;
    let held = async { post(srv, &req).await };
    let write = async {
        // The held request is on its way first (it waits up to 20 s).
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        bob.send("<message to='alice@localhost/web' type='chat' id='t1'><body>hello over TCP</body></message>")
            .await;
    };
    let ((status, body), ()) = tokio::join!(held, write);
    assert!(status.contains(" 200 "), "{status}");
    let body = if body.contains("hello over TCP") {
        body
    } else {
        alice.until(&server, "hello over TCP").await
    };
    assert!(body.contains("hello over TCP"), "{body}");

    // A retried request (the answer was lost on the way) gets the same
    // answer again.
    let req = alice.request(
        "<iq xmlns='jabber:client' type='get' id='p1' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>",
        "",
    );
    let (_, first) = post(&server, &req).await;
    assert!(first.contains("id=\"p1\""), "{first}");
    let (_, again) = post(&server, &req).await;
    assert_eq!(again, first);

    // Terminate: the session is gone, Bob sees Alice leave.
    let bye = alice.request(
        "<presence xmlns='jabber:client' type='unavailable'/>",
        " type='terminate'",
    );
    let (_, body) = post(&server, &bye).await;
    assert!(
        body.contains("type='terminate'") || body.contains("type=\"terminate\""),
        "{body}"
    );
    let (status, body) = post(&server, &alice.request("", "")).await;
    assert!(status.contains(" 404 "), "{status} {body}");
    assert!(body.contains("item-not-found"), "{body}");
    bob.barrier().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_are_refused_and_say_why() {
    let server = server();
    // Not XML; not a <body/>; no rid.
    let (status, body) = post(&server, "<body xmlns='x'").await;
    assert!(status.contains(" 400 "), "{status} {body}");
    assert!(
        body.contains("bad-request") && body.contains("not XML"),
        "{body}"
    );
    let (status, body) = post(&server, "<iq xmlns='jabber:client'/>").await;
    assert!(
        status.contains(" 400 ") && body.contains("the root must be"),
        "{body}"
    );
    let (status, body) = post(&server, &format!("<body xmlns='{NS}' to='localhost'/>")).await;
    assert!(status.contains(" 400 ") && body.contains("rid="), "{body}");
    // Another domain; an unknown session.
    let (_, body) = post(
        &server,
        &format!("<body xmlns='{NS}' to='elsewhere.example' rid='1'/>"),
    )
    .await;
    assert!(body.contains("host-unknown"), "{body}");
    let (status, body) = post(&server, &format!("<body xmlns='{NS}' sid='nope' rid='2'/>")).await;
    assert!(
        status.contains(" 404 ") && body.contains("item-not-found"),
        "{body}"
    );
    // A request id out of order ends the session.
    let (mut b, _) = Bosh::start(&server).await;
    b.rid += 5;
    let (status, body) = post(&server, &b.request("", "")).await;
    assert!(
        status.contains(" 404 ") && body.contains("out of order"),
        "{status} {body}"
    );
    let (_, body) = post(&server, &b.request("", "")).await;
    assert!(body.contains("item-not-found"), "{body}");
    // A body larger than <web max-body-bytes> (256 KiB and a bit).
    let huge = format!(
        "<body xmlns='{NS}' to='localhost' rid='9'>{}</body>",
        "x".repeat(300_000)
    );
    let (status, body) = post(&server, &huge).await;
    assert!(
        status.contains(" 413 ") && body.contains("at most 278528 bytes"),
        "{status} {body}"
    );
    // A GET says what the endpoint is.
    let answer = http(
        server.listener("https"),
        Some(server.tls_config()),
        b"GET /http-bind HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(
        answer.starts_with("HTTP/1.1 405 ") && answer.contains("BOSH"),
        "{answer}"
    );
    // The server still serves everyone.
    let mut bob = Client::login(&server, "bob", "bob-pw", "desk").await;
    bob.barrier().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_are_limited_per_address_and_end_when_idle() {
    let server = server_with(r#"<bosh inactivity="2s" max-sessions-per-address="2"/>"#);
    let mut alice = login(&server, "alice", "alice-pw", "web").await;
    let (_second, _) = Bosh::start(&server).await;
    let (status, body) = post(
        &server,
        &format!("<body xmlns='{NS}' to='localhost' rid='77' wait='3'/>"),
    )
    .await;
    assert!(status.contains(" 200 "), "{status}");
    assert!(
        body.contains("policy-violation") && body.contains("2 BOSH sessions from one address"),
        "{body}"
    );
    // Alice sends no request for the inactivity time: her session ends
    // as a lost connection (the server logs it), and is gone.
    server.wait_for_log(&["session ended", "alice@localhost/web"]);
    let (status, body) = post(&server, &alice.request("", "")).await;
    assert!(
        status.contains(" 404 ") && body.contains("item-not-found"),
        "{status} {body}"
    );
    let mut bob = Client::login(&server, "bob", "bob-pw", "desk").await;
    bob.barrier().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bosh_session_resumes_with_stream_management() {
    let server = server_with(r#"<bosh inactivity="2s"/>"#);
    let mut alice = login(&server, "alice", "alice-pw", "web").await;
    let enabled = alice
        .send(&server, "<enable xmlns='urn:xmpp:sm:3' resume='true'/>")
        .await;
    let enabled = if enabled.contains("<enabled") {
        enabled
    } else {
        alice.until(&server, "<enabled").await
    };
    let id = enabled
        .split("id=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap_or_else(|| panic!("no id: {enabled}"))
        .to_string();
    // The browser goes away: no request for the inactivity time. The
    // session hibernates as for a dropped TCP connection; Bob writes.
    server.wait_for_log(&["session hibernates", "alice@localhost"]);
    let mut bob = Client::login(&server, "bob", "bob-pw", "desk").await;
    bob.send("<message to='alice@localhost/web' type='chat' id='away'><body>while you were away</body></message>")
        .await;
    bob.barrier().await;

    // A new BOSH session logs in and resumes: the message arrives.
    let (mut again, _) = Bosh::start(&server).await;
    let ok = again
        .send(
            &server,
            &format!(
                "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{}</auth>",
                plain("alice", "alice-pw")
            ),
        )
        .await;
    assert!(ok.contains("<success"), "{ok}");
    let req = again.request("", " to='localhost' xmpp:restart='true'");
    let (_, features) = post(&server, &req).await;
    assert!(features.contains("urn:xmpp:sm:3"), "{features}");
    // Everything the next answers bring: <resumed/>, then the message.
    let mut seen = again
        .send(
            &server,
            &format!("<resume xmlns='urn:xmpp:sm:3' h='0' previd='{id}'/>"),
        )
        .await;
    for _ in 0..10 {
        if seen.contains("while you were away") {
            break;
        }
        let more = again.send(&server, "").await;
        assert!(
            !more.contains("type='terminate'"),
            "the session ended: {more}"
        );
        seen.push_str(&more);
    }
    assert!(seen.contains("<resumed"), "{seen}");
    assert!(
        seen.find("<resumed") < seen.find("while you were away"),
        "{seen}"
    );
    server.wait_for_log(&["session resumed", "alice@localhost/web"]);
}
