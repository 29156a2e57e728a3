//! IQs to occupant JIDs (XEP-0045's IQ semantics for occupant JIDs, and
//! XEP-0410 self-ping).
//!
//! An occupant pinging its own occupant JID is answered by the room: the
//! answer tells the client it is still joined (XEP-0410 §3), so no
//! round trip to the client is needed. Anything else is relayed to the
//! target occupant with the requester shown as its own occupant JID and
//! the id rewritten, and the answer is relayed back; vCard requests go
//! to the target's bare JID, where vCards live. Only occupants may send
//! IQs to occupants: a disco request from anyone else is `bad-request`
//! (XEP-0045 §6.6), anything else `not-acceptable` (what XEP-0410 §3
//! asks for a self-ping from a client that is no longer joined).

use switchboard_jid::Jid;
use switchboard_service::stanza::{error_reply, iq_result, StanzaError};
use switchboard_xml::Element;

use crate::muc::{item_not_found, not_acceptable, Muc, Proxied};
use crate::ns;
use crate::output::Out;

/// The most relayed IQs waiting for answers; the oldest are forgotten.
const MAX_PROXIED: usize = 10_000;

impl Muc {
    pub(crate) fn occupant_iq(
        &mut self,
        iq: &Element,
        from: &Jid,
        local: &str,
        nick: &str,
        out: &mut Out,
    ) {
        let kind = iq.attr("type").unwrap_or("");
        if kind == "result" || kind == "error" {
            return self.proxied_answer(iq, out);
        }
        if kind != "get" && kind != "set" {
            return;
        }
        let Some(room) = self.rooms.get(local) else {
            out.send_opt(error_reply(iq, &item_not_found("no such room")));
            return;
        };
        let Some(me) = room.by_session(from) else {
            let disco = iq
                .first_element()
                .is_some_and(|p| p.ns == ns::DISCO_INFO || p.ns == ns::DISCO_ITEMS);
            let err = if disco {
                StanzaError::bad_request()
                    .with_text("only occupants may query an occupant; ask the room itself")
            } else {
                not_acceptable("you are not in this room")
            };
            out.send_opt(error_reply(iq, &err));
            return;
        };
        let key = crate::nick::enforce(nick)
            .map(|n| crate::nick::key(&n))
            .unwrap_or_default();
        let Some(target) = room.by_key(&key) else {
            out.send_opt(error_reply(
                iq,
                &item_not_found("nobody in the room has that nickname"),
            ));
            return;
        };
        let payload = iq.first_element();
        if target == me && payload.is_some_and(|p| p.is("ping", ns::PING)) {
            out.send(iq_result(iq, None));
            return;
        }
        let to_bare = payload.is_some_and(|p| p.ns == ns::VCARD);
        let t = &room.occupants[target];
        let to = if to_bare {
            t.bare.to_string()
        } else {
            t.shown_jid().to_string()
        };
        let id = self.ids.fresh();
        let mut fwd = iq.clone();
        fwd.set_attr("id", id.clone());
        fwd.set_attr("from", room.occupant_jid(&room.occupants[me].nick));
        fwd.set_attr("to", to);
        if self.proxied.len() >= MAX_PROXIED {
            self.proxied.clear();
        }
        self.proxied.insert(
            id,
            Proxied {
                original_id: iq.attr("id").map(str::to_string),
                requester: from.to_string(),
                addressed: iq.attr("to").unwrap_or("").to_string(),
            },
        );
        out.send(fwd);
    }

    /// An answer to a relayed IQ goes back to whoever asked.
    pub(crate) fn proxied_answer(&mut self, iq: &Element, out: &mut Out) {
        let Some(p) = iq.attr("id").and_then(|id| self.proxied.remove(id)) else {
            return;
        };
        let mut back = iq.clone();
        back.set_attr("from", p.addressed);
        back.set_attr("to", p.requester);
        match p.original_id {
            Some(id) => back.set_attr("id", id),
            None => {
                back.remove_attr("id");
            }
        }
        out.send(back);
    }
}
