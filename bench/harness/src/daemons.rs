//! The daemons of a bench run, started under the lab's guards: ulogd in the
//! router (with its own /dev/log), the receivers (rsyslog: local, TCP and
//! RELP), the identd that never answers.
//!
//! /dev/log: stock SYSLOG calls syslog(3), which always writes to /dev/log,
//! and masqlog's examples send there too. The lab never touches the host's
//! /dev, so ulogd starts in the private mount namespace that `ip netns exec`
//! gives it, with an overlay over /dev whose only change is a symlink
//! /dev/log -> the local receiver's socket. The mount ends with ulogd.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use masqlog_lab::process::{self, Supervised};
use masqlog_lab::ulogd::READY_LINE;
use masqlog_lab::{Lab, Role, Signal, UlogdConf, wait};

/// ulogd in the router namespace.
pub struct Ulogd {
    proc: Supervised,
    pub logfile: PathBuf,
}

/// The shell that puts /dev/log in place and becomes the program:
/// `sh -c SCRIPT sh UPPER WORK SOCKET PROGRAM ARGS...`.
const DEVLOG_SCRIPT: &str = r#"set -e
mount -t overlay masqlog-bench-dev -o "lowerdir=/dev,upperdir=$1,workdir=$2" /dev
ln -s "$3" /dev/log
shift 3
exec "$@""#;

impl Ulogd {
    /// Writes the config to `<dir>/<name>.conf` and starts `PREFIX... ulogd
    /// -c CONF` in the router with /dev/log pointing at `devlog`; waits
    /// (at most `ready`) for ulogd's "entering main loop".
    pub fn start(
        lab: &Lab,
        name: &str,
        conf: &UlogdConf,
        logfile: &Path,
        devlog: &Path,
        prefix: &[String],
        ready: Duration,
    ) -> Result<Ulogd> {
        let conf_path = lab.path(&format!("{name}.conf"));
        conf.write(&conf_path)?;
        let upper = lab.path(&format!("{name}.dev/upper"));
        let work = lab.path(&format!("{name}.dev/work"));
        for d in [&upper, &work] {
            std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
        }
        let ulogd = process::find_tool("ulogd")?.to_string_lossy().into_owned();
        let pid_file = lab.path(&format!("{name}.pid"));
        let mut argv: Vec<String> = vec![
            "sh".into(),
            "-c".into(),
            DEVLOG_SCRIPT.into(),
            "sh".into(),
            upper.to_string_lossy().into_owned(),
            work.to_string_lossy().into_owned(),
            devlog.to_string_lossy().into_owned(),
        ];
        argv.extend(prefix.iter().cloned());
        argv.extend([
            ulogd,
            "-c".into(),
            conf_path.to_string_lossy().into_owned(),
            "-p".into(),
            pid_file.to_string_lossy().into_owned(),
        ]);
        let refs: Vec<&str> = argv.iter().map(String::as_str).collect();
        let proc = lab.spawn(Some(Role::Router), name, &refs)?;
        let mut u = Ulogd {
            proc,
            logfile: logfile.to_path_buf(),
        };
        let what = format!("{name} to start ({})", logfile.display());
        let proc = &mut u.proc;
        let logfile = &u.logfile;
        wait::poll(&what, ready, || {
            let log = std::fs::read_to_string(logfile).unwrap_or_default();
            if let Some(status) = proc.try_wait()? {
                return Err(masqlog_lab::LabError::Exited {
                    name: name.to_string(),
                    status: process::describe_status(status),
                    log: process::tail(&format!("{log}{}", proc.output()), 30),
                });
            }
            Ok(log.contains(READY_LINE).then_some(()))
        })?;
        Ok(u)
    }

    /// The pid: `ip netns exec` and the shell exec ulogd (or the profiler
    /// in front of it), so it is the one the lab started.
    pub fn pid(&self) -> u32 {
        self.proc.pid()
    }

    pub fn is_running(&mut self) -> bool {
        self.proc.is_running()
    }

    /// ulogd's log so far.
    pub fn log(&self) -> String {
        std::fs::read(&self.logfile)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// What ulogd (or the profiler) printed on stdout and stderr.
    pub fn output(&self) -> String {
        self.proc.output()
    }

    pub fn signal(&self, sig: Signal) -> Result<()> {
        Ok(self.proc.signal(sig)?)
    }

    /// SIGTERM (plugins' stop functions run, masqlog sends what it has),
    /// then waits at most `grace` before the lab's stop (SIGKILL).
    pub fn stop(&mut self, grace: Duration) -> Result<ExitStatus> {
        if self.proc.try_wait()?.is_none() {
            let _ = self.proc.signal(Signal::Term);
            if let Ok(s) = self.proc.wait_exit(grace) {
                let _ = self.proc.stop();
                return Ok(s);
            }
        }
        Ok(self.proc.stop()?)
    }
}

/// What a receiver listens on.
#[derive(Clone, Copy, Debug)]
enum Listen {
    /// imuxsock on a socket in its directory.
    Unix,
    /// imtcp.
    Tcp(SocketAddr),
    /// imrelp (Debian's rsyslog-relp).
    Relp(SocketAddr),
}

/// An rsyslogd that writes every message it receives, as received
/// (`%rawmsg%`), one a line, into one file. The lab's own receiver writes
/// three files per message; the bench wants the receiver to cost as little
/// as possible, since it shares the two cores with ulogd.
pub struct Receiver {
    proc: Supervised,
    pub file: PathBuf,
    pub socket: Option<PathBuf>,
}

impl Receiver {
    /// A local receiver in the router namespace (as on a real router):
    /// imuxsock on `<dir>/<name>/log.sock`, rate limiting off.
    pub fn local(lab: &Lab, name: &str) -> Result<Receiver> {
        Receiver::start(lab, name, Role::Router, Listen::Unix)
    }

    /// A remote receiver in the server namespace: imtcp on `addr`.
    pub fn remote(lab: &Lab, name: &str, addr: SocketAddr) -> Result<Receiver> {
        Receiver::start(lab, name, Role::Server, Listen::Tcp(addr))
    }

    /// A RELP receiver in the server namespace: imrelp on `addr`.
    pub fn relp(lab: &Lab, name: &str, addr: SocketAddr) -> Result<Receiver> {
        Receiver::start(lab, name, Role::Server, Listen::Relp(addr))
    }

    fn start(lab: &Lab, name: &str, role: Role, listen: Listen) -> Result<Receiver> {
        let dir = lab.path(name);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let d = dir.display();
        let mut conf = format!(
            "# masqlog bench receiver (generated)\n\
             global(workDirectory=\"{d}\" maxMessageSize=\"64k\")\n\
             module(load=\"imuxsock\" SysSock.Use=\"off\")\n"
        );
        let (socket, tcp) = match listen {
            Listen::Unix => {
                conf.push_str(&format!(
                    "input(type=\"imuxsock\" Socket=\"{d}/log.sock\" CreatePath=\"on\"\n      \
                     RateLimit.Interval=\"0\" UseSpecialParser=\"off\" ParseHostname=\"off\")\n"
                ));
                (Some(dir.join("log.sock")), None)
            }
            Listen::Tcp(a) => {
                conf.push_str(&format!(
                    "module(load=\"imtcp\")\ninput(type=\"imtcp\" address=\"{}\" port=\"{}\")\n",
                    a.ip(),
                    a.port()
                ));
                (None, Some(a))
            }
            Listen::Relp(a) => {
                conf.push_str(&format!(
                    "module(load=\"imrelp\")\ninput(type=\"imrelp\" address=\"{}\" port=\"{}\")\n",
                    a.ip(),
                    a.port()
                ));
                (None, Some(a))
            }
        };
        conf.push_str(&format!(
            "template(name=\"bench_raw\" type=\"string\" string=\"%rawmsg%\\n\")\n\
             action(type=\"omfile\" file=\"{d}/raw.log\" template=\"bench_raw\")\n"
        ));
        let conf_path = dir.join("rsyslog.conf");
        std::fs::write(&conf_path, conf).context("writing rsyslog.conf")?;
        let conf_s = conf_path.to_string_lossy().into_owned();
        process::run(&["rsyslogd", "-N1", "-f", &conf_s], None)?;
        let pid = dir.join("rsyslogd.pid").to_string_lossy().into_owned();
        let mut proc = lab.spawn(
            Some(role),
            name,
            &["rsyslogd", "-n", "-f", &conf_s, "-i", &pid],
        )?;
        let ns = lab.ns(role);
        let sock = socket.clone();
        wait::poll(
            &format!("{name} to listen"),
            Duration::from_secs(30),
            || {
                if let Some(status) = proc.try_wait()? {
                    return Err(masqlog_lab::LabError::Exited {
                        name: name.to_string(),
                        status: process::describe_status(status),
                        log: process::tail(&proc.output(), 20),
                    });
                }
                match (&sock, tcp) {
                    (Some(s), _) => Ok(s.exists().then_some(())),
                    (None, Some(a)) => {
                        let filter = format!("sport = :{}", a.port());
                        let out = process::run_with(
                            &["ss", "-Hltn", &filter],
                            Some(&ns),
                            None,
                            Duration::from_secs(10),
                        )?;
                        Ok(String::from_utf8_lossy(&out.stdout)
                            .contains(&a.ip().to_string())
                            .then_some(()))
                    }
                    (None, None) => Ok(Some(())),
                }
            },
        )?;
        Ok(Receiver {
            proc,
            file: dir.join("raw.log"),
            socket,
        })
    }

    /// Empties the output file (rsyslog appends, so it goes on at 0).
    pub fn truncate(&self) -> Result<()> {
        if self.file.exists() {
            std::fs::OpenOptions::new()
                .write(true)
                .open(&self.file)
                .and_then(|f| f.set_len(0))
                .with_context(|| format!("truncating {}", self.file.display()))?;
        }
        Ok(())
    }

    pub fn check_running(&mut self) -> Result<()> {
        if !self.proc.is_running() {
            bail!(
                "{} stopped: {}",
                self.proc.name(),
                process::tail(&self.proc.output(), 10)
            );
        }
        Ok(())
    }
}

/// `flowgen hold` on the client's port 113: accepts IDENT queries and never
/// answers.
pub fn silent_identd(lab: &Lab, flowgen: &Path) -> Result<Supervised> {
    let fg = flowgen.to_string_lossy().into_owned();
    let mut p = lab.spawn(
        Some(Role::Client),
        "identd-silent",
        &[&fg, "hold", "--port", "113"],
    )?;
    wait::poll(
        "the silent identd to listen",
        Duration::from_secs(10),
        || {
            if let Some(status) = p.try_wait()? {
                return Err(masqlog_lab::LabError::Exited {
                    name: "identd-silent".into(),
                    status: process::describe_status(status),
                    log: p.output(),
                });
            }
            Ok(p.output().contains("holding port").then_some(()))
        },
    )?;
    Ok(p)
}
