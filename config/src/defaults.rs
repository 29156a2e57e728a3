//! The value used for everything the config file leaves out.
//!
//! These are the single source of truth: the parser fills omitted elements
//! and attributes from here, and a test checks that the sample file (which
//! spells every value out) agrees with them, so the commented sample never
//! drifts from what the server really does.

use crate::{
    ArchiveConfig, ArchiveDefault, AuthDelayConfig, DelayCurve, IpRange, LimitsConfig, Registration,
};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

/// The client listener used when there is no `<listen>` element: every IPv4
/// interface on the standard client port. `0.0.0.0` rather than `[::]`
/// because binding an IPv6 socket fails outright on hosts where IPv6 is
/// disabled, and a default must start everywhere; admins who want IPv6
/// clients too write `<c2s addr="[::]:5222"/>`, which on Linux is one
/// dual-stack socket serving both.
pub const C2S: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::UNSPECIFIED), 5222);

/// In-band registration on a `<host>` without `<registration>`: only its
/// admins may create accounts from a client. A company server should not
/// let strangers sign up unless the admin asked for it.
pub const REGISTRATION: Registration = Registration::Admin;

/// A host's message archive without `<archive>`: every user's messages
/// are kept, for ever, until the user or the admin says otherwise.
pub const ARCHIVE: ArchiveConfig = ArchiveConfig {
    retention: None,
    default: ArchiveDefault::Always,
};

/// Whether clients must use TLS before authenticating.
pub const TLS_REQUIRED: bool = true;

/// The most connections the server opens to a PostgreSQL store.
pub const STORAGE_CONNECTIONS: usize = 16;

/// The spool directory, relative to the home directory.
pub const SPOOL_DIR: &str = "spool";

/// The log file, relative to the home directory.
pub const LOG_FILE: &str = "logs/switchboard.log";

/// The log filter.
pub const LOG_LEVEL: &str = "info";

/// The key sealing transport credentials, relative to the home directory;
/// generated on first run.
pub const CREDENTIALS_KEY: &str = "etc/credentials.key";

/// The component listener used when an external `<service>` is configured
/// and `<listen>` names no `<component>`: loopback only, because the shared
/// secret is all that protects it.
pub const COMPONENT: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 5347);

/// The server-to-server listener used when `<s2s>` turns federation on
/// and `<listen>` names no `<s2s>` or `<s2s-tls>`: the standard port on
/// every IPv4 interface (the same reasoning as [`C2S`]), since other
/// servers must be able to reach it.
pub const S2S: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::UNSPECIFIED), 5269);

/// Peers must prove their domain with a certificate that verifies.
pub const S2S_SECURE_AUTH: bool = true;

/// Server Dialback is spoken (under secure-auth only with peers whose
/// certificate verifies, which costs nothing and lets servers that
/// prefer dialback in).
pub const S2S_DIALBACK: bool = true;

/// Time to set a link up before its waiting stanzas bounce.
pub const S2S_TIMEOUT: Duration = Duration::from_secs(30);

/// A link without stanzas for this long is closed.
pub const S2S_IDLE_TIMEOUT: Duration = Duration::from_secs(600);

/// Stanzas one outgoing link may hold.
pub const S2S_MAX_QUEUE: usize = 1000;

/// Stanzas one incoming link may deliver: a burst of 500, then 500 a
/// second. A busier peer is read more slowly, never cut off.
pub const S2S_STANZA_RATE: Option<crate::Rate> = Some(crate::Rate {
    count: 500,
    per: Duration::from_secs(1),
});

/// The service types that are transports: remote users may not use them
/// unless the admin says so in `<s2s local-only>`.
pub const TRANSPORT_TYPES: &[&str] = &["irc"];

/// The metrics endpoint: off unless `<metrics addr>` is given. Counters
/// are kept either way (they cost a relaxed atomic add); only the HTTP
/// listener is optional.
pub const METRICS: Option<SocketAddr> = None;

/// The address the sample suggests for `<metrics>`: loopback, on the port
/// commonly assigned to XMPP server exporters.
pub const METRICS_EXAMPLE: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 9108);

/// The pid file, relative to the home directory.
pub const PIDFILE: &str = "run/switchboard.pid";

/// Largest client stanza: 256 KiB, room for a vCard with a photo.
pub const MAX_STANZA_BYTES: usize = 256 * 1024;

/// Time from connect to an authenticated session.
pub const PREAUTH_TIMEOUT: Duration = Duration::from_secs(60);

/// Idle time before a whitespace keepalive.
pub const KEEPALIVE: Duration = Duration::from_secs(60);

/// The longest a session waits to be resumed (XEP-0198), as Prosody's
/// default `smacks_hibernation_time`.
pub const RESUME_TIMEOUT: Duration = Duration::from_secs(600);

/// PBKDF2 iterations for newly stored SCRAM credentials (RFC 7677's
/// recommended minimum).
pub const SCRAM_ITERATIONS: u32 = 4096;

/// In-band registrations from one address per window, like Prosody's
/// mod_register_limits; 0 turns the limit off.
pub const REGISTRATIONS_PER_ADDRESS: usize = 5;

/// The window the registration limit counts over.
pub const REGISTRATION_WINDOW: Duration = Duration::from_secs(600);

/// Addresses the registration limit does not apply to: loopback, as in
/// Prosody's `registration_allowlist`. Whoever registers from the server's
/// own machine (a provisioning script, a test suite) is trusted already.
pub const REGISTRATION_ALLOWLIST: &[IpRange] = &[
    IpRange::new_unchecked(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 0)), 8),
    IpRange::new_unchecked(IpAddr::V6(Ipv6Addr::LOCALHOST), 128),
];
/// Failed authentications from one address before its attempts wait:
/// Prosody's mod_limit_auth allows 5 per period before it answers
/// attempts with a failure, and an office behind one NAT address makes a
/// few typos a day. Then 1 s, doubling per failure, up to 30 s: under
/// the default `preauth-timeout` a delayed client still gets its answer,
/// and a guesser gets about two guesses a minute per connection.
pub const AUTH_DELAY_ADDRESS: DelayCurve = DelayCurve {
    after: 5,
    first: Duration::from_secs(1),
    max: Duration::from_secs(30),
};

/// Failed authentications on one account before attempts on it wait,
/// from any address: twice the address's allowance, and never more than
/// 5 s, so that the owner, logging in from an address of their own while
/// someone elsewhere guesses at the account, waits a few seconds at worst
/// and is never locked out.
pub const AUTH_DELAY_ACCOUNT: DelayCurve = DelayCurve {
    after: 10,
    first: Duration::from_secs(1),
    max: Duration::from_secs(5),
};

/// How long a count of failures lasts after the last failure.
pub const AUTH_DELAY_FORGET: Duration = Duration::from_secs(600);

impl Default for AuthDelayConfig {
    fn default() -> Self {
        AuthDelayConfig {
            address: AUTH_DELAY_ADDRESS,
            account: AUTH_DELAY_ACCOUNT,
            forget: AUTH_DELAY_FORGET,
        }
    }
}

/// The smallest `max-stanza-bytes` accepted: RFC 6120 §13.12 forbids a
/// server to refuse stanzas below 10000 bytes.
pub const MIN_STANZA_BYTES: usize = 10_000;

/// The smallest `scram-iterations` accepted. Credentials are stored with
/// the count in force when the password is set and stay that weak until
/// the password changes, so a lower value cannot be undone by raising it
/// later.
pub const MIN_SCRAM_ITERATIONS: u32 = 4096;

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_stanza_bytes: MAX_STANZA_BYTES,
            preauth_timeout: PREAUTH_TIMEOUT,
            keepalive: KEEPALIVE,
            scram_iterations: SCRAM_ITERATIONS,
            registrations_per_address: REGISTRATIONS_PER_ADDRESS,
            registration_window: REGISTRATION_WINDOW,
            registration_allowlist: REGISTRATION_ALLOWLIST.to_vec(),
            resume_timeout: RESUME_TIMEOUT,
        }
    }
}

/// The largest HTTP request head: hyper's smallest read buffer, ample
/// for any browser's headers.
pub const HTTP_MAX_HEADER_BYTES: usize = 8 * 1024;

/// The largest HTTP request body other than an upload: a BOSH body holds
/// stanzas, so the stanza limit with room for the wrapper.
pub const HTTP_MAX_BODY_BYTES: usize = MAX_STANZA_BYTES + 16 * 1024;

/// How long a client may take to send a request head.
pub const HTTP_HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a client may take to send a request body (BOSH, forms), and
/// how long an upload may send nothing.
pub const HTTP_BODY_TIMEOUT: Duration = Duration::from_secs(30);

/// The slowest an upload may arrive on average, in bytes per second
/// (Apache's `mod_reqtimeout` `MinRate` has 500; a phone on a poor link
/// still manages several KiB a second).
pub const HTTP_MIN_BODY_RATE: u64 = 1024;

/// HTTP connections served at once.
pub const HTTP_MAX_CONNECTIONS: usize = 10_000;

/// BOSH: a session no request reached for this long ends (XEP-0124
/// `inactivity`; Prosody's default).
pub const BOSH_INACTIVITY: Duration = Duration::from_secs(60);

/// BOSH: the longest a request is held open.
pub const BOSH_MAX_WAIT: Duration = Duration::from_secs(120);

/// BOSH: requests held at once per session.
pub const BOSH_MAX_HOLD: u32 = 1;

/// BOSH: sessions one address may have at once.
pub const BOSH_MAX_SESSIONS_PER_ADDRESS: usize = 100;

impl Default for crate::WebConfig {
    fn default() -> Self {
        crate::WebConfig {
            origins: None,
            chat_dir: None,
            admin_console: true,
            max_header_bytes: HTTP_MAX_HEADER_BYTES,
            max_body_bytes: HTTP_MAX_BODY_BYTES,
            header_timeout: HTTP_HEADER_TIMEOUT,
            body_timeout: HTTP_BODY_TIMEOUT,
            min_body_rate: HTTP_MIN_BODY_RATE,
            max_connections: HTTP_MAX_CONNECTIONS,
            bosh: crate::BoshConfig {
                inactivity: BOSH_INACTIVITY,
                max_wait: BOSH_MAX_WAIT,
                max_hold: BOSH_MAX_HOLD,
                max_sessions_per_address: BOSH_MAX_SESSIONS_PER_ADDRESS,
            },
        }
    }
}
