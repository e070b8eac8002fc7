//! `masqlog lookup`: answers an abuse report ("192.0.2.1 port 53500
//! attacked 203.0.113.7:443 at 2026-11-21 13:37:42 CET") from the plugin's
//! log lines: which inside client (and, with IDENT, which user) had that
//! public address and port at that time, with the lines that show it.
//!
//! Rooms: [`query`] (the question; report times and zones are
//! [`crate::when`]'s, shared with portblock),
//! [`prefix`] (syslog prefix times), [`source`] (inputs, rotated sets,
//! compression), [`scan`] (the fast reader and the bisection), [`flows`]
//! (joining lines into flows, matching, ranking), [`portblock`] (the rule
//! files of port-block NAT), [`batch`] (many reports in one pass), [`render`]
//! (the answer for people and for machines).
//!
//! # What is read
//!
//! masqlog's lines in all three formats, as syslog daemons store them
//! (rsyslog's traditional `Nov 21 13:37:42 host tag[pid]: msg` and
//! high-precision `2026-11-21T13:37:42.123456+01:00 host ...`, raw RFC 5424
//! as received, or bare), from files, directories, rotated sets (gzip and
//! zstd found by their magic bytes) and stdin. Other lines are skipped. A
//! record is a syslog message that begins with the marker (see
//! `masqlog_core::format::message_start`): a line whose marker stands
//! further on (another program quoting one) is skipped and counted
//! ([`ScanStats::not_records`]). A line that mentions the queried address
//! and port and begins with a masqlog marker but does not parse is reported
//! as `file:line: reason` (lines about other endpoints are not parsed at
//! all, so their damage goes unseen).
//!
//! # The search window (single lookups)
//!
//! Matching uses the UTC times in masqlog's own fields; the syslog prefix
//! times only say where in a file to read. A flow that matches report time
//! `T` with slack `s` and lives at most `max_age` (`--max-age`, 24 h by
//! default) started at or after `T - s - max_age`; so each plain file is
//! read from the first line at that time (found by bisection, less a 5
//! minute margin for lines logged out of order) up to `T + s` (plus the
//! margin). A start line read without its end line up to there is a flow
//! still open at `T + s`: it matches. To show when such a flow really ended,
//! reading goes on until its end line or `start + max_age`, whichever comes
//! first. An end line carries the start time too, so a flow longer than
//! `max_age` is still found when it ended after `T - s`; one that started
//! before the window and was still open after it is not: raise `--max-age`
//! (or `--max-age unlimited`, which reads everything) for long-lived
//! connections. An open flow that started more than `max_age` before `T` is
//! shown as a hint, not a match: its end line was most likely lost.
//!
//! Files last modified more than a day before the window are skipped
//! unopened: sound while the log host's clock (mtime) was not more than a
//! day behind the router's (record times) when it wrote them; a clock set
//! back on the router only makes a file's records look older than its
//! mtime, never newer. Compressed files and stdin are read as streams from
//! the start, and left once past the window. Any disorder the scan sees
//! (see [`scan`]'s "Order") turns the seek and the early stop off for that
//! input, which is then read in full, noted. `--scan-all` turns all of this
//! off: every line of every input is read, and the answers are the same
//! (the tests check that, on shuffled logs, a clock stepped back and
//! merged routers too).
//!
//! # Exit codes
//!
//! 0: a flow (or, with only `--portblock-state`, a rule file's owner) was
//! found; 1: none; 2: bad input (an unreadable time, endpoint or report
//! line), or nothing found while an input could not be read (an unreadable
//! file or a truncated compressed file: the answer cannot be trusted). An
//! unreadable input does not change a found answer, which then says it may
//! be incomplete. Batch: 0 when every report was answered, 1 when some were
//! not found, 2 when a report line was bad.

pub mod auth;
pub mod batch;
pub mod flows;
pub mod json;
pub mod portblock;
pub mod prefix;
pub mod query;
pub mod render;
pub mod scan;
pub mod source;
pub mod store;

#[cfg(test)]
mod store_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod testutil;

use std::io::Read;

pub use crate::when::{ReportTime, TimeError, Zone};
pub use flows::{Fit, Flow, FlowEnd, Match, Verdict};
pub use query::{AbuseReport, DEFAULT_MAX_AGE_SECS, DEFAULT_SLACK_SECS, RemoteFilter};
pub use scan::{Candidate, NAV_MARGIN_SECS, ScanStats};
pub use source::{Input, Spec};

use crate::portblock::PortblockError;

/// Everything that makes a lookup fail before it can answer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LookupError {
    #[error("invalid endpoint {input:?}: {why}")]
    BadEndpoint { input: String, why: String },
    #[error(transparent)]
    Time(#[from] TimeError),
    #[error("unknown protocol {input:?}: give a name (tcp, udp, icmp, ...) or a number")]
    BadProto { input: String },
    #[error(
        "no logs to read: name log files or directories, an evidence store \
         (`--store /var/lib/masqlog/store`, read by default when it exists), \
         or pipe lines in (`zcat syslog.2.gz | masqlog lookup ... -`)"
    )]
    NoInput,
    /// A time where the public endpoint belongs, or an endpoint as --at.
    #[error("{what}: the public address comes first: masqlog lookup IP:PORT --at TIME [LOG...]")]
    Swapped { what: String },
    #[error(
        "--store {path}: not an evidence store (no masqlog-store file in it): give the directory the plugin's store_dir names"
    )]
    NotAStore { path: String },
    #[error("give the public endpoint and --at, or --reports FILE")]
    NoQuery,
    #[error("cannot read the reports {path}: {why}")]
    Reports { path: String, why: String },
    #[error("verification key {path}: {why}")]
    Key { path: String, why: String },
    // Neither carries its cause as a `source()`: the cause is in the
    // message, and `{:#}` in main would print it twice.
    #[error("port-block history: {0}")]
    Portblock(PortblockError),
    #[error("cannot write the answer: {0}")]
    Output(std::io::Error),
    /// `--db`: the database could not be read.
    #[error("database: {0}")]
    Db(String),
}

impl From<PortblockError> for LookupError {
    fn from(e: PortblockError) -> Self {
        LookupError::Portblock(e)
    }
}

impl From<std::io::Error> for LookupError {
    fn from(e: std::io::Error) -> Self {
        LookupError::Output(e)
    }
}

/// Progress of the reading, for a progress bar.
pub trait Progress {
    /// `done` of `total` bytes read (total 0: unknown), now in `name`.
    fn update(&mut self, name: &str, done: u64, total: u64);
    /// Reading is over.
    fn finish(&mut self);
}

/// A progress sink that shows nothing.
pub struct NoProgress;

impl Progress for NoProgress {
    fn update(&mut self, _: &str, _: u64, _: u64) {}
    fn finish(&mut self) {}
}

/// How to read.
pub struct ScanOptions<'a> {
    /// Used for [`Input::Stdin`].
    pub stdin: Option<Box<dyn Read>>,
    pub progress: &'a mut dyn Progress,
    /// Read every line of every input (no bisection, no skipping).
    pub scan_all: bool,
    /// Verification keys: with any, only lines whose seal verifies can be
    /// evidence (see [`auth`]).
    pub keys: &'a [masqlog_core::seal::VerifyKey],
}

/// One line of evidence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EvidenceLine {
    pub file: String,
    /// 1-based; `None` when it could not be counted.
    pub line: Option<u64>,
    pub offset: u64,
    pub event: String,
    pub text: String,
}

/// A masqlog line that does not parse, located.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadLine {
    pub file: String,
    pub line: Option<u64>,
    pub reason: String,
}

impl std::fmt::Display for BadLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.line {
            Some(l) => write!(f, "{}:{l}: {}", self.file, self.reason),
            None => write!(f, "{}: {}", self.file, self.reason),
        }
    }
}

/// What reading the logs gave: every line about the queried endpoints.
pub struct Scan {
    pub candidates: Vec<Candidate>,
    pub sources: Vec<scan::SourceInfo>,
    pub bad_lines: Vec<BadLine>,
    /// Inputs that could not be read (fully): name, why.
    pub unreadable: Vec<(String, String)>,
    pub notes: Vec<String>,
    pub stats: ScanStats,
    /// The windowed search, when one was used.
    pub window: Option<scan::Window>,
    /// What authentication set aside.
    pub auth: auth::AuthOutcome,
}

impl Scan {
    /// The lines of a flow, located.
    pub fn evidence(&self, flow: &Flow) -> Vec<EvidenceLine> {
        flow.lines
            .iter()
            .map(|&i| {
                let c = &self.candidates[i];
                let s = &self.sources[c.source];
                EvidenceLine {
                    file: s.spec.name(),
                    line: s.line(c.rel_line),
                    offset: c.offset,
                    event: c.event.name().to_string(),
                    text: c.text.clone(),
                }
            })
            .collect()
    }

    /// The flows of one public endpoint.
    pub fn flows_of(&self, ip: std::net::IpAddr, port: u16) -> Vec<Flow> {
        let which: Vec<usize> = self
            .candidates
            .iter()
            .enumerate()
            .filter(|(_, c)| {
                c.parsed.record.masq.port == Some(port)
                    && query::canon(c.parsed.record.masq.ip) == ip
            })
            .map(|(i, _)| i)
            .collect();
        flows::join(&self.candidates, &which)
    }

    /// Whether the answer may be missing something: an input could not be
    /// read fully.
    pub fn incomplete(&self) -> bool {
        !self.unreadable.is_empty()
    }
}

/// The window of a single query, or `None` to read everything.
pub fn window_for(q: &AbuseReport, scan_all: bool) -> Option<scan::Window> {
    let max_age = q.max_age?;
    if scan_all {
        return None;
    }
    Some(scan::Window {
        from: q
            .at
            .first()
            .secs
            .saturating_sub(q.slack)
            .saturating_sub(max_age),
        until: q.at.last().secs.saturating_add(1).saturating_add(q.slack),
        max_age,
        proto: q.proto.map(|p| p.number()),
    })
}

/// Reads the inputs for the given queries: one query gets the windowed
/// search (unless `scan_all`); several are answered from one full pass.
pub fn scan(queries: &[&AbuseReport], inputs: &[Input], opts: ScanOptions<'_>) -> Scan {
    // Evidence stores (directories with the store's marker) are read
    // through their indexes; everything else as logs.
    let (stores, logs): (Vec<&Input>, Vec<&Input>) = inputs
        .iter()
        .partition(|i| matches!(i, Input::Path(p) if masqlog_core::store::is_store(p)));
    let logs: Vec<Input> = logs.into_iter().cloned().collect();
    let (mut specs, mut notes, mut unreadable) = source::expand(&logs);
    let (targets, window) = match queries {
        [q] => (
            scan::Targets::single(q.public_ip, q.public_port),
            window_for(q, opts.scan_all),
        ),
        _ => (
            scan::Targets::many(queries.iter().map(|q| (q.public_ip, q.public_port))),
            None,
        ),
    };
    let anchor = {
        let mut ts: Vec<i64> = queries.iter().map(|q| q.at.first().secs).collect();
        ts.sort_unstable();
        ts.get(ts.len() / 2)
            .copied()
            .unwrap_or_else(|| masqlog_core::record::Timestamp::now().secs)
    };
    let mut s = scan::Scanner::new(targets, window.clone(), anchor, opts.progress);
    let endpoints: Vec<(std::net::IpAddr, u16)> = queries
        .iter()
        .map(|q| (q.public_ip, q.public_port))
        .collect();
    let mut live = Vec::new();
    for st in stores {
        let Input::Path(dir) = st else { continue };
        let mut r = store::read(&mut s, dir, &endpoints, window.as_ref());
        let plural = |n: usize| if n == 1 { "" } else { "s" };
        let mut note = format!(
            "{}: evidence store: {} frame{} of {} segment{} read",
            dir.display(),
            r.frames,
            plural(r.frames),
            r.segments,
            plural(r.segments),
        );
        if r.live_indexed > 0 {
            note += &format!(
                ", {} live segment{} searched through its index ({} bytes after it read as lines)",
                r.live_indexed,
                plural(r.live_indexed),
                r.live_tail_bytes
            );
        }
        note += &format!(
            ", {} live segment{} read whole",
            r.live.len(),
            plural(r.live.len())
        );
        notes.push(note);
        s.stats.inputs += r.segments;
        unreadable.append(&mut r.unreadable);
        live.append(&mut r.live);
    }
    // Rotated files with a fresh index beside them (`masqlog index`).
    let mut indexed = 0;
    specs.retain(|spec| {
        let Spec::File(p) = spec else { return true };
        let Some(dir) = store::fresh_sidecar(p) else {
            return true;
        };
        let mut r = store::read_as(&mut s, &dir, &endpoints, window.as_ref(), Some(p));
        s.stats.inputs += 1;
        indexed += 1;
        unreadable.append(&mut r.unreadable);
        false
    });
    if indexed > 0 {
        notes.push(format!(
            "{indexed} file{} read through {} index (masqlog index)",
            if indexed == 1 { "" } else { "s" },
            if indexed == 1 { "its" } else { "their" }
        ));
    }
    live.append(&mut specs);
    let specs = live;
    s.run(&specs, opts.stdin);
    s.resolve_line_numbers();
    notes.append(&mut s.notes);
    unreadable.append(&mut s.unreadable);
    let bad_lines = s
        .malformed
        .iter()
        .map(|m| {
            let src = &s.sources[m.source];
            BadLine {
                file: src.spec.name(),
                line: src.line(m.rel_line),
                reason: m.reason.to_string(),
            }
        })
        .collect();
    let (candidates, auth) = auth::authenticate(std::mem::take(&mut s.candidates), opts.keys);
    // Gap records: believed only when they verify (with keys).
    let mut checker = auth::Checker::new(opts.keys);
    let mut unverified_gaps = 0;
    for (gap, text) in std::mem::take(&mut s.gaps) {
        if !opts.keys.is_empty() && checker.check(text.as_bytes()).is_err() {
            unverified_gaps += 1;
            continue;
        }
        notes.push(format!(
            "the log is incomplete: {} conntrack events were lost between {} and {} (ulogd's netlink socket overflowed; the plugin wrote a gap record); a flow of that period may have no line",
            gap.lost,
            masqlog_core::time::utc_string(gap.from, true),
            masqlog_core::time::utc_string(gap.to, true)
        ));
    }
    if unverified_gaps > 0 {
        notes.push(format!(
            "not used: {unverified_gaps} gap record{} of the searched period that did not verify",
            if unverified_gaps == 1 { "" } else { "s" }
        ));
    }
    if auth.keyed {
        let mut said = format!(
            "authenticated: {} line{} verified with the given key{}",
            auth.verified,
            if auth.verified == 1 { "" } else { "s" },
            if opts.keys.len() == 1 { "" } else { "s" }
        );
        if auth.duplicates > 0 {
            said.push_str(&format!(
                "; {} repeated record{} counted once",
                auth.duplicates,
                if auth.duplicates == 1 { "" } else { "s" }
            ));
        }
        notes.push(said);
        if !auth.rejected.is_empty() {
            let shown: Vec<String> = auth
                .rejected
                .iter()
                .take(5)
                .map(|(c, why)| {
                    let src = &s.sources[c.source];
                    let at = src
                        .line(c.rel_line)
                        .map_or(format!("byte {}", c.offset), |l| format!("line {l}"));
                    format!("{} {at}: {why}", src.spec.name())
                })
                .collect();
            notes.push(format!(
                "not used as evidence: {} masqlog-looking line{} about this address that did not verify ({}{})",
                auth.rejected.len(),
                if auth.rejected.len() == 1 { "" } else { "s" },
                shown.join("; "),
                if auth.rejected.len() > shown.len() { "; ..." } else { "" }
            ));
        }
    } else if !candidates.is_empty() {
        notes.push(
            "nothing was authenticated (no --key): these lines could have been written by anyone able to write to this log; give the router's verification key to answer from sealed lines only"
                .into(),
        );
    }
    Scan {
        candidates,
        sources: std::mem::take(&mut s.sources),
        bad_lines,
        unreadable,
        notes,
        stats: s.stats.clone(),
        window,
        auth,
    }
}

/// Answers one query from a scan.
pub fn decide(scan: &Scan, q: &AbuseReport) -> Verdict {
    flows::decide(q, scan.flows_of(q.public_ip, q.public_port))
}
