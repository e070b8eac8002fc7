//! Running programs for the lab: one-shot commands with a time limit, and
//! [`Supervised`] daemons in their own process group that are stopped on
//! drop. Programs in a namespace run as `ip netns exec NS PROGRAM ...`
//! (`ip` execs the program, so the pid is the program's own).

use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use super::LabError;
use super::reaper::Reaper;
use super::wait;

/// Directories searched after `PATH`: root's tools live in sbin, which a
/// non-login shell may not have in its `PATH`.
const EXTRA_PATH: &[&str] = &["/usr/sbin", "/sbin", "/usr/bin", "/bin"];

/// How long a stopped daemon gets between SIGTERM and SIGKILL.
pub const STOP_GRACE: Duration = Duration::from_secs(5);

/// The absolute path of a program, from `PATH` or the sbin directories.
pub fn find_tool(name: &str) -> Result<PathBuf, LabError> {
    if name.contains('/') {
        let p = PathBuf::from(name);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(LabError::MissingTool(name.to_string()))
        };
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(EXTRA_PATH.iter().map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .ok_or_else(|| LabError::MissingTool(name.to_string()))
}

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

/// A signal the lab sends (by name, through the shell's `kill`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signal {
    Term,
    Kill,
    Int,
    Hup,
    Usr1,
}

impl Signal {
    pub fn name(self) -> &'static str {
        match self {
            Signal::Term => "TERM",
            Signal::Kill => "KILL",
            Signal::Int => "INT",
            Signal::Hup => "HUP",
            Signal::Usr1 => "USR1",
        }
    }
}

/// Sends `sig` to a process (`pid > 0`) or a process group (`-pgid`) with
/// the shell's `kill` builtin. `Ok(false)`: no such process.
pub fn send_signal(target: i64, sig: Signal) -> Result<bool, LabError> {
    let script = format!("kill -s {} -- {target} 2>/dev/null", sig.name());
    let status = Command::new("/bin/sh")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .status()
        .map_err(|source| LabError::Spawn {
            cmd: script.clone(),
            source,
        })?;
    Ok(status.success())
}

/// The argv that runs `argv` inside namespace `ns` (or as it is).
fn wrap(argv: &[&str], ns: Option<&str>) -> Result<Vec<String>, LabError> {
    let (first, rest) = argv.split_first().expect("a program to run");
    let program = find_tool(first)?.to_string_lossy().into_owned();
    let mut out = Vec::with_capacity(argv.len() + 4);
    if let Some(ns) = ns {
        out.push(find_tool("ip")?.to_string_lossy().into_owned());
        out.extend(["netns".into(), "exec".into(), ns.to_string()]);
    }
    out.push(program);
    out.extend(rest.iter().map(|s| s.to_string()));
    Ok(out)
}

fn describe(argv: &[String]) -> String {
    argv.join(" ")
}

fn status_text(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(c), _) => format!("exit code {c}"),
        (None, Some(s)) => format!("killed by signal {s}"),
        _ => status.to_string(),
    }
}

/// A command's result in words, for error messages.
pub fn describe_status(status: ExitStatus) -> String {
    status_text(status)
}

/// Runs a command to its end, at most `timeout`, in its own process group
/// (killed whole on timeout); `stdin` is fed to it if given.
pub fn run_with(
    argv: &[&str],
    ns: Option<&str>,
    stdin: Option<&[u8]>,
    timeout: Duration,
) -> Result<Output, LabError> {
    let full = wrap(argv, ns)?;
    let cmd = describe(&full);
    let mut child = Command::new(&full[0])
        .args(&full[1..])
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(|source| LabError::Spawn {
            cmd: cmd.clone(),
            source,
        })?;
    let pgid = i64::from(child.id());
    let feeder = match (stdin, child.stdin.take()) {
        (Some(data), Some(mut pipe)) => {
            let data = data.to_vec();
            Some(thread::spawn(move || {
                let _ = pipe.write_all(&data);
            }))
        }
        _ => None,
    };
    let readers = [
        child.stdout.take().map(drain),
        child.stderr.take().map(drain),
    ];
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() >= deadline => {
                let _ = send_signal(-pgid, Signal::Kill);
                let _ = child.wait();
                return Err(LabError::Timeout {
                    what: format!("`{cmd}` to finish"),
                    secs: timeout.as_secs_f64(),
                });
            }
            Ok(None) => thread::sleep(Duration::from_millis(5)),
            Err(e) => return Err(LabError::io(format!("waiting for `{cmd}`"), e)),
        }
    };
    // Stragglers of the group would keep the pipes open.
    let _ = send_signal(-pgid, Signal::Kill);
    if let Some(f) = feeder {
        let _ = f.join();
    }
    let [out, err] = readers.map(|r| r.map(|h| h.join().unwrap_or_default()).unwrap_or_default());
    Ok(Output {
        status,
        stdout: out,
        stderr: err,
    })
}

fn drain(mut r: impl Read + Send + 'static) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        buf
    })
}

/// The default time limit of a one-shot command.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs a command; its exit status is the caller's business.
pub fn run_quiet(argv: &[&str], ns: Option<&str>) -> Result<Output, LabError> {
    run_with(argv, ns, None, COMMAND_TIMEOUT)
}

/// Runs a command that must succeed; returns its stdout.
pub fn run(argv: &[&str], ns: Option<&str>) -> Result<String, LabError> {
    run_input(argv, ns, None)
}

/// Runs a command that must succeed with `stdin`; returns its stdout.
pub fn run_input(argv: &[&str], ns: Option<&str>, stdin: Option<&str>) -> Result<String, LabError> {
    let out = run_with(argv, ns, stdin.map(str::as_bytes), COMMAND_TIMEOUT)?;
    if !out.status.success() {
        let full = wrap(argv, ns)?;
        return Err(LabError::Command {
            cmd: describe(&full),
            status: status_text(out.status),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
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
                    .map(status_text)
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
