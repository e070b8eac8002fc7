//! Daemons for the lab: [`Supervised`] programs in their own process group,
//! output in a log file, stopped on drop (and by the [`Reaper`] if the lab's
//! process dies). One-shot commands are `masqlog_core::process`'s.

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::Arc;
use std::time::Duration;

use masqlog_core::process::{self as core, describe, wrap};
pub use masqlog_core::process::{COMMAND_TIMEOUT, Signal, describe_status};

use crate::LabError;
use crate::reaper::Reaper;
use crate::wait;

/// The absolute path of a program, from `PATH` or the sbin directories.
pub fn find_tool(name: &str) -> Result<PathBuf, LabError> {
    Ok(core::find_tool(name)?)
}

/// Sends `sig` to a process (`pid > 0`) or a process group (`-pgid`).
/// `Ok(false)`: no such process.
pub fn send_signal(target: i64, sig: Signal) -> Result<bool, LabError> {
    Ok(core::send_signal(target, sig)?)
}

/// Runs a command to its end, at most `timeout` (see
/// [`masqlog_core::process::run_with`]).
pub fn run_with(
    argv: &[&str],
    ns: Option<&str>,
    stdin: Option<&[u8]>,
    timeout: Duration,
) -> Result<Output, LabError> {
    Ok(core::run_with(argv, ns, stdin, timeout)?)
}

/// Runs a command; its exit status is the caller's business.
pub fn run_quiet(argv: &[&str], ns: Option<&str>) -> Result<Output, LabError> {
    Ok(core::run_quiet(argv, ns)?)
}

/// Runs a command that must succeed; returns its stdout.
pub fn run(argv: &[&str], ns: Option<&str>) -> Result<String, LabError> {
    Ok(core::run(argv, ns)?)
}

/// Runs a command that must succeed with `stdin`; returns its stdout.
pub fn run_input(argv: &[&str], ns: Option<&str>, stdin: Option<&str>) -> Result<String, LabError> {
    Ok(core::run_input(argv, ns, stdin)?)
}

/// How long a stopped daemon gets between SIGTERM and SIGKILL: well above
/// the plugin's own longest stop (5 s for the writer, then the spool's
/// sync), so that a busy machine never turns a clean stop into a SIGKILL
/// that loses ulogd's last log lines.
pub const STOP_GRACE: Duration = Duration::from_secs(20);

/// The effective uid of this process (from `/proc/self/status`).
pub fn effective_uid() -> Result<u32, LabError> {
    let status = std::fs::read_to_string("/proc/self/status")
        .map_err(|e| LabError::io("reading /proc/self/status", e))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|rest| rest.split_whitespace().nth(1))
        .and_then(|euid| euid.parse().ok())
        .ok_or_else(|| {
            LabError::io(
                "reading /proc/self/status",
                std::io::Error::other("no Uid: line"),
            )
        })
}

/// A daemon started by the lab: its own process group, stdout and stderr
/// in a log file, stopped (SIGTERM to the group, then SIGKILL) on drop.
#[derive(Debug)]
pub struct Supervised {
    name: String,
    child: Child,
    out_path: PathBuf,
    exited: Option<ExitStatus>,
    reaper: Arc<Reaper>,
}

impl Supervised {
    /// Starts `argv` (in namespace `ns`), output appended to `out_path`.
    pub fn spawn(
        reaper: &Arc<Reaper>,
        name: &str,
        argv: &[&str],
        ns: Option<&str>,
        out_path: &Path,
    ) -> Result<Supervised, LabError> {
        let full = wrap(argv, ns)?;
        let out = File::options()
            .create(true)
            .append(true)
            .open(out_path)
            .map_err(|e| LabError::io(format!("opening {}", out_path.display()), e))?;
        let err = out
            .try_clone()
            .map_err(|e| LabError::io(format!("opening {}", out_path.display()), e))?;
        let child = Command::new(&full[0])
            .args(&full[1..])
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0)
            .spawn()
            .map_err(|source| LabError::Spawn {
                cmd: describe(&full),
                source,
            })?;
        reaper.add_process_group(child.id());
        Ok(Supervised {
            name: name.to_string(),
            child,
            out_path: out_path.to_path_buf(),
            exited: None,
            reaper: Arc::clone(reaper),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The program's pid (also its process group id).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Where its stdout and stderr go.
    pub fn output_path(&self) -> &Path {
        &self.out_path
    }

    /// Its stdout and stderr so far.
    pub fn output(&self) -> String {
        std::fs::read(&self.out_path)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// Sends a signal to the program itself (not its group).
    pub fn signal(&self, sig: Signal) -> Result<(), LabError> {
        if self.exited.is_some() || !send_signal(i64::from(self.pid()), sig)? {
            return Err(LabError::Exited {
                name: self.name.clone(),
                status: self
                    .exited
                    .map(describe_status)
                    .unwrap_or_else(|| "gone".into()),
                log: tail(&self.output(), 20),
            });
        }
        Ok(())
    }

    /// The exit status if the program has ended.
    pub fn try_wait(&mut self) -> Result<Option<ExitStatus>, LabError> {
        if self.exited.is_none() {
            self.exited = self
                .child
                .try_wait()
                .map_err(|e| LabError::io(format!("waiting for {}", self.name), e))?;
            if self.exited.is_some() {
                // The leader is gone; stragglers of its group go too.
                self.kill_group(Signal::Kill);
            }
        }
        Ok(self.exited)
    }

    /// Whether the program still runs.
    pub fn is_running(&mut self) -> bool {
        matches!(self.try_wait(), Ok(None))
    }

    /// Waits at most `timeout` for the program to exit by itself.
    pub fn wait_exit(&mut self, timeout: Duration) -> Result<ExitStatus, LabError> {
        let what = format!("{} to exit", self.name);
        wait::poll(&what, timeout, || self.try_wait())
    }

    /// Stops the program: SIGTERM to its group, SIGKILL after
    /// [`STOP_GRACE`]. Returns how it ended.
    pub fn stop(&mut self) -> Result<ExitStatus, LabError> {
        if let Some(s) = self.try_wait()? {
            self.reaper.remove_process_group(self.child.id());
            return Ok(s);
        }
        self.kill_group(Signal::Term);
        let status = match self.wait_exit(STOP_GRACE) {
            Ok(s) => s,
            Err(_) => {
                self.kill_group(Signal::Kill);
                let s = self
                    .child
                    .wait()
                    .map_err(|e| LabError::io(format!("waiting for {}", self.name), e))?;
                self.exited = Some(s);
                s
            }
        };
        self.kill_group(Signal::Kill);
        self.reaper.remove_process_group(self.child.id());
        Ok(status)
    }

    fn kill_group(&self, sig: Signal) {
        let _ = send_signal(-i64::from(self.child.id()), sig);
    }
}

impl Drop for Supervised {
    fn drop(&mut self) {
        // A disarmed reaper means `--keep`: leave the daemon running.
        if self.reaper.is_armed() {
            let _ = self.stop();
        }
    }
}

/// The last `n` lines of `text`.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
