//! Whole-second UTC times for rule files and configuration records: RFC 3339
//! and RFC 3164 writing (through `masqlog_core::time`), and reading the `--at`
//! forms an operator types.

use std::time::{SystemTime, UNIX_EPOCH};

use super::PortblockError;
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

/// Reads a point in time: UNIX seconds (`1732390000` or `@1732390000`) or
/// RFC 3339 with a zone (`2024-11-23T19:33:20Z`, `2024-11-23 20:33:20+01:00`;
/// a fraction of a second is dropped). A time without a zone is refused:
/// whose local time it is cannot be known here.
pub fn parse_time(input: &str) -> Result<i64, PortblockError> {
    let s = input.trim();
    let bad = |reason: &str| PortblockError::BadTime {
        input: input.into(),
        reason: reason.into(),
    };
    let unix = s.strip_prefix('@').unwrap_or(s);
    if !unix.is_empty() && unix.bytes().all(|b| b.is_ascii_digit()) {
        return unix.parse().map_err(|_| bad("too large"));
    }
    if let Some(t) = time::parse_rfc3339(s) {
        return Ok(t.secs);
    }
    let b = s.as_bytes();
    let datetime = b.len() >= 19 && b[4] == b'-' && b[7] == b'-' && b[13] == b':';
    if datetime && time::parse_rfc3339(&format!("{s}Z")).is_some() {
        return Err(bad(
            "no time zone: add Z for UTC or an offset such as +01:00",
        ));
    }
    Err(bad(
        "not UNIX seconds nor YYYY-MM-DDTHH:MM:SS with a zone (Z or +HH:MM), or a field is out of range",
    ))
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

    #[test]
    fn reads_what_operators_type() {
        assert_eq!(parse_time("1732390000").unwrap(), 1_732_390_000);
        assert_eq!(parse_time("@1732390000").unwrap(), 1_732_390_000);
        assert_eq!(parse_time("2024-11-23T19:26:40Z").unwrap(), 1_732_390_000);
        assert_eq!(
            parse_time("2024-11-23 20:26:40+01:00").unwrap(),
            1_732_390_000
        );
        assert_eq!(
            parse_time("2024-11-23T14:26:40.999-05:00").unwrap(),
            1_732_390_000
        );
        assert_eq!(parse_time("2000-02-29T00:00:00Z").unwrap(), 951_782_400);
        for t in [0, 1, 86_399, 951_782_400, 1_732_390_000, 4_102_444_800] {
            assert_eq!(parse_time(&rfc3339(t)).unwrap(), t);
        }
    }

    #[test]
    fn refuses_ambiguous_or_broken_times() {
        let e = parse_time("2024-11-23T19:26:40").unwrap_err().to_string();
        assert!(e.contains("time zone"), "{e}");
        assert!(parse_time("2023-02-29T00:00:00Z").is_err());
        assert!(parse_time("2024-13-01T00:00:00Z").is_err());
        assert!(parse_time("yesterday").is_err());
        assert!(parse_time("2024-11-23T19:26:40+1").is_err());
        assert!(parse_time("").is_err());
    }
}
