//! Nothing lost, nothing twice: a RELP receiver that is down for 30 s under
//! steady load, and a spool that outlives a SIGTERM and a `kill -9` of
//! ulogd. The conntrack events (`conntrack -E`) are the oracle: each NEW and
//! DESTROY of a flow must be in the receiver's file exactly once.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use masqlog::sink::drops;
use masqlog_core::record::Event;
use masqlog_lab::flow::FlowSpec;
use masqlog_lab::process::Signal;
use masqlog_lab::session::MASQ_ID;
use masqlog_lab::{Example, Family, FlowProto, Session, SessionOptions, UlogdConf};

use crate::cli::masqlog;
use crate::harness::{self, ok};

/// How long the receiver stays down under load.
const OUTAGE: Duration = Duration::from_secs(30);

/// Every flow's start and end line is in the receiver's file exactly once;
/// the start line carries the id of conntrack's NEW event, the end line the
/// same id; no line appears twice. (conntrack -E itself loses DESTROY events
/// when the kernel's garbage collector sends thousands at once, so the end
/// lines are checked against the start lines, not against its DESTROYs.)
fn assert_exactly_once(env: &mut Session, flows: &[FlowSpec]) {
    let received = ok(
        env.wait_logged(flows, Duration::from_secs(120)),
        "every start and end line",
    );
    let mut per_key: HashMap<(Option<u32>, &'static str), usize> = HashMap::new();
    for l in &received.lines {
        *per_key
            .entry((l.parsed.record.id, l.parsed.record.event.name()))
            .or_default() += 1;
    }
    let twice: Vec<_> = per_key.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "lines received more than once: {twice:?}");
    let news = env.conntrack.events();
    for f in flows {
        let lines = received.of_flow(f);
        let mut ids = Vec::new();
        for want in [Event::Start, Event::End] {
            let of: Vec<_> = lines
                .iter()
                .filter(|l| l.parsed.record.event == want)
                .collect();
            assert_eq!(
                of.len(),
                1,
                "{}: {} {} lines",
                f.label(),
                of.len(),
                want.name()
            );
            ids.push(of[0].parsed.record.id);
        }
        assert_eq!(ids[0], ids[1], "{}: start and end ids", f.label());
        let new = news.iter().find(|e| {
            e.kind == masqlog_lab::CtKind::New
                && e.is_flow(f.client().ip(), f.client().port(), f.proto)
        });
        if let Some(new) = new {
            assert_eq!(ids[0], new.id, "{}: the id of conntrack's NEW", f.label());
        }
    }
    assert!(
        received.unreadable.is_empty(),
        "unreadable lines: {:?}",
        received.unreadable
    );
}

#[test]
fn relp_receiver_down_30s_under_steady_load_every_flow_arrives_exactly_once() {
    let test = "relp_receiver_down_30s_under_steady_load_every_flow_arrives_exactly_once";
    let Some(mut env) = harness::session(test, &SessionOptions::new(Example::Relp)) else {
        return;
    };
    let session: &mut Session = &mut env;
    let done = AtomicBool::new(false);
    let (lab, servers) = (&session.lab, &session.servers);
    let find = |proto, family| {
        servers
            .iter()
            .find(|s| s.proto == proto && s.family == family)
            .expect("a server")
    };
    // TCP (a flow takes milliseconds; a UDP one waits a second for
    // socat's timeout), over both families; UDP comes in the next test.
    let plan = [
        (find(FlowProto::Tcp, Family::V4), "alice"),
        (find(FlowProto::Tcp, Family::V6), "bob"),
        (find(FlowProto::Tcp, Family::V4), "bob"),
    ];
    let mut during_outage = None;
    let flows = std::thread::scope(|scope| {
        // Steady load: one flow after the other, as fast as the lab makes
        // them (one thread: the other tests share the two cores).
        let loads: Vec<_> = (0..1)
            .map(|t| {
                let (done, plan) = (&done, &plan);
                scope.spawn(move || {
                    let mut made = Vec::new();
                    let mut n = t;
                    while !done.load(Ordering::SeqCst) {
                        let (srv, user) = plan[n % plan.len()];
                        let spec = FlowSpec::to(lab, srv, user, 64);
                        lab.flow(&spec).expect("a flow");
                        made.push(spec);
                        n += 1;
                    }
                    made
                })
            })
            .collect();
        std::thread::sleep(Duration::from_secs(4));
        ok(session.rsyslog.stop(), "stopping the RELP receiver");
        let down = Instant::now();
        std::thread::sleep(OUTAGE / 2);
        let s = ok(
            session
                .ulogd
                .request_stats(MASQ_ID, Duration::from_secs(10)),
            "statistics during the outage",
        );
        during_outage = Some(s);
        std::thread::sleep(OUTAGE.saturating_sub(down.elapsed()));
        ok(session.rsyslog.restart(), "restarting the RELP receiver");
        std::thread::sleep(Duration::from_secs(4));
        done.store(true, Ordering::SeqCst);
        loads
            .into_iter()
            .flat_map(|l| l.join().expect("a load thread"))
            .collect::<Vec<_>>()
    });
    let s = during_outage.expect("stats");
    assert!(
        s.all.get("spooled").copied().unwrap_or(0) > 0,
        "nothing in the spool while the receiver was down: {s:?}"
    );
    assert_eq!(s.dropped, 0, "{s:?}");
    assert!(flows.len() >= 100, "only {} flows in the load", flows.len());
    assert_exactly_once(&mut env, &flows);

    let after = ok(
        env.ulogd.request_stats(MASQ_ID, Duration::from_secs(10)),
        "statistics after the replay",
    );
    assert_eq!(
        (
            after.waiting,
            after.dropped,
            after.all.get("spooled").copied()
        ),
        (0, 0, Some(0)),
        "{after:?}"
    );
    let log = env.ulogd.log();
    for needle in ["unreachable", "is back after", "spooled records first"] {
        assert!(log.contains(needle), "ulogd's log lacks {needle:?}:\n{log}");
    }
    eprintln!(
        "{test}: {} flows, {} lines, all exactly once; mid-outage {:?}",
        flows.len(),
        2 * flows.len(),
        s.all
    );

    // SIGHUP: a new connection, and the lines keep coming.
    ok(env.ulogd.signal(Signal::Hup), "SIGHUP");
    ok(
        env.ulogd
            .wait_log("reconnecting to destination", Duration::from_secs(10)),
        "the reconnect notice",
    );
    let f = ok(env.flow("alice", FlowProto::Udp, Family::V6, 10), "a flow").spec;
    assert_exactly_once(&mut env, &[f]);
}

#[test]
fn the_spool_outlives_sigterm_and_kill_9_of_ulogd() {
    let test = "the_spool_outlives_sigterm_and_kill_9_of_ulogd";
    let Some(mut env) = harness::session(test, &SessionOptions::new(Example::Relp)) else {
        return;
    };
    let conf = UlogdConf::from_text(
        &std::fs::read_to_string(env.ulogd.conf_path()).expect("the lab's ulogd.conf"),
    );
    // The run's chain-start record is through (in the file and
    // acknowledged) before the receiver stops: a stop in the middle of
    // its delivery would make it arrive twice.
    ok(
        env.wait_chain(1, Duration::from_secs(30)),
        "the chain-start record",
    );
    ok(
        masqlog_lab::wait::poll(
            "the chain-start record acknowledged",
            Duration::from_secs(30),
            || {
                let s = env.ulogd.request_stats(MASQ_ID, Duration::from_secs(10))?;
                Ok((s.written >= 1).then_some(()))
            },
        ),
        "the chain-start record acknowledged",
    );
    ok(env.rsyslog.stop(), "stopping the RELP receiver");
    let make = |env: &mut Session, n: usize| -> Vec<FlowSpec> {
        let specs: Vec<FlowSpec> = (0..n)
            .map(|i| {
                let family = if i % 2 == 0 { Family::V4 } else { Family::V6 };
                ok(env.flow("bob", FlowProto::Udp, family, 20), "flow").spec
            })
            .collect();
        ok(env.wait_destroyed(&specs), "DESTROY events");
        specs
    };

    // 1. SIGTERM with the receiver down: the queue goes to the spool.
    let first = make(&mut env, 6);
    let s = ok(
        env.ulogd.request_stats(MASQ_ID, Duration::from_secs(10)),
        "statistics",
    );
    // No flow line got out; only the run's chain-start record, before the
    // receiver stopped.
    let so_far = env.received();
    assert!(so_far.lines.is_empty(), "{:?}", so_far.lines);
    assert_eq!((s.written, so_far.chain.len()), (1, 1), "{s:?}");
    ok(env.ulogd.stop(), "SIGTERM to ulogd");
    let log = env.ulogd.log();
    assert!(
        log.contains("12 records kept in the spool"),
        "ulogd's log does not say what it kept:\n{log}"
    );
    let stopped = masqlog_lab::ulogd::parse_stats(&log)
        .into_iter()
        .rfind(|s| s.what == "stopped")
        .expect("a stopped line");
    assert_eq!(
        (stopped.dropped, stopped.all.get("spooled").copied()),
        (0, Some(12)),
        "{stopped:?}"
    );

    // A copy of that spool under another name stands for the spool of an
    // instance since renamed: the next start names it, as one no running
    // instance sends.
    let spools = env.lab.path("spool");
    let renamed = spools.join("renamed");
    std::fs::create_dir(&renamed).expect("the renamed spool");
    for entry in std::fs::read_dir(spools.join(MASQ_ID)).expect("the spool") {
        let entry = entry.expect("a spool file");
        std::fs::copy(entry.path(), renamed.join(entry.file_name())).expect("a copy");
    }

    // 2. A new ulogd, receiver still down: it finds the 12, spools more,
    //    and dies by SIGKILL.
    env.ulogd = ok(env.lab.start_ulogd("ulogd-2", &conf), "the second ulogd");
    ok(
        env.ulogd
            .wait_log("holds 12 records from before", Duration::from_secs(10)),
        "the spool found at start",
    );
    ok(
        env.ulogd.wait_log(
            &format!(
                "spool {} holds {} bytes of records that no running instance sends",
                renamed.display(),
                masqlog_core::spool_files::pending_bytes(&renamed)
                    .expect("the copy")
                    .expect("a spool")
            ),
            Duration::from_secs(10),
        ),
        "the renamed instance's spool named at start",
    );
    std::fs::remove_dir_all(&renamed).expect("removing the copy");
    // The first ulogd stopped cleanly: nothing to report about it.
    let log = env.ulogd.log();
    assert!(
        !log.contains("did not stop cleanly"),
        "a clean stop reported as a kill:\n{log}"
    );
    let second = make(&mut env, 4);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let s = ok(
            env.ulogd.request_stats(MASQ_ID, Duration::from_secs(10)),
            "statistics",
        );
        if s.all.get("spooled") == Some(&20) {
            break;
        }
        assert!(Instant::now() < deadline, "the spool never held 20: {s:?}");
        std::thread::sleep(Duration::from_millis(300));
    }
    ok(env.ulogd.signal(Signal::Kill), "SIGKILL to ulogd");
    let _ = env.ulogd.wait_exit(Duration::from_secs(10));

    // 3. The receiver comes back; a third ulogd replays all 20 lines once,
    //    the first ulogd's before the second's.
    ok(env.rsyslog.restart(), "restarting the RELP receiver");
    env.ulogd = ok(env.lab.start_ulogd("ulogd-3", &conf), "the third ulogd");
    // The kill is reported at the next start, with the bound of what it
    // may have cost.
    ok(
        env.ulogd.wait_log(
            "the previous run did not stop cleanly (killed or crashed)",
            Duration::from_secs(10),
        ),
        "the report of the kill",
    );
    let all: Vec<FlowSpec> = first.iter().chain(&second).cloned().collect();
    assert_exactly_once(&mut env, &all);
    let received = env.received();
    let pos = |f: &FlowSpec| {
        received
            .lines
            .iter()
            .position(|l| received.of_flow(f).iter().any(|m| m.line == l.line))
            .expect("logged")
    };
    let last_first = first.iter().map(pos).max().expect("flows");
    let first_second = second.iter().map(pos).min().expect("flows");
    assert!(
        last_first < first_second,
        "the replay is out of order: the first ulogd's lines end at {last_first}, the second's start at {first_second}"
    );
}

/// The drops of the NETLINK_NETFILTER sockets of process `pid` (in the
/// router's `/proc/net/netlink`).
fn netlink_drops(env: &Session, pid: u32) -> u64 {
    let inodes = drops::socket_inodes(std::path::Path::new(&format!("/proc/{pid}/fd")));
    let table = ok(
        env.lab.exec(
            Some(masqlog_lab::Role::Router),
            &["cat", "/proc/net/netlink"],
        ),
        "/proc/net/netlink",
    );
    drops::netfilter_drops(&table, &inodes).expect("the /proc/net/netlink table")
}

#[test]
fn a_netlink_overflow_is_written_as_a_gap_record_that_lookup_reports() {
    let test = "a_netlink_overflow_is_written_as_a_gap_record_that_lookup_reports";
    let mut opts = SessionOptions::new(Example::Local);
    // A deliberately tiny buffer: a burst of DESTROY events overflows it.
    // (ulogd 2.0.8 ignores buffer_size unless it is below buffer_maxsize.)
    opts.set_key("ct1", "netlink_socket_buffer_size", "4096")
        .set_key("ct1", "netlink_socket_buffer_maxsize", "8192")
        // Without reliable delivery the kernel drops what does not fit
        // (with it, a failed DESTROY is retried later instead).
        .set_key("ct1", "reliable", "0");
    let Some(mut env) = harness::session(test, &opts) else {
        return;
    };
    let session: &mut Session = &mut env;
    let (lab, servers) = (&session.lab, &session.servers);
    let tcp = servers
        .iter()
        .find(|s| s.proto == FlowProto::Tcp && s.family == Family::V4)
        .expect("a TCP server");
    let before = masqlog_core::record::Timestamp::now();
    // ulogd stops reading for a moment (SIGSTOP): the flows' events pile up
    // in its 8 KiB socket buffer, and the kernel drops what does not fit.
    let pid = session.ulogd.pid();
    // The instance told its own stack's NFCT socket from ulogd's others.
    ok(
        session.ulogd.wait_log(
            "lost conntrack events are read from this stack's NFCT socket",
            Duration::from_secs(10),
        ),
        "the instance's own netlink socket",
    );
    let kill = |sig: &str| {
        let st = std::process::Command::new("kill")
            .args([sig, &pid.to_string()])
            .status()
            .expect("kill");
        assert!(st.success(), "kill {sig} {pid}");
    };
    kill("-STOP");
    let flows: Vec<FlowSpec> = std::thread::scope(|scope| {
        let threads: Vec<_> = (0..3)
            .map(|_| {
                scope.spawn(|| {
                    (0..40)
                        .map(|_| {
                            let spec = FlowSpec::to(lab, tcp, "alice", 32);
                            lab.flow(&spec).expect("a flow");
                            spec
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        threads
            .into_iter()
            .flat_map(|t| t.join().expect("a flow thread"))
            .collect()
    });
    // Their DESTROY events too, at once.
    let flushed = lab.exec(Some(masqlog_lab::Role::Router), &["conntrack", "-F"]);
    kill("-CONT");
    ok(flushed, "conntrack -F");
    ok(
        masqlog_lab::wait::poll("a gap record", Duration::from_secs(60), || {
            let gaps: Vec<_> = env
                .receiver_lines()
                .iter()
                .filter_map(|l| masqlog_core::format::gap::parse_gap(l))
                .collect();
            Ok((!gaps.is_empty()).then_some(gaps))
        }),
        "the gap record",
    );
    // The drop counter and the gap records agree, once the last check ran.
    std::thread::sleep(Duration::from_secs(2));
    let gaps: Vec<_> = env
        .receiver_lines()
        .iter()
        .filter_map(|l| masqlog_core::format::gap::parse_gap(l))
        .collect();
    let lost: u64 = gaps.iter().map(|g| g.lost).sum();
    let drops = netlink_drops(&env, pid);
    assert!(lost > 0, "{gaps:?}");
    assert_eq!(lost, drops, "gap records {gaps:?} vs the socket's drops");
    for g in &gaps {
        // from: the last check before ulogd stopped reading (one a second)
        assert!(g.to.as_micros() > before.as_micros(), "{g:?}");
        assert!(g.from.as_micros() > before.as_micros() - 2_000_000, "{g:?}");
    }
    let s = ok(
        env.ulogd.request_stats(MASQ_ID, Duration::from_secs(10)),
        "statistics",
    );
    assert_eq!(s.all.get("events_lost"), Some(&lost), "{s:?}");
    let log = env.ulogd.log();
    assert!(
        log.contains("conntrack events lost between"),
        "ulogd's log does not say so:\n{log}"
    );

    // lookup names the gap when asked about a flow of that period.
    let f = &flows[0];
    let received = env.received();
    let line = received
        .of_flow(f)
        .into_iter()
        .find(|l| l.parsed.record.event == Event::Start)
        .expect("the first flow's start line");
    let public = format!(
        "{}:{}",
        line.parsed.record.masq.ip,
        line.parsed.record.masq.port.expect("a port")
    );
    let at = masqlog_core::time::utc_string(gaps[0].to, false);
    let log = env.rsyslog.messages_path();
    let r = masqlog(&["lookup", &public, "--at", &at, &log.to_string_lossy()]);
    let text = format!("{}{}", r.out, r.err);
    assert!(
        text.contains("the log is incomplete") && text.contains("conntrack events were lost"),
        "lookup does not name the gap:\n{text}"
    );
    eprintln!(
        "{test}: {} gap records, {lost} events lost, {} flows",
        gaps.len(),
        flows.len()
    );
}
