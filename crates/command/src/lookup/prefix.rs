//! The time at the start of a stored syslog line, used only to find where
//! in a file to read (bisection, early stop): matching uses the UTC times in
//! masqlog's own fields.
//!
//! Read at the start of the line, after an optional `<PRI>`:
//! - rsyslog's traditional file format, `Nov 21 13:37:42 host tag[pid]: msg`
//!   (RFC 3164: no year, no zone);
//! - rsyslog's high-precision file format and journalctl's short-iso,
//!   `2026-11-21T13:37:42.123456+01:00 host ...` (`+0100` and `Z` too);
//! - a raw RFC 5424 message, `<30>1 2026-11-21T12:37:42.7Z host ...`.
//!
//! **The year of a traditional timestamp** is the one that puts the line
//! nearest the report time (so within six months of it); lines more than
//! half a year from the report are never in the search window anyway.
//! **Its zone** is unknown (rsyslog writes the local time of whichever host
//! set the timestamp; masqlog's own header is UTC): the scanner measures the
//! difference between prefix and record times on masqlog lines of each file
//! ("skew") instead of guessing.

use masqlog_core::time::{MONTHS, civil_from_days, days_from_civil, days_in_month};

/// A prefix time as read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Prefix {
    /// A complete time: seconds since the epoch (UTC when the prefix had a
    /// zone; the local wall time read as UTC when it had none).
    Full(i64),
    /// `Mmm dd hh:mm:ss`: no year.
    NoYear { month: u32, day: u32, sod: u32 },
}

fn num(b: &[u8], at: usize, n: usize) -> Option<u32> {
    let part = b.get(at..at + n)?;
    part.iter().try_fold(0u32, |acc, &c| {
        c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
    })
}

/// `HH:MM:SS` at `at`: seconds of the day.
fn hms(b: &[u8], at: usize) -> Option<u32> {
    let (h, m, s) = (num(b, at, 2)?, num(b, at + 3, 2)?, num(b, at + 6, 2)?);
    (b.get(at + 2) == Some(&b':') && b.get(at + 5) == Some(&b':') && h < 24 && m < 60 && s <= 60)
        .then_some(h * 3600 + m * 60 + s.min(59))
}

/// Reads the prefix time of a line; `None` when the line starts otherwise.
pub fn parse(line: &[u8]) -> Option<Prefix> {
    let mut b = line;
    if b.first() == Some(&b'<') {
        let close = b.iter().take(5).position(|&c| c == b'>')?;
        b = &b[close + 1..];
        if b.starts_with(b"1 ") {
            b = &b[2..];
        }
    }
    if b.first()?.is_ascii_digit() {
        return iso(b).map(Prefix::Full);
    }
    let month = MONTHS.iter().position(|m| b.starts_with(&m[..]))? as u32 + 1;
    if b.get(3) != Some(&b' ') {
        return None;
    }
    let day = match (b.get(4), b.get(5)) {
        (Some(b' '), Some(d)) if d.is_ascii_digit() => u32::from(d - b'0'),
        _ => num(b, 4, 2)?,
    };
    if !(1..=31).contains(&day) || b.get(6) != Some(&b' ') {
        return None;
    }
    let sod = hms(b, 7)?;
    Some(Prefix::NoYear { month, day, sod })
}

/// `YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|+HHMM)`; no zone reads as UTC.
fn iso(b: &[u8]) -> Option<i64> {
    let (y, mo, d) = (num(b, 0, 4)?, num(b, 5, 2)?, num(b, 8, 2)?);
    if b.get(4) != Some(&b'-') || b.get(7) != Some(&b'-') || !matches!(b.get(10), Some(b'T' | b' '))
    {
        return None;
    }
    let y = i64::from(y);
    if !(1..=12).contains(&mo) || !(1..=days_in_month(y, mo)).contains(&d) {
        return None;
    }
    let sod = hms(b, 11)?;
    let mut at = 19;
    if b.get(at) == Some(&b'.') {
        at += 1;
        while b.get(at).is_some_and(u8::is_ascii_digit) {
            at += 1;
        }
    }
    let offset = match b.get(at) {
        Some(&s @ (b'+' | b'-')) => {
            let h = num(b, at + 1, 2)?;
            let m = if b.get(at + 3) == Some(&b':') {
                num(b, at + 4, 2)?
            } else {
                num(b, at + 3, 2)?
            };
            let o = i64::from(h * 3600 + m * 60);
            if s == b'-' { -o } else { o }
        }
        _ => 0,
    };
    Some(days_from_civil(y, mo, d) * 86_400 + i64::from(sod) - offset)
}

impl Prefix {
    /// Seconds since the epoch; a year-less time gets the year that puts it
    /// nearest `anchor` (seconds since the epoch).
    pub fn resolve(self, anchor: i64) -> i64 {
        match self {
            Prefix::Full(t) => t,
            Prefix::NoYear { month, day, sod } => {
                let (ay, _, _) = civil_from_days(anchor.div_euclid(86_400));
                let mut best: Option<i64> = None;
                for y in [ay - 1, ay, ay + 1] {
                    if day > days_in_month(y, month) {
                        continue;
                    }
                    let t = days_from_civil(y, month, day) * 86_400 + i64::from(sod);
                    if best.is_none_or(|b| (t - anchor).abs() < (b - anchor).abs()) {
                        best = Some(t);
                    }
                }
                // Feb 29 with no leap year near: the day after Feb 28.
                best.unwrap_or_else(|| days_from_civil(ay, 3, 1) * 86_400 + i64::from(sod))
            }
        }
    }
}

/// The prefix time of a line, resolved against `anchor`.
pub fn time_of(line: &[u8], anchor: i64) -> Option<i64> {
    parse(line).map(|p| p.resolve(anchor))
}

#[cfg(test)]
mod tests {
    use super::*;
    use masqlog_core::time::parse_rfc3339;

    fn t(s: &str) -> i64 {
        parse_rfc3339(s).unwrap().secs
    }

    #[test]
    fn traditional_rsyslog() {
        let anchor = t("2026-11-21T12:00:00Z");
        let l = b"Nov 21 13:37:42 gw1 masqlog[4242]: masqlog/1 ev=start";
        assert_eq!(
            parse(l),
            Some(Prefix::NoYear {
                month: 11,
                day: 21,
                sod: 13 * 3600 + 37 * 60 + 42
            })
        );
        assert_eq!(time_of(l, anchor), Some(t("2026-11-21T13:37:42Z")));
        // space-padded day, with a PRI (raw RFC 3164 as received)
        let l = b"<30>Nov  3 04:05:06 masqlog[1]: x";
        assert_eq!(time_of(l, anchor), Some(t("2026-11-03T04:05:06Z")));
        let l = b"Nov 03 04:05:06 host x";
        assert_eq!(time_of(l, anchor), Some(t("2026-11-03T04:05:06Z")));
    }

    #[test]
    fn rfc3339_prefixes() {
        let want = t("2026-11-21T12:37:42Z");
        for l in [
            &b"2026-11-21T13:37:42.123456+01:00 gw1 masqlog[4242]: masqlog/1"[..],
            b"2026-11-21T13:37:42+01:00 gw1 x",
            b"2026-11-21T13:37:42+0100 gw1 x",
            b"2026-11-21T12:37:42Z gw1 x",
            b"2026-11-21T07:37:42.5-05:00 gw1 x",
            b"<30>1 2026-11-21T12:37:42.700000Z gw1 masqlog 4242 end [masqlog@32473 ",
            b"2026-11-21 12:37:42 gw1 x",
        ] {
            assert_eq!(time_of(l, 0), Some(want), "{}", String::from_utf8_lossy(l));
        }
    }

    #[test]
    fn other_lines_have_no_prefix() {
        for l in [
            &b""[..],
            b"masqlog/1 ev=start",
            b"{\"masqlog\":1}",
            b"Nov",
            b"Nov 21",
            b"Nov 21 13:37",
            b"Nov 32 13:37:42 x",
            b"Foo 21 13:37:42 x",
            b"2026-13-21T13:37:42Z",
            b"2026-02-30T13:37:42Z",
            b"<30",
            b"<30>",
            b"12345",
        ] {
            assert_eq!(parse(l), None, "{}", String::from_utf8_lossy(l));
        }
    }

    #[test]
    fn year_is_the_one_nearest_the_anchor_across_new_year() {
        let dec = b"Dec 31 23:59:59 h x";
        let jan = b"Jan  1 00:00:01 h x";
        // Report on New Year's Day 2027: December lines are from 2026.
        let anchor = t("2027-01-01T00:10:00Z");
        assert_eq!(time_of(dec, anchor), Some(t("2026-12-31T23:59:59Z")));
        assert_eq!(time_of(jan, anchor), Some(t("2027-01-01T00:00:01Z")));
        // Report on New Year's Eve 2026: January lines are from 2027.
        let anchor = t("2026-12-31T23:50:00Z");
        assert_eq!(time_of(dec, anchor), Some(t("2026-12-31T23:59:59Z")));
        assert_eq!(time_of(jan, anchor), Some(t("2027-01-01T00:00:01Z")));
        // Mid-year: whichever is within six months.
        let anchor = t("2026-06-15T00:00:00Z");
        assert_eq!(time_of(jan, anchor), Some(t("2026-01-01T00:00:01Z")));
        assert_eq!(time_of(dec, anchor), Some(t("2025-12-31T23:59:59Z")));
        let anchor = t("2026-07-15T00:00:00Z");
        assert_eq!(time_of(jan, anchor), Some(t("2027-01-01T00:00:01Z")));
        assert_eq!(time_of(dec, anchor), Some(t("2026-12-31T23:59:59Z")));
        // Feb 29 goes to the nearest leap year only.
        let feb29 = b"Feb 29 12:00:00 h x";
        let anchor = t("2028-03-01T00:00:00Z");
        assert_eq!(time_of(feb29, anchor), Some(t("2028-02-29T12:00:00Z")));
    }
}
