//! Reading our own lines back (for the CLI and the tests): the text, JSON
//! or RFC 5424 form where the line's syslog message begins (after an
//! rsyslog prefix, a raw RFC 3164 or RFC 5424 header, or at the start of a
//! bare line: see [`super::header::message_start`]), with the escaping
//! undone exactly. A marker further on in a message (another program's
//! line that quotes one) is not a record: [`ParseError::NotAtStart`].
//! Never panics, on any input.

use std::net::IpAddr;

use super::escape::{self, is_bare};
use super::fields::{
    CLIENT, END, EV, ICMP_CODE, ICMP_TYPE, ID, IDENT, IDENT_DETAIL, IN_BYTES, IN_PKTS, MASQ, NAT,
    OPSYS, OUT_BYTES, OUT_PKTS, PROTO, REMOTE, REMOTE_HASH, START, USER, VERSION,
};
use super::header::message_start;
use super::json_reader::{JsonValue, Member, Reader};
use super::sealing::{self, SealTag};
use super::{FORMAT_VERSION, json, rfc5424, text};
use crate::record::{
    Counters, Endpoint, Event, FlowRecord, IdentInfo, IdentStatus, NatKind, Proto, Remote,
    Timestamp,
};
use crate::seal::{MAC_LEN, SealFields, WriterId, parse_hex_into};
use crate::time::parse_rfc3339;

/// One line read back: the record it was written from, and the fields this
/// build does not know.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParsedLine {
    /// The record, as the plugin formatted it. Its `remote` is
    /// [`Remote::Hashed`] or [`Remote::Omitted`] when the line leaves the
    /// endpoint out (the plugin's `remote=hash` or `remote=omit`).
    pub record: FlowRecord,
    /// Fields of later versions of the format, in line order, with their
    /// values unescaped: text and RFC 5424 values as bytes; JSON strings as
    /// [`escape::unescape_json_bytes`] gives them back, other JSON values as
    /// their raw JSON text. Unknown members of a JSON endpoint object appear
    /// as `client.NAME`.
    pub extra: Vec<(String, Vec<u8>)>,
    /// The sealing fields and MAC when the line is sealed (all of `w`,
    /// `run`, `seq`, `ep`, `prev` and `mac`); whether the MAC is right is
    /// for a verifier with the key to say.
    pub seal: Option<SealTag>,
}

/// Why a line could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("no masqlog record in the line (looked for `{marker}`)")]
    NotFound { marker: &'static str },
    /// The marker is in the line, but not where its syslog message begins:
    /// another program's message that holds one is no record.
    #[error("the masqlog marker `{marker}` is inside the message, not at its start: not a record")]
    NotAtStart { marker: &'static str },
    #[error("unknown masqlog format version {version} (this build reads version {FORMAT_VERSION})")]
    UnknownVersion { version: String },
    #[error("missing field `{0}`")]
    MissingField(&'static str),
    #[error("field `{0}` appears more than once")]
    DuplicateField(String),
    #[error("field `{field}` has an invalid value {value:?}")]
    InvalidValue { field: String, value: String },
    #[error("syntax error at byte {at}: {what}")]
    Syntax { at: usize, what: &'static str },
}

/// At most this much of a bad value is quoted in an error.
const SHOWN: usize = 64;

fn shown(value: &[u8]) -> String {
    let cut = value.len().min(SHOWN);
    let mut s = String::from_utf8_lossy(&value[..cut]).into_owned();
    if cut < value.len() {
        s.push_str("...");
    }
    s
}

/// A field name that the line chose (an unknown field), as an error shows
/// it: cut like a value, control characters escaped.
fn shown_name(name: &str) -> String {
    let mut s = String::new();
    for c in shown(name.as_bytes()).chars() {
        if c.is_control() {
            s.extend(c.escape_default());
        } else {
            s.push(c);
        }
    }
    s
}

fn invalid(field: &str, value: &[u8]) -> ParseError {
    ParseError::InvalidValue {
        field: field.to_string(),
        value: shown(value),
    }
}

/// 32 lowercase hexadecimal digits.
fn parse_hash(v: &[u8]) -> Option<u128> {
    if v.len() != 32 || !v.iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    u128::from_str_radix(std::str::from_utf8(v).ok()?, 16).ok()
}

/// A decimal number of ASCII digits only (no sign, no space).
fn parse_uint(v: &[u8]) -> Option<u64> {
    if v.is_empty() {
        return None;
    }
    v.iter().try_fold(0u64, |acc, &b| {
        if !b.is_ascii_digit() {
            return None;
        }
        acc.checked_mul(10)?.checked_add(u64::from(b - b'0'))
    })
}

fn parse_event(v: &[u8]) -> Option<Event> {
    [Event::Start, Event::Update, Event::End, Event::Ident]
        .into_iter()
        .find(|e| e.name().as_bytes() == v)
}

fn parse_nat(v: &[u8]) -> Option<NatKind> {
    [NatKind::Snat, NatKind::Dnat]
        .into_iter()
        .find(|n| n.name().as_bytes() == v)
}

/// A protocol name, or a protocol number (known numbers map to their
/// names). ICMP type and code are filled in later.
fn parse_proto(v: &[u8]) -> Option<Proto> {
    if let Some(n) = parse_uint(v) {
        return u8::try_from(n)
            .ok()
            .map(|n| Proto::from_number(n, None, None));
    }
    [6u8, 17, 136, 132, 33, 1, 58]
        .into_iter()
        .map(|n| Proto::from_number(n, None, None))
        .find(|p| p.name().is_some_and(|name| name.as_bytes() == v))
}

/// `a.b.c.d:port`, `[v6]:port`, or a bare address of either family.
fn parse_endpoint(v: &[u8]) -> Option<Endpoint> {
    let s = std::str::from_utf8(v).ok()?;
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(Endpoint { ip, port: None });
    }
    let (ip, port) = match s.strip_prefix('[') {
        Some(rest) => {
            let (ip, port) = rest.split_once("]:")?;
            (IpAddr::V6(ip.parse().ok()?), port)
        }
        None => {
            let (ip, port) = s.rsplit_once(':')?;
            (IpAddr::V4(ip.parse().ok()?), port)
        }
    };
    let port = u16::try_from(parse_uint(port.as_bytes())?).ok()?;
    Some(Endpoint {
        ip,
        port: Some(port),
    })
}

fn parse_time(v: &[u8]) -> Option<Timestamp> {
    parse_rfc3339(std::str::from_utf8(v).ok()?)
}

fn put<T>(slot: &mut Option<T>, key: &str, value: T) -> Result<(), ParseError> {
    if slot.is_some() {
        return Err(ParseError::DuplicateField(key.to_string()));
    }
    *slot = Some(value);
    Ok(())
}

/// Collects fields in any order and checks them.
#[derive(Default)]
struct Builder {
    version: bool,
    event: Option<Event>,
    nat: Option<NatKind>,
    proto: Option<Proto>,
    icmp_type: Option<Vec<u8>>,
    icmp_code: Option<Vec<u8>>,
    id: Option<u32>,
    client: Option<Endpoint>,
    masq: Option<Endpoint>,
    remote: Option<Endpoint>,
    remote_hash: Option<u128>,
    start: Option<Timestamp>,
    end: Option<Timestamp>,
    out_pkts: Option<u64>,
    out_bytes: Option<u64>,
    in_pkts: Option<u64>,
    in_bytes: Option<u64>,
    extra: Vec<(String, Vec<u8>)>,
}

impl Builder {
    /// Takes one field in its text form (as the text and RFC 5424 formats
    /// write it).
    fn set(&mut self, key: &str, v: &[u8]) -> Result<(), ParseError> {
        let bad = || invalid(key, v);
        match key {
            VERSION => {
                if self.version {
                    return Err(ParseError::DuplicateField(key.to_string()));
                }
                if v != itoa::Buffer::new().format(FORMAT_VERSION).as_bytes() {
                    if parse_uint(v).is_none() {
                        return Err(bad());
                    }
                    return Err(ParseError::UnknownVersion { version: shown(v) });
                }
                self.version = true;
                Ok(())
            }
            EV => put(&mut self.event, key, parse_event(v).ok_or_else(bad)?),
            NAT => put(&mut self.nat, key, parse_nat(v).ok_or_else(bad)?),
            PROTO => put(&mut self.proto, key, parse_proto(v).ok_or_else(bad)?),
            // Checked in `finish`, once the protocol is known.
            ICMP_TYPE => put(&mut self.icmp_type, key, v.to_vec()),
            ICMP_CODE => put(&mut self.icmp_code, key, v.to_vec()),
            ID => {
                let id = parse_uint(v).and_then(|n| u32::try_from(n).ok());
                put(&mut self.id, key, id.ok_or_else(bad)?)
            }
            CLIENT => put(&mut self.client, key, parse_endpoint(v).ok_or_else(bad)?),
            MASQ => put(&mut self.masq, key, parse_endpoint(v).ok_or_else(bad)?),
            REMOTE => put(&mut self.remote, key, parse_endpoint(v).ok_or_else(bad)?),
            REMOTE_HASH => put(&mut self.remote_hash, key, parse_hash(v).ok_or_else(bad)?),
            START => put(&mut self.start, key, parse_time(v).ok_or_else(bad)?),
            END => put(&mut self.end, key, parse_time(v).ok_or_else(bad)?),
            OUT_PKTS => put(&mut self.out_pkts, key, parse_uint(v).ok_or_else(bad)?),
            OUT_BYTES => put(&mut self.out_bytes, key, parse_uint(v).ok_or_else(bad)?),
            IN_PKTS => put(&mut self.in_pkts, key, parse_uint(v).ok_or_else(bad)?),
            IN_BYTES => put(&mut self.in_bytes, key, parse_uint(v).ok_or_else(bad)?),
            _ => {
                self.extra.push((key.to_string(), v.to_vec()));
                Ok(())
            }
        }
    }

    fn set_endpoint(&mut self, key: &str, ep: Endpoint) -> Result<(), ParseError> {
        match key {
            CLIENT => put(&mut self.client, key, ep),
            MASQ => put(&mut self.masq, key, ep),
            _ => put(&mut self.remote, key, ep),
        }
    }

    fn finish(mut self) -> Result<ParsedLine, ParseError> {
        if !self.version {
            return Err(ParseError::MissingField(VERSION));
        }
        let mut proto = self.proto.ok_or(ParseError::MissingField(PROTO))?;
        let small = |key: &'static str, v: Option<Vec<u8>>| -> Result<Option<u8>, ParseError> {
            v.map(|v| {
                parse_uint(&v)
                    .and_then(|n| u8::try_from(n).ok())
                    .ok_or_else(|| invalid(key, &v))
            })
            .transpose()
        };
        if let Proto::Icmp { icmp_type, code } = &mut proto {
            *icmp_type = small(ICMP_TYPE, self.icmp_type)?;
            *code = small(ICMP_CODE, self.icmp_code)?;
        } else {
            // Not ours to interpret for other protocols (a later version
            // may write them for ICMPv6): kept as unknown fields.
            for (key, v) in [(ICMP_TYPE, self.icmp_type), (ICMP_CODE, self.icmp_code)] {
                if let Some(v) = v {
                    self.extra.push((key.to_string(), v));
                }
            }
        }
        let mut names: Vec<&str> = self.extra.iter().map(|(k, _)| k.as_str()).collect();
        names.sort_unstable();
        if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
            return Err(ParseError::DuplicateField(shown_name(w[0])));
        }
        let ident = take_ident(&mut self.extra)?;
        let seal = take_seal(&mut self.extra)?;
        let counters = |p: Option<u64>, b: Option<u64>| {
            (p.is_some() || b.is_some()).then(|| Counters {
                packets: p.unwrap_or(0),
                bytes: b.unwrap_or(0),
            })
        };
        // The plugin writes one of `remote` and `remote_hash`; a line with
        // both is read as showing the endpoint.
        let remote = match (self.remote, self.remote_hash) {
            (Some(ep), _) => Remote::Shown(ep),
            (None, Some(h)) => Remote::Hashed(h),
            (None, None) => Remote::Omitted,
        };
        Ok(ParsedLine {
            record: FlowRecord {
                event: self.event.ok_or(ParseError::MissingField(EV))?,
                nat: self.nat.ok_or(ParseError::MissingField(NAT))?,
                proto,
                id: self.id,
                client: self.client.ok_or(ParseError::MissingField(CLIENT))?,
                masq: self.masq.ok_or(ParseError::MissingField(MASQ))?,
                remote,
                start: self.start,
                end: self.end,
                out: counters(self.out_pkts, self.out_bytes),
                inbound: counters(self.in_pkts, self.in_bytes),
                ident,
            },
            extra: self.extra,
            seal,
        })
    }
}

/// Moves the IDENT fields out of the unknown fields into an `IdentInfo`.
fn take_ident(extra: &mut Vec<(String, Vec<u8>)>) -> Result<Option<IdentInfo>, ParseError> {
    if !extra.iter().any(|(k, _)| k == IDENT) {
        // user/opsys without an outcome: not ours to interpret.
        return Ok(None);
    }
    let mut take = |key: &str| {
        extra
            .iter()
            .position(|(k, _)| k == key)
            .map(|i| extra.remove(i).1)
    };
    let status = take(IDENT);
    let user = take(USER);
    let opsys = take(OPSYS);
    let detail = take(IDENT_DETAIL);
    let Some(status) = status else {
        return Ok(None);
    };
    let status = IdentStatus::ALL
        .into_iter()
        .find(|s| s.name().as_bytes() == status.as_slice())
        .ok_or_else(|| invalid(IDENT, &status))?;
    Ok(Some(IdentInfo {
        status,
        user,
        opsys,
        detail,
    }))
}

/// Moves the sealing fields out of the unknown fields into a [`SealTag`];
/// none when the line has no `mac` (an unsealed line). A line with a `mac`
/// must have every other sealing field, well formed.
fn take_seal(extra: &mut Vec<(String, Vec<u8>)>) -> Result<Option<SealTag>, ParseError> {
    if !extra.iter().any(|(k, _)| k == sealing::MAC) {
        return Ok(None);
    }
    let mut take = |key: &'static str| {
        extra
            .iter()
            .position(|(k, _)| k == key)
            .map(|i| extra.remove(i).1)
            .ok_or(ParseError::MissingField(key))
    };
    let (w, run, seq, ep, prev, mac) = (
        take(sealing::W)?,
        take(sealing::RUN)?,
        take(sealing::SEQ)?,
        take(sealing::EP)?,
        take(sealing::PREV)?,
        take(sealing::MAC)?,
    );
    let hex = |key: &'static str, v: &[u8]| {
        let mut m = [0u8; MAC_LEN];
        std::str::from_utf8(v)
            .ok()
            .filter(|h| parse_hex_into(h, &mut m))
            .map(|_| m)
            .ok_or_else(|| invalid(key, v))
    };
    let uint = |key: &'static str, v: &[u8]| parse_uint(v).ok_or_else(|| invalid(key, v));
    let writer = std::str::from_utf8(&w)
        .ok()
        .and_then(WriterId::parse)
        .ok_or_else(|| invalid(sealing::W, &w))?;
    Ok(Some(SealTag {
        fields: SealFields {
            writer,
            run: uint(sealing::RUN, &run)?,
            seq: uint(sealing::SEQ, &seq)?,
            epoch: uint(sealing::EP, &ep)?,
            prev: hex(sealing::PREV, &prev)?,
        },
        mac: hex(sealing::MAC, &mac)?,
    }))
}

/// Positions in `b` where `needle` starts.
fn occurrences<'a>(b: &'a [u8], needle: &'a [u8]) -> impl Iterator<Item = usize> + 'a {
    (0..=b.len().saturating_sub(needle.len()))
        .filter(move |&i| b.get(i..i + needle.len()) == Some(needle))
}

/// The end of the text marker at `at`: `masqlog/`, digits, then a space or
/// the end; the position of the byte after the digits.
fn text_marker_at(b: &[u8], at: usize) -> Option<usize> {
    if !b[at..].starts_with(text::MARKER.as_bytes()) {
        return None;
    }
    let digits = at + text::MARKER.len();
    let mut end = digits;
    while b.get(end).is_some_and(u8::is_ascii_digit) {
        end += 1;
    }
    (end > digits && matches!(b.get(end), None | Some(b' '))).then_some(end)
}

/// The first text marker anywhere in the line, at its start or after a
/// space (for [`ParseError::NotAtStart`]).
fn find_text_anywhere(line: &str) -> Option<usize> {
    let b = line.as_bytes();
    occurrences(b, text::MARKER.as_bytes())
        .find(|&at| (at == 0 || b[at - 1] == b' ') && text_marker_at(b, at).is_some())
}

/// The three forms of a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Form {
    Text,
    Json,
    Sd,
}

impl Form {
    fn marker(self) -> &'static str {
        match self {
            Form::Text => text::MARKER,
            Form::Json => json::MARKER,
            Form::Sd => rfc5424::MARKER,
        }
    }

    /// The first place the marker is found anywhere in `line`.
    fn anywhere(self, line: &str) -> Option<usize> {
        match self {
            Form::Text => find_text_anywhere(line),
            Form::Json | Form::Sd => line.find(self.marker()),
        }
    }
}

/// Where the line's record starts and in which form: the marker that begins
/// its syslog message. A trailing CR/LF is ignored.
fn record_start(line: &str) -> Option<(usize, Form)> {
    let line = line.trim_end_matches(['\r', '\n']);
    let b = line.as_bytes();
    let at = message_start(b)?;
    if text_marker_at(b, at).is_some() {
        return Some((at, Form::Text));
    }
    [Form::Json, Form::Sd]
        .into_iter()
        .find(|f| b[at..].starts_with(f.marker().as_bytes()))
        .map(|f| (at, f))
}

/// Where the record of `form` starts in `line`, or why there is none.
fn start_of(line: &str, form: Form) -> Result<usize, ParseError> {
    match record_start(line) {
        Some((at, f)) if f == form => Ok(at),
        _ => Err(match form.anywhere(line.trim_end_matches(['\r', '\n'])) {
            Some(_) => ParseError::NotAtStart {
                marker: form.marker(),
            },
            None => ParseError::NotFound {
                marker: form.marker(),
            },
        }),
    }
}

/// The record body of a line, from its marker on: the line's syslog
/// message when it begins with a masqlog marker of any form.
pub(crate) fn record_body(line: &str) -> Option<&str> {
    record_start(line).map(|(at, _)| &line[at..])
}

/// A text field name: letters, digits, `_`, `.` and `-`.
fn is_key_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-')
}

/// Reads the text form, `masqlog/1 ev=start nat=snat ...`, where the
/// line's syslog message begins (a trailing CR/LF is ignored). Values are
/// bare or quoted as [`escape::write_value`] writes them; fields may come
/// in any order.
pub fn parse_text(line: &str) -> Result<ParsedLine, ParseError> {
    let line = line.trim_end_matches(['\r', '\n']);
    let at = start_of(line, Form::Text)?;
    let b = line.as_bytes();
    let mut p = text_marker_at(b, at).expect("found by start_of");
    let mut fields = Builder::default();
    fields.set(VERSION, &b[at + text::MARKER.len()..p])?;
    loop {
        while b.get(p) == Some(&b' ') {
            p += 1;
        }
        if p >= b.len() {
            break;
        }
        let key_start = p;
        while b.get(p).is_some_and(|&c| is_key_byte(c)) {
            p += 1;
        }
        if p == key_start || b.get(p) != Some(&b'=') {
            return Err(ParseError::Syntax {
                at: p,
                what: "expected a field name and `=`",
            });
        }
        let key = &line[key_start..p];
        p += 1;
        if b.get(p) == Some(&b'"') {
            let start = p + 1;
            let mut i = start;
            loop {
                match b.get(i) {
                    None => {
                        return Err(ParseError::Syntax {
                            at: p,
                            what: "unterminated quoted value",
                        });
                    }
                    Some(b'\\') => i += 2,
                    Some(b'"') => break,
                    Some(_) => i += 1,
                }
            }
            let value = escape::unquote_value(&b[start..i]).ok_or(ParseError::Syntax {
                at: start,
                what: "invalid escape in a quoted value",
            })?;
            p = i + 1;
            fields.set(key, &value)?;
        } else {
            let start = p;
            while b.get(p).is_some_and(|&c| c != b' ') {
                p += 1;
            }
            if !is_bare(&b[start..p]) {
                return Err(ParseError::Syntax {
                    at: start,
                    what: "a bare value must be letters, digits or `._:/@+-[]`",
                });
            }
            fields.set(key, &b[start..p])?;
        }
        if b.get(p).is_some_and(|&c| c != b' ') {
            return Err(ParseError::Syntax {
                at: p,
                what: "expected a space after a value",
            });
        }
    }
    fields.finish()
}

/// Reads the JSON form: the object `{"masqlog":...}` where the line's
/// syslog message begins. What follows the object is ignored.
pub fn parse_json(line: &str) -> Result<ParsedLine, ParseError> {
    let at = start_of(line, Form::Json)?;
    // The version first, so that a later format is named as such even if
    // the rest of its object is not what this build expects.
    if let Ok(v) = Reader::new(line, at + json::MARKER.len()).number()
        && parse_uint(v.as_bytes()).is_some()
        && v != itoa::Buffer::new().format(FORMAT_VERSION)
    {
        return Err(ParseError::UnknownVersion {
            version: shown(v.as_bytes()),
        });
    }
    let members = Reader::new(line, at).object()?;
    let mut fields = Builder::default();
    for m in members {
        json_member(&mut fields, m)?;
    }
    fields.finish()
}

fn json_member(fields: &mut Builder, m: Member<'_>) -> Result<(), ParseError> {
    let key = m.key.as_str();
    match (key, m.value) {
        (VERSION | ID | ICMP_TYPE | ICMP_CODE | OUT_PKTS | OUT_BYTES | IN_PKTS | IN_BYTES, v) => {
            match v {
                JsonValue::Num(n) => fields.set(key, n.as_bytes()),
                _ => Err(invalid(key, m.raw.as_bytes())),
            }
        }
        (EV | NAT | START | END | REMOTE_HASH, v) => match v {
            JsonValue::Str(s) => fields.set(key, s.as_bytes()),
            _ => Err(invalid(key, m.raw.as_bytes())),
        },
        (PROTO, v) => match v {
            JsonValue::Str(s) => fields.set(key, s.as_bytes()),
            JsonValue::Num(n) => fields.set(key, n.as_bytes()),
            _ => Err(invalid(key, m.raw.as_bytes())),
        },
        (CLIENT | MASQ | REMOTE, v) => {
            let JsonValue::Obj(members) = v else {
                return Err(invalid(key, m.raw.as_bytes()));
            };
            let ep = json_endpoint(fields, key, members, m.raw)?;
            fields.set_endpoint(key, ep)
        }
        (_, JsonValue::Str(s)) => {
            fields
                .extra
                .push((m.key.clone(), escape::unescape_json_bytes(s.as_bytes())));
            Ok(())
        }
        (_, _) => {
            fields
                .extra
                .push((m.key.clone(), m.raw.as_bytes().to_vec()));
            Ok(())
        }
    }
}

/// `{"ip":"...","port":N}`; other members become `KEY.NAME` extras.
fn json_endpoint(
    fields: &mut Builder,
    key: &str,
    members: Vec<Member<'_>>,
    raw: &str,
) -> Result<Endpoint, ParseError> {
    let bad = || invalid(key, raw.as_bytes());
    let mut ip = None;
    let mut port = None;
    for m in members {
        match (m.key.as_str(), m.value) {
            ("ip", JsonValue::Str(s)) if ip.is_none() => {
                ip = Some(s.parse::<IpAddr>().map_err(|_| bad())?);
            }
            ("port", JsonValue::Num(n)) if port.is_none() => {
                let n = parse_uint(n.as_bytes()).and_then(|n| u16::try_from(n).ok());
                port = Some(n.ok_or_else(bad)?);
            }
            ("ip" | "port", _) => return Err(bad()),
            (name, v) => {
                let value = match v {
                    JsonValue::Str(s) => escape::unescape_json_bytes(s.as_bytes()),
                    _ => m.raw.as_bytes().to_vec(),
                };
                fields.extra.push((format!("{key}.{name}"), value));
            }
        }
    }
    Ok(Endpoint {
        ip: ip.ok_or_else(bad)?,
        port,
    })
}

/// An SD-NAME byte (RFC 5424 6.3.3): printable ASCII but `=`, space, `]`
/// and `"`.
fn is_sd_name_byte(b: u8) -> bool {
    (33..=126).contains(&b) && !matches!(b, b'=' | b']' | b'"')
}

/// Reads the RFC 5424 form: our SD-ELEMENT `[masqlog@32473 ...]` among
/// the structured data of an RFC 5424 line, or where the message of a line
/// in another form begins. PARAM-VALUEs are unescaped as
/// [`escape::unescape_sd_value`] does; the rest of the message is ignored.
pub fn parse_rfc5424(line: &str) -> Result<ParsedLine, ParseError> {
    let at = start_of(line, Form::Sd)?;
    let b = line.as_bytes();
    let mut p = at + rfc5424::MARKER.len();
    let mut fields = Builder::default();
    loop {
        let name_start = p;
        while b.get(p).is_some_and(|&c| is_sd_name_byte(c)) {
            p += 1;
        }
        if p == name_start || b.get(p) != Some(&b'=') || b.get(p + 1) != Some(&b'"') {
            return Err(ParseError::Syntax {
                at: p,
                what: "expected a parameter name, `=` and `\"`",
            });
        }
        let name = &line[name_start..p];
        let start = p + 2;
        let mut i = start;
        loop {
            match b.get(i) {
                None => {
                    return Err(ParseError::Syntax {
                        at: start,
                        what: "unterminated parameter value",
                    });
                }
                Some(b'\\') => i += 2,
                Some(b'"') => break,
                Some(_) => i += 1,
            }
        }
        fields.set(name, &escape::unescape_sd_value(&b[start..i]))?;
        p = i + 1;
        match b.get(p) {
            Some(b' ') => p += 1,
            Some(b']') => break,
            _ => {
                return Err(ParseError::Syntax {
                    at: p,
                    what: "expected a space or `]` after a parameter",
                });
            }
        }
    }
    fields.finish()
}

/// Reads whichever of the three forms the line's syslog message begins
/// with. A line with a marker only further on is
/// [`ParseError::NotAtStart`] (naming the first marker in it).
pub fn parse_line(line: &str) -> Result<ParsedLine, ParseError> {
    match record_start(line) {
        Some((_, Form::Text)) => parse_text(line),
        Some((_, Form::Json)) => parse_json(line),
        Some((_, Form::Sd)) => parse_rfc5424(line),
        None => {
            let trimmed = line.trim_end_matches(['\r', '\n']);
            let first = [Form::Text, Form::Json, Form::Sd]
                .into_iter()
                .filter_map(|f| f.anywhere(trimmed).map(|at| (at, f)))
                .min_by_key(|&(at, _)| at);
            Err(match first {
                Some((_, f)) => ParseError::NotAtStart { marker: f.marker() },
                None => ParseError::NotFound {
                    marker: "masqlog/1, {\"masqlog\": or [masqlog@32473",
                },
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Format;
    use crate::format::testutil::{Rng, header, hostile_values, random_record, samples, tcp_end};
    use crate::format::{Header, write_syslog};

    const FORMATS: [Format; 3] = [Format::Text, Format::Json, Format::Rfc5424];

    fn parser(f: Format) -> fn(&str) -> Result<ParsedLine, ParseError> {
        match f {
            Format::Text => parse_text,
            Format::Json => parse_json,
            Format::Rfc5424 => parse_rfc5424,
        }
    }

    fn line(f: Format, hdr: &Header<'_>, rec: &FlowRecord) -> String {
        let mut out = Vec::new();
        write_syslog(f, hdr, rec, &mut out);
        String::from_utf8(out).unwrap()
    }

    fn round_trip(f: Format, rec: &FlowRecord) {
        for host in [Some("gw1"), None] {
            let l = line(f, &header(host), rec);
            for parse in [parser(f), parse_line] {
                let p = parse(&l).unwrap_or_else(|e| panic!("{e}: {l}"));
                assert_eq!(p.record, *rec, "{l}");
                assert!(p.extra.is_empty(), "{l}");
            }
        }
    }

    #[test]
    fn samples_round_trip_in_every_format() {
        for f in FORMATS {
            for rec in samples() {
                round_trip(f, &rec);
            }
        }
    }

    #[test]
    fn random_records_round_trip_in_every_format() {
        let mut rng = Rng::new(17);
        for _ in 0..3000 {
            let rec = random_record(&mut rng);
            for f in FORMATS {
                round_trip(f, &rec);
            }
        }
    }

    #[test]
    fn lines_behind_an_rsyslog_prefix() {
        let mut body = Vec::new();
        crate::format::text::write_body(&tcp_end(), &mut body);
        let l = format!(
            "2026-11-23T20:07:57.123456+00:00 router masqlog[123]: {}\n",
            String::from_utf8(body).unwrap()
        );
        assert_eq!(parse_text(&l).unwrap().record, tcp_end());
        assert_eq!(parse_line(&l).unwrap().record, tcp_end());

        let mut body = Vec::new();
        crate::format::json::write_body(&tcp_end(), &mut body);
        let l = format!(
            "2026-11-23T20:07:57.123456+00:00 router masqlog[123]: {}\r\n",
            String::from_utf8(body).unwrap()
        );
        assert_eq!(parse_json(&l).unwrap().record, tcp_end());
        assert_eq!(parse_line(&l).unwrap().record, tcp_end());

        let mut sd = Vec::new();
        crate::format::rfc5424::write_sd(&tcp_end(), &mut sd);
        let l = format!(
            "2026-11-23T20:07:57.123456+00:00 router masqlog[123]: {} trailing",
            String::from_utf8(sd).unwrap()
        );
        assert_eq!(parse_rfc5424(&l).unwrap().record, tcp_end());
    }

    #[test]
    fn a_tag_that_looks_like_the_marker_is_not_taken_for_it() {
        let hdr = Header {
            app: "masqlog/1",
            ..header(Some("masqlog/x"))
        };
        let l = line(Format::Text, &hdr, &tcp_end());
        assert!(
            l.contains("masqlog/x masqlog/1[4242]: masqlog/1 ev="),
            "{l}"
        );
        assert_eq!(parse_text(&l).unwrap().record, tcp_end());
    }

    #[test]
    fn omitted_and_hashed_remotes_read_back_in_every_format() {
        for remote in [
            Remote::Omitted,
            Remote::Hashed(0xfeed_0000_0000_0000_0000_0000_0000_beef),
        ] {
            let mut rec = tcp_end();
            rec.remote = remote;
            for format in [Format::Text, Format::Json, Format::Rfc5424] {
                let mut out = Vec::new();
                crate::format::write_syslog(format, &header(Some("gw1")), &rec, &mut out);
                let l = String::from_utf8(out).unwrap();
                let p = parse_line(&l).unwrap_or_else(|e| panic!("{e}: {l}"));
                assert_eq!(p.record.remote.endpoint(), None, "{l}");
                let back = &p.record;
                assert_eq!(back.remote, remote, "{l}");
                assert_eq!(back.masq, rec.masq, "{l}");
                assert!(p.extra.is_empty(), "{l}");
            }
        }
    }

    /// The plugin never writes both; such a line reads as it always did:
    /// the endpoint shown, nothing invented, nothing unknown.
    #[test]
    fn a_line_with_remote_and_remote_hash_shows_the_remote() {
        let l = "masqlog/1 ev=start nat=snat proto=udp client=1.1.1.1 masq=2.2.2.2 \
                 remote=3.3.3.3:9 remote_hash=00112233445566778899aabbccddeeff";
        let p = parse_text(l).unwrap();
        assert_eq!(
            p.record.remote,
            Remote::Shown(Endpoint {
                ip: "3.3.3.3".parse().unwrap(),
                port: Some(9)
            })
        );
        assert!(p.extra.is_empty());
    }

    #[test]
    fn unknown_versions_are_named() {
        let cases = [
            (
                parse_text as fn(&str) -> _,
                "Nov 21 12:00:00 x: masqlog/2 ev=start",
                "2",
            ),
            (parse_text, "masqlog/10", "10"),
            (
                parse_json,
                "Nov 21 12:00:00 x: {\"masqlog\":2,\"ev\":\"whatever\"}",
                "2",
            ),
            (parse_json, "{\"masqlog\": 3 , not json at all", "3"),
            (parse_rfc5424, "[masqlog@32473 masqlog=\"2\" ev=\"x\"]", "2"),
        ];
        for (parse, l, version) in cases {
            assert_eq!(
                parse(l).unwrap_err(),
                ParseError::UnknownVersion {
                    version: version.into()
                },
                "{l}"
            );
        }
        assert_eq!(
            parse_json("{\"masqlog\":1.0}").unwrap_err(),
            ParseError::InvalidValue {
                field: "masqlog".into(),
                value: "1.0".into()
            }
        );
        assert_eq!(
            parse_text("masqlog/2 ev=x").unwrap_err().to_string(),
            "unknown masqlog format version 2 (this build reads version 1)"
        );
    }

    #[test]
    fn errors_name_what_is_wrong() {
        let base = "masqlog/1 ev=start nat=snat proto=tcp client=10.0.0.1:1 masq=192.0.2.1:2 \
                    remote=203.0.113.1:3";
        assert!(parse_text(base).is_ok());
        let cases: &[(&str, ParseError)] = &[
            (
                "no marker here",
                ParseError::NotFound { marker: "masqlog/" },
            ),
            (
                "masqlog/1 nat=snat proto=tcp client=10.0.0.1 masq=10.0.0.2 remote=10.0.0.3",
                ParseError::MissingField("ev"),
            ),
            (
                &format!("{base} ev=end"),
                ParseError::DuplicateField("ev".into()),
            ),
            (
                &format!("{base} x=1 x=2"),
                ParseError::DuplicateField("x".into()),
            ),
            (
                &base.replace("ev=start", "ev=begin"),
                ParseError::InvalidValue {
                    field: "ev".into(),
                    value: "begin".into(),
                },
            ),
            (
                &base.replace("proto=tcp", "proto=256"),
                ParseError::InvalidValue {
                    field: "proto".into(),
                    value: "256".into(),
                },
            ),
            (
                &base.replace(":1 ", ":65536 "),
                ParseError::InvalidValue {
                    field: "client".into(),
                    value: "10.0.0.1:65536".into(),
                },
            ),
            (
                &format!("{base} id=+5"),
                ParseError::InvalidValue {
                    field: "id".into(),
                    value: "+5".into(),
                },
            ),
            (
                &format!("{base} start=2026-02-30T00:00:00Z"),
                ParseError::InvalidValue {
                    field: "start".into(),
                    value: "2026-02-30T00:00:00Z".into(),
                },
            ),
            (
                &format!("{base} bare"),
                ParseError::Syntax {
                    at: base.len() + 5,
                    what: "expected a field name and `=`",
                },
            ),
            (
                &format!("{base} u=\"open"),
                ParseError::Syntax {
                    at: base.len() + 3,
                    what: "unterminated quoted value",
                },
            ),
            (
                &format!("{base} u=\"\\q\""),
                ParseError::Syntax {
                    at: base.len() + 4,
                    what: "invalid escape in a quoted value",
                },
            ),
            (
                &format!("{base} u=a\"b"),
                ParseError::Syntax {
                    at: base.len() + 3,
                    what: "a bare value must be letters, digits or `._:/@+-[]`",
                },
            ),
            (
                &format!("{base} u=\"a\"b"),
                ParseError::Syntax {
                    at: base.len() + 6,
                    what: "expected a space after a value",
                },
            ),
        ];
        for (l, want) in cases {
            assert_eq!(parse_text(l).as_ref().unwrap_err(), want, "{l}");
        }
        let e = parse_text(&format!("{base} id={}", "9".repeat(200))).unwrap_err();
        assert!(e.to_string().len() < 120, "{e}");
        assert_eq!(
            ParseError::MissingField("ev").to_string(),
            "missing field `ev`"
        );
    }

    /// Found by fuzz/fuzz_targets/line.rs: the name of a duplicated unknown
    /// field went into the message whole, control characters and all.
    #[test]
    fn a_duplicate_unknown_name_is_shown_cut_and_escaped() {
        let l = "{\"masqlog\":1,\"ev\":\"start\",\"nat\":\"snat\",\"proto\":6,\
                 \"client\":{\"ip\":\"10.0.0.1\"},\"masq\":{\"ip\":\"10.0.0.2\"},\
                 \"\\u001b[2J\\n\":1,\"\\u001b[2J\\n\":2}";
        assert_eq!(
            parse_json(l).unwrap_err().to_string(),
            "field `\\u{1b}[2J\\n` appears more than once"
        );
        let long = "k".repeat(3000);
        let l = format!(
            "masqlog/1 ev=start nat=snat proto=6 client=10.0.0.1 masq=10.0.0.2 {long}=1 {long}=2"
        );
        let e = parse_text(&l).unwrap_err();
        assert_eq!(
            e,
            ParseError::DuplicateField(format!("{}...", &long[..SHOWN]))
        );
        assert!(e.to_string().len() < 120, "{e}");
    }

    #[test]
    fn icmp_fields_need_icmp() {
        let l = "masqlog/1 ev=start nat=snat proto=icmp icmp_type=300 client=10.0.0.1 \
                 masq=10.0.0.2 remote=10.0.0.3";
        assert_eq!(
            parse_text(l).unwrap_err(),
            ParseError::InvalidValue {
                field: "icmp_type".into(),
                value: "300".into()
            }
        );
        let l = "masqlog/1 ev=start nat=snat proto=icmpv6 icmp_type=128 client=fd00::1 \
                 masq=fd00::2 remote=fd00::3";
        let p = parse_text(l).unwrap();
        assert_eq!(p.record.proto, Proto::Icmpv6);
        assert_eq!(p.extra, vec![("icmp_type".to_string(), b"128".to_vec())]);
    }

    #[test]
    fn unknown_fields_are_kept_in_every_format() {
        for value in hostile_values() {
            // text
            let mut l = b"<30>Nov 21 12:38:12 masqlog[1]: ".to_vec();
            crate::format::text::write_body(&tcp_end(), &mut l);
            l.extend_from_slice(b" user=");
            escape::write_value(&mut l, &value);
            l.extend_from_slice(b" more=x");
            let l = String::from_utf8(l).unwrap();
            let p = parse_text(&l).unwrap_or_else(|e| panic!("{e}: {l}"));
            assert_eq!(p.record, tcp_end());
            assert_eq!(
                p.extra,
                vec![
                    ("user".into(), value.clone()),
                    ("more".into(), b"x".to_vec())
                ],
                "{l}"
            );

            // JSON
            let mut l = Vec::new();
            crate::format::json::write_body(&tcp_end(), &mut l);
            l.pop();
            l.extend_from_slice(b",\"user\":");
            escape::write_json_bytes(&mut l, &value);
            l.extend_from_slice(b",\"n\":[1,{\"a\":null}]}");
            let l = String::from_utf8(l).unwrap();
            let v: serde_json::Value = serde_json::from_str(&l).unwrap();
            assert!(v["user"].is_string());
            let p = parse_json(&l).unwrap_or_else(|e| panic!("{e}: {l}"));
            assert_eq!(p.record, tcp_end());
            assert_eq!(
                p.extra,
                vec![
                    ("user".into(), value.clone()),
                    ("n".into(), b"[1,{\"a\":null}]".to_vec())
                ],
                "{l}"
            );

            // RFC 5424
            let mut l = Vec::new();
            crate::format::rfc5424::write_sd(&tcp_end(), &mut l);
            l.pop();
            l.extend_from_slice(b" user=");
            escape::write_sd_value(&mut l, &value);
            l.push(b']');
            let l = String::from_utf8(l).unwrap();
            let p = parse_rfc5424(&l).unwrap_or_else(|e| panic!("{e}: {l}"));
            assert_eq!(p.record, tcp_end());
            assert_eq!(p.extra, vec![("user".into(), value.clone())], "{l}");
        }
    }

    #[test]
    fn json_endpoint_extras_and_types() {
        let l = r#"{"masqlog":1,"ev":"start","nat":"snat","proto":6,
            "client":{"ip":"10.0.0.1","port":5,"zone":"lan"},
            "masq":{"ip":"192.0.2.1"},"remote":{"port":7,"ip":"2001:db8::1"}}"#;
        let p = parse_json(l).unwrap();
        assert_eq!(p.record.proto, Proto::Tcp);
        assert_eq!(p.record.client.port, Some(5));
        assert_eq!(p.record.masq.port, None);
        assert_eq!(
            p.record.remote.endpoint().unwrap().ip,
            "2001:db8::1".parse::<IpAddr>().unwrap()
        );
        assert_eq!(p.extra, vec![("client.zone".into(), b"lan".to_vec())]);

        for (from, to) in [
            ("\"proto\":6", "\"proto\":6.0"),
            ("\"proto\":6", "\"proto\":true"),
            ("\"ev\":\"start\"", "\"ev\":1"),
            ("\"port\":5", "\"port\":-5"),
            ("\"port\":5", "\"port\":\"5\""),
            ("\"port\":5", "\"port\":65536"),
            ("\"ip\":\"10.0.0.1\"", "\"ip\":\"10.0.0.1:5\""),
            ("{\"ip\":\"192.0.2.1\"}", "{}"),
            ("{\"ip\":\"192.0.2.1\"}", "\"192.0.2.1\""),
        ] {
            let bad = l.replacen(from, to, 1);
            assert!(
                matches!(parse_json(&bad), Err(ParseError::InvalidValue { .. })),
                "{bad}: {:?}",
                parse_json(&bad)
            );
        }
        let dup = l.replacen("\"nat\":\"snat\"", "\"nat\":\"snat\",\"nat\":\"dnat\"", 1);
        assert_eq!(
            parse_json(&dup).unwrap_err(),
            ParseError::DuplicateField("nat".into())
        );
    }

    #[test]
    fn rfc5424_other_elements_and_escapes() {
        let l = "<30>1 2026-11-21T12:38:12.7Z gw masqlog 1 start [other@1 a=\"\\]\"]\
                 [masqlog@32473 masqlog=\"1\" ev=\"start\" nat=\"dnat\" proto=\"udp\" \
                 client=\"[fd00::1\\]:53\" masq=\"192.0.2.1:53\" remote=\"1.2.3.4:9\" \
                 note=\"a\\\\b\\\"c\\]d\\ne\"][after@1]";
        let p = parse_rfc5424(l).unwrap();
        assert_eq!(p.record.nat, NatKind::Dnat);
        assert_eq!(p.record.client.port, Some(53));
        assert_eq!(p.extra, vec![("note".into(), b"a\\b\"c]d\\ne".to_vec())]);
        let no_version = l.replace("masqlog=\"1\" ", "");
        assert_eq!(
            parse_rfc5424(&no_version).unwrap_err(),
            ParseError::MissingField("masqlog")
        );
    }

    #[test]
    fn parse_line_picks_the_first_form() {
        let mut sd = Vec::new();
        crate::format::rfc5424::write_sd(&tcp_end(), &mut sd);
        let sd = String::from_utf8(sd).unwrap();
        // A text line whose unknown field quotes an SD element.
        let mut l = b"masqlog/1 ev=start nat=snat proto=udp client=1.1.1.1 masq=2.2.2.2 \
                      remote=3.3.3.3 q="
            .to_vec();
        escape::write_value(&mut l, sd.as_bytes());
        let l = String::from_utf8(l).unwrap();
        let p = parse_line(&l).unwrap();
        assert_eq!(p.record.proto, Proto::Udp);
        assert_eq!(p.extra, vec![("q".into(), sd.into_bytes())]);
        assert!(matches!(
            parse_line("nothing"),
            Err(ParseError::NotFound { .. })
        ));
    }

    /// Found by fuzz/fuzz_targets/line.rs: a marker right before the line
    /// break was the text form to `parse_text` but not to `parse_line`.
    #[test]
    fn parse_line_finds_the_text_form_where_parse_text_does() {
        for l in [
            "masqlog/1\n",
            "x masqlog/2\r\n",
            "masqlog/1\n\n\n",
            "Nov 21 12:00:00 h t: masqlog/2\r\n",
        ] {
            assert_eq!(parse_line(l), parse_text(l), "{l:?}");
            assert!(!matches!(parse_line(l), Err(ParseError::NotFound { .. })));
        }
    }

    /// A text body written by `write_body`, for the marker tests.
    fn text_body() -> String {
        let mut b = Vec::new();
        crate::format::text::write_body(&tcp_end(), &mut b);
        String::from_utf8(b).unwrap()
    }

    fn json_body() -> String {
        let mut b = Vec::new();
        crate::format::json::write_body(&tcp_end(), &mut b);
        String::from_utf8(b).unwrap()
    }

    fn not_at_start(marker: &'static str) -> ParseError {
        ParseError::NotAtStart { marker }
    }

    #[test]
    fn a_text_marker_in_the_middle_of_a_message_is_not_a_record() {
        let body = text_body();
        for l in [
            format!("Nov 21 12:37:42 gw1 sshd[812]: Invalid user {body} from 1.2.3.4"),
            format!("2026-11-21T12:37:42.1+00:00 gw1 sshd[812]: Invalid user {body}"),
            format!("<38>Nov 21 12:37:42 sshd[812]: Invalid user {body}"),
            format!("<38>1 2026-11-21T12:37:42Z gw1 sshd 812 - - Invalid user {body}"),
            format!("Invalid user {body}"),
        ] {
            for parse in [parse_text, parse_line] {
                assert_eq!(parse(&l), Err(not_at_start(text::MARKER)), "{l}");
            }
            assert!(matches!(parse_json(&l), Err(ParseError::NotFound { .. })));
            assert!(record_body(&l).is_none(), "{l}");
        }
    }

    #[test]
    fn a_json_marker_in_the_middle_of_a_message_is_not_a_record() {
        let body = json_body();
        for l in [
            format!("Nov 21 12:37:42 gw1 app[1]: got {body}"),
            format!("<30>Nov 21 12:37:42 gw1 app[1]: x={body}"),
            format!("2026-11-21T12:37:42.1+00:00 gw1 app[1]: [{body}]"),
            format!(" {body}"),
        ] {
            for parse in [parse_json, parse_line] {
                assert_eq!(parse(&l), Err(not_at_start(json::MARKER)), "{l}");
            }
        }
    }

    /// The issue's example: an sshd line whose user name is a whole JSON
    /// record, written by anyone who can reach port 22.
    #[test]
    fn json_embedded_in_an_sshd_message_is_not_a_record() {
        let body = json_body();
        let l = format!(
            "2026-11-21T12:37:42.123456+00:00 gw1 sshd[812]: Invalid user {body} from 203.0.113.9 port 40022"
        );
        assert_eq!(parse_line(&l), Err(not_at_start(json::MARKER)));
        // The same record as a message of its own is read.
        let l = format!("2026-11-21T12:37:42.123456+00:00 gw1 sshd[812]: {body}");
        assert_eq!(parse_line(&l).unwrap().record, tcp_end());
    }

    #[test]
    fn a_marker_at_the_start_after_rfc3164_and_rfc5424_headers_is_a_record() {
        let (text, json) = (text_body(), json_body());
        let mut sd = Vec::new();
        crate::format::rfc5424::write_sd(&tcp_end(), &mut sd);
        let sd = String::from_utf8(sd).unwrap();
        for l in [
            // RFC 3164 as received, with and without HOST; any tag.
            format!("<30>Nov 21 12:38:12 gw1 masqlog[4242]: {text}"),
            format!("<30>Nov 21 12:38:12 masqlog[4242]: {json}"),
            format!("<13>Nov 21 12:38:12 gw1 evil: {text}"),
            // rsyslog's file formats.
            format!("Nov 21 12:38:12 gw1 masqlog[4242]: {json}"),
            format!("2026-11-21T12:38:12.1+00:00 gw1 masqlog[4242]: {sd}"),
            // RFC 5424: our element (first or after another), or MSG after
            // no structured data (rsyslog's protocol-23 file format).
            format!("<30>1 2026-11-21T12:38:12.7Z gw1 masqlog 4242 end {sd}"),
            format!("<30>1 2026-11-21T12:38:12.7Z gw1 masqlog 4242 end [o@1 a=\"\\]\"]{sd}"),
            format!("<30>1 2026-11-21T12:38:12.7Z gw1 masqlog 4242 - -  {text}"),
            format!("<30>1 2026-11-21T12:38:12.7Z gw1 masqlog 4242 - - {json}"),
            // Bare.
            text.clone(),
            json.clone(),
            sd.clone(),
        ] {
            let p = parse_line(&l).unwrap_or_else(|e| panic!("{e}: {l}"));
            assert_eq!(p.record, tcp_end(), "{l}");
        }
        // RFC 5424 with our element inside another element's value, or in
        // MSG after structured data of its own: not a record.
        for l in [
            format!(
                "<30>1 2026-11-21T12:38:12.7Z gw1 app 1 - [o@1 a=\"{}\"]",
                sd.replace('\\', "\\\\")
                    .replace('"', "\\\"")
                    .replace(']', "\\]")
            ),
            format!("<30>1 2026-11-21T12:38:12.7Z gw1 app 1 - - said {sd}"),
        ] {
            assert_eq!(parse_line(&l), Err(not_at_start(rfc5424::MARKER)), "{l}");
        }
    }

    /// Every prefix of every line of every format, in every format's parser:
    /// errors, never a panic; and the whole line parses.
    #[test]
    fn truncated_lines_never_panic() {
        let mut recs = samples();
        let mut rng = Rng::new(23);
        recs.extend((0..30).map(|_| random_record(&mut rng)));
        for rec in &recs {
            for f in FORMATS {
                let mut l = line(f, &header(Some("gw1")), rec).into_bytes();
                // An unknown field with a hostile value, so escapes get cut too.
                match f {
                    Format::Text => {
                        l.extend_from_slice(b" u=");
                        escape::write_value(&mut l, "a\"\\\n\u{e9}\u{1d11e}]".as_bytes());
                    }
                    Format::Json => {
                        l.pop();
                        l.extend_from_slice(b",\"u\":");
                        escape::write_json_bytes(&mut l, b"a\"\\\n\xff\xc3\xa9]");
                        l.extend_from_slice(b",\"v\":[{\"w\":-1.5e-3}]}");
                    }
                    Format::Rfc5424 => {
                        l.pop();
                        l.extend_from_slice(b" u=");
                        escape::write_sd_value(&mut l, b"a\"\\\n\xc3\xa9]\xff");
                        l.push(b']');
                    }
                }
                let l = String::from_utf8(l).unwrap();
                assert!(parser(f)(&l).is_ok(), "{l}");
                for cut in (0..l.len()).filter(|&i| l.is_char_boundary(i)) {
                    for parse in [parse_text, parse_json, parse_rfc5424, parse_line] {
                        let _ = parse(&l[..cut]);
                    }
                }
            }
        }
    }

    /// Random bytes, and valid lines with random bytes changed, inserted or
    /// removed: errors or records, never a panic.
    #[test]
    fn noise_never_panics() {
        let mut rng = Rng::new(31);
        let alphabet: &[u8] = b"masqlog/1{}[]\"\\:=, .@32473xev0123456789-TZ\n\xc3\xa9\xff";
        let parsers = [parse_text, parse_json, parse_rfc5424, parse_line];
        for _ in 0..20_000 {
            let len = rng.below(120) as usize;
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    if rng.chance(2) {
                        alphabet[rng.below(alphabet.len() as u64) as usize]
                    } else {
                        rng.byte()
                    }
                })
                .collect();
            let s = String::from_utf8_lossy(&bytes);
            for p in parsers {
                let _ = p(&s);
            }
        }
        for i in 0..6_000 {
            let rec = random_record(&mut rng);
            let f = FORMATS[i % 3];
            let mut l = line(f, &header(Some("gw1")), &rec).into_bytes();
            for _ in 0..=rng.below(4) {
                let at = rng.below(l.len() as u64 + 1) as usize;
                let b = alphabet[rng.below(alphabet.len() as u64) as usize];
                match rng.below(3) {
                    0 if at < l.len() => l[at] = b,
                    1 if at < l.len() => {
                        l.remove(at);
                    }
                    _ => l.insert(at, b),
                }
            }
            let s = String::from_utf8_lossy(&l);
            for p in parsers {
                let _ = p(&s);
            }
        }
    }

    #[test]
    fn huge_lines_are_handled() {
        let big = "x".repeat(1 << 20);
        let mut l = b"masqlog/1 ev=start nat=snat proto=udp client=1.1.1.1 masq=2.2.2.2 \
                      remote=3.3.3.3 big="
            .to_vec();
        escape::write_value(&mut l, big.as_bytes());
        let l = String::from_utf8(l).unwrap();
        assert_eq!(parse_text(&l).unwrap().extra[0].1.len(), 1 << 20);
        let many = format!("{}{}", "masqlog/ ".repeat(100_000), "{\"masqlog\":1");
        assert!(parse_line(&many).is_err());
    }
}
