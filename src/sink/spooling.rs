//! Spool policy: when records go to the on-disk spool instead of the
//! destination, and how they come back. A live batch whose send failed goes
//! there, and so does every record after it, until the spool is replayed in
//! order; so does the backlog behind a destination slower than the flows,
//! and what is left in memory at stop. The spool itself is `spool`.

use std::sync::Arc;
use std::sync::atomic::Ordering::SeqCst;
use std::time::Instant;

use super::batch::{BATCH, Batch};
use super::notices::{Level, Outbox, REMINDER_INTERVAL, describe};
use super::spool::Spool;
use super::stats::Counts;
use super::worker::Worker;
use masqlog_core::config::Destination;
use masqlog_core::record::FlowRecord;

/// Room the spool must have before a record is taken from the queue for it.
const SPOOL_ROOM: usize = 16 << 10;

/// Records lost because the spool refused them, since the last notice.
#[derive(Default)]
struct SpoolLoss {
    count: u64,
    last_error: String,
    reported: Option<Instant>,
}

/// The spool as the writer thread uses it: what goes in and comes out is
/// counted, what it refuses is reported.
pub(super) struct Spooler {
    /// `None`: no spool configured (or switched off after a read error);
    /// the head of the line waits in memory.
    spool: Option<Spool>,
    counts: Arc<Counts>,
    loss: SpoolLoss,
    /// When the backlog last went to the spool (for the notice).
    spilled: Option<Instant>,
}

impl Spooler {
    pub(super) fn new(spool: Option<Spool>, counts: Arc<Counts>) -> Self {
        Spooler {
            spool,
            counts,
            loss: SpoolLoss::default(),
            spilled: None,
        }
    }

    /// Whether there is a spool.
    pub(super) fn configured(&self) -> bool {
        self.spool.is_some()
    }

    /// Whether records go through the spool now (it holds records).
    pub(super) fn holds_records(&self) -> bool {
        self.spool.as_ref().is_some_and(|s| !s.is_empty())
    }

    /// Whether the spool has room for a record taken from the queue.
    pub(super) fn has_room(&self) -> bool {
        self.spool.as_ref().is_some_and(|s| s.has_room(SPOOL_ROOM))
    }

    /// The records the spool holds.
    pub(super) fn records(&self) -> u64 {
        self.spool.as_ref().map_or(0, Spool::records)
    }

    /// Appends one formatted live message; without a spool, or when the
    /// spool refuses it, it counts as lost.
    pub(super) fn append(&mut self, msg: &[u8], id: Option<u32>, outbox: &mut Outbox) {
        let Some(spool) = self.spool.as_mut() else {
            self.counts.lost.fetch_add(1, SeqCst);
            return;
        };
        match spool.append(msg) {
            Ok(()) => {
                self.counts.to_spool.fetch_add(1, SeqCst);
            }
            Err(e) => {
                // This record, and any buffered before it that a failed
                // write took with it (those counted as spooled already).
                let earlier = spool.take_lost();
                self.counts.spool_done.fetch_add(earlier, SeqCst);
                self.counts.lost.fetch_add(1 + earlier, SeqCst);
                self.lost(1 + earlier, &format!("{} {e}", describe(id)), outbox);
            }
        }
    }

    /// Writes appended records to the spool file (and syncs per policy).
    pub(super) fn flush(&mut self, outbox: &mut Outbox) {
        self.flush_with(false, outbox);
    }

    /// Writes appended records to the spool file and syncs it.
    pub(super) fn sync(&mut self, outbox: &mut Outbox) {
        self.flush_with(true, outbox);
    }

    fn flush_with(&mut self, sync: bool, outbox: &mut Outbox) {
        let Some(spool) = self.spool.as_mut() else {
            return;
        };
        let r = if sync { spool.sync() } else { spool.flush() };
        if let Err(e) = r {
            let n = spool.take_lost();
            self.counts.spool_done.fetch_add(n, SeqCst);
            self.counts.lost.fetch_add(n, SeqCst);
            self.lost(n, &e.to_string(), outbox);
        }
    }

    /// The first `n` spooled records are done with (delivered, or refused
    /// by the destination).
    pub(super) fn consume(&mut self, n: usize, outbox: &mut Outbox) {
        self.counts.spool_done.fetch_add(n as u64, SeqCst);
        if let Some(spool) = self.spool.as_mut()
            && let Err(e) = spool.consume(n)
        {
            // The records went out; only the mark of it failed: after a
            // restart they would be sent a second time.
            outbox.push(
                Level::Error,
                format!("cannot record delivery in the spool: {e}; a restart may send these records again"),
            );
        }
    }

    /// Reads the next batch from the spool (the replay).
    pub(super) fn fill(&mut self, batch: &mut Batch, outbox: &mut Outbox) {
        let Some(spool) = self.spool.as_mut() else {
            return;
        };
        batch.from_spool = true;
        match spool.peek(BATCH, &mut batch.msgs) {
            Ok(n) => batch.ids.extend(std::iter::repeat_n(None, n)),
            Err(e) => {
                // Unreadable: what it holds cannot be sent; say so and go on
                // with a fresh spool (the files stay for inspection).
                let left = spool.records();
                self.counts.spool_done.fetch_add(left, SeqCst);
                self.counts.lost.fetch_add(left, SeqCst);
                outbox.push(
                    Level::Error,
                    format!("{left} spooled records dropped: {e}; the spool is switched off"),
                );
                self.spool = None;
            }
        }
        if batch.is_empty() {
            batch.from_spool = false;
        }
    }

    /// Reports records the spool refused: at once, then at most once per
    /// `REMINDER_INTERVAL` with the count since.
    fn lost(&mut self, n: u64, why: &str, outbox: &mut Outbox) {
        let loss = &mut self.loss;
        loss.count += n;
        loss.last_error = why.to_string();
        let now = Instant::now();
        if loss
            .reported
            .is_some_and(|t| now.duration_since(t) < REMINDER_INTERVAL)
        {
            return;
        }
        let msg = format!(
            "{} flow records dropped: the spool refused them (last: {})",
            loss.count, loss.last_error
        );
        loss.count = 0;
        loss.reported = Some(now);
        outbox.push(Level::Error, msg);
    }

    /// Says (at most once per `REMINDER_INTERVAL`) that the backlog goes
    /// to the spool.
    fn spill_notice(&mut self, destination: &Destination, queued: usize, outbox: &mut Outbox) {
        let now = Instant::now();
        if self
            .spilled
            .is_some_and(|t| now.duration_since(t) < REMINDER_INTERVAL)
        {
            return;
        }
        self.spilled = Some(now);
        outbox.push(
            Level::Notice,
            format!(
                "destination {destination} is slower than the flows: {queued} records queued, the backlog goes to the spool"
            ),
        );
    }
}

impl Worker {
    /// Whether the queue is more than half full and a spool with room could
    /// take the backlog.
    pub(super) fn behind(&self) -> bool {
        self.inflow.len() > self.inflow.window / 2 && self.spooler.has_room()
    }

    /// Says (at most once per `REMINDER_INTERVAL`) that the backlog goes
    /// to the spool.
    pub(super) fn spill_notice(&mut self) {
        self.spooler
            .spill_notice(&self.cfg.destination, self.inflow.len(), &mut self.outbox);
    }

    /// Moves queued records into the spool while it has room.
    pub(super) fn spool_queued(&mut self) {
        let mut n = 0;
        while n < 4 * BATCH && self.spooler.has_room() {
            let Some(rec) = self.inflow.try_next() else {
                break;
            };
            self.spool_record(&rec);
            n += 1;
        }
        self.spooler.flush(&mut self.outbox);
    }

    /// Appends the live batch to the spool (without a spool: counts it as
    /// lost) and empties it.
    pub(super) fn spool_batch(&mut self) {
        let msgs = std::mem::take(&mut self.batch.msgs);
        let ids = std::mem::take(&mut self.batch.ids);
        for (m, id) in msgs.iter().zip(ids) {
            self.spooler.append(m, id, &mut self.outbox);
        }
        self.batch.msgs = msgs;
        self.batch.advance(usize::MAX);
    }

    /// Formats `rec` and appends it to the spool.
    pub(super) fn spool_record(&mut self, rec: &FlowRecord) {
        let mut buf = self.batch.buffer();
        if self.format_into(rec, &mut buf) {
            self.spooler.append(&buf, rec.id, &mut self.outbox);
        }
        self.batch.spare.push(buf);
    }

    /// Stopping (or crashed): what is in memory goes to the spool when there
    /// is one; what cannot be kept is counted as lost. Returns how many were
    /// lost.
    pub(super) fn give_up(&mut self) -> u64 {
        // The run does not end cleanly: the mark is a checkpoint.
        if let Some(s) = &mut self.formatter.sealer {
            s.mark(false);
        }
        let lost_before = self.counts.lost.load(SeqCst);
        if !self.batch.from_spool {
            self.spool_batch();
        }
        // A replayed batch is still in the spool.
        self.batch = Batch::default();
        self.drop_held();
        for g in std::mem::take(&mut self.gaps) {
            self.spooler.append(&g, None, &mut self.outbox);
        }
        // The queue, then the lane (nothing new comes: the handle closed
        // both, or the thread is going down after a panic).
        // With a store, every record is formatted (and so stored) even when
        // the destination loses it.
        let format = self.spooler.configured() || self.formatter.store.is_some();
        while let Some(rec) = self.inflow.try_next() {
            if format {
                self.spool_record(&rec);
            } else {
                self.counts.lost.fetch_add(1, SeqCst);
            }
        }
        self.spooler.sync(&mut self.outbox);
        self.close_lane();
        if self.spooler.holds_records() {
            self.outbox.push(
                Level::Notice,
                format!(
                    "{} records kept in the spool; they are sent first when the plugin starts again",
                    self.spooler.records()
                ),
            );
        }
        self.counts.lost.load(SeqCst) - lost_before
    }
}
