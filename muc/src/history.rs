//! Discussion history (XEP-0045 §7.2.15 and §7.2.16): the last messages
//! a room keeps in memory for people who enter, and the `<history/>`
//! element with which they ask for less.
//!
//! The room keeps at most its configured `muc#maxhistoryfetch` messages
//! (itself capped by the service's `history-max`). A joining occupant
//! gets the newest ones that satisfy every limit it gave: `maxstanzas`,
//! `maxchars` (counted over the whole stanzas, as the XEP says),
//! `seconds` and `since`, each with a `<delay/>` saying when it was sent.

use std::collections::VecDeque;

use switchboard_jid::Jid;
use switchboard_xml::Element;

use crate::ns;

/// One remembered groupchat message, as it was broadcast (no `to`).
#[derive(Debug, Clone)]
pub struct HistoryEntry {
    pub stanza: Element,
    pub at: u64,
    /// Its stanza-id (XEP-0359), for moderation.
    pub id: String,
    /// The serialized length, for `maxchars`.
    pub chars: usize,
}

impl HistoryEntry {
    pub fn new(stanza: Element, at: u64, id: String) -> HistoryEntry {
        let chars = stanza.to_xml_string().chars().count();
        HistoryEntry {
            stanza,
            at,
            id,
            chars,
        }
    }
}

/// What a joining occupant asked for; all limits apply together.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HistoryRequest {
    pub maxchars: Option<usize>,
    pub maxstanzas: Option<usize>,
    /// Only messages from the last this many seconds.
    pub seconds: Option<u64>,
    /// Only messages at or after this time (microseconds).
    pub since: Option<u64>,
}

impl HistoryRequest {
    /// Reads `<history/>` from the join's `<x xmlns='…muc'/>`. Attributes
    /// that do not parse are ignored, as if absent.
    pub fn from_join(x: Option<&Element>) -> HistoryRequest {
        let Some(h) = x.and_then(|x| x.get_child("history", ns::MUC)) else {
            return HistoryRequest::default();
        };
        let num = |k: &str| h.attr(k).and_then(|v| v.trim().parse::<u64>().ok());
        HistoryRequest {
            maxchars: num("maxchars").map(|n| n as usize),
            maxstanzas: num("maxstanzas").map(|n| n as usize),
            seconds: num("seconds"),
            since: h.attr("since").and_then(crate::time::parse),
        }
    }
}

/// Appends a message, dropping the oldest beyond `keep`.
pub fn remember(history: &mut VecDeque<HistoryEntry>, entry: HistoryEntry, keep: usize) {
    if keep == 0 {
        history.clear();
        return;
    }
    history.push_back(entry);
    while history.len() > keep {
        history.pop_front();
    }
}

/// The entries to send, oldest first.
pub fn select<'a>(
    history: &'a VecDeque<HistoryEntry>,
    req: &HistoryRequest,
    now: u64,
) -> Vec<&'a HistoryEntry> {
    let cutoff = req
        .seconds
        .map(|s| now.saturating_sub(s.saturating_mul(1_000_000)))
        .into_iter()
        .chain(req.since)
        .max()
        .unwrap_or(0);
    let mut chosen: Vec<&HistoryEntry> = Vec::new();
    let mut chars = 0usize;
    for e in history.iter().rev() {
        if e.at < cutoff {
            break;
        }
        if req.maxstanzas.is_some_and(|m| chosen.len() >= m) {
            break;
        }
        if let Some(max) = req.maxchars {
            if chars + e.chars > max {
                break;
            }
        }
        chars += e.chars;
        chosen.push(e);
    }
    chosen.reverse();
    chosen
}

/// A history message addressed to `to`, with its `<delay/>`.
pub fn delayed(entry: &HistoryEntry, room: &str, to: &Jid) -> Element {
    let mut m = entry.stanza.clone();
    m.set_attr("to", to.to_string());
    m.append_child(
        Element::new("delay", ns::DELAY)
            .with_attr("from", room.to_string())
            .with_attr("stamp", crate::time::stamp(entry.at)),
    );
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(body: &str, at: u64) -> HistoryEntry {
        let m = Element::new("message", ns::CLIENT)
            .with_attr("type", "groupchat")
            .with_child(Element::new("body", ns::CLIENT).with_text(body));
        HistoryEntry::new(m, at, body.to_string())
    }

    fn history() -> VecDeque<HistoryEntry> {
        let mut h = VecDeque::new();
        for (i, b) in ["one", "two", "three", "four"].iter().enumerate() {
            remember(&mut h, entry(b, (i as u64 + 1) * 10_000_000), 3);
        }
        h
    }

    fn ids(v: Vec<&HistoryEntry>) -> Vec<&str> {
        v.into_iter().map(|e| e.id.as_str()).collect()
    }

    #[test]
    fn the_room_keeps_its_configured_length() {
        assert_eq!(
            ids(select(&history(), &HistoryRequest::default(), 0)),
            ["two", "three", "four"]
        );
    }

    #[test]
    fn every_limit_applies() {
        let h = history();
        let now = 40_000_000;
        let r = |f: fn(&mut HistoryRequest)| {
            let mut q = HistoryRequest::default();
            f(&mut q);
            ids(select(&h, &q, now))
        };
        assert_eq!(r(|q| q.maxstanzas = Some(1)), ["four"]);
        assert_eq!(r(|q| q.maxstanzas = Some(0)), Vec::<&str>::new());
        assert_eq!(r(|q| q.seconds = Some(15)), ["three", "four"]);
        assert_eq!(r(|q| q.since = Some(30_000_000)), ["three", "four"]);
        let two = h[1].chars + h[2].chars;
        let h2 = h.clone();
        let mut q = HistoryRequest {
            maxchars: Some(two),
            ..HistoryRequest::default()
        };
        assert_eq!(ids(select(&h2, &q, now)), ["three", "four"]);
        q.maxchars = Some(0);
        assert!(select(&h2, &q, now).is_empty());
    }

    #[test]
    fn delayed_copies_say_when() {
        let h = history();
        let to = Jid::parse("a@b/c").unwrap();
        let m = delayed(&h[0], "room@conf", &to);
        let d = m.get_child("delay", ns::DELAY).unwrap();
        assert_eq!(d.attr("stamp"), Some("1970-01-01T00:00:20.000000Z"));
        assert_eq!(d.attr("from"), Some("room@conf"));
        assert_eq!(m.attr("to"), Some("a@b/c"));
    }
}
