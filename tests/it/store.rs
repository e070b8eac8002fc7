//! The evidence store end to end: real ulogd with `store_dir=` keeps the
//! flows' lines in the store beside its syslog destination; `masqlog lookup
//! --store` answers from it; ulogd killed with SIGKILL in the middle of a
//! segment (a torn last line added stands for a kill in the middle of a
//! write) leaves a store that the next start repairs (the torn tail cut
//! and counted, the segment closed, compressed and indexed), and the same
//! report is then answered from the closed segment.

use std::path::Path;
use std::time::Duration;

use masqlog_core::record::{Event, FlowRecord};
use masqlog_core::store::{self, SegmentKind};
use masqlog_core::time::utc_string;
use masqlog_lab::process::Signal;
use masqlog_lab::session::MASQ_ID;
use masqlog_lab::{Example, Family, FlowProto, SessionOptions, UlogdConf, wait};

use crate::cli::masqlog;
use crate::harness::{self, ok};

fn segments(dir: &Path) -> Vec<store::SegmentFile> {
    store::list(dir).unwrap_or_default()
}

#[test]
fn lookup_answers_from_the_store_before_and_after_a_kill_9_of_ulogd() {
    let test = "lookup_answers_from_the_store_before_and_after_a_kill_9_of_ulogd";
    let Some(mut env) = harness::session(test, &SessionOptions::new(Example::Local)) else {
        return;
    };
    // The same ulogd, with a store beside its destination.
    let dir = env.lab.path("store");
    let mut conf = UlogdConf::from_text(
        &std::fs::read_to_string(env.ulogd.conf_path()).expect("the lab's ulogd.conf"),
    );
    conf.set(MASQ_ID, "store_dir", &dir.to_string_lossy());
    ok(env.ulogd.stop(), "stopping the first ulogd");
    env.ulogd = ok(
        env.lab.start_ulogd("ulogd-store", &conf),
        "ulogd with a store",
    );

    let (r, received) = env.logged_flow("alice", FlowProto::Tcp, Family::V4, 1000);
    let end = harness::line_of(&received, &r, Event::End);
    let port = end.parsed.record.masq.port.expect("a masquerade port");
    let public = format!("{}:{port}", end.parsed.record.masq.ip);
    let client = r.spec.client().to_string();
    let at = utc_string(end.parsed.record.end.expect("an end time"), true);
    // The writer gathers for a few milliseconds: wait for the end line
    // (its message: the syslog daemon wrote its own header).
    let at_body = masqlog_core::format::message_start(end.line.as_bytes()).expect("a record");
    let body = end.line[at_body..].to_string();
    ok(
        wait::poll(
            "the end line in the live segment",
            Duration::from_secs(30),
            || {
                Ok(segments(&dir).iter().find_map(|s| {
                    let text = std::fs::read_to_string(s.data(&dir)).ok()?;
                    (s.kind == SegmentKind::Live && text.contains(&body)).then_some(())
                }))
            },
        ),
        "the store",
    );
    let store_arg = dir.to_string_lossy().into_owned();
    let r1 = masqlog(&["lookup", &public, "--at", &at, "--store", &store_arg]);
    assert_eq!(r1.code, Some(0), "{}", r1.all());
    assert!(
        r1.first_line().ends_with(&format!(" was {client}")),
        "{}",
        r1.all()
    );
    assert!(
        r1.out.contains(".log:"),
        "evidence from the live segment: {}",
        r1.all()
    );
    // The files are the writer's alone.
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path| {
        std::fs::metadata(p)
            .expect("a store file")
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode(&dir), 0o750);
    let live = segments(&dir)
        .into_iter()
        .find(|s| s.kind == SegmentKind::Live)
        .expect("live");
    assert_eq!(mode(&live.data(&dir)), 0o640);

    // SIGKILL, and a torn last line as a kill in the middle of a write
    // leaves one.
    ok(env.ulogd.signal(Signal::Kill), "SIGKILL to ulogd");
    let _ = env.ulogd.wait_exit(Duration::from_secs(10));
    let torn = b"<30>Dec  4 17:00:00 router masqlog[1]: masqlog: v=1 ev=st";
    {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(live.data(&dir))
            .expect("the live segment");
        f.write_all(torn).expect("the torn line");
    }
    env.ulogd = ok(
        env.lab.start_ulogd("ulogd-store-2", &conf),
        "ulogd after the kill",
    );
    ok(
        env.ulogd.wait_log(
            &format!("{} bytes of a torn last line cut", torn.len()),
            Duration::from_secs(20),
        ),
        "the torn tail reported",
    );
    ok(
        wait::poll(
            "the killed run's segment closed",
            Duration::from_secs(60),
            || {
                Ok(segments(&dir)
                    .iter()
                    .any(|s| s.name == live.name && s.kind == SegmentKind::Closed)
                    .then_some(()))
            },
        ),
        "closing",
    );
    let zst = dir.join(format!("{}.zst", live.name));
    let plain = zstd::stream::decode_all(std::fs::File::open(&zst).expect("the segment"))
        .expect("zstd reads the closed segment");
    assert!(plain.ends_with(b"\n"), "the torn line was cut");
    assert_eq!(mode(&zst), 0o640);
    let r2 = masqlog(&["lookup", &public, "--at", &at, "--store", &store_arg]);
    assert_eq!(r2.code, Some(0), "{}", r2.all());
    assert_eq!(r1.first_line(), r2.first_line(), "{}", r2.all());
    assert!(
        r2.out.contains(&format!("{}:", zst.display())),
        "evidence from the closed segment: {}",
        r2.all()
    );
    // An hour later nothing matches: exit 1, as from a plain file.
    let later = utc_string(
        masqlog_core::record::Timestamp::new(end.parsed.record.end.unwrap().secs + 3600, 0),
        false,
    );
    let r3 = masqlog(&["lookup", &public, "--at", &later, "--store", &store_arg]);
    assert_eq!(r3.code, Some(1), "{}", r3.all());
}

/// The end line of the flow from `client` in the store's live segment.
fn stored_end_line(dir: &Path, client: std::net::SocketAddr) -> Option<FlowRecord> {
    segments(dir).iter().find_map(|s| {
        if s.kind != SegmentKind::Live {
            return None;
        }
        let text = std::fs::read_to_string(s.data(dir)).ok()?;
        text.lines().find_map(|l| {
            let rec = masqlog_core::format::parse_line(l).ok()?.record;
            (rec.event == Event::End
                && rec.client.ip == client.ip()
                && rec.client.port == Some(client.port()))
            .then_some(rec)
        })
    })
}

#[test]
fn a_store_alone_without_a_forwarding_destination_answers_lookups() {
    let test = "a_store_alone_without_a_forwarding_destination_answers_lookups";
    let Some(mut env) = harness::session(test, &SessionOptions::new(Example::Local)) else {
        return;
    };
    // The lab's ulogd, with the store as its only destination.
    let dir = env.lab.path("store");
    let mut conf = UlogdConf::from_text(
        &std::fs::read_to_string(env.ulogd.conf_path()).expect("the lab's ulogd.conf"),
    );
    conf.set(MASQ_ID, "destination", "none");
    conf.set(MASQ_ID, "store_dir", &dir.to_string_lossy());
    ok(env.ulogd.stop(), "stopping the first ulogd");
    env.ulogd = ok(
        env.lab.start_ulogd("ulogd-store-only", &conf),
        "ulogd with only a store",
    );

    let r = ok(
        env.flow("alice", FlowProto::Tcp, Family::V4, 1000),
        "a flow",
    );
    ok(
        env.wait_destroyed(std::slice::from_ref(&r.spec)),
        "its DESTROY event",
    );
    let client = r.spec.client();
    let end = ok(
        wait::poll(
            "the end line in the live segment",
            Duration::from_secs(30),
            || Ok(stored_end_line(&dir, client)),
        ),
        "the store",
    );
    let port = end.masq.port.expect("a masquerade port");
    let public = format!("{}:{port}", end.masq.ip);
    let at = utc_string(end.end.expect("an end time"), true);
    let store_arg = dir.to_string_lossy().into_owned();
    let r1 = masqlog(&["lookup", &public, "--at", &at, "--store", &store_arg]);
    assert_eq!(r1.code, Some(0), "{}", r1.all());
    assert!(
        r1.first_line().ends_with(&format!(" was {client}")),
        "{}",
        r1.all()
    );
    // The statistics line says there is no forwarding destination, and
    // what the store took.
    ok(env.ulogd.signal(Signal::Usr1), "SIGUSR1 to ulogd");
    ok(
        env.ulogd
            .wait_log(" destination=none dropped=0 ", Duration::from_secs(20)),
        "the statistics line",
    );
    let log = env.ulogd.log();
    let stats = log
        .lines()
        .rfind(|l| l.contains(" destination=none "))
        .expect("a statistics line");
    assert!(!stats.contains(" written="), "{stats}");
    assert!(stats.contains(" store_failed=0 "), "{stats}");
    assert!(!stats.contains(" store_written=0 "), "{stats}");
    // The seal chain runs through the store: once ulogd stopped (its
    // chain-stop record stored), `masqlog verify` over the store's
    // directory finds one intact run and nothing unsealed.
    ok(env.ulogd.stop(), "stopping ulogd");
    let (_, key) = ok(env.lab.seal_key(), "the lab's key");
    let v = masqlog(&["verify", "--key", &key.to_string_lossy(), &store_arg]);
    assert_eq!(v.code, Some(0), "{}", v.all());
    assert!(v.out.contains("every chain is intact"), "{}", v.all());
    assert!(v.out.contains("intact: "), "{}", v.all());
    assert!(!v.out.contains("without a seal"), "{}", v.all());
}
