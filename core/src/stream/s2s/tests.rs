//! Both server-to-server machines driven in memory under a simulated
//! clock: our outgoing machine against another server's incoming one
//! (bytes shuttled between them, TLS simulated as a step both take), and
//! each alone against scripted hostile input.

use std::sync::Arc;
use std::time::{Duration, Instant};

use switchboard_xml::{ns, Element, Limits};

use super::*;

const A: &str = "a.example";
const B: &str = "b.example";
const HEADER_TO_B: &str = "<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' from='a.example' to='b.example' version='1.0'>";

fn policy(secure_auth: bool, secret: u8) -> Arc<S2sPolicy> {
    Arc::new(S2sPolicy {
        secure_auth,
        dialback: true,
        limits: Limits {
            max_stanza_bytes: 10_000,
            ..Limits::default()
        },
        timeout: Duration::from_secs(30),
        idle_timeout: Duration::from_secs(600),
        keepalive: Duration::from_secs(60),
        secret: DialbackSecret::from_bytes([secret; 32]),
        allow: Vec::new(),
        deny: vec!["denied.example".into()],
        stanza_rate: None,
    })
}

fn locals(names: &[&str]) -> Arc<[String]> {
    names.iter().map(|n| n.to_string()).collect()
}

/// A certificate check that verifies for exactly these domains.
fn cert_for(domains: &[&str]) -> CertCheck {
    let domains: Vec<String> = domains.iter().map(|d| d.to_string()).collect();
    Box::new(move |d| domains.iter().any(|x| x == d))
}

/// `a.example`'s outgoing machine talking to `b.example`'s incoming one.
struct Link {
    now: Instant,
    out: S2sOut,
    inc: S2sIn,
    /// What a's certificate verifies for, as b sees it.
    a_cert: Vec<&'static str>,
    /// Whether b's certificate verifies for b.example, as a sees it.
    b_cert_ok: bool,
    /// Everything b wrote to a (text), and a to b.
    to_a: String,
    to_b: String,
    out_events: Vec<String>,
    in_events: Vec<InAction>,
    stanzas_at_b: Vec<(String, Element)>,
}

impl Link {
    fn new(out_policy: Arc<S2sPolicy>, in_policy: Arc<S2sPolicy>) -> Link {
        let now = Instant::now();
        Link {
            now,
            out: S2sOut::new(out_policy, A, B, now, None),
            inc: S2sIn::new(in_policy, locals(&[B, "conference.b.example"]), now, None),
            a_cert: vec![A],
            b_cert_ok: true,
            to_a: String::new(),
            to_b: String::new(),
            out_events: Vec::new(),
            in_events: Vec::new(),
            stanzas_at_b: Vec::new(),
        }
    }

    /// Shuttles bytes until neither side has anything more to say.
    fn pump(&mut self) {
        loop {
            let mut moved = false;
            let mut tls_out = false;
            let mut tls_in = false;
            while let Some(a) = self.out.poll_action() {
                moved = true;
                match a {
                    OutAction::Send(b) => {
                        let text = String::from_utf8(b.clone()).unwrap();
                        self.to_b.push_str(&text);
                        self.inc.handle_input(&b, self.now);
                    }
                    OutAction::StartTls => tls_out = true,
                    OutAction::Established(m) => {
                        self.out_events.push(format!("established {}", m.label()))
                    }
                    OutAction::Verified { id, valid } => {
                        self.out_events.push(format!("verified {id} {valid}"))
                    }
                    OutAction::Close => self.out_events.push("close".into()),
                }
            }
            while let Some(a) = self.inc.poll_action() {
                moved = true;
                match a {
                    InAction::Send(b) => {
                        self.to_a.push_str(&String::from_utf8(b.clone()).unwrap());
                        self.out.handle_input(&b, self.now);
                    }
                    InAction::StartTls => tls_in = true,
                    InAction::Stanza { remote, el } => self.stanzas_at_b.push((remote, el)),
                    other => self.in_events.push(other),
                }
            }
            if tls_in {
                let check = cert_for(&self.a_cert);
                self.inc.tls_established(check);
            }
            if tls_out {
                self.out.tls_established(self.b_cert_ok, self.now);
            }
            if !moved {
                return;
            }
        }
    }

    fn authenticated(&self) -> Vec<String> {
        self.in_events
            .iter()
            .filter_map(|a| match a {
                InAction::Authenticated {
                    remote,
                    local,
                    method,
                } => Some(format!("{remote}->{local} {}", method.label())),
                _ => None,
            })
            .collect()
    }

    fn verify_requests(&self) -> Vec<(String, String, String, String)> {
        self.in_events
            .iter()
            .filter_map(|a| match a {
                InAction::VerifyDialback {
                    local,
                    remote,
                    id,
                    key,
                } => Some((local.clone(), remote.clone(), id.clone(), key.clone())),
                _ => None,
            })
            .collect()
    }
}

fn chat(from: &str, to: &str, body: &str) -> Element {
    Element::new("message", ns::CLIENT)
        .with_attr("from", from)
        .with_attr("to", to)
        .with_attr("type", "chat")
        .with_child(Element::new("body", ns::CLIENT).with_text(body))
}

#[test]
fn sasl_external_over_verified_certificates_carries_stanzas() {
    let mut l = Link::new(policy(true, 1), policy(true, 2));
    l.pump();
    assert_eq!(l.out_events, ["established certificate"]);
    assert_eq!(l.authenticated(), ["a.example->b.example certificate"]);
    assert!(l
        .to_b
        .contains("<starttls xmlns=\"urn:ietf:params:xml:ns:xmpp-tls\"/>"));
    assert!(l.to_b.contains("mechanism=\"EXTERNAL\""));
    assert!(
        l.to_a.contains("<required/>"),
        "STARTTLS is required: {}",
        l.to_a
    );
    let m = chat("alice@a.example/desk", "bob@b.example", "hi");
    l.out.send_stanza(&m, l.now);
    l.pump();
    // On the wire in jabber:server (the header's default), out again in
    // jabber:client.
    assert!(l.to_b.ends_with("<message from=\"alice@a.example/desk\" to=\"bob@b.example\" type=\"chat\"><body>hi</body></message>"), "{}", l.to_b);
    assert_eq!(l.stanzas_at_b.len(), 1);
    let (remote, el) = &l.stanzas_at_b[0];
    assert_eq!(remote, A);
    assert_eq!(el, &m);
    // A service hostname of b's is served on the same stream.
    l.out.send_stanza(
        &chat("alice@a.example", "room@conference.b.example", "x"),
        l.now,
    );
    l.pump();
    assert_eq!(l.stanzas_at_b.len(), 2);
}

#[test]
fn an_incoming_stream_demands_tls_before_anything() {
    let mut m = S2sIn::new(policy(true, 1), locals(&[B]), Instant::now(), None);
    m.handle_input(HEADER_TO_B.as_bytes(), Instant::now());
    m.handle_input(
        b"<db:result from='a.example' to='b.example'>k</db:result>",
        Instant::now(),
    );
    let out = drain_in(&mut m);
    assert!(
        out.contains("<starttls xmlns=\"urn:ietf:params:xml:ns:xmpp-tls\"><required/></starttls>"),
        "{out}"
    );
    assert!(out.contains("<policy-violation"), "{out}");
    assert!(out.contains("requires TLS"), "{out}");
    assert!(m.is_closed());
}

/// Everything the machine wrote, as text (actions other than bytes are
/// dropped).
fn drain_in(m: &mut S2sIn) -> String {
    let mut s = String::new();
    while let Some(a) = m.poll_action() {
        if let InAction::Send(b) = a {
            s.push_str(&String::from_utf8(b).unwrap());
        }
    }
    s
}

/// An incoming stream over TLS whose peer's certificate verifies for
/// `cert`, past its header and features.
fn secure_in(secure_auth: bool, cert: &[&str]) -> S2sIn {
    let mut m = S2sIn::new(
        policy(secure_auth, 2),
        locals(&[B]),
        Instant::now(),
        Some(cert_for(cert)),
    );
    m.handle_input(HEADER_TO_B.as_bytes(), Instant::now());
    drain_in(&mut m);
    m
}

#[test]
fn sasl_external_is_refused_when_the_certificate_does_not_verify() {
    let mut m = S2sIn::new(
        policy(true, 2),
        locals(&[B]),
        Instant::now(),
        Some(cert_for(&["other.example"])),
    );
    m.handle_input(HEADER_TO_B.as_bytes(), Instant::now());
    let features = drain_in(&mut m);
    assert!(!features.contains("EXTERNAL"), "{features}");
    m.handle_input(
        b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='EXTERNAL'>=</auth>",
        Instant::now(),
    );
    let out = drain_in(&mut m);
    assert!(out.contains("<not-authorized/>"), "{out}");
    assert!(out.contains("does not verify for a.example"), "{out}");
    assert!(!m.is_authenticated());
}

#[test]
fn sasl_external_checks_the_authorization_identity() {
    let mut m = secure_in(true, &[A]);
    // base64("c.example")
    m.handle_input(
        b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='EXTERNAL'>Yy5leGFtcGxl</auth>",
        Instant::now(),
    );
    let out = drain_in(&mut m);
    assert!(out.contains("<invalid-authzid/>"), "{out}");
    // base64("a.example") is fine.
    m.handle_input(
        b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='EXTERNAL'>YS5leGFtcGxl</auth>",
        Instant::now(),
    );
    assert!(drain_in(&mut m).contains("<success xmlns=\"urn:ietf:params:xml:ns:xmpp-sasl\"/>"));
    assert!(m.is_authenticated());
}

#[test]
fn a_stanza_from_a_domain_not_authenticated_is_invalid_from() {
    let mut m = secure_in(true, &[A]);
    m.handle_input(
        b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='EXTERNAL'>=</auth>",
        Instant::now(),
    );
    m.handle_input(HEADER_TO_B.as_bytes(), Instant::now());
    drain_in(&mut m);
    m.handle_input(
        b"<message from='mallory@c.example' to='bob@b.example'><body>forged</body></message>",
        Instant::now(),
    );
    let mut routed = 0;
    let mut text = String::new();
    while let Some(a) = m.poll_action() {
        match a {
            InAction::Stanza { .. } => routed += 1,
            InAction::Send(b) => text.push_str(&String::from_utf8(b).unwrap()),
            _ => {}
        }
    }
    assert_eq!(routed, 0);
    assert!(text.contains("<invalid-from"), "{text}");
    assert!(text.contains("not authenticated for c.example"), "{text}");
    assert!(m.is_closed());
}

#[test]
fn a_stanza_to_a_domain_not_served_is_host_unknown_and_none_is_relayed() {
    let mut m = secure_in(true, &[A]);
    m.handle_input(
        b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='EXTERNAL'>=</auth>",
        Instant::now(),
    );
    m.handle_input(HEADER_TO_B.as_bytes(), Instant::now());
    drain_in(&mut m);
    m.handle_input(
        b"<message from='alice@a.example' to='carol@c.example'/>",
        Instant::now(),
    );
    let text = drain_in(&mut m);
    assert!(text.contains("<host-unknown"), "{text}");
    assert!(m.is_closed());
}

#[test]
fn a_stanza_without_addresses_is_improper_addressing() {
    let mut m = secure_in(true, &[A]);
    m.handle_input(
        b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='EXTERNAL'>=</auth>",
        Instant::now(),
    );
    m.handle_input(HEADER_TO_B.as_bytes(), Instant::now());
    drain_in(&mut m);
    m.handle_input(b"<message to='bob@b.example'/>", Instant::now());
    assert!(drain_in(&mut m).contains("<improper-addressing"));
}

#[test]
fn an_unsolicited_dialback_answer_is_refused() {
    // A hostile peer "answers" a question nobody asked, hoping to be
    // taken as authenticated.
    let mut m = secure_in(false, &[]);
    m.handle_input(
        b"<db:result from='a.example' to='b.example' type='valid'/>",
        Instant::now(),
    );
    let out = drain_in(&mut m);
    assert!(out.contains("<not-authorized"), "{out}");
    assert!(m.is_closed());
    let mut m = secure_in(false, &[]);
    m.handle_input(
        b"<db:verify from='a.example' to='b.example' id='x' type='valid'/>",
        Instant::now(),
    );
    assert!(drain_in(&mut m).contains("<not-authorized"));
    assert!(!m.is_authenticated());
}

#[test]
fn secure_auth_refuses_dialback_without_a_verified_certificate() {
    let mut m = secure_in(true, &[]);
    m.handle_input(
        b"<db:result from='a.example' to='b.example'>0123</db:result>",
        Instant::now(),
    );
    let out = drain_in(&mut m);
    assert!(out.contains("type=\"error\""), "{out}");
    assert!(out.contains("<not-authorized"), "{out}");
    assert!(out.contains("requires one"), "{out}");
    assert!(!m.is_authenticated());
}

#[test]
fn dialback_over_a_verified_certificate_needs_no_check() {
    let mut m = secure_in(true, &[A]);
    m.handle_input(
        b"<db:result from='a.example' to='b.example'>whatever</db:result>",
        Instant::now(),
    );
    let mut out = String::new();
    let mut auth = Vec::new();
    while let Some(a) = m.poll_action() {
        match a {
            InAction::Send(b) => out.push_str(&String::from_utf8(b).unwrap()),
            InAction::Authenticated { method, .. } => auth.push(method),
            InAction::VerifyDialback { .. } => panic!("no check needed"),
            _ => {}
        }
    }
    assert!(out.contains("type=\"valid\""), "{out}");
    assert_eq!(auth, [AuthMethod::DialbackWithCertificate]);
}

#[test]
fn db_verify_is_answered_from_the_secret() {
    // b is asked by c.example whether a key b's outgoing link gave it is
    // b's (b is the authoritative server).
    let mut m = S2sIn::new(
        policy(false, 2),
        locals(&[B]),
        Instant::now(),
        Some(cert_for(&[])),
    );
    let header = "<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' from='c.example' to='b.example' version='1.0'>";
    m.handle_input(header.as_bytes(), Instant::now());
    drain_in(&mut m);
    let good = DialbackSecret::from_bytes([2; 32]).key("c.example", B, "S1");
    m.handle_input(
        format!("<db:verify from='c.example' to='b.example' id='S1'>{good}</db:verify><db:verify from='c.example' to='b.example' id='S2'>{good}</db:verify>").as_bytes(),
        Instant::now(),
    );
    let out = drain_in(&mut m);
    assert!(
        out.contains("from=\"b.example\" to=\"c.example\" id=\"S1\" type=\"valid\""),
        "{out}"
    );
    assert!(out.contains("id=\"S2\" type=\"invalid\""), "{out}");
    assert!(!m.is_closed());
}

/// The whole dialback dance: a's link to b claims a.example; b asks a's
/// authoritative server (an incoming machine of a's, reached over a
/// verifying link of b's), which recomputes the key from a's secret.
fn dialback_with(authoritative_secret: u8) -> Link {
    // Neither certificate verifies; both sides allow dialback.
    let mut l = Link::new(policy(false, 1), policy(false, 2));
    l.a_cert = vec![];
    l.b_cert_ok = false;
    l.pump();
    assert!(l.out_events.is_empty(), "{:?}", l.out_events);
    let reqs = l.verify_requests();
    assert_eq!(reqs.len(), 1);
    let (local, remote, id, key) = reqs[0].clone();
    assert_eq!((local.as_str(), remote.as_str()), (B, A));
    // b's verifying link to a, against a's incoming machine.
    let mut check = Link {
        now: l.now,
        out: S2sOut::new(policy(false, 2), B, A, l.now, None),
        inc: S2sIn::new(
            policy(false, authoritative_secret),
            locals(&[A]),
            l.now,
            None,
        ),
        a_cert: vec![],
        b_cert_ok: false,
        to_a: String::new(),
        to_b: String::new(),
        out_events: Vec::new(),
        in_events: Vec::new(),
        stanzas_at_b: Vec::new(),
    };
    check.out.verify(id.clone(), key);
    check.pump();
    let verdict = check
        .out_events
        .iter()
        .find_map(|e| e.strip_prefix(&format!("verified {id} ")))
        .map(|v| v == "true")
        .expect("the authoritative server answered");
    l.inc.dialback_verified(&remote, &local, verdict);
    l.pump();
    l
}

#[test]
fn dialback_authenticates_through_the_authoritative_server() {
    let mut l = dialback_with(1);
    assert_eq!(l.out_events, ["established dialback"]);
    assert_eq!(l.authenticated(), ["a.example->b.example dialback"]);
    l.out.send_stanza(
        &chat("alice@a.example", "bob@b.example", "via dialback"),
        l.now,
    );
    l.pump();
    assert_eq!(l.stanzas_at_b.len(), 1);
}

#[test]
fn a_forged_dialback_key_is_refused() {
    // The "authoritative server" has another secret: the key a's link
    // presented is not one it made.
    let l = dialback_with(9);
    assert_eq!(l.out_events, ["close"]);
    assert!(matches!(
        l.out.failure(),
        Some(LinkFailure::NotAuthenticated(_))
    ));
    assert!(l.authenticated().is_empty());
    assert!(l.to_a.contains("type=\"invalid\""), "{}", l.to_a);
}

#[test]
fn secure_auth_gives_up_on_a_peer_whose_certificate_does_not_verify() {
    let mut l = Link::new(policy(true, 1), policy(true, 2));
    l.b_cert_ok = false;
    l.pump();
    assert_eq!(l.out_events, ["close"]);
    assert_eq!(l.out.failure(), Some(&LinkFailure::Certificate));
    assert!(
        l.to_b
            .contains("your certificate does not verify for b.example"),
        "{}",
        l.to_b
    );
}

#[test]
fn without_a_verified_certificate_and_secure_auth_there_is_no_way_in() {
    // b insists on certificates; a's does not verify. a may talk to b
    // (b's verifies) but b refuses both SASL and dialback.
    let mut l = Link::new(policy(true, 1), policy(true, 2));
    l.a_cert = vec![];
    l.pump();
    assert_eq!(l.out_events, ["close"]);
    assert!(
        matches!(l.out.failure(), Some(LinkFailure::NotAuthenticated(_))),
        "{:?}",
        l.out.failure()
    );
    assert!(l.authenticated().is_empty());
}

#[test]
fn a_peer_without_starttls_is_given_up() {
    let now = Instant::now();
    let mut out = S2sOut::new(policy(true, 1), A, B, now, None);
    while out.poll_action().is_some() {}
    out.handle_input(b"<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' id='i' from='b.example' version='1.0'><stream:features/>", now);
    let mut closed = false;
    while let Some(a) = out.poll_action() {
        closed |= matches!(a, OutAction::Close);
    }
    assert!(closed);
    assert_eq!(out.failure(), Some(&LinkFailure::NoTls));
}

#[test]
fn a_stream_error_from_the_peer_is_the_failure() {
    let now = Instant::now();
    let mut out = S2sOut::new(policy(true, 1), A, B, now, None);
    while out.poll_action().is_some() {}
    out.handle_input(b"<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' id='i' version='1.0'><stream:error><host-unknown xmlns='urn:ietf:params:xml:ns:xmpp-streams'/><text xmlns='urn:ietf:params:xml:ns:xmpp-streams'>no such host</text></stream:error>", now);
    while out.poll_action().is_some() {}
    assert_eq!(
        out.failure(),
        Some(&LinkFailure::StreamError {
            condition: "host-unknown".into(),
            text: Some("no such host".into())
        })
    );
    assert!(out.is_closed());
}

#[test]
fn set_up_that_takes_too_long_times_out() {
    let now = Instant::now();
    let mut out = S2sOut::new(policy(true, 1), A, B, now, None);
    while out.poll_action().is_some() {}
    let deadline = out.poll_timeout().unwrap();
    assert_eq!(deadline, now + Duration::from_secs(30));
    out.handle_timeout(deadline - Duration::from_millis(1));
    assert!(!out.is_closed());
    out.handle_timeout(deadline);
    assert!(out.is_closed());
    assert_eq!(out.failure(), Some(&LinkFailure::Timeout));
}

#[test]
fn an_incoming_stream_must_authenticate_in_time() {
    let now = Instant::now();
    let mut m = S2sIn::new(policy(true, 2), locals(&[B]), now, None);
    m.handle_input(HEADER_TO_B.as_bytes(), now);
    drain_in(&mut m);
    let deadline = m.poll_timeout().unwrap();
    assert_eq!(deadline, now + Duration::from_secs(30));
    m.handle_timeout(deadline);
    let out = drain_in(&mut m);
    assert!(out.contains("<connection-timeout"), "{out}");
    assert!(m.is_closed());
}

#[test]
fn an_established_link_keeps_alive_then_closes_when_idle() {
    let mut l = Link::new(policy(true, 1), policy(true, 2));
    l.pump();
    let start = l.now;
    // Quiet for a keepalive interval: one space.
    let t = l.out.poll_timeout().unwrap();
    assert_eq!(t, start + Duration::from_secs(60));
    l.out.note_sent(start);
    l.out.handle_timeout(t);
    let mut sent = Vec::new();
    while let Some(a) = l.out.poll_action() {
        if let OutAction::Send(b) = a {
            sent.extend(b);
        }
    }
    assert_eq!(sent, b" ");
    l.out.note_sent(t);
    // A stanza resets the idle clock; ten idle minutes after it, the link
    // closes cleanly.
    let at = start + Duration::from_secs(100);
    l.out
        .send_stanza(&chat("a@a.example", "b@b.example", "x"), at);
    for step in 1..=10 {
        l.out.note_sent(at + Duration::from_secs(60 * step - 1));
        l.out
            .handle_timeout(at + Duration::from_secs(60 * step - 1));
    }
    assert!(!l.out.is_closed());
    l.out.handle_timeout(at + Duration::from_secs(600));
    assert!(l.out.is_closed());
    assert_eq!(l.out.failure(), Some(&LinkFailure::Idle));
}

#[test]
fn an_oversized_stanza_closes_the_incoming_stream() {
    let mut m = secure_in(true, &[A]);
    let big = format!(
        "<message from='a@a.example' to='b@b.example'><body>{}</body></message>",
        "x".repeat(20_000)
    );
    m.handle_input(big.as_bytes(), Instant::now());
    let out = drain_in(&mut m);
    assert!(out.contains("<policy-violation"), "{out}");
    assert!(m.is_closed());
}

#[test]
fn restricted_xml_closes_the_incoming_stream() {
    let mut m = S2sIn::new(policy(true, 2), locals(&[B]), Instant::now(), None);
    m.handle_input(
        b"<?xml version='1.0'?><!DOCTYPE x [<!ENTITY a 'b'>]>",
        Instant::now(),
    );
    let out = drain_in(&mut m);
    assert!(out.contains("<restricted-xml"), "{out}");
    assert!(m.is_closed());
}

#[test]
fn a_stream_to_a_domain_not_served_is_host_unknown() {
    let mut m = S2sIn::new(policy(true, 2), locals(&[B]), Instant::now(), None);
    m.handle_input(b"<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' from='a.example' to='z.example' version='1.0'>", Instant::now());
    let out = drain_in(&mut m);
    assert!(out.contains("<host-unknown"), "{out}");
    // And a client stream on the server port is the wrong namespace.
    let mut m = S2sIn::new(policy(true, 2), locals(&[B]), Instant::now(), None);
    m.handle_input(b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='b.example' version='1.0'>", Instant::now());
    assert!(drain_in(&mut m).contains("<invalid-namespace"));
}

#[test]
fn verify_questions_wait_for_tls_then_go_before_authentication() {
    let mut l = Link::new(policy(false, 1), policy(false, 2));
    l.a_cert = vec![];
    l.b_cert_ok = false;
    l.out.verify("stream-7".into(), "feed".into());
    l.pump();
    // Our second header is the one after TLS: nothing was asked before.
    let after_tls = l.to_b.rfind("<?xml").unwrap();
    let before_tls = &l.to_b[..after_tls];
    assert!(!before_tls.contains("<verify"), "{before_tls}");
    assert!(
        l.to_b.contains("id=\"stream-7\">feed</verify>"),
        "{}",
        l.to_b
    );
    // b (the authoritative one here) answered from its secret: invalid.
    assert!(
        l.out_events
            .contains(&"verified stream-7 false".to_string()),
        "{:?}",
        l.out_events
    );
}

#[test]
fn allow_and_deny_lists_cover_subdomains() {
    let mut p = (*policy(true, 1)).clone();
    assert!(p.allows("a.example"));
    assert!(!p.allows("denied.example"));
    assert!(!p.allows("conference.denied.example"));
    assert!(p.allows("notdenied.example"));
    p.allow = vec!["a.example".into()];
    assert!(p.allows("a.example") && p.allows("muc.a.example"));
    assert!(!p.allows("b.example"));
}

#[test]
fn a_denied_domain_is_refused_at_its_header() {
    let mut m = S2sIn::new(policy(true, 2), locals(&[B]), Instant::now(), None);
    m.handle_input(b"<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' from='denied.example' to='b.example' version='1.0'>", Instant::now());
    let out = drain_in(&mut m);
    assert!(out.contains("<policy-violation"), "{out}");
    assert!(
        out.contains("does not federate with denied.example"),
        "{out}"
    );
}

fn rated(count: u32, per: Duration) -> Arc<S2sPolicy> {
    let mut p = (*policy(true, 2)).clone();
    p.stanza_rate = Some(StanzaRate { count, per });
    Arc::new(p)
}

/// Stanzas on the wire, as the peer writes them (`jabber:server`).
fn wire_burst(n: usize) -> String {
    (0..n)
        .map(|i| {
            format!("<message from='alice@a.example' to='bob@b.example' id='m{i}'><body>{i}</body></message>")
        })
        .collect()
}

/// Collects the stanzas the machine lets through (their ids).
fn delivered(m: &mut S2sIn, into: &mut Vec<String>) {
    while let Some(a) = m.poll_action() {
        if let InAction::Stanza { remote, el } = a {
            assert_eq!(remote, A);
            into.push(el.attr("id").unwrap().to_string());
        }
    }
}

#[test]
fn a_peer_over_the_stanza_rate_is_read_at_that_rate_and_loses_nothing() {
    let mut l = Link::new(policy(true, 1), rated(3, Duration::from_secs(3)));
    l.pump();
    assert_eq!(l.authenticated(), ["a.example->b.example certificate"]);
    let t0 = l.now;
    assert!(l.inc.wants_input());
    // Ten stanzas and the end of the stream arrive in one read.
    let input = format!("{}</stream:stream>", wire_burst(10));
    l.inc.handle_input(input.as_bytes(), t0);
    let mut got = Vec::new();
    delivered(&mut l.inc, &mut got);
    // The burst goes; the fourth is held and nothing more is read.
    assert_eq!(got, ["m0", "m1", "m2"]);
    assert!(!l.inc.wants_input());
    assert!(!l.inc.is_closed());
    let interval = Duration::from_secs(1);
    assert_eq!(l.inc.poll_timeout(), Some(t0 + interval));
    // Waking early releases nothing.
    l.inc.handle_timeout(t0 + interval / 2);
    delivered(&mut l.inc, &mut got);
    assert_eq!(got.len(), 3);
    // Then one per interval, in order, each at its deadline.
    let mut now = t0;
    while got.len() < 10 {
        let due = l
            .inc
            .poll_timeout()
            .expect("a deadline while a stanza waits");
        assert_eq!(due, now + interval, "after {got:?}");
        now = due;
        assert!(!l.inc.is_closed(), "closed with stanzas still unread");
        l.inc.handle_timeout(now);
        delivered(&mut l.inc, &mut got);
    }
    let expected: Vec<String> = (0..10).map(|i| format!("m{i}")).collect();
    assert_eq!(got, expected);
    assert_eq!(now - t0, interval * 7);
    // Only after the last stanza is the peer's close seen.
    assert!(l.inc.is_closed());
}

#[test]
fn the_rate_refills_while_the_peer_is_quiet_and_input_resumes() {
    let mut l = Link::new(policy(true, 1), rated(2, Duration::from_secs(2)));
    l.pump();
    let t0 = l.now;
    let mut got = Vec::new();
    l.inc.handle_input(wire_burst(3).as_bytes(), t0);
    delivered(&mut l.inc, &mut got);
    assert_eq!(got.len(), 2);
    assert!(!l.inc.wants_input());
    let due = l.inc.poll_timeout().unwrap();
    l.inc.handle_timeout(due);
    delivered(&mut l.inc, &mut got);
    assert_eq!(got.len(), 3);
    // Nothing is held: the driver reads again, and the deadline is the
    // idle timeout's.
    assert!(l.inc.wants_input());
    assert_eq!(l.inc.poll_timeout(), Some(due + Duration::from_secs(600)));
    // A quiet peer gets its whole burst back, never more.
    let later = due + Duration::from_secs(60);
    l.inc.handle_input(wire_burst(3).as_bytes(), later);
    delivered(&mut l.inc, &mut got);
    assert_eq!(got.len(), 5);
    assert!(!l.inc.wants_input());
}

#[test]
fn without_a_stanza_rate_a_burst_passes_at_once() {
    let mut l = Link::new(policy(true, 1), policy(true, 2));
    l.pump();
    let mut got = Vec::new();
    l.inc.handle_input(wire_burst(1000).as_bytes(), l.now);
    delivered(&mut l.inc, &mut got);
    assert_eq!(got.len(), 1000);
    assert!(l.inc.wants_input());
}
