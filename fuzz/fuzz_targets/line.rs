//! Fuzzes the log-line parsers (`parse_line`, `parse_text`, `parse_json`,
//! `parse_rfc5424`): no input may panic; `parse_line` answers as the parser
//! of the form the line's message begins with; error messages are one short printable line; what
//! `parse_json` accepts is JSON to serde_json too; and every record a line
//! is read as reads back the same after being written again in each of the
//! three formats.
#![no_main]

use libfuzzer_sys::fuzz_target;
use masqlog_core::config::Format;
use masqlog_core::format::{
    Header, ParseError, ParsedLine, message_start, parse_json, parse_line, parse_rfc5424,
    parse_text, write_syslog,
};
use masqlog_core::record::{FlowRecord, Timestamp};

type Parser = fn(&str) -> Result<ParsedLine, ParseError>;

const FORMATS: [(Format, Parser); 3] = [
    (Format::Text, parse_text),
    (Format::Json, parse_json),
    (Format::Rfc5424, parse_rfc5424),
];

/// The header the lines are written again with.
const HEADER: Header<'static> = Header {
    pri: 30,
    timestamp: Timestamp {
        secs: 1_795_264_692,
        usecs: 700_000,
    },
    hostname: Some("gw1"),
    app: "masqlog",
    pid: 4242,
};

/// Seconds of 0000-01-01T00:00:00Z and 10000-01-01T00:00:00Z: the instants
/// that `write_rfc3339_micros` writes in the four-digit form that
/// `parse_rfc3339` reads.
const FIRST_WRITABLE: i64 = -62_167_219_200;
const PAST_WRITABLE: i64 = 253_402_300_800;

fn writable(t: Option<Timestamp>) -> bool {
    t.is_none_or(|t| (FIRST_WRITABLE..PAST_WRITABLE).contains(&t.secs))
}

/// One line, no control characters, bounded whatever the input: a quoted
/// value is cut to 64 bytes, each shown as at most 10 (`\u{10ffff}`).
fn check_error(e: &ParseError) {
    let m = e.to_string();
    assert!(m.len() <= 1024, "{} bytes: {m:?}", m.len());
    assert!(!m.chars().any(char::is_control), "{m:?}");
}

/// Writes `rec` in each format, reads it back with that format's parser and
/// with `parse_line`: the same record, and nothing unknown.
fn round_trip(rec: &FlowRecord, from: &str) {
    for (format, parse) in FORMATS {
        let mut out = Vec::new();
        write_syslog(format, &HEADER, rec, &mut out);
        let line = match String::from_utf8(out) {
            Ok(l) => l,
            Err(e) => panic!("{format:?} wrote invalid UTF-8 {:?}", e.as_bytes()),
        };
        assert!(
            !line.contains(['\n', '\r', '\0']),
            "{format:?} line breaks: {line:?}"
        );
        if format == Format::Text {
            assert!(line.bytes().all(|b| (0x20..0x7f).contains(&b)), "{line:?}");
        }
        for p in [parse, parse_line] {
            let back = p(&line).unwrap_or_else(|e| panic!("{e}: {line:?} (from {from:?})"));
            assert_eq!(back.record, *rec, "{line:?} (from {from:?})");
            assert!(back.extra.is_empty(), "{line:?} (from {from:?})");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let line = String::from_utf8_lossy(data);
    let line = line.as_ref();
    let each: Vec<_> = FORMATS.iter().map(|(_, p)| p(line)).collect();
    let any = parse_line(line);

    // `parse_line` is one of the three, or none found.
    match &any {
        Ok(p) => assert!(each.iter().any(|r| r.as_ref() == Ok(p)), "{line:?}"),
        Err(ParseError::NotFound { .. }) => assert!(
            each.iter()
                .all(|r| matches!(r, Err(ParseError::NotFound { .. }))),
            "{line:?}"
        ),
        Err(e) => assert!(each.iter().any(|r| r.as_ref() == Err(e)), "{line:?}"),
    }
    for r in each.iter().chain([&any]) {
        if let Err(e) = r {
            check_error(e);
        }
    }

    // What the JSON parser accepted is a JSON object to serde_json.
    if each[1].is_ok() {
        // Where the record starts: the line's syslog message.
        let at = message_start(line.as_bytes()).expect("found before");
        let mut values =
            serde_json::Deserializer::from_str(&line[at..]).into_iter::<serde_json::Value>();
        match values.next() {
            Some(Ok(serde_json::Value::Object(_))) => {}
            other => panic!("serde_json: {other:?} for {line:?}"),
        }
    }

    for p in each.iter().chain([&any]).flatten() {
        let rec = &p.record;
        // Times before year 0 or after 9999 (UTC) cannot be written in
        // RFC 3339: an offset can take a time at either end of the range
        // `parse_rfc3339` reads there (documented at `write_rfc3339_micros`).
        if writable(rec.start) && writable(rec.end) {
            round_trip(rec, line);
        }
    }
});
