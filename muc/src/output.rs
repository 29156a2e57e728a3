//! What the room logic asks its driver to do: stanzas to send, records
//! to store, archive work. The logic never waits on I/O; the driver in
//! `service.rs` (or a test) carries these out and feeds archive answers
//! back through [`crate::Muc::answer`].

use switchboard_spool::store::{ArchiveEntry, ArchivePage, ArchiveQuery, StoreResult};
use switchboard_xml::Element;

/// A change to the stored rooms.
#[derive(Debug, Clone, PartialEq)]
pub enum Persist {
    /// Stores a room's record (its localpart, the serialized record).
    Save { room: String, record: Vec<u8> },
    /// Forgets a room.
    Remove { room: String },
}

/// Archive work. Appends and replacements need no answer; a query's
/// page comes back with its ticket.
#[derive(Debug, Clone, PartialEq)]
pub enum ArchiveOp {
    Append {
        owner: String,
        entry: ArchiveEntry,
    },
    Replace {
        owner: String,
        id: String,
        stanza: Element,
    },
    RemoveOwner {
        owner: String,
    },
    Query {
        owner: String,
        query: ArchiveQuery,
        ticket: Ticket,
    },
    /// Deletes entries older than `before` (microseconds) from the
    /// archives at `domain` (the service's own hostname: every room's, and
    /// no user's or other service's).
    Expire {
        domain: String,
        before: u64,
    },
}

/// Why a query was made, so its answer can be finished.
#[derive(Debug, Clone, PartialEq)]
pub enum Ticket {
    /// A XEP-0313 query: the request IQ.
    Mam { iq: Element },
    /// A XEP-0425 moderation: the request IQ, the room, the message's id.
    Moderate {
        iq: Element,
        room: String,
        id: String,
    },
}

/// An archive query's result, handed back to the logic.
pub type Answer = StoreResult<Option<ArchivePage>>;

/// Everything one input produced.
#[derive(Debug, Default)]
pub struct Out {
    pub stanzas: Vec<Element>,
    /// Carried out, in order, before `stanzas` are sent: a client hears
    /// of a change only once it is stored.
    pub persist: Vec<Persist>,
    pub archive: Vec<ArchiveOp>,
}

impl Out {
    pub fn send(&mut self, stanza: Element) {
        self.stanzas.push(stanza);
    }

    pub fn send_opt(&mut self, stanza: Option<Element>) {
        if let Some(s) = stanza {
            self.stanzas.push(s);
        }
    }
}
