//! One formatted message as a row of the PostgreSQL table
//! `masqlog.flow_log` (see `sql/schema_v1.sql`), in `COPY ... FROM STDIN`
//! text form: a pure function from the message the writer formatted (the
//! same bytes the spool keeps and replays) to one tab-separated line.
//!
//! The row carries the fields of the line (the three endpoints as `inet`
//! and ports, protocol, conntrack id, event, times in microseconds,
//! counters, IDENT outcome and user, the seal) and the exact message text,
//! so that a row is read back, joined and verified like a log line. Every
//! field is derived from the message alone: a message sent twice (a replay
//! from the spool) gives the same row twice, which the table's unique key
//! on `(at, digest)` keeps once.

use std::net::IpAddr;

use crate::format::chain::parse_chain;
use crate::format::gap::parse_gap;
use crate::format::{ParsedLine, message_start, parse_line};
use crate::record::{Endpoint, Event, IdentStatus, Remote, Timestamp};
use crate::seal::hex_string;
use crate::time::{days_from_civil, write_rfc3339_micros};

/// The schema version these rows are for (`sql/schema_v1.sql`): the one
/// the plugin writes and the command creates and reads.
pub const SCHEMA_VERSION: i32 = 1;

/// The columns a row gives, in order (the `COPY` column list).
pub const COLUMNS: &str = "at, router, instance, event, nat, proto, conntrack_id, \
client_ip, client_port, masq_ip, masq_port, remote_ip, remote_port, remote_hash, \
start_at, end_at, out_pkts, out_bytes, in_pkts, in_bytes, ident_status, ident_user, \
seal_writer, seal_run, seal_seq, seal_mac, line, digest";

/// Bytes of the line's SHA-256 kept as its `digest`.
pub const DIGEST_LEN: usize = 16;

/// Why a message cannot be a row.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RowError {
    #[error("the message is not UTF-8")]
    NotUtf8,
    #[error("the message has no syslog header with a HOSTNAME")]
    NoHeader,
    #[error("the message has no time: neither its fields nor its header give one")]
    NoTime,
}

/// What the caller needs to know of a row besides its text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RowInfo {
    /// The partition key (`at`).
    pub at: Timestamp,
}

impl RowInfo {
    /// The UTC day of `at`, in days since 1970-01-01 (the partition).
    pub fn day(self) -> i64 {
        self.at.secs.div_euclid(86_400)
    }
}

/// The HOSTNAME and TAG of the header, and its time when it has one
/// (RFC 5424: always; RFC 3164: month, day and time, the year taken as
/// the one that puts it nearest to `now`).
struct HeaderFields<'a> {
    host: &'a str,
    tag: &'a str,
    time: Option<Timestamp>,
}

fn header_fields(msg: &str, now: Timestamp) -> Option<HeaderFields<'_>> {
    let body = message_start(msg.as_bytes()).unwrap_or(msg.len());
    let head = msg.get(..body)?;
    let after_pri = &head[head.find('>')? + 1..];
    if let Some(rest) = after_pri.strip_prefix("1 ") {
        let mut it = rest.split(' ');
        let ts = it.next()?;
        let host = it.next()?;
        let tag = it.next()?;
        return Some(HeaderFields {
            host,
            tag,
            time: crate::time::parse_rfc3339(ts),
        });
    }
    // `Mmm dd hh:mm:ss HOST TAG[PID]: `
    let stamp = after_pri.get(..15)?;
    let mut it = after_pri.get(16..)?.split(' ');
    let host = it.next()?;
    let tag = it.next()?.split(['[', ':']).next()?;
    Some(HeaderFields {
        host,
        tag,
        time: rfc3164_time(stamp, now),
    })
}

fn rfc3164_time(stamp: &str, now: Timestamp) -> Option<Timestamp> {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month = MONTHS.iter().position(|m| stamp.get(..3) == Some(*m))? as u32 + 1;
    let day: u32 = stamp.get(4..6)?.trim_start().parse().ok()?;
    let hms: Vec<u32> = stamp
        .get(7..15)?
        .split(':')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    let [h, m, s] = hms[..] else { return None };
    if day == 0 || day > 31 || h > 23 || m > 59 || s > 60 {
        return None;
    }
    let (year_now, _, _) = crate::time::civil_from_days(now.secs.div_euclid(86_400));
    let at = |y: i64| days_from_civil(y, month, day) * 86_400 + i64::from(h * 3600 + m * 60 + s);
    let secs = [year_now - 1, year_now, year_now + 1]
        .into_iter()
        .map(at)
        .min_by_key(|t| (t - now.secs).abs())?;
    Some(Timestamp::new(secs, 0))
}

/// Appends the row of `msg` (a complete message as the plugin formats it:
/// a flow, gap or chain record, or anything else with a header) to `out`,
/// newline included. `now` only resolves the year of an RFC 3164 header,
/// for messages whose fields carry no time.
///
/// # Errors
///
/// A message that is not UTF-8 or has no header (`out` is left as it was).
pub fn write_row(msg: &[u8], now: Timestamp, out: &mut Vec<u8>) -> Result<RowInfo, RowError> {
    let text = std::str::from_utf8(msg).map_err(|_| RowError::NotUtf8)?;
    let hdr = header_fields(text, now).ok_or(RowError::NoHeader)?;
    let parsed = parse_line(text).ok();
    let (event, at) = match &parsed {
        Some(p) => {
            let r = &p.record;
            let t = match r.event {
                Event::End => r.end.or(r.start),
                _ => r.start,
            };
            (r.event.name(), t)
        }
        None => match (parse_gap(text), parse_chain(text)) {
            (Some(g), _) => ("gap", Some(g.from)),
            (None, Some(_)) => ("chain", None),
            (None, None) => ("other", None),
        },
    };
    let at = at.or(hdr.time).ok_or(RowError::NoTime)?;
    let mut row = Row { out, first: true };
    row.time(Some(at));
    row.text(Some(hdr.host));
    row.text(Some(hdr.tag));
    row.text(Some(event));
    match &parsed {
        Some(p) => row.fields(p),
        None => {
            for _ in 0..22 {
                row.null();
            }
        }
    }
    row.text(Some(text));
    let digest = <sha2::Sha256 as sha2::Digest>::digest(msg);
    row.bytes(Some(&digest[..DIGEST_LEN]));
    row.out.push(b'\n');
    Ok(RowInfo { at })
}

/// The row being written.
struct Row<'a> {
    out: &'a mut Vec<u8>,
    first: bool,
}

impl Row<'_> {
    fn sep(&mut self) {
        if !std::mem::take(&mut self.first) {
            self.out.push(b'\t');
        }
    }

    fn null(&mut self) {
        self.sep();
        self.out.extend_from_slice(b"\\N");
    }

    /// A text value, escaped for COPY's text format.
    fn text(&mut self, v: Option<&str>) {
        let Some(v) = v else { return self.null() };
        self.sep();
        for &b in v.as_bytes() {
            match b {
                b'\\' => self.out.extend_from_slice(b"\\\\"),
                b'\t' => self.out.extend_from_slice(b"\\t"),
                b'\n' => self.out.extend_from_slice(b"\\n"),
                b'\r' => self.out.extend_from_slice(b"\\r"),
                _ => self.out.push(b),
            }
        }
    }

    fn num(&mut self, v: Option<u64>) {
        let Some(v) = v else { return self.null() };
        self.sep();
        self.out
            .extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
    }

    fn time(&mut self, v: Option<Timestamp>) {
        let Some(v) = v else { return self.null() };
        self.sep();
        write_rfc3339_micros(v, self.out);
    }

    fn ip(&mut self, v: Option<IpAddr>) {
        let Some(v) = v else { return self.null() };
        self.sep();
        use std::io::Write as _;
        let _ = write!(self.out, "{v}");
    }

    fn endpoint(&mut self, ep: Option<Endpoint>) {
        self.ip(ep.map(|e| e.ip));
        self.num(ep.and_then(|e| e.port).map(u64::from));
    }

    /// `bytea` in hex form (`\x...`, the backslash escaped for COPY).
    fn bytes(&mut self, v: Option<&[u8]>) {
        let Some(v) = v else { return self.null() };
        self.sep();
        self.out.extend_from_slice(b"\\\\x");
        self.out.extend_from_slice(hex_string(v).as_bytes());
    }

    /// The 22 columns from `nat` to `seal_mac`.
    fn fields(&mut self, p: &ParsedLine) {
        let r = &p.record;
        self.text(Some(r.nat.name()));
        self.num(Some(u64::from(r.proto.number())));
        self.num(r.id.map(u64::from));
        self.endpoint(Some(r.client));
        self.endpoint(Some(r.masq));
        match r.remote {
            Remote::Shown(ep) => {
                self.endpoint(Some(ep));
                self.null();
            }
            Remote::Hashed(h) => {
                self.endpoint(None);
                self.text(Some(&format!("{h:032x}")));
            }
            Remote::Omitted => {
                self.endpoint(None);
                self.null();
            }
        }
        self.time(r.start);
        self.time(r.end);
        for c in [r.out, r.inbound] {
            self.num(c.map(|c| c.packets));
            self.num(c.map(|c| c.bytes));
        }
        let ident = r.ident.as_ref();
        self.text(ident.map(|i| ident_name(i.status)));
        self.bytes(ident.and_then(|i| i.user.as_deref()));
        match &p.seal {
            Some(s) => {
                self.text(Some(&s.fields.writer.to_string()));
                self.num(Some(s.fields.run));
                self.num(Some(s.fields.seq));
                self.text(Some(&hex_string(&s.mac)));
            }
            None => {
                for _ in 0..4 {
                    self.null();
                }
            }
        }
    }
}

fn ident_name(s: IdentStatus) -> &'static str {
    s.name()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Format;
    use crate::format::testutil::{header, samples};

    fn cols(row: &[u8]) -> Vec<String> {
        let s = std::str::from_utf8(row).unwrap();
        let s = s.strip_suffix('\n').unwrap();
        s.split('\t').map(str::to_string).collect()
    }

    #[test]
    fn a_flow_line_gives_every_column_and_the_line_itself() {
        let ncols = COLUMNS.split(',').count();
        for (format, rec) in [Format::Text, Format::Json, Format::Rfc5424]
            .into_iter()
            .flat_map(|f| samples().into_iter().map(move |r| (f, r)))
        {
            let mut msg = Vec::new();
            crate::format::write_syslog(format, &header(Some("gw1")), &rec, &mut msg);
            let mut row = Vec::new();
            let info = write_row(&msg, Timestamp::now(), &mut row).unwrap();
            let c = cols(&row);
            assert_eq!(c.len(), ncols, "{format:?}: {c:?}");
            assert_eq!(c[1], "gw1", "{format:?}");
            assert_eq!(c[3], rec.event.name());
            assert_eq!(c[9], rec.masq.ip.to_string());
            assert_eq!(
                c[10],
                rec.masq.port.map_or("\\N".to_string(), |p| p.to_string())
            );
            assert_eq!(
                c[ncols - 2].replace("\\\\", "\\"),
                std::str::from_utf8(&msg).unwrap()
            );
            // The event's own time, else the header's (to the second in
            // RFC 3164, to the microsecond in RFC 5424).
            let want = match rec.event {
                Event::End => rec.end.or(rec.start),
                _ => rec.start,
            };
            let hdr = header(None).timestamp;
            let hdr = if format == Format::Rfc5424 {
                hdr
            } else {
                Timestamp::new(hdr.secs, 0)
            };
            assert_eq!(info.at, want.unwrap_or(hdr), "{format:?} {rec:?}");
        }
    }

    #[test]
    fn the_same_message_gives_the_same_row() {
        let mut msg = Vec::new();
        crate::format::write_syslog(Format::Text, &header(Some("gw1")), &samples()[0], &mut msg);
        let (mut a, mut b) = (Vec::new(), Vec::new());
        write_row(&msg, Timestamp::new(0, 0), &mut a).unwrap();
        write_row(&msg, Timestamp::now(), &mut b).unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn copy_special_bytes_are_escaped() {
        let msg = b"<30>Nov 21 12:37:42 gw1 masqlog[1]: hello\tworld \\ end";
        let mut row = Vec::new();
        let now = Timestamp::new(days_from_civil(2026, 11, 25) * 86_400, 0);
        let info = write_row(msg, now, &mut row).unwrap();
        let s = String::from_utf8(row).unwrap();
        assert!(s.contains("hello\\tworld \\\\ end\t\\\\x"), "{s}");
        assert_eq!(cols(s.as_bytes()).len(), COLUMNS.split(',').count());
        assert_eq!(
            info.at.secs,
            days_from_civil(2026, 11, 21) * 86_400 + 12 * 3600 + 37 * 60 + 42
        );
        // Read in January, a December header is last year's.
        let jan = Timestamp::new(days_from_civil(2027, 1, 2) * 86_400, 0);
        let dec = b"<30>Dec 31 23:59:59 gw1 masqlog[1]: x";
        let info = write_row(dec, jan, &mut Vec::new()).unwrap();
        assert_eq!(info.day(), days_from_civil(2026, 12, 31));
    }

    #[test]
    fn a_message_without_header_is_refused() {
        let mut row = Vec::new();
        assert_eq!(
            write_row(b"masqlog/1 ev=start", Timestamp::now(), &mut row),
            Err(RowError::NoHeader)
        );
        assert_eq!(
            write_row(b"\xff\xfe", Timestamp::now(), &mut row),
            Err(RowError::NotUtf8)
        );
        assert!(row.is_empty());
    }
}
