//! The table: one line per row (the median run when rows were repeated),
//! ratios to the cheapest stock output, the targets with their verdicts,
//! and the details of every run.

use std::fmt::Write as _;

use crate::rows::Proto;
use crate::runner::{Phase, RowResult};

/// The targets.
pub const CPU_SHARE: f64 = 0.5;
pub const RSS_LIMIT_MIB: f64 = 64.0;

/// The runs of one row, summarised.
pub struct Summary<'a> {
    /// The run with the median CPU time per event (its steady phase is
    /// shown).
    pub shown: &'a RowResult,
    /// The run with the flood (the first round's), else `shown`: the
    /// flood columns and the lines come from it.
    pub flooded: &'a RowResult,
    /// Median CPU microseconds per handled event (all threads).
    pub cpu_us: Option<f64>,
    /// (max - min) / median of the runs' CPU per event (None: one run).
    pub spread: Option<f64>,
    /// The worst run's lost lines, MASQLOG's queue-full drops (None: not
    /// a MASQLOG row), "losing events" and peak RSS.
    pub lost: i64,
    pub dropped: Option<u64>,
    pub losing: usize,
    pub hwm_kib: u64,
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

/// One section's reference figures.
struct Refs {
    floor_us: Option<f64>,
    /// The cheapest stock output: label, CPU added per event, peak RSS.
    stock: Option<(String, f64, u64)>,
}

fn refs(section: &[&Summary]) -> Refs {
    let floor_us = section
        .iter()
        .find(|s| s.shown.row.output.is_floor())
        .and_then(|s| s.cpu_us);
    let stock = floor_us.and_then(|f| {
        section
            .iter()
            .filter(|s| s.shown.row.output.is_stock())
            .filter_map(|s| {
                s.cpu_us
                    .map(|c| (s.shown.row.output.label(), c - f, s.hwm_kib))
            })
            .min_by(|a, b| a.1.total_cmp(&b.1))
    });
    Refs { floor_us, stock }
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

/// The table, with a header line per section.
pub fn table(summaries: &[Summary], repeat: u32) -> String {
    let mut out = String::new();
    for proto in [Proto::Udp, Proto::Tcp] {
        let sec = section(summaries, proto);
        if sec.is_empty() {
            continue;
        }
        let r = refs(&sec);
        let w = sec
            .iter()
            .map(|s| s.shown.row.output.label().len())
            .max()
            .unwrap_or(0);
        let what = match proto {
            Proto::Udp => "UDP flows (one datagram each)",
            Proto::Tcp => "TCP flows (one SYN each; IDENT asks about TCP flows only)",
        };
        let _ = writeln!(out, "\n{what}");
        let _ = writeln!(
            out,
            "{:<w$} {:>7} {:>6} {:>6} {:>5} {:>6} | {:>7} {:>7} {:>6} {:>6} {:>6} {:>6} {:>6} {:>6} {:>5}{}",
            "",
            "steady:",
            "CPU",
            "+floor",
            "x",
            "main",
            "flood:",
            "lines",
            "ident",
            "lost",
            "queue",
            "losing",
            "NEW",
            "RSS",
            "x",
            if repeat > 1 { " spread" } else { "" }
        );
        let _ = writeln!(
            out,
            "{:<w$} {:>7} {:>6} {:>6} {:>5} {:>6} | {:>7} {:>7} {:>6} {:>6} {:>6} {:>6} {:>6} {:>6} {:>5}{}",
            "row",
            "flows",
            "us/ev",
            "us/ev",
            "stock",
            "us/ev",
            "flows/s",
            "",
            "",
            "",
            "drops",
            "",
            "lag s",
            "MiB",
            "stock",
            if repeat > 1 { "    CPU" } else { "" }
        );
        for s in &sec {
            let x = s.shown;
            let add = match (s.cpu_us, r.floor_us) {
                (Some(c), Some(f)) if !x.row.output.is_floor() => Some(c - f),
                _ => None,
            };
            let ratio = match (add, &r.stock) {
                (Some(a), Some((_, b, _))) if *b > 0.0 => Some(a / b),
                _ => None,
            };
            let rss_ratio = r
                .stock
                .as_ref()
                .filter(|(_, _, h)| *h > 0)
                .map(|(_, _, h)| s.hwm_kib as f64 / *h as f64);
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
                "{:<w$} {:>7} {:>6} {:>6} {:>5} {:>6} | {:>7.0} {:>7} {:>6} {:>6} {:>6} {:>6} {:>6} {:>6.1} {:>5}{}",
                x.row.output.label(),
                x.steady.flows,
                opt(s.cpu_us, 2),
                opt(add, 2),
                opt(ratio, 2),
                opt(x.steady.main_us(), 2),
                fl.flood_rate(),
                lines,
                ident,
                s.lost,
                s.dropped.map_or("-".into(), |d| d.to_string()),
                s.losing,
                opt(lag, 2),
                mib(s.hwm_kib),
                opt(rss_ratio, 2),
                if repeat > 1 {
                    format!(" {:>5}%", opt(s.spread.map(|v| v * 100.0), 0))
                } else {
                    String::new()
                }
            );
        }
        match &r.stock {
            Some((label, add, hwm)) if *add > 0.0 => {
                let _ = writeln!(
                    out,
                    "x stock: against the cheapest stock output of this section, {label} \
                     (+{add:.2} us/ev above the floor, {:.1} MiB)",
                    mib(*hwm)
                );
            }
            Some((label, add, _)) => {
                let _ = writeln!(
                    out,
                    "x stock: none: the cheapest stock output, {label}, measured {add:.2} us/ev \
                     against the floor (noise: more flows or --repeat)"
                );
            }
            None => {}
        }
    }
    out
}

/// The targets and whether each masqlog row meets them.
pub fn targets(summaries: &[Summary], flood_desc: &str) -> (String, bool) {
    let mut out = String::from("\nTargets (MASQLOG rows)\n");
    let mut all_met = true;
    let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
    for proto in [Proto::Udp, Proto::Tcp] {
        let sec = section(summaries, proto);
        let r = refs(&sec);
        for s in sec.iter().filter(|s| s.shown.row.output.is_masqlog()) {
            let x = s.shown;
            let label = format!("{} {}", proto.name(), x.row.output.label());
            match (s.cpu_us, r.floor_us, &r.stock) {
                (Some(_), Some(_), Some((sl, b, _))) if *b <= 0.0 => {
                    all_met = false;
                    let _ = writeln!(
                        out,
                        "  {label:<36} CPU: not judged: {sl} measured {b:.2} us/ev against the \
                         floor in this run (noise: more flows or --repeat)"
                    );
                }
                (Some(c), Some(f), Some((sl, b, _))) => {
                    let add = c - f;
                    let ok = add <= CPU_SHARE * b;
                    all_met &= ok;
                    let _ = writeln!(
                        out,
                        "  {label:<36} CPU above the floor {add:>5.2} us/ev, target <= {:.2} \
                         (half of {sl}'s {b:.2}): {} ({:.2} x stock)",
                        CPU_SHARE * b,
                        verdict(ok),
                        if *b > 0.0 { add / b } else { f64::NAN }
                    );
                }
                _ => {
                    let _ = writeln!(
                        out,
                        "  {label:<36} CPU: no floor and stock rows in this section to compare with"
                    );
                }
            }
            let ok = s.lost <= 0;
            all_met &= ok;
            let _ = writeln!(
                out,
                "  {label:<36} lines lost {}, target 0 at {flood_desc} ({:.0} flows/s reached): {}",
                s.lost,
                s.flooded.flood_rate(),
                verdict(ok)
            );
            let ok = mib(s.hwm_kib) < RSS_LIMIT_MIB;
            all_met &= ok;
            let _ = writeln!(
                out,
                "  {label:<36} peak RSS {:.1} MiB, target < {RSS_LIMIT_MIB:.0} MiB: {}",
                mib(s.hwm_kib),
                verdict(ok)
            );
        }
    }
    (out, all_met)
}

fn phase_line(what: &str, p: &Phase, ticks: u64) -> String {
    format!(
        "    {what}: sent {} in {:.2} s ({:.0}/s, {} errors), {} passed the NAT; \
         lines start={} end={} ident={} other={}; handled {} events; \
         CPU {:.1} ms ({:.2} us/ev) all threads, {:.1} ms main thread, utime {:.2} s, stime {:.2} s; \
         table empty {:.1} s after the generator; NEW lag {}; machine busy {:.0}%\n",
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
        opt(p.new_lag, 2),
        p.machine_busy * 100.0,
    )
}

/// Every run, for the results file.
pub fn details(results: &[RowResult], ticks: u64) -> String {
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
    out
}
