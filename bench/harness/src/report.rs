//! The table: per section, ulogd's CPU time per event in both phases (steady
//! and flood) with what each output adds above the floor and that as a
//! ratio to LOGEMU's and SYSLOG's, then the lines, losses, memory and
//! MASQLOG's writer wake-ups; the targets with their verdicts, per rate; and
//! the details of every run.

use std::fmt::Write as _;

use crate::rows::{Dest, Output, Proto, Row};
use crate::runner::{Phase, RowError, RowResult, WRITER_THREAD};

/// MASQLOG on `unix:/dev/log`: at most this times what stock SYSLOG adds
/// above the floor (the same transport).
pub const DEVLOG_SHARE: f64 = 1.0;
/// MASQLOG to TCP, RELP and a file: at most this times what LOGEMU adds.
pub const LOGEMU_SHARE: f64 = 0.5;
/// ulogd's main thread: at most this many microseconds per event above the
/// floor's main thread.
pub const MAIN_LIMIT_US: f64 = 1.0;
/// IDENT: a row with `ident=plain` at most this share above the same row
/// without, in CPU time per event.
pub const IDENT_SHARE: f64 = 0.10;
pub const RSS_LIMIT_MIB: f64 = 64.0;
/// Records per batch of MASQLOG's writer (`BATCH` in src/sink/batch.rs).
pub const BATCH_RECORDS: u64 = 256;

/// The two phases of a row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ph {
    Steady,
    Flood,
}

impl Ph {
    pub fn name(self) -> &'static str {
        match self {
            Ph::Steady => "steady",
            Ph::Flood => "flood",
        }
    }
}

/// The runs of one row, summarised.
pub struct Summary<'a> {
    /// The run with the median CPU time per event of the steady phase (its
    /// steady phase is shown).
    pub shown: &'a RowResult,
    /// The run with the flood (the first round's), else `shown`: the
    /// flood columns and the lines come from it.
    pub flooded: &'a RowResult,
    /// Median CPU microseconds per handled event (all threads), steady.
    pub cpu_us: Option<f64>,
    /// (max - min) / median of the runs' steady CPU per event (None: one
    /// run).
    pub spread: Option<f64>,
    /// The worst run's lost lines, MASQLOG's queue-full drops (None: not
    /// a MASQLOG row), "losing events" and peak RSS.
    pub lost: i64,
    pub dropped: Option<u64>,
    pub losing: usize,
    pub hwm_kib: u64,
}

impl Summary<'_> {
    pub fn output(&self) -> Output {
        self.shown.row.output
    }

    pub fn phase(&self, ph: Ph) -> Option<&Phase> {
        match ph {
            Ph::Steady => Some(&self.shown.steady),
            Ph::Flood => self.flooded.flood.as_ref(),
        }
    }

    /// CPU microseconds per event, all threads (steady: the median run's).
    pub fn cpu(&self, ph: Ph) -> Option<f64> {
        match ph {
            Ph::Steady => self.cpu_us,
            Ph::Flood => self.phase(ph)?.cpu_us(),
        }
    }

    /// The same of ulogd's main thread.
    pub fn main(&self, ph: Ph) -> Option<f64> {
        self.phase(ph)?.main_us()
    }
}

/// Groups runs by row (in first-run order) and summarises each.
pub fn summarise(results: &[RowResult]) -> Vec<Summary<'_>> {
    let mut keys: Vec<String> = Vec::new();
    for r in results {
        if !keys.contains(&r.row.key()) {
            keys.push(r.row.key());
        }
    }
    keys.iter()
        .map(|k| {
            let mut runs: Vec<&RowResult> = results.iter().filter(|r| &r.row.key() == k).collect();
            runs.sort_by(|a, b| {
                a.cpu_us()
                    .unwrap_or(f64::MAX)
                    .total_cmp(&b.cpu_us().unwrap_or(f64::MAX))
            });
            let shown = runs[runs.len() / 2];
            let flooded = runs
                .iter()
                .copied()
                .find(|r| r.flood.is_some())
                .unwrap_or(shown);
            let cpus: Vec<f64> = runs.iter().filter_map(|r| r.cpu_us()).collect();
            let cpu_us = shown.cpu_us();
            let spread = match (cpus.first(), cpus.last(), cpu_us) {
                (Some(lo), Some(hi), Some(m)) if cpus.len() > 1 && m > 0.0 => Some((hi - lo) / m),
                _ => None,
            };
            Summary {
                shown,
                flooded,
                cpu_us,
                spread,
                lost: runs.iter().map(|r| r.lost()).max().unwrap_or(0),
                dropped: runs
                    .iter()
                    .filter_map(|r| r.masq.as_ref().map(|m| m.dropped))
                    .max(),
                losing: runs.iter().map(|r| r.losing).max().unwrap_or(0),
                hwm_kib: runs.iter().map(|r| r.hwm_kib).max().unwrap_or(0),
            }
        })
        .collect()
}

/// One section's reference rows.
struct Refs<'s, 'a> {
    floor: Option<&'s Summary<'a>>,
    logemu: Option<&'s Summary<'a>>,
    syslog: Option<&'s Summary<'a>>,
}

impl<'s, 'a> Refs<'s, 'a> {
    fn of(section: &[&'s Summary<'a>]) -> Refs<'s, 'a> {
        let find = |o: Output| section.iter().copied().find(|s| s.output() == o);
        Refs {
            floor: find(Output::Noop),
            logemu: find(Output::Logemu),
            syslog: find(Output::Syslog),
        }
    }

    /// What `s` adds above the floor, all threads (None for the floor).
    fn above(&self, s: &Summary, ph: Ph) -> Option<f64> {
        if s.output().is_floor() {
            return None;
        }
        Some(s.cpu(ph)? - self.floor?.cpu(ph)?)
    }

    /// What `s`'s main thread adds above the floor's.
    fn main_above(&self, s: &Summary, ph: Ph) -> Option<f64> {
        if s.output().is_floor() {
            return None;
        }
        Some(s.main(ph)? - self.floor?.main(ph)?)
    }

    fn stock(&self, o: Output) -> Option<&'s Summary<'a>> {
        match o {
            Output::Logemu => self.logemu,
            Output::Syslog => self.syslog,
            _ => None,
        }
    }

    /// `s`'s addition as a multiple of the stock output `o`'s (None when
    /// either is missing or the stock output's is not above the floor).
    fn ratio(&self, s: &Summary, o: Output, ph: Ph) -> Option<f64> {
        let b = self.above(self.stock(o)?, ph)?;
        (b > 0.0).then_some(self.above(s, ph)? / b)
    }
}

/// The stock output a MASQLOG row's CPU target compares with (the same
/// transport for /dev/log; LOGEMU, the cheapest, for the others) and the
/// share allowed. IDENT rows have their own target; the PostgreSQL row has
/// none (its writer parses and encodes every row, and the database's own
/// CPU is shown beside it).
pub fn cpu_target(o: Output) -> Option<(Output, f64)> {
    match o {
        Output::Masqlog { ident: true, .. } => None,
        Output::Masqlog {
            dest: Dest::Postgres,
            ..
        } => None,
        Output::Masqlog {
            dest: Dest::DevLog, ..
        } => Some((Output::Syslog, DEVLOG_SHARE)),
        Output::Masqlog { .. } => Some((Output::Logemu, LOGEMU_SHARE)),
        _ => None,
    }
}

fn opt(v: Option<f64>, prec: usize) -> String {
    v.map(|x| format!("{x:.prec$}"))
        .unwrap_or_else(|| "-".into())
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn section<'a, 'b>(summaries: &'b [Summary<'a>], proto: Proto) -> Vec<&'b Summary<'a>> {
    summaries
        .iter()
        .filter(|s| s.shown.row.proto == proto)
        .collect()
}

/// The line of an error worth showing in a table: the one naming the
/// destination or MASQLOG if any (from `MASQLOG[` on, without ulogd's
/// time stamp), else the first; long quoted values shortened, at most 160
/// characters.
pub fn short_error(e: &str) -> String {
    let lines: Vec<&str> = e.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    let pick = lines
        .iter()
        .rev()
        .find(|l| l.contains("destination"))
        .or_else(|| lines.iter().rev().find(|l| l.contains("MASQLOG[")))
        .or(lines.first())
        .copied()
        .unwrap_or("");
    let pick = pick.find("MASQLOG[").map_or(pick, |at| &pick[at..]);
    let mut short = String::new();
    for (i, part) in pick.split('"').enumerate() {
        if i > 0 {
            short.push('"');
        }
        let chars: Vec<char> = part.chars().collect();
        if i % 2 == 1 && chars.len() > 40 {
            short.extend(&chars[..16]);
            short.push_str("...");
            short.extend(&chars[chars.len() - 16..]);
        } else {
            short.push_str(part);
        }
    }
    if short.chars().count() > 160 {
        short = short.chars().take(157).collect();
        short.push_str("...");
    }
    short
}

/// One row of a section as the tables show it: measured, or failed.
enum Entry<'s, 'a> {
    Done(&'s Summary<'a>),
    Failed(&'s RowError),
}

impl Entry<'_, '_> {
    fn label(&self) -> String {
        match self {
            Entry::Done(s) => s.output().label(),
            Entry::Failed(f) => f.row.output.label(),
        }
    }
}

/// The planned rows of `proto` that ran or failed, in plan order.
fn entries<'s, 'a>(
    planned: &[Row],
    proto: Proto,
    summaries: &'s [Summary<'a>],
    failures: &'s [RowError],
) -> Vec<Entry<'s, 'a>> {
    planned
        .iter()
        .filter(|r| r.proto == proto)
        .filter_map(|r| {
            let key = r.key();
            summaries
                .iter()
                .find(|s| s.shown.row.key() == key)
                .map(Entry::Done)
                .or_else(|| {
                    failures
                        .iter()
                        .find(|f| f.row.key() == key)
                        .map(Entry::Failed)
                })
        })
        .collect()
}

/// The tables, two per section.
pub fn table(
    planned: &[Row],
    summaries: &[Summary],
    failures: &[RowError],
    repeat: u32,
    steady_desc: &str,
) -> String {
    let mut out = String::new();
    for proto in [Proto::Udp, Proto::Tcp] {
        let rows = entries(planned, proto, summaries, failures);
        if rows.is_empty() {
            continue;
        }
        let sec = section(summaries, proto);
        let r = Refs::of(&sec);
        let w = rows.iter().map(|e| e.label().len()).max().unwrap_or(0);
        let what = match proto {
            Proto::Udp => "UDP flows (one datagram each)",
            Proto::Tcp => "TCP flows (one SYN each; IDENT asks about TCP flows only)",
        };
        let _ = writeln!(out, "\n{what}");
        let _ = writeln!(
            out,
            "CPU per event, us: ulogd's user+system time / events it handled; main: ulogd's own thread"
        );
        let _ = writeln!(
            out,
            "{:<w$} | {:<41} | flood (as fast as one core sends)",
            "",
            format!("steady ({steady_desc})"),
        );
        let cols1 = format!(
            "{:>6} {:>6} {:>6} {:>6} {:>6} {:>6}",
            "CPU", "+floor", "x", "x", "main", "+floor"
        );
        let cols2 = format!(
            "{:>6} {:>6} {:>6} {:>6} {:>6} {:>6}",
            "us/ev", "us/ev", "LOGEMU", "SYSLOG", "us/ev", "us/ev"
        );
        let spread_head = |a: &str| {
            if repeat > 1 {
                format!(" | {a:>6}")
            } else {
                String::new()
            }
        };
        let _ = writeln!(
            out,
            "{:<w$} | {cols1} | {cols1}{}",
            "",
            spread_head("spread")
        );
        let _ = writeln!(
            out,
            "{:<w$} | {cols2} | {cols2}{}",
            "row",
            spread_head("steady")
        );
        for e in &rows {
            let s = match e {
                Entry::Done(s) => s,
                Entry::Failed(f) => {
                    let _ = writeln!(out, "{:<w$} | error: {}", e.label(), short_error(&f.error));
                    continue;
                }
            };
            let cells = |ph: Ph| {
                format!(
                    "{:>6} {:>6} {:>6} {:>6} {:>6} {:>6}",
                    opt(s.cpu(ph), 2),
                    opt(r.above(s, ph), 2),
                    opt(r.ratio(s, Output::Logemu, ph), 2),
                    opt(r.ratio(s, Output::Syslog, ph), 2),
                    opt(s.main(ph), 2),
                    opt(r.main_above(s, ph), 2),
                )
            };
            let _ = writeln!(
                out,
                "{:<w$} | {} | {}{}",
                e.label(),
                cells(Ph::Steady),
                cells(Ph::Flood),
                if repeat > 1 {
                    format!(" | {:>5}%", opt(s.spread.map(|v| v * 100.0), 0))
                } else {
                    String::new()
                }
            );
        }
        for o in [Output::Logemu, Output::Syslog] {
            let Some(st) = r.stock(o) else { continue };
            let adds: Vec<String> = [Ph::Steady, Ph::Flood]
                .into_iter()
                .filter_map(|ph| r.above(st, ph).map(|a| format!("{a:+.2} {}", ph.name())))
                .collect();
            let noisy = [Ph::Steady, Ph::Flood]
                .into_iter()
                .any(|ph| r.above(st, ph).is_some_and(|a| a <= 0.0));
            let _ = writeln!(
                out,
                "x {}: +floor / {}'s +floor ({} us/ev){}",
                o.label().split(' ').next().unwrap_or(""),
                o.label(),
                adds.join(", "),
                if noisy {
                    "; not above the floor in a phase: no ratio there (noise: more flows or --repeat)"
                } else {
                    ""
                }
            );
        }

        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "{:<w$} | {:>7} {:>7} {:>7} | {:>7} {:>6} {:>6} {:>6} {:>6} {:>6} {:>6} | {:>9} {:>7}",
            "",
            "steady",
            "flood",
            "flood",
            "lines",
            "ident",
            "lost",
            "queue",
            "losing",
            "NEW",
            "RSS",
            "writer",
            "wake-ups"
        );
        let _ = writeln!(
            out,
            "{:<w$} | {:>7} {:>7} {:>7} | {:>7} {:>6} {:>6} {:>6} {:>6} {:>6} {:>6} | {:>9} {:>7}",
            "row",
            "flows",
            "flows",
            "flows/s",
            "",
            "",
            "",
            "drops",
            "",
            "lag s",
            "MiB",
            "per 1k ev",
            "ev each"
        );
        for e in &rows {
            let s = match e {
                Entry::Done(s) => s,
                Entry::Failed(f) => {
                    let _ = writeln!(out, "{:<w$} | error: {}", e.label(), short_error(&f.error));
                    continue;
                }
            };
            let x = s.shown;
            let fl = s.flooded;
            let lines = if x.row.output.is_floor() {
                "-".to_string()
            } else {
                fl.counts.flow_lines().to_string()
            };
            let ident = if fl.counts.ident > 0 {
                fl.counts.ident.to_string()
            } else {
                "-".into()
            };
            let lag = fl.flood.as_ref().and_then(|f| f.new_lag);
            let _ = writeln!(
                out,
                "{:<w$} | {:>7} {:>7} {:>7} | {:>7} {:>6} {:>6} {:>6} {:>6} {:>6} {:>6.1} | {:>9} {:>7}",
                e.label(),
                x.steady.flows,
                fl.flood
                    .as_ref()
                    .map_or("-".into(), |f| f.flows.to_string()),
                fl.flood
                    .as_ref()
                    .map_or("-".into(), |f| format!("{:.0}", f.generator.rate())),
                lines,
                ident,
                s.lost,
                s.dropped.map_or("-".into(), |d| d.to_string()),
                s.losing,
                opt(lag, 2),
                mib(s.hwm_kib),
                opt(x.steady.wakeups_per_1000(), 1),
                opt(x.steady.events_per_wakeup(), 1),
            );
        }
    }
    out
}

/// A target's verdict.
enum Verdict {
    Met,
    Missed,
    /// Not judged: why, and whether that counts against "every target
    /// met" (a figure lost to noise or a failed row does; a count the
    /// plugin does not keep does not).
    Unjudged {
        why: String,
        fails: bool,
    },
}

impl Verdict {
    fn of(ok: bool) -> Verdict {
        if ok { Verdict::Met } else { Verdict::Missed }
    }

    fn text(&self) -> String {
        match self {
            Verdict::Met => "met".into(),
            Verdict::Missed => "MISSED".into(),
            Verdict::Unjudged { why, .. } => format!("not judged: {why}"),
        }
    }

    fn met(&self) -> bool {
        match self {
            Verdict::Met => true,
            Verdict::Missed => false,
            Verdict::Unjudged { fails, .. } => !fails,
        }
    }
}

/// One line of the targets: a row, a phase, the figure, the ratio the
/// target is on, the target, the verdict.
struct Line {
    row: String,
    phase: String,
    figure: String,
    ratio: String,
    target: String,
    verdict: Verdict,
}

/// A group of target lines, columns aligned.
fn group(out: &mut String, title: &str, lines: &[Line], all_met: &mut bool) {
    if lines.is_empty() {
        return;
    }
    let _ = writeln!(out, "\n  {title}");
    let wr = lines.iter().map(|l| l.row.len()).max().unwrap_or(0);
    let wp = lines.iter().map(|l| l.phase.len()).max().unwrap_or(0);
    let wf = lines.iter().map(|l| l.figure.len()).max().unwrap_or(0);
    let wa = lines.iter().map(|l| l.ratio.len()).max().unwrap_or(0);
    let wt = lines.iter().map(|l| l.target.len()).max().unwrap_or(0);
    for l in lines {
        *all_met &= l.verdict.met();
        let _ = writeln!(
            out,
            "    {:<wr$}  {:<wp$}  {:<wf$}  {:<wa$}  {:<wt$}  {}",
            l.row,
            l.phase,
            l.figure,
            l.ratio,
            l.target,
            l.verdict.text()
        );
    }
}

fn no_figure(what: &str) -> Verdict {
    Verdict::Unjudged {
        why: format!("no {what} (no events handled?)"),
        fails: true,
    }
}

/// The targets and whether every one was met.
pub fn targets(
    planned: &[Row],
    summaries: &[Summary],
    failures: &[RowError],
    steady_desc: &str,
    flood_desc: &str,
) -> (String, bool) {
    let mut out = format!(
        "\nTargets (MASQLOG rows; steady: {steady_desc}, flood: {flood_desc}; CPU: ulogd's \
         user+system time of all threads per event)\n"
    );
    let mut all_met = true;
    let phases: Vec<Ph> = if summaries.iter().any(|s| s.flooded.flood.is_some()) {
        vec![Ph::Steady, Ph::Flood]
    } else {
        vec![Ph::Steady]
    };

    // Rows that did not run: their targets are not met.
    for f in failures {
        let ran = summaries.iter().any(|s| s.shown.row.key() == f.row.key());
        if ran || !planned.iter().any(|r| r.key() == f.row.key()) {
            continue;
        }
        all_met = false;
        let _ = writeln!(
            out,
            "  {} {}: not measured ({}): {}",
            f.row.proto.name(),
            f.row.output.label(),
            short_error(&f.error),
            if f.row.output.is_masqlog() {
                "its targets count as missed"
            } else {
                "a reference row; the targets on it are not judged and count as missed"
            }
        );
    }

    let mut cpu = Vec::new();
    let mut main = Vec::new();
    let mut ident = Vec::new();
    let mut wake = Vec::new();
    let mut lost = Vec::new();
    let mut rss = Vec::new();
    let mut flush_delays: Vec<String> = Vec::new();
    for proto in [Proto::Udp, Proto::Tcp] {
        let sec = section(summaries, proto);
        let r = Refs::of(&sec);
        for s in sec.iter().filter(|s| s.output().is_masqlog()) {
            let label = format!("{} {}", proto.name(), s.output().label());
            let line = |ph: &str, figure: String, ratio: String, target: String, v: Verdict| Line {
                row: label.clone(),
                phase: ph.to_string(),
                figure,
                ratio,
                target,
                verdict: v,
            };

            if let Some((stock, share)) = cpu_target(s.output()) {
                let sname = stock.label().split(' ').next().unwrap_or("").to_string();
                for &ph in &phases {
                    let add = r.above(s, ph);
                    let base = r.stock(stock).and_then(|st| r.above(st, ph));
                    let figure = format!("+floor {} us/ev", opt(add, 2));
                    let target = format!("<= {share:.2} x {sname}");
                    let (ratio, v) = match (add, base) {
                        (_, None) if r.stock(stock).is_none() => (
                            "-".into(),
                            Verdict::Unjudged {
                                why: format!("no {sname} row in this section"),
                                fails: false,
                            },
                        ),
                        (None, _) | (_, None) => ("-".into(), no_figure("CPU figure")),
                        (Some(_), Some(b)) if b <= 0.0 => (
                            format!("{sname} +floor {b:.2}"),
                            Verdict::Unjudged {
                                why: format!(
                                    "{sname} measured {b:.2} us/ev above the floor (noise: more \
                                     flows or --repeat)"
                                ),
                                fails: true,
                            },
                        ),
                        (Some(a), Some(b)) => (
                            format!("{:.2} x {sname}'s +{b:.2}", a / b),
                            Verdict::of(a <= share * b),
                        ),
                    };
                    cpu.push(line(ph.name(), figure, ratio, target, v));
                }
            }

            for &ph in &phases {
                let m = s.main(ph);
                let add = r.main_above(s, ph);
                let floor_main = r.floor.and_then(|f| f.main(ph));
                let (ratio, v) = match (add, floor_main) {
                    (Some(a), Some(f)) => (
                        format!("{a:+.2} above the floor's {f:.2}"),
                        Verdict::of(a <= MAIN_LIMIT_US),
                    ),
                    _ if r.floor.is_none() => (
                        "-".into(),
                        Verdict::Unjudged {
                            why: "no floor row in this section".into(),
                            fails: false,
                        },
                    ),
                    _ => ("-".into(), no_figure("main-thread figure")),
                };
                main.push(line(
                    ph.name(),
                    format!("main {} us/ev", opt(m, 2)),
                    ratio,
                    format!("<= +{MAIN_LIMIT_US:.2} us/ev"),
                    v,
                ));
            }

            if s.output().has_ident() {
                let base_out = s.output().without_ident();
                let base = sec.iter().find(|b| b.output() == base_out);
                for &ph in &phases {
                    let with = s.cpu(ph);
                    let without = base.and_then(|b| b.cpu(ph));
                    let (figure, ratio, v) = match (with, without) {
                        (Some(w), Some(wo)) if wo > 0.0 => (
                            format!("{w:.2} us/ev, {wo:.2} without"),
                            format!("{:+.1}%", (w - wo) / wo * 100.0),
                            Verdict::of((w - wo) / wo < IDENT_SHARE),
                        ),
                        _ if base.is_none() => (
                            format!("{} us/ev", opt(with, 2)),
                            "-".into(),
                            Verdict::Unjudged {
                                why: format!("no {} row in this section", base_out.label()),
                                fails: false,
                            },
                        ),
                        _ => ("-".into(), "-".into(), no_figure("CPU figure")),
                    };
                    ident.push(line(
                        ph.name(),
                        figure,
                        ratio,
                        format!("< {:.0}%", IDENT_SHARE * 100.0),
                        v,
                    ));
                }
            }

            let st = &s.shown.steady;
            let (figure, ratio, v) = match st.writer {
                Some(w) => {
                    let figure = format!(
                        "{} wake-ups ({} waits + {} preemptions), {} events in {:.1} s",
                        w.total(),
                        w.voluntary,
                        w.involuntary,
                        st.handled,
                        st.secs
                    );
                    let ratio = format!(
                        "{} per 1000 events, {} events per wake-up",
                        opt(st.wakeups_per_1000(), 1),
                        opt(st.events_per_wakeup(), 1)
                    );
                    let to_db = matches!(
                        s.shown.row.output,
                        Output::Masqlog {
                            dest: Dest::Postgres,
                            ..
                        }
                    );
                    let v = match st.batches {
                        // Each batch waits for the database's answers.
                        Some(_) if to_db => Verdict::Unjudged {
                            why: "a batch waits for the database's answers (BEGIN, COPY, COMMIT)"
                                .into(),
                            fails: false,
                        },
                        // Waits, not preemptions: what the plugin decides.
                        Some(b) => Verdict::of(w.voluntary <= b),
                        None => Verdict::Unjudged {
                            why: "no batch count (see below)".into(),
                            fails: false,
                        },
                    };
                    let ratio = match st.batches {
                        Some(b) => format!("{ratio}; {b} batches"),
                        None => ratio,
                    };
                    (figure, ratio, v)
                }
                None => (
                    "-".into(),
                    "-".into(),
                    Verdict::Unjudged {
                        why: format!("no thread named {WRITER_THREAD} found"),
                        fails: true,
                    },
                ),
            };
            wake.push(line("steady", figure, ratio, "<= 1 per batch".into(), v));
            if let Some(d) = &s.shown.flush_delay_ms
                && !flush_delays.contains(d)
            {
                flush_delays.push(d.clone());
            }

            lost.push(line(
                "both",
                format!("lost {}", s.lost),
                format!(
                    "flood at {:.0} flows/s; queue drops {}",
                    s.flooded.flood_rate(),
                    s.dropped.map_or("-".into(), |d| d.to_string())
                ),
                "= 0".into(),
                Verdict::of(s.lost <= 0),
            ));
            rss.push(line(
                "end",
                format!("{:.1} MiB", mib(s.hwm_kib)),
                String::new(),
                format!("< {RSS_LIMIT_MIB:.0} MiB"),
                Verdict::of(mib(s.hwm_kib) < RSS_LIMIT_MIB),
            ));
        }
    }

    group(
        &mut out,
        &format!(
            "CPU above the floor, against the stock output of the same transport: on \
             unix:/dev/log <= {DEVLOG_SHARE:.1} x SYSLOG's; to tcp, relp and a file <= \
             {LOGEMU_SHARE:.1} x LOGEMU's"
        ),
        &cpu,
        &mut all_met,
    );
    group(
        &mut out,
        &format!(
            "ulogd's main thread (netlink, every interp): at most +{MAIN_LIMIT_US:.1} us/event \
             above the floor's main thread"
        ),
        &main,
        &mut all_met,
    );
    group(
        &mut out,
        &format!(
            "IDENT (against an identd that never answers): CPU per event with ident=plain, \
             against the same row without IDENT on the same TCP flows: under \
             {:.0}% more",
            IDENT_SHARE * 100.0
        ),
        &ident,
        &mut all_met,
    );
    group(
        &mut out,
        &format!(
            "Writer wake-ups (thread {WRITER_THREAD}: voluntary + involuntary context \
             switches), steady phase: at most one per batch"
        ),
        &wake,
        &mut all_met,
    );
    if wake
        .iter()
        .any(|l| matches!(&l.verdict, Verdict::Unjudged { fails: false, .. }))
    {
        let delays = if flush_delays.is_empty() {
            "its default".to_string()
        } else {
            flush_delays.join(" or ")
        };
        let _ = writeln!(
            out,
            "    MASQLOG's statistics count no batches, so the figure stands alone: a batch \
             holds up to {BATCH_RECORDS} records, and the writer gathers a started batch for \
             flush_delay_ms={delays} ms before sending it"
        );
    }
    group(
        &mut out,
        "Lines lost, both phases (the flood at the generator's maximum rate): 0",
        &lost,
        &mut all_met,
    );
    group(
        &mut out,
        &format!("Peak RSS (VmHWM after the flood): under {RSS_LIMIT_MIB:.0} MiB"),
        &rss,
        &mut all_met,
    );
    (out, all_met)
}

fn phase_line(what: &str, p: &Phase, ticks: u64) -> String {
    let writer = match p.writer {
        Some(w) => format!(
            "; writer {} voluntary + {} involuntary switches ({} per 1000 events){}",
            w.voluntary,
            w.involuntary,
            opt(p.wakeups_per_1000(), 1),
            p.batches
                .map_or(String::new(), |b| format!(", {b} batches"))
        ),
        None => String::new(),
    };
    format!(
        "    {what}: sent {} in {:.2} s ({:.0}/s, {} errors), {} passed the NAT; \
         lines start={} end={} ident={} other={}; handled {} events; \
         CPU {:.1} ms ({:.2} us/ev) all threads, {:.1} ms main thread, utime {:.2} s, stime {:.2} s; \
         table empty {:.1} s after the generator; measured over {:.1} s; NEW lag {}; machine busy {:.0}%{writer}\n",
        p.generator.sent,
        p.generator.secs,
        p.generator.rate(),
        p.generator.errors,
        p.flows,
        p.lines.start,
        p.lines.end,
        p.lines.ident,
        p.lines.other,
        p.handled,
        p.cpu.all_ns as f64 / 1e6,
        p.cpu_us().unwrap_or(f64::NAN),
        p.cpu.main_ns as f64 / 1e6,
        p.cpu.utime as f64 / ticks as f64,
        p.cpu.stime as f64 / ticks as f64,
        p.drain_secs,
        p.secs,
        opt(p.new_lag, 2),
        p.machine_busy * 100.0,
    )
}

/// Every run, and every row that failed, for the results file.
pub fn details(results: &[RowResult], failures: &[RowError], ticks: u64) -> String {
    let mut out = String::from("\nRuns\n");
    for x in results {
        let _ = writeln!(
            out,
            "- {}: {} flows, lines start={} end={} ident={} other={}{}, lost {}; \
             {} \"losing events\"; VmHWM {:.1} MiB; {} threads; row took {:.0} s",
            x.row.key(),
            x.flows(),
            x.counts.start,
            x.counts.end,
            x.counts.ident,
            x.counts.other,
            x.noop_events
                .map_or(String::new(), |n| format!(", NOOP saw {n} events")),
            x.lost(),
            x.losing,
            mib(x.hwm_kib),
            x.steady.cpu.threads,
            x.wall_secs
        );
        out.push_str(&phase_line("steady", &x.steady, ticks));
        if let Some(f) = &x.flood {
            out.push_str(&phase_line("flood", f, ticks));
        }
        if let Some(s) = &x.masq {
            let all: Vec<String> = s.all.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let id: Vec<String> = s.ident.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let _ = writeln!(
                out,
                "    MASQLOG stopped: {}{}",
                all.join(" "),
                if id.is_empty() {
                    String::new()
                } else {
                    format!(" ident: {}", id.join(" "))
                }
            );
        }
        for n in &x.notes {
            let _ = writeln!(out, "    note: {n}");
        }
    }
    for f in failures {
        let _ = writeln!(out, "- {}: failed:", f.row.key());
        for l in f.error.lines() {
            let _ = writeln!(out, "    {l}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rows::Format;

    #[test]
    fn the_cpu_target_follows_the_transport() {
        let m = |dest, ident| Output::Masqlog {
            format: Format::Text,
            dest,
            ident,
        };
        assert_eq!(
            cpu_target(m(Dest::DevLog, false)),
            Some((Output::Syslog, DEVLOG_SHARE))
        );
        assert_eq!(cpu_target(m(Dest::Postgres, false)), None);
        for d in [Dest::Tcp, Dest::Relp, Dest::File, Dest::Store] {
            assert_eq!(
                cpu_target(m(d, false)),
                Some((Output::Logemu, LOGEMU_SHARE))
            );
        }
        assert_eq!(cpu_target(m(Dest::DevLog, true)), None);
        assert_eq!(cpu_target(Output::Logemu), None);
    }

    #[test]
    fn the_error_line_names_the_destination() {
        let e = "row udp:masqlog-text-file\nulogd exited (status 1):\n\
                 Fri Dec  4 15:13:51 2026 <7> MASQLOG:0 MASQLOG[masq1]: config key \
                 `destination` = \"file:/tmp/masqlog-mlab6804-0-OshR/r06-file.out.log\": \
                 unix:/ABSOLUTE/PATH\nmore";
        assert_eq!(
            short_error(e),
            "MASQLOG[masq1]: config key `destination` = \"file:/tmp/masqlo...r06-file.out.log\": \
             unix:/ABSOLUTE/PATH"
        );
        assert_eq!(short_error("one\ntwo"), "one");
        assert_eq!(short_error(&"y".repeat(300)).chars().count(), 160);
    }
}
