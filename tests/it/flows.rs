//! Each example config end to end: alice's TCP and UDP flows over IPv4 and
//! IPv6 through the NAT, one start and one end line each, compared with
//! what the kernel reported.

use masqlog_core::record::{Event, Timestamp};
use masqlog_lab::session::LINE_WAIT;
use masqlog_lab::{Example, Family, FlowProto, SessionOptions};

use crate::harness::{self, ok};
use crate::oracle::{self, Window};

/// (protocol, family, bytes the client sends): sizes differ so that
/// counters cannot be swapped unnoticed.
const FLOWS: &[(FlowProto, Family, usize)] = &[
    (FlowProto::Tcp, Family::V4, 1000),
    (FlowProto::Udp, Family::V4, 100),
    (FlowProto::Tcp, Family::V6, 1500),
    (FlowProto::Udp, Family::V6, 200),
];

fn flows_are_logged(test: &str, example: Example) {
    let Some(mut env) = harness::session(test, &SessionOptions::new(example)) else {
        return;
    };
    let from = Timestamp::now();
    let mut results = Vec::new();
    for &(proto, family, send) in FLOWS {
        results.push(ok(env.flow("alice", proto, family, send), "flow"));
    }
    let specs: Vec<_> = results.iter().map(|r| r.spec.clone()).collect();
    ok(env.wait_destroyed(&specs), "DESTROY events");
    ok(env.wait_logged(&specs, LINE_WAIT), "masqlog lines");
    // Nothing more can come once ulogd has stopped: count then.
    let status = ok(env.ulogd.stop(), "stopping ulogd");
    assert!(status.success(), "ulogd exited with {status}");
    let to = Timestamp::now();
    let window = Window { from, to };

    // The run is sealed: its chain-start and, after a clean stop, its
    // chain-stop record are in the log with the flows' lines.
    let received = ok(env.wait_chain(2, LINE_WAIT), "the chain records");
    assert!(
        received.unreadable.is_empty(),
        "lines the parser rejects: {:#?}",
        received.unreadable
    );
    let ct = env.conntrack.events();
    let pid = env.ulogd.pid();
    for r in &results {
        let (start, end) = oracle::check_flow(r, &received, &ct, window);
        for l in [start, end] {
            oracle::check_header(example, l, pid);
            if example == Example::Json {
                oracle::check_json(l);
            }
        }
    }
    if example == Example::Remote {
        // rsyslog's own reading of each message (protocol23.log) has the
        // same structured data as the bytes it received.
        let p23 = masqlog_lab::logged::read(&env.rsyslog.protocol23());
        for l in &received.lines {
            assert!(
                p23.lines.iter().any(|q| q.parsed == l.parsed),
                "rsyslog did not parse {} the same way",
                l.line
            );
        }
    }
    let log = env.ulogd.log();
    assert!(
        !log.contains(masqlog_lab::ulogd::LOSING_EVENTS),
        "ulogd lost events:\n{log}"
    );
    let stopped = env
        .ulogd
        .stats()
        .into_iter()
        .rfind(|s| s.what == "stopped")
        .unwrap_or_else(|| panic!("no `stopped` statistics line in:\n{log}"));
    assert_eq!(stopped.dropped, 0, "{stopped:?}");
    assert_eq!(
        stopped.written as usize,
        received.lines.len() + received.chain.len(),
        "{stopped:?}"
    );
    // `masqlog verify` with the lab's key: one intact run, from the
    // chain-start to the chain-stop record, nothing forged or unsealed.
    let (_, key) = ok(env.lab.seal_key(), "the lab's key");
    let log = env.receiver_path();
    let v = crate::cli::masqlog(&[
        "verify",
        "--key",
        &key.to_string_lossy(),
        &log.to_string_lossy(),
    ]);
    assert_eq!(v.code, Some(0), "{}", v.all());
    let n = received.lines.len() + 2;
    assert!(
        v.out
            .contains(&format!("intact: {n} records verify (run 1 seq 1-{n})")),
        "{}",
        v.all()
    );
    assert!(v.out.contains("every chain is intact"), "{}", v.all());
    assert!(!v.out.contains("without a seal"), "{}", v.all());
    let ends = received
        .lines
        .iter()
        .filter(|l| l.parsed.record.event == Event::End)
        .count();
    assert_eq!(ends, FLOWS.len(), "end lines of other flows?");
}

#[test]
fn text_lines_reach_the_local_syslog() {
    flows_are_logged("text_lines_reach_the_local_syslog", Example::Local);
}

#[test]
fn rfc5424_messages_reach_the_remote_syslog_over_tcp() {
    flows_are_logged(
        "rfc5424_messages_reach_the_remote_syslog_over_tcp",
        Example::Remote,
    );
}

#[test]
fn json_lines_reach_the_local_syslog() {
    flows_are_logged("json_lines_reach_the_local_syslog", Example::Json);
}

/// `destination=file:PATH`: stock ulogd appends the plugin's lines to a
/// file itself (no syslog daemon between), one message a line; `lookup`
/// answers a report from that file and `verify` finds its chain intact.
#[test]
fn a_file_destination_holds_lines_that_lookup_and_verify_read() {
    let test = "a_file_destination_holds_lines_that_lookup_and_verify_read";
    // Removed when the test ends, also when it fails (unwinding drops it).
    let out = ok(
        tempfile::Builder::new()
            .prefix("masqlog-file-dest-")
            .tempdir(),
        "a directory for the log file",
    );
    let file = out.path().join("flows.log");
    let mut opts = SessionOptions::new(Example::Local);
    opts.set_key("masq1", "destination", &format!("file:{}", file.display()));
    let Some(mut env) = harness::session(test, &opts) else {
        return;
    };
    let r = ok(
        env.flow("alice", FlowProto::Tcp, Family::V4, 700),
        "a TCP flow",
    );
    let spec = r.spec.clone();
    ok(
        env.wait_destroyed(std::slice::from_ref(&spec)),
        "DESTROY event",
    );
    let lines = ok(
        masqlog_lab::wait::poll("the flow's end line in the file", LINE_WAIT, || {
            let text = std::fs::read_to_string(&file).unwrap_or_default();
            let port = format!(":{} ", spec.sport);
            Ok((text
                .lines()
                .any(|l| l.contains("ev=end") && l.contains(&port)))
            .then_some(text))
        }),
        "the file",
    );
    assert!(lines.ends_with('\n'), "a half line at the end:\n{lines}");
    let status = ok(env.ulogd.stop(), "stopping ulogd");
    assert!(status.success(), "ulogd exited with {status}");
    // Nothing went through rsyslog.
    assert!(
        env.received().lines.is_empty(),
        "lines in rsyslog's file too"
    );

    let log = file.to_string_lossy().into_owned();
    let (_, key) = ok(env.lab.seal_key(), "the lab's key");
    let key = key.to_string_lossy().into_owned();
    let public = format!(
        "{}:{}",
        masqlog_lab::topology::masq_addr(Family::V4),
        spec.sport
    );
    let at = masqlog_core::time::utc_string(r.began, true);
    let l = crate::cli::masqlog(&["lookup", &public, "--at", &at, "--key", &key, &log]);
    assert_eq!(l.code, Some(0), "{}", l.all());
    let client = format!("was {}", masqlog_lab::topology::client_addr(Family::V4));
    assert!(l.first_line().contains(&client), "{}", l.all());
    let v = crate::cli::masqlog(&["verify", "--key", &key, &log]);
    assert_eq!(v.code, Some(0), "{}", v.all());
    assert!(v.out.contains("every chain is intact"), "{}", v.all());
}
