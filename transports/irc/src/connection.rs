//! One IRC connection per (XMPP account, IRC server), shared by the
//! account's resources.
//!
//! A connection is a task owning its socket and its state: the nick the
//! server gave it, and for each channel the user's resources that joined
//! it and the occupants seen there. The service sends it [`ToIrc`]
//! requests; it writes IRC lines, reads the server's, and sends the
//! resulting stanzas straight to the outbox. Lines are read with a bound
//! ([`MAX_LINE`]): a longer one is dropped whole, never buffered.
//!
//! When the last resource leaves the last channel the connection QUITs and
//! ends; the service learns it through the `done` channel and forgets it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use irc_proto::{Command, Message, Prefix, Response};
use rustls::pki_types::ServerName;
use switchboard_service::stanza::StanzaError;
use switchboard_service::Outbox;
use switchboard_xml::Element;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_rustls::TlsConnector;

use crate::address::{occupant_jid, room_jid, server_jid, user_jid};
use crate::muc::{self, Rank};
use crate::signon::{self, Profile, SignOn};
use crate::text;

/// The longest line read from a server: 512 bytes plus the 8191 bytes
/// IRCv3 allows for message tags.
pub const MAX_LINE: usize = 512 + 8191;

type Reader = Box<dyn AsyncRead + Send + Unpin>;
type Writer = Box<dyn AsyncWrite + Send + Unpin>;

/// Which connection: the user's bare JID and the IRC server's name.
pub type Key = (String, String);

/// What the service asks of a connection.
#[derive(Debug)]
pub enum ToIrc {
    /// The user's resource `full` joins `channel` (nick wanted: `nick`).
    Join {
        channel: String,
        nick: String,
        full: String,
    },
    /// The resource `full` leaves `channel`.
    Leave { channel: String, full: String },
    /// A groupchat message from `full` to `channel`.
    Say {
        channel: String,
        full: String,
        body: String,
    },
    /// A private message to an IRC user.
    Private { nick: String, body: String },
    /// A new subject for `channel` from `full`: the topic.
    Topic {
        channel: String,
        full: String,
        subject: String,
    },
}

struct Channel {
    /// The name as the user wrote it.
    name: String,
    /// The user's resources in the room, with the nick each asked for.
    resources: BTreeMap<String, String>,
    /// Occupants (nick → rank), once NAMES started.
    occupants: BTreeMap<String, Rank>,
    /// Our own rank, from NAMES.
    own_rank: Rank,
    /// Whether the join is complete (end of NAMES seen).
    joined: bool,
    topic: String,
}

impl Channel {
    fn new(name: &str) -> Channel {
        Channel {
            name: name.to_string(),
            resources: BTreeMap::new(),
            occupants: BTreeMap::new(),
            own_rank: Rank::NONE,
            joined: false,
            topic: String::new(),
        }
    }
}

/// IRC's case-insensitive comparison key (RFC 1459 casemapping).
fn fold(name: &str) -> String {
    name.chars()
        .map(|c| match c {
            '[' => '{',
            ']' => '}',
            '\\' => '|',
            '~' => '^',
            c => c.to_ascii_lowercase(),
        })
        .collect()
}

/// The stanza error for an IRC reply refusing a JOIN.
fn join_refusal(resp: Response) -> Option<StanzaError> {
    use switchboard_service::stanza::ErrorType;
    Some(match resp {
        Response::ERR_BANNEDFROMCHAN => StanzaError::forbidden(),
        Response::ERR_INVITEONLYCHAN => StanzaError::new("registration-required", ErrorType::Auth),
        Response::ERR_BADCHANNELKEY => StanzaError::new("not-authorized", ErrorType::Auth),
        Response::ERR_CHANNELISFULL => StanzaError::service_unavailable(),
        Response::ERR_NOSUCHCHANNEL | Response::ERR_TOOMANYCHANNELS => {
            StanzaError::new("item-not-found", ErrorType::Cancel)
        }
        _ => return None,
    })
}

/// The state of one connection.
struct State {
    host: String,
    server: String,
    user: String,
    nick: String,
    registered: bool,
    /// Whether a resource ever joined: a connection whose channels are all
    /// gone after that has nothing left to do.
    used: bool,
    /// Set when the server refused us for good (an unusable nick).
    fatal: Option<String>,
    channels: HashMap<String, Channel>,
    out: Outbox,
    lines: Vec<String>,
    /// The user's settings for this server, until sign-on starts.
    profile: Option<Profile>,
    /// PASS, SASL and NickServ ([`signon`]).
    signon: Option<SignOn>,
}

/// Starts a connection task; it tells `done` its key when it ends. A nick
/// in `profile` (the user's settings) is used instead of `nick`.
#[allow(clippy::too_many_arguments)]
pub fn spawn(
    key: Key,
    service_host: String,
    addr: (String, u16),
    tls: Option<Arc<rustls::ClientConfig>>,
    nick: String,
    profile: Profile,
    out: Outbox,
    done: mpsc::Sender<Key>,
) -> mpsc::Sender<ToIrc> {
    let (tx, mut rx) = mpsc::channel(256);
    tokio::spawn(async move {
        let mut state = State {
            host: service_host,
            server: key.1.clone(),
            user: key.0.clone(),
            nick: profile.nick.clone().unwrap_or(nick),
            registered: false,
            used: false,
            fatal: None,
            channels: HashMap::new(),
            out,
            lines: Vec::new(),
            profile: Some(profile),
            signon: None,
        };
        let why = match run(&mut state, addr, tls, &mut rx).await {
            Ok(()) => "the connection ended".to_string(),
            Err(e) => {
                tracing::info!(user = %state.user, server = %state.server, "IRC connection ended: {e}");
                e.to_string()
            }
        };
        // Joins still queued fail with the rest: close the queue first so
        // that nothing more can arrive (the service then starts a new
        // connection), then take what is in it.
        rx.close();
        while let Ok(req) = rx.try_recv() {
            if let ToIrc::Join {
                channel,
                nick,
                full,
            } = req
            {
                state
                    .channels
                    .entry(fold(&channel))
                    .or_insert_with(|| Channel::new(&channel))
                    .resources
                    .insert(full, nick);
            }
        }
        state.closed(&why).await;
        let _ = done.send(key).await;
    });
    tx
}

async fn run(
    st: &mut State,
    addr: (String, u16),
    tls: Option<Arc<rustls::ClientConfig>>,
    rx: &mut mpsc::Receiver<ToIrc>,
) -> std::io::Result<()> {
    let sock = TcpStream::connect((addr.0.as_str(), addr.1)).await?;
    let (rd, mut wr): (Reader, Writer) = match tls {
        None => {
            let (rd, wr) = sock.into_split();
            (Box::new(rd), Box::new(wr))
        }
        Some(config) => {
            let name = ServerName::try_from(addr.0.clone()).map_err(std::io::Error::other)?;
            let stream = TlsConnector::from(config).connect(name, sock).await?;
            let (rd, wr) = tokio::io::split(stream);
            (Box::new(rd), Box::new(wr))
        }
    };
    let mut rd = BufReader::new(rd);
    st.sign_on().await;
    let mut buf = Vec::with_capacity(1024);
    loop {
        if !st.lines.is_empty() {
            let mut bytes = Vec::new();
            for l in st.lines.drain(..) {
                bytes.extend_from_slice(l.as_bytes());
                bytes.extend_from_slice(b"\r\n");
            }
            wr.write_all(&bytes).await?;
        }
        if let Some(why) = st.fatal.take() {
            let _ = wr.write_all(b"QUIT\r\n").await;
            return Err(std::io::Error::other(why));
        }
        if st.used && st.channels.is_empty() {
            let _ = wr.write_all(b"QUIT :left every channel\r\n").await;
            return Ok(());
        }
        tokio::select! {
            req = rx.recv() => match req {
                Some(r) => st.request(r).await,
                None => {
                    let _ = wr.write_all(b"QUIT :gateway shutting down\r\n").await;
                    return Ok(());
                }
            },
            line = read_line(&mut rd, &mut buf) => {
                match line? {
                    None => return Err(std::io::Error::other("the server closed the connection")),
                    Some(None) => {} // too long: dropped
                    Some(Some(bytes)) => {
                        let line = text::decode(&bytes);
                        match line.parse::<Message>() {
                            Ok(m) => st.incoming(m).await,
                            Err(e) => tracing::debug!(server = %st.server, "unparsable IRC line: {e}"),
                        }
                    }
                }
            }
        }
    }
}

/// Reads one line without its CR LF. `None` at end of stream,
/// `Some(None)` for a line longer than [`MAX_LINE`] (skipped).
async fn read_line<R: tokio::io::AsyncBufRead + Unpin>(
    rd: &mut R,
    buf: &mut Vec<u8>,
) -> std::io::Result<Option<Option<Vec<u8>>>> {
    buf.clear();
    let mut too_long = false;
    loop {
        let chunk = rd.fill_buf().await?;
        if chunk.is_empty() {
            return Ok(None);
        }
        let (take, end) = match chunk.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (chunk.len(), false),
        };
        if !too_long {
            buf.extend_from_slice(&chunk[..take]);
            if buf.len() > MAX_LINE + 2 {
                too_long = true;
                buf.clear();
            }
        }
        rd.consume(take);
        if end {
            if too_long {
                return Ok(Some(None));
            }
            while matches!(buf.last(), Some(b'\n' | b'\r')) {
                buf.pop();
            }
            return Ok(Some(Some(std::mem::take(buf))));
        }
    }
}

impl State {
    fn send(&mut self, line: String) {
        tracing::debug!(user = %self.user, server = %self.server, "IRC → {}", signon::mask(&line));
        self.lines.push(line);
    }

    /// The opening lines: PASS, NICK and USER with the user's settings
    /// (the username defaults to the JID's local part, the real name to
    /// the bare JID), and SASL's CAP LS before them.
    async fn sign_on(&mut self) {
        let profile = self.profile.take().unwrap_or_default();
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
        self.sign_on_step(step).await;
    }

    /// Sends a sign-on step's lines, and its sentence to the user's
    /// resources from the IRC server's JID.
    async fn sign_on_step(&mut self, step: signon::Step) {
        for l in step.lines {
            self.send(l);
        }
        if let Some(text) = step.notice {
            let from = server_jid(&self.server, &self.host);
            let resources: BTreeSet<String> = self
                .channels
                .values()
                .flat_map(|c| c.resources.keys().cloned())
                .collect();
            for r in resources {
                self.emit(muc::chat(&from, &r, &text)).await;
            }
        }
    }

    async fn emit(&self, stanza: Element) {
        let _ = self.out.send(stanza).await;
    }

    fn room(&self, channel: &str) -> String {
        room_jid(channel, &self.server, &self.host)
    }

    fn occupant(&self, channel: &str, nick: &str) -> String {
        occupant_jid(channel, &self.server, &self.host, nick)
    }

    async fn request(&mut self, req: ToIrc) {
        match req {
            ToIrc::Join {
                channel,
                nick,
                full,
            } => {
                // The connection's nick is the one its first join asked
                // for; later joins get the nick the connection has (and
                // status 210 saying so).
                self.used = true;
                let k = fold(&channel);
                let existing = self.channels.contains_key(&k);
                let ch = self
                    .channels
                    .entry(k.clone())
                    .or_insert_with(|| Channel::new(&channel));
                let again = ch.resources.insert(full.clone(), nick).is_some();
                let joined = ch.joined;
                if !existing {
                    if self.registered {
                        self.send(format!("JOIN {channel}"));
                    }
                } else if joined && again {
                    // A presence update from a resource already in the
                    // room: the room answers with its own presence only.
                    let ch = &self.channels[&k];
                    let me = self.occupant(&ch.name, &self.nick);
                    self.emit(muc::occupant(&me, &full, ch.own_rank, true))
                        .await;
                } else if joined {
                    self.replay(&k, &full).await;
                }
            }
            ToIrc::Leave { channel, full } => {
                let k = fold(&channel);
                let Some(ch) = self.channels.get_mut(&k) else {
                    return;
                };
                if ch.resources.remove(&full).is_none() {
                    return;
                }
                let name = ch.name.clone();
                let last = ch.resources.is_empty();
                let me = self.occupant(&name, &self.nick);
                self.emit(muc::gone(&me, &full, true, false, None)).await;
                if last {
                    self.channels.remove(&k);
                    self.send(format!("PART {name}"));
                }
            }
            ToIrc::Say {
                channel,
                full,
                body,
            } => {
                let k = fold(&channel);
                let Some(ch) = self.channels.get(&k) else {
                    return;
                };
                if !ch.resources.contains_key(&full) {
                    return;
                }
                let name = ch.name.clone();
                let resources: Vec<String> = ch.resources.keys().cloned().collect();
                for piece in text::to_irc(&body, &name, &self.nick) {
                    self.send(format!("PRIVMSG {name} :{piece}"));
                }
                // XEP-0045 §7.4: the room reflects the message to every
                // occupant, the sender's resources included.
                let me = self.occupant(&name, &self.nick);
                for r in resources {
                    self.emit(muc::groupchat(&me, &r, &body)).await;
                }
            }
            ToIrc::Topic {
                channel,
                full,
                subject,
            } => {
                let k = fold(&channel);
                let Some(ch) = self.channels.get(&k) else {
                    return;
                };
                if !ch.resources.contains_key(&full) {
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
            ToIrc::Private { nick, body } => {
                for piece in text::to_irc(&body, &nick, &self.nick) {
                    self.send(format!("PRIVMSG {nick} :{piece}"));
                }
            }
        }
    }

    /// A second resource joining a room already joined: the occupants,
    /// its own presence, the subject.
    async fn replay(&self, k: &str, full: &str) {
        let ch = &self.channels[k];
        for (nick, rank) in &ch.occupants {
            if fold(nick) != fold(&self.nick) {
                self.emit(muc::occupant(
                    &self.occupant(&ch.name, nick),
                    full,
                    *rank,
                    false,
                ))
                .await;
            }
        }
        let mut own = muc::occupant(
            &self.occupant(&ch.name, &self.nick),
            full,
            ch.own_rank,
            true,
        );
        if ch.resources.get(full).is_some_and(|n| *n != self.nick) {
            muc::add_status(&mut own, "210");
        }
        self.emit(own).await;
        self.emit(muc::subject(&self.room(&ch.name), full, &ch.topic))
            .await;
    }

    fn is_me(&self, nick: &str) -> bool {
        fold(nick) == fold(&self.nick)
    }

    async fn to_room(&self, k: &str, stanza: impl Fn(&str) -> Element) {
        if let Some(ch) = self.channels.get(k) {
            for r in ch.resources.keys() {
                self.emit(stanza(r)).await;
            }
        }
    }

    async fn incoming(&mut self, m: Message) {
        tracing::debug!(user = %self.user, server = %self.server, "IRC ← {}", signon::mask(m.to_string().trim_end()));
        if let Some(step) = self.signon.as_mut().and_then(|s| s.handle(&m)) {
            self.sign_on_step(step).await;
            return;
        }
        let source = match &m.prefix {
            Some(Prefix::Nickname(n, _, _)) => n.clone(),
            Some(Prefix::ServerName(s)) => s.clone(),
            None => String::new(),
        };
        match m.command {
            Command::PING(a, b) => match b {
                Some(b) => self.send(format!("PONG {a} {b}")),
                None => self.send(format!("PONG :{a}")),
            },
            Command::Response(Response::RPL_WELCOME, args) => {
                if let Some(n) = args.first() {
                    self.nick = n.clone();
                }
                self.registered = true;
                // NickServ IDENTIFY before the joins, so that channels
                // that look at the account see it as early as possible.
                if let Some(step) = self.signon.as_mut().map(SignOn::welcomed) {
                    self.sign_on_step(step).await;
                }
                let names: Vec<String> = self.channels.values().map(|c| c.name.clone()).collect();
                for n in names {
                    self.send(format!("JOIN {n}"));
                }
            }
            Command::Response(Response::ERR_ERRONEOUSNICKNAME, _) if !self.registered => {
                self.fatal = Some(format!("the server refuses the nick {}", self.nick));
            }
            Command::Response(Response::ERR_NICKNAMEINUSE, _) if !self.registered => {
                self.nick.push('_');
                let nick = self.nick.clone();
                self.send(format!("NICK {nick}"));
            }
            Command::Response(resp, args) if join_refusal(resp).is_some() => {
                let Some(chan) = args.get(1) else { return };
                let Some(ch) = self.channels.remove(&fold(chan)) else {
                    return;
                };
                let text = args.last().map(|t| text::strip_formatting(t));
                let mut err = join_refusal(resp).expect("checked above");
                if let Some(t) = text {
                    err = err.with_text(format!("{}: {t}", ch.name));
                }
                for (r, nick) in &ch.resources {
                    let from = occupant_jid(&ch.name, &self.server, &self.host, nick);
                    self.emit(muc::join_error(&from, r, err.clone())).await;
                }
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
                    let me = self.nick.clone();
                    if let Some(ch) = self.channels.get_mut(&fold(chan)) {
                        if !ch.joined {
                            for entry in names.split_whitespace() {
                                let (nick, rank) = muc::parse_name(entry);
                                if fold(&nick) == fold(&me) {
                                    ch.own_rank = rank;
                                }
                                ch.occupants.insert(nick, rank);
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
                    let resources: Vec<String> = ch.resources.keys().cloned().collect();
                    for r in resources {
                        self.replay(&k, &r).await;
                    }
                }
            }
            Command::JOIN(chan, _, _) => {
                let k = fold(&chan);
                if self.is_me(&source) {
                    return; // NAMES follows
                }
                let Some(ch) = self.channels.get_mut(&k) else {
                    return;
                };
                ch.occupants.insert(source.clone(), Rank::NONE);
                if !ch.joined {
                    return;
                }
                let name = ch.name.clone();
                let from = self.occupant(&name, &source);
                self.to_room(&k, |r| muc::occupant(&from, r, Rank::NONE, false))
                    .await;
            }
            Command::PART(chan, reason) => {
                let k = fold(&chan);
                if self.is_me(&source) {
                    // We asked for it (the last resource left), or the
                    // server made us: tell any resources still there.
                    if let Some(ch) = self.channels.remove(&k) {
                        let me = self.occupant(&ch.name, &self.nick);
                        for r in ch.resources.keys() {
                            self.emit(muc::gone(&me, r, true, false, reason.as_deref()))
                                .await;
                        }
                    }
                    return;
                }
                let reason = reason.map(|r| text::strip_formatting(&r));
                self.occupant_left(&k, &source, reason.as_deref()).await;
            }
            Command::QUIT(reason) => {
                let reason = reason.map(|r| text::strip_formatting(&r));
                let keys: Vec<String> = self.channels.keys().cloned().collect();
                for k in keys {
                    self.occupant_left(&k, &source, reason.as_deref()).await;
                }
            }
            Command::KICK(chan, victim, reason) => {
                let k = fold(&chan);
                let reason = reason.map(|r| text::strip_formatting(&r));
                if self.is_me(&victim) {
                    if let Some(ch) = self.channels.remove(&k) {
                        let me = self.occupant(&ch.name, &self.nick);
                        for r in ch.resources.keys() {
                            self.emit(muc::gone(&me, r, true, true, reason.as_deref()))
                                .await;
                        }
                    }
                    return;
                }
                let Some(ch) = self.channels.get_mut(&k) else {
                    return;
                };
                if ch.occupants.remove(&victim).is_none() {
                    return;
                }
                let name = ch.name.clone();
                let from = self.occupant(&name, &victim);
                self.to_room(&k, |r| muc::gone(&from, r, false, true, reason.as_deref()))
                    .await;
            }
            Command::PRIVMSG(target, msg) => {
                let Some(body) = text::from_irc(&msg) else {
                    return;
                };
                if body.is_empty() {
                    return;
                }
                let k = fold(&target);
                if let Some(ch) = self.channels.get(&k) {
                    let from = self.occupant(&ch.name, &source);
                    self.to_room(&k, |r| muc::groupchat(&from, r, &body)).await;
                } else if self.is_me(&target) {
                    let from = user_jid(&source, &self.server, &self.host);
                    let resources: BTreeSet<String> = self
                        .channels
                        .values()
                        .flat_map(|c| c.resources.keys().cloned())
                        .collect();
                    for r in resources {
                        self.emit(muc::chat(&from, &r, &body)).await;
                    }
                }
            }
            Command::NICK(new) => {
                let own = self.is_me(&source);
                if own {
                    self.nick = new.clone();
                }
                let keys: Vec<String> = self.channels.keys().cloned().collect();
                for k in keys {
                    let Some(ch) = self.channels.get_mut(&k) else {
                        continue;
                    };
                    let Some(rank) = ch.occupants.remove(&source) else {
                        continue;
                    };
                    ch.occupants.insert(new.clone(), rank);
                    if !ch.joined {
                        continue;
                    }
                    let name = ch.name.clone();
                    let old_jid = self.occupant(&name, &source);
                    let new_jid = self.occupant(&name, &new);
                    self.to_room(&k, |r| muc::nick_change(&old_jid, r, rank, &new, own))
                        .await;
                    self.to_room(&k, |r| muc::occupant(&new_jid, r, rank, own))
                        .await;
                }
            }
            Command::TOPIC(chan, Some(topic)) => {
                let k = fold(&chan);
                let topic = text::strip_formatting(&topic);
                let Some(ch) = self.channels.get_mut(&k) else {
                    return;
                };
                ch.topic = topic.clone();
                let name = ch.name.clone();
                let from = self.occupant(&name, &source);
                self.to_room(&k, |r| muc::subject(&from, r, &topic)).await;
            }
            _ => {}
        }
    }

    async fn occupant_left(&mut self, k: &str, nick: &str, reason: Option<&str>) {
        let Some(ch) = self.channels.get_mut(k) else {
            return;
        };
        if ch.occupants.remove(nick).is_none() {
            return;
        }
        let name = ch.name.clone();
        let from = self.occupant(&name, nick);
        self.to_room(k, |r| muc::gone(&from, r, false, false, reason))
            .await;
    }

    /// The connection is gone: every resource still in a room learns it
    /// left (status 110, "connection to the IRC server lost").
    async fn closed(&mut self, why: &str) {
        let chans: Vec<Channel> = self.channels.drain().map(|(_, c)| c).collect();
        for ch in chans {
            if !ch.joined {
                for (r, nick) in &ch.resources {
                    let from = occupant_jid(&ch.name, &self.server, &self.host, nick);
                    self.emit(muc::join_error(
                        &from,
                        r,
                        StanzaError::remote_server_not_found().with_text(format!(
                            "cannot reach the IRC server {}: {why}",
                            self.server
                        )),
                    ))
                    .await;
                }
                continue;
            }
            let me = occupant_jid(&ch.name, &self.server, &self.host, &self.nick);
            for r in ch.resources.keys() {
                self.emit(muc::gone(
                    &me,
                    r,
                    true,
                    false,
                    Some("the connection to the IRC server was lost"),
                ))
                .await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lines_are_bounded_and_split() {
        let mut data = b"PING :a\r\n".to_vec();
        data.extend(std::iter::repeat_n(b'x', MAX_LINE + 10));
        data.extend_from_slice(b"\r\nPING :b\n");
        let mut rd = BufReader::with_capacity(64, &data[..]);
        let mut buf = Vec::new();
        assert_eq!(
            read_line(&mut rd, &mut buf).await.unwrap(),
            Some(Some(b"PING :a".to_vec()))
        );
        assert_eq!(read_line(&mut rd, &mut buf).await.unwrap(), Some(None));
        assert_eq!(
            read_line(&mut rd, &mut buf).await.unwrap(),
            Some(Some(b"PING :b".to_vec()))
        );
        assert_eq!(read_line(&mut rd, &mut buf).await.unwrap(), None);
    }

    #[test]
    fn casemapping() {
        assert_eq!(fold("#Test[1]"), fold("#test{1}"));
        assert_ne!(fold("#a"), fold("#b"));
    }
}
