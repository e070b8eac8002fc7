//! masqlog: NAT flow logging for ulogd2 and the forensics that answer
//! "who was public ip:port at time T".
//!
//! The crate is both the `ulogd_output_MASQLOG.so` plugin (a `cdylib` loaded
//! by stock ulogd2 through the C shim in `c-shim/`) and the library behind
//! the `masqlog` command. Only `ffi` may use `unsafe`.
#![deny(unsafe_code)]

pub mod checkconfig;
pub mod config;
pub mod ffi;
pub mod format;
pub mod ident;
pub mod keys;
pub mod lab;
pub mod lookup;
pub mod plugin;
pub mod portblock;
pub mod record;
pub mod sink;
pub mod time;
