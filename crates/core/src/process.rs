//! Running programs: one-shot commands with a time limit in their own
//! process group (killed whole on timeout), optionally inside a network
//! namespace as `ip netns exec NS PROGRAM ...` (`ip` execs the program, so
//! the pid is the program's own). Used by `masqlog check-config` and the lab.

use std::io::{self, Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// Why a program could not be run to its end.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProcessError {
    /// The program is not installed.
    #[error("`{0}` is not installed (not found in PATH, /usr/sbin or /sbin)")]
    MissingTool(String),
    /// The program could not be started.
    #[error("cannot run `{cmd}`: {source}")]
    Spawn { cmd: String, source: io::Error },
    /// Waiting for it failed.
    #[error("waiting for `{cmd}`: {source}")]
    Wait { cmd: String, source: io::Error },
    /// It ran and failed.
    #[error("`{cmd}` failed ({status}): {stderr}")]
    Failed {
        cmd: String,
        status: String,
        stderr: String,
    },
    /// It did not finish within its time limit (and was killed).
    #[error("timed out after {secs:.1} s waiting for `{cmd}` to finish")]
    Timeout { cmd: String, secs: f64 },
}

/// Directories searched after `PATH`: root's tools live in sbin, which a
/// non-login shell may not have in its `PATH`.
const EXTRA_PATH: &[&str] = &["/usr/sbin", "/sbin", "/usr/bin", "/bin"];

/// The absolute path of a program, from `PATH` or the sbin directories.
pub fn find_tool(name: &str) -> Result<PathBuf, ProcessError> {
    if name.contains('/') {
        let p = PathBuf::from(name);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(ProcessError::MissingTool(name.to_string()))
        };
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(EXTRA_PATH.iter().map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .ok_or_else(|| ProcessError::MissingTool(name.to_string()))
}

/// A signal to send (by name, through the shell's `kill`).
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
pub fn send_signal(target: i64, sig: Signal) -> Result<bool, ProcessError> {
    let script = format!("kill -s {} -- {target} 2>/dev/null", sig.name());
    let status = Command::new("/bin/sh")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .status()
        .map_err(|source| ProcessError::Spawn {
            cmd: script.clone(),
            source,
        })?;
    Ok(status.success())
}

/// The argv that runs `argv` inside namespace `ns` (or as it is).
pub fn wrap(argv: &[&str], ns: Option<&str>) -> Result<Vec<String>, ProcessError> {
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

pub fn describe(argv: &[String]) -> String {
    argv.join(" ")
}

/// A command's result in words, for error messages.
pub fn describe_status(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(c), _) => format!("exit code {c}"),
        (None, Some(s)) => format!("killed by signal {s}"),
        _ => status.to_string(),
    }
}

/// Runs a command to its end, at most `timeout`, in its own process group
/// (killed whole on timeout); `stdin` is fed to it if given.
pub fn run_with(
    argv: &[&str],
    ns: Option<&str>,
    stdin: Option<&[u8]>,
    timeout: Duration,
) -> Result<Output, ProcessError> {
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
        .map_err(|source| ProcessError::Spawn {
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
                return Err(ProcessError::Timeout {
                    cmd,
                    secs: timeout.as_secs_f64(),
                });
            }
            Ok(None) => thread::sleep(Duration::from_millis(5)),
            Err(source) => return Err(ProcessError::Wait { cmd, source }),
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
pub fn run_quiet(argv: &[&str], ns: Option<&str>) -> Result<Output, ProcessError> {
    run_with(argv, ns, None, COMMAND_TIMEOUT)
}

/// Runs a command that must succeed; returns its stdout.
pub fn run(argv: &[&str], ns: Option<&str>) -> Result<String, ProcessError> {
    run_input(argv, ns, None)
}

/// Runs a command that must succeed with `stdin`; returns its stdout.
pub fn run_input(
    argv: &[&str],
    ns: Option<&str>,
    stdin: Option<&str>,
) -> Result<String, ProcessError> {
    let out = run_with(argv, ns, stdin.map(str::as_bytes), COMMAND_TIMEOUT)?;
    if !out.status.success() {
        let full = wrap(argv, ns)?;
        return Err(ProcessError::Failed {
            cmd: describe(&full),
            status: describe_status(out.status),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
