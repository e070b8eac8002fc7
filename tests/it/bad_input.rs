//! Bad input end to end: the built `masqlog` binary run, as an operator
//! runs it, on what a mistyped command line, a damaged or foreign log, a
//! broken compressed file, a stray rule file or a wrong ulogd.conf hands it.
//! Each test is a row (or a few rows) of the README's "Bad input" section:
//! the exit status and the words that say what is wrong.
//!
//! Needs neither root nor the lab: everything is in a temporary directory.

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, UNIX_EPOCH};

use crate::cli::{Ran, masqlog};

/// The report every lookup here answers: alice's flow of the log below.
const PUBLIC: &str = "192.0.2.1:53500";
const AT: &str = "2026-11-21T12:37:42Z";
const CLIENT: &str = "was 10.99.0.2:40000";

/// A flow's start and end lines as rsyslog stores them.
const START: &str = "Nov 21 12:37:40 gw1 masqlog[4242]: masqlog/1 ev=start nat=snat proto=tcp id=3954 client=10.99.0.2:40000 masq=192.0.2.1:53500 remote=203.0.113.7:443 start=2026-11-21T12:37:40.123456Z";
const END: &str = "Nov 21 12:38:12 gw1 masqlog[4242]: masqlog/1 ev=end nat=snat proto=tcp id=3954 client=10.99.0.2:40000 masq=192.0.2.1:53500 remote=203.0.113.7:443 start=2026-11-21T12:37:40.123456Z end=2026-11-21T12:38:12.654321Z out_pkts=5 out_bytes=400 in_pkts=4 in_bytes=3000";

/// The beginning of a masqlog line about the queried endpoint, to damage.
const OURS: &str = "Nov 21 12:37:41 gw1 masqlog[4242]: ";

/// A temporary directory, removed when the test ends.
struct Dir(tempfile::TempDir);

impl Dir {
    fn new(test: &str) -> Dir {
        let d = tempfile::Builder::new()
            .prefix(&format!("masqlog-bad-input-{test}-"))
            .tempdir()
            .expect("creating the test directory");
        Dir(d)
    }

    /// Writes `name`, dated after every line in it (whatever this
    /// machine's clock says), and returns its path as a string.
    fn file(&self, name: &str, bytes: &[u8]) -> String {
        let p = self.0.path().join(name);
        std::fs::write(&p, bytes).expect("writing a test file");
        std::fs::File::options()
            .write(true)
            .open(&p)
            .and_then(|f| f.set_modified(UNIX_EPOCH + Duration::from_secs(1_900_000_000)))
            .expect("dating a test file");
        path_str(&p)
    }

    fn path(&self, name: &str) -> String {
        path_str(&self.0.path().join(name))
    }
}

fn path_str(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// Lines, each with its newline.
fn lines(ls: &[&str]) -> Vec<u8> {
    ls.iter()
        .flat_map(|l| format!("{l}\n").into_bytes())
        .collect()
}

fn good_log() -> Vec<u8> {
    lines(&[START, END])
}

/// `lookup PUBLIC --at AT` with `extra` flags, on `logs`.
fn lookup(extra: &[&str], logs: &[&str]) -> Ran {
    let mut args = vec!["lookup", PUBLIC, "--at", AT];
    args.extend_from_slice(extra);
    args.extend_from_slice(logs);
    masqlog(&args)
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// 20,000 lines of another program's noise after `head`: enough that half
/// of the compressed file holds the head and not the end.
fn long_log(head: &[u8]) -> Vec<u8> {
    let mut v = head.to_vec();
    for i in 0..20_000 {
        v.extend_from_slice(
            format!("Nov 21 12:39:00 gw1 sshd[{i}]: noise line number {i}, padded a little\n")
                .as_bytes(),
        );
    }
    v
}

// ---- ulogd.conf: the plugin's keys, in the real ulogd ----

/// Each bad value stops the installed ulogd at configure time (before any
/// netlink socket: no root needed), with one ERROR line of the plugin's
/// that names the key, the value and what is allowed.
#[test]
fn ulogd_stops_on_each_bad_value_and_the_error_names_it() {
    let test = "ulogd_stops_on_each_bad_value_and_the_error_names_it";
    let ulogd = match masqlog_lab::process::find_tool("ulogd") {
        Ok(b) => b,
        Err(e) => return crate::harness::skip(test, &e),
    };
    let so = masqlog_lab::ulogd::find_plugin().unwrap_or_else(|e| panic!("{e}"));
    let d = Dir::new("ulogd");
    let log = d.path("ulogd.log");
    // the [m1] section, and the words of the ERROR line
    let cases: &[(&str, &str)] = &[
        (
            "format=xml\n",
            "MASQLOG[m1]: config key `format` = \"xml\": one of text, rfc5424, json",
        ),
        (
            "queue_size=abc\n",
            "MASQLOG[m1]: config key `queue_size` = 0: an integer from 64 to 4194304",
        ),
        (
            "queue_size=-1\n",
            "MASQLOG[m1]: config key `queue_size` = -1: an integer from 64 to 4194304",
        ),
        (
            "destination=tcp:loghost.example:514\n",
            "MASQLOG[m1]: config key `destination` = \"tcp:loghost.example:514\": unix:/ABSOLUTE/PATH",
        ),
        (
            "tag=\"nat:log\"\n",
            "MASQLOG[m1]: config key `tag` = \"nat:log\": 1 to 32 printable ASCII characters",
        ),
        (
            "hostname=\"gw 1\"\n",
            "MASQLOG[m1]: config key `hostname` = \"gw 1\": empty (the system's host name) or printable ASCII without spaces",
        ),
        (
            "remote=hash\n",
            "MASQLOG[m1]: config key `remote_hash_key` = \"\": 32 hexadecimal digits",
        ),
        (
            "remote=hash\nremote_hash_key=0a1b\n",
            "MASQLOG[m1]: config key `remote_hash_key` = (4 characters, not shown): 32 hexadecimal digits",
        ),
        (
            "ident=plain\nident_source=router\n",
            "MASQLOG[m1]: config key `ident_source` = \"router\": empty or an IPv4 or IPv6 address of the router",
        ),
        (
            "ident_clients=lan\n",
            "MASQLOG[m1]: config key `ident_clients` = \"lan\": empty or comma-separated prefixes",
        ),
        (
            "ident_remote_ports=25-22\n",
            "MASQLOG[m1]: config key `ident_remote_ports` = \"25-22\": empty or comma-separated ports and ranges",
        ),
        // A key given twice (ulogd's ERRMULT), and a last line without its
        // newline (ERRTOOLONG): ulogd's own error code.
        (
            "format=text\nformat=json\n",
            "MASQLOG[m1]: cannot read section [m1] (config_parse_file error -3;",
        ),
        (
            "format=text",
            "MASQLOG[m1]: cannot read section [m1] (config_parse_file error -7;",
        ),
    ];
    for &(section, want) in cases {
        let conf = d.file(
            "ulogd.conf",
            format!(
                "[global]\nlogfile=\"{log}\"\nloglevel=1\nplugin=\"{}\"\nstack=m1:MASQLOG\n\n[m1]\n{section}",
                so.display()
            )
            .as_bytes(),
        );
        let _ = std::fs::remove_file(&log);
        let status = run_ulogd(&ulogd, &conf, Duration::from_secs(10));
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        assert!(
            status.is_some_and(|s| !s.success()),
            "{section:?}: ulogd did not stop with an error ({status:?}):\n{text}"
        );
        let line = text
            .lines()
            .find(|l| l.contains(want))
            .unwrap_or_else(|| panic!("{section:?}: no line with {want:?} in:\n{text}"));
        assert!(line.contains(" <7> "), "{section:?}: not at ERROR: {line}");
        assert!(
            !text.contains("0a1b"),
            "the secret is in ulogd's log:\n{text}"
        );
    }
}

/// Runs `ulogd -c CONF`; its exit status, or `None` (after killing it) when
/// it still runs after `limit`: a value it took for valid.
fn run_ulogd(ulogd: &Path, conf: &str, limit: Duration) -> Option<std::process::ExitStatus> {
    let mut child = Command::new(ulogd)
        .args(["-c", conf])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("running ulogd");
    let until = std::time::Instant::now() + limit;
    while std::time::Instant::now() < until {
        if let Some(status) = child.try_wait().expect("waiting for ulogd") {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

// ---- lookup: the command line ----

#[test]
fn lookup_a_public_endpoint_that_cannot_be_read_exits_2_and_says_why() {
    let d = Dir::new("public");
    let log = d.file("syslog", &good_log());
    for (public, why) in [
        (
            "192.0.2.1",
            "no port: write ip:port, and [ipv6]:port for IPv6",
        ),
        ("192.0.2.1:", "the port is not a number"),
        ("192.0.2.1:http", "the port is not a number"),
        ("192.0.2.1:65536", "the port is out of range (0 ..= 65535)"),
        ("192.0.2.300:53500", "not an address"),
        ("gw1.example.org:53500", "not an address"),
        (
            "2001:db8::1:53500",
            "an IPv6 address with a port needs brackets: [2001:db8::1]:53500",
        ),
        ("[2001:db8::1]", "expected [ipv6]:port"),
        ("", "expected ip:port"),
    ] {
        let r = masqlog(&["lookup", public, "--at", AT, &log]);
        r.refused(&format!("error: invalid endpoint {public:?}: {why}"));
    }
}

#[test]
fn lookup_a_time_that_cannot_be_read_exits_2_and_says_why() {
    let d = Dir::new("time");
    let log = d.file("syslog", &good_log());
    let example = "(write e.g. `2026-11-21 13:37:42 CET`, `2026-11-21T12:37:42Z` or `@1795264662`)";
    for (at, why) in [
        ("tea time", "unknown date form"),
        ("12:37:42", "unknown date form"),
        ("2026-11-21", "no time of day after the date"),
        (
            "2026-02-30 12:00:00 UTC",
            "2026-02-30 12:00:00 is not a date",
        ),
        ("2026-11-21T25:00:00Z", "time of day out of range"),
        ("@99999999999999999999", "UNIX time out of range"),
    ] {
        let r = masqlog(&["lookup", PUBLIC, "--at", at, &log]);
        r.refused(&format!(
            "error: cannot read {at:?} as a time: {why} {example}"
        ));
    }
    // A relative time: the forms that are read, and date(1) to write one.
    for at in ["2 hours ago", "yesterday at tea time"] {
        let r = masqlog(&["lookup", PUBLIC, "--at", at, &log]);
        r.refused(&format!(
            "cannot read {at:?} as a time: relative times are not read; give a date and time with a zone (`2026-11-21 13:37:42 CET`"
        ));
        r.refused(&format!("--at \"$(date -d '{at}' '+%F %T %z')\""));
    }
    // A zone that is no zone, one that names several, a skipped local time.
    let r = masqlog(&["lookup", PUBLIC, "--at", "2026-11-21 12:37:42 XYZ", &log]);
    r.refused("error: unknown time zone \"XYZ\": not a numeric offset, not an abbreviation masqlog knows and not in the system's time-zone database");
    let r = masqlog(&["lookup", PUBLIC, "--at", "2026-11-21 12:37:42 IST", &log]);
    r.refused("error: the time-zone abbreviation IST is ambiguous (India +05:30, Ireland +01:00 or Israel +02:00): give a numeric offset or a zone name");
    let r = masqlog(&[
        "lookup",
        PUBLIC,
        "--at",
        "2026-03-29 02:30:00",
        "--tz",
        "Europe/Amsterdam",
        &log,
    ]);
    r.refused("never happened in Europe/Amsterdam");
}

#[test]
fn lookup_a_bad_zone_duration_protocol_or_remote_exits_2_and_says_why() {
    let d = Dir::new("flags");
    let log = d.file("syslog", &good_log());
    for (flags, why) in [
        (
            &["--tz", "Nowhere/Special"][..],
            "error: unknown time zone \"Nowhere/Special\"",
        ),
        (
            &["--tz", "IST"],
            "the time-zone abbreviation IST is ambiguous",
        ),
        (
            &["--slack", "soon"],
            "error: invalid duration \"soon\": write e.g. 90s, 2m, 1h30m, 24h or 2d",
        ),
        (&["--slack=-5m"], "error: invalid duration \"-5m\""),
        (
            &["--max-age", "forever"],
            "error: invalid duration \"forever\"",
        ),
        (
            &["--proto", "tcpp"],
            "error: unknown protocol \"tcpp\": give a name (tcp, udp, icmp, ...) or a number",
        ),
        (&["--proto", "256"], "error: unknown protocol \"256\""),
        (
            &["--remote", "gw1.example.org"],
            "error: invalid endpoint \"gw1.example.org\": expected ip:port",
        ),
        (
            &["--remote", "203.0.113.7:99999"],
            "error: invalid endpoint \"203.0.113.7:99999\": the port is out of range",
        ),
    ] {
        let r = lookup(flags, &[&log]);
        r.refused(why);
    }
    // A negative duration written as a separate word is taken for a flag.
    let r = lookup(&["--slack", "-5m"], &[&log]);
    r.refused("unexpected argument '-5' found");
}

/// `2001:db8::7:443` is an IPv6 address in its own right: it is read as
/// one, and the flows to 2001:db8::7 are left out, with a hint.
#[test]
fn lookup_an_ipv6_remote_with_a_port_and_no_brackets_is_read_as_an_address() {
    let d = Dir::new("remote6");
    let log = d.file("syslog", &good_log());
    let v6 = START.replace("remote=203.0.113.7:443", "remote=[2001:db8::7]:443");
    let log6 = d.file("syslog6", &lines(&[&v6]));
    for l in [&log, &log6] {
        let r = lookup(&["--remote", "2001:db8::7:443"], &[l]);
        assert_eq!(r.code, Some(1), "{}", r.all());
        assert!(
            r.out.contains(&format!("{PUBLIC} at {AT}: no flow found"))
                && r.out.contains(&format!(
                    "hint: 1 flow(s) on {PUBLIC} were left out by --remote/--proto"
                )),
            "{}",
            r.all()
        );
    }
    let r = lookup(&["--remote", "[2001:db8::7]:443"], &[&log6]);
    assert_eq!(r.code, Some(0), "{}", r.all());
}

#[test]
fn lookup_without_a_question_exits_2() {
    let d = Dir::new("noquery");
    let log = d.file("syslog", &good_log());
    for args in [
        &["lookup", log.as_str()][..],
        &["lookup", PUBLIC, log.as_str()],
        &["lookup"],
    ] {
        masqlog(args).refused("error: give the public endpoint and --at, or --reports FILE");
    }
    let r = masqlog(&["lookup", PUBLIC, "--at", AT, "--reports", &log]);
    r.refused("the argument '--at <TIME>' cannot be used with '--reports <FILE>'");
    let missing = d.path("reports.csv");
    let r = masqlog(&["lookup", "--reports", &missing, &log]);
    r.refused(&format!(
        "error: cannot read the reports {missing}: No such file or directory"
    ));
}

#[test]
fn lookup_missing_logs_are_named_and_make_not_found_exit_2() {
    let d = Dir::new("missing");
    let log = d.file("syslog", &good_log());
    let missing = d.path("syslog.1");
    let r = lookup(&[], &[&missing]);
    assert_eq!(r.code, Some(2), "{}", r.all());
    assert!(
        r.err
            .contains(&format!("error: {missing}: No such file or directory")),
        "{}",
        r.all()
    );
    assert!(
        r.out.contains("no flow found")
            && r.out
                .contains("incomplete: 1 input could not be read fully (listed on stderr)"),
        "{}",
        r.all()
    );
    // Found in another input: exit 0, marked as possibly incomplete.
    let r = lookup(&[], &[&log, &missing]);
    assert_eq!(r.code, Some(0), "{}", r.all());
    assert!(
        r.out.contains(CLIENT) && r.out.contains("the answer may be incomplete"),
        "{}",
        r.all()
    );
    // A missing port-block state directory: nothing is read.
    let r = lookup(&["--portblock-state", &d.path("nope")], &[&log]);
    r.refused(&format!(
        "error: port-block history: cannot list {}: No such file or directory",
        d.path("nope")
    ));
}

#[test]
fn lookup_an_empty_file_or_directory_is_searched_and_not_found() {
    let d = Dir::new("empty");
    let empty = d.file("empty.log", b"");
    std::fs::create_dir(d.0.path().join("emptydir")).unwrap();
    let r = lookup(&[], &[&empty]);
    assert_eq!(r.code, Some(1), "{}", r.all());
    assert!(
        r.out
            .contains("searched 1 input: 0 B read, 0 masqlog lines parsed"),
        "{}",
        r.all()
    );
    let r = lookup(&[], &[&d.path("emptydir")]);
    assert_eq!(r.code, Some(1), "{}", r.all());
    assert!(r.out.contains("searched 0 inputs: 0 B read"), "{}", r.all());
    assert!(r.err.is_empty(), "{}", r.all());
}

// ---- lookup: the log lines ----

/// Other programs' lines, other NAT log formats and lines that only
/// mention the endpoint are skipped without a word.
#[test]
fn lookup_lines_of_other_programs_and_formats_are_skipped() {
    let d = Dir::new("other");
    let other = [
        // ulogd's LOGEMU/SYSLOG output of the same flow
        "Nov 21 12:37:40 gw1 ulogd[900]: [NEW] ORIG: SRC=10.99.0.2 DST=203.0.113.7 PROTO=TCP SPT=40000 DPT=443 PKTS=0 BYTES=0 , REPLY: SRC=203.0.113.7 DST=192.0.2.1 PROTO=TCP SPT=443 DPT=53500 PKTS=0 BYTES=0",
        // the kernel's LOG target
        "Nov 21 12:37:40 gw1 kernel: [12345.6] IN=eth0 OUT=eth1 SRC=10.99.0.2 DST=203.0.113.7 LEN=60 PROTO=TCP SPT=40000 DPT=443",
        // ulogd's JSON output
        "{\"timestamp\":\"2026-11-21T12:37:40\",\"orig.ip.saddr.str\":\"10.99.0.2\",\"reply.ip.daddr.str\":\"192.0.2.1\",\"reply.l4.dport\":53500}",
        // conntrack -E
        "    [NEW] tcp      6 120 SYN_SENT src=10.99.0.2 dst=203.0.113.7 sport=40000 dport=443 [UNREPLIED] src=203.0.113.7 dst=192.0.2.1 sport=443 dport=53500",
        // a line that names masqlog and the endpoint, not in masqlog's format
        "Nov 21 12:37:41 gw1 sshd[77]: Invalid user masqlog from 192.0.2.1 port 53500",
    ];
    let only_other = d.file("other.log", &lines(&other));
    let r = lookup(&[], &[&only_other]);
    assert_eq!(r.code, Some(1), "{}", r.all());
    assert!(
        r.out
            .starts_with(&format!("{PUBLIC} at {AT}: no flow found")),
        "{}",
        r.all()
    );
    assert!(r.err.is_empty(), "{}", r.all());
    let mut mixed = lines(&other);
    mixed.extend(good_log());
    let mixed = d.file("mixed.log", &mixed);
    let r = lookup(&[], &[&mixed]);
    assert_eq!(r.code, Some(0), "{}", r.all());
    assert!(r.out.contains(CLIENT), "{}", r.all());
    assert!(r.err.is_empty(), "{}", r.all());
    // CR LF line ends are read like LF.
    let crlf: Vec<u8> = format!("{START}\r\n{END}\r\n").into_bytes();
    let crlf = d.file("crlf.log", &crlf);
    let r = lookup(&[], &[&crlf]);
    assert_eq!(r.code, Some(0), "{}", r.all());
    assert!(r.err.is_empty(), "{}", r.all());
}

/// Each damaged masqlog line about the queried endpoint is named on stderr
/// with its file, line and reason; the good lines still answer.
#[test]
fn lookup_damaged_masqlog_lines_are_named_with_file_and_line() {
    let d = Dir::new("damaged");
    let base = "masqlog/1 ev=start nat=snat proto=tcp id=1 client=10.0.0.1:1 masq=192.0.2.1:53500";
    let damaged: Vec<(String, &str)> = vec![
        (
            format!("{OURS}{base} remote=bogus start=2026-11-21T12:37:40Z"),
            "field `remote` has an invalid value \"bogus\"",
        ),
        (
            format!("{OURS}{base} remote=203.0.113.7:443 start=2026-13-21T12:37:40Z"),
            "field `start` has an invalid value \"2026-13-21T12:37:40Z\"",
        ),
        // cut in the middle of a key
        (
            format!("{OURS}{base} remo"),
            "syntax error at byte 121: expected a field name and `=`",
        ),
        (
            format!("{OURS}masqlog/1 ev=start nat=snat proto=tcp id=4 masq=192.0.2.1:53500"),
            "missing field `client`",
        ),
        (
            format!("{OURS}{}", base.replace("masqlog/1", "masqlog/2")),
            "unknown masqlog format version 2 (this build reads version 1)",
        ),
        (
            format!("{OURS}{} id=2", base),
            "field `id` appears more than once",
        ),
        (
            format!(
                "{OURS}masqlog/1 ev=start nat=snat proto=tcp id=9 client=\"10.0.0.1:1 masq=192.0.2.1:53500"
            ),
            "syntax error at byte 85: unterminated quoted value",
        ),
        // a JSON line cut short
        (
            format!(
                "{OURS}{{\"masqlog\":1,\"ev\":\"start\",\"nat\":\"snat\",\"proto\":\"tcp\",\"id\":10,\"client\":{{\"ip\":\"10.0.0.1\",\"port\":1}},\"masq\":{{\"ip\":\"192.0.2.1\",\"port\":53500}},\"remote\":{{\"ip\""
            ),
            "syntax error at byte 185: expected `:` after a key",
        ),
    ];
    let mut text: Vec<u8> = Vec::new();
    for (l, _) in &damaged {
        text.extend_from_slice(l.as_bytes());
        text.push(b'\n');
    }
    // control bytes and invalid UTF-8 in a bare value
    text.extend_from_slice(format!("{OURS}{base} remote=203.0.113.7:443 user=").as_bytes());
    text.extend_from_slice(b"\xff\xfe\x1b[31m\n");
    text.extend(good_log());
    let log = d.file("syslog", &text);
    let r = lookup(&[], &[&log]);
    assert_eq!(r.code, Some(0), "{}", r.all());
    assert!(r.out.contains(CLIENT), "{}", r.all());
    for (i, (_, why)) in damaged.iter().enumerate() {
        let want = format!("{log}:{}: {why}\n", i + 1);
        assert!(r.err.contains(&want), "stderr lacks {want:?}:\n{}", r.all());
    }
    let n = damaged.len() + 1;
    assert!(
        r.err.contains(&format!(
            "{log}:{n}: syntax error at byte 145: a bare value must be letters, digits or `._:/@+-[]`"
        )),
        "{}",
        r.all()
    );
    assert!(
        r.out.contains(&format!(
            "{n} masqlog lines could not be read (listed on stderr)"
        )),
        "{}",
        r.all()
    );
}

/// A well-formed masqlog line is evidence whatever program wrote it: the
/// syslog tag is not checked (the plugin's `tag` is configurable), and the
/// evidence shows the line as stored, tag included.
/// A record is a syslog message that begins with the marker. Another
/// program's message that begins with it (`logger -t evil`) is read and
/// shown as it is stored, tag included, and the answer says nothing was
/// authenticated; a marker further on in a message (an sshd line quoting a
/// record in its user name) is no record: skipped, and the summary says so.
#[test]
fn lookup_a_line_of_another_program_is_a_record_only_when_its_message_starts_with_the_marker() {
    let d = Dir::new("forged");
    let body = "masqlog/1 ev=start nat=snat proto=tcp id=77 client=10.66.6.6:1 masq=192.0.2.1:53500 remote=203.0.113.7:443 start=2026-11-21T12:37:41Z";
    let json = r#"{"masqlog":1,"ev":"start","nat":"snat","proto":"tcp","id":78,"client":{"ip":"10.66.6.7","port":1},"masq":{"ip":"192.0.2.1","port":53500},"remote":{"ip":"203.0.113.7","port":443},"start":"2026-11-21T12:37:41Z"}"#;
    let inside = format!("Nov 21 12:37:41 gw1 sshd[812]: Invalid user {body} from 198.51.100.9");
    let inside_json =
        format!("Nov 21 12:37:41 gw1 sshd[812]: Invalid user {json} from 198.51.100.9");
    let log = d.file("syslog", &lines(&[&inside, &inside_json]));
    let r = lookup(&[], &[&log]);
    assert_eq!(r.code, Some(1), "{}", r.all());
    assert!(r.out.contains("no flow found"), "{}", r.all());
    assert!(
        r.out.contains(
            "skipped 2 lines that hold a masqlog marker inside another message (not at its start): not records"
        ),
        "{}",
        r.all()
    );
    assert!(r.err.is_empty(), "{}", r.all());
    let forged = format!("Nov 21 12:37:41 gw1 evil[66]: {body}");
    let log = d.file("syslog.forged", &lines(&[&inside, &forged]));
    let r = lookup(&[], &[&log]);
    assert_eq!(r.code, Some(0), "{}", r.all());
    assert!(
        r.out
            .starts_with(&format!("{PUBLIC} at {AT} was 10.66.6.6:1")),
        "{}",
        r.all()
    );
    assert!(
        r.out.contains(&format!("evidence  {log}:2  {forged}")),
        "{}",
        r.all()
    );
    assert!(
        r.out.contains("note: nothing was authenticated (no --key)"),
        "{}",
        r.all()
    );
    assert!(
        r.out.contains("skipped 1 line that holds a masqlog marker"),
        "{}",
        r.all()
    );
}

#[test]
fn lookup_binary_files_are_skipped_in_a_directory_and_read_when_named() {
    let d = Dir::new("binary");
    std::fs::create_dir(d.0.path().join("log")).unwrap();
    d.file("log/syslog", &good_log());
    // A NUL in the first bytes makes a file binary, as wtmp is; its second
    // line begins with the marker.
    let binary = b"\x00\x01\x02binary\x00\xff\xfe\nmasqlog/1 masq=192.0.2.1:53500\n";
    let wtmp = d.file("log/wtmp", binary);
    let r = lookup(&[], &[&d.path("log")]);
    assert_eq!(r.code, Some(0), "{}", r.all());
    assert!(r.out.contains(CLIENT), "{}", r.all());
    assert!(
        r.out
            .contains(&format!("note: skipped binary files: {wtmp}")),
        "{}",
        r.all()
    );
    let r = lookup(&[], &[&wtmp]);
    assert_eq!(r.code, Some(1), "{}", r.all());
    assert!(
        r.err.contains(&format!("{wtmp}:2: missing field `proto`")),
        "{}",
        r.all()
    );
}

#[test]
fn lookup_a_truncated_gzip_file_is_named_and_the_lines_before_count() {
    let d = Dir::new("truncgz");
    // The flow before the damage: found, and the answer says it may be
    // incomplete.
    let gz = gzip(&long_log(&good_log()));
    let before = d.file("syslog.2.gz", &gz[..gz.len() / 2]);
    let r = lookup(&[], &[&before]);
    assert_eq!(r.code, Some(0), "{}", r.all());
    assert!(r.out.contains(CLIENT), "{}", r.all());
    assert!(
        r.err.starts_with(&format!(
            "error: {before}: truncated or corrupt compressed data after "
        )) && r
            .err
            .contains("incomplete deflate stream; the lines before were used"),
        "{}",
        r.all()
    );
    assert!(
        r.out
            .contains("incomplete: 1 input could not be read fully (listed on stderr)"),
        "{}",
        r.all()
    );
    // The flow after the damage: not found, exit 2.
    let mut text = long_log(b"");
    text.extend(good_log());
    let gz = gzip(&text);
    let after = d.file("syslog.3.gz", &gz[..gz.len() / 2]);
    let r = lookup(&[], &[&after]);
    assert_eq!(r.code, Some(2), "{}", r.all());
    assert!(
        r.out.contains("no flow found") && r.err.contains("truncated or corrupt compressed data"),
        "{}",
        r.all()
    );
}

#[test]
fn lookup_reads_compressed_stdin_fifos_and_process_substitution() {
    let d = Dir::new("streams");
    let log = long_log(&good_log());
    // gzip and zstd on stdin: recognised by their magic, not read as text.
    for (what, bytes) in [
        ("gzip", gzip(&log)),
        ("zstd", zstd::encode_all(&log[..], 3).unwrap()),
    ] {
        let r = crate::cli::run(&["lookup", PUBLIC, "--at", AT, "-"], Some(&bytes));
        assert_eq!(r.code, Some(0), "{what} on stdin: {}", r.all());
        assert!(
            r.first_line().contains("was 10.99.0.2:40000"),
            "{}",
            r.all()
        );
    }
    // A FIFO given as LOG: read as a stream, no seek.
    let fifo = d.0.path().join("fifo");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status();
    assert!(made.is_ok_and(|s| s.success()), "mkfifo");
    let writer = {
        let (fifo, log) = (fifo.clone(), log.clone());
        std::thread::spawn(move || std::fs::write(fifo, log))
    };
    let r = lookup(&[], &[&path_str(&fifo)]);
    writer.join().unwrap().expect("writing the FIFO");
    assert_eq!(r.code, Some(0), "{}", r.all());
    assert!(
        r.first_line().contains("was 10.99.0.2:40000"),
        "{}",
        r.all()
    );
    // `<(zcat FILE)`, as bash passes it (/dev/fd/N, a pipe).
    let gz = d.file("syslog.1.gz", &gzip(&log));
    let script = format!("exec \"$0\" lookup {PUBLIC} --at {AT} <(zcat {gz})",);
    let out = std::process::Command::new("bash")
        .args(["-c", &script, &*crate::cli::BIN])
        .output()
        .expect("bash");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.starts_with(&format!("{PUBLIC} at ")), "{text}");
    assert!(
        text.lines()
            .next()
            .unwrap_or("")
            .contains("was 10.99.0.2:40000"),
        "{text}"
    );
}

#[test]
fn lookup_corrupt_or_unsupported_compressed_files_are_named() {
    let d = Dir::new("corrupt");
    // gzip's magic, then garbage.
    let bad = d.file("syslog.1.gz", b"\x1f\x8b\x08\x00garbage-garbage-garbage");
    let r = lookup(&[], &[&bad]);
    assert_eq!(r.code, Some(2), "{}", r.all());
    assert!(
        r.err.contains(&format!(
            "error: {bad}: truncated or corrupt compressed data after 0 bytes of text (line 1): corrupt deflate stream; the lines before were used"
        )),
        "{}",
        r.all()
    );
    // Junk after a whole gzip member: the lines are used, the junk named.
    let mut gz = gzip(&good_log());
    gz.extend_from_slice(b"trailing junk");
    let junk = d.file("syslog.2.gz", &gz);
    let r = lookup(&[], &[&junk]);
    assert_eq!(r.code, Some(0), "{}", r.all());
    assert!(
        r.err.contains(&format!("error: {junk}: ")) && r.err.contains("invalid gzip header"),
        "{}",
        r.all()
    );
    // A truncated zstd file.
    let z = zstd::encode_all(&long_log(&good_log())[..], 3).unwrap();
    let zst = d.file("syslog.3.zst", &z[..z.len() / 2]);
    let r = lookup(&[], &[&zst]);
    assert_eq!(r.code, Some(0), "{}", r.all());
    assert!(
        r.err.contains(&format!(
            "error: {zst}: truncated or corrupt compressed data after "
        )) && r.err.contains("incomplete frame"),
        "{}",
        r.all()
    );
    // xz and bzip2 are recognised and refused with the command to use.
    for (name, magic, tool) in [
        ("syslog.4.xz", &b"\xfd7zXZ\x00junk"[..], "xz -dc"),
        ("syslog.5.bz2", b"BZh91AY&SYjunk", "bzip2 -dc"),
    ] {
        let f = d.file(name, magic);
        let r = lookup(&[], &[&f]);
        assert_eq!(r.code, Some(2), "{}", r.all());
        assert!(
            r.err.contains(&format!(
                "error: {f}: {}-compressed, which masqlog does not read: pipe it in (`{tool} FILE | masqlog lookup ... -`)",
                tool.split(' ').next().unwrap()
            )),
            "{}",
            r.all()
        );
    }
    // Named .gz but plain text: the magic bytes decide.
    let plain = d.file("syslog.6.gz", &good_log());
    let r = lookup(&[], &[&plain]);
    assert_eq!(r.code, Some(0), "{}", r.all());
    assert!(r.err.is_empty(), "{}", r.all());
}

// ---- portblock ----

#[test]
fn portblock_plan_refuses_bad_prefixes_ranges_and_sizes_with_the_reason() {
    let ok = [
        "--internal",
        "10.8.0.0/24",
        "--public",
        "192.0.2.1",
        "--ports",
        "1024-32767",
    ];
    // (flag, value) replacing or added to `ok`, and the words of the refusal
    let cases: &[(&str, &str, &str)] = &[
        (
            "--internal",
            "10.8.0.0/33",
            "invalid prefix 10.8.0.0/33: \"33\" is not a prefix length 0..32",
        ),
        (
            "--internal",
            "10.8.0.1/24",
            "10.8.0.1/24 has host bits set: did you mean 10.8.0.0/24?",
        ),
        (
            "--internal",
            "fd00::/64",
            "port-block NAT is IPv4 only, and fd00::/64 is IPv6",
        ),
        (
            "--internal",
            "lan",
            "invalid prefix lan: \"lan\" is not an IPv4 address",
        ),
        (
            "--internal",
            "10.8.0.0/24,10.8.0.128/25",
            "internal prefixes 10.8.0.0/24 and 10.8.0.128/25 overlap: a client would own two blocks",
        ),
        (
            "--internal",
            "10.0.0.0/8",
            "16777213 client addresses is more than one plan holds (at most 262144)",
        ),
        (
            "--public",
            "2001:db8::1",
            "port-block NAT is IPv4 only, and 2001:db8::1 is IPv6",
        ),
        (
            "--public",
            "192.0.2.300",
            "\"192.0.2.300\" is not an IPv4 address",
        ),
        (
            "--public",
            "192.0.2.1,192.0.2.1",
            "public address 192.0.2.1 is given twice",
        ),
        (
            "--ports",
            "32767-1024",
            "invalid port range 32767-1024: the range is empty (the first port is above the last)",
        ),
        (
            "--ports",
            "0-1023",
            "invalid port range 0-1023: port 0 is not a port a connection can use",
        ),
        (
            "--ports",
            "1024-70000",
            "invalid port range 1024-70000: the last port is not a number 1..65535",
        ),
        (
            "--internal",
            "10.8.0.0/16",
            "65533 client addresses do not fit: 1 public address offers 31744 blocks in 1024-32767, even of 1 port",
        ),
        (
            "--per-client",
            "100",
            "--per-client 100 is not a power of two (1, 2, 4, ..., 32768)",
        ),
        ("--per-client", "65536", "--per-client 65536 is too large"),
        ("--format", "pf", "unknown method \"pf\": nft or iptables"),
        (
            "--table",
            "1bad",
            "invalid nftables table name \"1bad\": a letter, then letters, digits or _, at most 64",
        ),
        (
            "--oif",
            "averyveryverylongname",
            "invalid interface name \"averyveryverylongname\": 1 to 15 characters",
        ),
    ];
    for &(flag, value, why) in cases {
        let mut args = vec!["portblock", "plan"];
        let mut replaced = false;
        for pair in ok.chunks(2) {
            if pair[0] == flag {
                args.extend([flag, value]);
                replaced = true;
            } else {
                args.extend_from_slice(pair);
            }
        }
        if !replaced {
            args.extend([flag, value]);
        }
        masqlog(&args).refused(why);
    }
    let r = masqlog(&[
        "portblock",
        "plan",
        "--internal",
        "10.8.0.0/24",
        "--public",
        "192.0.2.1",
        "--ports",
        "1024-32767",
        "--format",
        "iptables",
        "--table",
        "t",
    ]);
    r.refused("--table applies to --format nft only");
}

#[test]
fn portblock_test_refuses_bad_queries_and_foreign_or_broken_rule_files() {
    let d = Dir::new("pbtest");
    std::fs::create_dir(d.0.path().join("state")).unwrap();
    let state = d.path("state");
    let plan = masqlog(&[
        "portblock",
        "plan",
        "--internal",
        "10.8.0.0/29",
        "--public",
        "192.0.2.1",
        "--ports",
        "1024-32767",
        "--per-client",
        "1024",
    ]);
    assert_eq!(plan.code, Some(0), "{}", plan.all());
    let rules = d.file("state/rules.1790000000.nft", plan.out.as_bytes());
    let test = |extra: &[&str]| {
        let mut args = vec!["portblock", "test"];
        args.extend_from_slice(extra);
        masqlog(&args)
    };
    // The good file answers.
    let r = test(&["--rules", &rules, "--public", "192.0.2.1:32000"]);
    assert_eq!(r.code, Some(0), "{}", r.all());
    assert!(
        r.out.starts_with("192.0.2.1:32000 -> 10.8.0.2\n"),
        "{}",
        r.all()
    );
    // Queries that cannot be read.
    test(&["--rules", &rules, "--public", "192.0.2.1"]).refused(
        "invalid value '192.0.2.1' for '--public <IP:PORT>': invalid IPv4 socket address syntax",
    );
    test(&["--rules", &rules, "--public", "[2001:db8::1]:5"])
        .refused("invalid IPv4 socket address syntax");
    test(&["--rules", &rules, "--internal-addr", "10.8.0.300"])
        .refused("\"10.8.0.300\" is not an IPv4 address");
    test(&[
        "--state-dir",
        &state,
        "--at",
        "yesterday",
        "--public",
        "192.0.2.1:32000",
    ])
    .refused(
        "error: invalid time \"yesterday\": cannot read \"yesterday\" as a time: relative times are not read",
    );
    test(&[
        "--state-dir",
        &state,
        "--at",
        "2026-11-21 12:00:00",
        "--public",
        "192.0.2.1:32000",
    ])
    .refused("no time zone: add Z for UTC or an offset such as +01:00");
    // A port in no block, a client of no block: exit 1.
    let r = test(&["--rules", &rules, "--public", "192.0.2.1:80"]);
    assert_eq!(r.code, Some(1), "{}", r.all());
    assert!(
        r.out
            .starts_with("192.0.2.1:80 -> no client: the port is in no block"),
        "{}",
        r.all()
    );
    // Files that are not masqlog's, or not whole.
    let foreign = d.file("nftables.conf", b"#!/usr/sbin/nft -f\nflush ruleset\n");
    test(&["--rules", &foreign, "--public", "192.0.2.1:32000"]).refused(&format!(
        "error: {foreign}: not a masqlog portblock rule file: its first line is not masqlog's generated-at line"
    ));
    test(&[
        "--rules",
        &d.path("nope.nft"),
        "--public",
        "192.0.2.1:32000",
    ])
    .refused("No such file or directory");
    let cut = d.file(
        "state/rules.1790000500.nft",
        &plan.out.as_bytes()[..plan.out.find("elements").unwrap()],
    );
    test(&["--state-dir", &state, "--at", "1790000600", "--public", "192.0.2.1:32000"]).refused(
        &format!(
            "error: {cut}: not a masqlog portblock rule file: it has no complete `elements = {{ ... }}` list of blocks"
        ),
    );
    // lookup reads the whole history: the broken file stops it, even for a
    // time before that file.
    masqlog(&[
        "lookup",
        "192.0.2.1:32000",
        "--at",
        "@1790000100",
        "--portblock-state",
        &state,
    ])
    .refused(&format!(
        "error: port-block history: {cut}: not a masqlog portblock rule file"
    ));
    std::fs::remove_file(&cut).unwrap();
    // Hand-edited: two clients on one block; the later one's line is named.
    let edited = plan.out.replacen("31744-32767", "30720-31743", 1);
    let line = edited
        .lines()
        .position(|l| l.contains("10.8.0.3 : 192.0.2.1 . 30720-31743"))
        .expect("10.8.0.3's block")
        + 1;
    let edited = d.file("edited.nft", edited.as_bytes());
    test(&["--rules", &edited, "--public", "192.0.2.1:32000"]).refused(&format!(
        "error: {edited}:{line}: the blocks of 10.8.0.2 and 10.8.0.3 overlap on 192.0.2.1 \
         (30720-31743 and 30720-31743): a port would name two clients"
    ));
    // Two files for one second.
    let twin = d.file("state/rules.1790000000.iptables", plan.out.as_bytes());
    test(&[
        "--state-dir",
        &state,
        "--at",
        "1790000600",
        "--public",
        "192.0.2.1:32000",
    ])
    .refused("two rule files for the same second");
    std::fs::remove_file(&twin).unwrap();
    // A time before the first file; no current symlink; one made by hand.
    test(&["--state-dir", &state, "--at", "1", "--public", "192.0.2.1:32000"]).refused(&format!(
        "error: no rule file of {state} was in force at 1970-01-01T00:00:01Z: the oldest is from 2026-09-21T14:13:20Z"
    ));
    test(&["--state-dir", &state, "--public", "192.0.2.1:32000"]).refused(&format!(
        "error: no rules are in force: {state} has no current symlink"
    ));
    std::os::unix::fs::symlink("/etc/passwd", d.0.path().join("state/current")).unwrap();
    test(&["--state-dir", &state, "--public", "192.0.2.1:32000"])
        .refused("was not made by masqlog portblock apply (it points to /etc/passwd");
    test(&[
        "--state-dir",
        &d.path("nope"),
        "--at",
        "1790000600",
        "--public",
        "192.0.2.1:32000",
    ])
    .refused(&format!(
        "error: cannot list {}: No such file or directory",
        d.path("nope")
    ));
}

#[test]
fn portblock_apply_refuses_a_bad_or_unreachable_syslog_before_writing_anything() {
    let d = Dir::new("pbapply");
    let state = d.path("state");
    let apply = |extra: &[&str]| {
        let mut args = vec![
            "portblock",
            "apply",
            "--state-dir",
            &state,
            "--internal",
            "10.8.0.0/29",
            "--public",
            "192.0.2.1",
            "--ports",
            "1024-32767",
            "--per-client",
            "1024",
            "--reload-cmd",
            "true",
        ];
        args.extend_from_slice(extra);
        masqlog(&args)
    };
    let r = apply(&["--syslog", "tcp:192.0.2.9:514"]);
    r.refused("invalid syslog target \"tcp:192.0.2.9:514\": unix:PATH or udp:IP:PORT");
    let sock = d.path("no-such.sock");
    let r = apply(&["--syslog", &format!("unix:{sock}")]);
    assert_eq!(r.code, Some(2), "{}", r.all());
    assert!(
        r.err.contains(&format!(
            "error: cannot send the configuration record to syslog at unix:{sock}: No such file or directory"
        )),
        "{}",
        r.all()
    );
    let written: Vec<_> = std::fs::read_dir(&state)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("rules.") || n == "current")
                .collect()
        })
        .unwrap_or_default();
    assert!(written.is_empty(), "apply wrote {written:?}");
}

// ---- check-config ----

#[test]
fn check_config_a_file_that_is_no_ulogd_conf_fails_and_a_directory_exits_2() {
    let d = Dir::new("checkconfig");
    let passwd = d.file("passwd", b"root:x:0:0:root:/root:/bin/bash\n");
    let r = masqlog(&["check-config", &passwd]);
    assert_eq!(r.code, Some(1), "{}", r.all());
    assert!(
        r.out.contains(
            "FAIL  [global]: no [global] section: ulogd loads no plugin and builds no stack"
        ),
        "{}",
        r.all()
    );
    let r = masqlog(&["check-config", &d.path("")]);
    assert_eq!(r.code, Some(2), "{}", r.all());
    assert!(r.err.contains("Is a directory"), "{}", r.all());
}

/// Runs `masqlog ARGS...` as a user that may not read the test files: as
/// nobody (through setpriv) when the tests run as root, else as is.
fn as_unprivileged(args: &[&str]) -> Ran {
    use std::os::unix::fs::MetadataExt as _;
    let root = std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
    let mut cmd = if root {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(&*crate::cli::BIN);
        c
    } else {
        Command::new(&*crate::cli::BIN)
    };
    let out = cmd
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("running masqlog");
    Ran {
        cmd: format!("masqlog {}", args.join(" ")),
        code: out.status.code(),
        out: String::from_utf8_lossy(&out.stdout).into_owned(),
        err: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[test]
fn a_file_masqlog_may_not_read_is_named_with_how_to_read_it() {
    use std::os::unix::fs::PermissionsExt as _;
    let d = Dir::new("eacces");
    std::fs::set_permissions(d.0.path(), std::fs::Permissions::from_mode(0o755))
        .expect("opening the test directory");
    let log = d.file("syslog", &good_log());
    let conf = d.file("ulogd.conf", b"[global]\n");
    for f in [&log, &conf] {
        std::fs::set_permissions(f, std::fs::Permissions::from_mode(0o000))
            .expect("closing a test file");
    }
    let hint = "or as a member of group adm, which can read /var/log on Debian";
    let r = as_unprivileged(&["lookup", PUBLIC, "--at", AT, &log]);
    assert_eq!(r.code, Some(2), "{}", r.all());
    assert!(
        r.err.contains(&format!(
            "{log}: Permission denied (os error 13): run masqlog as root (sudo) to read {log}, {hint}"
        )),
        "{}",
        r.all()
    );
    let r = as_unprivileged(&["check-config", &conf]);
    r.refused(&format!(
        "cannot read {conf}: Permission denied (os error 13): run masqlog as root (sudo) to read {conf}, {hint}"
    ));
}

#[test]
fn lookup_with_the_time_and_address_swapped_says_which_comes_first() {
    let d = Dir::new("swapped");
    let log = d.file("syslog", &good_log());
    let usage = "the public address comes first: masqlog lookup IP:PORT --at TIME [LOG...]";
    let r = masqlog(&["lookup", AT, "--at", PUBLIC, &log]);
    r.refused(&format!("error: \"{AT}\" is a time, not IP:PORT: {usage}"));
    let r = masqlog(&["lookup", "2026-11-21 12:37:42 UTC", PUBLIC, &log]);
    r.refused(&format!(
        "error: \"2026-11-21 12:37:42 UTC\" is a time, not IP:PORT: {usage}"
    ));
    let r = masqlog(&["lookup", "--at", PUBLIC, "192.0.2.1:53501", &log]);
    r.refused(&format!(
        "error: --at \"{PUBLIC}\" is an address, not a time: {usage}"
    ));
    // Neither: the endpoint's own error.
    let r = masqlog(&["lookup", "tea", "--at", AT, &log]);
    r.refused("error: invalid endpoint \"tea\"");
}
