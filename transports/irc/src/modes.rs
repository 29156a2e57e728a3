//! Channel modes as XEP-0045 roles and affiliations (pure).
//!
//! What the server supports comes from its ISUPPORT (005) line:
//! `PREFIX=(qaohv)~&@%+` says which modes give a member status and the
//! symbol NAMES shows for each, `CHANMODES=A,B,C,D` which other modes take
//! a parameter (so that `MODE #c +lo 10 bob` is read right). Without them
//! the RFC 1459 defaults hold: `(ov)@+` and `beI,k,l,imnpst`.
//!
//! The mapping (biboumi's, XEP-0045 §5): `q` owner, `a` and `o` admin, all
//! three moderators; `h` (half-op) member and moderator; `v` member and
//! participant; no status: no affiliation and participant, or visitor when
//! the channel is moderated (`+m`), where only voiced users may speak.

use crate::muc::Rank;

/// The status modes a server supports, highest first, with their NAMES
/// symbols, and which other channel modes take a parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerModes {
    /// (mode letter, NAMES symbol), highest first.
    pub prefix: Vec<(char, char)>,
    /// Modes with a parameter both when set and unset (lists and keys:
    /// CHANMODES groups A and B).
    pub always_param: String,
    /// Modes with a parameter only when set (group C, e.g. `l`).
    pub param_when_set: String,
}

impl Default for ServerModes {
    fn default() -> ServerModes {
        ServerModes {
            prefix: vec![('o', '@'), ('v', '+')],
            always_param: "beIk".into(),
            param_when_set: "l".into(),
        }
    }
}

/// One change from a MODE line: `+o bob`, `-m`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub plus: bool,
    pub mode: char,
    pub arg: Option<String>,
}

impl ServerModes {
    /// Reads the tokens of an ISUPPORT line (`PREFIX=(ov)@+`, …); tokens it
    /// does not know are ignored.
    pub fn isupport(&mut self, tokens: &[String]) {
        for t in tokens {
            if let Some(v) = t.strip_prefix("PREFIX=") {
                if let Some(p) = parse_prefix(v) {
                    self.prefix = p;
                }
            } else if let Some(v) = t.strip_prefix("CHANMODES=") {
                let groups: Vec<&str> = v.split(',').collect();
                if groups.len() >= 3 {
                    self.always_param = format!("{}{}", groups[0], groups[1]);
                    self.param_when_set = groups[2].to_string();
                }
            }
        }
    }

    fn is_status(&self, mode: char) -> bool {
        self.prefix.iter().any(|(m, _)| *m == mode)
    }

    /// Splits a NAMES entry (`@bob`, `@+erin`, `dave`) into the nick and
    /// its status modes (`"ov"`).
    pub fn split_name(&self, entry: &str) -> (String, String) {
        let mut modes = String::new();
        let mut rest = entry;
        while let Some(c) = rest.chars().next() {
            match self.prefix.iter().find(|(_, s)| *s == c) {
                Some((m, _)) => {
                    modes.push(*m);
                    rest = &rest[c.len_utf8()..];
                }
                None => break,
            }
        }
        (rest.to_string(), modes)
    }

    /// Reads the parameters of a channel MODE line after the channel name
    /// (`["+o-v", "bob", "carol"]`) into changes. A parameter missing at
    /// the end is `None`.
    pub fn changes(&self, params: &[String]) -> Vec<Change> {
        let mut out = Vec::new();
        let mut args = params.iter().skip(1);
        let Some(flags) = params.first() else {
            return out;
        };
        let mut plus = true;
        for c in flags.chars() {
            match c {
                '+' => plus = true,
                '-' => plus = false,
                mode => {
                    let takes = self.is_status(mode)
                        || self.always_param.contains(mode)
                        || (plus && self.param_when_set.contains(mode));
                    let arg = if takes { args.next().cloned() } else { None };
                    out.push(Change { plus, mode, arg });
                }
            }
        }
        out
    }

    /// The rank status modes give, in a channel that is `moderated` or not.
    pub fn rank(&self, modes: &str, moderated: bool) -> Rank {
        // The highest mode the occupant has, in the server's order.
        let top = self
            .prefix
            .iter()
            .map(|(m, _)| *m)
            .find(|m| modes.contains(*m));
        let (affiliation, role) = match top {
            Some('q') => ("owner", "moderator"),
            Some('a') | Some('o') => ("admin", "moderator"),
            Some('h') => ("member", "moderator"),
            Some('v') => ("member", "participant"),
            // A status mode of the server's own (`Y`, `!`…): ranked like
            // an operator when above `o` in PREFIX, else like voice.
            Some(m) => {
                let pos = |x: char| self.prefix.iter().position(|(p, _)| *p == x);
                match (pos(m), pos('o')) {
                    (Some(a), Some(b)) if a < b => ("admin", "moderator"),
                    _ => ("member", "participant"),
                }
            }
            None if moderated => ("none", "visitor"),
            None => ("none", "participant"),
        };
        Rank { affiliation, role }
    }

    /// Applies one status change to an occupant's modes.
    pub fn apply(&self, modes: &mut String, change: &Change) {
        if !self.is_status(change.mode) {
            return;
        }
        modes.retain(|c| c != change.mode);
        if change.plus {
            modes.push(change.mode);
        }
    }

    /// Whether `mode` is a status mode of this server.
    pub fn is_status_mode(&self, mode: char) -> bool {
        self.is_status(mode)
    }
}

/// `(qaohv)~&@%+` → pairs; `None` when malformed.
fn parse_prefix(v: &str) -> Option<Vec<(char, char)>> {
    let rest = v.strip_prefix('(')?;
    let (modes, symbols) = rest.split_once(')')?;
    if modes.chars().count() != symbols.chars().count() {
        return None;
    }
    Some(modes.chars().zip(symbols.chars()).collect())
}

/// The parameters of a raw IRC line (tags, prefix and command skipped; the
/// trailing parameter without its `:`).
pub fn params(line: &str) -> Vec<String> {
    let mut rest = line;
    if rest.starts_with('@') {
        rest = rest.split_once(' ').map_or("", |(_, r)| r);
    }
    rest = rest.trim_start_matches(' ');
    if rest.starts_with(':') {
        rest = rest.split_once(' ').map_or("", |(_, r)| r);
    }
    // The command.
    rest = rest.trim_start_matches(' ');
    rest = rest.split_once(' ').map_or("", |(_, r)| r);
    let mut out = Vec::new();
    loop {
        rest = rest.trim_start_matches(' ');
        if rest.is_empty() {
            break;
        }
        if let Some(t) = rest.strip_prefix(':') {
            out.push(t.to_string());
            break;
        }
        match rest.split_once(' ') {
            Some((p, r)) => {
                out.push(p.to_string());
                rest = r;
            }
            None => {
                out.push(rest.to_string());
                break;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn isupport_prefix_and_chanmodes() {
        let mut m = ServerModes::default();
        m.isupport(&s(&[
            "CHANTYPES=#&",
            "PREFIX=(qaohv)~&@%+",
            "CHANMODES=beI,k,lL,imnpst",
        ]));
        assert_eq!(m.prefix.len(), 5);
        assert_eq!(m.split_name("~@bob"), ("bob".into(), "qo".into()));
        assert_eq!(m.split_name("%h"), ("h".into(), "h".into()));
        assert_eq!(m.split_name("dave"), ("dave".into(), "".into()));
        assert_eq!(m.rank("qo", false).affiliation, "owner");
        assert_eq!(m.rank("a", false).affiliation, "admin");
        assert_eq!(m.rank("h", false).role, "moderator");
        // A malformed PREFIX leaves what was there.
        m.isupport(&s(&["PREFIX=(ov)@"]));
        assert_eq!(m.prefix.len(), 5);
    }

    #[test]
    fn mode_lines_are_read_with_their_parameters() {
        let m = ServerModes::default();
        let c = m.changes(&s(&["+lo-v+m", "10", "bob", "carol"]));
        assert_eq!(
            c,
            vec![
                Change {
                    plus: true,
                    mode: 'l',
                    arg: Some("10".into())
                },
                Change {
                    plus: true,
                    mode: 'o',
                    arg: Some("bob".into())
                },
                Change {
                    plus: false,
                    mode: 'v',
                    arg: Some("carol".into())
                },
                Change {
                    plus: true,
                    mode: 'm',
                    arg: None
                },
            ]
        );
        // -l takes no parameter; -k does.
        let c = m.changes(&s(&["-lk", "key"]));
        assert_eq!(c[0].arg, None);
        assert_eq!(c[1].arg.as_deref(), Some("key"));
    }

    #[test]
    fn ranks_follow_the_highest_status() {
        let m = ServerModes::default();
        let mut modes = String::new();
        assert_eq!(m.rank(&modes, false), Rank::NONE);
        assert_eq!(m.rank(&modes, true).role, "visitor");
        let plus = |mode, arg: &str| Change {
            plus: true,
            mode,
            arg: Some(arg.into()),
        };
        m.apply(&mut modes, &plus('v', "x"));
        assert_eq!(m.rank(&modes, true).role, "participant");
        assert_eq!(m.rank(&modes, true).affiliation, "member");
        m.apply(&mut modes, &plus('o', "x"));
        assert_eq!(m.rank(&modes, false).role, "moderator");
        assert_eq!(m.rank(&modes, false).affiliation, "admin");
        m.apply(
            &mut modes,
            &Change {
                plus: false,
                mode: 'o',
                arg: None,
            },
        );
        assert_eq!(modes, "v");
        // Not a status mode: no effect.
        m.apply(&mut modes, &plus('k', "x"));
        assert_eq!(modes, "v");
    }

    #[test]
    fn raw_parameters() {
        assert_eq!(
            params(":op!u@h MODE #c +o-v bob :carol"),
            s(&["#c", "+o-v", "bob", "carol"])
        );
        assert_eq!(
            params("@time=x :srv 324 me #c +mnt"),
            s(&["me", "#c", "+mnt"])
        );
        assert_eq!(params("PING"), Vec::<String>::new());
    }
}
