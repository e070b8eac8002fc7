//! `masqlog check-config`: reads a ulogd.conf the way ulogd 2.0.8 reads it,
//! validates every MASQLOG section with the plugin's own code
//! ([`Config::from_values`]), and checks what the plugin needs around it:
//! the plugin file, the NFCT section that feeds it, the conntrack sysctls,
//! the syslog destination, the sealing state and the files around it,
//! spools no instance sends and, for transparent IDENT, the router's policy
//! routing. Each finding is `ok`, `warn` or `FAIL` and says what to change.
//!
//! The checks read the machine through [`System`], so that the logic is
//! tested without root; [`Machine`] is the real one.

pub mod machine;
pub mod spools;
pub mod ulogdconf;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::json::Json;
use masqlog_core::config::{Config, Destination, RawValue, SealConfig, SealMode};
use masqlog_core::ident::Mode;
use masqlog_core::keys::{CONF_KEYS, ConfKind};
use ulogdconf::{ConfFile, IntSyntax, Section, int_syntax, parse_stack, strtoul_int};

pub use machine::Machine;
pub use spools::SpoolContents;
use spools::SpoolUse;

/// How bad a finding is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Status {
    Ok,
    /// Works, but not as well as it should (or cannot be checked).
    Warn,
    /// Something the plugin needs is missing or wrong.
    Fail,
}

impl Status {
    pub fn label(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Warn => "warn",
            Status::Fail => "FAIL",
        }
    }
}

/// One line of the report: the result of one check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckResult {
    pub status: Status,
    /// What was checked: `[masq1] format`, `sysctl nf_conntrack_acct`, ...
    pub subject: String,
    /// What was found and, unless ok, what to change.
    pub message: String,
}

/// Everything `check-config` found in one file.
#[derive(Clone, Debug, Default)]
pub struct Report {
    pub file: PathBuf,
    pub results: Vec<CheckResult>,
}

impl Report {
    fn push(&mut self, status: Status, subject: impl Into<String>, message: impl Into<String>) {
        self.results.push(CheckResult {
            status,
            subject: subject.into(),
            message: message.into(),
        });
    }

    fn ok(&mut self, subject: impl Into<String>, message: impl Into<String>) {
        self.push(Status::Ok, subject, message);
    }

    fn warn(&mut self, subject: impl Into<String>, message: impl Into<String>) {
        self.push(Status::Warn, subject, message);
    }

    fn fail(&mut self, subject: impl Into<String>, message: impl Into<String>) {
        self.push(Status::Fail, subject, message);
    }

    /// How many results have `status`.
    pub fn count(&self, status: Status) -> usize {
        self.results.iter().filter(|f| f.status == status).count()
    }

    /// The results with `status`.
    pub fn with(&self, status: Status) -> impl Iterator<Item = &CheckResult> {
        self.results.iter().filter(move |f| f.status == status)
    }

    /// 0 when nothing is missing (warnings allowed), 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        u8::from(self.count(Status::Fail) > 0)
    }

    /// The summary line.
    pub fn summary(&self) -> String {
        let (ok, warn, fail) = (
            self.count(Status::Ok),
            self.count(Status::Warn),
            self.count(Status::Fail),
        );
        let plural =
            |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
        let verdict = if fail > 0 {
            "masqlog will not log as configured: change what the FAIL lines say"
        } else if warn > 0 {
            "ready; the warnings say what would make it sturdier"
        } else {
            "ready"
        };
        format!(
            "{}: {ok} ok, {}, {}: {verdict}",
            self.file.display(),
            plural(warn, "warning", "warnings"),
            plural(fail, "failure", "failures"),
        )
    }

    /// One line per finding, then the summary.
    pub fn render_text(&self) -> String {
        let mut out = String::new();
        for f in &self.results {
            out.push_str(&format!(
                "{:<4}  {}: {}\n",
                f.status.label(),
                f.subject,
                f.message
            ));
        }
        out.push_str(&self.summary());
        out.push('\n');
        out
    }

    /// The report as one JSON object.
    pub fn to_json(&self) -> Json {
        let findings = self
            .results
            .iter()
            .map(|f| {
                Json::obj([
                    ("status", Json::str(f.status.label().to_ascii_lowercase())),
                    ("check", Json::str(&f.subject)),
                    ("message", Json::str(&f.message)),
                ])
            })
            .collect();
        Json::obj([
            ("file", Json::str(self.file.display().to_string())),
            ("ok", Json::Int(self.count(Status::Ok) as i64)),
            ("warnings", Json::Int(self.count(Status::Warn) as i64)),
            ("failures", Json::Int(self.count(Status::Fail) as i64)),
            ("exit", Json::Int(i64::from(self.exit_code()))),
            ("findings", Json::Arr(findings)),
        ])
    }
}

/// What a path is, not following a symlink.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileKind {
    File,
    Dir,
    Symlink,
    /// A socket, a device, a fifo.
    Other,
}

/// What `lstat` says about a path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileInfo {
    pub kind: FileKind,
    /// The permission bits (`mode & 0o7777`).
    pub mode: u32,
    pub uid: u32,
}

/// What the checks read from the machine.
pub trait System {
    /// A sysctl under `/proc/sys/` (`net/netfilter/nf_conntrack_acct`).
    fn read_sysctl(&self, key: &str) -> std::io::Result<String>;
    fn exists(&self, path: &Path) -> bool;
    /// `ulogd -i PATH`'s output; `Err` when ulogd cannot be run.
    fn plugin_info(&self, path: &Path) -> Result<String, String>;
    /// Where ulogd loads every plugin from when the config names none.
    fn default_plugin_dir(&self) -> PathBuf;
    /// Connects a datagram socket to a unix socket.
    fn unix_connect(&self, path: &Path) -> std::io::Result<()>;
    fn tcp_connect(&self, addr: SocketAddr, timeout: Duration) -> std::io::Result<()>;
    /// Whether this process may set `IP_TRANSPARENT` (the plugin's check).
    fn transparent_capability(&self) -> Result<(), String>;
    /// Runs a command (`nft`, `ip`) and returns its stdout.
    fn command(&self, argv: &[&str]) -> Result<String, String>;
    /// A file's text; a directory reads as its entry names, one a line.
    fn read_file(&self, path: &Path) -> Option<String>;
    /// The kind, mode and owner of `path` itself (a symlink is not
    /// followed).
    fn file_info(&self, path: &Path) -> std::io::Result<FileInfo>;
    /// The names of the directories in `path` (symlinks left out), sorted.
    fn subdirs(&self, path: &Path) -> std::io::Result<Vec<String>>;
    /// What the spool directory `dir` still holds; `Ok(None)` when it is
    /// no spool directory.
    fn spool_contents(&self, dir: &Path) -> std::io::Result<Option<SpoolContents>>;
    /// Whether `a` and `b` are the same file (symlinks followed): the same
    /// device and inode. False when either cannot be looked at.
    fn same_file(&self, _a: &Path, _b: &Path) -> bool {
        false
    }
}

/// journald's syslog socket: what /dev/log is on a systemd machine.
pub const JOURNALD_DEV_LOG: &str = "/run/systemd/journal/dev-log";

/// The NFCT keys of ulogd 2.0.5 .. 2.0.9 (`ulogd -i ulogd_inpflow_NFCT.so`).
const NFCT_KEYS: &[&str] = &[
    "pollinterval",
    "hash_enable",
    "hash_buckets",
    "hash_max_entries",
    "event_mask",
    "netlink_socket_buffer_size",
    "netlink_socket_buffer_maxsize",
    "netlink_resync_timeout",
    "reliable",
    "accept_src_filter",
    "accept_dst_filter",
    "accept_proto_filter",
];

/// The buffer sizes README and the examples suggest.
const BUFFER_HINT: &str =
    "netlink_socket_buffer_size=8388608 and netlink_socket_buffer_maxsize=16777216";

/// Where the packaged example of transparent IDENT routing is.
pub const IDENT_EXAMPLE: &str = "/usr/share/doc/masqlog/examples/ident-transparent.sh";

/// Checks the config `text` (read from `file`).
pub fn check(file: &Path, text: &[u8], sys: &dyn System) -> Report {
    let mut r = Report {
        file: file.to_path_buf(),
        results: Vec::new(),
    };
    let conf = ConfFile::parse(text);
    let global = match conf.section("global") {
        Ok(Some(g)) => g,
        Ok(None) => {
            r.fail(
                "[global]",
                "no [global] section: ulogd loads no plugin and builds no stack; start from /etc/ulogd-masqlog.conf",
            );
            return r;
        }
        Err(e) => {
            r.fail("[global]", format!("ulogd cannot read it: {e}"));
            return r;
        }
    };
    for key in ["logfile", "loglevel"] {
        duplicates(&mut r, &global, key);
    }
    let repeated = repeated_sections(text);
    // every MASQLOG stack: (line, elements)
    let mut stacks = Vec::new();
    for e in global.all("stack") {
        match parse_stack(&e.value) {
            Ok(els) if els.iter().any(|el| el.plugin == "MASQLOG") => stacks.push((e.line, els)),
            Ok(_) => {}
            Err(tok) => r.fail(
                format!("stack (line {})", e.line),
                format!("`{tok}` is not ID:PLUGIN: ulogd refuses the line (\"syntax error\"); write e.g. stack=ct1:NFCT,masq1:MASQLOG without spaces"),
            ),
        }
    }
    if stacks.is_empty() {
        r.fail(
            "stack",
            "no stack= line names a MASQLOG instance: add stack=ct1:NFCT,masq1:MASQLOG to [global] (after the plugin= lines, without spaces)",
        );
    }
    check_plugin(&mut r, &global, stacks.first().map(|(l, _)| *l), sys);

    let mut configs: Vec<(String, Config)> = Vec::new();
    let mut spool_uses: Vec<SpoolUse> = Vec::new();
    let mut refused: Vec<String> = Vec::new();
    let mut nfct_seen: Vec<String> = Vec::new();
    for (line, els) in &stacks {
        let subject = format!("stack (line {line})");
        let last = els.last().expect("a MASQLOG stack has elements");
        if last.plugin != "MASQLOG" {
            r.fail(
                &subject,
                format!(
                    "MASQLOG must end the stack (it is an output); `{}:{}` follows it",
                    last.id, last.plugin
                ),
            );
        }
        let first = &els[0];
        if first.plugin != "NFCT" {
            r.fail(
                &subject,
                format!("the stack starts with {}:{}; MASQLOG reads conntrack events: start it with an NFCT instance (ct1:NFCT)", first.id, first.plugin),
            );
        } else if !nfct_seen.contains(&first.id) {
            nfct_seen.push(first.id.clone());
            check_nfct(&mut r, &conf, &first.id);
        }
        for el in els.iter().filter(|el| el.plugin == "MASQLOG") {
            if configs.iter().any(|(id, _)| *id == el.id) {
                continue;
            }
            match check_masqlog(&mut r, &conf, &el.id) {
                Some((cfg, root)) => {
                    spool_uses.push(SpoolUse {
                        id: el.id.clone(),
                        root,
                        on: cfg.spool.is_some(),
                    });
                    configs.push((el.id.clone(), cfg));
                }
                None => refused.push(el.id.clone()),
            }
        }
    }
    for (name, lines) in &repeated {
        let used = stacks
            .iter()
            .any(|(_, els)| els.iter().any(|el| el.id == *name));
        let lines_s: Vec<String> = lines.iter().map(usize::to_string).collect();
        let msg = format!(
            "appears {} (lines {}); ulogd reads only the first: merge them into the one on line {}, or rename the later one and its stack= id",
            if lines.len() == 2 {
                "twice".to_string()
            } else {
                format!("{} times", lines.len())
            },
            lines_s.join(" and "),
            lines[0]
        );
        let subject = format!("[{name}]");
        if used {
            r.fail(subject, msg);
        } else {
            r.warn(subject, msg);
        }
    }
    check_sysctls(&mut r, sys);
    for (id, cfg) in &configs {
        check_destination(&mut r, id, &cfg.destination, sys);
        check_seal(&mut r, id, &cfg.seal, sys);
        if let Some(store) = &cfg.store {
            check_store(&mut r, id, &store.dir, sys);
        }
    }
    spools::check_spools(&mut r, &spool_uses, &refused, sys);
    let transparent: Vec<&str> = configs
        .iter()
        .filter(|(_, c)| {
            c.ident
                .as_ref()
                .is_some_and(|i| i.pool.query.mode == Mode::Transparent)
        })
        .map(|(id, _)| id.as_str())
        .collect();
    if !transparent.is_empty() {
        check_transparent(&mut r, &transparent.join(", "), sys);
    }
    r
}

/// The names of sections that open more than once, with the line of each
/// `[name]`, in file order. ulogd looks a section up by name from the top
/// and stops at the first.
fn repeated_sections(text: &[u8]) -> Vec<(String, Vec<usize>)> {
    let mut seen: Vec<(String, Vec<usize>)> = Vec::new();
    for (i, line) in text.split(|&b| b == b'\n').enumerate() {
        let line = String::from_utf8_lossy(line);
        let Some(name) = line
            .strip_prefix('[')
            .and_then(|r| r.trim_end().strip_suffix(']'))
        else {
            continue;
        };
        match seen.iter_mut().find(|(n, _)| n == name) {
            Some((_, lines)) => lines.push(i + 1),
            None => seen.push((name.to_string(), vec![i + 1])),
        }
    }
    seen.retain(|(_, lines)| lines.len() > 1);
    seen
}

fn duplicates(r: &mut Report, section: &Section, key: &str) -> bool {
    let lines: Vec<String> = section.all(key).map(|e| e.line.to_string()).collect();
    if lines.len() > 1 {
        r.fail(
            format!("[{}] {key}", section.name),
            format!(
                "set on lines {}: ulogd refuses the section (\"option occurred more than once\"); keep one",
                lines.join(" and ")
            ),
        );
        return true;
    }
    false
}

/// The plugin= lines: the files exist, one of them is MASQLOG (`ulogd -i`),
/// and it is loaded before the stack that uses it.
fn check_plugin(r: &mut Report, global: &Section, stack_line: Option<usize>, sys: &dyn System) {
    let plugins: Vec<(usize, PathBuf)> = global
        .all("plugin")
        .map(|e| (e.line, PathBuf::from(&e.value)))
        .collect();
    let mut missing_masqlog = false;
    for (line, p) in &plugins {
        if !sys.exists(p) {
            missing_masqlog |= is_masqlog_name(p);
            r.fail(
                format!("plugin (line {line})"),
                format!(
                    "{} does not exist: ulogd cannot load it and every stack that uses it fails; {}",
                    p.display(),
                    if is_masqlog_name(p) {
                        "install the masqlog package (or `masqlog install-plugin`), or correct the path"
                    } else {
                        "correct the path or remove the line"
                    }
                ),
            );
        }
    }
    let (candidates, implicit) = if plugins.is_empty() {
        let p = sys
            .default_plugin_dir()
            .join(masqlog_core::ulogd_conf::PLUGIN_FILE);
        (vec![(0, p)], true)
    } else {
        let mut c: Vec<(usize, PathBuf)> = plugins
            .iter()
            .filter(|(_, p)| sys.exists(p))
            .cloned()
            .collect();
        // the likely one first; ulogd -i is cheap, so the others too
        c.sort_by_key(|(_, p)| !is_masqlog_name(p));
        (c, false)
    };
    let mut found = None;
    let mut refused = Vec::new();
    for (line, p) in &candidates {
        if !sys.exists(p) {
            continue;
        }
        match sys.plugin_info(p) {
            Ok(out) if out.lines().any(|l| l.trim() == "Name: MASQLOG") => {
                found = Some((*line, p.clone()));
                break;
            }
            Ok(_) => {
                if is_masqlog_name(p) {
                    refused.push(p.clone());
                }
            }
            Err(e) => {
                r.fail(
                    "plugin",
                    format!("cannot run `ulogd -i`: {e}; install ulogd2"),
                );
                return;
            }
        }
    }
    match found {
        Some((_, p)) if implicit => r.warn(
            "plugin",
            format!(
                "no plugin= lines: ulogd loads every plugin of its directory, MASQLOG from {}; to load only what you use, name every plugin of every stack (plugin=\"{}\", NFCT, and the others' plugins: one plugin= line stops ulogd loading the rest) before the first stack=",
                p.display(),
                p.display()
            ),
        ),
        Some((line, p)) => {
            if let Some(s) = stack_line
                && line > s
            {
                r.fail(
                    format!("plugin (line {line})"),
                    format!(
                        "{} is loaded after the stack that uses it (line {s}): ulogd builds a stack when it reads its line; move the plugin= lines above stack=",
                        p.display()
                    ),
                );
            } else {
                r.ok(
                    format!("plugin (line {line})"),
                    format!("{}: `ulogd -i` lists MASQLOG", p.display()),
                );
            }
        }
        None if !refused.is_empty() => r.fail(
            "plugin",
            format!(
                "`ulogd -i {}` does not list MASQLOG: the plugin does not register with this ulogd (another version?); rebuild it on this machine or see ulogd's log",
                refused[0].display()
            ),
        ),
        None if implicit => r.fail(
            "plugin",
            format!(
                "no plugin= lines and no {} in ulogd's directory: add plugin=\"/usr/lib/x86_64-linux-gnu/ulogd/ulogd_output_MASQLOG.so\" (installed by the masqlog package) before stack=",
                masqlog_core::ulogd_conf::PLUGIN_FILE
            ),
        ),
        None if missing_masqlog => {}
        None => r.fail(
            "plugin",
            "no plugin= line loads MASQLOG: add plugin=\"/usr/lib/x86_64-linux-gnu/ulogd/ulogd_output_MASQLOG.so\" before stack=",
        ),
    }
}

fn is_masqlog_name(p: &Path) -> bool {
    p.file_name()
        .map(|n| n.to_string_lossy().to_ascii_lowercase().contains("masqlog"))
        .unwrap_or(false)
}

/// Reads one integer of a section as ulogd does; flags what ulogd would
/// misread. Returns the value and the entry's line (0 when unset).
fn int_key(r: &mut Report, section: Option<&Section>, key: &str, default: i64) -> (i64, usize) {
    let Some(e) = section.and_then(|s| s.get(key)) else {
        return (default, 0);
    };
    let id = &section.expect("entry from a section").name;
    let v = strtoul_int(&e.value);
    if e.missing_value {
        r.fail(
            format!("[{id}] {key}"),
            format!(
                "`{key}=` (line {}) has no value: ulogd 2.0.8 reads the word \"{key}\" as the number 0; write a number or delete the line",
                e.line
            ),
        );
        return (v, e.line);
    }
    match int_syntax(&e.value) {
        IntSyntax::Decimal | IntSyntax::Hex => {}
        IntSyntax::Octal => r.warn(
            format!("[{id}] {key}"),
            format!(
                "`{key}={}` (line {}) starts with 0: ulogd reads it as octal, {v}; drop the leading zero for decimal",
                e.value, e.line
            ),
        ),
        IntSyntax::Garbage => r.fail(
            format!("[{id}] {key}"),
            format!(
                "`{key}={}` (line {}) is not a number: ulogd 2.0.8 silently reads it as {v}; write a decimal number",
                e.value, e.line
            ),
        ),
    }
    (v, e.line)
}

/// The NFCT section that feeds a MASQLOG stack.
fn check_nfct(r: &mut Report, conf: &ConfFile, id: &str) {
    let subject = format!("[{id}] NFCT");
    let section = match conf.section(id) {
        Ok(s) => s,
        Err(e) => {
            r.fail(&subject, format!("ulogd cannot read it: {e}"));
            return;
        }
    };
    if section.is_none() {
        r.fail(
            &subject,
            format!("no [{id}] section: NFCT runs with hash_enable=1 and no buffer sizes; add [{id}] with hash_enable=0, event_mask=0x00000005, {BUFFER_HINT}, reliable=1"),
        );
        return;
    }
    let s = section.as_ref();
    let before = r.count(Status::Fail) + r.count(Status::Warn);
    if let Some(s) = s {
        for e in &s.entries {
            if e.key.starts_with('#') || NFCT_KEYS.contains(&e.key.as_str()) {
                continue;
            }
            r.warn(
                format!("[{id}] {}", e.key),
                format!(
                    "line {}: not an NFCT key, ulogd ignores it silently{}",
                    e.line,
                    did_you_mean(&e.key, NFCT_KEYS)
                ),
            );
        }
        for key in NFCT_KEYS {
            duplicates(r, s, key);
        }
    }
    let (hash, _) = int_key(r, s, "hash_enable", 1);
    let (mask, _) = int_key(r, s, "event_mask", 5);
    let (size, _) = int_key(r, s, "netlink_socket_buffer_size", 0);
    let (max, _) = int_key(r, s, "netlink_socket_buffer_maxsize", 0);
    let (reliable, _) = int_key(r, s, "reliable", 0);
    let (poll, _) = int_key(r, s, "pollinterval", 0);
    if hash != 0 {
        r.fail(
            format!("[{id}] hash_enable"),
            format!("is {hash}: NFCT keeps its own table and hands only DESTROY events on, so there are no start lines; set hash_enable=0"),
        );
    }
    let lacks: Vec<&str> = [
        (1, "NEW (0x1): no start lines"),
        (4, "DESTROY (0x4): no end lines, no counters"),
    ]
    .iter()
    .filter(|(bit, _)| mask & bit == 0)
    .map(|(_, what)| *what)
    .collect();
    if !lacks.is_empty() {
        r.fail(
            format!("[{id}] event_mask"),
            format!(
                "is {mask:#x}: lacks {}; set event_mask=0x00000005",
                lacks.join(" and ")
            ),
        );
    } else if mask & 2 != 0 {
        r.warn(
            format!("[{id}] event_mask"),
            format!("is {mask:#x}: UPDATE (0x2) adds update lines that nothing needs; set event_mask=0x00000005"),
        );
    }
    if size <= 0 || max <= 0 {
        r.warn(
            format!("[{id}] netlink buffers"),
            format!("not set: a burst of flows overruns the socket and ulogd says \"We are losing events\"; set {BUFFER_HINT} (more for busy routers)"),
        );
    } else if size >= max {
        r.warn(
            format!("[{id}] netlink buffers"),
            format!("netlink_socket_buffer_size={size} is not below netlink_socket_buffer_maxsize={max}: NFCT ignores it and cannot grow the buffer; e.g. {BUFFER_HINT}"),
        );
    }
    if reliable != 1 {
        r.warn(
            format!("[{id}] reliable"),
            "is not 1: under pressure the kernel drops DESTROY events instead of keeping the entry until one is delivered; set reliable=1",
        );
    }
    if poll != 0 {
        r.warn(
            format!("[{id}] pollinterval"),
            format!("is {poll}: NFCT polls the conntrack table instead of listening to events; set pollinterval=0 (or delete it)"),
        );
    }
    if r.count(Status::Fail) + r.count(Status::Warn) == before {
        r.ok(
            subject,
            format!("hash_enable=0 event_mask={mask:#x} netlink buffers {size}..{max} reliable=1"),
        );
    }
}

/// A MASQLOG section: keys known, integers readable, every value valid by
/// the plugin's own code. Returns the config when the plugin would accept
/// it, with the `spool_dir` as configured ([`Config::spool_root`], also
/// with the spool off).
fn check_masqlog(r: &mut Report, conf: &ConfFile, id: &str) -> Option<(Config, Option<PathBuf>)> {
    let subject = format!("[{id}] MASQLOG");
    let section = match conf.section(id) {
        Ok(s) => s,
        Err(e) => {
            r.fail(&subject, format!("ulogd cannot read it: {e}"));
            return None;
        }
    };
    let Some(section) = section else {
        r.warn(
            &subject,
            format!("no [{id}] section: the plugin uses every default (format=text, destination=unix:/dev/log); add one to say so"),
        );
        let root = Config::spool_root(&masqlog_core::config::default_values());
        return Some((Config::default(), root));
    };
    let names: Vec<&str> = CONF_KEYS.iter().map(|k| k.name).collect();
    let mut bad = false;
    let mut unknown = false;
    for e in &section.entries {
        if e.key.starts_with('#') || names.contains(&e.key.as_str()) {
            continue;
        }
        unknown = true;
        r.fail(
            format!("[{id}] {}", e.key),
            format!(
                "line {}: not a MASQLOG key; ulogd 2.0.8 ignores it silently, so the setting you meant is not in force{}",
                e.line,
                did_you_mean(&e.key, &names)
            ),
        );
    }
    let defaults = masqlog_core::config::default_values();
    let mut values = defaults.clone();
    let mut set: Vec<(usize, usize)> = Vec::new(); // (key index, line)
    for (i, k) in CONF_KEYS.iter().enumerate() {
        if duplicates(r, &section, k.name) {
            bad = true;
        }
        let Some(e) = section.get(k.name) else {
            continue;
        };
        set.push((i, e.line));
        match k.kind {
            ConfKind::Str => {
                if e.value.len() >= ulogdconf::STRING_LEN {
                    r.fail(
                        format!("[{id}] {}", k.name),
                        format!(
                            "line {}: {} bytes; ulogd takes at most {} (\"string value too long\")",
                            e.line,
                            e.value.len(),
                            ulogdconf::STRING_LEN - 1
                        ),
                    );
                    bad = true;
                }
                if e.missing_value {
                    let unused = k.name == "hostname" && !destination_is_remote(&section);
                    let msg = format!(
                        "`{0}=` (line {1}) has no value: ulogd 2.0.8 then stores the word \"{0}\" as its value; write `{0}=\"\"` for an empty value, or delete the line for the default{2}",
                        k.name,
                        e.line,
                        if unused {
                            " (unused with a unix: destination)"
                        } else {
                            ""
                        }
                    );
                    if unused {
                        r.warn(format!("[{id}] {}", k.name), msg);
                    } else {
                        r.fail(format!("[{id}] {}", k.name), msg);
                        bad = true;
                    }
                }
                values[i] = RawValue::Str(e.value.clone());
            }
            ConfKind::Int => {
                let before = r.count(Status::Fail);
                let (v, _) = int_key(r, Some(&section), k.name, 0);
                bad |= r.count(Status::Fail) > before;
                values[i] = RawValue::Int(v);
            }
        }
    }
    // Each key alone, so that every bad value is named, not only the first.
    // An error about another key (remote=hash wants its remote_hash_key) is
    // left to the check of all the keys together below.
    for &(i, line) in &set {
        let mut one = defaults.clone();
        one[i] = values[i].clone();
        if let Err(e) = Config::from_values(&one)
            && e.key == CONF_KEYS[i].name
        {
            r.fail(
                format!("[{id}] {}", CONF_KEYS[i].name),
                format!("line {line}: {e}"),
            );
            bad = true;
        }
    }
    match Config::from_values(&values) {
        Ok(cfg) => {
            if !bad && !unknown {
                r.ok(
                    subject,
                    format!(
                        "every key valid: format={} destination={} ident={}",
                        format!("{:?}", cfg.format).to_ascii_lowercase(),
                        cfg.destination,
                        match cfg.ident.as_ref().map(|i| &i.pool.query.mode) {
                            None => "off",
                            Some(Mode::Plain { .. }) => "plain",
                            Some(Mode::Transparent) => "transparent",
                        }
                    ),
                );
            }
            Some((cfg, Config::spool_root(&values)))
        }
        Err(e) => {
            if !bad {
                r.fail(subject, e.to_string());
            }
            None
        }
    }
}

fn destination_is_remote(section: &Section) -> bool {
    section
        .get("destination")
        .and_then(|e| masqlog_core::config::parse_destination(&e.value))
        .is_some_and(|d| d.is_remote())
}

fn check_sysctls(r: &mut Report, sys: &dyn System) {
    for (name, what) in masqlog_core::config::CONNTRACK_SYSCTLS {
        let subject = format!("sysctl net.netfilter.{name}");
        match sys.read_sysctl(&format!("net/netfilter/{name}")) {
            Ok(v) if v.trim() == "1" => r.ok(subject, "1"),
            Ok(v) => r.fail(
                subject,
                format!(
                    "is {}: {what}; {}",
                    v.trim(),
                    masqlog_core::config::sysctl_fix(name)
                ),
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => r.warn(
                subject,
                format!("cannot be read: nf_conntrack is not loaded in this network namespace yet (it loads with the first NAT rule); check again then, and put net.netfilter.{name}=1 into /etc/sysctl.d/90-masqlog.conf"),
            ),
            Err(e) => r.warn(subject, format!("cannot be read: {e}")),
        }
    }
}

/// Whether the instance's records will be sealed: the sealing state
/// `masqlog keygen` makes, readable and well formed, and safe where it is.
/// The evidence store's directory (`store_dir`): the plugin creates it
/// (mode 0750) when it is missing and refuses one that is a symlink; its
/// segments are evidence, so nobody but the writer may write there.
fn check_store(r: &mut Report, id: &str, dir: &Path, sys: &dyn System) {
    let subject = format!("[{id}] store_dir {}", dir.display());
    let Ok(info) = sys.file_info(dir) else {
        return r.ok(
            subject,
            "not there yet: the plugin creates it at start (mode 0750, owned like its parent); ulogd running as --uid ulog needs it owned by ulog (install -d -o ulog -m 0750)",
        );
    };
    match info.kind {
        FileKind::Dir => {}
        FileKind::Symlink => {
            return r.fail(
                subject,
                "is a symlink, which the plugin refuses: make it a directory (install -d -o ulog -m 0750)",
            );
        }
        _ => return r.fail(subject, "is not a directory"),
    }
    let owner = user_name(sys, info.uid);
    if info.mode & 0o022 != 0 {
        r.fail(
            subject,
            format!(
                "mode {:04o}: others may write to it (delete or replace evidence); chmod 0750 {}",
                info.mode,
                dir.display()
            ),
        );
    } else {
        r.ok(
            subject,
            format!("a directory, owner {owner}, mode {:04o}", info.mode),
        );
    }
}

/// It holds the forward-secure signing key: whoever reads it can seal
/// forged records from its epoch on, and whoever can replace it (or the
/// directory's entry) chooses the key. Nothing secret is shown.
fn check_seal(r: &mut Report, id: &str, seal: &SealConfig, sys: &dyn System) {
    let subject = format!("[{id}] seal");
    let path = seal.state.display();
    if seal.mode == SealMode::Off {
        r.warn(
            subject,
            "seal=off: records carry no seal, so a forged line cannot be told from a real one (masqlog verify, lookup --key); set seal=auto and run `masqlog keygen`",
        );
        return;
    }
    let missing = |r: &mut Report| {
        let why = format!(
            "{path} does not exist (or cannot be read): records are not sealed; run `masqlog keygen --owner ulog` (the user ulogd runs as) and keep the verification key it prints off the router"
        );
        if seal.mode == SealMode::On {
            r.fail(
                &subject,
                format!("{why}; with seal=on ulogd does not start"),
            );
        } else {
            r.warn(&subject, why);
        }
    };
    let info = match sys.file_info(&seal.state) {
        Ok(i) => i,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            missing(r);
            return;
        }
        Err(e) => {
            r.fail(
                &subject,
                format!("{path} cannot be looked at ({e}): ulogd does not start with it"),
            );
            return;
        }
    };
    match info.kind {
        FileKind::File => {}
        FileKind::Symlink => {
            r.fail(
                &subject,
                format!("{path} is a symlink: the plugin refuses it (ulogd does not start), and whoever can change the link chooses the key; put the file itself there (mv the target to {path}), then chmod 600 {path}"),
            );
            return;
        }
        kind => {
            r.fail(
                &subject,
                format!(
                    "{path} is not a regular file (a {}): ulogd does not start with it; move it away and run `masqlog keygen`",
                    if kind == FileKind::Dir { "directory" } else { "socket, device or fifo" }
                ),
            );
            return;
        }
    }
    let Some(text) = sys.read_file(&seal.state) else {
        missing(r);
        return;
    };
    let mut safe = true;
    if info.mode & 0o077 != 0 {
        safe = false;
        let who = match (info.mode & 0o070 != 0, info.mode & 0o007 != 0) {
            (true, true) => "its group and others",
            (true, false) => "its group",
            _ => "others",
        };
        let may = match (info.mode & 0o044 != 0, info.mode & 0o022 != 0) {
            (true, true) => {
                "read and write it: whoever reads the key can seal forged records from this epoch on, whoever writes it chooses the key"
            }
            (true, false) => {
                "read it: whoever reads the key can seal forged records from this epoch on"
            }
            (false, true) => "write it: whoever writes it chooses the key",
            (false, false) => "execute it; only its owner needs it, to read and write",
        };
        r.fail(
            &subject,
            format!(
                "{path} has mode {:04o}: {who} may {may}; chmod 600 {path}",
                info.mode
            ),
        );
    }
    let dir = match seal.state.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let dir_s = dir.display();
    match sys.file_info(dir) {
        Err(e) => {
            safe = false;
            r.fail(
                &subject,
                format!("{dir_s}, the directory of {path}, cannot be looked at ({e})"),
            );
        }
        Ok(d) if d.kind != FileKind::Dir => {
            safe = false;
            r.fail(
                &subject,
                format!("{dir_s}, the directory of {path}, is a symlink or no directory: the plugin refuses it (ulogd does not start); make it a real directory, mode 0700"),
            );
        }
        Ok(d) => {
            if d.mode & 0o022 != 0 {
                safe = false;
                r.fail(
                    &subject,
                    format!(
                        "{dir_s}, the directory of {path}, has mode {:04o}: {} may write to it, so they can replace the sealing state and choose the key; the plugin refuses it (ulogd does not start); chmod go-w {dir_s}",
                        d.mode,
                        if d.mode & 0o020 != 0 && d.mode & 0o002 != 0 {
                            "its group and others"
                        } else if d.mode & 0o020 != 0 {
                            "its group"
                        } else {
                            "others"
                        }
                    ),
                );
            }
            // The owner of the state (ulog, when ulogd runs with --uid ulog)
            // must own the directory too: the plugin replaces the state there.
            if d.uid != 0 && d.uid != info.uid {
                safe = false;
                r.fail(
                    &subject,
                    format!(
                        "{dir_s}, the directory of {path}, is owned by {}, neither root nor the owner of {path} ({}): that user can replace the sealing state and choose the key; chown {} {dir_s}",
                        user_name(sys, d.uid),
                        user_name(sys, info.uid),
                        if info.uid == 0 { "root".to_string() } else { user_name(sys, info.uid) }
                    ),
                );
            }
        }
    }
    match masqlog_core::seal::SealState::parse(&text) {
        Ok(st) if safe => r.ok(
            subject,
            format!(
                "{path} (owner {}, mode {:04o}): records are sealed as {}/{id}, epoch {} of {} s",
                user_name(sys, info.uid),
                info.mode,
                st.host,
                st.epoch(),
                st.epochs.epoch_secs
            ),
        ),
        Ok(_) => {}
        Err(e) => r.fail(
            subject,
            format!("{path}: {e}: ulogd does not start with it; make a new key with `masqlog keygen` after moving this file away"),
        ),
    }
}

/// The name of user `uid` from /etc/passwd, else `uid N`.
fn user_name(sys: &dyn System, uid: u32) -> String {
    sys.read_file(Path::new("/etc/passwd"))
        .and_then(|passwd| {
            passwd.lines().find_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                (f.len() > 2 && f[2].parse() == Ok(uid)).then(|| f[0].to_string())
            })
        })
        .unwrap_or_else(|| {
            if uid == 0 {
                "root".to_string()
            } else {
                format!("uid {uid}")
            }
        })
}

fn check_destination(r: &mut Report, id: &str, dest: &Destination, sys: &dyn System) {
    let subject = format!("[{id}] destination");
    match dest {
        Destination::Unix(path) if sys.same_file(path, Path::new(JOURNALD_DEV_LOG)) => r.warn(
            subject,
            format!(
                "{dest} is journald's socket ({JOURNALD_DEV_LOG}): every record passes through the journal, which drops a service's messages beyond 10000 in 30 s by default (RateLimitBurst/RateLimitIntervalSec in journald.conf; a burst of DESTROY events is cut, with one \"Suppressed N messages\" line) and keeps a second copy outside the retention of /etc/logrotate.d/masqlog. Use destination={} (the masqlog package's rsyslog input, no rate limit; `masqlog enable` writes it)",
                crate::package::DESTINATION
            ),
        ),
        Destination::Unix(path) => match sys.unix_connect(path) {
            Ok(()) => r.ok(subject, format!("{dest}: the socket accepts datagrams")),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => r.fail(
                subject,
                format!("{dest}: no such socket: is the syslog daemon running (systemctl status rsyslog)? Records wait in the queue until it is"),
            ),
            Err(e) => r.fail(
                subject,
                format!("{dest}: connect fails ({e}): start the syslog daemon, or correct the path"),
            ),
        },
        Destination::Tcp(addr) | Destination::Relp(addr) | Destination::IpfixTcp(addr) => match sys.tcp_connect(*addr, Duration::from_secs(2)) {
            Ok(()) => r.ok(subject, format!("{dest}: accepts connections")),
            Err(e) => r.fail(
                subject,
                format!("{dest}: cannot connect ({e}): is the receiver listening, and does the firewall let the router through?"),
            ),
        },
        Destination::File(path) => {
            let dir = path.parent().unwrap_or(Path::new("/"));
            if sys.read_file(dir).is_some() {
                r.ok(
                    subject,
                    format!("{dest}: its directory exists; the plugin appends to the file, or creates it (mode 0640, owned by the directory's owner)"),
                );
            } else {
                r.fail(
                    subject,
                    format!("{dest}: the directory {} does not exist or cannot be read: create it, owned by the user ulogd runs as (`install -d -o ulog -m 0750 {}`)", dir.display(), dir.display()),
                );
            }
        }
        Destination::Postgres(t) => match crate::db::connect(&crate::db::url_of(t))
            .and_then(|mut c| crate::db::check_version(&mut c))
        {
            Ok(()) => r.ok(
                subject,
                format!("{dest}: connects, schema version {}", crate::db::SCHEMA_VERSION),
            ),
            Err(e) => r.fail(subject, format!("{dest}: {e}")),
        },
        Destination::Udp(_) => r.warn(
            subject,
            format!("{dest}: not checkable (UDP gives no delivery feedback, and nor does the plugin); relp: acknowledges every message"),
        ),
        Destination::IpfixUdp(_) => r.warn(
            subject,
            format!("{dest}: not checkable (UDP gives no delivery feedback); the collector counts lost records by the IPFIX sequence numbers, and ipfix+tcp: spools while the collector is down"),
        ),
        // The config reader refuses it without a store_dir, checked below.
        Destination::None => r.ok(
            subject,
            "none: no forwarding; the records are kept in the evidence store (store_dir) only; the spool directory holds the disk lane only (records wait there while the writer is behind)".to_string(),
        ),
    }
}

/// Transparent IDENT: the capability, the nftables mark rule, the ip rule
/// and the local route of README's "Transparent mode".
fn check_transparent(r: &mut Report, ids: &str, sys: &dyn System) {
    let subject = |what: &str| format!("ident=transparent ({ids}) {what}");
    match sys.transparent_capability() {
        Ok(()) => r.ok(
            subject("capability"),
            "IP_TRANSPARENT is permitted (CAP_NET_ADMIN)",
        ),
        Err(e) => r.fail(subject("capability"), e),
    }
    if let Some(exec) = ulogd_service_exec(sys)
        && (exec.contains("--uid") || exec.split_whitespace().any(|w| w == "-u"))
    {
        r.warn(
            subject("service"),
            format!("ulogd2.service starts `{exec}`: --uid drops CAP_NET_ADMIN, which transparent queries need; run ulogd as root (a drop-in without --uid) or use ident=plain"),
        );
    }
    let ruleset = match sys.command(&["nft", "list", "ruleset"]) {
        Ok(s) => s,
        Err(e) => {
            r.fail(
                subject("nftables"),
                format!("cannot list the ruleset ({e})"),
            );
            return;
        }
    };
    let mark = ruleset
        .lines()
        .find(|l| l.contains("socket transparent 1") && l.contains("meta mark set"))
        .and_then(|l| l.split("meta mark set").nth(1))
        .and_then(|m| m.split_whitespace().next())
        .and_then(parse_u32);
    let Some(mark) = mark else {
        r.fail(
            subject("nftables"),
            format!("no rule `meta l4proto tcp socket transparent 1 meta mark set 0x1` in a prerouting chain: replies to the queries are forwarded instead of reaching the plugin; load it as in {IDENT_EXAMPLE} (README: IDENT)"),
        );
        return;
    };
    r.ok(
        subject("nftables"),
        format!("`socket transparent 1` sets mark {mark:#x}"),
    );
    for v6 in [false, true] {
        let fam = if v6 { "IPv6" } else { "IPv4" };
        let ip = |args: &[&str]| {
            let mut argv = vec!["ip"];
            if v6 {
                argv.push("-6");
            }
            argv.extend_from_slice(args);
            sys.command(&argv)
        };
        let missing = |r: &mut Report, what: String, msg: String| {
            if v6 {
                r.warn(
                    subject(&what),
                    format!("{msg} (needed for IPv6 clients only)"),
                );
            } else {
                r.fail(subject(&what), msg);
            }
        };
        let rules = ip(&["rule", "show"]).unwrap_or_default();
        let table = rules.lines().find_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            let m = w.iter().position(|x| *x == "fwmark")?;
            let t = w.iter().position(|x| *x == "lookup")?;
            let rule_mark = w.get(m + 1)?.split('/').next().and_then(parse_u32)?;
            (rule_mark == mark).then(|| w.get(t + 1).map(|s| s.to_string()))?
        });
        let dash6 = if v6 { " -6" } else { "" };
        let Some(table) = table else {
            missing(
                r,
                format!("{fam} rule"),
                format!(
                    "no `ip{dash6} rule` sends fwmark {mark:#x} to a table: add `ip{dash6} rule add fwmark {mark:#x} lookup 100`"
                ),
            );
            continue;
        };
        let routes = ip(&["route", "show", "table", &table]).unwrap_or_default();
        let has_local = routes.lines().any(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            w.first() == Some(&"local")
                && matches!(
                    w.get(1),
                    Some(&"default") | Some(&"0.0.0.0/0") | Some(&"::/0")
                )
                && l.contains("dev lo")
        });
        if has_local {
            r.ok(
                subject(&format!("{fam} routing")),
                format!("fwmark {mark:#x} -> table {table} -> local default dev lo"),
            );
        } else {
            let any = if v6 { "::/0" } else { "0.0.0.0/0" };
            missing(
                r,
                format!("{fam} routing"),
                format!(
                    "table {table} has no `local {any} dev lo` route: add `ip{dash6} route add local {any} dev lo table {table}`"
                ),
            );
        }
    }
}

/// The config file ulogd2.service starts ulogd with: the `-c`/`--configfile`
/// of its ExecStart, as systemd reports it (`systemctl show`), else as the
/// unit file and its drop-ins say; `None` when there is no such unit or it
/// names no config (ulogd then reads /etc/ulogd.conf).
pub fn ulogd_unit_config(sys: &dyn System) -> Option<PathBuf> {
    let shown = sys
        .command(&[
            "systemctl",
            "show",
            "-p",
            "ExecStart",
            "--value",
            "ulogd2.service",
        ])
        .ok()
        .and_then(|s| {
            // { path=/usr/sbin/ulogd ; argv[]=/usr/sbin/ulogd --daemon ... ; ignore_errors=no ; ... }
            let a = s.find("argv[]=")? + "argv[]=".len();
            let rest = &s[a..];
            Some(rest[..rest.find(" ;").unwrap_or(rest.len())].to_string())
        });
    let exec = shown.or_else(|| ulogd_service_exec(sys))?;
    config_of_exec(&exec)
}

/// The `-c FILE`, `-cFILE`, `--configfile FILE` or `--configfile=FILE` of
/// a ulogd command line.
///
/// ```text
/// /usr/sbin/ulogd --daemon --uid ulog --configfile /etc/ulogd-masqlog.conf
/// ```
pub fn config_of_exec(exec: &str) -> Option<PathBuf> {
    let mut words = exec.split_whitespace();
    let mut found = None;
    while let Some(w) = words.next() {
        if w == "-c" || w == "--configfile" {
            found = words.next().map(PathBuf::from);
        } else if let Some(v) = w.strip_prefix("--configfile=") {
            found = Some(PathBuf::from(v));
        } else if let Some(v) = w
            .strip_prefix("-c")
            .filter(|v| !v.is_empty() && !w.starts_with("--"))
        {
            found = Some(PathBuf::from(v));
        }
    }
    found
}

/// The ExecStart of ulogd2.service in force (the unit, then its drop-ins).
fn ulogd_service_exec(sys: &dyn System) -> Option<String> {
    let mut exec = None;
    let mut files: Vec<PathBuf> = ["/lib/systemd/system", "/etc/systemd/system"]
        .iter()
        .map(|d| Path::new(d).join("ulogd2.service"))
        .collect();
    for d in ["/lib/systemd/system", "/etc/systemd/system"] {
        if let Some(list) = sys.read_file(&Path::new(d).join("ulogd2.service.d")) {
            let mut names: Vec<&str> = list.lines().filter(|n| n.ends_with(".conf")).collect();
            names.sort_unstable();
            files.extend(
                names
                    .iter()
                    .map(|n| Path::new(d).join("ulogd2.service.d").join(n)),
            );
        }
    }
    for f in files {
        let Some(text) = sys.read_file(&f) else {
            continue;
        };
        for l in text.lines() {
            if let Some(v) = l.trim().strip_prefix("ExecStart=") {
                exec = (!v.trim().is_empty()).then(|| v.trim().to_string());
            }
        }
    }
    exec
}

fn parse_u32(s: &str) -> Option<u32> {
    match s.strip_prefix("0x") {
        Some(h) => u32::from_str_radix(h, 16).ok(),
        None => s.parse().ok(),
    }
}

/// `: did you mean `x`?` for the nearest known name, if near enough.
fn did_you_mean(key: &str, names: &[&str]) -> String {
    names
        .iter()
        .map(|n| (edit_distance(key, n), *n))
        .filter(|(d, n)| *d <= 2.max(n.len() / 4))
        .min()
        .map(|(_, n)| format!(": did you mean `{n}`?"))
        .unwrap_or_default()
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
pub(crate) mod tests;
