//! Lookups answered from an evidence store give the answers, evidence
//! lines and exit status of the same lines in a plain file.

use std::io::Write as _;
use std::path::Path;
use std::time::Duration;

use super::testutil::{Rng, Style, line, rec, t, temp_dir};
use super::*;
use crate::when;
use masqlog_core::config::Format;
use masqlog_core::record::{Event, Timestamp};
use masqlog_core::store::{self, StoreConfig, StoreWriter};

fn q(public: &str, at: &str) -> AbuseReport {
    let (public_ip, public_port) = query::parse_public(public).unwrap();
    AbuseReport {
        public_ip,
        public_port,
        at: when::parse_report_time(at, &Ok(Zone::utc())).unwrap(),
        remote: None,
        proto: None,
        slack: DEFAULT_SLACK_SECS,
        max_age: Some(DEFAULT_MAX_AGE_SECS),
    }
}

/// A report on one of the generated public endpoints (IPv4 on even k,
/// IPv6 on odd) at a time within the generated flows' hours.
fn random_report(rng: &mut Rng, k: usize) -> (String, String, AbuseReport) {
    let at = t("2026-11-21T10:00:00Z").secs + (rng.next_u64() % (4 * 3600 + 600)) as i64;
    let masq = if k.is_multiple_of(2) {
        "192.0.2.1"
    } else {
        "[2001:db8::1]"
    };
    let public = format!("{masq}:{}", 50000 + rng.next_u64() % 40);
    let when = masqlog_core::time::utc_string(Timestamp::new(at, 0), false);
    let query = q(&public, &when);
    (public, when, query)
}

fn run(q: &AbuseReport, input: &Path) -> (Scan, Verdict) {
    let s = scan(
        &[q],
        &[Input::Path(input.to_path_buf())],
        ScanOptions {
            stdin: None,
            progress: &mut NoProgress,
            scan_all: false,
            keys: &[],
        },
    );
    let v = decide(&s, q);
    (s, v)
}

/// Flows on a few public endpoints over `hours`, logged in order: many
/// short ones, some that last past a segment's end, some whose end line
/// was lost.
fn flows(format: Format, hours: i64, rng: &mut Rng) -> Vec<(i64, String)> {
    let t0 = t("2026-11-21T10:00:00Z").secs;
    let mut ev: Vec<(i64, String)> = Vec::new();
    let masqs = ["192.0.2.1", "[2001:db8::1]"];
    for i in 0..(hours * 400) as u32 {
        let s = t0 + (rng.next_u64() % (hours as u64 * 3600)) as i64;
        let dur = match rng.next_u64() % 10 {
            0 => 3600 + (rng.next_u64() % 7200) as i64,
            _ => 1 + (rng.next_u64() % 300) as i64,
        };
        let masq = format!("{}:{}", masqs[i as usize % 2], 50000 + rng.next_u64() % 40);
        let client = format!("10.0.0.{}:{}", 2 + rng.next_u64() % 50, 30000 + i % 20000);
        let st = rec(
            Event::Start,
            i,
            &client,
            &masq,
            "203.0.113.7:443",
            Some(Timestamp::new(s, 0)),
            None,
        );
        ev.push((s, line(format, Style::Raw, Timestamp::new(s, 0), &st)));
        if !rng.next_u64().is_multiple_of(50) {
            let en = rec(
                Event::End,
                i,
                &client,
                &masq,
                "203.0.113.7:443",
                Some(Timestamp::new(s, 0)),
                Some(Timestamp::new(s + dur, 0)),
            );
            ev.push((
                s + dur,
                line(format, Style::Raw, Timestamp::new(s + dur, 0), &en),
            ));
        }
    }
    ev.sort_by_key(|e| e.0);
    ev
}

/// The lines written once to a plain file and once through the store's
/// writer (hourly segments, all closed but the last).
fn write_both(dir: &Path, ev: &[(i64, String)]) -> (std::path::PathBuf, std::path::PathBuf) {
    let plain = dir.join("flows.log");
    let mut f = std::fs::File::create(&plain).unwrap();
    let store_dir = dir.join("store");
    let (mut w, _) = StoreWriter::open(StoreConfig {
        dir: store_dir.clone(),
        roll: Duration::from_secs(3600),
        roll_bytes: 1 << 30,
        keep: Duration::from_secs(86_400 * 400),
        max_bytes: 0,
    })
    .unwrap();
    for (at, l) in ev {
        writeln!(f, "{l}").unwrap();
        if let Some(n) = w.append(format!("{l}\n").as_bytes(), *at).unwrap() {
            store::close_segment(&store_dir, &n).unwrap();
        }
    }
    (plain, store_dir)
}

fn evidence_of(s: &Scan, v: &Verdict) -> Vec<Vec<(String, String)>> {
    v.matches
        .iter()
        .map(|m| {
            s.evidence(&m.flow)
                .into_iter()
                .map(|e| (e.event, e.text))
                .collect()
        })
        .collect()
}

#[test]
fn the_store_gives_the_plain_files_answers() {
    let tmp = temp_dir("store");
    let mut rng = Rng::new(7);
    for format in [Format::Text, Format::Rfc5424, Format::Json] {
        let sub = tmp.path().join(format!("{format:?}"));
        std::fs::create_dir(&sub).unwrap();
        let ev = flows(format, 4, &mut rng);
        let (plain, store_dir) = write_both(&sub, &ev);
        assert!(store::list(&store_dir).unwrap().len() >= 4);
        let mut found = 0;
        let mut from_closed = 0;
        for k in 0..120 {
            let (public, when, query) = random_report(&mut rng, k);
            let (ps, pv) = run(&query, &plain);
            let (ss, sv) = run(&query, &store_dir);
            assert_eq!(
                evidence_of(&ps, &pv),
                evidence_of(&ss, &sv),
                "{format:?} {public} at {when}"
            );
            assert_eq!(pv.stale.len(), sv.stale.len(), "{public} at {when}");
            assert_eq!(ps.incomplete(), ss.incomplete());
            assert!(ss.unreadable.is_empty(), "{:?}", ss.unreadable);
            found += usize::from(!pv.matches.is_empty());
            // Every evidence line is where its location says, in the
            // segment's plain bytes.
            for m in &sv.matches {
                for e in ss.evidence(&m.flow) {
                    from_closed += usize::from(e.file.ends_with(".zst"));
                    let bytes = if e.file.ends_with(".zst") {
                        zstd::stream::decode_all(std::fs::File::open(&e.file).unwrap()).unwrap()
                    } else {
                        std::fs::read(&e.file).unwrap()
                    };
                    let at = e.offset as usize;
                    assert_eq!(&bytes[at..at + e.text.len()], e.text.as_bytes());
                    let n = bytes[..at].iter().filter(|&&b| b == b'\n').count() as u64;
                    assert_eq!(e.line, Some(n + 1), "{}", e.file);
                }
            }
        }
        assert!(found > 20, "{format:?}: only {found} reports found a flow");
        assert!(
            from_closed > 20,
            "{format:?}: {from_closed} lines from closed segments"
        );
    }
}

#[test]
fn a_store_with_a_torn_live_segment_answers_from_its_whole_lines() {
    let tmp = temp_dir("store-torn");
    let mut rng = Rng::new(11);
    let ev = flows(Format::Text, 2, &mut rng);
    let (plain, store_dir) = write_both(tmp.path(), &ev);
    let live = store::list(&store_dir)
        .unwrap()
        .into_iter()
        .find(|s| s.kind == store::SegmentKind::Live)
        .unwrap();
    std::fs::OpenOptions::new()
        .append(true)
        .open(live.data(&store_dir))
        .unwrap()
        .write_all(b"<30>Nov 21 11:59:59 gw1 masqlog[4242]: masqlog: v=1 ev=st")
        .unwrap();
    let (_, rec) = StoreWriter::open(StoreConfig {
        dir: store_dir.clone(),
        roll: Duration::from_secs(3600),
        roll_bytes: 1 << 30,
        keep: Duration::from_secs(86_400),
        max_bytes: 0,
    })
    .unwrap();
    assert!(rec.torn_bytes > 0);
    for n in &rec.to_close {
        store::close_segment(&store_dir, n).unwrap();
    }
    let (at, l) = &ev[ev.len() - 3];
    let port = l.split(" masq=").nth(1).unwrap().split(' ').next().unwrap();
    let query = q(
        port,
        &masqlog_core::time::utc_string(Timestamp::new(*at, 0), false),
    );
    let (ps, pv) = run(&query, &plain);
    let (ss, sv) = run(&query, &store_dir);
    assert!(!pv.matches.is_empty());
    assert_eq!(evidence_of(&ps, &pv), evidence_of(&ss, &sv));
}

#[test]
fn an_index_beside_a_rotated_file_gives_the_same_answers_and_evidence() {
    let tmp = temp_dir("store-index");
    let mut rng = Rng::new(5);
    let ev = flows(Format::Text, 3, &mut rng);
    let (plain, _) = write_both(tmp.path(), &ev);
    // A gzip copy, as logrotate makes them.
    let gz = tmp.path().join("flows.log.2.gz");
    {
        let mut e = flate2::write::GzEncoder::new(
            std::fs::File::create(&gz).unwrap(),
            flate2::Compression::default(),
        );
        e.write_all(&std::fs::read(&plain).unwrap()).unwrap();
        e.finish().unwrap();
    }
    let queries: Vec<AbuseReport> = (0..40)
        .map(|k| {
            let at = t("2026-11-21T10:00:00Z").secs + (rng.next_u64() % (3 * 3600)) as i64;
            let masq = if k % 2 == 0 {
                "192.0.2.1"
            } else {
                "[2001:db8::1]"
            };
            q(
                &format!("{masq}:{}", 50000 + rng.next_u64() % 40),
                &masqlog_core::time::utc_string(Timestamp::new(at, 0), false),
            )
        })
        .collect();
    for file in [&plain, &gz] {
        let before: Vec<_> = queries
            .iter()
            .map(|qq| {
                let (s, v) = run(qq, file);
                let ev: Vec<_> = v.matches.iter().flat_map(|m| s.evidence(&m.flow)).collect();
                (ev, v.stale.len())
            })
            .collect();
        assert!(before.iter().filter(|b| !b.0.is_empty()).count() > 5);
        let dir = match super::store::index_file(file).unwrap() {
            super::store::Indexed::Written(d, _) => d,
            other => panic!("{other:?}"),
        };
        assert_eq!(Some(dir.clone()), super::store::fresh_sidecar(file));
        assert!(matches!(
            super::store::index_file(file).unwrap(),
            super::store::Indexed::AlreadyFresh(_)
        ));
        for (qq, b) in queries.iter().zip(&before) {
            let (s, v) = run(qq, file);
            assert!(
                s.notes.iter().any(|n| n.contains("read through its index")),
                "{:?}",
                s.notes
            );
            let ev: Vec<_> = v.matches.iter().flat_map(|m| s.evidence(&m.flow)).collect();
            // The same lines, named by the same file, line and offset.
            assert_eq!(&(ev, v.stale.len()), b, "{}", file.display());
        }
    }
    // A rename (rotation) keeps the index.
    let renamed = tmp.path().join("flows.log.3.gz");
    std::fs::rename(&gz, &renamed).unwrap();
    assert!(super::store::fresh_sidecar(&renamed).is_some());
    let (s, _) = run(&queries[0], &renamed);
    assert!(s.notes.iter().any(|n| n.contains("read through its index")));
    // A file that changed since is read, not its stale index.
    std::fs::OpenOptions::new()
        .append(true)
        .open(&plain)
        .unwrap()
        .write_all(b"more\n")
        .unwrap();
    assert!(super::store::fresh_sidecar(&plain).is_none());
    let (s, _) = run(&queries[0], &plain);
    assert!(!s.notes.iter().any(|n| n.contains("read through its index")));
    // Indexing again removes the indexes of files that are gone.
    std::fs::remove_file(&renamed).unwrap();
    super::store::index_file(&plain).unwrap();
    let left = std::fs::read_dir(tmp.path().join(".masqlog-index"))
        .unwrap()
        .count();
    assert_eq!(left, 1, "the plain file's new index only");
}

#[test]
fn a_live_segment_searched_through_its_index_gives_the_plain_files_answers() {
    let tmp = temp_dir("store-live-index");
    let mut rng = Rng::new(23);
    let ev = flows(Format::Text, 4, &mut rng);
    let plain = tmp.path().join("flows.log");
    let store_dir = tmp.path().join("store");
    // One live segment for the whole span; its index covers about the
    // first 60 % (whole frames), the rest is read as lines.
    let (mut w, _) = StoreWriter::open(StoreConfig {
        dir: store_dir.clone(),
        roll: Duration::from_secs(86_400),
        roll_bytes: 1 << 30,
        keep: Duration::from_secs(86_400 * 400),
        max_bytes: 0,
    })
    .unwrap();
    let mut f = std::fs::File::create(&plain).unwrap();
    let mut ix: Option<store::LiveIndexer> = None;
    for (k, (at, l)) in ev.iter().enumerate() {
        writeln!(f, "{l}").unwrap();
        assert_eq!(
            w.append(format!("{l}\n").as_bytes(), ev[0].0).unwrap(),
            None
        );
        if k == ev.len() * 6 / 10 {
            let (name, len) = w.live_len().unwrap();
            let x = ix.get_or_insert_with(|| store::LiveIndexer::new(name));
            assert!(x.advance(&store_dir, len, true).unwrap(), "at {at}");
        }
    }
    let covered = ix.unwrap().covered();
    let total = std::fs::metadata(&plain).unwrap().len();
    assert!(
        covered > total / 3 && covered < total,
        "{covered} of {total}"
    );
    let mut found = 0;
    for k in 0..100 {
        let (public, when, query) = random_report(&mut rng, k);
        let (ps, pv) = run(&query, &plain);
        let (ss, sv) = run(&query, &store_dir);
        assert!(
            ss.notes
                .iter()
                .any(|n| n.contains("1 live segment searched through its index")),
            "{:?}",
            ss.notes
        );
        assert_eq!(
            evidence_of(&ps, &pv),
            evidence_of(&ss, &sv),
            "{public} at {when}"
        );
        assert_eq!(pv.stale.len(), sv.stale.len(), "{public} at {when}");
        assert!(ss.unreadable.is_empty(), "{:?}", ss.unreadable);
        found += usize::from(!pv.matches.is_empty());
        // Evidence names the live file, at the plain file's offsets and
        // lines (the same bytes).
        let ev_p: Vec<_> = pv
            .matches
            .iter()
            .flat_map(|m| ps.evidence(&m.flow))
            .collect();
        let ev_s: Vec<_> = sv
            .matches
            .iter()
            .flat_map(|m| ss.evidence(&m.flow))
            .collect();
        for (a, b) in ev_p.iter().zip(&ev_s) {
            assert!(
                b.file.ends_with(".log") && b.file.contains("seg-"),
                "{}",
                b.file
            );
            assert_eq!((a.offset, a.line), (b.offset, b.line));
        }
    }
    assert!(found > 20, "only {found} reports found a flow");
    // An index that claims more than the file holds is not used.
    let name = w.live_len().unwrap().0.to_string();
    let seg = store_dir.join(format!("{name}.log"));
    let cut = std::fs::read(&seg).unwrap();
    let keep = cut[..covered as usize - 1]
        .iter()
        .rposition(|&b| b == b'\n')
        .unwrap()
        + 1;
    std::fs::write(&seg, &cut[..keep]).unwrap();
    let (ss, _) = run(&q("192.0.2.1:50001", "2026-11-21T11:00:00Z"), &store_dir);
    assert!(
        ss.notes
            .iter()
            .any(|n| n.contains("1 live segment read whole")),
        "{:?}",
        ss.notes
    );
}

#[test]
fn a_damaged_index_is_named_and_nothing_of_it_is_used() {
    let tmp = temp_dir("store-damaged-index");
    let mut rng = Rng::new(11);
    let ev = flows(Format::Text, 3, &mut rng);
    let (plain, store_dir) = write_both(tmp.path(), &ev);
    // A report answered from the second hour's closed segment.
    let segs = store::list(&store_dir).unwrap();
    let second = &segs[1];
    assert_eq!(second.kind, store::SegmentKind::Closed);
    let zst = second.data(&store_dir).display().to_string();
    let mut rng = Rng::new(12);
    let (query, plain_evidence) = (0..400)
        .find_map(|_| {
            let at = t("2026-11-21T11:00:00Z").secs + (rng.next_u64() % 3600) as i64;
            let public = format!("192.0.2.1:{}", 50000 + rng.next_u64() % 40);
            let when = masqlog_core::time::utc_string(Timestamp::new(at, 0), false);
            let query = q(&public, &when);
            let (ss, sv) = run(&query, &store_dir);
            let from_second = sv
                .matches
                .iter()
                .flat_map(|m| ss.evidence(&m.flow))
                .any(|e| e.file == zst);
            let (ps, pv) = run(&query, &plain);
            (from_second && sv.matches.len() == 1).then(|| (query, evidence_of(&ps, &pv)))
        })
        .expect("a report answered from the second segment");
    assert_eq!(plain_evidence.len(), 1);

    // One byte of its entries changed: the block's checksum fails.
    let idx = second.index(&store_dir);
    let mut bytes = std::fs::read(&idx).unwrap();
    let last = bytes.len() - 3;
    bytes[last] ^= 0x5a;
    std::fs::write(&idx, &bytes).unwrap();
    let (ss, sv) = run(&query, &store_dir);
    assert!(
        ss.unreadable
            .iter()
            .any(|(name, why)| *name == idx.display().to_string() && why.contains("checksum")),
        "{:?}",
        ss.unreadable
    );
    // Nothing of that segment answers: no evidence line from it.
    for m in &sv.matches {
        for e in ss.evidence(&m.flow) {
            assert_ne!(
                e.file, zst,
                "evidence from a segment whose index is damaged"
            );
        }
    }
    assert!(ss.incomplete());
    assert_ne!(evidence_of(&ss, &sv), plain_evidence);
}
