//! The inputs: files, directories (their files), rotated sets and stdin,
//! put in time order and opened with compression detected by magic bytes.
//!
//! **Order.** Files are grouped into rotated sets by name (`syslog`,
//! `syslog.1`, `syslog.2.gz`, ...; logrotate's `dateext` names
//! `syslog-20261121.gz` too) and each set is read oldest first: the highest
//! number first, the live file last. Sets are read in name order, stdin
//! last. Joining start and end lines does not depend on this order (lines
//! are joined by their own times), but the windowed search reads forward
//! from the report time and follows flows that are still open into later
//! files.
//!
//! **Directories** are read one level deep; hidden files, subdirectories
//! and binary files (a NUL byte in the first 8 KiB, such as `wtmp` or
//! `lastlog`) are skipped with a note.
//!
//! **Compression** is recognised by its magic bytes, whatever the name:
//! gzip (`1f 8b`, concatenated members too) and zstd (`28 b5 2f fd`) are
//! read as streams; xz and bzip2 are refused with the command to use
//! instead.

use crate::access;
use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// One LOG argument.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    Path(PathBuf),
    /// `-`, or no LOG at all.
    Stdin,
    /// Lines read from elsewhere (a database row: see `lookup::db`), named
    /// as evidence shows them.
    Rows(Rows),
}

/// Lines held in memory, with the name evidence gives them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rows {
    pub name: String,
    pub text: std::sync::Arc<[u8]>,
}

impl Input {
    /// A LOG argument: `-` is stdin, anything else a path.
    pub fn from_arg(p: &Path) -> Input {
        if p.as_os_str() == "-" {
            Input::Stdin
        } else {
            Input::Path(p.to_path_buf())
        }
    }
}

/// One input to read, after directories are expanded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Spec {
    File(PathBuf),
    Stdin,
    Rows(Rows),
}

impl Spec {
    /// How evidence names the input.
    pub fn name(&self) -> String {
        match self {
            Spec::File(p) => p.display().to_string(),
            Spec::Stdin => "<stdin>".to_string(),
            Spec::Rows(r) => r.name.clone(),
        }
    }
}

/// How a file is compressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

/// Compression formats that are recognised but not read.
fn unsupported(magic: &[u8]) -> Option<&'static str> {
    if magic.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        Some("xz")
    } else if magic.starts_with(b"BZh") {
        Some("bzip2")
    } else {
        None
    }
}

/// The compression of a file from its first bytes; an error for formats
/// recognised but not read.
pub fn sniff(magic: &[u8]) -> Result<Compression, String> {
    if magic.starts_with(&[0x1f, 0x8b]) {
        Ok(Compression::Gzip)
    } else if magic.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Ok(Compression::Zstd)
    } else if let Some(name) = unsupported(magic) {
        let tool = if name == "xz" { "xz -dc" } else { "bzip2 -dc" };
        Err(format!(
            "{name}-compressed, which masqlog does not read: pipe it in (`{tool} FILE | masqlog lookup ... -`)"
        ))
    } else {
        Ok(Compression::None)
    }
}

/// Where a file stands in its rotated set: `(base, tier, n)`, sorted
/// oldest first.
fn rotation_key(path: &Path) -> (PathBuf, u8, u64) {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut stem = name.as_str();
    for ext in [".gz", ".zst", ".zstd", ".xz", ".bz2"] {
        if let Some(s) = stem.strip_suffix(ext) {
            stem = s;
            break;
        }
    }
    let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let digits_after = |sep: char| -> Option<(&str, &str)> {
        let (base, n) = stem.rsplit_once(sep)?;
        (!base.is_empty() && !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
            .then_some((base, n))
    };
    if let Some((base, n)) = digits_after('.').or_else(|| digits_after('-')) {
        let value: u64 = n.parse().unwrap_or(u64::MAX);
        // Dates (dateext: 20261121, 2026112113) grow with time; rotation
        // numbers grow with age.
        let key = if n.len() >= 8 {
            value
        } else {
            u64::MAX - value
        };
        return (dir.join(base), 0, key);
    }
    (dir.join(stem), 1, 0)
}

/// Sorts files into rotated sets, each oldest first.
pub fn sort_rotated(paths: &mut [PathBuf]) {
    paths.sort_by(|a, b| rotation_key(a).cmp(&rotation_key(b)).then_with(|| a.cmp(b)));
}

/// Whether the first bytes of a file say it is binary (not a log).
fn looks_binary(path: &Path) -> io::Result<bool> {
    let mut f = File::open(path)?;
    let mut buf = vec![0u8; 8192];
    let mut n = 0;
    while n < buf.len() {
        let k = f.read(&mut buf[n..])?;
        if k == 0 {
            break;
        }
        n += k;
    }
    let head = &buf[..n];
    if sniff(head) != Ok(Compression::None) {
        return Ok(false);
    }
    Ok(memchr::memchr(0, head).is_some())
}

/// Expands the LOG arguments: the inputs to read, in order, and the notes
/// and problems found on the way (unreadable paths are problems).
pub fn expand(inputs: &[Input]) -> (Vec<Spec>, Vec<String>, Vec<(String, String)>) {
    let mut files = Vec::new();
    let mut notes = Vec::new();
    let mut problems = Vec::new();
    let mut stdin = false;
    let mut rows = Vec::new();
    for input in inputs {
        match input {
            Input::Stdin => stdin = true,
            Input::Rows(r) => rows.push(Spec::Rows(r.clone())),
            Input::Path(p) => match fs::metadata(p) {
                Err(e) => problems.push((p.display().to_string(), access::why(p, &e))),
                Ok(m) if m.is_dir() => match fs::read_dir(p) {
                    Err(e) => problems.push((p.display().to_string(), access::why(p, &e))),
                    Ok(rd) => {
                        let mut skipped = Vec::new();
                        for entry in rd.flatten() {
                            let path = entry.path();
                            let hidden = entry.file_name().to_string_lossy().starts_with('.');
                            let Ok(meta) = fs::metadata(&path) else {
                                continue;
                            };
                            if hidden || !meta.is_file() {
                                continue;
                            }
                            match looks_binary(&path) {
                                Ok(false) => files.push(path),
                                Ok(true) => skipped.push(path),
                                Err(e) => problems
                                    .push((path.display().to_string(), access::why(&path, &e))),
                            }
                        }
                        if !skipped.is_empty() {
                            skipped.sort();
                            let names: Vec<String> =
                                skipped.iter().map(|p| p.display().to_string()).collect();
                            notes.push(format!("skipped binary files: {}", names.join(", ")));
                        }
                    }
                },
                Ok(_) => files.push(p.clone()),
            },
        }
    }
    let mut seen = HashSet::new();
    files.retain(|p| seen.insert(fs::canonicalize(p).unwrap_or_else(|_| p.clone())));
    sort_rotated(&mut files);
    let mut specs: Vec<Spec> = files.into_iter().map(Spec::File).collect();
    specs.append(&mut rows);
    if stdin {
        specs.push(Spec::Stdin);
    }
    (specs, notes, problems)
}

/// A reader that counts the bytes taken from the file under a decoder.
pub struct Counting<R> {
    inner: R,
    count: std::rc::Rc<std::cell::Cell<u64>>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.set(self.count.get() + n as u64);
        Ok(n)
    }
}

/// An opened input.
pub enum Opened {
    /// An uncompressed regular file: can be bisected.
    Plain { file: File, size: u64 },
    /// A stream (compressed file or stdin): read once, front to back.
    Stream {
        reader: Box<dyn Read>,
        /// Bytes taken from the underlying file so far (for progress).
        consumed: std::rc::Rc<std::cell::Cell<u64>>,
        /// The size of the underlying file, when known.
        size: Option<u64>,
        compression: Compression,
    },
}

/// File metadata the search uses before opening.
pub fn mtime(path: &Path) -> Option<SystemTime> {
    fs::metadata(path).ok()?.modified().ok()
}

/// Reads up to `n` first bytes (fewer only at the end of the input).
fn read_magic(r: &mut impl Read, n: usize) -> io::Result<Vec<u8>> {
    let mut magic = vec![0u8; n];
    let mut got = 0;
    while got < n {
        match r.read(&mut magic[got..]) {
            Ok(0) => break,
            Ok(k) => got += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    magic.truncate(got);
    Ok(magic)
}

/// The bytes of a stream whose first bytes `magic` were already read,
/// decompressed as they say.
fn decoded(
    magic: Vec<u8>,
    rest: impl Read + 'static,
) -> Result<(Box<dyn Read>, Compression), String> {
    let compression = sniff(&magic)?;
    let whole = io::Cursor::new(magic).chain(rest);
    let reader: Box<dyn Read> = match compression {
        Compression::None => Box::new(whole),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(
            io::BufReader::with_capacity(1 << 16, whole),
        )),
        Compression::Zstd => {
            Box::new(zstd::stream::read::Decoder::new(whole).map_err(|e| format!("zstd: {e}"))?)
        }
    };
    Ok((reader, compression))
}

/// Opens a file, detecting compression by its first bytes. A FIFO or a
/// process substitution (`<(zcat FILE)`) is read as a stream, without
/// seeking.
pub fn open_file(path: &Path) -> Result<Opened, String> {
    let mut file = File::open(path).map_err(|e| access::why(path, &e))?;
    let meta = file.metadata().map_err(|e| e.to_string())?;
    let magic = read_magic(&mut file, 6).map_err(|e| e.to_string())?;
    if meta.is_file() && sniff(&magic)? == Compression::None {
        file.seek(SeekFrom::Start(0)).map_err(|e| e.to_string())?;
        return Ok(Opened::Plain {
            file,
            size: meta.len(),
        });
    }
    let consumed = std::rc::Rc::new(std::cell::Cell::new(magic.len() as u64));
    let counting = Counting {
        inner: file,
        count: consumed.clone(),
    };
    let (reader, compression) = decoded(magic, counting)?;
    Ok(Opened::Stream {
        reader,
        consumed,
        size: meta.is_file().then_some(meta.len()),
        compression,
    })
}

/// Stdin as a stream input, decompressed when its first bytes say gzip or
/// zstd (`zcat` is not needed, and compressed data is never read as text).
pub fn stdin_stream(mut reader: Box<dyn Read>) -> Result<Opened, String> {
    let magic = read_magic(&mut reader, 6).map_err(|e| e.to_string())?;
    let consumed = std::rc::Rc::new(std::cell::Cell::new(magic.len() as u64));
    let counting = Counting {
        inner: reader,
        count: consumed.clone(),
    };
    let (reader, compression) = decoded(magic, counting)?;
    Ok(Opened::Stream {
        reader,
        consumed,
        size: None,
        compression,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[PathBuf]) -> Vec<String> {
        v.iter().map(|p| p.display().to_string()).collect()
    }

    #[test]
    fn rotated_sets_are_read_oldest_first() {
        let mut v: Vec<PathBuf> = [
            "/l/syslog",
            "/l/syslog.1",
            "/l/syslog.10.gz",
            "/l/syslog.2.gz",
            "/l/daemon.log",
            "/l/daemon.log.1",
            "/l/syslog.3.zst",
        ]
        .iter()
        .map(PathBuf::from)
        .collect();
        sort_rotated(&mut v);
        assert_eq!(
            names(&v),
            vec![
                "/l/daemon.log.1",
                "/l/daemon.log",
                "/l/syslog.10.gz",
                "/l/syslog.3.zst",
                "/l/syslog.2.gz",
                "/l/syslog.1",
                "/l/syslog",
            ]
        );
        let mut v: Vec<PathBuf> = [
            "/l/messages",
            "/l/messages-20261121.gz",
            "/l/messages-20261107.gz",
            "/l/messages-20261114",
        ]
        .iter()
        .map(PathBuf::from)
        .collect();
        sort_rotated(&mut v);
        assert_eq!(
            names(&v),
            vec![
                "/l/messages-20261107.gz",
                "/l/messages-20261114",
                "/l/messages-20261121.gz",
                "/l/messages",
            ]
        );
    }

    #[test]
    fn magic_bytes_decide() {
        assert_eq!(sniff(&[0x1f, 0x8b, 8, 0]), Ok(Compression::Gzip));
        assert_eq!(sniff(&[0x28, 0xb5, 0x2f, 0xfd, 0]), Ok(Compression::Zstd));
        assert_eq!(sniff(b"Nov 21 13:37:42"), Ok(Compression::None));
        assert_eq!(sniff(b""), Ok(Compression::None));
        let e = sniff(&[0xfd, b'7', b'z', b'X', b'Z', 0]).unwrap_err();
        assert!(e.contains("xz -dc"), "{e}");
        assert!(sniff(b"BZh91AY").is_err());
    }
}
