//! The library behind the `masqlog` command: answering abuse reports from
//! the logs (`lookup`), port-block NAT (`portblock`) and checking a
//! ulogd.conf (`checkconfig`), with what they share: report times
//! (`when`) and the `--json` writer (`json`). Depends on `masqlog_core`,
//! never on the plugin or the lab.
#![forbid(unsafe_code)]

pub mod access;
pub mod checkconfig;
pub mod db;
pub mod enable;
pub mod json;
pub mod lookup;
pub mod package;
pub mod portblock;
pub mod verify;
pub mod when;
