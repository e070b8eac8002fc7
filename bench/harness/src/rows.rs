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
    /// MASQLOG from the ulogd-conf/ example of the format; `remote`: to the
    /// TCP receiver in the server namespace instead of /dev/log; `ident`:
    /// `ident=plain`.
    Masqlog {
        format: Format,
        remote: bool,
        ident: bool,
    },
}

/// Where a row's lines land.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Sink {
    /// No lines (the floor).
    Nothing,
    /// A file ulogd writes itself (LOGEMU, JSON), in the lab directory.
    File(PathBuf),
    /// The local rsyslog on the router (a unix socket at /dev/log).
    Local,
    /// The remote rsyslog in the server namespace (imtcp).
    Remote,
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

    /// A short name, also the `--rows` key.
    pub fn key(self) -> String {
        match self {
            Output::Noop => "floor".into(),
            Output::Logemu => "logemu".into(),
            Output::Syslog => "syslog".into(),
            Output::Json => "json".into(),
            Output::Masqlog {
                format,
                remote,
                ident,
            } => format!(
                "masqlog-{}{}{}",
                format.name(),
                if remote { "-remote" } else { "" },
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
                remote,
                ident,
            } => format!(
                "MASQLOG {} {}{}",
                format.name(),
                if remote { "tcp" } else { "/dev/log" },
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

const MASQLOG_ROWS: [(Format, bool); 4] = [
    (Format::Text, false),
    (Format::Json, false),
    (Format::Rfc5424, false),
    (Format::Text, true),
];

/// The UDP section: the floor, the three stock outputs, masqlog's four.
pub fn udp_rows() -> Vec<Row> {
    let mut rows = vec![Output::Noop, Output::Logemu, Output::Syslog, Output::Json];
    rows.extend(
        MASQLOG_ROWS
            .iter()
            .map(|&(format, remote)| Output::Masqlog {
                format,
                remote,
                ident: false,
            }),
    );
    rows.into_iter()
        .map(|output| Row {
            proto: Proto::Udp,
            output,
        })
        .collect()
}

/// The TCP section (IDENT looks up TCP flows only): the floor, the
/// cheapest stock output of the UDP section, masqlog text without IDENT,
/// and masqlog's four rows with `ident=plain`.
pub fn tcp_rows(cheapest_stock: Output) -> Vec<Row> {
    let mut rows = vec![
        Output::Noop,
        cheapest_stock,
        Output::Masqlog {
            format: Format::Text,
            remote: false,
            ident: false,
        },
    ];
    rows.extend(
        MASQLOG_ROWS
            .iter()
            .map(|&(format, remote)| Output::Masqlog {
                format,
                remote,
                ident: true,
            }),
    );
    rows.into_iter()
        .map(|output| Row {
            proto: Proto::Tcp,
            output,
        })
        .collect()
}

/// What every config needs to know.
#[derive(Clone, Debug)]
pub struct ConfCtx {
    pub plugin_dir: PathBuf,
    /// The plugin as installed in the lab directory.
    pub masqlog_so: PathBuf,
    pub noop_so: PathBuf,
    /// The remote receiver (server namespace).
    pub remote: SocketAddr,
    /// The `[ct1]` section of every row: the keys of
    /// `ulogd-conf/masqlog-local.conf`, with the command line's changes.
    pub ct1: Vec<(String, String)>,
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
            remote,
            ident,
        } => {
            let example = Example::for_format(format.name())
                .with_context(|| format!("no example config for format {}", format.name()))?;
            let subs = Substitutions {
                plugin_dir: ctx.plugin_dir.clone(),
                masqlog_so: ctx.masqlog_so.clone(),
                logfile: logfile.clone(),
                syslog_socket: Some("/dev/log".into()),
                remote: Some(ctx.remote),
            };
            let mut conf = UlogdConf::from_example(example, &subs)?;
            // The rfc5424 example sends to a remote receiver: every row
            // says where it sends.
            let destination = if remote {
                format!("tcp:{}", ctx.remote)
            } else {
                "unix:/dev/log".to_string()
            };
            conf.set("masq1", "destination", &destination);
            // A spool of the bench's own, emptied by every row's stop or
            // replayed by the next row: never the system's.
            conf.set_spool_dir(&dir.join("spool"));
            if ident {
                conf.set("masq1", "ident", "plain");
            }
            (conf, if remote { Sink::Remote } else { Sink::Local })
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
                _ => Sink::File(out_file),
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
