//! Calendar arithmetic for UTC timestamps (RFC 3339 with microseconds and
//! the RFC 3164 "Mmm dd hh:mm:ss" form), without a time-zone database.
//!
//! Dates are proleptic Gregorian, computed with Howard Hinnant's
//! `days_from_civil` / `civil_from_days` algorithms
//! (<https://howardhinnant.github.io/date_algorithms.html>), which are exact
//! for every day an `i64` count of seconds can reach.

use crate::record::Timestamp;

const SECS_PER_DAY: i64 = 86_400;

/// The English month abbreviations of RFC 3164 (and of `date`, mail and
/// access logs), January first.
pub const MONTHS: [&[u8; 3]; 12] = [
    b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec",
];

/// Days since 1970-01-01 of the date `y-m-d` (month 1..=12, day 1..=31).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400); // [0, 399]
    let mp = i64::from((m + 9) % 12); // March = 0
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1; // [0, 365]
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy; // [0, 146096]
    era * 146_097 + doe - 719_468
}

/// The date `(year, month 1..=12, day 1..=31)` of a count of days since
/// 1970-01-01.
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11]
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32; // [1, 31]
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32; // [1, 12]
    let y = yoe + era * 400;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// `YYYY-MM-DD<sep>HH:MM:SS[.uuuuuu]` of a count of (local) seconds.
pub fn civil_string(secs: i64, usecs: u32, micros: bool, sep: char) -> String {
    let (y, mo, d) = civil_from_days(secs.div_euclid(86_400));
    let sod = secs.rem_euclid(86_400);
    let mut s = format!(
        "{y:04}-{mo:02}-{d:02}{sep}{:02}:{:02}:{:02}",
        sod / 3600,
        sod / 60 % 60,
        sod % 60
    );
    if micros {
        s.push_str(&format!(".{usecs:06}"));
    }
    s
}

/// `2026-11-21T12:37:42Z`, with `.uuuuuu` when `micros` or when the time
/// has a fraction.
pub fn utc_string(t: Timestamp, micros: bool) -> String {
    let mut s = civil_string(t.secs, t.usecs, micros || t.usecs != 0, 'T');
    s.push('Z');
    s
}

/// Whether `y` is a leap year of the proleptic Gregorian calendar.
pub fn is_leap(y: i64) -> bool {
    y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)
}

/// The number of days of month `m` (1..=12) of year `y`.
pub fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// A broken-down UTC time.
struct Civil {
    year: i64,
    month: u32,
    day: u32,
    hour: u32,
    min: u32,
    sec: u32,
    usec: u32,
}

fn civil(t: Timestamp) -> Civil {
    // `Timestamp`'s fields are public: carry excess microseconds like
    // `Timestamp::new` does, saturating at the ends of the range.
    let secs = t.secs.saturating_add(i64::from(t.usecs / 1_000_000));
    let days = secs.div_euclid(SECS_PER_DAY);
    let sod = secs.rem_euclid(SECS_PER_DAY) as u32;
    let (year, month, day) = civil_from_days(days);
    Civil {
        year,
        month,
        day,
        hour: sod / 3600,
        min: sod / 60 % 60,
        sec: sod % 60,
        usec: t.usecs % 1_000_000,
    }
}

/// Appends `n` as exactly `width` decimal digits (`n` < 10^width).
fn push_digits(out: &mut Vec<u8>, n: u32, width: usize) {
    let mut buf = [b'0'; 10];
    let mut n = n;
    for slot in buf[..width].iter_mut().rev() {
        *slot = b'0' + (n % 10) as u8;
        n /= 10;
    }
    out.extend_from_slice(&buf[..width]);
}

/// Appends a year: four digits for 0000..=9999 (all that RFC 3339 allows);
/// outside that range the ISO 8601 expanded form with a sign (`-0001`,
/// `+10000`), so that no timestamp is ever written wrong.
fn push_year(out: &mut Vec<u8>, y: i64) {
    if (0..=9999).contains(&y) {
        push_digits(out, y as u32, 4);
        return;
    }
    out.push(if y < 0 { b'-' } else { b'+' });
    let abs = y.unsigned_abs();
    if abs < 1000 {
        push_digits(out, abs as u32, 4);
    } else {
        out.extend_from_slice(itoa::Buffer::new().format(abs).as_bytes());
    }
}

/// Appends `YYYY-MM-DDTHH:MM:SS.uuuuuuZ`.
///
/// Always six fraction digits, always UTC. Every `i64` second count is
/// written; years outside 0000..=9999 (beyond RFC 3339) get the ISO 8601
/// expanded form `+YYYYY` / `-YYYY`, which [`parse_rfc3339`] refuses.
pub fn write_rfc3339_micros(t: Timestamp, out: &mut Vec<u8>) {
    let c = civil(t);
    push_year(out, c.year);
    out.push(b'-');
    push_digits(out, c.month, 2);
    out.push(b'-');
    push_digits(out, c.day, 2);
    out.push(b'T');
    push_digits(out, c.hour, 2);
    out.push(b':');
    push_digits(out, c.min, 2);
    out.push(b':');
    push_digits(out, c.sec, 2);
    out.push(b'.');
    push_digits(out, c.usec, 6);
    out.push(b'Z');
}

/// Appends `Mmm dd hh:mm:ss` (UTC), the RFC 3164 timestamp: English month
/// abbreviation, day padded with a space (`Nov  3 04:05:06`), no year.
pub fn write_rfc3164(t: Timestamp, out: &mut Vec<u8>) {
    let c = civil(t);
    out.extend_from_slice(MONTHS[(c.month - 1) as usize]);
    out.push(b' ');
    if c.day < 10 {
        out.push(b' ');
        push_digits(out, c.day, 1);
    } else {
        push_digits(out, c.day, 2);
    }
    out.push(b' ');
    push_digits(out, c.hour, 2);
    out.push(b':');
    push_digits(out, c.min, 2);
    out.push(b':');
    push_digits(out, c.sec, 2);
}

/// Reads exactly `n` ASCII digits at `s[at..]`.
fn digits(s: &[u8], at: usize, n: usize) -> Option<u32> {
    let part = s.get(at..at.checked_add(n)?)?;
    part.iter().try_fold(0u32, |acc, &b| {
        b.is_ascii_digit().then(|| acc * 10 + u32::from(b - b'0'))
    })
}

fn byte_is(s: &[u8], at: usize, allowed: &[u8]) -> bool {
    s.get(at).is_some_and(|b| allowed.contains(b))
}

/// Parses an RFC 3339 date-time and returns it in UTC:
/// `YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM)`.
///
/// Accepts `t` and a space for `T`, and `z` for `Z`. The fraction has 1 to 9
/// digits and is truncated to microseconds. A leap second (`:60`) is read as
/// the first second of the next minute, as POSIX time counts it. The whole
/// string must match; anything else gives `None`.
pub fn parse_rfc3339(s: &str) -> Option<Timestamp> {
    let b = s.as_bytes();
    let year = digits(b, 0, 4)?;
    let month = digits(b, 5, 2)?;
    let day = digits(b, 8, 2)?;
    let hour = digits(b, 11, 2)?;
    let min = digits(b, 14, 2)?;
    let sec = digits(b, 17, 2)?;
    if !(byte_is(b, 4, b"-")
        && byte_is(b, 7, b"-")
        && byte_is(b, 10, b"Tt ")
        && byte_is(b, 13, b":")
        && byte_is(b, 16, b":"))
    {
        return None;
    }
    let year = i64::from(year);
    if !(1..=12).contains(&month)
        || !(1..=days_in_month(year, month)).contains(&day)
        || hour > 23
        || min > 59
        || sec > 60
    {
        return None;
    }
    let mut at = 19;
    let mut usecs = 0u32;
    if byte_is(b, at, b".") {
        at += 1;
        let start = at;
        while b.get(at).is_some_and(u8::is_ascii_digit) {
            at += 1;
        }
        let n = at - start;
        if !(1..=9).contains(&n) {
            return None;
        }
        // The first six digits, right-padded with zeros: microseconds.
        let micro_digits = n.min(6);
        usecs = digits(b, start, micro_digits)? * 10u32.pow((6 - micro_digits) as u32);
    }
    let offset_secs = match b.get(at) {
        Some(b'Z' | b'z') => {
            at += 1;
            0
        }
        Some(&sign @ (b'+' | b'-')) => {
            let oh = digits(b, at + 1, 2)?;
            let om = digits(b, at + 4, 2)?;
            if !byte_is(b, at + 3, b":") || oh > 23 || om > 59 {
                return None;
            }
            at += 6;
            let off = i64::from(oh * 3600 + om * 60);
            if sign == b'-' { -off } else { off }
        }
        _ => return None,
    };
    if at != b.len() {
        return None;
    }
    let days = days_from_civil(year, month, day);
    let local = days * SECS_PER_DAY + i64::from(hour * 3600 + min * 60 + sec);
    Some(Timestamp {
        secs: local - offset_secs,
        usecs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rfc3339(secs: i64, usecs: u32) -> String {
        let mut out = Vec::new();
        write_rfc3339_micros(Timestamp { secs, usecs }, &mut out);
        String::from_utf8(out).unwrap()
    }

    fn rfc3164(secs: i64) -> String {
        let mut out = Vec::new();
        write_rfc3164(Timestamp { secs, usecs: 0 }, &mut out);
        String::from_utf8(out).unwrap()
    }

    fn parse(s: &str) -> Option<(i64, u32)> {
        parse_rfc3339(s).map(|t| (t.secs, t.usecs))
    }

    /// A small deterministic generator (SplitMix64) for the round trips.
    fn splitmix(state: &mut u64) -> u64 {
        *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = *state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    #[test]
    fn epoch() {
        assert_eq!(rfc3339(0, 0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(rfc3164(0), "Jan  1 00:00:00");
        assert_eq!(parse("1970-01-01T00:00:00Z"), Some((0, 0)));
    }

    #[test]
    fn known_values() {
        assert_eq!(rfc3339(1_700_000_000, 0), "2023-11-14T22:13:20.000000Z");
        assert_eq!(rfc3164(1_700_000_000), "Nov 14 22:13:20");
        assert_eq!(
            rfc3339(1_795_264_662, 123_456),
            "2026-11-21T12:37:42.123456Z"
        );
        assert_eq!(rfc3339(-2_208_988_800, 1), "1900-01-01T00:00:00.000001Z");
        assert_eq!(rfc3339(-62_167_219_200, 0), "0000-01-01T00:00:00.000000Z");
        assert_eq!(
            rfc3339(253_402_300_799, 999_999),
            "9999-12-31T23:59:59.999999Z"
        );
        assert_eq!(parse("2023-11-14T22:13:20Z"), Some((1_700_000_000, 0)));
    }

    #[test]
    fn leap_years() {
        assert_eq!(rfc3339(951_782_400, 0), "2000-02-29T00:00:00.000000Z");
        assert_eq!(
            rfc3339(951_782_400 + 86_400, 0),
            "2000-03-01T00:00:00.000000Z"
        );
        // 2100 is not a leap year: Feb 28 is followed by Mar 1.
        assert_eq!(rfc3339(4_107_456_000, 0), "2100-02-28T00:00:00.000000Z");
        assert_eq!(rfc3339(4_107_542_400, 0), "2100-03-01T00:00:00.000000Z");
        assert_eq!(rfc3339(-11_670_998_400, 0), "1600-02-29T00:00:00.000000Z");
        assert_eq!(parse("2100-02-29T00:00:00Z"), None);
        assert_eq!(parse("1900-02-29T00:00:00Z"), None);
        assert_eq!(parse("2000-02-29T00:00:00Z"), Some((951_782_400, 0)));
        assert_eq!(parse("2100-03-01T00:00:00Z"), Some((4_107_542_400, 0)));
    }

    #[test]
    fn end_of_year() {
        assert_eq!(rfc3339(946_684_799, 999_999), "1999-12-31T23:59:59.999999Z");
        assert_eq!(rfc3339(946_684_800, 0), "2000-01-01T00:00:00.000000Z");
        assert_eq!(rfc3164(946_684_799), "Dec 31 23:59:59");
        assert_eq!(rfc3164(946_684_800), "Jan  1 00:00:00");
    }

    #[test]
    fn rfc3164_pads_the_day_with_a_space() {
        // 2026-11-03T04:05:06Z
        let t = parse_rfc3339("2026-11-03T04:05:06Z").unwrap();
        assert_eq!(rfc3164(t.secs), "Nov  3 04:05:06");
        let t = parse_rfc3339("2026-05-10T00:00:09Z").unwrap();
        assert_eq!(rfc3164(t.secs), "May 10 00:00:09");
    }

    #[test]
    fn negative_seconds() {
        assert_eq!(rfc3339(-1, 0), "1969-12-31T23:59:59.000000Z");
        assert_eq!(rfc3339(-1, 500_000), "1969-12-31T23:59:59.500000Z");
        assert_eq!(rfc3339(-86_400, 0), "1969-12-31T00:00:00.000000Z");
        assert_eq!(parse("1969-12-31T23:59:59.5Z"), Some((-1, 500_000)));
        // Before year 0 and after 9999: ISO 8601 expanded years.
        assert_eq!(rfc3339(-62_167_219_201, 0), "-0001-12-31T23:59:59.000000Z");
        assert_eq!(rfc3339(253_402_300_800, 0), "+10000-01-01T00:00:00.000000Z");
        assert_eq!(parse("-0001-12-31T23:59:59Z"), None);
    }

    #[test]
    fn extremes_do_not_panic() {
        for secs in [i64::MIN, i64::MIN + 1, i64::MAX, i64::MAX - 1] {
            for usecs in [0, 999_999, u32::MAX] {
                let s = rfc3339(secs, usecs);
                assert!(s.ends_with('Z'), "{s}");
                let _ = rfc3164(secs);
            }
        }
        assert_eq!(rfc3339(i64::MAX, 0), "+292277026596-12-04T15:30:07.000000Z");
        assert_eq!(rfc3339(i64::MIN, 0), "-292277022657-01-27T08:29:52.000000Z");
    }

    #[test]
    fn excess_microseconds_are_carried() {
        assert_eq!(rfc3339(0, 1_500_000), "1970-01-01T00:00:01.500000Z");
    }

    /// Walks every day from 0000-01-01 to 9999-12-31 with a plain calendar
    /// and checks both conversions against it.
    #[test]
    fn every_day_of_ten_thousand_years() {
        let (mut y, mut m, mut d) = (0i64, 1u32, 1u32);
        let mut days = days_from_civil(0, 1, 1);
        assert_eq!(days, -719_528);
        while y <= 9999 {
            assert_eq!(civil_from_days(days), (y, m, d));
            assert_eq!(days_from_civil(y, m, d), days);
            days += 1;
            d += 1;
            if d > days_in_month(y, m) {
                d = 1;
                m += 1;
                if m > 12 {
                    m = 1;
                    y += 1;
                }
            }
        }
        assert_eq!(days, days_from_civil(10_000, 1, 1));
    }

    #[test]
    fn round_trips() {
        let mut st = 42u64;
        let lo = -62_167_219_200i64; // 0000-01-01
        let hi = 253_402_300_799i64; // 9999-12-31T23:59:59
        let span = (hi - lo + 1) as u64;
        let mut buf = Vec::new();
        for i in 0..200_000u64 {
            let secs = if i < 10_000 {
                // dense around the epoch and around now
                (i as i64 - 5_000) * 7_919 + if i % 2 == 0 { 0 } else { 1_795_264_662 }
            } else {
                lo + (splitmix(&mut st) % span) as i64
            };
            let usecs = (splitmix(&mut st) % 1_000_000) as u32;
            let t = Timestamp { secs, usecs };
            buf.clear();
            write_rfc3339_micros(t, &mut buf);
            let s = std::str::from_utf8(&buf).unwrap();
            assert_eq!(s.len(), 27, "{s}");
            assert_eq!(parse_rfc3339(s), Some(t), "{s}");
        }
    }

    #[test]
    fn parse_accepts_variants() {
        let want = Some((1_700_000_000, 0));
        assert_eq!(parse("2023-11-14t22:13:20z"), want);
        assert_eq!(parse("2023-11-14 22:13:20Z"), want);
        assert_eq!(parse("2023-11-14T23:13:20+01:00"), want);
        assert_eq!(parse("2023-11-15T03:43:20+05:30"), want);
        assert_eq!(parse("2023-11-14T14:13:20-08:00"), want);
        assert_eq!(parse("2023-11-14T22:13:20-00:00"), want);
        assert_eq!(
            parse("2023-11-14T22:13:20.1Z"),
            Some((1_700_000_000, 100_000))
        );
        assert_eq!(
            parse("2023-11-14T22:13:20.000001Z"),
            Some((1_700_000_000, 1))
        );
        assert_eq!(
            parse("2023-11-14T22:13:20.123456789Z"),
            Some((1_700_000_000, 123_456))
        );
        assert_eq!(
            parse("2026-11-23T20:07:57.123456+00:00"),
            parse("2026-11-23T20:07:57.123456Z")
        );
        // A leap second is the first second of the next minute.
        assert_eq!(parse("2016-12-31T23:59:60Z"), parse("2017-01-01T00:00:00Z"));
    }

    #[test]
    fn parse_refuses_malformed() {
        for bad in [
            "",
            "2023",
            "2023-11-14",
            "2023-11-14T22:13:20",
            "2023-11-14T22:13:20.Z",
            "2023-11-14T22:13:20.1234567890Z",
            "2023-11-14T22:13:20ZZ",
            "2023-11-14T22:13:20Z ",
            " 2023-11-14T22:13:20Z",
            "2023-13-14T22:13:20Z",
            "2023-00-14T22:13:20Z",
            "2023-11-00T22:13:20Z",
            "2023-11-31T22:13:20Z",
            "2023-11-14T24:00:00Z",
            "2023-11-14T22:60:20Z",
            "2023-11-14T22:13:61Z",
            "2023-11-14X22:13:20Z",
            "2023/11/14T22:13:20Z",
            "2023-11-14T22:13:20+1:00",
            "2023-11-14T22:13:20+01:0",
            "2023-11-14T22:13:20+0100",
            "2023-11-14T22:13:20+24:00",
            "2023-11-14T22:13:20+01:60",
            "+2023-11-14T22:13:20Z",
            "2023-1a-14T22:13:20Z",
            "2023-11-14T22:13:2éZ",
            "２023-11-14T22:13:20Z",
        ] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn parse_never_panics_on_truncations_and_noise() {
        let good = "2026-11-23T20:07:57.123456789+05:30";
        for i in 0..=good.len() {
            let _ = parse_rfc3339(&good[..i]);
        }
        let mut st = 7u64;
        let alphabet = b"0123456789-+:.TZtz \xc3\xa9";
        for _ in 0..20_000 {
            let len = (splitmix(&mut st) % 40) as usize;
            let bytes: Vec<u8> = (0..len)
                .map(|_| alphabet[(splitmix(&mut st) % alphabet.len() as u64) as usize])
                .collect();
            let s = String::from_utf8_lossy(&bytes);
            let _ = parse_rfc3339(&s);
        }
    }
}
