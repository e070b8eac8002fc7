//! `masqlog portblock`: deterministic port-block NAT. `plan` prints the
//! rules, `apply` puts them in force and keeps the history, `test` evaluates
//! the mapping both ways from a rule file.

use std::io::{self, IsTerminal, Write};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use masqlog_command::portblock::apply::{ApplyOptions, ApplyOutcome, apply};
use masqlog_command::portblock::history::{self, entry_at};
use masqlog_command::portblock::localports::{self, LocalPorts};
use masqlog_command::portblock::{
    Ipv4Net, Method, Plan, PlanInput, PortRange, PortblockError, RuleFile, SyslogTarget, clock,
    net, render,
};
use masqlog_command::when::{self, TimeError, Zone};

/// Deterministic port-block NAT: each client address owns a fixed block of
/// source ports on a public address, so a public address, a port and a time
/// name the client with no per-flow log.
///
/// `plan` prints the rules (nftables, or iptables-restore), `apply` puts them
/// in force and keeps every version in a state directory with the time it
/// came into force, `test` answers "who was PUBLIC:PORT" and "which block is
/// CLIENT's" from those files. Port-block NAT is IPv4 only: IPv6 clients have
/// addresses of their own.
///
/// Example (one VPN /24 behind 192.0.2.1, as cron runs it):
///
///   masqlog portblock apply --state-dir /var/lib/masqlog/portblock \
///       --internal 10.8.0.0/24 --public 192.0.2.1 --ports 1024-32767 --per-client 64
///
///   masqlog portblock test --state-dir /var/lib/masqlog/portblock \
///       --at 2024-11-23T19:26:40Z --public 192.0.2.1:65300
#[derive(clap::Args, Debug)]
#[command(long_about, verbatim_doc_comment)]
pub struct PortblockArgs {
    #[command(subcommand)]
    pub command: PortblockCommand,
}

#[derive(clap::Subcommand, Debug)]
pub enum PortblockCommand {
    /// Print the rules for a plan; change nothing.
    ///
    /// Each host address of the --internal prefixes (in the order given,
    /// ascending within a prefix) gets the next block of --per-client ports,
    /// counted down from the top of --ports on the first --public address,
    /// then on the next. Blocks are aligned powers of two, so `port / N`
    /// names the block. The network and broadcast addresses and the first
    /// host address (the router) of a prefix get none (--include-first gives
    /// the first host one). TCP and UDP ports, and ICMP echo ids in the nft
    /// rules, are translated into the client's block.
    ///
    /// Warnings (on stderr) when blocks overlap this machine's
    /// ip_local_port_range or ip_local_reserved_ports: a port the router uses
    /// itself makes a report naming it ambiguous.
    ///
    /// Example, the eduVPN layout (65280-65535, 65024-65279, ...):
    ///
    ///   masqlog portblock plan --internal 10.8.0.0/25 --public 192.0.2.1 \
    ///       --ports 1280-65535 --per-client 256 --format iptables
    ///
    /// Exit status: 0, or 2 when the plan is impossible (more clients than
    /// blocks, a --per-client that is not a power of two or too large, an
    /// empty range, overlapping or IPv6 prefixes), with the reason.
    #[command(verbatim_doc_comment)]
    Plan(PlanArgs),
    /// Put a plan in force, keeping every version; safe from cron.
    ///
    /// Under an exclusive lock on DIR/.lock (a second run fails at once):
    /// renders the rules; when they differ from the ones DIR/current points
    /// to (the generated-at line aside), writes DIR/rules.<UNIX time>.<nft|iptables>,
    /// never overwriting or deleting a file; runs the reload command on it;
    /// once that worked, points DIR/current at it (atomically), so the
    /// history never names rules that were not loaded; and sends one
    /// configuration record to syslog, as RFC 7422 asks of a deterministic
    /// NAT. When the reload fails, DIR/current stays where it was (the old
    /// rules stay in force), the new file is renamed *.failed, and the exit
    /// status is 2. Unchanged rules: nothing is written or reloaded (unless
    /// --reload-always), exit 0.
    ///
    /// Each step is reported on stderr. Switching --format or --table leaves
    /// the previous nft table loaded: apply says so and how to remove it.
    ///
    /// Example (crontab; one line, as cron reads no continuation):
    ///
    ///   */10 * * * * masqlog portblock apply --state-dir /var/lib/masqlog/portblock --internal 10.8.0.0/24 --public 192.0.2.1 --ports 1024-32767 --per-client 64
    ///
    /// At boot, load the rules in force with `nft -f DIR/current`, or run the
    /// same apply with --reload-always.
    ///
    /// Exit status: 0 applied or unchanged, 2 error (nothing changed, or the
    /// rollback above).
    #[command(verbatim_doc_comment)]
    Apply(ApplyArgs),
    /// Evaluate the mapping both ways from a rule file.
    ///
    /// --public IP:PORT: the client whose block holds PORT on IP, then that
    /// client's whole block. --internal-addr IP: the client's public address
    /// and block, then the owner of its first port (the same client).
    /// The rule file is --rules FILE, or with --state-dir DIR the one in
    /// force at --at TIME (read as `masqlog lookup --at` reads it: RFC 3339,
    /// '2024-11-23 20:26:40 CET', UNIX seconds, ...; a time without a zone
    /// is read in --tz), or DIR/current without --at. Only files masqlog
    /// wrote are read.
    ///
    /// Exit status: 0 found, 1 no client / no block, 2 error.
    ///
    /// Example:
    ///
    ///   masqlog portblock test --state-dir /var/lib/masqlog/portblock \
    ///       --at 2024-11-23T19:26:40Z --public 192.0.2.1:65300
    #[command(verbatim_doc_comment)]
    Test(TestArgs),
}

/// The options that define a plan (shared by `plan` and `apply`).
#[derive(clap::Args, Debug, Clone)]
pub struct PlanOpts {
    /// Internal IPv4 prefix whose host addresses get blocks (repeat, or
    /// separate with commas). Clients are numbered in the order given:
    /// append new prefixes at the end to keep the blocks of existing clients.
    #[arg(long, value_name = "CIDR", required = true, value_delimiter = ',', value_parser = parse_internal)]
    pub internal: Vec<Ipv4Net>,
    /// Public IPv4 address to translate to (repeat, or separate with
    /// commas); each is filled with blocks before the next is used.
    #[arg(long, value_name = "IP", required = true, value_delimiter = ',', value_parser = parse_public)]
    pub public: Vec<Ipv4Addr>,
    /// The ports translation may use on every public address, e.g.
    /// 1280-65535 (eduVPN) or 1024-32767 (clear of Linux's default
    /// ip_local_port_range 32768-60999).
    #[arg(long, value_name = "LO-HI", value_parser = parse_ports)]
    pub ports: PortRange,
    /// Ports per client: a power of two (1 .. 32768). Default: the largest
    /// that fits. Give it explicitly to keep blocks stable when clients are
    /// added.
    #[arg(long, value_name = "N")]
    pub per_client: Option<u32>,
    /// nft: an nftables ruleset (one table, a map keyed by source address).
    /// iptables: a complete nat table for iptables-restore (it replaces the
    /// whole nat table).
    #[arg(long, value_name = "nft|iptables", default_value = "nft", value_parser = parse_method)]
    pub format: Method,
    /// nftables table to own (nft only); loading the rules replaces this
    /// table and nothing else. Default: masqlog_portblock.
    #[arg(long, value_name = "NAME")]
    pub table: Option<String>,
    /// Translate only packets leaving through this interface.
    #[arg(long, value_name = "IFNAME")]
    pub oif: Option<String>,
    /// Give the first host address of each prefix (usually the router
    /// itself) a block too.
    #[arg(long)]
    pub include_first: bool,
}

#[derive(clap::Args, Debug)]
pub struct PlanArgs {
    #[command(flatten)]
    pub plan: PlanOpts,
}

#[derive(clap::Args, Debug)]
pub struct ApplyArgs {
    /// Directory for the rule files and the `current` symlink (created if
    /// missing), e.g. /var/lib/masqlog/portblock. Keep it: it is the
    /// evidence.
    #[arg(long, value_name = "DIR")]
    pub state_dir: PathBuf,
    #[command(flatten)]
    pub plan: PlanOpts,
    /// Say what would be done and print the rules; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Command that loads the rules, run with `sh -c`; `{}` is replaced by
    /// the path of the new rule file (DIR/current with --reload-always and
    /// unchanged rules), or the path is appended. Default:
    /// `nft -f {}` (nft), `iptables-restore {}` (iptables).
    #[arg(long, value_name = "CMD")]
    pub reload_cmd: Option<String>,
    /// Run the reload command even when the rules are unchanged (at boot).
    #[arg(long)]
    pub reload_always: bool,
    /// Seconds the reload command may run before it is killed.
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    pub reload_timeout: u64,
    /// Where the configuration record goes: unix:PATH or udp:IP:PORT.
    /// Default: unix:/dev/log. apply fails, before changing anything, when
    /// it cannot be reached.
    #[arg(long, value_name = "TARGET", value_parser = parse_syslog, conflicts_with = "no_syslog")]
    pub syslog: Option<SyslogTarget>,
    /// Send no configuration record (the rule files remain the only record
    /// of the change).
    #[arg(long)]
    pub no_syslog: bool,
}

#[derive(clap::Args, Debug)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["rules", "state_dir"])))]
#[command(group(clap::ArgGroup::new("query").required(true).args(["internal_addr", "public"])))]
pub struct TestArgs {
    /// A rule file written by masqlog (plan output or a file of a state
    /// directory).
    #[arg(long, value_name = "FILE")]
    pub rules: Option<PathBuf>,
    /// A state directory: the rule file in force at --at, or DIR/current.
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// The time of the incident, in any form `masqlog lookup --at` reads:
    /// 2024-11-23T19:26:40Z, 2024-11-23 20:26:40 CET, 2024-11-23 20:26:40
    /// Europe/Amsterdam, [23/Nov/2024:20:26:40 +0100], @1732390000, ...
    #[arg(long, value_name = "TIME", requires = "state_dir")]
    pub at: Option<String>,
    /// The zone of an --at time given without one (Europe/Amsterdam, CET,
    /// +01:00); without --tz such a time is refused.
    #[arg(long, value_name = "ZONE", requires = "at", value_parser = parse_tz)]
    pub tz: Option<Zone>,
    /// Which block is this client's?
    #[arg(long, value_name = "IP", value_parser = parse_public)]
    pub internal_addr: Option<Ipv4Addr>,
    /// Which client was this public address and port?
    #[arg(long, value_name = "IP:PORT")]
    pub public: Option<SocketAddrV4>,
    /// Print the answer as one JSON object.
    #[arg(long)]
    pub json: bool,
}

fn parse_internal(s: &str) -> Result<Ipv4Net, PortblockError> {
    net::parse_prefix(s)
}

fn parse_tz(s: &str) -> Result<Zone, TimeError> {
    when::parse_zone(s)
}

fn parse_public(s: &str) -> Result<Ipv4Addr, PortblockError> {
    net::parse_public(s)
}

fn parse_ports(s: &str) -> Result<PortRange, PortblockError> {
    s.parse()
}

fn parse_method(s: &str) -> Result<Method, PortblockError> {
    s.parse()
}

fn parse_syslog(s: &str) -> Result<SyslogTarget, PortblockError> {
    s.parse()
}

impl PlanOpts {
    fn input(&self) -> PlanInput {
        PlanInput {
            internal: self.internal.clone(),
            public: self.public.clone(),
            ports: self.ports,
            per_client: self.per_client,
            method: self.format,
            table: self.table.clone(),
            oif: self.oif.clone(),
            include_first: self.include_first,
        }
    }
}

/// Runs `masqlog portblock ...`. Exit codes: 0 done (test: found), 1 test
/// found nothing, errors are returned (main exits 2).
pub fn run(args: &PortblockArgs) -> Result<ExitCode, PortblockError> {
    match &args.command {
        PortblockCommand::Plan(a) => plan(a),
        PortblockCommand::Apply(a) => apply_cmd(a),
        PortblockCommand::Test(a) => test(a),
    }
}

/// Writes to stdout (a closed pipe, `| head`, is an error that `main` ends
/// quietly).
fn print(text: &str) -> Result<(), PortblockError> {
    let mut out = io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(PortblockError::io(
            "cannot write to",
            Path::new("standard output"),
        ))
}

fn checked_plan(opts: &PlanOpts) -> Result<Plan, PortblockError> {
    let plan = Plan::new(&opts.input())?;
    for w in localports::warnings(&plan, &LocalPorts::read()) {
        eprintln!("warning: {w}");
    }
    Ok(plan)
}

fn plan(a: &PlanArgs) -> Result<ExitCode, PortblockError> {
    let plan = checked_plan(&a.plan)?;
    print(&render(&plan, clock::now()))?;
    if io::stderr().is_terminal() {
        let free = u64::from(plan.blocks_per_public) * plan.params.public.len() as u64
            - plan.blocks.len() as u64;
        eprintln!(
            "{} clients, {} ports each; {free} blocks left free",
            plan.blocks.len(),
            plan.params.per_client
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn apply_cmd(a: &ApplyArgs) -> Result<ExitCode, PortblockError> {
    let plan = checked_plan(&a.plan)?;
    let opts = ApplyOptions {
        state_dir: a.state_dir.clone(),
        dry_run: a.dry_run,
        reload_cmd: a.reload_cmd.clone(),
        reload_always: a.reload_always,
        reload_timeout: Duration::from_secs(a.reload_timeout),
        syslog: if a.no_syslog {
            None
        } else {
            Some(a.syslog.clone().unwrap_or_default())
        },
    };
    let mut log = io::stderr().lock();
    match apply(&plan, &opts, &mut log)? {
        ApplyOutcome::WouldWrite { text, .. } => {
            drop(log);
            print(&text)?;
        }
        ApplyOutcome::Unchanged { .. } | ApplyOutcome::Applied { .. } => {}
    }
    Ok(ExitCode::SUCCESS)
}

/// The rule file to read, and the times it was in force from and until.
fn rule_file_for(a: &TestArgs) -> Result<(RuleFile, Option<i64>), PortblockError> {
    if let Some(path) = &a.rules {
        return Ok((RuleFile::read(path)?, None));
    }
    let dir = a
        .state_dir
        .as_deref()
        .expect("clap: --rules or --state-dir");
    match &a.at {
        None => {
            let name = history::current_target(dir)?
                .ok_or_else(|| PortblockError::NoCurrent { dir: dir.into() })?;
            Ok((RuleFile::read(&dir.join(name))?, None))
        }
        Some(at) => {
            let time = clock::parse_time(at, a.tz.as_ref())?;
            let entries = history::list(dir)?;
            let (t, last) = (time.first().secs, time.last().secs);
            let e = entry_at(&entries, t);
            // A local time that happened twice: both instants must find the
            // same file.
            if e != entry_at(&entries, last) {
                let name = |e: Option<&history::Entry>| {
                    e.map_or("none".into(), |e| e.path.display().to_string())
                };
                return Err(PortblockError::BadTime {
                    input: at.clone(),
                    reason: format!(
                        "it happened twice in {} ({} and {}), and the rule files in force \
                         differ ({} and {}): add the offset to say which",
                        time.zone.name(),
                        clock::rfc3339(t),
                        clock::rfc3339(last),
                        name(e),
                        name(entry_at(&entries, last)),
                    ),
                });
            }
            let e = e.ok_or_else(|| PortblockError::NoneActive {
                dir: dir.into(),
                at: clock::rfc3339(t),
                oldest: entries
                    .first()
                    .map(|e| clock::rfc3339(e.timestamp))
                    .unwrap_or_else(|| "none: the directory has no rule file".into()),
            })?;
            let until = entries
                .iter()
                .find(|n| n.timestamp > e.timestamp)
                .map(|n| n.timestamp);
            Ok((RuleFile::read(&e.path)?, until))
        }
    }
}

fn json_str(s: &str) -> String {
    let mut o = String::from('"');
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if (c as u32) < 0x20 => o.push_str(&format!("\\u{:04x}", c as u32)),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

fn test(a: &TestArgs) -> Result<ExitCode, PortblockError> {
    let (rules, until) = rule_file_for(a)?;
    let (query, found) = match (a.public, a.internal_addr) {
        (Some(sa), _) => {
            let owner = rules.block_at(*sa.ip(), sa.port()).copied();
            (sa.to_string(), owner)
        }
        (None, Some(ip)) => {
            let block =
                rules
                    .block_of(ip)
                    .map(|(public, lo, hi)| masqlog_command::portblock::Block {
                        internal: ip,
                        public,
                        lo,
                        hi,
                    });
            // The other way round: the owner of the block's first port.
            if let Some(b) = &block {
                debug_assert_eq!(rules.owner_of(b.public, b.lo), Some(ip));
            }
            (ip.to_string(), block)
        }
        (None, None) => unreachable!("clap requires --public or --internal-addr"),
    };
    let since = clock::rfc3339(rules.timestamp);
    let until_s = until.map(clock::rfc3339);
    let text = if a.json {
        let mut o = format!("{{\"query\":{}", json_str(&query));
        match &found {
            Some(b) => o.push_str(&format!(
                ",\"found\":true,\"internal\":\"{}\",\"public\":\"{}\",\"lo\":{},\"hi\":{}",
                b.internal, b.public, b.lo, b.hi
            )),
            None => o.push_str(",\"found\":false"),
        }
        o.push_str(&format!(
            ",\"rules\":{},\"in_force_from\":\"{since}\",\"in_force_until\":{}}}\n",
            json_str(&rules.path.to_string_lossy()),
            until_s
                .as_deref()
                .map(json_str)
                .unwrap_or_else(|| "null".into())
        ));
        o
    } else {
        let mut o = String::new();
        match (&found, a.public) {
            (Some(b), Some(_)) => {
                o.push_str(&format!("{query} -> {}\n", b.internal));
                o.push_str(&format!(
                    "{} -> {}:{}-{}\n",
                    b.internal, b.public, b.lo, b.hi
                ));
            }
            (Some(b), None) => {
                o.push_str(&format!("{query} -> {}:{}-{}\n", b.public, b.lo, b.hi));
                o.push_str(&format!(
                    "{}:{}-{} -> {}\n",
                    b.public, b.lo, b.hi, b.internal
                ));
            }
            (None, Some(_)) => {
                o.push_str(&format!("{query} -> no client: the port is in no block\n"))
            }
            (None, None) => o.push_str(&format!(
                "{query} -> no block: not a client of these rules\n"
            )),
        }
        let span = match &until_s {
            Some(u) => format!("in force from {since} until {u}"),
            None if a.rules.is_none() => format!("in force since {since}"),
            None => format!("dated {since}"),
        };
        o.push_str(&format!("rules: {} ({span})\n", rules.path.display()));
        o
    };
    print(&text)?;
    Ok(if found.is_some() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use masqlog_command::portblock::history::rule_file_name;

    #[derive(Parser)]
    struct Cli {
        #[command(subcommand)]
        command: PortblockCommand,
    }

    fn test_args(argv: &[&str]) -> TestArgs {
        let mut v = vec!["portblock", "test"];
        v.extend_from_slice(argv);
        match Cli::try_parse_from(v).unwrap().command {
            PortblockCommand::Test(a) => a,
            other => panic!("{other:?}"),
        }
    }

    /// In force from 2026-10-20T00:00:00Z.
    const A: i64 = 1_792_454_400;
    /// From 2026-10-25T01:00:00Z: between the two 02:30 of Amsterdam that
    /// night (00:30Z, CEST, and 01:30Z, CET).
    const B: i64 = 1_792_890_000;
    /// From 2026-11-21T12:37:43Z, a second after 13:37:42 CET.
    const C: i64 = 1_795_264_663;

    /// A state directory with the rule files A, B and C.
    fn state_dir() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        let plan = Plan::new(&PlanInput {
            internal: vec!["10.8.0.0/29".parse().unwrap()],
            public: vec![Ipv4Addr::new(192, 0, 2, 1)],
            ports: "1024-32767".parse().unwrap(),
            per_client: Some(1024),
            method: Method::Nft,
            table: None,
            oif: None,
            include_first: false,
        })
        .unwrap();
        for t in [A, B, C] {
            std::fs::write(
                d.path().join(rule_file_name(t, Method::Nft)),
                render(&plan, t),
            )
            .unwrap();
        }
        d
    }

    #[test]
    fn test_at_reads_every_time_lookup_reads() {
        let d = state_dir();
        let state = d.path().to_str().unwrap();
        let in_force = |extra: &[&str]| {
            let mut argv = vec!["--state-dir", state, "--public", "192.0.2.1:32000"];
            argv.extend_from_slice(extra);
            rule_file_for(&test_args(&argv)).map(|(rules, _)| rules.timestamp)
        };
        for at in [
            "2026-11-21 13:37:42 CET",
            "2026-11-21 13:37:42 Europe/Amsterdam",
            "[21/Nov/2026:13:37:42 +0100]",
            "Sat Nov 21 13:37:42 CET 2026",
            "2026-11-21T12:37:42Z",
            "1795264662",
        ] {
            assert_eq!(in_force(&["--at", at]).unwrap(), B, "{at}");
        }
        assert_eq!(in_force(&["--at", "2026-11-21 13:37:43 CET"]).unwrap(), C);
        // Without a zone: read in --tz, refused without it.
        assert_eq!(
            in_force(&["--at", "2026-11-21 13:37:42", "--tz", "Europe/Amsterdam"]).unwrap(),
            B
        );
        let e = in_force(&["--at", "2026-11-21 13:37:42"])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("no time zone: add Z for UTC or an offset such as +01:00"),
            "{e}"
        );
        // A local time that happened twice, with a change of rules between
        // the two: refused unless the zone says which.
        let e = in_force(&["--at", "2026-10-25 02:30:00 Europe/Amsterdam"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("it happened twice in Europe/Amsterdam"), "{e}");
        assert_eq!(in_force(&["--at", "2026-10-25 02:30:00 CEST"]).unwrap(), A);
        assert_eq!(in_force(&["--at", "2026-10-25 02:30:00 CET"]).unwrap(), B);
        // Twice, but under the same rules: no question.
        assert_eq!(
            in_force(&["--at", "2026-11-01 01:30:00 America/New_York"]).unwrap(),
            B
        );
    }

    #[test]
    fn a_bad_tz_is_refused_by_the_flag_parser() {
        let argv = [
            "portblock",
            "test",
            "--state-dir",
            "/nonexistent",
            "--at",
            "2026-11-21 13:37:42",
            "--tz",
            "Nowhere/Special",
            "--public",
            "192.0.2.1:32000",
        ];
        let e = Cli::try_parse_from(argv).err().unwrap().to_string();
        assert!(e.contains("unknown time zone \"Nowhere/Special\""), "{e}");
    }
}
