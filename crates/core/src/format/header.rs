//! The syslog headers: RFC 3164 (`<PRI>Mmm dd hh:mm:ss HOST TAG[PID]: `,
//! what glibc's syslog() writes) for the text and JSON formats, and the
//! RFC 5424 header up to and including MSGID.

use super::{Header, write_u64};
use crate::time;

/// Appends `s` as one header token: printable ASCII other than the bytes in
/// `forbidden`, at most `max` bytes; any other byte becomes `_`, and an empty
/// token is written as `-`. Config validation keeps tag and hostname clean
/// already; this keeps a bad `Header` from breaking the message apart.
fn write_token(out: &mut Vec<u8>, s: &str, max: usize, forbidden: &[u8]) {
    if s.is_empty() {
        out.push(b'-');
        return;
    }
    out.extend(s.bytes().take(max).map(|b| {
        if b.is_ascii_graphic() && !forbidden.contains(&b) {
            b
        } else {
            b'_'
        }
    }));
}

fn write_pri(out: &mut Vec<u8>, pri: u8) {
    out.push(b'<');
    write_u64(out, pri.into());
    out.push(b'>');
}

/// Appends `<PRI>Mmm dd hh:mm:ss HOST TAG[PID]: `; HOST and its space are
/// left out when `hdr.hostname` is `None`.
pub(crate) fn write_rfc3164(hdr: &Header<'_>, out: &mut Vec<u8>) {
    write_pri(out, hdr.pri);
    time::write_rfc3164(hdr.timestamp, out);
    out.push(b' ');
    if let Some(host) = hdr.hostname {
        write_token(out, host, 255, b"");
        out.push(b' ');
    }
    // RFC 3164 4.1.3: the TAG is at most 32 characters; `:` and `[` end it.
    write_token(out, hdr.app, 32, b":[]");
    out.push(b'[');
    write_u64(out, hdr.pid.into());
    out.extend_from_slice(b"]: ");
}

/// Appends `<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID ` (RFC 5424 6.2),
/// with the NILVALUE `-` for an unknown hostname.
pub(crate) fn write_rfc5424(hdr: &Header<'_>, msgid: &str, out: &mut Vec<u8>) {
    write_pri(out, hdr.pri);
    out.extend_from_slice(b"1 ");
    time::write_rfc3339_micros(hdr.timestamp, out);
    out.push(b' ');
    write_token(out, hdr.hostname.unwrap_or(""), 255, b"");
    out.push(b' ');
    write_token(out, hdr.app, 48, b"");
    out.push(b' ');
    write_u64(out, hdr.pid.into());
    out.push(b' ');
    write_token(out, msgid, 32, b"");
    out.push(b' ');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Timestamp;

    fn hdr<'a>(hostname: Option<&'a str>, app: &'a str) -> Header<'a> {
        Header {
            pri: 191,
            timestamp: Timestamp::new(1_700_000_000, 42),
            hostname,
            app,
            pid: 0,
        }
    }

    fn rfc3164(h: &Header<'_>) -> String {
        let mut out = Vec::new();
        write_rfc3164(h, &mut out);
        String::from_utf8(out).unwrap()
    }

    fn rfc5424(h: &Header<'_>) -> String {
        let mut out = Vec::new();
        write_rfc5424(h, "start", &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn rfc3164_header() {
        assert_eq!(
            rfc3164(&hdr(Some("gw"), "nat")),
            "<191>Nov 14 22:13:20 gw nat[0]: "
        );
        assert_eq!(rfc3164(&hdr(None, "nat")), "<191>Nov 14 22:13:20 nat[0]: ");
    }

    #[test]
    fn rfc5424_header() {
        assert_eq!(
            rfc5424(&hdr(Some("gw"), "nat")),
            "<191>1 2023-11-14T22:13:20.000042Z gw nat 0 start "
        );
        assert_eq!(
            rfc5424(&hdr(None, "nat")),
            "<191>1 2023-11-14T22:13:20.000042Z - nat 0 start "
        );
    }

    #[test]
    fn bad_header_fields_cannot_split_the_message() {
        let l = rfc3164(&hdr(Some("evil host\n"), "a:b[c] d"));
        assert_eq!(l, "<191>Nov 14 22:13:20 evil_host_ a_b_c__d[0]: ");
        let l = rfc3164(&hdr(Some(""), ""));
        assert_eq!(l, "<191>Nov 14 22:13:20 - -[0]: ");
        let long = "x".repeat(100);
        let l = rfc5424(&hdr(Some("h é"), &long));
        assert_eq!(
            l,
            format!(
                "<191>1 2023-11-14T22:13:20.000042Z h___ {} 0 start ",
                "x".repeat(48)
            )
        );
    }
}
