//! A throwaway PostgreSQL cluster for the tests and the benchmark: `initdb`
//! in a fresh temporary directory, run by `pg_ctl` as an unprivileged user
//! (PostgreSQL refuses root), listening only on a Unix socket inside that
//! directory. Stopped (immediate mode) and removed when the guard is
//! dropped, also on a failed test.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

use crate::{LabError, process, users};

/// The user the clusters run as.
pub const PG_USER: &str = "masqlog-pg";
/// Where Debian's PostgreSQL 15 keeps its programs (not on PATH).
const PG_BIN: &str = "/usr/lib/postgresql/15/bin";
/// The superuser's password (the cluster only listens on its own socket).
const SUPER_PASSWORD: &str = "masqlog-test-superuser";
/// Socket "port" numbers: each cluster of a process gets its own.
static NEXT_PORT: AtomicU16 = AtomicU16::new(0);

/// A running cluster; stopped and deleted on drop.
#[derive(Debug)]
pub struct TempCluster {
    dir: PathBuf,
    port: u16,
    running: bool,
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
        let dir = tempfile::Builder::new()
            .prefix("masqlog-pg-")
            .tempdir()
            .map_err(|e| io("creating the cluster's directory", e))?
            .keep();
        let port = 20_000
            + (std::process::id() as u16 % 20_000)
            + NEXT_PORT.fetch_add(1, Ordering::SeqCst);
        let mut c = TempCluster {
            dir,
            port,
            running: false,
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
            Duration::from_secs(120),
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
            // The postmaster's pid is the first line of postmaster.pid.
            if let Ok(pid) = std::fs::read_to_string(self.dir.join("data/postmaster.pid"))
                && let Some(Ok(pid)) = pid.lines().next().map(str::parse::<i64>)
            {
                let _ = process::send_signal(pid, process::Signal::Kill);
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
