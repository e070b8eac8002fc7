//! The IPFIX transport (`ipfix+udp:`, `ipfix+tcp:`): packs the encoded
//! records of a batch (`masqlog_core::ipfix::encode_record`) into IPFIX
//! messages with templates, sequence numbers and the observation domain,
//! and sends them to the collector.
//!
//! Sequence numbers (RFC 7011 section 3.1) count the data records sent in
//! the transport session before each message: a collector counts the
//! records it missed. Over UDP the session is the socket, kept for the
//! life of the transport (a refused datagram does not close it, so the
//! count goes on); over TCP each connection is a new session that starts
//! at 0 and gets the templates first. Over UDP the templates in use are
//! sent again every `ipfix_template_refresh_s` seconds and every
//! `ipfix_template_refresh_msgs` messages (RFC 7011 section 8.4).
//!
//! A record never spans two messages. A batch goes out as a few messages of
//! at most `ipfix_max_message` bytes; when one fails, the records of the
//! messages before it count as delivered and the rest is retried (TCP: on a
//! new connection, after the spool took them), like a syslog batch.

use std::io;
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::transport::{
    DatagramSocket, Limit, SendError, Transport, connect_within, peer_closed, send_datagram,
    write_frame,
};
use masqlog_core::config::IpfixConfig;
use masqlog_core::ipfix::{FIRST_TEMPLATE, MessageBuilder, shape_of};

/// How messages reach the collector.
enum Socket {
    Udp(Option<UdpSocket>),
    Tcp(Option<TcpStream>),
}

/// An exporting process for one collector.
pub(super) struct Ipfix {
    to: SocketAddr,
    cfg: IpfixConfig,
    socket: Socket,
    /// The send timeout set on the UDP socket (`send_datagram`).
    timeout: Option<Duration>,
    /// Data records sent in this session: the next message's sequence
    /// number (modulo 2^32).
    sequence: u32,
    /// The templates the collector has, one bit per template id from
    /// `FIRST_TEMPLATE`.
    known: u8,
    /// UDP: when the templates were last (re)sent, and the messages since.
    refreshed: Option<Instant>,
    messages_since: u32,
    builder: MessageBuilder,
}

impl Ipfix {
    pub(super) fn new(to: SocketAddr, tcp: bool, cfg: IpfixConfig) -> Self {
        Ipfix {
            to,
            cfg,
            socket: if tcp {
                Socket::Tcp(None)
            } else {
                Socket::Udp(None)
            },
            timeout: None,
            sequence: 0,
            known: 0,
            refreshed: None,
            messages_since: 0,
            builder: MessageBuilder::new(cfg.max_message),
        }
    }

    /// Opens the socket if needed: a new TCP connection is a new session.
    fn connect(&mut self, limit: &Limit<'_>) -> io::Result<()> {
        match &mut self.socket {
            Socket::Udp(Some(_)) => {}
            Socket::Udp(sock) => {
                *sock = Some(UdpSocket::open(&self.to)?);
                self.timeout = None;
                self.sequence = 0;
                self.known = 0;
            }
            Socket::Tcp(stream) => {
                if stream.as_ref().is_some_and(peer_closed) {
                    *stream = None;
                }
                if stream.is_none() {
                    let s = connect_within(&self.to, limit)?;
                    s.set_nonblocking(true)?;
                    *stream = Some(s);
                    self.sequence = 0;
                    self.known = 0;
                }
            }
        }
        Ok(())
    }

    /// UDP: whether the templates are due again.
    fn refresh_due(&self, now: Instant) -> bool {
        match self.refreshed {
            None => true,
            Some(at) => {
                now.duration_since(at) >= self.cfg.template_refresh
                    || (self.cfg.template_refresh_messages > 0
                        && self.messages_since >= self.cfg.template_refresh_messages)
            }
        }
    }

    /// Sends the message in the builder.
    fn send_message(&mut self, limit: &Limit<'_>) -> io::Result<()> {
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as u32);
        let msg = self.builder.finish(secs, self.sequence, self.cfg.domain_id);
        match &mut self.socket {
            Socket::Udp(Some(sock)) => send_datagram(sock, &mut self.timeout, msg, limit),
            Socket::Tcp(Some(stream)) => write_frame(stream, msg, limit, &mut 0),
            _ => Err(io::Error::from(io::ErrorKind::NotConnected)),
        }
    }

    /// After a failed send: a TCP connection is dropped (the collector may
    /// hold half a message); the UDP socket stays, and so does its count.
    fn failed(&mut self) {
        if let Socket::Tcp(stream) = &mut self.socket {
            *stream = None;
        }
        self.known = 0;
    }
}

impl Transport for Ipfix {
    fn send(&mut self, msg: &[u8], limit: &Limit<'_>) -> Result<(), SendError> {
        self.send_batch(std::slice::from_ref(&msg.to_vec()), limit)
            .map_err(|(_, e)| e)
    }

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
            if let Err(e) = self.connect(limit) {
                self.failed();
                return Err((done, SendError::Retry(e)));
            }
            let now = Instant::now();
            if matches!(self.socket, Socket::Udp(_)) && self.refresh_due(now) {
                self.known = 0;
                self.refreshed = Some(now);
                self.messages_since = 0;
            }
            self.builder.clear();
            let mut next = done;
            while let Some(m) = msgs.get(next) {
                // An empty message is a record IPFIX has no event for.
                let Some(shape) = shape_of(m) else {
                    next += 1;
                    continue;
                };
                let bit = 1u8 << (shape.template_id() - FIRST_TEMPLATE);
                if self.known & bit == 0 {
                    if !self.builder.add_templates(&[shape]) {
                        break;
                    }
                    self.known |= bit;
                }
                if !self.builder.add_record(m) {
                    break;
                }
                next += 1;
            }
            if self.builder.records() == 0 {
                if next < msgs.len() && self.builder.is_empty() {
                    // Cannot happen for records encoded with this
                    // ipfix_max_message; one spooled under a larger one can.
                    return Err((
                        next,
                        SendError::Reject(io::Error::other(format!(
                            "an encoded IPFIX record of {} bytes does not fit ipfix_max_message={}",
                            msgs[next].len(),
                            self.cfg.max_message
                        ))),
                    ));
                }
                if next == msgs.len() && self.builder.is_empty() {
                    return Ok(());
                }
            }
            let records = self.builder.records();
            if let Err(e) = self.send_message(limit) {
                self.failed();
                return Err((done, SendError::Retry(e)));
            }
            self.sequence = self.sequence.wrapping_add(records);
            self.messages_since = self.messages_since.saturating_add(1);
            done = next;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
