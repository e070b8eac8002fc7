//! The ident worker pool: a bounded queue of [`Query`]s served by a fixed set
//! of threads, results handed back to ulogd's main thread through a bounded
//! channel and a [`Waker`].
//!
//! # Promises
//!
//! - [`Pool::submit`] never blocks: a full queue refuses the query at once
//!   (`false`, counted in `dropped`).
//! - At most `per_host` queries to the same client address are in progress at
//!   a time. A query over that cap is not queued again and not sent: its
//!   outcome is [`Outcome::Busy`] at once. A host that answers slowly thus
//!   occupies at most `per_host` workers, and one busy host cannot starve the
//!   others.
//! - A query that panics (a bug) yields
//!   `Outcome::ProtocolError("internal error: <panic message>")`; the worker
//!   goes on with the next query.
//! - Results wait in a channel of `queue_size + workers` entries until
//!   [`Pool::take_results`] collects them; a worker then calls
//!   [`Waker::wake`]. If that channel is full (ulogd's main thread is not
//!   collecting), the worker waits at most one query `deadline` for room,
//!   then discards the result and counts it in `lost`: a stalled consumer
//!   slows the workers down but never wedges them.
//! - [`Pool::stop`] returns within its timeout: workers finish the query in
//!   hand (bounded by its deadline) and exit; queries still queued are not
//!   asked and counted in `dropped`; results not yet taken are counted in
//!   `lost`.
//!
//! # Counters
//!
//! `sent` counts queries accepted by `submit`; each ends as `answered` (the
//! identd said `USERID` or `ERROR`), `failed` (every other outcome, `busy`
//! included) or, when the pool stops first, `dropped`; until then it is
//! `in_flight` (queued or being asked). `dropped` also counts the queries
//! `submit` refused. Latency runs from `submit` to the outcome, queue wait
//! included, over every finished query.

use std::collections::HashMap;
use std::net::IpAddr;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError, bounded};
use parking_lot::Mutex;

use super::IdentError;
use super::query::{Mode, Outcome, Query, QueryConfig, check_transparent_capability, query};
use crate::wake::Waker;

/// Default number of worker threads.
pub const DEFAULT_WORKERS: usize = 4;
/// Default number of queries waiting for a worker.
pub const DEFAULT_QUEUE_SIZE: usize = 1024;
/// Default cap on queries in progress to one client address.
pub const DEFAULT_PER_HOST: usize = 2;

/// Upper bounds that keep a typo from costing memory or threads.
const MAX_WORKERS: usize = 256;
const MAX_QUEUE_SIZE: usize = 1 << 20;
const MAX_REPLY_CAP: usize = 1 << 16;

/// The pool's shape and how each query is made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolConfig {
    /// Worker threads (default 4, 1 to 256).
    pub workers: usize,
    /// Queries waiting for a worker (default 1024, at least 1).
    pub queue_size: usize,
    /// Queries in progress to one client address (default 2, at least 1).
    pub per_host: usize,
    pub query: QueryConfig,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            workers: DEFAULT_WORKERS,
            queue_size: DEFAULT_QUEUE_SIZE,
            per_host: DEFAULT_PER_HOST,
            query: QueryConfig::default(),
        }
    }
}

impl PoolConfig {
    /// Checks the bounds documented on each field.
    pub fn validate(&self) -> Result<(), IdentError> {
        let invalid = |key, value: String, why| Err(IdentError::InvalidConfig { key, value, why });
        if !(1..=MAX_WORKERS).contains(&self.workers) {
            return invalid("workers", self.workers.to_string(), "must be 1 to 256");
        }
        if !(1..=MAX_QUEUE_SIZE).contains(&self.queue_size) {
            return invalid(
                "queue_size",
                self.queue_size.to_string(),
                "must be 1 to 1048576",
            );
        }
        if self.per_host == 0 {
            return invalid("per_host", "0".into(), "must be at least 1");
        }
        let q = &self.query;
        if q.deadline.is_zero() {
            return invalid("deadline", "0".into(), "must be more than 0");
        }
        if q.connect_timeout.is_zero() {
            return invalid("connect_timeout", "0".into(), "must be more than 0");
        }
        if !(1..=MAX_REPLY_CAP).contains(&q.max_reply) {
            return invalid("max_reply", q.max_reply.to_string(), "must be 1 to 65536");
        }
        Ok(())
    }

    /// Capacity of the results channel.
    fn results_capacity(&self) -> usize {
        self.queue_size + self.workers
    }
}

/// Latency of finished queries, from `submit` to the outcome.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Latency {
    pub total: Duration,
    pub max: Duration,
    pub count: u64,
}

impl Latency {
    /// The mean latency; zero before the first query.
    pub fn mean(&self) -> Duration {
        match u32::try_from(self.count) {
            Ok(0) => Duration::ZERO,
            Ok(n) => self.total / n,
            Err(_) => Duration::from_secs_f64(self.total.as_secs_f64() / self.count as f64),
        }
    }
}

/// Counters of the pool; see the module documentation for what they mean.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IdentStats {
    /// Queries accepted by `submit`.
    pub sent: u64,
    /// Queries the identd answered (`user` or `ident-error`).
    pub answered: u64,
    /// Queries that ended with any other outcome.
    pub failed: u64,
    /// Queries never asked: refused by a full queue, or still queued at stop.
    pub dropped: u64,
    /// Outcomes discarded because the results channel stayed full, or still
    /// untaken at stop.
    pub lost: u64,
    /// Queries accepted and not finished (queued or being asked).
    pub in_flight: u64,
    pub latency: Latency,
}

impl std::fmt::Display for IdentStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ident: sent={} answered={} failed={} dropped={} lost={} mean_ms={} max_ms={}",
            self.sent,
            self.answered,
            self.failed,
            self.dropped,
            self.lost,
            self.latency.mean().as_millis(),
            self.latency.max.as_millis(),
        )
    }
}

/// A query on its way to a worker.
struct Job {
    query: Query,
    submitted: Instant,
}

/// What the workers share with the pool.
struct Shared {
    query: QueryConfig,
    per_host: usize,
    stop: AtomicBool,
    hosts: Mutex<HashMap<IpAddr, usize>>,
    waker: Arc<dyn Waker>,
    sent: AtomicU64,
    answered: AtomicU64,
    failed: AtomicU64,
    dropped: AtomicU64,
    lost: AtomicU64,
    in_flight: AtomicU64,
    latency_total_us: AtomicU64,
    latency_max_us: AtomicU64,
    latency_count: AtomicU64,
}

impl Shared {
    fn finished(&self, outcome: &Outcome, latency: Duration) {
        if outcome.is_answer() {
            self.answered.fetch_add(1, Ordering::Relaxed);
        } else {
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
        let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.latency_total_us.fetch_add(us, Ordering::Relaxed);
        self.latency_max_us.fetch_max(us, Ordering::Relaxed);
        self.latency_count.fetch_add(1, Ordering::Relaxed);
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
    }

    /// A query refused before it reached the pool (the caller's own cap).
    fn refused(&self) {
        self.dropped.fetch_add(1, Ordering::Relaxed);
    }

    /// A queued query that will not be asked because the pool stops.
    fn abandoned(&self) {
        self.dropped.fetch_add(1, Ordering::Relaxed);
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A place among the queries in progress to one host; freed on drop, also
/// when the query panics.
struct HostSlot<'a> {
    hosts: &'a Mutex<HashMap<IpAddr, usize>>,
    ip: IpAddr,
}

impl<'a> HostSlot<'a> {
    fn take(hosts: &'a Mutex<HashMap<IpAddr, usize>>, ip: IpAddr, cap: usize) -> Option<Self> {
        let mut map = hosts.lock();
        let n = map.entry(ip).or_insert(0);
        if *n >= cap {
            return None;
        }
        *n += 1;
        Some(HostSlot { hosts, ip })
    }
}

impl Drop for HostSlot<'_> {
    fn drop(&mut self) {
        let mut map = self.hosts.lock();
        if let Some(n) = map.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.ip);
            }
        }
    }
}

type Delivery = (Query, Outcome, Duration);

/// The ident worker pool; see the module documentation.
pub struct Pool {
    jobs: Option<Sender<Job>>,
    /// The pool's own end of the queue, to count what is left at stop.
    queued: Receiver<Job>,
    results: Receiver<Delivery>,
    /// Disconnected once every worker has exited.
    exited: Receiver<()>,
    workers: Vec<JoinHandle<()>>,
    shared: Arc<Shared>,
}

impl Pool {
    /// Checks `cfg` (and, in transparent mode, the capability to set
    /// `IP_TRANSPARENT`), then starts `cfg.workers` threads named
    /// `masqlog-ident-N`, N from 0.
    pub fn start(cfg: PoolConfig, waker: Arc<dyn Waker>) -> Result<Pool, IdentError> {
        cfg.validate()?;
        if cfg.query.mode == Mode::Transparent {
            check_transparent_capability()?;
        }
        let (jobs, queued) = bounded(cfg.queue_size);
        let (results_tx, results) = bounded(cfg.results_capacity());
        let (exited_tx, exited) = bounded::<()>(1);
        let shared = Arc::new(Shared {
            query: cfg.query.clone(),
            per_host: cfg.per_host,
            stop: AtomicBool::new(false),
            hosts: Mutex::new(HashMap::new()),
            waker,
            sent: AtomicU64::new(0),
            answered: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            lost: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
            latency_total_us: AtomicU64::new(0),
            latency_max_us: AtomicU64::new(0),
            latency_count: AtomicU64::new(0),
        });
        let mut pool = Pool {
            jobs: Some(jobs),
            queued: queued.clone(),
            results,
            exited,
            workers: Vec::with_capacity(cfg.workers),
            shared,
        };
        for n in 0..cfg.workers {
            let name = format!("masqlog-ident-{n}");
            let (shared, jobs, results, exited) = (
                pool.shared.clone(),
                queued.clone(),
                results_tx.clone(),
                exited_tx.clone(),
            );
            let spawned = thread::Builder::new()
                .name(name.clone())
                .spawn(move || worker(&shared, &jobs, &results, exited));
            match spawned {
                Ok(h) => pool.workers.push(h),
                // dropping `pool` stops the workers already started
                Err(source) => return Err(IdentError::Thread { name, source }),
            }
        }
        Ok(pool)
    }

    /// Queues a query for a worker. Never blocks: `false` when the queue is
    /// full (or the pool stopping), counted in `dropped`; the caller then
    /// has the flow's outcome itself, [`Outcome::QueueFull`].
    pub fn submit(&self, q: Query) -> bool {
        let s = &self.shared;
        let Some(jobs) = &self.jobs else {
            s.dropped.fetch_add(1, Ordering::Relaxed);
            return false;
        };
        // counted before the send, so that a quick worker never finishes a
        // query the counters do not know yet
        s.sent.fetch_add(1, Ordering::Relaxed);
        s.in_flight.fetch_add(1, Ordering::Relaxed);
        let job = Job {
            query: q,
            submitted: Instant::now(),
        };
        match jobs.try_send(job) {
            Ok(()) => true,
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                s.sent.fetch_sub(1, Ordering::Relaxed);
                s.in_flight.fetch_sub(1, Ordering::Relaxed);
                s.dropped.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }

    /// Counts a query that the caller refused without submitting it (its
    /// own bound on queries under way was reached): it is `dropped`, like a
    /// query refused by a full queue.
    pub fn count_refused(&self) {
        self.shared.refused();
    }

    /// The finished queries so far, each with its latency (submit to
    /// outcome). Never blocks.
    pub fn take_results(&self) -> Vec<(Query, Outcome, Duration)> {
        self.results.try_iter().collect()
    }

    pub fn stats(&self) -> IdentStats {
        let s = &self.shared;
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        IdentStats {
            sent: load(&s.sent),
            answered: load(&s.answered),
            failed: load(&s.failed),
            dropped: load(&s.dropped),
            lost: load(&s.lost),
            in_flight: load(&s.in_flight),
            latency: Latency {
                total: Duration::from_micros(load(&s.latency_total_us)),
                max: Duration::from_micros(load(&s.latency_max_us)),
                count: load(&s.latency_count),
            },
        }
    }

    /// Stops the pool, waiting at most `timeout` for the workers. Queued
    /// queries are not asked (`dropped`); results not taken are discarded
    /// (`lost`). Workers still inside a query when `timeout` runs out are
    /// left to finish it on their own (bounded by the query deadline) and
    /// exit. Returns the final counters.
    pub fn stop(mut self, timeout: Duration) -> IdentStats {
        let until = Instant::now() + timeout;
        self.shutdown();
        // never sent on: returns Disconnected when the last worker is gone
        let all_exited = matches!(
            self.exited.recv_deadline(until),
            Err(RecvTimeoutError::Disconnected)
        );
        for h in std::mem::take(&mut self.workers) {
            if all_exited || h.is_finished() {
                let _ = h.join();
            }
        }
        let untaken = self.results.try_iter().count() as u64;
        self.shared.lost.fetch_add(untaken, Ordering::Relaxed);
        self.stats()
    }

    /// Tells the workers to stop and empties the queue; does not wait.
    fn shutdown(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.jobs = None;
        while self.queued.try_recv().is_ok() {
            self.shared.abandoned();
        }
    }
}

impl Drop for Pool {
    /// Without [`Pool::stop`]: the workers are told to stop, not waited for.
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn worker(shared: &Shared, jobs: &Receiver<Job>, results: &Sender<Delivery>, _exited: Sender<()>) {
    // `recv` ends with an error once the pool dropped its sender and the
    // queue is empty
    while let Ok(job) = jobs.recv() {
        if shared.stop.load(Ordering::SeqCst) {
            shared.abandoned();
            continue;
        }
        let outcome = run(shared, &job.query);
        let latency = job.submitted.elapsed();
        shared.finished(&outcome, latency);
        match results.send_timeout((job.query, outcome, latency), shared.query.deadline) {
            Ok(()) => {
                // the waker is someone else's code: its panic must not end us
                let _ = catch_unwind(AssertUnwindSafe(|| shared.waker.wake()));
            }
            Err(_) => {
                shared.lost.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// One query under the per-host cap, with panics turned into an outcome.
fn run(shared: &Shared, q: &Query) -> Outcome {
    let Some(_slot) = HostSlot::take(&shared.hosts, q.client.ip(), shared.per_host) else {
        return Outcome::Busy;
    };
    catch_unwind(AssertUnwindSafe(|| query(q, &shared.query))).unwrap_or_else(|panic| {
        let msg = panic
            .downcast_ref::<&str>()
            .copied()
            .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
            .unwrap_or("a panic without a message");
        Outcome::ProtocolError(format!("internal error: {msg}"))
    })
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, SocketAddr};
    use std::sync::atomic::AtomicUsize;

    use super::super::fake::{self, FakeIdentd};
    use super::super::query::TEST_PANIC_PORT;
    use super::*;

    #[derive(Default)]
    struct CountingWaker(AtomicUsize);

    impl Waker for CountingWaker {
        fn wake(&self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn config(port: u16, workers: usize, queue_size: usize, per_host: usize) -> PoolConfig {
        PoolConfig {
            workers,
            queue_size,
            per_host,
            query: QueryConfig {
                port,
                deadline: Duration::from_millis(1500),
                connect_timeout: Duration::from_millis(1500),
                ..QueryConfig::default()
            },
        }
    }

    fn q(client: [u8; 4], client_port: u16) -> Query {
        Query {
            ct_id: Some(u32::from(client_port)),
            client: SocketAddr::new(Ipv4Addr::from(client).into(), client_port),
            remote: SocketAddr::new(Ipv4Addr::new(127, 0, 0, 9).into(), 443),
        }
    }

    fn wait_results(pool: &Pool, n: usize, timeout: Duration) -> Vec<Delivery> {
        let end = Instant::now() + timeout;
        let mut got = Vec::new();
        while got.len() < n && Instant::now() < end {
            got.extend(pool.take_results());
            thread::sleep(Duration::from_millis(5));
        }
        got
    }

    fn start(cfg: PoolConfig) -> (Pool, Arc<CountingWaker>) {
        let waker = Arc::new(CountingWaker::default());
        let pool = Pool::start(cfg, waker.clone()).unwrap();
        (pool, waker)
    }

    #[test]
    fn answers_come_back_with_wakes_and_counts() {
        let server = FakeIdentd::start(fake::answer(b":USERID:UNIX:bob\r\n"));
        let (pool, waker) = start(config(server.port(), 2, 8, 4));
        for port in [1001, 1002, 1003] {
            assert!(pool.submit(q([127, 0, 0, 1], port)));
        }
        let mut got = wait_results(&pool, 3, Duration::from_secs(5));
        got.sort_by_key(|(q, ..)| q.client.port());
        assert_eq!(got.len(), 3);
        for ((query, outcome, latency), port) in got.iter().zip([1001, 1002, 1003]) {
            assert_eq!(query.client.port(), port);
            assert_eq!(query.ct_id, Some(u32::from(port)));
            assert_eq!(outcome.token(), "user", "{outcome:?}");
            assert!(*latency < Duration::from_secs(2));
        }
        assert!(waker.0.load(Ordering::SeqCst) >= 3);
        let s = pool.stats();
        assert_eq!(
            (s.sent, s.answered, s.failed, s.dropped, s.lost, s.in_flight),
            (3, 3, 0, 0, 0, 0)
        );
        assert_eq!(s.latency.count, 3);
        assert!(s.latency.max >= s.latency.mean());
        let line = s.to_string();
        assert!(
            line.starts_with("ident: sent=3 answered=3 failed=0 dropped=0 lost=0 mean_ms="),
            "{line}"
        );
        let final_stats = pool.stop(Duration::from_secs(2));
        assert_eq!(final_stats.answered, 3);
    }

    #[test]
    fn worker_threads_are_named() {
        let server = FakeIdentd::start(fake::answer(b":USERID:UNIX:bob\r\n"));
        let (pool, _) = start(config(server.port(), 3, 8, 4));
        let names: Vec<_> = pool
            .workers
            .iter()
            .map(|h| h.thread().name().unwrap().to_string())
            .collect();
        assert_eq!(
            names,
            ["masqlog-ident-0", "masqlog-ident-1", "masqlog-ident-2"]
        );
        pool.stop(Duration::from_secs(2));
    }

    #[test]
    fn queue_full_counts_drops_and_submit_never_blocks() {
        let server = FakeIdentd::start(fake::silent());
        let (pool, _) = start(config(server.port(), 1, 2, 4));
        // the one worker takes a first query and hangs on it
        assert!(pool.submit(q([127, 0, 0, 1], 2000)));
        let end = Instant::now() + Duration::from_secs(2);
        while !pool.queued.is_empty() && Instant::now() < end {
            thread::sleep(Duration::from_millis(1));
        }
        assert!(pool.queued.is_empty());
        let mut refused = 0;
        let mut slowest = Duration::ZERO;
        for port in 2001..2050 {
            let t = Instant::now();
            if !pool.submit(q([127, 0, 0, 1], port)) {
                refused += 1;
            }
            slowest = slowest.max(t.elapsed());
        }
        assert!(slowest < Duration::from_millis(50), "{slowest:?}");
        // two fit in the queue, 47 are refused
        assert_eq!(refused, 47);
        let s = pool.stats();
        assert_eq!(s.dropped, refused);
        assert_eq!(s.sent, 50 - refused);
        assert_eq!(s.in_flight, s.sent);
        let t = Instant::now();
        let s = pool.stop(Duration::from_secs(3));
        // the worker's query runs to its 1.5 s deadline, the queued ones are
        // dropped without being asked
        assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
        assert_eq!(s.in_flight, 0, "{s:?}");
        assert_eq!(s.answered + s.failed + s.dropped, 50, "{s:?}");
        assert_eq!(s.failed, 1, "{s:?}");
        assert_eq!(s.lost, 1, "the timeout result was never taken: {s:?}");
    }

    #[test]
    fn per_host_cap_makes_the_rest_busy_at_once() {
        let Some(server) = FakeIdentd::start_on(
            &[
                Ipv4Addr::LOCALHOST.into(),
                Ipv4Addr::new(127, 0, 0, 2).into(),
            ],
            fake::late(Duration::from_millis(500), b":USERID:UNIX:bob\r\n"),
        ) else {
            panic!("cannot listen on 127.0.0.1 and 127.0.0.2 with one port");
        };
        let (pool, _) = start(config(server.port(), 4, 8, 2));
        for port in [3001, 3002, 3003] {
            assert!(pool.submit(q([127, 0, 0, 1], port)));
        }
        assert!(pool.submit(q([127, 0, 0, 2], 3004)));
        let got = wait_results(&pool, 4, Duration::from_secs(5));
        assert_eq!(got.len(), 4);
        let busy: Vec<_> = got.iter().filter(|(_, o, _)| *o == Outcome::Busy).collect();
        assert_eq!(busy.len(), 1, "{got:?}");
        let (bq, _, blat) = busy[0];
        assert_eq!(bq.client.ip(), IpAddr::from(Ipv4Addr::LOCALHOST));
        assert!(
            *blat < Duration::from_millis(400),
            "busy must be immediate: {blat:?}"
        );
        let users = got.iter().filter(|(_, o, _)| o.token() == "user").count();
        assert_eq!(users, 3, "{got:?}");
        // the slots are given back: the host can be asked again
        assert!(pool.shared.hosts.lock().is_empty());
        assert!(pool.submit(q([127, 0, 0, 1], 3005)));
        let again = wait_results(&pool, 1, Duration::from_secs(5));
        assert_eq!(again[0].1.token(), "user");
        let s = pool.stop(Duration::from_secs(2));
        assert_eq!((s.answered, s.failed), (4, 1));
    }

    #[test]
    fn a_panicking_query_does_not_kill_the_worker() {
        let server = FakeIdentd::start(fake::answer(b":USERID:UNIX:bob\r\n"));
        // one worker, one slot per host: both must survive the panic
        let (pool, _) = start(config(server.port(), 1, 8, 1));
        assert!(pool.submit(q([127, 0, 0, 1], TEST_PANIC_PORT)));
        assert!(pool.submit(q([127, 0, 0, 1], 4001)));
        let got = wait_results(&pool, 2, Duration::from_secs(5));
        assert_eq!(got.len(), 2, "{got:?}");
        assert_eq!(
            got[0].1,
            Outcome::ProtocolError("internal error: test panic trigger".into())
        );
        assert_eq!(got[1].1.token(), "user", "{got:?}");
        assert!(!pool.workers[0].is_finished());
        pool.stop(Duration::from_secs(2));
    }

    #[test]
    fn a_full_results_channel_loses_results_after_the_deadline() {
        let server = FakeIdentd::start(fake::answer(b":USERID:UNIX:bob\r\n"));
        let mut cfg = config(server.port(), 1, 4, 4);
        cfg.query.deadline = Duration::from_millis(200);
        let capacity = cfg.results_capacity();
        assert_eq!(capacity, 5);
        let (pool, waker) = start(cfg);
        for port in 5001..5008 {
            let end = Instant::now() + Duration::from_secs(5);
            while !pool.submit(q([127, 0, 0, 1], port)) {
                assert!(
                    Instant::now() < end,
                    "the worker does not get through the queue"
                );
                thread::sleep(Duration::from_millis(5));
            }
        }
        // nobody takes results: the worker must still get through the queue
        let end = Instant::now() + Duration::from_secs(5);
        while pool.stats().in_flight > 0 && Instant::now() < end {
            thread::sleep(Duration::from_millis(10));
        }
        thread::sleep(Duration::from_millis(300));
        let s = pool.stats();
        assert_eq!(s.in_flight, 0, "{s:?}");
        assert_eq!(s.lost, s.sent - capacity as u64, "{s:?}");
        assert_eq!(waker.0.load(Ordering::SeqCst), capacity);
        assert_eq!(pool.take_results().len(), capacity);
        pool.stop(Duration::from_secs(2));
    }

    #[test]
    fn stop_is_bounded_while_queries_hang() {
        let server = FakeIdentd::start(fake::silent());
        let mut cfg = config(server.port(), 2, 8, 4);
        cfg.query.deadline = Duration::from_secs(3);
        let (pool, _) = start(cfg);
        for port in 6001..6005 {
            assert!(pool.submit(q([127, 0, 0, 1], port)));
        }
        thread::sleep(Duration::from_millis(100));
        let t = Instant::now();
        let s = pool.stop(Duration::from_millis(200));
        let took = t.elapsed();
        assert!(took < Duration::from_millis(600), "{took:?}");
        assert_eq!(s.dropped, 2, "{s:?}");
        assert_eq!(s.in_flight, 2, "two still being asked: {s:?}");
    }

    #[test]
    fn drop_without_stop_lets_the_workers_go() {
        let server = FakeIdentd::start(fake::answer(b":USERID:UNIX:bob\r\n"));
        let (pool, _) = start(config(server.port(), 2, 8, 4));
        let shared = Arc::downgrade(&pool.shared);
        drop(pool);
        let end = Instant::now() + Duration::from_secs(3);
        while shared.strong_count() > 0 && Instant::now() < end {
            thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(shared.strong_count(), 0, "workers still hold the pool");
    }

    #[test]
    fn submit_after_shutdown_is_refused() {
        let (mut pool, _) = start(config(113, 1, 4, 1));
        pool.shutdown();
        assert!(!pool.submit(q([127, 0, 0, 1], 7001)));
        assert_eq!(pool.stats().dropped, 1);
    }

    #[test]
    fn invalid_configs_are_refused() {
        let ok = config(113, 1, 1, 1);
        assert!(ok.validate().is_ok());
        let cases: Vec<(PoolConfig, &str)> = vec![
            (
                PoolConfig {
                    workers: 0,
                    ..ok.clone()
                },
                "invalid ident setting workers=0: must be 1 to 256",
            ),
            (
                PoolConfig {
                    workers: 257,
                    ..ok.clone()
                },
                "invalid ident setting workers=257: must be 1 to 256",
            ),
            (
                PoolConfig {
                    queue_size: 0,
                    ..ok.clone()
                },
                "invalid ident setting queue_size=0: must be 1 to 1048576",
            ),
            (
                PoolConfig {
                    per_host: 0,
                    ..ok.clone()
                },
                "invalid ident setting per_host=0: must be at least 1",
            ),
            (
                PoolConfig {
                    query: QueryConfig {
                        deadline: Duration::ZERO,
                        ..ok.query.clone()
                    },
                    ..ok.clone()
                },
                "invalid ident setting deadline=0: must be more than 0",
            ),
            (
                PoolConfig {
                    query: QueryConfig {
                        connect_timeout: Duration::ZERO,
                        ..ok.query.clone()
                    },
                    ..ok.clone()
                },
                "invalid ident setting connect_timeout=0: must be more than 0",
            ),
            (
                PoolConfig {
                    query: QueryConfig {
                        max_reply: 0,
                        ..ok.query.clone()
                    },
                    ..ok.clone()
                },
                "invalid ident setting max_reply=0: must be 1 to 65536",
            ),
        ];
        for (cfg, msg) in cases {
            let err = Pool::start(cfg, Arc::new(CountingWaker::default()))
                .err()
                .unwrap();
            assert_eq!(err.to_string(), msg);
        }
    }

    #[test]
    fn stats_display() {
        let s = IdentStats {
            sent: 10,
            answered: 6,
            failed: 3,
            dropped: 2,
            lost: 0,
            in_flight: 1,
            latency: Latency {
                total: Duration::from_millis(900),
                max: Duration::from_millis(400),
                count: 9,
            },
        };
        assert_eq!(
            s.to_string(),
            "ident: sent=10 answered=6 failed=3 dropped=2 lost=0 mean_ms=100 max_ms=400"
        );
        assert_eq!(
            IdentStats::default().to_string(),
            "ident: sent=0 answered=0 failed=0 dropped=0 lost=0 mean_ms=0 max_ms=0"
        );
    }
}
