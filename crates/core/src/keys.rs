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
        help: "syslog destination: unix:PATH (local datagram socket), udp:HOST:PORT, tcp:HOST:PORT (RFC 6587 octet counting) relp:HOST:PORT (RELP, every message acknowledged by the receiver; port 2514 when left out), or file:PATH (an absolute path: each message appended as one line, with the HOSTNAME field; never followed through a symlink; reopened when rotated), or ipfix+udp:HOST:PORT / ipfix+tcp:HOST:PORT (an IPFIX collector such as nfcapd or nfacctd: NAT session events per RFC 8158 instead of syslog lines; port 4739 when left out; see the ipfix_* keys), or postgresql://USER@HOST[:PORT]/DB?password_file=/PATH (rows by COPY into the schema of `masqlog db init`; the password file holds only the password and must not be readable by group or others; host=/DIR for a Unix socket), or none (no forwarding: the records are kept in the evidence store only; needs store_dir, and the spool_* keys then do nothing); IPv6 hosts in brackets",
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
        name: "flush_delay_ms",
        kind: ConfKind::Int,
        default: "5",
        help: "milliseconds the writer thread gathers records into one batch after the first one arrives, so that it wakes once per batch, not once per record (0 .. 1000; 0 sends each record as soon as it is queued); a record waits at most this long before it is sent",
    },
    ConfKey {
        name: "retry_interval_ms",
        kind: ConfKind::Int,
        default: "1000",
        help: "milliseconds between reconnection attempts to a failed destination (10 .. 600000)",
    },
    ConfKey {
        name: "spool_dir",
        kind: ConfKind::Str,
        default: "/var/spool/masqlog",
        help: "directory of the on-disk spool, which keeps records while the destination is down and replays them in order when it is back; the instance's own subdirectory (named by its id) is created in it, mode 0700",
    },
    ConfKey {
        name: "spool_size_mb",
        kind: ConfKind::Int,
        default: "256",
        help: "the spool's size limit in MiB (0 .. 1048576; 0 switches the spool off); a full spool leaves records in the queue, and a full queue drops and counts them",
    },
    ConfKey {
        name: "spool_sync_ms",
        kind: ConfKind::Int,
        default: "1000",
        help: "milliseconds between fdatasync calls on the spool (0 .. 60000; 0 syncs after every write); spooled records survive a crash of ulogd at once, a power failure once synced",
    },
    ConfKey {
        name: "seal",
        kind: ConfKind::Str,
        default: "auto",
        help: "sealing of every record with a forward-secure MAC, a writer id and a sequence number (see `masqlog keygen` and `masqlog verify`): auto (seal when seal_state exists, else log a notice and write unsealed records), on (refuse to start without it) or off",
    },
    ConfKey {
        name: "seal_state",
        kind: ConfKind::Str,
        default: "/var/lib/masqlog/seal.state",
        help: "the router's sealing state, made by `masqlog keygen` and replaced by the plugin every epoch; each instance keeps its chain mark beside it (STATE.ID.chain); its directory must not be writable by others",
    },
    ConfKey {
        name: "remote",
        kind: ConfKind::Str,
        default: "log",
        help: "how the remote endpoint is logged (RFC 6888 REQ-12): log (address and port), omit (not at all) or hash (remote_hash=, a keyed hash: equal remotes give equal values, unreadable without remote_hash_key)",
    },
    ConfKey {
        name: "remote_hash_key",
        kind: ConfKind::Str,
        default: "",
        help: "the secret key of remote=hash: 32 hexadecimal digits (128 bits); keep it, it is needed to test a given remote against the logs",
    },
    ConfKey {
        name: "ident",
        kind: ConfKind::Str,
        default: "off",
        help: "IDENT (RFC 1413) lookups of the user behind each new masqueraded TCP flow: off, plain (queries from the router; the client's identd must trust it, e.g. oidentd -P ROUTER) or transparent (queries sent from the remote server's address with IP_TRANSPARENT; any identd answers; needs CAP_NET_ADMIN and policy routing)",
    },
    ConfKey {
        name: "ident_port",
        kind: ConfKind::Int,
        default: "113",
        help: "the identd port on the clients (1 .. 65535)",
    },
    ConfKey {
        name: "ident_source",
        kind: ConfKind::Str,
        default: "",
        help: "plain mode: the router address to send queries from (the inside address the identd trusts); empty lets the kernel choose",
    },
    ConfKey {
        name: "ident_connect_timeout_ms",
        kind: ConfKind::Int,
        default: "2000",
        help: "milliseconds to wait for the identd to accept the connection (10 .. 60000)",
    },
    ConfKey {
        name: "ident_timeout_ms",
        kind: ConfKind::Int,
        default: "5000",
        help: "total milliseconds one query may take, connect to answer (10 .. 120000); past it the outcome is timeout",
    },
    ConfKey {
        name: "ident_workers",
        kind: ConfKind::Int,
        default: "4",
        help: "threads sending IDENT queries (1 .. 256)",
    },
    ConfKey {
        name: "ident_queue_size",
        kind: ConfKind::Int,
        default: "1024",
        help: "queries waiting for a worker, at most (1 .. 1048576); beyond that the outcome is queue-full and no query is sent",
    },
    ConfKey {
        name: "ident_per_host",
        kind: ConfKind::Int,
        default: "2",
        help: "queries in flight to one client at once, at most (1 .. 1024); beyond that the outcome is busy",
    },
    ConfKey {
        name: "ident_clients",
        kind: ConfKind::Str,
        default: "",
        help: "comma-separated CIDR prefixes of the clients to ask (IPv4 and IPv6); empty asks every client",
    },
    ConfKey {
        name: "ident_remote_ports",
        kind: ConfKind::Str,
        default: "",
        help: "comma-separated remote ports or ranges (e.g. 22,25,6660-6669) whose flows are asked about; empty asks about every TCP flow",
    },
    ConfKey {
        name: "ipfix_domain_id",
        kind: ConfKind::Int,
        default: "0",
        help: "with an ipfix+ destination: the observation domain id of every IPFIX message, also sent as each record's natInstanceID (0 .. 2147483647); give each router (or instance) its own so that the collector keeps their sequence numbers apart",
    },
    ConfKey {
        name: "ipfix_template_refresh_s",
        kind: ConfKind::Int,
        default: "60",
        help: "with ipfix+udp: seconds after which the templates are sent again, so that a collector started later (or one that lost them) can decode the records (1 .. 86400; RFC 7011 section 8.4); over TCP templates go once per connection",
    },
    ConfKey {
        name: "ipfix_template_refresh_msgs",
        kind: ConfKind::Int,
        default: "100",
        help: "with ipfix+udp: also send the templates again after this many messages (0 .. 1000000; 0: by time only)",
    },
    ConfKey {
        name: "ipfix_max_message",
        kind: ConfKind::Int,
        default: "1400",
        help: "with an ipfix+ destination: the largest IPFIX message in bytes, headers included (256 .. 65535); over UDP keep it below the path MTU less 48 (IPv6) or 28 (IPv4) bytes. Records are never split across messages: a user name too long for one message is cut and ends in \"...\"",
    },
    ConfKey {
        name: "store_dir",
        kind: ConfKind::Str,
        default: "",
        help: "the evidence store: a directory (created mode 0750, files 0640, owned like the directory) where every record is also kept in hourly segments, compressed and indexed when closed, so that `masqlog lookup --store DIR` answers in milliseconds; empty: no store. Works beside the forwarding destination, each with its own accounting, or alone with destination=none",
    },
    ConfKey {
        name: "store_roll_min",
        kind: ConfKind::Int,
        default: "60",
        help: "minutes a store segment stays live before it is closed, compressed and indexed (1 .. 1440; aligned: 60 rolls on the hour)",
    },
    ConfKey {
        name: "store_roll_mb",
        kind: ConfKind::Int,
        default: "1024",
        help: "MiB after which a live store segment is closed early (1 .. 65536)",
    },
    ConfKey {
        name: "store_keep_days",
        kind: ConfKind::Int,
        default: "180",
        help: "days closed store segments are kept; older ones are deleted (1 .. 36500). How long records must and may be kept is a legal question: set it to what applies to you",
    },
    ConfKey {
        name: "store_max_mb",
        kind: ConfKind::Int,
        default: "0",
        help: "the store's size limit in MiB: the oldest closed segments are deleted while it is larger (0 .. 1073741824; 0: no limit, only store_keep_days)",
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
