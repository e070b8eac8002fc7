//! Tests of the writer: every destination kind on loopback or a Unix socket
//! in a temp dir, outages, a full queue, stop and the notices.

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::testutil::*;
use super::*;
use masqlog_core::config::Destination;

/// A deadline for what must happen: generous, for a busy machine.
const LONG: Duration = Duration::from_secs(30);

type Captured = Arc<Mutex<Vec<Vec<u8>>>>;

fn start(cfg: &Config, format: FormatFn) -> (Writer, Arc<TestWaker>) {
    let waker = Arc::new(TestWaker::default());
    let w = Writer::start_with(cfg, waker.clone(), format, drops::DropSource::Process).unwrap();
    (w, waker)
}

/// Wraps `inner`, keeping a copy of every message it formats.
fn capturing(mut inner: FormatFn) -> (FormatFn, Captured) {
    let seen: Captured = Arc::default();
    let copy = Arc::clone(&seen);
    let f: FormatFn = Box::new(
        move |kind, hdr: &Header<'_>, rec: &FlowRecord, out: &mut Vec<u8>| {
            let start = inner(kind, hdr, rec, out);
            copy.lock().push(out.clone());
            start
        },
    );
    (f, seen)
}

fn ids(msgs: &[Vec<u8>]) -> Vec<u32> {
    msgs.iter().map(|m| id_of(m)).collect()
}

fn submit_all(w: &Writer, ids: std::ops::Range<u32>) {
    for id in ids {
        assert!(w.submit(record(id)), "record {id} refused");
    }
}

fn assert_adds_up(s: SinkStats, submitted: u64) {
    assert_eq!(s.written + s.dropped + s.waiting, submitted, "{s:?}");
}

/// Notices of `level` whose message contains `text`.
fn count(notices: &[Notice], level: Level, text: &str) -> usize {
    notices
        .iter()
        .filter(|n| n.level == level && n.message.contains(text))
        .count()
}

#[test]
fn stats_display_is_exact() {
    let s = SinkStats {
        waiting: 1,
        written: 22,
        failed: 333,
        dropped: 4444,
        spooled: 55555,
        events_lost: 6,
        batches: 7,
        unacked: 0,
        timed_out: 0,
        store: None,
    };
    assert_eq!(
        s.to_string(),
        "stats: waiting=1 written=22 failed=333 dropped=4444 spooled=55555 events_lost=6 batches=7"
    );
    let udp = SinkStats { unacked: 22, ..s };
    assert_eq!(
        udp.to_string(),
        "stats: waiting=1 written=22 failed=333 dropped=4444 spooled=55555 events_lost=6 batches=7 unacked=22"
    );
    let hung = SinkStats { timed_out: 3, ..s };
    assert_eq!(
        hung.to_string(),
        "stats: waiting=1 written=22 failed=333 dropped=4444 spooled=55555 events_lost=6 batches=7 timed_out=3"
    );
}

#[test]
fn zero_queue_size_is_refused() {
    let cfg = Config {
        queue_size: 0,
        ..test_config(Destination::Unix("/nonexistent/log".into()))
    };
    let waker = Arc::new(TestWaker::default());
    assert!(matches!(
        Writer::start_with(&cfg, waker, id_format(), drops::DropSource::Process),
        Err(SinkError::QueueSize(0))
    ));
}

#[test]
fn unix_destination_gets_the_exact_bytes_without_hostname() {
    let dir = temp_dir("writer-unix");
    let rx = UnixReceiver::bind(dir.path().join("log"));
    let cfg = test_config(Destination::Unix(rx.path.clone()));
    let (format, seen) = capturing(id_format());
    let (w, _) = start(&cfg, format);
    submit_all(&w, 0..10);
    let got = rx.recv_n(10, LONG);
    assert_eq!(got, *seen.lock());
    let pid = std::process::id();
    // daemon.info = 3 * 8 + 6; no HOSTNAME on a local socket
    assert_eq!(got[7], format!("<30>- masqlog[{pid}]: id=7").as_bytes());
    let s = w.stop(LONG);
    // Ten records in at least one batch, at most one each.
    assert!((1..=10).contains(&s.batches), "{s:?}");
    assert_eq!(
        s,
        SinkStats {
            waiting: 0,
            written: 10,
            failed: 0,
            dropped: 0,
            spooled: 0,
            events_lost: 0,
            batches: s.batches,
            unacked: 0,
            timed_out: 0,
            store: None,
        }
    );
}

fn udp_destination(bind: &str, hostname: Option<&str>) -> Vec<u8> {
    let rx = UdpSocket::bind(bind).unwrap();
    rx.set_read_timeout(Some(LONG)).unwrap();
    let cfg = Config {
        facility: 21,
        severity: 5,
        hostname: hostname.map(str::to_string),
        ..test_config(Destination::Udp(rx.local_addr().unwrap()))
    };
    let (format, seen) = capturing(id_format());
    let (w, _) = start(&cfg, format);
    submit_all(&w, 0..3);
    let mut buf = [0u8; 512];
    let mut got = Vec::new();
    for _ in 0..3 {
        let n = rx.recv(&mut buf).unwrap();
        got.push(buf[..n].to_vec());
    }
    assert_eq!(got, *seen.lock());
    assert_eq!(w.stop(LONG).written, 3);
    got.swap_remove(0)
}

#[test]
fn udp_ipv4_destination_gets_the_exact_bytes_with_hostname() {
    let first = udp_destination("127.0.0.1:0", Some("gw1"));
    let pid = std::process::id();
    // local5.notice = 21 * 8 + 5
    assert_eq!(first, format!("<173>gw1 masqlog[{pid}]: id=0").as_bytes());
}

#[test]
fn udp_ipv6_destination_uses_the_system_hostname_by_default() {
    let first = udp_destination("[::1]:0", None);
    let host = batch::system_hostname();
    let pid = std::process::id();
    assert_eq!(
        first,
        format!("<173>{host} masqlog[{pid}]: id=0").as_bytes()
    );
}

#[test]
fn tcp_destination_gets_octet_counted_frames() {
    let r = TcpReceiver::bind("127.0.0.1:0".parse().unwrap());
    let cfg = test_config(Destination::Tcp(r.addr));
    let (format, seen) = capturing(id_format());
    let (w, _) = start(&cfg, format);
    submit_all(&w, 0..200);
    let mut got = Vec::new();
    assert!(wait_until(LONG, || {
        got.extend(r.frames());
        got.len() >= 200
    }));
    assert_eq!(got, *seen.lock());
    assert_eq!(ids(&got), (0..200).collect::<Vec<_>>());
    assert!(got[0].starts_with(b"<30>gw1 masqlog["), "{:?}", got[0]);
    let s = w.stop(LONG);
    assert_eq!((s.written, s.failed, s.dropped), (200, 0, 0));
}

/// The destination is down when the writer starts and comes up later:
/// every record arrives exactly once, in order; one notice each for down
/// and up however many retries failed.
fn down_then_up(dest: Destination, bring_up: impl FnOnce() -> Box<dyn FnMut() -> Vec<Vec<u8>>>) {
    let cfg = Config {
        retry_interval: Duration::from_millis(5),
        ..test_config(dest.clone())
    };
    let (w, waker) = start(&cfg, id_format());
    submit_all(&w, 0..20);
    assert!(wait_until(LONG, || w.stats().failed >= 10));
    let mut recv = bring_up();
    // Read while the backlog drains: a Unix receiver's queue is short.
    let mut got = Vec::new();
    assert!(wait_until(LONG, || {
        got.extend(recv());
        got.len() >= 20 && w.stats().waiting == 0
    }));
    submit_all(&w, 20..25);
    assert!(wait_until(LONG, || {
        got.extend(recv());
        got.len() >= 25
    }));
    std::thread::sleep(Duration::from_millis(50));
    got.extend(recv());
    assert_eq!(ids(&got), (0..25).collect::<Vec<_>>());
    let s = w.stats();
    assert_eq!(s.written, 25);
    assert!(s.failed >= 10, "{s:?}");
    assert_adds_up(s, 25);
    let notices = w.take_notices();
    assert_eq!(notices.len(), 2, "{notices:?}");
    assert_eq!(
        count(&notices, Level::Error, "unreachable"),
        1,
        "{notices:?}"
    );
    assert!(
        notices[0]
            .message
            .starts_with(&format!("destination {dest} unreachable: "))
    );
    assert!(
        notices[0]
            .message
            .ends_with("records waiting, retrying every 5 ms")
    );
    assert_eq!(
        count(&notices, Level::Notice, "is back after"),
        1,
        "{notices:?}"
    );
    assert!(
        notices[1]
            .message
            .contains(&format!("; {} failed attempts", s.failed))
    );
    assert!(waker.count() >= 2);
    assert_eq!(w.stop(LONG).dropped, 0);
}

#[test]
fn unix_destination_down_at_start_then_up_loses_nothing() {
    let dir = temp_dir("writer-unix-down");
    let path = dir.path().join("log");
    down_then_up(Destination::Unix(path.clone()), move || {
        let rx = UnixReceiver::bind(path);
        Box::new(move || rx.recv_n(usize::MAX, Duration::from_millis(20)))
    });
}

#[test]
fn tcp_destination_down_at_start_then_up_loses_nothing() {
    let addr = free_tcp_addr();
    down_then_up(Destination::Tcp(addr), move || {
        let r = TcpReceiver::bind(addr);
        Box::new(move || r.frames())
    });
}

#[test]
fn tcp_receiver_killed_mid_stream_and_restarted() {
    let addr = free_tcp_addr();
    let mut r1 = TcpReceiver::dying_after(addr, 50);
    let cfg = Config {
        queue_size: 4096,
        ..test_config(Destination::Tcp(addr))
    };
    let (w, _) = start(&cfg, id_format());
    submit_all(&w, 0..500);
    // The receiver dies after 50 frames with data unread (RST).
    r1.join();
    let first = ids(&r1.frames());
    assert_eq!(first, (0..50).collect::<Vec<_>>());
    // While it is down records queue up and sends fail.
    submit_all(&w, 500..520);
    assert!(wait_until(LONG, || w.stats().failed > 0));
    let r2 = TcpReceiver::bind(addr);
    submit_all(&w, 520..600);
    assert!(wait_until(LONG, || w.stats().waiting == 0));
    let mut second = Vec::new();
    assert!(wait_until(LONG, || {
        second.extend(ids(&r2.frames()));
        second.last() == Some(&599)
    }));
    // In order, no duplicates, nothing sent after the restart missing.
    assert!(second.windows(2).all(|p| p[0] < p[1]), "{second:?}");
    for id in 500..600 {
        assert!(second.contains(&id), "record {id} missing: {second:?}");
    }
    let s = w.stats();
    assert_eq!(s.dropped, 0);
    assert_eq!(s.written, 600, "{s:?}");
    assert_adds_up(s, 600);
    // What the kernel had accepted for the dead connection is gone without
    // an error (the TCP caveat): not asserted, only shown.
    let lost = (50..500).filter(|id| !second.contains(id)).count();
    eprintln!("records lost with the dead connection: {lost} of 450");
    let notices = w.take_notices();
    assert_eq!(
        count(&notices, Level::Error, "unreachable"),
        1,
        "{notices:?}"
    );
    assert_eq!(count(&notices, Level::Notice, "is back"), 1, "{notices:?}");
    assert_adds_up(w.stop(LONG), 600);
}

#[test]
fn full_queue_refuses_without_blocking() {
    let dir = temp_dir("writer-full");
    let cfg = Config {
        queue_size: 64,
        retry_interval: Duration::from_secs(1),
        ..test_config(Destination::Unix(dir.path().join("nobody")))
    };
    let (w, _) = start(&cfg, id_format());
    let t0 = Instant::now();
    let accepted = (0..10_000).filter(|&id| w.submit(record(id))).count() as u64;
    let elapsed = t0.elapsed();
    assert!(elapsed < Duration::from_secs(1), "{elapsed:?}");
    // 64 in the queue, plus the batch the thread may already hold.
    let most = 64 + super::batch::BATCH as u64;
    assert!((64..=most).contains(&accepted), "{accepted}");
    let s = w.stats();
    assert_eq!(s.dropped, 10_000 - accepted);
    assert_eq!(s.written, 0);
    assert_eq!(s.waiting, accepted);
    assert_adds_up(s, 10_000);
}

#[test]
fn stop_with_a_dead_destination_is_bounded_and_counts_leftovers() {
    let dir = temp_dir("writer-stop-dead");
    let cfg = Config {
        retry_interval: Duration::from_millis(50),
        ..test_config(Destination::Unix(dir.path().join("nobody")))
    };
    let (w, _) = start(&cfg, id_format());
    submit_all(&w, 0..100);
    let t0 = Instant::now();
    let s = w.stop(Duration::from_millis(300));
    let elapsed = t0.elapsed();
    assert!(elapsed >= Duration::from_millis(290), "{elapsed:?}");
    assert!(elapsed < Duration::from_millis(450), "{elapsed:?}");
    assert_eq!((s.waiting, s.written, s.dropped), (0, 0, 100), "{s:?}");
    assert!(s.failed > 0);
}

#[test]
fn stop_with_a_stuck_tcp_receiver_is_bounded() {
    // Accepts (backlog) but never reads: large messages fill the buffers
    // and a write blocks.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let cfg = Config {
        send_timeout: Duration::from_secs(5),
        ..test_config(Destination::Tcp(listener.local_addr().unwrap()))
    };
    let big: FormatFn = Box::new(|_, _, rec: &FlowRecord, out: &mut Vec<u8>| {
        out.resize(256 * 1024, b'x');
        out.extend_from_slice(format!("id={}", rec.id.unwrap_or(0)).as_bytes());
        0
    });
    let (w, _) = start(&cfg, big);
    submit_all(&w, 0..200);
    assert!(wait_until(LONG, || w.stats().written > 0));
    std::thread::sleep(Duration::from_millis(100));
    let t0 = Instant::now();
    let s = w.stop(Duration::from_millis(300));
    let elapsed = t0.elapsed();
    assert!(elapsed < Duration::from_millis(450), "{elapsed:?}");
    assert!(s.dropped > 0, "{s:?}");
    assert_eq!(s.waiting, 0);
    assert_adds_up(s, 200);
    drop(listener);
}

#[test]
fn stop_sends_what_is_queued() {
    let r = TcpReceiver::bind("127.0.0.1:0".parse().unwrap());
    let cfg = Config {
        queue_size: 2000,
        ..test_config(Destination::Tcp(r.addr))
    };
    let (w, _) = start(&cfg, id_format());
    submit_all(&w, 0..2000);
    let s = w.stop(LONG);
    assert_eq!((s.written, s.dropped, s.waiting), (2000, 0, 0));
    let mut got = Vec::new();
    assert!(wait_until(LONG, || {
        got.extend(r.frames());
        got.len() >= 2000
    }));
    assert_eq!(ids(&got), (0..2000).collect::<Vec<_>>());
}

#[test]
fn dropping_the_writer_without_stop_does_not_hang() {
    let dir = temp_dir("writer-drop");
    let cfg = Config {
        retry_interval: Duration::from_secs(60),
        ..test_config(Destination::Unix(dir.path().join("nobody")))
    };
    let (w, _) = start(&cfg, id_format());
    submit_all(&w, 0..10);
    let t0 = Instant::now();
    drop(w);
    assert!(t0.elapsed() < Duration::from_millis(500));
}

#[test]
fn a_panicking_format_costs_only_that_record() {
    let dir = temp_dir("writer-panic");
    let rx = UnixReceiver::bind(dir.path().join("log"));
    let cfg = test_config(Destination::Unix(rx.path.clone()));
    let mut inner = id_format();
    let format: FormatFn = Box::new(
        move |kind, hdr: &Header<'_>, rec: &FlowRecord, out: &mut Vec<u8>| {
            if rec.id == Some(3) {
                out.extend_from_slice(b"half a line");
                panic!("cannot format record 3");
            }
            inner(kind, hdr, rec, out)
        },
    );
    let (w, _) = start(&cfg, format);
    submit_all(&w, 0..6);
    let got = rx.recv_n(5, LONG);
    assert_eq!(ids(&got), [0, 1, 2, 4, 5]);
    assert!(wait_until(LONG, || w.stats().waiting == 0));
    let notices = w.take_notices();
    assert_eq!(notices.len(), 1, "{notices:?}");
    assert_eq!(notices[0].level, Level::Error);
    assert_eq!(
        notices[0].message,
        "flow record (conntrack id 3) dropped: formatting it panicked: cannot format record 3"
    );
    let s = w.stop(LONG);
    assert_eq!((s.written, s.dropped, s.waiting), (5, 1, 0));
}

#[test]
fn statistics_are_left_as_info_notices_every_interval() {
    let dir = temp_dir("writer-stats");
    let rx = UnixReceiver::bind(dir.path().join("log"));
    let cfg = Config {
        stats_interval: Some(Duration::from_millis(50)),
        ..test_config(Destination::Unix(rx.path.clone()))
    };
    let (w, waker) = start(&cfg, id_format());
    submit_all(&w, 0..3);
    assert_eq!(rx.recv_n(3, LONG).len(), 3);
    let mut notices = Vec::new();
    assert!(wait_until(LONG, || {
        notices.extend(w.take_notices());
        notices
            .iter()
            .filter(|n| {
                n.message
                    .starts_with("stats: waiting=0 written=3 failed=0 dropped=0 spooled=0 events_lost=0 batches=")
            })
            .count()
            >= 2
    }));
    assert!(
        notices.iter().all(|n| n.level == Level::Info),
        "{notices:?}"
    );
    assert!(waker.count() >= 2);
    w.stop(LONG);
}

#[test]
fn a_long_outage_does_not_repeat_its_notice() {
    let dir = temp_dir("writer-quiet");
    let cfg = Config {
        retry_interval: Duration::from_millis(10),
        ..test_config(Destination::Unix(dir.path().join("nobody")))
    };
    let (w, _) = start(&cfg, id_format());
    submit_all(&w, 0..5);
    assert!(wait_until(LONG, || w.stats().failed >= 20));
    let notices = w.take_notices();
    assert_eq!(notices.len(), 1, "{notices:?}");
    assert!(notices[0].message.contains("unreachable"));
    assert!(
        notices[0].message.contains("5 records waiting"),
        "{notices:?}"
    );
    let s = w.stop(Duration::ZERO);
    assert_eq!(s.dropped, 5);
}

// With the real formatter (`masqlog_core::format::write_syslog`), read back by the
// format's own parser.

fn parsed_ids(msgs: &[Vec<u8>]) -> Vec<u32> {
    msgs.iter()
        .map(|m| {
            let line = std::str::from_utf8(m).unwrap();
            let parsed =
                masqlog_core::format::parse_line(line).unwrap_or_else(|e| panic!("{e}: {line}"));
            parsed.record.id.unwrap()
        })
        .collect()
}

#[test]
fn real_format_over_unix_arrives_byte_for_byte() {
    let dir = temp_dir("writer-real-unix");
    let rx = UnixReceiver::bind(dir.path().join("log"));
    for format in [Format::Text, Format::Rfc5424, Format::Json] {
        let cfg = Config {
            format,
            ..test_config(Destination::Unix(rx.path.clone()))
        };
        let (f, seen) = capturing(Box::new(masqlog_core::format::write_syslog));
        let (w, _) = start(&cfg, f);
        submit_all(&w, 0..3);
        let got = rx.recv_n(3, LONG);
        let s = w.stop(LONG);
        assert_eq!((s.written, s.dropped), (3, 0), "{format:?}: {s:?}");
        assert_eq!(got, *seen.lock(), "{format:?}");
        let line = String::from_utf8_lossy(&got[0]);
        assert!(line.starts_with("<30>"), "{format:?}: {line}");
        assert!(
            !line.contains("gw1"),
            "{format:?}: no HOSTNAME locally: {line}"
        );
        assert_eq!(parsed_ids(&got), [0, 1, 2], "{format:?}");
    }
}

#[test]
fn real_format_over_tcp_is_framed_and_carries_the_hostname() {
    let r = TcpReceiver::bind(SocketAddr::from(([127, 0, 0, 1], 0)));
    let cfg = Config {
        format: Format::Rfc5424,
        ..test_config(Destination::Tcp(r.addr))
    };
    let (f, seen) = capturing(Box::new(masqlog_core::format::write_syslog));
    let (w, _) = start(&cfg, f);
    submit_all(&w, 0..5);
    let mut got = Vec::new();
    assert!(wait_until(LONG, || {
        got.extend(r.frames());
        got.len() >= 5
    }));
    assert_eq!(got, *seen.lock());
    let line = String::from_utf8_lossy(&got[0]);
    assert!(line.starts_with("<30>1 "), "{line}");
    assert!(line.contains(" gw1 masqlog "), "{line}");
    assert_eq!(parsed_ids(&got), [0, 1, 2, 3, 4]);
    assert_eq!(w.stop(LONG).written, 5);
}

fn spool_config(
    dir: &std::path::Path,
    max_bytes: u64,
) -> Option<masqlog_core::config::SpoolConfig> {
    Some(masqlog_core::config::SpoolConfig {
        dir: dir.to_path_buf(),
        max_bytes,
        sync: Duration::ZERO,
    })
}

#[test]
fn a_dead_destination_fills_the_spool_not_the_queue_and_the_replay_keeps_order() {
    let dir = temp_dir("writer-spool-order");
    let path = dir.path().join("log");
    let cfg = Config {
        queue_size: 64,
        spool: spool_config(&dir.path().join("spool"), 1 << 20),
        ..test_config(Destination::Unix(path.clone()))
    };
    let (w, _) = start(&cfg, id_format());
    // Far more than the queue holds, at a pace the writer follows.
    for chunk in 0..20u32 {
        submit_all(&w, chunk * 50..(chunk + 1) * 50);
        assert!(wait_until(LONG, || w.stats().waiting < 32));
    }
    assert!(
        wait_until(LONG, || w.stats().spooled == 1000),
        "{:?}",
        w.stats()
    );
    let s = w.stats();
    assert_eq!((s.written, s.dropped, s.waiting), (0, 0, 0), "{s:?}");
    let rx = UnixReceiver::bind(path);
    submit_all(&w, 1000..1010);
    let got = rx.recv_n(1010, LONG);
    assert_eq!(ids(&got), (0..1010).collect::<Vec<_>>());
    let s = w.stop(LONG);
    assert_eq!((s.written, s.dropped, s.spooled), (1010, 0, 0), "{s:?}");
}

#[test]
fn spooled_records_survive_a_stop_and_go_out_first_after_a_restart() {
    let dir = temp_dir("writer-spool-restart");
    let path = dir.path().join("log");
    let cfg = Config {
        spool: spool_config(&dir.path().join("spool"), 1 << 20),
        ..test_config(Destination::Unix(path.clone()))
    };
    let (w, _) = start(&cfg, id_format());
    submit_all(&w, 0..40);
    assert!(wait_until(LONG, || w.stats().failed > 0));
    let s = w.stop(Duration::from_millis(50));
    assert_eq!(
        (s.written, s.dropped, s.spooled, s.waiting),
        (0, 0, 40, 0),
        "{s:?}"
    );

    let rx = UnixReceiver::bind(path);
    let (w, _) = start(&cfg, id_format());
    let notices = w.take_notices();
    assert_eq!(
        count(&notices, Level::Notice, "holds 40 records from before"),
        1,
        "{notices:?}"
    );
    submit_all(&w, 40..45);
    let got = rx.recv_n(45, LONG);
    assert_eq!(ids(&got), (0..45).collect::<Vec<_>>());
    let s = w.stop(LONG);
    assert_eq!((s.written, s.dropped, s.spooled), (45, 0, 0), "{s:?}");
}

#[test]
fn a_full_spool_leaves_records_in_the_queue_and_counts_what_overflows() {
    let dir = temp_dir("writer-spool-full");
    let cfg = Config {
        queue_size: 64,
        // room for a few dozen short messages
        spool: spool_config(&dir.path().join("spool"), 2048),
        ..test_config(Destination::Unix(dir.path().join("nobody")))
    };
    let (w, _) = start(&cfg, id_format());
    let mut refused = 0;
    for id in 0..500 {
        if !w.submit(record(id)) {
            refused += 1;
        }
        if id % 16 == 0 {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    assert!(
        wait_until(LONG, || w.stats().spooled > 0),
        "{:?}",
        w.stats()
    );
    let s = w.stats();
    assert!(refused > 0, "{s:?}");
    // Refused at the door, and (on a busy machine, when the failed batch
    // was larger than the room left) records of the batch that the full
    // spool could not take: each counted once.
    assert!(s.dropped >= refused, "{s:?}");
    assert!(s.spooled < 200, "{s:?}");
    assert_eq!(s.written + s.dropped + s.waiting + s.spooled, 500, "{s:?}");
    let s = w.stop(Duration::from_millis(20));
    // At stop the queue no longer fits: what the spool refuses is counted.
    assert_eq!(s.written + s.dropped + s.waiting + s.spooled, 500, "{s:?}");
    assert_eq!(s.waiting, 0, "{s:?}");
}

#[test]
fn on_a_full_disk_each_lost_record_is_counted_once_and_spooled_is_what_the_disk_holds() {
    let Some(disk) = crate::sink::testutil::TinyDisk::mount("writer-enospc", 64) else {
        eprintln!("SKIP: cannot mount a tmpfs (not root)");
        return;
    };
    let spool = disk.path().join("spool");
    let cfg = Config {
        queue_size: 64,
        // The size bound is far away: the disk is what fills.
        spool: spool_config(&spool, 16 << 20),
        ..test_config(Destination::Unix(disk.path().join("nobody")))
    };
    let (w, _) = start(&cfg, id_format());
    let total = 6000;
    for id in 0..total {
        w.submit(record(id));
        if id % 64 == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    let s = w.stop(Duration::from_millis(20));
    assert!(s.dropped > 0, "a 64 KiB disk took 6000 records: {s:?}");
    assert_eq!(s.waiting, 0, "{s:?}");
    assert_eq!(s.written + s.dropped + s.spooled, u64::from(total), "{s:?}");
    let on_disk = masqlog_core::spool_files::survey(&spool).unwrap().unwrap();
    assert_eq!(s.spooled, on_disk.records, "{s:?} {on_disk:?}");
}

#[test]
fn a_slow_destination_gets_the_backlog_from_the_spool_and_nothing_is_dropped() {
    let dir = temp_dir("writer-spool-slow");
    let rx = UnixReceiver::bind(dir.path().join("log"));
    let cfg = Config {
        queue_size: 1024,
        send_timeout: Duration::from_secs(5),
        spool: spool_config(&dir.path().join("spool"), 16 << 20),
        ..test_config(Destination::Unix(rx.path.clone()))
    };
    let (w, _) = start(&cfg, id_format());
    // A reader that takes one datagram every 100 us while the records are
    // submitted: far slower than the submits below, yet never so slow that
    // a send times out. Then it reads what is left at its own speed (on a
    // busy machine each of its sleeps lasts longer than asked).
    let submitting = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let slow = Arc::clone(&submitting);
    let reader = std::thread::spawn(move || {
        let mut got = Vec::new();
        let mut buf = vec![0u8; 4096];
        let end = Instant::now() + 12 * LONG;
        while got.len() < 12_000 && Instant::now() < end {
            if let Ok(n) = rx.sock.recv(&mut buf) {
                got.push(buf[..n].to_vec());
                if slow.load(SeqCst) {
                    std::thread::sleep(Duration::from_micros(100));
                }
            }
        }
        got
    });
    let mut refused = 0;
    for id in 0..12_000 {
        if !w.submit(record(id)) {
            refused += 1;
        }
        // about 30000 a second: three times what the reader takes
        if id % 16 == 0 {
            std::thread::sleep(Duration::from_micros(500));
        }
    }
    submitting.store(false, SeqCst);
    let got = reader.join().unwrap();
    let s = w.stop(LONG);
    assert_eq!(refused, 0, "{s:?}");
    assert!(
        ids(&got).into_iter().eq(0..12_000),
        "{} records back, {s:?}",
        got.len()
    );
    assert_eq!((s.written, s.dropped, s.spooled), (12_000, 0, 0), "{s:?}");
}

/// A formatter that holds the writer thread until `release` is set: a
/// writer that gets no CPU.
fn stalled(release: Arc<std::sync::atomic::AtomicBool>) -> FormatFn {
    let mut inner = id_format();
    Box::new(
        move |kind, hdr: &Header<'_>, rec: &FlowRecord, out: &mut Vec<u8>| {
            while !release.load(SeqCst) {
                std::thread::sleep(Duration::from_millis(1));
            }
            inner(kind, hdr, rec, out)
        },
    )
}

#[test]
fn a_stalled_writer_sends_records_to_the_disk_lane_not_to_the_floor() {
    let dir = temp_dir("writer-stalled");
    let rx = UnixReceiver::bind(dir.path().join("log"));
    let cfg = Config {
        queue_size: 65_536,
        spool: spool_config(&dir.path().join("spool"), 16 << 20),
        ..test_config(Destination::Unix(rx.path.clone()))
    };
    let release = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (w, _) = start(&cfg, stalled(Arc::clone(&release)));
    // Far more than the window the queue keeps in memory, while the
    // thread is held: none is refused, and the memory holds at most the
    // window.
    submit_all(&w, 0..20_000);
    let lane = std::fs::metadata(dir.path().join("spool").join(lane::FILE))
        .unwrap()
        .len();
    assert!(lane > 15_000 * 40, "lane holds {lane} bytes");
    assert_eq!(w.stats().waiting, 20_000);
    release.store(true, SeqCst);
    let got = rx.recv_n(20_000, LONG);
    assert_eq!(ids(&got), (0..20_000).collect::<Vec<_>>());
    let s = w.stop(LONG);
    assert_eq!((s.written, s.dropped, s.waiting), (20_000, 0, 0), "{s:?}");
    // Read to its end, the lane shrank back.
    let lane = std::fs::metadata(dir.path().join("spool").join(lane::FILE))
        .unwrap()
        .len();
    assert!(lane <= 64, "lane holds {lane} bytes");
}

#[test]
fn the_store_alone_keeps_what_the_writer_is_behind_on_in_the_disk_lane() {
    let dir = temp_dir("store-alone-stalled");
    let store = dir.path().join("store");
    let cfg = Config {
        queue_size: 64,
        spool: spool_config(&dir.path().join("spool"), 16 << 20),
        store: Some(masqlog_core::store::StoreConfig {
            dir: store.clone(),
            roll: Duration::from_secs(3600),
            roll_bytes: 1 << 30,
            keep: Duration::from_secs(86_400),
            max_bytes: 0,
        }),
        ..test_config(Destination::None)
    };
    let release = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (w, _) = start(&cfg, stalled(Arc::clone(&release)));
    // A burst of many queues' worth while the writer is held: none is
    // refused (the lane takes them) ...
    submit_all(&w, 0..5000);
    assert_eq!(w.stats().dropped, 0);
    release.store(true, SeqCst);
    let s = w.stop(LONG);
    // ... and every one is stored, in order; nothing was spooled.
    assert_eq!((s.dropped, s.waiting, s.spooled), (0, 0, 0), "{s:?}");
    let st = s.store.expect("store stats");
    assert_eq!((st.written, st.failed), (5000, 0), "{s:?}");
    let mut stored = Vec::new();
    for seg in masqlog_core::store::list(&store).unwrap() {
        stored.extend(std::fs::read(seg.data(&store)).unwrap());
    }
    let got: Vec<u32> = stored
        .split(|&c| c == b'\n')
        .filter(|l| !l.is_empty())
        .map(id_of)
        .collect();
    assert_eq!(got, (0..5000).collect::<Vec<_>>());
}

#[test]
fn records_a_killed_run_left_in_the_lane_go_out_first_at_the_next_start() {
    let dir = temp_dir("writer-lane-restart");
    let path = dir.path().join("log");
    let held = Config {
        spool: spool_config(&dir.path().join("spool"), 16 << 20),
        ..test_config(Destination::Unix(dir.path().join("nobody")))
    };
    let release = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (w, _) = start(&held, stalled(Arc::clone(&release)));
    submit_all(&w, 0..5000);
    // What a kill leaves on disk: a copy of the spool directory while the
    // thread is held and nothing was closed.
    let copy = dir.path().join("after-kill");
    std::fs::create_dir(&copy).unwrap();
    std::fs::set_permissions(&copy, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    for entry in std::fs::read_dir(dir.path().join("spool")).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() {
            std::fs::copy(entry.path(), copy.join(entry.file_name())).unwrap();
        }
    }
    release.store(true, SeqCst);
    w.stop(Duration::ZERO);

    let rx = UnixReceiver::bind(path.clone());
    let cfg = Config {
        spool: spool_config(&copy, 16 << 20),
        ..test_config(Destination::Unix(path))
    };
    let (w, _) = start(&cfg, id_format());
    let notices = w.take_notices();
    assert_eq!(
        count(&notices, Level::Error, "did not stop cleanly"),
        1,
        "{notices:?}"
    );
    submit_all(&w, 5000..5010);
    // What was in memory (the queue's window, and the record the held
    // thread may have taken) died with the run; everything after it comes
    // back, in order, before the new ones.
    let rest = rx.recv_n(5010 - lane::WINDOW - 1, LONG);
    let got = ids(&rest);
    let first = got[0];
    assert!(
        first as usize <= lane::WINDOW + 1,
        "first record back: {first}"
    );
    let more = rx.recv_n(5010 - first as usize - got.len(), LONG);
    let got: Vec<u32> = got.into_iter().chain(ids(&more)).collect();
    assert!(
        got.iter().copied().eq(first..5010),
        "{} records, from {first}",
        got.len()
    );
    let s = w.stop(LONG);
    assert_eq!(
        (s.written, s.dropped, s.waiting),
        (5010 - u64::from(first), 0, 0),
        "{s:?}"
    );
}

/// With `flush_delay`, the thread holds a started batch that long for more
/// records, instead of sending (and waking) once per record.
#[test]
fn records_queued_within_the_flush_delay_go_out_together() {
    let dir = temp_dir("writer-gather");
    let rx = UnixReceiver::bind(dir.path().join("log"));
    let cfg = Config {
        flush_delay: Duration::from_secs(3),
        ..test_config(Destination::Unix(rx.path.clone()))
    };
    let (w, _) = start(&cfg, id_format());
    submit_all(&w, 0..1);
    assert!(wait_until(LONG, || w.gathering.on.load(SeqCst)));
    // Held: nothing is sent while the delay runs.
    assert!(rx.recv_n(1, Duration::from_millis(300)).is_empty());
    submit_all(&w, 1..50);
    let got = rx.recv_n(50, LONG);
    assert_eq!(ids(&got), (0..50).collect::<Vec<_>>());
    let s = w.stop(LONG);
    assert_eq!((s.written, s.dropped), (50, 0));
}

/// A queue that passes its high-water mark while the thread gathers cuts
/// the delay short: a flood is never held back by `flush_delay`.
#[test]
fn a_queue_past_its_high_water_mark_ends_the_flush_delay() {
    let dir = temp_dir("writer-gather-flood");
    let rx = UnixReceiver::bind(dir.path().join("log"));
    let cfg = Config {
        flush_delay: Duration::from_secs(600),
        ..test_config(Destination::Unix(rx.path.clone()))
    };
    let (w, _) = start(&cfg, id_format());
    submit_all(&w, 0..1);
    assert!(wait_until(LONG, || w.gathering.on.load(SeqCst)));
    let high = w.gathering.high_water;
    let n = u32::try_from(high).unwrap() + 300;
    submit_all(&w, 1..n);
    // A whole batch arrives long before the 600 s delay would end.
    let got = rx.recv_n(batch::BATCH, LONG);
    assert_eq!(got.len(), batch::BATCH);
    assert_eq!(ids(&got), (0..256).collect::<Vec<_>>());
    // Stopping flushes the rest at once (read meanwhile: a Unix
    // receiver's queue is short).
    let stopping = std::thread::spawn(move || w.stop(LONG));
    let mut all = got;
    all.extend(rx.recv_n(n as usize - all.len(), LONG));
    let s = stopping.join().unwrap();
    assert_eq!(ids(&all), (0..n).collect::<Vec<_>>());
    assert_eq!((s.written, s.dropped), (u64::from(n), 0));
}

/// A PostgreSQL server that accepts the connection and never answers (a
/// hung or black-holed database): each batch ends within the send timeout,
/// is counted as timed out, and the records wait in the spool; none is
/// lost. Without the client's own bound the writer would wait forever.
#[cfg(feature = "postgresql")]
#[test]
fn a_database_that_never_answers_ends_each_batch_in_bounded_time() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    // Accepts, keeps the connections open, reads nothing, says nothing.
    let held: Arc<Mutex<Vec<std::net::TcpStream>>> = Arc::default();
    let keep = Arc::clone(&held);
    std::thread::spawn(move || {
        for s in listener.incoming().flatten() {
            keep.lock().push(s);
        }
    });
    let dir = temp_dir("writer-pg-hung");
    std::fs::write(dir.path().join("pw"), "secret\n").unwrap();
    std::fs::set_permissions(
        dir.path().join("pw"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let url = format!(
        "postgresql://gw@127.0.0.1:{port}/masqlog?password_file={}",
        dir.path().join("pw").display()
    );
    let target = masqlog_core::config::PgTarget::parse(&url).unwrap();

    // The transport alone: the connect never completes; the batch fails
    // with a timeout instead of waiting.
    let mut pg = pg::Postgres::new(target.clone());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let msg = b"<30>Nov 21 12:37:42 gw1 masqlog[1]: hello".to_vec();
        let _ = tx.send(pg.deliver(&[msg], Duration::from_millis(500)));
    });
    let r = rx
        .recv_timeout(LONG)
        .expect("the batch still waits on a server that never answers");
    let e = r.unwrap_err();
    assert!(e.contains("did not answer within"), "{e}");
    assert!(!held.lock().is_empty(), "the server was never reached");

    // Through the writer: counted, spooled, nothing dropped.
    let cfg = Config {
        send_timeout: Duration::from_millis(300),
        spool: spool_config(&dir.path().join("spool"), 1 << 20),
        ..test_config(Destination::Postgres(target))
    };
    // Messages with a header a row can be made of.
    let format: FormatFn = Box::new(|_, _: &Header<'_>, rec: &FlowRecord, out: &mut Vec<u8>| {
        out.extend_from_slice(
            format!(
                "<30>Nov 21 12:37:42 gw1 masqlog[1]: id={}",
                rec.id.unwrap_or(0)
            )
            .as_bytes(),
        );
        0
    });
    let (w, _) = start(&cfg, format);
    submit_all(&w, 0..20);
    assert!(
        wait_until(LONG, || {
            let s = w.stats();
            s.timed_out >= 2 && s.spooled == 20
        }),
        "{:?}",
        w.stats()
    );
    let s = w.stats();
    assert_eq!((s.dropped, s.written), (0, 0), "{s:?}");
    assert!(s.to_string().contains(" timed_out="), "{s}");
    assert!(
        w.take_notices()
            .iter()
            .any(|n| n.message.contains("did not answer within")),
        "no notice names the timeout"
    );
    drop(w);
}
