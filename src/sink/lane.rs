//! The disk lane: with a spool, at most `WINDOW` records wait in memory.
//! When the queue holds that many (a slow destination, or a writer thread
//! that gets no CPU), `submit` writes the record, unformatted, to the file
//! `lane` in the spool directory (on ulogd's thread: one `pwrite` into the
//! page cache, what a stock file output costs per line), and so does every
//! record after it until the writer thread has read the lane back, in
//! order. Nothing is dropped while the lane has room (the spool's size),
//! and a `kill -9` loses only what was in memory: the window and the batch
//! in the writer's hands.
//!
//! One thread writes, one reads, without locks: the writer publishes
//! `(episode, end)` after each frame, the reader publishes
//! `(episode, position)` after each record. When the reader has caught up
//! (the two are equal), the next frame starts a new episode at the top of
//! the file; frames carry their episode, so stale bytes of an older one are
//! never read. The file's header, written by the reader, says how far it
//! read and whether the run stopped cleanly, so the next start can take up
//! what was left and say that the previous run was killed.
//!
//! Layout: header (`MAGIC`, episode u32, clean u32, position u64, 8 unused
//! bytes), then frames: body length u32, CRC-32 of episode and body u32,
//! episode u32, body (`masqlog_core::wire`). All little-endian.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::{Acquire, Release, SeqCst};

use masqlog_core::record::FlowRecord;
use masqlog_core::wire;
use rustix::fs::OFlags;

use super::spooldir::SpoolDir;

/// Records that wait in memory at most when the lane is in use.
pub const WINDOW: usize = 1024;
/// The lane's file name in the spool directory.
pub const FILE: &str = "lane";

const MAGIC: &[u8; 8] = b"MQLANE1\0";
const HEADER: u64 = 32;
const FRAME_HEAD: u64 = 12;
/// A body longer than this is damage (a record is a few hundred bytes;
/// three identd fields of at most 64 KiB each bound it).
const MAX_BODY: u32 = 256 << 10;
/// Bits of a published word that hold the offset; the episode has the rest.
const OFFSET_BITS: u32 = 40;
/// Episodes count modulo this (what the published word holds).
const EPISODE_MASK: u32 = (1 << (64 - OFFSET_BITS)) - 1;

fn pack(episode: u32, offset: u64) -> u64 {
    (u64::from(episode) << OFFSET_BITS) | (offset & ((1 << OFFSET_BITS) - 1))
}

fn unpack(word: u64) -> (u32, u64) {
    (
        (word >> OFFSET_BITS) as u32,
        word & ((1 << OFFSET_BITS) - 1),
    )
}

/// Why a record did not go into the lane.
#[derive(Debug, thiserror::Error)]
pub enum LaneError {
    #[error("the disk lane is full ({0} bytes)")]
    Full(u64),
    #[error("cannot write the disk lane: {0}")]
    Io(#[from] io::Error),
}

/// What the two ends share.
#[derive(Debug)]
struct Shared {
    /// The writer's `(episode, end)`.
    published: AtomicU64,
    /// The reader's `(episode, position)`.
    consumed: AtomicU64,
    /// Records written, and read (for the backlog).
    pushed: AtomicU64,
    taken: AtomicU64,
}

/// The end ulogd's thread writes.
pub struct LaneWriter {
    file: File,
    shared: Arc<Shared>,
    buf: Vec<u8>,
    /// The largest file size allowed.
    max: u64,
    /// The episode being written, and where its next frame goes.
    episode: u32,
    end: u64,
}

/// The end the writer thread reads.
pub struct LaneReader {
    file: File,
    shared: Arc<Shared>,
    buf: Vec<u8>,
    /// The episode being read (the low bits the published word keeps), and
    /// where its next frame starts.
    episode: u32,
    pos: u64,
}

/// What opening the lane found from the previous run.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Found {
    /// Records written but not read back: taken up first.
    pub records: u64,
    /// The previous run did not stop cleanly (killed or crashed).
    pub unclean: bool,
}

/// One frame read at `at`: its episode, body and length on disk.
fn read_frame(file: &File, at: u64, limit: u64, buf: &mut Vec<u8>) -> Option<(u32, u64)> {
    if at + FRAME_HEAD > limit {
        return None;
    }
    let mut head = [0u8; FRAME_HEAD as usize];
    file.read_exact_at(&mut head, at).ok()?;
    let len = u32::from_le_bytes(head[0..4].try_into().ok()?);
    let crc = u32::from_le_bytes(head[4..8].try_into().ok()?);
    let episode = u32::from_le_bytes(head[8..12].try_into().ok()?);
    if len == 0 || len > MAX_BODY || at + FRAME_HEAD + u64::from(len) > limit {
        return None;
    }
    buf.resize(len as usize, 0);
    file.read_exact_at(buf, at + FRAME_HEAD).ok()?;
    let mut h = crc32fast::Hasher::new();
    h.update(&head[8..12]);
    h.update(buf);
    (h.finalize() == crc).then_some((episode, FRAME_HEAD + u64::from(len)))
}

/// Opens (or creates) the lane in `dir`, allowed to grow to `max_bytes`,
/// and takes up what the previous run left in it.
///
/// # Errors
///
/// When the file cannot be opened or created (a symlink is refused) or its
/// header cannot be written.
pub fn open(dir: &SpoolDir, max_bytes: u64) -> io::Result<(LaneWriter, LaneReader, Found)> {
    // Like the spool's files, the lane is reached through the directory's
    // descriptor (a symlink is refused) and belongs to the directory's
    // owner (ulogd's --uid user), so a later start without root opens it.
    let file = dir.open_file(FILE, OFlags::RDWR | OFlags::CREATE)?;
    let size = file.metadata()?.len();
    let mut header = [0u8; HEADER as usize];
    let mut found = Found::default();
    let (mut episode, mut start, mut end) = (0, HEADER, HEADER);
    if size >= HEADER && file.read_exact_at(&mut header, 0).is_ok() && &header[..8] == MAGIC {
        let word = |at: usize| {
            u32::from_le_bytes([header[at], header[at + 1], header[at + 2], header[at + 3]])
        };
        let marked_episode = word(8);
        found.unclean = word(12) != 1;
        let marked_pos = u64::from(word(16)) | (u64::from(word(20)) << 32);
        let mut buf = Vec::new();
        if let Some((first, _)) = read_frame(&file, HEADER, size, &mut buf) {
            // Walk the episode the file starts with to its last whole frame,
            // counting the frames from the reader's mark on (when the mark
            // is of this episode and on a frame's start).
            let (mut at, mut all, mut after_mark, mut on_boundary) = (HEADER, 0u64, 0u64, false);
            while let Some((ep, len)) = read_frame(&file, at, size, &mut buf) {
                if ep != first {
                    break;
                }
                on_boundary |= at == marked_pos;
                all += 1;
                after_mark += u64::from(on_boundary);
                at += len;
            }
            on_boundary |= at == marked_pos;
            episode = first;
            end = at;
            if marked_episode == first && on_boundary {
                start = marked_pos;
                found.records = after_mark;
            } else {
                start = HEADER;
                found.records = all;
            }
        }
    }
    let shared = Arc::new(Shared {
        published: AtomicU64::new(pack(episode, end)),
        consumed: AtomicU64::new(pack(episode, start)),
        pushed: AtomicU64::new(found.records),
        taken: AtomicU64::new(0),
    });
    let mut reader = LaneReader {
        file: file.try_clone()?,
        shared: Arc::clone(&shared),
        buf: Vec::new(),
        episode,
        pos: start,
    };
    reader.mark(false)?;
    let writer = LaneWriter {
        file,
        shared,
        buf: Vec::with_capacity(512),
        max: max_bytes.max(HEADER + 1024),
        episode,
        end,
    };
    Ok((writer, reader, found))
}

impl LaneWriter {
    /// Whether records are in the lane that the reader has not taken: then
    /// every new record must go there too, to keep the order.
    pub fn pending(&self) -> bool {
        self.shared.published.load(SeqCst) != self.shared.consumed.load(SeqCst)
    }

    /// Writes `rec` to the lane.
    ///
    /// # Errors
    ///
    /// `Full` when the lane reached its size; `Io` when the write failed
    /// (a full disk). The record is not in the lane then.
    pub fn push(&mut self, rec: &FlowRecord) -> Result<(), LaneError> {
        self.buf.clear();
        self.buf.resize(FRAME_HEAD as usize, 0);
        wire::encode(rec, &mut self.buf);
        let published = self.shared.published.load(Acquire);
        let consumed = self.shared.consumed.load(Acquire);
        // The reader has read everything: it will not read again before
        // the next publication, so a new episode may start at the top.
        let (episode, at) = if published == consumed {
            ((self.episode + 1) & EPISODE_MASK, HEADER)
        } else {
            (self.episode, self.end)
        };
        let len = self.buf.len() as u64;
        if at + len > self.max {
            return Err(LaneError::Full(self.max));
        }
        let body_len = (self.buf.len() - FRAME_HEAD as usize) as u32;
        self.buf[0..4].copy_from_slice(&body_len.to_le_bytes());
        self.buf[8..12].copy_from_slice(&episode.to_le_bytes());
        let mut h = crc32fast::Hasher::new();
        h.update(&self.buf[8..]);
        let crc = h.finalize();
        self.buf[4..8].copy_from_slice(&crc.to_le_bytes());
        self.file.write_all_at(&self.buf, at)?;
        self.episode = episode;
        self.end = at + len;
        self.shared
            .published
            .store(pack(self.episode, self.end), Release);
        self.shared.pushed.fetch_add(1, SeqCst);
        Ok(())
    }
}

impl LaneReader {
    /// Records written and not yet read.
    pub fn backlog(&self) -> u64 {
        let pushed = self.shared.pushed.load(SeqCst);
        pushed.saturating_sub(self.shared.taken.load(SeqCst))
    }

    /// The next record, if the writer published one. `Err`: the frame at
    /// the reading position is damaged (the rest of the episode is skipped;
    /// the count of what it held is returned).
    pub fn take(&mut self) -> Option<Result<FlowRecord, u64>> {
        let (episode, end) = unpack(self.shared.published.load(Acquire));
        if episode != self.episode {
            self.episode = episode;
            self.pos = HEADER;
        }
        if self.pos >= end {
            return None;
        }
        let got = read_frame(&self.file, self.pos, end, &mut self.buf)
            .filter(|(ep, _)| *ep == episode)
            .and_then(|(_, len)| Some((wire::decode(&self.buf).ok()?, len)));
        let Some((rec, len)) = got else {
            // Our own bytes in the page cache, damaged: what is left of the
            // episode is lost and counted.
            let lost = self.backlog();
            self.pos = end;
            self.shared.taken.fetch_add(lost, SeqCst);
            self.publish();
            return Some(Err(lost));
        };
        self.pos += len;
        self.shared.taken.fetch_add(1, SeqCst);
        self.publish();
        Some(Ok(rec))
    }

    fn publish(&mut self) {
        self.shared
            .consumed
            .store(pack(self.episode, self.pos), Release);
        // Every record: a restart after a kill takes up exactly what was
        // not read. Best effort: after a failed mark a restart would take
        // up some records a second time.
        let _ = self.mark(false);
    }

    /// Writes the header: how far the reader got, and (`clean`) that the
    /// run stopped with the lane read to its end.
    pub fn mark(&mut self, clean: bool) -> io::Result<()> {
        let mut header = [0u8; HEADER as usize];
        header[..8].copy_from_slice(MAGIC);
        header[8..12].copy_from_slice(&self.episode.to_le_bytes());
        header[12..16].copy_from_slice(&u32::from(clean).to_le_bytes());
        header[16..24].copy_from_slice(&self.pos.to_le_bytes());
        self.file.write_all_at(&header, 0)
    }

    /// The run ends cleanly: the lane was read to its end (the writer is
    /// gone); it shrinks to its header and says so.
    pub fn close(&mut self) -> io::Result<()> {
        if self.backlog() == 0 {
            self.file.set_len(HEADER)?;
            self.pos = HEADER;
            self.episode = 0;
        }
        self.mark(true)?;
        self.file.sync_data()
    }
}

#[cfg(test)]
mod tests;
