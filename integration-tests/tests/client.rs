//! The server as a real third-party client library sees it: `tokio-xmpp`
//! 6 (STARTTLS or direct TLS, SCRAM chosen by the library, resource
//! binding, IQ tracking) and `xmpp-parsers` stanzas, against the real
//! `switchboard` binary in a temporary home.
//!
//! These tests run on tokio's current-thread runtime on purpose: in
//! tokio-xmpp 6.0.0, `StanzaReceiver::poll_next` returns `Pending` without
//! arranging a wake-up when its mutex is held by a concurrent
//! `send_stanza`/`send_iq`, so on a multi-threaded runtime a reply that
//! arrives within that window (easy on localhost) is left unprocessed and
//! the IQ never completes. On one thread the sender never holds that lock
//! across a yield, so the race cannot happen. See `xmpp.rs`.

use switchboard_integration_tests::xmpp::{
    bind, iq, login, next_element, online, wait_stanza, Connector,
};
use switchboard_integration_tests::{TestServer, WAIT};
use tokio_xmpp::error::{AuthError, Error};
use tokio_xmpp::jid::{BareJid, Jid};
use tokio_xmpp::minidom::Element;
use tokio_xmpp::parsers::disco::{DiscoInfoQuery, DiscoInfoResult};
use tokio_xmpp::parsers::message::{Lang, Message, MessageType};
use tokio_xmpp::parsers::ping::Ping;
use tokio_xmpp::parsers::presence::Presence;
use tokio_xmpp::parsers::sasl::DefinedCondition as SaslCondition;
use tokio_xmpp::parsers::stanza_error::{DefinedCondition, StanzaError};
use tokio_xmpp::parsers::stream_error::DefinedCondition as StreamCondition;
use tokio_xmpp::parsers::version::{VersionQuery, VersionResult};
use tokio_xmpp::xmlstream::XmppStreamElement;
use tokio_xmpp::{Client, IqRequest, IqResponse, Stanza};

const PASSWORD: &str = "correct horse battery staple";

fn server_with(users: &[&str]) -> TestServer {
    let server = TestServer::start(&[]);
    for user in users {
        server.add_user(user, PASSWORD);
    }
    server
}

async fn ping(client: &mut Client, to: &str) -> IqResponse {
    iq(client, to, IqRequest::Get(Ping.into())).await
}

fn bare(jid: &str) -> BareJid {
    jid.parse().expect("valid bare JID")
}

/// tokio-xmpp with channel binding picks SCRAM-SHA-256-PLUS here.
#[tokio::test]
async fn scram_login_over_starttls_binds_and_answers_ping() {
    let server = server_with(&["alice@localhost"]);
    let mut client = Connector::starttls(&server).client("alice@localhost", PASSWORD);
    let jid = online(&mut client).await;
    assert_eq!(jid.to_bare(), bare("alice@localhost"));
    assert!(
        !jid.resource().as_str().is_empty(),
        "the server picks a resource"
    );

    let resp = ping(&mut client, "localhost").await;
    assert!(
        matches!(resp, IqResponse::Result(_)),
        "ping answered with {resp:?}"
    );
    client.send_end().await.expect("clean close");
}

#[tokio::test]
async fn tls_stream_offers_scram_and_no_starttls() {
    let server = server_with(&[]);
    let connector = Connector::starttls(&server);
    // Stop right after TLS: the features the library saw there.
    use tokio_xmpp::connect::ServerConnector;
    let jid: Jid = "alice@localhost".parse().unwrap();
    let (pending, _) = connector
        .connect(
            &jid,
            tokio_xmpp::parsers::ns::JABBER_CLIENT,
            tokio_xmpp::xmlstream::Timeouts::tight(),
        )
        .await
        .expect("STARTTLS with the generated certificate");
    let (features, _) = tokio::time::timeout(
        WAIT,
        pending.recv_features::<tokio_xmpp::xmlstream::FallibleStreamElement>(),
    )
    .await
    .expect("features in time")
    .expect("features after TLS");
    let mechs = &features.sasl_mechanisms;
    assert!(
        mechs.contains("SCRAM-SHA-256") && mechs.contains("SCRAM-SHA-1"),
        "SASL mechanisms after TLS: {mechs:?}"
    );
    // With tls-exporter data the library only tries the -PLUS variants of
    // SCRAM (then PLAIN): the login test above relies on this one.
    assert!(
        mechs.contains("SCRAM-SHA-256-PLUS"),
        "channel binding offered after TLS 1.3: {mechs:?}"
    );
    assert!(
        features.starttls.is_none(),
        "STARTTLS offered again after TLS"
    );
}

#[tokio::test]
async fn login_without_channel_binding_uses_scram_sha_256() {
    let server = server_with(&["alice@localhost"]);
    let connector = Connector::starttls(&server).with_channel_binding(false);
    let mut client = connector.client("alice@localhost", PASSWORD);
    let jid = online(&mut client).await;
    assert_eq!(jid.to_bare(), bare("alice@localhost"));
    let resp = ping(&mut client, "localhost").await;
    assert!(matches!(resp, IqResponse::Result(_)), "{resp:?}");
}

#[tokio::test]
async fn direct_tls_login_works() {
    let server = server_with(&["alice@localhost"]);
    let mut client = Connector::direct_tls(&server).client("alice@localhost", PASSWORD);
    let jid = online(&mut client).await;
    assert_eq!(jid.to_bare(), bare("alice@localhost"));
    let resp = ping(&mut client, "localhost").await;
    assert!(matches!(resp, IqResponse::Result(_)), "{resp:?}");
}

fn assert_not_authorized<T>(result: Result<T, Error>, what: &str) {
    match result {
        Err(Error::Auth(AuthError::Fail(SaslCondition::NotAuthorized))) => {}
        Err(other) => panic!("{what}: expected SASL <not-authorized/>, got {other:?}"),
        Ok(_) => panic!("{what}: the server let us in"),
    }
}

#[tokio::test]
async fn wrong_password_and_unknown_user_fail_alike() {
    let server = server_with(&["alice@localhost"]);
    let connector = Connector::starttls(&server);

    let wrong = login(&connector, "alice@localhost", "not the password").await;
    assert_not_authorized(wrong, "wrong password");

    let unknown = login(&connector, "nobody@localhost", PASSWORD).await;
    assert_not_authorized(unknown, "unknown user");

    // The same connector with the right password does get in.
    let (_, _stream) = login(&connector, "alice@localhost", PASSWORD)
        .await
        .expect("the right password works");
}

#[tokio::test]
async fn jids_are_normalized_at_user_add() {
    let server = server_with(&[]);
    server.add_user("Alice@LOCALHOST", PASSWORD);

    let list = server.cli(&["user", "list", "localhost"], None);
    assert!(list.status.success(), "user list failed: {list}");
    assert!(
        list.stdout.lines().any(|l| l.trim() == "alice@localhost"),
        "user list should show the normalized JID: {list}"
    );

    let mut client = Connector::starttls(&server).client("alice@localhost", PASSWORD);
    let jid = online(&mut client).await;
    assert_eq!(jid.to_bare(), bare("alice@localhost"));
}

#[tokio::test]
async fn binding_the_same_resource_twice_kicks_the_first_with_conflict() {
    let server = server_with(&["alice@localhost"]);
    let connector = Connector::starttls(&server);

    let (mut first, jid) = bind(&connector, "alice@localhost/desk", PASSWORD)
        .await
        .expect("first session binds");
    assert_eq!(jid.to_string(), "alice@localhost/desk");

    let mut second = connector.client("alice@localhost/desk", PASSWORD);
    let jid2 = online(&mut second).await;
    assert_eq!(
        jid2.to_string(),
        "alice@localhost/desk",
        "the new session gets the resource"
    );

    let mut got = Vec::new();
    let condition = loop {
        match next_element(&mut first, WAIT).await {
            Some(XmppStreamElement::StreamError(e)) => break Some(e.0.condition),
            Some(other) => got.push(format!("{other:?}")),
            None => break None,
        }
    };
    assert_eq!(
        condition,
        Some(StreamCondition::Conflict),
        "the first session should end with <conflict/>; before that it got {got:?}"
    );

    let resp = ping(&mut second, "localhost").await;
    assert!(
        matches!(resp, IqResponse::Result(_)),
        "second session still works: {resp:?}"
    );
}

/// The first chat message with a body that `client` receives, with its
/// sender.
async fn receive_chat(client: &mut Client) -> (Option<Jid>, String) {
    wait_stanza(client, WAIT, |st| match st {
        Stanza::Message(m) if m.type_ != MessageType::Error => m
            .get_best_body(vec![])
            .map(|(_, body)| (m.from.clone(), body.clone())),
        _ => None,
    })
    .await
    .expect("a chat message within the wait")
}

#[tokio::test]
async fn two_users_chat_both_ways() {
    let server = server_with(&["alice@localhost", "bob@localhost"]);
    let connector = Connector::starttls(&server);
    let mut alice = connector.client("alice@localhost", PASSWORD);
    let mut bob = connector.client("bob@localhost", PASSWORD);
    let alice_jid = online(&mut alice).await;
    let bob_jid = online(&mut bob).await;

    // Both go available, as every client does; a ping round trip after it
    // makes sure the server has seen the presence before the message.
    for client in [&mut alice, &mut bob] {
        client
            .send_stanza(Presence::available().into())
            .await
            .expect("send presence");
        let resp = ping(client, "localhost").await;
        assert!(matches!(resp, IqResponse::Result(_)), "{resp:?}");
    }

    let to_bob = Message::chat(Some(Jid::from(bob_jid.to_bare())))
        .with_body(Lang::default(), "Hello Bob, it is Alice".into());
    alice.send_stanza(to_bob.into()).await.expect("send to bob");
    let (from, body) = receive_chat(&mut bob).await;
    assert_eq!(body, "Hello Bob, it is Alice");
    assert_eq!(
        from,
        Some(Jid::from(alice_jid.clone())),
        "from is Alice's full JID"
    );

    let to_alice = Message::chat(Some(Jid::from(alice_jid.clone())))
        .with_body(Lang::default(), "Hi Alice — Bob here".into());
    bob.send_stanza(to_alice.into())
        .await
        .expect("send to alice");
    let (from, body) = receive_chat(&mut alice).await;
    assert_eq!(body, "Hi Alice — Bob here");
    assert_eq!(from, Some(Jid::from(bob_jid)), "from is Bob's full JID");
}

#[tokio::test]
async fn server_disco_info_and_version() {
    let server = server_with(&["alice@localhost"]);
    let mut client = Connector::starttls(&server).client("alice@localhost", PASSWORD);
    online(&mut client).await;

    let resp = iq(
        &mut client,
        "localhost",
        IqRequest::Get(DiscoInfoQuery { node: None }.into()),
    )
    .await;
    let IqResponse::Result(Some(payload)) = resp else {
        panic!("disco#info to the server: {resp:?}");
    };
    let info = DiscoInfoResult::try_from(payload).expect("a disco#info result");
    for feature in [
        "http://jabber.org/protocol/disco#info",
        "urn:xmpp:ping",
        "jabber:iq:version",
    ] {
        assert!(
            info.features.contains(feature),
            "{feature} missing from {:?}",
            info.features
        );
    }
    assert!(
        info.identities.iter().any(|i| i.category == "server"),
        "a server identity: {:?}",
        info.identities
    );

    let resp = iq(
        &mut client,
        "localhost",
        IqRequest::Get(VersionQuery.into()),
    )
    .await;
    let IqResponse::Result(Some(payload)) = resp else {
        panic!("jabber:iq:version to the server: {resp:?}");
    };
    let version = VersionResult::try_from(payload).expect("a version result");
    assert_eq!(version.name, "Switchboard");
    assert!(!version.version.is_empty(), "a version number");
}

fn condition_of(error: &StanzaError) -> DefinedCondition {
    error.defined_condition.clone()
}

#[tokio::test]
async fn unreachable_domains_and_unknown_namespaces_get_stanza_errors() {
    let server = server_with(&["alice@localhost"]);
    let mut client = Connector::starttls(&server).client("alice@localhost", PASSWORD);
    online(&mut client).await;

    // An IQ to another domain: no server-to-server, so no route.
    let resp = ping(&mut client, "elsewhere.example").await;
    match &resp {
        IqResponse::Error(e) => {
            assert_eq!(
                condition_of(e),
                DefinedCondition::RemoteServerNotFound,
                "{e:?}"
            )
        }
        other => panic!("IQ to elsewhere.example: expected an error, got {other:?}"),
    }

    // A message to someone there bounces the same way.
    let to: Jid = "someone@elsewhere.example".parse().unwrap();
    let msg = Message::chat(Some(to.clone())).with_body(Lang::default(), "anyone there?".into());
    client.send_stanza(msg.into()).await.expect("send");
    let bounced = wait_stanza(&mut client, WAIT, |st| match st {
        Stanza::Message(m) if m.type_ == MessageType::Error => Some(m.clone()),
        _ => None,
    })
    .await
    .expect("an error message back within the wait");
    assert_eq!(
        bounced.from,
        Some(to),
        "the bounce comes from the address we wrote to"
    );
    let error = bounced
        .payloads
        .iter()
        .find_map(|p| StanzaError::try_from(p.clone()).ok())
        .unwrap_or_else(|| panic!("no <error/> in {bounced:?}"));
    assert_eq!(condition_of(&error), DefinedCondition::RemoteServerNotFound);

    // An IQ get the server does not understand.
    let unknown = Element::builder("query", "urn:example:no-such-protocol").build();
    let resp = iq(&mut client, "localhost", IqRequest::Get(unknown)).await;
    match &resp {
        IqResponse::Error(e) => {
            assert_eq!(
                condition_of(e),
                DefinedCondition::ServiceUnavailable,
                "{e:?}"
            )
        }
        other => panic!("unknown namespace: expected an error, got {other:?}"),
    }

    // And the session is still fine afterwards.
    let resp = ping(&mut client, "localhost").await;
    assert!(matches!(resp, IqResponse::Result(_)), "{resp:?}");
}
