//! A service's own numbers for the server's metrics endpoint: gauges
//! (rooms, occupants, linked users) and counters (messages relayed),
//! registered by name and kept in relaxed atomics the service updates
//! as it works.
//!
//! The host gives each service a [`ServiceMetrics`] in its
//! `ServiceContext` and keeps a clone; at scrape time it reads
//! [`ServiceMetrics::samples`] and renders every family as
//! `switchboard_service_<name>{service="<hostname>"}`. Updating a value
//! is one atomic store or add, so counting never waits on a scrape;
//! registering takes a lock, and is done once when the service starts
//! (a restarted service gets its earlier families back, so a counter
//! keeps counting across restarts, as Prometheus expects of a counter
//! whose process did not restart).
//!
//! A service run as `switchboard component` in a process of its own gets
//! a registry nobody reads: its numbers are not exported (yet).

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

/// Family names the host already renders for every service.
const RESERVED: [&str; 2] = ["up", "queue_depth"];

/// Whether a family counts up (a counter) or goes up and down (a gauge).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
}

impl Kind {
    /// The Prometheus `# TYPE` word.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
        }
    }
}

#[derive(Debug)]
enum Cell {
    Counter(Arc<AtomicU64>),
    Gauge(Arc<AtomicI64>),
}

#[derive(Debug)]
struct Family {
    name: String,
    help: String,
    cell: Cell,
}

/// One family's value as read at a scrape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    /// Without the `switchboard_service_` prefix.
    pub name: String,
    pub help: String,
    pub kind: Kind,
    pub value: i64,
}

/// A counter: only goes up.
#[derive(Debug, Clone, Default)]
pub struct Counter(Arc<AtomicU64>);

impl Counter {
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Relaxed);
    }

    pub fn inc(&self) {
        self.add(1);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Relaxed)
    }
}

/// A gauge: set to what the service knows now.
#[derive(Debug, Clone, Default)]
pub struct Gauge(Arc<AtomicI64>);

impl Gauge {
    pub fn set(&self, v: i64) {
        self.0.store(v, Relaxed);
    }

    pub fn get(&self) -> i64 {
        self.0.load(Relaxed)
    }
}

/// Why a family was not registered. A service logs it and goes on with
/// a default handle nobody reads (`Counter::default()`), so a naming
/// mistake costs the metric, never the service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameError {
    /// Not `[a-z][a-z0-9_]*`, or one of the names the host renders itself.
    Invalid(String),
    /// Registered before as the other kind.
    KindMismatch(String),
}

impl std::fmt::Display for NameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NameError::Invalid(n) => write!(
                f,
                "'{n}' is not a usable metric name (lowercase letters, digits and _, not up or queue_depth)"
            ),
            NameError::KindMismatch(n) => {
                write!(f, "'{n}' is registered already as the other kind of metric")
            }
        }
    }
}

/// The registry of one service's families. Clones share it.
#[derive(Debug, Clone, Default)]
pub struct ServiceMetrics {
    families: Arc<Mutex<Vec<Family>>>,
}

fn valid(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !RESERVED.contains(&name)
}

impl ServiceMetrics {
    /// A counter named `name` (the same one again when it exists).
    pub fn counter(&self, name: &str, help: &str) -> Result<Counter, NameError> {
        let mut families = self.families.lock().expect("not poisoned");
        if let Some(f) = families.iter().find(|f| f.name == name) {
            return match &f.cell {
                Cell::Counter(c) => Ok(Counter(c.clone())),
                Cell::Gauge(_) => Err(NameError::KindMismatch(name.into())),
            };
        }
        if !valid(name) {
            return Err(NameError::Invalid(name.into()));
        }
        let c = Arc::new(AtomicU64::new(0));
        families.push(Family {
            name: name.into(),
            help: help.into(),
            cell: Cell::Counter(c.clone()),
        });
        Ok(Counter(c))
    }

    /// A gauge named `name` (the same one again when it exists).
    pub fn gauge(&self, name: &str, help: &str) -> Result<Gauge, NameError> {
        let mut families = self.families.lock().expect("not poisoned");
        if let Some(f) = families.iter().find(|f| f.name == name) {
            return match &f.cell {
                Cell::Gauge(g) => Ok(Gauge(g.clone())),
                Cell::Counter(_) => Err(NameError::KindMismatch(name.into())),
            };
        }
        if !valid(name) {
            return Err(NameError::Invalid(name.into()));
        }
        let g = Arc::new(AtomicI64::new(0));
        families.push(Family {
            name: name.into(),
            help: help.into(),
            cell: Cell::Gauge(g.clone()),
        });
        Ok(Gauge(g))
    }

    /// Every family's value now, sorted by name.
    pub fn samples(&self) -> Vec<Sample> {
        let families = self.families.lock().expect("not poisoned");
        let mut v: Vec<Sample> = families
            .iter()
            .map(|f| {
                let (kind, value) = match &f.cell {
                    Cell::Counter(c) => (
                        Kind::Counter,
                        i64::try_from(c.load(Relaxed)).unwrap_or(i64::MAX),
                    ),
                    Cell::Gauge(g) => (Kind::Gauge, g.load(Relaxed)),
                };
                Sample {
                    name: f.name.clone(),
                    help: f.help.clone(),
                    kind,
                    value,
                }
            })
            .collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_read_back_by_name_and_survive_reregistration() {
        let m = ServiceMetrics::default();
        let rooms = m.gauge("muc_rooms", "Rooms.").unwrap();
        let sent = m.counter("muc_messages", "Messages.").unwrap();
        rooms.set(3);
        sent.add(5);
        // A restarted service registers again and keeps counting.
        let again = m.clone().counter("muc_messages", "Messages.").unwrap();
        again.inc();
        let s = m.samples();
        assert_eq!(
            s,
            vec![
                Sample {
                    name: "muc_messages".into(),
                    help: "Messages.".into(),
                    kind: Kind::Counter,
                    value: 6
                },
                Sample {
                    name: "muc_rooms".into(),
                    help: "Rooms.".into(),
                    kind: Kind::Gauge,
                    value: 3
                },
            ]
        );
    }

    #[test]
    fn bad_names_and_kinds_are_refused() {
        let m = ServiceMetrics::default();
        assert_eq!(
            m.gauge("Rooms", "").unwrap_err(),
            NameError::Invalid("Rooms".into())
        );
        assert!(m.gauge("up", "").is_err());
        assert!(m.counter("a-b", "").is_err());
        m.gauge("x", "").unwrap();
        assert_eq!(
            m.counter("x", "").unwrap_err(),
            NameError::KindMismatch("x".into())
        );
        assert_eq!(m.samples().len(), 1);
    }
}
