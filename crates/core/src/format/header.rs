//! The syslog headers: RFC 3164 (`<PRI>Mmm dd hh:mm:ss HOST TAG[PID]: `,
//! what glibc's syslog() writes) for the text and JSON formats, and the
//! RFC 5424 header up to and including MSGID; and, reading a stored line,
//! where its syslog message begins ([`message_start`]): a masqlog record is
//! a message that begins with the format's marker, never a marker found
//! further on in another program's message.

use super::{Header, rfc5424, write_u64};
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

/// Where the syslog message of a stored line begins: the place a masqlog
/// record must start at. The forms read (after an optional `<PRI>`):
///
/// - RFC 5424, `1 TIMESTAMP HOST APP PROCID MSGID SD [MSG]`: the
///   structured-data element `[masqlog@32473 ...` wherever it stands among
///   the elements (RFC 5424 escaping keeps a value from opening one), else
///   MSG, after the structured data (`-` or elements), blanks and a BOM;
/// - a timestamp, `Mmm dd hh:mm:ss[.frac]` (RFC 3164, rsyslog's
///   traditional file format, journalctl) or `YYYY-MM-DD(T| )hh:mm:ss`
///   with an optional fraction and zone (rsyslog's high-precision file
///   format, journalctl's short-iso), then an optional HOST and the TAG: the
///   first of the next two words that ends in `:` and is not an address (an
///   IPv6 host such as `fe80::` ends in `:` too); the message follows it
///   and its blanks;
/// - no timestamp: the line (after `<PRI>`) is the message, a record
///   stored bare.
///
/// `None` for a line with a timestamp but no tag, or an RFC 5424 header cut
/// short: no message to start a record.
pub fn message_start(line: &[u8]) -> Option<usize> {
    let mut p = 0;
    if line.first() == Some(&b'<') {
        let close = line.iter().take(5).position(|&c| c == b'>');
        match close {
            Some(c) if c > 1 && line[1..c].iter().all(u8::is_ascii_digit) => p = c + 1,
            _ => return Some(0),
        }
        if line[p..].starts_with(b"1 ") {
            return rfc5424_message(line, p + 2);
        }
    }
    let Some(mut q) = timestamp_end(line, p) else {
        return Some(p);
    };
    for _ in 0..2 {
        if line.get(q) != Some(&b' ') {
            return None;
        }
        q = skip(line, q, b' ');
        let end = q + line[q..]
            .iter()
            .position(|&b| b == b' ')
            .unwrap_or(line.len() - q);
        let word = &line[q..end];
        let is_address = std::str::from_utf8(word)
            .ok()
            .is_some_and(|w| w.parse::<std::net::IpAddr>().is_ok());
        if word.len() > 1 && word.ends_with(b":") && !is_address {
            return Some(skip(line, end, b' '));
        }
        q = end;
    }
    None
}

/// The first position at or after `at` whose byte is not `b`.
fn skip(line: &[u8], at: usize, b: u8) -> usize {
    at + line[at..].iter().take_while(|&&c| c == b).count()
}

/// Whether `line[at..]` is `n` ASCII digits.
fn digits(line: &[u8], at: usize, n: usize) -> bool {
    line.get(at..at + n)
        .is_some_and(|d| d.iter().all(u8::is_ascii_digit))
}

/// `hh:mm:ss` at `at`.
fn clock(line: &[u8], at: usize) -> bool {
    digits(line, at, 2)
        && line.get(at + 2) == Some(&b':')
        && digits(line, at + 3, 2)
        && line.get(at + 5) == Some(&b':')
        && digits(line, at + 6, 2)
}

/// The end of a timestamp that starts at `p` (a fraction and a zone
/// included: everything up to the next space), or `None` if none starts
/// there.
fn timestamp_end(line: &[u8], p: usize) -> Option<usize> {
    let b = line.get(p..)?;
    let clock_at = if b.len() > 3 && time::MONTHS.iter().any(|m| b.starts_with(&m[..])) {
        // `Mmm dd` or `Mmm  d`
        let day_ok = b.get(3) == Some(&b' ')
            && (digits(b, 4, 2) || (b.get(4) == Some(&b' ') && digits(b, 5, 1)))
            && b.get(6) == Some(&b' ');
        day_ok.then_some(7)?
    } else {
        let date_ok = digits(b, 0, 4)
            && b.get(4) == Some(&b'-')
            && digits(b, 5, 2)
            && b.get(7) == Some(&b'-')
            && digits(b, 8, 2)
            && matches!(b.get(10), Some(b'T' | b' '));
        date_ok.then_some(11)?
    };
    if !clock(b, clock_at) {
        return None;
    }
    let rest = clock_at + 8;
    Some(p + rest + b[rest..].iter().take_while(|&&c| c != b' ').count())
}

/// The message of an RFC 5424 line whose header fields start at `p`
/// (after `<PRI>1 `): see [`message_start`].
fn rfc5424_message(line: &[u8], mut p: usize) -> Option<usize> {
    // TIMESTAMP HOSTNAME APP-NAME PROCID MSGID, one space after each.
    for _ in 0..5 {
        let n = line[p..].iter().take_while(|&&c| c != b' ').count();
        if n == 0 || line.get(p + n) != Some(&b' ') {
            return None;
        }
        p += n + 1;
    }
    match line.get(p) {
        Some(b'-') => p += 1,
        Some(b'[') => {
            while line.get(p) == Some(&b'[') {
                if line[p..].starts_with(rfc5424::MARKER.as_bytes()) {
                    return Some(p);
                }
                p = sd_element_end(line, p)?;
            }
        }
        _ => return None,
    }
    p = skip(line, p, b' ');
    if line[p..].starts_with(b"\xEF\xBB\xBF") {
        p += 3;
    }
    Some(p)
}

/// The position after the SD-ELEMENT that starts at `p` (`[`): its `]`,
/// outside the quoted PARAM-VALUEs (where `\` escapes `"`, `\` and `]`).
fn sd_element_end(line: &[u8], mut p: usize) -> Option<usize> {
    let mut quoted = false;
    p += 1;
    while let Some(&c) = line.get(p) {
        match c {
            b'\\' if quoted => p += 1,
            b'"' => quoted = !quoted,
            b']' if !quoted => return Some(p + 1),
            _ => {}
        }
        p += 1;
    }
    None
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

    /// Where the message begins in every stored form the readers know.
    #[test]
    fn message_start_after_every_header() {
        let cases: &[(&str, &str)] = &[
            // RFC 3164 as glibc writes it, with and without HOST.
            (
                "<30>Nov 21 12:38:12 gw1 masqlog[4242]: ",
                "masqlog/1 ev=end",
            ),
            ("<30>Nov  3 12:38:12 masqlog[4242]: ", "{\"masqlog\":1}"),
            // rsyslog's traditional and high-precision file formats.
            ("Nov 21 12:38:12 gw1 masqlog[4242]: ", "masqlog/1 ev=end"),
            ("2026-11-21T13:38:12.123456+01:00 gw1 masqlog[4242]: ", "x"),
            // journalctl: short-precise and short-iso; a date with a space.
            ("Nov 21 12:38:12.123456 gw1 masqlog[4242]: ", "x"),
            ("2026-11-21T13:38:12+0100 gw1 masqlog[4242]: ", "x"),
            ("2026-11-21 12:38:12 gw1 masqlog[4242]: ", "x"),
            // A tag without PID, a host that is an IPv6 address ending in
            // `:`, a host and a tag that look like the marker.
            ("Nov 21 12:38:12 gw1 masqlog: ", "x"),
            ("Nov 21 12:38:12 fe80:: masqlog[1]: ", "x"),
            (
                "Nov 21 12:38:12 masqlog/x masqlog/1[1]: ",
                "masqlog/1 ev=end",
            ),
            // RFC 5424: our element first, after another one, or MSG.
            (
                "<30>1 2026-11-21T12:38:12.7Z gw1 masqlog 4242 end ",
                "[masqlog@32473 a=\"1\"]",
            ),
            (
                "<30>1 2026-11-21T12:38:12.7Z gw1 masqlog 4242 end [o@1 a=\"\\]\"]",
                "[masqlog@32473 a=\"1\"]",
            ),
            (
                "<30>1 2026-11-21T12:38:12.7Z gw1 masqlog 4242 - -  ",
                "masqlog/1 ev=end",
            ),
            (
                "<30>1 2026-11-21T12:38:12.7Z gw1 sshd 1 - [o@1 a=\"[masqlog@32473 \"] ",
                "x",
            ),
            // Bare: the line is the message.
            ("", "masqlog/1 ev=end"),
            ("<30>", "masqlog/1 ev=end"),
            ("", "Nov 21 sshd[1]: x"),
        ];
        for (head, msg) in cases {
            let line = format!("{head}{msg}");
            assert_eq!(message_start(line.as_bytes()), Some(head.len()), "{line:?}");
        }
        for line in [
            // A timestamp and no tag, an RFC 5424 header cut short, an
            // unterminated SD element.
            "Nov 21 12:38:12 gw1 -- MARK --",
            "<30>1 2026-11-21T12:38:12.7Z gw1 masqlog",
            "<30>1 2026-11-21T12:38:12.7Z gw1 masqlog 4242 end [o@1 a=\"]",
        ] {
            assert_eq!(message_start(line.as_bytes()), None, "{line:?}");
        }
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
