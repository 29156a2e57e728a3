//! Group chat clients for the MUC tests: a logged-in [`RawClient`] that
//! parses what it reads into elements, joins rooms, and checks that
//! nothing else arrived with a barrier (a ping to the group chat service,
//! answered after everything the service sent the client before it).

use std::collections::VecDeque;

use switchboard_xml::{parse_document, Element, Limits};

use crate::{RawClient, TestServer, WAIT};

pub const MUC_NS: &str = "http://jabber.org/protocol/muc";
pub const MUC_USER: &str = "http://jabber.org/protocol/muc#user";

/// A user in group chat tests.
pub struct Occupant {
    pub raw: RawClient,
    /// The full JID.
    pub jid: String,
    service: String,
    stash: VecDeque<Element>,
    next: u64,
}

/// Parses one element the server sent (stanzas arrive without `xmlns`:
/// they are in the stream's `jabber:client`).
pub fn parse(text: &str) -> Element {
    let mut e = parse_document(text.as_bytes(), Limits::default())
        .unwrap_or_else(|err| panic!("cannot parse {text:?}: {err}"));
    e.rename_ns("", "jabber:client");
    e
}

/// The MUC status codes of a stanza.
pub fn codes(e: &Element) -> Vec<u16> {
    e.get_child("x", MUC_USER)
        .map(|x| {
            x.elements()
                .filter(|s| s.name == "status")
                .filter_map(|s| s.attr("code")?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// The `<item/>` of a MUC presence.
pub fn item(e: &Element) -> Element {
    e.get_child("x", MUC_USER)
        .and_then(|x| x.get_child("item", MUC_USER))
        .cloned()
        .unwrap_or_else(|| panic!("no muc#user item in {}", e.to_xml_string()))
}

/// `(type, condition)` of an error stanza.
pub fn error_of(e: &Element) -> (String, String) {
    let err = e
        .get_child("error", "jabber:client")
        .unwrap_or_else(|| panic!("not an error: {}", e.to_xml_string()));
    let cond = err
        .elements()
        .find(|c| c.ns == "urn:ietf:params:xml:ns:xmpp-stanzas" && c.name != "text")
        .map(|c| c.name.clone())
        .unwrap_or_default();
    (err.attr("type").unwrap_or("").to_string(), cond)
}

impl Occupant {
    /// Logs `user@localhost` in (password `user-pw`, resource `r`).
    pub async fn login(server: &TestServer, user: &str, service: &str) -> Occupant {
        let raw = RawClient::login(
            server.c2s(),
            server.tls_config(),
            user,
            &format!("{user}-pw"),
            "r",
        )
        .await
        .unwrap_or_else(|e| panic!("{user} cannot log in: {e}"));
        let jid = raw.jid.clone().expect("bound");
        Occupant {
            raw,
            jid,
            service: service.to_string(),
            stash: VecDeque::new(),
            next: 0,
        }
    }

    /// Sends initial presence (so messages to the bare JID reach this
    /// resource) and reads what the server says back.
    pub async fn online(&mut self) {
        self.send("<presence/>").await;
        self.drain().await;
    }

    pub async fn send(&mut self, s: &str) {
        self.raw.send(s).await.expect("send");
    }

    /// The next element (from the stash first).
    pub async fn next(&mut self) -> Element {
        if let Some(e) = self.stash.pop_front() {
            return e;
        }
        let text = self
            .raw
            .read_element(WAIT)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", self.jid));
        parse(&text)
    }

    /// Reads until `pred` matches; returns that element and keeps the
    /// others for later.
    pub async fn wait_for(&mut self, what: &str, pred: impl Fn(&Element) -> bool) -> Element {
        let mut skipped = Vec::new();
        for _ in 0..200 {
            let e = self.next().await;
            if pred(&e) {
                for s in skipped.into_iter().rev() {
                    self.stash.push_front(s);
                }
                return e;
            }
            skipped.push(e);
        }
        panic!(
            "{} never got {what}; got {}",
            self.jid,
            skipped
                .iter()
                .map(|e| e.to_xml_string())
                .collect::<Vec<_>>()
                .join("\n")
        );
    }

    /// Sends an IQ (with `@ID@` for its id) and returns the answer.
    pub async fn iq(&mut self, body: &str) -> Element {
        self.next += 1;
        let id = format!("q{}", self.next);
        self.send(&body.replace("@ID@", &id)).await;
        self.wait_for(&format!("the answer to {id}"), |e| {
            e.name == "iq" && e.attr("id") == Some(id.as_str())
        })
        .await
    }

    /// Everything that arrives before the answer to a ping to the group
    /// chat service: a barrier behind all the service sent before.
    pub async fn drain(&mut self) -> Vec<Element> {
        self.next += 1;
        let id = format!("barrier{}", self.next);
        self.send(&format!(
            "<iq type='get' id='{id}' to='{}'><ping xmlns='urn:xmpp:ping'/></iq>",
            self.service
        ))
        .await;
        let mut got: Vec<Element> = self.stash.drain(..).collect();
        loop {
            let e = self.next().await;
            if e.name == "iq" && e.attr("id") == Some(id.as_str()) {
                return got;
            }
            got.push(e);
        }
    }

    /// Asserts that nothing (more) arrived.
    pub async fn quiet(&mut self) {
        let got = self.drain().await;
        assert!(
            got.is_empty(),
            "{} got more than expected: {}",
            self.jid,
            got.iter()
                .map(|e| e.to_xml_string())
                .collect::<Vec<_>>()
                .join("\n")
        );
    }

    /// Enters `room` as `nick` (with `extra` inside `<x/>`) and reads the
    /// join sequence up to the subject; returns it all. Panics on an
    /// error.
    pub async fn join_with(&mut self, room: &str, nick: &str, extra: &str) -> Vec<Element> {
        self.send(&format!(
            "<presence to='{room}/{nick}'><x xmlns='{MUC_NS}'>{extra}</x></presence>"
        ))
        .await;
        let mut seq = Vec::new();
        loop {
            let e = self.next().await;
            assert_ne!(
                e.attr("type"),
                Some("error"),
                "{} cannot enter: {}",
                self.jid,
                e.to_xml_string()
            );
            let done = e.name == "message" && e.get_child("subject", "jabber:client").is_some();
            let created = e.name == "presence" && codes(&e).contains(&201);
            seq.push(e);
            if done || created {
                return seq;
            }
        }
    }

    pub async fn join(&mut self, room: &str, nick: &str) -> Vec<Element> {
        self.join_with(room, nick, "").await
    }

    /// Tries to enter and returns the error presence.
    pub async fn refused(&mut self, room: &str, nick: &str, extra: &str) -> (String, String) {
        self.send(&format!(
            "<presence to='{room}/{nick}'><x xmlns='{MUC_NS}'>{extra}</x></presence>"
        ))
        .await;
        let e = self
            .wait_for("a presence error", |e| {
                e.name == "presence" && e.attr("type") == Some("error")
            })
            .await;
        error_of(&e)
    }

    /// Creates `room` as an instant room (the default configuration).
    pub async fn create(&mut self, room: &str, nick: &str) {
        let seq = self.join(room, nick).await;
        assert!(codes(seq.last().unwrap()).contains(&201), "not created");
        let r = self
            .iq(&format!(
                "<iq type='set' id='@ID@' to='{room}'><query xmlns='http://jabber.org/protocol/muc#owner'>\
                 <x xmlns='jabber:x:data' type='submit'/></query></iq>"
            ))
            .await;
        assert_eq!(r.attr("type"), Some("result"), "{}", r.to_xml_string());
        // The subject follows the join of a new room once it is open.
        self.drain().await;
    }

    /// Submits configuration fields.
    pub async fn configure(&mut self, room: &str, fields: &str) {
        let r = self
            .iq(&format!(
                "<iq type='set' id='@ID@' to='{room}'><query xmlns='http://jabber.org/protocol/muc#owner'>\
                 <x xmlns='jabber:x:data' type='submit'>\
                 <field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#roomconfig</value></field>\
                 {fields}</x></query></iq>"
            ))
            .await;
        assert_eq!(r.attr("type"), Some("result"), "{}", r.to_xml_string());
    }

    pub async fn say(&mut self, room: &str, body: &str) {
        self.send(&format!(
            "<message type='groupchat' to='{room}'><body>{body}</body></message>"
        ))
        .await;
    }

    /// The next groupchat message with a body.
    pub async fn heard(&mut self) -> Element {
        self.wait_for("a groupchat message", |e| {
            e.name == "message" && e.get_child("body", "jabber:client").is_some()
        })
        .await
    }
}
