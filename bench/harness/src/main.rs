//! masqlog-bench: masqlog under load, against stock ulogd outputs, in the
//! namespace lab on the kernel's real NAT.
//!
//! Every row runs stock ulogd in the router with the same NFCT input (the
//! `[ct1]` section of ulogd-conf/masqlog-local.conf) and one output stack;
//! bench/flowgen sends one packet per flow from the client (each a new
//! conntrack entry, masqueraded); the router's short UDP and SYN_SENT
//! timeouts make the DESTROY events follow. For each row the table shows
//! ulogd's CPU time (all threads, and its main thread) per event in both
//! phases and what the output adds above the floor (a no-op output,
//! bench/noop.c), as a ratio to LOGEMU's and SYSLOG's; the flows, the lines
//! that reached the sink, the lines lost, ulogd's "losing events" messages,
//! ulogd's peak RSS and the wake-ups of MASQLOG's writer thread; then the
//! targets, each with its verdict per rate. See bench/README section in the
//! main README.
//!
//! Run it through `bench/run`, which builds everything first.

mod daemons;
mod measure;
mod pgsink;
mod profile;
mod report;
mod rows;
mod runner;
mod sink;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;
use masqlog_core::ulogd_conf::{Substitutions, default_plugin_dir};
use masqlog_lab::rsyslog::REMOTE_PORT;
use masqlog_lab::topology::SERVER_V4;
use masqlog_lab::{Lab, Role};

use crate::daemons::{Receiver, silent_identd};
use crate::rows::{ConfCtx, Output, Proto, Row};
use crate::runner::{Env, Rate, RowError, RowResult};

/// Steady-phase flows, steady rate and flood flows per row, of a full run
/// and of `--quick`.
const FULL_FLOWS: u64 = 20_000;
const QUICK_FLOWS: u64 = 8_000;
const STEADY_RATE: u64 = 20_000;
const FULL_FLOOD: u64 = 100_000;
const QUICK_FLOOD: u64 = 20_000;
/// The RELP receiver's port in the server namespace: below
/// `measure::FIRST_FLOW_PORT`, whose traffic the server's counters drop (the
/// lab's own RELP port, 20514, is above it).
const RELP_PORT: u16 = 2514;
/// Flows and rate of a `--profile` run (ulogd is ~50x slower under
/// callgrind); no flood.
const PROFILE_FLOWS: u64 = 4_000;
const PROFILE_RATE: u64 = 400;
/// Steady flows of a `--perf` run: long enough for perf's 4 s.
const PERF_FLOWS: u64 = 100_000;

#[derive(Parser, Debug)]
#[command(
    name = "masqlog-bench",
    about = "masqlog under load: ulogd's CPU time per flow event, lines lost and peak RSS, \
             masqlog against stock ulogd outputs, in the namespace lab (root)",
    long_about = "masqlog under load. Builds the namespace lab (client -> router with \
                  masquerade -> server), and for each row starts stock ulogd in the router \
                  with the same NFCT input and one output stack (a no-op floor, LOGEMU, SYSLOG, \
                  JSON, MASQLOG in three formats to a local rsyslog, text to a remote one over \
                  TCP and over RELP, text into a file, into the evidence store alone and into \
                  a PostgreSQL cluster the bench starts, whose backend's CPU is noted beside \
                  ulogd's), sends the same new flows from the client (a steady phase at a set rate, then a flood as fast as one core sends), \
                  waits until every conntrack entry has expired, and reports ulogd's CPU time \
                  per event above the floor in both phases, flows, lines, lines lost, \"losing \
                  events\" messages, peak RSS and the wake-ups of MASQLOG's writer thread, then \
                  the targets. The masqlog rows are repeated on TCP flows without and with \
                  IDENT against an identd that never answers. Prints the table and writes it to \
                  bench/results-DATE.txt.\n\n\
                  Example: sudo bench/run --quick\n\n\
                  Exit status: 0 every target met, 1 a target missed, 2 error."
)]
struct Args {
    /// Flows per row in the steady phase, where ulogd's CPU time per event
    /// is measured [default: 20000, 8000 with --quick].
    #[arg(long)]
    flows: Option<u64>,
    /// Flows per second in the steady phase (bursts of 64 packets spaced
    /// evenly), or `max` [default: 20000].
    #[arg(long)]
    rate: Option<String>,
    /// Flows per row in the flood phase, sent as fast as one core allows,
    /// where lines lost and peak RSS are measured; 0 skips it [default:
    /// 100000, 20000 with --quick].
    #[arg(long)]
    flood: Option<u64>,
    /// Fewer flows per row: the whole table in a few minutes.
    #[arg(long)]
    quick: bool,
    /// Runs every row's steady phase N times, in rounds (the flood only in
    /// the first); the table shows the median and the spread of CPU time
    /// per event [default: 3, 1 with --quick].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=9))]
    repeat: Option<u32>,
    /// Only these rows, comma-separated: keys such as `udp:floor`,
    /// `udp:masqlog-text`, `tcp:masqlog-json+ident`, `udp:stock` (the
    /// section's stock outputs), or a section (`udp`, `tcp`). `list` prints
    /// the keys. A CPU ratio needs the section's floor and the stock output
    /// it compares with.
    #[arg(long)]
    rows: Option<String>,
    /// Changes a key of the `[ct1]` (NFCT) section of every row, e.g.
    /// `--ct1 reliable=0` [default: the section of
    /// ulogd-conf/masqlog-local.conf]; repeatable.
    #[arg(long, value_name = "KEY=VALUE")]
    ct1: Vec<String>,
    /// Profiles one row (a key as in --rows) under valgrind's callgrind
    /// instead of running the table; writes bench/target/profile/.
    #[arg(long, value_name = "ROW")]
    profile: Option<String>,
    /// Runs one row's steady phase (a key as in --rows) with `perf record
    /// -e cpu-clock -g` attached to ulogd for 4 s instead of the table;
    /// writes bench/target/profile/ [default flows: 100000 at the steady
    /// rate].
    #[arg(long, value_name = "ROW", conflicts_with = "profile")]
    perf: Option<String>,
    /// Where to write the results [default: bench/results-DATE.txt, or
    /// results-DATE-quick.txt with --quick].
    #[arg(long)]
    out: Option<PathBuf>,
    /// Leaves the lab up at the end (namespaces, daemons, logs) and prints
    /// the script that removes it.
    #[arg(long)]
    keep: bool,
    /// The plugin [default: target/release/libmasqlog.so].
    #[arg(long)]
    plugin: Option<PathBuf>,
    /// The flow generator [default: bench/target/flowgen].
    #[arg(long)]
    flowgen: Option<PathBuf>,
    /// The NOOP output plugin [default: bench/target/ulogd_output_NOOP.so].
    #[arg(long)]
    noop: Option<PathBuf>,
}

/// What the columns mean.
const LEGEND: &str = r#"
Columns (steady phase: flows in bursts of 64 at the set rate; flood: as fast as one core sends)
 CPU table, per phase:
  CPU us/ev      ulogd's CPU time (user+system, all threads) from the generator's start until every
                 line arrived, per event it handled (NOOP's and MASQLOG's own counts; lines for the
                 stock outputs); steady: the median run
  +floor us/ev   that minus the NOOP floor's (same section, same phase): what the output adds
  x LOGEMU       +floor / LOGEMU's +floor (the target of MASQLOG to tcp, relp, a file: <= 0.5)
  x SYSLOG       +floor / SYSLOG's +floor (the target of MASQLOG on unix:/dev/log: <= 1.0)
  main us/ev     ulogd's main thread alone (netlink, every interp); +floor: minus the floor's
  spread         (max - min) / median of the steady CPU per event over the rounds (--repeat)
 Lines table:
  steady flows   flows of the steady phase that passed the NAT (counted at the server)
  flood flows    the same of the flood; flows/s: the generator's rate in the flood
  lines          start and end lines that reached the sink, both phases
  ident          IDENT lines (ident=plain rows)
  lost           2 x flows (NEW + DESTROY) - lines, both phases (floor: events NOOP did not see)
  queue drops    of those, records MASQLOG dropped because its queue (queue_size) was full
                 (its "dropped=" count); the rest never reached ulogd (the kernel dropped them)
  losing         "losing events" messages in ulogd's log
  NEW lag s      flood: seconds from the generator's end until the last start line arrived
                 (- for a buffered file, or when start lines were lost)
  RSS MiB        ulogd's peak resident set (VmHWM) after the flood
  writer         steady phase, MASQLOG's writer thread (masqlog-writer): its context switches
                 (voluntary + involuntary: each one is followed by a wake-up) per 1000 events
                 handled, and events per wake-up
"#;

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("masqlog-bench: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// The repository root (two levels above this crate).
fn repo_root() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let root = here.join("../..");
    root.canonicalize().unwrap_or(root)
}

fn need(path: PathBuf, what: &str) -> Result<PathBuf> {
    if !path.is_file() {
        bail!(
            "{what} not found at {} (bench/run builds it)",
            path.display()
        );
    }
    Ok(path)
}

fn all_row_keys() -> Vec<String> {
    rows::udp_rows()
        .iter()
        .chain(rows::tcp_rows().iter())
        .map(Row::key)
        .collect()
}

fn selected(filter: &Option<Vec<String>>, row: &Row) -> bool {
    let Some(f) = filter else { return true };
    let key = row.key();
    let stock = format!("{}:stock", row.proto.name());
    f.iter().any(|item| {
        item == &key || item == row.proto.name() || (item == &stock && row.output.is_stock())
    })
}

fn find_row(key: &str) -> Result<Row> {
    let mut all = rows::udp_rows();
    all.extend(rows::tcp_rows());
    all.push(Row {
        proto: Proto::Tcp,
        output: Output::Json,
    });
    all.into_iter()
        .find(|r| r.key() == key)
        .ok_or_else(|| anyhow::anyhow!("no row {key}; --rows list prints them"))
}

fn git_describe(root: &Path) -> String {
    let run = |args: &[&str]| {
        std::process::Command::new("git")
            .arg("-C")
            .arg(root)
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let head = run(&["rev-parse", "--short", "HEAD"]).unwrap_or_else(|| "unknown".into());
    let dirty =
        run(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
    format!(
        "{head}{}",
        if dirty {
            " (with uncommitted changes)"
        } else {
            ""
        }
    )
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_else(|| "unknown cpu".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        })
        .map_or("?".into(), |k| format!("{:.0} GiB", k as f64 / 1048576.0));
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let ulogd = std::process::Command::new("ulogd")
        .arg("-V")
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .map(str::to_string)
        })
        .unwrap_or_default();
    format!("{cpu}, {cores} cores, {mem}; kernel {kernel}; {ulogd}")
}

fn run(args: &Args) -> Result<bool> {
    if args.rows.as_deref() == Some("list") {
        for k in all_row_keys() {
            println!("{k}");
        }
        return Ok(true);
    }
    let root = repo_root();
    let bench_target = root.join("bench/target");
    let plugin = need(
        args.plugin
            .clone()
            .unwrap_or_else(|| root.join("target/release/libmasqlog.so")),
        "the plugin (cargo build --release)",
    )?;
    let flowgen = need(
        args.flowgen
            .clone()
            .unwrap_or_else(|| bench_target.join("flowgen")),
        "the flow generator",
    )?;
    let noop = need(
        args.noop
            .clone()
            .unwrap_or_else(|| bench_target.join("ulogd_output_NOOP.so")),
        "the NOOP plugin",
    )?;
    let rate = match args.rate.as_deref() {
        None => Rate::PerSec(STEADY_RATE),
        Some("max" | "0") => Rate::Max,
        Some(r) => Rate::PerSec(
            r.parse()
                .with_context(|| format!("--rate {r}: a number of flows per second, or max"))?,
        ),
    };
    let filter: Option<Vec<String>> = args
        .rows
        .as_ref()
        .map(|s| s.split(',').map(|x| x.trim().to_string()).collect());
    let profile_row = args.profile.as_deref().map(find_row).transpose()?;
    let perf_row = args.perf.as_deref().map(find_row).transpose()?;
    let flows = match (&profile_row, args.flows) {
        (_, Some(n)) => n,
        (Some(_), None) => PROFILE_FLOWS,
        (None, None) if perf_row.is_some() => PERF_FLOWS,
        (None, None) if args.quick => QUICK_FLOWS,
        (None, None) => FULL_FLOWS,
    };
    let rate = match (&profile_row, &args.rate) {
        (Some(_), None) => Rate::PerSec(PROFILE_RATE),
        _ => rate,
    };
    let flood = match (&profile_row, args.flood) {
        (_, Some(n)) => n,
        (Some(_), None) => 0,
        (None, None) if perf_row.is_some() => 0,
        (None, None) if args.quick => QUICK_FLOOD,
        (None, None) => FULL_FLOOD,
    };
    if flows == 0 {
        bail!("--flows must be at least 1");
    }

    let repeat = match (args.repeat, args.quick) {
        (Some(n), _) => n,
        (None, true) => 1,
        (None, false) => 3,
    };
    let started = Instant::now();
    let load_before = measure::loadavg();
    eprintln!("masqlog-bench: building the lab (load average {load_before})");
    let lab = Lab::new()?;
    let installed = masqlog_lab::ulogd::install_plugin(&lab, &plugin)?;
    // Every generated flow is one packet: its entry expires after the UDP
    // timeout (the lab sets it already) or, for a TCP SYN never answered,
    // the SYN_SENT timeout (120 s by default).
    let timeout = runner::FLOW_TIMEOUT.as_secs().to_string();
    for key in [
        "net/netfilter/nf_conntrack_udp_timeout",
        "net/netfilter/nf_conntrack_tcp_timeout_syn_sent",
    ] {
        lab.sysctl(Role::Router, key, &timeout)?;
    }
    // As systemd sets it on Debian (50-default.conf); the kernel's default
    // is 10. The router's local syslog socket gets this queue length.
    lab.sysctl(Role::Router, "net/unix/max_dgram_qlen", "512")?;
    measure::install_server_counters(&lab)?;
    let remote_addr = SocketAddr::new(SERVER_V4.into(), REMOTE_PORT);
    let local = Receiver::local(&lab, "rsyslog-local")?;
    let remote = Receiver::remote(&lab, "rsyslog-remote", remote_addr)?;
    // Without imrelp (Debian's rsyslog-relp) only the RELP rows fail.
    let relp_addr = SocketAddr::new(SERVER_V4.into(), RELP_PORT);
    let relp = Receiver::relp(&lab, "rsyslog-relp", relp_addr).map_err(|e| {
        eprintln!("masqlog-bench: no RELP receiver, the RELP rows will fail: {e:#}");
        format!("{e:#}")
    });

    let subs = Substitutions {
        plugin_dir: default_plugin_dir(),
        masqlog_so: installed.clone(),
        logfile: lab.path("unused.log"),
        syslog_socket: Some("/dev/log".into()),
        remote: Some(remote_addr),
    };
    let mut ct1 = rows::example_ct1(&subs)?;
    for kv in &args.ct1 {
        let Some((k, v)) = kv.split_once('=') else {
            bail!("--ct1 {kv}: KEY=VALUE");
        };
        match ct1.iter_mut().find(|(key, _)| key == k) {
            Some(entry) => entry.1 = v.to_string(),
            None => ct1.push((k.to_string(), v.to_string())),
        }
    }
    let ct1_desc = ct1
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ");
    let ctx = ConfCtx {
        plugin_dir: default_plugin_dir(),
        masqlog_so: installed,
        noop_so: noop,
        remote: remote_addr,
        relp: relp_addr,
        ct1,
        pg_url: None,
    };
    let mut env = Env {
        lab: &lab,
        ctx,
        flowgen: flowgen.clone(),
        local,
        remote,
        relp,
        steady_flows: flows,
        steady_rate: rate,
        flood_flows: flood,
        next_dport: u32::from(measure::FIRST_FLOW_PORT),
        seq: 0,
        drain_limit: Duration::from_secs(180),
        ulogd_prefix: Vec::new(),
        ready_limit: Duration::from_secs(30),
        perf_out: None,
        pg: None,
    };
    env.warm_up()?;
    // The identd that never answers, for the IDENT rows (harmless to the
    // others: nothing asks it).
    let _identd = silent_identd(&lab, &flowgen)?;

    if let Some(row) = perf_row {
        eprintln!(
            "masqlog-bench: perf record on {} for {} s: {flows} flows at {}",
            row.key(),
            runner::PERF_SECS,
            rate.describe()
        );
        let (r, files) = profile::perf(&mut env, &row, &bench_target.join("profile"))?;
        println!(
            "{}: {} flows, {} us/ev ({} us/ev main thread) without perf's overhead removed",
            row.key(),
            r.flows(),
            r.cpu_us().map_or("-".into(), |c| format!("{c:.2}")),
            r.steady.main_us().map_or("-".into(), |c| format!("{c:.2}"))
        );
        for f in files {
            println!("wrote {f}");
        }
        return Ok(true);
    }
    if let Some(row) = profile_row {
        eprintln!(
            "masqlog-bench: profiling {} under callgrind: {flows} flows at {}",
            row.key(),
            rate.describe()
        );
        let (r, files) = profile::run(&mut env, &row, &bench_target.join("profile"))?;
        println!(
            "{}: {} flows, {} start + {} end lines, {} lost",
            row.key(),
            r.flows(),
            r.counts.start,
            r.counts.end,
            r.lost()
        );
        for f in files {
            println!("wrote {f}");
        }
        return Ok(true);
    }

    let planned: Vec<Row> = rows::udp_rows()
        .into_iter()
        .chain(rows::tcp_rows())
        .filter(|r| selected(&filter, r))
        .collect();
    if planned.is_empty() {
        bail!("--rows selects no row; --rows list prints them");
    }
    let mut results: Vec<RowResult> = Vec::new();
    let mut failures: Vec<RowError> = Vec::new();
    let total_rows = planned.len() * repeat as usize;
    let mut done = 0;
    // Section by section (UDP, then TCP), every row of a section once per
    // round; a row that fails is reported and the others go on.
    for proto in [Proto::Udp, Proto::Tcp] {
        let rows: Vec<&Row> = planned.iter().filter(|r| r.proto == proto).collect();
        for round in 1..=repeat {
            for row in &rows {
                done += 1;
                eprint!(
                    "masqlog-bench: [{done}/{total_rows}] {}{} ... ",
                    row.key(),
                    if repeat > 1 {
                        format!(" (round {round})")
                    } else {
                        String::new()
                    }
                );
                match env
                    .run_row(row, round == 1)
                    .with_context(|| format!("row {}", row.key()))
                {
                    Ok(r) => {
                        eprintln!(
                            "{} us/ev steady, {} flood at {:.0}/s; {} flows, {} lines, {} lost; {:.0} s",
                            r.cpu_us().map_or("-".into(), |c| format!("{c:.2}")),
                            r.flood
                                .as_ref()
                                .and_then(|f| f.cpu_us())
                                .map_or("-".into(), |c| format!("{c:.2}")),
                            r.flood_rate(),
                            r.flows(),
                            r.counts.flow_lines(),
                            r.lost(),
                            r.wall_secs
                        );
                        results.push(r);
                    }
                    Err(e) => {
                        let error = format!("{e:?}");
                        eprintln!("failed: {}", report::short_error(&error));
                        failures.push(RowError {
                            row: (*row).clone(),
                            error,
                        });
                    }
                }
            }
        }
    }
    if args.keep {
        let script = lab.keep()?;
        eprintln!(
            "masqlog-bench: the lab stays up in {}; remove it with sh {}",
            lab.dir().display(),
            script.display()
        );
    }
    drop(env);
    drop(lab);

    let summaries = report::summarise(&results);
    let flood_desc = if flood > 0 {
        "the generator's maximum rate".to_string()
    } else {
        rate.describe()
    };
    let table = report::table(&planned, &summaries, &failures, repeat, &rate.describe());
    let (targets, all_met) = report::targets(
        &planned,
        &summaries,
        &failures,
        &rate.describe(),
        &flood_desc,
    );
    let load_after = measure::loadavg();
    let now = jiff::Timestamp::now();
    let date = now.strftime("%Y-%m-%d").to_string();
    let header = format!(
        "masqlog bench, {} UTC\n\
         machine: {}\n\
         masqlog: {}\n\
         per row: steady {flows} flows at {}, flood {flood} flows at max; repeat {}\n\
         NFCT [ct1] of every row: {ct1_desc}\n\
         load average before {load_before}, after {load_after}; whole run {:.0} s\n",
        now.strftime("%Y-%m-%d %H:%M:%S"),
        machine(),
        git_describe(&root),
        rate.describe(),
        repeat,
        started.elapsed().as_secs_f64()
    );
    let legend = LEGEND;
    let text = format!("{header}{table}{targets}{legend}");
    println!("{text}");
    let out = args.out.clone().unwrap_or_else(|| {
        let suffix = if args.quick { "-quick" } else { "" };
        root.join(format!("bench/results-{date}{suffix}.txt"))
    });
    let full = format!(
        "{text}{}",
        report::details(&results, &failures, measure::clock_ticks())
    );
    std::fs::write(&out, full).with_context(|| format!("writing {}", out.display()))?;
    eprintln!("masqlog-bench: wrote {}", out.display());
    Ok(all_met)
}
