//! The three namespaces and their wiring: veth pairs, addresses, routes,
//! the router's sysctls and its masquerade rule.

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, AtomicU32, Ordering};
use std::time::Duration;

use crate::conntrack::ConntrackWatch;
use crate::flow::{self, Family, FlowProto, FlowResult, FlowSpec, Server};
use crate::process::{self, Supervised};
use crate::reaper::Reaper;
use crate::rsyslog::{Rsyslog, RsyslogOptions};
use crate::tempdir::TempDir;
use crate::ulogd::Ulogd;
use crate::{LabError, UlogdConf, preflight};
use masqlog_core::record::Timestamp;
use masqlog_core::seal;

/// The client's addresses (inside the NAT).
pub const CLIENT_V4: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 2);
pub const CLIENT_V6: Ipv6Addr = Ipv6Addr::new(0xfd99, 0, 0, 0, 0, 0, 0, 2);
/// The router's inside addresses (the client's gateway).
pub const ROUTER_IN_V4: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 1);
pub const ROUTER_IN_V6: Ipv6Addr = Ipv6Addr::new(0xfd99, 0, 0, 0, 0, 0, 0, 1);
/// The router's outside addresses: what masquerading rewrites to.
pub const MASQ_V4: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);
pub const MASQ_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x113, 0, 0, 0, 0, 1);
/// The server's addresses (outside).
pub const SERVER_V4: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 7);
pub const SERVER_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x113, 0, 0, 0, 0, 7);

/// The router's interface towards the server, masqueraded.
pub const WAN_IF: &str = "r-wan";
/// The name of the router's nftables table (family inet).
pub const NFT_TABLE: &str = "masqlab";

/// Router sysctls: (path under /proc/sys, value, why).
pub const ROUTER_SYSCTLS: &[(&str, &str, &str)] = &[
    ("net/ipv4/ip_forward", "1", "route IPv4"),
    ("net/ipv6/conf/all/forwarding", "1", "route IPv6"),
    (
        "net/netfilter/nf_conntrack_acct",
        "1",
        "byte and packet counters",
    ),
    (
        "net/netfilter/nf_conntrack_timestamp",
        "1",
        "kernel start and stop times",
    ),
    (
        "net/netfilter/nf_conntrack_udp_timeout",
        "2",
        "UDP DESTROY 2 s after the last packet",
    ),
    (
        "net/netfilter/nf_conntrack_udp_timeout_stream",
        "5",
        "the same for UDP streams",
    ),
    (
        "net/netfilter/nf_conntrack_tcp_timeout_time_wait",
        "1",
        "TCP DESTROY 1 s after close",
    ),
];

/// The first client source port that [`Lab::next_port`] hands out.
pub const FIRST_CLIENT_PORT: u16 = 40000;

/// One of the lab's namespaces.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    Client,
    Router,
    Server,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Client, Role::Router, Role::Server];

    pub fn name(self) -> &'static str {
        match self {
            Role::Client => "client",
            Role::Router => "router",
            Role::Server => "server",
        }
    }
}

/// The client's address in `family`.
pub fn client_addr(family: Family) -> IpAddr {
    match family {
        Family::V4 => CLIENT_V4.into(),
        Family::V6 => CLIENT_V6.into(),
    }
}

/// The masquerade address (router outside) in `family`.
pub fn masq_addr(family: Family) -> IpAddr {
    match family {
        Family::V4 => MASQ_V4.into(),
        Family::V6 => MASQ_V6.into(),
    }
}

/// The server's address in `family`.
pub fn server_addr(family: Family) -> IpAddr {
    match family {
        Family::V4 => SERVER_V4.into(),
        Family::V6 => SERVER_V6.into(),
    }
}

/// How to build a lab.
#[derive(Clone, Debug, Default)]
pub struct LabOptions {
    /// The name prefix of the namespaces and the temporary directory;
    /// default `mlab<pid>-<n>`, unique per process and lab.
    pub prefix: Option<String>,
}

/// A running lab. Dropping it (and every handle from it) removes it.
#[derive(Debug)]
pub struct Lab {
    prefix: String,
    dir: TempDir,
    next_port: AtomicU16,
    // Last: the reaper cleans up after everything else has been dropped.
    reaper: Arc<Reaper>,
}

static LABS: AtomicU32 = AtomicU32::new(0);

impl Lab {
    /// Builds a lab with the default options.
    pub fn new() -> Result<Lab, LabError> {
        Lab::with_options(&LabOptions::default())
    }

    /// Builds the three namespaces and wires them; fails without leaving
    /// anything behind.
    pub fn with_options(opts: &LabOptions) -> Result<Lab, LabError> {
        preflight()?;
        let prefix = opts.prefix.clone().unwrap_or_else(|| {
            let n = LABS.fetch_add(1, Ordering::Relaxed);
            format!("mlab{}-{n}", std::process::id())
        });
        let reaper = Reaper::start()?;
        let dir = TempDir::create(&prefix)?;
        reaper.add_dir(dir.path());
        let lab = Lab {
            prefix,
            dir,
            next_port: AtomicU16::new(FIRST_CLIENT_PORT),
            reaper,
        };
        lab.build()?;
        Ok(lab)
    }

    fn build(&self) -> Result<(), LabError> {
        for role in Role::ALL {
            let ns = self.ns(role);
            self.reaper.add_netns(&ns);
            process::run(&["ip", "netns", "add", &ns], None)?;
            self.ip(role, &["link", "set", "lo", "up"])?;
        }
        let (c, r, s) = (
            self.ns(Role::Client),
            self.ns(Role::Router),
            self.ns(Role::Server),
        );
        process::run(
            &[
                "ip", "link", "add", "c-lan", "netns", &c, "type", "veth", "peer", "name", "r-lan",
                "netns", &r,
            ],
            None,
        )?;
        process::run(
            &[
                "ip", "link", "add", WAN_IF, "netns", &r, "type", "veth", "peer", "name", "s-wan",
                "netns", &s,
            ],
            None,
        )?;
        let addrs: &[(Role, &str, &str)] = &[
            (Role::Client, "c-lan", "10.99.0.2/24"),
            (Role::Client, "c-lan", "fd99::2/64"),
            (Role::Router, "r-lan", "10.99.0.1/24"),
            (Role::Router, "r-lan", "fd99::1/64"),
            (Role::Router, WAN_IF, "203.0.113.1/24"),
            (Role::Router, WAN_IF, "2001:db8:113::1/64"),
            (Role::Server, "s-wan", "203.0.113.7/24"),
            (Role::Server, "s-wan", "2001:db8:113::7/64"),
        ];
        for (role, dev, addr) in addrs {
            let mut args = vec!["addr", "add", addr, "dev", dev];
            if addr.contains(':') {
                // No duplicate address detection: usable at once.
                args.push("nodad");
            }
            self.ip(*role, &args)?;
        }
        for (role, dev) in [
            (Role::Client, "c-lan"),
            (Role::Router, "r-lan"),
            (Role::Router, WAN_IF),
            (Role::Server, "s-wan"),
        ] {
            self.ip(role, &["link", "set", dev, "up"])?;
        }
        // The nat chain loads nf_nat and nf_conntrack, whose sysctls follow.
        self.nft(&format!(
            "table inet {NFT_TABLE} {{\n\
             \tchain postrouting {{\n\
             \t\ttype nat hook postrouting priority srcnat; policy accept;\n\
             \t\toifname \"{WAN_IF}\" masquerade\n\
             \t}}\n\
             }}\n"
        ))?;
        for (key, value, _why) in ROUTER_SYSCTLS {
            self.sysctl(Role::Router, key, value)?;
        }
        self.ip(
            Role::Client,
            &["route", "add", "default", "via", "10.99.0.1"],
        )?;
        self.ip(
            Role::Client,
            &["-6", "route", "add", "default", "via", "fd99::1"],
        )?;
        self.ip(
            Role::Server,
            &["route", "add", "default", "via", "203.0.113.1"],
        )?;
        self.ip(
            Role::Server,
            &["-6", "route", "add", "default", "via", "2001:db8:113::1"],
        )?;
        Ok(())
    }

    /// `ip ARGS` inside a namespace (`ip -n`).
    fn ip(&self, role: Role, args: &[&str]) -> Result<String, LabError> {
        let ns = self.ns(role);
        let mut argv = vec!["ip", "-n", ns.as_str()];
        argv.extend_from_slice(args);
        process::run(&argv, None)
    }

    /// Writes one sysctl of a namespace (through /proc/sys, no procps).
    pub fn sysctl(&self, role: Role, key: &str, value: &str) -> Result<(), LabError> {
        let path = format!("/proc/sys/{key}");
        process::run(
            &[
                "sh",
                "-c",
                "printf '%s\\n' \"$1\" > \"$2\"",
                "sh",
                value,
                &path,
            ],
            Some(&self.ns(role)),
        )?;
        Ok(())
    }

    /// Loads an nftables ruleset into the router (`nft -f -`).
    pub fn nft(&self, ruleset: &str) -> Result<(), LabError> {
        process::run_input(
            &["nft", "-f", "-"],
            Some(&self.ns(Role::Router)),
            Some(ruleset),
        )?;
        Ok(())
    }

    /// The name prefix of this lab's namespaces.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The namespace name of `role`: `<prefix>-client` and so on.
    pub fn ns(&self, role: Role) -> String {
        format!("{}-{}", self.prefix, role.name())
    }

    /// The lab's temporary directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A path inside the lab's temporary directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// The lab's sealing key, made at the first call: the sealing state
    /// every ulogd of the lab uses (`seal.state`) and the verification key
    /// (`verify.key`, returned), as `masqlog keygen` makes them (mode 0600,
    /// in the lab's directory, mode 0700), for the router host
    /// `<prefix>-router`.
    pub fn seal_key(&self) -> Result<(PathBuf, PathBuf), LabError> {
        let state = self.path("seal.state");
        let key = self.path("verify.key");
        if !state.exists() {
            let now = Timestamp::now().secs;
            let len = i64::from(seal::DEFAULT_EPOCH_SECS);
            let k = seal::VerifyKey::generate(
                &self.ns(Role::Router),
                now - now.rem_euclid(len),
                seal::DEFAULT_EPOCH_SECS,
            )
            .map_err(|e| LabError::io("making the lab's key", std::io::Error::other(e)))?;
            for (path, text) in [(&key, k.to_text()), (&state, k.initial_state().to_text())] {
                std::fs::OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .mode(0o600)
                    .open(path)
                    .and_then(|mut f| f.write_all(text.as_bytes()))
                    .map_err(|e| LabError::io(format!("writing {}", path.display()), e))?;
            }
        }
        Ok((state, key))
    }

    pub fn reaper(&self) -> &Arc<Reaper> {
        &self.reaper
    }

    /// Runs a command to its end in a namespace (`None`: this one); fails
    /// unless it exits 0. Returns its stdout.
    pub fn exec(&self, role: Option<Role>, argv: &[&str]) -> Result<String, LabError> {
        process::run(argv, role.map(|r| self.ns(r)).as_deref())
    }

    /// Starts a daemon in a namespace (`None`: this one), output in
    /// `<dir>/<name>.out`.
    pub fn spawn(
        &self,
        role: Option<Role>,
        name: &str,
        argv: &[&str],
    ) -> Result<Supervised, LabError> {
        let out = self.path(&format!("{name}.out"));
        Supervised::spawn(
            &self.reaper,
            name,
            argv,
            role.map(|r| self.ns(r)).as_deref(),
            &out,
        )
    }

    /// A client source port not used before in this lab (TIME_WAIT and
    /// conntrack entries of earlier flows never collide with a new one).
    pub fn next_port(&self) -> u16 {
        self.next_port.fetch_add(1, Ordering::Relaxed)
    }

    /// Lists the router's conntrack table (`conntrack -L`), which makes the
    /// kernel remove expired entries at once; their DESTROY events then come
    /// now rather than at the next garbage collection run (up to a minute
    /// on an idle table). The stop time in the event is still the expiry
    /// time.
    pub fn reap_expired(&self) -> Result<(), LabError> {
        process::run_quiet(&["conntrack", "-L"], Some(&self.ns(Role::Router)))?;
        Ok(())
    }

    /// Starts an rsyslogd for this lab.
    pub fn start_rsyslog(&self, name: &str, opts: &RsyslogOptions) -> Result<Rsyslog, LabError> {
        Rsyslog::start(self, name, opts)
    }

    /// Starts ulogd in the router with a rendered config.
    pub fn start_ulogd(&self, name: &str, conf: &UlogdConf) -> Result<Ulogd, LabError> {
        Ulogd::start(self, name, conf)
    }

    /// Starts `conntrack -E` in the router.
    pub fn watch_conntrack(&self) -> Result<ConntrackWatch, LabError> {
        ConntrackWatch::start(self)
    }

    /// Starts a socat server in the server namespace.
    pub fn serve(
        &self,
        proto: FlowProto,
        family: Family,
        port: u16,
        reply_bytes: usize,
    ) -> Result<Server, LabError> {
        Server::start(self, proto, family, port, reply_bytes)
    }

    /// Runs one client flow as a local user.
    pub fn flow(&self, spec: &FlowSpec) -> Result<FlowResult, LabError> {
        flow::run(self, spec)
    }

    /// Leaves the lab up after this process ends (`masqlog lab --keep`):
    /// writes `<dir>/teardown.sh`, which removes it, and returns its path.
    pub fn keep(&self) -> Result<PathBuf, LabError> {
        let script = self.reaper.teardown_script();
        let path = self.path("teardown.sh");
        std::fs::write(&path, script)
            .map_err(|e| LabError::io(format!("writing {}", path.display()), e))?;
        self.reaper.disarm();
        Ok(path)
    }

    /// Every log file of the lab, for a failure message: `== name ==` and
    /// the last lines of each.
    pub fn dump_logs(&self, lines: usize) -> String {
        let mut out = String::new();
        let mut files = Vec::new();
        collect_files(self.dir(), &mut files);
        files.sort();
        for f in files {
            let Ok(bytes) = std::fs::read(&f) else {
                continue;
            };
            if bytes.contains(&0) {
                continue;
            }
            let text = String::from_utf8_lossy(&bytes);
            out.push_str(&format!(
                "== {} ==\n{}\n",
                f.display(),
                process::tail(&text, lines)
            ));
        }
        out
    }
}

fn collect_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        match e.file_type() {
            Ok(t) if t.is_dir() => collect_files(&p, out),
            Ok(t) if t.is_file() => out.push(p),
            _ => {}
        }
    }
}

/// The time limit for things that come within seconds (a daemon starting,
/// a NEW event, a log line).
pub const SHORT_WAIT: Duration = Duration::from_secs(30);
