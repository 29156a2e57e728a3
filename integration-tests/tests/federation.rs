//! Federation between two real `switchboard` processes on loopback, each
//! with a domain of its own (`localhost` and `b.test`), certificates from
//! a CA made for the test, s2s listeners on addresses of their own in
//! 127.0.0.0/8 and `<connect>` entries, or a name server of the test's
//! answering SRV and A records:
//!
//! * messages, subscriptions, presence and IQs both ways, errors for a
//!   remote sender, offline storage of a remote sender's message, the
//!   links as admins see them, 500 messages in order, a room here joined
//!   from the other server; mutual subscriptions, then unavailable and
//!   probes across; blocking a remote user; carbons of remote chats; a
//!   transport closed to users of other servers;
//! * DNS: SRV records in priority order with a fallback, XEP-0368 direct
//!   TLS, a domain without records, a domain that says "not offered";
//! * refusals: a self-signed, expired or wrong-name certificate under
//!   secure-auth (both directions); dialback when the policy allows it,
//!   and a forged dialback key;
//! * failures: a peer that accepts and never answers (queued stanzas
//!   bounce with remote-server-timeout, in order), nothing listening
//!   (remote-server-not-found);
//! * a hostile raw peer: an unsolicited dialback "valid", a forged `from`
//!   after authenticating, a dialback claim for a domain its certificate
//!   does not cover, relaying to a third server, a stanza over the size
//!   limit, restricted XML, the pre-authentication timeout;
//! * the stanza rate per incoming link: a flooding peer is read more
//!   slowly, loses nothing and keeps its link, and another peer's stanza
//!   passes while the flood still trickles in.
//!
//! Every "must not arrive" is a barrier after the server has provably
//! finished with the stanza that could have caused it.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use switchboard_integration_tests::client::reset_trace;
use switchboard_integration_tests::dns::{Dns, Zone};
use switchboard_integration_tests::federation::{loopback_addr, Ca, CertKind, Peer};
use switchboard_integration_tests::raw::{attr, local_name};
use switchboard_integration_tests::{Client, RawClient, TestServer, WAIT};

const A: &str = "localhost";
const B: &str = "b.test";
const PW: &str = "federated-secret";
const STANZAS: &str = "urn:ietf:params:xml:ns:xmpp-stanzas";

/// Two federating servers: `localhost` (alice, carol) and `b.test` (bob).
struct World {
    ca: Ca,
    a: TestServer,
    b: TestServer,
    a_s2s: SocketAddr,
}

fn world_with(a: Peer, b: Peer) -> World {
    reset_trace();
    let ca = Ca::new();
    let a_s2s = a.s2s;
    let server_a = a
        .builder(&ca, &[(B, b.s2s, false)])
        .user(&format!("alice@{A}"), PW)
        .user(&format!("carol@{A}"), PW)
        .start();
    // b.test finds localhost's services where it finds localhost (as an
    // SRV record for each service hostname would say).
    let mut to_a = vec![(A, a.s2s, false)];
    to_a.extend(a.services.iter().map(|s| (s.as_str(), a.s2s, false)));
    let server_b = b.builder(&ca, &to_a).user(&format!("bob@{B}"), PW).start();
    World {
        ca,
        a: server_a,
        b: server_b,
        a_s2s,
    }
}

fn world() -> World {
    let mut a = Peer::new(A);
    a.services = vec![format!("conference.{A}")];
    world_with(a, Peer::new(B))
}

impl World {
    async fn alice(&self) -> Client {
        Client::online_at(&self.a, self.ca.client_config(), A, "alice", PW, "desk", 0).await
    }

    async fn bob(&self) -> Client {
        Client::online_at(&self.b, self.ca.client_config(), B, "bob", PW, "phone", 0).await
    }
}

fn error_condition(el: &str) -> Option<String> {
    let at = el.find(STANZAS)?;
    let before = &el[..at];
    let open = before.rfind('<')?;
    Some(
        before[open + 1..]
            .split(|c: char| c.is_whitespace() || c == '/' || c == '>')
            .next()?
            .to_string(),
    )
}

fn is_message_from(el: &str, from: &str, body: &str) -> bool {
    local_name(el) == "message"
        && attr(el, "from").as_deref() == Some(from)
        && el.contains(&format!("<body>{body}</body>"))
}

fn is_error(el: &str, kind: &str, id: &str, condition: &str) -> bool {
    local_name(el) == kind
        && attr(el, "type").as_deref() == Some("error")
        && attr(el, "id").as_deref() == Some(id)
        && error_condition(el).as_deref() == Some(condition)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_subscriptions_presence_and_iqs_cross_both_ways() {
    let w = world();
    let mut alice = w.alice().await;
    let mut bob = w.bob().await;

    // A message each way.
    alice
        .send("<message to='bob@b.test' type='chat' id='m1'><body>hello bob</body></message>")
        .await;
    bob.expect("alice's message", |e| {
        is_message_from(e, "alice@localhost/desk", "hello bob")
    })
    .await;
    bob.send(
        "<message to='alice@localhost/desk' type='chat' id='m2'><body>hi alice</body></message>",
    )
    .await;
    alice
        .expect("bob's answer", |e| {
            is_message_from(e, "bob@b.test/phone", "hi alice")
        })
        .await;

    // Subscription: alice asks, bob approves, alice sees bob online.
    alice
        .send("<presence to='bob@b.test' type='subscribe'/>")
        .await;
    alice
        .expect("the roster push with ask", |e| {
            e.contains("jabber:iq:roster") && e.contains("bob@b.test") && e.contains("ask=")
        })
        .await;
    bob.expect("alice's subscription request", |e| {
        local_name(e) == "presence"
            && attr(e, "type").as_deref() == Some("subscribe")
            && attr(e, "from").as_deref() == Some("alice@localhost")
    })
    .await;
    bob.send("<presence to='alice@localhost' type='subscribed'/>")
        .await;
    bob.expect("bob's own roster push", |e| {
        e.contains("jabber:iq:roster") && e.contains("alice@localhost")
    })
    .await;
    alice
        .expect("the roster push: subscription to", |e| {
            e.contains("jabber:iq:roster")
                && (e.contains("subscription=\"to\"") || e.contains("subscription='to'"))
        })
        .await;
    alice
        .expect("bob's approval", |e| {
            local_name(e) == "presence"
                && attr(e, "type").as_deref() == Some("subscribed")
                && attr(e, "from").as_deref() == Some("bob@b.test")
        })
        .await;
    alice
        .expect("bob's presence", |e| {
            local_name(e) == "presence"
                && attr(e, "from").as_deref() == Some("bob@b.test/phone")
                && attr(e, "type").is_none()
        })
        .await;
    // IQs to the other server and to a remote account.
    let ping = alice
        .iq("get", Some(B), "<ping xmlns='urn:xmpp:ping'/>")
        .await;
    assert_eq!(attr(&ping, "type").as_deref(), Some("result"), "{ping}");
    assert_eq!(attr(&ping, "from").as_deref(), Some(B), "{ping}");
    let version = alice
        .iq("get", Some(B), "<query xmlns='jabber:iq:version'/>")
        .await;
    assert!(version.contains("Switchboard"), "{version}");
    // alice's vCard, read from the other server.
    let set = alice
        .iq(
            "set",
            None,
            "<vCard xmlns='vcard-temp'><FN>Alice Federated</FN></vCard>",
        )
        .await;
    assert_eq!(attr(&set, "type").as_deref(), Some("result"), "{set}");
    let vcard = bob
        .iq(
            "get",
            Some("alice@localhost"),
            "<vCard xmlns='vcard-temp'/>",
        )
        .await;
    assert_eq!(attr(&vcard, "type").as_deref(), Some("result"), "{vcard}");
    assert_eq!(
        attr(&vcard, "from").as_deref(),
        Some("alice@localhost"),
        "{vcard}"
    );
    assert!(vcard.contains("Alice Federated"), "{vcard}");
    let disco = bob
        .iq(
            "get",
            Some(A),
            "<query xmlns='http://jabber.org/protocol/disco#items'/>",
        )
        .await;
    assert!(disco.contains("conference.localhost"), "{disco}");

    // An error for a remote sender goes back over the link.
    bob.send("<message to='nobody@localhost' type='chat' id='m3'><body>?</body></message>")
        .await;
    bob.expect("service-unavailable for a user who does not exist", |e| {
        is_error(e, "message", "m3", "service-unavailable")
    })
    .await;

    // Admins see both directions of both servers' links.
    let links = w.a.cli(&["s2s"], None);
    assert!(links.status.success(), "{links}");
    assert!(
        links
            .stdout
            .contains("localhost -> b.test established (certificate)"),
        "{links}"
    );
    assert!(
        links
            .stdout
            .contains("localhost <- b.test established (certificate)"),
        "{links}"
    );
    alice.barrier().await;
    bob.barrier().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_senders_message_is_stored_offline_and_delivered_at_login() {
    let w = world();
    let mut bob = w.bob().await;
    bob.send("<message to='carol@localhost' type='chat' id='off1'><body>while you were out</body></message>")
        .await;
    // carol has no session: the message is stored; a vCard get to carol's
    // account goes through her actor after it.
    bob.iq(
        "get",
        Some("carol@localhost"),
        "<vCard xmlns='vcard-temp'/>",
    )
    .await;
    let mut carol =
        Client::online_at(&w.a, w.ca.client_config(), A, "carol", PW, "laptop", 0).await;
    let m = carol
        .expect("the stored message", |e| {
            is_message_from(e, "bob@b.test/phone", "while you were out")
        })
        .await;
    assert!(m.contains("urn:xmpp:delay"), "{m}");
    carol.account_barrier().await;
    bob.barrier().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_messages_in_a_burst_arrive_in_order() {
    let w = world();
    let mut alice = w.alice().await;
    let mut bob = w.bob().await;
    let mut burst = String::new();
    for n in 0..500 {
        burst.push_str(&format!(
            "<message to='bob@b.test/phone' type='chat' id='b{n}'><body>{n}</body></message>"
        ));
    }
    alice.send(&burst).await;
    for n in 0..500 {
        let want = n.to_string();
        bob.expect_next(&format!("message {n}"), |e| {
            is_message_from(e, "alice@localhost/desk", &want)
        })
        .await;
    }
    bob.barrier().await;
    alice.barrier().await;
}

/// A server with `kind` of certificate at b.test; a server with a valid
/// one at localhost, under secure-auth (the default) on both.
async fn refused(kind: CertKind) {
    let mut b = Peer::new(B);
    b.cert = kind;
    let w = world_with(Peer::new(A), b);
    let mut alice = w.alice().await;
    // Our link to b.test: its certificate does not verify.
    alice
        .send("<message to='bob@b.test' type='chat' id='r1'><body>x</body></message>")
        .await;
    let bounce = alice
        .expect("the bounce", |e| {
            is_error(e, "message", "r1", "remote-server-not-found")
        })
        .await;
    assert!(bounce.contains("certificate"), "{kind:?}: {bounce}");
    alice.barrier().await;
    // b.test's link to us: we refuse its certificate, and dialback without
    // one (secure-auth).
    let tls = match kind {
        CertKind::SelfSigned => {
            switchboard_integration_tests::server::trusting(&Peer::self_signed_path(w.b.home(), B))
        }
        _ => insecure_client(),
    };
    let mut bob = Client::online_at(&w.b, tls, B, "bob", PW, "phone", 0).await;
    bob.send("<message to='alice@localhost' type='chat' id='r2'><body>y</body></message>")
        .await;
    let bounce = bob
        .expect("the bounce from b.test's side", |e| {
            is_error(e, "message", "r2", "remote-server-not-found")
        })
        .await;
    assert!(bounce.contains("did not accept"), "{kind:?}: {bounce}");
    bob.barrier().await;
    alice.barrier().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_self_signed_peer_is_refused_under_secure_auth() {
    refused(CertKind::SelfSigned).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_certificate_is_refused() {
    refused(CertKind::Expired).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_for_another_name_is_refused() {
    refused(CertKind::WrongName).await;
}

/// A client config that accepts any server certificate (to log in to a
/// server whose certificate is deliberately bad).
fn insecure_client() -> std::sync::Arc<rustls::ClientConfig> {
    #[derive(Debug)]
    struct Any(std::sync::Arc<rustls::crypto::CryptoProvider>);
    impl rustls::client::danger::ServerCertVerifier for Any {
        fn verify_server_cert(
            &self,
            _: &rustls::pki_types::CertificateDer<'_>,
            _: &[rustls::pki_types::CertificateDer<'_>],
            _: &rustls::pki_types::ServerName<'_>,
            _: &[u8],
            _: rustls::pki_types::UnixTime,
        ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
            Ok(rustls::client::danger::ServerCertVerified::assertion())
        }
        fn verify_tls12_signature(
            &self,
            m: &[u8],
            c: &rustls::pki_types::CertificateDer<'_>,
            d: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls12_signature(
                m,
                c,
                d,
                &self.0.signature_verification_algorithms,
            )
        }
        fn verify_tls13_signature(
            &self,
            m: &[u8],
            c: &rustls::pki_types::CertificateDer<'_>,
            d: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(
                m,
                c,
                d,
                &self.0.signature_verification_algorithms,
            )
        }
        fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
            self.0.signature_verification_algorithms.supported_schemes()
        }
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    std::sync::Arc::new(
        rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap()
            .dangerous()
            .with_custom_certificate_verifier(std::sync::Arc::new(Any(provider)))
            .with_no_client_auth(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dialback_lets_self_signed_peers_in_when_the_policy_allows_it() {
    let mut a = Peer::new(A);
    a.cert = CertKind::SelfSigned;
    a.policy = "secure-auth=\"false\"".into();
    let mut b = Peer::new(B);
    b.cert = CertKind::SelfSigned;
    b.policy = "secure-auth=\"false\"".into();
    let w = world_with(a, b);
    let a_tls =
        switchboard_integration_tests::server::trusting(&Peer::self_signed_path(w.a.home(), A));
    let b_tls =
        switchboard_integration_tests::server::trusting(&Peer::self_signed_path(w.b.home(), B));
    let mut alice = Client::online_at(&w.a, a_tls.clone(), A, "alice", PW, "desk", 0).await;
    let mut bob = Client::online_at(&w.b, b_tls, B, "bob", PW, "phone", 0).await;
    alice
        .send("<message to='bob@b.test' type='chat' id='d1'><body>by dialback</body></message>")
        .await;
    bob.expect("alice's message", |e| {
        is_message_from(e, "alice@localhost/desk", "by dialback")
    })
    .await;
    bob.send("<message to='alice@localhost' type='chat' id='d2'><body>and back</body></message>")
        .await;
    alice
        .expect("bob's message", |e| {
            is_message_from(e, "bob@b.test/phone", "and back")
        })
        .await;
    let links = w.a.cli(&["s2s"], None);
    assert!(
        links
            .stdout
            .contains("localhost -> b.test established (dialback)"),
        "{links}"
    );
    assert!(
        links
            .stdout
            .contains("localhost <- b.test established (dialback)"),
        "{links}"
    );

    // A hostile peer claims b.test with a key b.test never made: the
    // authoritative server (the real b.test) says invalid.
    let mut evil = s2s_connect_with(w.a_s2s, "evil.test", a_tls).await;
    evil.send("<db:result from='b.test' to='localhost'>0000forged0000</db:result>")
        .await
        .unwrap();
    let answer = evil.read_element(WAIT).await.unwrap();
    assert_eq!(
        attr(&answer, "type").as_deref(),
        Some("invalid"),
        "{answer}"
    );
    // Stanzas for b.test from it are refused, and reach nobody.
    evil.send("<message from='bob@b.test' to='alice@localhost'><body>forged</body></message>")
        .await
        .unwrap();
    let rest = evil.read_to_close(WAIT).await.unwrap();
    assert!(rest.contains("invalid-from"), "{rest}");
    alice.barrier().await;
    bob.barrier().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_never_answers_times_out_and_queued_stanzas_bounce_in_order() {
    reset_trace();
    let ca = Ca::new();
    // Accepts connections (the kernel does, into the backlog) and never
    // says a word.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let mut a = Peer::new(A);
    a.timeout = "2s";
    let server = a
        .builder(
            &ca,
            &[
                ("silent.test", silent.local_addr().unwrap(), false),
                ("closed.test", closed, false),
            ],
        )
        .user("alice@localhost", PW)
        .start();
    let mut alice = Client::online_at(&server, ca.client_config(), A, "alice", PW, "desk", 0).await;
    for n in 1..=3 {
        alice
            .send(&format!(
                "<message to='x@silent.test' type='chat' id='t{n}'><body>{n}</body></message>"
            ))
            .await;
    }
    for n in 1..=3 {
        let id = format!("t{n}");
        let bounce = alice
            .expect_next(&format!("the bounce of {id}"), |e| {
                is_error(e, "message", &id, "remote-server-timeout")
            })
            .await;
        assert!(bounce.contains("silent.test"), "{bounce}");
    }
    // Nothing listening: not found, at once.
    alice
        .send("<message to='x@closed.test' type='chat' id='c1'><body>?</body></message>")
        .await;
    let bounce = alice
        .expect("the bounce for closed.test", |e| {
            is_error(e, "message", "c1", "remote-server-not-found")
        })
        .await;
    assert!(bounce.contains("could not connect"), "{bounce}");
    // An IQ gets its error too (and the server's own answer afterwards).
    let iq = alice
        .iq("get", Some("closed.test"), "<ping xmlns='urn:xmpp:ping'/>")
        .await;
    assert_eq!(
        error_condition(&iq).as_deref(),
        Some("remote-server-not-found"),
        "{iq}"
    );
    alice.barrier().await;
    drop(silent);
}

/// A raw peer server: connects to `addr`, opens a stream from `from` to
/// localhost, STARTTLS presenting a CA certificate for `cert_for` (or
/// none), and reads the features after TLS.
async fn s2s_connect(addr: SocketAddr, from: &str, ca: &Ca, cert_for: Option<&str>) -> RawClient {
    let identity = cert_for.map(|name| ca.issue(&[name], CertKind::Valid));
    let tls = ca.client_config_with(identity.as_ref().map(|(c, k)| (c.as_str(), k.as_str())));
    s2s_connect_with(addr, from, tls).await
}

/// [`s2s_connect`] with a TLS configuration of the caller's (a server
/// whose certificate the test CA did not issue).
async fn s2s_connect_with(
    addr: SocketAddr,
    from: &str,
    tls: std::sync::Arc<rustls::ClientConfig>,
) -> RawClient {
    let header = format!(
        "<?xml version='1.0'?><stream:stream xmlns='jabber:server' \
         xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' \
         from='{from}' to='localhost' version='1.0'>"
    );
    let mut c = RawClient::connect(addr).await.unwrap();
    c.send(&header).await.unwrap();
    c.read_stream_header(WAIT).await.unwrap();
    let features = c.read_element(WAIT).await.unwrap();
    assert!(features.contains("<required"), "{features}");
    c.starttls(tls).await.unwrap();
    c.send(&header).await.unwrap();
    c.read_stream_header(WAIT).await.unwrap();
    c.read_element(WAIT).await.unwrap();
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_peer_cannot_forge_dialback_or_from() {
    let w = world();
    let mut alice = w.alice().await;

    // An unsolicited "valid" answer is no authentication.
    let mut evil = s2s_connect(w.a_s2s, "evil.test", &w.ca, Some("evil.test")).await;
    evil.send("<db:result from='b.test' to='localhost' type='valid'/>")
        .await
        .unwrap();
    let rest = evil.read_to_close(WAIT).await.unwrap();
    assert!(rest.contains("<not-authorized"), "{rest}");

    // Authenticated as evil.test (a valid certificate), it cannot speak
    // for b.test.
    let mut evil = s2s_connect(w.a_s2s, "evil.test", &w.ca, Some("evil.test")).await;
    evil.send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='EXTERNAL'>=</auth>")
        .await
        .unwrap();
    let success = evil.read_element(WAIT).await.unwrap();
    assert_eq!(local_name(&success), "success", "{success}");
    evil.send("<?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' from='evil.test' to='localhost' version='1.0'>")
        .await
        .unwrap();
    evil.read_stream_header(WAIT).await.unwrap();
    evil.read_element(WAIT).await.unwrap();
    evil.send("<message from='bob@b.test/x' to='alice@localhost/desk' type='chat'><body>forged</body></message>")
        .await
        .unwrap();
    let rest = evil.read_to_close(WAIT).await.unwrap();
    assert!(rest.contains("<invalid-from"), "{rest}");

    // A dialback claim for a domain its certificate does not cover, under
    // secure-auth: refused without asking anyone.
    let mut evil = s2s_connect(w.a_s2s, "evil.test", &w.ca, Some("evil.test")).await;
    evil.send("<db:result from='b.test' to='localhost'>0123abcd</db:result>")
        .await
        .unwrap();
    let answer = evil.read_element(WAIT).await.unwrap();
    assert_eq!(attr(&answer, "type").as_deref(), Some("error"), "{answer}");
    assert!(answer.contains("not-authorized"), "{answer}");

    // What it may do: speak for itself, to an account here.
    let mut evil = s2s_connect(w.a_s2s, "evil.test", &w.ca, Some("evil.test")).await;
    evil.send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='EXTERNAL'/>")
        .await
        .unwrap();
    evil.read_element(WAIT).await.unwrap();
    evil.send("<?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' from='evil.test' to='localhost' version='1.0'>")
        .await
        .unwrap();
    evil.read_stream_header(WAIT).await.unwrap();
    evil.read_element(WAIT).await.unwrap();
    evil.send("<message from='eve@evil.test/x' to='alice@localhost/desk' type='chat' id='e1'><body>honest</body></message>")
        .await
        .unwrap();
    alice
        .expect("the honest message", |e| {
            is_message_from(e, "eve@evil.test/x", "honest")
        })
        .await;
    // Nothing forged arrived before it.
    alice.barrier().await;

    // Relaying to a third server is refused.
    evil.send(
        "<message from='eve@evil.test/x' to='bob@b.test' type='chat'><body>relay?</body></message>",
    )
    .await
    .unwrap();
    let rest = evil.read_to_close(WAIT).await.unwrap();
    assert!(rest.contains("<host-unknown"), "{rest}");

    // A stanza over the server's size limit (max-stanza-bytes, 256 KiB
    // in the tests' config), as for clients: the stream ends, nothing of
    // it is delivered.
    let mut evil = s2s_connect(w.a_s2s, "evil.test", &w.ca, Some("evil.test")).await;
    evil.send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='EXTERNAL'/>")
        .await
        .unwrap();
    evil.read_element(WAIT).await.unwrap();
    evil.send("<?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' from='evil.test' to='localhost' version='1.0'>")
        .await
        .unwrap();
    evil.read_stream_header(WAIT).await.unwrap();
    evil.read_element(WAIT).await.unwrap();
    let big = "x".repeat(260 * 1024);
    // The server may close before it has read it all.
    let _ = evil
        .send(&format!(
            "<message from='eve@evil.test/x' to='alice@localhost/desk' type='chat' id='big'><body>{big}</body></message>"
        ))
        .await;
    let rest = evil.read_to_close(WAIT).await.unwrap();
    assert!(rest.contains("<policy-violation"), "{rest}");
    alice.barrier().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_input_before_authentication_is_refused_and_bounded_in_time() {
    reset_trace();
    let ca = Ca::new();
    let mut a = Peer::new(A);
    a.timeout = "1s";
    let addr = a.s2s;
    let server = a.builder(&ca, &[]).start();

    // Restricted XML.
    let mut c = RawClient::connect(addr).await.unwrap();
    c.send("<?xml version='1.0'?><!DOCTYPE stream [<!ENTITY x 'y'>]><stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>")
        .await
        .unwrap();
    let rest = c.read_to_close(WAIT).await.unwrap();
    assert!(rest.contains("restricted-xml"), "{rest}");

    // Stanzas before TLS.
    let mut c = RawClient::connect(addr).await.unwrap();
    c.send("<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' from='evil.test' to='localhost' version='1.0'><message from='x@evil.test' to='alice@localhost'/>")
        .await
        .unwrap();
    let rest = c.read_to_close(WAIT).await.unwrap();
    assert!(rest.contains("policy-violation"), "{rest}");

    // Silence: closed after the set-up timeout.
    let mut c = RawClient::connect(addr).await.unwrap();
    c.send("<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' from='slow.test' to='localhost' version='1.0'>")
        .await
        .unwrap();
    let rest = c.read_to_close(Duration::from_secs(10)).await.unwrap();
    assert!(rest.contains("connection-timeout"), "{rest}");
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_of_another_server_joins_a_room_here() {
    let w = world();
    let mut alice = w.alice().await;
    let mut bob = w.bob().await;
    let room = "lounge@conference.localhost";
    let muc = "http://jabber.org/protocol/muc";

    // alice makes the room (an instant room).
    alice
        .send(&format!(
            "<presence to='{room}/alice'><x xmlns='{muc}'/></presence>"
        ))
        .await;
    alice
        .expect("the room created", |e| {
            local_name(e) == "presence"
                && attr(e, "from").as_deref() == Some(&format!("{room}/alice"))
                && e.contains("code=\"201\"")
        })
        .await;
    let created = alice
        .iq(
            "set",
            Some(room),
            "<query xmlns='http://jabber.org/protocol/muc#owner'>\
             <x xmlns='jabber:x:data' type='submit'/></query>",
        )
        .await;
    assert_eq!(
        attr(&created, "type").as_deref(),
        Some("result"),
        "{created}"
    );
    alice
        .expect("the subject", |e| {
            local_name(e) == "message" && e.contains("<subject")
        })
        .await;

    // bob, of b.test, enters: the room's answers cross back to b.test on
    // the link from conference.localhost.
    bob.send(&format!(
        "<presence to='{room}/bob'><x xmlns='{muc}'/></presence>"
    ))
    .await;
    bob.expect("alice's presence in the room", |e| {
        local_name(e) == "presence" && attr(e, "from").as_deref() == Some(&format!("{room}/alice"))
    })
    .await;
    bob.expect("his own presence in the room", |e| {
        local_name(e) == "presence"
            && attr(e, "from").as_deref() == Some(&format!("{room}/bob"))
            && e.contains("code=\"110\"")
    })
    .await;
    bob.expect("the subject", |e| {
        local_name(e) == "message" && e.contains("<subject")
    })
    .await;
    alice
        .expect("bob entering", |e| {
            local_name(e) == "presence"
                && attr(e, "from").as_deref() == Some(&format!("{room}/bob"))
                && attr(e, "type").is_none()
        })
        .await;

    // Each speaks; both hear both.
    alice
        .send(&format!(
            "<message type='groupchat' to='{room}'><body>welcome</body></message>"
        ))
        .await;
    for c in [&mut alice, &mut bob] {
        c.expect("alice's words", |e| {
            is_message_from(e, &format!("{room}/alice"), "welcome")
        })
        .await;
    }
    bob.send(&format!(
        "<message type='groupchat' to='{room}'><body>thanks</body></message>"
    ))
    .await;
    for c in [&mut alice, &mut bob] {
        c.expect("bob's words", |e| {
            is_message_from(e, &format!("{room}/bob"), "thanks")
        })
        .await;
    }
    alice.barrier().await;
    bob.barrier().await;
}

fn v4(a: SocketAddr) -> Ipv4Addr {
    match a.ip() {
        IpAddr::V4(ip) => ip,
        IpAddr::V6(ip) => panic!("not IPv4: {ip}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn srv_records_are_followed_in_order_with_direct_tls_and_fallbacks() {
    reset_trace();
    let ca = Ca::new();
    let mut a = Peer::new("a.test");
    let direct = loopback_addr();
    a.direct = Some(direct);
    let mut b = Peer::new(B);
    // Nothing listens here: b.test's first choice fails, its second works.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let dns = Dns::start(
        Zone::new()
            .srv(
                "_xmpp-server._tcp.b.test",
                10,
                0,
                b.s2s.port(),
                "xmpp.b.test",
            )
            .srv(
                "_xmpp-server._tcp.b.test",
                5,
                0,
                closed.port(),
                "dead.b.test",
            )
            .a("xmpp.b.test", v4(b.s2s))
            .a("dead.b.test", Ipv4Addr::LOCALHOST)
            // a.test only offers direct TLS (XEP-0368), on a port of its
            // own.
            .srv(
                "_xmpps-server._tcp.a.test",
                0,
                0,
                direct.port(),
                "tls.a.test",
            )
            .a("tls.a.test", v4(direct))
            // "Decidedly not offered" (RFC 2782).
            .srv("_xmpp-server._tcp.none.test", 0, 0, 0, "."),
    );
    a.resolver = Some(dns.addr());
    b.resolver = Some(dns.addr());
    let server_a = a.builder(&ca, &[]).user("alice@a.test", PW).start();
    let server_b = b.builder(&ca, &[]).user(&format!("bob@{B}"), PW).start();
    let mut alice = Client::online_at(
        &server_a,
        ca.client_config(),
        "a.test",
        "alice",
        PW,
        "desk",
        0,
    )
    .await;
    let mut bob = Client::online_at(&server_b, ca.client_config(), B, "bob", PW, "phone", 0).await;

    alice
        .send("<message to='bob@b.test' type='chat' id='s1'><body>found you</body></message>")
        .await;
    bob.expect("alice's message", |e| {
        is_message_from(e, "alice@a.test/desk", "found you")
    })
    .await;
    bob.send(
        "<message to='alice@a.test' type='chat' id='s2'><body>over direct TLS</body></message>",
    )
    .await;
    alice
        .expect("bob's message", |e| {
            is_message_from(e, "bob@b.test/phone", "over direct TLS")
        })
        .await;

    // Where each link went, as admins see it.
    let links = server_a.cli(&["s2s"], None);
    assert!(
        links.stdout.contains(&format!(
            "a.test -> b.test established (certificate) {}",
            b.s2s
        )),
        "{links}"
    );
    let links = server_b.cli(&["s2s"], None);
    assert!(
        links.stdout.contains(&format!(
            "b.test -> a.test established (certificate) {direct}"
        )),
        "{links}"
    );
    let asked = dns.asked();
    for q in [
        "SRV _xmpps-server._tcp.b.test",
        "SRV _xmpp-server._tcp.b.test",
        "A dead.b.test",
        "A xmpp.b.test",
        "SRV _xmpps-server._tcp.a.test",
        "A tls.a.test",
    ] {
        assert!(asked.iter().any(|a| a == q), "{q} not asked: {asked:?}");
    }

    // No records at all, and no address: not found.
    alice
        .send("<message to='x@nowhere.test' type='chat' id='n1'><body>?</body></message>")
        .await;
    alice
        .expect("the bounce for nowhere.test", |e| {
            is_error(e, "message", "n1", "remote-server-not-found")
        })
        .await;
    // Not offered: not found, saying so.
    alice
        .send("<message to='x@none.test' type='chat' id='n2'><body>?</body></message>")
        .await;
    let bounce = alice
        .expect("the bounce for none.test", |e| {
            is_error(e, "message", "n2", "remote-server-not-found")
        })
        .await;
    assert!(bounce.contains("offers no server-to-server"), "{bounce}");
    alice.barrier().await;
    bob.barrier().await;
}

fn is_presence(el: &str, from: &str, ty: Option<&str>) -> bool {
    local_name(el) == "presence"
        && attr(el, "from").as_deref() == Some(from)
        && attr(el, "type").as_deref() == ty
}

fn is_push(el: &str, jid: &str, subscription: &str) -> bool {
    el.contains("jabber:iq:roster")
        && el.contains(&format!("jid=\"{jid}\""))
        && el.contains(&format!("subscription=\"{subscription}\""))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_subscriptions_then_probes_and_unavailable_across_servers() {
    let w = world();
    let mut alice = w.alice().await;
    let mut bob = w.bob().await;

    // alice ⇄ bob, both ways (RFC 6121 §3 across two servers).
    alice
        .send("<presence to='bob@b.test' type='subscribe'/>")
        .await;
    alice
        .expect("the push with ask", |e| is_push(e, "bob@b.test", "none"))
        .await;
    bob.expect("alice's request", |e| {
        is_presence(e, "alice@localhost", Some("subscribe"))
    })
    .await;
    bob.send("<presence to='alice@localhost' type='subscribed'/>")
        .await;
    bob.expect("the push: from", |e| is_push(e, "alice@localhost", "from"))
        .await;
    alice
        .expect("the push: to", |e| is_push(e, "bob@b.test", "to"))
        .await;
    alice
        .expect("bob's approval", |e| {
            is_presence(e, "bob@b.test", Some("subscribed"))
        })
        .await;
    alice
        .expect("bob's presence", |e| {
            is_presence(e, "bob@b.test/phone", None)
        })
        .await;
    bob.send("<presence to='alice@localhost' type='subscribe'/>")
        .await;
    bob.expect("the push with ask", |e| {
        is_push(e, "alice@localhost", "from") && e.contains("ask=")
    })
    .await;
    alice
        .expect("bob's request", |e| {
            is_presence(e, "bob@b.test", Some("subscribe"))
        })
        .await;
    alice
        .send("<presence to='bob@b.test' type='subscribed'/>")
        .await;
    alice
        .expect("the push: both", |e| is_push(e, "bob@b.test", "both"))
        .await;
    bob.expect("the push: both", |e| is_push(e, "alice@localhost", "both"))
        .await;
    bob.expect("alice's approval", |e| {
        is_presence(e, "alice@localhost", Some("subscribed"))
    })
    .await;
    bob.expect("alice's presence", |e| {
        is_presence(e, "alice@localhost/desk", None)
    })
    .await;
    alice.barrier().await;
    bob.barrier().await;

    // alice goes: bob is told over the link.
    alice.logout(&w.a).await;
    bob.expect("alice's unavailable", |e| {
        is_presence(e, "alice@localhost/desk", Some("unavailable"))
    })
    .await;

    // alice comes back: her server probes bob's, which answers with his
    // presence; bob's server hears her initial presence.
    let mut alice =
        Client::online_at(&w.a, w.ca.client_config(), A, "alice", PW, "laptop", 0).await;
    alice
        .expect("bob's presence, the probe's answer", |e| {
            is_presence(e, "bob@b.test/phone", None)
        })
        .await;
    bob.expect("alice back", |e| {
        is_presence(e, "alice@localhost/laptop", None)
    })
    .await;
    alice.barrier().await;
    bob.barrier().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_here_blocks_a_user_of_the_other_server() {
    let w = world();
    let mut alice = w.alice().await;
    let mut bob = w.bob().await;
    let set = alice
        .iq(
            "set",
            None,
            "<block xmlns='urn:xmpp:blocking'><item jid='bob@b.test'/></block>",
        )
        .await;
    assert_eq!(attr(&set, "type").as_deref(), Some("result"), "{set}");
    // bob's message crosses the link and is refused here (XEP-0191 §3.3:
    // as if alice were not there); nothing reaches her.
    bob.send(
        "<message to='alice@localhost/desk' type='chat' id='bl1'><body>hello?</body></message>",
    )
    .await;
    bob.expect("the refusal", |e| {
        is_error(e, "message", "bl1", "service-unavailable")
    })
    .await;
    alice.barrier().await;
    bob.barrier().await;
    // Unblocked, it arrives.
    let set = alice
        .iq(
            "set",
            None,
            "<unblock xmlns='urn:xmpp:blocking'><item jid='bob@b.test'/></unblock>",
        )
        .await;
    assert_eq!(attr(&set, "type").as_deref(), Some("result"), "{set}");
    bob.send("<message to='alice@localhost/desk' type='chat' id='bl2'><body>now?</body></message>")
        .await;
    alice
        .expect("bob's message", |e| {
            is_message_from(e, "bob@b.test/phone", "now?")
        })
        .await;
    alice.barrier().await;
    bob.barrier().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn carbons_copy_messages_to_and_from_the_other_server() {
    let w = world();
    let mut desk = w.alice().await;
    let mut phone = Client::online_at(&w.a, w.ca.client_config(), A, "alice", PW, "phone", 0).await;
    desk.expect("the phone's presence", |e| {
        is_presence(e, "alice@localhost/phone", None)
    })
    .await;
    phone
        .expect("the desk's presence", |e| {
            is_presence(e, "alice@localhost/desk", None)
        })
        .await;
    let mut bob = w.bob().await;
    let on = phone
        .iq("set", None, "<enable xmlns='urn:xmpp:carbons:2'/>")
        .await;
    assert_eq!(attr(&on, "type").as_deref(), Some("result"), "{on}");

    // Sent from the desk to b.test: the phone gets a sent carbon.
    desk.send("<message to='bob@b.test' type='chat' id='c1'><body>from the desk</body></message>")
        .await;
    bob.expect("alice's message", |e| {
        is_message_from(e, "alice@localhost/desk", "from the desk")
    })
    .await;
    phone
        .expect("the sent carbon", |e| {
            e.contains("<sent xmlns=\"urn:xmpp:carbons:2\"") && e.contains("from the desk")
        })
        .await;
    // bob answers the desk: the phone gets a received carbon.
    bob.send(
        "<message to='alice@localhost/desk' type='chat' id='c2'><body>to the desk</body></message>",
    )
    .await;
    desk.expect("bob's answer", |e| {
        is_message_from(e, "bob@b.test/phone", "to the desk")
    })
    .await;
    phone
        .expect("the received carbon", |e| {
            e.contains("<received xmlns=\"urn:xmpp:carbons:2\"") && e.contains("to the desk")
        })
        .await;
    desk.barrier().await;
    phone.barrier().await;
    bob.barrier().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transport_here_serves_local_users_only() {
    reset_trace();
    let ca = Ca::new();
    let irc = "irc.localhost";
    // Nothing listens there: the transport connects only when asked to.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let mut a = Peer::new(A);
    a.cert_names = vec![irc.to_owned()];
    let b = Peer::new(B);
    let server_a = a
        .builder(&ca, &[(B, b.s2s, false)])
        .also(&format!(
            r#"<service id="{irc}" type="irc"><server host="127.0.0.1" port="{}" tls="false" allow-plain="true"/></service>"#,
            dead.port()
        ))
        .user(&format!("alice@{A}"), PW)
        .start();
    let server_b = b
        .builder(&ca, &[(A, a.s2s, false), (irc, a.s2s, false)])
        .user(&format!("bob@{B}"), PW)
        .start();
    let mut alice =
        Client::online_at(&server_a, ca.client_config(), A, "alice", PW, "desk", 0).await;
    let mut bob = Client::online_at(&server_b, ca.client_config(), B, "bob", PW, "phone", 0).await;
    let disco = "<query xmlns='http://jabber.org/protocol/disco#info'/>";
    // A local user reaches it.
    let info = alice.iq("get", Some(irc), disco).await;
    assert_eq!(attr(&info, "type").as_deref(), Some("result"), "{info}");
    // A user of the other server is refused (local-only by default for
    // transports), and the refusal crosses back.
    let info = bob.iq("get", Some(irc), disco).await;
    assert_eq!(
        error_condition(&info).as_deref(),
        Some("not-allowed"),
        "{info}"
    );
    assert_eq!(attr(&info, "from").as_deref(), Some(irc), "{info}");
    alice.barrier().await;
    bob.barrier().await;
}

/// A raw peer server authenticated as `from` with SASL EXTERNAL (a
/// certificate of the test CA's for it), its stream restarted and ready
/// for stanzas.
async fn s2s_authenticated(addr: SocketAddr, from: &str, ca: &Ca) -> RawClient {
    let mut peer = s2s_connect(addr, from, ca, Some(from)).await;
    peer.send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='EXTERNAL'/>")
        .await
        .unwrap();
    let success = peer.read_element(WAIT).await.unwrap();
    assert_eq!(local_name(&success), "success", "{success}");
    peer.send(&format!(
        "<?xml version='1.0'?><stream:stream xmlns='jabber:server' \
         xmlns:stream='http://etherx.jabber.org/streams' from='{from}' to='localhost' version='1.0'>"
    ))
    .await
    .unwrap();
    peer.read_stream_header(WAIT).await.unwrap();
    peer.read_element(WAIT).await.unwrap();
    peer
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooding_peer_is_slowed_down_without_loss_and_without_starving_another() {
    reset_trace();
    let ca = Ca::new();
    let mut a = Peer::new(A);
    // A burst of 10, then one stanza every 100 ms, per incoming link.
    a.policy = "stanza-rate=\"10/1s\"".into();
    let s2s = a.s2s;
    let server = a.builder(&ca, &[]).user(&format!("alice@{A}"), PW).start();
    let mut alice = Client::online_at(&server, ca.client_config(), A, "alice", PW, "desk", 0).await;

    let mut flood = s2s_authenticated(s2s, "flood.test", &ca).await;
    let mut burst = String::new();
    for n in 0..100 {
        burst.push_str(&format!(
            "<message from='f@flood.test/x' to='alice@localhost/desk' type='chat' id='f{n}'><body>{n}</body></message>"
        ));
    }
    let started = std::time::Instant::now();
    flood.send(&burst).await.unwrap();
    // The allowance arrives at once.
    for n in 0..10 {
        let want = n.to_string();
        alice
            .expect_next(&format!("flood message {n}"), |e| {
                is_message_from(e, "f@flood.test/x", &want)
            })
            .await;
    }
    // Another server's link is not held up by the first one's backlog:
    // its message arrives while the flood still trickles in.
    let mut calm = s2s_authenticated(s2s, "calm.test", &ca).await;
    calm.send("<message from='c@calm.test/x' to='alice@localhost/desk' type='chat' id='c1'><body>calm</body></message>")
        .await
        .unwrap();
    let mut next = 10;
    let mut calm_after = None;
    while next < 100 || calm_after.is_none() {
        let want = next.to_string();
        let waiting_for_calm = calm_after.is_none();
        let el = alice
            .expect_next(&format!("flood message {next} or the calm one"), |e| {
                is_message_from(e, "f@flood.test/x", &want)
                    || (waiting_for_calm && is_message_from(e, "c@calm.test/x", "calm"))
            })
            .await;
        if attr(&el, "id").as_deref() == Some("c1") {
            calm_after = Some(next);
        } else {
            next += 1;
        }
    }
    let calm_after = calm_after.unwrap();
    assert!(
        calm_after < 90,
        "the calm peer's message waited behind {calm_after} of the flood's 100"
    );
    // 90 stanzas past the burst, one per 100 ms: the flood was slowed.
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(8),
        "the flood took only {took:?}"
    );
    // Slowed down, not cut off: the flooding link still carries stanzas.
    flood
        .send("<message from='f@flood.test/x' to='alice@localhost/desk' type='chat' id='f100'><body>after</body></message>")
        .await
        .unwrap();
    alice
        .expect_next("the flood's last message", |e| {
            is_message_from(e, "f@flood.test/x", "after")
        })
        .await;
    alice.barrier().await;
    assert!(!flood.is_closed() && !calm.is_closed());
}
