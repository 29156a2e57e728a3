//! The room's avatar: a vCard (XEP-0054) on the room's bare JID that its
//! owners set and anyone reads, as Prosody's `mod_vcard_muc` does. Its
//! SHA-1 (XEP-0153) appears in the room's disco#info as
//! `muc#roominfo_avatarhash` (XEP-0045 1.34) and in a presence from the
//! room to its occupants when it changes.

use base64::Engine as _;
use sha1::{Digest, Sha1};
use switchboard_jid::Jid;
use switchboard_service::stanza::{error_reply, iq_result, StanzaError};
use switchboard_xml::Element;

use crate::muc::Muc;
use crate::ns;
use crate::output::Out;
use crate::roles::Affiliation;
use crate::room::Room;

/// The largest vCard a room keeps, serialized.
pub const MAX_VCARD_BYTES: usize = 128 * 1024;

/// The hex SHA-1 of the room's photo, if it has one.
pub fn hash(room: &Room) -> Option<String> {
    let photo = room.vcard.as_ref()?.get_child("PHOTO", ns::VCARD)?;
    let b64: String = photo
        .child_text("BINVAL", ns::VCARD)?
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    let bytes = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
    let digest = Sha1::digest(&bytes);
    Some(digest.iter().map(|b| format!("{b:02x}")).collect())
}

impl Muc {
    pub(crate) fn vcard_iq(
        &mut self,
        iq: &Element,
        v: &Element,
        from: &Jid,
        local: &str,
        out: &mut Out,
    ) {
        let room = self.rooms.get_mut(local).expect("checked by the caller");
        if iq.attr("type") == Some("get") {
            let card = room
                .vcard
                .clone()
                .unwrap_or_else(|| Element::new("vCard", ns::VCARD));
            out.send(iq_result(iq, Some(card)));
            return;
        }
        if self.env.affiliation(room, &from.to_bare()) != Affiliation::Owner {
            out.send_opt(error_reply(
                iq,
                &StanzaError::forbidden().with_text("only the room's owners may change its vCard"),
            ));
            return;
        }
        if v.to_xml_string().len() > MAX_VCARD_BYTES {
            out.send_opt(error_reply(
                iq,
                &StanzaError::new(
                    "not-acceptable",
                    switchboard_service::stanza::ErrorType::Modify,
                )
                .with_text(format!("the vCard is larger than {MAX_VCARD_BYTES} bytes")),
            ));
            return;
        }
        room.vcard = if v.elements().next().is_some() {
            Some(v.clone())
        } else {
            None
        };
        let mut photo = Element::new("photo", ns::VCARD_UPDATE);
        if let Some(h) = hash(room) {
            photo.append_text(h);
        }
        let update = Element::new("presence", ns::CLIENT)
            .with_attr("from", room.jid.clone())
            .with_child(Element::new("x", ns::VCARD_UPDATE).with_child(photo));
        crate::muc::broadcast_message(room, &update, out);
        out.send(iq_result(iq, None));
        self.save(local, out);
    }
}
