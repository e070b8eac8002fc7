//! End-to-end tests of the library: logs written with the real formatters,
//! read back through files, compression, bisection and matching.

use std::io::Write as _;
use std::path::PathBuf;

use super::testutil::{Rng, Style, line, noise, rec, rfc3339_local, sealed_line, t, temp_dir};
use super::*;
use crate::when;
use masqlog_core::config::Format;
use masqlog_core::record::{Event, IdentInfo, IdentStatus, Timestamp};

fn utc() -> Result<Zone, TimeError> {
    Ok(Zone::utc())
}

fn q(public: &str, at: &str) -> AbuseReport {
    let (public_ip, public_port) = query::parse_public(public).unwrap();
    AbuseReport {
        public_ip,
        public_port,
        at: when::parse_report_time(at, &utc()).unwrap(),
        remote: None,
        proto: None,
        slack: DEFAULT_SLACK_SECS,
        max_age: Some(DEFAULT_MAX_AGE_SECS),
    }
}

fn write(dir: &tempfile::TempDir, name: &str, lines: &[String]) -> PathBuf {
    let p = dir.path().join(name);
    let mut f = std::fs::File::create(&p).unwrap();
    for l in lines {
        writeln!(f, "{l}").unwrap();
    }
    // Written after every line in it, whatever this machine's clock says.
    f.set_modified(mtime_after_all()).unwrap();
    p
}

fn mtime_after_all() -> std::time::SystemTime {
    std::time::UNIX_EPOCH + std::time::Duration::from_secs(t("2030-01-01T00:00:00Z").secs as u64)
}

fn run(q: &AbuseReport, inputs: &[Input], scan_all: bool) -> (Scan, Verdict) {
    let scan = scan(
        &[q],
        inputs,
        ScanOptions {
            stdin: None,
            progress: &mut NoProgress,
            scan_all,
            keys: &[],
        },
    );
    let v = decide(&scan, q);
    (scan, v)
}

fn files(p: &[&PathBuf]) -> Vec<Input> {
    p.iter().map(|p| Input::Path((*p).clone())).collect()
}

const TRAD: Style = Style::Traditional { offset: 0 };

/// A flow's start and end lines.
#[allow(clippy::too_many_arguments)]
fn flow_lines(
    format: Format,
    style: Style,
    id: u32,
    client: &str,
    masq: &str,
    remote: &str,
    start: &str,
    end: Option<&str>,
) -> Vec<String> {
    let s = t(start);
    let mut v = vec![line(
        format,
        style,
        s,
        &rec(Event::Start, id, client, masq, remote, Some(s), None),
    )];
    if let Some(e) = end {
        let e = t(e);
        v.push(line(
            format,
            style,
            e,
            &rec(Event::End, id, client, masq, remote, Some(s), Some(e)),
        ));
    }
    v
}

#[test]
fn start_and_end_lines_join_into_one_flow() {
    let d = temp_dir("join");
    let mut lines = vec![noise(t("2026-11-21T12:00:00Z"), 1)];
    lines.extend(flow_lines(
        Format::Text,
        TRAD,
        3954,
        "10.99.0.2:40000",
        "192.0.2.1:53500",
        "203.0.113.7:443",
        "2026-11-21T12:37:42.123456Z",
        Some("2026-11-21T12:38:12.654321Z"),
    ));
    lines.push(noise(t("2026-11-21T12:39:00Z"), 2));
    let p = write(&d, "syslog", &lines);
    let (scan, v) = run(
        &q("192.0.2.1:53500", "2026-11-21 13:37:42 CET"),
        &files(&[&p]),
        false,
    );
    assert_eq!(v.matches.len(), 1);
    let m = &v.matches[0];
    assert_eq!(m.flow.record.client, testutil::ep("10.99.0.2:40000"));
    assert_eq!(m.flow.end, FlowEnd::At(t("2026-11-21T12:38:12.654321Z")));
    assert_eq!(m.fit, Fit::BeforeStart(123_456));
    let ev = scan.evidence(&m.flow);
    assert_eq!(ev.len(), 2);
    assert_eq!((ev[0].line, ev[0].event.as_str()), (Some(2), "start"));
    assert_eq!((ev[1].line, ev[1].event.as_str()), (Some(3), "end"));
    assert_eq!(ev[0].file, p.display().to_string());
}

#[test]
fn a_start_line_alone_is_an_open_flow() {
    let d = temp_dir("open");
    let lines = flow_lines(
        Format::Json,
        TRAD,
        1,
        "10.99.0.2:40000",
        "192.0.2.1:53500",
        "203.0.113.7:443",
        "2026-11-21T10:00:00Z",
        None,
    );
    let p = write(&d, "syslog", &lines);
    for scan_all in [false, true] {
        let (_, v) = run(
            &q("192.0.2.1:53500", "2026-11-21T12:37:42Z"),
            &files(&[&p]),
            scan_all,
        );
        assert_eq!(v.matches.len(), 1, "scan_all={scan_all}");
        assert_eq!(v.matches[0].flow.end, FlowEnd::Open);
        assert_eq!(v.matches[0].fit, Fit::Inside);
    }
    // Before the start (beyond the slack): no match, but the nearest.
    let (_, v) = run(
        &q("192.0.2.1:53500", "2026-11-21T09:50:00Z"),
        &files(&[&p]),
        false,
    );
    assert!(v.matches.is_empty());
    assert_eq!(v.nearest.unwrap().fit, Fit::BeforeStart(600_000_000));
}

#[test]
fn an_end_line_alone_carries_the_lifetime() {
    let d = temp_dir("endonly");
    let lines = flow_lines(
        Format::Rfc5424,
        Style::Raw,
        9,
        "10.99.0.2:40000",
        "192.0.2.1:53500",
        "203.0.113.7:443",
        "2026-11-20T10:00:00Z",
        Some("2026-11-21T12:40:00Z"),
    );
    // Only the end line (the start was in a file we do not have).
    let p = write(&d, "syslog", &lines[1..]);
    for scan_all in [false, true] {
        let (scan, v) = run(
            &q("192.0.2.1:53500", "2026-11-21T12:37:42Z"),
            &files(&[&p]),
            scan_all,
        );
        assert_eq!(v.matches.len(), 1);
        let f = &v.matches[0].flow;
        assert_eq!(f.record.start, Some(t("2026-11-20T10:00:00Z")));
        assert_eq!(scan.evidence(f).len(), 1);
    }
}

#[test]
fn two_candidates_are_both_shown_best_first() {
    let d = temp_dir("two");
    let mut lines = Vec::new();
    // Inside: 12:30 - 12:45 to 203.0.113.7:443.
    lines.extend(flow_lines(
        Format::Text,
        TRAD,
        1,
        "10.99.0.2:40000",
        "192.0.2.1:53500",
        "203.0.113.7:443",
        "2026-11-21T12:30:00Z",
        Some("2026-11-21T12:45:00Z"),
    ));
    // Within the slack after its end: 12:20 - 12:36:42 to 198.51.100.9:80.
    lines.extend(flow_lines(
        Format::Text,
        TRAD,
        2,
        "10.99.0.3:41000",
        "192.0.2.1:53500",
        "198.51.100.9:80",
        "2026-11-21T12:20:00Z",
        Some("2026-11-21T12:36:42Z"),
    ));
    lines.sort_by_key(|l| l[..15].to_string());
    let p = write(&d, "syslog", &lines);
    let mut query = q("192.0.2.1:53500", "2026-11-21T12:37:42Z");
    let (_, v) = run(&query, &files(&[&p]), false);
    assert_eq!(v.matches.len(), 2);
    assert_eq!(v.matches[0].flow.record.id, Some(1));
    assert_eq!(v.matches[1].flow.record.id, Some(2));
    assert_eq!(v.matches[1].fit, Fit::AfterEnd(60_000_000));
    // The remote names one of them.
    query.remote = Some(query::parse_remote("198.51.100.9").unwrap());
    let (_, v) = run(&query, &files(&[&p]), false);
    assert_eq!(v.matches.len(), 1);
    assert_eq!(v.matches[0].flow.record.id, Some(2));
    assert_eq!(v.filtered_out, 1);
    // A remote port ranks the exact one first, the other stays visible.
    query.remote = None;
    let mut both = q("192.0.2.1:53500", "2026-11-21T12:36:00Z");
    both.remote = None;
    let (_, v) = run(&both, &files(&[&p]), false);
    assert_eq!(v.matches[0].flow.record.id, Some(1));
    both.remote = Some(query::parse_remote("203.0.113.7:80").unwrap());
    let (_, v) = run(&both, &files(&[&p]), false);
    assert_eq!(v.matches.len(), 1);
    assert_eq!(v.matches[0].remote_port_matches, Some(false));
    // --proto narrows.
    let mut udp = q("192.0.2.1:53500", "2026-11-21T12:37:42Z");
    udp.proto = Some(masqlog_core::record::Proto::Udp);
    let (_, v) = run(&udp, &files(&[&p]), false);
    assert!(v.matches.is_empty());
    assert_eq!(v.filtered_out, 2);
}

#[test]
fn slack_edges_are_inclusive() {
    let d = temp_dir("slack");
    let lines = flow_lines(
        Format::Text,
        TRAD,
        1,
        "10.99.0.2:40000",
        "192.0.2.1:53500",
        "203.0.113.7:443",
        "2026-11-21T12:00:00Z",
        Some("2026-11-21T12:10:00Z"),
    );
    let p = write(&d, "syslog", &lines);
    let cases = [
        ("2026-11-21T11:58:00Z", true),
        ("2026-11-21T11:57:59.999999Z", false),
        ("2026-11-21T12:12:00Z", true),
        ("2026-11-21T12:12:00.000001Z", false),
        ("2026-11-21T12:05:00Z", true),
    ];
    for (at, want) in cases {
        for scan_all in [false, true] {
            let (_, v) = run(&q("192.0.2.1:53500", at), &files(&[&p]), scan_all);
            assert_eq!(!v.matches.is_empty(), want, "{at} scan_all={scan_all}");
        }
    }
}

#[test]
fn every_format_and_stored_form_gives_the_same_answer() {
    let d = temp_dir("forms");
    let styles = [
        Style::Traditional { offset: 0 },
        Style::Traditional { offset: 3600 },
        Style::Traditional { offset: -5 * 3600 },
        Style::Rfc3339 { offset: 3600 },
        Style::Raw,
    ];
    for format in [Format::Text, Format::Json, Format::Rfc5424] {
        for style in styles {
            for masq in ["192.0.2.1:53500", "[2001:db8::1]:53500"] {
                let client = if masq.starts_with('[') {
                    "[fd00::2]:40000"
                } else {
                    "10.99.0.2:40000"
                };
                let remote = if masq.starts_with('[') {
                    "[2001:db8:ffff::7]:443"
                } else {
                    "203.0.113.7:443"
                };
                let mut lines = Vec::new();
                for i in 0..2000u64 {
                    lines.push(noise(
                        Timestamp::new(t("2026-11-20T12:00:00Z").secs + i as i64 * 60, 0),
                        i,
                    ));
                }
                lines.insert(
                    1500,
                    flow_lines(
                        format,
                        style,
                        77,
                        client,
                        masq,
                        remote,
                        "2026-11-21T12:37:00Z",
                        Some("2026-11-21T12:38:00Z"),
                    )
                    .join("\n"),
                );
                let p = write(&d, "syslog", &lines);
                for scan_all in [false, true] {
                    let query = q(masq, "2026-11-21T12:37:42Z");
                    let (scan, v) = run(&query, &files(&[&p]), scan_all);
                    let what = format!("{format:?} {style:?} {masq} scan_all={scan_all}");
                    assert_eq!(v.matches.len(), 1, "{what}");
                    assert_eq!(
                        v.matches[0].flow.record.client,
                        testutil::ep(client),
                        "{what}"
                    );
                    let ev = scan.evidence(&v.matches[0].flow);
                    assert_eq!(ev.len(), 2, "{what}");
                    assert_eq!(ev[0].line, Some(1501), "{what}");
                    assert_eq!(ev[1].line, Some(1502), "{what}");
                    assert!(scan.bad_lines.is_empty(), "{what}: {:?}", scan.bad_lines);
                }
            }
        }
    }
}

#[test]
fn ident_lines_join_by_id_even_after_the_end() {
    let d = temp_dir("ident");
    let s = t("2026-11-21T12:37:00Z");
    let e = t("2026-11-21T12:37:01Z");
    let mut ident = rec(
        Event::Ident,
        5,
        "10.99.0.2:40000",
        "192.0.2.1:53500",
        "203.0.113.7:443",
        Some(s),
        None,
    );
    ident.ident = Some(IdentInfo {
        status: IdentStatus::User,
        user: Some(b"alice\x1b[2J".to_vec()),
        opsys: Some(b"UNIX".to_vec()),
        detail: None,
    });
    let lines = vec![
        line(
            Format::Text,
            TRAD,
            s,
            &rec(
                Event::Start,
                5,
                "10.99.0.2:40000",
                "192.0.2.1:53500",
                "203.0.113.7:443",
                Some(s),
                None,
            ),
        ),
        line(
            Format::Text,
            TRAD,
            e,
            &rec(
                Event::End,
                5,
                "10.99.0.2:40000",
                "192.0.2.1:53500",
                "203.0.113.7:443",
                Some(s),
                Some(e),
            ),
        ),
        line(Format::Text, TRAD, Timestamp::new(e.secs + 2, 0), &ident),
    ];
    let p = write(&d, "syslog", &lines);
    let (scan, v) = run(
        &q("192.0.2.1:53500", "2026-11-21T12:37:00Z"),
        &files(&[&p]),
        false,
    );
    assert_eq!(v.matches.len(), 1);
    let f = &v.matches[0].flow;
    assert_eq!(f.users(), vec![b"alice\x1b[2J".to_vec()]);
    assert_eq!(f.end, FlowEnd::At(e));
    assert_eq!(scan.evidence(f).len(), 3);
    let text = render::human(
        &scan,
        &render::Answer {
            query: &q("192.0.2.1:53500", "2026-11-21T12:37:00Z"),
            verdict: &v,
            portblock: None,
        },
    );
    assert!(
        text.starts_with(
            "192.0.2.1:53500 at 2026-11-21T12:37:00Z was 10.99.0.2:40000 (user alice\\x1b[2J)"
        ),
        "{text}"
    );
    assert!(!text.contains('\x1b'), "{text}");
}

#[test]
fn a_lost_end_line_is_bounded_by_the_next_start() {
    let d = temp_dir("lost");
    let mut lines = flow_lines(
        Format::Text,
        TRAD,
        5,
        "10.99.0.2:40000",
        "192.0.2.1:53500",
        "203.0.113.7:443",
        "2026-11-21T12:00:00Z",
        None,
    );
    lines.extend(flow_lines(
        Format::Text,
        TRAD,
        5,
        "10.99.0.9:40000",
        "192.0.2.1:53500",
        "203.0.113.7:443",
        "2026-11-21T13:00:00Z",
        Some("2026-11-21T13:00:10Z"),
    ));
    let p = write(&d, "syslog", &lines);
    let (_, v) = run(
        &q("192.0.2.1:53500", "2026-11-21T12:30:00Z"),
        &files(&[&p]),
        true,
    );
    assert_eq!(v.matches.len(), 1);
    assert_eq!(
        v.matches[0].flow.end,
        FlowEnd::Lost {
            before: t("2026-11-21T13:00:00Z")
        }
    );
    let (_, v) = run(
        &q("192.0.2.1:53500", "2026-11-21T13:30:00Z"),
        &files(&[&p]),
        true,
    );
    assert!(v.matches.is_empty());
}

#[test]
fn an_open_flow_older_than_max_age_is_a_hint_not_a_match() {
    let d = temp_dir("stale");
    let lines = flow_lines(
        Format::Text,
        TRAD,
        5,
        "10.99.0.2:40000",
        "192.0.2.1:53500",
        "203.0.113.7:443",
        "2026-11-18T12:00:00Z",
        None,
    );
    let p = write(&d, "syslog", &lines);
    let (_, v) = run(
        &q("192.0.2.1:53500", "2026-11-21T12:30:00Z"),
        &files(&[&p]),
        true,
    );
    assert!(v.matches.is_empty());
    assert_eq!(v.stale.len(), 1);
    let mut unlimited = q("192.0.2.1:53500", "2026-11-21T12:30:00Z");
    unlimited.max_age = None;
    let (_, v) = run(&unlimited, &files(&[&p]), false);
    assert_eq!(v.matches.len(), 1);
}

#[test]
fn malformed_masqlog_lines_are_reported_with_file_and_line() {
    let d = temp_dir("bad");
    let mut lines = flow_lines(
        Format::Text,
        TRAD,
        5,
        "10.99.0.2:40000",
        "192.0.2.1:53500",
        "203.0.113.7:443",
        "2026-11-21T12:37:00Z",
        Some("2026-11-21T12:38:00Z"),
    );
    lines.insert(
        1,
        "Nov 21 12:37:30 gw1 masqlog[4242]: masqlog/1 ev=start nat=snat proto=tcp client=10.0.0.1:1 masq=192.0.2.1:53500 remote=bogus".into(),
    );
    lines.insert(
        0,
        "Nov 21 12:37:00 gw1 kernel: nothing about 192.0.2.1:53500 here".into(),
    );
    let p = write(&d, "syslog", &lines);
    let (scan, v) = run(
        &q("192.0.2.1:53500", "2026-11-21T12:37:42Z"),
        &files(&[&p]),
        false,
    );
    assert_eq!(v.matches.len(), 1);
    assert_eq!(scan.bad_lines.len(), 1);
    let b = scan.bad_lines[0].to_string();
    assert_eq!(
        b,
        format!(
            "{}:3: field `remote` has an invalid value \"bogus\"",
            p.display()
        )
    );
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

#[test]
fn rotated_sets_with_gzip_and_zstd_join_across_files() {
    let d = temp_dir("rot");
    let all = flow_lines(
        Format::Text,
        TRAD,
        5,
        "10.99.0.2:40000",
        "192.0.2.1:53500",
        "203.0.113.7:443",
        "2026-11-21T12:30:00Z",
        Some("2026-11-21T12:50:00Z"),
    );
    // start in syslog.2.gz (named without .gz: magic bytes decide),
    // noise in syslog.1 (zstd), end in syslog.
    let mut text = all[0].clone();
    text.push('\n');
    std::fs::write(d.path().join("syslog.2"), gzip(text.as_bytes())).unwrap();
    let mid = format!("{}\n", noise(t("2026-11-21T12:40:00Z"), 3));
    std::fs::write(
        d.path().join("syslog.1"),
        zstd::encode_all(mid.as_bytes(), 3).unwrap(),
    )
    .unwrap();
    write(&d, "syslog", &all[1..]);
    for name in ["syslog.2", "syslog.1"] {
        let f = std::fs::File::options()
            .write(true)
            .open(d.path().join(name))
            .unwrap();
        f.set_modified(mtime_after_all()).unwrap();
    }
    for scan_all in [false, true] {
        let (scan, v) = run(
            &q("192.0.2.1:53500", "2026-11-21T12:37:42Z"),
            &[Input::Path(d.path().to_path_buf())],
            scan_all,
        );
        assert_eq!(v.matches.len(), 1, "scan_all={scan_all}");
        let f = &v.matches[0].flow;
        assert_eq!(f.end, FlowEnd::At(t("2026-11-21T12:50:00Z")));
        let ev = scan.evidence(f);
        assert!(ev[0].file.ends_with("syslog.2"), "{ev:?}");
        assert!(ev[1].file.ends_with("syslog"), "{ev:?}");
        assert_eq!(
            scan.sources
                .iter()
                .map(|s| s.spec.name().rsplit('/').next().unwrap().to_string())
                .collect::<Vec<_>>(),
            vec!["syslog.2", "syslog.1", "syslog"]
        );
        assert!(scan.unreadable.is_empty());
    }
}

#[test]
fn a_truncated_gzip_file_is_a_clear_error_and_the_lines_before_count() {
    let d = temp_dir("trunc");
    let mut text = String::new();
    for i in 0..20_000u64 {
        text.push_str(&noise(
            Timestamp::new(t("2026-11-21T10:00:00Z").secs + i as i64, 0),
            i,
        ));
        text.push('\n');
    }
    let flow = flow_lines(
        Format::Text,
        TRAD,
        5,
        "10.99.0.2:40000",
        "192.0.2.1:53500",
        "203.0.113.7:443",
        "2026-11-21T12:30:00Z",
        None,
    );
    let text = format!("{}\n{text}", flow[0]);
    let gz = gzip(text.as_bytes());
    let p = d.path().join("syslog.3.gz");
    std::fs::write(&p, &gz[..gz.len() / 2]).unwrap();
    let (scan, v) = run(
        &q("192.0.2.1:53500", "2026-11-21T12:37:42Z"),
        &files(&[&p]),
        true,
    );
    assert_eq!(scan.unreadable.len(), 1);
    let (name, why) = &scan.unreadable[0];
    assert_eq!(name, &p.display().to_string());
    assert!(
        why.starts_with("truncated or corrupt compressed data after "),
        "{why}"
    );
    assert_eq!(v.matches.len(), 1, "the lines before the damage are used");
    assert!(scan.incomplete());
    // Not gzip at all but named .gz: read as text. Corrupt magic: an error.
    std::fs::write(&p, [0x1f, 0x8b, 8, 0, 1, 2, 3]).unwrap();
    let (scan, _) = run(
        &q("192.0.2.1:53500", "2026-11-21T12:37:42Z"),
        &files(&[&p]),
        true,
    );
    assert_eq!(scan.unreadable.len(), 1, "{:?}", scan.unreadable);
    // A truncated zstd file too.
    let z = zstd::encode_all(text.as_bytes(), 3).unwrap();
    let pz = d.path().join("syslog.4.zst");
    std::fs::write(&pz, &z[..z.len() / 2]).unwrap();
    let (scan, _) = run(
        &q("192.0.2.1:53500", "2026-11-21T12:37:42Z"),
        &files(&[&pz]),
        true,
    );
    assert_eq!(scan.unreadable.len(), 1, "{:?}", scan.unreadable);
    // A missing file.
    let (scan, _) = run(
        &q("192.0.2.1:53500", "2026-11-21T12:37:42Z"),
        &files(&[&d.path().join("nope")]),
        true,
    );
    assert_eq!(scan.unreadable.len(), 1);
}

#[test]
fn fall_back_overlap_searches_both_instants() {
    let d = temp_dir("fold");
    // 02:30 local in Amsterdam on 2026-10-25 is 00:30Z (CEST) or 01:30Z (CET).
    let mut lines = flow_lines(
        Format::Text,
        TRAD,
        1,
        "10.99.0.2:40000",
        "192.0.2.1:53500",
        "203.0.113.7:443",
        "2026-10-25T00:29:00Z",
        Some("2026-10-25T00:31:00Z"),
    );
    lines.extend(flow_lines(
        Format::Text,
        TRAD,
        2,
        "10.99.0.3:40000",
        "192.0.2.1:53500",
        "203.0.113.7:443",
        "2026-10-25T01:29:00Z",
        Some("2026-10-25T01:31:00Z"),
    ));
    let p = write(&d, "syslog", &lines);
    let mut query = q("192.0.2.1:53500", "2026-10-25T00:30:00Z");
    query.at =
        when::parse_report_time("2026-10-25 02:30:00", &when::parse_zone("Europe/Amsterdam"))
            .unwrap();
    for scan_all in [false, true] {
        let (_, v) = run(&query, &files(&[&p]), scan_all);
        assert_eq!(v.matches.len(), 2);
        let instants: Vec<usize> = v.matches.iter().map(|m| m.instant).collect();
        assert!(instants.contains(&0) && instants.contains(&1));
    }
}

#[test]
fn directories_skip_binary_files() {
    let d = temp_dir("dir");
    std::fs::write(d.path().join("wtmp"), [0u8, 1, 2, 3, 0, 0]).unwrap();
    write(
        &d,
        "syslog",
        &flow_lines(
            Format::Text,
            TRAD,
            1,
            "10.99.0.2:40000",
            "192.0.2.1:53500",
            "203.0.113.7:443",
            "2026-11-21T12:30:00Z",
            None,
        ),
    );
    let (scan, v) = run(
        &q("192.0.2.1:53500", "2026-11-21T12:37:42Z"),
        &[Input::Path(d.path().to_path_buf())],
        false,
    );
    assert_eq!(v.matches.len(), 1);
    assert_eq!(scan.sources.len(), 1);
    assert!(
        scan.notes.iter().any(|n| n.contains("wtmp")),
        "{:?}",
        scan.notes
    );
}

/// A large sorted log with many flows on few ports; the reports; the
/// lines. `disorder`: swap neighbours up to a minute apart.
fn big_log(
    rng: &mut Rng,
    n_lines: usize,
    disorder: bool,
    style: Style,
) -> (Vec<String>, Vec<(u16, i64)>) {
    let base = t("2026-11-19T00:00:00Z").secs;
    // (logged at µs, line)
    let mut events: Vec<(i64, String)> = Vec::new();
    let mut now = base * 1_000_000;
    let mut id = 1000u32;
    let mut reports = Vec::new();
    let formats = [Format::Text, Format::Json, Format::Rfc5424];
    while events.len() < n_lines {
        now += 200_000 + rng.below(1_600_000) as i64;
        if rng.below(4) == 0 {
            id += 1;
            let port = 50_000 + rng.below(40) as u16;
            let long = rng.below(10) == 0;
            let dur = 1 + rng.below(if long { 7200 } else { 120 }) as i64;
            let s = Timestamp::new(now.div_euclid(1_000_000), now.rem_euclid(1_000_000) as u32);
            let e = Timestamp::new(s.secs + dur, s.usecs);
            let client = format!(
                "10.99.{}.{}:{}",
                rng.below(4),
                2 + rng.below(200),
                30000 + rng.below(30000)
            );
            let masq = format!("192.0.2.1:{port}");
            let remote = format!("203.0.113.{}:443", rng.below(250));
            let f = formats[rng.below(3) as usize];
            let st = if f == Format::Rfc5424 {
                Style::Raw
            } else {
                style
            };
            events.push((
                s.as_micros(),
                line(
                    f,
                    st,
                    s,
                    &rec(Event::Start, id, &client, &masq, &remote, Some(s), None),
                ),
            ));
            // 1 in 50 flows never ends in the log.
            if rng.below(50) != 0 {
                events.push((
                    e.as_micros(),
                    line(
                        f,
                        st,
                        e,
                        &rec(Event::End, id, &client, &masq, &remote, Some(s), Some(e)),
                    ),
                ));
            }
            if rng.below(40) == 0 {
                reports.push((port, s.secs + rng.below(dur as u64 + 1) as i64));
            }
        } else {
            let at = Timestamp::new(now.div_euclid(1_000_000), 0);
            let shifted = match style {
                Style::Traditional { offset } => Timestamp::new(at.secs + i64::from(offset), 0),
                _ => at,
            };
            let l = noise(shifted, events.len() as u64);
            let l = match style {
                Style::Rfc3339 { offset } => format!("{}{}", rfc3339_local(at, offset), &l[15..]),
                _ => l,
            };
            events.push((now, l));
        }
    }
    events.sort_by_key(|(at, _)| *at);
    if disorder {
        for i in 1..events.len() {
            if rng.below(20) == 0 && events[i].0 - events[i - 1].0 < 60_000_000 {
                events.swap(i, i - 1);
            }
        }
    }
    // Reports with no flow at all, and near the edges.
    reports.push((50_001, base + 3600));
    reports.push((50_002, base - 7200));
    reports.push((50_003, now / 1_000_000 + 3600));
    (events.into_iter().map(|(_, l)| l).collect(), reports)
}

fn signature(scan: &Scan, v: &Verdict) -> Vec<String> {
    v.matches
        .iter()
        .map(|m| {
            let f = &m.flow;
            let ev: Vec<String> = scan
                .evidence(f)
                .iter()
                .map(|e| format!("{}:{}", e.line.unwrap_or(0), e.event))
                .collect();
            format!(
                "{:?} {:?} {:?} {:?} {:?} {:?}",
                f.record.id,
                f.record.client,
                f.record.start,
                f.end,
                m.fit,
                if f.end == FlowEnd::Open { vec![] } else { ev }
            )
        })
        .collect()
}

#[test]
fn bisection_gives_the_same_answers_as_a_linear_scan() {
    for (seed, disorder, style) in [
        (1, false, Style::Traditional { offset: 0 }),
        (2, true, Style::Traditional { offset: 3600 }),
        (3, true, Style::Rfc3339 { offset: -18000 }),
    ] {
        let d = temp_dir("bisect");
        let mut rng = Rng::new(seed);
        let (lines, reports) = big_log(&mut rng, 100_000, disorder, style);
        let p = write(&d, "syslog", &lines);
        assert!(reports.len() > 20, "{}", reports.len());
        let queries: Vec<AbuseReport> = reports
            .iter()
            .map(|(port, at)| {
                let mut query = q(&format!("192.0.2.1:{port}"), &format!("@{at}"));
                query.max_age = Some(3 * 3600);
                query
            })
            .collect();
        // The linear answers: one pass for all reports, as batch mode does.
        let refs: Vec<&AbuseReport> = queries.iter().collect();
        let linear = scan(
            &refs,
            &files(&[&p]),
            ScanOptions {
                stdin: None,
                progress: &mut NoProgress,
                scan_all: true,
                keys: &[],
            },
        );
        let size = std::fs::metadata(&p).unwrap().len();
        assert_eq!(linear.stats.bytes_read, size);
        let mut bisected = 0;
        for query in &queries {
            let (s1, v1) = run(query, &files(&[&p]), false);
            let v2 = decide(&linear, query);
            assert_eq!(
                signature(&s1, &v1),
                signature(&linear, &v2),
                "seed {seed} {} at {:?}",
                query.public_string(),
                query.at.instants
            );
            bisected += s1.stats.bisected;
            if s1.stats.bisected > 0 && query.at.first().secs > t("2026-11-19T12:00:00Z").secs {
                assert!(
                    s1.stats.bytes_read < size / 2,
                    "seed {seed}: {} of {size}",
                    s1.stats.bytes_read,
                );
            }
        }
        assert!(bisected > 0, "seed {seed}");
    }
}

#[test]
fn an_unsorted_file_is_read_whole() {
    let d = temp_dir("unsorted");
    let mut rng = Rng::new(9);
    let (mut lines, reports) = big_log(&mut rng, 5000, false, TRAD);
    // Put the second half first: a log concatenated out of order.
    let half = lines.len() / 2;
    lines.rotate_left(half);
    let p = write(&d, "syslog", &lines);
    for (port, at) in &reports {
        let query = q(&format!("192.0.2.1:{port}"), &format!("@{at}"));
        let (s1, v1) = run(&query, &files(&[&p]), false);
        let (s2, v2) = run(&query, &files(&[&p]), true);
        assert_eq!(signature(&s1, &v1), signature(&s2, &v2));
        assert!(
            s1.notes.iter().any(|n| n.contains("not in time order")),
            "{:?}",
            s1.notes
        );
    }
}

#[test]
fn files_written_before_the_window_are_skipped() {
    let d = temp_dir("mtime");
    let p = write(&d, "syslog.1", &[noise(t("2026-11-01T00:00:00Z"), 1)]);
    let f = std::fs::File::options().write(true).open(&p).unwrap();
    f.set_modified(
        std::time::UNIX_EPOCH
            + std::time::Duration::from_secs(t("2026-11-01T00:00:00Z").secs as u64),
    )
    .unwrap();
    let (scan, _) = run(
        &q("192.0.2.1:53500", "2026-11-21T12:37:42Z"),
        &files(&[&p]),
        false,
    );
    assert_eq!(scan.stats.skipped_by_mtime, 1);
    let (scan, _) = run(
        &q("192.0.2.1:53500", "2026-11-21T12:37:42Z"),
        &files(&[&p]),
        true,
    );
    assert_eq!(scan.stats.skipped_by_mtime, 0);
}

#[test]
fn portblock_rules_name_the_owner_and_are_compared() {
    use crate::portblock::{Method, Plan, PlanInput, history, render};
    let d = temp_dir("pb");
    let state = d.path().join("state");
    std::fs::create_dir(&state).unwrap();
    let plan = Plan::new(&PlanInput {
        internal: vec!["192.168.101.0/25".parse().unwrap()],
        public: vec!["192.0.2.1".parse().unwrap()],
        ports: "1280-65535".parse().unwrap(),
        per_client: Some(256),
        method: Method::Nft,
        table: None,
        oif: None,
        include_first: false,
    })
    .unwrap();
    let since = t("2026-11-01T00:00:00Z").secs;
    std::fs::write(
        state.join(format!("rules.{since}.nft")),
        render(&plan, since),
    )
    .unwrap();
    let hist = history(&state).unwrap();
    let query = q("192.0.2.1:65300", "2026-11-21T12:37:42Z");
    let finding = portblock::check(&hist, &query);
    assert_eq!(
        finding.owners(),
        vec!["192.168.101.2".parse::<std::net::Ipv4Addr>().unwrap()]
    );
    assert_eq!(finding.rules[0].block, Some((65280, 65535)));
    assert!(finding.rules[0].at_report_time);
    // Before the first file: a note, no owner.
    let early = portblock::check(&hist, &q("192.0.2.1:65300", "2026-10-01T00:00:00Z"));
    assert!(early.owners().is_empty() && early.note.is_some());
    // IPv6: not applicable.
    let v6 = portblock::check(&hist, &q("[2001:db8::1]:65300", "2026-11-21T12:37:42Z"));
    assert!(v6.note.unwrap().contains("IPv4 only"));
    // Agreement with a flow log.
    let lines = flow_lines(
        Format::Text,
        TRAD,
        1,
        "192.168.101.2:40000",
        "192.0.2.1:65300",
        "203.0.113.7:443",
        "2026-11-21T12:37:00Z",
        None,
    );
    let p = write(&d, "syslog", &lines);
    let (_, v) = run(&query, &files(&[&p]), false);
    assert_eq!(finding.agreement(&v), portblock::Agreement::Agree);
    let lines = flow_lines(
        Format::Text,
        TRAD,
        1,
        "192.168.101.9:40000",
        "192.0.2.1:65300",
        "203.0.113.7:443",
        "2026-11-21T12:37:00Z",
        None,
    );
    let p = write(&d, "syslog", &lines);
    let (_, v) = run(&query, &files(&[&p]), false);
    assert_eq!(finding.agreement(&v), portblock::Agreement::Disagree);
}

#[test]
fn a_log_across_new_year_is_bisected_with_the_right_years() {
    let d = temp_dir("newyear");
    let mut lines = Vec::new();
    let base = t("2026-12-31T23:00:00Z").secs;
    for i in 0..7200i64 {
        let at = Timestamp::new(base + i, 0);
        if i == 3590 {
            lines.extend(flow_lines(
                Format::Text,
                TRAD,
                8,
                "10.99.0.2:40000",
                "192.0.2.1:53500",
                "203.0.113.7:443",
                "2026-12-31T23:59:50Z",
                Some("2027-01-01T00:00:20Z"),
            ));
        }
        lines.push(noise(at, i as u64));
    }
    let p = write(&d, "syslog", &lines);
    let mut query = q("192.0.2.1:53500", "2027-01-01T00:00:05Z");
    query.max_age = Some(600);
    for scan_all in [false, true] {
        let (scan, v) = run(&query, &files(&[&p]), scan_all);
        assert_eq!(v.matches.len(), 1, "scan_all={scan_all}");
        assert_eq!(
            v.matches[0].flow.end,
            FlowEnd::At(t("2027-01-01T00:00:20Z"))
        );
        if !scan_all {
            assert_eq!(scan.stats.bisected, 1);
            // Started well into the file (23:00 - 23:43 need no reading).
            let size = std::fs::metadata(&p).unwrap().len();
            assert!(
                scan.sources[0].start_offset > size / 5,
                "{size} {} {:?} {:?}",
                scan.sources[0].start_offset,
                scan.notes,
                scan.stats
            );
            assert_eq!(scan.evidence(&v.matches[0].flow)[0].line, Some(3591));
        }
    }
}

#[test]
fn flows_logged_without_their_remote_are_found_and_not_ruled_out() {
    use masqlog_core::record::Remote;
    let d = temp_dir("privacy");
    let mut lines = Vec::new();
    for (id, client, remote, format) in [
        (1, "10.99.0.2:40000", Remote::Omitted, Format::Text),
        (2, "10.99.0.3:40000", Remote::Hashed(0xfeed), Format::Json),
        (
            3,
            "10.99.0.4:40000",
            Remote::Shown(testutil::ep("203.0.113.7:443")),
            Format::Rfc5424,
        ),
    ] {
        let s = t("2026-11-21T12:37:00Z");
        let e = t("2026-11-21T12:38:00Z");
        let style = if format == Format::Rfc5424 {
            Style::Raw
        } else {
            TRAD
        };
        for (ev, end) in [(Event::Start, None), (Event::End, Some(e))] {
            let mut r = rec(
                ev,
                id,
                client,
                "192.0.2.1:53500",
                "203.0.113.7:443",
                Some(s),
                end,
            );
            r.remote = remote;
            lines.push(line(format, style, end.unwrap_or(s), &r));
        }
    }
    let p = write(&d, "syslog", &lines);
    let mut query = q("192.0.2.1:53500", "2026-11-21T12:37:42Z");
    let (scan, v) = run(&query, &files(&[&p]), false);
    assert!(scan.bad_lines.is_empty(), "{:?}", scan.bad_lines);
    assert_eq!(v.matches.len(), 3);
    // --remote keeps the flows whose remote is unknown, after the known one.
    query.remote = Some(query::parse_remote("203.0.113.7:443").unwrap());
    let (scan, v) = run(&query, &files(&[&p]), false);
    assert_eq!(v.matches.len(), 3);
    assert_eq!(v.matches[0].flow.record.id, Some(3));
    assert!(v.matches[1].remote_unknown && v.matches[2].remote_unknown);
    let hashed = v
        .matches
        .iter()
        .find(|m| m.flow.record.id == Some(2))
        .unwrap();
    assert_eq!(hashed.flow.record.remote.endpoint(), None);
    assert!(
        matches!(hashed.flow.record.remote, Remote::Hashed(_)),
        "{:?}",
        hashed.flow
    );
    let text = render::human(
        &scan,
        &render::Answer {
            query: &query,
            verdict: &v,
            portblock: None,
        },
    );
    assert!(
        text.contains("remote    not logged; remote_hash="),
        "{text}"
    );
    // Another remote rules out only the flow whose remote is known.
    query.remote = Some(query::parse_remote("198.51.100.1").unwrap());
    let (_, v) = run(&query, &files(&[&p]), false);
    assert_eq!(v.matches.len(), 2);
    assert_eq!(v.filtered_out, 1);
}

/// Damage in a masqlog line about another public endpoint is neither read
/// nor reported (such lines are not parsed at all); damage in a line about
/// the queried one is reported, and the good lines still answer.
#[test]
fn only_damaged_lines_about_the_queried_endpoint_are_reported() {
    let d = temp_dir("damage");
    let prefix = "Nov 21 12:37:30 gw1 masqlog[4242]: masqlog/1 ev=start nat=snat proto=tcp";
    let mut lines = vec![
        format!("{prefix} id=1 client=10.0.0.1:1 masq=192.0.2.1:53501 remote=bogus"),
        format!("{prefix} id=2 client=10.0.0.1:1 masq=192.0.2.9:53500 remote=bogus"),
        format!("{prefix} id=3 client=10.0.0.1:1 masq=192.0.2.1:53500 remote=bogus"),
        format!("{prefix} id=4 client=10.0.0.1:1 masq=192.0.2.1:53500 remo"),
    ];
    lines.extend(flow_lines(
        Format::Text,
        TRAD,
        5,
        "10.99.0.2:40000",
        "192.0.2.1:53500",
        "203.0.113.7:443",
        "2026-11-21T12:37:00Z",
        Some("2026-11-21T12:38:00Z"),
    ));
    let p = write(&d, "syslog", &lines);
    for scan_all in [false, true] {
        let (scan, v) = run(
            &q("192.0.2.1:53500", "2026-11-21T12:37:42Z"),
            &files(&[&p]),
            scan_all,
        );
        assert_eq!(v.matches.len(), 1, "scan_all={scan_all}");
        assert_eq!(v.matches[0].flow.record.id, Some(5));
        let bad: Vec<String> = scan.bad_lines.iter().map(|b| b.to_string()).collect();
        assert_eq!(
            bad,
            [
                format!(
                    "{}:3: field `remote` has an invalid value \"bogus\"",
                    p.display()
                ),
                format!(
                    "{}:4: syntax error at byte 121: expected a field name and `=`",
                    p.display()
                ),
            ],
            "scan_all={scan_all}"
        );
    }
}

/// With the router's key, only sealed lines that verify are evidence: an
/// unsealed forged line and an altered copy of a real one are set aside and
/// named, a resent record counts once; without the key the answer says that
/// nothing was authenticated.
#[test]
fn with_a_key_only_verified_lines_answer() {
    let key = masqlog_core::seal::VerifyKey::generate("gw1", 1_700_000_000, 900).unwrap();
    let mut chain = masqlog_core::seal::Chain::start(key.initial_state(), "masq1", 1).unwrap();
    let style = Style::Traditional { offset: 0 };
    let start_t = t("2026-11-21T12:37:40Z");
    let end_t = t("2026-11-21T12:38:12Z");
    let real = [
        rec(
            Event::Start,
            3954,
            "10.99.0.2:40000",
            "192.0.2.1:53500",
            "203.0.113.7:443",
            Some(start_t),
            None,
        ),
        rec(
            Event::End,
            3954,
            "10.99.0.2:40000",
            "192.0.2.1:53500",
            "203.0.113.7:443",
            Some(start_t),
            Some(end_t),
        ),
    ];
    let mut lines: Vec<String> = real
        .iter()
        .map(|r| {
            sealed_line(
                Format::Text,
                style,
                r.end.unwrap_or(start_t),
                r,
                Some(&mut chain),
            )
        })
        .collect();
    // The end line again (a resend), and two forgeries: mallory's start
    // line, unsealed, closer to the report time than the real flow; and the
    // real start line with the client changed.
    lines.push(lines[1].clone());
    let forged_t = t("2026-11-21T12:37:41Z");
    let forged = rec(
        Event::Start,
        777,
        "10.66.6.6:40000",
        "192.0.2.1:53500",
        "203.0.113.7:443",
        Some(forged_t),
        None,
    );
    lines.push(line(Format::Text, style, forged_t, &forged));
    lines.push(lines[0].replace("client=10.99.0.2:40000", "client=10.66.6.7:40000"));
    // A forged gap record claiming lost events in the searched period.
    let mut gap = Vec::new();
    masqlog_core::format::gap::write_syslog(
        Format::Text,
        &masqlog_core::format::Header {
            pri: 30,
            timestamp: end_t,
            hostname: Some("gw1"),
            app: "masqlog",
            pid: 4242,
        },
        &masqlog_core::format::gap::Gap {
            from: start_t,
            to: end_t,
            lost: 5000,
        },
        &mut gap,
    );
    lines.push(String::from_utf8(gap).unwrap()["<30>".len()..].to_string());
    let dir = temp_dir("auth");
    let p = write(&dir, "syslog", &lines);
    let report = q("192.0.2.1:53500", "2026-11-21T12:37:42Z");
    let run_with = |keys: &[masqlog_core::seal::VerifyKey]| {
        let s = scan(
            &[&report],
            &[Input::Path(p.clone())],
            ScanOptions {
                stdin: None,
                progress: &mut NoProgress,
                scan_all: true,
                keys,
            },
        );
        let v = decide(&s, &report);
        (s, v)
    };
    let (s, v) = run_with(std::slice::from_ref(&key));
    assert_eq!(v.matches.len(), 1, "{v:?}");
    assert_eq!(
        v.matches[0].flow.record.client,
        super::testutil::ep("10.99.0.2:40000")
    );
    assert_eq!(s.evidence(&v.matches[0].flow).len(), 2);
    assert_eq!(
        (s.auth.verified, s.auth.duplicates, s.auth.rejected.len()),
        (3, 1, 2)
    );
    assert!(
        s.notes
            .iter()
            .any(|n| n.starts_with("not used as evidence: 2 masqlog-looking lines")),
        "{:?}",
        s.notes
    );
    let lost = |s: &Scan| s.notes.iter().any(|n| n.contains("5000 conntrack events"));
    assert!(!lost(&s), "{:?}", s.notes);
    assert!(
        s.notes
            .iter()
            .any(|n| n.starts_with("not used: 1 gap record")),
        "{:?}",
        s.notes
    );
    // Without the key, the forged lines take part, and the answer says
    // that nothing was authenticated.
    let (s, v) = run_with(&[]);
    assert!(v.matches.len() > 1, "{v:?}");
    assert!(
        s.notes
            .iter()
            .any(|n| n.starts_with("nothing was authenticated")),
        "{:?}",
        s.notes
    );
    assert!(lost(&s), "{:?}", s.notes);
    // The key of another router verifies nothing.
    let other = masqlog_core::seal::VerifyKey::generate("gw1", 1_700_000_000, 900).unwrap();
    let (s, v) = run_with(std::slice::from_ref(&other));
    assert!(v.matches.is_empty(), "{v:?}");
    assert_eq!(s.auth.verified, 0);
}

/// A record is a syslog message that begins with the marker: an sshd line
/// that quotes a text or JSON record in its user name is no evidence, only
/// counted and named in the summary; another program's message that begins
/// with the marker is still read (and only a key can tell it apart).
#[test]
fn a_marker_inside_another_programs_message_is_not_a_record() {
    let real = flow_lines(
        Format::Text,
        TRAD,
        3954,
        "10.99.0.2:40000",
        "192.0.2.1:53500",
        "203.0.113.7:443",
        "2026-11-21T12:30:00Z",
        Some("2026-11-21T12:40:00Z"),
    );
    let forged_t = t("2026-11-21T12:37:41Z");
    let forged = |id, client: &str, format| {
        let l = line(
            format,
            TRAD,
            forged_t,
            &rec(
                Event::Start,
                id,
                client,
                "192.0.2.1:53500",
                "203.0.113.7:443",
                Some(forged_t),
                None,
            ),
        );
        let at = masqlog_core::format::message_start(l.as_bytes()).unwrap();
        l[at..].to_string()
    };
    let text = forged(66, "10.66.6.6:1", Format::Text);
    let json = forged(67, "10.66.6.7:1", Format::Json);
    let mut lines = real.clone();
    lines.push(format!(
        "Nov 21 12:37:41 gw1 sshd[812]: Invalid user {text} from 198.51.100.9 port 40022"
    ));
    lines.push(format!(
        "Nov 21 12:37:41 gw1 sshd[812]: Invalid user {json} from 198.51.100.9 port 40022"
    ));
    let d = temp_dir("marker");
    let p = write(&d, "syslog", &lines);
    let report = q("192.0.2.1:53500", "2026-11-21T12:37:42Z");
    for scan_all in [false, true] {
        let (s, v) = run(&report, &files(&[&p]), scan_all);
        assert_eq!(v.matches.len(), 1, "{v:?}");
        assert_eq!(v.matches[0].flow.record.id, Some(3954));
        assert_eq!(s.stats.not_records, 2);
        assert!(s.bad_lines.is_empty(), "{:?}", s.bad_lines);
        let summary = render::summary(&s);
        assert!(
            summary.contains(
                "skipped 2 lines that hold a masqlog marker inside another message \
                 (not at its start): not records"
            ),
            "{summary}"
        );
    }
    // The same record as the whole message of another program (`logger -t
    // evil`): a record, which only a key would set aside.
    lines.push(format!("Nov 21 12:37:41 gw1 evil[66]: {text}"));
    let p = write(&d, "syslog2", &lines);
    let (s, v) = run(&report, &files(&[&p]), false);
    let mut ids: Vec<_> = v.matches.iter().map(|m| m.flow.record.id).collect();
    ids.sort();
    assert_eq!(ids, vec![Some(66), Some(3954)], "{v:?}");
    assert_eq!(s.stats.not_records, 2);
}

/// A log of several clocks: each line `(real µs, clock offset s, line)`,
/// written with its router's clock (prefix and record times alike), and
/// stored in the order of the real times. Flows on 192.0.2.1 ports 50000 to
/// 50009, with noise between; returns the lines and report times (real
/// seconds, as the clock of the router named first sees them) with ports.
fn clocked_log(
    rng: &mut Rng,
    from: i64,
    secs: i64,
    clocks: &[(i64, i64)],
) -> (Vec<String>, Vec<(u16, i64)>) {
    let mut events: Vec<(i64, String)> = Vec::new();
    let mut reports = Vec::new();
    let mut id = 1u32;
    let mut real = from * 1_000_000;
    let mut n = 0;
    while real < (from + secs) * 1_000_000 {
        real += 1_000_000 + rng.below(4_000_000) as i64;
        n += 1;
        // (switch at real second, offset): the clock of this moment.
        let offset = clocks
            .iter()
            .rev()
            .find(|(at, _)| real / 1_000_000 >= *at)
            .map_or(0, |c| c.1);
        let clock = |us: i64| Timestamp::new(us.div_euclid(1_000_000) + offset, 0);
        if rng.below(3) == 0 {
            id += 1;
            let port = 50_000 + rng.below(10) as u16;
            let dur = 1 + rng.below(300) as i64;
            let (s, e) = (clock(real), clock(real + dur * 1_000_000));
            let client = format!("10.99.0.{}:{}", 2 + rng.below(200), 30000 + id);
            let masq = format!("192.0.2.1:{port}");
            let r = |ev, end| rec(ev, id, &client, &masq, "203.0.113.7:443", Some(s), end);
            events.push((real, line(Format::Text, TRAD, s, &r(Event::Start, None))));
            events.push((
                real + dur * 1_000_000,
                line(Format::Text, TRAD, e, &r(Event::End, Some(e))),
            ));
            if rng.below(8) == 0 {
                reports.push((port, s.secs + dur / 2));
            }
        } else {
            events.push((real, noise(clock(real), n)));
        }
    }
    events.sort_by_key(|(at, _)| *at);
    (events.into_iter().map(|(_, l)| l).collect(), reports)
}

/// The windowed answer to each report, at two max ages, is the full scan's;
/// returns how many windowed runs said the log was out of order.
fn windowed_is_full(p: &PathBuf, reports: &[(u16, i64)], what: &str) -> usize {
    let mut noted = 0;
    for (port, at) in reports {
        for max_age in [DEFAULT_MAX_AGE_SECS, 600] {
            let mut query = q(&format!("192.0.2.1:{port}"), &format!("@{at}"));
            query.max_age = Some(max_age);
            let (s1, v1) = run(&query, &files(&[p]), false);
            let (s2, v2) = run(&query, &files(&[p]), true);
            assert_eq!(
                signature(&s1, &v1),
                signature(&s2, &v2),
                "{what}: port {port} at {at}, max age {max_age}: {:?}",
                s1.notes
            );
            noted += usize::from(s1.notes.iter().any(|n| n.contains("not in time order")));
        }
    }
    noted
}

#[test]
fn a_shuffled_log_gives_the_full_scan_answer() {
    let d = temp_dir("shuffled");
    for seed in 1..=4 {
        let mut rng = Rng::new(seed);
        let (mut lines, reports) = big_log(&mut rng, 12_000, false, TRAD);
        for i in (1..lines.len()).rev() {
            lines.swap(i, rng.below(i as u64 + 1) as usize);
        }
        let p = write(&d, "syslog", &lines);
        let noted = windowed_is_full(&p, &reports, &format!("seed {seed}"));
        assert_eq!(noted, reports.len() * 2, "seed {seed}");
        // The same log as a compressed stream: no probes, the reading sees it.
        let gz = d.path().join("syslog.1.gz");
        std::fs::write(&gz, gzip(&std::fs::read(&p).unwrap())).unwrap();
        std::fs::File::options()
            .write(true)
            .open(&gz)
            .unwrap()
            .set_modified(mtime_after_all())
            .unwrap();
        windowed_is_full(&gz, &reports, &format!("seed {seed}, gzip"));
    }
}

/// The example: the router's clock was set back by 3 hours in the
/// middle of the log, so the same clock times occur twice. The windowed
/// search must give the full scan's two candidates, not the first one alone.
#[test]
fn a_clock_stepped_back_three_hours_gives_the_full_scan_answer() {
    let d = temp_dir("stepped");
    let from = t("2026-11-21T08:00:00Z").secs;
    for seed in 1..=3 {
        let mut rng = Rng::new(seed);
        let (mut lines, reports) =
            clocked_log(&mut rng, from, 6 * 3600, &[(from + 3 * 3600, -3 * 3600)]);
        // One flow on port 50100 in each stretch at the same clock time.
        for (real, client) in [
            (from + 2 * 3600, "10.99.1.1:1111"),
            (from + 5 * 3600, "10.99.2.2:2222"),
        ] {
            let s = t("2026-11-21T10:00:00Z");
            let e = Timestamp::new(s.secs + 60, 0);
            let r = |ev, end| {
                rec(
                    ev,
                    real as u32,
                    client,
                    "192.0.2.1:50100",
                    "203.0.113.7:443",
                    Some(s),
                    end,
                )
            };
            let at = lines.len() * ((real - from) as usize) / (6 * 3600);
            lines.insert(at, line(Format::Text, TRAD, e, &r(Event::End, Some(e))));
            lines.insert(at, line(Format::Text, TRAD, s, &r(Event::Start, None)));
        }
        let p = write(&d, "syslog", &lines);
        let query = q("192.0.2.1:50100", "2026-11-21T10:00:30Z");
        let (s1, v1) = run(&query, &files(&[&p]), false);
        let (s2, v2) = run(&query, &files(&[&p]), true);
        assert_eq!(v2.matches.len(), 2, "{v2:?}");
        assert_eq!(signature(&s1, &v1), signature(&s2, &v2), "{:?}", s1.notes);
        windowed_is_full(&p, &reports, &format!("seed {seed}"));
    }
}

/// Two routers behind one collector, which stores each line with its
/// router's own timestamp: the second router's clock is 3 hours behind, so
/// the merged file goes back and forth by 3 hours. The windowed answers are
/// the full scan's.
#[test]
fn merged_routers_with_skewed_clocks_give_the_full_scan_answer() {
    let d = temp_dir("merged");
    let from = t("2026-11-21T08:00:00Z").secs;
    for seed in 1..=3 {
        let mut rng = Rng::new(seed);
        let (a, ra) = clocked_log(&mut rng, from, 6 * 3600, &[]);
        let (b, rb) = clocked_log(&mut rng, from, 6 * 3600, &[(from, -3 * 3600)]);
        // Merged in arrival order: alternate stretches of both.
        let mut lines = Vec::new();
        let (mut ia, mut ib) = (a.into_iter(), b.into_iter());
        loop {
            let n = 1 + rng.below(40) as usize;
            let before = lines.len();
            lines.extend(ia.by_ref().take(n));
            lines.extend(ib.by_ref().take(n));
            if lines.len() == before {
                break;
            }
        }
        let p = write(&d, "syslog", &lines);
        let mut reports = ra;
        reports.extend(rb);
        let noted = windowed_is_full(&p, &reports, &format!("seed {seed}"));
        assert!(noted > 0, "seed {seed}");
    }
}

/// The same record twice (a resend, overlapping files) is one candidate:
/// without a key, identical lines of one flow join into one flow; with a
/// key, the same writer, run and sequence number count once.
#[test]
fn a_record_seen_twice_is_one_candidate() {
    let key = masqlog_core::seal::VerifyKey::generate("gw1", 1_700_000_000, 900).unwrap();
    let mut chain = masqlog_core::seal::Chain::start(key.initial_state(), "masq1", 1).unwrap();
    let (s, e) = (t("2026-11-21T12:37:40Z"), t("2026-11-21T12:38:12Z"));
    let r = |ev, end| {
        rec(
            ev,
            3954,
            "10.99.0.2:40000",
            "192.0.2.1:53500",
            "203.0.113.7:443",
            Some(s),
            end,
        )
    };
    let mut lines = vec![
        sealed_line(
            Format::Text,
            TRAD,
            s,
            &r(Event::Start, None),
            Some(&mut chain),
        ),
        sealed_line(
            Format::Text,
            TRAD,
            e,
            &r(Event::End, Some(e)),
            Some(&mut chain),
        ),
    ];
    lines.extend(lines.clone());
    let d = temp_dir("twice");
    let p = write(&d, "syslog", &lines);
    let report = q("192.0.2.1:53500", "2026-11-21T12:37:42Z");
    let (_, v) = run(&report, &files(&[&p]), false);
    assert_eq!(v.matches.len(), 1, "{v:?}");
    let s = scan(
        &[&report],
        &files(&[&p]),
        ScanOptions {
            stdin: None,
            progress: &mut NoProgress,
            scan_all: false,
            keys: std::slice::from_ref(&key),
        },
    );
    let v = decide(&s, &report);
    assert_eq!(v.matches.len(), 1, "{v:?}");
    assert_eq!(s.evidence(&v.matches[0].flow).len(), 2);
    assert_eq!((s.auth.verified, s.auth.duplicates), (4, 2));
}
