//! The traffic model: who talks to whom, over what, for how long. A NAT
//! router's day: DNS, HTTPS (TCP and QUIC), some HTTP, NTP, ping, mail and
//! SSH; a few busy clients and a long tail; popular servers and a long
//! tail; most flows short, some lasting hours. Durations are conntrack's
//! (the end line comes when the entry is destroyed: after the UDP timeout,
//! or TCP's TIME_WAIT). The arrival rate follows a day's curve (quiet at
//! night, busiest in the evening).

use std::net::{IpAddr, Ipv4Addr};

use masqlog_core::record::{Counters, Endpoint, Proto};

use super::rng::Rng;

/// Microseconds per second.
pub const SEC: i64 = 1_000_000;

/// The longest flow the model makes: beyond it, a flow is cut short (as
/// conntrack's TCP established timeout would after 5 days, but shorter: the
/// logs span a day).
const MAX_DURATION: f64 = 20.0 * 3600.0;

/// One flow as the model makes it, before the masquerade picks its port.
#[derive(Clone, Debug)]
pub struct Flow {
    pub client_idx: u64,
    pub proto: Proto,
    pub client: Endpoint,
    pub remote: Endpoint,
    /// Microseconds from start to the destroy event.
    pub duration: i64,
    pub out: Counters,
    pub inbound: Counters,
}

pub struct Model {
    pub clients: u64,
    pub remotes: u64,
}

/// The kinds of flow, with their shares (summing to 1).
#[derive(Clone, Copy)]
enum Kind {
    Dns,
    Quic,
    Ntp,
    Https,
    Http,
    OtherTcp,
    Ping,
}

const MIX: [(Kind, f64); 7] = [
    (Kind::Dns, 0.28),
    (Kind::Quic, 0.08),
    (Kind::Ntp, 0.01),
    (Kind::Https, 0.45),
    (Kind::Http, 0.07),
    (Kind::OtherTcp, 0.08),
    (Kind::Ping, 0.03),
];

const RESOLVERS: [Ipv4Addr; 4] = [
    Ipv4Addr::new(9, 9, 9, 9),
    Ipv4Addr::new(1, 1, 1, 1),
    Ipv4Addr::new(8, 8, 8, 8),
    Ipv4Addr::new(194, 25, 2, 129),
];

const OTHER_TCP_PORTS: [u16; 7] = [22, 993, 587, 5222, 8080, 3389, 8443];

impl Model {
    /// The inside address of client `i`: 10.20.0.1, 10.20.0.2, ...
    pub fn client_ip(i: u64) -> Ipv4Addr {
        let i = i as u32;
        Ipv4Addr::new(
            10,
            20 + (i / 64516) as u8,
            ((i / 254) % 254) as u8,
            (i % 254 + 1) as u8,
        )
    }

    /// The address of remote server `i`: spread over the unicast space,
    /// avoiding private and special ranges.
    pub fn remote_ip(i: u64) -> Ipv4Addr {
        let mut h = i.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        h ^= h >> 29;
        h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
        h ^= h >> 32;
        let mut a = 1 + (h % 222) as u8;
        if matches!(a, 10 | 100 | 127 | 169 | 172 | 192 | 198 | 203) {
            a += 1;
        }
        Ipv4Addr::new(
            a,
            (h >> 8) as u8,
            (h >> 16) as u8,
            1 + (h >> 24) as u8 % 254,
        )
    }

    pub fn flow(&self, rng: &mut Rng) -> Flow {
        let client_idx = rng.skewed(self.clients, 2);
        let client_ip = IpAddr::V4(Model::client_ip(client_idx));
        // Linux's ephemeral range, net.ipv4.ip_local_port_range.
        let client_port = rng.range(32768, 60999) as u16;
        let server = IpAddr::V4(Model::remote_ip(rng.skewed(self.remotes, 3)));
        let mut pick = rng.f64();
        let kind = MIX
            .iter()
            .find(|(_, share)| {
                pick -= share;
                pick < 0.0
            })
            .map_or(Kind::Https, |(k, _)| *k);
        // (proto, remote, seconds active, seconds conntrack keeps it after)
        let (proto, remote, active, linger) = match kind {
            Kind::Dns => (
                Proto::Udp,
                (IpAddr::V4(RESOLVERS[rng.skewed(4, 2) as usize]), Some(53)),
                rng.f64() * 0.3,
                30.0,
            ),
            Kind::Quic => (
                Proto::Udp,
                (server, Some(443)),
                rng.lognormal(8.0, 1.3),
                120.0,
            ),
            Kind::Ntp => (Proto::Udp, (server, Some(123)), rng.f64() * 0.1, 30.0),
            Kind::Https => (
                Proto::Tcp,
                (server, Some(443)),
                rng.lognormal(15.0, 1.8),
                120.0,
            ),
            Kind::Http => (
                Proto::Tcp,
                (server, Some(80)),
                rng.lognormal(5.0, 1.5),
                120.0,
            ),
            Kind::OtherTcp => (
                Proto::Tcp,
                (
                    server,
                    Some(OTHER_TCP_PORTS[rng.skewed(OTHER_TCP_PORTS.len() as u64, 2) as usize]),
                ),
                rng.lognormal(60.0, 2.2),
                120.0,
            ),
            Kind::Ping => (
                Proto::Icmp {
                    icmp_type: Some(8),
                    code: Some(0),
                },
                (server, None),
                rng.f64() * 4.0,
                30.0,
            ),
        };
        let active = active.min(MAX_DURATION);
        let duration = ((active + linger) * SEC as f64) as i64 + rng.range(0, 999_999) as i64;
        let ports = proto.has_ports();
        // Packets and bytes: a handful for a query, more the longer it runs.
        let out_pkts = match kind {
            Kind::Dns | Kind::Ntp => 1,
            Kind::Ping => 1 + active as u64,
            _ => 3 + (active * rng.lognormal(2.0, 1.0)) as u64,
        };
        let in_pkts = match kind {
            Kind::Dns | Kind::Ntp | Kind::Ping => out_pkts,
            _ => (out_pkts as f64 * (0.8 + rng.f64())) as u64 + 1,
        };
        let out = Counters {
            packets: out_pkts,
            bytes: out_pkts * rng.range(52, 600),
        };
        let inbound = Counters {
            packets: in_pkts,
            bytes: in_pkts * rng.range(52, 1400),
        };
        Flow {
            client_idx,
            proto,
            client: Endpoint {
                ip: client_ip,
                port: ports.then_some(client_port),
            },
            remote: Endpoint {
                ip: remote.0,
                port: remote.1,
            },
            duration,
            out,
            inbound,
        }
    }
}

/// The day's curve: flow `x` of the span (0..1 evenly) starts at this
/// fraction of it. The arrival density is `1 + A cos(2 pi (x - PEAK))`:
/// 0.4 of the mean at 04:00, 1.6 at 16:00 (for a span starting at midnight).
pub fn diurnal(y: f64) -> f64 {
    const A: f64 = 0.6;
    const PEAK: f64 = 0.67;
    let tau = std::f64::consts::TAU;
    let cdf = |x: f64| x + A / tau * ((tau * (x - PEAK)).sin() + (tau * PEAK).sin());
    let density = |x: f64| 1.0 + A * (tau * (x - PEAK)).cos();
    let mut x = y;
    for _ in 0..8 {
        x = (x - (cdf(x) - y) / density(x)).clamp(0.0, 1.0);
    }
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mix_sums_to_one() {
        let s: f64 = MIX.iter().map(|(_, s)| s).sum();
        assert!((s - 1.0).abs() < 1e-9);
    }

    #[test]
    fn diurnal_is_monotone_and_keeps_the_ends() {
        assert!(diurnal(0.0).abs() < 1e-9);
        assert!((diurnal(1.0) - 1.0).abs() < 1e-9);
        let mut last = 0.0;
        for i in 1..=1000 {
            let x = diurnal(f64::from(i) / 1000.0);
            assert!(x >= last);
            last = x;
        }
        // Quiet at night: the first 10 % of flows take more than 10 % of the day.
        assert!(diurnal(0.1) > 0.12);
    }

    #[test]
    fn addresses_are_as_described() {
        assert_eq!(Model::client_ip(0), Ipv4Addr::new(10, 20, 0, 1));
        assert_eq!(Model::client_ip(254), Ipv4Addr::new(10, 20, 1, 1));
        for i in 0..10_000 {
            let a = Model::remote_ip(i);
            assert!(
                !a.is_private() && !a.is_loopback() && !a.is_unspecified(),
                "{a}"
            );
            assert!(a.octets()[0] < 224, "{a}");
        }
    }

    #[test]
    fn flows_are_plausible() {
        let m = Model {
            clients: 100,
            remotes: 1000,
        };
        let mut rng = Rng::new(9);
        for _ in 0..10_000 {
            let f = m.flow(&mut rng);
            assert!(f.duration >= 30 * SEC, "{f:?}");
            assert!(f.duration <= (MAX_DURATION as i64 + 121) * SEC, "{f:?}");
            assert_eq!(f.client.port.is_some(), f.proto.has_ports());
            assert!(f.client_idx < 100);
        }
    }
}
