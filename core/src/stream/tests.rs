//! The c2s machine driven in memory: a scripted client on one side, the
//! machine on the other, a simulated clock, and a tiny in-memory account
//! table standing in for the spool (the machine never touches storage; the
//! driver's lookups are what the table replaces).

use std::time::{Duration, Instant};

use base64::Engine as _;
use switchboard_xml::Limits;

use super::c2s::{Action, C2s, C2sSettings};
use crate::sasl::scram::derive_with_salt;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;
const HEADER: &str = "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>";

fn settings() -> C2sSettings {
    C2sSettings {
        hosts: vec!["localhost".into()],
        tls_available: true,
        tls_required: true,
        limits: Limits::default(),
        preauth_timeout: Duration::from_secs(60),
        keepalive: Duration::from_secs(60),
        open_registration: vec!["localhost".into()],
        extensions: Default::default(),
        stream_management: true,
    }
}

/// The server machine plus what the client has received so far.
struct Pair {
    server: C2s,
    /// Bytes the server sent, as text, since the last `take`.
    received: String,
    closed: bool,
    bound: Option<String>,
    routed: Vec<switchboard_xml::Element>,
    /// Stream management actions, as text, in order.
    sm: Vec<String>,
    start: Instant,
}

impl Pair {
    fn new() -> Pair {
        let start = Instant::now();
        Pair {
            server: C2s::new(settings(), start, false, None),
            received: String::new(),
            closed: false,
            bound: None,
            routed: Vec::new(),
            sm: Vec::new(),
            start,
        }
    }

    /// Sends client bytes and runs the machine's actions the way the
    /// driver would, answering lookups from the in-memory account
    /// `alice` / `secret`.
    fn send(&mut self, text: &str) {
        self.server.handle_input(text.as_bytes());
        self.drain();
    }

    fn drain(&mut self) {
        while let Some(a) = self.server.poll_action() {
            match a {
                Action::Send(b) => self.received.push_str(&String::from_utf8(b).unwrap()),
                Action::StartTls => self.server.tls_established(Some(vec![7u8; 32])),
                Action::LookupScram { user, hash, .. } => {
                    let cred = (user == "alice")
                        .then(|| derive_with_salt(hash, "secret", b"salt-of-alice", 4096));
                    self.server.scram_credentials(cred);
                }
                Action::VerifyPlain { user, password, .. } => {
                    let ok = user == "alice" && password == "secret";
                    self.server.plain_verified(&user, ok);
                }
                Action::Register { user, .. } => {
                    let r = if user == "alice" {
                        Err(crate::stanza::StanzaError::new(
                            "conflict",
                            crate::stanza::ErrorType::Cancel,
                        ))
                    } else {
                        Ok(())
                    };
                    self.server.registered(r);
                }
                Action::Bound(j) => self.bound = Some(j.to_string()),
                Action::Stanza(el, _) => self.routed.push(el),
                Action::Nonza(el) => self.routed.push(el),
                Action::SmEnable { resume, max } => {
                    self.sm.push(format!("enable resume={resume} max={max:?}"));
                    self.server
                        .send_nonza(&switchboard_xml::Element::new("enabled", super::sm::NS));
                }
                Action::SmRequest => self.sm.push("r".into()),
                Action::SmAck(h) => self.sm.push(format!("a {h}")),
                Action::SmResume { previd, h } => {
                    self.sm.push(format!("resume {previd} {h}"));
                    if previd == "known" {
                        let jid = switchboard_jid::Jid::parse("alice@localhost/phone").unwrap();
                        self.bound = Some(jid.to_string());
                        let reply = switchboard_xml::Element::new("resumed", super::sm::NS)
                            .with_attr("h", "0");
                        self.server.resumed(jid, &reply);
                    } else {
                        self.server.resume_failed();
                    }
                }
                Action::VerifyFast {
                    user,
                    agent,
                    mechanism,
                    proof,
                    cb,
                    ..
                } => {
                    self.sm
                        .push(format!("verify-fast {user} {agent} {}", mechanism.name()));
                    let ok = agent == "phone-1" && crate::sasl::ht::verify(b"tok", &cb, &proof);
                    let result = if ok {
                        Ok(crate::fast::Used {
                            responder: crate::sasl::ht::responder_proof(b"tok", &cb).to_vec(),
                            rotate: false,
                        })
                    } else {
                        Err(crate::sasl::SaslFailure::NotAuthorized)
                    };
                    self.server.fast_verified(&user, result);
                }
                Action::IssueFast {
                    agent, mechanism, ..
                } => {
                    self.sm
                        .push(format!("issue-fast {agent} {}", mechanism.name()));
                    let token = switchboard_xml::Element::new("token", crate::fast::NS)
                        .with_attr("token", "tok");
                    self.server.fast_issued(Some(token));
                }
                Action::ClientAgent(agent) => self.sm.push(format!("agent {agent}")),
                Action::Sasl2Step => {
                    self.sm.push("step".into());
                    self.server.sasl2_step();
                }
                Action::Answered(reply) => {
                    self.sm.push("answered".into());
                    if let Some(r) = reply {
                        let bytes = r.to_bytes(Some("jabber:client"));
                        self.received.push_str(&String::from_utf8(bytes).unwrap());
                    }
                }
                Action::Close => self.closed = true,
            }
        }
    }

    fn take(&mut self) -> String {
        std::mem::take(&mut self.received)
    }

    fn advance(&mut self, secs: u64) {
        self.server
            .handle_timeout(self.start + Duration::from_secs(secs));
        self.drain();
    }

    /// Header, STARTTLS, and the post-TLS header: ready for SASL.
    fn open_for_sasl(&mut self) -> String {
        self.send(HEADER);
        self.send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
        self.take();
        self.send(HEADER);
        self.take()
    }

    /// A full PLAIN login and bind of `alice/phone`.
    fn login(&mut self) {
        self.authenticate();
        self.send("<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>phone</resource></bind></iq>");
        self.take();
    }

    /// A PLAIN login and the stream restart; returns the features offered.
    fn authenticate(&mut self) -> String {
        self.open_for_sasl();
        let payload = B64.encode(b"\0alice\0secret");
        self.send(&format!(
            "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{payload}</auth>"
        ));
        assert!(self.take().contains("<success"), "PLAIN login succeeds");
        self.send(HEADER);
        self.take()
    }
}

#[test]
fn before_tls_only_starttls_is_offered_and_it_is_required() {
    let mut p = Pair::new();
    p.send(HEADER);
    let out = p.take();
    assert!(out.contains("<stream:stream"), "{out}");
    assert!(out.contains("from='localhost'"), "{out}");
    assert!(
        out.contains("<starttls xmlns=\"urn:ietf:params:xml:ns:xmpp-tls\"><required/></starttls>"),
        "{out}"
    );
    assert!(!out.contains("mechanisms"), "no SASL before TLS: {out}");
}

#[test]
fn other_encodings_are_unsupported_encoding_stream_errors() {
    let latin1 = format!("<?xml version='1.0' encoding='ISO-8859-1'?>{HEADER}");
    let mut utf16 = vec![0xFF, 0xFE];
    utf16.extend(HEADER.encode_utf16().flat_map(u16::to_le_bytes));
    for input in [latin1.into_bytes(), utf16] {
        let mut p = Pair::new();
        p.server.handle_input(&input);
        p.drain();
        let out = p.take();
        assert!(
            out.contains("<stream:error><unsupported-encoding xmlns=\"urn:ietf:params:xml:ns:xmpp-streams\"/>"),
            "{out}"
        );
        assert!(p.closed);
    }
    // After a restart the new stream is judged afresh.
    let mut p = Pair::new();
    p.send(HEADER);
    p.send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
    p.take();
    let mut be = vec![0xFE, 0xFF];
    be.extend(HEADER.encode_utf16().flat_map(u16::to_be_bytes));
    p.server.handle_input(&be);
    p.drain();
    assert!(p.take().contains("<unsupported-encoding"));
    // UTF-8, named in any case, is fine.
    let mut p = Pair::new();
    p.send(&format!("<?xml version='1.0' encoding='utf-8'?>{HEADER}"));
    assert!(p.take().contains("<starttls"));
}

#[test]
fn auth_before_tls_is_refused() {
    let mut p = Pair::new();
    p.send(HEADER);
    p.take();
    p.send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGFsaWNlAHNlY3JldA==</auth>");
    let out = p.take();
    assert!(out.contains("encryption-required"), "{out}");
    assert!(p.closed);
}

#[test]
fn after_tls_mechanisms_include_plus_variants_and_plain() {
    let mut p = Pair::new();
    let out = p.open_for_sasl();
    for m in [
        "SCRAM-SHA-256-PLUS",
        "SCRAM-SHA-1-PLUS",
        "SCRAM-SHA-256",
        "SCRAM-SHA-1",
        "PLAIN",
    ] {
        assert!(out.contains(&format!(">{m}<")), "{m} offered: {out}");
    }
    assert!(out.contains("tls-exporter"), "XEP-0440 advertised: {out}");
}

#[test]
fn full_login_binds_and_stamps_from() {
    let mut p = Pair::new();
    p.login();
    assert_eq!(p.bound.as_deref(), Some("alice@localhost/phone"));
    p.send("<message to='Bob@LOCALHOST' type='chat'><body>hi &amp; bye</body></message>");
    assert_eq!(p.routed.len(), 1);
    let m = &p.routed[0];
    assert_eq!(m.attr("from"), Some("alice@localhost/phone"));
    assert_eq!(m.attr("to"), Some("bob@localhost"), "to is normalized");
    assert_eq!(
        m.child_text("body", "jabber:client").as_deref(),
        Some("hi & bye")
    );
}

#[test]
fn bind_without_resource_generates_one() {
    let mut p = Pair::new();
    p.open_for_sasl();
    p.send(&format!(
        "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{}</auth>",
        B64.encode(b"\0alice\0secret")
    ));
    p.send(HEADER);
    p.take();
    p.send("<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>");
    let out = p.take();
    let jid = p.bound.clone().expect("bound");
    assert!(jid.starts_with("alice@localhost/") && jid.len() > "alice@localhost/".len());
    assert!(out.contains(&format!("<jid>{jid}</jid>")), "{out}");
}

#[test]
fn wrong_password_and_unknown_user_fail_the_same_way() {
    for creds in [&b"\0alice\0wrong"[..], &b"\0nobody\0secret"[..]] {
        let mut p = Pair::new();
        p.open_for_sasl();
        p.send(&format!(
            "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{}</auth>",
            B64.encode(creds)
        ));
        let out = p.take();
        assert_eq!(
            out,
            "<failure xmlns=\"urn:ietf:params:xml:ns:xmpp-sasl\"><not-authorized/></failure>"
        );
        assert!(!p.closed, "a client may retry");
    }
}

#[test]
fn three_failed_logins_close_the_stream() {
    let mut p = Pair::new();
    p.open_for_sasl();
    for _ in 0..3 {
        p.send(&format!(
            "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{}</auth>",
            B64.encode(b"\0alice\0nope")
        ));
    }
    assert!(p.take().contains("policy-violation"));
    assert!(p.closed);
}

/// The client's final SCRAM-SHA-256 message from the link kit's client
/// (the one notify and the load generator use), started with the given
/// first message and channel binding, as the tests script them.
fn scram_client_final(
    server_first: &str,
    client_first_bare: &str,
    gs2: &str,
    cb: &[u8],
    password: &str,
) -> String {
    use switchboard_link::scram::{ChannelBinding, ScramClient, ScramHash};
    let (user, nonce) = client_first_bare
        .strip_prefix("n=")
        .and_then(|r| r.split_once(",r="))
        .expect("n=USER,r=NONCE");
    let binding = match gs2 {
        "n,," => ChannelBinding::None,
        "y,," => ChannelBinding::NotOffered,
        _ => ChannelBinding::Bound {
            kind: "tls-exporter".into(),
            data: cb.to_vec(),
        },
    };
    let mut client = ScramClient::with_nonce(ScramHash::Sha256, user, password, nonce)
        .unwrap()
        .with_channel_binding(binding);
    assert_eq!(
        String::from_utf8(client.initial()).unwrap(),
        format!("{gs2}{client_first_bare}")
    );
    String::from_utf8(client.challenge(server_first.as_bytes()).unwrap()).unwrap()
}

fn text_of(out: &str, tag: &str) -> String {
    let start = out.find(&format!("<{tag} ")).expect(tag);
    let rest = &out[start..];
    let gt = rest.find('>').unwrap();
    let end = rest.find(&format!("</{tag}>")).unwrap();
    String::from_utf8(B64.decode(&rest[gt + 1..end]).unwrap()).unwrap()
}

#[test]
fn scram_sha_256_plus_login_with_channel_binding() {
    let mut p = Pair::new();
    p.open_for_sasl();
    let gs2 = "p=tls-exporter,,";
    let first_bare = "n=alice,r=clientnonce123";
    p.send(&format!(
        "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-256-PLUS'>{}</auth>",
        B64.encode(format!("{gs2}{first_bare}"))
    ));
    let server_first = text_of(&p.take(), "challenge");
    let fin = scram_client_final(&server_first, first_bare, gs2, &[7u8; 32], "secret");
    p.send(&format!(
        "<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>{}</response>",
        B64.encode(fin)
    ));
    let out = p.take();
    assert!(out.contains("<success"), "{out}");
}

#[test]
fn scram_with_the_wrong_channel_binding_fails() {
    let mut p = Pair::new();
    p.open_for_sasl();
    let gs2 = "p=tls-exporter,,";
    let first_bare = "n=alice,r=clientnonce123";
    p.send(&format!(
        "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-256-PLUS'>{}</auth>",
        B64.encode(format!("{gs2}{first_bare}"))
    ));
    let server_first = text_of(&p.take(), "challenge");
    // A man in the middle has a different TLS session, hence other data.
    let fin = scram_client_final(&server_first, first_bare, gs2, &[9u8; 32], "secret");
    p.send(&format!(
        "<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>{}</response>",
        B64.encode(fin)
    ));
    let out = p.take();
    assert!(out.contains("<failure"), "{out}");
    assert!(!out.contains("<success"), "{out}");
}

#[test]
fn scram_for_an_unknown_user_looks_like_a_real_one_until_the_end() {
    let mut p = Pair::new();
    p.open_for_sasl();
    p.send(&format!(
        "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-256'>{}</auth>",
        B64.encode("n,,n=nobody,r=abc")
    ));
    let server_first = text_of(&p.take(), "challenge");
    assert!(
        server_first.starts_with("r=abc")
            && server_first.contains(",s=")
            && server_first.contains(",i=")
    );
    let fin = scram_client_final(&server_first, "n=nobody,r=abc", "n,,", &[], "secret");
    p.send(&format!(
        "<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>{}</response>",
        B64.encode(fin)
    ));
    assert!(p.take().contains("not-authorized"));
}

#[test]
fn preauth_timeout_closes_an_idle_connection() {
    let mut p = Pair::new();
    p.send(HEADER);
    p.take();
    p.advance(59);
    assert!(!p.closed, "not yet");
    p.advance(61);
    let out = p.take();
    assert!(out.contains("<connection-timeout"), "{out}");
    assert!(out.ends_with("</stream:stream>"));
    assert!(p.closed);
}

#[test]
fn idle_bound_session_gets_whitespace_keepalives_and_no_timeout() {
    let mut p = Pair::new();
    p.login();
    let deadline = p.server.poll_timeout().unwrap();
    assert!(deadline > p.start, "a keepalive is scheduled");
    p.advance(120);
    assert_eq!(p.take(), " ");
    assert!(!p.closed);
}

#[test]
fn unknown_host_gets_host_unknown_after_a_header_from_us() {
    let mut p = Pair::new();
    p.send("<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='example.net' version='1.0'>");
    let out = p.take();
    assert!(
        out.starts_with("<?xml version='1.0'?><stream:stream"),
        "{out}"
    );
    assert!(out.contains("<host-unknown"), "{out}");
    assert!(p.closed);
}

#[test]
fn stream_to_may_not_change_on_restart() {
    let mut settings = settings();
    settings.hosts.push("example.org".into());
    let mut p = Pair::new();
    p.server = C2s::new(settings, p.start, false, None);
    p.send(HEADER);
    p.send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
    p.take();
    p.send("<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='example.org' version='1.0'>");
    assert!(p.take().contains("<host-unknown"));
    assert!(p.closed);
}

#[test]
fn wrong_version_and_wrong_content_namespace_are_stream_errors() {
    let mut p = Pair::new();
    p.send("<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='2.0'>");
    assert!(p.take().contains("<unsupported-version"));
    let mut p = Pair::new();
    p.send("<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>");
    assert!(p.take().contains("<invalid-namespace"));
    let mut p = Pair::new();
    p.send("<stream:stream xmlns='jabber:client' xmlns:stream='http://example.com/streams' to='localhost' version='1.0'>");
    assert!(p.take().contains("<invalid-namespace"));
}

#[test]
fn restricted_xml_is_a_stream_error() {
    let mut p = Pair::new();
    p.send(HEADER);
    p.take();
    p.send("<!-- hello -->");
    let out = p.take();
    assert!(out.contains("<restricted-xml"), "{out}");
    assert!(p.closed);
}

#[test]
fn a_spoofed_from_is_invalid_from() {
    let mut p = Pair::new();
    p.login();
    p.send("<message from='bob@localhost/x' to='carol@localhost'><body>x</body></message>");
    assert!(p.take().contains("<invalid-from"));
    assert!(p.closed);
    assert!(p.routed.is_empty());
}

#[test]
fn own_bare_or_full_from_is_accepted() {
    let mut p = Pair::new();
    p.login();
    p.send("<message from='Alice@localhost' to='bob@localhost'><body>x</body></message>");
    assert_eq!(p.routed[0].attr("from"), Some("alice@localhost/phone"));
}

#[test]
fn malformed_to_gets_jid_malformed_and_is_not_routed() {
    let mut p = Pair::new();
    p.login();
    p.send("<message id='m1' to='a@b@c'><body>x</body></message>");
    let out = p.take();
    assert!(out.contains("<jid-malformed"), "{out}");
    assert!(p.routed.is_empty());
    assert!(!p.closed);
}

#[test]
fn iq_shape_is_checked() {
    let mut p = Pair::new();
    p.login();
    p.send("<iq type='get' id='x'/>");
    assert!(p.take().contains("<bad-request"));
    p.send("<iq type='fetch' id='y'><ping xmlns='urn:xmpp:ping'/></iq>");
    assert!(p.take().contains("<bad-request"));
    assert!(p.routed.is_empty());
}

#[test]
fn stanzas_before_bind_are_refused() {
    let mut p = Pair::new();
    p.open_for_sasl();
    p.send(&format!(
        "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{}</auth>",
        B64.encode(b"\0alice\0secret")
    ));
    p.send(HEADER);
    p.take();
    p.send("<message to='bob@localhost'><body>x</body></message>");
    assert!(p.take().contains("<not-authorized"));
    assert!(p.closed);
}

#[test]
fn legacy_session_iq_is_answered() {
    let mut p = Pair::new();
    p.login();
    p.send("<iq type='set' id='s1'><session xmlns='urn:ietf:params:xml:ns:xmpp-session'/></iq>");
    let out = p.take();
    assert!(
        out.contains("type=\"result\"") && out.contains("id=\"s1\""),
        "{out}"
    );
}

#[test]
fn closing_the_stream_closes_ours() {
    let mut p = Pair::new();
    p.login();
    p.send("</stream:stream>");
    assert_eq!(p.take(), "</stream:stream>");
    assert!(p.closed);
}

#[test]
fn bytes_after_starttls_are_not_interpreted() {
    let mut p = Pair::new();
    p.send(HEADER);
    p.take();
    // A plaintext injection pipelined after <starttls/>.
    p.server.handle_input(b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/><auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGFsaWNlAHNlY3JldA==</auth>");
    p.drain();
    let out = p.take();
    assert!(out.contains("<proceed"));
    assert!(
        !out.contains("success") && !out.contains("failure"),
        "{out}"
    );
}

#[test]
fn unsupported_top_level_elements_close_the_stream() {
    let mut p = Pair::new();
    p.login();
    p.send("<enable xmlns='urn:xmpp:csi:0'/>");
    assert!(p.take().contains("<unsupported-stanza-type"));
    assert!(p.closed);
}

#[test]
fn a_client_without_tls_exporter_falls_back_to_plain_scram() {
    // slixmpp 1.8 (Debian 12) asks for tls-unique, then falls back to
    // SCRAM with the 'y' flag; it must get in, and the attempts must not
    // count as failed logins.
    let mut p = Pair::new();
    p.open_for_sasl();
    for mech in ["SCRAM-SHA-256-PLUS", "SCRAM-SHA-1-PLUS"] {
        p.send(&format!(
            "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='{mech}'>{}</auth>",
            B64.encode("p=tls-unique,,n=alice,r=abc")
        ));
        let out = p.take();
        assert!(
            out.contains("<malformed-request/>") && out.contains("tls-exporter"),
            "{out}"
        );
    }
    let first_bare = "n=alice,r=abc";
    p.send(&format!(
        "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-256'>{}</auth>",
        B64.encode(format!("y,,{first_bare}"))
    ));
    let server_first = text_of(&p.take(), "challenge");
    let fin = scram_client_final(&server_first, first_bare, "y,,", &[], "secret");
    p.send(&format!(
        "<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>{}</response>",
        B64.encode(fin)
    ));
    assert!(p.take().contains("<success"));
}

#[test]
fn the_y_flag_without_a_plus_attempt_is_refused_as_a_downgrade() {
    let mut p = Pair::new();
    p.open_for_sasl();
    p.send(&format!(
        "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-256'>{}</auth>",
        B64.encode("y,,n=alice,r=abc")
    ));
    let out = p.take();
    assert!(
        out.contains("<failure")
            && out.contains("<not-authorized/>")
            && !out.contains("<challenge"),
        "{out}"
    );
}

#[test]
fn registration_before_login_when_open() {
    let mut p = Pair::new();
    let features = p.open_for_sasl();
    assert!(
        features.contains("http://jabber.org/features/iq-register"),
        "{features}"
    );
    p.send("<iq type='get' id='r1'><query xmlns='jabber:iq:register'/></iq>");
    let out = p.take();
    assert!(
        out.contains("<username/>") && out.contains("<password/>"),
        "{out}"
    );
    p.send("<iq type='set' id='r2'><query xmlns='jabber:iq:register'><username>carol</username><password>pw</password></query></iq>");
    let out = p.take();
    assert!(
        out.contains("type=\"result\"") && out.contains("id=\"r2\""),
        "{out}"
    );
    p.send("<iq type='set' id='r3'><query xmlns='jabber:iq:register'><username>Alice</username><password>pw</password></query></iq>");
    assert!(
        p.take().contains("<conflict"),
        "an existing name is a conflict"
    );
    assert!(!p.closed);
}

#[test]
fn registration_is_refused_when_not_open_and_not_before_tls() {
    let mut s = settings();
    s.open_registration.clear();
    let mut p = Pair::new();
    p.server = C2s::new(s, p.start, false, None);
    let features = p.open_for_sasl();
    assert!(!features.contains("iq-register"), "{features}");
    p.send("<iq type='set' id='r2'><query xmlns='jabber:iq:register'><username>carol</username><password>pw</password></query></iq>");
    assert!(p.take().contains("<not-allowed"));

    let mut p = Pair::new();
    p.send(HEADER);
    p.take();
    p.send("<iq type='get' id='r1'><query xmlns='jabber:iq:register'/></iq>");
    assert!(p.take().contains("policy-violation"), "STARTTLS first");
    assert!(p.closed);
}

/// The same negotiation over RFC 7395 WebSocket framing: every message
/// the machine sends is one complete element that parses on its own, the
/// stream opens and restarts with `<open/>`, no STARTTLS is offered (the
/// WebSocket runs inside HTTPS), stanzas declare their namespace, and
/// `<close/>` ends it.
#[test]
fn websocket_framing_negotiates_the_same_stream_one_element_per_message() {
    use crate::stream::Framing;
    use switchboard_xml::{ns, parse_document, Element};
    #[derive(Default)]
    struct Seen {
        sent: Vec<Element>,
        bound: Option<String>,
        routed: Vec<Element>,
        closed: bool,
    }
    fn step(m: &mut C2s, msg: &str, seen: &mut Seen) {
        m.handle_input(msg.as_bytes());
        while let Some(a) = m.poll_action() {
            match a {
                Action::Send(b) => {
                    seen.sent
                        .push(parse_document(&b, Limits::default()).unwrap_or_else(|e| {
                            panic!("not one element: {e}: {}", String::from_utf8_lossy(&b))
                        }))
                }
                Action::VerifyPlain { user, password, .. } => {
                    m.plain_verified(&user, user == "alice" && password == "secret")
                }
                Action::Bound(j) => seen.bound = Some(j.to_string()),
                Action::Stanza(el, _) => seen.routed.push(el),
                Action::Close => seen.closed = true,
                other => panic!("unexpected {other:?}"),
            }
        }
    }
    let mut m = C2s::with_framing(settings(), Instant::now(), Framing::WebSocket, true, None);
    let mut seen = Seen::default();
    let open = "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='localhost' version='1.0'/>";
    step(&mut m, open, &mut seen);
    assert!(seen.sent[0].is("open", ns::FRAMING), "{:?}", seen.sent[0]);
    assert_eq!(seen.sent[0].attr("from"), Some("localhost"));
    assert!(seen.sent[1].is("features", ns::STREAM));
    assert!(seen.sent[1].get_child("starttls", ns::TLS).is_none());
    assert!(seen.sent[1].get_child("mechanisms", ns::SASL).is_some());
    seen.sent.clear();
    let auth = format!(
        "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{}</auth>",
        B64.encode(b"\0alice\0secret")
    );
    step(&mut m, &auth, &mut seen);
    assert!(seen.sent[0].is("success", ns::SASL));
    seen.sent.clear();
    step(&mut m, open, &mut seen);
    assert!(seen.sent[1].get_child("bind", ns::BIND).is_some());
    seen.sent.clear();
    step(
        &mut m,
        "<iq xmlns='jabber:client' type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>web</resource></bind></iq>",
        &mut seen,
    );
    assert_eq!(seen.bound.as_deref(), Some("alice@localhost/web"));
    assert!(
        seen.sent[0].is("iq", ns::CLIENT),
        "the reply declares jabber:client"
    );
    step(
        &mut m,
        "<message xmlns='jabber:client' to='bob@localhost'><body>hi</body></message>",
        &mut seen,
    );
    assert_eq!(seen.routed.len(), 1);
    seen.sent.clear();
    step(
        &mut m,
        "<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>",
        &mut seen,
    );
    assert!(seen.sent.last().unwrap().is("close", ns::FRAMING));
    assert!(seen.closed);
}

/// A stream error over WebSocket is a `<stream:error>` that declares its
/// prefix, followed by `<close/>` as its own message.
#[test]
fn websocket_stream_errors_stand_alone() {
    use crate::stream::Framing;
    use switchboard_xml::{ns, parse_document};
    let mut m = C2s::with_framing(settings(), Instant::now(), Framing::WebSocket, true, None);
    m.handle_input(
        b"<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='elsewhere.example' version='1.0'/>",
    );
    let mut msgs = Vec::new();
    while let Some(a) = m.poll_action() {
        if let Action::Send(b) = a {
            msgs.push(parse_document(&b, Limits::default()).unwrap());
        }
    }
    assert!(msgs[0].is("open", ns::FRAMING));
    assert!(msgs[1].is("error", ns::STREAM));
    assert!(msgs[1].get_child("host-unknown", ns::STREAMS).is_some());
    assert!(msgs[2].is("close", ns::FRAMING));
}

const SM: &str = "urn:xmpp:sm:3";

#[test]
fn stream_management_is_offered_after_login_and_enabled_once_after_bind() {
    let mut p = Pair::new();
    let features = p.authenticate();
    assert!(
        features.contains(&format!("<sm xmlns=\"{SM}\"/>")),
        "{features}"
    );
    // XEP-0198 §3: only after binding.
    p.send(&format!("<enable xmlns='{SM}' resume='true'/>"));
    let out = p.take();
    assert!(
        out.contains("<failed") && out.contains("<unexpected-request"),
        "{out}"
    );
    assert!(p.sm.is_empty());
    p.send("<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>phone</resource></bind></iq>");
    p.take();
    p.send(&format!("<enable xmlns='{SM}' resume='true' max='300'/>"));
    assert_eq!(p.sm, ["enable resume=true max=Some(300)"]);
    assert!(p.take().contains("<enabled"));
    p.send(&format!("<enable xmlns='{SM}'/>"));
    assert!(p.take().contains("<unexpected-request"), "not twice");
    assert_eq!(p.sm.len(), 1);
    assert!(!p.closed);
}

#[test]
fn acks_and_requests_become_actions_and_a_bad_count_closes_the_stream() {
    let mut p = Pair::new();
    p.login();
    p.send(&format!("<r xmlns='{SM}'/>"));
    assert!(
        p.take().contains("<unexpected-request"),
        "not before <enable/>"
    );
    p.send(&format!(
        "<enable xmlns='{SM}'/><r xmlns='{SM}'/><a xmlns='{SM}' h='7'/>"
    ));
    assert_eq!(p.sm, ["enable resume=false max=None", "r", "a 7"]);
    p.send(&format!("<a xmlns='{SM}' h='-1'/>"));
    let out = p.take();
    assert!(out.contains("<bad-format"), "{out}");
    assert!(p.closed);
}

#[test]
fn stanzas_the_machine_answers_itself_are_counted_under_stream_management() {
    let mut p = Pair::new();
    p.login();
    p.send(&format!("<enable xmlns='{SM}'/>"));
    p.take();
    p.send("<message id='m1' to='a@b@c'><body>x</body></message>");
    p.send("<iq type='set' id='s1'><session xmlns='urn:ietf:params:xml:ns:xmpp-session'/></iq>");
    p.send("<message id='m2' to='a@b@c' type='error'/>");
    assert_eq!(p.sm[1..], ["answered", "answered", "answered"]);
    let out = p.take();
    assert!(
        out.contains("<jid-malformed") && out.contains("id=\"s1\""),
        "{out}"
    );
    assert!(p.routed.is_empty());
}

#[test]
fn a_resumed_stream_is_bound_again_and_what_followed_the_resume_waits_for_it() {
    let mut p = Pair::new();
    p.authenticate();
    // Pipelined: the message must not be taken before the resumption is.
    p.send(&format!(
        "<resume xmlns='{SM}' previd='known' h='3'/><message to='bob@localhost'><body>x</body></message>"
    ));
    assert_eq!(p.sm, ["resume known 3"]);
    assert!(p.take().contains("<resumed"));
    assert_eq!(p.routed.len(), 1);
    assert_eq!(p.routed[0].attr("from"), Some("alice@localhost/phone"));
    // A resumed stream cannot resume or enable again.
    p.send(&format!(
        "<resume xmlns='{SM}' previd='known' h='3'/><enable xmlns='{SM}'/>"
    ));
    let out = p.take();
    assert_eq!(out.matches("<unexpected-request").count(), 2, "{out}");
}

#[test]
fn a_failed_resumption_leaves_the_stream_to_bind() {
    let mut p = Pair::new();
    p.authenticate();
    p.send(&format!("<resume xmlns='{SM}' h='3'/>"));
    assert!(p.take().contains("<bad-request"), "no previd");
    p.send(&format!("<resume xmlns='{SM}' previd='gone' h='3'/>"));
    assert!(p.take().contains("<item-not-found"));
    p.send("<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>phone</resource></bind></iq>");
    assert!(p.take().contains("<jid>alice@localhost/phone</jid>"));
    assert!(!p.closed);
}

const SASL2: &str = "urn:xmpp:sasl:2";

fn plain_b64() -> String {
    B64.encode(b"\0alice\0secret")
}

#[test]
fn sasl2_is_offered_with_bind2_resumption_and_fast_inside_tls() {
    let mut p = Pair::new();
    let features = p.open_for_sasl();
    assert!(
        features.contains(&format!("<authentication xmlns=\"{SASL2}\">")),
        "{features}"
    );
    assert!(
        features.contains("<mechanism>SCRAM-SHA-256-PLUS</mechanism>"),
        "{features}"
    );
    assert!(
        features.contains("<bind xmlns=\"urn:xmpp:bind:0\"><inline><feature var=\"urn:xmpp:sm:3\"/></inline></bind>"),
        "{features}"
    );
    assert!(
        features.contains("<fast xmlns=\"urn:xmpp:fast:0\"><mechanism>HT-SHA-256-EXPR</mechanism><mechanism>HT-SHA-256-NONE</mechanism></fast>"),
        "{features}"
    );
    // RFC 6120 SASL is still there for everyone else.
    assert!(features.contains("<mechanisms xmlns=\"urn:ietf:params:xml:ns:xmpp-sasl\">"));
}

#[test]
fn one_sasl2_request_logs_in_binds_enables_sm_and_issues_a_token() {
    let mut p = Pair::new();
    p.open_for_sasl();
    p.send(&format!(
        "<authenticate xmlns='{SASL2}' mechanism='PLAIN'><initial-response>{}</initial-response>\
         <user-agent id='phone-1'><software>Test</software></user-agent>\
         <bind xmlns='urn:xmpp:bind:0'><tag>Phone</tag><enable xmlns='{SM}' resume='true'/></bind>\
         <request-token xmlns='urn:xmpp:fast:0' mechanism='HT-SHA-256-NONE'/></authenticate>\
         <message to='bob@localhost'><body>pipelined</body></message>",
        plain_b64()
    ));
    assert_eq!(
        p.sm,
        [
            "agent phone-1",
            "enable resume=true max=None",
            "step",
            "issue-fast phone-1 HT-SHA-256-NONE"
        ]
    );
    let jid = p.bound.clone().expect("bound inline");
    assert!(jid.starts_with("alice@localhost/Phone/"), "{jid}");
    let out = p.take();
    let success_at = out.find("<success").expect("success");
    let features_at = out
        .find("<stream:features")
        .expect("features after success");
    assert!(success_at < features_at, "{out}");
    assert!(
        out.contains(&format!(
            "<authorization-identifier>{jid}</authorization-identifier>"
        )),
        "{out}"
    );
    assert!(
        out.contains("<bound xmlns=\"urn:xmpp:bind:0\"><enabled xmlns=\"urn:xmpp:sm:3\"/></bound>"),
        "{out}"
    );
    assert!(
        out.contains("<token xmlns=\"urn:xmpp:fast:0\" token=\"tok\"/>"),
        "{out}"
    );
    assert!(
        !out.contains("<bind xmlns=\"urn:ietf:params:xml:ns:xmpp-bind\""),
        "nothing left to bind: {out}"
    );
    assert!(!out.contains("<stream:stream"), "no restart: {out}");
    // The stanza sent right behind the request went out as the new session.
    assert_eq!(p.routed.len(), 1);
    assert_eq!(p.routed[0].attr("from"), Some(jid.as_str()));
}

#[test]
fn sasl2_scram_without_an_initial_response_and_a_failure_that_may_be_retried() {
    let mut p = Pair::new();
    p.open_for_sasl();
    p.send(&format!(
        "<authenticate xmlns='{SASL2}' mechanism='PLAIN'><initial-response>{}</initial-response></authenticate>",
        B64.encode(b"\0alice\0wrong")
    ));
    let out = p.take();
    assert_eq!(
        out,
        format!("<failure xmlns=\"{SASL2}\"><not-authorized xmlns=\"urn:ietf:params:xml:ns:xmpp-sasl\"/></failure>")
    );
    assert!(!p.closed);
    // SCRAM-SHA-256 started by an empty challenge.
    p.send(&format!(
        "<authenticate xmlns='{SASL2}' mechanism='SCRAM-SHA-256'/>"
    ));
    assert_eq!(p.take(), format!("<challenge xmlns=\"{SASL2}\"/>"));
    let client_first_bare = "n=alice,r=clientnonce";
    p.send(&format!(
        "<response xmlns='{SASL2}'>{}</response>",
        B64.encode(format!("n,,{client_first_bare}"))
    ));
    let out = p.take();
    let server_first = text_of(&out, "challenge");
    let final_msg = scram_client_final(&server_first, client_first_bare, "n,,", &[], "secret");
    p.send(&format!(
        "<response xmlns='{SASL2}'>{}</response>",
        B64.encode(final_msg)
    ));
    let out = p.take();
    assert!(out.contains("<additional-data>"), "{out}");
    assert!(
        out.contains("<authorization-identifier>alice@localhost</authorization-identifier>"),
        "{out}"
    );
    // Not bound: the features offer binding, on the same stream.
    assert!(
        out.contains("<bind xmlns=\"urn:ietf:params:xml:ns:xmpp-bind\"/>"),
        "{out}"
    );
    p.send("<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>r</resource></bind></iq>");
    assert!(p.take().contains("<jid>alice@localhost/r</jid>"));
}

#[test]
fn a_fast_token_logs_in_in_one_message_and_bad_ones_fail_as_the_xep_says() {
    let login = |agent: &str, token: &[u8], mechanism: &str| {
        let mut p = Pair::new();
        p.open_for_sasl();
        let mut initial = b"alice\0".to_vec();
        let cb: &[u8] = if mechanism.ends_with("EXPR") {
            &[7u8; 32]
        } else {
            &[]
        };
        initial.extend_from_slice(&crate::sasl::ht::initiator_proof(token, cb));
        let agent = if agent.is_empty() {
            String::new()
        } else {
            format!("<user-agent id='{agent}'/>")
        };
        p.send(&format!(
            "<authenticate xmlns='{SASL2}' mechanism='{mechanism}'><initial-response>{}</initial-response>{agent}<fast xmlns='urn:xmpp:fast:0'/></authenticate>",
            B64.encode(&initial)
        ));
        let out = p.take();
        (p, out)
    };
    let (p, out) = login("phone-1", b"tok", "HT-SHA-256-NONE");
    assert_eq!(p.sm, ["verify-fast alice phone-1 HT-SHA-256-NONE"]);
    let expected = B64.encode(crate::sasl::ht::responder_proof(b"tok", &[]));
    assert!(
        out.contains(&format!("<additional-data>{expected}</additional-data>")),
        "{out}"
    );
    // Channel-bound: the proof covers the TLS exporter.
    let (_, out) = login("phone-1", b"tok", "HT-SHA-256-EXPR");
    assert!(out.contains("<success"), "{out}");
    let (_, out) = login("phone-1", b"stolen", "HT-SHA-256-NONE");
    assert!(out.contains("<not-authorized"), "{out}");
    let (p, out) = login("", b"tok", "HT-SHA-256-NONE");
    assert!(out.contains("<malformed-request"), "no user-agent: {out}");
    assert!(p.sm.is_empty(), "not even looked up");
    let (_, out) = login("phone-1", b"tok", "HT-SHA-256-UNIQ");
    assert!(out.contains("<invalid-mechanism"), "{out}");
}

#[test]
fn inline_resumption_answers_in_success_and_a_failed_one_binds_instead() {
    let mut p = Pair::new();
    p.open_for_sasl();
    p.send(&format!(
        "<authenticate xmlns='{SASL2}' mechanism='PLAIN'><initial-response>{}</initial-response>\
         <resume xmlns='{SM}' previd='known' h='2'/><bind xmlns='urn:xmpp:bind:0'/></authenticate>",
        plain_b64()
    ));
    assert_eq!(
        p.sm,
        ["resume known 2"],
        "the bind request is ignored once resumed"
    );
    let out = p.take();
    assert!(
        out.contains("<resumed xmlns=\"urn:xmpp:sm:3\" h=\"0\"/>"),
        "{out}"
    );
    assert!(
        out.contains("<authorization-identifier>alice@localhost/phone</authorization-identifier>"),
        "{out}"
    );
    assert!(!out.contains("<bound"), "{out}");

    let mut p = Pair::new();
    p.open_for_sasl();
    p.send(&format!(
        "<authenticate xmlns='{SASL2}' mechanism='PLAIN'><initial-response>{}</initial-response>\
         <resume xmlns='{SM}' previd='gone' h='2'/><bind xmlns='urn:xmpp:bind:0'><tag>T</tag></bind></authenticate>",
        plain_b64()
    ));
    let out = p.take();
    assert_eq!(p.sm, ["resume gone 2", "step"], "{out}");
    let failed_at = out
        .find("<failed xmlns=\"urn:xmpp:sm:3\"><item-not-found")
        .expect("failure reported");
    assert!(failed_at < out.find("<bound").expect("then bound"), "{out}");
    assert!(p
        .bound
        .as_deref()
        .unwrap()
        .starts_with("alice@localhost/T/"));
}

#[test]
fn a_stream_error_quoting_the_clients_bytes_is_well_formed() {
    // The error text names the bad attribute, NUL bytes and all; a
    // WebSocket message holding U+0000 would not be XML (found by fuzzing
    // the machine over WebSocket framing).
    use crate::stream::Framing;
    use switchboard_xml::{ns, parse_document};
    let mut m = C2s::with_framing(settings(), Instant::now(), Framing::WebSocket, true, None);
    m.handle_input(
        b"<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='localhost' version='1.0'/>",
    );
    m.handle_input(b"<iq xmlns='jabber:client' type='set' i\0\0d='s'/>");
    let mut msgs = Vec::new();
    while let Some(a) = m.poll_action() {
        if let Action::Send(b) = a {
            let doc = parse_document(&b, Limits::default())
                .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&b)));
            msgs.push(doc);
        }
    }
    let error = msgs
        .iter()
        .find(|m| m.is("error", ns::STREAM))
        .expect("a stream error");
    assert!(error.get_child("not-well-formed", ns::STREAMS).is_some());
    let text = error.child_text("text", ns::STREAMS).unwrap();
    assert!(text.contains("i\u{FFFD}\u{FFFD}d"), "{text}");
}
