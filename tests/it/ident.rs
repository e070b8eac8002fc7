//! IDENT end to end: the plugin asks the client's identd who owns each
//! masqueraded TCP flow, through the kernel's NAT, and writes the answer as
//! an `ev=ident` line joined by conntrack id; the start line never waits for
//! it, and no identd, however hostile, can delay, break or forge a line.
//!
//! - plain mode with Debian's oidentd `-P 10.99.0.1`, and transparent mode
//!   with stock oidentd and the router's policy routing: alice's and bob's
//!   flows are named;
//! - a hostile identd (`masqlog_lab::hostile`, run inside the client
//!   namespace by re-running this test binary: see
//!   [`hostile_identd_server`]) that stalls, answers late, trickles,
//!   floods, sends control bytes, closes, resets or lies, and no identd at
//!   all;
//! - a flood of flows against an identd that never answers: the query queue
//!   fills, flows keep their lines, the statistics count what was dropped;
//! - a query that waits in a full queue longer than the plugin's age for
//!   stale queries still gets its ident line.

use std::collections::BTreeMap;
use std::time::Duration;

use masqlog_core::record::{Event, IdentInfo, IdentStatus, Timestamp};
use masqlog_lab::hostile::{self, Behaviour, HostileIdentd, Plan};
use masqlog_lab::session::{DESTROY_WAIT, LINE_WAIT, MASQ_ID};
use masqlog_lab::{
    CtKind, Example, Family, FlowProto, FlowResult, FlowSpec, IdentMode, Lab, LabError, Logged,
    Received, Session, SessionOptions,
};

use crate::harness::{self, Env, ok};

/// How long a named flow keeps its connection open, so that oidentd still
/// finds it when the router asks (the query comes within milliseconds).
const HOLD: Duration = Duration::from_secs(2);
/// `ident_timeout_ms` of the hostile and flood tests.
const IDENT_TIMEOUT_MS: u64 = 1500;
/// Scheduling, rsyslog and ulogd's event loop, on top of a deadline.
const MARGIN_MS: i64 = 1000;
/// How soon after the kernel's NEW event (as `conntrack -E` received it)
/// a flow's start line must reach syslog.
const START_PROMPT_MS: i64 = 1000;

/// The server of the hostile identd: does nothing unless the lab started
/// this binary with a plan in `MASQLOG_HOSTILE_IDENTD`; then it serves port
/// 113 of the client namespace until the lab stops it.
#[test]
#[ignore = "the hostile identd's server; the ident tests run it inside the client namespace"]
fn hostile_identd_server() {
    if let Err(e) = hostile::serve_from_env() {
        panic!("{e}");
    }
}

fn runner() -> Vec<String> {
    ok(
        hostile::libtest_runner("ident::hostile_identd_server"),
        "the hostile identd's command",
    )
}

fn session(test: &str, mode: IdentMode, oidentd: bool, set: &[(&str, String)]) -> Option<Env> {
    let mut opts = SessionOptions::new(Example::Local).with_ident(mode);
    opts.oidentd = oidentd;
    for (k, v) in set {
        opts.set_key(MASQ_ID, k, v);
    }
    harness::session(test, &opts)
}

/// Runs the flows at once (threads), results in the order of `specs`.
fn run_all(lab: &Lab, specs: &[FlowSpec], threads: usize) -> Vec<FlowResult> {
    let chunk = specs.len().div_ceil(threads.max(1)).max(1);
    std::thread::scope(|s| {
        let handles: Vec<_> = specs
            .chunks(chunk)
            .map(|part| {
                s.spawn(move || {
                    part.iter()
                        .map(|f| lab.flow(f))
                        .collect::<Result<Vec<_>, LabError>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| ok(h.join().expect("flow thread"), "flow"))
            .collect()
    })
}

/// The time rsyslog put on a line of `messages.log` (its first field; the
/// local socket's messages get the time of reception).
fn arrival(l: &Logged) -> Timestamp {
    let ts = l.line.split(' ').next().unwrap_or("");
    masqlog_core::time::parse_rfc3339(ts)
        .unwrap_or_else(|| panic!("no rsyslog timestamp in {}", l.line))
}

fn ms_between(a: Timestamp, b: Timestamp) -> i64 {
    (b.as_micros() - a.as_micros()) / 1000
}

/// The start, ident and end line of one flow: exactly one of each, the
/// start line before the ident line in the receiver's file, all three with
/// the same conntrack id and endpoints (the kernel's id).
struct FlowLines<'a> {
    start: &'a Logged,
    ident: &'a Logged,
    end: &'a Logged,
    info: &'a IdentInfo,
    /// When `conntrack -E` received the flow's NEW event.
    new_at: Timestamp,
}

fn flow_lines<'a>(env: &Session, r: &'a Received, spec: &FlowSpec) -> FlowLines<'a> {
    let label = spec.label();
    let lines = r.of_flow(spec);
    let all = || {
        lines
            .iter()
            .map(|l| l.line.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    };
    let one = |ev: Event| -> (usize, &'a Logged) {
        let found: Vec<(usize, &&Logged)> = lines
            .iter()
            .enumerate()
            .filter(|(_, l)| l.parsed.record.event == ev)
            .collect();
        assert_eq!(
            found.len(),
            1,
            "{label}: expected one {} line, got:\n{}",
            ev.name(),
            all()
        );
        (found[0].0, *found[0].1)
    };
    let (si, start) = one(Event::Start);
    let (ii, ident) = one(Event::Ident);
    let (_, end) = one(Event::End);
    assert_eq!(lines.len(), 3, "{label}: other lines:\n{}", all());
    assert!(
        si < ii,
        "{label}: the ident line came before the start line:\n{}",
        all()
    );
    let new = env
        .conntrack
        .flow_events(spec.client().ip(), spec.sport, spec.proto)
        .into_iter()
        .find(|e| e.kind == CtKind::New)
        .unwrap_or_else(|| panic!("{label}: no NEW event from conntrack"));
    for l in [start, ident, end] {
        let p = &l.parsed.record;
        assert_eq!(p.id, new.id, "{label}: id of {}", l.line);
        assert_eq!(p.client, start.parsed.record.client, "{label}: {}", l.line);
        assert_eq!(p.masq, start.parsed.record.masq, "{label}: {}", l.line);
        assert_eq!(p.remote, start.parsed.record.remote, "{label}: {}", l.line);
    }
    assert_eq!(start.parsed.record.ident, None, "{label}: {}", start.line);
    let ip = &ident.parsed.record;
    assert!(
        ip.end.is_none() && ip.out.is_none() && ip.inbound.is_none(),
        "{label}: an ident line with end time or counters: {}",
        ident.line
    );
    assert_eq!(
        ip.start, start.parsed.record.start,
        "{label}: {}",
        ident.line
    );
    let info = ip
        .ident
        .as_ref()
        .unwrap_or_else(|| panic!("{label}: no ident fields in {}", ident.line));
    // The end line repeats the answer when it came first, and never says
    // anything else.
    if let Some(e) = &end.parsed.record.ident {
        assert_eq!(e, info, "{label}: end line {}", end.line);
    }
    let new_at = new
        .time
        .unwrap_or_else(|| panic!("{label}: no time in {}", new.line));
    FlowLines {
        start,
        ident,
        end,
        info,
        new_at,
    }
}

fn user_info(user: &str) -> IdentInfo {
    IdentInfo {
        status: IdentStatus::User,
        user: Some(user.as_bytes().to_vec()),
        opsys: Some(b"UNIX".to_vec()),
        detail: None,
    }
}

fn assert_no_lost_events(env: &Session) {
    let log = env.ulogd.log();
    assert!(
        !log.contains(masqlog_lab::ulogd::LOSING_EVENTS),
        "ulogd lost events:\n{log}"
    );
}

/// Where oidentd saw the queries come from (`Connection from ADDR:PORT`).
fn oidentd_peers(env: &Session) -> String {
    env.oidentd.as_ref().map(|o| o.output()).unwrap_or_default()
}

/// alice and bob each hold a TCP connection through the NAT; oidentd names
/// them; each flow has its start line (before the ident line), an ident line
/// `ident=user user=NAME` and an end line with the same user.
fn users_are_named(test: &str, mode: IdentMode, named: &[Family], asker: &[&str]) {
    let Some(mut env) = session(test, mode, true, &[]) else {
        return;
    };
    let mut specs = Vec::new();
    for family in Family::ALL {
        for (user, send) in [("alice", 700), ("bob", 900)] {
            specs.push(
                env.flow_spec(user, FlowProto::Tcp, family, send)
                    .holding(HOLD),
            );
        }
    }
    let results = run_all(&env.lab, &specs, specs.len());
    assert_eq!(results.len(), specs.len());
    ok(env.wait_destroyed(&specs), "DESTROY events");
    ok(env.wait_logged(&specs, LINE_WAIT), "start and end lines");
    let r = ok(env.wait_ident(&specs, LINE_WAIT), "ident lines");
    assert!(r.unreadable.is_empty(), "{:#?}", r.unreadable);
    for spec in &specs {
        let f = flow_lines(&env, &r, spec);
        if named.contains(&spec.family) {
            assert_eq!(
                f.info,
                &user_info(&spec.user),
                "{}: {}",
                spec.label(),
                f.ident.line
            );
            assert_eq!(
                f.end.parsed.record.ident.as_ref(),
                Some(f.info),
                "{}: the answer came seconds before the flow ended, the end line must repeat it: {}",
                spec.label(),
                f.end.line
            );
        } else {
            // oidentd 2.5 honours -P only in its IPv4 lookup (get_user6
            // has no proxy case): a proxied IPv6 query gets NO-USER. Should
            // a later oidentd name the user, it must be the right one.
            let no_user = IdentInfo {
                status: IdentStatus::IdentError,
                user: None,
                opsys: None,
                detail: Some(b"NO-USER".to_vec()),
            };
            assert!(
                f.info == &no_user || f.info == &user_info(&spec.user),
                "{}: {}",
                spec.label(),
                f.ident.line
            );
        }
    }
    let peers = oidentd_peers(&env);
    for a in asker {
        assert!(
            peers.contains(&format!("Connection from {a}:")),
            "oidentd saw no query from {a}:\n{peers}"
        );
    }
    let stats = ok(
        env.ulogd.request_stats(MASQ_ID, Duration::from_secs(10)),
        "statistics",
    );
    assert_eq!(
        stats.ident.get("sent"),
        Some(&(specs.len() as u64)),
        "{stats:?}"
    );
    assert_eq!(
        stats.ident.get("answered"),
        Some(&(specs.len() as u64)),
        "{stats:?}"
    );
    assert_eq!((stats.waiting, stats.dropped), (0, 0), "{stats:?}");
    assert_no_lost_events(&env);
}

#[test]
fn plain_mode_oidentd_proxy_names_alice_and_bob() {
    // IPv4 only: oidentd does not answer proxied IPv6 queries (NO-USER).
    users_are_named(
        "plain_mode_oidentd_proxy_names_alice_and_bob",
        IdentMode::Plain,
        &[Family::V4],
        &["10.99.0.1", "fd99::1"],
    );
}

#[test]
fn transparent_mode_stock_oidentd_names_alice_and_bob() {
    // The queries come from the server's own addresses.
    users_are_named(
        "transparent_mode_stock_oidentd_names_alice_and_bob",
        IdentMode::Transparent,
        &[Family::V4, Family::V6],
        &["203.0.113.7", "2001:db8:113::7"],
    );
}

/// What a hostile flow's ident line must say.
#[derive(Clone, Debug)]
enum Want {
    /// `ident=user` with exactly these bytes.
    User(&'static [u8]),
    /// This outcome, answered at about the deadline.
    Timeout,
    /// `protocol-error` with this reason (`{port}` is the client port).
    ProtocolError(&'static str),
    /// `refused`: nothing listens on port 113.
    Refused,
}

impl Want {
    fn status(&self) -> IdentStatus {
        match self {
            Want::User(_) => IdentStatus::User,
            Want::Timeout => IdentStatus::Timeout,
            Want::ProtocolError(_) => IdentStatus::ProtocolError,
            Want::Refused => IdentStatus::Refused,
        }
    }
}

struct Case {
    name: &'static str,
    family: Family,
    behaviour: Behaviour,
    want: Want,
}

fn hostile_cases() -> Vec<Case> {
    let answer = |b: &[u8]| Behaviour::Answer(b.to_vec());
    vec![
        Case {
            name: "never answers",
            family: Family::V4,
            behaviour: Behaviour::Silent,
            want: Want::Timeout,
        },
        Case {
            name: "answers after the deadline",
            family: Family::V4,
            behaviour: Behaviour::Late {
                after: Duration::from_millis(3 * IDENT_TIMEOUT_MS),
                reply: b":USERID:UNIX:late\r\n".to_vec(),
            },
            want: Want::Timeout,
        },
        Case {
            name: "trickles one byte every 300 ms",
            family: Family::V6,
            behaviour: Behaviour::Trickle {
                every: Duration::from_millis(300),
                reply: b":USERID:UNIX:trickler\r\n".to_vec(),
            },
            want: Want::Timeout,
        },
        Case {
            name: "sends 1 MB without an end of line",
            family: Family::V4,
            behaviour: Behaviour::Flood(1 << 20),
            want: Want::ProtocolError("reply longer than 1000 bytes"),
        },
        Case {
            name: "control characters, quotes and invalid UTF-8 in the user",
            family: Family::V4,
            behaviour: answer(b":USERID:UNIX:\x1b[31mred\x07 \"q\" a=b\t\\x41 \xff\xfe\xc3(\r\n"),
            want: Want::User(b"\x1b[31mred\x07 \"q\" a=b\t\\x41 \xff\xfe\xc3("),
        },
        Case {
            name: "a newline in the user: the line ends there",
            family: Family::V6,
            behaviour: answer(b":USERID:UNIX:bo\nb ev=end user=root\r\n"),
            want: Want::User(b"bo"),
        },
        Case {
            name: "a CR in the user",
            family: Family::V4,
            behaviour: answer(b":USERID:UNIX:bo\rb\r\n"),
            want: Want::ProtocolError("user-id contains the forbidden byte 0x0d"),
        },
        Case {
            name: "a NUL in the user",
            family: Family::V4,
            behaviour: answer(b":USERID:UNIX:bo\0b\r\n"),
            want: Want::ProtocolError("user-id contains the forbidden byte 0x00"),
        },
        Case {
            name: "an answer about another connection",
            family: Family::V4,
            behaviour: Behaviour::Raw(b"1,2:USERID:UNIX:mallory\r\n".to_vec()),
            want: Want::ProtocolError("port pair mismatch: asked {port}, 8080, answered 1, 2"),
        },
        Case {
            name: "closes without a word",
            family: Family::V4,
            behaviour: Behaviour::Close,
            want: Want::ProtocolError("empty reply"),
        },
        Case {
            name: "resets the connection",
            family: Family::V6,
            behaviour: Behaviour::Reset,
            want: Want::ProtocolError("connection reset by the identd"),
        },
    ]
}

/// Checks the lines of one hostile flow: present, one line each, the start
/// line prompt (within a second of the flow's start, before the ident line),
/// the outcome as wanted, the raw bytes of a user recoverable.
fn check_hostile(env: &Session, r: &Received, res: &FlowResult, name: &str, want: &Want) {
    let spec = &res.spec;
    let label = format!("{} ({name})", spec.label());
    let f = flow_lines(env, r, spec);
    let start_after = ms_between(f.new_at, arrival(f.start));
    assert!(
        start_after < START_PROMPT_MS,
        "{label}: the start line reached syslog {start_after} ms after the kernel's NEW event: {}",
        f.start.line
    );
    let ident_after = ms_between(arrival(f.start), arrival(f.ident));
    for l in [f.start, f.ident, f.end] {
        // One line, in ASCII: every hostile byte escaped.
        assert!(
            l.line.bytes().all(|b| (0x20..0x7f).contains(&b)),
            "{label}: unescaped bytes in {:?}",
            l.line
        );
    }
    assert_eq!(f.info.status, want.status(), "{label}: {}", f.ident.line);
    match want {
        Want::User(u) => {
            assert_eq!(
                f.info.user.as_deref(),
                Some(*u),
                "{label}: the user's raw bytes from {}",
                f.ident.line
            );
            assert_eq!(f.info.opsys.as_deref(), Some(&b"UNIX"[..]), "{label}");
        }
        Want::Timeout => {
            assert!(
                (IDENT_TIMEOUT_MS as i64 - 100..IDENT_TIMEOUT_MS as i64 + MARGIN_MS)
                    .contains(&ident_after),
                "{label}: a timeout {ident_after} ms after the start line (deadline {IDENT_TIMEOUT_MS} ms)"
            );
            assert_eq!(f.info.user, None, "{label}");
        }
        Want::ProtocolError(why) => {
            let why = why.replace("{port}", &spec.sport.to_string());
            assert_eq!(
                f.info.detail.as_deref(),
                Some(why.as_bytes()),
                "{label}: {}",
                f.ident.line
            );
            assert_eq!(f.info.user, None, "{label}");
        }
        Want::Refused => {
            assert_eq!((&f.info.user, &f.info.detail), (&None, &None), "{label}");
        }
    }
    if !matches!(want, Want::Timeout) {
        assert!(
            ident_after < IDENT_TIMEOUT_MS as i64,
            "{label}: {ident_after} ms for an answer that needs no deadline"
        );
    }
}

/// Every line of the receiver's file is masqlog's (and parses) or
/// rsyslogd's own: nothing a hostile identd sent became a line of its own.
fn assert_every_line_is_whole(env: &Session) {
    for l in env.rsyslog.messages() {
        if l.contains(" rsyslogd:") || l.contains(" rsyslogd[") {
            continue;
        }
        let chain = masqlog_core::format::chain::parse_chain(&l).is_some();
        assert!(
            l.contains(" masqlog[") && (chain || masqlog_core::format::parse_line(&l).is_ok()),
            "a line that is not a whole masqlog line: {l:?}"
        );
    }
}

#[test]
fn hostile_identds_never_delay_or_break_the_lines() {
    let test = "hostile_identds_never_delay_or_break_the_lines";
    let set = [
        ("ident_timeout_ms", IDENT_TIMEOUT_MS.to_string()),
        ("ident_workers", "16".to_string()),
        ("ident_per_host", "32".to_string()),
    ];
    let Some(mut env) = session(test, IdentMode::Plain, false, &set) else {
        return;
    };
    let cases = hostile_cases();
    let mut plan = Plan::new(Behaviour::Silent);
    let specs: Vec<FlowSpec> = cases
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let user = if i % 2 == 0 { "alice" } else { "bob" };
            let spec = env.flow_spec(user, FlowProto::Tcp, c.family, 100 + i);
            plan.on(spec.sport, c.behaviour.clone());
            spec
        })
        .collect();
    let mut identd = ok(
        HostileIdentd::start(&env.lab, &runner(), &plan),
        "starting the hostile identd",
    );
    let results = run_all(&env.lab, &specs, specs.len());
    ok(env.wait_destroyed(&specs), "DESTROY events");
    ok(env.wait_logged(&specs, LINE_WAIT), "start and end lines");
    let r = ok(env.wait_ident(&specs, LINE_WAIT), "ident lines");
    assert!(r.unreadable.is_empty(), "{:#?}", r.unreadable);
    for (c, res) in cases.iter().zip(&results) {
        check_hostile(&env, &r, res, c.name, &c.want);
    }
    let log = identd.output();
    for spec in &specs {
        assert!(
            log.contains(&format!("asked {},{}", spec.sport, spec.dport)),
            "the hostile identd was not asked about {}:\n{log}",
            spec.label()
        );
    }

    // Nothing listening on port 113: refused, at once.
    ok(identd.stop(), "stopping the hostile identd");
    let spec = env.flow_spec("alice", FlowProto::Tcp, Family::V4, 50);
    let res = ok(env.lab.flow(&spec), "flow");
    let one = std::slice::from_ref(&spec);
    ok(env.wait_destroyed(one), "DESTROY event");
    ok(env.wait_logged(one, LINE_WAIT), "start and end lines");
    let r = ok(env.wait_ident(one, LINE_WAIT), "ident line");
    check_hostile(&env, &r, &res, "nothing listens", &Want::Refused);

    assert_every_line_is_whole(&env);
    let stats = ok(
        env.ulogd.request_stats(MASQ_ID, Duration::from_secs(10)),
        "statistics",
    );
    let n = specs.len() as u64 + 1;
    assert_eq!(stats.ident.get("sent"), Some(&n), "{stats:?}");
    assert_eq!(stats.ident.get("answered"), Some(&2), "{stats:?}");
    assert_eq!(stats.ident.get("failed"), Some(&(n - 2)), "{stats:?}");
    assert_eq!((stats.waiting, stats.dropped), (0, 0), "{stats:?}");
    // Three lines a flow, and the run's chain-start record.
    assert_eq!(stats.written, 3 * n + 1, "{stats:?}");
    assert_no_lost_events(&env);
}

/// Many short flows to a client whose identd never answers, with a small
/// query queue: every flow keeps its start and end lines and gets exactly
/// one ident line (`timeout` for the queries sent, `queue-full` or `busy`
/// for the others); the pool counts what it dropped; the sink loses
/// nothing.
#[test]
fn a_flood_of_flows_fills_the_ident_queue_and_loses_no_line() {
    let test = "a_flood_of_flows_fills_the_ident_queue_and_loses_no_line";
    const FLOWS: usize = 200;
    let set = [
        ("ident_timeout_ms", IDENT_TIMEOUT_MS.to_string()),
        ("ident_workers", "2".to_string()),
        ("ident_queue_size", "8".to_string()),
    ];
    let Some(mut env) = session(test, IdentMode::Plain, false, &set) else {
        return;
    };
    let _identd = ok(
        HostileIdentd::start(&env.lab, &runner(), &Plan::new(Behaviour::Silent)),
        "starting the silent identd",
    );
    let specs: Vec<FlowSpec> = (0..FLOWS)
        .map(|i| {
            let user = if i % 2 == 0 { "alice" } else { "bob" };
            env.flow_spec(user, FlowProto::Tcp, Family::V4, 10 + i)
        })
        .collect();
    let began = std::time::Instant::now();
    // Two at a time fill the queue many times over (a flow takes tens of
    // milliseconds, a query 1.5 s) without loading the machine much.
    let results = run_all(&env.lab, &specs, 2);
    let took = began.elapsed();
    assert_eq!(results.len(), FLOWS);
    // The flows ended in the kernel (their entries gone), then their end
    // lines: this test needs the lines, which come through ulogd's own
    // NFCT socket, not conntrack -E's events.
    let flows: Vec<_> = specs
        .iter()
        .map(|f| (f.client().ip(), f.sport, f.proto))
        .collect();
    ok(
        env.conntrack.wait_gone(&flows, DESTROY_WAIT),
        "the flows' end in the kernel",
    );
    ok(env.wait_logged(&specs, LINE_WAIT), "start and end lines");
    // The last queued queries end one deadline after each other, two at a
    // time: (8 + 2) / 2 x 1.5 s at most after the last flow.
    let r = ok(
        env.wait_ident(&specs, Duration::from_secs(20)),
        "ident lines",
    );
    assert!(r.unreadable.is_empty(), "{:#?}", r.unreadable);
    let mut outcomes: BTreeMap<&'static str, u64> = BTreeMap::new();
    for spec in &specs {
        let f = flow_lines(&env, &r, spec);
        let s = f.info.status;
        assert!(
            matches!(
                s,
                IdentStatus::Timeout | IdentStatus::QueueFull | IdentStatus::Busy
            ),
            "{}: {}",
            spec.label(),
            f.ident.line
        );
        *outcomes.entry(s.name()).or_default() += 1;
    }
    let not_sent = outcomes.get("queue-full").copied().unwrap_or(0);
    let busy = outcomes.get("busy").copied().unwrap_or(0);
    let timeouts = outcomes.get("timeout").copied().unwrap_or(0);
    eprintln!("{test}: {FLOWS} flows in {took:?}: {outcomes:?}");
    assert!(
        not_sent + busy > 0,
        "{FLOWS} flows in {took:?} and the queue never filled: {outcomes:?}"
    );
    assert!(timeouts > 0, "no query was sent: {outcomes:?}");

    let stats = ok(
        env.ulogd.request_stats(MASQ_ID, Duration::from_secs(10)),
        "statistics",
    );
    let ident = &stats.ident;
    let get = |k: &str| {
        ident
            .get(k)
            .copied()
            .unwrap_or_else(|| panic!("no ident {k}: {stats:?}"))
    };
    // The sink: every line written, none dropped or waiting.
    assert_eq!((stats.waiting, stats.dropped), (0, 0), "{stats:?}");
    // Three lines a flow, and the run's chain-start record.
    assert_eq!(stats.written, 3 * FLOWS as u64 + 1, "{stats:?}");
    assert_eq!(r.lines.len(), 3 * FLOWS, "lines in the receiver's file");
    assert_no_lost_events(&env);
    // The pool: what was sent ended as timeout (or busy); nothing lost.
    assert_eq!(get("sent"), timeouts + busy, "{outcomes:?} {stats:?}");
    assert_eq!(get("lost"), 0, "{stats:?}");
    // Every queue-full line is a query not sent, and the statistics line
    // must count it: `dropped` (README: the ident counters; pool.rs:
    // "dropped also counts the queries submit refused").
    assert!(
        get("dropped") > 0 && get("dropped") == not_sent,
        "{not_sent} flows logged ident=queue-full, but the statistics line counts \
         ident dropped={}: {stats:?}",
        get("dropped")
    );
}

/// A query waits in the queue behind others, longer than the plugin's
/// "stale" age (2 x ident_timeout_ms + 1 s), while new flows keep the queue
/// full: its flow must still get its ident line when the answer (here a
/// timeout) comes. With one worker, a queue of 4 and a 1 s deadline, the
/// last queued query ends 5 s after it was queued; flows every 100 ms for
/// 7 s keep the queue full past the 3 s age.
#[test]
fn a_query_queued_longer_than_the_stale_age_keeps_its_ident_line() {
    let test = "a_query_queued_longer_than_the_stale_age_keeps_its_ident_line";
    const TIMEOUT_MS: u64 = 1000;
    const FLOWS: usize = 70;
    let set = [
        ("ident_timeout_ms", TIMEOUT_MS.to_string()),
        ("ident_workers", "1".to_string()),
        ("ident_queue_size", "4".to_string()),
    ];
    let Some(mut env) = session(test, IdentMode::Plain, false, &set) else {
        return;
    };
    let _identd = ok(
        HostileIdentd::start(&env.lab, &runner(), &Plan::new(Behaviour::Silent)),
        "starting the silent identd",
    );
    let specs: Vec<FlowSpec> = (0..FLOWS)
        .map(|i| env.flow_spec("alice", FlowProto::Tcp, Family::V4, 10 + i))
        .collect();
    let began = std::time::Instant::now();
    for (i, spec) in specs.iter().enumerate() {
        ok(env.lab.flow(spec), "flow");
        // One flow per 100 ms, whatever a flow takes.
        let next = Duration::from_millis(100 * (i as u64 + 1));
        if let Some(pause) = next.checked_sub(began.elapsed()) {
            std::thread::sleep(pause);
        }
    }
    ok(env.wait_destroyed(&specs), "DESTROY events");
    ok(env.wait_logged(&specs, LINE_WAIT), "start and end lines");
    // The last query ends (4 + 1) x 1 s after the last flow at most.
    let r = ok(
        env.wait_ident(&specs, Duration::from_secs(15)),
        "an ident line for every flow",
    );
    let mut timeouts = 0;
    for spec in &specs {
        let f = flow_lines(&env, &r, spec);
        if f.info.status == IdentStatus::Timeout {
            timeouts += 1;
        }
    }
    let stats = ok(
        env.ulogd.request_stats(MASQ_ID, Duration::from_secs(10)),
        "statistics",
    );
    assert_eq!(stats.ident.get("sent"), Some(&timeouts), "{stats:?}");
}
