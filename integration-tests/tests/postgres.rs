//! The real binary on the PostgreSQL backend (`<storage
//! backend="postgres">`), against a scratch cluster the test starts: a
//! user registers in-band, logs in and leaves a message for another who
//! is offline; the server is killed without warning and started again,
//! and the message is delivered. Nothing reaches the spool directory.
//! Then `switchboard storage migrate` takes a spool the file backend
//! wrote into a database the server runs on.

use switchboard_integration_tests::raw::{attr, local_name};
use switchboard_integration_tests::{RawClient, ServerBuilder, TestServer, HOST, WAIT};
use switchboard_store_postgres::scratch::ScratchCluster;

fn storage(url: &str) -> String {
    format!(r#"<storage backend="postgres" url="{url}" connections="4"/>"#)
}

/// Registers `user` in-band (XEP-0077) over a fresh connection.
async fn register(server: &TestServer, user: &str, password: &str) {
    let mut c = RawClient::connect(server.c2s()).await.expect("connect");
    c.open_stream(HOST).await.expect("stream");
    c.starttls(server.tls_config()).await.expect("starttls");
    c.open_stream(HOST).await.expect("stream after TLS");
    c.send(&format!(
        "<iq type='set' id='reg'><query xmlns='jabber:iq:register'>\
         <username>{user}</username><password>{password}</password></query></iq>"
    ))
    .await
    .unwrap();
    let answer = c.read_id("reg", WAIT).await.expect("a registration answer");
    assert_eq!(attr(&answer, "type").as_deref(), Some("result"), "{answer}");
}

/// Logs `user` in, sends presence and a ping, and returns the bodies of
/// the messages that arrive before the ping's answer.
async fn collect(server: &TestServer, user: &str, password: &str) -> Vec<String> {
    let mut c = RawClient::login(server.c2s(), server.tls_config(), user, password, "phone")
        .await
        .unwrap();
    c.send("<presence/>").await.unwrap();
    c.send("<iq type='get' id='done' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
        .await
        .unwrap();
    let mut bodies = Vec::new();
    loop {
        let el = c.read_element(WAIT).await.unwrap();
        match local_name(&el).as_str() {
            "message" => bodies.push(attr(&el, "id").unwrap_or_default()),
            "iq" if attr(&el, "id").as_deref() == Some("done") => break,
            _ => {}
        }
    }
    bodies
}

#[tokio::test]
async fn an_offline_message_waits_in_postgres_across_a_kill() {
    let url = ScratchCluster::shared().database();
    let home = tempfile::tempdir().unwrap();
    let builder = || {
        ServerBuilder::new()
            .home(home.path())
            .config(&storage(&url))
    };
    let mut server = builder().start();
    assert!(
        server.log_text().contains("storing in PostgreSQL"),
        "{}",
        server.log_text()
    );
    register(&server, "alice", "alice-pw").await;
    register(&server, "bob", "bob-pw").await;
    let mut alice = RawClient::login(
        server.c2s(),
        server.tls_config(),
        "alice",
        "alice-pw",
        "desk",
    )
    .await
    .unwrap();
    for i in 0..3 {
        alice
            .send(&format!(
                "<message to='bob@localhost' type='chat' id='m{i}'><body>hello {i}</body></message>"
            ))
            .await
            .unwrap();
    }
    // The answer means stored (ARCHITECTURE.md, "An answer means done").
    let answer = alice.ping("localhost").await.unwrap();
    assert_eq!(attr(&answer, "type").as_deref(), Some("result"), "{answer}");
    server.signal(libc::SIGKILL);
    server.wait_exit(WAIT).expect("the server dies on SIGKILL");

    let server = builder().start();
    assert_eq!(collect(&server, "bob", "bob-pw").await, ["m0", "m1", "m2"]);
    // Delivered messages are gone from the queue.
    assert!(collect(&server, "bob", "bob-pw").await.is_empty());
    // The accounts are in the database, not in the spool.
    let spool = home.path().join("spool").join("localhost");
    let files: Vec<_> = std::fs::read_dir(&spool)
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(
        !files.iter().any(|f| f.to_string_lossy().ends_with(".xml")),
        "{files:?}"
    );
    let listed = server.cli(&["user", "list", "localhost"], None);
    assert!(listed.status.success(), "{listed}");
    assert_eq!(
        listed.stdout.lines().collect::<Vec<_>>(),
        ["alice@localhost", "bob@localhost"]
    );
}

#[tokio::test]
async fn a_spool_migrated_into_postgres_serves_its_accounts() {
    let url = ScratchCluster::shared().database();
    let home = tempfile::tempdir().unwrap();
    // A server on the spool: an account, and a message waiting for it.
    let mut server = ServerBuilder::new()
        .home(home.path())
        .user("alice@localhost", "alice-pw")
        .user("bob@localhost", "bob-pw")
        .start();
    let mut alice = RawClient::login(
        server.c2s(),
        server.tls_config(),
        "alice",
        "alice-pw",
        "desk",
    )
    .await
    .unwrap();
    alice
        .send("<message to='bob@localhost' type='chat' id='old'><body>from the spool</body></message>")
        .await
        .unwrap();
    alice.ping("localhost").await.unwrap();
    server.terminate();

    let migrated = server.cli(
        &[
            "storage", "migrate", "--from", "spool", "--to", "postgres", "--url", &url,
        ],
        None,
    );
    assert!(migrated.status.success(), "{migrated}");
    assert!(
        migrated.stdout.contains("2 accounts") && migrated.stdout.contains("1 offline messages"),
        "{migrated}"
    );
    // Again: the accounts are there already, and the copy says so.
    let again = server.cli(
        &[
            "storage", "migrate", "--from", "spool", "--to", "postgres", "--url", &url,
        ],
        None,
    );
    assert!(!again.status.success(), "{again}");
    assert!(
        again.stderr.contains("exists in the destination"),
        "{again}"
    );

    let server = ServerBuilder::new()
        .home(home.path())
        .config(&storage(&url))
        .start();
    assert_eq!(collect(&server, "bob", "bob-pw").await, ["old"]);
}
