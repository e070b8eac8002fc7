//! One RFC 1413 query, blocking and bounded: connect to the inside client's
//! identd, ask about one flow, read one capped line, all within one total
//! deadline, and say what happened as an [`Outcome`].
//!
//! # What is asked
//!
//! For a flow `client ip:port -> remote ip:port` (the inside host and the
//! outside server, before NAT) the query goes to `client ip:113` and is
//! `<client port>, <remote port>\r\n`: the identd is the "server" of RFC 1413
//! and the remote host the "client". The answer must echo the same pair.
//!
//! # Modes
//!
//! RFC 1413 section 3: an identd answers only about connections between the
//! asking host and itself. The router is neither end of the flow, so:
//!
//! - [`Mode::Plain`]: connect from the router's own address (or from
//!   `source`, bound before connecting). A stock identd then finds no such
//!   connection (`NO-USER`) or, seen with oidentd, does not answer at all;
//!   oidentd answers when started with `-P <router address>` (it then matches
//!   the port pair only). The deadline keeps silent ones harmless.
//! - [`Mode::Transparent`]: a socket with `IP_TRANSPARENT` (`IPV6_TRANSPARENT`
//!   for IPv6) bound to `(remote ip, 0)` connects to the client, so the identd
//!   sees the query coming from the remote server itself and a stock identd
//!   answers. Needs `CAP_NET_ADMIN` or `CAP_NET_RAW` in the process (ulogd
//!   started with `-u` has dropped them; see
//!   [`check_transparent_capability`]) and, on the router, routing that
//!   delivers the replies, addressed to the remote server's address, to the
//!   local socket instead of forwarding them:
//!
//!   ```text
//!   table ip masqlog_ident {
//!       chain pre {
//!           type filter hook prerouting priority mangle; policy accept;
//!           meta l4proto tcp socket transparent 1 meta mark set 1
//!       }
//!   }
//!   ip rule add fwmark 1 lookup 100
//!   ip route add local 0.0.0.0/0 dev lo table 100
//!   ```
//!
//!   (and for IPv6 the same with `table ip6`, `ip -6 rule`,
//!   `ip -6 route add local ::/0 dev lo table 100`). Write the nft file one
//!   statement per line: nftables 1.0.6 rejects it on one line.
//!
//! # Bounds
//!
//! Connecting takes at most `connect_timeout` (and never past the deadline);
//! the query is written and the reply read under the same total `deadline`:
//! before every `read` the socket's read timeout is set to the time left, so
//! a server that trickles one byte at a time still hits the deadline. At most
//! `max_reply + 1` bytes are read: a line longer than `max_reply` bytes,
//! end of line included, is a protocol error as soon as it is seen. Bytes
//! after the end of line are never looked at. The query goes out through
//! `send(MSG_NOSIGNAL)` (std's `TcpStream`), so a reset never raises SIGPIPE
//! in ulogd, and the socket is close-on-exec.
//!
//! A connection closed before the end of line is a protocol error, even if
//! what came looks like a whole reply: RFC 1413 counts any premature close as
//! `UNKNOWN-ERROR`, and a cut user-id (`bo` for `bob`) must never be logged.

use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};

use super::IdentError;
use super::reply::{IdentReply, ProtocolError, parse_reply};
use crate::record::{IdentInfo, IdentStatus};

/// The identd port of RFC 1413.
pub const DEFAULT_PORT: u16 = 113;
/// Default time allowed for the TCP handshake with the identd.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Default total time for one query: connect, send, read the reply.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(5);
/// Default cap on a reply line, end of line included (RFC 1413: clients may
/// give up after 1000 characters without an end of line).
pub const DEFAULT_MAX_REPLY: usize = 1000;

/// Where the query comes from; see the module documentation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mode {
    /// From the router's own address, or bound to `source` first.
    Plain { source: Option<IpAddr> },
    /// From the remote server's address, with `IP_TRANSPARENT`.
    Transparent,
}

/// How every query is made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueryConfig {
    pub mode: Mode,
    /// The identd's port on the client (default 113).
    pub port: u16,
    /// Time allowed for the TCP handshake (default 2 s); capped by `deadline`.
    pub connect_timeout: Duration,
    /// Total time for one query, from the first syscall to the parsed reply
    /// (default 5 s).
    pub deadline: Duration,
    /// Longest reply line accepted, end of line included (default 1000).
    pub max_reply: usize,
}

impl Default for QueryConfig {
    fn default() -> Self {
        QueryConfig {
            mode: Mode::Plain { source: None },
            port: DEFAULT_PORT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            deadline: DEFAULT_DEADLINE,
            max_reply: DEFAULT_MAX_REPLY,
        }
    }
}

/// One flow to ask about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Query {
    /// The conntrack id of the flow, carried through for the caller.
    pub ct_id: Option<u32>,
    /// The inside host's end of the flow (where the identd runs).
    pub client: SocketAddr,
    /// The outside server's end of the flow.
    pub remote: SocketAddr,
}

/// What one query came to. [`Outcome::token`] gives the short names used in
/// logs and documentation.
///
/// | token            | meaning                                                        |
/// |------------------|----------------------------------------------------------------|
/// | `user`           | `USERID` reply: the owner of the connection                    |
/// | `ident-error`    | `ERROR` reply (`NO-USER`, `HIDDEN-USER`, ...), verbatim        |
/// | `timeout`        | no complete reply within the deadline (or connect timeout)     |
/// | `refused`        | nothing listens on the identd port (TCP RST to the SYN)        |
/// | `unreachable`    | no route, host/network unreachable, or blocked by a local firewall |
/// | `protocol-error` | anything else: bad or cut reply, reset, too long, local failure |
/// | `queue-full`     | not asked: the pool's queue was full                           |
/// | `busy`           | not asked: too many queries to this client already in flight   |
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Outcome {
    User {
        opsys: Vec<u8>,
        charset: Option<Vec<u8>>,
        user: Vec<u8>,
    },
    IdentError(Vec<u8>),
    Timeout,
    Refused,
    Unreachable,
    /// What went wrong, lowercase, printable ASCII (hostile bytes escaped).
    ProtocolError(String),
    QueueFull,
    Busy,
}

/// What a query's outcome becomes in the flow's ident record.
impl From<Outcome> for IdentInfo {
    fn from(outcome: Outcome) -> IdentInfo {
        let (status, user, opsys, detail) = match outcome {
            Outcome::User {
                opsys,
                charset,
                user,
            } => {
                let mut os = opsys;
                if let Some(cs) = charset {
                    os.push(b',');
                    os.extend_from_slice(&cs);
                }
                (IdentStatus::User, Some(user), Some(os), None)
            }
            Outcome::IdentError(e) => (IdentStatus::IdentError, None, None, Some(e)),
            Outcome::Timeout => (IdentStatus::Timeout, None, None, None),
            Outcome::Refused => (IdentStatus::Refused, None, None, None),
            Outcome::Unreachable => (IdentStatus::Unreachable, None, None, None),
            Outcome::ProtocolError(why) => (
                IdentStatus::ProtocolError,
                None,
                None,
                Some(why.into_bytes()),
            ),
            Outcome::QueueFull => (IdentStatus::QueueFull, None, None, None),
            Outcome::Busy => (IdentStatus::Busy, None, None, None),
        };
        IdentInfo {
            status,
            user,
            opsys,
            detail,
        }
    }
}

impl Outcome {
    /// The documented short name of the outcome.
    pub fn token(&self) -> &'static str {
        match self {
            Outcome::User { .. } => "user",
            Outcome::IdentError(_) => "ident-error",
            Outcome::Timeout => "timeout",
            Outcome::Refused => "refused",
            Outcome::Unreachable => "unreachable",
            Outcome::ProtocolError(_) => "protocol-error",
            Outcome::QueueFull => "queue-full",
            Outcome::Busy => "busy",
        }
    }

    /// Whether the identd answered (`user` or `ident-error`).
    pub fn is_answer(&self) -> bool {
        matches!(self, Outcome::User { .. } | Outcome::IdentError(_))
    }
}

impl From<ProtocolError> for Outcome {
    fn from(e: ProtocolError) -> Self {
        Outcome::ProtocolError(e.to_string())
    }
}

impl From<IdentReply> for Outcome {
    fn from(r: IdentReply) -> Self {
        match r {
            IdentReply::User {
                opsys,
                charset,
                user,
            } => Outcome::User {
                opsys,
                charset,
                user,
            },
            IdentReply::Error(e) => Outcome::IdentError(e),
        }
    }
}

/// A client port that makes [`query`] panic, to test that the pool survives.
#[cfg(test)]
pub(crate) const TEST_PANIC_PORT: u16 = 7;

/// Asks the client's identd about one flow. Blocks for at most
/// `cfg.deadline` (plus scheduling noise); never panics on any reply.
pub fn query(q: &Query, cfg: &QueryConfig) -> Outcome {
    #[cfg(test)]
    if q.client.port() == TEST_PANIC_PORT {
        panic!("test panic trigger");
    }
    let deadline = Instant::now() + cfg.deadline;
    match ask(q, cfg, deadline) {
        Ok(line) => match parse_reply(&line, q.client.port(), q.remote.port()) {
            Ok(reply) => reply.into(),
            Err(e) => e.into(),
        },
        Err(outcome) => outcome,
    }
}

/// Connects, sends the query and reads the reply line (without its end of
/// line).
fn ask(q: &Query, cfg: &QueryConfig, deadline: Instant) -> Result<Vec<u8>, Outcome> {
    let socket = build_socket(q, &cfg.mode).map_err(|e| local_error("socket", &e))?;
    let identd = SocketAddr::new(q.client.ip(), cfg.port);
    let connect_for = time_left(deadline)?.min(cfg.connect_timeout);
    if connect_for.is_zero() {
        return Err(Outcome::Timeout);
    }
    socket
        .connect_timeout(&identd.into(), connect_for)
        .map_err(|e| classify(&e, "connect"))?;
    let mut stream: TcpStream = socket.into();

    let request = format!("{}, {}\r\n", q.client.port(), q.remote.port());
    stream
        .set_write_timeout(Some(time_left(deadline)?))
        .map_err(|e| local_error("set write timeout", &e))?;
    stream
        .write_all(request.as_bytes())
        .map_err(|e| classify(&e, "send"))?;
    read_line(&mut stream, deadline, cfg.max_reply)
}

/// Reads up to the first LF, at most `max + 1` bytes in all, every read
/// bounded by the time left until `deadline`. Returns the line without LF
/// and without a CR before it.
fn read_line<R: Read + ReadTimeout>(
    stream: &mut R,
    deadline: Instant,
    max: usize,
) -> Result<Vec<u8>, Outcome> {
    let mut buf = vec![0u8; max.saturating_add(1)];
    let mut len = 0;
    loop {
        stream
            .set_timeout(time_left(deadline)?)
            .map_err(|e| local_error("set read timeout", &e))?;
        let n = match stream.read(&mut buf[len..]) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(classify(&e, "receive")),
        };
        if n == 0 {
            return Err(if len == 0 {
                ProtocolError::Empty
            } else {
                ProtocolError::Unterminated { len }
            }
            .into());
        }
        if let Some(i) = buf[len..len + n].iter().position(|&b| b == b'\n') {
            let lf = len + i;
            if lf >= max {
                return Err(ProtocolError::TooLong { max }.into());
            }
            let line = &buf[..lf];
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            return Ok(line.to_vec());
        }
        len += n;
        if len > max {
            return Err(ProtocolError::TooLong { max }.into());
        }
    }
}

/// A reader whose blocking time can be bounded (a socket; fakes in tests).
trait ReadTimeout {
    fn set_timeout(&mut self, t: Duration) -> io::Result<()>;
}

impl ReadTimeout for TcpStream {
    fn set_timeout(&mut self, t: Duration) -> io::Result<()> {
        self.set_read_timeout(Some(t))
    }
}

/// The time left until `deadline`; none left is a timeout.
fn time_left(deadline: Instant) -> Result<Duration, Outcome> {
    match deadline.checked_duration_since(Instant::now()) {
        Some(d) if !d.is_zero() => Ok(d),
        _ => Err(Outcome::Timeout),
    }
}

/// The unconnected socket for a query, per mode: plain (optionally bound to
/// the source address) or transparent (bound to the remote server's address).
pub(crate) fn build_socket(q: &Query, mode: &Mode) -> io::Result<Socket> {
    let socket = Socket::new(
        Domain::for_address(q.client),
        Type::STREAM,
        Some(Protocol::TCP),
    )?;
    match *mode {
        Mode::Plain { source: None } => {}
        Mode::Plain {
            source: Some(source),
        } => {
            // The source address serves its own family; a client of the
            // other family is asked from the address the kernel picks.
            if source.is_ipv4() == q.client.ip().is_ipv4() {
                socket.bind(&SocketAddr::new(source, 0).into())?;
            }
        }
        Mode::Transparent => {
            let remote = q.remote.ip();
            same_family(remote, q.client.ip(), "the remote address")?;
            if remote.is_ipv4() {
                socket.set_ip_transparent_v4(true)?;
            } else {
                socket.set_ip_transparent_v6(true)?;
            }
            socket.bind(&SocketAddr::new(remote, 0).into())?;
        }
    }
    Ok(socket)
}

fn same_family(a: IpAddr, client: IpAddr, what: &str) -> io::Result<()> {
    if a.is_ipv4() == client.is_ipv4() {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{what} {a} and the client {client} differ in address family"),
        ))
    }
}

/// A failure on our side (socket, bind, setsockopt): reported as a protocol
/// error, the one outcome that carries a message.
fn local_error(what: &str, e: &io::Error) -> Outcome {
    Outcome::ProtocolError(format!("local error: {what}: {e}"))
}

/// Maps a socket error while talking to the identd to an outcome.
fn classify(e: &io::Error, during: &str) -> Outcome {
    use io::ErrorKind as K;
    match e.kind() {
        K::ConnectionRefused => Outcome::Refused,
        K::TimedOut | K::WouldBlock => Outcome::Timeout,
        K::HostUnreachable | K::NetworkUnreachable | K::NetworkDown => Outcome::Unreachable,
        K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe => ProtocolError::Reset.into(),
        _ => match e.raw_os_error() {
            // EPERM/EACCES on connect: a local firewall rule dropped the SYN
            Some(libc::EHOSTUNREACH | libc::ENETUNREACH | libc::EHOSTDOWN | libc::ENETDOWN)
            | Some(libc::EPERM | libc::EACCES) => Outcome::Unreachable,
            _ => local_error(during, e),
        },
    }
}

/// Checks that this process may set `IP_TRANSPARENT`, which
/// [`Mode::Transparent`] needs on every query. Call it at start, so that a
/// missing capability is one clear error instead of a failure per flow.
pub fn check_transparent_capability() -> Result<(), IdentError> {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))
        .map_err(IdentError::TransparentCheck)?;
    match socket.set_ip_transparent_v4(true) {
        Ok(()) => Ok(()),
        Err(e) if matches!(e.raw_os_error(), Some(libc::EPERM | libc::EACCES)) => {
            Err(IdentError::TransparentNotPermitted)
        }
        Err(e) => Err(IdentError::TransparentCheck(e)),
    }
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;
    use std::net::{Ipv4Addr, Ipv6Addr, TcpListener};
    use std::time::Duration;

    use super::super::fake::{self, FakeIdentd};
    use super::*;

    const MARGIN: Duration = Duration::from_millis(700);

    fn cfg(port: u16, deadline_ms: u64) -> QueryConfig {
        QueryConfig {
            port,
            deadline: Duration::from_millis(deadline_ms),
            connect_timeout: Duration::from_millis(deadline_ms),
            ..QueryConfig::default()
        }
    }

    fn q4(client_port: u16, remote_port: u16) -> Query {
        Query {
            ct_id: Some(42),
            client: SocketAddr::new(Ipv4Addr::LOCALHOST.into(), client_port),
            remote: SocketAddr::new(Ipv4Addr::new(127, 0, 0, 2).into(), remote_port),
        }
    }

    fn run(server: &FakeIdentd, deadline_ms: u64) -> (Outcome, Duration) {
        let start = Instant::now();
        let o = query(&q4(49480, 8081), &cfg(server.port(), deadline_ms));
        (o, start.elapsed())
    }

    fn bob() -> Outcome {
        Outcome::User {
            opsys: b"UNIX".to_vec(),
            charset: None,
            user: b"bob".to_vec(),
        }
    }

    fn protocol_error(o: &Outcome) -> &str {
        match o {
            Outcome::ProtocolError(m) => m,
            other => panic!("expected a protocol error, got {other:?}"),
        }
    }

    #[test]
    fn tokens_are_the_documented_names() {
        let all = [
            (bob(), "user"),
            (Outcome::IdentError(b"NO-USER".to_vec()), "ident-error"),
            (Outcome::Timeout, "timeout"),
            (Outcome::Refused, "refused"),
            (Outcome::Unreachable, "unreachable"),
            (Outcome::ProtocolError("x".into()), "protocol-error"),
            (Outcome::QueueFull, "queue-full"),
            (Outcome::Busy, "busy"),
        ];
        for (o, t) in all {
            assert_eq!(o.token(), t);
            assert_eq!(o.is_answer(), t == "user" || t == "ident-error");
        }
    }

    #[test]
    fn defaults() {
        let c = QueryConfig::default();
        assert_eq!(c.port, 113);
        assert_eq!(c.max_reply, 1000);
        assert_eq!(c.mode, Mode::Plain { source: None });
        assert!(c.connect_timeout <= c.deadline);
    }

    #[test]
    fn correct_answer_and_the_query_sent() {
        let server = FakeIdentd::start(fake::answer(b" : USERID : UNIX : bob\r\n"));
        let (o, _) = run(&server, 3000);
        assert_eq!(o, bob());
        assert_eq!(server.queries(), vec![b"49480, 8081\r\n".to_vec()]);
    }

    #[test]
    fn correct_answer_ipv6() {
        let Some(server) = FakeIdentd::start_v6(fake::answer(b":USERID:UNIX,UTF-8:bob\r\n")) else {
            eprintln!("skipped: no IPv6 loopback");
            return;
        };
        let q = Query {
            ct_id: None,
            client: SocketAddr::new(Ipv6Addr::LOCALHOST.into(), 49480),
            remote: SocketAddr::new(Ipv6Addr::LOCALHOST.into(), 8081),
        };
        assert_eq!(
            query(&q, &cfg(server.port(), 3000)),
            Outcome::User {
                opsys: b"UNIX".to_vec(),
                charset: Some(b"UTF-8".to_vec()),
                user: b"bob".to_vec()
            }
        );
    }

    #[test]
    fn bare_lf_and_bytes_after_the_line() {
        let server = FakeIdentd::start(fake::answer(b":USERID:UNIX:bob\nGARBAGE\0\xff"));
        assert_eq!(run(&server, 3000).0, bob());
    }

    #[test]
    fn ident_error_no_user() {
        let server = FakeIdentd::start(fake::answer(b" : ERROR : NO-USER\r\n"));
        assert_eq!(
            run(&server, 3000).0,
            Outcome::IdentError(b"NO-USER".to_vec())
        );
    }

    #[test]
    fn wrong_port_pair() {
        let server = FakeIdentd::start(fake::raw(b"1, 2 : USERID : UNIX : mallory\r\n"));
        let (o, _) = run(&server, 3000);
        assert_eq!(
            protocol_error(&o),
            "port pair mismatch: asked 49480, 8081, answered 1, 2"
        );
    }

    #[test]
    fn never_answers_times_out_within_the_deadline() {
        let server = FakeIdentd::start(fake::silent());
        let (o, took) = run(&server, 800);
        assert_eq!(o, Outcome::Timeout);
        assert!(took >= Duration::from_millis(790), "{took:?}");
        assert!(took < Duration::from_millis(800) + MARGIN, "{took:?}");
    }

    #[test]
    fn answers_after_the_deadline() {
        let server = FakeIdentd::start(fake::late(
            Duration::from_millis(1500),
            b":USERID:UNIX:bob\r\n",
        ));
        let (o, took) = run(&server, 600);
        assert_eq!(o, Outcome::Timeout);
        assert!(took < Duration::from_millis(600) + MARGIN, "{took:?}");
    }

    #[test]
    fn trickle_hits_the_total_deadline() {
        // one byte per 100 ms: 900 ms are spent before the reply is half done
        let server = FakeIdentd::start(fake::trickle(
            Duration::from_millis(100),
            b" : USERID : UNIX : bob-the-very-slow-user\r\n",
        ));
        let (o, took) = run(&server, 900);
        assert_eq!(o, Outcome::Timeout);
        assert!(took >= Duration::from_millis(890), "{took:?}");
        assert!(took < Duration::from_millis(900) + MARGIN, "{took:?}");
    }

    #[test]
    fn one_megabyte_is_cut_at_max_reply() {
        let server = FakeIdentd::start(fake::flood(1 << 20));
        let (o, took) = run(&server, 3000);
        assert_eq!(protocol_error(&o), "reply longer than 1000 bytes");
        assert!(took < Duration::from_secs(2), "{took:?}");
        // the server could not push its megabyte: we stopped reading
        assert!(server.wait_done(Duration::from_secs(3)));
        let written = server.written();
        assert!(written < 1 << 20, "server wrote {written} bytes");
    }

    #[test]
    fn reply_of_exactly_max_reply_bytes() {
        // "49480, 8081:USERID:UNIX:" is 24 bytes, CR LF 2: fill to 1000
        let mut reply = b":USERID:UNIX:".to_vec();
        reply.extend(std::iter::repeat_n(b'u', 1000 - 24 - 2));
        reply.extend_from_slice(b"\r\n");
        let server = FakeIdentd::start(fake::answer(&reply));
        match run(&server, 3000).0 {
            Outcome::User { user, .. } => assert_eq!(user.len(), 974),
            other => panic!("{other:?}"),
        }
        reply.insert(20, b'u');
        let server = FakeIdentd::start(fake::answer(&reply));
        assert_eq!(
            protocol_error(&run(&server, 3000).0),
            "reply longer than 1000 bytes"
        );
    }

    #[test]
    fn hostile_users_parse_or_fail_cleanly() {
        type Case = (&'static [u8], Result<&'static [u8], &'static str>);
        let cases: &[Case] = &[
            // the line ends at the first LF: the rest is never seen
            (b":USERID:UNIX:bo\nb\r\n", Ok(b"bo")),
            (
                b":USERID:UNIX:bo\rb\r\n",
                Err("user-id contains the forbidden byte 0x0d"),
            ),
            (
                b":USERID:UNIX:bo\0b\r\n",
                Err("user-id contains the forbidden byte 0x00"),
            ),
            (b":USERID:UNIX:\x1b[2J\x07\x7f\r\n", Ok(b"\x1b[2J\x07\x7f")),
            (b":USERID:UNIX:\xff\xfe\xc3(\r\n", Ok(b"\xff\xfe\xc3(")),
            (b":USERID:UNIX:\"x\" y=z\r\n", Ok(b"\"x\" y=z")),
            (
                b":USERID:UN\xffIX:bob\r\n",
                Err("invalid operating system \"UN\\xffIX\": not a token of printable ascii"),
            ),
        ];
        for (reply, want) in cases {
            let server = FakeIdentd::start(fake::answer(reply));
            let o = run(&server, 3000).0;
            match want {
                Ok(u) => assert_eq!(
                    o,
                    Outcome::User {
                        opsys: b"UNIX".to_vec(),
                        charset: None,
                        user: u.to_vec()
                    }
                ),
                Err(m) => assert_eq!(protocol_error(&o), *m),
            }
        }
    }

    #[test]
    fn closes_after_reading_the_query() {
        let server = FakeIdentd::start(fake::close_after_query());
        assert_eq!(protocol_error(&run(&server, 3000).0), "empty reply");
    }

    #[test]
    fn closes_at_once() {
        // closing with our query unread makes the kernel send a RST: either
        // way it is a protocol error, never a hang
        let server = FakeIdentd::start(fake::close_at_once());
        let o = run(&server, 3000).0;
        let m = protocol_error(&o);
        assert!(
            m == "empty reply" || m == "connection reset by the identd",
            "{m}"
        );
    }

    #[test]
    fn closes_before_the_end_of_line() {
        let server = FakeIdentd::start(fake::answer(b":USERID:UNIX:bo"));
        assert_eq!(
            protocol_error(&run(&server, 3000).0),
            "connection closed after 26 bytes without an end of line"
        );
    }

    #[test]
    fn reset_after_the_query() {
        let server = FakeIdentd::start(fake::reset_after_query());
        assert_eq!(
            protocol_error(&run(&server, 3000).0),
            "connection reset by the identd"
        );
    }

    #[test]
    fn reset_at_once() {
        let server = FakeIdentd::start(fake::reset_at_once());
        let o = run(&server, 3000).0;
        let m = protocol_error(&o);
        assert!(
            m == "connection reset by the identd" || m == "empty reply",
            "{m}"
        );
    }

    #[test]
    fn connection_refused() {
        let port = {
            let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
            l.local_addr().unwrap().port()
        };
        let start = Instant::now();
        assert_eq!(query(&q4(49480, 8081), &cfg(port, 3000)), Outcome::Refused);
        assert!(start.elapsed() < Duration::from_secs(1));
    }

    #[test]
    fn errors_are_classified() {
        let os = io::Error::from_raw_os_error;
        assert_eq!(classify(&os(libc::ECONNREFUSED), "x"), Outcome::Refused);
        assert_eq!(classify(&os(libc::ETIMEDOUT), "x"), Outcome::Timeout);
        assert_eq!(classify(&os(libc::EAGAIN), "x"), Outcome::Timeout);
        for e in [
            libc::EHOSTUNREACH,
            libc::ENETUNREACH,
            libc::ENETDOWN,
            libc::EHOSTDOWN,
            libc::EPERM,
        ] {
            assert_eq!(classify(&os(e), "x"), Outcome::Unreachable, "{e}");
        }
        for e in [libc::ECONNRESET, libc::EPIPE, libc::ECONNABORTED] {
            assert_eq!(
                classify(&os(e), "x"),
                Outcome::ProtocolError("connection reset by the identd".into())
            );
        }
        let m = classify(&os(libc::EMFILE), "connect");
        assert!(
            protocol_error(&m).starts_with("local error: connect: "),
            "{m:?}"
        );
    }

    /// A reader that hands out one byte per call and counts the calls.
    struct Drip<'a> {
        data: Cursor<&'a [u8]>,
        reads: usize,
    }

    impl Read for Drip<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.reads += 1;
            let n = buf.len().min(1);
            self.data.read(&mut buf[..n])
        }
    }

    impl ReadTimeout for Drip<'_> {
        fn set_timeout(&mut self, t: Duration) -> io::Result<()> {
            assert!(!t.is_zero());
            Ok(())
        }
    }

    fn read_all(data: &[u8], max: usize) -> (Result<Vec<u8>, Outcome>, usize) {
        let mut r = Drip {
            data: Cursor::new(data),
            reads: 0,
        };
        let got = read_line(&mut r, Instant::now() + Duration::from_secs(5), max);
        (got, r.reads)
    }

    #[test]
    fn reader_stops_at_the_cap() {
        let data = vec![b'a'; 5000];
        let (got, reads) = read_all(&data, 10);
        assert_eq!(got, Err(ProtocolError::TooLong { max: 10 }.into()));
        assert_eq!(reads, 11);
        // a line of exactly max bytes with its LF passes; one more does not
        assert_eq!(read_all(b"123456789\n", 10).0, Ok(b"123456789".to_vec()));
        assert_eq!(read_all(b"12345678\r\n", 10).0, Ok(b"12345678".to_vec()));
        assert_eq!(
            read_all(b"1234567890\n", 10).0,
            Err(ProtocolError::TooLong { max: 10 }.into())
        );
        // split CR LF, empty line, zero cap
        assert_eq!(read_all(b"\r\n", 10).0, Ok(Vec::new()));
        assert_eq!(
            read_all(b"\n", 0).0,
            Err(ProtocolError::TooLong { max: 0 }.into())
        );
        assert_eq!(read_all(b"", 10).0, Err(ProtocolError::Empty.into()));
    }

    #[test]
    fn reader_respects_an_expired_deadline() {
        let mut r = Drip {
            data: Cursor::new(b"x\n"),
            reads: 0,
        };
        let past = Instant::now();
        std::thread::sleep(Duration::from_millis(2));
        assert_eq!(read_line(&mut r, past, 10), Err(Outcome::Timeout));
        assert_eq!(r.reads, 0);
    }

    #[test]
    fn zero_deadline_is_a_timeout_without_a_connection() {
        let server = FakeIdentd::start(fake::answer(b":USERID:UNIX:bob\r\n"));
        let mut c = cfg(server.port(), 0);
        c.connect_timeout = Duration::from_secs(1);
        assert_eq!(query(&q4(49480, 8081), &c), Outcome::Timeout);
    }

    #[test]
    fn plain_socket_is_not_transparent_and_binds_the_source() {
        let q = q4(49480, 8081);
        let s = build_socket(&q, &Mode::Plain { source: None }).unwrap();
        assert!(!s.ip_transparent_v4().unwrap());
        let local = s.local_addr().unwrap().as_socket().unwrap();
        assert!(local.ip().is_unspecified() && local.port() == 0, "{local}");

        let source = IpAddr::from(Ipv4Addr::new(127, 0, 0, 3));
        let s = build_socket(
            &q,
            &Mode::Plain {
                source: Some(source),
            },
        )
        .unwrap();
        assert!(!s.ip_transparent_v4().unwrap());
        assert_eq!(s.local_addr().unwrap().as_socket().unwrap().ip(), source);

        // a source of the other family is not used for this client
        let s = build_socket(
            &q,
            &Mode::Plain {
                source: Some(Ipv6Addr::LOCALHOST.into()),
            },
        )
        .unwrap();
        assert!(
            s.local_addr()
                .unwrap()
                .as_socket()
                .is_none_or(|a| a.port() == 0)
        );
    }

    #[test]
    fn plain_query_from_a_source_address() {
        let server = FakeIdentd::start(fake::answer(b":USERID:UNIX:bob\r\n"));
        let mut c = cfg(server.port(), 3000);
        c.mode = Mode::Plain {
            source: Some(Ipv4Addr::new(127, 0, 0, 3).into()),
        };
        assert_eq!(query(&q4(49480, 8081), &c), bob());
        assert_eq!(
            server.peers(),
            vec![IpAddr::from(Ipv4Addr::new(127, 0, 0, 3))]
        );
    }

    fn transparent_permitted() -> bool {
        match check_transparent_capability() {
            Ok(()) => true,
            Err(e) => {
                eprintln!("skipped: {e}");
                false
            }
        }
    }

    #[test]
    fn transparent_socket_is_transparent_and_bound_to_the_remote() {
        if !transparent_permitted() {
            return;
        }
        let q = q4(49480, 8081);
        let s = build_socket(&q, &Mode::Transparent).unwrap();
        assert!(s.ip_transparent_v4().unwrap());
        assert_eq!(
            s.local_addr().unwrap().as_socket().unwrap().ip(),
            q.remote.ip()
        );

        let q6 = Query {
            ct_id: None,
            client: SocketAddr::new(Ipv6Addr::LOCALHOST.into(), 49480),
            remote: SocketAddr::new(Ipv6Addr::LOCALHOST.into(), 8081),
        };
        match build_socket(&q6, &Mode::Transparent) {
            Ok(s) => {
                assert!(s.ip_transparent_v6().unwrap());
                assert_eq!(
                    s.local_addr().unwrap().as_socket().unwrap().ip(),
                    q6.remote.ip()
                );
            }
            Err(e) => eprintln!("IPv6 part skipped: {e}"),
        }

        let mixed = Query {
            remote: SocketAddr::new(Ipv6Addr::LOCALHOST.into(), 8081),
            ..q
        };
        let err = build_socket(&mixed, &Mode::Transparent).unwrap_err();
        assert!(
            err.to_string().contains("differ in address family"),
            "{err}"
        );
    }

    /// On loopback the identd sees the query come from the flow's remote
    /// address (127.0.0.2), as it would from the outside server.
    #[test]
    fn transparent_query_on_loopback() {
        if !transparent_permitted() {
            return;
        }
        let server = FakeIdentd::start(fake::answer(b":USERID:UNIX:bob\r\n"));
        let mut c = cfg(server.port(), 3000);
        c.mode = Mode::Transparent;
        assert_eq!(query(&q4(49480, 8081), &c), bob());
        assert_eq!(
            server.peers(),
            vec![IpAddr::from(Ipv4Addr::new(127, 0, 0, 2))]
        );
    }

    #[test]
    fn transparent_check_as_root_passes() {
        if privileged() {
            check_transparent_capability().unwrap();
        } else {
            eprintln!("skipped: not root");
        }
    }

    fn privileged() -> bool {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
    }

    /// Runs the check in a copy of this test binary without privileges
    /// (`setpriv --reuid`), where it must fail with the clear message.
    #[test]
    fn transparent_check_without_capabilities() {
        if !privileged() {
            eprintln!("skipped: needs root to drop privileges");
            return;
        }
        let exe = std::env::current_exe().unwrap();
        let out = match std::process::Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(&exe)
            .args([
                "--exact",
                "ident::query::tests::transparent_check_unprivileged_child",
                "--ignored",
                "--nocapture",
            ])
            .output()
        {
            Ok(out) => out,
            Err(e) => {
                eprintln!("skipped: cannot run setpriv: {e}");
                return;
            }
        };
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stdout}\n{stderr}");
        assert!(stdout.contains("1 passed"), "{stdout}\n{stderr}");
    }

    #[test]
    #[ignore = "run by transparent_check_without_capabilities"]
    fn transparent_check_unprivileged_child() {
        let err = check_transparent_capability().unwrap_err();
        assert!(matches!(err, IdentError::TransparentNotPermitted), "{err}");
        let m = err.to_string();
        assert!(m.contains("CAP_NET_ADMIN") && m.contains("-u"), "{m}");
    }
}
