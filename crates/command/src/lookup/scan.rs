//! Reading the logs fast: big reads, a SIMD substring search (memchr's
//! `memmem`) for the queried address and port across whole chunks, a cheap
//! look at the `masq` field, and a full parse only of the lines that pass;
//! on plain files a bisection on the syslog prefix times to start near the
//! search window, and an early stop past it.
//!
//! **Skew.** A prefix time may be local time, UTC, or mislabelled (rsyslog
//! gives masqlog's UTC header its own zone); per file, the scanner measures
//! `prefix - record time` on masqlog lines (the event time of a start or end
//! line is when it was logged) and navigates by the median. With no masqlog
//! line to measure, it allows for any zone (±15 hours).
//!
//! **Order.** The seek and the early stop assume that times grow along a
//! file, within the margin. That is checked, never trusted: the probes of a
//! plain file (one every 1/K of it, K from 8 to 128 by size) must be in
//! order, and reading stops early only when no later probe is at or before
//! the window's end; while reading, the time of a line every 16 KiB, the
//! record times of the start and end lines read and each skew sample are
//! compared with what came before. Any disorder seen beyond the margin (a
//! shuffled replay, a clock stepped back, routers with skewed clocks merged
//! by one collector) turns both off for that input: it is read in full (a
//! plain file again from its start), with a note, so the answer is the one
//! `--scan-all` gives. What no probe and no read line shows cannot be seen:
//! disorder in a stretch shorter than the probe spacing outside what was
//! read, or, in a compressed file or stdin, after the early stop.

use std::collections::HashMap;
use std::io::{self, Read, Seek, SeekFrom};
use std::net::IpAddr;

use memchr::memmem::Finder;
use memchr::{memchr, memchr_iter, memrchr};

use super::Progress;
use super::prefix;
use super::query::canon;
use super::source::{self, Opened, Spec};
use masqlog_core::format::chain::parse_chain;
use masqlog_core::format::gap::{Gap, parse_gap};
use masqlog_core::format::{ParseError, ParsedLine, parse_line};
use masqlog_core::record::{Event, FlowRecord};

/// The margin the navigation adds on both sides of the window (5 minutes):
/// syslog lines may be a little out of order, and logged a little late.
pub const NAV_MARGIN_SECS: i64 = 300;

/// A file last modified this long (a day) before the window is not opened:
/// generous, because the log host's clock (mtime) and the router's (record
/// times) may disagree.
pub const MTIME_MARGIN_SECS: i64 = 86_400;

/// The skew allowed when a file has no masqlog line to measure it by.
const MAX_SKEW_SECS: i64 = 15 * 3600;

/// How much is read at a time.
const CHUNK: usize = 1 << 20;

/// How much a bisection probe reads.
const PROBE: usize = 64 << 10;

/// Lines longer than this are cut (a log line is a few hundred bytes).
const MAX_LINE: usize = 16 << 20;

/// How much calibration reads at most, from each of two places, when the
/// probes met no masqlog line.
const CALIBRATE_READ: u64 = 16 << 20;

/// Skew samples taken per file.
const CALIBRATE: usize = 9;

/// While reading, the time of one line in this many bytes is checked
/// against the times before it.
const ORDER_STEP: usize = 16 << 10;

/// The note of an input read in full because its lines are out of order.
const DISORDER: &str = "the log is not in time order";

/// Two lines of one flow carry the same start time (within this).
pub const SAME_START_US: i64 = 2_000_000;

/// The event kinds a line can have, including ones this build does not
/// know (a later `ev=` value, read as an update).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LineEvent {
    Known(Event),
    Other(String),
}

impl LineEvent {
    pub fn name(&self) -> &str {
        match self {
            LineEvent::Known(e) => e.name(),
            LineEvent::Other(s) => s,
        }
    }
}

/// One masqlog line about a queried endpoint.
#[derive(Clone, Debug)]
pub struct Candidate {
    pub source: usize,
    /// Byte offset of the line in the (decompressed) input.
    pub offset: u64,
    /// Line index counted from where reading of the source started.
    pub rel_line: u64,
    pub text: String,
    pub parsed: ParsedLine,
    pub event: LineEvent,
    /// When the line's event happened (microseconds): the end time of an
    /// end line, else the start time, else the skew-corrected prefix time.
    pub when: Option<i64>,
    /// Order of reading.
    pub seq: usize,
}

/// A masqlog line that does not parse.
#[derive(Clone, Debug)]
pub struct Malformed {
    pub source: usize,
    pub offset: u64,
    pub rel_line: u64,
    pub reason: ParseError,
}

/// What is known about one input after reading.
#[derive(Clone, Debug)]
pub struct SourceInfo {
    pub spec: Spec,
    /// Where reading started (a line start).
    pub start_offset: u64,
    /// The line number of the first line read, once known.
    pub base_line: Option<u64>,
}

impl SourceInfo {
    pub fn line(&self, rel: u64) -> Option<u64> {
        self.base_line.map(|b| b + rel)
    }
}

/// Counters for the summary.
#[derive(Clone, Debug, Default)]
pub struct ScanStats {
    pub inputs: usize,
    pub skipped_by_mtime: usize,
    pub bisected: usize,
    pub bytes_read: u64,
    pub bytes_total: u64,
    pub lines_parsed: u64,
    /// Lines about a queried endpoint that hold a masqlog marker, but not
    /// where their syslog message begins (another program's message that
    /// quotes one): not records, skipped.
    pub not_records: u64,
    /// The latest (corrected) prefix time of a line read, seconds.
    pub seen_until: Option<i64>,
}

/// The windowed search (see the module documentation of `lookup`).
#[derive(Clone, Debug)]
pub struct Window {
    /// Flows that started before this (record time, seconds) are not
    /// looked for: `report - slack - max_age`.
    pub from: i64,
    /// Read at least up to here: `report + slack`.
    pub until: i64,
    pub max_age: i64,
    /// The protocol filter, to follow only flows that can match.
    pub proto: Option<u8>,
}

/// What to look for.
pub struct Targets {
    /// A line is examined when one of these occurs in it...
    finders: Vec<Finder<'static>>,
    /// ... and all of these.
    also: Vec<Finder<'static>>,
    endpoints: HashMap<(IpAddr, u16), ()>,
    ports: HashMap<u16, ()>,
}

impl Targets {
    /// One endpoint: the rarer of address and port digits is searched
    /// first (a NAT router with one public address puts it in every line).
    pub fn single(ip: IpAddr, port: u16) -> Targets {
        let ip_s = ip.to_string().into_bytes();
        let port_s = port.to_string().into_bytes();
        let (first, second) = if port_s.len() >= 4 {
            (port_s, ip_s)
        } else {
            (ip_s, port_s)
        };
        Targets {
            finders: vec![Finder::new(&first).into_owned()],
            also: vec![Finder::new(&second).into_owned()],
            endpoints: [((ip, port), ())].into_iter().collect(),
            ports: [(port, ())].into_iter().collect(),
        }
    }

    /// Many endpoints (batch): searched by address.
    pub fn many(eps: impl IntoIterator<Item = (IpAddr, u16)>) -> Targets {
        let mut endpoints = HashMap::new();
        let mut ports = HashMap::new();
        let mut ips = Vec::new();
        for (ip, port) in eps {
            endpoints.insert((ip, port), ());
            ports.insert(port, ());
            if !ips.contains(&ip) {
                ips.push(ip);
            }
        }
        Targets {
            finders: ips
                .iter()
                .map(|ip| Finder::new(ip.to_string().as_bytes()).into_owned())
                .collect(),
            also: Vec::new(),
            endpoints,
            ports,
        }
    }
}

/// The masq port of a line, read without parsing it, when it can be told
/// for sure; `None` sends the line to the full parser.
pub fn quick_masq_port(line: &[u8]) -> Option<u16> {
    // text and RFC 5424: ` masq=VALUE` / ` masq="VALUE"`; the known fields
    // come before any unknown one, so the first occurrence is the field.
    if let Some(at) = memchr::memmem::find(line, b" masq=") {
        let mut v = &line[at + 6..];
        if v.first() == Some(&b'"') {
            v = &v[1..];
        }
        let end = v
            .iter()
            .position(|&b| b == b' ' || b == b'"')
            .unwrap_or(v.len());
        let v = &v[..end];
        let (host, port) = v.split_at(memrchr(b':', v)?);
        let port = &port[1..];
        let bracketed = host.first() == Some(&b'[');
        let colons = host.iter().filter(|&&b| b == b':').count();
        if !(bracketed || colons == 0) || port.is_empty() || port.len() > 5 {
            return None;
        }
        return std::str::from_utf8(port).ok()?.parse().ok();
    }
    // JSON: "masq":{"ip":"...","port":N}
    let at = memchr::memmem::find(line, b"\"masq\":{")?;
    let obj = &line[at + 8..];
    let close = memchr(b'}', obj)?;
    let obj = &obj[..close];
    let p = memchr::memmem::find(obj, b"\"port\":")?;
    let digits: Vec<u8> = obj[p + 7..]
        .iter()
        .copied()
        .skip_while(|&b| b == b' ')
        .take_while(u8::is_ascii_digit)
        .collect();
    std::str::from_utf8(&digits).ok()?.parse().ok()
}

fn is_word(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 32
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// One masqlog line, read.
#[derive(Clone, Debug)]
pub struct ReadLine {
    pub parsed: ParsedLine,
    pub event: LineEvent,
}

/// Parses a line. An event kind this build does not know (a later
/// version's `ev=`) is read as an update, its name kept. A line without
/// `remote` (the privacy setting `remote=omit|hash`) has no endpoint in
/// `parsed.record.remote`.
pub fn parse_candidate(text: &str) -> Result<ReadLine, ParseError> {
    let mut line = std::borrow::Cow::Borrowed(text);
    let mut other_event: Option<String> = None;
    let mut first_error: Option<ParseError> = None;
    loop {
        let err = match parse_line(&line) {
            Ok(parsed) => {
                let event = match other_event {
                    Some(name) => LineEvent::Other(name),
                    None => LineEvent::Known(parsed.record.event),
                };
                return Ok(ReadLine { parsed, event });
            }
            Err(e) => e,
        };
        let retry = match &err {
            ParseError::InvalidValue { field, value }
                if field == "ev" && is_word(value) && other_event.is_none() =>
            {
                let patterns = [
                    (format!(" ev={value}"), " ev=update".to_string()),
                    (
                        format!("\"ev\":\"{value}\""),
                        "\"ev\":\"update\"".to_string(),
                    ),
                    (format!(" ev=\"{value}\""), " ev=\"update\"".to_string()),
                ];
                let first = patterns
                    .iter()
                    .filter_map(|(from, to)| line.find(from.as_str()).map(|at| (at, from, to)))
                    .min_by_key(|(at, _, _)| *at);
                other_event = Some(value.clone());
                first.map(|(at, from, to)| {
                    format!("{}{}{}", &line[..at], to, &line[at + from.len()..])
                })
            }
            _ => None,
        };
        let first = first_error.get_or_insert(err);
        match retry {
            Some(l) => line = std::borrow::Cow::Owned(l),
            None => return Err(first.clone()),
        }
    }
}

/// The time of the line's own event, from its fields (microseconds).
fn event_time(r: &FlowRecord) -> Option<i64> {
    match r.event {
        Event::End => r.end.or(r.start),
        _ => r.start,
    }
    .map(|t| t.as_micros())
}

/// The prefix-minus-record skew samples of one input.
#[derive(Default)]
struct Skew {
    samples: Vec<i64>,
}

impl Skew {
    fn add(&mut self, s: i64) {
        if self.samples.len() < 64 {
            self.samples.push(s);
        }
    }

    fn median(&self) -> i64 {
        if self.samples.is_empty() {
            return 0;
        }
        let mut v = self.samples.clone();
        v.sort_unstable();
        v[v.len() / 2]
    }

    /// How far a corrected prefix time may be from the record time.
    fn margin(&self) -> i64 {
        if self.samples.is_empty() {
            return NAV_MARGIN_SECS + MAX_SKEW_SECS;
        }
        let lo = self.samples.iter().min().copied().unwrap_or(0);
        let hi = self.samples.iter().max().copied().unwrap_or(0);
        NAV_MARGIN_SECS + (hi - lo)
    }
}

/// A bisection probe: the first line with a prefix time at or after a
/// position.
#[derive(Clone, Copy, Debug)]
struct Probe {
    pos: u64,
    naive: i64,
}

/// What the reading of one input has seen of its order.
#[derive(Clone, Debug, Default)]
struct Order {
    /// Read this input in full: no seek, no early stop.
    full: bool,
    /// Disorder was seen (and not yet acted on).
    disordered: bool,
    /// The latest corrected prefix time seen, seconds.
    high: Option<i64>,
    /// The latest record time (start or end line) seen, seconds.
    rec_high: Option<i64>,
    /// The probes of the plan (plain files), in file order.
    probes: Vec<Probe>,
    /// The skew median and margin the seek was planned with: a skew sample
    /// below `median - margin` belongs to lines the seek may have skipped.
    premise: Option<(i64, i64)>,
}

impl Order {
    /// Takes a time (seconds) read after the ones before; `tolerance`: how
    /// far back it may be without being disorder.
    fn see(high: &mut Option<i64>, disordered: &mut bool, t: i64, tolerance: i64) {
        if let Some(h) = *high
            && t < h.saturating_sub(tolerance)
        {
            *disordered = true;
        }
        *high = Some(high.map_or(t, |h| h.max(t)));
    }
}

/// What one pass over an input ended with.
enum Pass {
    Done,
    /// Disorder seen after a seek: the input must be read again from its
    /// start.
    Restart,
}

/// What is undone when an input is read again from its start.
struct Mark {
    candidates: usize,
    malformed: usize,
    gaps: usize,
    lines_parsed: u64,
    not_records: u64,
    pending: HashMap<(u8, Option<u32>), i64>,
}

/// The scanner: reads inputs, collects candidates.
pub struct Scanner<'p> {
    targets: Targets,
    window: Option<Window>,
    /// For the year of traditional prefixes: the report time (seconds).
    anchor: i64,
    pub candidates: Vec<Candidate>,
    pub malformed: Vec<Malformed>,
    pub unreadable: Vec<(String, String)>,
    pub notes: Vec<String>,
    /// Gap records of the searched period, with their lines.
    pub gaps: Vec<(Gap, String)>,
    pub sources: Vec<SourceInfo>,
    pub stats: ScanStats,
    /// Flows that may match and have no end line yet: key -> follow until.
    pending: HashMap<(u8, Option<u32>), i64>,
    progress: &'p mut dyn Progress,
    marker: Finder<'static>,
    /// Lines with it may be gap records.
    gap_marker: Finder<'static>,
    hits: Vec<usize>,
    /// The order of the input being read.
    order: Order,
}

impl<'p> Scanner<'p> {
    pub fn new(
        targets: Targets,
        window: Option<Window>,
        anchor: i64,
        progress: &'p mut dyn Progress,
    ) -> Scanner<'p> {
        Scanner {
            targets,
            window,
            anchor,
            candidates: Vec::new(),
            malformed: Vec::new(),
            unreadable: Vec::new(),
            notes: Vec::new(),
            gaps: Vec::new(),
            sources: Vec::new(),
            stats: ScanStats::default(),
            pending: HashMap::new(),
            progress,
            marker: Finder::new(b"masqlog").into_owned(),
            gap_marker: Finder::new(b"gap").into_owned(),
            hits: Vec::new(),
            order: Order::default(),
        }
    }

    fn mark(&self) -> Mark {
        Mark {
            candidates: self.candidates.len(),
            malformed: self.malformed.len(),
            gaps: self.gaps.len(),
            lines_parsed: self.stats.lines_parsed,
            not_records: self.stats.not_records,
            pending: self.pending.clone(),
        }
    }

    /// Forgets what was read of an input since `m`, to read it again.
    fn undo(&mut self, m: Mark) {
        self.candidates.truncate(m.candidates);
        self.malformed.truncate(m.malformed);
        self.gaps.truncate(m.gaps);
        self.stats.lines_parsed = m.lines_parsed;
        self.stats.not_records = m.not_records;
        self.pending = m.pending;
    }

    /// Notes once that input `idx` is read in full for its disorder.
    fn note_disorder(&mut self, idx: usize) {
        let note = format!(
            "{}: {DISORDER}: read in full",
            self.sources[idx].spec.name()
        );
        if !self.notes.contains(&note) {
            self.notes.push(note);
        }
    }

    /// Adds a skew sample; one below the seek's premise is disorder.
    fn add_skew(&mut self, skew: &mut Skew, s: i64) {
        if let Some((median, margin)) = self.order.premise
            && s < median.saturating_sub(margin)
        {
            self.order.disordered = true;
        }
        skew.add(s);
    }

    /// Checks the order of the lines in `data` (one every [`ORDER_STEP`]
    /// bytes, and the last) against what was read before.
    fn check_order(&mut self, data: &[u8], skew: &Skew) {
        if self.window.is_none() || self.order.full {
            return;
        }
        let (median, tolerance) = (skew.median(), skew.margin());
        let mut at = 0;
        while at < data.len() {
            let ls = if at == 0 {
                0
            } else {
                match memchr(b'\n', &data[at - 1..]) {
                    Some(k) => at + k,
                    None => break,
                }
            };
            if ls >= data.len() {
                break;
            }
            let le = memchr(b'\n', &data[ls..]).map_or(data.len(), |k| ls + k);
            if let Some(n) = prefix::time_of(&data[ls..le], self.anchor) {
                Order::see(
                    &mut self.order.high,
                    &mut self.order.disordered,
                    n - median,
                    tolerance,
                );
            }
            at = (le + 1).max(at + ORDER_STEP);
        }
        let end = if data.last() == Some(&b'\n') {
            data.len() - 1
        } else {
            data.len()
        };
        let ls = memrchr(b'\n', &data[..end]).map_or(0, |k| k + 1);
        if let Some(n) = prefix::time_of(&data[ls..end], self.anchor) {
            Order::see(
                &mut self.order.high,
                &mut self.order.disordered,
                n - median,
                tolerance,
            );
        }
    }

    /// Whether a probe after `offset` is at or before `bound` (corrected):
    /// lines there may still belong to the window.
    fn probe_ahead_before(&self, offset: u64, bound: i64, median: i64) -> bool {
        self.order
            .probes
            .iter()
            .any(|p| p.pos >= offset && p.naive - median <= bound)
    }

    /// Where reading can stop (record time, seconds): the window's end, or
    /// later while a flow that may match has no end line yet.
    fn stop_bound(&self) -> i64 {
        let w = self.window.as_ref().map_or(i64::MAX, |w| w.until);
        self.pending.values().copied().fold(w, i64::max)
    }

    /// Reads every input in order. `stdin` is used for [`Spec::Stdin`].
    pub fn run(&mut self, specs: &[Spec], mut stdin: Option<Box<dyn Read>>) {
        let mut sizes = 0;
        for s in specs {
            if let Spec::File(p) = s {
                sizes += std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
            }
        }
        self.stats.bytes_total += sizes;
        for spec in specs {
            let idx = self.sources.len();
            self.sources.push(SourceInfo {
                spec: spec.clone(),
                start_offset: 0,
                base_line: Some(1),
            });
            self.stats.inputs += 1;
            let name = spec.name();
            let opened = match spec {
                Spec::Rows(r) => {
                    let reader: Box<dyn Read> = Box::new(std::io::Cursor::new(r.text.clone()));
                    match source::stdin_stream(reader) {
                        Ok(o) => o,
                        Err(why) => {
                            self.unreadable.push((name, why));
                            continue;
                        }
                    }
                }
                Spec::Stdin => match stdin.take().map(source::stdin_stream) {
                    Some(Ok(o)) => o,
                    Some(Err(why)) => {
                        self.unreadable.push((name, why));
                        continue;
                    }
                    None => continue,
                },
                Spec::File(p) => {
                    if let (Some(w), Some(mtime)) = (&self.window, source::mtime(p)) {
                        let secs = mtime
                            .duration_since(std::time::UNIX_EPOCH)
                            .map_or(0, |d| d.as_secs() as i64);
                        if secs < w.from.saturating_sub(MTIME_MARGIN_SECS) {
                            self.stats.skipped_by_mtime += 1;
                            continue;
                        }
                    }
                    match source::open_file(p) {
                        Ok(o) => o,
                        Err(why) => {
                            self.unreadable.push((name, why));
                            continue;
                        }
                    }
                }
            };
            if let Err(why) = self.read_source(idx, opened) {
                self.unreadable.push((name, why));
            }
        }
        self.progress.finish();
    }

    /// A source that starts at byte `offset` and line `first_line` of the
    /// plain file `spec` names, as an index located it: the index chose
    /// what is read, so no seek and no early stop.
    fn indexed_source(&mut self, spec: &Spec, offset: u64, first_line: u64) -> usize {
        self.sources.push(SourceInfo {
            spec: spec.clone(),
            start_offset: offset,
            base_line: Some(first_line),
        });
        self.order = Order {
            full: true,
            ..Order::default()
        };
        self.sources.len() - 1
    }

    /// Reads one decoded piece of an indexed file (a frame of a store
    /// segment): `data` holds whole lines that stand at byte `offset` and
    /// line `first_line` of the plain file that `spec` names.
    pub fn read_piece(&mut self, spec: &Spec, data: &[u8], offset: u64, first_line: u64) {
        let idx = self.indexed_source(spec, offset, first_line);
        let mut skew = Skew::default();
        self.stats.bytes_read += data.len() as u64;
        self.process(idx, data, offset, 0, &mut skew);
    }

    /// Reads a plain file from byte `offset` (line `first_line`) to its
    /// end, every line: the lines of a live store segment after what its
    /// index covers.
    pub fn read_rest(
        &mut self,
        spec: &Spec,
        file: &mut std::fs::File,
        offset: u64,
        first_line: u64,
    ) -> Result<(), String> {
        let idx = self.indexed_source(spec, offset, first_line);
        let mut skew = Skew::default();
        file.seek(SeekFrom::Start(offset))
            .map_err(|e| e.to_string())?;
        self.scan_stream(idx, file, &mut skew, None)
            .map(|_| ())
            .map_err(|(e, at, line)| describe_read_error(&e, at, line, false))
    }

    fn read_source(&mut self, idx: usize, opened: Opened) -> Result<(), String> {
        let mut skew = Skew::default();
        self.order = Order {
            full: self.window.is_none(),
            ..Order::default()
        };
        match opened {
            Opened::Plain { mut file, size } => {
                let mut from = 0;
                if self.window.is_some() {
                    match self.plan(&mut file, size, &mut skew) {
                        Ok(Ok(off)) => {
                            from = off;
                            self.stats.bisected += 1;
                        }
                        Ok(Err(why)) => {
                            self.order.full = true;
                            if why == DISORDER {
                                self.note_disorder(idx);
                            } else {
                                self.notes.push(format!(
                                    "{}: {why}: read it whole",
                                    self.sources[idx].spec.name()
                                ));
                            }
                        }
                        Err(e) => return Err(e.to_string()),
                    }
                }
                let mark = self.mark();
                loop {
                    file.seek(SeekFrom::Start(from))
                        .map_err(|e| e.to_string())?;
                    self.sources[idx].start_offset = from;
                    self.sources[idx].base_line = (from == 0).then_some(1);
                    match self.scan_stream(idx, &mut file, &mut skew, None) {
                        Ok(Pass::Done) => return Ok(()),
                        Ok(Pass::Restart) => {
                            self.undo(Mark {
                                pending: mark.pending.clone(),
                                ..mark
                            });
                            self.order.full = true;
                            self.order.disordered = false;
                            self.note_disorder(idx);
                            self.stats.bisected -= 1;
                            from = 0;
                        }
                        Err((e, at, line)) => return Err(describe_read_error(&e, at, line, false)),
                    }
                }
            }
            Opened::Stream {
                mut reader,
                consumed,
                compression,
                ..
            } => {
                let compressed = compression != source::Compression::None;
                self.scan_stream(idx, &mut reader, &mut skew, Some(&consumed))
                    .map(|_| ())
                    .map_err(|(e, at, line)| describe_read_error(&e, at, line, compressed))
            }
        }
    }

    /// Chooses where to start reading a plain file: `Ok(offset)`, or
    /// `Err(reason)` to read it whole.
    fn plan(
        &mut self,
        file: &mut std::fs::File,
        size: u64,
        skew: &mut Skew,
    ) -> io::Result<Result<u64, &'static str>> {
        let Some(w) = self.window.clone() else {
            return Ok(Ok(0));
        };
        let mut buf = vec![0u8; PROBE];
        // One probe every 2 MiB, 8 to 128 of them.
        let k = (size / (2 << 20)).clamp(8, 128);
        let mut probes: Vec<Probe> = Vec::new();
        for j in 0..=k {
            let at = if j == k {
                size.saturating_sub(PROBE as u64)
            } else {
                size * j / k
            };
            if let Some(p) = self.probe(file, at, &mut buf, skew)? {
                // Probes near the end can land on lines already probed.
                if probes.last().is_none_or(|q| p.pos > q.pos) {
                    probes.push(p);
                }
            }
        }
        if probes.is_empty() {
            return Ok(Err("no syslog timestamps found"));
        }
        if skew.samples.is_empty() {
            self.calibrate(file, size, skew)?;
        }
        let sk = skew.median();
        let margin = skew.margin();
        let corrected = |p: &Probe| p.naive - sk;
        if probes
            .windows(2)
            .any(|pair| corrected(&pair[1]) < corrected(&pair[0]) - margin)
        {
            return Ok(Err(DISORDER));
        }
        self.order.probes = probes.clone();
        self.order.premise = Some((sk, margin));
        let target = w.from.saturating_sub(margin).saturating_add(sk);
        if probes[0].naive >= target {
            return Ok(Ok(0));
        }
        let k = probes.iter().rposition(|p| p.naive < target).unwrap_or(0);
        let mut lo = probes[k].pos;
        let mut hi = probes.get(k + 1).map_or(size, |p| p.pos);
        while hi - lo > PROBE as u64 {
            let mid = lo + (hi - lo) / 2;
            match self.probe(file, mid, &mut buf, skew)? {
                Some(p) if p.pos < hi && p.naive < target => lo = p.pos,
                _ => hi = mid,
            }
        }
        Ok(Ok(lo))
    }

    /// The first line with a prefix time that starts at or after `at`
    /// (after the next newline, unless `at` is 0); takes a skew sample from
    /// a masqlog line nearby.
    fn probe(
        &mut self,
        file: &mut std::fs::File,
        at: u64,
        buf: &mut [u8],
        skew: &mut Skew,
    ) -> io::Result<Option<Probe>> {
        file.seek(SeekFrom::Start(at))?;
        let mut n = 0;
        while n < buf.len() {
            match file.read(&mut buf[n..]) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        let eof = n < buf.len();
        let data = &buf[..n];
        let mut i = if at == 0 {
            0
        } else {
            match memchr(b'\n', data) {
                Some(k) => k + 1,
                None => return Ok(None),
            }
        };
        if skew.samples.len() < CALIBRATE
            && let Some(m) = self.marker.find(&data[i..])
        {
            let m = i + m;
            let ls = memrchr(b'\n', &data[i..m]).map_or(i, |k| i + k + 1);
            if let Some(le) = memchr(b'\n', &data[m..]).map(|k| m + k) {
                self.sample(&data[ls..le], skew);
            }
        }
        while i < data.len() {
            let le = match memchr(b'\n', &data[i..]) {
                Some(k) => i + k,
                None if eof => data.len(),
                None => return Ok(None),
            };
            if let Some(t) = prefix::time_of(&data[i..le], self.anchor) {
                return Ok(Some(Probe {
                    pos: at + i as u64,
                    naive: t,
                }));
            }
            i = le + 1;
        }
        Ok(None)
    }

    /// Looks for masqlog lines to measure the skew by when the probes met
    /// none (a log where they are rare): reads up to [`CALIBRATE_READ`]
    /// from the middle of the file on, then from its start.
    fn calibrate(
        &mut self,
        file: &mut std::fs::File,
        size: u64,
        skew: &mut Skew,
    ) -> io::Result<()> {
        let mid = size / 2;
        let mut buf = vec![0u8; CHUNK];
        for (from, to) in [(mid, size), (0, mid)] {
            let to = to.min(from + CALIBRATE_READ);
            let mut at = from;
            while at < to && skew.samples.len() < CALIBRATE {
                file.seek(SeekFrom::Start(at))?;
                let want = ((to - at) as usize).min(buf.len());
                let mut n = 0;
                while n < want {
                    match file.read(&mut buf[n..want]) {
                        Ok(0) => break,
                        Ok(k) => n += k,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => return Err(e),
                    }
                }
                if n == 0 {
                    break;
                }
                let data = &buf[..n];
                let mut i = 0;
                while skew.samples.len() < CALIBRATE {
                    let Some(m) = self.marker.find(&data[i..]) else {
                        break;
                    };
                    let m = i + m;
                    let ls = memrchr(b'\n', &data[..m]).map_or(0, |k| k + 1);
                    let Some(le) = memchr(b'\n', &data[m..]).map(|k| m + k) else {
                        break;
                    };
                    // A line cut at the start of the buffer has no prefix to
                    // read; `sample` ignores it.
                    self.sample(&data[ls..le], skew);
                    i = le + 1;
                }
                if at + n as u64 >= to {
                    break;
                }
                // Overlap a little, so that a line cut at the end is read
                // whole next time.
                at += (n as u64).saturating_sub(4096).max(1);
            }
            if !skew.samples.is_empty() {
                break;
            }
        }
        Ok(())
    }

    /// A skew sample from one line, if it is a masqlog line with a prefix.
    fn sample(&mut self, line: &[u8], skew: &mut Skew) {
        let Some(naive) = prefix::time_of(line, self.anchor) else {
            return;
        };
        let text = String::from_utf8_lossy(line);
        if let Ok(ReadLine { parsed: p, .. }) = parse_candidate(&text)
            && let Some(t) = event_time(&p.record)
        {
            self.add_skew(skew, naive - t.div_euclid(1_000_000));
        }
    }

    /// Reads one input from its current position to its end (or the early
    /// stop). Errors come with the offset and line index they happened at.
    fn scan_stream(
        &mut self,
        idx: usize,
        r: &mut dyn Read,
        skew: &mut Skew,
        consumed: Option<&std::rc::Rc<std::cell::Cell<u64>>>,
    ) -> Result<Pass, (io::Error, u64, u64)> {
        let name = self.sources[idx].spec.name();
        let start = self.sources[idx].start_offset;
        let mut buf: Vec<u8> = vec![0; CHUNK];
        let mut filled = 0;
        let mut offset = start; // of buf[0]
        let mut lines = 0u64; // lines before buf[0]
        let mut eof = false;
        let read_before = self.stats.bytes_read;
        while !eof || filled > 0 {
            // Fill the buffer.
            while !eof && filled < buf.len() {
                match r.read(&mut buf[filled..]) {
                    Ok(0) => eof = true,
                    Ok(k) => {
                        filled += k;
                        if consumed.is_none() {
                            self.stats.bytes_read += k as u64;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        if let Some(c) = consumed {
                            self.stats.bytes_read = read_before + c.get();
                        }
                        // Use the complete lines read so far.
                        let cut = memrchr(b'\n', &buf[..filled]).map_or(0, |k| k + 1);
                        let n = self.process(idx, &buf[..cut], offset, lines, skew);
                        return Err((e, offset + cut as u64, lines + n));
                    }
                }
            }
            if let Some(c) = consumed {
                self.stats.bytes_read = read_before + c.get();
            }
            let cut = if eof {
                filled
            } else {
                match memrchr(b'\n', &buf[..filled]) {
                    Some(k) => k + 1,
                    None if buf.len() < MAX_LINE => {
                        let l = buf.len();
                        buf.resize(l * 2, 0);
                        continue;
                    }
                    None => filled,
                }
            };
            let n = self.process(idx, &buf[..cut], offset, lines, skew);
            self.check_order(&buf[..cut], skew);
            if self.order.disordered && !self.order.full {
                if start > 0 {
                    return Ok(Pass::Restart);
                }
                self.order.full = true;
                self.note_disorder(idx);
            }
            // The time of the chunk's last line: how far the logs were
            // read, and the early stop once it is past the window (and
            // past every probe still ahead).
            let last = {
                let data = &buf[..cut];
                let end = if data.last() == Some(&b'\n') {
                    data.len() - 1
                } else {
                    data.len()
                };
                let ls = memrchr(b'\n', &data[..end]).map_or(0, |k| k + 1);
                prefix::time_of(&data[ls..end], self.anchor).map(|naive| naive - skew.median())
            };
            if let Some(t) = last {
                self.stats.seen_until = Some(self.stats.seen_until.map_or(t, |s| s.max(t)));
            }
            let bound = self.stop_bound().saturating_add(skew.margin());
            let stop = self.window.is_some()
                && !self.order.full
                && last.is_some_and(|t| t > bound)
                && !self.probe_ahead_before(offset + cut as u64, bound, skew.median());
            lines += n;
            offset += cut as u64;
            buf.copy_within(cut..filled, 0);
            filled -= cut;
            self.progress
                .update(&name, self.stats.bytes_read, self.stats.bytes_total);
            if stop {
                break;
            }
        }
        Ok(Pass::Done)
    }

    /// Examines the complete lines in `data`; returns how many newlines it
    /// holds.
    fn process(
        &mut self,
        idx: usize,
        data: &[u8],
        offset: u64,
        line0: u64,
        skew: &mut Skew,
    ) -> u64 {
        if skew.samples.len() < CALIBRATE
            && let Some(m) = self.marker.find(data)
        {
            let ls = memrchr(b'\n', &data[..m]).map_or(0, |k| k + 1);
            let le = memchr(b'\n', &data[m..]).map_or(data.len(), |k| m + k);
            self.sample(&data[ls..le], skew);
        }
        // Gap records hold no endpoint the finders below look for.
        let mut gaps = Vec::new();
        let mut after = 0;
        for m in self.gap_marker.find_iter(data) {
            if m < after {
                continue;
            }
            let ls = memrchr(b'\n', &data[..m]).map_or(0, |k| k + 1);
            let le = memchr(b'\n', &data[m..]).map_or(data.len(), |k| m + k);
            after = le;
            let text = String::from_utf8_lossy(&data[ls..le]);
            if let Some(g) = parse_gap(&text) {
                gaps.push((g, text.into_owned()));
            }
        }
        for (g, text) in gaps {
            self.gap(g, text);
        }
        let mut hits = std::mem::take(&mut self.hits);
        hits.clear();
        for f in &self.targets.finders {
            hits.extend(f.find_iter(data));
        }
        if self.targets.finders.len() > 1 {
            hits.sort_unstable();
        }
        let mut counted_to = 0;
        let mut line = line0;
        let mut next = 0;
        for &h in &hits {
            if h < next {
                continue;
            }
            let ls = memrchr(b'\n', &data[next..h]).map_or(next, |k| next + k + 1);
            let le = memchr(b'\n', &data[h..]).map_or(data.len(), |k| h + k);
            line += memchr_iter(b'\n', &data[counted_to..ls]).count() as u64;
            counted_to = ls;
            self.examine(
                idx,
                &data[ls..le],
                offset + ls as u64,
                line - line0 + line0,
                skew,
            );
            next = le + 1;
        }
        self.hits = hits;
        line - line0 + memchr_iter(b'\n', &data[counted_to..]).count() as u64
    }

    fn examine(&mut self, idx: usize, line: &[u8], offset: u64, rel_line: u64, skew: &mut Skew) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if self.targets.also.iter().any(|f| f.find(line).is_none()) {
            return;
        }
        if self.marker.find(line).is_none() {
            return;
        }
        if let Some(port) = quick_masq_port(line)
            && !self.targets.ports.contains_key(&port)
        {
            return;
        }
        self.stats.lines_parsed += 1;
        let text = String::from_utf8_lossy(line).into_owned();
        let ReadLine { parsed, event } = match parse_candidate(&text) {
            Ok(x) => x,
            Err(ParseError::NotFound { .. }) => return,
            Err(ParseError::NotAtStart { .. }) => {
                self.stats.not_records += 1;
                return;
            }
            // A sealing writer's chain-start and chain-stop records hold
            // no flow: `masqlog verify` reads them.
            Err(_) if parse_chain(&text).is_some() => return,
            Err(reason) => {
                self.malformed.push(Malformed {
                    source: idx,
                    offset,
                    rel_line,
                    reason,
                });
                return;
            }
        };
        let naive = prefix::time_of(line, self.anchor);
        if let (Some(n), Some(t)) = (naive, event_time(&parsed.record)) {
            self.add_skew(skew, n - t.div_euclid(1_000_000));
        }
        // The record clock: start and end lines are logged when their
        // event happens, so their times grow along the file too.
        if self.window.is_some()
            && !self.order.full
            && matches!(parsed.record.event, Event::Start | Event::End)
            && let Some(t) = event_time(&parsed.record)
        {
            Order::see(
                &mut self.order.rec_high,
                &mut self.order.disordered,
                t.div_euclid(1_000_000),
                skew.margin(),
            );
        }
        let Some(port) = parsed.record.masq.port else {
            return;
        };
        if !self
            .targets
            .endpoints
            .contains_key(&(canon(parsed.record.masq.ip), port))
        {
            return;
        }
        let when =
            event_time(&parsed.record).or_else(|| naive.map(|n| (n - skew.median()) * 1_000_000));
        if let Some(w) = &self.window {
            let key = (parsed.record.proto.number(), parsed.record.id);
            let proto_ok = w.proto.is_none_or(|p| p == key.0);
            match parsed.record.event {
                Event::End => {
                    self.pending.remove(&key);
                }
                _ => {
                    if let Some(s) = parsed.record.start {
                        let s = s.secs;
                        if proto_ok && s >= w.from && s <= w.until {
                            self.pending.insert(key, s.saturating_add(w.max_age));
                        }
                    }
                }
            }
        }
        let seq = self.candidates.len();
        self.candidates.push(Candidate {
            source: idx,
            offset,
            rel_line,
            text,
            parsed,
            event,
            when,
            seq,
        });
    }

    /// A gap record: a note when it falls into the searched period (any
    /// gap when the search has no period).
    /// Keeps a gap record of the searched period (its note is written once
    /// authentication has said whether it may be believed).
    fn gap(&mut self, gap: Gap, text: String) {
        if let Some(w) = &self.window
            && (gap.to.secs < w.from || gap.from.secs > w.until)
        {
            return;
        }
        if !self.gaps.iter().any(|(g, _)| *g == gap) {
            self.gaps.push((gap, text));
        }
    }

    /// Fills in the line numbers of inputs that were read from the middle
    /// (bisection) and hold evidence: counts the newlines before.
    pub fn resolve_line_numbers(&mut self) {
        let mut needed = vec![false; self.sources.len()];
        for c in &self.candidates {
            needed[c.source] = true;
        }
        for m in &self.malformed {
            needed[m.source] = true;
        }
        for (i, s) in self.sources.iter_mut().enumerate() {
            if !needed[i] || s.base_line.is_some() {
                continue;
            }
            let Spec::File(p) = &s.spec else { continue };
            if let Ok(n) = count_newlines(p, s.start_offset) {
                s.base_line = Some(n + 1);
            }
        }
    }
}

/// The newlines in the first `upto` bytes of a file.
fn count_newlines(path: &std::path::Path, upto: u64) -> io::Result<u64> {
    let f = std::fs::File::open(path)?;
    let mut r = f.take(upto);
    let mut buf = vec![0u8; CHUNK];
    let mut n = 0u64;
    loop {
        let k = r.read(&mut buf)?;
        if k == 0 {
            return Ok(n);
        }
        n += memchr_iter(b'\n', &buf[..k]).count() as u64;
    }
}

fn describe_read_error(e: &io::Error, at: u64, line: u64, compressed: bool) -> String {
    let what = if compressed {
        "truncated or corrupt compressed data"
    } else {
        "read error"
    };
    format!(
        "{what} after {at} bytes of text (line {}): {e}; the lines before were used",
        line + 1
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quick_masq_port_reads_every_format() {
        let cases: &[(&[u8], Option<u16>)] = &[
            (
                b"masqlog/1 ev=start client=10.0.0.1:1 masq=192.0.2.1:53500 remote=1.2.3.4:5",
                Some(53500),
            ),
            (
                b"x [masqlog@32473 masqlog=\"1\" masq=\"[2001:db8::1\\]:443\" remote=\"x\"]",
                Some(443),
            ),
            (b"masqlog/1 masq=[2001:db8::1]:80 x", Some(80)),
            (b"masqlog/1 masq=2001:db8::1 x", None),
            (b"masqlog/1 masq=192.0.2.1 x", None),
            (
                b"{\"masqlog\":1,\"masq\":{\"ip\":\"192.0.2.1\",\"port\":53500},\"remote\":{}}",
                Some(53500),
            ),
            (b"{\"masqlog\":1,\"masq\":{\"ip\":\"192.0.2.1\"}}", None),
            (b"masqlog/1 no masq here", None),
        ];
        for (line, want) in cases {
            assert_eq!(
                quick_masq_port(line),
                *want,
                "{}",
                String::from_utf8_lossy(line)
            );
        }
    }

    #[test]
    fn later_event_kinds_are_read_and_named() {
        let base = "masqlog/1 ev=user nat=snat proto=tcp id=7 client=10.0.0.1:1 \
                    masq=192.0.2.1:2 remote=203.0.113.1:3 start=2026-11-21T12:00:00Z who=alice";
        let ReadLine {
            parsed: p,
            event: ev,
            ..
        } = parse_candidate(base).unwrap();
        assert_eq!(ev, LineEvent::Other("user".into()));
        assert_eq!(p.record.id, Some(7));
        assert_eq!(p.extra, vec![("who".to_string(), b"alice".to_vec())]);
        let json = r#"{"masqlog":1,"ev":"user","nat":"snat","proto":"tcp","client":{"ip":"10.0.0.1","port":1},"masq":{"ip":"192.0.2.1","port":2},"remote":{"ip":"203.0.113.1","port":3}}"#;
        assert_eq!(parse_candidate(json).unwrap().event.name(), "user");
        let sd = "[masqlog@32473 masqlog=\"1\" ev=\"user\" nat=\"snat\" proto=\"tcp\" \
                  client=\"10.0.0.1:1\" masq=\"192.0.2.1:2\" remote=\"203.0.113.1:3\"]";
        assert_eq!(parse_candidate(sd).unwrap().event.name(), "user");
        // Other errors stay errors.
        assert!(parse_candidate("masqlog/1 ev=user nat=snat").is_err());
        assert!(parse_candidate("masqlog/1 ev=\"a b\" nat=snat").is_err());
    }

    #[test]
    fn lines_without_a_remote_are_read_with_the_remote_unknown() {
        let hash = "remote_hash=00112233445566778899aabbccddeeff";
        for l in [
            format!(
                "Nov 21 12:37:42 gw1 masqlog[1]: masqlog/1 ev=start nat=snat proto=tcp id=1 \
                 client=10.0.0.1:1 masq=192.0.2.1:2 start=2026-11-21T12:00:00Z {hash}"
            ),
"Nov 21 12:37:42 gw1 masqlog[1]: {\"masqlog\":1,\"ev\":\"start\",\"nat\":\"snat\",\"proto\":\"tcp\",\
             \"client\":{\"ip\":\"10.0.0.1\",\"port\":1},\"masq\":{\"ip\":\"192.0.2.1\",\"port\":2},\
             \"remote_hash\":\"00112233445566778899aabbccddeeff\"}"
                .to_string(),
            "<30>1 2026-11-21T12:00:00Z gw1 masqlog 1 start [masqlog@32473 masqlog=\"1\" \
             ev=\"user\" nat=\"snat\" proto=\"tcp\" client=\"10.0.0.1:1\" masq=\"192.0.2.1:2\"]"
                .to_string(),
        ] {
            let r = parse_candidate(&l).unwrap_or_else(|e| panic!("{e}: {l}"));
            assert_eq!(r.parsed.record.remote.endpoint(), None, "{l}");
            assert_eq!(r.parsed.record.masq.port, Some(2), "{l}");
        }
        // A missing field other than remote is still an error, named.
        assert_eq!(
            parse_candidate("masqlog/1 ev=start nat=snat proto=tcp client=10.0.0.1:1").unwrap_err(),
            ParseError::MissingField("masq")
        );
    }
}
