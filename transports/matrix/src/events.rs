//! The parts of the client-server API's JSON the transport reads, as
//! plain serde structs, read leniently: every field the transport does
//! not need is ignored, every list defaults to empty, and events are kept
//! as raw JSON until [`Event::parse`] reads each one on its own, so that
//! one malformed event is skipped instead of failing its whole batch.

use std::collections::HashMap;

use serde::Deserialize;
use serde_json::Value;

/// A `/sync` answer.
#[derive(Debug, Default, Deserialize)]
pub struct SyncResponse {
    pub next_batch: String,
    #[serde(default)]
    pub rooms: Rooms,
    #[serde(default)]
    pub presence: EventList,
    #[serde(default)]
    pub account_data: EventList,
}

#[derive(Debug, Default, Deserialize)]
pub struct Rooms {
    #[serde(default)]
    pub join: HashMap<String, JoinedRoom>,
    #[serde(default)]
    pub invite: HashMap<String, InvitedRoom>,
    #[serde(default)]
    pub leave: HashMap<String, JoinedRoom>,
}

#[derive(Debug, Default, Deserialize)]
pub struct JoinedRoom {
    #[serde(default)]
    pub timeline: Timeline,
    #[serde(default)]
    pub state: EventList,
    #[serde(default)]
    pub ephemeral: EventList,
}

#[derive(Debug, Default, Deserialize)]
pub struct InvitedRoom {
    #[serde(default)]
    pub invite_state: EventList,
}

#[derive(Debug, Default, Deserialize)]
pub struct Timeline {
    #[serde(default)]
    pub events: Vec<Value>,
    /// More events happened than the batch holds: the gap is to be filled
    /// from `prev_batch` backwards.
    #[serde(default)]
    pub limited: bool,
    pub prev_batch: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct EventList {
    #[serde(default)]
    pub events: Vec<Value>,
}

/// A `/messages` answer: `chunk` in the order asked for, `end` to go on.
#[derive(Debug, Default, Deserialize)]
pub struct MessagesResponse {
    #[serde(default)]
    pub chunk: Vec<Value>,
    pub end: Option<String>,
}

/// One event, any kind.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct Event {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub event_id: Option<String>,
    #[serde(default)]
    pub sender: Option<String>,
    #[serde(default)]
    pub state_key: Option<String>,
    #[serde(default)]
    pub origin_server_ts: Option<u64>,
    #[serde(default)]
    pub content: Value,
    /// `m.room.redaction` in room versions before 11 name the redacted
    /// event here; later ones in `content.redacts`.
    #[serde(default)]
    pub redacts: Option<String>,
    #[serde(default)]
    pub unsigned: Unsigned,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct Unsigned {
    /// Present on events this device sent: our own echo.
    #[serde(default)]
    pub transaction_id: Option<String>,
}

impl Event {
    /// Reads one raw event; `None` (and a debug line) for one that is not
    /// an event.
    pub fn parse(v: &Value) -> Option<Event> {
        match Event::deserialize(v) {
            Ok(e) => Some(e),
            Err(e) => {
                tracing::debug!(error = %e, "skipped a malformed Matrix event");
                None
            }
        }
    }

    /// A string field of the content.
    pub fn str(&self, key: &str) -> Option<&str> {
        self.content.get(key).and_then(Value::as_str)
    }

    /// The event a redaction removes.
    pub fn redacted(&self) -> Option<&str> {
        self.redacts.as_deref().or_else(|| self.str("redacts"))
    }

    /// `m.relates_to.rel_type` and `event_id`.
    pub fn relation(&self) -> Option<(&str, &str)> {
        let r = self.content.get("m.relates_to")?;
        Some((
            r.get("rel_type").and_then(Value::as_str)?,
            r.get("event_id").and_then(Value::as_str)?,
        ))
    }

    /// The event a reply answers.
    pub fn in_reply_to(&self) -> Option<&str> {
        self.content
            .get("m.relates_to")?
            .get("m.in_reply_to")?
            .get("event_id")?
            .as_str()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sync_answer_reads_with_everything_optional() {
        let s: SyncResponse = serde_json::from_str(
            r#"{"next_batch":"s1","rooms":{"join":{"!r:x":{"timeline":{"events":[
                {"type":"m.room.message","event_id":"$1","sender":"@a:x","content":{"body":"hi"}},
                {"no":"type"}
            ],"limited":true,"prev_batch":"p1"}}}}}"#,
        )
        .unwrap();
        let room = &s.rooms.join["!r:x"];
        assert!(room.timeline.limited);
        let events: Vec<Event> = room
            .timeline
            .events
            .iter()
            .filter_map(Event::parse)
            .collect();
        assert_eq!(events.len(), 1, "the malformed one is skipped");
        assert_eq!(events[0].str("body"), Some("hi"));
    }

    #[test]
    fn relations_and_redactions_in_both_forms() {
        let e: Event =
            serde_json::from_str(r#"{"type":"m.room.redaction","content":{"redacts":"$x"}}"#)
                .unwrap();
        assert_eq!(e.redacted(), Some("$x"));
        let e: Event = serde_json::from_str(
            r#"{"type":"m.room.message","content":{"m.relates_to":{"rel_type":"m.replace","event_id":"$o"}}}"#,
        )
        .unwrap();
        assert_eq!(e.relation(), Some(("m.replace", "$o")));
    }
}
