//! One IRC connection per (XMPP account, IRC server), shared by the
//! account's resources.
//!
//! A connection is a task owning its socket and its state: the nick the
//! server gave it, and for each channel the user's resources that joined
//! it and the occupants seen there. The service sends it [`ToIrc`]
//! requests; it writes IRC lines, reads the server's, and sends the
//! resulting stanzas straight to the outbox.
//!
//! The task is a reconnect loop around one *session* (one socket):
//!
//! - a session waits for its turn among the sign-ons to its server in
//!   progress ([`link::SIGNONS`] at once), then starts with the sign-on lines (PASS, CAP and SASL,
//!   NICK, USER: [`crate::signon`], from the user's settings) and must
//!   see the welcome (001) within [`link::REGISTRATION_TIMEOUT`];
//! - a silent server gets our own PING after [`link::PING_AFTER`] and is
//!   dropped when nothing arrives within [`link::PONG_WAIT`] more;
//! - a line longer than [`MAX_LINE`] without its CR LF drops the session
//!   (it is never buffered whole), and only this user's;
//! - outgoing lines wait in a queue behind a token bucket
//!   ([`link::TokenBucket`]): requests from the service are always taken
//!   at once, so the service never waits on a flood-limited server, and
//!   no line is dropped (beyond [`MAX_QUEUED`] waiting lines, new
//!   messages are refused with an error instead);
//! - when a session that was registered drops, the user's resources get
//!   an unavailable presence in each room and a message from the server's
//!   JID, and the task reconnects with backoff ([`link::Backoff`]); after
//!   the welcome it rejoins every channel, and the resources get the join
//!   presences again. A connection that never registered fails its joins
//!   instead, as does one whose attempts are spent.
//!
//! When the last resource leaves the last channel the connection QUITs and
//! ends (a deliberate QUIT is never followed by a reconnection); the
//! service learns it through the `done` channel and forgets it.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use irc_proto::{Command, Message, Prefix, Response};
use rustls::pki_types::ServerName;
use switchboard_service::stanza::{error_reply, iq_result, ErrorType, StanzaError};
use switchboard_service::Outbox;
use switchboard_xml::Element;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_rustls::TlsConnector;

use crate::address::{occupant_jid, room_jid, server_jid, user_jid};
use crate::link::{self, Backoff, TokenBucket};
use crate::modes::{self, ServerModes};
use crate::muc::{self, Rank};
use crate::signon::{self, Profile, SignOn};
use crate::text;

/// The longest line read from a server: 512 bytes plus the 8191 bytes
/// IRCv3 allows for message tags.
pub const MAX_LINE: usize = 512 + 8191;

/// How long a session must have been up for the next drop to count as a
/// new outage, with reconnection delays starting over from the first.
const STABLE: Duration = Duration::from_secs(60);

/// How many lines may wait for the flood control before new messages are
/// refused (at one line per 2 s, over half an hour of sending).
pub const MAX_QUEUED: usize = 1000;

type Reader = Box<dyn AsyncRead + Send + Unpin>;
type Writer = Box<dyn AsyncWrite + Send + Unpin>;

/// What an ending connection tells the service: its key, and the stanzas
/// that reached it too late (a join just after the last leave) to be
/// handled again, by a new connection.
pub type Done = (Key, Vec<Element>);

/// The user's settings for the server, still being read: the connection
/// task awaits them before it connects.
pub type ProfileLoad =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<Profile, StanzaError>> + Send>>;

/// Which connection: the user's bare JID and the IRC server's name.
pub type Key = (String, String);

/// Where a connection goes.
#[derive(Debug, Clone)]
pub struct Target {
    pub host: String,
    pub port: u16,
    /// The TLS config, or `None` for plain text.
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// Whether this is the admin's default server: its users' JIDs then
    /// take the short form (`nick@irc.example.org`).
    pub default: bool,
    /// The outgoing flood control.
    pub flood: crate::config::Flood,
    /// Sign-ons to this server in progress at once, shared by every
    /// connection to it.
    pub signons: Arc<tokio::sync::Semaphore>,
}

/// What the service asks of a connection.
#[derive(Debug)]
pub enum ToIrc {
    /// The user's resource `full` joins `channel` (nick wanted: `nick`);
    /// `short` when it wrote the default server's short room address.
    Join {
        channel: String,
        nick: String,
        full: String,
        short: bool,
    },
    /// The resource `full` leaves `channel`.
    Leave { channel: String, full: String },
    /// A groupchat message from `full` to `channel`.
    Say {
        channel: String,
        full: String,
        body: String,
    },
    /// A private message from `full` to an IRC user.
    Private {
        nick: String,
        full: String,
        body: String,
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

struct Channel {
    /// The name as the user wrote it.
    name: String,
    /// The server as the room's JID names it: the server's name, or empty
    /// for the default server's short form.
    via: String,
    /// The user's resources in the room, with the nick each asked for.
    resources: BTreeMap<String, String>,
    /// Occupants (nick → status modes such as `"ov"`), once NAMES started.
    occupants: BTreeMap<String, String>,
    /// Whether the channel is moderated (`+m`): no status means visitor.
    moderated: bool,
    /// Whether the join is complete (end of NAMES seen).
    joined: bool,
    topic: String,
}

impl Channel {
    fn new(name: &str, via: String) -> Channel {
        Channel {
            name: name.to_string(),
            via,
            resources: BTreeMap::new(),
            occupants: BTreeMap::new(),
            moderated: false,
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

/// The stanza error for an IRC numeric refusing a JOIN (XEP-0045 §7.2.6
/// ff.), `None` for other numerics.
fn join_refusal(code: u16) -> Option<StanzaError> {
    Some(match code {
        // Banned (+b).
        474 => StanzaError::forbidden(),
        // Invite only (+i), or registered nicks only (+R, "477" on most
        // servers): the room's members only.
        473 | 477 => StanzaError::new("registration-required", ErrorType::Auth),
        // Wrong or missing key (+k).
        475 => StanzaError::new("not-authorized", ErrorType::Auth),
        // Full (+l).
        471 => StanzaError::service_unavailable(),
        // Nick in use or held (the nick is the occupant's).
        433 | 437 => StanzaError::new("conflict", ErrorType::Cancel),
        // TLS users only (+z), IRC operators only (+O).
        489 | 520 => StanzaError::not_allowed(),
        403 => StanzaError::new("item-not-found", ErrorType::Cancel),
        476 => StanzaError::jid_malformed(),
        405 => StanzaError::new("resource-constraint", ErrorType::Wait),
        _ => return None,
    })
}

/// The state of one connection, kept across its sessions.
struct State {
    host: String,
    server: String,
    user: String,
    nick: String,
    /// The server as users' JIDs name it ("" for the short form).
    user_via: String,
    /// Whether the current session saw the welcome.
    registered: bool,
    /// When it did.
    welcomed_at: Option<Instant>,
    /// The server's ERROR line in this session, if any.
    last_error: Option<String>,
    /// Whether any session did: a connection that never worked fails its
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
    /// When the last private message went either way.
    last_private: Option<Instant>,
    /// Lines for after the welcome: private messages written while the
    /// first session was still signing on.
    held: Vec<String>,
    channels: HashMap<String, Channel>,
    out: Outbox,
    /// Lines waiting for the flood control, in order.
    queue: VecDeque<String>,
    /// Lines that skip it: PONG, our PING, the sign-on lines.
    urgent: Vec<String>,
    bucket: TokenBucket,
    /// What the server's ISUPPORT said about modes.
    modes: ServerModes,
    /// The user's settings for this server, read when the connection
    /// started; every session signs on with them.
    profile: Profile,
    /// The current session's PASS, SASL and NickServ steps ([`signon`]).
    signon: Option<SignOn>,
}

/// How a session ended.
enum End {
    /// We quit: the last resource left, or the service is going away.
    Quit,
    /// The link failed or the server dropped us: worth reconnecting.
    Dropped(String),
    /// The server refused us for a reason retrying does not fix.
    Fatal(String),
}

/// Starts a connection task; it tells `done` its key when it ends. A nick
/// in `profile` (the user's settings) is used instead of `nick`.
pub fn spawn(
    key: Key,
    service_host: String,
    target: Target,
    nick: String,
    profile: ProfileLoad,
    out: Outbox,
    done: mpsc::Sender<Done>,
) -> mpsc::Sender<ToIrc> {
    let (tx, mut rx) = mpsc::channel(256);
    tokio::spawn(async move {
        // Requests wait in the queue meanwhile.
        let (profile, unreadable) = match profile.await {
            Ok(p) => (p, None),
            Err(e) => (Profile::default(), Some(e)),
        };
        let mut state = State {
            host: service_host,
            server: key.1.clone(),
            user: key.0.clone(),
            nick: profile.nick.clone().unwrap_or(nick),
            user_via: if target.default {
                String::new()
            } else {
                key.1.clone()
            },
            registered: false,
            welcomed_at: None,
            last_error: None,
            ever_registered: false,
            used: false,
            fatal: None,
            renaming: None,
            chatting: BTreeSet::new(),
            last_private: None,
            held: Vec::new(),
            channels: HashMap::new(),
            out,
            queue: VecDeque::new(),
            urgent: Vec::new(),
            bucket: TokenBucket::with(target.flood.burst, target.flood.interval, Instant::now()),
            modes: ServerModes::default(),
            profile,
            signon: None,
        };
        let ended = match unreadable {
            // No sign-on without the user's settings: the joins fail, in
            // the words of the error that says why.
            Some(e) => Err(e
                .text
                .unwrap_or_else(|| "your IRC settings cannot be read".into())),
            None => run(&mut state, &target, &mut rx).await,
        };
        // Close the queue first so that nothing more can arrive (the
        // service then starts a new connection), then take what is in it.
        rx.close();
        let why = match ended {
            Ok(()) => {
                // We quit (the last room was left) while a join or a
                // private message was on its way: it goes back to the
                // service, which opens a new connection for it.
                let mut again = Vec::new();
                while let Ok(req) = rx.try_recv() {
                    again.extend(state.as_stanza(req));
                }
                state.closed("the connection ended").await;
                let _ = done.send((key, again)).await;
                return;
            }
            Err(e) => {
                tracing::info!(user = %state.user, server = %state.server, "IRC connection ended: {e}");
                e
            }
        };
        // Joins still queued fail with the rest.
        while let Ok(req) = rx.try_recv() {
            if let ToIrc::Join {
                channel,
                nick,
                full,
                short,
            } = req
            {
                let via = state.via(short);
                state
                    .channels
                    .entry(fold(&channel))
                    .or_insert_with(|| Channel::new(&channel, via))
                    .resources
                    .insert(full, nick);
            }
        }
        state.closed(&why).await;
        let _ = done.send((key, Vec::new())).await;
    });
    tx
}

/// The reconnect loop: sessions until one ends for good.
async fn run(
    st: &mut State,
    target: &Target,
    rx: &mut mpsc::Receiver<ToIrc>,
) -> Result<(), String> {
    let mut backoff = Backoff::default();
    // Whether the users were told of the current outage.
    let mut told = false;
    loop {
        let why = match session(st, target, rx).await {
            End::Quit => return Ok(()),
            End::Fatal(why) => return Err(why),
            End::Dropped(why) => why,
        };
        if !st.ever_registered {
            return Err(why);
        }
        if st.registered {
            // That session worked: the users were back in their rooms and
            // must hear of this outage too. The delays start over only if
            // it also lasted: a server that welcomes and then drops us at
            // once (a ban) must not be hammered every second.
            told = false;
            if st.welcomed_at.is_some_and(|t| t.elapsed() >= STABLE) {
                backoff.reset();
            }
        }
        let Some(delay) = backoff.next(link::jitter()) else {
            return Err(format!(
                "gave up after {} attempts to reconnect: {why}",
                Backoff::ATTEMPTS
            ));
        };
        tracing::info!(user = %st.user, server = %st.server, "IRC connection lost ({why}); reconnecting in {delay:?}");
        if !told {
            st.dropped(&why, delay).await;
            told = true;
        }
        st.registered = false;
        if !wait(st, rx, delay).await {
            return Ok(());
        }
    }
}

/// Waits `delay` before the next attempt, still taking requests (joins
/// are kept for the rejoin, leaves forgotten). `false` when there is
/// nothing left to reconnect for.
async fn wait(st: &mut State, rx: &mut mpsc::Receiver<ToIrc>, delay: Duration) -> bool {
    let until = Instant::now() + delay;
    loop {
        if st.used && st.channels.is_empty() {
            return false;
        }
        tokio::select! {
            _ = tokio::time::sleep_until(until) => return true,
            req = rx.recv() => match req {
                Some(r) => st.request(r).await,
                None => return false,
            },
        }
    }
}

/// Opens the socket, TLS included.
async fn open(target: &Target) -> std::io::Result<(Reader, Writer)> {
    let sock = TcpStream::connect((target.host.as_str(), target.port)).await?;
    Ok(match &target.tls {
        None => {
            let (rd, wr) = sock.into_split();
            (Box::new(rd), Box::new(wr))
        }
        Some(config) => {
            let name = ServerName::try_from(target.host.clone()).map_err(std::io::Error::other)?;
            let stream = TlsConnector::from(config.clone())
                .connect(name, sock)
                .await?;
            let (rd, wr) = tokio::io::split(stream);
            (Box::new(rd), Box::new(wr))
        }
    })
}

/// Writes the urgent lines, then as many queued lines as the bucket
/// allows.
async fn flush(st: &mut State, wr: &mut Writer) -> std::io::Result<()> {
    let mut bytes = Vec::new();
    let now = Instant::now();
    let queued = std::iter::from_fn(|| {
        (!st.queue.is_empty() && st.bucket.try_take(now))
            .then(|| st.queue.pop_front())
            .flatten()
    });
    let lines: Vec<String> = st.urgent.drain(..).collect::<Vec<_>>();
    for l in lines.into_iter().chain(queued.collect::<Vec<_>>()) {
        bytes.extend_from_slice(l.as_bytes());
        bytes.extend_from_slice(b"\r\n");
    }
    if !bytes.is_empty() {
        wr.write_all(&bytes).await?;
        wr.flush().await?;
    }
    Ok(())
}

async fn quit(wr: &mut Writer, why: &str) {
    let _ = wr.write_all(format!("QUIT :{why}\r\n").as_bytes()).await;
    let _ = wr.flush().await;
}

/// One socket, from connecting to its end.
async fn session(st: &mut State, target: &Target, rx: &mut mpsc::Receiver<ToIrc>) -> End {
    st.registered = false;
    st.welcomed_at = None;
    st.last_error = None;
    st.queue.clear();
    st.urgent.clear();
    st.modes = ServerModes::default();
    // A turn among the sign-ons to this server first: a thousand users
    // coming back at once (after a restart) would otherwise overflow the
    // server's listen backlog and its connection throttles, and the
    // registration timeout would fire on connections still in the queue.
    let Ok(mut turn) = target.signons.clone().acquire_owned().await.map(Some) else {
        return End::Fatal("the transport is shutting down".into());
    };
    let deadline = Instant::now() + link::REGISTRATION_TIMEOUT;
    let (rd, mut wr) = match tokio::time::timeout_at(deadline, open(target)).await {
        Err(_) => return End::Dropped("no connection within the registration timeout".into()),
        Ok(Err(e)) => return End::Dropped(e.to_string()),
        Ok(Ok(pair)) => pair,
    };
    let mut rd = BufReader::new(rd);
    st.sign_on().await;
    let mut buf = Vec::with_capacity(1024);
    let mut heard = Instant::now();
    let mut pinged = false;
    loop {
        if st.registered {
            turn.take();
        }
        if let Err(e) = flush(st, &mut wr).await {
            return End::Dropped(e.to_string());
        }
        if let Some(why) = st.fatal.take() {
            quit(&mut wr, "").await;
            return End::Fatal(why);
        }
        // Lines still queued (the PART of the last channel, messages
        // before it) go out first: nothing is dropped for the flood
        // control, even at the end.
        if st.used && st.channels.is_empty() && st.queue.is_empty() && !st.chat_alive() {
            quit(&mut wr, "left every channel").await;
            return End::Quit;
        }
        // A connection kept only for private messages wakes up when the
        // chat has been quiet long enough to end.
        let chat_end = st
            .last_private
            .filter(|_| st.channels.is_empty())
            .map(|t| t + link::PRIVATE_IDLE);
        let alarm = if !st.registered {
            deadline
        } else if pinged {
            heard + link::PING_AFTER + link::PONG_WAIT
        } else {
            heard + link::PING_AFTER
        };
        let token = (!st.queue.is_empty()).then(|| st.bucket.ready_at(Instant::now()));
        tokio::select! {
            req = rx.recv() => match req {
                Some(r) => st.request(r).await,
                None => {
                    quit(&mut wr, "gateway shutting down").await;
                    return End::Quit;
                }
            },
            line = read_line(&mut rd, &mut buf) => {
                heard = Instant::now();
                pinged = false;
                match line {
                    Err(e) => return End::Dropped(e.to_string()),
                    Ok(None) => {
                        return End::Dropped(match st.last_error.take() {
                            Some(e) => format!("the server closed the connection: {e}"),
                            None => "the server closed the connection".into(),
                        })
                    }
                    Ok(Some(bytes)) => {
                        let line = text::decode(&bytes);
                        match line.parse::<Message>() {
                            Ok(m) => st.incoming(m, &line).await,
                            Err(e) => tracing::debug!(server = %st.server, "unparsable IRC line: {e}"),
                        }
                    }
                }
            }
            _ = tokio::time::sleep_until(alarm) => {
                if !st.registered {
                    return End::Dropped(format!(
                        "no welcome from the server within {} s",
                        link::REGISTRATION_TIMEOUT.as_secs()
                    ));
                }
                if pinged {
                    return End::Dropped(format!(
                        "no answer to PING within {} s",
                        link::PONG_WAIT.as_secs()
                    ));
                }
                st.urgent.push("PING :switchboard".into());
                pinged = true;
            }
            _ = tokio::time::sleep_until(token.unwrap_or(alarm)), if token.is_some() => {}
            _ = tokio::time::sleep_until(chat_end.unwrap_or(alarm)), if chat_end.is_some() => {}
        }
    }
}

/// Reads one line without its CR LF; `None` at end of stream. A line
/// longer than [`MAX_LINE`] is an error (the caller drops the link): it
/// is never buffered whole.
///
/// Cancel-safe: a partial line stays in `buf` for the next call, so the
/// caller may race this against timers and requests.
async fn read_line<R: tokio::io::AsyncBufRead + Unpin>(
    rd: &mut R,
    buf: &mut Vec<u8>,
) -> std::io::Result<Option<Vec<u8>>> {
    loop {
        let chunk = rd.fill_buf().await?;
        if chunk.is_empty() {
            return Ok(None);
        }
        let (take, end) = match chunk.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (chunk.len(), false),
        };
        if buf.len() + take > MAX_LINE + 2 {
            buf.clear();
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("the server sent a line longer than {MAX_LINE} bytes"),
            ));
        }
        buf.extend_from_slice(&chunk[..take]);
        rd.consume(take);
        if end {
            while matches!(buf.last(), Some(b'\n' | b'\r')) {
                buf.pop();
            }
            return Ok(Some(std::mem::take(buf)));
        }
    }
}

impl State {
    /// Queues a line behind the flood control. Before the welcome only
    /// sign-on lines are sent (joins and messages wait for it): they skip
    /// the bucket, since a server expects them at once and they are few,
    /// and the session starts with its full burst.
    fn send(&mut self, line: String) {
        tracing::debug!(user = %self.user, server = %self.server, "IRC → {}", signon::mask(&line));
        if self.registered {
            self.queue.push_back(line);
        } else {
            self.urgent.push(line);
        }
    }

    /// Starts a session's sign-on: PASS, CAP LS for SASL, NICK and USER
    /// with the user's settings (the username defaults to the JID's local
    /// part, the real name to the bare JID).
    async fn sign_on(&mut self) {
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
        self.sign_on_step(step).await;
    }

    /// Sends a sign-on step's lines, and its sentence to the user's
    /// resources from the IRC server's JID.
    async fn sign_on_step(&mut self, step: signon::Step) {
        for l in step.lines {
            self.send(l);
        }
        if let Some(text) = step.notice {
            let from = self.server_jid();
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

    /// A request as the stanza that made it, to be handled again (joins
    /// and private messages; the rest means nothing without the room).
    fn as_stanza(&self, req: ToIrc) -> Option<Element> {
        match req {
            ToIrc::Join {
                channel,
                nick,
                full,
                short,
            } => Some(
                Element::new("presence", switchboard_xml::ns::CLIENT)
                    .with_attr("from", full)
                    .with_attr(
                        "to",
                        occupant_jid(&channel, &self.via(short), &self.host, &nick),
                    )
                    .with_child(Element::new("x", muc::MUC)),
            ),
            ToIrc::Private { nick, full, body } => Some(
                Element::new("message", switchboard_xml::ns::CLIENT)
                    .with_attr("from", full)
                    .with_attr("to", self.user(&nick))
                    .with_attr("type", "chat")
                    .with_child(Element::new("body", switchboard_xml::ns::CLIENT).with_text(body)),
            ),
            _ => None,
        }
    }

    /// The server refused the nick a resource asked for: that resource
    /// gets the error from the occupant JID it asked for, and the room
    /// keeps the nick the connection has.
    async fn nick_refused(&mut self, resp: Response) {
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
        self.emit(muc::join_error(&from, &full, err)).await;
    }

    async fn emit(&self, stanza: Element) {
        let _ = self.out.send(stanza).await;
    }

    /// The server part of a room JID joined in the short form or not.
    fn via(&self, short: bool) -> String {
        if short {
            String::new()
        } else {
            self.server.clone()
        }
    }

    fn room(&self, ch: &Channel) -> String {
        room_jid(&ch.name, &ch.via, &self.host)
    }

    fn occupant(&self, ch: &Channel, nick: &str) -> String {
        occupant_jid(&ch.name, &ch.via, &self.host, nick)
    }

    fn user(&self, nick: &str) -> String {
        user_jid(nick, &self.user_via, &self.host)
    }

    fn server_jid(&self) -> String {
        server_jid(&self.server, &self.host)
    }

    fn rank(&self, ch: &Channel, nick: &str) -> Rank {
        let modes = ch.occupants.get(nick).map_or("", String::as_str);
        self.modes.rank(modes, ch.moderated)
    }

    /// Every resource of the user in any room of this connection.
    fn all_resources(&self) -> BTreeSet<String> {
        self.channels
            .values()
            .flat_map(|c| c.resources.keys().cloned())
            .chain(self.chatting.iter().cloned())
            .collect()
    }

    /// Whether a private conversation still keeps the connection up.
    fn chat_alive(&self) -> bool {
        !self.held.is_empty()
            || self
                .last_private
                .is_some_and(|t| t.elapsed() < link::PRIVATE_IDLE)
    }

    /// A message the link cannot take now: back to the sender as an error.
    async fn refuse(&self, from: &str, to: &str, condition: &'static str, text: String) {
        let err = StanzaError::new(condition, ErrorType::Wait).with_text(text);
        self.emit(muc::message_error(from, to, err)).await;
    }

    /// Whether another message fits in the queue; says so to `to` if not.
    async fn room_in_queue(&self, from: &str, to: &str) -> bool {
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
        )
        .await;
        false
    }

    async fn request(&mut self, req: ToIrc) {
        match req {
            ToIrc::Join {
                channel,
                nick,
                full,
                short,
            } => {
                // The connection's nick is the one its first join asked
                // for; later joins get the nick the connection has (and
                // status 210 saying so).
                self.used = true;
                let k = fold(&channel);
                let existing = self.channels.contains_key(&k);
                let via = self.via(short);
                let ch = self
                    .channels
                    .entry(k.clone())
                    .or_insert_with(|| Channel::new(&channel, via));
                let previous = ch.resources.insert(full.clone(), nick.clone());
                let again = previous.is_some();
                // A different nick than the resource asked for before (not
                // merely than the connection's, which may differ after a
                // 210): the client is changing its nick.
                let renamed = previous.is_some_and(|p| fold(&p) != fold(&nick))
                    && fold(&nick) != fold(&self.nick);
                let joined = ch.joined;
                if !existing {
                    if self.registered {
                        self.send(format!("JOIN {channel}"));
                    }
                } else if joined && renamed {
                    // A presence to a new nick in a room the resource is
                    // in: a nick change (XEP-0045 §7.6). IRC has one nick
                    // per connection, so it changes in every room of this
                    // server; the server's NICK echo brings the 303s.
                    if self.registered {
                        self.renaming = Some((k.clone(), full.clone()));
                        self.send(format!("NICK {nick}"));
                    }
                } else if joined && again {
                    // A presence update from a resource already in the
                    // room: the room answers with its own presence only.
                    let ch = &self.channels[&k];
                    let me = self.occupant(ch, &self.nick);
                    let rank = self.rank(ch, &self.nick);
                    self.emit(muc::occupant(&me, &full, rank, true)).await;
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
                let last = ch.resources.is_empty();
                let ch = &self.channels[&k];
                let me = self.occupant(ch, &self.nick);
                let name = ch.name.clone();
                self.emit(muc::gone(&me, &full, true, false, None)).await;
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
            } => {
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
                    self.refuse(&room, &full, "recipient-unavailable", text)
                        .await;
                    return;
                }
                if !self.room_in_queue(&room, &full).await {
                    return;
                }
                let name = ch.name.clone();
                let resources: Vec<String> = ch.resources.keys().cloned().collect();
                let me = self.occupant(ch, &self.nick);
                for piece in text::to_irc(&body, &name, &self.nick) {
                    self.send(format!("PRIVMSG {name} :{piece}"));
                }
                // XEP-0045 §7.4: the room reflects the message to every
                // occupant, the sender's resources included.
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
            ToIrc::Private { nick, full, body } => {
                let from = self.user(&nick);
                self.used = true;
                self.chatting.insert(full.clone());
                self.last_private = Some(Instant::now());
                if !self.registered && !self.ever_registered {
                    // The connection this message opened is signing on:
                    // the message goes out after the welcome.
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
                    self.refuse(&from, &full, "recipient-unavailable", text)
                        .await;
                    return;
                }
                if !self.room_in_queue(&from, &full).await {
                    return;
                }
                for piece in text::to_irc(&body, &nick, &self.nick) {
                    self.send(format!("PRIVMSG {nick} :{piece}"));
                }
            }
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
                    self.emit(r).await;
                }
            }
            ToIrc::Raw { line, full } => {
                let from = self.server_jid();
                if !self.registered {
                    let text = format!("not connected to {} right now", self.server);
                    self.refuse(&from, &full, "recipient-unavailable", text)
                        .await;
                    return;
                }
                if self.room_in_queue(&from, &full).await {
                    tracing::info!(user = %self.user, server = %self.server, "raw IRC command from an admin");
                    self.send(line);
                }
            }
        }
    }

    /// A resource joining a room already joined (or joined again after a
    /// reconnection): the occupants, its own presence, the subject.
    async fn replay(&self, k: &str, full: &str) {
        let ch = &self.channels[k];
        for nick in ch.occupants.keys() {
            if fold(nick) != fold(&self.nick) {
                self.emit(muc::occupant(
                    &self.occupant(ch, nick),
                    full,
                    self.rank(ch, nick),
                    false,
                ))
                .await;
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
        self.emit(own).await;
        self.emit(muc::subject(&self.room(ch), full, &ch.topic))
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

    /// The occupant whose nick folds like `nick`, as the channel spells it.
    fn find_nick(ch: &Channel, nick: &str) -> Option<String> {
        let f = fold(nick);
        ch.occupants.keys().find(|n| fold(n) == f).cloned()
    }

    /// Sends the presence of each occupant of `k` whose rank differs from
    /// `before`.
    async fn rank_changes(&self, k: &str, before: &BTreeMap<String, Rank>) {
        let Some(ch) = self.channels.get(k) else {
            return;
        };
        if !ch.joined {
            return;
        }
        for nick in ch.occupants.keys() {
            let rank = self.rank(ch, nick);
            if before.get(nick) == Some(&rank) {
                continue;
            }
            let from = self.occupant(ch, nick);
            let own = self.is_me(nick);
            self.to_room(k, |r| muc::occupant(&from, r, rank, own))
                .await;
        }
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
    async fn channel_modes(&mut self, chan: &str, params: &[String]) {
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
        self.rank_changes(&k, &before).await;
    }

    async fn incoming(&mut self, m: Message, raw: &str) {
        tracing::debug!(user = %self.user, server = %self.server, "IRC ← {}", signon::mask(raw));
        if let Some(step) = self.signon.as_mut().and_then(|s| s.handle(&m)) {
            self.sign_on_step(step).await;
            return;
        }
        let (source, from_server) = match &m.prefix {
            Some(Prefix::Nickname(n, _, _)) => (n.clone(), false),
            Some(Prefix::ServerName(s)) => (s.clone(), true),
            None => (String::new(), true),
        };
        match m.command {
            Command::PING(a, b) => match b {
                Some(b) => self.urgent.push(format!("PONG {a} {b}")),
                None => self.urgent.push(format!("PONG :{a}")),
            },
            Command::Response(Response::RPL_WELCOME, args) => {
                if let Some(n) = args.first() {
                    self.nick = n.clone();
                }
                self.registered = true;
                self.welcomed_at = Some(Instant::now());
                self.ever_registered = true;
                // NickServ IDENTIFY before the joins, so that channels
                // that look at the account see it as early as possible.
                if let Some(step) = self.signon.as_mut().map(SignOn::welcomed) {
                    self.sign_on_step(step).await;
                }
                let names: Vec<String> = self.channels.values().map(|c| c.name.clone()).collect();
                for n in names {
                    self.send(format!("JOIN {n}"));
                }
                for l in std::mem::take(&mut self.held) {
                    self.send(l);
                }
            }
            Command::Response(Response::RPL_ISUPPORT, args) => {
                // The first argument is our nick, the last a sentence.
                let n = args.len().saturating_sub(1);
                self.modes.isupport(args.get(1..n).unwrap_or(&[]));
            }
            Command::Response(Response::ERR_ERRONEOUSNICKNAME, _) if !self.registered => {
                self.fatal = Some(format!("the server refuses the nick {}", self.nick));
            }
            Command::Response(Response::ERR_NICKNAMEINUSE, _) if !self.registered => {
                self.nick.push('_');
                let nick = self.nick.clone();
                self.send(format!("NICK {nick}"));
            }
            Command::Response(
                resp @ (Response::ERR_NICKNAMEINUSE
                | Response::ERR_ERRONEOUSNICKNAME
                | Response::ERR_UNAVAILRESOURCE),
                _,
            ) if self.renaming.is_some() => {
                self.nick_refused(resp).await;
            }
            Command::Response(resp, args) if join_refusal(resp as u16).is_some() => {
                self.refusal(resp as u16, &args).await;
            }
            Command::Raw(code, args)
                if code.parse::<u16>().ok().and_then(join_refusal).is_some() =>
            {
                self.refusal(code.parse::<u16>().unwrap_or(0), &args).await;
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
                        self.replay(&k, &r).await;
                    }
                    // The channel's modes, for +m (moderated → visitors).
                    self.send(format!("MODE {name}"));
                }
            }
            Command::Response(Response::RPL_CHANNELMODEIS, _) => {
                // me, channel, modes, parameters…
                let p = modes::params(raw);
                if let Some(chan) = p.get(1) {
                    self.channel_modes(&chan.clone(), &p[2..]).await;
                }
            }
            Command::ChannelMODE(chan, _) => {
                let p = modes::params(raw);
                self.channel_modes(&chan, p.get(1..).unwrap_or(&[])).await;
            }
            // "No MOTD" is how many servers end their welcome, not a
            // failure the user needs to hear about.
            Command::Response(Response::ERR_NOMOTD, _) => {}
            Command::Response(resp, args) if resp.is_error() => {
                self.server_says(&args).await;
            }
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
                self.to_room(&k, |r| muc::occupant(&from, r, rank, false))
                    .await;
            }
            Command::PART(chan, reason) => {
                let k = fold(&chan);
                if self.is_me(&source) {
                    // We asked for it (the last resource left), or the
                    // server made us: tell any resources still there.
                    if let Some(ch) = self.channels.remove(&k) {
                        let me = self.occupant(&ch, &self.nick);
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
                        let me = self.occupant(&ch, &self.nick);
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
                let from = self.occupant(&self.channels[&k], &victim);
                self.to_room(&k, |r| muc::gone(&from, r, false, true, reason.as_deref()))
                    .await;
            }
            Command::PRIVMSG(target, msg) => {
                let Some(body) = text::from_irc(&msg) else {
                    return;
                };
                if self.is_me(&target) && !self.chatting.is_empty() {
                    self.last_private = Some(Instant::now());
                }
                self.deliver(&source, false, &target, body).await;
            }
            Command::NOTICE(target, msg) => {
                // CTCP replies are answers to queries we never make.
                if msg.starts_with('\u{1}') {
                    return;
                }
                let body = text::strip_formatting(&msg);
                self.deliver(&source, from_server, &target, body).await;
            }
            Command::NICK(new) => {
                let own = self.is_me(&source);
                if own {
                    self.nick = new.clone();
                    self.renaming = None;
                }
                let keys: Vec<String> = self.channels.keys().cloned().collect();
                for k in keys {
                    let Some(ch) = self.channels.get_mut(&k) else {
                        continue;
                    };
                    let Some(modes) = ch.occupants.remove(&source) else {
                        continue;
                    };
                    ch.occupants.insert(new.clone(), modes);
                    if !ch.joined {
                        continue;
                    }
                    let ch = &self.channels[&k];
                    let rank = self.rank(ch, &new);
                    let old_jid = self.occupant(ch, &source);
                    let new_jid = self.occupant(ch, &new);
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
                let from = self.occupant(&self.channels[&k], &source);
                self.to_room(&k, |r| muc::subject(&from, r, &topic)).await;
            }
            _ => {}
        }
    }

    /// A PRIVMSG or NOTICE: to a channel, a groupchat message from the
    /// occupant (or from the room itself when the server sent it); to us,
    /// a chat message from the user's JID or the server's.
    async fn deliver(&self, source: &str, from_server: bool, target: &str, body: String) {
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
            self.to_room(&k, |r| muc::groupchat(&from, r, &body)).await;
        } else if self.is_me(target) || target == "*" {
            if from_server && !self.registered {
                // Sign-on chatter ("looking up your hostname") on every
                // (re)connection: not worth a message.
                return;
            }
            let from = if from_server {
                self.server_jid()
            } else {
                self.user(source)
            };
            for r in self.all_resources() {
                self.emit(muc::chat(&from, &r, &body)).await;
            }
        }
    }

    /// An error numeric not handled otherwise (an unknown command from an
    /// admin's raw line, a message to a missing nick): a message from the
    /// server's JID, in its words. Before the welcome, sign-on errors are
    /// the connection's business, not the user's.
    async fn server_says(&self, args: &[String]) {
        if !self.registered || args.len() < 2 {
            return;
        }
        let text = text::strip_formatting(&args[1..].join(" "));
        let from = self.server_jid();
        for r in self.all_resources() {
            self.emit(muc::chat(&from, &r, &text)).await;
        }
    }

    /// A numeric that refuses a JOIN, or else an error for the user.
    async fn refusal(&mut self, code: u16, args: &[String]) {
        if !self.refused(code, args).await {
            self.server_says(args).await;
        }
    }

    /// The server refused a JOIN with numeric `code`: the join fails for
    /// every resource waiting on it. `false` when the numeric is not about
    /// a channel being joined.
    async fn refused(&mut self, code: u16, args: &[String]) -> bool {
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
        for (r, nick) in &ch.resources {
            let from = self.occupant(&ch, nick);
            self.emit(muc::join_error(&from, r, err.clone())).await;
        }
        true
    }

    async fn occupant_left(&mut self, k: &str, nick: &str, reason: Option<&str>) {
        let Some(ch) = self.channels.get_mut(k) else {
            return;
        };
        if ch.occupants.remove(nick).is_none() || !ch.joined {
            return;
        }
        let from = self.occupant(&self.channels[k], nick);
        self.to_room(k, |r| muc::gone(&from, r, false, false, reason))
            .await;
    }

    /// The session dropped and a new one will be tried after `delay`:
    /// every resource leaves its rooms (unavailable, status 110) and is
    /// told why from the server's JID. The rooms are kept, emptied, for
    /// the rejoin.
    async fn dropped(&mut self, why: &str, delay: Duration) {
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
        for s in stanzas {
            self.emit(s).await;
        }
    }

    /// The connection is gone: every resource still in a room learns it
    /// left (status 110, "connection to the IRC server lost").
    async fn closed(&mut self, why: &str) {
        // Private messages that never went out: their writers hear why.
        if !std::mem::take(&mut self.held).is_empty() {
            let from = self.server_jid();
            for r in std::mem::take(&mut self.chatting) {
                let err = StanzaError::remote_server_not_found().with_text(format!(
                    "cannot reach the IRC server {}: {why}; the private message was not sent",
                    self.server
                ));
                self.emit(muc::message_error(&from, &r, err)).await;
            }
        }
        let chans: Vec<Channel> = self.channels.drain().map(|(_, c)| c).collect();
        for ch in chans {
            if !ch.joined {
                for (r, nick) in &ch.resources {
                    let from = self.occupant(&ch, nick);
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
            let me = self.occupant(&ch, &self.nick);
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
    async fn long_lines_are_errors_and_lines_split() {
        let mut data = b"PING :a\r\n".to_vec();
        data.extend(std::iter::repeat_n(b'x', 10 * 1024 * 1024));
        let mut rd = BufReader::with_capacity(64, &data[..]);
        let mut buf = Vec::new();
        assert_eq!(
            read_line(&mut rd, &mut buf).await.unwrap(),
            Some(b"PING :a".to_vec())
        );
        let e = read_line(&mut rd, &mut buf).await.unwrap_err();
        assert!(e.to_string().contains("longer than"), "{e}");
        let mut rd = BufReader::with_capacity(4, &b"PING :b\nPING :c"[..]);
        assert_eq!(
            read_line(&mut rd, &mut buf).await.unwrap(),
            Some(b"PING :b".to_vec())
        );
        // A last line without its end of line is dropped with the stream.
        assert_eq!(read_line(&mut rd, &mut buf).await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_partial_line_survives_a_cancelled_read() {
        let (client, mut server) = tokio::io::duplex(64);
        let mut rd = BufReader::new(client);
        let mut buf = Vec::new();
        server.write_all(b"PRIVMSG #a :hel").await.unwrap();
        let r = tokio::time::timeout(Duration::from_millis(50), read_line(&mut rd, &mut buf)).await;
        assert!(r.is_err(), "no line yet");
        server.write_all(b"lo\r\n").await.unwrap();
        assert_eq!(
            read_line(&mut rd, &mut buf).await.unwrap(),
            Some(b"PRIVMSG #a :hello".to_vec())
        );
    }

    /// A connection to a loopback listener driven by `server`, with one
    /// resource joining `#t`; returns the stanzas the user got by the time
    /// the connection ended.
    async fn against(server: impl FnOnce(TcpStream) -> tokio::task::JoinHandle<()>) -> Vec<String> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (out, mut stanzas) = Outbox::channel();
        let (done_tx, mut done_rx) = mpsc::channel(1);
        let key = ("a@l".to_string(), "127.0.0.1".to_string());
        let target = Target {
            host: "127.0.0.1".into(),
            port,
            tls: None,
            default: false,
            flood: crate::config::Flood::default(),
            signons: Arc::new(tokio::sync::Semaphore::new(1)),
        };
        let tx = spawn(
            key,
            "irc.l".into(),
            target,
            "alice".into(),
            Box::pin(async { Ok(Profile::default()) }),
            out,
            done_tx,
        );
        tx.send(ToIrc::Join {
            channel: "#t".into(),
            nick: "alice".into(),
            full: "a@l/r".into(),
            short: false,
        })
        .await
        .unwrap();
        let (sock, _) = listener.accept().await.unwrap();
        let peer = server(sock);
        // Whatever the server does next, the connection gives up after
        // its first reconnection attempt (nobody listens any more).
        drop(listener);
        let mut got = Vec::new();
        loop {
            tokio::select! {
                Some(s) = stanzas.recv() => got.push(s.to_xml_string()),
                _ = done_rx.recv() => break,
            }
        }
        while let Ok(s) = stanzas.try_recv() {
            got.push(s.to_xml_string());
        }
        peer.abort();
        got
    }

    #[tokio::test(start_paused = true)]
    async fn no_welcome_within_the_registration_timeout_fails_the_join() {
        let got = against(|sock| {
            tokio::spawn(async move {
                // Reads, never answers.
                let mut sock = sock;
                let mut buf = [0u8; 512];
                while matches!(tokio::io::AsyncReadExt::read(&mut sock, &mut buf).await, Ok(n) if n > 0) {}
            })
        })
        .await;
        let all = got.join("\n");
        assert!(all.contains("remote-server-not-found"), "{all}");
        assert!(all.contains("no welcome"), "{all}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_server_that_stops_answering_is_pinged_then_dropped() {
        let (seen_tx, mut seen_rx) = mpsc::unbounded_channel::<String>();
        let got = against(move |sock| {
            tokio::spawn(async move {
                let (rd, mut wr) = sock.into_split();
                let mut rd = BufReader::new(rd);
                wr.write_all(b":srv 001 alice :hi\r\n").await.unwrap();
                let mut line = String::new();
                while rd.read_line(&mut line).await.unwrap_or(0) > 0 {
                    let _ = seen_tx.send(line.trim_end().to_string());
                    line.clear();
                }
            })
        })
        .await;
        let all = got.join("\n");
        assert!(all.contains("no answer to PING"), "{all}");
        let mut lines = Vec::new();
        while let Ok(l) = seen_rx.try_recv() {
            lines.push(l);
        }
        assert!(lines.iter().any(|l| l == "PING :switchboard"), "{lines:?}");
        assert!(lines.iter().any(|l| l == "JOIN #t"), "{lines:?}");
    }

    #[test]
    fn casemapping() {
        assert_eq!(fold("#Test[1]"), fold("#test{1}"));
        assert_ne!(fold("#a"), fold("#b"));
    }

    #[test]
    fn join_refusals_map_to_muc_errors() {
        let cond = |c| {
            join_refusal(c)
                .map(|e| e.to_element("jabber:client").to_xml_string())
                .unwrap_or_default()
        };
        assert!(cond(475).contains("not-authorized"));
        assert!(cond(474).contains("forbidden"));
        assert!(cond(433).contains("conflict"));
        assert!(cond(473).contains("registration-required"));
        assert!(cond(471).contains("service-unavailable"));
        assert!(join_refusal(401).is_none());
    }
}
