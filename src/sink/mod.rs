//! The syslog sink: a writer thread fed by a bounded queue, and the
//! transports (local datagram socket, UDP, TCP with octet counting).

use std::sync::Arc;
use std::time::Duration;

use crate::config::Config;
use crate::record::FlowRecord;

/// Something that wakes ulogd's main thread (a byte into a registered fd).
pub trait Waker: Send + Sync + 'static {
    fn wake(&self);
}

/// How loud a notice is, in ulogd's terms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    Info,
    Notice,
    Error,
}

/// A message from the writer thread for ulogd's log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notice {
    pub level: Level,
    pub message: String,
}

/// Counters of the sink.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Records in the queue, not yet sent.
    pub waiting: u64,
    /// Records handed to the destination.
    pub written: u64,
    /// Failed send attempts (a record whose send failed is retried).
    pub failed: u64,
    /// Records lost: queue full, or still waiting when ulogd stopped.
    pub dropped: u64,
}

/// Why the sink could not start.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("cannot start the writer thread: {0}")]
    Thread(std::io::Error),
}

/// The writer: owns the queue and the thread.
pub struct Writer {}

impl Writer {
    pub fn start(_cfg: &Config, _waker: Arc<dyn Waker>) -> Result<Writer, SinkError> {
        todo!()
    }
    /// Never blocks. `false`: the queue was full and the record was counted
    /// as dropped.
    pub fn submit(&self, _rec: FlowRecord) -> bool {
        todo!()
    }
    /// Notices the writer thread left for ulogd's log; never blocks.
    pub fn take_notices(&self) -> Vec<Notice> {
        todo!()
    }
    pub fn stats(&self) -> Stats {
        todo!()
    }
    /// Sends what is queued for at most `timeout`, then stops the thread;
    /// what could not be sent is counted as dropped.
    pub fn stop(self, _timeout: Duration) -> Stats {
        todo!()
    }
}
