//! The PostgreSQL side of masqlog: the schema (`sql/`, embedded), its life
//! cycle (`masqlog db init|upgrade|partitions|retention|status`) and the
//! rows `masqlog lookup --db` reads.
//!
//! `lookup --db` does not answer by itself: it selects the rows about the
//! queried public endpoints (by the index on address, port and time) and
//! hands their exact lines to the lookup's own reader, join and
//! authentication, one input per row, named by table, router and sequence
//! number, so that the answer, the evidence and the exit codes are those of
//! a lookup in files. `verify --db` reads every row's line the same way,
//! and the ledger of committed sequence ranges beside them.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use masqlog_core::config::PgTarget;
/// A connection to the database (the `postgres` crate's).
pub use postgres::Client;
use postgres::NoTls;

use crate::lookup::source::{Input, Rows};
use crate::lookup::{AbuseReport, window_for};
use crate::verify::Loc;
use masqlog_core::seal::WriterId;

/// The schema this build creates and reads.
pub use masqlog_core::pgrow::SCHEMA_VERSION;
/// Version 1 of the schema.
pub const SCHEMA_V1: &str = include_str!("../../../sql/schema_v1.sql");

/// What went wrong with the database.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error(
        "{0:?} is not a PostgreSQL URL: postgresql://USER@HOST[:PORT]/DB[?host=/SOCKET/DIR&password_file=/PATH] (no password in the URL)"
    )]
    BadUrl(String),
    #[error("{0}")]
    Password(String),
    #[error("cannot connect to {url}: {why}")]
    Connect { url: String, why: String },
    #[error(
        "the database has no masqlog schema: run `masqlog db init --db URL` as the database's owner"
    )]
    NoSchema,
    #[error(
        "the database holds masqlog schema version {found}; this masqlog reads and writes version {SCHEMA_VERSION}: {fix}"
    )]
    Version { found: i32, fix: &'static str },
    #[error("{what}: {why}")]
    Sql { what: String, why: String },
}

fn sql(what: &str) -> impl Fn(postgres::Error) -> DbError + '_ {
    move |e| DbError::Sql {
        what: what.to_string(),
        why: describe(&e),
    }
}

/// An error with its SQLSTATE.
pub fn describe(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} [SQLSTATE {}]", db.message(), db.code().code()),
        None => e.to_string(),
    }
}

/// The URL of `t` with its password file, as configured.
pub fn url_of(t: &PgTarget) -> String {
    match &t.password_file {
        Some(p) => {
            let sep = if t.url.contains('?') { '&' } else { '?' };
            format!("{}{sep}password_file={}", t.url, p.display())
        }
        None => t.url.clone(),
    }
}

/// Connects to `url` (`password_file=` read as the plugin reads it; else
/// libpq's `PGPASSWORD` is not consulted: give a file).
pub fn connect(url: &str) -> Result<Client, DbError> {
    let target = PgTarget::parse(url).ok_or_else(|| DbError::BadUrl(url.to_string()))?;
    let mut cfg: postgres::Config = target
        .url
        .parse()
        .map_err(|_| DbError::BadUrl(url.to_string()))?;
    if let Some(p) = target.read_password().map_err(DbError::Password)? {
        cfg.password(p);
    }
    cfg.application_name("masqlog");
    cfg.connect_timeout(std::time::Duration::from_secs(10));
    cfg.connect(NoTls).map_err(|e| DbError::Connect {
        url: target.url.clone(),
        why: describe(&e),
    })
}

/// The schema version the database holds; `None`: no schema.
pub fn version(client: &mut Client) -> Result<Option<i32>, DbError> {
    let exists: bool = client
        .query_one(
            "SELECT to_regclass('masqlog.schema_version') IS NOT NULL",
            &[],
        )
        .map_err(sql("reading the schema version"))?
        .get(0);
    if !exists {
        return Ok(None);
    }
    let v: Option<i32> = client
        .query_one("SELECT max(version) FROM masqlog.schema_version", &[])
        .map_err(sql("reading the schema version"))?
        .get(0);
    Ok(v)
}

/// Refuses a database without this build's schema version.
pub fn check_version(client: &mut Client) -> Result<(), DbError> {
    match version(client)? {
        None => Err(DbError::NoSchema),
        Some(SCHEMA_VERSION) => Ok(()),
        Some(v) if v < SCHEMA_VERSION => Err(DbError::Version {
            found: v,
            fix: "run `masqlog db upgrade --db URL`",
        }),
        Some(v) => Err(DbError::Version {
            found: v,
            fix: "use the masqlog that comes with that schema",
        }),
    }
}

/// Creates the schema (or finds it at this version) and the partitions of
/// yesterday to `ahead` days from now. Returns whether it was created.
pub fn init(client: &mut Client, ahead: u32) -> Result<bool, DbError> {
    let created = match version(client)? {
        None => {
            client
                .batch_execute(SCHEMA_V1)
                .map_err(sql("creating the schema (sql/schema_v1.sql)"))?;
            true
        }
        Some(_) => {
            check_version(client)?;
            false
        }
    };
    partitions(client, ahead)?;
    Ok(created)
}

/// Has the daily partitions of yesterday to `ahead` days from today
/// created; returns how many were new.
pub fn partitions(client: &mut Client, ahead: u32) -> Result<i32, DbError> {
    check_version(client)?;
    let ahead = i32::try_from(ahead.min(366)).unwrap_or(366);
    client
        .query_one(
            "SELECT masqlog.ensure_partitions((now() AT TIME ZONE 'UTC')::date - 1, (now() AT TIME ZONE 'UTC')::date + $1::int)",
            &[&ahead],
        )
        .map_err(sql("creating the daily partitions"))
        .map(|r| r.get(0))
}

/// Drops the partitions of days older than `keep_days` days; returns their
/// names.
pub fn retention(client: &mut Client, keep_days: u32) -> Result<Vec<String>, DbError> {
    check_version(client)?;
    let keep = i32::try_from(keep_days).unwrap_or(i32::MAX);
    let rows = client
        .query(
            "SELECT masqlog.drop_partitions_before((now() AT TIME ZONE 'UTC')::date - $1::int)",
            &[&keep],
        )
        .map_err(sql("dropping old partitions"))?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// What `masqlog db status` shows.
#[derive(Debug)]
pub struct Status {
    pub version: i32,
    /// Daily partitions: (name, rows estimated, bytes with indexes).
    pub partitions: Vec<(String, i64, i64)>,
    /// Rows in the default partition: records whose day had no partition.
    pub default_rows: i64,
}

pub fn status(client: &mut Client) -> Result<Status, DbError> {
    check_version(client)?;
    let rows = client
        .query(
            "SELECT c.relname::text, c.reltuples::bigint, pg_total_relation_size(c.oid)
             FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
             WHERE i.inhparent = 'masqlog.flow_log'::regclass AND c.relname ~ '^flow_log_[0-9]{8}$'
             ORDER BY 1",
            &[],
        )
        .map_err(sql("listing the partitions"))?;
    let default_rows: i64 = client
        .query_one("SELECT count(*) FROM masqlog.flow_log_default", &[])
        .map_err(sql("counting the default partition"))?
        .get(0);
    Ok(Status {
        version: SCHEMA_VERSION,
        partitions: rows
            .iter()
            .map(|r| (r.get(0), r.get::<_, i64>(1).max(0), r.get(2)))
            .collect(),
        default_rows,
    })
}

/// At most this many rows are read for one lookup.
const MAX_ROWS: i64 = 1_000_000;

/// The rows about the queried public endpoints, as lookup inputs: one per
/// row, named `postgresql TABLE router ROUTER seq N` (or `at TIME` for an
/// unsealed row). For each query: its endpoint's rows in its window (the
/// whole table without one), and the gap records of that window.
pub fn lookup_inputs(client: &mut Client, queries: &[&AbuseReport]) -> Result<Vec<Input>, DbError> {
    check_version(client)?;
    let mut inputs = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for q in queries {
        let (from, until) = match window_for(q, false) {
            // End lines up to max_age after the window still tell when a
            // flow that was open in it ended.
            Some(w) => (w.from, w.until.saturating_add(w.max_age)),
            None => (i64::MIN / 2_000_000, i64::MAX / 2_000_000),
        };
        let (from, until) = (from as f64, until as f64);
        let ip = postgres_inet(q.public_ip);
        let port = i32::from(q.public_port);
        let rows = client
            .query(
                "SELECT r.*, r.at::text AS at_text FROM (
                   SELECT tableoid::regclass::text, router, seal_seq, at, line
                   FROM masqlog.flow_log
                   WHERE masq_ip = $1::text::inet AND masq_port = $2
                     AND at >= to_timestamp($3) AND at <= to_timestamp($4)
                   UNION ALL
                   SELECT tableoid::regclass::text, router, seal_seq, at, line
                   FROM masqlog.flow_log
                   WHERE event = 'gap' AND at >= to_timestamp($3) AND at <= to_timestamp($4)
                 ) r
                 ORDER BY r.at
                 LIMIT $5",
                &[&ip, &port, &from, &until, &MAX_ROWS],
            )
            .map_err(sql("reading masqlog.flow_log"))?;
        for r in rows {
            let line: String = r.get(4);
            if !seen.insert(line.clone()) {
                continue;
            }
            let name = row_name(r.get(0), r.get(1), r.get(2), || r.get(5));
            let mut text = line.into_bytes();
            text.push(b'\n');
            inputs.push(Input::Rows(Rows {
                name,
                text: Arc::from(text),
            }));
        }
    }
    Ok(inputs)
}

/// One report answered from the database alone, as `lookup --db` answers
/// it without log files or keys: the scan of its rows, and the verdict.
pub fn answer(
    client: &mut Client,
    q: &AbuseReport,
) -> Result<(crate::lookup::Scan, crate::lookup::Verdict), DbError> {
    let inputs = lookup_inputs(client, &[q])?;
    let scan = crate::lookup::scan(
        &[q],
        &inputs,
        crate::lookup::ScanOptions {
            stdin: None,
            progress: &mut crate::lookup::NoProgress,
            scan_all: false,
            keys: &[],
        },
    );
    let verdict = crate::lookup::decide(&scan, q);
    Ok((scan, verdict))
}

/// How a row is named in evidence and findings: `postgresql TABLE router
/// ROUTER seq N`, or `... at TIME` for a row without a seal.
fn row_name(table: &str, router: &str, seq: Option<i64>, at: impl FnOnce() -> String) -> String {
    match seq {
        Some(seq) => format!("{} seq {seq}", row_place(table, router)),
        None => format!("{} at {}", row_place(table, router), at()),
    }
}

/// The table and router part of a row's name.
fn row_place(table: &str, router: &str) -> String {
    format!("postgresql {table} router {router}")
}

/// Rows fetched from the server at a time by [`verify_rows`].
const FETCH: i32 = 5_000;
/// Tables whose rows' names [`verify_rows`] keeps to share (past that they
/// are made again).
const MAX_PLACES: usize = 4096;

/// A row this close after the start of the oldest daily partition (in
/// seconds) may follow, in its writer's sequence, rows of the day before
/// it: a line's time and its sequence number are not in the same order
/// across midnight (a start line's time is the flow's start, taken before
/// lines written just ahead of it). When retention dropped that day, the
/// sequence numbers missing next to such a row are no sign of deletion.
pub const EDGE_SECS: i64 = 900;

/// What `verify --db` read, besides the rows it gave the verifier: the
/// ledger and where retention cut, from the same snapshot as the rows.
pub struct Verified {
    pub rows: u64,
    pub committed: crate::verify::Committed,
    pub edge: Option<crate::verify::Edge>,
}

/// Gives every row of `masqlog.flow_log` to `verifier` (where it is, named
/// as in lookup's evidence, and its exact line), partition by partition in
/// the order the server stores them, a few thousand rows in memory at a
/// time; `progress` hears the count now and then. From the same read-only
/// snapshot: the ledger of committed ranges, and the sealed rows of the
/// first [`EDGE_SECS`] of the oldest daily partition.
pub fn verify_rows(
    client: &mut Client,
    verifier: &mut crate::verify::Verifier<'_>,
    mut progress: impl FnMut(u64),
) -> Result<Verified, DbError> {
    check_version(client)?;
    let mut tx = client
        .build_transaction()
        .isolation_level(postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .map_err(sql("starting a read-only transaction"))?;
    let oldest = tx
        .query_opt(
            "SELECT c.oid, c.relname::text, \
                    extract(epoch FROM to_date(right(c.relname, 8), 'YYYYMMDD'))::bigint \
             FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
             WHERE i.inhparent = 'masqlog.flow_log'::regclass \
               AND c.relname ~ '^flow_log_[0-9]{8}$' \
             ORDER BY c.relname LIMIT 1",
            &[],
        )
        .map_err(sql("reading the partitions of masqlog.flow_log"))?;
    let (oid, day) = oldest
        .as_ref()
        .map_or((0, 0), |r| (r.get::<_, u32>(0), r.get::<_, i64>(2)));
    let mut edge = oldest.as_ref().map(|r| crate::verify::Edge {
        partition: format!("masqlog.{}", r.get::<_, String>(1)),
        records: HashSet::new(),
    });
    let until = (day + EDGE_SECS) as f64;
    let portal = tx
        .bind(
            "SELECT tableoid::regclass::text, router, seal_seq, at::text, line, seal_writer, seal_run, \
                    tableoid = $1 AND at < to_timestamp($2) \
             FROM masqlog.flow_log",
            &[&oid, &until],
        )
        .map_err(sql("reading masqlog.flow_log"))?;
    let mut n = 0u64;
    let mut places: HashMap<String, HashMap<String, Arc<str>>> = HashMap::new();
    loop {
        let rows = tx
            .query_portal(&portal, FETCH)
            .map_err(sql("reading masqlog.flow_log"))?;
        if rows.is_empty() {
            break;
        }
        for r in &rows {
            let (table, router): (&str, &str) = (r.get(0), r.get(1));
            let seq: Option<i64> = r.get(2);
            let loc = match seq {
                Some(seq) => {
                    // One name per table and router, shared by its rows.
                    let at = match places.get(table).and_then(|m| m.get(router)) {
                        Some(at) => Arc::clone(at),
                        None => {
                            let at: Arc<str> = Arc::from(row_place(table, router));
                            if places.len() >= MAX_PLACES {
                                places.clear();
                            }
                            places
                                .entry(table.to_string())
                                .or_default()
                                .insert(router.to_string(), Arc::clone(&at));
                            at
                        }
                    };
                    Loc::Row {
                        at,
                        seq: seq as u64,
                    }
                }
                None => Loc::Named(Arc::from(row_name(table, router, None, || r.get(3)))),
            };
            verifier.line(loc, r.get::<_, &str>(4).as_bytes());
            if let (Some(edge), Some(true), Some(w), Some(run), Some(seq)) = (
                edge.as_mut(),
                r.get::<_, Option<bool>>(7),
                r.get::<_, Option<&str>>(5).and_then(WriterId::parse),
                r.get::<_, Option<i64>>(6),
                seq,
            ) {
                edge.records.insert((w, run as u64, seq as u64));
            }
        }
        n += rows.len() as u64;
        progress(n);
    }
    let committed = committed(&mut tx)?;
    tx.commit().map_err(sql("ending the read"))?;
    Ok(Verified {
        rows: n,
        committed,
        edge,
    })
}

/// The sequence ranges the database committed, by writer and run (its
/// `masqlog.seal_ledger`); a writer name that is no `HOST/INSTANCE` is
/// passed over.
fn committed(tx: &mut postgres::Transaction<'_>) -> Result<crate::verify::Committed, DbError> {
    let rows = tx
        .query(
            "SELECT writer, run, first_seq, last_seq FROM masqlog.seal_ledger ORDER BY 1, 2, 3",
            &[],
        )
        .map_err(sql("reading masqlog.seal_ledger"))?;
    let mut out = crate::verify::Committed::new();
    for r in rows {
        let Some(w) = WriterId::parse(r.get(0)) else {
            continue;
        };
        let (run, first, last): (i64, i64, i64) = (r.get(1), r.get(2), r.get(3));
        out.entry((w, run as u64))
            .or_default()
            .push((first as u64, last as u64));
    }
    Ok(out)
}

fn postgres_inet(ip: std::net::IpAddr) -> String {
    ip.to_string()
}
