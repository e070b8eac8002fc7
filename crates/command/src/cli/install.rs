//! `masqlog install-plugin`: puts the built plugin where ulogd finds its own
//! plugins, as `ulogd_output_MASQLOG.so`, atomically.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use masqlog_core::ulogd_conf::PLUGIN_FILE;

/// Where Debian's ulogd2 keeps its plugins (multiarch), and older layouts.
const PLUGIN_DIRS: &[&str] = &[
    "/usr/lib/x86_64-linux-gnu/ulogd",
    "/usr/lib/aarch64-linux-gnu/ulogd",
    "/usr/lib/ulogd",
    "/usr/local/lib/ulogd",
];

#[derive(clap::Args, Debug)]
pub struct InstallArgs {
    /// Directory to install into; default: the directory that holds ulogd's
    /// own NFCT plugin (Debian: /usr/lib/x86_64-linux-gnu/ulogd).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// The built library; default: libmasqlog.so next to this executable
    /// (target/release/ after `cargo build --release`).
    #[arg(long, value_name = "PATH")]
    pub from: Option<PathBuf>,
    /// Show what would be done, change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error("no built plugin at {0}: run `cargo build --release` first or pass --from")]
    NoLibrary(PathBuf),
    /// Run from the package (/usr/bin): there is no built library, and
    /// the package installs the plugin itself.
    #[error(
        "nothing to install: this masqlog is the packaged one, and the masqlog package \
         installs the plugin itself as {0}{1}; to install another build, pass --from PATH"
    )]
    Packaged(PathBuf, &'static str),
    #[error(
        "no ulogd plugin directory found (looked for ulogd_inpflow_NFCT.so in {0}): is ulogd2 installed? pass --dir"
    )]
    NoPluginDir(String),
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
}

fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> InstallError {
    let path = path.to_path_buf();
    move |source| InstallError::Io { what, path, source }
}

/// The plugin directory of the installed ulogd.
pub fn default_plugin_dir() -> Option<PathBuf> {
    PLUGIN_DIRS
        .iter()
        .map(PathBuf::from)
        .find(|d| d.join("ulogd_inpflow_NFCT.so").exists())
}

fn default_library() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    Some(exe.parent()?.join("libmasqlog.so"))
}

/// Where the masqlog package puts the plugin, when `exe` is the packaged
/// binary (/usr/bin/masqlog: debian-pkg/build installs the plugin as
/// /usr/lib/MULTIARCH/ulogd/ulogd_output_MASQLOG.so); `None` for a binary
/// run from a source tree (target/release/).
fn packaged_plugin(exe: &Path) -> Option<PathBuf> {
    if !exe.starts_with("/usr/bin") {
        return None;
    }
    let multiarch = if cfg!(target_arch = "aarch64") {
        "aarch64-linux-gnu"
    } else {
        "x86_64-linux-gnu"
    };
    Some(
        Path::new("/usr/lib")
            .join(multiarch)
            .join("ulogd")
            .join(PLUGIN_FILE),
    )
}

/// Copies the library to `DIR/ulogd_output_MASQLOG.so` through a temporary
/// file in the same directory (fsync, then rename), so that a running or
/// starting ulogd never sees half a file. Returns the installed path.
pub fn run(args: &InstallArgs) -> Result<PathBuf, InstallError> {
    let from = args
        .from
        .clone()
        .or_else(default_library)
        .unwrap_or_else(|| PathBuf::from("libmasqlog.so"));
    if !from.is_file() {
        if args.from.is_none()
            && let Ok(exe) = std::env::current_exe()
            && let Some(plugin) = packaged_plugin(&exe)
        {
            let state = if plugin.exists() {
                " (it is there)"
            } else {
                ", which is missing: reinstall the package (apt install --reinstall masqlog)"
            };
            return Err(InstallError::Packaged(plugin, state));
        }
        return Err(InstallError::NoLibrary(from));
    }
    let dir = match &args.dir {
        Some(d) => d.clone(),
        None => {
            default_plugin_dir().ok_or_else(|| InstallError::NoPluginDir(PLUGIN_DIRS.join(", ")))?
        }
    };
    let target = dir.join(PLUGIN_FILE);
    if args.dry_run {
        eprintln!("would copy {} to {}", from.display(), target.display());
        return Ok(target);
    }
    let bytes = fs::read(&from).map_err(io("cannot read", &from))?;
    let tmp = dir.join(format!(".{PLUGIN_FILE}.{}", std::process::id()));
    let result = (|| {
        let mut f = fs::File::create(&tmp).map_err(io("cannot create", &tmp))?;
        f.write_all(&bytes).map_err(io("cannot write", &tmp))?;
        f.sync_all().map_err(io("cannot sync", &tmp))?;
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&tmp, fs::Permissions::from_mode(0o644))
            .map_err(io("cannot set the mode of", &tmp))?;
        fs::rename(&tmp, &target).map_err(io("cannot rename into", &target))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result?;
    eprintln!("installed {}", target.display());
    // ulogd -i loads the plugin the way ulogd will: a cheap check.
    if let Ok(out) = Command::new("ulogd").arg("-i").arg(&target).output() {
        let text = String::from_utf8_lossy(&out.stdout);
        if text.contains("Name: MASQLOG") {
            eprintln!(
                "`ulogd -i` lists the plugin: add plugin=\"{}\" and a stack to ulogd.conf",
                target.display()
            );
        } else {
            eprintln!(
                "warning: `ulogd -i {}` does not list MASQLOG: this ulogd may be another version (see ulogd's log)",
                target.display()
            );
        }
    }
    Ok(target)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_packaged_binary_names_the_packaged_plugin_not_cargo() {
        let plugin = packaged_plugin(Path::new("/usr/bin/masqlog")).expect("packaged");
        assert!(
            plugin.starts_with("/usr/lib") && plugin.ends_with("ulogd/ulogd_output_MASQLOG.so"),
            "{}",
            plugin.display()
        );
        let msg = InstallError::Packaged(plugin, " (it is there)").to_string();
        assert!(
            msg.contains("the masqlog package installs the plugin itself as /usr/lib/")
                && !msg.contains("cargo"),
            "{msg}"
        );
        assert_eq!(
            packaged_plugin(Path::new("/home/me/masqlog/target/release/masqlog")),
            None
        );
    }
}
