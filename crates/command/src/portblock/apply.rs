//! `apply`: puts a plan in force and keeps the history, safe to run from
//! cron.
//!
//! Under an exclusive lock on `DIR/.lock`: render; compare with the rules in
//! force (ignoring the generated-at line); when they differ, write
//! `DIR/rules.<now>.<method>` (never overwriting), run the reload command on
//! it, then point `DIR/current` at it atomically (symlink to a temporary
//! name, then rename), and send the configuration record to syslog. When
//! the reload fails, `current` stays where it was and the new file is
//! renamed `*.failed` (kept, but out of the history: it was never in force).
//! Every step is reported, one line each, to the caller's log.

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, symlink};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use super::PortblockError;
use super::clock;
use super::history::{self, CURRENT, FAILED_SUFFIX, LOCK, parse_rule_file_name, rule_file_name};
use super::plan::Plan;
use super::render::{render, same_rules};
use super::rulefile::RuleFile;
use super::syslog::{SyslogSender, SyslogTarget, config_record, frame};

/// How long the reload command may run before it is killed.
pub const DEFAULT_RELOAD_TIMEOUT: Duration = Duration::from_secs(60);

/// How much of the reload command's output is kept for the log.
const MAX_CHILD_OUTPUT: usize = 16 << 10;

/// How `apply` runs.
#[derive(Clone, Debug)]
pub struct ApplyOptions {
    /// Where rule files and the `current` symlink live; created if missing.
    pub state_dir: PathBuf,
    /// Report what would be done; change nothing.
    pub dry_run: bool,
    /// The command that loads the rules, run by `sh -c`; `{}` stands for the
    /// path of the new rule file, or of `DIR/current` for `reload_always`
    /// with unchanged rules (appended when there is no `{}`). `None`: the
    /// method's default (`nft -f {}`, `iptables-restore {}`).
    pub reload_cmd: Option<String>,
    /// Also run the reload command when the rules are unchanged (at boot).
    pub reload_always: bool,
    pub reload_timeout: Duration,
    /// Where the configuration record goes; `None` sends none.
    pub syslog: Option<SyslogTarget>,
}

impl ApplyOptions {
    /// Options with the defaults: reload with the method's command, record to
    /// `/dev/log`.
    pub fn new(state_dir: impl Into<PathBuf>) -> ApplyOptions {
        ApplyOptions {
            state_dir: state_dir.into(),
            dry_run: false,
            reload_cmd: None,
            reload_always: false,
            reload_timeout: DEFAULT_RELOAD_TIMEOUT,
            syslog: Some(SyslogTarget::default()),
        }
    }
}

/// What `apply` did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ApplyOutcome {
    /// The rules in force are the planned ones: no file written.
    Unchanged { current: PathBuf, reloaded: bool },
    /// `--dry-run`: the file that would have been written, and its text.
    WouldWrite { file: PathBuf, text: String },
    /// New rules are in force.
    Applied {
        file: PathBuf,
        previous: Option<PathBuf>,
    },
}

/// Writes one line to the log; a log that cannot be written to is ignored
/// (the outcome and the error still tell).
fn say(log: &mut dyn Write, line: impl AsRef<str>) {
    let _ = writeln!(log, "{}", line.as_ref());
}

/// Holds the exclusive lock on `DIR/.lock` until dropped.
pub struct StateLock {
    _file: File,
}

/// Takes the lock without waiting: a second `apply` fails at once with a
/// clear message instead of queueing behind the first (cron runs again).
///
/// flock(2) through `File::try_lock`, stable since Rust 1.89: the crate's
/// `rust-version` must be at least that.
#[allow(clippy::incompatible_msrv)]
pub fn lock(state_dir: &Path) -> Result<StateLock, PortblockError> {
    let path = state_dir.join(LOCK);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&path)
        .map_err(PortblockError::io("cannot open the lock file", &path))?;
    match file.try_lock() {
        Ok(()) => Ok(StateLock { _file: file }),
        Err(fs::TryLockError::WouldBlock) => Err(PortblockError::Locked { path }),
        Err(fs::TryLockError::Error(e)) => Err(PortblockError::io("cannot lock", &path)(e)),
    }
}

fn sync_dir(dir: &Path) -> Result<(), PortblockError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(PortblockError::io("cannot sync the directory", dir))
}

/// Points `DIR/current` at `target` (a file name in DIR) atomically.
fn point_current(dir: &Path, target: &str) -> Result<(), PortblockError> {
    let tmp = dir.join(format!(".current.tmp.{}", std::process::id()));
    let _ = fs::remove_file(&tmp); // left by a crashed run with our pid
    symlink(target, &tmp).map_err(PortblockError::io("cannot create the symlink", &tmp))?;
    let link = dir.join(CURRENT);
    if let Err(e) = fs::rename(&tmp, &link) {
        let _ = fs::remove_file(&tmp);
        return Err(PortblockError::io("cannot switch", &link)(e));
    }
    sync_dir(dir)
}

/// Writes a new file that must not exist yet, durably.
fn write_new(path: &Path, text: &str) -> Result<(), PortblockError> {
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(path)
        .map_err(PortblockError::io("cannot create", path))?;
    let r = f.write_all(text.as_bytes()).and_then(|()| f.sync_all());
    if let Err(e) = r {
        let _ = fs::remove_file(path);
        return Err(PortblockError::io("cannot write", path)(e));
    }
    Ok(())
}

/// `'...'` for sh.
pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The reload command line: `{}` replaced by the quoted path, or the quoted
/// path appended.
pub fn reload_command_line(cmd: &str, path: &Path) -> String {
    let q = shell_quote(&path.to_string_lossy());
    if cmd.contains("{}") {
        cmd.replace("{}", &q)
    } else {
        format!("{cmd} {q}")
    }
}

/// Runs `line` with `sh -c` in its own process group, its output copied to
/// the log; kills the group after `timeout`.
fn run_reload(line: &str, timeout: Duration, log: &mut dyn Write) -> Result<(), PortblockError> {
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(line)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(|cause| PortblockError::ReloadSpawn {
            cmd: line.into(),
            cause,
        })?;
    let readers: Vec<_> = [
        child
            .stdout
            .take()
            .map(|r| Box::new(r) as Box<dyn Read + Send>),
        child
            .stderr
            .take()
            .map(|r| Box::new(r) as Box<dyn Read + Send>),
    ]
    .into_iter()
    .flatten()
    .map(|mut r| {
        thread::spawn(move || {
            let mut kept = Vec::new();
            let mut buf = [0u8; 4096];
            while let Ok(n) = r.read(&mut buf) {
                if n == 0 {
                    break;
                }
                let room = MAX_CHILD_OUTPUT.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
            }
            kept
        })
    })
    .collect();
    let start = Instant::now();
    let status: Option<ExitStatus> = loop {
        match child.try_wait() {
            Ok(Some(s)) => break Some(s),
            Ok(None) if start.elapsed() >= timeout => {
                // The group: sh and whatever it started.
                let _ = Command::new("sh")
                    .args(["-c", "kill -9 -\"$1\"", "sh", &child.id().to_string()])
                    .status();
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            Ok(None) => thread::sleep(Duration::from_millis(20)),
            Err(e) => {
                return Err(PortblockError::ReloadSpawn {
                    cmd: line.into(),
                    cause: e,
                });
            }
        }
    };
    for r in readers {
        if let Ok(out) = r.join() {
            for l in String::from_utf8_lossy(&out).lines() {
                say(log, format!("  | {l}"));
            }
        }
    }
    match status {
        Some(s) if s.success() => Ok(()),
        Some(s) => Err(PortblockError::ReloadFailed {
            cmd: line.into(),
            status: s.to_string(),
            rollback: String::new(),
        }),
        None => Err(PortblockError::ReloadFailed {
            cmd: line.into(),
            status: format!("killed after {} s (--reload-timeout)", timeout.as_secs()),
            rollback: String::new(),
        }),
    }
}

/// One sentence on how `plan` differs from the rules in `prev`.
pub fn describe_change(prev: &RuleFile, plan: &Plan) -> String {
    let mut changed = 0;
    let mut added = 0;
    let mut seen = HashSet::new();
    for b in &plan.blocks {
        seen.insert(b.internal);
        match prev.block_of(b.internal) {
            None => added += 1,
            Some(old) if old != (b.public, b.lo, b.hi) => changed += 1,
            Some(_) => {}
        }
    }
    let removed = prev
        .blocks
        .iter()
        .filter(|b| !seen.contains(&b.internal))
        .count();
    let mut parts = vec![format!(
        "{changed} clients' blocks change, {added} clients added, {removed} removed"
    )];
    let (a, b) = (&prev.params, &plan.params);
    if a.per_client != b.per_client {
        parts.push(format!("per_client {} -> {}", a.per_client, b.per_client));
    }
    if a.method != b.method {
        parts.push(format!("method {} -> {}", a.method, b.method));
    }
    if a.oif != b.oif || a.table != b.table {
        parts.push("table or interface changes".into());
    }
    parts.join("; ")
}

/// What the new rules will not remove when they are loaded: the nft table
/// of the previous rules when the table name or the method changes (loading
/// replaces only its own table, and `iptables-restore` only the nat table).
pub fn left_behind(prev: &RuleFile, plan: &Plan) -> Option<String> {
    let old = prev.params.table.as_deref()?;
    if plan.params.table.as_deref() == Some(old) {
        return None;
    }
    Some(format!(
        "the previous rules' nftables table `ip {old}` stays loaded and keeps translating with \
         the old blocks: remove it after the reload with `nft delete table ip {old}`"
    ))
}

/// Puts `plan` in force through `opts.state_dir`, reporting each step to
/// `log`. See the module documentation for the steps.
pub fn apply(
    plan: &Plan,
    opts: &ApplyOptions,
    log: &mut dyn Write,
) -> Result<ApplyOutcome, PortblockError> {
    let method = plan.params.method;
    if opts.dry_run && !opts.state_dir.exists() {
        let now = clock::now();
        let file = opts.state_dir.join(rule_file_name(now, method));
        say(
            log,
            format!(
                "{} does not exist: it would be created",
                opts.state_dir.display()
            ),
        );
        say(
            log,
            format!("would write {} and point {CURRENT} at it", file.display()),
        );
        return Ok(ApplyOutcome::WouldWrite {
            file,
            text: render(plan, now),
        });
    }
    fs::create_dir_all(&opts.state_dir)
        .map_err(PortblockError::io("cannot create", &opts.state_dir))?;
    let dir = fs::canonicalize(&opts.state_dir)
        .map_err(PortblockError::io("cannot resolve", &opts.state_dir))?;
    let _lock = if opts.dry_run {
        None
    } else {
        Some(lock(&dir)?)
    };

    // The rules in force: what `current` points to, or else the newest file.
    let entries = history::list(&dir)?;
    let current = history::current_target(&dir)?;
    let previous: Option<String> = match &current {
        Some(name) => Some(name.clone()),
        None => entries.last().map(|e| {
            let name = e.path.file_name().unwrap_or_default().to_string_lossy().into_owned();
            say(log, format!("warning: {CURRENT} is missing: taking the newest rule file, {name}, as the rules in force"));
            name
        }),
    };
    let prev_text = match &previous {
        Some(name) => {
            let p = dir.join(name);
            Some(fs::read_to_string(&p).map_err(PortblockError::io("cannot read", &p))?)
        }
        None => None,
    };

    let mut now = clock::now();
    if let Some(newest) = entries.last()
        && newest.timestamp > now
    {
        return Err(PortblockError::ClockBehind {
            now: clock::rfc3339(now),
            file: newest.path.clone(),
            then: clock::rfc3339(newest.timestamp),
        });
    }
    let mut text = render(plan, now);
    let reload_cmd = opts
        .reload_cmd
        .clone()
        .unwrap_or_else(|| method.default_reload_cmd().to_string());
    let link = dir.join(CURRENT);
    let reload_line = reload_command_line(&reload_cmd, &link);

    if let (Some(name), Some(pt)) = (&previous, &prev_text)
        && same_rules(pt, &text)
    {
        let since = parse_rule_file_name(name)
            .map(|(t, _)| clock::rfc3339(t))
            .unwrap_or_default();
        say(
            log,
            format!(
                "rules unchanged: {} -> {name}, in force since {since}",
                link.display()
            ),
        );
        if opts.dry_run {
            return Ok(ApplyOutcome::Unchanged {
                current: dir.join(name),
                reloaded: false,
            });
        }
        if current.is_none() {
            point_current(&dir, name)?;
            say(log, format!("restored {} -> {name}", link.display()));
        }
        let mut reloaded = false;
        if opts.reload_always {
            say(log, format!("reloading (--reload-always): {reload_line}"));
            run_reload(&reload_line, opts.reload_timeout, log)?;
            say(log, "reloaded");
            reloaded = true;
        }
        return Ok(ApplyOutcome::Unchanged {
            current: dir.join(name),
            reloaded,
        });
    }

    match (&previous, &prev_text) {
        (Some(name), Some(pt)) => match RuleFile::parse(&dir.join(name), pt) {
            Ok(prev) => {
                say(
                    log,
                    format!("rules change from {name}: {}", describe_change(&prev, plan)),
                );
                if let Some(w) = left_behind(&prev, plan) {
                    say(log, format!("warning: {w}"));
                }
            }
            Err(e) => say(
                log,
                format!("warning: the rules in force cannot be read back ({e}); replacing them"),
            ),
        },
        _ => say(log, format!("no rules in force yet in {}", dir.display())),
    }

    if opts.dry_run {
        let file = dir.join(rule_file_name(now, method));
        say(
            log,
            format!(
                "would write {}, run: {}, then point {CURRENT} at it",
                file.display(),
                reload_command_line(&reload_cmd, &file)
            ),
        );
        return Ok(ApplyOutcome::WouldWrite { file, text });
    }

    // Nothing is changed before we know the record can be sent.
    let syslog = match &opts.syslog {
        Some(t) => Some(SyslogSender::connect(t)?),
        None => {
            say(
                log,
                "warning: --no-syslog: this change of the mapping is recorded in the state directory only",
            );
            None
        }
    };

    // One file per second: wait for a second no file has used.
    let taken = |t: i64| {
        entries.iter().any(|e| e.timestamp == t)
            || ["nft", "iptables"].iter().any(|ext| {
                let n = format!("rules.{t}.{ext}");
                dir.join(&n).exists() || dir.join(format!("{n}{FAILED_SUFFIX}")).exists()
            })
    };
    let mut waited = 0;
    while taken(now) {
        if waited >= 30 {
            return Err(PortblockError::io(
                "no free timestamp for a new rule file in",
                &dir,
            )(io::Error::other(
                "a rule file exists for every second of the last 3 s",
            )));
        }
        thread::sleep(Duration::from_millis(100));
        waited += 1;
        now = clock::now();
    }
    text = render(plan, now);
    let name = rule_file_name(now, method);
    let file = dir.join(&name);
    write_new(&file, &text)?;
    sync_dir(&dir)?;
    say(
        log,
        format!(
            "wrote {} ({} clients, {} ports each)",
            file.display(),
            plan.blocks.len(),
            plan.params.per_client
        ),
    );

    // The new file is loaded by its own name; `current` (the history's
    // word for what is in force) moves to it only once the reload worked.
    let new_reload_line = reload_command_line(&reload_cmd, &file);
    say(log, format!("reloading: {new_reload_line}"));
    if let Err(err) = run_reload(&new_reload_line, opts.reload_timeout, log) {
        let rollback = roll_back(&dir, &name, log);
        return Err(match err {
            PortblockError::ReloadFailed { cmd, status, .. } => PortblockError::ReloadFailed {
                cmd,
                status,
                rollback,
            },
            other => {
                say(log, rollback);
                other
            }
        });
    }
    point_current(&dir, &name)?;
    match &previous {
        Some(p) => say(
            log,
            format!("switched {} -> {name} (was {p})", link.display()),
        ),
        None => say(log, format!("created {} -> {name}", link.display())),
    }
    say(log, format!("reloaded: {name} is in force"));

    if let Some(s) = &syslog {
        let message = frame(
            now,
            std::process::id(),
            &config_record(now, &name, &plan.params),
        );
        s.send(&message)
            .map_err(|e| PortblockError::RecordNotSent {
                file: file.clone(),
                cause: e.to_string(),
            })?;
        say(log, format!("configuration record sent to {}", s.target()));
    }
    Ok(ApplyOutcome::Applied {
        file,
        previous: previous.map(|p| dir.join(p)),
    })
}

/// After a failed reload: the new file renamed `*.failed`; `current` was
/// never moved, so the rules it names stay in force. Returns one sentence
/// saying what was done.
fn roll_back(dir: &Path, name: &str, log: &mut dyn Write) -> String {
    let link = dir.join(CURRENT);
    let mut done = vec![match fs::read_link(&link) {
        Ok(p) => format!(
            "{} still points to {} and the old rules stay in force",
            link.display(),
            p.display()
        ),
        Err(_) => format!(
            "{} was not made (there were no rules before)",
            link.display()
        ),
    }];
    let failed = dir.join(format!("{name}{FAILED_SUFFIX}"));
    match fs::rename(dir.join(name), &failed) {
        Ok(()) => {
            say(
                log,
                format!(
                    "kept the new rules as {} (never in force)",
                    failed.display()
                ),
            );
            done.push(format!("the new rules are kept as {}", failed.display()));
        }
        Err(e) => done.push(format!(
            "could not rename {name} to {}: {e}",
            failed.display()
        )),
    }
    done.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::portblock::plan::{Method, PlanInput};
    use crate::portblock::testutil::temp_dir;
    use std::os::unix::net::UnixDatagram;

    fn plan(per_client: u32) -> Plan {
        Plan::new(&PlanInput {
            internal: vec!["10.8.0.0/29".parse().unwrap()],
            public: vec!["192.0.2.1".parse().unwrap()],
            ports: "1280-65535".parse().unwrap(),
            per_client: Some(per_client),
            method: Method::Nft,
            table: None,
            oif: None,
            include_first: false,
        })
        .unwrap()
    }

    /// Options whose "reload" appends the path it was given to a file, and
    /// no syslog.
    fn opts(dir: &Path, reload: &str) -> ApplyOptions {
        ApplyOptions {
            state_dir: dir.join("state"),
            dry_run: false,
            reload_cmd: Some(reload.into()),
            reload_always: false,
            reload_timeout: Duration::from_secs(10),
            syslog: None,
        }
    }

    fn files(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("rules."))
            .collect();
        v.sort();
        v
    }

    #[test]
    fn describes_changes_and_what_stays_loaded() {
        let text = render(&plan(256), 0);
        let prev = RuleFile::parse(Path::new("rules.1.nft"), &text).unwrap();
        assert_eq!(
            describe_change(&prev, &plan(512)),
            "5 clients' blocks change, 0 clients added, 0 removed; per_client 256 -> 512"
        );
        assert_eq!(left_behind(&prev, &plan(512)), None);
        let mut ipt = plan(256);
        ipt.params.method = Method::Iptables;
        ipt.params.table = None;
        assert!(
            left_behind(&prev, &ipt)
                .unwrap()
                .contains("nft delete table ip masqlog_portblock")
        );
    }

    #[test]
    fn command_lines() {
        let p = Path::new("/var/lib/x y/current");
        assert_eq!(
            reload_command_line("nft -f", p),
            "nft -f '/var/lib/x y/current'"
        );
        assert_eq!(
            reload_command_line("nft -f {} && echo {}", p),
            "nft -f '/var/lib/x y/current' && echo '/var/lib/x y/current'"
        );
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }

    #[test]
    fn apply_writes_once_switches_and_rolls_back() {
        let t = temp_dir("apply");
        let seen = t.path().join("reloaded");
        let ok = format!(
            "cat {{}} > /dev/null && echo loaded >> {}",
            shell_quote(&seen.to_string_lossy())
        );
        let o = opts(t.path(), &ok);
        let state = t.path().join("state");
        let mut log = Vec::new();

        // First apply: a file, current, one reload.
        let out = apply(&plan(256), &o, &mut log).unwrap();
        let ApplyOutcome::Applied {
            file,
            previous: None,
        } = out
        else {
            panic!("{out:?}")
        };
        assert_eq!(files(&state).len(), 1);
        let first = files(&state)[0].clone();
        assert_eq!(
            fs::read_link(state.join(CURRENT)).unwrap(),
            Path::new(&first)
        );
        assert_eq!(file.file_name().unwrap().to_string_lossy(), first);
        assert_eq!(fs::read_to_string(&seen).unwrap(), "loaded\n");

        // Same plan again: nothing written, no reload.
        let out = apply(&plan(256), &o, &mut log).unwrap();
        assert!(
            matches!(
                out,
                ApplyOutcome::Unchanged {
                    reloaded: false,
                    ..
                }
            ),
            "{out:?}"
        );
        assert_eq!(files(&state), std::slice::from_ref(&first));
        assert_eq!(fs::read_to_string(&seen).unwrap(), "loaded\n");

        // --reload-always reloads the unchanged rules.
        let mut o2 = o.clone();
        o2.reload_always = true;
        let out = apply(&plan(256), &o2, &mut log).unwrap();
        assert!(
            matches!(out, ApplyOutcome::Unchanged { reloaded: true, .. }),
            "{out:?}"
        );
        assert_eq!(fs::read_to_string(&seen).unwrap(), "loaded\nloaded\n");

        // A changed plan: a second file (in a later second), current moves.
        let out = apply(&plan(512), &o, &mut log).unwrap();
        let ApplyOutcome::Applied {
            previous: Some(prev),
            ..
        } = &out
        else {
            panic!("{out:?}")
        };
        assert_eq!(prev.file_name().unwrap().to_string_lossy(), first);
        let two = files(&state);
        assert_eq!(two.len(), 2);
        let second = two.iter().find(|n| **n != first).unwrap().clone();
        assert_eq!(
            fs::read_link(state.join(CURRENT)).unwrap(),
            Path::new(&second)
        );
        let h = history::history(&state).unwrap();
        assert_eq!(h.len(), 2);
        assert!(h[0].timestamp < h[1].timestamp);
        assert_eq!(h[1].params.per_client, 512);

        // A failing reload: current never moves, the new file is set aside.
        let bad = opts(t.path(), "echo 'nft: syntax error' >&2; exit 3; :");
        let before = log.len();
        let e = apply(&plan(1024), &bad, &mut log).unwrap_err().to_string();
        assert!(e.contains("exit status: 3"), "{e}");
        assert!(e.contains(&format!("still points to {second}")), "{e}");
        assert_eq!(
            fs::read_link(state.join(CURRENT)).unwrap(),
            Path::new(&second)
        );
        let after = files(&state);
        assert_eq!(after.len(), 3, "{after:?}");
        assert!(
            after.iter().any(|n| n.ends_with(".nft.failed")),
            "{after:?}"
        );
        assert_eq!(history::history(&state).unwrap().len(), 2);
        let failed_run = String::from_utf8(log[before..].to_vec()).unwrap();
        assert!(failed_run.contains("  | nft: syntax error"), "{failed_run}");
        assert!(!failed_run.contains("switched"), "{failed_run}");

        // The failed plan applied again with a good reload works.
        let out = apply(&plan(1024), &o, &mut Vec::new()).unwrap();
        assert!(matches!(out, ApplyOutcome::Applied { .. }));
        assert_eq!(history::history(&state).unwrap().len(), 3);
    }

    #[test]
    fn a_failing_first_reload_leaves_no_current() {
        let t = temp_dir("apply-first-fail");
        let state = t.path().join("state");
        let e = apply(&plan(256), &opts(t.path(), "false"), &mut Vec::new()).unwrap_err();
        assert!(e.to_string().contains("was not made"), "{e}");
        assert!(fs::symlink_metadata(state.join(CURRENT)).is_err());
        assert!(history::history(&state).unwrap().is_empty());
    }

    #[test]
    fn current_moves_only_after_the_reload_worked() {
        let t = temp_dir("apply-order");
        let state = t.path().join("state");
        apply(&plan(256), &opts(t.path(), "true"), &mut Vec::new()).unwrap();
        let first = files(&state)[0].clone();
        // The reload sees `current` still naming the rules in force.
        let seen = t.path().join("seen");
        let cmd = format!(
            "readlink {}/current > {}; :",
            state.display(),
            seen.display()
        );
        apply(&plan(512), &opts(t.path(), &cmd), &mut Vec::new()).unwrap();
        assert_eq!(fs::read_to_string(&seen).unwrap().trim(), first);
        let second = files(&state).into_iter().find(|n| *n != first).unwrap();
        assert_eq!(
            fs::read_link(state.join(CURRENT)).unwrap(),
            Path::new(&second)
        );
    }

    #[test]
    fn a_second_apply_while_the_first_holds_the_lock_fails_clearly() {
        let t = temp_dir("apply-lock");
        let state = t.path().join("state");
        fs::create_dir_all(&state).unwrap();
        let held = lock(&state).unwrap();
        let e = apply(&plan(256), &opts(t.path(), "true"), &mut Vec::new())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("another `masqlog portblock apply`") && e.contains(".lock"),
            "{e}"
        );
        assert!(files(&state).is_empty());
        drop(held);
        apply(&plan(256), &opts(t.path(), "true"), &mut Vec::new()).unwrap();
    }

    #[test]
    fn dry_run_changes_nothing() {
        let t = temp_dir("apply-dry");
        let mut o = opts(t.path(), "false");
        o.dry_run = true;
        let out = apply(&plan(256), &o, &mut Vec::new()).unwrap();
        assert!(matches!(out, ApplyOutcome::WouldWrite { .. }));
        assert!(!t.path().join("state").exists());
        o.dry_run = false;
        o.reload_cmd = Some("true".into());
        apply(&plan(256), &o, &mut Vec::new()).unwrap();
        o.dry_run = true;
        o.reload_cmd = Some("false".into());
        let ApplyOutcome::WouldWrite { text, .. } = apply(&plan(512), &o, &mut Vec::new()).unwrap()
        else {
            panic!()
        };
        assert!(text.contains("# per_client=512"));
        assert_eq!(files(&t.path().join("state")).len(), 1);
    }

    #[test]
    fn syslog_record_is_sent_and_a_missing_socket_changes_nothing() {
        let t = temp_dir("apply-syslog");
        let sock = t.path().join("log");
        let mut o = opts(t.path(), "true");
        o.syslog = Some(SyslogTarget::Unix(sock.clone()));
        // No daemon: refused before anything is written.
        let e = apply(&plan(256), &o, &mut Vec::new())
            .unwrap_err()
            .to_string();
        assert!(e.contains("--no-syslog"), "{e}");
        assert!(files(&t.path().join("state")).is_empty());
        // With a receiver: one record naming the file.
        let rx = UnixDatagram::bind(&sock).unwrap();
        rx.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let ApplyOutcome::Applied { file, .. } = apply(&plan(256), &o, &mut Vec::new()).unwrap()
        else {
            panic!()
        };
        let mut buf = vec![0u8; 4096];
        let n = rx.recv(&mut buf).unwrap();
        let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        assert!(msg.starts_with("<29>"), "{msg}");
        assert!(
            msg.contains(&format!(
                " masqlog[{}]: masqlog-portblock/1 ev=apply time=",
                std::process::id()
            )),
            "{msg}"
        );
        assert!(msg.contains(&format!(" file={name} internal=10.8.0.0/29 public=192.0.2.1 ports=1280-65535 per_client=256 method=nft")), "{msg}");
        // Unchanged: no record.
        rx.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        apply(&plan(256), &o, &mut Vec::new()).unwrap();
        assert!(rx.recv(&mut buf).is_err());
    }

    #[test]
    fn a_reload_that_hangs_is_killed() {
        let t = temp_dir("apply-hang");
        let mut o = opts(t.path(), "sleep 30 #");
        o.reload_timeout = Duration::from_millis(300);
        let start = Instant::now();
        let e = apply(&plan(256), &o, &mut Vec::new())
            .unwrap_err()
            .to_string();
        assert!(e.contains("killed after"), "{e}");
        assert!(start.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn current_made_by_hand_is_refused() {
        let t = temp_dir("apply-foreign");
        let state = t.path().join("state");
        fs::create_dir_all(&state).unwrap();
        fs::write(state.join(CURRENT), "hand-made").unwrap();
        let e = apply(&plan(256), &opts(t.path(), "true"), &mut Vec::new())
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a symlink"), "{e}");
        assert_eq!(
            fs::read_to_string(state.join(CURRENT)).unwrap(),
            "hand-made"
        );
    }
}
