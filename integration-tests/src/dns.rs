//! A tiny authoritative name server for the federation tests: it answers
//! UDP queries from a fixed table of SRV and A records on a loopback
//! address of its own, so that a server given `<s2s resolver="…">` finds
//! its peers the way it would on the Internet (RFC 6120 §3.2, XEP-0368).
//!
//! A name in the table answers its records of the asked type (none:
//! an empty NOERROR answer); any other name is NXDOMAIN. Every question
//! is recorded, for tests that check what was looked up. The server's
//! thread stops when the [`Dns`] is dropped.

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::rdata::{A, SRV};
use hickory_proto::rr::{Name, RData, Record, RecordType};

/// One record of the table.
#[derive(Debug, Clone)]
enum Entry {
    Srv {
        priority: u16,
        weight: u16,
        port: u16,
        target: String,
    },
    A(Ipv4Addr),
}

/// The records a [`Dns`] answers, by owner name (without the final dot).
#[derive(Debug, Clone, Default)]
pub struct Zone {
    records: Vec<(String, Entry)>,
}

impl Zone {
    pub fn new() -> Zone {
        Zone::default()
    }

    /// An SRV record: `name` (e.g. `_xmpp-server._tcp.b.test`) points at
    /// `target:port` (`.` for "not offered").
    pub fn srv(mut self, name: &str, priority: u16, weight: u16, port: u16, target: &str) -> Zone {
        self.records.push((
            normal(name),
            Entry::Srv {
                priority,
                weight,
                port,
                target: target.to_owned(),
            },
        ));
        self
    }

    /// An A record.
    pub fn a(mut self, name: &str, ip: Ipv4Addr) -> Zone {
        self.records.push((normal(name), Entry::A(ip)));
        self
    }

    /// The answer to `query` (a DNS message), `None` for what is not a
    /// query.
    fn answer(&self, query: &[u8]) -> Option<(String, Vec<u8>)> {
        let q = Message::from_vec(query).ok()?;
        if q.message_type() != MessageType::Query {
            return None;
        }
        let question = q.queries().first()?.clone();
        let name = normal(&question.name().to_ascii());
        let asked = question.query_type();
        let mut r = Message::new();
        r.set_id(q.id())
            .set_message_type(MessageType::Response)
            .set_op_code(q.op_code())
            .set_authoritative(true)
            .set_recursion_desired(q.recursion_desired())
            .set_recursion_available(true)
            .add_query(question.clone());
        let mut known = false;
        for (owner, entry) in &self.records {
            if *owner != name {
                continue;
            }
            known = true;
            let rdata = match (entry, asked) {
                (
                    Entry::Srv {
                        priority,
                        weight,
                        port,
                        target,
                    },
                    RecordType::SRV,
                ) => {
                    let target = if target == "." {
                        Name::root()
                    } else {
                        Name::from_ascii(format!("{}.", normal(target))).ok()?
                    };
                    RData::SRV(SRV::new(*priority, *weight, *port, target))
                }
                (Entry::A(ip), RecordType::A) => RData::A(A(*ip)),
                _ => continue,
            };
            r.add_answer(Record::from_rdata(question.name().clone(), 60, rdata));
        }
        if !known {
            r.set_response_code(ResponseCode::NXDomain);
        }
        Some((format!("{asked} {name}"), r.to_vec().ok()?))
    }
}

fn normal(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// A running name server.
pub struct Dns {
    addr: SocketAddr,
    asked: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Dns {
    /// Serves `zone` on a loopback address of its own (see
    /// [`crate::federation::loopback_addr`]).
    pub fn start(zone: Zone) -> Dns {
        let socket = (0..20)
            .find_map(|_| {
                UdpSocket::bind(SocketAddr::new(crate::federation::loopback_addr().ip(), 0)).ok()
            })
            .expect("a UDP socket on loopback for the name server");
        socket
            .set_read_timeout(Some(Duration::from_millis(50)))
            .expect("a read timeout");
        let addr = socket.local_addr().expect("the name server's address");
        let asked = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let asked = asked.clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while !stop.load(Ordering::Relaxed) {
                    let Ok((n, from)) = socket.recv_from(&mut buf) else {
                        continue;
                    };
                    if let Some((question, reply)) = zone.answer(&buf[..n]) {
                        asked.lock().unwrap().push(question);
                        let _ = socket.send_to(&reply, from);
                    }
                }
            })
        };
        Dns {
            addr,
            asked,
            stop,
            thread: Some(thread),
        }
    }

    /// Where it listens (for `<s2s resolver="…">`).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The questions asked so far, as "TYPE name".
    pub fn asked(&self) -> Vec<String> {
        self.asked.lock().unwrap().clone()
    }
}

impl Drop for Dns {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::Query;

    fn ask(zone: &Zone, name: &str, t: RecordType) -> Message {
        let mut q = Message::new();
        q.set_id(7)
            .set_message_type(MessageType::Query)
            .add_query(Query::query(Name::from_ascii(name).unwrap(), t));
        let (_, bytes) = zone.answer(&q.to_vec().unwrap()).unwrap();
        Message::from_vec(&bytes).unwrap()
    }

    #[test]
    fn answers_srv_and_a_records_and_nxdomain_otherwise() {
        let zone = Zone::new()
            .srv("_xmpp-server._tcp.b.test", 10, 5, 5269, "xmpp.b.test")
            .a("xmpp.b.test", Ipv4Addr::new(127, 9, 9, 9));
        let r = ask(&zone, "_xmpp-server._tcp.b.test.", RecordType::SRV);
        assert_eq!(r.id(), 7);
        assert_eq!(r.response_code(), ResponseCode::NoError);
        let RData::SRV(srv) = r.answers()[0].data() else {
            panic!("{r:?}")
        };
        assert_eq!((srv.priority(), srv.weight(), srv.port()), (10, 5, 5269));
        assert_eq!(srv.target().to_ascii(), "xmpp.b.test.");
        let r = ask(&zone, "xmpp.b.test.", RecordType::A);
        assert_eq!(r.answers()[0].data(), &RData::A(A::new(127, 9, 9, 9)));
        // A known name without records of the type: empty, not NXDOMAIN.
        let r = ask(&zone, "xmpp.b.test.", RecordType::AAAA);
        assert_eq!(r.response_code(), ResponseCode::NoError);
        assert!(r.answers().is_empty());
        let r = ask(&zone, "c.test.", RecordType::A);
        assert_eq!(r.response_code(), ResponseCode::NXDomain);
    }
}
