//! Counting what arrived at a sink: the lines of a growing file, read
//! incrementally, each classified as a flow's start (NEW), end (DESTROY) or
//! ident line by the marks every output writes.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

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

/// A file read from where the last read stopped.
#[derive(Debug)]
pub struct Tail {
    path: PathBuf,
    offset: u64,
    partial: Vec<u8>,
    pub counts: Counts,
}

impl Tail {
    /// Starts at the current end of `path` (or at 0 when it does not exist).
    pub fn from_end(path: &Path) -> Tail {
        let offset = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        Tail {
            path: path.to_path_buf(),
            offset,
            partial: Vec::new(),
            counts: Counts::default(),
        }
    }

    /// Reads what was appended; returns whether any complete line came.
    pub fn poll(&mut self) -> std::io::Result<bool> {
        let mut f = match File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e),
        };
        let len = f.metadata()?.len();
        if len < self.offset {
            // truncated behind our back: start over
            self.offset = 0;
            self.partial.clear();
        }
        if len == self.offset {
            return Ok(false);
        }
        f.seek(SeekFrom::Start(self.offset))?;
        let before = self.counts.total();
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = f.read(&mut buf)?;
            if n == 0 {
                break;
            }
            self.offset += n as u64;
            let mut chunk = &buf[..n];
            while let Some(nl) = memchr::memchr(b'\n', chunk) {
                let line = if self.partial.is_empty() {
                    &chunk[..nl]
                } else {
                    self.partial.extend_from_slice(&chunk[..nl]);
                    self.partial.as_slice()
                };
                let kind = classify(line);
                self.counts.add(kind);
                self.partial.clear();
                chunk = &chunk[nl + 1..];
            }
            self.partial.extend_from_slice(chunk);
        }
        Ok(self.counts.total() > before)
    }
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
