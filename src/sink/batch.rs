//! Batching and sending: records taken from the queue are formatted into
//! reused buffers and sent together; what each send's result does to the
//! batch (delivered, refused, retried) and to the outage it starts or ends.

use std::fs::File;
use std::io::Read;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::Ordering::SeqCst;
use std::time::{Duration, Instant};

use super::FormatFn;
use super::notices::{Level, REMINDER_INTERVAL, describe, panic_message};
use super::sealer::Sealer;
use super::transport::{Limit, SendError};
use super::worker::Worker;
use masqlog_core::config::{Config, Destination, Format};
use masqlog_core::format::Header;
use masqlog_core::format::chain::{self, ChainRecord};
use masqlog_core::format::gap::{self, Gap};
use masqlog_core::record::{FlowRecord, Timestamp};

/// At most this many messages go out in one batch.
pub(super) const BATCH: usize = 256;

/// Messages sent together (one per record), in order.
#[derive(Default)]
pub(super) struct Batch {
    pub(super) msgs: Vec<Vec<u8>>,
    /// Conntrack ids of live records (`None` for replayed ones).
    pub(super) ids: Vec<Option<u32>>,
    /// Read from the spool: delivered ones are consumed there.
    pub(super) from_spool: bool,
    /// Buffers of sent messages, reused.
    pub(super) spare: Vec<Vec<u8>>,
}

impl Batch {
    pub(super) fn is_empty(&self) -> bool {
        self.msgs.is_empty()
    }

    pub(super) fn is_full(&self) -> bool {
        self.msgs.len() >= BATCH
    }

    pub(super) fn len(&self) -> usize {
        self.msgs.len()
    }

    /// Appends one message, of the record with conntrack id `id`.
    pub(super) fn push(&mut self, msg: Vec<u8>, id: Option<u32>) {
        self.msgs.push(msg);
        self.ids.push(id);
    }

    /// An empty buffer, reused when one is spare.
    pub(super) fn buffer(&mut self) -> Vec<u8> {
        let mut b = self.spare.pop().unwrap_or_else(|| Vec::with_capacity(1024));
        b.clear();
        b
    }

    /// Removes the first `n` messages.
    pub(super) fn advance(&mut self, n: usize) {
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

/// Turns records and gaps into syslog messages in the configured format.
pub(super) struct Formatter {
    /// The evidence store, when `store_dir` is set: every message formatted
    /// is also appended there.
    pub(super) store: Option<super::store::StoreSink>,
    format: FormatFn,
    kind: Format,
    origin: Origin,
    /// Seals every message when sealing is on.
    pub(super) sealer: Option<Sealer>,
    /// IPFIX export: records are encoded by `format`, and there are no
    /// gap records.
    ipfix: bool,
}

/// What the header of every message says of its sender.
struct Origin {
    pri: u8,
    /// Written into remote messages only.
    hostname: Option<String>,
    app: String,
    pid: u32,
}

impl Origin {
    fn header(&self, timestamp: Timestamp) -> Header<'_> {
        Header {
            pri: self.pri,
            timestamp,
            hostname: self.hostname.as_deref(),
            app: &self.app,
            pid: self.pid,
        }
    }
}

impl Formatter {
    pub(super) fn new(cfg: &Config, format: FormatFn, sealer: Option<Sealer>) -> Self {
        Formatter {
            store: None,
            format,
            sealer,
            ipfix: cfg.destination.is_ipfix(),
            kind: cfg.format,
            origin: Origin {
                pri: cfg.facility.min(23) * 8 + cfg.severity.min(7),
                hostname: cfg
                    .destination
                    .is_remote()
                    .then(|| cfg.hostname.clone().unwrap_or_else(system_hostname)),
                app: cfg.tag.clone(),
                pid: std::process::id(),
            },
        }
    }

    /// Formats `rec` into `out`, stamped now. `Err`: the format panicked,
    /// with the panic's message; `out` is left empty.
    pub(super) fn record(&mut self, rec: &FlowRecord, out: &mut Vec<u8>) -> Result<(), String> {
        out.clear();
        let hdr = self.origin.header(Timestamp::now());
        let (format, kind) = (&mut self.format, self.kind);
        let start =
            catch_unwind(AssertUnwindSafe(|| format(kind, &hdr, rec, out))).map_err(|panic| {
                out.clear();
                panic_message(&*panic).to_string()
            })?;
        self.seal_and_keep(start, out);
        Ok(())
    }

    /// The last steps of every message: sealed (when sealing is on), then
    /// kept in the evidence store (when there is one), as it goes out.
    fn seal_and_keep(&mut self, start: usize, msg: &mut Vec<u8>) {
        if let Some(s) = &mut self.sealer {
            s.seal(self.kind, start, msg);
        }
        if let Some(s) = &mut self.store {
            s.add(msg, None);
        }
    }

    /// The gap record of `gap`, stamped with its end; empty for IPFIX,
    /// which has no such record (the notice in ulogd's log remains).
    pub(super) fn gap(&mut self, gap: &Gap) -> Vec<u8> {
        if self.ipfix {
            return Vec::new();
        }
        let mut msg = Vec::with_capacity(256);
        let start = gap::write_syslog(self.kind, &self.origin.header(gap.to), gap, &mut msg);
        self.seal_and_keep(start, &mut msg);
        msg
    }

    /// A chain record, sealed, stamped now; `None` when not sealing.
    pub(super) fn chain(&mut self, rec: &ChainRecord) -> Option<Vec<u8>> {
        self.sealer.as_ref()?;
        let mut msg = Vec::with_capacity(256);
        let hdr = self.origin.header(Timestamp::now());
        let start = chain::write_syslog(self.kind, &hdr, rec, &mut msg);
        self.seal_and_keep(start, &mut msg);
        Some(msg)
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
pub(super) struct Outage {
    since: Instant,
    failures: u64,
    /// The last time an error notice was left for it.
    reported: Instant,
}

impl Worker {
    /// Formats `rec` into `out`. A formatter that panics costs that record
    /// only (counted and reported); `false` then.
    pub(super) fn format_into(&mut self, rec: &FlowRecord, out: &mut Vec<u8>) -> bool {
        match self.formatter.record(rec, out) {
            Ok(()) => true,
            Err(panic) => {
                self.counts.lost.fetch_add(1, SeqCst);
                self.outbox.push(
                    Level::Error,
                    format!(
                        "flow record {} dropped: formatting it panicked: {panic}",
                        describe(rec.id),
                    ),
                );
                false
            }
        }
    }

    /// Starts a live batch with `first` and whatever else is queued.
    pub(super) fn fill_live(&mut self, first: FlowRecord) {
        self.batch.from_spool = false;
        self.push_live(&first);
        self.top_up();
    }

    /// Adds what is held for the destination (see `held`), then what is
    /// queued, to the live batch, up to [`BATCH`].
    pub(super) fn top_up(&mut self) {
        while !self.batch.is_full() {
            if let Some((msg, id)) = self.held.pop() {
                self.batch.push(msg, id);
                continue;
            }
            let Some(r) = self.inflow.try_next() else {
                return;
            };
            self.push_live(&r);
        }
    }

    fn push_live(&mut self, r: &FlowRecord) {
        let mut buf = self.batch.buffer();
        if self.format_into(r, &mut buf) {
            if buf.is_empty() {
                // An event the format has nothing for (IPFIX: an update, an
                // IDENT outcome without a user): done with, nothing to send.
                self.counts.written.fetch_add(1, SeqCst);
                self.batch.spare.push(buf);
                return;
            }
            self.batch.push(buf, r.id);
        }
    }

    /// One send of the batch.
    pub(super) fn attempt(&mut self, now: Instant) {
        let half = self.inflow.window / 2;
        let inflow = &self.inflow;
        let backlog = move || inflow.len() > half;
        // With a spool, a batch sent one message at a time stops when the
        // queue fills, so that the backlog can go to disk.
        let spill = self.spooler.configured() || self.holding();
        let limit = Limit {
            end: now + self.cfg.send_timeout,
            stop: &self.stop,
            yield_now: spill.then_some(&backlog as &dyn Fn() -> bool),
        };
        self.counts.batches.fetch_add(1, SeqCst);
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
                    let spooled = self.spooler.records();
                    let rest = if spooled > 0 {
                        format!("; sending {spooled} spooled records first")
                    } else {
                        String::new()
                    };
                    self.outbox.push(
                        Level::Notice,
                        format!(
                            "destination {} is back after {} s; {} failed attempts{rest}",
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
                    self.spooler.consume(1, &mut self.outbox);
                }
                self.batch.advance(1);
                self.outbox.push(
                    Level::Error,
                    format!(
                        "flow record {} dropped: destination {} refused the {len}-byte message: {e}",
                        describe(id),
                        self.cfg.destination,
                    ),
                );
            }
            Some(SendError::Retry(e)) => {
                self.counts.failed.fetch_add(1, SeqCst);
                if e.kind() == std::io::ErrorKind::TimedOut {
                    self.counts.timed_out.fetch_add(1, SeqCst);
                }
                let now = Instant::now();
                self.retry_at = Some(now + self.cfg.retry_interval);
                self.failed(now, &e);
                if !self.batch.from_spool && self.spooler.configured() {
                    // The live batch waits on disk, and so does everything
                    // after it.
                    self.spool_batch();
                    self.spooler.flush(&mut self.outbox);
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
        if matches!(self.cfg.destination, Destination::IpfixUdp(_)) {
            // Nobody acknowledges a datagram; the collector sees a loss
            // in the sequence numbers.
            self.counts.unacked.fetch_add(n as u64, SeqCst);
        }
        if self.batch.from_spool {
            self.spooler.consume(n, &mut self.outbox);
        }
        self.batch.advance(n);
    }

    /// Reports a failed attempt: on the first failure of an outage, then at
    /// most once per `REMINDER_INTERVAL`; never once per retry.
    fn failed(&mut self, now: Instant, e: &std::io::Error) {
        let s = self.counts.snapshot();
        let held = if self.spooler.configured() {
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
                        "destination {dest} unreachable: {e}; {held}, retrying every {} ms",
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
                            "destination {dest} still unreachable after {} s: {e}; {held}, {} failed attempts",
                            secs(now.duration_since(outage.since)),
                            outage.failures
                        ),
                    );
                }
            }
        }
    }
}

/// Seconds with one decimal.
fn secs(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_hostname_is_a_single_printable_word() {
        let h = system_hostname();
        assert!(!h.is_empty());
        assert!(h.bytes().all(|b| b.is_ascii_graphic()), "{h:?}");
    }
}
