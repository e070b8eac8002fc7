//! The router's own use of ports (`net.ipv4.ip_local_port_range`,
//! `net.ipv4.ip_local_reserved_ports`) and the warnings a plan earns when its
//! blocks overlap them.
//!
//! A port in a client's block that the router itself also uses, for its own
//! outgoing connections (the ephemeral range) or for a local service (the
//! reserved ports), makes a report naming that port ambiguous: it may have
//! been the router, not the client.

use std::fs;

use super::net::PortRange;
use super::plan::{Plan, SMALL_BLOCK};

/// Where the kernel publishes them (per network namespace).
pub const PORT_RANGE_PATH: &str = "/proc/sys/net/ipv4/ip_local_port_range";
pub const RESERVED_PATH: &str = "/proc/sys/net/ipv4/ip_local_reserved_ports";

/// The local port settings of this machine (or of the network namespace the
/// process runs in).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LocalPorts {
    /// `ip_local_port_range`: the ports the router picks for its own
    /// outgoing connections. `None` when unreadable.
    pub ephemeral: Option<PortRange>,
    /// `ip_local_reserved_ports`.
    pub reserved: Vec<PortRange>,
}

impl LocalPorts {
    /// Reads both sysctls; what cannot be read is left empty (a plan may be
    /// made on a machine other than the router).
    pub fn read() -> LocalPorts {
        LocalPorts {
            ephemeral: fs::read_to_string(PORT_RANGE_PATH)
                .ok()
                .and_then(|s| parse_port_range(&s)),
            reserved: fs::read_to_string(RESERVED_PATH)
                .map(|s| parse_reserved(&s))
                .unwrap_or_default(),
        }
    }
}

/// `32768\t60999` (white-space separated).
pub fn parse_port_range(s: &str) -> Option<PortRange> {
    let mut it = s.split_whitespace();
    let lo = it.next()?.parse().ok()?;
    let hi = it.next()?.parse().ok()?;
    PortRange::new(lo, hi).ok()
}

/// `8080,9000-9010` (comma separated ports and ranges; empty for none).
/// Items that do not parse are skipped.
pub fn parse_reserved(s: &str) -> Vec<PortRange> {
    s.trim()
        .split(',')
        .filter(|i| !i.trim().is_empty())
        .filter_map(|i| i.parse().ok())
        .collect()
}

fn clients(n: usize) -> String {
    if n == 1 {
        "1 client".into()
    } else {
        format!("{n} clients")
    }
}

/// The warnings for a plan on a machine with these local port settings, one
/// sentence each.
pub fn warnings(plan: &Plan, local: &LocalPorts) -> Vec<String> {
    let mut out = Vec::new();
    let clients_in = |r: &PortRange| plan.blocks.iter().filter(|b| b.range().overlaps(r)).count();
    if let Some(eph) = local.ephemeral {
        let n = clients_in(&eph);
        if n > 0 {
            out.push(format!(
                "the blocks of {} overlap this machine's ip_local_port_range {eph}: \
                 the router's own connections from a public address may use those ports too, \
                 so a report naming one of them could be the router; move the range \
                 (sysctl net.ipv4.ip_local_port_range) or choose --ports outside it",
                clients(n)
            ));
        }
    }
    for r in &local.reserved {
        let n = clients_in(r);
        if n > 0 {
            out.push(format!(
                "ports {r} are in ip_local_reserved_ports (kept for local services) and in the \
                 blocks of {}: a report naming one of them could be a service of the \
                 router; choose --ports outside them",
                clients(n)
            ));
        }
    }
    if let Some(span) = plan.used_span()
        && span.lo < 1024
    {
        out.push(format!(
            "blocks reach down to port {}: ports below 1024 are the well-known ports of \
                 services, and remote firewalls may treat them so; start --ports at 1024 or above",
            span.lo
        ));
    }
    if plan.params.per_client < SMALL_BLOCK {
        out.push(format!(
            "{} ports per client: a client can then hold at most {} connections to one remote \
             address and port at a time (and a closed TCP port waits in TIME_WAIT for two minutes)",
            plan.params.per_client, plan.params.per_client
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::portblock::plan::{Method, PlanInput};

    fn plan(ports: &str, per_client: u32) -> Plan {
        Plan::new(&PlanInput {
            internal: vec!["10.8.0.0/29".parse().unwrap()],
            public: vec!["192.0.2.1".parse().unwrap()],
            ports: ports.parse().unwrap(),
            per_client: Some(per_client),
            method: Method::Nft,
            table: None,
            oif: None,
            include_first: false,
        })
        .unwrap()
    }

    #[test]
    fn parses_sysctls() {
        assert_eq!(
            parse_port_range("32768\t60999\n"),
            Some(PortRange {
                lo: 32768,
                hi: 60999
            })
        );
        assert_eq!(parse_port_range("garbage"), None);
        assert_eq!(parse_reserved("\n"), vec![]);
        assert_eq!(
            parse_reserved("8080,9000-9010\n"),
            vec![
                PortRange { lo: 8080, hi: 8080 },
                PortRange { lo: 9000, hi: 9010 }
            ]
        );
    }

    #[test]
    fn warns_on_overlap_with_the_ephemeral_range() {
        let local = LocalPorts {
            ephemeral: Some(PortRange {
                lo: 32768,
                hi: 60999,
            }),
            reserved: vec![],
        };
        // Blocks of 256 from the top: 5 clients, 64256-65535: clear of it.
        assert!(warnings(&plan("1280-65535", 256), &local).is_empty());
        // Blocks of 8192: 65535 down to 24576; four of the five cross 32768-60999.
        let w = warnings(&plan("1280-65535", 8192), &local);
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].contains("blocks of 4 clients") && w[0].contains("32768-60999"),
            "{w:?}"
        );
    }

    #[test]
    fn warns_on_reserved_low_and_small() {
        let local = LocalPorts {
            ephemeral: None,
            reserved: vec![PortRange {
                lo: 65000,
                hi: 65000,
            }],
        };
        let w = warnings(&plan("1280-65535", 256), &local);
        assert!(
            w.iter()
                .any(|w| w.contains("ports 65000-65000") && w.contains("blocks of 1 client:")),
            "{w:?}"
        );
        let w = warnings(&plan("512-767", 32), &LocalPorts::default());
        assert!(w.iter().any(|w| w.contains("below 1024")), "{w:?}");
        assert!(w.iter().any(|w| w.contains("32 ports per client")), "{w:?}");
    }
}
