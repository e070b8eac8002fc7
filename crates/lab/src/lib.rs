//! The namespace lab: a client, a NAT router and a server in three network
//! namespaces, with the real daemons (ulogd, rsyslog, conntrack, socat,
//! oidentd) started under guards, for `masqlog lab` and the end-to-end tests.
//!
//! ```text
//!  <prefix>-client          <prefix>-router                       <prefix>-server
//!  c-lan 10.99.0.2/24  ---  r-lan 10.99.0.1/24
//!        fd99::2/64               fd99::1/64
//!                                 r-wan 203.0.113.1/24        ---  s-wan 203.0.113.7/24
//!                                       2001:db8:113::1/64               2001:db8:113::7/64
//! ```
//!
//! The router masquerades everything that leaves `r-wan` (nftables table
//! `inet masqlab`), counts bytes and timestamps flows, and has short UDP and
//! TCP TIME_WAIT timeouts so that DESTROY events come within seconds.
//!
//! Cleaning up: every namespace, process group and temporary directory is
//! removed when the last handle of a [`Lab`] is dropped, also on panic. If
//! the owning process dies without unwinding (Ctrl-C, SIGTERM, SIGKILL), a
//! watchdog shell that the lab started in its own process group notices the
//! end of its stdin pipe and removes the same things (see [`reaper`]).
//!
//! Only root can build a lab; [`preflight`] says why a machine cannot.

#![forbid(unsafe_code)]

pub mod cli;
pub mod conntrack;
pub mod flow;
pub mod hostile;
pub mod ident;
pub mod logged;
pub mod oidentd;
pub mod pgcluster;
pub mod process;
pub mod reaper;
pub mod rsyslog;
pub mod session;
pub mod tempdir;
pub mod topology;
pub mod ulogd;
pub mod users;
pub mod wait;

use std::io;

pub use conntrack::{ConntrackWatch, CtEvent, CtKind, CtTuple};
pub use flow::{Family, FlowProto, FlowResult, FlowSpec, Server};
pub use hostile::{Behaviour, HostileIdentd, Plan};
pub use ident::IdentMode;
pub use logged::{Logged, Received};
pub use masqlog_core::ulogd_conf::{Example, UlogdConf};
pub use oidentd::Oidentd;
pub use pgcluster::TempCluster;
pub use process::{Signal, Supervised};
pub use rsyslog::{Rsyslog, RsyslogOptions};
pub use session::{Session, SessionOptions};
pub use topology::{Lab, LabOptions, Role};
pub use ulogd::{StatsLine, Ulogd};

/// Why the lab could not do what it was asked.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// The lab needs root (network namespaces, nftables, sysctls).
    #[error("not running as root (effective uid {0}): the lab needs root")]
    NotRoot(u32),
    /// A program the lab runs is not installed.
    #[error("`{0}` is not installed (not found in PATH, /usr/sbin or /sbin); lab/run installs it")]
    MissingTool(String),
    /// The kernel or the container does not allow network namespaces.
    #[error("network namespaces are not usable here: {0}")]
    NoNetns(String),
    /// A program could not be started.
    #[error("cannot run `{cmd}`: {source}")]
    Spawn { cmd: String, source: io::Error },
    /// A program ran and failed.
    #[error("`{cmd}` failed ({status}): {stderr}")]
    Command {
        cmd: String,
        status: String,
        stderr: String,
    },
    /// A file or directory operation failed.
    #[error("{what}: {source}")]
    Io { what: String, source: io::Error },
    /// Something did not happen within its time limit.
    #[error("timed out after {secs:.1} s waiting for {what}")]
    Timeout { what: String, secs: f64 },
    /// A daemon exited when it should have kept running.
    #[error("{name} exited ({status}); its log ends with:\n{log}")]
    Exited {
        name: String,
        status: String,
        log: String,
    },
    /// A client flow did not do what it should (wrong reply size, ...).
    #[error("flow {flow}: {problem}")]
    Flow { flow: String, problem: String },
    /// A file the lab needs is not where it should be.
    #[error("{what} not found at {path}")]
    NotFound { what: String, path: String },
}

impl From<masqlog_core::process::ProcessError> for LabError {
    fn from(e: masqlog_core::process::ProcessError) -> LabError {
        use masqlog_core::process::ProcessError as P;
        match e {
            P::MissingTool(tool) => LabError::MissingTool(tool),
            P::Spawn { cmd, source } => LabError::Spawn { cmd, source },
            P::Wait { cmd, source } => LabError::Io {
                what: format!("waiting for `{cmd}`"),
                source,
            },
            P::Failed {
                cmd,
                status,
                stderr,
            } => LabError::Command {
                cmd,
                status,
                stderr,
            },
            P::Timeout { cmd, secs } => LabError::Timeout {
                what: format!("`{cmd}` to finish"),
                secs,
            },
            other => LabError::Io {
                what: "running a program".into(),
                source: std::io::Error::other(other.to_string()),
            },
        }
    }
}

impl From<masqlog_core::ulogd_conf::UlogdConfError> for LabError {
    fn from(e: masqlog_core::ulogd_conf::UlogdConfError) -> LabError {
        use masqlog_core::ulogd_conf::UlogdConfError as U;
        match e {
            U::Write { path, source } => LabError::Io {
                what: format!("writing {path}"),
                source,
            },
            other => LabError::NotFound {
                what: other.to_string(),
                path: "the lab's substitutions".into(),
            },
        }
    }
}

impl LabError {
    pub(crate) fn io(what: impl Into<String>, source: io::Error) -> LabError {
        LabError::Io {
            what: what.into(),
            source,
        }
    }

    /// Whether the error says the machine cannot run a lab at all (not root,
    /// a tool missing, no namespaces), as opposed to a lab that broke: tests
    /// skip on these.
    pub fn is_unsupported(&self) -> bool {
        matches!(
            self,
            LabError::NotRoot(_) | LabError::MissingTool(_) | LabError::NoNetns(_)
        )
    }
}

/// Every program the lab runs.
pub const TOOLS: &[&str] = &[
    "ip",
    "nft",
    "conntrack",
    "socat",
    "ss",
    "rsyslogd",
    "ulogd",
    "su",
    "useradd",
    "head",
    "sh",
];

/// Checks that this process can build a lab: root, every tool installed,
/// `ip netns` usable. The error says what is missing.
pub fn preflight() -> Result<(), LabError> {
    let euid = process::effective_uid()?;
    if euid != 0 {
        return Err(LabError::NotRoot(euid));
    }
    for tool in TOOLS {
        process::find_tool(tool)?;
    }
    let out = process::run_quiet(&["ip", "netns", "list"], None)
        .map_err(|e| LabError::NoNetns(e.to_string()))?;
    if !out.status.success() {
        return Err(LabError::NoNetns(
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        ));
    }
    Ok(())
}
