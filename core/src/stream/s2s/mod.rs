//! The server-to-server stream machines (RFC 6120 with XEP-0220 Server
//! Dialback), sans-IO: [`S2sIn`] answers another server's stream,
//! [`S2sOut`] opens ours to another server. Bytes and `now` in; bytes,
//! actions and a deadline out. Both are built on the shared negotiation
//! core (`negotiation.rs`): header exchange, STARTTLS, restarts, stream
//! errors.
//!
//! What the machines are given rather than do themselves:
//!
//! - the policy ([`S2sPolicy`]): secure-auth, dialback, timeouts, limits
//!   (the incoming stanza rate among them), and the dialback secret;
//! - the verdict on the peer's certificate: for an incoming stream a
//!   [`CertCheck`] the driver builds from the presented chain (the
//!   machine asks it for each domain the peer claims); for an outgoing
//!   one a yes or no for the remote domain;
//! - for an incoming dialback claim, the answer of the claimed domain's
//!   authoritative server, which the driver asks over an outgoing link.
//!
//! Stanzas leave the machines in `jabber:client`, the namespace the router
//! works in, and enter them the same way; on the wire they are in
//! `jabber:server`.

pub mod dialback;
mod incoming;
mod outgoing;

use std::time::Duration;

use switchboard_link::bucket::TokenBucket;
use switchboard_xml::{ns, Limits};

pub use dialback::DialbackSecret;
pub use incoming::{InAction, S2sIn};
pub use outgoing::{OutAction, S2sOut};

/// The `db:` prefix every server-to-server header declares: servers that
/// only look at the prefix to decide whether we speak dialback see it.
pub(crate) const DB_DECL: &[(&str, &str)] = &[("db", ns::DIALBACK)];

/// Whether the peer's certificate verifies for a domain (chain to a
/// trusted root, within its dates, naming the domain: RFC 6125 DNS-ID).
pub type CertCheck = Box<dyn Fn(&str) -> bool + Send + Sync>;

/// What both machines follow, fixed for a connection's life.
#[derive(Debug, Clone)]
pub struct S2sPolicy {
    /// Peers prove their domain with a certificate that verifies; dialback
    /// only over such a certificate.
    pub secure_auth: bool,
    /// Dialback (XEP-0220) is spoken at all.
    pub dialback: bool,
    pub limits: Limits,
    /// Set-up (and, incoming, authentication) must finish within this.
    pub timeout: Duration,
    /// A link without stanzas this long is closed.
    pub idle_timeout: Duration,
    /// Whitespace keepalive after this much silence on an outgoing link.
    pub keepalive: Duration,
    /// Dialback keys are made from it.
    pub secret: DialbackSecret,
    /// Only these domains (and their subdomains); empty: any not denied.
    pub allow: Vec<String>,
    /// Never these domains, nor their subdomains.
    pub deny: Vec<String>,
    /// Stanzas an incoming stream may deliver; `None`: no limit.
    pub stanza_rate: Option<StanzaRate>,
}

/// `count` stanzas per `per`: a burst of `count`, then one every
/// `per / count`. A stream over it is not read until the next is due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StanzaRate {
    pub count: u32,
    pub per: Duration,
}

impl StanzaRate {
    /// The link kit's token bucket for this rate, full at `now`.
    pub(crate) fn bucket(self, now: std::time::Instant) -> TokenBucket {
        TokenBucket::new(self.count, self.per / self.count.max(1), now)
    }
}

impl S2sPolicy {
    /// Whether we federate with `domain`: not denied, and allowed when
    /// there is an allow list. A listed domain covers its subdomains
    /// (`example.net` covers `conference.example.net`).
    pub fn allows(&self, domain: &str) -> bool {
        let covers = |listed: &String| {
            domain == listed
                || domain
                    .strip_suffix(listed.as_str())
                    .is_some_and(|rest| rest.ends_with('.'))
        };
        !self.deny.iter().any(covers) && (self.allow.is_empty() || self.allow.iter().any(covers))
    }
}

/// How a peer proved its domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    /// SASL EXTERNAL over a certificate that verifies (RFC 6120 §13.7).
    Certificate,
    /// Dialback, accepted because the certificate verifies (XEP-0344).
    DialbackWithCertificate,
    /// Dialback checked with the domain's authoritative server (DNS only).
    Dialback,
}

impl AuthMethod {
    /// How admins see it.
    pub fn label(self) -> &'static str {
        match self {
            AuthMethod::Certificate => "certificate",
            AuthMethod::DialbackWithCertificate => "dialback+certificate",
            AuthMethod::Dialback => "dialback",
        }
    }
}

/// Why an outgoing link ended, which decides how the stanzas still
/// waiting for it bounce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkFailure {
    /// The peer offers no TLS (or refused it); TLS is required.
    NoTls,
    /// The peer's certificate does not verify for its domain.
    Certificate,
    /// The peer did not accept our authentication.
    NotAuthenticated(String),
    /// Neither SASL EXTERNAL nor (allowed) dialback is possible.
    NoAuthMethod,
    /// The peer closed the stream with an error.
    StreamError {
        condition: String,
        text: Option<String>,
    },
    /// The peer broke the protocol.
    Protocol(String),
    /// Set-up took longer than the policy's timeout.
    Timeout,
    /// The peer closed the stream.
    Closed,
    /// We closed a link nobody used.
    Idle,
}

impl LinkFailure {
    /// A sentence for logs and bounce texts.
    pub fn describe(&self, remote: &str) -> String {
        match self {
            LinkFailure::NoTls => format!("{remote} does not offer TLS, which is required"),
            LinkFailure::Certificate => {
                format!("the certificate of {remote} does not verify for that domain")
            }
            LinkFailure::NotAuthenticated(why) => {
                format!("{remote} did not accept this server's authentication: {why}")
            }
            LinkFailure::NoAuthMethod => format!(
                "{remote} offers no way to authenticate that this server may use \
                 (SASL EXTERNAL, or dialback where allowed)"
            ),
            LinkFailure::StreamError { condition, text } => match text {
                Some(t) => format!("{remote} closed the stream: {condition} ({t})"),
                None => format!("{remote} closed the stream: {condition}"),
            },
            LinkFailure::Protocol(what) => format!("{remote} broke the protocol: {what}"),
            LinkFailure::Timeout => format!("{remote} did not complete the connection in time"),
            LinkFailure::Closed => format!("{remote} closed the connection"),
            LinkFailure::Idle => format!("the link to {remote} was idle"),
        }
    }
}

#[cfg(test)]
mod tests;
