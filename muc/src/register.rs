//! Registering with a room (XEP-0045 §7.10): a user reserves a nick with
//! the room through `jabber:iq:register` and the `muc#register` form, and
//! becomes a member, as with Prosody. Nobody else may then enter or
//! change to that nick. `<remove/>` gives the nick (and a membership
//! that came with it) back. §7.12's `x-roomuser-item` disco node tells a
//! user the nick it registered (`disco.rs`).
//!
//! In a members-only room only members register: the XEP's alternative,
//! a membership request queued for admins, is left out, since admins
//! grant membership directly and invitations make members.

use switchboard_jid::Jid;
use switchboard_service::forms::{Field, FieldKind, Form, FormKind};
use switchboard_service::stanza::{error_reply, iq_result, ErrorType, StanzaError};
use switchboard_xml::Element;

use crate::muc::{conflict, not_acceptable, Muc};
use crate::ns;
use crate::output::Out;
use crate::roles::Affiliation;

fn form() -> Form {
    Form::new(FormKind::Form)
        .with_title("Register a nickname with this room")
        .with_instructions("The nickname is then yours in this room, and you become a member.")
        .with_field(Field::form_type(ns::MUC_REGISTER))
        .with_field(
            Field::new("muc#register_roomnick", FieldKind::TextSingle)
                .with_label("Nickname")
                .required(),
        )
}

impl Muc {
    pub(crate) fn register_iq(
        &mut self,
        iq: &Element,
        q: &Element,
        from: &Jid,
        local: &str,
        out: &mut Out,
    ) {
        let bare = from.to_bare();
        let bare_s = bare.to_string();
        let room = self.rooms.get_mut(local).expect("checked by the caller");
        let stored = room.stored_affiliation(&bare_s);
        if stored == Affiliation::Outcast {
            out.send_opt(error_reply(
                iq,
                &StanzaError::forbidden().with_text("you are banned from this room"),
            ));
            return;
        }
        let registered = room.affiliations.get(&bare_s).and_then(|i| i.nick.clone());
        if iq.attr("type") == Some("get") {
            let mut r = Element::new("query", ns::REGISTER);
            match registered {
                Some(n) => {
                    r.append_child(Element::new("registered", ns::REGISTER));
                    r.append_child(Element::new("username", ns::REGISTER).with_text(n));
                }
                None => {
                    r.append_child(
                        Element::new("instructions", ns::REGISTER)
                            .with_text("Choose the nickname to register with this room."),
                    );
                    r.append_child(form().to_element());
                }
            }
            out.send(iq_result(iq, Some(r)));
            return;
        }
        if q.get_child("remove", ns::REGISTER).is_some() {
            if registered.is_none() {
                out.send_opt(error_reply(
                    iq,
                    &StanzaError::new("registration-required", ErrorType::Auth)
                        .with_text("you have no nickname registered with this room"),
                ));
                return;
            }
            if let Some(item) = room.affiliations.get_mut(&bare_s) {
                item.nick = None;
            }
            if stored == Affiliation::Member {
                room.set_affiliation(&bare_s, Affiliation::None, None);
            }
            out.send(iq_result(iq, None));
            self.save(local, out);
            return;
        }
        if room.config.members_only && stored < Affiliation::Member {
            out.send_opt(error_reply(
                iq,
                &StanzaError::not_allowed()
                    .with_text("this room is for members only; ask an admin for membership"),
            ));
            return;
        }
        let submitted = match q.get_child("x", ns::DATA_FORMS).map(Form::parse) {
            Some(Ok(f)) => f,
            Some(Err(e)) => {
                out.send_opt(error_reply(iq, &e.to_stanza_error()));
                return;
            }
            None => {
                out.send_opt(error_reply(
                    iq,
                    &StanzaError::bad_request().with_text("submit the muc#register form"),
                ));
                return;
            }
        };
        if submitted.kind == FormKind::Cancel {
            out.send(iq_result(iq, None));
            return;
        }
        let pairs = match form().validate_submission(&submitted) {
            Ok(p) => p,
            Err(e) => {
                out.send_opt(error_reply(iq, &e.to_stanza_error()));
                return;
            }
        };
        let raw = pairs
            .iter()
            .find(|(k, _)| k == "muc#register_roomnick")
            .map(|(_, v)| v.as_str())
            .unwrap_or("");
        let nick = match crate::nick::enforce(raw) {
            Ok(n) => n,
            Err(e) => {
                out.send_opt(error_reply(iq, &not_acceptable(&e.to_string())));
                return;
            }
        };
        let key = crate::nick::key(&nick);
        if room.nick_registrant(&key).is_some_and(|o| o != bare_s) {
            out.send_opt(error_reply(
                iq,
                &conflict("that nickname is registered with this room by someone else"),
            ));
            return;
        }
        if room
            .occupants
            .iter()
            .any(|o| o.key == key && o.bare != bare)
        {
            out.send_opt(error_reply(
                iq,
                &conflict("that nickname is in use in this room"),
            ));
            return;
        }
        if stored < Affiliation::Member {
            room.set_affiliation(&bare_s, Affiliation::Member, None);
        }
        if let Some(item) = room.affiliations.get_mut(&bare_s) {
            item.nick = Some(nick);
        }
        out.send(iq_result(iq, None));
        self.save(local, out);
    }
}
