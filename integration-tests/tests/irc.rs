//! The IRC transport end to end: a real IRC server (ngircd, on loopback
//! with a scratch config), the real binary running the transport
//! in-process at `irc.localhost`, an XMPP user (raw XML) in a channel
//! shown as a MUC room, and a raw IRC client in the same channel.
//!
//! ngircd must be installed (`apt-get install ngircd`; `./test` does it as root):
//! without it these tests fail rather than skip.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use switchboard_integration_tests::irc::{free_port, join_room, norm, read_until, IrcPeer, Ngircd};
use switchboard_integration_tests::raw::attr;
use switchboard_integration_tests::{RawClient, ServerBuilder, TestServer, WAIT};

const IRC: &str = "irc.localhost";
const ROOM: &str = "#test%127.0.0.1@irc.localhost";

fn server_with_irc(port: u16) -> TestServer {
    ServerBuilder::new()
        .also(&format!(
            r#"<service id="{IRC}" type="irc"><server host="127.0.0.1" port="{port}" tls="false" allow-plain="true"/></service>"#
        ))
        .user("alice@localhost", "alice-pw")
        .start()
}

async fn login(server: &TestServer) -> RawClient {
    RawClient::login(server.c2s(), server.tls_config(), "alice", "alice-pw", "r")
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_channel_is_a_muc_room_both_ways() {
    let ircd = Ngircd::start();
    let mut bob = IrcPeer::connect(ircd.port, "bob").await;
    bob.send("JOIN #test").await;
    bob.expect(|l| l.contains(" 366 ")).await;
    bob.send("TOPIC #test :the test topic").await;
    bob.expect(|l| l.contains("TOPIC #test")).await;

    let server = server_with_irc(ircd.port);
    let mut alice = login(&server).await;

    // disco#info on the transport: gateway/irc and conference/irc, MUC.
    alice
        .send(&format!(
            "<iq type='get' id='d1' to='{IRC}'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>"
        ))
        .await
        .unwrap();
    let info = norm(&alice.read_id("d1", WAIT).await.unwrap());
    assert!(
        info.contains(r#"category="gateway""#) && info.contains(r#"type="irc""#),
        "{info}"
    );
    assert!(info.contains(r#"category="conference""#), "{info}");
    assert!(info.contains("http://jabber.org/protocol/muc"), "{info}");

    // Join: occupants, then self-presence with 110, then the subject.
    alice
        .send(&format!(
            "<presence to='{ROOM}/alice'><x xmlns='http://jabber.org/protocol/muc'/></presence>"
        ))
        .await
        .unwrap();
    let (before, own) = read_until(&mut alice, |el| {
        el.starts_with("<presence") && el.contains(r#"code="110""#)
    })
    .await;
    assert_eq!(
        attr(&own, "from").as_deref(),
        Some(&*format!("{ROOM}/alice"))
    );
    assert!(own.contains("http://jabber.org/protocol/muc#user"), "{own}");
    let bob_presence = before
        .iter()
        .find(|el| el.starts_with("<presence") && el.contains(&format!(r#"from="{ROOM}/bob""#)))
        .unwrap_or_else(|| panic!("no occupant presence for bob before self-presence: {before:?}"));
    // bob created the channel: he is its operator.
    assert!(
        bob_presence.contains(r#"role="moderator""#),
        "{bob_presence}"
    );
    let (_, subject) = read_until(&mut alice, |el| el.contains("<subject")).await;
    assert!(subject.contains("the test topic"), "{subject}");
    bob.expect(|l| l.starts_with(":alice!") && l.contains("JOIN"))
        .await;

    // alice → IRC, reflected back to alice as the room does.
    alice
        .send(&format!(
            "<message type='groupchat' to='{ROOM}'><body>hello from xmpp</body></message>"
        ))
        .await
        .unwrap();
    bob.expect(|l| l.starts_with(":alice!") && l.ends_with("PRIVMSG #test :hello from xmpp"))
        .await;
    let (_, echo) = read_until(&mut alice, |el| el.contains("hello from xmpp")).await;
    assert_eq!(
        attr(&echo, "from").as_deref(),
        Some(&*format!("{ROOM}/alice"))
    );

    // IRC → alice.
    bob.send("PRIVMSG #test :hello from irc").await;
    let (_, m) = read_until(&mut alice, |el| el.contains("hello from irc")).await;
    assert_eq!(attr(&m, "from").as_deref(), Some(&*format!("{ROOM}/bob")));
    assert_eq!(attr(&m, "type").as_deref(), Some("groupchat"));

    // /me both ways.
    alice
        .send(&format!(
            "<message type='groupchat' to='{ROOM}'><body>/me waves</body></message>"
        ))
        .await
        .unwrap();
    bob.expect(|l| l.ends_with("PRIVMSG #test :\x01ACTION waves\x01"))
        .await;
    bob.send("PRIVMSG #test :\x01ACTION nods\x01").await;
    let (_, m) = read_until(&mut alice, |el| el.contains("nods")).await;
    assert!(m.contains(">/me nods</body>"), "{m}");
    assert_eq!(attr(&m, "from").as_deref(), Some(&*format!("{ROOM}/bob")));

    // IRC formatting codes never reach the XML.
    bob.send("PRIVMSG #test :\x02bold\x02 \x0304red\x03 done")
        .await;
    let (_, m) = read_until(&mut alice, |el| el.contains("done")).await;
    assert!(m.contains(">bold red done</body>"), "{m}");

    // Latin-1 from IRC (not valid UTF-8) arrives as the same characters.
    bob.send_bytes(b"PRIVMSG #test :caf\xe9 cr\xe8me").await;
    let (_, m) = read_until(&mut alice, |el| el.contains("crème")).await;
    assert!(m.contains(">café crème</body>"), "{m}");

    // A body of several lines is several PRIVMSGs; a long one is split
    // into lines the server relays within 512 bytes, losing nothing.
    alice
        .send(&format!(
            "<message type='groupchat' to='{ROOM}'><body>line one\nline two</body></message>"
        ))
        .await
        .unwrap();
    bob.expect(|l| l.ends_with("PRIVMSG #test :line one")).await;
    bob.expect(|l| l.ends_with("PRIVMSG #test :line two")).await;
    let long: String = (0..300).map(|i| format!("w{i}é ")).collect();
    let long = long.trim_end().to_string();
    alice
        .send(&format!(
            "<message type='groupchat' to='{ROOM}'><body>{long}</body></message>"
        ))
        .await
        .unwrap();
    let mut got: Vec<String> = Vec::new();
    let mut lines = 0;
    while got.last().is_none_or(|w| w != "w299é") {
        let l = bob.expect(|l| l.contains("PRIVMSG #test :w")).await;
        assert!(l.len() + 2 <= 512, "{} bytes: {l}", l.len() + 2);
        lines += 1;
        let text = l.split_once("PRIVMSG #test :").unwrap().1;
        got.extend(text.split(' ').map(str::to_string));
    }
    assert!(lines > 1, "{lines} line(s)");
    assert_eq!(got.join(" "), long);

    // A subject from XMPP is the channel topic; the server's echo is the
    // new subject.
    alice
        .send(&format!(
            "<message type='groupchat' to='{ROOM}'><subject>new topic</subject></message>"
        ))
        .await
        .unwrap();
    bob.expect(|l| l.starts_with(":alice!") && l.ends_with("TOPIC #test :new topic"))
        .await;
    let (_, s) = read_until(&mut alice, |el| el.contains("<subject")).await;
    assert!(s.contains("new topic"), "{s}");
    assert_eq!(attr(&s, "from").as_deref(), Some(&*format!("{ROOM}/alice")));

    // A nick change on IRC: 303 with the new nick, then the new occupant.
    bob.send("NICK bobby").await;
    let (_, p) = read_until(&mut alice, |el| {
        el.contains(&format!(r#"from="{ROOM}/bob""#))
    })
    .await;
    assert!(
        p.contains("unavailable") && p.contains(r#"code="303""#),
        "{p}"
    );
    assert!(p.contains(r#"nick="bobby""#), "{p}");
    let (_, p) = read_until(&mut alice, |el| el.starts_with("<presence")).await;
    assert_eq!(attr(&p, "from").as_deref(), Some(&*format!("{ROOM}/bobby")));
    assert!(!p.contains("unavailable"), "{p}");

    // Leaving: alice gets her unavailable with 110, bob sees the PART.
    alice
        .send(&format!("<presence type='unavailable' to='{ROOM}/alice'/>"))
        .await
        .unwrap();
    let (_, gone) = read_until(&mut alice, |el| el.contains(r#"type="unavailable""#)).await;
    assert!(gone.contains(r#"code="110""#), "{gone}");
    bob.expect(|l| l.starts_with(":alice!") && l.contains("PART #test"))
        .await;
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dangerous_names_are_refused_and_never_reach_irc() {
    let ircd = Ngircd::start();
    let mut bob = IrcPeer::connect(ircd.port, "bob").await;
    bob.send("JOIN #test").await;
    bob.expect(|l| l.contains(" 366 ")).await;

    let server = server_with_irc(ircd.port);
    let mut alice = login(&server).await;
    alice
        .send(&format!("<presence to='{ROOM}/alice'/>"))
        .await
        .unwrap();
    read_until(&mut alice, |el| el.contains(r#"code="110""#)).await;
    bob.expect(|l| l.starts_with(":alice!") && l.contains("JOIN"))
        .await;

    alice
        .send("<presence to='#a,#b%127.0.0.1@irc.localhost/alice'/>")
        .await
        .unwrap();
    let (_, err) = read_until(&mut alice, |el| el.contains(r#"type="error""#)).await;
    assert!(err.contains("jid-malformed"), "{err}");
    assert_eq!(
        attr(&err, "from").as_deref(),
        Some("#a,#b%127.0.0.1@irc.localhost/alice")
    );

    // A server the transport does not allow: not-allowed, no connection.
    alice
        .send("<presence to='#x%irc.elsewhere.example@irc.localhost/alice'/>")
        .await
        .unwrap();
    let (_, err) = read_until(&mut alice, |el| el.contains(r#"type="error""#)).await;
    assert!(err.contains("not-allowed"), "{err}");

    // A marker after the refused join: once bob sees it, anything the
    // refused join had sent would have reached the server before it.
    alice
        .send(&format!(
            "<message type='groupchat' to='{ROOM}'><body>marker</body></message>"
        ))
        .await
        .unwrap();
    bob.expect(|l| l.ends_with("PRIVMSG #test :marker")).await;
    bob.send("WHOIS alice").await;
    let channels = bob
        .expect(|l| l.contains(" 319 ") || l.contains(" 318 "))
        .await;
    assert!(channels.contains(" 319 "), "{channels}");
    assert!(channels.contains("#test"), "{channels}");
    assert!(
        !channels.contains("#a") && !channels.contains("#b"),
        "{channels}"
    );
    drop(server);
}

async fn login_as(server: &TestServer, resource: &str) -> RawClient {
    RawClient::login(
        server.c2s(),
        server.tls_config(),
        "alice",
        "alice-pw",
        resource,
    )
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resources_share_one_connection_and_irc_departures_show() {
    let ircd = Ngircd::start();
    let mut bob = IrcPeer::connect(ircd.port, "bob").await;
    bob.send("JOIN #test").await;
    bob.expect(|l| l.contains(" 366 ")).await;

    let server = server_with_irc(ircd.port);
    let mut r1 = login_as(&server, "r1").await;
    let mut r2 = login_as(&server, "r2").await;
    r1.send(&format!("<presence to='{ROOM}/alice'/>"))
        .await
        .unwrap();
    read_until(&mut r1, |el| el.contains(r#"code="110""#)).await;
    bob.expect(|l| l.starts_with(":alice!") && l.contains("JOIN"))
        .await;

    // The second resource joins the room the connection is already in: it
    // gets the occupants, its own presence and the subject, and IRC sees
    // no second connection (which would have had to be alice_).
    r2.send(&format!("<presence to='{ROOM}/alice'/>"))
        .await
        .unwrap();
    let (before, own) = read_until(&mut r2, |el| el.contains(r#"code="110""#)).await;
    assert_eq!(
        attr(&own, "from").as_deref(),
        Some(&*format!("{ROOM}/alice"))
    );
    assert!(
        before
            .iter()
            .any(|el| el.contains(&format!(r#"from="{ROOM}/bob""#))),
        "{before:?}"
    );
    read_until(&mut r2, |el| el.contains("<subject")).await;

    // An IRC user joining shows in both resources.
    let mut carol = IrcPeer::connect(ircd.port, "carol").await;
    carol.send("JOIN #test").await;
    carol.expect(|l| l.contains(" 366 ")).await;
    for c in [&mut r1, &mut r2] {
        let (_, p) = read_until(c, |el| el.contains(&format!(r#"from="{ROOM}/carol""#))).await;
        assert!(
            p.starts_with("<presence") && !p.contains("unavailable"),
            "{p}"
        );
    }

    // A message from IRC reaches both; one from r2 is reflected to both.
    bob.send("PRIVMSG #test :to everyone").await;
    for c in [&mut r1, &mut r2] {
        read_until(c, |el| el.contains(">to everyone</body>")).await;
    }
    r2.send(&format!(
        "<message type='groupchat' to='{ROOM}'><body>from r2</body></message>"
    ))
    .await
    .unwrap();
    bob.expect(|l| l.ends_with("PRIVMSG #test :from r2")).await;
    for c in [&mut r1, &mut r2] {
        read_until(c, |el| el.contains(">from r2</body>")).await;
    }

    // Private messages both ways, as nick%server.
    bob.send("PRIVMSG alice :psst").await;
    let (_, m) = read_until(&mut r1, |el| el.contains(">psst</body>")).await;
    assert_eq!(
        attr(&m, "from").as_deref(),
        Some("bob%127.0.0.1@irc.localhost")
    );
    assert_eq!(attr(&m, "type").as_deref(), Some("chat"));
    r1.send("<message type='chat' to='bob%127.0.0.1@irc.localhost'><body>hi bob</body></message>")
        .await
        .unwrap();
    bob.expect(|l| l.starts_with(":alice!") && l.ends_with("PRIVMSG bob :hi bob"))
        .await;

    // KICK and QUIT on IRC: unavailable, with 307 for the kick.
    bob.send("KICK #test carol :behave").await;
    let (_, k) = read_until(&mut r1, |el| {
        el.contains(&format!(r#"from="{ROOM}/carol""#)) && el.contains("unavailable")
    })
    .await;
    assert!(k.contains(r#"code="307""#) && k.contains("behave"), "{k}");
    let mut dave = IrcPeer::connect(ircd.port, "dave").await;
    dave.send("JOIN #test").await;
    dave.expect(|l| l.contains(" 366 ")).await;
    read_until(&mut r1, |el| el.contains(&format!(r#"from="{ROOM}/dave""#))).await;
    dave.send("QUIT :gone fishing").await;
    let (_, q) = read_until(&mut r1, |el| {
        el.contains(&format!(r#"from="{ROOM}/dave""#)) && el.contains("unavailable")
    })
    .await;
    assert!(q.contains("gone fishing"), "{q}");

    // r1 goes offline without a word: the server's unavailable to the
    // room takes it out, but r2 is still in, so no PART. The server logs
    // the session's end after queueing it for alice's actor, which sends
    // the room that unavailable; r2's vCard get queues behind it in the
    // same actor, so the transport has the unavailable before r2's
    // message, and a PART would reach IRC before it.
    let r1_ended = ["session ended", "jid=alice@localhost/r1 "];
    r1.close().await;
    r1.read_to_close(WAIT).await.unwrap();
    drop(r1);
    server.wait_for_log(&r1_ended);
    r2.send("<iq type='get' id='after-r1'><vCard xmlns='vcard-temp'/></iq>")
        .await
        .unwrap();
    r2.read_id("after-r1", WAIT).await.unwrap();
    r2.send(&format!(
        "<message type='groupchat' to='{ROOM}'><body>still here</body></message>"
    ))
    .await
    .unwrap();
    bob.expect(|l| l.ends_with("PRIVMSG #test :still here"))
        .await;
    assert!(
        !bob.seen
            .iter()
            .any(|l| l.contains("PART") || l.contains("alice_")),
        "{:?}",
        bob.seen
    );
    // The last resource leaving parts the channel.
    r2.send(&format!("<presence type='unavailable' to='{ROOM}/alice'/>"))
        .await
        .unwrap();
    bob.expect(|l| l.starts_with(":alice!") && l.contains("PART #test"))
        .await;
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nick_clashes_refusals_and_unreachable_servers() {
    let ircd = Ngircd::start();
    // An IRC user already has the nick alice; bob runs an invite-only
    // channel.
    let mut other = IrcPeer::connect(ircd.port, "alice").await;
    other.send("JOIN #test").await;
    other.expect(|l| l.contains(" 366 ")).await;
    let mut bob = IrcPeer::connect(ircd.port, "bob").await;
    bob.send("JOIN #locked").await;
    bob.expect(|l| l.contains(" 366 ")).await;
    bob.send("MODE #locked +i").await;
    bob.expect(|l| l.contains("MODE #locked +i")).await;

    // A port where no IRC server listens, allowed under another name.
    let dead_port = free_port();
    let server = ServerBuilder::new()
        .also(&format!(
            r#"<service id="{IRC}" type="irc"><server host="127.0.0.1" port="{}" tls="false" allow-plain="true"/><server host="localhost" port="{dead_port}" tls="false" allow-plain="true"/></service>"#,
            ircd.port
        ))
        .user("alice@localhost", "alice-pw")
        .start();
    let mut alice = login(&server).await;

    // The nick is taken: conflict (XEP-0045 §7.2.9), not another nick.
    alice
        .send(&format!("<presence to='{ROOM}/alice'/>"))
        .await
        .unwrap();
    let (_, err) = read_until(&mut alice, |el| el.starts_with("<presence")).await;
    assert_eq!(attr(&err, "type").as_deref(), Some("error"), "{err}");
    assert_eq!(
        attr(&err, "from").as_deref(),
        Some(&*format!("{ROOM}/alice"))
    );
    assert!(err.contains("<conflict"), "{err}");
    // Another nick is in.
    alice
        .send(&format!("<presence to='{ROOM}/alice2'/>"))
        .await
        .unwrap();
    let (_, own) = read_until(&mut alice, |el| {
        el.contains(r#"code="110""#) || el.contains(r#"type="error""#)
    })
    .await;
    assert_eq!(
        attr(&own, "from").as_deref(),
        Some(&*format!("{ROOM}/alice2"))
    );
    assert!(!own.contains(r#"code="210""#), "{own}");
    let (before, _) = read_until(&mut alice, |el| el.contains("<subject")).await;
    assert!(before.is_empty(), "{before:?}");
    other
        .expect(|l| l.starts_with(":alice2!") && l.contains("JOIN"))
        .await;

    // Invite-only: the IRC refusal comes back as a presence error.
    alice
        .send("<presence to='#locked%127.0.0.1@irc.localhost/alice2'/>")
        .await
        .unwrap();
    let (_, err) = read_until(&mut alice, |el| el.contains(r#"type="error""#)).await;
    assert!(err.contains("registration-required"), "{err}");
    assert!(err.contains("#locked%127.0.0.1@irc.localhost"), "{err}");

    // An allowed server that cannot be reached.
    alice
        .send("<presence to='#x%localhost@irc.localhost/alice'/>")
        .await
        .unwrap();
    let (_, err) = read_until(&mut alice, |el| el.contains(r#"type="error""#)).await;
    assert!(err.contains("remote-server-not-found"), "{err}");
    assert_eq!(
        attr(&err, "from").as_deref(),
        Some("#x%localhost@irc.localhost/alice")
    );
    drop(server);
}

/// A `switchboard component` process, killed when dropped.
struct Component(Child);

impl Drop for Component {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_transport_runs_as_a_component_over_xep_0114() {
    const SECRET: &str = "irc-component-secret";
    let ircd = Ngircd::start();
    let mut bob = IrcPeer::connect(ircd.port, "bob").await;
    bob.send("JOIN #test").await;
    bob.expect(|l| l.contains(" 366 ")).await;

    let server = ServerBuilder::new()
        .config(r#"<listen><c2s addr="127.0.0.1:0"/><component addr="127.0.0.1:0"/></listen>"#)
        .also(&format!(
            r#"<service id="{IRC}" type="external" secret="{SECRET}"/>"#
        ))
        .user("alice@localhost", "alice-pw")
        .start();
    // The component's own home: its config holds the transport's settings.
    let home = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(home.path().join("etc")).unwrap();
    std::fs::write(
        home.path().join("etc").join("switchboard.xml"),
        ServerBuilder::new()
            .also(&format!(
                r#"<service id="{IRC}" type="irc"><server host="127.0.0.1" port="{}" tls="false" allow-plain="true"/></service>"#,
                ircd.port
            ))
            .config_xml(),
    )
    .unwrap();
    let _component = Component(
        Command::new(switchboard_integration_tests::server::binary())
            .arg("-H")
            .arg(home.path())
            .args(["component", IRC, "--server"])
            .arg(server.listener("component").to_string())
            .env("SWITCHBOARD_COMPONENT_SECRET", SECRET)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot run switchboard component"),
    );

    let mut alice = login(&server).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let id = alice.new_id("disco");
        alice
            .send(&format!(
                "<iq type='get' id='{id}' to='{IRC}'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>"
            ))
            .await
            .unwrap();
        let r = norm(&alice.read_id(&id, WAIT).await.unwrap());
        if attr(&r, "type").as_deref() == Some("result") {
            assert!(r.contains(r#"category="gateway""#), "{r}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the component never attached: {r}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    alice
        .send(&format!("<presence to='{ROOM}/alice'/>"))
        .await
        .unwrap();
    let (before, _) = read_until(&mut alice, |el| el.contains(r#"code="110""#)).await;
    assert!(
        before
            .iter()
            .any(|el| el.contains(&format!(r#"from="{ROOM}/bob""#))),
        "{before:?}"
    );
    bob.send("PRIVMSG #test :over the component").await;
    read_until(&mut alice, |el| el.contains(">over the component</body>")).await;
    alice
        .send(&format!(
            "<message type='groupchat' to='{ROOM}'><body>back through it</body></message>"
        ))
        .await
        .unwrap();
    bob.expect(|l| l.ends_with("PRIVMSG #test :back through it"))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_to_the_irc_server_with_a_private_ca() {
    // ngircd with TLS on its own port, under a certificate for localhost
    // that the transport trusts through ca-file=.
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let tls_port = free_port();
    let mut ca_path = PathBuf::new();
    let ircd = Ngircd::start_with(|dir| {
        std::fs::write(dir.join("cert.pem"), cert.cert.pem()).unwrap();
        std::fs::write(dir.join("key.pem"), cert.key_pair.serialize_pem()).unwrap();
        ca_path = dir.join("cert.pem");
        format!(
            "[SSL]\nCertFile = {}\nKeyFile = {}\nPorts = {tls_port}\n",
            dir.join("cert.pem").display(),
            dir.join("key.pem").display()
        )
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", tls_port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "ngircd did not listen for TLS: {}",
            ircd.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut bob = IrcPeer::connect(ircd.port, "bob").await;
    bob.send("JOIN #test").await;
    bob.expect(|l| l.contains(" 366 ")).await;

    let server = ServerBuilder::new()
        .also(&format!(
            r#"<service id="{IRC}" type="irc"><server host="localhost" port="{tls_port}" ca-file="{}"/></service>"#,
            ca_path.display()
        ))
        .user("alice@localhost", "alice-pw")
        .start();
    let mut alice = login(&server).await;
    let room = "#test%localhost@irc.localhost";
    alice
        .send(&format!("<presence to='{room}/alice'/>"))
        .await
        .unwrap();
    let (before, _) = read_until(&mut alice, |el| el.contains(r#"code="110""#)).await;
    assert!(
        before
            .iter()
            .any(|el| el.contains(&format!(r#"from="{room}/bob""#))),
        "{before:?}"
    );
    alice
        .send(&format!(
            "<message type='groupchat' to='{room}'><body>over tls</body></message>"
        ))
        .await
        .unwrap();
    bob.expect(|l| l.ends_with("PRIVMSG #test :over tls")).await;
    drop(server);

    // The same server without the CA: the certificate is not trusted and
    // the join fails; nothing is sent in clear instead.
    let server = ServerBuilder::new()
        .also(&format!(
            r#"<service id="{IRC}" type="irc"><server host="localhost" port="{tls_port}"/></service>"#
        ))
        .user("alice@localhost", "alice-pw")
        .start();
    let mut alice = login(&server).await;
    alice
        .send(&format!("<presence to='{room}/alice'/>"))
        .await
        .unwrap();
    let (_, err) = read_until(&mut alice, |el| el.contains(r#"type="error""#)).await;
    assert!(err.contains("remote-server-not-found"), "{err}");
    assert!(err.to_lowercase().contains("certificate"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changing_ones_nick_from_the_client() {
    let ircd = Ngircd::start();
    let mut bob = IrcPeer::connect(ircd.port, "bob").await;
    bob.send("JOIN #test").await;
    bob.expect(|l| l.contains(" 366 ")).await;

    let server = server_with_irc(ircd.port);
    let mut alice = login(&server).await;
    alice
        .send(&format!("<presence to='{ROOM}/alice'/>"))
        .await
        .unwrap();
    let (_, own) = read_until(&mut alice, |el| el.contains(r#"code="110""#)).await;
    // A non-anonymous room, as its disco#info says.
    assert!(own.contains(r#"code="100""#), "{own}");
    bob.expect(|l| l.starts_with(":alice!") && l.contains("JOIN"))
        .await;

    // XEP-0045 §7.6: a presence to the new occupant JID changes the nick;
    // IRC sees NICK, and the room sends 303 for the old nick and the new
    // self-presence.
    alice
        .send(&format!("<presence to='{ROOM}/alicia'/>"))
        .await
        .unwrap();
    bob.expect(|l| l.starts_with(":alice!") && l.contains("NICK") && l.ends_with("alicia"))
        .await;
    let (_, gone) = read_until(&mut alice, |el| el.contains(r#"code="303""#)).await;
    assert_eq!(
        attr(&gone, "from").as_deref(),
        Some(&*format!("{ROOM}/alice"))
    );
    assert!(gone.contains(r#"nick="alicia""#), "{gone}");
    assert!(gone.contains(r#"code="110""#), "{gone}");
    let (_, back) = read_until(&mut alice, |el| {
        el.starts_with("<presence") && !el.contains("unavailable")
    })
    .await;
    assert_eq!(
        attr(&back, "from").as_deref(),
        Some(&*format!("{ROOM}/alicia"))
    );
    assert!(back.contains(r#"code="110""#), "{back}");
    alice
        .send(&format!(
            "<message type='groupchat' to='{ROOM}'><body>renamed</body></message>"
        ))
        .await
        .unwrap();
    bob.expect(|l| l.starts_with(":alicia!") && l.ends_with("PRIVMSG #test :renamed"))
        .await;

    // A nick someone on IRC has: conflict, from the JID asked for, and
    // she keeps the nick she has.
    alice
        .send(&format!("<presence to='{ROOM}/bob'/>"))
        .await
        .unwrap();
    let (_, err) = read_until(&mut alice, |el| el.contains(r#"type="error""#)).await;
    assert!(err.contains("conflict"), "{err}");
    assert_eq!(attr(&err, "from").as_deref(), Some(&*format!("{ROOM}/bob")));
    alice
        .send(&format!(
            "<message type='groupchat' to='{ROOM}'><body>still alicia</body></message>"
        ))
        .await
        .unwrap();
    bob.expect(|l| l.starts_with(":alicia!") && l.ends_with("PRIVMSG #test :still alicia"))
        .await;
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_messages_without_joining_a_room() {
    let ircd = Ngircd::start();
    let mut bob = IrcPeer::connect(ircd.port, "bob").await;
    let server = server_with_irc(ircd.port);
    let mut alice = login(&server).await;
    let bob_jid = "bob%127.0.0.1@irc.localhost";

    // No room: the message opens alice's connection (nick from her JID)
    // and goes out after the welcome.
    alice
        .send(&format!(
            "<message type='chat' to='{bob_jid}'><body>hi, no room needed</body></message>"
        ))
        .await
        .unwrap();
    bob.expect(|l| l.starts_with(":alice!") && l.ends_with("PRIVMSG bob :hi, no room needed"))
        .await;
    bob.send("PRIVMSG alice :héllo back").await;
    let (_, reply) = read_until(&mut alice, |el| el.contains("héllo back")).await;
    assert!(reply.contains(r#"type="chat""#), "{reply}");
    assert!(
        attr(&reply, "from").is_some_and(|f| f.starts_with(bob_jid)),
        "{reply}"
    );

    // A nick nobody has: the IRC server says so, from its own JID.
    alice
        .send("<message type='chat' to='nobody%127.0.0.1@irc.localhost'><body>anyone?</body></message>")
        .await
        .unwrap();
    let (_, said) = read_until(&mut alice, |el| el.contains("nobody")).await;
    assert_eq!(
        attr(&said, "from").as_deref(),
        Some("127.0.0.1@irc.localhost"),
        "{said}"
    );

    // A server the transport does not allow: refused, nothing opened.
    alice
        .send("<message type='chat' to='carol%irc.elsewhere.example@irc.localhost'><body>x</body></message>")
        .await
        .unwrap();
    let (_, err) = read_until(&mut alice, |el| el.contains(r#"type="error""#)).await;
    assert!(err.contains("not-allowed"), "{err}");
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn muc_self_ping_tells_whether_one_is_still_in_the_room() {
    let ircd = Ngircd::start();
    let server = server_with_irc(ircd.port);
    let mut alice = login(&server).await;
    let ping = |id: &str| {
        format!("<iq type='get' id='{id}' to='{ROOM}/alice'><ping xmlns='urn:xmpp:ping'/></iq>")
    };

    // Not joined (no connection at all): not-acceptable, so a client
    // that believes it is in the room joins again (XEP-0410).
    let id = alice.new_id("ping");
    alice.send(&ping(&id)).await.unwrap();
    let r = norm(&alice.read_id(&id, WAIT).await.unwrap());
    assert!(r.contains("not-acceptable"), "{r}");

    alice
        .send(&format!("<presence to='{ROOM}/alice'/>"))
        .await
        .unwrap();
    read_until(&mut alice, |el| el.contains(r#"code="110""#)).await;
    let id = alice.new_id("ping");
    alice.send(&ping(&id)).await.unwrap();
    let r = norm(&alice.read_id(&id, WAIT).await.unwrap());
    assert_eq!(attr(&r, "type").as_deref(), Some("result"), "{r}");

    // The room says it answers self-pings itself.
    let id = alice.new_id("disco");
    alice
        .send(&format!(
            "<iq type='get' id='{id}' to='{ROOM}'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>"
        ))
        .await
        .unwrap();
    let r = norm(&alice.read_id(&id, WAIT).await.unwrap());
    assert!(r.contains("muc#self-ping-optimization"), "{r}");
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaving_and_joining_again_at_once_lands_in_the_room() {
    let ircd = Ngircd::start();
    let mut bob = IrcPeer::connect(ircd.port, "bob").await;
    bob.send("JOIN #test").await;
    bob.expect(|l| l.contains(" 366 ")).await;
    let server = server_with_irc(ircd.port);
    let mut alice = login(&server).await;
    for round in 0..3 {
        alice
            .send(&format!("<presence to='{ROOM}/alice'/>"))
            .await
            .unwrap();
        let (_, own) = read_until(&mut alice, |el| {
            el.contains(r#"code="110""#) || el.contains(r#"type="error""#)
        })
        .await;
        assert!(!own.contains(r#"type="error""#), "round {round}: {own}");
        // The last leave and the next join in one write: the join reaches
        // the connection as it quits, and must still end in the room.
        alice
            .send(&format!(
                "<presence type='unavailable' to='{ROOM}/alice'/><presence to='{ROOM}/alice'/>"
            ))
            .await
            .unwrap();
        read_until(&mut alice, |el| el.contains(r#"type="unavailable""#)).await;
        let (_, own) = read_until(&mut alice, |el| {
            (el.contains(r#"code="110""#) && !el.contains("unavailable"))
                || el.contains(r#"type="error""#)
        })
        .await;
        assert!(!own.contains(r#"type="error""#), "round {round}: {own}");
        alice
            .send(&format!(
                "<message type='groupchat' to='{ROOM}'><body>round {round}</body></message>"
            ))
            .await
            .unwrap();
        bob.expect(|l| l.ends_with(&format!("PRIVMSG #test :round {round}")))
            .await;
        alice
            .send(&format!("<presence type='unavailable' to='{ROOM}/alice'/>"))
            .await
            .unwrap();
        read_until(&mut alice, |el| el.contains(r#"type="unavailable""#)).await;
        bob.expect(|l| l.starts_with(":alice!") && (l.contains(" PART ") || l.contains(" QUIT ")))
            .await;
    }
    drop(server);
}

/// Reads until a presence from `from` (exactly) that `pred` accepts.
async fn presence_from(c: &mut RawClient, from: &str, pred: impl Fn(&str) -> bool) -> String {
    let (_, p) = read_until(c, |el| {
        el.starts_with("<presence") && attr(el, "from").as_deref() == Some(from) && pred(el)
    })
    .await;
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_approves_subscriptions_and_tells_its_version() {
    // No IRC server is needed: the gateway answers for itself.
    let server = server_with_irc(free_port());
    let mut alice = login(&server).await;
    alice
        .send("<iq type='get' id='roster'><query xmlns='jabber:iq:roster'/></iq><presence/>")
        .await
        .unwrap();
    alice.read_id("roster", WAIT).await.unwrap();

    // XEP-0100 §4.1: the gateway approves the request and asks back.
    alice
        .send(&format!("<presence to='{IRC}' type='subscribe'/>"))
        .await
        .unwrap();
    presence_from(&mut alice, IRC, |p| p.contains(r#"type="subscribed""#)).await;
    presence_from(&mut alice, IRC, |p| p.contains(r#"type="subscribe""#)).await;
    // Approved in turn: the gateway shows itself available.
    alice
        .send(&format!("<presence to='{IRC}' type='subscribed'/>"))
        .await
        .unwrap();
    let p = presence_from(&mut alice, IRC, |p| !p.contains("type=")).await;
    assert!(!p.contains("error"), "{p}");

    // jabber:iq:version, announced in disco#info.
    alice
        .send(&format!(
            "<iq type='get' id='d1' to='{IRC}'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>"
        ))
        .await
        .unwrap();
    let info = norm(&alice.read_id("d1", WAIT).await.unwrap());
    assert!(info.contains(r#"var="jabber:iq:version""#), "{info}");
    alice
        .send(&format!(
            "<iq type='get' id='v1' to='{IRC}'><query xmlns='jabber:iq:version'/></iq>"
        ))
        .await
        .unwrap();
    let v = norm(&alice.read_id("v1", WAIT).await.unwrap());
    assert_eq!(attr(&v, "type").as_deref(), Some("result"), "{v}");
    assert!(v.contains("<name>Switchboard IRC gateway</name>"), "{v}");
    assert!(v.contains("<version>"), "{v}");
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_moderators_kick_through_muc_admin_is_irc_kick() {
    let ircd = Ngircd::start();
    let mut bob = IrcPeer::connect(ircd.port, "bob").await;
    bob.send("JOIN #test").await;
    bob.expect(|l| l.contains(" 366 ")).await;
    let mut carol = IrcPeer::connect(ircd.port, "carol").await;
    carol.send("JOIN #test").await;
    carol.expect(|l| l.contains(" 366 ")).await;
    let server = server_with_irc(ircd.port);
    let mut alice = login(&server).await;
    let (_, own) = join_room(&mut alice, ROOM, "alice").await;
    assert!(!own.contains(r#"type="error""#), "{own}");
    let kick = |id: &str| {
        format!(
            "<iq type='set' id='{id}' to='{ROOM}'><query xmlns='http://jabber.org/protocol/muc#admin'>\
             <item nick='carol' role='none'><reason>off you go</reason></item></query></iq>"
        )
    };

    // Not a channel operator: IRC refuses, the client hears forbidden.
    alice.send(&kick("k1")).await.unwrap();
    let r = norm(&alice.read_id("k1", WAIT).await.unwrap());
    assert_eq!(attr(&r, "type").as_deref(), Some("error"), "{r}");
    assert!(r.contains("<forbidden"), "{r}");

    // Made an operator (a moderator in the room), the kick goes through.
    bob.send("MODE #test +o alice").await;
    presence_from(&mut alice, &format!("{ROOM}/alice"), |p| {
        p.contains(r#"role="moderator""#)
    })
    .await;
    alice.send(&kick("k2")).await.unwrap();
    carol
        .expect(|l| l.starts_with(":alice!") && l.ends_with("KICK #test carol :off you go"))
        .await;
    let (before, r) = read_until(&mut alice, |el| attr(el, "id").as_deref() == Some("k2")).await;
    assert_eq!(attr(&r, "type").as_deref(), Some("result"), "{r}");
    let gone = before
        .iter()
        .chain(std::iter::once(&r))
        .find(|el| attr(el, "from").as_deref() == Some(&*format!("{ROOM}/carol")))
        .cloned();
    let gone = match gone {
        Some(g) => g,
        None => presence_from(&mut alice, &format!("{ROOM}/carol"), |_| true).await,
    };
    assert!(
        gone.contains(r#"type="unavailable""#) && gone.contains(r#"code="307""#),
        "{gone}"
    );

    // Only kicks are offered.
    alice
        .send(&format!(
            "<iq type='set' id='k3' to='{ROOM}'><query xmlns='http://jabber.org/protocol/muc#admin'>\
             <item nick='bob' role='visitor'/></query></iq>"
        ))
        .await
        .unwrap();
    let r = norm(&alice.read_id("k3", WAIT).await.unwrap());
    assert!(r.contains("feature-not-implemented"), "{r}");
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_message_to_an_occupant_reaches_irc_and_the_answer_comes_back_there() {
    let ircd = Ngircd::start();
    let mut bob = IrcPeer::connect(ircd.port, "bob").await;
    bob.send("JOIN #test").await;
    bob.expect(|l| l.contains(" 366 ")).await;
    let server = server_with_irc(ircd.port);
    let mut alice = login(&server).await;
    let (_, own) = join_room(&mut alice, ROOM, "alice").await;
    assert!(!own.contains(r#"type="error""#), "{own}");
    alice
        .send(&format!(
            "<message type='chat' to='{ROOM}/bob'><body>psst, bob</body></message>"
        ))
        .await
        .unwrap();
    bob.expect(|l| l.starts_with(":alice!") && l.ends_with("PRIVMSG bob :psst, bob"))
        .await;
    bob.send("PRIVMSG alice :what is it?").await;
    let (_, m) = read_until(&mut alice, |el| el.contains("what is it?")).await;
    assert_eq!(
        attr(&m, "from").as_deref(),
        Some(&*format!("{ROOM}/bob")),
        "{m}"
    );
    assert_eq!(attr(&m, "type").as_deref(), Some("chat"), "{m}");
    // An occupant JID of a room one is not in: refused.
    alice
        .send(
            "<message type='chat' to='#other%127.0.0.1@irc.localhost/bob'><body>x</body></message>",
        )
        .await
        .unwrap();
    let (_, err) = read_until(&mut alice, |el| el.contains(r#"type="error""#)).await;
    assert!(err.contains("not-acceptable"), "{err}");
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_password_is_sent_as_the_channel_key() {
    let ircd = Ngircd::start();
    let mut bob = IrcPeer::connect(ircd.port, "bob").await;
    bob.send("JOIN #keyed").await;
    bob.expect(|l| l.contains(" 366 ")).await;
    bob.send("MODE #keyed +k sekrit").await;
    bob.expect(|l| l.contains("MODE #keyed +k")).await;
    let server = server_with_irc(ircd.port);
    let mut alice = login(&server).await;
    let keyed = "#keyed%127.0.0.1@irc.localhost";

    // Without the password: not-authorized (XEP-0045 §7.2.6).
    let (_, err) = join_room(&mut alice, keyed, "alice").await;
    assert_eq!(attr(&err, "type").as_deref(), Some("error"), "{err}");
    assert!(err.contains("not-authorized"), "{err}");

    // With it: in.
    alice
        .send(&format!(
            "<presence to='{keyed}/alice'><x xmlns='http://jabber.org/protocol/muc'>\
             <password>sekrit</password></x></presence>"
        ))
        .await
        .unwrap();
    let (_, own) = read_until(&mut alice, |el| {
        el.starts_with("<presence")
            && (el.contains(r#"code="110""#) || el.contains(r#"type="error""#))
    })
    .await;
    assert!(!own.contains(r#"type="error""#), "{own}");
    bob.expect(|l| l.starts_with(":alice!") && l.contains("JOIN") && l.contains("#keyed"))
        .await;
    drop(server);
}
