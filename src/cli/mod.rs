//! The `masqlog` binary's subcommands.

pub mod install;
pub mod lab;
pub mod portblock;
