//! `FlowRecord`: what one conntrack event means for NAT forensics, as an owned
//! value with no C types: the three endpoints, protocol, times and counters.
//! The plugin formats it; the readers (`format::parse`) give it back.

use std::net::IpAddr;

/// A point in time, UTC, with microsecond resolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp {
    /// Seconds since the UNIX epoch.
    pub secs: i64,
    /// Microseconds within the second (0 .. 999_999).
    pub usecs: u32,
}

impl Timestamp {
    /// A timestamp from seconds and microseconds; microseconds above a second
    /// are carried into the seconds.
    pub fn new(secs: i64, usecs: u32) -> Self {
        Timestamp {
            secs: secs + i64::from(usecs / 1_000_000),
            usecs: usecs % 1_000_000,
        }
    }

    /// Microseconds since the epoch.
    pub fn as_micros(self) -> i64 {
        self.secs * 1_000_000 + i64::from(self.usecs)
    }

    /// The current time of the system clock.
    pub fn now() -> Self {
        let d = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Timestamp::new(d.as_secs() as i64, d.subsec_micros())
    }
}

/// The transport protocol of a flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Proto {
    Tcp,
    Udp,
    UdpLite,
    Sctp,
    Dccp,
    /// ICMP with the type and code of the packet that created the flow, when
    /// the kernel reported them.
    Icmp {
        icmp_type: Option<u8>,
        code: Option<u8>,
    },
    Icmpv6,
    /// Any other IP protocol number.
    Other(u8),
}

impl Proto {
    /// Maps an IP protocol number (and ICMP type/code) to a `Proto`.
    pub fn from_number(n: u8, icmp_type: Option<u8>, code: Option<u8>) -> Self {
        match n {
            6 => Proto::Tcp,
            17 => Proto::Udp,
            136 => Proto::UdpLite,
            132 => Proto::Sctp,
            33 => Proto::Dccp,
            1 => Proto::Icmp { icmp_type, code },
            58 => Proto::Icmpv6,
            other => Proto::Other(other),
        }
    }

    /// The IP protocol number.
    pub fn number(self) -> u8 {
        match self {
            Proto::Tcp => 6,
            Proto::Udp => 17,
            Proto::UdpLite => 136,
            Proto::Sctp => 132,
            Proto::Dccp => 33,
            Proto::Icmp { .. } => 1,
            Proto::Icmpv6 => 58,
            Proto::Other(n) => n,
        }
    }

    /// The lowercase name used in every line format; `None` for `Other`,
    /// which is written as its number.
    pub fn name(self) -> Option<&'static str> {
        Some(match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
            Proto::UdpLite => "udplite",
            Proto::Sctp => "sctp",
            Proto::Dccp => "dccp",
            Proto::Icmp { .. } => "icmp",
            Proto::Icmpv6 => "icmpv6",
            Proto::Other(_) => return None,
        })
    }

    /// Whether flows of this protocol carry ports.
    pub fn has_ports(self) -> bool {
        matches!(
            self,
            Proto::Tcp | Proto::Udp | Proto::UdpLite | Proto::Sctp | Proto::Dccp
        )
    }
}

/// Which half of a conntrack entry's life an event reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Event {
    /// NEW: the flow was created (start time known, counters zero).
    Start,
    /// UPDATE: seen only when NFCT passes updates on.
    Update,
    /// DESTROY: the flow ended (end time and counters known).
    End,
    /// The IDENT answer for a flow, written when it arrives (joined to the
    /// start and end lines by conntrack id).
    Ident,
}

impl Event {
    pub fn name(self) -> &'static str {
        match self {
            Event::Start => "start",
            Event::Update => "update",
            Event::End => "end",
            Event::Ident => "ident",
        }
    }
}

/// Which kind of translation a record shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NatKind {
    /// Source NAT (masquerade): an inside client appears as the masquerade
    /// address to the remote host.
    Snat,
    /// Destination NAT (port forward): a remote host reaches an inside server
    /// through the public address.
    Dnat,
}

impl NatKind {
    pub fn name(self) -> &'static str {
        match self {
            NatKind::Snat => "snat",
            NatKind::Dnat => "dnat",
        }
    }
}

/// Which translated flows the plugin keeps (config key `nat`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum NatFilter {
    #[default]
    Snat,
    Dnat,
    Both,
}

/// An address and, for protocols with ports, a port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Endpoint {
    pub ip: IpAddr,
    pub port: Option<u16>,
}

/// The outcome of an IDENT (RFC 1413) query about a flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IdentStatus {
    /// `USERID`: the user (and operating system) that owns the connection.
    User,
    /// `ERROR`: the identd's error token (NO-USER, HIDDEN-USER, ...).
    IdentError,
    /// No complete answer within the deadline.
    Timeout,
    /// Nothing listens on the client's ident port.
    Refused,
    /// The client could not be reached.
    Unreachable,
    /// An answer that is not RFC 1413 (the reason is kept).
    ProtocolError,
    /// The query queue was full: no query was sent.
    QueueFull,
    /// Too many queries to this client at once: no query was sent.
    Busy,
}

impl IdentStatus {
    pub const ALL: [IdentStatus; 8] = [
        IdentStatus::User,
        IdentStatus::IdentError,
        IdentStatus::Timeout,
        IdentStatus::Refused,
        IdentStatus::Unreachable,
        IdentStatus::ProtocolError,
        IdentStatus::QueueFull,
        IdentStatus::Busy,
    ];

    /// The name written into the line (`ident=...`).
    pub fn name(self) -> &'static str {
        match self {
            IdentStatus::User => "user",
            IdentStatus::IdentError => "ident-error",
            IdentStatus::Timeout => "timeout",
            IdentStatus::Refused => "refused",
            IdentStatus::Unreachable => "unreachable",
            IdentStatus::ProtocolError => "protocol-error",
            IdentStatus::QueueFull => "queue-full",
            IdentStatus::Busy => "busy",
        }
    }
}

/// The outside host of a flow as its lines show it (config key `remote`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Remote {
    /// Address and port (`remote=`).
    Shown(Endpoint),
    /// Written as `remote_hash=`: SipHash-2-4 (128 bits) of the endpoint
    /// under a secret key (see [`remote_hash`]).
    Hashed(u128),
    /// Not written at all.
    Omitted,
}

impl Remote {
    /// The endpoint, when it is shown.
    pub fn endpoint(self) -> Option<Endpoint> {
        match self {
            Remote::Shown(ep) => Some(ep),
            Remote::Hashed(_) | Remote::Omitted => None,
        }
    }
}

/// The keyed hash of a remote endpoint: SipHash-2-4 with 128-bit output
/// over the address as 16 bytes (IPv4 mapped into IPv6) and the port as
/// two big-endian bytes (0 when the protocol has none). The same key and
/// endpoint always give the same value; without the key the value does not
/// tell the endpoint.
pub fn remote_hash(key: &[u8; 16], ep: &Endpoint) -> u128 {
    use siphasher::sip128::{Hasher128, SipHasher24};
    use std::hash::Hasher;
    let ip = match ep.ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    };
    let mut h = SipHasher24::new_with_key(key);
    h.write(&ip.octets());
    h.write(&ep.port.unwrap_or(0).to_be_bytes());
    h.finish128().as_u128()
}

/// What IDENT said about a flow. The byte strings are the identd's own,
/// untrusted: the formats escape them.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct IdentInfo {
    pub status: IdentStatus,
    /// The user id (`User` only).
    pub user: Option<Vec<u8>>,
    /// The operating system token, with `,charset` when one was given.
    pub opsys: Option<Vec<u8>>,
    /// The identd's error token, or why the answer was refused.
    pub detail: Option<Vec<u8>>,
}

/// Packets and bytes in one direction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Counters {
    pub packets: u64,
    pub bytes: u64,
}

/// One conntrack event as read from the NFCT keys, before interpretation.
/// Every field is `None` when the key was absent or not valid.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RawConntrack {
    pub orig_src: Option<IpAddr>,
    pub orig_dst: Option<IpAddr>,
    pub reply_src: Option<IpAddr>,
    pub reply_dst: Option<IpAddr>,
    pub protocol: Option<u8>,
    pub orig_sport: Option<u16>,
    pub orig_dport: Option<u16>,
    pub reply_sport: Option<u16>,
    pub reply_dport: Option<u16>,
    pub icmp_type: Option<u8>,
    pub icmp_code: Option<u8>,
    pub orig_bytes: Option<u64>,
    pub orig_packets: Option<u64>,
    pub reply_bytes: Option<u64>,
    pub reply_packets: Option<u64>,
    pub ct_id: Option<u32>,
    /// ct.event bits: NEW 1, UPDATE 2, DESTROY 4.
    pub ct_event: Option<u32>,
    pub start: Option<Timestamp>,
    pub end: Option<Timestamp>,
}

/// One translated flow event: what the plugin formats, and what reading a
/// line gives back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowRecord {
    pub event: Event,
    pub nat: NatKind,
    pub proto: Proto,
    /// Conntrack id: the same in the start and end events of one flow.
    pub id: Option<u32>,
    /// The inside host: source of a masqueraded flow, target of a forward.
    pub client: Endpoint,
    /// The public endpoint that the remote host saw.
    pub masq: Endpoint,
    /// The outside host, or what the lines show in its place.
    pub remote: Remote,
    pub start: Option<Timestamp>,
    pub end: Option<Timestamp>,
    /// Client to remote direction (conntrack's original direction for SNAT).
    pub out: Option<Counters>,
    /// Remote to client direction.
    pub inbound: Option<Counters>,
    /// The IDENT outcome, when known (ident and end lines).
    pub ident: Option<IdentInfo>,
}

/// Why an event was not turned into a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Skip {
    /// An address or the protocol was missing.
    Incomplete,
    /// The flow is not translated (or not in the kind the filter keeps).
    NotTranslated,
}

fn counters(packets: Option<u64>, bytes: Option<u64>) -> Option<Counters> {
    match (packets, bytes) {
        (None, None) => None,
        (p, b) => Some(Counters {
            packets: p.unwrap_or(0),
            bytes: b.unwrap_or(0),
        }),
    }
}

impl FlowRecord {
    /// Interprets one conntrack event. Source NAT is a flow whose original
    /// source differs from the reply destination (address or port);
    /// destination NAT one whose original destination differs from the reply
    /// source. A flow that is both is reported as source NAT when the filter
    /// keeps it.
    pub fn from_conntrack(raw: &RawConntrack, filter: NatFilter) -> Result<FlowRecord, Skip> {
        let (Some(osrc), Some(odst), Some(rsrc), Some(rdst), Some(pnum)) = (
            raw.orig_src,
            raw.orig_dst,
            raw.reply_src,
            raw.reply_dst,
            raw.protocol,
        ) else {
            return Err(Skip::Incomplete);
        };
        let proto = Proto::from_number(pnum, raw.icmp_type, raw.icmp_code);
        let ports = proto.has_ports();
        let port = |p: Option<u16>| if ports { p } else { None };
        let snat = osrc != rdst || port(raw.orig_sport) != port(raw.reply_dport);
        let dnat = odst != rsrc || port(raw.orig_dport) != port(raw.reply_sport);
        let kind = match filter {
            NatFilter::Snat if snat => NatKind::Snat,
            NatFilter::Dnat if dnat => NatKind::Dnat,
            NatFilter::Both if snat => NatKind::Snat,
            NatFilter::Both if dnat => NatKind::Dnat,
            _ => return Err(Skip::NotTranslated),
        };
        let event = match raw.ct_event {
            Some(e) if e & 4 != 0 => Event::End,
            Some(e) if e & 1 != 0 => Event::Start,
            Some(e) if e & 2 != 0 => Event::Update,
            _ if raw.end.is_some() => Event::End,
            _ => Event::Start,
        };
        // The kernel's counters are always zero in NEW events: a start line
        // carries none rather than a misleading 0.
        let (orig, reply) = if event == Event::Start {
            (None, None)
        } else {
            (
                counters(raw.orig_packets, raw.orig_bytes),
                counters(raw.reply_packets, raw.reply_bytes),
            )
        };
        let ep = |ip, p| Endpoint { ip, port: port(p) };
        let (client, masq, remote, out, inbound) = match kind {
            NatKind::Snat => (
                ep(osrc, raw.orig_sport),
                ep(rdst, raw.reply_dport),
                Remote::Shown(ep(odst, raw.orig_dport)),
                orig,
                reply,
            ),
            NatKind::Dnat => (
                ep(rsrc, raw.reply_sport),
                ep(odst, raw.orig_dport),
                Remote::Shown(ep(osrc, raw.orig_sport)),
                reply,
                orig,
            ),
        };
        Ok(FlowRecord {
            event,
            nat: kind,
            proto,
            id: raw.ct_id,
            client,
            masq,
            remote,
            start: raw.start,
            end: if event == Event::End { raw.end } else { None },
            out,
            inbound,
            ident: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn masqueraded() -> RawConntrack {
        RawConntrack {
            orig_src: Some(ip("10.99.0.2")),
            orig_dst: Some(ip("203.0.113.7")),
            reply_src: Some(ip("203.0.113.7")),
            reply_dst: Some(ip("192.0.2.1")),
            protocol: Some(6),
            orig_sport: Some(40000),
            orig_dport: Some(443),
            reply_sport: Some(443),
            reply_dport: Some(53500),
            ct_id: Some(77),
            ct_event: Some(4),
            orig_packets: Some(5),
            orig_bytes: Some(400),
            reply_packets: Some(4),
            reply_bytes: Some(3000),
            start: Some(Timestamp::new(1_700_000_000, 1)),
            end: Some(Timestamp::new(1_700_000_010, 999_999)),
            ..RawConntrack::default()
        }
    }

    #[test]
    fn snat_endpoints_come_from_the_right_tuples() {
        let r = FlowRecord::from_conntrack(&masqueraded(), NatFilter::Snat).unwrap();
        assert_eq!(r.nat, NatKind::Snat);
        assert_eq!(r.event, Event::End);
        assert_eq!(
            r.client,
            Endpoint {
                ip: ip("10.99.0.2"),
                port: Some(40000)
            }
        );
        assert_eq!(
            r.masq,
            Endpoint {
                ip: ip("192.0.2.1"),
                port: Some(53500)
            }
        );
        assert_eq!(
            r.remote,
            Remote::Shown(Endpoint {
                ip: ip("203.0.113.7"),
                port: Some(443)
            })
        );
        assert_eq!(
            r.out,
            Some(Counters {
                packets: 5,
                bytes: 400
            })
        );
        assert_eq!(
            r.inbound,
            Some(Counters {
                packets: 4,
                bytes: 3000
            })
        );
        assert_eq!(r.id, Some(77));
    }

    #[test]
    fn untranslated_flow_is_skipped() {
        let mut raw = masqueraded();
        raw.reply_dst = raw.orig_src;
        raw.reply_dport = raw.orig_sport;
        assert_eq!(
            FlowRecord::from_conntrack(&raw, NatFilter::Both),
            Err(Skip::NotTranslated)
        );
    }

    #[test]
    fn port_only_translation_counts_as_snat() {
        let mut raw = masqueraded();
        raw.reply_dst = raw.orig_src;
        assert!(FlowRecord::from_conntrack(&raw, NatFilter::Snat).is_ok());
    }

    #[test]
    fn dnat_is_kept_only_when_asked_for() {
        let raw = RawConntrack {
            orig_src: Some(ip("203.0.113.7")),
            orig_dst: Some(ip("192.0.2.1")),
            reply_src: Some(ip("10.99.0.5")),
            reply_dst: Some(ip("203.0.113.7")),
            protocol: Some(17),
            orig_sport: Some(5353),
            orig_dport: Some(8080),
            reply_sport: Some(80),
            reply_dport: Some(5353),
            ct_event: Some(4),
            orig_bytes: Some(10),
            reply_bytes: Some(20),
            ..RawConntrack::default()
        };
        assert_eq!(
            FlowRecord::from_conntrack(&raw, NatFilter::Snat),
            Err(Skip::NotTranslated)
        );
        let r = FlowRecord::from_conntrack(&raw, NatFilter::Dnat).unwrap();
        assert_eq!(r.event, Event::End);
        assert_eq!(r.proto, Proto::Udp);
        assert_eq!(
            r.client,
            Endpoint {
                ip: ip("10.99.0.5"),
                port: Some(80)
            }
        );
        assert_eq!(
            r.masq,
            Endpoint {
                ip: ip("192.0.2.1"),
                port: Some(8080)
            }
        );
        assert_eq!(
            r.remote,
            Remote::Shown(Endpoint {
                ip: ip("203.0.113.7"),
                port: Some(5353)
            })
        );
        assert_eq!(r.out.unwrap().bytes, 20);
        assert_eq!(r.inbound.unwrap().bytes, 10);
        let both = FlowRecord::from_conntrack(&raw, NatFilter::Both).unwrap();
        assert_eq!(both.nat, NatKind::Dnat);
    }

    #[test]
    fn icmp_has_no_ports_and_keeps_type_and_code() {
        let raw = RawConntrack {
            orig_src: Some(ip("10.99.0.2")),
            orig_dst: Some(ip("203.0.113.7")),
            reply_src: Some(ip("203.0.113.7")),
            reply_dst: Some(ip("192.0.2.1")),
            protocol: Some(1),
            orig_sport: Some(1),
            icmp_type: Some(8),
            icmp_code: Some(0),
            ..RawConntrack::default()
        };
        let r = FlowRecord::from_conntrack(&raw, NatFilter::Snat).unwrap();
        assert_eq!(
            r.proto,
            Proto::Icmp {
                icmp_type: Some(8),
                code: Some(0)
            }
        );
        assert_eq!(r.client.port, None);
        assert_eq!(r.out, None);
    }

    #[test]
    fn ipv6_snat_is_recognised() {
        let raw = RawConntrack {
            orig_src: Some(ip("fd00::2")),
            orig_dst: Some(ip("2001:db8::7")),
            reply_src: Some(ip("2001:db8::7")),
            reply_dst: Some(ip("2001:db8::1")),
            protocol: Some(6),
            orig_sport: Some(1),
            orig_dport: Some(2),
            reply_sport: Some(2),
            reply_dport: Some(1),
            ..RawConntrack::default()
        };
        let r = FlowRecord::from_conntrack(&raw, NatFilter::Snat).unwrap();
        assert_eq!(r.masq.ip, ip("2001:db8::1"));
    }

    #[test]
    fn missing_address_is_incomplete() {
        let mut raw = masqueraded();
        raw.reply_dst = None;
        assert_eq!(
            FlowRecord::from_conntrack(&raw, NatFilter::Snat),
            Err(Skip::Incomplete)
        );
    }

    #[test]
    fn start_event_has_no_end_time_and_no_counters() {
        let mut raw = masqueraded();
        raw.ct_event = Some(1);
        let r = FlowRecord::from_conntrack(&raw, NatFilter::Snat).unwrap();
        assert_eq!(r.event, Event::Start);
        assert_eq!(r.end, None);
        assert_eq!(r.out, None);
        assert_eq!(r.inbound, None);
    }

    #[test]
    fn remote_hash_is_keyed_and_stable() {
        let ep = Endpoint {
            ip: ip("203.0.113.7"),
            port: Some(443),
        };
        let k1 = [1u8; 16];
        let k2 = [2u8; 16];
        assert_eq!(remote_hash(&k1, &ep), remote_hash(&k1, &ep));
        assert_ne!(remote_hash(&k1, &ep), remote_hash(&k2, &ep));
        let other_port = Endpoint {
            port: Some(444),
            ..ep
        };
        assert_ne!(remote_hash(&k1, &ep), remote_hash(&k1, &other_port));
        // IPv4 and its IPv6-mapped form are the same remote
        let mapped = Endpoint {
            ip: ip("::ffff:203.0.113.7"),
            ..ep
        };
        assert_eq!(remote_hash(&k1, &ep), remote_hash(&k1, &mapped));
    }

    #[test]
    fn timestamp_carries_microseconds() {
        let t = Timestamp::new(10, 2_500_000);
        assert_eq!(
            t,
            Timestamp {
                secs: 12,
                usecs: 500_000
            }
        );
        assert_eq!(t.as_micros(), 12_500_000);
    }
}
