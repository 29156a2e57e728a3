//! Address ranges in CIDR notation (`127.0.0.0/8`, `2001:db8::/32`, or a
//! bare address), for settings that single out client addresses such as
//! the in-band registration allow-list.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// An IPv4 or IPv6 network: an address whose first `prefix` bits count.
/// A bare address is a range of one (`/32` or `/128`). The bits past the
/// prefix are always zero: `127.0.0.1/8` is refused rather than read as
/// `127.0.0.0/8`, since whoever wrote it may have meant `127.0.0.1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpRange {
    addr: IpAddr,
    prefix: u8,
}

/// Why a text is not an [`IpRange`]: the message, and the range that was
/// probably meant when the address has bits set past its prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidRange {
    pub message: String,
    pub suggestion: Option<IpRange>,
}

impl fmt::Display for InvalidRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(s) = self.suggestion {
            write!(f, " (did you mean {s}?)")?;
        }
        Ok(())
    }
}

impl std::error::Error for InvalidRange {}

impl IpRange {
    /// `addr/prefix` without checking it; for constants known to be valid.
    pub(crate) const fn new_unchecked(addr: IpAddr, prefix: u8) -> IpRange {
        IpRange { addr, prefix }
    }

    /// The network address.
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// How many leading bits of [`Self::addr`] the range fixes.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// Whether `ip` is in the range. An IPv4 client reaching a dual-stack
    /// (`[::]`) listener shows up as an IPv4-mapped IPv6 address
    /// (`::ffff:127.0.0.1`); it counts as the IPv4 address it carries.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => mask_v4(ip, self.prefix) == net,
            (IpAddr::V6(net), IpAddr::V6(ip)) => mask_v6(ip, self.prefix) == net,
            _ => false,
        }
    }
}

fn mask_v4(ip: Ipv4Addr, prefix: u8) -> Ipv4Addr {
    let bits = u32::from(ip);
    let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
    Ipv4Addr::from(bits & mask)
}

fn mask_v6(ip: Ipv6Addr, prefix: u8) -> Ipv6Addr {
    let bits = u128::from(ip);
    let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
    Ipv6Addr::from(bits & mask)
}

impl FromStr for IpRange {
    type Err = InvalidRange;

    fn from_str(text: &str) -> Result<IpRange, InvalidRange> {
        let invalid = |message: String| InvalidRange {
            message,
            suggestion: None,
        };
        let (addr_text, prefix_text) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let addr: IpAddr = addr_text
            .parse()
            .map_err(|_| invalid(format!("\"{text}\" is not an IP address or CIDR range")))?;
        let max: u8 = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix_text {
            None => max,
            Some(p) => match p.parse::<u8>() {
                Ok(n) if n <= max && p.bytes().all(|b| b.is_ascii_digit()) => n,
                _ => {
                    let family = if addr.is_ipv4() { "IPv4" } else { "IPv6" };
                    return Err(invalid(format!(
                        "\"{text}\": the prefix length of an {family} range is 0 to {max}"
                    )));
                }
            },
        };
        let network = match addr {
            IpAddr::V4(v4) => IpAddr::V4(mask_v4(v4, prefix)),
            IpAddr::V6(v6) => IpAddr::V6(mask_v6(v6, prefix)),
        };
        if network != addr {
            return Err(InvalidRange {
                message: format!("\"{text}\" has bits set past its /{prefix} prefix"),
                suggestion: Some(IpRange {
                    addr: network,
                    prefix,
                }),
            });
        }
        Ok(IpRange { addr, prefix })
    }
}

impl fmt::Display for IpRange {
    /// `addr/prefix`, or the bare address for a range of one.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let full = if self.addr.is_ipv4() { 32 } else { 128 };
        if self.prefix == full {
            write!(f, "{}", self.addr)
        } else {
            write!(f, "{}/{}", self.addr, self.prefix)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(s: &str) -> IpRange {
        s.parse().unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn ranges_contain_their_addresses_only() {
        let lo = range("127.0.0.0/8");
        assert!(lo.contains(ip("127.0.0.1")));
        assert!(lo.contains(ip("127.255.255.254")));
        assert!(!lo.contains(ip("128.0.0.1")));
        assert!(
            !lo.contains(ip("::1")),
            "no IPv4 range holds an IPv6 address"
        );
        let one = range("::1");
        assert_eq!(one.prefix(), 128);
        assert!(one.contains(ip("::1")));
        assert!(!one.contains(ip("::2")));
        let doc = range("2001:db8::/32");
        assert!(doc.contains(ip("2001:db8:ffff::1")));
        assert!(!doc.contains(ip("2001:db9::1")));
        let all = range("0.0.0.0/0");
        assert!(all.contains(ip("203.0.113.7")));
        assert!(range("192.0.2.7").contains(ip("192.0.2.7")));
        assert!(!range("192.0.2.7").contains(ip("192.0.2.8")));
    }

    #[test]
    fn an_ipv4_client_on_a_dual_stack_listener_counts_as_ipv4() {
        assert!(range("127.0.0.0/8").contains(ip("::ffff:127.0.0.1")));
        assert!(!range("127.0.0.0/8").contains(ip("::ffff:10.0.0.1")));
    }

    #[test]
    fn bad_ranges_say_what_is_wrong() {
        let err = |s: &str| s.parse::<IpRange>().unwrap_err();
        assert_eq!(
            err("localhost").message,
            "\"localhost\" is not an IP address or CIDR range"
        );
        assert_eq!(
            err("10.0.0.0/33").message,
            "\"10.0.0.0/33\": the prefix length of an IPv4 range is 0 to 32"
        );
        assert_eq!(
            err("::/129").message,
            "\"::/129\": the prefix length of an IPv6 range is 0 to 128"
        );
        assert_eq!(
            err("10.0.0.0/+8").message,
            "\"10.0.0.0/+8\": the prefix length of an IPv4 range is 0 to 32"
        );
        let host_bits = err("127.0.0.1/8");
        assert_eq!(
            host_bits.message,
            "\"127.0.0.1/8\" has bits set past its /8 prefix"
        );
        assert_eq!(host_bits.suggestion, Some(range("127.0.0.0/8")));
    }

    #[test]
    fn ranges_print_as_written() {
        for s in [
            "127.0.0.0/8",
            "::1",
            "2001:db8::/32",
            "192.0.2.7",
            "0.0.0.0/0",
        ] {
            assert_eq!(range(s).to_string(), s);
        }
    }
}
