//! One formatted message as a row of the PostgreSQL table
//! `masqlog.flow_log` (see `sql/schema_v1.sql`): a pure function from the
//! message the writer formatted (the same bytes the spool keeps and
//! replays) to the typed values of one row, which the destination sends
//! with a binary `COPY`.
//!
//! The row carries the fields of the line (the three endpoints as `inet`
//! and ports, protocol, conntrack id, event, times in microseconds,
//! counters, IDENT outcome and user, the seal) and the exact message text,
//! so that a row is read back, joined and verified like a log line. Every
//! field is derived from the message alone: a message sent twice (a replay
//! from the spool) gives the same row twice. A sealed row is kept once by
//! its writer, run and sequence number (the destination's ledger of
//! committed sequence ranges); a row without a seal carries a `digest` of
//! its line, which the table's unique key on `(at, digest)` keeps once.

use std::net::IpAddr;

use crate::format::chain::parse_chain;
use crate::format::gap::parse_gap;
use crate::format::{ParsedLine, message_start, parse_line};
use crate::record::{Endpoint, Event, Remote, Timestamp};
use crate::time::days_from_civil;

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

/// The values of one row, in the order of [`COLUMNS`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PgRow<'a> {
    /// The partition key: the event's time (see the schema).
    pub at: Timestamp,
    /// The header's HOSTNAME and TAG.
    pub router: &'a str,
    pub instance: &'a str,
    /// `start`, `end`, `update`, `ident`, `gap`, `chain` or `other`.
    pub event: &'static str,
    /// The flow's fields, for a flow line.
    pub flow: Option<FlowCols>,
    /// The seal, for a sealed flow line.
    pub seal: Option<SealCols>,
    /// The exact message.
    pub line: &'a str,
    /// The first [`DIGEST_LEN`] bytes of the line's SHA-256, for a row
    /// without a seal only (its no-duplicate key, with `at`).
    pub digest: Option<[u8; DIGEST_LEN]>,
}

impl PgRow<'_> {
    /// The UTC day of `at`, in days since 1970-01-01 (the partition).
    pub fn day(&self) -> i64 {
        self.at.secs.div_euclid(86_400)
    }
}

/// The columns `nat` to `ident_user` of a flow line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowCols {
    pub nat: &'static str,
    pub proto: i16,
    pub conntrack_id: Option<i64>,
    pub client_ip: IpAddr,
    pub client_port: Option<i32>,
    pub masq_ip: IpAddr,
    pub masq_port: Option<i32>,
    pub remote_ip: Option<IpAddr>,
    pub remote_port: Option<i32>,
    /// `remote=hash`: the hash as 32 hex digits.
    pub remote_hash: Option<String>,
    pub start_at: Option<Timestamp>,
    pub end_at: Option<Timestamp>,
    /// Counters (a value beyond `bigint` is left NULL; the line keeps it).
    pub out_pkts: Option<i64>,
    pub out_bytes: Option<i64>,
    pub in_pkts: Option<i64>,
    pub in_bytes: Option<i64>,
    pub ident_status: Option<&'static str>,
    pub ident_user: Option<Vec<u8>>,
}

/// The columns `seal_writer` to `seal_mac`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SealCols {
    /// `HOST/INSTANCE`.
    pub writer: String,
    pub run: i64,
    pub seq: i64,
    pub mac: Vec<u8>,
}

/// The row of `msg` (a complete message as the plugin formats it: a flow,
/// gap or chain record, or anything else with a header). `now` only
/// resolves the year of an RFC 3164 header, for messages whose fields
/// carry no time.
///
/// # Errors
///
/// A message that is not UTF-8, has no header or no time.
pub fn row(msg: &[u8], now: Timestamp) -> Result<PgRow<'_>, RowError> {
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
    let flow = parsed.as_ref().map(flow_cols);
    let seal = parsed.as_ref().and_then(|p| p.seal.as_ref()).and_then(|s| {
        Some(SealCols {
            writer: s.fields.writer.to_string(),
            run: i64::try_from(s.fields.run).ok()?,
            seq: i64::try_from(s.fields.seq).ok()?,
            mac: s.mac.to_vec(),
        })
    });
    let digest = seal.is_none().then(|| {
        let d = <sha2::Sha256 as sha2::Digest>::digest(msg);
        let mut out = [0; DIGEST_LEN];
        out.copy_from_slice(&d[..DIGEST_LEN]);
        out
    });
    Ok(PgRow {
        at,
        router: hdr.host,
        instance: hdr.tag,
        event,
        flow,
        seal,
        line: text,
        digest,
    })
}

fn flow_cols(p: &ParsedLine) -> FlowCols {
    let r = &p.record;
    let port = |e: Endpoint| e.port.map(i32::from);
    let big = |v: u64| i64::try_from(v).ok();
    let (remote_ip, remote_port, remote_hash) = match r.remote {
        Remote::Shown(ep) => (Some(ep.ip), port(ep), None),
        Remote::Hashed(h) => (None, None, Some(format!("{h:032x}"))),
        Remote::Omitted => (None, None, None),
    };
    let ident = r.ident.as_ref();
    FlowCols {
        nat: r.nat.name(),
        proto: i16::from(r.proto.number()),
        conntrack_id: r.id.map(i64::from),
        client_ip: r.client.ip,
        client_port: port(r.client),
        masq_ip: r.masq.ip,
        masq_port: port(r.masq),
        remote_ip,
        remote_port,
        remote_hash,
        start_at: r.start,
        end_at: r.end,
        out_pkts: r.out.and_then(|c| big(c.packets)),
        out_bytes: r.out.and_then(|c| big(c.bytes)),
        in_pkts: r.inbound.and_then(|c| big(c.packets)),
        in_bytes: r.inbound.and_then(|c| big(c.bytes)),
        ident_status: ident.map(|i| i.status.name()),
        ident_user: ident.and_then(|i| i.user.clone()),
    }
}

/// Sequence numbers of one writer's run, as contiguous ranges.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SeqRanges {
    /// `(first, last)`, ascending, neither overlapping nor adjacent.
    pub ranges: Vec<(i64, i64)>,
}

impl SeqRanges {
    /// The ranges of `seqs` (any order, repeats allowed).
    pub fn of(mut seqs: Vec<i64>) -> SeqRanges {
        seqs.sort_unstable();
        seqs.dedup();
        let mut ranges: Vec<(i64, i64)> = Vec::new();
        for s in seqs {
            match ranges.last_mut() {
                Some((_, last)) if *last + 1 == s => *last = s,
                _ => ranges.push((s, s)),
            }
        }
        SeqRanges { ranges }
    }

    /// Whether `seq` falls in one of the ranges.
    pub fn contains(&self, seq: i64) -> bool {
        let i = self.ranges.partition_point(|&(_, last)| last < seq);
        self.ranges.get(i).is_some_and(|&(first, _)| first <= seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Format;
    use crate::format::testutil::{header, samples};

    #[test]
    fn a_flow_line_gives_its_fields_and_the_line_itself() {
        for (format, rec) in [Format::Text, Format::Json, Format::Rfc5424]
            .into_iter()
            .flat_map(|f| samples().into_iter().map(move |r| (f, r)))
        {
            let mut msg = Vec::new();
            crate::format::write_syslog(format, &header(Some("gw1")), &rec, &mut msg);
            let r = row(&msg, Timestamp::now()).unwrap();
            assert_eq!(r.router, "gw1", "{format:?}");
            assert_eq!(r.event, rec.event.name());
            let f = r.flow.as_ref().unwrap();
            assert_eq!(f.masq_ip, rec.masq.ip);
            assert_eq!(f.masq_port, rec.masq.port.map(i32::from));
            assert_eq!(f.conntrack_id, rec.id.map(i64::from));
            assert_eq!(r.line.as_bytes(), &msg[..]);
            // Unsealed: the digest is the key.
            assert!(r.seal.is_none() && r.digest.is_some());
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
            assert_eq!(r.at, want.unwrap_or(hdr), "{format:?} {rec:?}");
        }
    }

    #[test]
    fn a_sealed_line_gives_its_seal_and_no_digest() {
        use crate::seal::{Chain, VerifyKey};
        let key = VerifyKey::generate("gw1", 0, 86_400).unwrap();
        let mut chain = Chain::start(key.initial_state(), "masq1", 7).unwrap();
        for format in [Format::Text, Format::Json, Format::Rfc5424] {
            let mut msg = Vec::new();
            crate::format::write_syslog(format, &header(Some("gw1")), &samples()[0], &mut msg);
            let body = message_start(&msg).unwrap();
            crate::format::sealing::seal_message(format, body, &mut chain, &mut msg);
            let r = row(&msg, Timestamp::now()).unwrap();
            let s = r.seal.as_ref().unwrap_or_else(|| panic!("{format:?}"));
            assert_eq!((s.writer.as_str(), s.run), ("gw1/masq1", 7));
            assert_eq!(s.seq, i64::try_from(chain.seq()).unwrap());
            assert_eq!(s.mac, chain.last_mac().to_vec());
            assert!(r.digest.is_none());
        }
    }

    #[test]
    fn the_same_message_gives_the_same_row() {
        let mut msg = Vec::new();
        crate::format::write_syslog(Format::Text, &header(Some("gw1")), &samples()[0], &mut msg);
        assert_eq!(
            row(&msg, Timestamp::new(0, 0)).unwrap(),
            row(&msg, Timestamp::now()).unwrap()
        );
    }

    #[test]
    fn a_line_that_is_no_flow_keeps_its_header_time() {
        let msg = b"<30>Nov 21 12:37:42 gw1 masqlog[1]: hello\tworld";
        let now = Timestamp::new(days_from_civil(2026, 11, 25) * 86_400, 0);
        let r = row(msg, now).unwrap();
        assert_eq!((r.event, r.instance), ("other", "masqlog"));
        assert!(r.flow.is_none() && r.seal.is_none() && r.digest.is_some());
        assert_eq!(
            r.at.secs,
            days_from_civil(2026, 11, 21) * 86_400 + 12 * 3600 + 37 * 60 + 42
        );
        // Read in January, a December header is last year's.
        let jan = Timestamp::new(days_from_civil(2027, 1, 2) * 86_400, 0);
        let dec = b"<30>Dec 31 23:59:59 gw1 masqlog[1]: x";
        assert_eq!(row(dec, jan).unwrap().day(), days_from_civil(2026, 12, 31));
    }

    #[test]
    fn a_message_without_header_is_refused() {
        assert_eq!(
            row(b"masqlog/1 ev=start", Timestamp::now()),
            Err(RowError::NoHeader)
        );
        assert_eq!(row(b"\xff\xfe", Timestamp::now()), Err(RowError::NotUtf8));
    }

    #[test]
    fn sequence_ranges() {
        let r = SeqRanges::of(vec![5, 3, 4, 9, 9, 10, 1]);
        assert_eq!(r.ranges, vec![(1, 1), (3, 5), (9, 10)]);
        for (s, want) in [
            (0, false),
            (1, true),
            (2, false),
            (4, true),
            (6, false),
            (10, true),
            (11, false),
        ] {
            assert_eq!(r.contains(s), want, "{s}");
        }
        assert!(SeqRanges::of(Vec::new()).ranges.is_empty());
    }
}
