//! The `file:` destination: each message appended to a file as one line,
//! exactly as it would go to a remote receiver (`<PRI>`, timestamp, HOSTNAME,
//! tag, body), a whole batch in one `write(2)`.
//!
//! ulogd may open it as root, so the file is opened without following a
//! symlink (`O_NOFOLLOW`) and only a regular file with one link is taken
//! (not a FIFO, a device, or a hard link to someone else's file). A file
//! the plugin creates gets mode 0640 and the owner of its directory, so
//! that ulogd can still reopen it after it drops to `--uid`. The path is
//! looked at again every [`REOPEN_CHECK`]: when it names another file (a
//! rotation by rename) or nothing, the file is reopened, so logrotate works
//! with or without a SIGHUP. A batch the disk refuses part of is cut back
//! to its last whole line (no half line is ever left behind) and the rest
//! retried like any failed send.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::transport::{Limit, SendError, Transport};

/// How often the path is compared with the open file.
pub(super) const REOPEN_CHECK: Duration = Duration::from_secs(1);

/// An append-only log file.
pub(super) struct LogFile {
    path: PathBuf,
    open: Option<Open>,
    /// The lines of a batch, reused.
    buf: Vec<u8>,
}

struct Open {
    file: File,
    /// (device, inode) of the open file.
    id: (u64, u64),
    checked: Instant,
}

impl Open {
    /// Whether `path` still names the open file.
    fn still_at(&self, path: &Path) -> bool {
        std::fs::symlink_metadata(path).is_ok_and(|m| (m.dev(), m.ino()) == self.id)
    }
}

fn refuse(path: &Path, why: &str) -> io::Error {
    io::Error::other(format!("{} is refused: {why}", path.display()))
}

impl LogFile {
    pub(super) fn new(path: PathBuf) -> Self {
        LogFile {
            path,
            open: None,
            buf: Vec::new(),
        }
    }

    fn open(path: &Path) -> io::Result<Open> {
        // Named first, for a clear message; the open file is what counts.
        if let Ok(m) = std::fs::symlink_metadata(path) {
            if m.file_type().is_symlink() {
                return Err(refuse(
                    path,
                    "it is a symlink (a log file is never followed)",
                ));
            }
            if !m.file_type().is_file() {
                return Err(refuse(path, "it is not a regular file"));
            }
        }
        let created = match OpenOptions::new()
            .append(true)
            .create_new(true)
            .mode(0o640)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(path)
        {
            Ok(f) => Some(f),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => None,
            Err(e) => return Err(io::Error::new(e.kind(), format!("{}: {e}", path.display()))),
        };
        let file = match created {
            Some(f) => {
                // Give it to the directory's owner (ulogd's --uid user on a
                // packaged system), as the spool does.
                if let Some(dir) = path.parent()
                    && let Ok(d) = std::fs::metadata(dir)
                {
                    let _ = std::os::unix::fs::fchown(&f, Some(d.uid()), Some(d.gid()));
                }
                f
            }
            None => OpenOptions::new()
                .append(true)
                // O_NONBLOCK: a FIFO planted there must not hang the open.
                .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK)
                .open(path)
                .map_err(|e| {
                    if e.raw_os_error() == Some(libc::ELOOP) {
                        refuse(path, "it is a symlink (a log file is never followed)")
                    } else {
                        io::Error::new(e.kind(), format!("{}: {e}", path.display()))
                    }
                })?,
        };
        let m = file.metadata()?;
        if !m.file_type().is_file() {
            return Err(refuse(path, "it is not a regular file"));
        }
        if m.nlink() != 1 {
            return Err(refuse(
                path,
                "it has other hard links (it may be another file's name)",
            ));
        }
        Ok(Open {
            file,
            id: (m.dev(), m.ino()),
            checked: Instant::now(),
        })
    }

    /// Writes `buf` at the end of the file; `Err((written, e))` after what
    /// the kernel took.
    fn write(o: &mut Open, buf: &[u8], limit: &Limit<'_>) -> Result<(), (usize, io::Error)> {
        let mut done = 0;
        while done < buf.len() {
            if limit.left().is_zero() {
                return Err((
                    done,
                    io::Error::new(io::ErrorKind::TimedOut, "the write did not finish in time"),
                ));
            }
            match o.file.write(&buf[done..]) {
                Ok(0) => return Err((done, io::ErrorKind::WriteZero.into())),
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err((done, e)),
            }
        }
        Ok(())
    }
}

impl Transport for LogFile {
    fn send(&mut self, msg: &[u8], limit: &Limit<'_>) -> Result<(), SendError> {
        self.send_batch(std::slice::from_ref(&msg.to_vec()), limit)
            .map_err(|(_, e)| e)
    }

    fn send_batch(
        &mut self,
        msgs: &[Vec<u8>],
        limit: &Limit<'_>,
    ) -> Result<(), (usize, SendError)> {
        if let Some(o) = &mut self.open
            && o.checked.elapsed() >= REOPEN_CHECK
        {
            if o.still_at(&self.path) {
                o.checked = Instant::now();
            } else {
                self.open = None;
            }
        }
        let o = match &mut self.open {
            Some(o) => o,
            None => self
                .open
                .insert(Self::open(&self.path).map_err(|e| (0, SendError::Retry(e)))?),
        };
        self.buf.clear();
        let mut ends = Vec::with_capacity(msgs.len());
        for (i, m) in msgs.iter().enumerate() {
            if m.contains(&b'\n') {
                // A line break would split the record in two lines; the
                // formats escape it, so this is a bug, not an input.
                if i == 0 {
                    return Err((
                        0,
                        SendError::Reject(io::Error::other("the message holds a line break")),
                    ));
                }
                break;
            }
            self.buf.extend_from_slice(m);
            self.buf.push(b'\n');
            ends.push(self.buf.len());
        }
        match Self::write(o, &self.buf, limit) {
            Ok(()) => {
                if ends.len() < msgs.len() {
                    // The message with the line break, on its own next time.
                    return Err((ends.len(), SendError::Yield));
                }
                Ok(())
            }
            Err((written, e)) => {
                let whole = ends.iter().take_while(|&&end| end <= written).count();
                let keep = if whole == 0 { 0 } else { ends[whole - 1] };
                // No half line stays behind: cut the file back to the last
                // whole line (from its length now, which also holds after a
                // rotation by truncation); if even that fails, the next open
                // starts anew (a half line then stays, and the line is sent
                // again).
                let half = (written - keep) as u64;
                let cut = o
                    .file
                    .metadata()
                    .and_then(|m| o.file.set_len(m.len().saturating_sub(half)));
                if cut.is_err() {
                    self.open = None;
                }
                Err((whole, SendError::Retry(e)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;
    use crate::sink::StopSignal;
    use crate::sink::testutil::{TinyDisk, temp_dir};

    fn batch(t: &mut LogFile, msgs: &[&str]) -> Result<(), (usize, SendError)> {
        let stop = StopSignal::new();
        let limit = Limit {
            end: Instant::now() + Duration::from_secs(30),
            stop: &stop,
            yield_now: None,
        };
        let msgs: Vec<Vec<u8>> = msgs.iter().map(|m| m.as_bytes().to_vec()).collect();
        t.send_batch(&msgs, &limit)
    }

    #[test]
    fn a_batch_becomes_lines_in_a_new_file_of_mode_0640() {
        let dir = temp_dir("file-dest");
        let path = dir.path().join("flows.log");
        let mut t = LogFile::new(path.clone());
        batch(&mut t, &["<30>a", "<30>b"]).unwrap();
        batch(&mut t, &["<30>c"]).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "<30>a\n<30>b\n<30>c\n"
        );
        let m = std::fs::metadata(&path).unwrap();
        assert_eq!(m.permissions().mode() & 0o777, 0o640);
    }

    #[test]
    fn a_symlink_a_fifo_and_a_hard_link_are_refused_and_left_alone() {
        let dir = temp_dir("file-dest-hostile");
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "keep\n").unwrap();
        let link = dir.path().join("link.log");
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        let hard = dir.path().join("hard.log");
        std::fs::hard_link(&victim, &hard).unwrap();
        let fifo = dir.path().join("fifo.log");
        assert!(
            std::process::Command::new("mkfifo")
                .arg(&fifo)
                .status()
                .unwrap()
                .success()
        );
        for (p, why) in [
            (&link, "symlink"),
            (&hard, "hard links"),
            (&fifo, "not a regular file"),
        ] {
            let mut t = LogFile::new(p.clone());
            match batch(&mut t, &["<30>x"]) {
                Err((0, SendError::Retry(e))) => {
                    assert!(e.to_string().contains(why), "{p:?}: {e}")
                }
                other => panic!("{p:?}: {other:?}"),
            }
        }
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep\n");
    }

    #[test]
    fn a_file_renamed_away_is_followed_by_a_new_one() {
        let dir = temp_dir("file-dest-rotate");
        let path = dir.path().join("flows.log");
        let mut t = LogFile::new(path.clone());
        batch(&mut t, &["<30>1"]).unwrap();
        std::fs::rename(&path, dir.path().join("flows.log.1")).unwrap();
        if let Some(o) = &mut t.open {
            o.checked -= REOPEN_CHECK;
        }
        batch(&mut t, &["<30>2"]).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "<30>2\n");
        assert_eq!(
            std::fs::read_to_string(dir.path().join("flows.log.1")).unwrap(),
            "<30>1\n"
        );
    }

    #[test]
    fn a_full_disk_leaves_only_whole_lines_and_counts_what_was_written() {
        let Some(disk) = TinyDisk::mount("file-dest-full", 64) else {
            eprintln!("SKIP: mounting a tmpfs needs root");
            return;
        };
        let path = disk.path().join("flows.log");
        let mut t = LogFile::new(path.clone());
        let line = "<30>".to_string() + &"x".repeat(995);
        let msgs: Vec<&str> = std::iter::repeat_n(line.as_str(), 200).collect();
        let mut written = 0;
        let err = loop {
            match batch(&mut t, &msgs) {
                Ok(()) => written += msgs.len(),
                Err((n, e)) => break (written + n, e),
            }
        };
        assert!(matches!(err.1, SendError::Retry(_)));
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.ends_with('\n'));
        assert_eq!(text.lines().count(), err.0);
        assert!(text.lines().all(|l| l == line));
    }
}
