//! Whole-second UTC times for rule files and configuration records: RFC 3339
//! and RFC 3164 writing, and reading the `--at` forms an operator types.
//!
//! Kept here rather than in `crate::time` while that module is being
//! written; the civil-date arithmetic is Howard Hinnant's
//! `days_from_civil` / `civil_from_days`.

use std::time::{SystemTime, UNIX_EPOCH};

use super::PortblockError;

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Seconds since the epoch by the system clock.
pub fn now() -> i64 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs() as i64),
    }
}

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// (year, month, day, hour, minute, second) of a UTC time.
fn civil(t: i64) -> (i64, u32, u32, u32, u32, u32) {
    let (y, mo, d) = civil_from_days(t.div_euclid(86_400));
    let s = t.rem_euclid(86_400) as u32;
    (y, mo, d, s / 3600, s / 60 % 60, s % 60)
}

/// `2024-11-23T19:33:20Z`.
pub fn rfc3339(t: i64) -> String {
    let (y, mo, d, h, mi, s) = civil(t);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
}

/// `Nov 23 19:33:20` (UTC; the day padded with a space), the RFC 3164
/// timestamp.
pub fn rfc3164(t: i64) -> String {
    let (_, mo, d, h, mi, s) = civil(t);
    format!("{} {d:>2} {h:02}:{mi:02}:{s:02}", MONTHS[(mo - 1) as usize])
}

fn digits(s: &str, what: &'static str) -> Result<u32, &'static str> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(what);
    }
    s.parse().map_err(|_| what)
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
    let b = s.as_bytes();
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return Err(bad("not UNIX seconds nor YYYY-MM-DDTHH:MM:SS with a zone"));
    }
    if b[13] != b':' || b[16] != b':' {
        return Err(bad("the time of day is not HH:MM:SS"));
    }
    let y = digits(&s[0..4], "the year is not 4 digits").map_err(bad)?;
    let mo = digits(&s[5..7], "the month is not 2 digits").map_err(bad)?;
    let d = digits(&s[8..10], "the day is not 2 digits").map_err(bad)?;
    let h = digits(&s[11..13], "the hour is not 2 digits").map_err(bad)?;
    let mi = digits(&s[14..16], "the minute is not 2 digits").map_err(bad)?;
    let sec = digits(&s[17..19], "the second is not 2 digits").map_err(bad)?;
    let mut rest = &s[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        let n = frac.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 {
            return Err(bad("a '.' without fraction digits"));
        }
        rest = &frac[n..];
    }
    let offset: i64 = match rest {
        "Z" | "z" => 0,
        "" => {
            return Err(bad(
                "no time zone: add Z for UTC or an offset such as +01:00",
            ));
        }
        _ => {
            let ob = rest.as_bytes();
            if ob.len() != 6 || !matches!(ob[0], b'+' | b'-') || ob[3] != b':' {
                return Err(bad("the zone is not Z nor +HH:MM / -HH:MM"));
            }
            let oh = digits(&rest[1..3], "the zone hour is not 2 digits").map_err(bad)?;
            let om = digits(&rest[4..6], "the zone minute is not 2 digits").map_err(bad)?;
            if oh > 23 || om > 59 {
                return Err(bad("the zone offset is out of range"));
            }
            let o = i64::from(oh * 3600 + om * 60);
            if ob[0] == b'-' { -o } else { o }
        }
    };
    let leap = y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
    let mdays = match mo {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    };
    if !(1..=12).contains(&mo) || d == 0 || d > mdays || h > 23 || mi > 59 || sec > 60 {
        return Err(bad("a field is out of range"));
    }
    // A leap second (:60) is read as the next second.
    let t = days_from_civil(i64::from(y), mo, d) * 86_400 + i64::from(h * 3600 + mi * 60 + sec);
    Ok(t - offset)
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
