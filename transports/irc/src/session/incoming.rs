//! What the IRC server says, parsed by `irc-proto`: the welcome, PING,
//! NAMES, joins, parts, quits, kicks, nick changes, modes, topics,
//! messages and the numerics that refuse something, as state and stanzas.

use std::collections::BTreeMap;

use irc_proto::{Command, Message, Prefix, Response};
use switchboard_service::stanza::{error_reply, iq_result, ErrorType, StanzaError};

use super::rooms::{fold, join_refusal};
use super::Session;
use crate::modes;
use crate::muc::{self, Rank};
use crate::signon::{self, SignOn};
use crate::text;

impl Session {
    pub(super) fn incoming(&mut self, m: Message, raw: &str) {
        tracing::debug!(user = %self.user, server = %self.server, "IRC ← {}", signon::mask(raw));
        if let Some(step) = self.signon.as_mut().and_then(|s| s.handle(&m)) {
            self.sign_on_step(step);
            return;
        }
        let (source, from_server) = match &m.prefix {
            Some(Prefix::Nickname(n, _, _)) => (n.clone(), false),
            Some(Prefix::ServerName(s)) => (s.clone(), true),
            None => (String::new(), true),
        };
        match m.command {
            Command::PING(a, b) => match b {
                Some(b) => self.urgent.push_back(format!("PONG {a} {b}")),
                None => self.urgent.push_back(format!("PONG :{a}")),
            },
            Command::Response(Response::RPL_WELCOME, args) => self.welcome(args),
            Command::Response(Response::RPL_ISUPPORT, args) => {
                // The first argument is our nick, the last a sentence.
                let n = args.len().saturating_sub(1);
                self.modes.isupport(args.get(1..n).unwrap_or(&[]));
            }
            Command::Response(Response::ERR_ERRONEOUSNICKNAME, _) if !self.registered => {
                self.fatal = Some(format!("the server refuses the nick {}", self.nick));
            }
            Command::Response(Response::ERR_NICKNAMEINUSE, _)
                if !self.registered && !self.ever_registered && !self.channels.is_empty() =>
            {
                // The nick the rooms were joined with is someone else's:
                // XEP-0045 §7.2.9 says conflict, not another nick.
                self.nick_in_use();
            }
            Command::Response(Response::ERR_NICKNAMEINUSE, _) if !self.registered => {
                self.nick.push('_');
                let nick = self.nick.clone();
                self.send(format!("NICK {nick}"));
            }
            Command::Response(
                code @ (Response::ERR_CHANOPRIVSNEEDED
                | Response::ERR_USERNOTINCHANNEL
                | Response::ERR_NOSUCHNICK),
                ref args,
            ) if self.kick_refused(code, args) => {}
            Command::Response(
                resp @ (Response::ERR_NICKNAMEINUSE
                | Response::ERR_ERRONEOUSNICKNAME
                | Response::ERR_UNAVAILRESOURCE),
                _,
            ) if self.renaming.is_some() => self.nick_refused(resp),
            Command::Response(resp, args) if join_refusal(resp as u16).is_some() => {
                self.refusal(resp as u16, &args);
            }
            Command::Raw(code, args)
                if code.parse::<u16>().ok().and_then(join_refusal).is_some() =>
            {
                self.refusal(code.parse::<u16>().unwrap_or(0), &args);
            }
            Command::ERROR(why) => {
                // The server's last words before it closes the link.
                self.last_error = Some(text::strip_formatting(&why));
            }
            Command::Response(Response::RPL_TOPIC, args) => {
                if let (Some(chan), Some(topic)) = (args.get(1), args.get(2)) {
                    if let Some(ch) = self.channels.get_mut(&fold(chan)) {
                        ch.topic = text::strip_formatting(topic);
                    }
                }
            }
            Command::Response(Response::RPL_NAMREPLY, args) => {
                if let (Some(chan), Some(names)) = (args.get(2), args.get(3)) {
                    if let Some(ch) = self.channels.get_mut(&fold(chan)) {
                        if !ch.joined {
                            for entry in names.split_whitespace() {
                                let (nick, modes) = self.modes.split_name(entry);
                                ch.occupants.insert(nick, modes);
                            }
                        }
                    }
                }
            }
            Command::Response(Response::RPL_ENDOFNAMES, args) => {
                if let Some(chan) = args.get(1) {
                    let k = fold(chan);
                    let Some(ch) = self.channels.get_mut(&k) else {
                        return;
                    };
                    if ch.joined {
                        return;
                    }
                    ch.joined = true;
                    let name = ch.name.clone();
                    let resources: Vec<String> = ch.resources.keys().cloned().collect();
                    for r in resources {
                        self.replay(&k, &r);
                    }
                    // The channel's modes, for +m (moderated → visitors).
                    self.send(format!("MODE {name}"));
                }
            }
            Command::Response(Response::RPL_CHANNELMODEIS, _) => {
                // me, channel, modes, parameters…
                let p = modes::params(raw);
                if let Some(chan) = p.get(1) {
                    self.channel_modes(&chan.clone(), &p[2..]);
                }
            }
            Command::ChannelMODE(chan, _) => {
                let p = modes::params(raw);
                self.channel_modes(&chan, p.get(1..).unwrap_or(&[]));
            }
            // "No MOTD" is how many servers end their welcome, not a
            // failure the user needs to hear about.
            Command::Response(Response::ERR_NOMOTD, _) => {}
            Command::Response(resp, args) if resp.is_error() => self.server_says(&args),
            Command::JOIN(chan, _, _) => {
                let k = fold(&chan);
                if self.is_me(&source) {
                    return; // NAMES follows
                }
                let Some(ch) = self.channels.get_mut(&k) else {
                    return;
                };
                ch.occupants.insert(source.clone(), String::new());
                if !ch.joined {
                    return;
                }
                let ch = &self.channels[&k];
                let from = self.occupant(ch, &source);
                let rank = self.rank(ch, &source);
                self.tell_room(&k, |r| muc::occupant(&from, r, rank, false));
            }
            Command::PART(chan, reason) => {
                let k = fold(&chan);
                if self.is_me(&source) {
                    // We asked for it (the last resource left), or the
                    // server made us: tell any resources still there.
                    self.removed(&k, false, reason.as_deref());
                    return;
                }
                let reason = reason.map(|r| text::strip_formatting(&r));
                self.occupant_left(&k, &source, reason.as_deref());
            }
            Command::QUIT(reason) => {
                let reason = reason.map(|r| text::strip_formatting(&r));
                let keys: Vec<String> = self.channels.keys().cloned().collect();
                for k in keys {
                    self.occupant_left(&k, &source, reason.as_deref());
                }
            }
            Command::KICK(chan, victim, reason) => {
                let k = fold(&chan);
                if self.is_me(&source) {
                    let v = fold(&victim);
                    if let Some(i) = self.kicks.iter().position(|(c, n, _)| *c == k && *n == v) {
                        let (_, _, iq) = self.kicks.remove(i);
                        self.emit(iq_result(&iq, None));
                    }
                }
                let reason = reason.map(|r| text::strip_formatting(&r));
                if self.is_me(&victim) {
                    self.removed(&k, true, reason.as_deref());
                    return;
                }
                let Some(ch) = self.channels.get_mut(&k) else {
                    return;
                };
                if ch.occupants.remove(&victim).is_none() {
                    return;
                }
                let from = self.occupant(&self.channels[&k], &victim);
                self.tell_room(&k, |r| muc::gone(&from, r, false, true, reason.as_deref()));
            }
            Command::PRIVMSG(target, msg) => {
                let Some(body) = text::from_irc(&msg) else {
                    return;
                };
                if self.is_me(&target) && !self.chatting.is_empty() {
                    self.last_private = Some(self.now);
                }
                self.deliver(&source, false, &target, body);
            }
            Command::NOTICE(target, msg) => {
                // CTCP replies are answers to queries we never make.
                if msg.starts_with('\u{1}') {
                    return;
                }
                let body = text::strip_formatting(&msg);
                self.deliver(&source, from_server, &target, body);
            }
            Command::NICK(new) => self.nick_changed(&source, new),
            Command::TOPIC(chan, Some(topic)) => {
                let k = fold(&chan);
                let topic = text::strip_formatting(&topic);
                let Some(ch) = self.channels.get_mut(&k) else {
                    return;
                };
                ch.topic = topic.clone();
                let from = self.occupant(&self.channels[&k], &source);
                self.tell_room(&k, |r| muc::subject(&from, r, &topic));
            }
            _ => {}
        }
    }

    /// 001: the link is registered. NickServ IDENTIFY goes first, so that
    /// channels that look at the account see it as early as possible,
    /// then the joins, then the private messages held for it.
    fn welcome(&mut self, args: Vec<String>) {
        if let Some(n) = args.first() {
            self.nick = n.clone();
        }
        self.registered = true;
        self.welcomed_at = Some(self.now);
        self.ever_registered = true;
        if let Some(step) = self.signon.as_mut().map(SignOn::welcomed) {
            self.sign_on_step(step);
        }
        let joins: Vec<String> = self.channels.values().map(|c| c.join_line()).collect();
        for l in joins {
            self.send(l);
        }
        for l in std::mem::take(&mut self.held) {
            self.send(l);
        }
    }

    /// We left the channel `k` (a PART we sent or the server's, or a
    /// KICK): every resource still in it is told.
    fn removed(&mut self, k: &str, kicked: bool, reason: Option<&str>) {
        if let Some(ch) = self.channels.remove(k) {
            let me = self.occupant(&ch, &self.nick);
            let stanzas = ch
                .resources
                .keys()
                .map(|r| muc::gone(&me, r, true, kicked, reason))
                .collect();
            self.emit_all(stanzas);
        }
    }

    /// Someone's NICK, ours included: the occupant changes name in every
    /// room it is in (XEP-0045 §7.6, status 303).
    fn nick_changed(&mut self, source: &str, new: String) {
        let own = self.is_me(source);
        if own {
            self.nick = new.clone();
            self.renaming = None;
        }
        let keys: Vec<String> = self.channels.keys().cloned().collect();
        for k in keys {
            let Some(ch) = self.channels.get_mut(&k) else {
                continue;
            };
            let Some(modes) = ch.occupants.remove(source) else {
                continue;
            };
            ch.occupants.insert(new.clone(), modes);
            if !ch.joined {
                continue;
            }
            let ch = &self.channels[&k];
            let rank = self.rank(ch, &new);
            let old_jid = self.occupant(ch, source);
            let new_jid = self.occupant(ch, &new);
            self.tell_room(&k, |r| muc::nick_change(&old_jid, r, rank, &new, own));
            self.tell_room(&k, |r| muc::occupant(&new_jid, r, rank, own));
        }
    }

    /// The server refused the nick a resource asked for: that resource
    /// gets the error from the occupant JID it asked for, and the room
    /// keeps the nick the connection has.
    fn nick_refused(&mut self, resp: Response) {
        let Some((k, full)) = self.renaming.take() else {
            return;
        };
        let nick = self.nick.clone();
        let Some(ch) = self.channels.get_mut(&k) else {
            return;
        };
        let Some(wanted) = ch.resources.insert(full.clone(), nick) else {
            return;
        };
        let err = match resp {
            Response::ERR_ERRONEOUSNICKNAME => {
                StanzaError::new("not-acceptable", ErrorType::Modify)
                    .with_text(format!("the IRC server refuses the nick {wanted}"))
            }
            _ => StanzaError::new("conflict", ErrorType::Cancel)
                .with_text(format!("the nick {wanted} is taken on the IRC server")),
        };
        let from = self.occupant(&self.channels[&k], &wanted);
        self.emit(muc::join_error(&from, &full, err));
    }

    /// A PRIVMSG or NOTICE: to a channel, a groupchat message from the
    /// occupant (or from the room itself when the server sent it); to us,
    /// a chat message from the user's JID or the server's.
    fn deliver(&mut self, source: &str, from_server: bool, target: &str, body: String) {
        if body.is_empty() {
            return;
        }
        let k = fold(target);
        if let Some(ch) = self.channels.get(&k) {
            if !ch.joined {
                return;
            }
            let from = if from_server {
                self.room(ch)
            } else {
                self.occupant(ch, source)
            };
            self.tell_room(&k, |r| muc::groupchat(&from, r, &body));
        } else if self.is_me(target) || target == "*" {
            if from_server && !self.registered {
                // Sign-on chatter ("looking up your hostname") on every
                // (re)connection: not worth a message.
                return;
            }
            let from = if from_server {
                self.server_jid()
            } else {
                self.private_from(source)
            };
            let stanzas = self
                .all_resources()
                .iter()
                .map(|r| muc::chat(&from, r, &body))
                .collect();
            self.emit_all(stanzas);
        }
    }

    /// An error numeric not handled otherwise (an unknown command from an
    /// admin's raw line, a message to a missing nick): a message from the
    /// server's JID, in its words. Before the welcome, sign-on errors are
    /// the connection's business, not the user's.
    fn server_says(&mut self, args: &[String]) {
        if !self.registered || args.len() < 2 {
            return;
        }
        let text = text::strip_formatting(&args[1..].join(" "));
        let from = self.server_jid();
        let stanzas = self
            .all_resources()
            .iter()
            .map(|r| muc::chat(&from, r, &text))
            .collect();
        self.emit_all(stanzas);
    }

    /// Where a private message from `nick` comes from: the occupant JID
    /// the user wrote to it at, while both are in that channel, or else
    /// the IRC user's JID.
    fn private_from(&self, nick: &str) -> String {
        let room = self
            .private_rooms
            .get(&fold(nick))
            .and_then(|k| self.channels.get(k))
            .filter(|ch| ch.joined && Self::find_nick(ch, nick).is_some());
        match room {
            Some(ch) => self.occupant(ch, nick),
            None => self.user(nick),
        }
    }

    /// 433 before the first welcome, with rooms waiting: every join fails
    /// with `conflict`, and the link goes unless private messages wait for
    /// it (they take the nick with a `_` after it).
    fn nick_in_use(&mut self) {
        let taken = self.nick.clone();
        let err = StanzaError::new("conflict", ErrorType::Cancel).with_text(format!(
            "the nick {taken} is in use on {}; choose another",
            self.server
        ));
        let chans: Vec<_> = self.channels.drain().map(|(_, c)| c).collect();
        let stanzas = chans
            .iter()
            .flat_map(|ch| {
                ch.resources
                    .iter()
                    .map(|(r, nick)| muc::join_error(&self.occupant(ch, nick), r, err.clone()))
                    .collect::<Vec<_>>()
            })
            .collect();
        self.emit_all(stanzas);
        if self.held.is_empty() {
            self.fatal = Some(format!("the nick {taken} is in use"));
        } else {
            self.nick.push('_');
            let nick = self.nick.clone();
            self.send(format!("NICK {nick}"));
        }
    }

    /// An error numeric about a kick we sent (482: we are no operator
    /// there; 441 or 401: no such occupant): the kick's iq gets the error.
    /// `false` when no kick waits for it.
    fn kick_refused(&mut self, code: Response, args: &[String]) -> bool {
        // 482: me, channel, text; 441: me, nick, channel, text; 401: me,
        // nick, text.
        let (chan, nick) = match code {
            Response::ERR_CHANOPRIVSNEEDED => (args.get(1).map(|c| fold(c)), None),
            Response::ERR_USERNOTINCHANNEL => {
                (args.get(2).map(|c| fold(c)), args.get(1).map(|n| fold(n)))
            }
            _ => (None, args.get(1).map(|n| fold(n))),
        };
        let Some(i) = self.kicks.iter().position(|(c, n, _)| {
            chan.as_ref().is_none_or(|k| k == c) && nick.as_ref().is_none_or(|v| v == n)
        }) else {
            return false;
        };
        let (_, _, iq) = self.kicks.remove(i);
        let text = args.last().map(|t| text::strip_formatting(t));
        let mut err = match code {
            Response::ERR_CHANOPRIVSNEEDED => StanzaError::forbidden(),
            _ => StanzaError::new("item-not-found", ErrorType::Cancel),
        };
        if let Some(t) = text {
            err = err.with_text(t);
        }
        if let Some(r) = error_reply(&iq, &err) {
            self.emit(r);
        }
        true
    }

    /// A numeric that refuses a JOIN, or else an error for the user.
    fn refusal(&mut self, code: u16, args: &[String]) {
        if !self.refused(code, args) {
            self.server_says(args);
        }
    }

    /// The server refused a JOIN with numeric `code`: the join fails for
    /// every resource waiting on it. `false` when the numeric is not about
    /// a channel being joined.
    fn refused(&mut self, code: u16, args: &[String]) -> bool {
        let Some(chan) = args.get(1) else {
            return false;
        };
        let k = fold(chan);
        if self.channels.get(&k).is_none_or(|c| c.joined) {
            return false;
        }
        let Some(ch) = self.channels.remove(&k) else {
            return false;
        };
        let text = args.last().map(|t| text::strip_formatting(t));
        let mut err = join_refusal(code).expect("a join refusal");
        if let Some(t) = text {
            err = err.with_text(format!("{}: {t}", ch.name));
        }
        let stanzas = ch
            .resources
            .iter()
            .map(|(r, nick)| muc::join_error(&self.occupant(&ch, nick), r, err.clone()))
            .collect();
        self.emit_all(stanzas);
        true
    }

    fn occupant_left(&mut self, k: &str, nick: &str, reason: Option<&str>) {
        let Some(ch) = self.channels.get_mut(k) else {
            return;
        };
        if ch.occupants.remove(nick).is_none() || !ch.joined {
            return;
        }
        let from = self.occupant(&self.channels[k], nick);
        self.tell_room(k, |r| muc::gone(&from, r, false, false, reason));
    }

    /// Sends the presence of each occupant of `k` whose rank differs from
    /// `before`.
    fn rank_changes(&mut self, k: &str, before: &BTreeMap<String, Rank>) {
        let Some(ch) = self.channels.get(k) else {
            return;
        };
        if !ch.joined {
            return;
        }
        let mut stanzas = Vec::new();
        for nick in ch.occupants.keys() {
            let rank = self.rank(ch, nick);
            if before.get(nick) == Some(&rank) {
                continue;
            }
            let from = self.occupant(ch, nick);
            let own = self.is_me(nick);
            stanzas.extend(
                ch.resources
                    .keys()
                    .map(|r| muc::occupant(&from, r, rank, own)),
            );
        }
        self.emit_all(stanzas);
    }

    fn ranks(&self, k: &str) -> BTreeMap<String, Rank> {
        self.channels.get(k).map_or_else(BTreeMap::new, |ch| {
            ch.occupants
                .keys()
                .map(|n| (n.clone(), self.rank(ch, n)))
                .collect()
        })
    }

    /// A channel MODE line: status modes and `m` change ranks.
    fn channel_modes(&mut self, chan: &str, params: &[String]) {
        let k = fold(chan);
        if !self.channels.contains_key(&k) {
            return;
        }
        let before = self.ranks(&k);
        let changes = self.modes.changes(params);
        let Some(ch) = self.channels.get_mut(&k) else {
            return;
        };
        for c in &changes {
            if c.mode == 'm' {
                ch.moderated = c.plus;
            } else if self.modes.is_status_mode(c.mode) {
                let Some(nick) = c.arg.as_deref().and_then(|n| Self::find_nick(ch, n)) else {
                    continue;
                };
                if let Some(m) = ch.occupants.get_mut(&nick) {
                    self.modes.apply(m, c);
                }
            }
        }
        self.rank_changes(&k, &before);
    }
}
