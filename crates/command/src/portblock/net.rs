//! IPv4 prefixes and port ranges: prefixes are `ipnet`'s [`Ipv4Net`], read
//! here with port-block NAT's refusals (IPv6, host bits set), plus the
//! little arithmetic planning needs on top (which addresses get a block).

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

pub use ipnet::Ipv4Net;

use super::PortblockError;

/// A prefix; refuses a length above 32 and host bits that are set.
pub fn prefix(addr: Ipv4Addr, len: u8) -> Result<Ipv4Net, PortblockError> {
    let net = Ipv4Net::new(addr, len).map_err(|_| PortblockError::BadPrefix {
        input: format!("{addr}/{len}"),
        reason: "the prefix length is above 32".into(),
    })?;
    check_no_host_bits(&net)?;
    Ok(net)
}

/// Refuses a prefix whose address has host bits set (`10.8.0.5/24`), naming
/// the network that was probably meant.
pub fn check_no_host_bits(net: &Ipv4Net) -> Result<(), PortblockError> {
    if net.addr() == net.network() {
        Ok(())
    } else {
        Err(PortblockError::HostBits {
            input: net.to_string(),
            network: net.trunc().to_string(),
        })
    }
}

/// `A.B.C.D/LEN`, or a bare address for a /32: a network address whose
/// host bits are zero, and a length 0..=32. An IPv6 prefix is refused with
/// the reason port-block NAT is IPv4 only.
pub fn parse_prefix(s: &str) -> Result<Ipv4Net, PortblockError> {
    let s = s.trim();
    if s.contains(':') {
        return Err(PortblockError::Ipv6 { input: s.into() });
    }
    let (addr, len) = match s.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (s, None),
    };
    let addr: Ipv4Addr = addr.parse().map_err(|_| PortblockError::BadPrefix {
        input: s.into(),
        reason: format!("{addr:?} is not an IPv4 address"),
    })?;
    let len =
        match len {
            None => 32,
            Some(l) => l.parse::<u8>().ok().filter(|l| *l <= 32).ok_or_else(|| {
                PortblockError::BadPrefix {
                    input: s.into(),
                    reason: format!("{l:?} is not a prefix length 0..32"),
                }
            })?,
        };
    prefix(addr, len)
}

/// Number of addresses the prefix spans (2^(32-len)).
pub fn size(net: &Ipv4Net) -> u64 {
    1u64 << (32 - u32::from(net.prefix_len()))
}

/// Whether two prefixes share an address (one then contains the other).
pub fn overlaps(a: &Ipv4Net, b: &Ipv4Net) -> bool {
    a.contains(b) || b.contains(a)
}

/// The addresses of the prefix that get a port block, in ascending order.
///
/// For prefixes of /30 and shorter, the network and broadcast addresses
/// are skipped (no host sends from them), and so is the first host
/// address, conventionally the router itself, unless `include_first`.
/// /31 (RFC 3021 point-to-point) and /32 have neither: every address is a
/// host.
pub fn client_hosts(net: &Ipv4Net, include_first: bool) -> impl Iterator<Item = Ipv4Addr> + use<> {
    let first = u32::from(net.network());
    let last = u32::from(net.broadcast());
    let (lo, hi) = if net.prefix_len() >= 31 {
        (first, last)
    } else if include_first {
        (first + 1, last - 1)
    } else {
        (first + 2, last - 1)
    };
    (lo..=hi).map(Ipv4Addr::from)
}

/// The number of addresses [`client_hosts`] yields.
pub fn client_count(net: &Ipv4Net, include_first: bool) -> u64 {
    match net.prefix_len() {
        31 | 32 => size(net),
        _ if include_first => size(net) - 2,
        _ => size(net) - 3,
    }
}

/// Parses a public address: IPv4 only, with the same reason as prefixes.
pub fn parse_public(s: &str) -> Result<Ipv4Addr, PortblockError> {
    let s = s.trim();
    if s.contains(':') {
        return Err(PortblockError::Ipv6 { input: s.into() });
    }
    s.parse()
        .map_err(|_| PortblockError::BadAddress { input: s.into() })
}

/// An inclusive range of ports `lo-hi`, 1 <= lo <= hi <= 65535.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PortRange {
    pub lo: u16,
    pub hi: u16,
}

impl PortRange {
    /// A range; refuses port 0 and an empty range.
    pub fn new(lo: u16, hi: u16) -> Result<PortRange, PortblockError> {
        let input = format!("{lo}-{hi}");
        if lo == 0 {
            return Err(PortblockError::BadPortRange {
                input,
                reason: "port 0 is not a port a connection can use".into(),
            });
        }
        if lo > hi {
            return Err(PortblockError::BadPortRange {
                input,
                reason: "the range is empty (the first port is above the last)".into(),
            });
        }
        Ok(PortRange { lo, hi })
    }

    /// Number of ports in the range.
    pub fn count(&self) -> u32 {
        u32::from(self.hi) - u32::from(self.lo) + 1
    }

    /// Whether the two ranges share a port.
    pub fn overlaps(&self, other: &PortRange) -> bool {
        self.lo <= other.hi && other.lo <= self.hi
    }

    /// Whether `port` is in the range.
    pub fn contains(&self, port: u16) -> bool {
        self.lo <= port && port <= self.hi
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.lo, self.hi)
    }
}

impl FromStr for PortRange {
    type Err = PortblockError;

    /// `LO-HI`, or a single port `P` for `P-P`.
    fn from_str(s: &str) -> Result<PortRange, PortblockError> {
        let s = s.trim();
        let bad = |reason: &str| PortblockError::BadPortRange {
            input: s.into(),
            reason: reason.into(),
        };
        let (lo, hi) = s.split_once('-').unwrap_or((s, s));
        let lo: u16 = lo
            .trim()
            .parse()
            .map_err(|_| bad("the first port is not a number 1..65535"))?;
        let hi: u16 = hi
            .trim()
            .parse()
            .map_err(|_| bad("the last port is not a number 1..65535"))?;
        PortRange::new(lo, hi).map_err(|e| match e {
            PortblockError::BadPortRange { reason, .. } => bad(&reason),
            other => other,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> Ipv4Net {
        parse_prefix(s).unwrap()
    }

    #[test]
    fn prefix_parse_and_display() {
        assert_eq!(net("10.8.0.0/24").to_string(), "10.8.0.0/24");
        assert_eq!(net("10.8.0.7").to_string(), "10.8.0.7/32");
        assert_eq!(size(&net("0.0.0.0/0")), 1 << 32);
        assert_eq!(net("10.8.0.0/24").broadcast(), Ipv4Addr::new(10, 8, 0, 255));
    }

    #[test]
    fn prefix_refusals_say_why() {
        let e = parse_prefix("10.8.0.5/24").unwrap_err().to_string();
        assert!(e.contains("10.8.0.0/24"), "{e}");
        assert_eq!(
            e,
            "10.8.0.5/24 has host bits set: did you mean 10.8.0.0/24?"
        );
        let e = parse_prefix("2001:db8::/64").unwrap_err().to_string();
        assert!(e.contains("IPv4 only"), "{e}");
        assert!(parse_prefix("10.8.0.0/33").is_err());
        assert!(parse_prefix("10.8.0/24").is_err());
        assert!(parse_prefix("10.8.0.0/").is_err());
        assert!(
            parse_public("2001:db8::1")
                .unwrap_err()
                .to_string()
                .contains("IPv4 only")
        );
        // Made some other way (ipnet's own parser keeps host bits).
        let e = check_no_host_bits(&"10.8.0.5/24".parse().unwrap()).unwrap_err();
        assert!(matches!(e, PortblockError::HostBits { .. }), "{e}");
        assert!(prefix(Ipv4Addr::new(10, 8, 0, 0), 33).is_err());
    }

    #[test]
    fn hosts_skip_network_broadcast_and_first() {
        let n = net("192.168.101.0/29");
        let h: Vec<_> = client_hosts(&n, false).collect();
        assert_eq!(h.first(), Some(&Ipv4Addr::new(192, 168, 101, 2)));
        assert_eq!(h.last(), Some(&Ipv4Addr::new(192, 168, 101, 6)));
        assert_eq!(h.len() as u64, client_count(&n, false));
        let h: Vec<_> = client_hosts(&n, true).collect();
        assert_eq!(h.first(), Some(&Ipv4Addr::new(192, 168, 101, 1)));
        assert_eq!(h.len() as u64, client_count(&n, true));
        // /30: one host left after the gateway.
        assert_eq!(client_hosts(&net("10.0.0.0/30"), false).count(), 1);
        // /31 and /32: every address.
        assert_eq!(client_hosts(&net("10.0.0.0/31"), false).count(), 2);
        assert_eq!(
            client_hosts(&net("10.0.0.9/32"), false).collect::<Vec<_>>(),
            [Ipv4Addr::new(10, 0, 0, 9)]
        );
        assert_eq!(client_count(&net("10.0.0.9/32"), false), 1);
    }

    #[test]
    fn overlap() {
        assert!(overlaps(&net("10.8.0.0/16"), &net("10.8.3.0/24")));
        assert!(overlaps(&net("10.8.3.0/24"), &net("10.8.0.0/16")));
        assert!(!overlaps(&net("10.8.0.0/24"), &net("10.8.1.0/24")));
    }

    #[test]
    fn port_ranges() {
        let r: PortRange = "1280-65535".parse().unwrap();
        assert_eq!((r.lo, r.hi, r.count()), (1280, 65535, 64256));
        assert_eq!("80".parse::<PortRange>().unwrap().count(), 1);
        let e = "2000-1000".parse::<PortRange>().unwrap_err().to_string();
        assert!(e.contains("empty"), "{e}");
        assert!(
            "0-100"
                .parse::<PortRange>()
                .unwrap_err()
                .to_string()
                .contains("port 0")
        );
        assert!("1-65536".parse::<PortRange>().is_err());
        assert!("a-b".parse::<PortRange>().is_err());
    }
}
