//! The IRC transport's links under stress and the channel mapping's
//! finer points, end to end: a real ngircd on loopback (restarted under
//! the transport's feet), raw IRC peers, a hostile "IRC server" made of a
//! tokio listener, and XMPP users speaking raw XML to the real binary.
//!
//! ngircd must be installed (`apt-get install ngircd`; `./test` does it as root):
//! without it these tests fail rather than skip.

use std::time::{Duration, Instant};

use switchboard_integration_tests::irc::{free_port, join_room, read_until, IrcPeer, Ngircd};
use switchboard_integration_tests::raw::attr;
use switchboard_integration_tests::{RawClient, ServerBuilder, TestServer, WAIT};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const IRC: &str = "irc.localhost";
const ROOM: &str = "#test%127.0.0.1@irc.localhost";
const SERVER_JID: &str = "127.0.0.1@irc.localhost";

/// A server with the IRC transport and the user alice (an admin of the
/// host); `service_attrs` and `servers` go into its `<service>` element.
fn server(service_attrs: &str, servers: &str, host: &str) -> TestServer {
    builder(service_attrs, servers, host).start()
}

/// The same, with carl (no admin) as well.
fn server_with_carl(service_attrs: &str, servers: &str, host: &str) -> TestServer {
    builder(service_attrs, servers, host)
        .user("carl@localhost", "carl-pw")
        .start()
}

fn builder(service_attrs: &str, servers: &str, host: &str) -> ServerBuilder {
    ServerBuilder::new()
        .config(host)
        .also(&format!(
            r#"<service id="{IRC}" type="irc" {service_attrs}>{servers}</service>"#
        ))
        .user("alice@localhost", "alice-pw")
}

fn plain(host: &str, port: u16) -> String {
    format!(r#"<server host="{host}" port="{port}" tls="false" allow-plain="true"/>"#)
}

const HOST: &str = r#"<host name="localhost"><admin>alice@localhost</admin></host>"#;

async fn login(server: &TestServer, user: &str) -> RawClient {
    RawClient::login(
        server.c2s(),
        server.tls_config(),
        user,
        &format!("{user}-pw"),
        "r",
    )
    .await
    .unwrap()
}

/// Joins `room` as `nick` and waits for the self-presence; returns the
/// elements before it (the occupants) and it.
async fn join(c: &mut RawClient, room: &str, nick: &str) -> (Vec<String>, String) {
    let got = join_room(c, room, nick).await;
    if !got.1.contains(r#"type="error""#) {
        read_until(c, |el| el.contains("<subject")).await;
    }
    got
}

fn from_is(el: &str, jid: &str) -> bool {
    attr(el, "from").as_deref() == Some(jid)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_irc_server_brings_the_user_back_into_the_room() {
    let mut ircd = Ngircd::start();
    let mut bob = IrcPeer::connect(ircd.port, "bob").await;
    bob.send("JOIN #test").await;
    bob.expect(|l| l.contains(" 366 ")).await;
    let server = server("", &plain("127.0.0.1", ircd.port), HOST);
    let mut alice = login(&server, "alice").await;
    join(&mut alice, ROOM, "alice").await;
    bob.expect(|l| l.starts_with(":alice!") && l.contains("JOIN"))
        .await;

    // The server dies: alice leaves the room (110) and is told why.
    ircd.stop();
    let (_, gone) = read_until(&mut alice, |el| {
        el.starts_with("<presence") && el.contains("unavailable")
    })
    .await;
    assert!(from_is(&gone, &format!("{ROOM}/alice")), "{gone}");
    assert!(gone.contains(r#"code="110""#), "{gone}");
    let (_, note) = read_until(&mut alice, |el| el.starts_with("<message")).await;
    assert!(from_is(&note, SERVER_JID), "{note}");
    assert!(
        note.contains("was lost") && note.contains("Reconnecting"),
        "{note}"
    );

    // While the link is down, a message to the room is refused, not lost
    // silently.
    alice
        .send(&format!(
            "<message type='groupchat' to='{ROOM}'><body>into the void</body></message>"
        ))
        .await
        .unwrap();
    let (_, err) = read_until(&mut alice, |el| el.contains(r#"type="error""#)).await;
    assert!(err.contains("recipient-unavailable"), "{err}");

    // It comes back: the transport reconnects and rejoins by itself.
    ircd.resume();
    let mut bob = IrcPeer::connect(ircd.port, "bob").await;
    bob.send("JOIN #test").await;
    bob.expect(|l| l.contains(" 366 ")).await;
    let (_, own) = read_until(&mut alice, |el| {
        el.starts_with("<presence") && el.contains(r#"code="110""#) && !el.contains("unavailable")
    })
    .await;
    assert!(from_is(&own, &format!("{ROOM}/alice")), "{own}");
    read_until(&mut alice, |el| el.contains("<subject")).await;

    // And messages flow both ways again.
    alice
        .send(&format!(
            "<message type='groupchat' to='{ROOM}'><body>back again</body></message>"
        ))
        .await
        .unwrap();
    bob.expect(|l| l.starts_with(":alice!") && l.ends_with("PRIVMSG #test :back again"))
        .await;
    bob.send("PRIVMSG #test :welcome back").await;
    let (_, m) = read_until(&mut alice, |el| el.contains(">welcome back</body>")).await;
    assert!(from_is(&m, &format!("{ROOM}/bob")), "{m}");
}

/// The role and affiliation of the presence `el`.
fn rank(el: &str) -> (String, String) {
    let item = &el[el.find("<item").expect("an item")..];
    (
        attr(item, "role").unwrap_or_default(),
        attr(item, "affiliation").unwrap_or_default(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channel_modes_are_roles_and_notices_are_delivered() {
    let ircd = Ngircd::start();
    let mut bob = IrcPeer::connect(ircd.port, "bob").await;
    bob.send("JOIN #test").await;
    bob.expect(|l| l.contains(" 366 ")).await;
    let mut dave = IrcPeer::connect(ircd.port, "dave").await;
    dave.send("JOIN #test").await;
    dave.expect(|l| l.contains(" 366 ")).await;
    let server = server("", &plain("127.0.0.1", ircd.port), HOST);
    let mut alice = login(&server, "alice").await;
    let (before, own) = join(&mut alice, ROOM, "alice").await;
    let bob_p = before
        .iter()
        .find(|el| from_is(el, &format!("{ROOM}/bob")))
        .expect("bob's presence");
    assert_eq!(rank(bob_p), ("moderator".into(), "admin".into()));
    assert_eq!(rank(&own), ("participant".into(), "none".into()));

    let presence_of = |nick: &'static str| {
        move |el: &str| el.starts_with("<presence") && from_is(el, &format!("{ROOM}/{nick}"))
    };
    // Voice: a member, still a participant.
    bob.send("MODE #test +v alice").await;
    let (_, p) = read_until(&mut alice, presence_of("alice")).await;
    assert_eq!(rank(&p), ("participant".into(), "member".into()));
    assert!(p.contains(r#"code="110""#), "{p}");
    // Operator: a moderator and admin; losing it leaves the voice.
    bob.send("MODE #test +o alice").await;
    let (_, p) = read_until(&mut alice, presence_of("alice")).await;
    assert_eq!(rank(&p), ("moderator".into(), "admin".into()));
    bob.send("MODE #test -o alice").await;
    let (_, p) = read_until(&mut alice, presence_of("alice")).await;
    assert_eq!(rank(&p), ("participant".into(), "member".into()));
    // Several changes in one line, with parameters in order.
    bob.send("MODE #test +ov-o dave dave bob").await;
    // (One presence each, in whatever order.)
    let (mut got, last) = read_until(&mut alice, |el| {
        presence_of("dave")(el) || presence_of("bob")(el)
    })
    .await;
    got.clear();
    got.push(last);
    let (_, last) = read_until(&mut alice, |el| {
        presence_of("dave")(el) || presence_of("bob")(el)
    })
    .await;
    got.push(last);
    let dave_p = got.iter().find(|el| presence_of("dave")(el)).expect("dave");
    assert_eq!(rank(dave_p), ("moderator".into(), "admin".into()));
    let bob_p = got.iter().find(|el| presence_of("bob")(el)).expect("bob");
    assert_eq!(rank(bob_p), ("participant".into(), "none".into()));
    // A moderated channel: whoever has no voice is a visitor.
    dave.send("MODE #test +m").await;
    let (_, p) = read_until(&mut alice, presence_of("bob")).await;
    assert_eq!(rank(&p), ("visitor".into(), "none".into()));

    // A NOTICE in the channel is a groupchat message from its sender (dave:
    // bob, a visitor now, may not speak); one to alice alone a chat
    // message from the IRC user.
    dave.send("NOTICE #test :a channel notice").await;
    let (_, m) = read_until(&mut alice, |el| el.contains("a channel notice")).await;
    assert!(from_is(&m, &format!("{ROOM}/dave")), "{m}");
    assert_eq!(attr(&m, "type").as_deref(), Some("groupchat"));
    bob.send("NOTICE alice :a private notice").await;
    let (_, m) = read_until(&mut alice, |el| el.contains("a private notice")).await;
    assert!(from_is(&m, "bob%127.0.0.1@irc.localhost"), "{m}");
    assert_eq!(attr(&m, "type").as_deref(), Some("chat"));

    // Leaving sends PART.
    alice
        .send(&format!("<presence type='unavailable' to='{ROOM}/alice'/>"))
        .await
        .unwrap();
    bob.expect(|l| l.starts_with(":alice!") && l.contains("PART #test"))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_from_xmpp_arrives_whole_in_order_and_the_service_stays_responsive() {
    let ircd = Ngircd::start();
    let mut bob = IrcPeer::connect(ircd.port, "bob").await;
    bob.send("JOIN #test").await;
    bob.expect(|l| l.contains(" 366 ")).await;
    let server = server("", &plain("127.0.0.1", ircd.port), HOST);
    let mut alice = login(&server, "alice").await;
    join(&mut alice, ROOM, "alice").await;
    bob.expect(|l| l.starts_with(":alice!") && l.contains("JOIN"))
        .await;

    let mut burst = String::new();
    for i in 0..20 {
        burst.push_str(&format!(
            "<message type='groupchat' to='{ROOM}'><body>burst {i}</body></message>"
        ));
    }
    alice.send(&burst).await.unwrap();
    // The service answers at once while the lines wait for the bucket.
    let asked = Instant::now();
    let id = alice.new_id("disco");
    alice
        .send(&format!(
            "<iq type='get' id='{id}' to='{IRC}'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>"
        ))
        .await
        .unwrap();
    alice.read_id(&id, WAIT).await.unwrap();
    assert!(
        asked.elapsed() < Duration::from_secs(2),
        "{:?}",
        asked.elapsed()
    );
    let first = Instant::now();
    for i in 0..20 {
        bob.expect(|l| l.contains("PRIVMSG #test :burst")).await;
        let last = bob.seen.last().unwrap().clone();
        assert!(
            last.ends_with(&format!("PRIVMSG #test :burst {i}")),
            "line {i} out of order: {last}"
        );
    }
    // A burst of 5, then one line every 2 s: the last of 20 lines comes
    // about 30 s after the first.
    assert!(
        first.elapsed() >= Duration::from_secs(20),
        "no flood control: {:?}",
        first.elapsed()
    );
}

/// A hostile IRC server: welcomes, lets the user join `#evil`, then sends
/// a 10 MB line without CR LF.
async fn hostile_server(listener: tokio::net::TcpListener) {
    let (mut sock, _) = listener.accept().await.unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&got).contains("USER ") {
        let n = sock.read(&mut buf).await.unwrap();
        assert!(n > 0);
        got.extend_from_slice(&buf[..n]);
    }
    sock.write_all(b":evil.invalid 001 alice :Welcome\r\n")
        .await
        .unwrap();
    while !String::from_utf8_lossy(&got).contains("JOIN #evil") {
        let n = sock.read(&mut buf).await.unwrap();
        assert!(n > 0);
        got.extend_from_slice(&buf[..n]);
    }
    sock.write_all(
        b":alice!a@h JOIN #evil\r\n:evil.invalid 353 alice = #evil :alice\r\n:evil.invalid 366 alice #evil :End\r\n",
    )
    .await
    .unwrap();
    let chunk = vec![b'x'; 1024 * 1024];
    for _ in 0..10 {
        // The transport hangs up long before the end.
        if sock.write_all(&chunk).await.is_err() {
            break;
        }
    }
    // Keep the socket open: the drop must come from the transport.
    tokio::time::sleep(WAIT).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_line_drops_only_that_link() {
    let ircd = Ngircd::start();
    let mut bob = IrcPeer::connect(ircd.port, "bob").await;
    bob.send("JOIN #test").await;
    bob.expect(|l| l.contains(" 366 ")).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let evil_port = listener.local_addr().unwrap().port();
    let evil = tokio::spawn(hostile_server(listener));
    let servers = format!(
        "{}{}",
        plain("127.0.0.1", ircd.port),
        plain("localhost", evil_port)
    );
    let server = server_with_carl("", &servers, HOST);
    // carl is in a room on the real server; alice on the hostile one.
    let mut carl = login(&server, "carl").await;
    join(&mut carl, ROOM, "carl").await;
    let mut alice = login(&server, "alice").await;
    let evil_room = "#evil%localhost@irc.localhost";
    join(&mut alice, evil_room, "alice").await;
    let (_, gone) = read_until(&mut alice, |el| {
        el.starts_with("<presence") && el.contains("unavailable")
    })
    .await;
    assert!(from_is(&gone, &format!("{evil_room}/alice")), "{gone}");
    let (_, note) = read_until(&mut alice, |el| el.starts_with("<message")).await;
    assert!(note.contains("longer than"), "{note}");

    // carl's link is untouched.
    bob.send("PRIVMSG #test :still fine").await;
    let (_, m) = read_until(&mut carl, |el| el.contains(">still fine</body>")).await;
    assert!(from_is(&m, &format!("{ROOM}/bob")), "{m}");
    carl.send(&format!(
        "<message type='groupchat' to='{ROOM}'><body>me too</body></message>"
    ))
    .await
    .unwrap();
    bob.expect(|l| l.starts_with(":carl!") && l.ends_with("PRIVMSG #test :me too"))
        .await;
    evil.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_server_and_raw_commands_to_the_server_jid() {
    let ircd = Ngircd::start();
    let mut bob = IrcPeer::connect(ircd.port, "bob").await;
    bob.send("JOIN #test").await;
    bob.expect(|l| l.contains(" 366 ")).await;
    let server = server_with_carl(
        r#"default-server="127.0.0.1""#,
        &plain("127.0.0.1", ircd.port),
        HOST,
    );
    let short = "#test@irc.localhost";
    let mut alice = login(&server, "alice").await;
    let (before, own) = join(&mut alice, short, "alice").await;
    assert!(from_is(&own, &format!("{short}/alice")), "{own}");
    assert!(
        before.iter().any(|el| from_is(el, &format!("{short}/bob"))),
        "{before:?}"
    );
    bob.send("PRIVMSG #test :short and sweet").await;
    let (_, m) = read_until(&mut alice, |el| el.contains("short and sweet")).await;
    assert!(from_is(&m, &format!("{short}/bob")), "{m}");
    alice
        .send("<message type='chat' to='bob@irc.localhost'><body>psst</body></message>")
        .await
        .unwrap();
    bob.expect(|l| l.starts_with(":alice!") && l.ends_with("PRIVMSG bob :psst"))
        .await;
    bob.send("PRIVMSG alice :pssst back").await;
    let (_, m) = read_until(&mut alice, |el| el.contains("pssst back")).await;
    assert!(from_is(&m, "bob@irc.localhost"), "{m}");

    // alice is an admin: a message to the server's JID is a raw command.
    alice
        .send(&format!(
            "<message type='chat' to='{SERVER_JID}'><body>PRIVMSG bob :raw hello</body></message>"
        ))
        .await
        .unwrap();
    bob.expect(|l| l.starts_with(":alice!") && l.ends_with("PRIVMSG bob :raw hello"))
        .await;
    // The server's answers come from its JID.
    alice
        .send(&format!(
            "<message type='chat' to='{SERVER_JID}'><body>NOSUCHCOMMAND</body></message>"
        ))
        .await
        .unwrap();
    let (_, m) = read_until(&mut alice, |el| from_is(el, SERVER_JID)).await;
    assert!(m.contains("NOSUCHCOMMAND"), "{m}");
    // One line only.
    alice
        .send(&format!(
            "<message type='chat' to='{SERVER_JID}' id='two'><body>PRIVMSG bob :a&#13;&#10;QUIT</body></message>"
        ))
        .await
        .unwrap();
    let err = alice.read_id("two", WAIT).await.unwrap();
    assert!(err.contains("bad-request"), "{err}");

    // carl is no admin: forbidden, even with a connection of his own.
    let mut carl = login(&server, "carl").await;
    join(&mut carl, short, "carl").await;
    carl.send(&format!(
        "<message type='chat' to='{SERVER_JID}' id='raw'><body>PRIVMSG bob :sneaky</body></message>"
    ))
    .await
    .unwrap();
    let err = carl.read_id("raw", WAIT).await.unwrap();
    assert!(err.contains("forbidden"), "{err}");
    // (bob never sees it: the next line he gets is carl's real message.)
    carl.send(&format!(
        "<message type='groupchat' to='{short}'><body>only this</body></message>"
    ))
    .await
    .unwrap();
    let l = bob
        .expect(|l| l.starts_with(":carl!") && l.contains("PRIVMSG"))
        .await;
    assert!(l.ends_with("PRIVMSG #test :only this"), "{l}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_per_user_are_limited() {
    let ircd = Ngircd::start();
    // The same ngircd under two allowed names: two connections.
    let servers = format!(
        "{}{}",
        plain("127.0.0.1", ircd.port),
        plain("localhost", ircd.port)
    );
    let server = server(r#"max-connections="1""#, &servers, HOST);
    let mut alice = login(&server, "alice").await;
    join(&mut alice, ROOM, "alice").await;
    // A second room on the same server shares the connection.
    let (_, own) = join(&mut alice, "#other%127.0.0.1@irc.localhost", "alice").await;
    assert!(own.contains(r#"code="110""#), "{own}");
    let (_, err) = join(&mut alice, "#test%localhost@irc.localhost", "alice").await;
    assert!(err.contains("policy-violation"), "{err}");
    assert!(err.contains("IRC servers"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pinned_fingerprint_accepts_its_certificate_only_and_verify_false_any() {
    use sha2::{Digest, Sha256};
    let cert = rcgen::generate_simple_self_signed(vec!["irc.test.invalid".to_string()]).unwrap();
    let pin: String = Sha256::digest(cert.cert.der())
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":");
    let tls_port = free_port();
    let ircd = Ngircd::start_with(|dir| {
        std::fs::write(dir.join("cert.pem"), cert.cert.pem()).unwrap();
        std::fs::write(dir.join("key.pem"), cert.key_pair.serialize_pem()).unwrap();
        format!(
            "[SSL]\nCertFile = {}\nKeyFile = {}\nPorts = {tls_port}\n",
            dir.join("cert.pem").display(),
            dir.join("key.pem").display()
        )
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", tls_port)).is_err() {
        assert!(Instant::now() < deadline, "no TLS port: {}", ircd.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    // The certificate names neither server: only the pin can pass it.
    let wrong = "00:".repeat(31) + "00";
    let servers = format!(
        r#"<server host="localhost" port="{tls_port}" fingerprint="{pin}"/><server host="127.0.0.1" port="{tls_port}" fingerprint="{wrong}"/>"#
    );
    let server = server("", &servers, HOST);
    let mut alice = login(&server, "alice").await;
    let (_, own) = join(&mut alice, "#test%localhost@irc.localhost", "alice").await;
    assert!(own.contains(r#"code="110""#), "{own}");
    let (_, err) = join(&mut alice, ROOM, "alice").await;
    assert!(err.contains("remote-server-not-found"), "{err}");
    assert!(err.contains("fingerprint"), "{err}");
    drop(alice);
    drop(server);

    // verify="false" takes any certificate (still over TLS); without it,
    // this one (for another name, from no CA) is refused.
    let servers = format!(
        r#"<server host="localhost" port="{tls_port}" verify="false"/><server host="127.0.0.1" port="{tls_port}"/>"#
    );
    let server = builder("", &servers, HOST).start();
    let mut alice = login(&server, "alice").await;
    let (_, own) = join(&mut alice, "#test%localhost@irc.localhost", "alice").await;
    assert!(own.contains(r#"code="110""#), "{own}");
    let (_, err) = join(&mut alice, ROOM, "alice").await;
    assert!(err.contains("remote-server-not-found"), "{err}");
    assert!(err.to_lowercase().contains("certificate"), "{err}");
}
