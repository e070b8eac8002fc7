//! Forgeries beside the plugin's sealed lines in a real rsyslog's file: a
//! local user's `logger -t masqlog` lines (with the plugin's own pid), an
//! altered copy of a sealed line, a forged IDENT line and a forged gap
//! record. `lookup --key` answers from the sealed lines alone and names the
//! rest; `verify` finds the altered line and counts the unsealed ones.

use std::time::Duration;

use masqlog_core::record::Event;
use masqlog_lab::{Example, Family, FlowProto, SessionOptions, process, wait};

use crate::cli::masqlog;
use crate::harness::{self, ok};

#[test]
fn forged_logger_lines_beside_the_plugins_sealed_ones_are_found_out() {
    let test = "forged_logger_lines_beside_the_plugins_sealed_ones_are_found_out";
    let Some(mut env) = harness::session(test, &SessionOptions::new(Example::Local)) else {
        return;
    };
    let (r, received) = env.logged_flow("alice", FlowProto::Tcp, Family::V4, 300);
    let spec = r.spec.clone();
    let start = harness::line_of(&received, &r, Event::Start).line;
    let real_client = spec.client().to_string();
    let body = &start[start.find("masqlog/1").expect("the marker")..];
    let unsealed = &body[..body.find(" w=").expect("a sealed line")];
    let id = unsealed
        .split(' ')
        .find(|t| t.starts_with("id="))
        .expect("a conntrack id");
    let forgeries = [
        // mallory's flow on the same public port, not sealed
        unsealed
            .replace(&real_client, "10.99.0.66:40999")
            .replace(id, "id=4242"),
        // the real start line, client changed, seal kept: the MAC breaks
        body.replace(&real_client, "10.99.0.67:40999"),
        // an IDENT line naming another user for the real flow
        format!(
            "{} ident=user user=mallory opsys=UNIX",
            unsealed.replace("ev=start", "ev=ident")
        ),
        // a gap record claiming lost events around the flow
        format!(
            "masqlog/1 ev=gap from={} to={} lost=5000 source=netlink",
            masqlog_core::time::utc_string(r.began, true),
            masqlog_core::time::utc_string(r.finished, true)
        ),
    ];
    let socket = env
        .rsyslog
        .socket_path()
        .expect("the local receiver's socket");
    let pid = format!("--id={}", env.ulogd.pid());
    let before = env.rsyslog.messages().len();
    for f in &forgeries {
        ok(
            process::run(
                &[
                    "logger",
                    "-u",
                    &socket.to_string_lossy(),
                    "-t",
                    "masqlog",
                    &pid,
                    f,
                ],
                None,
            ),
            "logger",
        );
    }
    ok(
        wait::poll("the forged lines", Duration::from_secs(30), || {
            Ok((env.rsyslog.messages().len() >= before + forgeries.len()).then_some(()))
        }),
        "the forged lines in the receiver's file",
    );

    let log = env.receiver_path().to_string_lossy().into_owned();
    let (_, key) = ok(env.lab.seal_key(), "the lab's key");
    let key = key.to_string_lossy().into_owned();
    let public = format!(
        "{}:{}",
        masqlog_lab::topology::masq_addr(Family::V4),
        spec.sport
    );
    let at = masqlog_core::time::utc_string(r.began, true);

    // Without the key the forgeries take part, and the answer says that
    // nothing was authenticated.
    let plain = masqlog(&["lookup", &public, "--at", &at, &log]);
    assert!(
        plain.out.contains("nothing was authenticated"),
        "{}",
        plain.all()
    );

    // With it, the sealed lines alone answer: alice's client, no mallory,
    // no lost events; the four forgeries are named.
    let keyed = masqlog(&["lookup", &public, "--at", &at, "--key", &key, &log]);
    assert_eq!(keyed.code, Some(0), "{}", keyed.all());
    assert!(
        keyed.first_line().contains(&format!("was {real_client}")),
        "{}",
        keyed.all()
    );
    for absent in [
        "10.99.0.66",
        "10.99.0.67",
        "mallory",
        "5000 conntrack events",
    ] {
        assert!(!keyed.out.contains(absent), "{absent}: {}", keyed.all());
    }
    assert!(
        keyed
            .out
            .contains("not used as evidence: 3 masqlog-looking lines"),
        "{}",
        keyed.all()
    );
    assert!(
        keyed.out.contains("not used: 1 gap record"),
        "{}",
        keyed.all()
    );

    // verify: the altered copy is forged, the three others are unsealed.
    let v = masqlog(&["verify", "--key", &key, &log]);
    assert_eq!(v.code, Some(1), "{}", v.all());
    assert!(v.out.contains("forged or altered lines: 1"), "{}", v.all());
    assert!(
        v.out.contains("masqlog records without a seal: 3"),
        "{}",
        v.all()
    );
}
