//! RELP, the Reliable Event Logging Protocol of rsyslog (`imrelp`): every
//! message is a transaction that the receiver acknowledges, so a message
//! counts as delivered only once the receiver said `200 OK` for it.
//!
//! A frame is `TXNR SP COMMAND SP DATALEN [SP DATA] LF`. The session opens
//! with `open` (offering `relp_version=0` and `commands=syslog`), then each
//! message is a `syslog` command answered by `rsp` with the same
//! transaction number. A batch is written in one go and the answers read
//! back in order; a connection that breaks before an answer arrived leaves
//! that message and every later one unacknowledged, and they are sent again
//! on a new connection. A receiver that took a message but died before its
//! answer left may therefore get it twice; the conntrack id in the message
//! makes such a duplicate visible.

use std::io::{self, Read};
use std::net::{SocketAddr, TcpStream};

use super::transport::{Limit, SendError, Transport, write_frame};

/// The largest answer frame read from the receiver.
const MAX_ANSWER: usize = 4096;
/// Transaction numbers run 1 ..= this and wrap to 1.
const MAX_TXNR: u32 = 999_999_999;
/// What the `open` command offers.
const OFFER: &str = concat!(
    "relp_version=0\nrelp_software=masqlog,",
    env!("CARGO_PKG_VERSION"),
    "\ncommands=syslog"
);

/// One answer frame from the receiver.
#[derive(Debug, PartialEq, Eq)]
struct Answer {
    txnr: u32,
    command: String,
    data: Vec<u8>,
}

/// Parses one frame from the start of `buf`: `Ok(Some((answer, used)))`,
/// `Ok(None)` when more bytes are needed, `Err` for a malformed frame.
fn parse_answer(buf: &[u8]) -> io::Result<Option<(Answer, usize)>> {
    let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, format!("RELP: {what}"));
    let mut fields = [0usize; 3];
    let mut pos = 0;
    // TXNR SP COMMAND SP DATALEN
    for (i, field) in fields.iter_mut().enumerate() {
        let start = pos;
        loop {
            let Some(&b) = buf.get(pos) else {
                return if pos > start + 32 {
                    Err(bad("header field too long"))
                } else {
                    Ok(None)
                };
            };
            if b == b' ' || (i == 2 && b == b'\n') {
                break;
            }
            if pos - start >= 32 {
                return Err(bad("header field too long"));
            }
            pos += 1;
        }
        if pos == start {
            return Err(bad("empty header field"));
        }
        *field = pos;
        if i < 2 {
            pos += 1;
        }
    }
    let txnr_s = &buf[..fields[0]];
    let command = &buf[fields[0] + 1..fields[1]];
    let len_s = &buf[fields[1] + 1..fields[2]];
    let num = |s: &[u8]| -> Option<usize> {
        if s.is_empty() || s.len() > 9 || !s.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(s).ok()?.parse().ok()
    };
    let txnr = num(txnr_s).ok_or_else(|| bad("bad transaction number"))?;
    let len = num(len_s).ok_or_else(|| bad("bad data length"))?;
    if len > MAX_ANSWER {
        return Err(bad("answer too long"));
    }
    if !command.iter().all(u8::is_ascii_lowercase) {
        return Err(bad("bad command"));
    }
    let mut at = fields[2];
    let data = if len == 0 {
        // `... 0\n`, or `... 0 \n` as some senders write it
        if buf.get(at) == Some(&b' ') {
            at += 1;
        }
        Vec::new()
    } else {
        if buf.get(at) != Some(&b' ') {
            return if at >= buf.len() {
                Ok(None)
            } else {
                Err(bad("no space before the data"))
            };
        }
        at += 1;
        if buf.len() < at + len {
            return Ok(None);
        }
        let d = buf[at..at + len].to_vec();
        at += len;
        d
    };
    match buf.get(at) {
        None => Ok(None),
        Some(b'\n') => Ok(Some((
            Answer {
                txnr: txnr as u32,
                command: String::from_utf8_lossy(command).into_owned(),
                data,
            },
            at + 1,
        ))),
        Some(_) => Err(bad("frame not ended by LF")),
    }
}

/// Whether a `rsp` answer says `200`.
fn is_ok(data: &[u8]) -> bool {
    data.starts_with(b"200") && matches!(data.get(3), None | Some(b' ') | Some(b'\n'))
}

/// The RELP client.
pub(super) struct Relp {
    addr: SocketAddr,
    stream: Option<TcpStream>,
    /// The next transaction number.
    txnr: u32,
    /// Frames to write, reused.
    out: Vec<u8>,
    /// Bytes read and not yet parsed.
    inbuf: Vec<u8>,
}

impl Relp {
    pub(super) fn new(addr: SocketAddr) -> Self {
        Relp {
            addr,
            stream: None,
            txnr: 1,
            out: Vec::new(),
            inbuf: Vec::new(),
        }
    }

    fn next_txnr(&mut self) -> u32 {
        let t = self.txnr;
        self.txnr = if t >= MAX_TXNR { 1 } else { t + 1 };
        t
    }

    fn push_frame(&mut self, command: &str, data: &[u8]) -> u32 {
        let t = self.next_txnr();
        self.out
            .extend_from_slice(itoa::Buffer::new().format(t).as_bytes());
        self.out.push(b' ');
        self.out.extend_from_slice(command.as_bytes());
        self.out.push(b' ');
        self.out
            .extend_from_slice(itoa::Buffer::new().format(data.len()).as_bytes());
        if !data.is_empty() {
            self.out.push(b' ');
            self.out.extend_from_slice(data);
        }
        self.out.push(b'\n');
        t
    }

    /// Reads the next answer frame within `limit`.
    fn read_answer(&mut self, limit: &Limit<'_>) -> io::Result<Answer> {
        loop {
            if let Some((a, used)) = parse_answer(&self.inbuf)? {
                self.inbuf.drain(..used);
                return Ok(a);
            }
            if self.inbuf.len() > MAX_ANSWER + 64 {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "RELP: answer frame too long",
                ));
            }
            let stream = self.stream.as_mut().ok_or(io::ErrorKind::NotConnected)?;
            let Some(slice) = limit.slice() else {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the RELP receiver did not acknowledge within the send timeout",
                ));
            };
            stream.set_read_timeout(Some(slice))?;
            let mut chunk = [0u8; 2048];
            match stream.read(&mut chunk) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::ConnectionAborted,
                        "the RELP receiver closed the connection",
                    ));
                }
                Ok(n) => self.inbuf.extend_from_slice(&chunk[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock
                            | io::ErrorKind::TimedOut
                            | io::ErrorKind::Interrupted
                    ) => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Connects and opens the session.
    fn connect(&mut self, limit: &Limit<'_>) -> io::Result<()> {
        let stream = super::transport::connect_within(&self.addr, limit)?;
        stream.set_nodelay(true)?;
        self.stream = Some(stream);
        self.inbuf.clear();
        self.txnr = 1;
        self.out.clear();
        let t = self.push_frame("open", OFFER.as_bytes());
        self.write_out(limit)?;
        let a = self.read_answer(limit)?;
        if a.txnr != t || a.command != "rsp" || !is_ok(&a.data) {
            return Err(io::Error::other(format!(
                "the RELP receiver refused the session: {} {} {}",
                a.txnr,
                a.command,
                String::from_utf8_lossy(&a.data)
                    .lines()
                    .next()
                    .unwrap_or("")
            )));
        }
        Ok(())
    }

    fn write_out(&mut self, limit: &Limit<'_>) -> io::Result<()> {
        let stream = self.stream.as_mut().ok_or(io::ErrorKind::NotConnected)?;
        stream.set_nonblocking(true)?;
        let r = write_frame(stream, &self.out, limit, &mut 0);
        stream.set_nonblocking(false)?;
        r
    }

    fn try_batch(
        &mut self,
        msgs: &[Vec<u8>],
        limit: &Limit<'_>,
        acked: &mut usize,
    ) -> io::Result<()> {
        if self.stream.is_none() {
            self.connect(limit)?;
        }
        self.out.clear();
        let first = self.txnr;
        for m in msgs {
            self.push_frame("syslog", m);
        }
        self.write_out(limit)?;
        let mut want = first;
        while *acked < msgs.len() {
            let a = self.read_answer(limit)?;
            if a.command == "serverclose" {
                return Err(io::Error::new(
                    io::ErrorKind::ConnectionAborted,
                    "the RELP receiver is shutting down (serverclose)",
                ));
            }
            if a.command != "rsp" || a.txnr != want {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "RELP: expected the answer to transaction {want}, got {} {}",
                        a.txnr, a.command
                    ),
                ));
            }
            if !is_ok(&a.data) {
                return Err(io::Error::other(format!(
                    "the RELP receiver refused a message: {}",
                    String::from_utf8_lossy(&a.data)
                        .lines()
                        .next()
                        .unwrap_or("")
                )));
            }
            *acked += 1;
            want = if want >= MAX_TXNR { 1 } else { want + 1 };
        }
        Ok(())
    }
}

impl Transport for Relp {
    fn send(&mut self, msg: &[u8], limit: &Limit<'_>) -> Result<(), SendError> {
        self.send_batch(&[msg.to_vec()], limit).map_err(|(_, e)| e)
    }

    fn send_batch(
        &mut self,
        msgs: &[Vec<u8>],
        limit: &Limit<'_>,
    ) -> Result<(), (usize, SendError)> {
        let mut acked = 0;
        self.try_batch(msgs, limit, &mut acked).map_err(|e| {
            // Unanswered transactions cannot be matched on this connection
            // any more: start over on a new one.
            self.stream = None;
            (acked, SendError::Retry(e))
        })
    }
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader, Write};
    use std::net::TcpListener;
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use super::*;
    use crate::sink::StopSignal;

    fn limit(stop: &StopSignal) -> Limit<'_> {
        Limit {
            yield_now: None,
            end: Instant::now() + Duration::from_secs(2),
            stop,
        }
    }

    #[test]
    fn answers_parse() {
        let (a, n) = parse_answer(b"1 rsp 6 200 OK\nrest").unwrap().unwrap();
        assert_eq!(
            (a.txnr, a.command.as_str(), &a.data[..], n),
            (1, "rsp", &b"200 OK"[..], 15)
        );
        let (a, _) = parse_answer(b"0 serverclose 0\n").unwrap().unwrap();
        assert_eq!(a.command, "serverclose");
        assert!(parse_answer(b"12 rsp 6 200").unwrap().is_none());
        assert!(parse_answer(b"12 rsp").unwrap().is_none());
        for bad in [
            &b"x rsp 0\n"[..],
            b"1 rsp 99999 x\n",
            b"1 RSP 0\n",
            b"1 rsp 2 okX\n",
            b"1  rsp 0\n",
            b"123456789012345678901234567890123456 rsp 0\n",
        ] {
            assert!(
                parse_answer(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        assert!(is_ok(b"200 OK"));
        assert!(!is_ok(b"500 error"));
        assert!(!is_ok(b"2000"));
    }

    /// A RELP receiver on loopback: answers `open`, then acknowledges
    /// `syslog` frames until `ack_limit` (then closes without answering).
    fn receiver(
        ack_limit: usize,
        conns: usize,
    ) -> (SocketAddr, std::thread::JoinHandle<Vec<String>>) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let h = std::thread::spawn(move || {
            let mut got = Vec::new();
            for conn in l.incoming().take(conns) {
                let mut conn = conn.unwrap();
                let mut r = BufReader::new(conn.try_clone().unwrap());
                loop {
                    // TXNR SP COMMAND SP DATALEN SP DATA LF
                    let mut head = Vec::new();
                    if r.read_until(b' ', &mut head).unwrap() == 0 {
                        break;
                    }
                    let txnr = String::from_utf8(head).unwrap().trim().to_string();
                    let mut cmd = Vec::new();
                    r.read_until(b' ', &mut cmd).unwrap();
                    let cmd = String::from_utf8(cmd).unwrap().trim().to_string();
                    let mut len = Vec::new();
                    r.read_until(b' ', &mut len).unwrap();
                    let len: usize = String::from_utf8(len).unwrap().trim().parse().unwrap();
                    let mut data = vec![0; len + 1];
                    r.read_exact(&mut data).unwrap();
                    data.pop();
                    if cmd == "syslog" {
                        if got.len() >= ack_limit {
                            break;
                        }
                        got.push(String::from_utf8(data).unwrap());
                    } else {
                        assert_eq!(cmd, "open");
                        assert!(String::from_utf8_lossy(&data).contains("commands=syslog"));
                    }
                    writeln!(conn, "{txnr} rsp 6 200 OK").unwrap();
                }
            }
            got
        });
        (addr, h)
    }

    #[test]
    fn a_batch_is_acknowledged_message_by_message() {
        let (addr, h) = receiver(usize::MAX, 1);
        let stop = StopSignal::new();
        let mut t = Relp::new(addr);
        let msgs: Vec<Vec<u8>> = (0..5).map(|i| format!("m{i}").into_bytes()).collect();
        t.send_batch(&msgs, &limit(&stop)).unwrap();
        t.send_batch(&msgs[..2], &limit(&stop)).unwrap();
        drop(t);
        let got = h.join().unwrap();
        assert_eq!(got, ["m0", "m1", "m2", "m3", "m4", "m0", "m1"]);
    }

    #[test]
    fn unanswered_messages_are_not_counted_as_sent() {
        let (addr, h) = receiver(3, 2);
        let stop = Arc::new(StopSignal::new());
        let mut t = Relp::new(addr);
        let msgs: Vec<Vec<u8>> = (0..5).map(|i| format!("m{i}").into_bytes()).collect();
        match t.send_batch(&msgs, &limit(&stop)) {
            Err((3, SendError::Retry(_))) => {}
            Err((n, e)) => panic!("{n} acked, {e:?}"),
            Ok(()) => panic!("all acked"),
        }
        // the rest on a new connection
        t.send_batch(&msgs[3..], &limit(&stop)).unwrap_err();
        drop(t);
        let got = h.join().unwrap();
        assert_eq!(got, ["m0", "m1", "m2"]);
    }

    #[test]
    fn a_refused_port_is_retry() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        drop(l);
        let stop = StopSignal::new();
        let mut t = Relp::new(addr);
        assert!(matches!(
            t.send_batch(&[b"x".to_vec()], &limit(&stop)),
            Err((0, SendError::Retry(_)))
        ));
    }
}
