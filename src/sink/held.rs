//! The store's own pace: with an evidence store and no spool, records the
//! forwarding destination cannot take yet (it is down, or slower than the
//! flows) are still taken from the queue, formatted and so stored at once,
//! and their messages wait in memory for the destination, at most a
//! queue's worth (`queue_size`). Past that a message is the destination's
//! loss (counted as dropped; the store holds it), never the store's: the
//! queue keeps draining, so `submit` does not refuse records because the
//! destination is down. With a spool the backlog goes to the spool instead
//! (`spooling`), and the store gets every record as it is spooled.

use std::collections::VecDeque;
use std::sync::atomic::Ordering::SeqCst;
use std::time::Instant;

use super::notices::{Level, REMINDER_INTERVAL};
use super::worker::Worker;
use masqlog_core::record::FlowRecord;

/// Messages formatted (and stored) that wait for the destination, oldest
/// first, with what the destination lost since the last notice.
#[derive(Default)]
pub(super) struct Held {
    msgs: VecDeque<(Vec<u8>, Option<u32>)>,
    /// Messages the destination lost (the store holds them) since the last
    /// notice, and when that notice was.
    lost: u64,
    reported: Option<Instant>,
}

impl Held {
    pub(super) fn is_empty(&self) -> bool {
        self.msgs.is_empty()
    }

    pub(super) fn len(&self) -> usize {
        self.msgs.len()
    }

    pub(super) fn pop(&mut self) -> Option<(Vec<u8>, Option<u32>)> {
        self.msgs.pop_front()
    }
}

impl Worker {
    /// Whether records the destination cannot take are held in memory
    /// while the store takes them: a store, no spool, and a forwarding
    /// destination.
    pub(super) fn holding(&self) -> bool {
        self.formatter.store.is_some()
            && !self.spooler.configured()
            && self.cfg.destination.forwards()
    }

    /// Formats `rec` (which stores it) and holds its message for the
    /// destination; with a queue's worth held already, the destination
    /// loses it (counted, and said at most once per `REMINDER_INTERVAL`).
    pub(super) fn hold_record(&mut self, rec: &FlowRecord) {
        let mut buf = self.batch.buffer();
        if !self.format_into(rec, &mut buf) {
            return;
        }
        if buf.is_empty() {
            // Nothing to send for this event (see `push_live`).
            self.counts.written.fetch_add(1, SeqCst);
            return;
        }
        if self.held.len() < self.inflow.window {
            self.held.msgs.push_back((buf, rec.id));
            return;
        }
        self.counts.lost.fetch_add(1, SeqCst);
        self.held.lost += 1;
        let now = Instant::now();
        if self
            .held
            .reported
            .is_some_and(|t| now.duration_since(t) < REMINDER_INTERVAL)
        {
            return;
        }
        self.held.reported = Some(now);
        let n = std::mem::take(&mut self.held.lost);
        self.outbox.push(
            Level::Error,
            format!(
                "destination {} cannot keep up and {} records wait for it in memory: {n} more are not forwarded (counted as dropped; the store keeps them)",
                self.cfg.destination,
                self.held.len()
            ),
        );
    }

    /// Moves what is queued into the held messages (a few batches at a
    /// time, so that the loop keeps its timers).
    pub(super) fn hold_queued(&mut self) {
        for _ in 0..4 * super::batch::BATCH {
            let Some(rec) = self.inflow.try_next() else {
                break;
            };
            self.hold_record(&rec);
        }
    }

    /// Whether the queue is more than half full while records are held
    /// for the destination instead of waiting in the queue.
    pub(super) fn hold_behind(&self) -> bool {
        self.holding() && self.inflow.len() > self.inflow.window / 2
    }

    /// Stopping: what is held will never be sent.
    pub(super) fn drop_held(&mut self) {
        let n = self.held.msgs.len() as u64;
        self.held.msgs.clear();
        self.counts.lost.fetch_add(n, SeqCst);
    }
}
