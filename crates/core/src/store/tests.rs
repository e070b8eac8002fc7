//! The store's format, writer, recovery and retention.

use super::index::NO_END;
use super::*;
use crate::config::Format;
use crate::format::testutil::{header, tcp_end, tcp_start};
use crate::format::write_syslog;
use crate::record::{FlowRecord, Timestamp};
use std::io::Cursor;
use std::net::IpAddr;

/// `n` flows (start and end lines), one a second from `t0`, each on port
/// 1024 + i % 5000, addresses alternating IPv4 and IPv6, in `format`;
/// every flow lasts 90 s so that its end line is logged 90 lines later.
fn lines(n: u32, t0: i64, format: Format) -> (Vec<u8>, Vec<(IpAddr, u16, i64)>) {
    let mut events: Vec<(i64, FlowRecord)> = Vec::new();
    let mut flows = Vec::new();
    for i in 0..n {
        let ip: IpAddr = if i % 2 == 0 {
            "192.0.2.1".parse().unwrap()
        } else {
            "2001:db8::1".parse().unwrap()
        };
        let port = 1024 + (i % 5000) as u16;
        let s = t0 + i64::from(i);
        let mut st = tcp_start();
        st.masq.ip = ip;
        st.masq.port = Some(port);
        st.id = Some(i);
        st.start = Some(Timestamp::new(s, 0));
        let mut en = tcp_end();
        en.masq = st.masq;
        en.id = st.id;
        en.start = st.start;
        en.end = Some(Timestamp::new(s + 90, 0));
        events.push((s, st));
        events.push((s + 90, en));
        flows.push((ip, port, s));
    }
    events.sort_by_key(|e| e.0);
    let mut out = Vec::new();
    for (t, r) in events {
        let mut h = header(Some("gw1"));
        h.timestamp = Timestamp::new(t, 0);
        write_syslog(format, &h, &r, &mut out);
        out.push(b'\n');
    }
    (out, flows)
}

fn build(data: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let mut b = SegmentBuilder::new(Vec::new()).unwrap();
    b.push(data).unwrap();
    b.finish(SourceStamp::default()).unwrap()
}

#[test]
fn frames_decode_to_the_exact_bytes_as_one_stream_and_each_alone() {
    let (data, _) = lines(3000, 1_795_000_000, Format::Rfc5424);
    let (zst, idx) = build(&data);
    assert_eq!(zstd::stream::decode_all(zst.as_slice()).unwrap(), data);
    let index = Index::read(&mut idx.as_slice(), "t").unwrap();
    assert!(index.frame_count() > 2, "{} frames", index.frame_count());
    let mut again = Vec::new();
    let mut dec = FrameDecoder::new().unwrap();
    for f in index.frames() {
        let c = &zst[f.comp_offset as usize..][..f.comp_len as usize];
        let raw = dec.decode(c, f.raw_len).unwrap();
        assert_eq!(raw.len() as u32, f.raw_len);
        assert_eq!(f.raw_offset as usize, again.len());
        let lines_before = again.iter().filter(|&&b| b == b'\n').count() as u64;
        assert_eq!(f.first_line, lines_before + 1);
        assert!(raw.ends_with(b"\n"));
        again.extend_from_slice(raw);
    }
    assert_eq!(again, data);
    assert_eq!(index.lines, 6000);
}

#[test]
fn a_frame_longer_than_its_index_says_is_refused_by_a_reused_decoder() {
    let long = zstd::bulk::compress(&[b'x'; 4000], 3).unwrap();
    let short = zstd::bulk::compress(&[b'y'; 100], 3).unwrap();
    let mut dec = FrameDecoder::new().unwrap();
    // The buffer's capacity after the long frame must not become the bound.
    assert_eq!(dec.decode(&long, 4000).unwrap().len(), 4000);
    assert!(dec.decode(&long, 3999).is_err());
    assert_eq!(dec.decode(&short, 100).unwrap(), &[b'y'; 100][..]);
    assert!(dec.decode(&long, 100).is_err());
    assert!(dec.decode(b"not zstd", 100).is_err());
}

#[test]
fn every_line_of_a_flow_is_found_through_the_index() {
    for format in [Format::Text, Format::Json, Format::Rfc5424] {
        let t0 = 1_795_000_000;
        let (data, flows) = lines(7000, t0, format);
        let (zst, idx) = build(&data);
        let index = Index::read(&mut idx.as_slice(), "t").unwrap();
        let mut dec = FrameDecoder::new().unwrap();
        for &(ip, port, start) in flows.iter().step_by(97) {
            let hits = index.hits(&mut Cursor::new(&idx), "t", ip, port).unwrap();
            let mine: Vec<_> = hits.iter().filter(|h| h.start == start).collect();
            assert!(
                mine.iter().any(|h| h.end.is_none())
                    && mine.iter().any(|h| h.end == Some(start + 90)),
                "{format:?} {ip} {port}: {hits:?}"
            );
            // The frames named hold the lines.
            let needle = format!("{port}");
            for h in mine {
                let f = index.frame(h.frame).unwrap();
                let raw = dec
                    .decode(
                        &zst[f.comp_offset as usize..][..f.comp_len as usize],
                        f.raw_len,
                    )
                    .unwrap();
                assert!(
                    raw.windows(needle.len()).any(|w| w == needle.as_bytes()),
                    "frame {} lacks {needle}",
                    h.frame
                );
            }
            // Another address's port is not this one.
            let other: IpAddr = "198.51.100.1".parse().unwrap();
            assert!(
                index
                    .hits(&mut Cursor::new(&idx), "t", other, port)
                    .unwrap()
                    .is_empty()
            );
        }
    }
}

#[test]
fn a_damaged_index_is_refused_by_its_checksums() {
    let (data, flows) = lines(9000, 1_795_000_000, Format::Text);
    let (_, idx) = build(&data);
    // In the tables: the header's checksum.
    let mut bad = idx.clone();
    bad[HEADER_LEN_FOR_TEST + 3] ^= 1;
    let e = Index::read(&mut bad.as_slice(), "x").unwrap_err();
    assert!(e.to_string().contains("checksum"), "{e}");
    // In the entries: the block's.
    let mut bad = idx.clone();
    let n = bad.len();
    bad[n - 5] ^= 0x40;
    let index = Index::read(&mut bad.as_slice(), "x").unwrap();
    let (ip, port, _) = *flows.last().unwrap();
    let mut any_err = false;
    for (ip, port) in [(ip, port)]
        .into_iter()
        .chain(flows.iter().map(|f| (f.0, f.1)))
    {
        if index.hits(&mut Cursor::new(&bad), "x", ip, port).is_err() {
            any_err = true;
            break;
        }
    }
    assert!(any_err);
    // Another version.
    let mut bad = idx.clone();
    bad[8] = 9;
    assert!(
        Index::read(&mut bad.as_slice(), "x")
            .unwrap_err()
            .to_string()
            .contains("version")
    );
}

const HEADER_LEN_FOR_TEST: usize = super::index::HEADER_LEN;

#[test]
fn entries_of_other_lines_have_no_end() {
    let (data, flows) = lines(10, 1_795_000_000, Format::Text);
    let (_, idx) = build(&data);
    let index = Index::read(&mut idx.as_slice(), "t").unwrap();
    let (ip, port, start) = flows[3];
    let hits = index.hits(&mut Cursor::new(&idx), "t", ip, port).unwrap();
    assert_eq!(hits.len(), 2, "{hits:?}");
    assert!(hits.iter().all(|h| h.start == start));
    assert_eq!(NO_END, u32::MAX);
}

#[test]
fn segment_names_round_trip() {
    let t = 1_795_264_692;
    let n = segment_name(t);
    assert_eq!(n, "seg-20261121T123812Z");
    assert_eq!(parse_segment_name(&n), Some(t));
    assert_eq!(parse_segment_name("seg-2026112T093812Z"), None);
    assert_eq!(parse_segment_name("syslog.1"), None);
}

fn cfg(dir: &Path) -> StoreConfig {
    StoreConfig {
        dir: dir.to_path_buf(),
        roll: Duration::from_secs(3600),
        roll_bytes: 1 << 30,
        keep: Duration::from_secs(400 * 86_400),
        max_bytes: 0,
    }
}

#[test]
fn the_writer_rolls_hourly_and_closing_keeps_every_byte() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    let (mut w, rec) = StoreWriter::open(cfg(&dir)).unwrap();
    assert_eq!(rec, Recovered::default());
    assert!(is_store(&dir));
    let meta = fs::metadata(&dir).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o750);
    let t0 = 1_795_262_400; // on the hour
    let (a, _) = lines(50, t0, Format::Text);
    let (b, _) = lines(50, t0 + 3600, Format::Text);
    assert_eq!(w.append(&a, t0 + 10).unwrap(), None);
    let rolled = w
        .append(&b, t0 + 3600)
        .unwrap()
        .expect("rolled on the hour");
    assert_eq!(rolled, segment_name(t0 + 10));
    let live = fs::metadata(dir.join(format!("{rolled}.log"))).unwrap();
    assert_eq!(live.permissions().mode() & 0o777, 0o640);
    let c = close_segment(&dir, &rolled).unwrap();
    assert_eq!(c.raw_bytes, a.len() as u64);
    let segs = list(&dir).unwrap();
    assert_eq!(segs.len(), 2);
    assert_eq!(segs[0].kind, SegmentKind::Closed);
    assert_eq!(segs[1].kind, SegmentKind::Live);
    let zst = fs::read(segs[0].data(&dir)).unwrap();
    assert_eq!(zstd::stream::decode_all(zst.as_slice()).unwrap(), a);
    assert_eq!(fs::read(segs[1].data(&dir)).unwrap(), b);
    for p in [segs[0].data(&dir), segs[0].index(&dir)] {
        assert_eq!(fs::metadata(p).unwrap().permissions().mode() & 0o777, 0o640);
    }
}

#[test]
fn a_torn_tail_is_cut_and_counted_and_the_segment_closed_at_the_next_start() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    let (mut w, _) = StoreWriter::open(cfg(&dir)).unwrap();
    let t0 = 1_795_262_400;
    let (a, _) = lines(20, t0, Format::Rfc5424);
    w.append(&a, t0).unwrap();
    w.append(b"<30>1 2026-11-21T09:00:00Z gw1 masqlog 1 - [masq", t0)
        .unwrap();
    let name = w.live().unwrap().to_string();
    drop(w); // as kill -9 leaves it
    // A close that crashed half way left temporary files.
    fs::write(dir.join(format!("{name}.zst.tmp")), b"partial").unwrap();
    let (_, rec) = StoreWriter::open(cfg(&dir)).unwrap();
    assert_eq!(rec.torn_bytes, 48);
    assert_eq!(rec.to_close, vec![name.clone()]);
    assert!(!dir.join(format!("{name}.zst.tmp")).exists());
    close_segment(&dir, &name).unwrap();
    let segs = list(&dir).unwrap();
    assert_eq!(segs.len(), 1);
    let zst = fs::read(segs[0].data(&dir)).unwrap();
    assert_eq!(zstd::stream::decode_all(zst.as_slice()).unwrap(), a);
}

#[test]
fn retention_deletes_only_what_is_past_it_and_never_the_live_segment() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    let mut c = cfg(&dir);
    c.keep = Duration::from_secs(2 * 86_400);
    let (mut w, _) = StoreWriter::open(c.clone()).unwrap();
    let t0 = 1_795_262_400;
    let (a, _) = lines(5, t0, Format::Text);
    for day in 0..5 {
        if let Some(n) = w.append(&a, t0 + day * 86_400).unwrap() {
            close_segment(&dir, &n).unwrap();
        }
    }
    let now = t0 + 4 * 86_400 + 60;
    assert_eq!(list(&dir).unwrap().len(), 5);
    // Days 0, 1 end before now - 2 days; day 2's segment ends at day 3.
    let p = prune(&dir, c.keep, 0, now).unwrap();
    assert_eq!(p.segments, 2);
    let left = list(&dir).unwrap();
    assert_eq!(left.len(), 3);
    assert_eq!(left[0].opened, t0 + 2 * 86_400);
    // A size limit below everything still keeps the live segment.
    prune(&dir, c.keep, 1, now).unwrap();
    let left = list(&dir).unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].kind, SegmentKind::Live);
}

#[test]
fn a_symlink_is_not_taken_for_the_store_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let real = tmp.path().join("real");
    fs::create_dir(&real).unwrap();
    let link = tmp.path().join("link");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let e = StoreWriter::open(cfg(&link)).err().unwrap();
    assert!(e.to_string().contains("symlink"), "{e}");
}

#[test]
fn a_torn_file_without_any_newline_is_emptied() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("f");
    fs::write(&p, b"no newline at all").unwrap();
    let f = OpenOptions::new().read(true).write(true).open(&p).unwrap();
    assert_eq!(cut_torn(&f).unwrap(), 17);
    assert_eq!(fs::read(&p).unwrap(), b"");
    assert_eq!(whole_lines(b"a\nb"), 2);
}

#[test]
fn the_live_index_covers_whole_frames_of_the_plain_file_and_grows_by_steps() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    let (mut w, _) = StoreWriter::open(cfg(&dir)).unwrap();
    let t0 = 1_795_262_400;
    let (data, flows) = lines(12_000, t0, Format::Text);
    // Written in pieces that end in the middle of a line: the indexer
    // takes only the writer's completed lengths, which end at line ends.
    let mut ix: Option<LiveIndexer> = None;
    let mut wrote = 0;
    for piece in data
        .split_inclusive(|&b| b == b'\n')
        .collect::<Vec<_>>()
        .chunks(700)
    {
        let bytes: Vec<u8> = piece.concat();
        w.append(&bytes, t0 + 10).unwrap();
        let (name, len) = w.live_len().unwrap();
        let ix = ix.get_or_insert_with(|| LiveIndexer::new(name));
        if ix.advance(&dir, len, false).unwrap() {
            wrote += 1;
        }
    }
    let ix = ix.unwrap();
    let name = ix.name().to_string();
    assert!(wrote >= 1, "{} bytes gave no index", data.len());
    let path = live_index_path(&dir, &name);
    let index = Index::read(&mut fs::read(&path).unwrap().as_slice(), "lix").unwrap();
    assert_eq!(index.stamp.len, ix.covered());
    assert!(index.stamp.len <= data.len() as u64 && index.stamp.len >= super::live::MIN_STEP);
    // Frames are byte ranges of the live file, in order, at line starts.
    let mut at = 0;
    for f in index.frames() {
        assert_eq!((f.comp_offset, f.comp_len), (f.raw_offset, f.raw_len));
        assert_eq!(f.raw_offset, at);
        let lines_before = data[..at as usize].iter().filter(|&&b| b == b'\n').count() as u64;
        assert_eq!(f.first_line, lines_before + 1);
        at += u64::from(f.raw_len);
    }
    assert_eq!(at, index.stamp.len);
    // Every flow whose start line lies in the covered part is found, in
    // the frame that holds it.
    let mut found = 0;
    for (ip, port, start) in flows {
        let hits = index
            .hits(&mut Cursor::new(fs::read(&path).unwrap()), "lix", ip, port)
            .unwrap();
        let Some(h) = hits.iter().find(|h| h.start == start) else {
            continue;
        };
        let f = index.frame(h.frame).unwrap();
        let raw = &data[f.raw_offset as usize..][..f.raw_len as usize];
        assert!(
            memchr::memmem::find(raw, format!(":{port} ").as_bytes()).is_some(),
            "flow on port {port} not in its frame"
        );
        found += 1;
    }
    assert!(found > 1000, "{found} flows found");
    // Forced, it covers every whole frame; the close removes it.
    let (_, len) = w.live_len().unwrap();
    let mut ix = ix;
    ix.advance(&dir, len, true).unwrap();
    let rolled = w.roll().unwrap();
    close_segment(&dir, &rolled).unwrap();
    assert!(!path.exists(), "the close leaves no live index");
}

#[test]
fn a_live_index_left_without_its_segment_is_removed_at_the_next_start() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    let (_w, _) = StoreWriter::open(cfg(&dir)).unwrap();
    let stray = live_index_path(&dir, "seg-20261122T000000Z");
    fs::write(&stray, b"x").unwrap();
    let (_w, _) = StoreWriter::open(cfg(&dir)).unwrap();
    assert!(!stray.exists());
}

#[test]
fn closing_from_the_live_index_writes_the_same_files_as_closing_from_scratch() {
    let tmp = tempfile::tempdir().unwrap();
    let t0 = 1_795_262_400;
    let (data, _) = lines(9_000, t0, Format::Rfc5424);
    let mut out = Vec::new();
    for (k, via_index) in [false, true].into_iter().enumerate() {
        let dir = tmp.path().join(format!("store{k}"));
        let (mut w, _) = StoreWriter::open(cfg(&dir)).unwrap();
        let mut ix: Option<LiveIndexer> = None;
        for piece in data
            .split_inclusive(|&b| b == b'\n')
            .collect::<Vec<_>>()
            .chunks(500)
        {
            w.append(&piece.concat(), t0 + 10).unwrap();
            let (name, len) = w.live_len().unwrap();
            if via_index {
                ix.get_or_insert_with(|| LiveIndexer::new(name))
                    .advance(&dir, len, false)
                    .unwrap();
            }
        }
        // A torn last line is not taken either way.
        let name = w.roll().unwrap();
        fs::OpenOptions::new()
            .append(true)
            .open(dir.join(format!("{name}.log")))
            .unwrap()
            .write_all(b"<30>1 2026-11-22T00:00:00Z gw1 masqlog - - - torn")
            .unwrap();
        let closed = match ix {
            Some(ix) => ix.close(&dir).unwrap(),
            None => close_segment(&dir, &name).unwrap(),
        };
        assert_eq!(closed.raw_bytes, data.len() as u64);
        let segs = list(&dir).unwrap();
        assert_eq!(segs.len(), 1);
        assert_eq!(segs[0].kind, SegmentKind::Closed);
        assert!(!live_index_path(&dir, &name).exists());
        assert!(!dir.join(format!("{name}.log")).exists());
        out.push((
            fs::read(segs[0].data(&dir)).unwrap(),
            fs::read(segs[0].index(&dir)).unwrap(),
            closed,
        ));
    }
    assert!(out[0].0 == out[1].0, "the .zst files differ");
    assert!(out[0].1 == out[1].1, "the .idx files differ");
    assert_eq!(out[0].2, out[1].2);
}

#[test]
fn an_index_written_again_as_it_grows_finds_what_a_fresh_one_finds() {
    use super::index::{IndexBuilder, LineKey};
    let mut b = IndexBuilder::new();
    let t0 = 1_795_262_400;
    let mut seed = 7u64;
    let mut next = || {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        seed >> 33
    };
    let ips: [IpAddr; 2] = ["192.0.2.1".parse().unwrap(), "2001:db8::1".parse().unwrap()];
    for round in 0..6u32 {
        for k in 0..3000u32 {
            // Mostly recent starts; now and then a flow far older than any
            // before (its base moves) .
            let age = if next() % 500 == 0 {
                400 * 86_400
            } else {
                (next() % 7200) as i64
            };
            let start = t0 + i64::from(round * 600 + k / 10) - age;
            let end = (next() % 2 == 0).then_some(start + age + 5);
            b.add(
                LineKey {
                    addr: ips[(k % 2) as usize],
                    port: 50_000 + (next() % 20) as u16,
                    start,
                    end,
                },
                round * 4 + k / 1000,
            );
        }
        let again = b.finish_again(SourceStamp::default());
        let fresh = b.finish(SourceStamp::default());
        let ia = Index::read(&mut again.as_slice(), "again").unwrap();
        let ifr = Index::read(&mut fresh.as_slice(), "fresh").unwrap();
        for ip in ips {
            for port in 50_000..50_020 {
                let mut ha = ia
                    .hits(&mut Cursor::new(&again), "again", ip, port)
                    .unwrap();
                let mut hf = ifr
                    .hits(&mut Cursor::new(&fresh), "fresh", ip, port)
                    .unwrap();
                ha.sort_by_key(|h| (h.start, h.end, h.frame));
                hf.sort_by_key(|h| (h.start, h.end, h.frame));
                assert!(!hf.is_empty());
                assert_eq!(ha, hf, "round {round}: {ip} {port}");
            }
        }
    }
}
