//! `masqlog index`: an index beside a rotated log file that stays in
//! syslog, so that `masqlog lookup` answers from it as from the evidence
//! store.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use masqlog_command::lookup::store::index_file;

/// Index rotated masqlog logs for fast lookups.
///
/// For each FILE (plain, gzip or zstd), writes FILE.masqlog/: a seekable
/// zstd copy of its lines (independent frames of about 128 KiB) and their
/// index (public address, port, flow start -> frame), the format of the
/// plugin's evidence store. `masqlog lookup` uses it instead of reading
/// FILE whenever it is there and fresh (FILE's size and mtime are recorded
/// in it); evidence still names FILE, with its line numbers and offsets
/// (of the decompressed bytes). gzip cannot be read from the middle, hence
/// the copy: it costs about an eighth of the plain size.
///
/// Run it on a file that no longer grows (after rotation): an index of a
/// file that changed since is ignored (stale).
///
/// Example (logrotate, `postrotate`): masqlog index /var/log/masqlog.log.1
#[derive(clap::Args, Debug)]
pub struct IndexArgs {
    /// The rotated log files to index.
    #[arg(value_name = "FILE", required = true)]
    pub files: Vec<PathBuf>,
}

fn index_one(path: &Path) -> anyhow::Result<String> {
    let (dir, closed) = index_file(path).map_err(|why| anyhow::anyhow!("{why}"))?;
    Ok(format!(
        "{}: {} bytes of lines in {} frames, {} bytes in {}",
        path.display(),
        closed.raw_bytes,
        closed.frames,
        closed.stored_bytes,
        dir.display()
    ))
}

pub fn run(args: &IndexArgs) -> anyhow::Result<ExitCode> {
    for f in &args.files {
        println!("{}", index_one(f)?);
    }
    Ok(ExitCode::SUCCESS)
}
