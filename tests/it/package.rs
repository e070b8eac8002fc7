//! The Debian package end to end: `debian-pkg/build` makes the .deb from
//! this build, apt installs it, the files, man pages, conffiles and the
//! plugin are where Debian looks for them, stock ulogd with the packaged
//! plugin and the packaged example config logs a flow in the lab through
//! the packaged rsyslog drop-in, and `apt-get purge` leaves nothing behind
//! but the logs.
//!
//! This installs a package on the machine (a CI machine: fine), and leaves
//! it as it found it: a guard purges the package and puts back any file the
//! package replaced, also when the test fails.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use masqlog_core::record::Event;
use masqlog_lab::conntrack::ConntrackWatch;
use masqlog_lab::process::{self, Supervised};
use masqlog_lab::rsyslog::read_lines;
use masqlog_lab::session::{DESTROY_WAIT, LINE_WAIT, TCP_PORT, TCP_REPLY};
use masqlog_lab::topology::{SHORT_WAIT, client_addr};
use masqlog_lab::{Family, FlowProto, FlowSpec, Role, UlogdConf, logged, ulogd, wait};
use tempfile::TempDir;

use crate::harness::{self, ok, skip};

const PLUGIN: &str = "/usr/lib/x86_64-linux-gnu/ulogd/ulogd_output_MASQLOG.so";
const EXAMPLE_CONF: &str = "/etc/ulogd-masqlog.conf";
const RSYSLOG_DROPIN: &str = "/etc/rsyslog.d/30-masqlog.conf";
const LOGROTATE: &str = "/etc/logrotate.d/masqlog";
const MASQLOG_LOG: &str = "/var/log/masqlog.log";
/// The socket the packaged rsyslog drop-in opens, and the packaged
/// destination.
const PACKAGE_SOCK: &str = "/run/masqlog/log";
const PACKAGE_DEST: &str = "unix:/run/masqlog/log";
const SYSCTL_FILE: &str = "/etc/sysctl.d/90-masqlog.conf";
const MODULES_FILE: &str = "/etc/modules-load.d/masqlog.conf";
/// The man pages every subcommand must have (and `masqlog`).
const PAGES: &[&str] = &[
    "masqlog",
    "masqlog-lab",
    "masqlog-portblock",
    "masqlog-install-plugin",
    "masqlog-check-config",
];

fn run(argv: &[&str], cwd: Option<&Path>) -> Output {
    let mut cmd = Command::new(argv[0]);
    cmd.args(&argv[1..])
        .env("DEBIAN_FRONTEND", "noninteractive");
    if let Some(d) = cwd {
        cmd.current_dir(d);
    }
    cmd.output()
        .unwrap_or_else(|e| panic!("running {}: {e}", argv.join(" ")))
}

fn must(argv: &[&str], cwd: Option<&Path>) -> String {
    let out = run(argv, cwd);
    assert!(
        out.status.success(),
        "`{}` failed ({}):\n{}{}",
        argv.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn is_installed() -> bool {
    run(&["dpkg-query", "-W", "-f=${Status}", "masqlog"], None)
        .stdout
        .starts_with(b"install ok installed")
}

/// Every path under the trees a package may touch, less the package
/// manager's own bookkeeping and logs.
fn snapshot() -> BTreeSet<String> {
    let out = run(
        &[
            "find",
            "/etc",
            "/usr",
            "/opt",
            "/var/lib",
            "/var/log",
            "-xdev",
            "(",
            "-path",
            "/var/lib/dpkg",
            "-o",
            "-path",
            "/var/lib/apt",
            "-o",
            "-path",
            "/var/log/apt",
            "-o",
            "-path",
            "/var/lib/systemd",
            ")",
            "-prune",
            "-o",
            "-print",
        ],
        None,
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !matches!(*l, "/var/log/dpkg.log" | "/var/log/alternatives.log"))
        .map(str::to_string)
        .collect()
}

/// Purges the package and restores what it replaced, on drop.
struct Installed {
    /// (original path, saved copy) of files the package overwrote.
    saved: Vec<(PathBuf, PathBuf)>,
    /// Files the test made that the machine did not have.
    made: Vec<PathBuf>,
    _dir: TempDir,
}

impl Drop for Installed {
    fn drop(&mut self) {
        // harmless when the test purged it already
        let out = run(&["dpkg", "--purge", "masqlog"], None);
        if !out.status.success() {
            eprintln!(
                "package test: dpkg --purge masqlog failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        for (orig, copy) in &self.saved {
            if let Err(e) = std::fs::copy(copy, orig) {
                eprintln!("package test: cannot restore {}: {e}", orig.display());
            }
        }
        for f in &self.made {
            let _ = std::fs::remove_file(f);
        }
    }
}

/// What the package test needs, or why it cannot run.
fn preflight() -> Result<(), String> {
    masqlog_lab::preflight().map_err(|e| e.to_string())?;
    for tool in [
        "dpkg-deb", "apt-get", "man", "strip", "readelf", "objdump", "objcopy", "gzip", "lintian",
        "python3",
    ] {
        process::find_tool(tool).map_err(|e| e.to_string())?;
    }
    if let Ok(rd) = std::fs::read_dir("/etc/dpkg/dpkg.cfg.d") {
        for e in rd.flatten() {
            let text = std::fs::read_to_string(e.path()).unwrap_or_default();
            if text
                .lines()
                .any(|l| l.trim_start().starts_with("path-exclude"))
            {
                return Err(format!(
                    "{} excludes paths from packages (a minimal image): man pages and docs would not be installed",
                    e.path().display()
                ));
            }
        }
    }
    if is_installed() {
        return Err(
            "the masqlog package is already installed here: the test would remove it".into(),
        );
    }
    Ok(())
}

#[test]
fn the_debian_package_installs_works_and_purges_clean() {
    let test = "the_debian_package_installs_works_and_purges_clean";
    if let Err(why) = preflight() {
        return skip(test, &why);
    }
    let root = &Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    // Removed after the drop of `Installed` restored what it saved there,
    // also when the test fails.
    let dir = ok(
        tempfile::Builder::new().prefix("masqlog-pkg-").tempdir(),
        "temporary directory",
    );
    let so = ok(ulogd::find_plugin(), "plugin");
    let deb = must(
        &[
            &root.join("debian-pkg/build").to_string_lossy(),
            "--no-build",
            "--bin",
            &crate::cli::BIN,
            "--so",
            &so.to_string_lossy(),
            "--out",
            &dir.path().to_string_lossy(),
        ],
        None,
    );
    let deb = PathBuf::from(deb.trim());
    let dbgsym = deb.with_file_name(
        deb.file_name()
            .unwrap()
            .to_string_lossy()
            .replace("masqlog_", "masqlog-dbgsym_"),
    );
    assert!(dbgsym.is_file(), "no {}", dbgsym.display());
    // lintian: no error, no warning (the infos are allowed)
    let out = run(
        &[
            "lintian",
            "--fail-on",
            "error,warning",
            &deb.to_string_lossy(),
            &dbgsym.to_string_lossy(),
        ],
        None,
    );
    assert!(
        out.status.success(),
        "lintian reports errors or warnings:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // the binaries are stripped; their debug information is in the
    // dbgsym package under their build ids
    let dbg_contents = must(&["dpkg-deb", "-c", &dbgsym.to_string_lossy()], None);
    let contents = must(&["dpkg-deb", "-c", &deb.to_string_lossy()], None);
    let files: Vec<PathBuf> = contents
        .lines()
        .filter(|l| !l.starts_with('d'))
        .filter_map(|l| l.split_whitespace().last())
        .map(|p| PathBuf::from(p.trim_start_matches('.')))
        .collect();

    // Keep what the package will overwrite, and the machine's file list.
    let saved_dir = dir.path().join("saved");
    std::fs::create_dir_all(&saved_dir).unwrap();
    let mut guard = Installed {
        saved: Vec::new(),
        made: Vec::new(),
        _dir: dir,
    };
    for (i, f) in files.iter().enumerate() {
        if f.is_file() {
            let copy = saved_dir.join(i.to_string());
            std::fs::copy(f, &copy).unwrap();
            guard.saved.push((f.clone(), copy));
        }
    }
    let before = snapshot();

    let deb_dir = deb.parent().unwrap();
    let name = format!("./{}", deb.file_name().unwrap().to_string_lossy());
    must(
        &["apt-get", "install", "-y", "--no-install-recommends", &name],
        Some(deb_dir),
    );
    assert!(is_installed());

    // dpkg -L names every file; they are where Debian looks
    let listed = must(&["dpkg", "-L", "masqlog"], None);
    for f in &files {
        assert!(
            listed.lines().any(|l| Path::new(l) == f),
            "dpkg -L lacks {}",
            f.display()
        );
        assert!(f.exists(), "{} not installed", f.display());
    }
    for must_have in [
        PLUGIN,
        "/usr/bin/masqlog",
        EXAMPLE_CONF,
        RSYSLOG_DROPIN,
        LOGROTATE,
        "/usr/share/man/man5/ulogd_output_MASQLOG.5.gz",
        "/usr/share/bash-completion/completions/masqlog",
        "/usr/share/zsh/vendor-completions/_masqlog",
        "/usr/share/fish/vendor_completions.d/masqlog.fish",
        "/usr/share/doc/masqlog/examples/ident-transparent.sh",
        "/usr/share/doc/masqlog/examples/masqlog-portblock.timer",
        "/usr/share/doc/masqlog/examples/masqlog-postgresql.conf",
        "/usr/share/doc/masqlog/examples/masqlog-ipfix.conf",
        "/usr/share/masqlog/sql/schema_v1.sql",
        "/usr/share/doc/masqlog/copyright",
        "/usr/share/doc/masqlog/changelog.gz",
    ] {
        assert!(
            listed.lines().any(|l| l == must_have),
            "dpkg -L lacks {must_have}"
        );
    }
    for elf in ["/usr/bin/masqlog", PLUGIN] {
        let sections = must(&["readelf", "-S", "-W", elf], None);
        assert!(!sections.contains(".symtab"), "{elf} is not stripped");
        assert!(
            sections.contains(".gnu_debuglink"),
            "{elf} has no debuglink"
        );
        let notes = must(&["readelf", "-n", elf], None);
        let id = notes
            .lines()
            .find_map(|l| l.trim().strip_prefix("Build ID: "))
            .unwrap_or_else(|| panic!("{elf} has no build id: {notes}"));
        let want = format!("./usr/lib/debug/.build-id/{}/{}.debug", &id[..2], &id[2..]);
        assert!(
            dbg_contents.lines().any(|l| l.ends_with(&want)),
            "masqlog-dbgsym lacks {want}: {dbg_contents}"
        );
    }
    // The config holds remote_hash_key: root's alone, as /etc/ulogd.conf.
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(EXAMPLE_CONF)
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{EXAMPLE_CONF} has mode {mode:o}");
    }
    let conffiles = must(&["dpkg-query", "-W", "-f=${Conffiles}", "masqlog"], None);
    for c in [EXAMPLE_CONF, RSYSLOG_DROPIN, LOGROTATE] {
        assert!(conffiles.contains(c), "{c} is not a conffile: {conffiles}");
    }

    // man finds every page: the plugin's, the command's, each subcommand's
    let page5 = must(&["man", "-w", "5", "ulogd_output_MASQLOG"], None);
    assert_eq!(
        page5.trim(),
        "/usr/share/man/man5/ulogd_output_MASQLOG.5.gz"
    );
    let mut pages: Vec<String> = PAGES.iter().map(|p| p.to_string()).collect();
    if run(&["/usr/bin/masqlog", "lookup", "--help"], None)
        .status
        .success()
    {
        pages.push("masqlog-lookup".into());
    }
    for p in &pages {
        let w = must(&["man", "-w", "8", p], None);
        assert_eq!(
            w.trim(),
            format!("/usr/share/man/man8/{p}.8.gz"),
            "man -w 8 {p}"
        );
    }
    let rendered = must(&["man", "-P", "cat", "5", "ulogd_output_MASQLOG"], None);
    assert!(rendered.contains("queue_size"), "{rendered}");

    // stock ulogd takes the packaged plugin
    let info = must(&["ulogd", "-i", PLUGIN], None);
    assert!(info.lines().any(|l| l.trim() == "Name: MASQLOG"), "{info}");
    // Rotated files are indexed for lookup once logrotate is done.
    let rotate = std::fs::read_to_string(LOGROTATE).expect("the packaged logrotate file");
    assert!(
        rotate.contains(&format!("/usr/bin/masqlog index {MASQLOG_LOG}.[0-9]*")),
        "{rotate}"
    );
    if process::find_tool("logrotate").is_ok() {
        must(&["logrotate", "-d", LOGROTATE], None);
    }

    logs_a_flow_with_the_packaged_files(test);
    // removed on failure too (the guard), when the machine had none
    for f in [SYSCTL_FILE, MODULES_FILE] {
        if !Path::new(f).exists() {
            guard.made.push(f.into());
        }
    }
    enable_on_debians_ulogd_conf_logs_a_flow_lookup_answers_and_disable_restores(test);

    // purge: the logs stay, everything else goes
    let made_log = !Path::new(MASQLOG_LOG).exists();
    if made_log {
        std::fs::write(MASQLOG_LOG, "evidence\n").unwrap();
        guard.made.push(MASQLOG_LOG.into());
    }
    must(&["apt-get", "purge", "-y", "masqlog"], None);
    assert!(!is_installed());
    assert!(
        Path::new(MASQLOG_LOG).exists(),
        "purge removed {MASQLOG_LOG}"
    );
    for f in &files {
        let was_there = guard.saved.iter().any(|(o, _)| o == f);
        assert!(
            was_there || !f.exists(),
            "{} is left after purge",
            f.display()
        );
    }
    let mut after = snapshot();
    if made_log {
        after.remove(MASQLOG_LOG);
    }
    let gone: Vec<&String> = before.difference(&after).collect();
    let left: Vec<&String> = after.difference(&before).collect();
    assert!(
        gone.is_empty() && left.is_empty(),
        "purge did not restore the file list: gone {gone:#?}, left {left:#?}"
    );
    drop(guard);
}

/// In a lab: the packaged rsyslog drop-in (writing to the lab instead of
/// /var/log) in an rsyslogd of its own, stock ulogd with the packaged
/// example config (its log file and syslog socket moved into the lab), and
/// one TCP flow through the NAT: its start and end lines reach the
/// drop-in's file and nothing else; another program's line does the
/// opposite.
fn logs_a_flow_with_the_packaged_files(test: &str) {
    let Some(lab) = harness::lab(test) else {
        return;
    };
    let dir = lab.path("pkg-rsyslog");
    std::fs::create_dir_all(&dir).unwrap();
    let masqlog_log = dir.join("masqlog.log");
    let other_log = dir.join("syslog");
    // /dev/log of this rsyslog: where other programs log
    let sock = dir.join("log.sock");
    let (mut rsyslog, masq_sock) = packaged_rsyslog(&lab, &dir, &sock, &masqlog_log, &other_log);

    let packaged = std::fs::read_to_string(EXAMPLE_CONF).unwrap();
    let mut ulogd_conf = UlogdConf::from_text(&packaged);
    ulogd_conf
        .set(
            "global",
            "logfile",
            &format!("\"{}\"", lab.path("ulogd.log").display()),
        )
        .set(
            "masq1",
            "destination",
            &format!("unix:{}", masq_sock.display()),
        )
        .set(
            "masq1",
            "store_dir",
            &lab.path("pkg-store").to_string_lossy(),
        );
    assert_eq!(
        UlogdConf::from_text(&packaged)
            .get("masq1", "destination")
            .as_deref(),
        Some(PACKAGE_DEST)
    );
    assert_eq!(
        UlogdConf::from_text(&packaged)
            .get("masq1", "store_dir")
            .as_deref(),
        Some("/var/lib/masqlog/store")
    );
    assert!(ulogd_conf.text().contains(&format!("plugin=\"{PLUGIN}\"")));
    // check-config agrees before ulogd starts
    let conf_file = lab.path("ulogd-pkg.conf");
    ok(ulogd_conf.write(&conf_file), "writing the config");
    let out = run(
        &[
            "/usr/bin/masqlog",
            "check-config",
            "--netns",
            &lab.ns(Role::Router),
            &conf_file.to_string_lossy(),
        ],
        None,
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    let mut conntrack: ConntrackWatch = ok(lab.watch_conntrack(), "conntrack -E");
    let server = ok(
        lab.serve(FlowProto::Tcp, Family::V4, TCP_PORT, TCP_REPLY),
        "server",
    );
    let mut u = ok(
        lab.start_ulogd("ulogd", &ulogd_conf),
        "ulogd with the packaged config",
    );
    let spec = FlowSpec::to(&lab, &server, "alice", 1000);
    ok(lab.flow(&spec), "the flow");
    ok(
        conntrack.wait_destroy(
            client_addr(Family::V4),
            spec.sport,
            FlowProto::Tcp,
            DESTROY_WAIT,
        ),
        "DESTROY",
    );
    let received = ok(
        wait::poll(
            "start and end lines in the drop-in's file",
            LINE_WAIT,
            || {
                let r = logged::read(&read_lines(&masqlog_log));
                Ok((r.has(&spec, Event::Start) && r.has(&spec, Event::End)).then_some(r))
            },
        ),
        "masqlog lines",
    );
    assert!(received.unreadable.is_empty(), "{:?}", received.unreadable);
    assert!(u.log().contains("MASQLOG[masq1] started"), "{}", u.log());
    must(
        &[
            "logger",
            "--socket-errors=on",
            "-u",
            &sock.to_string_lossy(),
            "-t",
            "other",
            "not a flow",
        ],
        None,
    );
    ok(
        wait::poll("the other line", SHORT_WAIT, || {
            Ok(read_lines(&other_log)
                .iter()
                .any(|l| l.contains("not a flow"))
                .then_some(()))
        }),
        "catch-all file",
    );
    // a line tagged masqlog on /dev/log goes to the same file, only there
    must(
        &[
            "logger",
            "--socket-errors=on",
            "-u",
            &sock.to_string_lossy(),
            "-t",
            "masqlog",
            "masqlog/1 by /dev/log",
        ],
        None,
    );
    ok(
        wait::poll("the tagged line", SHORT_WAIT, || {
            Ok(read_lines(&masqlog_log)
                .iter()
                .any(|l| l.contains("masqlog/1 by /dev/log"))
                .then_some(()))
        }),
        "the drop-in's file",
    );
    let other = read_lines(&other_log);
    assert!(
        !other.iter().any(|l| l.contains("masqlog/1")),
        "masqlog lines also reached the catch-all file: {other:#?}"
    );
    assert!(
        !read_lines(&masqlog_log)
            .iter()
            .any(|l| l.contains("not a flow"))
    );
    let _ = u.stop();
    let _ = rsyslog.stop();
}

/// An rsyslogd of the lab's with the packaged drop-in (its socket and file
/// moved into `dir`), a /dev/log of its own at `sock` whose other lines go
/// to `other_log`. Returns it and the drop-in's socket.
fn packaged_rsyslog(
    lab: &masqlog_lab::Lab,
    dir: &Path,
    sock: &Path,
    masqlog_log: &Path,
    other_log: &Path,
) -> (Supervised, PathBuf) {
    let masq_sock = dir.join("masqlog/log");
    let dropin = std::fs::read_to_string(RSYSLOG_DROPIN).unwrap();
    assert!(dropin.contains(MASQLOG_LOG));
    assert!(
        dropin.contains(&format!("Socket=\"{PACKAGE_SOCK}\"")),
        "{dropin}"
    );
    assert!(dropin.contains("RateLimit.Interval=\"0\""), "{dropin}");
    let conf = format!(
        "global(workDirectory=\"{d}\")\n\
         module(load=\"imuxsock\" SysSock.Use=\"off\")\n\
         input(type=\"imuxsock\" Socket=\"{s}\" CreatePath=\"on\" RateLimit.Interval=\"0\")\n\
         {dropin}\n\
         action(type=\"omfile\" file=\"{o}\")\n",
        d = dir.display(),
        s = sock.display(),
        dropin = dropin
            .replace(MASQLOG_LOG, &masqlog_log.to_string_lossy())
            .replace(PACKAGE_SOCK, &masq_sock.to_string_lossy()),
        o = other_log.display(),
    );
    let conf_path = dir.join("rsyslog.conf");
    std::fs::write(&conf_path, conf).unwrap();
    let conf_s = conf_path.to_string_lossy().into_owned();
    must(&["rsyslogd", "-N1", "-f", &conf_s], None);
    let pid = dir.join("rsyslogd.pid").to_string_lossy().into_owned();
    let name = format!(
        "rsyslog-{}",
        dir.file_name().unwrap_or_default().to_string_lossy()
    );
    let rsyslog: Supervised = ok(
        lab.spawn(None, &name, &["rsyslogd", "-n", "-f", &conf_s, "-i", &pid]),
        "starting rsyslogd",
    );
    ok(
        wait::poll("the rsyslog sockets", SHORT_WAIT, || {
            Ok((sock.exists() && masq_sock.exists()).then_some(()))
        }),
        "rsyslogd",
    );
    (rsyslog, masq_sock)
}

/// The one step of README.Debian on Debian's own /etc/ulogd.conf (a copy):
/// `masqlog enable` adds masqlog beside Debian's NFLOG stack; stock ulogd
/// reads the file it made (its log, LOGEMU's file and the socket moved
/// into the lab) in the router, loading every plugin of its directory, the
/// packaged one among them; a flow through the NAT reaches the drop-in's
/// file and `masqlog lookup` answers for it; `masqlog disable` gives the
/// file back byte for byte, with its mode, and removes the sysctl files.
fn enable_on_debians_ulogd_conf_logs_a_flow_lookup_answers_and_disable_restores(test: &str) {
    use std::os::unix::fs::PermissionsExt;
    let debian = match std::fs::read("/etc/ulogd.conf") {
        Ok(b) if String::from_utf8_lossy(&b).contains("Adapted to Debian") => b,
        _ => return skip(test, &"/etc/ulogd.conf is not Debian's (ulogd2 package)"),
    };
    for f in [SYSCTL_FILE, MODULES_FILE] {
        if Path::new(f).exists() {
            return skip(test, &format!("{f} exists: masqlog enable would keep it"));
        }
    }
    let Some(lab) = harness::lab(test) else {
        return;
    };
    let dir = lab.path("pkg-enable");
    std::fs::create_dir_all(&dir).unwrap();
    let conf = dir.join("ulogd.conf");
    std::fs::write(&conf, &debian).unwrap();
    std::fs::set_permissions(&conf, std::fs::Permissions::from_mode(0o600)).unwrap();
    let conf_s = conf.to_string_lossy().into_owned();

    let out = must(
        &[
            "/usr/bin/masqlog",
            "enable",
            "--config",
            &conf_s,
            "--no-restart",
        ],
        None,
    );
    assert!(out.contains("no plugin= line added"), "{out}");
    assert!(out.contains("systemctl restart ulogd2.service"), "{out}");
    let enabled = std::fs::read_to_string(&conf).unwrap();
    assert!(
        enabled.contains("\nstack=masqlog_ct:NFCT,masqlog:MASQLOG\n"),
        "{enabled}"
    );
    assert!(enabled.contains(&format!("destination={PACKAGE_DEST}\n")));
    assert!(
        enabled.contains("\nstore_dir=/var/lib/masqlog/store\n"),
        "{enabled}"
    );
    assert_eq!(
        std::fs::metadata(&conf).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(
        std::fs::read(dir.join("ulogd.conf.masqlog.bak")).unwrap(),
        debian
    );
    for f in [SYSCTL_FILE, MODULES_FILE] {
        assert!(Path::new(f).is_file(), "enable did not write {f}");
    }
    assert!(
        std::fs::read_to_string(MODULES_FILE)
            .unwrap()
            .lines()
            .any(|l| l == "nf_conntrack")
    );
    // a second run changes nothing
    let again = must(
        &[
            "/usr/bin/masqlog",
            "enable",
            "--config",
            &conf_s,
            "--no-restart",
        ],
        None,
    );
    assert!(again.contains("enabled already"), "{again}");
    assert_eq!(std::fs::read_to_string(&conf).unwrap(), enabled);

    // stock ulogd with that file, its paths moved into the lab
    let masqlog_log = dir.join("masqlog.log");
    let (mut rsyslog, masq_sock) = packaged_rsyslog(
        &lab,
        &dir,
        &dir.join("log.sock"),
        &masqlog_log,
        &dir.join("syslog"),
    );
    let mut run_conf = UlogdConf::from_text(&enabled);
    run_conf
        .set(
            "global",
            "logfile",
            &format!("\"{}\"", dir.join("ulogd.log").display()),
        )
        .set(
            "emu1",
            "file",
            &format!("\"{}\"", dir.join("syslogemu.log").display()),
        )
        .set(
            "masqlog",
            "destination",
            &format!("unix:{}", masq_sock.display()),
        )
        .set("masqlog", "store_dir", &dir.join("store").to_string_lossy());
    assert_eq!(run_conf.masqlog_ids(), vec!["masqlog".to_string()]);
    let server = ok(
        lab.serve(FlowProto::Tcp, Family::V4, TCP_PORT, TCP_REPLY),
        "server",
    );
    let mut u = ok(
        lab.start_ulogd("ulogd-enabled", &run_conf),
        "ulogd with the config masqlog enable made",
    );
    let spec = FlowSpec::to(&lab, &server, "alice", 1000);
    let flow = ok(lab.flow(&spec), "the flow");
    ok(
        wait::poll("the start line in the drop-in's file", LINE_WAIT, || {
            let r = logged::read(&read_lines(&masqlog_log));
            Ok(r.has(&spec, Event::Start).then_some(()))
        }),
        "masqlog lines",
    );
    assert!(u.log().contains("MASQLOG[masqlog] started"), "{}", u.log());
    let public = format!(
        "{}:{}",
        masqlog_lab::topology::masq_addr(Family::V4),
        spec.client().port()
    );
    let at = masqlog_core::time::utc_string(flow.began, true);
    let out = run(
        &[
            "/usr/bin/masqlog",
            "lookup",
            &public,
            "--at",
            &at,
            &masqlog_log.to_string_lossy(),
        ],
        None,
    );
    let answer = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "lookup {public} --at {at}: {answer}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        answer.contains(&spec.client().ip().to_string()),
        "lookup does not name the client {}: {answer}",
        spec.client()
    );
    // the same report from the evidence store the enabled config keeps
    // (the writer adds a batch to the store as it sends it: wait for it)
    let store = dir.join("store");
    let store_s = store.to_string_lossy().to_string();
    let lookup_store = || {
        run(
            &[
                "/usr/bin/masqlog",
                "lookup",
                &public,
                "--at",
                &at,
                "--store",
                &store_s,
            ],
            None,
        )
    };
    let answered = wait::poll("lookup --store answers", LINE_WAIT, || {
        Ok((lookup_store().status.code() == Some(0)).then_some(()))
    });
    let out = lookup_store();
    let from_store = String::from_utf8_lossy(&out.stdout);
    assert!(
        answered.is_ok() && out.status.code() == Some(0),
        "lookup {public} --at {at} --store {store_s}: {from_store}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        from_store.contains(&spec.client().to_string()),
        "lookup --store does not name the client {}: {from_store}",
        spec.client()
    );
    let _ = u.stop();
    let _ = rsyslog.stop();

    // disable: the file as it was, byte for byte, mode and all
    let out = must(
        &[
            "/usr/bin/masqlog",
            "disable",
            "--config",
            &conf_s,
            "--no-restart",
        ],
        None,
    );
    assert!(out.contains("removed"), "{out}");
    assert_eq!(std::fs::read(&conf).unwrap(), debian);
    assert_eq!(
        std::fs::metadata(&conf).unwrap().permissions().mode() & 0o777,
        0o600
    );
    for f in [SYSCTL_FILE, MODULES_FILE] {
        assert!(!Path::new(f).exists(), "disable left {f}");
    }
}
