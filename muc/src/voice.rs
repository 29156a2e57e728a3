//! Voice requests (XEP-0045 §7.13) and their approval (§8.6): a visitor
//! in a moderated room sends the `muc#request` form; every moderator gets
//! it to approve; a moderator who submits it with `muc#request_allow`
//! true gives the visitor voice.

use switchboard_jid::Jid;
use switchboard_service::forms::{Field, FieldKind, Form, FormKind};
use switchboard_service::stanza::{error_reply, StanzaError};
use switchboard_xml::Element;

use crate::muc::{broadcast_presence, item_not_found, not_acceptable, Muc};
use crate::ns;
use crate::output::Out;
use crate::roles::Role;
use crate::room::Notice;

impl Muc {
    pub(crate) fn voice_form(
        &mut self,
        m: &Element,
        x: &Element,
        from: &Jid,
        local: &str,
        out: &mut Out,
    ) {
        let form = match Form::parse(x) {
            Ok(f) => f,
            Err(e) => {
                out.send_opt(error_reply(m, &e.to_stanza_error()));
                return;
            }
        };
        // Clients often leave out type='hidden' on FORM_TYPE in a submission.
        if form.value("FORM_TYPE") != Some(ns::MUC_REQUEST) {
            out.send_opt(error_reply(
                m,
                &StanzaError::bad_request()
                    .with_text("the room understands only muc#request forms"),
            ));
            return;
        }
        let env = &self.env;
        let room = self.rooms.get_mut(local).expect("checked by the caller");
        let Some(idx) = room.by_session(from) else {
            out.send_opt(error_reply(
                m,
                &not_acceptable("only occupants may ask for voice"),
            ));
            return;
        };
        let role = room.occupants[idx].role;
        if role == Role::Moderator
            && form.kind == FormKind::Submit
            && form.field("muc#request_allow").is_some()
        {
            // §8.6: the approval.
            if !matches!(form.value("muc#request_allow"), Some("1") | Some("true")) {
                return;
            }
            let nick = form.value("muc#roomnick").unwrap_or("");
            let key = crate::nick::enforce(nick)
                .map(|n| crate::nick::key(&n))
                .unwrap_or_default();
            let Some(t) = room.by_key(&key) else {
                out.send_opt(error_reply(
                    m,
                    &item_not_found("nobody in the room has that nickname"),
                ));
                return;
            };
            if room.occupants[t].role == Role::Visitor {
                room.occupants[t].role = Role::Participant;
                let notice = Notice {
                    actor: Some(room.occupants[idx].nick.clone()),
                    ..Notice::default()
                };
                broadcast_presence(env, room, t, &notice, false, out);
            }
            return;
        }
        if role != Role::Visitor {
            out.send_opt(error_reply(
                m,
                &not_acceptable("you already have voice in this room"),
            ));
            return;
        }
        if form.value("muc#role").is_some_and(|r| r != "participant") {
            out.send_opt(error_reply(
                m,
                &StanzaError::bad_request()
                    .with_text("only voice (the participant role) can be requested"),
            ));
            return;
        }
        let asker = &room.occupants[idx];
        let request = Form::new(FormKind::Form)
            .with_title("Voice request")
            .with_instructions(format!(
                "{} asks for voice. To grant it, set 'Grant voice' and submit.",
                asker.nick
            ))
            .with_field(Field::form_type(ns::MUC_REQUEST))
            .with_field(
                Field::new("muc#role", FieldKind::ListSingle)
                    .with_label("Requested role")
                    .with_value("participant")
                    .with_option("Participant", "participant"),
            )
            .with_field(
                Field::new("muc#jid", FieldKind::JidSingle)
                    .with_label("User ID")
                    .with_value(asker.bare.to_string()),
            )
            .with_field(
                Field::new("muc#roomnick", FieldKind::TextSingle)
                    .with_label("Room nickname")
                    .with_value(asker.nick.clone()),
            )
            .with_field(
                Field::new("muc#request_allow", FieldKind::Boolean)
                    .with_label("Grant voice to this person?")
                    .with_value("0"),
            );
        let x = request.to_element();
        for o in room.occupants.iter().filter(|o| o.role == Role::Moderator) {
            for s in &o.sessions {
                out.send(
                    Element::new("message", ns::CLIENT)
                        .with_attr("from", room.jid.clone())
                        .with_attr("to", s.jid.to_string())
                        .with_child(x.clone()),
                );
            }
        }
    }
}
