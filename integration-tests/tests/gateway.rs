//! XEP-0100 gateway interaction end to end: a client on the real binary
//! (run with `-D`) registers with a transport, the transport subscribes,
//! the user's presence signs them on and off, `jabber:iq:gateway`
//! translates an address, an ad-hoc command offers settings, and
//! unregistering removes the credentials and the transport's roster items.
//!
//! The transport here is a stand-in written for this test: it is built
//! from the same toolkit (`switchboard_service::gateway`, `adhoc`) as the
//! real ones and attached with the real component connector, but its
//! "foreign network" is a list of sign-on events the test reads. The IRC
//! transport gets the same checks against real IRC servers.

use std::os::unix::fs::PermissionsExt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use switchboard_integration_tests::raw::attr;
use switchboard_integration_tests::{RawClient, ServerBuilder, TestServer, WAIT};
use switchboard_service::adhoc::{CommandOutcome, Commands, NoteType};
use switchboard_service::component::{self, ConnectOptions};
use switchboard_service::credentials::SecretKey;
use switchboard_service::forms::{Field, FieldKind, Form, FormKind};
use switchboard_service::gateway::{Gateway, GatewayEvent, GatewaySpec, Handled};
use switchboard_service::stanza::{error_reply, iq_result, StanzaError};
use switchboard_service::{BoxFuture, Identity, Outbox, Service, ServiceContext, ServiceStore};
use switchboard_spool::store::file::FileStores;
use switchboard_xml::{ns, Element};
use tokio::sync::mpsc;

const GW: &str = "gw.localhost";
const SECRET: &str = "gateway-component-secret";
/// The legacy-network password: it must appear in no log and no file.
const LEGACY_PASSWORD: &str = "Legacy-Pa55-do-not-log";

type Events = Arc<Mutex<Vec<String>>>;

/// The stand-in transport.
struct TestTransport {
    events: Events,
}

fn spec(jid: &str) -> GatewaySpec {
    GatewaySpec {
        jid: jid.to_string(),
        kind: "test".into(),
        name: "Test network gateway".into(),
        instructions: "Enter your test-network user name and password.".into(),
        fields: vec![
            Field::new("username", FieldKind::TextSingle)
                .with_label("User name")
                .required(),
            Field::new("password", FieldKind::TextPrivate)
                .with_label("Password")
                .required(),
        ],
        prompt_desc: "Enter the contact's test-network name.".into(),
        prompt_label: "Name".into(),
        translate: Box::new(|s: &str| Some(s.trim().to_lowercase())),
    }
}

impl Service for TestTransport {
    fn identity(&self) -> Identity {
        spec(GW).identity()
    }

    fn run(&self, ctx: ServiceContext, mut inbox: mpsc::Receiver<Element>) -> BoxFuture {
        let events = self.events.clone();
        Box::pin(async move {
            let mut gw = Gateway::open(spec(&ctx.jid), ctx.store.clone(), ctx.key.clone())
                .await
                .expect("the registration store opens");
            for probe in gw.startup_probes() {
                let _ = ctx.out.send(probe).await;
            }
            let mut commands = Commands::new(ctx.jid.clone());
            commands.add("settings", "Settings", |req| match &req.form {
                None => CommandOutcome::Form(
                    Form::new(FormKind::Form)
                        .with_title("Settings")
                        .with_field(Field::new("nick", FieldKind::TextSingle).with_label("Nick")),
                ),
                Some(f) => CommandOutcome::Completed {
                    note: Some((
                        NoteType::Info,
                        format!("nick set to {}", f.value("nick").unwrap_or("")),
                    )),
                    form: None,
                },
            });
            while let Some(stanza) = inbox.recv().await {
                let reply = handle(&mut gw, &mut commands, &stanza, &ctx.out, &events).await;
                if let Some(r) = reply {
                    let _ = ctx.out.send(r).await;
                }
            }
        })
    }
}

async fn handle(
    gw: &mut Gateway,
    commands: &mut Commands,
    stanza: &Element,
    out: &Outbox,
    events: &Events,
) -> Option<Element> {
    if commands.is_command_iq(stanza) {
        return commands.handle_iq(stanza, std::time::Instant::now());
    }
    let payload = stanza.first_element();
    let is_get = stanza.attr("type") == Some("get");
    if is_get && payload.is_some_and(|p| p.is("query", ns::DISCO_INFO) && p.attr("node").is_none())
    {
        return Some(iq_result(stanza, Some(gw.disco_info(&[ns::COMMANDS]))));
    }
    if is_get && payload.is_some_and(|p| p.is("query", ns::DISCO_ITEMS) && p.attr("node").is_none())
    {
        return Some(iq_result(
            stanza,
            Some(Element::new("query", ns::DISCO_ITEMS)),
        ));
    }
    match gw.handle(stanza, out).await {
        Handled::Done(evs) => {
            for e in evs {
                events.lock().unwrap().push(match e {
                    GatewayEvent::Registered { user, registration } => format!(
                        "registered {user} as {}",
                        registration.get("username").unwrap_or("?")
                    ),
                    GatewayEvent::Unregistered { user } => format!("unregistered {user}"),
                    GatewayEvent::SignOn { user, registration } => format!(
                        "sign-on {user} as {} with {}-char password",
                        registration.get("username").unwrap_or("?"),
                        registration.get("password").unwrap_or("").len()
                    ),
                    GatewayEvent::SignOff { user } => format!("sign-off {user}"),
                    GatewayEvent::Presence {
                        user_full,
                        available,
                    } => {
                        format!("presence {user_full} {available}")
                    }
                });
            }
            None
        }
        Handled::NotMine => match stanza.attr("type") {
            Some("get") | Some("set") => error_reply(stanza, &StanzaError::service_unavailable()),
            _ => None,
        },
    }
}

struct Setup {
    server: TestServer,
    events: Events,
    component_home: tempfile::TempDir,
    stop: tokio::sync::watch::Sender<bool>,
}

async fn setup() -> Setup {
    let server = ServerBuilder::new()
        .config(r#"<listen><c2s addr="127.0.0.1:0"/><component addr="127.0.0.1:0"/></listen>"#)
        .also(&format!(
            r#"<service id="{GW}" type="external" secret="{SECRET}"/>"#
        ))
        .user("alice@localhost", "alice-pw")
        .debug()
        .start();
    let events: Events = Arc::default();
    let component_home = tempfile::tempdir().unwrap();
    let ctx = ServiceContext {
        jid: GW.into(),
        out: Outbox::channel().0,
        // The component's own spool, with the file backend, as
        // `switchboard component` gives it.
        store: ServiceStore::new(
            FileStores::open(component_home.path().join("spool"))
                .unwrap()
                .service_data,
            GW,
        ),
        key: Arc::new(SecretKey::generate()),
        config: Element::new("service", ""),
        admins: Vec::new(),
        metrics: Default::default(),
    };
    let (stop, stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(component::run(
        Arc::new(TestTransport {
            events: events.clone(),
        }),
        ctx,
        ConnectOptions::new(server.listener("component").to_string(), SECRET),
        stopped,
    ));
    Setup {
        server,
        events,
        component_home,
        stop,
    }
}

async fn iq(c: &mut RawClient, body: &str) -> String {
    let id = c.new_id("iq");
    c.send(&body.replace("@ID@", &id)).await.unwrap();
    c.read_id(&id, WAIT).await.unwrap()
}

/// Waits until the transport recorded an event starting with `prefix`.
async fn event(events: &Events, prefix: &str) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(e) = events
            .lock()
            .unwrap()
            .iter()
            .find(|e| e.starts_with(prefix))
        {
            return e.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no event {prefix:?} in {:?}",
            events.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Polls until the component is attached.
async fn wait_attached(c: &mut RawClient) {
    let deadline = Instant::now() + WAIT;
    loop {
        let r = iq(
            c,
            &format!(
                "<iq type='get' id='@ID@' to='{GW}'><query xmlns='{}'/></iq>",
                ns::DISCO_INFO
            ),
        )
        .await;
        if attr(&r, "type").as_deref() == Some("result") {
            assert!(r.contains(r#"category="gateway""#), "{r}");
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the transport never attached: {r}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_sign_on_settings_and_unregister_with_a_transport() {
    let s = setup().await;
    let mut alice = RawClient::login(
        s.server.c2s(),
        s.server.tls_config(),
        "alice",
        "alice-pw",
        "desk",
    )
    .await
    .unwrap();
    // Ask for the roster, so that this session gets roster pushes.
    iq(
        &mut alice,
        "<iq type='get' id='@ID@'><query xmlns='jabber:iq:roster'/></iq>",
    )
    .await;
    alice.send("<presence/>").await.unwrap();
    wait_attached(&mut alice).await;

    // The registration form: legacy fields and a data form.
    let form = iq(
        &mut alice,
        &format!("<iq type='get' id='@ID@' to='{GW}'><query xmlns='jabber:iq:register'/></iq>"),
    )
    .await;
    assert!(
        form.contains("<username/>") && form.contains("<password/>"),
        "{form}"
    );
    assert!(form.contains("jabber:x:data"), "{form}");

    // Registering: the transport then asks to subscribe.
    let r = iq(
        &mut alice,
        &format!(
            "<iq type='set' id='@ID@' to='{GW}'><query xmlns='jabber:iq:register'>\
             <username>alice-legacy</username><password>{LEGACY_PASSWORD}</password></query></iq>"
        ),
    )
    .await;
    assert_eq!(attr(&r, "type").as_deref(), Some("result"), "{r}");
    let sub = alice.read_until("type=\"subscribe\"", WAIT).await.unwrap();
    assert!(sub.contains(&format!(r#"from="{GW}""#)), "{sub}");
    event(&s.events, "registered alice@localhost as alice-legacy").await;

    // Approving the subscription sends the transport alice's presence,
    // which signs her on with the stored credentials.
    alice
        .send(&format!("<presence type='subscribed' to='{GW}'/>"))
        .await
        .unwrap();
    let on = event(&s.events, "sign-on alice@localhost").await;
    assert_eq!(
        on,
        format!(
            "sign-on alice@localhost as alice-legacy with {}-char password",
            LEGACY_PASSWORD.len()
        )
    );

    // The credentials are on disk, sealed, readable by the owner only.
    let dir = s
        .component_home
        .path()
        .join("spool")
        .join(GW)
        .join("registrations");
    let files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".xml"))
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let meta = files[0].metadata().unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let bytes = std::fs::read(files[0].path()).unwrap();
    let text = String::from_utf8_lossy(&bytes);
    assert!(!text.contains(LEGACY_PASSWORD), "{text}");
    assert!(!text.contains("alice-legacy"), "{text}");

    // jabber:iq:gateway translates a legacy address into a JID.
    let g = iq(
        &mut alice,
        &format!(
            "<iq type='set' id='@ID@' to='{GW}'><query xmlns='jabber:iq:gateway'><prompt>Bob Smith</prompt></query></iq>"
        ),
    )
    .await;
    assert!(g.contains(&format!(r"<jid>bob\20smith@{GW}</jid>")), "{g}");

    // An ad-hoc command offers settings.
    let items = iq(
        &mut alice,
        &format!(
            "<iq type='get' id='@ID@' to='{GW}'><query xmlns='{}' node='{}'/></iq>",
            ns::DISCO_ITEMS,
            ns::COMMANDS
        ),
    )
    .await;
    assert!(items.contains(r#"node="settings""#), "{items}");
    let step = iq(
        &mut alice,
        &format!(
            "<iq type='set' id='@ID@' to='{GW}'><command xmlns='{}' node='settings' action='execute'/></iq>",
            ns::COMMANDS
        ),
    )
    .await;
    assert!(step.contains(r#"status="executing""#), "{step}");
    let session = step
        .split("sessionid=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("a session id")
        .to_string();
    let done = iq(
        &mut alice,
        &format!(
            "<iq type='set' id='@ID@' to='{GW}'><command xmlns='{}' node='settings' sessionid='{session}' action='complete'>\
             <x xmlns='jabber:x:data' type='submit'><field var='nick'><value>ali</value></field></x></command></iq>",
            ns::COMMANDS
        ),
    )
    .await;
    assert!(done.contains(r#"status="completed""#), "{done}");
    assert!(done.contains("nick set to ali"), "{done}");

    // The last unavailable presence signs her off.
    alice.send("<presence type='unavailable'/>").await.unwrap();
    event(&s.events, "sign-off alice@localhost").await;
    alice.send("<presence/>").await.unwrap();

    // Unregistering removes the credentials and the transport's roster item.
    let r = iq(
        &mut alice,
        &format!("<iq type='set' id='@ID@' to='{GW}'><query xmlns='jabber:iq:register'><remove/></query></iq>"),
    )
    .await;
    assert_eq!(attr(&r, "type").as_deref(), Some("result"), "{r}");
    event(&s.events, "unregistered alice@localhost").await;
    let push = match alice.read_until(r#"subscription="remove""#, WAIT).await {
        Ok(p) => p,
        Err(e) => panic!(
            "no roster removal: {e:?}\n--- server log ---\n{}",
            s.server.log_text()
        ),
    };
    assert!(push.contains(&format!(r#"jid="{GW}""#)), "{push}");
    let left: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".xml"))
        .collect();
    assert!(left.is_empty(), "{left:?}");

    // Nothing secret reached the server's log, even at -D.
    let log = s.server.log_text() + &s.server.stderr_text();
    assert!(log.contains(GW), "the -D log should show the traffic");
    assert!(
        !log.contains(LEGACY_PASSWORD),
        "the legacy password is in the log"
    );
    let _ = s.stop.send(true);
}
