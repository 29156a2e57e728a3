//! A persistent room as stored through the `ServiceStore`: one XML
//! record per room in the collection [`ROOMS`], keyed by the room's
//! localpart. The archive is not here; it lives in the `ArchiveStore`
//! under the room's bare JID.
//!
//! ```xml
//! <room xmlns='urn:switchboard:muc:1' created='1714564800000000'>
//!   <config name='Kitchen' persistent='1' … />
//!   <affiliation jid='romeo@example.org' affiliation='owner' nick='Romeo'/>
//!   <affiliation jid='tybalt@example.org' affiliation='outcast'><reason>…</reason></affiliation>
//!   <subject by='Romeo' at='…'>Dinner at eight</subject>
//!   <vcard><vCard xmlns='vcard-temp'>…</vCard></vcard>
//! </room>
//! ```

use switchboard_xml::{parse_document, Element};

use crate::config::{Bounds, RoomConfig};
use crate::roles::Affiliation;
use crate::room::{AffItem, Room, Subject};

/// The namespace of the stored records.
pub const NS: &str = "urn:switchboard:muc:1";

/// The collection of room records.
pub const ROOMS: &str = "rooms";

/// The collection of the service's own values (the occupant-id secret).
pub const SERVICE: &str = "service";

/// The key of the occupant-id secret in [`SERVICE`].
pub const SECRET_KEY: &str = "occupant-id-secret";

/// The record of a room.
pub fn encode(room: &Room) -> Vec<u8> {
    let mut r = Element::new("room", NS).with_attr("created", room.created.to_string());
    r.append_child(room.config.to_element());
    for (jid, item) in &room.affiliations {
        let mut a = Element::new("affiliation", NS)
            .with_attr("jid", jid.clone())
            .with_attr("affiliation", item.affiliation.as_str());
        if let Some(n) = &item.nick {
            a.set_attr("nick", n.clone());
        }
        if let Some(reason) = &item.reason {
            a.append_child(Element::new("reason", NS).with_text(reason.clone()));
        }
        r.append_child(a);
    }
    if let Some(s) = &room.subject {
        r.append_child(
            Element::new("subject", NS)
                .with_attr("by", s.by.clone())
                .with_attr("at", s.at.to_string())
                .with_text(s.text.clone()),
        );
    }
    if let Some(v) = &room.vcard {
        r.append_child(Element::new("vcard", NS).with_child(v.clone()));
    }
    r.to_bytes(None)
}

/// Reads a record back. A record that does not parse is an error for the
/// log; the room is then left out, and its record left alone.
pub fn decode(local: &str, host: &str, bytes: &[u8], bounds: &Bounds) -> Result<Room, String> {
    let root = parse_document(bytes, switchboard_spool::file_spool::spool_limits())
        .map_err(|e| e.to_string())?;
    if !root.is("room", NS) {
        return Err(format!("<{}/> is not a room record", root.name));
    }
    let config = match root.get_child("config", NS) {
        Some(c) => RoomConfig::from_element(c, bounds)?,
        None => return Err("the record has no <config/>".into()),
    };
    let created = root
        .attr("created")
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let mut room = Room::new(local, host, config, created);
    for a in root.elements().filter(|e| e.is("affiliation", NS)) {
        let jid = a.attr("jid").ok_or("an affiliation without jid")?;
        let affiliation = a
            .attr("affiliation")
            .and_then(Affiliation::parse)
            .ok_or_else(|| format!("a bad affiliation for {jid}"))?;
        room.affiliations.insert(
            jid.to_string(),
            AffItem {
                affiliation,
                nick: a.attr("nick").map(str::to_string),
                reason: a.child_text("reason", NS),
            },
        );
    }
    if let Some(s) = root.get_child("subject", NS) {
        room.subject = Some(Subject {
            text: s.text(),
            by: s.attr("by").unwrap_or("").to_string(),
            at: s.attr("at").and_then(|t| t.parse().ok()).unwrap_or(0),
        });
    }
    room.vcard = root
        .get_child("vcard", NS)
        .and_then(|v| v.first_element())
        .cloned();
    Ok(room)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_room_round_trips() {
        let bounds = Bounds {
            max_occupants: 100,
            history_default: 10,
            history_max: 50,
            archiving_default: true,
        };
        let mut config = RoomConfig::defaults(&bounds);
        config.persistent = true;
        config.name = "Kitchen <&>".into();
        let mut room = Room::new("kitchen", "conference.example.org", config, 42);
        room.set_affiliation("romeo@example.org", Affiliation::Owner, None);
        room.affiliations.get_mut("romeo@example.org").unwrap().nick = Some("Romeo".into());
        room.set_affiliation(
            "tybalt@example.org",
            Affiliation::Outcast,
            Some("rude".into()),
        );
        room.subject = Some(Subject {
            text: "Dinner".into(),
            by: "Romeo".into(),
            at: 7,
        });
        let back = decode("kitchen", "conference.example.org", &encode(&room), &bounds).unwrap();
        assert_eq!(back.config, room.config);
        assert_eq!(back.affiliations, room.affiliations);
        assert_eq!(back.subject, room.subject);
        assert_eq!(back.created, 42);
        assert!(decode("x", "h", b"<room", &bounds).is_err());
        assert!(decode("x", "h", b"<other xmlns='urn:switchboard:muc:1'/>", &bounds).is_err());
    }
}
