//! The line formats: pure functions from a `FlowRecord` to the bytes of one
//! syslog message (text key=value, RFC 5424 structured data, JSON).

use crate::config::Format;
use crate::record::{FlowRecord, Timestamp};

/// The version of the line format, written into every line.
pub const FORMAT_VERSION: u32 = 1;

/// The syslog header fields of one message.
#[derive(Clone, Copy, Debug)]
pub struct Header<'a> {
    /// facility * 8 + severity
    pub pri: u8,
    /// When the message was written.
    pub timestamp: Timestamp,
    /// Written for remote destinations; `None` leaves it out (local socket).
    pub hostname: Option<&'a str>,
    /// TAG / APP-NAME
    pub app: &'a str,
    pub pid: u32,
}

/// Appends one complete syslog message (header and body, no trailing newline)
/// for `rec` in `format` to `out`.
pub fn write_syslog(_format: Format, _hdr: &Header<'_>, _rec: &FlowRecord, _out: &mut Vec<u8>) {
    todo!()
}
