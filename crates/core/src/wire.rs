//! The compact binary form of a [`FlowRecord`]: how the plugin's disk lane
//! keeps records that have not been formatted yet. Exact (every field comes
//! back as it was), little-endian, and read back with every length checked:
//! a damaged body is an error, never a wrong record.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::record::{
    Counters, Endpoint, Event, FlowRecord, IdentInfo, IdentStatus, NatKind, Proto, Remote,
    Timestamp,
};

/// Why a body is not a record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("record body ends early")]
    Short,
    #[error("record body has a bad {0} tag")]
    Tag(&'static str),
    #[error("record body has {0} bytes after its end")]
    Trailing(usize),
}

/// The version byte every body starts with.
const VERSION: u8 = 1;
/// The longest identd field kept (the IDENT reader bounds them far lower).
const MAX_TEXT: usize = u16::MAX as usize;

/// Appends the binary form of `rec` to `out`.
pub fn encode(rec: &FlowRecord, out: &mut Vec<u8>) {
    out.push(VERSION);
    out.push(match rec.event {
        Event::Start => 0,
        Event::Update => 1,
        Event::End => 2,
        Event::Ident => 3,
    });
    out.push(match rec.nat {
        NatKind::Snat => 0,
        NatKind::Dnat => 1,
    });
    out.push(rec.proto.number());
    let (icmp_type, code) = match rec.proto {
        Proto::Icmp { icmp_type, code } => (icmp_type, code),
        _ => (None, None),
    };
    opt_u8(icmp_type, out);
    opt_u8(code, out);
    match rec.id {
        Some(id) => {
            out.push(1);
            out.extend_from_slice(&id.to_le_bytes());
        }
        None => out.push(0),
    }
    endpoint(&rec.client, out);
    endpoint(&rec.masq, out);
    match &rec.remote {
        Remote::Shown(ep) => {
            out.push(0);
            endpoint(ep, out);
        }
        Remote::Hashed(h) => {
            out.push(1);
            out.extend_from_slice(&h.to_le_bytes());
        }
        Remote::Omitted => out.push(2),
    }
    for t in [rec.start, rec.end] {
        match t {
            Some(t) => {
                out.push(1);
                out.extend_from_slice(&t.secs.to_le_bytes());
                out.extend_from_slice(&t.usecs.to_le_bytes());
            }
            None => out.push(0),
        }
    }
    for c in [rec.out, rec.inbound] {
        match c {
            Some(c) => {
                out.push(1);
                out.extend_from_slice(&c.packets.to_le_bytes());
                out.extend_from_slice(&c.bytes.to_le_bytes());
            }
            None => out.push(0),
        }
    }
    match &rec.ident {
        Some(info) => {
            let status = IdentStatus::ALL
                .iter()
                .position(|s| *s == info.status)
                .unwrap_or(0);
            out.push(1 + status as u8);
            for field in [&info.user, &info.opsys, &info.detail] {
                text(field.as_deref(), out);
            }
        }
        None => out.push(0),
    }
}

/// Reads a record written by [`encode`]; `body` must hold exactly one.
///
/// # Errors
///
/// When `body` is short, has a tag no writer makes, or bytes left over.
pub fn decode(body: &[u8]) -> Result<FlowRecord, WireError> {
    let mut r = Reader(body);
    if r.u8()? != VERSION {
        return Err(WireError::Tag("version"));
    }
    let event = match r.u8()? {
        0 => Event::Start,
        1 => Event::Update,
        2 => Event::End,
        3 => Event::Ident,
        _ => return Err(WireError::Tag("event")),
    };
    let nat = match r.u8()? {
        0 => NatKind::Snat,
        1 => NatKind::Dnat,
        _ => return Err(WireError::Tag("nat")),
    };
    let number = r.u8()?;
    let icmp_type = r.opt_u8()?;
    let code = r.opt_u8()?;
    let proto = Proto::from_number(number, icmp_type, code);
    let id = match r.u8()? {
        0 => None,
        1 => Some(u32::from_le_bytes(r.array()?)),
        _ => return Err(WireError::Tag("id")),
    };
    let client = r.endpoint()?;
    let masq = r.endpoint()?;
    let remote = match r.u8()? {
        0 => Remote::Shown(r.endpoint()?),
        1 => Remote::Hashed(u128::from_le_bytes(r.array()?)),
        2 => Remote::Omitted,
        _ => return Err(WireError::Tag("remote")),
    };
    let mut times = [None, None];
    for t in &mut times {
        *t = match r.u8()? {
            0 => None,
            1 => Some(Timestamp::new(
                i64::from_le_bytes(r.array()?),
                u32::from_le_bytes(r.array()?),
            )),
            _ => return Err(WireError::Tag("time")),
        };
    }
    let mut counters = [None, None];
    for c in &mut counters {
        *c = match r.u8()? {
            0 => None,
            1 => Some(Counters {
                packets: u64::from_le_bytes(r.array()?),
                bytes: u64::from_le_bytes(r.array()?),
            }),
            _ => return Err(WireError::Tag("counters")),
        };
    }
    let ident = match r.u8()? {
        0 => None,
        n => {
            let status = *IdentStatus::ALL
                .get(usize::from(n - 1))
                .ok_or(WireError::Tag("ident"))?;
            Some(IdentInfo {
                status,
                user: r.text()?,
                opsys: r.text()?,
                detail: r.text()?,
            })
        }
    };
    if !r.0.is_empty() {
        return Err(WireError::Trailing(r.0.len()));
    }
    Ok(FlowRecord {
        event,
        nat,
        proto,
        id,
        client,
        masq,
        remote,
        start: times[0],
        end: times[1],
        out: counters[0],
        inbound: counters[1],
        ident,
    })
}

fn opt_u8(v: Option<u8>, out: &mut Vec<u8>) {
    match v {
        Some(v) => out.extend_from_slice(&[1, v]),
        None => out.push(0),
    }
}

fn endpoint(ep: &Endpoint, out: &mut Vec<u8>) {
    match ep.ip {
        IpAddr::V4(a) => {
            out.push(4);
            out.extend_from_slice(&a.octets());
        }
        IpAddr::V6(a) => {
            out.push(6);
            out.extend_from_slice(&a.octets());
        }
    }
    match ep.port {
        Some(p) => {
            out.push(1);
            out.extend_from_slice(&p.to_le_bytes());
        }
        None => out.push(0),
    }
}

/// A length-prefixed byte string (`None` and empty differ); longer ones are
/// cut at `MAX_TEXT`.
fn text(v: Option<&[u8]>, out: &mut Vec<u8>) {
    match v {
        Some(b) => {
            let b = &b[..b.len().min(MAX_TEXT)];
            out.push(1);
            out.extend_from_slice(&(b.len() as u16).to_le_bytes());
            out.extend_from_slice(b);
        }
        None => out.push(0),
    }
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], WireError> {
        if self.0.len() < n {
            return Err(WireError::Short);
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], WireError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    fn u8(&mut self) -> Result<u8, WireError> {
        Ok(self.take(1)?[0])
    }

    fn opt_u8(&mut self) -> Result<Option<u8>, WireError> {
        match self.u8()? {
            0 => Ok(None),
            1 => Ok(Some(self.u8()?)),
            _ => Err(WireError::Tag("option")),
        }
    }

    fn endpoint(&mut self) -> Result<Endpoint, WireError> {
        let ip = match self.u8()? {
            4 => IpAddr::V4(Ipv4Addr::from(self.array::<4>()?)),
            6 => IpAddr::V6(Ipv6Addr::from(self.array::<16>()?)),
            _ => return Err(WireError::Tag("address")),
        };
        let port = match self.u8()? {
            0 => None,
            1 => Some(u16::from_le_bytes(self.array()?)),
            _ => return Err(WireError::Tag("port")),
        };
        Ok(Endpoint { ip, port })
    }

    fn text(&mut self) -> Result<Option<Vec<u8>>, WireError> {
        match self.u8()? {
            0 => Ok(None),
            1 => {
                let n = u16::from_le_bytes(self.array()?);
                Ok(Some(self.take(usize::from(n))?.to_vec()))
            }
            _ => Err(WireError::Tag("text")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::testutil::{Rng, random_record};

    #[test]
    fn random_records_come_back_exactly() {
        let mut rng = Rng::new(0x5eed_1a4e);
        let mut buf = Vec::new();
        for _ in 0..5000 {
            let rec = random_record(&mut rng);
            buf.clear();
            encode(&rec, &mut buf);
            assert_eq!(decode(&buf).as_ref(), Ok(&rec));
        }
    }

    #[test]
    fn every_shortened_or_extended_body_is_refused() {
        let mut rng = Rng::new(7);
        let mut buf = Vec::new();
        for _ in 0..200 {
            let rec = random_record(&mut rng);
            buf.clear();
            encode(&rec, &mut buf);
            for cut in 0..buf.len() {
                assert!(decode(&buf[..cut]).is_err(), "cut at {cut} of {rec:?}");
            }
            buf.push(0);
            assert_eq!(decode(&buf), Err(WireError::Trailing(1)));
        }
    }

    #[test]
    fn a_bad_tag_is_an_error_not_a_record() {
        let rec = random_record(&mut Rng::new(3));
        let mut buf = Vec::new();
        encode(&rec, &mut buf);
        buf[0] = 9;
        assert_eq!(decode(&buf), Err(WireError::Tag("version")));
        buf[0] = VERSION;
        buf[1] = 7;
        assert_eq!(decode(&buf), Err(WireError::Tag("event")));
    }
}
