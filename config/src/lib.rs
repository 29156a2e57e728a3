//! The configuration: one XML file (jabberd heritage) parsed into typed
//! structs. Only this crate parses the config. Every error names the file,
//! line and column, what was expected, and a hint where one helps.
//!
//! TO BE IMPLEMENTED (helper): parsing, errors, the sample file.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use switchboard_jid::Jid;

/// The commented sample config, which is also the embedded default used
/// when no config file exists.
pub const SAMPLE: &str = include_str!("../switchboard.xml");

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
    /// STARTTLS client listeners (default `[::]:5222` and `0.0.0.0:5222`
    /// collapse to one dual-stack `[::]:5222` where possible).
    pub c2s: Vec<SocketAddr>,
    /// Direct TLS client listeners (XEP-0368), none by default.
    pub c2s_tls: Vec<SocketAddr>,
    /// XEP-0114 component listeners (default none until services need it).
    pub component: Vec<SocketAddr>,
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
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpoolConfig {
    pub dir: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// `None`: log to stderr only.
    pub file: Option<PathBuf>,
    /// A tracing filter directive (`info`, `debug`, `switchboard_core=trace`).
    pub level: String,
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
    pub spool: SpoolConfig,
    pub log: LogConfig,
    pub pidfile: PathBuf,
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
        write!(f, "{}:{}:{}: {}", self.file, self.line, self.col, self.message)?;
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
    let _ = (text, file, home);
    todo!()
}

/// Reads and parses a config file (an unreadable file is an error at 0:0
/// naming the path and the OS error).
pub fn load(path: &Path, home: &Path) -> Result<Config, ConfigError> {
    let _ = (path, home);
    todo!()
}
