//! The writer thread: takes records from the queue, formats each into a
//! reused buffer and hands it to the transport, retrying the head record
//! until it is sent; reports outages, lost records and statistics as
//! notices for ulogd's main thread.

use std::any::Any;
use std::fmt::Write as _;
use std::fs::File;
use std::io::Read;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::Ordering::SeqCst;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TrySendError, at, never, select};

use super::transport::{self, Limit, SendError, Transport};
use super::{Counts, FormatFn, Level, Notice, StopSignal, Waker};
use crate::config::Config;
use crate::format::Header;
use crate::record::{FlowRecord, Timestamp};

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

/// The record at the head of the line, formatted into `Worker::msg`.
struct Head {
    /// Its conntrack id, for notices.
    id: Option<u32>,
}

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
    /// The stop deadline, once `stop` was called.
    stop: Arc<StopSignal>,
    /// Wakes the thread when the deadline was set.
    control: Receiver<()>,
    outbox: Outbox,
    counts: Arc<Counts>,
    format: FormatFn,
    transport: Box<dyn Transport>,
    /// The formatted head message; meaningful while `head` is `Some`.
    msg: Vec<u8>,
    /// The record being sent, formatted into `msg`.
    head: Option<Head>,
    /// When the head may be tried again after a failure.
    retry_at: Option<Instant>,
    outage: Option<Outage>,
    next_stats: Option<Instant>,
}

impl Worker {
    pub(super) fn new(
        cfg: Config,
        queue: Receiver<FlowRecord>,
        stop: Arc<StopSignal>,
        control: Receiver<()>,
        outbox: Outbox,
        counts: Arc<Counts>,
        format: FormatFn,
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
            stop,
            control,
            outbox,
            counts,
            format,
            transport: transport::open(&cfg.destination),
            msg: Vec::with_capacity(1024),
            head: None,
            retry_at: None,
            outage: None,
            next_stats,
            cfg,
        }
    }

    /// Runs until the queue is closed and drained, or the stop deadline
    /// passed.
    pub(super) fn run(&mut self) {
        loop {
            let now = Instant::now();
            self.tick_stats(now);
            if self.stop.deadline().is_some_and(|d| now >= d) {
                self.give_up();
                return;
            }
            if self.head.is_some() {
                match self.retry_at {
                    Some(at) if now < at => self.sleep_until(at),
                    _ => self.attempt(now),
                }
                continue;
            }
            match self.wait_for_record() {
                Wake::Record(rec) => self.prepare(&rec),
                Wake::Closed => return,
                Wake::Other => {}
            }
        }
    }

    /// The loop panicked (a bug): count what will never be sent and say so.
    /// The queue closes when the worker is dropped; `submit` then counts
    /// every record as dropped.
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

    /// The earliest of `also`, the next statistics line and the deadline.
    fn wake_at(&self, also: Option<Instant>) -> Option<Instant> {
        [also, self.next_stats, self.stop.deadline()]
            .into_iter()
            .flatten()
            .min()
    }

    /// `Err`: the handle vanished without `stop` (leaked): stop listening.
    fn on_control(&mut self, msg: Result<(), crossbeam_channel::RecvError>) {
        if msg.is_err() {
            self.control = never();
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
    fn sleep_until(&mut self, retry_at: Instant) {
        let timer = at(self.wake_at(Some(retry_at)).unwrap_or(retry_at));
        let control = select! {
            recv(self.control) -> m => Some(m),
            recv(timer) -> _ => None,
        };
        if let Some(m) = control {
            self.on_control(m);
        }
    }

    /// Formats `rec` into the head buffer. A formatter that panics costs
    /// that record only.
    fn prepare(&mut self, rec: &FlowRecord) {
        self.msg.clear();
        let hdr = Header {
            pri: self.pri,
            timestamp: Timestamp::now(),
            hostname: self.hostname.as_deref(),
            app: &self.cfg.tag,
            pid: self.pid,
        };
        let (format, kind, msg) = (&mut self.format, self.cfg.format, &mut self.msg);
        match catch_unwind(AssertUnwindSafe(|| format(kind, &hdr, rec, msg))) {
            Ok(()) => self.head = Some(Head { id: rec.id }),
            Err(panic) => {
                self.msg.clear();
                self.counts.lost.fetch_add(1, SeqCst);
                self.outbox.push(
                    Level::Error,
                    format!(
                        "flow record {} dropped: formatting it panicked: {}",
                        describe(rec.id),
                        panic_message(&*panic)
                    ),
                );
            }
        }
    }

    /// One send of the head message.
    fn attempt(&mut self, now: Instant) {
        let limit = Limit {
            end: now + self.cfg.send_timeout,
            stop: &self.stop,
        };
        let result = self.transport.send(&self.msg, &limit);
        match result {
            Ok(()) => {
                self.head = None;
                self.retry_at = None;
                self.counts.written.fetch_add(1, SeqCst);
                if let Some(outage) = self.outage.take() {
                    self.outbox.push(
                        Level::Notice,
                        format!(
                            "syslog destination {} is back after {} s; {} failed attempts",
                            self.cfg.destination,
                            secs(outage.since.elapsed()),
                            outage.failures
                        ),
                    );
                }
            }
            Err(SendError::Reject(e)) => {
                let id = self.head.take().and_then(|h| h.id);
                self.counts.lost.fetch_add(1, SeqCst);
                self.outbox.push(
                    Level::Error,
                    format!(
                        "flow record {} dropped: syslog destination {} refused the {}-byte message: {e}",
                        describe(id),
                        self.cfg.destination,
                        self.msg.len()
                    ),
                );
            }
            Err(SendError::Retry(e)) => {
                self.counts.failed.fetch_add(1, SeqCst);
                let now = Instant::now();
                self.retry_at = Some(now + self.cfg.retry_interval);
                self.failed(now, &e);
            }
        }
    }

    /// Reports a failed attempt: on the first failure of an outage, then at
    /// most once per `REMINDER_INTERVAL`; never once per retry.
    fn failed(&mut self, now: Instant, e: &std::io::Error) {
        let waiting = self.counts.snapshot().waiting;
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
                        "syslog destination {dest} unreachable: {e}; {waiting} records waiting, retrying every {} ms",
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
                            "syslog destination {dest} still unreachable after {} s: {e}; {waiting} records waiting, {} failed attempts",
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

    /// Counts the head and everything queued as lost; returns how many.
    fn give_up(&mut self) -> u64 {
        let queued = self.queue.try_iter().count() as u64;
        let lost = queued + u64::from(self.head.take().is_some());
        self.counts.lost.fetch_add(lost, SeqCst);
        lost
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
