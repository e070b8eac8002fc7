//! Port-block NAT as evidence (`--portblock-state DIR`): the rule file in
//! force at the report time ([`crate::portblock::active_at`]) and the inside
//! address whose block holds the port ([`crate::portblock::RuleFile::owner_of`]).
//! When the rules changed within the slack of the report time, both files
//! are shown: for a second or two around a change either may have been in
//! force. With flow logs too, the answer says whether the two agree.

use std::net::{IpAddr, Ipv4Addr};

use super::flows::Verdict;
use super::query::AbuseReport;
use crate::portblock::{RuleFile, active_at};

/// What one rule file says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleVerdict {
    /// The file name (`rules.1795260000.nft`).
    pub file: String,
    /// In force from (UNIX seconds).
    pub since: i64,
    /// Whether it was in force at the report time itself (else only
    /// within the slack).
    pub at_report_time: bool,
    pub owner: Option<Ipv4Addr>,
    /// The owner's block (first and last port).
    pub block: Option<(u16, u16)>,
}

/// What the port-block history says about one report: the rule files in
/// force around its time, and the inside address whose block holds the
/// port in each.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BlockMatch {
    pub rules: Vec<RuleVerdict>,
    /// Why no rule file answers, when none does.
    pub note: Option<String>,
}

/// Whether the rule files and the flow log name the same client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Agreement {
    Agree,
    Disagree,
    /// One of the two has no answer.
    Nothing,
}

impl BlockMatch {
    /// The inside addresses the rule files name.
    pub fn owners(&self) -> Vec<Ipv4Addr> {
        let mut v: Vec<Ipv4Addr> = Vec::new();
        for r in &self.rules {
            if let Some(o) = r.owner
                && !v.contains(&o)
            {
                v.push(o);
            }
        }
        v
    }

    /// Compares with the best flow match.
    pub fn agreement(&self, verdict: &Verdict) -> Agreement {
        let owners = self.owners();
        match verdict.matches.first() {
            Some(m) if !owners.is_empty() => match m.flow.record.client.ip {
                IpAddr::V4(c) if owners.contains(&c) => Agreement::Agree,
                _ => Agreement::Disagree,
            },
            _ => Agreement::Nothing,
        }
    }
}

/// What the rule files of `history` (sorted, as
/// [`crate::portblock::history`] gives them) say about the query.
pub fn check(history: &[RuleFile], q: &AbuseReport) -> BlockMatch {
    let IpAddr::V4(public) = q.public_ip else {
        return BlockMatch {
            rules: Vec::new(),
            note: Some(
                "port-block NAT is IPv4 only: no rule file speaks of an IPv6 address".into(),
            ),
        };
    };
    if history.is_empty() {
        return BlockMatch {
            rules: Vec::new(),
            note: Some("the state directory holds no rule files".into()),
        };
    }
    let mut times: Vec<(i64, bool)> = Vec::new();
    for t in &q.at.instants {
        times.push((t.secs.saturating_sub(q.slack), false));
        times.push((t.secs, true));
        times.push((t.secs.saturating_add(q.slack), false));
    }
    times.sort_unstable();
    let mut rules: Vec<RuleVerdict> = Vec::new();
    for (t, exact) in times {
        let Some(f) = active_at(history, t) else {
            continue;
        };
        if let Some(r) = rules.iter_mut().find(|r| r.since == f.timestamp) {
            r.at_report_time |= exact;
            continue;
        }
        let block = f.block_at(public, q.public_port);
        rules.push(RuleVerdict {
            file: f.name(),
            since: f.timestamp,
            at_report_time: exact,
            owner: f.owner_of(public, q.public_port),
            block: block.map(|b| (b.lo, b.hi)),
        });
    }
    rules.sort_by_key(|r| r.since);
    let note = if rules.is_empty() {
        Some(format!(
            "no rule file was in force yet at the report time (the first is from UNIX time {})",
            history[0].timestamp
        ))
    } else if rules.iter().all(|r| r.owner.is_none()) {
        Some(format!(
            "no block holds {}: the rules do not translate to that port",
            q.public_string()
        ))
    } else {
        None
    };
    BlockMatch { rules, note }
}
