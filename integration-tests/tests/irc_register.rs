//! Users' IRC settings end to end: registered with the IRC transport
//! (XEP-0077 legacy fields and data form, the XEP-0050 Configure command),
//! kept sealed on disk, used when the connection signs on to a real ngircd
//! (the registered nick, username and real name; the server password as
//! `PASS` to an ngircd that demands one), never shown back, never in the
//! `-D` log, and gone after `<remove/>`.
//!
//! SASL and NickServ against real services (inspircd with atheme) are in
//! `peers/irc_sasl.sh`; here ngircd, which has neither, shows that asking
//! for them does not stop the user from signing on.
//!
//! ngircd must be installed (`apt-get install ngircd`; `./test` does it as root).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use switchboard_integration_tests::irc::{join_room, norm, read_until, IrcPeer, Ngircd};
use switchboard_integration_tests::raw::attr;
use switchboard_integration_tests::{RawClient, ServerBuilder, TestServer, WAIT};

const IRC: &str = "irc.localhost";
const SERVER_JID: &str = "127.0.0.1@irc.localhost";
const ROOM: &str = "#test%127.0.0.1@irc.localhost";

/// ngircd's global password: it must reach ngircd and no log or file.
const SERVER_PW: &str = "Srv-Pa55-do-not-log";
const SASL_PW: &str = "Sasl-Pa55-do-not-log";
const NICKSERV_PW: &str = "NickServ-Pa55-do-not-log";

fn server_with_irc(port: u16) -> TestServer {
    ServerBuilder::new()
        .also(&format!(
            r#"<service id="{IRC}" type="irc"><server host="127.0.0.1" port="{port}" tls="false" allow-plain="true"/></service>"#
        ))
        .user("alice@localhost", "alice-pw")
        .debug()
        .start()
}

async fn login(server: &TestServer) -> RawClient {
    RawClient::login(server.c2s(), server.tls_config(), "alice", "alice-pw", "r")
        .await
        .unwrap()
}

/// Sends an IQ (`@ID@` in `body` becomes its id) and returns the answer.
async fn iq(c: &mut RawClient, body: &str) -> String {
    let id = c.new_id("iq");
    c.send(&body.replace("@ID@", &id)).await.unwrap();
    norm(&c.read_id(&id, WAIT).await.unwrap())
}

/// The sealed registration files of the server 127.0.0.1.
fn registration_files(home: &Path) -> Vec<PathBuf> {
    let dir = home.join("spool").join(IRC).join("registrations/127.0.0.1");
    match std::fs::read_dir(&dir) {
        Ok(entries) => entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "xml"))
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// Joins the room as `nick` and returns the self-presence (status 110),
/// or the error presence.
async fn join(alice: &mut RawClient, nick: &str) -> String {
    join_seeing(alice, nick).await.1
}

/// [`join`], with what came before the self-presence.
async fn join_seeing(alice: &mut RawClient, nick: &str) -> (Vec<String>, String) {
    join_room(alice, ROOM, nick).await
}

/// Leaves the room and waits until the IRC connection is gone (`bob` no
/// longer finds `nick`), so that the next join opens a new connection,
/// which reads the settings again.
async fn leave(alice: &mut RawClient, bob: &mut IrcPeer, nick: &str) {
    alice
        .send(&format!(
            "<presence type='unavailable' to='{ROOM}/{nick}'/>"
        ))
        .await
        .unwrap();
    read_until(alice, |el| {
        el.starts_with("<presence") && el.contains("unavailable") && el.contains(r#"code="110""#)
    })
    .await;
    for _ in 0..50 {
        bob.send(&format!("WHOIS {nick}")).await;
        let l = bob
            .expect(|l| l.contains(" 311 ") || l.contains(" 401 "))
            .await;
        if l.contains(" 401 ") {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("{nick} is still on IRC after leaving");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_are_registered_used_on_irc_and_removed() {
    let ircd = Ngircd::start_with(|_| format!("[Global]\nPassword = {SERVER_PW}\n"));
    let mut bob = IrcPeer::connect_with_password(ircd.port, "bob", Some(SERVER_PW)).await;
    let server = server_with_irc(ircd.port);
    let mut alice = login(&server).await;

    // Without the server password, ngircd refuses the connection: the
    // join fails.
    let refused = join(&mut alice, "alice").await;
    assert!(refused.contains(r#"type="error""#), "{refused}");

    // The server's JID says where settings go.
    let info = iq(
        &mut alice,
        &format!("<iq type='get' id='@ID@' to='{SERVER_JID}'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>"),
    )
    .await;
    assert!(info.contains("jabber:iq:register"), "{info}");
    assert!(
        info.contains("http://jabber.org/protocol/commands"),
        "{info}"
    );

    // The registration form, legacy fields included, for a newcomer.
    let form = iq(
        &mut alice,
        &format!(
            "<iq type='get' id='@ID@' to='{SERVER_JID}'><query xmlns='jabber:iq:register'/></iq>"
        ),
    )
    .await;
    assert!(!form.contains("<registered"), "{form}");
    for field in [
        "<nick/>",
        "<username/>",
        "<name/>",
        "<password/>",
        r#"var="sasl_password""#,
        r#"var="nickserv_password""#,
    ] {
        assert!(form.contains(field), "{field} missing: {form}");
    }

    // Legacy fields: nick, username, real name and the server password.
    let set = iq(
        &mut alice,
        &format!(
            "<iq type='set' id='@ID@' to='{SERVER_JID}'><query xmlns='jabber:iq:register'>\
             <nick>alicia</nick><username>aliceu</username><name>Alice Liddell</name>\
             <password>{SERVER_PW}</password></query></iq>"
        ),
    )
    .await;
    assert!(set.contains(r#"type="result""#), "{set}");

    // A get shows the values, never the password.
    let got = iq(
        &mut alice,
        &format!(
            "<iq type='get' id='@ID@' to='{SERVER_JID}'><query xmlns='jabber:iq:register'/></iq>"
        ),
    )
    .await;
    assert!(got.contains("<registered/>"), "{got}");
    assert!(got.contains("<nick>alicia</nick>"), "{got}");
    assert!(got.contains("<name>Alice Liddell</name>"), "{got}");
    assert!(got.contains("<password/>"), "{got}");
    assert!(!got.contains(SERVER_PW), "{got}");

    // Sealed on disk, owner-only.
    let files = registration_files(server.home());
    assert_eq!(files.len(), 1, "{files:?}");
    let meta = std::fs::metadata(&files[0]).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let text = String::from_utf8_lossy(&std::fs::read(&files[0]).unwrap()).into_owned();
    assert!(text.contains("<sealed"), "{text}");
    assert!(
        !text.contains(SERVER_PW) && !text.contains("alicia"),
        "{text}"
    );

    // The join now signs on with PASS, and the registered nick: the
    // self-presence is alicia's, with 210 (the nick was changed).
    let own = join(&mut alice, "alice").await;
    assert_eq!(
        attr(&own, "from").as_deref(),
        Some(&*format!("{ROOM}/alicia")),
        "{own}"
    );
    assert!(own.contains(r#"code="210""#), "{own}");
    bob.send("WHOIS alicia").await;
    let whois = bob.expect(|l| l.contains(" 311 ")).await;
    assert!(
        whois.contains("aliceu") && whois.ends_with(":Alice Liddell"),
        "{whois}"
    );
    leave(&mut alice, &mut bob, "alicia").await;

    // The data form at the transport's own JID (it has one server): a new
    // nick, the password left empty keeps the stored one, and SASL and
    // NickServ settings that ngircd cannot use.
    let set = iq(
        &mut alice,
        &format!(
            "<iq type='set' id='@ID@' to='{IRC}'><query xmlns='jabber:iq:register'>\
             <x xmlns='jabber:x:data' type='submit'>\
             <field var='FORM_TYPE'><value>jabber:iq:register</value></field>\
             <field var='nick'><value>alicef</value></field>\
             <field var='name'><value>Alice Form</value></field>\
             <field var='password'><value/></field>\
             <field var='sasl_account'><value>alicef</value></field>\
             <field var='sasl_password'><value>{SASL_PW}</value></field>\
             <field var='nickserv_password'><value>{NICKSERV_PW}</value></field>\
             </x></query></iq>"
        ),
    )
    .await;
    assert!(set.contains(r#"type="result""#), "{set}");
    let (before, own) = join_seeing(&mut alice, "alice").await;
    assert_eq!(
        attr(&own, "from").as_deref(),
        Some(&*format!("{ROOM}/alicef")),
        "{own}"
    );
    // ngircd offers no SASL: the user is told, from the server's JID, and
    // is signed on all the same.
    assert!(
        before.iter().any(|el| el.starts_with("<message")
            && attr(el, "from").as_deref() == Some(SERVER_JID)
            && el.contains("SASL")),
        "no word about SASL from {SERVER_JID}: {before:?}"
    );
    bob.send("WHOIS alicef").await;
    let whois = bob.expect(|l| l.contains(" 311 ")).await;
    assert!(whois.ends_with(":Alice Form"), "{whois}");
    leave(&mut alice, &mut bob, "alicef").await;

    // The Configure command at the server's JID: the form shows values,
    // not passwords; a submission is stored.
    let first = iq(
        &mut alice,
        &format!(
            "<iq type='set' id='@ID@' to='{SERVER_JID}'><command xmlns='http://jabber.org/protocol/commands' node='configure' action='execute'/></iq>"
        ),
    )
    .await;
    assert!(first.contains(r#"status="executing""#), "{first}");
    assert!(first.contains("alicef"), "{first}");
    assert!(
        !first.contains(SERVER_PW) && !first.contains(SASL_PW) && !first.contains(NICKSERV_PW),
        "{first}"
    );
    let session = attr(&first[first.find("<command").unwrap()..], "sessionid").unwrap();
    let done = iq(
        &mut alice,
        &format!(
            "<iq type='set' id='@ID@' to='{SERVER_JID}'><command xmlns='http://jabber.org/protocol/commands' node='configure' sessionid='{session}' action='complete'>\
             <x xmlns='jabber:x:data' type='submit'>\
             <field var='FORM_TYPE'><value>jabber:iq:register</value></field>\
             <field var='nick'><value>alicec</value></field>\
             </x></command></iq>"
        ),
    )
    .await;
    assert!(done.contains(r#"status="completed""#), "{done}");
    let own = join(&mut alice, "alice").await;
    assert_eq!(
        attr(&own, "from").as_deref(),
        Some(&*format!("{ROOM}/alicec")),
        "{own}"
    );
    leave(&mut alice, &mut bob, "alicec").await;

    // <remove/>: the settings and the file are gone; without the server
    // password the join fails again.
    let removed = iq(
        &mut alice,
        &format!("<iq type='set' id='@ID@' to='{SERVER_JID}'><query xmlns='jabber:iq:register'><remove/></query></iq>"),
    )
    .await;
    assert!(removed.contains(r#"type="result""#), "{removed}");
    assert!(registration_files(server.home()).is_empty());
    let got = iq(
        &mut alice,
        &format!(
            "<iq type='get' id='@ID@' to='{SERVER_JID}'><query xmlns='jabber:iq:register'/></iq>"
        ),
    )
    .await;
    assert!(!got.contains("<registered"), "{got}");
    let refused = join(&mut alice, "alice").await;
    assert!(refused.contains(r#"type="error""#), "{refused}");

    // No password reached the log, even at -D, where the IRC lines are
    // logged masked.
    let log = server.log_text() + &server.stderr_text();
    assert!(
        log.contains("PASS ***"),
        "the -D log should show the masked PASS"
    );
    assert!(
        log.contains("PRIVMSG NickServ ***"),
        "the -D log should show the masked IDENTIFY"
    );
    for secret in [SERVER_PW, SASL_PW, NICKSERV_PW] {
        assert!(!log.contains(secret), "{secret} is in the log");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_at_a_server_that_is_not_allowed_are_refused() {
    let ircd = Ngircd::start();
    let server = server_with_irc(ircd.port);
    let mut alice = login(&server).await;
    let r = iq(
        &mut alice,
        "<iq type='set' id='@ID@' to='irc.evil.net@irc.localhost'><query xmlns='jabber:iq:register'>\
         <nick>alicia</nick></query></iq>",
    )
    .await;
    assert!(r.contains("not-allowed"), "{r}");
    // A nick IRC would misread is refused, and nothing is stored.
    let r = iq(
        &mut alice,
        &format!("<iq type='set' id='@ID@' to='{SERVER_JID}'><query xmlns='jabber:iq:register'><nick>a b</nick></query></iq>"),
    )
    .await;
    assert!(r.contains("not-acceptable"), "{r}");
    assert!(registration_files(server.home()).is_empty());
    let r = iq(
        &mut alice,
        &format!("<iq type='set' id='@ID@' to='{SERVER_JID}'><query xmlns='jabber:iq:register'><remove/></query></iq>"),
    )
    .await;
    assert!(r.contains("registration-required"), "{r}");
}
