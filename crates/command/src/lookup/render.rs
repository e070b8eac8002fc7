//! The answer, for people (answer first, then each candidate with its
//! evidence, then what was searched) and for machines (one JSON object).
//! Text from the logs is shown with control characters and invalid UTF-8
//! as `\xHH`, so a hostile IDENT user name cannot drive the terminal.

use std::fmt::Write as _;

use super::flows::{Fit, Flow, FlowEnd, Match, Verdict};
use super::portblock::{Agreement, BlockMatch};
use super::query::{AbuseReport, endpoint_string, proto_string};
use super::{EvidenceLine, Scan};
use crate::json::Json;
use crate::when::human_duration;
use masqlog_core::record::{Counters, Endpoint, IdentInfo, IdentStatus, Remote, Timestamp};
use masqlog_core::time::utc_string;

/// One report's answer, to render.
pub struct Answer<'a> {
    pub query: &'a AbuseReport,
    pub verdict: &'a Verdict,
    pub portblock: Option<&'a BlockMatch>,
}

impl Answer<'_> {
    /// Found: a flow matches, or (without one) a rule file names an owner.
    pub fn found(&self) -> bool {
        !self.verdict.matches.is_empty() || self.portblock.is_some_and(|p| !p.owners().is_empty())
    }
}

/// Bytes from the logs, safe to print: control characters and bytes that
/// are not UTF-8 as `\xHH`.
pub fn show_bytes(b: &[u8]) -> String {
    let mut s = String::with_capacity(b.len());
    for chunk in b.utf8_chunks() {
        for c in chunk.valid().chars() {
            if c.is_control() {
                let mut buf = [0u8; 4];
                for byte in c.encode_utf8(&mut buf).bytes() {
                    let _ = write!(s, "\\x{byte:02x}");
                }
            } else {
                s.push(c);
            }
        }
        for byte in chunk.invalid() {
            let _ = write!(s, "\\x{byte:02x}");
        }
    }
    s
}

fn ep(e: &Endpoint) -> String {
    endpoint_string(e.ip, e.port)
}

/// `1.2 MB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut x = n as f64;
    let mut u = 0;
    while x >= 1000.0 && u < UNITS.len() - 1 {
        x /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{x:.1} {}", UNITS[u])
    }
}

/// A time in UTC and in the report's zone.
fn both(q: &AbuseReport, t: Timestamp) -> String {
    if q.at.zone.is_utc() {
        utc_string(t, true)
    } else {
        format!("{}  {}", utc_string(t, true), q.at.zone.show(t, true))
    }
}

/// The report's time as the first line shows it.
fn report_when(q: &AbuseReport) -> String {
    let z = &q.at.zone;
    match q.at.instants.as_slice() {
        [t] if z.is_utc() => utc_string(*t, false),
        [t] => format!("{} ({})", z.show(*t, false), utc_string(*t, false)),
        many => {
            let list: Vec<String> = many.iter().map(|t| utc_string(*t, false)).collect();
            format!("{} (twice: {})", q.at.input.trim(), list.join(" and "))
        }
    }
}

fn ident_text(i: &IdentInfo) -> String {
    match i.status {
        IdentStatus::User => {
            let mut s = format!(
                "{} (IDENT",
                show_bytes(i.user.as_deref().unwrap_or_default())
            );
            if let Some(o) = &i.opsys {
                let _ = write!(s, ", opsys {}", show_bytes(o));
            }
            s.push(')');
            s
        }
        other => {
            let mut s = format!("unknown (IDENT: {}", other.name());
            if let Some(d) = &i.detail {
                let _ = write!(s, " {}", show_bytes(d));
            }
            s.push(')');
            s
        }
    }
}

/// `10.99.0.2:40000 (user alice)`.
fn who(f: &Flow) -> String {
    let users = f.users();
    let mut s = ep(&f.record.client);
    if !users.is_empty() {
        let names: Vec<String> = users.iter().map(|u| show_bytes(u)).collect();
        let _ = write!(s, " (user {})", names.join(" or "));
    }
    s
}

fn counters(c: Option<Counters>) -> Option<String> {
    let plural = |n: u64| if n == 1 { "" } else { "s" };
    c.map(|c| {
        format!(
            "{} packet{} ({} byte{})",
            c.packets,
            plural(c.packets),
            c.bytes,
            plural(c.bytes)
        )
    })
}

fn fit_text(q: &AbuseReport, m: &Match) -> String {
    let slack = human_duration(q.slack_us());
    let s = match m.fit {
        Fit::Inside if m.flow.end == FlowEnd::Open => "inside the flow (still open)".to_string(),
        Fit::Inside => "inside the flow".to_string(),
        Fit::BeforeStart(d) => format!("{} before its start", human_duration(d)),
        Fit::AfterEnd(d) => format!("{} after its end", human_duration(d)),
    };
    let within = match m.fit {
        Fit::Inside => String::new(),
        f if f.distance() <= q.slack_us() => format!(", within the slack of {slack}"),
        _ => format!(", beyond the slack of {slack}"),
    };
    let which = if q.at.instants.len() > 1 {
        format!(
            " (reading the time as {})",
            utc_string(q.at.instants[m.instant], false)
        )
    } else {
        String::new()
    };
    format!("{s}{within}{which}")
}

fn end_text(q: &AbuseReport, f: &Flow, seen_until: Option<i64>) -> String {
    match f.end {
        FlowEnd::At(t) => {
            let mut s = both(q, t);
            if let Some(st) = f.record.start {
                let _ = write!(
                    s,
                    "  (lasted {})",
                    human_duration(t.as_micros() - st.as_micros())
                );
            }
            s
        }
        FlowEnd::Open => match seen_until {
            Some(u) => format!(
                "open: no end line in the logs read (up to {})",
                utc_string(Timestamp::new(u, 0), false)
            ),
            None => "open: no end line in the logs read".to_string(),
        },
        FlowEnd::Lost { before } => format!(
            "not logged; before {} (conntrack id {} seen again)",
            both(q, before),
            f.record.id.map_or("-".to_string(), |i| i.to_string())
        ),
    }
}

fn evidence_text(out: &mut String, ev: &[EvidenceLine]) {
    for (i, e) in ev.iter().enumerate() {
        let label = if i == 0 {
            "  evidence  "
        } else {
            "            "
        };
        let loc = match e.line {
            Some(l) => format!("{}:{l}", e.file),
            None => format!("{}@{}", e.file, e.offset),
        };
        let _ = writeln!(out, "{label}{loc}  {}", show_bytes(e.text.as_bytes()));
    }
}

fn flow_block(out: &mut String, scan: &Scan, q: &AbuseReport, m: &Match) {
    let f = &m.flow;
    let _ = writeln!(out, "  client    {}", ep(&f.record.client));
    for i in &f.idents {
        let _ = writeln!(out, "  user      {}", ident_text(i));
    }
    for (k, v) in &f.extra {
        if k == "user" {
            let _ = writeln!(out, "  user      {}", show_bytes(v));
        }
    }
    let mut proto = format!("{}, {}", proto_string(f.record.proto), f.record.nat.name());
    if let Some(id) = f.record.id {
        let _ = write!(proto, ", conntrack id {id}");
    }
    let _ = writeln!(out, "  protocol  {proto}");
    let mut remote = match &f.record.remote {
        Remote::Shown(r) => ep(r),
        Remote::Hashed(h) => format!(
            "not logged; remote_hash={h:032x} (comparing needs the plugin's remote_hash_key)"
        ),
        Remote::Omitted => "not logged".to_string(),
    };
    if m.remote_port_matches == Some(false)
        && let Some(p) = q.remote.and_then(|r| r.port)
    {
        let _ = write!(remote, "  (the report names port {p})");
    }
    if m.remote_unknown {
        let _ = write!(remote, "  (so --remote cannot rule it out)");
    }
    let _ = writeln!(out, "  remote    {remote}");
    let _ = writeln!(out, "  public    {}", ep(&f.record.masq));
    let start = f.record.start.map_or_else(
        || "unknown (no start line read, no start= in the others)".to_string(),
        |t| both(q, t),
    );
    let _ = writeln!(out, "  start     {start}");
    let _ = writeln!(out, "  end       {}", end_text(q, f, scan.stats.seen_until));
    let _ = writeln!(out, "  report    {}", fit_text(q, m));
    if let (Some(o), Some(i)) = (counters(f.record.out), counters(f.record.inbound)) {
        let _ = writeln!(out, "  traffic   out {o}, in {i}");
    }
    let extra: Vec<String> = f
        .extra
        .iter()
        .filter(|(k, _)| k != "user")
        .map(|(k, v)| format!("{k}={}", show_bytes(v)))
        .collect();
    if !extra.is_empty() {
        let _ = writeln!(out, "  fields    {}", extra.join(" "));
    }
    evidence_text(out, &scan.evidence(f));
}

fn portblock_text(out: &mut String, q: &AbuseReport, v: &Verdict, p: &BlockMatch) {
    for r in &p.rules {
        let when = if r.at_report_time {
            "in force at the report time"
        } else {
            "in force within the slack (the rules changed near the report time)"
        };
        let since = utc_string(Timestamp::new(r.since, 0), false);
        let owner = match (r.owner, r.block) {
            (Some(o), Some((lo, hi))) => {
                format!("{} belongs to {o} (block {lo}-{hi})", q.public_string())
            }
            _ => format!("no block holds {}", q.public_string()),
        };
        let _ = writeln!(
            out,
            "  port-block {} (since {since}), {when}: {owner}",
            r.file
        );
    }
    if let Some(n) = &p.note {
        let _ = writeln!(out, "  port-block {n}");
    }
    match p.agreement(v) {
        Agreement::Agree => {
            let _ = writeln!(out, "  port-block agrees with the flow log");
        }
        Agreement::Disagree => {
            let flow = v
                .matches
                .first()
                .map_or(String::new(), |m| m.flow.record.client.ip.to_string());
            let owners: Vec<String> = p.owners().iter().map(|o| o.to_string()).collect();
            let _ = writeln!(
                out,
                "  port-block DISAGREES with the flow log: the flow says {flow}, the rules say {}",
                owners.join(" or ")
            );
        }
        Agreement::Nothing => {}
    }
}

/// The answer block for one report.
pub fn human(scan: &Scan, a: &Answer<'_>) -> String {
    let q = a.query;
    let v = a.verdict;
    let mut out = String::new();
    let head = format!("{} at {}", q.public_string(), report_when(q));
    match v.matches.as_slice() {
        [m] => {
            let _ = writeln!(out, "{head} was {}", who(&m.flow));
        }
        [] => {
            let owners = a.portblock.map(|p| p.owners()).unwrap_or_default();
            if owners.is_empty() {
                let _ = writeln!(out, "{head}: no flow found");
            } else {
                let list: Vec<String> = owners.iter().map(|o| o.to_string()).collect();
                let _ = writeln!(
                    out,
                    "{head} was {} by the port-block rules; no flow found in the logs",
                    list.join(" or ")
                );
            }
        }
        many => {
            let list: Vec<String> = many.iter().map(|m| who(&m.flow)).collect();
            let _ = writeln!(
                out,
                "{head}: {} candidate flows, best first: {}",
                many.len(),
                list.join(", ")
            );
            let first = &many[0].flow;
            let mut flags = Vec::new();
            let ip = |f: &Flow| f.record.remote.endpoint().map(|r| r.ip);
            if q.remote.is_none()
                && many
                    .iter()
                    .all(|m| m.flow.record.remote.endpoint().is_some())
                && many.iter().any(|m| ip(&m.flow) != ip(first))
            {
                flags.push("--remote");
            }
            if q.proto.is_none()
                && many
                    .iter()
                    .any(|m| m.flow.record.proto.number() != first.record.proto.number())
            {
                flags.push("--proto");
            }
            if flags.is_empty() {
                let _ = writeln!(out, "  ambiguous: more than one flow fits; ranked below");
            } else {
                let _ = writeln!(
                    out,
                    "  ambiguous: give {} to tell them apart",
                    flags.join(" or ")
                );
            }
        }
    }
    if let Some(fold) = &q.at.fold {
        let _ = writeln!(out, "  note: {fold}");
    }
    if scan.incomplete() {
        let _ = writeln!(
            out,
            "  note: some input could not be read fully (see the errors): the answer may be incomplete"
        );
    }
    let n = v.matches.len();
    for (i, m) in v.matches.iter().enumerate() {
        out.push('\n');
        if n > 1 {
            let _ = writeln!(out, "candidate {} of {n}", i + 1);
        }
        flow_block(&mut out, scan, q, m);
    }
    if let Some(p) = a.portblock {
        out.push('\n');
        portblock_text(&mut out, q, v, p);
    }
    if n == 0 {
        if let Some(m) = &v.nearest {
            let _ = writeln!(
                out,
                "\nnearest flow on {} (not a match):",
                q.public_string()
            );
            flow_block(&mut out, scan, q, m);
        }
        for f in &v.stale {
            let _ = writeln!(
                out,
                "\n  hint: {} started {} with no end line, more than --max-age ({}) before the \
                 report; if it was still alive, raise --max-age",
                who(f),
                f.record.start.map_or("-".into(), |t| utc_string(t, true)),
                human_duration(q.max_age.unwrap_or(0).saturating_mul(1_000_000)),
            );
        }
        if v.filtered_out > 0 {
            let _ = writeln!(
                out,
                "\n  hint: {} flow(s) on {} were left out by --remote/--proto",
                v.filtered_out,
                q.public_string()
            );
        }
    }
    out
}

/// What was searched (printed once, after the answers).
pub fn summary(scan: &Scan) -> String {
    let st = &scan.stats;
    let mut out = String::new();
    let mut how = Vec::new();
    if st.bisected > 0 {
        how.push(format!("{} by bisection", st.bisected));
    }
    if st.skipped_by_mtime > 0 {
        how.push(format!(
            "{} skipped: last written before the search window",
            st.skipped_by_mtime
        ));
    }
    let how = if how.is_empty() {
        String::new()
    } else {
        format!(" ({})", how.join(", "))
    };
    let stdin = scan.sources.iter().any(|s| s.spec == super::Spec::Stdin);
    let read = if stdin || st.bytes_total == 0 {
        format!("{} read", human_bytes(st.bytes_read))
    } else {
        format!(
            "{} read of {}",
            human_bytes(st.bytes_read),
            human_bytes(st.bytes_total)
        )
    };
    let _ = writeln!(
        out,
        "searched {} input{}{how}: {read}, {} masqlog line{} parsed",
        st.inputs,
        if st.inputs == 1 { "" } else { "s" },
        st.lines_parsed,
        if st.lines_parsed == 1 { "" } else { "s" },
    );
    if let Some(w) = &scan.window {
        let from = utc_string(Timestamp::new(w.from, 0), false);
        let _ = match st.seen_until {
            Some(u) => writeln!(
                out,
                "window: flows started from {from} on; lines read up to about {}",
                utc_string(Timestamp::new(u, 0), false)
            ),
            None => writeln!(out, "window: flows started from {from} on"),
        };
    }
    if !scan.bad_lines.is_empty() {
        let _ = writeln!(
            out,
            "{} masqlog line{} could not be read (listed on stderr)",
            scan.bad_lines.len(),
            if scan.bad_lines.len() == 1 { "" } else { "s" }
        );
    }
    if st.not_records > 0 {
        let _ = writeln!(
            out,
            "skipped {} line{} that hold{} a masqlog marker inside another message (not at its start): not records",
            st.not_records,
            if st.not_records == 1 { "" } else { "s" },
            if st.not_records == 1 { "s" } else { "" }
        );
    }
    if !scan.unreadable.is_empty() {
        let _ = writeln!(
            out,
            "incomplete: {} input{} could not be read fully (listed on stderr)",
            scan.unreadable.len(),
            if scan.unreadable.len() == 1 { "" } else { "s" }
        );
    }
    for n in &scan.notes {
        let _ = writeln!(out, "note: {n}");
    }
    out
}

fn ts_json(t: Timestamp) -> Json {
    Json::str(utc_string(t, true))
}

fn ep_json(e: &Endpoint) -> Json {
    Json::obj([
        ("ip", Json::str(e.ip.to_string())),
        ("port", Json::opt(e.port, |p| Json::Int(p.into()))),
    ])
}

fn counters_json(c: Option<Counters>) -> Json {
    Json::opt(c, |c| {
        Json::obj([
            ("packets", Json::Int(c.packets as i64)),
            ("bytes", Json::Int(c.bytes as i64)),
        ])
    })
}

fn match_json(scan: &Scan, q: &AbuseReport, m: &Match, rank: usize) -> Json {
    let f = &m.flow;
    let local = |t: Option<Timestamp>| Json::opt(t, |t| Json::str(q.at.zone.show(t, true)));
    let (state, end) = match f.end {
        FlowEnd::At(t) => ("ended", Some(t)),
        FlowEnd::Open => ("open", None),
        FlowEnd::Lost { .. } => ("end_not_logged", None),
    };
    let (fit, dist) = match m.fit {
        Fit::Inside => ("inside", 0),
        Fit::BeforeStart(d) => ("before_start", d),
        Fit::AfterEnd(d) => ("after_end", d),
    };
    let evidence = scan
        .evidence(f)
        .into_iter()
        .map(|e| {
            Json::obj([
                ("file", Json::str(e.file)),
                ("line", Json::opt(e.line, |l| Json::Int(l as i64))),
                ("offset", Json::Int(e.offset as i64)),
                ("event", Json::str(e.event)),
                ("text", Json::str(e.text)),
            ])
        })
        .collect();
    Json::obj([
        ("rank", Json::Int(rank as i64)),
        ("client", ep_json(&f.record.client)),
        (
            "users",
            Json::Arr(f.users().into_iter().map(Json::Bytes).collect()),
        ),
        (
            "ident",
            Json::Arr(
                f.idents
                    .iter()
                    .map(|i| {
                        Json::obj([
                            ("status", Json::str(i.status.name())),
                            ("user", Json::opt(i.user.clone(), Json::Bytes)),
                            ("opsys", Json::opt(i.opsys.clone(), Json::Bytes)),
                            ("detail", Json::opt(i.detail.clone(), Json::Bytes)),
                        ])
                    })
                    .collect(),
            ),
        ),
        ("proto", Json::str(proto_string(f.record.proto))),
        ("nat", Json::str(f.record.nat.name())),
        ("id", Json::opt(f.record.id, |i| Json::Int(i.into()))),
        ("public", ep_json(&f.record.masq)),
        (
            "remote",
            Json::opt(f.record.remote.endpoint(), |r| ep_json(&r)),
        ),
        ("remote_unknown", Json::Bool(m.remote_unknown)),
        (
            "remote_port_matches",
            Json::opt(m.remote_port_matches, Json::Bool),
        ),
        ("start", Json::opt(f.record.start, ts_json)),
        ("start_local", local(f.record.start)),
        ("state", Json::str(state)),
        ("end", Json::opt(end, ts_json)),
        ("end_local", local(end)),
        (
            "end_before",
            match f.end {
                FlowEnd::Lost { before } => ts_json(before),
                _ => Json::Null,
            },
        ),
        ("fit", Json::str(fit)),
        ("distance_secs", Json::Num(dist as f64 / 1e6)),
        (
            "instant",
            Json::str(utc_string(q.at.instants[m.instant], false)),
        ),
        ("out", counters_json(f.record.out)),
        ("in", counters_json(f.record.inbound)),
        (
            "fields",
            Json::Obj(
                f.extra
                    .iter()
                    .map(|(k, v)| (k.clone(), Json::Bytes(v.clone())))
                    .collect(),
            ),
        ),
        ("evidence", Json::Arr(evidence)),
    ])
}

/// The query part of the JSON answer.
fn query_json(q: &AbuseReport) -> Json {
    Json::obj([
        ("public", Json::str(q.public_string())),
        ("at", Json::str(q.at.input.trim())),
        (
            "instants",
            Json::Arr(
                q.at.instants
                    .iter()
                    .map(|t| Json::str(utc_string(*t, false)))
                    .collect(),
            ),
        ),
        ("zone", Json::str(q.at.zone.name())),
        ("ambiguous_time", Json::opt(q.at.fold.clone(), Json::Str)),
        (
            "remote",
            Json::opt(q.remote, |r| Json::str(endpoint_string(r.ip, r.port))),
        ),
        ("proto", Json::opt(q.proto, |p| Json::str(proto_string(p)))),
        ("slack_secs", Json::Int(q.slack)),
        ("max_age_secs", Json::opt(q.max_age, Json::Int)),
    ])
}

/// What was read, for the JSON answer.
pub fn inputs_json(scan: &Scan) -> Json {
    let st = &scan.stats;
    Json::obj([
        ("inputs", Json::Int(st.inputs as i64)),
        ("bisected", Json::Int(st.bisected as i64)),
        ("skipped_by_mtime", Json::Int(st.skipped_by_mtime as i64)),
        ("bytes_read", Json::Int(st.bytes_read as i64)),
        ("bytes_total", Json::Int(st.bytes_total as i64)),
        ("lines_parsed", Json::Int(st.lines_parsed as i64)),
        ("not_records", Json::Int(st.not_records as i64)),
        (
            "window",
            Json::opt(scan.window.as_ref(), |w| {
                Json::obj([
                    ("flows_from", ts_json(Timestamp::new(w.from, 0))),
                    (
                        "read_until",
                        Json::opt(st.seen_until, |u| ts_json(Timestamp::new(u, 0))),
                    ),
                ])
            }),
        ),
        (
            "bad_lines",
            Json::Arr(
                scan.bad_lines
                    .iter()
                    .map(|b| {
                        Json::obj([
                            ("file", Json::str(b.file.clone())),
                            ("line", Json::opt(b.line, |l| Json::Int(l as i64))),
                            ("reason", Json::str(b.reason.clone())),
                        ])
                    })
                    .collect(),
            ),
        ),
        (
            "unreadable",
            Json::Arr(
                scan.unreadable
                    .iter()
                    .map(|(f, why)| {
                        Json::obj([
                            ("file", Json::str(f.clone())),
                            ("error", Json::str(why.clone())),
                        ])
                    })
                    .collect(),
            ),
        ),
        (
            "notes",
            Json::Arr(scan.notes.iter().map(|n| Json::str(n.clone())).collect()),
        ),
    ])
}

fn portblock_json(v: &Verdict, p: &BlockMatch) -> Json {
    Json::obj([
        (
            "rules",
            Json::Arr(
                p.rules
                    .iter()
                    .map(|r| {
                        Json::obj([
                            ("file", Json::str(r.file.clone())),
                            ("since", ts_json(Timestamp::new(r.since, 0))),
                            ("at_report_time", Json::Bool(r.at_report_time)),
                            ("owner", Json::opt(r.owner, |o| Json::str(o.to_string()))),
                            (
                                "block",
                                Json::opt(r.block, |(lo, hi)| Json::str(format!("{lo}-{hi}"))),
                            ),
                        ])
                    })
                    .collect(),
            ),
        ),
        ("note", Json::opt(p.note.clone(), Json::Str)),
        (
            "agrees_with_flows",
            match p.agreement(v) {
                Agreement::Agree => Json::Bool(true),
                Agreement::Disagree => Json::Bool(false),
                Agreement::Nothing => Json::Null,
            },
        ),
    ])
}

/// One report's answer as one JSON object.
pub fn json(scan: &Scan, a: &Answer<'_>) -> Json {
    let q = a.query;
    let v = a.verdict;
    Json::obj([
        ("query", query_json(q)),
        ("found", Json::Bool(a.found())),
        ("incomplete", Json::Bool(scan.incomplete())),
        (
            "matches",
            Json::Arr(
                v.matches
                    .iter()
                    .enumerate()
                    .map(|(i, m)| match_json(scan, q, m, i + 1))
                    .collect(),
            ),
        ),
        (
            "nearest",
            Json::opt(v.nearest.as_ref(), |m| match_json(scan, q, m, 0)),
        ),
        ("stale_open_flows", Json::Int(v.stale.len() as i64)),
        (
            "portblock",
            Json::opt(a.portblock, |p| portblock_json(v, p)),
        ),
        ("inputs", inputs_json(scan)),
    ])
}
