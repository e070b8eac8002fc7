//! A spool directory held open: every file in it is opened, created,
//! renamed and removed relative to the directory's descriptor, never by a
//! path a symlink could redirect. ulogd opens it as root before it switches
//! to its `--uid` user, who owns the directory; that user must not be able
//! to make the next start open, truncate or hand over another file.

use std::fs::File;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, Mode, OFlags};

/// Why a spool directory was refused or could not be opened.
#[derive(Debug)]
pub enum DirError {
    /// The directory (or its parent) could not be created or opened.
    Io(&'static str, io::Error),
    /// It is there but unsafe to use; the text says why.
    Unsafe(String),
}

/// An open spool directory.
#[derive(Debug)]
pub struct SpoolDir {
    fd: OwnedFd,
    path: PathBuf,
    /// Who owns what is created in it: the owner of the configured spool
    /// directory (its parent), ulogd's `--uid` user on a packaged system.
    owner: (u32, u32),
}

fn io(e: rustix::io::Errno) -> io::Error {
    io::Error::from_raw_os_error(e.raw_os_error())
}

impl SpoolDir {
    /// Opens `path` (creating it, mode 0700): its parent, the configured
    /// `spool_dir`, is opened as named; the last component is created and
    /// opened relative to it without following a symlink. Refused: a
    /// symlink or anything else than a directory, a directory others than
    /// its owner may write to, a directory owned by someone else than root
    /// or the parent's owner.
    pub fn open(path: &Path) -> Result<SpoolDir, DirError> {
        let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
            return Err(DirError::Unsafe("it has no parent directory".into()));
        };
        let dir_flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
        if let Err(e) = std::fs::DirBuilder::new().recursive(true).create(parent) {
            return Err(DirError::Io("creating its parent", e));
        }
        let parent_fd = rustix::fs::open(parent, dir_flags, Mode::empty())
            .map_err(|e| DirError::Io("opening its parent", io(e)))?;
        let p = rustix::fs::fstat(&parent_fd)
            .map_err(|e| DirError::Io("looking at its parent", io(e)))?;
        let owner = (p.st_uid, p.st_gid);
        match rustix::fs::mkdirat(&parent_fd, name, Mode::from_raw_mode(0o700)) {
            Ok(()) | Err(rustix::io::Errno::EXIST) => {}
            Err(e) => return Err(DirError::Io("creating it", io(e))),
        }
        let fd = match rustix::fs::openat(
            &parent_fd,
            name,
            dir_flags | OFlags::NOFOLLOW,
            Mode::empty(),
        ) {
            Ok(fd) => fd,
            Err(rustix::io::Errno::LOOP) => {
                return Err(DirError::Unsafe(
                    "it is a symlink (a spool directory is never followed)".into(),
                ));
            }
            Err(rustix::io::Errno::NOTDIR) => {
                let link = rustix::fs::statat(&parent_fd, name, AtFlags::SYMLINK_NOFOLLOW)
                    .is_ok_and(|m| m.st_mode & 0o170000 == 0o120000);
                return Err(DirError::Unsafe(if link {
                    "it is a symlink (a spool directory is never followed)".into()
                } else {
                    "it is not a directory".into()
                }));
            }
            Err(e) => return Err(DirError::Io("opening it", io(e))),
        };
        let m = rustix::fs::fstat(&fd).map_err(|e| DirError::Io("looking at it", io(e)))?;
        if m.st_mode & 0o022 != 0 {
            return Err(DirError::Unsafe(format!(
                "others than its owner may write to it (mode {:o}); chmod go-w it",
                m.st_mode & 0o7777
            )));
        }
        if m.st_uid != 0 && m.st_uid != owner.0 {
            return Err(DirError::Unsafe(format!(
                "it is owned by uid {}, neither root nor the owner of {} (uid {}); chown it",
                m.st_uid,
                parent.display(),
                owner.0
            )));
        }
        let dir = SpoolDir {
            fd,
            path: path.to_path_buf(),
            owner,
        };
        dir.adopt_fd(&dir.fd);
        Ok(dir)
    }

    /// The directory's path (for messages).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The path of `name` in it (for messages only: never opened by path).
    pub fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// Gives what `fd` is to the directory's owner. Errors are ignored:
    /// without root this only succeeds for the user's own files, which are
    /// right already.
    fn adopt_fd(&self, fd: &impl std::os::fd::AsFd) {
        if let Ok(m) = rustix::fs::fstat(fd)
            && (m.st_uid, m.st_gid) != self.owner
        {
            let _ = rustix::fs::fchown(
                fd,
                Some(rustix::fs::Uid::from_raw(self.owner.0)),
                Some(rustix::fs::Gid::from_raw(self.owner.1)),
            );
        }
    }

    /// Opens `name` in the directory with `flags` (a symlink is never
    /// followed); a file it creates is mode 0600 and belongs to the
    /// directory's owner. Anything else than a regular file is refused.
    pub fn open_file(&self, name: &str, flags: OFlags) -> io::Result<File> {
        let fd = rustix::fs::openat(
            &self.fd,
            name,
            flags | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK,
            Mode::from_raw_mode(0o600),
        )
        .map_err(io)?;
        let file = File::from(fd);
        let m = file.metadata()?;
        if !m.is_file() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} is not a regular file", self.join(name).display()),
            ));
        }
        if (m.uid(), m.gid()) != self.owner {
            self.adopt_fd(&file);
        }
        Ok(file)
    }

    /// Creates `name`, which must not exist yet (`O_EXCL`).
    pub fn create_new(&self, name: &str) -> io::Result<File> {
        self.open_file(name, OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL)
    }

    /// Removes `name` (the entry itself, never what a symlink names).
    pub fn remove(&self, name: &str) -> io::Result<()> {
        rustix::fs::unlinkat(&self.fd, name, AtFlags::empty()).map_err(io)
    }

    /// Removes `name` if it is there.
    pub fn remove_if_there(&self, name: &str) -> io::Result<()> {
        match self.remove(name) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            r => r,
        }
    }

    /// Renames `from` to `to` within the directory.
    pub fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        rustix::fs::renameat(&self.fd, from, &self.fd, to).map_err(io)
    }

    /// Makes the directory's entries durable (after a create or rename).
    pub fn sync(&self) -> io::Result<()> {
        rustix::fs::fsync(&self.fd).map_err(io)
    }

    /// The names in the directory.
    pub fn names(&self) -> io::Result<Vec<String>> {
        let mut out = Vec::new();
        let mut dir = rustix::fs::Dir::read_from(&self.fd).map_err(io)?;
        while let Some(entry) = dir.read() {
            let entry = entry.map_err(io)?;
            let name = entry.file_name().to_string_lossy();
            if name != "." && name != ".." {
                out.push(name.into_owned());
            }
        }
        Ok(out)
    }
}
