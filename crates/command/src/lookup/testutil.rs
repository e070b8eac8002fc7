//! Test helpers: flow records, log lines in every stored form written with
//! the real formatters, temporary directories, a small random generator.

use std::net::IpAddr;

use masqlog_core::config::Format;
use masqlog_core::format::{Header, write_syslog};
use masqlog_core::record::{
    Counters, Endpoint, Event, FlowRecord, NatKind, Proto, Remote, Timestamp,
};
use masqlog_core::time::parse_rfc3339;

/// A fresh directory, `masqlog-lookup-TAG-XXXXXX`, removed with its
/// contents on drop.
pub fn temp_dir(tag: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("masqlog-lookup-{tag}-"))
        .tempdir()
        .expect("create temp dir")
}

pub use masqlog_core::format::testutil::Rng;

pub fn t(s: &str) -> Timestamp {
    parse_rfc3339(s).unwrap_or_else(|| panic!("bad time {s}"))
}

pub fn ep(s: &str) -> Endpoint {
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Endpoint { ip, port: None };
    }
    let (ip, port) = if let Some(rest) = s.strip_prefix('[') {
        let (ip, port) = rest.split_once("]:").unwrap();
        (ip, port)
    } else {
        s.rsplit_once(':').unwrap()
    };
    Endpoint {
        ip: ip.parse().unwrap(),
        port: Some(port.parse().unwrap()),
    }
}

/// A masqueraded TCP flow's event.
pub fn rec(
    event: Event,
    id: u32,
    client: &str,
    masq: &str,
    remote: &str,
    start: Option<Timestamp>,
    end: Option<Timestamp>,
) -> FlowRecord {
    let ended = event == Event::End;
    FlowRecord {
        event,
        nat: NatKind::Snat,
        proto: Proto::Tcp,
        id: Some(id),
        client: ep(client),
        masq: ep(masq),
        remote: Remote::Shown(ep(remote)),
        start,
        end,
        out: ended.then_some(Counters {
            packets: 5,
            bytes: 400,
        }),
        inbound: ended.then_some(Counters {
            packets: 4,
            bytes: 3000,
        }),
        ident: None,
    }
}

/// How a syslog daemon stored a line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Style {
    /// `Nov 21 13:37:42 gw1 masqlog[4242]: ...`, the prefix in the local
    /// time of a zone `offset` seconds east of UTC.
    Traditional { offset: i32 },
    /// `2026-11-21T13:37:42.123456+01:00 gw1 masqlog[4242]: ...`.
    Rfc3339 { offset: i32 },
    /// The RFC 5424 message as received (for `Format::Rfc5424`), the
    /// RFC 3164 one with its PRI otherwise.
    Raw,
}

/// One stored line (no newline) for `rec`, logged at `logged`.
pub fn line(format: Format, style: Style, logged: Timestamp, rec: &FlowRecord) -> String {
    sealed_line(format, style, logged, rec, None)
}

/// [`line`], sealed by `chain` when one is given.
pub fn sealed_line(
    format: Format,
    style: Style,
    logged: Timestamp,
    rec: &FlowRecord,
    chain: Option<&mut masqlog_core::seal::Chain>,
) -> String {
    let shift = match style {
        Style::Traditional { offset } => i64::from(offset),
        _ => 0,
    };
    let hdr = Header {
        pri: 30,
        timestamp: Timestamp::new(logged.secs + shift, logged.usecs),
        hostname: Some("gw1"),
        app: "masqlog",
        pid: 4242,
    };
    let mut out = Vec::new();
    let start = write_syslog(format, &hdr, rec, &mut out);
    if let Some(c) = chain {
        masqlog_core::format::sealing::seal_message(format, start, c, &mut out);
    }
    let s = String::from_utf8(out).unwrap();
    match (style, format) {
        (Style::Raw, _) | (_, Format::Rfc5424) => s,
        (Style::Traditional { .. }, _) => s["<30>".len()..].to_string(),
        (Style::Rfc3339 { offset }, _) => {
            let rest = &s["<30>Nov 21 12:38:12".len()..];
            format!("{}{rest}", rfc3339_local(logged, offset))
        }
    }
}

/// `2026-11-21T13:37:42.123456+01:00`.
pub fn rfc3339_local(t: Timestamp, offset: i32) -> String {
    let mut b = Vec::new();
    masqlog_core::time::write_rfc3339_micros(
        Timestamp::new(t.secs + i64::from(offset), t.usecs),
        &mut b,
    );
    let s = String::from_utf8(b).unwrap();
    format!(
        "{}{}",
        s.trim_end_matches('Z'),
        crate::when::offset_string(offset)
    )
}

/// A line that is not masqlog's, in the traditional format.
pub fn noise(logged: Timestamp, n: u64) -> String {
    let mut b = Vec::new();
    masqlog_core::time::write_rfc3164(logged, &mut b);
    format!(
        "{} gw1 sshd[{}]: Accepted publickey for user{} from 198.51.100.{} port {} ssh2",
        String::from_utf8(b).unwrap(),
        1000 + n % 5000,
        n % 7,
        n % 250,
        40000 + n % 20000
    )
}
