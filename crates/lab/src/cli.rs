//! `masqlog lab`: builds the namespace lab (client, NAT router, server),
//! runs stock ulogd with the plugin and an example config, makes flows as
//! alice and bob, and shows what masqlog logged next to what the kernel
//! reported. Then removes the lab (unless `--keep`).

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use crate::session::{LINE_WAIT, MASQ_ID};
use crate::{
    CtEvent, CtKind, Example, Family, FlowProto, FlowResult, FlowSpec, IdentMode, LabError,
    Session, SessionOptions,
};

/// The line format the lab logs in; each picks one example config of
/// ulogd-conf/.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LabFormat {
    /// key=value lines to a local rsyslog (masqlog-local.conf)
    Text,
    /// RFC 5424 messages over TCP to an rsyslog in the server namespace
    /// (masqlog-remote.conf)
    Rfc5424,
    /// JSON lines to a local rsyslog (masqlog-json.conf)
    Json,
}

/// The plugin's IDENT mode in the lab.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LabIdent {
    /// no lookups
    Off,
    /// queries from the router; oidentd -P 10.99.0.1 on the client (IPv4
    /// flows get their user; oidentd does not answer proxied IPv6 queries)
    Plain,
    /// queries from the remote server's address (IP_TRANSPARENT, policy
    /// routing on the router); stock oidentd on the client
    Transparent,
}

impl LabIdent {
    fn mode(self) -> IdentMode {
        match self {
            LabIdent::Off => IdentMode::Off,
            LabIdent::Plain => IdentMode::Plain,
            LabIdent::Transparent => IdentMode::Transparent,
        }
    }
}

impl LabFormat {
    fn example(self) -> Example {
        match self {
            LabFormat::Text => Example::Local,
            LabFormat::Rfc5424 => Example::Remote,
            LabFormat::Json => Example::Json,
        }
    }
}

/// Try masqlog end to end on this machine, in network namespaces.
///
/// Needs root. Builds three namespaces (client 10.99.0.2 and fd99::2, a
/// router that masquerades to 203.0.113.1 and 2001:db8:113::1, a server
/// 203.0.113.7 and 2001:db8:113::7), starts its own rsyslogd, `conntrack -E`
/// and stock ulogd with the plugin, and makes TCP and UDP flows over IPv4
/// and IPv6 as the local users alice and bob (created if missing). With
/// IDENT on (plain mode by default), oidentd runs on the client and each
/// TCP flow gets an ident line naming its user. Prints each flow's masqlog
/// lines and the kernel's conntrack events. Nothing leaves the namespaces;
/// everything is removed at the end, also when the command is interrupted.
///
/// Example: sudo masqlog lab --format json --ident transparent
#[derive(clap::Parser, Debug)]
#[command(name = "masqlog lab", bin_name = "masqlog lab", version)]
pub struct LabArgs {
    /// Line format (and example config) to use.
    #[arg(long, value_enum, default_value = "text")]
    pub format: LabFormat,
    /// Leave the lab running afterwards; prints how to use it and the
    /// script that removes it.
    #[arg(long)]
    pub keep: bool,
    /// IDENT lookups of the user behind each TCP flow.
    #[arg(long, value_enum, default_value = "plain")]
    pub ident: LabIdent,
    /// The plugin to load; default: libmasqlog.so next to this executable
    /// (target/release/ after `cargo build --release`), or $MASQLOG_SO.
    #[arg(long, value_name = "PATH")]
    pub so: Option<PathBuf>,
}

/// The flows the lab makes: (user, protocol, family, bytes sent).
const FLOWS: &[(&str, FlowProto, Family, usize)] = &[
    ("alice", FlowProto::Tcp, Family::V4, 1000),
    ("alice", FlowProto::Udp, Family::V4, 100),
    ("alice", FlowProto::Tcp, Family::V6, 1500),
    ("alice", FlowProto::Udp, Family::V6, 200),
    ("bob", FlowProto::Tcp, Family::V4, 2000),
    ("bob", FlowProto::Udp, Family::V4, 300),
    ("bob", FlowProto::Tcp, Family::V6, 2500),
    ("bob", FlowProto::Udp, Family::V6, 400),
];

/// How long a TCP flow keeps its connection open when IDENT is on, so that
/// oidentd still finds it when the router asks.
const IDENT_HOLD: Duration = Duration::from_secs(2);

fn progress(msg: &str) {
    if std::io::stderr().is_terminal() {
        eprintln!("masqlog lab: {msg}");
    }
}

/// Runs the lab. The lab is removed when this returns (or, if the process
/// is killed, by the lab's watchdog), unless `--keep`.
pub fn run(args: &LabArgs) -> Result<(), LabError> {
    let example = args.format.example();
    let ident = args.ident.mode();
    let mut opts = SessionOptions::new(example).with_ident(ident);
    opts.so = args.so.clone();
    // As the package: the evidence store beside the syslog destination.
    opts.store = true;
    progress(&format!(
        "building the namespaces and starting rsyslogd, conntrack -E, {}ulogd",
        if ident == IdentMode::Off {
            ""
        } else {
            "oidentd, "
        }
    ));
    let mut session = Session::start(&opts)?;
    progress(&format!(
        "lab {} is up; making {} flows",
        session.lab.prefix(),
        FLOWS.len()
    ));
    let specs: Vec<FlowSpec> = FLOWS
        .iter()
        .map(|&(user, proto, family, send)| {
            let spec = session.flow_spec(user, proto, family, send);
            if ident == IdentMode::Off {
                spec
            } else {
                spec.holding(IDENT_HOLD)
            }
        })
        .collect();
    // The TCP flows at once (their held connections overlap instead of
    // adding up), the UDP flows one after another (socat's forking UDP
    // server may miss a datagram that comes while it forks).
    let mut results: Vec<Option<FlowResult>> = vec![None; specs.len()];
    std::thread::scope(|s| -> Result<(), LabError> {
        let mut tcp = Vec::new();
        for (i, spec) in specs.iter().enumerate() {
            if spec.proto == FlowProto::Tcp {
                tcp.push((i, s.spawn(|| session.lab.flow(spec))));
            }
        }
        for (i, spec) in specs.iter().enumerate() {
            if spec.proto == FlowProto::Udp {
                results[i] = Some(session.lab.flow(spec)?);
            }
        }
        for (i, h) in tcp {
            results[i] = Some(h.join().expect("a flow thread panicked")?);
        }
        Ok(())
    })?;
    let results: Vec<FlowResult> = results.into_iter().flatten().collect();
    progress("waiting for the flows to end (DESTROY events) and for their lines");
    session.wait_destroyed(&specs)?;
    let mut received = session.wait_logged(&specs, LINE_WAIT)?;
    if ident != IdentMode::Off {
        let tcp: Vec<FlowSpec> = specs
            .iter()
            .filter(|s| s.proto == FlowProto::Tcp)
            .cloned()
            .collect();
        received = session.wait_ident(&tcp, LINE_WAIT)?;
    }
    let events = session.conntrack.events();

    let receiver = if example.is_remote() {
        session.rsyslog.raw_path()
    } else {
        session.rsyslog.messages_path()
    };
    println!(
        "{} flows through the NAT, {} lines logged by masqlog (format {}, {})",
        results.len(),
        received.lines.len(),
        example.format(),
        receiver.display()
    );
    for r in &results {
        print_flow(r, &received, &events);
    }
    for (line, err) in &received.unreadable {
        println!("unreadable line ({err}): {line}");
    }
    let stats = session
        .ulogd
        .request_stats(MASQ_ID, Duration::from_secs(10))?;
    println!(
        "\nulogd (SIGUSR1): MASQLOG[{MASQ_ID}] waiting={} written={} failed={} dropped={}",
        stats.waiting, stats.written, stats.failed, stats.dropped
    );
    if !stats.ident.is_empty() {
        let kv: Vec<String> = stats
            .ident
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        println!("  ident: {}", kv.join(" "));
    }
    answer_a_report(&session, &results, &receiver)?;
    match ident {
        IdentMode::Off => {}
        IdentMode::Plain => println!(
            "\nIDENT plain: the router asks from 10.99.0.1 / fd99::1; oidentd -P 10.99.0.1 \
             answers IPv4 flows. oidentd 2.5 does not honour -P for IPv6 (NO-USER): \
             see --ident transparent."
        ),
        IdentMode::Transparent => println!(
            "\nIDENT transparent: the router asks from the server's address \
             (IP_TRANSPARENT, table inet masqlog_ident, fwmark 0x1 -> table 100); \
             stock oidentd answers IPv4 and IPv6 flows."
        ),
    }
    if args.keep {
        let teardown = session.lab.keep()?;
        let p = session.lab.prefix();
        println!("\nThe lab stays up (namespaces {p}-client, {p}-router, {p}-server).");
        println!(
            "  more flows:  ip netns exec {p}-client su alice -s /bin/sh -c \
             'echo hi | socat -t 5 - TCP4:203.0.113.7:8080'"
        );
        println!("  ulogd log:   {}", session.ulogd.logfile().display());
        if let Some(o) = &session.oidentd {
            println!(
                "  oidentd:     pid {} in {p}-client, log {}",
                o.pid(),
                session.lab.path("oidentd.out").display()
            );
        }
        println!("  syslog:      {}", receiver.display());
        if let Some(store) = &session.store {
            println!("  store:       {}", store.display());
        }
        println!("  events:      {}", session.conntrack.path().display());
        let (_, key) = session.lab.seal_key()?;
        let r = session.lab.ns(crate::Role::Router);
        println!(
            "  look up:     masqlog lookup PUBLIC:PORT --at TIME {}",
            receiver.display()
        );
        println!(
            "  verify:      masqlog verify --key {} {}",
            key.display(),
            receiver.display()
        );
        println!(
            "  check:       masqlog check-config --netns {r} {}",
            session.ulogd.conf_path().display()
        );
        println!("  remove it:   sh {}", teardown.display());
    } else {
        progress("removing the lab");
    }
    drop(session);
    Ok(())
}

/// The `masqlog` command beside this program.
fn masqlog_command() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    Some(exe.parent()?.join("masqlog")).filter(|p| p.is_file())
}

/// Runs `masqlog ARGS`, printing the command and its output.
fn show(masqlog: &std::path::Path, args: &[String]) -> Result<(), LabError> {
    println!("\n$ masqlog {}", args.join(" "));
    let out = std::process::Command::new(masqlog)
        .args(args)
        .output()
        .map_err(|source| LabError::Spawn {
            cmd: format!("masqlog {}", args.join(" ")),
            source,
        })?;
    print!("{}", String::from_utf8_lossy(&out.stdout));
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    println!(
        "(exit status {})",
        out.status.code().map_or("none".into(), |c| c.to_string())
    );
    Ok(())
}

/// What the lab is for: an abuse report about one of its own flows,
/// answered from its log by `masqlog lookup`, and the log's seals checked
/// by `masqlog verify` with the lab's verification key.
fn answer_a_report(
    session: &Session,
    results: &[FlowResult],
    log: &std::path::Path,
) -> Result<(), LabError> {
    let Some(masqlog) = masqlog_command() else {
        println!("\n(masqlog is not next to masqlog-lab: no lookup and verify shown)");
        return Ok(());
    };
    let (_, key) = session.lab.seal_key()?;
    if let Some(r) = results.iter().find(|r| r.spec.proto == FlowProto::Tcp) {
        let public = crate::topology::masq_addr(r.spec.family);
        let port = r.spec.client().port();
        let public = match public {
            std::net::IpAddr::V4(a) => format!("{a}:{port}"),
            std::net::IpAddr::V6(a) => format!("[{a}]:{port}"),
        };
        let at = masqlog_core::time::utc_string(r.began, true);
        println!(
            "\nAn abuse report: \"{public} connected to {} at {at}\". Who was it?",
            r.spec.remote()
        );
        if let Some(store) = &session.store {
            println!(
                "\nFrom the evidence store, answering from sealed lines only (the lab's key):"
            );
            show(
                &masqlog,
                &[
                    "lookup".into(),
                    public.clone(),
                    "--at".into(),
                    at.clone(),
                    "--key".into(),
                    key.display().to_string(),
                    "--store".into(),
                    store.display().to_string(),
                ],
            )?;
            println!("\nFrom the syslog file, the same answer and evidence lines:");
        }
        show(
            &masqlog,
            &[
                "lookup".into(),
                public,
                "--at".into(),
                at,
                log.display().to_string(),
            ],
        )?;
    }
    show(
        &masqlog,
        &[
            "verify".into(),
            "--key".into(),
            key.display().to_string(),
            log.display().to_string(),
        ],
    )
}

fn print_flow(r: &FlowResult, received: &crate::Received, events: &[CtEvent]) {
    let s = &r.spec;
    println!(
        "\n{}: sent {} bytes, received {}",
        s.label(),
        s.send_bytes,
        r.received
    );
    for l in received.of_flow(s) {
        println!("  masqlog  {}", l.line);
    }
    let client = s.client();
    for e in events
        .iter()
        .filter(|e| e.is_flow(client.ip(), client.port(), s.proto))
    {
        let kind = match e.kind {
            CtKind::New => "NEW",
            CtKind::Update => "UPDATE",
            CtKind::Destroy => "DESTROY",
        };
        println!("  kernel   {kind:<7} {}", e.line.trim());
    }
}
