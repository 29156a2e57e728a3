//! Bookmarks in their three shapes, and the conversions between them:
//!
//! - XEP-0402: one PEP item per room on `urn:xmpp:bookmarks:1`, the room
//!   JID as item id, `<conference xmlns='urn:xmpp:bookmarks:1'/>` payload
//!   (name, autojoin, nick, password, and `<extensions/>` clients keep);
//! - XEP-0048: one `<storage xmlns='storage:bookmarks'/>` with every
//!   `<conference jid=…/>` (and `<url/>` bookmarks), kept in private XML
//!   (XEP-0049) or as the one item of the PEP node `storage:bookmarks`.
//!
//! What XEP-0048 cannot say (extensions) survives a round trip through
//! it: [`merge`] keeps an item's extensions when the rest is unchanged.

use switchboard_jid::Jid;
use switchboard_xml::{Element, Node};

use crate::features::pep::errors;
use crate::stanza::StanzaError;

/// XEP-0402's namespace, also its node.
pub const NS: &str = "urn:xmpp:bookmarks:1";
/// XEP-0048's namespace, also the legacy PEP node (XEP-0411).
pub const LEGACY: &str = "storage:bookmarks";

/// One bookmarked room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bookmark {
    /// The room's bare JID.
    pub jid: String,
    pub name: Option<String>,
    pub autojoin: bool,
    pub nick: Option<String>,
    pub password: Option<String>,
    /// XEP-0402 `<extensions/>`, kept as sent.
    pub extensions: Option<Element>,
}

impl Bookmark {
    /// What both shapes can say: equal parts mean an unchanged bookmark.
    fn common(
        &self,
    ) -> (
        &str,
        &Option<String>,
        bool,
        &Option<String>,
        &Option<String>,
    ) {
        (
            &self.jid,
            &self.name,
            self.autojoin,
            &self.nick,
            &self.password,
        )
    }
}

/// A room JID as XEP-0402 needs it for an item id: a bare JID with a
/// local part (`room@service`).
pub fn room_jid(s: &str) -> Result<String, String> {
    let jid = Jid::parse(s).map_err(|e| format!("'{s}' is not a JID: {e}"))?;
    if jid.node().is_none() || jid.resource().is_some() {
        return Err(format!("'{s}' is not a room's bare JID (room@service)"));
    }
    Ok(jid.to_string())
}

fn boolean(s: Option<&str>) -> Option<bool> {
    match s {
        None => Some(false),
        Some("true" | "1") => Some(true),
        Some("false" | "0") => Some(false),
        Some(_) => None,
    }
}

/// Reads a published XEP-0402 item, or says why it is not one
/// (`bad-request` with `<invalid-payload/>`, XEP-0060 §7.1.3.5).
pub fn from_item(id: &str, payload: &Element) -> Result<Bookmark, StanzaError> {
    if !payload.is("conference", NS) {
        return Err(errors::invalid_payload(format!(
            "a bookmark is a <conference xmlns='{NS}'/>"
        )));
    }
    let jid = room_jid(id).map_err(|why| {
        errors::invalid_payload(format!("the item id must be the room's JID: {why}"))
    })?;
    let autojoin = boolean(payload.attr("autojoin"))
        .ok_or_else(|| errors::invalid_payload("autojoin is true or false"))?;
    Ok(Bookmark {
        jid,
        name: payload.attr("name").map(str::to_owned),
        autojoin,
        nick: payload.child_text("nick", NS),
        password: payload.child_text("password", NS),
        extensions: payload.get_child("extensions", NS).cloned(),
    })
}

/// The XEP-0402 item id and payload of a bookmark.
pub fn to_item(b: &Bookmark) -> (String, Element) {
    let mut c = Element::new("conference", NS);
    if let Some(n) = &b.name {
        c.set_attr("name", n.clone());
    }
    if b.autojoin {
        c.set_attr("autojoin", "true");
    }
    if let Some(n) = &b.nick {
        c.append_child(Element::new("nick", NS).with_text(n.clone()));
    }
    if let Some(p) = &b.password {
        c.append_child(Element::new("password", NS).with_text(p.clone()));
    }
    if let Some(x) = &b.extensions {
        c.append_child(x.clone());
    }
    (b.jid.clone(), c)
}

/// The rooms of a XEP-0048 `<storage/>`, and everything else it holds
/// (`<url/>` bookmarks, entries that name no room JID, other clients'
/// elements), kept as it is so that writing the rooms back loses nothing.
pub fn from_storage(storage: &Element) -> (Vec<Bookmark>, Vec<Element>) {
    let mut rooms: Vec<Bookmark> = Vec::new();
    let mut kept = Vec::new();
    for e in storage.elements() {
        let jid = e
            .is("conference", LEGACY)
            .then(|| e.attr("jid").and_then(|j| room_jid(j).ok()))
            .flatten();
        let Some(jid) = jid else {
            kept.push(e.clone());
            continue;
        };
        let b = Bookmark {
            jid,
            name: e.attr("name").map(str::to_owned),
            autojoin: boolean(e.attr("autojoin")).unwrap_or(false),
            nick: e.child_text("nick", LEGACY),
            password: e.child_text("password", LEGACY),
            extensions: None,
        };
        // One bookmark per room: the last wins, as a re-publish would.
        rooms.retain(|r| r.jid != b.jid);
        rooms.push(b);
    }
    (rooms, kept)
}

/// A XEP-0048 `<storage/>` of these rooms, and what else it kept.
pub fn to_storage(rooms: &[Bookmark], kept: &[Element]) -> Element {
    let mut s = Element::new("storage", LEGACY);
    for b in rooms {
        let mut c = Element::new("conference", LEGACY).with_attr("jid", b.jid.clone());
        if let Some(n) = &b.name {
            c.set_attr("name", n.clone());
        }
        c.set_attr("autojoin", if b.autojoin { "true" } else { "false" });
        if let Some(n) = &b.nick {
            c.append_child(Element::new("nick", LEGACY).with_text(n.clone()));
        }
        if let Some(p) = &b.password {
            c.append_child(Element::new("password", LEGACY).with_text(p.clone()));
        }
        s.append_child(c);
    }
    for k in kept {
        s.children.push(Node::Element(k.clone()));
    }
    s
}

/// What changes turn the XEP-0402 items `current` into the rooms of a
/// XEP-0048 list `wanted`: bookmarks to publish (new or changed, keeping
/// the extensions the current item has), and room JIDs to retract.
/// Unchanged bookmarks are left alone (XEP-0402 §5.2.2: no notifications
/// for them).
pub fn merge(current: &[Bookmark], wanted: &[Bookmark]) -> (Vec<Bookmark>, Vec<String>) {
    let mut publish = Vec::new();
    for w in wanted {
        match current.iter().find(|c| c.jid == w.jid) {
            Some(c) if c.common() == w.common() => {}
            Some(c) => publish.push(Bookmark {
                extensions: c.extensions.clone(),
                ..w.clone()
            }),
            None => publish.push(w.clone()),
        }
    }
    let retract = current
        .iter()
        .filter(|c| !wanted.iter().any(|w| w.jid == c.jid))
        .map(|c| c.jid.clone())
        .collect();
    (publish, retract)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn room(jid: &str, autojoin: bool) -> Bookmark {
        Bookmark {
            jid: jid.into(),
            name: Some("The Play".into()),
            autojoin,
            nick: Some("JC".into()),
            password: None,
            extensions: None,
        }
    }

    #[test]
    fn items_round_trip_and_nonsense_is_refused() {
        let mut b = room("theplay@conference.example.org", true);
        b.extensions = Some(
            Element::new("extensions", NS)
                .with_child(Element::new("state", "urn:client").with_attr("minimized", "true")),
        );
        let (id, payload) = to_item(&b);
        assert_eq!(from_item(&id, &payload), Ok(b));
        for bad in [
            "not a jid@@",
            "conference.example.org",
            "room@conference.example.org/nick",
        ] {
            let e = from_item(bad, &payload).unwrap_err();
            assert_eq!(
                (e.condition, e.app.unwrap().name.as_str()),
                ("bad-request", "invalid-payload"),
                "{bad}"
            );
        }
        let wrong = Element::new("conference", LEGACY);
        assert!(from_item("a@b.example", &wrong).is_err());
        let autojoin = Element::new("conference", NS).with_attr("autojoin", "maybe");
        assert!(from_item("a@b.example", &autojoin).is_err());
    }

    #[test]
    fn storage_round_trips_keeping_what_is_no_room() {
        let rooms = vec![
            room("a@muc.example.org", true),
            room("b@muc.example.org", false),
        ];
        let url = Element::new("url", LEGACY)
            .with_attr("name", "Site")
            .with_attr("url", "https://example.org/");
        let junk = Element::new("conference", LEGACY).with_attr("jid", "nonsense");
        let s = to_storage(&rooms, &[url.clone(), junk.clone()]);
        assert_eq!(from_storage(&s), (rooms, vec![url, junk]));
    }

    #[test]
    fn merging_changes_only_what_changed_and_keeps_extensions() {
        let ext = Element::new("extensions", NS).with_child(Element::new("x", "urn:c"));
        let mut kept = room("a@muc.example.org", true);
        kept.extensions = Some(ext.clone());
        let mut changed = room("b@muc.example.org", true);
        changed.extensions = Some(ext.clone());
        let gone = room("c@muc.example.org", true);
        let current = vec![kept.clone(), changed.clone(), gone];
        let wanted = vec![
            room("a@muc.example.org", true),
            room("b@muc.example.org", false),
            room("d@muc.example.org", true),
        ];
        let (publish, retract) = merge(&current, &wanted);
        let mut b = room("b@muc.example.org", false);
        b.extensions = Some(ext);
        assert_eq!(publish, vec![b, room("d@muc.example.org", true)]);
        assert_eq!(retract, vec!["c@muc.example.org".to_string()]);
    }
}
