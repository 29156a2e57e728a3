//! The IRC session of one (XMPP account, IRC server) pair as a sans-IO
//! machine: requests from the service, bytes from the server and `now`
//! go in; IRC lines to write, stanzas for the XMPP side, socket orders and
//! a timer deadline come out. It keeps its state across sockets: the
//! nick the server gave it, and for each channel the user's resources
//! that joined it and the occupants seen there. It reads no clock and
//! touches no socket; [`crate::connection`] is the thin driver that does.
//!
//! The driver's loop, after any `handle_*` call: write every line from
//! [`Session::poll_transmit`], then act on every [`Event`] from
//! [`Session::poll_event`], then wait for a request, bytes, or the
//! deadline of [`Session::poll_timeout`].
//!
//! The life of a link:
//!
//! - the session asks for a socket ([`Event::Connect`]); the driver waits
//!   for its turn among the sign-ons to that server and says so
//!   ([`Session::handle_dialing`]): from then the socket, TLS included,
//!   and the welcome (001) must come within [`REGISTRATION_TIMEOUT`];
//! - once connected it signs on (PASS, CAP and SASL, NICK, USER:
//!   [`crate::signon`], from the user's settings);
//! - a silent server gets our own PING after [`PING_AFTER`] and is
//!   dropped when nothing arrives within [`PONG_WAIT`] more;
//! - a line longer than [`lines::MAX_LINE`] without its CR LF drops the
//!   link (it is never buffered whole), and only this user's;
//! - outgoing lines wait in a queue behind a token bucket
//!   ([`switchboard_link::bucket`]): requests from the service are always
//!   taken at once, and no line is dropped (beyond [`MAX_QUEUED`] waiting
//!   lines, new messages are refused with an error instead);
//! - when a link that was registered drops, the user's resources get an
//!   unavailable presence in each room and a message from the server's
//!   JID, and the session reconnects with backoff ([`RECONNECT`]); after
//!   the welcome it rejoins every channel, and the resources get the join
//!   presences again. A session that never registered fails its joins
//!   instead, as does one whose attempts are spent.
//!
//! When the last resource leaves the last channel the session QUITs and
//! ends ([`Event::End`]); a deliberate QUIT is never followed by a
//! reconnection. The driver then hands back the requests that arrived too
//! late ([`Session::finish`]).

mod incoming;
pub mod lines;
mod outage;
mod requests;
mod rooms;

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::time::{Duration, Instant};

use irc_proto::Message;
use switchboard_link::backoff::{Backoff, Jitter, Policy, RandomSource};
use switchboard_link::bucket::TokenBucket;
use switchboard_service::stanza::{error_reply, ErrorType, StanzaError};
use switchboard_xml::Element;

use crate::config::Flood;
use crate::modes::ServerModes;
use crate::signon::{self, Profile, SignOn};
use crate::text;
use lines::LineBuffer;
use rooms::{fold, Channel};

/// How long a server has between our turn to connect and its welcome
/// (001), TCP and TLS included, before the attempt counts as failed.
pub const REGISTRATION_TIMEOUT: Duration = Duration::from_secs(30);

/// After this much silence from the server we send our own PING…
pub const PING_AFTER: Duration = Duration::from_secs(120);

/// …and drop the link if nothing at all arrives within this much more.
pub const PONG_WAIT: Duration = Duration::from_secs(60);

/// How long a connection that only carries private messages (no room
/// joined) stays up after the last one either way. The user sends no
/// presence to an IRC user's JID, so silence is the only sign the chat is
/// over; a quarter of an hour keeps a slow conversation on one connection
/// (and one nick) without keeping idle links forever.
pub const PRIVATE_IDLE: Duration = Duration::from_secs(15 * 60);

/// How long a link must have been up for the next drop to count as a new
/// outage, with reconnection delays starting over from the first.
pub const STABLE: Duration = Duration::from_secs(60);

/// How many lines may wait for the flood control before new messages are
/// refused (at one line per 2 s, over half an hour of sending).
pub const MAX_QUEUED: usize = 1000;

/// Reconnection delays: from 1 s, doubled per failed attempt, capped at
/// 5 minutes, each drawn between half and all of its nominal value so that
/// the many links of one gateway to a server that restarted do not all
/// come back in the same second.
///
/// Attempts are bounded as well as the delay: after 12 failures in a row
/// (about 25 minutes of trying) the session gives up and its users are
/// told, rather than keeping rooms open forever for a server that is
/// gone. A registration that lasts ([`STABLE`]) starts the count again.
pub const RECONNECT: Policy = Policy {
    first: Duration::from_secs(1),
    max: Duration::from_secs(300),
    attempts: Some(12),
    jitter: Jitter::EQUAL,
};

/// What the service asks of a connection.
#[derive(Debug)]
pub enum ToIrc {
    /// The user's resource `full` joins `channel` (nick wanted: `nick`);
    /// `short` when it wrote the default server's short room address;
    /// `key` the room password (XEP-0045 §7.2.6), sent as the channel key.
    Join {
        channel: String,
        nick: String,
        full: String,
        short: bool,
        key: Option<String>,
    },
    /// The resource `full` leaves `channel`.
    Leave { channel: String, full: String },
    /// A groupchat message from `full` to `channel`.
    Say {
        channel: String,
        full: String,
        body: String,
    },
    /// A private message from `full` to an IRC user; `room` when it was
    /// written to the user's occupant JID in that channel (XEP-0045 §7.5),
    /// where the answers then come from too.
    Private {
        nick: String,
        full: String,
        body: String,
        room: Option<String>,
    },
    /// A moderator's kick (XEP-0045 §8.2, `muc#admin` role `none`) of
    /// `nick` from `channel`: IRC KICK, the `iq` answered when the server
    /// confirms or refuses.
    Kick {
        channel: String,
        full: String,
        nick: String,
        reason: Option<String>,
        iq: Box<Element>,
    },
    /// A new subject for `channel` from `full`: the topic.
    Topic {
        channel: String,
        full: String,
        subject: String,
    },
    /// A raw IRC line from an admin's resource `full` (already checked to
    /// be one line).
    Raw { line: String, full: String },
    /// XEP-0410: the resource `full` pings its own occupant JID in
    /// `channel` to learn whether it is still in the room.
    SelfPing {
        channel: String,
        full: String,
        iq: Box<Element>,
    },
}

/// What the driver does next.
#[derive(Debug)]
pub enum Event {
    /// Open a socket to the server (after a turn among the sign-ons to
    /// it); then [`Session::handle_dialing`], and
    /// [`Session::handle_connected`] or
    /// [`Session::handle_connect_failed`].
    Connect,
    /// Close the socket (or give up opening it), after writing `QUIT
    /// :<reason>` when there is a reason.
    Disconnect { quit: Option<String> },
    /// A stanza for the XMPP side.
    Stanza(Element),
    /// The session is over: close the request queue, hand what is still
    /// in it to [`Session::finish`], deliver the stanzas that follows, and
    /// stop.
    End,
}

/// Who the session is for and where it goes.
#[derive(Debug, Clone)]
pub struct Params {
    /// The transport's hostname (`irc.example.org`).
    pub service_host: String,
    /// The user's bare JID.
    pub user: String,
    /// The IRC server's name.
    pub server: String,
    /// Whether this is the admin's default server: its users' JIDs then
    /// take the short form (`nick@irc.example.org`).
    pub default: bool,
    /// The nick the first join asked for (the profile's nick wins).
    pub nick: String,
    pub flood: Flood,
    /// The user's settings for this server; every link signs on with them.
    pub profile: Profile,
}

/// Where the link stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// A socket was asked for; `deadline` once the driver has its turn.
    Dialing { deadline: Option<Instant> },
    /// The socket is open: signing on until the welcome, then up.
    /// `deadline` is for the welcome; `heard` is when the last line came.
    Up {
        deadline: Instant,
        heard: Instant,
        pinged: bool,
    },
    /// Waiting before the next attempt.
    Backoff { until: Instant },
    /// Over; [`Session::finish`] does the rest.
    Ended,
}

/// How the session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    /// We quit, or nothing was left to reconnect for.
    Quit,
    /// The server refused us for good, or the attempts are spent.
    Failed(String),
}

/// The state of one connection, kept across its links.
pub struct Session {
    host: String,
    server: String,
    user: String,
    nick: String,
    /// The server as users' JIDs name it ("" for the short form).
    user_via: String,
    phase: Phase,
    outcome: Option<Outcome>,
    /// The latest `now` the session was given.
    now: Instant,
    /// Whether the current link saw the welcome.
    registered: bool,
    /// When it did.
    welcomed_at: Option<Instant>,
    /// The server's ERROR line on this link, if any.
    last_error: Option<String>,
    /// Whether any link did: a connection that never worked fails its
    /// joins instead of retrying.
    ever_registered: bool,
    /// Whether a resource ever joined: a connection whose channels are all
    /// gone after that has nothing left to do.
    used: bool,
    /// Set when the server refused us for good (an unusable nick).
    fatal: Option<String>,
    /// A nick change a resource asked for (XEP-0045 §7.6), until the
    /// server confirms or refuses it: (room key, the resource).
    renaming: Option<(String, String)>,
    /// Resources that wrote to IRC users privately; they get private
    /// messages and server notices like the resources in rooms.
    chatting: BTreeSet<String>,
    /// IRC users (folded nick) last written to at their occupant JID in
    /// a channel: their answers come from there while both are in it.
    private_rooms: HashMap<String, String>,
    /// Kicks sent and not yet confirmed or refused: (folded channel,
    /// folded nick, the `muc#admin` iq).
    kicks: Vec<(String, String, Element)>,
    /// When the last private message went either way.
    last_private: Option<Instant>,
    /// Lines for after the welcome: private messages written while the
    /// first link was still signing on.
    held: Vec<String>,
    channels: HashMap<String, Channel>,
    /// Lines waiting for the flood control, in order.
    queue: VecDeque<String>,
    /// Lines that skip it: PONG, our PING, the sign-on lines.
    urgent: VecDeque<String>,
    bucket: TokenBucket,
    /// What the server's ISUPPORT said about modes.
    modes: ServerModes,
    /// The user's settings for this server; every link signs on with them.
    profile: Profile,
    /// The current link's PASS, SASL and NickServ steps ([`signon`]).
    signon: Option<SignOn>,
    /// The partial line between reads.
    input: LineBuffer,
    backoff: Backoff,
    /// Whether the users were told of the current outage.
    told: bool,
    events: VecDeque<Event>,
}

impl Session {
    /// A session whose reconnection jitter comes from the operating
    /// system; it asks for its first socket at once.
    pub fn new(params: Params, now: Instant) -> Session {
        Session::with_backoff(params, now, Backoff::new(RECONNECT))
    }

    /// The same with jitter from `random` (tests).
    pub fn with_random(
        params: Params,
        now: Instant,
        random: impl RandomSource + 'static,
    ) -> Session {
        Session::with_backoff(params, now, Backoff::with_random(RECONNECT, random))
    }

    fn with_backoff(params: Params, now: Instant, backoff: Backoff) -> Session {
        let Params {
            service_host,
            user,
            server,
            default,
            nick,
            flood,
            profile,
        } = params;
        let mut s = Session {
            host: service_host,
            user_via: if default {
                String::new()
            } else {
                server.clone()
            },
            server,
            user,
            nick: profile.nick.clone().unwrap_or(nick),
            phase: Phase::Dialing { deadline: None },
            outcome: None,
            now,
            registered: false,
            welcomed_at: None,
            last_error: None,
            ever_registered: false,
            used: false,
            fatal: None,
            renaming: None,
            chatting: BTreeSet::new(),
            private_rooms: HashMap::new(),
            kicks: Vec::new(),
            last_private: None,
            held: Vec::new(),
            channels: HashMap::new(),
            queue: VecDeque::new(),
            urgent: VecDeque::new(),
            bucket: TokenBucket::new(flood.burst, flood.interval, now),
            modes: ServerModes::default(),
            profile,
            signon: None,
            input: LineBuffer::default(),
            backoff,
            told: false,
            events: VecDeque::new(),
        };
        s.events.push_back(Event::Connect);
        s
    }

    /// The session cannot start (the user's settings cannot be read): it
    /// ends, and its joins fail with `why`.
    pub fn give_up(&mut self, why: String) {
        if self.phase != Phase::Ended {
            // No socket was opened for it.
            self.events.retain(|e| !matches!(e, Event::Connect));
            self.events.push_back(Event::Disconnect { quit: None });
            self.end(Outcome::Failed(why));
        }
    }

    /// Whether the current link is signed on: the driver's turn among the
    /// sign-ons to this server can go to someone else.
    pub fn signed_on(&self) -> bool {
        self.registered && matches!(self.phase, Phase::Up { .. })
    }

    /// A request from the service.
    pub fn handle_request(&mut self, req: ToIrc, now: Instant) {
        self.now = now;
        if self.phase != Phase::Ended {
            self.request(req);
        }
    }

    /// The service's request queue closed: the gateway is going away.
    pub fn handle_shutdown(&mut self, now: Instant) {
        self.now = now;
        match self.phase {
            Phase::Ended => return,
            Phase::Up { .. } => self.events.push_back(Event::Disconnect {
                quit: Some("gateway shutting down".into()),
            }),
            Phase::Dialing { .. } => self.events.push_back(Event::Disconnect { quit: None }),
            Phase::Backoff { .. } => {}
        }
        self.end(Outcome::Quit);
    }

    /// The driver has its turn and opens the socket now: the registration
    /// timeout starts.
    pub fn handle_dialing(&mut self, now: Instant) {
        self.now = now;
        if let Phase::Dialing { deadline: None } = self.phase {
            self.phase = Phase::Dialing {
                deadline: Some(now + REGISTRATION_TIMEOUT),
            };
        }
    }

    /// The socket is open (TLS included): the sign-on starts.
    pub fn handle_connected(&mut self, now: Instant) {
        self.now = now;
        let Phase::Dialing { deadline } = self.phase else {
            return;
        };
        self.phase = Phase::Up {
            deadline: deadline.unwrap_or(now + REGISTRATION_TIMEOUT),
            heard: now,
            pinged: false,
        };
        self.input.clear();
        self.sign_on();
    }

    /// The socket could not be opened.
    pub fn handle_connect_failed(&mut self, why: String, now: Instant) {
        self.now = now;
        if let Phase::Dialing { .. } = self.phase {
            self.dropped_link(why);
        }
    }

    /// Bytes from the server.
    pub fn handle_input(&mut self, data: &[u8], now: Instant) {
        self.now = now;
        if !matches!(self.phase, Phase::Up { .. }) {
            return;
        }
        let lines = match self.input.push(data) {
            Ok(lines) => lines,
            Err(e) => return self.dropped_link(e.to_string()),
        };
        for bytes in lines {
            // Any line at all shows the server is alive.
            let Phase::Up { deadline, .. } = self.phase else {
                return;
            };
            self.phase = Phase::Up {
                deadline,
                heard: now,
                pinged: false,
            };
            let line = text::decode(&bytes);
            match line.parse::<Message>() {
                Ok(m) => self.incoming(m, &line),
                Err(e) => tracing::debug!(server = %self.server, "unparsable IRC line: {e}"),
            }
        }
    }

    /// The server closed the connection.
    pub fn handle_eof(&mut self, now: Instant) {
        self.now = now;
        if matches!(self.phase, Phase::Up { .. }) {
            let why = match self.last_error.take() {
                Some(e) => format!("the server closed the connection: {e}"),
                None => "the server closed the connection".into(),
            };
            self.dropped_link(why);
        }
    }

    /// Reading or writing the socket failed.
    pub fn handle_io_error(&mut self, why: String, now: Instant) {
        self.now = now;
        if matches!(self.phase, Phase::Up { .. }) {
            self.dropped_link(why);
        }
    }

    /// The deadline of [`Session::poll_timeout`] passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.now = now;
        match self.phase {
            Phase::Dialing {
                deadline: Some(deadline),
            } if now >= deadline => {
                self.dropped_link("no connection within the registration timeout".into());
            }
            Phase::Up { deadline, .. } if !self.registered && now >= deadline => {
                self.dropped_link(format!(
                    "no welcome from the server within {} s",
                    REGISTRATION_TIMEOUT.as_secs()
                ));
            }
            Phase::Up {
                deadline,
                heard,
                pinged,
            } if self.registered => {
                if pinged && now >= heard + PING_AFTER + PONG_WAIT {
                    self.dropped_link(format!(
                        "no answer to PING within {} s",
                        PONG_WAIT.as_secs()
                    ));
                } else if !pinged && now >= heard + PING_AFTER {
                    self.urgent.push_back("PING :switchboard".into());
                    self.phase = Phase::Up {
                        deadline,
                        heard,
                        pinged: true,
                    };
                }
            }
            Phase::Backoff { until } if now >= until => self.start_link(),
            // The flood control's next token and a private chat's end
            // are looked at where lines and events are polled.
            _ => {}
        }
    }

    /// The next line to write now (without CR LF): the urgent ones, then
    /// queued ones as the flood control allows.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<String> {
        self.now = now;
        if !matches!(self.phase, Phase::Up { .. }) {
            return None;
        }
        if let Some(l) = self.urgent.pop_front() {
            return Some(l);
        }
        if !self.queue.is_empty() && self.bucket.try_take(now) {
            return self.queue.pop_front();
        }
        None
    }

    /// The next thing for the driver to do.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.settle();
        self.events.pop_front()
    }

    /// When [`Session::handle_timeout`] is due next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let link = match self.phase {
            Phase::Dialing { deadline } => deadline,
            Phase::Up { deadline, .. } if !self.registered => Some(deadline),
            Phase::Up {
                heard,
                pinged: true,
                ..
            } => Some(heard + PING_AFTER + PONG_WAIT),
            Phase::Up { heard, .. } => Some(heard + PING_AFTER),
            Phase::Backoff { until } => Some(until),
            Phase::Ended => None,
        };
        let up = matches!(self.phase, Phase::Up { .. });
        // The flood control's next token, for queued lines.
        let token = (up && !self.queue.is_empty()).then(|| self.bucket.ready_at(self.now));
        // A connection kept only for private messages wakes up when the
        // chat has been quiet long enough to end.
        let chat_end = self
            .last_private
            .filter(|_| up && self.channels.is_empty())
            .map(|t| t + PRIVATE_IDLE)
            .filter(|t| *t > self.now);
        [link, token, chat_end].into_iter().flatten().min()
    }

    /// After [`Event::End`]: the requests that reached the session too
    /// late. Joins and private messages after a quit come back as the
    /// stanzas that made them, for a new connection; after a failure,
    /// late joins fail with the rest. The users' last stanzas follow
    /// through [`Session::poll_event`].
    pub fn finish(&mut self, late: Vec<ToIrc>) -> Vec<Element> {
        match self.outcome.clone() {
            None => Vec::new(),
            Some(Outcome::Quit) => {
                // We quit (the last room was left) while a join or a
                // private message was on its way: it goes back to the
                // service, which opens a new connection for it.
                let again = late.into_iter().filter_map(|r| self.as_stanza(r)).collect();
                self.closed("the connection ended");
                again
            }
            Some(Outcome::Failed(why)) => {
                tracing::info!(user = %self.user, server = %self.server, "IRC connection ended: {why}");
                for req in late {
                    if let ToIrc::Join {
                        channel,
                        nick,
                        full,
                        short,
                        key,
                    } = req
                    {
                        let via = self.via(short);
                        let ch = self
                            .channels
                            .entry(fold(&channel))
                            .or_insert_with(|| Channel::new(&channel, via));
                        ch.resources.insert(full, nick);
                        ch.key = ch.key.take().or(key);
                    }
                }
                self.closed(&why);
                Vec::new()
            }
        }
    }

    /// Ends the session when nothing is left for it to do.
    fn settle(&mut self) {
        match self.phase {
            Phase::Up { .. } => {
                if let Some(why) = self.fatal.take() {
                    self.events.push_back(Event::Disconnect {
                        quit: Some(String::new()),
                    });
                    return self.end(Outcome::Failed(why));
                }
                // Lines still queued (the PART of the last channel,
                // messages before it) go out first: nothing is dropped for
                // the flood control, even at the end.
                if self.used
                    && self.channels.is_empty()
                    && self.queue.is_empty()
                    && self.urgent.is_empty()
                    && !self.chat_alive()
                {
                    self.events.push_back(Event::Disconnect {
                        quit: Some("left every channel".into()),
                    });
                    self.end(Outcome::Quit);
                }
            }
            Phase::Dialing { .. }
                if self.used && self.channels.is_empty() && !self.chat_alive() =>
            {
                self.events.push_back(Event::Disconnect { quit: None });
                self.end(Outcome::Quit);
            }
            Phase::Backoff { .. } if self.used && self.channels.is_empty() => {
                self.end(Outcome::Quit)
            }
            _ => {}
        }
    }

    fn end(&mut self, outcome: Outcome) {
        self.unanswered_kicks();
        self.phase = Phase::Ended;
        self.outcome = Some(outcome);
        self.queue.clear();
        self.urgent.clear();
        self.events.push_back(Event::End);
    }

    /// Kicks the server will not answer now that the link is gone.
    fn unanswered_kicks(&mut self) {
        for (_, _, iq) in std::mem::take(&mut self.kicks) {
            let err = StanzaError::new("recipient-unavailable", ErrorType::Wait)
                .with_text("the IRC connection dropped before the server answered the kick");
            if let Some(r) = error_reply(&iq, &err) {
                self.emit(r);
            }
        }
    }

    /// A new link: a socket is asked for.
    fn start_link(&mut self) {
        self.phase = Phase::Dialing { deadline: None };
        self.registered = false;
        self.welcomed_at = None;
        self.last_error = None;
        self.queue.clear();
        self.urgent.clear();
        self.modes = ServerModes::default();
        self.events.push_back(Event::Connect);
    }

    /// The link failed or the server dropped us: reconnect after a delay,
    /// or give up.
    fn dropped_link(&mut self, why: String) {
        self.unanswered_kicks();
        self.events.push_back(Event::Disconnect { quit: None });
        self.queue.clear();
        self.urgent.clear();
        if !self.ever_registered {
            return self.end(Outcome::Failed(why));
        }
        if self.registered {
            // That link worked: the users were back in their rooms and
            // must hear of this outage too. The delays start over only if
            // it also lasted: a server that welcomes and then drops us at
            // once (a ban) must not be hammered every second.
            self.told = false;
            if self
                .welcomed_at
                .is_some_and(|t| self.now.saturating_duration_since(t) >= STABLE)
            {
                self.backoff.reset();
            }
        }
        let Some(delay) = self.backoff.failed() else {
            let attempts = RECONNECT.attempts.unwrap_or(0);
            return self.end(Outcome::Failed(format!(
                "gave up after {attempts} attempts to reconnect: {why}"
            )));
        };
        tracing::info!(user = %self.user, server = %self.server, "IRC connection lost ({why}); reconnecting in {delay:?}");
        if !self.told {
            self.dropped(&why, delay);
            self.told = true;
        }
        self.registered = false;
        self.phase = Phase::Backoff {
            until: self.now + delay,
        };
    }

    /// Queues a line behind the flood control. Before the welcome only
    /// sign-on lines are sent (joins and messages wait for it): they skip
    /// the bucket, since a server expects them at once and they are few,
    /// and the link starts with its full burst.
    fn send(&mut self, line: String) {
        tracing::debug!(user = %self.user, server = %self.server, "IRC → {}", signon::mask(&line));
        if self.registered {
            self.queue.push_back(line);
        } else {
            self.urgent.push_back(line);
        }
    }

    /// Starts a link's sign-on: PASS, CAP LS for SASL, NICK and USER with
    /// the user's settings (the username defaults to the JID's local part,
    /// the real name to the bare JID).
    fn sign_on(&mut self) {
        let profile = self.profile.clone();
        let username = profile.username.clone().unwrap_or_else(|| {
            let u: String = self
                .user
                .split('@')
                .next()
                .unwrap_or("")
                .chars()
                .filter(char::is_ascii_alphanumeric)
                .take(10)
                .collect();
            if u.is_empty() {
                "xmpp".to_string()
            } else {
                u
            }
        });
        let realname = profile
            .realname
            .clone()
            .unwrap_or_else(|| self.user.clone());
        let (machine, step) = SignOn::start(
            profile.credentials,
            &self.nick,
            &username,
            &realname,
            profile.secure,
        );
        self.signon = Some(machine);
        self.sign_on_step(step);
    }

    /// Sends a sign-on step's lines, and its sentence to the user's
    /// resources from the IRC server's JID.
    fn sign_on_step(&mut self, step: signon::Step) {
        for l in step.lines {
            self.send(l);
        }
        if let Some(text) = step.notice {
            let from = self.server_jid();
            let stanzas = self
                .room_resources()
                .iter()
                .map(|r| crate::muc::chat(&from, r, &text))
                .collect();
            self.emit_all(stanzas);
        }
    }

    /// Whether a private conversation still keeps the connection up.
    fn chat_alive(&self) -> bool {
        !self.held.is_empty()
            || self
                .last_private
                .is_some_and(|t| self.now.saturating_duration_since(t) < PRIVATE_IDLE)
    }
}

#[cfg(test)]
mod tests;
