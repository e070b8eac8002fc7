//! Which lines lookup may answer from. With verification keys (`--key`),
//! only a line whose seal verifies can be evidence: unsealed lines, lines
//! whose MAC does not verify and sealed lines of hosts without a key are
//! set aside, counted and named, never ranked with the verified ones; a
//! record seen twice (same writer, run and sequence number: a resend,
//! overlapping files) counts once. Without keys nothing is authenticated,
//! and the answer says so.

use std::collections::{HashMap, HashSet};

use masqlog_core::format::sealing::sealed_bytes;
use masqlog_core::seal::{KeyRing, VerifyKey, WriterKey};

use super::scan::Candidate;

/// Why a line was not used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rejected {
    /// A masqlog-looking line without a seal.
    Unsealed,
    /// Sealed, but the MAC does not verify: altered, or forged.
    BadMac,
    /// Sealed by a host no key was given for.
    NoKey(String),
}

impl std::fmt::Display for Rejected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Rejected::Unsealed => f.write_str("not sealed"),
            Rejected::BadMac => f.write_str("its MAC does not verify (altered, or forged)"),
            Rejected::NoKey(h) => write!(f, "sealed by host {h}, for which no key was given"),
        }
    }
}

/// What authentication did to a scan's lines.
#[derive(Clone, Debug, Default)]
pub struct AuthOutcome {
    /// Keys were given: only verified lines are candidates.
    pub keyed: bool,
    /// Lines whose seal verified.
    pub verified: usize,
    /// Lines set aside, with the reason (in reading order).
    pub rejected: Vec<(Candidate, Rejected)>,
    /// Verified records seen more than once and counted once.
    pub duplicates: usize,
}

/// Checks `lines` against `keys`; returns the lines that may be evidence
/// (all of them when no key is given) and what was set aside.
pub fn authenticate(lines: Vec<Candidate>, keys: &[VerifyKey]) -> (Vec<Candidate>, AuthOutcome) {
    if keys.is_empty() {
        return (lines, AuthOutcome::default());
    }
    let mut rings: HashMap<&str, KeyRing<'_>> =
        keys.iter().map(|k| (k.host.as_str(), k.ring())).collect();
    let mut cache: HashMap<(String, String, u64), WriterKey> = HashMap::new();
    let mut seen = HashSet::new();
    let mut out = AuthOutcome {
        keyed: true,
        ..AuthOutcome::default()
    };
    let mut kept = Vec::with_capacity(lines.len());
    for c in lines {
        let sealed = sealed_bytes(c.text.as_bytes());
        let (Some(sb), Some(tag)) = (sealed, c.parsed.seal.clone()) else {
            out.rejected.push((c, Rejected::Unsealed));
            continue;
        };
        // The fields the parser read must be the ones at the seal's end.
        if sb.fields().as_ref() != Some(&tag.fields) || sb.mac != tag.mac {
            out.rejected.push((c, Rejected::BadMac));
            continue;
        }
        let w = &tag.fields.writer;
        let Some(ring) = rings.get_mut(w.host.as_str()) else {
            let host = w.host.clone();
            out.rejected.push((c, Rejected::NoKey(host)));
            continue;
        };
        let id = (w.host.clone(), w.instance.clone(), tag.fields.epoch);
        let key = match cache.get(&id) {
            Some(k) => k,
            None => match ring.writer_key(&w.instance, tag.fields.epoch) {
                Ok(k) => cache.entry(id).or_insert(k),
                Err(_) => {
                    out.rejected.push((c, Rejected::BadMac));
                    continue;
                }
            },
        };
        if !key.verify(sb.body, &sb.mac) {
            out.rejected.push((c, Rejected::BadMac));
            continue;
        }
        out.verified += 1;
        if !seen.insert((w.clone(), tag.fields.run, tag.fields.seq)) {
            out.duplicates += 1;
            continue;
        }
        kept.push(c);
    }
    (kept, out)
}
