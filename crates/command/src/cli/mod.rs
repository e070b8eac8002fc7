//! The `masqlog` binary's subcommands.

pub mod checkconfig;
pub mod db;
pub mod enable;
pub mod gendocs;
pub mod index;
pub mod install;
pub mod keygen;
pub mod lab;
pub mod lookup;
pub mod man5;
pub mod portblock;
pub mod verify;
