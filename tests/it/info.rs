//! `ulogd -i` on the built plugin: it registers as MASQLOG and shows every
//! config key of `keys.rs` and every input key. Needs no root.

use std::process::Command;

use masqlog_core::keys::{CONF_KEYS, ConfKind, INPUT_KEYS};
use masqlog_lab::{process, ulogd};

use crate::harness::skip;

#[test]
fn ulogd_info_lists_masqlog_and_every_key() {
    let test = "ulogd_info_lists_masqlog_and_every_key";
    let bin = match process::find_tool("ulogd") {
        Ok(b) => b,
        Err(e) => return skip(test, &e),
    };
    let so = ulogd::find_plugin().unwrap_or_else(|e| panic!("{e}"));
    // -i needs a path with a '/': find_plugin's is absolute.
    let out = Command::new(&bin)
        .arg("-i")
        .arg(&so)
        .output()
        .expect("running ulogd -i");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "ulogd -i failed: {out:?}");
    assert!(
        text.lines().any(|l| l.trim() == "Name: MASQLOG"),
        "the plugin did not register (version mismatch?):\n{text}"
    );
    for key in CONF_KEYS {
        let kind = match key.kind {
            ConfKind::Str => "String",
            ConfKind::Int => "Integer",
        };
        let want = format!("Var: {} ({kind}, Default: {})", key.name, key.default);
        assert!(
            text.lines().any(|l| l.trim() == want.trim()),
            "missing {want:?} in:\n{text}"
        );
    }
    for key in INPUT_KEYS {
        let want = format!("Key: {} (", key.name);
        let line = text
            .lines()
            .find(|l| l.trim().starts_with(&want))
            .unwrap_or_else(|| panic!("missing input key {} in:\n{text}", key.name));
        assert_eq!(
            line.contains("optional"),
            key.optional,
            "{line}: optional flag"
        );
    }
}
