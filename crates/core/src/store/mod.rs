//! The evidence store: the plugin's own log, kept in a directory of
//! segments, each closed segment compressed into independently decodable
//! zstd frames with an index, so that a lookup reads a few blocks of an
//! index and decodes a few frames instead of a day of log.
//!
//! # Layout of a store directory
//!
//! ```text
//! masqlog-store                 marker: "masqlog store 1"
//! seg-20261204T170000Z.log      the live segment: plain lines, appended
//! seg-20261204T170000Z.lix      its index so far (see [`live`])
//! seg-20261204T160000Z.zst      closed: the same bytes, zstd frames
//! seg-20261204T160000Z.idx      its index (see [`index`])
//! ```
//!
//! A segment's name is the UTC time it was opened. Its lines are the exact
//! bytes the plugin writes to any destination (one syslog message per
//! line), so `zstdcat seg-*.zst | grep` works and `masqlog verify` checks
//! the seal chain through them unchanged.
//!
//! **Closing** (at a roll, or at the next start for a segment left live):
//! the lines are compressed to `NAME.zst.tmp` and the index written to
//! `NAME.idx.tmp`; both are synced and renamed, the directory synced, and
//! only then is `NAME.log` removed. A crash at any point leaves either the
//! live segment (closed again at the next start; leftover `.tmp` files are
//! removed) or the closed one.
//!
//! **A torn tail** (ulogd killed in the middle of a write) is cut back to
//! the last whole line when the segment is next opened, and the bytes cut
//! are counted ([`Recovered`]).
//!
//! **Evidence offsets.** The offset and line of a line in a closed
//! segment are those in its plain (decompressed) bytes, which are the live
//! segment's bytes: `zstdcat NAME.zst | tail -c +$((OFFSET+1)) | head -1`
//! and `zstdcat NAME.zst | sed -n LINEp` show it.

pub mod index;
pub mod live;
pub mod segment;

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use index::{Frame, Hit, Index, SourceStamp};
pub use live::{LiveIndexer, live_index_path};
pub use segment::{FrameDecoder, SegmentBuilder, whole_lines};

/// The marker file that makes a directory a store.
pub const MARKER: &str = "masqlog-store";
const MARKER_TEXT: &str = "masqlog store 1\n";
/// Mode of the store's files and of the directory it creates.
pub const FILE_MODE: u32 = 0o640;
pub const DIR_MODE: u32 = 0o750;

/// What went wrong in the store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("{path}: {why}")]
    Io { path: String, why: String },
    #[error("store index {path}: {why}")]
    BadIndex { path: String, why: String },
    #[error("zstd: {0}")]
    Compress(io::Error),
    #[error("zstd: {0}")]
    Decompress(io::Error),
    #[error("writing: {0}")]
    Write(io::Error),
}

fn io_err(path: &Path, e: impl std::fmt::Display) -> StoreError {
    StoreError::Io {
        path: path.display().to_string(),
        why: e.to_string(),
    }
}

/// What kind of file a segment is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SegmentKind {
    Live,
    Closed,
}

/// One segment of a store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentFile {
    /// `seg-20261204T170000Z`
    pub name: String,
    /// When it was opened (UTC seconds), from its name.
    pub opened: i64,
    pub kind: SegmentKind,
}

impl SegmentFile {
    pub fn data(&self, dir: &Path) -> PathBuf {
        dir.join(format!(
            "{}.{}",
            self.name,
            if self.kind == SegmentKind::Live {
                "log"
            } else {
                "zst"
            }
        ))
    }
    pub fn index(&self, dir: &Path) -> PathBuf {
        dir.join(format!("{}.idx", self.name))
    }
}

/// `seg-YYYYMMDDTHHMMSSZ` for a time.
pub fn segment_name(secs: i64) -> String {
    let (y, mo, d) = crate::time::civil_from_days(secs.div_euclid(86_400));
    let s = secs.rem_euclid(86_400);
    format!(
        "seg-{y:04}{mo:02}{d:02}T{:02}{:02}{:02}Z",
        s / 3600,
        s % 3600 / 60,
        s % 60
    )
}

/// The time in a segment name.
pub fn parse_segment_name(name: &str) -> Option<i64> {
    let t = name.strip_prefix("seg-")?.strip_suffix('Z')?;
    let (date, time) = t.split_once('T')?;
    if date.len() != 8 || time.len() != 6 || !t.bytes().all(|b| b.is_ascii_digit() || b == b'T') {
        return None;
    }
    let n = |s: &str| s.parse::<i64>().ok();
    let days = crate::time::days_from_civil(
        n(&date[0..4])?,
        n(&date[4..6])? as u32,
        n(&date[6..8])? as u32,
    );
    Some(days * 86_400 + n(&time[0..2])? * 3600 + n(&time[2..4])? * 60 + n(&time[4..6])?)
}

/// Whether `dir` is a store (holds the marker).
pub fn is_store(dir: &Path) -> bool {
    fs::symlink_metadata(dir.join(MARKER)).is_ok_and(|m| m.is_file())
}

/// The segments of a store, oldest first. A live segment whose closed
/// form is complete (a crash after the rename) is listed once, closed.
pub fn list(dir: &Path) -> Result<Vec<SegmentFile>, StoreError> {
    let mut out: Vec<SegmentFile> = Vec::new();
    let rd = fs::read_dir(dir).map_err(|e| io_err(dir, e))?;
    let mut names: Vec<String> = rd
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    names.sort();
    let has = |n: &str| names.binary_search_by(|x| x.as_str().cmp(n)).is_ok();
    for n in &names {
        let (stem, kind) = if let Some(s) = n.strip_suffix(".zst") {
            if !has(&format!("{s}.idx")) {
                continue;
            }
            (s, SegmentKind::Closed)
        } else if let Some(s) = n.strip_suffix(".log") {
            if has(&format!("{s}.zst")) && has(&format!("{s}.idx")) {
                continue;
            }
            (s, SegmentKind::Live)
        } else {
            continue;
        };
        if let Some(opened) = parse_segment_name(stem) {
            out.push(SegmentFile {
                name: stem.to_string(),
                opened,
                kind,
            });
        }
    }
    out.sort_by(|a, b| a.opened.cmp(&b.opened).then(a.name.cmp(&b.name)));
    Ok(out)
}

/// Opens a file of the store for reading or appending without following a
/// symlink; only a regular file is taken.
fn open_nofollow(path: &Path, opts: &mut OpenOptions) -> io::Result<File> {
    let f = opts
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)?;
    let m = f.metadata()?;
    if !m.is_file() || m.nlink() > 1 {
        return Err(io::Error::other(
            "not a regular file with one link: refused",
        ));
    }
    Ok(f)
}

/// Creates a new file of the store (mode 0640, the directory's owner).
fn create(path: &Path, dir_meta: &fs::Metadata) -> io::Result<File> {
    let f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(FILE_MODE)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)?;
    // As the file destination does: ulogd may drop to the directory's
    // owner later, and must still be able to write.
    let _ = std::os::unix::fs::fchown(&f, Some(dir_meta.uid()), Some(dir_meta.gid()));
    Ok(f)
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// What a segment's close made.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Closed {
    pub raw_bytes: u64,
    pub stored_bytes: u64,
    pub frames: usize,
}

/// Compresses and indexes a live segment, then removes it (see the module
/// documentation for the order of the steps). A torn tail is not taken.
pub fn close_segment(dir: &Path, name: &str) -> Result<Closed, StoreError> {
    let log = dir.join(format!("{name}.log"));
    let f = open_nofollow(&log, OpenOptions::new().read(true)).map_err(|e| io_err(&log, e))?;
    let len = f.metadata().map_err(|e| io_err(&log, e))?.len();
    let closed = write_closed(dir, name, &log, f.take(len), SourceStamp::default())?;
    remove_live(dir, name)?;
    Ok(closed)
}

/// Compresses the frames of a live segment that `live` has indexed to its
/// last whole line (so its lines are parsed once, not again at the
/// close): the same files [`close_segment`] writes, byte for byte.
fn close_indexed(
    dir: &Path,
    name: &str,
    log: &File,
    mut index: index::IndexBuilder,
) -> Result<Closed, StoreError> {
    let path = dir.join(format!("{name}.log"));
    let zst_tmp = dir.join(format!("{name}.zst.tmp"));
    let dir_meta = fs::metadata(dir).map_err(|e| io_err(dir, e))?;
    let _ = fs::remove_file(&zst_tmp);
    let out = create(&zst_tmp, &dir_meta).map_err(|e| io_err(&zst_tmp, e))?;
    let mut w = io::BufWriter::new(out);
    let mut c = zstd::bulk::Compressor::new(segment::LEVEL).map_err(StoreError::Compress)?;
    let (mut raw, mut comp) = (Vec::new(), Vec::new());
    let mut at = 0u64;
    let mut raw_total = 0u64;
    for f in index.frames_mut() {
        raw.resize(f.raw_len as usize, 0);
        std::os::unix::fs::FileExt::read_exact_at(log, &mut raw, f.raw_offset)
            .map_err(|e| io_err(&path, e))?;
        comp.clear();
        comp.reserve(zstd::zstd_safe::compress_bound(raw.len()));
        c.compress_to_buffer(&raw, &mut comp)
            .map_err(StoreError::Compress)?;
        w.write_all(&comp).map_err(StoreError::Write)?;
        f.comp_offset = at;
        f.comp_len = comp.len() as u32;
        at += comp.len() as u64;
        raw_total = f.raw_offset + u64::from(f.raw_len);
    }
    let out = w.into_inner().map_err(|e| io_err(&zst_tmp, e.error()))?;
    let bytes = index.finish(SourceStamp {
        len: raw_total,
        ..SourceStamp::default()
    });
    commit(dir, name, &out, &bytes, raw_total, &dir_meta)
}

/// Removes what is left of a closed live segment: its index, then its
/// file.
fn remove_live(dir: &Path, name: &str) -> Result<(), StoreError> {
    let log = dir.join(format!("{name}.log"));
    match fs::remove_file(live_index_path(dir, name)) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => {
            return Err(io_err(&live_index_path(dir, name), e));
        }
        _ => {}
    }
    fs::remove_file(&log).map_err(|e| io_err(&log, e))
}

/// Writes the closed segment `name` (`.zst` and `.idx`) in `dir` from the
/// plain lines `src` gives (`what` names it in errors), by temporary files
/// and renames; a last line without a newline is not taken. `stamp`
/// describes the source for an index of a rotated file (`masqlog index`).
pub fn write_closed(
    dir: &Path,
    name: &str,
    what: &Path,
    src: impl Read,
    stamp: SourceStamp,
) -> Result<Closed, StoreError> {
    let zst_tmp = dir.join(format!("{name}.zst.tmp"));
    let idx_tmp = dir.join(format!("{name}.idx.tmp"));
    let dir_meta = fs::metadata(dir).map_err(|e| io_err(dir, e))?;
    for t in [&zst_tmp, &idx_tmp] {
        let _ = fs::remove_file(t);
    }
    let out = create(&zst_tmp, &dir_meta).map_err(|e| io_err(&zst_tmp, e))?;
    let mut b = SegmentBuilder::new(io::BufWriter::new(out))?;
    let mut r = BufReader::with_capacity(1 << 20, src);
    let mut carry: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; 1 << 20];
    let mut raw = 0u64;
    loop {
        let n = match r.read(&mut chunk) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io_err(what, e)),
        };
        if n == 0 {
            break;
        }
        carry.extend_from_slice(&chunk[..n]);
        let cut = whole_lines(&carry);
        b.push(&carry[..cut])?;
        raw += cut as u64;
        carry.drain(..cut);
    }
    // What is left is a torn last line: not taken.
    let stamp = if stamp == SourceStamp::default() {
        SourceStamp { len: raw, ..stamp }
    } else {
        stamp
    };
    let (w, index) = b.finish(stamp)?;
    let out = w.into_inner().map_err(|e| io_err(&zst_tmp, e.error()))?;
    commit(dir, name, &out, &index, raw, &dir_meta)
}

/// The last steps of a close: the compressed file `NAME.zst.tmp` (`out`,
/// written) synced, the index written to `NAME.idx.tmp` and synced, both
/// renamed, the directory synced.
fn commit(
    dir: &Path,
    name: &str,
    out: &File,
    index: &[u8],
    raw: u64,
    dir_meta: &fs::Metadata,
) -> Result<Closed, StoreError> {
    let zst = dir.join(format!("{name}.zst"));
    let idx = dir.join(format!("{name}.idx"));
    let zst_tmp = dir.join(format!("{name}.zst.tmp"));
    let idx_tmp = dir.join(format!("{name}.idx.tmp"));
    out.sync_all().map_err(|e| io_err(&zst_tmp, e))?;
    let stored = out.metadata().map_err(|e| io_err(&zst_tmp, e))?.len();
    let mut fi = create(&idx_tmp, dir_meta).map_err(|e| io_err(&idx_tmp, e))?;
    fi.write_all(index)
        .and_then(|_| fi.sync_all())
        .map_err(|e| io_err(&idx_tmp, e))?;
    fs::rename(&zst_tmp, &zst).map_err(|e| io_err(&zst, e))?;
    fs::rename(&idx_tmp, &idx).map_err(|e| io_err(&idx, e))?;
    sync_dir(dir).map_err(|e| io_err(dir, e))?;
    let frames = Index::read(&mut &index[..], name).map_or(0, |i| i.frame_count());
    Ok(Closed {
        raw_bytes: raw,
        stored_bytes: stored + index.len() as u64,
        frames,
    })
}

/// Makes `dir` a store (the marker), creating it (0750) when missing.
pub fn init_dir(dir: &Path) -> Result<(), StoreError> {
    if !dir.exists() {
        fs::DirBuilder::new()
            .mode(DIR_MODE)
            .create(dir)
            .map_err(|e| io_err(dir, e))?;
    }
    if !is_store(dir) {
        let meta = fs::metadata(dir).map_err(|e| io_err(dir, e))?;
        let marker = dir.join(MARKER);
        let mut f = create(&marker, &meta).map_err(|e| io_err(&marker, e))?;
        f.write_all(MARKER_TEXT.as_bytes())
            .map_err(|e| io_err(&marker, e))?;
    }
    Ok(())
}

/// How a store is written (ulogd.conf keys `store_dir`,
/// `store_roll_secs`, `store_roll_mb`, `store_keep_days`,
/// `store_max_mb`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreConfig {
    pub dir: PathBuf,
    /// A segment is closed after this long (aligned: hourly segments roll
    /// on the hour).
    pub roll: Duration,
    /// ... or when it holds this many bytes.
    pub roll_bytes: u64,
    /// Closed segments older than this are deleted.
    pub keep: Duration,
    /// ... and the oldest while the store is larger than this (0: no
    /// limit).
    pub max_bytes: u64,
}

/// What opening a store found and repaired.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recovered {
    /// Bytes of torn last lines cut.
    pub torn_bytes: u64,
    /// Live segments left by an earlier run, to close.
    pub to_close: Vec<String>,
}

/// The writer of a store's live segment.
pub struct StoreWriter {
    cfg: StoreConfig,
    dir_meta: fs::Metadata,
    live: Option<Live>,
}

struct Live {
    name: String,
    file: File,
    len: u64,
    /// Roll at this time (seconds).
    until: i64,
}

impl StoreWriter {
    /// Opens (creating when missing, mode 0750) the store directory. Live
    /// segments of an earlier run are cut to their last whole line and
    /// listed to be closed; leftover `.tmp` files are removed.
    pub fn open(cfg: StoreConfig) -> Result<(StoreWriter, Recovered), StoreError> {
        let dir = &cfg.dir;
        match fs::symlink_metadata(dir) {
            Ok(m) if m.file_type().is_symlink() || !m.is_dir() => {
                return Err(io_err(dir, "not a directory (a symlink is not followed)"));
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fs::DirBuilder::new()
                    .mode(DIR_MODE)
                    .create(dir)
                    .map_err(|e| io_err(dir, e))?;
                let _ = fs::set_permissions(dir, fs::Permissions::from_mode(DIR_MODE));
            }
            Err(e) => return Err(io_err(dir, e)),
        }
        let dir_meta = fs::metadata(dir).map_err(|e| io_err(dir, e))?;
        let marker = dir.join(MARKER);
        if !is_store(dir) {
            let mut f = create(&marker, &dir_meta).map_err(|e| io_err(&marker, e))?;
            f.write_all(MARKER_TEXT.as_bytes())
                .map_err(|e| io_err(&marker, e))?;
        }
        let mut rec = Recovered::default();
        for e in fs::read_dir(dir).map_err(|e| io_err(dir, e))?.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if n.ends_with(".tmp") && n.starts_with("seg-") {
                let _ = fs::remove_file(e.path());
            }
        }
        for s in list(dir)? {
            if s.kind != SegmentKind::Live {
                continue;
            }
            let path = s.data(dir);
            let f = open_nofollow(&path, OpenOptions::new().read(true).write(true))
                .map_err(|e| io_err(&path, e))?;
            rec.torn_bytes += cut_torn(&f).map_err(|e| io_err(&path, e))?;
            rec.to_close.push(s.name);
        }
        // A live segment whose closed form is complete: the crash came
        // between the rename and the removal. A live index without its
        // live segment is left from such a crash too.
        for e in fs::read_dir(dir).map_err(|e| io_err(dir, e))?.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if let Some(stem) = n.strip_suffix(".log")
                && dir.join(format!("{stem}.zst")).exists()
                && dir.join(format!("{stem}.idx")).exists()
            {
                let _ = fs::remove_file(live_index_path(dir, stem));
                let _ = fs::remove_file(e.path());
            } else if let Some(stem) = n.strip_suffix(".lix")
                && !dir.join(format!("{stem}.log")).exists()
            {
                let _ = fs::remove_file(e.path());
            }
        }
        Ok((
            StoreWriter {
                cfg,
                dir_meta,
                live: None,
            },
            rec,
        ))
    }

    pub fn config(&self) -> &StoreConfig {
        &self.cfg
    }

    /// The live segment's name, when one is open.
    pub fn live(&self) -> Option<&str> {
        self.live.as_ref().map(|l| l.name.as_str())
    }

    /// The live segment's name and the length of what was written to it
    /// whole (for its index, [`LiveIndexer::advance`]).
    pub fn live_len(&self) -> Option<(&str, u64)> {
        self.live.as_ref().map(|l| (l.name.as_str(), l.len))
    }

    /// Closes the live segment's file (without compressing it): returns
    /// its name, for [`close_segment`].
    pub fn roll(&mut self) -> Option<String> {
        self.live.take().map(|l| l.name)
    }

    /// Appends whole lines at time `now` (seconds); returns the name of a
    /// segment that this rolled (to close off this thread). A write the
    /// disk refuses is cut back to the segment's length before it, so no
    /// half line is left.
    pub fn append(&mut self, lines: &[u8], now: i64) -> Result<Option<String>, StoreError> {
        let mut rolled = None;
        if let Some(l) = &self.live
            && (now >= l.until || l.len >= self.cfg.roll_bytes)
        {
            rolled = self.roll();
        }
        if self.live.is_none() {
            self.live = Some(self.start(now)?);
        }
        let l = self.live.as_mut().expect("opened above");
        let path = self.cfg.dir.join(format!("{}.log", l.name));
        if let Err(e) = l.file.write_all(lines) {
            let _ = l.file.set_len(l.len);
            let _ = l.file.seek(SeekFrom::Start(l.len));
            return Err(io_err(&path, e));
        }
        l.len += lines.len() as u64;
        Ok(rolled)
    }

    /// Flushes the live segment to the disk.
    pub fn sync(&mut self) -> Result<(), StoreError> {
        if let Some(l) = &self.live {
            l.file.sync_data().map_err(|e| io_err(&self.cfg.dir, e))?;
        }
        Ok(())
    }

    fn start(&mut self, now: i64) -> Result<Live, StoreError> {
        let roll = self.cfg.roll.as_secs().max(1) as i64;
        let mut t = now;
        let (name, file) = loop {
            let name = segment_name(t);
            let path = self.cfg.dir.join(format!("{name}.log"));
            let taken = ["log", "zst", "idx"]
                .iter()
                .any(|x| self.cfg.dir.join(format!("{name}.{x}")).exists());
            if !taken {
                let f = OpenOptions::new()
                    .append(true)
                    .create_new(true)
                    .mode(FILE_MODE)
                    .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
                    .open(&path)
                    .map_err(|e| io_err(&path, e))?;
                let _ = std::os::unix::fs::fchown(
                    &f,
                    Some(self.dir_meta.uid()),
                    Some(self.dir_meta.gid()),
                );
                break (name, f);
            }
            t += 1;
        };
        Ok(Live {
            name,
            file,
            len: 0,
            until: (now.div_euclid(roll) + 1) * roll,
        })
    }
}

/// Cuts a file back to its last whole line; returns the bytes cut.
pub fn cut_torn(f: &File) -> io::Result<u64> {
    let len = f.metadata()?.len();
    if len == 0 {
        return Ok(0);
    }
    // Look back for the last newline, 64 KiB at a time.
    let mut end = len;
    let mut buf = vec![0u8; 64 << 10];
    let mut r = f;
    while end > 0 {
        let from = end.saturating_sub(buf.len() as u64);
        let n = (end - from) as usize;
        r.seek(SeekFrom::Start(from))?;
        r.read_exact(&mut buf[..n])?;
        if let Some(k) = memchr::memrchr(b'\n', &buf[..n]) {
            let keep = from + k as u64 + 1;
            if keep < len {
                f.set_len(keep)?;
            }
            return Ok(len - keep);
        }
        end = from;
    }
    f.set_len(0)?;
    Ok(len)
}

/// What retention removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pruned {
    pub segments: usize,
    pub bytes: u64,
}

/// Deletes closed segments past retention: those whose newest line is
/// older than `keep` before `now`, then the oldest while the store is
/// larger than `max_bytes` (0: no limit). The live segment, and segments
/// still within `keep` when no size limit is set, are never deleted.
pub fn prune(dir: &Path, keep: Duration, max_bytes: u64, now: i64) -> Result<Pruned, StoreError> {
    let segs = list(dir)?;
    let mut sizes: Vec<(SegmentFile, u64, i64)> = Vec::new();
    let mut total = 0u64;
    for (i, s) in segs.iter().enumerate() {
        let size = fs::metadata(s.data(dir)).map_or(0, |m| m.len())
            + fs::metadata(s.index(dir)).map_or(0, |m| m.len());
        total += size;
        // Its lines end where the next segment begins (or now).
        let ends = segs.get(i + 1).map_or(now, |n| n.opened);
        sizes.push((s.clone(), size, ends));
    }
    let mut out = Pruned::default();
    let cutoff = now.saturating_sub(keep.as_secs() as i64);
    for (s, size, ends) in &sizes {
        if s.kind != SegmentKind::Closed {
            continue;
        }
        let old = *ends < cutoff;
        let over = max_bytes > 0 && total > max_bytes;
        if !old && !over {
            break;
        }
        fs::remove_file(s.index(dir)).map_err(|e| io_err(&s.index(dir), e))?;
        fs::remove_file(s.data(dir)).map_err(|e| io_err(&s.data(dir), e))?;
        total -= size;
        out.segments += 1;
        out.bytes += size;
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
