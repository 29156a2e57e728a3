//! The user directory (XEP-0055) on the real binary: in-process at
//! `users.localhost`, and the same service run as its own process with
//! `switchboard component`, attached over XEP-0114 to a Switchboard that
//! declares it external — including the connector's reconnection when
//! that server restarts. (`.ci/run` attaches it to Prosody too.)

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use switchboard_integration_tests::raw::attr;
use switchboard_integration_tests::server::binary;
use switchboard_integration_tests::{RawClient, ServerBuilder, TestServer, WAIT};

const DIR: &str = "users.localhost";
const SECRET: &str = "directory-component-secret";

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

async fn iq(c: &mut RawClient, body: &str) -> String {
    let id = c.new_id("iq");
    c.send(&body.replace("@ID@", &id)).await.unwrap();
    c.read_id(&id, WAIT).await.unwrap()
}

async fn list_and_search(alice: &mut RawClient, bob: &mut RawClient) {
    let r = iq(
        alice,
        &format!(
            "<iq type='set' id='@ID@' to='{DIR}'><query xmlns='jabber:iq:register'>\
             <first>Alice</first><last>Liddell</last><email>alice@localhost</email></query></iq>"
        ),
    )
    .await;
    assert_eq!(attr(&r, "type").as_deref(), Some("result"), "{r}");

    let r = iq(
        bob,
        &format!(
            "<iq type='set' id='@ID@' to='{DIR}'><query xmlns='jabber:iq:search'><last>LIDD</last></query></iq>"
        ),
    )
    .await;
    assert!(r.contains(r#"jid="alice@localhost""#), "{r}");
    assert!(r.contains("<first>Alice</first>"), "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_process_directory_lists_and_finds_users() {
    let server = ServerBuilder::new()
        .also(&format!(r#"<service id="{DIR}" type="directory"/>"#))
        .user("alice@localhost", "alice-pw")
        .user("bob@localhost", "bob-pw")
        .start();
    let mut alice = login(&server, "alice").await;
    let mut bob = login(&server, "bob").await;

    let items = iq(
        &mut bob,
        "<iq type='get' id='@ID@' to='localhost'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>",
    )
    .await;
    assert!(items.contains(&format!(r#"jid="{DIR}""#)), "{items}");
    assert!(items.contains(r#"name="User directory""#), "{items}");
    let info = iq(
        &mut bob,
        &format!("<iq type='get' id='@ID@' to='{DIR}'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>"),
    )
    .await;
    assert!(info.contains(r#"category="directory""#), "{info}");

    list_and_search(&mut alice, &mut bob).await;

    // Removing oneself is immediate.
    let r = iq(
        &mut alice,
        &format!("<iq type='set' id='@ID@' to='{DIR}'><query xmlns='jabber:iq:register'><remove/></query></iq>"),
    )
    .await;
    assert_eq!(attr(&r, "type").as_deref(), Some("result"), "{r}");
    let r = iq(
        &mut bob,
        &format!("<iq type='set' id='@ID@' to='{DIR}'><query xmlns='jabber:iq:search'><first>alice</first></query></iq>"),
    )
    .await;
    assert!(!r.contains("<item"), "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listings_survive_a_restart() {
    let home = tempfile::tempdir().unwrap();
    let builder = || {
        ServerBuilder::new()
            .home(home.path())
            .also(&format!(r#"<service id="{DIR}" type="directory"/>"#))
    };
    let mut server = builder()
        .user("alice@localhost", "alice-pw")
        .user("bob@localhost", "bob-pw")
        .start();
    let mut alice = login(&server, "alice").await;
    let mut bob = login(&server, "bob").await;
    list_and_search(&mut alice, &mut bob).await;
    server.terminate();

    let server = builder().start();
    let mut bob = login(&server, "bob").await;
    let r = iq(
        &mut bob,
        &format!("<iq type='set' id='@ID@' to='{DIR}'><query xmlns='jabber:iq:search'><first>ali</first></query></iq>"),
    )
    .await;
    assert!(r.contains(r#"jid="alice@localhost""#), "{r}");
}

/// A `switchboard component` process, killed when dropped.
struct Component(Child);

impl Drop for Component {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `switchboard component` for the directory with its home in
/// `home`; what it logs goes to `home/component.log`.
fn component(home: &std::path::Path, server: std::net::SocketAddr) -> Component {
    let log = std::fs::File::create(home.join("component.log")).unwrap();
    let child = Command::new(binary())
        .arg("-H")
        .arg(home)
        .args(["component", DIR, "--type", "directory", "--server"])
        .arg(server.to_string())
        .env("SWITCHBOARD_COMPONENT_SECRET", SECRET)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("cannot run switchboard component");
    Component(child)
}

/// Polls disco#info on the directory until the component answers.
async fn wait_attached(c: &mut RawClient) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = iq(
            c,
            &format!("<iq type='get' id='@ID@' to='{DIR}'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>"),
        )
        .await;
        if attr(&r, "type").as_deref() == Some("result") {
            return;
        }
        assert!(r.contains("remote-server-timeout"), "{r}");
        assert!(Instant::now() < deadline, "the component never attached");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_directory_runs_as_a_component_and_reconnects_after_a_server_restart() {
    // A fixed port, so that the restarted server is where the component
    // expects it.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let server_home = tempfile::tempdir().unwrap();
    let component_home = tempfile::tempdir().unwrap();
    let builder = || {
        ServerBuilder::new()
            .home(server_home.path())
            .config(&format!(
                r#"<listen><c2s addr="127.0.0.1:0"/><component addr="127.0.0.1:{port}"/></listen>"#
            ))
            .also(&format!(
                r#"<service id="{DIR}" type="external" secret="{SECRET}"/>"#
            ))
    };
    let mut server = builder()
        .user("alice@localhost", "alice-pw")
        .user("bob@localhost", "bob-pw")
        .start();
    let _component = component(component_home.path(), server.listener("component"));
    let mut alice = login(&server, "alice").await;
    let mut bob = login(&server, "bob").await;
    wait_attached(&mut bob).await;
    list_and_search(&mut alice, &mut bob).await;
    // The listing lives in the component's own home.
    assert!(component_home.path().join("spool").join(DIR).is_dir());

    server.terminate();
    let server = builder().start();
    let mut bob = login(&server, "bob").await;
    wait_attached(&mut bob).await;
    let r = iq(
        &mut bob,
        &format!("<iq type='set' id='@ID@' to='{DIR}'><query xmlns='jabber:iq:search'><first>alice</first></query></iq>"),
    )
    .await;
    assert!(r.contains(r#"jid="alice@localhost""#), "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_component_with_the_wrong_secret_never_attaches() {
    let server = ServerBuilder::new()
        .config(r#"<listen><c2s addr="127.0.0.1:0"/><component addr="127.0.0.1:0"/></listen>"#)
        .also(&format!(
            r#"<service id="{DIR}" type="external" secret="not-the-same"/>"#
        ))
        .user("bob@localhost", "bob-pw")
        .start();
    let home = tempfile::tempdir().unwrap();
    let _component = component(home.path(), server.listener("component"));
    // Once the component has been turned away (it logs the refusal), the
    // server has decided; a user asking then finds no directory.
    let log = home.path().join("component.log");
    let deadline = Instant::now() + WAIT;
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("the server refused the component") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the component never logged a refusal:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut bob = login(&server, "bob").await;
    let r = iq(
        &mut bob,
        &format!("<iq type='get' id='@ID@' to='{DIR}'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>"),
    )
    .await;
    assert!(r.contains("remote-server-timeout"), "{r}");
}
