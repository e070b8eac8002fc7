//! The sealing fields in the three formats: how a writer closes a message
//! with `w= run= seq= ep= prev=` and its `mac`, and how a reader finds the
//! sealed bytes and the MAC of a line again.
//!
//! The sealed bytes of a record run from its format's marker (`masqlog/`,
//! `{"masqlog":`, `[masqlog@32473 `) to the byte before the MAC field:
//! - text: `masqlog/1 ev=start ... w=gw1/masq1 run=4 seq=17 ep=2 prev=HEX` + ` mac=HEX`
//! - JSON: `{"masqlog":1,...,"w":"gw1/masq1","run":4,"seq":17,"ep":2,"prev":"HEX"` + `,"mac":"HEX"}`
//! - RFC 5424: `[masqlog@32473 masqlog="1" ... prev="HEX"` + ` mac="HEX"]`
//!
//! The syslog header before the marker is not sealed: relays rewrite it.

use super::{json, rfc5424, text};
use crate::config::Format;
use crate::seal::{Chain, MAC_LEN, MacBytes, SealFields, WriterId, hex_string, parse_hex_into};

pub(crate) const W: &str = "w";
pub(crate) const RUN: &str = "run";
pub(crate) const SEQ: &str = "seq";
pub(crate) const EP: &str = "ep";
pub(crate) const PREV: &str = "prev";
pub(crate) const MAC: &str = "mac";

/// The sealing fields of a line and its MAC, as read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SealTag {
    pub fields: SealFields,
    pub mac: MacBytes,
}

/// Seals the message that `out` ends with, whose body (the format's marker)
/// starts at `body_start`: adds the sealing fields of `chain`'s next record,
/// the MAC of the body under the chain's key, and the closing the format
/// needs. The message must be a complete, unsealed one of `format`.
pub fn seal_message(format: Format, body_start: usize, chain: &mut Chain, out: &mut Vec<u8>) {
    let f = chain.next_fields();
    let (writer, prev) = (f.writer.to_string(), hex_string(&f.prev));
    let (run, seq, ep) = (num(f.run), num(f.seq), num(f.epoch));
    let fields = [
        (W, writer.as_str()),
        (RUN, run.as_str()),
        (SEQ, seq.as_str()),
        (EP, ep.as_str()),
        (PREV, prev.as_str()),
    ];
    match format {
        Format::Text => {
            for (key, v) in fields {
                out.push(b' ');
                out.extend_from_slice(key.as_bytes());
                out.push(b'=');
                out.extend_from_slice(v.as_bytes());
            }
            let mac = chain.sign(&out[body_start..]);
            out.extend_from_slice(b" mac=");
            out.extend_from_slice(hex_string(&mac).as_bytes());
        }
        Format::Json => {
            debug_assert_eq!(out.last(), Some(&b'}'));
            out.pop();
            for (key, v) in fields {
                // The numbers bare, the writer and the MAC as strings.
                if key == W || key == PREV {
                    push_json_str(out, key, v);
                } else {
                    out.extend_from_slice(b",\"");
                    out.extend_from_slice(key.as_bytes());
                    out.extend_from_slice(b"\":");
                    out.extend_from_slice(v.as_bytes());
                }
            }
            let mac = chain.sign(&out[body_start..]);
            push_json_str(out, MAC, &hex_string(&mac));
            out.push(b'}');
        }
        Format::Rfc5424 => {
            debug_assert_eq!(out.last(), Some(&b']'));
            out.pop();
            for (key, v) in fields {
                push_sd_param(out, key, v);
            }
            let mac = chain.sign(&out[body_start..]);
            push_sd_param(out, MAC, &hex_string(&mac));
            out.push(b']');
        }
    }
}

fn num(n: u64) -> String {
    itoa::Buffer::new().format(n).to_string()
}

fn push_json_str(out: &mut Vec<u8>, key: &str, v: &str) {
    out.extend_from_slice(b",\"");
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(b"\":\"");
    out.extend_from_slice(v.as_bytes());
    out.push(b'"');
}

fn push_sd_param(out: &mut Vec<u8>, key: &str, v: &str) {
    out.push(b' ');
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(b"=\"");
    out.extend_from_slice(v.as_bytes());
    out.push(b'"');
}

/// A sealed line as a verifier needs it: the sealed bytes and the MAC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SealedBytes<'a> {
    pub format: Format,
    /// Where the body (the marker) starts in the line.
    pub start: usize,
    /// The bytes the MAC covers.
    pub body: &'a [u8],
    pub mac: MacBytes,
}

/// The sealed bytes and MAC of `line` if it ends with a MAC field (trailing
/// CR, LF and blanks aside). The body starts where the line's syslog
/// message begins ([`super::header::message_start`]), which must be the
/// marker of the line's format; `None` for a line without one.
pub fn sealed_bytes(line: &[u8]) -> Option<SealedBytes<'_>> {
    let end = line.len()
        - line
            .iter()
            .rev()
            .take_while(|b| b.is_ascii_whitespace())
            .count();
    let line = &line[..end];
    let hex_at = |suffix_len: usize| line.len().checked_sub(suffix_len + 2 * MAC_LEN);
    let read_mac = |at: usize| {
        let mut mac = [0u8; MAC_LEN];
        std::str::from_utf8(&line[at..at + 2 * MAC_LEN])
            .ok()
            .filter(|h| parse_hex_into(h, &mut mac))
            .map(|_| mac)
    };
    // (format, what precedes the hex, what follows it, the marker)
    let forms: [(Format, &[u8], &[u8], &str); 3] = [
        (Format::Json, b",\"mac\":\"", b"\"}", json::MARKER),
        (Format::Rfc5424, b" mac=\"", b"\"]", rfc5424::MARKER),
        (Format::Text, b" mac=", b"", text::MARKER),
    ];
    for (format, before, after, marker) in forms {
        if !line.ends_with(after) {
            continue;
        }
        let Some(hex) = hex_at(after.len()) else {
            continue;
        };
        let Some(field) = hex.checked_sub(before.len()) else {
            continue;
        };
        if &line[field..hex] != before {
            continue;
        }
        let Some(mac) = read_mac(hex) else {
            continue;
        };
        // The body is the record: the line's message must begin with the
        // marker (a record quoted inside another message is none).
        let start = super::header::message_start(line).filter(|&s| s <= field)?;
        if !line[start..field].starts_with(marker.as_bytes()) {
            return None;
        }
        return Some(SealedBytes {
            format,
            start,
            body: &line[start..field],
            mac,
        });
    }
    None
}

impl SealedBytes<'_> {
    /// The sealing fields, read from the end of the body where the writer
    /// put them, in their fixed order (so that nothing in the record's own
    /// fields, such as an identd's user name, can pass for them).
    pub fn fields(&self) -> Option<SealFields> {
        let body = std::str::from_utf8(self.body).ok()?;
        let (w, run, seq, ep, prev) = match self.format {
            Format::Text => {
                let at = body.rfind(" w=")?;
                let mut it = body[at + 1..].split(' ');
                let mut next = |key: &str| it.next()?.strip_prefix(key)?.strip_prefix('=');
                let v = (next(W)?, next(RUN)?, next(SEQ)?, next(EP)?, next(PREV)?);
                if it.next().is_some() {
                    return None;
                }
                v
            }
            Format::Json => {
                let at = body.rfind(",\"w\":\"")?;
                let rest = &body[at + 1..];
                let mut it = rest.split(',');
                let mut next = |key: &str| {
                    let kv = it.next()?;
                    let v = kv
                        .strip_prefix('"')?
                        .strip_prefix(key)?
                        .strip_prefix("\":")?;
                    Some(
                        v.strip_prefix('"')
                            .and_then(|v| v.strip_suffix('"'))
                            .unwrap_or(v),
                    )
                };
                let v = (next(W)?, next(RUN)?, next(SEQ)?, next(EP)?, next(PREV)?);
                if it.next().is_some() {
                    return None;
                }
                v
            }
            Format::Rfc5424 => {
                let at = body.rfind(" w=\"")?;
                let mut it = body[at + 1..].split(' ');
                let mut next = |key: &str| {
                    it.next()?
                        .strip_prefix(key)?
                        .strip_prefix("=\"")?
                        .strip_suffix('"')
                };
                let v = (next(W)?, next(RUN)?, next(SEQ)?, next(EP)?, next(PREV)?);
                if it.next().is_some() {
                    return None;
                }
                v
            }
        };
        let num = |s: &str| {
            (!s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit()))
                .then(|| s.parse().ok())
                .flatten()
        };
        let mut prev_mac = [0u8; MAC_LEN];
        if !parse_hex_into(prev, &mut prev_mac) {
            return None;
        }
        Some(SealFields {
            writer: WriterId::parse(w)?,
            run: num(run)?,
            seq: num(seq)?,
            epoch: num(ep)?,
            prev: prev_mac,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::testutil::{header, tcp_start};
    use crate::format::{parse_line, write_syslog};
    use crate::seal::{Epochs, VerifyKey};

    fn chain() -> (VerifyKey, Chain) {
        let key = VerifyKey::generate("gw1", 1_764_000_000, 900).unwrap();
        let chain = Chain::start(key.initial_state(), "masq1", 3).unwrap();
        (key, chain)
    }

    fn sealed(format: Format, chain: &mut Chain) -> Vec<u8> {
        let mut out = Vec::new();
        let start = write_syslog(format, &header(Some("gw1")), &tcp_start(), &mut out);
        seal_message(format, start, chain, &mut out);
        out
    }

    #[test]
    fn every_format_seals_and_reads_back_what_it_sealed() {
        for format in [Format::Text, Format::Json, Format::Rfc5424] {
            let (key, mut c) = chain();
            let first = sealed(format, &mut c);
            let second = sealed(format, &mut c);
            let line = String::from_utf8(second.clone()).unwrap();
            let sb = sealed_bytes(&second).unwrap_or_else(|| panic!("{line}"));
            assert_eq!(sb.format, format);
            let k = key.ring().writer_key("masq1", 0).unwrap();
            assert!(k.verify(sb.body, &sb.mac), "{line}");
            let p = parse_line(&line).unwrap();
            let tag = p.seal.clone().expect("sealed");
            assert_eq!(
                (tag.fields.run, tag.fields.seq, tag.fields.epoch),
                (3, 2, 0)
            );
            assert_eq!(tag.fields.writer.to_string(), "gw1/masq1");
            assert_eq!(tag.mac, sb.mac);
            assert_eq!(sb.fields().as_ref(), Some(&tag.fields), "{line}");
            // prev is the MAC of the record before.
            assert_eq!(tag.fields.prev, sealed_bytes(&first).unwrap().mac);
            assert!(p.extra.is_empty(), "{:?}", p.extra);
            assert_eq!(p.record, tcp_start());
            // One changed byte in the body breaks the MAC.
            let mut bad = second.clone();
            let at = sb.start + 20;
            bad[at] ^= 1;
            let sb = sealed_bytes(&bad).unwrap();
            assert!(!k.verify(sb.body, &sb.mac));
        }
    }

    #[test]
    fn the_text_form_is_exact() {
        let (_, mut c) = chain();
        let line = String::from_utf8(sealed(Format::Text, &mut c)).unwrap();
        let tail = line.split(" start=").nth(1).unwrap();
        assert!(
            tail.starts_with(&format!(
                "2026-11-21T12:37:42.123456Z w=gw1/masq1 run=3 seq=1 ep=0 prev={} mac=",
                "0".repeat(32)
            )),
            "{line}"
        );
        let _ = Epochs {
            t0: 0,
            epoch_secs: 60,
        };
    }

    #[test]
    fn a_user_name_that_looks_like_sealing_fields_is_not_read_as_them() {
        let mut rec = tcp_start();
        rec.ident = Some(crate::record::IdentInfo {
            status: crate::record::IdentStatus::User,
            user: Some(b"x w=gw9/evil run=1 seq=1 ep=0 prev=00".to_vec()),
            opsys: Some(b"UNIX".to_vec()),
            detail: None,
        });
        for format in [Format::Text, Format::Json, Format::Rfc5424] {
            let (_, mut c) = chain();
            let mut out = Vec::new();
            let start = write_syslog(format, &header(None), &rec, &mut out);
            seal_message(format, start, &mut c, &mut out);
            let f = sealed_bytes(&out).unwrap().fields().unwrap();
            assert_eq!(f.writer.to_string(), "gw1/masq1");
            assert_eq!(f.seq, 1);
        }
    }

    /// The sealed body starts where the message does: a user name holding
    /// a marker (which the body then holds twice) is no second start, and a
    /// sealed record quoted inside another program's message is no record.
    #[test]
    fn the_body_starts_at_the_message_not_at_a_marker_further_on() {
        let mut rec = tcp_start();
        rec.ident = Some(crate::record::IdentInfo {
            status: crate::record::IdentStatus::User,
            user: Some(b"masqlog/1 [masqlog@32473 ".to_vec()),
            opsys: Some(b"UNIX".to_vec()),
            detail: None,
        });
        for format in [Format::Text, Format::Json, Format::Rfc5424] {
            let (key, mut c) = chain();
            let mut out = Vec::new();
            let start = write_syslog(format, &header(Some("gw1")), &rec, &mut out);
            seal_message(format, start, &mut c, &mut out);
            let sb = sealed_bytes(&out).unwrap();
            assert_eq!(sb.start, start, "{format:?}");
            let k = key.ring().writer_key("masq1", 0).unwrap();
            assert!(k.verify(sb.body, &sb.mac), "{format:?}");
            // The same bytes after `sshd[1]: Invalid user `.
            let mut quoted = b"Nov 21 12:37:42 gw1 sshd[1]: Invalid user ".to_vec();
            quoted.extend_from_slice(&out[start..]);
            assert!(sealed_bytes(&quoted).is_none(), "{format:?}");
        }
    }

    #[test]
    fn unsealed_or_damaged_endings_are_not_sealed() {
        let (_, mut c) = chain();
        let good = sealed(Format::Text, &mut c);
        assert!(sealed_bytes(&good[..good.len() - 1]).is_none());
        assert!(sealed_bytes(b"masqlog/1 ev=start mac=zz").is_none());
        assert!(sealed_bytes(b"").is_none());
        let mut unmarked = good.clone();
        let at = memchr::memmem::find(&unmarked, b"masqlog/").unwrap();
        unmarked[at] = b'X';
        assert!(sealed_bytes(&unmarked).is_none());
        // Trailing newline and CR are not part of the line.
        let mut nl = good.clone();
        nl.extend_from_slice(b"\r\n");
        assert_eq!(
            sealed_bytes(&nl).unwrap().body,
            sealed_bytes(&good).unwrap().body
        );
    }
}
