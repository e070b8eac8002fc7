//! The `postgresql://` destination: each batch becomes rows of
//! `masqlog.flow_log` (schema: `sql/schema_v1.sql`, installed by
//! `masqlog db init`), sent with `COPY` into a temporary staging table and
//! moved with `INSERT ... ON CONFLICT DO NOTHING`, in one transaction per
//! batch.
//!
//! The writer hands this transport the same formatted messages it hands
//! any other, and the spool keeps and replays those same bytes; the rows
//! are made from them (`masqlog_core::pgrow`), so a batch sent twice (a
//! replay after a crash between the commit and the spool's mark, a retry
//! after a connection lost during the commit) gives the same rows, which
//! the unique key on `(at, digest)` keeps once.
//!
//! At connect the transport checks the schema version (another version, or
//! none, is refused with the command that fixes it) and has the partitions
//! of yesterday to the day after tomorrow created; a batch holding a day
//! not seen yet has that day's partition created first (by the
//! `SECURITY DEFINER` function `masqlog.ensure_partitions`, which the
//! routers' insert-only role may call), so no insert waits for a partition
//! at midnight. Any failure drops the connection and is a `Retry`: the
//! batch goes to the spool, and the next attempt connects anew.

use std::collections::BTreeSet;
use std::io::{self, Write as _};
use std::str::FromStr;
use std::time::Duration;

use postgres::error::SqlState;
use postgres::{Client, NoTls};

use super::transport::{Limit, SendError, Transport};
use masqlog_core::config::PgTarget;
use masqlog_core::pgrow::{COLUMNS, SCHEMA_VERSION, write_row};
use masqlog_core::record::Timestamp;

/// Days whose partition is known to exist, at most (then forgotten).
const DAYS_KEPT: usize = 64;
/// The shortest connect timeout handed to the client.
const MIN_CONNECT: Duration = Duration::from_secs(1);

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
    seal_mac text, line text, digest bytea) ON COMMIT DELETE ROWS;";

/// A PostgreSQL database as a destination.
pub struct Postgres {
    target: PgTarget,
    client: Option<Client>,
    /// UTC days (since 1970-01-01) that have a partition.
    days: BTreeSet<i64>,
    /// The batch's rows in COPY text form, reused.
    rows: Vec<u8>,
}

/// A failure, as the writer's notices show it.
fn fail(what: String) -> io::Error {
    io::Error::other(what)
}

/// A database error with its SQLSTATE and what it means for the operator.
fn describe(e: &postgres::Error) -> String {
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
    postgres::Config::from_str(&target.url)
        .map(|_| ())
        .map_err(|e| format!("{}: not a PostgreSQL URL the client reads: {e} (in ulogd.conf, a URL with `=` in it must be in double quotes)", target.url))
}

/// The client configuration of `target` (the password read from its file).
pub(crate) fn client_config(target: &PgTarget) -> Result<postgres::Config, String> {
    let mut cfg = postgres::Config::from_str(&target.url)
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
            target,
            client: None,
            days: BTreeSet::new(),
            rows: Vec::new(),
        }
    }

    /// Connects, checks the schema, makes the staging table and the
    /// partitions around today.
    fn connect(&mut self, limit: &Limit<'_>) -> Result<&mut Client, io::Error> {
        if self.client.is_none() {
            let mut cfg = client_config(&self.target).map_err(fail)?;
            cfg.connect_timeout(limit.left().max(MIN_CONNECT));
            let mut client = cfg
                .connect(NoTls)
                .map_err(|e| fail(format!("cannot connect: {}", describe(&e))))?;
            check_schema(&mut client)?;
            client
                .batch_execute(&format!(
                    "{STAGE} SET statement_timeout = {};",
                    // A hung server ends a batch, not the writer.
                    limit.left().max(Duration::from_secs(10)).as_millis()
                ))
                .map_err(|e| {
                    fail(format!(
                        "cannot prepare the staging table: {}",
                        describe(&e)
                    ))
                })?;
            self.days.clear();
            let today = Timestamp::now().secs.div_euclid(86_400);
            ensure(&mut client, today - 1, today + 2)?;
            self.days.extend(today - 1..=today + 2);
            self.client = Some(client);
        }
        Ok(self.client.as_mut().expect("connected above"))
    }

    /// One transaction: the rows in `self.rows` copied and moved.
    fn write(&mut self, days: &BTreeSet<i64>, limit: &Limit<'_>) -> Result<(), io::Error> {
        let rows = std::mem::take(&mut self.rows);
        let r = self.write_rows(&rows, days, limit);
        self.rows = rows;
        if r.is_err() {
            self.client = None;
        }
        r
    }

    fn write_rows(
        &mut self,
        rows: &[u8],
        days: &BTreeSet<i64>,
        limit: &Limit<'_>,
    ) -> Result<(), io::Error> {
        let new: Vec<i64> = days.difference(&self.days).copied().collect();
        let client = self.connect(limit)?;
        for &d in &new {
            ensure(client, d, d)?;
        }
        // The common case: COPY straight into the table. A row that is
        // there already (a batch sent again) fails the whole COPY with a
        // unique violation; then the batch goes the careful way, through
        // the staging table and ON CONFLICT DO NOTHING.
        match copy_direct(client, rows) {
            Ok(()) => {}
            Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
                copy_staged(client, rows).map_err(|e| fail(describe(&e)))?;
            }
            Err(e) => return Err(fail(describe(&e))),
        }
        if self.days.len() + new.len() > DAYS_KEPT {
            self.days.clear();
        }
        self.days.extend(new);
        Ok(())
    }
}

/// The batch by COPY into `masqlog.flow_log`, in one transaction.
fn copy_direct(client: &mut Client, rows: &[u8]) -> Result<(), postgres::Error> {
    let mut tx = client.transaction()?;
    let mut w = tx.copy_in(&format!("COPY masqlog.flow_log ({COLUMNS}) FROM STDIN"))?;
    // A write error is the connection's: `finish` reports it.
    let _ = w.write_all(rows);
    w.finish()?;
    tx.commit()
}

/// The batch by COPY into the staging table, then INSERT ... ON CONFLICT
/// DO NOTHING: the rows already there are skipped. One transaction.
fn copy_staged(client: &mut Client, rows: &[u8]) -> Result<(), postgres::Error> {
    let mut tx = client.transaction()?;
    let mut w = tx.copy_in(&format!("COPY masqlog_stage ({COLUMNS}) FROM STDIN"))?;
    let _ = w.write_all(rows);
    w.finish()?;
    tx.batch_execute(&format!(
        "INSERT INTO masqlog.flow_log ({COLUMNS}) SELECT {COLUMNS} FROM masqlog_stage ON CONFLICT DO NOTHING"
    ))?;
    tx.commit()
}

/// Has the partitions of days `first ..= last` created (the days are
/// bounded to a year around today; others go to the default partition).
fn ensure(client: &mut Client, first: i64, last: i64) -> Result<(), io::Error> {
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
        .map(|_| ())
        .map_err(|e| fail(format!("cannot create the daily partitions: {}", describe(&e))))
}

/// Refuses a database without the schema or with another version of it.
fn check_schema(client: &mut Client) -> Result<(), io::Error> {
    let row = client
        .query_opt("SELECT max(version) FROM masqlog.schema_version", &[])
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
        self.rows.clear();
        let now = Timestamp::now();
        let mut days = BTreeSet::new();
        for (i, m) in msgs.iter().enumerate() {
            match write_row(m, now, &mut self.rows) {
                Ok(info) => {
                    days.insert(info.day());
                }
                Err(e) if i == 0 => {
                    return Err((0, SendError::Reject(fail(format!("not a row: {e}")))));
                }
                // Those before it go first; it is refused on its own.
                Err(_) => {
                    return match self.write(&days, limit) {
                        Ok(()) => Err((
                            i,
                            SendError::Retry(fail("a message that is no row follows".into())),
                        )),
                        Err(e) => Err((0, SendError::Retry(e))),
                    };
                }
            }
        }
        self.write(&days, limit)
            .map_err(|e| (0, SendError::Retry(e)))
    }
}
