//! `ulogd_output_MASQLOG.so`: the output plugin stock ulogd2 loads (through
//! the C shim in `c-shim/`) to log every translated conntrack flow.
//!
//! What a flow is, how it is written and configured lives in
//! `masqlog_core`; this crate is what runs inside ulogd: the FFI edge
//! (`ffi`, the only module allowed `unsafe`), one instance (`plugin`), and
//! the writer thread with its transports and spool (`sink`).
#![deny(unsafe_code)]

pub mod ffi;
pub mod plugin;
pub mod sink;
