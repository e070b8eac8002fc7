//! One MASQLOG instance of a ulogd stack, in safe Rust: configuration,
//! start, the per-event path, statistics and stop. The `ffi` room calls
//! these from ulogd's callbacks; everything here runs on ulogd's thread.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::sink::{Level, SinkError, SinkStats, Waker, Writer, drops, orphans};
use masqlog_core::config::{Config, ConfigError, RawValue, RemoteMode};
use masqlog_core::ident::{IdentError, Outcome, Pool, Query};
use masqlog_core::record::{
    Endpoint, Event, FlowRecord, IdentInfo, NatKind, Proto, RawConntrack, Remote, Skip, remote_hash,
};

/// What the instance needs from its host (ulogd): a log.
pub trait HostLog {
    fn log(&self, level: Level, msg: &str);
}

/// How long `stop` waits for queued records to be sent.
const STOP_GRACE_MAX: Duration = Duration::from_secs(5);
/// At most one "queue full" error line per this interval.
const DROP_REPORT_INTERVAL: Duration = Duration::from_secs(10);

/// IDENT answers kept for the end lines of their flows, at most.
const ANSWERS_KEPT: usize = 65_536;

/// Why an instance could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Sink(#[from] SinkError),
    #[error("ident: {0}")]
    Ident(#[from] IdentError),
}

/// IDENT answers waiting for the end lines of their flows: a map with a
/// fixed capacity that forgets the oldest entry first.
#[derive(Default)]
struct Answers {
    map: HashMap<u32, IdentInfo>,
    order: VecDeque<u32>,
}

impl Answers {
    fn insert(&mut self, id: u32, info: IdentInfo) {
        if self.map.insert(id, info).is_none() {
            self.order.push_back(id);
        }
        while self.order.len() > ANSWERS_KEPT {
            if let Some(old) = self.order.pop_front() {
                self.map.remove(&old);
            }
        }
    }

    fn take(&mut self, id: u32) -> Option<IdentInfo> {
        // The id stays in `order` until it ages out: `insert` tolerates that.
        self.map.remove(&id)
    }
}

/// The IDENT side of an instance.
struct IdentState {
    pool: Pool,
    /// Start records of flows whose query is under way, by conntrack id,
    /// with the time the query was queued (bounded by `cap`).
    pending: HashMap<u32, (FlowRecord, Instant)>,
    /// The pool's queue plus its workers.
    cap: usize,
    /// No query can still be under way after this long (a result the pool
    /// could not deliver leaves its entry behind until then).
    stale: Duration,
    answers: Answers,
}

/// Counts of what `interp` saw, besides the sink's own counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EventCounts {
    /// Events handed to `interp`.
    pub events: u64,
    /// Translated flows handed to the writer (or dropped by a full queue).
    pub logged: u64,
    /// Events of flows that are not translated (or not of the kind kept).
    pub untranslated: u64,
    /// Events without the addresses or protocol (another source than NFCT?).
    pub incomplete: u64,
}

/// The state of one instance, boxed into ulogd's private area between
/// `configure` and `stop`.
pub struct Instance {
    id: String,
    cfg: Config,
    writer: Option<Writer>,
    ident: Option<IdentState>,
    counts: EventCounts,
    drops_reported: u64,
    last_drop_report: Option<Instant>,
    /// The process's netfilter sockets at `configure`, to tell this
    /// stack's NFCT socket at `start`.
    sockets_before: drops::Before,
    /// The configured `spool_dir` (also with the spool off), where spools
    /// no instance sends are looked for at start.
    spool_root: Option<std::path::PathBuf>,
}

impl Instance {
    /// Validates the values ulogd read from the `[id]` section.
    pub fn configure(id: &str, values: &[RawValue]) -> Result<Instance, ConfigError> {
        let mut cfg = Config::from_values(values)?;
        // Each instance has a spool of its own under spool_dir.
        cfg.spool = cfg.spool.map(|sc| sc.for_instance(id));
        // ... and seals as writer HOST/ID.
        cfg.seal.instance = id.to_string();
        Ok(Instance {
            id: id.to_string(),
            cfg,
            writer: None,
            ident: None,
            counts: EventCounts::default(),
            drops_reported: 0,
            last_drop_report: None,
            sockets_before: drops::Before::now(),
            spool_root: Config::spool_root(values),
        })
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Starts the writer thread, and the IDENT workers when configured.
    pub fn start(&mut self, waker: Arc<dyn Waker>, host: &dyn HostLog) -> Result<(), StartError> {
        let drop_source = drops::DropSource::since(&self.sockets_before);
        let drops_from = drop_source.describe();
        let writer = Writer::start(&self.cfg, waker.clone(), drop_source)?;
        if let Some(ic) = &self.cfg.ident {
            match Pool::start(ic.pool.clone(), waker) {
                Ok(pool) => {
                    self.ident = Some(IdentState {
                        pool,
                        pending: HashMap::new(),
                        cap: ic.pool.queue_size + ic.pool.workers,
                        // queued behind the whole queue, then asked
                        stale: ic.pool.query.deadline
                            * (ic.pool.queue_size.div_ceil(ic.pool.workers) as u32 + 2)
                            + Duration::from_secs(1),
                        answers: Answers::default(),
                    });
                }
                Err(e) => {
                    writer.stop(Duration::ZERO);
                    return Err(e.into());
                }
            }
        }
        self.writer = Some(writer);
        // Read in ulogd's network namespace, the one whose conntrack it logs.
        for warning in masqlog_core::config::sysctls_off(|key| {
            std::fs::read_to_string(std::path::Path::new("/proc/sys").join(key))
        }) {
            host.log(Level::Error, &format!("MASQLOG[{}] {warning}", self.id));
        }
        if let Some(root) = &self.spool_root {
            for line in orphans::notices(root, &self.id, self.cfg.spool.is_some()) {
                host.log(Level::Notice, &format!("MASQLOG[{}] {line}", self.id));
            }
        }
        host.log(
            Level::Info,
            &format!(
                "MASQLOG[{}] started: format={:?} nat={:?} destination={} queue_size={} spool={}; {drops_from}",
                self.id,
                self.cfg.format,
                self.cfg.nat,
                self.cfg.destination,
                self.cfg.queue_size,
                self.cfg
                    .spool
                    .as_ref()
                    .map_or_else(|| "off".to_string(), |s| s.dir.display().to_string())
            ),
        );
        Ok(())
    }

    pub fn started(&self) -> bool {
        self.writer.is_some()
    }

    /// Handles one conntrack event; never blocks.
    pub fn interp(&mut self, raw: &RawConntrack, host: &dyn HostLog) {
        self.counts.events += 1;
        if self.writer.is_none() {
            return;
        }
        match FlowRecord::from_conntrack(raw, self.cfg.nat) {
            Ok(mut rec) => {
                self.counts.logged += 1;
                // IDENT asks about the remote port whatever the lines show.
                let remote = rec.remote.endpoint();
                if let Some(ep) = remote {
                    rec.remote = match self.cfg.remote {
                        RemoteMode::Log => Remote::Shown(ep),
                        RemoteMode::Omit => Remote::Omitted,
                        RemoteMode::Hash(key) => Remote::Hashed(remote_hash(&key, &ep)),
                    };
                }
                let query = self.ident_query(&mut rec, remote);
                let submitted = self.writer.as_ref().is_some_and(|w| w.submit(rec));
                if !submitted {
                    self.report_drops(host);
                }
                // The start line is queued first: IDENT never delays it.
                if let Some((start_rec, q)) = query {
                    self.submit_query(start_rec, q, host);
                }
            }
            Err(Skip::NotTranslated) => self.counts.untranslated += 1,
            Err(Skip::Incomplete) => self.counts.incomplete += 1,
        }
    }

    /// For a new masqueraded TCP flow that the filters select: the start
    /// record to keep and the query to send. For an end record: attaches
    /// the flow's IDENT answer when it came in time.
    fn ident_query(
        &mut self,
        rec: &mut FlowRecord,
        remote: Option<Endpoint>,
    ) -> Option<(FlowRecord, Query)> {
        let st = self.ident.as_mut()?;
        let ic = self.cfg.ident.as_ref()?;
        let id = rec.id?;
        match rec.event {
            Event::End => {
                // When the query is still under way (the flow ended first),
                // the end line has no user; the ident line follows.
                rec.ident = st.answers.take(id);
                None
            }
            Event::Start
                if rec.proto == Proto::Tcp
                    && rec.nat == NatKind::Snat
                    && rec.client.port.is_some()
                    && remote.is_some_and(|r| ic.wants(rec.client.ip, r.port.unwrap_or(0))) =>
            {
                let remote = remote?;
                let q = Query {
                    ct_id: Some(id),
                    client: std::net::SocketAddr::new(rec.client.ip, rec.client.port?),
                    remote: std::net::SocketAddr::new(remote.ip, remote.port?),
                };
                Some((rec.clone(), q))
            }
            _ => None,
        }
    }

    fn submit_query(&mut self, start_rec: FlowRecord, q: Query, host: &dyn HostLog) {
        let Some(st) = self.ident.as_mut() else {
            return;
        };
        let Some(id) = q.ct_id else { return };
        if st.pending.len() >= st.cap {
            let stale = st.stale;
            st.pending.retain(|_, (_, at)| at.elapsed() < stale);
        }
        let accepted = if st.pending.len() < st.cap {
            st.pool.submit(q)
        } else {
            st.pool.count_refused();
            false
        };
        if accepted {
            st.pending.insert(id, (start_rec, Instant::now()));
        } else {
            // No query sent: the outcome is recorded at once.
            self.write_ident(start_rec, IdentInfo::from(Outcome::QueueFull), host);
        }
    }

    /// Writes the ident line of a flow and keeps the answer for its end line.
    fn write_ident(&mut self, start_rec: FlowRecord, info: IdentInfo, host: &dyn HostLog) {
        let Some(writer) = &self.writer else { return };
        if let (Some(st), Some(id)) = (self.ident.as_mut(), start_rec.id) {
            st.answers.insert(id, info.clone());
        }
        let rec = FlowRecord {
            event: Event::Ident,
            end: None,
            out: None,
            inbound: None,
            ident: Some(info),
            ..start_rec
        };
        if !writer.submit(rec) {
            self.report_drops(host);
        }
    }

    /// Writes the ident lines of the queries that finished.
    fn drain_ident(&mut self, host: &dyn HostLog) {
        let Some(st) = self.ident.as_mut() else {
            return;
        };
        let results = st.pool.take_results();
        for (q, outcome, _latency) in results {
            let Some(st) = self.ident.as_mut() else {
                return;
            };
            // Every query sent yields one result; the start record waits
            // for it even when the flow has ended meanwhile, so a late
            // answer still gets its ident line.
            let Some((start_rec, _)) = q.ct_id.and_then(|id| st.pending.remove(&id)) else {
                continue;
            };
            self.write_ident(start_rec, IdentInfo::from(outcome), host);
        }
    }

    fn report_drops(&mut self, host: &dyn HostLog) {
        let now = Instant::now();
        if self
            .last_drop_report
            .is_some_and(|t| now.duration_since(t) < DROP_REPORT_INTERVAL)
        {
            return;
        }
        let Some(writer) = &self.writer else { return };
        let dropped = writer.stats().dropped;
        let why = match &self.cfg.spool {
            // With a spool, only the lane's refusal drops a record.
            Some(_) => writer.refusal(),
            None => format!(
                "queue full ({} records); the destination {} is too slow or down",
                self.cfg.queue_size, self.cfg.destination
            ),
        };
        host.log(
            Level::Error,
            &format!(
                "MASQLOG[{}] {} flow records dropped so far ({} since the last report): {why}",
                self.id,
                dropped,
                dropped - self.drops_reported,
            ),
        );
        self.drops_reported = dropped;
        self.last_drop_report = Some(now);
    }

    /// The statistics line.
    pub fn stats_line(&self) -> String {
        let stats = self.writer.as_ref().map(Writer::stats).unwrap_or_default();
        self.format_stats("stats", stats)
    }

    fn format_stats(&self, what: &str, s: SinkStats) -> String {
        let c = self.counts;
        let ident = self
            .ident
            .as_ref()
            .map(|st| format!(" {}", st.pool.stats()))
            .unwrap_or_default();
        // IPFIX over UDP: what nobody acknowledged (the collector counts
        // its losses by the sequence numbers).
        let unacked = if matches!(
            self.cfg.destination,
            masqlog_core::config::Destination::IpfixUdp(_)
        ) {
            format!(" unacked={}", s.unacked)
        } else {
            String::new()
        };
        // PostgreSQL: batches that ended because the database did not
        // answer within the send timeout (a hung or black-holed server).
        let timed_out = if matches!(
            self.cfg.destination,
            masqlog_core::config::Destination::Postgres(_)
        ) {
            format!(" timed_out={}", s.timed_out)
        } else {
            String::new()
        };
        // Without a forwarding destination (`destination=none`) there is
        // nothing written, failed or spooled but the store's own counts.
        let forwarding = if self.cfg.destination.forwards() {
            format!(
                "written={} failed={} dropped={} spooled={}",
                s.written, s.failed, s.dropped, s.spooled
            )
        } else {
            format!("destination=none dropped={}", s.dropped)
        };
        let store = s.store.map(|st| format!(" {st}")).unwrap_or_default();
        format!(
            "MASQLOG[{}] {what}: waiting={} {forwarding} events_lost={} batches={} events={} logged={} untranslated={} incomplete={}{unacked}{timed_out}{store}{ident}",
            self.id,
            s.waiting,
            s.events_lost,
            s.batches,
            c.events,
            c.logged,
            c.untranslated,
            c.incomplete
        )
    }

    /// The writer thread woke the main thread: log what it left.
    pub fn on_wake(&mut self, host: &dyn HostLog) {
        self.drain_ident(host);
        let Some(writer) = &self.writer else { return };
        for n in writer.take_notices() {
            // The writer's periodic statistics line carries only its own
            // counters: log the full line instead.
            if n.level == Level::Info && n.message.starts_with("stats:") {
                host.log(Level::Info, &self.stats_line());
            } else {
                host.log(n.level, &format!("MASQLOG[{}] {}", self.id, n.message));
            }
        }
    }

    /// SIGUSR1 logs the statistics line; SIGHUP makes the writer drop its
    /// connection and open a new one (after the receiver moved or rotated).
    pub fn signal(&mut self, sig: i32, host: &dyn HostLog) {
        if sig == libc::SIGUSR1 {
            host.log(Level::Notice, &self.stats_line());
        } else if sig == libc::SIGHUP
            && let Some(w) = &self.writer
        {
            w.reconnect();
        }
    }

    /// Sends what is queued (bounded wait), stops the writer and logs the
    /// final counts; an error line when anything was lost.
    pub fn stop(&mut self, host: &dyn HostLog) {
        let grace = (self.cfg.send_timeout * 2).min(STOP_GRACE_MAX);
        self.on_wake(host);
        if let Some(st) = self.ident.take() {
            // Answers still under way at shutdown are not waited for (their
            // flows keep the lines they have) and count as lost.
            let istats = st.pool.stop(grace);
            host.log(
                Level::Notice,
                &format!("MASQLOG[{}] ident stopped: {istats}", self.id),
            );
        }
        let Some(writer) = self.writer.take() else {
            return;
        };
        let (stats, notices) = writer.stop_with_notices(grace);
        for n in notices {
            host.log(n.level, &format!("MASQLOG[{}] {}", self.id, n.message));
        }
        let level = if stats.dropped > 0 {
            Level::Error
        } else {
            Level::Notice
        };
        host.log(level, &self.format_stats("stopped", stats));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use masqlog_core::keys::{CONF_KEYS, ConfKind};

    fn values(over: &[(&str, RawValue)]) -> Vec<RawValue> {
        CONF_KEYS
            .iter()
            .map(|k| {
                if let Some((_, v)) = over.iter().find(|(n, _)| *n == k.name) {
                    return v.clone();
                }
                match k.kind {
                    ConfKind::Str => RawValue::Str(k.default.into()),
                    ConfKind::Int => RawValue::Int(k.default.parse().unwrap()),
                }
            })
            .collect()
    }

    #[test]
    fn configure_reports_the_bad_key() {
        let err = Instance::configure("m1", &values(&[("format", RawValue::Str("xml".into()))]))
            .err()
            .unwrap();
        assert_eq!(err.key, "format");
    }

    #[test]
    fn interp_before_start_counts_but_does_nothing() {
        struct NoLog;
        impl HostLog for NoLog {
            fn log(&self, _: Level, _: &str) {
                panic!("no log expected");
            }
        }
        let mut i =
            Instance::configure("m1", &values(&[("spool_size_mb", RawValue::Int(0))])).unwrap();
        i.interp(&RawConntrack::default(), &NoLog);
        assert!(!i.started());
        assert!(
            i.stats_line().contains("events=1 logged=0"),
            "{}",
            i.stats_line()
        );
    }
}
