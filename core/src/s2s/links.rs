//! The register of live server-to-server links, for admins (the admin
//! socket's `s2s` command) and the metrics (links by direction).
//!
//! Each driver registers its link when it starts and takes it out when it
//! ends ([`Listed`] does that on drop), updating its state as the
//! negotiation goes. Stanza counts are atomics the drivers bump; the rest
//! changes a few times per link, under a lock nobody holds for long.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::stream::s2s::AuthMethod;

/// Which way a link goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// We opened it, to carry our stanzas.
    Out,
    /// The peer opened it, to carry theirs.
    In,
}

impl Direction {
    pub fn label(self) -> &'static str {
        match self {
            Direction::Out => "out",
            Direction::In => "in",
        }
    }
}

/// Where a link stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkState {
    /// Looking the domain up and connecting.
    Connecting,
    /// TLS and authentication under way.
    Negotiating,
    /// Authenticated: stanzas flow.
    Established(AuthMethod),
}

impl LinkState {
    fn label(&self) -> String {
        match self {
            LinkState::Connecting => "connecting".into(),
            LinkState::Negotiating => "negotiating".into(),
            LinkState::Established(m) => format!("established ({})", m.label()),
        }
    }
}

struct Entry {
    direction: Direction,
    local: String,
    /// The remote domain (outgoing), or every domain authenticated on the
    /// stream so far (incoming).
    remote: Vec<String>,
    addr: Option<SocketAddr>,
    state: LinkState,
    since: Instant,
    stanzas: Arc<AtomicU64>,
}

/// One link as an admin sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkView {
    pub direction: Direction,
    pub local: String,
    pub remote: String,
    pub addr: Option<SocketAddr>,
    pub state: String,
    pub established: bool,
    pub seconds: u64,
    pub stanzas: u64,
}

impl LinkView {
    /// One line for the command line.
    pub fn line(&self) -> String {
        let arrow = match self.direction {
            Direction::Out => "->",
            Direction::In => "<-",
        };
        let addr = self
            .addr
            .map(|a| a.to_string())
            .unwrap_or_else(|| "-".into());
        format!(
            "{} {arrow} {} {} {addr} {}s {} stanzas",
            self.local,
            if self.remote.is_empty() {
                "?"
            } else {
                &self.remote
            },
            self.state,
            self.seconds,
            self.stanzas
        )
    }
}

/// Every live link.
#[derive(Default)]
pub struct Registry {
    next: AtomicU64,
    links: Arc<Mutex<BTreeMap<u64, Entry>>>,
}

type Links = Arc<Mutex<BTreeMap<u64, Entry>>>;

fn lock(links: &Links) -> std::sync::MutexGuard<'_, BTreeMap<u64, Entry>> {
    links.lock().unwrap_or_else(|e| e.into_inner())
}

impl Registry {
    /// Lists a new link; it leaves the register when the result drops.
    pub fn list(&self, direction: Direction, local: &str, remote: Option<&str>) -> Listed {
        let id = self.next.fetch_add(1, Relaxed);
        let stanzas = Arc::new(AtomicU64::new(0));
        self.lock().insert(
            id,
            Entry {
                direction,
                local: local.to_string(),
                remote: remote.map(|r| vec![r.to_string()]).unwrap_or_default(),
                addr: None,
                state: LinkState::Connecting,
                since: Instant::now(),
                stanzas: stanzas.clone(),
            },
        );
        Listed {
            links: self.links.clone(),
            id,
            stanzas,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Entry>> {
        lock(&self.links)
    }

    /// Every link, outgoing first, then by domains.
    pub fn views(&self) -> Vec<LinkView> {
        let now = Instant::now();
        let mut v: Vec<LinkView> = self
            .lock()
            .values()
            .map(|e| LinkView {
                direction: e.direction,
                local: e.local.clone(),
                remote: e.remote.join(","),
                addr: e.addr,
                state: e.state.label(),
                established: matches!(e.state, LinkState::Established(_)),
                seconds: now.duration_since(e.since).as_secs(),
                stanzas: e.stanzas.load(Relaxed),
            })
            .collect();
        v.sort_by(|a, b| {
            (a.direction != Direction::Out, &a.local, &a.remote).cmp(&(
                b.direction != Direction::Out,
                &b.local,
                &b.remote,
            ))
        });
        v
    }

    /// Established links by direction (outgoing, incoming), for the
    /// metrics.
    pub fn established(&self) -> (u64, u64) {
        let links = self.lock();
        let count = |d| {
            links
                .values()
                .filter(|e| e.direction == d && matches!(e.state, LinkState::Established(_)))
                .count() as u64
        };
        (count(Direction::Out), count(Direction::In))
    }
}

/// A link's place in the register.
pub struct Listed {
    links: Links,
    id: u64,
    stanzas: Arc<AtomicU64>,
}

impl Listed {
    fn update(&self, f: impl FnOnce(&mut Entry)) {
        if let Some(e) = lock(&self.links).get_mut(&self.id) {
            f(e);
        }
    }

    pub fn connected(&self, addr: SocketAddr) {
        self.update(|e| {
            e.addr = Some(addr);
            e.state = LinkState::Negotiating;
        });
    }

    pub fn established(&self, method: AuthMethod) {
        self.update(|e| e.state = LinkState::Established(method));
    }

    /// An incoming stream authenticated another remote domain.
    pub fn authenticated(&self, local: &str, remote: &str, method: AuthMethod) {
        self.update(|e| {
            e.local = local.to_string();
            if !e.remote.iter().any(|r| r == remote) {
                e.remote.push(remote.to_string());
            }
            e.state = LinkState::Established(method);
        });
    }

    /// One stanza carried.
    pub fn stanza(&self) {
        self.stanzas.fetch_add(1, Relaxed);
    }
}

impl Drop for Listed {
    fn drop(&mut self) {
        lock(&self.links).remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_are_listed_while_they_live() {
        let r = Registry::default();
        let out = r.list(Direction::Out, "a.example", Some("b.example"));
        {
            let inc = r.list(Direction::In, "a.example", None);
            inc.connected("192.0.2.1:4000".parse().unwrap());
            inc.authenticated("a.example", "c.example", AuthMethod::Certificate);
            inc.authenticated(
                "a.example",
                "muc.c.example",
                AuthMethod::DialbackWithCertificate,
            );
            inc.stanza();
            let v = r.views();
            assert_eq!(v.len(), 2);
            assert_eq!(v[0].direction, Direction::Out);
            assert_eq!(v[0].state, "connecting");
            assert_eq!(v[1].remote, "c.example,muc.c.example");
            assert_eq!(v[1].stanzas, 1);
            assert_eq!(
                v[1].line(),
                "a.example <- c.example,muc.c.example established (dialback+certificate) 192.0.2.1:4000 0s 1 stanzas"
            );
            assert_eq!(r.established(), (0, 1));
        }
        out.established(AuthMethod::Certificate);
        assert_eq!(r.established(), (1, 0));
        drop(out);
        assert!(r.views().is_empty());
    }
}
