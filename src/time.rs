//! Calendar arithmetic for UTC timestamps (RFC 3339 with microseconds and
//! the RFC 3164 "Mmm dd hh:mm:ss" form), without a time-zone database.

use crate::record::Timestamp;

/// Appends `YYYY-MM-DDTHH:MM:SS.uuuuuuZ`.
pub fn write_rfc3339_micros(_t: Timestamp, _out: &mut Vec<u8>) {
    todo!()
}

/// Appends `Mmm dd hh:mm:ss` (UTC), the RFC 3164 timestamp.
pub fn write_rfc3164(_t: Timestamp, _out: &mut Vec<u8>) {
    todo!()
}
