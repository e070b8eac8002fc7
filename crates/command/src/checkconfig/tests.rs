//! The checks against a made-up machine.

use std::cell::RefCell;
use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::*;

const SO: &str = "/usr/lib/x86_64-linux-gnu/ulogd/ulogd_output_MASQLOG.so";
const NFCT_SO: &str = "/usr/lib/x86_64-linux-gnu/ulogd/ulogd_inpflow_NFCT.so";

/// A machine where everything the example config needs is in place.
/// The default `seal_state`.
const SEAL_STATE: &str = "/var/lib/masqlog/seal.state";

pub(crate) struct Fake {
    sysctls: HashMap<&'static str, &'static str>,
    files: Vec<PathBuf>,
    masqlog_registers: bool,
    syslog_listening: bool,
    tcp_open: bool,
    capable: bool,
    commands: HashMap<String, String>,
    texts: HashMap<PathBuf, String>,
    /// What `lstat` says; a path missing here is a file (mode 0600, root's)
    /// when it has a text, else not there.
    infos: HashMap<PathBuf, FileInfo>,
    /// The directories in a directory.
    dirs: HashMap<PathBuf, Vec<String>>,
    /// Spool directories and what they hold.
    spools: HashMap<PathBuf, SpoolContents>,
    ran: RefCell<Vec<String>>,
    /// Pairs of paths that are the same file (a symlink and its target).
    same: Vec<(PathBuf, PathBuf)>,
}

/// What the default sealing state's directory is.
const SEAL_DIR: &str = "/var/lib/masqlog";
/// The default `spool_dir`.
const SPOOL_ROOT: &str = "/var/spool/masqlog";

fn info(kind: FileKind, mode: u32, uid: u32) -> FileInfo {
    FileInfo { kind, mode, uid }
}

impl Default for Fake {
    fn default() -> Fake {
        Fake {
            sysctls: HashMap::from([
                ("net/netfilter/nf_conntrack_acct", "1\n"),
                ("net/netfilter/nf_conntrack_timestamp", "1\n"),
            ]),
            files: vec![SO.into(), NFCT_SO.into(), "/dev/log".into()],
            masqlog_registers: true,
            syslog_listening: true,
            tcp_open: true,
            capable: true,
            commands: HashMap::from([
                (
                    "nft list ruleset".to_string(),
                    "table inet masqlog_ident {\n\tchain pre {\n\t\ttype filter hook prerouting priority mangle; policy accept;\n\t\tmeta l4proto tcp socket transparent 1 meta mark set 0x00000001\n\t}\n}\n"
                        .to_string(),
                ),
                (
                    "ip rule show".to_string(),
                    "0:\tfrom all lookup local\n32765:\tfrom all fwmark 0x1 lookup 100\n32766:\tfrom all lookup main\n".to_string(),
                ),
                (
                    "ip -6 rule show".to_string(),
                    "32765:\tfrom all fwmark 0x1 lookup 100\n".to_string(),
                ),
                (
                    "ip route show table 100".to_string(),
                    "local default dev lo scope host \n".to_string(),
                ),
                (
                    "ip -6 route show table 100".to_string(),
                    "local default dev lo metric 1024 pref medium\n".to_string(),
                ),
            ]),
            texts: HashMap::from([(
                PathBuf::from(SEAL_STATE),
                masqlog_core::seal::VerifyKey::generate("gw1", 1_764_000_000, 900)
                    .unwrap()
                    .initial_state()
                    .to_text(),
            )]),
            infos: HashMap::from([(PathBuf::from(SEAL_DIR), info(FileKind::Dir, 0o700, 0))]),
            dirs: HashMap::new(),
            spools: HashMap::new(),
            ran: RefCell::new(Vec::new()),
            same: Vec::new(),
        }
    }
}

impl System for Fake {
    fn read_sysctl(&self, key: &str) -> io::Result<String> {
        self.sysctls
            .get(key)
            .map(|v| v.to_string())
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))
    }

    fn exists(&self, path: &Path) -> bool {
        self.files.iter().any(|f| f == path)
    }

    fn same_file(&self, a: &Path, b: &Path) -> bool {
        self.same
            .iter()
            .any(|(x, y)| (x == a && y == b) || (x == b && y == a))
    }

    fn plugin_info(&self, path: &Path) -> Result<String, String> {
        self.ran
            .borrow_mut()
            .push(format!("ulogd -i {}", path.display()));
        let name = if path.to_string_lossy().contains("NFCT") {
            "NFCT"
        } else if self.masqlog_registers {
            "MASQLOG"
        } else {
            return Ok(String::new());
        };
        Ok(format!("Name: {name}\nConfig options:\n"))
    }

    fn default_plugin_dir(&self) -> PathBuf {
        "/usr/lib/x86_64-linux-gnu/ulogd".into()
    }

    fn unix_connect(&self, path: &Path) -> io::Result<()> {
        if !self.exists(path) {
            Err(io::ErrorKind::NotFound.into())
        } else if self.syslog_listening {
            Ok(())
        } else {
            Err(io::ErrorKind::ConnectionRefused.into())
        }
    }

    fn tcp_connect(&self, _addr: SocketAddr, _timeout: Duration) -> io::Result<()> {
        if self.tcp_open {
            Ok(())
        } else {
            Err(io::ErrorKind::ConnectionRefused.into())
        }
    }

    fn transparent_capability(&self) -> Result<(), String> {
        if self.capable {
            Ok(())
        } else {
            Err("IP_TRANSPARENT is not permitted".into())
        }
    }

    fn command(&self, argv: &[&str]) -> Result<String, String> {
        self.commands
            .get(&argv.join(" "))
            .cloned()
            .ok_or_else(|| format!("no {}", argv.join(" ")))
    }

    fn read_file(&self, path: &Path) -> Option<String> {
        self.texts.get(path).cloned()
    }

    fn file_info(&self, path: &Path) -> io::Result<FileInfo> {
        match self.infos.get(path) {
            Some(i) => Ok(*i),
            None if self.texts.contains_key(path) => Ok(info(FileKind::File, 0o600, 0)),
            None => Err(io::ErrorKind::NotFound.into()),
        }
    }

    fn subdirs(&self, path: &Path) -> io::Result<Vec<String>> {
        self.dirs
            .get(path)
            .cloned()
            .ok_or_else(|| io::ErrorKind::NotFound.into())
    }

    fn spool_contents(&self, dir: &Path) -> io::Result<Option<SpoolContents>> {
        Ok(self.spools.get(dir).copied())
    }
}

/// The packaged example, as Debian would have it.
fn good() -> String {
    format!(
        "# a comment\n[global]\nlogfile=\"/var/log/ulog/ulogd.log\"\nloglevel=3\n\
         plugin=\"{NFCT_SO}\"\nplugin=\"{SO}\"\nstack=ct1:NFCT,masq1:MASQLOG\n\n\
         [ct1]\nhash_enable=0\nevent_mask=0x00000005\nnetlink_socket_buffer_size=217088\n\
         netlink_socket_buffer_maxsize=1085440\nreliable=1\n\n\
         [masq1]\nformat=text\nnat=snat\ndestination=unix:/dev/log\nhostname=\"\"\nqueue_size=65536\n"
    )
}

fn run(text: &str, sys: &Fake) -> Report {
    check(Path::new("/etc/ulogd.conf"), text.as_bytes(), sys)
}

fn has(r: &Report, status: Status, subject: &str, needle: &str) -> bool {
    r.results
        .iter()
        .any(|f| f.status == status && f.subject.contains(subject) && f.message.contains(needle))
}

/// Asserts a line with `status` for `subject` whose message holds `needle`.
#[track_caller]
fn must(r: &Report, status: Status, subject: &str, needle: &str) {
    assert!(has(r, status, subject, needle), "{}", r.render_text());
}

/// Asserts there is no such line.
#[track_caller]
fn lacks(r: &Report, status: Status, subject: &str, needle: &str) {
    assert!(!has(r, status, subject, needle), "{}", r.render_text());
}

#[test]
fn the_example_is_all_green() {
    let r = run(&good(), &Fake::default());
    assert_eq!(r.count(Status::Fail), 0, "{}", r.render_text());
    assert_eq!(r.count(Status::Warn), 0, "{}", r.render_text());
    assert_eq!(r.exit_code(), 0);
    for subject in [
        "plugin (line 6)",
        "[ct1] NFCT",
        "[masq1] MASQLOG",
        "sysctl net.netfilter.nf_conntrack_acct",
        "sysctl net.netfilter.nf_conntrack_timestamp",
        "[masq1] destination",
        "[masq1] seal",
    ] {
        assert!(
            r.results
                .iter()
                .any(|f| f.subject == subject && f.status == Status::Ok),
            "no ok line for {subject}:\n{}",
            r.render_text()
        );
    }
    assert!(
        r.render_text()
            .ends_with(": 7 ok, 0 warnings, 0 failures: ready\n")
    );
}

#[test]
fn a_broken_config_names_each_problem() {
    let text = good()
        .replace("hash_enable=0", "hash_enable=1")
        .replace("event_mask=0x00000005", "event_mask=4")
        .replace("format=text", "format=xml\nqueue_sise=100")
        .replace("queue_size=65536", "queue_size=abc");
    let mut sys = Fake::default();
    sys.files.retain(|f| f != Path::new(SO));
    sys.sysctls.insert("net/netfilter/nf_conntrack_acct", "0\n");
    let r = run(&text, &sys);
    let text = r.render_text();
    assert_eq!(r.exit_code(), 1, "{text}");
    assert!(
        has(&r, Status::Fail, "[ct1] hash_enable", "set hash_enable=0"),
        "{text}"
    );
    assert!(
        has(&r, Status::Fail, "[ct1] event_mask", "lacks NEW (0x1)"),
        "{text}"
    );
    assert!(
        has(
            &r,
            Status::Fail,
            "[masq1] format",
            "\"xml\": one of text, rfc5424, json"
        ),
        "{text}"
    );
    assert!(
        has(
            &r,
            Status::Fail,
            "[masq1] queue_sise",
            "did you mean `queue_size`?"
        ),
        "{text}"
    );
    assert!(
        has(&r, Status::Fail, "[masq1] queue_size", "reads it as 0"),
        "{text}"
    );
    assert!(
        has(&r, Status::Fail, "[masq1] queue_size", "from 64 to 4194304"),
        "{text}"
    );
    assert!(
        has(&r, Status::Fail, "plugin (line 6)", "does not exist"),
        "{text}"
    );
    assert!(
        has(
            &r,
            Status::Fail,
            "nf_conntrack_acct",
            "sysctl -w net.netfilter.nf_conntrack_acct=1"
        ),
        "{text}"
    );
    assert!(text.lines().last().unwrap().contains("failures"), "{text}");
}

#[test]
fn nfct_defaults_and_recommendations() {
    let text = good()
        .replace("hash_enable=0\n", "")
        .replace("reliable=1\n", "")
        .replace(
            "netlink_socket_buffer_maxsize=1085440\n",
            "hash_buckts=10\n",
        );
    let r = run(&text, &Fake::default());
    let t = r.render_text();
    assert!(has(&r, Status::Fail, "[ct1] hash_enable", "is 1"), "{t}");
    assert!(has(&r, Status::Warn, "[ct1] reliable", "reliable=1"), "{t}");
    assert!(
        has(&r, Status::Warn, "[ct1] netlink buffers", "not set"),
        "{t}"
    );
    assert!(
        has(
            &r,
            Status::Warn,
            "[ct1] hash_buckts",
            "did you mean `hash_buckets`?"
        ),
        "{t}"
    );
    let r = run(&good().replace("=217088", "=2000000"), &Fake::default());
    must(&r, Status::Warn, "netlink buffers", "is not below");
    let r = run(
        &good().replace("event_mask=0x00000005", "event_mask=7"),
        &Fake::default(),
    );
    must(&r, Status::Warn, "event_mask", "UPDATE");
    assert_eq!(r.exit_code(), 0);
}

#[test]
fn ulogd_quirks_are_reported() {
    // key= stores the key's name; tag "tag" is valid but not what was meant
    let r = run(&format!("{}tag=\n", good()), &Fake::default());
    must(&r, Status::Fail, "[masq1] tag", "stores the word \"tag\"");
    // hostname= with a local destination: unused, a warning
    let r = run(
        &good().replace("hostname=\"\"", "hostname="),
        &Fake::default(),
    );
    must(&r, Status::Warn, "[masq1] hostname", "unused");
    assert_eq!(r.exit_code(), 0);
    // ident_source= reads as "ident_source", which the plugin refuses
    let r = run(&format!("{}ident_source=\n", good()), &Fake::default());
    must(&r, Status::Fail, "[masq1] ident_source", "\"ident_source\"");
    // octal, duplicates, and a last line without newline
    let r = run(
        &format!("{}stats_interval=0300\n", good()),
        &Fake::default(),
    );
    must(&r, Status::Warn, "stats_interval", "octal, 192");
    let r = run(&format!("{}format=json\n", good()), &Fake::default());
    must(&r, Status::Fail, "[masq1] format", "more than once");
    let r = run(good().trim_end(), &Fake::default());
    must(&r, Status::Fail, "[masq1] MASQLOG", "too long");
}

#[test]
fn stacks_and_plugins() {
    let r = run(
        &good().replace(
            "stack=ct1:NFCT,masq1:MASQLOG",
            "stack=ct1:NFCT, masq1:MASQLOG",
        ),
        &Fake::default(),
    );
    must(&r, Status::Fail, "stack", "no stack= line names a MASQLOG");
    let r = run(
        &good().replace(
            "stack=ct1:NFCT,masq1:MASQLOG",
            "stack=log1:NFLOG,masq1:MASQLOG",
        ),
        &Fake::default(),
    );
    must(&r, Status::Fail, "stack (line 7)", "start it with an NFCT");
    // plugin= after stack=
    let moved = good().replace(&format!("plugin=\"{SO}\"\n"), "");
    let moved = moved.replace(
        "stack=ct1:NFCT,masq1:MASQLOG\n",
        &format!("stack=ct1:NFCT,masq1:MASQLOG\nplugin=\"{SO}\"\n"),
    );
    let r = run(&moved, &Fake::default());
    must(
        &r,
        Status::Fail,
        "plugin (line 7)",
        "move the plugin= lines above",
    );
    // a plugin ulogd does not take
    let sys = Fake {
        masqlog_registers: false,
        ..Fake::default()
    };
    let r = run(&good(), &sys);
    must(&r, Status::Fail, "plugin", "does not list MASQLOG");
    // no plugin lines: ulogd loads its whole directory
    let bare: String = good()
        .lines()
        .filter(|l| !l.starts_with("plugin="))
        .map(|l| format!("{l}\n"))
        .collect();
    let r = run(&bare, &Fake::default());
    must(&r, Status::Warn, "plugin", "no plugin= lines");
    assert_eq!(r.exit_code(), 0);
}

#[test]
fn destinations() {
    let sys = Fake {
        syslog_listening: false,
        ..Fake::default()
    };
    let r = run(&good(), &sys);
    must(&r, Status::Fail, "destination", "connect fails");
    let r = run(
        &good().replace("unix:/dev/log", "udp:192.0.2.9:514"),
        &Fake::default(),
    );
    must(&r, Status::Warn, "destination", "not checkable");
    assert_eq!(r.exit_code(), 0);
    let sys = Fake {
        tcp_open: false,
        ..Fake::default()
    };
    let r = run(&good().replace("unix:/dev/log", "tcp:192.0.2.9:6514"), &sys);
    must(&r, Status::Fail, "destination", "cannot connect");
    let r = run(
        &good().replace("unix:/dev/log", "ipfix+tcp:[2001:db8::9]:4739"),
        &sys,
    );
    must(&r, Status::Fail, "destination", "cannot connect");
    let r = run(
        &good().replace("unix:/dev/log", "ipfix+udp:192.0.2.9:4739"),
        &Fake::default(),
    );
    must(&r, Status::Warn, "destination", "IPFIX sequence numbers");
    assert_eq!(r.exit_code(), 0);
}

#[test]
fn transparent_ident_needs_its_routing() {
    let text = format!("{}ident=transparent\n", good());
    let r = run(&text, &Fake::default());
    assert_eq!(r.count(Status::Fail), 0, "{}", r.render_text());
    must(&r, Status::Ok, "IPv4 routing", "table 100");
    let mut sys = Fake {
        capable: false,
        ..Fake::default()
    };
    sys.commands
        .insert("ip route show table 100".into(), String::new());
    sys.commands.insert("ip -6 rule show".into(), String::new());
    sys.texts.insert(
        "/lib/systemd/system/ulogd2.service".into(),
        "[Service]\nExecStart=/usr/sbin/ulogd --daemon --uid ulog --pidfile /run/ulog/ulogd.pid\n"
            .into(),
    );
    let r = run(&text, &sys);
    let t = r.render_text();
    assert!(has(&r, Status::Fail, "capability", "not permitted"), "{t}");
    assert!(has(&r, Status::Warn, "service", "--uid"), "{t}");
    assert!(
        has(
            &r,
            Status::Fail,
            "IPv4 routing",
            "ip route add local 0.0.0.0/0 dev lo table 100"
        ),
        "{t}"
    );
    assert!(
        has(
            &r,
            Status::Warn,
            "IPv6 rule",
            "ip -6 rule add fwmark 0x1 lookup 100"
        ),
        "{t}"
    );
    sys.commands.remove("nft list ruleset");
    sys.commands
        .insert("nft list ruleset".into(), String::new());
    let r = run(&text, &sys);
    must(&r, Status::Fail, "nftables", "socket transparent 1");
}

#[test]
fn json_report() {
    let r = run(&good(), &Fake::default());
    let mut out = Vec::new();
    r.to_json().write(&mut out);
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["exit"], 0);
    assert_eq!(v["failures"], 0);
    assert_eq!(v["findings"][0]["status"], "ok");
    assert!(v["findings"].as_array().unwrap().len() >= 6);
}

#[test]
fn a_section_without_global_or_masqlog() {
    let r = run("[ct1]\nhash_enable=0\n", &Fake::default());
    assert!(has(&r, Status::Fail, "[global]", "no [global] section"));
    let r = run(&good().replace("[masq1]", "[other]"), &Fake::default());
    must(&r, Status::Warn, "[masq1] MASQLOG", "no [masq1] section");
}

/// `good()` with `key=value` as the last line of `[masq1]` (any earlier
/// line of that key removed), and that line's number.
fn with_key(key: &str, value: &str) -> (String, usize) {
    let prefix = format!("{key}=");
    let mut text: String = good()
        .lines()
        .filter(|l| !l.starts_with(&prefix))
        .map(|l| format!("{l}\n"))
        .collect();
    text.push_str(&format!("{key}={value}\n"));
    let line = text.lines().count();
    (text, line)
}

/// Every kind of bad value of every plugin key: one FAIL line for the key,
/// with the line, the value as the plugin reads it and what is allowed (the
/// plugin's own message), and exit 1.
#[test]
fn every_bad_plugin_value_is_named_with_its_line() {
    let long_tag = "t".repeat(33);
    // key, value as written, value as the message shows it, what is allowed
    let cases: &[(&str, &str, &str, &str)] = &[
        ("format", "xml", "\"xml\"", "one of text, rfc5424, json"),
        (
            "nat",
            "masquerade",
            "\"masquerade\"",
            "one of snat, dnat, both",
        ),
        (
            "destination",
            "tcp:loghost.example:514",
            "\"tcp:loghost.example:514\"",
            "unix:/ABSOLUTE/PATH, udp:IP:PORT",
        ),
        (
            "destination",
            "unix:dev/log",
            "\"unix:dev/log\"",
            "unix:/ABSOLUTE/PATH",
        ),
        (
            "destination",
            "udp:192.0.2.9:0",
            "\"udp:192.0.2.9:0\"",
            "unix:/ABSOLUTE/PATH",
        ),
        (
            "destination",
            "tcp:192.0.2.9:99999",
            "\"tcp:192.0.2.9:99999\"",
            "unix:/ABSOLUTE/PATH",
        ),
        (
            "destination",
            "file:var/log/masqlog.log",
            "\"file:var/log/masqlog.log\"",
            "unix:/ABSOLUTE/PATH",
        ),
        (
            "facility",
            "local8",
            "\"local8\"",
            "one of kern, user, mail",
        ),
        ("severity", "loud", "\"loud\"", "one of emerg, alert, crit"),
        (
            "tag",
            "\"nat log\"",
            "\"nat log\"",
            "1 to 32 printable ASCII characters without space",
        ),
        ("tag", "nat:log", "\"nat:log\"", "without space, ':', '['"),
        ("tag", "\"\"", "\"\"", "1 to 32 printable ASCII characters"),
        (
            "tag",
            &long_tag,
            &format!("\"{long_tag}\""),
            "1 to 32 printable ASCII characters",
        ),
        (
            "hostname",
            "\"gw 1\"",
            "\"gw 1\"",
            "printable ASCII without spaces",
        ),
        ("queue_size", "0", "0", "an integer from 64 to 4194304"),
        ("queue_size", "-1", "-1", "an integer from 64 to 4194304"),
        (
            "stats_interval",
            "86401",
            "86401",
            "an integer from 0 to 86400",
        ),
        ("send_timeout_ms", "5", "5", "an integer from 10 to 60000"),
        (
            "retry_interval_ms",
            "600001",
            "600001",
            "an integer from 10 to 600000",
        ),
        ("remote", "drop", "\"drop\"", "one of log, omit, hash"),
        (
            "ident",
            "maybe",
            "\"maybe\"",
            "one of off, plain, transparent",
        ),
        ("ident_port", "0", "0", "an integer from 1 to 65535"),
        ("ident_port", "65536", "65536", "an integer from 1 to 65535"),
        (
            "ident_source",
            "router",
            "\"router\"",
            "empty or an IPv4 or IPv6 address of the router",
        ),
        (
            "ident_connect_timeout_ms",
            "0",
            "0",
            "an integer from 10 to 60000",
        ),
        (
            "ident_timeout_ms",
            "120001",
            "120001",
            "an integer from 10 to 120000",
        ),
        ("ident_workers", "0", "0", "an integer from 1 to 256"),
        ("ident_queue_size", "0", "0", "an integer from 1 to 1048576"),
        (
            "ident_per_host",
            "1025",
            "1025",
            "an integer from 1 to 1024",
        ),
        (
            "ident_clients",
            "lan",
            "\"lan\"",
            "comma-separated prefixes such as",
        ),
        (
            "ident_clients",
            "10.99.0.0/33",
            "\"10.99.0.0/33\"",
            "comma-separated prefixes such as",
        ),
        (
            "ident_remote_ports",
            "25-22",
            "\"25-22\"",
            "comma-separated ports and ranges",
        ),
        (
            "ident_remote_ports",
            "0",
            "\"0\"",
            "comma-separated ports and ranges",
        ),
        (
            "ident_remote_ports",
            "http",
            "\"http\"",
            "comma-separated ports and ranges",
        ),
    ];
    for &(key, value, shown, allowed) in cases {
        let (text, line) = with_key(key, value);
        let r = run(&text, &Fake::default());
        let out = r.render_text();
        assert_eq!(r.exit_code(), 1, "{key}={value}:\n{out}");
        let want = format!("line {line}: config key `{key}` = {shown}: ");
        let f = r
            .results
            .iter()
            .find(|f| f.status == Status::Fail && f.subject == format!("[masq1] {key}"))
            .unwrap_or_else(|| panic!("{key}={value}: no FAIL line for the key:\n{out}"));
        assert!(
            f.message.starts_with(&want) && f.message.contains(allowed),
            "{key}={value}: {:?} does not start with {want:?} and name {allowed:?}",
            f.message
        );
    }
}

/// `remote=hash` is valid only with its `remote_hash_key`: check-config must
/// judge the two together, and never show the key.
#[test]
fn remote_hash_with_its_key_is_valid_and_a_bad_key_is_not_shown() {
    let text = format!(
        "{}remote=hash\nremote_hash_key=000102030405060708090a0b0c0d0e0f\n",
        good()
    );
    let r = run(&text, &Fake::default());
    assert_eq!(r.count(Status::Fail), 0, "{}", r.render_text());
    let text = format!("{}remote=hash\nremote_hash_key=0011\n", good());
    let r = run(&text, &Fake::default());
    let out = r.render_text();
    assert!(
        has(
            &r,
            Status::Fail,
            "[masq1]",
            "`remote_hash_key` = (4 characters, not shown)"
        ),
        "{out}"
    );
    assert!(!out.contains("0011"), "{out}");
}

#[test]
fn the_sealing_state_is_checked_without_showing_it() {
    let ok_line = run(&good(), &Fake::default());
    assert!(
        has(
            &ok_line,
            Status::Ok,
            "[masq1] seal",
            "records are sealed as gw1/masq1, epoch 0 of 900 s"
        ),
        "{}",
        ok_line.render_text()
    );
    assert!(!ok_line.render_text().contains("master="));
    // Missing: a warning with seal=auto, a failure with seal=on.
    let mut sys = Fake::default();
    sys.texts.clear();
    let r = run(&good(), &sys);
    must(&r, Status::Warn, "[masq1] seal", "masqlog keygen");
    let on = good().replace("[masq1]\n", "[masq1]\nseal=on\n");
    let r = run(&on, &sys);
    must(&r, Status::Fail, "[masq1] seal", "ulogd does not start");
    // Not a sealing state: a failure naming it.
    sys.texts
        .insert(PathBuf::from(SEAL_STATE), "hello\n".into());
    let r = run(&good(), &sys);
    must(&r, Status::Fail, "[masq1] seal", "not a sealing state");
    // Off: a warning.
    let off = good().replace("[masq1]\n", "[masq1]\nseal=off\n");
    let r = run(&off, &Fake::default());
    must(&r, Status::Warn, "[masq1] seal", "seal=off");
}

/// A sealing state that is a symlink, or that others may read, fails with
/// the fix; a safe one is ok with its owner and mode.
#[test]
fn the_sealing_state_must_be_a_private_file_in_a_safe_directory() {
    let state = PathBuf::from(SEAL_STATE);
    let mut sys = Fake::default();
    sys.texts.insert(
        "/etc/passwd".into(),
        "root:x:0:0:root:/root:/bin/bash\nulog:x:101:102::/var/log/ulog:/usr/sbin/nologin\n".into(),
    );
    sys.infos
        .insert(state.clone(), info(FileKind::File, 0o600, 101));
    let r = run(&good(), &sys);
    must(
        &r,
        Status::Ok,
        "[masq1] seal",
        &format!("{SEAL_STATE} (owner ulog, mode 0600): records are sealed as gw1/masq1"),
    );
    assert_eq!(r.count(Status::Fail), 0, "{}", r.render_text());

    // A symlink is never followed: a failure, and the state is not read.
    sys.infos
        .insert(state.clone(), info(FileKind::Symlink, 0o777, 0));
    let r = run(&good(), &sys);
    must(
        &r,
        Status::Fail,
        "[masq1] seal",
        &format!("{SEAL_STATE} is a symlink"),
    );
    lacks(&r, Status::Ok, "[masq1] seal", "");

    // Readable by everyone: a failure with chmod, and no ok line.
    sys.infos
        .insert(state.clone(), info(FileKind::File, 0o644, 0));
    let r = run(&good(), &sys);
    must(
        &r,
        Status::Fail,
        "[masq1] seal",
        &format!("{SEAL_STATE} has mode 0644: its group and others may read it"),
    );
    must(
        &r,
        Status::Fail,
        "[masq1] seal",
        &format!("chmod 600 {SEAL_STATE}"),
    );
    lacks(&r, Status::Ok, "[masq1] seal", "");

    // Writable by its group only.
    sys.infos
        .insert(state.clone(), info(FileKind::File, 0o620, 0));
    let r = run(&good(), &sys);
    must(
        &r,
        Status::Fail,
        "[masq1] seal",
        "mode 0620: its group may write it",
    );

    // A directory: not a regular file.
    sys.infos
        .insert(state.clone(), info(FileKind::Dir, 0o700, 0));
    let r = run(&good(), &sys);
    must(
        &r,
        Status::Fail,
        "[masq1] seal",
        "is not a regular file (a directory)",
    );
}

/// The directory of the sealing state: nobody but its owner writes to it,
/// and it is root's or the state owner's.
#[test]
fn the_sealing_states_directory_must_be_safe() {
    let state = PathBuf::from(SEAL_STATE);
    let mut sys = Fake::default();
    sys.texts.insert(
        "/etc/passwd".into(),
        "root:x:0:0:root:/root:/bin/bash\nulog:x:101:102::/var/log/ulog:/usr/sbin/nologin\nalice:x:1000:1000::/home/alice:/bin/sh\n".into(),
    );
    // keygen --owner ulog: the state and its directory are ulog's
    sys.infos
        .insert(state.clone(), info(FileKind::File, 0o600, 101));
    sys.infos
        .insert(SEAL_DIR.into(), info(FileKind::Dir, 0o700, 101));
    let r = run(&good(), &sys);
    must(&r, Status::Ok, "[masq1] seal", "(owner ulog, mode 0600)");

    // A directory others may write to.
    sys.infos
        .insert(SEAL_DIR.into(), info(FileKind::Dir, 0o1777, 0));
    let r = run(&good(), &sys);
    must(
        &r,
        Status::Fail,
        "[masq1] seal",
        &format!(
            "{SEAL_DIR}, the directory of {SEAL_STATE}, has mode 1777: its group and others may write to it"
        ),
    );
    must(
        &r,
        Status::Fail,
        "[masq1] seal",
        &format!("chmod go-w {SEAL_DIR}"),
    );
    lacks(&r, Status::Ok, "[masq1] seal", "");

    // A directory of another user than root and the state's owner.
    sys.infos
        .insert(SEAL_DIR.into(), info(FileKind::Dir, 0o755, 1000));
    let r = run(&good(), &sys);
    must(
        &r,
        Status::Fail,
        "[masq1] seal",
        &format!("is owned by alice, neither root nor the owner of {SEAL_STATE} (ulog)"),
    );
    must(
        &r,
        Status::Fail,
        "[masq1] seal",
        &format!("chown ulog {SEAL_DIR}"),
    );

    // A symlinked directory.
    sys.infos
        .insert(SEAL_DIR.into(), info(FileKind::Symlink, 0o777, 0));
    let r = run(&good(), &sys);
    must(
        &r,
        Status::Fail,
        "[masq1] seal",
        "is a symlink or no directory",
    );
}

fn spool(records: u64, bytes: u64) -> SpoolContents {
    SpoolContents { records, bytes }
}

/// A spool a renamed instance left, and one of an instance with the spool
/// off, are warned about; the instance's own spool and an empty one are
/// not.
#[test]
fn spools_no_instance_sends_are_named() {
    let root = PathBuf::from(SPOOL_ROOT);
    let mut sys = Fake::default();
    sys.dirs.insert(
        root.clone(),
        vec!["empty".into(), "masq1".into(), "old".into()],
    );
    sys.spools.insert(root.join("masq1"), spool(5, 120));
    sys.spools.insert(root.join("old"), spool(2, 22));
    sys.spools.insert(root.join("empty"), spool(0, 0));
    let r = run(&good(), &sys);
    let warnings: Vec<&CheckResult> = r.with(Status::Warn).collect();
    assert_eq!(warnings.len(), 1, "{}", r.render_text());
    assert_eq!(warnings[0].subject, format!("spool {SPOOL_ROOT}/old"));
    for needle in [
        "holds 2 records (22 bytes) that no instance sends",
        &format!("only an instance named old with spool_dir={SPOOL_ROOT} sends them"),
        &format!(
            "rename it back, or stop ulogd and, once {SPOOL_ROOT}/masq1 holds no records, put this directory in its place (rm -r {SPOOL_ROOT}/masq1; mv {SPOOL_ROOT}/old {SPOOL_ROOT}/masq1)"
        ),
    ] {
        assert!(
            warnings[0].message.contains(needle),
            "{needle}: {}",
            r.render_text()
        );
    }

    // The spool switched off: masq1's own records are not sent either.
    let off = good().replace("[masq1]\n", "[masq1]\nspool_size_mb=0\n");
    let r = run(&off, &sys);
    assert!(
        has(
            &r,
            Status::Warn,
            &format!("spool {SPOOL_ROOT}/masq1"),
            "holds 5 records (120 bytes) from a run with a spool; with spool_size_mb=0 they are not sent: set spool_size_mb again"
        ),
        "{}",
        r.render_text()
    );
    must(
        &r,
        Status::Warn,
        &format!("spool {SPOOL_ROOT}/old"),
        "or save the directory elsewhere and remove it",
    );
    lacks(&r, Status::Warn, "empty", "");

    // A second instance spooling elsewhere: its spool under the first
    // one's root is named, with where it spools now.
    let two = format!(
        "{}[masq2]\nspool_dir=/srv/spool\n",
        good().replace(
            "stack=ct1:NFCT,masq1:MASQLOG\n",
            "stack=ct1:NFCT,masq1:MASQLOG\nstack=ct1:NFCT,masq2:MASQLOG\n"
        )
    );
    sys.dirs
        .insert(root.clone(), vec!["masq1".into(), "masq2".into()]);
    sys.spools.insert(root.join("masq2"), spool(1, 9));
    let r = run(&two, &sys);
    must(
        &r,
        Status::Warn,
        &format!("spool {SPOOL_ROOT}/masq2"),
        "holds 1 record (9 bytes) that no instance sends",
    );
    assert!(
        has(
            &r,
            Status::Warn,
            &format!("spool {SPOOL_ROOT}/masq2"),
            &format!(
                "put this directory in its place (rm -r /srv/spool/masq2; mv {SPOOL_ROOT}/masq2 /srv/spool/masq2)"
            )
        ),
        "{}",
        r.render_text()
    );
    lacks(&r, Status::Warn, &format!("spool {SPOOL_ROOT}/masq1"), "");
}

/// A spool held by an instance whose section the plugin refuses is not
/// judged: that instance fails already.
#[test]
fn a_refused_instances_spool_is_left_to_its_failure() {
    let root = PathBuf::from(SPOOL_ROOT);
    let mut sys = Fake::default();
    sys.dirs.insert(root.clone(), vec!["masq1".into()]);
    sys.spools.insert(root.join("masq1"), spool(3, 30));
    let bad = good().replace("format=text", "format=xml");
    let r = run(&bad, &sys);
    must(&r, Status::Fail, "[masq1] format", "xml");
    lacks(&r, Status::Warn, "spool", "");
}

#[test]
fn a_section_pasted_after_debians_empty_one_is_named_with_both_lines() {
    // Debian's /etc/ulogd.conf has an empty [ct1] after [global]; a [ct1]
    // pasted at the end is never read
    let text = good().replacen(
        "stack=ct1:NFCT,masq1:MASQLOG\n",
        "stack=ct1:NFCT,masq1:MASQLOG\n\n[ct1]\n#netlink_socket_buffer_size=217088\n",
        1,
    );
    let lines: Vec<usize> = text
        .lines()
        .enumerate()
        .filter(|(_, l)| *l == "[ct1]")
        .map(|(i, _)| i + 1)
        .collect();
    assert_eq!(lines.len(), 2, "{text}");
    let r = run(&text, &Fake::default());
    assert!(
        has(
            &r,
            Status::Fail,
            "[ct1]",
            &format!(
                "appears twice (lines {} and {}); ulogd reads only the first",
                lines[0], lines[1]
            )
        ),
        "{}",
        r.render_text()
    );
}

#[test]
fn a_repeated_section_no_masqlog_stack_uses_is_a_warning() {
    let text = format!("{}\n[emu1]\nfile=\"/a\"\n\n[emu1]\nfile=\"/b\"\n", good());
    let r = run(&text, &Fake::default());
    assert!(
        has(&r, Status::Warn, "[emu1]", "appears twice"),
        "{}",
        r.render_text()
    );
}

#[test]
fn dev_log_of_journald_is_named_with_the_packages_socket() {
    let sys = Fake {
        same: vec![("/dev/log".into(), JOURNALD_DEV_LOG.into())],
        ..Fake::default()
    };
    let text = good();
    assert!(text.contains("destination=unix:/dev/log"), "{text}");
    let r = run(&text, &sys);
    assert!(
        has(&r, Status::Warn, "[masq1] destination", "journald's socket")
            && has(
                &r,
                Status::Warn,
                "[masq1] destination",
                "unix:/run/masqlog/log"
            ),
        "{}",
        r.render_text()
    );
    // the same file elsewhere is fine
    let r = run(&text, &Fake::default());
    assert!(!has(&r, Status::Warn, "[masq1] destination", "journald"));
}

#[test]
fn the_config_of_a_ulogd_command_line() {
    for (exec, want) in [
        (
            "/usr/sbin/ulogd --daemon --uid ulog --pidfile /run/ulog/ulogd.pid",
            None,
        ),
        (
            "/usr/sbin/ulogd --daemon --configfile /etc/a.conf",
            Some("/etc/a.conf"),
        ),
        (
            "/usr/sbin/ulogd --configfile=/etc/b.conf -d",
            Some("/etc/b.conf"),
        ),
        ("/usr/sbin/ulogd -d -c /etc/c.conf", Some("/etc/c.conf")),
        ("/usr/sbin/ulogd -c/etc/d.conf", Some("/etc/d.conf")),
    ] {
        assert_eq!(config_of_exec(exec), want.map(PathBuf::from), "{exec}");
    }
}

#[test]
fn the_units_config_comes_from_systemctl_else_the_unit_files() {
    let mut sys = Fake::default();
    assert_eq!(ulogd_unit_config(&sys), None);
    sys.texts.insert(
        "/etc/systemd/system/ulogd2.service".into(),
        "[Service]\nExecStart=/usr/sbin/ulogd -d -c /etc/unit.conf\n".into(),
    );
    assert_eq!(ulogd_unit_config(&sys), Some("/etc/unit.conf".into()));
    sys.commands.insert(
        "systemctl show -p ExecStart --value ulogd2.service".into(),
        "{ path=/usr/sbin/ulogd ; argv[]=/usr/sbin/ulogd --daemon --configfile /etc/shown.conf ; ignore_errors=no ; start_time=[n/a] }\n".into(),
    );
    assert_eq!(ulogd_unit_config(&sys), Some("/etc/shown.conf".into()));
}

#[test]
fn the_spool_root_is_a_directory_others_may_not_write_to() {
    let mut sys = Fake::default();
    let r = run(&good(), &sys);
    // not there yet: nothing to say
    assert!(
        !r.results.iter().any(|f| f.subject.starts_with("spool_dir")),
        "{}",
        r.render_text()
    );
    for (info, status, needle) in [
        (info(FileKind::Dir, 0o700, 0), Status::Ok, "mode 0700"),
        (info(FileKind::Dir, 0o755, 0), Status::Ok, "mode 0755"),
        (info(FileKind::Dir, 0o777, 0), Status::Fail, "may write"),
        (info(FileKind::Symlink, 0o777, 0), Status::Warn, "symlink"),
    ] {
        sys.infos.insert(SPOOL_ROOT.into(), info);
        let r = run(&good(), &sys);
        assert!(
            has(&r, status, &format!("spool_dir {SPOOL_ROOT}"), needle),
            "{info:?}: {}",
            r.render_text()
        );
    }
}

#[test]
fn destination_none_is_the_store_alone_and_refused_without_a_store_dir() {
    let alone = good().replace("destination=unix:/dev/log", "destination=none");
    let r = run(&alone, &Fake::default());
    must(
        &r,
        Status::Fail,
        "[masq1]",
        "none only together with store_dir",
    );
    let r = run(
        &format!("{alone}store_dir=/var/lib/masqlog/store\n"),
        &Fake::default(),
    );
    must(
        &r,
        Status::Ok,
        "[masq1] destination",
        "evidence store (store_dir) only",
    );
    must(&r, Status::Ok, "[masq1] store_dir", "creates it");
}

#[test]
fn the_store_dir_is_a_directory_only_the_writer_may_write_to() {
    const STORE: &str = "/var/lib/masqlog/store";
    let text = format!("{}store_dir={STORE}\n", good());
    let mut sys = Fake::default();
    let subject = format!("[masq1] store_dir {STORE}");
    // without store_dir: nothing to say about a store
    let r = run(&good(), &sys);
    assert!(
        !r.results.iter().any(|f| f.subject.contains("store_dir")),
        "{}",
        r.render_text()
    );
    let r = run(&text, &sys);
    assert!(
        has(&r, Status::Ok, &subject, "creates it"),
        "{}",
        r.render_text()
    );
    for (info, status, needle) in [
        (info(FileKind::Dir, 0o750, 0), Status::Ok, "mode 0750"),
        (info(FileKind::Dir, 0o770, 0), Status::Fail, "may write"),
        (info(FileKind::Symlink, 0o777, 0), Status::Fail, "symlink"),
        (
            info(FileKind::File, 0o640, 0),
            Status::Fail,
            "not a directory",
        ),
    ] {
        sys.infos.insert(STORE.into(), info);
        let r = run(&text, &sys);
        assert!(
            has(&r, status, &subject, needle),
            "{info:?}: {}",
            r.render_text()
        );
    }
}
