//! The on-disk spool: formatted messages the destination could not take
//! yet, kept in order in a directory of segment files, bounded in size, and
//! replayed from the head once the destination is back.
//!
//! Layout of the directory (one per plugin instance; the format is
//! [`masqlog_core::spool_files`]):
//! - `lock`: held with `flock` while an instance uses the spool, so that two
//!   ulogd processes never share one;
//! - `NNNNNNNNNNNNNNNNNNNN.seg`: segments, numbered in write order; each
//!   starts with [`MAGIC`] and holds records `LEN(u32 LE) CRC32(u32 LE)
//!   BYTES`; a new segment starts past [`SEGMENT_BYTES`];
//! - `head`: `SEGMENT OFFSET`, the first record not yet delivered, both
//!   fixed width, rewritten in place after each delivered batch (created
//!   the first time through `head.tmp` and a rename), so recording delivery
//!   needs no free block on a full disk.
//!
//! Every file is reached through the directory's descriptor
//! ([`SpoolDir`]), never by a path a symlink could redirect, and new files
//! are created with `O_EXCL`.
//!
//! What survives what: appended bytes reach the kernel at every
//! [`Spool::flush`], so a `kill -9` of ulogd loses nothing that was flushed;
//! `fdatasync` (and an `fsync` of the directory when files were created or
//! renamed) runs at most every `sync` interval (and on close), which bounds
//! what a power failure can take; a new segment's directory entry is synced
//! at once. A record torn by a crash in the middle of a write fails its
//! length or checksum test when the spool is opened again: the segment is
//! cut there and the loss is reported. A write the disk refuses (`ENOSPC`)
//! is cut off the segment again and its records are counted as lost, once.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use masqlog_core::spool_files::{
    FRAME, Frames, HEAD, frame_len, frames, parse_head, push_frame, seg_name, seg_no,
};
pub(super) use masqlog_core::spool_files::{MAGIC, MAX_RECORD, SEGMENT_BYTES};
use rustix::fs::OFlags;

use super::spooldir::{DirError, SpoolDir};

/// Why the spool could not be opened or written.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("spool directory {dir}: {what}: {source}")]
    Io {
        dir: PathBuf,
        what: String,
        source: io::Error,
    },
    #[error("spool directory {0} is in use by another process (its lock file is held)")]
    Locked(PathBuf),
    #[error("spool directory {dir} is refused: {why}")]
    Unsafe { dir: PathBuf, why: String },
    #[error("the spool is full ({0} bytes)")]
    Full(u64),
    #[error("a {0}-byte message is too large for the spool (at most {MAX_RECORD})")]
    TooLarge(usize),
}

/// What [`Spool::open`] found from an earlier run.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Recovered {
    /// Records waiting for delivery.
    pub records: u64,
    /// Torn or corrupt records cut off (each is reported as lost).
    pub torn: u64,
}

/// A segment on disk.
#[derive(Debug)]
struct Segment {
    no: u64,
    /// Bytes in the file (magic included).
    len: u64,
}

/// The read side: an open head segment and the records peeked from it.
struct ReadPos {
    no: u64,
    /// The offset of the first record not yet consumed.
    offset: u64,
    /// The offset where the next peek continues.
    peek_offset: u64,
    file: BufReader<File>,
}

/// An open spool directory.
pub struct Spool {
    dir: SpoolDir,
    max_bytes: u64,
    sync_every: Duration,
    _lock: File,
    /// In order; the last one is written to. Never empty.
    segments: VecDeque<Segment>,
    tail: File,
    /// Appended, not yet written to `tail`.
    wbuf: Vec<u8>,
    /// Records in `wbuf`.
    wbuf_records: u64,
    /// Records lost by a failed write, not yet taken by [`Spool::take_lost`].
    lost: u64,
    /// Records not yet consumed (on disk or in `wbuf`).
    records: u64,
    /// Bytes of all segments plus `wbuf`.
    bytes: u64,
    read: Option<ReadPos>,
    /// Records peeked and not consumed: (bytes, offset after it).
    peeked: VecDeque<u64>,
    /// `head`, open for rewriting in place (fixed width, so it never needs
    /// a new block: delivery is recorded on a full disk too).
    head: Option<File>,
    /// Segment data written since the last `fdatasync`.
    dirty: bool,
    /// A rename in the directory since its last `fsync`.
    dir_dirty: bool,
    last_sync: Instant,
}

fn io_err(dir: &Path, what: impl Into<String>) -> impl FnOnce(io::Error) -> SpoolError {
    let dir = dir.to_path_buf();
    let what = what.into();
    move |source| SpoolError::Io { dir, what, source }
}

/// Reads one record at the reader's position: `Ok(None)` at a clean end,
/// `Err(())` for a torn or corrupt record.
fn read_record(r: &mut impl Read, out: &mut Vec<u8>) -> Result<Option<()>, ()> {
    let mut hdr = [0u8; 8];
    let mut got = 0;
    while got < hdr.len() {
        match r.read(&mut hdr[got..]) {
            Ok(0) if got == 0 => return Ok(None),
            Ok(0) => return Err(()),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return Err(()),
        }
    }
    // An empty frame (zeros left by a crash, or planted) is never a record.
    let (len, crc) = frame_len(&hdr).ok_or(())?;
    out.clear();
    out.resize(len, 0);
    r.read_exact(out).map_err(|_| ())?;
    if crc32fast::hash(out) != crc {
        return Err(());
    }
    Ok(Some(()))
}

impl Spool {
    /// Opens (creating it, mode 0700) the spool directory `dir`, takes its
    /// lock and checks every segment; what an earlier run left is replayed
    /// first.
    ///
    /// # Errors
    ///
    /// `Unsafe` for a directory that is a symlink, writable by others or
    /// owned by a stranger; `Locked` when another process holds it; `Io`
    /// when it cannot be created, read or written.
    pub fn open(
        dir: &Path,
        max_bytes: u64,
        sync_every: Duration,
    ) -> Result<(Spool, Recovered), SpoolError> {
        let sd = SpoolDir::open(dir).map_err(|e| match e {
            DirError::Io(what, source) => io_err(dir, what)(source),
            DirError::Unsafe(why) => SpoolError::Unsafe {
                dir: dir.to_path_buf(),
                why,
            },
        })?;
        let lock = sd
            .open_file("lock", OFlags::WRONLY | OFlags::CREATE)
            .map_err(io_err(dir, "opening its lock file"))?;
        // Held elsewhere: another ulogd, or for an instant a child process
        // that a thread of this one forked and that has not run exec yet.
        let mut tries = 0;
        loop {
            match lock.try_lock() {
                Ok(()) => break,
                Err(std::fs::TryLockError::WouldBlock) if tries < 20 => {
                    tries += 1;
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(std::fs::TryLockError::WouldBlock) => {
                    return Err(SpoolError::Locked(dir.to_path_buf()));
                }
                Err(std::fs::TryLockError::Error(e)) => {
                    return Err(io_err(dir, "locking it")(e));
                }
            }
        }
        let mut nos: Vec<u64> = sd
            .names()
            .map_err(io_err(dir, "listing it"))?
            .iter()
            .filter_map(|n| seg_no(n))
            .collect();
        nos.sort_unstable();
        // A rewrite a crash interrupted.
        for n in sd.names().map_err(io_err(dir, "listing it"))? {
            if n.ends_with(".seg.tmp") {
                sd.remove_if_there(&n)
                    .map_err(io_err(dir, format!("removing {n}")))?;
            }
        }
        let (head_no, mut head_off) = Self::read_head(&sd);
        let mut head_moved = false;
        let mut rec = Recovered::default();
        let mut segments = VecDeque::new();
        for no in nos {
            if no < head_no {
                // Delivered before a crash kept us from removing it.
                sd.remove(&seg_name(no))
                    .map_err(io_err(dir, format!("removing {}", seg_name(no))))?;
                continue;
            }
            let (len, records, torn, moved) =
                Self::check_segment(&sd, no, if no == head_no { head_off } else { 0 })?;
            if no == head_no
                && let Some(off) = moved
            {
                // The segment was rewritten: the head moves with its record.
                head_off = off;
                head_moved = true;
            }
            rec.records += records;
            rec.torn += torn;
            segments.push_back(Segment { no, len });
        }
        let next_no = segments.back().map_or(head_no.max(1), |s| s.no);
        let tail = if let Some(s) = segments.back().filter(|s| s.len < SEGMENT_BYTES) {
            sd.open_file(&seg_name(s.no), OFlags::WRONLY | OFlags::APPEND)
                .map_err(io_err(dir, "opening the last segment"))?
        } else {
            let no = if segments.is_empty() {
                next_no
            } else {
                next_no + 1
            };
            let f = Self::create_segment(&sd, no)?;
            segments.push_back(Segment {
                no,
                len: MAGIC.len() as u64,
            });
            f
        };
        let bytes = segments.iter().map(|s| s.len).sum();
        let mut spool = Spool {
            dir: sd,
            max_bytes,
            sync_every,
            _lock: lock,
            segments,
            tail,
            wbuf: Vec::new(),
            wbuf_records: 0,
            lost: 0,
            records: rec.records,
            bytes,
            read: None,
            peeked: VecDeque::new(),
            head: None,
            dirty: false,
            dir_dirty: false,
            last_sync: Instant::now(),
        };
        let first = spool.segments.front().map_or(0, |s| s.no);
        let offset = if first == head_no {
            head_off.max(MAGIC.len() as u64)
        } else {
            MAGIC.len() as u64
        };
        if head_moved {
            spool.write_head(head_no, head_off)?;
        }
        spool.open_read(first, offset)?;
        if spool.records == 0 {
            spool.reset()?;
        }
        Ok((spool, rec))
    }

    /// The directory, held open (the disk lane lives in it too).
    pub fn dir(&self) -> &SpoolDir {
        &self.dir
    }

    /// `head` says where delivery stopped; missing or unreadable: at the
    /// start of the first segment.
    fn read_head(dir: &SpoolDir) -> (u64, u64) {
        let mut text = String::new();
        if let Ok(f) = dir.open_file(HEAD, OFlags::RDONLY) {
            let _ = f.take(256).read_to_string(&mut text);
        }
        parse_head(&text)
    }

    /// Counts the records of a segment from `from`. Damage costs only what
    /// it hit: after a bad frame the reading resynchronises on the next
    /// whole frame (one followed by another whole frame or by the end), and
    /// the segment is rewritten without the damaged bytes; damage with no
    /// whole frame after it is a torn tail, cut off. Each damaged stretch
    /// counts as one lost record. Returns (length, records, damaged, the
    /// new offset of `from` when the segment was rewritten).
    fn check_segment(
        sd: &SpoolDir,
        no: u64,
        from: u64,
    ) -> Result<(u64, u64, u64, Option<u64>), SpoolError> {
        let name = seg_name(no);
        let dir = sd.path();
        let what = || format!("reading {name}");
        let mut file = sd
            .open_file(&name, OFlags::RDWR)
            .map_err(io_err(dir, what()))?;
        let mut b = Vec::new();
        (&file)
            .take(SEGMENT_BYTES + 2 * (MAX_RECORD as u64 + FRAME))
            .read_to_end(&mut b)
            .map_err(io_err(dir, what()))?;
        let Some(Frames {
            good,
            damaged,
            in_the_middle,
        }) = frames(&b)
        else {
            // Not a segment of ours, or cut before its first byte was
            // written: nothing in it can be read.
            let torn = u64::from(!b.is_empty());
            file.set_len(0).map_err(io_err(dir, what()))?;
            file.seek(SeekFrom::Start(0)).map_err(io_err(dir, what()))?;
            file.write_all(MAGIC).map_err(io_err(dir, what()))?;
            return Ok((MAGIC.len() as u64, 0, torn, None));
        };
        let records = good
            .iter()
            .filter(|(start, _)| *start as u64 >= from)
            .count() as u64;
        if damaged == 0 {
            return Ok((b.len() as u64, records, 0, None));
        }
        if !in_the_middle {
            let cut = good.last().map_or(MAGIC.len(), |g| g.1) as u64;
            file.set_len(cut).map_err(io_err(dir, what()))?;
            return Ok((cut, records, damaged, None));
        }
        // Rewrite the segment from its whole frames: a new file beside it,
        // synced, renamed over it, the directory synced.
        let mut out = Vec::with_capacity(b.len());
        out.extend_from_slice(MAGIC);
        let mut new_from = None;
        for &(start, end) in &good {
            if new_from.is_none() && start as u64 >= from {
                new_from = Some(out.len() as u64);
            }
            out.extend_from_slice(&b[start..end]);
        }
        let tmp = format!("{name}.tmp");
        sd.remove_if_there(&tmp)
            .and_then(|()| sd.create_new(&tmp))
            .and_then(|mut f| f.write_all(&out).and_then(|()| f.sync_all()))
            .and_then(|()| sd.rename(&tmp, &name))
            .and_then(|()| sd.sync())
            .map_err(io_err(dir, format!("rewriting {name} without its damage")))?;
        let len = out.len() as u64;
        Ok((len, records, damaged, Some(new_from.unwrap_or(len))))
    }

    /// Creates segment `no` with its magic; its directory entry is synced
    /// at once. A segment the disk had no room for is removed again.
    fn create_segment(sd: &SpoolDir, no: u64) -> Result<File, SpoolError> {
        let name = seg_name(no);
        let mut f = sd
            .open_file(
                &name,
                OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::APPEND,
            )
            .map_err(io_err(sd.path(), format!("creating {name}")))?;
        if let Err(e) = f.write_all(MAGIC).and_then(|()| sd.sync()) {
            drop(f);
            let _ = sd.remove(&name);
            return Err(io_err(sd.path(), format!("writing {name}"))(e));
        }
        Ok(f)
    }

    fn open_read(&mut self, no: u64, offset: u64) -> Result<(), SpoolError> {
        let name = seg_name(no);
        let dir = self.dir.path();
        let mut f = self
            .dir
            .open_file(&name, OFlags::RDONLY)
            .map_err(io_err(dir, format!("opening {name}")))?;
        f.seek(SeekFrom::Start(offset))
            .map_err(io_err(dir, format!("reading {name}")))?;
        self.read = Some(ReadPos {
            no,
            offset,
            peek_offset: offset,
            file: BufReader::with_capacity(64 << 10, f),
        });
        self.peeked.clear();
        Ok(())
    }

    /// Records lost by failed writes since the last call.
    pub fn take_lost(&mut self) -> u64 {
        std::mem::take(&mut self.lost)
    }

    /// Records waiting (written or buffered, not yet consumed).
    pub fn records(&self) -> u64 {
        self.records
    }

    pub fn is_empty(&self) -> bool {
        self.records == 0
    }

    /// Whether a message of `len` bytes fits.
    pub fn has_room(&self, len: usize) -> bool {
        self.bytes + FRAME + len as u64 <= self.max_bytes
    }

    /// Appends one message (buffered until [`Spool::flush`]).
    ///
    /// # Errors
    ///
    /// `TooLarge`, `Full`, or `Io` when a new segment cannot be started
    /// (the records buffered before it are then lost too, and
    /// [`Spool::take_lost`] counts them; this one is not).
    pub fn append(&mut self, msg: &[u8]) -> Result<(), SpoolError> {
        if msg.len() > MAX_RECORD {
            return Err(SpoolError::TooLarge(msg.len()));
        }
        if msg.is_empty() {
            // Nothing to keep, and an empty frame would read back as damage.
            return Ok(());
        }
        if !self.has_room(msg.len()) {
            return Err(SpoolError::Full(self.max_bytes));
        }
        let tail_len = self.segments.back().map_or(0, |s| s.len) + self.wbuf.len() as u64;
        if tail_len >= SEGMENT_BYTES {
            self.flush()?;
            let no = self.segments.back().map_or(1, |s| s.no + 1);
            self.tail = Self::create_segment(&self.dir, no)?;
            self.segments.push_back(Segment {
                no,
                len: MAGIC.len() as u64,
            });
            self.bytes += MAGIC.len() as u64;
        }
        push_frame(&mut self.wbuf, msg);
        self.bytes += FRAME + msg.len() as u64;
        self.records += 1;
        self.wbuf_records += 1;
        Ok(())
    }

    /// Writes what was appended to the kernel; `fdatasync`s when the sync
    /// interval passed (or `force`).
    ///
    /// # Errors
    ///
    /// `Io` when the write fails; the buffered records are then lost, and
    /// [`Spool::take_lost`] says how many.
    pub fn flush(&mut self) -> Result<(), SpoolError> {
        self.flush_with(false)
    }

    /// `flush` and `fdatasync` now.
    pub fn sync(&mut self) -> Result<(), SpoolError> {
        self.flush_with(true)
    }

    fn flush_with(&mut self, force: bool) -> Result<(), SpoolError> {
        if !self.wbuf.is_empty() {
            let written = self.tail.write_all(&self.wbuf);
            let pending = self.wbuf.len() as u64;
            let records = std::mem::take(&mut self.wbuf_records);
            self.wbuf.clear();
            let seg = self.segments.back_mut().expect("never empty");
            if let Err(e) = written {
                // Cut what part of it reached the file: the segment ends
                // with a whole record again.
                let _ = self.tail.set_len(seg.len);
                let _ = self.tail.seek(SeekFrom::Start(seg.len));
                self.bytes -= pending;
                self.records -= records;
                self.lost += records;
                return Err(io_err(self.dir.path(), "writing a segment")(e));
            }
            seg.len += pending;
            self.dirty = true;
        }
        let due = force || self.last_sync.elapsed() >= self.sync_every;
        if (self.dirty || self.dir_dirty) && due {
            if self.dirty {
                self.tail
                    .sync_data()
                    .map_err(io_err(self.dir.path(), "syncing a segment"))?;
            }
            if self.dir_dirty {
                self.dir
                    .sync()
                    .map_err(io_err(self.dir.path(), "syncing the directory"))?;
            }
            self.dirty = false;
            self.dir_dirty = false;
            self.last_sync = Instant::now();
        }
        Ok(())
    }

    /// Reads up to `max` records after those already peeked, each into the
    /// next buffer of `out` (pushed). Returns how many were read.
    ///
    /// # Errors
    ///
    /// `Io` when a segment cannot be read.
    pub fn peek(&mut self, max: usize, out: &mut Vec<Vec<u8>>) -> Result<usize, SpoolError> {
        self.flush()?;
        let mut n = 0;
        while n < max && (self.peeked.len() as u64) < self.records {
            let Some(read) = self.read.as_mut() else {
                break;
            };
            let mut buf = Vec::new();
            match read_record(&mut read.file, &mut buf) {
                Ok(Some(())) => {
                    read.peek_offset += FRAME + buf.len() as u64;
                    self.peeked.push_back(read.peek_offset);
                    out.push(buf);
                    n += 1;
                }
                Ok(None) | Err(()) => {
                    // End of this segment: the next one, if any. (A
                    // corrupt record was cut at open; none is written
                    // since.)
                    let no = read.no;
                    let Some(next) = self.segments.iter().find(|s| s.no > no).map(|s| s.no) else {
                        break;
                    };
                    if !self.peeked.is_empty() {
                        // Consume up to the segment's end before moving on.
                        break;
                    }
                    self.drop_segment(no)?;
                    self.open_read(next, MAGIC.len() as u64)?;
                }
            }
        }
        Ok(n)
    }

    fn drop_segment(&mut self, no: u64) -> Result<(), SpoolError> {
        if let Some(i) = self.segments.iter().position(|s| s.no == no) {
            let s = self.segments.remove(i).expect("index found");
            self.bytes -= s.len;
            let name = seg_name(no);
            self.dir
                .remove(&name)
                .map_err(io_err(self.dir.path(), format!("removing {name}")))?;
            self.dir_dirty = true;
        }
        Ok(())
    }

    /// Marks the first `n` peeked records delivered and records the new
    /// head on disk; an emptied spool starts over with a fresh segment.
    ///
    /// # Errors
    ///
    /// `Io` when the head file cannot be written.
    pub fn consume(&mut self, n: usize) -> Result<(), SpoolError> {
        let n = n.min(self.peeked.len());
        if n == 0 {
            return Ok(());
        }
        let offset = self.peeked[n - 1];
        self.peeked.drain(..n);
        self.records -= n as u64;
        let Some(read) = self.read.as_mut() else {
            return Ok(());
        };
        read.offset = offset;
        let no = read.no;
        if self.records == 0 {
            return self.reset();
        }
        self.write_head(no, offset)
    }

    /// Forgets what was peeked: the next peek starts at the head again.
    ///
    /// # Errors
    ///
    /// `Io` when the head segment cannot be reopened.
    pub fn rewind(&mut self) -> Result<(), SpoolError> {
        if let Some(read) = &self.read {
            let (no, offset) = (read.no, read.offset);
            self.open_read(no, offset)?;
        }
        Ok(())
    }

    /// Records the head: rewritten in place, fixed width, once the file
    /// exists; created the first time (written to `head.tmp`, renamed). A
    /// `head.tmp` left by a crash (or planted) goes first: the new one is
    /// created (`O_EXCL`), never opened through what is there.
    fn write_head(&mut self, no: u64, offset: u64) -> Result<(), SpoolError> {
        let text = format!("{no:020} {offset:020}\n");
        if self.head.is_none() {
            self.head = self
                .dir
                .open_file(HEAD, OFlags::WRONLY)
                .ok()
                .filter(|f| f.metadata().is_ok_and(|m| m.len() == text.len() as u64));
        }
        if let Some(f) = &self.head {
            use std::os::unix::fs::FileExt;
            return f
                .write_all_at(text.as_bytes(), 0)
                .map_err(io_err(self.dir.path(), "writing head"));
        }
        let tmp = "head.tmp";
        let f = self
            .dir
            .remove_if_there(tmp)
            .and_then(|()| self.dir.create_new(tmp))
            .and_then(|mut f| f.write_all(text.as_bytes()).map(|()| f))
            .map_err(io_err(self.dir.path(), "writing head.tmp"))?;
        self.dir
            .rename(tmp, HEAD)
            .map_err(io_err(self.dir.path(), "replacing head"))?;
        self.dir_dirty = true;
        self.head = Some(f);
        Ok(())
    }

    /// Everything was delivered: the last segment is emptied (truncating
    /// frees room and needs none, which matters on a full disk) and every
    /// other one removed. Cut first, head after: a crash between the two
    /// leaves a head past the end, which reads as empty.
    fn reset(&mut self) -> Result<(), SpoolError> {
        self.flush()?;
        let tail = self.segments.pop_back().expect("never empty");
        let no = tail.no;
        let old = std::mem::replace(
            &mut self.segments,
            VecDeque::from([Segment {
                no,
                len: MAGIC.len() as u64,
            }]),
        );
        self.bytes = MAGIC.len() as u64;
        self.records = 0;
        self.tail.set_len(MAGIC.len() as u64).map_err(io_err(
            self.dir.path(),
            format!("emptying {}", seg_name(no)),
        ))?;
        for s in old {
            let name = seg_name(s.no);
            self.dir
                .remove(&name)
                .map_err(io_err(self.dir.path(), format!("removing {name}")))?;
            self.dir_dirty = true;
        }
        self.write_head(no, MAGIC.len() as u64)?;
        self.open_read(no, MAGIC.len() as u64)
    }
}

impl Drop for Spool {
    fn drop(&mut self) {
        let _ = self.sync();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::testutil::temp_dir;
    use masqlog_core::spool_files::frame_at;
    use std::fs::{self, OpenOptions};
    use std::os::unix::fs::MetadataExt;

    fn open(dir: &Path, max: u64) -> (Spool, Recovered) {
        Spool::open(dir, max, Duration::from_secs(1)).unwrap()
    }

    /// The segment files in `dir`.
    fn segments(dir: &Path) -> Vec<std::path::PathBuf> {
        fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "seg"))
            .collect()
    }

    fn drain(s: &mut Spool) -> Vec<String> {
        let mut all = Vec::new();
        loop {
            let mut out = Vec::new();
            let n = s.peek(7, &mut out).unwrap();
            if n == 0 {
                break;
            }
            s.consume(n).unwrap();
            all.extend(out.into_iter().map(|b| String::from_utf8(b).unwrap()));
        }
        all
    }

    /// A spool in `dir` holding `msgs`, `delivered` of them consumed;
    /// returns its (last) segment.
    fn spooled(dir: &Path, msgs: &[&str], delivered: usize) -> PathBuf {
        let (mut s, _) = open(dir, 1 << 20);
        for m in msgs {
            s.append(m.as_bytes()).unwrap();
        }
        s.flush().unwrap();
        if delivered > 0 {
            let mut out = Vec::new();
            assert_eq!(s.peek(delivered, &mut out).unwrap(), delivered);
            s.consume(delivered).unwrap();
        }
        drop(s);
        segments(dir).pop().unwrap()
    }

    #[test]
    fn what_the_spool_creates_belongs_to_the_owner_of_spool_dir() {
        let d = temp_dir("spool-owner");
        let parent = d.path().join("spool");
        fs::create_dir(&parent).unwrap();
        // nobody:nogroup, as ulogd --uid would run; only root can do this
        if std::os::unix::fs::chown(&parent, Some(65534), Some(65534)).is_err() {
            eprintln!("SKIP: not root");
            return;
        }
        let dir = parent.join("masq1");
        let (mut s, _) = open(&dir, 1 << 20);
        s.append(b"x").unwrap();
        let mut out = Vec::new();
        s.peek(1, &mut out).unwrap();
        s.append(b"y").unwrap();
        s.consume(1).unwrap();
        for e in fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            let m = fs::metadata(&p).unwrap();
            assert_eq!((m.uid(), m.gid()), (65534, 65534), "{}", p.display());
        }
        assert_eq!(fs::metadata(&dir).unwrap().uid(), 65534);
    }

    #[test]
    fn records_come_back_in_order_once() {
        let d = temp_dir("spool-order");
        let (mut s, rec) = open(d.path(), 1 << 20);
        assert_eq!(rec, Recovered::default());
        for i in 0..20 {
            s.append(format!("m{i}").as_bytes()).unwrap();
        }
        assert_eq!(s.records(), 20);
        let got = drain(&mut s);
        assert_eq!(got, (0..20).map(|i| format!("m{i}")).collect::<Vec<_>>());
        assert!(s.is_empty());
        s.append(b"again").unwrap();
        assert_eq!(drain(&mut s), vec!["again".to_string()]);
    }

    #[test]
    fn a_reopened_spool_replays_what_was_not_consumed() {
        let d = temp_dir("spool-reopen");
        {
            let (mut s, _) = open(d.path(), 1 << 20);
            for i in 0..10 {
                s.append(format!("m{i}").as_bytes()).unwrap();
            }
            let mut out = Vec::new();
            assert_eq!(s.peek(4, &mut out).unwrap(), 4);
            s.consume(3).unwrap();
            s.flush().unwrap();
            // dropped without consuming the rest (a crash after a flush)
        }
        let (mut s, rec) = open(d.path(), 1 << 20);
        assert_eq!(rec.records, 7);
        assert_eq!(rec.torn, 0);
        let got = drain(&mut s);
        assert_eq!(got, (3..10).map(|i| format!("m{i}")).collect::<Vec<_>>());
    }

    #[test]
    fn a_second_opener_is_refused_while_the_lock_is_held() {
        let d = temp_dir("spool-lock");
        let (_s, _) = open(d.path(), 1 << 20);
        match Spool::open(d.path(), 1 << 20, Duration::ZERO) {
            Err(SpoolError::Locked(p)) => assert_eq!(p, d.path()),
            Err(e) => panic!("{e}"),
            Ok(_) => panic!("opened twice"),
        }
    }

    #[test]
    fn the_size_bound_refuses_and_counts_nothing_extra() {
        let d = temp_dir("spool-full");
        let (mut s, _) = open(d.path(), 200);
        let msg = [b'x'; 40];
        let mut n = 0;
        while s.append(&msg).is_ok() {
            n += 1;
        }
        assert_eq!(n, (200 - MAGIC.len()) / 48);
        assert!(matches!(s.append(&msg), Err(SpoolError::Full(200))));
        assert_eq!(s.records(), n as u64);
        assert!(matches!(
            s.append(&vec![0; MAX_RECORD + 1]),
            Err(SpoolError::TooLarge(_))
        ));
    }

    /// A file that must come through untouched: content and mode.
    fn victim(dir: &Path) -> (PathBuf, fs::Metadata) {
        let v = dir.join("victim");
        fs::write(&v, b"precious\n").unwrap();
        (v.clone(), fs::metadata(&v).unwrap())
    }

    fn untouched(v: &(PathBuf, fs::Metadata)) {
        assert_eq!(fs::read(&v.0).unwrap(), b"precious\n");
        let now = fs::metadata(&v.0).unwrap();
        assert_eq!(
            (now.uid(), now.gid(), now.mode()),
            (v.1.uid(), v.1.gid(), v.1.mode())
        );
    }

    #[test]
    fn a_symlinked_spool_directory_is_refused() {
        let d = temp_dir("spool-dirlink");
        let v = victim(d.path());
        let real = d.path().join("elsewhere");
        fs::create_dir(&real).unwrap();
        let link = d.path().join("masq1");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let Err(e) = Spool::open(&link, 1 << 20, Duration::from_secs(1)) else {
            panic!("a symlinked spool directory was opened");
        };
        assert!(e.to_string().contains("is a symlink"), "{e}");
        assert_eq!(fs::read_dir(&real).unwrap().count(), 0);
        untouched(&v);
    }

    #[test]
    fn a_spool_directory_others_may_write_to_is_refused() {
        let d = temp_dir("spool-mode");
        let dir = d.path().join("masq1");
        fs::create_dir(&dir).unwrap();
        fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
        let Err(e) = Spool::open(&dir, 1 << 20, Duration::from_secs(1)) else {
            panic!("a spool directory of mode 0777 was opened");
        };
        assert!(e.to_string().contains("mode 777"), "{e}");
    }

    #[test]
    fn planted_symlinks_in_the_spool_reach_no_other_file() {
        for name in ["lock", "00000000000000000001.seg", "head"] {
            let d = temp_dir("spool-plant");
            let v = victim(d.path());
            let dir = d.path().join("masq1");
            fs::create_dir(&dir).unwrap();
            std::os::unix::fs::symlink(&v.0, dir.join(name)).unwrap();
            // Refused, or opened without following the link: either way
            // the victim keeps its bytes, mode and owner.
            let _ = Spool::open(&dir, 1 << 20, Duration::from_secs(1));
            untouched(&v);
        }
        // head.tmp: replaced, not written through, when delivery is marked.
        let d = temp_dir("spool-headtmp");
        let v = victim(d.path());
        let dir = d.path().join("masq1");
        {
            let (mut s, _) = open(&dir, 1 << 20);
            std::os::unix::fs::symlink(&v.0, dir.join("head.tmp")).unwrap();
            s.append(b"one").unwrap();
            s.append(b"two").unwrap();
            s.flush().unwrap();
            let mut out = Vec::new();
            assert_eq!(s.peek(1, &mut out).unwrap(), 1);
            s.consume(1).unwrap();
        }
        untouched(&v);
        let (mut s, rec) = open(&dir, 1 << 20);
        assert_eq!(rec.records, 1);
        assert_eq!(drain(&mut s), vec!["two"]);
    }

    #[test]
    fn an_all_zero_frame_is_never_a_record() {
        let d = temp_dir("spool-zero");
        // The empty message is not kept.
        let seg = spooled(d.path(), &["one", ""], 0);
        // Zeros where a record would follow (a crash on some file systems
        // leaves them).
        OpenOptions::new()
            .append(true)
            .open(&seg)
            .unwrap()
            .write_all(&[0u8; 64])
            .unwrap();
        let (mut s, rec) = open(d.path(), 1 << 20);
        assert_eq!(
            rec,
            Recovered {
                records: 1,
                torn: 1
            }
        );
        assert_eq!(drain(&mut s), vec!["one"]);
    }

    #[test]
    fn a_torn_tail_is_cut_and_reported() {
        let d = temp_dir("spool-torn");
        let seg = spooled(d.path(), &["one", "two"], 0);
        let len = fs::metadata(&seg).unwrap().len();
        // a crash in the middle of the second record
        OpenOptions::new()
            .write(true)
            .open(&seg)
            .unwrap()
            .set_len(len - 2)
            .unwrap();
        let (mut s, rec) = open(d.path(), 1 << 20);
        assert_eq!(
            rec,
            Recovered {
                records: 1,
                torn: 1
            }
        );
        s.append(b"three").unwrap();
        assert_eq!(drain(&mut s), vec!["one", "three"]);
    }

    #[test]
    fn a_corrupt_byte_fails_the_checksum() {
        let d = temp_dir("spool-crc");
        let seg = spooled(d.path(), &["good", "evidence"], 0);
        let mut bytes = fs::read(&seg).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0x20;
        fs::write(&seg, bytes).unwrap();
        let (mut s, rec) = open(d.path(), 1 << 20);
        assert_eq!(
            rec,
            Recovered {
                records: 1,
                torn: 1
            }
        );
        assert_eq!(drain(&mut s), vec!["good"]);
    }

    /// The byte offsets where each record's frame starts in `seg`.
    fn frame_starts(seg: &Path) -> Vec<usize> {
        let b = fs::read(seg).unwrap();
        let mut starts = Vec::new();
        let mut pos = MAGIC.len();
        while let Some(end) = frame_at(&b, pos) {
            starts.push(pos);
            pos = end;
        }
        starts
    }

    #[test]
    fn damage_in_the_middle_costs_only_the_record_it_hit() {
        // A flipped payload byte, then a flipped length byte.
        for (i, at) in [(0usize, FRAME as usize + 1), (1, 0)] {
            let d = temp_dir("spool-resync");
            let seg = spooled(d.path(), &["one", "two", "three", "four"], 0);
            let starts = frame_starts(&seg);
            let mut bytes = fs::read(&seg).unwrap();
            bytes[starts[i + 1] + at] ^= 0x55;
            fs::write(&seg, bytes).unwrap();
            let (mut s, rec) = open(d.path(), 1 << 20);
            assert_eq!(
                rec,
                Recovered {
                    records: 3,
                    torn: 1
                },
                "case {i}"
            );
            let want: Vec<&str> = ["one", "two", "three", "four"]
                .into_iter()
                .enumerate()
                .filter(|(k, _)| *k != i + 1)
                .map(|(_, m)| m)
                .collect();
            assert_eq!(drain(&mut s), want, "case {i}");
        }
    }

    #[test]
    fn damage_after_the_head_keeps_the_head_on_its_record() {
        let d = temp_dir("spool-resync-head");
        let seg = spooled(d.path(), &["one", "two", "three", "four"], 1);
        let starts = frame_starts(&seg);
        let mut bytes = fs::read(&seg).unwrap();
        bytes[starts[2] + FRAME as usize] ^= 0x01;
        fs::write(&seg, bytes).unwrap();
        let (mut s, rec) = open(d.path(), 1 << 20);
        assert_eq!(
            rec,
            Recovered {
                records: 2,
                torn: 1
            }
        );
        assert_eq!(drain(&mut s), vec!["two", "four"]);
        drop(s);
        // The rewritten segment and head stand: a third opening finds
        // nothing damaged and nothing left.
        let (_, rec) = open(d.path(), 1 << 20);
        assert_eq!(rec, Recovered::default());
    }

    #[test]
    fn a_full_disk_loses_what_it_refused_counted_once_and_the_count_matches_the_disk() {
        use crate::sink::testutil::TinyDisk;
        let Some(disk) = TinyDisk::mount("spool-enospc", 64) else {
            eprintln!("SKIP: cannot mount a tmpfs (not root)");
            return;
        };
        let dir = disk.path().join("masq1");
        let (mut s, _) = open(&dir, 16 << 20);
        let msg = [b'z'; 700];
        let (mut accepted, mut lost, mut failures) = (0u64, 0u64, 0);
        for i in 0..400 {
            if s.append(&msg).is_ok() {
                accepted += 1;
            } else {
                failures += 1;
            }
            lost += s.take_lost();
            if i % 5 == 4 && s.flush().is_err() {
                failures += 1;
                lost += s.take_lost();
            }
        }
        if s.flush().is_err() {
            lost += s.take_lost();
        }
        assert!(failures > 0, "64 KiB took 280 KB");
        assert!(lost > 0);
        // What the spool says it holds is on the disk, record for record.
        let on_disk = masqlog_core::spool_files::survey(&dir).unwrap().unwrap();
        assert_eq!(s.records(), accepted - lost);
        assert_eq!(on_disk.records, s.records());
        // Delivering frees room: the spool takes records again, and a
        // reopening finds exactly what it holds.
        let mut out = Vec::new();
        let n = s.peek(40, &mut out).unwrap();
        s.consume(n).unwrap();
        s.append(b"after").unwrap();
        s.flush().unwrap();
        let held = s.records();
        drop(s);
        let (mut s, rec) = open(&dir, 16 << 20);
        assert_eq!((rec.records, rec.torn), (held, 0));
        assert_eq!(drain(&mut s).last().map(String::as_str), Some("after"));
    }

    #[test]
    fn segments_roll_over_and_are_removed_once_delivered() {
        let d = temp_dir("spool-segments");
        let (mut s, _) = open(d.path(), 64 << 20);
        let msg = vec![b'y'; 60_000];
        let n = (3 * SEGMENT_BYTES / 60_000) as usize;
        for _ in 0..n {
            s.append(&msg).unwrap();
        }
        s.flush().unwrap();
        let count = || segments(d.path()).len();
        assert!(count() >= 3, "{}", count());
        let mut out = Vec::new();
        let mut got = 0;
        while got < n / 2 {
            out.clear();
            let k = s.peek(16, &mut out).unwrap();
            s.consume(k).unwrap();
            got += k;
        }
        assert!(count() < 3, "{}", count());
        // the rest survives a reopen
        drop(s);
        let (mut s, rec) = open(d.path(), 64 << 20);
        assert_eq!(rec.records as usize, n - got);
        assert_eq!(drain(&mut s).len(), n - got);
        assert_eq!(count(), 1);
    }
}
