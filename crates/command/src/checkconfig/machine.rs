//! The real machine behind [`System`]: /proc/sys, sockets, `ulogd -i`,
//! `nft` and `ip`, each bounded by a timeout; files looked at with `lstat`,
//! spools read without their lock.

use std::io;
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{FileInfo, FileKind, SpoolContents, System};
use masqlog_core::{process, spool_files};

/// How long one external command may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(10);

/// This machine, in this process's network namespace.
#[derive(Clone, Copy, Debug, Default)]
pub struct Machine;

impl System for Machine {
    fn read_sysctl(&self, key: &str) -> std::io::Result<String> {
        std::fs::read_to_string(Path::new("/proc/sys").join(key))
    }

    fn exists(&self, path: &Path) -> bool {
        path.exists()
    }

    fn plugin_info(&self, path: &Path) -> Result<String, String> {
        // ulogd -i wants a path with a '/'
        let arg = if path.is_absolute() {
            path.to_path_buf()
        } else {
            Path::new(".").join(path)
        };
        let arg = arg.to_string_lossy().into_owned();
        let out = process::run_with(&["ulogd", "-i", &arg], None, None, COMMAND_TIMEOUT)
            .map_err(|e| e.to_string())?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn default_plugin_dir(&self) -> PathBuf {
        masqlog_core::ulogd_conf::default_plugin_dir()
    }

    fn same_file(&self, a: &Path, b: &Path) -> bool {
        match (std::fs::metadata(a), std::fs::metadata(b)) {
            (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
            _ => false,
        }
    }

    fn unix_connect(&self, path: &Path) -> std::io::Result<()> {
        let s = UnixDatagram::unbound()?;
        s.connect(path)
    }

    fn tcp_connect(&self, addr: SocketAddr, timeout: Duration) -> std::io::Result<()> {
        TcpStream::connect_timeout(&addr, timeout).map(drop)
    }

    fn transparent_capability(&self) -> Result<(), String> {
        masqlog_core::ident::check_transparent_capability().map_err(|e| e.to_string())
    }

    fn command(&self, argv: &[&str]) -> Result<String, String> {
        let out =
            process::run_with(argv, None, None, COMMAND_TIMEOUT).map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(format!(
                "`{}` failed: {}",
                argv.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }

    fn read_file(&self, path: &Path) -> Option<String> {
        if path.is_dir() {
            let names: Vec<String> = std::fs::read_dir(path)
                .ok()?
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            return Some(names.join("\n"));
        }
        std::fs::read_to_string(path).ok()
    }

    fn file_info(&self, path: &Path) -> io::Result<FileInfo> {
        let m = std::fs::symlink_metadata(path)?;
        let t = m.file_type();
        let kind = if t.is_symlink() {
            FileKind::Symlink
        } else if t.is_file() {
            FileKind::File
        } else if t.is_dir() {
            FileKind::Dir
        } else {
            FileKind::Other
        };
        Ok(FileInfo {
            kind,
            mode: m.mode() & 0o7777,
            uid: m.uid(),
        })
    }

    fn subdirs(&self, path: &Path) -> io::Result<Vec<String>> {
        spool_files::spool_names(path)
    }

    fn spool_contents(&self, dir: &Path) -> io::Result<Option<SpoolContents>> {
        let Some(survey) = spool_files::survey(dir)? else {
            return Ok(None);
        };
        Ok(Some(SpoolContents {
            records: survey.records,
            bytes: survey.pending_bytes,
        }))
    }
}
