//! masqlog's core: what a flow record is, the line formats and their
//! readers, the configuration and ulogd key table, the one clock, and IDENT
//! (RFC 1413). Plain types that know nothing of C: the plugin, the command
//! and the lab all build on it, and none of it may use `unsafe`.
#![forbid(unsafe_code)]

pub mod config;
pub mod format;
pub mod ident;
pub mod ipfix;
pub mod keys;
pub mod pgrow;
pub mod process;
pub mod record;
pub mod seal;
pub mod spool_files;
pub mod store;
pub mod time;
pub mod ulogd_conf;
pub mod wake;
pub mod wire;
