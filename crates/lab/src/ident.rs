//! IDENT in the lab: the plugin's modes as a session option, the config keys
//! each one sets, and the router's policy routing for transparent queries.
//!
//! The identds themselves are in [`oidentd`](crate::oidentd) (Debian's, for
//! real answers) and [`hostile`](crate::hostile) (one that misbehaves on
//! purpose).

use std::net::IpAddr;

use crate::process::{self, Supervised};
use crate::topology::{Lab, ROUTER_IN_V4, Role, SHORT_WAIT};
use crate::{LabError, wait};

/// The identd port of RFC 1413, where the lab's identds listen.
pub const IDENT_PORT: u16 = 113;

/// The firewall mark and routing table of the transparent set-up.
pub const TRANSPARENT_MARK: &str = "0x1";
pub const TRANSPARENT_TABLE: &str = "100";
/// The router's nftables table (family inet) of the transparent set-up.
pub const TRANSPARENT_NFT_TABLE: &str = "masqlog_ident";

/// The plugin's `ident=` setting in a session.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum IdentMode {
    /// No lookups (the examples' default).
    #[default]
    Off,
    /// Queries from the router's inside address; the client's oidentd runs
    /// with `-P <router inside address>`.
    Plain,
    /// Queries from the remote server's address (`IP_TRANSPARENT`); stock
    /// oidentd on the client, policy routing on the router.
    Transparent,
}

impl IdentMode {
    pub const ALL: [IdentMode; 3] = [IdentMode::Off, IdentMode::Plain, IdentMode::Transparent];

    /// The value of the plugin's `ident` key.
    pub fn key_value(self) -> &'static str {
        match self {
            IdentMode::Off => "off",
            IdentMode::Plain => "plain",
            IdentMode::Transparent => "transparent",
        }
    }

    /// The `[masq1]` keys that select the mode. Plain mode leaves
    /// `ident_source` empty: the kernel then sends each query from the
    /// router's inside address of the client's family (10.99.0.1 or
    /// fd99::1), which is what oidentd's `-P` trusts; a fixed IPv4
    /// `ident_source` would fail every IPv6 query (the plugin takes one
    /// source address for both families).
    pub fn conf_keys(self) -> Vec<(&'static str, &'static str)> {
        vec![("ident", self.key_value())]
    }

    /// The proxy address the client's oidentd must trust (`-P`): the
    /// router's inside IPv4 address in plain mode, none otherwise. oidentd
    /// 2.5 takes a single `-P` (the last one given counts) and matches
    /// proxied queries only in its IPv4 lookup: IPv6 queries from the
    /// router get `NO-USER` in plain mode.
    pub fn oidentd_proxy(self) -> Option<IpAddr> {
        (self == IdentMode::Plain).then_some(ROUTER_IN_V4.into())
    }
}

impl Lab {
    /// The router's set-up for transparent IDENT queries (as in README):
    /// replies to a socket with `IP_TRANSPARENT`, addressed to the remote
    /// server's address, are marked and routed to the router itself instead
    /// of being forwarded. IPv4 and IPv6.
    pub fn transparent_ident_routing(&self) -> Result<(), LabError> {
        self.nft(&format!(
            "table inet {TRANSPARENT_NFT_TABLE} {{\n\
             \tchain pre {{\n\
             \t\ttype filter hook prerouting priority mangle; policy accept;\n\
             \t\tmeta l4proto tcp socket transparent 1 meta mark set {TRANSPARENT_MARK}\n\
             \t}}\n\
             }}\n"
        ))?;
        let r = Some(Role::Router);
        let (mark, table) = (TRANSPARENT_MARK, TRANSPARENT_TABLE);
        self.exec(r, &["ip", "rule", "add", "fwmark", mark, "lookup", table])?;
        self.exec(
            r,
            &[
                "ip",
                "route",
                "add",
                "local",
                "0.0.0.0/0",
                "dev",
                "lo",
                "table",
                table,
            ],
        )?;
        self.exec(
            r,
            &["ip", "-6", "rule", "add", "fwmark", mark, "lookup", table],
        )?;
        self.exec(
            r,
            &[
                "ip", "-6", "route", "add", "local", "::/0", "dev", "lo", "table", table,
            ],
        )?;
        Ok(())
    }
}

/// Waits until `proc` (named `name`) listens on TCP `port` in the client
/// namespace, on IPv4 and IPv6; fails with its output if it exits first.
pub(crate) fn wait_listening(
    lab: &Lab,
    proc: &mut Supervised,
    name: &str,
    port: u16,
) -> Result<(), LabError> {
    let ns = lab.ns(Role::Client);
    let filter = format!("sport = :{port}");
    wait::poll(
        &format!("{name} to listen on port {port}"),
        SHORT_WAIT,
        || {
            if let Some(status) = proc.try_wait()? {
                return Err(LabError::Exited {
                    name: name.to_string(),
                    status: process::describe_status(status),
                    log: process::tail(&proc.output(), 20),
                });
            }
            let out = process::run_with(&["ss", "-Hltn", &filter], Some(&ns), None, SHORT_WAIT)?;
            let text = String::from_utf8_lossy(&out.stdout);
            let v4 = text
                .lines()
                .any(|l| l.contains("0.0.0.0:") || l.contains("*:"));
            let v6 = text
                .lines()
                .any(|l| l.contains("[::]:") || l.contains("*:"));
            Ok((v4 && v6).then_some(()))
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_and_their_keys() {
        assert_eq!(
            IdentMode::ALL.map(IdentMode::key_value),
            ["off", "plain", "transparent"]
        );
        assert_eq!(IdentMode::default(), IdentMode::Off);
        assert_eq!(IdentMode::Plain.conf_keys(), vec![("ident", "plain")]);
        assert_eq!(
            IdentMode::Plain.oidentd_proxy(),
            Some("10.99.0.1".parse().unwrap())
        );
        assert_eq!(IdentMode::Transparent.oidentd_proxy(), None);
    }
}
