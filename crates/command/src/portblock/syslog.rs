//! The configuration record: RFC 7422 asks a deterministic NAT to log every
//! change of its mapping, so each `apply` that puts new rules in force sends
//! one line to syslog saying which rules, from when.
//!
//! The line is RFC 3164 (`<29>Nov 23 19:26:40 masqlog[PID]: ...`, facility
//! daemon, severity notice), sent as one datagram to a unix socket
//! (`/dev/log` by default) or to a UDP address.

use std::fmt;
use std::net::{SocketAddr, UdpSocket};
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::str::FromStr;

use super::PortblockError;
use super::clock;
use super::plan::Params;

/// The local syslog socket.
pub const DEFAULT_SOCKET: &str = "/dev/log";

/// `<PRI>` for facility daemon (3) and severity notice (5): 3 * 8 + 5.
pub const PRI: u8 = 29;

/// Where configuration records go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SyslogTarget {
    /// A unix datagram socket such as `/dev/log`.
    Unix(PathBuf),
    /// A syslog receiver over UDP.
    Udp(SocketAddr),
}

impl Default for SyslogTarget {
    fn default() -> SyslogTarget {
        SyslogTarget::Unix(PathBuf::from(DEFAULT_SOCKET))
    }
}

impl fmt::Display for SyslogTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SyslogTarget::Unix(p) => write!(f, "unix:{}", p.display()),
            SyslogTarget::Udp(a) => write!(f, "udp:{a}"),
        }
    }
}

impl FromStr for SyslogTarget {
    type Err = PortblockError;

    /// `unix:PATH` or `udp:IP:PORT` (`udp:[::1]:514` for IPv6).
    fn from_str(s: &str) -> Result<SyslogTarget, PortblockError> {
        let bad = || PortblockError::BadSyslogTarget { input: s.into() };
        if let Some(p) = s.strip_prefix("unix:") {
            if p.is_empty() {
                return Err(bad());
            }
            return Ok(SyslogTarget::Unix(PathBuf::from(p)));
        }
        if let Some(a) = s.strip_prefix("udp:") {
            return a.parse().map(SyslogTarget::Udp).map_err(|_| bad());
        }
        Err(bad())
    }
}

enum Socket {
    Unix(UnixDatagram),
    Udp(UdpSocket),
}

/// A socket connected to the syslog target. Connecting first lets `apply`
/// fail before it changes anything when no syslog daemon listens.
pub struct SyslogSender {
    target: SyslogTarget,
    socket: Socket,
}

impl SyslogSender {
    /// Connects (for a unix socket: checks that a daemon listens on it).
    pub fn connect(target: &SyslogTarget) -> Result<SyslogSender, PortblockError> {
        let err = |cause| PortblockError::Syslog {
            target: target.to_string(),
            cause,
        };
        let socket = match target {
            SyslogTarget::Unix(path) => {
                let s = UnixDatagram::unbound().map_err(err)?;
                s.connect(path).map_err(err)?;
                Socket::Unix(s)
            }
            SyslogTarget::Udp(addr) => {
                let local: SocketAddr = if addr.is_ipv4() {
                    "0.0.0.0:0".parse().expect("literal")
                } else {
                    "[::]:0".parse().expect("literal")
                };
                let s = UdpSocket::bind(local).map_err(err)?;
                s.connect(addr).map_err(err)?;
                Socket::Udp(s)
            }
        };
        Ok(SyslogSender {
            target: target.clone(),
            socket,
        })
    }

    pub fn target(&self) -> &SyslogTarget {
        &self.target
    }

    /// Sends one message (already framed).
    pub fn send(&self, message: &str) -> Result<(), PortblockError> {
        let r = match &self.socket {
            Socket::Unix(s) => s.send(message.as_bytes()),
            Socket::Udp(s) => s.send(message.as_bytes()),
        };
        r.map(|_| ()).map_err(|cause| PortblockError::Syslog {
            target: self.target.to_string(),
            cause,
        })
    }
}

/// The body of the configuration record for rule file `file` in force from
/// `t`.
pub fn config_record(t: i64, file: &str, p: &Params) -> String {
    let internal: Vec<String> = p.internal.iter().map(|n| n.to_string()).collect();
    let public: Vec<String> = p.public.iter().map(|a| a.to_string()).collect();
    format!(
        "masqlog-portblock/1 ev=apply time={} file={file} internal={} public={} ports={} per_client={} method={}",
        clock::rfc3339(t),
        internal.join(","),
        public.join(","),
        p.ports,
        p.per_client,
        p.method
    )
}

/// `<29>Mmm dd hh:mm:ss masqlog[PID]: BODY` (the time in UTC).
pub fn frame(t: i64, pid: u32, body: &str) -> String {
    format!("<{PRI}>{} masqlog[{pid}]: {body}", clock::rfc3164(t))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::portblock::plan::Method;
    use crate::portblock::render::tests::small_plan;
    use crate::portblock::testutil::temp_dir;

    #[test]
    fn targets() {
        assert_eq!(
            "unix:/dev/log".parse::<SyslogTarget>().unwrap(),
            SyslogTarget::Unix("/dev/log".into())
        );
        assert_eq!(
            "udp:127.0.0.1:514"
                .parse::<SyslogTarget>()
                .unwrap()
                .to_string(),
            "udp:127.0.0.1:514"
        );
        assert!("udp:[::1]:514".parse::<SyslogTarget>().is_ok());
        for bad in ["tcp:127.0.0.1:514", "udp:127.0.0.1", "unix:", "/dev/log"] {
            assert!(bad.parse::<SyslogTarget>().is_err(), "{bad}");
        }
        assert_eq!(SyslogTarget::default().to_string(), "unix:/dev/log");
    }

    #[test]
    fn record_and_frame() {
        let p = small_plan(Method::Nft, None);
        let body = config_record(1_732_390_000, "rules.1732390000.nft", &p.params);
        assert_eq!(
            body,
            "masqlog-portblock/1 ev=apply time=2024-11-23T19:26:40Z file=rules.1732390000.nft \
             internal=10.8.0.0/30,10.9.0.0/31 public=192.0.2.1,192.0.2.2 ports=64512-65535 \
             per_client=512 method=nft"
        );
        assert_eq!(
            frame(1_730_606_706, 42, "x"),
            "<29>Nov  3 04:05:06 masqlog[42]: x"
        );
    }

    #[test]
    fn sends_over_a_unix_socket() {
        let d = temp_dir("syslog");
        let path = d.path().join("log");
        let rx = UnixDatagram::bind(&path).unwrap();
        let s = SyslogSender::connect(&SyslogTarget::Unix(path)).unwrap();
        s.send("<29>hello").unwrap();
        let mut buf = [0u8; 64];
        let n = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"<29>hello");
    }

    #[test]
    fn sends_over_udp_on_loopback() {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        rx.set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        let target = SyslogTarget::Udp(rx.local_addr().unwrap());
        SyslogSender::connect(&target)
            .unwrap()
            .send("<29>udp")
            .unwrap();
        let mut buf = [0u8; 64];
        let n = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"<29>udp");
    }

    #[test]
    fn no_socket_is_a_clear_error() {
        let d = temp_dir("nosyslog");
        let e = SyslogSender::connect(&SyslogTarget::Unix(d.path().join("log")))
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("unix:") && e.contains("--no-syslog"), "{e}");
    }
}
