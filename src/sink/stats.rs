//! Statistics of the sink: the counters the handle and the writer thread
//! share, the [`SinkStats`] read from them, and when the thread's periodic
//! statistics line is due.

use std::fmt;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::SeqCst;
use std::time::{Duration, Instant};

/// Counters of the sink.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SinkStats {
    /// Records in the queue, not yet sent.
    pub waiting: u64,
    /// Records handed to the destination.
    pub written: u64,
    /// Failed send attempts (a record whose send failed is retried).
    pub failed: u64,
    /// Records lost: queue full, or still waiting when ulogd stopped.
    pub dropped: u64,
    /// Records in the on-disk spool, waiting for the destination.
    pub spooled: u64,
    /// Conntrack events the kernel could not hand to ulogd (netlink socket
    /// overruns), each period written into the log as a gap record.
    pub events_lost: u64,
    /// Batches handed to the destination (send attempts): the writer
    /// thread wakes about once per batch.
    pub batches: u64,
    /// Of `written`: records sent where nobody acknowledges them
    /// (`ipfix+udp:`); a collector counts its losses by the IPFIX sequence
    /// numbers.
    pub unacked: u64,
    /// Of `failed`: send attempts that ended because the destination did
    /// not answer within the send timeout (a hung or black-holed server).
    pub timed_out: u64,
    /// The evidence store's accounting, when `store_dir` is set.
    pub store: Option<super::store::StoreStats>,
}

impl fmt::Display for SinkStats {
    /// `stats: waiting=N written=N failed=N dropped=N spooled=N
    /// events_lost=N batches=N[ unacked=N][ timed_out=N][ store_written=N store_failed=N
    /// store_torn_bytes=N store_closed=N]`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "stats: waiting={} written={} failed={} dropped={} spooled={} events_lost={} batches={}",
            self.waiting,
            self.written,
            self.failed,
            self.dropped,
            self.spooled,
            self.events_lost,
            self.batches
        )?;
        if self.unacked > 0 {
            write!(f, " unacked={}", self.unacked)?;
        }
        if self.timed_out > 0 {
            write!(f, " timed_out={}", self.timed_out)?;
        }
        if let Some(s) = &self.store {
            write!(f, " {s}")?;
        }
        Ok(())
    }
}

/// The counters shared by the handle and the thread. `waiting` is derived:
/// records accepted into the queue that are neither written, lost nor
/// spooled yet (the queue plus the batch the thread holds); `spooled` is
/// what the spool held at start plus what went in minus what came out.
#[derive(Debug, Default)]
pub(super) struct Counts {
    /// `submit`: records put into the queue.
    pub(super) accepted: AtomicU64,
    /// `submit`: records refused by a full queue (or a dead thread).
    pub(super) refused: AtomicU64,
    /// The thread: records handed to the destination.
    pub(super) written: AtomicU64,
    /// The thread: failed send attempts.
    pub(super) failed: AtomicU64,
    /// The thread (and `stop`): accepted records that will never be sent.
    pub(super) lost: AtomicU64,
    /// The thread: live records written to the spool.
    pub(super) to_spool: AtomicU64,
    /// The thread: spooled records that are done (written or lost).
    pub(super) spool_done: AtomicU64,
    /// Records the spool held when it was opened (torn ones included).
    pub(super) spool_initial: AtomicU64,
    /// Records a killed run left in the disk lane, taken up at start.
    pub(super) recovered: AtomicU64,
    /// The thread: gap records made (messages that were not submitted).
    pub(super) gaps: AtomicU64,
    /// The thread: conntrack events lost, from the netlink drop counter.
    pub(super) events_lost: AtomicU64,
    /// The thread: send attempts of a batch.
    pub(super) batches: AtomicU64,
    /// The thread: records written without acknowledgement (IPFIX over UDP).
    pub(super) unacked: AtomicU64,
    /// The thread: failed send attempts that timed out.
    pub(super) timed_out: AtomicU64,
    /// The evidence store's own.
    pub(super) store: std::sync::Arc<super::store::StoreCounts>,
}

impl Counts {
    pub(super) fn snapshot(&self) -> SinkStats {
        // What the thread counts is read before `accepted`: every record in
        // `written` or `lost` was accepted before the thread saw it, so
        // `waiting` cannot come out negative. `accepted` and `refused` only
        // move in `submit`, on the caller's thread, so there
        // written + dropped + waiting equals the records submitted.
        let spool_done = self.spool_done.load(SeqCst);
        let written = self.written.load(SeqCst);
        let lost = self.lost.load(SeqCst);
        let to_spool = self.to_spool.load(SeqCst);
        let failed = self.failed.load(SeqCst);
        let refused = self.refused.load(SeqCst);
        let accepted = self.accepted.load(SeqCst);
        let initial = self.spool_initial.load(SeqCst);
        let gaps = self.gaps.load(SeqCst) + self.recovered.load(SeqCst);
        // Live records that ended: every end minus the spooled ones'.
        let live_done = (written + lost).saturating_sub(spool_done);
        SinkStats {
            waiting: (accepted + gaps).saturating_sub(live_done + to_spool),
            written,
            failed,
            dropped: refused + lost,
            spooled: (initial + to_spool).saturating_sub(spool_done),
            events_lost: self.events_lost.load(SeqCst),
            batches: self.batches.load(SeqCst),
            unacked: self.unacked.load(SeqCst),
            timed_out: self.timed_out.load(SeqCst),
            store: self.store.snapshot(),
        }
    }
}

/// When the writer thread's periodic statistics line is due
/// (`stats_interval`; none when it is unset or zero).
pub(super) struct StatsTimer {
    /// The next line, and the interval.
    next: Option<(Instant, Duration)>,
}

impl StatsTimer {
    pub(super) fn new(every: Option<Duration>, now: Instant) -> Self {
        StatsTimer {
            next: every.filter(|d| !d.is_zero()).map(|d| (now + d, d)),
        }
    }

    /// When the next line is due.
    pub(super) fn next(&self) -> Option<Instant> {
        self.next.map(|(due, _)| due)
    }

    /// Whether a line is due at `now`; if so, the next one is scheduled an
    /// interval later (or an interval from now, when the thread fell more
    /// than an interval behind).
    pub(super) fn due(&mut self, now: Instant) -> bool {
        let Some((due, every)) = self.next else {
            return false;
        };
        if now < due {
            return false;
        }
        let next = due + every;
        self.next = Some((if next > now { next } else { now + every }, every));
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_statistics_line_keeps_its_pace_and_never_bunches_up() {
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        let mut timer = StatsTimer::new(Some(10 * s), t0);
        assert_eq!(timer.next(), Some(t0 + 10 * s));
        assert!(!timer.due(t0 + 9 * s));
        // A little late: the next one stays on the grid.
        assert!(timer.due(t0 + 11 * s));
        assert_eq!(timer.next(), Some(t0 + 20 * s));
        // More than an interval late: one line, the next an interval on.
        assert!(timer.due(t0 + 45 * s));
        assert_eq!(timer.next(), Some(t0 + 55 * s));
        assert!(!timer.due(t0 + 46 * s));
    }

    #[test]
    fn no_statistics_line_without_an_interval() {
        let t0 = Instant::now();
        for every in [None, Some(Duration::ZERO)] {
            let mut timer = StatsTimer::new(every, t0);
            assert_eq!(timer.next(), None);
            assert!(!timer.due(t0 + Duration::from_secs(3600)));
        }
    }
}
