//! The lab's temporary directory: configs, sockets, logs. Removed by the
//! reaper (see `reaper.rs`) with the rest of the lab.

use std::path::{Path, PathBuf};

use crate::LabError;

/// A fresh directory under the system's temporary directory.
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// Creates `$TMPDIR/masqlog-<name>`; an old directory of that name (left
    /// by a killed run with the same pid) is removed first.
    pub fn create(name: &str) -> Result<TempDir, LabError> {
        let path = std::env::temp_dir().join(format!("masqlog-{name}"));
        if path.exists() {
            std::fs::remove_dir_all(&path)
                .map_err(|e| LabError::io(format!("removing old {}", path.display()), e))?;
        }
        std::fs::create_dir(&path)
            .map_err(|e| LabError::io(format!("creating {}", path.display()), e))?;
        Ok(TempDir { path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A path inside the directory.
    pub fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }
}
