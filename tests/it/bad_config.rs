//! A bad value in `[masq1]` stops ulogd with an error that names the key
//! and the value. (ulogd versions: see `version.rs`.)

use std::time::Duration;

use masqlog_lab::{Example, Role, Ulogd, UlogdConf, ulogd};

use crate::harness::{self, ok};

const BAD: &[(&str, &str)] = &[
    ("format", "xml"),
    ("queue_size", "0"),
    ("destination", "tcp:nohost"),
];

#[test]
fn a_bad_value_stops_ulogd_and_names_key_and_value() {
    let test = "a_bad_value_stops_ulogd_and_names_key_and_value";
    let Some(lab) = harness::lab(test) else {
        return;
    };
    let so = ok(ulogd::find_plugin(), "plugin");
    let installed = ok(ulogd::install_plugin(&lab, &so), "installing the plugin");
    for (i, (key, value)) in BAD.iter().enumerate() {
        let name = format!("ulogd-bad{i}");
        let mut subs = ulogd::substitutions(&lab, &name, &installed);
        subs.syslog_socket = Some(lab.path("no-such.sock"));
        let mut conf = ok(UlogdConf::from_example(Example::Local, &subs), "config");
        conf.set("masq1", key, value);
        let mut u = ok(Ulogd::spawn(&lab, &name, &conf), "starting ulogd");
        let status = ok(u.wait_exit(Duration::from_secs(30)), "ulogd to exit");
        let log = u.log();
        assert!(!status.success(), "{key}={value}: ulogd exited 0:\n{log}");
        let line = log
            .lines()
            .find(|l| l.contains(key) && l.contains(value))
            .unwrap_or_else(|| panic!("{key}={value}: no line names both in:\n{log}"));
        assert!(line.contains("MASQLOG") || line.contains("masq1"), "{line}");
    }
}

/// The conntrack sysctls the records need, off in the router's namespace:
/// ulogd starts (records are still written) and its log says, at ERROR,
/// which one is 0, what the lines lack and how to turn it on for good.
#[test]
fn a_conntrack_sysctl_at_0_is_named_at_start() {
    let test = "a_conntrack_sysctl_at_0_is_named_at_start";
    let Some(lab) = harness::lab(test) else {
        return;
    };
    let so = ok(ulogd::find_plugin(), "plugin");
    let installed = ok(ulogd::install_plugin(&lab, &so), "installing the plugin");
    ok(
        lab.sysctl(Role::Router, "net/netfilter/nf_conntrack_acct", "0"),
        "acct off",
    );
    let name = "ulogd-acct0";
    let mut subs = ulogd::substitutions(&lab, name, &installed);
    subs.syslog_socket = Some(lab.path("no-such.sock"));
    let conf = ok(UlogdConf::from_example(Example::Local, &subs), "config");
    let mut u = ok(Ulogd::start(&lab, name, &conf), "starting ulogd");
    let log = u.log();
    let line = log
        .lines()
        .find(|l| l.contains("net.netfilter.nf_conntrack_acct is 0"))
        .unwrap_or_else(|| panic!("no warning about nf_conntrack_acct in:\n{log}"));
    assert!(line.contains("0 packets and 0 bytes"), "{line}");
    assert!(line.contains("/etc/sysctl.d/"), "{line}");
    assert!(
        !log.contains("nf_conntrack_timestamp is 0"),
        "timestamp is on in the lab:\n{log}"
    );
    ok(u.stop(), "stopping ulogd");
}
