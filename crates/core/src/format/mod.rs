//! The line formats: pure functions from a `FlowRecord` to the bytes of one
//! syslog message (text key=value, RFC 5424 structured data, JSON), and the
//! parsers that read our own lines back.
//!
//! Every format writes the same fields in the same order under the same
//! names (`fields.rs`); a field whose value is unknown is left out. All
//! writers append to a caller's reused `Vec<u8>` and never allocate per
//! field.

use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr};

use crate::config::Format;
use crate::record::{Endpoint, FlowRecord, Timestamp};

pub mod chain;
pub mod escape;
mod event;
mod fields;
pub mod gap;
mod header;
pub mod json;
pub mod json_reader;
pub mod parse;
pub mod rfc5424;
pub mod sealing;
#[cfg(any(test, feature = "testutil"))]
pub mod testutil;
pub mod text;

pub use header::message_start;
pub use parse::{ParseError, ParsedLine, parse_json, parse_line, parse_rfc5424, parse_text};

/// The version of the line format, written into every line.
pub const FORMAT_VERSION: u32 = 1;

/// The syslog header fields of one message.
#[derive(Clone, Copy, Debug)]
pub struct Header<'a> {
    /// facility * 8 + severity
    pub pri: u8,
    /// When the message was written.
    pub timestamp: Timestamp,
    /// Written for remote destinations; `None` leaves it out (local socket).
    pub hostname: Option<&'a str>,
    /// TAG / APP-NAME
    pub app: &'a str,
    pub pid: u32,
}

/// Appends one complete syslog message (header and body, no trailing newline)
/// for `rec` in `format` to `out`. Returns where the body (the format's
/// marker) starts in `out`: what [`sealing::seal_message`] seals.
pub fn write_syslog(
    format: Format,
    hdr: &Header<'_>,
    rec: &FlowRecord,
    out: &mut Vec<u8>,
) -> usize {
    match format {
        Format::Text => {
            header::write_rfc3164(hdr, out);
            let start = out.len();
            text::write_body(rec, out);
            start
        }
        Format::Json => {
            header::write_rfc3164(hdr, out);
            let start = out.len();
            json::write_body(rec, out);
            start
        }
        Format::Rfc5424 => {
            header::write_rfc5424(hdr, rec.event.name(), out);
            let start = out.len();
            rfc5424::write_sd(rec, out);
            start
        }
    }
}

/// Appends `n` in decimal.
fn write_u64(out: &mut Vec<u8>, n: u64) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

fn write_ipv4(out: &mut Vec<u8>, a: Ipv4Addr) {
    let mut buf = itoa::Buffer::new();
    for (i, octet) in a.octets().into_iter().enumerate() {
        if i > 0 {
            out.push(b'.');
        }
        out.extend_from_slice(buf.format(octet).as_bytes());
    }
}

/// Appends an address as std writes it (RFC 5952 for IPv6).
fn write_ip(out: &mut Vec<u8>, ip: IpAddr) {
    match ip {
        IpAddr::V4(a) => write_ipv4(out, a),
        // Writing into a Vec cannot fail.
        IpAddr::V6(a) => {
            let _ = write!(out, "{a}");
        }
    }
}

/// Appends `a.b.c.d:port`, `[v6]:port`, or the bare address when the port
/// is unknown. `close` is what closes the IPv6 bracket: `]`, or `\]` inside
/// an RFC 5424 PARAM-VALUE.
fn write_endpoint(out: &mut Vec<u8>, ep: &Endpoint, close: &[u8]) {
    match (ep.ip, ep.port) {
        (ip, None) => write_ip(out, ip),
        (IpAddr::V4(a), Some(port)) => {
            write_ipv4(out, a);
            out.push(b':');
            write_u64(out, port.into());
        }
        (ip @ IpAddr::V6(_), Some(port)) => {
            out.push(b'[');
            write_ip(out, ip);
            out.extend_from_slice(close);
            out.push(b':');
            write_u64(out, port.into());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testutil::{header, tcp_end};
    use super::*;

    fn line(format: Format, hdr: &Header<'_>, rec: &FlowRecord) -> String {
        let mut out = Vec::new();
        write_syslog(format, hdr, rec, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn text_message() {
        assert_eq!(
            line(Format::Text, &header(Some("gw1")), &tcp_end()),
            "<30>Nov 21 12:38:12 gw1 masqlog[4242]: masqlog/1 ev=end nat=snat proto=tcp \
             id=3954 client=10.99.0.2:40000 masq=192.0.2.1:53500 remote=203.0.113.7:443 \
             start=2026-11-21T12:37:42.123456Z end=2026-11-21T12:38:12.654321Z \
             out_pkts=5 out_bytes=400 in_pkts=4 in_bytes=3000"
        );
    }

    #[test]
    fn local_messages_leave_the_hostname_out() {
        let l = line(Format::Text, &header(None), &tcp_end());
        assert!(
            l.starts_with("<30>Nov 21 12:38:12 masqlog[4242]: masqlog/1 ev=end "),
            "{l}"
        );
        let l = line(Format::Json, &header(None), &tcp_end());
        assert!(
            l.starts_with("<30>Nov 21 12:38:12 masqlog[4242]: {\"masqlog\":1,"),
            "{l}"
        );
        let l = line(Format::Rfc5424, &header(None), &tcp_end());
        assert!(
            l.starts_with("<30>1 2026-11-21T12:38:12.700000Z - masqlog 4242 end "),
            "{l}"
        );
    }

    #[test]
    fn json_message() {
        assert_eq!(
            line(Format::Json, &header(Some("gw1")), &tcp_end()),
            "<30>Nov 21 12:38:12 gw1 masqlog[4242]: {\"masqlog\":1,\"ev\":\"end\",\
             \"nat\":\"snat\",\"proto\":\"tcp\",\"id\":3954,\
             \"client\":{\"ip\":\"10.99.0.2\",\"port\":40000},\
             \"masq\":{\"ip\":\"192.0.2.1\",\"port\":53500},\
             \"remote\":{\"ip\":\"203.0.113.7\",\"port\":443},\
             \"start\":\"2026-11-21T12:37:42.123456Z\",\"end\":\"2026-11-21T12:38:12.654321Z\",\
             \"out_pkts\":5,\"out_bytes\":400,\"in_pkts\":4,\"in_bytes\":3000}"
        );
    }

    #[test]
    fn rfc5424_message() {
        assert_eq!(
            line(Format::Rfc5424, &header(Some("gw1")), &tcp_end()),
            "<30>1 2026-11-21T12:38:12.700000Z gw1 masqlog 4242 end [masqlog@32473 \
             masqlog=\"1\" ev=\"end\" nat=\"snat\" proto=\"tcp\" id=\"3954\" \
             client=\"10.99.0.2:40000\" masq=\"192.0.2.1:53500\" remote=\"203.0.113.7:443\" \
             start=\"2026-11-21T12:37:42.123456Z\" end=\"2026-11-21T12:38:12.654321Z\" \
             out_pkts=\"5\" out_bytes=\"400\" in_pkts=\"4\" in_bytes=\"3000\"]"
        );
    }

    #[test]
    fn write_syslog_appends_without_clearing() {
        let mut out = b"keep".to_vec();
        write_syslog(Format::Text, &header(None), &tcp_end(), &mut out);
        assert!(out.starts_with(b"keep<30>"));
        assert!(!out.ends_with(b"\n"));
    }

    #[test]
    fn endpoints() {
        let ep = |s: &str, port| Endpoint {
            ip: s.parse().unwrap(),
            port,
        };
        let show = |e: Endpoint, close: &[u8]| {
            let mut out = Vec::new();
            write_endpoint(&mut out, &e, close);
            String::from_utf8(out).unwrap()
        };
        assert_eq!(show(ep("0.0.0.0", Some(0)), b"]"), "0.0.0.0:0");
        assert_eq!(
            show(ep("255.255.255.255", Some(65535)), b"]"),
            "255.255.255.255:65535"
        );
        assert_eq!(show(ep("10.1.2.3", None), b"]"), "10.1.2.3");
        assert_eq!(
            show(ep("2001:db8::1", Some(443)), b"]"),
            "[2001:db8::1]:443"
        );
        assert_eq!(
            show(ep("2001:db8::1", Some(443)), b"\\]"),
            "[2001:db8::1\\]:443"
        );
        assert_eq!(show(ep("2001:db8::1", None), b"]"), "2001:db8::1");
        assert_eq!(
            show(ep("::ffff:192.0.2.1", Some(1)), b"]"),
            "[::ffff:192.0.2.1]:1"
        );
    }
}
