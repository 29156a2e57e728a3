//! The transport's settings, from its `<service>` element: the
//! homeservers users may sign on to.
//!
//! ```xml
//! <service id="matrix.example.org" type="matrix">
//!   <homeserver name="example.org"/>
//!   <homeserver name="corp.example" url="https://matrix.corp.example" ca-file="/etc/ssl/corp.pem"/>
//!   <homeserver name="localhost" url="http://127.0.0.1:8008" allow-plain="true"/>
//! </service>
//! ```
//!
//! `name` is the server name in users' Matrix ids (`@alice:example.org`)
//! and what users type in the registration form. Without `url`, the
//! homeserver's address is discovered from
//! `https://NAME/.well-known/matrix/client` (falling back to
//! `https://NAME`). A homeserver over plain HTTP must say
//! `allow-plain="true"`: passwords and access tokens then cross the
//! network in clear, which is only ever the admin's choice. Certificate
//! checks are the IRC transport's: the system's trust store, or
//! `ca-file="/absolute.pem"`, `fingerprint="…"` (SHA-256 pin) or
//! `verify="false"`.
//!
//! `max-media-size="20M"` (the default) bounds the files moved either
//! way: images and files from Matrix, fetched and stored in the server's
//! upload service, and files XMPP users link to, uploaded to Matrix.
//!
//! `fetch-links="own"` (the default) uploads to Matrix only the files
//! XMPP users link to on this server's own upload service; any other link
//! goes to Matrix as its text. `fetch-links="any"` lets the transport
//! fetch every http(s) link a user sends, which a transport attached to
//! another server (whose upload service it cannot read) needs; it also
//! lets users make the transport fetch addresses inside the network, so
//! it is the admin's choice, as `open` is for homeservers.
//!
//! With no `<homeserver>` child, users may name any homeserver reachable
//! over HTTPS (checked against the system's trust store); with some,
//! only those, unless the service says `open="true"` as well. An open
//! transport makes requests to any host its users name: list homeservers
//! where the transport can reach internal services.

use std::path::PathBuf;

use switchboard_link::tls::{parse_fingerprint, Trust};
use switchboard_xml::Element;

/// One homeserver the admin listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Homeserver {
    /// The server name (`example.org`), lower case.
    pub name: String,
    /// The base URL, when the admin gave it (no discovery then), without
    /// a trailing `/`.
    pub url: Option<String>,
    /// Whether `http://` is allowed.
    pub allow_plain: bool,
    pub trust: Trust,
}

/// The transport's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatrixConfig {
    pub homeservers: Vec<Homeserver>,
    /// Whether homeservers that are not listed may be used (over HTTPS,
    /// the system's trust store).
    pub open: bool,
    /// The largest file moved either way (`max-media-size`, bytes): a
    /// larger one from Matrix is only described, a larger one linked
    /// from XMPP goes as its link.
    pub max_media_size: u64,
    /// Whether links to anything but this server's upload service are
    /// fetched and uploaded to Matrix (`fetch-links="any"`).
    pub fetch_any_link: bool,
}

/// `max-media-size` unless the config says otherwise.
pub const DEFAULT_MAX_MEDIA_SIZE: u64 = 20 << 20;

impl MatrixConfig {
    /// Reads the `<service>` element. Errors are sentences about it.
    pub fn from_element(el: &Element) -> Result<MatrixConfig, String> {
        let mut homeservers: Vec<Homeserver> = Vec::new();
        for child in el.elements() {
            if child.name != "homeserver" {
                return Err(format!(
                    "<{}> is not a setting of the Matrix transport; it takes \
                     <homeserver name=\"…\"/> children",
                    child.name
                ));
            }
            let hs = homeserver(child)?;
            if homeservers.iter().any(|h| h.name == hs.name) {
                return Err(format!("the homeserver {} is listed twice", hs.name));
            }
            homeservers.push(hs);
        }
        let open = match el.attr("open") {
            None => homeservers.is_empty(),
            Some(v) => flag("open", v)?,
        };
        let max_media_size = match el.attr("max-media-size") {
            None => DEFAULT_MAX_MEDIA_SIZE,
            Some(v) => byte_size(v).ok_or_else(|| {
                format!("max-media-size=\"{v}\" must be a size like 20M, 512K or 1G")
            })?,
        };
        let fetch_any_link = match el.attr("fetch-links") {
            None | Some("own") => false,
            Some("any") => true,
            Some(v) => {
                return Err(format!(
                    "fetch-links=\"{v}\" must be \"own\" (only files of this server's \
                     upload service go to Matrix as files) or \"any\""
                ))
            }
        };
        Ok(MatrixConfig {
            homeservers,
            open,
            max_media_size,
            fetch_any_link,
        })
    }

    /// The listed homeserver named `name`, or whose URL is `url`.
    pub fn find(&self, name_or_url: &str) -> Option<&Homeserver> {
        let s = name_or_url.trim_end_matches('/');
        self.homeservers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(s) || h.url.as_deref() == Some(s))
    }

    /// The homeserver a new registration defaults to: the only one
    /// listed.
    pub fn default_homeserver(&self) -> Option<&str> {
        match self.homeservers.as_slice() {
            [one] => Some(&one.name),
            _ => None,
        }
    }

    /// Whether requests may go to `base_url` (a discovered or typed URL),
    /// and with which trust; a sentence for the user otherwise.
    pub fn allows(&self, base_url: &str) -> Result<Trust, String> {
        let base = base_url.trim_end_matches('/');
        if let Some(h) = self
            .homeservers
            .iter()
            .find(|h| h.url.as_deref() == Some(base))
        {
            return Ok(h.trust.clone());
        }
        let Some(rest) = base.strip_prefix("https://") else {
            return Err(format!(
                "{base} is not an HTTPS address; this gateway sends Matrix passwords and tokens \
                 only over HTTPS (unless its admin allows a homeserver in clear)"
            ));
        };
        let host = rest.split(['/', ':']).next().unwrap_or(rest);
        if let Some(h) = self
            .homeservers
            .iter()
            .find(|h| h.url.is_none() && h.name.eq_ignore_ascii_case(host))
        {
            return Ok(h.trust.clone());
        }
        if self.open {
            return Ok(Trust::System);
        }
        Err(format!(
            "this gateway connects only to these homeservers: {}",
            self.names()
        ))
    }

    /// The listed homeservers' names, for error texts.
    pub fn names(&self) -> String {
        self.homeservers
            .iter()
            .map(|h| h.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// `20M`, `512K`, `1G`, `65536`: binary multiples.
fn byte_size(v: &str) -> Option<u64> {
    let t = v.trim().to_ascii_uppercase();
    let t = t.strip_suffix('B').unwrap_or(&t);
    let end = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (n, unit) = t.split_at(end);
    let scale: u64 = match unit {
        "" => 1,
        "K" => 1 << 10,
        "M" => 1 << 20,
        "G" => 1 << 30,
        _ => return None,
    };
    n.parse::<u64>().ok()?.checked_mul(scale)
}

fn flag(name: &str, v: &str) -> Result<bool, String> {
    match v {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(format!("{name}=\"{v}\" must be \"true\" or \"false\"")),
    }
}

fn homeserver(el: &Element) -> Result<Homeserver, String> {
    for (name, _) in el.attrs.iter() {
        if !matches!(
            name.as_str(),
            "name" | "url" | "allow-plain" | "ca-file" | "verify" | "fingerprint"
        ) {
            return Err(format!(
                "<homeserver> has no attribute {name}=; it takes name, url, allow-plain, \
                 ca-file, verify and fingerprint"
            ));
        }
    }
    let name = el
        .attr("name")
        .ok_or("<homeserver> needs name=\"…\", the server name in its users' Matrix ids")?
        .to_ascii_lowercase();
    if name.is_empty() || name.contains(['/', ' ', '@']) {
        return Err(format!(
            "<homeserver name=\"{name}\">: a server name is a host name, with an optional :port"
        ));
    }
    let at = |msg: String| format!("<homeserver name=\"{name}\">: {msg}");
    let allow_plain = el
        .attr("allow-plain")
        .map(|v| flag("allow-plain", v))
        .transpose()
        .map_err(at)?
        .unwrap_or(false);
    let url = match el.attr("url") {
        None => None,
        Some(u) => {
            let u = u.trim_end_matches('/').to_owned();
            let plain = u.starts_with("http://");
            if !plain && !u.starts_with("https://") {
                return Err(at(format!(
                    "url=\"{u}\" must start with https:// (or http:// with allow-plain=\"true\")"
                )));
            }
            if plain && !allow_plain {
                return Err(at(format!(
                    "url=\"{u}\" is plain HTTP; say allow-plain=\"true\" as well to send \
                     passwords, tokens and messages in clear"
                )));
            }
            Some(u)
        }
    };
    let tls = url.as_deref().is_none_or(|u| u.starts_with("https://"));
    let check = el
        .attr("verify")
        .map(|v| flag("verify", v))
        .transpose()
        .map_err(at)?
        .unwrap_or(true);
    let ca_file = el.attr("ca-file").map(PathBuf::from);
    if let Some(p) = &ca_file {
        if !p.is_absolute() {
            return Err(at(format!(
                "ca-file=\"{}\" must be an absolute path",
                p.display()
            )));
        }
    }
    let trust = match (el.attr("fingerprint"), check, ca_file) {
        (Some(f), true, None) => Trust::Pinned(vec![parse_fingerprint(f).ok_or_else(|| {
            at(format!(
                "fingerprint=\"{f}\" is not a SHA-256 fingerprint (64 hex digits, colons allowed)"
            ))
        })?]),
        (None, true, None) => Trust::System,
        (None, true, Some(p)) => Trust::CaFile(p),
        (None, false, None) => Trust::Off,
        _ => {
            return Err(at(
                "say one of ca-file=, fingerprint= and verify=\"false\"".into()
            ))
        }
    };
    if !tls && trust != Trust::System {
        return Err(at(
            "ca-file=, fingerprint= and verify= are for HTTPS, and this url is plain HTTP".into(),
        ));
    }
    Ok(Homeserver {
        name,
        url,
        allow_plain,
        trust,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(xml: &str) -> Result<MatrixConfig, String> {
        let el = switchboard_xml::parse_document(xml.as_bytes(), Default::default()).unwrap();
        MatrixConfig::from_element(&el)
    }

    #[test]
    fn the_media_size_limit_reads_sizes() {
        assert_eq!(
            config("<service/>").unwrap().max_media_size,
            DEFAULT_MAX_MEDIA_SIZE
        );
        let c = config(r#"<service max-media-size="512K"/>"#).unwrap();
        assert_eq!(c.max_media_size, 512 << 10);
        let e = config(r#"<service max-media-size="big"/>"#).unwrap_err();
        assert!(e.contains("max-media-size"), "{e}");
    }

    #[test]
    fn no_list_means_any_https_homeserver() {
        let c = config("<service/>").unwrap();
        assert!(c.open);
        assert_eq!(c.allows("https://matrix.org/"), Ok(Trust::System));
        assert!(c.allows("http://matrix.org").unwrap_err().contains("HTTPS"));
    }

    #[test]
    fn a_list_closes_the_transport_unless_it_says_open() {
        let c = config(
            r#"<service><homeserver name="Example.org"/><homeserver name="localhost" url="http://127.0.0.1:8008/" allow-plain="true"/></service>"#,
        )
        .unwrap();
        assert!(!c.open);
        assert_eq!(
            c.find("localhost").unwrap().url.as_deref(),
            Some("http://127.0.0.1:8008")
        );
        assert_eq!(c.allows("http://127.0.0.1:8008"), Ok(Trust::System));
        assert_eq!(c.allows("https://example.org"), Ok(Trust::System));
        let e = c.allows("https://evil.example").unwrap_err();
        assert!(e.contains("example.org, localhost"), "{e}");
        assert_eq!(c.default_homeserver(), None);
        let open =
            config(r#"<service open="true"><homeserver name="a.example"/></service>"#).unwrap();
        assert!(open.allows("https://b.example").is_ok());
    }

    #[test]
    fn plain_http_must_be_allowed_in_so_many_words() {
        let e = config(r#"<service><homeserver name="x" url="http://x"/></service>"#).unwrap_err();
        assert!(e.contains("allow-plain"), "{e}");
        let e = config(r#"<service><homeserver name="x" url="ftp://x"/></service>"#).unwrap_err();
        assert!(e.contains("https://"), "{e}");
        let e = config(r#"<service><homeserver name="x" colour="red"/></service>"#).unwrap_err();
        assert!(e.contains("colour"), "{e}");
        let e = config(r#"<service><server host="x"/></service>"#).unwrap_err();
        assert!(e.contains("<server>"), "{e}");
        let e =
            config(r#"<service><homeserver name="x" verify="false" fingerprint="00"/></service>"#)
                .unwrap_err();
        assert!(e.contains("say one of"), "{e}");
    }
}
