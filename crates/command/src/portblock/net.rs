//! IPv4 prefixes and port ranges: parsing and the little arithmetic that
//! port-block planning needs (hand-written; no CIDR crate).

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use super::PortblockError;

/// An IPv4 prefix such as `10.8.0.0/24`: a network address whose host bits
/// are zero, and a length 0..=32.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Ipv4Net {
    network: Ipv4Addr,
    len: u8,
}

impl Ipv4Net {
    /// A prefix; refuses a length above 32 and host bits that are set.
    pub fn new(addr: Ipv4Addr, len: u8) -> Result<Ipv4Net, PortblockError> {
        if len > 32 {
            return Err(PortblockError::BadPrefix {
                input: format!("{addr}/{len}"),
                reason: "the prefix length is above 32".into(),
            });
        }
        let net = Ipv4Net {
            network: Ipv4Addr::from(u32::from(addr) & mask(len)),
            len,
        };
        if net.network != addr {
            return Err(PortblockError::HostBits {
                input: format!("{addr}/{len}"),
                network: net.to_string(),
            });
        }
        Ok(net)
    }

    /// The network address.
    pub fn network(&self) -> Ipv4Addr {
        self.network
    }

    /// The prefix length.
    pub fn prefix_len(&self) -> u8 {
        self.len
    }

    /// The last address of the prefix (the broadcast address for /0../30).
    pub fn last(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network) | !mask(self.len))
    }

    /// Number of addresses the prefix spans (2^(32-len)).
    pub fn size(&self) -> u64 {
        1u64 << (32 - u32::from(self.len))
    }

    /// Whether `addr` lies in the prefix.
    pub fn contains(&self, addr: Ipv4Addr) -> bool {
        u32::from(addr) & mask(self.len) == u32::from(self.network)
    }

    /// Whether two prefixes share an address (one then contains the other).
    pub fn overlaps(&self, other: &Ipv4Net) -> bool {
        self.contains(other.network) || other.contains(self.network)
    }

    /// The addresses that get a port block, in ascending order.
    ///
    /// For prefixes of /30 and shorter, the network and broadcast addresses
    /// are skipped (no host sends from them), and so is the first host
    /// address, conventionally the router itself, unless `include_first`.
    /// /31 (RFC 3021 point-to-point) and /32 have neither: every address is a
    /// host.
    pub fn hosts(&self, include_first: bool) -> impl Iterator<Item = Ipv4Addr> + use<> {
        let first = u32::from(self.network);
        let last = u32::from(self.last());
        let (lo, hi) = if self.len >= 31 {
            (first, last)
        } else if include_first {
            (first + 1, last - 1)
        } else {
            (first + 2, last - 1)
        };
        (lo..=hi).map(Ipv4Addr::from)
    }

    /// The number of addresses [`Ipv4Net::hosts`] yields.
    pub fn host_count(&self, include_first: bool) -> u64 {
        match self.len {
            31 | 32 => self.size(),
            _ if include_first => self.size() - 2,
            _ => self.size() - 3,
        }
    }
}

fn mask(len: u8) -> u32 {
    if len == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(len))
    }
}

impl fmt::Display for Ipv4Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.len)
    }
}

impl FromStr for Ipv4Net {
    type Err = PortblockError;

    /// `A.B.C.D/LEN`, or a bare address for a /32. An IPv6 prefix is refused
    /// with the reason port-block NAT is IPv4 only.
    fn from_str(s: &str) -> Result<Ipv4Net, PortblockError> {
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
        let len = match len {
            None => 32,
            Some(l) => l.parse::<u8>().ok().filter(|l| *l <= 32).ok_or_else(|| {
                PortblockError::BadPrefix {
                    input: s.into(),
                    reason: format!("{l:?} is not a prefix length 0..32"),
                }
            })?,
        };
        Ipv4Net::new(addr, len)
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
        s.parse().unwrap()
    }

    #[test]
    fn prefix_parse_and_display() {
        assert_eq!(net("10.8.0.0/24").to_string(), "10.8.0.0/24");
        assert_eq!(net("10.8.0.7").to_string(), "10.8.0.7/32");
        assert_eq!(net("0.0.0.0/0").size(), 1 << 32);
        assert_eq!(net("10.8.0.0/24").last(), Ipv4Addr::new(10, 8, 0, 255));
    }

    #[test]
    fn prefix_refusals_say_why() {
        let e = "10.8.0.5/24".parse::<Ipv4Net>().unwrap_err().to_string();
        assert!(e.contains("10.8.0.0/24"), "{e}");
        let e = "2001:db8::/64".parse::<Ipv4Net>().unwrap_err().to_string();
        assert!(e.contains("IPv4 only"), "{e}");
        assert!("10.8.0.0/33".parse::<Ipv4Net>().is_err());
        assert!("10.8.0/24".parse::<Ipv4Net>().is_err());
        assert!("10.8.0.0/".parse::<Ipv4Net>().is_err());
        assert!(
            parse_public("2001:db8::1")
                .unwrap_err()
                .to_string()
                .contains("IPv4 only")
        );
    }

    #[test]
    fn hosts_skip_network_broadcast_and_first() {
        let n = net("192.168.101.0/29");
        let h: Vec<_> = n.hosts(false).collect();
        assert_eq!(h.first(), Some(&Ipv4Addr::new(192, 168, 101, 2)));
        assert_eq!(h.last(), Some(&Ipv4Addr::new(192, 168, 101, 6)));
        assert_eq!(h.len() as u64, n.host_count(false));
        let h: Vec<_> = n.hosts(true).collect();
        assert_eq!(h.first(), Some(&Ipv4Addr::new(192, 168, 101, 1)));
        assert_eq!(h.len() as u64, n.host_count(true));
        // /30: one host left after the gateway.
        assert_eq!(net("10.0.0.0/30").hosts(false).count(), 1);
        // /31 and /32: every address.
        assert_eq!(net("10.0.0.0/31").hosts(false).count(), 2);
        assert_eq!(
            net("10.0.0.9/32").hosts(false).collect::<Vec<_>>(),
            [Ipv4Addr::new(10, 0, 0, 9)]
        );
        assert_eq!(net("10.0.0.9/32").host_count(false), 1);
    }

    #[test]
    fn overlap() {
        assert!(net("10.8.0.0/16").overlaps(&net("10.8.3.0/24")));
        assert!(net("10.8.3.0/24").overlaps(&net("10.8.0.0/16")));
        assert!(!net("10.8.0.0/24").overlaps(&net("10.8.1.0/24")));
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
