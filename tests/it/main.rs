//! End-to-end tests: stock ulogd with the built plugin, a real rsyslog,
//! the kernel's NAT and conntrack in network namespaces (`masqlog_lab`).
//!
//! They need root and `ip netns`; elsewhere each test prints why it skips
//! and passes. The plugin is `target/<profile>/libmasqlog.so`, found next
//! to this test binary (or `$MASQLOG_SO`).

mod bad_config;
mod bad_input;
mod checkconfig;
mod cli;
mod flows;
mod forensics;
mod harness;
mod ident;
mod info;
mod ipfix;
mod oracle;
mod outage;
mod package;
mod pg;
mod privacy;
mod reliability;
mod store;
mod trust;
mod version;
