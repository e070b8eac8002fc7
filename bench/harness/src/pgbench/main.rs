//! masqlog-pgbench: the PostgreSQL destination under load (never a test).
//!
//! Loads generated flows (a start and an end record each) through the
//! plugin's own writer and its COPY code into a throwaway PostgreSQL 15
//! cluster, then the same flows through the `file:` destination, and
//! prints rows/s and flows/s per writer, the writer thread's CPU per flow
//! for both, the database backend's CPU per flow, the table and index size
//! per million rows, and the latency of `lookup --db` (the rows read by
//! the index and answered by the lookup's own code) over a few hundred
//! reports. Targets are printed beside the figures.
//!
//! `masqlog-pgbench --flows N` (default 1,000,000). Needs root (the
//! cluster runs as an unprivileged user the lab creates).

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;
use masqlog::sink::{Writer, drops::DropSource};
use masqlog_command::db;
use masqlog_command::lookup::{self, AbuseReport, NoProgress, ScanOptions};
use masqlog_core::config::{Config, Destination, PgTarget, SealConfig, SealMode};
use masqlog_core::record::{
    Counters, Endpoint, Event, FlowRecord, NatKind, Proto, Remote, Timestamp,
};
use masqlog_lab::TempCluster;

#[derive(Parser, Debug)]
#[command(about = "Load generated flows into PostgreSQL through masqlog's destination")]
struct Args {
    /// Flows to load (two rows each).
    #[arg(long, default_value_t = 1_000_000)]
    flows: u64,
    /// Lookups to time.
    #[arg(long, default_value_t = 300)]
    lookups: u64,
}

struct NoWake;
impl masqlog::sink::Waker for NoWake {
    fn wake(&self) {}
}

/// Microseconds between two flows' starts.
const STEP_US: i64 = 10_000;
const ADDRS: u64 = 200;

fn masq_of(i: u64) -> Endpoint {
    Endpoint {
        ip: IpAddr::V4(Ipv4Addr::new(198, 51, 100, (i % ADDRS) as u8)),
        port: Some(1024 + ((i / ADDRS) % 64_000) as u16),
    }
}

fn flow(i: u64, t0: i64) -> [FlowRecord; 2] {
    let start_us = t0 * 1_000_000 + i as i64 * STEP_US;
    let ts = |us: i64| Timestamp::new(us.div_euclid(1_000_000), us.rem_euclid(1_000_000) as u32);
    let start = FlowRecord {
        event: Event::Start,
        nat: NatKind::Snat,
        proto: Proto::Tcp,
        id: Some(i as u32),
        client: Endpoint {
            ip: IpAddr::V4(Ipv4Addr::from(0x0a00_0000 | (i as u32 & 0xffff))),
            port: Some(30_000 + (i % 30_000) as u16),
        },
        masq: masq_of(i),
        remote: Remote::Shown(Endpoint {
            ip: IpAddr::V4(Ipv4Addr::new(203, 0, 113, (i % 250) as u8)),
            port: Some(443),
        }),
        start: Some(ts(start_us)),
        end: None,
        out: None,
        inbound: None,
        ident: None,
    };
    let mut end = start.clone();
    end.event = Event::End;
    end.end = Some(ts(start_us + 5_000_000));
    end.out = Some(Counters {
        packets: 10,
        bytes: 1200,
    });
    end.inbound = Some(Counters {
        packets: 12,
        bytes: 9000,
    });
    [start, end]
}

fn config(destination: Destination) -> Config {
    Config {
        destination,
        queue_size: 65_536,
        stats_interval: None,
        send_timeout: Duration::from_secs(30),
        retry_interval: Duration::from_millis(200),
        hostname: Some("bench-gw".into()),
        flush_delay: Duration::ZERO,
        spool: None,
        seal: SealConfig {
            mode: SealMode::Off,
            ..Config::default().seal
        },
        ..Config::default()
    }
}

/// CPU time (ns) of this process's threads named `name`.
fn thread_ns(name: &str) -> u64 {
    let mut ns = 0;
    for e in std::fs::read_dir("/proc/self/task")
        .into_iter()
        .flatten()
        .flatten()
    {
        let comm = std::fs::read_to_string(e.path().join("comm")).unwrap_or_default();
        if comm.trim() == name {
            ns += std::fs::read_to_string(e.path().join("schedstat"))
                .ok()
                .and_then(|s| s.split_whitespace().next()?.parse().ok())
                .unwrap_or(0);
        }
    }
    ns
}

/// CPU time (ns) of process `pid` (all threads).
fn process_ns(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/schedstat"))
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

struct Load {
    secs: f64,
    writer_ns: u64,
}

/// Loads `flows` flows through a writer to `dest`; `during` is read just
/// before the writer stops (the database backend's CPU).
fn load(dest: Destination, flows: u64, t0: i64, mut during: impl FnMut()) -> Result<Load> {
    let w = Writer::start(&config(dest), Arc::new(NoWake), DropSource::Process)
        .context("starting the writer")?;
    let before = thread_ns("masqlog-writer");
    let begin = Instant::now();
    for i in 0..flows {
        for rec in flow(i, t0) {
            while !w.submit(rec.clone()) {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        if i % 4096 == 0 {
            while w.stats().waiting > 32_768 {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }
    let want = flows * 2;
    loop {
        let s = w.stats();
        if s.written >= want {
            break;
        }
        if s.dropped > 0 {
            bail!("records dropped: {s:?}; notices: {:?}", w.take_notices());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let secs = begin.elapsed().as_secs_f64();
    let writer_ns = thread_ns("masqlog-writer") - before;
    during();
    let s = w.stop(Duration::from_secs(30));
    if s.dropped > 0 {
        bail!("records dropped at stop: {s:?}");
    }
    Ok(Load { secs, writer_ns })
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

fn main() -> Result<()> {
    let args = Args::parse();
    let c = TempCluster::start().context("starting PostgreSQL")?;
    c.psql("postgres", "CREATE DATABASE masqlog")?;
    let admin = c.superuser_url_with_file("masqlog")?;
    let mut client = db::connect(&admin)?;
    db::init(&mut client, 3)?;
    c.psql(
        "masqlog",
        "CREATE ROLE gw LOGIN PASSWORD 'pw-gw' IN ROLE masqlog_writer",
    )?;
    let pw = c.password_file("gw", "pw-gw")?;
    let url = format!("{}&password_file={}", c.url("gw", "masqlog"), pw.display());
    let n = args.flows;
    // The flows end before now, the latest 5 s after the last start.
    let t0 = Timestamp::now().secs - (n as i64 * STEP_US) / 1_000_000 - 60;
    println!(
        "masqlog-pgbench: {n} flows ({} rows), PostgreSQL 15 on a Unix socket (fsync=off, synchronous_commit=off: the cluster is a throwaway one), flush_delay_ms=0, batches of the writer (256 records), {} cores",
        2 * n,
        std::thread::available_parallelism().map_or(0, |p| p.get())
    );

    // PostgreSQL.
    let mut backend_ns = 0;
    let pg = load(
        Destination::Postgres(PgTarget::parse(&url).context("the URL")?),
        n,
        t0,
        || {
            let pids = c
                .psql(
                    "masqlog",
                    "SELECT pid FROM pg_stat_activity WHERE application_name = 'masqlog' AND usename = 'gw'",
                )
                .unwrap_or_default();
            backend_ns = pids
                .lines()
                .filter_map(|p| p.trim().parse().ok())
                .map(process_ns)
                .sum();
        },
    )?;
    let rows: i64 = c
        .psql("masqlog", "SELECT count(*) FROM masqlog.flow_log")?
        .parse()?;
    if rows != 2 * n as i64 {
        bail!("{rows} rows in the table, {} sent", 2 * n);
    }
    // The file destination, the same flows.
    let dir = tempfile::tempdir()?;
    let file = load(
        Destination::File(dir.path().join("flows.log")),
        n,
        t0,
        || {},
    )?;
    let file_bytes = std::fs::metadata(dir.path().join("flows.log"))?.len();

    let per_flow = |ns: u64| ns as f64 / n as f64 / 1000.0;
    println!("\n== ingest (one writer) ==");
    println!(
        "postgresql: {:.1} s, {:.0} rows/s, {:.0} flows/s   (target >= 100000 flows/s: {})",
        pg.secs,
        2.0 * n as f64 / pg.secs,
        n as f64 / pg.secs,
        if n as f64 / pg.secs >= 100_000.0 {
            "met"
        } else {
            "missed"
        }
    );
    println!(
        "file:       {:.1} s, {:.0} rows/s, {:.0} flows/s",
        file.secs,
        2.0 * n as f64 / file.secs,
        n as f64 / file.secs
    );
    println!("\n== CPU per flow (two records) ==");
    println!(
        "writer thread, postgresql (format + row + COPY client): {:.2} us",
        per_flow(pg.writer_ns)
    );
    println!(
        "writer thread, file (format + write):                  {:.2} us",
        per_flow(file.writer_ns)
    );
    println!(
        "database backend (COPY, the unique key, the indexes):    {:.2} us",
        per_flow(backend_ns)
    );

    // Sizes.
    let sizes = c.psql(
        "masqlog",
        "SELECT sum(pg_relation_size(c.oid)), sum(pg_indexes_size(c.oid)) FROM pg_inherits i \
         JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'masqlog.flow_log'::regclass",
    )?;
    let (table, idx) = sizes.split_once('|').context("sizes")?;
    let (table, idx): (f64, f64) = (table.parse()?, idx.parse()?);
    let per_m = |b: f64| b / (2.0 * n as f64) * 1e6 / f64::from(1 << 20);
    println!("\n== size per million rows ==");
    println!(
        "table {:.0} MiB, indexes {:.0} MiB (the same lines as a file: {:.0} MiB)",
        per_m(table),
        per_m(idx),
        per_m(file_bytes as f64)
    );

    // Lookups, as `lookup --db` runs them.
    c.psql("masqlog", "ANALYZE masqlog.flow_log")?;
    c.psql(
        "masqlog",
        "CREATE ROLE desk LOGIN PASSWORD 'pw-desk' IN ROLE masqlog_reader",
    )?;
    let dpw = c.password_file("desk", "pw-desk")?;
    let desk = format!(
        "{}&password_file={}",
        c.url("desk", "masqlog"),
        dpw.display()
    );
    let mut client = db::connect(&desk)?;
    let mut lat = Vec::new();
    let mut rng = 0x2545_f491_4f6c_dd1d_u64;
    for _ in 0..args.lookups {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let i = rng % n;
        let m = masq_of(i);
        let at = t0 + (i as i64 * STEP_US) / 1_000_000 + 2;
        let q = AbuseReport {
            public_ip: m.ip,
            public_port: m.port.unwrap_or(0),
            at: masqlog_command::when::parse_report_time(
                &format!("@{at}"),
                &Ok(masqlog_command::when::Zone::utc()),
            )?,
            remote: None,
            proto: None,
            slack: lookup::DEFAULT_SLACK_SECS,
            max_age: Some(lookup::DEFAULT_MAX_AGE_SECS),
        };
        let t = Instant::now();
        let inputs = db::lookup_inputs(&mut client, &[&q])?;
        let scan = lookup::scan(
            &[&q],
            &inputs,
            ScanOptions {
                stdin: None,
                progress: &mut NoProgress,
                scan_all: false,
                keys: &[],
            },
        );
        let verdict = lookup::decide(&scan, &q);
        lat.push(t.elapsed().as_secs_f64() * 1000.0);
        if verdict.matches.is_empty() {
            bail!("flow {i} not found by lookup");
        }
    }
    let (p50, p99) = (pct(&mut lat, 0.5), pct(&mut lat, 0.99));
    println!(
        "\n== lookup --db ({} reports, {} rows) ==",
        args.lookups,
        2 * n
    );
    println!(
        "p50 {p50:.2} ms, p99 {p99:.2} ms   (target p99 <= 10 ms at 100 M rows: {} at {} rows)",
        if p99 <= 10.0 { "met" } else { "missed" },
        2 * n
    );
    Ok(())
}
