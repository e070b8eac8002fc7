//! The writer's own records (gap and chain records, not flows): an event
//! name and a short list of plain fields, written in each of the three
//! formats beside the flow lines, and read back field by field.
//!
//! - text: `masqlog/1 ev=NAME key=value ...`
//! - JSON: `{"masqlog":1,"ev":"NAME","key":"value","n":1,...}`
//! - RFC 5424: MSGID `NAME`, `[masqlog@32473 masqlog="1" ev="NAME" key="value" ...]`
//!
//! Values are times, numbers and words of `[A-Za-z0-9._:-]` (written as
//! they are, so no escaping is needed).

use memchr::memmem;

use super::parse::record_body;
use super::{FORMAT_VERSION, Header, header, json, rfc5424, text, write_u64};
use crate::config::Format;
use crate::record::Timestamp;
use crate::time;

/// One field's value.
pub(crate) enum Val<'a> {
    Time(Timestamp),
    Num(u64),
    /// Letters, digits and `._:-` only.
    Word(&'a str),
}

fn write_val(v: &Val<'_>, out: &mut Vec<u8>) {
    match v {
        Val::Time(t) => time::write_rfc3339_micros(*t, out),
        Val::Num(n) => write_u64(out, *n),
        Val::Word(w) => {
            debug_assert!(
                w.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b".:_-".contains(&b))
            );
            out.extend_from_slice(w.as_bytes());
        }
    }
}

/// Appends one complete syslog message for event `ev` with `fields`;
/// returns where its body (the format's marker) starts.
pub(crate) fn write_syslog(
    format: Format,
    hdr: &Header<'_>,
    ev: &str,
    fields: &[(&str, Val<'_>)],
    out: &mut Vec<u8>,
) -> usize {
    match format {
        Format::Text => {
            header::write_rfc3164(hdr, out);
            let start = out.len();
            out.extend_from_slice(text::MARKER.as_bytes());
            write_u64(out, FORMAT_VERSION.into());
            out.extend_from_slice(b" ev=");
            out.extend_from_slice(ev.as_bytes());
            for (key, v) in fields {
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
            out.extend_from_slice(b",\"ev\":\"");
            out.extend_from_slice(ev.as_bytes());
            out.push(b'"');
            for (key, v) in fields {
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
            header::write_rfc5424(hdr, ev, out);
            let start = out.len();
            out.extend_from_slice(rfc5424::MARKER.as_bytes());
            out.extend_from_slice(b"masqlog=\"");
            write_u64(out, FORMAT_VERSION.into());
            out.extend_from_slice(b"\" ev=\"");
            out.extend_from_slice(ev.as_bytes());
            out.push(b'"');
            for (key, v) in fields {
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

/// Whether `line` is a record of event `ev` in one of the three forms (its
/// syslog message begins with the marker: see [`super::parse`]).
pub(crate) fn is_event(line: &str, ev: &str) -> bool {
    let Some(body) = record_body(line) else {
        return false;
    };
    let b = body.as_bytes();
    let text = format!(" ev={ev}");
    let text_hit = memmem::find_iter(b, text.as_bytes())
        .any(|at| matches!(b.get(at + text.len()), None | Some(b' ' | b'\r' | b'\n')));
    text_hit
        || [format!("\"ev\":\"{ev}\""), format!(" ev=\"{ev}\"")]
            .iter()
            .any(|m| memmem::find(b, m.as_bytes()).is_some())
}

/// The value of `key` in any of the three forms (`key=V`, `key="V"`,
/// `"key":"V"`, `"key":N`): the first occurrence in the record body.
pub(crate) fn value<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let line = record_body(line)?;
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
