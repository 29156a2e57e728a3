//! The metrics registry and its Prometheus text rendering.
//!
//! Counters are relaxed atomics bumped on the hot path (the router, the
//! connection drivers, the spool wrapper): no lock, no allocation, and no
//! ordering with anything else, because a scrape only needs each number to
//! be a value it really had. Gauges that the server already knows (bound
//! sessions, live connections, each service slot's queue) are not kept
//! here at all but read at scrape time into a [`Snapshot`], so they can
//! never drift from the truth.
//!
//! Services add numbers of their own (a group chat service its rooms,
//! occupants and messages) through the `ServiceMetrics` in their
//! `ServiceContext`; the slot keeps a clone, and a scrape reads them into
//! each [`ServiceGauge`] and renders them as
//! `switchboard_service_<name>{service="<hostname>"}`, one family per
//! name across every service.
//!
//! [`render`] is pure: it turns a snapshot into the text exposition format
//! (version 0.0.4), which is what the unit tests check byte for byte. The
//! HTTP side lives in `net/metrics.rs`.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use switchboard_service::metrics::{Kind, Sample};
use switchboard_xml::Element;

/// The stanza kinds counted per type, in the order they are rendered.
pub const STANZA_TYPES: [&str; 3] = ["message", "presence", "iq"];

/// Upper bounds (seconds) of the spool write latency buckets. A write is
/// an fsynced temp file, a rename and a directory fsync: well under a
/// millisecond on an idle SSD, tens of milliseconds on a busy disk, and a
/// second means something is wrong.
pub const SPOOL_WRITE_BUCKETS: [f64; 10] =
    [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0];

/// The counters the server keeps. One per server, shared through `Arc`
/// by the router and `Shared`.
#[derive(Debug, Default)]
pub struct Metrics {
    stanzas_in: [AtomicU64; 3],
    stanzas_out: [AtomicU64; 3],
    stanza_errors: AtomicU64,
    logins: AtomicU64,
    login_failures: AtomicU64,
    /// Authentication attempts made to wait, by the count that made them
    /// (see [`AUTH_DELAY_CAUSES`]).
    auth_delayed: [AtomicU64; 2],
    spool_writes: Histogram,
}

/// The labels of `switchboard_auth_delayed_total`: what made an attempt
/// wait, its source address's failures or its account's.
pub const AUTH_DELAY_CAUSES: [&str; 2] = ["address", "account"];

/// The index of a stanza's kind (its element name) in [`STANZA_TYPES`];
/// anything else is not counted.
pub fn kind_index(name: &str) -> Option<usize> {
    STANZA_TYPES.iter().position(|t| *t == name)
}

impl Metrics {
    /// A stanza received from a client or a service.
    pub fn stanza_in(&self, stanza: &Element) {
        if let Some(i) = kind_index(&stanza.name) {
            self.stanzas_in[i].fetch_add(1, Relaxed);
        }
    }

    /// A stanza written to a session or handed to a service's inbox.
    pub fn stanza_out(&self, stanza: &Element) {
        self.stanza_out_kind(kind_index(&stanza.name));
    }

    /// [`Metrics::stanza_out`] with the kind worked out beforehand, for a
    /// caller that no longer has the stanza when it knows it was taken.
    pub fn stanza_out_kind(&self, kind: Option<usize>) {
        if let Some(i) = kind {
            self.stanzas_out[i].fetch_add(1, Relaxed);
        }
    }

    /// An error reply the server generated.
    pub fn stanza_error(&self) {
        self.stanza_errors.fetch_add(1, Relaxed);
    }

    /// A successful SASL authentication.
    pub fn login(&self) {
        self.logins.fetch_add(1, Relaxed);
    }

    /// A failed SASL authentication (an abort by the client is not one).
    pub fn login_failure(&self) {
        self.login_failures.fetch_add(1, Relaxed);
    }

    /// An authentication attempt waited because of its source address's
    /// recent failures.
    pub fn auth_delayed_by_address(&self) {
        self.auth_delayed[0].fetch_add(1, Relaxed);
    }

    /// An authentication attempt waited because of its account's recent
    /// failures.
    pub fn auth_delayed_by_account(&self) {
        self.auth_delayed[1].fetch_add(1, Relaxed);
    }

    /// One spool write and how long it took.
    pub fn spool_write(&self, took: Duration) {
        self.spool_writes.observe(took);
    }

    /// The counters, with the scrape-time gauges the caller read.
    pub fn snapshot(
        &self,
        sessions: usize,
        connections: usize,
        services: Vec<ServiceGauge>,
    ) -> Snapshot {
        let load =
            |a: &[AtomicU64; 3]| [a[0].load(Relaxed), a[1].load(Relaxed), a[2].load(Relaxed)];
        Snapshot {
            sessions: sessions as u64,
            connections: connections as u64,
            stanzas_in: load(&self.stanzas_in),
            stanzas_out: load(&self.stanzas_out),
            stanza_errors: self.stanza_errors.load(Relaxed),
            logins: self.logins.load(Relaxed),
            login_failures: self.login_failures.load(Relaxed),
            auth_delayed: [
                self.auth_delayed[0].load(Relaxed),
                self.auth_delayed[1].load(Relaxed),
            ],
            spool_writes: self.spool_writes.snapshot(),
            services,
        }
    }
}

/// A latency histogram over [`SPOOL_WRITE_BUCKETS`]. Each observation
/// lands in one bucket (the rendering makes them cumulative); the sum is
/// kept in nanoseconds so that it stays an integer atomic.
#[derive(Debug, Default)]
pub struct Histogram {
    /// One per bound, then one for everything above the last bound.
    buckets: [AtomicU64; SPOOL_WRITE_BUCKETS.len() + 1],
    sum_nanos: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, took: Duration) {
        let secs = took.as_secs_f64();
        let i = SPOOL_WRITE_BUCKETS
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(SPOOL_WRITE_BUCKETS.len());
        self.buckets[i].fetch_add(1, Relaxed);
        let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Relaxed);
    }

    fn snapshot(&self) -> HistogramSnapshot {
        HistogramSnapshot {
            buckets: self.buckets.iter().map(|b| b.load(Relaxed)).collect(),
            sum_nanos: self.sum_nanos.load(Relaxed),
        }
    }
}

/// A histogram's counts as read at one scrape.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HistogramSnapshot {
    /// Per-bucket (not cumulative) counts: one per bound in
    /// [`SPOOL_WRITE_BUCKETS`], then the overflow bucket.
    pub buckets: Vec<u64>,
    pub sum_nanos: u64,
}

/// One service slot as seen at scrape time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceGauge {
    /// The service's hostname.
    pub host: String,
    /// Whether it has a live inbox (an in-process service running, or an
    /// external component connected).
    pub up: bool,
    /// Stanzas waiting in its inbox (0 while it is down).
    pub queue_depth: u64,
    /// What the service reports about itself, sorted by name.
    pub own: Vec<Sample>,
}

/// Everything one scrape reports.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Snapshot {
    pub sessions: u64,
    pub connections: u64,
    pub stanzas_in: [u64; 3],
    pub stanzas_out: [u64; 3],
    pub stanza_errors: u64,
    pub logins: u64,
    pub login_failures: u64,
    /// Per [`AUTH_DELAY_CAUSES`].
    pub auth_delayed: [u64; 2],
    pub spool_writes: HistogramSnapshot,
    /// Sorted by hostname.
    pub services: Vec<ServiceGauge>,
}

/// Escapes a label value: backslash, double quote and line feed, as the
/// text format requires.
pub fn escape_label(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// Writes the `# HELP` and `# TYPE` lines of a metric family.
fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// Renders a snapshot in the Prometheus text format 0.0.4.
pub fn render(s: &Snapshot) -> String {
    let mut out = String::with_capacity(2048);
    let single = |out: &mut String, name: &str, kind: &str, help: &str, value: u64| {
        header(out, name, kind, help);
        let _ = writeln!(out, "{name} {value}");
    };
    single(
        &mut out,
        "switchboard_sessions",
        "gauge",
        "Bound client sessions.",
        s.sessions,
    );
    single(
        &mut out,
        "switchboard_connections",
        "gauge",
        "Open client and component connections.",
        s.connections,
    );
    let per_type = |out: &mut String, name: &str, help: &str, values: &[u64; 3]| {
        header(out, name, "counter", help);
        for (t, v) in STANZA_TYPES.iter().zip(values) {
            let _ = writeln!(out, "{name}{{type=\"{t}\"}} {v}");
        }
    };
    per_type(
        &mut out,
        "switchboard_stanzas_in_total",
        "Stanzas received from clients and services.",
        &s.stanzas_in,
    );
    per_type(
        &mut out,
        "switchboard_stanzas_out_total",
        "Stanzas delivered to client sessions and services.",
        &s.stanzas_out,
    );
    single(
        &mut out,
        "switchboard_stanza_errors_total",
        "counter",
        "Error replies the server generated.",
        s.stanza_errors,
    );
    single(
        &mut out,
        "switchboard_logins_total",
        "counter",
        "Successful client authentications.",
        s.logins,
    );
    single(
        &mut out,
        "switchboard_login_failures_total",
        "counter",
        "Failed client authentications.",
        s.login_failures,
    );
    let name = "switchboard_auth_delayed_total";
    header(
        &mut out,
        name,
        "counter",
        "Authentication attempts made to wait after recent failures, by what failed: the source address or the account.",
    );
    for (by, v) in AUTH_DELAY_CAUSES.iter().zip(s.auth_delayed) {
        let _ = writeln!(out, "{name}{{by=\"{by}\"}} {v}");
    }

    let h = &s.spool_writes;
    let count: u64 = h.buckets.iter().sum();
    single(
        &mut out,
        "switchboard_spool_writes_total",
        "counter",
        "Writes to the spool (accounts and host data).",
        count,
    );
    let name = "switchboard_spool_write_seconds";
    header(
        &mut out,
        name,
        "histogram",
        "Time a spool write took, including waiting for the record's lock.",
    );
    let mut cumulative = 0;
    for (i, bound) in SPOOL_WRITE_BUCKETS.iter().enumerate() {
        cumulative += h.buckets.get(i).copied().unwrap_or(0);
        let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
    }
    let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
    let _ = writeln!(out, "{name}_sum {}", h.sum_nanos as f64 / 1e9);
    let _ = writeln!(out, "{name}_count {count}");

    header(
        &mut out,
        "switchboard_service_up",
        "gauge",
        "Whether a service is running (in process) or connected (component).",
    );
    for svc in &s.services {
        let _ = writeln!(
            out,
            "switchboard_service_up{{service=\"{}\"}} {}",
            escape_label(&svc.host),
            u8::from(svc.up)
        );
    }
    header(
        &mut out,
        "switchboard_service_queue_depth",
        "gauge",
        "Stanzas waiting in a service's inbox.",
    );
    for svc in &s.services {
        let _ = writeln!(
            out,
            "switchboard_service_queue_depth{{service=\"{}\"}} {}",
            escape_label(&svc.host),
            svc.queue_depth
        );
    }
    // The services' own families: each name once, with a line per
    // service that reports it (the text format wants a family's samples
    // together). The first service to report a name gives its help and
    // type; a service that uses the name as the other type is left out
    // of it rather than make the family invalid.
    let mut names: Vec<(&str, &str, Kind)> = Vec::new();
    for sample in s.services.iter().flat_map(|svc| &svc.own) {
        if !names.iter().any(|(n, _, _)| *n == sample.name) {
            names.push((&sample.name, &sample.help, sample.kind));
        }
    }
    names.sort_by(|a, b| a.0.cmp(b.0));
    for (name, help, kind) in names {
        let family = format!("switchboard_service_{name}");
        header(&mut out, &family, kind.as_str(), help);
        for svc in &s.services {
            for sample in svc.own.iter().filter(|x| x.name == name && x.kind == kind) {
                let _ = writeln!(
                    out,
                    "{family}{{service=\"{}\"}} {}",
                    escape_label(&svc.host),
                    sample.value
                );
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn empty_histogram() -> HistogramSnapshot {
        HistogramSnapshot {
            buckets: vec![0; SPOOL_WRITE_BUCKETS.len() + 1],
            sum_nanos: 0,
        }
    }

    #[test]
    fn renders_the_exact_text_format() {
        let mut buckets = vec![0; SPOOL_WRITE_BUCKETS.len() + 1];
        buckets[0] = 2; // ≤ 1 ms
        buckets[3] = 1; // ≤ 10 ms
        buckets[SPOOL_WRITE_BUCKETS.len()] = 1; // > 1 s
        let s = Snapshot {
            sessions: 3,
            connections: 4,
            stanzas_in: [10, 20, 30],
            stanzas_out: [1, 2, 3],
            stanza_errors: 5,
            logins: 6,
            login_failures: 7,
            auth_delayed: [8, 9],
            spool_writes: HistogramSnapshot {
                buckets,
                sum_nanos: 1_250_000_000,
            },
            services: vec![
                ServiceGauge {
                    host: "irc.example.org".into(),
                    up: false,
                    queue_depth: 0,
                    own: Vec::new(),
                },
                ServiceGauge {
                    host: "users.example.org".into(),
                    up: true,
                    queue_depth: 12,
                    own: vec![
                        Sample {
                            name: "muc_rooms".into(),
                            help: "Rooms.".into(),
                            kind: Kind::Gauge,
                            value: 2,
                        },
                        Sample {
                            name: "muc_messages_total".into(),
                            help: "Messages.".into(),
                            kind: Kind::Counter,
                            value: 9,
                        },
                    ],
                },
            ],
        };
        let expected = "\
# HELP switchboard_sessions Bound client sessions.
# TYPE switchboard_sessions gauge
switchboard_sessions 3
# HELP switchboard_connections Open client and component connections.
# TYPE switchboard_connections gauge
switchboard_connections 4
# HELP switchboard_stanzas_in_total Stanzas received from clients and services.
# TYPE switchboard_stanzas_in_total counter
switchboard_stanzas_in_total{type=\"message\"} 10
switchboard_stanzas_in_total{type=\"presence\"} 20
switchboard_stanzas_in_total{type=\"iq\"} 30
# HELP switchboard_stanzas_out_total Stanzas delivered to client sessions and services.
# TYPE switchboard_stanzas_out_total counter
switchboard_stanzas_out_total{type=\"message\"} 1
switchboard_stanzas_out_total{type=\"presence\"} 2
switchboard_stanzas_out_total{type=\"iq\"} 3
# HELP switchboard_stanza_errors_total Error replies the server generated.
# TYPE switchboard_stanza_errors_total counter
switchboard_stanza_errors_total 5
# HELP switchboard_logins_total Successful client authentications.
# TYPE switchboard_logins_total counter
switchboard_logins_total 6
# HELP switchboard_login_failures_total Failed client authentications.
# TYPE switchboard_login_failures_total counter
switchboard_login_failures_total 7
# HELP switchboard_auth_delayed_total Authentication attempts made to wait after recent failures, by what failed: the source address or the account.
# TYPE switchboard_auth_delayed_total counter
switchboard_auth_delayed_total{by=\"address\"} 8
switchboard_auth_delayed_total{by=\"account\"} 9
# HELP switchboard_spool_writes_total Writes to the spool (accounts and host data).
# TYPE switchboard_spool_writes_total counter
switchboard_spool_writes_total 4
# HELP switchboard_spool_write_seconds Time a spool write took, including waiting for the record's lock.
# TYPE switchboard_spool_write_seconds histogram
switchboard_spool_write_seconds_bucket{le=\"0.001\"} 2
switchboard_spool_write_seconds_bucket{le=\"0.0025\"} 2
switchboard_spool_write_seconds_bucket{le=\"0.005\"} 2
switchboard_spool_write_seconds_bucket{le=\"0.01\"} 3
switchboard_spool_write_seconds_bucket{le=\"0.025\"} 3
switchboard_spool_write_seconds_bucket{le=\"0.05\"} 3
switchboard_spool_write_seconds_bucket{le=\"0.1\"} 3
switchboard_spool_write_seconds_bucket{le=\"0.25\"} 3
switchboard_spool_write_seconds_bucket{le=\"0.5\"} 3
switchboard_spool_write_seconds_bucket{le=\"1\"} 3
switchboard_spool_write_seconds_bucket{le=\"+Inf\"} 4
switchboard_spool_write_seconds_sum 1.25
switchboard_spool_write_seconds_count 4
# HELP switchboard_service_up Whether a service is running (in process) or connected (component).
# TYPE switchboard_service_up gauge
switchboard_service_up{service=\"irc.example.org\"} 0
switchboard_service_up{service=\"users.example.org\"} 1
# HELP switchboard_service_queue_depth Stanzas waiting in a service's inbox.
# TYPE switchboard_service_queue_depth gauge
switchboard_service_queue_depth{service=\"irc.example.org\"} 0
switchboard_service_queue_depth{service=\"users.example.org\"} 12
# HELP switchboard_service_muc_messages_total Messages.
# TYPE switchboard_service_muc_messages_total counter
switchboard_service_muc_messages_total{service=\"users.example.org\"} 9
# HELP switchboard_service_muc_rooms Rooms.
# TYPE switchboard_service_muc_rooms gauge
switchboard_service_muc_rooms{service=\"users.example.org\"} 2
";
        assert_eq!(render(&s), expected);
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape_label(r#"a\b"c"#), r#"a\\b\"c"#);
        assert_eq!(escape_label("line\nbreak"), "line\\nbreak");
        assert_eq!(escape_label("users.example.org"), "users.example.org");
        let s = Snapshot {
            spool_writes: empty_histogram(),
            services: vec![ServiceGauge {
                host: "odd\"host\\".into(),
                up: true,
                queue_depth: 1,
                own: Vec::new(),
            }],
            ..Snapshot::default()
        };
        let text = render(&s);
        assert!(
            text.contains("switchboard_service_up{service=\"odd\\\"host\\\\\"} 1\n"),
            "{text}"
        );
    }

    #[test]
    fn histogram_buckets_are_cumulative_and_bounds_inclusive() {
        let h = Histogram::default();
        h.observe(Duration::from_micros(1000)); // exactly 1 ms: le="0.001"
        h.observe(Duration::from_millis(3));
        h.observe(Duration::from_secs(2));
        let m = Metrics {
            spool_writes: h,
            ..Metrics::default()
        };
        let text = render(&m.snapshot(0, 0, Vec::new()));
        for line in [
            "switchboard_spool_write_seconds_bucket{le=\"0.001\"} 1\n",
            "switchboard_spool_write_seconds_bucket{le=\"0.0025\"} 1\n",
            "switchboard_spool_write_seconds_bucket{le=\"0.005\"} 2\n",
            "switchboard_spool_write_seconds_bucket{le=\"1\"} 2\n",
            "switchboard_spool_write_seconds_bucket{le=\"+Inf\"} 3\n",
            "switchboard_spool_write_seconds_count 3\n",
            "switchboard_spool_write_seconds_sum 2.004\n",
            "switchboard_spool_writes_total 3\n",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
    }

    #[test]
    fn stanzas_are_counted_per_type() {
        let m = Metrics::default();
        m.stanza_in(&Element::new("message", "jabber:client"));
        m.stanza_in(&Element::new("iq", "jabber:client"));
        m.stanza_in(&Element::new("iq", "jabber:client"));
        m.stanza_in(&Element::new("starttls", "urn:ietf:params:xml:ns:xmpp-tls"));
        m.stanza_out(&Element::new("presence", "jabber:client"));
        let s = m.snapshot(0, 0, Vec::new());
        assert_eq!(s.stanzas_in, [1, 0, 2]);
        assert_eq!(s.stanzas_out, [0, 1, 0]);
    }
}
