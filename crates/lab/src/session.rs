//! A lab with everything running for one example config: the receiver
//! (rsyslog), the kernel's reference (`conntrack -E`), ulogd with the
//! plugin, and the servers. `masqlog lab` and the end-to-end tests both
//! start from here.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::conntrack::{ConntrackWatch, CtEvent};
use crate::flow::{Family, FlowProto, FlowResult, FlowSpec, Server};
use crate::ident::IdentMode;
use crate::logged::{self, Received};
use crate::oidentd::Oidentd;
use crate::rsyslog::{RELP_PORT, REMOTE_PORT, Rsyslog, RsyslogOptions};
use crate::topology::{Lab, LabOptions, SERVER_V4, client_addr};
use crate::ulogd::{self, Ulogd};
use crate::{Example, LabError, UlogdConf, wait};
use masqlog_core::record::Event;

/// The server port of the lab's TCP flows.
pub const TCP_PORT: u16 = 8080;
/// The server port of the lab's UDP flows.
pub const UDP_PORT: u16 = 8081;
/// What the TCP servers answer with, in bytes.
pub const TCP_REPLY: usize = 3000;
/// What the UDP servers answer with, in bytes.
pub const UDP_REPLY: usize = 300;
/// The name of the MASQLOG instance in the examples (`[masq1]`).
pub const MASQ_ID: &str = "masq1";
/// How long a DESTROY event may take (TCP TIME_WAIT is 1 s in the lab and
/// expired entries are reaped, so it normally comes within 3 s).
pub const DESTROY_WAIT: Duration = Duration::from_secs(60);
/// How long masqlog's lines may take to reach the receiver.
pub const LINE_WAIT: Duration = Duration::from_secs(30);

/// How to start a session.
#[derive(Clone, Debug)]
pub struct SessionOptions {
    pub example: Example,
    /// The built plugin; default [`ulogd::find_plugin`].
    pub so: Option<PathBuf>,
    /// Changes to the example after substitution: (section, key, value).
    /// Applied last, over the IDENT keys.
    pub set: Vec<(String, String, String)>,
    pub lab: LabOptions,
    /// IDENT lookups (`ident=` of `[masq1]`); off by default. Plain and
    /// transparent mode also get what they need in the namespaces (see
    /// [`Session::start`]).
    pub ident: IdentMode,
    /// With `ident` plain or transparent: start oidentd on the client
    /// (default `true`). `false` leaves port 113 to the test (a hostile
    /// identd, or nothing: `refused`).
    pub oidentd: bool,
    /// Keep the evidence store too, as the package does: `store_dir=` in
    /// the lab's directory (`store`), beside the example's destination.
    pub store: bool,
}

impl SessionOptions {
    pub fn new(example: Example) -> SessionOptions {
        SessionOptions {
            example,
            so: None,
            set: Vec::new(),
            lab: LabOptions::default(),
            ident: IdentMode::Off,
            oidentd: true,
            store: false,
        }
    }

    /// The same with IDENT lookups in `mode`.
    pub fn with_ident(mut self, mode: IdentMode) -> SessionOptions {
        self.ident = mode;
        self
    }

    /// Adds a change to the example: `key=value` in `[section]`.
    pub fn set_key(&mut self, section: &str, key: &str, value: &str) -> &mut SessionOptions {
        self.set
            .push((section.to_string(), key.to_string(), value.to_string()));
        self
    }
}

/// The address of the remote receiver (in the server namespace).
pub fn remote_receiver() -> SocketAddr {
    SocketAddr::new(SERVER_V4.into(), REMOTE_PORT)
}

/// The address of the RELP receiver (in the server namespace).
pub fn relp_receiver() -> SocketAddr {
    SocketAddr::new(SERVER_V4.into(), RELP_PORT)
}

/// Everything running. Dropping it stops everything and removes the lab.
#[derive(Debug)]
pub struct Session {
    pub example: Example,
    pub ulogd: Ulogd,
    pub conntrack: ConntrackWatch,
    pub rsyslog: Rsyslog,
    pub servers: Vec<Server>,
    /// The client's oidentd, when the session started one.
    pub oidentd: Option<Oidentd>,
    pub ident: IdentMode,
    /// The evidence store's directory, with [`SessionOptions::store`].
    pub store: Option<PathBuf>,
    pub lab: Lab,
}

impl Session {
    /// Builds the lab and starts, in order: the receiver, `conntrack -E`,
    /// the servers, for IDENT the router's transparent routing (transparent
    /// mode) and oidentd on the client (`-P 10.99.0.1` in plain mode, stock
    /// in transparent mode; unless `opts.oidentd` is false), then ulogd with
    /// the example config (its placeholders replaced by the lab's paths,
    /// `ident=` set when not off, nothing else changed unless `opts.set`
    /// says so).
    pub fn start(opts: &SessionOptions) -> Result<Session, LabError> {
        let lab = Lab::with_options(&opts.lab)?;
        let so = match &opts.so {
            Some(p) => p.clone(),
            None => ulogd::find_plugin()?,
        };
        let installed = ulogd::install_plugin(&lab, &so)?;
        let rsyslog = if opts.example == Example::Relp {
            lab.start_rsyslog(
                "rsyslog-relp",
                &RsyslogOptions::remote_relp(relp_receiver()),
            )?
        } else if opts.example.is_remote() {
            lab.start_rsyslog(
                "rsyslog-remote",
                &RsyslogOptions::remote_tcp(remote_receiver()),
            )?
        } else {
            lab.start_rsyslog("rsyslog-local", &RsyslogOptions::local())?
        };
        let conntrack = lab.watch_conntrack()?;
        let mut servers = Vec::new();
        for family in Family::ALL {
            servers.push(lab.serve(FlowProto::Tcp, family, TCP_PORT, TCP_REPLY)?);
            servers.push(lab.serve(FlowProto::Udp, family, UDP_PORT, UDP_REPLY)?);
        }
        if opts.ident == IdentMode::Transparent {
            lab.transparent_ident_routing()?;
        }
        let oidentd = if opts.ident != IdentMode::Off && opts.oidentd {
            Some(Oidentd::start(&lab, opts.ident.oidentd_proxy())?)
        } else {
            None
        };
        let mut subs = ulogd::substitutions(&lab, "ulogd", &installed);
        subs.syslog_socket = rsyslog.socket_path();
        subs.remote = Some(if opts.example == Example::Relp {
            relp_receiver()
        } else {
            remote_receiver()
        });
        let mut conf = UlogdConf::from_example(opts.example, &subs)?;
        if opts.ident != IdentMode::Off {
            for (key, value) in opts.ident.conf_keys() {
                conf.set(MASQ_ID, key, value);
            }
        }
        let store = opts.store.then(|| lab.path("store"));
        if let Some(dir) = &store {
            conf.set(MASQ_ID, "store_dir", &dir.to_string_lossy());
        }
        for (section, key, value) in &opts.set {
            conf.set(section, key, value);
        }
        let ulogd = lab.start_ulogd("ulogd", &conf)?;
        Ok(Session {
            example: opts.example,
            ulogd,
            conntrack,
            rsyslog,
            servers,
            oidentd,
            ident: opts.ident,
            store,
            lab,
        })
    }

    /// The server for `proto` and `family`.
    pub fn server(&self, proto: FlowProto, family: Family) -> &Server {
        self.servers
            .iter()
            .find(|s| s.proto == proto && s.family == family)
            .expect("one server per protocol and family")
    }

    /// A flow as `user` to the server of `proto`/`family`, sending
    /// `send_bytes`, from a fresh source port, to adjust (e.g.
    /// [`FlowSpec::holding`]) and run with `lab.flow`.
    pub fn flow_spec(
        &self,
        user: &str,
        proto: FlowProto,
        family: Family,
        send_bytes: usize,
    ) -> FlowSpec {
        FlowSpec::to(&self.lab, self.server(proto, family), user, send_bytes)
    }

    /// Runs a flow as `user` to the server of `proto`/`family`, sending
    /// `send_bytes`, from a fresh source port.
    pub fn flow(
        &self,
        user: &str,
        proto: FlowProto,
        family: Family,
        send_bytes: usize,
    ) -> Result<FlowResult, LabError> {
        let spec = FlowSpec::to(&self.lab, self.server(proto, family), user, send_bytes);
        self.lab.flow(&spec)
    }

    /// The receiver's lines that carry masqlog records: `messages.log` of
    /// a local receiver, `raw.log` of the remote one.
    pub fn receiver_lines(&self) -> Vec<String> {
        if self.example.is_remote() {
            self.rsyslog.raw()
        } else {
            self.rsyslog.messages()
        }
    }

    /// The receiver's file that holds masqlog's lines.
    pub fn receiver_path(&self) -> PathBuf {
        if self.example.is_remote() {
            self.rsyslog.raw_path()
        } else {
            self.rsyslog.messages_path()
        }
    }

    /// Waits until the receiver holds `n` chain records (a sealing run
    /// writes one when it starts and one when it stops cleanly).
    pub fn wait_chain(&self, n: usize, timeout: Duration) -> Result<Received, LabError> {
        let what = format!("{n} chain records in {}", self.receiver_path().display());
        wait::poll(&what, timeout, || {
            let r = self.received();
            Ok((r.chain.len() >= n).then_some(r))
        })
    }

    /// What the receiver got so far, parsed.
    pub fn received(&self) -> Received {
        logged::read(&self.receiver_lines())
    }

    /// Waits for the DESTROY event of each flow (bounded), and returns them
    /// in the order of `flows`.
    pub fn wait_destroyed(&mut self, flows: &[FlowSpec]) -> Result<Vec<CtEvent>, LabError> {
        flows
            .iter()
            .map(|f| {
                self.conntrack
                    .wait_destroy(client_addr(f.family), f.sport, f.proto, DESTROY_WAIT)
            })
            .collect()
    }

    /// Waits until the receiver has a start and an end line for each flow.
    pub fn wait_logged(
        &mut self,
        flows: &[FlowSpec],
        timeout: Duration,
    ) -> Result<Received, LabError> {
        let what = format!(
            "start and end lines of {} flows in {}",
            flows.len(),
            if self.example.is_remote() {
                self.rsyslog.raw_path()
            } else {
                self.rsyslog.messages_path()
            }
            .display()
        );
        wait::poll(&what, timeout, || {
            let r = self.received();
            let all = flows
                .iter()
                .all(|f| r.has(f, Event::Start) && r.has(f, Event::End));
            Ok(all.then_some(r))
        })
    }

    /// Waits until the receiver has an ident line for each flow, and
    /// returns what it has then. The timeout error names the flows still
    /// without one.
    pub fn wait_ident(
        &mut self,
        flows: &[FlowSpec],
        timeout: Duration,
    ) -> Result<Received, LabError> {
        let what = format!("ident lines of {} flows", flows.len());
        let waited = wait::poll(&what, timeout, || {
            let r = self.received();
            let all = flows.iter().all(|f| r.has(f, Event::Ident));
            Ok(all.then_some(r))
        });
        waited.map_err(|e| match e {
            LabError::Timeout { what, secs } => {
                let r = self.received();
                let missing: Vec<String> = flows
                    .iter()
                    .filter(|f| !r.has(f, Event::Ident))
                    .map(FlowSpec::label)
                    .collect();
                LabError::Timeout {
                    what: format!(
                        "{what} ({} without one: {})",
                        missing.len(),
                        missing.join(", ")
                    ),
                    secs,
                }
            }
            other => other,
        })
    }
}
