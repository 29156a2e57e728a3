//! Where a remote domain's server is: RFC 6120 §3.2 with XEP-0368.
//!
//! 1. an address the admin fixed with `<connect>`, if any;
//! 2. `_xmpps-server._tcp.DOMAIN` SRV records (TLS from the first byte),
//!    then `_xmpp-server._tcp.DOMAIN` (STARTTLS), each set ordered by
//!    priority, and by weight within a priority (RFC 2782's weighted
//!    random choice);
//! 3. without any SRV record, DOMAIN itself on port 5269.
//!
//! A record whose target is `.` says the service is decidedly not
//! offered there (RFC 2782). Each candidate's name is resolved to its
//! addresses (A and AAAA) only when its turn comes, by the driver.
//!
//! [`order`] is pure and takes its randomness from the link kit's
//! [`RandomSource`], so tests fix the draw.

use std::collections::HashMap;
use std::net::SocketAddr;

use hickory_resolver::TokioResolver;
use switchboard_config::{PeerAddress, PeerTls};
use switchboard_link::backoff::RandomSource;

/// The port a domain without SRV records is tried on.
pub const DEFAULT_PORT: u16 = 5269;

/// One place to try, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// A host name to resolve, or an address fixed by the admin.
    pub target: Target,
    pub port: u16,
    /// TLS from the first byte (XEP-0368) instead of STARTTLS.
    pub direct_tls: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Name(String),
    Addr(SocketAddr),
}

impl std::fmt::Display for Candidate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let tls = if self.direct_tls { " (direct TLS)" } else { "" };
        match &self.target {
            Target::Name(n) => write!(f, "{n}:{}{tls}", self.port),
            Target::Addr(a) => write!(f, "{a}{tls}"),
        }
    }
}

/// An SRV record as far as ordering goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Srv {
    pub priority: u16,
    pub weight: u16,
    pub port: u16,
    pub target: String,
}

/// RFC 2782: lowest priority first; within one priority, a weighted
/// random order (each pick proportional to its weight, zero weights
/// first among equals with a small chance).
pub fn order(mut records: Vec<Srv>, random: &mut dyn RandomSource) -> Vec<Srv> {
    records.sort_by_key(|r| (r.priority, r.weight != 0));
    let mut out = Vec::with_capacity(records.len());
    while !records.is_empty() {
        let priority = records[0].priority;
        let end = records
            .iter()
            .position(|r| r.priority != priority)
            .unwrap_or(records.len());
        let mut group: Vec<Srv> = records.drain(..end).collect();
        while !group.is_empty() {
            let total: u64 = group.iter().map(|r| u64::from(r.weight)).sum();
            // A number in [0, total], as the RFC draws it.
            let pick = (random.unit() * (total as f64 + 1.0)) as u64;
            let mut running = 0u64;
            let at = group
                .iter()
                .position(|r| {
                    running += u64::from(r.weight);
                    running >= pick
                })
                .unwrap_or(group.len() - 1);
            out.push(group.remove(at));
        }
    }
    out
}

/// Why there is nowhere to connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotFound(pub String);

/// Every place to try for `domain`, in order.
pub async fn candidates(
    resolver: &TokioResolver,
    fixed: &HashMap<String, PeerAddress>,
    domain: &str,
    random: &mut dyn RandomSource,
) -> Result<Vec<Candidate>, NotFound> {
    if let Some(p) = fixed.get(domain) {
        return Ok(vec![Candidate {
            target: Target::Addr(p.addr),
            port: p.addr.port(),
            direct_tls: p.tls == PeerTls::Direct,
        }]);
    }
    let direct = srv(resolver, &format!("_xmpps-server._tcp.{domain}.")).await?;
    let starttls = srv(resolver, &format!("_xmpp-server._tcp.{domain}.")).await?;
    if direct.is_none() && starttls.is_none() {
        return Ok(vec![Candidate {
            target: Target::Name(domain.to_string()),
            port: DEFAULT_PORT,
            direct_tls: false,
        }]);
    }
    let mut out = Vec::new();
    for (records, direct_tls) in [(direct, true), (starttls, false)] {
        for r in order(records.unwrap_or_default(), random) {
            // "." means: not offered (RFC 2782).
            if r.target.is_empty() || r.target == "." {
                continue;
            }
            out.push(Candidate {
                target: Target::Name(r.target.trim_end_matches('.').to_string()),
                port: r.port,
                direct_tls,
            });
        }
    }
    if out.is_empty() {
        return Err(NotFound(format!(
            "{domain} says it offers no server-to-server service (SRV target \".\")"
        )));
    }
    Ok(out)
}

/// The SRV records of `name`; `None` when there are none.
async fn srv(resolver: &TokioResolver, name: &str) -> Result<Option<Vec<Srv>>, NotFound> {
    match resolver.srv_lookup(name).await {
        Ok(lookup) => Ok(Some(
            lookup
                .iter()
                .map(|r| Srv {
                    priority: r.priority(),
                    weight: r.weight(),
                    port: r.port(),
                    target: r.target().to_utf8(),
                })
                .collect(),
        )),
        Err(e) if e.is_no_records_found() || e.is_nx_domain() => Ok(None),
        Err(e) => Err(NotFound(format!("DNS lookup of {name} failed: {e}"))),
    }
}

/// The addresses of a candidate (A and AAAA records, or the fixed one).
pub async fn addresses(
    resolver: &TokioResolver,
    c: &Candidate,
) -> Result<Vec<SocketAddr>, NotFound> {
    match &c.target {
        Target::Addr(a) => Ok(vec![*a]),
        Target::Name(n) => {
            if let Ok(ip) = n.parse::<std::net::IpAddr>() {
                return Ok(vec![SocketAddr::new(ip, c.port)]);
            }
            let found = resolver
                .lookup_ip(format!("{n}."))
                .await
                .map_err(|e| NotFound(format!("no address for {n}: {e}")))?;
            Ok(found.iter().map(|ip| SocketAddr::new(ip, c.port)).collect())
        }
    }
}

/// A resolver asking `nameserver` (UDP and TCP), or the system's.
pub fn resolver(nameserver: Option<SocketAddr>) -> Result<TokioResolver, String> {
    use hickory_resolver::config::{NameServerConfig, ResolverConfig, ResolverOpts};
    use hickory_resolver::name_server::TokioConnectionProvider;
    use hickory_resolver::proto::xfer::Protocol;
    let provider = TokioConnectionProvider::default();
    let mut builder = match nameserver {
        Some(addr) => {
            let mut config = ResolverConfig::new();
            config.add_name_server(NameServerConfig::new(addr, Protocol::Udp));
            config.add_name_server(NameServerConfig::new(addr, Protocol::Tcp));
            TokioResolver::builder_with_config(config, provider)
        }
        None => TokioResolver::builder(provider)
            .map_err(|e| format!("cannot read the system's DNS configuration: {e}"))?,
    };
    let opts: &mut ResolverOpts = builder.options_mut();
    // One quick answer beats many slow ones: the link's own timeout
    // bounds the whole set-up anyway.
    opts.timeout = std::time::Duration::from_secs(5);
    opts.attempts = 2;
    Ok(builder.build())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Draws the given numbers in turn (as fractions of the range).
    struct Draws(Vec<f64>);

    impl RandomSource for Draws {
        fn next_u64(&mut self) -> u64 {
            let u = if self.0.is_empty() {
                0.0
            } else {
                self.0.remove(0)
            };
            (u * (1u64 << 53) as f64) as u64 * (1 << 11)
        }
    }

    fn srv(priority: u16, weight: u16, target: &str) -> Srv {
        Srv {
            priority,
            weight,
            port: 5269,
            target: target.into(),
        }
    }

    fn targets(v: &[Srv]) -> Vec<&str> {
        v.iter().map(|r| r.target.as_str()).collect()
    }

    #[test]
    fn lower_priorities_come_first() {
        let got = order(
            vec![
                srv(20, 0, "c"),
                srv(10, 0, "a"),
                srv(30, 0, "d"),
                srv(10, 0, "b"),
            ],
            &mut Draws(vec![0.0; 8]),
        );
        assert_eq!(targets(&got)[2..], ["c", "d"]);
        assert!(targets(&got)[..2].contains(&"a") && targets(&got)[..2].contains(&"b"));
    }

    #[test]
    fn weights_decide_within_a_priority() {
        // Weights 1 and 9: a low draw picks the light one, a high draw the
        // heavy one.
        let low = order(
            vec![srv(0, 1, "light"), srv(0, 9, "heavy")],
            &mut Draws(vec![0.05, 0.0]),
        );
        assert_eq!(targets(&low), ["light", "heavy"]);
        let high = order(
            vec![srv(0, 1, "light"), srv(0, 9, "heavy")],
            &mut Draws(vec![0.9, 0.0]),
        );
        assert_eq!(targets(&high), ["heavy", "light"]);
    }

    #[test]
    fn over_many_draws_weights_are_proportional() {
        let mut heavy_first = 0;
        let mut rng = switchboard_link::backoff::OsRandom;
        for _ in 0..2000 {
            let got = order(vec![srv(0, 10, "light"), srv(0, 90, "heavy")], &mut rng);
            if got[0].target == "heavy" {
                heavy_first += 1;
            }
        }
        // 90 % expected; a wide band keeps the test from flaking.
        assert!((1650..=1950).contains(&heavy_first), "{heavy_first}");
    }

    #[test]
    fn candidates_print_as_admins_read_them() {
        let c = Candidate {
            target: Target::Name("xmpp.example.net".into()),
            port: 5270,
            direct_tls: true,
        };
        assert_eq!(c.to_string(), "xmpp.example.net:5270 (direct TLS)");
    }
}
