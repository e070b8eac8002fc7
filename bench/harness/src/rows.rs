//! The rows of the table: which ulogd stack each one runs on the common NFCT
//! input, its ulogd.conf, and where its lines land.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow};
use masqlog_core::ulogd_conf::{Example, Substitutions};
use masqlog_lab::UlogdConf;

/// The transport of the generated flows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proto {
    /// One UDP datagram per flow.
    Udp,
    /// One TCP SYN per flow (never answered).
    Tcp,
}

impl Proto {
    pub fn name(self) -> &'static str {
        match self {
            Proto::Udp => "udp",
            Proto::Tcp => "tcp",
        }
    }
}

/// masqlog's line formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
    Rfc5424,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::Text => "text",
            Format::Json => "json",
            Format::Rfc5424 => "rfc5424",
        }
    }
}

/// Where MASQLOG sends its lines.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dest {
    /// `unix:/dev/log`: the local rsyslog, the transport of stock SYSLOG.
    DevLog,
    /// `tcp:IP:PORT`: the remote rsyslog (imtcp) in the server namespace.
    Tcp,
    /// `relp:IP:PORT`: a remote rsyslog with imrelp in the server namespace.
    Relp,
    /// `file:/ABS/PATH`: a file in the lab directory.
    File,
    /// `destination=none` with `store_dir`: the evidence store alone, a
    /// directory in the lab directory.
    Store,
    /// `postgresql://`: the bench's own PostgreSQL cluster (a Unix socket).
    Postgres,
}

impl Dest {
    /// The suffix of the row's key (`masqlog-text-remote`, ...).
    fn key_suffix(self) -> &'static str {
        match self {
            Dest::DevLog => "",
            Dest::Tcp => "-remote",
            Dest::Relp => "-relp",
            Dest::File => "-file",
            Dest::Store => "-store",
            Dest::Postgres => "-pg",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Dest::DevLog => "/dev/log",
            Dest::Tcp => "tcp",
            Dest::Relp => "relp",
            Dest::File => "file",
            Dest::Store => "store",
            Dest::Postgres => "postgresql",
        }
    }
}

/// The output side of a stack: everything after `ct1:NFCT`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    /// bench/noop.c: reads the keys, does nothing (the floor).
    Noop,
    /// IP2STR, PRINTFLOW, LOGEMU to a file.
    Logemu,
    /// IP2STR, PRINTFLOW, SYSLOG (syslog(3) to /dev/log).
    Syslog,
    /// IP2STR, JSON to a file (Debian's ulogd2-json).
    Json,
    /// MASQLOG from the ulogd-conf/ example of the format (of RELP for
    /// the RELP row), sending to `dest`; `ident`: `ident=plain`.
    Masqlog {
        format: Format,
        dest: Dest,
        ident: bool,
    },
}

/// Where a row's lines land.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Sink {
    /// No lines (the floor).
    Nothing,
    /// A file ulogd writes itself, in the lab directory: LOGEMU and JSON
    /// through a stdio buffer (`buffered`), MASQLOG's file destination.
    File { path: PathBuf, buffered: bool },
    /// The local rsyslog on the router (a unix socket at /dev/log).
    Local,
    /// The remote rsyslog in the server namespace (imtcp).
    Remote,
    /// The RELP rsyslog in the server namespace (imrelp).
    Relp,
    /// The live segment of a store directory.
    Store { dir: PathBuf },
    /// The table of the bench's PostgreSQL cluster.
    Postgres,
}

impl Output {
    pub fn is_stock(self) -> bool {
        matches!(self, Output::Logemu | Output::Syslog | Output::Json)
    }

    pub fn is_masqlog(self) -> bool {
        matches!(self, Output::Masqlog { .. })
    }

    pub fn is_floor(self) -> bool {
        self == Output::Noop
    }

    /// A MASQLOG row with `ident=plain`.
    pub fn has_ident(self) -> bool {
        matches!(self, Output::Masqlog { ident: true, .. })
    }

    /// The same output without IDENT (itself when it has none).
    pub fn without_ident(self) -> Output {
        match self {
            Output::Masqlog { format, dest, .. } => Output::Masqlog {
                format,
                dest,
                ident: false,
            },
            o => o,
        }
    }

    /// A short name, also the `--rows` key.
    pub fn key(self) -> String {
        match self {
            Output::Noop => "floor".into(),
            Output::Logemu => "logemu".into(),
            Output::Syslog => "syslog".into(),
            Output::Json => "json".into(),
            Output::Masqlog {
                format,
                dest,
                ident,
            } => format!(
                "masqlog-{}{}{}",
                format.name(),
                dest.key_suffix(),
                if ident { "+ident" } else { "" }
            ),
        }
    }

    /// The row's name in the table.
    pub fn label(self) -> String {
        match self {
            Output::Noop => "NOOP (floor)".into(),
            Output::Logemu => "LOGEMU file".into(),
            Output::Syslog => "SYSLOG /dev/log".into(),
            Output::Json => "JSON file".into(),
            Output::Masqlog {
                format,
                dest,
                ident,
            } => format!(
                "MASQLOG {} {}{}",
                format.name(),
                dest.label(),
                if ident { " +ident" } else { "" }
            ),
        }
    }
}

/// One row: an output and the flows it gets.
#[derive(Clone, Debug)]
pub struct Row {
    pub proto: Proto,
    pub output: Output,
}

impl Row {
    /// `udp:floor`, `tcp:masqlog-text+ident`, ...
    pub fn key(&self) -> String {
        format!("{}:{}", self.proto.name(), self.output.key())
    }
}

/// masqlog's rows of both sections (the TCP section adds each with IDENT).
const MASQLOG_ROWS: [(Format, Dest); 4] = [
    (Format::Text, Dest::DevLog),
    (Format::Json, Dest::DevLog),
    (Format::Rfc5424, Dest::DevLog),
    (Format::Text, Dest::Tcp),
];

/// masqlog's rows of the UDP section only: the other destinations.
const MASQLOG_UDP_ONLY: [(Format, Dest); 4] = [
    (Format::Text, Dest::Relp),
    (Format::Text, Dest::File),
    (Format::Text, Dest::Store),
    (Format::Text, Dest::Postgres),
];

fn masqlog(rows: &[(Format, Dest)], ident: bool) -> impl Iterator<Item = Output> + '_ {
    rows.iter().map(move |&(format, dest)| Output::Masqlog {
        format,
        dest,
        ident,
    })
}

fn with_proto(outputs: Vec<Output>, proto: Proto) -> Vec<Row> {
    outputs
        .into_iter()
        .map(|output| Row { proto, output })
        .collect()
}

/// The UDP section: the floor, the three stock outputs, masqlog's four rows
/// and its text lines over RELP and into a file.
pub fn udp_rows() -> Vec<Row> {
    let mut rows = vec![Output::Noop, Output::Logemu, Output::Syslog, Output::Json];
    rows.extend(masqlog(&MASQLOG_ROWS, false));
    rows.extend(masqlog(&MASQLOG_UDP_ONLY, false));
    with_proto(rows, Proto::Udp)
}

/// The TCP section (IDENT looks up TCP flows only): the floor, the stock
/// outputs the targets compare with (LOGEMU, SYSLOG), masqlog's four rows
/// without IDENT and the same four with `ident=plain`, so that IDENT's cost
/// is the difference of two rows on the same flows.
pub fn tcp_rows() -> Vec<Row> {
    let mut rows = vec![Output::Noop, Output::Logemu, Output::Syslog];
    rows.extend(masqlog(&MASQLOG_ROWS, false));
    rows.extend(masqlog(&MASQLOG_ROWS, true));
    with_proto(rows, Proto::Tcp)
}

/// What every config needs to know.
#[derive(Clone, Debug)]
pub struct ConfCtx {
    pub plugin_dir: PathBuf,
    /// The plugin as installed in the lab directory.
    pub masqlog_so: PathBuf,
    pub noop_so: PathBuf,
    /// The remote receiver (server namespace, imtcp).
    pub remote: SocketAddr,
    /// The RELP receiver (server namespace, imrelp).
    pub relp: SocketAddr,
    /// The `[ct1]` section of every row: the keys of
    /// `ulogd-conf/masqlog-local.conf`, with the command line's changes.
    pub ct1: Vec<(String, String)>,
    /// The URL a router uses to write to the bench's PostgreSQL cluster,
    /// once it runs (started for the first PostgreSQL row).
    pub pg_url: Option<String>,
}

/// The NFCT keys copied from the shipped example into every row.
pub const CT1_KEYS: &[&str] = &[
    "hash_enable",
    "event_mask",
    "netlink_socket_buffer_size",
    "netlink_socket_buffer_maxsize",
    "reliable",
];

/// The example's `[ct1]` values for [`CT1_KEYS`].
pub fn example_ct1(subs: &Substitutions) -> Result<Vec<(String, String)>> {
    let conf = UlogdConf::from_example(Example::Local, subs)?;
    CT1_KEYS
        .iter()
        .map(|k| {
            conf.get("ct1", k)
                .map(|v| (k.to_string(), v))
                .ok_or_else(|| anyhow!("ulogd-conf/masqlog-local.conf has no {k} in [ct1]"))
        })
        .collect()
}

/// A rendered config: the text, ulogd's log file and the row's sink.
pub struct Rendered {
    pub conf: UlogdConf,
    pub logfile: PathBuf,
    pub sink: Sink,
}

/// The config of `row` for a ulogd whose files go into `dir` under `name`.
pub fn render(row: &Row, ctx: &ConfCtx, dir: &Path, name: &str) -> Result<Rendered> {
    let logfile = dir.join(format!("{name}.log"));
    let plugin = |p: &str| ctx.plugin_dir.join(format!("ulogd_{p}.so"));
    let (mut conf, sink) = match row.output {
        Output::Masqlog {
            format,
            dest,
            ident,
        } => {
            let example = if dest == Dest::Relp {
                Example::Relp
            } else {
                Example::for_format(format.name())
                    .with_context(|| format!("no example config for format {}", format.name()))?
            };
            let subs = Substitutions {
                plugin_dir: ctx.plugin_dir.clone(),
                masqlog_so: ctx.masqlog_so.clone(),
                logfile: logfile.clone(),
                syslog_socket: Some("/dev/log".into()),
                remote: Some(if dest == Dest::Relp {
                    ctx.relp
                } else {
                    ctx.remote
                }),
            };
            let mut conf = UlogdConf::from_example(example, &subs)?;
            conf.set("masq1", "format", format.name());
            // The rfc5424 example sends to a remote receiver: every row
            // says where it sends.
            let (destination, sink) = match dest {
                Dest::DevLog => ("unix:/dev/log".to_string(), Sink::Local),
                Dest::Tcp => (format!("tcp:{}", ctx.remote), Sink::Remote),
                Dest::Relp => (format!("relp:{}", ctx.relp), Sink::Relp),
                Dest::File => {
                    let path = dir.join(format!("{name}.out.log"));
                    (
                        format!("file:{}", path.display()),
                        Sink::File {
                            path,
                            buffered: false,
                        },
                    )
                }
                Dest::Store => {
                    let store = dir.join(format!("{name}.store"));
                    // One segment for the row (it rolls at midnight or at
                    // 64 GiB): its lines are counted in the live segment.
                    conf.set("masq1", "store_dir", &store.display().to_string());
                    conf.set("masq1", "store_roll_min", "1440");
                    conf.set("masq1", "store_roll_mb", "65536");
                    ("none".to_string(), Sink::Store { dir: store })
                }
                // In double quotes: ulogd ends an unquoted value at `=`.
                Dest::Postgres => (
                    format!(
                        "\"{}\"",
                        ctx.pg_url
                            .as_deref()
                            .context("no PostgreSQL cluster for the row")?
                    ),
                    Sink::Postgres,
                ),
            };
            conf.set("masq1", "destination", &destination);
            // A spool of the bench's own, emptied by every row's stop or
            // replayed by the next row: never the system's.
            conf.set_spool_dir(&dir.join("spool"));
            if ident {
                conf.set("masq1", "ident", "plain");
            }
            (conf, sink)
        }
        output => {
            let out_file = dir.join(format!("{name}.out.log"));
            let (plugins, stack, section): (Vec<&str>, &str, String) = match output {
                Output::Noop => (vec![], "ct1:NFCT,noop1:NOOP", String::new()),
                Output::Logemu => (
                    vec!["filter_IP2STR", "filter_PRINTFLOW", "output_LOGEMU"],
                    "ct1:NFCT,ip2str1:IP2STR,print1:PRINTFLOW,emu1:LOGEMU",
                    format!("[emu1]\nfile=\"{}\"\nsync=0\n", out_file.display()),
                ),
                Output::Syslog => (
                    vec!["filter_IP2STR", "filter_PRINTFLOW", "output_SYSLOG"],
                    "ct1:NFCT,ip2str1:IP2STR,print1:PRINTFLOW,sys1:SYSLOG",
                    "[sys1]\nfacility=LOG_DAEMON\nlevel=LOG_INFO\n".into(),
                ),
                Output::Json => (
                    vec!["filter_IP2STR", "output_JSON"],
                    "ct1:NFCT,ip2str1:IP2STR,json1:JSON",
                    format!("[json1]\nfile=\"{}\"\nsync=0\n", out_file.display()),
                ),
                Output::Masqlog { .. } => unreachable!(),
            };
            let mut text = format!(
                "# masqlog bench: {}\n[global]\nlogfile=\"{}\"\nloglevel=3\nplugin=\"{}\"\n",
                row.key(),
                logfile.display(),
                plugin("inpflow_NFCT").display()
            );
            for p in plugins {
                text.push_str(&format!("plugin=\"{}\"\n", plugin(p).display()));
            }
            if output == Output::Noop {
                text.push_str(&format!("plugin=\"{}\"\n", ctx.noop_so.display()));
            }
            text.push_str(&format!("stack={stack}\n\n[ct1]\n"));
            for (k, v) in &ctx.ct1 {
                text.push_str(&format!("{k}={v}\n"));
            }
            text.push('\n');
            text.push_str(&section);
            let sink = match output {
                Output::Noop => Sink::Nothing,
                Output::Syslog => Sink::Local,
                _ => Sink::File {
                    path: out_file,
                    buffered: true,
                },
            };
            (UlogdConf::from_text(&text), sink)
        }
    };
    for (k, v) in &ctx.ct1 {
        conf.set("ct1", k, v);
    }
    Ok(Rendered {
        conf,
        logfile,
        sink,
    })
}
