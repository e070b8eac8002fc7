//! The lab's temporary directory: configs, sockets, logs. Made by the
//! `tempfile` crate (a fresh name, mode 0700, never an existing path), but
//! not removed on drop: the reaper (see `reaper.rs`) removes it with the
//! rest of the lab, and `--keep` leaves it.

use std::path::{Path, PathBuf};

use crate::LabError;

/// A fresh directory under the system's temporary directory.
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// Creates `$TMPDIR/masqlog-<name>-XXXXXX`.
    pub fn create(name: &str) -> Result<TempDir, LabError> {
        let dir = tempfile::Builder::new()
            .prefix(&format!("masqlog-{name}-"))
            .rand_bytes(4)
            .tempdir()
            .map_err(|e| {
                LabError::io(
                    format!(
                        "creating masqlog-{name}-* in {}",
                        std::env::temp_dir().display()
                    ),
                    e,
                )
            })?;
        Ok(TempDir { path: dir.keep() })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A path inside the directory.
    pub fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }
}
