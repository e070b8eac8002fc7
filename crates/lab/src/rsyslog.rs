//! An rsyslogd of the lab's own: a config in the lab directory, a local
//! socket there (never /dev/log), optionally TCP/UDP receivers, and three
//! files that record everything it receives.
//!
//! - `messages.log`: `RSYSLOG_FileFormat`, what an operator reads
//!   (`TIMESTAMP HOST TAG: body`; RFC 5424 structured data is not in it).
//! - `protocol23.log`: `RSYSLOG_SyslogProtocol23Format`: rsyslog's own
//!   reading of each message written back as RFC 5424, structured data
//!   included: shows that rsyslog parsed what masqlog sent.
//! - `raw.log`: `%rawmsg%`, the bytes as received (framing removed).
//!
//! The local socket uses the regular parser chain (`UseSpecialParser="off"`,
//! `ParseHostname="off"`): RFC 3164 lines without a hostname (what
//! syslog(3) sends) and RFC 5424 lines both parse, and rate limiting is off
//! so that a burst is not thinned.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::process::{self, Supervised};
use crate::reaper::Reaper;
use crate::topology::{Lab, Role, SHORT_WAIT};
use crate::{LabError, wait};

/// Where an rsyslogd runs and what it listens on.
#[derive(Clone, Debug, Default)]
pub struct RsyslogOptions {
    /// The namespace (`None`: the one of this process). A unix socket is a
    /// file and reachable from every namespace.
    pub role: Option<Role>,
    /// Listen on `<dir>/log.sock` (imuxsock).
    pub unix_socket: bool,
    /// Listen for TCP syslog (imtcp; octet counting and LF framing).
    pub tcp: Option<SocketAddr>,
    /// Listen for UDP syslog (imudp).
    pub udp: Option<SocketAddr>,
    /// Listen for RELP (imrelp, Debian's rsyslog-relp).
    pub relp: Option<SocketAddr>,
}

impl RsyslogOptions {
    /// A local receiver: a unix socket, in this process's namespace.
    pub fn local() -> RsyslogOptions {
        RsyslogOptions {
            unix_socket: true,
            ..RsyslogOptions::default()
        }
    }

    /// A remote receiver in the server namespace on TCP `addr`.
    pub fn remote_tcp(addr: SocketAddr) -> RsyslogOptions {
        RsyslogOptions {
            role: Some(Role::Server),
            tcp: Some(addr),
            ..RsyslogOptions::default()
        }
    }

    /// A remote receiver in the server namespace on RELP `addr`.
    pub fn remote_relp(addr: SocketAddr) -> RsyslogOptions {
        RsyslogOptions {
            role: Some(Role::Server),
            relp: Some(addr),
            ..RsyslogOptions::default()
        }
    }
}

/// The TCP port of the lab's remote syslog receiver.
pub const REMOTE_PORT: u16 = 10514;
/// The port of the lab's RELP receiver.
pub const RELP_PORT: u16 = 20514;

/// A running (or stopped, restartable) rsyslogd.
#[derive(Debug)]
pub struct Rsyslog {
    name: String,
    dir: PathBuf,
    opts: RsyslogOptions,
    ns: Option<String>,
    reaper: Arc<Reaper>,
    proc: Option<Supervised>,
}

impl Rsyslog {
    /// Writes the config into `<lab dir>/<name>/`, checks it with
    /// `rsyslogd -N1` and starts `rsyslogd -n`; returns when it listens.
    pub fn start(lab: &Lab, name: &str, opts: &RsyslogOptions) -> Result<Rsyslog, LabError> {
        let dir = lab.path(name);
        std::fs::create_dir_all(&dir)
            .map_err(|e| LabError::io(format!("creating {}", dir.display()), e))?;
        let conf = config(&dir, opts);
        let conf_path = dir.join("rsyslog.conf");
        std::fs::write(&conf_path, conf)
            .map_err(|e| LabError::io(format!("writing {}", conf_path.display()), e))?;
        let conf_s = conf_path.to_string_lossy().into_owned();
        process::run(&["rsyslogd", "-N1", "-f", &conf_s], None)?;
        let mut r = Rsyslog {
            name: name.to_string(),
            dir,
            opts: opts.clone(),
            ns: opts.role.map(|role| lab.ns(role)),
            reaper: Arc::clone(lab.reaper()),
            proc: None,
        };
        r.restart()?;
        Ok(r)
    }

    /// Starts it again after [`Rsyslog::stop`] or [`Rsyslog::kill`], with
    /// the same config and files (they are appended to).
    pub fn restart(&mut self) -> Result<(), LabError> {
        if let Some(p) = self.proc.as_mut()
            && p.is_running()
        {
            return Ok(());
        }
        if let Some(sock) = self.socket_path() {
            // A stale socket would look like a ready one.
            let _ = std::fs::remove_file(sock);
        }
        let conf = self.dir.join("rsyslog.conf").to_string_lossy().into_owned();
        let pid = self.dir.join("rsyslogd.pid");
        let _ = std::fs::remove_file(&pid);
        let pid = pid.to_string_lossy().into_owned();
        let out = self.dir.join("rsyslogd.out");
        let p = Supervised::spawn(
            &self.reaper,
            &self.name,
            &["rsyslogd", "-n", "-f", &conf, "-i", &pid],
            self.ns.as_deref(),
            &out,
        )?;
        self.proc = Some(p);
        self.wait_ready()
    }

    fn wait_ready(&mut self) -> Result<(), LabError> {
        let what = format!("{} to listen", self.name);
        let sock = self.socket_path();
        let tcp = self.opts.tcp;
        let udp = self.opts.udp;
        let relp = self.opts.relp;
        let ns = self.ns.clone();
        let name = self.name.clone();
        let proc = self.proc.as_mut().expect("started");
        wait::poll(&what, SHORT_WAIT, || {
            if let Some(status) = proc.try_wait()? {
                return Err(LabError::Exited {
                    name: name.clone(),
                    status: process::describe_status(status),
                    log: process::tail(&proc.output(), 20),
                });
            }
            let unix_ok = sock.as_deref().is_none_or(Path::exists);
            let tcp_ok = match tcp {
                Some(a) => listening(ns.as_deref(), "-Hltn", a)?,
                None => true,
            };
            let udp_ok = match udp {
                Some(a) => listening(ns.as_deref(), "-Hlun", a)?,
                None => true,
            };
            let relp_ok = match relp {
                Some(a) => listening(ns.as_deref(), "-Hltn", a)?,
                None => true,
            };
            Ok((unix_ok && tcp_ok && udp_ok && relp_ok).then_some(()))
        })
    }

    /// Stops it with SIGTERM (it removes its socket).
    pub fn stop(&mut self) -> Result<(), LabError> {
        if let Some(p) = self.proc.as_mut() {
            p.stop()?;
        }
        Ok(())
    }

    /// Kills it with SIGKILL (its socket file stays, unconnected).
    pub fn kill(&mut self) -> Result<(), LabError> {
        if let Some(p) = self.proc.as_mut() {
            p.signal(process::Signal::Kill)?;
            p.wait_exit(SHORT_WAIT)?;
            p.stop()?;
        }
        Ok(())
    }

    pub fn is_running(&mut self) -> bool {
        self.proc.as_mut().is_some_and(Supervised::is_running)
    }

    /// Its directory: config, pid file, socket, logs.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The unix socket, if it has one.
    pub fn socket_path(&self) -> Option<PathBuf> {
        self.opts.unix_socket.then(|| self.dir.join("log.sock"))
    }

    pub fn messages_path(&self) -> PathBuf {
        self.dir.join("messages.log")
    }

    pub fn protocol23_path(&self) -> PathBuf {
        self.dir.join("protocol23.log")
    }

    pub fn raw_path(&self) -> PathBuf {
        self.dir.join("raw.log")
    }

    /// The lines of `messages.log` (RSYSLOG_FileFormat).
    pub fn messages(&self) -> Vec<String> {
        read_lines(&self.messages_path())
    }

    /// The lines of `protocol23.log` (rsyslog's parse, as RFC 5424).
    pub fn protocol23(&self) -> Vec<String> {
        read_lines(&self.protocol23_path())
    }

    /// The lines of `raw.log` (as received).
    pub fn raw(&self) -> Vec<String> {
        read_lines(&self.raw_path())
    }

    /// rsyslogd's own stdout and stderr.
    pub fn output(&self) -> String {
        std::fs::read_to_string(self.dir.join("rsyslogd.out")).unwrap_or_default()
    }
}

/// The complete lines of a file (a line still being written is left out).
pub fn read_lines(path: &Path) -> Vec<String> {
    let Ok(bytes) = std::fs::read(path) else {
        return Vec::new();
    };
    let text = String::from_utf8_lossy(&bytes);
    let complete = match text.rfind('\n') {
        Some(i) => &text[..i],
        None => return Vec::new(),
    };
    complete.lines().map(str::to_string).collect()
}

/// Whether something listens on `addr` in namespace `ns` (`ss FLAGS`).
fn listening(ns: Option<&str>, flags: &str, addr: SocketAddr) -> Result<bool, LabError> {
    let filter = format!("sport = :{}", addr.port());
    let out = process::run_with(&["ss", flags, &filter], ns, None, Duration::from_secs(10))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let ip = addr.ip().to_string();
    Ok(text.lines().any(|l| l.contains(&ip) || l.contains('*')))
}

/// The rsyslog.conf for `opts` with everything under `dir`.
pub fn config(dir: &Path, opts: &RsyslogOptions) -> String {
    let d = dir.display();
    let mut c = format!(
        "# rsyslog.conf of a masqlog lab receiver (generated)\n\
         global(workDirectory=\"{d}\" maxMessageSize=\"64k\")\n\
         # no /dev/log: the lab never touches the system's syslog socket\n\
         module(load=\"imuxsock\" SysSock.Use=\"off\")\n"
    );
    if opts.unix_socket {
        c.push_str(&format!(
            "input(type=\"imuxsock\" Socket=\"{d}/log.sock\" CreatePath=\"on\"\n      \
             RateLimit.Interval=\"0\" UseSpecialParser=\"off\" ParseHostname=\"off\")\n"
        ));
    }
    if let Some(a) = opts.tcp {
        c.push_str(&format!(
            "module(load=\"imtcp\")\ninput(type=\"imtcp\" address=\"{}\" port=\"{}\")\n",
            a.ip(),
            a.port()
        ));
    }
    if let Some(a) = opts.udp {
        c.push_str(&format!(
            "module(load=\"imudp\")\ninput(type=\"imudp\" address=\"{}\" port=\"{}\" RateLimit.Interval=\"0\")\n",
            a.ip(),
            a.port()
        ));
    }
    if let Some(a) = opts.relp {
        c.push_str(&format!(
            "module(load=\"imrelp\")\ninput(type=\"imrelp\" address=\"{}\" port=\"{}\")\n",
            a.ip(),
            a.port()
        ));
    }
    c.push_str(&format!(
        "template(name=\"masqlab_raw\" type=\"string\" string=\"%rawmsg%\\n\")\n\
         action(type=\"omfile\" file=\"{d}/messages.log\" template=\"RSYSLOG_FileFormat\")\n\
         action(type=\"omfile\" file=\"{d}/protocol23.log\" template=\"RSYSLOG_SyslogProtocol23Format\")\n\
         action(type=\"omfile\" file=\"{d}/raw.log\" template=\"masqlab_raw\")\n"
    ));
    c
}
