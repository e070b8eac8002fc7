//! Gap records: the log's own statement that conntrack events were lost
//! (ulogd's netlink socket overflowed), so that an investigator who finds
//! no line for a flow knows whether that period is complete.
//!
//! The three forms, beside the flow lines of the same format:
//! - text: `masqlog/1 ev=gap from=T to=T lost=N source=netlink`
//! - RFC 5424: MSGID `gap`, `[masqlog@32473 masqlog="1" ev="gap" from="T"
//!   to="T" lost="N" source="netlink"]`
//! - JSON: `{"masqlog":1,"ev":"gap","from":"T","to":"T","lost":N,"source":"netlink"}`
//!
//! T is RFC 3339 UTC with microseconds. The events were lost at some time
//! between `from` (the previous check, when none were missing) and `to`
//! (the check that found them missing).

use memchr::memmem;

use super::{FORMAT_VERSION, Header, header, json, rfc5424, text, write_u64};
use crate::config::Format;
use crate::record::Timestamp;
use crate::time;

/// A period in which conntrack events were lost.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Gap {
    pub from: Timestamp,
    pub to: Timestamp,
    /// Events lost (the socket's drop counter grew by this much).
    pub lost: u64,
}

/// What `source` says: the drop counter of the NETLINK_NETFILTER socket.
const SOURCE: &str = "netlink";

/// One field's value.
enum Val {
    Time(Timestamp),
    Num(u64),
    Word(&'static str),
}

fn write_val(v: &Val, out: &mut Vec<u8>) {
    match v {
        Val::Time(t) => time::write_rfc3339_micros(*t, out),
        Val::Num(n) => write_u64(out, *n),
        Val::Word(w) => out.extend_from_slice(w.as_bytes()),
    }
}

/// Appends one complete syslog message for `gap`; returns where its body
/// (the format's marker) starts, as [`super::write_syslog`] does.
pub fn write_syslog(format: Format, hdr: &Header<'_>, gap: &Gap, out: &mut Vec<u8>) -> usize {
    let fields = [
        ("from", Val::Time(gap.from)),
        ("to", Val::Time(gap.to)),
        ("lost", Val::Num(gap.lost)),
        ("source", Val::Word(SOURCE)),
    ];
    match format {
        Format::Text => {
            header::write_rfc3164(hdr, out);
            let start = out.len();
            out.extend_from_slice(text::MARKER.as_bytes());
            write_u64(out, FORMAT_VERSION.into());
            out.extend_from_slice(b" ev=gap");
            for (key, v) in &fields {
                out.push(b' ');
                out.extend_from_slice(key.as_bytes());
                out.push(b'=');
                write_val(v, out);
            }
            start
        }
        Format::Json => {
            header::write_rfc3164(hdr, out);
            let start = out.len();
            out.extend_from_slice(json::MARKER.as_bytes());
            write_u64(out, FORMAT_VERSION.into());
            out.extend_from_slice(b",\"ev\":\"gap\"");
            for (key, v) in &fields {
                out.extend_from_slice(b",\"");
                out.extend_from_slice(key.as_bytes());
                out.extend_from_slice(b"\":");
                let quoted = !matches!(v, Val::Num(_));
                if quoted {
                    out.push(b'"');
                }
                write_val(v, out);
                if quoted {
                    out.push(b'"');
                }
            }
            out.push(b'}');
            start
        }
        Format::Rfc5424 => {
            header::write_rfc5424(hdr, "gap", out);
            let start = out.len();
            out.extend_from_slice(rfc5424::MARKER.as_bytes());
            out.extend_from_slice(b"masqlog=\"");
            write_u64(out, FORMAT_VERSION.into());
            out.extend_from_slice(b"\" ev=\"gap\"");
            for (key, v) in &fields {
                out.push(b' ');
                out.extend_from_slice(key.as_bytes());
                out.extend_from_slice(b"=\"");
                write_val(v, out);
                out.push(b'"');
            }
            out.push(b']');
            start
        }
    }
}

/// The value of `key` in any of the three forms (`key=V`, `key="V"`,
/// `"key":"V"`, `"key":N`), starting the search at `from`.
fn value<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    for pat in [
        format!(" {key}=\""),
        format!("\"{key}\":\""),
        format!("\"{key}\":"),
        format!(" {key}="),
    ] {
        if let Some(at) = memmem::find(line.as_bytes(), pat.as_bytes()) {
            let rest = &line[at + pat.len()..];
            let end = rest.find(['"', ' ', ',', '}', ']']).unwrap_or(rest.len());
            return Some(&rest[..end]);
        }
    }
    None
}

/// Reads a gap record in any of the three forms; `None` for any other
/// line (flow lines included).
pub fn parse_gap(line: &str) -> Option<Gap> {
    let b = line.as_bytes();
    let marked = [
        &b" ev=gap "[..],
        &b"\"ev\":\"gap\""[..],
        &b" ev=\"gap\""[..],
    ]
    .iter()
    .any(|m| memmem::find(b, m).is_some());
    if !marked {
        return None;
    }
    let from = time::parse_rfc3339(value(line, "from")?)?;
    let to = time::parse_rfc3339(value(line, "to")?)?;
    let lost = value(line, "lost")?.parse().ok()?;
    (from.as_micros() <= to.as_micros()).then_some(Gap { from, to, lost })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::{parse_line, testutil::header};

    fn gap() -> Gap {
        Gap {
            from: Timestamp::new(1_795_475_490, 235_961),
            to: Timestamp::new(1_795_475_491, 7),
            lost: 1744,
        }
    }

    #[test]
    fn every_form_reads_back_and_is_no_flow_line() {
        for format in [Format::Text, Format::Json, Format::Rfc5424] {
            let mut out = Vec::new();
            write_syslog(format, &header(Some("gw1")), &gap(), &mut out);
            let line = String::from_utf8(out).unwrap();
            assert_eq!(parse_gap(&line), Some(gap()), "{line}");
            assert!(parse_line(&line).is_err(), "{line}");
            assert!(line.contains("lost"), "{line}");
        }
        let mut out = Vec::new();
        write_syslog(Format::Text, &header(None), &gap(), &mut out);
        let line = String::from_utf8(out).unwrap();
        assert!(
            line.ends_with(
                "masqlog/1 ev=gap from=2026-11-23T23:11:30.235961Z to=2026-11-23T23:11:31.000007Z lost=1744 source=netlink"
            ),
            "{line}"
        );
    }

    #[test]
    fn json_and_rfc5424_bodies_are_exact() {
        let t = "\"from\":\"2026-11-23T23:11:30.235961Z\",\"to\":\"2026-11-23T23:11:31.000007Z\"";
        for (format, want) in [
            (
                Format::Json,
                format!("{{\"masqlog\":1,\"ev\":\"gap\",{t},\"lost\":1744,\"source\":\"netlink\"}}"),
            ),
            (
                Format::Rfc5424,
                " gap [masqlog@32473 masqlog=\"1\" ev=\"gap\" from=\"2026-11-23T23:11:30.235961Z\" to=\"2026-11-23T23:11:31.000007Z\" lost=\"1744\" source=\"netlink\"]".to_string(),
            ),
        ] {
            let mut out = Vec::new();
            write_syslog(format, &header(Some("gw1")), &gap(), &mut out);
            let line = String::from_utf8(out).unwrap();
            assert!(line.ends_with(&want), "{line}");
        }
    }

    #[test]
    fn flow_lines_and_broken_gaps_are_not_gaps() {
        assert_eq!(parse_gap("masqlog/1 ev=start nat=snat proto=tcp"), None);
        assert_eq!(
            parse_gap("masqlog/1 ev=gap from=2026-11-23T20:31:30Z to=x lost=1"),
            None
        );
        assert_eq!(
            parse_gap("masqlog/1 ev=gap from=2026-11-23T20:31:31Z to=2026-11-23T20:31:30Z lost=1"),
            None,
            "to before from"
        );
    }
}
