//! The session in memory under a simulated clock: a scripted IRC server
//! on one side, the stanzas the user's resources get on the other, and
//! time that moves only when a test says so. No socket, no sleep.

use std::time::{Duration, Instant};

use switchboard_link::backoff::Sequence;
use switchboard_xml::Element;

use super::*;
use crate::address::{occupant_jid, room_jid, server_jid, user_jid};
use crate::signon::Credentials;

const HOST: &str = "irc.l";
const SERVER: &str = "irc.x";
const USER: &str = "alice@l";
const R1: &str = "alice@l/one";
const R2: &str = "alice@l/two";

/// The session and the world around it.
struct Pair {
    s: Session,
    now: Instant,
    /// Whether the driver has a socket open.
    connected: bool,
    /// Sockets asked for, in all.
    connects: usize,
    /// Lines written to the server, not yet looked at.
    wire: Vec<String>,
    /// When each of those lines was written.
    written_at: Vec<Instant>,
    /// Stanzas for the user, not yet looked at.
    stanzas: Vec<Element>,
    /// How each socket was closed (the QUIT reason, if any).
    closes: Vec<Option<String>>,
    ended: bool,
}

fn params() -> Params {
    Params {
        service_host: HOST.into(),
        user: USER.into(),
        server: SERVER.into(),
        default: false,
        nick: "alice".into(),
        flood: Flood::default(),
        profile: Profile::default(),
    }
}

impl Pair {
    /// Reconnection jitter always at the bottom of its range: each delay
    /// is half its nominal value (0.5 s, 1 s, 2 s, …).
    fn new(params: Params) -> Pair {
        let now = Instant::now();
        let s = Session::with_random(params, now, Sequence::of_units(&[0.0]));
        let mut p = Pair {
            s,
            now,
            connected: false,
            connects: 0,
            wire: Vec::new(),
            written_at: Vec::new(),
            stanzas: Vec::new(),
            closes: Vec::new(),
            ended: false,
        };
        p.pump();
        p
    }

    /// What a driver does after every input: lines, then events.
    fn pump(&mut self) {
        if self.connected {
            while let Some(l) = self.s.poll_transmit(self.now) {
                self.wire.push(l);
                self.written_at.push(self.now);
            }
        }
        while let Some(e) = self.s.poll_event() {
            match e {
                Event::Connect => self.connects += 1,
                Event::Disconnect { quit } => {
                    if self.connected {
                        if let Some(q) = &quit {
                            self.wire.push(format!("QUIT :{q}"));
                            self.written_at.push(self.now);
                        }
                    }
                    self.connected = false;
                    self.closes.push(quit);
                }
                Event::Stanza(s) => self.stanzas.push(s),
                Event::End => self.ended = true,
            }
        }
    }

    /// The driver's turn comes and the socket opens at once.
    fn dial(&mut self) {
        self.s.handle_dialing(self.now);
        self.connected = true;
        self.s.handle_connected(self.now);
        self.pump();
    }

    /// Lines from the server.
    fn hear(&mut self, lines: &[&str]) {
        let mut data = Vec::new();
        for l in lines {
            data.extend_from_slice(l.as_bytes());
            data.extend_from_slice(b"\r\n");
        }
        self.s.handle_input(&data, self.now);
        self.pump();
    }

    fn ask(&mut self, req: ToIrc) {
        self.s.handle_request(req, self.now);
        self.pump();
    }

    /// Lets `d` pass, waking the session at each of its deadlines.
    fn advance(&mut self, d: Duration) {
        let until = self.now + d;
        while let Some(t) = self.s.poll_timeout().filter(|t| *t <= until) {
            self.now = t.max(self.now);
            self.s.handle_timeout(self.now);
            self.pump();
        }
        self.now = until;
        self.pump();
    }

    /// Lets `d` pass with a server that shows it is alive every minute.
    fn idle(&mut self, d: Duration) {
        let until = self.now + d;
        while self.now < until {
            let step = (until - self.now).min(Duration::from_secs(60));
            self.advance(step);
            if self.connected {
                self.hear(&[":irc.x NOTICE alice :still here"]);
                self.got();
            }
        }
    }

    /// The server closes the connection.
    fn hang_up(&mut self) {
        self.s.handle_eof(self.now);
        self.pump();
    }

    fn lines(&mut self) -> Vec<String> {
        self.written_at.clear();
        std::mem::take(&mut self.wire)
    }

    fn got(&mut self) -> Vec<Element> {
        std::mem::take(&mut self.stanzas)
    }

    /// Signs on (with the welcome) and joins `#t` as `alice` from R1,
    /// with bob and @carol in the room.
    fn in_room() -> Pair {
        let mut p = Pair::new(params());
        p.ask(join("#t", "alice", R1));
        p.dial();
        p.hear(&[":srv 001 alice :Welcome"]);
        p.hear(&[
            ":alice!a@h JOIN #t",
            ":srv 353 alice = #t :alice bob @carol",
            ":srv 366 alice #t :End of /NAMES list.",
        ]);
        p.lines();
        p.got();
        p
    }
}

fn join(channel: &str, nick: &str, full: &str) -> ToIrc {
    ToIrc::Join {
        channel: channel.into(),
        nick: nick.into(),
        full: full.into(),
        short: false,
        key: None,
    }
}

fn say(full: &str, body: &str) -> ToIrc {
    ToIrc::Say {
        channel: "#t".into(),
        full: full.into(),
        body: body.into(),
    }
}

fn room() -> String {
    room_jid("#t", SERVER, HOST)
}

fn occ(nick: &str) -> String {
    occupant_jid("#t", SERVER, HOST, nick)
}

fn attr<'a>(el: &'a Element, name: &str) -> &'a str {
    el.attr(name).unwrap_or("")
}

/// The MUC status codes of a presence.
fn codes(el: &Element) -> Vec<String> {
    el.elements()
        .filter(|x| x.name == "x")
        .flat_map(|x| x.elements().filter(|s| s.name == "status"))
        .map(|s| attr(s, "code").to_owned())
        .collect()
}

/// (from, to, type) of each stanza.
fn heads(stanzas: &[Element]) -> Vec<(String, String, String)> {
    stanzas
        .iter()
        .map(|s| {
            (
                attr(s, "from").to_owned(),
                attr(s, "to").to_owned(),
                format!("{}/{}", s.name, attr(s, "type")),
            )
        })
        .collect()
}

fn texts(stanzas: &[Element]) -> String {
    stanzas
        .iter()
        .map(Element::to_xml_string)
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn sign_on_then_the_join_when_welcomed() {
    let mut p = Pair::new(params());
    assert_eq!(p.connects, 1, "a socket is asked for at once");
    p.ask(join("#t", "alice", R1));
    assert!(p.lines().is_empty(), "nothing goes out before the socket");
    p.dial();
    assert_eq!(p.lines(), ["NICK alice", "USER alice 0 * :alice@l"]);
    assert!(!p.s.signed_on());
    p.hear(&[":srv 001 alice :Welcome"]);
    assert!(p.s.signed_on(), "the turn among sign-ons can go");
    assert_eq!(p.lines(), ["JOIN #t"]);
    p.hear(&[
        ":alice!a@h JOIN #t",
        ":srv 332 alice #t :the topic",
        ":srv 353 alice = #t :alice bob @carol",
        ":srv 366 alice #t :End of /NAMES list.",
    ]);
    // XEP-0045 §7.2: the others, then the user's own presence (110, and
    // 100 for a non-anonymous room), then the subject.
    let got = p.got();
    assert_eq!(
        heads(&got),
        [
            (occ("bob"), R1.into(), "presence/".into()),
            (occ("carol"), R1.into(), "presence/".into()),
            (occ("alice"), R1.into(), "presence/".into()),
            (room(), R1.into(), "message/groupchat".into()),
        ]
    );
    assert_eq!(codes(&got[2]), ["110", "100"]);
    assert!(got[1].to_xml_string().contains(r#"role="moderator""#));
    assert_eq!(
        got[3].child_text("subject", ns()).as_deref(),
        Some("the topic")
    );
    assert_eq!(p.lines(), ["MODE #t"], "the modes, for +m");
}

fn ns() -> &'static str {
    switchboard_xml::ns::CLIENT
}

#[test]
fn a_taken_nick_fails_the_join_with_conflict_and_ends_the_session() {
    let mut p = Pair::new(params());
    p.ask(join("#t", "alice", R1));
    p.dial();
    p.lines();
    p.hear(&[":srv 433 * alice :Nickname is already in use"]);
    let got = p.got();
    assert_eq!(
        heads(&got),
        [(occ("alice"), R1.into(), "presence/error".into())]
    );
    assert!(
        texts(&got).contains("conflict") && texts(&got).contains("the nick alice is in use"),
        "{}",
        texts(&got)
    );
    assert!(p.ended);
    assert_eq!(p.lines(), ["QUIT :"], "no other nick is tried");
    p.s.finish(Vec::new());
    p.pump();
    assert!(p.got().is_empty(), "the join was answered already");
}

#[test]
fn for_private_messages_a_taken_nick_is_changed_and_an_unusable_one_ends_the_session() {
    let mut p = Pair::new(params());
    p.ask(ToIrc::Private {
        nick: "bob".into(),
        full: R1.into(),
        body: "hi bob".into(),
        room: None,
    });
    p.dial();
    p.lines();
    p.hear(&[":srv 433 * alice :Nickname is already in use"]);
    assert_eq!(p.lines(), ["NICK alice_"]);
    p.hear(&[":srv 432 * alice_ :Erroneous nickname"]);
    assert!(p.ended);
    assert_eq!(p.closes, [Some(String::new())], "QUIT with no reason");
    assert_eq!(p.lines(), ["QUIT :"]);
    p.s.finish(Vec::new());
    p.pump();
    let got = p.got();
    assert_eq!(
        heads(&got),
        [(server_jid(SERVER, HOST), R1.into(), "message/error".into())]
    );
    assert!(
        texts(&got).contains("the server refuses the nick alice_"),
        "{}",
        texts(&got)
    );
}

#[test]
fn the_room_password_is_the_channel_key_of_every_join() {
    let mut p = Pair::new(params());
    p.ask(ToIrc::Join {
        channel: "#t".into(),
        nick: "alice".into(),
        full: R1.into(),
        short: false,
        key: Some("sekrit".into()),
    });
    p.dial();
    p.lines();
    p.hear(&[":srv 001 alice :Welcome"]);
    assert_eq!(p.lines(), ["JOIN #t sekrit"]);
    p.hear(&[
        ":alice!a@h JOIN #t",
        ":srv 353 alice = #t :alice",
        ":srv 366 alice #t :End of /NAMES list.",
    ]);
    p.lines();
    p.got();
    // After a drop, the rejoin takes the key too.
    p.hang_up();
    p.advance(Duration::from_secs(1));
    p.dial();
    p.lines();
    p.hear(&[":srv 001 alice :Welcome"]);
    assert_eq!(p.lines(), ["JOIN #t sekrit"]);
}

fn kick(nick: &str, reason: Option<&str>, id: &str) -> ToIrc {
    ToIrc::Kick {
        channel: "#t".into(),
        full: R1.into(),
        nick: nick.into(),
        reason: reason.map(str::to_owned),
        iq: Box::new(
            Element::new("iq", ns())
                .with_attr("type", "set")
                .with_attr("id", id)
                .with_attr("from", R1)
                .with_attr("to", room()),
        ),
    }
}

#[test]
fn a_kick_is_irc_kick_answered_when_the_server_confirms_or_refuses() {
    let mut p = Pair::in_room();
    p.ask(kick("BOB", Some("spam\nand more"), "k1"));
    assert_eq!(p.lines(), ["KICK #t bob :spam and more"]);
    assert!(p.got().is_empty(), "answered once the server confirms");
    p.hear(&[":alice!a@h KICK #t bob :spam and more"]);
    let got = p.got();
    let result = got
        .iter()
        .find(|s| s.name == "iq")
        .expect("the kick's result");
    assert_eq!((attr(result, "type"), attr(result, "id")), ("result", "k1"));
    let gone = got
        .iter()
        .find(|s| s.name == "presence")
        .expect("bob's departure");
    assert_eq!(attr(gone, "from"), occ("bob"));
    assert_eq!(codes(gone), ["307"]);

    // Not an operator: forbidden, in the server's words.
    p.ask(kick("carol", None, "k2"));
    assert_eq!(p.lines(), ["KICK #t carol"]);
    p.hear(&[":srv 482 alice #t :You're not channel operator"]);
    let got = p.got();
    assert_eq!(heads(&got), [(room(), R1.into(), "iq/error".into())]);
    assert!(
        texts(&got).contains("forbidden") && texts(&got).contains("not channel operator"),
        "{}",
        texts(&got)
    );

    // Nobody of that nick: item-not-found, nothing sent.
    p.ask(kick("nobody", None, "k3"));
    assert!(p.lines().is_empty());
    assert!(texts(&p.got()).contains("item-not-found"));
}

#[test]
fn a_private_message_to_an_occupant_is_answered_from_the_occupant_jid() {
    let mut p = Pair::in_room();
    p.ask(ToIrc::Private {
        nick: "bob".into(),
        full: R1.into(),
        body: "psst".into(),
        room: Some("#t".into()),
    });
    assert_eq!(p.lines(), ["PRIVMSG bob :psst"]);
    p.hear(&[":bob!b@h PRIVMSG alice :what"]);
    let got = p.got();
    assert_eq!(
        heads(&got),
        [(occ("bob"), R1.into(), "message/chat".into())]
    );
    // Once bob has left the room, he writes as himself.
    p.hear(&[":bob!b@h PART #t", ":bob!b@h PRIVMSG alice :still me"]);
    let got = p.got();
    let chat = got.iter().find(|s| s.name == "message").unwrap();
    assert_eq!(attr(chat, "from"), user_jid("bob", SERVER, HOST));
}

#[test]
fn pings_are_answered_at_once_and_a_silent_server_is_pinged_then_dropped() {
    let mut p = Pair::in_room();
    // Fill the flood control: a PONG does not wait behind it.
    for i in 0..10 {
        p.ask(say(R1, &format!("line {i}")));
    }
    p.lines();
    p.got();
    p.hear(&["PING :irc.x"]);
    assert_eq!(p.lines(), ["PONG :irc.x"]);
    // Two minutes of silence (the queued lines go out meanwhile)…
    p.advance(PING_AFTER - Duration::from_millis(1));
    assert!(!p.lines().contains(&"PING :switchboard".to_owned()));
    p.advance(Duration::from_millis(1));
    assert_eq!(p.lines(), ["PING :switchboard"]);
    // …any line at all is an answer…
    p.advance(PONG_WAIT - Duration::from_secs(1));
    p.hear(&[":srv PONG srv :switchboard"]);
    p.advance(PING_AFTER - Duration::from_secs(1));
    assert!(p.lines().is_empty());
    assert_eq!(p.closes.len(), 0);
    // …and none within a minute drops the link.
    p.advance(Duration::from_secs(1));
    assert_eq!(p.lines(), ["PING :switchboard"]);
    p.advance(PONG_WAIT);
    assert_eq!(p.closes, [None]);
    assert!(!p.ended, "it reconnects");
    let got = p.got();
    assert_eq!(
        heads(&got),
        [
            (occ("alice"), R1.into(), "presence/unavailable".into()),
            (server_jid(SERVER, HOST), R1.into(), "message/chat".into()),
        ]
    );
    assert_eq!(codes(&got[0]), ["110"]);
    assert_eq!(
        got[1].child_text("body", ns()).as_deref(),
        Some(
            "The connection to the IRC server irc.x was lost (no answer to PING within 60 s). \
             Reconnecting in 1 s; you will be back in your rooms once it is up."
        )
    );
}

#[test]
fn the_flood_control_paces_lines_and_drops_none() {
    let mut p = Pair::in_room();
    // A quiet while refills the bucket (JOIN and MODE took two tokens).
    p.idle(Duration::from_secs(600));
    let start = p.now;
    for i in 0..12 {
        p.ask(say(R1, &format!("line {i}")));
    }
    // The burst at once, the rest one per interval.
    assert_eq!(p.wire.len(), Flood::BURST as usize);
    assert_eq!(p.s.poll_timeout(), Some(start + Flood::INTERVAL));
    // The sender's resources see their messages at once (XEP-0045 §7.4).
    assert_eq!(p.got().len(), 12);
    p.advance(Flood::INTERVAL * 7);
    let times: Vec<Duration> = p.written_at.iter().map(|t| *t - start).collect();
    let want: Vec<Duration> = (0..12u32)
        .map(|i| Flood::INTERVAL * i.saturating_sub(Flood::BURST - 1))
        .collect();
    assert_eq!(times, want);
    let lines = p.lines();
    let sent: Vec<String> = (0..12).map(|i| format!("PRIVMSG #t :line {i}")).collect();
    assert_eq!(lines, sent, "all of them, in order");
}

#[test]
fn without_a_flood_interval_every_line_goes_at_once() {
    let mut params = params();
    params.flood = Flood {
        burst: 1,
        interval: Duration::ZERO,
    };
    let mut p = Pair::new(params);
    p.ask(join("#t", "alice", R1));
    p.dial();
    p.hear(&[":srv 001 alice :hi", ":srv 366 alice #t :End"]);
    p.lines();
    for i in 0..50 {
        p.ask(say(R1, &format!("{i}")));
    }
    assert_eq!(p.lines().len(), 50);
}

#[test]
fn a_full_queue_refuses_new_messages_with_an_error() {
    let mut p = Pair::in_room();
    for i in 0..MAX_QUEUED + Flood::BURST as usize {
        p.ask(say(R1, &format!("{i}")));
    }
    p.got();
    p.ask(say(R1, "one too many"));
    let got = p.got();
    assert_eq!(heads(&got), [(room(), R1.into(), "message/error".into())]);
    assert!(
        texts(&got).contains("resource-constraint"),
        "{}",
        texts(&got)
    );
    assert!(texts(&got).contains("flood limit"), "{}", texts(&got));
}

#[test]
fn a_second_resource_shares_the_room_and_the_last_to_leave_parts() {
    let mut p = Pair::in_room();
    p.ask(join("#t", "alice", R2));
    assert!(p.lines().is_empty(), "one IRC connection, one JOIN");
    let got = p.got();
    assert_eq!(
        heads(&got)
            .into_iter()
            .map(|(f, t, _)| (f, t))
            .collect::<Vec<_>>(),
        [
            (occ("bob"), R2.into()),
            (occ("carol"), R2.into()),
            (occ("alice"), R2.into()),
            (room(), R2.into()),
        ]
    );
    // Messages from IRC reach both.
    p.hear(&[":bob!b@h PRIVMSG #t :hello"]);
    assert_eq!(
        heads(&p.got()),
        [
            (occ("bob"), R1.into(), "message/groupchat".into()),
            (occ("bob"), R2.into(), "message/groupchat".into()),
        ]
    );
    p.ask(ToIrc::Leave {
        channel: "#t".into(),
        full: R1.into(),
    });
    assert!(p.lines().is_empty(), "R2 is still there");
    assert_eq!(codes(&p.got()[0]), ["110"]);
    p.ask(ToIrc::Leave {
        channel: "#T".into(),
        full: R2.into(),
    });
    // The PART goes out, then the session quits.
    assert_eq!(p.lines(), ["PART #t", "QUIT :left every channel"]);
    assert!(p.ended);
    assert!(p.s.finish(Vec::new()).is_empty());
}

#[test]
fn a_join_refused_by_the_server_fails_for_the_resource() {
    let mut p = Pair::in_room();
    p.ask(join("#secret", "alice", R1));
    assert_eq!(p.lines(), ["JOIN #secret"]);
    p.hear(&[":srv 474 alice #secret :Cannot join channel (+b)"]);
    let got = p.got();
    assert_eq!(
        heads(&got),
        [(
            occupant_jid("#secret", SERVER, HOST, "alice"),
            R1.into(),
            "presence/error".into()
        )]
    );
    assert!(texts(&got).contains("<forbidden"), "{}", texts(&got));
    assert!(texts(&got).contains("#secret: Cannot join channel (+b)"));
}

#[test]
fn nick_changes_from_the_client_and_from_irc() {
    let mut p = Pair::in_room();
    // The client asks for a new nick: a presence to another occupant JID.
    p.ask(join("#t", "alicia", R1));
    assert_eq!(p.lines(), ["NICK alicia"]);
    p.hear(&[":alice!a@h NICK :alicia"]);
    let got = p.got();
    assert_eq!(
        heads(&got),
        [
            (occ("alice"), R1.into(), "presence/unavailable".into()),
            (occ("alicia"), R1.into(), "presence/".into()),
        ]
    );
    assert_eq!(codes(&got[0]), ["303", "110"]);
    assert_eq!(codes(&got[1]), ["110"]);
    // Someone else's change: 303 without 110.
    p.hear(&[":bob!b@h NICK robert"]);
    let got = p.got();
    assert_eq!(attr(&got[0], "from"), occ("bob"));
    assert_eq!(codes(&got[0]), ["303"]);
    assert_eq!(attr(&got[1], "from"), occ("robert"));
    // A nick that is taken: the resource hears conflict, the room keeps
    // the nick the connection has.
    p.ask(join("#t", "carol", R1));
    assert_eq!(p.lines(), ["NICK carol"]);
    p.hear(&[":srv 433 alicia carol :Nickname is already in use"]);
    let got = p.got();
    assert_eq!(
        heads(&got),
        [(occ("carol"), R1.into(), "presence/error".into())]
    );
    assert!(texts(&got).contains("<conflict"), "{}", texts(&got));
    p.hear(&[":carol!c@h PRIVMSG #t :still alicia?"]);
    assert_eq!(p.got().len(), 1);
}

#[test]
fn kicks_of_others_and_of_the_user() {
    let mut p = Pair::in_room();
    p.hear(&[":carol!c@h KICK #t bob :spam"]);
    let got = p.got();
    assert_eq!(
        heads(&got),
        [(occ("bob"), R1.into(), "presence/unavailable".into())]
    );
    assert_eq!(codes(&got[0]), ["307"]);
    assert!(
        texts(&got).contains("<reason>spam</reason>"),
        "{}",
        texts(&got)
    );
    p.hear(&[":carol!c@h KICK #t alice :out"]);
    let got = p.got();
    assert_eq!(
        heads(&got),
        [(occ("alice"), R1.into(), "presence/unavailable".into())]
    );
    assert_eq!(codes(&got[0]), ["307", "110"]);
    // That was the only room: the connection has nothing left to do.
    assert_eq!(p.lines(), ["QUIT :left every channel"]);
    assert!(p.ended);
}

#[test]
fn a_dropped_link_comes_back_and_rejoins() {
    let mut p = Pair::in_room();
    p.hear(&["ERROR :Closing link (restart)"]);
    p.hang_up();
    assert_eq!(p.closes, [None]);
    let got = p.got();
    assert_eq!(codes(&got[0]), ["110"]);
    assert!(texts(&got).contains(
        "was lost (the server closed the connection: Closing link (restart)). Reconnecting in 1 s"
    ));
    // While it is down, messages are refused rather than lost silently.
    p.ask(say(R1, "anyone?"));
    assert!(texts(&p.got()).contains("recipient-unavailable"));
    // Half a second later (the jitter is at its lowest) a new socket.
    assert_eq!(p.connects, 1);
    p.advance(Duration::from_millis(499));
    assert_eq!(p.connects, 1);
    p.advance(Duration::from_millis(1));
    assert_eq!(p.connects, 2);
    p.dial();
    assert_eq!(p.lines(), ["NICK alice", "USER alice 0 * :alice@l"]);
    p.hear(&[":srv 001 alice :Welcome back"]);
    assert_eq!(p.lines(), ["JOIN #t"]);
    p.hear(&[
        ":srv 353 alice = #t :alice bob",
        ":srv 366 alice #t :End of /NAMES list.",
    ]);
    let got = p.got();
    assert_eq!(
        heads(&got),
        [
            (occ("bob"), R1.into(), "presence/".into()),
            (occ("alice"), R1.into(), "presence/".into()),
            (room(), R1.into(), "message/groupchat".into()),
        ]
    );
}

#[test]
fn reconnection_delays_grow_until_a_link_lasts_and_attempts_run_out() {
    let mut p = Pair::in_room();
    let mut delays = Vec::new();
    // A server that welcomes and drops at once (a ban): the delays are
    // not reset by the welcome.
    for _ in 0..4 {
        p.hang_up();
        let asked = p.connects;
        let t0 = p.now;
        while p.connects == asked {
            p.advance(Duration::from_millis(100));
        }
        delays.push((p.now - t0).as_millis());
        p.dial();
        p.hear(&[":srv 001 alice :hi"]);
    }
    assert_eq!(delays, [500, 1000, 2000, 4000]);
    // A link that lasts a minute starts them over.
    p.advance(STABLE);
    p.hang_up();
    let t0 = p.now;
    let asked = p.connects;
    while p.connects == asked {
        p.advance(Duration::from_millis(100));
    }
    assert_eq!((p.now - t0).as_millis(), 500);
    // A server that stays away: the attempts run out and the joins fail.
    p.got();
    let mut tries = 0;
    while !p.ended {
        p.s.handle_dialing(p.now);
        p.s.handle_connect_failed("connection refused".into(), p.now);
        p.pump();
        tries += 1;
        p.advance(Duration::from_secs(600));
    }
    assert_eq!(tries, RECONNECT.attempts.unwrap());
    p.s.finish(Vec::new());
    p.pump();
    let got = p.got();
    let all = texts(&got);
    assert!(
        all.contains("gave up after 12 attempts to reconnect: connection refused"),
        "{all}"
    );
    assert!(all.contains("remote-server-not-found"), "{all}");
}

#[test]
fn a_server_never_reached_fails_the_joins_at_once() {
    let mut p = Pair::new(params());
    p.ask(join("#t", "alice", R1));
    p.s.handle_dialing(p.now);
    p.s.handle_connect_failed("Connection refused (os error 111)".into(), p.now);
    p.pump();
    assert!(p.ended, "no reconnection for a link that never worked");
    assert_eq!(p.connects, 1);
    p.s.finish(Vec::new());
    p.pump();
    let all = texts(&p.got());
    assert!(
        all.contains("cannot reach the IRC server irc.x: Connection refused (os error 111)"),
        "{all}"
    );
}

#[test]
fn the_registration_timeout_covers_the_socket_and_the_welcome() {
    // No socket within the timeout (counted from the driver's turn).
    let mut p = Pair::new(params());
    p.ask(join("#t", "alice", R1));
    p.advance(Duration::from_secs(3600));
    assert!(!p.ended, "waiting for a turn has no deadline");
    p.s.handle_dialing(p.now);
    p.advance(REGISTRATION_TIMEOUT);
    assert!(p.ended);
    p.s.finish(Vec::new());
    p.pump();
    assert!(texts(&p.got()).contains("no connection within the registration timeout"));
    // A socket, but no welcome.
    let mut p = Pair::new(params());
    p.ask(join("#t", "alice", R1));
    p.dial();
    p.advance(Duration::from_secs(10));
    p.hear(&[":irc.x NOTICE * :*** Looking up your hostname"]);
    assert!(p.got().is_empty(), "sign-on chatter is not for the user");
    p.advance(REGISTRATION_TIMEOUT - Duration::from_secs(10));
    assert!(p.ended);
    p.s.finish(Vec::new());
    p.pump();
    assert!(texts(&p.got()).contains("no welcome from the server within 30 s"));
}

#[test]
fn leaving_every_room_while_reconnecting_ends_the_session() {
    let mut p = Pair::in_room();
    p.hang_up();
    p.got();
    p.ask(ToIrc::Leave {
        channel: "#t".into(),
        full: R1.into(),
    });
    assert!(p.ended);
    assert_eq!(p.connects, 1, "no reconnection for nobody");
    // A join that arrives as it ends goes back to the service.
    let again = p.s.finish(vec![join("#u", "alice", R2)]);
    assert_eq!(again.len(), 1);
    assert_eq!(attr(&again[0], "from"), R2);
    assert_eq!(
        attr(&again[0], "to"),
        occupant_jid("#u", SERVER, HOST, "alice")
    );
}

#[test]
fn a_line_without_end_drops_the_link() {
    let mut p = Pair::in_room();
    let endless = vec![b'x'; 64 * 1024];
    p.s.handle_input(&endless, p.now);
    p.pump();
    assert_eq!(p.closes, [None]);
    assert!(texts(&p.got()).contains("the server sent a line longer than 8703 bytes"));
}

#[test]
fn private_messages_wait_for_the_welcome_and_keep_the_link_a_while() {
    let mut p = Pair::new(params());
    p.ask(ToIrc::Private {
        nick: "bob".into(),
        full: R1.into(),
        body: "hi bob".into(),
        room: None,
    });
    p.dial();
    assert_eq!(p.lines(), ["NICK alice", "USER alice 0 * :alice@l"]);
    p.hear(&[":srv 001 alice :Welcome"]);
    assert_eq!(p.lines(), ["PRIVMSG bob :hi bob"]);
    p.hear(&[":bob!b@h PRIVMSG alice :hi alice"]);
    let got = p.got();
    assert_eq!(
        heads(&got),
        [(
            user_jid("bob", SERVER, HOST),
            R1.into(),
            "message/chat".into()
        )]
    );
    // The chat keeps the link for a quarter of an hour after the last
    // message, then it quits.
    p.idle(PRIVATE_IDLE - Duration::from_secs(1));
    assert!(!p.ended);
    p.idle(Duration::from_secs(1));
    assert!(p.ended);
    assert!(p.lines().contains(&"QUIT :left every channel".to_owned()));
}

#[test]
fn the_gateway_going_away_quits() {
    let mut p = Pair::in_room();
    p.s.handle_shutdown(p.now);
    p.pump();
    assert_eq!(p.lines(), ["QUIT :gateway shutting down"]);
    assert!(p.ended);
    p.s.finish(Vec::new());
    p.pump();
    // The resource hears that it left the room.
    assert_eq!(codes(&p.got()[0]), ["110"]);
}

#[test]
fn self_pings_say_whether_the_resource_is_in_the_room() {
    let mut p = Pair::in_room();
    let ping = |full: &str| ToIrc::SelfPing {
        channel: "#t".into(),
        full: full.into(),
        iq: Box::new(
            Element::new("iq", ns())
                .with_attr("from", full)
                .with_attr("to", occ("alice"))
                .with_attr("type", "get")
                .with_attr("id", "p1"),
        ),
    };
    p.ask(ping(R1));
    assert_eq!(
        heads(&p.got()),
        [(occ("alice"), R1.into(), "iq/result".into())]
    );
    p.ask(ping(R2));
    assert!(texts(&p.got()).contains("not-acceptable"));
}

#[test]
fn credentials_go_only_over_links_that_may_carry_them() {
    let mut params = params();
    params.profile.credentials = Credentials {
        server_password: Some("sesame".into()),
        ..Credentials::default()
    };
    params.profile.secure = false;
    let mut p = Pair::new(params.clone());
    p.ask(join("#t", "alice", R1));
    p.dial();
    assert_eq!(p.lines(), ["NICK alice", "USER alice 0 * :alice@l"]);
    assert!(texts(&p.got()).contains("your passwords were not sent"));
    params.profile.secure = true;
    let mut p = Pair::new(params);
    p.dial();
    assert_eq!(p.lines()[0], "PASS :sesame");
}
