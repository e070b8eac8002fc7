//! Unit tests of the IPFIX encoder against hand-computed bytes (RFC 7011
//! sections 3.1, 3.3.2, 3.4.1, 7).

use super::*;
use crate::record::{Counters, Endpoint, IdentInfo, NatKind, Proto, Remote};

fn ep(s: &str, port: u16) -> Endpoint {
    Endpoint {
        ip: s.parse().unwrap(),
        port: Some(port),
    }
}

fn start_v4() -> FlowRecord {
    FlowRecord {
        event: Event::Start,
        nat: NatKind::Snat,
        proto: Proto::Tcp,
        id: Some(0x0102_0304),
        client: ep("10.99.0.2", 40000),
        masq: ep("192.0.2.1", 53500),
        remote: Remote::Shown(ep("203.0.113.7", 443)),
        start: Some(Timestamp::new(1_700_000_000, 123_456)),
        end: None,
        out: None,
        inbound: None,
        ident: None,
    }
}

fn end_v4_with_user(user: &[u8]) -> FlowRecord {
    FlowRecord {
        event: Event::End,
        end: Some(Timestamp::new(1_700_000_010, 999_999)),
        out: Some(Counters {
            packets: 5,
            bytes: 400,
        }),
        inbound: Some(Counters {
            packets: 4,
            bytes: 3000,
        }),
        ident: Some(IdentInfo {
            status: IdentStatus::User,
            user: Some(user.to_vec()),
            opsys: Some(b"UNIX".to_vec()),
            detail: None,
        }),
        ..start_v4()
    }
}

const EXP: Exporter = Exporter {
    instance: 7,
    max_message: 1400,
};

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(b[at..at + 4].try_into().unwrap())
}

fn be64(b: &[u8], at: usize) -> u64 {
    u64::from_be_bytes(b[at..at + 8].try_into().unwrap())
}

#[test]
fn nat44_create_record_bytes_field_by_field() {
    let mut out = Vec::new();
    encode_record(&start_v4(), &EXP, Timestamp::new(0, 0), &mut out);
    let expected: Vec<u8> = [
        &[0x01, 0x00][..], // template 256: IPv4 create
        // observationTimeMilliseconds = start, 1700000000123 ms
        &1_700_000_000_123u64.to_be_bytes(),
        // flowStartMilliseconds
        &1_700_000_000_123u64.to_be_bytes(),
        &[4],                          // natEvent: NAT44 session create (IANA / RFC 8158)
        &[6],                          // protocolIdentifier: TCP
        &[10, 99, 0, 2, 0x9c, 0x40],   // sourceIPv4Address, sourceTransportPort 40000
        &[203, 0, 113, 7, 0x01, 0xbb], // destinationIPv4Address, port 443
        &[192, 0, 2, 1, 0xd0, 0xfc], // postNATSourceIPv4Address, postNAPTSourceTransportPort 53500
        &[203, 0, 113, 7, 0x01, 0xbb], // postNATDestinationIPv4Address, port 443
        &[0, 0, 0, 7],               // natInstanceID
        &[0, 0, 0, 0, 1, 2, 3, 4],   // flowId: conntrack id
    ]
    .concat();
    assert_eq!(out, expected);
    let shape = Shape::from_template_id(256).unwrap();
    assert_eq!(out.len() - 2, shape.fixed_len());
}

#[test]
fn template_record_bytes_field_by_field() {
    let shape = Shape {
        v6: false,
        delete: true,
        user: true,
    };
    assert_eq!(shape.template_id(), 262);
    let mut t = Vec::new();
    write_template(shape, &mut t);
    // template id 262, 20 fields
    assert_eq!(&t[..4], &[0x01, 0x06, 0x00, 20]);
    let spec = |id: u16, len: u16| [id.to_be_bytes(), len.to_be_bytes()].concat();
    let mut want = Vec::new();
    for (id, len) in [
        (323, 8),
        (152, 8),
        (153, 8),
        (230, 1),
        (4, 1),
        (8, 4),
        (7, 2),
        (12, 4),
        (11, 2),
        (225, 4),
        (227, 2),
        (226, 4),
        (228, 2),
        (463, 4),
        (148, 8),
        (1, 8),
        (2, 8),
    ] {
        want.extend(spec(id, len));
    }
    // RFC 5103 reverse octetDeltaCount and packetDeltaCount: enterprise
    // bit set, PEN 29305 (0x7279)
    want.extend([0x80, 0x01, 0x00, 0x08, 0x00, 0x00, 0x72, 0x79]);
    want.extend([0x80, 0x02, 0x00, 0x08, 0x00, 0x00, 0x72, 0x79]);
    // userName, variable length
    want.extend([0x01, 0x73, 0xff, 0xff]);
    assert_eq!(&t[4..], &want[..]);
    assert_eq!(t.len(), template_len(shape));
}

#[test]
fn nat44_delete_carries_end_counters_and_user() {
    let mut out = Vec::new();
    encode_record(
        &end_v4_with_user(b"bob"),
        &EXP,
        Timestamp::new(0, 0),
        &mut out,
    );
    assert_eq!(be16(&out, 0), 262);
    let r = &out[2..];
    assert_eq!(be64(r, 0), 1_700_000_010_999); // observation = end
    assert_eq!(be64(r, 8), 1_700_000_000_123);
    assert_eq!(be64(r, 16), 1_700_000_010_999);
    assert_eq!(r[24], 5); // NAT44 session delete
    let counters = 24 + 2 + 24 + 4 + 8;
    assert_eq!(be64(r, counters), 400);
    assert_eq!(be64(r, counters + 8), 5);
    assert_eq!(be64(r, counters + 16), 3000);
    assert_eq!(be64(r, counters + 24), 4);
    assert_eq!(&r[counters + 32..], &[3, b'b', b'o', b'b']);
}

#[test]
fn long_user_name_uses_the_three_byte_length() {
    let user = vec![b'u'; 300];
    let mut out = Vec::new();
    encode_record(
        &end_v4_with_user(&user),
        &EXP,
        Timestamp::new(0, 0),
        &mut out,
    );
    let shape = Shape::from_template_id(262).unwrap();
    let at = 2 + shape.fixed_len();
    assert_eq!(out[at], 255);
    assert_eq!(be16(&out, at + 1), 300);
    assert_eq!(&out[at + 3..], &user[..]);
    // 254 still fits the one-byte form; 255 does not
    let mut v = Vec::new();
    put_varlen(&[b'x'; 254], &mut v);
    assert_eq!(v[0], 254);
    assert_eq!(v.len(), 255);
    v.clear();
    put_varlen(&[b'x'; 255], &mut v);
    assert_eq!(&v[..3], &[255, 0, 255]);
    assert_eq!(v.len(), 258);
}

#[test]
fn user_name_too_long_for_the_message_is_cut_with_a_marker() {
    let exp = Exporter {
        instance: 0,
        max_message: 256,
    };
    let user = vec![b'a'; 1000];
    let mut out = Vec::new();
    encode_record(
        &end_v4_with_user(&user),
        &exp,
        Timestamp::new(0, 0),
        &mut out,
    );
    // the record fits one message with its header and set header
    assert!(
        out.len() - 2 + HEADER_LEN + SET_HEADER_LEN <= 256,
        "{}",
        out.len()
    );
    let shape = Shape::from_template_id(262).unwrap();
    let name = &out[2 + shape.fixed_len() + 1..];
    assert_eq!(usize::from(out[2 + shape.fixed_len()]), name.len());
    assert!(name.ends_with(TRUNCATION_MARKER.as_bytes()));
    assert!(name.starts_with(b"aaaa"));
    let mut b = MessageBuilder::new(256);
    b.clear();
    assert!(b.add_record(&out));
}

#[test]
fn truncation_keeps_utf8_whole_and_replaces_invalid_bytes() {
    let s = user_name("ééééé".as_bytes(), 8);
    assert!(s.len() <= 8);
    assert!(s.ends_with(TRUNCATION_MARKER));
    assert_eq!(s, "éé...");
    assert_eq!(user_name(b"a\xffb", 10), "a\u{fffd}b");
    assert_eq!(user_name(b"short", 10), "short");
}

#[test]
fn ipv6_masquerade_is_a_translation_event_with_ipv6_elements() {
    let rec = FlowRecord {
        client: ep("fd00::2", 40000),
        masq: ep("2001:db8::1", 40000),
        remote: Remote::Shown(ep("2001:db8:1::7", 80)),
        ..start_v4()
    };
    let mut out = Vec::new();
    encode_record(&rec, &EXP, Timestamp::new(0, 0), &mut out);
    assert_eq!(be16(&out, 0), 257);
    let r = &out[2..];
    assert_eq!(r[16], nat_event::TRANSLATION_CREATE);
    let fields = Shape::from_template_id(257).unwrap().fields();
    assert!(
        fields
            .iter()
            .any(|f| f.id == ie::POST_NAT_SOURCE_IPV6_ADDRESS && f.len == 16)
    );
    assert_eq!(
        &r[18..34],
        &"fd00::2".parse::<std::net::Ipv6Addr>().unwrap().octets()
    );
    assert_eq!(
        out.len() - 2,
        Shape::from_template_id(257).unwrap().fixed_len()
    );
}

#[test]
fn updates_and_ident_outcomes_without_a_user_encode_nothing() {
    let mut out = vec![1, 2, 3];
    let upd = FlowRecord {
        event: Event::Update,
        ..start_v4()
    };
    encode_record(&upd, &EXP, Timestamp::new(0, 0), &mut out);
    assert!(out.is_empty());
    let timeout = FlowRecord {
        event: Event::Ident,
        ident: Some(IdentInfo {
            status: IdentStatus::Timeout,
            user: None,
            opsys: None,
            detail: None,
        }),
        ..start_v4()
    };
    encode_record(&timeout, &EXP, Timestamp::new(0, 0), &mut out);
    assert!(out.is_empty());
    let answered = FlowRecord {
        event: Event::Ident,
        ..end_v4_with_user(b"alice")
    };
    encode_record(&answered, &EXP, Timestamp::new(1_800_000_000, 0), &mut out);
    assert_eq!(be16(&out, 0), 260); // IPv4 create with userName
    assert_eq!(be64(&out, 2), 1_800_000_000_000);
    assert!(out.ends_with(b"\x05alice"));
}

#[test]
fn hidden_remote_is_the_unspecified_address() {
    let rec = FlowRecord {
        remote: Remote::Omitted,
        ..start_v4()
    };
    let mut out = Vec::new();
    encode_record(&rec, &EXP, Timestamp::new(0, 0), &mut out);
    assert_eq!(&out[2 + 18 + 6..2 + 18 + 12], &[0, 0, 0, 0, 0, 0]);
}

#[test]
fn message_header_sets_and_sequence() {
    let mut rec = Vec::new();
    encode_record(&start_v4(), &EXP, Timestamp::new(0, 0), &mut rec);
    let shape = shape_of(&rec).unwrap();
    let mut b = MessageBuilder::new(1400);
    b.clear();
    assert!(b.add_templates(&[shape]));
    assert!(b.add_record(&rec));
    assert!(b.add_record(&rec));
    assert_eq!(b.records(), 2);
    let msg = b.finish(1_700_000_100, 41, 9).to_vec();
    let tlen = template_len(shape);
    let dlen = 2 * (rec.len() - 2);
    assert_eq!(be16(&msg, 0), 10);
    assert_eq!(usize::from(be16(&msg, 2)), msg.len());
    assert_eq!(msg.len(), 16 + 4 + tlen + 4 + dlen);
    assert_eq!(be32(&msg, 4), 1_700_000_100);
    assert_eq!(be32(&msg, 8), 41);
    assert_eq!(be32(&msg, 12), 9);
    // template set: id 2, its length
    assert_eq!(be16(&msg, 16), 2);
    assert_eq!(usize::from(be16(&msg, 18)), 4 + tlen);
    // data set: id = template id, length covers both records
    let d = 16 + 4 + tlen;
    assert_eq!(be16(&msg, d), 256);
    assert_eq!(usize::from(be16(&msg, d + 2)), 4 + dlen);
    assert_eq!(&msg[d + 4..d + 4 + rec.len() - 2], &rec[2..]);
}

#[test]
fn a_record_that_does_not_fit_is_refused_whole() {
    let mut rec = Vec::new();
    encode_record(&start_v4(), &EXP, Timestamp::new(0, 0), &mut rec);
    let mut b = MessageBuilder::new(256);
    b.clear();
    let mut n = 0;
    while b.add_record(&rec) {
        n += 1;
    }
    let len = b.finish(0, 0, 0).len();
    assert!(len <= 256);
    assert_eq!(len, 16 + 4 + n * (rec.len() - 2));
    assert!(len + rec.len() - 2 > 256);
}

#[test]
fn template_ids_round_trip() {
    for id in FIRST_TEMPLATE..FIRST_TEMPLATE + TEMPLATES {
        assert_eq!(Shape::from_template_id(id).unwrap().template_id(), id);
    }
    assert_eq!(Shape::from_template_id(255), None);
    assert_eq!(Shape::from_template_id(264), None);
}

/// The sizes README's "IPFIX export" quotes: a data record against the
/// syslog message of the same record (header included), for the test
/// records of the line formats.
#[test]
fn an_ipfix_record_is_smaller_than_each_line_format() {
    use crate::config::Format;
    use crate::format::{testutil, write_syslog};
    let hdr = testutil::header(Some("nat-router-1"));
    for rec in [testutil::tcp_start(), testutil::tcp_end()] {
        let mut ipfix = Vec::new();
        encode_record(&rec, &EXP, Timestamp::new(0, 0), &mut ipfix);
        let data = ipfix.len() - 2;
        let mut sizes = Vec::new();
        for f in [Format::Text, Format::Rfc5424, Format::Json] {
            let mut line = Vec::new();
            write_syslog(f, &hdr, &rec, &mut line);
            sizes.push((f, line.len()));
            assert!(data * 2 < line.len(), "{f:?}: {data} vs {}", line.len());
        }
        eprintln!(
            "{}: ipfix data record {data} bytes; lines {sizes:?}",
            rec.event.name()
        );
    }
}
