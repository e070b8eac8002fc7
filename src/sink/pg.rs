//! The `postgresql://` destination: each batch becomes rows of
//! `masqlog.flow_log` (schema: `sql/schema_v1.sql`, installed by
//! `masqlog db init`), sent with a binary `COPY` in one transaction per
//! batch.
//!
//! The writer hands this transport the same formatted messages it hands
//! any other, and the spool keeps and replays those same bytes; the rows
//! are made from them (`masqlog_core::pgrow`), so a batch sent twice (a
//! replay after a crash between the commit and the spool's mark, a retry
//! after a connection lost during the commit) gives the same rows, and
//! none is inserted twice: the sealed rows of a batch are checked against
//! the ledger of committed sequence ranges of their writer's run
//! (`masqlog.claim_seqs`, in the batch's own transaction, which records
//! the batch's ranges), and those already committed are left out; rows
//! without a seal meet the unique key on `(at, digest)`, which fails the
//! COPY, and the batch then goes the careful way, through a staging table
//! and `INSERT ... ON CONFLICT DO NOTHING`.
//!
//! At connect the transport checks the schema version (another version, or
//! none, is refused with the command that fixes it) and has the partitions
//! of yesterday to the day after tomorrow created; a batch holding a day
//! not seen yet has that day's partition created first (by the
//! `SECURITY DEFINER` function `masqlog.ensure_partitions`, which the
//! routers' insert-only role may call), so no insert waits for a partition
//! at midnight.
//!
//! Every exchange with the server, the connect included, is bounded by the
//! send timeout: the client runs on a small runtime that this thread
//! drives, and a batch that has not committed in time (a server that hangs,
//! a peer that accepted the connection and never answers, a black-holed
//! route) ends with a timeout, counted in the statistics line as
//! `timed_out`. Any failure drops the connection and is a `Retry`: the
//! batch goes to the spool, and the next attempt connects anew.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::io;
use std::net::IpAddr;
use std::pin::pin;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Client, NoTls, Statement};

use super::transport::{Limit, SendError, Transport, timed_out};
use masqlog_core::config::PgTarget;
use masqlog_core::pgrow::{COLUMNS, PgRow, SCHEMA_VERSION, SeqRanges, row};
use masqlog_core::record::Timestamp;

/// Days whose partition is known to exist, at most (then forgotten).
const DAYS_KEPT: usize = 64;
/// The shortest time a batch (its connect included) is given.
const MIN_TIME: Duration = Duration::from_secs(1);
/// The shortest `statement_timeout` set on the server.
const MIN_STATEMENT: Duration = Duration::from_secs(10);
/// How long a failed call waits for the connection's own reason.
const ENDED_GRACE: Duration = Duration::from_millis(100);
/// TCP keepalive: the first probe after this long idle (a TCP URL only).
const KEEPALIVE_IDLE: Duration = Duration::from_secs(30);

/// The staging table: the connection's own, emptied at every commit (a
/// failed transaction leaves nothing either). Its columns are
/// `pgrow::COLUMNS`, typed as in `masqlog.flow_log` (the routers' role
/// may not read that table, so it cannot be copied from it).
const STAGE: &str = "CREATE TEMP TABLE IF NOT EXISTS masqlog_stage (\
    at timestamptz, router text, instance text, event text, nat text, proto smallint, \
    conntrack_id bigint, client_ip inet, client_port integer, masq_ip inet, masq_port integer, \
    remote_ip inet, remote_port integer, remote_hash text, start_at timestamptz, \
    end_at timestamptz, out_pkts bigint, out_bytes bigint, in_pkts bigint, in_bytes bigint, \
    ident_status text, ident_user bytea, seal_writer text, seal_run bigint, seal_seq bigint, \
    seal_mac bytea, line text, digest bytea) ON COMMIT DELETE ROWS;";

/// The types of `pgrow::COLUMNS`, in order (the binary COPY's).
fn column_types() -> Vec<Type> {
    vec![
        Type::TIMESTAMPTZ, // at
        Type::TEXT,        // router
        Type::TEXT,        // instance
        Type::TEXT,        // event
        Type::TEXT,        // nat
        Type::INT2,        // proto
        Type::INT8,        // conntrack_id
        Type::INET,        // client_ip
        Type::INT4,        // client_port
        Type::INET,        // masq_ip
        Type::INT4,        // masq_port
        Type::INET,        // remote_ip
        Type::INT4,        // remote_port
        Type::TEXT,        // remote_hash
        Type::TIMESTAMPTZ, // start_at
        Type::TIMESTAMPTZ, // end_at
        Type::INT8,        // out_pkts
        Type::INT8,        // out_bytes
        Type::INT8,        // in_pkts
        Type::INT8,        // in_bytes
        Type::TEXT,        // ident_status
        Type::BYTEA,       // ident_user
        Type::TEXT,        // seal_writer
        Type::INT8,        // seal_run
        Type::INT8,        // seal_seq
        Type::BYTEA,       // seal_mac
        Type::TEXT,        // line
        Type::BYTEA,       // digest
    ]
}

/// A PostgreSQL database as a destination.
pub struct Postgres {
    /// The runtime the client runs on, driven by the calling thread only
    /// while a batch is under way; made at the first batch.
    rt: Option<tokio::runtime::Runtime>,
    session: Session,
    types: Vec<Type>,
}

/// What lives between batches.
struct Session {
    target: PgTarget,
    conn: Option<Conn>,
    /// UTC days (since 1970-01-01) that have a partition.
    days: BTreeSet<i64>,
}

/// A connection and its statements.
struct Conn {
    client: Client,
    /// The task that runs the connection; ended when the connection is
    /// dropped (a connection given up on after a timeout).
    task: tokio::task::JoinHandle<()>,
    /// Why the connection ended, when the server said (an administrator's
    /// shutdown arrives between batches, and the next call only sees the
    /// connection closed).
    ended: Arc<Mutex<Option<String>>>,
    copy_direct: Statement,
    copy_staged: Statement,
    move_staged: Statement,
    claim: Statement,
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A failure, as the writer's notices show it.
fn fail(what: String) -> io::Error {
    io::Error::other(what)
}

/// A database error with its SQLSTATE and what it means for the operator.
fn describe(e: &tokio_postgres::Error) -> String {
    let Some(db) = e.as_db_error() else {
        // Connection-level: refused, reset, closed, timed out, or a failed
        // authentication exchange.
        return e.to_string();
    };
    let code = db.code();
    let hint = if *code == SqlState::DISK_FULL
        || *code == SqlState::INSUFFICIENT_RESOURCES
        || *code == SqlState::OUT_OF_MEMORY
    {
        " (the database server is out of room: free disk space there; records wait in the spool)"
    } else if *code == SqlState::INVALID_PASSWORD
        || *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION
    {
        " (wrong user or password: check the URL's user and the password file)"
    } else if *code == SqlState::INSUFFICIENT_PRIVILEGE {
        " (grant the role masqlog_writer to this user: GRANT masqlog_writer TO USER)"
    } else if *code == SqlState::UNDEFINED_TABLE || *code == SqlState::INVALID_SCHEMA_NAME {
        " (no masqlog schema: run `masqlog db init --db URL` as the database's owner)"
    } else if *code == SqlState::ADMIN_SHUTDOWN || *code == SqlState::CANNOT_CONNECT_NOW {
        " (the database server is shutting down or starting)"
    } else {
        ""
    };
    format!("{} [SQLSTATE {}]{hint}", db.message(), code.code())
}

/// Whether the client reads `target`'s URL (checked at start: a URL it
/// cannot read is a configuration error, not an outage). The password
/// file is read at each connect, not here.
pub(crate) fn check_url(target: &PgTarget) -> Result<(), String> {
    tokio_postgres::Config::from_str(&target.url)
        .map(|_| ())
        .map_err(|e| format!("{}: not a PostgreSQL URL the client reads: {e} (in ulogd.conf, a URL with `=` in it must be in double quotes)", target.url))
}

/// The client configuration of `target` (the password read from its file).
pub(crate) fn client_config(target: &PgTarget) -> Result<tokio_postgres::Config, String> {
    let mut cfg = tokio_postgres::Config::from_str(&target.url)
        .map_err(|e| format!("{}: not a PostgreSQL URL: {e}", target.url))?;
    if cfg.get_application_name().is_none() {
        cfg.application_name("masqlog");
    }
    if let Some(p) = target.read_password()? {
        cfg.password(p);
    }
    Ok(cfg)
}

impl Postgres {
    pub fn new(target: PgTarget) -> Self {
        Postgres {
            rt: None,
            session: Session {
                target,
                conn: None,
                days: BTreeSet::new(),
            },
            types: column_types(),
        }
    }

    /// One transaction for `rows` (connecting first when needed), within
    /// the limit's time; any failure drops the connection.
    fn write(
        &mut self,
        rows: &[PgRow<'_>],
        days: &BTreeSet<i64>,
        limit: &Limit<'_>,
    ) -> Result<(), io::Error> {
        if self.rt.is_none() {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| fail(format!("cannot start the client's runtime: {e}")))?;
            self.rt = Some(rt);
        }
        let rt = self.rt.as_ref().expect("made above");
        let time = limit.left().max(MIN_TIME);
        let s = &mut self.session;
        let r = rt.block_on(async {
            tokio::time::timeout(time, s.write(rows, days, &self.types, time))
                .await
                .unwrap_or_else(|_| {
                    Err(timed_out(format!(
                        "the database did not answer within {:.1} s (the send timeout): the connection is dropped, the batch waits in the spool",
                        time.as_secs_f64()
                    )))
                })
        });
        if r.is_err() {
            self.session.conn = None;
        }
        r
    }
}

impl Session {
    /// Connects, checks the schema, makes the staging table, prepares the
    /// statements and has the partitions around today created.
    async fn connect(&mut self, time: Duration) -> Result<&mut Conn, io::Error> {
        if self.conn.is_none() {
            let mut cfg = client_config(&self.target).map_err(fail)?;
            cfg.connect_timeout(time)
                .keepalives(true)
                .keepalives_idle(KEEPALIVE_IDLE)
                .tcp_user_timeout(time.max(MIN_STATEMENT));
            let (client, connection) = cfg
                .connect(NoTls)
                .await
                .map_err(|e| fail(format!("cannot connect: {}", describe(&e))))?;
            let ended = Arc::new(Mutex::new(None));
            let why = Arc::clone(&ended);
            let task = tokio::spawn(async move {
                if let Err(e) = connection.await {
                    *why.lock() = Some(describe(&e));
                }
            });
            check_schema(&client).await?;
            client
                .batch_execute(&format!(
                    // A statement the server works on too long ends the
                    // batch on the server's side as well.
                    "{STAGE} SET statement_timeout = {};",
                    time.max(MIN_STATEMENT).as_millis()
                ))
                .await
                .map_err(|e| {
                    fail(format!(
                        "cannot prepare the staging table: {}",
                        describe(&e)
                    ))
                })?;
            let prep = |e: tokio_postgres::Error| {
                fail(format!("cannot prepare the statements: {}", describe(&e)))
            };
            let copy_direct = client
                .prepare(&format!(
                    "COPY masqlog.flow_log ({COLUMNS}) FROM STDIN (FORMAT binary)"
                ))
                .await
                .map_err(prep)?;
            let copy_staged = client
                .prepare(&format!(
                    "COPY masqlog_stage ({COLUMNS}) FROM STDIN (FORMAT binary)"
                ))
                .await
                .map_err(prep)?;
            let move_staged = client
                .prepare(&format!(
                    "INSERT INTO masqlog.flow_log ({COLUMNS}) SELECT {COLUMNS} FROM masqlog_stage \
                     ON CONFLICT DO NOTHING"
                ))
                .await
                .map_err(prep)?;
            let claim = client
                .prepare("SELECT first_seq, last_seq FROM masqlog.claim_seqs($1, $2, $3, $4)")
                .await
                .map_err(prep)?;
            self.days.clear();
            let today = Timestamp::now().secs.div_euclid(86_400);
            ensure(&client, today - 1, today + 2).await?;
            self.days.extend(today - 1..=today + 2);
            self.conn = Some(Conn {
                client,
                task,
                ended,
                copy_direct,
                copy_staged,
                move_staged,
                claim,
            });
        }
        Ok(self.conn.as_mut().expect("connected above"))
    }

    async fn write(
        &mut self,
        rows: &[PgRow<'_>],
        days: &BTreeSet<i64>,
        types: &[Type],
        time: Duration,
    ) -> Result<(), io::Error> {
        let new: Vec<i64> = days.difference(&self.days).copied().collect();
        if let Some(conn) = &self.conn {
            // The connection's task reads what the server said between
            // batches (an administrator's shutdown): a connection that
            // ended is given up with the server's reason.
            tokio::task::yield_now().await;
            if conn.task.is_finished() {
                let why = conn.ended.lock().clone();
                self.conn = None;
                return Err(fail(why.unwrap_or_else(|| "connection closed".into())));
            }
        }
        let conn = self.connect(time).await?;
        for &d in &new {
            ensure(&conn.client, d, d).await?;
        }
        // The common case: COPY straight into the table. A row without a
        // seal that is there already (a batch sent again) fails the whole
        // COPY with a unique violation; then the batch goes the careful
        // way, through the staging table and ON CONFLICT DO NOTHING.
        match conn.copy(rows, types, false).await {
            Ok(()) => {}
            Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
                if let Err(e) = conn.copy(rows, types, true).await {
                    return Err(fail(conn.describe(&e).await));
                }
            }
            Err(e) => return Err(fail(conn.describe(&e).await)),
        }
        if self.days.len() + new.len() > DAYS_KEPT {
            self.days.clear();
        }
        self.days.extend(new);
        Ok(())
    }
}

impl Conn {
    /// A failure, with the server's reason when the connection ended (the
    /// connection's task may read it just after the call failed: it is
    /// given a moment).
    async fn describe(&mut self, e: &tokio_postgres::Error) -> String {
        if e.as_db_error().is_none() && !self.task.is_finished() {
            let _ = tokio::time::timeout(ENDED_GRACE, &mut self.task).await;
        }
        match self.ended.lock().as_deref() {
            Some(why) if e.as_db_error().is_none() => why.to_string(),
            _ => describe(e),
        }
    }

    /// One transaction: the sealed rows checked against the ledger (those
    /// committed before are left out, and so is a repeat within the
    /// batch), then the rest by binary COPY, into the table or (`staged`)
    /// into the staging table and from there with ON CONFLICT DO NOTHING.
    async fn copy(
        &mut self,
        rows: &[PgRow<'_>],
        types: &[Type],
        staged: bool,
    ) -> Result<(), tokio_postgres::Error> {
        let tx = self.client.transaction().await?;
        let mut runs: BTreeMap<(&str, i64), Vec<i64>> = BTreeMap::new();
        for r in rows {
            if let Some(s) = &r.seal {
                runs.entry((s.writer.as_str(), s.run))
                    .or_default()
                    .push(s.seq);
            }
        }
        let mut committed: BTreeMap<(&str, i64), SeqRanges> = BTreeMap::new();
        for ((writer, run), seqs) in runs {
            let ranges = SeqRanges::of(seqs);
            let (firsts, lasts): (Vec<i64>, Vec<i64>) = ranges.ranges.iter().copied().unzip();
            let done = tx
                .query(&self.claim, &[&writer, &run, &firsts, &lasts])
                .await?;
            if !done.is_empty() {
                committed.insert(
                    (writer, run),
                    SeqRanges {
                        ranges: done.iter().map(|r| (r.get(0), r.get(1))).collect(),
                    },
                );
            }
        }
        let stmt = if staged {
            &self.copy_staged
        } else {
            &self.copy_direct
        };
        let sink = tx.copy_in(stmt).await?;
        let mut w = pin!(BinaryCopyInWriter::new(sink, types));
        let mut seen = HashSet::new();
        for r in rows {
            if let Some(s) = &r.seal {
                let key = (s.writer.as_str(), s.run);
                if committed.get(&key).is_some_and(|c| c.contains(s.seq))
                    || !seen.insert((key, s.seq))
                {
                    continue;
                }
            }
            let v = Values::of(r);
            w.as_mut().write(&v.refs()).await?;
        }
        w.finish().await?;
        if staged {
            tx.execute(&self.move_staged, &[]).await?;
        }
        tx.commit().await
    }
}

/// A row's values as the client sends them.
struct Values<'a> {
    r: &'a PgRow<'a>,
    at: SystemTime,
    start_at: Option<SystemTime>,
    end_at: Option<SystemTime>,
    digest: Option<&'a [u8]>,
}

impl<'a> Values<'a> {
    fn of(r: &'a PgRow<'a>) -> Self {
        let f = r.flow.as_ref();
        Values {
            r,
            at: system_time(r.at),
            start_at: f.and_then(|f| f.start_at).map(system_time),
            end_at: f.and_then(|f| f.end_at).map(system_time),
            digest: r.digest.as_ref().map(|d| &d[..]),
        }
    }

    /// In the order of `pgrow::COLUMNS`.
    fn refs(&self) -> [&(dyn ToSql + Sync); 28] {
        const NONE_TEXT: &Option<&str> = &None;
        const NONE_I16: &Option<i16> = &None;
        const NONE_I32: &Option<i32> = &None;
        const NONE_I64: &Option<i64> = &None;
        const NONE_IP: &Option<IpAddr> = &None;
        const NONE_TIME: &Option<SystemTime> = &None;
        const NONE_BYTES: &Option<Vec<u8>> = &None;
        const NONE_STRING: &Option<String> = &None;
        let r = self.r;
        let (seal_writer, seal_run, seal_seq, seal_mac): (
            &(dyn ToSql + Sync),
            &(dyn ToSql + Sync),
            &(dyn ToSql + Sync),
            &(dyn ToSql + Sync),
        ) = match &r.seal {
            Some(s) => (&s.writer, &s.run, &s.seq, &s.mac),
            None => (NONE_TEXT, NONE_I64, NONE_I64, NONE_BYTES),
        };
        let digest = &self.digest;
        match &r.flow {
            Some(f) => [
                &self.at,
                &r.router,
                &r.instance,
                &r.event,
                &f.nat,
                &f.proto,
                &f.conntrack_id,
                &f.client_ip,
                &f.client_port,
                &f.masq_ip,
                &f.masq_port,
                &f.remote_ip,
                &f.remote_port,
                &f.remote_hash,
                &self.start_at,
                &self.end_at,
                &f.out_pkts,
                &f.out_bytes,
                &f.in_pkts,
                &f.in_bytes,
                &f.ident_status,
                &f.ident_user,
                seal_writer,
                seal_run,
                seal_seq,
                seal_mac,
                &r.line,
                digest,
            ],
            None => [
                &self.at,
                &r.router,
                &r.instance,
                &r.event,
                NONE_TEXT,
                NONE_I16,
                NONE_I64,
                NONE_IP,
                NONE_I32,
                NONE_IP,
                NONE_I32,
                NONE_IP,
                NONE_I32,
                NONE_STRING,
                NONE_TIME,
                NONE_TIME,
                NONE_I64,
                NONE_I64,
                NONE_I64,
                NONE_I64,
                NONE_TEXT,
                NONE_BYTES,
                seal_writer,
                seal_run,
                seal_seq,
                seal_mac,
                &r.line,
                digest,
            ],
        }
    }
}

fn system_time(t: Timestamp) -> SystemTime {
    let sub = Duration::from_micros(u64::from(t.usecs));
    match u64::try_from(t.secs) {
        Ok(s) => UNIX_EPOCH + Duration::from_secs(s) + sub,
        Err(_) => UNIX_EPOCH - Duration::from_secs(t.secs.unsigned_abs()) + sub,
    }
}

/// Has the partitions of days `first ..= last` created (the days are
/// bounded to a year around today; others go to the default partition).
async fn ensure(client: &Client, first: i64, last: i64) -> Result<(), io::Error> {
    let today = Timestamp::now().secs.div_euclid(86_400);
    let (first, last) = (first.max(today - 366), last.min(today + 7));
    if first > last {
        return Ok(());
    }
    client
        .execute(
            "SELECT masqlog.ensure_partitions(DATE '1970-01-01' + $1::int, DATE '1970-01-01' + $2::int)",
            &[
                &i32::try_from(first).unwrap_or(0),
                &i32::try_from(last).unwrap_or(0),
            ],
        )
        .await
        .map(|_| ())
        .map_err(|e| fail(format!("cannot create the daily partitions: {}", describe(&e))))
}

/// Refuses a database without the schema or with another version of it.
async fn check_schema(client: &Client) -> Result<(), io::Error> {
    let row = client
        .query_opt("SELECT max(version) FROM masqlog.schema_version", &[])
        .await
        .map_err(|e| fail(format!("cannot read the schema version: {}", describe(&e))))?;
    let version: Option<i32> = row.and_then(|r| r.get(0));
    match version {
        Some(SCHEMA_VERSION) => Ok(()),
        None => Err(fail(
            "the masqlog schema is incomplete (no version row): run `masqlog db init --db URL`"
                .into(),
        )),
        Some(v) if v < SCHEMA_VERSION => Err(fail(format!(
            "the database holds masqlog schema version {v}, this plugin writes version {SCHEMA_VERSION}: run `masqlog db upgrade --db URL`"
        ))),
        Some(v) => Err(fail(format!(
            "the database holds masqlog schema version {v}, this plugin writes version {SCHEMA_VERSION}: install the masqlog that comes with that schema on this router"
        ))),
    }
}

impl Postgres {
    /// Sends one batch of formatted messages as the writer thread does
    /// (for the end-to-end tests and the bench, which drive the COPY code
    /// without a writer): `Err` with the reason when it was not delivered.
    pub fn deliver(&mut self, msgs: &[Vec<u8>], timeout: Duration) -> Result<(), String> {
        let stop = super::StopSignal::new();
        let limit = Limit {
            end: std::time::Instant::now() + timeout,
            stop: &stop,
            yield_now: None,
        };
        self.send_batch(msgs, &limit).map_err(|(n, e)| match e {
            SendError::Retry(e) | SendError::Reject(e) => format!("after {n} messages: {e}"),
            SendError::Yield => format!("after {n} messages: yielded"),
        })
    }
}

impl Transport for Postgres {
    fn send(&mut self, msg: &[u8], limit: &Limit<'_>) -> Result<(), SendError> {
        self.send_batch(std::slice::from_ref(&msg.to_vec()), limit)
            .map_err(|(_, e)| e)
    }

    fn send_batch(
        &mut self,
        msgs: &[Vec<u8>],
        limit: &Limit<'_>,
    ) -> Result<(), (usize, SendError)> {
        let now = Timestamp::now();
        let mut rows = Vec::with_capacity(msgs.len());
        let mut days = BTreeSet::new();
        for (i, m) in msgs.iter().enumerate() {
            match row(m, now) {
                Ok(r) => {
                    days.insert(r.day());
                    rows.push(r);
                }
                Err(e) if i == 0 => {
                    return Err((0, SendError::Reject(fail(format!("not a row: {e}")))));
                }
                // Those before it go first; it is refused on its own.
                Err(_) => {
                    return match self.write(&rows, &days, limit) {
                        Ok(()) => Err((
                            i,
                            SendError::Retry(fail("a message that is no row follows".into())),
                        )),
                        Err(e) => Err((0, SendError::Retry(e))),
                    };
                }
            }
        }
        self.write(&rows, &days, limit)
            .map_err(|e| (0, SendError::Retry(e)))
    }
}
