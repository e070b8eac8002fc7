//! masqlog-pgbench: the PostgreSQL destination under load (never a test).
//!
//! Loads generated flows (a start and an end record each) through the
//! plugin's own writer and its COPY code into a throwaway PostgreSQL 15
//! cluster, then the same flows through the `file:` destination, and
//! prints rows/s and flows/s per writer, the writer thread's CPU per flow
//! for both, the database backend's CPU per flow, the table and index size
//! per million rows, and the latency of `lookup --db` (the rows read by
//! the index and answered by the lookup's own code) over a few hundred
//! reports on one connection, then `--cold` reports each on a new
//! connection from cold caches (the running cluster, a restarted one, a
//! restarted one with the page cache dropped). Targets are printed beside
//! the figures.
//!
//! `masqlog-pgbench --flows N` (default 1,000,000); `--seal` seals the
//! records as a router with a key does (duplicates then kept out by the
//! ledger of sequence ranges; without it by the unique key on the digest),
//! and then times `verify --db` over the whole table (rows a second, the
//! memory its findings hold).
//!
//! `masqlog-pgbench --bulk --flows N --days D` measures the lookup at row
//! counts the writer would take too long to load: the flows, spread over
//! D days, go through the destination's own row and COPY code in batches
//! of 20,000 with the indexes dropped, which are built afterwards; it says
//! so in its output, prints the table and index size of each daily
//! partition and the size of 100 M rows projected from them, and refuses
//! a load projected beyond `--max-gb` (default 10) on disk.
//!
//! Needs root (the cluster runs as an unprivileged user the lab creates).

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;
use masqlog::sink::{Writer, drops::DropSource};
use masqlog_command::db;
use masqlog_command::lookup::{self, AbuseReport};
use std::os::unix::fs::PermissionsExt;

use masqlog_core::config::{Config, Destination, Format, PgTarget, SealConfig, SealMode};
use masqlog_core::format;
use masqlog_core::record::{
    Counters, Endpoint, Event, FlowRecord, NatKind, Proto, Remote, Timestamp,
};
use masqlog_core::seal::{SealState, VerifyKey};
use masqlog_core::store::StoreConfig;
use masqlog_lab::TempCluster;

#[path = "../pgsink.rs"]
mod pgsink;
use pgsink::PgSink;

#[derive(Parser, Debug)]
#[command(about = "Load generated flows into PostgreSQL through masqlog's destination")]
struct Args {
    /// Flows to load (two rows each).
    #[arg(long, default_value_t = 1_000_000)]
    flows: u64,
    /// Lookups to time.
    #[arg(long, default_value_t = 300)]
    lookups: u64,
    /// Lookups to time on a new connection, three times this many: to the
    /// running cluster, after the cluster was restarted, and after it was
    /// restarted with the kernel's page cache dropped (the connect is not
    /// timed).
    #[arg(long, default_value_t = 20)]
    cold: u64,
    /// Seal the records (a sealing state made for the run).
    #[arg(long)]
    seal: bool,
    /// Load by bulk COPY with the indexes built afterwards, not through
    /// the writer (for lookup figures at large row counts).
    #[arg(long)]
    bulk: bool,
    /// With --bulk: the days the flows are spread over (one partition
    /// each).
    #[arg(long, default_value_t = 4)]
    days: u32,
    /// With --bulk: the most the cluster may take on disk (GB, projected
    /// before loading at 700 bytes a row).
    #[arg(long, default_value_t = 10.0)]
    max_gb: f64,
}

struct NoWake;
impl masqlog::sink::Waker for NoWake {
    fn wake(&self) {}
}

/// Microseconds between two flows' starts (the writer's load; a bulk load
/// spreads its flows over its days).
const STEP_US: i64 = 10_000;
const ADDRS: u64 = 200;

fn masq_of(i: u64) -> Endpoint {
    Endpoint {
        ip: IpAddr::V4(Ipv4Addr::new(198, 51, 100, (i % ADDRS) as u8)),
        port: Some(1024 + ((i / ADDRS) % 64_000) as u16),
    }
}

fn flow(i: u64, t0: i64) -> [FlowRecord; 2] {
    flow_at(i, t0, STEP_US)
}

fn flow_at(i: u64, t0: i64, step_us: i64) -> [FlowRecord; 2] {
    let start_us = t0 * 1_000_000 + i as i64 * step_us;
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

fn config(
    destination: Destination,
    seal: Option<&std::path::Path>,
    store: Option<&std::path::Path>,
) -> Config {
    Config {
        destination,
        store: store.map(|dir| StoreConfig {
            dir: dir.to_path_buf(),
            roll: Duration::from_secs(3600),
            roll_bytes: 1 << 30,
            keep: Duration::from_secs(400 * 86_400),
            max_bytes: 0,
        }),
        queue_size: 65_536,
        stats_interval: None,
        send_timeout: Duration::from_secs(30),
        retry_interval: Duration::from_millis(200),
        hostname: Some("bench-gw".into()),
        flush_delay: Duration::ZERO,
        spool: None,
        seal: match seal {
            Some(state) => SealConfig {
                mode: SealMode::On,
                state: state.to_path_buf(),
                instance: "masq1".into(),
            },
            None => SealConfig {
                mode: SealMode::Off,
                ..Config::default().seal
            },
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

struct Load {
    secs: f64,
    writer_ns: u64,
    /// The store thread's CPU (a run with a store).
    store_ns: u64,
}

/// Loads `flows` flows through a writer to `dest`; `during` is read just
/// before the writer stops (the database backend's CPU).
fn load(
    dest: Destination,
    seal: Option<&std::path::Path>,
    store: Option<&std::path::Path>,
    flows: u64,
    t0: i64,
    mut during: impl FnMut(),
) -> Result<Load> {
    let w = Writer::start(
        &config(dest, seal, store),
        Arc::new(NoWake),
        DropSource::Process,
    )
    .context("starting the writer")?;
    let before = thread_ns("masqlog-writer");
    let store_before = thread_ns("masqlog-store");
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
    // Sealed: the run's chain start record too.
    let want = flows * 2 + u64::from(seal.is_some());
    loop {
        let s = w.stats();
        let stored = s.store.is_none_or(|st| st.written >= want);
        if s.written >= want && stored {
            break;
        }
        if s.dropped > 0 {
            bail!("records dropped: {s:?}; notices: {:?}", w.take_notices());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let secs = begin.elapsed().as_secs_f64();
    let writer_ns = thread_ns("masqlog-writer") - before;
    let store_ns = thread_ns("masqlog-store").saturating_sub(store_before);
    during();
    let s = w.stop(Duration::from_secs(30));
    if s.dropped > 0 {
        bail!("records dropped at stop: {s:?}");
    }
    Ok(Load {
        secs,
        writer_ns,
        store_ns,
    })
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

/// The cluster's SQL sizes of the daily partitions: (name, rows, table
/// bytes, index bytes).
fn partition_sizes(c: &TempCluster) -> Result<Vec<(String, f64, f64, f64)>> {
    let out = c.psql(
        "masqlog",
        "SELECT c.relname, c.reltuples::bigint, pg_relation_size(c.oid), pg_indexes_size(c.oid) \
         FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
         WHERE i.inhparent = 'masqlog.flow_log'::regclass AND c.reltuples > 0 ORDER BY 1",
    )?;
    out.lines()
        .map(|l| {
            let f: Vec<&str> = l.split('|').collect();
            let [name, rows, table, idx] = f[..] else {
                bail!("partition sizes: {l:?}")
            };
            Ok((
                name.to_string(),
                rows.parse()?,
                table.parse()?,
                idx.parse()?,
            ))
        })
        .collect()
}

/// The sealing state of a bench run, in a directory of its own, and its
/// verification key.
fn seal_state(
    dir: &std::path::Path,
    t0: i64,
) -> Result<(std::path::PathBuf, SealState, VerifyKey)> {
    let key = VerifyKey::generate("bench-gw", t0 - 86_400, 86_400)?;
    let state = key.initial_state();
    let path = dir.join("seal.state");
    std::fs::write(&path, state.to_text())?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    Ok((path, state, key))
}

/// This process's resident memory, from /proc (bytes).
fn rss() -> Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .context("no VmRSS in /proc/self/status")?;
    Ok(kb * 1024)
}

/// `verify --db` as the desk runs it (its own code, in this process): the
/// rows read and verified a second, and the memory its findings hold.
fn verify_figures(desk: &str, key: &VerifyKey) -> Result<()> {
    use masqlog_command::verify::Verifier;
    let keys = [key.clone()];
    let before = rss()?;
    let t = Instant::now();
    let mut client = db::connect(desk)?;
    let mut verifier = Verifier::new(&keys).unordered();
    let read = db::verify_rows(&mut client, &mut verifier, |_| {})?;
    let rows = read.rows;
    let held = rss()?.saturating_sub(before);
    let mut report = verifier.finish();
    report.apply_ledger(&read.committed, read.edge.as_ref());
    let secs = t.elapsed().as_secs_f64();
    if !report.intact() {
        bail!("verify --db: the bench's own rows are not intact: {report:?}");
    }
    println!("\n== verify --db ({rows} rows, every chain intact) ==");
    println!(
        "{secs:.1} s, {:.0} rows/s; memory held for the findings {:.0} MiB ({:.0} bytes a row)",
        rows as f64 / secs,
        held as f64 / f64::from(1 << 20),
        held as f64 / rows.max(1) as f64
    );
    Ok(())
}

/// An index of the schema: its qualified name, its `CREATE INDEX`
/// statement and the statement's part from `ON`.
struct SchemaIndex {
    name: String,
    create: String,
    /// `CREATE [UNIQUE] ` ... the table ` (columns) [WHERE ...]`.
    head: String,
    tail: String,
}

impl SchemaIndex {
    /// The same index on `table`, unnamed.
    fn on(&self, table: &str) -> String {
        format!("{}INDEX ON {table}{};", self.head, self.tail)
    }
}

/// The `CREATE INDEX` statements of the schema (its comments left out
/// first: a comment may hold a semicolon).
fn schema_indexes() -> Result<Vec<SchemaIndex>> {
    const ON: &str = " ON masqlog.flow_log";
    let sql: String = db::SCHEMA_V1
        .lines()
        .filter(|l| !l.trim_start().starts_with("--"))
        .map(|l| format!("{l}\n"))
        .collect();
    let found: Vec<SchemaIndex> = sql
        .split(';')
        .filter_map(|st| {
            let st = st.trim();
            let (head, after) = st.split_once("INDEX IF NOT EXISTS ")?;
            let (name, tail) = after.split_once(ON)?;
            Some(SchemaIndex {
                name: format!("masqlog.{}", name.trim()),
                create: st.to_string(),
                head: head.to_string(),
                tail: tail.to_string(),
            })
        })
        .collect();
    if found.is_empty() {
        bail!("no CREATE INDEX ... ON masqlog.flow_log in the schema");
    }
    Ok(found)
}

/// What the backend's work per row is made of: the flow rows just loaded,
/// copied by `INSERT ... SELECT` (one statement, no client) into scratch
/// tables shaped like the table, without indexes, with each index of the
/// schema alone and with all of them; (label, microseconds a row) each,
/// wall time of the statement, the faster of two runs.
fn backend_parts(c: &TempCluster, rows: f64) -> Result<Vec<(String, f64)>> {
    let indexes = schema_indexes()?;
    let mut variants: Vec<(String, Vec<&SchemaIndex>)> =
        vec![("the heap alone, no index".into(), vec![])];
    for i in &indexes {
        variants.push((format!("the heap and {} only", i.name), vec![i]));
    }
    variants.push((
        "the heap and every index of the schema".into(),
        indexes.iter().collect(),
    ));
    // The first read of freshly loaded rows writes their hint bits: done
    // before any timing, with a warm-up copy; each variant runs twice and
    // its faster run counts, each after a checkpoint.
    c.psql_within(
        "masqlog",
        "VACUUM ANALYZE masqlog.flow_log",
        Duration::from_secs(1800),
    )?;
    let once = |with: &[&SchemaIndex]| -> Result<f64> {
        let t = "masqlog.bench_parts";
        let mut sql = format!("CREATE TABLE {t} (LIKE masqlog.flow_log);");
        for i in with {
            sql.push_str(&i.on(t));
        }
        sql.push_str("CHECKPOINT;");
        c.psql("masqlog", &sql)?;
        let begin = Instant::now();
        c.psql_within(
            "masqlog",
            &format!(
                "INSERT INTO {t} SELECT * FROM masqlog.flow_log WHERE event IN ('start', 'end')"
            ),
            Duration::from_secs(1800),
        )?;
        let secs = begin.elapsed().as_secs_f64();
        c.psql("masqlog", &format!("DROP TABLE {t}"))?;
        Ok(secs / rows * 1e6)
    };
    once(&[])?;
    let mut out = Vec::new();
    for (label, with) in variants {
        let us = once(&with)?.min(once(&with)?);
        out.push((label, us));
    }
    Ok(out)
}

/// Loads `n` flows from `t0`, `step_us` apart, by the destination's row and
/// COPY code in big batches, with the indexes dropped and built afterwards.
/// Returns (load seconds, index build seconds).
fn bulk_load(
    c: &TempCluster,
    url: &str,
    n: u64,
    t0: i64,
    step_us: i64,
    seal: Option<SealState>,
) -> Result<(f64, f64)> {
    const BATCH: usize = 20_000;
    let indexes = schema_indexes()?;
    let names: Vec<&str> = indexes.iter().map(|i| i.name.as_str()).collect();
    c.psql("masqlog", &format!("DROP INDEX {}", names.join(", ")))?;
    let mut chain = seal
        .map(|st| masqlog_core::seal::Chain::start(st, "masq1", 1))
        .transpose()?;
    let mut pg = masqlog::sink::pg::Postgres::new(PgTarget::parse(url).context("the URL")?);
    let begin = Instant::now();
    let mut batch: Vec<Vec<u8>> = Vec::with_capacity(BATCH);
    for i in 0..n {
        for rec in flow_at(i, t0, step_us) {
            let t = rec.end.or(rec.start).unwrap_or(Timestamp::new(t0, 0));
            let mut m = Vec::with_capacity(400);
            format::write_syslog(
                Format::Text,
                &format::Header {
                    pri: 30,
                    timestamp: t,
                    hostname: Some("bench-gw"),
                    app: "masqlog",
                    pid: 1,
                },
                &rec,
                &mut m,
            );
            if let Some(chain) = chain.as_mut() {
                let body = format::message_start(&m).context("a message without body")?;
                format::sealing::seal_message(Format::Text, body, chain, &mut m);
            }
            batch.push(m);
        }
        if batch.len() >= BATCH || i + 1 == n {
            pg.deliver(&batch, Duration::from_secs(600))
                .map_err(|e| anyhow::anyhow!("bulk COPY: {e}"))?;
            batch.clear();
        }
    }
    let load = begin.elapsed().as_secs_f64();
    let begin = Instant::now();
    c.psql_within(
        "masqlog",
        &format!(
            "SET maintenance_work_mem = '512MB'; {}",
            indexes
                .iter()
                .map(|i| format!("{};", i.create))
                .collect::<String>()
        ),
        Duration::from_secs(3 * 3600),
    )?;
    Ok((load, begin.elapsed().as_secs_f64()))
}

fn main() -> Result<()> {
    let args = Args::parse();
    let n = args.flows;
    let cores = std::thread::available_parallelism().map_or(0, |p| p.get());
    if args.bulk {
        let gb = 2.0 * n as f64 * 700.0 / 1e9;
        if gb > args.max_gb {
            bail!(
                "{n} flows would take about {gb:.1} GB on disk (700 bytes a row), more than --max-gb {}",
                args.max_gb
            );
        }
    }
    let mut sink = PgSink::start()?;
    let c = &*sink.cluster;
    let url = sink.url.clone();
    let step_us = if args.bulk {
        (i64::from(args.days.max(1)) * 86_400 * 1_000_000 / n.max(1) as i64).max(1)
    } else {
        STEP_US
    };
    // The flows end before now, the latest 5 s after the last start.
    let t0 = Timestamp::now().secs - (n as i64 * step_us) / 1_000_000 - 60;
    let seal_dir = tempfile::tempdir()?;
    let seal = if args.seal {
        Some(seal_state(seal_dir.path(), t0)?)
    } else {
        None
    };
    let sealed = if args.seal {
        "sealed (duplicates kept out by the ledger of sequence ranges)"
    } else {
        "not sealed (duplicates kept out by the unique key on (at, digest))"
    };
    let per_m = |b: f64, rows: f64| b / rows * 1e6 / f64::from(1 << 20);

    if args.bulk {
        println!(
            "masqlog-pgbench --bulk: {n} flows ({} rows) over {} days, {sealed}, PostgreSQL 15 on a Unix socket (fsync=off, synchronous_commit=off), {cores} cores",
            2 * n,
            args.days
        );
        println!(
            "LOAD PATH: BULK, not the writer: the destination's row and binary COPY code in batches of 20000 rows, the indexes dropped during the load and built afterwards"
        );
        let (load, build) = bulk_load(c, &url, n, t0, step_us, seal.as_ref().map(|s| s.1.clone()))?;
        println!("\n== bulk load ==");
        println!(
            "COPY: {load:.1} s ({:.0} rows/s); index build: {build:.1} s",
            2.0 * n as f64 / load
        );
    } else {
        println!(
            "masqlog-pgbench: {n} flows ({} rows), {sealed}, PostgreSQL 15 on a Unix socket (fsync=off, synchronous_commit=off: the cluster is a throwaway one), flush_delay_ms=0, batches of the writer (256 records), {cores} cores",
            2 * n,
        );
        writer_figures(&sink, &url, seal.as_ref().map(|s| s.0.as_path()), n, t0)?;
    }

    // Sizes.
    c.psql_within(
        "masqlog",
        "ANALYZE masqlog.flow_log",
        Duration::from_secs(1800),
    )?;
    let parts = partition_sizes(c)?;
    let rows: f64 = parts.iter().map(|p| p.1).sum();
    let table: f64 = parts.iter().map(|p| p.2).sum();
    let idx: f64 = parts.iter().map(|p| p.3).sum();
    println!("\n== size ==");
    println!(
        "per million rows: table {:.0} MiB, indexes {:.0} MiB; {:.0} bytes a row (table {:.0} + indexes {:.0})",
        per_m(table, rows),
        per_m(idx, rows),
        (table + idx) / rows,
        table / rows,
        idx / rows
    );
    if args.bulk {
        for (name, r, t, i) in &parts {
            println!(
                "{name}: {r:.0} rows, table {:.0} MiB, indexes {:.0} MiB",
                t / f64::from(1 << 20),
                i / f64::from(1 << 20)
            );
        }
        println!(
            "100 M rows projected: table {:.1} GiB, indexes {:.1} GiB",
            table / rows * 1e8 / f64::from(1 << 30),
            idx / rows * 1e8 / f64::from(1 << 30)
        );
    }

    // Lookups, as `lookup --db` runs them.
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
    let mut reports = Reports {
        rng: 0x2545_f491_4f6c_dd1d_u64,
        n,
        t0,
        step_us,
    };
    for _ in 0..args.lookups {
        lat.push(time_lookup(&mut client, &mut reports)?);
    }
    let (p50, p99) = (pct(&mut lat, 0.5), pct(&mut lat, 0.99));
    println!(
        "\n== lookup --db ({} reports, {} rows) ==",
        args.lookups, rows
    );
    println!(
        "p50 {p50:.2} ms, p99 {p99:.2} ms   (target p99 <= 10 ms at 100 M rows: {} at {rows:.0} rows)",
        if p99 <= 10.0 { "met" } else { "missed" },
    );
    // The whole table verified (the writer's load only: a bulk load's
    // findings would not fit in memory at 100 M rows).
    if let (Some((_, _, key)), false) = (&seal, args.bulk) {
        verify_figures(&desk, key)?;
    }
    if args.cold > 0 {
        let c = Arc::get_mut(&mut sink.cluster).context("the cluster is shared")?;
        // In turn: a new connection to the running cluster (what each
        // `masqlog lookup --db` opens: the backend's catalog caches are
        // empty); the cluster restarted first (its shared buffers empty
        // too); and the kernel's page cache dropped as well (every page
        // read from disk).
        let mut lat: [Vec<f64>; 3] = Default::default();
        for k in 0..3 * args.cold {
            let kind = (k % 3) as usize;
            if kind > 0 {
                c.stop()?;
                if kind == 2 {
                    drop_page_cache()?;
                }
                c.restart()?;
            }
            let mut client = db::connect(&desk)?;
            lat[kind].push(time_lookup(&mut client, &mut reports)?);
        }
        println!(
            "\n== lookup --db from cold caches ({} reports each, {rows:.0} rows; each lookup on a new connection, its connect not timed) ==",
            args.cold
        );
        for (what, lat) in [
            "new connection, cluster running",
            "cluster restarted, page cache kept",
            "cluster restarted, page cache dropped",
        ]
        .iter()
        .zip(lat.iter_mut())
        {
            let (p50, p99) = (pct(lat, 0.5), pct(lat, 0.99));
            let max = lat.iter().copied().fold(0.0, f64::max);
            println!("{what}: p50 {p50:.2} ms, p99 {p99:.2} ms, slowest {max:.2} ms");
        }
    }
    Ok(())
}

/// Reports about the loaded flows, drawn at random (the same sequence in
/// every run).
struct Reports {
    rng: u64,
    n: u64,
    t0: i64,
    step_us: i64,
}

impl Reports {
    /// A report about a random flow: its public endpoint, 2 s after its
    /// start; and the flow's number.
    fn next(&mut self) -> Result<(AbuseReport, u64)> {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let i = self.rng % self.n;
        let m = masq_of(i);
        let at = self.t0 + (i as i64 * self.step_us) / 1_000_000 + 2;
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
        Ok((q, i))
    }
}

/// One report answered as `lookup --db` answers it (the rows read by the
/// index, the lookup's own reader and join): its time in milliseconds.
fn time_lookup(client: &mut db::Client, reports: &mut Reports) -> Result<f64> {
    let (q, i) = reports.next()?;
    let t = Instant::now();
    let (_, verdict) = db::answer(client, &q)?;
    let ms = t.elapsed().as_secs_f64() * 1000.0;
    if verdict.matches.is_empty() {
        bail!("flow {i} not found by lookup");
    }
    Ok(ms)
}

/// Writes the dirty pages out and drops the kernel's page cache (root).
fn drop_page_cache() -> Result<()> {
    let st = std::process::Command::new("sync").status()?;
    if !st.success() {
        bail!("sync failed: {st}");
    }
    std::fs::write("/proc/sys/vm/drop_caches", "3").context("dropping the page cache")?;
    Ok(())
}

/// The writer's load into PostgreSQL and into a file, and their figures.
fn writer_figures(
    sink: &PgSink,
    url: &str,
    seal: Option<&std::path::Path>,
    n: u64,
    t0: i64,
) -> Result<()> {
    let mut backend_ns = 0;
    let pg = load(
        Destination::Postgres(PgTarget::parse(url).context("the URL")?),
        seal,
        None,
        n,
        t0,
        || backend_ns = sink.backend_ns(),
    )?;
    let c = &*sink.cluster;
    let rows: i64 = c
        .psql(
            "masqlog",
            "SELECT count(*) FROM masqlog.flow_log WHERE event IN ('start', 'end')",
        )?
        .parse()?;
    if rows != 2 * n as i64 {
        bail!("{rows} flow rows in the table, {} sent", 2 * n);
    }
    // The file destination, the same flows.
    let dir = tempfile::tempdir()?;
    let file = load(
        Destination::File(dir.path().join("flows.log")),
        None,
        None,
        n,
        t0,
        || {},
    )?;
    let file_bytes = std::fs::metadata(dir.path().join("flows.log"))?.len();
    // The evidence store alone (destination=none), the same flows.
    let store_dir = tempfile::tempdir()?;
    let store = load(
        Destination::None,
        None,
        Some(store_dir.path()),
        n,
        t0,
        || {},
    )?;

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
    for (name, l) in [("file:", &file), ("store only:", &store)] {
        println!(
            "{name:<11} {:.1} s, {:.0} rows/s, {:.0} flows/s",
            l.secs,
            2.0 * n as f64 / l.secs,
            n as f64 / l.secs
        );
    }
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
        "writer and store threads, store only (format + append, live index; no segment closed in the run): {:.2} us (writer {:.2}, store {:.2})",
        per_flow(store.writer_ns + store.store_ns),
        per_flow(store.writer_ns),
        per_flow(store.store_ns)
    );
    println!(
        "database backend (COPY, the ledger or unique key, the indexes): {:.2} us",
        per_flow(backend_ns)
    );
    println!(
        "postgresql, writer thread and backend together:        {:.2} us",
        per_flow(pg.writer_ns + backend_ns)
    );
    println!(
        "(file and store runs not sealed; LOGEMU's figure on the same machine comes from bench/run, which runs stock ulogd)"
    );
    println!(
        "one backend alone at this cost takes at most {:.0} flows/s, however little the writer spends",
        1e9 / (backend_ns as f64 / n as f64)
    );
    println!(
        "\n== the backend's work per row, by part (INSERT ... SELECT of the same rows, wall time) =="
    );
    let parts = backend_parts(c, 2.0 * n as f64)?;
    let heap = parts.first().map_or(0.0, |p| p.1);
    for (i, (label, us)) in parts.iter().enumerate() {
        if i == 0 {
            println!("{label}: {us:.2} us a row");
        } else {
            println!("{label}: {us:.2} us a row (+{:.2})", us - heap);
        }
    }
    println!(
        "by COPY from the writer (the backend's CPU above): {:.2} us a row",
        backend_ns as f64 / 2.0 / n as f64 / 1000.0
    );
    println!(
        "(the same lines as a file: {:.0} MiB per million rows)",
        file_bytes as f64 / (2.0 * n as f64) * 1e6 / f64::from(1 << 20)
    );
    Ok(())
}
