//! A throwaway PostgreSQL cluster for the tests and the benchmark: `initdb`
//! in a fresh temporary directory, run by `pg_ctl` as an unprivileged user
//! (PostgreSQL refuses root), listening only on a Unix socket inside that
//! directory. Stopped (immediate mode) and removed when the guard is
//! dropped, also on a failed test.
//!
//! A test process that dies without unwinding (a `kill -9`, an abort)
//! runs no destructor; two things then clean up, as for the lab's
//! namespaces and daemons. The lab's [`Reaper`] watchdog, told the
//! postmaster's process group (`pg_ctl` starts it in a session of its
//! own) and the directory, stops the one and removes the other when its
//! owner exits. And every [`TempCluster::start`] first reaps what a dead
//! owner left anyway (its watchdog killed with it): each directory
//! `masqlog-pg-*` in the temporary directory names its owner (pid and
//! start time) in the file `owner`; when that process is gone, the
//! cluster's postmaster (only if its command line names that directory) is
//! killed and the directory removed.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

use crate::reaper::Reaper;
use crate::{LabError, process, users};

/// The user the clusters run as.
pub const PG_USER: &str = "masqlog-pg";
/// Where Debian's PostgreSQL 15 keeps its programs (not on PATH).
const PG_BIN: &str = "/usr/lib/postgresql/15/bin";
/// The superuser's password (the cluster only listens on its own socket).
const SUPER_PASSWORD: &str = "masqlog-test-superuser";
/// Socket "port" numbers: each cluster of a process gets its own.
static NEXT_PORT: AtomicU16 = AtomicU16::new(0);
/// The prefix of the clusters' directories in the temporary directory.
const DIR_PREFIX: &str = "masqlog-pg-";
/// The file in a cluster's directory that names its owner.
const OWNER_FILE: &str = "owner";

/// A running cluster; stopped and deleted on drop.
#[derive(Debug)]
pub struct TempCluster {
    dir: PathBuf,
    port: u16,
    running: bool,
    /// The running postmaster's pid (its process group's).
    postmaster: Option<u32>,
    /// Dropped last: removes what this guard's drop could not.
    reaper: std::sync::Arc<Reaper>,
}

fn io(what: impl Into<String>, e: std::io::Error) -> LabError {
    LabError::Io {
        what: what.into(),
        source: e,
    }
}

impl TempCluster {
    /// The programs a cluster needs (`initdb`, `pg_ctl`).
    pub fn available() -> bool {
        Path::new(PG_BIN).join("initdb").exists() && Path::new(PG_BIN).join("pg_ctl").exists()
    }

    /// Creates and starts a cluster whose superuser `postgres` logs in
    /// with a password (scram-sha-256), as does every other role.
    pub fn start() -> Result<TempCluster, LabError> {
        users::ensure_user(PG_USER)?;
        reap_stale(&std::env::temp_dir());
        let reaper = Reaper::start()?;
        let dir = tempfile::Builder::new()
            .prefix(DIR_PREFIX)
            .tempdir()
            .map_err(|e| io("creating the cluster's directory", e))?
            .keep();
        reaper.add_dir(&dir);
        let me = std::process::id();
        let owner = format!("{me} {}\n", start_time(me).unwrap_or(0));
        std::fs::write(dir.join(OWNER_FILE), owner).map_err(|e| io("writing the owner file", e))?;
        let port = 20_000
            + (std::process::id() as u16 % 20_000)
            + NEXT_PORT.fetch_add(1, Ordering::SeqCst);
        let mut c = TempCluster {
            dir,
            port,
            running: false,
            postmaster: None,
            reaper,
        };
        c.init()?;
        c.start_server()?;
        Ok(c)
    }

    fn init(&mut self) -> Result<(), LabError> {
        std::fs::create_dir(self.dir.join("sock")).map_err(|e| io("mkdir sock", e))?;
        let pwfile = self.dir.join("superuser.pw");
        std::fs::write(&pwfile, SUPER_PASSWORD).map_err(|e| io("writing the pwfile", e))?;
        // Readable by the cluster's user while the tests (root) reach the
        // socket in it.
        std::fs::set_permissions(&self.dir, std::fs::Permissions::from_mode(0o755))
            .map_err(|e| io("chmod the cluster's directory", e))?;
        process::run(&["chown", "-R", PG_USER, &self.dir.to_string_lossy()], None)?;
        let data = self.dir.join("data");
        self.as_user(&[
            &format!("{PG_BIN}/initdb"),
            "-D",
            &data.to_string_lossy(),
            "-U",
            "postgres",
            "--auth=scram-sha-256",
            &format!("--pwfile={}", pwfile.display()),
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        ])?;
        Ok(())
    }

    fn start_server(&mut self) -> Result<(), LabError> {
        let opts = format!(
            "-k {} -p {} -c listen_addresses='' -c fsync=off -c full_page_writes=off -c synchronous_commit=off",
            self.socket_dir().display(),
            self.port
        );
        self.as_user(&[
            &format!("{PG_BIN}/pg_ctl"),
            "-D",
            &self.dir.join("data").to_string_lossy(),
            "-o",
            &opts,
            "-l",
            &self.dir.join("server.log").to_string_lossy(),
            "-w",
            "-t",
            "60",
            "start",
        ])?;
        self.running = true;
        if let Some(pid) = postmaster_pid(&self.dir) {
            self.reaper.add_process_group(pid);
            self.postmaster = Some(pid);
        }
        Ok(())
    }

    /// Stops the server (fast mode: sessions are ended), for an outage.
    pub fn stop(&mut self) -> Result<(), LabError> {
        self.pg_ctl_stop("fast")
    }

    /// Starts it again after [`TempCluster::stop`].
    pub fn restart(&mut self) -> Result<(), LabError> {
        self.start_server()
    }

    fn pg_ctl_stop(&mut self, mode: &str) -> Result<(), LabError> {
        if !self.running {
            return Ok(());
        }
        self.as_user(&[
            &format!("{PG_BIN}/pg_ctl"),
            "-D",
            &self.dir.join("data").to_string_lossy(),
            "-m",
            mode,
            "-w",
            "-t",
            "60",
            "stop",
        ])?;
        self.running = false;
        if let Some(pid) = self.postmaster.take() {
            self.reaper.remove_process_group(pid);
        }
        Ok(())
    }

    fn as_user(&self, argv: &[&str]) -> Result<String, LabError> {
        let mut all = vec!["runuser", "-u", PG_USER, "--"];
        all.extend_from_slice(argv);
        let out = process::run_with(&all, None, None, Duration::from_secs(120))?;
        if !out.status.success() {
            return Err(LabError::Command {
                cmd: argv.join(" "),
                status: out.status.to_string(),
                stderr: format!(
                    "{}{}",
                    String::from_utf8_lossy(&out.stderr),
                    String::from_utf8_lossy(&out.stdout)
                ),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// The directory of the server's socket.
    pub fn socket_dir(&self) -> PathBuf {
        self.dir.join("sock")
    }

    /// The cluster's directory (the server's log is `server.log` in it).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A URL for `user` to database `db`, without a password.
    pub fn url(&self, user: &str, db: &str) -> String {
        format!(
            "postgresql://{user}@/{db}?host={}&port={}",
            self.socket_dir().display(),
            self.port
        )
    }

    /// The superuser's URL to `db`, with its password (for the tests'
    /// own clients only).
    pub fn superuser_url(&self, db: &str) -> String {
        format!(
            "postgresql://postgres:{SUPER_PASSWORD}@/{db}?host={}&port={}",
            self.socket_dir().display(),
            self.port
        )
    }

    /// Writes a password file for a role (mode 0600, owned by root, as a
    /// router keeps it) and returns its path.
    pub fn password_file(&self, name: &str, password: &str) -> Result<PathBuf, LabError> {
        let p = self.dir.join(format!("{name}.pass"));
        std::fs::write(&p, format!("{password}\n"))
            .map_err(|e| io("writing a password file", e))?;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| io("chmod a password file", e))?;
        process::run(&["chown", "root:root", &p.to_string_lossy()], None)?;
        Ok(p)
    }

    /// A URL for the superuser `postgres` to `db`, its password in a file.
    pub fn superuser_url_with_file(&self, db: &str) -> Result<String, LabError> {
        let f = self.password_file("postgres", SUPER_PASSWORD)?;
        Ok(format!(
            "{}&password_file={}",
            self.url("postgres", db),
            f.display()
        ))
    }

    /// Runs SQL with psql as the superuser; returns the unaligned output.
    pub fn psql(&self, db: &str, sql: &str) -> Result<String, LabError> {
        self.psql_within(db, sql, Duration::from_secs(120))
    }

    /// [`TempCluster::psql`] with its own time limit (an index built over
    /// a hundred million rows takes longer than two minutes).
    pub fn psql_within(&self, db: &str, sql: &str, limit: Duration) -> Result<String, LabError> {
        let out = process::run_with(
            &[
                &format!("{PG_BIN}/psql"),
                "-X",
                "-q",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-d",
                &self.superuser_url(db),
                "-c",
                sql,
            ],
            None,
            None,
            limit,
        )?;
        if !out.status.success() {
            return Err(LabError::Command {
                cmd: format!("psql -c {sql:?}"),
                status: out.status.to_string(),
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }
}

impl Drop for TempCluster {
    fn drop(&mut self) {
        if self.pg_ctl_stop("immediate").is_err() {
            kill_postmaster(&self.dir);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
        // The reaper (dropped next) forgets nothing it must still do: the
        // process group was taken off at the stop; the directory is gone.
    }
}

/// The postmaster's pid: the first line of `postmaster.pid`.
fn postmaster_pid(dir: &Path) -> Option<u32> {
    let text = std::fs::read_to_string(dir.join("data/postmaster.pid")).ok()?;
    text.lines().next()?.trim().parse().ok()
}

/// Kills the postmaster of the cluster in `dir` and its process group,
/// only while its command line names `dir` (a pid reused by another
/// program is left alone).
fn kill_postmaster(dir: &Path) {
    let Some(pid) = postmaster_pid(dir) else {
        return;
    };
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let needle = dir.to_string_lossy();
    if cmdline
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
    {
        let _ = process::send_signal(-i64::from(pid), process::Signal::Kill);
        let _ = process::send_signal(i64::from(pid), process::Signal::Kill);
    }
}

/// The start time of process `pid` (clock ticks since boot, field 22 of
/// `/proc/PID/stat`): with the pid, names one process for good.
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The fields after the command name, which may hold spaces and ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split(' ').nth(19)?.parse().ok()
}

/// Whether the owner named by a cluster directory's `owner` file still
/// runs. A directory without a readable owner file is young (being made)
/// or not ours: left alone unless it is older than an hour.
fn owner_alive(dir: &Path) -> bool {
    match std::fs::read_to_string(dir.join(OWNER_FILE)) {
        Ok(text) => {
            let mut it = text.split_whitespace().map(str::parse::<u64>);
            match (it.next(), it.next()) {
                (Some(Ok(pid)), Some(Ok(t))) => u32::try_from(pid)
                    .ok()
                    .and_then(start_time)
                    .is_some_and(|now| now == t),
                _ => false,
            }
        }
        Err(_) => std::fs::metadata(dir)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_none_or(|age| age < Duration::from_secs(3600)),
    }
}

/// Stops and removes the clusters in `tmp` whose owner died; returns the
/// directories removed.
pub fn reap_stale(tmp: &Path) -> Vec<PathBuf> {
    let mut reaped = Vec::new();
    let Ok(entries) = std::fs::read_dir(tmp) else {
        return reaped;
    };
    for e in entries.flatten() {
        let path = e.path();
        let is_cluster = e.file_name().to_string_lossy().starts_with(DIR_PREFIX)
            && e.file_type().is_ok_and(|t| t.is_dir());
        if !is_cluster || owner_alive(&path) {
            continue;
        }
        kill_postmaster(&path);
        if std::fs::remove_dir_all(&path).is_ok() {
            eprintln!(
                "masqlog lab: removed the PostgreSQL cluster {} left by a test that died",
                path.display()
            );
            reaped.push(path);
        }
    }
    reaped
}
