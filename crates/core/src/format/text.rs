//! The text format: `masqlog/1 ev=start nat=snat proto=tcp ...`, one
//! `key=value` token per known field after the version marker.

use super::fields::{self, Value};
use super::{FORMAT_VERSION, escape, write_endpoint, write_u64};
use crate::record::FlowRecord;
use crate::time;

/// The marker that opens every text body: `masqlog/` and the version.
pub const MARKER: &str = "masqlog/";

/// Appends the text body (no syslog header, no newline):
/// `masqlog/1 ev=end nat=snat proto=tcp id=3954 client=10.99.0.2:40000 ...`.
/// Every value is written bare or quoted by [`escape::write_value`], so the
/// line is printable ASCII.
pub fn write_body(rec: &FlowRecord, out: &mut Vec<u8>) {
    out.extend_from_slice(MARKER.as_bytes());
    write_u64(out, FORMAT_VERSION.into());
    fields::for_each(rec, |name, value| {
        out.push(b' ');
        out.extend_from_slice(name.as_bytes());
        out.push(b'=');
        match value {
            Value::Word(w) => escape::write_value(out, w.as_bytes()),
            Value::Num(n) => write_u64(out, n),
            // Endpoints and times are made of bare bytes only.
            Value::Endpoint(ep) => write_endpoint(out, ep, b"]"),
            Value::Time(t) => time::write_rfc3339_micros(t, out),
            Value::Bytes(b) => escape::write_value(out, b),
            Value::Hash(h) => fields::write_hash(out, h),
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::escape::is_bare;
    use crate::format::testutil::{
        Rng, gre6_minimal, icmp_echo, random_record, tcp_start, udp6_dnat,
    };

    fn body(rec: &FlowRecord) -> String {
        let mut out = Vec::new();
        write_body(rec, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn start_event_has_no_end_and_no_counters() {
        assert_eq!(
            body(&tcp_start()),
            "masqlog/1 ev=start nat=snat proto=tcp id=3954 client=10.99.0.2:40000 \
             masq=192.0.2.1:53500 remote=203.0.113.7:443 start=2026-11-21T12:37:42.123456Z"
        );
    }

    #[test]
    fn ipv6_endpoints_are_bracketed_when_they_have_a_port() {
        assert_eq!(
            body(&udp6_dnat()),
            "masqlog/1 ev=update nat=dnat proto=udp id=4294967295 client=[fd00::2]:53 \
             masq=[2001:db8::1]:5353 remote=[2001:db8:ffff::7]:65535 \
             start=1970-01-01T00:00:00.000000Z out_pkts=18446744073709551615 \
             out_bytes=18446744073709551615 in_pkts=0 in_bytes=0"
        );
    }

    #[test]
    fn icmp_type_and_code_follow_proto() {
        assert_eq!(
            body(&icmp_echo()),
            "masqlog/1 ev=end nat=snat proto=icmp icmp_type=8 icmp_code=0 \
             client=10.99.0.2 masq=192.0.2.1 remote=203.0.113.7 \
             start=2023-11-14T22:13:20.000001Z end=2023-11-14T22:13:50.999999Z \
             out_pkts=1 out_bytes=84"
        );
    }

    #[test]
    fn other_protocols_are_numbers_and_unknowns_are_left_out() {
        assert_eq!(
            body(&gre6_minimal()),
            "masqlog/1 ev=start nat=snat proto=47 client=fd00::2 masq=2001:db8::1 \
             remote=::ffff:192.0.2.9"
        );
    }

    #[test]
    fn identd_bytes_cannot_forge_or_break_a_line() {
        use crate::format::testutil::hostile_values;
        use crate::record::{IdentInfo, IdentStatus};
        for v in hostile_values() {
            let mut rec = tcp_start();
            rec.event = crate::record::Event::Ident;
            rec.ident = Some(IdentInfo {
                status: IdentStatus::User,
                user: Some(v.clone()),
                opsys: Some(v.clone()),
                detail: None,
            });
            let b = body(&rec);
            // one printable ASCII line
            assert!(b.bytes().all(|c| (0x20..0x7f).contains(&c)), "{b}");
            let p = crate::format::parse_text(&b).unwrap();
            let ident = p.record.ident.unwrap();
            assert_eq!(ident.user.as_deref(), Some(v.as_slice()), "{b}");
            assert_eq!(ident.opsys.as_deref(), Some(v.as_slice()), "{b}");
            assert_eq!(p.record.client, rec.client, "{b}");
            assert!(p.extra.is_empty(), "a value forged a field: {b}");
        }
    }

    #[test]
    fn remote_can_be_omitted_or_hashed() {
        use crate::record::Remote;
        let mut rec = tcp_start();
        rec.remote = Remote::Omitted;
        let b = body(&rec);
        assert!(!b.contains("remote"), "{b}");
        assert!(!b.contains("203.0.113.7"), "{b}");
        rec.remote = Remote::Hashed(0x0123_4567_89ab_cdef_0011_2233_4455_6677);
        let b = body(&rec);
        assert!(
            b.contains(" remote_hash=0123456789abcdef0011223344556677 "),
            "{b}"
        );
        assert!(!b.contains("203.0.113.7"), "{b}");
    }

    #[test]
    fn every_value_is_bare() {
        let mut rng = Rng::new(5);
        for _ in 0..2000 {
            let mut rec = random_record(&mut rng);
            // IDENT answers are untrusted text and may be quoted: see
            // `identd_bytes_cannot_forge_or_break_a_line`.
            rec.ident = None;
            let b = body(&rec);
            let mut tokens = b.split(' ');
            assert_eq!(tokens.next(), Some("masqlog/1"));
            for t in tokens {
                let (k, v) = t.split_once('=').unwrap();
                assert!(
                    k.bytes().all(|c| c.is_ascii_lowercase() || c == b'_'),
                    "{b}"
                );
                assert!(is_bare(v.as_bytes()), "{b}");
            }
        }
    }
}
