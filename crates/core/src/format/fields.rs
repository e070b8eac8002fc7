//! The fields of a record, in the one order and under the one set of names
//! that every format uses; a field whose value is unknown is not visited.

use crate::record::{Endpoint, FlowRecord, Proto, Remote, Timestamp};

/// Appends the 32 lowercase hexadecimal digits of `h`.
pub(crate) fn write_hash(out: &mut Vec<u8>, h: u128) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for i in (0..32).rev() {
        out.push(HEX[((h >> (i * 4)) & 0xf) as usize]);
    }
}

/// The key that carries the format version (`masqlog/1`, `"masqlog":1`,
/// `masqlog="1"`).
pub(crate) const VERSION: &str = "masqlog";
pub(crate) const EV: &str = "ev";
pub(crate) const NAT: &str = "nat";
pub(crate) const PROTO: &str = "proto";
pub(crate) const ICMP_TYPE: &str = "icmp_type";
pub(crate) const ICMP_CODE: &str = "icmp_code";
pub(crate) const ID: &str = "id";
pub(crate) const CLIENT: &str = "client";
pub(crate) const MASQ: &str = "masq";
pub(crate) const REMOTE: &str = "remote";
pub(crate) const START: &str = "start";
pub(crate) const END: &str = "end";
pub(crate) const OUT_PKTS: &str = "out_pkts";
pub(crate) const OUT_BYTES: &str = "out_bytes";
pub(crate) const IN_PKTS: &str = "in_pkts";
pub(crate) const IN_BYTES: &str = "in_bytes";
pub(crate) const REMOTE_HASH: &str = "remote_hash";
pub(crate) const IDENT: &str = "ident";
pub(crate) const USER: &str = "user";
pub(crate) const OPSYS: &str = "opsys";
pub(crate) const IDENT_DETAIL: &str = "ident_detail";

/// The value of one field, typed so that each format can write it its way.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Value<'a> {
    /// A fixed lowercase word (event, NAT kind, protocol name).
    Word(&'static str),
    Num(u64),
    Endpoint(&'a Endpoint),
    Time(Timestamp),
    /// Untrusted bytes (an identd's answer): always escaped.
    Bytes(&'a [u8]),
    /// A 128-bit hash, written as 32 lowercase hexadecimal digits.
    Hash(u128),
}

/// Calls `f` for each known field of `rec`, in format order.
pub(crate) fn for_each(rec: &FlowRecord, mut f: impl FnMut(&'static str, Value<'_>)) {
    f(EV, Value::Word(rec.event.name()));
    f(NAT, Value::Word(rec.nat.name()));
    match rec.proto.name() {
        Some(name) => f(PROTO, Value::Word(name)),
        None => f(PROTO, Value::Num(rec.proto.number().into())),
    }
    if let Proto::Icmp { icmp_type, code } = rec.proto {
        if let Some(t) = icmp_type {
            f(ICMP_TYPE, Value::Num(t.into()));
        }
        if let Some(c) = code {
            f(ICMP_CODE, Value::Num(c.into()));
        }
    }
    if let Some(id) = rec.id {
        f(ID, Value::Num(id.into()));
    }
    f(CLIENT, Value::Endpoint(&rec.client));
    f(MASQ, Value::Endpoint(&rec.masq));
    match &rec.remote {
        Remote::Shown(ep) => f(REMOTE, Value::Endpoint(ep)),
        Remote::Hashed(h) => f(REMOTE_HASH, Value::Hash(*h)),
        Remote::Omitted => {}
    }
    if let Some(t) = rec.start {
        f(START, Value::Time(t));
    }
    if let Some(t) = rec.end {
        f(END, Value::Time(t));
    }
    if let Some(c) = rec.out {
        f(OUT_PKTS, Value::Num(c.packets));
        f(OUT_BYTES, Value::Num(c.bytes));
    }
    if let Some(c) = rec.inbound {
        f(IN_PKTS, Value::Num(c.packets));
        f(IN_BYTES, Value::Num(c.bytes));
    }
    if let Some(i) = &rec.ident {
        f(IDENT, Value::Word(i.status.name()));
        if let Some(u) = &i.user {
            f(USER, Value::Bytes(u));
        }
        if let Some(o) = &i.opsys {
            f(OPSYS, Value::Bytes(o));
        }
        if let Some(d) = &i.detail {
            f(IDENT_DETAIL, Value::Bytes(d));
        }
    }
}
