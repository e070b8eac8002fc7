//! One row: start ulogd with the row's stack, then two phases of generated
//! flows from the client, each followed by a wait until every conntrack
//! entry is gone and the sink is quiet:
//!
//! - steady: flows paced evenly at a set rate that every output keeps up
//!   with; ulogd's CPU time per event is read here, so that no row's figure
//!   is skewed by a backlog (a stalled ulogd reads many events per wakeup
//!   and looks cheaper per event);
//! - flood: as fast as one core sends; lines lost, "losing events" and the
//!   peak RSS are read here, and ulogd's CPU time per event again (a
//!   backlogged ulogd's figure: what the outputs cost when events come in
//!   bulk).
//!
//! In both phases the MASQLOG writer thread's context switches are read
//! too (its wake-ups). Then ulogd stops and the lines are counted.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use masqlog_lab::process;
use masqlog_lab::topology::{CLIENT_V4, SERVER_V4};
use masqlog_lab::ulogd::{LOSING_EVENTS, StatsLine, parse_stats};
use masqlog_lab::{Lab, Role, Signal, TempCluster, wait};

use crate::daemons::{Receiver, Ulogd};
use crate::measure::{self, Cpu, Switches};
use crate::pgsink::PgSink;
use crate::rows::{self, ConfCtx, Dest, Output, Row, Sink};
use crate::sink::{Counts, Tail};

/// Packets per sendmmsg call of the generator.
const BATCH: &str = "64";

/// Below this many entries above the phase's start, the drain lists the
/// router's table to see whether any generated flow is left.
const FEW_ENTRIES: u64 = 64;

/// Lines a buffered file (LOGEMU, JSON: 4 KiB of stdio buffer) may hold
/// back until ulogd stops.
const BUFFERED_LINES: u64 = 128;

/// The name of MASQLOG's writer thread (/proc/PID/task/TID/comm).
pub const WRITER_THREAD: &str = "masqlog-writer";

/// The router's UDP and SYN_SENT timeouts: entries expire this long after
/// their packet.
pub const FLOW_TIMEOUT: Duration = Duration::from_secs(1);

/// Source ports of generated flows: 1024 .. 65535.
pub const SPORT_MIN: u32 = 1024;
pub const SPORT_MAX: u32 = 65535;

/// How fast the generator sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rate {
    /// As fast as one core allows.
    Max,
    /// Bursts of 64 packets (one sendmmsg call) spaced evenly to reach the
    /// rate: ulogd wakes about once per burst in every row, so the floor
    /// subtracts the same wakeup costs from each (one packet at a time,
    /// ulogd sleeps between events, and the wakeups, costly and noisy in a
    /// VM, swamp what the outputs cost).
    PerSec(u64),
}

impl Rate {
    pub fn describe(self) -> String {
        match self {
            Rate::Max => "max (as fast as one core sends)".into(),
            Rate::PerSec(r) => format!("{r} flows/s"),
        }
    }
}

/// What every row shares.
pub struct Env<'a> {
    pub lab: &'a Lab,
    pub ctx: ConfCtx,
    pub flowgen: PathBuf,
    pub local: Receiver,
    pub remote: Receiver,
    /// The RELP receiver, or why it did not start (then only the RELP
    /// rows fail).
    pub relp: std::result::Result<Receiver, String>,
    /// Flows and rate of the steady phase.
    pub steady_flows: u64,
    pub steady_rate: Rate,
    /// Flows of the flood phase (0: no flood).
    pub flood_flows: u64,
    /// The next unused destination port (each row's flows are new tuples).
    pub next_dport: u32,
    /// Rows run so far (for file names).
    pub seq: u32,
    /// How long to wait for every DESTROY event and line of a phase.
    pub drain_limit: Duration,
    /// Prefix for ulogd's command line (a profiler), normally empty.
    pub ulogd_prefix: Vec<String>,
    /// How long ulogd may take to start.
    pub ready_limit: Duration,
    /// `--perf`: record ulogd with `perf record` into this file during the
    /// steady phase.
    pub perf_out: Option<PathBuf>,
    /// The PostgreSQL cluster of the `postgresql://` rows, started for the
    /// first of them.
    pub pg: Option<PgSink>,
}

/// When `perf record` starts after the generator, and for how long.
const PERF_DELAY: Duration = Duration::from_secs(1);
pub const PERF_SECS: u64 = 4;

/// What the generator reported.
#[derive(Clone, Copy, Debug, Default)]
pub struct GenReport {
    pub sent: u64,
    pub secs: f64,
    pub errors: u64,
}

impl GenReport {
    pub fn rate(&self) -> f64 {
        if self.secs > 0.0 {
            self.sent as f64 / self.secs
        } else {
            0.0
        }
    }
}

/// One phase of a row.
#[derive(Clone, Debug, Default)]
pub struct Phase {
    pub generator: GenReport,
    /// Flows that passed the NAT (packets that reached the server).
    pub flows: u64,
    /// Lines that arrived during the phase (a buffered file's last lines
    /// may only come in the next phase or at stop).
    pub lines: Counts,
    /// Events handed to the output: NOOP's and MASQLOG's own counts; for
    /// the stock outputs, lines (one per event).
    pub handled: u64,
    pub cpu: Cpu,
    /// MASQLOG's writer thread's context switches during the phase (None:
    /// no such thread).
    pub writer: Option<Switches>,
    /// Batches MASQLOG sent during the phase, when its statistics count
    /// them (`batches=`).
    pub batches: Option<u64>,
    /// Seconds from the generator's start until the phase was measured.
    pub secs: f64,
    /// Seconds from the generator's end until the last start line arrived
    /// (None: the sink is a buffered file, or not every start line came).
    pub new_lag: Option<f64>,
    /// Seconds from the generator's end until the router's table was empty.
    pub drain_secs: f64,
    pub drained: bool,
    /// Share of the machine's CPU (all cores) busy during the phase, 0..1.
    pub machine_busy: f64,
    /// The database backends' CPU time during the phase (a PostgreSQL
    /// row), ns: work done for the row outside ulogd.
    pub backend_ns: Option<u64>,
}

impl Phase {
    /// ulogd's CPU time (all threads) per event it handled, microseconds.
    pub fn cpu_us(&self) -> Option<f64> {
        (self.handled > 0).then(|| self.cpu.all_ns as f64 / self.handled as f64 / 1000.0)
    }

    /// The same for ulogd's main thread.
    pub fn main_us(&self) -> Option<f64> {
        (self.handled > 0).then(|| self.cpu.main_ns as f64 / self.handled as f64 / 1000.0)
    }

    /// The database backends' CPU time per event handled, microseconds.
    pub fn backend_us(&self) -> Option<f64> {
        let ns = self.backend_ns?;
        (self.handled > 0).then(|| ns as f64 / self.handled as f64 / 1000.0)
    }

    /// The writer thread's wake-ups per 1000 events handled.
    pub fn wakeups_per_1000(&self) -> Option<f64> {
        let w = self.writer?;
        (self.handled > 0).then(|| w.total() as f64 * 1000.0 / self.handled as f64)
    }

    /// Events handled per wake-up of the writer thread.
    pub fn events_per_wakeup(&self) -> Option<f64> {
        let w = self.writer?;
        (w.total() > 0).then(|| self.handled as f64 / w.total() as f64)
    }
}

/// The measurements of one run of one row.
#[derive(Clone, Debug)]
pub struct RowResult {
    pub row: Row,
    pub steady: Phase,
    pub flood: Option<Phase>,
    /// Every line of the row, counted after ulogd stopped.
    pub counts: Counts,
    /// Events NOOP saw in the whole row (the floor has no lines).
    pub noop_events: Option<u64>,
    /// "losing events" messages in ulogd's log.
    pub losing: usize,
    /// ulogd's peak RSS (VmHWM) at the end, KiB.
    pub hwm_kib: u64,
    /// MASQLOG's final statistics line.
    pub masq: Option<StatsLine>,
    /// MASQLOG's `flush_delay_ms` in the row's config.
    pub flush_delay_ms: Option<String>,
    pub wall_secs: f64,
    pub notes: Vec<String>,
}

impl RowResult {
    /// Flows of both phases.
    pub fn flows(&self) -> u64 {
        self.steady.flows + self.flood.as_ref().map_or(0, |f| f.flows)
    }

    /// NEW and DESTROY events the kernel made for the generated flows.
    pub fn expected(&self) -> u64 {
        2 * self.flows()
    }

    /// Start and end lines that never arrived, both phases (for the floor:
    /// events NOOP never saw).
    pub fn lost(&self) -> i64 {
        let got = match self.noop_events {
            Some(n) => n,
            None => self.counts.flow_lines(),
        };
        self.expected() as i64 - got as i64
    }

    /// The steady phase's CPU time per event: the table's figure.
    pub fn cpu_us(&self) -> Option<f64> {
        self.steady.cpu_us()
    }

    /// The flood's generator rate (the steady one without a flood).
    pub fn flood_rate(&self) -> f64 {
        self.flood
            .as_ref()
            .map_or(self.steady.generator.rate(), |f| f.generator.rate())
    }
}

/// A row that could not be run (ulogd refused its config, a receiver is
/// missing, ...): the other rows go on.
#[derive(Clone, Debug)]
pub struct RowError {
    pub row: Row,
    /// The error with its causes, one a line.
    pub error: String,
}

fn file_name(row: &Row, seq: u32) -> String {
    let key: String = row
        .key()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    format!("r{seq:02}-{key}")
}

/// The rows of the masqlog table by kind, as the lines of a file are
/// counted.
fn count_rows(c: &TempCluster) -> Result<Counts> {
    let out = c.psql(
        "masqlog",
        "SELECT count(*) FILTER (WHERE event = 'start'), count(*) FILTER (WHERE event = 'end'), \
         count(*) FILTER (WHERE event = 'ident'), \
         count(*) FILTER (WHERE event NOT IN ('start', 'end', 'ident')) FROM masqlog.flow_log",
    )?;
    let n: Vec<u64> = out
        .trim()
        .split('|')
        .map(|v| v.parse())
        .collect::<Result<_, _>>()
        .with_context(|| format!("counting the rows: {out:?}"))?;
    let [start, end, ident, other] = n[..] else {
        bail!("counting the rows: {out:?}");
    };
    Ok(Counts {
        start,
        end,
        ident,
        other,
    })
}

/// Waits until the router's conntrack table is empty (entries of an earlier
/// row or the warm-up expired), or holds at most 2 entries that do not go
/// away; at most `limit`. Returns the count.
pub fn wait_table_empty(lab: &Lab, limit: Duration) -> Result<u64> {
    let t0 = Instant::now();
    let mut last = measure::conntrack_count(lab)?;
    let mut since = Instant::now();
    while last > 0 && t0.elapsed() < limit {
        thread::sleep(Duration::from_millis(250));
        lab.reap_expired()?;
        let now = measure::conntrack_count(lab)?;
        if now != last {
            last = now;
            since = Instant::now();
        } else if last <= 2 && since.elapsed() >= Duration::from_secs(3) {
            break;
        }
    }
    Ok(last)
}

/// Runs the generator in the client namespace.
pub fn generate(
    lab: &Lab,
    flowgen: &Path,
    proto: rows::Proto,
    flows: u64,
    rate: Rate,
    dport_min: u32,
) -> Result<GenReport> {
    let fg = flowgen.to_string_lossy().into_owned();
    let flows_s = flows.to_string();
    let rate_s = match rate {
        Rate::Max => "0".to_string(),
        Rate::PerSec(r) => r.to_string(),
    };
    let dport_s = dport_min.to_string();
    let (smin, smax) = (SPORT_MIN.to_string(), SPORT_MAX.to_string());
    let (src, dst) = (CLIENT_V4.to_string(), SERVER_V4.to_string());
    let argv = [
        fg.as_str(),
        "send",
        "--proto",
        proto.name(),
        "--src",
        &src,
        "--dst",
        &dst,
        "--flows",
        &flows_s,
        "--rate",
        &rate_s,
        "--batch",
        BATCH,
        "--sport-min",
        &smin,
        "--sport-max",
        &smax,
        "--dport-min",
        &dport_s,
    ];
    let limit = match rate {
        Rate::Max => Duration::from_secs(120 + flows / 1000),
        Rate::PerSec(r) => Duration::from_secs(120 + flows / r.max(1)),
    };
    let ns = lab.ns(Role::Client);
    let out = process::run_with(&argv, Some(&ns), None, limit)?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!(
            "flowgen failed ({}): {}{}",
            process::describe_status(out.status),
            stdout,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let mut g = GenReport::default();
    for tok in stdout.split_whitespace() {
        match tok.split_once('=') {
            Some(("sent", v)) => g.sent = v.parse()?,
            Some(("secs", v)) => g.secs = v.parse()?,
            Some(("errors", v)) => g.errors = v.parse()?,
            _ => {}
        }
    }
    if g.sent == 0 && flows > 0 {
        bail!("flowgen reported nothing: {stdout}");
    }
    Ok(g)
}

/// What the output counted itself: events (NOOP and MASQLOG) and batches
/// (MASQLOG, when its statistics have `batches=`).
#[derive(Clone, Copy, Debug, Default)]
struct Tally {
    events: u64,
    batches: Option<u64>,
}

/// The counts the output keeps itself, asked for with SIGUSR1 (NOOP:
/// "NOOP[noop1] events=N"; MASQLOG: its statistics line's `events=` and
/// `batches=`).
fn ask_tally(ulogd: &mut Ulogd, output: Output) -> Result<Option<Tally>> {
    let count = |log: &str| -> Vec<Tally> {
        match output {
            Output::Noop => noop_counts(log)
                .into_iter()
                .map(|events| Tally {
                    events,
                    batches: None,
                })
                .collect(),
            Output::Masqlog { .. } => parse_stats(log)
                .into_iter()
                .filter(|s| s.instance == "masq1" && s.what == "stats")
                .filter_map(|s| {
                    Some(Tally {
                        events: s.all.get("events").copied()?,
                        batches: s.all.get("batches").copied(),
                    })
                })
                .collect(),
            _ => Vec::new(),
        }
    };
    if !(output.is_floor() || output.is_masqlog()) {
        return Ok(None);
    }
    let before = count(&ulogd.log()).len();
    ulogd.signal(Signal::Usr1)?;
    let got = wait::poll(
        "the output's event count after SIGUSR1",
        Duration::from_secs(20),
        || {
            let all = count(&ulogd.log());
            Ok((all.len() > before).then(|| all.last().copied()).flatten())
        },
    )?;
    Ok(Some(got))
}

impl Env<'_> {
    /// Destination ports the next `flows` flows need; reserves them.
    fn take_dports(&mut self, flows: u64) -> Result<u32> {
        let per = u64::from(SPORT_MAX - SPORT_MIN + 1);
        let need = flows.div_ceil(per).max(1) as u32;
        let first = self.next_dport;
        if first + need > 65536 {
            bail!("out of destination ports: fewer flows or rows per run");
        }
        self.next_dport += need;
        Ok(first)
    }

    /// A few flows without ulogd, so that neighbour resolution and the
    /// kernel's first-use costs are not in the first row.
    pub fn warm_up(&mut self) -> Result<()> {
        for proto in [rows::Proto::Udp, rows::Proto::Tcp] {
            let d = self.take_dports(256)?;
            generate(self.lab, &self.flowgen, proto, 256, Rate::PerSec(5000), d)?;
        }
        Ok(())
    }

    /// One phase: generate, drain, measure.
    #[allow(clippy::too_many_arguments)]
    fn phase(
        &mut self,
        row: &Row,
        ulogd: &mut Ulogd,
        tail: &mut Option<Tail>,
        sink: &Sink,
        flows: u64,
        rate: Rate,
        tally_before: &mut Tally,
    ) -> Result<Phase> {
        let proto = row.proto.name();
        let ct0 = measure::conntrack_count(self.lab)?;
        let srv0 = measure::server_packets(self.lab, proto)?;
        let pid = ulogd.pid();
        let lines0 = tail.as_ref().map(|t| t.counts).unwrap_or_default();
        let writer_tid = measure::thread_named(pid, WRITER_THREAD);
        let sw0 = writer_tid.and_then(|t| measure::switches(pid, t).ok());
        let cpu0 = measure::cpu(pid)?;
        let pg = self.pg.as_ref().filter(|_| *sink == Sink::Postgres);
        let backend0 = pg.map(PgSink::backend_ns);
        let m0 = measure::machine_jiffies();
        let t0 = Instant::now();

        let dport = self.take_dports(flows)?;
        let perf = match (&self.perf_out, rate) {
            (Some(out), Rate::PerSec(_)) => Some(spawn_perf(pid, out)),
            _ => None,
        };
        let generator = generate(self.lab, &self.flowgen, row.proto, flows, rate, dport)?;
        let gen_end = Instant::now();
        if let Some(p) = perf {
            p.join()
                .map_err(|_| anyhow!("the perf thread panicked"))?
                .context("perf record")?;
        }

        // Drain: every entry gone from the router's table, the sink quiet.
        let mut last_start_at = gen_end;
        let mut last_change = Instant::now();
        let mut ct_drained_at: Option<Instant> = None;
        let mut next_ct = Instant::now();
        // Expired entries are removed by the kernel's garbage collector,
        // whose interval adapts to every namespace's entries (seen: 2 to 40
        // s here, with other tests' long-lived entries on the machine).
        // Listing the table removes the expired ones at once (as the lab's
        // tests do), so the DESTROY events come a fixed time after the
        // flows; they still come in bursts, as from the collector.
        let mut next_reap = gen_end + FLOW_TIMEOUT + Duration::from_millis(500);
        let mut flows_seen = 0;
        let drained = loop {
            if let Some(t) = tail.as_mut() {
                let before = t.counts.start;
                if t.poll().context("reading the sink")? {
                    last_change = Instant::now();
                }
                if t.counts.start > before {
                    last_start_at = Instant::now();
                }
            }
            if !ulogd.is_running() {
                bail!(
                    "ulogd exited during the row; its log ends with:\n{}",
                    process::tail(&format!("{}{}", ulogd.log(), ulogd.output()), 30)
                );
            }
            if Instant::now() >= next_reap {
                next_reap = Instant::now() + Duration::from_secs(1);
                self.lab.reap_expired()?;
            }
            if Instant::now() >= next_ct {
                next_ct = Instant::now() + Duration::from_millis(400);
                flows_seen = measure::server_packets(self.lab, proto)? - srv0;
                // The total is cheap to read; the filtered listing only
                // when few entries are left.
                let empty = measure::conntrack_count(self.lab)? <= ct0 + FEW_ENTRIES
                    && measure::flow_entries(self.lab, proto)? == 0;
                if empty {
                    ct_drained_at.get_or_insert_with(Instant::now);
                } else {
                    ct_drained_at = None;
                }
            }
            if let Some(at) = ct_drained_at {
                let got = tail
                    .as_ref()
                    .map_or(0, |t| t.counts.flow_lines() - lines0.flow_lines());
                let complete = match sink {
                    // every DESTROY event delivered: NOOP is done at once
                    Sink::Nothing => at.elapsed() >= Duration::from_millis(300),
                    // LOGEMU and JSON write through a stdio buffer
                    Sink::File { buffered: true, .. } => got + BUFFERED_LINES >= 2 * flows_seen,
                    _ => got >= 2 * flows_seen,
                };
                let quiet = last_change.elapsed() >= Duration::from_millis(1500)
                    && at.elapsed() >= Duration::from_millis(1000);
                if complete || quiet {
                    break true;
                }
            }
            if gen_end.elapsed() >= self.drain_limit {
                break false;
            }
            thread::sleep(Duration::from_millis(100));
        };
        let drain_secs = ct_drained_at
            .map(|t| t.duration_since(gen_end).as_secs_f64())
            .unwrap_or_else(|| gen_end.elapsed().as_secs_f64());
        let cpu1 = measure::cpu(pid)?;
        let backend_ns = backend0.map(|b0| {
            self.pg
                .as_ref()
                .map_or(0, PgSink::backend_ns)
                .saturating_sub(b0)
        });
        let sw1 = writer_tid.and_then(|t| measure::switches(pid, t).ok());
        let m1 = measure::machine_jiffies();
        let secs = t0.elapsed().as_secs_f64();
        let flows = measure::server_packets(self.lab, proto)? - srv0;
        let lines = tail
            .as_ref()
            .map(|t| t.counts.minus(&lines0))
            .unwrap_or_default();
        let (handled, batches) = match ask_tally(ulogd, row.output)? {
            Some(now) => {
                let h = now.events.saturating_sub(tally_before.events);
                let b = match (now.batches, tally_before.batches) {
                    (Some(n), Some(b)) => Some(n.saturating_sub(b)),
                    (Some(n), None) => Some(n),
                    _ => None,
                };
                *tally_before = now;
                (h, b)
            }
            None => (lines.total(), None),
        };
        let new_lag = match sink {
            Sink::Nothing | Sink::File { buffered: true, .. } => None,
            _ if lines.start >= flows && flows > 0 => {
                Some(last_start_at.duration_since(gen_end).as_secs_f64())
            }
            _ => None,
        };
        let writer = match (sw0, sw1) {
            (Some(a), Some(b)) => Some(b.since(&a)),
            _ => None,
        };
        let (busy, total) = (m1.0.saturating_sub(m0.0), m1.1.saturating_sub(m0.1));
        Ok(Phase {
            generator,
            flows,
            lines,
            handled,
            cpu: cpu1.since(&cpu0),
            writer,
            batches,
            secs,
            new_lag,
            drain_secs,
            drained,
            machine_busy: if total > 0 {
                busy as f64 / total as f64
            } else {
                0.0
            },
            backend_ns,
        })
    }

    /// Runs one row once: the steady phase, and the flood when `flood`.
    pub fn run_row(&mut self, row: &Row, flood: bool) -> Result<RowResult> {
        let t_row = Instant::now();
        self.seq += 1;
        let name = file_name(row, self.seq);
        if matches!(
            row.output,
            Output::Masqlog {
                dest: Dest::Postgres,
                ..
            }
        ) && self.pg.is_none()
        {
            let pg = PgSink::start()?;
            self.ctx.pg_url = Some(pg.url.clone());
            self.pg = Some(pg);
        }
        let rendered = rows::render(row, &self.ctx, self.lab.dir(), &name)?;
        let mut notes = Vec::new();

        let left = wait_table_empty(self.lab, Duration::from_secs(90))?;
        if left > 0 {
            notes.push(format!("{left} conntrack entries left before the row"));
        }
        let mut tail = match &rendered.sink {
            Sink::Nothing => None,
            Sink::File { path, .. } => {
                // A file of an earlier run of the row would be appended to.
                let _ = std::fs::remove_file(path);
                Some(Tail::from_end(path))
            }
            Sink::Local => {
                self.local.check_running()?;
                self.local.truncate()?;
                Some(Tail::from_end(&self.local.file))
            }
            Sink::Remote => {
                self.remote.check_running()?;
                self.remote.truncate()?;
                Some(Tail::from_end(&self.remote.file))
            }
            Sink::Store { dir } => {
                // A store of an earlier run of the row would be added to.
                let _ = std::fs::remove_dir_all(dir);
                Some(Tail::live_segment(dir))
            }
            Sink::Postgres => {
                let pg = self.pg.as_ref().context("no PostgreSQL cluster")?;
                pg.psql("TRUNCATE masqlog.flow_log, masqlog.seal_ledger")?;
                let c = Arc::clone(&pg.cluster);
                Some(Tail::query(move || {
                    count_rows(&c).map_err(|e| std::io::Error::other(format!("{e:#}")))
                }))
            }
            Sink::Relp => {
                let relp = self
                    .relp
                    .as_mut()
                    .map_err(|e| anyhow!("no RELP receiver: {e}"))?;
                relp.check_running()?;
                relp.truncate()?;
                Some(Tail::from_end(&relp.file))
            }
        };
        let devlog = self
            .local
            .socket
            .clone()
            .ok_or_else(|| anyhow!("the local receiver has no socket"))?;
        let mut ulogd = Ulogd::start(
            self.lab,
            &name,
            &rendered.conf,
            &rendered.logfile,
            &devlog,
            &self.ulogd_prefix,
            self.ready_limit,
        )?;
        // Let the plugins' threads and connections settle.
        thread::sleep(Duration::from_millis(300));

        let mut handled = Tally::default();
        let steady = self.phase(
            row,
            &mut ulogd,
            &mut tail,
            &rendered.sink,
            self.steady_flows,
            self.steady_rate,
            &mut handled,
        )?;
        let flood = if flood && self.flood_flows > 0 {
            Some(self.phase(
                row,
                &mut ulogd,
                &mut tail,
                &rendered.sink,
                self.flood_flows,
                Rate::Max,
                &mut handled,
            )?)
        } else {
            None
        };
        for (what, p) in [("steady", Some(&steady)), ("flood", flood.as_ref())] {
            let Some(p) = p else { continue };
            if !p.drained {
                notes.push(format!(
                    "{what}: not drained after {:.0} s (router table or sink still busy)",
                    self.drain_limit.as_secs_f64()
                ));
            }
            if p.generator.errors > 0 {
                notes.push(format!(
                    "{what}: generator had {} send errors",
                    p.generator.errors
                ));
            }
        }
        if let Some(us) = steady.backend_us() {
            notes.push(format!(
                "the database backend's CPU, outside ulogd's: {us:.2} us/ev steady{}",
                flood
                    .as_ref()
                    .and_then(Phase::backend_us)
                    .map_or(String::new(), |f| format!(", {f:.2} us/ev flood"))
            ));
        }
        let hwm_kib = measure::vm_hwm_kib(ulogd.pid())?;

        let status = ulogd.stop(Duration::from_secs(30))?;
        if !status.success() {
            notes.push(format!(
                "ulogd ended with {}",
                process::describe_status(status)
            ));
        }
        // The receiver writes what it still has (and LOGEMU/JSON flushed
        // their buffers at stop).
        if let Some(t) = tail.as_mut() {
            let mut quiet_since = Instant::now();
            let t0 = Instant::now();
            while quiet_since.elapsed() < Duration::from_millis(800)
                && t0.elapsed() < Duration::from_secs(30)
            {
                if t.poll()? {
                    quiet_since = Instant::now();
                }
                thread::sleep(Duration::from_millis(100));
            }
        }
        let counts = tail.as_ref().map(|t| t.counts).unwrap_or_default();
        let log = ulogd.log();
        let losing = log.matches(LOSING_EVENTS).count();
        let masq = parse_stats(&log)
            .into_iter()
            .rfind(|s| s.instance == "masq1" && s.what == "stopped");
        let noop_events = if row.output.is_floor() {
            let n = noop_counts(&log).last().copied();
            if n.is_none() {
                notes.push("NOOP logged no count".into());
            }
            Some(n.unwrap_or(0))
        } else {
            None
        };
        if row.output.is_masqlog() && masq.is_none() {
            notes.push("MASQLOG logged no final statistics".into());
        }
        if let Some(s) = &masq
            && s.dropped > 0
        {
            notes.push(format!("MASQLOG dropped {} records", s.dropped));
        }
        if let Sink::File { path, .. } = &rendered.sink {
            let _ = std::fs::remove_file(path);
        }
        Ok(RowResult {
            row: row.clone(),
            steady,
            flood,
            counts,
            noop_events,
            losing,
            hwm_kib,
            masq,
            flush_delay_ms: row
                .output
                .is_masqlog()
                .then(|| rendered.conf.get("masq1", "flush_delay_ms"))
                .flatten(),
            wall_secs: t_row.elapsed().as_secs_f64(),
            notes,
        })
    }
}

/// `perf record -e cpu-clock -g` on `pid` (all threads), PERF_DELAY after
/// now, for PERF_SECS, in a thread. cpu-clock: this machine's perf has no
/// hardware counters.
fn spawn_perf(pid: u32, out: &Path) -> thread::JoinHandle<Result<()>> {
    let out = out.to_path_buf();
    thread::spawn(move || {
        thread::sleep(PERF_DELAY);
        let o = std::process::Command::new("perf")
            .args(["record", "-q", "-e", "cpu-clock", "-g", "-p"])
            .arg(pid.to_string())
            .arg("-o")
            .arg(&out)
            .args(["--", "sleep", &PERF_SECS.to_string()])
            .stdin(std::process::Stdio::null())
            .output()
            .context("running perf")?;
        if !o.status.success() {
            bail!(
                "perf record failed: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            );
        }
        Ok(())
    })
}

/// The counts NOOP logged, oldest first: "NOOP[id] events=N".
fn noop_counts(log: &str) -> Vec<u64> {
    log.match_indices("NOOP[")
        .filter_map(|(at, _)| {
            let line = log[at..].split('\n').next()?;
            let (_, n) = line.split_once("] events=")?;
            n.trim().parse().ok()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn noop_counts_are_read_in_order() {
        let log = "x <5> noop.c:120 NOOP[noop1] events=5\nx <5> noop.c:120 NOOP[noop1] events=12\n";
        assert_eq!(noop_counts(log), vec![5, 12]);
        assert!(noop_counts("MASQLOG[m] stopped: events=3\n").is_empty());
    }
}
