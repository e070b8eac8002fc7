//! IPFIX (RFC 7011) encoding of NAT session events (RFC 8158): the
//! templates, one data record per [`FlowRecord`], and the message framing
//! (header, template set, data sets). Pure functions over byte buffers; the
//! plugin's IPFIX transport assigns sequence numbers and sends.
//!
//! A record is encoded on its own as `TEMPLATE_ID (2 bytes) || DATA RECORD`
//! ([`encode_record`]): that is what the writer queues and spools, and what
//! [`MessageBuilder`] packs into messages, several records of one template
//! into one data set.

use std::net::IpAddr;

use crate::record::{Event, FlowRecord, IdentStatus, Timestamp};

/// IPFIX version number in the message header.
pub const VERSION: u16 = 10;
/// The message header: version, length, export time, sequence, domain.
pub const HEADER_LEN: usize = 16;
/// A set header: set id and length.
pub const SET_HEADER_LEN: usize = 4;
/// The set id of a template set.
pub const TEMPLATE_SET_ID: u16 = 2;
/// The first template id (and data set id) masqlog uses.
pub const FIRST_TEMPLATE: u16 = 256;
/// How many templates there are: IPv4/IPv6 x create/delete x with/without
/// userName.
pub const TEMPLATES: u16 = 8;
/// The private enterprise number of RFC 5103's reverse information
/// elements.
pub const REVERSE_PEN: u32 = 29305;
/// What replaces the tail of a user name cut to fit a message.
pub const TRUNCATION_MARKER: &str = "...";

/// natEvent values of the IANA registry (RFC 8158 section 4.1).
pub mod nat_event {
    /// "NAT translation create (Historic)": used for NAT66, which has no
    /// event of its own.
    pub const TRANSLATION_CREATE: u8 = 1;
    /// "NAT translation delete (Historic)": NAT66 delete.
    pub const TRANSLATION_DELETE: u8 = 2;
    pub const NAT44_SESSION_CREATE: u8 = 4;
    pub const NAT44_SESSION_DELETE: u8 = 5;
}

/// Information element ids (IANA "IPFIX Information Elements").
pub mod ie {
    pub const OCTET_DELTA_COUNT: u16 = 1;
    pub const PACKET_DELTA_COUNT: u16 = 2;
    pub const PROTOCOL_IDENTIFIER: u16 = 4;
    pub const SOURCE_TRANSPORT_PORT: u16 = 7;
    pub const SOURCE_IPV4_ADDRESS: u16 = 8;
    pub const DESTINATION_TRANSPORT_PORT: u16 = 11;
    pub const DESTINATION_IPV4_ADDRESS: u16 = 12;
    pub const SOURCE_IPV6_ADDRESS: u16 = 27;
    pub const DESTINATION_IPV6_ADDRESS: u16 = 28;
    pub const FLOW_ID: u16 = 148;
    pub const FLOW_START_MILLISECONDS: u16 = 152;
    pub const FLOW_END_MILLISECONDS: u16 = 153;
    pub const POST_NAT_SOURCE_IPV4_ADDRESS: u16 = 225;
    pub const POST_NAT_DESTINATION_IPV4_ADDRESS: u16 = 226;
    pub const POST_NAPT_SOURCE_TRANSPORT_PORT: u16 = 227;
    pub const POST_NAPT_DESTINATION_TRANSPORT_PORT: u16 = 228;
    pub const NAT_EVENT: u16 = 230;
    pub const POST_NAT_SOURCE_IPV6_ADDRESS: u16 = 281;
    pub const POST_NAT_DESTINATION_IPV6_ADDRESS: u16 = 282;
    pub const OBSERVATION_TIME_MILLISECONDS: u16 = 323;
    pub const USER_NAME: u16 = 371;
    pub const NAT_INSTANCE_ID: u16 = 463;
}

/// Variable length in a template field specifier (RFC 7011 section 7).
const VARLEN: u16 = 0xffff;

/// One field specifier: element id, length, enterprise number (0: IANA).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Field {
    pub id: u16,
    pub len: u16,
    pub pen: u32,
}

const fn f(id: u16, len: u16) -> Field {
    Field { id, len, pen: 0 }
}

/// The shape of a record, which picks its template.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shape {
    pub v6: bool,
    /// A delete event: end time and counters.
    pub delete: bool,
    pub user: bool,
}

impl Shape {
    /// The template id of this shape.
    pub fn template_id(self) -> u16 {
        FIRST_TEMPLATE + u16::from(self.v6) + 2 * u16::from(self.delete) + 4 * u16::from(self.user)
    }

    /// The shape of a template id; `None` for an id masqlog does not use.
    pub fn from_template_id(id: u16) -> Option<Shape> {
        let bits = id.checked_sub(FIRST_TEMPLATE).filter(|b| *b < TEMPLATES)?;
        Some(Shape {
            v6: bits & 1 != 0,
            delete: bits & 2 != 0,
            user: bits & 4 != 0,
        })
    }

    /// The template's fields, in record order.
    pub fn fields(self) -> Vec<Field> {
        let (src, dst, post_src, post_dst, alen) = if self.v6 {
            (
                ie::SOURCE_IPV6_ADDRESS,
                ie::DESTINATION_IPV6_ADDRESS,
                ie::POST_NAT_SOURCE_IPV6_ADDRESS,
                ie::POST_NAT_DESTINATION_IPV6_ADDRESS,
                16,
            )
        } else {
            (
                ie::SOURCE_IPV4_ADDRESS,
                ie::DESTINATION_IPV4_ADDRESS,
                ie::POST_NAT_SOURCE_IPV4_ADDRESS,
                ie::POST_NAT_DESTINATION_IPV4_ADDRESS,
                4,
            )
        };
        let mut v = vec![
            f(ie::OBSERVATION_TIME_MILLISECONDS, 8),
            f(ie::FLOW_START_MILLISECONDS, 8),
        ];
        if self.delete {
            v.push(f(ie::FLOW_END_MILLISECONDS, 8));
        }
        v.extend([
            f(ie::NAT_EVENT, 1),
            f(ie::PROTOCOL_IDENTIFIER, 1),
            f(src, alen),
            f(ie::SOURCE_TRANSPORT_PORT, 2),
            f(dst, alen),
            f(ie::DESTINATION_TRANSPORT_PORT, 2),
            f(post_src, alen),
            f(ie::POST_NAPT_SOURCE_TRANSPORT_PORT, 2),
            f(post_dst, alen),
            f(ie::POST_NAPT_DESTINATION_TRANSPORT_PORT, 2),
            f(ie::NAT_INSTANCE_ID, 4),
            f(ie::FLOW_ID, 8),
        ]);
        if self.delete {
            v.extend([
                f(ie::OCTET_DELTA_COUNT, 8),
                f(ie::PACKET_DELTA_COUNT, 8),
                Field {
                    id: ie::OCTET_DELTA_COUNT,
                    len: 8,
                    pen: REVERSE_PEN,
                },
                Field {
                    id: ie::PACKET_DELTA_COUNT,
                    len: 8,
                    pen: REVERSE_PEN,
                },
            ]);
        }
        if self.user {
            v.push(f(ie::USER_NAME, VARLEN));
        }
        v
    }

    /// The bytes of a data record of this shape without the user name (and
    /// its length prefix).
    pub fn fixed_len(self) -> usize {
        self.fields()
            .iter()
            .filter(|f| f.len != VARLEN)
            .map(|f| usize::from(f.len))
            .sum()
    }
}

/// Appends the template record of `shape` (template id, field count, field
/// specifiers; RFC 7011 section 3.4.1) to `out`.
pub fn write_template(shape: Shape, out: &mut Vec<u8>) {
    let fields = shape.fields();
    out.extend_from_slice(&shape.template_id().to_be_bytes());
    out.extend_from_slice(&(fields.len() as u16).to_be_bytes());
    for fl in fields {
        if fl.pen == 0 {
            out.extend_from_slice(&fl.id.to_be_bytes());
            out.extend_from_slice(&fl.len.to_be_bytes());
        } else {
            out.extend_from_slice(&(fl.id | 0x8000).to_be_bytes());
            out.extend_from_slice(&fl.len.to_be_bytes());
            out.extend_from_slice(&fl.pen.to_be_bytes());
        }
    }
}

/// The length of `shape`'s template record.
pub fn template_len(shape: Shape) -> usize {
    4 + shape
        .fields()
        .iter()
        .map(|f| if f.pen == 0 { 4 } else { 8 })
        .sum::<usize>()
}

/// What every record of an exporter carries besides the flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Exporter {
    /// natInstanceID.
    pub instance: u32,
    /// The largest message: a record longer than one message less the
    /// header and a set header has its user name cut.
    pub max_message: usize,
}

/// Milliseconds since the epoch, 0 for none (and before 1970).
fn millis(t: Option<Timestamp>) -> u64 {
    t.map_or(0, |t| u64::try_from(t.as_micros() / 1000).unwrap_or(0))
}

fn put_addr(ip: IpAddr, v6: bool, out: &mut Vec<u8>) {
    match (ip, v6) {
        (IpAddr::V4(a), false) => out.extend_from_slice(&a.octets()),
        (IpAddr::V6(a), true) => out.extend_from_slice(&a.octets()),
        (IpAddr::V4(a), true) => out.extend_from_slice(&a.to_ipv6_mapped().octets()),
        // An IPv6 address in an IPv4 record cannot happen (the client
        // decides the family); unspecified rather than a panic.
        (IpAddr::V6(a), false) => {
            out.extend_from_slice(&a.to_ipv4_mapped().map_or([0; 4], |a| a.octets()))
        }
    }
}

/// The user name a record carries: IDENT's `USERID` answer, as UTF-8
/// (invalid bytes replaced), cut at a character boundary to `max` bytes
/// with [`TRUNCATION_MARKER`] at the end when longer.
pub fn user_name(user: &[u8], max: usize) -> String {
    let s = String::from_utf8_lossy(user);
    if s.len() <= max {
        return s.into_owned();
    }
    let keep = max.saturating_sub(TRUNCATION_MARKER.len());
    let mut cut = keep;
    while cut > 0 && !s.is_char_boundary(cut) {
        cut -= 1;
    }
    let mut out = String::with_capacity(cut + TRUNCATION_MARKER.len());
    out.push_str(&s[..cut]);
    if max >= TRUNCATION_MARKER.len() {
        out.push_str(TRUNCATION_MARKER);
    }
    out
}

/// Appends a variable-length field (RFC 7011 section 7): one length byte
/// below 255, else 255 and two length bytes.
pub fn put_varlen(value: &[u8], out: &mut Vec<u8>) {
    if value.len() < 255 {
        out.push(value.len() as u8);
    } else {
        out.push(255);
        out.extend_from_slice(&(value.len().min(65_535) as u16).to_be_bytes());
    }
    out.extend_from_slice(&value[..value.len().min(65_535)]);
}

/// The user a record carries: only a `USERID` answer.
fn record_user(rec: &FlowRecord) -> Option<&[u8]> {
    let id = rec.ident.as_ref()?;
    (id.status == IdentStatus::User)
        .then_some(id.user.as_deref())
        .flatten()
}

/// Encodes `rec` as `TEMPLATE_ID || DATA RECORD` into `out` (cleared
/// first), stamped `now` when it is an IDENT answer. Records that are no
/// NAT session event leave `out` empty: updates, and IDENT outcomes other
/// than a user (a user answer is sent as a second create event that
/// carries userName, since the first went out before the answer came).
pub fn encode_record(rec: &FlowRecord, exp: &Exporter, now: Timestamp, out: &mut Vec<u8>) {
    out.clear();
    let user = record_user(rec);
    let (delete, observed) = match rec.event {
        Event::Start => (false, rec.start.unwrap_or(now)),
        Event::End => (true, rec.end.unwrap_or(now)),
        Event::Ident if user.is_some() => (false, now),
        Event::Ident | Event::Update => return,
    };
    let v6 = rec.client.ip.is_ipv6() && rec.masq.ip.is_ipv6();
    let shape = Shape {
        v6,
        delete,
        user: user.is_some(),
    };
    let event = match (v6, delete) {
        (false, false) => nat_event::NAT44_SESSION_CREATE,
        (false, true) => nat_event::NAT44_SESSION_DELETE,
        (true, false) => nat_event::TRANSLATION_CREATE,
        (true, true) => nat_event::TRANSLATION_DELETE,
    };
    out.extend_from_slice(&shape.template_id().to_be_bytes());
    out.extend_from_slice(&millis(Some(observed)).to_be_bytes());
    out.extend_from_slice(&millis(rec.start).to_be_bytes());
    if delete {
        out.extend_from_slice(&millis(rec.end).to_be_bytes());
    }
    out.push(event);
    out.push(rec.proto.number());
    let unspecified: IpAddr = if v6 {
        std::net::Ipv6Addr::UNSPECIFIED.into()
    } else {
        std::net::Ipv4Addr::UNSPECIFIED.into()
    };
    let remote = rec.remote.endpoint();
    let (remote_ip, remote_port) = remote.map_or((unspecified, 0), |r| (r.ip, r.port.unwrap_or(0)));
    let port = |p: Option<u16>| p.unwrap_or(0);
    // Pre-NAT and post-NAT as the packets of the initiator look on either
    // side of the router.
    let (src, dst, post_src, post_dst) = match rec.nat {
        crate::record::NatKind::Snat => (
            (rec.client.ip, port(rec.client.port)),
            (remote_ip, remote_port),
            (rec.masq.ip, port(rec.masq.port)),
            (remote_ip, remote_port),
        ),
        crate::record::NatKind::Dnat => (
            (remote_ip, remote_port),
            (rec.masq.ip, port(rec.masq.port)),
            (remote_ip, remote_port),
            (rec.client.ip, port(rec.client.port)),
        ),
    };
    for (ip, p) in [src, dst, post_src, post_dst] {
        put_addr(ip, v6, out);
        out.extend_from_slice(&p.to_be_bytes());
    }
    out.extend_from_slice(&exp.instance.to_be_bytes());
    out.extend_from_slice(&u64::from(rec.id.unwrap_or(0)).to_be_bytes());
    if delete {
        let o = rec.out.unwrap_or_default();
        let i = rec.inbound.unwrap_or_default();
        for n in [o.bytes, o.packets, i.bytes, i.packets] {
            out.extend_from_slice(&n.to_be_bytes());
        }
    }
    if let Some(user) = user {
        let room = exp
            .max_message
            .saturating_sub(HEADER_LEN + SET_HEADER_LEN + shape.fixed_len());
        // The length prefix: 1 byte below 255, else 3.
        let max = if room > 255 {
            room - 3
        } else {
            room.saturating_sub(1).min(254)
        };
        let name = user_name(user, max.min(65_535));
        put_varlen(name.as_bytes(), out);
    }
}

/// Packs encoded records into IPFIX messages of at most `max` bytes:
/// templates first where asked, then data sets (one per run of records of
/// one template). A record is never split across messages.
#[derive(Debug)]
pub struct MessageBuilder {
    max: usize,
    buf: Vec<u8>,
    /// Where the open data set starts, and its template id.
    open_set: Option<(usize, u16)>,
    records: u32,
}

impl MessageBuilder {
    /// A builder of messages of at most `max` bytes (at least 256).
    pub fn new(max: usize) -> Self {
        MessageBuilder {
            max: max.clamp(256, 65_535),
            buf: Vec::with_capacity(max),
            open_set: None,
            records: 0,
        }
    }

    /// Starts an empty message.
    pub fn clear(&mut self) {
        self.buf.clear();
        self.buf.resize(HEADER_LEN, 0);
        self.open_set = None;
        self.records = 0;
    }

    /// Whether the message holds nothing but its header.
    pub fn is_empty(&self) -> bool {
        self.buf.len() <= HEADER_LEN
    }

    /// Data records in the message.
    pub fn records(&self) -> u32 {
        self.records
    }

    fn close_set(&mut self) {
        if let Some((start, _)) = self.open_set.take() {
            let len = (self.buf.len() - start) as u16;
            self.buf[start + 2..start + 4].copy_from_slice(&len.to_be_bytes());
        }
    }

    /// Adds a template set with `shapes`; `false` (and nothing added) when
    /// it does not fit.
    pub fn add_templates(&mut self, shapes: &[Shape]) -> bool {
        if self.buf.is_empty() {
            self.clear();
        }
        let len = SET_HEADER_LEN + shapes.iter().map(|s| template_len(*s)).sum::<usize>();
        if self.buf.len() + len > self.max {
            return false;
        }
        self.close_set();
        self.buf.extend_from_slice(&TEMPLATE_SET_ID.to_be_bytes());
        self.buf.extend_from_slice(&(len as u16).to_be_bytes());
        for s in shapes {
            write_template(*s, &mut self.buf);
        }
        true
    }

    /// Adds one encoded record (`TEMPLATE_ID || DATA RECORD`); `false` (and
    /// nothing added) when it does not fit. Padding is never added.
    pub fn add_record(&mut self, encoded: &[u8]) -> bool {
        if self.buf.is_empty() {
            self.clear();
        }
        let Some((tid, data)) = encoded.split_first_chunk::<2>() else {
            return true;
        };
        let tid = u16::from_be_bytes(*tid);
        let same = matches!(self.open_set, Some((_, t)) if t == tid);
        let need = data.len() + if same { 0 } else { SET_HEADER_LEN };
        if self.buf.len() + need > self.max {
            return false;
        }
        if !same {
            self.close_set();
            self.open_set = Some((self.buf.len(), tid));
            self.buf.extend_from_slice(&tid.to_be_bytes());
            self.buf.extend_from_slice(&[0, 0]);
        }
        self.buf.extend_from_slice(data);
        self.records += 1;
        true
    }

    /// The message with its header filled in: export time (seconds since
    /// the epoch), the sequence number (data records sent before this
    /// message in this session) and the observation domain.
    pub fn finish(&mut self, export_secs: u32, sequence: u32, domain: u32) -> &[u8] {
        self.close_set();
        if self.buf.len() < HEADER_LEN {
            self.clear();
        }
        let len = self.buf.len() as u16;
        self.buf[0..2].copy_from_slice(&VERSION.to_be_bytes());
        self.buf[2..4].copy_from_slice(&len.to_be_bytes());
        self.buf[4..8].copy_from_slice(&export_secs.to_be_bytes());
        self.buf[8..12].copy_from_slice(&sequence.to_be_bytes());
        self.buf[12..16].copy_from_slice(&domain.to_be_bytes());
        &self.buf
    }
}

/// The template shape of an encoded record; `None` when it is empty or not
/// one of masqlog's.
pub fn shape_of(encoded: &[u8]) -> Option<Shape> {
    let (tid, _) = encoded.split_first_chunk::<2>()?;
    Shape::from_template_id(u16::from_be_bytes(*tid))
}

#[cfg(test)]
mod tests;
