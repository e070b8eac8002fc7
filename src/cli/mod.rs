//! The `masqlog` binary's subcommands.

pub mod install;
