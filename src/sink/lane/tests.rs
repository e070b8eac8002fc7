//! Tests of the disk lane: order across episodes and threads, what a
//! restart takes up, its bound, and a symlink in its place.

use std::os::unix::fs::symlink;
use std::time::{Duration, Instant};

use super::*;
use crate::sink::spooldir::SpoolDir;
use crate::sink::testutil::{record, temp_dir};

/// The lane in spool directory `dir`, opened as the spool opens it.
fn open(dir: &std::path::Path, max_bytes: u64) -> io::Result<(LaneWriter, LaneReader, Found)> {
    let sd = SpoolDir::open(dir).map_err(|e| io::Error::other(format!("{e:?}")))?;
    super::open(&sd, max_bytes)
}

fn ids(reader: &mut LaneReader) -> Vec<u32> {
    std::iter::from_fn(|| reader.take())
        .map(|r| r.expect("no damage").id.unwrap())
        .collect()
}

#[test]
fn records_come_back_in_order_across_episodes() {
    let dir = temp_dir("lane-order");
    let (mut w, mut r, found) = open(dir.path(), 1 << 20).unwrap();
    assert_eq!(found, Found::default());
    assert!(!w.pending());
    let mut want = Vec::new();
    let mut got = Vec::new();
    let mut id = 0;
    for round in 0..50 {
        for _ in 0..round % 7 + 1 {
            w.push(&record(id)).unwrap();
            want.push(id);
            id += 1;
        }
        assert!(w.pending());
        // Sometimes read all (the next push starts a new episode at the
        // top), sometimes only part (the next push appends).
        if round % 3 == 0 {
            got.extend(ids(&mut r));
            assert!(!w.pending());
            assert_eq!(r.backlog(), 0);
        } else if let Some(rec) = r.take() {
            got.push(rec.unwrap().id.unwrap());
        }
    }
    got.extend(ids(&mut r));
    assert_eq!(got, want);
    // Episodes restart at the top: the file stays small.
    let size = std::fs::metadata(dir.path().join(FILE)).unwrap().len();
    assert!(size < 100 * 200, "{size}");
}

#[test]
fn a_reader_on_another_thread_gets_every_record_in_order() {
    let dir = temp_dir("lane-threads");
    let (mut w, mut r, _) = open(dir.path(), 64 << 20).unwrap();
    const N: u32 = 100_000;
    let reader = std::thread::spawn(move || {
        let mut got = Vec::with_capacity(N as usize);
        let end = Instant::now() + Duration::from_secs(120);
        while got.len() < N as usize && Instant::now() < end {
            match r.take() {
                Some(rec) => got.push(rec.unwrap().id.unwrap()),
                None => std::thread::yield_now(),
            }
        }
        got
    });
    for id in 0..N {
        w.push(&record(id)).unwrap();
        if id % 1000 == 0 {
            std::thread::yield_now();
        }
    }
    let got = reader.join().unwrap();
    assert_eq!(got.len(), N as usize);
    assert!(got.iter().copied().eq(0..N));
}

#[test]
fn a_killed_run_leaves_what_was_not_read_and_the_next_start_takes_it_up() {
    let dir = temp_dir("lane-kill");
    {
        let (mut w, mut r, _) = open(dir.path(), 1 << 20).unwrap();
        for id in 0..100 {
            w.push(&record(id)).unwrap();
        }
        for _ in 0..30 {
            r.take().unwrap().unwrap();
        }
        // Dropped without `close`: what a kill leaves.
    }
    let (mut w, mut r, found) = open(dir.path(), 1 << 20).unwrap();
    assert_eq!(
        found,
        Found {
            records: 70,
            unclean: true
        }
    );
    assert!(w.pending());
    // New records go behind the old ones.
    w.push(&record(100)).unwrap();
    assert_eq!(ids(&mut r), (30..101).collect::<Vec<_>>());
    r.close().unwrap();
    drop((w, r));
    let (_, _, found) = open(dir.path(), 1 << 20).unwrap();
    assert_eq!(found, Found::default());
    assert_eq!(
        std::fs::metadata(dir.path().join(FILE)).unwrap().len(),
        HEADER
    );
}

#[test]
fn a_killed_run_with_nothing_left_is_still_reported_as_unclean() {
    let dir = temp_dir("lane-unclean");
    drop(open(dir.path(), 1 << 20).unwrap());
    let (_, _, found) = open(dir.path(), 1 << 20).unwrap();
    assert_eq!(
        found,
        Found {
            records: 0,
            unclean: true
        }
    );
}

#[test]
fn a_torn_or_damaged_tail_is_not_taken_up() {
    let dir = temp_dir("lane-torn");
    {
        let (mut w, _r, _) = open(dir.path(), 1 << 20).unwrap();
        for id in 0..10 {
            w.push(&record(id)).unwrap();
        }
    }
    let path = dir.path().join(FILE);
    let mut bytes = std::fs::read(&path).unwrap();
    let whole = bytes.len();
    // The last frame cut short, then garbage.
    bytes.truncate(whole - 5);
    bytes.extend_from_slice(&[0xa5; 40]);
    std::fs::write(&path, &bytes).unwrap();
    let (_, mut r, found) = open(dir.path(), 1 << 20).unwrap();
    assert_eq!(found.records, 9);
    assert_eq!(ids(&mut r), (0..9).collect::<Vec<_>>());
}

#[test]
fn a_full_lane_refuses_and_keeps_what_it_has() {
    let dir = temp_dir("lane-full");
    let (mut w, mut r, _) = open(dir.path(), 16 << 10).unwrap();
    let mut n = 0;
    let err = loop {
        match w.push(&record(n)) {
            Ok(()) => n += 1,
            Err(e) => break e,
        }
    };
    assert!(matches!(err, LaneError::Full(_)), "{err}");
    assert!(n > 100, "{n}");
    assert_eq!(ids(&mut r), (0..n).collect::<Vec<_>>());
    // Read back: room again.
    w.push(&record(n)).unwrap();
}

#[test]
fn a_symlink_in_the_lanes_place_is_refused_and_its_target_untouched() {
    let dir = temp_dir("lane-link");
    let victim = dir.path().join("victim");
    std::fs::write(&victim, b"keep me").unwrap();
    symlink(&victim, dir.path().join(FILE)).unwrap();
    assert!(open(dir.path(), 1 << 20).is_err());
    assert_eq!(std::fs::read(&victim).unwrap(), b"keep me");
}

#[test]
fn the_lane_belongs_to_the_owner_of_the_spool_directory() {
    use std::os::unix::fs::MetadataExt;
    if running_as_root() {
        // The configured spool_dir belongs to ulogd's --uid user; the
        // instance's spool directory is made in it.
        let dir = temp_dir("lane-owner");
        std::os::unix::fs::chown(dir.path(), Some(65534), Some(65534)).unwrap();
        let spool = dir.path().join("masq1");
        drop(open(&spool, 1 << 20).unwrap());
        let m = std::fs::metadata(spool.join(FILE)).unwrap();
        assert_eq!((m.uid(), m.gid(), m.mode() & 0o777), (65534, 65534, 0o600));
    } else {
        println!("SKIP the_lane_belongs_to_the_owner_of_the_spool_directory: not root");
    }
}

/// Whether this process runs as root (read from /proc, without libc).
fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false)
}
