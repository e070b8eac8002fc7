//! Sealing in the writer thread: the instance's chain (see
//! `masqlog_core::seal`), the sealing state it moves on every epoch, and the
//! chain mark that tells the next run where this one ended.
//!
//! Files, next to the sealing state (`seal_state`, made by `masqlog
//! keygen`): the state itself, replaced (write to a new file, fsync,
//! rename, fsync the directory) when the epoch moves, so the old key is
//! gone from the file; and `<state>.<instance>.chain`, the mark, replaced
//! the same way when a run starts, at every epoch (a checkpoint) and when
//! it stops cleanly.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use masqlog_core::config::{Format, SealConfig, SealMode};
use masqlog_core::format::chain::{ChainRecord, Previous};
use masqlog_core::format::sealing::seal_message;
use masqlog_core::record::Timestamp;
use masqlog_core::seal::{Chain, ChainMark, SealState};

use super::SinkError;

/// What [`Sealer::open`] found.
// Made once per start: a box would buy nothing.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Opened {
    /// Records are sealed; the run starts with this chain record.
    Sealing(Sealer, ChainRecord),
    /// Records are not sealed; with the reason when the operator should
    /// hear it (`seal=auto` without a sealing state).
    Unsealed(Option<String>),
}

/// The largest key or mark file read (they are one short line).
const MAX_FILE: u64 = 4096;

/// The sealing of one instance.
#[derive(Debug)]
pub(crate) struct Sealer {
    chain: Chain,
    state_path: PathBuf,
    mark_path: PathBuf,
    /// A write of the state or the mark failed, and is retried at the
    /// next record (with an error notice each time it fails anew).
    pub(crate) pending_error: Option<String>,
}

/// Reads a small file without following a symlink.
fn read_small(path: &Path) -> io::Result<String> {
    let f = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)?;
    let mut s = String::new();
    f.take(MAX_FILE).read_to_string(&mut s)?;
    Ok(s)
}

/// Replaces `path` with `text`: a new file beside it (mode 0600, never an
/// existing one), synced, renamed over it, and the directory synced.
fn replace(path: &Path, text: &str) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let _ = fs::remove_file(&tmp);
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&tmp)?;
    let written = f.write_all(text.as_bytes()).and_then(|()| f.sync_all());
    if let Err(e) = written.and_then(|()| fs::rename(&tmp, path)) {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    File::open(dir)?.sync_all()
}

/// Refuses a directory that others than its owner may write to: whoever
/// could replace the state there could choose the key.
fn check_dir(path: &Path) -> Result<(), String> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let m = fs::symlink_metadata(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    if !m.is_dir() {
        return Err(format!("{} is not a directory", dir.display()));
    }
    if m.mode() & 0o022 != 0 {
        return Err(format!(
            "{} may be written by others than its owner (mode {:o})",
            dir.display(),
            m.mode() & 0o7777
        ));
    }
    Ok(())
}

impl Sealer {
    /// Opens the sealing of instance `id`: `None` when sealing is off, or
    /// `auto` and there is no sealing state (then a notice says so). The
    /// record that starts the run comes with it.
    pub(crate) fn open(cfg: &SealConfig) -> Result<Opened, SinkError> {
        let id = cfg.instance.as_str();
        let fail = |why: String| SinkError::Seal(why);
        if cfg.mode == SealMode::Off {
            return Ok(Opened::Unsealed(None));
        }
        let state_path = cfg.state.clone();
        match fs::symlink_metadata(&state_path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound && cfg.mode == SealMode::Auto => {
                return Ok(Opened::Unsealed(Some(format!(
                    "records are not sealed: {} does not exist (run `masqlog keygen` to make the key, then restart ulogd)",
                    state_path.display()
                ))));
            }
            Err(e) => return Err(fail(format!("{}: {e}", state_path.display()))),
            Ok(m) if !m.is_file() => {
                return Err(fail(format!(
                    "{} is not a regular file (a symlink is refused)",
                    state_path.display()
                )));
            }
            Ok(_) => {}
        }
        check_dir(&state_path).map_err(fail)?;
        let text =
            read_small(&state_path).map_err(|e| fail(format!("{}: {e}", state_path.display())))?;
        let state =
            SealState::parse(&text).map_err(|e| fail(format!("{}: {e}", state_path.display())))?;
        let mut mark_name = state_path.as_os_str().to_owned();
        mark_name.push(format!(".{id}.chain"));
        let mark_path = PathBuf::from(mark_name);
        let previous = match read_small(&mark_path) {
            Ok(t) => Some(
                ChainMark::parse(&t).map_err(|e| fail(format!("{}: {e}", mark_path.display())))?,
            ),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(fail(format!("{}: {e}", mark_path.display()))),
        };
        let run = previous.as_ref().map_or(1, |m| m.run + 1);
        let mut chain = Chain::start(state, id, run).map_err(|e| fail(e.to_string()))?;
        let moved = chain
            .tick(Timestamp::now().secs)
            .map_err(|e| fail(format!("{}: {e}", state_path.display())))?;
        let sealer = Sealer {
            chain,
            state_path,
            mark_path,
            pending_error: None,
        };
        if moved {
            replace(&sealer.state_path, &sealer.chain.state().to_text())
                .map_err(|e| fail(format!("replacing {}: {e}", sealer.state_path.display())))?;
        }
        // The new run is on record before it writes anything.
        replace(
            &sealer.mark_path,
            &ChainMark::of(&sealer.chain, false).to_text(),
        )
        .map_err(|e| fail(format!("writing {}: {e}", sealer.mark_path.display())))?;
        let start = ChainRecord::Start {
            previous: previous.as_ref().map(Previous::from),
        };
        Ok(Opened::Sealing(sealer, start))
    }

    /// Seals the message `out` ends with (its body from `start`), after
    /// moving to the current epoch; a moved epoch replaces the state file
    /// and checkpoints the mark.
    pub(crate) fn seal(&mut self, format: Format, start: usize, out: &mut Vec<u8>) {
        match self.chain.tick(Timestamp::now().secs) {
            Ok(true) => self.save_state(),
            Ok(false) => {}
            Err(e) => self.pending_error = Some(format!("sealing: {e}")),
        }
        seal_message(format, start, &mut self.chain, out);
    }

    fn save_state(&mut self) {
        if let Err(e) = replace(&self.state_path, &self.chain.state().to_text()) {
            self.pending_error = Some(format!(
                "cannot replace {} with the next epoch's key: {e}; the previous key stays on disk until it can",
                self.state_path.display()
            ));
            return;
        }
        self.mark(false);
    }

    /// Writes the chain mark: a checkpoint, or (`clean`) the end of the run.
    pub(crate) fn mark(&mut self, clean: bool) {
        if let Err(e) = replace(
            &self.mark_path,
            &ChainMark::of(&self.chain, clean).to_text(),
        ) {
            self.pending_error = Some(format!("cannot write {}: {e}", self.mark_path.display()));
        }
    }

    /// The writer and the place in the run, for the log.
    pub(crate) fn describe(&self) -> String {
        format!(
            "{} run {} epoch {}",
            self.chain.writer(),
            self.chain.run(),
            self.chain.state().epoch()
        )
    }
}
