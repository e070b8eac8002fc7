//! Debian's oidentd (2.5) in the client namespace: the identd that tells
//! the plugin which of alice and bob owns a flow.
//!
//! Flags, as checked with oidentd 2.5.0 on Debian 12, started as root:
//! - `-i` (`--foreground`): stay in the foreground, so the lab supervises it
//!   (`-f` is `--forward`, something else).
//! - `-S` (`--nosyslog`): messages to stderr (the lab's `oidentd.out`)
//!   instead of syslog; `-d` adds one line per query.
//! - No `-u`/`-g` needed: as root it drops by itself to the first of the
//!   users "oidentd" and "nobody" that exists (nobody on Debian 12) after
//!   binding port 113, and still finds every user's sockets (netlink
//!   sock_diag, /proc/net/tcp{,6}).
//! - `-P ADDR` (plain mode): trust ADDR as a proxy; a query from ADDR is
//!   then answered by port pair alone. oidentd keeps one proxy address (the
//!   last `-P`), and only its IPv4 lookup honours it: a proxied IPv6 query
//!   gets `NO-USER`.
//! - No options (transparent mode): a query from the flow's own remote
//!   address is an ordinary RFC 1413 query.
//!
//! oidentd looks up the asker's host name (`getnameinfo` with
//! `NI_NAMEREQD`) for its log line before answering. With the machine's
//! resolver that is a DNS query to an address outside the lab, which the
//! router cannot route: the answer waits for the resolver's timeout (5 s;
//! the flow has often ended by then: `NO-USER`). So oidentd runs with its
//! own `/etc/nsswitch.conf` (the machine's, with `hosts: files`) and
//! `/etc/resolv.conf` (`nameserver 127.0.0.1`), bind-mounted in the private
//! mount namespace that `ip netns exec` gives each program; the machine's
//! files are not touched, and no query leaves the namespace.

use std::net::IpAddr;

use crate::LabError;
use crate::ident::{IDENT_PORT, wait_listening};
use crate::process::{self, Supervised};
use crate::topology::{Lab, Role};

/// The program.
pub const OIDENTD: &str = "oidentd";

/// Runs `$3...` with `$1` mounted over /etc/nsswitch.conf and `$2` over
/// /etc/resolv.conf (in the mount namespace of `ip netns exec`).
const WITH_OWN_RESOLVER: &str = "mount --bind \"$1\" /etc/nsswitch.conf && \
     mount --bind \"$2\" /etc/resolv.conf && shift 2 && exec \"$@\"";

/// The machine's nsswitch.conf with host names from files only.
pub fn nsswitch_files_only(system: &str) -> String {
    let mut out = String::new();
    let mut had_hosts = false;
    for line in system.lines() {
        if line.trim_start().starts_with("hosts:") {
            out.push_str("hosts: files\n");
            had_hosts = true;
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    if !had_hosts {
        out.push_str("hosts: files\n");
    }
    out
}

/// oidentd's arguments: foreground, messages to stderr, debug lines, and
/// `-P proxy` when given.
pub fn args(proxy: Option<IpAddr>) -> Vec<String> {
    let mut a: Vec<String> = ["-i", "-S", "-d"].map(String::from).to_vec();
    if let Some(p) = proxy {
        a.push("-P".into());
        a.push(p.to_string());
    }
    a
}

/// An oidentd run by the lab in the client namespace.
#[derive(Debug)]
pub struct Oidentd {
    proc: Supervised,
    pub proxy: Option<IpAddr>,
}

impl Oidentd {
    /// Starts oidentd in the client namespace (with `-P proxy` if given)
    /// and waits until it listens on port 113 (IPv4 and IPv6).
    pub fn start(lab: &Lab, proxy: Option<IpAddr>) -> Result<Oidentd, LabError> {
        let program = process::find_tool(OIDENTD)?;
        process::find_tool("mount")?;
        let system = std::fs::read_to_string("/etc/nsswitch.conf").unwrap_or_default();
        let nss = lab.path("oidentd-nsswitch.conf");
        let resolv = lab.path("oidentd-resolv.conf");
        for (path, text) in [
            (&nss, nsswitch_files_only(&system)),
            (&resolv, "nameserver 127.0.0.1\n".to_string()),
        ] {
            std::fs::write(path, text)
                .map_err(|e| LabError::io(format!("writing {}", path.display()), e))?;
        }
        let (nss, resolv, program) = (
            nss.to_string_lossy().into_owned(),
            resolv.to_string_lossy().into_owned(),
            program.to_string_lossy().into_owned(),
        );
        let a = args(proxy);
        let mut argv = vec!["sh", "-c", WITH_OWN_RESOLVER, "sh", &nss, &resolv, &program];
        argv.extend(a.iter().map(String::as_str));
        let name = "oidentd";
        let mut proc = lab.spawn(Some(Role::Client), name, &argv)?;
        wait_listening(lab, &mut proc, name, IDENT_PORT)?;
        Ok(Oidentd { proc, proxy })
    }

    /// Its messages (stderr, `-d`: one line per query).
    pub fn output(&self) -> String {
        self.proc.output()
    }

    pub fn pid(&self) -> u32 {
        self.proc.pid()
    }

    /// Stops it.
    pub fn stop(&mut self) -> Result<(), LabError> {
        self.proc.stop().map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_mode_trusts_the_router() {
        assert_eq!(args(None), ["-i", "-S", "-d"]);
        assert_eq!(
            args(Some("10.99.0.1".parse().unwrap())),
            ["-i", "-S", "-d", "-P", "10.99.0.1"]
        );
    }

    #[test]
    fn host_names_from_files_only() {
        assert_eq!(
            nsswitch_files_only("passwd: files systemd\nhosts:  files mdns4 dns\n"),
            "passwd: files systemd\nhosts: files\n"
        );
        assert_eq!(nsswitch_files_only(""), "hosts: files\n");
    }
}
