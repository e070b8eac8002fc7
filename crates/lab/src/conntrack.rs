//! What the kernel says: `conntrack -E -e NEW,DESTROY -o timestamp,extended,id`
//! in the router, written to a file and parsed, as the reference that
//! masqlog's lines are compared with.
//!
//! A line looks like (conntrack-tools 1.4.7):
//! ```text
//! [1795464944.357721]  [DESTROY] ipv4     2 tcp      6 TIME_WAIT src=10.99.0.2 dst=203.0.113.7
//!   sport=40001 dport=8080 packets=6 bytes=1320 src=203.0.113.7 dst=203.0.113.1 sport=8080
//!   dport=40001 packets=4 bytes=3216 [ASSURED] delta-time=1 id=1209088644
//! ```
//! The first `src=` opens the original tuple, the second the reply tuple.
//! The bracketed time is when conntrack received the event.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::flow::{Family, FlowProto};
use crate::process::{self, Supervised};
use crate::topology::{Lab, Role, SHORT_WAIT};
use crate::{LabError, rsyslog, wait};
use masqlog_core::record::Timestamp;

/// The kind of a conntrack event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CtKind {
    New,
    Update,
    Destroy,
}

/// One direction of a conntrack entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CtTuple {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub sport: Option<u16>,
    pub dport: Option<u16>,
    /// Counters (DESTROY events with nf_conntrack_acct=1).
    pub packets: Option<u64>,
    pub bytes: Option<u64>,
}

/// One parsed `conntrack -E` line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CtEvent {
    pub kind: CtKind,
    /// When conntrack received the event.
    pub time: Option<Timestamp>,
    pub family: Family,
    /// The protocol name conntrack prints (tcp, udp, icmp, ...).
    pub proto: String,
    pub proto_num: u8,
    pub orig: CtTuple,
    pub reply: CtTuple,
    pub id: Option<u32>,
    /// `delta-time=` of DESTROY events: seconds the entry lived.
    pub delta_time: Option<u64>,
    /// The line as conntrack printed it.
    pub line: String,
}

#[derive(Default)]
struct TupleBuilder {
    src: Option<IpAddr>,
    dst: Option<IpAddr>,
    sport: Option<u16>,
    dport: Option<u16>,
    packets: Option<u64>,
    bytes: Option<u64>,
}

impl TupleBuilder {
    fn build(self) -> Option<CtTuple> {
        Some(CtTuple {
            src: self.src?,
            dst: self.dst?,
            sport: self.sport,
            dport: self.dport,
            packets: self.packets,
            bytes: self.bytes,
        })
    }
}

fn parse_time(tok: &str) -> Option<Timestamp> {
    let inner = tok.strip_prefix('[')?.strip_suffix(']')?;
    let (s, us) = inner.split_once('.')?;
    let usecs: u32 = format!("{us:0<6}").get(..6)?.parse().ok()?;
    Some(Timestamp::new(s.parse().ok()?, usecs))
}

impl CtEvent {
    /// Parses one line; `None` for anything else (banners, summaries).
    pub fn parse(line: &str) -> Option<CtEvent> {
        let mut toks = line.split_whitespace().peekable();
        let time = match toks.peek() {
            Some(t) if t.starts_with('[') && t[1..].starts_with(|c: char| c.is_ascii_digit()) => {
                let t = parse_time(t);
                toks.next();
                t
            }
            _ => None,
        };
        let kind = match toks.next()? {
            "[NEW]" => CtKind::New,
            "[UPDATE]" => CtKind::Update,
            "[DESTROY]" => CtKind::Destroy,
            _ => return None,
        };
        let family = match toks.next()? {
            "ipv4" => Family::V4,
            "ipv6" => Family::V6,
            _ => return None,
        };
        toks.next()?; // family number
        let proto = toks.next()?.to_string();
        let proto_num: u8 = toks.next()?.parse().ok()?;
        let mut orig = TupleBuilder::default();
        let mut reply = TupleBuilder::default();
        let mut in_reply = false;
        let mut id = None;
        let mut delta_time = None;
        for tok in toks {
            let Some((k, v)) = tok.split_once('=') else {
                continue;
            };
            if k == "src" && orig.src.is_some() {
                in_reply = true;
            }
            let t = if in_reply { &mut reply } else { &mut orig };
            match k {
                "src" => t.src = v.parse().ok(),
                "dst" => t.dst = v.parse().ok(),
                "sport" => t.sport = v.parse().ok(),
                "dport" => t.dport = v.parse().ok(),
                "packets" => t.packets = v.parse().ok(),
                "bytes" => t.bytes = v.parse().ok(),
                "id" => id = v.parse().ok(),
                "delta-time" => delta_time = v.parse().ok(),
                _ => {}
            }
        }
        Some(CtEvent {
            kind,
            time,
            family,
            proto,
            proto_num,
            orig: orig.build()?,
            reply: reply.build()?,
            id,
            delta_time,
            line: line.to_string(),
        })
    }

    /// Whether this is an event of the flow from `client`:`sport` over
    /// `proto`.
    pub fn is_flow(&self, client: IpAddr, sport: u16, proto: FlowProto) -> bool {
        self.orig.src == client && self.orig.sport == Some(sport) && self.proto == proto.name()
    }
}

/// The source address of the probe entries that tell when `conntrack -E`
/// listens (TEST-NET-2; never routed, only inserted into the table).
const PROBE_SRC: &str = "198.51.100.250";
const PROBE_DST: &str = "198.51.100.251";

/// A running `conntrack -E` in the router.
#[derive(Debug)]
pub struct ConntrackWatch {
    proc: Supervised,
    path: PathBuf,
    router_ns: String,
}

impl ConntrackWatch {
    /// Starts the watcher and returns once it receives events: inserts
    /// probe entries (UDP, TEST-NET-2) until one shows up, then deletes them.
    pub fn start(lab: &Lab) -> Result<ConntrackWatch, LabError> {
        let proc = lab.spawn(
            Some(Role::Router),
            "conntrack-events",
            &[
                "conntrack",
                "-E",
                "-e",
                "NEW,DESTROY",
                "-o",
                "timestamp,extended,id",
                // DESTROY events come in bursts (the kernel's garbage
                // collector): room for some 30000 of them
                "-b",
                "8388608",
            ],
        )?;
        // The events are its stdout: `<lab dir>/conntrack-events.out`.
        let out = proc.output_path().to_path_buf();
        let mut w = ConntrackWatch {
            proc,
            path: out,
            router_ns: lab.ns(Role::Router),
        };
        w.wait_listening()?;
        Ok(w)
    }

    fn wait_listening(&mut self) -> Result<(), LabError> {
        let ns = self.router_ns.clone();
        let mut port: u16 = 1000;
        let mut last_probe: Option<Instant> = None;
        let result = wait::poll("conntrack -E to receive events", SHORT_WAIT, || {
            if let Some(status) = self.proc.try_wait()? {
                return Err(LabError::Exited {
                    name: "conntrack -E".into(),
                    status: process::describe_status(status),
                    log: process::tail(&self.proc.output(), 10),
                });
            }
            let needle = format!("sport={port} ");
            if self.events().iter().any(|e| e.line.contains(&needle)) {
                return Ok(Some(()));
            }
            if last_probe.is_none_or(|t| t.elapsed() > Duration::from_millis(300)) {
                port += 1;
                let p = port.to_string();
                process::run(
                    &[
                        "conntrack",
                        "-I",
                        "-p",
                        "udp",
                        "-s",
                        PROBE_SRC,
                        "-d",
                        PROBE_DST,
                        "--sport",
                        &p,
                        "--dport",
                        "9",
                        "-t",
                        "5",
                    ],
                    Some(&ns),
                )?;
                last_probe = Some(Instant::now());
            }
            Ok(None)
        });
        let _ = process::run_quiet(&["conntrack", "-D", "-s", PROBE_SRC], Some(&ns));
        result
    }

    /// The event file.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// Every complete event so far.
    pub fn events(&self) -> Vec<CtEvent> {
        rsyslog::read_lines(&self.path)
            .iter()
            .filter_map(|l| CtEvent::parse(l))
            .collect()
    }

    /// The events of one flow (NEW first), by client address, source port
    /// and protocol.
    pub fn flow_events(&self, client: IpAddr, sport: u16, proto: FlowProto) -> Vec<CtEvent> {
        self.events()
            .into_iter()
            .filter(|e| e.is_flow(client, sport, proto))
            .collect()
    }

    /// Waits for an event that `pred` accepts. Lists the table every half
    /// second meanwhile so that expired entries are destroyed at once (see
    /// [`Lab::reap_expired`]).
    pub fn wait_for(
        &mut self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&CtEvent) -> bool,
    ) -> Result<CtEvent, LabError> {
        let ns = self.router_ns.clone();
        let mut last_reap = Instant::now();
        wait::poll(what, timeout, || {
            if let Some(e) = self.events().into_iter().find(|e| pred(e)) {
                return Ok(Some(e));
            }
            if let Some(status) = self.proc.try_wait()? {
                return Err(LabError::Exited {
                    name: "conntrack -E".into(),
                    status: process::describe_status(status),
                    log: process::tail(&self.proc.output(), 10),
                });
            }
            if last_reap.elapsed() > Duration::from_millis(500) {
                process::run_quiet(&["conntrack", "-L"], Some(&ns))?;
                last_reap = Instant::now();
            }
            Ok(None)
        })
    }

    /// Waits for the DESTROY event of a flow.
    pub fn wait_destroy(
        &mut self,
        client: IpAddr,
        sport: u16,
        proto: FlowProto,
        timeout: Duration,
    ) -> Result<CtEvent, LabError> {
        let what = format!(
            "the DESTROY event of {} {client} port {sport}",
            proto.name()
        );
        let found = self.wait_for(&what, timeout, |e| {
            e.kind == CtKind::Destroy && e.is_flow(client, sport, proto)
        });
        match found {
            Err(LabError::Timeout { what, secs }) => Err(LabError::Timeout {
                what: format!("{what} ({})", self.why_no_destroy(client, sport, proto)),
                secs,
            }),
            other => other,
        }
    }

    /// Waits until none of `flows` (client, source port, protocol) is in
    /// the kernel's table any more. Listing the table destroys expired
    /// entries at once, so this does not depend on the kernel's garbage
    /// collection, nor on this listener having received every event.
    pub fn wait_gone(
        &self,
        flows: &[(IpAddr, u16, FlowProto)],
        timeout: Duration,
    ) -> Result<(), LabError> {
        let what = format!("{} flows to leave the kernel's table", flows.len());
        wait::poll(&what, timeout, || {
            let table = self.table()?;
            let left = flows.iter().any(|&(client, sport, proto)| {
                entries_of(&table, client, sport, proto).next().is_some()
            });
            Ok((!left).then_some(()))
        })
    }

    /// The router's conntrack table, IPv4 and IPv6 (`conntrack -L` lists
    /// one family at a time). Listing it destroys expired entries.
    fn table(&self) -> Result<String, LabError> {
        let mut table = String::new();
        for family in ["ipv4", "ipv6"] {
            let out =
                process::run_quiet(&["conntrack", "-L", "-f", family], Some(&self.router_ns))?;
            table.push_str(&String::from_utf8_lossy(&out.stdout));
        }
        Ok(table)
    }

    /// What the event file and the kernel's table say of a flow whose
    /// DESTROY event did not come: whether its NEW event was seen, whether
    /// the kernel still holds it (and in which state), and whether the
    /// listener lost events.
    fn why_no_destroy(&self, client: IpAddr, sport: u16, proto: FlowProto) -> String {
        let seen = self.flow_events(client, sport, proto).len();
        let lost = rsyslog::read_lines(&self.path)
            .iter()
            .filter(|l| l.contains("ENOBUFS"))
            .count();
        let table = match self.table() {
            Ok(t) => {
                let held: Vec<&str> = entries_of(&t, client, sport, proto).collect();
                if held.is_empty() {
                    "not in the kernel's table".to_string()
                } else {
                    format!("in the kernel's table: {}", held.join("; "))
                }
            }
            Err(e) => format!("conntrack -L failed: {e}"),
        };
        format!("{seen} events of it seen; {table}; {lost} ENOBUFS warnings from the listener")
    }
}

/// The lines of a `conntrack -L` listing that hold a flow: its protocol,
/// and the client's address and source port in a tuple.
fn entries_of(
    table: &str,
    client: IpAddr,
    sport: u16,
    proto: FlowProto,
) -> impl Iterator<Item = &str> {
    let (src, port) = (format!(" src={client} "), format!(" sport={sport} "));
    table
        .lines()
        .filter(move |l| l.starts_with(proto.name()) && l.contains(&src) && l.contains(&port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listing_holds_a_flow_by_protocol_client_and_source_port() {
        let table = "tcp      6 117 TIME_WAIT src=10.99.0.2 dst=203.0.113.7 sport=40000 dport=8080 src=203.0.113.7 dst=203.0.113.1 sport=8080 dport=40000 [ASSURED] mark=0 use=1\n\
                     udp      17 1 src=2001:db8:99::2 dst=2001:db8:113::7 sport=40001 dport=8081 src=2001:db8:113::7 dst=2001:db8:99::2 sport=8081 dport=40001 mark=0 use=1\n";
        let v4: IpAddr = "10.99.0.2".parse().unwrap();
        let v6: IpAddr = "2001:db8:99::2".parse().unwrap();
        assert_eq!(entries_of(table, v4, 40000, FlowProto::Tcp).count(), 1);
        assert_eq!(entries_of(table, v6, 40001, FlowProto::Udp).count(), 1);
        assert_eq!(entries_of(table, v4, 40000, FlowProto::Udp).count(), 0);
        assert_eq!(entries_of(table, v4, 40001, FlowProto::Tcp).count(), 0);
        assert_eq!(entries_of(table, v6, 40000, FlowProto::Tcp).count(), 0);
    }

    #[test]
    fn a_destroy_line_parses_into_both_tuples() {
        let l = "[1795464944.357721]\t[DESTROY] ipv4     2 tcp      6 TIME_WAIT src=10.99.0.2 dst=203.0.113.7 sport=40001 dport=8080 packets=6 bytes=1320 src=203.0.113.7 dst=203.0.113.1 sport=8080 dport=40001 packets=4 bytes=3216 [ASSURED] delta-time=1 id=1209088644";
        let e = CtEvent::parse(l).unwrap();
        assert_eq!(e.kind, CtKind::Destroy);
        assert_eq!(e.time, Some(Timestamp::new(1795464944, 357721)));
        assert_eq!(e.family, Family::V4);
        assert_eq!((e.proto.as_str(), e.proto_num), ("tcp", 6));
        assert_eq!(e.orig.src, "10.99.0.2".parse::<IpAddr>().unwrap());
        assert_eq!(e.orig.sport, Some(40001));
        assert_eq!((e.orig.packets, e.orig.bytes), (Some(6), Some(1320)));
        assert_eq!(e.reply.dst, "203.0.113.1".parse::<IpAddr>().unwrap());
        assert_eq!(e.reply.dport, Some(40001));
        assert_eq!((e.reply.packets, e.reply.bytes), (Some(4), Some(3216)));
        assert_eq!(e.id, Some(1209088644));
        assert_eq!(e.delta_time, Some(1));
        assert!(e.is_flow("10.99.0.2".parse().unwrap(), 40001, FlowProto::Tcp));
    }

    #[test]
    fn a_new_ipv6_udp_line_parses() {
        let l = "[1795464943.131794]\t    [NEW] ipv6     10 udp      17 2 src=fd99::2 dst=2001:db8:113::7 sport=40004 dport=8081 [UNREPLIED] src=2001:db8:113::7 dst=2001:db8:113::1 sport=8081 dport=40004 id=1075592853";
        let e = CtEvent::parse(l).unwrap();
        assert_eq!(e.kind, CtKind::New);
        assert_eq!(e.family, Family::V6);
        assert_eq!(e.reply.dst, "2001:db8:113::1".parse::<IpAddr>().unwrap());
        assert_eq!(e.orig.bytes, None);
        assert_eq!(e.id, Some(1075592853));
    }

    #[test]
    fn other_lines_are_ignored() {
        assert_eq!(
            CtEvent::parse("conntrack v1.4.7 (conntrack-tools): 3 flow events have been shown."),
            None
        );
        assert_eq!(CtEvent::parse(""), None);
    }
}
