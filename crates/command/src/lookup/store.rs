//! Answering from an evidence store (a `store_dir` the plugin writes, see
//! `masqlog_core::store`): the segments whose time can hold the report
//! are chosen by their names, their indexes binary-searched for the
//! public endpoint, and only the frames named decoded and read like any
//! log, so the join, authentication and answer are those of a plain file.
//!
//! **Which segments.** With the search window of a single lookup
//! (`report - slack - max_age` to `report + slack`, see [`super`]), the
//! segments written during the window (plus the 5 minute margin); then,
//! while a flow that started in the window has no end line yet, the next
//! segments up to its start plus `max_age`, as the plain reader follows it.
//! Without a window (`--scan-all`, `--max-age unlimited`, batch) every
//! segment's index is searched. The live segment is searched through its
//! index (`NAME.lix`, kept by the plugin's store thread, see
//! `masqlog_core::store::live`), whose frames are byte ranges of the live
//! file, and the lines after what that index covers are read as they are;
//! a live segment without a usable index is read as a plain file
//! (bisected like any other).
//!
//! **Evidence** names the compressed segment `seg-...zst`; its offset and
//! line are those of the line in the segment's plain bytes (what
//! `zstdcat` prints): `zstdcat FILE | sed -n LINEp`.

use std::collections::{BTreeSet, HashSet};
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::net::IpAddr;
use std::path::Path;

use masqlog_core::store::{self, Index, SegmentKind};

use super::scan::{NAV_MARGIN_SECS, Scanner, Window};
use super::source::Spec;

/// The segment name of an index beside a rotated file (`masqlog index`):
/// one segment that covers all time.
pub const SIDECAR_SEGMENT: &str = "seg-19700101T000000Z";

/// The directory, beside the logs, that holds the indexes of `masqlog
/// index`.
pub const INDEX_DIR: &str = ".masqlog-index";

/// Where the index of the file with metadata `meta` in `parent` is:
/// `PARENT/.masqlog-index/INODE-SIZE-MTIME`. A rename (logrotate's `.2.gz`
/// becoming `.3.gz`) keeps all three, so an index follows its file through
/// rotation; a file that changed (or a new one under the old name) has
/// none.
pub fn sidecar_for(parent: &Path, meta: &std::fs::Metadata) -> std::path::PathBuf {
    use std::os::unix::fs::MetadataExt;
    parent
        .join(INDEX_DIR)
        .join(format!("{}-{}-{}", meta.ino(), meta.len(), meta.mtime()))
}

/// [`sidecar_for`] of a file, when it can be looked at.
pub fn sidecar_of(file: &Path) -> Option<std::path::PathBuf> {
    let meta = std::fs::metadata(file).ok()?;
    let parent = file
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    Some(sidecar_for(parent, &meta))
}

/// The index of `file`, when there is one and it describes the file as it
/// is (size and mtime, also in its header).
pub fn fresh_sidecar(file: &Path) -> Option<std::path::PathBuf> {
    use std::os::unix::fs::MetadataExt;
    let dir = sidecar_of(file)?;
    if !store::is_store(&dir) {
        return None;
    }
    let meta = std::fs::metadata(file).ok()?;
    let idx = dir.join(format!("{SIDECAR_SEGMENT}.idx"));
    let mut f = BufReader::new(File::open(&idx).ok()?);
    let index = Index::read(&mut f, &idx.display().to_string()).ok()?;
    (index.stamp.len == meta.len() && index.stamp.mtime == meta.mtime()).then_some(dir)
}

/// What [`index_file`] did.
#[derive(Debug)]
pub enum Indexed {
    Written(std::path::PathBuf, store::Closed),
    /// A fresh index was there.
    AlreadyFresh(std::path::PathBuf),
}

/// Writes the index of `file` (plain, gzip or zstd): a seekable zstd copy
/// of its lines and their index, stamped with the file's size and mtime,
/// in `.masqlog-index/` beside it (see [`sidecar_for`]). A fresh one is
/// kept. Indexes there of files that are gone are removed.
pub fn index_file(file: &Path) -> Result<Indexed, String> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(file).map_err(|e| crate::access::why(file, &e))?;
    if !meta.is_file() {
        return Err(format!("{}: not a regular file", file.display()));
    }
    let parent = file
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    prune_indexes(parent);
    if let Some(dir) = fresh_sidecar(file) {
        return Ok(Indexed::AlreadyFresh(dir));
    }
    let stamp = store::SourceStamp {
        len: meta.len(),
        mtime: meta.mtime(),
        crc: 0,
    };
    let dir = sidecar_for(parent, &meta);
    let top = parent.join(INDEX_DIR);
    if !top.exists() {
        std::fs::create_dir(&top).map_err(|e| format!("{}: {e}", top.display()))?;
    }
    store::init_dir(&dir).map_err(|e| e.to_string())?;
    let reader: Box<dyn Read> = match super::source::open_file(file)? {
        super::source::Opened::Plain { file, .. } => Box::new(file),
        super::source::Opened::Stream { reader, .. } => reader,
    };
    let closed = store::write_closed(&dir, SIDECAR_SEGMENT, file, reader, stamp)
        .map_err(|e| e.to_string())?;
    Ok(Indexed::Written(dir, closed))
}

/// Removes the indexes in `parent/.masqlog-index` whose file is gone.
fn prune_indexes(parent: &Path) {
    let top = parent.join(INDEX_DIR);
    let Ok(rd) = std::fs::read_dir(&top) else {
        return;
    };
    let mut live = HashSet::new();
    if let Ok(files) = std::fs::read_dir(parent) {
        for f in files.flatten() {
            if let Ok(m) = f.metadata()
                && m.is_file()
            {
                live.insert(sidecar_for(parent, &m));
            }
        }
    }
    for e in rd.flatten() {
        let p = e.path();
        if !live.contains(&p) && store::is_store(&p) {
            let _ = std::fs::remove_dir_all(&p);
        }
    }
}

/// What reading a store gave besides candidates.
#[derive(Debug, Default)]
pub struct StoreRead {
    /// Live segments: read as plain files.
    pub live: Vec<Spec>,
    pub unreadable: Vec<(String, String)>,
    pub segments: usize,
    pub frames: usize,
    /// Live segments searched through their index ...
    pub live_indexed: usize,
    /// ... and the bytes after what their indexes cover, read as lines.
    pub live_tail_bytes: u64,
}

/// The index of a live segment, when it has one that fits the file (it
/// covers no more than the file holds), with the file's length.
fn live_index(dir: &Path, seg: &store::SegmentFile) -> Option<(std::path::PathBuf, u64)> {
    let lix = store::live_index_path(dir, &seg.name);
    let len = std::fs::symlink_metadata(seg.data(dir)).ok()?.len();
    std::fs::symlink_metadata(&lix)
        .is_ok_and(|m| m.is_file())
        .then_some((lix, len))
}

/// Reads the frames of the closed segments of the store `dir` that can
/// hold lines of `targets` in `window` into the scanner.
pub fn read(
    scanner: &mut Scanner<'_>,
    dir: &Path,
    targets: &[(IpAddr, u16)],
    window: Option<&Window>,
) -> StoreRead {
    read_as(scanner, dir, targets, window, None)
}

/// [`read`]; evidence names `name_as` (the file an index beside it
/// describes) instead of the segment.
///
/// Two passes: the indexes of the chosen segments give every line of the
/// endpoints, grouped into flows by their start; then only the frames of
/// the flows that can matter are decoded: those that may hold the report
/// time (open, or ending at or after `report - slack`, and starting by
/// `report + slack`), and the nearest flow before and after it (the
/// answer's hint when nothing matches).
pub fn read_as(
    scanner: &mut Scanner<'_>,
    dir: &Path,
    targets: &[(IpAddr, u16)],
    window: Option<&Window>,
    name_as: Option<&Path>,
) -> StoreRead {
    let mut out = StoreRead::default();
    let segs = match store::list(dir) {
        Ok(s) => s,
        Err(e) => {
            out.unreadable
                .push((dir.display().to_string(), e.to_string()));
            return out;
        }
    };
    let margin = NAV_MARGIN_SECS;
    let span = |i: usize| {
        (
            segs[i].opened,
            segs.get(i + 1).map_or(i64::MAX, |n| n.opened),
        )
    };
    // Pass 1: hits, per flow (endpoint, start): (segment, frame) and end.
    struct FlowHits {
        frames: Vec<(usize, u32)>,
        end: Option<i64>,
    }
    let mut flows: std::collections::HashMap<(IpAddr, u16, i64), FlowHits> =
        std::collections::HashMap::new();
    let mut gap_frames: Vec<(usize, u32)> = Vec::new();
    // (segment, what its index covers (bytes, lines), whether live: frames
    // are plain byte ranges). Only the frames a hit or a gap names are
    // kept of an index (`located`); the rest of it is dropped as soon as
    // it has been searched.
    let mut opened: Vec<(usize, (u64, u64), bool)> = Vec::new();
    let mut located: std::collections::HashMap<(usize, u32), store::Frame> =
        std::collections::HashMap::new();
    // Reused by every index: a block of entries.
    let mut block = Vec::new();
    let mut pending: HashSet<(IpAddr, u16, i64)> = HashSet::new();
    for (i, seg) in segs.iter().enumerate() {
        let (from_t, to_t) = span(i);
        let (in_window, follow) = match window {
            None => (true, false),
            Some(w) => {
                let inside = to_t >= w.from - margin && from_t <= w.until + margin;
                let after = from_t > w.until + margin;
                let follow_until = pending.iter().map(|p| p.2.saturating_add(w.max_age)).max();
                (
                    inside,
                    after && follow_until.is_some_and(|f| from_t <= f + margin),
                )
            }
        };
        if !in_window && !follow {
            if window.is_some_and(|w| from_t > w.until + margin) && pending.is_empty() {
                break;
            }
            continue;
        }
        let (idx_path, live_len) = match seg.kind {
            SegmentKind::Closed => (seg.index(dir), None),
            SegmentKind::Live => match live_index(dir, seg) {
                Some((lix, len)) => (lix, Some(len)),
                None => {
                    out.live.push(Spec::File(seg.data(dir)));
                    continue;
                }
            },
        };
        let name = idx_path.display().to_string();
        // Everything this index says is taken only once all of it has
        // been read: a damaged block or frame table costs the segment
        // (named unreadable), never a flow half-found.
        type Found = (
            Vec<(IpAddr, u16, store::Hit, store::Frame)>,
            Vec<(u32, store::Frame)>,
            (u64, u64),
        );
        let res = (|| -> Result<Found, String> {
            // Read as it is: the header and tables in two reads, a block
            // of entries in one.
            let mut r = File::open(&idx_path).map_err(|e| crate::access::why(&idx_path, &e))?;
            let index = Index::read(&mut r, &name).map_err(|e| e.to_string())?;
            if live_len.is_some_and(|len| index.stamp.len > len) {
                return Err("covers more than the live segment holds".into());
            }
            let locate = |frame: u32| {
                index
                    .frame(frame)
                    .ok_or_else(|| format!("names frame {frame} of {}", index.frame_count()))
            };
            let mut hits = Vec::new();
            for &(ip, port) in targets {
                for h in index
                    .hits_with(&mut r, &name, ip, port, &mut block)
                    .map_err(|e| e.to_string())?
                {
                    hits.push((ip, port, h, locate(h.frame)?));
                }
            }
            let mut gaps = Vec::new();
            for g in &index.gaps {
                if window.is_none_or(|w| g.to >= w.from && g.from <= w.until) {
                    gaps.push((g.frame, locate(g.frame)?));
                }
            }
            Ok((hits, gaps, (index.stamp.len, index.lines)))
        })();
        let (hits, gaps, covers) = match (res, live_len) {
            (Ok(found), _) => found,
            // A live segment is read whole when its index is no use.
            (Err(_), Some(_)) => {
                out.live.push(Spec::File(seg.data(dir)));
                continue;
            }
            (Err(why), None) => {
                out.unreadable.push((name, why));
                continue;
            }
        };
        let k = opened.len();
        opened.push((i, covers, live_len.is_some()));
        for (ip, port, h, frame) in hits {
            let take = match window {
                None => true,
                Some(w) if in_window => {
                    if h.end.is_none() && h.start >= w.from && h.start <= w.until {
                        pending.insert((ip, port, h.start));
                    }
                    true
                }
                Some(w) => h.start <= w.until + margin,
            };
            if h.end.is_some() {
                pending.remove(&(ip, port, h.start));
            }
            if take {
                located.insert((k, h.frame), frame);
                let f = flows.entry((ip, port, h.start)).or_insert(FlowHits {
                    frames: Vec::new(),
                    end: None,
                });
                f.frames.push((k, h.frame));
                f.end = f.end.or(h.end);
            }
        }
        for (g, frame) in gaps {
            located.insert((k, g), frame);
            gap_frames.push((k, g));
        }
    }
    // Pass 2: the flows that can matter.
    let mut want: BTreeSet<(usize, u32)> = gap_frames.into_iter().collect();
    match window {
        None => {
            for f in flows.values() {
                want.extend(f.frames.iter().copied());
            }
        }
        Some(w) => {
            let (lo, hi) = (w.from.saturating_add(w.max_age), w.until);
            let mut before: std::collections::HashMap<(IpAddr, u16), (i64, i64)> =
                std::collections::HashMap::new();
            let mut after: std::collections::HashMap<(IpAddr, u16), (i64, i64)> =
                std::collections::HashMap::new();
            for (&(ip, port, start), f) in &flows {
                let may_hold = start <= hi + margin && f.end.is_none_or(|e| e >= lo - margin);
                if may_hold {
                    want.extend(f.frames.iter().copied());
                } else if let Some(e) = f.end.filter(|_| start <= hi + margin) {
                    let b = before.entry((ip, port)).or_insert((e, start));
                    if e > b.0 {
                        *b = (e, start);
                    }
                } else {
                    let a = after.entry((ip, port)).or_insert((start, start));
                    if start < a.0 {
                        *a = (start, start);
                    }
                }
            }
            for (&(ip, port), &(_, start)) in before.iter().chain(after.iter()) {
                if let Some(f) = flows.get(&(ip, port, start)) {
                    want.extend(f.frames.iter().copied());
                }
            }
        }
    }
    // A frame decoded for one flow holds the lines of others on the same
    // endpoint: each of those is read whole (all its frames), or its start
    // line alone would look like a flow still open.
    loop {
        let before = want.len();
        for f in flows.values() {
            if f.frames.iter().any(|x| want.contains(x)) {
                want.extend(f.frames.iter().copied());
            }
        }
        if want.len() == before {
            break;
        }
    }
    let mut current: Option<(usize, File)> = None;
    let mut comp = Vec::new();
    let mut decoder = store::FrameDecoder::new();
    for (k, frame) in want {
        let (i, _, plain) = &opened[k];
        let data = segs[*i].data(dir);
        if current.as_ref().is_none_or(|c| c.0 != k) {
            match File::open(&data) {
                Ok(f) => {
                    current = Some((k, f));
                    out.segments += 1;
                }
                Err(e) => {
                    out.unreadable
                        .push((data.display().to_string(), crate::access::why(&data, &e)));
                    current = None;
                    continue;
                }
            }
        }
        let Some((_, f)) = current.as_mut() else {
            continue;
        };
        let spec = Spec::File(name_as.map_or_else(|| data.clone(), Path::to_path_buf));
        let Some(fr) = located.get(&(k, frame)) else {
            continue;
        };
        comp.resize(fr.comp_len as usize, 0);
        let read = f
            .seek(SeekFrom::Start(fr.comp_offset))
            .and_then(|_| f.read_exact(&mut comp))
            .map_err(|e| e.to_string());
        let raw = match (read, decoder.as_mut()) {
            (Ok(()), _) if *plain => Ok(&comp[..]),
            (Ok(()), Ok(dec)) => dec.decode(&comp, fr.raw_len).map_err(|e| e.to_string()),
            (Ok(()), Err(e)) => Err(e.to_string()),
            (Err(e), _) => Err(e),
        };
        match raw {
            Ok(raw) => {
                out.frames += 1;
                scanner.read_piece(&spec, raw, fr.raw_offset, fr.first_line);
            }
            Err(why) => out.unreadable.push((
                format!("{} frame {frame}", data.display()),
                format!("cannot be decoded: {why}"),
            )),
        }
    }
    // The lines of live segments after what their indexes cover.
    for &(i, (covered_len, covered_lines), _) in opened.iter().filter(|o| o.2) {
        let data = segs[i].data(dir);
        let spec = Spec::File(data.clone());
        out.live_indexed += 1;
        let res = File::open(&data)
            .map_err(|e| crate::access::why(&data, &e))
            .and_then(|mut f| {
                let len = f.metadata().map_err(|e| e.to_string())?.len();
                out.live_tail_bytes += len.saturating_sub(covered_len);
                scanner.read_rest(&spec, &mut f, covered_len, covered_lines + 1)
            });
        if let Err(e) = res {
            out.unreadable.push((data.display().to_string(), e));
        }
    }
    out
}
