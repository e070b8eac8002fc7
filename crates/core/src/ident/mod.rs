//! RFC 1413 IDENT lookups: which user on an inside host owns a TCP flow.
//!
//! Three rooms: [`reply`] parses an identd's answer (pure, fuzzed), [`query`](mod@query)
//! asks one identd over one bounded connection (plain or transparent, see its
//! documentation for the router setup), and [`pool`] runs queries on worker
//! threads behind a bounded queue, so that ulogd's main thread never waits
//! on the network.
//!
//! This revives what the 2.2-era "IP Masquerade Log" kernel patch did with a
//! process per connection, with the limits it lacked: a fixed number of
//! workers, a bounded queue that drops (and counts) instead of growing, a cap
//! per inside host, and a deadline on every query. As that patch's author
//! warned, an answer is only as trustworthy as the inside host: whoever is
//! root there can make its identd say anything. The user-id is untrusted
//! bytes and must be escaped by whoever writes it out.

pub mod pool;
pub mod query;
pub mod reply;

#[cfg(test)]
mod fake;

pub use pool::{IdentStats, Latency, Pool, PoolConfig};
pub use query::{Mode, Outcome, Query, QueryConfig, check_transparent_capability, query};
pub use reply::{IdentReply, ProtocolError, parse_reply};

/// Why IDENT lookups cannot start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IdentError {
    #[error(
        "IP_TRANSPARENT is not permitted: transparent ident queries need CAP_NET_ADMIN or \
         CAP_NET_RAW (ulogd started with -u has dropped them; run it as root or use plain mode)"
    )]
    TransparentNotPermitted,
    #[error("cannot check IP_TRANSPARENT: {0}")]
    TransparentCheck(std::io::Error),
    #[error("cannot start ident worker thread {name}: {source}")]
    Thread {
        name: String,
        source: std::io::Error,
    },
    #[error("invalid ident setting {key}={value}: {why}")]
    InvalidConfig {
        key: &'static str,
        value: String,
        why: &'static str,
    },
}
