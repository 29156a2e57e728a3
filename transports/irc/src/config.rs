//! The transport's settings, from its `<service>` element: the IRC servers
//! users may reach, one `<server>` child each.
//!
//! ```xml
//! <service id="irc.example.org" type="irc"
//!          default-server="irc.example.net" max-connections="3">
//!   <server host="irc.example.net" port="6697"/>
//!   <server host="irc.internal" fingerprint="AB:CD:…"/>
//!   <server host="127.0.0.1" port="6667" tls="false" allow-plain="true"/>
//! </service>
//! ```
//!
//! Only listed servers are reached: the default is none, not the whole
//! internet. `tls` defaults to `true` (port 6697), checked against the
//! system's trust store or, with `ca-file="/absolute/path.pem"`, against
//! those certificates only; a plain-text server must say
//! `allow-plain="true"` as well, so that plain text is never an accident.
//! Users' IRC passwords (server password, SASL, NickServ) go only over TLS
//! or to a server with `allow-plain="true"`: nothing else can carry them.
//!
//! Certificate checks per server, instead of a trust store:
//! `fingerprint="…"` pins exactly one certificate by the SHA-256 of its DER
//! form (64 hex digits, colons allowed; name and dates are then not
//! checked, the handshake signature still is), and `verify="false"` turns
//! the certificate check off (the link is still encrypted, but anyone on
//! the path can read it: for tests and for networks where the admin
//! accepts that). Neither goes with `ca-file=`.
//!
//! Outgoing flood control per server: `flood-burst="5"` lines at once,
//! then one per `flood-interval="2s"` (the defaults, below what common
//! IRC servers tolerate); `flood-interval="0"` turns it off for a server
//! that is configured to take any rate (a company's own ngircd with
//! `MaxPenaltyTime = 0`, for example).
//!
//! On the `<service>` element itself:
//! - `default-server="host"` (one of the listed servers) makes the short
//!   addresses `#chan@irc.example.org` and `nick@irc.example.org` name
//!   that server;
//! - `max-connections="N"` limits how many IRC servers one XMPP account
//!   may be connected to at once (one connection per server); a join that
//!   would open one more is refused with `policy-violation`. Default 10.

use std::path::PathBuf;

use switchboard_link::tls::{parse_fingerprint, Trust};
use switchboard_xml::Element;

/// One allowed IRC server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerEntry {
    /// The name users put after `%` (`irc.example.net`, `127.0.0.1`).
    pub host: String,
    pub port: u16,
    pub tls: bool,
    /// Whether the admin allowed this server in clear (`allow-plain`):
    /// a plain-text server must say so, and only then do users' passwords
    /// go over its connections ([`crate::settings::secure`]).
    pub allow_plain: bool,
    /// How the server's certificate is checked (TLS only): the system's
    /// trust store, the `ca-file`'s certificates, a `fingerprint` pin, or
    /// not at all (`verify="false"`).
    pub trust: Trust,
    /// The outgoing flood control for connections to it.
    pub flood: Flood,
}

/// Outgoing flood control: a burst of lines, then one per interval
/// (`flood-burst`, `flood-interval`; an interval of 0 turns it off, for a
/// company's own IRC server configured to take it).
///
/// The default is the one RFC 1459 §8.10 describes and irssi and HexChat
/// use: a burst of 5 lines, then one line every 2 seconds. Servers differ
/// in what they tolerate (ngircd delays a flooding client's commands,
/// others disconnect it with "Excess Flood"); this rate is below every
/// common default, so a busy room never costs the user the connection.
/// Lines are queued, never dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flood {
    pub burst: u32,
    pub interval: std::time::Duration,
}

impl Flood {
    pub const BURST: u32 = 5;
    pub const INTERVAL: std::time::Duration = std::time::Duration::from_secs(2);
}

impl Default for Flood {
    fn default() -> Flood {
        Flood {
            burst: Flood::BURST,
            interval: Flood::INTERVAL,
        }
    }
}

/// How many IRC connections an XMPP account may have when the config
/// does not say.
pub const DEFAULT_MAX_CONNECTIONS: usize = 10;

/// The transport's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IrcConfig {
    pub servers: Vec<ServerEntry>,
    /// The server short addresses (`#chan@host`) name.
    pub default_server: Option<String>,
    /// IRC connections per XMPP account.
    pub max_connections: usize,
}

impl IrcConfig {
    /// Reads the `<server>` children of the `<service>` element. Errors are
    /// sentences about the element.
    pub fn from_element(el: &Element) -> Result<IrcConfig, String> {
        let mut servers: Vec<ServerEntry> = Vec::new();
        for child in el.elements() {
            if child.name != "server" {
                return Err(format!(
                    "<{}> is not a setting of the IRC transport; it takes <server host=\"…\"/> children",
                    child.name
                ));
            }
            let entry = server(child)?;
            if servers.iter().any(|s| s.host == entry.host) {
                return Err(format!("the IRC server {} is listed twice", entry.host));
            }
            servers.push(entry);
        }
        if servers.is_empty() {
            return Err(
                "the IRC transport allows no server: add <server host=\"irc.example.net\"/> children \
                 naming the IRC servers its users may reach"
                    .into(),
            );
        }
        let default_server =
            match el.attr("default-server") {
                None => None,
                Some(d) => {
                    let d = d.to_ascii_lowercase();
                    if !servers.iter().any(|s| s.host == d) {
                        return Err(format!(
                        "default-server=\"{d}\" is not one of the <server> children (they are: {})",
                        servers.iter().map(|s| s.host.as_str()).collect::<Vec<_>>().join(", ")
                    ));
                    }
                    Some(d)
                }
            };
        let max_connections = match el.attr("max-connections") {
            None => DEFAULT_MAX_CONNECTIONS,
            Some(v) => match v.parse::<usize>() {
                Ok(n) if n > 0 => n,
                _ => {
                    return Err(format!(
                        "max-connections=\"{v}\" must be a whole number of at least 1"
                    ))
                }
            },
        };
        Ok(IrcConfig {
            servers,
            default_server,
            max_connections,
        })
    }

    /// The allowed server named `host` (case-insensitive).
    pub fn server(&self, host: &str) -> Option<&ServerEntry> {
        self.servers
            .iter()
            .find(|s| s.host.eq_ignore_ascii_case(host))
    }

    /// The allowed servers' names, for error texts.
    pub fn names(&self) -> String {
        self.servers
            .iter()
            .map(|s| s.host.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn flag(el: &Element, name: &str, default: bool) -> Result<bool, String> {
    match el.attr(name) {
        None => Ok(default),
        Some("true") | Some("1") => Ok(true),
        Some("false") | Some("0") => Ok(false),
        Some(v) => Err(format!("{name}=\"{v}\" must be \"true\" or \"false\"")),
    }
}

/// `2s`, `500ms` or `0`.
fn interval(v: &str) -> Option<std::time::Duration> {
    use std::time::Duration;
    if v == "0" {
        return Some(Duration::ZERO);
    }
    if let Some(ms) = v.strip_suffix("ms") {
        return ms.parse().ok().map(Duration::from_millis);
    }
    v.strip_suffix('s')?.parse().ok().map(Duration::from_secs)
}

fn server(el: &Element) -> Result<ServerEntry, String> {
    for (name, _) in el.attrs.iter() {
        if !matches!(
            name.as_str(),
            "host"
                | "port"
                | "tls"
                | "allow-plain"
                | "ca-file"
                | "verify"
                | "fingerprint"
                | "flood-burst"
                | "flood-interval"
        ) {
            return Err(format!(
                "<server> has no attribute {name}=; it takes host, port, tls, ca-file, verify, \
                 fingerprint, allow-plain, flood-burst and flood-interval"
            ));
        }
    }
    let host = el
        .attr("host")
        .ok_or("<server> needs host=\"…\", the IRC server's name")?
        .to_ascii_lowercase();
    crate::address::check_server(&host).map_err(|e| format!("<server host=\"{host}\">: {e}"))?;
    let tls = flag(el, "tls", true)?;
    let allow_plain = flag(el, "allow-plain", false)?;
    let port = match el.attr("port") {
        None if tls => 6697,
        None => 6667,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 => n,
            _ => {
                return Err(format!(
                    "<server host=\"{host}\">: port=\"{p}\" is not a port"
                ))
            }
        },
    };
    if !tls && !allow_plain {
        return Err(format!(
            "<server host=\"{host}\"> is plain text (tls=\"false\"); say allow-plain=\"true\" as well \
             to allow passwords and messages in clear"
        ));
    }
    let ca_file = match el.attr("ca-file") {
        None => None,
        Some(_) if !tls => {
            return Err(format!(
                "<server host=\"{host}\">: ca-file= is for TLS, and this server is tls=\"false\""
            ))
        }
        Some(p) if !p.starts_with('/') => {
            return Err(format!(
                "<server host=\"{host}\">: ca-file=\"{p}\" must be an absolute path"
            ))
        }
        Some(p) => Some(PathBuf::from(p)),
    };
    let check = flag(el, "verify", true)?;
    let trust = match (el.attr("fingerprint"), check) {
        (Some(_), false) => {
            return Err(format!(
                "<server host=\"{host}\">: fingerprint= pins a certificate, verify=\"false\" checks none: say one"
            ))
        }
        (Some(f), true) => Trust::Pinned(vec![parse_fingerprint(f).ok_or_else(|| {
            format!(
                "<server host=\"{host}\">: fingerprint=\"{f}\" is not a SHA-256 fingerprint \
                 (64 hex digits, colons allowed)"
            )
        })?]),
        (None, true) => Trust::System,
        (None, false) => Trust::Off,
    };
    if trust != Trust::System && !tls {
        return Err(format!(
            "<server host=\"{host}\">: verify= and fingerprint= are for TLS, and this server is tls=\"false\""
        ));
    }
    let trust = match (trust, ca_file) {
        (trust, None) => trust,
        (Trust::System, Some(path)) => Trust::CaFile(path),
        (_, Some(_)) => {
            return Err(format!(
                "<server host=\"{host}\">: ca-file= does not go with verify= or fingerprint="
            ))
        }
    };
    let flood = Flood {
        burst: match el.attr("flood-burst") {
            None => Flood::default().burst,
            Some(v) => v.parse().ok().filter(|b| *b >= 1).ok_or_else(|| {
                format!("<server host=\"{host}\">: flood-burst=\"{v}\" is not a number of lines (1 or more)")
            })?,
        },
        interval: match el.attr("flood-interval") {
            None => Flood::default().interval,
            Some(v) => interval(v).ok_or_else(|| {
                format!(
                    "<server host=\"{host}\">: flood-interval=\"{v}\" is not a duration such as \
                     \"2s\", \"500ms\" or \"0\" (no flood control)"
                )
            })?,
        },
    };
    Ok(ServerEntry {
        host,
        port,
        tls,
        allow_plain,
        trust,
        flood,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(xml: &str) -> Result<IrcConfig, String> {
        let el = switchboard_xml::parse_document(xml.as_bytes(), Default::default())
            .expect("test XML parses");
        IrcConfig::from_element(&el)
    }

    #[test]
    fn flood_control_per_server() {
        use std::time::Duration;
        let c = parse(r#"<service><server host="h"/></service>"#).unwrap();
        assert_eq!(c.servers[0].flood, Flood::default());
        let c = parse(
            r#"<service><server host="h" flood-burst="20" flood-interval="500ms"/><server host="g" flood-interval="0"/></service>"#,
        )
        .unwrap();
        assert_eq!(
            c.servers[0].flood,
            Flood {
                burst: 20,
                interval: Duration::from_millis(500)
            }
        );
        assert_eq!(c.servers[1].flood.interval, Duration::ZERO);
        let e =
            parse(r#"<service><server host="h" flood-interval="fast"/></service>"#).unwrap_err();
        assert!(e.contains("flood-interval"), "{e}");
        let e = parse(r#"<service><server host="h" flood-burst="0"/></service>"#).unwrap_err();
        assert!(e.contains("flood-burst"), "{e}");
    }

    #[test]
    fn reads_plain_servers() {
        let c = parse(
            r#"<service id="irc.localhost" type="irc"><server host="127.0.0.1" port="6668" tls="false" allow-plain="true"/><server host="IRC.Example.NET" tls="false" allow-plain="true"/></service>"#,
        )
        .unwrap();
        assert_eq!(
            c.servers[0],
            ServerEntry {
                host: "127.0.0.1".into(),
                port: 6668,
                tls: false,
                allow_plain: true,
                trust: Trust::System,
                flood: Flood::default(),
            }
        );
        assert_eq!(c.default_server, None);
        assert_eq!(c.max_connections, DEFAULT_MAX_CONNECTIONS);
        assert_eq!(c.servers[1].port, 6667);
        assert!(c.server("irc.example.net").is_some());
        assert!(c.server("irc.evil.net").is_none());
        assert_eq!(c.names(), "127.0.0.1, irc.example.net");
    }

    #[test]
    fn refuses_what_is_unsafe_or_unsupported() {
        let e = parse(r#"<service id="i" type="irc"/>"#).unwrap_err();
        assert!(e.contains("allows no server"), "{e}");
        let e = parse(r#"<service><server host="h" tls="false"/></service>"#).unwrap_err();
        assert!(e.contains("allow-plain"), "{e}");
        let c = parse(r#"<service><server host="h"/></service>"#).unwrap();
        assert_eq!((c.servers[0].port, c.servers[0].tls), (6697, true));
        let c =
            parse(r#"<service><server host="h" ca-file="/etc/irc-ca.pem"/></service>"#).unwrap();
        assert_eq!(c.servers[0].trust, Trust::CaFile("/etc/irc-ca.pem".into()));
        let e = parse(r#"<service><server host="h" ca-file="ca.pem"/></service>"#).unwrap_err();
        assert!(e.contains("absolute"), "{e}");
        let e = parse(
            r#"<service><server host="h" tls="false" allow-plain="true" ca-file="/x"/></service>"#,
        )
        .unwrap_err();
        assert!(e.contains("for TLS"), "{e}");
        let e = parse(r#"<service><server/></service>"#).unwrap_err();
        assert!(e.contains("host="), "{e}");
        let e = parse(
            r#"<service><server host="h" tls="false" allow-plain="true" port="x"/></service>"#,
        )
        .unwrap_err();
        assert!(e.contains("not a port"), "{e}");
        let e = parse(r#"<service><server host="a b" tls="false" allow-plain="true"/></service>"#)
            .unwrap_err();
        assert!(e.contains("not an IRC server name"), "{e}");
        let e = parse(r#"<service><srv/></service>"#).unwrap_err();
        assert!(e.contains("<srv>"), "{e}");
        let e = parse(r#"<service><server host="h" tls="maybe"/></service>"#).unwrap_err();
        assert!(e.contains("true"), "{e}");
    }

    #[test]
    fn default_server_limits_and_certificate_checks() {
        let fp = "AB:".repeat(31) + "AB";
        let c = parse(&format!(
            r#"<service default-server="H" max-connections="2"><server host="h" fingerprint="{fp}"/><server host="k" verify="false"/></service>"#
        ))
        .unwrap();
        assert_eq!(c.default_server.as_deref(), Some("h"));
        assert_eq!(c.max_connections, 2);
        assert_eq!(c.servers[0].trust, Trust::Pinned(vec![[0xAB; 32]]));
        assert_eq!(c.servers[1].trust, Trust::Off);
        for (xml, needle) in [
            (
                r#"<service default-server="x"><server host="h"/></service>"#,
                "not one of",
            ),
            (
                r#"<service max-connections="0"><server host="h"/></service>"#,
                "at least 1",
            ),
            (
                r#"<service><server host="h" fingerprint="12"/></service>"#,
                "SHA-256",
            ),
            (
                r#"<service><server host="h" verify="false" ca-file="/x"/></service>"#,
                "does not go with",
            ),
            (
                r#"<service><server host="h" tls="false" allow-plain="true" verify="false"/></service>"#,
                "for TLS",
            ),
        ] {
            let e = parse(xml).unwrap_err();
            assert!(e.contains(needle), "{xml}: {e}");
        }
        let e = parse(&format!(
            r#"<service><server host="h" verify="false" fingerprint="{fp}"/></service>"#
        ))
        .unwrap_err();
        assert!(e.contains("say one"), "{e}");
    }
}
