//! Parsing the typed values written in attributes and text: durations,
//! socket addresses, address ranges, booleans, log filters and URIs.
//!
//! These functions know nothing about elements or positions; they say what
//! is wrong with a value, and the tree walker places that at the element.

use crate::suggest::closest;
use crate::IpRange;
use std::net::SocketAddr;
use std::time::Duration;

/// What is wrong with a value: the message, and a hint where one helps.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Problem {
    pub(crate) message: String,
    pub(crate) hint: Option<String>,
}

/// A duration: a whole number followed by `s`, `m`, `h` or `d`, or a bare
/// number of seconds (`30s`, `5m`, `1h`, `30d`, `90`).
///
/// Fractions and compound forms (`1h30m`) are deliberately not accepted:
/// every timeout in the config is a round figure, and a small grammar is
/// one an admin can remember without the manual.
pub(crate) fn duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let unit_at = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(unit_at);
    if digits.is_empty() {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    let scale = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return None,
    };
    n.checked_mul(scale).map(Duration::from_secs)
}

/// A rate, `N/PERIOD` with a whole number above zero and a
/// [`duration`] above zero (`500/1s`, `6000/1m`), or `off` (`Some(None)`);
/// `None` when it is neither.
pub(crate) fn rate(text: &str) -> Option<Option<crate::Rate>> {
    let text = text.trim();
    if text.eq_ignore_ascii_case("off") {
        return Some(None);
    }
    let (n, per) = text.split_once('/')?;
    let count: u32 = n.trim().parse().ok()?;
    let per = duration(per)?;
    (count > 0 && !per.is_zero()).then_some(Some(crate::Rate { count, per }))
}

/// A listening address, `IP:PORT` with IPv6 in brackets. Host names are
/// refused: a listener binds to an interface address, and resolving a name
/// at startup would make the bound interface depend on DNS.
pub(crate) fn socket_addr(text: &str) -> Result<SocketAddr, Problem> {
    text.trim().parse().map_err(|_| Problem {
        message: format!("'{text}' is not a socket address"),
        hint: Some("write it as IP:PORT, e.g. [::]:5222 or 127.0.0.1:5222".to_string()),
    })
}

/// A list of addresses and CIDR ranges separated by spaces or commas
/// (`127.0.0.0/8 ::1`); empty is an empty list.
pub(crate) fn ip_ranges(text: &str) -> Result<Vec<IpRange>, Problem> {
    text.split(|c: char| c.is_whitespace() || c == ',')
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse().map_err(|e: crate::InvalidRange| Problem {
                message: e.message,
                hint: Some(match e.suggestion {
                    Some(r) => format!("did you mean {r}? (or the address alone, without /)"),
                    None => "write addresses or CIDR ranges separated by spaces, \
                             e.g. \"127.0.0.0/8 ::1 192.0.2.0/24\""
                        .to_string(),
                }),
            })
        })
        .collect()
}

/// A boolean attribute: `true` or `false`, in any case.
pub(crate) fn boolean(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}

/// A size in bytes: a whole number, optionally followed by K, M or G
/// (binary multiples, case-insensitive, an optional trailing B or iB).
pub fn byte_size(text: &str) -> Option<usize> {
    let t = text.trim().to_ascii_uppercase();
    let t = t
        .strip_suffix("IB")
        .or_else(|| t.strip_suffix('B'))
        .unwrap_or(&t);
    let digits_end = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(digits_end);
    if digits.is_empty() {
        return None;
    }
    let n: usize = digits.parse().ok()?;
    let scale: usize = match unit.trim() {
        "" => 1,
        "K" => 1 << 10,
        "M" => 1 << 20,
        "G" => 1 << 30,
        _ => return None,
    };
    n.checked_mul(scale)
}

/// A URI as XEP-0157 contact addresses need one (RFC 3986 §3): a scheme
/// (a letter, then letters, digits, `+`, `-` or `.`), a colon and a
/// non-empty rest without spaces or control characters. What follows the
/// scheme is the scheme's business and is not checked further. Returns
/// why not.
pub(crate) fn uri(text: &str) -> Result<(), &'static str> {
    let Some((scheme, rest)) = text.split_once(':') else {
        return Err("it has no scheme (such as mailto: or xmpp:)");
    };
    let mut chars = scheme.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic());
    if !first_ok || !chars.all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)) {
        return Err("its scheme must start with a letter and hold only letters, digits, +, - or .");
    }
    if rest.is_empty() {
        return Err("nothing follows the scheme");
    }
    if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("a URI holds no spaces (write a space as %20)");
    }
    Ok(())
}

/// The levels a log filter may name.
const LEVELS: &[&str] = &["trace", "debug", "info", "warn", "error", "off"];

/// A log filter: comma-separated directives, each a level (`info`) or a
/// module path and a level (`switchboard_core=debug`).
///
/// This is a strict subset of what the logging library accepts. It leaves
/// out a bare module path (which the library reads as "this module at
/// every level") because `level="inof"` would then be a valid filter that
/// silently logs nothing of the server's own; a typo here should be an
/// error with a suggestion instead.
pub(crate) fn log_filter(text: &str) -> Result<String, Problem> {
    let text = text.trim();
    let help = "use trace, debug, info, warn, error or off, \
                optionally per module: info,switchboard_core=debug";
    if text.is_empty() {
        return Err(Problem {
            message: "the log level is empty".to_string(),
            hint: Some(help.to_string()),
        });
    }
    for directive in text.split(',').map(str::trim) {
        let (target, level) = match directive.split_once('=') {
            Some((target, level)) => (Some(target.trim()), level.trim()),
            None => (None, directive),
        };
        if let Some(target) = target {
            let valid = !target.is_empty()
                && target
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':');
            if !valid {
                return Err(Problem {
                    message: format!("'{target}' is not a module path in log level \"{text}\""),
                    hint: Some(help.to_string()),
                });
            }
        }
        if !LEVELS.contains(&level.to_ascii_lowercase().as_str()) {
            let message = match closest(level, LEVELS) {
                Some(s) => format!("'{level}' is not a log level — did you mean '{s}'?"),
                None => format!("'{level}' is not a log level"),
            };
            return Err(Problem {
                message,
                hint: Some(help.to_string()),
            });
        }
    }
    Ok(text.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris() {
        for good in [
            "mailto:abuse@example.org",
            "xmpp:admin@example.org?message",
            "https://example.org/support",
            "tel:+1-555-0100",
        ] {
            assert_eq!(uri(good), Ok(()), "{good}");
        }
        assert_eq!(
            uri("abuse@example.org"),
            Err("it has no scheme (such as mailto: or xmpp:)")
        );
        assert!(uri("1http://x").is_err());
        assert!(uri("ma il:x").is_err());
        assert_eq!(uri("mailto:"), Err("nothing follows the scheme"));
        assert_eq!(
            uri("https://example.org/a b"),
            Err("a URI holds no spaces (write a space as %20)")
        );
    }

    #[test]
    fn durations() {
        assert_eq!(duration("30s"), Some(Duration::from_secs(30)));
        assert_eq!(duration("5m"), Some(Duration::from_secs(300)));
        assert_eq!(duration("1h"), Some(Duration::from_secs(3600)));
        assert_eq!(duration("30d"), Some(Duration::from_secs(30 * 86_400)));
        assert_eq!(duration("90"), Some(Duration::from_secs(90)));
        assert_eq!(duration(" 45s "), Some(Duration::from_secs(45)));
        assert_eq!(duration("0"), Some(Duration::ZERO));
        for bad in [
            "",
            "s",
            "1.5m",
            "5 m",
            "-5s",
            "1w",
            "1h30m",
            "soon",
            "99999999999999999999h",
        ] {
            assert_eq!(duration(bad), None, "{bad:?}");
        }
        assert_eq!(duration(&format!("{}h", u64::MAX / 3600 + 1)), None);
    }

    #[test]
    fn socket_addrs() {
        assert_eq!(socket_addr("[::]:5222").unwrap().to_string(), "[::]:5222");
        assert_eq!(
            socket_addr(" 127.0.0.1:5347 ").unwrap().to_string(),
            "127.0.0.1:5347"
        );
        for bad in [
            "localhost:5222",
            "0.0.0.0",
            ":::5222",
            "[::]",
            "1.2.3.4:99999",
        ] {
            let p = socket_addr(bad).unwrap_err();
            assert_eq!(p.message, format!("'{bad}' is not a socket address"));
        }
    }

    #[test]
    fn byte_sizes() {
        assert_eq!(byte_size("65536"), Some(65536));
        assert_eq!(byte_size("64K"), Some(65536));
        assert_eq!(byte_size("10 MiB"), Some(10 << 20));
        assert_eq!(byte_size("1g"), Some(1 << 30));
        assert_eq!(byte_size("1T"), None);
        assert_eq!(byte_size("M"), None);
    }

    #[test]
    fn booleans() {
        assert_eq!(boolean("true"), Some(true));
        assert_eq!(boolean("FALSE"), Some(false));
        assert_eq!(boolean("yes"), None);
    }

    #[test]
    fn log_filters() {
        assert_eq!(log_filter("info").unwrap(), "info");
        assert_eq!(log_filter(" DEBUG ").unwrap(), "DEBUG");
        assert_eq!(
            log_filter("info,switchboard_core=trace, switchboard_xml::parser=off").unwrap(),
            "info,switchboard_core=trace, switchboard_xml::parser=off"
        );
        assert_eq!(
            log_filter("inof").unwrap_err().message,
            "'inof' is not a log level — did you mean 'info'?"
        );
        assert_eq!(
            log_filter("info,switchboard_core=verbose")
                .unwrap_err()
                .message,
            "'verbose' is not a log level"
        );
        assert_eq!(
            log_filter("a b=info").unwrap_err().message,
            "'a b' is not a module path in log level \"a b=info\""
        );
        assert_eq!(
            log_filter("").unwrap_err().message,
            "the log level is empty"
        );
        assert!(log_filter("info,").is_err());
    }
}
