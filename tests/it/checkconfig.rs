//! `masqlog check-config` on real configs in the lab's router namespace:
//! the lab's own config is all green, a broken one names every problem and
//! exits 1, transparent IDENT finds (or misses) the real routing.

use std::path::Path;
use std::process::{Command, Output};

use masqlog_lab::{Example, IdentMode, Role, SessionOptions, UlogdConf, ulogd};

use crate::harness::{self, ok};

use crate::cli::BIN;

/// `masqlog check-config ARGS...`.
fn check_config(args: &[&str]) -> Output {
    Command::new(&*BIN)
        .arg("check-config")
        .args(args)
        .output()
        .expect("running masqlog check-config")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The JSON report of `check-config --json --netns NS FILE`.
fn json_report(ns: &str, file: &Path) -> (serde_json::Value, Output) {
    let out = check_config(&["--json", "--netns", ns, &file.to_string_lossy()]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", text(&out)));
    (v, out)
}

fn statuses(v: &serde_json::Value, status: &str) -> Vec<String> {
    v["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter(|f| f["status"] == status)
        .map(|f| format!("{}: {}", f["check"], f["message"]))
        .collect()
}

#[test]
fn an_unreadable_file_exits_2() {
    let out = check_config(&["/nonexistent/ulogd.conf"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("cannot read /nonexistent/ulogd.conf"));
}

#[test]
fn the_lab_routers_configs_are_all_green() {
    for example in [Example::Local, Example::Remote] {
        let test = "the_lab_routers_configs_are_all_green";
        let Some(env) = harness::session(test, &SessionOptions::new(example)) else {
            return;
        };
        let ns = env.lab.ns(Role::Router);
        let (v, out) = json_report(&ns, env.ulogd.conf_path());
        assert_eq!(
            (v["failures"].as_u64(), v["warnings"].as_u64()),
            (Some(0), Some(0)),
            "{}: {:#?}",
            example.file_name(),
            v["findings"]
        );
        assert_eq!(out.status.code(), Some(0));
        // every part was looked at
        let oks = statuses(&v, "ok").join("\n");
        for part in [
            "plugin (line",
            "[ct1] NFCT",
            "[masq1] MASQLOG",
            "nf_conntrack_acct",
            "nf_conntrack_timestamp",
            "[masq1] destination",
            "[masq1] seal",
            "spool_dir",
        ] {
            assert!(oks.contains(part), "no ok for {part}:\n{oks}");
        }
        // the text form says the same, one line per check
        let out = check_config(&["--netns", &ns, &env.ulogd.conf_path().to_string_lossy()]);
        let t = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            t.lines().all(
                |l| l.starts_with("ok ") || l.contains(": 8 ok, 0 warnings, 0 failures: ready")
            ),
            "{t}"
        );
    }
}

#[test]
fn a_broken_config_names_each_problem_and_exits_1() {
    let test = "a_broken_config_names_each_problem_and_exits_1";
    let Some(lab) = harness::lab(test) else {
        return;
    };
    let so = ok(ulogd::find_plugin(), "plugin");
    let installed = ok(ulogd::install_plugin(&lab, &so), "installing the plugin");
    let mut subs = ulogd::substitutions(&lab, "ulogd", &installed);
    subs.syslog_socket = Some(lab.path("no.sock"));
    let mut conf = ok(UlogdConf::from_example(Example::Local, &subs), "config");
    let missing = lab.path("no-such-dir/ulogd_output_MASQLOG.so");
    let text_conf = conf.text().replace(
        &installed.to_string_lossy().into_owned(),
        &missing.to_string_lossy(),
    );
    conf = UlogdConf::from_text(&text_conf);
    conf.set("ct1", "hash_enable", "1")
        .set("ct1", "event_mask", "4")
        .set("masq1", "format", "xml")
        .set("masq1", "queue_sise", "100")
        .set("masq1", "queue_size", "abc");
    let path = lab.path("broken.conf");
    ok(conf.write(&path), "writing the config");
    ok(
        lab.sysctl(Role::Router, "net/netfilter/nf_conntrack_acct", "0"),
        "acct off",
    );
    let ns = lab.ns(Role::Router);
    let out = check_config(&["--netns", &ns, &path.to_string_lossy()]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    for (line_start, needle) in [
        ("FAIL  [ct1] hash_enable", "set hash_enable=0"),
        ("FAIL  [ct1] event_mask", "lacks NEW (0x1)"),
        (
            "FAIL  [masq1] format",
            "\"xml\": one of text, rfc5424, json",
        ),
        ("FAIL  [masq1] queue_sise", "did you mean `queue_size`?"),
        ("FAIL  [masq1] queue_size", "reads it as 0"),
        ("FAIL  plugin (line", "does not exist"),
        (
            "FAIL  sysctl net.netfilter.nf_conntrack_acct",
            "sysctl -w net.netfilter.nf_conntrack_acct=1",
        ),
    ] {
        assert!(
            t.lines()
                .any(|l| l.starts_with(line_start) && l.contains(needle)),
            "no line `{line_start} ... {needle}` in:\n{t}"
        );
    }
    assert!(t.lines().last().unwrap_or("").contains("failures"), "{t}");
}

#[test]
fn transparent_ident_routing_is_found_or_missed() {
    let test = "transparent_ident_routing_is_found_or_missed";
    let opts = SessionOptions::new(Example::Local).with_ident(IdentMode::Transparent);
    let Some(env) = harness::session(test, &opts) else {
        return;
    };
    let ns = env.lab.ns(Role::Router);
    let (v, _) = json_report(&ns, env.ulogd.conf_path());
    assert_eq!(v["failures"], 0, "{:#?}", v["findings"]);
    let oks = statuses(&v, "ok").join("\n");
    for part in ["capability", "nftables", "IPv4 routing", "IPv6 routing"] {
        assert!(oks.contains(part), "no ok for {part}:\n{oks}");
    }
    // the same config in the server namespace: no routing there
    let server = env.lab.ns(Role::Server);
    let (v, out) = json_report(&server, env.ulogd.conf_path());
    assert_eq!(out.status.code(), Some(1));
    let fails = statuses(&v, "fail").join("\n");
    assert!(fails.contains("socket transparent 1"), "{fails}");
}
