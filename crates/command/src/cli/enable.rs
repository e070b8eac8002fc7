//! `masqlog enable` and `masqlog disable`: turn masqlog on (and off again)
//! on a router that runs Debian's ulogd2, in one step, keeping whatever
//! else ulogd's config does. The edits are [`masqlog_command::enable`]'s;
//! this writes them (backed up, atomically), writes the sysctl and
//! modules-load files, applies the sysctls, and restarts ulogd2.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context;
use masqlog_command::checkconfig::{self, Machine};
use masqlog_command::enable::{self, Edit, Plugins, files};
use masqlog_command::package;

const ENABLE_AFTER: &str = "\
What it does, each step only if needed (a second run changes nothing):
  1. ulogd's config (the one ulogd2.service starts ulogd with, else
     /etc/ulogd.conf): adds stack=masqlog_ct:NFCT,masqlog:MASQLOG to
     [global] and the sections [masqlog_ct] and [masqlog] at the end, under
     names the file does not use yet, between `# >>> masqlog enable` and
     `# <<< masqlog enable` marks. Every other stack and section stays. No
     plugin= line is added to a file that names none (ulogd then loads every
     plugin, the package's too; one plugin= line would stop that). The old
     file is kept as FILE.masqlog.bak; the new one has the same owner and
     mode and replaces it atomically. A file where a MASQLOG stack exists
     already (set up by hand) is left alone, with a message.
  2. /etc/sysctl.d/90-masqlog.conf (nf_conntrack_acct=1,
     nf_conntrack_timestamp=1) and /etc/modules-load.d/masqlog.conf
     (nf_conntrack, so that the sysctls exist when systemd-sysctl applies
     them at boot); both applied now.
  3. restarts rsyslog if its masqlog socket (/run/masqlog/log) is missing,
     and ulogd2 (systemctl); without systemd, says what to run.

The records go to destination=unix:/run/masqlog/log: the input that the
package's /etc/rsyslog.d/30-masqlog.conf opens, without rate limiting,
written to /var/log/masqlog.log only (not through journald). Sealing starts
when `masqlog keygen` has made /var/lib/masqlog/seal.state.

Examples:
  masqlog enable --dry-run
  masqlog enable
  masqlog check-config

`masqlog disable` undoes it.

Exit status: 0 done (or nothing to do), 2 refused or failed (nothing
changed in the config).";

const DISABLE_AFTER: &str = "\
Removes the lines between the `# >>> masqlog enable` and `# <<< masqlog
enable` marks (the config is then, byte for byte, what it was before, with
your own later edits elsewhere kept), removes /etc/sysctl.d/90-masqlog.conf
and /etc/modules-load.d/masqlog.conf if they are as enable wrote them, and
restarts ulogd2. The running kernel keeps nf_conntrack_acct and
nf_conntrack_timestamp at 1 until the next boot. The logs, the sealing state
and the package stay.

Examples:
  masqlog disable --dry-run
  masqlog disable";

// The arguments of `masqlog enable` (its help is on the `Enable` variant in
// main.rs).
#[derive(clap::Args, Debug)]
#[command(after_long_help = ENABLE_AFTER)]
pub struct EnableArgs {
    #[command(flatten)]
    pub common: Common,
    /// Where the records go (unix:PATH, udp:HOST:PORT, tcp:HOST:PORT, ...;
    /// ulogd_output_MASQLOG(5)).
    #[arg(long, value_name = "DEST", default_value = package::DESTINATION)]
    pub destination: String,
    /// The evidence store's directory (store_dir): every record is also
    /// kept there, indexed, for `masqlog lookup --store DIR`.
    #[arg(long, value_name = "DIR", default_value = package::STORE_DIR, conflicts_with = "no_store")]
    pub store_dir: String,
    /// Keep no evidence store (no store_dir line): the records go to the
    /// destination only.
    #[arg(long)]
    pub no_store: bool,
    /// ulogd's plugin directory, for the plugin= lines of a config that
    /// names its plugins.
    #[arg(long, value_name = "DIR")]
    pub plugin_dir: Option<PathBuf>,
}

// The arguments of `masqlog disable`.
#[derive(clap::Args, Debug)]
#[command(after_long_help = DISABLE_AFTER)]
pub struct DisableArgs {
    #[command(flatten)]
    pub common: Common,
}

#[derive(clap::Args, Debug)]
pub struct Common {
    /// The ulogd config to edit [default: the -c of ulogd2.service's
    /// ExecStart, else /etc/ulogd.conf].
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Show what would change (a diff of the config, the files and
    /// commands) and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Do not restart ulogd2 (or rsyslog): print the commands instead.
    #[arg(long)]
    pub no_restart: bool,
}

/// Prints a line on stdout; a closed stdout is an error (main exits 0 on
/// a broken pipe) rather than a panic.
macro_rules! say {
    ($($arg:tt)*) => {
        writeln!(std::io::stdout(), $($arg)*)?
    };
}

const SYSCTL_TEXT: &str = "\
# Written by `masqlog enable`; `masqlog disable` removes it (unless edited).
# masqlog's end lines carry the kernel's packet and byte counters and its
# start and end times only when these are on.
net.netfilter.nf_conntrack_acct=1
net.netfilter.nf_conntrack_timestamp=1
";

const MODULES_TEXT: &str = "\
# Written by `masqlog enable`; `masqlog disable` removes it (unless edited).
# Loaded before systemd-sysctl runs, so that the conntrack sysctls of
# /etc/sysctl.d/90-masqlog.conf exist when they are applied.
nf_conntrack
";

fn config_path(common: &Common) -> PathBuf {
    common.config.clone().unwrap_or_else(|| {
        checkconfig::ulogd_unit_config(&Machine).unwrap_or_else(|| package::ULOGD_CONF.into())
    })
}

/// Prints a unified diff of the config.
fn show_diff(path: &Path, old: &str, new: &str) -> anyhow::Result<()> {
    let p = path.display().to_string();
    let diff = similar::TextDiff::from_lines(old, new)
        .unified_diff()
        .context_radius(3)
        .header(&p, &format!("{p} (new)"))
        .to_string();
    write!(std::io::stdout(), "{diff}")?;
    Ok(())
}

/// Reads the config and makes the edit; writes it unless a dry run.
fn edit_config(
    path: &Path,
    dry_run: bool,
    make: impl FnOnce(&str, &str) -> Result<Edit, enable::EnableError>,
) -> anyhow::Result<Edit> {
    let cur = files::read(path)?.ok_or_else(|| {
        anyhow::anyhow!(
            "{} does not exist: is ulogd2 installed (apt install ulogd2)? Or name the config with --config",
            path.display()
        )
    })?;
    let text = String::from_utf8(cur.bytes.clone())
        .map_err(|_| anyhow::anyhow!("{} is not UTF-8 text", path.display()))?;
    let edit = make(&path.display().to_string(), &text)?;
    if dry_run {
        if edit.changed {
            show_diff(path, &text, &edit.text)?;
        }
        return Ok(edit);
    }
    if edit.changed {
        let bak = files::backup_path(path);
        files::replace(&bak, &cur.bytes, cur.uid, cur.gid, cur.mode)
            .with_context(|| format!("backing up {}", path.display()))?;
        files::replace(path, edit.text.as_bytes(), cur.uid, cur.gid, cur.mode)?;
        say!("{} (the old one: {})", edit.notes.join("\n"), bak.display());
    } else {
        say!("{}", edit.notes.join("\n"));
    }
    Ok(edit)
}

/// Writes `text` to `path` unless a file is there: one as enable writes it
/// is fine, another is left alone with a warning.
fn ensure_file(
    path: &str,
    text: &str,
    dry_run: bool,
    covers: impl Fn(&str) -> bool,
) -> anyhow::Result<()> {
    let p = Path::new(path);
    match files::read(p)? {
        Some(cur) if cur.bytes == text.as_bytes() => say!("{path}: in place"),
        Some(cur) if covers(&String::from_utf8_lossy(&cur.bytes)) => {
            say!("{path}: exists (written by someone else) and covers it: left as it is")
        }
        Some(_) => eprintln!(
            "warning: {path} exists with other content: left alone; make sure it holds these lines:\n{}",
            text.lines()
                .filter(|l| !l.starts_with('#'))
                .collect::<Vec<_>>()
                .join("\n")
        ),
        None if dry_run => say!("would write {path}:\n{text}"),
        None => {
            files::replace(p, text.as_bytes(), 0, 0, 0o644)?;
            say!("{path}: written");
        }
    }
    Ok(())
}

/// Removes `path` if it is as enable wrote it.
fn remove_file(path: &str, text: &str, dry_run: bool) -> anyhow::Result<()> {
    match files::read(Path::new(path))? {
        Some(cur) if cur.bytes == text.as_bytes() => {
            if dry_run {
                say!("would remove {path}");
            } else {
                std::fs::remove_file(path).with_context(|| format!("removing {path}"))?;
                say!("{path}: removed");
            }
        }
        Some(_) => say!("{path}: edited since masqlog enable wrote it: left alone"),
        None => {}
    }
    Ok(())
}

/// Turns the conntrack sysctls on now (loading nf_conntrack first).
fn apply_sysctls() -> anyhow::Result<()> {
    let proc = Path::new("/proc/sys/net/netfilter");
    if !proc.join("nf_conntrack_acct").exists() {
        match Command::new("modprobe").arg("nf_conntrack").status() {
            Ok(s) if s.success() => say!("loaded nf_conntrack"),
            Ok(s) => eprintln!("warning: modprobe nf_conntrack: {s}"),
            Err(e) => eprintln!("warning: cannot run modprobe nf_conntrack: {e}"),
        }
    }
    for (name, _) in masqlog_core::config::CONNTRACK_SYSCTLS {
        let f = proc.join(name);
        match std::fs::OpenOptions::new()
            .write(true)
            .open(&f)
            .and_then(|mut h| h.write_all(b"1\n"))
        {
            Ok(()) => say!("net.netfilter.{name} = 1"),
            Err(e) => eprintln!(
                "warning: cannot set net.netfilter.{name}=1 now ({e}): it is set at the next boot"
            ),
        }
    }
    Ok(())
}

/// Whether systemd manages this machine and systemctl is there.
fn has_systemd() -> bool {
    Path::new("/run/systemd/system").is_dir()
        && masqlog_core::process::find_tool("systemctl").is_ok()
}

fn systemctl(args: &[&str]) -> bool {
    match Command::new("systemctl").args(args).status() {
        Ok(s) => s.success(),
        Err(_) => false,
    }
}

/// Restarts ulogd2 (and rsyslog when the masqlog socket is missing), or
/// says what to run.
fn restart(no_restart: bool, rsyslog: bool) -> anyhow::Result<()> {
    let mut todo: Vec<String> = Vec::new();
    if rsyslog {
        todo.push("systemctl restart rsyslog".into());
    }
    todo.push(format!("systemctl restart {}", package::ULOGD_UNIT));
    if no_restart || !has_systemd() {
        let why = if no_restart {
            "--no-restart"
        } else {
            "no systemd here"
        };
        say!("not restarted ({why}); run:");
        for t in &todo {
            say!("  {t}");
        }
        if !no_restart {
            say!("  (or restart ulogd and your syslog daemon as this system does it)");
        }
        return Ok(());
    }
    if rsyslog && systemctl(&["is-active", "--quiet", "rsyslog"]) {
        if !systemctl(&["restart", "rsyslog"]) {
            eprintln!("warning: systemctl restart rsyslog failed: see journalctl -u rsyslog");
        } else {
            say!("restarted rsyslog");
        }
    } else if rsyslog {
        eprintln!(
            "warning: rsyslog is not running: nothing listens on {} (apt install rsyslog, or point destination= elsewhere)",
            package::SYSLOG_SOCKET
        );
    }
    if !systemctl(&["restart", package::ULOGD_UNIT]) {
        anyhow::bail!(
            "systemctl restart {} failed: see `journalctl -u {}` and ulogd's logfile= (Debian's default: syslog)",
            package::ULOGD_UNIT,
            package::ULOGD_UNIT
        );
    }
    say!("restarted {}", package::ULOGD_UNIT);
    Ok(())
}

/// Refuses to go on without root, unless a dry run: the step writes to
/// /etc and restarts ulogd2.
fn need_root(what: &str, dry_run: bool) -> anyhow::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let uid = std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .unwrap_or(0);
    if uid != 0 && !dry_run {
        anyhow::bail!(
            "masqlog {what} edits ulogd's config in /etc and restarts ulogd2: run it as root (sudo masqlog {what}); --dry-run shows the change without"
        );
    }
    Ok(())
}

pub fn run_enable(args: &EnableArgs) -> anyhow::Result<()> {
    let c = &args.common;
    need_root("enable", c.dry_run)?;
    let path = config_path(c);
    let plugin_dir = args
        .plugin_dir
        .clone()
        .unwrap_or_else(masqlog_core::ulogd_conf::default_plugin_dir);
    let plugins = Plugins::in_dir(&plugin_dir);
    let edit = edit_config(&path, c.dry_run, |file, text| {
        enable::enable(
            file,
            text,
            &plugins,
            &args.destination,
            (!args.no_store).then_some(args.store_dir.as_str()),
        )
    })?;
    let sets_both = |t: &str| {
        let lines: Vec<String> = t.lines().map(|l| l.replace(' ', "")).collect();
        masqlog_core::config::CONNTRACK_SYSCTLS
            .iter()
            .all(|(n, _)| lines.iter().any(|l| *l == format!("net.netfilter.{n}=1")))
    };
    ensure_file(package::SYSCTL_FILE, SYSCTL_TEXT, c.dry_run, sets_both)?;
    ensure_file(package::MODULES_FILE, MODULES_TEXT, c.dry_run, |t| {
        t.lines().any(|l| l.trim() == "nf_conntrack")
    })?;
    let rsyslog =
        args.destination == package::DESTINATION && !Path::new(package::SYSLOG_SOCKET).exists();
    if c.dry_run {
        say!("would set net.netfilter.nf_conntrack_acct=1 and nf_conntrack_timestamp=1 now");
        if edit.changed {
            say!(
                "would restart {}{}",
                package::ULOGD_UNIT,
                if rsyslog { " and rsyslog" } else { "" }
            );
        }
        return Ok(());
    }
    apply_sysctls()?;
    if edit.changed || rsyslog {
        restart(c.no_restart, rsyslog)?;
    }
    say!("check it: masqlog check-config {}", path.display());
    Ok(())
}

pub fn run_disable(args: &DisableArgs) -> anyhow::Result<()> {
    let c = &args.common;
    need_root("disable", c.dry_run)?;
    let path = config_path(c);
    let edit = edit_config(&path, c.dry_run, enable::disable)?;
    remove_file(package::SYSCTL_FILE, SYSCTL_TEXT, c.dry_run)?;
    remove_file(package::MODULES_FILE, MODULES_TEXT, c.dry_run)?;
    if c.dry_run {
        if edit.changed {
            say!("would restart {}", package::ULOGD_UNIT);
        }
        return Ok(());
    }
    if edit.changed {
        restart(c.no_restart, false)?;
    }
    Ok(())
}
