//! enable and disable on Debian's default ulogd.conf and on the files that
//! must be refused.

use super::*;

/// /etc/ulogd.conf as the ulogd2 package 2.0.8-1 installs it.
const DEBIAN: &str = include_str!("testdata/debian-ulogd.conf");
const FILE: &str = "/etc/ulogd.conf";

fn plugins() -> Plugins {
    Plugins::in_dir(Path::new("/usr/lib/x86_64-linux-gnu/ulogd"))
}

fn on(text: &str) -> Edit {
    enable(
        FILE,
        text,
        &plugins(),
        default_destination(),
        default_store_dir(),
    )
    .unwrap()
}

fn stacks(text: &str) -> Vec<String> {
    ConfFile::parse(text.as_bytes())
        .section("global")
        .unwrap()
        .unwrap()
        .all("stack")
        .map(|e| e.value.clone())
        .collect()
}

#[test]
fn debians_default_file_keeps_its_stack_and_gets_sections_of_new_names() {
    let e = on(DEBIAN);
    assert!(e.changed);
    assert_eq!(
        e.ids,
        Some(("masqlog_ct".to_string(), "masqlog".to_string()))
    );
    assert_eq!(
        stacks(&e.text),
        vec![
            "log1:NFLOG,base1:BASE,ifi1:IFINDEX,ip2str1:IP2STR,print1:PRINTPKT,emu1:LOGEMU",
            "masqlog_ct:NFCT,masqlog:MASQLOG",
        ]
    );
    let conf = ConfFile::parse(e.text.as_bytes());
    // no plugin= line: ulogd keeps loading them all
    assert_eq!(
        conf.section("global")
            .unwrap()
            .unwrap()
            .all("plugin")
            .count(),
        0
    );
    // Debian's empty [ct1] is still the first [ct1], and still empty
    assert!(conf.section("ct1").unwrap().unwrap().entries.is_empty());
    let ct = conf.section("masqlog_ct").unwrap().unwrap();
    assert_eq!(ct.get("hash_enable").unwrap().value, "0");
    assert_eq!(ct.get("event_mask").unwrap().value, "0x00000005");
    let m = conf.section("masqlog").unwrap().unwrap();
    assert_eq!(m.get("destination").unwrap().value, "unix:/run/masqlog/log");
    assert_eq!(m.get("format").unwrap().value, "text");
    // check-config finds the instance and takes its keys
    let report = crate::checkconfig::check(
        Path::new(FILE),
        e.text.as_bytes(),
        &crate::checkconfig::tests::Fake::default(),
    );
    assert!(
        !report
            .with(crate::checkconfig::Status::Fail)
            .filter(|c| !c.subject.ends_with("destination")) // no socket in the fake
            .any(|c| c.subject.starts_with("[masqlog") || c.subject.starts_with("stack")),
        "{}",
        report.render_text()
    );
}

#[test]
fn disable_gives_back_the_file_byte_for_byte() {
    let e = on(DEBIAN);
    let d = disable(FILE, &e.text).unwrap();
    assert!(d.changed);
    assert_eq!(d.text, DEBIAN);
}

#[test]
fn enable_twice_changes_nothing_and_disable_twice_too() {
    let e = on(DEBIAN);
    let again = on(&e.text);
    assert!(!again.changed);
    assert_eq!(again.text, e.text);
    assert_eq!(again.ids, e.ids);
    let d = disable(FILE, &e.text).unwrap();
    let d2 = disable(FILE, &d.text).unwrap();
    assert!(!d2.changed);
    assert_eq!(d2.text, DEBIAN);
}

#[test]
fn the_users_later_edits_stay_after_disable() {
    let e = on(DEBIAN);
    let edited = e
        .text
        .replace("loglevel=3", "loglevel=1")
        .replace("[log1]\n", "[log1]\nnetlink_socket_buffer_size=65536\n");
    let d = disable(FILE, &edited).unwrap();
    assert_eq!(
        d.text,
        DEBIAN
            .replace("loglevel=3", "loglevel=1")
            .replace("[log1]\n", "[log1]\nnetlink_socket_buffer_size=65536\n")
    );
}

#[test]
fn plugin_lines_are_added_only_when_the_file_names_plugins_and_lacks_them() {
    let text = "[global]\nlogfile=\"syslog\"\n\
        plugin=\"/usr/lib/x86_64-linux-gnu/ulogd/ulogd_inpflow_NFCT.so\"\n\
        plugin=\"/usr/lib/x86_64-linux-gnu/ulogd/ulogd_output_LOGEMU.so\"\n\
        stack=ct1:NFCT,emu1:LOGEMU\n\n[ct1]\nhash_enable=0\n\n[emu1]\nfile=\"/tmp/x\"\n";
    let e = on(text);
    let g = ConfFile::parse(e.text.as_bytes())
        .section("global")
        .unwrap()
        .unwrap();
    let plugins: Vec<&str> = g.all("plugin").map(|e| e.value.as_str()).collect();
    assert_eq!(
        plugins,
        vec![
            "/usr/lib/x86_64-linux-gnu/ulogd/ulogd_inpflow_NFCT.so",
            "/usr/lib/x86_64-linux-gnu/ulogd/ulogd_output_LOGEMU.so",
            "/usr/lib/x86_64-linux-gnu/ulogd/ulogd_output_MASQLOG.so",
        ]
    );
    // the plugin comes before the stack that uses it
    let p = g.all("plugin").last().unwrap().line;
    let s = g.all("stack").last().unwrap().line;
    assert!(p < s);
    assert_eq!(disable(FILE, &e.text).unwrap().text, text);
}

#[test]
fn names_in_use_are_not_taken() {
    let text = "[global]\nstack=masqlog:NFCT,emu1:LOGEMU\n\n[masqlog_ct]\nx=1\n";
    let e = on(text);
    assert_eq!(
        e.ids,
        Some(("masqlog_ct2".to_string(), "masqlog2".to_string()))
    );
    assert_eq!(disable(FILE, &e.text).unwrap().text, text);
}

#[test]
fn a_hand_made_masqlog_stack_is_left_alone() {
    let text = "[global]\nstack=ct1:NFCT,masq1:MASQLOG\n[ct1]\n[masq1]\n";
    let err = enable(
        FILE,
        text,
        &plugins(),
        default_destination(),
        default_store_dir(),
    )
    .unwrap_err();
    assert!(
        matches!(err, EnableError::HandMade { line: 2, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("masqlog check-config"), "{err}");
}

#[test]
fn no_global_section_is_refused() {
    let err = enable(
        FILE,
        "[ct1]\nx=1\n",
        &plugins(),
        default_destination(),
        default_store_dir(),
    )
    .unwrap_err();
    assert!(matches!(err, EnableError::NoGlobal { .. }), "{err}");
}

#[test]
fn a_damaged_block_is_refused_by_both() {
    let e = on(DEBIAN);
    let damaged = e.text.replacen(&format!("{END}\n"), "", 1);
    let err = enable(
        FILE,
        &damaged,
        &plugins(),
        default_destination(),
        default_store_dir(),
    )
    .unwrap_err();
    assert!(matches!(err, EnableError::Damaged { .. }), "{err}");
    assert!(disable(FILE, &damaged).is_err());
}

#[test]
fn a_file_without_a_last_newline_comes_back_as_it_was() {
    let text = "[global]\nstack=log1:NFLOG,emu1:LOGEMU\n\n[emu1]\n# the end";
    let e = on(text);
    assert!(e.text.contains(SECTIONS_BEGIN_NL));
    assert_eq!(disable(FILE, &e.text).unwrap().text, text);
}
