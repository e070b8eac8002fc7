//! One MASQLOG instance of a ulogd stack, in safe Rust: configuration,
//! start, the per-event path, statistics and stop. The `ffi` room calls
//! these from ulogd's callbacks; everything here runs on ulogd's thread.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::{Config, ConfigError, RawValue};
use crate::record::{FlowRecord, RawConntrack, Skip};
use crate::sink::{Level, SinkError, Stats, Waker, Writer};

/// What the instance needs from its host (ulogd): a log.
pub trait Host {
    fn log(&self, level: Level, msg: &str);
}

/// How long `stop` waits for queued records to be sent.
const STOP_GRACE_MAX: Duration = Duration::from_secs(5);
/// At most one "queue full" error line per this interval.
const DROP_REPORT_INTERVAL: Duration = Duration::from_secs(10);

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
    counts: EventCounts,
    drops_reported: u64,
    last_drop_report: Option<Instant>,
}

impl Instance {
    /// Validates the values ulogd read from the `[id]` section.
    pub fn configure(id: &str, values: &[RawValue]) -> Result<Instance, ConfigError> {
        let cfg = Config::from_values(values)?;
        Ok(Instance {
            id: id.to_string(),
            cfg,
            writer: None,
            counts: EventCounts::default(),
            drops_reported: 0,
            last_drop_report: None,
        })
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Starts the writer thread.
    pub fn start(&mut self, waker: Arc<dyn Waker>, host: &dyn Host) -> Result<(), SinkError> {
        let writer = Writer::start(&self.cfg, waker)?;
        self.writer = Some(writer);
        host.log(
            Level::Info,
            &format!(
                "MASQLOG[{}] started: format={:?} nat={:?} destination={} queue_size={}",
                self.id, self.cfg.format, self.cfg.nat, self.cfg.destination, self.cfg.queue_size
            ),
        );
        Ok(())
    }

    pub fn started(&self) -> bool {
        self.writer.is_some()
    }

    /// Handles one conntrack event; never blocks.
    pub fn interp(&mut self, raw: &RawConntrack, host: &dyn Host) {
        self.counts.events += 1;
        let Some(writer) = &self.writer else {
            return;
        };
        match FlowRecord::from_conntrack(raw, self.cfg.nat) {
            Ok(rec) => {
                self.counts.logged += 1;
                if !writer.submit(rec) {
                    self.report_drops(host);
                }
            }
            Err(Skip::NotTranslated) => self.counts.untranslated += 1,
            Err(Skip::Incomplete) => self.counts.incomplete += 1,
        }
    }

    fn report_drops(&mut self, host: &dyn Host) {
        let now = Instant::now();
        if self
            .last_drop_report
            .is_some_and(|t| now.duration_since(t) < DROP_REPORT_INTERVAL)
        {
            return;
        }
        let Some(writer) = &self.writer else { return };
        let dropped = writer.stats().dropped;
        host.log(
            Level::Error,
            &format!(
                "MASQLOG[{}] queue full ({} records): {} flow records dropped so far ({} since the last report); the syslog destination {} is too slow or down",
                self.id,
                self.cfg.queue_size,
                dropped,
                dropped - self.drops_reported,
                self.cfg.destination
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

    fn format_stats(&self, what: &str, s: Stats) -> String {
        let c = self.counts;
        format!(
            "MASQLOG[{}] {what}: waiting={} written={} failed={} dropped={} events={} logged={} untranslated={} incomplete={}",
            self.id,
            s.waiting,
            s.written,
            s.failed,
            s.dropped,
            c.events,
            c.logged,
            c.untranslated,
            c.incomplete
        )
    }

    /// The writer thread woke the main thread: log what it left.
    pub fn on_wake(&mut self, host: &dyn Host) {
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

    /// SIGUSR1 logs the statistics line.
    pub fn signal(&mut self, sig: i32, host: &dyn Host) {
        if sig == libc::SIGUSR1 {
            host.log(Level::Notice, &self.stats_line());
        }
    }

    /// Sends what is queued (bounded wait), stops the writer and logs the
    /// final counts; an error line when anything was lost.
    pub fn stop(&mut self, host: &dyn Host) {
        self.on_wake(host);
        let Some(writer) = self.writer.take() else {
            return;
        };
        let grace = (self.cfg.send_timeout * 2).min(STOP_GRACE_MAX);
        let stats = writer.stop(grace);
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
    use crate::keys::{CONF_KEYS, ConfKind};

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
        struct NoHost;
        impl Host for NoHost {
            fn log(&self, _: Level, _: &str) {
                panic!("no log expected");
            }
        }
        let mut i = Instance::configure("m1", &values(&[])).unwrap();
        i.interp(&RawConntrack::default(), &NoHost);
        assert!(!i.started());
        assert!(
            i.stats_line().contains("events=1 logged=0"),
            "{}",
            i.stats_line()
        );
    }
}
