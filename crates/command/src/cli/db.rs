//! `masqlog db`: the PostgreSQL database that routers write to
//! (`destination=postgresql://...`): create its schema, keep its daily
//! partitions ahead, drop old ones, show its state.

use std::process::ExitCode;

use masqlog_command::db;

const AFTER_HELP: &str = "\
Set-up (as the database's owner; the schema ships as sql/schema_v1.sql):
  createdb masqlog
  masqlog db init --db 'postgresql://postgres@localhost/masqlog?host=/run/postgresql'
  # one login role per router, insert-only; one per abuse-desk member, read-only
  psql masqlog -c \"CREATE ROLE gw1 LOGIN PASSWORD '...' IN ROLE masqlog_writer\"
  psql masqlog -c \"CREATE ROLE desk LOGIN PASSWORD '...' IN ROLE masqlog_reader\"

Daily timer (partitions a week ahead, 90 days kept):
  masqlog db partitions --db URL --ahead 7
  masqlog db retention --db URL --keep-days 90

URL: postgresql://USER@HOST[:PORT]/DB, `?host=/DIR` for a Unix socket,
`password_file=/PATH` for a file holding only the password (mode 0600).

Exit status: 0 done, 2 error (no connection, no schema, another version).";

/// Create and keep the PostgreSQL schema that routers write flows to.
#[derive(clap::Args, Debug)]
#[command(after_help = AFTER_HELP)]
pub struct DbArgs {
    #[command(subcommand)]
    pub action: DbAction,
}

#[derive(clap::Subcommand, Debug)]
pub enum DbAction {
    /// Create the schema (table partitioned by day, indexes, the flows
    /// view, the roles masqlog_writer and masqlog_reader, the version
    /// table) and the partitions of yesterday to --ahead days from today.
    /// On a database that already holds this version, only the partitions
    /// are made; another version is refused.
    Init(DbCommon),
    /// Bring the schema to this masqlog's version. Version 1 is the only
    /// one: says so when the database holds it, refuses another.
    Upgrade(DbCommon),
    /// Create the daily partitions of yesterday to --ahead days from today
    /// (run it daily from a timer; the plugin also makes them at start and
    /// for each new day it writes).
    Partitions(DbCommon),
    /// Drop the daily partitions older than --keep-days days (whole
    /// partitions: no row-by-row delete).
    Retention(RetentionArgs),
    /// The schema version, the partitions with rows and size, and a warning
    /// when the default partition holds rows.
    Status(DbCommon),
}

#[derive(clap::Args, Debug)]
pub struct DbCommon {
    /// The database: postgresql://USER@HOST/DB[?host=/DIR&password_file=/PATH]
    #[arg(long, value_name = "URL")]
    pub db: String,
    /// Days ahead of today to have partitions for.
    #[arg(long, value_name = "DAYS", default_value_t = 7)]
    pub ahead: u32,
}

#[derive(clap::Args, Debug)]
pub struct RetentionArgs {
    #[command(flatten)]
    pub common: DbCommon,
    /// Keep this many days before today; older partitions are dropped.
    #[arg(long, value_name = "DAYS")]
    pub keep_days: u32,
}

pub fn run(args: &DbArgs) -> anyhow::Result<ExitCode> {
    let url = match &args.action {
        DbAction::Init(c)
        | DbAction::Upgrade(c)
        | DbAction::Partitions(c)
        | DbAction::Status(c) => c,
        DbAction::Retention(r) => &r.common,
    };
    let mut client = db::connect(&url.db)?;
    match &args.action {
        DbAction::Init(c) => {
            let created = db::init(&mut client, c.ahead)?;
            if created {
                println!("created masqlog schema version {}", db::SCHEMA_VERSION);
            } else {
                println!(
                    "the database already holds masqlog schema version {}",
                    db::SCHEMA_VERSION
                );
            }
        }
        DbAction::Upgrade(_) => {
            db::check_version(&mut client)?;
            println!(
                "masqlog schema version {} is current: nothing to do",
                db::SCHEMA_VERSION
            );
        }
        DbAction::Partitions(c) => {
            let n = db::partitions(&mut client, c.ahead)?;
            println!(
                "{n} daily partitions created (yesterday to {} days ahead)",
                c.ahead
            );
        }
        DbAction::Retention(r) => {
            let dropped = db::retention(&mut client, r.keep_days)?;
            for d in &dropped {
                println!("dropped masqlog.{d}");
            }
            println!(
                "{} partitions dropped (kept {} days)",
                dropped.len(),
                r.keep_days
            );
        }
        DbAction::Status(_) => {
            let s = db::status(&mut client)?;
            println!("schema version {}", s.version);
            for (name, rows, bytes) in &s.partitions {
                println!(
                    "masqlog.{name}: ~{rows} rows, {} MiB with indexes",
                    bytes >> 20
                );
            }
            if s.default_rows > 0 {
                eprintln!(
                    "warning: the default partition holds {} rows (records of days that had no partition): run `masqlog db partitions` from a daily timer",
                    s.default_rows
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
