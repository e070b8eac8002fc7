//! The index of one store segment (or of one rotated log file indexed by
//! `masqlog index`): which zstd frames hold the lines of a public endpoint
//! (masquerade address and port) and of a flow start time, in a compact
//! fixed-width layout that a reader binary-searches reading only a few
//! blocks.
//!
//! # Layout (version 1, all integers little-endian)
//!
//! ```text
//! header   96 bytes: magic "MQLSIDX\0", version u32, crc32 u32 (of the
//!          header with this field zero, then the tables), n_addrs u32,
//!          n_frames u32, n_gaps u32, n_blocks u32, n_entries u64,
//!          base_secs i64, first_secs i64, last_secs i64, src_len u64,
//!          src_mtime i64, src_crc u32, reserved u32, lines u64
//! addrs    n_addrs x 16: masquerade addresses (IPv4 as IPv4-mapped IPv6)
//! frames   n_frames x 32: compressed offset u64, compressed length u32,
//!          raw length u32, raw offset u64, first line u64 (1-based)
//! gaps     n_gaps x 24: from secs i64, to secs i64, frame u32, 0 u32
//! blocks   n_blocks x 16: first key u64, crc32 u32 (of the block's
//!          entries), 0 u32
//! entries  n_entries x 16, sorted, in blocks of 4096: address number
//!          u16, port u16, start u32 (seconds after base_secs), span u32
//!          (end - start of an end line, u32::MAX on other lines), frame u32
//! ```
//!
//! One entry per line that carries a masquerade port, the same entries of
//! one frame counted once. A flow whose start and end lines are in
//! different frames (or segments) has an entry for each: both carry the
//! start time, so a reader that knows the start finds the end.

use std::io::{Read, Seek, SeekFrom};
use std::net::{IpAddr, Ipv6Addr};

use super::StoreError;

pub const MAGIC: &[u8; 8] = b"MQLSIDX\0";
pub const VERSION: u32 = 1;
pub const HEADER_LEN: usize = 96;
const ADDR_LEN: usize = 16;
const FRAME_LEN: usize = 32;
const GAP_LEN: usize = 24;
const BLOCK_LEN: usize = 16;
pub const ENTRY_LEN: usize = 16;
/// Entries per block: a reader verifies and reads whole blocks (64 KiB).
pub const BLOCK_ENTRIES: usize = 4096;
/// `span` of a line that is not an end line.
pub const NO_END: u32 = u32::MAX;
/// More addresses than this in one segment: the rest are not indexed by
/// address number (a NAT router has a handful of public addresses).
const MAX_ADDRS: usize = u16::MAX as usize;
/// A reader refuses tables larger than this (a damaged header).
const MAX_TABLES: u64 = 256 << 20;

/// One zstd frame of a segment: where it is in the compressed file and
/// which bytes and lines of the plain segment it holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Frame {
    pub comp_offset: u64,
    pub comp_len: u32,
    pub raw_len: u32,
    /// Offset of its first byte in the plain (decompressed) segment.
    pub raw_offset: u64,
    /// Line number of its first line in the plain segment, 1-based.
    pub first_line: u64,
}

/// A gap record, located.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GapRef {
    pub from: i64,
    pub to: i64,
    pub frame: u32,
}

/// One indexed line (several lines of one flow in one frame are one).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Entry {
    pub addr: u16,
    pub port: u16,
    pub start: u32,
    pub span: u32,
    pub frame: u32,
}

impl Entry {
    fn key(&self) -> u64 {
        pack(self.addr, self.port, self.start)
    }
}

fn pack(addr: u16, port: u16, start: u32) -> u64 {
    (u64::from(addr) << 48) | (u64::from(port) << 32) | u64::from(start)
}

/// What the writer of a plain source records about it, so that a reader
/// can tell an index that no longer describes its file (`masqlog index`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SourceStamp {
    pub len: u64,
    pub mtime: i64,
    /// CRC-32 of the first 64 KiB and the last 64 KiB.
    pub crc: u32,
}

/// A line's keys, for [`IndexBuilder::add`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LineKey {
    pub addr: IpAddr,
    pub port: u16,
    /// The flow's start (seconds); the line's own time when it has none.
    pub start: i64,
    /// The flow's end, on an end line.
    pub end: Option<i64>,
}

/// Collects the entries of a segment while it is compressed.
#[derive(Debug, Default)]
pub struct IndexBuilder {
    addrs: Vec<Ipv6Addr>,
    /// (addr number, port, start secs, end secs or None, frame)
    raw: Vec<(u16, u16, i64, Option<i64>, u32)>,
    frames: Vec<Frame>,
    gaps: Vec<GapRef>,
    first: Option<i64>,
    last: Option<i64>,
    lines: u64,
    /// For an index written again as it grows ([`Self::finish_again`]):
    /// its base, how many of `raw` are in `sorted`, and those entries,
    /// sorted.
    again: Option<(i64, usize, Vec<Entry>)>,
}

/// How far before its earliest start an index written again as it grows
/// puts its base, so that later lines of older flows still fit (a line
/// older than that makes it sort everything again).
const AGAIN_BASE_MARGIN: i64 = 366 * 86_400;

pub fn v6(ip: IpAddr) -> Ipv6Addr {
    match ip {
        IpAddr::V4(a) => a.to_ipv6_mapped(),
        IpAddr::V6(a) => a,
    }
}

impl IndexBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    /// The line's time, for the segment's first and last times.
    pub fn saw_time(&mut self, secs: i64) {
        self.first = Some(self.first.map_or(secs, |f| f.min(secs)));
        self.last = Some(self.last.map_or(secs, |l| l.max(secs)));
    }

    pub fn add(&mut self, key: LineKey, frame: u32) {
        let a = v6(key.addr);
        let n = match self.addrs.iter().position(|x| *x == a) {
            Some(n) => n,
            None if self.addrs.len() < MAX_ADDRS => {
                self.addrs.push(a);
                self.addrs.len() - 1
            }
            None => return,
        };
        self.saw_time(key.end.unwrap_or(key.start));
        self.raw
            .push((n as u16, key.port, key.start, key.end, frame));
    }

    pub fn add_gap(&mut self, gap: GapRef) {
        self.gaps.push(gap);
    }

    pub fn add_frame(&mut self, f: Frame) {
        self.frames.push(f);
    }

    pub fn frames(&self) -> usize {
        self.frames.len()
    }

    /// The frames added so far, to be compressed one by one (a live
    /// segment's plain frames, at its close).
    pub fn frames_mut(&mut self) -> &mut [Frame] {
        &mut self.frames
    }

    pub fn count_lines(&mut self, n: u64) {
        self.lines += n;
    }

    /// The index file's bytes (of the frames added so far: a live
    /// segment's index is written again as it grows).
    pub fn finish(&self, stamp: SourceStamp) -> Vec<u8> {
        let base = self.raw.iter().map(|r| r.2).min().unwrap_or(0);
        let mut entries = Self::entries(&self.raw, base);
        entries.sort_unstable();
        entries.dedup();
        self.encode(&entries, base, stamp)
    }

    /// [`Self::finish`] for an index written again and again as its
    /// segment grows (a live segment's): the entries sorted for the last
    /// one are kept, and only the new ones sorted and merged in (the base
    /// is set a year before the earliest start, so it rarely moves).
    pub fn finish_again(&mut self, stamp: SourceStamp) -> Vec<u8> {
        let (base, upto, mut sorted) = self.again.take().unwrap_or((i64::MAX, 0, Vec::new()));
        let new = &self.raw[upto..];
        let (base, mut sorted, new) = match new.iter().map(|r| r.2).min() {
            Some(m) if m < base => {
                let all = self.raw.iter().map(|r| r.2).min().unwrap_or(m);
                (
                    all.saturating_sub(AGAIN_BASE_MARGIN),
                    Vec::new(),
                    &self.raw[..],
                )
            }
            _ => (base, std::mem::take(&mut sorted), new),
        };
        let mut add = Self::entries(new, base);
        add.sort_unstable();
        sorted.extend(add);
        // Two sorted runs: the stable sort merges them in linear time.
        sorted.sort();
        sorted.dedup();
        let out = self.encode(&sorted, base, stamp);
        self.again = Some((base, self.raw.len(), sorted));
        out
    }

    fn entries(raw: &[(u16, u16, i64, Option<i64>, u32)], base: i64) -> Vec<Entry> {
        raw.iter()
            .filter_map(|&(addr, port, start, end, frame)| {
                let start_rel = u32::try_from(start - base).ok()?;
                let span = match end {
                    Some(e) => u32::try_from(e.saturating_sub(start).max(0))
                        .unwrap_or(NO_END - 1)
                        .min(NO_END - 1),
                    None => NO_END,
                };
                Some(Entry {
                    addr,
                    port,
                    start: start_rel,
                    span,
                    frame,
                })
            })
            .collect()
    }

    fn encode(&self, entries: &[Entry], base: i64, stamp: SourceStamp) -> Vec<u8> {
        let blocks: Vec<&[Entry]> = entries.chunks(BLOCK_ENTRIES).collect();
        let mut out = vec![0u8; HEADER_LEN];
        out[0..8].copy_from_slice(MAGIC);
        put32(&mut out, 8, VERSION);
        put32(&mut out, 16, self.addrs.len() as u32);
        put32(&mut out, 20, self.frames.len() as u32);
        put32(&mut out, 24, self.gaps.len() as u32);
        put32(&mut out, 28, blocks.len() as u32);
        put64(&mut out, 32, entries.len() as u64);
        put64(&mut out, 40, base as u64);
        put64(&mut out, 48, self.first.unwrap_or(0) as u64);
        put64(&mut out, 56, self.last.unwrap_or(0) as u64);
        put64(&mut out, 64, stamp.len);
        put64(&mut out, 72, stamp.mtime as u64);
        put32(&mut out, 80, stamp.crc);
        put64(&mut out, 88, self.lines);
        for a in &self.addrs {
            out.extend_from_slice(&a.octets());
        }
        for f in &self.frames {
            out.extend_from_slice(&f.comp_offset.to_le_bytes());
            out.extend_from_slice(&f.comp_len.to_le_bytes());
            out.extend_from_slice(&f.raw_len.to_le_bytes());
            out.extend_from_slice(&f.raw_offset.to_le_bytes());
            out.extend_from_slice(&f.first_line.to_le_bytes());
        }
        for g in &self.gaps {
            out.extend_from_slice(&g.from.to_le_bytes());
            out.extend_from_slice(&g.to.to_le_bytes());
            out.extend_from_slice(&g.frame.to_le_bytes());
            out.extend_from_slice(&0u32.to_le_bytes());
        }
        let mut body = Vec::with_capacity(entries.len() * ENTRY_LEN);
        for b in &blocks {
            let start = body.len();
            for e in *b {
                body.extend_from_slice(&e.addr.to_le_bytes());
                body.extend_from_slice(&e.port.to_le_bytes());
                body.extend_from_slice(&e.start.to_le_bytes());
                body.extend_from_slice(&e.span.to_le_bytes());
                body.extend_from_slice(&e.frame.to_le_bytes());
            }
            out.extend_from_slice(&b[0].key().to_le_bytes());
            out.extend_from_slice(&crc32fast::hash(&body[start..]).to_le_bytes());
            out.extend_from_slice(&0u32.to_le_bytes());
        }
        let crc = crc32fast::hash(&out);
        put32(&mut out, 12, crc);
        out.extend_from_slice(&body);
        out
    }
}

fn put32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

fn put64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

#[inline]
fn get32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

#[inline]
fn get64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// An index read back: its header and tables, the entries left on disk.
#[derive(Clone, Debug)]
pub struct Index {
    pub base_secs: i64,
    /// The earliest and latest times of its lines (seconds).
    pub first_secs: i64,
    pub last_secs: i64,
    pub lines: u64,
    pub stamp: SourceStamp,
    pub addrs: Vec<Ipv6Addr>,
    /// The tables as read (checked by the header's CRC); the frame table
    /// (`frame_table` of them) is decoded one frame at a time by
    /// [`Index::frame`]: a lookup needs a handful of a segment's thousands
    /// of frames.
    tables: Vec<u8>,
    frame_table: std::ops::Range<usize>,
    pub gaps: Vec<GapRef>,
    /// (first key, crc) of each block.
    blocks: Vec<(u64, u32)>,
    n_entries: u64,
    /// Where the entries start in the file.
    entries_at: u64,
}

/// The entries of one endpoint, with times made absolute.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hit {
    pub start: i64,
    pub end: Option<i64>,
    pub frame: u32,
}

impl Index {
    /// Reads the header and tables of an index (not its entries), checking
    /// the magic, the version and the checksum.
    pub fn read(r: &mut impl Read, name: &str) -> Result<Index, StoreError> {
        let bad = |why: String| StoreError::BadIndex {
            path: name.to_string(),
            why,
        };
        let mut h = [0u8; HEADER_LEN];
        r.read_exact(&mut h)
            .map_err(|e| bad(format!("header: {e}")))?;
        if &h[0..8] != MAGIC {
            return Err(bad("not a masqlog index (magic)".into()));
        }
        let version = get32(&h, 8);
        if version != VERSION {
            return Err(bad(format!(
                "version {version}, this masqlog reads version {VERSION}: rebuild it with `masqlog index`"
            )));
        }
        let crc = get32(&h, 12);
        let n_addrs = u64::from(get32(&h, 16));
        let n_frames = u64::from(get32(&h, 20));
        let n_gaps = u64::from(get32(&h, 24));
        let n_blocks = u64::from(get32(&h, 28));
        let n_entries = get64(&h, 32);
        let tables = n_addrs * ADDR_LEN as u64
            + n_frames * FRAME_LEN as u64
            + n_gaps * GAP_LEN as u64
            + n_blocks * BLOCK_LEN as u64;
        if tables > MAX_TABLES || n_entries.div_ceil(BLOCK_ENTRIES as u64) != n_blocks {
            return Err(bad("damaged header (table sizes)".into()));
        }
        let mut t = vec![0u8; tables as usize];
        r.read_exact(&mut t)
            .map_err(|e| bad(format!("tables: {e}")))?;
        let mut hasher = crc32fast::Hasher::new();
        let mut hz = h;
        put32(&mut hz, 12, 0);
        hasher.update(&hz);
        hasher.update(&t);
        if hasher.finalize() != crc {
            return Err(bad(
                "checksum mismatch (a damaged or partly written index)".into()
            ));
        }
        let frames_at = n_addrs as usize * ADDR_LEN;
        let frame_table = frames_at..frames_at + n_frames as usize * FRAME_LEN;
        let addrs = &t[..frames_at];
        let (gaps, blocks) = t[frame_table.end..].split_at(n_gaps as usize * GAP_LEN);
        let addrs = addrs
            .chunks_exact(ADDR_LEN)
            .map(|a| Ipv6Addr::from(<[u8; 16]>::try_from(a).expect("16 bytes")))
            .collect();
        let gaps = gaps
            .chunks_exact(GAP_LEN)
            .map(|g| GapRef {
                from: get64(g, 0) as i64,
                to: get64(g, 8) as i64,
                frame: get32(g, 16),
            })
            .collect();
        let blocks = blocks
            .chunks_exact(BLOCK_LEN)
            .map(|b| (get64(b, 0), get32(b, 8)))
            .collect();
        Ok(Index {
            base_secs: get64(&h, 40) as i64,
            first_secs: get64(&h, 48) as i64,
            last_secs: get64(&h, 56) as i64,
            stamp: SourceStamp {
                len: get64(&h, 64),
                mtime: get64(&h, 72) as i64,
                crc: get32(&h, 80),
            },
            lines: get64(&h, 88),
            addrs,
            gaps,
            blocks,
            tables: t,
            frame_table,
            n_entries,
            entries_at: HEADER_LEN as u64 + tables,
        })
    }

    /// How many frames the segment has.
    pub fn frame_count(&self) -> usize {
        self.frame_table.len() / FRAME_LEN
    }

    /// Frame `i` of the segment.
    pub fn frame(&self, i: u32) -> Option<Frame> {
        let at = usize::try_from(i).ok()?.checked_mul(FRAME_LEN)?;
        if at >= self.frame_table.len() {
            return None;
        }
        let at = self.frame_table.start + at;
        let f = &self.tables[at..at + FRAME_LEN];
        Some(Frame {
            comp_offset: get64(f, 0),
            comp_len: get32(f, 8),
            raw_len: get32(f, 12),
            raw_offset: get64(f, 16),
            first_line: get64(f, 24),
        })
    }

    /// Every frame of the segment, in order.
    pub fn frames(&self) -> impl Iterator<Item = Frame> + '_ {
        (0..self.frame_count() as u32).filter_map(|i| self.frame(i))
    }

    /// The entries of the endpoint `ip`:`port`, read from `r` (the index
    /// file) by a binary search of the blocks; each block read is checked.
    pub fn hits<R: Read + Seek>(
        &self,
        r: &mut R,
        name: &str,
        ip: IpAddr,
        port: u16,
    ) -> Result<Vec<Hit>, StoreError> {
        self.hits_with(r, name, ip, port, &mut Vec::new())
    }

    /// [`Index::hits`], reading blocks into `buf` (kept by a caller that
    /// searches many indexes, so that each block read reuses it).
    pub fn hits_with<R: Read + Seek>(
        &self,
        r: &mut R,
        name: &str,
        ip: IpAddr,
        port: u16,
        buf: &mut Vec<u8>,
    ) -> Result<Vec<Hit>, StoreError> {
        let a = v6(ip);
        let Some(n) = self.addrs.iter().position(|x| *x == a) else {
            return Ok(Vec::new());
        };
        let lo = pack(n as u16, port, 0);
        let hi = pack(n as u16, port, u32::MAX);
        let first = self.blocks.partition_point(|b| b.0 <= lo).saturating_sub(1);
        let mut out = Vec::new();
        for b in first..self.blocks.len() {
            if self.blocks[b].0 > hi {
                break;
            }
            let count = (self.n_entries - (b * BLOCK_ENTRIES) as u64).min(BLOCK_ENTRIES as u64);
            buf.resize(count as usize * ENTRY_LEN, 0);
            r.seek(SeekFrom::Start(
                self.entries_at + (b * BLOCK_ENTRIES * ENTRY_LEN) as u64,
            ))
            .and_then(|_| r.read_exact(buf))
            .map_err(|e| StoreError::BadIndex {
                path: name.to_string(),
                why: format!("block {b}: {e}"),
            })?;
            if crc32fast::hash(buf) != self.blocks[b].1 {
                return Err(StoreError::BadIndex {
                    path: name.to_string(),
                    why: format!("block {b}: checksum mismatch"),
                });
            }
            for e in buf.chunks_exact(ENTRY_LEN) {
                let key = pack(
                    u16::from_le_bytes([e[0], e[1]]),
                    u16::from_le_bytes([e[2], e[3]]),
                    get32(e, 4),
                );
                if key < lo {
                    continue;
                }
                if key > hi {
                    return Ok(out);
                }
                let start = self.base_secs + i64::from(get32(e, 4));
                let span = get32(e, 8);
                out.push(Hit {
                    start,
                    end: (span != NO_END).then(|| start + i64::from(span)),
                    frame: get32(e, 12),
                });
            }
        }
        Ok(out)
    }
}
