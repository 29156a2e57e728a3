//! Service discovery (XEP-0045 §6): the service lists its public rooms
//! (never hidden ones, nor rooms still being set up); each room describes
//! itself with its features and the `muc#roominfo` form; a room's items
//! are its occupants by nick (§6.5 lets a room list them "if that
//! information is publicly available"): a public room lists them to
//! anyone, as Prosody and ejabberd do (anyone may enter and see them),
//! a hidden room to its occupants only. Nicks only: real JIDs stay with
//! the presence rules of the room's anonymity.

use switchboard_jid::Jid;
use switchboard_service::forms::{Field, FieldKind, Form, FormKind};
use switchboard_service::stanza::{error_reply, iq_result, StanzaError};
use switchboard_xml::Element;

use crate::config::Whois;
use crate::muc::{item_not_found, Muc};
use crate::ns;
use crate::output::Out;
use crate::room::Room;

/// The most rooms one disco#items answer lists; XEP-0059 pages the rest.
pub const MAX_ITEMS: usize = 500;

fn identity(category: &str, kind: &str, name: &str) -> Element {
    Element::new("identity", ns::DISCO_INFO)
        .with_attr("category", category)
        .with_attr("type", kind)
        .with_attr("name", name)
}

fn feature(var: &str) -> Element {
    Element::new("feature", ns::DISCO_INFO).with_attr("var", var)
}

impl Muc {
    /// IQs to the service's own JID.
    pub(crate) fn service_iq(&mut self, iq: &Element, from: &Jid, _now: u64, out: &mut Out) {
        let kind = iq.attr("type").unwrap_or("");
        if kind != "get" && kind != "set" {
            return self.proxied_answer(iq, out);
        }
        if self.commands_iq(iq, from, out) {
            return;
        }
        let Some(q) = iq.first_element() else {
            out.send_opt(error_reply(iq, &StanzaError::bad_request()));
            return;
        };
        match (q.ns.as_str(), q.name.as_str(), kind) {
            (ns::DISCO_INFO, "query", "get") if q.attr("node").is_none() => {
                let mut r = Element::new("query", ns::DISCO_INFO).with_child(identity(
                    "conference",
                    "text",
                    "Group chat",
                ));
                for f in [
                    ns::DISCO_INFO,
                    ns::DISCO_ITEMS,
                    ns::MUC,
                    ns::MUC_UNIQUE,
                    ns::COMMANDS,
                    ns::PING,
                    ns::CONFERENCE,
                    ns::RSM,
                    ns::OCCUPANT_ID,
                    ns::SID,
                ] {
                    r.append_child(feature(f));
                }
                out.send(iq_result(iq, Some(r)));
            }
            (ns::DISCO_ITEMS, "query", "get") if q.attr("node").is_none() => {
                out.send(iq_result(iq, Some(self.public_rooms(q))));
            }
            (ns::MUC_UNIQUE, "unique", "get") => {
                // XEP-0045 §10.1.4: a name nobody uses.
                let name = loop {
                    let n = self.ids.fresh();
                    if !self.rooms.contains_key(&n) {
                        break n;
                    }
                };
                out.send(iq_result(
                    iq,
                    Some(Element::new("unique", ns::MUC_UNIQUE).with_text(name)),
                ));
            }
            (ns::PING, "ping", "get") => out.send(iq_result(iq, None)),
            _ => out.send_opt(error_reply(iq, &StanzaError::service_unavailable())),
        }
    }

    /// The public rooms, by JID, with XEP-0059 paging (`max`, `after`).
    fn public_rooms(&self, q: &Element) -> Element {
        let mut rooms: Vec<&Room> = self
            .rooms
            .values()
            .filter(|r| r.config.public && !r.locked)
            .collect();
        rooms.sort_by(|a, b| a.jid.cmp(&b.jid));
        let set = q.get_child("set", ns::RSM);
        let max = set
            .and_then(|s| s.child_text("max", ns::RSM))
            .and_then(|m| m.trim().parse::<usize>().ok())
            .unwrap_or(MAX_ITEMS)
            .min(MAX_ITEMS);
        let after = set.and_then(|s| s.child_text("after", ns::RSM));
        let total = rooms.len();
        let start = after
            .and_then(|a| rooms.iter().position(|r| r.jid == a).map(|i| i + 1))
            .unwrap_or(0);
        let page: Vec<&Room> = rooms.into_iter().skip(start).take(max).collect();
        let mut r = Element::new("query", ns::DISCO_ITEMS);
        for room in &page {
            let name = if room.config.name.is_empty() {
                room.local.clone()
            } else {
                room.config.name.clone()
            };
            r.append_child(
                Element::new("item", ns::DISCO_ITEMS)
                    .with_attr("jid", room.jid.clone())
                    .with_attr("name", name),
            );
        }
        if set.is_some() || page.len() < total {
            let mut s = Element::new("set", ns::RSM);
            if let (Some(f), Some(l)) = (page.first(), page.last()) {
                s.append_child(
                    Element::new("first", ns::RSM)
                        .with_attr("index", start.to_string())
                        .with_text(f.jid.clone()),
                );
                s.append_child(Element::new("last", ns::RSM).with_text(l.jid.clone()));
            }
            s.append_child(Element::new("count", ns::RSM).with_text(total.to_string()));
            r.append_child(s);
        }
        r
    }

    pub(crate) fn room_disco_info(
        &mut self,
        iq: &Element,
        q: &Element,
        from: &Jid,
        local: &str,
        out: &mut Out,
    ) {
        let room = self.rooms.get(local).expect("checked by the caller");
        match q.attr("node") {
            None => {}
            // §7.12: the nick this user registered.
            Some("x-roomuser-item") => {
                let mut r =
                    Element::new("query", ns::DISCO_INFO).with_attr("node", "x-roomuser-item");
                if let Some(n) = room
                    .affiliations
                    .get(&from.to_bare().to_string())
                    .and_then(|i| i.nick.clone())
                {
                    r.append_child(identity("conference", "text", &n));
                }
                out.send(iq_result(iq, Some(r)));
                return;
            }
            Some(_) => {
                out.send_opt(error_reply(
                    iq,
                    &item_not_found("the room has no such node"),
                ));
                return;
            }
        }
        let c = &room.config;
        let name = if c.name.is_empty() {
            room.local.as_str()
        } else {
            c.name.as_str()
        };
        let mut r =
            Element::new("query", ns::DISCO_INFO).with_child(identity("conference", "text", name));
        let pick = |on: bool, yes: &'static str, no: &'static str| if on { yes } else { no };
        for f in [
            ns::MUC,
            ns::DISCO_INFO,
            ns::DISCO_ITEMS,
            ns::MUC_STABLE_ID,
            ns::MUC_SELF_PING,
            ns::OCCUPANT_ID,
            ns::SID,
            ns::MUC_REGISTER,
            ns::MUC_REQUEST,
            ns::MODERATE,
            ns::MODERATE_0,
            ns::VCARD,
            ns::PING,
            pick(c.public, "muc_public", "muc_hidden"),
            pick(c.persistent, "muc_persistent", "muc_temporary"),
            pick(c.members_only, "muc_membersonly", "muc_open"),
            pick(c.moderated, "muc_moderated", "muc_unmoderated"),
            pick(
                c.whois == Whois::Anyone,
                "muc_nonanonymous",
                "muc_semianonymous",
            ),
            pick(
                c.password.is_some(),
                "muc_passwordprotected",
                "muc_unsecured",
            ),
        ] {
            r.append_child(feature(f));
        }
        if c.archiving {
            r.append_child(feature(ns::MAM));
        }
        let mut info = Form::new(FormKind::Result)
            .with_field(Field::form_type(ns::MUC_ROOMINFO))
            .with_field(
                Field::new("muc#roomconfig_roomname", FieldKind::TextSingle)
                    .with_label("Name")
                    .with_value(name),
            )
            .with_field(
                Field::new("muc#roominfo_description", FieldKind::TextSingle)
                    .with_label("Description")
                    .with_value(c.description.clone()),
            )
            .with_field(
                Field::new("muc#roominfo_occupants", FieldKind::TextSingle)
                    .with_label("Number of occupants")
                    .with_value(room.occupants.len().to_string()),
            )
            .with_field(
                Field::new("muc#roominfo_subject", FieldKind::TextSingle)
                    .with_label("Subject")
                    .with_value(
                        room.subject
                            .as_ref()
                            .map(|s| s.text.clone())
                            .unwrap_or_default(),
                    ),
            )
            .with_field(
                Field::new("muc#roominfo_subjectmod", FieldKind::Boolean)
                    .with_label("Occupants may change the subject")
                    .with_value(if c.change_subject { "1" } else { "0" }),
            )
            .with_field(
                Field::new("muc#maxhistoryfetch", FieldKind::TextSingle)
                    .with_label("Messages of history")
                    .with_value(c.history_length.to_string()),
            );
        if !c.language.is_empty() {
            info = info.with_field(
                Field::new("muc#roominfo_lang", FieldKind::TextSingle)
                    .with_label("Language")
                    .with_value(c.language.clone()),
            );
        }
        if let Some(hash) = crate::avatar::hash(room) {
            info = info.with_field(
                Field::new("muc#roominfo_avatarhash", FieldKind::TextMulti)
                    .with_label("Avatar hash")
                    .with_value(hash),
            );
        }
        r.append_child(info.to_element());
        out.send(iq_result(iq, Some(r)));
    }

    pub(crate) fn room_disco_items(
        &mut self,
        iq: &Element,
        from: &Jid,
        local: &str,
        out: &mut Out,
    ) {
        let room = self.rooms.get(local).expect("checked by the caller");
        let mut r = Element::new("query", ns::DISCO_ITEMS);
        if room.config.public || room.by_session(from).is_some() {
            for o in &room.occupants {
                r.append_child(
                    Element::new("item", ns::DISCO_ITEMS)
                        .with_attr("jid", room.occupant_jid(&o.nick))
                        .with_attr("name", o.nick.clone()),
                );
            }
        }
        out.send(iq_result(iq, Some(r)));
    }
}
