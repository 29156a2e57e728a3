//! What an operator and a first-time user meet: in-band registration from
//! a client, `-D` debug logs that never contain credentials, and SIGHUP
//! reopening a log file that logrotate moved away.

use std::fs;
use std::time::{Duration, Instant};

use base64::Engine as _;
use switchboard_integration_tests::raw::attr;
use switchboard_integration_tests::{Client, RawClient, ServerBuilder, TestServer, HOST, WAIT};

const REGISTER_NS: &str = "jabber:iq:register";

/// Connects and runs STARTTLS; returns the client and the post-TLS features.
async fn secure_stream(server: &TestServer) -> (RawClient, String) {
    let mut c = RawClient::connect(server.c2s()).await.expect("connect");
    c.open_stream(HOST).await.expect("stream");
    c.starttls(server.tls_config()).await.expect("starttls");
    let features = c.open_stream(HOST).await.expect("stream after TLS");
    (c, features)
}

async fn register(c: &mut RawClient, user: &str, password: &str) -> String {
    let id = c.new_id("reg");
    c.send(&format!(
        "<iq type='set' id='{id}'><query xmlns='{REGISTER_NS}'><username>{user}</username><password>{password}</password></query></iq>"
    ))
    .await
    .unwrap();
    c.read_id(&id, WAIT).await.expect("registration answer")
}

#[tokio::test]
async fn a_new_user_registers_in_band_then_logs_in() {
    let server = ServerBuilder::new()
        .config("<host name=\"localhost\"><registration>open</registration></host>")
        .start();
    let (mut c, features) = secure_stream(&server).await;
    assert!(
        features.contains("http://jabber.org/features/iq-register"),
        "registration is advertised: {features}"
    );
    let id = c.new_id("form");
    c.send(&format!(
        "<iq type='get' id='{id}'><query xmlns='{REGISTER_NS}'/></iq>"
    ))
    .await
    .unwrap();
    let form = c.read_id(&id, WAIT).await.unwrap();
    assert!(
        form.contains("<username/>") && form.contains("<password/>"),
        "{form}"
    );

    let answer = register(&mut c, "Newbie", "fresh-password").await;
    assert_eq!(attr(&answer, "type").as_deref(), Some("result"), "{answer}");
    let again = register(&mut c, "newbie", "other").await;
    assert!(
        again.contains("<conflict"),
        "a taken name is a conflict: {again}"
    );

    // The account is real: it logs in with SCRAM and shows in `user list`.
    let mut alice = RawClient::login(
        server.c2s(),
        server.tls_config(),
        "newbie",
        "fresh-password",
        "r",
    )
    .await
    .expect("login with the registered account");
    let pong = alice.ping(HOST).await.unwrap();
    assert_eq!(attr(&pong, "type").as_deref(), Some("result"), "{pong}");
    let list = server.cli(&["user", "list", "localhost"], None);
    assert!(list.stdout.contains("newbie@localhost"), "{list}");
}

#[tokio::test]
async fn registration_is_refused_when_the_host_does_not_allow_it() {
    let server = ServerBuilder::new()
        .config("<host name=\"localhost\"><registration>off</registration></host>")
        .start();
    let (mut c, features) = secure_stream(&server).await;
    assert!(!features.contains("iq-register"), "{features}");
    let answer = register(&mut c, "intruder", "pw").await;
    assert!(answer.contains("<not-allowed"), "{answer}");
    let list = server.cli(&["user", "list", "localhost"], None);
    assert!(!list.stdout.contains("intruder"), "{list}");
}

/// Waits (bounded) for the log file to contain `needle`.
fn wait_for_log(path: &std::path::Path, needle: &str) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let text = fs::read_to_string(path).unwrap_or_default();
        if text.contains(needle) || Instant::now() > deadline {
            return text;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test]
async fn debug_logging_shows_stanzas_but_never_credentials() {
    let server = ServerBuilder::new()
        .config("<host name=\"localhost\"><registration>open</registration></host>")
        .user("alice@localhost", "alice-secret-pw")
        .debug()
        .start();
    // PLAIN carries the password itself (inside TLS): the worst case.
    let (mut c, _) = secure_stream(&server).await;
    let plain = base64::engine::general_purpose::STANDARD.encode(b"\0alice\0alice-secret-pw");
    c.send(&format!(
        "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{plain}</auth>"
    ))
    .await
    .unwrap();
    let success = c.read_element(WAIT).await.unwrap();
    assert!(success.starts_with("<success"), "{success}");
    // SCRAM and in-band registration too.
    let mut s = RawClient::login(
        server.c2s(),
        server.tls_config(),
        "alice",
        "alice-secret-pw",
        "s",
    )
    .await
    .unwrap();
    s.ping(HOST).await.unwrap();
    let (mut r, _) = secure_stream(&server).await;
    register(&mut r, "bob", "bob-secret-pw").await;

    let log = wait_for_log(
        &server.home().join("logs/switchboard.log"),
        "jabber:iq:register",
    );
    assert!(log.contains("urn:xmpp:ping"), "-D logs stanzas: {log}");
    assert!(
        log.contains("jabber:iq:register"),
        "-D logs the registration: {log}"
    );
    for secret in ["alice-secret-pw", "bob-secret-pw", plain.as_str()] {
        assert!(!log.contains(secret), "the log must not contain {secret:?}");
    }
}

#[tokio::test]
async fn sighup_reopens_a_rotated_log_file() {
    let server = ServerBuilder::new()
        .user("alice@localhost", "pw-hup")
        .start();
    let log = server.home().join("logs/switchboard.log");
    let rotated = server.home().join("logs/switchboard.log.1");
    wait_for_log(&log, "listening");
    fs::rename(&log, &rotated).unwrap();
    server.signal(libc::SIGHUP);
    // The reload itself is logged into the new file.
    let text = wait_for_log(&log, "SIGHUP");
    assert!(
        text.contains("SIGHUP"),
        "the new log file gets the reload message: {text:?}"
    );
    let mut c = RawClient::login(server.c2s(), server.tls_config(), "alice", "pw-hup", "r")
        .await
        .unwrap();
    c.ping(HOST).await.unwrap();
    let text = wait_for_log(&log, "session started");
    assert!(
        text.contains("session started"),
        "later events go to the new file: {text}"
    );
    let old = fs::read_to_string(&rotated).unwrap();
    assert!(
        !old.contains("session started"),
        "nothing more goes to the rotated file"
    );
}

#[tokio::test]
async fn removing_an_account_tells_contacts_deletes_it_and_closes_the_session() {
    let server = ServerBuilder::new()
        .user("alice@localhost", "alice-pw")
        .user("bob@localhost", "bob-pw")
        .start();
    let tls = server.tls_config();
    let mut alice = RawClient::login(server.c2s(), tls.clone(), "alice", "alice-pw", "a")
        .await
        .unwrap();
    let mut bob = RawClient::login(server.c2s(), tls.clone(), "bob", "bob-pw", "b")
        .await
        .unwrap();
    for c in [&mut alice, &mut bob] {
        c.send("<presence/>").await.unwrap();
    }
    // alice subscribes to bob and bob approves: alice has `to`, bob `from`.
    alice
        .send("<presence to='bob@localhost' type='subscribe'/>")
        .await
        .unwrap();
    bob.read_until("type=\"subscribe\"", WAIT)
        .await
        .expect("bob gets the request");
    bob.send("<presence to='alice@localhost' type='subscribed'/>")
        .await
        .unwrap();
    alice
        .read_until("type=\"subscribed\"", WAIT)
        .await
        .expect("alice gets the approval");

    alice
        .send("<iq type='set' id='rm'><query xmlns='jabber:iq:register'><remove/></query></iq>")
        .await
        .unwrap();
    let answer = alice.read_id("rm", WAIT).await.unwrap();
    assert_eq!(attr(&answer, "type").as_deref(), Some("result"), "{answer}");
    let rest = alice.read_to_close(WAIT).await.unwrap();
    assert!(
        rest.contains("<not-authorized"),
        "the session is closed: {rest}"
    );

    let seen = bob
        .read_until("type=\"unsubscribe\"", WAIT)
        .await
        .expect("bob is told");
    assert!(seen.contains("from=\"alice@localhost\""), "{seen}");
    let list = server.cli(&["user", "list", "localhost"], None);
    assert!(!list.stdout.contains("alice@"), "{list}");
    let failed = RawClient::login(server.c2s(), tls, "alice", "alice-pw", "again")
        .await
        .is_err();
    assert!(failed, "the removed account cannot log in");
}

/// RFC 6121 §3.1.5: the approving contact's presence follows the
/// `subscribed`, never precedes it (RFC 6120 §10.1 ordering).
#[tokio::test]
async fn presence_after_approval_never_overtakes_the_approval() {
    let server = ServerBuilder::new()
        .user("alice@localhost", "alice-pw")
        .user("bob@localhost", "bob-pw")
        .start();
    let mut alice = Client::login(&server, "alice", "alice-pw", "a").await;
    let mut bob = Client::login(&server, "bob", "bob-pw", "b").await;
    for c in [&mut alice, &mut bob] {
        c.available(0, "").await;
    }
    alice
        .send("<presence to='bob@localhost' type='subscribe'/>")
        .await;
    bob.expect("alice's request", |e| {
        attr(e, "type").as_deref() == Some("subscribe")
    })
    .await;
    bob.send("<presence to='alice@localhost' type='subscribed'/>")
        .await;
    let approval = |e: &str| {
        attr(e, "from").as_deref() == Some("bob@localhost")
            && attr(e, "type").as_deref() == Some("subscribed")
    };
    let presence = |e: &str| {
        attr(e, "from").as_deref() == Some("bob@localhost/b") && attr(e, "type").is_none()
    };
    alice
        .expect_in_order(&[("bob's approval", &approval), ("bob's presence", &presence)])
        .await;
}

#[tokio::test]
async fn with_admin_registration_only_admins_create_accounts_from_a_client() {
    let server = ServerBuilder::new()
        .config("<host name=\"localhost\"><admin>boss@localhost</admin><registration>admin</registration></host>")
        .user("boss@localhost", "boss-pw")
        .user("worker@localhost", "worker-pw")
        .start();
    let tls = server.tls_config();
    let create = |user: &str| {
        format!(
            "<iq type='set' id='new-{user}' to='localhost'><query xmlns='{REGISTER_NS}'><username>{user}</username><password>pw-{user}</password></query></iq>"
        )
    };
    // Not before login: the host is not open.
    let (mut anon, features) = secure_stream(&server).await;
    assert!(!features.contains("iq-register"), "{features}");
    let refused = register(&mut anon, "sneaky", "pw").await;
    assert!(refused.contains("<not-allowed"), "{refused}");

    let mut worker = RawClient::login(server.c2s(), tls.clone(), "worker", "worker-pw", "w")
        .await
        .unwrap();
    worker.send(&create("intern")).await.unwrap();
    let no = worker.read_id("new-intern", WAIT).await.unwrap();
    assert!(no.contains("<forbidden"), "a non-admin is refused: {no}");

    let mut boss = RawClient::login(server.c2s(), tls.clone(), "boss", "boss-pw", "b")
        .await
        .unwrap();
    boss.send(&create("newhire")).await.unwrap();
    let yes = boss.read_id("new-newhire", WAIT).await.unwrap();
    assert_eq!(attr(&yes, "type").as_deref(), Some("result"), "{yes}");
    let mut newhire = RawClient::login(server.c2s(), tls, "newhire", "pw-newhire", "n")
        .await
        .expect("the new account works");
    newhire.ping(HOST).await.unwrap();
    let list = server.cli(&["user", "list", "localhost"], None);
    assert!(
        !list.stdout.contains("intern@") && !list.stdout.contains("sneaky@"),
        "{list}"
    );
}
