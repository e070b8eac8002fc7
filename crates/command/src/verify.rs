//! `masqlog verify`: checks sealed logs against verification keys. For
//! each writer (`HOST/INSTANCE`): which records verify, which lines are
//! forged or altered, the sequence numbers missing inside each run, the
//! links between records and between runs (a chain-start record names what
//! the run before it wrote), lines out of order, duplicates, and where the
//! log ends. Lines of other programs are passed over; masqlog records
//! without a seal are counted. An evidence store is read segment by
//! segment, oldest first, each line named by its segment file and line.
//! Rows of a database are lines without an order of their own (each named
//! by table, router and sequence number), and the database's ledger of
//! committed sequence ranges tells a row that was deleted from one that
//! never arrived.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use masqlog_core::format::chain::{ChainRecord, parse_chain};
use masqlog_core::format::gap::parse_gap;
use masqlog_core::format::parse_line;
use masqlog_core::format::sealing::sealed_bytes;
use masqlog_core::seal::{KeyRing, MacBytes, SealFields, VerifyKey, WriterId, WriterKey};
use masqlog_core::store;

/// Where a line is. Kept for every verified record, so it is small: the
/// input's name is shared by all its lines.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Loc {
    /// Line `line` (from 1) of the input named `input`.
    Line { input: Arc<str>, line: u64 },
    /// A database row with a sequence number: `at` names its table and
    /// router (`postgresql TABLE router ROUTER`).
    Row { at: Arc<str>, seq: u64 },
    /// A row named in full (one without a sequence number column).
    Named(Arc<str>),
}

impl Loc {
    /// Line `line` of input `input`.
    pub fn line(input: &Arc<str>, line: u64) -> Loc {
        Loc::Line {
            input: Arc::clone(input),
            line,
        }
    }
}

impl std::fmt::Display for Loc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Loc::Line { input, line } => write!(f, "{input}:{line}"),
            Loc::Row { at, seq } => write!(f, "{at} seq {seq}"),
            Loc::Named(name) => f.write_str(name),
        }
    }
}

/// Sequence ranges a database says it committed, by writer and run (its
/// `masqlog.seal_ledger`): each `(first, last)`, inclusive.
pub type Committed = BTreeMap<(WriterId, u64), Vec<(u64, u64)>>;

/// Where retention may have cut a database's rows: its oldest daily
/// partition, and the sealed records of that partition's first minutes
/// (writer, run, seq). Records missing right next to one of them may have
/// been in the day before, dropped whole.
#[derive(Clone, Debug, Default)]
pub struct Edge {
    pub partition: String,
    pub records: HashSet<(WriterId, u64, u64)>,
}

/// At most this many locations are kept of each kind of finding (all are
/// counted).
pub const MAX_LISTED: usize = 100;

/// A verified record's place in its chain.
#[derive(Clone, Debug)]
struct Rec {
    mac: MacBytes,
    prev: MacBytes,
    loc: Loc,
    /// Boxed: few records are chain records.
    chain: Option<Box<ChainRecord>>,
}

/// What was seen of one run of one writer.
#[derive(Debug, Default)]
struct RunLog {
    recs: BTreeMap<u64, Rec>,
    /// The highest sequence number seen so far in input order.
    high: u64,
    reordered: u64,
    first_reordered: Option<Loc>,
    duplicates: u64,
    /// Second records that verify for a place already taken.
    conflicts: Vec<(u64, Loc)>,
}

/// A list of locations, counted in full and kept up to [`MAX_LISTED`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Listed {
    pub count: u64,
    pub locs: Vec<(Loc, String)>,
}

impl Listed {
    fn add(&mut self, loc: Loc, why: String) {
        self.count += 1;
        if self.locs.len() < MAX_LISTED {
            self.locs.push((loc, why));
        }
    }
}

/// The logs `path` stands for when it is an evidence store (`store_dir`):
/// its segments, oldest first (closed ones as their `.zst`, the live one
/// as its `.log`), so that a line is named by its segment file and line
/// number, as `lookup --store` names evidence. `None`: not a store.
pub fn store_segments(path: &Path) -> Result<Option<Vec<PathBuf>>, String> {
    if !path.is_dir() || !store::is_store(path) {
        return Ok(None);
    }
    let segs = store::list(path).map_err(|e| e.to_string())?;
    Ok(Some(segs.iter().map(|s| s.data(path)).collect()))
}

/// Feeds every line of `reader` (named `name` in findings) to `verifier`.
pub fn read_lines(verifier: &mut Verifier<'_>, name: &str, reader: impl Read) -> io::Result<()> {
    let mut r = BufReader::with_capacity(1 << 16, reader);
    let mut buf = Vec::with_capacity(1024);
    let mut n = 0u64;
    let input: Arc<str> = Arc::from(name);
    loop {
        buf.clear();
        if r.read_until(b'\n', &mut buf)? == 0 {
            return Ok(());
        }
        n += 1;
        while matches!(buf.last(), Some(b'\n' | b'\r')) {
            buf.pop();
        }
        verifier.line(Loc::line(&input, n), &buf);
    }
}

/// Reads a verification key file (one short line; at most 4 KiB are read).
pub fn read_key(path: &std::path::Path) -> Result<VerifyKey, String> {
    use std::io::Read;
    let mut text = String::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(4096).read_to_string(&mut text))
        .map_err(|e| format!("cannot read it: {e}"))?;
    VerifyKey::parse(&text).map_err(|e| e.to_string())
}

/// Why a line's seal is not accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rejected {
    /// No seal at all.
    Unsealed,
    /// A seal whose fields cannot be read.
    Damaged,
    /// Sealed by a host no key was given for.
    NoKey(String),
    /// The epoch is beyond what a key reaches.
    BadEpoch { epoch: u64, why: String },
    /// The MAC does not verify: altered, or forged.
    BadMac(SealFields),
}

impl std::fmt::Display for Rejected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Rejected::Unsealed => f.write_str("not sealed"),
            Rejected::Damaged => f.write_str("its sealing fields are damaged"),
            Rejected::NoKey(h) => write!(f, "sealed by host {h}, for which no key was given"),
            Rejected::BadEpoch { epoch, why } => write!(f, "epoch {epoch}: {why}"),
            Rejected::BadMac(_) => f.write_str("its MAC does not verify (altered, or forged)"),
        }
    }
}

/// A seal that verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    pub fields: SealFields,
    pub mac: MacBytes,
}

/// Checks the seals of single lines against the keys, keeping the epoch
/// keys it derived (at most 4096 at a time).
pub struct Checker<'k> {
    rings: HashMap<&'k str, KeyRing<'k>>,
    cache: HashMap<(String, String, u64), WriterKey>,
}

impl<'k> Checker<'k> {
    pub fn new(keys: &'k [VerifyKey]) -> Checker<'k> {
        Checker {
            rings: keys.iter().map(|k| (k.host.as_str(), k.ring())).collect(),
            cache: HashMap::new(),
        }
    }

    /// The seal of `line`, if it verifies.
    pub fn check(&mut self, line: &[u8]) -> Result<Verified, Rejected> {
        let sb = sealed_bytes(line).ok_or(Rejected::Unsealed)?;
        let fields = sb.fields().ok_or(Rejected::Damaged)?;
        let w = &fields.writer;
        let ring = self
            .rings
            .get_mut(w.host.as_str())
            .ok_or_else(|| Rejected::NoKey(w.host.clone()))?;
        let id = (w.host.clone(), w.instance.clone(), fields.epoch);
        if !self.cache.contains_key(&id) {
            let k = ring
                .writer_key(&w.instance, fields.epoch)
                .map_err(|e| Rejected::BadEpoch {
                    epoch: fields.epoch,
                    why: e.to_string(),
                })?;
            if self.cache.len() >= 4096 {
                self.cache.clear();
            }
            self.cache.insert(id.clone(), k);
        }
        if !self.cache[&id].verify(sb.body, &sb.mac) {
            return Err(Rejected::BadMac(fields));
        }
        Ok(Verified {
            fields,
            mac: sb.mac,
        })
    }
}

/// Reads lines and checks them against the keys.
pub struct Verifier<'k> {
    checker: Checker<'k>,
    writers: BTreeMap<WriterId, BTreeMap<u64, RunLog>>,
    pub lines: u64,
    forged: Listed,
    unsealed: Listed,
    no_key: BTreeMap<String, u64>,
    /// Whether the input order means anything (not for database rows).
    ordered: bool,
}

/// One finding about a writer's chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Problem {
    /// Sequence numbers `from..=to` of run `run` are not in the logs,
    /// between records that are.
    Missing { run: u64, from: u64, to: u64 },
    /// Sequence numbers `from..=to` of run `run` are not in the database's
    /// table as rows that verify, but its ledger says they were committed
    /// there: the rows were deleted or altered (or their partition
    /// dropped).
    Deleted { run: u64, from: u64, to: u64 },
    /// The record `seq` does not name the MAC of the record before it.
    BrokenLink { run: u64, seq: u64, loc: Loc },
    /// Two different records that both verify claim the same place (only
    /// someone with the key can make that).
    Conflict { run: u64, seq: u64, loc: Loc },
    /// The next run's chain-start says this run wrote up to `expected`,
    /// the logs end it at `last`: the tail is missing.
    MissingTail { run: u64, last: u64, expected: u64 },
    /// The next run's chain-start names a different last record.
    WrongPredecessor { run: u64, seq: u64, loc: Loc },
}

/// A note that is no failure by itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Note {
    /// The logs begin in the middle of run `run`.
    BeginsAt { run: u64, seq: u64, loc: Loc },
    /// The logs end in run `run` without its chain-stop record: the writer
    /// was still running, or was stopped uncleanly, or the tail was cut.
    EndsAt { run: u64, seq: u64, loc: Loc },
    /// Run `run` did not stop cleanly; the next run knew its checkpoint.
    Unclean { run: u64, checkpoint: u64 },
    /// Lines of run `run` appear after a later one.
    Reordered { run: u64, count: u64, first: Loc },
    /// The same record more than once (a resend, overlapping files).
    Duplicates { run: u64, count: u64 },
    /// Committed to the database and gone, right next to the first
    /// minutes of its oldest partition: most likely rows of the day
    /// before, which retention dropped.
    Dropped {
        run: u64,
        from: u64,
        to: u64,
        partition: String,
    },
}

/// The result for one writer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WriterReport {
    pub writer: WriterId,
    /// `(run, first seq, last seq, records)` of each run seen.
    pub runs: Vec<(u64, u64, u64, u64)>,
    pub problems: Vec<Problem>,
    pub notes: Vec<Note>,
}

/// Everything `verify` found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    pub lines: u64,
    pub writers: Vec<WriterReport>,
    /// Sealed lines whose MAC does not verify (or whose seal is broken).
    pub forged: Listed,
    /// masqlog records without a seal.
    pub unsealed: Listed,
    /// Sealed records of hosts without a key, by host.
    pub no_key: BTreeMap<String, u64>,
}

impl Report {
    /// Whether every chain is intact: no forged or altered line, nothing
    /// missing, and at least one verified record.
    pub fn intact(&self) -> bool {
        self.forged.count == 0
            && self.writers.iter().all(|w| w.problems.is_empty())
            && !self.writers.is_empty()
    }

    /// Splits each run of missing records by what the database committed:
    /// the part its ledger holds was there and is gone (`Deleted`), the
    /// rest never arrived (`Missing`). A committed part right next to a
    /// record of the first minutes of the oldest partition (`edge`) is
    /// noted as most likely dropped by retention, not failed.
    pub fn apply_ledger(&mut self, committed: &Committed, edge: Option<&Edge>) {
        for w in &mut self.writers {
            let at_edge = |run: u64, seq: u64| {
                edge.is_some_and(|e| e.records.contains(&(w.writer.clone(), run, seq)))
            };
            let mut notes = Vec::new();
            let mut problems = Vec::with_capacity(w.problems.len());
            for p in w.problems.drain(..) {
                let Problem::Missing { run, from, to } = p else {
                    problems.push(p);
                    continue;
                };
                let ranges = committed
                    .get(&(w.writer.clone(), run))
                    .map_or(&[][..], Vec::as_slice);
                let mut at = from;
                // The committed ranges inside the missing one, in order.
                let mut cuts: Vec<(u64, u64)> = ranges
                    .iter()
                    .filter(|&&(a, b)| a <= to && b >= from)
                    .map(|&(a, b)| (a.max(from), b.min(to)))
                    .collect();
                cuts.sort_unstable();
                for (a, b) in cuts {
                    if b < at {
                        continue;
                    }
                    let a = a.max(at);
                    if a > at {
                        problems.push(Problem::Missing {
                            run,
                            from: at,
                            to: a - 1,
                        });
                    }
                    match edge {
                        Some(e) if at_edge(run, a.wrapping_sub(1)) || at_edge(run, b + 1) => notes
                            .push(Note::Dropped {
                                run,
                                from: a,
                                to: b,
                                partition: e.partition.clone(),
                            }),
                        _ => problems.push(Problem::Deleted {
                            run,
                            from: a,
                            to: b,
                        }),
                    }
                    at = b + 1;
                }
                if at <= to {
                    problems.push(Problem::Missing { run, from: at, to });
                }
            }
            w.problems = problems;
            w.notes.extend(notes);
        }
    }
}

impl<'k> Verifier<'k> {
    pub fn new(keys: &'k [VerifyKey]) -> Verifier<'k> {
        Verifier {
            checker: Checker::new(keys),
            writers: BTreeMap::new(),
            lines: 0,
            forged: Listed::default(),
            unsealed: Listed::default(),
            no_key: BTreeMap::new(),
            ordered: true,
        }
    }

    /// Lines whose input order means nothing (database rows): no note of
    /// records that appear after a later one.
    pub fn unordered(mut self) -> Self {
        self.ordered = false;
        self
    }

    /// Takes one line (without its newline).
    pub fn line(&mut self, loc: Loc, line: &[u8]) {
        self.lines += 1;
        let Verified { fields, mac } = match self.checker.check(line) {
            Ok(v) => v,
            Err(Rejected::Unsealed) => {
                if is_masqlog_record(line) {
                    self.unsealed
                        .add(loc, "a masqlog record without a seal".into());
                }
                return;
            }
            Err(Rejected::NoKey(host)) => {
                *self.no_key.entry(host).or_default() += 1;
                return;
            }
            Err(Rejected::BadMac(f)) => {
                self.forged.add(
                    loc,
                    format!(
                        "{} run {} seq {}: the MAC does not verify (altered, or forged)",
                        f.writer, f.run, f.seq
                    ),
                );
                return;
            }
            Err(why) => {
                self.forged.add(loc, why.to_string());
                return;
            }
        };
        let text = String::from_utf8_lossy(line);
        let chain = parse_chain(&text).map(Box::new);
        let run = self
            .writers
            .entry(fields.writer)
            .or_default()
            .entry(fields.run)
            .or_default();
        match run.recs.get(&fields.seq) {
            Some(r) if r.mac == mac => run.duplicates += 1,
            Some(_) => run.conflicts.push((fields.seq, loc)),
            None => {
                if self.ordered && fields.seq < run.high {
                    run.reordered += 1;
                    run.first_reordered.get_or_insert_with(|| loc.clone());
                }
                run.high = run.high.max(fields.seq);
                run.recs.insert(
                    fields.seq,
                    Rec {
                        mac,
                        prev: fields.prev,
                        loc,
                        chain,
                    },
                );
            }
        }
    }

    /// The findings.
    pub fn finish(self) -> Report {
        let mut writers = Vec::new();
        for (writer, runs) in self.writers {
            writers.push(judge(writer, runs));
        }
        Report {
            lines: self.lines,
            writers,
            forged: self.forged,
            unsealed: self.unsealed,
            no_key: self.no_key,
        }
    }
}

fn judge(writer: WriterId, mut runs: BTreeMap<u64, RunLog>) -> WriterReport {
    let mut problems = Vec::new();
    let mut notes = Vec::new();
    let mut summary = Vec::new();
    // Each run's own records.
    for (&run, log) in runs.iter_mut() {
        for (seq, loc) in log.conflicts.drain(..) {
            problems.push(Problem::Conflict { run, seq, loc });
        }
        let (Some((&first, first_rec)), Some((&last, _))) =
            (log.recs.first_key_value(), log.recs.last_key_value())
        else {
            continue;
        };
        summary.push((run, first, last, log.recs.len() as u64));
        if first > 1 {
            notes.push(Note::BeginsAt {
                run,
                seq: first,
                loc: first_rec.loc.clone(),
            });
        }
        let mut expect = first;
        let mut prev_mac: Option<MacBytes> = None;
        for (&seq, rec) in &log.recs {
            if seq > expect {
                problems.push(Problem::Missing {
                    run,
                    from: expect,
                    to: seq - 1,
                });
                prev_mac = None;
            }
            if let Some(m) = prev_mac
                && rec.prev != m
            {
                problems.push(Problem::BrokenLink {
                    run,
                    seq,
                    loc: rec.loc.clone(),
                });
            }
            prev_mac = Some(rec.mac);
            expect = seq + 1;
        }
        if log.reordered > 0 {
            notes.push(Note::Reordered {
                run,
                count: log.reordered,
                first: log.first_reordered.clone().expect("set with the count"),
            });
        }
        if log.duplicates > 0 {
            notes.push(Note::Duplicates {
                run,
                count: log.duplicates,
            });
        }
    }
    // Between runs: what each chain-start says of the run before.
    let run_ids: Vec<u64> = runs.keys().copied().collect();
    for &run in &run_ids {
        let start = runs[&run]
            .recs
            .get(&1)
            .and_then(|r| r.chain.as_deref().cloned());
        let Some(ChainRecord::Start {
            previous: Some(prev),
        }) = start
        else {
            continue;
        };
        if !prev.clean {
            notes.push(Note::Unclean {
                run: prev.run,
                checkpoint: prev.seq,
            });
        }
        let Some(before) = runs.get(&prev.run) else {
            continue;
        };
        let last = before.recs.last_key_value().map_or(0, |(&k, _)| k);
        if prev.clean && last < prev.seq {
            problems.push(Problem::MissingTail {
                run: prev.run,
                last,
                expected: prev.seq,
            });
        }
        if let Some(r) = before.recs.get(&prev.seq)
            && r.mac != prev.mac
        {
            problems.push(Problem::WrongPredecessor {
                run: prev.run,
                seq: prev.seq,
                loc: r.loc.clone(),
            });
        }
    }
    // The end of the newest run.
    if let Some((&run, log)) = runs.last_key_value()
        && let Some((&seq, rec)) = log.recs.last_key_value()
        && rec.chain.as_deref() != Some(&ChainRecord::Stop)
    {
        notes.push(Note::EndsAt {
            run,
            seq,
            loc: rec.loc.clone(),
        });
    }
    WriterReport {
        writer,
        runs: summary,
        problems,
        notes,
    }
}

/// Whether `line` is a masqlog record of any kind (flow, gap, chain).
fn is_masqlog_record(line: &[u8]) -> bool {
    let text = String::from_utf8_lossy(line);
    parse_line(&text).is_ok() || parse_gap(&text).is_some() || parse_chain(&text).is_some()
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Problem::Missing { run, from, to } if from == to => {
                write!(f, "run {run}: seq {from} is missing")
            }
            Problem::Missing { run, from, to } => write!(
                f,
                "run {run}: seq {from}-{to} are missing ({} records)",
                to - from + 1
            ),
            Problem::BrokenLink { run, seq, loc } => write!(
                f,
                "run {run}: seq {seq} ({loc}) does not follow the record before it (its prev is another MAC)"
            ),
            Problem::Conflict { run, seq, loc } => write!(
                f,
                "run {run}: seq {seq} twice with different contents, both sealed ({loc}): made with the key"
            ),
            Problem::Deleted { run, from, to } if from == to => write!(
                f,
                "run {run}: seq {from} was committed to this database (masqlog.seal_ledger) and no row of masqlog.flow_log that verifies holds it now: deleted, altered, or its partition dropped"
            ),
            Problem::Deleted { run, from, to } => write!(
                f,
                "run {run}: seq {from}-{to} ({} records) were committed to this database (masqlog.seal_ledger) and no row of masqlog.flow_log that verifies holds them now: deleted, altered, or their partition dropped",
                to - from + 1
            ),
            Problem::MissingTail {
                run,
                last,
                expected,
            } => write!(
                f,
                "run {run}: the logs end it at seq {last}, but the next run says it wrote up to seq {expected}: seq {}-{expected} are missing",
                last + 1
            ),
            Problem::WrongPredecessor { run, seq, loc } => write!(
                f,
                "run {run}: seq {seq} ({loc}) is not the record the next run names as the last of this run"
            ),
        }
    }
}

impl std::fmt::Display for Note {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Note::BeginsAt { run, seq, loc } => write!(
                f,
                "run {run}: the logs begin at seq {seq} ({loc}); earlier records are not in them"
            ),
            Note::EndsAt { run, seq, loc } => write!(
                f,
                "run {run}: the logs end at seq {seq} ({loc}) without a chain-stop record: the writer was still running, stopped uncleanly, or the tail is cut"
            ),
            Note::Unclean { run, checkpoint } => write!(
                f,
                "run {run} did not stop cleanly (ulogd killed or crashed); it was known to have written up to seq {checkpoint}"
            ),
            Note::Reordered { run, count, first } => write!(
                f,
                "run {run}: {count} records appear after a later one (first at {first}); the sequence numbers give the order"
            ),
            Note::Duplicates { run, count } => write!(
                f,
                "run {run}: {count} records appear more than once (same bytes: a resend or overlapping files)"
            ),
            Note::Dropped {
                run,
                from,
                to,
                partition,
            } => {
                let (which, gone) = if from == to {
                    (format!("seq {from} was"), "is")
                } else {
                    (
                        format!("seq {from}-{to} ({} records) were", to - from + 1),
                        "are",
                    )
                };
                write!(
                    f,
                    "run {run}: {which} committed to this database and {gone} gone, next to the first minutes of the oldest partition {partition}: most likely rows of the day before it, dropped by retention (times and sequence numbers cross midnight out of order)"
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use masqlog_core::config::Format;
    use masqlog_core::format::sealing::seal_message;
    use masqlog_core::format::testutil::{header, tcp_start};
    use masqlog_core::format::write_syslog;
    use masqlog_core::seal::Chain;

    fn key() -> VerifyKey {
        VerifyKey::generate("gw1", 1_764_000_000, 900).unwrap()
    }

    /// A chain record, sealed by `c`.
    fn chain_line(c: &mut Chain, format: Format, rec: &ChainRecord) -> Vec<u8> {
        let mut msg = Vec::new();
        let start = masqlog_core::format::chain::write_syslog(format, &header(None), rec, &mut msg);
        seal_message(format, start, c, &mut msg);
        msg
    }

    /// A flow line, sealed by `c`.
    fn flow_line(c: &mut Chain, format: Format) -> Vec<u8> {
        let mut msg = Vec::new();
        let start = write_syslog(format, &header(None), &tcp_start(), &mut msg);
        seal_message(format, start, c, &mut msg);
        msg
    }

    /// `n` sealed flow lines of run `run` in `format`, after a chain start.
    fn lines(key: &VerifyKey, format: Format, run: u64, n: usize) -> Vec<Vec<u8>> {
        let mut c = Chain::start(key.initial_state(), "masq1", run).unwrap();
        let start = ChainRecord::Start { previous: None };
        let mut out = vec![chain_line(&mut c, format, &start)];
        out.extend((0..n).map(|_| flow_line(&mut c, format)));
        out
    }

    fn verify(keys: &[VerifyKey], lines: &[Vec<u8>]) -> Report {
        let mut v = Verifier::new(keys);
        let input: Arc<str> = Arc::from("log");
        for (i, l) in lines.iter().enumerate() {
            v.line(Loc::line(&input, i as u64 + 1), l);
        }
        v.finish()
    }

    const FORMATS: [Format; 3] = [Format::Text, Format::Json, Format::Rfc5424];

    #[test]
    fn an_untouched_log_is_intact() {
        for f in FORMATS {
            let k = key();
            let r = verify(std::slice::from_ref(&k), &lines(&k, f, 1, 5));
            assert!(r.intact(), "{f:?}: {r:?}");
            assert_eq!(r.writers[0].runs, vec![(1, 1, 6, 6)]);
            assert!(matches!(
                r.writers[0].notes[..],
                [Note::EndsAt { seq: 6, .. }]
            ));
        }
    }

    #[test]
    fn a_deleted_line_is_a_missing_sequence_number() {
        for f in FORMATS {
            let k = key();
            let mut l = lines(&k, f, 1, 5);
            l.remove(3);
            let r = verify(std::slice::from_ref(&k), &l);
            assert!(!r.intact());
            assert_eq!(
                r.writers[0].problems,
                vec![Problem::Missing {
                    run: 1,
                    from: 4,
                    to: 4
                }]
            );
        }
    }

    #[test]
    fn the_ledger_tells_deleted_rows_from_records_that_never_arrived() {
        let k = key();
        let mut l = lines(&k, Format::Text, 1, 11); // seq 1 ..= 12
        // seq 3-4 and 7-10 are gone.
        l.drain(6..10);
        l.drain(2..4);
        let mut r = verify(std::slice::from_ref(&k), &l);
        let w = r.writers[0].writer.clone();
        // The database committed 1-4 and 8-12 (7 never arrived there), and
        // a range of another run.
        let committed: Committed = [
            ((w.clone(), 1), vec![(8, 12), (1, 4)]),
            ((w.clone(), 2), vec![(1, 100)]),
        ]
        .into_iter()
        .collect();
        r.apply_ledger(&committed, None);
        assert_eq!(
            r.writers[0].problems,
            vec![
                Problem::Deleted {
                    run: 1,
                    from: 3,
                    to: 4
                },
                Problem::Missing {
                    run: 1,
                    from: 7,
                    to: 7
                },
                Problem::Deleted {
                    run: 1,
                    from: 8,
                    to: 10
                },
            ]
        );
        assert!(!r.intact());
        assert!(
            r.writers[0].problems[0]
                .to_string()
                .contains("seq 3-4 (2 records) were committed")
        );
        // Without a ledger entry for the run, all of it stays missing.
        let mut r = verify(std::slice::from_ref(&k), &l);
        r.apply_ledger(&Committed::new(), None);
        assert_eq!(r.writers[0].problems.len(), 2);
        assert!(
            r.writers[0]
                .problems
                .iter()
                .all(|p| matches!(p, Problem::Missing { .. }))
        );
    }

    #[test]
    fn a_committed_gap_at_the_oldest_partitions_start_is_noted_as_retention() {
        let k = key();
        let mut l = lines(&k, Format::Text, 1, 11); // seq 1 ..= 12
        // seq 2 and 4 were in the dropped day; seq 9 was deleted.
        l.remove(8);
        l.remove(3);
        l.remove(1);
        let mut r = verify(std::slice::from_ref(&k), &l);
        let w = r.writers[0].writer.clone();
        let committed: Committed = [((w.clone(), 1), vec![(1, 12)])].into_iter().collect();
        // seq 1, 3 and 5 are rows of the oldest partition's first minutes.
        let edge = Edge {
            partition: "masqlog.flow_log_20261101".into(),
            records: [1, 3, 5].map(|s| (w.clone(), 1, s)).into_iter().collect(),
        };
        r.apply_ledger(&committed, Some(&edge));
        assert_eq!(
            r.writers[0].problems,
            vec![Problem::Deleted {
                run: 1,
                from: 9,
                to: 9
            }]
        );
        let dropped: Vec<String> = r.writers[0]
            .notes
            .iter()
            .filter(|n| matches!(n, Note::Dropped { .. }))
            .map(ToString::to_string)
            .collect();
        assert_eq!(dropped.len(), 2, "{:?}", r.writers[0].notes);
        assert!(dropped[0].starts_with("run 1: seq 2 was committed to this database and is gone, next to the first minutes of the oldest partition masqlog.flow_log_20261101"), "{dropped:?}");
        assert!(!r.intact(), "the deleted seq 9 still fails");
        // Without the deletion, the edge alone leaves the chain intact.
        let mut l = lines(&k, Format::Text, 1, 11);
        l.remove(3);
        l.remove(1);
        let mut r = verify(std::slice::from_ref(&k), &l);
        r.apply_ledger(&committed, Some(&edge));
        assert!(r.intact(), "{r:?}");
        // The same gaps without an edge are failures.
        let mut r = verify(std::slice::from_ref(&k), &l);
        r.apply_ledger(&committed, None);
        assert_eq!(r.writers[0].problems.len(), 2);
    }

    #[test]
    fn rows_without_an_order_of_their_own_are_not_noted_as_reordered() {
        let k = key();
        let mut l = lines(&k, Format::Text, 1, 5);
        l.reverse();
        let keys = std::slice::from_ref(&k);
        let at: Arc<str> = Arc::from("postgresql masqlog.flow_log_20261205 router gw1");
        let named = |v: &mut Verifier<'_>| {
            for (i, line) in l.iter().enumerate() {
                v.line(
                    Loc::Row {
                        at: Arc::clone(&at),
                        seq: 6 - i as u64,
                    },
                    line,
                );
            }
        };
        let mut v = Verifier::new(keys);
        named(&mut v);
        let r = v.finish();
        assert!(r.intact());
        assert!(
            r.writers[0]
                .notes
                .iter()
                .any(|n| matches!(n, Note::Reordered { .. }))
        );
        let mut v = Verifier::new(keys).unordered();
        named(&mut v);
        let r = v.finish();
        assert!(r.intact());
        assert!(
            !r.writers[0]
                .notes
                .iter()
                .any(|n| matches!(n, Note::Reordered { .. })),
            "{:?}",
            r.writers[0].notes
        );
        // How rows and lines are named.
        let loc = Loc::Row {
            at: Arc::clone(&at),
            seq: 3,
        };
        assert_eq!(
            loc.to_string(),
            "postgresql masqlog.flow_log_20261205 router gw1 seq 3"
        );
        let loc = Loc::Named(Arc::from(
            "postgresql t router gw1 at 2026-12-05 10:00:00+00",
        ));
        assert_eq!(
            loc.to_string(),
            "postgresql t router gw1 at 2026-12-05 10:00:00+00"
        );
        assert_eq!(Loc::line(&Arc::from("f.log"), 7).to_string(), "f.log:7");
    }

    #[test]
    fn an_edited_or_inserted_line_is_forged() {
        for f in FORMATS {
            let k = key();
            let mut l = lines(&k, f, 1, 5);
            let edited = String::from_utf8(l[2].clone())
                .unwrap()
                .replace("10.99.0.2", "10.99.0.3");
            assert_ne!(edited.as_bytes(), &l[2][..]);
            l[2] = edited.into_bytes();
            // An inserted copy of a line with a changed sequence number.
            let inserted = String::from_utf8(l[4].clone())
                .unwrap()
                .replace("seq=5", "seq=9")
                .replace("\"seq\":5", "\"seq\":9")
                .replace("seq=\"5\"", "seq=\"9\"");
            l.push(inserted.into_bytes());
            let r = verify(std::slice::from_ref(&k), &l);
            assert_eq!(r.forged.count, 2, "{f:?}: {r:?}");
            assert_eq!(r.forged.locs[0].0, Loc::line(&Arc::from("log"), 3));
            assert!(!r.intact());
        }
    }

    /// Verifies what `paths` stand for (store directories as their
    /// segments), as `masqlog verify` reads them.
    fn verify_paths(keys: &[VerifyKey], paths: &[&Path]) -> Report {
        let mut v = Verifier::new(keys);
        for p in paths {
            let files = store_segments(p)
                .unwrap()
                .unwrap_or_else(|| vec![p.to_path_buf()]);
            for f in files {
                let reader: Box<dyn Read> = match crate::lookup::source::open_file(&f).unwrap() {
                    crate::lookup::source::Opened::Plain { file, .. } => Box::new(file),
                    crate::lookup::source::Opened::Stream { reader, .. } => reader,
                };
                read_lines(&mut v, &f.display().to_string(), reader).unwrap();
            }
        }
        v.finish()
    }

    #[test]
    fn a_store_verifies_and_a_changed_line_in_a_closed_segment_is_named() {
        let k = key();
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("store");
        let (mut w, _) = store::StoreWriter::open(store::StoreConfig {
            dir: dir.clone(),
            roll: std::time::Duration::from_secs(3600),
            roll_bytes: 1 << 30,
            keep: std::time::Duration::from_secs(86_400 * 365 * 100),
            max_bytes: 0,
        })
        .unwrap();
        // One run over two segments: an hour closed, the next one live.
        let l = lines(&k, Format::Text, 1, 9);
        let text = |ls: &[Vec<u8>]| {
            ls.iter()
                .flat_map(|l| l.iter().copied().chain([b'\n']))
                .collect::<Vec<u8>>()
        };
        let t0 = 1_764_000_000;
        assert_eq!(w.append(&text(&l[..6]), t0).unwrap(), None);
        let rolled = w
            .append(&text(&l[6..]), t0 + 3600)
            .unwrap()
            .expect("a roll");
        store::close_segment(&dir, &rolled).unwrap();
        w.sync().unwrap();
        let r = verify_paths(std::slice::from_ref(&k), &[&dir]);
        assert!(r.intact(), "{r:?}");
        assert_eq!(r.lines, 10);
        assert_eq!(r.writers[0].runs, vec![(1, 1, 10, 10)]);

        // Line 3 of the closed segment changed (decompressed, edited,
        // compressed again).
        let zst = dir.join(format!("{rolled}.zst"));
        let plain = zstd::stream::decode_all(std::fs::File::open(&zst).unwrap()).unwrap();
        let mut ls: Vec<String> = String::from_utf8(plain)
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect();
        let before = ls[2].clone();
        ls[2] = before.replace("10.99.0.2", "10.99.0.3");
        assert_ne!(ls[2], before);
        let edited = ls.join("\n") + "\n";
        std::fs::write(
            &zst,
            zstd::stream::encode_all(edited.as_bytes(), 3).unwrap(),
        )
        .unwrap();
        let r = verify_paths(std::slice::from_ref(&k), &[&dir]);
        assert!(!r.intact());
        assert_eq!(r.forged.count, 1, "{r:?}");
        let (loc, _) = &r.forged.locs[0];
        assert_eq!(
            loc,
            &Loc::line(&Arc::from(zst.display().to_string()), 3),
            "{r:?}"
        );
    }

    #[test]
    fn reordered_and_duplicated_lines_are_noted_not_failed() {
        let k = key();
        let mut l = lines(&k, Format::Text, 1, 5);
        l.swap(2, 4);
        l.push(l[1].clone());
        let r = verify(std::slice::from_ref(&k), &l);
        assert!(r.intact(), "{r:?}");
        let notes = &r.writers[0].notes;
        assert!(
            notes
                .iter()
                .any(|n| matches!(n, Note::Reordered { count: 2, .. })),
            "{notes:?}"
        );
        assert!(
            notes
                .iter()
                .any(|n| matches!(n, Note::Duplicates { count: 1, .. }))
        );
    }

    #[test]
    fn a_wrong_key_or_no_key_verifies_nothing() {
        let k = key();
        let other = key();
        let l = lines(&k, Format::Json, 1, 3);
        let r = verify(std::slice::from_ref(&other), &l);
        assert_eq!(r.forged.count, 4);
        assert!(!r.intact());
        let r = verify(&[], &l);
        assert_eq!(r.no_key.get("gw1"), Some(&4));
        assert!(!r.intact());
    }

    #[test]
    fn unsealed_records_are_counted_and_other_lines_passed_over() {
        let k = key();
        let mut plain = Vec::new();
        write_syslog(Format::Text, &header(None), &tcp_start(), &mut plain);
        let l = vec![plain, b"Nov 21 sshd[1]: Accepted password".to_vec()];
        let r = verify(std::slice::from_ref(&k), &l);
        assert_eq!(r.unsealed.count, 1);
        assert_eq!(r.lines, 2);
        assert!(!r.intact());
    }

    /// Only a message that begins with the marker is a record: a sealed or
    /// unsealed record quoted inside another program's message is passed
    /// over like any other line of that program.
    #[test]
    fn a_record_inside_another_programs_message_is_passed_over() {
        for f in FORMATS {
            let k = key();
            let l = lines(&k, f, 1, 2);
            let mut plain = Vec::new();
            let at = write_syslog(f, &header(None), &tcp_start(), &mut plain);
            let mut quoted = Vec::new();
            for body in [&l[2][..], &plain[..]] {
                let start = masqlog_core::format::message_start(body).unwrap();
                let mut q = b"Nov 21 12:37:42 gw1 sshd[1]: Invalid user ".to_vec();
                q.extend_from_slice(&body[start..]);
                quoted.push(q);
            }
            assert_eq!(masqlog_core::format::message_start(&plain), Some(at));
            let mut all = l.clone();
            all.extend(quoted);
            let r = verify(std::slice::from_ref(&k), &all);
            assert_eq!(r.lines, 5);
            assert_eq!((r.forged.count, r.unsealed.count), (0, 0), "{f:?}: {r:?}");
            assert!(r.intact(), "{f:?}: {r:?}");
            assert!(
                r.writers[0]
                    .notes
                    .iter()
                    .all(|n| !matches!(n, Note::Duplicates { .. }))
            );
        }
    }

    #[test]
    fn a_cut_tail_shows_in_the_next_runs_chain_start() {
        let k = key();
        let mut c = Chain::start(k.initial_state(), "masq1", 1).unwrap();
        let mut l: Vec<Vec<u8>> = (0..5).map(|_| flow_line(&mut c, Format::Text)).collect();
        let mark = masqlog_core::seal::ChainMark::of(&c, true);
        let mut c2 = Chain::start(k.initial_state(), "masq1", 2).unwrap();
        let start = ChainRecord::Start {
            previous: Some((&mark).into()),
        };
        l.truncate(3);
        l.push(chain_line(&mut c2, Format::Text, &start));
        let r = verify(std::slice::from_ref(&k), &l);
        assert_eq!(
            r.writers[0].problems,
            vec![Problem::MissingTail {
                run: 1,
                last: 3,
                expected: 5
            }]
        );
    }
}
