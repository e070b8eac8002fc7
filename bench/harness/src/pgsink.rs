//! A throwaway PostgreSQL cluster that a router writes to, shared by the
//! benchmarks: the schema installed, a writer role `gw` with its password
//! in a file; the table's lines counted by kind, and the CPU time of the
//! writer role's backends.

use std::sync::Arc;

use anyhow::{Context, Result};
use masqlog_command::db;
use masqlog_lab::TempCluster;

/// The database and the role routers write with.
const DB: &str = "masqlog";
const WRITER: &str = "gw";

/// A running cluster with the masqlog schema.
pub struct PgSink {
    pub cluster: Arc<TempCluster>,
    /// What a router's `destination` is set to (the password in a file).
    pub url: String,
}

impl PgSink {
    /// Starts the cluster, creates the database and the schema, and the
    /// writer role.
    pub fn start() -> Result<PgSink> {
        let c = TempCluster::start().context("starting PostgreSQL")?;
        c.psql("postgres", &format!("CREATE DATABASE {DB}"))?;
        let admin = c.superuser_url_with_file(DB)?;
        let mut client = db::connect(&admin)?;
        db::init(&mut client, 3)?;
        c.psql(
            DB,
            &format!("CREATE ROLE {WRITER} LOGIN PASSWORD 'pw-gw' IN ROLE masqlog_writer"),
        )?;
        let pw = c.password_file(WRITER, "pw-gw")?;
        let url = format!("{}&password_file={}", c.url(WRITER, DB), pw.display());
        Ok(PgSink {
            cluster: Arc::new(c),
            url,
        })
    }

    /// Runs SQL as the superuser in the masqlog database.
    pub fn psql(&self, sql: &str) -> Result<String> {
        Ok(self.cluster.psql(DB, sql)?)
    }

    /// CPU time (ns) of the writer role's backends now running.
    pub fn backend_ns(&self) -> u64 {
        self.psql(&format!(
            "SELECT pid FROM pg_stat_activity WHERE usename = '{WRITER}'"
        ))
        .unwrap_or_default()
        .lines()
        .filter_map(|p| p.trim().parse().ok())
        .map(process_ns)
        .sum()
    }
}

/// CPU time (ns) of process `pid` (all threads).
pub fn process_ns(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/schedstat"))
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}
