//! The privacy switch for the remote endpoint (`remote=omit|hash`, RFC 6888
//! REQ-12) with the real plugin: the remote server's address appears in no
//! line; with `hash` each line carries the keyed hash the library computes
//! for that remote, the same on the start and the end line.

use masqlog_core::record::{Endpoint, Event, Remote, remote_hash};
use masqlog_lab::session::LINE_WAIT;
use masqlog_lab::{Example, Family, FlowProto, SessionOptions};

use crate::harness::{self, ok};

const KEY_HEX: &str = "00112233445566778899aabbccddeeff";

fn key() -> [u8; 16] {
    let mut k = [0u8; 16];
    for (i, b) in k.iter_mut().enumerate() {
        *b = u8::from_str_radix(&KEY_HEX[2 * i..2 * i + 2], 16).unwrap();
    }
    k
}

fn remote_is_kept_out(test: &str, mode: &str) {
    let mut opts = SessionOptions::new(Example::Local);
    opts.set_key("masq1", "remote", mode);
    opts.set_key("masq1", "remote_hash_key", KEY_HEX);
    let Some(mut env) = harness::session(test, &opts) else {
        return;
    };
    let mut specs = Vec::new();
    for family in [Family::V4, Family::V6] {
        let r = ok(env.flow("alice", FlowProto::Tcp, family, 500), "flow");
        specs.push(r.spec);
    }
    ok(env.wait_destroyed(&specs), "DESTROY events");
    ok(env.wait_logged(&specs, LINE_WAIT), "masqlog lines");
    let received = env.received();
    assert!(
        received.unreadable.is_empty(),
        "lines the parser rejects: {:#?}",
        received.unreadable
    );
    for spec in &specs {
        let remote = spec.remote();
        let lines = received.of_flow(spec);
        assert!(
            lines.iter().any(|l| l.parsed.record.event == Event::Start)
                && lines.iter().any(|l| l.parsed.record.event == Event::End),
            "{}: start and end lines expected, got {lines:#?}",
            spec.label()
        );
        let want = remote_hash(
            &key(),
            &Endpoint {
                ip: remote.ip(),
                port: Some(remote.port()),
            },
        );
        for l in lines {
            assert_eq!(l.parsed.record.remote.endpoint(), None, "{}", l.line);
            assert!(
                !l.line.contains(&remote.ip().to_string()),
                "the remote address is in: {}",
                l.line
            );
            match mode {
                "hash" => assert_eq!(l.parsed.record.remote, Remote::Hashed(want), "{}", l.line),
                _ => {
                    assert_eq!(l.parsed.record.remote, Remote::Omitted, "{}", l.line);
                    assert!(!l.line.contains("remote"), "{}", l.line);
                }
            }
        }
    }
}

#[test]
fn remote_omit_writes_no_remote() {
    remote_is_kept_out("remote_omit_writes_no_remote", "omit");
}

#[test]
fn remote_hash_writes_the_keyed_hash_only() {
    remote_is_kept_out("remote_hash_writes_the_keyed_hash_only", "hash");
}
