//! XMPP addresses (JIDs) per RFC 7622, normalized with the PRECIS profiles.
//!
//! TO BE IMPLEMENTED (helper): contract in the doc comments.

use std::fmt;

/// A normalized JID. Two JIDs that name the same entity compare equal
/// (`Alice@LOCALHOST` == `alice@localhost`); normalizing twice changes
/// nothing.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Jid {
    node: Option<String>,
    domain: String,
    resource: Option<String>,
}

/// Why a string is not a valid JID (each maps to the stanza error
/// `jid-malformed`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JidError {
    Empty,
    EmptyLocalpart,
    EmptyDomain,
    EmptyResource,
    LocalpartTooLong,
    DomainTooLong,
    ResourceTooLong,
    InvalidLocalpart,
    InvalidDomain,
    InvalidResource,
}

impl fmt::Display for JidError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self:?}")
    }
}
impl std::error::Error for JidError {}

impl Jid {
    /// Parses and normalizes `[localpart@]domainpart[/resourcepart]`.
    pub fn parse(s: &str) -> Result<Jid, JidError> {
        let _ = s;
        todo!()
    }
    /// Builds from parts, normalizing each.
    pub fn from_parts(node: Option<&str>, domain: &str, resource: Option<&str>) -> Result<Jid, JidError> {
        let _ = (node, domain, resource);
        todo!()
    }
    pub fn node(&self) -> Option<&str> {
        self.node.as_deref()
    }
    pub fn domain(&self) -> &str {
        &self.domain
    }
    pub fn resource(&self) -> Option<&str> {
        self.resource.as_deref()
    }
    pub fn is_bare(&self) -> bool {
        self.resource.is_none()
    }
    /// This JID without its resource.
    pub fn to_bare(&self) -> Jid {
        Jid { node: self.node.clone(), domain: self.domain.clone(), resource: None }
    }
    /// This bare JID with a (normalized) resource.
    pub fn with_resource(&self, resource: &str) -> Result<Jid, JidError> {
        let _ = resource;
        todo!()
    }
}

impl fmt::Display for Jid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(n) = &self.node {
            write!(f, "{n}@")?;
        }
        f.write_str(&self.domain)?;
        if let Some(r) = &self.resource {
            write!(f, "/{r}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for Jid {
    type Err = JidError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Jid::parse(s)
    }
}

/// Normalizes a localpart alone (UsernameCaseMapped plus RFC 7622's extra
/// forbidden characters). Used for user names on the command line.
pub fn normalize_localpart(s: &str) -> Result<String, JidError> {
    let _ = s;
    todo!()
}

/// Normalizes a domainpart alone (lowercase, NFC, label checks; a trailing
/// dot removed; IPv4 and bracketed IPv6 literals allowed).
pub fn normalize_domain(s: &str) -> Result<String, JidError> {
    let _ = s;
    todo!()
}

/// Normalizes a resourcepart alone (OpaqueString).
pub fn normalize_resource(s: &str) -> Result<String, JidError> {
    let _ = s;
    todo!()
}
