//! The writer thread: takes records from the queue in batches, formats each
//! into a reused buffer and hands the batch to the transport. A batch that
//! fails goes to the spool (when there is one) or is retried in memory;
//! while the spool holds records, new ones are appended behind them and
//! the destination gets them from the spool, in order. Reports outages,
//! lost records and statistics as notices for ulogd's main thread.

use std::any::Any;
use std::fmt::Write as _;
use std::fs::File;
use std::io::Read;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::Ordering::SeqCst;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TrySendError, at, never, select};

use super::drops;
use super::spool::Spool;
use super::transport::{self, Limit, SendError, Transport};
use super::{Control, Counts, FormatFn, Level, Notice, StopSignal, Waker};
use masqlog_core::config::Config;
use masqlog_core::format::Header;
use masqlog_core::format::gap::{self, Gap};
use masqlog_core::record::{FlowRecord, Timestamp};

/// Notices that may wait for the main thread; beyond that they are counted
/// and the next notice that fits carries the count.
pub(super) const NOTICE_QUEUE: usize = 256;
/// While the destination is down: at most one reminder per this interval.
const REMINDER_INTERVAL: Duration = Duration::from_secs(60);

/// The notice queue towards the main thread.
pub(super) struct Outbox {
    tx: Sender<Notice>,
    waker: Arc<dyn Waker>,
    /// Notices that did not fit since the last one that did.
    suppressed: u64,
}

impl Outbox {
    pub(super) fn new(tx: Sender<Notice>, waker: Arc<dyn Waker>) -> Self {
        Outbox {
            tx,
            waker,
            suppressed: 0,
        }
    }

    /// Queues a notice and wakes the main thread; never blocks.
    pub(super) fn push(&mut self, level: Level, mut message: String) {
        if self.suppressed > 0 {
            let _ = write!(message, " ({} notices suppressed)", self.suppressed);
        }
        match self.tx.try_send(Notice { level, message }) {
            Ok(()) => self.suppressed = 0,
            Err(TrySendError::Full(_)) => self.suppressed += 1,
            // The handle is gone: nobody left to tell.
            Err(TrySendError::Disconnected(_)) => return,
        }
        self.waker.wake();
    }
}

/// The host name for the HOSTNAME field of remote messages: the kernel's,
/// else /etc/hostname, else "-" (RFC 5424's nil value).
pub(super) fn system_hostname() -> String {
    for path in ["/proc/sys/kernel/hostname", "/etc/hostname"] {
        let mut text = String::new();
        let read = File::open(path).and_then(|f| f.take(1024).read_to_string(&mut text));
        if read.is_err() {
            continue;
        }
        let name = text.lines().next().unwrap_or("").trim();
        if (1..=255).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_graphic()) {
            return name.to_string();
        }
    }
    "-".to_string()
}

/// The destination is failing since `since`.
struct Outage {
    since: Instant,
    failures: u64,
    /// The last time an error notice was left for it.
    reported: Instant,
}

/// Records lost because the spool refused them, since the last notice.
#[derive(Default)]
struct SpoolLoss {
    count: u64,
    last_error: String,
    reported: Option<Instant>,
}

/// Messages sent together (one per record), in order.
#[derive(Default)]
struct Batch {
    msgs: Vec<Vec<u8>>,
    /// Conntrack ids of live records (`None` for replayed ones).
    ids: Vec<Option<u32>>,
    /// Read from the spool: delivered ones are consumed there.
    from_spool: bool,
    /// Buffers of sent messages, reused.
    spare: Vec<Vec<u8>>,
}

impl Batch {
    fn is_empty(&self) -> bool {
        self.msgs.is_empty()
    }

    fn len(&self) -> usize {
        self.msgs.len()
    }

    fn buffer(&mut self) -> Vec<u8> {
        let mut b = self.spare.pop().unwrap_or_else(|| Vec::with_capacity(1024));
        b.clear();
        b
    }

    /// Removes the first `n` messages.
    fn advance(&mut self, n: usize) {
        let n = n.min(self.msgs.len());
        for b in self.msgs.drain(..n) {
            if self.spare.len() < BATCH {
                self.spare.push(b);
            }
        }
        self.ids.drain(..n.min(self.ids.len()));
        if self.msgs.is_empty() {
            self.from_spool = false;
        }
    }
}

/// Gap records that may wait in memory for the destination (no spool).
const MAX_GAPS_WAITING: usize = 1024;
/// How often the netlink drop counter is read for gap records.
const DROP_CHECK: Duration = Duration::from_secs(1);

/// The drop counter of ulogd's netlink sockets, as last read.
struct DropWatch {
    /// `None` until the first reading (the baseline).
    last: Option<u64>,
    /// When `last` was read: the start of any gap found next.
    at: Timestamp,
    next: Instant,
    /// /proc could not be read (said once).
    unreadable: bool,
}

/// At most this many messages go out in one batch.
pub(super) const BATCH: usize = 256;
/// Room the spool must have before a record is taken from the queue for it.
const SPOOL_ROOM: usize = 16 << 10;

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

/// The state of the writer thread.
pub(super) struct Worker {
    cfg: Config,
    pri: u8,
    /// Written into remote messages only.
    hostname: Option<String>,
    pid: u32,
    queue: Receiver<FlowRecord>,
    /// The queue was closed and emptied.
    queue_closed: bool,
    /// The stop deadline, once `stop` was called.
    stop: Arc<StopSignal>,
    /// Wakes the thread when the deadline was set or a reconnect asked.
    control: Receiver<Control>,
    outbox: Outbox,
    counts: Arc<Counts>,
    format: FormatFn,
    transport: Box<dyn Transport>,
    /// What is being sent.
    batch: Batch,
    /// `None`: no spool configured; the head of the line waits in memory.
    spool: Option<Spool>,
    spool_loss: SpoolLoss,
    /// When the batch may be tried again after a failure.
    retry_at: Option<Instant>,
    outage: Option<Outage>,
    next_stats: Option<Instant>,
    drops: DropWatch,
    /// Gap records waiting to go out ahead of the next records.
    gaps: Vec<Vec<u8>>,
    /// When the backlog last went to the spool (for the notice).
    spilled: Option<Instant>,
}

impl Worker {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        cfg: Config,
        queue: Receiver<FlowRecord>,
        stop: Arc<StopSignal>,
        control: Receiver<Control>,
        outbox: Outbox,
        counts: Arc<Counts>,
        format: FormatFn,
        spool: Option<Spool>,
    ) -> Self {
        let hostname = cfg
            .destination
            .is_remote()
            .then(|| cfg.hostname.clone().unwrap_or_else(system_hostname));
        let next_stats = cfg
            .stats_interval
            .filter(|d| !d.is_zero())
            .map(|d| Instant::now() + d);
        Worker {
            pri: cfg.facility.min(23) * 8 + cfg.severity.min(7),
            hostname,
            pid: std::process::id(),
            queue,
            queue_closed: false,
            stop,
            control,
            outbox,
            counts,
            format,
            transport: transport::open(&cfg.destination),
            batch: Batch::default(),
            spool,
            spool_loss: SpoolLoss::default(),
            retry_at: None,
            outage: None,
            next_stats,
            drops: DropWatch {
                last: None,
                at: Timestamp::now(),
                next: Instant::now(),
                unreadable: false,
            },
            gaps: Vec::new(),
            spilled: None,
            cfg,
        }
    }

    /// Whether records go through the spool now (it holds records).
    fn spooling(&self) -> bool {
        self.spool.as_ref().is_some_and(|s| !s.is_empty())
    }

    /// Runs until the queue is closed and drained (and the spool replayed),
    /// or the stop deadline passed.
    pub(super) fn run(&mut self) {
        loop {
            let now = Instant::now();
            self.tick_stats(now);
            self.check_drops(now);
            let stopping = self.stop.deadline();
            // Stopping while the destination is down: with a spool, nothing
            // is gained by waiting for it; everything goes to disk now.
            let spool_now = stopping.is_some() && self.outage.is_some() && self.spool.is_some();
            if spool_now || stopping.is_some_and(|d| now >= d) {
                self.give_up();
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
            if self.spooling() {
                // Everything newer than the spool's head goes behind it.
                self.spool_queued();
                self.fill_from_spool();
                continue;
            }
            if !self.gaps.is_empty() {
                self.batch.from_spool = false;
                for g in std::mem::take(&mut self.gaps) {
                    self.batch.msgs.push(g);
                    self.batch.ids.push(None);
                }
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
            match self.wait_for_record() {
                Wake::Record(rec) => self.fill_live(rec),
                Wake::Closed => {
                    self.sync_spool();
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

    /// Reads the netlink drop counter once per `DROP_CHECK`; when it grew,
    /// writes a gap record into the stream (ahead of the records that
    /// follow) and tells ulogd's log.
    fn check_drops(&mut self, now: Instant) {
        if now < self.drops.next || self.drops.unreadable {
            return;
        }
        self.drops.next = now + DROP_CHECK;
        let Some(total) = drops::read_drops() else {
            self.drops.unreadable = true;
            self.outbox.push(
                Level::Error,
                "cannot read /proc/self/net/netlink: lost conntrack events will not be recorded as gaps".into(),
            );
            return;
        };
        let at = Timestamp::now();
        let prev = self.drops.last.replace(total);
        let from = std::mem::replace(&mut self.drops.at, at);
        let Some(prev) = prev else {
            return;
        };
        if total <= prev {
            return;
        }
        let gap = Gap {
            from,
            to: at,
            lost: total - prev,
        };
        self.counts.events_lost.fetch_add(gap.lost, SeqCst);
        self.counts.gaps.fetch_add(1, SeqCst);
        let hdr = Header {
            pri: self.pri,
            timestamp: at,
            hostname: self.hostname.as_deref(),
            app: &self.cfg.tag,
            pid: self.pid,
        };
        let mut msg = Vec::with_capacity(256);
        gap::write_syslog(self.cfg.format, &hdr, &gap, &mut msg);
        self.outbox.push(
            Level::Error,
            format!(
                "{} conntrack events lost between {} and {}: ulogd's netlink socket overflowed (raise netlink_socket_buffer_size); a gap record goes into the log",
                gap.lost,
                masqlog_core::time::utc_string(gap.from, true),
                masqlog_core::time::utc_string(gap.to, true),
            ),
        );
        if self.spooling() {
            self.spool_msg(&msg, None);
            self.flush_spool();
        } else if self.gaps.len() < MAX_GAPS_WAITING {
            self.gaps.push(msg);
        } else {
            // Only without a spool and with the destination down for
            // hours; the notice above still says what was lost.
            self.counts.lost.fetch_add(1, SeqCst);
        }
    }

    /// The earliest of `also`, the next statistics line, the next drop
    /// check and the deadline.
    fn wake_at(&self, also: Option<Instant>) -> Option<Instant> {
        let drops = (!self.drops.unreadable).then_some(self.drops.next);
        [also, self.next_stats, drops, self.stop.deadline()]
            .into_iter()
            .flatten()
            .min()
    }

    /// `Err`: the handle vanished without `stop` (leaked): stop listening.
    fn on_control(&mut self, msg: Result<Control, crossbeam_channel::RecvError>) {
        match msg {
            Ok(Control::Stop) => {}
            Ok(Control::Reconnect) => {
                self.transport = transport::open(&self.cfg.destination);
                self.retry_at = None;
                self.outbox.push(
                    Level::Notice,
                    format!(
                        "reconnecting to syslog destination {} (SIGHUP)",
                        self.cfg.destination
                    ),
                );
            }
            Err(_) => self.control = never(),
        }
    }

    fn wait_for_record(&mut self) -> Wake {
        let timer = self.wake_at(None).map_or_else(never, at);
        let (wake, control) = select! {
            recv(self.queue) -> r => (r.map_or(Wake::Closed, Wake::Record), None),
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
        let timer = at(self.wake_at(Some(retry_at)).unwrap_or(retry_at));
        let take =
            self.spool.as_ref().is_some_and(|s| s.has_room(SPOOL_ROOM)) && !self.queue_closed;
        let queue = if take { self.queue.clone() } else { never() };
        let (rec, control) = select! {
            recv(queue) -> r => (Some(r), None),
            recv(self.control) -> m => (None, Some(m)),
            recv(timer) -> _ => (None, None),
        };
        if let Some(m) = control {
            self.on_control(m);
        }
        match rec {
            Some(Ok(rec)) => {
                self.spool_record(&rec);
                self.spool_queued();
            }
            Some(Err(_)) => self.queue_closed = true,
            None => {}
        }
    }

    /// Formats `rec` into `out`. A formatter that panics costs that record
    /// only (counted and reported); `false` then.
    fn format_into(&mut self, rec: &FlowRecord, out: &mut Vec<u8>) -> bool {
        out.clear();
        let hdr = Header {
            pri: self.pri,
            timestamp: Timestamp::now(),
            hostname: self.hostname.as_deref(),
            app: &self.cfg.tag,
            pid: self.pid,
        };
        let (format, kind) = (&mut self.format, self.cfg.format);
        match catch_unwind(AssertUnwindSafe(|| format(kind, &hdr, rec, out))) {
            Ok(()) => true,
            Err(panic) => {
                out.clear();
                self.counts.lost.fetch_add(1, SeqCst);
                self.outbox.push(
                    Level::Error,
                    format!(
                        "flow record {} dropped: formatting it panicked: {}",
                        describe(rec.id),
                        panic_message(&*panic)
                    ),
                );
                false
            }
        }
    }

    /// Starts a live batch with `first` and whatever else is queued.
    fn fill_live(&mut self, first: FlowRecord) {
        self.batch.from_spool = false;
        let mut rec = Some(first);
        while let Some(r) = rec.take() {
            let mut buf = self.batch.buffer();
            if self.format_into(&r, &mut buf) {
                self.batch.msgs.push(buf);
                self.batch.ids.push(r.id);
            }
            if self.batch.len() < BATCH {
                rec = self.queue.try_recv().ok();
            }
        }
    }

    /// Reads the next batch from the spool.
    fn fill_from_spool(&mut self) {
        let Some(spool) = self.spool.as_mut() else {
            return;
        };
        self.batch.from_spool = true;
        match spool.peek(BATCH, &mut self.batch.msgs) {
            Ok(n) => self.batch.ids.extend(std::iter::repeat_n(None, n)),
            Err(e) => {
                // Unreadable: what it holds cannot be sent; say so and go on
                // with a fresh spool (the files stay for inspection).
                let left = spool.records();
                self.counts.spool_done.fetch_add(left, SeqCst);
                self.counts.lost.fetch_add(left, SeqCst);
                self.outbox.push(
                    Level::Error,
                    format!("{left} spooled records dropped: {e}; the spool is switched off"),
                );
                self.spool = None;
            }
        }
        if self.batch.is_empty() {
            self.batch.from_spool = false;
        }
    }

    /// Whether the queue is more than half full and a spool with room could
    /// take the backlog.
    fn behind(&self) -> bool {
        self.queue.len() > self.cfg.queue_size / 2
            && self.spool.as_ref().is_some_and(|s| s.has_room(SPOOL_ROOM))
    }

    /// Says (at most once per `REMINDER_INTERVAL`) that the backlog goes
    /// to the spool.
    fn spill_notice(&mut self) {
        let now = Instant::now();
        if self
            .spilled
            .is_some_and(|t| now.duration_since(t) < REMINDER_INTERVAL)
        {
            return;
        }
        self.spilled = Some(now);
        self.outbox.push(
            Level::Notice,
            format!(
                "syslog destination {} is slower than the flows: {} records queued, the backlog goes to the spool",
                self.cfg.destination,
                self.queue.len()
            ),
        );
    }

    /// Moves queued records into the spool while it has room.
    fn spool_queued(&mut self) {
        let mut n = 0;
        while n < 4 * BATCH && self.spool.as_ref().is_some_and(|s| s.has_room(SPOOL_ROOM)) {
            let Ok(rec) = self.queue.try_recv() else {
                break;
            };
            self.spool_record(&rec);
            n += 1;
        }
        self.flush_spool();
    }

    /// Appends the live batch to the spool (without a spool: counts it as
    /// lost) and empties it.
    fn spool_batch(&mut self) {
        let msgs = std::mem::take(&mut self.batch.msgs);
        let ids = std::mem::take(&mut self.batch.ids);
        for (m, id) in msgs.iter().zip(ids) {
            self.spool_msg(m, id);
        }
        self.batch.msgs = msgs;
        self.batch.advance(usize::MAX);
    }

    /// Formats `rec` and appends it to the spool.
    fn spool_record(&mut self, rec: &FlowRecord) {
        let mut buf = self.batch.buffer();
        if self.format_into(rec, &mut buf) {
            self.spool_msg(&buf, rec.id);
        }
        self.batch.spare.push(buf);
    }

    /// Appends one formatted live message to the spool; a refusal counts it
    /// as lost.
    fn spool_msg(&mut self, msg: &[u8], id: Option<u32>) -> bool {
        let Some(spool) = self.spool.as_mut() else {
            self.counts.lost.fetch_add(1, SeqCst);
            return false;
        };
        match spool.append(msg) {
            Ok(()) => {
                self.counts.to_spool.fetch_add(1, SeqCst);
                true
            }
            Err(e) => {
                self.counts.lost.fetch_add(1, SeqCst);
                self.spool_lost(1, &format!("{} {e}", describe(id)));
                false
            }
        }
    }

    /// Writes appended records to the spool file (and syncs per policy).
    fn flush_spool(&mut self) {
        self.flush_spool_with(false);
    }

    fn sync_spool(&mut self) {
        self.flush_spool_with(true);
    }

    fn flush_spool_with(&mut self, sync: bool) {
        let Some(spool) = self.spool.as_mut() else {
            return;
        };
        let r = if sync { spool.sync() } else { spool.flush() };
        if let Err(e) = r {
            let n = spool.take_lost();
            self.counts.spool_done.fetch_add(n, SeqCst);
            self.counts.lost.fetch_add(n, SeqCst);
            self.spool_lost(n, &e.to_string());
        }
    }

    /// Reports records the spool refused: at once, then at most once per
    /// `REMINDER_INTERVAL` with the count since.
    fn spool_lost(&mut self, n: u64, why: &str) {
        let loss = &mut self.spool_loss;
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
        self.outbox.push(Level::Error, msg);
    }

    /// One send of the batch.
    fn attempt(&mut self, now: Instant) {
        let half = self.cfg.queue_size / 2;
        let queue = &self.queue;
        let backlog = move || queue.len() > half;
        // With a spool, a batch sent one message at a time stops when the
        // queue fills, so that the backlog can go to disk.
        let spill = self.spool.is_some();
        let limit = Limit {
            end: now + self.cfg.send_timeout,
            stop: &self.stop,
            yield_now: spill.then_some(&backlog as &dyn Fn() -> bool),
        };
        let result = self.transport.send_batch(&self.batch.msgs, &limit);
        let (done, err) = match result {
            Ok(()) => (self.batch.len(), None),
            Err((done, e)) => (done, Some(e)),
        };
        self.delivered(done);
        match err {
            None => {
                self.retry_at = None;
                if let Some(outage) = self.outage.take() {
                    let spooled = self.spool.as_ref().map_or(0, Spool::records);
                    let rest = if spooled > 0 {
                        format!("; sending {spooled} spooled records first")
                    } else {
                        String::new()
                    };
                    self.outbox.push(
                        Level::Notice,
                        format!(
                            "syslog destination {} is back after {} s; {} failed attempts{rest}",
                            self.cfg.destination,
                            secs(outage.since.elapsed()),
                            outage.failures
                        ),
                    );
                }
            }
            // The rest of the batch goes to the spool with the backlog
            // (see `run`).
            Some(SendError::Yield) => {}
            Some(SendError::Reject(e)) => {
                let id = self.batch.ids.first().copied().flatten();
                let len = self.batch.msgs.first().map_or(0, Vec::len);
                self.counts.lost.fetch_add(1, SeqCst);
                if self.batch.from_spool {
                    self.consume_spool(1);
                }
                self.batch.advance(1);
                self.outbox.push(
                    Level::Error,
                    format!(
                        "flow record {} dropped: syslog destination {} refused the {len}-byte message: {e}",
                        describe(id),
                        self.cfg.destination,
                    ),
                );
            }
            Some(SendError::Retry(e)) => {
                self.counts.failed.fetch_add(1, SeqCst);
                let now = Instant::now();
                self.retry_at = Some(now + self.cfg.retry_interval);
                self.failed(now, &e);
                if !self.batch.from_spool && self.spool.is_some() {
                    // The live batch waits on disk, and so does everything
                    // after it.
                    self.spool_batch();
                    self.flush_spool();
                }
            }
        }
    }

    /// The first `n` messages of the batch were delivered.
    fn delivered(&mut self, n: usize) {
        if n == 0 {
            return;
        }
        self.counts.written.fetch_add(n as u64, SeqCst);
        if self.batch.from_spool {
            self.consume_spool(n);
        }
        self.batch.advance(n);
    }

    fn consume_spool(&mut self, n: usize) {
        self.counts.spool_done.fetch_add(n as u64, SeqCst);
        if let Some(spool) = self.spool.as_mut()
            && let Err(e) = spool.consume(n)
        {
            // The records went out; only the mark of it failed: after a
            // restart they would be sent a second time.
            self.outbox.push(
                Level::Error,
                format!("cannot record delivery in the spool: {e}; a restart may send these records again"),
            );
        }
    }

    /// Reports a failed attempt: on the first failure of an outage, then at
    /// most once per `REMINDER_INTERVAL`; never once per retry.
    fn failed(&mut self, now: Instant, e: &std::io::Error) {
        let s = self.counts.snapshot();
        let held = if self.spool.is_some() {
            format!("{} records spooled", s.spooled + s.waiting)
        } else {
            format!("{} records waiting", s.waiting)
        };
        let dest = &self.cfg.destination;
        match &mut self.outage {
            None => {
                self.outage = Some(Outage {
                    since: now,
                    failures: 1,
                    reported: now,
                });
                self.outbox.push(
                    Level::Error,
                    format!(
                        "syslog destination {dest} unreachable: {e}; {held}, retrying every {} ms",
                        self.cfg.retry_interval.as_millis()
                    ),
                );
            }
            Some(outage) => {
                outage.failures += 1;
                if now.duration_since(outage.reported) >= REMINDER_INTERVAL {
                    outage.reported = now;
                    self.outbox.push(
                        Level::Error,
                        format!(
                            "syslog destination {dest} still unreachable after {} s: {e}; {held}, {} failed attempts",
                            secs(now.duration_since(outage.since)),
                            outage.failures
                        ),
                    );
                }
            }
        }
    }

    fn tick_stats(&mut self, now: Instant) {
        let (Some(due), Some(every)) = (self.next_stats, self.cfg.stats_interval) else {
            return;
        };
        if now < due {
            return;
        }
        let next = due + every;
        self.next_stats = Some(if next > now { next } else { now + every });
        let line = self.counts.snapshot().to_string();
        self.outbox.push(Level::Info, line);
    }

    /// Stopping (or crashed): what is in memory goes to the spool when there
    /// is one; what cannot be kept is counted as lost. Returns how many were
    /// lost.
    fn give_up(&mut self) -> u64 {
        let lost_before = self.counts.lost.load(SeqCst);
        if !self.batch.from_spool {
            self.spool_batch();
        }
        // A replayed batch is still in the spool.
        self.batch = Batch::default();
        for g in std::mem::take(&mut self.gaps) {
            self.spool_msg(&g, None);
        }
        let queued: Vec<FlowRecord> = self.queue.try_iter().collect();
        for rec in &queued {
            if self.spool.is_some() {
                self.spool_record(rec);
            } else {
                self.counts.lost.fetch_add(1, SeqCst);
            }
        }
        self.sync_spool();
        if let Some(spool) = &self.spool
            && !spool.is_empty()
        {
            self.outbox.push(
                Level::Notice,
                format!(
                    "{} records kept in the spool; they are sent first when the plugin starts again",
                    spool.records()
                ),
            );
        }
        self.counts.lost.load(SeqCst) - lost_before
    }
}

/// Seconds with one decimal.
fn secs(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64())
}

fn describe(id: Option<u32>) -> String {
    match id {
        Some(id) => format!("(conntrack id {id})"),
        None => "(no conntrack id)".to_string(),
    }
}

fn panic_message(panic: &(dyn Any + Send)) -> &str {
    if let Some(s) = panic.downcast_ref::<&str>() {
        s
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s
    } else {
        "(no message)"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::testutil::TestWaker;

    #[test]
    fn full_notice_queue_counts_and_the_next_notice_says_so() {
        let (tx, rx) = crossbeam_channel::bounded(2);
        let waker = Arc::new(TestWaker::default());
        let mut outbox = Outbox::new(tx, waker.clone());
        for i in 0..5 {
            outbox.push(Level::Error, format!("n{i}"));
        }
        let got: Vec<Notice> = rx.try_iter().collect();
        assert_eq!(got.len(), 2);
        assert_eq!(got[1].message, "n1");
        outbox.push(Level::Notice, "later".into());
        let got: Vec<Notice> = rx.try_iter().collect();
        assert_eq!(got[0].message, "later (3 notices suppressed)");
        outbox.push(Level::Notice, "clean".into());
        assert_eq!(rx.try_recv().unwrap().message, "clean");
        assert!(waker.count() >= 3);
    }

    #[test]
    fn system_hostname_is_a_single_printable_word() {
        let h = system_hostname();
        assert!(!h.is_empty());
        assert!(h.bytes().all(|b| b.is_ascii_graphic()), "{h:?}");
    }

    #[test]
    fn panic_messages_are_extracted() {
        let p = catch_unwind(|| panic!("boom {}", 7)).unwrap_err();
        assert_eq!(panic_message(&*p), "boom 7");
        let p = catch_unwind(|| panic!("static")).unwrap_err();
        assert_eq!(panic_message(&*p), "static");
    }
}
