//! The XEP-0114 accept machine driven in memory.

use std::collections::HashMap;

use super::*;

const HEADER: &str = "<?xml version='1.0'?><stream:stream xmlns='jabber:component:accept' \
     xmlns:stream='http://etherx.jabber.org/streams' to='irc.localhost'>";

fn machine() -> ComponentStream {
    let secrets = HashMap::from([("irc.localhost".to_string(), "s3cret".to_string())]);
    ComponentStream::new(secrets, Limits::default())
}

/// Everything the machine wants written, concatenated, and the other
/// actions in order.
fn drain(m: &mut ComponentStream) -> (String, Vec<ComponentAction>) {
    let mut out = Vec::new();
    let mut other = Vec::new();
    while let Some(a) = m.poll_action() {
        match a {
            ComponentAction::Send(b) => out.extend(b),
            a => other.push(a),
        }
    }
    (String::from_utf8(out).unwrap(), other)
}

fn stream_id(header: &str) -> String {
    let start = header.find(" id='").unwrap() + 5;
    header[start..start + header[start..].find('\'').unwrap()].to_string()
}

fn authenticated() -> ComponentStream {
    let mut m = machine();
    m.handle_input(HEADER.as_bytes());
    let (out, _) = drain(&mut m);
    let digest = switchboard_service::handshake::digest(&stream_id(&out), "s3cret");
    m.handle_input(format!("<handshake>{digest}</handshake>").as_bytes());
    let (out, actions) = drain(&mut m);
    assert_eq!(out, "", "nothing is said before the hostname is claimed");
    assert_eq!(
        actions,
        vec![ComponentAction::Authenticated("irc.localhost".into())]
    );
    m.claimed(true);
    let (out, _) = drain(&mut m);
    assert_eq!(out, "<handshake/>");
    m
}

#[test]
fn a_taken_hostname_is_a_conflict_not_a_success() {
    let mut m = machine();
    m.handle_input(HEADER.as_bytes());
    let (out, _) = drain(&mut m);
    let digest = switchboard_service::handshake::digest(&stream_id(&out), "s3cret");
    m.handle_input(format!("<handshake>{digest}</handshake>").as_bytes());
    drain(&mut m);
    m.claimed(false);
    let (out, actions) = drain(&mut m);
    assert!(!out.contains("<handshake/>"), "{out}");
    assert!(out.contains("<conflict"), "{out}");
    assert_eq!(actions, vec![ComponentAction::Close]);
}

#[test]
fn stanzas_pipelined_after_the_handshake_wait_for_the_claim() {
    let mut m = machine();
    m.handle_input(HEADER.as_bytes());
    let (out, _) = drain(&mut m);
    let digest = switchboard_service::handshake::digest(&stream_id(&out), "s3cret");
    m.handle_input(
        format!(
            "<handshake>{digest}</handshake><presence from='irc.localhost' to='alice@localhost'/>"
        )
        .as_bytes(),
    );
    let (_, actions) = drain(&mut m);
    assert_eq!(actions.len(), 1, "{actions:?}");
    m.claimed(true);
    let (_, actions) = drain(&mut m);
    assert!(
        matches!(&actions[..], [ComponentAction::Stanza(_)]),
        "{actions:?}"
    );
}

#[test]
fn the_right_secret_authenticates_the_configured_host() {
    let m = authenticated();
    assert_eq!(m.host(), Some("irc.localhost"));
}

#[test]
fn the_header_reply_names_the_host_and_an_id() {
    let mut m = machine();
    m.handle_input(HEADER.as_bytes());
    let (out, _) = drain(&mut m);
    assert!(out.contains("from='irc.localhost'"), "{out}");
    assert!(out.contains("xmlns='jabber:component:accept'"), "{out}");
    assert!(stream_id(&out).len() >= 16);
}

#[test]
fn a_wrong_secret_is_not_authorized() {
    let mut m = machine();
    m.handle_input(HEADER.as_bytes());
    let (out, _) = drain(&mut m);
    let digest = switchboard_service::handshake::digest(&stream_id(&out), "guess");
    m.handle_input(format!("<handshake>{digest}</handshake>").as_bytes());
    let (out, actions) = drain(&mut m);
    assert!(out.contains("<not-authorized"), "{out}");
    assert!(out.ends_with("</stream:stream>"));
    assert_eq!(actions, vec![ComponentAction::Close]);
}

#[test]
fn an_unknown_host_is_refused() {
    let mut m = machine();
    m.handle_input(
        HEADER
            .replace("irc.localhost", "other.localhost")
            .as_bytes(),
    );
    let (out, _) = drain(&mut m);
    assert!(out.contains("<host-unknown"), "{out}");
    assert!(m.is_closed());
}

#[test]
fn a_client_stream_on_the_component_port_is_refused() {
    let mut m = machine();
    m.handle_input(
        HEADER
            .replace("jabber:component:accept", "jabber:client")
            .as_bytes(),
    );
    let (out, _) = drain(&mut m);
    assert!(out.contains("<invalid-namespace"), "{out}");
}

#[test]
fn stanzas_before_the_handshake_are_not_authorized() {
    let mut m = machine();
    m.handle_input(HEADER.as_bytes());
    drain(&mut m);
    m.handle_input(b"<message from='irc.localhost' to='alice@localhost'/>");
    let (out, _) = drain(&mut m);
    assert!(out.contains("<not-authorized"), "{out}");
}

#[test]
fn stanzas_come_out_in_jabber_client_with_their_children() {
    let mut m = authenticated();
    m.handle_input(
        b"<message from='#chan%irc.example@irc.localhost/nick' to='alice@localhost' type='groupchat'><body>hi</body></message>",
    );
    let (_, actions) = drain(&mut m);
    let [ComponentAction::Stanza(el)] = &actions[..] else {
        panic!("{actions:?}")
    };
    assert_eq!(el.ns, ns::CLIENT);
    assert_eq!(el.get_child("body", ns::CLIENT).unwrap().text(), "hi");
}

#[test]
fn a_stanza_from_another_domain_is_invalid_from() {
    let mut m = authenticated();
    m.handle_input(
        b"<message from='admin@localhost' to='alice@localhost'><body>x</body></message>",
    );
    let (out, actions) = drain(&mut m);
    assert!(out.contains("<invalid-from"), "{out}");
    assert_eq!(actions, vec![ComponentAction::Close]);
}

#[test]
fn a_stanza_without_from_is_invalid_from() {
    let mut m = authenticated();
    m.handle_input(b"<presence to='alice@localhost'/>");
    let (out, _) = drain(&mut m);
    assert!(out.contains("<invalid-from"), "{out}");
}

#[test]
fn a_stanza_without_to_is_improper_addressing() {
    let mut m = authenticated();
    m.handle_input(b"<presence from='irc.localhost'/>");
    let (out, _) = drain(&mut m);
    assert!(out.contains("<improper-addressing"), "{out}");
}

#[test]
fn a_non_stanza_is_unsupported() {
    let mut m = authenticated();
    m.handle_input(b"<foo from='irc.localhost' to='localhost'/>");
    let (out, _) = drain(&mut m);
    assert!(out.contains("<unsupported-stanza-type"), "{out}");
}

#[test]
fn routed_stanzas_are_written_in_the_component_namespace() {
    let m = authenticated();
    let el = Element::new("message", ns::CLIENT)
        .with_attr("to", "irc.localhost")
        .with_child(Element::new("body", ns::CLIENT).with_text("hello"));
    let bytes = String::from_utf8(m.encode(&el)).unwrap();
    assert_eq!(
        bytes,
        r#"<message to="irc.localhost"><body>hello</body></message>"#
    );
}

#[test]
fn closing_the_stream_is_answered_with_a_close() {
    let mut m = authenticated();
    m.handle_input(b"</stream:stream>");
    let (out, actions) = drain(&mut m);
    assert_eq!(out, "</stream:stream>");
    assert_eq!(actions, vec![ComponentAction::Close]);
}
