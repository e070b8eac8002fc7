//! Compressing and indexing a segment: the plugin's lines, byte for byte,
//! cut at line boundaries into independently decodable zstd frames of
//! about [`FRAME_RAW`] bytes each (their concatenation is one valid zstd
//! stream, so `zstdcat SEGMENT.zst | grep` reads it), and the [`Index`]
//! of those frames.

use std::io::Write;

use super::StoreError;
use super::index::{Frame, GapRef, IndexBuilder, LineKey, SourceStamp};
use crate::format::gap::parse_gap;
use crate::format::parse::parse_line;

/// Plain bytes per frame (at least; a frame ends at a line end).
pub const FRAME_RAW: usize = 128 << 10;
/// zstd's level: fast, and about 8x on masqlog lines.
pub const LEVEL: i32 = 3;

/// The index keys of one line: `None` for lines without a masquerade port
/// (chain records, gap records, other programs' lines) and lines that do
/// not parse.
pub fn line_key(line: &[u8]) -> Option<LineKey> {
    memchr::memmem::find(line, b"masqlog")?;
    let text = std::str::from_utf8(line).ok()?;
    let text = text.trim_end_matches(['\n', '\r']);
    let rec = parse_line(text).ok()?.record;
    let port = rec.masq.port?;
    let start = rec.start.or(rec.end)?.secs;
    let end = match rec.event {
        crate::record::Event::End => rec.end.map(|t| t.secs),
        _ => None,
    };
    Some(LineKey {
        addr: rec.masq.ip,
        port,
        start,
        end,
    })
}

/// The length of the whole lines in `data`: what is left of a segment
/// whose tail was torn (a crash in the middle of a write).
pub fn whole_lines(data: &[u8]) -> usize {
    memchr::memrchr(b'\n', data).map_or(0, |k| k + 1)
}

/// Compresses lines into frames and indexes them.
pub struct SegmentBuilder<W: Write> {
    out: W,
    buf: Vec<u8>,
    /// Lines in `buf` that carry a key.
    keys: Vec<LineKey>,
    gaps: Vec<(i64, i64)>,
    index: IndexBuilder,
    comp_offset: u64,
    raw_offset: u64,
    next_line: u64,
    lines_in_buf: u64,
    /// `None`: frames are stored as they are (a live segment's index,
    /// whose frames are byte ranges of the plain file).
    compressor: Option<zstd::bulk::Compressor<'static>>,
    scratch: Vec<u8>,
}

impl SegmentBuilder<std::io::Sink> {
    /// Indexes without compressing or writing: each frame is the byte
    /// range of the plain lines it covers (`comp_offset` = `raw_offset`,
    /// `comp_len` = `raw_len`), for the index of a live segment.
    pub fn plain() -> Self {
        SegmentBuilder {
            compressor: None,
            ..Self::with(std::io::sink())
        }
    }
}

impl<W: Write> SegmentBuilder<W> {
    pub fn new(out: W) -> Result<Self, StoreError> {
        Ok(SegmentBuilder {
            compressor: Some(zstd::bulk::Compressor::new(LEVEL).map_err(StoreError::Compress)?),
            ..Self::with(out)
        })
    }

    fn with(out: W) -> Self {
        SegmentBuilder {
            out,
            buf: Vec::with_capacity(FRAME_RAW + (16 << 10)),
            keys: Vec::new(),
            gaps: Vec::new(),
            index: IndexBuilder::new(),
            comp_offset: 0,
            raw_offset: 0,
            next_line: 1,
            lines_in_buf: 0,
            compressor: None,
            scratch: Vec::new(),
        }
    }

    /// The plain bytes in whole frames so far (what [`Self::index_so_far`]
    /// covers).
    pub fn framed_len(&self) -> u64 {
        self.raw_offset
    }

    /// The lines after the last frame made into one more frame; the
    /// index of them all (for [`super::live::LiveIndexer::close`]).
    pub fn into_index(mut self) -> Result<IndexBuilder, StoreError> {
        self.flush_frame()?;
        Ok(self.index)
    }

    /// The index of the frames made so far (the lines after the last one
    /// are not in it).
    pub fn index_so_far(&mut self, stamp: SourceStamp) -> Vec<u8> {
        self.index.finish_again(stamp)
    }

    /// Adds whole lines (each ending with `\n`; a last line without one is
    /// taken as it is).
    pub fn push(&mut self, data: &[u8]) -> Result<(), StoreError> {
        for line in data.split_inclusive(|&b| b == b'\n') {
            self.push_line(line)?;
        }
        Ok(())
    }

    fn push_line(&mut self, line: &[u8]) -> Result<(), StoreError> {
        if let Some(k) = line_key(line) {
            self.keys.push(k);
        } else if memchr::memmem::find(line, b"gap").is_some()
            && let Some(g) = std::str::from_utf8(line)
                .ok()
                .and_then(|t| parse_gap(t.trim_end()))
        {
            self.gaps.push((g.from.secs, g.to.secs));
            self.index.saw_time(g.to.secs);
        }
        self.buf.extend_from_slice(line);
        self.lines_in_buf += 1;
        if self.buf.len() >= FRAME_RAW {
            self.flush_frame()?;
        }
        Ok(())
    }

    fn flush_frame(&mut self) -> Result<(), StoreError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let frame = self.index.frames() as u32;
        let comp_len = match &mut self.compressor {
            Some(c) => {
                self.scratch.clear();
                self.scratch
                    .reserve(zstd::zstd_safe::compress_bound(self.buf.len()));
                c.compress_to_buffer(&self.buf, &mut self.scratch)
                    .map_err(StoreError::Compress)?;
                self.out
                    .write_all(&self.scratch)
                    .map_err(StoreError::Write)?;
                self.scratch.len()
            }
            None => self.buf.len(),
        };
        self.index.add_frame(Frame {
            comp_offset: self.comp_offset,
            comp_len: comp_len as u32,
            raw_len: self.buf.len() as u32,
            raw_offset: self.raw_offset,
            first_line: self.next_line,
        });
        for k in self.keys.drain(..) {
            self.index.add(k, frame);
        }
        for (from, to) in self.gaps.drain(..) {
            self.index.add_gap(GapRef { from, to, frame });
        }
        self.comp_offset += comp_len as u64;
        self.raw_offset += self.buf.len() as u64;
        self.next_line += self.lines_in_buf;
        self.index.count_lines(self.lines_in_buf);
        self.lines_in_buf = 0;
        self.buf.clear();
        Ok(())
    }

    /// Writes the last frame; returns the writer and the index's bytes.
    pub fn finish(mut self, stamp: SourceStamp) -> Result<(W, Vec<u8>), StoreError> {
        self.flush_frame()?;
        Ok((self.out, self.index.finish(stamp)))
    }
}

/// Decodes frames one after another with one zstd context and one buffer,
/// which a reader of many frames (a lookup reads one or two a segment, over
/// up to 48 segments) would otherwise allocate and clear for each.
pub struct FrameDecoder {
    zstd: zstd::bulk::Decompressor<'static>,
    raw: Vec<u8>,
}

impl FrameDecoder {
    /// A decoder with its zstd context.
    pub fn new() -> Result<Self, StoreError> {
        Ok(FrameDecoder {
            zstd: zstd::bulk::Decompressor::new().map_err(StoreError::Decompress)?,
            raw: Vec::new(),
        })
    }

    /// Decodes one frame (its compressed bytes), bounded by the raw length
    /// the index gives; the bytes are valid until the next call.
    pub fn decode(&mut self, comp: &[u8], raw_len: u32) -> Result<&[u8], StoreError> {
        self.raw.clear();
        self.raw.reserve(raw_len as usize);
        // A Vec is written up to its capacity, which can exceed raw_len:
        // the bound is checked here, as zstd's one-shot call would.
        let n = self
            .zstd
            .decompress_to_buffer(comp, &mut self.raw)
            .map_err(StoreError::Decompress)?;
        if n > raw_len as usize {
            return Err(StoreError::Decompress(std::io::Error::other(format!(
                "the frame holds {n} bytes, its index says {raw_len}"
            ))));
        }
        Ok(&self.raw)
    }
}
