//! The plugin's configuration: values read from a ulogd.conf section,
//! validated against the key table in `keys.rs` into a typed `Config`.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;

use crate::ident::{Mode, PoolConfig, QueryConfig};
use crate::keys::{CONF_KEYS, ConfKind};
use crate::record::NatFilter;

/// A config value as ulogd stored it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RawValue {
    Str(String),
    Int(i64),
}

impl fmt::Display for RawValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RawValue::Str(s) => write!(f, "{s:?}"),
            RawValue::Int(i) => write!(f, "{i}"),
        }
    }
}

/// A config value that cannot be used: names the key, the value and what the
/// key allows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("config key `{key}` = {value}: {allowed}")]
pub struct ConfigError {
    pub key: &'static str,
    pub value: String,
    pub allowed: String,
}

/// The line format (config key `format`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Format {
    #[default]
    Text,
    Rfc5424,
    Json,
}

/// Where syslog lines go (config key `destination`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Destination {
    /// A local datagram socket such as `/dev/log`.
    Unix(PathBuf),
    /// Remote syslog over UDP (RFC 5426).
    Udp(SocketAddr),
    /// Remote syslog over TCP with octet counting (RFC 6587).
    Tcp(SocketAddr),
    /// Remote syslog over RELP: every message is acknowledged.
    Relp(SocketAddr),
    /// A file the plugin appends to, one message a line.
    File(PathBuf),
    /// An IPFIX collector over UDP (RFC 7011): NAT events (RFC 8158)
    /// instead of syslog lines.
    IpfixUdp(SocketAddr),
    /// An IPFIX collector over TCP.
    IpfixTcp(SocketAddr),
    /// A PostgreSQL database: batches of rows by `COPY` (see
    /// [`PgTarget`]).
    Postgres(PgTarget),
    /// No forwarding destination (`destination=none`): the records are
    /// kept in the evidence store only (`store_dir` must be set).
    None,
}

/// A PostgreSQL destination: `postgresql://USER@HOST[:PORT]/DB[?...]`
/// (libpq's URL form; `host=/DIR` for a Unix socket), with the password in
/// a file of its own (`password_file=/PATH`, never in the URL).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PgTarget {
    /// The URL without `password_file`.
    pub url: String,
    /// A file holding only the password (one line), readable by ulogd's
    /// user alone.
    pub password_file: Option<PathBuf>,
}

impl PgTarget {
    /// The password from `password_file` (`None` without one): a regular
    /// file, not a symlink, that neither group nor others may read or
    /// write, owned by the reading user (or read by root); its first line.
    /// Its contents never appear in an error.
    pub fn read_password(&self) -> Result<Option<String>, String> {
        use std::io::Read as _;
        use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
        let Some(path) = &self.password_file else {
            return Ok(None);
        };
        let shown = path.display();
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK)
            .open(path)
            .map_err(|e| {
                if e.raw_os_error() == Some(libc::ELOOP) {
                    format!("password file {shown} is a symlink, which is never followed: name the file itself")
                } else {
                    format!("password file {shown}: {e}")
                }
            })?;
        let m = file
            .metadata()
            .map_err(|e| format!("password file {shown}: {e}"))?;
        if !m.file_type().is_file() {
            return Err(format!("password file {shown} is not a regular file"));
        }
        if m.mode() & 0o077 != 0 {
            return Err(format!(
                "password file {shown} has mode {:04o}: only its owner may read it (chmod 0600 {shown}, owned by the user ulogd runs as)",
                m.mode() & 0o7777
            ));
        }
        // /proc/self belongs to the effective user.
        let euid = std::fs::metadata("/proc/self")
            .map(|m| m.uid())
            .unwrap_or(0);
        if m.uid() != euid && euid != 0 {
            return Err(format!(
                "password file {shown} belongs to uid {}, not to the reading user (uid {euid}): chown it",
                m.uid()
            ));
        }
        let mut s = String::new();
        file.take(4096)
            .read_to_string(&mut s)
            .map_err(|e| format!("password file {shown}: {e}"))?;
        match s.lines().next() {
            Some(l) if !l.is_empty() => Ok(Some(l.to_string())),
            _ => Err(format!("password file {shown} is empty")),
        }
    }

    /// Reads `postgresql://` and `postgres://` URLs; `None` for anything
    /// else, a password in the URL, or a relative `password_file`.
    pub fn parse(s: &str) -> Option<PgTarget> {
        let rest = s
            .strip_prefix("postgresql://")
            .or_else(|| s.strip_prefix("postgres://"))?;
        if s.bytes().any(|b| b.is_ascii_control() || b == b' ') {
            return None;
        }
        let (authority, _) = rest.split_once(['/', '?']).unwrap_or((rest, ""));
        // `user:password@`: a password in ulogd.conf is refused.
        if let Some((userinfo, _)) = authority.rsplit_once('@')
            && userinfo.contains(':')
        {
            return None;
        }
        let (base, query) = match s.split_once('?') {
            Some((b, q)) => (b, Some(q)),
            None => (s, None),
        };
        let mut password_file = None;
        let mut kept = Vec::new();
        for pair in query.into_iter().flat_map(|q| q.split('&')) {
            match pair.split_once('=') {
                Some(("password_file", v)) => {
                    if !valid_file_path(v) || password_file.is_some() {
                        return None;
                    }
                    password_file = Some(PathBuf::from(v));
                }
                Some(("password", _)) => return None,
                _ => kept.push(pair),
            }
        }
        let url = if kept.is_empty() {
            base.to_string()
        } else {
            format!("{base}?{}", kept.join("&"))
        };
        Some(PgTarget { url, password_file })
    }
}

impl Destination {
    /// Whether the message carries the HOSTNAME field: a remote host, or a
    /// file (which a collector may gather from many routers).
    pub fn is_remote(&self) -> bool {
        !matches!(self, Destination::Unix(_) | Destination::None)
    }

    /// Whether records are forwarded anywhere besides the store.
    pub fn forwards(&self) -> bool {
        !matches!(self, Destination::None)
    }

    /// Whether records go out as IPFIX, not as syslog lines.
    pub fn is_ipfix(&self) -> bool {
        matches!(self, Destination::IpfixUdp(_) | Destination::IpfixTcp(_))
    }
}

impl fmt::Display for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Destination::Unix(p) => write!(f, "unix:{}", p.display()),
            Destination::Udp(a) => write!(f, "udp:{a}"),
            Destination::Tcp(a) => write!(f, "tcp:{a}"),
            Destination::Relp(a) => write!(f, "relp:{a}"),
            Destination::File(p) => write!(f, "file:{}", p.display()),
            Destination::IpfixUdp(a) => write!(f, "ipfix+udp:{a}"),
            Destination::IpfixTcp(a) => write!(f, "ipfix+tcp:{a}"),
            Destination::Postgres(t) => f.write_str(&t.url),
            Destination::None => f.write_str("none"),
        }
    }
}

/// A prefix of `ident_clients` (`10.99.0.0/24`, `fd00::/8`), or a bare
/// address for a host prefix. Host bits may be set: `10.99.0.5/24` is the
/// network 10.99.0.0/24.
fn parse_client_prefix(s: &str) -> Option<IpNet> {
    let (a, l) = match s.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (s, None),
    };
    let addr: IpAddr = a.parse().ok()?;
    let len = match l {
        Some(l) if !l.is_empty() && l.bytes().all(|b| b.is_ascii_digit()) => l.parse().ok()?,
        Some(_) => return None,
        None => IpNet::from(addr).max_prefix_len(),
    };
    IpNet::new(addr, len).ok()
}

/// IDENT lookups (config keys `ident*`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdentConfig {
    pub pool: PoolConfig,
    /// Clients to ask; empty: every client.
    pub clients: Vec<IpNet>,
    /// Remote port ranges to ask about; empty: every port.
    pub remote_ports: Vec<(u16, u16)>,
}

impl IdentConfig {
    /// Whether a flow from `client` to remote port `port` is to be asked about.
    pub fn wants(&self, client: IpAddr, port: u16) -> bool {
        (self.clients.is_empty() || self.clients.iter().any(|c| c.contains(&client)))
            && (self.remote_ports.is_empty()
                || self
                    .remote_ports
                    .iter()
                    .any(|(lo, hi)| (*lo..=*hi).contains(&port)))
    }
}

fn parse_hex_key(s: &str) -> Option<[u8; 16]> {
    let b = s.as_bytes();
    if b.len() != 32 {
        return None;
    }
    let mut key = [0u8; 16];
    for (i, pair) in b.chunks_exact(2).enumerate() {
        let hex = std::str::from_utf8(pair).ok()?;
        key[i] = u8::from_str_radix(hex, 16).ok()?;
    }
    Some(key)
}

fn parse_port_ranges(s: &str) -> Option<Vec<(u16, u16)>> {
    s.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (lo, hi) = p.split_once('-').unwrap_or((p, p));
            let lo: u16 = lo.trim().parse().ok()?;
            let hi: u16 = hi.trim().parse().ok()?;
            (lo >= 1 && lo <= hi).then_some((lo, hi))
        })
        .collect()
}

/// The validated configuration of one MASQLOG instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    pub format: Format,
    pub nat: NatFilter,
    pub destination: Destination,
    /// Syslog facility number (0 .. 23).
    pub facility: u8,
    /// Syslog severity number (0 .. 7).
    pub severity: u8,
    pub tag: String,
    /// `None`: use the system's host name.
    pub hostname: Option<String>,
    pub queue_size: usize,
    /// `None`: statistics only on SIGUSR1.
    pub stats_interval: Option<Duration>,
    pub send_timeout: Duration,
    /// How long the writer gathers records after the first of a batch
    /// (`flush_delay_ms`; zero: no wait).
    pub flush_delay: Duration,
    pub retry_interval: Duration,
    /// `None`: IDENT lookups are off.
    pub ident: Option<IdentConfig>,
    /// How the remote endpoint is written (config keys `remote`,
    /// `remote_hash_key`).
    pub remote: RemoteMode,
    /// `None`: no spool (`spool_size_mb=0`).
    pub spool: Option<SpoolConfig>,
    pub seal: SealConfig,
    /// IPFIX export (config keys `ipfix_*`; used with an `ipfix+` destination).
    pub ipfix: IpfixConfig,
    /// `None`: no evidence store (`store_dir` empty).
    pub store: Option<crate::store::StoreConfig>,
}

/// IPFIX export settings (config keys `ipfix_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpfixConfig {
    /// Observation domain id of every message, and the records' natInstanceID.
    pub domain_id: u32,
    /// Templates are sent again after this long (UDP).
    pub template_refresh: Duration,
    /// ... or after this many messages (UDP); 0: by time only.
    pub template_refresh_messages: u32,
    /// The largest message in bytes (headers included).
    pub max_message: usize,
}

/// Sealing (config keys `seal`, `seal_state`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SealConfig {
    pub mode: SealMode,
    /// The sealing state (`masqlog keygen`).
    pub state: PathBuf,
    /// The instance that seals (ulogd's id of its stack entry, `masq1`):
    /// the plugin sets it, as it does the spool's subdirectory.
    pub instance: String,
}

/// Whether records are sealed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum SealMode {
    /// When the sealing state exists.
    #[default]
    Auto,
    /// Always: no start without the sealing state.
    On,
    Off,
}

/// The on-disk spool (config keys `spool_dir`, `spool_size_mb`,
/// `spool_sync_ms`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpoolConfig {
    /// The directory as configured; the plugin adds the instance's own
    /// subdirectory (see [`SpoolConfig::for_instance`]).
    pub dir: PathBuf,
    pub max_bytes: u64,
    pub sync: Duration,
}

impl SpoolConfig {
    /// The spool of the instance `id`: its own subdirectory.
    pub fn for_instance(&self, id: &str) -> SpoolConfig {
        SpoolConfig {
            dir: self.dir.join(id),
            ..self.clone()
        }
    }
}

/// How the remote endpoint is logged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum RemoteMode {
    #[default]
    Log,
    Omit,
    /// A keyed hash with this 128-bit key.
    Hash([u8; 16]),
}

/// The value of every key when ulogd.conf sets none, in `CONF_KEYS` order.
pub fn default_values() -> Vec<RawValue> {
    CONF_KEYS
        .iter()
        .map(|k| match k.kind {
            ConfKind::Str => RawValue::Str(k.default.to_string()),
            ConfKind::Int => RawValue::Int(k.default.parse().unwrap_or(0)),
        })
        .collect()
}

impl Default for Config {
    fn default() -> Self {
        Config::from_values(&default_values()).expect("the defaults in keys.rs are valid")
    }
}

const FACILITIES: &[(&str, u8)] = &[
    ("kern", 0),
    ("user", 1),
    ("mail", 2),
    ("daemon", 3),
    ("auth", 4),
    ("syslog", 5),
    ("lpr", 6),
    ("news", 7),
    ("uucp", 8),
    ("cron", 9),
    ("authpriv", 10),
    ("ftp", 11),
    ("local0", 16),
    ("local1", 17),
    ("local2", 18),
    ("local3", 19),
    ("local4", 20),
    ("local5", 21),
    ("local6", 22),
    ("local7", 23),
];

const SEVERITIES: &[(&str, u8)] = &[
    ("emerg", 0),
    ("alert", 1),
    ("crit", 2),
    ("err", 3),
    ("warning", 4),
    ("notice", 5),
    ("info", 6),
    ("debug", 7),
];

fn names(table: &[(&str, u8)]) -> String {
    table.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
}

struct Reader<'a> {
    values: &'a [RawValue],
}

impl Reader<'_> {
    fn index(name: &str) -> usize {
        CONF_KEYS
            .iter()
            .position(|k| k.name == name)
            .expect("key is in keys.rs")
    }

    fn err(key: &'static str, value: &RawValue, allowed: impl Into<String>) -> ConfigError {
        ConfigError {
            key,
            value: value.to_string(),
            allowed: allowed.into(),
        }
    }

    fn string(&self, key: &'static str) -> Result<&str, ConfigError> {
        match &self.values[Self::index(key)] {
            RawValue::Str(s) => Ok(s.as_str()),
            v => Err(Self::err(key, v, "a string")),
        }
    }

    fn int(&self, key: &'static str, min: i64, max: i64) -> Result<i64, ConfigError> {
        match &self.values[Self::index(key)] {
            RawValue::Int(i) if (min..=max).contains(i) => Ok(*i),
            v => Err(Self::err(key, v, format!("an integer from {min} to {max}"))),
        }
    }

    fn choice<T: Copy>(&self, key: &'static str, table: &[(&str, T)]) -> Result<T, ConfigError> {
        let s = self.string(key)?;
        table
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(s))
            .map(|(_, v)| *v)
            .ok_or_else(|| {
                let all: Vec<&str> = table.iter().map(|(n, _)| *n).collect();
                Self::err(
                    key,
                    &RawValue::Str(s.into()),
                    format!("one of {}", all.join(", ")),
                )
            })
    }
}

/// The conntrack sysctls (under `net.netfilter.`) the records depend on,
/// and what a record lacks while one is 0.
pub const CONNTRACK_SYSCTLS: &[(&str, &str)] = &[
    ("nf_conntrack_acct", "end lines carry 0 packets and 0 bytes"),
    (
        "nf_conntrack_timestamp",
        "end lines lack the kernel's start and end times",
    ),
];

/// How to turn a conntrack sysctl on now and after a reboot.
pub fn sysctl_fix(name: &str) -> String {
    format!(
        "run `sysctl -w net.netfilter.{name}=1` and put net.netfilter.{name}=1 into /etc/sysctl.d/90-masqlog.conf"
    )
}

/// The warnings for conntrack sysctls that are off, from `read` (the
/// value of `net/netfilter/NAME` under `/proc/sys`). One that cannot be
/// read (nf_conntrack not loaded yet) gives none.
pub fn sysctls_off(read: impl Fn(&str) -> std::io::Result<String>) -> Vec<String> {
    CONNTRACK_SYSCTLS
        .iter()
        .filter_map(|(name, what)| {
            let v = read(&format!("net/netfilter/{name}")).ok()?;
            (v.trim() == "0")
                .then(|| format!("net.netfilter.{name} is 0: {what}; {}", sysctl_fix(name)))
        })
        .collect()
}

/// Parses `HOST:PORT` where HOST is an IPv4 literal or a bracketed IPv6
/// literal; a bare address gets `default_port`.
fn parse_socket_addr(s: &str, default_port: u16) -> Option<SocketAddr> {
    if let Ok(a) = s.parse::<SocketAddr>() {
        return (a.port() != 0).then_some(a);
    }
    s.parse::<IpAddr>()
        .ok()
        .map(|ip| SocketAddr::new(ip, default_port))
}

/// Parses the `destination` key.
pub fn parse_destination(s: &str) -> Option<Destination> {
    if s == "none" {
        return Some(Destination::None);
    }
    let (scheme, rest) = s.split_once(':')?;
    match scheme {
        "unix" if rest.starts_with('/') && rest.len() < 108 => {
            Some(Destination::Unix(PathBuf::from(rest)))
        }
        "udp" => parse_socket_addr(rest, 514).map(Destination::Udp),
        "tcp" => parse_socket_addr(rest, 514).map(Destination::Tcp),
        // no assigned port; 2514 is what rsyslog's documentation uses
        "relp" => parse_socket_addr(rest, 2514).map(Destination::Relp),
        "file" if valid_file_path(rest) => Some(Destination::File(PathBuf::from(rest))),
        // 4739: IANA's IPFIX port
        "ipfix+udp" => parse_socket_addr(rest, 4739).map(Destination::IpfixUdp),
        "ipfix+tcp" => parse_socket_addr(rest, 4739).map(Destination::IpfixTcp),
        "postgresql" | "postgres" => PgTarget::parse(s).map(Destination::Postgres),
        _ => None,
    }
}

/// An absolute path to a file: no `.` or `..` component, not a directory.
fn valid_file_path(s: &str) -> bool {
    s.starts_with('/')
        && !s.ends_with('/')
        && s.len() < 4096
        && !s.bytes().any(|b| b.is_ascii_control())
        && !s.split('/').any(|c| c == "." || c == "..")
}

fn valid_tag(s: &str) -> bool {
    (1..=32).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_graphic() && b != b':' && b != b'[' && b != b']')
}

/// A HOSTNAME for the syslog header: printable ASCII without spaces, and
/// nothing a reader could take for the start of a masqlog body or the end
/// of the header (`masqlog`, quotes, brackets, braces, `=`), so that
/// `lookup` reads the plugin's own lines as the plugin wrote them.
fn valid_hostname(s: &str) -> bool {
    (1..=255).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_graphic() && !b"\"[]{}=".contains(&b))
        && !s.to_ascii_lowercase().contains("masqlog")
}

impl Config {
    /// The `spool_dir` as configured, also when the spool is off
    /// (`spool_size_mb=0`): where a spool from an earlier run may be left.
    /// `None` when it is not an absolute path.
    pub fn spool_root(values: &[RawValue]) -> Option<PathBuf> {
        let r = Reader { values };
        r.string("spool_dir")
            .ok()
            .filter(|d| d.starts_with('/'))
            .map(PathBuf::from)
    }

    /// Validates the values of every key in `CONF_KEYS` order.
    pub fn from_values(values: &[RawValue]) -> Result<Config, ConfigError> {
        assert_eq!(values.len(), CONF_KEYS.len(), "one value per key");
        let r = Reader { values };
        let format = r.choice(
            "format",
            &[
                ("text", Format::Text),
                ("rfc5424", Format::Rfc5424),
                ("json", Format::Json),
            ],
        )?;
        let nat = r.choice(
            "nat",
            &[
                ("snat", NatFilter::Snat),
                ("dnat", NatFilter::Dnat),
                ("both", NatFilter::Both),
            ],
        )?;
        let dest = r.string("destination")?;
        let destination = parse_destination(dest).ok_or_else(|| ConfigError {
            key: "destination",
            value: format!("{dest:?}"),
            allowed: "unix:/ABSOLUTE/PATH, udp:IP:PORT, tcp:IP:PORT, relp:IP:PORT, ipfix+udp:IP:PORT, ipfix+tcp:IP:PORT (IPv6 as [ADDR]:PORT), file:/ABSOLUTE/PATH, postgresql://USER@HOST/DB?password_file=/PATH (no password in the URL), or none (with store_dir: the store only)".into(),
        })?;
        let facility = r.choice("facility", FACILITIES).map_err(|e| ConfigError {
            allowed: format!("one of {}", names(FACILITIES)),
            ..e
        })?;
        let severity = r.choice("severity", SEVERITIES)?;
        let tag = r.string("tag")?;
        if !valid_tag(tag) {
            return Err(ConfigError {
                key: "tag",
                value: format!("{tag:?}"),
                allowed: "1 to 32 printable ASCII characters without space, ':', '[' or ']'".into(),
            });
        }
        let hostname = r.string("hostname")?;
        if !hostname.is_empty() && !valid_hostname(hostname) {
            return Err(ConfigError {
                key: "hostname",
                value: format!("{hostname:?}"),
                allowed: "empty (the system's host name) or printable ASCII without spaces, quotes, brackets, braces, '=' or the word masqlog".into(),
            });
        }
        let queue_size = r.int("queue_size", 64, 4_194_304)? as usize;
        let stats = r.int("stats_interval", 0, 86_400)? as u64;
        let send_timeout = r.int("send_timeout_ms", 10, 60_000)? as u64;
        let flush_delay = r.int("flush_delay_ms", 0, 1000)? as u64;
        let retry = r.int("retry_interval_ms", 10, 600_000)? as u64;
        let ident = Self::ident(&r)?;
        let remote = Self::remote(&r)?;
        // The spool keeps records for a forwarding destination; without one
        // (`none`: the store alone) its directory holds the disk lane only,
        // where records wait while the writer is behind.
        let spool = Self::spool(&r)?;
        let mut seal = Self::seal(&r)?;
        let ipfix = Self::ipfix(&r)?;
        if destination.is_ipfix() {
            // Sealing chains text lines; an IPFIX record has none.
            if seal.mode == SealMode::On {
                return Err(ConfigError {
                    key: "seal",
                    value: "\"on\"".into(),
                    allowed: format!(
                        "auto or off with destination {destination}: IPFIX records are not sealed"
                    ),
                });
            }
            seal.mode = SealMode::Off;
        }
        let store = Self::store(&r)?;
        if store.is_some() && destination.is_ipfix() {
            // The store keeps the plugin's text lines; the records of an
            // IPFIX instance are binary.
            return Err(ConfigError {
                key: "store_dir",
                value: format!("{:?}", r.string("store_dir")?),
                allowed: format!(
                    "empty with destination {destination}: the store keeps text lines, an IPFIX instance makes none (give the store an instance of its own, in the same stack or another)"
                ),
            });
        }
        if store.is_none() && !destination.forwards() {
            return Err(ConfigError {
                key: "destination",
                value: "\"none\"".into(),
                allowed: "none only together with store_dir=/DIR (the records must go somewhere): set store_dir, or name a destination such as unix:/dev/log".into(),
            });
        }
        Ok(Config {
            format,
            nat,
            destination,
            facility,
            severity,
            tag: tag.to_string(),
            hostname: (!hostname.is_empty()).then(|| hostname.to_string()),
            queue_size,
            stats_interval: (stats > 0).then(|| Duration::from_secs(stats)),
            send_timeout: Duration::from_millis(send_timeout),
            flush_delay: Duration::from_millis(flush_delay),
            retry_interval: Duration::from_millis(retry),
            ident,
            remote,
            spool,
            seal,
            ipfix,
            store,
        })
    }

    fn ipfix(r: &Reader<'_>) -> Result<IpfixConfig, ConfigError> {
        let domain_id = r.int("ipfix_domain_id", 0, i64::from(i32::MAX))? as u32;
        let refresh = r.int("ipfix_template_refresh_s", 1, 86_400)? as u64;
        let messages = r.int("ipfix_template_refresh_msgs", 0, 1_000_000)? as u32;
        let max_message = r.int("ipfix_max_message", 256, 65_535)? as usize;
        Ok(IpfixConfig {
            domain_id,
            template_refresh: Duration::from_secs(refresh),
            template_refresh_messages: messages,
            max_message,
        })
    }

    fn seal(r: &Reader<'_>) -> Result<SealConfig, ConfigError> {
        let mode = r.choice(
            "seal",
            &[
                ("auto", SealMode::Auto),
                ("on", SealMode::On),
                ("off", SealMode::Off),
            ],
        )?;
        let state = r.string("seal_state")?;
        if !state.starts_with('/')
            || state.len() > 200
            || state.contains('\n')
            || state.ends_with('/')
        {
            return Err(ConfigError {
                key: "seal_state",
                value: format!("{state:?}"),
                allowed: "an absolute path of a file, at most 200 bytes".into(),
            });
        }
        Ok(SealConfig {
            mode,
            state: PathBuf::from(state),
            instance: "masqlog".into(),
        })
    }

    fn store(r: &Reader<'_>) -> Result<Option<crate::store::StoreConfig>, ConfigError> {
        let dir = r.string("store_dir")?;
        let roll_min = r.int("store_roll_min", 1, 1440)?;
        let roll_mb = r.int("store_roll_mb", 1, 65_536)?;
        let keep_days = r.int("store_keep_days", 1, 36_500)?;
        let max_mb = r.int("store_max_mb", 0, 1 << 30)?;
        if dir.is_empty() {
            return Ok(None);
        }
        if !dir.starts_with('/') || dir.len() > 200 || dir.contains('\n') {
            return Err(ConfigError {
                key: "store_dir",
                value: format!("{dir:?}"),
                allowed: "an absolute path of at most 200 bytes (or empty for no store)".into(),
            });
        }
        Ok(Some(crate::store::StoreConfig {
            dir: PathBuf::from(dir),
            roll: Duration::from_secs(roll_min as u64 * 60),
            roll_bytes: (roll_mb as u64) << 20,
            keep: Duration::from_secs(keep_days as u64 * 86_400),
            max_bytes: (max_mb as u64) << 20,
        }))
    }

    fn spool(r: &Reader<'_>) -> Result<Option<SpoolConfig>, ConfigError> {
        let dir = r.string("spool_dir")?;
        let size = r.int("spool_size_mb", 0, 1_048_576)?;
        let sync = r.int("spool_sync_ms", 0, 60_000)?;
        if size == 0 {
            return Ok(None);
        }
        if !dir.starts_with('/') || dir.len() > 200 || dir.contains('\n') {
            return Err(ConfigError {
                key: "spool_dir",
                value: format!("{dir:?}"),
                allowed: "an absolute path of at most 200 bytes (or spool_size_mb=0 for no spool)"
                    .into(),
            });
        }
        Ok(Some(SpoolConfig {
            dir: PathBuf::from(dir),
            max_bytes: (size as u64) << 20,
            sync: Duration::from_millis(sync as u64),
        }))
    }

    fn remote(r: &Reader<'_>) -> Result<RemoteMode, ConfigError> {
        #[derive(Clone, Copy)]
        enum M {
            Log,
            Omit,
            Hash,
        }
        let mode = r.choice(
            "remote",
            &[("log", M::Log), ("omit", M::Omit), ("hash", M::Hash)],
        )?;
        let key = r.string("remote_hash_key")?;
        let parsed = parse_hex_key(key);
        match (mode, parsed) {
            (M::Log, _) => Ok(RemoteMode::Log),
            (M::Omit, _) => Ok(RemoteMode::Omit),
            (M::Hash, Some(k)) => Ok(RemoteMode::Hash(k)),
            (M::Hash, None) => Err(ConfigError {
                key: "remote_hash_key",
                // the key is a secret: never echo it
                value: if key.is_empty() {
                    "\"\"".into()
                } else {
                    format!("({} characters, not shown)", key.len())
                },
                allowed: "32 hexadecimal digits (a 128-bit secret; e.g. from `head -c16 /dev/urandom | xxd -p`), needed with remote=hash".into(),
            }),
        }
    }

    fn ident(r: &Reader<'_>) -> Result<Option<IdentConfig>, ConfigError> {
        #[derive(Clone, Copy)]
        enum M {
            Off,
            Plain,
            Transparent,
        }
        let mode = r.choice(
            "ident",
            &[
                ("off", M::Off),
                ("plain", M::Plain),
                ("transparent", M::Transparent),
            ],
        )?;
        let port = r.int("ident_port", 1, 65_535)? as u16;
        let source = r.string("ident_source")?;
        let source = if source.is_empty() {
            None
        } else {
            Some(source.parse::<IpAddr>().map_err(|_| ConfigError {
                key: "ident_source",
                value: format!("{source:?}"),
                allowed: "empty or an IPv4 or IPv6 address of the router".into(),
            })?)
        };
        let connect = r.int("ident_connect_timeout_ms", 10, 60_000)? as u64;
        let deadline = r.int("ident_timeout_ms", 10, 120_000)? as u64;
        let workers = r.int("ident_workers", 1, 256)? as usize;
        let queue_size = r.int("ident_queue_size", 1, 1_048_576)? as usize;
        let per_host = r.int("ident_per_host", 1, 1024)? as usize;
        let clients_s = r.string("ident_clients")?;
        let clients = clients_s
            .split(',')
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map(parse_client_prefix)
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| ConfigError {
                key: "ident_clients",
                value: format!("{clients_s:?}"),
                allowed: "empty or comma-separated prefixes such as 10.99.0.0/24,fd99::/64".into(),
            })?;
        let ports_s = r.string("ident_remote_ports")?;
        let remote_ports = parse_port_ranges(ports_s).ok_or_else(|| ConfigError {
            key: "ident_remote_ports",
            value: format!("{ports_s:?}"),
            allowed: "empty or comma-separated ports and ranges such as 22,25,6660-6669".into(),
        })?;
        let mode = match mode {
            M::Off => return Ok(None),
            M::Plain => Mode::Plain { source },
            M::Transparent => Mode::Transparent,
        };
        Ok(Some(IdentConfig {
            pool: PoolConfig {
                workers,
                queue_size,
                per_host,
                query: QueryConfig {
                    mode,
                    port,
                    connect_timeout: Duration::from_millis(connect),
                    deadline: Duration::from_millis(deadline),
                    ..QueryConfig::default()
                },
            },
            clients,
            remote_ports,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> Vec<RawValue> {
        default_values()
    }

    fn with(key: &str, v: RawValue) -> Result<Config, ConfigError> {
        let mut vals = defaults();
        vals[CONF_KEYS.iter().position(|k| k.name == key).unwrap()] = v;
        Config::from_values(&vals)
    }

    #[test]
    fn defaults_are_valid() {
        let c = Config::default();
        assert_eq!(c.format, Format::Text);
        assert_eq!(c.destination, Destination::Unix("/dev/log".into()));
        assert_eq!(c.facility, 3);
        assert_eq!(c.severity, 6);
        assert_eq!(c.hostname, None);
        assert_eq!(c.stats_interval, Some(Duration::from_secs(300)));
    }

    #[test]
    fn unknown_format_names_key_value_and_choices() {
        let e = with("format", RawValue::Str("xml".into())).unwrap_err();
        assert_eq!(e.key, "format");
        let msg = e.to_string();
        assert!(msg.contains("\"xml\""), "{msg}");
        assert!(msg.contains("text, rfc5424, json"), "{msg}");
    }

    #[test]
    fn postgres_destinations_parse_and_keep_the_password_out() {
        let t = PgTarget::parse(
            "postgresql://gw1@db.example:5433/masqlog?sslmode=disable&password_file=/etc/masqlog/pg.pass",
        )
        .unwrap();
        assert_eq!(
            t.url,
            "postgresql://gw1@db.example:5433/masqlog?sslmode=disable"
        );
        assert_eq!(t.password_file, Some(PathBuf::from("/etc/masqlog/pg.pass")));
        let t = PgTarget::parse("postgres://gw1@%2Frun%2Fpostgresql/masqlog").unwrap();
        assert_eq!(t.password_file, None);
        assert_eq!(
            parse_destination("postgresql://gw1@[2001:db8::5]/masqlog"),
            Some(Destination::Postgres(PgTarget {
                url: "postgresql://gw1@[2001:db8::5]/masqlog".into(),
                password_file: None
            }))
        );
        for bad in [
            "postgresql://gw1:secret@db/masqlog",
            "postgresql://gw1@db/masqlog?password=secret",
            "postgresql://gw1@db/masqlog?password_file=relative",
            "postgresql://gw1@db/mas qlog",
            "mysql://gw1@db/masqlog",
        ] {
            assert_eq!(parse_destination(bad), None, "{bad}");
        }
    }

    /// The shipped example's destination, as ulogd hands it over (the
    /// quotes removed), is a PostgreSQL destination.
    #[test]
    fn the_postgresql_example_names_a_postgresql_destination() {
        let conf = crate::ulogd_conf::UlogdConf::from_text(include_str!(
            "../../../ulogd-conf/masqlog-postgresql.conf"
        ));
        let v = conf.get("masq1", "destination").unwrap();
        let v = v.trim_matches('"');
        assert!(v.len() <= 224, "ulogd keeps 224 bytes of a string: {v}");
        let Some(Destination::Postgres(t)) = parse_destination(v) else {
            panic!("{v}")
        };
        assert_eq!(
            t.password_file,
            Some(PathBuf::from("/etc/ulogd-masqlog.pgpass"))
        );
    }

    #[test]
    fn destinations_parse() {
        let c = with(
            "destination",
            RawValue::Str("tcp:[2001:db8::1]:6514".into()),
        )
        .unwrap();
        assert_eq!(
            c.destination,
            Destination::Tcp("[2001:db8::1]:6514".parse().unwrap())
        );
        let c = with(
            "destination",
            RawValue::Str("file:/var/log/masqlog/flows.log".into()),
        )
        .unwrap();
        assert_eq!(
            c.destination,
            Destination::File("/var/log/masqlog/flows.log".into())
        );
        assert!(c.destination.is_remote());
        let c = with("destination", RawValue::Str("udp:192.0.2.9".into())).unwrap();
        assert_eq!(
            c.destination,
            Destination::Udp("192.0.2.9:514".parse().unwrap())
        );
        for bad in [
            "tcp:loghost:514",
            "udp:1.2.3.4:0",
            "unix:relative",
            "file:relative.log",
            "file:/var/log/",
            "file:/var/log/../etc/shadow",
            "tcp:1.2.3.4:99999",
        ] {
            let e = with("destination", RawValue::Str(bad.into())).unwrap_err();
            assert_eq!(e.key, "destination", "{bad}");
        }
    }

    #[test]
    fn ipfix_destinations_parse_with_ipv6_and_the_default_port() {
        let c = with(
            "destination",
            RawValue::Str("ipfix+udp:[2001:db8::9]:2055".into()),
        )
        .unwrap();
        assert_eq!(
            c.destination,
            Destination::IpfixUdp("[2001:db8::9]:2055".parse().unwrap())
        );
        assert!(c.destination.is_ipfix());
        assert_eq!(c.destination.to_string(), "ipfix+udp:[2001:db8::9]:2055");
        let c = with("destination", RawValue::Str("ipfix+tcp:192.0.2.9".into())).unwrap();
        assert_eq!(
            c.destination,
            Destination::IpfixTcp("192.0.2.9:4739".parse().unwrap())
        );
        for bad in [
            "ipfix:192.0.2.9:4739",
            "ipfix+sctp:192.0.2.9",
            "ipfix+udp:collector:4739",
        ] {
            let e = with("destination", RawValue::Str(bad.into())).unwrap_err();
            assert_eq!(e.key, "destination", "{bad}");
            assert!(e.to_string().contains("ipfix+udp:IP:PORT"), "{e}");
        }
    }

    #[test]
    fn ipfix_keys_are_range_checked_and_name_the_key() {
        let c = Config::default();
        assert_eq!(c.ipfix.domain_id, 0);
        assert_eq!(c.ipfix.max_message, 1400);
        assert_eq!(c.ipfix.template_refresh, Duration::from_secs(60));
        for (key, bad) in [
            ("ipfix_domain_id", -1),
            ("ipfix_domain_id", 1 << 31),
            ("ipfix_max_message", 255),
            ("ipfix_max_message", 65_536),
            ("ipfix_template_refresh_s", 0),
            ("ipfix_template_refresh_msgs", 1_000_001),
        ] {
            let e = with(key, RawValue::Int(bad)).unwrap_err();
            assert_eq!(e.key, key);
            assert!(e.to_string().contains("an integer from"), "{e}");
        }
        let c = with("ipfix_max_message", RawValue::Int(256)).unwrap();
        assert_eq!(c.ipfix.max_message, 256);
    }

    #[test]
    fn ipfix_refuses_a_store_dir() {
        let mut vals = defaults();
        let set = |vals: &mut Vec<RawValue>, k: &str, v: &str| {
            vals[CONF_KEYS.iter().position(|c| c.name == k).unwrap()] = RawValue::Str(v.into());
        };
        set(&mut vals, "destination", "ipfix+udp:127.0.0.1:4739");
        set(&mut vals, "store_dir", "/var/lib/masqlog/store");
        let e = Config::from_values(&vals).unwrap_err();
        assert_eq!(e.key, "store_dir", "{e}");
        assert!(e.to_string().contains("text lines"), "{e}");
        set(&mut vals, "destination", "udp:127.0.0.1:514");
        assert!(Config::from_values(&vals).unwrap().store.is_some());
    }

    #[test]
    fn destination_none_keeps_the_store_only_and_needs_a_store_dir() {
        let mut vals = defaults();
        let set = |vals: &mut Vec<RawValue>, k: &str, v: &str| {
            vals[CONF_KEYS.iter().position(|c| c.name == k).unwrap()] = RawValue::Str(v.into());
        };
        set(&mut vals, "destination", "none");
        let e = Config::from_values(&vals).unwrap_err();
        assert_eq!(e.key, "destination", "{e}");
        assert!(e.to_string().contains("store_dir"), "{e}");
        set(&mut vals, "store_dir", "/var/lib/masqlog/store");
        let c = Config::from_values(&vals).unwrap();
        assert_eq!(c.destination, Destination::None);
        assert_eq!(c.destination.to_string(), "none");
        assert!(!c.destination.forwards() && !c.destination.is_remote());
        assert!(c.store.is_some());
        // Without a forwarding destination the spool's directory is kept
        // for the disk lane.
        assert!(c.spool.is_some());
        assert_eq!(parse_destination("none:"), None);
    }

    #[test]
    fn ipfix_turns_sealing_off_and_refuses_seal_on() {
        let mut vals = defaults();
        let set = |vals: &mut Vec<RawValue>, k: &str, v: &str| {
            vals[CONF_KEYS.iter().position(|c| c.name == k).unwrap()] = RawValue::Str(v.into());
        };
        set(&mut vals, "destination", "ipfix+tcp:127.0.0.1:4739");
        let c = Config::from_values(&vals).unwrap();
        assert_eq!(c.seal.mode, SealMode::Off);
        set(&mut vals, "seal", "on");
        let e = Config::from_values(&vals).unwrap_err();
        assert_eq!(e.key, "seal");
        assert!(
            e.to_string().contains("IPFIX records are not sealed"),
            "{e}"
        );
    }

    #[test]
    fn a_conntrack_sysctl_at_0_is_named_with_its_fix_and_an_unreadable_one_is_not() {
        let w = sysctls_off(|k| match k {
            "net/netfilter/nf_conntrack_acct" => Ok("0\n".into()),
            _ => Err(std::io::ErrorKind::NotFound.into()),
        });
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].starts_with("net.netfilter.nf_conntrack_acct is 0: end lines carry 0 packets"),
            "{w:?}"
        );
        assert!(w[0].contains("/etc/sysctl.d/90-masqlog.conf"), "{w:?}");
        assert!(sysctls_off(|_| Ok("1\n".into())).is_empty());
        assert_eq!(sysctls_off(|_| Ok("0".into())).len(), 2);
    }

    #[test]
    fn out_of_range_numbers_are_refused() {
        let e = with("queue_size", RawValue::Int(0)).unwrap_err();
        assert!(e.to_string().contains("from 64 to 4194304"), "{e}");
        assert!(
            with("stats_interval", RawValue::Int(0))
                .unwrap()
                .stats_interval
                .is_none()
        );
        assert!(with("send_timeout_ms", RawValue::Int(60_001)).is_err());
        assert!(with("flush_delay_ms", RawValue::Int(1001)).is_err());
        assert!(with("flush_delay_ms", RawValue::Int(-1)).is_err());
        assert_eq!(
            with("flush_delay_ms", RawValue::Int(0))
                .unwrap()
                .flush_delay,
            Duration::ZERO
        );
    }

    #[test]
    fn tag_and_hostname_are_checked() {
        assert!(with("tag", RawValue::Str("a b".into())).is_err());
        assert!(with("tag", RawValue::Str(String::new())).is_err());
        assert!(with("tag", RawValue::Str("nat-log".into())).is_ok());
        assert!(with("hostname", RawValue::Str("bad host".into())).is_err());
        for forged in ["masqlog/1", "gw[1]", "x{\"masqlog\":1", "a=b", "MASQLOG"] {
            assert!(
                with("hostname", RawValue::Str(forged.into())).is_err(),
                "{forged}"
            );
        }
        for fine in ["gw1", "gw1.example.net", "2001:db8::1", "192.0.2.1"] {
            assert!(
                with("hostname", RawValue::Str(fine.into())).is_ok(),
                "{fine}"
            );
        }
        let c = with("hostname", RawValue::Str("gw1".into())).unwrap();
        assert_eq!(c.hostname.as_deref(), Some("gw1"));
    }

    #[test]
    fn remote_modes() {
        assert_eq!(Config::default().remote, RemoteMode::Log);
        let mut vals = defaults();
        let at = |k: &str| CONF_KEYS.iter().position(|c| c.name == k).unwrap();
        vals[at("remote")] = RawValue::Str("hash".into());
        let e = Config::from_values(&vals).unwrap_err();
        assert_eq!(e.key, "remote_hash_key");
        vals[at("remote_hash_key")] = RawValue::Str("secretsecretsecret".into());
        let e = Config::from_values(&vals).unwrap_err();
        assert!(!e.to_string().contains("secretsecret"), "{e}");
        vals[at("remote_hash_key")] = RawValue::Str("000102030405060708090a0b0c0d0e0f".into());
        let c = Config::from_values(&vals).unwrap();
        let mut want = [0u8; 16];
        for (i, b) in want.iter_mut().enumerate() {
            *b = i as u8;
        }
        assert_eq!(c.remote, RemoteMode::Hash(want));
        assert_eq!(
            with("remote", RawValue::Str("omit".into())).unwrap().remote,
            RemoteMode::Omit
        );
        assert!(with("remote", RawValue::Str("drop".into())).is_err());
    }

    #[test]
    fn ident_clients_are_prefixes_or_addresses() {
        let mut vals = defaults();
        let at = |k: &str| CONF_KEYS.iter().position(|c| c.name == k).unwrap();
        vals[at("ident")] = RawValue::Str("plain".into());
        vals[at("ident_clients")] = RawValue::Str("10.99.0.5/24, fd99::/64,192.0.2.7".into());
        let ic = Config::from_values(&vals).unwrap().ident.unwrap();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(ic.wants(ip("10.99.0.200"), 113));
        assert!(!ic.wants(ip("10.99.1.1"), 113));
        assert!(ic.wants(ip("fd99::1"), 113));
        assert!(!ic.wants(ip("fd98::1"), 113));
        assert!(ic.wants(ip("192.0.2.7"), 113));
        assert!(!ic.wants(ip("192.0.2.8"), 113));
        // An IPv4 prefix holds no IPv6 address, not even a mapped one.
        assert!(!ic.wants(ip("::ffff:10.99.0.1"), 113));
        for bad in [
            "lan",
            "10.99.0.0/33",
            "10.99.0.0/",
            "10.99.0.0/+8",
            "fd99::/129",
        ] {
            vals[at("ident_clients")] = RawValue::Str(bad.into());
            let e = Config::from_values(&vals).unwrap_err();
            assert_eq!(e.key, "ident_clients", "{bad}");
        }
        vals[at("ident_clients")] = RawValue::Str("0.0.0.0/0".into());
        let ic = Config::from_values(&vals).unwrap().ident.unwrap();
        assert!(ic.wants(ip("203.0.113.1"), 113));
        assert!(!ic.wants(ip("2001:db8::1"), 113));
    }

    #[test]
    fn facility_and_severity_names() {
        assert_eq!(
            with("facility", RawValue::Str("local5".into()))
                .unwrap()
                .facility,
            21
        );
        assert_eq!(
            with("severity", RawValue::Str("notice".into()))
                .unwrap()
                .severity,
            5
        );
        assert!(with("facility", RawValue::Str("local8".into())).is_err());
    }
}

#[cfg(test)]
mod doc_tests {
    use crate::keys::CONF_KEYS;

    /// The README documents every key with its default: no drift.
    #[test]
    fn readme_lists_every_key_with_its_default() {
        let readme = include_str!("../../../README.md");
        for k in CONF_KEYS {
            let row = if k.default.is_empty() {
                format!("| `{}` | (empty) |", k.name)
            } else {
                format!("| `{}` | `{}` |", k.name, k.default)
            };
            assert!(readme.contains(&row), "README lacks the row {row}");
        }
    }
}
