//! `masqlog index`: an index beside a rotated log file that stays in
//! syslog, so that `masqlog lookup` answers from it as from the evidence
//! store.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use masqlog_command::lookup::store::{Indexed, index_file};

/// Index rotated masqlog logs for fast lookups.
///
/// For each FILE (plain, gzip or zstd), writes .masqlog-index/INODE-SIZE-MTIME/
/// beside it: a seekable zstd copy of its lines (independent frames of
/// about 128 KiB) and their index (public address, port, flow start ->
/// frame), the format of the plugin's evidence store. A rename keeps inode,
/// size and mtime, so the index follows its file through rotation; a file
/// already indexed is skipped, and indexes of files that are gone are
/// removed. `masqlog lookup` uses it instead of reading
/// FILE whenever it is there and fresh (FILE's size and mtime are recorded
/// in it); evidence still names FILE, with its line numbers and offsets
/// (of the decompressed bytes). gzip cannot be read from the middle, hence
/// the copy: it costs about an eighth of the plain size.
///
/// Run it on a file that no longer grows (after rotation): an index of a
/// file that changed since is ignored (stale).
///
/// Example (daily, after logrotate): masqlog index /var/log/masqlog.log.*
#[derive(clap::Args, Debug)]
pub struct IndexArgs {
    /// The rotated log files to index.
    #[arg(value_name = "FILE", required = true)]
    pub files: Vec<PathBuf>,
}

fn index_one(path: &Path) -> anyhow::Result<String> {
    Ok(
        match index_file(path).map_err(|why| anyhow::anyhow!("{why}"))? {
            Indexed::Written(dir, closed) => format!(
                "{}: {} bytes of lines in {} frames, {} bytes in {}",
                path.display(),
                closed.raw_bytes,
                closed.frames,
                closed.stored_bytes,
                dir.display()
            ),
            Indexed::AlreadyFresh(dir) => {
                format!("{}: already indexed in {}", path.display(), dir.display())
            }
        },
    )
}

pub fn run(args: &IndexArgs) -> anyhow::Result<ExitCode> {
    for f in &args.files {
        println!("{}", index_one(f)?);
    }
    Ok(ExitCode::SUCCESS)
}
