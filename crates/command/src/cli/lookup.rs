//! `masqlog lookup`: who was public ip:port at time T, answered from the
//! plugin's log lines (and port-block rule files): the answer first, the
//! evidence after, `--json` for machines. The work is in
//! [`masqlog_command::lookup`]; this is the command line around it.

use std::io::{self, IsTerminal, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use masqlog_command::json::Json;
use masqlog_command::lookup::batch::{self, ReportLine};
use masqlog_command::lookup::render::{self, Answer};
use masqlog_command::lookup::{
    self, AbuseReport, Input, LookupError, Progress, Scan, ScanOptions, portblock, query,
};
use masqlog_command::portblock::RuleFile;
use masqlog_command::when::{self, TimeError, Zone};

const AFTER_HELP: &str = "\
Examples:
  masqlog lookup 192.0.2.1:53500 --at '2026-11-21 13:37:42 CET' /var/log/
  masqlog lookup 192.0.2.1:53500 --at 2026-11-21T12:37:42Z --remote 203.0.113.7:443 /var/log/syslog*
  zcat old/syslog.9.gz | masqlog lookup '[2001:db8::1]:53500' --at @1795264662 --json
  masqlog lookup --reports reports.csv /var/log/
  masqlog lookup 192.0.2.1:53500 --at '2026-11-21 13:37:42 CET' --db 'postgresql://desk@db.example/masqlog?password_file=/root/.masqlog-db'
  masqlog lookup 192.0.2.1:65300 --at '2026-11-21 13:37:42' --portblock-state /var/lib/masqlog/portblock

Times: RFC 3339, `YYYY-MM-DD HH:MM:SS` with a zone name (Europe/Amsterdam), an
abbreviation (CET, CEST, EST, PST, UTC, ...: fixed offsets) or an offset
(+01:00, +0100), mail and access-log dates, `date` output, `@UNIX` seconds.
A time without a zone is read in --tz. A local time the clocks skipped is an
error; one that happened twice is searched at both instants.

A flow matches when the time is within its lifetime, widened by --slack on
both sides. Flows that started more than --max-age before the time are not
looked for (`--max-age unlimited` reads everything); plain files are
bisected to the window by their syslog timestamps.

Reports file (--reports): CSV with a header `public,time[,remote][,proto]`,
or JSON lines {\"public\":\"192.0.2.1:53500\",\"at\":\"...\",\"remote\":\"...\"}.

Exit status: 0 found, 1 not found, 2 bad input (or nothing found while an
input could not be read). Batch: 0 all found, 1 some not found, 2 a bad
report line.";

/// Who was public ip:port at time T: answers an abuse report from
/// masqlog's log lines.
#[derive(clap::Args, Debug, Clone)]
#[command(after_long_help = AFTER_HELP)]
pub struct LookupArgs {
    /// The public (masquerade) endpoint from the report: 192.0.2.1:53500,
    /// [2001:db8::1]:53500. With --reports, this is the first LOG.
    #[arg(value_name = "PUBLIC")]
    pub public: Option<String>,

    /// Log files, directories (their files) and rotated sets (syslog,
    /// syslog.1, syslog.2.gz, ...; gzip and zstd by magic bytes) or
    /// evidence stores to read; `-`: stdin. None: stdin when lines are
    /// piped in, else the package's evidence store
    /// (/var/lib/masqlog/store) when there is one.
    #[arg(value_name = "LOG")]
    pub logs: Vec<PathBuf>,

    /// When it happened, as the report says: 2026-11-21 13:37:42 CET,
    /// 2026-11-21T12:37:42Z, @1795264662, ...
    #[arg(long, short = 't', value_name = "TIME")]
    pub at: Option<String>,

    /// The remote endpoint the report names (ip or ip:port): flows to other
    /// addresses are left out; flows to another port of it rank last.
    #[arg(long, value_name = "ADDR")]
    pub remote: Option<String>,

    /// Only flows of this protocol (tcp, udp, icmp, ... or a number).
    #[arg(long, value_name = "PROTO")]
    pub proto: Option<String>,

    /// How far the report's clock may be off: widens every flow's lifetime
    /// on both sides (90s, 2m, 1h).
    #[arg(long, value_name = "DURATION", default_value = "2m")]
    pub slack: String,

    /// The longest a flow may have lived (TCP connections can last days:
    /// raise it for them), or `unlimited` to read all of every log.
    #[arg(long, value_name = "DURATION", default_value = "24h")]
    pub max_age: String,

    /// The zone of times given without one; default: the system's (TZ,
    /// /etc/localtime).
    #[arg(long, value_name = "ZONE")]
    pub tz: Option<String>,

    /// One JSON object (per report, one per line with --reports).
    #[arg(long)]
    pub json: bool,

    /// The router's verification key (from `masqlog keygen`), once per
    /// router. With a key only sealed lines whose MAC verifies can be the
    /// answer; other masqlog-looking lines about the address are named in
    /// a note and never used, and a record seen twice counts once. Without
    /// one, the answer says that nothing was authenticated.
    #[arg(long = "key", value_name = "FILE")]
    pub keys: Vec<PathBuf>,

    /// Answer many reports in one pass: a CSV (header public,time[,remote][,proto])
    /// or JSON-lines file.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["at", "remote", "proto"])]
    pub reports: Option<PathBuf>,

    /// Also ask the port-block rule history in DIR (`masqlog portblock
    /// apply`'s state directory) which inside address owned the port.
    #[arg(long, value_name = "DIR")]
    pub portblock_state: Option<PathBuf>,

    /// Read every line of every input: no bisection, no skipping by time.
    #[arg(long)]
    pub scan_all: bool,

    /// Answer from a PostgreSQL database that routers write to
    /// (`destination=postgresql://...`; schema by `masqlog db init`)
    /// instead of, or besides, log files: postgresql://USER@HOST/DB
    /// (`?host=/DIR` for a Unix socket, `&password_file=/PATH` for the
    /// password). Only the rows about the public endpoint in the search
    /// window are read (by the index on address, port and time); the
    /// answer, evidence and exit status are those of a lookup in files,
    /// each evidence line named by its table, router and sequence number.
    #[arg(long, value_name = "URL")]
    pub db: Option<String>,
    /// Answer from the evidence store in DIR (the plugin's `store_dir`):
    /// only the segments of the report's time are searched, through their
    /// indexes. A store given as a LOG directory is recognised by itself;
    /// this names it explicitly and may be repeated.
    #[arg(long = "store", value_name = "DIR")]
    pub stores: Vec<PathBuf>,
}

/// How a lookup ended, as the exit status says it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// 0: found (batch: every report).
    Found,
    /// 1: not found (batch: some report).
    NotFound,
    /// 2: bad input found on the way (a bad report line; nothing found
    /// while an input could not be read).
    BadInput,
}

impl Exit {
    pub fn code(self) -> u8 {
        match self {
            Exit::Found => 0,
            Exit::NotFound => 1,
            Exit::BadInput => 2,
        }
    }
}

/// Where a lookup reads and writes (the real streams, or test buffers).
pub struct Io<'a> {
    pub stdin: Option<Box<dyn Read>>,
    pub stdin_is_tty: bool,
    pub out: &'a mut dyn Write,
    pub err: &'a mut dyn Write,
    /// Show a progress bar on stderr.
    pub progress: bool,
    /// Read when no LOG is given and stdin is a terminal: the package's
    /// evidence store, when there is one.
    pub default_store: Option<PathBuf>,
}

/// Runs `masqlog lookup` on the real stdin, stdout and stderr. Errors are
/// bad input (exit 2, printed by `main`), or a closed stdout (`| head`),
/// which `main` ends quietly with 0.
pub fn run(args: &LookupArgs) -> Result<ExitCode, LookupError> {
    let stdin = io::stdin();
    let stdin_is_tty = stdin.is_terminal();
    let stdout = io::stdout();
    let mut out = io::BufWriter::with_capacity(1 << 16, stdout.lock());
    let mut err = io::stderr();
    let progress = err.is_terminal();
    let package_store = PathBuf::from(masqlog_command::package::STORE_DIR);
    let result = run_with(
        args,
        Io {
            stdin: Some(Box::new(stdin)),
            stdin_is_tty,
            out: &mut out,
            err: &mut err,
            progress,
            default_store: masqlog_core::store::is_store(&package_store).then_some(package_store),
        },
    )
    .and_then(|exit| out.flush().map(|()| exit).map_err(LookupError::from));
    exit_code(result).map(ExitCode::from)
}

/// The exit status of a finished lookup.
pub fn exit_code(result: Result<Exit, LookupError>) -> Result<u8, LookupError> {
    result.map(Exit::code)
}

/// A progress bar on stderr: bytes read of the total, drawn only after a
/// second and at most ten times a second, erased at the end.
struct Bar {
    start: Instant,
    last: Option<Instant>,
    drawn: bool,
}

impl Progress for Bar {
    fn update(&mut self, name: &str, done: u64, total: u64) {
        let now = Instant::now();
        if now.duration_since(self.start) < Duration::from_secs(1)
            || self
                .last
                .is_some_and(|l| now.duration_since(l) < Duration::from_millis(100))
        {
            return;
        }
        self.last = Some(now);
        let name: String = name
            .chars()
            .rev()
            .take(40)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        let line = if total > 0 {
            let pct = (done.min(total) * 100 / total.max(1)) as usize;
            let filled = pct / 5;
            format!(
                "\r\x1b[2K[{}{}] {} / {}  {name}",
                "#".repeat(filled),
                " ".repeat(20 - filled),
                render::human_bytes(done),
                render::human_bytes(total)
            )
        } else {
            format!("\r\x1b[2K{} read  {name}", render::human_bytes(done))
        };
        let _ = io::stderr().write_all(line.as_bytes());
        self.drawn = true;
    }

    fn finish(&mut self) {
        if self.drawn {
            let _ = io::stderr().write_all(b"\r\x1b[2K");
            self.drawn = false;
        }
    }
}

fn max_age(s: &str) -> Result<Option<i64>, TimeError> {
    match s.trim().to_ascii_lowercase().as_str() {
        "unlimited" | "none" | "inf" | "infinite" => Ok(None),
        other => when::parse_duration(other).map(Some),
    }
}

/// The parts of a query every report shares.
struct Common {
    zone: Result<Zone, TimeError>,
    slack: i64,
    max_age: Option<i64>,
}

fn build_query(
    c: &Common,
    public: &str,
    at: &str,
    remote: Option<&str>,
    proto: Option<&str>,
) -> Result<AbuseReport, LookupError> {
    let (public_ip, public_port) = query::parse_public(public).map_err(|e| {
        if is_time(public) {
            swapped(format!("{public:?} is a time, not IP:PORT"))
        } else {
            e
        }
    })?;
    let at = when::parse_report_time(at, &c.zone).map_err(|e| {
        if query::parse_public(at).is_ok() {
            swapped(format!("--at {at:?} is an address, not a time"))
        } else {
            e.into()
        }
    })?;
    Ok(AbuseReport {
        public_ip,
        public_port,
        at,
        remote: remote.map(query::parse_remote).transpose()?,
        proto: proto.map(query::parse_proto).transpose()?,
        slack: c.slack,
        max_age: c.max_age,
    })
}

/// Whether `s` reads as a report time (in UTC if it names no zone).
fn is_time(s: &str) -> bool {
    when::parse_report_time(s, &Ok(Zone::utc())).is_ok()
}

fn swapped(what: String) -> LookupError {
    LookupError::Swapped { what }
}

/// Prints what went wrong while reading: unreadable inputs and masqlog
/// lines that do not parse (the first 100; the count always).
fn report_problems(err: &mut dyn Write, scan: &Scan) -> io::Result<()> {
    for (name, why) in &scan.unreadable {
        writeln!(err, "error: {name}: {why}")?;
    }
    const SHOWN: usize = 100;
    for b in scan.bad_lines.iter().take(SHOWN) {
        writeln!(err, "{}", render::show_bytes(b.to_string().as_bytes()))?;
    }
    if scan.bad_lines.len() > SHOWN {
        writeln!(
            err,
            "error: ... and {} more masqlog lines that could not be read ({} in all)",
            scan.bad_lines.len() - SHOWN,
            scan.bad_lines.len()
        )?;
    }
    Ok(())
}

/// The rows of the database about the queries, as inputs.
fn db_inputs(url: &str, queries: &[&AbuseReport]) -> Result<Vec<Input>, LookupError> {
    let db = |e: masqlog_command::db::DbError| LookupError::Db(e.to_string());
    let mut client = masqlog_command::db::connect(url).map_err(db)?;
    masqlog_command::db::lookup_inputs(&mut client, queries).map_err(db)
}

/// Reads a verification key file.
fn read_key(path: &std::path::Path) -> Result<masqlog_core::seal::VerifyKey, LookupError> {
    masqlog_command::verify::read_key(path).map_err(|why| LookupError::Key {
        path: path.display().to_string(),
        why,
    })
}

pub fn run_with(args: &LookupArgs, mut io: Io<'_>) -> Result<Exit, LookupError> {
    // Flags first: a typo in them is bad input before any reading.
    let zone = match &args.tz {
        Some(tz) => Ok(when::parse_zone(tz)?),
        None => when::default_zone(None),
    };
    let common = Common {
        zone,
        slack: when::parse_duration(&args.slack)?,
        max_age: max_age(&args.max_age)?,
    };
    let keys = args
        .keys
        .iter()
        .map(|p| read_key(p))
        .collect::<Result<Vec<_>, _>>()?;
    let history: Option<Vec<RuleFile>> = args
        .portblock_state
        .as_deref()
        .map(masqlog_command::portblock::history)
        .transpose()?;

    let mut logs = args.logs.clone();
    let single = args.reports.is_none();
    if !single && let Some(p) = &args.public {
        logs.insert(0, PathBuf::from(p));
    }
    let mut inputs: Vec<Input> = logs.iter().map(|p| Input::from_arg(p)).collect();
    for dir in &args.stores {
        if !masqlog_core::store::is_store(dir) {
            return Err(LookupError::NotAStore {
                path: dir.display().to_string(),
            });
        }
        inputs.push(Input::Path(dir.clone()));
    }
    if inputs.is_empty() {
        if args.db.is_some() || (io.stdin_is_tty && history.is_some() && single) {
            // Port-block rules only.
        } else if let Some(store) = io.default_store.as_ref().filter(|_| io.stdin_is_tty) {
            // Nothing named, nothing piped in: the package's evidence
            // store (its notes name it).
            inputs.push(Input::Path(store.clone()));
        } else {
            inputs.push(Input::Stdin);
        }
    }
    if io.stdin_is_tty && inputs.contains(&Input::Stdin) {
        return Err(LookupError::NoInput);
    }
    let reports_from_stdin = args
        .reports
        .as_deref()
        .is_some_and(|p| p.as_os_str() == "-");
    if reports_from_stdin && inputs.contains(&Input::Stdin) {
        return Err(LookupError::Reports {
            path: "-".into(),
            why: "stdin cannot hold both the reports and the logs: name the log files".into(),
        });
    }

    let mut bar = Bar {
        start: Instant::now(),
        last: None,
        drawn: false,
    };
    let mut quiet = lookup::NoProgress;
    let progress: &mut dyn Progress = if io.progress { &mut bar } else { &mut quiet };

    if single {
        let (Some(public), Some(at)) = (&args.public, &args.at) else {
            // `masqlog lookup TIME IP:PORT`: the time where the address goes.
            return Err(match &args.public {
                Some(p) if query::parse_public(p).is_err() && is_time(p) => {
                    swapped(format!("{p:?} is a time, not IP:PORT"))
                }
                _ => LookupError::NoQuery,
            });
        };
        let q = build_query(
            &common,
            public,
            at,
            args.remote.as_deref(),
            args.proto.as_deref(),
        )?;
        if let Some(url) = &args.db {
            inputs.extend(db_inputs(url, &[&q])?);
        }
        let scan = lookup::scan(
            &[&q],
            &inputs,
            ScanOptions {
                stdin: io.stdin.take(),
                progress,
                scan_all: args.scan_all,
                keys: &keys,
            },
        );
        report_problems(io.err, &scan)?;
        let verdict = lookup::decide(&scan, &q);
        let finding = history.as_deref().map(|h| portblock::check(h, &q));
        let answer = Answer {
            query: &q,
            verdict: &verdict,
            portblock: finding.as_ref(),
        };
        if args.json {
            writeln!(io.out, "{}", render::json(&scan, &answer).to_line())?;
        } else {
            io.out.write_all(render::human(&scan, &answer).as_bytes())?;
            writeln!(io.out)?;
            io.out.write_all(render::summary(&scan).as_bytes())?;
        }
        return Ok(match (answer.found(), scan.incomplete()) {
            (true, _) => Exit::Found,
            (false, false) => Exit::NotFound,
            (false, true) => Exit::BadInput,
        });
    }

    // Batch.
    let path = args.reports.as_deref().unwrap_or(std::path::Path::new("-"));
    let text = if reports_from_stdin {
        let mut s = String::new();
        io.stdin
            .take()
            .ok_or(LookupError::NoInput)?
            .read_to_string(&mut s)
            .map_err(|e| LookupError::Reports {
                path: "-".into(),
                why: e.to_string(),
            })?;
        s
    } else {
        std::fs::read_to_string(path).map_err(|e| LookupError::Reports {
            path: path.display().to_string(),
            why: e.to_string(),
        })?
    };
    let (lines, bad) = batch::read_reports(&text).map_err(|why| LookupError::Reports {
        path: path.display().to_string(),
        why,
    })?;
    // Every report in file order: a query, or why not.
    let mut items: Vec<(usize, Result<AbuseReport, String>)> = lines
        .iter()
        .map(|r: &ReportLine| {
            (
                r.line,
                build_query(
                    &common,
                    &r.public,
                    &r.at,
                    r.remote.as_deref(),
                    r.proto.as_deref(),
                )
                .map_err(|e| e.to_string()),
            )
        })
        .collect();
    items.extend(bad.into_iter().map(|b| (b.line, Err(b.why))));
    items.sort_by_key(|(line, _)| *line);
    let queries: Vec<&AbuseReport> = items.iter().filter_map(|(_, q)| q.as_ref().ok()).collect();
    if let Some(url) = &args.db {
        inputs.extend(db_inputs(url, &queries)?);
    }
    let scan = lookup::scan(
        &queries,
        &inputs,
        ScanOptions {
            stdin: io.stdin.take(),
            progress,
            scan_all: true,
            keys: &keys,
        },
    );
    report_problems(io.err, &scan)?;
    let (mut bad_lines, mut not_found) = (0, 0);
    let source = path.display().to_string();
    for (i, (line, q)) in items.iter().enumerate() {
        match q {
            Err(why) => {
                bad_lines += 1;
                writeln!(io.err, "error: {source}:{line}: {why}")?;
                if args.json {
                    let j = Json::obj([
                        ("report_line", Json::Int(*line as i64)),
                        ("error", Json::str(why.clone())),
                    ]);
                    writeln!(io.out, "{}", j.to_line())?;
                } else {
                    if i > 0 {
                        writeln!(io.out)?;
                    }
                    writeln!(io.out, "report {line}: not read: {why}")?;
                }
            }
            Ok(q) => {
                let verdict = lookup::decide(&scan, q);
                let finding = history.as_deref().map(|h| portblock::check(h, q));
                let answer = Answer {
                    query: q,
                    verdict: &verdict,
                    portblock: finding.as_ref(),
                };
                if !answer.found() {
                    not_found += 1;
                }
                if args.json {
                    let Json::Obj(mut members) = render::json(&scan, &answer) else {
                        unreachable!("an answer is an object")
                    };
                    members.insert(0, ("report_line".into(), Json::Int(*line as i64)));
                    writeln!(io.out, "{}", Json::Obj(members).to_line())?;
                } else {
                    if i > 0 {
                        writeln!(io.out)?;
                    }
                    write!(io.out, "report {line}: ")?;
                    io.out.write_all(render::human(&scan, &answer).as_bytes())?;
                }
            }
        }
    }
    if !args.json {
        writeln!(io.out)?;
        io.out.write_all(render::summary(&scan).as_bytes())?;
    }
    Ok(if bad_lines > 0 || (not_found > 0 && scan.incomplete()) {
        Exit::BadInput
    } else if not_found > 0 {
        Exit::NotFound
    } else {
        Exit::Found
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use masqlog_core::config::Format;
    use masqlog_core::format::{Header, write_syslog};
    use masqlog_core::record::{
        Counters, Endpoint, Event, FlowRecord, NatKind, Proto, Remote, Timestamp,
    };
    use masqlog_core::time::parse_rfc3339;
    use std::path::Path;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: LookupArgs,
    }

    fn args(argv: &[&str]) -> LookupArgs {
        let mut v = vec!["lookup"];
        v.extend_from_slice(argv);
        Cli::try_parse_from(v).unwrap().args
    }

    /// A temporary directory (removed on drop) with paths as strings.
    struct Tmp(tempfile::TempDir);

    impl Tmp {
        fn new(tag: &str) -> Tmp {
            Tmp(tempfile::Builder::new()
                .prefix(&format!("masqlog-cli-lookup-{tag}-"))
                .tempdir()
                .unwrap())
        }
        fn path(&self, name: &str) -> String {
            self.0.path().join(name).display().to_string()
        }
    }

    fn t(s: &str) -> Timestamp {
        parse_rfc3339(s).unwrap()
    }

    fn ep(ip: &str, port: u16) -> Endpoint {
        Endpoint {
            ip: ip.parse().unwrap(),
            port: Some(port),
        }
    }

    /// rsyslog's traditional form of a text-format line.
    fn stored(event: Event, client: &str, port: u16, start: &str, end: Option<&str>) -> String {
        let rec = FlowRecord {
            event,
            nat: NatKind::Snat,
            proto: Proto::Tcp,
            id: Some(3954),
            client: ep(client, 40000),
            masq: ep("192.0.2.1", port),
            remote: Remote::Shown(ep("203.0.113.7", 443)),
            start: Some(t(start)),
            end: end.map(t),
            out: end.map(|_| Counters {
                packets: 5,
                bytes: 400,
            }),
            inbound: end.map(|_| Counters {
                packets: 4,
                bytes: 3000,
            }),
            ident: None,
        };
        let hdr = Header {
            pri: 30,
            timestamp: t(end.unwrap_or(start)),
            hostname: Some("gw1"),
            app: "masqlog",
            pid: 4242,
        };
        let mut out = Vec::new();
        write_syslog(Format::Text, &hdr, &rec, &mut out);
        String::from_utf8(out).unwrap()["<30>".len()..].to_string()
    }

    fn small_log(dir: &Tmp) -> String {
        let lines = [
            "Nov 21 12:00:00 gw1 sshd[1]: Accepted publickey for bob".to_string(),
            stored(Event::Start, "10.99.0.2", 53500, "2026-11-21T12:37:40.123456Z", None),
            "Nov 21 12:37:41 gw1 masqlog[4242]: masqlog/1 ev=start nat=snat proto=tcp masq=192.0.2.1:53500 client=oops".to_string(),
            stored(
                Event::End,
                "10.99.0.2",
                53500,
                "2026-11-21T12:37:40.123456Z",
                Some("2026-11-21T12:38:12.654321Z"),
            ),
        ];
        let p = dir.path("syslog");
        std::fs::write(&p, lines.join("\n") + "\n").unwrap();
        // Written after its lines, whatever this machine's clock says.
        std::fs::File::options()
            .write(true)
            .open(&p)
            .unwrap()
            .set_modified(std::time::UNIX_EPOCH + Duration::from_secs(1_900_000_000))
            .unwrap();
        p
    }

    struct Ran {
        result: Result<Exit, LookupError>,
        out: String,
        err: String,
    }

    fn run_args(a: &LookupArgs, stdin: Option<&str>) -> Ran {
        let mut out = Vec::new();
        let mut err = Vec::new();
        let result = run_with(
            a,
            Io {
                stdin: stdin
                    .map(|s| Box::new(io::Cursor::new(s.as_bytes().to_vec())) as Box<dyn Read>),
                stdin_is_tty: stdin.is_none(),
                out: &mut out,
                err: &mut err,
                progress: false,
                default_store: None,
            },
        );
        Ran {
            result,
            out: String::from_utf8(out).unwrap(),
            err: String::from_utf8(err).unwrap(),
        }
    }

    fn code(r: &Ran) -> u8 {
        match &r.result {
            Ok(e) => e.code(),
            Err(_) => 2,
        }
    }

    #[test]
    fn found_is_0_with_the_answer_first_and_the_evidence_after() {
        let d = Tmp::new("found");
        let log = small_log(&d);
        let r = run_args(
            &args(&["192.0.2.1:53500", "--at", "2026-11-21 13:37:42 CET", &log]),
            None,
        );
        assert_eq!(code(&r), 0, "{}{}", r.out, r.err);
        let first = r.out.lines().next().unwrap();
        assert_eq!(
            first,
            "192.0.2.1:53500 at 2026-11-21 13:37:42 CET (2026-11-21T12:37:42Z) was 10.99.0.2:40000"
        );
        assert!(
            r.out
                .contains(&format!("  evidence  {log}:2  Nov 21 12:37:40 gw1")),
            "{}",
            r.out
        );
        assert!(
            r.out
                .contains(&format!("            {log}:4  Nov 21 12:38:12 gw1")),
            "{}",
            r.out
        );
        assert!(
            r.out
                .contains("2026-11-21T12:38:12.654321Z  2026-11-21 13:38:12.654321 CET"),
            "{}",
            r.out
        );
        // The malformed line is reported on stderr with file:line.
        assert!(r.err.starts_with(&format!("{log}:3: ")), "{}", r.err);
        assert!(
            r.out.contains("1 masqlog line could not be read"),
            "{}",
            r.out
        );
    }

    #[test]
    fn not_found_is_1_and_bad_input_is_2() {
        let d = Tmp::new("codes");
        let log = small_log(&d);
        let r = run_args(
            &args(&["192.0.2.1:53501", "--at", "2026-11-21T12:37:42Z", &log]),
            None,
        );
        assert_eq!(code(&r), 1);
        assert!(
            r.out
                .starts_with("192.0.2.1:53501 at 2026-11-21T12:37:42Z: no flow found"),
            "{}",
            r.out
        );
        let r = run_args(
            &args(&["192.0.2.1:53500", "--at", "2026-11-21T14:00:00Z", &log]),
            None,
        );
        assert_eq!(code(&r), 1);
        assert!(
            r.out.contains("nearest flow on 192.0.2.1:53500"),
            "{}",
            r.out
        );
        for bad in [
            vec!["192.0.2.1", "--at", "2026-11-21T12:37:42Z", log.as_str()],
            vec!["192.0.2.1:53500", "--at", "yesterday", log.as_str()],
            vec![
                "192.0.2.1:53500",
                "--at",
                "2026-03-29 02:30:00",
                "--tz",
                "Europe/Amsterdam",
                log.as_str(),
            ],
            vec![
                "192.0.2.1:53500",
                "--at",
                "2026-11-21T12:37:42Z",
                "--slack",
                "soon",
                log.as_str(),
            ],
            vec![
                "192.0.2.1:53500",
                "--at",
                "2026-11-21T12:37:42Z",
                "--tz",
                "Nowhere/Special",
                log.as_str(),
            ],
            vec![
                "192.0.2.1:53500",
                "--at",
                "2026-11-21T12:37:42Z",
                "--proto",
                "tcpp",
                log.as_str(),
            ],
            vec!["192.0.2.1:53500", log.as_str()],
        ] {
            let r = run_args(&args(&bad), None);
            assert_eq!(code(&r), 2, "{bad:?}");
            assert!(r.out.is_empty(), "{bad:?}: {}", r.out);
        }
        let e = run_args(
            &args(&[
                "192.0.2.1:53500",
                "--at",
                "2026-03-29 02:30:00",
                "--tz",
                "Europe/Amsterdam",
                &log,
            ]),
            None,
        )
        .result
        .unwrap_err()
        .to_string();
        assert!(e.contains("never happened in Europe/Amsterdam"), "{e}");
    }

    #[test]
    fn an_unreadable_input_makes_not_found_a_2_but_leaves_found_alone() {
        let d = Tmp::new("unreadable");
        let log = small_log(&d);
        let missing = d.path("missing.log");
        let r = run_args(
            &args(&[
                "192.0.2.1:53501",
                "--at",
                "2026-11-21T12:37:42Z",
                &log,
                &missing,
            ]),
            None,
        );
        assert_eq!(code(&r), 2);
        assert!(r.err.contains(&format!("error: {missing}: ")), "{}", r.err);
        let r = run_args(
            &args(&[
                "192.0.2.1:53500",
                "--at",
                "2026-11-21T12:37:42Z",
                &log,
                &missing,
            ]),
            None,
        );
        assert_eq!(code(&r), 0);
        assert!(r.out.contains("may be incomplete"), "{}", r.out);
    }

    #[test]
    fn stdin_is_read_for_dash_or_no_log_and_refused_when_a_terminal() {
        let d = Tmp::new("stdin");
        let text = std::fs::read_to_string(small_log(&d)).unwrap();
        for argv in [
            vec!["192.0.2.1:53500", "--at", "2026-11-21T12:37:42Z"],
            vec!["192.0.2.1:53500", "--at", "2026-11-21T12:37:42Z", "-"],
        ] {
            let r = run_args(&args(&argv), Some(&text));
            assert_eq!(code(&r), 0, "{argv:?}: {}", r.out);
            assert!(r.out.contains("<stdin>:2  "), "{}", r.out);
        }
        let r = run_args(
            &args(&["192.0.2.1:53500", "--at", "2026-11-21T12:37:42Z"]),
            None,
        );
        assert!(matches!(r.result, Err(LookupError::NoInput)));
    }

    #[test]
    fn with_no_log_and_a_terminal_the_packages_store_is_read() {
        let d = Tmp::new("default-store");
        let text = std::fs::read_to_string(small_log(&d)).unwrap();
        let dir = std::path::PathBuf::from(d.path("store"));
        let (mut w, _) = masqlog_core::store::StoreWriter::open(masqlog_core::store::StoreConfig {
            dir: dir.clone(),
            roll: Duration::from_secs(3600),
            roll_bytes: 1 << 30,
            keep: Duration::from_secs(86_400 * 36_500),
            max_bytes: 0,
        })
        .unwrap();
        w.append(text.as_bytes(), t("2026-11-21T12:38:12Z").secs)
            .unwrap();
        w.sync().unwrap();
        let a = args(&["192.0.2.1:53500", "--at", "2026-11-21T12:37:42Z"]);
        let run = |default_store: Option<std::path::PathBuf>, stdin_is_tty: bool| {
            let (mut out, mut err) = (Vec::new(), Vec::new());
            let result = run_with(
                &a,
                Io {
                    stdin: Some(Box::new(io::Cursor::new(Vec::new()))),
                    stdin_is_tty,
                    out: &mut out,
                    err: &mut err,
                    progress: false,
                    default_store,
                },
            );
            (result, String::from_utf8(out).unwrap())
        };
        let (result, out) = run(Some(dir.clone()), true);
        assert!(matches!(result, Ok(Exit::Found)), "{result:?} {out}");
        assert!(out.contains("was 10.99.0.2:"), "{out}");
        assert!(
            out.contains(&format!("{}: evidence store", dir.display())),
            "{out}"
        );
        // Lines piped in are read instead of the store (here: none).
        let (result, out) = run(Some(dir), false);
        assert!(matches!(result, Ok(Exit::NotFound)), "{result:?} {out}");
        // No store: the error says what to give.
        let (result, _) = run(None, true);
        assert!(matches!(result, Err(LookupError::NoInput)));
    }

    #[test]
    fn json_is_one_object_with_query_matches_and_evidence() {
        let d = Tmp::new("json");
        let log = small_log(&d);
        let r = run_args(
            &args(&[
                "192.0.2.1:53500",
                "--at",
                "2026-11-21 13:37:42 CET",
                "--json",
                &log,
            ]),
            None,
        );
        assert_eq!(code(&r), 0);
        assert_eq!(r.out.lines().count(), 1);
        let v: serde_json::Value = serde_json::from_str(&r.out).unwrap();
        assert_eq!(v["found"], true);
        assert_eq!(v["query"]["public"], "192.0.2.1:53500");
        assert_eq!(v["query"]["instants"][0], "2026-11-21T12:37:42Z");
        let m = &v["matches"][0];
        assert_eq!(m["rank"], 1);
        assert_eq!(m["client"]["ip"], "10.99.0.2");
        assert_eq!(m["client"]["port"], 40000);
        assert_eq!(m["state"], "ended");
        assert_eq!(m["end"], "2026-11-21T12:38:12.654321Z");
        assert_eq!(m["end_local"], "2026-11-21 13:38:12.654321 CET");
        assert_eq!(m["evidence"][0]["line"], 2);
        assert_eq!(m["evidence"][1]["event"], "end");
        assert_eq!(v["inputs"]["bad_lines"][0]["line"], 3);
    }

    #[test]
    fn batch_csv_and_json_lines() {
        let d = Tmp::new("batch");
        let log = small_log(&d);
        let csv = d.path("reports.csv");
        std::fs::write(
            &csv,
            "public,time,remote,proto\n\
             192.0.2.1:53500,2026-11-21 13:37:42 CET,203.0.113.7:443,tcp\n\
             192.0.2.1:53501,2026-11-21T12:37:42Z,,\n",
        )
        .unwrap();
        let r = run_args(&args(&["--reports", &csv, &log]), None);
        assert_eq!(code(&r), 1, "{}{}", r.out, r.err);
        assert!(r.out.starts_with("report 2: 192.0.2.1:53500 at 2026-11-21 13:37:42 CET (2026-11-21T12:37:42Z) was 10.99.0.2:40000"), "{}", r.out);
        assert!(
            r.out
                .contains("report 3: 192.0.2.1:53501 at 2026-11-21T12:37:42Z: no flow found"),
            "{}",
            r.out
        );

        let jl = d.path("reports.jsonl");
        std::fs::write(
            &jl,
            "{\"public\":\"192.0.2.1:53500\",\"at\":\"@1795264662\"}\n\
             {\"public\":\"192.0.2.1:53500\",\"at\":\"2026-11-21T12:38:00Z\",\"remote\":\"203.0.113.7\"}\n",
        )
        .unwrap();
        let r = run_args(&args(&["--reports", &jl, "--json", &log]), None);
        assert_eq!(code(&r), 0, "{}{}", r.out, r.err);
        let answers: Vec<serde_json::Value> = r
            .out
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(answers.len(), 2);
        assert_eq!(answers[0]["report_line"], 1);
        assert_eq!(answers[1]["matches"][0]["client"]["ip"], "10.99.0.2");

        // A bad report line is answered as such, and exits 2.
        std::fs::write(&jl, "{\"public\":\"192.0.2.1\",\"at\":\"@1795264662\"}\n{\"public\":\"192.0.2.1:53500\",\"at\":\"@1795264662\"}\n").unwrap();
        let r = run_args(&args(&["--reports", &jl, "--json", &log]), None);
        assert_eq!(code(&r), 2);
        let first: serde_json::Value = serde_json::from_str(r.out.lines().next().unwrap()).unwrap();
        assert!(
            first["error"].as_str().unwrap().contains("no port"),
            "{first}"
        );
        assert!(r.err.contains(":1: invalid endpoint"), "{}", r.err);
        // Reports from stdin need named logs.
        let r = run_args(&args(&["--reports", "-"]), Some("public,time\n"));
        assert!(matches!(r.result, Err(LookupError::Reports { .. })));
    }

    #[test]
    fn portblock_rules_alone_can_answer() {
        use masqlog_command::portblock::{Method, Plan, PlanInput, render};
        let d = Tmp::new("pb");
        let state = d.path("state");
        std::fs::create_dir(&state).unwrap();
        let plan = Plan::new(&PlanInput {
            internal: vec!["192.168.101.0/25".parse().unwrap()],
            public: vec!["192.0.2.1".parse().unwrap()],
            ports: "1280-65535".parse().unwrap(),
            per_client: Some(256),
            method: Method::Iptables,
            table: None,
            oif: None,
            include_first: false,
        })
        .unwrap();
        let since = 1_790_000_000;
        std::fs::write(
            Path::new(&state).join(format!("rules.{since}.iptables")),
            render(&plan, since),
        )
        .unwrap();
        let r = run_args(
            &args(&[
                "192.0.2.1:65300",
                "--at",
                "2026-11-21T12:37:42Z",
                "--portblock-state",
                &state,
            ]),
            None,
        );
        assert_eq!(code(&r), 0, "{}{}", r.out, r.err);
        assert!(
            r.out.starts_with(
                "192.0.2.1:65300 at 2026-11-21T12:37:42Z was 192.168.101.2 by the port-block rules"
            ),
            "{}",
            r.out
        );
        assert!(
            r.out
                .contains("belongs to 192.168.101.2 (block 65280-65535)"),
            "{}",
            r.out
        );
        let r = run_args(
            &args(&[
                "192.0.2.1:1000",
                "--at",
                "2026-11-21T12:37:42Z",
                "--portblock-state",
                &state,
            ]),
            None,
        );
        assert_eq!(code(&r), 1);
        let r = run_args(
            &args(&[
                "192.0.2.1:1000",
                "--at",
                "2026-11-21T12:37:42Z",
                "--portblock-state",
                &d.path("nope"),
            ]),
            None,
        );
        assert_eq!(code(&r), 2);
    }

    #[test]
    fn a_closed_stdout_exits_0_quietly() {
        struct Closed;
        impl Write for Closed {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::Error::from(io::ErrorKind::BrokenPipe))
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let d = Tmp::new("pipe");
        let log = small_log(&d);
        let mut err = Vec::new();
        let result = run_with(
            &args(&["192.0.2.1:53500", "--at", "2026-11-21T12:37:42Z", &log]),
            Io {
                stdin: None,
                stdin_is_tty: true,
                out: &mut Closed,
                err: &mut err,
                progress: false,
                default_store: None,
            },
        );
        assert!(
            matches!(&result, Err(LookupError::Output(e)) if e.kind() == io::ErrorKind::BrokenPipe)
        );
        // As `run` hands it to `main`.
        let status = |r: Result<Exit, LookupError>| {
            crate::exit_status(exit_code(r).map(ExitCode::from).map_err(Into::into))
        };
        assert_eq!(status(result), ExitCode::SUCCESS);
        assert_eq!(exit_code(Ok(Exit::NotFound)).unwrap(), 1);
        assert!(exit_code(Err(LookupError::NoInput)).is_err());
        assert_eq!(status(Err(LookupError::NoInput)), ExitCode::from(2));
    }
}
