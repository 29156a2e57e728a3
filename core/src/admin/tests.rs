//! The admin seam against a real in-process server: a real file spool in a
//! temporary home, account actors, and sessions bound straight into the
//! session table with their outboxes read here.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use switchboard_jid::Jid;
use switchboard_spool::store::file::FileStores;
use switchboard_xml::{ns, Element};

use super::socket::{self, AdminSocket, ClientError, Request};
use super::*;
use crate::sessions::Outbound;
use crate::Server;

const HOST: &str = "example.com";
const WAIT: Duration = Duration::from_secs(10);

async fn start(home: &Path) -> Server {
    let text = format!(
        r#"<switchboard>
  <host name="{HOST}"><admin>admin@{HOST}</admin></host>
  <listen><c2s addr="127.0.0.1:0"/></listen>
  <spool dir="spool"/>
  <log file="-" level="off"/>
  <pidfile>run/switchboard.pid</pidfile>
</switchboard>"#
    );
    let config = switchboard_config::parse(&text, "test.xml", home).unwrap();
    let stores = FileStores::open(home.join("spool")).unwrap();
    for user in ["alice", "bob", "carol", "dave", "admin"] {
        // Already there after a restart.
        let _ =
            crate::accounts::create(stores.accounts.as_ref(), HOST, user, "pw".into(), 16).await;
    }
    Server::start(config, home, stores, false, Vec::new())
        .await
        .unwrap()
}

/// A bound session whose outbox the test reads.
struct Fake {
    jid: Jid,
    id: u64,
    rx: crate::queue::Receiver<Outbound>,
    /// What arrived before a barrier's answer, in order.
    seen: std::collections::VecDeque<Outbound>,
    barriers: u32,
}

fn bind(server: &Server, jid: &str) -> Fake {
    let jid = Jid::parse(jid).unwrap();
    let (tx, rx) = crate::queue::channel(256);
    let sessions = server.router().sessions();
    let id = sessions.new_id();
    sessions.bind(&jid, id, tx, Arc::default());
    Fake {
        jid,
        id,
        rx,
        seen: Default::default(),
        barriers: 0,
    }
}

fn unbind(server: &Server, f: Fake) {
    server.router().sessions().unbind(&f.jid, f.id);
}

/// Initial presence through the router, as a connection sends it: the
/// account's actor runs the login path (offline messages, the MOTD).
async fn available(server: &Server, f: &mut Fake) {
    let p = Element::new("presence", ns::CLIENT).with_attr("from", f.jid.to_string());
    server
        .router()
        .route_client(f.id, &Default::default(), &f.jid, None, p);
    settle(server, f).await;
}

/// Waits until the account's actor has handled everything queued before:
/// its answer to a roster get comes after whatever that work sent.
async fn settle(server: &Server, f: &mut Fake) {
    f.barriers += 1;
    let id = format!("barrier-{}", f.barriers);
    let iq = Element::new("iq", ns::CLIENT)
        .with_attr("type", "get")
        .with_attr("id", id.clone())
        .with_attr("from", f.jid.to_string())
        .with_child(Element::new("query", "jabber:iq:roster"));
    server
        .router()
        .route_client(f.id, &Default::default(), &f.jid, None, iq);
    loop {
        match tokio::time::timeout(WAIT, f.rx.recv()).await {
            Ok(Some(Outbound::Stanza(el))) if el.attr("id") == Some(id.as_str()) => return,
            Ok(Some(other)) => f.seen.push_back(other),
            Ok(None) => panic!("{}: outbox closed", f.jid),
            Err(_) => panic!("{}: the actor did not answer the barrier", f.jid),
        }
    }
}

/// The messages waiting for a session (other stanzas skipped).
fn messages(f: &mut Fake) -> Vec<Element> {
    while let Ok(o) = f.rx.try_recv() {
        f.seen.push_back(o);
    }
    f.seen
        .drain(..)
        .filter_map(|o| match o {
            Outbound::Stanza(el) if el.name == "message" => Some(*el),
            _ => None,
        })
        .collect()
}

fn body(m: &Element) -> String {
    m.child_text("body", ns::CLIENT).unwrap_or_default()
}

fn text(s: &str) -> Announcement {
    Announcement::new(Some("Notice"), s).unwrap()
}

#[tokio::test]
async fn announce_online_reaches_available_non_negative_resources_only() {
    let home = tempfile::tempdir().unwrap();
    let server = start(home.path()).await;
    let shared = server.admin();
    let mut desk = bind(&server, "alice@example.com/desk");
    let mut phone = bind(&server, "alice@example.com/phone");
    let mut bob = bind(&server, "bob@example.com/r");
    let presence = |prio: &str| {
        Element::new("presence", ns::CLIENT)
            .with_child(Element::new("priority", ns::CLIENT).with_text(prio))
    };
    let sessions = shared.router.sessions();
    sessions.set_presence(&desk.jid, Some(presence("5")));
    sessions.set_presence(&phone.jid, Some(presence("-1")));
    // bob is bound but has sent no presence.

    let n = announce_online(&shared.router, HOST, &text("Reboot at noon")).unwrap();
    assert_eq!(n, 1);
    let got = messages(&mut desk);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].attr("from"), Some(HOST));
    assert_eq!(got[0].attr("to"), Some("alice@example.com/desk"));
    assert_eq!(got[0].attr("type"), Some("normal"));
    assert_eq!(
        got[0].child_text("subject", ns::CLIENT).as_deref(),
        Some("Notice")
    );
    assert_eq!(body(&got[0]), "Reboot at noon");
    assert!(messages(&mut phone).is_empty());
    assert!(messages(&mut bob).is_empty());

    assert!(matches!(
        announce_online(&shared.router, "other.org", &text("x")),
        Err(AdminError::UnknownHost(_))
    ));
}

#[tokio::test]
async fn online_users_and_kick() {
    let home = tempfile::tempdir().unwrap();
    let server = start(home.path()).await;
    let shared = server.admin();
    let mut a = bind(&server, "alice@example.com/a");
    let mut b = bind(&server, "alice@example.com/b");
    let mut bob = bind(&server, "bob@example.com/x");
    let list: Vec<String> = online_users(&shared.router, Some(HOST))
        .unwrap()
        .iter()
        .map(Jid::to_string)
        .collect();
    assert_eq!(
        list,
        [
            "alice@example.com/a",
            "alice@example.com/b",
            "bob@example.com/x"
        ]
    );
    assert_eq!(online_users(&shared.router, None).unwrap().len(), 3);
    assert!(online_users(&shared.router, Some("other.org")).is_err());

    let closed = |f: &mut Fake| match f
        .seen
        .pop_front()
        .ok_or(())
        .or_else(|_| f.rx.try_recv().map_err(|_| ()))
    {
        Ok(Outbound::Close(e)) => {
            assert_eq!(e.condition, "policy-violation");
            assert_eq!(e.text.as_deref(), Some(KICK_TEXT));
            true
        }
        _ => false,
    };
    assert_eq!(
        kick(&shared.router, &Jid::parse("alice@example.com/a").unwrap()).unwrap(),
        1
    );
    assert!(closed(&mut a));
    assert!(!closed(&mut b));
    unbind(&server, a);
    // A bare JID closes every session of the account.
    assert_eq!(
        kick(&shared.router, &Jid::parse("alice@example.com").unwrap()).unwrap(),
        1
    );
    assert!(closed(&mut b));
    assert!(!closed(&mut bob));
    assert!(matches!(
        kick(&shared.router, &Jid::parse("nobody@example.com").unwrap()),
        Err(AdminError::NoSession(_))
    ));
    assert!(matches!(
        kick(&shared.router, &Jid::parse("alice@other.org").unwrap()),
        Err(AdminError::UnknownHost(_))
    ));
}

#[tokio::test]
async fn the_motd_is_shown_once_per_series_updates_reach_only_who_missed_it_and_it_survives_a_restart(
) {
    let home = tempfile::tempdir().unwrap();
    let server = start(home.path()).await;
    let shared = server.admin().clone();

    // alice is online when it is set; bob is away.
    let mut alice = bind(&server, "alice@example.com/desk");
    available(&server, &mut alice).await;
    assert_eq!(set_motd(&shared, HOST, text("v1")).await.unwrap(), 1);
    settle(&server, &mut alice).await;
    let got = messages(&mut alice);
    assert_eq!(got.iter().map(body).collect::<Vec<_>>(), ["v1"]);
    assert!(
        got[0].get_child("delay", ns::DELAY).is_none(),
        "shown live, not delayed"
    );

    // bob gets it at login, with a delay stamp, once.
    let mut bob = bind(&server, "bob@example.com/r");
    available(&server, &mut bob).await;
    let got = messages(&mut bob);
    assert_eq!(got.iter().map(body).collect::<Vec<_>>(), ["v1"]);
    assert!(got[0].get_child("delay", ns::DELAY).is_some());
    unbind(&server, bob);
    let mut bob = bind(&server, "bob@example.com/r2");
    available(&server, &mut bob).await;
    assert!(messages(&mut bob).is_empty(), "not again at the next login");

    // An update reaches nobody who saw v1, online or not…
    update_motd(&shared, HOST, text("v1, corrected"))
        .await
        .unwrap();
    settle(&server, &mut alice).await;
    settle(&server, &mut bob).await;
    assert!(messages(&mut alice).is_empty());
    assert!(messages(&mut bob).is_empty());
    // …but carol, who never saw it, gets the new text.
    let mut carol = bind(&server, "carol@example.com/c");
    available(&server, &mut carol).await;
    assert_eq!(
        messages(&mut carol).iter().map(body).collect::<Vec<_>>(),
        ["v1, corrected"]
    );

    // A new MOTD is for everyone again, online ones now.
    set_motd(&shared, HOST, text("v2")).await.unwrap();
    for f in [&mut alice, &mut bob, &mut carol] {
        settle(&server, f).await;
        assert_eq!(messages(f).iter().map(body).collect::<Vec<_>>(), ["v2"]);
    }

    // After a restart on the same home, dave (who never logged in) still
    // gets v2, and the others still do not get it again.
    for f in [alice, bob, carol] {
        unbind(&server, f);
    }
    server.shutdown().await;
    let server = start(home.path()).await;
    let shared = server.admin().clone();
    assert_eq!(
        shared.motds.current(HOST).unwrap().announcement.body(),
        "v2"
    );
    let mut dave = bind(&server, "dave@example.com/d");
    available(&server, &mut dave).await;
    assert_eq!(
        messages(&mut dave).iter().map(body).collect::<Vec<_>>(),
        ["v2"]
    );
    let mut alice = bind(&server, "alice@example.com/again");
    available(&server, &mut alice).await;
    assert!(messages(&mut alice).is_empty());

    // Deleted, it is shown to nobody; a later one gets a fresh series.
    assert!(delete_motd(&shared, HOST).await.unwrap());
    assert!(!delete_motd(&shared, HOST).await.unwrap());
    let mut admin = bind(&server, "admin@example.com/x");
    available(&server, &mut admin).await;
    assert!(messages(&mut admin).is_empty());
    assert!(matches!(
        set_motd(&shared, "other.org", text("x")).await,
        Err(AdminError::UnknownHost(_))
    ));
}

#[tokio::test]
async fn messages_to_the_server_jid_need_an_admin_to_announce_and_reach_admins_otherwise() {
    let home = tempfile::tempdir().unwrap();
    let server = start(home.path()).await;
    let router = server.router();
    let mut alice = bind(&server, "alice@example.com/a");
    let mut admin = bind(&server, "admin@example.com/console");
    let available = Element::new("presence", ns::CLIENT);
    router
        .sessions()
        .set_presence(&alice.jid, Some(available.clone()));
    router.sessions().set_presence(&admin.jid, Some(available));
    let message = |from: &str, to: &str, text: &str| {
        Element::new("message", ns::CLIENT)
            .with_attr("from", from)
            .with_attr("to", to)
            .with_attr("id", "m1")
            .with_child(Element::new("body", ns::CLIENT).with_text(text))
    };

    // Not an admin: forbidden, and nobody gets anything.
    router.route(message(
        "alice@example.com/a",
        "example.com/announce/online",
        "hi all",
    ));
    let got = messages(&mut alice);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].attr("type"), Some("error"));
    assert!(got[0]
        .to_xml_string()
        .contains("<forbidden xmlns=\"urn:ietf:params:xml:ns:xmpp-stanzas\"/>"));
    assert!(messages(&mut admin).is_empty());

    // The admin may.
    router.route(message(
        "admin@example.com/console",
        "example.com/announce/online",
        "hi all",
    ));
    assert_eq!(
        messages(&mut alice).iter().map(body).collect::<Vec<_>>(),
        ["hi all"]
    );

    // A message to the server goes to the admins, from the server, naming
    // the sender.
    router.route(message("alice@example.com/a", "example.com", "help!"));
    let got = messages(&mut admin);
    let fwd = got
        .iter()
        .find(|m| body(m).contains("help!"))
        .expect("forwarded");
    assert_eq!(fwd.attr("from"), Some(HOST));
    assert_eq!(body(fwd), "alice@example.com/a wrote:\nhelp!");
    assert!(fwd
        .child_text("subject", ns::CLIENT)
        .unwrap()
        .contains("alice@example.com/a"));

    // Other resources of the server are nobody.
    router.route(message("alice@example.com/a", "example.com/else", "?"));
    let got = messages(&mut alice);
    assert!(
        got[0].to_xml_string().contains("service-unavailable"),
        "{got:?}"
    );
}

#[tokio::test]
async fn the_admin_socket_is_private_answers_requests_and_goes_away() {
    let home = tempfile::tempdir().unwrap();
    let server = start(home.path()).await;
    let run = home.path().join("run");
    std::fs::create_dir_all(&run).unwrap();
    std::fs::set_permissions(&run, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = run.join("admin.sock");
    // A socket left by a crashed server is replaced.
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    let call = |req: Request| {
        let path = path.clone();
        tokio::task::spawn_blocking(move || socket::request(&path, &req, WAIT))
    };
    assert!(matches!(
        call(Request::UsersOnline { host: None }).await.unwrap(),
        Err(ClientError::NotRunning { .. })
    ));

    let sock = AdminSocket::bind(&path, server.admin().clone())
        .await
        .unwrap();
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&path), 0o600);
    assert_eq!(mode(&run), 0o700);

    let mut alice = bind(&server, "alice@example.com/a");
    server
        .router()
        .sessions()
        .set_presence(&alice.jid, Some(Element::new("presence", ns::CLIENT)));
    let r = call(Request::UsersOnline {
        host: Some("Example.COM".into()),
    })
    .await
    .unwrap()
    .unwrap();
    assert_eq!(r.data, ["alice@example.com/a"]);
    let r = call(Request::Announce {
        host: None,
        subject: Some("Tonight".into()),
        body: "Line one\nline two".into(),
    })
    .await
    .unwrap()
    .unwrap();
    assert_eq!(r.outcome, Ok("1".to_string()));
    let got = messages(&mut alice);
    assert_eq!(body(&got[0]), "Line one\nline two");
    let r = call(Request::Kick {
        jid: "bob@example.com".into(),
    })
    .await
    .unwrap()
    .unwrap();
    assert_eq!(r.outcome.unwrap_err().code, "not-found");
    let r = call(Request::Announce {
        host: Some("other.org".into()),
        subject: None,
        body: "x".into(),
    })
    .await
    .unwrap()
    .unwrap();
    assert_eq!(r.outcome.unwrap_err().code, "unknown-host");

    drop(sock);
    assert!(
        !path.exists(),
        "the socket is removed when the server stops"
    );
    assert!(matches!(
        call(Request::UsersOnline { host: None }).await.unwrap(),
        Err(ClientError::NotRunning { .. })
    ));
}
