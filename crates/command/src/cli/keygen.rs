//! `masqlog keygen`: makes a router's sealing key. Writes the sealing state
//! the plugin evolves (on the router) and prints the verification key (to
//! be copied off the router).

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use masqlog_core::seal::{self, VerifyKey};

/// Where the plugin looks for the sealing state unless `seal_state=` says
/// otherwise.
pub const DEFAULT_STATE: &str = "/var/lib/masqlog/seal.state";

/// Make the key that seals this router's flow records.
///
/// Draws a random seed and writes two things. The sealing state (--state,
/// default /var/lib/masqlog/seal.state, mode 0600) stays on the router:
/// the plugin seals every record with a key derived from it, and replaces
/// it every epoch (15 minutes by default) with the next epoch's key, so
/// that nobody who takes the router later can re-seal the past. The
/// verification key (printed, or written to --key-out) must leave the
/// router: `masqlog verify --key` and `masqlog lookup --key` need it to tell
/// a genuine record from a forged one. Keep it where the logs are judged,
/// not on the router: whoever holds it can also make records that verify.
///
/// Example: masqlog keygen --host gw1 --key-out /root/gw1.verify-key
///   then copy /root/gw1.verify-key off the router and delete it there.
#[derive(clap::Args, Debug)]
pub struct KeygenArgs {
    /// The router's name in every record's writer (`w=HOST/INSTANCE`):
    /// letters, digits, '.', '-', '_' [default: this machine's hostname].
    #[arg(long, value_name = "NAME")]
    pub host: Option<String>,
    /// Length of an epoch, in seconds (60 to 86400): how long a key lives
    /// on the router.
    #[arg(long, value_name = "SECONDS", default_value_t = seal::DEFAULT_EPOCH_SECS)]
    pub epoch: u32,
    /// The sealing state to create; it must not exist yet.
    #[arg(long, value_name = "PATH", default_value = DEFAULT_STATE)]
    pub state: PathBuf,
    /// Give the sealing state (and a directory keygen creates for it) to
    /// this user, e.g. ulog when ulogd runs with --uid ulog.
    #[arg(long, value_name = "USER")]
    pub owner: Option<String>,
    /// Write the verification key to this file (created, mode 0600)
    /// instead of standard output.
    #[arg(long, value_name = "PATH")]
    pub key_out: Option<PathBuf>,
}

/// This machine's hostname (`/proc/sys/kernel/hostname`).
fn hostname() -> anyhow::Result<String> {
    let h = fs::read_to_string("/proc/sys/kernel/hostname")
        .context("reading /proc/sys/kernel/hostname (give --host)")?;
    Ok(h.trim().split('.').next().unwrap_or_default().to_string())
}

/// The uid and gid of `user`, from /etc/passwd.
fn user_ids(user: &str) -> anyhow::Result<(u32, u32)> {
    let passwd = fs::read_to_string("/etc/passwd").context("reading /etc/passwd")?;
    passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() > 3 && f[0] == user)
        .and_then(|f| Some((f[2].parse().ok()?, f[3].parse().ok()?)))
        .with_context(|| format!("no user {user:?} in /etc/passwd"))
}

/// Creates `path` with `text`, mode 0600; never follows a symlink and never
/// replaces a file that is there.
fn create_secret_file(path: &Path, text: &str) -> anyhow::Result<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .with_context(|| {
            format!(
                "cannot create {}{}",
                path.display(),
                if path.symlink_metadata().is_ok() {
                    " (it exists: a key is never overwritten; move it away first)"
                } else {
                    ""
                }
            )
        })?;
    f.write_all(text.as_bytes())
        .and_then(|()| f.sync_all())
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// Creates the state's directory (mode 0700) if it is missing; refuses one
/// that is a symlink or writable by others.
fn prepare_dir(dir: &Path, owner: Option<(u32, u32)>) -> anyhow::Result<()> {
    match fs::symlink_metadata(dir) {
        Ok(m) => {
            if !m.is_dir() {
                bail!(
                    "{} is not a directory (a symlink is refused)",
                    dir.display()
                );
            }
            if m.mode() & 0o022 != 0 {
                bail!(
                    "{} is writable by others than its owner (mode {:o}): a key does not go there",
                    dir.display(),
                    m.mode() & 0o7777
                );
            }
        }
        Err(_) => {
            fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
                .with_context(|| format!("setting the mode of {}", dir.display()))?;
            if let Some((uid, gid)) = owner {
                std::os::unix::fs::lchown(dir, Some(uid), Some(gid))
                    .with_context(|| format!("giving {} to uid {uid}", dir.display()))?;
            }
        }
    }
    Ok(())
}

pub fn run(args: &KeygenArgs) -> anyhow::Result<()> {
    let host = match &args.host {
        Some(h) => h.clone(),
        None => hostname()?,
    };
    let owner = args.owner.as_deref().map(user_ids).transpose()?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .context("the clock is before 1970")?
        .as_secs() as i64;
    let len = i64::from(args.epoch);
    let t0 = now - now.rem_euclid(len);
    let key = VerifyKey::generate(&host, t0, args.epoch)?;
    if let Some(dir) = args.state.parent().filter(|d| !d.as_os_str().is_empty()) {
        prepare_dir(dir, owner)?;
    }
    // The verification key first: if it cannot be written, no state exists
    // whose records nobody could check.
    let key_text = key.to_text();
    if let Some(out) = &args.key_out {
        create_secret_file(out, &key_text)?;
    }
    create_secret_file(&args.state, &key.initial_state().to_text())?;
    if let Some((uid, gid)) = owner {
        std::os::unix::fs::lchown(&args.state, Some(uid), Some(gid))
            .with_context(|| format!("giving {} to uid {uid}", args.state.display()))?;
    }
    match &args.key_out {
        Some(out) => eprintln!(
            "masqlog keygen: sealing state {} (host {host}, epochs of {} s); verification key in {}: copy it off this router and delete it here",
            args.state.display(),
            args.epoch,
            out.display()
        ),
        None => {
            print!("{key_text}");
            eprintln!(
                "masqlog keygen: sealing state {} (host {host}, epochs of {} s); the line above is the verification key: keep it off this router",
                args.state.display(),
                args.epoch
            );
        }
    }
    Ok(())
}
