//! The JSON format: one object, `{"masqlog":1,"ev":"start",...}`, with the
//! keys of the text format in the same order; written by hand into the
//! buffer (no serde in the library).

use super::fields::{self, Value};
use super::{FORMAT_VERSION, escape, write_ip, write_u64};
use crate::record::FlowRecord;
use crate::time;

/// The start of every JSON body.
pub const MARKER: &str = "{\"masqlog\":";

/// Appends the JSON body (no syslog header, no newline). Endpoints are
/// objects `{"ip":"10.0.0.1","port":80}` (no `port` when unknown), times
/// RFC 3339 strings, counters, ids and ICMP type/code numbers; `proto` is a
/// name, or a number for protocols without one.
///
/// Free-text fields added later are to be written with
/// [`escape::write_json_bytes`]: the parser reads unknown string values
/// that way.
pub fn write_body(rec: &FlowRecord, out: &mut Vec<u8>) {
    out.extend_from_slice(MARKER.as_bytes());
    write_u64(out, FORMAT_VERSION.into());
    fields::for_each(rec, |name, value| {
        out.extend_from_slice(b",\"");
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b"\":");
        match value {
            Value::Word(w) => escape::write_json_str(out, w),
            Value::Num(n) => write_u64(out, n),
            Value::Endpoint(ep) => {
                out.extend_from_slice(b"{\"ip\":\"");
                write_ip(out, ep.ip);
                out.push(b'"');
                if let Some(port) = ep.port {
                    out.extend_from_slice(b",\"port\":");
                    write_u64(out, port.into());
                }
                out.push(b'}');
            }
            Value::Time(t) => {
                out.push(b'"');
                time::write_rfc3339_micros(t, out);
                out.push(b'"');
            }
            Value::Bytes(b) => escape::write_json_bytes(out, b),
            Value::Hash(h) => {
                out.push(b'"');
                fields::write_hash(out, h);
                out.push(b'"');
            }
        }
    });
    out.push(b'}');
}

#[cfg(test)]
mod tests {
    use serde_json::{Map, Value as J, json};

    use super::*;
    use crate::format::testutil::{Rng, gre6_minimal, icmp_echo, random_record, samples};
    use crate::record::{Endpoint, Timestamp};

    fn object(rec: &FlowRecord) -> (String, Map<String, J>) {
        let mut out = Vec::new();
        write_body(rec, &mut out);
        let s = String::from_utf8(out).unwrap();
        let v: J = serde_json::from_str(&s).unwrap_or_else(|e| panic!("{e}: {s}"));
        match v {
            J::Object(m) => (s, m),
            other => panic!("not an object: {other}"),
        }
    }

    fn endpoint(e: &Endpoint) -> J {
        match e.port {
            Some(p) => json!({"ip": e.ip.to_string(), "port": p}),
            None => json!({"ip": e.ip.to_string()}),
        }
    }

    fn time(t: Timestamp) -> J {
        let mut out = Vec::new();
        time::write_rfc3339_micros(t, &mut out);
        J::String(String::from_utf8(out).unwrap())
    }

    /// What serde_json must find: built from the record with serde_json's
    /// own types, independent of the writer.
    fn expected(rec: &FlowRecord) -> Vec<(&'static str, J)> {
        use crate::record::{Proto, Remote};
        let mut v = vec![
            ("masqlog", json!(1)),
            ("ev", json!(rec.event.name())),
            ("nat", json!(rec.nat.name())),
            (
                "proto",
                match rec.proto.name() {
                    Some(n) => json!(n),
                    None => json!(rec.proto.number()),
                },
            ),
        ];
        if let Proto::Icmp { icmp_type, code } = rec.proto {
            if let Some(t) = icmp_type {
                v.push(("icmp_type", json!(t)));
            }
            if let Some(c) = code {
                v.push(("icmp_code", json!(c)));
            }
        }
        if let Some(id) = rec.id {
            v.push(("id", json!(id)));
        }
        v.push(("client", endpoint(&rec.client)));
        v.push(("masq", endpoint(&rec.masq)));
        match rec.remote {
            Remote::Shown(ep) => v.push(("remote", endpoint(&ep))),
            Remote::Hashed(h) => v.push(("remote_hash", json!(format!("{h:032x}")))),
            Remote::Omitted => {}
        }
        if let Some(t) = rec.start {
            v.push(("start", time(t)));
        }
        if let Some(t) = rec.end {
            v.push(("end", time(t)));
        }
        if let Some(c) = rec.out {
            v.push(("out_pkts", json!(c.packets)));
            v.push(("out_bytes", json!(c.bytes)));
        }
        if let Some(c) = rec.inbound {
            v.push(("in_pkts", json!(c.packets)));
            v.push(("in_bytes", json!(c.bytes)));
        }
        if let Some(i) = &rec.ident {
            v.push(("ident", json!(i.status.name())));
            // Untrusted bytes: serde_json must read a string that unescapes
            // back to exactly these bytes (checked in `check`).
            for (k, b) in [
                ("user", &i.user),
                ("opsys", &i.opsys),
                ("ident_detail", &i.detail),
            ] {
                if let Some(b) = b {
                    let mut raw = Vec::new();
                    escape::write_json_bytes(&mut raw, b);
                    let decoded: J = serde_json::from_slice(&raw).unwrap();
                    let J::String(text) = &decoded else {
                        panic!("not a string")
                    };
                    assert_eq!(&escape::unescape_json_bytes(text.as_bytes()), b);
                    v.push((k, decoded));
                }
            }
        }
        v
    }

    fn check(rec: &FlowRecord) {
        let (s, map) = object(rec);
        let want = expected(rec);
        assert_eq!(map.len(), want.len(), "{s}");
        for (k, v) in &want {
            assert_eq!(map.get(*k), Some(v), "{k} in {s}");
        }
        // Same order as the text format: the keys appear in `want` order.
        let mut at = 0;
        for (k, _) in &want {
            let pos = s[at..].find(&format!("\"{k}\":")).unwrap() + at;
            at = pos + 1;
        }
        assert!(!s.contains('\n'));
    }

    #[test]
    fn samples_parse_with_serde_json() {
        for rec in samples() {
            check(&rec);
        }
    }

    #[test]
    fn random_records_parse_with_serde_json() {
        let mut rng = Rng::new(11);
        for _ in 0..3000 {
            check(&random_record(&mut rng));
        }
    }

    #[test]
    fn icmp_and_other_proto_are_numbers() {
        let (_, m) = object(&icmp_echo());
        assert_eq!(m["proto"], json!("icmp"));
        assert_eq!(m["icmp_type"], json!(8));
        assert_eq!(m["icmp_code"], json!(0));
        assert_eq!(m["client"], json!({"ip": "10.99.0.2"}));
        let (s, m) = object(&gre6_minimal());
        assert_eq!(m["proto"], json!(47));
        assert_eq!(
            s,
            "{\"masqlog\":1,\"ev\":\"start\",\"nat\":\"snat\",\"proto\":47,\
             \"client\":{\"ip\":\"fd00::2\"},\"masq\":{\"ip\":\"2001:db8::1\"},\
             \"remote\":{\"ip\":\"::ffff:192.0.2.9\"}}"
        );
    }
}
