//! Walking the parsed XML tree into a [`Config`].
//!
//! The walker is strict on purpose: every element, attribute and piece of
//! text must be something it understands, because a setting the server
//! silently ignores is worse than one it refuses. The one exception is the
//! inside of `<service>`, which belongs to the service and is handed over
//! untouched.
//!
//! The first problem found is reported; an admin fixes one line at a time.

use crate::defaults;
use crate::errors::Source;
use crate::suggest::closest;
use crate::values::{self, Problem};
use crate::{
    ArchiveConfig, ArchiveDefault, AuthDelayConfig, Config, ConfigError, ContactAddress,
    ContactKind, DelayCurve, HostConfig, HttpListener, LimitsConfig, ListenConfig, LogConfig,
    PeerAddress, PeerTls, PostgresConfig, Registration, S2sConfig, ServiceConfig, SpoolConfig,
    StorageConfig, TlsConfig, WebConfig, CONFIG_NS,
};

fn switchboard_config_http(addr: SocketAddr, behind_tls_proxy: bool) -> HttpListener {
    HttpListener {
        addr,
        behind_tls_proxy,
    }
}
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use switchboard_jid::{normalize_domain, Jid};
use switchboard_xml::{parse_document, Element, Limits, Node, Span};

type Result<T> = std::result::Result<T, ConfigError>;

/// Limits for reading the config document. They only guard against a
/// runaway file, so they are far above anything a real config needs (the
/// inside of a `<service>` may be sizeable).
const DOCUMENT_LIMITS: Limits = Limits {
    max_stanza_bytes: 16 * 1024 * 1024,
    max_depth: 64,
    max_attrs: 256,
};

/// What an element may contain.
struct Shape {
    name: &'static str,
    attrs: &'static [&'static str],
    children: &'static [&'static str],
    /// Whether the element's value is its text (`<pidfile>…</pidfile>`).
    text: bool,
}

const ROOT: Shape = Shape {
    name: "switchboard",
    attrs: &[],
    children: &[
        "host",
        "service",
        "listen",
        "tls",
        "limits",
        "auth-delay",
        "spool",
        "storage",
        "log",
        "pidfile",
        "credentials",
        "metrics",
        "s2s",
        "web",
    ],
    text: false,
};
const HOST: Shape = Shape {
    name: "host",
    attrs: &["name"],
    children: &["admin", "registration", "archive", "contact"],
    text: false,
};
const ARCHIVE: Shape = Shape {
    name: "archive",
    attrs: &["retention", "default"],
    children: &[],
    text: false,
};
const CONTACT: Shape = Shape {
    name: "contact",
    attrs: &["type"],
    children: &[],
    text: true,
};
const ADMIN: Shape = Shape {
    name: "admin",
    attrs: &[],
    children: &[],
    text: true,
};
const REGISTRATION: Shape = Shape {
    name: "registration",
    attrs: &[],
    children: &[],
    text: true,
};
const LISTEN: Shape = Shape {
    name: "listen",
    attrs: &[],
    children: &[
        "c2s",
        "c2s-tls",
        "component",
        "s2s",
        "s2s-tls",
        "http",
        "https",
    ],
    text: false,
};
const HTTP: Shape = Shape {
    name: "http",
    attrs: &["addr", "behind-tls-proxy"],
    children: &[],
    text: false,
};
const HTTPS: Shape = Shape {
    name: "https",
    attrs: &["addr"],
    children: &[],
    text: false,
};
const WEB: Shape = Shape {
    name: "web",
    attrs: &[
        "origins",
        "chat-dir",
        "admin-console",
        "max-header-bytes",
        "max-body-bytes",
        "header-timeout",
        "body-timeout",
        "min-body-rate",
        "max-connections",
    ],
    children: &["bosh"],
    text: false,
};
const BOSH: Shape = Shape {
    name: "bosh",
    attrs: &[
        "inactivity",
        "max-wait",
        "max-hold",
        "max-sessions-per-address",
    ],
    children: &[],
    text: false,
};
const C2S: Shape = Shape {
    name: "c2s",
    attrs: &["addr"],
    children: &[],
    text: false,
};
const C2S_TLS: Shape = Shape {
    name: "c2s-tls",
    attrs: &["addr"],
    children: &[],
    text: false,
};
const COMPONENT: Shape = Shape {
    name: "component",
    attrs: &["addr"],
    children: &[],
    text: false,
};
const LISTEN_S2S: Shape = Shape {
    name: "s2s",
    attrs: &["addr"],
    children: &[],
    text: false,
};
const LISTEN_S2S_TLS: Shape = Shape {
    name: "s2s-tls",
    attrs: &["addr"],
    children: &[],
    text: false,
};
const S2S: Shape = Shape {
    name: "s2s",
    attrs: &[
        "secure-auth",
        "dialback",
        "allow",
        "deny",
        "trust",
        "resolver",
        "timeout",
        "idle-timeout",
        "max-queue",
        "stanza-rate",
        "local-only",
    ],
    children: &["connect"],
    text: false,
};
const CONNECT: Shape = Shape {
    name: "connect",
    attrs: &["domain", "addr", "tls"],
    children: &[],
    text: false,
};
const TLS: Shape = Shape {
    name: "tls",
    attrs: &["cert", "key", "required"],
    children: &[],
    text: false,
};
const LIMITS: Shape = Shape {
    name: "limits",
    attrs: &[
        "max-stanza-bytes",
        "preauth-timeout",
        "keepalive",
        "scram-iterations",
        "registrations-per-address",
        "registration-window",
        "registration-allowlist",
        "resume-timeout",
    ],
    children: &[],
    text: false,
};
const AUTH_DELAY: Shape = Shape {
    name: "auth-delay",
    attrs: &["forget"],
    children: &["address", "account"],
    text: false,
};
const DELAY_ADDRESS: Shape = Shape {
    name: "address",
    attrs: &["after", "first", "max"],
    children: &[],
    text: false,
};
const DELAY_ACCOUNT: Shape = Shape {
    name: "account",
    attrs: &["after", "first", "max"],
    children: &[],
    text: false,
};
const SPOOL: Shape = Shape {
    name: "spool",
    attrs: &["dir"],
    children: &[],
    text: false,
};
const STORAGE: Shape = Shape {
    name: "storage",
    attrs: &["backend", "url", "connections", "password-file"],
    children: &[],
    text: false,
};
const LOG: Shape = Shape {
    name: "log",
    attrs: &["file", "level"],
    children: &[],
    text: false,
};
const CREDENTIALS: Shape = Shape {
    name: "credentials",
    attrs: &["key"],
    children: &[],
    text: false,
};
const METRICS: Shape = Shape {
    name: "metrics",
    attrs: &["addr"],
    children: &[],
    text: false,
};
const PIDFILE: Shape = Shape {
    name: "pidfile",
    attrs: &[],
    children: &[],
    text: true,
};

/// Every shape, to find where a misplaced element belongs.
const SHAPES: &[&Shape] = &[&ROOT, &HOST, &LISTEN, &S2S, &AUTH_DELAY, &WEB];

/// `<log file="-">`: log to stderr only.
const STDERR: &str = "-";

pub(crate) fn parse(text: &str, file: &str, home: &Path) -> Result<Config> {
    let src = Source { file };
    // A byte-order mark is invisible in editors; dropping it keeps the
    // columns of line 1 the same as the ones the admin sees.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let root = parse_document(text.as_bytes(), DOCUMENT_LIMITS).map_err(|e| src.xml_error(&e))?;
    let walker = Walker {
        src,
        home,
        ns: &root.ns,
    };
    walker.config(&root)
}

struct Walker<'a> {
    src: Source<'a>,
    home: &'a Path,
    /// The namespace of the root, which every config element shares.
    ns: &'a str,
}

impl Walker<'_> {
    fn config(&self, root: &Element) -> Result<Config> {
        self.root(root)?;

        let mut hosts: Vec<(HostConfig, Span)> = Vec::new();
        let mut services: Vec<(ServiceConfig, Span)> = Vec::new();
        let mut once = Once::default();
        let mut listen = None;
        let mut tls = None;
        let mut limits = None;
        let mut auth_delay = None;
        let mut spool = None;
        let mut storage = None;
        let mut log = None;
        let mut credentials = None;
        let mut pidfile = None;
        let mut metrics = None;
        let mut s2s = None;
        let mut web = None;

        for el in root.elements() {
            match el.name.as_str() {
                "host" => {
                    let host = self.host(el)?;
                    if let Some((_, first)) = hosts.iter().find(|(h, _)| h.name == host.name) {
                        return Err(self.src.error(
                            el.span,
                            format!(
                                "duplicate <host name=\"{}\"> (the first is at line {})",
                                host.name, first.line
                            ),
                        ));
                    }
                    hosts.push((host, el.span));
                }
                "service" => {
                    let service = self.service(el)?;
                    if let Some((_, first)) = services.iter().find(|(s, _)| s.id == service.id) {
                        return Err(self.src.error(
                            el.span,
                            format!(
                                "duplicate <service id=\"{}\"> (the first is at line {})",
                                service.id, first.line
                            ),
                        ));
                    }
                    services.push((service, el.span));
                }
                name => {
                    once.check(&self.src, el)?;
                    match name {
                        "listen" => listen = Some(self.listen(el)?),
                        "tls" => tls = Some(self.tls(el)?),
                        "limits" => limits = Some(self.limits(el)?),
                        "auth-delay" => auth_delay = Some(self.auth_delay(el)?),
                        "spool" => spool = Some(self.spool(el)?),
                        "storage" => storage = Some(self.storage(el)?),
                        "log" => log = Some(self.log(el)?),
                        "pidfile" => pidfile = Some(self.pidfile(el)?),
                        "credentials" => credentials = Some(self.credentials(el)?),
                        "metrics" => metrics = Some(self.metrics(el)?),
                        "s2s" => s2s = Some((self.s2s(el)?, el)),
                        "web" => web = Some(self.web(el)?),
                        _ => unreachable!("root children are checked against ROOT"),
                    }
                }
            }
        }

        if hosts.is_empty() {
            return Err(self
                .src
                .error(
                    root.span,
                    "no <host> configured: the server needs at least one",
                )
                .with_hint("add one inside <switchboard>, e.g. <host name=\"example.org\"/>"));
        }
        // Checked after the walk so that the order of <host> and <service>
        // in the file does not matter.
        for (service, span) in &services {
            if let Some((_, host_span)) = hosts.iter().find(|(h, _)| h.name == service.id) {
                return Err(self
                    .src
                    .error(
                        *span,
                        format!(
                            "<service id=\"{}\"> has the name of the <host> at line {}",
                            service.id, host_span.line
                        ),
                    )
                    .with_hint(format!(
                        "a service needs a hostname of its own, e.g. {}.{}",
                        service.kind, service.id
                    )));
            }
        }

        let mut listen = listen.unwrap_or_else(|| ListenConfig {
            c2s: vec![defaults::C2S],
            c2s_tls: Vec::new(),
            component: Vec::new(),
            s2s: Vec::new(),
            s2s_tls: Vec::new(),
            http: Vec::new(),
            https: Vec::new(),
        });
        if s2s.is_none() && (!listen.s2s.is_empty() || !listen.s2s_tls.is_empty()) {
            let at = root
                .elements()
                .find(|e| e.name == "listen")
                .map_or(root.span, |e| e.span);
            return Err(self
                .src
                .error(
                    at,
                    "<listen> has a server-to-server listener, but federation is off",
                )
                .with_hint("add <s2s/> inside <switchboard> to federate with other servers"));
        }
        // Federation needs a port other servers connect to; without an
        // explicit one it gets the standard port.
        if s2s.is_some() && listen.s2s.is_empty() && listen.s2s_tls.is_empty() {
            listen.s2s.push(defaults::S2S);
        }
        let s2s = match s2s {
            Some((mut s2s, el)) => {
                s2s.local_only = self.local_only(el, &services)?;
                Some(s2s)
            }
            None => None,
        };
        // External components need somewhere to connect; without an
        // explicit <component> listener they get the loopback default.
        if listen.component.is_empty() && services.iter().any(|(s, _)| s.kind == "external") {
            listen.component.push(defaults::COMPONENT);
        }

        Ok(Config {
            source: self.src.file.to_string(),
            hosts: hosts.into_iter().map(|(h, _)| h).collect(),
            services: services.into_iter().map(|(s, _)| s).collect(),
            listen,
            tls: tls.unwrap_or(TlsConfig {
                cert: None,
                key: None,
                required: defaults::TLS_REQUIRED,
            }),
            limits: limits.unwrap_or_default(),
            auth_delay: auth_delay.unwrap_or_default(),
            spool: spool.unwrap_or_else(|| SpoolConfig {
                dir: self.resolve(defaults::SPOOL_DIR),
            }),
            storage: storage.unwrap_or_default(),
            log: log.unwrap_or_else(|| LogConfig {
                file: Some(self.resolve(defaults::LOG_FILE)),
                level: defaults::LOG_LEVEL.to_string(),
            }),
            pidfile: pidfile.unwrap_or_else(|| self.resolve(defaults::PIDFILE)),
            credentials_key: credentials.unwrap_or_else(|| self.resolve(defaults::CREDENTIALS_KEY)),
            metrics: metrics.unwrap_or(defaults::METRICS),
            s2s,
            web: web.unwrap_or_default(),
        })
    }

    /// Checks the root element's name and namespace, and its contents.
    fn root(&self, root: &Element) -> Result<()> {
        if root.name != ROOT.name {
            let hint = if root.name == "jabber" {
                "this looks like a jabberd 1.4 jabber.xml; Switchboard's format is different: \
                 start from the sample, config/switchboard.xml"
            } else {
                "start from the sample, config/switchboard.xml"
            };
            return Err(self
                .src
                .error(
                    root.span,
                    format!(
                        "the root element must be <switchboard>, not <{}>",
                        root.name
                    ),
                )
                .with_hint(hint));
        }
        if !root.ns.is_empty() && root.ns != CONFIG_NS {
            return Err(self
                .src
                .error(
                    root.span,
                    format!("<switchboard> is in the namespace \"{}\"", root.ns),
                )
                .with_hint(format!("use no namespace, or xmlns=\"{CONFIG_NS}\"")));
        }
        self.check(root, &ROOT)
    }

    fn host(&self, el: &Element) -> Result<HostConfig> {
        self.check(el, &HOST)?;
        let raw = self.required(el, "name", "<host name=\"example.org\"/>")?;
        let name = normalize_domain(raw).map_err(|e| {
            self.src
                .error(el.span, format!("invalid host name \"{raw}\": {e}"))
        })?;
        let mut admins: Vec<(Jid, Span)> = Vec::new();
        let mut registration = None;
        let mut archive = None;
        let mut contacts: Vec<(ContactAddress, Span)> = Vec::new();
        let mut once = Once::default();
        for child in el.elements() {
            match child.name.as_str() {
                "admin" => {
                    let jid = self.admin(child, &name)?;
                    if let Some((_, first)) = admins.iter().find(|(a, _)| *a == jid) {
                        return Err(self.src.error(
                            child.span,
                            format!(
                                "duplicate <admin>{jid}</admin> (the first is at line {})",
                                first.line
                            ),
                        ));
                    }
                    admins.push((jid, child.span));
                }
                "registration" => {
                    once.check(&self.src, child)?;
                    registration = Some(self.registration(child)?);
                }
                "archive" => {
                    once.check(&self.src, child)?;
                    archive = Some(self.archive(child)?);
                }
                "contact" => {
                    let contact = self.contact(child, &name)?;
                    if let Some((_, first)) = contacts.iter().find(|(c, _)| *c == contact) {
                        return Err(self.src.error(
                            child.span,
                            format!(
                                "duplicate <contact type=\"{}\">{}</contact> (the first is at line {})",
                                contact.kind.name(),
                                contact.uri,
                                first.line
                            ),
                        ));
                    }
                    contacts.push((contact, child.span));
                }
                _ => unreachable!("host children are checked against HOST"),
            }
        }
        Ok(HostConfig {
            name,
            admins: admins.into_iter().map(|(a, _)| a).collect(),
            registration: registration.unwrap_or(defaults::REGISTRATION),
            archive: archive.unwrap_or(defaults::ARCHIVE),
            contacts: contacts.into_iter().map(|(c, _)| c).collect(),
        })
    }

    /// A `<contact type="…">URI</contact>` (XEP-0157).
    fn contact(&self, el: &Element, host: &str) -> Result<ContactAddress> {
        self.check(el, &CONTACT)?;
        let example = format!("<contact type=\"abuse\">mailto:abuse@{host}</contact>");
        let names: Vec<&str> = ContactKind::ALL.iter().map(|k| k.name()).collect();
        let raw = self.required(el, "type", &example)?;
        let Some(kind) = ContactKind::ALL
            .into_iter()
            .find(|k| k.name().eq_ignore_ascii_case(raw))
        else {
            let err = self.src.error(
                el.span,
                format!(
                    "<contact type> must be one of {}, not \"{raw}\"",
                    names.join(", ")
                ),
            );
            return Err(match closest(raw, &names) {
                Some(s) => err.with_hint(format!("did you mean \"{s}\"?")),
                None => err,
            });
        };
        let text = el.text();
        let uri = text.trim();
        if uri.is_empty() {
            return Err(self
                .src
                .error(el.span, "<contact> is empty")
                .with_hint(format!("write a URI, e.g. {example}")));
        }
        if let Err(why) = values::uri(uri) {
            return Err(self
                .src
                .error(
                    el.span,
                    format!("<contact> must hold a URI, not \"{uri}\": {why}"),
                )
                .with_hint(format!(
                    "write mailto:abuse@{host}, xmpp:admin@{host} or https://{host}/support"
                )));
        }
        Ok(ContactAddress {
            kind,
            uri: uri.to_owned(),
        })
    }

    /// `<archive retention="…" default="…"/>`: the host's message archive.
    fn archive(&self, el: &Element) -> Result<ArchiveConfig> {
        self.check(el, &ARCHIVE)?;
        let mut archive = defaults::ARCHIVE;
        if let Some(v) = el.attr("retention") {
            let value = v.trim();
            archive.retention =
                if value.eq_ignore_ascii_case("forever") {
                    None
                } else {
                    match values::duration(value) {
                        Some(d) if d.is_zero() => {
                            return Err(self
                                .src
                                .error(el.span, "'retention' on <archive> must be longer than zero")
                                .with_hint("write \"forever\" to keep messages for ever"))
                        }
                        Some(d) => Some(d),
                        None => return Err(self
                            .src
                            .error(
                                el.span,
                                format!(
                                    "'retention' on <archive> must be a duration like 30d or 12h, \
                                     or \"forever\", not \"{v}\""
                                ),
                            )
                            .with_hint(
                                "durations are a whole number with s, m, h or d: 365d is a year",
                            )),
                    }
                };
        }
        if let Some(v) = el.attr("default") {
            let value = v.trim();
            const CHOICES: &[&str] = &["always", "roster", "never"];
            archive.default = match ArchiveDefault::parse(&value.to_ascii_lowercase()) {
                Some(d) => d,
                None => {
                    let err = self.src.error(
                        el.span,
                        format!(
                            "'default' on <archive> must be one of always, roster, never, not \"{value}\""
                        ),
                    );
                    return Err(match closest(value, CHOICES) {
                        Some(s) => err.with_hint(format!("did you mean \"{s}\"?")),
                        None => err,
                    });
                }
            };
        }
        Ok(archive)
    }

    fn admin(&self, el: &Element, host: &str) -> Result<Jid> {
        self.check(el, &ADMIN)?;
        let example = format!("write a bare JID, e.g. <admin>admin@{host}</admin>");
        let text = el.text();
        let text = text.trim();
        if text.is_empty() {
            return Err(self
                .src
                .error(el.span, "<admin> is empty")
                .with_hint(example));
        }
        let jid = Jid::parse(text).map_err(|e| {
            self.src
                .error(el.span, format!("invalid admin JID \"{text}\": {e}"))
        })?;
        if !jid.is_bare() {
            return Err(self
                .src
                .error(
                    el.span,
                    format!("admin JID \"{text}\" must be a bare JID, without a /resource"),
                )
                .with_hint(format!("write it as {}", jid.to_bare())));
        }
        if jid.node().is_none() {
            return Err(self
                .src
                .error(
                    el.span,
                    format!("admin JID \"{text}\" names a server, not a user"),
                )
                .with_hint(example));
        }
        Ok(jid)
    }

    fn registration(&self, el: &Element) -> Result<Registration> {
        self.check(el, &REGISTRATION)?;
        let text = el.text();
        let value = text.trim();
        match value.to_ascii_lowercase().as_str() {
            "off" => Ok(Registration::Off),
            "open" => Ok(Registration::Open),
            "admin" => Ok(Registration::Admin),
            _ => {
                let err = self.src.error(
                    el.span,
                    format!("<registration> must be one of off, open, admin, not \"{value}\""),
                );
                Err(match closest(value, &["off", "open", "admin"]) {
                    Some(s) => err.with_hint(format!("did you mean \"{s}\"?")),
                    None => err,
                })
            }
        }
    }

    /// A `<service>`. Only `id`, `type` and `secret` are the server's; any
    /// other attribute and everything inside is the service's own
    /// configuration, kept in `element` for it to read and check.
    fn service(&self, el: &Element) -> Result<ServiceConfig> {
        let example = "<service id=\"conference.example.org\" type=\"muc\"/>";
        let raw = self.required(el, "id", example)?;
        let id = normalize_domain(raw).map_err(|e| {
            self.src
                .error(el.span, format!("invalid service id \"{raw}\": {e}"))
        })?;
        let kind = self.required(el, "type", example)?.to_string();
        let secret = match el.attr("secret") {
            None => None,
            Some("") => return Err(self.src.error(el.span, "'secret' on <service> is empty")),
            Some(s) => Some(s.to_string()),
        };
        if kind == "external" && secret.is_none() {
            return Err(self.src.error(
                el.span,
                format!(
                    "<service id=\"{id}\" type=\"external\"> needs a secret=\"…\" for the \
                     component to authenticate with (XEP-0114)"
                ),
            ));
        }
        Ok(ServiceConfig {
            id,
            kind,
            secret,
            element: el.clone(),
        })
    }

    fn listen(&self, el: &Element) -> Result<ListenConfig> {
        self.check(el, &LISTEN)?;
        let mut listen = ListenConfig {
            c2s: Vec::new(),
            c2s_tls: Vec::new(),
            component: Vec::new(),
            s2s: Vec::new(),
            s2s_tls: Vec::new(),
            http: Vec::new(),
            https: Vec::new(),
        };
        let mut seen: Vec<(SocketAddr, &str, Span)> = Vec::new();
        let mut http = Vec::new();
        for child in el.elements() {
            let (shape, example, list) = match child.name.as_str() {
                "http" => (&HTTP, "<http addr=\"127.0.0.1:5280\"/>", &mut http),
                "https" => (&HTTPS, "<https addr=\"0.0.0.0:5281\"/>", &mut listen.https),
                "c2s" => (&C2S, "<c2s addr=\"0.0.0.0:5222\"/>", &mut listen.c2s),
                "c2s-tls" => (
                    &C2S_TLS,
                    "<c2s-tls addr=\"0.0.0.0:5223\"/>",
                    &mut listen.c2s_tls,
                ),
                "component" => (
                    &COMPONENT,
                    "<component addr=\"127.0.0.1:5347\"/>",
                    &mut listen.component,
                ),
                "s2s" => (&LISTEN_S2S, "<s2s addr=\"0.0.0.0:5269\"/>", &mut listen.s2s),
                "s2s-tls" => (
                    &LISTEN_S2S_TLS,
                    "<s2s-tls addr=\"0.0.0.0:5270\"/>",
                    &mut listen.s2s_tls,
                ),
                _ => unreachable!("listen children are checked against LISTEN"),
            };
            self.check(child, shape)?;
            let raw = self.required(child, "addr", example)?;
            let addr = values::socket_addr(raw).map_err(|p| self.problem(child.span, p))?;
            // Port 0 asks the system for a free port at each bind, so it
            // may be listed any number of times (tests rely on that).
            let clash = seen.iter().find(|(a, _, _)| *a == addr && addr.port() != 0);
            if let Some((_, kind, first)) = clash {
                return Err(self
                    .src
                    .error(
                        child.span,
                        format!(
                            "{addr} is already used by the <{kind}> at line {}",
                            first.line
                        ),
                    )
                    .with_hint("each listener needs an address and port of its own"));
            }
            seen.push((addr, shape.name, child.span));
            list.push(addr);
            if shape.name == "http" {
                let behind_tls_proxy = self.boolean(child, "behind-tls-proxy", false)?;
                listen
                    .http
                    .push(switchboard_config_http(addr, behind_tls_proxy));
            }
        }
        if listen.c2s.is_empty() && listen.c2s_tls.is_empty() {
            return Err(self
                .src
                .error(
                    el.span,
                    "<listen> has no <c2s> or <c2s-tls>, so no client could connect",
                )
                .with_hint(format!(
                    "add <c2s addr=\"{}\"/>, or remove <listen> to get that default",
                    defaults::C2S
                )));
        }
        Ok(listen)
    }

    fn tls(&self, el: &Element) -> Result<TlsConfig> {
        self.check(el, &TLS)?;
        let required = match el.attr("required") {
            None => defaults::TLS_REQUIRED,
            Some(v) => values::boolean(v).ok_or_else(|| {
                self.src.error(
                    el.span,
                    format!("'required' on <tls> must be true or false, not \"{v}\""),
                )
            })?,
        };
        let cert = el
            .attr("cert")
            .map(|p| self.path(el, "cert", p))
            .transpose()?;
        let key = el
            .attr("key")
            .map(|p| self.path(el, "key", p))
            .transpose()?;
        let both = "give both cert= and key=, or neither to use a self-signed certificate \
                    made on first run";
        match (&cert, &key) {
            (Some(_), None) => Err(self
                .src
                .error(el.span, "<tls> has cert= but no key=")
                .with_hint(both)),
            (None, Some(_)) => Err(self
                .src
                .error(el.span, "<tls> has key= but no cert=")
                .with_hint(both)),
            _ => Ok(TlsConfig {
                cert,
                key,
                required,
            }),
        }
    }

    fn limits(&self, el: &Element) -> Result<LimitsConfig> {
        self.check(el, &LIMITS)?;
        let mut limits = LimitsConfig::default();
        if let Some(v) = el.attr("max-stanza-bytes") {
            let n: usize = v.trim().parse().map_err(|_| {
                self.src
                    .error(
                        el.span,
                        format!("'max-stanza-bytes' on <limits> must be a whole number of bytes, not \"{v}\""),
                    )
                    .with_hint("e.g. max-stanza-bytes=\"262144\" for 256 KiB")
            })?;
            if n < defaults::MIN_STANZA_BYTES {
                return Err(self
                    .src
                    .error(
                        el.span,
                        format!(
                            "'max-stanza-bytes' on <limits> must be at least {}, not {n}",
                            defaults::MIN_STANZA_BYTES
                        ),
                    )
                    .with_hint(
                        "RFC 6120 §13.12 requires servers to accept stanzas of 10000 bytes",
                    ));
            }
            limits.max_stanza_bytes = n;
        }
        if let Some(v) = el.attr("preauth-timeout") {
            limits.preauth_timeout = self.duration(el, "preauth-timeout", v)?;
        }
        if let Some(v) = el.attr("keepalive") {
            limits.keepalive = self.duration(el, "keepalive", v)?;
        }
        if let Some(v) = el.attr("resume-timeout") {
            limits.resume_timeout = self.duration(el, "resume-timeout", v)?;
        }
        if let Some(v) = el.attr("scram-iterations") {
            let n: u32 = v.trim().parse().map_err(|_| {
                self.src.error(
                    el.span,
                    format!("'scram-iterations' on <limits> must be a whole number, not \"{v}\""),
                )
            })?;
            if n < defaults::MIN_SCRAM_ITERATIONS {
                return Err(self
                    .src
                    .error(
                        el.span,
                        format!(
                            "'scram-iterations' on <limits> must be at least {}, not {n}",
                            defaults::MIN_SCRAM_ITERATIONS
                        ),
                    )
                    .with_hint(
                        "RFC 7677 recommends at least 4096; stored credentials keep the count \
                         they were made with until the password changes",
                    ));
            }
            limits.scram_iterations = n;
        }
        if let Some(v) = el.attr("registrations-per-address") {
            limits.registrations_per_address = v.trim().parse().map_err(|_| {
                self.src
                    .error(
                        el.span,
                        format!("'registrations-per-address' on <limits> must be a whole number, not \"{v}\""),
                    )
                    .with_hint("e.g. registrations-per-address=\"5\"; 0 turns the limit off")
            })?;
        }
        if let Some(v) = el.attr("registration-window") {
            limits.registration_window = self.duration(el, "registration-window", v)?;
        }
        if let Some(v) = el.attr("registration-allowlist") {
            limits.registration_allowlist = values::ip_ranges(v).map_err(|p| {
                self.problem(
                    el.span,
                    Problem {
                        message: format!("'registration-allowlist' on <limits>: {}", p.message),
                        ..p
                    },
                )
            })?;
        }
        Ok(limits)
    }

    /// `<s2s>`: federation on, and its policy. `local-only` is read after
    /// the walk, once every `<service>` is known.
    fn s2s(&self, el: &Element) -> Result<S2sConfig> {
        self.check(el, &S2S)?;
        let flag = |attr: &str, default: bool| -> Result<bool> {
            match el.attr(attr) {
                None => Ok(default),
                Some(v) => values::boolean(v).ok_or_else(|| {
                    self.src.error(
                        el.span,
                        format!("'{attr}' on <s2s> must be true or false, not \"{v}\""),
                    )
                }),
            }
        };
        let secure_auth = flag("secure-auth", defaults::S2S_SECURE_AUTH)?;
        let dialback = flag("dialback", defaults::S2S_DIALBACK)?;
        if !secure_auth && !dialback {
            return Err(self
                .src
                .error(
                    el.span,
                    "secure-auth=\"false\" with dialback=\"false\" changes nothing: a peer \
                     whose certificate does not verify can only prove its domain by dialback",
                )
                .with_hint("set dialback=\"true\", or remove secure-auth=\"false\""));
        }
        let domains = |attr: &str| -> Result<Vec<String>> {
            let Some(v) = el.attr(attr) else {
                return Ok(Vec::new());
            };
            v.split(|c: char| c.is_whitespace() || c == ',')
                .filter(|d| !d.is_empty())
                .map(|d| {
                    normalize_domain(d).map_err(|e| {
                        self.src
                            .error(
                                el.span,
                                format!("'{attr}' on <s2s>: \"{d}\" is not a domain: {e}"),
                            )
                            .with_hint("list domains separated by spaces, e.g. \"example.net example.com\"")
                    })
                })
                .collect()
        };
        let allow = domains("allow")?;
        let deny = domains("deny")?;
        if let Some(both) = allow.iter().find(|d| deny.contains(d)) {
            return Err(self.src.error(
                el.span,
                format!("{both} is in both 'allow' and 'deny' on <s2s>"),
            ));
        }
        let trust = el
            .attr("trust")
            .map(|p| self.path(el, "trust", p))
            .transpose()?;
        let resolver = match el.attr("resolver") {
            None => None,
            Some(raw) => Some(values::socket_addr(raw).map_err(|p| {
                self.problem(
                    el.span,
                    Problem {
                        message: format!("'resolver' on <s2s>: {}", p.message),
                        hint: Some("write the DNS server as IP:PORT, e.g. 127.0.0.53:53".into()),
                    },
                )
            })?),
        };
        let timeout = match el.attr("timeout") {
            None => defaults::S2S_TIMEOUT,
            Some(v) => self.duration(el, "timeout", v)?,
        };
        let idle_timeout = match el.attr("idle-timeout") {
            None => defaults::S2S_IDLE_TIMEOUT,
            Some(v) => self.duration(el, "idle-timeout", v)?,
        };
        let max_queue = match el.attr("max-queue") {
            None => defaults::S2S_MAX_QUEUE,
            Some(v) => match v.trim().parse::<usize>() {
                Ok(n) if n > 0 => n,
                _ => {
                    return Err(self
                        .src
                        .error(
                            el.span,
                            format!(
                            "'max-queue' on <s2s> must be a whole number above zero, not \"{v}\""
                        ),
                        )
                        .with_hint("e.g. max-queue=\"1000\""))
                }
            },
        };
        let stanza_rate = match el.attr("stanza-rate") {
            None => defaults::S2S_STANZA_RATE,
            Some(v) => values::rate(v).ok_or_else(|| {
                self.src
                    .error(
                        el.span,
                        format!(
                            "'stanza-rate' on <s2s> must be stanzas per period or off, not \"{v}\""
                        ),
                    )
                    .with_hint("e.g. stanza-rate=\"500/1s\" or stanza-rate=\"6000/1m\"")
            })?,
        };
        let mut connect: Vec<(PeerAddress, Span)> = Vec::new();
        for child in el.elements() {
            let peer = self.connect(child)?;
            if let Some((_, first)) = connect.iter().find(|(p, _)| p.domain == peer.domain) {
                return Err(self.src.error(
                    child.span,
                    format!(
                        "duplicate <connect domain=\"{}\"> (the first is at line {})",
                        peer.domain, first.line
                    ),
                ));
            }
            connect.push((peer, child.span));
        }
        Ok(S2sConfig {
            secure_auth,
            dialback,
            allow,
            deny,
            trust,
            resolver,
            timeout,
            idle_timeout,
            max_queue,
            stanza_rate,
            local_only: Vec::new(),
            connect: connect.into_iter().map(|(p, _)| p).collect(),
        })
    }

    /// `<connect domain addr tls/>` inside `<s2s>`.
    fn connect(&self, el: &Element) -> Result<PeerAddress> {
        self.check(el, &CONNECT)?;
        let example = "<connect domain=\"example.net\" addr=\"192.0.2.7:5269\"/>";
        let raw = self.required(el, "domain", example)?;
        let domain = normalize_domain(raw).map_err(|e| {
            self.src.error(
                el.span,
                format!("invalid domain \"{raw}\" on <connect>: {e}"),
            )
        })?;
        let raw = self.required(el, "addr", example)?;
        let addr = values::socket_addr(raw).map_err(|p| self.problem(el.span, p))?;
        let tls = match el.attr("tls").map(|t| t.trim().to_ascii_lowercase()) {
            None => PeerTls::StartTls,
            Some(t) if t == "starttls" => PeerTls::StartTls,
            Some(t) if t == "direct" => PeerTls::Direct,
            Some(t) => {
                let err = self.src.error(
                    el.span,
                    format!("'tls' on <connect> must be starttls or direct, not \"{t}\""),
                );
                return Err(match closest(&t, &["starttls", "direct"]) {
                    Some(s) => err.with_hint(format!("did you mean \"{s}\"?")),
                    None => err,
                });
            }
        };
        Ok(PeerAddress { domain, addr, tls })
    }

    /// `local-only` on `<s2s>`: service hostnames, each a configured
    /// `<service>`; by default every transport.
    fn local_only(&self, el: &Element, services: &[(ServiceConfig, Span)]) -> Result<Vec<String>> {
        let Some(v) = el.attr("local-only") else {
            return Ok(services
                .iter()
                .filter(|(s, _)| defaults::TRANSPORT_TYPES.contains(&s.kind.as_str()))
                .map(|(s, _)| s.id.clone())
                .collect());
        };
        let ids: Vec<&str> = services.iter().map(|(s, _)| s.id.as_str()).collect();
        v.split(|c: char| c.is_whitespace() || c == ',')
            .filter(|d| !d.is_empty())
            .map(|d| {
                let name = normalize_domain(d).unwrap_or_else(|_| d.to_string());
                if ids.contains(&name.as_str()) {
                    return Ok(name);
                }
                let err = self.src.error(
                    el.span,
                    format!("'local-only' on <s2s> names {d}, which is no <service>"),
                );
                Err(match closest(&name, &ids) {
                    Some(s) => err.with_hint(format!("did you mean {s}?")),
                    None => err.with_hint("list the hostnames (id=) of configured services"),
                })
            })
            .collect()
    }

    fn auth_delay(&self, el: &Element) -> Result<AuthDelayConfig> {
        self.check(el, &AUTH_DELAY)?;
        let mut config = AuthDelayConfig::default();
        if let Some(v) = el.attr("forget") {
            config.forget = self.duration(el, "forget", v)?;
        }
        let mut once = Once::default();
        for child in el.elements() {
            once.check(&self.src, child)?;
            match child.name.as_str() {
                "address" => config.address = self.delay_curve(child, &DELAY_ADDRESS)?,
                "account" => config.account = self.delay_curve(child, &DELAY_ACCOUNT)?,
                _ => unreachable!("auth-delay children are checked against AUTH_DELAY"),
            }
        }
        Ok(config)
    }

    /// `<address>` or `<account>` in `<auth-delay>`: what is left out
    /// keeps its default.
    fn delay_curve(&self, el: &Element, shape: &Shape) -> Result<DelayCurve> {
        self.check(el, shape)?;
        let mut curve = match shape.name {
            "address" => defaults::AUTH_DELAY_ADDRESS,
            _ => defaults::AUTH_DELAY_ACCOUNT,
        };
        if let Some(v) = el.attr("after") {
            curve.after = v.trim().parse().map_err(|_| {
                self.src
                    .error(
                        el.span,
                        format!(
                            "'after' on <{}> must be a whole number of failures, not \"{v}\"",
                            el.name
                        ),
                    )
                    .with_hint("e.g. after=\"5\": the sixth attempt is the first to wait")
            })?;
        }
        if let Some(v) = el.attr("first") {
            curve.first = self.duration(el, "first", v)?;
        }
        if let Some(v) = el.attr("max") {
            // Zero is allowed here: it turns the curve off.
            curve.max = values::duration(v).ok_or_else(|| {
                self.src
                    .error(
                        el.span,
                        format!(
                            "'max' on <{}> must be a duration like 30s, 5m or 1h, not \"{v}\"",
                            el.name
                        ),
                    )
                    .with_hint("max=\"0s\" turns this delay off")
            })?;
        }
        if !curve.max.is_zero() && curve.first > curve.max {
            return Err(self
                .src
                .error(
                    el.span,
                    format!(
                        "'first' on <{}> ({}s) is longer than 'max' ({}s)",
                        el.name,
                        curve.first.as_secs(),
                        curve.max.as_secs()
                    ),
                )
                .with_hint("delays start at 'first' and double up to 'max'"));
        }
        Ok(curve)
    }

    fn spool(&self, el: &Element) -> Result<SpoolConfig> {
        self.check(el, &SPOOL)?;
        let dir = self.required(el, "dir", "<spool dir=\"spool\"/>")?;
        Ok(SpoolConfig {
            dir: self.path(el, "dir", dir)?,
        })
    }

    /// `<storage backend="spool"/>` or `<storage backend="postgres"
    /// url="postgres://…"/>`.
    fn storage(&self, el: &Element) -> Result<StorageConfig> {
        self.check(el, &STORAGE)?;
        const EXAMPLE: &str =
            "<storage backend=\"postgres\" url=\"postgres://switchboard@127.0.0.1:5432/switchboard\"/>";
        let backend = self.required(el, "backend", EXAMPLE)?;
        match backend {
            "spool" => {
                for attr in ["url", "connections", "password-file"] {
                    if el.attr(attr).is_some() {
                        return Err(self
                            .src
                            .error(
                                el.span,
                                format!("'{attr}' on <storage> is for backend=\"postgres\""),
                            )
                            .with_hint("the spool's directory is <spool dir>"));
                    }
                }
                Ok(StorageConfig::Spool)
            }
            "postgres" => {
                let url = self.required(el, "url", EXAMPLE)?.trim();
                if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
                    return Err(self
                        .src
                        .error(
                            el.span,
                            format!("'url' on <storage> must be a postgres:// URL, not \"{url}\""),
                        )
                        .with_hint("e.g. postgres://switchboard@127.0.0.1:5432/switchboard"));
                }
                let connections = match el.attr("connections") {
                    None => defaults::STORAGE_CONNECTIONS,
                    Some(v) => match self.whole(el, "connections", v)? {
                        0 => {
                            return Err(self
                                .src
                                .error(el.span, "'connections' on <storage> must be at least 1"))
                        }
                        n => n,
                    },
                };
                let password_file = el
                    .attr("password-file")
                    .map(|f| self.path(el, "password-file", f))
                    .transpose()?;
                Ok(StorageConfig::Postgres(PostgresConfig {
                    url: url.to_string(),
                    connections,
                    password_file,
                }))
            }
            other => {
                let err = self.src.error(
                    el.span,
                    format!("'backend' on <storage> must be spool or postgres, not \"{other}\""),
                );
                Err(match closest(other, &["spool", "postgres"]) {
                    Some(s) => err.with_hint(format!("did you mean \"{s}\"?")),
                    None => err,
                })
            }
        }
    }

    fn log(&self, el: &Element) -> Result<LogConfig> {
        self.check(el, &LOG)?;
        let file = match el.attr("file") {
            None => Some(self.resolve(defaults::LOG_FILE)),
            Some(f) if f.trim() == STDERR => None,
            Some(f) => Some(self.path(el, "file", f)?),
        };
        let level = match el.attr("level") {
            None => defaults::LOG_LEVEL.to_string(),
            Some(l) => values::log_filter(l).map_err(|p| self.problem(el.span, p))?,
        };
        Ok(LogConfig { file, level })
    }

    fn credentials(&self, el: &Element) -> Result<PathBuf> {
        self.check(el, &CREDENTIALS)?;
        let key = self.required(el, "key", "<credentials key=\"etc/credentials.key\"/>")?;
        self.path(el, "key", key)
    }

    /// `<metrics addr="…"/>`: the Prometheus endpoint. Present means on;
    /// an address off the loopback interface is allowed (a scraper on
    /// another machine needs it) and only the sample warns about it.
    fn metrics(&self, el: &Element) -> Result<Option<SocketAddr>> {
        self.check(el, &METRICS)?;
        let raw = self.required(el, "addr", "<metrics addr=\"127.0.0.1:9108\"/>")?;
        let addr = values::socket_addr(raw).map_err(|p| self.problem(el.span, p))?;
        Ok(Some(addr))
    }

    /// `<web>`: what the HTTP listeners serve, and their limits.
    fn web(&self, el: &Element) -> Result<WebConfig> {
        self.check(el, &WEB)?;
        let mut web = WebConfig::default();
        if let Some(v) = el.attr("origins") {
            let list: Vec<String> = v.split_whitespace().map(str::to_string).collect();
            if list.iter().any(|o| o == "*") {
                web.origins = None;
            } else {
                for o in &list {
                    if !(o.starts_with("https://") || o.starts_with("http://"))
                        || o.trim_end_matches('/').matches('/').count() != 2
                    {
                        return Err(self
                            .src
                            .error(
                                el.span,
                                format!("'origins' on <web>: \"{o}\" is not an origin"),
                            )
                            .with_hint(
                                "an origin is scheme://host[:port] with no path, e.g. \
                                 https://chat.example.org; \"*\" allows any",
                            ));
                    }
                }
                web.origins = Some(
                    list.into_iter()
                        .map(|o| o.trim_end_matches('/').to_ascii_lowercase())
                        .collect(),
                );
            }
        }
        if let Some(v) = el.attr("chat-dir") {
            web.chat_dir = Some(self.path(el, "chat-dir", v)?);
        }
        web.admin_console = self.boolean(el, "admin-console", web.admin_console)?;
        if let Some(v) = el.attr("max-header-bytes") {
            web.max_header_bytes = self.bytes(el, "max-header-bytes", v)?;
            if web.max_header_bytes < defaults::HTTP_MAX_HEADER_BYTES {
                return Err(self.src.error(
                    el.span,
                    format!(
                        "'max-header-bytes' on <web> must be at least {}",
                        defaults::HTTP_MAX_HEADER_BYTES
                    ),
                ));
            }
        }
        if let Some(v) = el.attr("max-body-bytes") {
            web.max_body_bytes = self.bytes(el, "max-body-bytes", v)?;
        }
        if let Some(v) = el.attr("header-timeout") {
            web.header_timeout = self.duration(el, "header-timeout", v)?;
        }
        if let Some(v) = el.attr("body-timeout") {
            web.body_timeout = self.duration(el, "body-timeout", v)?;
        }
        if let Some(v) = el.attr("min-body-rate") {
            web.min_body_rate = self.bytes(el, "min-body-rate", v)? as u64;
            if web.min_body_rate == 0 {
                return Err(self.src.error(
                    el.span,
                    "'min-body-rate' on <web> must be more than 0 bytes (per second)",
                ));
            }
        }
        if let Some(v) = el.attr("max-connections") {
            web.max_connections = self.whole(el, "max-connections", v)?;
        }
        for child in el.elements() {
            // Only <bosh> passes the shape check.
            self.check(child, &BOSH)?;
            let b = &mut web.bosh;
            if let Some(v) = child.attr("inactivity") {
                b.inactivity = self.duration(child, "inactivity", v)?;
            }
            if let Some(v) = child.attr("max-wait") {
                b.max_wait = self.duration(child, "max-wait", v)?;
            }
            if let Some(v) = child.attr("max-hold") {
                b.max_hold = self.whole(child, "max-hold", v)?.clamp(1, 10) as u32;
            }
            if let Some(v) = child.attr("max-sessions-per-address") {
                b.max_sessions_per_address = self.whole(child, "max-sessions-per-address", v)?;
            }
        }
        Ok(web)
    }

    /// A true/false attribute, or `default` when absent.
    fn boolean(&self, el: &Element, attr: &str, default: bool) -> Result<bool> {
        match el.attr(attr) {
            None => Ok(default),
            Some(v) => values::boolean(v).ok_or_else(|| {
                self.src.error(
                    el.span,
                    format!(
                        "'{attr}' on <{}> must be true or false, not \"{v}\"",
                        el.name
                    ),
                )
            }),
        }
    }

    /// A whole number.
    fn whole(&self, el: &Element, attr: &str, v: &str) -> Result<usize> {
        v.trim().parse().map_err(|_| {
            self.src.error(
                el.span,
                format!(
                    "'{attr}' on <{}> must be a whole number, not \"{v}\"",
                    el.name
                ),
            )
        })
    }

    /// A size in bytes: a whole number, optionally with K, M or G
    /// (binary multiples: 10M is 10 MiB).
    fn bytes(&self, el: &Element, attr: &str, v: &str) -> Result<usize> {
        values::byte_size(v).ok_or_else(|| {
            self.src.error(
                el.span,
                format!(
                    "'{attr}' on <{}> must be a size like 65536, 64K, 10M or 1G, not \"{v}\"",
                    el.name
                ),
            )
        })
    }

    fn pidfile(&self, el: &Element) -> Result<PathBuf> {
        self.check(el, &PIDFILE)?;
        let text = el.text();
        let text = text.trim();
        if text.is_empty() {
            return Err(self
                .src
                .error(el.span, "<pidfile> is empty")
                .with_hint(format!(
                    "write a path, e.g. <pidfile>{}</pidfile>",
                    defaults::PIDFILE
                )));
        }
        Ok(self.resolve(text))
    }

    /// Checks an element against its shape: known attributes only, known
    /// child elements only (in the config namespace), and text only where
    /// the element's value is text.
    fn check(&self, el: &Element, shape: &Shape) -> Result<()> {
        for (name, value) in &el.attrs {
            // Namespace declarations are the XML layer's business.
            if name == "xmlns" || name.starts_with("xmlns:") || shape.attrs.contains(&name.as_str())
            {
                continue;
            }
            return Err(self.unknown_attr(el, shape, name, value));
        }
        for node in &el.children {
            match node {
                Node::Text(t) if !shape.text && !t.trim().is_empty() => {
                    return Err(self.unexpected_text(el, shape, t.trim()));
                }
                Node::Text(_) => {}
                Node::Element(child) => self.child_allowed(shape, child)?,
            }
        }
        Ok(())
    }

    fn unknown_attr(&self, el: &Element, shape: &Shape, name: &str, value: &str) -> ConfigError {
        let tag = shape.name;
        if let Some(s) = closest(name, shape.attrs) {
            return self.src.error(
                el.span,
                format!("unknown attribute '{name}' on <{tag}> — did you mean '{s}'?"),
            );
        }
        let err = self
            .src
            .error(el.span, format!("unknown attribute '{name}' on <{tag}>"));
        if shape.children.contains(&name) {
            err.with_hint(format!(
                "write it as a child element: <{name}>{value}</{name}>"
            ))
        } else if shape.attrs.is_empty() && shape.text {
            err.with_hint(format!(
                "<{tag}> takes no attributes; write its value as text: <{tag}>…</{tag}>"
            ))
        } else if shape.attrs.is_empty() {
            err.with_hint(format!("<{tag}> takes no attributes"))
        } else {
            err.with_hint(format!("<{tag}> takes {}", shape.attrs.join(", ")))
        }
    }

    fn unexpected_text(&self, el: &Element, shape: &Shape, text: &str) -> ConfigError {
        let shown: String = text.chars().take(40).collect();
        let ellipsis = if shown.len() < text.len() { "…" } else { "" };
        let err = self.src.error(
            el.span,
            format!("unexpected text \"{shown}{ellipsis}\" in <{}>", shape.name),
        );
        // jabberd 1.4 wrote most values as text; point such admins at the
        // attribute the value now goes in.
        match shape.attrs {
            [attr] if shape.children.is_empty() && el.attr(attr).is_none() => {
                err.with_hint(format!(
                    "write it as an attribute: <{} {attr}=\"{shown}\"/>",
                    shape.name
                ))
            }
            _ if shape.children.is_empty() => {
                err.with_hint(format!("<{}> holds no text", shape.name))
            }
            _ => err.with_hint(format!("<{}> holds only elements", shape.name)),
        }
    }

    fn child_allowed(&self, shape: &Shape, child: &Element) -> Result<()> {
        let name = child.name.as_str();
        if child.ns != self.ns {
            return Err(self
                .src
                .error(
                    child.span,
                    format!(
                        "element <{name}> in the namespace \"{}\" is not part of the config",
                        child.ns
                    ),
                )
                .with_hint("config elements share the namespace of <switchboard>"));
        }
        if shape.children.contains(&name) {
            return Ok(());
        }
        // A known element in the wrong place is named as such, not as
        // unknown, with the place it belongs.
        if let Some(home) = SHAPES.iter().find(|s| s.children.contains(&name)) {
            let place = if home.name == ROOT.name {
                "directly inside <switchboard>".to_string()
            } else {
                format!("inside <{}>", home.name)
            };
            return Err(self
                .src
                .error(
                    child.span,
                    format!("<{name}> is not allowed in <{}>", shape.name),
                )
                .with_hint(format!("<{name}> belongs {place}")));
        }
        if let Some(s) = closest(name, shape.children) {
            return Err(self.src.error(
                child.span,
                format!("unknown element <{name}> — did you mean <{s}>?"),
            ));
        }
        let err = self.src.error(
            child.span,
            format!("unknown element <{name}> in <{}>", shape.name),
        );
        Err(if shape.attrs.contains(&name) {
            err.with_hint(format!(
                "write it as an attribute: <{} {name}=\"…\"/>",
                shape.name
            ))
        } else if shape.children.is_empty() {
            err.with_hint(format!("<{}> has no child elements", shape.name))
        } else {
            let list: Vec<String> = shape.children.iter().map(|c| format!("<{c}>")).collect();
            err.with_hint(format!("<{}> may contain {}", shape.name, list.join(", ")))
        })
    }

    /// A required attribute, trimmed and not empty.
    fn required<'e>(&self, el: &'e Element, name: &str, example: &str) -> Result<&'e str> {
        match el.attr(name).map(str::trim) {
            None => Err(self
                .src
                .error(
                    el.span,
                    format!("missing required attribute '{name}' on <{}>", el.name),
                )
                .with_hint(format!("e.g. {example}"))),
            Some("") => Err(self
                .src
                .error(el.span, format!("'{name}' on <{}> is empty", el.name))
                .with_hint(format!("e.g. {example}"))),
            Some(v) => Ok(v),
        }
    }

    fn duration(&self, el: &Element, attr: &str, value: &str) -> Result<std::time::Duration> {
        match values::duration(value) {
            Some(d) if d.is_zero() => Err(self.src.error(
                el.span,
                format!("'{attr}' on <{}> must be longer than zero", el.name),
            )),
            Some(d) => Ok(d),
            None => Err(self.src.error(
                el.span,
                format!(
                    "'{attr}' on <{}> must be a duration like 30s, 5m or 1h, not \"{value}\"",
                    el.name
                ),
            )),
        }
    }

    /// A path attribute, resolved against the home directory.
    fn path(&self, el: &Element, attr: &str, value: &str) -> Result<PathBuf> {
        let value = value.trim();
        if value.is_empty() {
            return Err(self
                .src
                .error(el.span, format!("'{attr}' on <{}> is empty", el.name)));
        }
        Ok(self.resolve(value))
    }

    /// Relative paths are relative to the home directory (`-H`), never to
    /// the working directory, so the server finds its files however it was
    /// started.
    fn resolve(&self, path: &str) -> PathBuf {
        let path = Path::new(path);
        if path.is_relative() {
            self.home.join(path)
        } else {
            path.to_path_buf()
        }
    }

    fn problem(&self, span: Span, p: Problem) -> ConfigError {
        let err = self.src.error(span, p.message);
        match p.hint {
            Some(h) => err.with_hint(h),
            None => err,
        }
    }
}

/// Remembers which single-occurrence elements have been seen in one parent.
#[derive(Default)]
struct Once {
    seen: Vec<(String, Span)>,
}

impl Once {
    fn check(&mut self, src: &Source<'_>, el: &Element) -> Result<()> {
        if let Some((_, first)) = self.seen.iter().find(|(n, _)| *n == el.name) {
            return Err(src
                .error(
                    el.span,
                    format!(
                        "duplicate <{}> (the first is at line {})",
                        el.name, first.line
                    ),
                )
                .with_hint(format!("merge them into one <{}>", el.name)));
        }
        self.seen.push((el.name.clone(), el.span));
        Ok(())
    }
}
