//! The lab's cleanup registry and its watchdog.
//!
//! Everything the lab creates is registered here first: network namespaces,
//! process groups, temporary directories. When the last `Arc<Reaper>` is
//! dropped, the registry removes them (processes first, then namespaces,
//! then directories). That covers normal ends and panics.
//!
//! A process killed by a signal runs no destructor. For that case the
//! reaper starts a small `/bin/sh` watchdog in its own process group (so a
//! terminal's Ctrl-C does not reach it, and it ignores SIGINT and SIGHUP)
//! and streams each registration to it over its stdin. When the owner
//! exits in any way, the pipe's write end closes; the watchdog reads EOF and
//! removes what is still registered. A clean teardown sends `done` first,
//! and the watchdog exits without touching anything. No signal handler is
//! needed, and SIGKILL is covered too.

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::LabError;
use crate::process::{self, Signal};

/// The watchdog. Protocol on stdin, one line each: `pg PGID`, `unpg PGID`,
/// `ns NAME`, `dir PATH`, `done` (exit, touch nothing); EOF means the owner
/// died: clean up.
const WATCHDOG: &str = r#"trap '' INT HUP
pgs=' '; nss=''; dirs=''
while IFS=' ' read -r verb arg; do
  case "$verb" in
    pg) pgs="$pgs$arg " ;;
    unpg) new=' '; for p in $pgs; do [ "$p" = "$arg" ] || new="$new$p "; done; pgs=$new ;;
    ns) nss="$nss $arg" ;;
    dir) dirs="$dirs $arg" ;;
    done) exit 0 ;;
  esac
done
[ -z "$pgs$nss$dirs" ] && exit 0
echo "masqlog lab: the lab's owner exited; removing$nss" >&2
for pg in $pgs; do kill -s TERM -- "-$pg" 2>/dev/null; done
for ns in $nss; do for p in $(ip netns pids "$ns" 2>/dev/null); do kill -s TERM "$p" 2>/dev/null; done; done
sleep 1
for pg in $pgs; do kill -s KILL -- "-$pg" 2>/dev/null; done
for ns in $nss; do for p in $(ip netns pids "$ns" 2>/dev/null); do kill -s KILL "$p" 2>/dev/null; done; done
for ns in $nss; do ip netns del "$ns" 2>/dev/null; done
for d in $dirs; do rm -rf -- "$d"; done
exit 0
"#;

#[derive(Debug, Default)]
struct State {
    pgs: Vec<u32>,
    netns: Vec<String>,
    dirs: Vec<PathBuf>,
    disarmed: bool,
}

/// What the lab must remove, and the watchdog that removes it if this
/// process dies first.
#[derive(Debug)]
pub struct Reaper {
    state: Mutex<State>,
    watchdog: Mutex<Option<(Child, ChildStdin)>>,
}

impl Reaper {
    /// Starts the watchdog.
    pub fn start() -> Result<Arc<Reaper>, LabError> {
        let ip = process::find_tool("ip")?;
        let dir = ip.parent().map(Path::to_path_buf).unwrap_or_default();
        let path = format!("{}:/usr/sbin:/usr/bin:/sbin:/bin", dir.to_string_lossy());
        let mut child = Command::new("/bin/sh")
            .args(["-c", WATCHDOG])
            .env("PATH", path)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .process_group(0)
            .spawn()
            .map_err(|source| LabError::Spawn {
                cmd: "/bin/sh -c <lab watchdog>".into(),
                source,
            })?;
        let stdin = child.stdin.take().expect("piped stdin");
        Ok(Arc::new(Reaper {
            state: Mutex::new(State::default()),
            watchdog: Mutex::new(Some((child, stdin))),
        }))
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn tell(&self, line: &str) {
        let mut w = self.watchdog.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, stdin)) = w.as_mut() {
            // A dead watchdog only costs the backup; the registry still works.
            let _ = writeln!(stdin, "{line}");
            let _ = stdin.flush();
        }
    }

    /// Registers a network namespace (before creating it).
    pub fn add_netns(&self, name: &str) {
        self.state().netns.push(name.to_string());
        self.tell(&format!("ns {name}"));
    }

    /// Registers a directory to remove with everything in it.
    pub fn add_dir(&self, path: &Path) {
        self.state().dirs.push(path.to_path_buf());
        self.tell(&format!("dir {}", path.display()));
    }

    /// Registers a process group (its leader's pid).
    pub fn add_process_group(&self, pgid: u32) {
        self.state().pgs.push(pgid);
        self.tell(&format!("pg {pgid}"));
    }

    /// Forgets a process group that has been stopped and reaped.
    pub fn remove_process_group(&self, pgid: u32) {
        let mut st = self.state();
        let before = st.pgs.len();
        st.pgs.retain(|&p| p != pgid);
        let removed = st.pgs.len() != before;
        drop(st);
        if removed {
            self.tell(&format!("unpg {pgid}"));
        }
    }

    /// Whether drops still clean up (false after [`Reaper::disarm`]).
    pub fn is_armed(&self) -> bool {
        !self.state().disarmed
    }

    /// Leaves everything in place (`masqlog lab --keep`): the watchdog
    /// exits, and drops no longer stop or remove anything. Returns a shell
    /// script that removes it all later.
    pub fn disarm(&self) -> String {
        let script = self.teardown_script();
        self.state().disarmed = true;
        self.finish_watchdog();
        script
    }

    /// A shell script that removes what is registered now.
    pub fn teardown_script(&self) -> String {
        let st = self.state();
        let mut s =
            String::from("#!/bin/sh\n# Removes a masqlog lab left up by `masqlog lab --keep`.\n");
        // Process groups outside the namespaces (a local rsyslogd): only
        // while their leader still runs with a path of the lab in its command
        // line, so that a reused pid is never hit.
        if let Some(dir) = st.dirs.first() {
            for pg in &st.pgs {
                s.push_str(&format!(
                    "grep -qF '{}' /proc/{pg}/cmdline 2>/dev/null && kill -s TERM -- -{pg}\n",
                    dir.display()
                ));
            }
        }
        for ns in &st.netns {
            s.push_str(&format!(
                "for p in $(ip netns pids {ns} 2>/dev/null); do kill -s TERM \"$p\"; done\n"
            ));
        }
        s.push_str("sleep 1\n");
        for ns in &st.netns {
            s.push_str(&format!(
                "for p in $(ip netns pids {ns} 2>/dev/null); do kill -s KILL \"$p\"; done\n"
            ));
            s.push_str(&format!("ip netns del {ns} 2>/dev/null\n"));
        }
        for d in &st.dirs {
            s.push_str(&format!("rm -rf -- '{}'\n", d.display()));
        }
        s
    }

    fn finish_watchdog(&self) {
        let taken = self
            .watchdog
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some((mut child, mut stdin)) = taken {
            let _ = writeln!(stdin, "done");
            drop(stdin);
            let _ = child.wait();
        }
    }

    /// Removes everything registered, now.
    fn clean_up(&self) {
        let st = std::mem::take(&mut *self.state());
        for pg in &st.pgs {
            let _ = process::send_signal(-i64::from(*pg), Signal::Term);
        }
        for ns in &st.netns {
            kill_netns_processes(ns, Signal::Term);
        }
        for pg in &st.pgs {
            let _ = process::send_signal(-i64::from(*pg), Signal::Kill);
        }
        for ns in st.netns.iter().rev() {
            kill_netns_processes(ns, Signal::Kill);
            let _ = process::run_quiet(&["ip", "netns", "del", ns], None);
        }
        for d in &st.dirs {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

/// Signals every process whose network namespace is `ns` (processes the
/// lab started there; `ip netns pids` finds them by their namespace).
fn kill_netns_processes(ns: &str, sig: Signal) {
    if let Ok(out) = process::run_quiet(&["ip", "netns", "pids", ns], None) {
        for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
            if let Ok(pid) = pid.parse::<i64>() {
                let _ = process::send_signal(pid, sig);
            }
        }
    }
}

impl Drop for Reaper {
    fn drop(&mut self) {
        if self.is_armed() {
            self.clean_up();
        }
        self.finish_watchdog();
    }
}
