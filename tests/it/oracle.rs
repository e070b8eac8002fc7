//! What a flow's lines must say, checked against what the kernel reported
//! (`conntrack -E`), what the flow sent, and independent readings of the
//! line (serde_json for JSON, rsyslog's own parse for RFC 5424, the raw
//! timestamp text).

use std::net::SocketAddr;

use masqlog_core::record::{Counters, Endpoint, Event, FlowRecord, NatKind, Remote, Timestamp};
use masqlog_lab::topology::{client_addr, masq_addr};
use masqlog_lab::{CtEvent, CtKind, Example, FlowProto, FlowResult, Logged, Received};

/// The wall-clock interval a test ran in.
#[derive(Clone, Copy, Debug)]
pub struct Window {
    pub from: Timestamp,
    pub to: Timestamp,
}

impl Window {
    fn contains(&self, t: Timestamp) -> bool {
        self.from <= t && t <= self.to
    }
}

fn endpoint(a: SocketAddr) -> Endpoint {
    Endpoint {
        ip: a.ip(),
        port: Some(a.port()),
    }
}

/// `YYYY-MM-DDTHH:MM:SS.uuuuuuZ` exactly: UTC, six fraction digits.
pub fn is_micro_utc(s: &str) -> bool {
    let b = s.as_bytes();
    let digit = |i: usize| b.get(i).is_some_and(u8::is_ascii_digit);
    b.len() == 27
        && (0..4).all(digit)
        && b[4] == b'-'
        && (5..7).all(digit)
        && b[7] == b'-'
        && (8..10).all(digit)
        && b[10] == b'T'
        && (11..13).all(digit)
        && b[13] == b':'
        && (14..16).all(digit)
        && b[16] == b':'
        && (17..19).all(digit)
        && b[19] == b'.'
        && (20..26).all(digit)
        && b[26] == b'Z'
}

/// The raw text of a time field in a line of any format: `start=VALUE`
/// (text), `"start":"VALUE"` (JSON), `start="VALUE"` (RFC 5424).
fn raw_time<'a>(line: &'a str, field: &str) -> Option<&'a str> {
    for (open, close) in [
        (format!(" {field}=\""), '"'),
        (format!("\"{field}\":\""), '"'),
        (format!(" {field}="), ' '),
    ] {
        if let Some(at) = line.find(&open) {
            let rest = &line[at + open.len()..];
            let end = rest.find(close).unwrap_or(rest.len());
            return Some(&rest[..end]);
        }
    }
    None
}

/// The one event of `kind` of a flow; fails unless there is exactly one.
fn one_event<'a>(ct: &'a [CtEvent], f: &FlowResult, kind: CtKind) -> &'a CtEvent {
    let spec = &f.spec;
    let found: Vec<&CtEvent> = ct
        .iter()
        .filter(|e| e.kind == kind && e.is_flow(client_addr(spec.family), spec.sport, spec.proto))
        .collect();
    assert_eq!(
        found.len(),
        1,
        "{}: expected one {kind:?} event from conntrack, got {found:#?}",
        spec.label()
    );
    found[0]
}

fn one_line<'a>(lines: &[&'a Logged], event: Event, label: &str) -> &'a Logged {
    let found: Vec<&&Logged> = lines
        .iter()
        .filter(|l| l.parsed.record.event == event)
        .collect();
    assert_eq!(
        found.len(),
        1,
        "{label}: expected exactly one {} line, got:\n{}",
        event.name(),
        found
            .iter()
            .map(|l| l.line.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    );
    found[0]
}

/// Checks the start and end lines of one flow. `ct` is every conntrack
/// event of the test. Returns the (start, end) lines.
pub fn check_flow<'a>(
    f: &FlowResult,
    received: &'a Received,
    ct: &[CtEvent],
    window: Window,
) -> (&'a Logged, &'a Logged) {
    let spec = &f.spec;
    let label = spec.label();
    let new = one_event(ct, f, CtKind::New);
    let destroy = one_event(ct, f, CtKind::Destroy);
    assert_eq!(
        new.id, destroy.id,
        "{label}: conntrack ids of NEW and DESTROY"
    );
    assert!(new.id.is_some(), "{label}: conntrack printed no id");

    let lines = received.of_flow(spec);
    assert_eq!(
        lines.len(),
        2,
        "{label}: expected a start and an end line, got:\n{}",
        lines
            .iter()
            .map(|l| l.line.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    );
    let start = one_line(&lines, Event::Start, &label);
    let end = one_line(&lines, Event::End, &label);

    let masq = Endpoint {
        ip: masq_addr(spec.family),
        port: new.reply.dport,
    };
    assert_eq!(
        new.reply.dport, destroy.reply.dport,
        "{label}: conntrack's masquerade port changed"
    );
    for l in [start, end] {
        let p: &FlowRecord = &l.parsed.record;
        let what = format!("{label}: {}", l.line);
        assert_eq!(p.nat, NatKind::Snat, "{what}");
        assert_eq!(p.proto.name(), Some(spec.proto.name()), "{what}");
        assert_eq!(p.id, new.id, "{what}: id must be conntrack's");
        assert_eq!(p.client, endpoint(spec.client()), "{what}: client");
        assert_eq!(p.masq, masq, "{what}: masq (conntrack: {})", new.line);
        assert_eq!(
            p.remote,
            Remote::Shown(endpoint(spec.remote())),
            "{what}: remote"
        );
        let s = p.start.unwrap_or_else(|| panic!("{what}: no start time"));
        assert!(window.contains(s), "{what}: start {s:?} outside {window:?}");
        let raw = raw_time(&l.line, "start").unwrap_or_else(|| panic!("{what}: no start field"));
        assert!(
            is_micro_utc(raw),
            "{what}: start {raw:?} is not microsecond UTC"
        );
    }

    // The start line: no end time and no counters (the kernel's are zero
    // in NEW events, so the plugin writes none).
    let ps = &start.parsed.record;
    assert_eq!(ps.end, None, "{label}: {}", start.line);
    assert_eq!(ps.out, None, "{label}: counters in {}", start.line);
    assert_eq!(ps.inbound, None, "{label}: counters in {}", start.line);

    // The end line: times and the kernel's counters.
    let pe = &end.parsed.record;
    let (s, e) = (
        pe.start.unwrap(),
        pe.end
            .unwrap_or_else(|| panic!("{label}: no end time in {}", end.line)),
    );
    assert!(s <= e, "{label}: start after end in {}", end.line);
    assert!(window.contains(e), "{label}: end {e:?} outside {window:?}");
    let raw = raw_time(&end.line, "end").unwrap_or_else(|| panic!("{label}: no end field"));
    assert!(
        is_micro_utc(raw),
        "{label}: end {raw:?} is not microsecond UTC"
    );
    let skew = (s.as_micros() - ps.start.unwrap().as_micros()).abs();
    assert!(
        skew < 1_000_000,
        "{label}: start times of the start and end lines differ by {skew} us"
    );
    let out = pe
        .out
        .unwrap_or_else(|| panic!("{label}: no out counters in {}", end.line));
    let inb = pe
        .inbound
        .unwrap_or_else(|| panic!("{label}: no in counters in {}", end.line));
    let kernel_out = Counters {
        packets: destroy.orig.packets.expect("conntrack packets"),
        bytes: destroy.orig.bytes.expect("conntrack bytes"),
    };
    let kernel_in = Counters {
        packets: destroy.reply.packets.expect("conntrack packets"),
        bytes: destroy.reply.bytes.expect("conntrack bytes"),
    };
    assert_eq!(
        out, kernel_out,
        "{label}: out counters; conntrack: {}",
        destroy.line
    );
    assert_eq!(
        inb, kernel_in,
        "{label}: in counters; conntrack: {}",
        destroy.line
    );
    check_bytes_against_payload(f, out, inb);
    (start, end)
}

/// Counters against what the flow sent: payload plus headers.
fn check_bytes_against_payload(f: &FlowResult, out: Counters, inb: Counters) {
    let spec = &f.spec;
    let label = spec.label();
    if let Some((o, i)) = spec.udp_bytes() {
        assert_eq!((out.packets, out.bytes), (1, o), "{label}: out");
        assert_eq!((inb.packets, inb.bytes), (1, i), "{label}: in");
        return;
    }
    assert_eq!(spec.proto, FlowProto::Tcp);
    let ip = spec.family.ip_header();
    for (c, payload, dir) in [
        (out, spec.send_bytes as u64, "out"),
        (inb, spec.reply_bytes as u64, "in"),
    ] {
        // Every packet carries an IP and a TCP header; TCP options add up to
        // 40 bytes per packet.
        let min = payload + c.packets * (ip + 20);
        let max = payload + c.packets * (ip + 60);
        assert!(
            (min..=max).contains(&c.bytes),
            "{label}: {dir} bytes {} not within {min}..={max} for {payload} bytes in {} packets",
            c.bytes,
            c.packets
        );
        assert!(c.packets >= 3, "{label}: {dir} {} packets", c.packets);
    }
}

/// Checks one JSON line with serde_json, independently of the crate's
/// parser: every field is there with the right JSON type and agrees.
pub fn check_json(l: &Logged) {
    let at = l.line.find("{\"masqlog\"").expect("a JSON object");
    let v: serde_json::Value = serde_json::from_str(&l.line[at..])
        .unwrap_or_else(|e| panic!("serde_json rejects {}: {e}", l.line));
    let p = &l.parsed.record;
    let what = &l.line;
    assert_eq!(v["masqlog"], 1, "{what}");
    assert_eq!(v["ev"], p.event.name(), "{what}");
    assert_eq!(v["nat"], "snat", "{what}");
    assert_eq!(v["proto"], p.proto.name().unwrap(), "{what}");
    assert_eq!(v["id"].as_u64(), p.id.map(u64::from), "{what}");
    let remote = p.remote.endpoint().expect("the lab logs the remote");
    for (name, ep) in [("client", p.client), ("masq", p.masq), ("remote", remote)] {
        assert_eq!(v[name]["ip"], ep.ip.to_string(), "{what}: {name}.ip");
        assert_eq!(
            v[name]["port"].as_u64(),
            ep.port.map(u64::from),
            "{what}: {name}.port"
        );
    }
    let start = v["start"]
        .as_str()
        .unwrap_or_else(|| panic!("{what}: start"));
    assert!(is_micro_utc(start), "{what}");
    if p.event == Event::End {
        assert!(is_micro_utc(
            v["end"].as_str().unwrap_or_else(|| panic!("{what}: end"))
        ));
        let (o, i) = (p.out.unwrap(), p.inbound.unwrap());
        assert_eq!(v["out_pkts"].as_u64(), Some(o.packets), "{what}");
        assert_eq!(v["out_bytes"].as_u64(), Some(o.bytes), "{what}");
        assert_eq!(v["in_pkts"].as_u64(), Some(i.packets), "{what}");
        assert_eq!(v["in_bytes"].as_u64(), Some(i.bytes), "{what}");
    } else {
        assert!(v.get("end").is_none(), "{what}: a start line with an end");
    }
}

/// Checks the syslog header of a line in the receiver's file.
/// `text`/`json` (local): `messages.log` has `HOST masqlog[PID]: body`.
/// `rfc5424` (remote, raw.log): `<30>1 TS nat-router-1 masqlog PID MSGID [sd]`.
pub fn check_header(example: Example, l: &Logged, ulogd_pid: u32) {
    let line = &l.line;
    match example {
        Example::Local | Example::Json => {
            let tag = format!(" masqlog[{ulogd_pid}]: ");
            assert!(line.contains(&tag), "{line}: expected the tag {tag:?}");
        }
        Example::Remote | Example::Relp => {
            let f: Vec<&str> = line.splitn(7, ' ').collect();
            assert_eq!(f.len(), 7, "{line}");
            // daemon.info = 3 * 8 + 6
            assert_eq!(f[0], "<30>1", "{line}: PRI and VERSION");
            assert!(
                masqlog_core::time::parse_rfc3339(f[1]).is_some(),
                "{line}: TIMESTAMP"
            );
            assert_eq!(f[2], "nat-router-1", "{line}: HOSTNAME");
            assert_eq!(f[3], "masqlog", "{line}: APP-NAME");
            assert_eq!(f[4], ulogd_pid.to_string(), "{line}: PROCID");
            assert_eq!(f[5], l.parsed.record.event.name(), "{line}: MSGID");
            assert!(f[6].starts_with("[masqlog@32473 "), "{line}: SD");
        }
    }
}
