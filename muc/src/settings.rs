//! The service's own settings, read from its `<service type="muc">`
//! element. Every attribute is checked, and an error names the attribute
//! and what it accepts; the caller adds the file position.
//!
//! ```xml
//! <service id="conference.example.org" type="muc"
//!          create="local" domains="example.org" admins="boss@example.org"
//!          max-rooms-per-user="20" max-occupants="1000"
//!          max-message-bytes="16384" message-rate="50/10s"
//!          history="20" history-max="100"
//!          archive="true" archive-retention="365d"/>
//! ```

use std::time::Duration;

use switchboard_jid::Jid;
use switchboard_xml::Element;

use crate::config::Bounds;

/// Who may create rooms (`create=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CreatePolicy {
    /// Anyone who can reach the service, from any server.
    Anyone,
    /// Users of the service's domains (`domains=`).
    Local,
    /// Only the host's admins (and `admins=`).
    Admins,
}

/// A message rate: `count` messages per `per`, with bursts of `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub count: u32,
    pub per: Duration,
}

/// Everything the service reads from its `<service>` element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub create: CreatePolicy,
    /// The domains whose users are local (`create="local"`).
    pub domains: Vec<String>,
    /// Service admins named in the config, as bare JIDs; the host's
    /// admins are added at run time.
    pub admins: Vec<String>,
    pub max_rooms_per_user: usize,
    pub bounds: Bounds,
    /// The largest groupchat or private message, serialized.
    pub max_message_bytes: usize,
    /// Per occupant; `None` turns rate limiting off.
    pub message_rate: Option<Rate>,
    /// Archive entries older than this are deleted; `None` keeps them.
    pub archive_retention: Option<Duration>,
}

/// The attributes this service reads (plus the server's own).
const KNOWN: &[&str] = &[
    "id",
    "type",
    "secret",
    "name",
    "create",
    "domains",
    "admins",
    "max-rooms-per-user",
    "max-occupants",
    "max-message-bytes",
    "message-rate",
    "history",
    "history-max",
    "archive",
    "archive-retention",
];

impl Settings {
    /// The defaults for a service at `id` serving `domains`.
    pub fn defaults(domains: Vec<String>) -> Settings {
        Settings {
            create: CreatePolicy::Local,
            domains,
            admins: Vec::new(),
            max_rooms_per_user: 20,
            bounds: Bounds {
                max_occupants: 1000,
                history_default: 20,
                history_max: 100,
                archiving_default: true,
            },
            max_message_bytes: 16 * 1024,
            message_rate: Some(Rate {
                count: 50,
                per: Duration::from_secs(10),
            }),
            archive_retention: Some(Duration::from_secs(365 * 86_400)),
        }
    }

    /// Reads the settings of the service `id` from its element.
    pub fn from_config(id: &str, el: &Element) -> Result<Settings, String> {
        if let Some((name, _)) = el.attrs.iter().find(|(k, _)| !KNOWN.contains(&k.as_str())) {
            return Err(format!(
                "unknown attribute {name}= on a muc <service>; it accepts: {}",
                KNOWN[4..].join(", ")
            ));
        }
        if let Some(child) = el.elements().next() {
            return Err(format!(
                "a muc <service> takes no <{}>: its settings are attributes",
                child.name
            ));
        }
        let domains: Vec<String> = match el.attr("domains") {
            Some(list) => list
                .split_whitespace()
                .map(|d| {
                    switchboard_jid::normalize_domain(d)
                        .map_err(|e| format!("domains=: \"{d}\" is not a domain: {e}"))
                })
                .collect::<Result<_, _>>()?,
            None => match id.split_once('.') {
                Some((_, parent)) => vec![parent.to_string()],
                None => Vec::new(),
            },
        };
        let mut s = Settings::defaults(domains);
        if let Some(v) = el.attr("create") {
            s.create = match v.trim().to_ascii_lowercase().as_str() {
                "anyone" => CreatePolicy::Anyone,
                "local" => CreatePolicy::Local,
                "admins" => CreatePolicy::Admins,
                _ => {
                    return Err(format!(
                        "create=\"{v}\": say who may create rooms: anyone, local or admins"
                    ))
                }
            };
        }
        if s.create == CreatePolicy::Local && s.domains.is_empty() {
            return Err(format!(
                "cannot tell whose users are local to {id}; say domains=\"example.org\""
            ));
        }
        if let Some(list) = el.attr("admins") {
            for a in list.split_whitespace() {
                let j = Jid::parse(a).map_err(|e| format!("admins=: \"{a}\" is not a JID: {e}"))?;
                s.admins.push(j.to_bare().to_string());
            }
        }
        let count = |name: &str, min: usize| -> Result<Option<usize>, String> {
            match el.attr(name) {
                None => Ok(None),
                Some(v) => match v.trim().parse::<usize>() {
                    Ok(n) if n >= min => Ok(Some(n)),
                    _ => Err(format!(
                        "{name}=\"{v}\": expected a whole number, at least {min}"
                    )),
                },
            }
        };
        if let Some(n) = count("max-rooms-per-user", 1)? {
            s.max_rooms_per_user = n;
        }
        if let Some(n) = count("max-occupants", 2)? {
            s.bounds.max_occupants = n;
        }
        if let Some(n) = count("max-message-bytes", 512)? {
            s.max_message_bytes = n;
        }
        if let Some(n) = count("history-max", 0)? {
            s.bounds.history_max = n;
        }
        if let Some(n) = count("history", 0)? {
            if n > s.bounds.history_max {
                return Err(format!(
                    "history=\"{n}\" is more than history-max=\"{}\"",
                    s.bounds.history_max
                ));
            }
            s.bounds.history_default = n;
        } else {
            s.bounds.history_default = s.bounds.history_default.min(s.bounds.history_max);
        }
        if let Some(v) = el.attr("archive") {
            s.bounds.archiving_default = match v.trim().to_ascii_lowercase().as_str() {
                "true" | "1" | "on" => true,
                "false" | "0" | "off" => false,
                _ => return Err(format!("archive=\"{v}\": expected true or false")),
            };
        }
        if let Some(v) = el.attr("message-rate") {
            s.message_rate = parse_rate(v)?;
        }
        if let Some(v) = el.attr("archive-retention") {
            s.archive_retention = match v.trim() {
                "forever" => None,
                t => Some(duration(t).ok_or_else(|| {
                    format!(
                        "archive-retention=\"{v}\": expected a duration such as 30d, 12h or 90m, or \"forever\""
                    )
                })?),
            };
        }
        Ok(s)
    }

    /// Whether `user` (a bare JID) is one of the service's own admins.
    pub fn is_admin(&self, user: &str) -> bool {
        self.admins.iter().any(|a| a == user)
    }
}

/// `N/PERIOD` (`50/10s`), or `off`.
fn parse_rate(v: &str) -> Result<Option<Rate>, String> {
    let t = v.trim();
    if t.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    let bad = || {
        format!(
            "message-rate=\"{v}\": expected messages per period, such as 50/10s or 100/1m, or off"
        )
    };
    let (n, per) = t.split_once('/').ok_or_else(bad)?;
    let count: u32 = n.trim().parse().map_err(|_| bad())?;
    let per = duration(per.trim()).ok_or_else(bad)?;
    if count == 0 || per.is_zero() {
        return Err(bad());
    }
    Ok(Some(Rate { count, per }))
}

/// A whole number with s, m, h or d (or bare seconds).
fn duration(t: &str) -> Option<Duration> {
    let (num, unit) = match t.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => t.split_at(i),
        None => (t, "s"),
    };
    let n: u64 = num.parse().ok()?;
    let secs = match unit {
        "s" => n,
        "m" => n.checked_mul(60)?,
        "h" => n.checked_mul(3600)?,
        "d" => n.checked_mul(86_400)?,
        _ => return None,
    };
    Some(Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn el(attrs: &[(&str, &str)]) -> Element {
        let mut e = Element::new("service", "")
            .with_attr("id", "conference.example.org")
            .with_attr("type", "muc");
        for (k, v) in attrs {
            e.set_attr(*k, *v);
        }
        e
    }

    #[test]
    fn defaults_serve_the_parent_domain() {
        let s = Settings::from_config("conference.example.org", &el(&[])).unwrap();
        assert_eq!(s.domains, vec!["example.org"]);
        assert_eq!(s.create, CreatePolicy::Local);
        assert_eq!(s.bounds.history_default, 20);
    }

    #[test]
    fn every_setting_parses() {
        let s = Settings::from_config(
            "conference.example.org",
            &el(&[
                ("create", "admins"),
                ("admins", "Boss@Example.org/x"),
                ("max-rooms-per-user", "3"),
                ("max-occupants", "50"),
                ("max-message-bytes", "4096"),
                ("message-rate", "10/1m"),
                ("history", "5"),
                ("history-max", "10"),
                ("archive", "false"),
                ("archive-retention", "30d"),
            ]),
        )
        .unwrap();
        assert_eq!(s.create, CreatePolicy::Admins);
        assert_eq!(s.admins, vec!["boss@example.org"]);
        assert_eq!(s.max_rooms_per_user, 3);
        assert_eq!(s.bounds.max_occupants, 50);
        assert_eq!(
            s.message_rate,
            Some(Rate {
                count: 10,
                per: Duration::from_secs(60)
            })
        );
        assert_eq!(s.bounds.history_default, 5);
        assert!(!s.bounds.archiving_default);
        assert_eq!(s.archive_retention, Some(Duration::from_secs(30 * 86_400)));
    }

    #[test]
    fn errors_name_the_attribute() {
        let err = |a: &[(&str, &str)]| {
            Settings::from_config("conference.example.org", &el(a)).unwrap_err()
        };
        assert_eq!(
            err(&[("create", "everyone")]),
            "create=\"everyone\": say who may create rooms: anyone, local or admins"
        );
        assert!(err(&[("max-occupants", "lots")]).starts_with("max-occupants=\"lots\""));
        assert!(err(&[("message-rate", "fast")]).starts_with("message-rate=\"fast\""));
        assert!(err(&[("archive-retention", "1y")]).starts_with("archive-retention=\"1y\""));
        assert_eq!(
            err(&[("history", "50"), ("history-max", "10")]),
            "history=\"50\" is more than history-max=\"10\""
        );
        assert!(err(&[("max-ocupants", "5")]).starts_with("unknown attribute max-ocupants="));
        assert!(Settings::from_config("conference", &el(&[])).is_err());
        assert!(Settings::from_config("conference", &el(&[("create", "anyone")])).is_ok());
    }
}
