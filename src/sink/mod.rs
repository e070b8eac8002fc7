//! The syslog sink: a writer thread fed by a bounded queue, and the
//! transports (local datagram socket, UDP, TCP with octet counting).
//!
//! ulogd's main thread hands records to [`Writer::submit`], which never
//! blocks: a full queue drops the record and counts it. The writer thread
//! (`masqlog-writer`) formats records into reused buffers and sends them in
//! batches. A batch whose send fails goes to the on-disk [`spool`] (when one
//! is configured), and so does every record after it until the destination
//! is back and the spool is replayed in order; without a spool the batch
//! stays at the head of the line. Either way it is retried every
//! `retry_interval` on a fresh connection. The thread never calls ulogd:
//! it leaves [`Notice`]s that the main thread collects with
//! [`Writer::take_notices`] when the [`Waker`] woke it.
//!
//! The writer thread by job: `worker` (its state and loop), `batch`
//! (formatting and sending), `spooling` (when records go to the spool and
//! how they come back), `gaps` (lost conntrack events as gap records, from
//! the counter `drops` reads), `notices` and `stats`.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::{Relaxed, SeqCst};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TrySendError, bounded};

use masqlog_core::config::{Config, Format};
use masqlog_core::format::Header;
use masqlog_core::record::FlowRecord;

mod batch;
pub mod drops;
mod file;
mod gaps;
mod held;
mod ipfix;
pub mod lane;
mod notices;
pub mod orphans;
#[cfg(feature = "postgresql")]
pub mod pg;
mod relp;
mod sealer;
pub mod spool;
pub mod spooldir;
mod spooling;
mod stats;
mod store;
mod transport;
mod worker;

#[cfg(test)]
mod testutil;

pub use masqlog_core::wake::Waker;
pub use notices::{Level, Notice};
pub use stats::SinkStats;
pub use store::StoreStats;

use stats::Counts;

/// Why the sink could not start.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("cannot start the writer thread: {0}")]
    Thread(std::io::Error),
    #[error("queue size {0} is too small: at least 1")]
    QueueSize(usize),
    #[error(transparent)]
    Spool(#[from] spool::SpoolError),
    /// The disk lane cannot be opened.
    #[error("disk lane: {0}")]
    Lane(String),
    /// Sealing is asked for and cannot be done.
    #[error("sealing: {0}")]
    Seal(String),
    /// The destination cannot be used as configured (a PostgreSQL URL the
    /// client does not read).
    #[error("destination: {0}")]
    Destination(String),
    /// The evidence store cannot be opened (`store_dir`).
    #[error("store_dir: {0}")]
    Store(String),
}

/// What the handle asks of the thread besides records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Control {
    /// The stop deadline was set: look at it.
    Stop,
    /// Drop the connection and open a new one (SIGHUP).
    Reconnect,
    /// The queue reached its high-water mark while the thread was gathering
    /// a batch (see [`Gathering`]): send now.
    Wake,
}

/// Whether the writer thread is gathering a batch (waiting out
/// `flush_delay` with the queue unwatched, so that `submit` wakes nobody),
/// and the queue length at which `submit` cuts that wait short.
#[derive(Debug)]
pub(crate) struct Gathering {
    pub(crate) on: std::sync::atomic::AtomicBool,
    pub(crate) high_water: usize,
}

/// Formats one record into the buffer: `masqlog_core::format::write_syslog`, or a
/// stand-in in tests.
/// Returns where the message's body (the format's marker) starts: what a
/// sealing writer seals.
pub(crate) type FormatFn =
    Box<dyn FnMut(Format, &Header<'_>, &FlowRecord, &mut Vec<u8>) -> usize + Send>;

/// The stop deadline, shared by the handle (which sets it) and the thread
/// and its transport (which give up when it passed, even in the middle of
/// a send).
#[derive(Debug)]
struct StopSignal {
    base: Instant,
    /// Nanoseconds after `base`; `u64::MAX`: not stopping.
    at: AtomicU64,
}

impl StopSignal {
    fn new() -> Self {
        StopSignal {
            base: Instant::now(),
            at: AtomicU64::new(u64::MAX),
        }
    }

    fn set(&self, deadline: Instant) {
        let nanos = deadline.saturating_duration_since(self.base).as_nanos();
        self.at
            .store(u64::try_from(nanos).unwrap_or(u64::MAX - 1), SeqCst);
    }

    fn deadline(&self) -> Option<Instant> {
        match self.at.load(SeqCst) {
            u64::MAX => None,
            nanos => Some(self.base + Duration::from_nanos(nanos)),
        }
    }
}

/// The writer: owns the queue and the thread.
///
/// What each destination guarantees:
/// - `unix:`: one message per datagram; the kernel reports a missing or
///   full receiver, so nothing is lost while the queue has room.
/// - `udp:`: one message per datagram, fire and forget. A datagram the
///   network or a closed port swallows is lost; the ICMP error of a closed
///   port surfaces on the *next* send, which is then retried.
/// - `tcp:`: RFC 6587 octet counting (`LEN SP MSG`). A successful write
///   only means the local kernel accepted the bytes; see the transport's
///   documentation for what a dying receiver can take with it.
pub struct Writer {
    /// `None` once `stop` closed the queue.
    queue: Option<Sender<FlowRecord>>,
    /// With a spool: where records go when the queue holds its window
    /// (only ulogd's thread submits, so the lock is never contended).
    lane: Option<parking_lot::Mutex<lane::LaneWriter>>,
    /// Why the lane last refused a record.
    lane_refusal: parking_lot::Mutex<Option<String>>,
    stop: Arc<StopSignal>,
    /// Wakes the thread when `stop` set the deadline, or asks a reconnect.
    control: Sender<Control>,
    gathering: Arc<Gathering>,
    notices: Receiver<Notice>,
    counts: Arc<Counts>,
    thread: Option<JoinHandle<()>>,
}

impl Writer {
    /// Starts the writer thread for `cfg.destination`; lost conntrack
    /// events are read from `drops`. Connecting happens on
    /// the thread: a destination that is down at start is retried like any
    /// other failure (and reported as a notice).
    ///
    /// # Errors
    ///
    /// `QueueSize` for a zero `queue_size`; `Spool` when the spool directory
    /// cannot be opened (or another process holds it); `Thread` when the
    /// thread cannot be spawned.
    pub fn start(
        cfg: &Config,
        waker: Arc<dyn Waker>,
        drops: drops::DropSource,
    ) -> Result<Writer, SinkError> {
        let format: FormatFn = if cfg.destination.is_ipfix() {
            let exp = masqlog_core::ipfix::Exporter {
                instance: cfg.ipfix.domain_id,
                max_message: cfg.ipfix.max_message,
            };
            Box::new(move |_, _, rec, out| {
                masqlog_core::ipfix::encode_record(
                    rec,
                    &exp,
                    masqlog_core::record::Timestamp::now(),
                    out,
                );
                0
            })
        } else {
            Box::new(masqlog_core::format::write_syslog)
        };
        Self::start_with(cfg, waker, format, drops)
    }

    /// `start` with the formatter given (tests pass their own).
    fn start_with(
        cfg: &Config,
        waker: Arc<dyn Waker>,
        format: FormatFn,
        drops: drops::DropSource,
    ) -> Result<Writer, SinkError> {
        if cfg.queue_size == 0 {
            // bounded(0) is a rendezvous channel: try_send would refuse
            // nearly everything.
            return Err(SinkError::QueueSize(cfg.queue_size));
        }
        if let masqlog_core::config::Destination::Postgres(t) = &cfg.destination {
            #[cfg(feature = "postgresql")]
            pg::check_url(t).map_err(SinkError::Destination)?;
            #[cfg(not(feature = "postgresql"))]
            return Err(SinkError::Destination(format!(
                "{}: this plugin was built without PostgreSQL support (cargo feature `postgresql`)",
                t.url
            )));
        }
        let counts = Arc::new(Counts::default());
        let (notice_tx, notice_rx) = bounded(notices::NOTICE_QUEUE);
        let mut outbox = notices::Outbox::new(notice_tx, waker);
        let spool = match &cfg.spool {
            Some(sc) => {
                let (spool, found) = spool::Spool::open(&sc.dir, sc.max_bytes, sc.sync)?;
                counts
                    .spool_initial
                    .store(found.records + found.torn, SeqCst);
                counts.spool_done.store(found.torn, SeqCst);
                counts.lost.store(found.torn, SeqCst);
                if found.records > 0 || found.torn > 0 {
                    let torn = if found.torn > 0 {
                        format!(
                            "; {} torn records cut off (a crash in the middle of a write) and counted as dropped",
                            found.torn
                        )
                    } else {
                        String::new()
                    };
                    outbox.push(
                        if found.torn > 0 {
                            Level::Error
                        } else {
                            Level::Notice
                        },
                        format!(
                            "spool {} holds {} records from before; they are sent first{torn}",
                            sc.dir.display(),
                            found.records
                        ),
                    );
                }
                Some(spool)
            }
            None => None,
        };
        let (lane_writer, lane_reader) = match (&cfg.spool, &spool) {
            (Some(sc), Some(spool)) => {
                let (w, r, found) = lane::open(spool.dir(), sc.max_bytes).map_err(|e| {
                    SinkError::Lane(format!("{}: {e}", sc.dir.join(lane::FILE).display()))
                })?;
                counts.recovered.store(found.records, SeqCst);
                if found.unclean {
                    outbox.push(
                        Level::Error,
                        format!(
                            "the previous run did not stop cleanly (killed or crashed): the records it held in memory, at most {} ({} queued and a batch of {}), are lost and not counted; {} records it left in the disk lane are sent now",
                            lane::WINDOW + batch::BATCH,
                            lane::WINDOW,
                            batch::BATCH,
                            found.records
                        ),
                    );
                }
                (Some(w), Some(r))
            }
            _ => (None, None),
        };
        let sealer = match sealer::Sealer::open(&cfg.seal)? {
            sealer::Opened::Sealing(s, start) => {
                outbox.push(
                    Level::Notice,
                    format!("records are sealed: {}", s.describe()),
                );
                Some((s, start))
            }
            sealer::Opened::Unsealed(why) => {
                if let Some(why) = why {
                    outbox.push(Level::Notice, why);
                }
                None
            }
        };
        // With a disk lane, only its window waits in memory.
        let window = if lane_writer.is_some() {
            cfg.queue_size.min(lane::WINDOW)
        } else {
            cfg.queue_size
        };
        let (queue_tx, queue_rx) = bounded(window);
        let (control_tx, control_rx) = bounded(4);
        let stop = Arc::new(StopSignal::new());
        let gathering = Arc::new(Gathering {
            on: std::sync::atomic::AtomicBool::new(false),
            // A whole batch waiting: nothing to gather for; and well below
            // the half-full queue at which the backlog goes to the spool.
            high_water: batch::BATCH.min(window / 4).max(1),
        });
        let mut worker = worker::Worker::new(
            cfg.clone(),
            worker::Inflow::new(queue_rx, window, lane_reader),
            Arc::clone(&stop),
            (control_rx, Arc::clone(&gathering)),
            outbox,
            Arc::clone(&counts),
            format,
            spool,
            sealer,
            drops,
        );
        if let Some(sc) = &cfg.store {
            let mut sink =
                store::StoreSink::open(sc, Arc::clone(&counts.store), &mut worker.outbox)
                    .map_err(SinkError::Store)?;
            // The chain-start record was made before the store was there.
            for msg in &worker.gaps {
                sink.add(msg, None);
            }
            worker.formatter.store = Some(sink);
        }
        let thread = std::thread::Builder::new()
            .name("masqlog-writer".into())
            .spawn(move || {
                // The per-record work has its own guard; this one catches a
                // bug in the loop itself, so that it is reported instead of
                // silently stopping the logging.
                if let Err(panic) = catch_unwind(AssertUnwindSafe(|| worker.run())) {
                    worker.crashed(&*panic);
                }
            })
            .map_err(SinkError::Thread)?;
        Ok(Writer {
            queue: Some(queue_tx),
            lane: lane_writer.map(parking_lot::Mutex::new),
            lane_refusal: parking_lot::Mutex::new(None),
            stop,
            control: control_tx,
            gathering,
            notices: notice_rx,
            counts,
            thread: Some(thread),
        })
    }

    /// Never blocks. `false`: the record was dropped and counted (the
    /// queue was full and there is no disk lane, or the lane is full or
    /// its disk is).
    pub fn submit(&self, rec: FlowRecord) -> bool {
        let Some(queue) = &self.queue else {
            self.counts.refused.fetch_add(1, SeqCst);
            return false;
        };
        // Counted before it is queued: the thread may take it at once.
        self.counts.accepted.fetch_add(1, SeqCst);
        let mut lane = self.lane.as_ref().map(|l| l.lock());
        // While the lane holds records, every record goes behind them.
        let rec = match &lane {
            Some(l) if l.pending() => rec,
            _ => match queue.try_send(rec) {
                Ok(()) => {
                    // The thread is gathering a batch and nobody watches the
                    // queue: past the mark, it is woken (once).
                    let g = &self.gathering;
                    if g.on.load(Relaxed) && queue.len() >= g.high_water && g.on.swap(false, SeqCst)
                    {
                        let _ = self.control.try_send(Control::Wake);
                    }
                    return true;
                }
                Err(TrySendError::Full(rec)) => rec,
                // The thread died (it said so in a notice).
                Err(TrySendError::Disconnected(_)) => {
                    self.refuse();
                    return false;
                }
            },
        };
        let Some(lane) = lane.as_mut() else {
            self.refuse();
            return false;
        };
        match lane.push(&rec) {
            Ok(()) => true,
            Err(e) => {
                self.refuse();
                *self.lane_refusal.lock() = Some(e.to_string());
                false
            }
        }
    }

    fn refuse(&self) {
        self.counts.accepted.fetch_sub(1, SeqCst);
        self.counts.refused.fetch_add(1, SeqCst);
    }

    /// Why records are refused: the queue is full (no disk lane), or what
    /// the lane last said.
    pub fn refusal(&self) -> String {
        match (&self.lane, self.lane_refusal.lock().as_ref()) {
            (Some(_), Some(why)) => why.clone(),
            _ => "the queue is full".into(),
        }
    }

    /// Notices the writer thread left for ulogd's log; never blocks.
    pub fn take_notices(&self) -> Vec<Notice> {
        self.notices.try_iter().collect()
    }

    pub fn stats(&self) -> SinkStats {
        self.counts.snapshot()
    }

    /// Asks the thread to drop its connection and open a new one (SIGHUP);
    /// never blocks.
    pub fn reconnect(&self) {
        let _ = self.control.try_send(Control::Reconnect);
    }

    /// Sends what is queued for at most `timeout`, then stops the thread;
    /// what could not be sent goes to the spool, or without one is counted
    /// as dropped.
    ///
    /// Returns within `timeout` plus a few milliseconds: the thread checks
    /// the deadline between sends and retries, and a send in progress
    /// checks it at least every 50 ms. Only a TCP connect already under way
    /// runs to its end (at most `send_timeout`; immediate when the port is
    /// closed or the host answers).
    pub fn stop(mut self, timeout: Duration) -> SinkStats {
        self.shutdown(timeout)
    }

    /// `stop`, and the notices the thread left on its way out (what it
    /// kept in the spool, what it lost).
    pub fn stop_with_notices(mut self, timeout: Duration) -> (SinkStats, Vec<Notice>) {
        let stats = self.shutdown(timeout);
        (stats, self.notices.try_iter().collect())
    }

    fn shutdown(&mut self, timeout: Duration) -> SinkStats {
        let now = Instant::now();
        let deadline = now
            .checked_add(timeout)
            .unwrap_or_else(|| now + Duration::from_secs(86_400));
        // Closing the queue lets the thread drain it and end; the deadline
        // makes it give up on what it cannot send in time.
        self.stop.set(deadline);
        self.queue = None;
        self.lane = None;
        let _ = self.control.try_send(Control::Stop);
        if let Some(thread) = self.thread.take() {
            // Err: the thread panicked outside its guards; what it did not
            // account for is counted below.
            let _ = thread.join();
        }
        let left = self.counts.snapshot().waiting;
        self.counts.lost.fetch_add(left, SeqCst);
        self.counts.snapshot()
    }
}

impl Drop for Writer {
    /// A writer dropped without `stop` gives up on what is queued at once.
    fn drop(&mut self) {
        if self.thread.is_some() {
            self.shutdown(Duration::ZERO);
        }
    }
}

#[cfg(test)]
mod tests;
