//! The store destination (`store_dir=`): every message the writer formats
//! (flow, gap and chain records, sealed as they go out) is also appended
//! to the live segment of the evidence store (`masqlog_core::store`),
//! whatever becomes of the forwarding destination. Lines are gathered and
//! written once per turn of the writer's loop (or every 256 KiB), with the
//! same bytes and order the destination gets.
//!
//! Closing a segment (compressing and indexing it), the live segment's
//! index (`NAME.lix`, kept up to date about once a second from the length
//! the writer last completed) and retention run on a thread of their own
//! (`masqlog-store`), fed by a bounded channel: the writer never waits for
//! them. A segment that could not be handed over (the channel full) stays
//! live on disk and is closed at the next start.
//! A write the disk refuses is cut back to the segment's last whole line;
//! its records are counted (`store_failed`) and reported.

use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{RecvTimeoutError, Sender, bounded};
use masqlog_core::store::{self, LiveIndexer, StoreConfig, StoreWriter};

use super::notices::{Level, Outbox};

/// Gathered bytes written at once past this.
const FLUSH_BYTES: usize = 256 << 10;
/// Segments waiting to be closed.
const CLOSE_QUEUE: usize = 16;
/// How often the store's thread brings the live segment's index up to
/// date.
const LIVE_INDEX_TICK: Duration = Duration::from_secs(1);

/// The live segment's name and the length the writer last completed.
type LiveLen = Arc<Mutex<Option<(String, u64)>>>;

/// The store's own accounting, in the statistics line.
#[derive(Debug, Default)]
pub(super) struct StoreCounts {
    pub(super) on: std::sync::atomic::AtomicBool,
    /// Records appended to the live segment.
    pub(super) written: AtomicU64,
    /// Records the disk refused (lost to the store).
    pub(super) failed: AtomicU64,
    /// Bytes of torn last lines cut at start.
    pub(super) torn: AtomicU64,
    /// Segments closed (compressed and indexed).
    pub(super) closed: AtomicU64,
}

/// The store's counters, read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoreStats {
    pub written: u64,
    pub failed: u64,
    pub torn_bytes: u64,
    pub closed: u64,
}

impl std::fmt::Display for StoreStats {
    /// `store_written=N store_failed=N store_torn_bytes=N store_closed=N`
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "store_written={} store_failed={} store_torn_bytes={} store_closed={}",
            self.written, self.failed, self.torn_bytes, self.closed
        )
    }
}

impl StoreCounts {
    pub(super) fn snapshot(&self) -> Option<StoreStats> {
        self.on.load(SeqCst).then(|| StoreStats {
            written: self.written.load(SeqCst),
            failed: self.failed.load(SeqCst),
            torn_bytes: self.torn.load(SeqCst),
            closed: self.closed.load(SeqCst),
        })
    }
}

/// The writer's side of the store.
pub(super) struct StoreSink {
    writer: StoreWriter,
    buf: Vec<u8>,
    lines: u64,
    counts: Arc<StoreCounts>,
    closer: Option<Sender<String>>,
    thread: Option<JoinHandle<()>>,
    live: LiveLen,
    /// The last write failed: said once until one succeeds.
    failing: bool,
    /// A failure not yet reported (it happened where no outbox was at hand).
    unreported: Option<String>,
}

impl StoreSink {
    /// Opens the store (repairing what a crash left) and starts its closer.
    pub(super) fn open(
        cfg: &StoreConfig,
        counts: Arc<StoreCounts>,
        outbox: &mut Outbox,
    ) -> Result<StoreSink, String> {
        let (writer, rec) = StoreWriter::open(cfg.clone()).map_err(|e| e.to_string())?;
        counts.on.store(true, SeqCst);
        counts.torn.store(rec.torn_bytes, SeqCst);
        if rec.torn_bytes > 0 {
            outbox.push(
                Level::Error,
                format!(
                    "store {}: {} bytes of a torn last line cut (a crash in the middle of a write)",
                    cfg.dir.display(),
                    rec.torn_bytes
                ),
            );
        }
        let (tx, rx) = bounded::<String>(CLOSE_QUEUE);
        for n in rec.to_close {
            let _ = tx.try_send(n);
        }
        let dir = cfg.dir.clone();
        let (keep, max) = (cfg.keep, cfg.max_bytes);
        let c = Arc::clone(&counts);
        let live: LiveLen = Arc::default();
        let progress = Arc::clone(&live);
        let thread = std::thread::Builder::new()
            .name("masqlog-store".into())
            .spawn(move || {
                let mut indexer: Option<LiveIndexer> = None;
                // A segment whose index failed: not tried again (lookup
                // reads it as plain lines).
                let mut given_up: Option<String> = None;
                loop {
                    match rx.recv_timeout(LIVE_INDEX_TICK) {
                        Ok(name) => {
                            // Its lines indexed so far are not parsed again.
                            let ix = indexer.take_if(|i| i.name() == name);
                            // A panic costs this segment's close (it stays
                            // live on disk, closed at the next start), not
                            // the thread.
                            let r =
                                std::panic::catch_unwind(std::panic::AssertUnwindSafe(
                                    || match ix {
                                        Some(ix) => ix
                                            .close(&dir)
                                            .or_else(|_| store::close_segment(&dir, &name)),
                                        None => store::close_segment(&dir, &name),
                                    },
                                ));
                            if matches!(r, Ok(Ok(_))) {
                                c.closed.fetch_add(1, SeqCst);
                            }
                            let now = masqlog_core::record::Timestamp::now().secs;
                            let _ = store::prune(&dir, keep, max, now);
                        }
                        Err(RecvTimeoutError::Timeout) => {}
                        Err(RecvTimeoutError::Disconnected) => break,
                    }
                    let Some((name, len)) = progress.lock().map_or(None, |g| g.clone()) else {
                        continue;
                    };
                    if given_up.as_deref() == Some(name.as_str()) {
                        continue;
                    }
                    if indexer.as_ref().is_none_or(|i| i.name() != name) {
                        indexer = Some(LiveIndexer::new(&name));
                    }
                    let ix = indexer.as_mut().expect("set above");
                    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        ix.advance(&dir, len, false)
                    }));
                    if !matches!(r, Ok(Ok(_))) {
                        indexer = None;
                        given_up = Some(name);
                    }
                }
            })
            .map_err(|e| format!("cannot start the store thread: {e}"))?;
        Ok(StoreSink {
            writer,
            buf: Vec::with_capacity(FLUSH_BYTES + 4096),
            lines: 0,
            counts,
            closer: Some(tx),
            thread: Some(thread),
            live,
            failing: false,
            unreported: None,
        })
    }

    /// Takes one message (without its newline).
    pub(super) fn add(&mut self, msg: &[u8], outbox: Option<&mut Outbox>) {
        if msg.is_empty() {
            return;
        }
        self.buf.extend_from_slice(msg);
        self.buf.push(b'\n');
        self.lines += 1;
        if self.buf.len() >= FLUSH_BYTES {
            self.flush(outbox);
        }
    }

    /// Writes what was gathered to the live segment.
    pub(super) fn flush(&mut self, mut outbox: Option<&mut Outbox>) {
        if let Some(o) = outbox.as_deref_mut()
            && let Some(msg) = self.unreported.take()
        {
            o.push(Level::Error, msg);
        }
        if self.buf.is_empty() {
            return;
        }
        let now = masqlog_core::record::Timestamp::now().secs;
        match self.writer.append(&self.buf, now) {
            Ok(rolled) => {
                self.counts.written.fetch_add(self.lines, SeqCst);
                self.failing = false;
                if let (Ok(mut g), Some((name, len))) = (self.live.lock(), self.writer.live_len()) {
                    match g.as_mut() {
                        Some(l) if l.0 == name => l.1 = len,
                        _ => *g = Some((name.to_string(), len)),
                    }
                }
                if let Some(name) = rolled
                    && let Some(tx) = &self.closer
                {
                    // Full: the segment stays live on disk, closed at the
                    // next start.
                    let _ = tx.try_send(name);
                }
            }
            Err(e) => {
                self.counts.failed.fetch_add(self.lines, SeqCst);
                if !std::mem::replace(&mut self.failing, true) {
                    let msg = format!(
                        "store: {} records not stored (counted as store_failed): {e}",
                        self.lines
                    );
                    match outbox {
                        Some(o) => o.push(Level::Error, msg),
                        None => self.unreported = Some(msg),
                    }
                }
            }
        }
        self.buf.clear();
        self.lines = 0;
    }

    /// At the end of the run: the last lines written and synced; the live
    /// segment stays live (closed at the next start, or at its roll).
    pub(super) fn finish(&mut self, outbox: Option<&mut Outbox>) {
        self.flush(outbox);
        let _ = self.writer.sync();
        // The closer finishes what it is doing on its own (a close cut
        // short by the end of the process leaves the segment live, closed
        // at the next start): stopping does not wait for it.
        self.closer = None;
        drop(self.thread.take());
    }
}

impl Drop for StoreSink {
    fn drop(&mut self) {
        self.finish(None);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use masqlog_core::config::{Config, Destination};
    use masqlog_core::store::{self, StoreConfig};

    use super::super::testutil::*;
    use super::super::{Writer, drops};

    fn store_config(dir: &std::path::Path) -> StoreConfig {
        StoreConfig {
            dir: dir.to_path_buf(),
            roll: Duration::from_secs(3600),
            roll_bytes: 1 << 30,
            keep: Duration::from_secs(86_400),
            max_bytes: 0,
        }
    }

    fn start(cfg: &Config) -> Writer {
        let waker = std::sync::Arc::new(TestWaker::default());
        Writer::start_with(
            cfg,
            waker,
            Box::new(masqlog_core::format::write_syslog),
            drops::DropSource::Process,
        )
        .unwrap()
    }

    #[test]
    fn the_store_holds_the_bytes_the_file_destination_got() {
        let tmp = temp_dir("store-beside-file");
        let file = tmp.path().join("flows.log");
        let dir = tmp.path().join("store");
        let cfg = Config {
            store: Some(store_config(&dir)),
            ..test_config(Destination::File(file.clone()))
        };
        let w = start(&cfg);
        for id in 0..500 {
            w.submit(record(id));
        }
        let s = w.stop(Duration::from_secs(30));
        assert_eq!(s.written, 500, "{s:?}");
        let st = s.store.expect("store stats");
        assert_eq!((st.written, st.failed), (500, 0), "{s:?}");
        assert!(s.to_string().contains(" store_written=500 store_failed=0"));
        let segs = store::list(&dir).unwrap();
        let mut stored = Vec::new();
        for seg in &segs {
            let b = std::fs::read(seg.data(&dir)).unwrap();
            match seg.kind {
                store::SegmentKind::Live => stored.extend_from_slice(&b),
                store::SegmentKind::Closed => {
                    stored.extend(zstd::stream::decode_all(b.as_slice()).unwrap())
                }
            }
        }
        assert_eq!(stored, std::fs::read(&file).unwrap());
    }

    /// The store's lines (live segment), as the conntrack ids `id_format`
    /// wrote.
    fn stored_ids(dir: &std::path::Path) -> Vec<u32> {
        let mut ids = Vec::new();
        for seg in store::list(dir).unwrap() {
            assert_eq!(seg.kind, store::SegmentKind::Live);
            let b = std::fs::read(seg.data(dir)).unwrap();
            ids.extend(
                b.split(|&c| c == b'\n')
                    .filter(|l| !l.is_empty())
                    .map(id_of),
            );
        }
        ids
    }

    #[test]
    fn the_store_takes_every_record_while_the_destination_is_down_without_a_spool() {
        let tmp = temp_dir("store-dest-down");
        let dir = tmp.path().join("store");
        let sock = tmp.path().join("log.sock");
        let cfg = Config {
            store: Some(store_config(&dir)),
            queue_size: 64,
            ..test_config(Destination::Unix(sock.clone()))
        };
        let waker = std::sync::Arc::new(TestWaker::default());
        let w = Writer::start_with(&cfg, waker, id_format(), drops::DropSource::Process).unwrap();
        let stored = |w: &Writer| w.stats().store.map_or(0, |s| s.written);
        // Ten queues' worth while nothing listens: each record is in the
        // store before the next is submitted, so the queue never holds
        // more than one and none is refused.
        let total = 640u32;
        for id in 0..total {
            assert!(w.submit(record(id)), "record {id} refused: {:?}", w.stats());
            assert!(
                wait_until(Duration::from_secs(20), || stored(&w) > u64::from(id)),
                "record {id} not stored while the destination is down: {:?}",
                w.stats()
            );
        }
        let s = w.stats();
        assert_eq!(s.written, 0, "{s:?}");
        // A queue's worth (and the first batch) waits for the destination;
        // the rest is its loss, not the store's.
        assert!(s.waiting >= 64 && s.waiting <= 64 + 256, "{s:?}");
        assert_eq!(s.dropped + s.waiting, u64::from(total), "{s:?}");
        // The destination comes back: what waited goes out, in order.
        let rx = UnixReceiver::bind(sock);
        let got = rx.recv_n(usize::try_from(s.waiting).unwrap(), Duration::from_secs(20));
        let ids: Vec<u32> = got.iter().map(|m| id_of(m)).collect();
        assert_eq!(ids.len() as u64, s.waiting, "{ids:?}");
        assert!(ids.windows(2).all(|p| p[0] < p[1]), "out of order: {ids:?}");
        let s = w.stop(Duration::from_secs(10));
        assert_eq!(s.written + s.dropped, u64::from(total), "{s:?}");
        assert_eq!(s.written, ids.len() as u64, "{s:?}");
        let st = s.store.expect("store stats");
        assert_eq!((st.written, st.failed), (u64::from(total), 0), "{s:?}");
        assert_eq!(stored_ids(&dir), (0..total).collect::<Vec<_>>());
    }

    #[test]
    fn the_store_thread_keeps_an_index_of_the_live_segment() {
        let tmp = temp_dir("store-live-index");
        let dir = tmp.path().join("store");
        let cfg = Config {
            store: Some(store_config(&dir)),
            ..test_config(Destination::File(tmp.path().join("flows.log")))
        };
        let w = start(&cfg);
        // Well past the first step of the live index (1 MiB of lines).
        let mut id = 0;
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        let lix = loop {
            for _ in 0..2000 {
                w.submit(record(id));
                id += 1;
            }
            let live = store::list(&dir)
                .unwrap()
                .into_iter()
                .find(|x| x.kind == store::SegmentKind::Live);
            if let Some(p) = live
                .map(|l| store::live_index_path(&dir, &l.name))
                .filter(|p| p.exists())
            {
                break p;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no live index after {id} records"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        let s = w.stop(Duration::from_secs(30));
        assert_eq!(s.store.expect("store stats").failed, 0, "{s:?}");
        let index =
            store::Index::read(&mut std::fs::read(&lix).unwrap().as_slice(), "lix").unwrap();
        let live = std::fs::read(lix.with_extension("log")).unwrap();
        assert!(index.stamp.len >= store::live::MIN_STEP && index.stamp.len <= live.len() as u64);
        let last = index.frames().last().unwrap();
        assert_eq!(last.raw_offset + u64::from(last.raw_len), index.stamp.len);
        assert_eq!(live[index.stamp.len as usize - 1], b'\n');
    }

    #[test]
    fn a_full_disk_costs_the_store_counted_records_and_never_a_half_line() {
        let Some(disk) = TinyDisk::mount("store-enospc", 64) else {
            eprintln!("SKIP: cannot mount a tmpfs (not root)");
            return;
        };
        let dir = disk.path().join("store");
        let elsewhere = temp_dir("store-enospc-dest");
        let cfg = Config {
            store: Some(store_config(&dir)),
            queue_size: 64,
            ..test_config(Destination::File(elsewhere.path().join("flows.log")))
        };
        let w = start(&cfg);
        let total = 3000u32;
        for id in 0..total {
            w.submit(record(id));
            if id % 64 == 0 {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        let s = w.stop(Duration::from_millis(200));
        let st = s.store.expect("store stats");
        assert!(st.failed > 0, "a 64 KiB disk took 3000 records: {s:?}");
        // Every record the destination got was stored or counted.
        assert_eq!(st.written + st.failed, s.written, "{s:?}");
        let live = store::list(&dir)
            .unwrap()
            .into_iter()
            .find(|x| x.kind == store::SegmentKind::Live)
            .unwrap();
        let b = std::fs::read(live.data(&dir)).unwrap();
        assert!(b.ends_with(b"\n"));
        let lines = b.iter().filter(|&&c| c == b'\n').count() as u64;
        assert_eq!(lines, st.written, "{s:?}");
        for l in b.split(|&c| c == b'\n').filter(|l| !l.is_empty()) {
            masqlog_core::format::parse_line(std::str::from_utf8(l).unwrap()).unwrap();
        }
    }
}
