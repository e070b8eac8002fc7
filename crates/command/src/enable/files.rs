//! Reading and replacing the files `masqlog enable` edits, as root in
//! /etc: never through a symlink (O_NOFOLLOW), only regular files, the new
//! content written to a fresh file beside the old (O_EXCL), given the old
//! one's owner and mode, synced, then renamed over it and the directory
//! synced; a backup of the old content beside it, made the same way.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Why a file could not be read or replaced.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FileError {
    #[error("{path}: {why}")]
    Refused { path: String, why: String },
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: String,
        source: io::Error,
    },
}

fn io_err<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> FileError + 'a {
    move |source| FileError::Io {
        what,
        path: path.display().to_string(),
        source,
    }
}

/// A file as read: its bytes, owner and mode.
#[derive(Clone, Debug)]
pub struct Existing {
    pub bytes: Vec<u8>,
    pub uid: u32,
    pub gid: u32,
    pub mode: u32,
}

/// The most a config may hold (ulogd's are some kB).
const MAX_LEN: u64 = 16 << 20;

/// Reads a regular file without following a symlink; `Ok(None)` if it does
/// not exist.
pub fn read(path: &Path) -> Result<Option<Existing>, FileError> {
    let f = match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return Err(FileError::Refused {
                path: path.display().to_string(),
                why: "is a symlink: edit the file it points to, by its own path".into(),
            });
        }
        Err(e) => return Err(io_err("cannot open", path)(e)),
    };
    let meta = f.metadata().map_err(io_err("cannot stat", path))?;
    if !meta.is_file() {
        return Err(FileError::Refused {
            path: path.display().to_string(),
            why: "is not a regular file".into(),
        });
    }
    let mut bytes = Vec::new();
    f.take(MAX_LEN + 1)
        .read_to_end(&mut bytes)
        .map_err(io_err("cannot read", path))?;
    if bytes.len() as u64 > MAX_LEN {
        return Err(FileError::Refused {
            path: path.display().to_string(),
            why: format!("is larger than {MAX_LEN} bytes: not a config"),
        });
    }
    Ok(Some(Existing {
        bytes,
        uid: meta.uid(),
        gid: meta.gid(),
        mode: meta.mode() & 0o7777,
    }))
}

/// Writes `bytes` to `path` atomically, with `uid`, `gid` and `mode`: a
/// new file beside it, synced, renamed over it, the directory synced.
pub fn replace(path: &Path, bytes: &[u8], uid: u32, gid: u32, mode: u32) -> Result<(), FileError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp: PathBuf = dir.join(format!(".{name}.masqlog-{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&tmp)
        .map_err(io_err("cannot create", &tmp))?;
    let result = (|| {
        // owner first, then the mode (chown clears set-id bits)
        std::os::unix::fs::fchown(&f, Some(uid), Some(gid))
            .map_err(io_err("cannot chown", &tmp))?;
        f.set_permissions(std::fs::Permissions::from_mode(mode))
            .map_err(io_err("cannot chmod", &tmp))?;
        f.write_all(bytes).map_err(io_err("cannot write", &tmp))?;
        f.sync_all().map_err(io_err("cannot sync", &tmp))?;
        std::fs::rename(&tmp, path).map_err(io_err("cannot rename into place", path))?;
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io_err("cannot sync", dir))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// The backup of `path`: `PATH.masqlog.bak`.
pub fn backup_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_os_string();
    s.push(".masqlog.bak");
    PathBuf::from(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replace_keeps_owner_and_mode_and_read_refuses_symlinks() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("ulogd.conf");
        std::fs::write(&p, "old\n").unwrap();
        replace(&p, b"new\n", 0, 0, 0o640).unwrap();
        let r = read(&p).unwrap().unwrap();
        assert_eq!(r.bytes, b"new\n");
        assert_eq!(r.mode, 0o640);
        let link = d.path().join("link.conf");
        std::os::unix::fs::symlink(&p, &link).unwrap();
        let e = read(&link).unwrap_err();
        assert!(e.to_string().contains("symlink"), "{e}");
        assert!(read(&d.path().join("none")).unwrap().is_none());
        // no temporary file is left
        let names: Vec<_> = std::fs::read_dir(d.path()).unwrap().flatten().collect();
        assert_eq!(names.len(), 2);
    }
}
