//! Gap records: the writer thread watches the netlink drop counter (see
//! `drops`) and, when it grew, writes a gap record into the stream ahead of
//! the records that follow, and tells ulogd's log.

use std::sync::atomic::Ordering::SeqCst;
use std::time::{Duration, Instant};

use super::notices::Level;
use super::worker::Worker;
use masqlog_core::format::gap::Gap;
use masqlog_core::record::Timestamp;

/// How often the netlink drop counter is read for gap records.
const DROP_CHECK: Duration = Duration::from_secs(1);

/// The notice when the drop counter cannot be read.
pub(super) const UNREADABLE_DROPS: &str =
    "cannot read /proc/self/net/netlink: lost conntrack events will not be recorded as gaps";
/// Gap records that may wait in memory for the destination (no spool).
const MAX_GAPS_WAITING: usize = 1024;

/// The drop counter of ulogd's netlink sockets, as last read.
pub(super) struct DropWatch {
    /// `None` until the first reading (the baseline).
    last: Option<u64>,
    /// When `last` was read: the start of any gap found next.
    at: Timestamp,
    next: Instant,
    /// /proc could not be read (said once).
    unreadable: bool,
}

/// What one look at the drop counter found.
#[derive(Debug, PartialEq)]
pub(super) enum Reading {
    /// Not due, no growth, or the baseline.
    Nothing,
    /// The counter cannot be read; it is not read again.
    Unreadable,
    /// Events were lost since the last reading.
    Gap(Gap),
}

impl DropWatch {
    pub(super) fn new(now: Instant) -> Self {
        DropWatch {
            last: None,
            at: Timestamp::now(),
            next: now,
            unreadable: false,
        }
    }

    /// A watch whose baseline is read at once with `read` (what it found:
    /// `Nothing`, or `Unreadable`): events lost between now and the first
    /// periodic check are a gap, however late that check comes.
    pub(super) fn started(now: Instant, read: impl FnOnce() -> Option<u64>) -> (Self, Reading) {
        let mut w = DropWatch::new(now);
        let r = w.check(now, read);
        (w, r)
    }

    /// When the counter is read next; `None` once it proved unreadable.
    pub(super) fn next_check(&self) -> Option<Instant> {
        (!self.unreadable).then_some(self.next)
    }

    /// Reads the counter with `read` when a check is due (once per
    /// `DROP_CHECK`).
    pub(super) fn check(&mut self, now: Instant, read: impl FnOnce() -> Option<u64>) -> Reading {
        if now < self.next || self.unreadable {
            return Reading::Nothing;
        }
        self.next = now + DROP_CHECK;
        let Some(total) = read() else {
            self.unreadable = true;
            return Reading::Unreadable;
        };
        let at = Timestamp::now();
        let prev = self.last.replace(total);
        let from = std::mem::replace(&mut self.at, at);
        let Some(prev) = prev else {
            return Reading::Nothing;
        };
        if total <= prev {
            return Reading::Nothing;
        }
        Reading::Gap(Gap {
            from,
            to: at,
            lost: total - prev,
        })
    }
}

impl Worker {
    /// Looks at the netlink drop counter when due; a gap goes into the
    /// spool while the spool holds records, else ahead of the next batch.
    pub(super) fn check_drops(&mut self, now: Instant) {
        let source = &self.drop_source;
        let gap = match self.drops.check(now, || source.read()) {
            Reading::Nothing => return,
            Reading::Unreadable => {
                self.outbox.push(Level::Error, UNREADABLE_DROPS.into());
                return;
            }
            Reading::Gap(gap) => gap,
        };
        self.counts.events_lost.fetch_add(gap.lost, SeqCst);
        let msg = self.formatter.gap(&gap);
        if msg.is_empty() {
            // IPFIX has no gap record: the notice is all there is.
            self.outbox.push(
                Level::Error,
                format!(
                    "{} conntrack events lost between {} and {}: ulogd's netlink socket overflowed (raise netlink_socket_buffer_size)",
                    gap.lost,
                    masqlog_core::time::utc_string(gap.from, true),
                    masqlog_core::time::utc_string(gap.to, true),
                ),
            );
            return;
        }
        self.counts.gaps.fetch_add(1, SeqCst);
        self.outbox.push(
            Level::Error,
            format!(
                "{} conntrack events lost between {} and {}: ulogd's netlink socket overflowed (raise netlink_socket_buffer_size); a gap record goes into the log",
                gap.lost,
                masqlog_core::time::utc_string(gap.from, true),
                masqlog_core::time::utc_string(gap.to, true),
            ),
        );
        if self.spooler.holds_records() {
            self.spooler.append(&msg, None, &mut self.outbox);
            self.spooler.flush(&mut self.outbox);
        } else if self.gaps.len() < MAX_GAPS_WAITING {
            self.gaps.push(msg);
        } else {
            // Only without a spool and with the destination down for
            // hours; the notice above still says what was lost.
            self.counts.lost.fetch_add(1, SeqCst);
        }
    }

    /// The gap records waiting in memory become the next batch.
    pub(super) fn batch_gaps(&mut self) {
        self.batch.from_spool = false;
        for g in std::mem::take(&mut self.gaps) {
            self.batch.push(g, None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_read() -> Option<u64> {
        panic!("the counter is not due")
    }

    #[test]
    fn the_first_reading_is_the_baseline_and_growth_is_a_gap() {
        let t0 = Instant::now();
        let mut w = DropWatch::new(t0);
        assert_eq!(w.check(t0, || Some(100)), Reading::Nothing);
        assert_eq!(w.check(t0, no_read), Reading::Nothing);
        let t1 = t0 + DROP_CHECK;
        let Reading::Gap(gap) = w.check(t1, || Some(130)) else {
            panic!("no gap");
        };
        assert_eq!(gap.lost, 30);
        assert!(gap.from <= gap.to);
        assert_eq!(w.check(t1 + DROP_CHECK, || Some(130)), Reading::Nothing);
        // A counter that went back (sockets closed) is a new baseline.
        assert_eq!(w.check(t1 + 2 * DROP_CHECK, || Some(5)), Reading::Nothing);
        let Reading::Gap(gap) = w.check(t1 + 3 * DROP_CHECK, || Some(6)) else {
            panic!("no gap");
        };
        assert_eq!(gap.lost, 1);
    }

    #[test]
    fn a_watch_started_with_its_baseline_finds_drops_before_its_first_check() {
        let t0 = Instant::now();
        let (mut w, r) = DropWatch::started(t0, || Some(7));
        assert_eq!(r, Reading::Nothing);
        // The writer thread's first look comes late (a busy machine, a
        // stopped ulogd): what was lost meanwhile is still a gap.
        let Reading::Gap(gap) = w.check(t0 + 5 * DROP_CHECK, || Some(19)) else {
            panic!("no gap");
        };
        assert_eq!(gap.lost, 12);
        let (_, r) = DropWatch::started(t0, || None);
        assert_eq!(r, Reading::Unreadable);
    }

    #[test]
    fn an_unreadable_counter_is_said_once_and_not_read_again() {
        let t0 = Instant::now();
        let mut w = DropWatch::new(t0);
        assert_eq!(w.next_check(), Some(t0));
        assert_eq!(w.check(t0, || None), Reading::Unreadable);
        assert_eq!(w.next_check(), None);
        assert_eq!(w.check(t0 + 10 * DROP_CHECK, no_read), Reading::Nothing);
    }
}
