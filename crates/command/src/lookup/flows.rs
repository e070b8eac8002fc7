//! From lines to flows, and from flows to the answer.
//!
//! **Joining.** The lines of one public endpoint are grouped by protocol and
//! conntrack id, ordered by their own times (a start line at its start, an
//! end line at its end, update and ident lines at the flow's start), and
//! swept: a start line opens a flow; an end line closes the open flow when
//! their start times agree (within 2 s, or either is unknown), else it is a
//! flow of its own whose start line was not read ("end only"); update,
//! ident and later kinds of line join the open flow, or the flow with the
//! same start time that just ended (ident answers can come after the end).
//! A second start line while a flow is open means the first one's end line
//! was lost (ulogd restart, dropped message): it ended before that start.
//! A flow with no end line at the end of the logs is open.
//!
//! **Matching.** A flow matches when the report time is within its lifetime
//! `[start, end]` widened by the slack on both sides, edges included, and
//! it passes the filters (`--proto`; `--remote` address). An open flow that
//! started more than `--max-age` before the report is not believed to be
//! still alive (its end line was most likely lost) and is shown as a hint,
//! not a match. For a time that happened twice (fall back), a flow matches
//! if either instant fits.
//!
//! A flow whose remote was not logged (`remote=omit|hash`) is not left out
//! by `--remote`, but ranks after flows whose remote is known to match.
//!
//! **Ranking**, best first: the remote port the report names (when it names
//! one), then the distance of the report time from the lifetime (0 inside),
//! then how complete the flow is (start and end known; open; end lost;
//! start unknown), then the distance from the start.

use std::collections::BTreeMap;

use super::query::{AbuseReport, canon};
use super::scan::{Candidate, LineEvent, SAME_START_US};
use masqlog_core::record::{Event, FlowRecord, IdentInfo, Remote, Timestamp};

/// How a flow's life ended, as far as the logs tell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlowEnd {
    /// The end line says when.
    At(Timestamp),
    /// No end line in the logs read.
    Open,
    /// No end line, but the same conntrack id started again (or ended with
    /// another start time) at `before`: this flow ended before then.
    Lost { before: Timestamp },
}

/// One flow, joined from its lines.
#[derive(Clone, Debug)]
pub struct Flow {
    /// The fields its lines share, joined: the event, protocol, NAT kind,
    /// id, client and public endpoint of the line that opened the flow; the
    /// first start time given; the remote as any line shows it (else as any
    /// line hashes it, else omitted); the last counters given. Its `end`
    /// and `ident` stay `None`: the flow's are [`Flow::end`] and
    /// [`Flow::idents`].
    pub record: FlowRecord,
    pub end: FlowEnd,
    /// IDENT outcomes, as logged (usually one).
    pub idents: Vec<IdentInfo>,
    /// Fields this build does not know, from every line, without repeats.
    pub extra: Vec<(String, Vec<u8>)>,
    /// The lines (indexes into the candidates), in time order.
    pub lines: Vec<usize>,
}

impl Flow {
    fn from_line(i: usize, c: &Candidate) -> Flow {
        let mut f = Flow {
            record: FlowRecord {
                end: None,
                ident: None,
                ..c.parsed.record.clone()
            },
            end: FlowEnd::Open,
            idents: Vec::new(),
            extra: Vec::new(),
            lines: Vec::new(),
        };
        f.absorb(i, c);
        f
    }

    fn absorb(&mut self, i: usize, c: &Candidate) {
        let p = &c.parsed.record;
        let r = &mut self.record;
        self.lines.push(i);
        r.remote = match (r.remote, p.remote) {
            (shown @ Remote::Shown(_), _) => shown,
            (_, shown @ Remote::Shown(_)) => shown,
            (Remote::Omitted, other) => other,
            (hashed, _) => hashed,
        };
        if r.start.is_none() {
            r.start = p.start;
        }
        if p.out.is_some() {
            r.out = p.out;
        }
        if p.inbound.is_some() {
            r.inbound = p.inbound;
        }
        if let Some(id) = &p.ident
            && !self.idents.contains(id)
        {
            self.idents.push(id.clone());
        }
        for kv in &c.parsed.extra {
            if !self.extra.contains(kv) {
                self.extra.push(kv.clone());
            }
        }
    }

    /// Whether a line's start time agrees with the flow's.
    fn same_start(&self, c: &Candidate) -> bool {
        match (self.record.start, c.parsed.record.start) {
            (Some(a), Some(b)) => (a.as_micros() - b.as_micros()).abs() <= SAME_START_US,
            _ => true,
        }
    }

    /// The user names IDENT gave (or a `user` field of a later format).
    pub fn users(&self) -> Vec<Vec<u8>> {
        let mut out: Vec<Vec<u8>> = Vec::new();
        for i in &self.idents {
            if let Some(u) = &i.user
                && !out.contains(u)
            {
                out.push(u.clone());
            }
        }
        for (k, v) in &self.extra {
            if k == "user" && !out.contains(v) {
                out.push(v.clone());
            }
        }
        out
    }

    /// The end of the lifetime for matching (microseconds; `None`: open).
    fn hi(&self) -> Option<i64> {
        match self.end {
            FlowEnd::At(t) => Some(t.as_micros()),
            FlowEnd::Lost { before } => Some(before.as_micros()),
            FlowEnd::Open => None,
        }
    }

    /// 0: start and end known; 1: open; 2: end lost; 3: start unknown.
    pub fn completeness(&self) -> u8 {
        match (self.record.start, self.end) {
            (None, _) => 3,
            (_, FlowEnd::At(_)) => 0,
            (_, FlowEnd::Open) => 1,
            (_, FlowEnd::Lost { .. }) => 2,
        }
    }
}

fn rank_of(e: &LineEvent) -> u8 {
    match e {
        LineEvent::Known(Event::Start) => 0,
        LineEvent::Known(Event::End) => 2,
        _ => 1,
    }
}

/// Joins lines (indexes into `cands`) into flows, in order of start.
pub fn join(cands: &[Candidate], which: &[usize]) -> Vec<Flow> {
    let mut groups: BTreeMap<(u8, Option<u32>), Vec<usize>> = BTreeMap::new();
    for &i in which {
        let p = &cands[i].parsed.record;
        groups.entry((p.proto.number(), p.id)).or_default().push(i);
    }
    let mut flows = Vec::new();
    for (_, mut idx) in groups {
        // Lines without any time sort where they were read.
        let mut last = i64::MIN;
        let mut keyed: Vec<(i64, u8, usize, usize)> = Vec::with_capacity(idx.len());
        idx.sort_by_key(|&i| cands[i].seq);
        for &i in &idx {
            let c = &cands[i];
            let t = match c.event {
                LineEvent::Known(Event::End) => c.when,
                _ => c.parsed.record.start.map(|t| t.as_micros()).or(c.when),
            };
            let t = t.unwrap_or(last);
            last = t;
            keyed.push((t, rank_of(&c.event), c.seq, i));
        }
        keyed.sort_unstable();
        let mut group: Vec<Flow> = Vec::new();
        let mut open: Option<usize> = None;
        for (_, _, _, i) in keyed {
            let c = &cands[i];
            let lost_at = |c: &Candidate| {
                c.parsed.record.start.or(c.parsed.record.end).or_else(|| {
                    c.when.map(|w| {
                        Timestamp::new(w.div_euclid(1_000_000), w.rem_euclid(1_000_000) as u32)
                    })
                })
            };
            match c.event {
                LineEvent::Known(Event::Start) => {
                    if let Some(o) = open.take()
                        && let Some(b) = lost_at(c)
                    {
                        group[o].end = FlowEnd::Lost { before: b };
                    }
                    group.push(Flow::from_line(i, c));
                    open = Some(group.len() - 1);
                }
                LineEvent::Known(Event::End) => {
                    let end = c.parsed.record.end.or_else(|| {
                        c.when.map(|w| {
                            Timestamp::new(w.div_euclid(1_000_000), w.rem_euclid(1_000_000) as u32)
                        })
                    });
                    let end = end.map_or(FlowEnd::Open, FlowEnd::At);
                    match open.take() {
                        Some(o) if group[o].same_start(c) => {
                            group[o].absorb(i, c);
                            group[o].end = end;
                        }
                        other => {
                            if let Some(o) = other
                                && let Some(b) = lost_at(c)
                            {
                                group[o].end = FlowEnd::Lost { before: b };
                            }
                            let mut f = Flow::from_line(i, c);
                            f.end = end;
                            group.push(f);
                        }
                    }
                }
                _ => {
                    let target = match open {
                        Some(o) if group[o].same_start(c) => Some(o),
                        Some(_) => None,
                        None => group.len().checked_sub(1).filter(|&k| {
                            let f = &group[k];
                            f.record.start.is_some()
                                && c.parsed.record.start.is_some()
                                && f.same_start(c)
                        }),
                    };
                    match target {
                        Some(k) => group[k].absorb(i, c),
                        None => {
                            if let Some(o) = open.take()
                                && let Some(b) = lost_at(c)
                            {
                                group[o].end = FlowEnd::Lost { before: b };
                            }
                            group.push(Flow::from_line(i, c));
                            open = Some(group.len() - 1);
                        }
                    }
                }
            }
        }
        flows.extend(group);
    }
    flows.sort_by_key(|f| {
        (
            f.record.start.map(|t| t.as_micros()),
            f.lines.first().map(|&i| cands[i].seq),
        )
    });
    flows
}

/// How the report time relates to a flow's lifetime.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fit {
    /// Inside `[start, end]`.
    Inside,
    /// Before the start by this much (microseconds).
    BeforeStart(i64),
    /// After the end by this much.
    AfterEnd(i64),
}

impl Fit {
    pub fn distance(self) -> i64 {
        match self {
            Fit::Inside => 0,
            Fit::BeforeStart(d) | Fit::AfterEnd(d) => d,
        }
    }
}

/// One candidate flow and how it fits the report.
#[derive(Clone, Debug)]
pub struct Match {
    pub flow: Flow,
    pub fit: Fit,
    /// Which of the report's instants fits best (0 or 1).
    pub instant: usize,
    /// `Some(false)` when the report names a remote port and the flow went
    /// to another one.
    pub remote_port_matches: Option<bool>,
    /// The report names a remote, and the flow's was not logged.
    pub remote_unknown: bool,
}

/// The answer to one query.
#[derive(Clone, Debug, Default)]
pub struct Verdict {
    /// Matching flows, best first.
    pub matches: Vec<Match>,
    /// The flow nearest the report time that does not match (a hint).
    pub nearest: Option<Match>,
    /// Open flows that started more than `--max-age` before the report.
    pub stale: Vec<Flow>,
    /// Flows on the endpoint that passed the filters.
    pub flows_considered: usize,
    /// Flows on the endpoint that the filters left out.
    pub filtered_out: usize,
}

fn fit(flow: &Flow, t: i64) -> Fit {
    if let Some(s) = flow.record.start {
        let s = s.as_micros();
        if t < s {
            return Fit::BeforeStart(s - t);
        }
    }
    match flow.hi() {
        Some(h) if t > h => Fit::AfterEnd(t - h),
        _ => Fit::Inside,
    }
}

/// Matches the flows of the query's endpoint against the query.
pub fn decide(q: &AbuseReport, flows: Vec<Flow>) -> Verdict {
    let mut v = Verdict::default();
    let slack = q.slack_us();
    let mut misses: Vec<Match> = Vec::new();
    for flow in flows {
        if q.proto
            .is_some_and(|p| p.number() != flow.record.proto.number())
            || q.remote
                .zip(flow.record.remote.endpoint())
                .is_some_and(|(r, fr)| canon(fr.ip) != r.ip)
        {
            v.filtered_out += 1;
            continue;
        }
        v.flows_considered += 1;
        let remote_port_matches = q
            .remote
            .and_then(|r| r.port)
            .and_then(|p| flow.record.remote.endpoint().map(|fr| fr.port == Some(p)));
        let remote_unknown = q.remote.is_some() && flow.record.remote.endpoint().is_none();
        let mut best: Option<(Fit, usize)> = None;
        let mut stale = false;
        for (k, t) in q.at.instants.iter().enumerate() {
            let t = t.as_micros();
            if let (FlowEnd::Open, Some(s), Some(age)) = (flow.end, flow.record.start, q.max_age) {
                let oldest = t
                    .saturating_sub(slack)
                    .saturating_sub(age.saturating_mul(1_000_000));
                if s.as_micros() < oldest {
                    stale = true;
                    continue;
                }
            }
            if flow.record.start.is_none() && flow.end == FlowEnd::Open {
                continue;
            }
            let f = fit(&flow, t);
            if best.is_none_or(|(b, _)| f.distance() < b.distance()) {
                best = Some((f, k));
            }
        }
        match best {
            Some((f, k)) => {
                let m = Match {
                    flow,
                    fit: f,
                    instant: k,
                    remote_port_matches,
                    remote_unknown,
                };
                if f.distance() <= slack {
                    v.matches.push(m);
                } else {
                    misses.push(m);
                }
            }
            None if stale => v.stale.push(flow),
            None => {}
        }
    }
    let key = |m: &Match| {
        let t = q.at.instants[m.instant].as_micros();
        (
            // Exact (or not asked), then unknown, then another port.
            match (m.remote_port_matches, m.remote_unknown) {
                (Some(false), _) => 2,
                (_, true) => 1,
                _ => 0,
            },
            m.fit.distance(),
            m.flow.completeness(),
            m.flow
                .record
                .start
                .map_or(i64::MAX, |s| (t - s.as_micros()).abs()),
        )
    };
    v.matches.sort_by_key(key);
    v.nearest = misses.into_iter().min_by_key(|m| m.fit.distance());
    v
}
