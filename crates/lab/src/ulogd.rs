//! Stock ulogd in the router namespace with a lab config, and what the lab
//! reads from ulogd's log (readiness, statistics lines, errors).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::Duration;

use crate::process::{self, Signal, Supervised};
use crate::topology::{Lab, Role, SHORT_WAIT};
use crate::{LabError, UlogdConf, wait};
use masqlog_core::ulogd_conf::{BUILT_LIBRARY, PLUGIN_FILE, Substitutions, default_plugin_dir};

/// What ulogd 2.0.8 logs when every stack started.
pub const READY_LINE: &str = "initialization finished, entering main loop";
/// What NFCT logs when the kernel dropped events for a full socket buffer.
pub const LOSING_EVENTS: &str = "losing events";

/// Finds the built plugin: `$MASQLOG_SO` if set, else `libmasqlog.so` next
/// to the running executable or one directory up. A test binary lives in
/// `target/<profile>/deps/`, where `cargo test` builds the library it was
/// linked with (`cargo test` does not refresh `target/<profile>/`'s copy);
/// `masqlog` lives in `target/<profile>/` next to `cargo build`'s copy.
pub fn find_plugin() -> Result<PathBuf, LabError> {
    if let Some(p) = std::env::var_os("MASQLOG_SO") {
        let p = PathBuf::from(p);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(LabError::NotFound {
                what: "the plugin named by $MASQLOG_SO".into(),
                path: p.display().to_string(),
            })
        };
    }
    let exe = std::env::current_exe().map_err(|e| LabError::io("finding this executable", e))?;
    let mut tried = Vec::new();
    for dir in exe.ancestors().skip(1).take(2) {
        let p = dir.join(BUILT_LIBRARY);
        if p.is_file() {
            return Ok(p);
        }
        tried.push(p.display().to_string());
    }
    Err(LabError::NotFound {
        what: "the plugin (run `cargo build --release` first, or set $MASQLOG_SO)".into(),
        path: tried.join(" or "),
    })
}

/// Copies the plugin into the lab directory as `ulogd_output_MASQLOG.so`.
pub fn install_plugin(lab: &Lab, so: &Path) -> Result<PathBuf, LabError> {
    let dest = lab.path(PLUGIN_FILE);
    std::fs::copy(so, &dest)
        .map_err(|e| LabError::io(format!("copying {} to {}", so.display(), dest.display()), e))?;
    Ok(dest)
}

/// Placeholder values for a ulogd named `name` of this lab: its log file is
/// `<dir>/<name>.log`; the plugin is `so` (installed).
pub fn substitutions(lab: &Lab, name: &str, so: &Path) -> Substitutions {
    Substitutions {
        plugin_dir: default_plugin_dir(),
        masqlog_so: so.to_path_buf(),
        logfile: lab.path(&format!("{name}.log")),
        syslog_socket: None,
        remote: None,
    }
}

/// A ulogd run by the lab.
#[derive(Debug)]
pub struct Ulogd {
    proc: Supervised,
    conf_path: PathBuf,
    logfile: PathBuf,
}

impl Ulogd {
    /// Starts ulogd in the router with `conf` and waits until it logged
    /// [`READY_LINE`]; if it exits first, the error carries its log.
    pub fn start(lab: &Lab, name: &str, conf: &UlogdConf) -> Result<Ulogd, LabError> {
        let mut u = Ulogd::spawn(lab, name, conf)?;
        u.wait_ready(SHORT_WAIT)?;
        Ok(u)
    }

    /// Starts ulogd without waiting (for configs that should fail).
    pub fn spawn(lab: &Lab, name: &str, conf: &UlogdConf) -> Result<Ulogd, LabError> {
        let conf_path = lab.path(&format!("{name}.conf"));
        let mut conf = conf.clone();
        conf.set_spool_dir(&lab.path("spool"));
        let (seal_state, _) = lab.seal_key()?;
        conf.set_seal_state(&seal_state);
        conf.write(&conf_path)?;
        let logfile = conf
            .get("global", "logfile")
            .map(|v| PathBuf::from(v.trim_matches('"')))
            .unwrap_or_else(|| lab.path(&format!("{name}.log")));
        let pid = lab.path(&format!("{name}.pid"));
        let _ = std::fs::remove_file(&pid);
        let conf_s = conf_path.to_string_lossy().into_owned();
        let pid_s = pid.to_string_lossy().into_owned();
        let proc = lab.spawn(
            Some(Role::Router),
            name,
            &["ulogd", "-c", &conf_s, "-p", &pid_s],
        )?;
        Ok(Ulogd {
            proc,
            conf_path,
            logfile,
        })
    }

    fn exited(&mut self, status: ExitStatus) -> LabError {
        LabError::Exited {
            name: self.proc.name().to_string(),
            status: process::describe_status(status),
            log: process::tail(&format!("{}{}", self.log(), self.proc.output()), 30),
        }
    }

    /// Waits for [`READY_LINE`].
    pub fn wait_ready(&mut self, timeout: Duration) -> Result<(), LabError> {
        let what = format!("{} to start ({})", self.proc.name(), self.logfile.display());
        wait::poll(&what, timeout, || {
            if let Some(status) = self.proc.try_wait()? {
                return Err(self.exited(status));
            }
            Ok(self.log().contains(READY_LINE).then_some(()))
        })
    }

    /// Waits until the log contains `needle` (ulogd must keep running).
    pub fn wait_log(&mut self, needle: &str, timeout: Duration) -> Result<(), LabError> {
        let what = format!("{needle:?} in {}", self.logfile.display());
        wait::poll(&what, timeout, || {
            if self.log().contains(needle) {
                return Ok(Some(()));
            }
            if let Some(status) = self.proc.try_wait()? {
                return Err(self.exited(status));
            }
            Ok(None)
        })
    }

    /// ulogd's log file so far.
    pub fn log(&self) -> String {
        std::fs::read(&self.logfile)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    pub fn logfile(&self) -> &Path {
        &self.logfile
    }

    pub fn conf_path(&self) -> &Path {
        &self.conf_path
    }

    pub fn pid(&self) -> u32 {
        self.proc.pid()
    }

    /// ulogd's stdout and stderr (normally empty).
    pub fn output(&self) -> String {
        self.proc.output()
    }

    pub fn signal(&self, sig: Signal) -> Result<(), LabError> {
        self.proc.signal(sig)
    }

    pub fn is_running(&mut self) -> bool {
        self.proc.is_running()
    }

    /// The statistics lines logged so far, oldest first.
    pub fn stats(&self) -> Vec<StatsLine> {
        parse_stats(&self.log())
    }

    /// Sends SIGUSR1 and returns the statistics line it produced for
    /// instance `id`.
    pub fn request_stats(&mut self, id: &str, timeout: Duration) -> Result<StatsLine, LabError> {
        let of_id = |log: &str| -> Vec<StatsLine> {
            parse_stats(log)
                .into_iter()
                .filter(|s| s.instance == id && s.what == "stats")
                .collect()
        };
        let before = of_id(&self.log()).len();
        self.signal(Signal::Usr1)?;
        let what = format!("a statistics line of {id} after SIGUSR1");
        wait::poll(&what, timeout, || {
            let mut all = of_id(&self.log());
            if all.len() > before {
                return Ok(all.pop());
            }
            if let Some(status) = self.proc.try_wait()? {
                return Err(self.exited(status));
            }
            Ok(None)
        })
    }

    /// Waits for ulogd to exit by itself.
    pub fn wait_exit(&mut self, timeout: Duration) -> Result<ExitStatus, LabError> {
        self.proc.wait_exit(timeout)
    }

    /// Stops ulogd (SIGTERM: its plugins' stop functions run).
    pub fn stop(&mut self) -> Result<ExitStatus, LabError> {
        self.proc.stop()
    }
}

/// One `MASQLOG[id] WHAT: key=N ...` line of ulogd's log (WHAT is `stats`
/// for SIGUSR1 and periodic lines, `stopped` at shutdown).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StatsLine {
    pub instance: String,
    pub what: String,
    pub waiting: u64,
    pub written: u64,
    pub failed: u64,
    pub dropped: u64,
    /// Every `key=N` of the line, the four above included.
    pub all: BTreeMap<String, u64>,
    /// The `key=N` after `ident:` (the pool's counters: sent, answered,
    /// failed, dropped, lost, mean_ms, max_ms); empty without IDENT.
    pub ident: BTreeMap<String, u64>,
}

/// Finds the statistics lines in a ulogd log. ulogd 2.0.8 sometimes writes
/// two messages on one line (a missing newline in NFCT), so this scans for
/// `MASQLOG[` anywhere rather than at line starts.
pub fn parse_stats(log: &str) -> Vec<StatsLine> {
    let mut out = Vec::new();
    for (at, _) in log.match_indices("MASQLOG[") {
        let rest = &log[at + "MASQLOG[".len()..];
        let line = rest.split('\n').next().unwrap_or("");
        let Some((id, after)) = line.split_once("] ") else {
            continue;
        };
        let Some((what, fields)) = after.split_once(": ") else {
            continue;
        };
        if what.contains(' ') {
            continue;
        }
        let (sink, ident_fields) = match fields.split_once(" ident: ") {
            Some((s, i)) => (s, Some(i)),
            None => (fields, None),
        };
        let all = key_values(sink);
        let ident = ident_fields.map(key_values).unwrap_or_default();
        let get = |k: &str| all.get(k).copied();
        // `destination=none`: the store's counts are the writes.
        let (Some(waiting), Some(written), Some(failed), Some(dropped)) = (
            get("waiting"),
            get("written").or_else(|| get("store_written")),
            get("failed").or_else(|| get("store_failed")),
            get("dropped"),
        ) else {
            continue;
        };
        out.push(StatsLine {
            instance: id.to_string(),
            what: what.to_string(),
            waiting,
            written,
            failed,
            dropped,
            all,
            ident,
        });
    }
    out
}

/// The leading `key=N` tokens of `fields`.
fn key_values(fields: &str) -> BTreeMap<String, u64> {
    let mut all = BTreeMap::new();
    for tok in fields.split_whitespace() {
        let Some((k, v)) = tok.split_once('=') else {
            break;
        };
        let Ok(v) = v.parse::<u64>() else {
            // `destination=none` (the store alone) is the one word among
            // the counts.
            if k == "destination" {
                continue;
            }
            break;
        };
        all.insert(k.to_string(), v);
    }
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_lines_are_found_even_glued_to_another_message() {
        let log = "Mon Nov 23 20:16:51 2026 <5> ulogd_inpflow_NFCT.c:1329 NFCT reliable logging has been enabled.\
                   Mon Nov 23 20:16:52 2026 <5> plugin.rs:1 MASQLOG[masq1] stats: waiting=2 written=10 failed=3 dropped=0 events=12\n\
                   Mon Nov 23 20:16:53 2026 <3> x MASQLOG[masq1] started: format=Text\n\
                   Mon Nov 23 20:16:54 2026 <5> x MASQLOG[m2] stopped: waiting=0 written=12 failed=3 dropped=1\n";
        let s = parse_stats(log);
        assert_eq!(s.len(), 2);
        assert_eq!(
            (
                s[0].instance.as_str(),
                s[0].what.as_str(),
                s[0].waiting,
                s[0].written,
                s[0].failed
            ),
            ("masq1", "stats", 2, 10, 3)
        );
        assert_eq!(s[0].all.get("events"), Some(&12));
        assert!(s[0].ident.is_empty());
        assert_eq!(
            (s[1].instance.as_str(), s[1].what.as_str(), s[1].dropped),
            ("m2", "stopped", 1)
        );
    }

    #[test]
    fn a_store_only_line_counts_the_store_s_writes() {
        let log = "x MASQLOG[masq1] stats: waiting=1 destination=none dropped=0 events_lost=0 \
                   batches=3 events=9 store_written=8 store_failed=2 store_torn_bytes=0 store_closed=0\n";
        let s = parse_stats(log);
        assert_eq!(s.len(), 1);
        assert_eq!((s[0].waiting, s[0].written, s[0].failed), (1, 8, 2));
        assert_eq!(s[0].all.get("events"), Some(&9));
    }

    #[test]
    fn ident_counters_are_kept_apart() {
        let log = "x MASQLOG[masq1] stats: waiting=0 written=9 failed=0 dropped=0 events=9 \
                   ident: sent=4 answered=1 failed=3 dropped=7 lost=0 mean_ms=12 max_ms=1500\n";
        let s = parse_stats(log);
        assert_eq!(s.len(), 1);
        assert_eq!((s[0].dropped, s[0].all.get("events")), (0, Some(&9)));
        assert_eq!(s[0].ident.get("dropped"), Some(&7));
        assert_eq!(s[0].ident.get("max_ms"), Some(&1500));
        assert_eq!(s[0].ident.len(), 7);
    }
}
