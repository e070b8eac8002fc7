//! `masqlog lab`: runs `masqlog-lab`, the namespace lab, which is built with
//! the source tree (`cargo build --release`) and not packaged. It is found
//! next to this executable, else in `PATH`.

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, bail};

/// The program that holds the lab.
const LAB_PROGRAM: &str = "masqlog-lab";

/// The arguments, passed on as they are (`masqlog lab --help` shows the
/// lab's own help).
#[derive(clap::Args, Debug)]
#[command(disable_help_flag = true, disable_version_flag = true)]
pub struct LabArgs {
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "ARGS"
    )]
    pub args: Vec<OsString>,
}

fn find_lab() -> Option<PathBuf> {
    let beside = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|d| d.join(LAB_PROGRAM)))
        .filter(|p| p.is_file());
    beside.or_else(|| {
        let path = std::env::var_os("PATH")?;
        std::env::split_paths(&path)
            .map(|d| d.join(LAB_PROGRAM))
            .find(|p| p.is_file())
    })
}

/// Replaces this process with `masqlog-lab ARGS...`; returns only on error.
pub fn run(args: &LabArgs) -> anyhow::Result<()> {
    let Some(lab) = find_lab() else {
        bail!(
            "{LAB_PROGRAM} is not installed (it is not next to this program nor in PATH): \
             the lab is part of masqlog's source tree, not of the package; in a clone \
             of the repository run ./lab/run (or cargo build --release, then \
             target/release/masqlog lab)"
        );
    };
    let err = Command::new(&lab).args(&args.args).exec();
    Err(err).with_context(|| format!("cannot run {}", lab.display()))
}
