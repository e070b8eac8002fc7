//! Shared test fixtures for the formats: sample records, a deterministic
//! random generator, hostile values.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::Header;
use crate::record::{
    Counters, Endpoint, Event, FlowRecord, IdentInfo, IdentStatus, NatKind, Proto, Remote,
    Timestamp,
};

/// SplitMix64: small, deterministic, good enough to spread test inputs.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    pub fn byte(&mut self) -> u8 {
        self.next_u64() as u8
    }

    pub fn chance(&mut self, one_in: u64) -> bool {
        self.below(one_in) == 0
    }
}

pub fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

pub fn ep(s: &str, port: Option<u16>) -> Endpoint {
    Endpoint { ip: ip(s), port }
}

/// 2026-11-21T12:38:12.7Z, daemon.info, from "masqlog" pid 4242.
pub fn header(hostname: Option<&str>) -> Header<'_> {
    Header {
        pri: 30,
        timestamp: Timestamp::new(1_795_264_692, 700_000),
        hostname,
        app: "masqlog",
        pid: 4242,
    }
}

/// The end of a masqueraded IPv4 TCP flow.
pub fn tcp_end() -> FlowRecord {
    FlowRecord {
        event: Event::End,
        nat: NatKind::Snat,
        proto: Proto::Tcp,
        id: Some(3954),
        client: ep("10.99.0.2", Some(40000)),
        masq: ep("192.0.2.1", Some(53500)),
        remote: Remote::Shown(ep("203.0.113.7", Some(443))),
        start: Some(Timestamp::new(1_795_264_662, 123_456)),
        end: Some(Timestamp::new(1_795_264_692, 654_321)),
        out: Some(Counters {
            packets: 5,
            bytes: 400,
        }),
        ident: None,
        inbound: Some(Counters {
            packets: 4,
            bytes: 3000,
        }),
    }
}

/// The start of the same flow: no end time, no counters.
pub fn tcp_start() -> FlowRecord {
    FlowRecord {
        event: Event::Start,
        end: None,
        out: None,
        ident: None,
        inbound: None,
        ..tcp_end()
    }
}

/// A port forward over IPv6 UDP.
pub fn udp6_dnat() -> FlowRecord {
    FlowRecord {
        event: Event::Update,
        nat: NatKind::Dnat,
        proto: Proto::Udp,
        id: Some(u32::MAX),
        client: ep("fd00::2", Some(53)),
        masq: ep("2001:db8::1", Some(5353)),
        remote: Remote::Shown(ep("2001:db8:ffff::7", Some(65535))),
        start: Some(Timestamp::new(0, 0)),
        end: None,
        out: Some(Counters {
            packets: u64::MAX,
            bytes: u64::MAX,
        }),
        ident: None,
        inbound: Some(Counters::default()),
    }
}

/// An ICMP echo, no ports.
pub fn icmp_echo() -> FlowRecord {
    FlowRecord {
        event: Event::End,
        nat: NatKind::Snat,
        proto: Proto::Icmp {
            icmp_type: Some(8),
            code: Some(0),
        },
        id: None,
        client: ep("10.99.0.2", None),
        masq: ep("192.0.2.1", None),
        remote: Remote::Shown(ep("203.0.113.7", None)),
        start: Some(Timestamp::new(1_700_000_000, 1)),
        end: Some(Timestamp::new(1_700_000_030, 999_999)),
        out: Some(Counters {
            packets: 1,
            bytes: 84,
        }),
        ident: None,
        inbound: None,
    }
}

/// GRE (protocol 47) over IPv6, with nothing optional known.
pub fn gre6_minimal() -> FlowRecord {
    FlowRecord {
        event: Event::Start,
        nat: NatKind::Snat,
        proto: Proto::Other(47),
        id: None,
        client: ep("fd00::2", None),
        masq: ep("2001:db8::1", None),
        remote: Remote::Shown(ep("::ffff:192.0.2.9", None)),
        start: None,
        end: None,
        out: None,
        ident: None,
        inbound: None,
    }
}

/// The fixed samples above.
pub fn samples() -> Vec<FlowRecord> {
    vec![
        tcp_end(),
        tcp_start(),
        udp6_dnat(),
        icmp_echo(),
        gre6_minimal(),
    ]
}

fn random_ip(rng: &mut Rng) -> IpAddr {
    if rng.chance(2) {
        IpAddr::V4(Ipv4Addr::from(rng.next_u64() as u32))
    } else {
        let mut segs = [0u16; 8];
        for s in &mut segs {
            // zeros now and then, so that `::` compression shows up
            *s = if rng.chance(3) {
                0
            } else {
                rng.next_u64() as u16
            };
        }
        IpAddr::V6(Ipv6Addr::from(segs))
    }
}

fn random_opt<T>(rng: &mut Rng, f: impl FnOnce(&mut Rng) -> T) -> Option<T> {
    if rng.chance(4) { None } else { Some(f(rng)) }
}

fn random_time(rng: &mut Rng) -> Timestamp {
    // 0000-01-01 .. 9999-12-31
    let secs = rng.below(253_402_300_800 + 62_167_219_200) as i64 - 62_167_219_200;
    Timestamp::new(secs, rng.below(1_000_000) as u32)
}

/// A random record as `FlowRecord::from_conntrack` could build it (ports
/// only for protocols with ports, ICMP type/code only for ICMP).
pub fn random_record(rng: &mut Rng) -> FlowRecord {
    let proto = Proto::from_number(
        [6, 17, 136, 132, 33, 1, 58, 47, 0, 255][rng.below(10) as usize],
        random_opt(rng, Rng::byte),
        random_opt(rng, Rng::byte),
    );
    let endpoint = |rng: &mut Rng| Endpoint {
        ip: random_ip(rng),
        port: if proto.has_ports() {
            random_opt(rng, |r| r.next_u64() as u16)
        } else {
            None
        },
    };
    let client = endpoint(rng);
    let masq = endpoint(rng);
    let remote = endpoint(rng);
    let counters = |r: &mut Rng| Counters {
        packets: r.next_u64() >> r.below(64),
        bytes: r.next_u64() >> r.below(64),
    };
    FlowRecord {
        event: [Event::Start, Event::Update, Event::End, Event::Ident][rng.below(4) as usize],
        nat: if rng.chance(2) {
            NatKind::Snat
        } else {
            NatKind::Dnat
        },
        proto,
        id: random_opt(rng, |r| r.next_u64() as u32),
        client,
        masq,
        remote: Remote::Shown(remote),
        start: random_opt(rng, random_time),
        end: random_opt(rng, random_time),
        out: random_opt(rng, counters),
        inbound: random_opt(rng, counters),
        ident: random_opt(rng, random_ident),
    }
}

/// An IDENT outcome, its byte strings drawn from the hostile values.
pub fn random_ident(rng: &mut Rng) -> IdentInfo {
    let hostile = hostile_values();
    let pick = |r: &mut Rng| hostile[r.below(hostile.len() as u64) as usize].clone();
    IdentInfo {
        status: IdentStatus::ALL[rng.below(IdentStatus::ALL.len() as u64) as usize],
        user: if rng.chance(2) { Some(pick(rng)) } else { None },
        opsys: if rng.chance(2) { Some(pick(rng)) } else { None },
        detail: if rng.chance(2) { Some(pick(rng)) } else { None },
    }
}

/// Values that try to break a line or forge a field.
pub fn hostile_values() -> Vec<Vec<u8>> {
    let mut v: Vec<Vec<u8>> = [
        &b""[..],
        b" ",
        b"a b",
        b"=",
        b"user=root",
        b"x ev=start nat=dnat",
        b"\"",
        b"\"\"",
        b"\\",
        b"\\\"",
        b"\\x41",
        b"\\\\x41",
        b"]",
        b"\\]",
        b"[masqlog@32473 ev=\"start\"]",
        b"masqlog/1 ev=start",
        b"{\"masqlog\":1}",
        b"\n",
        b"line\r\nbreak",
        b"\0",
        b"nul\0inside",
        b"\x7f",
        b"\x1b[31mred\x1b[0m",
        b"\xff",
        b"\xc3",
        b"\xc3\xa9",
        b"caf\xc3\xa9 \xe2\x80\xa8",
        b"\xed\xa0\x80",
        b"\xf0\x9f\x98",
        b"#012",
        b"%s%n",
    ]
    .iter()
    .map(|s| s.to_vec())
    .collect();
    v.push((0..=255u8).collect());
    v.push((0..=255u8).rev().collect());
    let mut rng = Rng::new(99);
    for len in [1, 2, 3, 7, 64, 1000] {
        v.push((0..len).map(|_| rng.byte()).collect());
    }
    v
}
