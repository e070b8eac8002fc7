//! Whole-second UTC times for rule files and configuration records: RFC 3339
//! and RFC 3164 writing (through `masqlog_core::time`), and reading a time
//! as `masqlog lookup --at` reads it (through [`crate::when`]).

use std::time::{SystemTime, UNIX_EPOCH};

use super::PortblockError;
use crate::when::{self, ReportTime, TimeError, Zone};
use masqlog_core::record::Timestamp;
use masqlog_core::time;

/// Seconds since the epoch by the system clock.
pub fn now() -> i64 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs() as i64),
    }
}

fn written(write: fn(Timestamp, &mut Vec<u8>), t: i64) -> String {
    let mut out = Vec::with_capacity(32);
    write(Timestamp::new(t, 0), &mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// `2024-11-23T19:33:20Z`.
pub fn rfc3339(t: i64) -> String {
    // whole seconds: the microseconds `time` writes are always zero here
    written(time::write_rfc3339_micros, t).replace(".000000Z", "Z")
}

/// `Nov 23 19:33:20` (UTC; the day padded with a space), the RFC 3164
/// timestamp.
pub fn rfc3164(t: i64) -> String {
    written(time::write_rfc3164, t)
}

/// Reads a point in time in any form `masqlog lookup --at` reads
/// ([`crate::when`]): `2024-11-23T19:26:40Z`, `2024-11-23 20:26:40 CET`,
/// `[23/Nov/2024:20:26:40 +0100]`, UNIX seconds (`1732390000`,
/// `@1732390000`), ... A time written without a zone is read in `zone`
/// (`--tz`); with none it is refused: whose local time it is cannot be
/// known here. Rule files change on whole seconds, so callers use the whole
/// seconds of the instants (two when a local time happened twice).
pub fn parse_time(input: &str, zone: Option<&Zone>) -> Result<ReportTime, PortblockError> {
    let default = zone.cloned().ok_or(TimeError::NoZone);
    when::parse_report_time(input, &default).map_err(|e| PortblockError::BadTime {
        input: input.into(),
        reason: match e {
            TimeError::Unrecognized { why, .. } => format!(
                "not UNIX seconds nor YYYY-MM-DDTHH:MM:SS with a zone, nor any other form \
                 `masqlog lookup --at` reads ({why})"
            ),
            e => e.to_string(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_732_390_000), "2024-11-23T19:26:40Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3164(1_732_390_000), "Nov 23 19:26:40");
        assert_eq!(rfc3164(1_730_606_706), "Nov  3 04:05:06");
    }

    /// The whole seconds of a time that has one instant.
    fn secs(input: &str) -> i64 {
        let t = parse_time(input, None).unwrap_or_else(|e| panic!("{input}: {e}"));
        assert_eq!(t.instants.len(), 1, "{input}");
        t.first().secs
    }

    #[test]
    fn reads_what_operators_type() {
        assert_eq!(secs("1732390000"), 1_732_390_000);
        assert_eq!(secs("@1732390000"), 1_732_390_000);
        assert_eq!(secs("2024-11-23T19:26:40Z"), 1_732_390_000);
        assert_eq!(secs("2024-11-23 20:26:40+01:00"), 1_732_390_000);
        assert_eq!(secs("2024-11-23T14:26:40.999-05:00"), 1_732_390_000);
        assert_eq!(secs("2000-02-29T00:00:00Z"), 951_782_400);
        for t in [0, 1, 86_399, 951_782_400, 1_732_390_000, 4_102_444_800] {
            assert_eq!(secs(&rfc3339(t)), t);
        }
    }

    /// The forms `masqlog lookup --at` reads mean the same instant here.
    #[test]
    fn reads_what_lookup_reads() {
        let want = 1_795_264_662; // 2026-11-21T12:37:42Z
        for input in [
            "2026-11-21 13:37:42 CET",
            "2026-11-21 13:37:42 Europe/Amsterdam",
            "2026-11-21 13:37:42 +0100",
            "[21/Nov/2026:13:37:42 +0100]",
            "Sat, 21 Nov 2026 13:37:42 +0100",
            "Sat Nov 21 13:37:42 CET 2026",
            "2026-11-21T13:37:42+01:00[Europe/Amsterdam]",
        ] {
            assert_eq!(secs(input), want, "{input}");
            let lookup = when::parse_report_time(input, &Ok(Zone::utc())).unwrap();
            assert_eq!(lookup.first().secs, want, "{input}");
        }
        // A time without a zone is read in --tz.
        let ams = when::parse_zone("Europe/Amsterdam").unwrap();
        let t = parse_time("2026-11-21 13:37:42", Some(&ams)).unwrap();
        assert_eq!(t.instants, [Timestamp::new(want, 0)]);
        // One the clocks went back over has two instants.
        let t = parse_time("2026-10-25 02:30:00", Some(&ams)).unwrap();
        assert_eq!(t.instants.len(), 2);
    }

    #[test]
    fn refuses_ambiguous_or_broken_times() {
        let e = parse_time("2024-11-23T19:26:40", None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("time zone"), "{e}");
        assert!(parse_time("2023-02-29T00:00:00Z", None).is_err());
        assert!(parse_time("2024-13-01T00:00:00Z", None).is_err());
        assert!(parse_time("yesterday", None).is_err());
        assert!(parse_time("", None).is_err());
        let e = parse_time("tea time", None).unwrap_err().to_string();
        assert!(
            e.starts_with(
                "invalid time \"tea time\": not UNIX seconds nor YYYY-MM-DDTHH:MM:SS with a zone"
            ),
            "{e}"
        );
        let e = parse_time("yesterday", None).unwrap_err().to_string();
        assert!(e.contains("relative times are not read"), "{e}");
        let ams = when::parse_zone("Europe/Amsterdam").unwrap();
        let e = parse_time("2026-03-29 02:30:00", Some(&ams))
            .unwrap_err()
            .to_string();
        assert!(e.contains("never happened in Europe/Amsterdam"), "{e}");
        let e = parse_time("2026-11-21 13:37:42 IST", None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("ambiguous"), "{e}");
        // `+1` is an offset to lookup (+01:00), and so it is here.
        assert_eq!(secs("2024-11-23T20:26:40+1"), 1_732_390_000);
    }
}
