//! One question: the public endpoint, the time, and what narrows the
//! search (remote endpoint, protocol), with the slack and flow-age limits.

use std::net::IpAddr;

use super::LookupError;
use crate::when::ReportTime;
use masqlog_core::record::Proto;

/// How far the report's clock may be off (2 minutes): a flow matches when
/// the report time is within its lifetime widened by this on both sides.
pub const DEFAULT_SLACK_SECS: i64 = 120;

/// How long a flow may live (24 hours) for the windowed search; see the
/// module documentation.
pub const DEFAULT_MAX_AGE_SECS: i64 = 86_400;

/// The remote endpoint from the report: the address must match; a port,
/// when given, ranks flows to it first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RemoteFilter {
    pub ip: IpAddr,
    pub port: Option<u16>,
}

/// One abuse report, ready to answer.
#[derive(Clone, Debug)]
pub struct AbuseReport {
    /// The public (masquerade) address and port, canonical (an
    /// IPv4-mapped IPv6 address is read as IPv4).
    pub public_ip: IpAddr,
    pub public_port: u16,
    pub at: ReportTime,
    pub remote: Option<RemoteFilter>,
    pub proto: Option<Proto>,
    /// Seconds.
    pub slack: i64,
    /// Seconds; `None`: flows may be of any age (the whole logs are read).
    pub max_age: Option<i64>,
}

impl AbuseReport {
    /// `192.0.2.1:53500`, `[2001:db8::1]:53500`.
    pub fn public_string(&self) -> String {
        endpoint_string(self.public_ip, Some(self.public_port))
    }

    /// The slack in microseconds.
    pub fn slack_us(&self) -> i64 {
        self.slack.saturating_mul(1_000_000)
    }
}

/// `a.b.c.d:port`, `[v6]:port`, or the bare address.
pub fn endpoint_string(ip: IpAddr, port: Option<u16>) -> String {
    match (ip, port) {
        (ip, None) => ip.to_string(),
        (IpAddr::V4(a), Some(p)) => format!("{a}:{p}"),
        (IpAddr::V6(a), Some(p)) => format!("[{a}]:{p}"),
    }
}

/// An IPv4-mapped IPv6 address as IPv4; anything else as it is.
pub fn canon(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// `ip:port`, `[v6]:port`, `ip port`, or (when `port_optional`) a bare
/// address.
fn parse_endpoint(input: &str, port_optional: bool) -> Result<(IpAddr, Option<u16>), LookupError> {
    let bad = |why: &str| LookupError::BadEndpoint {
        input: input.to_string(),
        why: why.to_string(),
    };
    let s = input.trim();
    if let Ok(ip) = s.parse::<IpAddr>() {
        if port_optional {
            return Ok((canon(ip), None));
        }
        return Err(bad(
            "no port: write ip:port, and [ipv6]:port for IPv6 (the port is what tells the \
             users of one public address apart)",
        ));
    }
    let (ip, port) = if let Some(rest) = s.strip_prefix('[') {
        let (ip, port) = rest
            .split_once("]:")
            .or_else(|| rest.split_once("] "))
            .ok_or_else(|| bad("expected [ipv6]:port"))?;
        let ip = ip
            .split('%')
            .next()
            .unwrap_or(ip)
            .parse::<IpAddr>()
            .map_err(|_| bad("not an IPv6 address inside the brackets"))?;
        (ip, port.trim())
    } else if let Some((ip, port)) = s.split_once(' ') {
        (
            ip.parse::<IpAddr>().map_err(|_| bad("not an address"))?,
            port.trim(),
        )
    } else {
        let (ip, port) = s.rsplit_once(':').ok_or_else(|| bad("expected ip:port"))?;
        if ip.contains(':') {
            return Err(bad(
                "an IPv6 address with a port needs brackets: [2001:db8::1]:53500",
            ));
        }
        (
            ip.parse::<IpAddr>().map_err(|_| bad("not an address"))?,
            port,
        )
    };
    if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad("the port is not a number"));
    }
    let port: u16 = port
        .parse()
        .map_err(|_| bad("the port is out of range (0 ..= 65535)"))?;
    Ok((canon(ip), Some(port)))
}

/// The public endpoint of a report: an address and a port.
pub fn parse_public(input: &str) -> Result<(IpAddr, u16), LookupError> {
    let (ip, port) = parse_endpoint(input, false)?;
    Ok((ip, port.unwrap_or(0)))
}

/// `--remote`: an address, with or without a port.
pub fn parse_remote(input: &str) -> Result<RemoteFilter, LookupError> {
    let (ip, port) = parse_endpoint(input, true)?;
    Ok(RemoteFilter { ip, port })
}

/// `--proto`: a name (`tcp`, `udp`, `icmp`, ...) or a protocol number.
pub fn parse_proto(input: &str) -> Result<Proto, LookupError> {
    let s = input.trim().to_ascii_lowercase();
    if let Ok(n) = s.parse::<u8>() {
        return Ok(Proto::from_number(n, None, None));
    }
    let s = match s.as_str() {
        "ipv6-icmp" | "icmp6" => "icmpv6",
        "udp-lite" => "udplite",
        other => other,
    };
    [6u8, 17, 136, 132, 33, 1, 58]
        .into_iter()
        .map(|n| Proto::from_number(n, None, None))
        .find(|p| p.name() == Some(s))
        .ok_or_else(|| LookupError::BadProto {
            input: input.to_string(),
        })
}

/// The name a protocol is shown by: `tcp`, or its number.
pub fn proto_string(p: Proto) -> String {
    p.name()
        .map_or_else(|| p.number().to_string(), str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_endpoints() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(
            parse_public("192.0.2.1:53500").unwrap(),
            (ip("192.0.2.1"), 53500)
        );
        assert_eq!(
            parse_public(" [2001:db8::1]:53500 ").unwrap(),
            (ip("2001:db8::1"), 53500)
        );
        assert_eq!(
            parse_public("192.0.2.1 53500").unwrap(),
            (ip("192.0.2.1"), 53500)
        );
        assert_eq!(
            parse_public("[::ffff:192.0.2.1]:1").unwrap(),
            (ip("192.0.2.1"), 1)
        );
        for bad in [
            "192.0.2.1",
            "2001:db8::1:53500",
            "192.0.2.1:",
            "192.0.2.1:65536",
            "192.0.2.1:-1",
            "192.0.2.300:1",
            "[2001:db8::1]",
            "[192.0.2.1",
            "host.example:80",
            "",
        ] {
            assert!(parse_public(bad).is_err(), "{bad}");
        }
        let e = parse_public("2001:db8::1:53500").unwrap_err().to_string();
        assert!(e.contains("brackets"), "{e}");
    }

    #[test]
    fn remote_and_proto() {
        assert_eq!(
            parse_remote("203.0.113.7").unwrap(),
            RemoteFilter {
                ip: "203.0.113.7".parse().unwrap(),
                port: None
            }
        );
        assert_eq!(parse_remote("203.0.113.7:443").unwrap().port, Some(443));
        assert_eq!(parse_remote("2001:db8::7").unwrap().port, None);
        assert_eq!(parse_proto("TCP").unwrap(), Proto::Tcp);
        assert_eq!(parse_proto("17").unwrap(), Proto::Udp);
        assert_eq!(parse_proto("47").unwrap(), Proto::Other(47));
        assert_eq!(parse_proto("icmp6").unwrap(), Proto::Icmpv6);
        assert!(parse_proto("tcpp").is_err());
        assert_eq!(proto_string(Proto::Other(47)), "47");
        assert_eq!(
            endpoint_string("2001:db8::1".parse().unwrap(), Some(5)),
            "[2001:db8::1]:5"
        );
    }
}
