//! Signing on to an IRC server with the user's registered settings: the
//! lines sent before and just after registration (`PASS`, `NICK`, `USER`,
//! IRCv3 SASL PLAIN, NickServ `IDENTIFY`), as a sans-IO machine that
//! [`crate::connection`] feeds with parsed messages.
//!
//! The order on the wire:
//!
//! ```text
//! CAP LS 302                   only when a SASL account is registered
//! PASS :<server password>      only when a server password is registered
//! NICK <nick>
//! USER <username> 0 * :<real name>
//!   ← CAP * LS :… sasl …       → CAP REQ :sasl
//!   ← CAP * ACK :sasl          → AUTHENTICATE PLAIN
//!   ← AUTHENTICATE +           → AUTHENTICATE <base64 of account NUL account NUL password>
//!   ← 900 / 903                → CAP END (signed in)
//!   ← 902/904/905/906          → CAP END, and the user is told
//!   ← 001                      → PRIVMSG NickServ :IDENTIFY <password>
//! ```
//!
//! A SASL failure does not end the connection: the user is told (a message
//! from the IRC server's JID) and signs on unauthenticated. Someone whose
//! password changed can still talk and fix their settings with the
//! Configure command, and a channel that does require an identified user
//! refuses the join itself, which reaches the user as a join error. Failing
//! every join with `not-authorized` instead would lock the user out of the
//! whole network over one stale password.
//!
//! Secrets go only over connections that may carry them ([`Credentials`]
//! are dropped when `secure` is false: a plain-text connection to a server
//! the admin did not mark `allow-plain="true"`), and every line that
//! carries one is masked by [`mask`] before it can reach a log.

use std::borrow::Cow;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use irc_proto::{CapSubCommand, Command, Message, Response};

/// The longest AUTHENTICATE payload per line (IRCv3 SASL 3.1): longer
/// ones are split into 400-byte lines, and a payload that ends exactly on
/// a line boundary is followed by `AUTHENTICATE +`.
pub const AUTHENTICATE_CHUNK: usize = 400;

/// The secrets a user registered for one IRC server. `Debug` hides them.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    /// Sent as `PASS` before `NICK`.
    pub server_password: Option<String>,
    /// SASL PLAIN: account and password.
    pub sasl: Option<(String, String)>,
    /// Sent to NickServ with `IDENTIFY` once registered.
    pub nickserv_password: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("server_password", &self.server_password.is_some())
            .field("sasl_account", &self.sasl.as_ref().map(|(a, _)| a))
            .field("nickserv_password", &self.nickserv_password.is_some())
            .finish()
    }
}

impl Credentials {
    pub fn is_empty(&self) -> bool {
        self.server_password.is_none() && self.sasl.is_none() && self.nickserv_password.is_none()
    }
}

/// Everything a connection signs on with, from the user's registration
/// for that server ([`crate::settings`]); every part is optional.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Profile {
    /// The nick to sign on with instead of the one the first join asked
    /// for (the rooms then get status 210).
    pub nick: Option<String>,
    pub username: Option<String>,
    pub realname: Option<String>,
    pub credentials: Credentials,
    /// Whether this connection may carry credentials: TLS, or a plain
    /// server the admin explicitly allowed in clear.
    pub secure: bool,
}

/// Where SASL stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// No SASL asked for, or finished (either way).
    Off,
    /// `CAP LS` sent; collecting the capability list.
    Listing,
    /// `CAP REQ :sasl` sent.
    Requesting,
    /// `AUTHENTICATE PLAIN` sent, waiting for `+`.
    Mechanism,
    /// The payload sent, waiting for 903 or a failure.
    Authenticating,
}

/// What the connection does after a sign-on message.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Step {
    /// Lines to send, in order.
    pub lines: Vec<String>,
    /// A sentence for the user, sent from the IRC server's JID.
    pub notice: Option<String>,
}

/// The sign-on machine of one connection.
#[derive(Debug)]
pub struct SignOn {
    creds: Credentials,
    phase: Phase,
    /// Capabilities seen in a multi-line `CAP LS`.
    caps: Vec<String>,
    /// The SASL account the server said we are logged in as (900).
    pub account: Option<String>,
}

impl SignOn {
    /// The machine and the opening lines. `secure` says whether this
    /// connection may carry credentials (TLS, or a server the admin allows
    /// in clear); when it may not, they are dropped here and the notice
    /// says so.
    pub fn start(
        creds: Credentials,
        nick: &str,
        username: &str,
        realname: &str,
        secure: bool,
    ) -> (SignOn, Step) {
        let mut step = Step::default();
        let creds = if secure || creds.is_empty() {
            creds
        } else {
            step.notice = Some(
                "this connection is not encrypted and the gateway's administrator has not \
                 allowed credentials to go over it in clear: your passwords were not sent"
                    .into(),
            );
            Credentials::default()
        };
        let mut phase = Phase::Off;
        if creds.sasl.is_some() {
            step.lines.push("CAP LS 302".into());
            phase = Phase::Listing;
        }
        if let Some(p) = &creds.server_password {
            step.lines.push(format!("PASS :{p}"));
        }
        step.lines.push(format!("NICK {nick}"));
        step.lines.push(format!("USER {username} 0 * :{realname}"));
        (
            SignOn {
                creds,
                phase,
                caps: Vec::new(),
                account: None,
            },
            step,
        )
    }

    /// Whether SASL is still being negotiated.
    pub fn negotiating(&self) -> bool {
        self.phase != Phase::Off
    }

    /// Handles a message if it is part of the sign-on (CAP, AUTHENTICATE,
    /// the SASL numerics); `None` for any other message.
    pub fn handle(&mut self, m: &Message) -> Option<Step> {
        match &m.command {
            Command::CAP(_, sub, a, b) => Some(self.cap(sub, a.as_deref(), b.as_deref())),
            Command::AUTHENTICATE(arg) => Some(self.authenticate(arg)),
            Command::Response(resp, args) => self.numeric(*resp, args),
            _ => None,
        }
    }

    fn cap(&mut self, sub: &CapSubCommand, a: Option<&str>, b: Option<&str>) -> Step {
        // `CAP * LS :caps`, or `CAP * LS * :caps` for a list that goes on
        // (CAP 302); irc-proto puts the `*` in the third slot then.
        let (more, list) = match b {
            Some(list) => (a == Some("*"), list),
            None => (false, a.unwrap_or("")),
        };
        match (sub, self.phase) {
            (CapSubCommand::LS, Phase::Listing) => {
                self.caps.extend(list.split_whitespace().map(str::to_owned));
                if more {
                    return Step::default();
                }
                let plain = self.caps.iter().any(|c| match c.split_once('=') {
                    None => c == "sasl",
                    // `sasl=PLAIN,EXTERNAL` (CAP 302) lists the mechanisms.
                    Some((name, mechs)) => {
                        name == "sasl" && mechs.split(',').any(|m| m.eq_ignore_ascii_case("PLAIN"))
                    }
                });
                if plain {
                    self.phase = Phase::Requesting;
                    Step {
                        lines: vec!["CAP REQ :sasl".into()],
                        notice: None,
                    }
                } else {
                    self.give_up("the IRC server does not offer SASL PLAIN")
                }
            }
            (CapSubCommand::ACK, Phase::Requesting)
                if list.split_whitespace().any(|c| c == "sasl") =>
            {
                self.phase = Phase::Mechanism;
                Step {
                    lines: vec!["AUTHENTICATE PLAIN".into()],
                    notice: None,
                }
            }
            (CapSubCommand::NAK, Phase::Requesting) => {
                self.give_up("the IRC server refused to enable SASL")
            }
            _ => Step::default(),
        }
    }

    fn authenticate(&mut self, arg: &str) -> Step {
        if self.phase != Phase::Mechanism || arg != "+" {
            return Step::default();
        }
        let Some((account, password)) = &self.creds.sasl else {
            return Step::default();
        };
        self.phase = Phase::Authenticating;
        Step {
            lines: authenticate_lines(&plain_payload(account, password)),
            notice: None,
        }
    }

    fn numeric(&mut self, resp: Response, args: &[String]) -> Option<Step> {
        let text = || args.last().cloned().unwrap_or_default();
        Some(match resp {
            Response::RPL_LOGGEDIN => {
                // `900 <nick> <nick!user@host> <account> :You are now logged in as <account>`
                self.account = args.get(2).cloned();
                Step::default()
            }
            Response::RPL_SASLSUCCESS if self.phase != Phase::Off => {
                self.phase = Phase::Off;
                Step {
                    lines: vec!["CAP END".into()],
                    notice: None,
                }
            }
            Response::ERR_NICKLOCKED
            | Response::ERR_SASLFAIL
            | Response::ERR_SASLTOOLONG
            | Response::ERR_SASLABORT
                if self.phase != Phase::Off =>
            {
                let why = text();
                self.give_up(&format!(
                    "SASL authentication failed ({}: {why})",
                    resp as u16
                ))
            }
            // 908 lists the mechanisms before 904 ends the attempt.
            Response::RPL_SASLMECHS => Step::default(),
            // A server that does not know CAP goes on registering.
            Response::ERR_UNKNOWNCOMMAND
                if self.phase == Phase::Listing
                    && args.get(1).is_some_and(|c| c.eq_ignore_ascii_case("CAP")) =>
            {
                self.phase = Phase::Off;
                Step {
                    lines: Vec::new(),
                    notice: Some(
                        "the IRC server does not support SASL; signed on without it".into(),
                    ),
                }
            }
            _ => return None,
        })
    }

    /// Ends the SASL attempt: `CAP END` (registration goes on,
    /// unauthenticated) and a sentence for the user.
    fn give_up(&mut self, why: &str) -> Step {
        self.phase = Phase::Off;
        Step {
            lines: vec!["CAP END".into()],
            notice: Some(format!("{why}; signed on without an account")),
        }
    }

    /// The lines to send once the server said 001: NickServ `IDENTIFY`
    /// when a NickServ password is registered. A server that never
    /// answered CAP has registered us without SASL: the user is told.
    pub fn welcomed(&mut self) -> Step {
        let mut step = Step::default();
        if self.phase != Phase::Off {
            self.phase = Phase::Off;
            step.notice = Some("the IRC server does not support SASL; signed on without it".into());
        }
        if let Some(p) = &self.creds.nickserv_password {
            step.lines.push(format!("PRIVMSG NickServ :IDENTIFY {p}"));
        }
        step
    }
}

/// The SASL PLAIN message (RFC 4616, the link kit's), base64: the account
/// as both authorization and authentication identity, as most IRC clients
/// send it, and the password as registered (IRC services do no SASLprep).
pub fn plain_payload(account: &str, password: &str) -> String {
    BASE64.encode(switchboard_link::scram::plain_message(
        account, account, password,
    ))
}

/// `AUTHENTICATE` lines for a base64 payload, split into
/// [`AUTHENTICATE_CHUNK`]-byte pieces.
pub fn authenticate_lines(payload: &str) -> Vec<String> {
    let mut lines: Vec<String> = payload
        .as_bytes()
        .chunks(AUTHENTICATE_CHUNK)
        .map(|c| format!("AUTHENTICATE {}", String::from_utf8_lossy(c)))
        .collect();
    if payload.is_empty() || payload.len() % AUTHENTICATE_CHUNK == 0 {
        lines.push("AUTHENTICATE +".into());
    }
    lines
}

/// A line as it may be logged: the arguments of `PASS` and
/// `AUTHENTICATE` (the mechanism name and `+` are masked like the payload:
/// telling them apart would mean trusting the line's shape), and the text
/// of a message to or from NickServ, are replaced by `***`. Works on lines in either
/// direction, with or without a `:prefix` or tags.
pub fn mask(line: &str) -> Cow<'_, str> {
    let mut rest = line;
    let mut head = 0;
    let mut source = "";
    // Skip tags and prefix.
    for lead in ['@', ':'] {
        if rest.starts_with(lead) {
            match rest.find(' ') {
                Some(i) => {
                    if lead == ':' {
                        source = &rest[1..i];
                    }
                    head += i + 1;
                    rest = &line[head..];
                }
                None => return Cow::Borrowed(line),
            }
        }
    }
    // NickServ's answers may echo a password (atheme's REGISTER does).
    let from_nickserv = source
        .split(['!', '@'])
        .next()
        .is_some_and(|n| n.eq_ignore_ascii_case("NickServ"));
    let (cmd, args) = rest.split_once(' ').unwrap_or((rest, ""));
    let secret = if args.is_empty() {
        false
    } else if cmd.eq_ignore_ascii_case("PASS") || cmd.eq_ignore_ascii_case("AUTHENTICATE") {
        true
    } else if cmd.eq_ignore_ascii_case("PRIVMSG") || cmd.eq_ignore_ascii_case("NOTICE") {
        // A message to NickServ (or to NickServ@services.host) carries
        // IDENTIFY, REGISTER, SET PASSWORD, … : all of it is masked.
        let target = args.split(' ').next().unwrap_or("");
        let name = target.split('@').next().unwrap_or("");
        (from_nickserv || name.eq_ignore_ascii_case("NickServ")) && args.len() > target.len()
    } else {
        false
    };
    if !secret {
        return Cow::Borrowed(line);
    }
    let keep = if cmd.eq_ignore_ascii_case("PRIVMSG") || cmd.eq_ignore_ascii_case("NOTICE") {
        let target = args.split(' ').next().unwrap_or("");
        head + cmd.len() + 1 + target.len()
    } else {
        head + cmd.len()
    };
    Cow::Owned(format!("{} ***", &line[..keep]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(line: &str) -> Message {
        line.parse().unwrap()
    }

    fn creds() -> Credentials {
        Credentials {
            server_password: Some("srv pw".into()),
            sasl: Some(("romeo".into(), "s3cret".into())),
            nickserv_password: Some("ns-pw".into()),
        }
    }

    #[test]
    fn the_sasl_plain_payload() {
        // "romeo\0romeo\0s3cret"
        assert_eq!(plain_payload("romeo", "s3cret"), "cm9tZW8Acm9tZW8AczNjcmV0");
        assert_eq!(
            BASE64.decode(plain_payload("jilles", "sesame")).unwrap(),
            b"jilles\0jilles\0sesame"
        );
    }

    #[test]
    fn long_payloads_are_split_in_400_byte_lines() {
        assert_eq!(authenticate_lines("abc"), ["AUTHENTICATE abc"]);
        let exact = "x".repeat(400);
        assert_eq!(
            authenticate_lines(&exact),
            [format!("AUTHENTICATE {exact}"), "AUTHENTICATE +".into()]
        );
        let long = "y".repeat(500);
        let lines = authenticate_lines(&long);
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].len(), "AUTHENTICATE ".len() + 400);
        assert_eq!(lines[1], format!("AUTHENTICATE {}", "y".repeat(100)));
    }

    #[test]
    fn the_full_sasl_sequence() {
        let (mut s, step) = SignOn::start(creds(), "romeo", "rmontague", "Romeo M", true);
        assert_eq!(
            step.lines,
            [
                "CAP LS 302",
                "PASS :srv pw",
                "NICK romeo",
                "USER rmontague 0 * :Romeo M"
            ]
        );
        assert_eq!(step.notice, None);
        assert!(s.negotiating());
        // A multi-line CAP 302 list: nothing until the last line.
        let st = s
            .handle(&msg(":irc.test CAP * LS * :multi-prefix away-notify"))
            .unwrap();
        assert_eq!(st, Step::default());
        let st = s
            .handle(&msg(
                ":irc.test CAP * LS :sasl=PLAIN,EXTERNAL extended-join",
            ))
            .unwrap();
        assert_eq!(st.lines, ["CAP REQ :sasl"]);
        let st = s.handle(&msg(":irc.test CAP romeo ACK :sasl")).unwrap();
        assert_eq!(st.lines, ["AUTHENTICATE PLAIN"]);
        let st = s.handle(&msg("AUTHENTICATE +")).unwrap();
        assert_eq!(st.lines, ["AUTHENTICATE cm9tZW8Acm9tZW8AczNjcmV0"]);
        let st = s
            .handle(&msg(
                ":irc.test 900 romeo romeo!r@h romeo :You are now logged in as romeo",
            ))
            .unwrap();
        assert!(st.lines.is_empty());
        assert_eq!(s.account.as_deref(), Some("romeo"));
        let st = s
            .handle(&msg(":irc.test 903 romeo :SASL authentication successful"))
            .unwrap();
        assert_eq!(st.lines, ["CAP END"]);
        assert!(!s.negotiating());
        // Not sign-on business.
        assert!(s.handle(&msg(":irc.test 001 romeo :Welcome")).is_none());
        let st = s.welcomed();
        assert_eq!(st.lines, ["PRIVMSG NickServ :IDENTIFY ns-pw"]);
        assert_eq!(st.notice, None);
    }

    #[test]
    fn a_sasl_failure_tells_the_user_and_goes_on() {
        let (mut s, _) = SignOn::start(creds(), "romeo", "r", "R", true);
        s.handle(&msg(":irc.test CAP * LS :sasl")).unwrap();
        s.handle(&msg(":irc.test CAP * ACK :sasl")).unwrap();
        s.handle(&msg("AUTHENTICATE +")).unwrap();
        let st = s
            .handle(&msg(":irc.test 904 romeo :SASL authentication failed"))
            .unwrap();
        assert_eq!(st.lines, ["CAP END"]);
        let notice = st.notice.unwrap();
        assert!(
            notice.contains("904") && notice.contains("failed"),
            "{notice}"
        );
        // Nothing more happens on a late failure numeric.
        assert!(s
            .handle(&msg(":irc.test 906 romeo :aborted"))
            .is_none_or(|st| st == Step::default()));
        assert!(!s.negotiating());
    }

    #[test]
    fn servers_without_sasl() {
        // CAP known, no sasl.
        let (mut s, _) = SignOn::start(creds(), "romeo", "r", "R", true);
        let st = s.handle(&msg(":irc.test CAP * LS :multi-prefix")).unwrap();
        assert_eq!(st.lines, ["CAP END"]);
        assert!(st.notice.unwrap().contains("does not offer SASL PLAIN"));
        // Only other mechanisms.
        let (mut s, _) = SignOn::start(creds(), "romeo", "r", "R", true);
        let st = s.handle(&msg(":irc.test CAP * LS :sasl=EXTERNAL")).unwrap();
        assert_eq!(st.lines, ["CAP END"]);
        // NAK.
        let (mut s, _) = SignOn::start(creds(), "romeo", "r", "R", true);
        s.handle(&msg(":irc.test CAP * LS :sasl")).unwrap();
        let st = s.handle(&msg(":irc.test CAP * NAK :sasl")).unwrap();
        assert_eq!(st.lines, ["CAP END"]);
        // CAP unknown.
        let (mut s, _) = SignOn::start(creds(), "romeo", "r", "R", true);
        let st = s
            .handle(&msg(":irc.test 421 * CAP :Unknown command"))
            .unwrap();
        assert!(st.lines.is_empty());
        assert!(st.notice.is_some());
        // Registered without a word about CAP.
        let (mut s, _) = SignOn::start(creds(), "romeo", "r", "R", true);
        let st = s.welcomed();
        assert!(st.notice.is_some());
        assert_eq!(st.lines, ["PRIVMSG NickServ :IDENTIFY ns-pw"]);
    }

    #[test]
    fn without_credentials_only_nick_and_user() {
        let (mut s, step) = SignOn::start(Credentials::default(), "romeo", "r", "R", false);
        assert_eq!(step.lines, ["NICK romeo", "USER r 0 * :R"]);
        assert_eq!(step.notice, None);
        assert!(!s.negotiating());
        assert_eq!(s.welcomed(), Step::default());
    }

    #[test]
    fn no_credential_goes_over_a_connection_that_may_not_carry_it() {
        let (mut s, step) = SignOn::start(creds(), "romeo", "r", "R", false);
        assert_eq!(step.lines, ["NICK romeo", "USER r 0 * :R"]);
        assert!(step.notice.unwrap().contains("not sent"));
        assert!(!s.negotiating());
        assert!(s.welcomed().lines.is_empty());
        // Even a server that offers SASL gets nothing.
        assert_eq!(
            s.handle(&msg(":irc.test CAP * LS :sasl")).unwrap(),
            Step::default()
        );
        assert_eq!(s.handle(&msg("AUTHENTICATE +")).unwrap(), Step::default());
    }

    #[test]
    fn secrets_are_masked_in_logs() {
        for (line, shown) in [
            ("PASS :srv pw", "PASS ***"),
            ("PASS secret", "PASS ***"),
            ("pass secret", "pass ***"),
            ("AUTHENTICATE cm9tZW8Acm9tZW8AczNjcmV0", "AUTHENTICATE ***"),
            ("AUTHENTICATE PLAIN", "AUTHENTICATE ***"),
            ("PRIVMSG NickServ :IDENTIFY ns-pw", "PRIVMSG NickServ ***"),
            (
                "PRIVMSG nickserv :identify romeo ns-pw",
                "PRIVMSG nickserv ***",
            ),
            (
                "PRIVMSG NickServ@services.test :IDENTIFY x",
                "PRIVMSG NickServ@services.test ***",
            ),
            ("@time=x :me PASS :p", "@time=x :me PASS ***"),
        ] {
            assert_eq!(mask(line), shown, "{line}");
        }
        assert_eq!(
            mask(
                ":NickServ!s@services NOTICE romeo :romeo is now registered, with the password pw"
            ),
            ":NickServ!s@services NOTICE romeo ***"
        );
        for kept in [
            "NICK romeo",
            "PRIVMSG #chan :IDENTIFY is a word",
            "PRIVMSG bob :hello",
            ":bob!b@h PRIVMSG romeo :hello",
            "CAP REQ :sasl",
            "PASS",
        ] {
            assert_eq!(mask(kept), kept);
        }
    }
}
