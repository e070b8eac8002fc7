//! Deterministic port-block NAT: each internal address owns a fixed range of
//! source ports on one public address, so that a public address, a port and
//! a time name a client with no per-flow log at all; only the rules, kept
//! with the time each set came into force, are evidence.
//!
//! # How blocks are computed
//!
//! **eduVPN's "Traceable NAT" script** (`vpn-generate-natfw`) counts the
//! hosts `H` of its private networks (skipping the network address, the
//! first host, which is the gateway, and the broadcast address), takes
//! `floor((65535 - 1280) / H)` ports per client and rounds that *down to a
//! power of two below it* (its loop halves an exact power of two too). It
//! then hands out blocks counting down from 65535: the first client gets
//! 65280-65535 with blocks of 256, the next 65024-65279, and so on, one
//! `-A POSTROUTING -s CLIENT -p tcp|udp -j SNAT --to-source PUB:LO-HI` per
//! client and protocol, with a single public address and a shared ICMP rule.
//!
//! **RFC 7422** (Deterministic Address Mapping to Reduce Logging in CGN
//! Deployments, Informational) asks for the same property in a CGN: the
//! outside address and port range are a deterministic, reversible function
//! of the inside address, so that only the function's configuration (and its
//! every change) needs to be logged. Its worked example, as we read it,
//! divides the ports above the reserved ones (`R`, e.g. 1024) among the
//! inside addresses that share an outside address (the compression ratio
//! `C`) plus a dynamic-pool factor `D`: `Delta = (65536 - R) / (C + D)` ports
//! each, inside address number `i` getting outside address `i mod M` (of `M`
//! outside addresses) and ports `R + (i div M) * Delta` to
//! `R + (i div M + 1) * Delta - 1`. (This summary is from the RFC's text as
//! remembered; check Section 2 and its erratum before quoting numbers.)
//!
//! **Ours**, [`plan::Plan::new`]: blocks of `N` ports, `N` a power of two
//! (`--per-client`, or the largest that fits), *aligned* to `N` and wholly
//! inside `--ports`; clients numbered through the `--internal` prefixes in
//! the order given; client `i` gets public address `public[i / B]` and the
//! `(i mod B)`-th block counted down from the top of the range, where `B` is
//! the number of aligned blocks in the range. Why:
//! - with one public address and `--ports 1280-65535 --per-client 256` it
//!   reproduces the eduVPN tables exactly (65280-65535, 65024-65279, ...), so
//!   operators who know those files read ours the same way;
//! - aligned powers of two make the reverse mapping arithmetic a person can
//!   do: the block is `port / N`, its first port `port & !(N - 1)`;
//! - filling one public address before the next (rather than RFC 7422's
//!   round robin) keeps every existing client's block when a public address
//!   or a prefix is appended: fewer changes, a shorter history to explain;
//! - unlike the eduVPN rounding, an exact fit is used (`H` blocks for `H`
//!   clients), and a block never crosses the end of the range.
//!
//! # ICMP and other protocols
//!
//! The nft rules translate ICMP with the same map: the kernel's NAT treats an
//! ICMP echo id like a port, so a client's echo ids are mapped into its own
//! block (checked by hand on Linux 6.x: ids 7 and 8 from 10.8.0.2 left as
//! 65433 and 65526 inside 65280-65535). ICMP errors follow the flow they
//! belong to. iptables' SNAT takes a port range only with `-p tcp|udp|sctp|dccp`,
//! so the iptables rules send a client's ICMP from its own public address
//! (RFC 6888's "paired" pooling) without an id range. Other protocols (GRE,
//! ESP, SCTP, ...) are not translated at all: a translated flow that no rule
//! file could attribute would defeat the purpose. Put a rule of your own
//! after ours (our chain runs at `srcnat - 10`) if you need them.
//!
//! Linux picks each translated port so that the whole connection tuple is
//! unique, so a block of `N` ports holds `N` connections *to one remote
//! address and port* at a time, and many more in all.
//!
//! # Which addresses get a block
//!
//! In prefixes of /30 and shorter, the network and broadcast addresses never
//! get one (no host sends from them), and neither does the first host
//! address, which is conventionally the router itself, as in the eduVPN
//! script; `--include-first` gives it one. /31 (RFC 3021) and /32 prefixes
//! have neither network nor broadcast address: every address gets a block.
//! An address outside every block is not translated by our rules.
//!
//! # IPv4 only
//!
//! Port-block NAT shares one IPv4 address among many clients because there
//! are too few. An IPv6 client has a global address of its own: there is
//! nothing to share, so nothing to map and nothing to log but the address.
//! IPv6 prefixes and addresses are refused with that reason.
//!
//! # History, lookups and the configuration record
//!
//! `apply` keeps every rule file it puts in force as
//! `DIR/rules.<UNIX time>.<method>`, never changed or removed; the rules in
//! force at time T are in the file with the highest timestamp <= T
//! ([`history`], [`active_at`]). The timestamp is taken just before the
//! reload, so for the second or two of a change either file may have been in
//! force. A file whose reload failed is renamed `*.failed`: it was never in
//! force, so it is out of the history.
//!
//! RFC 7422 asks that every change of the mapping be logged: each `apply`
//! that puts new rules in force sends one record to syslog
//! ([`syslog::config_record`]). The record is evidence, so `apply` connects
//! to syslog before it changes anything and fails when it cannot (no
//! `/dev/log` on a machine without a syslog daemon); `--no-syslog` is the
//! explicit way to go without. A record that cannot be sent *after* the
//! reload is an error too (exit 2), but the new rules stay in force and in
//! the history.

pub mod apply;
pub mod clock;
pub mod history;
pub mod localports;
pub mod net;
pub mod plan;
pub mod render;
pub mod rulefile;
pub mod syslog;

#[cfg(test)]
mod e2e;
#[cfg(test)]
pub(crate) mod testutil;

use std::io;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

pub use apply::{ApplyOptions, ApplyOutcome, apply};
pub use history::{active_at, history};
pub use net::{Ipv4Net, PortRange};
pub use plan::{Block, Method, Params, Plan, PlanInput};
pub use render::render;
pub use rulefile::RuleFile;
pub use syslog::SyslogTarget;

/// Everything that can go wrong in port-block planning, rule files and
/// `apply`. An underlying `io::Error` is part of the message (`cause`), not
/// a `source()`, so that `{:#}` does not print it twice.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PortblockError {
    #[error(
        "port-block NAT is IPv4 only, and {input} is IPv6: an IPv6 client has a global address of its own, so there is no address to share and no port to map"
    )]
    Ipv6 { input: String },
    #[error("invalid prefix {input}: {reason}")]
    BadPrefix { input: String, reason: String },
    #[error("{input} has host bits set: did you mean {network}?")]
    HostBits { input: String, network: String },
    #[error("{input:?} is not an IPv4 address")]
    BadAddress { input: String },
    #[error("invalid port range {input}: {reason}")]
    BadPortRange { input: String, reason: String },
    #[error("unknown method {input:?}: nft or iptables")]
    BadMethod { input: String },
    #[error("no internal prefix: give --internal")]
    NoInternal,
    #[error("no public address: give --public")]
    NoPublic,
    #[error("internal prefixes {a} and {b} overlap: a client would own two blocks")]
    Overlap { a: String, b: String },
    #[error("public address {addr} is given twice")]
    DuplicatePublic { addr: Ipv4Addr },
    #[error(
        "invalid nftables table name {name:?}: a letter, then letters, digits or _, at most 64"
    )]
    BadTable { name: String },
    #[error(
        "invalid interface name {name:?}: 1 to 15 characters, no white space, / : \" ' \\ or #"
    )]
    BadInterface { name: String },
    #[error("--table applies to --format nft only (iptables rules live in the nat table)")]
    TableWithIptables,
    #[error(
        "--per-client {per_client} is not a power of two (1, 2, 4, ..., 32768): blocks are aligned powers of two so that port / N names the block"
    )]
    PerClientNotPowerOfTwo { per_client: u32 },
    #[error(
        "--per-client {per_client} is too large: the range {ports} holds no {per_client}-aligned block of {per_client} ports (at most 32768)"
    )]
    PerClientTooLarge { per_client: u32, ports: String },
    #[error(
        "{clients} client addresses is more than one plan holds (at most {max}): split the clients over several plans"
    )]
    OverMaxClients { clients: u64, max: u64 },
    #[error("{clients} client addresses do not fit: {publics} {offer}; {hint}")]
    TooManyClients {
        clients: u64,
        publics: String,
        offer: String,
        hint: String,
    },
    #[error("{}: not a masqlog portblock rule file: {reason}", path.display())]
    Foreign { path: PathBuf, reason: String },
    #[error("{}:{line}: {reason}", path.display())]
    Parse {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    #[error("{what} {}: {cause}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        cause: io::Error,
    },
    #[error(
        "two rule files for the same second, {} and {}: which was in force cannot be told; move one away",
        a.display(),
        b.display()
    )]
    SameSecond { a: PathBuf, b: PathBuf },
    #[error(
        "{} was not made by masqlog portblock apply ({reason}): move it away and apply again",
        path.display()
    )]
    CurrentNotOurs { path: PathBuf, reason: String },
    #[error("no rules are in force: {} has no current symlink", dir.display())]
    NoCurrent { dir: PathBuf },
    #[error("no rule file of {} was in force at {at}: the oldest is from {oldest}", dir.display())]
    NoneActive {
        dir: PathBuf,
        at: String,
        oldest: String,
    },
    #[error(
        "another `masqlog portblock apply` holds {}: try again when it has finished",
        path.display()
    )]
    Locked { path: PathBuf },
    #[error(
        "the clock says {now} but {} is from {then}: is the clock right? a new file would sort before it",
        file.display()
    )]
    ClockBehind {
        now: String,
        file: PathBuf,
        then: String,
    },
    #[error("reload command `{cmd}` failed ({status}); {rollback}")]
    ReloadFailed {
        cmd: String,
        status: String,
        rollback: String,
    },
    #[error("cannot run the reload command `{cmd}`: {cause}")]
    ReloadSpawn { cmd: String, cause: io::Error },
    #[error("invalid syslog target {input:?}: unix:PATH or udp:IP:PORT")]
    BadSyslogTarget { input: String },
    #[error(
        "cannot send the configuration record to syslog at {target}: {cause} (the record is the evidence RFC 7422 asks for: start a syslog daemon, pass --syslog, or --no-syslog to go without)"
    )]
    Syslog { target: String, cause: io::Error },
    #[error(
        "the new rules ({}) are in force, but their configuration record was not sent: {cause}",
        file.display()
    )]
    RecordNotSent { file: PathBuf, cause: String },
    #[error("invalid time {input:?}: {reason}")]
    BadTime { input: String, reason: String },
}

impl PortblockError {
    /// A closure turning an `io::Error` into [`PortblockError::Io`].
    pub fn io(what: &'static str, path: &Path) -> impl FnOnce(io::Error) -> PortblockError + use<> {
        let path = path.to_path_buf();
        move |cause| PortblockError::Io { what, path, cause }
    }
}
