//! The writer thread: its state and its loop. Each turn looks at the
//! statistics timer and the netlink drop counter, then either sends the
//! batch in hand (`batch`), moves records to or from the spool
//! (`spooling`), sends waiting gap records (`gaps`), or waits for the next
//! record, a timer or the handle. What it has to say goes to the main
//! thread as notices (`notices`).

use std::any::Any;
use std::sync::Arc;
use std::sync::atomic::Ordering::SeqCst;
use std::time::Instant;

use crossbeam_channel::{Receiver, at, never, select};

use super::batch::{Batch, Formatter, Outage};
use super::drops::DropSource;
use super::gaps::{DropWatch, Reading, UNREADABLE_DROPS};
use super::lane::LaneReader;
use super::notices::{Level, Outbox, panic_message};
use super::sealer::Sealer;
use super::spool::Spool;
use super::spooling::Spooler;
use super::stats::{Counts, StatsTimer};
use super::transport::{self, Transport};
use super::{Control, FormatFn, Gathering, StopSignal};
use masqlog_core::config::Config;
use masqlog_core::format::chain::ChainRecord;
use masqlog_core::record::FlowRecord;

/// What woke the thread while it waited for a record.
// A transient value on the writer's stack: boxing would cost an allocation
// per record for nothing.
#[allow(clippy::large_enum_variant)]
enum Wake {
    Record(FlowRecord),
    /// The queue is closed and empty: everything was sent.
    Closed,
    /// A timer or the stop signal.
    Other,
}

/// Where the thread takes records from: the queue, then (once the queue
/// is empty) the disk lane, which only holds records newer than any in the
/// queue.
pub(super) struct Inflow {
    pub(super) queue: Receiver<FlowRecord>,
    /// The records that may wait in memory (the queue's capacity).
    pub(super) window: usize,
    lane: Option<LaneReader>,
    /// Records lost to a damaged lane frame, not yet counted.
    lane_lost: u64,
}

impl Inflow {
    pub(super) fn new(
        queue: Receiver<FlowRecord>,
        window: usize,
        lane: Option<LaneReader>,
    ) -> Self {
        Inflow {
            queue,
            window,
            lane,
            lane_lost: 0,
        }
    }

    /// The next record, without waiting.
    pub(super) fn try_next(&mut self) -> Option<FlowRecord> {
        if let Ok(rec) = self.queue.try_recv() {
            return Some(rec);
        }
        let lane = self.lane.as_mut()?;
        loop {
            match lane.take()? {
                Ok(rec) => return Some(rec),
                Err(lost) => self.lane_lost += lost,
            }
        }
    }

    /// Records waiting: in the queue and in the lane.
    pub(super) fn len(&self) -> usize {
        let lane = self.lane.as_ref().map_or(0, LaneReader::backlog);
        self.queue.len() + usize::try_from(lane).unwrap_or(usize::MAX)
    }

    /// Whether the lane holds records.
    pub(super) fn lane_pending(&self) -> bool {
        self.lane.as_ref().is_some_and(|l| l.backlog() > 0)
    }
}

/// The state of the writer thread.
pub(super) struct Worker {
    pub(super) cfg: Config,
    pub(super) inflow: Inflow,
    /// The queue was closed and emptied.
    queue_closed: bool,
    /// The stop deadline, once `stop` was called.
    pub(super) stop: Arc<StopSignal>,
    /// Wakes the thread when the deadline was set or a reconnect asked.
    control: Receiver<Control>,
    /// Set while the thread gathers a batch.
    gathering: Arc<Gathering>,
    pub(super) outbox: Outbox,
    pub(super) counts: Arc<Counts>,
    pub(super) formatter: Formatter,
    pub(super) transport: Box<dyn Transport>,
    /// What is being sent.
    pub(super) batch: Batch,
    pub(super) spooler: Spooler,
    /// When the batch may be tried again after a failure.
    pub(super) retry_at: Option<Instant>,
    pub(super) outage: Option<Outage>,
    stats: StatsTimer,
    pub(super) drops: DropWatch,
    /// Whose netlink drops are this instance's lost events.
    pub(super) drop_source: DropSource,
    /// The writer's own records (gap and chain records) waiting to go out
    /// ahead of the next records.
    pub(super) gaps: Vec<Vec<u8>>,
    /// The chain-stop record was made (the queue is closed).
    chain_stopped: bool,
    /// The last live batch came from the queue: records are flowing (see
    /// `next_warm_batch`).
    warm: bool,
    /// With a store and no spool: messages stored that wait for the
    /// destination (see `held`).
    pub(super) held: super::held::Held,
}

impl Worker {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        cfg: Config,
        inflow: Inflow,
        stop: Arc<StopSignal>,
        (control, gathering): (Receiver<Control>, Arc<Gathering>),
        mut outbox: Outbox,
        counts: Arc<Counts>,
        format: FormatFn,
        spool: Option<Spool>,
        sealer: Option<(Sealer, ChainRecord)>,
        drop_source: DropSource,
    ) -> Self {
        let now = Instant::now();
        // The drop counter's baseline is read here, on the starting
        // thread: events lost before the writer thread first runs (on a
        // busy machine, or while ulogd is stopped) are still a gap.
        let (drops, first) = DropWatch::started(now, || drop_source.read());
        if first == Reading::Unreadable {
            outbox.push(Level::Error, UNREADABLE_DROPS.into());
        }
        let (sealer, start) = sealer.unzip();
        let mut formatter = Formatter::new(&cfg, format, sealer);
        // The run's chain-start record goes out before anything else.
        let own = start
            .and_then(|rec| formatter.chain(&rec))
            .into_iter()
            .collect();
        Worker {
            inflow,
            queue_closed: false,
            stop,
            control,
            gathering,
            outbox,
            formatter,
            chain_stopped: false,
            warm: false,
            transport: transport::open_for(&cfg),
            batch: Batch::default(),
            spooler: Spooler::new(spool, Arc::clone(&counts)),
            counts,
            retry_at: None,
            outage: None,
            stats: StatsTimer::new(cfg.stats_interval, now),
            drops,
            drop_source,
            gaps: own,
            held: super::held::Held::default(),
            cfg,
        }
    }

    /// Runs until the queue is closed and drained (and the spool replayed),
    /// or the stop deadline passed.
    pub(super) fn run(&mut self) {
        loop {
            if let Some(s) = &mut self.formatter.store {
                s.flush(Some(&mut self.outbox));
            }
            let now = Instant::now();
            self.tick_stats(now);
            self.check_drops(now);
            self.count_lane_loss();
            let stopping = self.stop.deadline();
            // Stopping while the destination is down: with a spool, nothing
            // is gained by waiting for it; everything goes to disk now.
            let spool_now =
                stopping.is_some() && self.outage.is_some() && self.spooler.configured();
            if spool_now || stopping.is_some_and(|d| now >= d) {
                self.give_up();
                if let Some(s) = &mut self.formatter.store {
                    s.finish(Some(&mut self.outbox));
                }
                return;
            }
            if !self.batch.is_empty() && !self.batch.from_spool && self.behind() {
                // Behind a slow destination: this batch, then the queue,
                // go to the spool, in that order.
                self.spill_notice();
                self.spool_batch();
                self.spool_queued();
                continue;
            }
            if self.hold_behind() {
                // The destination cannot take records as fast as they
                // come: the store takes them now, the destination later.
                self.hold_queued();
            }
            if !self.batch.is_empty() {
                if self.batch.from_spool && self.behind() {
                    // Replaying: what arrived meanwhile goes behind it.
                    self.spool_queued();
                }
                match self.retry_at {
                    Some(at) if now < at => self.wait_retry(at),
                    _ => self.attempt(now),
                }
                continue;
            }
            if self.spooler.holds_records() {
                // Everything newer than the spool's head goes behind it.
                self.spool_queued();
                self.spooler.fill(&mut self.batch, &mut self.outbox);
                continue;
            }
            if !self.held.is_empty() {
                // Held messages are older than anything queued.
                self.batch.from_spool = false;
                self.top_up();
                continue;
            }
            if !self.gaps.is_empty() {
                self.batch_gaps();
                continue;
            }
            if self.behind() {
                // The destination takes records slower than they come: the
                // backlog goes to disk instead of filling the queue, and is
                // sent from there at the destination's pace.
                self.spill_notice();
                self.spool_queued();
                continue;
            }
            if std::mem::take(&mut self.warm) && self.may_pause() {
                self.warm = self.next_warm_batch();
                continue;
            }
            match self.wait_for_record() {
                Wake::Record(rec) => {
                    self.fill_live(rec);
                    self.gather();
                    self.warm = true;
                }
                Wake::Closed => {
                    // Sealing: the run ends with its chain-stop record,
                    // sent like any other; once it is out (the loop came
                    // back here with nothing left), the mark says so.
                    if !self.chain_stopped {
                        self.chain_stopped = true;
                        if let Some(msg) = self.formatter.chain(&ChainRecord::Stop) {
                            self.gaps.push(msg);
                            continue;
                        }
                    }
                    if let Some(s) = &mut self.formatter.sealer {
                        s.mark(true);
                    }
                    self.spooler.sync(&mut self.outbox);
                    self.close_lane();
                    if let Some(s) = &mut self.formatter.store {
                        s.finish(Some(&mut self.outbox));
                    }
                    return;
                }
                Wake::Other => {}
            }
        }
    }

    /// The loop panicked (a bug): keep or count what will never be sent and
    /// say so. The queue closes when the worker is dropped; `submit` then
    /// counts every record as dropped.
    pub(super) fn crashed(&mut self, panic: &(dyn Any + Send)) {
        let lost = self.give_up();
        self.outbox.push(
            Level::Error,
            format!(
                "the syslog writer thread stopped after a panic: {}; {lost} records dropped, every further record will be dropped",
                panic_message(panic)
            ),
        );
    }

    /// Leaves the statistics line as a notice when it is due.
    fn tick_stats(&mut self, now: Instant) {
        if self.stats.due(now) {
            let line = self.counts.snapshot().to_string();
            self.outbox.push(Level::Info, line);
        }
    }

    /// The earliest of `also`, the next statistics line, the next drop
    /// check and the deadline.
    fn wake_at(&self, also: Option<Instant>) -> Option<Instant> {
        [
            also,
            self.stats.next(),
            self.drops.next_check(),
            self.stop.deadline(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// `Err`: the handle vanished without `stop` (leaked): stop listening.
    fn on_control(&mut self, msg: Result<Control, crossbeam_channel::RecvError>) {
        match msg {
            Ok(Control::Stop | Control::Wake) => {}
            Ok(Control::Reconnect) => {
                self.transport = transport::open_for(&self.cfg);
                self.retry_at = None;
                self.outbox.push(
                    Level::Notice,
                    format!(
                        "reconnecting to destination {} (SIGHUP)",
                        self.cfg.destination
                    ),
                );
            }
            Err(_) => self.control = never(),
        }
    }

    /// A live batch was started and the queue is empty: wait up to
    /// `flush_delay` for more records before sending, without watching the
    /// queue, so that `submit` wakes nobody until the queue reaches its
    /// high-water mark. The thread then wakes once per batch instead of
    /// once per record; a record waits at most `flush_delay` longer.
    fn gather(&mut self) {
        if self.batch.is_empty() || self.batch.is_full() || !self.may_pause() {
            return;
        }
        self.pause();
        self.top_up();
    }

    fn may_pause(&self) -> bool {
        !self.cfg.flush_delay.is_zero() && self.stop.deadline().is_none()
    }

    /// While records flow: instead of blocking on the queue (and being
    /// woken by the next record, then pausing again to gather), the thread
    /// pauses once for `flush_delay` and takes what came meanwhile, which
    /// waited no longer than that. One wake-up per batch; when nothing came,
    /// `false`, and the thread blocks on the queue again.
    fn next_warm_batch(&mut self) -> bool {
        if let Some(rec) = self.inflow.try_next() {
            self.fill_live(rec);
            self.gather();
            return true;
        }
        self.pause();
        match self.inflow.try_next() {
            Some(rec) => {
                self.fill_live(rec);
                true
            }
            None => false,
        }
    }

    /// Sleeps `flush_delay` with the queue unwatched (see [`Gathering`]),
    /// unless the queue reaches its high-water mark or the handle calls.
    fn pause(&mut self) {
        // Only the delay and the handle end it: the statistics and drop
        // timers can wait that long (`flush_delay_ms` is at most 1 s).
        let timer = at(Instant::now() + self.cfg.flush_delay);
        self.gathering.on.store(true, SeqCst);
        // A record may have passed the mark before the flag was up.
        if self.inflow.queue.len() < self.gathering.high_water {
            let control = select! {
                recv(self.control) -> m => Some(m),
                recv(timer) -> _ => None,
            };
            if let Some(m) = control {
                self.on_control(m);
            }
        }
        self.gathering.on.store(false, SeqCst);
    }

    fn wait_for_record(&mut self) -> Wake {
        // The lane is not a channel: look at it before waiting.
        if let Some(rec) = self.inflow.try_next() {
            return Wake::Record(rec);
        }
        let timer = self.wake_at(None).map_or_else(never, at);
        let (wake, control) = select! {
            recv(self.inflow.queue) -> r => (r.map_or(Wake::Closed, Wake::Record), None),
            recv(self.control) -> m => (Wake::Other, Some(m)),
            recv(timer) -> _ => (Wake::Other, None),
        };
        if let Some(m) = control {
            self.on_control(m);
        }
        wake
    }

    /// Waits for the retry time, a statistics line or the stop signal.
    /// With a spool, records arriving meanwhile go into it, so that the
    /// queue does not fill while the destination is down.
    fn wait_retry(&mut self, retry_at: Instant) {
        if self.inflow.lane_pending() && self.spooler.has_room() {
            // The lane is not a channel: empty it into the spool first.
            self.spool_queued();
            return;
        }
        let timer = at(self.wake_at(Some(retry_at)).unwrap_or(retry_at));
        let take = (self.spooler.has_room() || self.holding()) && !self.queue_closed;
        let queue = if take {
            self.inflow.queue.clone()
        } else {
            never()
        };
        let (rec, control) = select! {
            recv(queue) -> r => (Some(r), None),
            recv(self.control) -> m => (None, Some(m)),
            recv(timer) -> _ => (None, None),
        };
        if let Some(m) = control {
            self.on_control(m);
        }
        match rec {
            Some(Ok(rec)) if self.holding() => {
                self.hold_record(&rec);
                self.hold_queued();
            }
            Some(Ok(rec)) => {
                self.spool_record(&rec);
                self.spool_queued();
            }
            Some(Err(_)) => self.queue_closed = true,
            None => {}
        }
    }

    /// Counts (and says) what a damaged lane frame cost.
    fn count_lane_loss(&mut self) {
        let lost = std::mem::take(&mut self.inflow.lane_lost);
        if lost > 0 {
            self.counts.lost.fetch_add(lost, SeqCst);
            self.outbox.push(
                Level::Error,
                format!("{lost} flow records dropped: the disk lane holding them was damaged"),
            );
        }
    }

    /// The run ends: the lane says so (and shrinks when it was read to its
    /// end).
    pub(super) fn close_lane(&mut self) {
        self.count_lane_loss();
        if let Some(lane) = &mut self.inflow.lane
            && let Err(e) = lane.close()
        {
            self.outbox.push(
                Level::Error,
                format!("cannot mark the disk lane closed: {e}; the next start will report this run as killed"),
            );
        }
    }
}
