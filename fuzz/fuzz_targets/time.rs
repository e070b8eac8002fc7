//! Fuzzes the time parsers: `time::parse_rfc3339` (what it reads, written
//! back with `write_rfc3339_micros`, reads as the same instant, and jiff
//! reads both texts as that instant too) and the report-time parsers of
//! `masqlog_command::when` (`parse_report_time`, `parse_zone`,
//! `parse_duration`): no panic, no overflow, and results within the range
//! they promise.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use masqlog_command::when::{
    TimeError, Zone, human_duration, parse_duration, parse_report_time, parse_zone,
};
use masqlog_core::record::Timestamp;
use masqlog_core::time::{parse_rfc3339, utc_string, write_rfc3339_micros};

/// 0000-01-01T00:00:00Z and 10000-01-01T00:00:00Z in seconds.
const FIRST_WRITABLE: i64 = -62_167_219_200;
const PAST_WRITABLE: i64 = 253_402_300_800;

/// The default zones a report time is read in: UTC, a zone with daylight
/// saving (an error where the system has no time-zone database), none.
static DEFAULTS: LazyLock<[Result<Zone, TimeError>; 3]> = LazyLock::new(|| {
    [
        Ok(Zone::utc()),
        parse_zone("Europe/Amsterdam"),
        Err(TimeError::SystemZone {
            why: "fuzzing".into(),
        }),
    ]
});

/// Floor of `t` to microseconds, as (seconds, microseconds).
fn jiff_micros(t: jiff::Timestamp) -> (i64, u32) {
    let us = t.as_nanosecond().div_euclid(1000);
    let secs = i64::try_from(us.div_euclid(1_000_000)).expect("jiff's range fits");
    (secs, us.rem_euclid(1_000_000) as u32)
}

fn check_timestamp(t: Timestamp, what: &str) {
    assert!(t.usecs < 1_000_000, "{what}: {t:?}");
    assert!(
        (FIRST_WRITABLE - 2 * 86_400..PAST_WRITABLE + 2 * 86_400).contains(&t.secs),
        "{what}: {t:?} is far outside years 0000..=9999"
    );
}

fn rfc3339(s: &str) {
    let Some(t) = parse_rfc3339(s) else { return };
    check_timestamp(t, s);
    let mut out = Vec::new();
    write_rfc3339_micros(t, &mut out);
    let written = String::from_utf8(out).expect("ASCII");
    if (FIRST_WRITABLE..PAST_WRITABLE).contains(&t.secs) {
        assert_eq!(written.len(), 27, "{s:?} -> {written}");
        assert_eq!(parse_rfc3339(&written), Some(t), "{s:?} -> {written}");
        // An independent reading of the written form; jiff's range ends a
        // day early (9999-12-30T22:00:00Z), to leave room for offsets.
        match written.parse::<jiff::Timestamp>() {
            Ok(j) => assert_eq!(jiff_micros(j), (t.secs, t.usecs), "{s:?} -> {written}"),
            Err(e) => assert!(
                t.secs > jiff::Timestamp::MAX.as_second(),
                "{s:?} -> {written}: {e}"
            ),
        }
    } else {
        // The expanded year form, documented as not read back.
        assert!(written.starts_with(['-', '+']), "{s:?} -> {written}");
        assert_eq!(parse_rfc3339(&written), None, "{s:?} -> {written}");
    }
    // Where jiff reads the input too, it means the same instant (jiff reads
    // a leap second as :59, we as the next second: not compared).
    if s.get(17..19) != Some("60")
        && let Ok(j) = s.parse::<jiff::Timestamp>()
    {
        assert_eq!(jiff_micros(j), (t.secs, t.usecs), "{s:?}");
    }
}

fn report_time(s: &str) {
    for default in DEFAULTS.iter() {
        let r = match parse_report_time(s, default) {
            Ok(r) => r,
            Err(e) => {
                let _ = e.to_string();
                continue;
            }
        };
        assert!(matches!(r.instants.len(), 1 | 2), "{s:?}: {r:?}");
        assert_eq!(r.fold.is_some(), r.instants.len() == 2, "{s:?}: {r:?}");
        assert!(r.instants.is_sorted_by(|a, b| a < b), "{s:?}: {r:?}");
        for &t in &r.instants {
            check_timestamp(t, s);
            let _ = utc_string(t, true);
            let _ = r.zone.show(t, true);
        }
        // An RFC 3339 time means the same here (but a leap second, :59 here).
        if let Some(t) = parse_rfc3339(s.trim())
            && s.trim().get(17..19) != Some("60")
        {
            assert_eq!(r.instants.len(), 1, "{s:?}: {r:?}");
            assert_eq!(r.first(), t, "{s:?}: {r:?}");
        }
    }
}

fn zone(s: &str) {
    let Ok(z) = parse_zone(s) else { return };
    assert!(!z.name().is_empty(), "{s:?}");
    if let Zone::Fixed { offset, .. } = &z {
        assert!(offset.unsigned_abs() < 26 * 3600, "{s:?}: {offset}");
    }
    for secs in [FIRST_WRITABLE, 0, 1_795_264_662, PAST_WRITABLE - 1] {
        let t = Timestamp { secs, usecs: 0 };
        let (offset, _) = z.offset_at(t);
        assert!(offset.unsigned_abs() < 26 * 3600, "{s:?}: {offset}");
        let _ = z.show(t, true);
    }
}

fn duration(s: &str) {
    let Ok(n) = parse_duration(s) else { return };
    assert!(n >= 0, "{s:?}: {n}");
    let t = s.trim();
    if t.bytes().all(|b| b.is_ascii_digit()) {
        assert_eq!(t.parse::<i64>().ok(), Some(n), "{s:?}");
    }
    // Written back as seconds it reads the same.
    assert_eq!(parse_duration(&format!("{n}s")), Ok(n), "{s:?}");
    if let Some(us) = n.checked_mul(1_000_000) {
        let _ = human_duration(us);
    }
}

fuzz_target!(|data: &[u8]| {
    let s = String::from_utf8_lossy(data);
    rfc3339(&s);
    report_time(&s);
    zone(&s);
    duration(&s);
});
