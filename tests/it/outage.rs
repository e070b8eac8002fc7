//! The receiver goes away and comes back: flows made while rsyslog is down
//! are queued, counted as waiting or failed, and arrive once it is back.

use std::time::Duration;

use masqlog_core::record::Event;
use masqlog_lab::session::{LINE_WAIT, MASQ_ID};
use masqlog_lab::{Example, Family, FlowProto, SessionOptions};

use crate::harness::{self, ok};

#[test]
fn flows_made_while_rsyslog_is_down_arrive_after_its_restart() {
    let test = "flows_made_while_rsyslog_is_down_arrive_after_its_restart";
    let Some(mut env) = harness::session(test, &SessionOptions::new(Example::Local)) else {
        return;
    };
    // A flow while everything is up: its lines arrive.
    let before = ok(env.flow("alice", FlowProto::Tcp, Family::V4, 500), "flow");
    ok(
        env.wait_destroyed(std::slice::from_ref(&before.spec)),
        "DESTROY",
    );
    ok(
        env.wait_logged(std::slice::from_ref(&before.spec), LINE_WAIT),
        "lines",
    );

    ok(env.rsyslog.kill(), "killing rsyslog");
    let mut down = Vec::new();
    for (user, proto, family, send) in [
        ("bob", FlowProto::Tcp, Family::V4, 700),
        ("bob", FlowProto::Udp, Family::V4, 70),
        ("alice", FlowProto::Tcp, Family::V6, 900),
        ("alice", FlowProto::Udp, Family::V6, 90),
    ] {
        down.push(ok(env.flow(user, proto, family, send), "flow").spec);
    }
    ok(
        env.wait_destroyed(&down),
        "DESTROY events while rsyslog is down",
    );
    // ulogd has read every event now (its socket comes before conntrack's
    // in no particular order: give the writer a moment to try a send).
    let stats = ok(
        env.ulogd.request_stats(MASQ_ID, Duration::from_secs(30)),
        "SIGUSR1 statistics",
    );
    assert!(
        stats.waiting > 0 || stats.failed > 0,
        "rsyslog is down, yet nothing waits or failed: {stats:?}"
    );
    let received = env.received();
    for f in &down {
        assert!(
            received.of_flow(f).is_empty(),
            "{} logged while rsyslog was down?",
            f.label()
        );
    }

    ok(env.rsyslog.restart(), "restarting rsyslog");
    let received = ok(env.wait_logged(&down, LINE_WAIT), "lines after the restart");
    for f in &down {
        let lines = received.of_flow(f);
        for ev in [Event::Start, Event::End] {
            let n = lines.iter().filter(|l| l.parsed.record.event == ev).count();
            assert_eq!(n, 1, "{}: {n} {} lines", f.label(), ev.name());
        }
    }
    let after = ok(
        env.ulogd.request_stats(MASQ_ID, Duration::from_secs(30)),
        "SIGUSR1 statistics",
    );
    assert_eq!((after.waiting, after.dropped), (0, 0), "{after:?}");
    // Two lines a flow, and the run's chain-start record.
    assert_eq!(after.written, 2 * (1 + down.len() as u64) + 1, "{after:?}");
    let log = env.ulogd.log();
    assert!(
        !log.contains(masqlog_lab::ulogd::LOSING_EVENTS),
        "ulogd lost events:\n{log}"
    );
}
