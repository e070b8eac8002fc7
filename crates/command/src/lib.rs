//! The library behind the `masqlog` command: answering abuse reports from
//! the logs (`lookup`), port-block NAT (`portblock`) and checking a
//! ulogd.conf (`checkconfig`), with the report times they share
//! (`when`). Depends on `masqlog_core`, never on the plugin or the lab.
#![forbid(unsafe_code)]

pub mod checkconfig;
pub mod lookup;
pub mod portblock;
pub mod when;
