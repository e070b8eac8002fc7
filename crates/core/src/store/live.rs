//! The index of the live segment (`NAME.lix` beside `NAME.log`): the
//! store's own thread reads the lines the writer has appended, cuts them
//! into frames of about [`FRAME_RAW`](super::segment::FRAME_RAW) plain
//! bytes as a closed segment's are (but not compressed: a frame is the
//! byte range of the plain file) and writes their [`Index`](super::Index),
//! again as the segment grows, by a temporary file and a rename.
//!
//! The index covers the file's first `stamp.len` bytes (whole frames); a
//! lookup searches it and reads the rest of the file (the lines since the
//! last frame) as plain lines. A new index is written when the frames
//! have grown by [`MIN_STEP`] and by a [`STEP_DIVISOR`]th of what the last
//! one covered, so the plain rest stays a small part of the segment while
//! rewriting the index costs a bounded multiple of its final size.
//!
//! The file is only ever appended to by its writer (a write the disk
//! refuses is cut back to the length before it, and only lengths the
//! writer has completed are given to [`LiveIndexer::advance`]), so an
//! index of its first bytes stays true until the segment is closed; the
//! close removes the index first, then the live file.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::index::SourceStamp;
use super::segment::{SegmentBuilder, whole_lines};
use super::{Closed, StoreError, close_indexed, create, io_err, open_nofollow, remove_live};

/// A new index is written when its frames grew by at least this ...
pub const MIN_STEP: u64 = 1 << 20;
/// ... and by at least this fraction of the bytes the last one covered.
pub const STEP_DIVISOR: u64 = 32;
/// Bytes read from the live file at a time.
const READ_CHUNK: usize = 4 << 20;

/// The path of a live segment's index.
pub fn live_index_path(dir: &Path, name: &str) -> std::path::PathBuf {
    dir.join(format!("{name}.lix"))
}

/// Keeps the index of one live segment.
pub struct LiveIndexer {
    name: String,
    builder: SegmentBuilder<io::Sink>,
    file: Option<File>,
    /// Bytes of whole lines given to the builder.
    taken: u64,
    /// What the last index written covers.
    written: u64,
    buf: Vec<u8>,
}

impl LiveIndexer {
    pub fn new(name: &str) -> Self {
        LiveIndexer {
            name: name.to_string(),
            builder: SegmentBuilder::plain(),
            file: None,
            taken: 0,
            written: 0,
            buf: Vec::new(),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// What the last index written covers (bytes of the live file).
    pub fn covered(&self) -> u64 {
        self.written
    }

    /// Takes the whole lines of the live segment within its first `len`
    /// bytes (a length the writer completed) and writes the index when it
    /// has grown enough (`force`: whenever it covers more than the last
    /// one). Returns whether an index was written.
    pub fn advance(&mut self, dir: &Path, len: u64, force: bool) -> Result<bool, StoreError> {
        self.take(dir, len)?;
        let framed = self.builder.framed_len();
        let grown = framed.saturating_sub(self.written);
        let due = grown >= MIN_STEP.max(self.written / STEP_DIVISOR);
        if grown == 0 || !(due || force) {
            return Ok(false);
        }
        self.write(dir, framed)?;
        self.written = framed;
        Ok(true)
    }

    /// Closes the segment (rolled: no longer written) as
    /// [`close_segment`](super::close_segment) does, with the same files
    /// as a result, but from the frames and entries indexed so far: only
    /// its last lines are parsed, and its frames compressed.
    pub fn close(mut self, dir: &Path) -> Result<Closed, StoreError> {
        let len = self
            .open(dir)?
            .metadata()
            .map_err(|e| io_err(dir, e))?
            .len();
        self.take(dir, len)?;
        let file = self.file.take().expect("opened above");
        let closed = close_indexed(dir, &self.name, &file, self.builder.into_index()?)?;
        remove_live(dir, &self.name)?;
        Ok(closed)
    }

    fn open(&mut self, dir: &Path) -> Result<&File, StoreError> {
        if self.file.is_none() {
            let path = dir.join(format!("{}.log", self.name));
            let f = open_nofollow(&path, OpenOptions::new().read(true))
                .map_err(|e| io_err(&path, e))?;
            self.file = Some(f);
        }
        Ok(self.file.as_ref().expect("opened above"))
    }

    /// Gives the builder the whole lines within the first `len` bytes.
    fn take(&mut self, dir: &Path, len: u64) -> Result<(), StoreError> {
        let path = dir.join(format!("{}.log", self.name));
        self.open(dir)?;
        let f = self.file.as_ref().expect("opened above");
        while self.taken < len {
            let want = (len - self.taken).min(READ_CHUNK as u64) as usize;
            self.buf.resize(want, 0);
            f.read_exact_at(&mut self.buf, self.taken)
                .map_err(|e| io_err(&path, e))?;
            let cut = whole_lines(&self.buf);
            if cut == 0 {
                // No line end in a whole chunk: not the writer's lines.
                if want == READ_CHUNK {
                    return Err(io_err(&path, "a line longer than 4 MiB: not indexed"));
                }
                break;
            }
            self.builder.push(&self.buf[..cut])?;
            self.taken += cut as u64;
        }
        Ok(())
    }

    fn write(&mut self, dir: &Path, framed: u64) -> Result<(), StoreError> {
        let bytes = self.builder.index_so_far(SourceStamp {
            len: framed,
            mtime: 0,
            crc: 0,
        });
        let path = live_index_path(dir, &self.name);
        let tmp = dir.join(format!("{}.lix.tmp", self.name));
        let dir_meta = fs::metadata(dir).map_err(|e| io_err(dir, e))?;
        let _ = fs::remove_file(&tmp);
        let mut f = create(&tmp, &dir_meta).map_err(|e| io_err(&tmp, e))?;
        // Not synced: after a crash the segment is closed at the next
        // start (which removes this), and a lookup takes an index only
        // while it covers no more than the live file holds.
        f.write_all(&bytes).map_err(|e| io_err(&tmp, e))?;
        fs::rename(&tmp, &path).map_err(|e| io_err(&path, e))
    }
}
