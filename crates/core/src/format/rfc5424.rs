//! The RFC 5424 format: the header with MSGID = the event name, then one
//! SD-ELEMENT `[masqlog@32473 masqlog="1" ev="start" ...]` holding every
//! field as a PARAM, and no MSG part.

use super::fields::{self, Value};
use super::{FORMAT_VERSION, escape, write_endpoint, write_u64};
use crate::record::FlowRecord;
use crate::time;

/// The SD-ID of our element. 32473 is the private enterprise number that
/// RFC 5612 reserves for documentation examples: no number has been
/// registered with IANA for masqlog.
pub const SD_ID: &str = "masqlog@32473";

/// What opens our SD-ELEMENT: `[`, the SD-ID and a space.
pub const MARKER: &str = "[masqlog@32473 ";

/// Appends the SD-ELEMENT alone. PARAM-VALUEs are escaped as RFC 5424 6.3.3
/// asks (`"`, `\` and `]`, see [`escape::write_sd_value`]); an IPv6 endpoint
/// with a port is thus written `[2001:db8::1\]:443`.
pub fn write_sd(rec: &FlowRecord, out: &mut Vec<u8>) {
    out.extend_from_slice(MARKER.as_bytes());
    out.extend_from_slice(fields::VERSION.as_bytes());
    out.extend_from_slice(b"=\"");
    write_u64(out, FORMAT_VERSION.into());
    out.push(b'"');
    fields::for_each(rec, |name, value| {
        out.push(b' ');
        out.extend_from_slice(name.as_bytes());
        out.push(b'=');
        match value {
            Value::Word(w) => escape::write_sd_value(out, w.as_bytes()),
            Value::Num(n) => {
                out.push(b'"');
                write_u64(out, n);
                out.push(b'"');
            }
            Value::Endpoint(ep) => {
                out.push(b'"');
                write_endpoint(out, ep, b"\\]");
                out.push(b'"');
            }
            Value::Time(t) => {
                out.push(b'"');
                time::write_rfc3339_micros(t, out);
                out.push(b'"');
            }
            Value::Bytes(b) => escape::write_sd_value(out, b),
            Value::Hash(h) => {
                out.push(b'"');
                fields::write_hash(out, h);
                out.push(b'"');
            }
        }
    });
    out.push(b']');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::testutil::{Rng, header, random_record, samples, udp6_dnat};

    /// An independent check of the RFC 5424 grammar (section 6, ABNF) for
    /// one message with structured data and no MSG. Returns the SD-ELEMENTs
    /// as (SD-ID, [(PARAM-NAME, raw PARAM-VALUE)]).
    fn check_rfc5424(msg: &[u8]) -> Vec<(String, Vec<(String, String)>)> {
        let s = std::str::from_utf8(msg).expect("UTF-8");
        // HEADER = PRI VERSION SP TIMESTAMP SP HOSTNAME SP APP-NAME SP PROCID SP MSGID
        let rest = s.strip_prefix('<').expect("PRI");
        let (pri, rest) = rest.split_once('>').expect("PRI");
        assert!((1..=3).contains(&pri.len()) && pri.bytes().all(|b| b.is_ascii_digit()));
        assert!(pri.parse::<u32>().unwrap() <= 191);
        assert!(pri == "0" || !pri.starts_with('0'));
        let rest = rest.strip_prefix("1 ").expect("VERSION");
        let mut parts = rest.splitn(6, ' ');
        let ts = parts.next().unwrap();
        assert!(crate::time::parse_rfc3339(ts).is_some(), "TIMESTAMP {ts}");
        for (name, max) in [
            ("HOSTNAME", 255),
            ("APP-NAME", 48),
            ("PROCID", 128),
            ("MSGID", 32),
        ] {
            let f = parts.next().expect(name);
            assert!((1..=max).contains(&f.len()), "{name} {f:?}");
            assert!(f.bytes().all(|b| (33..=126).contains(&b)), "{name} {f:?}");
        }
        let sd = parts.next().expect("STRUCTURED-DATA");
        // STRUCTURED-DATA = 1*SD-ELEMENT; SD-ELEMENT = "[" SD-ID *(SP SD-PARAM) "]"
        let b = sd.as_bytes();
        let mut i = 0;
        let mut elements = Vec::new();
        let sd_name = |b: &[u8], i: &mut usize| {
            let start = *i;
            while *i < b.len() && (33..=126).contains(&b[*i]) && !b"= ]\"".contains(&b[*i]) {
                *i += 1;
            }
            assert!(
                (1..=32).contains(&(*i - start)),
                "SD-NAME at {start} in {sd}"
            );
            String::from_utf8(b[start..*i].to_vec()).unwrap()
        };
        while i < b.len() {
            assert_eq!(b[i], b'[', "SD-ELEMENT in {sd}");
            i += 1;
            let id = sd_name(b, &mut i);
            let mut params = Vec::new();
            while b[i] == b' ' {
                i += 1;
                let name = sd_name(b, &mut i);
                assert_eq!(&b[i..i + 2], b"=\"", "{sd}");
                i += 2;
                let start = i;
                loop {
                    match b[i] {
                        b'\\' => i += 2,
                        b'"' => break,
                        b']' => panic!("unescaped ] in PARAM-VALUE: {sd}"),
                        _ => i += 1,
                    }
                }
                params.push((name, sd[start..i].to_string()));
                i += 1;
            }
            assert_eq!(b[i], b']', "{sd}");
            i += 1;
            elements.push((id, params));
        }
        assert!(!elements.is_empty());
        elements
    }

    fn message(rec: &FlowRecord) -> Vec<u8> {
        let mut out = Vec::new();
        crate::format::write_syslog(
            crate::config::Format::Rfc5424,
            &header(Some("gw1")),
            rec,
            &mut out,
        );
        out
    }

    #[test]
    fn messages_follow_the_rfc5424_grammar() {
        let mut recs = samples();
        let mut rng = Rng::new(3);
        recs.extend((0..2000).map(|_| random_record(&mut rng)));
        for rec in &recs {
            let msg = message(rec);
            let els = check_rfc5424(&msg);
            assert_eq!(els.len(), 1);
            assert_eq!(els[0].0, SD_ID);
            let params = &els[0].1;
            assert_eq!(params[0], ("masqlog".to_string(), "1".to_string()));
            assert_eq!(params[1], ("ev".to_string(), rec.event.name().to_string()));
            // MSGID is the event name.
            let s = String::from_utf8(msg).unwrap();
            assert!(
                s.contains(&format!(" {} [masqlog@32473 ", rec.event.name())),
                "{s}"
            );
            assert!(s.ends_with(']'));
        }
    }

    #[test]
    fn ipv6_brackets_are_escaped() {
        let mut out = Vec::new();
        write_sd(&udp6_dnat(), &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "[masqlog@32473 masqlog=\"1\" ev=\"update\" nat=\"dnat\" proto=\"udp\" \
             id=\"4294967295\" client=\"[fd00::2\\]:53\" masq=\"[2001:db8::1\\]:5353\" \
             remote=\"[2001:db8:ffff::7\\]:65535\" start=\"1970-01-01T00:00:00.000000Z\" \
             out_pkts=\"18446744073709551615\" out_bytes=\"18446744073709551615\" \
             in_pkts=\"0\" in_bytes=\"0\"]"
        );
    }
}
