//! What the users hear when a link drops (and will come back) or the
//! session ends for good.

use std::time::Duration;

use switchboard_service::stanza::StanzaError;

use super::rooms::Channel;
use super::Session;
use crate::muc;

impl Session {
    /// The link dropped and a new one will be tried after `delay`: every
    /// resource leaves its rooms (unavailable, status 110) and is told why
    /// from the server's JID. The rooms are kept, emptied, for the rejoin.
    pub(super) fn dropped(&mut self, why: &str, delay: Duration) {
        let mut stanzas = Vec::new();
        for ch in self.channels.values() {
            if !ch.joined {
                continue;
            }
            let me = self.occupant(ch, &self.nick);
            for r in ch.resources.keys() {
                stanzas.push(muc::gone(
                    &me,
                    r,
                    true,
                    false,
                    Some("the connection to the IRC server was lost"),
                ));
            }
        }
        for ch in self.channels.values_mut() {
            ch.joined = false;
            ch.occupants.clear();
            ch.moderated = false;
        }
        let text = format!(
            "The connection to the IRC server {} was lost ({why}). Reconnecting in {} s; \
             you will be back in your rooms once it is up.",
            self.server,
            delay.as_secs().max(1)
        );
        let from = self.server_jid();
        for r in self.all_resources() {
            stanzas.push(muc::chat(&from, &r, &text));
        }
        self.emit_all(stanzas);
    }

    /// The session is over: writers of private messages that never went
    /// out hear why, joins still waiting fail, and every resource still in
    /// a room learns it left (status 110, "connection to the IRC server
    /// lost").
    pub(super) fn closed(&mut self, why: &str) {
        let mut stanzas = Vec::new();
        if !std::mem::take(&mut self.held).is_empty() {
            let from = self.server_jid();
            for r in std::mem::take(&mut self.chatting) {
                let err = StanzaError::remote_server_not_found().with_text(format!(
                    "cannot reach the IRC server {}: {why}; the private message was not sent",
                    self.server
                ));
                stanzas.push(muc::message_error(&from, &r, err));
            }
        }
        let chans: Vec<Channel> = self.channels.drain().map(|(_, c)| c).collect();
        for ch in chans {
            if !ch.joined {
                for (r, nick) in &ch.resources {
                    let from = self.occupant(&ch, nick);
                    stanzas.push(muc::join_error(
                        &from,
                        r,
                        StanzaError::remote_server_not_found().with_text(format!(
                            "cannot reach the IRC server {}: {why}",
                            self.server
                        )),
                    ));
                }
                continue;
            }
            let me = self.occupant(&ch, &self.nick);
            for r in ch.resources.keys() {
                stanzas.push(muc::gone(
                    &me,
                    r,
                    true,
                    false,
                    Some("the connection to the IRC server was lost"),
                ));
            }
        }
        self.emit_all(stanzas);
    }
}
