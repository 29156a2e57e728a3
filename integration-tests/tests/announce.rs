//! Announcements and admin commands against the real binary:
//!
//! * `HOST/announce/online` and the message of the day
//!   (`HOST/announce/motd`, `…/motd/update`, `…/motd/delete`) sent by an
//!   admin from a client, what online and offline users get and when, and
//!   the MOTD after a restart;
//! * a non-admin's announcement refused with `forbidden`;
//! * a message to the bare server JID forwarded to the admins, and admins
//!   told of in-band registrations;
//! * `switchboard users online`, `announce` and `kick` through the admin
//!   socket, its permissions, and its absence when the server is down;
//! * SIGHUP in the middle of a chat logs nobody off.
//!
//! "Did not arrive" is always a barrier of the shared [`Client`]: a
//! client's ping answer comes after everything the router queued for it
//! before, and an answer from its account's actor after everything the
//! actor did before (the MOTD at login, for one). Every stanza a client
//! gets must be expected; no test waits a fixed time for nothing to come.

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use switchboard_integration_tests::raw::{attr, local_name};
use switchboard_integration_tests::{Client, RawClient, ServerBuilder, TestServer, HOST, WAIT};

const ADMIN_HOST: &str =
    "<host name=\"localhost\"><admin>admin@localhost</admin><registration>open</registration></host>";

fn password(user: &str) -> String {
    format!("{user}-pw")
}

/// A server whose admin is admin@localhost, with `users` (and admin).
fn start(users: &[&str]) -> TestServer {
    builder(users).start()
}

fn builder(users: &[&str]) -> ServerBuilder {
    users
        .iter()
        .chain(&["admin"])
        .fold(ServerBuilder::new().config(ADMIN_HOST), |b, u| {
            b.user(&format!("{u}@{HOST}"), &password(u))
        })
}

/// Logs in, binds `resource` and sends initial presence with `priority`;
/// returns once the server has shown it back and the account's actor has
/// finished the login (its message of the day included, left unread).
async fn online(server: &TestServer, user: &str, resource: &str, priority: i8) -> Client {
    let mut c = Client::online(server, user, &password(user), resource, priority).await;
    c.sync_account().await;
    c
}

/// Consumes the messages already arrived (after a sync or a barrier:
/// everything sent before it).
fn messages(c: &mut Client) -> Vec<String> {
    c.take_all(|e| local_name(e) == "message")
}

/// Sends a message from `c` to `to`.
async fn message(c: &mut Client, to: &str, subject: Option<&str>, body: &str) {
    let subject = subject
        .map(|s| format!("<subject>{s}</subject>"))
        .unwrap_or_default();
    let id = c.new_id("m");
    c.send(&format!(
        "<message to='{to}' id='{id}'>{subject}<body>{body}</body></message>"
    ))
    .await;
}

fn body_of(m: &str) -> Option<String> {
    let start = m.find("<body")?;
    let open_end = start + m[start..].find('>')?;
    let end = m[open_end..].find("</body>")? + open_end;
    Some(m[open_end + 1..end].to_string())
}

fn from_host_with_body(body: &str) -> impl Fn(&str) -> bool + '_ {
    move |e: &str| {
        local_name(e) == "message"
            && attr(e, "from").as_deref() == Some(HOST)
            && body_of(e).as_deref() == Some(body)
    }
}

fn bodies(msgs: &[String]) -> Vec<String> {
    msgs.iter().filter_map(|m| body_of(m)).collect()
}

fn is_error_with(condition: &'static str) -> impl Fn(&str) -> bool {
    move |e: &str| {
        local_name(e) == "message"
            && attr(e, "type").as_deref() == Some("error")
            && e.contains(&format!("<{condition} "))
    }
}

#[tokio::test]
async fn announce_online_reaches_the_online_users_and_not_an_offline_one() {
    let server = start(&["alice", "bob", "carol"]);
    let mut alice = online(&server, "alice", "desk", 0).await;
    let mut bob = online(&server, "bob", "phone", 5).await;
    let mut admin = online(&server, "admin", "console", 0).await;

    message(
        &mut admin,
        "localhost/announce/online",
        Some("Maintenance"),
        "Down at 22:00 for ten minutes.",
    )
    .await;
    for c in [&mut alice, &mut bob, &mut admin] {
        let m = c
            .expect(
                "the announcement",
                from_host_with_body("Down at 22:00 for ten minutes."),
            )
            .await;
        assert_eq!(attr(&m, "type").as_deref(), Some("normal"), "{m}");
        assert!(m.contains("<subject>Maintenance</subject>"), "{m}");
        assert_eq!(attr(&m, "to").as_deref(), Some(c.jid()), "{m}");
        c.barrier().await;
    }
    // The admin's own delivery proves the router is done with it; carol,
    // offline then, gets nothing when she comes (it is not stored).
    let mut carol = online(&server, "carol", "c", 0).await;
    carol.barrier().await;
}

#[tokio::test]
async fn a_non_admin_gets_forbidden_and_nobody_receives_anything() {
    let server = start(&["alice", "bob", "carol"]);
    let mut alice = online(&server, "alice", "a", 0).await;
    let mut bob = online(&server, "bob", "b", 0).await;
    for to in ["online", "motd", "motd/update", "motd/delete"] {
        message(
            &mut alice,
            &format!("localhost/announce/{to}"),
            None,
            "I am not the admin",
        )
        .await;
        let err = alice
            .expect(
                &format!("forbidden for announce/{to}"),
                is_error_with("forbidden"),
            )
            .await;
        assert_eq!(
            attr(&err, "from").as_deref(),
            Some(&*format!("localhost/announce/{to}"))
        );
    }
    // The refusals happened in the router before anything was sent or
    // queued: bob's barriers and a fresh login see nothing.
    bob.barrier().await;
    bob.account_barrier().await;
    alice.barrier().await;
    let mut carol = online(&server, "carol", "c", 0).await;
    carol.barrier().await;
}

#[tokio::test]
async fn the_motd_reaches_online_users_now_and_an_offline_user_once_at_next_login() {
    let server = start(&["alice", "bob"]);
    let mut alice = online(&server, "alice", "a", 0).await;
    let mut admin = online(&server, "admin", "console", 0).await;
    message(
        &mut admin,
        "localhost/announce/motd",
        Some("Welcome"),
        "Lunch is at noon.",
    )
    .await;
    for c in [&mut alice, &mut admin] {
        let m = c
            .expect("the MOTD, now", from_host_with_body("Lunch is at noon."))
            .await;
        assert!(m.contains("<subject>Welcome</subject>"), "{m}");
        assert!(!m.contains("urn:xmpp:delay"), "shown live: {m}");
        c.account_barrier().await;
    }

    // bob was away: he gets it after his initial presence, with the time
    // it was set.
    let mut bob = online(&server, "bob", "first", 0).await;
    let got = messages(&mut bob);
    assert_eq!(bodies(&got), ["Lunch is at noon."], "{got:?}");
    assert!(got[0].contains("urn:xmpp:delay"), "{}", got[0]);
    assert_eq!(attr(&got[0], "type").as_deref(), Some("normal"));
    bob.barrier().await;
    bob.close(&server).await;

    // Exactly once: not at the login after that.
    let mut bob = online(&server, "bob", "second", 0).await;
    bob.barrier().await;
    // Nor again for alice, who saw it live.
    alice.close(&server).await;
    let mut alice = online(&server, "alice", "again", 0).await;
    alice.barrier().await;
}

#[tokio::test]
async fn a_motd_update_reaches_only_those_who_had_not_seen_it() {
    let server = start(&["alice", "bob", "dave"]);
    let mut alice = online(&server, "alice", "a", 0).await;
    // dave is online, but with a negative priority: the MOTD is not for
    // such a session (as in jabberd), so he has not seen it.
    let mut dave = online(&server, "dave", "d", -1).await;
    let mut admin = online(&server, "admin", "console", 0).await;
    message(&mut admin, "localhost/announce/motd", None, "Version one.").await;
    alice
        .expect("v1", from_host_with_body("Version one."))
        .await;
    admin
        .expect("v1", from_host_with_body("Version one."))
        .await;
    // Every online account's actor was handed the MOTD at once, before
    // alice's and the admin's showed it; dave's barrier comes after his.
    dave.account_barrier().await;

    // dave becomes available for messages; then the admin corrects the
    // text. dave (online, had not seen it) gets it now; alice and the
    // admin, who had, do not.
    dave.available(1, "").await;
    dave.account_barrier().await;
    message(
        &mut admin,
        "localhost/announce/motd/update",
        None,
        "Version one, corrected.",
    )
    .await;
    dave.expect("the update", from_host_with_body("Version one, corrected."))
        .await;
    // The update was handed to every online account's actor at once; their
    // barriers come after it.
    for c in [&mut alice, &mut admin, &mut dave] {
        c.account_barrier().await;
    }

    // bob, away all along, gets the corrected text at login, once.
    let mut bob = online(&server, "bob", "b", 0).await;
    assert_eq!(bodies(&messages(&mut bob)), ["Version one, corrected."]);
    bob.barrier().await;
    bob.close(&server).await;
    let mut bob = online(&server, "bob", "b2", 0).await;
    bob.barrier().await;
}

/// Waits (bounded) until the host's spool file satisfies `pred`.
fn wait_for_host_file(server: &TestServer, pred: impl Fn(&str) -> bool) -> String {
    let path = server.home().join("spool").join(HOST).join("+host.xml");
    let deadline = Instant::now() + WAIT;
    loop {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        if pred(&text) || Instant::now() > deadline {
            return text;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test]
async fn a_deleted_motd_is_no_longer_delivered() {
    let server = start(&["bob"]);
    let mut admin = online(&server, "admin", "console", 0).await;
    message(&mut admin, "localhost/announce/motd", None, "Soon gone.").await;
    admin
        .expect("the MOTD", from_host_with_body("Soon gone."))
        .await;
    message(&mut admin, "localhost/announce/motd/delete", None, "").await;
    // A delete is silent; the spool shows when it is done.
    let text = wait_for_host_file(&server, |t| !t.contains("Soon gone."));
    assert!(!text.contains("Soon gone."), "{text}");
    admin.barrier().await;
    let mut bob = online(&server, "bob", "b", 0).await;
    bob.barrier().await;
}

#[tokio::test]
async fn the_motd_survives_a_restart() {
    let home = tempfile::tempdir().unwrap();
    let mut first = builder(&["bob"]).home(home.path()).start();
    let mut admin = online(&first, "admin", "console", 0).await;
    message(
        &mut admin,
        "localhost/announce/motd",
        Some("Policy"),
        "Change your password.",
    )
    .await;
    // Shown to the admin only after it was stored (fsynced).
    admin
        .expect("the MOTD", from_host_with_body("Change your password."))
        .await;
    admin.barrier().await;
    admin.close(&first).await;
    assert!(first.terminate().success());

    let second = ServerBuilder::new()
        .config(ADMIN_HOST)
        .home(home.path())
        .start();
    let mut bob = online(&second, "bob", "b", 0).await;
    let got = messages(&mut bob);
    assert_eq!(bodies(&got), ["Change your password."], "{got:?}");
    assert!(got[0].contains("<subject>Policy</subject>"));
    bob.barrier().await;
    // The admin saw it before the restart, and that was remembered too.
    let mut admin = online(&second, "admin", "again", 0).await;
    admin.barrier().await;
}

#[tokio::test]
async fn a_message_to_the_server_reaches_the_admins() {
    let server = start(&["alice"]);
    let mut alice = online(&server, "alice", "laptop", 0).await;
    let mut admin = online(&server, "admin", "console", 0).await;
    message(&mut alice, "localhost", Some("Disk"), "My quota is full.").await;
    let m = admin
        .expect("the forwarded message", |e| {
            local_name(e) == "message" && e.contains("My quota is full.")
        })
        .await;
    assert_eq!(attr(&m, "from").as_deref(), Some(HOST), "{m}");
    assert_eq!(attr(&m, "type").as_deref(), Some("normal"), "{m}");
    assert_eq!(
        body_of(&m).as_deref(),
        Some("alice@localhost/laptop wrote:\nMy quota is full."),
        "{m}"
    );
    assert!(m.contains("from alice@localhost/laptop: Disk"), "{m}");
    // No error for alice, and one copy for the admin.
    alice.barrier().await;
    admin.barrier().await;

    // No admins configured: the sender is told.
    let lonely = ServerBuilder::new()
        .user("alice@localhost", &password("alice"))
        .start();
    let mut alice = online(&lonely, "alice", "laptop", 0).await;
    message(&mut alice, "localhost", None, "Anyone?").await;
    alice
        .expect("service-unavailable", is_error_with("service-unavailable"))
        .await;
    alice.barrier().await;
}

#[tokio::test]
async fn admins_are_told_of_new_registrations() {
    let server = start(&[]);
    let mut admin = online(&server, "admin", "console", 0).await;
    let mut c = RawClient::connect(server.c2s()).await.unwrap();
    c.open_stream(HOST).await.unwrap();
    c.starttls(server.tls_config()).await.unwrap();
    c.open_stream(HOST).await.unwrap();
    c.send("<iq type='set' id='r1'><query xmlns='jabber:iq:register'><username>newbie</username><password>pw</password></query></iq>")
        .await
        .unwrap();
    let answer = c.read_id("r1", WAIT).await.unwrap();
    assert_eq!(attr(&answer, "type").as_deref(), Some("result"), "{answer}");
    let m = admin
        .expect("the registration notice", |e| {
            local_name(e) == "message" && e.contains("newbie@localhost")
        })
        .await;
    assert_eq!(attr(&m, "from").as_deref(), Some(HOST), "{m}");
    assert!(
        body_of(&m)
            .unwrap()
            .contains("registered in band from 127.0.0.1"),
        "{m}"
    );
    admin.barrier().await;
}

#[tokio::test]
async fn users_online_announce_and_kick_through_the_admin_socket() {
    let mut server = start(&["alice", "bob"]);
    let socket = server.home().join("run").join("admin.sock");
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&socket), 0o600, "the socket is the server user's only");
    assert_eq!(mode(&server.home().join("run")), 0o700);

    let mut alice = online(&server, "alice", "desk", 0).await;
    let mut bob = online(&server, "bob", "phone", 0).await;
    let out = server.cli(&["users", "online"], None);
    assert!(out.status.success(), "{out}");
    assert_eq!(
        out.stdout.lines().collect::<Vec<_>>(),
        ["alice@localhost/desk", "bob@localhost/phone"],
        "{out}"
    );
    let out = server.cli(&["users", "online", "--host", "localhost"], None);
    assert_eq!(out.stdout.lines().count(), 2, "{out}");

    let out = server.cli(
        &["announce", "--subject", "From the CLI"],
        Some("First line.\nSecond line.\n"),
    );
    assert!(out.status.success(), "{out}");
    assert!(out.stdout.contains("sent to 2 online session(s)"), "{out}");
    for c in [&mut alice, &mut bob] {
        let m = c
            .expect(
                "the CLI announcement",
                from_host_with_body("First line.\nSecond line."),
            )
            .await;
        assert!(m.contains("<subject>From the CLI</subject>"), "{m}");
        c.barrier().await;
    }

    let out = server.cli(&["kick", "alice@localhost/desk"], None);
    assert!(out.status.success(), "{out}");
    let rest = alice.expect_closed().await;
    assert!(rest.contains("<policy-violation"), "{rest}");
    assert!(rest.contains("kicked by an administrator"), "{rest}");
    let out = server.cli(&["kick", "alice@localhost/desk"], None);
    assert!(!out.status.success(), "no such session any more: {out}");
    assert!(out.stderr.contains("no session"), "{out}");
    let deadline = Instant::now() + WAIT;
    loop {
        let out = server.cli(&["users", "online"], None);
        if out.stdout.lines().collect::<Vec<_>>() == ["bob@localhost/phone"] {
            break;
        }
        assert!(Instant::now() < deadline, "alice is still listed: {out}");
        std::thread::sleep(Duration::from_millis(20));
    }
    bob.barrier().await;

    // Stopped, the server takes its socket with it, and the CLI says what
    // to do.
    assert!(server.terminate().success());
    assert!(!socket.exists());
    let out = server.cli(&["users", "online"], None);
    assert_eq!(out.status.code(), Some(69), "{out}");
    assert!(out.stderr.contains("not running"), "{out}");
    assert!(out.stderr.contains("switchboard -H"), "{out}");
}

/// A roster push, or presence of one of the subscription types: what two
/// users' mutual subscription leaves them.
fn subscription_traffic(e: &str) -> bool {
    let push = local_name(e) == "iq"
        && attr(e, "type").as_deref() == Some("set")
        && e.contains("jabber:iq:roster");
    let sub = local_name(e) == "presence"
        && matches!(attr(e, "type").as_deref(), Some("subscribe" | "subscribed"));
    push || sub
}

#[tokio::test]
async fn sighup_during_a_chat_logs_nobody_off() {
    let server = start(&["alice", "bob"]);
    let mut alice = online(&server, "alice", "a", 0).await;
    let mut bob = online(&server, "bob", "b", 0).await;
    // Mutual subscriptions, so each would see the other go.
    alice
        .send("<presence to='bob@localhost' type='subscribe'/>")
        .await;
    let request =
        |e: &str| local_name(e) == "presence" && attr(e, "type").as_deref() == Some("subscribe");
    bob.expect("alice's request", request).await;
    bob.send("<presence to='alice@localhost' type='subscribed'/>")
        .await;
    bob.send("<presence to='alice@localhost' type='subscribe'/>")
        .await;
    alice.expect("bob's request", request).await;
    alice
        .send("<presence to='bob@localhost' type='subscribed'/>")
        .await;
    let available = |from: &'static str| {
        move |e: &str| {
            local_name(e) == "presence"
                && attr(e, "from").as_deref() == Some(from)
                && attr(e, "type").is_none()
        }
    };
    bob.expect("alice online", available("alice@localhost/a"))
        .await;
    alice
        .expect("bob online", available("bob@localhost/b"))
        .await;
    // Both actors are done with the exchange; what it left (pushes and
    // the approvals) is taken, so that every later barrier is strict.
    for _ in 0..2 {
        alice.sync_account().await;
        bob.sync_account().await;
    }
    for c in [&mut alice, &mut bob] {
        c.take_all(subscription_traffic);
        c.barrier().await;
    }

    let chat = |to: &str, body: &str| {
        format!("<message to='{to}' type='chat'><body>{body}</body></message>")
    };
    let from_with = |from: &'static str, body: &'static str| {
        move |e: &str| {
            local_name(e) == "message"
                && attr(e, "from").as_deref() == Some(from)
                && body_of(e).as_deref() == Some(body)
        }
    };
    alice
        .send(&chat("bob@localhost/b", "before the reload"))
        .await;
    bob.expect(
        "alice's message",
        from_with("alice@localhost/a", "before the reload"),
    )
    .await;

    server.signal(libc::SIGHUP);
    server.wait_for_log(&["reloaded the config on SIGHUP"]);

    bob.send(&chat("alice@localhost/a", "after the reload"))
        .await;
    alice
        .expect(
            "bob's message",
            from_with("bob@localhost/b", "after the reload"),
        )
        .await;
    alice.send(&chat("bob@localhost/b", "still here")).await;
    bob.expect(
        "alice's message",
        from_with("alice@localhost/a", "still here"),
    )
    .await;
    // Nobody saw the other go, and no stream error or close came: each
    // barrier would list it.
    for c in [&mut alice, &mut bob] {
        c.account_barrier().await;
        c.barrier().await;
    }
    assert!(
        !server.log_text().contains("session ended"),
        "nobody's session ended:\n{}",
        server.log_text()
    );
}
