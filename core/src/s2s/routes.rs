//! Federation's rows in the routing table: stanzas to other domains go
//! onto links, and users of other servers are kept from local-only
//! services (transports, unless the admin opened them).
//!
//! The rows are registered whether federation is on or not, so the table
//! (and `doc/stanza_routing.md`) is the same for every config; with it
//! off, the remote rows pass the stanza on to the core's fallback, which
//! answers `remote-server-not-found`.

use std::sync::Arc;

use super::Federation;
use crate::routing::stanza::{Class, Kind, Origin};
use crate::routing::table::{Event, Flow, TableBuilder};
use crate::stanza::StanzaError;

const MODULE: &str = "s2s";

pub fn register(t: &mut TableBuilder, federation: &Arc<Federation>) {
    for kind in [Kind::Message, Kind::Presence, Kind::Iq] {
        let fed = federation.clone();
        t.hook(
            Event::at(kind, Class::Remote),
            0,
            MODULE,
            "onto the link from the sender's domain to the addressee's, set up on demand; bounced when it fails",
            move |r, s| fed.route(r, s),
        );
        let fed = federation.clone();
        t.hook(
            Event::at(kind, Class::Service),
            10,
            MODULE,
            "from another server to a local-only service (a transport, by default): not-allowed",
            move |r, s| {
                let Origin::Remote(_) = &s.origin else {
                    return Flow::Next(s);
                };
                let closed = fed
                    .settings()
                    .is_some_and(|set| super::local_only(&set, s.to.domain()));
                if !closed {
                    return Flow::Next(s);
                }
                r.bounce(
                    &s.el,
                    StanzaError::not_allowed().with_text(format!(
                        "{} serves this server's own users only",
                        s.to.domain()
                    )),
                );
                Flow::Done
            },
        );
    }
}
