//! Client state indication (XEP-0352): a client that says it is inactive
//! (a phone in a pocket) is spared traffic that can wait. The server
//! offers `<csi xmlns='urn:xmpp:csi:0'/>` among the stream features; the
//! client sends `<inactive/>` and `<active/>` nonzas.
//!
//! While the session is inactive, its [`CsiFilter`] (the session's
//! `OutboundFilter`) holds back:
//!
//! - presence updates (available and unavailable presence, not
//!   subscription requests or errors), coalesced: only the latest from
//!   each sender is kept, in the place of the newest;
//! - messages that carry only a chat state (XEP-0085), bare or as a carbon
//!   copy.
//!
//! Anything else (a message with a body, an IQ, a subscription request)
//! goes out at once, after what was held, so that the client sees
//! everything in the order it was sent. `<active/>` lets everything held
//! go, and so does a queue grown past [`MAX_HELD`]. Nothing is lost when
//! the session ends: the connection drains the filter and sends what it
//! held on like the rest of the outbox (presence to a gone session is
//! dropped then, as it would have been; messages go to another resource
//! or offline storage).

use std::sync::{Arc, Mutex};

use switchboard_xml::Element;

use super::carbons;
use super::forward;
use crate::sessions::OutboundFilter;

/// `urn:xmpp:csi:0`.
pub const NS: &str = "urn:xmpp:csi:0";
const CHAT_STATES: &str = "http://jabber.org/protocol/chatstates";
const MODULE: &str = "csi";

/// The most stanzas held for an inactive session before all of them go
/// out anyway.
pub const MAX_HELD: usize = 256;

pub fn register(setup: &mut super::Setup<'_>) {
    setup.table.stream_feature(Element::new("csi", NS));
    // Bind 2 inline (XEP-0386): a phone may bind as inactive at once.
    setup.table.bind2_inline(NS);
    setup.table.on_nonza(NS, MODULE, |_, session, el| {
        let ext = &session.shared.ext;
        match el.name.as_str() {
            "inactive" => {
                let filter = match ext.get::<CsiFilter>() {
                    Some(f) => f,
                    None => {
                        let f = Arc::new(CsiFilter::default());
                        ext.set(f.clone());
                        ext.set_filter(Some(f.clone()));
                        f
                    }
                };
                filter.set_active(false);
            }
            "active" => {
                // The connection releases what the filter held right after
                // this hook.
                if let Some(f) = ext.get::<CsiFilter>() {
                    f.set_active(true);
                }
            }
            other => tracing::debug!(jid = %session.jid, "ignoring <{other}/> in {NS}"),
        }
    });
}

/// What an inactive session holds back, in order.
#[derive(Default)]
pub struct CsiFilter {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    inactive: bool,
    held: Vec<Element>,
}

impl CsiFilter {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn set_active(&self, active: bool) {
        self.state().inactive = !active;
    }

    pub fn is_active(&self) -> bool {
        !self.state().inactive
    }

    /// How many stanzas are held now.
    pub fn held(&self) -> usize {
        self.state().held.len()
    }
}

impl OutboundFilter for CsiFilter {
    fn outgoing(&self, stanza: Element, out: &mut Vec<Element>) {
        let mut state = self.state();
        if !state.inactive {
            out.append(&mut state.held);
            out.push(stanza);
            return;
        }
        if is_presence_update(&stanza) {
            // Coalesced: an earlier presence from the same sender is
            // superseded by this one.
            let from = stanza.attr("from");
            state
                .held
                .retain(|h| !(is_presence_update(h) && h.attr("from") == from));
            state.held.push(stanza);
        } else if is_chat_state_only(&stanza) {
            state.held.push(stanza);
        } else {
            out.append(&mut state.held);
            out.push(stanza);
            return;
        }
        if state.held.len() > MAX_HELD {
            out.append(&mut state.held);
        }
    }

    fn release(&self, out: &mut Vec<Element>) {
        let mut state = self.state();
        if !state.inactive {
            out.append(&mut state.held);
        }
    }

    fn drain(&self, out: &mut Vec<Element>) {
        out.append(&mut self.state().held);
    }
}

/// Available or unavailable presence (not a subscription, probe or error).
fn is_presence_update(el: &Element) -> bool {
    el.name == "presence" && matches!(el.attr("type"), None | Some("unavailable"))
}

/// A message whose only payload is a chat state (XEP-0085), itself or as
/// the message a carbon copy forwards.
fn is_chat_state_only(el: &Element) -> bool {
    if el.name != "message" {
        return false;
    }
    let forwarded = ["sent", "received"]
        .iter()
        .find_map(|k| el.get_child(k, carbons::NS))
        .and_then(forward::inner);
    let m = forwarded.unwrap_or(el);
    let mut states = 0;
    for c in m.elements() {
        if c.ns == CHAT_STATES {
            states += 1;
        } else if c.name != "thread" {
            return false;
        }
    }
    states > 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_xml::{parse_document, Limits};

    fn el(xml: &str) -> Element {
        parse_document(xml.as_bytes(), Limits::default()).unwrap()
    }

    fn presence(from: &str, show: &str) -> Element {
        el(&format!(
            "<presence xmlns='jabber:client' from='{from}'><show>{show}</show></presence>"
        ))
    }

    fn typing(from: &str) -> Element {
        el(&format!(
            "<message xmlns='jabber:client' from='{from}' type='chat'>\
             <composing xmlns='http://jabber.org/protocol/chatstates'/></message>"
        ))
    }

    fn body(from: &str, text: &str) -> Element {
        el(&format!(
            "<message xmlns='jabber:client' from='{from}' type='chat'><body>{text}</body>\
             <active xmlns='http://jabber.org/protocol/chatstates'/></message>"
        ))
    }

    fn pass(f: &CsiFilter, e: Element) -> Vec<Element> {
        let mut out = Vec::new();
        f.outgoing(e, &mut out);
        out
    }

    #[test]
    fn an_active_session_gets_everything_at_once() {
        let f = CsiFilter::default();
        let p = presence("bob@x/a", "away");
        assert_eq!(pass(&f, p.clone()), vec![p]);
        assert_eq!(pass(&f, typing("bob@x/a")).len(), 1);
    }

    #[test]
    fn inactive_holds_presence_coalesced_and_chat_states_until_a_body_comes() {
        let f = CsiFilter::default();
        f.set_active(false);
        assert!(pass(&f, presence("bob@x/a", "away")).is_empty());
        assert!(pass(&f, typing("carol@x/b")).is_empty());
        assert!(pass(&f, presence("dave@x/c", "dnd")).is_empty());
        assert!(pass(&f, presence("bob@x/a", "xa")).is_empty());
        assert_eq!(f.held(), 3, "bob's first presence was superseded");
        let m = body("carol@x/b", "hello");
        let out = pass(&f, m.clone());
        assert_eq!(
            out,
            vec![
                typing("carol@x/b"),
                presence("dave@x/c", "dnd"),
                presence("bob@x/a", "xa"),
                m
            ],
            "what was held goes first, in order"
        );
        assert_eq!(f.held(), 0);
    }

    #[test]
    fn subscription_requests_iqs_and_carbon_copies_with_bodies_flush() {
        let f = CsiFilter::default();
        f.set_active(false);
        assert!(pass(&f, presence("bob@x/a", "away")).is_empty());
        let sub = el("<presence xmlns='jabber:client' from='eve@x' type='subscribe'/>");
        assert_eq!(
            pass(&f, sub.clone()),
            vec![presence("bob@x/a", "away"), sub]
        );
        let copy_of_typing = el(
            "<message xmlns='jabber:client' from='me@x' type='chat'><received xmlns='urn:xmpp:carbons:2'>\
             <forwarded xmlns='urn:xmpp:forward:0'><message xmlns='jabber:client' type='chat'>\
             <paused xmlns='http://jabber.org/protocol/chatstates'/></message></forwarded></received></message>",
        );
        assert!(pass(&f, copy_of_typing).is_empty());
        let iq =
            el("<iq xmlns='jabber:client' type='get' id='p1'><ping xmlns='urn:xmpp:ping'/></iq>");
        assert_eq!(pass(&f, iq.clone()).len(), 2);
    }

    #[test]
    fn active_releases_and_the_end_drains() {
        let f = CsiFilter::default();
        f.set_active(false);
        assert!(pass(&f, typing("bob@x/a")).is_empty());
        let mut out = Vec::new();
        f.release(&mut out);
        assert!(out.is_empty(), "still inactive: nothing released");
        f.drain(&mut out);
        assert_eq!(out, vec![typing("bob@x/a")], "the session's end takes all");
        assert!(pass(&f, typing("bob@x/a")).is_empty());
        f.set_active(true);
        let mut out = Vec::new();
        f.release(&mut out);
        assert_eq!(out.len(), 1);
    }

    #[test]
    fn a_long_queue_goes_out_whole() {
        let f = CsiFilter::default();
        f.set_active(false);
        let mut out = Vec::new();
        for i in 0..=MAX_HELD {
            f.outgoing(presence(&format!("u{i}@x/r"), "away"), &mut out);
        }
        assert_eq!(out.len(), MAX_HELD + 1);
        assert_eq!(f.held(), 0);
    }
}
