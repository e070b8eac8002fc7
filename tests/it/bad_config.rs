//! A bad value in `[masq1]` stops ulogd with an error that names the key
//! and the value. (ulogd versions: see `version.rs`.)

use std::time::Duration;

use masqlog_lab::{Example, Ulogd, UlogdConf, ulogd};

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
