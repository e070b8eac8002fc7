//! Counting what arrived at a sink: the lines of a growing file, read
//! incrementally, each classified as a flow's start (NEW), end (DESTROY) or
//! ident line by the marks every output writes; or a database table's
//! rows, counted by the database.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use memchr::memmem;

/// What one line is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Start,
    End,
    Ident,
    Other,
}

/// Lines counted by kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub start: u64,
    pub end: u64,
    pub ident: u64,
    pub other: u64,
}

impl Counts {
    /// Start and end lines: one per conntrack event (NEW, DESTROY).
    pub fn flow_lines(&self) -> u64 {
        self.start + self.end
    }

    pub fn total(&self) -> u64 {
        self.start + self.end + self.ident + self.other
    }

    /// The lines counted since `earlier`.
    pub fn minus(&self, earlier: &Counts) -> Counts {
        Counts {
            start: self.start.saturating_sub(earlier.start),
            end: self.end.saturating_sub(earlier.end),
            ident: self.ident.saturating_sub(earlier.ident),
            other: self.other.saturating_sub(earlier.other),
        }
    }

    fn add(&mut self, k: Kind) {
        match k {
            Kind::Start => self.start += 1,
            Kind::End => self.end += 1,
            Kind::Ident => self.ident += 1,
            Kind::Other => self.other += 1,
        }
    }
}

/// The marks, in the order they are tried. masqlog text `ev=start`,
/// RFC 5424 `ev="start"`, JSON `"ev":"start"`; PRINTFLOW (LOGEMU, SYSLOG)
/// `[NEW]`/`[DESTROY]`; ulogd's JSON `"ct.event": 1`/`4` (handled apart).
const MARKS: &[(&[u8], Kind)] = &[
    (b"ev=start", Kind::Start),
    (b"ev=\"start\"", Kind::Start),
    (b"\"ev\":\"start\"", Kind::Start),
    (b"ev=end", Kind::End),
    (b"ev=\"end\"", Kind::End),
    (b"\"ev\":\"end\"", Kind::End),
    (b"ev=ident", Kind::Ident),
    (b"ev=\"ident\"", Kind::Ident),
    (b"\"ev\":\"ident\"", Kind::Ident),
    (b"[NEW]", Kind::Start),
    (b"[DESTROY]", Kind::End),
];

/// The kind of one line.
pub fn classify(line: &[u8]) -> Kind {
    for (mark, kind) in MARKS {
        if memmem::find(line, mark).is_some() {
            return *kind;
        }
    }
    // ulogd's JSON output: "ct.event": 1 (NEW) or 4 (DESTROY)
    if let Some(at) = memmem::find(line, b"\"ct.event\"") {
        let rest = &line[at + b"\"ct.event\"".len()..];
        let digits: Vec<u8> = rest
            .iter()
            .copied()
            .skip_while(|c| *c == b':' || *c == b' ')
            .take_while(u8::is_ascii_digit)
            .collect();
        return match digits.as_slice() {
            b"1" => Kind::Start,
            b"4" => Kind::End,
            _ => Kind::Other,
        };
    }
    Kind::Other
}

/// Where a row's lines are counted: a file read from where the last read
/// stopped (the live segment of a store directory, once there is one), or
/// a count the sink gives itself (a database table), asked at most once a
/// second.
pub struct Tail {
    from: From,
    pub counts: Counts,
}

enum From {
    File {
        path: PathBuf,
        /// A store directory: `path` is its live segment (`*.log`), found
        /// at the first poll that sees one.
        dir: Option<PathBuf>,
        offset: u64,
        partial: Vec<u8>,
    },
    Query {
        count: Box<dyn FnMut() -> std::io::Result<Counts>>,
        next: Instant,
    },
}

/// How often a sink's own count is asked for.
const QUERY_EVERY: Duration = Duration::from_secs(1);

impl Tail {
    /// Starts at the current end of `path` (or at 0 when it does not exist).
    pub fn from_end(path: &Path) -> Tail {
        let offset = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        Tail {
            from: From::File {
                path: path.to_path_buf(),
                dir: None,
                offset,
                partial: Vec::new(),
            },
            counts: Counts::default(),
        }
    }

    /// The live segment of the (empty) store directory `dir`, from its start.
    pub fn live_segment(dir: &Path) -> Tail {
        Tail {
            from: From::File {
                path: PathBuf::new(),
                dir: Some(dir.to_path_buf()),
                offset: 0,
                partial: Vec::new(),
            },
            counts: Counts::default(),
        }
    }

    /// The counts `count` gives (all of the sink's lines so far).
    pub fn query(count: impl FnMut() -> std::io::Result<Counts> + 'static) -> Tail {
        Tail {
            from: From::Query {
                count: Box::new(count),
                next: Instant::now(),
            },
            counts: Counts::default(),
        }
    }

    /// Reads what was appended; returns whether any complete line came.
    pub fn poll(&mut self) -> std::io::Result<bool> {
        let before = self.counts.total();
        match &mut self.from {
            From::Query { count, next } => {
                if Instant::now() < *next {
                    return Ok(false);
                }
                self.counts = count()?;
                *next = Instant::now() + QUERY_EVERY;
            }
            From::File {
                path,
                dir,
                offset,
                partial,
            } => {
                if let Some(d) = dir
                    && path.as_os_str().is_empty()
                {
                    match live_log(d)? {
                        Some(p) => *path = p,
                        None => return Ok(false),
                    }
                }
                read_new(path, offset, partial, &mut self.counts)?;
            }
        }
        Ok(self.counts.total() > before)
    }
}

/// The `*.log` file of store directory `dir`, if any.
fn live_log(dir: &Path) -> std::io::Result<Option<PathBuf>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    for e in entries {
        let p = e?.path();
        if p.extension().is_some_and(|x| x == "log") {
            return Ok(Some(p));
        }
    }
    Ok(None)
}

/// Counts the complete lines of `path` after `offset`, keeping a partial
/// last line for the next call.
fn read_new(
    path: &Path,
    offset: &mut u64,
    partial: &mut Vec<u8>,
    counts: &mut Counts,
) -> std::io::Result<()> {
    let mut f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    let len = f.metadata()?.len();
    if len < *offset {
        // truncated behind our back: start over
        *offset = 0;
        partial.clear();
    }
    if len == *offset {
        return Ok(());
    }
    f.seek(SeekFrom::Start(*offset))?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        *offset += n as u64;
        let mut chunk = &buf[..n];
        while let Some(nl) = memchr::memchr(b'\n', chunk) {
            let line = if partial.is_empty() {
                &chunk[..nl]
            } else {
                partial.extend_from_slice(&chunk[..nl]);
                partial.as_slice()
            };
            counts.add(classify(line));
            partial.clear();
            chunk = &chunk[nl + 1..];
        }
        partial.extend_from_slice(chunk);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_output_s_lines_are_told_apart() {
        let cases: &[(&[u8], Kind)] = &[
            (b"<30>Nov 23 21:03:15 masqlog[9]: masqlog/1 ev=start nat=snat proto=udp", Kind::Start),
            (b"<30>Nov 23 21:03:15 masqlog[9]: masqlog/1 ev=end nat=snat", Kind::End),
            (b"masqlog/1 ev=ident nat=snat proto=tcp id=1 ident=busy", Kind::Ident),
            (b"<30>1 2026-11-23T21:03:15Z h masqlog 9 start [masqlog@32473 masqlog=\"1\" ev=\"start\"]", Kind::Start),
            (b"<30>1 - - masqlog 9 end [masqlog@32473 masqlog=\"1\" ev=\"end\"]", Kind::End),
            (b"<30>Nov 23 masqlog[9]: {\"masqlog\":1,\"ev\":\"start\",\"nat\":\"snat\"}", Kind::Start),
            (b"{\"masqlog\":1,\"ev\":\"ident\"}", Kind::Ident),
            (b"Nov 23 21:03:15 r [NEW] ORIG: SRC=10.99.0.2 DST=203.0.113.7", Kind::Start),
            (b"<30>Nov 23 21:03:15 ulogd[7]: [DESTROY] ORIG: SRC=10.99.0.2", Kind::End),
            (b"{\"timestamp\": \"x\", \"ct.event\": 1, \"orig.ip.saddr.str\": \"10.99.0.2\"}", Kind::Start),
            (b"{\"ct.event\":4}", Kind::End),
            (b"{\"ct.event\": 2}", Kind::Other),
            (b"something else", Kind::Other),
        ];
        for (line, kind) in cases {
            assert_eq!(classify(line), *kind, "{}", String::from_utf8_lossy(line));
        }
    }

    #[test]
    fn lines_split_across_reads_count_once() {
        let dir = std::env::temp_dir().join(format!("masqlog-bench-sink-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("f.log");
        std::fs::write(&p, b"old ev=start\n").unwrap();
        let mut t = Tail::from_end(&p);
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new().append(true).open(&p).unwrap();
        f.write_all(b"x ev=start\ny ev=e").unwrap();
        assert!(t.poll().unwrap());
        assert_eq!(t.counts.start, 1);
        f.write_all(b"nd\n").unwrap();
        t.poll().unwrap();
        assert_eq!((t.counts.start, t.counts.end), (1, 1));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
