//! The transports: how one formatted message reaches its destination
//! (a local datagram socket, UDP, or TCP with RFC 6587 octet counting).
//!
//! Every transport connects lazily and forgets its socket after a failed
//! send, so the next send reconnects. The writer thread only sees the
//! [`Transport`] trait; RELP (acknowledged delivery) lives in
//! [`super::relp`].

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::StopSignal;
use masqlog_core::config::{Config, Destination, IpfixConfig};

/// A blocking send waits at most this long before it looks at the limit
/// again (so that `stop` can cut it short).
const SLICE: Duration = Duration::from_millis(50);
/// Messages per write of a TCP batch, and per `sendmmsg` of a datagram
/// batch.
const TCP_CHUNK: usize = 32;
/// The shortest timeout handed to a socket (std refuses zero).
pub(super) const MIN_TIMEOUT: Duration = Duration::from_millis(1);

/// How long one send may take: until `end` (the send timeout), or until the
/// stop deadline if it comes first, even when `stop` sets it meanwhile.
pub(super) struct Limit<'a> {
    pub(super) end: Instant,
    pub(super) stop: &'a StopSignal,
    /// Asked between the messages of a batch sent one by one: `true` ends
    /// the batch early (the writer has a backlog to move to the spool).
    pub(super) yield_now: Option<&'a dyn Fn() -> bool>,
}

impl Limit<'_> {
    /// The time left; zero once the limit passed.
    pub(super) fn left(&self) -> Duration {
        let end = match self.stop.deadline() {
            Some(deadline) => deadline.min(self.end),
            None => self.end,
        };
        end.saturating_duration_since(Instant::now())
    }

    /// Whether a batch sent in parts stops before its next part, `done`
    /// messages in (never before the first): `yield_now` asked.
    pub(super) fn yields_after(&self, done: usize) -> bool {
        done > 0 && self.yield_now.is_some_and(|y| y())
    }

    /// The socket timeout for the next blocking call: the time left, at
    /// most one slice; `None` once the limit passed.
    pub(super) fn slice(&self) -> Option<Duration> {
        let left = self.left();
        (!left.is_zero()).then(|| left.min(SLICE).max(MIN_TIMEOUT))
    }
}

pub(super) fn timed_out(what: String) -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, what)
}

/// Why a message was not sent.
#[derive(Debug)]
pub(super) enum SendError {
    /// The destination is unreachable or the send failed: the connection was
    /// closed; send the same message again later.
    Retry(io::Error),
    /// The destination will never take this message (too large for a
    /// datagram): retrying cannot help.
    Reject(io::Error),
    /// Not an error: the batch was cut short on request; the rest is sent
    /// later.
    Yield,
}

/// Sends complete syslog messages to one destination.
pub(super) trait Transport: Send {
    /// Sends one complete message (without framing), connecting first if
    /// needed, within `limit`.
    fn send(&mut self, msg: &[u8], limit: &Limit<'_>) -> Result<(), SendError>;

    /// Sends the messages in order within `limit`. `Err((n, e))`: the first
    /// `n` were delivered (in the transport's sense), the next one failed
    /// with `e` (or `Yield`: not sent, as `limit.yield_now` asked).
    fn send_batch(
        &mut self,
        msgs: &[Vec<u8>],
        limit: &Limit<'_>,
    ) -> Result<(), (usize, SendError)> {
        for (i, m) in msgs.iter().enumerate() {
            if limit.yields_after(i) {
                return Err((i, SendError::Yield));
            }
            self.send(m, limit).map_err(|e| (i, e))?;
        }
        Ok(())
    }
}

/// The transport for `dest`; no socket is opened yet.
#[cfg(test)]
pub(super) fn open(dest: &Destination) -> Box<dyn Transport> {
    open_with(dest, Config::default().ipfix)
}

/// The transport for the configured destination.
pub(super) fn open_for(cfg: &Config) -> Box<dyn Transport> {
    open_with(&cfg.destination, cfg.ipfix)
}

fn open_with(dest: &Destination, ipfix: IpfixConfig) -> Box<dyn Transport> {
    match dest {
        Destination::Unix(path) => Box::new(Datagram::<UnixDatagram>::new(path.clone())),
        Destination::Udp(addr) => Box::new(Datagram::<UdpSocket>::new(*addr)),
        Destination::Tcp(addr) => Box::new(Tcp::new(*addr)),
        Destination::Relp(addr) => Box::new(super::relp::Relp::new(*addr)),
        Destination::File(path) => Box::new(super::file::LogFile::new(path.clone())),
        Destination::IpfixUdp(addr) | Destination::IpfixTcp(addr) => Box::new(
            super::ipfix::Ipfix::new(*addr, matches!(dest, Destination::IpfixTcp(_)), ipfix),
        ),
        Destination::None => Box::new(Discard),
        #[cfg(feature = "postgresql")]
        Destination::Postgres(t) => Box::new(super::pg::Postgres::new(t.clone())),
        // Refused at start (`Writer::start`); never reached.
        #[cfg(not(feature = "postgresql"))]
        Destination::Postgres(_) => Box::new(Datagram::<UnixDatagram>::new(PathBuf::new())),
    }
}

/// No forwarding destination (`destination=none`): the formatter kept
/// every message in the store already; there is nothing to send, and a
/// batch never yields (nothing goes to the spool: a backlog waits in the
/// disk lane).
struct Discard;

impl Transport for Discard {
    fn send(&mut self, _: &[u8], _: &Limit<'_>) -> Result<(), SendError> {
        Ok(())
    }

    fn send_batch(&mut self, _: &[Vec<u8>], _: &Limit<'_>) -> Result<(), (usize, SendError)> {
        Ok(())
    }
}

/// A connected datagram socket of some family.
pub(super) trait DatagramSocket: Sized + Send + std::os::fd::AsFd {
    type Addr: Send;
    fn open(to: &Self::Addr) -> io::Result<Self>;
    fn set_send_timeout(&self, t: Duration) -> io::Result<()>;
    /// std sends with MSG_NOSIGNAL: no SIGPIPE in ulogd.
    fn send_one(&self, msg: &[u8]) -> io::Result<usize>;
}

impl DatagramSocket for UnixDatagram {
    type Addr = PathBuf;

    fn open(to: &PathBuf) -> io::Result<Self> {
        let sock = UnixDatagram::unbound()?;
        sock.connect(to)?;
        Ok(sock)
    }

    fn set_send_timeout(&self, t: Duration) -> io::Result<()> {
        self.set_write_timeout(Some(t))
    }

    fn send_one(&self, msg: &[u8]) -> io::Result<usize> {
        self.send(msg)
    }
}

impl DatagramSocket for UdpSocket {
    type Addr = SocketAddr;

    fn open(to: &SocketAddr) -> io::Result<Self> {
        let any: SocketAddr = match to {
            SocketAddr::V4(_) => (std::net::Ipv4Addr::UNSPECIFIED, 0).into(),
            SocketAddr::V6(_) => (std::net::Ipv6Addr::UNSPECIFIED, 0).into(),
        };
        let sock = UdpSocket::bind(any)?;
        sock.connect(to)?;
        Ok(sock)
    }

    fn set_send_timeout(&self, t: Duration) -> io::Result<()> {
        self.set_write_timeout(Some(t))
    }

    fn send_one(&self, msg: &[u8]) -> io::Result<usize> {
        self.send(msg)
    }
}

/// One message per datagram (`unix:` and `udp:`).
///
/// A full receiver (still EAGAIN when the limit passed, ENOBUFS) or a missing
/// one (ENOENT, ECONNREFUSED) is a failure like any other: the socket is
/// reopened and the message retried. Only EMSGSIZE rejects the message.
struct Datagram<S: DatagramSocket> {
    to: S::Addr,
    sock: Option<S>,
    /// The timeout set on `sock`, to skip the syscall when unchanged.
    timeout: Option<Duration>,
}

impl<S: DatagramSocket> Datagram<S> {
    fn new(to: S::Addr) -> Self {
        Datagram {
            to,
            sock: None,
            timeout: None,
        }
    }

    fn try_send(&mut self, msg: &[u8], limit: &Limit<'_>) -> Result<(), SendError> {
        let sock = match &mut self.sock {
            Some(sock) => sock,
            None => {
                self.timeout = None;
                self.sock
                    .insert(S::open(&self.to).map_err(SendError::Retry)?)
            }
        };
        send_datagram(sock, &mut self.timeout, msg, limit).map_err(|e| {
            if e.raw_os_error() == Some(libc::EMSGSIZE) {
                SendError::Reject(e)
            } else {
                SendError::Retry(e)
            }
        })
    }

    /// Sends what the socket takes of `msgs` at once in one `sendmmsg`,
    /// without waiting: how many went. Anything else (nothing sent, an
    /// error) is left to [`Datagram::try_send`], one message, which waits,
    /// reconnects and tells a full receiver from a message too large.
    fn send_many(&mut self, msgs: &[Vec<u8>]) -> usize {
        use rustix::net::{MMsgHdr, SendAncillaryBuffer, SendFlags, sendmmsg};
        let Some(sock) = &self.sock else {
            return 0;
        };
        let iovs: Vec<[io::IoSlice<'_>; 1]> = msgs.iter().map(|m| [io::IoSlice::new(m)]).collect();
        let mut controls: Vec<SendAncillaryBuffer<'_, '_, '_>> = msgs
            .iter()
            .map(|_| SendAncillaryBuffer::default())
            .collect();
        let mut hdrs: Vec<MMsgHdr<'_>> = iovs
            .iter()
            .zip(controls.iter_mut())
            .map(|(iov, control)| MMsgHdr::new(iov, control))
            .collect();
        // MSG_DONTWAIT: a full receiver ends the call, not the timeout.
        let flags = SendFlags::DONTWAIT | SendFlags::NOSIGNAL;
        match sendmmsg(sock, &mut hdrs, flags) {
            // A datagram goes whole or not at all; a short one is left to
            // `try_send`, which reports it.
            Ok(n) => hdrs[..n]
                .iter()
                .zip(msgs)
                .take_while(|(h, m)| h.bytes_sent() == m.len())
                .count(),
            Err(_) => 0,
        }
    }
}

impl<S: DatagramSocket> Transport for Datagram<S> {
    fn send(&mut self, msg: &[u8], limit: &Limit<'_>) -> Result<(), SendError> {
        let res = self.try_send(msg, limit);
        if let Err(SendError::Retry(_)) = res {
            self.sock = None;
        }
        res
    }

    /// The first message alone (it opens the socket and meets any error),
    /// then up to [`TCP_CHUNK`] at a time with `sendmmsg`; a message the
    /// socket does not take at once is sent alone again.
    fn send_batch(
        &mut self,
        msgs: &[Vec<u8>],
        limit: &Limit<'_>,
    ) -> Result<(), (usize, SendError)> {
        let mut done = 0;
        while done < msgs.len() {
            if limit.yields_after(done) {
                return Err((done, SendError::Yield));
            }
            let sent = if done > 0 {
                let end = msgs.len().min(done + TCP_CHUNK);
                self.send_many(&msgs[done..end])
            } else {
                0
            };
            if sent > 0 {
                done += sent;
            } else {
                self.send(&msgs[done], limit).map_err(|e| (done, e))?;
                done += 1;
            }
        }
        Ok(())
    }
}

/// RFC 6587 octet counting over TCP: each message goes out as `LEN SP MSG`,
/// LEN being the decimal byte length of MSG.
///
/// # What a successful send means
///
/// Only that the local kernel accepted the bytes. When the receiver dies
/// (crash, reset, cable), the bytes the kernel accepted but had not yet
/// delivered are lost **without any error**: the failure shows up on a
/// later write, and only that later message is retried. Before each write
/// the transport checks whether the receiver already closed or reset the
/// connection (a non-blocking read: a syslog receiver never sends, so a
/// readable socket means FIN or RST) and reconnects first, which covers a
/// receiver restart between two messages; it cannot cover a peer that
/// vanishes silently or dies after the write. Closing that window needs
/// acknowledged delivery: `relp:` (see [`super::relp`]).
///
/// # Duplicates
///
/// A frame whose write failed half-way (an error, or the send timeout with
/// a receiver that does not read) is sent again, whole, on a new
/// connection: the receiver may then see the message twice, a truncated
/// copy on the old connection (whose queued bytes the kernel still tries
/// to deliver after the close) and the full one on the new. The conntrack
/// id in the message makes the duplicate visible. For the same reason the
/// receiver may see the tail of the old connection after the first
/// messages of the new one.
struct Tcp {
    addr: SocketAddr,
    /// Non-blocking between sends (for the liveness check); see
    /// `write_frame`.
    stream: Option<TcpStream>,
    /// The frame being sent, reused.
    frame: Vec<u8>,
}

impl Tcp {
    fn new(addr: SocketAddr) -> Self {
        Tcp {
            addr,
            stream: None,
            frame: Vec::new(),
        }
    }

    fn send_frame(&mut self, limit: &Limit<'_>, written: &mut usize) -> io::Result<()> {
        if let Some(stream) = &self.stream
            && peer_closed(stream)
        {
            // Reconnect now: the message has not been written anywhere.
            self.stream = None;
        }
        let stream = match &mut self.stream {
            Some(stream) => stream,
            None => {
                let stream = connect_within(&self.addr, limit)?;
                stream.set_nonblocking(true)?;
                self.stream.insert(stream)
            }
        };
        write_frame(stream, &self.frame, limit, written)
    }

    fn push_frame(&mut self, msg: &[u8]) {
        self.frame
            .extend_from_slice(itoa::Buffer::new().format(msg.len()).as_bytes());
        self.frame.push(b' ');
        self.frame.extend_from_slice(msg);
    }
}

impl Transport for Tcp {
    fn send(&mut self, msg: &[u8], limit: &Limit<'_>) -> Result<(), SendError> {
        self.frame.clear();
        self.push_frame(msg);
        self.send_frame(limit, &mut 0).map_err(|e| {
            // After a partial write the receiver holds half a frame: only a
            // new connection can carry the whole frame again (see the type's
            // documentation on duplicates).
            self.stream = None;
            SendError::Retry(e)
        })
    }

    /// The whole batch in one write when the socket has room.
    fn send_batch(
        &mut self,
        msgs: &[Vec<u8>],
        limit: &Limit<'_>,
    ) -> Result<(), (usize, SendError)> {
        // In writes of TCP_CHUNK messages, so that a slow receiver lets the
        // writer look at its queue (`limit.yield_now`) between them.
        let mut done = 0;
        let mut ends = Vec::with_capacity(TCP_CHUNK);
        for chunk in msgs.chunks(TCP_CHUNK) {
            if limit.yields_after(done) {
                return Err((done, SendError::Yield));
            }
            self.frame.clear();
            ends.clear();
            for m in chunk {
                self.push_frame(m);
                ends.push(self.frame.len());
            }
            let mut written = 0;
            if let Err(e) = self.send_frame(limit, &mut written) {
                self.stream = None;
                // Frames the kernel took whole count as sent, as for `send`.
                let whole = ends.iter().take_while(|&&end| end <= written).count();
                return Err((done + whole, SendError::Retry(e)));
            }
            done += chunk.len();
        }
        Ok(())
    }
}

/// Sends `msg` as one datagram on `sock` within `limit`, waiting a slice at
/// a time while the receiver's queue is full; `timeout` is the send
/// timeout set on `sock` (`None`: not known), so that an unchanged one
/// costs no syscall.
pub(super) fn send_datagram<S: DatagramSocket>(
    sock: &S,
    timeout: &mut Option<Duration>,
    msg: &[u8],
    limit: &Limit<'_>,
) -> io::Result<()> {
    loop {
        let Some(slice) = limit.slice() else {
            return Err(timed_out(format!(
                "the receiver did not take the {}-byte message within the send timeout",
                msg.len()
            )));
        };
        if *timeout != Some(slice) {
            sock.set_send_timeout(slice)?;
            *timeout = Some(slice);
        }
        match sock.send_one(msg) {
            Ok(n) if n == msg.len() => return Ok(()),
            Ok(n) => {
                return Err(io::Error::other(format!(
                    "short datagram: {n} of {} bytes sent",
                    msg.len()
                )));
            }
            // The receiver's queue is still full after a slice: the loop
            // head checks the limit.
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) => {}
            Err(e) => return Err(e),
        }
    }
}

/// A TCP connection to `addr` within the time `limit` leaves (not sliced:
/// std has no way to resume a connect).
pub(super) fn connect_within(addr: &SocketAddr, limit: &Limit<'_>) -> io::Result<TcpStream> {
    let left = limit.left();
    if left.is_zero() {
        return Err(timed_out("no time left to connect".into()));
    }
    TcpStream::connect_timeout(addr, left.max(MIN_TIMEOUT))
}

/// Whether the receiver already closed (FIN: read returns 0) or reset
/// (RST: read fails) the connection. `stream` is non-blocking. A syslog
/// receiver sends nothing; anything it does send is read and ignored.
pub(super) fn peer_closed(stream: &TcpStream) -> bool {
    let mut scratch = [0u8; 64];
    match (&*stream).read(&mut scratch) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => !matches!(
            e.kind(),
            io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
        ),
    }
}

/// Writes all of `frame` to the non-blocking `stream` within `limit`.
///
/// The common case is one non-blocking write. When the send buffer is full
/// the socket is switched to blocking mode with a write timeout of one
/// slice (SO_SNDTIMEO applies to blocking sockets only), until the frame is
/// out or the limit passed. std writes with MSG_NOSIGNAL: a reset
/// connection is an EPIPE error, not a SIGPIPE that would kill ulogd.
/// `written` counts the bytes the kernel took, also when it fails.
pub(super) fn write_frame(
    stream: &mut TcpStream,
    frame: &[u8],
    limit: &Limit<'_>,
    written: &mut usize,
) -> io::Result<()> {
    let mut rest = frame;
    let mut blocking = false;
    // The write timeout set on the socket (blocking mode only).
    let mut timeout = None;
    while !rest.is_empty() {
        if blocking {
            let slice = limit.slice().ok_or_else(|| {
                timed_out(format!(
                    "send timed out with {} of {} bytes written",
                    frame.len() - rest.len(),
                    frame.len()
                ))
            })?;
            if timeout != Some(slice) {
                stream.set_write_timeout(Some(slice))?;
                timeout = Some(slice);
            }
        }
        match stream.write(rest) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                rest = &rest[n..];
                *written += n;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if !blocking {
                    stream.set_nonblocking(false)?;
                    blocking = true;
                }
                // Blocking: a slice passed without room; the loop head
                // checks the limit.
            }
            Err(e) => return Err(e),
        }
    }
    if blocking {
        stream.set_nonblocking(true)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::io::Read;
    use std::net::{TcpListener, UdpSocket};
    use std::os::unix::net::UnixDatagram;
    use std::time::Duration;

    use super::*;
    use crate::sink::testutil::{parse_frames, temp_dir};

    const T: Duration = Duration::from_millis(500);

    fn send(t: &mut dyn Transport, msg: &[u8], timeout: Duration) -> Result<(), SendError> {
        let stop = StopSignal::new();
        t.send(
            msg,
            &Limit {
                yield_now: None,
                end: Instant::now() + timeout,
                stop: &stop,
            },
        )
    }

    fn retry(r: Result<(), SendError>) -> io::Error {
        match r {
            Err(SendError::Retry(e)) => e,
            other => panic!("expected Retry, got {other:?}"),
        }
    }

    #[test]
    fn unix_datagram_carries_exact_bytes() {
        let dir = temp_dir("transport-unix");
        let path = dir.path().join("log");
        let rx = UnixDatagram::bind(&path).unwrap();
        rx.set_read_timeout(Some(T)).unwrap();
        let mut t = open(&Destination::Unix(path));
        let payloads: [&[u8]; 3] = [b"<30>hello", b"", b"bin\x00\xff\n end"];
        for p in payloads {
            send(&mut *t, p, T).unwrap();
        }
        let mut buf = [0u8; 256];
        for p in payloads {
            let n = rx.recv(&mut buf).unwrap();
            assert_eq!(&buf[..n], p);
        }
    }

    fn send_batch(t: &mut dyn Transport, msgs: &[Vec<u8>]) -> Result<(), (usize, SendError)> {
        let stop = StopSignal::new();
        t.send_batch(
            msgs,
            &Limit {
                yield_now: None,
                end: Instant::now() + Duration::from_secs(30),
                stop: &stop,
            },
        )
    }

    /// A datagram batch goes out in `sendmmsg` calls as far as the
    /// receiver's short queue (10 datagrams here) takes it, and one message
    /// at a time with waiting when it is full: every message arrives once,
    /// whole, in order.
    #[test]
    fn a_datagram_batch_arrives_whole_once_and_in_order() {
        let dir = temp_dir("transport-unix-batch");
        let path = dir.path().join("log");
        let rx = UnixDatagram::bind(&path).unwrap();
        rx.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let msgs: Vec<Vec<u8>> = (0..500u32)
            .map(|i| format!("<30>m{i} {}", "x".repeat((i % 97) as usize)).into_bytes())
            .collect();
        let want = msgs.clone();
        let reader = std::thread::spawn(move || {
            let mut got = Vec::new();
            let mut buf = [0u8; 512];
            while got.len() < 500 {
                let n = rx.recv(&mut buf).unwrap();
                got.push(buf[..n].to_vec());
            }
            got
        });
        let mut t = open(&Destination::Unix(path));
        send_batch(&mut *t, &msgs).unwrap();
        assert_eq!(reader.join().unwrap(), want);
    }

    /// A message too large for a datagram in the middle of a batch: those
    /// before it are sent, it is rejected (not retried).
    #[test]
    fn an_oversized_datagram_in_a_batch_is_rejected_after_those_before_it() {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        rx.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut t = open(&Destination::Udp(rx.local_addr().unwrap()));
        let msgs = vec![
            b"<30>a".to_vec(),
            b"<30>b".to_vec(),
            vec![b'x'; 70_000],
            b"<30>d".to_vec(),
        ];
        match send_batch(&mut *t, &msgs) {
            Err((2, SendError::Reject(_))) => {}
            other => panic!("{other:?}"),
        }
        let mut buf = [0u8; 64];
        for want in [&b"<30>a"[..], b"<30>b"] {
            let n = rx.recv(&mut buf).unwrap();
            assert_eq!(&buf[..n], want);
        }
        // The rest of the batch goes on the next call.
        send_batch(&mut *t, &msgs[3..]).unwrap();
        let n = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"<30>d");
    }

    #[test]
    fn unix_missing_socket_is_retry_and_reconnects_when_it_appears() {
        let dir = temp_dir("transport-unix-missing");
        let path = dir.path().join("log");
        let mut t = open(&Destination::Unix(path.clone()));
        let e = retry(send(&mut *t, b"x", T));
        assert_eq!(e.kind(), io::ErrorKind::NotFound, "{e}");
        let rx = UnixDatagram::bind(&path).unwrap();
        send(&mut *t, b"after", T).unwrap();
        let mut buf = [0u8; 16];
        let n = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"after");
        // The receiver goes away and comes back at the same path (rsyslog
        // restart): the old connection is refused, the next send reconnects.
        drop(rx);
        std::fs::remove_file(&path).unwrap();
        retry(send(&mut *t, b"lost", T));
        let rx = UnixDatagram::bind(&path).unwrap();
        send(&mut *t, b"again", T).unwrap();
        let n = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"again");
    }

    #[test]
    fn unix_full_receiver_times_out_as_retry() {
        let dir = temp_dir("transport-unix-full");
        let path = dir.path().join("log");
        let _rx = UnixDatagram::bind(&path).unwrap();
        let mut t = open(&Destination::Unix(path));
        let short = Duration::from_millis(20);
        let msg = vec![b'x'; 4096];
        // Nobody reads: the receive queue fills, the send times out.
        let e = (0..100_000)
            .find_map(|_| send(&mut *t, &msg, short).err())
            .expect("the receiver's queue fills up");
        let e = retry(Err(e));
        assert_eq!(e.kind(), io::ErrorKind::TimedOut, "{e}");
    }

    fn udp_roundtrip(bind: &str) {
        let rx = UdpSocket::bind(bind).unwrap();
        rx.set_read_timeout(Some(T)).unwrap();
        let mut t = open(&Destination::Udp(rx.local_addr().unwrap()));
        send(&mut *t, b"<30>one", T).unwrap();
        send(&mut *t, b"<30>two \x00\xfe", T).unwrap();
        let mut buf = [0u8; 64];
        let n = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"<30>one");
        let n = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"<30>two \x00\xfe");
    }

    #[test]
    fn udp_ipv4_loopback_carries_exact_bytes() {
        udp_roundtrip("127.0.0.1:0");
    }

    #[test]
    fn udp_ipv6_loopback_carries_exact_bytes() {
        udp_roundtrip("[::1]:0");
    }

    #[test]
    fn udp_oversized_message_is_rejected_not_retried() {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut t = open(&Destination::Udp(rx.local_addr().unwrap()));
        match send(&mut *t, &vec![b'x'; 70_000], T) {
            Err(SendError::Reject(e)) => assert_eq!(e.raw_os_error(), Some(libc::EMSGSIZE)),
            other => panic!("expected Reject, got {other:?}"),
        }
        // The socket is still usable.
        send(&mut *t, b"small", T).unwrap();
    }

    #[test]
    fn tcp_frames_are_octet_counted() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut t = open(&Destination::Tcp(listener.local_addr().unwrap()));
        send(&mut *t, b"hello", T).unwrap();
        send(&mut *t, b"", T).unwrap();
        send(&mut *t, "h\u{e9}llo world\n".as_bytes(), T).unwrap();
        drop(t);
        let (mut conn, _) = listener.accept().unwrap();
        let mut got = Vec::new();
        conn.read_to_end(&mut got).unwrap();
        assert_eq!(got, "5 hello0 13 h\u{e9}llo world\n".as_bytes());
        let frames = parse_frames(&got).unwrap();
        assert_eq!(frames.len(), 3);
        assert_eq!(frames[2], "h\u{e9}llo world\n".as_bytes());
    }

    #[test]
    fn tcp_refused_is_retry() {
        let addr = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let mut t = open(&Destination::Tcp(addr));
        let e = retry(send(&mut *t, b"x", T));
        assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused, "{e}");
    }

    #[test]
    fn tcp_receiver_that_closed_is_noticed_before_writing() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut t = open(&Destination::Tcp(listener.local_addr().unwrap()));
        send(&mut *t, b"first", T).unwrap();
        let (mut conn, _) = listener.accept().unwrap();
        let mut buf = [0u8; 7];
        conn.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"5 first");
        // The receiver closes its end (a restart): the next message must go
        // out on a new connection, not into the dead one.
        drop(conn);
        std::thread::sleep(Duration::from_millis(50));
        send(&mut *t, b"second", T).unwrap();
        let (mut conn, _) = listener.accept().unwrap();
        drop(t);
        let mut got = Vec::new();
        conn.read_to_end(&mut got).unwrap();
        assert_eq!(got, b"6 second");
    }

    #[test]
    fn tcp_write_to_a_stuck_receiver_is_bounded_by_the_timeout() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut t = open(&Destination::Tcp(listener.local_addr().unwrap()));
        send(&mut *t, b"x", T).unwrap();
        let (_conn, _) = listener.accept().unwrap();
        // Nobody reads: the buffers fill and a write blocks until the
        // timeout.
        let msg = vec![b'y'; 256 * 1024];
        let short = Duration::from_millis(100);
        let mut err = None;
        for _ in 0..1000 {
            let t0 = Instant::now();
            if let Err(e) = send(&mut *t, &msg, short) {
                assert!(t0.elapsed() < short + Duration::from_millis(400));
                err = Some(e);
                break;
            }
        }
        let e = retry(Err(err.expect("the buffers fill up")));
        assert_eq!(e.kind(), io::ErrorKind::TimedOut, "{e}");
    }

    #[test]
    fn the_stop_deadline_cuts_a_blocked_write_short() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut t = open(&Destination::Tcp(listener.local_addr().unwrap()));
        send(&mut *t, b"x", T).unwrap();
        let (_conn, _) = listener.accept().unwrap();
        let stop = std::sync::Arc::new(StopSignal::new());
        let setter = std::sync::Arc::clone(&stop);
        let msg = vec![b'y'; 1024 * 1024];
        let long = Duration::from_secs(30);
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            setter.set(Instant::now());
        });
        let t0 = Instant::now();
        let res = (0..1000).find_map(|_| {
            let limit = Limit {
                yield_now: None,
                end: Instant::now() + long,
                stop: &stop,
            };
            t.send(&msg, &limit).err()
        });
        let elapsed = t0.elapsed();
        let e = retry(Err(res.expect("the buffers fill up")));
        assert_eq!(e.kind(), io::ErrorKind::TimedOut, "{e}");
        assert!(
            elapsed < Duration::from_millis(200) + 3 * SLICE,
            "{elapsed:?}"
        );
    }
}
