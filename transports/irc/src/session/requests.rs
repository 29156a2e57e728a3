//! What the service asks of a session ([`ToIrc`]): joins, leaves,
//! messages, topics, raw lines and self-pings, as IRC lines and stanzas.

use switchboard_service::stanza::{error_reply, iq_result, ErrorType, StanzaError};
use switchboard_xml::Element;

use super::rooms::{fold, Channel};
use super::{Session, ToIrc, MAX_QUEUED};
use crate::address::occupant_jid;
use crate::muc;
use crate::text;

impl Session {
    pub(super) fn request(&mut self, req: ToIrc) {
        match req {
            ToIrc::Join {
                channel,
                nick,
                full,
                short,
                key,
            } => self.join(channel, nick, full, short, key),
            ToIrc::Leave { channel, full } => {
                let k = fold(&channel);
                let Some(ch) = self.channels.get_mut(&k) else {
                    return;
                };
                if ch.resources.remove(&full).is_none() {
                    return;
                }
                let last = ch.resources.is_empty();
                let ch = &self.channels[&k];
                let me = self.occupant(ch, &self.nick);
                let name = ch.name.clone();
                self.emit(muc::gone(&me, &full, true, false, None));
                if last {
                    self.channels.remove(&k);
                    if self.registered {
                        self.send(format!("PART {name}"));
                    }
                }
            }
            ToIrc::Say {
                channel,
                full,
                body,
            } => self.say(channel, full, body),
            ToIrc::Topic {
                channel,
                full,
                subject,
            } => {
                let k = fold(&channel);
                let Some(ch) = self.channels.get(&k) else {
                    return;
                };
                if !ch.resources.contains_key(&full) || !ch.joined || !self.registered {
                    return;
                }
                // One line: the topic is a single IRC parameter. The server
                // echoes TOPIC to us, which becomes the new subject.
                let topic: String = subject
                    .split(['\r', '\n'])
                    .filter(|l| !l.trim().is_empty())
                    .collect::<Vec<_>>()
                    .join(" ")
                    .chars()
                    .filter(|c| *c == '\t' || !c.is_control())
                    .collect();
                let name = ch.name.clone();
                let budget = text::text_budget(&name, &self.nick);
                let mut cut = topic.len().min(budget);
                while !topic.is_char_boundary(cut) {
                    cut -= 1;
                }
                self.send(format!("TOPIC {name} :{}", &topic[..cut]));
            }
            ToIrc::Private {
                nick,
                full,
                body,
                room,
            } => {
                match room {
                    Some(channel) => {
                        let k = fold(&channel);
                        let inside = self
                            .channels
                            .get(&k)
                            .is_some_and(|ch| ch.resources.contains_key(&full));
                        if !inside {
                            let from = occupant_jid(&channel, &self.user_via, &self.host, &nick);
                            let err = StanzaError::new("not-acceptable", ErrorType::Cancel)
                                .with_text("join the room before writing to its occupants");
                            self.emit(muc::message_error(&from, &full, err));
                            return;
                        }
                        self.private_rooms.insert(fold(&nick), k);
                    }
                    None => {
                        self.private_rooms.remove(&fold(&nick));
                    }
                }
                self.private(nick, full, body)
            }
            ToIrc::Kick {
                channel,
                full,
                nick,
                reason,
                iq,
            } => self.kick(channel, full, nick, reason, *iq),
            ToIrc::SelfPing { channel, full, iq } => {
                // Joined means in the room on IRC right now: after a drop
                // the client hears not-acceptable and joins again.
                let joined = self.registered
                    && self
                        .channels
                        .get(&fold(&channel))
                        .is_some_and(|ch| ch.joined && ch.resources.contains_key(&full));
                let reply = if joined {
                    Some(iq_result(&iq, None))
                } else {
                    error_reply(
                        &iq,
                        &StanzaError::new("not-acceptable", ErrorType::Cancel)
                            .with_text("you are not in this room"),
                    )
                };
                if let Some(r) = reply {
                    self.emit(r);
                }
            }
            ToIrc::Raw { line, full } => {
                let from = self.server_jid();
                if !self.registered {
                    let text = format!("not connected to {} right now", self.server);
                    self.refuse(&from, &full, "recipient-unavailable", text);
                    return;
                }
                if self.room_in_queue(&from, &full) {
                    tracing::info!(user = %self.user, server = %self.server, "raw IRC command from an admin");
                    self.send(line);
                }
            }
        }
    }

    /// The connection's nick is the one its first join asked for; later
    /// joins get the nick the connection has (and status 210 saying so).
    fn join(
        &mut self,
        channel: String,
        nick: String,
        full: String,
        short: bool,
        key: Option<String>,
    ) {
        self.used = true;
        let k = fold(&channel);
        let existing = self.channels.contains_key(&k);
        let via = self.via(short);
        let ch = self
            .channels
            .entry(k.clone())
            .or_insert_with(|| Channel::new(&channel, via));
        if !ch.joined && key.is_some() {
            ch.key = key;
        }
        let previous = ch.resources.insert(full.clone(), nick.clone());
        let again = previous.is_some();
        // A different nick than the resource asked for before (not merely
        // than the connection's, which may differ after a 210): the client
        // is changing its nick.
        let renamed =
            previous.is_some_and(|p| fold(&p) != fold(&nick)) && fold(&nick) != fold(&self.nick);
        let joined = ch.joined;
        if !existing {
            if self.registered {
                let line = ch.join_line();
                self.send(line);
            }
        } else if joined && renamed {
            // A presence to a new nick in a room the resource is in: a
            // nick change (XEP-0045 §7.6). IRC has one nick per
            // connection, so it changes in every room of this server; the
            // server's NICK echo brings the 303s.
            if self.registered {
                self.renaming = Some((k.clone(), full.clone()));
                self.send(format!("NICK {nick}"));
            }
        } else if joined && again {
            // A presence update from a resource already in the room: the
            // room answers with its own presence only.
            let ch = &self.channels[&k];
            let me = self.occupant(ch, &self.nick);
            let rank = self.rank(ch, &self.nick);
            self.emit(muc::occupant(&me, &full, rank, true));
        } else if joined {
            self.replay(&k, &full);
        }
    }

    /// A moderator's kick through `muc#admin`: KICK, answered when the
    /// server echoes it (done) or refuses it (482: not an operator).
    fn kick(
        &mut self,
        channel: String,
        full: String,
        nick: String,
        reason: Option<String>,
        iq: Element,
    ) {
        let k = fold(&channel);
        let inside = self
            .channels
            .get(&k)
            .is_some_and(|ch| ch.joined && ch.resources.contains_key(&full));
        if !inside || !self.registered {
            let err = StanzaError::new("not-acceptable", ErrorType::Cancel)
                .with_text("you are not in this room right now");
            if let Some(r) = error_reply(&iq, &err) {
                self.emit(r);
            }
            return;
        }
        let ch = &self.channels[&k];
        let Some(victim) = Self::find_nick(ch, &nick) else {
            let err = StanzaError::new("item-not-found", ErrorType::Cancel)
                .with_text(format!("{nick} is not in {}", ch.name));
            if let Some(r) = error_reply(&iq, &err) {
                self.emit(r);
            }
            return;
        };
        let name = ch.name.clone();
        // One IRC parameter: the reason on one line, bounded.
        let reason: String = reason
            .unwrap_or_default()
            .split(['\r', '\n'])
            .filter(|l| !l.trim().is_empty())
            .collect::<Vec<_>>()
            .join(" ")
            .chars()
            .filter(|c| *c == '\t' || !c.is_control())
            .take(300)
            .collect();
        self.kicks.push((k, fold(&victim), iq));
        if reason.is_empty() {
            self.send(format!("KICK {name} {victim}"));
        } else {
            self.send(format!("KICK {name} {victim} :{reason}"));
        }
    }

    fn say(&mut self, channel: String, full: String, body: String) {
        let k = fold(&channel);
        let Some(ch) = self.channels.get(&k) else {
            return;
        };
        if !ch.resources.contains_key(&full) {
            return;
        }
        let room = self.room(ch);
        if !ch.joined || !self.registered {
            let text = format!(
                "not in {} on {} right now (the connection is being re-established); \
                 the message was not sent",
                ch.name, self.server
            );
            self.refuse(&room, &full, "recipient-unavailable", text);
            return;
        }
        if !self.room_in_queue(&room, &full) {
            return;
        }
        let ch = &self.channels[&k];
        let name = ch.name.clone();
        let me = self.occupant(ch, &self.nick);
        // XEP-0045 §7.4: the room reflects the message to every occupant,
        // the sender's resources included.
        let echoes: Vec<Element> = ch
            .resources
            .keys()
            .map(|r| muc::groupchat(&me, r, &body))
            .collect();
        for piece in text::to_irc(&body, &name, &self.nick) {
            self.send(format!("PRIVMSG {name} :{piece}"));
        }
        self.emit_all(echoes);
    }

    fn private(&mut self, nick: String, full: String, body: String) {
        let from = self.user(&nick);
        self.used = true;
        self.chatting.insert(full.clone());
        self.last_private = Some(self.now);
        if !self.registered && !self.ever_registered {
            // The connection this message opened is signing on: the
            // message goes out after the welcome.
            for piece in text::to_irc(&body, &nick, &self.nick) {
                self.held.push(format!("PRIVMSG {nick} :{piece}"));
            }
            return;
        }
        if !self.registered {
            let text = format!(
                "not connected to {} right now (the connection is being re-established); \
                 the message was not sent",
                self.server
            );
            self.refuse(&from, &full, "recipient-unavailable", text);
            return;
        }
        if !self.room_in_queue(&from, &full) {
            return;
        }
        for piece in text::to_irc(&body, &nick, &self.nick) {
            self.send(format!("PRIVMSG {nick} :{piece}"));
        }
    }

    /// A resource joining a room already joined (or joined again after a
    /// reconnection): the occupants, its own presence, the subject.
    pub(super) fn replay(&mut self, k: &str, full: &str) {
        let ch = &self.channels[k];
        let mut stanzas = Vec::new();
        for nick in ch.occupants.keys() {
            if fold(nick) != fold(&self.nick) {
                stanzas.push(muc::occupant(
                    &self.occupant(ch, nick),
                    full,
                    self.rank(ch, nick),
                    false,
                ));
            }
        }
        let mut own = muc::occupant(
            &self.occupant(ch, &self.nick),
            full,
            self.rank(ch, &self.nick),
            true,
        );
        // 100: the room is non-anonymous (IRC shows everyone's user and
        // host), as disco#info says with muc_nonanonymous.
        muc::add_status(&mut own, "100");
        if ch.resources.get(full).is_some_and(|n| *n != self.nick) {
            muc::add_status(&mut own, "210");
        }
        stanzas.push(own);
        stanzas.push(muc::subject(&self.room(ch), full, &ch.topic));
        self.emit_all(stanzas);
    }

    /// A request as the stanza that made it, to be handled again (joins
    /// and private messages; the rest means nothing without the room).
    pub(super) fn as_stanza(&self, req: ToIrc) -> Option<Element> {
        match req {
            ToIrc::Join {
                channel,
                nick,
                full,
                short,
                key,
            } => {
                let mut x = Element::new("x", muc::MUC);
                if let Some(key) = key {
                    x.append_child(Element::new("password", muc::MUC).with_text(key));
                }
                Some(
                    Element::new("presence", switchboard_xml::ns::CLIENT)
                        .with_attr("from", full)
                        .with_attr(
                            "to",
                            occupant_jid(&channel, &self.via(short), &self.host, &nick),
                        )
                        .with_child(x),
                )
            }
            ToIrc::Private {
                nick,
                full,
                body,
                room,
            } => {
                let to = match room {
                    Some(channel) => occupant_jid(&channel, &self.user_via, &self.host, &nick),
                    None => self.user(&nick),
                };
                Some(
                    Element::new("message", switchboard_xml::ns::CLIENT)
                        .with_attr("from", full)
                        .with_attr("to", to)
                        .with_attr("type", "chat")
                        .with_child(
                            Element::new("body", switchboard_xml::ns::CLIENT).with_text(body),
                        ),
                )
            }
            ToIrc::Kick { iq, .. } => Some(*iq),
            _ => None,
        }
    }

    /// A message the link cannot take now: back to the sender as an error.
    fn refuse(&mut self, from: &str, to: &str, condition: &'static str, text: String) {
        let err = StanzaError::new(condition, ErrorType::Wait).with_text(text);
        self.emit(muc::message_error(from, to, err));
    }

    /// Whether another message fits in the queue; says so to `to` if not.
    fn room_in_queue(&mut self, from: &str, to: &str) -> bool {
        if self.queue.len() < MAX_QUEUED {
            return true;
        }
        self.refuse(
            from,
            to,
            "resource-constraint",
            format!(
                "{MAX_QUEUED} lines are already waiting for the IRC server's flood limit; \
                 try again in a while"
            ),
        );
        false
    }
}
