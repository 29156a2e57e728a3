//! XMPP over WebSocket (RFC 7395) against the real binary: logins and
//! chat with a TCP client, stream management resumed over a new
//! WebSocket, discovery (XEP-0156), and hostile input on the HTTP side
//! (upgrade refusals, two stanzas in one message, an oversized message,
//! oversized and slow request heads, path traversal), each with a clear
//! error and nothing else broken.

use switchboard_integration_tests::ws::{http, Frame, WsClient};
use switchboard_integration_tests::{Client, ServerBuilder, TestServer};

fn server() -> TestServer {
    ServerBuilder::new()
        .config(
            r#"<listen><c2s addr="127.0.0.1:0"/><http addr="127.0.0.1:0"/><https addr="127.0.0.1:0"/></listen>"#,
        )
        .config(r#"<web header-timeout="2s" origins="https://chat.example.org"/>"#)
        .user("alice@localhost", "alice-pw")
        .user("bob@localhost", "bob-pw")
        .start()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_client_chats_with_a_tcp_client() {
    let server = server();
    let mut alice = WsClient::connect(server.listener("https"), Some(server.tls_config())).await;
    let jid = alice.login("alice", "alice-pw", "web").await;
    assert_eq!(jid, "alice@localhost/web");
    alice.send("<presence xmlns='jabber:client'/>").await;
    let mut bob = Client::login(&server, "bob", "bob-pw", "desk").await;
    bob.send("<message to='alice@localhost/web' type='chat' id='m1'><body>hello over TCP</body></message>")
        .await;
    let got = alice.expect("hello over TCP").await;
    assert!(got.contains("from=\"bob@localhost/desk\""), "{got}");
    // Each stanza is one message declaring its namespace (RFC 7395 §3.3.3).
    assert!(got.starts_with("<message xmlns=\"jabber:client\""), "{got}");
    alice
        .send("<message xmlns='jabber:client' to='bob@localhost/desk' type='chat' id='m2'><body>hello over WebSocket</body></message>")
        .await;
    bob.expect("the WebSocket message", |s| {
        s.contains("hello over WebSocket")
    })
    .await;
    // An IQ round trip, then a clean close with <close/>.
    alice
        .send("<iq xmlns='jabber:client' type='get' id='p1'><ping xmlns='urn:xmpp:ping'/></iq>")
        .await;
    alice.expect("id=\"p1\"").await;
    alice
        .send("<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>")
        .await;
    alice.expect("<close").await;
    assert!(matches!(
        alice.recv().await,
        Some(Frame::Close(Some(1000), _))
    ));
    bob.barrier().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_session_resumes_on_a_new_websocket() {
    let server = server();
    let mut ws = WsClient::connect(server.listener("http"), None).await;
    // Plain HTTP is not encrypted, and TLS is required: no login offered
    // without it (the test's second connection uses HTTPS).
    ws.open().await;
    let features = ws.expect("<stream:features").await;
    assert!(
        !features.contains("starttls"),
        "no STARTTLS over WebSocket: {features}"
    );
    assert!(!features.contains("PLAIN"), "{features}");

    let mut first = WsClient::connect(server.listener("https"), Some(server.tls_config())).await;
    first.login("alice", "alice-pw", "web").await;
    first
        .send("<enable xmlns='urn:xmpp:sm:3' resume='true'/>")
        .await;
    let enabled = first.expect("<enabled").await;
    let id = enabled
        .split("id=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("a resumption id")
        .to_string();
    first.send("<presence xmlns='jabber:client'/>").await;
    let mut bob = Client::login(&server, "bob", "bob-pw", "desk").await;
    bob.send("<message to='alice@localhost/web' type='chat' id='lost'><body>while you were away</body></message>")
        .await;
    first.expect("while you were away").await;
    // The connection dies without a close: unacknowledged, the message
    // must come again on resumption.
    drop(first);
    server.wait_for_log(&["connection lost", "alice@localhost/web"]);

    let mut second = WsClient::connect(server.listener("https"), Some(server.tls_config())).await;
    second.open().await;
    second.expect("<stream:features").await;
    let auth = base64_plain("alice", "alice-pw");
    second
        .send(&format!(
            "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{auth}</auth>"
        ))
        .await;
    second.expect("<success").await;
    second.open().await;
    second.expect("<stream:features").await;
    second
        .send(&format!(
            "<resume xmlns='urn:xmpp:sm:3' previd='{id}' h='0'/>"
        ))
        .await;
    second.expect("<resumed").await;
    second.expect("while you were away").await;
    bob.barrier().await;
}

fn base64_plain(user: &str, password: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0{password}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_stanzas_in_one_message_end_the_stream_and_nothing_else() {
    let server = server();
    let mut bob = Client::login(&server, "bob", "bob-pw", "desk").await;
    let mut alice = WsClient::connect(server.listener("https"), Some(server.tls_config())).await;
    alice.login("alice", "alice-pw", "web").await;
    alice
        .send("<presence xmlns='jabber:client'/><presence xmlns='jabber:client'/>")
        .await;
    let err = alice.expect("<stream:error").await;
    assert!(err.contains("not-well-formed"), "{err}");
    alice.expect("<close").await;
    // An oversized message is refused from its header alone.
    let mut carol = WsClient::connect(server.listener("https"), Some(server.tls_config())).await;
    carol.open().await;
    carol
        .send(&format!(
            "<presence xmlns='jabber:client'>{}</presence>",
            "x".repeat(300_000)
        ))
        .await;
    let err = carol.expect("<stream:error").await;
    assert!(err.contains("policy-violation"), "{err}");
    assert!(
        matches!(carol.recv_until_close().await, Some(1009)),
        "closed with 1009 (message too big)"
    );
    // A binary frame is not XMPP.
    let mut dave = WsClient::connect(server.listener("https"), Some(server.tls_config())).await;
    dave.send_frame(0x2, true, b"\x00\x01").await;
    let err = dave.expect("<stream:error").await;
    assert!(err.contains("unsupported-encoding"), "{err}");
    // The server is fine.
    bob.barrier().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrades_are_checked_and_refusals_say_why() {
    let server = server();
    let addr = server.listener("https");
    let tls = || Some(server.tls_config());
    let no_protocol = WsClient::try_connect(addr, tls(), &[]).await.err().unwrap();
    assert!(no_protocol.starts_with("HTTP/1.1 400 "), "{no_protocol}");
    assert!(
        no_protocol.contains("\"xmpp\" subprotocol is required"),
        "{no_protocol}"
    );
    let foreign = WsClient::try_connect(
        addr,
        tls(),
        &[
            ("Sec-WebSocket-Protocol", "xmpp"),
            ("Origin", "https://evil.example"),
        ],
    )
    .await
    .err()
    .unwrap();
    assert!(foreign.starts_with("HTTP/1.1 403 "), "{foreign}");
    assert!(
        foreign.contains("https://evil.example may not connect"),
        "{foreign}"
    );
    assert!(WsClient::try_connect(
        addr,
        tls(),
        &[
            ("Sec-WebSocket-Protocol", "xmpp"),
            ("Origin", "https://chat.example.org")
        ],
    )
    .await
    .is_ok());
    let plain_get = http(
        addr,
        tls(),
        b"GET /xmpp-websocket HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(plain_get.starts_with("HTTP/1.1 426 "), "{plain_get}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_meta_names_the_websocket_endpoint() {
    let server = server();
    let addr = server.listener("https");
    let xrd = http(
        addr,
        Some(server.tls_config()),
        format!("GET /.well-known/host-meta HTTP/1.1\r\nHost: localhost:{}\r\nConnection: close\r\n\r\n", addr.port()).as_bytes(),
    )
    .await;
    assert!(xrd.starts_with("HTTP/1.1 200 "), "{xrd}");
    assert!(
        xrd.contains(&format!(
            "<Link rel='urn:xmpp:alt-connections:websocket' href='wss://localhost:{}/xmpp-websocket'/>",
            addr.port()
        )),
        "{xrd}"
    );
    assert!(
        xrd.contains(&format!(
            "<Link rel='urn:xmpp:alt-connections:xbosh' href='https://localhost:{}/http-bind'/>",
            addr.port()
        )),
        "{xrd}"
    );
    assert!(xrd.contains("Access-Control-Allow-Origin: *"), "{xrd}");
    let plain = server.listener("http");
    let json = http(
        plain,
        None,
        b"GET /.well-known/host-meta.json HTTP/1.1\r\nHost: example.org\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(
        json.contains(r#"{"rel":"urn:xmpp:alt-connections:websocket","href":"ws://example.org/xmpp-websocket"}"#),
        "{json}"
    );
    assert!(
        json.contains(
            r#"{"rel":"urn:xmpp:alt-connections:xbosh","href":"http://example.org/http-bind"}"#
        ),
        "{json}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_requests_get_clear_errors() {
    let server = server();
    let addr = server.listener("http");
    // A request head past the limit.
    let huge = format!(
        "GET / HTTP/1.1\r\nHost: localhost\r\nX-Filler: {}\r\n\r\n",
        "a".repeat(20_000)
    );
    let answer = http(addr, None, huge.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 431 "), "{answer}");
    // A head that never ends is cut off at the header timeout (2 s here):
    // the server closes, it does not wait forever.
    let slow = http(addr, None, b"GET / HTTP/1.1\r\nHost: local").await;
    assert!(!slow.contains("200 OK"), "{slow}");
    // Path traversal out of the chat directory.
    for evil in [
        "/chat/../etc/passwd",
        "/chat/%2e%2e/x",
        "/chat/a%2fb",
        "/chat/.hidden",
    ] {
        let answer = http(
            addr,
            None,
            format!("GET {evil} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await;
        assert!(
            answer.starts_with("HTTP/1.1 404 ") || answer.starts_with("HTTP/1.1 400 "),
            "{evil}: {answer}"
        );
    }
    // Without converse.js installed, the chat page says how to install it.
    let page = http(
        addr,
        None,
        b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(page.contains("npm install"), "{page}");
    // And the server still serves clients.
    let mut bob = Client::login(&server, "bob", "bob-pw", "desk").await;
    bob.barrier().await;
}
