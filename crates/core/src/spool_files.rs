//! The spool's files on disk: segment names and frames, the `head` file,
//! and a read-only survey of a spool directory (what it still holds), shared
//! by the plugin that writes spools and by `check-config`, which looks for
//! spools no configured instance will replay.
//!
//! A spool directory holds `lock`, `head` (`SEGMENT OFFSET`: the first
//! record not yet delivered) and segments `NNNNNNNNNNNNNNNNNNNN.seg`, each
//! starting with [`MAGIC`] and holding frames `LEN(u32 LE) CRC32(u32 LE)
//! BYTES`.

use std::fs;
use std::io::{self, Read};
use std::path::Path;

/// The first bytes of every segment.
pub const MAGIC: &[u8; 16] = b"masqlog-spool/1\n";
/// A segment is closed and the next one started past this size.
pub const SEGMENT_BYTES: u64 = 4 << 20;
/// The largest record a spool takes or reads back.
pub const MAX_RECORD: usize = 64 << 10;
/// Bytes of framing per record.
pub const FRAME: u64 = 8;
/// The file a spool's head is kept in.
pub const HEAD: &str = "head";

/// The file name of segment `no`.
#[must_use]
pub fn seg_name(no: u64) -> String {
    format!("{no:020}.seg")
}

/// The segment number a file name stands for, if it is a segment's.
#[must_use]
pub fn seg_no(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".seg")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Parses the text of a `head` file; anything else than two numbers means
/// the start of the first segment (0, 0).
#[must_use]
pub fn parse_head(text: &str) -> (u64, u64) {
    let mut it = text.split_whitespace().map(str::parse::<u64>);
    match (it.next(), it.next()) {
        (Some(Ok(no)), Some(Ok(off))) => (no, off),
        _ => (0, 0),
    }
}

/// The frame for `msg`, appended to `out`.
pub fn push_frame(out: &mut Vec<u8>, msg: &[u8]) {
    out.extend_from_slice(&(msg.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(msg).to_le_bytes());
    out.extend_from_slice(msg);
}

/// The length of the frame whose 8-byte header is `hdr`, if that header
/// can start a record at all (an empty frame never is one).
#[must_use]
pub fn frame_len(hdr: &[u8; 8]) -> Option<(usize, u32)> {
    let len = u32::from_le_bytes([hdr[0], hdr[1], hdr[2], hdr[3]]) as usize;
    let crc = u32::from_le_bytes([hdr[4], hdr[5], hdr[6], hdr[7]]);
    (len != 0 && len <= MAX_RECORD).then_some((len, crc))
}

/// The end of the frame at `pos` in `b` if it is whole and its checksum
/// holds.
#[must_use]
pub fn frame_at(b: &[u8], pos: usize) -> Option<usize> {
    let hdr: &[u8; 8] = b.get(pos..pos + FRAME as usize)?.try_into().ok()?;
    let (len, crc) = frame_len(hdr)?;
    let end = pos + FRAME as usize + len;
    let body = b.get(pos + FRAME as usize..end)?;
    (crc32fast::hash(body) == crc).then_some(end)
}

/// Where reading goes on after damage at `pos`: the first later position
/// holding a whole frame that the end or another whole frame follows.
/// `None`: nothing whole follows.
#[must_use]
pub fn resync(b: &[u8], pos: usize) -> Option<usize> {
    (pos + 1..b.len())
        .find(|&q| frame_at(b, q).is_some_and(|end| end == b.len() || frame_at(b, end).is_some()))
}

/// What the frames of one segment's bytes are.
#[derive(Debug, Default)]
pub struct Frames {
    /// The whole frames, as (start, end).
    pub good: Vec<(usize, usize)>,
    /// Damaged stretches between or after them.
    pub damaged: u64,
    /// Whether a whole frame follows some damage (else it is a torn tail).
    pub in_the_middle: bool,
}

/// The frames of segment bytes `b` (magic included). `None` when `b` does
/// not start with [`MAGIC`].
#[must_use]
pub fn frames(b: &[u8]) -> Option<Frames> {
    if b.len() < MAGIC.len() || &b[..MAGIC.len()] != MAGIC {
        return None;
    }
    let mut good = Vec::new();
    let (mut damaged, mut in_the_middle) = (0, false);
    let mut pos = MAGIC.len();
    while pos < b.len() {
        if let Some(end) = frame_at(b, pos) {
            good.push((pos, end));
            pos = end;
            continue;
        }
        damaged += 1;
        match resync(b, pos) {
            Some(next) => {
                in_the_middle = true;
                pos = next;
            }
            None => break,
        }
    }
    Some(Frames {
        good,
        damaged,
        in_the_middle,
    })
}

/// What a spool directory holds, seen without taking its lock or changing
/// anything.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Survey {
    /// Records not yet delivered.
    pub records: u64,
    /// Bytes of its segments.
    pub bytes: u64,
    /// Bytes of records not yet delivered, as [`pending_bytes`] counts them.
    pub pending_bytes: u64,
    /// Segment files.
    pub segments: u64,
}

/// Surveys the spool directory `dir` (read only, symlinks not followed):
/// `Ok(None)` when it is not a spool directory (no `lock`, `head` or
/// segment in it).
///
/// # Errors
///
/// When the directory or one of its segments cannot be read.
pub fn survey(dir: &Path) -> io::Result<Option<Survey>> {
    let Some(listing) = list(dir)? else {
        return Ok(None);
    };
    let mut s = Survey {
        pending_bytes: listing.pending_bytes(),
        ..Survey::default()
    };
    let Listing {
        segs,
        head_no,
        head_off,
    } = listing;
    for (no, _) in segs {
        let mut b = Vec::new();
        open_no_follow(&dir.join(seg_name(no)))?
            .take(SEGMENT_BYTES + 2 * (MAX_RECORD as u64 + FRAME))
            .read_to_end(&mut b)?;
        s.segments += 1;
        s.bytes += b.len() as u64;
        let from = if no == head_no { head_off } else { 0 };
        if let Some(f) = frames(&b) {
            s.records += f.good.iter().filter(|g| g.0 as u64 >= from).count() as u64;
        }
    }
    Ok(Some(s))
}

/// The names of the directories under `root` (a `spool_dir`) that may be
/// instances' spools, sorted: subdirectories (a symlink is not followed)
/// whose names are text, as an instance id is.
///
/// # Errors
///
/// When `root` cannot be read.
pub fn spool_names(root: &Path) -> io::Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in fs::read_dir(root)? {
        let entry = entry?;
        // `DirEntry::file_type` does not follow a symlink.
        if entry.file_type()?.is_dir()
            && let Ok(name) = entry.file_name().into_string()
        {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}

/// Bytes of records a spool directory still holds, from file sizes alone
/// (the segments from the head's on, less the head's offset and the
/// segments' magic): cheap for a spool of any size. `Ok(None)`: not a
/// spool directory.
///
/// # Errors
///
/// When the directory cannot be read.
pub fn pending_bytes(dir: &Path) -> io::Result<Option<u64>> {
    Ok(list(dir)?.map(|l| l.pending_bytes()))
}

/// A spool directory's undelivered segments and its head.
struct Listing {
    /// (number, length) of the segments from the head's on, in order.
    segs: Vec<(u64, u64)>,
    head_no: u64,
    head_off: u64,
}

impl Listing {
    /// The segments' bytes from the head on, less their magic.
    fn pending_bytes(&self) -> u64 {
        let magic = MAGIC.len() as u64;
        self.segs
            .iter()
            .map(|&(no, len)| {
                let from = if no == self.head_no {
                    self.head_off.max(magic)
                } else {
                    magic
                };
                len.saturating_sub(from)
            })
            .sum()
    }
}

/// Lists a spool directory without following a symlink; `Ok(None)` when
/// it is not one (no `lock`, `head` or segment in it).
fn list(dir: &Path) -> io::Result<Option<Listing>> {
    let mut segs = Vec::new();
    let mut is_spool = false;
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name == "lock" || name == HEAD {
            is_spool = true;
        } else if let Some(no) = seg_no(&name) {
            is_spool = true;
            // `DirEntry::metadata` does not follow a symlink.
            let m = entry.metadata()?;
            if m.is_file() {
                segs.push((no, m.len()));
            }
        }
    }
    if !is_spool {
        return Ok(None);
    }
    let mut head = String::new();
    if let Ok(f) = open_no_follow(&dir.join(HEAD)) {
        let _ = f.take(256).read_to_string(&mut head);
    }
    let (head_no, head_off) = parse_head(&head);
    segs.retain(|&(no, _)| no >= head_no);
    segs.sort_unstable();
    Ok(Some(Listing {
        segs,
        head_no,
        head_off,
    }))
}

fn open_no_follow(path: &Path) -> io::Result<fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK)
        .open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(msgs: &[&[u8]]) -> Vec<u8> {
        let mut b = MAGIC.to_vec();
        for m in msgs {
            push_frame(&mut b, m);
        }
        b
    }

    #[test]
    fn names_round_trip_and_strangers_are_not_segments() {
        assert_eq!(seg_no(&seg_name(42)), Some(42));
        assert_eq!(seg_no("42.seg"), None);
        assert_eq!(seg_no("0000000000000000004x.seg"), None);
        assert_eq!(seg_no(&format!("{}.tmp", seg_name(1))), None);
    }

    #[test]
    fn frames_survive_damage_in_the_middle() {
        let mut b = segment(&[b"one", b"two", b"three"]);
        let second = MAGIC.len() + 8 + 3;
        b[second + 9] ^= 0xff;
        let f = frames(&b).unwrap();
        assert_eq!((f.good.len(), f.damaged, f.in_the_middle), (2, 1, true));
        assert_eq!(&b[f.good[1].0 + 8..f.good[1].1], b"three");
        assert!(frames(b"not a segment").is_none());
    }

    #[test]
    fn a_survey_counts_what_is_past_the_head() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(survey(dir.path()).unwrap(), None);
        let b1 = segment(&[b"a", b"bb"]);
        let b2 = segment(&[b"ccc"]);
        fs::write(dir.path().join(seg_name(3)), &b1).unwrap();
        fs::write(dir.path().join(seg_name(4)), &b2).unwrap();
        // The head is past the first record of segment 3.
        fs::write(dir.path().join(HEAD), format!("3 {}\n", MAGIC.len() + 9)).unwrap();
        let s = survey(dir.path()).unwrap().unwrap();
        assert_eq!(s.records, 2);
        assert_eq!(s.segments, 2);
        assert_eq!(s.bytes, (b1.len() + b2.len()) as u64);
        assert_eq!(pending_bytes(dir.path()).unwrap(), Some(8 + 2 + 8 + 3));
        assert_eq!(s.pending_bytes, 8 + 2 + 8 + 3);
        // Delivered segments (before the head's) do not count.
        fs::write(dir.path().join(HEAD), format!("4 {}\n", MAGIC.len())).unwrap();
        assert_eq!(survey(dir.path()).unwrap().unwrap().records, 1);
        assert_eq!(pending_bytes(dir.path()).unwrap(), Some(8 + 3));
    }

    #[test]
    fn a_symlinked_segment_is_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        fs::write(&victim, segment(&[b"x"])).unwrap();
        fs::create_dir(dir.path().join("spool")).unwrap();
        std::os::unix::fs::symlink(&victim, dir.path().join("spool").join(seg_name(1))).unwrap();
        let s = survey(&dir.path().join("spool")).unwrap().unwrap();
        assert_eq!(s.records, 0);
    }
}
