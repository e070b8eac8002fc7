//! Traffic through the NAT: socat servers in the server namespace and
//! client flows from the client namespace, run as a local user.
//!
//! A TCP flow sends N bytes, half-closes (after holding the connection open
//! for [`FlowSpec::hold`], zero unless asked), and reads the server's M bytes
//! until the server closes. A UDP flow sends one datagram of N bytes and
//! reads the one datagram of M bytes that comes back. The client binds a
//! known source port (`sourceport=`), so the flow can be found in
//! conntrack's events and masqlog's lines.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use crate::process::{self, Supervised};
use crate::topology::{Lab, Role, SHORT_WAIT, client_addr, server_addr};
use crate::{LabError, users, wait};
use masqlog_core::record::Timestamp;

/// IPv4 or IPv6.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    pub const ALL: [Family; 2] = [Family::V4, Family::V6];

    /// `ipv4` or `ipv6`, as conntrack prints it.
    pub fn name(self) -> &'static str {
        match self {
            Family::V4 => "ipv4",
            Family::V6 => "ipv6",
        }
    }

    /// The IP header size without options (what conntrack counts per
    /// packet on top of the transport).
    pub fn ip_header(self) -> u64 {
        match self {
            Family::V4 => 20,
            Family::V6 => 40,
        }
    }

    fn socat_digit(self) -> &'static str {
        match self {
            Family::V4 => "4",
            Family::V6 => "6",
        }
    }
}

/// The transport of a lab flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FlowProto {
    Tcp,
    Udp,
}

impl FlowProto {
    pub const ALL: [FlowProto; 2] = [FlowProto::Tcp, FlowProto::Udp];

    /// `tcp` or `udp`, as conntrack and masqlog write it.
    pub fn name(self) -> &'static str {
        match self {
            FlowProto::Tcp => "tcp",
            FlowProto::Udp => "udp",
        }
    }
}

/// The largest UDP payload a lab flow uses (one unfragmented datagram).
pub const MAX_UDP_PAYLOAD: usize = 1400;

/// A server's address in socat's syntax (`[v6]` in brackets).
fn socat_host(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(a) => a.to_string(),
        IpAddr::V6(a) => format!("[{a}]"),
    }
}

/// A socat server in the server namespace that answers every TCP
/// connection (after the client's half-close) or UDP datagram with
/// `reply_bytes` zero bytes.
#[derive(Debug)]
pub struct Server {
    proc: Supervised,
    pub proto: FlowProto,
    pub family: Family,
    pub port: u16,
    pub reply_bytes: usize,
}

impl Server {
    /// Starts the server and waits until it listens.
    pub fn start(
        lab: &Lab,
        proto: FlowProto,
        family: Family,
        port: u16,
        reply_bytes: usize,
    ) -> Result<Server, LabError> {
        if proto == FlowProto::Udp && reply_bytes > MAX_UDP_PAYLOAD {
            return Err(LabError::Flow {
                flow: format!("udp server port {port}"),
                problem: format!("reply of {reply_bytes} bytes is over {MAX_UDP_PAYLOAD}"),
            });
        }
        let host = socat_host(server_addr(family));
        let d = family.socat_digit();
        let v6only = if family == Family::V6 {
            ",ipv6only=1"
        } else {
            ""
        };
        let (listen, system) = match proto {
            FlowProto::Tcp => (
                format!("TCP{d}-LISTEN:{port},bind={host},reuseaddr,fork{v6only}"),
                format!("SYSTEM:cat >/dev/null; head -c {reply_bytes} /dev/zero"),
            ),
            // The reply, then the datagram read and thrown away: a command
            // that never reads its input can end before socat hands it the
            // datagram, and socat's child then fails on the closed pipe
            // (EPIPE) without sending the reply (seen on a busy machine).
            // `exec` closes the reply's pipe, which ends the exchange.
            FlowProto::Udp => (
                format!("UDP{d}-RECVFROM:{port},bind={host},fork{v6only}"),
                format!("SYSTEM:head -c {reply_bytes} /dev/zero; exec cat >/dev/null"),
            ),
        };
        let name = format!("server-{}{}-{port}", proto.name(), family.socat_digit());
        let mut proc = lab.spawn(Some(Role::Server), &name, &["socat", &listen, &system])?;
        let ns = lab.ns(Role::Server);
        let flags = match proto {
            FlowProto::Tcp => "-Hltn",
            FlowProto::Udp => "-Hlun",
        };
        let filter = format!("sport = :{port}");
        let ip = server_addr(family).to_string();
        wait::poll(&format!("{name} to listen"), SHORT_WAIT, || {
            if let Some(status) = proc.try_wait()? {
                return Err(LabError::Exited {
                    name: name.clone(),
                    status: process::describe_status(status),
                    log: process::tail(&proc.output(), 10),
                });
            }
            let out = process::run_with(&["ss", flags, &filter], Some(&ns), None, SHORT_WAIT)?;
            Ok(String::from_utf8_lossy(&out.stdout)
                .contains(&ip)
                .then_some(()))
        })?;
        Ok(Server {
            proc,
            proto,
            family,
            port,
            reply_bytes,
        })
    }

    /// The server's address.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::new(server_addr(self.family), self.port)
    }

    /// socat's output (errors only).
    pub fn output(&self) -> String {
        self.proc.output()
    }
}

/// One client flow.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowSpec {
    /// The local user who runs the client.
    pub user: String,
    pub proto: FlowProto,
    pub family: Family,
    /// The client's source port (bound by socat).
    pub sport: u16,
    /// The server's port.
    pub dport: u16,
    /// Bytes the client sends.
    pub send_bytes: usize,
    /// Bytes the server answers with (checked).
    pub reply_bytes: usize,
    /// TCP: how long the client keeps the connection open after sending,
    /// before it half-closes (so that an identd asked about the flow still
    /// finds it); zero by default. Ignored for UDP.
    pub hold: Duration,
}

impl FlowSpec {
    /// A flow to `server` from a fresh source port of the lab.
    pub fn to(lab: &Lab, server: &Server, user: &str, send_bytes: usize) -> FlowSpec {
        FlowSpec {
            user: user.to_string(),
            proto: server.proto,
            family: server.family,
            sport: lab.next_port(),
            dport: server.port,
            send_bytes,
            reply_bytes: server.reply_bytes,
            hold: Duration::ZERO,
        }
    }

    /// The same flow, holding its TCP connection open for `hold` after
    /// sending (see [`FlowSpec::hold`]).
    pub fn holding(mut self, hold: Duration) -> FlowSpec {
        self.hold = hold;
        self
    }

    /// The client's address and source port.
    pub fn client(&self) -> SocketAddr {
        SocketAddr::new(client_addr(self.family), self.sport)
    }

    /// The server's address and port.
    pub fn remote(&self) -> SocketAddr {
        SocketAddr::new(server_addr(self.family), self.dport)
    }

    /// `alice tcp 10.99.0.2:40000 -> 203.0.113.7:8080`
    pub fn label(&self) -> String {
        format!(
            "{} {} {} -> {}",
            self.user,
            self.proto.name(),
            self.client(),
            self.remote()
        )
    }

    /// The exact byte counts conntrack reports for a UDP flow, (out, in):
    /// one datagram each way, payload plus IP and UDP headers. `None` for
    /// TCP, whose packet count depends on the exchange.
    pub fn udp_bytes(&self) -> Option<(u64, u64)> {
        (self.proto == FlowProto::Udp).then(|| {
            let h = self.family.ip_header() + 8;
            (self.send_bytes as u64 + h, self.reply_bytes as u64 + h)
        })
    }

    fn script(&self) -> String {
        let remote = self.remote();
        let d = self.family.socat_digit();
        let addr = format!("{}:{}", socat_host(remote.ip()), remote.port());
        let (kind, wait_secs, until) = match self.proto {
            FlowProto::Tcp => ("TCP", 10, String::new()),
            // UDP has no end: socat ends when the whole reply is in
            // (`readbytes` makes that its end of input), or after 20 s
            // without it (a server's fork on a busy 2-core machine took
            // more than 2 s).
            FlowProto::Udp if self.reply_bytes > 0 => {
                ("UDP", 20, format!(",readbytes={}", self.reply_bytes))
            }
            FlowProto::Udp => ("UDP", 2, String::new()),
        };
        let source = if self.proto == FlowProto::Tcp && !self.hold.is_zero() {
            // The client's stdin stays open while sleep runs: socat half-closes
            // only after it, so the connection lives at least that long.
            format!(
                "(head -c {} /dev/zero; sleep {}.{:03})",
                self.send_bytes,
                self.hold.as_secs(),
                self.hold.subsec_millis()
            )
        } else {
            format!("head -c {} /dev/zero", self.send_bytes)
        };
        format!(
            "{source} | socat -t {wait_secs} - '{kind}{d}:{addr},sourceport={}{until}'",
            self.sport
        )
    }
}

/// What a flow did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowResult {
    pub spec: FlowSpec,
    /// Bytes the client received.
    pub received: usize,
    /// Wall-clock time just before the client started.
    pub began: Timestamp,
    /// Wall-clock time just after the client ended.
    pub finished: Timestamp,
}

/// Runs a flow as `spec.user` (created if missing) from the client
/// namespace; fails unless the reply has the expected size.
pub fn run(lab: &Lab, spec: &FlowSpec) -> Result<FlowResult, LabError> {
    if spec.proto == FlowProto::Udp && spec.send_bytes > MAX_UDP_PAYLOAD {
        return Err(LabError::Flow {
            flow: spec.label(),
            problem: format!("{} bytes is over {MAX_UDP_PAYLOAD}", spec.send_bytes),
        });
    }
    users::ensure_user(&spec.user)?;
    let script = spec.script();
    let ns = lab.ns(Role::Client);
    let began = Timestamp::now();
    let out = process::run_with(
        &["su", &spec.user, "-s", "/bin/sh", "-c", &script],
        Some(&ns),
        None,
        Duration::from_secs(30),
    )?;
    let finished = Timestamp::now();
    if !out.status.success() || out.stdout.len() != spec.reply_bytes {
        return Err(LabError::Flow {
            flow: spec.label(),
            problem: format!(
                "received {} of {} bytes ({}): {}",
                out.stdout.len(),
                spec.reply_bytes,
                process::describe_status(out.status),
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        });
    }
    Ok(FlowResult {
        spec: spec.clone(),
        received: out.stdout.len(),
        began,
        finished,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(proto: FlowProto, family: Family) -> FlowSpec {
        FlowSpec {
            user: "alice".into(),
            proto,
            family,
            sport: 40001,
            dport: 8080,
            send_bytes: 100,
            reply_bytes: 300,
            hold: Duration::ZERO,
        }
    }

    #[test]
    fn scripts_bind_the_source_port_and_bracket_ipv6() {
        assert_eq!(
            spec(FlowProto::Tcp, Family::V4).script(),
            "head -c 100 /dev/zero | socat -t 10 - 'TCP4:203.0.113.7:8080,sourceport=40001'"
        );
        assert_eq!(
            spec(FlowProto::Udp, Family::V6).script(),
            "head -c 100 /dev/zero | socat -t 20 - 'UDP6:[2001:db8:113::7]:8080,sourceport=40001,readbytes=300'"
        );
        let mut no_reply = spec(FlowProto::Udp, Family::V4);
        no_reply.reply_bytes = 0;
        assert_eq!(
            no_reply.script(),
            "head -c 100 /dev/zero | socat -t 2 - 'UDP4:203.0.113.7:8080,sourceport=40001'"
        );
    }

    #[test]
    fn a_held_tcp_flow_sleeps_before_half_closing() {
        let held = spec(FlowProto::Tcp, Family::V4).holding(Duration::from_millis(2500));
        assert_eq!(
            held.script(),
            "(head -c 100 /dev/zero; sleep 2.500) | socat -t 10 - 'TCP4:203.0.113.7:8080,sourceport=40001'"
        );
        let udp = spec(FlowProto::Udp, Family::V4).holding(Duration::from_secs(2));
        assert!(udp.script().starts_with("head -c 100 /dev/zero | socat"));
    }

    #[test]
    fn udp_byte_counts_include_the_headers() {
        assert_eq!(
            spec(FlowProto::Udp, Family::V4).udp_bytes(),
            Some((128, 328))
        );
        assert_eq!(
            spec(FlowProto::Udp, Family::V6).udp_bytes(),
            Some((148, 348))
        );
        assert_eq!(spec(FlowProto::Tcp, Family::V4).udp_bytes(), None);
    }
}
