//! The room logic driven stanza by stanza, the way clients use it, with
//! exact stanzas and exact error conditions for every refusal; and the
//! driver over the in-memory storage backend (restart, archive).

mod admin;
mod driver;
mod features;
mod join;
mod messages;
mod owner;

use std::collections::BTreeMap;
use std::sync::Arc;

use switchboard_spool::store::memory::MemoryStores;
use switchboard_spool::store::{ArchiveQuery, ArchiveStore};
use switchboard_xml::{parse_document, Element, Limits};

use crate::output::{Out, Persist};
use crate::service::run_archive_op;
use crate::settings::Settings;
use crate::Muc;

pub const HOST: &str = "conference.example.org";
pub const ROOM: &str = "kitchen@conference.example.org";
pub const ROMEO: &str = "romeo@example.org/phone";
pub const JULIET: &str = "juliet@example.org/laptop";
pub const TYBALT: &str = "tybalt@example.org/x";
pub const ADMIN: &str = "boss@example.org/desk";
/// Someone not in the room.
pub const MERCUTIO: &str = "mercutio@example.org/m";

/// Parses test XML as a client stanza (`jabber:client` by default).
pub fn xml(s: &str) -> Element {
    let mut el = parse_document(s.as_bytes(), Limits::default()).unwrap();
    el.rename_ns("", switchboard_xml::ns::CLIENT);
    el
}

/// A service with in-memory stores and a clock the test moves.
pub struct H {
    pub muc: Muc,
    pub archive: Arc<dyn ArchiveStore>,
    pub stored: BTreeMap<String, Vec<u8>>,
    pub now: u64,
    rt: tokio::runtime::Runtime,
}

impl H {
    /// How many entries a room's archive holds.
    pub fn archived(&self, room: &str) -> usize {
        let q = ArchiveQuery {
            max: usize::MAX,
            ..Default::default()
        };
        self.rt
            .block_on(self.archive.query(room, &q))
            .unwrap()
            .map_or(0, |page| page.entries.len())
    }

    pub fn new() -> H {
        H::with(&[])
    }

    /// A service with these `<service>` attributes; boss@example.org is
    /// a host admin.
    pub fn with(attrs: &[(&str, &str)]) -> H {
        let mut el = Element::new("service", "")
            .with_attr("id", HOST)
            .with_attr("type", "muc");
        for (k, v) in attrs {
            el.set_attr(*k, *v);
        }
        let settings = Settings::from_config(HOST, &el).unwrap();
        H {
            muc: Muc::new(
                HOST,
                settings,
                &["boss@example.org".to_string()],
                vec![7; 32],
                42,
            ),
            archive: MemoryStores::new().archive,
            stored: BTreeMap::new(),
            now: 1_714_564_800_000_000,
            rt: tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap(),
        }
    }

    /// Sends one stanza; returns everything the service sent, with the
    /// store and the archive updated as the driver would.
    pub fn send(&mut self, s: &str) -> Vec<Element> {
        self.now += 1_000_000;
        let out = self.muc.handle(&xml(s), self.now);
        self.finish(out)
    }

    fn finish(&mut self, out: Out) -> Vec<Element> {
        let mut stanzas = Vec::new();
        let mut pending = vec![out];
        while let Some(out) = pending.pop() {
            for p in out.persist {
                match p {
                    Persist::Save { room, record } => {
                        self.stored.insert(room, record);
                    }
                    Persist::Remove { room } => {
                        self.stored.remove(&room);
                    }
                }
            }
            for op in out.archive {
                let archive = self.archive.clone();
                if let Some((ticket, answer)) =
                    self.rt.block_on(run_archive_op(archive.as_ref(), op))
                {
                    pending.push(self.muc.answer(ticket, answer, self.now));
                }
            }
            stanzas.extend(out.stanzas);
        }
        stanzas
    }

    /// `who` enters the room as `nick` with `<x xmlns='…muc'/>` (and
    /// `extra` inside it).
    pub fn join_with(&mut self, who: &str, nick: &str, extra: &str) -> Vec<Element> {
        self.send(&format!(
            "<presence from='{who}' to='{ROOM}/{nick}'><x xmlns='http://jabber.org/protocol/muc'>{extra}</x></presence>"
        ))
    }

    pub fn join(&mut self, who: &str, nick: &str) -> Vec<Element> {
        self.join_with(who, nick, "")
    }

    /// Romeo creates the kitchen as an instant room (the default form
    /// submitted as is).
    pub fn instant_room(&mut self) {
        let out = self.join(ROMEO, "Romeo");
        assert!(codes(last_to(&out, ROMEO, "presence")).contains(&201));
        self.configure(ROMEO, "");
    }

    /// Submits the configuration form with these fields.
    pub fn configure(&mut self, who: &str, fields: &str) -> Vec<Element> {
        let out = self.send(&format!(
            "<iq type='set' id='cfg' from='{who}' to='{ROOM}'><query xmlns='http://jabber.org/protocol/muc#owner'>\
             <x xmlns='jabber:x:data' type='submit'>\
             <field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#roomconfig</value></field>{fields}</x></query></iq>"
        ));
        assert_eq!(result_or_error(&out, "cfg"), "result", "{out:?}");
        out
    }

    pub fn say(&mut self, who: &str, body: &str) -> Vec<Element> {
        self.send(&format!(
            "<message type='groupchat' id='m' from='{who}' to='{ROOM}'><body>{body}</body></message>"
        ))
    }

    pub fn iq(&mut self, who: &str, to: &str, kind: &str, payload: &str) -> Vec<Element> {
        self.send(&format!(
            "<iq type='{kind}' id='q' from='{who}' to='{to}'>{payload}</iq>"
        ))
    }

    pub fn admin(&mut self, who: &str, items: &str) -> Vec<Element> {
        self.iq(
            who,
            ROOM,
            "set",
            &format!("<query xmlns='http://jabber.org/protocol/muc#admin'>{items}</query>"),
        )
    }

    /// Three users in a configured room: Romeo (owner), Juliet, Tybalt.
    pub fn three() -> H {
        let mut h = H::new();
        h.instant_room();
        h.join(JULIET, "Juliet");
        h.join(TYBALT, "Tybalt");
        h
    }
}

/// The stanzas addressed to `to`.
pub fn to<'a>(out: &'a [Element], to: &str) -> Vec<&'a Element> {
    out.iter().filter(|e| e.attr("to") == Some(to)).collect()
}

/// The last stanza of this kind to `who`.
pub fn last_to<'a>(out: &'a [Element], who: &str, name: &str) -> &'a Element {
    out.iter()
        .rev()
        .find(|e| e.attr("to") == Some(who) && e.name == name)
        .unwrap_or_else(|| panic!("no <{name}/> to {who} in {}", show(out)))
}

/// The MUC status codes of a presence or message.
pub fn codes(e: &Element) -> Vec<u16> {
    e.get_child("x", crate::ns::MUC_USER)
        .map(|x| {
            x.elements()
                .filter(|s| s.name == "status")
                .filter_map(|s| s.attr("code")?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// The `<item/>` of a MUC presence.
pub fn item(e: &Element) -> &Element {
    e.get_child("x", crate::ns::MUC_USER)
        .and_then(|x| x.get_child("item", crate::ns::MUC_USER))
        .unwrap_or_else(|| panic!("no muc#user item in {}", e.to_xml_string()))
}

/// `(type, condition)` of the error in a stanza.
pub fn error_of(e: &Element) -> (String, String) {
    let err = e
        .get_child("error", &e.ns)
        .unwrap_or_else(|| panic!("not an error: {}", e.to_xml_string()));
    let cond = err
        .elements()
        .find(|c| c.ns == switchboard_xml::ns::STANZAS && c.name != "text")
        .map(|c| c.name.clone())
        .unwrap_or_default();
    (err.attr("type").unwrap_or("").to_string(), cond)
}

/// The one error in `out`, as `(type, condition)`.
pub fn the_error(out: &[Element]) -> (String, String) {
    let errs: Vec<&Element> = out
        .iter()
        .filter(|e| e.attr("type") == Some("error"))
        .collect();
    assert_eq!(errs.len(), 1, "expected exactly one error in {}", show(out));
    assert_eq!(out.len(), 1, "an error and nothing else: {}", show(out));
    error_of(errs[0])
}

/// `result` or `error` for the IQ with this id.
pub fn result_or_error(out: &[Element], id: &str) -> String {
    out.iter()
        .find(|e| e.name == "iq" && e.attr("id") == Some(id))
        .and_then(|e| e.attr("type"))
        .unwrap_or("none")
        .to_string()
}

pub fn show(out: &[Element]) -> String {
    out.iter()
        .map(|e| e.to_xml_string())
        .collect::<Vec<_>>()
        .join("\n")
}

pub fn e(kind: &str, cond: &str) -> (String, String) {
    (kind.to_string(), cond.to_string())
}
