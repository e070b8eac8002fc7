//! masqlog-loggen: a day of a NAT router's flow log, as masqlog's plugin
//! logs it and rsyslog stores it, for benchmarking `masqlog lookup` (see
//! bench/lookup).
//!
//! Each flow gives a start line when it begins and an end line when its
//! conntrack entry is destroyed, in time order, with the lines written by
//! masqlog's own formatter (`masqlog_core::format::text`) behind rsyslog's
//! `RSYSLOG_FileFormat` prefix (what the Debian package's rsyslog snippet
//! writes to /var/log/masqlog.log) or the traditional one. Flows still
//! open at the end of the span have a start line only. The masquerade
//! reuses public ports all day, so one public endpoint carries many flows
//! and only the time tells them apart.
//!
//! It also picks abuse reports with a known answer: for each `--reports`
//! fraction of the span, the first flow starting there (with ports, both
//! lines in the file) whose public endpoint carried no other flow within
//! three minutes of it; the report time is 40 % into the flow. The ground
//! truth (the client, the flow's lines, how many lines name the endpoint)
//! goes to `--truth` as TSV.

mod model;
mod ports;
mod rng;

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::{Parser, ValueEnum};
use masqlog_core::format::text;
use masqlog_core::record::{Endpoint, Event, FlowRecord, NatKind, Remote, Timestamp};

use crate::model::{Model, SEC, diurnal};
use crate::ports::Ports;
use crate::rng::Rng;

/// A report's public endpoint carries no other flow within this of the
/// chosen one (lookup's default slack, 2 minutes, plus a minute).
const GAP: i64 = 180 * SEC;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum PrefixKind {
    /// `2026-11-22T13:37:42.123456+00:00 gw1 masqlog[2034]: ` (RSYSLOG_FileFormat)
    Iso,
    /// `Nov 22 13:37:42 gw1 masqlog[2034]: ` (RSYSLOG_TraditionalFileFormat)
    Traditional,
}

#[derive(Parser, Debug)]
#[command(
    name = "masqlog-loggen",
    about = "Writes a day of masqlog flow lines as rsyslog stores them, and abuse reports \
             with a known answer",
    long_about = "Writes a day of a NAT router's flow log: each flow a start and an end \
                  line as masqlog's plugin formats them (text format, the crate's own \
                  formatter), behind rsyslog's file prefix, in time order; public ports \
                  reused all day. Picks abuse reports (public endpoint and time) whose answer \
                  is known and writes them with their ground truth as TSV.\n\n\
                  Example: masqlog-loggen --flows 10000000 --out masqlog.log --truth truth.tsv"
)]
struct Args {
    /// The log file to write.
    #[arg(long)]
    out: PathBuf,
    /// Where to write the reports and their ground truth (TSV, one header line).
    #[arg(long)]
    truth: Option<PathBuf>,
    /// Flows (each a start and an end line).
    #[arg(long, default_value_t = 10_000_000)]
    flows: u64,
    /// When the span starts (RFC 3339).
    #[arg(long, default_value = "2026-11-22T00:00:00Z")]
    start: String,
    /// How long the span lasts; the arrival rate follows one day's curve over it.
    #[arg(long, default_value_t = 24.0)]
    hours: f64,
    /// Inside clients (10.20.0.1, ...); a few are busy, most are not.
    #[arg(long, default_value_t = 3000)]
    clients: u64,
    /// Remote servers; a few are popular, most are not.
    #[arg(long, default_value_t = 50_000)]
    remotes: u64,
    /// The masquerade's public addresses, comma-separated; each client
    /// always gets the same one.
    #[arg(long, default_value = "203.0.113.1", value_delimiter = ',')]
    public: Vec<Ipv4Addr>,
    /// The rsyslog file format of the prefix.
    #[arg(long, value_enum, default_value_t = PrefixKind::Iso)]
    prefix: PrefixKind,
    /// The host name rsyslog writes.
    #[arg(long, default_value = "gw1")]
    host: String,
    /// ulogd's pid, in the tag `masqlog[PID]:`.
    #[arg(long, default_value_t = 2034)]
    pid: u32,
    /// The seed: the same seed and options give the same file.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Where in the span to pick reports, as fractions, comma-separated.
    #[arg(long, default_value = "0.02,0.25,0.5,0.75,0.98", value_delimiter = ',')]
    reports: Vec<f64>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("masqlog-loggen: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn ts(us: i64) -> Timestamp {
    Timestamp::new(us.div_euclid(SEC), us.rem_euclid(SEC) as u32)
}

/// A flow whose end line is still to come.
struct Pending {
    end: i64,
    seq: u64,
    rec: FlowRecord,
    /// Its public endpoint (`None`: ICMP).
    ep: Option<usize>,
}

impl PartialEq for Pending {
    fn eq(&self, o: &Self) -> bool {
        (self.end, self.seq) == (o.end, o.seq)
    }
}
impl Eq for Pending {}
impl PartialOrd for Pending {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Pending {
    /// Reversed: the heap gives the earliest end first.
    fn cmp(&self, o: &Self) -> Ordering {
        (o.end, o.seq).cmp(&(self.end, self.seq))
    }
}

/// The file being written: rsyslog's prefix, masqlog's body.
struct Out {
    w: BufWriter<File>,
    line: Vec<u8>,
    kind: PrefixKind,
    /// ` HOST masqlog[PID]: `
    tag: Vec<u8>,
    lines: u64,
    bytes: u64,
    /// The prefix time of the last line (µs): rsyslog writes in arrival order.
    last: i64,
}

impl Out {
    /// Writes one line for `rec`, logged at `at` (µs) plus rsyslog's delay;
    /// returns its line number.
    fn emit(&mut self, rec: &FlowRecord, at: i64, rng: &mut Rng) -> Result<u64> {
        let received = (at + rng.range(40, 400) as i64).max(self.last);
        self.last = received;
        self.line.clear();
        match self.kind {
            PrefixKind::Iso => {
                masqlog_core::time::write_rfc3339_micros(ts(received), &mut self.line);
                self.line.pop(); // the Z
                self.line.extend_from_slice(b"+00:00");
            }
            PrefixKind::Traditional => {
                masqlog_core::time::write_rfc3164(ts(received), &mut self.line)
            }
        }
        self.line.extend_from_slice(&self.tag);
        text::write_body(rec, &mut self.line);
        self.line.push(b'\n');
        self.w.write_all(&self.line)?;
        self.lines += 1;
        self.bytes += self.line.len() as u64;
        Ok(self.lines)
    }

    /// The last line written, without its newline.
    fn last_line(&self) -> String {
        String::from_utf8_lossy(&self.line[..self.line.len() - 1]).into_owned()
    }
}

/// A flow chosen for a report.
#[derive(Clone, Debug)]
struct Chosen {
    seq: u64,
    ep: usize,
    public: String,
    rec: FlowRecord,
    start: i64,
    end: i64,
    start_line: (u64, String),
    end_line: Option<(u64, String)>,
}

#[derive(Clone, Debug)]
enum SlotState {
    /// Looking for a flow starting at or after the slot's time.
    Waiting,
    /// Chosen; its endpoint is watched for a reuse within [`GAP`].
    Candidate(Box<Chosen>),
    Done(Box<Chosen>),
}

struct Slot {
    frac: f64,
    from: i64,
    state: SlotState,
}

fn endpoint_string(ep: &Endpoint) -> String {
    match (ep.ip, ep.port) {
        (ip, None) => ip.to_string(),
        (IpAddr::V4(a), Some(p)) => format!("{a}:{p}"),
        (ip, Some(p)) => format!("[{ip}]:{p}"),
    }
}

fn rfc3339(us: i64) -> String {
    let mut v = Vec::new();
    masqlog_core::time::write_rfc3339_micros(ts(us), &mut v);
    String::from_utf8_lossy(&v).into_owned()
}

fn run(args: &Args) -> Result<()> {
    if args.flows == 0 || args.clients == 0 || args.remotes == 0 || args.public.is_empty() {
        bail!("--flows, --clients, --remotes and --public must not be zero or empty");
    }
    if args.hours.is_nan() || args.hours <= 0.0 {
        bail!("--hours must be positive");
    }
    if let Some(f) = args.reports.iter().find(|f| !(0.0..1.0).contains(*f)) {
        bail!("--reports {f}: fractions of the span, from 0 up to 1 (excluded)");
    }
    let base = masqlog_core::time::parse_rfc3339(&args.start)
        .with_context(|| format!("--start {}: not an RFC 3339 time", args.start))?
        .as_micros();
    let span = (args.hours * 3600.0 * SEC as f64) as i64;
    let span_end = base + span;
    let started = Instant::now();

    let file =
        File::create(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    let mut out = Out {
        w: BufWriter::with_capacity(4 << 20, file),
        line: Vec::with_capacity(512),
        kind: args.prefix,
        tag: format!(" {} masqlog[{}]: ", args.host, args.pid).into_bytes(),
        lines: 0,
        bytes: 0,
        last: i64::MIN,
    };
    let model = Model {
        clients: args.clients,
        remotes: args.remotes,
    };
    let mut rng = Rng::new(args.seed);
    let mut ports = Ports::new(args.public.clone());
    let mut heap: BinaryHeap<Pending> = BinaryHeap::new();
    let mut slots: Vec<Slot> = args
        .reports
        .iter()
        .map(|&frac| Slot {
            frac,
            from: base + (frac * span as f64) as i64,
            state: SlotState::Waiting,
        })
        .collect();
    // Watched endpoint -> slot index.
    let mut watch: HashMap<usize, usize> = HashMap::new();
    let mut open = 0u64;
    let n = args.flows;

    // Writes the end lines due by `until`.
    let drain = |heap: &mut BinaryHeap<Pending>,
                 until: i64,
                 out: &mut Out,
                 ports: &mut Ports,
                 slots: &mut [Slot],
                 rng: &mut Rng|
     -> Result<()> {
        while heap.peek().is_some_and(|p| p.end <= until) {
            let p = heap.pop().expect("peeked");
            let line = out.emit(&p.rec, p.end, rng)?;
            if let Some(ep) = p.ep {
                ports.lines[ep] += 1;
            }
            for s in slots.iter_mut() {
                if let SlotState::Candidate(c) = &mut s.state
                    && c.seq == p.seq
                {
                    c.end_line = Some((line, out.last_line()));
                }
            }
        }
        Ok(())
    };

    for i in 0..n {
        let x = diurnal((i as f64 + rng.f64()) / n as f64);
        let start = base + (x * span as f64) as i64;
        drain(&mut heap, start, &mut out, &mut ports, &mut slots, &mut rng)?;
        // A candidate whose endpoint stayed unused for GAP after its end is
        // kept.
        for s in slots.iter_mut() {
            if let SlotState::Candidate(c) = &s.state
                && start > c.end + GAP
            {
                watch.remove(&c.ep);
                s.state = SlotState::Done(c.clone());
            }
        }

        let f = model.flow(&mut rng);
        let end = start + f.duration;
        let ip_idx = (f.client_idx % args.public.len() as u64) as usize;
        let (masq, taken) = match f.client.port {
            Some(want) => {
                let Some(t) = ports.take(ip_idx, want, start, end, &mut rng) else {
                    bail!(
                        "every port of {} is busy at flow {i}: give more --public addresses \
                         or fewer --flows per --hours",
                        args.public[ip_idx]
                    );
                };
                (
                    Endpoint {
                        ip: IpAddr::V4(t.ip),
                        port: Some(t.port),
                    },
                    Some(t),
                )
            }
            None => (
                Endpoint {
                    ip: IpAddr::V4(args.public[ip_idx]),
                    port: None,
                },
                None,
            ),
        };
        // Reused within GAP of a candidate's end: that candidate is off.
        if let Some(t) = &taken
            && let Some(k) = watch.remove(&t.slot)
        {
            slots[k].state = SlotState::Waiting;
        }
        let mut rec = FlowRecord {
            event: Event::Start,
            nat: NatKind::Snat,
            proto: f.proto,
            id: Some(rng.u32()),
            client: f.client,
            masq,
            remote: Remote::Shown(f.remote),
            start: Some(ts(start)),
            end: None,
            out: None,
            inbound: None,
            ident: None,
        };
        let line = out.emit(&rec, start, &mut rng)?;
        if let Some(t) = &taken {
            ports.lines[t.slot] += 1;
        }
        if let Some(t) = &taken
            && end < span_end
            && (t.prev_end == 0 || start - t.prev_end > GAP)
            && let Some(k) = slots
                .iter()
                .position(|s| matches!(s.state, SlotState::Waiting) && s.from <= start)
        {
            slots[k].state = SlotState::Candidate(Box::new(Chosen {
                seq: i,
                ep: t.slot,
                public: format!("{}:{}", t.ip, t.port),
                rec: rec.clone(),
                start,
                end,
                start_line: (line, out.last_line()),
                end_line: None,
            }));
            watch.insert(t.slot, k);
        }
        if end < span_end {
            rec.event = Event::End;
            rec.end = Some(ts(end));
            rec.out = Some(f.out);
            rec.inbound = Some(f.inbound);
            heap.push(Pending {
                end,
                seq: i,
                rec,
                ep: taken.map(|t| t.slot),
            });
        } else {
            open += 1;
        }
    }
    drain(
        &mut heap,
        i64::MAX,
        &mut out,
        &mut ports,
        &mut slots,
        &mut rng,
    )?;
    out.w.flush()?;
    let file = out.w.into_inner().map_err(|e| e.into_error())?;
    // As rsyslog leaves it: last written at the last line's time.
    let mtime = std::time::UNIX_EPOCH
        + std::time::Duration::from_micros(u64::try_from(out.last.max(0)).unwrap_or(0));
    file.set_modified(mtime)
        .with_context(|| format!("setting the mtime of {}", args.out.display()))?;
    drop(file);

    let used = ports.flows.iter().filter(|&&c| c > 0).count();
    let port_flows: u64 = ports.flows.iter().map(|&c| u64::from(c)).sum();
    eprintln!(
        "masqlog-loggen: {n} flows ({open} still open at the end: start line only), {} lines, \
         {} bytes in {:.1} s; {used} public endpoints carry {port_flows} flows with ports \
         ({:.0} each on average, {:.1} % remapped from the client's port)",
        out.lines,
        out.bytes,
        started.elapsed().as_secs_f64(),
        port_flows as f64 / used.max(1) as f64,
        100.0 * ports.remapped as f64 / port_flows.max(1) as f64,
    );

    let mut truth = String::from(
        "report\tfraction\tpublic\tat\tclient\tproto\tid\tremote\tstart\tend\t\
         endpoint_flows\tendpoint_lines\tstart_lineno\tend_lineno\tstart_line\tend_line\n",
    );
    let mut missing = Vec::new();
    for (k, s) in slots.iter().enumerate() {
        let c = match &s.state {
            SlotState::Done(c) | SlotState::Candidate(c) => c,
            SlotState::Waiting => {
                missing.push(s.frac);
                continue;
            }
        };
        let Some((end_no, end_text)) = &c.end_line else {
            bail!("report {}: the chosen flow has no end line", k + 1);
        };
        // 40 % into the flow, in whole seconds, inside it.
        let mut at = (c.start + (c.end - c.start) * 2 / 5).div_euclid(SEC);
        if at * SEC < c.start {
            at += 1;
        }
        let at = format!("{}Z", &rfc3339(at * SEC)[..19]);
        let proto = c.rec.proto.name().unwrap_or("?");
        truth.push_str(&format!(
            "{}\t{}\t{}\t{at}\t{}\t{proto}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\n",
            k + 1,
            s.frac,
            c.public,
            endpoint_string(&c.rec.client),
            c.rec.id.unwrap_or(0),
            c.rec
                .remote
                .endpoint()
                .map_or_else(|| "-".to_string(), |r| endpoint_string(&r)),
            rfc3339(c.start),
            rfc3339(c.end),
            ports.flows[c.ep],
            ports.lines[c.ep],
            c.start_line.0,
            end_no,
            c.start_line.1,
            end_text,
        ));
        eprintln!(
            "masqlog-loggen: report {}: {} at {at} was {} ({proto}, lines {} and {}; \
             {} flows on that endpoint)",
            k + 1,
            c.public,
            endpoint_string(&c.rec.client),
            c.start_line.0,
            end_no,
            ports.flows[c.ep]
        );
    }
    if !missing.is_empty() {
        bail!("no flow fit the reports at {missing:?}: give more --flows");
    }
    if let Some(path) = &args.truth {
        std::fs::write(path, truth).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
