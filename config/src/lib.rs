//! The configuration: one XML file (jabberd heritage) parsed into typed
//! structs. Only this crate parses the config. Every error names the file,
//! line and column, what was expected, and a hint where one helps.
//!
//! The format is documented by example in `config/switchboard.xml`, which
//! is also compiled in as [`SAMPLE`], the default used when there is no
//! config file. Everything the file leaves out takes the value in
//! [`defaults`], so `<switchboard><host name="example.org"/></switchboard>`
//! is a complete config.
//!
//! Modules: `parse` walks the XML tree, `values` reads typed values
//! (durations, addresses, log filters), `ip_range` is the CIDR range type
//! address lists are made of, `errors` builds positioned errors, `suggest`
//! finds "did you mean" candidates.

pub mod defaults;
mod errors;
mod ip_range;
mod parse;
mod suggest;
mod values;

pub use ip_range::{InvalidRange, IpRange};
pub use values::byte_size;

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use switchboard_jid::Jid;

/// The commented sample config, which is also the embedded default used
/// when no config file exists.
pub const SAMPLE: &str = include_str!("../switchboard.xml");

/// The name [`Config::source`] and errors use for [`SAMPLE`].
pub const EMBEDDED_SOURCE: &str = "<embedded default>";

/// The namespace the root may declare (`<switchboard xmlns="…">`); no
/// namespace at all is accepted too.
pub const CONFIG_NS: &str = "urn:switchboard:config:1";

/// Who may create accounts over XEP-0077 on a host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Registration {
    Off,
    Open,
    /// Only the host's admins may create accounts in band.
    Admin,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostConfig {
    /// The normalized domain.
    pub name: String,
    pub admins: Vec<Jid>,
    pub registration: Registration,
    /// The users' message archive (XEP-0313).
    pub archive: ArchiveConfig,
    /// Contact addresses the host advertises (XEP-0157), in config order.
    pub contacts: Vec<ContactAddress>,
}

/// What the message archive of a host's users keeps (`<archive>` in
/// `<host>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArchiveConfig {
    /// How long a message is kept; `None`: for ever.
    pub retention: Option<Duration>,
    /// What is archived for a user who has not set preferences.
    pub default: ArchiveDefault,
}

/// Which messages a user's archive keeps by default (the `default` of
/// XEP-0441 preferences).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveDefault {
    /// Every message to or from the user.
    Always,
    /// Only messages with contacts in the user's roster.
    Roster,
    /// None.
    Never,
}

impl ArchiveDefault {
    pub fn as_str(self) -> &'static str {
        match self {
            ArchiveDefault::Always => "always",
            ArchiveDefault::Roster => "roster",
            ArchiveDefault::Never => "never",
        }
    }

    pub fn parse(text: &str) -> Option<ArchiveDefault> {
        match text {
            "always" => Some(ArchiveDefault::Always),
            "roster" => Some(ArchiveDefault::Roster),
            "never" => Some(ArchiveDefault::Never),
            _ => None,
        }
    }
}

/// Whom a contact address reaches: the fields of XEP-0157's
/// `http://jabber.org/network/serverinfo` form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContactKind {
    Abuse,
    Admin,
    Feedback,
    Sales,
    Security,
    Status,
    Support,
}

impl ContactKind {
    pub const ALL: [ContactKind; 7] = [
        ContactKind::Abuse,
        ContactKind::Admin,
        ContactKind::Feedback,
        ContactKind::Sales,
        ContactKind::Security,
        ContactKind::Status,
        ContactKind::Support,
    ];

    /// The word the config uses (`<contact type="abuse">`).
    pub fn name(self) -> &'static str {
        match self {
            ContactKind::Abuse => "abuse",
            ContactKind::Admin => "admin",
            ContactKind::Feedback => "feedback",
            ContactKind::Sales => "sales",
            ContactKind::Security => "security",
            ContactKind::Status => "status",
            ContactKind::Support => "support",
        }
    }

    /// The form field XEP-0157 registers for it (`abuse-addresses`, …).
    pub fn field(self) -> &'static str {
        match self {
            ContactKind::Abuse => "abuse-addresses",
            ContactKind::Admin => "admin-addresses",
            ContactKind::Feedback => "feedback-addresses",
            ContactKind::Sales => "sales-addresses",
            ContactKind::Security => "security-addresses",
            ContactKind::Status => "status-addresses",
            ContactKind::Support => "support-addresses",
        }
    }
}

/// One contact address: a URI (`mailto:`, `xmpp:`, `https:`, …).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactAddress {
    pub kind: ContactKind,
    pub uri: String,
}

/// A hostname-addressed service. Service-specific settings stay as the raw
/// element for the service to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceConfig {
    /// The normalized hostname.
    pub id: String,
    /// `type=` (muc, irc, directory, external, …).
    pub kind: String,
    pub secret: Option<String>,
    pub element: switchboard_xml::Element,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenConfig {
    /// STARTTLS client listeners (default `0.0.0.0:5222`, every IPv4
    /// interface: see [`defaults::C2S`] for why not `[::]`).
    pub c2s: Vec<SocketAddr>,
    /// Direct TLS client listeners (XEP-0368), none by default.
    pub c2s_tls: Vec<SocketAddr>,
    /// XEP-0114 component listeners (default none until services need it).
    pub component: Vec<SocketAddr>,
    /// Server-to-server listeners, STARTTLS (RFC 6120; conventionally
    /// 5269). Default none, or `0.0.0.0:5269` when `<s2s>` turns
    /// federation on and no s2s listener is named.
    pub s2s: Vec<SocketAddr>,
    /// Server-to-server listeners with TLS from the first byte (XEP-0368).
    pub s2s_tls: Vec<SocketAddr>,
    /// Plain HTTP listeners for the web side (WebSocket, BOSH, uploads,
    /// the chat page, the admin console); none by default.
    pub http: Vec<HttpListener>,
    /// HTTPS listeners (the `<tls>` certificate); none by default.
    pub https: Vec<SocketAddr>,
}

/// A plain HTTP listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpListener {
    pub addr: SocketAddr,
    /// A reverse proxy in front terminates TLS (`behind-tls-proxy`): logins
    /// over this listener count as encrypted, and the admin console's
    /// cookies are marked `Secure`.
    pub behind_tls_proxy: bool,
}

/// The web side (`<web>`): what the HTTP listeners serve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebConfig {
    /// Page origins (`https://chat.example.org`) allowed to open WebSocket
    /// and BOSH sessions; `None` allows any (the default: logins need a
    /// password anyway, and no cookie authenticates an XMPP session).
    pub origins: Option<Vec<String>>,
    /// The directory holding converse.js (its `dist/`), served as the chat
    /// page at `/`; `None` (the default) serves a page saying how to
    /// install it.
    pub chat_dir: Option<PathBuf>,
    /// Whether `/admin/` serves the admin console (default true; only the
    /// hosts' admins can log in).
    pub admin_console: bool,
    /// The largest request head (request line and headers), in bytes.
    pub max_header_bytes: usize,
    /// The largest request body other than an upload (BOSH, forms).
    pub max_body_bytes: usize,
    /// How long a client may take to send a request head.
    pub header_timeout: Duration,
    /// How long a client may take to send a request body other than an
    /// upload (BOSH, forms), and how long an upload may send nothing.
    pub body_timeout: Duration,
    /// The slowest an upload may arrive on average, in bytes per second:
    /// its deadline is `body_timeout` plus a second for every this many
    /// bytes received, so a body trickled a byte at a time is cut off.
    pub min_body_rate: u64,
    /// HTTP connections served at once (beyond it, new ones are closed).
    pub max_connections: usize,
    /// BOSH (XEP-0124/0206).
    pub bosh: BoshConfig,
}

/// BOSH session limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoshConfig {
    /// A session no request reached for this long ends (`inactivity`).
    pub inactivity: Duration,
    /// The longest the server holds a request open (`wait` is capped to it).
    pub max_wait: Duration,
    /// Requests the server holds at once per session (`hold` is capped).
    pub max_hold: u32,
    /// BOSH sessions from one address at once.
    pub max_sessions_per_address: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsConfig {
    /// Certificate chain (PEM). `None`: a self-signed certificate is made on
    /// first run under `etc/`.
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    /// Refuse to authenticate clients before STARTTLS (default true).
    pub required: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitsConfig {
    /// Largest client stanza in bytes (default 256 KiB).
    pub max_stanza_bytes: usize,
    /// Time allowed from connect to authenticated session (default 60 s).
    pub preauth_timeout: Duration,
    /// Idle time after which the server sends a whitespace keepalive
    /// (default 60 s).
    pub keepalive: Duration,
    /// PBKDF2 iterations for newly stored SCRAM credentials (default 4096).
    pub scram_iterations: u32,
    /// In-band registrations allowed from one IP address per
    /// `registration_window` (default 5; 0 means no limit).
    pub registrations_per_address: usize,
    /// The window for `registrations_per_address` (default 10 minutes).
    pub registration_window: Duration,
    /// Addresses exempt from `registrations_per_address` (default loopback:
    /// `127.0.0.0/8` and `::1`, so that local scripts and test suites are
    /// not throttled); the config replaces the whole list.
    pub registration_allowlist: Vec<IpRange>,
    /// The longest a stream-managed session whose connection died waits
    /// to be resumed (XEP-0198) before it ends and its undelivered
    /// messages go to offline storage (default 10 minutes, as Prosody's
    /// `smacks_hibernation_time`); a client may ask for less.
    pub resume_timeout: Duration,
}

/// Slowing down password guessing (`<auth-delay>`): once a source
/// address, or an account, has failed to authenticate `after` times, each
/// further attempt waits before its credentials are checked, `first` and
/// then twice as long per further failure, up to `max`. The core's
/// `auth_delay` module applies it and says why the two curves differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthDelayConfig {
    /// Failures from one source address (an IPv6 address counts as its
    /// /64, what one subscriber usually gets), whatever the account.
    pub address: DelayCurve,
    /// Failures on one account, from whichever address.
    pub account: DelayCurve,
    /// A count is forgotten after this long without a new failure.
    pub forget: Duration,
}

/// One delay curve of [`AuthDelayConfig`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DelayCurve {
    /// Failures that cost nothing: the attempt after the `after`-th
    /// failure is the first to wait.
    pub after: u32,
    /// The first delay; each further failure doubles it.
    pub first: Duration,
    /// The longest delay; zero turns the curve off.
    pub max: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpoolConfig {
    pub dir: PathBuf,
}

/// Where the server stores what it keeps (`<storage>`): the file spool
/// (the default, at `<spool dir>`) or a PostgreSQL database.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum StorageConfig {
    /// The spool directory of `<spool dir>`.
    #[default]
    Spool,
    Postgres(PostgresConfig),
}

/// `<storage backend="postgres" …>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostgresConfig {
    /// `postgres://user@host:port/database` (libpq's URL form).
    pub url: String,
    /// The most connections the server opens.
    pub connections: usize,
    /// A file whose first line is the password (`password-file`), so the
    /// config need not hold it.
    pub password_file: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// `None`: log to stderr only.
    pub file: Option<PathBuf>,
    /// A tracing filter directive (`info`, `debug`, `switchboard_core=trace`).
    pub level: String,
}

/// How a peer's address is given by `<connect>`: STARTTLS on a plain
/// socket, or TLS from the first byte (XEP-0368).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerTls {
    StartTls,
    Direct,
}

/// `<connect domain addr tls/>`: where to reach one remote domain, instead
/// of asking DNS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerAddress {
    /// The normalized remote domain.
    pub domain: String,
    pub addr: SocketAddr,
    pub tls: PeerTls,
}

/// `count` per `per` (`500/1s`): a burst of `count`, then one every
/// `per / count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub count: u32,
    pub per: Duration,
}

/// Federation (`<s2s>`): present means other servers' users can be
/// reached and can reach this server's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S2sConfig {
    /// Every peer must prove its domain with a certificate that verifies
    /// (default true). False lets a peer whose certificate does not verify
    /// authenticate by Server Dialback, which needs `dialback`.
    pub secure_auth: bool,
    /// Whether Server Dialback (XEP-0220) is spoken at all (default true):
    /// with `secure_auth` it is accepted only from a peer whose certificate
    /// verifies for the domain it claims.
    pub dialback: bool,
    /// Only these domains (and their subdomains) are federated with; empty
    /// means every domain not denied.
    pub allow: Vec<String>,
    /// Never federated with (and their subdomains).
    pub deny: Vec<String>,
    /// Extra trust anchors (PEM) for peers' certificates, besides the
    /// operating system's store.
    pub trust: Option<PathBuf>,
    /// The DNS server to ask instead of the system's (`IP:PORT`); meant
    /// for test networks.
    pub resolver: Option<SocketAddr>,
    /// How long setting a link up may take (DNS, connecting, TLS,
    /// authentication) before the stanzas waiting for it bounce with
    /// remote-server-timeout (default 30 s); also the time an incoming
    /// stream has to authenticate.
    pub timeout: Duration,
    /// A link that carried no stanza for this long is closed (default 10m).
    pub idle_timeout: Duration,
    /// Stanzas one outgoing link may hold while it is being set up or is
    /// behind (default 1000); more bounce with resource-constraint.
    pub max_queue: usize,
    /// Stanzas one incoming link may deliver per period (a burst of
    /// `count`, then `count` per `per`); a faster peer is read more
    /// slowly. `None`: no limit.
    pub stanza_rate: Option<Rate>,
    /// Service hostnames that users of other servers may not address
    /// (default: every transport, i.e. `type="irc"` services).
    pub local_only: Vec<String>,
    /// Fixed addresses for remote domains (`<connect>`), asked before DNS.
    pub connect: Vec<PeerAddress>,
}

/// The whole configuration, with relative paths already resolved against
/// the home directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Where this config came from (a path, or `<embedded default>`).
    pub source: String,
    pub hosts: Vec<HostConfig>,
    pub services: Vec<ServiceConfig>,
    pub listen: ListenConfig,
    pub tls: TlsConfig,
    pub limits: LimitsConfig,
    pub auth_delay: AuthDelayConfig,
    pub spool: SpoolConfig,
    /// Which storage backend (`<storage>`); the spool by default.
    pub storage: StorageConfig,
    pub log: LogConfig,
    pub pidfile: PathBuf,
    /// The key file sealing transport credentials (`<credentials key>`).
    pub credentials_key: PathBuf,
    /// The Prometheus metrics endpoint (`<metrics addr>`); `None` (the
    /// default) serves no metrics.
    pub metrics: Option<SocketAddr>,
    /// Federation with other servers (`<s2s>`); `None` (the default): a
    /// stanza to another domain gets remote-server-not-found.
    pub s2s: Option<S2sConfig>,
    /// The web side: what the HTTP listeners serve.
    pub web: WebConfig,
}

impl Config {
    pub fn host(&self, name: &str) -> Option<&HostConfig> {
        self.hosts.iter().find(|h| h.name == name)
    }
}

/// A config error: `file:line:col: message` and an optional hint line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: String,
    pub line: u32,
    pub col: u32,
    pub message: String,
    pub hint: Option<String>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file, self.line, self.col, self.message
        )?;
        if let Some(h) = &self.hint {
            write!(f, "\n  hint: {h}")?;
        }
        Ok(())
    }
}
impl std::error::Error for ConfigError {}

/// Parses config text. `file` names it in errors; relative paths resolve
/// against `home`.
pub fn parse(text: &str, file: &str, home: &Path) -> Result<Config, ConfigError> {
    parse::parse(text, file, home)
}

/// Reads and parses a config file (an unreadable file is an error at 0:0
/// naming the path and the OS error).
///
/// `path` is used as given (the caller resolves `-c` against the working
/// directory, as a command-line user expects); only paths written inside
/// the file are relative to `home`.
pub fn load(path: &Path, home: &Path) -> Result<Config, ConfigError> {
    let file = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| errors::unreadable(&file, path, &e))?;
    match std::str::from_utf8(&bytes) {
        Ok(text) => parse(text, &file, home),
        Err(e) => Err(errors::not_utf8(&file, &bytes, e.valid_up_to())),
    }
}

/// The embedded default ([`SAMPLE`]), with paths resolved against `home`.
pub fn embedded_default(home: &Path) -> Result<Config, ConfigError> {
    parse(SAMPLE, EMBEDDED_SOURCE, home)
}

#[cfg(test)]
mod tests;
