//! Report times: the forms abuse reports write them in, resolved to UTC
//! instants with the time-zone rules of the system database (jiff), the
//! daylight-saving edges made explicit, and durations (`--slack 2m`). One
//! reader for every `--at`: `masqlog lookup` and `masqlog portblock test`
//! read the same forms. The calendar arithmetic is `masqlog_core::time`'s.
//!
//! Accepted (case-insensitive words; a leading weekday and surrounding
//! `[...]` are ignored):
//!
//! | form | example |
//! |---|---|
//! | RFC 3339 / ISO 8601 | `2026-11-21T13:37:42+01:00`, `2026-11-21T12:37:42.5Z` |
//! | date and time, zone after a space | `2026-11-21 13:37:42 CET`, `2026/11/21 13:37:42 Europe/Amsterdam`, `2026-11-21 13:37:42 +0100` |
//! | RFC 9557 | `2026-11-21T13:37:42+01:00[Europe/Amsterdam]` |
//! | RFC 5322 (mail) | `Sat, 21 Nov 2026 13:37:42 +0100` |
//! | Apache/nginx access log | `[21/Nov/2026:13:37:42 +0100]` |
//! | date(1) | `Sat Nov 21 13:37:42 CET 2026` |
//! | day.month.year | `21.11.2026 13:37:42` |
//! | month name first | `Nov 21, 2026 1:37:42 PM EST` |
//! | UNIX time | `@1795264662`, `1795264662`, `@1795264662.25` |
//!
//! Seconds may be left out (`13:37`), fractions use `.` or `,`, and `AM`/`PM`
//! are understood. `11/21/2026` is refused: day and month order cannot be
//! told.
//!
//! A zone is a numeric offset (`+01:00`, `+0100`, `+01`, `Z`, `UTC+1`), a
//! name from the system's time-zone database (`Europe/Amsterdam`), or one of
//! the abbreviations in [`ABBREVIATIONS`], each read as the fixed offset
//! listed there (so `CET` in July still means +01:00, as written).
//! Abbreviations that mean different offsets in different places (`IST`,
//! `AST`) are refused. A time without a zone is read in the default zone
//! the caller gives (lookup: `--tz`, else the system zone; portblock:
//! `--tz`, else none, and the time is refused).
//!
//! Local times at a daylight-saving change: a time that the clocks skipped
//! (spring forward) is an error that names the gap; a time that happened
//! twice (fall back) gives both instants, earlier first, and the lookup
//! searches both.

use jiff::civil::DateTime;
use jiff::tz::{AmbiguousOffset, Offset, TimeZone};

use masqlog_core::record::Timestamp;
use masqlog_core::time::{MONTHS, civil_string, utc_string};

/// Time-zone abbreviations read as fixed offsets (seconds east of UTC).
/// `CST` is North American Central time, as RFC 5322 reads it (for China
/// give `+08:00` or `Asia/Shanghai`); `BST` is British Summer Time.
pub const ABBREVIATIONS: &[(&str, i32)] = &[
    ("UTC", 0),
    ("UT", 0),
    ("GMT", 0),
    ("Z", 0),
    ("WET", 0),
    ("WEST", 3600),
    ("BST", 3600),
    ("CET", 3600),
    ("CEST", 7200),
    ("MET", 3600),
    ("MEST", 7200),
    ("EET", 7200),
    ("EEST", 10800),
    ("MSK", 10800),
    ("NST", -12600),
    ("NDT", -9000),
    ("ADT", -10800),
    ("EST", -18000),
    ("EDT", -14400),
    ("CST", -21600),
    ("CDT", -18000),
    ("MST", -25200),
    ("MDT", -21600),
    ("PST", -28800),
    ("PDT", -25200),
    ("AKST", -32400),
    ("AKDT", -28800),
    ("HST", -36000),
    ("SGT", 28800),
    ("HKT", 28800),
    ("AWST", 28800),
    ("JST", 32400),
    ("KST", 32400),
    ("ACST", 34200),
    ("ACDT", 37800),
    ("AEST", 36000),
    ("AEDT", 39600),
    ("NZST", 43200),
    ("NZDT", 46800),
];

/// Abbreviations refused because they name several offsets.
const AMBIGUOUS: &[(&str, &str)] = &[
    ("IST", "India +05:30, Ireland +01:00 or Israel +02:00"),
    ("AST", "Atlantic -04:00 or Arabia +03:00"),
];

const WEEKDAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// Why a time, zone or duration could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TimeError {
    #[error(
        "cannot read {input:?} as a time: {why} (write e.g. `2026-11-21 13:37:42 CET`, \
         `2026-11-21T12:37:42Z` or `@1795264662`)"
    )]
    Unrecognized { input: String, why: String },
    /// A relative phrase (`2 hours ago`, `yesterday`): not read.
    #[error(
        "cannot read {input:?} as a time: relative times are not read; give a date and \
         time with a zone (`2026-11-21 13:37:42 CET`, `2026-11-21T12:37:42+01:00`), a mail, \
         access-log or date(1) date, or UNIX time (`@1795264662`); for a relative time let \
         date(1) write it: --at \"$(date -d '{phrase}' '+%F %T %z')\""
    )]
    Relative { input: String, phrase: String },
    #[error(
        "unknown time zone {name:?}: not a numeric offset, not an abbreviation masqlog knows \
         and not in the system's time-zone database"
    )]
    UnknownZone { name: String },
    #[error(
        "the time-zone abbreviation {abbr} is ambiguous ({meanings}): give a numeric offset \
         or a zone name"
    )]
    AmbiguousAbbreviation { abbr: String, meanings: String },
    #[error("{0}")]
    Skipped(Box<SkippedTime>),
    #[error("{input:?} is out of the range of times masqlog handles")]
    OutOfRange { input: String },
    #[error("cannot determine the system time zone ({why}): give --tz")]
    SystemZone { why: String },
    /// A time without a zone where there is no default zone to read it in.
    #[error("no time zone: add Z for UTC or an offset such as +01:00, or give --tz")]
    NoZone,
    #[error("invalid duration {input:?}: write e.g. 90s, 2m, 1h30m, 24h or 2d")]
    Duration { input: String },
}

/// A local time the clocks skipped (spring forward): it never happened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SkippedTime {
    /// The time as given, `2026-03-29 02:30:00`.
    pub local: String,
    pub zone: String,
    /// Wall-clock time where the gap starts and ends (`02:00`, `03:00`).
    pub gap_start: String,
    pub gap_end: String,
    /// The offsets before and after (`+01:00`, `+02:00`).
    pub before: String,
    pub after: String,
}

impl std::fmt::Display for SkippedTime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let SkippedTime {
            local,
            zone,
            gap_start,
            gap_end,
            before,
            after,
        } = self;
        write!(
            f,
            "{local} never happened in {zone}: the clocks jumped from {gap_start} to {gap_end} \
             ({before} to {after}); if the reporter's clock had not changed yet, write \
             {local}{before}, else {local}{after}"
        )
    }
}

/// The zone answers are shown in, next to UTC.
#[derive(Clone, Debug)]
pub enum Zone {
    /// A fixed offset, labelled as the input wrote it (`CET`, `+01:00`).
    Fixed { offset: i32, label: String },
    /// A zone of the system's database (or the system zone itself).
    Tz { tz: TimeZone, name: String },
}

impl Zone {
    pub fn utc() -> Zone {
        Zone::Fixed {
            offset: 0,
            label: "UTC".into(),
        }
    }

    /// The zone's name as the user gave it (`CET`, `Europe/Amsterdam`).
    pub fn name(&self) -> &str {
        match self {
            Zone::Fixed { label, .. } => label,
            Zone::Tz { name, .. } => name,
        }
    }

    /// Whether every time in the zone is UTC (then only UTC is shown).
    pub fn is_utc(&self) -> bool {
        match self {
            Zone::Fixed { offset, .. } => *offset == 0,
            Zone::Tz { tz, .. } => {
                matches!(
                    tz.iana_name(),
                    Some("UTC" | "Etc/UTC" | "Etc/UCT" | "UCT" | "Zulu")
                )
            }
        }
    }

    /// The offset (seconds east of UTC) and its label at `t`.
    pub fn offset_at(&self, t: Timestamp) -> (i32, String) {
        match self {
            Zone::Fixed { offset, label } => (*offset, label.clone()),
            Zone::Tz { tz, .. } => {
                let info = tz.to_offset_info(to_jiff(t));
                (info.offset().seconds(), info.abbreviation().to_string())
            }
        }
    }

    /// `2026-11-21 13:37:42.123456 CET` (the fraction only when `micros`).
    pub fn show(&self, t: Timestamp, micros: bool) -> String {
        let (offset, label) = self.offset_at(t);
        let mut s = civil_string(t.secs + i64::from(offset), t.usecs, micros, ' ');
        s.push(' ');
        s.push_str(&label);
        s
    }
}

/// What a report's time means: one instant, or two in a fall-back overlap.
#[derive(Clone, Debug)]
pub struct ReportTime {
    /// The time as the report (or the user) wrote it.
    pub input: String,
    /// One instant, or two (earlier first) when the local time happened
    /// twice.
    pub instants: Vec<Timestamp>,
    /// The zone the time was given in (or the default zone): answers are
    /// shown in it.
    pub zone: Zone,
    /// Set when the local time happened twice: explains the two instants.
    pub fold: Option<String>,
}

impl ReportTime {
    /// The earliest instant.
    pub fn first(&self) -> Timestamp {
        self.instants[0]
    }

    /// The latest instant.
    pub fn last(&self) -> Timestamp {
        self.instants[self.instants.len() - 1]
    }
}

pub(crate) fn to_jiff(t: Timestamp) -> jiff::Timestamp {
    jiff::Timestamp::from_microsecond(t.as_micros()).unwrap_or(jiff::Timestamp::UNIX_EPOCH)
}

fn from_jiff(t: jiff::Timestamp) -> Timestamp {
    // Down to the whole microsecond, as `parse_rfc3339` cuts the digits:
    // `as_microsecond` rounds toward zero, a microsecond late before 1970.
    let mut us = t.as_microsecond();
    if t.subsec_nanosecond() % 1000 < 0 {
        us -= 1;
    }
    Timestamp::new(us.div_euclid(1_000_000), us.rem_euclid(1_000_000) as u32)
}

/// `+01:00`.
pub fn offset_string(secs: i32) -> String {
    let sign = if secs < 0 { '-' } else { '+' };
    let a = secs.unsigned_abs();
    if !a.is_multiple_of(60) {
        format!("{sign}{:02}:{:02}:{:02}", a / 3600, a / 60 % 60, a % 60)
    } else {
        format!("{sign}{:02}:{:02}", a / 3600, a / 60 % 60)
    }
}

/// A zone from `--tz` or a report: offset, abbreviation or database name.
pub fn parse_zone(input: &str) -> Result<Zone, TimeError> {
    let s = input.trim();
    if let Some(offset) = parse_offset(s) {
        let label = if s.eq_ignore_ascii_case("z") {
            "UTC".to_string()
        } else {
            offset_string(offset)
        };
        return Ok(Zone::Fixed { offset, label });
    }
    // `UTC+1`, `GMT-05:00`: as people write them (not POSIX TZ, which
    // counts the other way).
    for base in ["UTC", "GMT", "UT"] {
        if let Some(rest) = strip_prefix_ci(s, base)
            && rest.starts_with(['+', '-'])
            && let Some(offset) = parse_offset(rest)
        {
            return Ok(Zone::Fixed {
                offset,
                label: format!("{base}{}", offset_string(offset)),
            });
        }
    }
    let upper = s.to_ascii_uppercase();
    if let Some(&(abbr, offset)) = ABBREVIATIONS.iter().find(|(a, _)| *a == upper) {
        let label = if abbr == "Z" { "UTC" } else { abbr };
        return Ok(Zone::Fixed {
            offset,
            label: label.to_string(),
        });
    }
    if let Some(&(abbr, meanings)) = AMBIGUOUS.iter().find(|(a, _)| *a == upper) {
        return Err(TimeError::AmbiguousAbbreviation {
            abbr: abbr.to_string(),
            meanings: meanings.to_string(),
        });
    }
    if !s.is_empty()
        && s.bytes().all(|b| b.is_ascii_graphic())
        && let Ok(tz) = TimeZone::get(s)
    {
        return Ok(Zone::Tz {
            tz,
            name: s.to_string(),
        });
    }
    Err(TimeError::UnknownZone {
        name: s.to_string(),
    })
}

/// The default zone: `--tz` when given, else the system zone (`TZ`, then
/// `/etc/localtime`).
pub fn default_zone(tz_flag: Option<&str>) -> Result<Zone, TimeError> {
    match tz_flag {
        Some(z) => parse_zone(z),
        None => match localtime_zone() {
            Some(zone) => Ok(zone),
            None => match TimeZone::try_system() {
                Ok(tz) => {
                    let name = tz.iana_name().unwrap_or("system zone").to_string();
                    Ok(Zone::Tz { tz, name })
                }
                Err(e) => Err(TimeError::SystemZone { why: e.to_string() }),
            },
        },
    }
}

/// The system zone read from `/etc/localtime` itself, named by its symlink
/// (`.../zoneinfo/Europe/Amsterdam`): the zone jiff would find, without
/// its listing of the whole time-zone database first (about a millisecond
/// of every lookup). `None` when `TZ` is set or `/etc/localtime` is no
/// such symlink to a TZif file: jiff's own search then decides.
fn localtime_zone() -> Option<Zone> {
    use std::io::Read as _;
    const LOCALTIME: &str = "/etc/localtime";
    if std::env::var_os("TZ").is_some() {
        return None;
    }
    let target = std::fs::read_link(LOCALTIME).ok()?;
    let name = target.to_str()?.rsplit_once("zoneinfo/")?.1.to_string();
    let mut bytes = Vec::new();
    std::fs::File::open(LOCALTIME)
        .ok()?
        .take(1 << 20)
        .read_to_end(&mut bytes)
        .ok()?;
    let tz = TimeZone::tzif(&name, &bytes).ok()?;
    Some(Zone::Tz { tz, name })
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

/// `Z`, `+HH:MM`, `+HHMM`, `+HH`, `+H` (seconds east of UTC).
fn parse_offset(s: &str) -> Option<i32> {
    if s.eq_ignore_ascii_case("z") {
        return Some(0);
    }
    let b = s.as_bytes();
    let sign = match b.first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let rest = &s[1..];
    // Byte lengths below: a multi-byte character would split.
    if !rest.is_ascii() {
        return None;
    }
    let (h, m) = match rest.len() {
        1 | 2 => (rest, "0"),
        4 if !rest.contains(':') => (&rest[..2], &rest[2..]),
        4 | 5 => rest.split_once(':')?,
        _ => return None,
    };
    if h.is_empty()
        || m.is_empty()
        || !h.bytes().all(|c| c.is_ascii_digit())
        || !m.bytes().all(|c| c.is_ascii_digit())
    {
        return None;
    }
    let (h, m): (i32, i32) = (h.parse().ok()?, m.parse().ok()?);
    if h > 25 || m > 59 {
        return None;
    }
    Some(sign * (h * 3600 + m * 60))
}

/// A small cursor over the input.
struct Cur<'a> {
    s: &'a str,
    i: usize,
}

impl<'a> Cur<'a> {
    fn peek(&self) -> Option<u8> {
        self.s.as_bytes().get(self.i).copied()
    }

    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn eat_any(&mut self, cs: &[u8]) -> Option<u8> {
        let c = self.peek().filter(|c| cs.contains(c))?;
        self.i += 1;
        Some(c)
    }

    fn spaces(&mut self) -> usize {
        let start = self.i;
        while self.peek() == Some(b' ') {
            self.i += 1;
        }
        self.i - start
    }

    /// 1 ..= max digits.
    fn number(&mut self, max: usize) -> Option<(u32, usize)> {
        let start = self.i;
        while self.i - start < max && self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.i += 1;
        }
        let n = self.i - start;
        (n > 0).then(|| (self.s[start..self.i].parse().unwrap_or(0), n))
    }

    fn word(&mut self) -> &'a str {
        let start = self.i;
        while self.peek().is_some_and(|c| c.is_ascii_alphabetic()) {
            self.i += 1;
        }
        &self.s[start..self.i]
    }

    fn rest(&self) -> &'a str {
        &self.s[self.i..]
    }
}

fn month_of(word: &str) -> Option<u32> {
    let w = word.to_ascii_lowercase();
    if w.len() < 3 {
        return None;
    }
    let full = [
        "january",
        "february",
        "march",
        "april",
        "may",
        "june",
        "july",
        "august",
        "september",
        "october",
        "november",
        "december",
    ];
    MONTHS
        .iter()
        .zip(full)
        .position(|(short, long)| {
            let short = short.to_ascii_lowercase();
            w.as_bytes() == short || w == long || (w == "sept" && short == b"sep")
        })
        .map(|i| i as u32 + 1)
}

fn is_weekday(word: &str) -> bool {
    let w = word.to_ascii_lowercase();
    w.len() >= 3 && WEEKDAYS.iter().any(|d| w.starts_with(d))
}

/// A civil date and time of day, nanoseconds in the fraction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Civil {
    year: i32,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
    nanos: u32,
}

type Why = String;

/// `H[H]:MM[:SS[(.|,)F]][ ][AM|PM]`.
fn time_of_day(c: &mut Cur<'_>) -> Result<(u32, u32, u32, u32), Why> {
    let (hour, _) = c.number(2).ok_or("no time of day")?;
    if !c.eat(b':') {
        return Err("no time of day (HH:MM[:SS])".into());
    }
    let (minute, n) = c.number(2).ok_or("bad minutes")?;
    if n != 2 {
        return Err("bad minutes".into());
    }
    let mut second = 0;
    let mut nanos = 0;
    if c.eat(b':') {
        let (s, n) = c.number(2).ok_or("bad seconds")?;
        if n != 2 {
            return Err("bad seconds".into());
        }
        second = s;
        if c.eat_any(b".,").is_some() {
            let start = c.i;
            c.number(9).ok_or("bad fraction of a second")?;
            let digits = &c.s[start..c.i];
            nanos = format!("{digits:0<9}").parse().unwrap_or(0);
            while c.peek().is_some_and(|b| b.is_ascii_digit()) {
                c.i += 1;
            }
        }
    }
    // AM/PM
    let save = c.i;
    c.spaces();
    let w = c.word();
    let mut hour = hour;
    match w.to_ascii_lowercase().as_str() {
        "am" | "pm" => {
            if !(1..=12).contains(&hour) {
                return Err(format!("hour {hour} with {w}"));
            }
            hour %= 12;
            if w.eq_ignore_ascii_case("pm") {
                hour += 12;
            }
        }
        _ => c.i = save,
    }
    if hour > 23 || minute > 59 || second > 60 {
        return Err("time of day out of range".into());
    }
    Ok((hour, minute, second.min(59), nanos))
}

/// The parts of a time as written, before any zone is applied.
enum Written<'a> {
    Epoch(Timestamp),
    Civil { civil: Civil, zone: &'a str },
}

fn parse_written(s: &str) -> Result<Written<'_>, Why> {
    // UNIX time
    let digits = s.strip_prefix('@').unwrap_or(s);
    if !digits.is_empty()
        && digits.bytes().next().is_some_and(|b| b.is_ascii_digit())
        && digits.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && digits.bytes().filter(|&b| b == b'.').count() <= 1
        && (s.starts_with('@') || !digits.contains('.'))
    {
        let (whole, frac) = digits.split_once('.').unwrap_or((digits, ""));
        let secs: i64 = whole.parse().map_err(|_| "UNIX time out of range")?;
        let frac = if frac.is_empty() {
            0
        } else {
            format!("{:0<6}", &frac[..frac.len().min(6)])
                .parse()
                .unwrap_or(0)
        };
        if secs > 253_402_300_799 {
            return Err("UNIX time out of range".into());
        }
        return Ok(Written::Epoch(Timestamp::new(secs, frac)));
    }

    let mut c = Cur { s, i: 0 };
    // A leading weekday: `Sat, `, `Saturday `.
    let save = c.i;
    let w = c.word();
    if is_weekday(w) && month_of(w).is_none() {
        c.eat(b',');
        c.spaces();
    } else {
        c.i = save;
    }

    let first_is_digit = c.peek().is_some_and(|b| b.is_ascii_digit());
    let (year, month, day);
    if first_is_digit {
        let (n1, len1) = c.number(4).ok_or("no date")?;
        match (len1, c.peek()) {
            (4, Some(b'-' | b'/')) => {
                // YYYY-MM-DD, YYYY/MM/DD
                let sep = c.peek().unwrap_or(b'-');
                c.i += 1;
                let (m, _) = c.number(2).ok_or("bad month")?;
                if !c.eat(sep) {
                    return Err("bad date".into());
                }
                let (d, _) = c.number(2).ok_or("bad day")?;
                (year, month, day) = (n1 as i32, m, d);
                if c.eat_any(b"Tt_").is_none() && c.spaces() == 0 {
                    return Err("no time of day after the date".into());
                }
            }
            (1 | 2, Some(b'/')) => {
                c.i += 1;
                if c.peek().is_some_and(|b| b.is_ascii_digit()) {
                    return Err("day and month order is ambiguous in a/b/yyyy: \
                                write the date as yyyy-mm-dd"
                        .into());
                }
                // CLF: 21/Nov/2026:13:37:42
                let m = month_of(c.word()).ok_or("bad month name")?;
                if !c.eat(b'/') {
                    return Err("bad date".into());
                }
                let (y, n) = c.number(4).ok_or("bad year")?;
                if n != 4 || !c.eat(b':') {
                    return Err("bad date".into());
                }
                (year, month, day) = (y as i32, m, n1);
            }
            (1 | 2, Some(b'.')) => {
                // 21.11.2026
                c.i += 1;
                let (m, _) = c.number(2).ok_or("bad month")?;
                if !c.eat(b'.') {
                    return Err("bad date".into());
                }
                let (y, n) = c.number(4).ok_or("bad year")?;
                if n != 4 {
                    return Err("the year needs four digits".into());
                }
                (year, month, day) = (y as i32, m, n1);
                if c.spaces() == 0 && c.eat_any(b"Tt,").is_none() {
                    return Err("no time of day after the date".into());
                }
                c.spaces();
            }
            (1 | 2, Some(b' ' | b'-')) => {
                // 21 Nov 2026 13:37:42, 21-Nov-2026 13:37:42
                c.i += 1;
                let m = month_of(c.word()).ok_or("bad month name")?;
                c.eat_any(b" -");
                let (y, n) = c.number(4).ok_or("no year")?;
                if n != 4 {
                    return Err("the year needs four digits".into());
                }
                c.eat(b',');
                if c.spaces() == 0 {
                    return Err("no time of day after the date".into());
                }
                (year, month, day) = (y as i32, m, n1);
            }
            _ => return Err("unknown date form".into()),
        }
    } else {
        // Nov 21 2026 13:37:42, Nov 21, 2026 1:37 PM, Nov 21 13:37:42 CET 2026
        let m = month_of(c.word()).ok_or("unknown date form")?;
        c.eat(b'.');
        if c.spaces() == 0 {
            return Err("bad date".into());
        }
        let (d, _) = c.number(2).ok_or("bad day")?;
        c.eat(b',');
        c.spaces();
        let save = c.i;
        match c.number(4) {
            Some((y, 4)) if c.peek() != Some(b':') => {
                c.eat(b',');
                if c.spaces() == 0 {
                    return Err("no time of day after the date".into());
                }
                (year, month, day) = (y as i32, m, d);
            }
            _ => {
                // date(1): the year comes last, after the zone.
                c.i = save;
                let (h, mi, sec, ns) = time_of_day(&mut c)?;
                let rest = c.rest().trim();
                let (zone, y) = match rest.rsplit_once(' ') {
                    Some((z, y)) => (z.trim(), y),
                    None => ("", rest),
                };
                if y.len() != 4 || !y.bytes().all(|b| b.is_ascii_digit()) {
                    return Err("no year".into());
                }
                let civil = Civil {
                    year: y.parse().unwrap_or(0),
                    month: m,
                    day: d,
                    hour: h,
                    minute: mi,
                    second: sec,
                    nanos: ns,
                };
                return Ok(Written::Civil { civil, zone });
            }
        }
    }
    let (hour, minute, second, nanos) = time_of_day(&mut c)?;
    let zone = c.rest().trim();
    Ok(Written::Civil {
        civil: Civil {
            year,
            month,
            day,
            hour,
            minute,
            second,
            nanos,
        },
        zone,
    })
}

fn jiff_civil(c: Civil) -> Option<DateTime> {
    DateTime::new(
        i16::try_from(c.year).ok()?,
        c.month as i8,
        c.day as i8,
        c.hour as i8,
        c.minute as i8,
        c.second as i8,
        c.nanos as i32,
    )
    .ok()
}

fn local_string(c: Civil) -> String {
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        c.year, c.month, c.day, c.hour, c.minute, c.second
    )
}

/// Whether `s` reads as a relative time: `2 hours ago`, `yesterday`,
/// `now`, `last monday`, `-2h`, `in 3 days`.
fn is_relative(s: &str) -> bool {
    const WORDS: &[&str] = &[
        "ago",
        "now",
        "today",
        "yesterday",
        "tomorrow",
        "last",
        "next",
        "this",
        "in",
        "since",
        "before",
        "earlier",
    ];
    const UNITS: &[&str] = &[
        "s", "sec", "secs", "second", "seconds", "m", "min", "mins", "minute", "minutes", "h",
        "hr", "hrs", "hour", "hours", "d", "day", "days", "w", "week", "weeks", "month", "months",
        "year", "years",
    ];
    let lower = s.to_ascii_lowercase();
    let words: Vec<&str> = lower
        .split(|c: char| c.is_whitespace() || c == ',')
        .filter(|w| !w.is_empty())
        .collect();
    if words.iter().any(|w| WORDS.contains(w)) {
        return true;
    }
    // `-2h`, `+30m`, `2 hours`: a count and a unit, nothing else.
    let joined: String = words.concat();
    let body = joined.trim_start_matches(['+', '-']);
    let digits = body.len() - body.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    digits > 0 && UNITS.contains(&&body[digits..])
}

/// Reads a report's time. `default` is the zone for times written without
/// one (see [`default_zone`]); it is only looked at then.
pub fn parse_report_time(
    input: &str,
    default: &Result<Zone, TimeError>,
) -> Result<ReportTime, TimeError> {
    let trimmed = input.trim();
    let s = trimmed
        .strip_prefix('[')
        .and_then(|s| s.strip_suffix(']'))
        .unwrap_or(trimmed)
        .trim();
    let unrecognized = |why: Why| TimeError::Unrecognized {
        input: input.to_string(),
        why,
    };
    let written = parse_written(s).map_err(|why| {
        if is_relative(s) {
            TimeError::Relative {
                input: input.to_string(),
                phrase: if s.contains('\'') {
                    "2 hours ago".to_string()
                } else {
                    s.to_string()
                },
            }
        } else {
            unrecognized(why)
        }
    })?;
    let (civil, zone_text) = match written {
        Written::Epoch(t) => {
            let zone = default.clone().unwrap_or_else(|_| Zone::utc());
            return Ok(ReportTime {
                input: input.to_string(),
                instants: vec![t],
                zone,
                fold: None,
            });
        }
        Written::Civil { civil, zone } => (civil, zone),
    };
    let dt = jiff_civil(civil)
        .ok_or_else(|| unrecognized(format!("{} is not a date", local_string(civil))))?;
    // `+01:00[Europe/Amsterdam]`: the offset fixes the instant, the name
    // is the zone to show answers in.
    let (offset_text, bracket_name) = match zone_text.split_once('[') {
        Some((o, n)) => (o.trim(), Some(n.trim_end_matches(']').trim())),
        None => (zone_text, None),
    };
    let zone = if offset_text.is_empty() {
        match bracket_name {
            Some(n) => parse_zone(n)?,
            None => default.clone()?,
        }
    } else {
        parse_zone(offset_text)?
    };
    let out_of_range = || TimeError::OutOfRange {
        input: input.to_string(),
    };
    let to_ts = |offset: Offset| -> Result<Timestamp, TimeError> {
        offset
            .to_timestamp(dt)
            .map(from_jiff)
            .map_err(|_| out_of_range())
    };
    let display = match (bracket_name, &zone) {
        (Some(n), Zone::Fixed { .. }) => parse_zone(n).unwrap_or_else(|_| zone.clone()),
        _ => zone.clone(),
    };
    match &zone {
        Zone::Fixed { offset, .. } => {
            let off = Offset::from_seconds(*offset).map_err(|_| out_of_range())?;
            Ok(ReportTime {
                input: input.to_string(),
                instants: vec![to_ts(off)?],
                zone: display,
                fold: None,
            })
        }
        Zone::Tz { tz, name } => match tz.to_ambiguous_timestamp(dt).offset() {
            AmbiguousOffset::Unambiguous { offset } => Ok(ReportTime {
                input: input.to_string(),
                instants: vec![to_ts(offset)?],
                zone: display,
                fold: None,
            }),
            AmbiguousOffset::Gap { before, after } => {
                // The transition lies between the two readings.
                let early = to_ts(after)?;
                let tr = tz
                    .following(to_jiff(early))
                    .next()
                    .map(|t| from_jiff(t.timestamp()))
                    .unwrap_or(early);
                let hm = |off: Offset| {
                    let local = tr.secs + i64::from(off.seconds());
                    let sod = local.rem_euclid(86_400);
                    format!("{:02}:{:02}", sod / 3600, sod / 60 % 60)
                };
                Err(TimeError::Skipped(Box::new(SkippedTime {
                    local: local_string(civil),
                    zone: name.clone(),
                    gap_start: hm(before),
                    gap_end: hm(after),
                    before: offset_string(before.seconds()),
                    after: offset_string(after.seconds()),
                })))
            }
            AmbiguousOffset::Fold { before, after } => {
                let a = to_ts(before)?;
                let b = to_ts(after)?;
                let label = |t: Timestamp| tz.to_offset_info(to_jiff(t)).abbreviation().to_string();
                let fold = format!(
                    "{} happened twice in {name} (the clocks went back from {} to {}): \
                     searched both {} ({}, {}) and {} ({}, {})",
                    local_string(civil),
                    offset_string(before.seconds()),
                    offset_string(after.seconds()),
                    utc_string(a, false),
                    label(a),
                    offset_string(before.seconds()),
                    utc_string(b, false),
                    label(b),
                    offset_string(after.seconds()),
                );
                Ok(ReportTime {
                    input: input.to_string(),
                    instants: vec![a, b],
                    zone: display,
                    fold: Some(fold),
                })
            }
        },
    }
}

/// A duration: `90`, `90s`, `2m`, `1h30m`, `24h`, `2d`, `1w`, in seconds.
pub fn parse_duration(input: &str) -> Result<i64, TimeError> {
    let bad = || TimeError::Duration {
        input: input.to_string(),
    };
    let s = input.trim();
    if s.is_empty() {
        return Err(bad());
    }
    if s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse().map_err(|_| bad());
    }
    let mut total: i64 = 0;
    let mut num = String::new();
    let mut chars = s.chars().peekable();
    while let Some(ch) = chars.next() {
        if ch.is_ascii_digit() {
            num.push(ch);
            continue;
        }
        if ch == ' ' {
            continue;
        }
        let mut unit = String::from(ch);
        while let Some(&n) = chars.peek() {
            if n.is_ascii_alphabetic() {
                unit.push(n);
                chars.next();
            } else {
                break;
            }
        }
        let n: i64 = num.parse().map_err(|_| bad())?;
        num.clear();
        let mult = match unit.to_ascii_lowercase().as_str() {
            "s" | "sec" | "secs" | "second" | "seconds" => 1,
            "m" | "min" | "mins" | "minute" | "minutes" => 60,
            "h" | "hour" | "hours" => 3600,
            "d" | "day" | "days" => 86_400,
            "w" | "week" | "weeks" => 604_800,
            _ => return Err(bad()),
        };
        total = n
            .checked_mul(mult)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(bad)?;
    }
    if !num.is_empty() {
        return Err(bad());
    }
    Ok(total)
}

/// `30.5s`, `7m42s`, `3h05m`, `2d4h`: a short human duration.
pub fn human_duration(micros: i64) -> String {
    let neg = micros < 0;
    let us = micros.unsigned_abs();
    let secs = us / 1_000_000;
    let s = if secs < 60 {
        let tenths = us % 1_000_000 / 100_000;
        if tenths == 0 {
            format!("{secs}s")
        } else {
            format!("{secs}.{tenths}s")
        }
    } else if secs < 3600 && secs.is_multiple_of(60) {
        format!("{}m", secs / 60)
    } else if secs < 3600 {
        format!("{}m{:02}s", secs / 60, secs % 60)
    } else if secs < 86_400 {
        format!("{}h{:02}m", secs / 3600, secs / 60 % 60)
    } else {
        format!("{}d{}h", secs / 86_400, secs / 3600 % 24)
    };
    if neg { format!("-{s}") } else { s }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_relative_time_is_refused_with_the_forms_that_are_read() {
        for input in [
            "2 hours ago",
            "yesterday",
            "now",
            "-2h",
            "30 minutes",
            "last monday",
        ] {
            let e = parse_report_time(input, &utc()).unwrap_err().to_string();
            assert!(e.contains("relative times are not read"), "{input}: {e}");
            assert!(e.contains("`2026-11-21 13:37:42 CET`"), "{e}");
            assert!(
                e.contains(&format!("--at \"$(date -d '{input}' '+%F %T %z')\"")),
                "{e}"
            );
        }
        // What only fails to parse says why, as before.
        for input in ["12:37:42", "tea time", "2026-11-21"] {
            let e = parse_report_time(input, &utc()).unwrap_err();
            assert!(matches!(e, TimeError::Unrecognized { .. }), "{input}: {e}");
        }
    }

    fn ams() -> Result<Zone, TimeError> {
        parse_zone("Europe/Amsterdam")
    }

    fn utc() -> Result<Zone, TimeError> {
        Ok(Zone::utc())
    }

    fn at(input: &str, default: &Result<Zone, TimeError>) -> Vec<String> {
        parse_report_time(input, default)
            .unwrap_or_else(|e| panic!("{input}: {e}"))
            .instants
            .into_iter()
            .map(|t| utc_string(t, false))
            .collect()
    }

    fn one(input: &str) -> String {
        let v = at(input, &ams());
        assert_eq!(v.len(), 1, "{input}: {v:?}");
        v[0].clone()
    }

    const WANT: &str = "2026-11-21T12:37:42Z";

    #[test]
    fn every_common_form_reads_the_same_instant() {
        for input in [
            "2026-11-21T13:37:42+01:00",
            "2026-11-21T12:37:42Z",
            "2026-11-21t12:37:42z",
            "2026-11-21 13:37:42 CET",
            "2026-11-21 13:37:42 cet",
            "2026-11-21 14:37:42 EET",
            "2026-11-21 07:37:42 EST",
            "2026-11-21 04:37:42 PST",
            "2026-11-21 12:37:42 UTC",
            "2026-11-21 12:37:42 GMT",
            "2026-11-21 13:37:42 +01:00",
            "2026-11-21 13:37:42 +0100",
            "2026-11-21 13:37:42 +01",
            "2026-11-21 13:37:42+0100",
            "2026-11-21 13:37:42 UTC+1",
            "2026-11-21 13:37:42 Europe/Amsterdam",
            "2026-11-21 07:37:42 America/New_York",
            "2026/11/21 13:37:42",
            "2026-11-21 13:37:42",
            "2026-11-21T13:37:42",
            "2026-11-21T13:37:42+01:00[Europe/Amsterdam]",
            "Sat, 21 Nov 2026 13:37:42 +0100",
            "21 Nov 2026 12:37:42 GMT",
            "[21/Nov/2026:13:37:42 +0100]",
            "21/Nov/2026:13:37:42 +0100",
            "Sat Nov 21 13:37:42 CET 2026",
            "Sat Nov 21 13:37:42 2026",
            "21.11.2026 13:37:42",
            "Nov 21, 2026 1:37:42 PM",
            "November 21 2026 13:37:42 CET",
            "@1795264662",
            "1795264662",
            "  2026-11-21 13:37:42 CET  ",
        ] {
            assert_eq!(one(input), WANT, "{input}");
        }
        assert_eq!(
            at("2026-11-21 13:37:42,250 CET", &ams()),
            vec!["2026-11-21T12:37:42.250000Z"]
        );
        assert_eq!(
            at("@1795264662.25", &ams()),
            vec!["2026-11-21T12:37:42.250000Z"]
        );
        assert_eq!(at("2026-11-21 13:37", &ams()), vec!["2026-11-21T12:37:00Z"]);
        assert_eq!(
            at("2026-11-21 12:37:42.123456789Z", &ams()),
            vec!["2026-11-21T12:37:42.123456Z"]
        );
    }

    /// Found by fuzz/fuzz_targets/time.rs: before 1970, digits past the
    /// microsecond rounded the instant up instead of down.
    #[test]
    fn fractions_before_1970_are_cut_like_rfc3339() {
        for input in [
            "1969-12-31T23:59:59.0000005Z",
            "1969-12-31T23:59:59.000000999Z",
        ] {
            let r = parse_report_time(input, &utc()).unwrap();
            assert_eq!(
                r.instants,
                vec![Timestamp { secs: -1, usecs: 0 }],
                "{input}"
            );
            assert_eq!(r.first(), masqlog_core::time::parse_rfc3339(input).unwrap());
        }
        assert_eq!(
            at("1969-12-31T23:59:58.9999999Z", &utc()),
            vec!["1969-12-31T23:59:58.999999Z"]
        );
        assert_eq!(
            at("1970-01-01T00:00:00.0000009Z", &utc()),
            vec!["1970-01-01T00:00:00Z"]
        );
    }

    #[test]
    fn the_zone_read_from_etc_localtime_is_the_one_jiff_finds() {
        let (Some(ours), Ok(jiffs)) = (super::localtime_zone(), TimeZone::try_system()) else {
            return; // TZ set, or no /etc/localtime symlink here: nothing to compare
        };
        let Zone::Tz { tz, name } = ours else {
            panic!("not a zone of the database: {ours:?}");
        };
        assert_eq!(Some(name.as_str()), jiffs.iana_name());
        for secs in [0, 1_700_000_000, 1_790_000_000, 2_000_000_000] {
            let t = jiff::Timestamp::from_second(secs).unwrap();
            assert_eq!(tz.to_offset(t), jiffs.to_offset(t), "at {t}");
        }
    }

    #[test]
    fn zoneless_times_use_the_default_zone() {
        assert_eq!(at("2026-11-21 12:37:42", &utc()), vec![WANT]);
        let ny = parse_zone("America/New_York");
        assert_eq!(at("2026-11-21 07:37:42", &ny), vec![WANT]);
        let err = Err(TimeError::SystemZone { why: "x".into() });
        assert!(matches!(
            parse_report_time("2026-11-21 12:37:42", &err),
            Err(TimeError::SystemZone { .. })
        ));
        // A zone in the input does not need the default.
        assert_eq!(at("2026-11-21 12:37:42Z", &err), vec![WANT]);
    }

    #[test]
    fn the_answer_zone_is_the_input_zone() {
        let t = parse_report_time("2026-11-21 13:37:42 CET", &utc()).unwrap();
        assert_eq!(t.zone.name(), "CET");
        assert_eq!(t.zone.show(t.first(), false), "2026-11-21 13:37:42 CET");
        let t = parse_report_time("2026-07-01 13:37:42", &ams()).unwrap();
        assert_eq!(t.zone.show(t.first(), false), "2026-07-01 13:37:42 CEST");
        let t = parse_report_time("2026-11-21T13:37:42+01:00", &utc()).unwrap();
        assert_eq!(
            t.zone.show(t.first(), true),
            "2026-11-21 13:37:42.000000 +01:00"
        );
        let t = parse_report_time("2026-11-21T13:37:42+01:00[Europe/Amsterdam]", &utc()).unwrap();
        assert_eq!(t.zone.name(), "Europe/Amsterdam");
        assert!(parse_zone("UTC").unwrap().is_utc());
        assert!(parse_zone("Etc/UTC").unwrap().is_utc());
        assert!(!parse_zone("CET").unwrap().is_utc());
    }

    #[test]
    fn abbreviations_are_fixed_offsets() {
        // CET in July means +01:00 as written, not the CEST in force.
        assert_eq!(
            at("2026-07-01 13:00:00 CET", &utc()),
            vec!["2026-07-01T12:00:00Z"]
        );
        assert_eq!(
            at("2026-07-01 14:00:00 CEST", &utc()),
            vec!["2026-07-01T12:00:00Z"]
        );
        assert_eq!(
            at("2026-07-01 08:00:00 EDT", &utc()),
            vec!["2026-07-01T12:00:00Z"]
        );
        assert_eq!(
            at("2026-07-01 05:00:00 PDT", &utc()),
            vec!["2026-07-01T12:00:00Z"]
        );
        assert_eq!(
            at("2026-07-01 21:30:00 ACST", &utc()),
            vec!["2026-07-01T12:00:00Z"]
        );
        for (abbr, off) in ABBREVIATIONS {
            let z = parse_zone(abbr).unwrap();
            assert!(
                matches!(z, Zone::Fixed { offset, .. } if offset == *off),
                "{abbr}"
            );
        }
        assert!(matches!(
            parse_zone("IST"),
            Err(TimeError::AmbiguousAbbreviation { .. })
        ));
        assert!(matches!(
            parse_report_time("2026-11-21 13:37:42 IST", &utc()),
            Err(TimeError::AmbiguousAbbreviation { .. })
        ));
        assert!(matches!(
            parse_zone("XYZT"),
            Err(TimeError::UnknownZone { .. })
        ));
        assert!(matches!(
            parse_zone("Mars/Olympus_Mons"),
            Err(TimeError::UnknownZone { .. })
        ));
    }

    #[test]
    fn spring_forward_gap_is_an_error_that_names_it() {
        // Europe/Amsterdam: 2026-03-29 02:00 CET -> 03:00 CEST.
        let e = parse_report_time("2026-03-29 02:30:00", &ams()).unwrap_err();
        assert_eq!(
            e,
            TimeError::Skipped(Box::new(SkippedTime {
                local: "2026-03-29 02:30:00".into(),
                zone: "Europe/Amsterdam".into(),
                gap_start: "02:00".into(),
                gap_end: "03:00".into(),
                before: "+01:00".into(),
                after: "+02:00".into(),
            }))
        );
        let msg = e.to_string();
        assert!(msg.contains("never happened in Europe/Amsterdam"), "{msg}");
        assert!(msg.contains("from 02:00 to 03:00"), "{msg}");
        // America/New_York: 2026-03-08 02:00 EST -> 03:00 EDT.
        let ny = parse_zone("America/New_York");
        let e = parse_report_time("2026-03-08 02:15:00", &ny).unwrap_err();
        assert!(
            matches!(&e, TimeError::Skipped(g)
                if g.gap_start == "02:00" && g.gap_end == "03:00" && g.before == "-05:00" && g.after == "-04:00"),
            "{e}"
        );
        // Just outside the gap is fine.
        assert_eq!(
            at("2026-03-29 01:59:59", &ams()),
            vec!["2026-03-29T00:59:59Z"]
        );
        assert_eq!(
            at("2026-03-29 03:00:00", &ams()),
            vec!["2026-03-29T01:00:00Z"]
        );
        // With an explicit offset the gap does not matter.
        assert_eq!(
            at("2026-03-29 02:30:00+01:00", &ams()),
            vec!["2026-03-29T01:30:00Z"]
        );
    }

    #[test]
    fn fall_back_overlap_gives_both_instants() {
        // Europe/Amsterdam: 2026-10-25 03:00 CEST -> 02:00 CET.
        let t = parse_report_time("2026-10-25 02:30:00", &ams()).unwrap();
        let got: Vec<String> = t.instants.iter().map(|&t| utc_string(t, false)).collect();
        assert_eq!(got, vec!["2026-10-25T00:30:00Z", "2026-10-25T01:30:00Z"]);
        let note = t.fold.unwrap();
        assert!(
            note.contains("happened twice in Europe/Amsterdam"),
            "{note}"
        );
        assert!(note.contains("CEST") && note.contains("CET"), "{note}");
        // America/New_York: 2026-11-01 02:00 EDT -> 01:00 EST.
        let ny = parse_zone("America/New_York");
        assert_eq!(
            at("2026-11-01 01:30:00", &ny),
            vec!["2026-11-01T05:30:00Z", "2026-11-01T06:30:00Z"]
        );
        // Abbreviations and offsets settle it.
        assert_eq!(
            at("2026-10-25 02:30:00 CET", &ams()),
            vec!["2026-10-25T01:30:00Z"]
        );
        assert_eq!(
            at("2026-10-25 02:30:00 CEST", &ams()),
            vec!["2026-10-25T00:30:00Z"]
        );
    }

    #[test]
    fn bad_times_are_refused_with_a_reason() {
        for bad in [
            "",
            "yesterday",
            "11/21/2026 13:37:42",
            "2026-11-21",
            "2026-13-21 13:37:42",
            "2026-02-30 13:37:42",
            "2026-11-21 25:00:00",
            "2026-11-21 13:61:00",
            "Nov 21 13:37:42",
            "2026-11-21 13:37:42 Nowhere/Special",
            "99999999999999",
            "13 PM",
        ] {
            assert!(
                parse_report_time(bad, &utc()).is_err(),
                "{bad}: {:?}",
                parse_report_time(bad, &utc())
            );
        }
        let e = parse_report_time("11/21/2026 13:37:42", &utc()).unwrap_err();
        assert!(e.to_string().contains("ambiguous"), "{e}");
    }

    /// Found by fuzz/fuzz_targets/time.rs: `+1é1` is four bytes, and
    /// `+HHMM` sliced the `é` in two (a panic).
    #[test]
    fn offsets_with_non_ascii_characters_are_refused() {
        for bad in ["+1é1", "-0€", "+é12", "UTC+1é1", "+1:é"] {
            assert!(parse_zone(bad).is_err(), "{bad}");
        }
        assert!(parse_report_time("2026-11-21 13:37:42 +1é1", &utc()).is_err());
        assert!(parse_zone("+0130").is_ok());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("120").unwrap(), 120);
        assert_eq!(parse_duration("90s").unwrap(), 90);
        assert_eq!(parse_duration("2m").unwrap(), 120);
        assert_eq!(parse_duration("1h30m").unwrap(), 5400);
        assert_eq!(parse_duration("24h").unwrap(), 86_400);
        assert_eq!(parse_duration("2d").unwrap(), 172_800);
        assert_eq!(parse_duration("1w").unwrap(), 604_800);
        assert_eq!(parse_duration("5 min").unwrap(), 300);
        for bad in ["", "m", "2x", "1h30", "-5m", "99999999999999999999d"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        assert_eq!(human_duration(30_500_000), "30.5s");
        assert_eq!(human_duration(462_000_000), "7m42s");
        assert_eq!(human_duration(3 * 3600 * 1_000_000 + 300_000_000), "3h05m");
        assert_eq!(human_duration(-60_000_000), "-1m");
        assert_eq!(human_duration(120_000_000), "2m");
    }

    #[test]
    fn calendar_helpers_agree_with_jiff() {
        use masqlog_core::time::{civil_from_days, days_from_civil};
        for days in (-800_000i64..800_000).step_by(997) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
            let j = jiff::civil::date(y as i16, m as i8, d as i8);
            let secs = j
                .at(0, 0, 0, 0)
                .to_zoned_datetime(TimeZone::UTC)
                .unwrap()
                .timestamp()
                .as_second();
            assert_eq!(secs, days * 86_400);
        }
    }
}
