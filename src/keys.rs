//! The plugin's key tables: config keys and NFCT input keys, as plain data.
//!
//! This file is shared verbatim by `build.rs` (which generates the C static
//! keysets of the shim from it) and by the crate (which parses, validates and
//! documents the same keys), so the two sides cannot drift. It must stay free
//! of `use` items and of anything but `const` data.

/// How ulogd stores a config value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfKind {
    /// `CONFIG_TYPE_STRING`: up to 224 bytes.
    Str,
    /// `CONFIG_TYPE_INT`: parsed by ulogd with `strtoul`, range-checked by us.
    Int,
}

/// One config key of a `[id]` section of ulogd.conf.
#[derive(Clone, Copy, Debug)]
pub struct ConfKey {
    pub name: &'static str,
    pub kind: ConfKind,
    /// The default, as it would be written in ulogd.conf.
    pub default: &'static str,
    /// What the key does and which values it takes (README, man page, errors).
    pub help: &'static str,
}

/// Every config key, in the order of the C keyset (`ces[i]`).
pub const CONF_KEYS: &[ConfKey] = &[
    ConfKey {
        name: "format",
        kind: ConfKind::Str,
        default: "text",
        help: "line format: text (key=value), rfc5424 (structured data) or json",
    },
    ConfKey {
        name: "nat",
        kind: ConfKind::Str,
        default: "snat",
        help: "which translated flows to log: snat (source NAT, masquerade), dnat (destination NAT, port forwards) or both",
    },
    ConfKey {
        name: "destination",
        kind: ConfKind::Str,
        default: "unix:/dev/log",
        help: "syslog destination: unix:PATH (local datagram socket), udp:HOST:PORT or tcp:HOST:PORT (RFC 6587 octet counting); IPv6 hosts in brackets",
    },
    ConfKey {
        name: "facility",
        kind: ConfKind::Str,
        default: "daemon",
        help: "syslog facility: kern, user, daemon, auth, authpriv, syslog, local0 .. local7",
    },
    ConfKey {
        name: "severity",
        kind: ConfKind::Str,
        default: "info",
        help: "syslog severity: emerg, alert, crit, err, warning, notice, info, debug",
    },
    ConfKey {
        name: "tag",
        kind: ConfKind::Str,
        default: "masqlog",
        help: "syslog tag (RFC 5424 APP-NAME): 1 to 32 printable ASCII characters, no space, ':' or '['",
    },
    ConfKey {
        name: "hostname",
        kind: ConfKind::Str,
        default: "",
        help: "HOSTNAME field for remote destinations; empty means the router's host name",
    },
    ConfKey {
        name: "queue_size",
        kind: ConfKind::Int,
        default: "65536",
        help: "records waiting for the syslog writer, at most (64 .. 4194304); a full queue counts the record as dropped and says so",
    },
    ConfKey {
        name: "stats_interval",
        kind: ConfKind::Int,
        default: "300",
        help: "seconds between statistics lines in ulogd's log (0 = only on SIGUSR1; at most 86400)",
    },
    ConfKey {
        name: "send_timeout_ms",
        kind: ConfKind::Int,
        default: "2000",
        help: "milliseconds one send to the destination may block the writer thread (10 .. 60000)",
    },
    ConfKey {
        name: "retry_interval_ms",
        kind: ConfKind::Int,
        default: "1000",
        help: "milliseconds between reconnection attempts to a failed destination (10 .. 600000)",
    },
];

/// The type an input key is declared with (ulogd does not check it: the
/// value is read by the type of the upstream key).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyType {
    IpAddr,
    U8,
    U16,
    U32,
    U64,
}

/// One NFCT output key that MASQLOG reads.
#[derive(Clone, Copy, Debug)]
pub struct InputKey {
    pub name: &'static str,
    pub ty: KeyType,
    /// `KEYF_OPTIONAL`: the stack still starts when the upstream lacks it.
    pub optional: bool,
}

/// Every input key, in the order of the C input keyset.
pub const INPUT_KEYS: &[InputKey] = &[
    InputKey {
        name: "oob.family",
        ty: KeyType::U8,
        optional: false,
    },
    InputKey {
        name: "orig.ip.saddr",
        ty: KeyType::IpAddr,
        optional: false,
    },
    InputKey {
        name: "orig.ip.daddr",
        ty: KeyType::IpAddr,
        optional: false,
    },
    InputKey {
        name: "reply.ip.saddr",
        ty: KeyType::IpAddr,
        optional: false,
    },
    InputKey {
        name: "reply.ip.daddr",
        ty: KeyType::IpAddr,
        optional: false,
    },
    InputKey {
        name: "orig.ip.protocol",
        ty: KeyType::U8,
        optional: false,
    },
    InputKey {
        name: "orig.l4.sport",
        ty: KeyType::U16,
        optional: true,
    },
    InputKey {
        name: "orig.l4.dport",
        ty: KeyType::U16,
        optional: true,
    },
    InputKey {
        name: "reply.l4.sport",
        ty: KeyType::U16,
        optional: true,
    },
    InputKey {
        name: "reply.l4.dport",
        ty: KeyType::U16,
        optional: true,
    },
    InputKey {
        name: "icmp.type",
        ty: KeyType::U8,
        optional: true,
    },
    InputKey {
        name: "icmp.code",
        ty: KeyType::U8,
        optional: true,
    },
    InputKey {
        name: "orig.raw.pktlen",
        ty: KeyType::U64,
        optional: true,
    },
    InputKey {
        name: "orig.raw.pktcount",
        ty: KeyType::U64,
        optional: true,
    },
    InputKey {
        name: "reply.raw.pktlen",
        ty: KeyType::U64,
        optional: true,
    },
    InputKey {
        name: "reply.raw.pktcount",
        ty: KeyType::U64,
        optional: true,
    },
    InputKey {
        name: "ct.id",
        ty: KeyType::U32,
        optional: true,
    },
    InputKey {
        name: "ct.event",
        ty: KeyType::U32,
        optional: true,
    },
    InputKey {
        name: "ct.mark",
        ty: KeyType::U32,
        optional: true,
    },
    InputKey {
        name: "flow.start.sec",
        ty: KeyType::U32,
        optional: true,
    },
    InputKey {
        name: "flow.start.usec",
        ty: KeyType::U32,
        optional: true,
    },
    InputKey {
        name: "flow.end.sec",
        ty: KeyType::U32,
        optional: true,
    },
    InputKey {
        name: "flow.end.usec",
        ty: KeyType::U32,
        optional: true,
    },
];
