//! `masqlog verify`: reads logs (files, directories, rotated and compressed
//! sets, stdin) and says, per writer, whether its sealed chain is intact.

use std::io::{self, IsTerminal, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use masqlog_command::db;
use masqlog_command::json::Json;
use masqlog_command::lookup::source::{self, Input, Opened, Spec};
use masqlog_command::verify::{self, Listed, Loc, Report, Verifier};
use masqlog_core::seal::VerifyKey;

/// Check sealed masqlog logs: is every record there, unaltered, in order?
///
/// Every record a sealing plugin writes carries its writer (HOST/INSTANCE),
/// a run and sequence number, and a MAC under a key that changes every
/// epoch. With the router's verification key (from `masqlog keygen`),
/// verify reports for each writer: the records that verify, the lines that
/// are forged or altered (file:line), the sequence numbers missing inside
/// a run, records that do not follow the one before them, a run whose tail
/// is missing (the next run's chain-start record names its last record),
/// runs that did not stop cleanly, lines out of order and duplicates.
/// Lines of other programs are passed over; masqlog records without a seal
/// are counted. It needs no network and no database, but reads one when
/// given (--db): every row of masqlog.flow_log, each named by its table,
/// router and sequence number, and the database's ledger of committed
/// sequence ranges, which tells rows that were deleted from records that
/// never arrived.
///
/// Exit status: 0 every chain intact; 1 something is forged, altered or
/// missing, or nothing could be verified; 2 an error (unreadable key or
/// log, a database that cannot be read).
///
/// Example: masqlog verify --key /secure/gw1.verify-key /var/log/masqlog.log*
///
/// Example: masqlog verify --key /secure/gw1.verify-key /var/lib/masqlog/store
///
/// Example: masqlog verify --key gw1.verify-key --key gw2.verify-key --db 'postgresql://desk@db.example/masqlog?password_file=/root/.masqlog-db'
#[derive(clap::Args, Debug)]
pub struct VerifyArgs {
    /// A verification key file (from `masqlog keygen`); once per router.
    #[arg(long = "key", value_name = "FILE", required = true)]
    pub keys: Vec<PathBuf>,
    /// The logs: files, directories (their files), rotated sets (.1, .2.gz,
    /// ...), gzip or zstd, or an evidence store's directory (`store_dir`:
    /// its segments, oldest first; a line is named by its segment file and
    /// line number); `-` or nothing for standard input (nothing with --db:
    /// the database alone).
    #[arg(value_name = "LOG")]
    pub logs: Vec<PathBuf>,
    /// Also verify the rows of a PostgreSQL database that routers write to
    /// (`destination=postgresql://...`): postgresql://USER@HOST/DB
    /// (`?host=/DIR` for a Unix socket, `&password_file=/PATH` for the
    /// password; the abuse desk's masqlog_reader role suffices). Every row
    /// is read, from one snapshot, a few thousand at a time; their order in
    /// the table means nothing, the sequence numbers give it. A missing
    /// record the ledger (masqlog.seal_ledger) says was committed is
    /// reported as deleted, not as never arrived.
    #[arg(long, value_name = "URL")]
    pub db: Option<String>,
    /// Print the report as one JSON object.
    #[arg(long)]
    pub json: bool,
}

fn read_key(path: &std::path::Path) -> anyhow::Result<VerifyKey> {
    verify::read_key(path)
        .map_err(|why| anyhow::anyhow!("verification key {}: {why}", path.display()))
}

pub fn run(args: &VerifyArgs) -> anyhow::Result<ExitCode> {
    let keys = args
        .keys
        .iter()
        .map(|p| read_key(p))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut inputs: Vec<Input> = Vec::new();
    for p in &args.logs {
        // An evidence store: its segments, oldest first.
        match verify::store_segments(p)
            .map_err(|e| anyhow::anyhow!("store {}: {e}", p.display()))?
        {
            Some(segs) => inputs.extend(segs.into_iter().map(Input::Path)),
            None => inputs.push(Input::from_arg(p)),
        }
    }
    if args.logs.is_empty() && args.db.is_none() {
        inputs.push(Input::Stdin);
    }
    let (specs, notes, problems) = source::expand(&inputs);
    if let Some((path, why)) = problems.first() {
        bail!("cannot read {path}: {why}");
    }
    for n in &notes {
        eprintln!("masqlog verify: {n}");
    }
    let progress = io::stderr().is_terminal() && specs.len() > 1;
    let mut verifier = Verifier::new(&keys);
    let from_db = match &args.db {
        // Once rows are mixed in, the order of what is read means nothing.
        Some(url) => {
            verifier = verifier.unordered();
            Some(db_rows(url, &mut verifier, io::stderr().is_terminal())?)
        }
        None => None,
    };
    for spec in &specs {
        let name = spec.name();
        if progress {
            eprintln!("masqlog verify: reading {name}");
        }
        let opened = match spec {
            Spec::Stdin => source::stdin_stream(Box::new(io::stdin().lock())),
            Spec::File(p) => source::open_file(p),
            Spec::Rows(r) => source::stdin_stream(Box::new(io::Cursor::new(r.text.clone()))),
        }
        .map_err(|e| anyhow::anyhow!("cannot read {name}: {e}"))?;
        let reader: Box<dyn Read> = match opened {
            Opened::Plain { file, .. } => Box::new(file),
            Opened::Stream { reader, .. } => reader,
        };
        verify::read_lines(&mut verifier, &name, reader)
            .with_context(|| format!("reading {name}"))?;
    }
    let mut report = verifier.finish();
    if let Some(read) = &from_db {
        report.apply_ledger(&read.committed, read.edge.as_ref());
    }
    let mut out = Vec::new();
    if args.json {
        to_json(&report).write(&mut out);
        out.push(b'\n');
    } else {
        render(&report, &mut out);
    }
    io::stdout().write_all(&out)?;
    Ok(if report.intact() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Feeds the database's rows to `verifier`, and reads the ledger of
/// committed ranges and retention's edge with them.
fn db_rows(url: &str, verifier: &mut Verifier<'_>, progress: bool) -> anyhow::Result<db::Verified> {
    let mut client = db::connect(url)?;
    let mut told = 0u64;
    let read = db::verify_rows(&mut client, verifier, |n| {
        if progress && n >= told + 1_000_000 {
            told = n;
            eprintln!("masqlog verify: {n} rows read from the database");
        }
    })?;
    if progress {
        eprintln!("masqlog verify: {} rows read from the database", read.rows);
    }
    Ok(read)
}

fn listed(out: &mut Vec<u8>, what: &str, l: &Listed) {
    if l.count == 0 {
        return;
    }
    let _ = writeln!(out, "{what}: {}", l.count);
    for (loc, why) in &l.locs {
        let _ = writeln!(out, "  {loc}: {why}");
    }
    if l.count > l.locs.len() as u64 {
        let _ = writeln!(out, "  ... and {} more", l.count - l.locs.len() as u64);
    }
}

/// The report for people: a verdict per writer first, then what is wrong.
pub fn render(r: &Report, out: &mut Vec<u8>) {
    for w in &r.writers {
        let records: u64 = w.runs.iter().map(|r| r.3).sum();
        let runs: Vec<String> = w
            .runs
            .iter()
            .map(|(run, a, b, _)| format!("run {run} seq {a}-{b}"))
            .collect();
        let verdict = if w.problems.is_empty() {
            "intact"
        } else {
            "BROKEN"
        };
        let _ = writeln!(
            out,
            "{}: {verdict}: {records} records verify ({})",
            w.writer,
            runs.join(", ")
        );
        for p in &w.problems {
            let _ = writeln!(out, "  FAIL  {p}");
        }
        for n in &w.notes {
            let _ = writeln!(out, "  note  {n}");
        }
    }
    listed(out, "forged or altered lines", &r.forged);
    listed(out, "masqlog records without a seal", &r.unsealed);
    for (host, n) in &r.no_key {
        let _ = writeln!(
            out,
            "{n} sealed records of host {host}: no key given for it (--key)"
        );
    }
    let _ = writeln!(
        out,
        "{} lines read; {}",
        r.lines,
        if r.intact() {
            "every chain is intact"
        } else if r.writers.is_empty() {
            "nothing could be verified"
        } else {
            "NOT intact: see the FAIL lines and the forged lines above"
        }
    );
}

fn loc_json(l: &Loc) -> Json {
    match l {
        Loc::Line { input, line } => Json::obj([
            ("file", Json::str(input.to_string())),
            ("line", Json::Int(*line as i64)),
        ]),
        // A database row: its name says where it is.
        Loc::Row { .. } | Loc::Named(_) => Json::obj([("row", Json::str(l.to_string()))]),
    }
}

fn listed_json(l: &Listed) -> Json {
    Json::obj([
        ("count", Json::Int(l.count as i64)),
        (
            "lines",
            Json::Arr(
                l.locs
                    .iter()
                    .map(|(loc, why)| {
                        Json::obj([("at", loc_json(loc)), ("why", Json::str(why.clone()))])
                    })
                    .collect(),
            ),
        ),
    ])
}

/// The report as JSON.
pub fn to_json(r: &Report) -> Json {
    let writers = r
        .writers
        .iter()
        .map(|w| {
            Json::obj([
                ("writer", Json::str(w.writer.to_string())),
                ("intact", Json::Bool(w.problems.is_empty())),
                (
                    "runs",
                    Json::Arr(
                        w.runs
                            .iter()
                            .map(|(run, a, b, n)| {
                                Json::obj([
                                    ("run", Json::Int(*run as i64)),
                                    ("first_seq", Json::Int(*a as i64)),
                                    ("last_seq", Json::Int(*b as i64)),
                                    ("records", Json::Int(*n as i64)),
                                ])
                            })
                            .collect(),
                    ),
                ),
                (
                    "problems",
                    Json::Arr(
                        w.problems
                            .iter()
                            .map(|p| Json::str(p.to_string()))
                            .collect(),
                    ),
                ),
                (
                    "notes",
                    Json::Arr(w.notes.iter().map(|n| Json::str(n.to_string())).collect()),
                ),
            ])
        })
        .collect();
    Json::obj([
        ("intact", Json::Bool(r.intact())),
        ("lines", Json::Int(r.lines as i64)),
        ("writers", Json::Arr(writers)),
        ("forged", listed_json(&r.forged)),
        ("unsealed", listed_json(&r.unsealed)),
        (
            "no_key",
            Json::Obj(
                r.no_key
                    .iter()
                    .map(|(h, n)| (h.clone(), Json::Int(*n as i64)))
                    .collect(),
            ),
        ),
    ])
}
