//! The client machine against scripted servers, in memory: what it sends
//! at each step (parsed back with the project's XML parser), and how each
//! kind of answer ends the run.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use switchboard_jid::Jid;
use switchboard_xml::{ns, Element, Event, Limits, StreamParser};

use super::*;

const SERVER_HEADER: &str = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
     xmlns:stream='http://etherx.jabber.org/streams' from='example.com' id='s1' version='1.0'>";
const STARTTLS_FEATURES: &str = "<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls></stream:features>";
const BIND_FEATURES: &str =
    "<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></stream:features>";

fn mechanisms(names: &[&str]) -> String {
    let m: String = names
        .iter()
        .map(|n| format!("<mechanism>{n}</mechanism>"))
        .collect();
    format!("<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>{m}</mechanisms></stream:features>")
}

fn params(recipients: &[&str]) -> Params {
    Params {
        account: Jid::parse("bot@example.com").unwrap(),
        password: "pencil".into(),
        recipients: recipients.iter().map(|r| Jid::parse(r).unwrap()).collect(),
        body: "disk <full> & \"hot\"\nline 2".into(),
        subject: Some("CRITICAL".into()),
        kind: MessageType::Headline,
        id_prefix: "t".into(),
    }
}

/// The machine, a parser for what the server says and one for what the
/// client says, with stream restarts applied to both.
struct Sim {
    m: Machine,
    server: StreamParser,
    client: StreamParser,
    /// Every element the client sent, in order, and how many were read.
    sent: Vec<Element>,
    seen: usize,
    /// Actions other than Send, in order.
    other: Vec<Action>,
}

impl Sim {
    fn new(p: Params) -> Sim {
        let mut s = Sim {
            m: Machine::new(p),
            server: StreamParser::new(Limits::default()),
            client: StreamParser::new(Limits::default()),
            sent: Vec::new(),
            seen: 0,
            other: Vec::new(),
        };
        let start = s.m.start();
        s.apply(start);
        s
    }

    fn apply(&mut self, actions: Vec<Action>) {
        for a in actions {
            match a {
                Action::Send(bytes) => {
                    if bytes.starts_with(b"<?xml") {
                        // A new stream from the client.
                        self.client.reset();
                    }
                    self.client.feed(&bytes).unwrap();
                    while let Some(ev) = self.client.next_event().unwrap() {
                        match ev {
                            Event::Stanza(el) => self.sent.push(el),
                            Event::StreamOpen(h) => {
                                assert_eq!(h.attr("to"), Some("example.com"));
                                self.sent.push(
                                    Element::new("stream-open", "test")
                                        .with_attr("from", h.attr("from").unwrap_or("-")),
                                );
                            }
                            Event::StreamClose => {
                                self.sent.push(Element::new("stream-close", "test"))
                            }
                        }
                    }
                }
                Action::StartTls | Action::ResetParser => {
                    self.server.reset();
                    self.other.push(a);
                }
                other => self.other.push(other),
            }
        }
    }

    /// Feeds server XML; returns the first failure, if any.
    fn feed(&mut self, xml: &str) -> Result<(), Failure> {
        self.server.feed(xml.as_bytes()).unwrap();
        while let Some(ev) = self.server.next_event().unwrap() {
            let actions = self.m.handle(ev)?;
            let restart = actions
                .iter()
                .any(|a| matches!(a, Action::StartTls | Action::ResetParser));
            self.apply(actions);
            if restart {
                break;
            }
        }
        Ok(())
    }

    fn ok(&mut self, xml: &str) {
        if let Err(e) = self.feed(xml) {
            panic!("unexpected failure after {xml}: {e}");
        }
    }

    fn fail(&mut self, xml: &str) -> Failure {
        self.feed(xml).expect_err("the run must fail here")
    }

    /// The elements sent since the last call.
    fn new_sent(&mut self) -> Vec<Element> {
        let out = self.sent[self.seen..].to_vec();
        self.seen = self.sent.len();
        out
    }

    /// Up to the TLS stream's features: header, STARTTLS, handshake.
    fn through_tls(&mut self) {
        self.ok(SERVER_HEADER);
        self.ok(STARTTLS_FEATURES);
        let sent = self.new_sent();
        assert_eq!(sent[0].name, "stream-open");
        assert_eq!(sent[0].attr("from"), Some("-"), "no `from` in clear text");
        assert!(sent[1].is("starttls", ns::TLS));
        assert_eq!(self.m.waiting_for(), "the server's answer to STARTTLS");
        self.ok("<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
        assert_eq!(self.other.last(), Some(&Action::StartTls));
        let a = self.m.tls_established();
        self.apply(a);
        let sent = self.new_sent();
        assert_eq!(sent[0].attr("from"), Some("bot@example.com"));
        self.ok(SERVER_HEADER);
    }

    /// Logs in with PLAIN and binds.
    fn through_bind(&mut self) {
        self.through_tls();
        self.ok(&mechanisms(&["PLAIN"]));
        let auth = self.new_sent().remove(0);
        assert!(auth.is("auth", ns::SASL));
        assert_eq!(auth.attr("mechanism"), Some("PLAIN"));
        assert_eq!(B64.decode(auth.text()).unwrap(), b"\0bot\0pencil");
        self.ok("<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>");
        assert_eq!(self.other.last(), Some(&Action::ResetParser));
        assert_eq!(self.new_sent()[0].name, "stream-open");
        self.ok(SERVER_HEADER);
        self.ok(BIND_FEATURES);
        let bind = self.new_sent().remove(0);
        assert_eq!(bind.attr("type"), Some("set"));
        let b = bind.get_child("bind", ns::BIND).expect("a bind request");
        assert!(
            b.get_child("resource", ns::BIND).is_none(),
            "the server picks"
        );
        self.ok(&format!(
            "<iq type='result' id='{}'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><jid>bot@example.com/x1</jid></bind></iq>",
            bind.attr("id").unwrap()
        ));
    }
}

#[test]
fn the_happy_path_sends_each_message_and_waits_for_each_confirmation() {
    let mut s = Sim::new(params(&["ops@example.com", "Pager@Other.org/phone"]));
    s.through_bind();
    let sent = s.new_sent();
    assert_eq!(sent.len(), 4, "{sent:?}");
    for (msg, to) in sent[..2]
        .iter()
        .zip(["ops@example.com", "pager@other.org/phone"])
    {
        assert_eq!(msg.name, "message");
        assert_eq!(msg.attr("to"), Some(to));
        assert_eq!(msg.attr("type"), Some("headline"));
        assert_eq!(
            msg.child_text("subject", ns::CLIENT).as_deref(),
            Some("CRITICAL")
        );
        assert_eq!(
            msg.child_text("body", ns::CLIENT).as_deref(),
            Some("disk <full> & \"hot\"\nline 2")
        );
    }
    // One confirmation per bare JID, after the messages.
    for (iq, to) in sent[2..].iter().zip(["ops@example.com", "pager@other.org"]) {
        assert_eq!(iq.attr("type"), Some("get"));
        assert_eq!(iq.attr("to"), Some(to));
        assert!(iq.get_child("query", CONFIRM_NS).is_some());
    }
    assert!(s.m.sent() && !s.m.settled());
    assert!(
        s.m.waiting_for()
            .contains("ops@example.com, pager@other.org/phone"),
        "{}",
        s.m.waiting_for()
    );
    let c1 = sent[2].attr("id").unwrap().to_owned();
    let c2 = sent[3].attr("id").unwrap().to_owned();
    // Answers in any order; an error answer to the confirmation is normal.
    s.ok(&format!(
        "<iq type='error' id='{c2}' from='pager@other.org'><error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>"
    ));
    assert!(!s.m.settled());
    s.ok(&format!(
        "<iq type='result' id='{c1}' from='ops@example.com'/>"
    ));
    assert!(s.m.settled());
    let last = s.new_sent();
    assert_eq!(last.len(), 1);
    assert_eq!(last[0].name, "stream-close");
    assert_eq!(s.other.last(), Some(&Action::Closing));
    s.ok("</stream:stream>");
    let report = s.m.outcome().unwrap();
    assert_eq!(report.bound, "bot@example.com/x1");
    assert_eq!(report.mechanism, "PLAIN");
    assert_eq!(
        report.delivered,
        ["ops@example.com", "pager@other.org/phone"]
    );
    // EOF after the close is fine.
    assert_eq!(s.m.eof(), Ok(()));
}

#[test]
fn recipients_with_the_same_bare_jid_share_one_confirmation() {
    let mut s = Sim::new(params(&["ops@example.com/a", "ops@example.com/b"]));
    s.through_bind();
    let sent = s.new_sent();
    assert_eq!(sent.len(), 3);
    assert_eq!(sent[2].attr("to"), Some("ops@example.com"));
}

#[test]
fn a_message_error_names_the_recipient_and_the_condition() {
    let mut s = Sim::new(params(&["nobody@example.com", "ops@example.com"]));
    s.through_bind();
    let sent = s.new_sent();
    let m1 = sent[0].attr("id").unwrap().to_owned();
    s.ok(&format!(
        "<message type='error' id='{m1}' from='nobody@example.com'><error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>no such user</text></error></message>"
    ));
    // A message error that is not about our messages is ignored.
    s.ok("<message type='error' id='other' from='x@example.com'><error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>");
    for iq in &sent[2..] {
        s.ok(&format!(
            "<iq type='error' id='{}'><error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>",
            iq.attr("id").unwrap()
        ));
    }
    assert!(s.m.settled());
    let Err(Failure::Recipients { failed, delivered }) = s.m.outcome() else {
        panic!("a refused recipient fails the run")
    };
    assert_eq!(
        failed,
        [RecipientError {
            jid: "nobody@example.com".into(),
            condition: "service-unavailable".into(),
            text: Some("no such user".into()),
        }]
    );
    assert_eq!(delivered, ["ops@example.com"]);
}

#[test]
fn an_unreachable_remote_domain_on_the_confirmation_fails_that_recipient() {
    let mut s = Sim::new(params(&["ops@nowhere.example"]));
    s.through_bind();
    let sent = s.new_sent();
    s.ok(&format!(
        "<iq type='error' id='{}'><error type='cancel'><remote-server-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>",
        sent[1].attr("id").unwrap()
    ));
    let e = s.m.outcome().unwrap_err();
    assert_eq!(e.exit_code(), 65);
    assert!(
        e.to_string()
            .contains("ops@nowhere.example: remote-server-not-found"),
        "{e}"
    );
}

/// A test-side SCRAM-SHA-256 server with its own arithmetic.
struct TestScramServer {
    salt: Vec<u8>,
    iterations: u32,
}

impl TestScramServer {
    fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
        let mut m = Hmac::<Sha256>::new_from_slice(key).unwrap();
        m.update(data);
        m.finalize().into_bytes().to_vec()
    }

    /// Returns (server-first, expected client-final, server-final).
    fn exchange(&self, client_first: &str, password: &str) -> (String, String, String) {
        let bare = client_first
            .strip_prefix("n,,")
            .expect("no channel binding");
        let cnonce = bare.split(",r=").nth(1).unwrap();
        let server_first = format!(
            "r={cnonce}SERVER,s={},i={}",
            B64.encode(&self.salt),
            self.iterations
        );
        let mut salted = [0u8; 32];
        pbkdf2::pbkdf2_hmac::<Sha256>(
            password.as_bytes(),
            &self.salt,
            self.iterations,
            &mut salted,
        );
        let client_key = Self::hmac(&salted, b"Client Key");
        let stored = Sha256::digest(&client_key);
        let without = format!("c=biws,r={cnonce}SERVER");
        let auth = format!("{bare},{server_first},{without}");
        let sig = Self::hmac(&stored, auth.as_bytes());
        let proof: Vec<u8> = client_key.iter().zip(&sig).map(|(a, b)| a ^ b).collect();
        let server_sig = Self::hmac(&Self::hmac(&salted, b"Server Key"), auth.as_bytes());
        (
            server_first,
            format!("{without},p={}", B64.encode(proof)),
            format!("v={}", B64.encode(server_sig)),
        )
    }
}

fn scram_until_final(s: &mut Sim, password_on_server: &str) -> String {
    s.through_tls();
    s.ok(&mechanisms(&[
        "PLAIN",
        "SCRAM-SHA-1",
        "SCRAM-SHA-256",
        "SCRAM-SHA-256-PLUS",
    ]));
    let auth = s.new_sent().remove(0);
    assert_eq!(auth.attr("mechanism"), Some("SCRAM-SHA-256"));
    let first = String::from_utf8(B64.decode(auth.text()).unwrap()).unwrap();
    let server = TestScramServer {
        salt: b"0123456789abcdef".to_vec(),
        iterations: 64,
    };
    let (server_first, expected_final, server_final) = server.exchange(&first, password_on_server);
    s.ok(&format!(
        "<challenge xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>{}</challenge>",
        B64.encode(&server_first)
    ));
    let response = s.new_sent().remove(0);
    assert!(response.is("response", ns::SASL));
    let got = String::from_utf8(B64.decode(response.text()).unwrap()).unwrap();
    if password_on_server == "pencil" {
        assert_eq!(
            got, expected_final,
            "the proof matches the server's arithmetic"
        );
    }
    server_final
}

#[test]
fn scram_sha256_is_preferred_and_the_server_signature_is_checked() {
    let mut s = Sim::new(params(&["ops@example.com"]));
    let server_final = scram_until_final(&mut s, "pencil");
    s.ok(&format!(
        "<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>{}</success>",
        B64.encode(&server_final)
    ));
    assert_eq!(s.other.last(), Some(&Action::ResetParser));

    // A server that does not know the password cannot fake success.
    let mut s = Sim::new(params(&["ops@example.com"]));
    let wrong = scram_until_final(&mut s, "not the password");
    let e = s.fail(&format!(
        "<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>{}</success>",
        B64.encode(&wrong)
    ));
    assert_eq!(e.exit_code(), 69);
    assert!(e.to_string().contains("signature"), "{e}");
    assert!(!s.sent.iter().any(|e| e.name == "message"));

    // Nor succeed without proving anything.
    let mut s = Sim::new(params(&["ops@example.com"]));
    scram_until_final(&mut s, "pencil");
    let e = s.fail("<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>");
    assert_eq!(e.exit_code(), 69, "{e}");
}

#[test]
fn the_server_final_message_may_come_as_a_challenge() {
    let mut s = Sim::new(params(&["ops@example.com"]));
    let server_final = scram_until_final(&mut s, "pencil");
    s.ok(&format!(
        "<challenge xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>{}</challenge>",
        B64.encode(&server_final)
    ));
    let r = s.new_sent().remove(0);
    assert!(r.is("response", ns::SASL) && r.text().is_empty());
    s.ok("<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>");
    assert_eq!(s.other.last(), Some(&Action::ResetParser));
}

#[test]
fn a_refused_login_is_a_credentials_failure() {
    let mut s = Sim::new(params(&["ops@example.com"]));
    s.through_tls();
    s.ok(&mechanisms(&["PLAIN"]));
    let e = s.fail("<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><not-authorized/><text>Invalid username or password</text></failure>");
    assert_eq!(
        e,
        Failure::Auth {
            account: "bot@example.com".into(),
            condition: "not-authorized".into(),
            text: Some("Invalid username or password".into()),
        }
    );
    assert_eq!(e.exit_code(), 77);

    let mut s = Sim::new(params(&["ops@example.com"]));
    s.through_tls();
    s.ok(&mechanisms(&["PLAIN"]));
    let e = s.fail(
        "<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><temporary-auth-failure/></failure>",
    );
    assert_eq!(e.exit_code(), 69, "{e}");
}

#[test]
fn no_starttls_means_no_login() {
    let mut s = Sim::new(params(&["ops@example.com"]));
    s.ok(SERVER_HEADER);
    let e = s.fail(&mechanisms(&["PLAIN"]));
    assert_eq!(e.exit_code(), 69);
    assert!(e.to_string().contains("clear text"), "{e}");
    // Nothing but the header went out.
    assert_eq!(s.sent.len(), 1);
}

#[test]
fn a_pre_xmpp1_server_is_refused() {
    let mut s = Sim::new(params(&["ops@example.com"]));
    let e = s.fail("<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' id='x'>");
    assert_eq!(e.exit_code(), 69);
    assert!(e.to_string().contains("XMPP 1.0"), "{e}");
}

#[test]
fn no_usable_mechanism_lists_what_was_offered() {
    let mut s = Sim::new(params(&["ops@example.com"]));
    s.through_tls();
    let e = s.fail(&mechanisms(&["EXTERNAL", "SCRAM-SHA-1-PLUS"]));
    assert_eq!(e.exit_code(), 69);
    assert!(e.to_string().contains("EXTERNAL, SCRAM-SHA-1-PLUS"), "{e}");
}

#[test]
fn stream_errors_and_hangups_say_whether_anything_was_sent() {
    let mut s = Sim::new(params(&["ops@example.com"]));
    s.ok(SERVER_HEADER);
    let e = s.fail(
        "<stream:error><host-unknown xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>",
    );
    assert_eq!(e.exit_code(), 69);
    let text = e.to_string();
    assert!(
        text.contains("host-unknown") && text.contains("does not serve example.com"),
        "{text}"
    );
    assert!(text.contains("nothing was sent"), "{text}");

    let mut s = Sim::new(params(&["ops@example.com"]));
    s.through_bind();
    assert_eq!(s.m.eof().unwrap_err().exit_code(), 69);
    let e = s.fail("</stream:stream>");
    assert!(
        e.to_string().contains("may or may not have been delivered"),
        "{e}"
    );
}

#[test]
fn unsolicited_iqs_are_answered_and_other_stanzas_ignored() {
    let mut s = Sim::new(params(&["ops@example.com"]));
    s.through_bind();
    s.new_sent();
    s.ok("<iq type='get' id='q1' from='someone@example.com/x'><query xmlns='jabber:iq:version'/></iq>");
    s.ok("<presence from='someone@example.com/x'/><message from='someone@example.com/x'><body>hi</body></message>");
    let sent = s.new_sent();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0].attr("type"), Some("error"));
    assert_eq!(sent[0].attr("id"), Some("q1"));
    assert_eq!(sent[0].attr("to"), Some("someone@example.com/x"));
    assert!(!s.m.settled());
}

#[test]
fn a_required_session_is_opened_and_a_resource_is_requested() {
    let mut p = params(&["ops@example.com"]);
    p.account = Jid::parse("bot@example.com/nagios").unwrap();
    let mut s = Sim::new(p);
    s.through_tls();
    s.ok(&mechanisms(&["PLAIN"]));
    s.ok("<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>");
    s.ok(SERVER_HEADER);
    s.ok("<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/><session xmlns='urn:ietf:params:xml:ns:xmpp-session'/></stream:features>");
    let bind = s.new_sent().pop().unwrap();
    assert_eq!(
        bind.get_child("bind", ns::BIND)
            .and_then(|b| b.child_text("resource", ns::BIND))
            .as_deref(),
        Some("nagios")
    );
    s.ok(&format!(
        "<iq type='result' id='{}'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><jid>bot@example.com/nagios</jid></bind></iq>",
        bind.attr("id").unwrap()
    ));
    let session = s.new_sent().pop().unwrap();
    assert!(session.get_child("session", ns::SESSION).is_some());
    assert!(!s.m.sent());
    s.ok(&format!(
        "<iq type='result' id='{}'/>",
        session.attr("id").unwrap()
    ));
    let sent = s.new_sent();
    assert_eq!(sent[0].name, "message");
    assert!(s.m.sent());
}

#[test]
fn an_optional_session_is_skipped_and_a_refused_bind_fails() {
    let mut s = Sim::new(params(&["ops@example.com"]));
    s.through_tls();
    s.ok(&mechanisms(&["PLAIN"]));
    s.ok("<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>");
    s.ok(SERVER_HEADER);
    s.ok("<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/><session xmlns='urn:ietf:params:xml:ns:xmpp-session'><optional/></session></stream:features>");
    let bind = s.new_sent().pop().unwrap();
    let e = s.fail(&format!(
        "<iq type='error' id='{}'><error type='cancel'><not-allowed xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>",
        bind.attr("id").unwrap()
    ));
    assert_eq!(e.exit_code(), 69);
    assert!(e.to_string().contains("not-allowed"), "{e}");
}
