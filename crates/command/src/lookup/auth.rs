//! Which lines lookup may answer from. With verification keys (`--key`),
//! only a line whose seal verifies can be evidence: unsealed lines, lines
//! whose MAC does not verify and sealed lines of hosts without a key are
//! set aside, counted and named, never ranked with the verified ones; a
//! record seen twice (same writer, run and sequence number: a resend,
//! overlapping files) counts once. Without keys nothing is authenticated,
//! and the answer says so.

use std::collections::{HashMap, HashSet};

use masqlog_core::format::sealing::sealed_bytes;
use masqlog_core::seal::{KeyRing, VerifyKey, WriterId, WriterKey};

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

/// Checks single lines against the keys, caching epoch keys.
pub struct Checker<'k> {
    rings: HashMap<&'k str, KeyRing<'k>>,
    cache: HashMap<(String, String, u64), WriterKey>,
}

impl<'k> Checker<'k> {
    pub fn new(keys: &'k [VerifyKey]) -> Checker<'k> {
        Checker {
            rings: keys.iter().map(|k| (k.host.as_str(), k.ring())).collect(),
            cache: HashMap::new(),
        }
    }

    /// The seal of `line` if it verifies: `(writer, run, seq)`.
    pub fn check(&mut self, line: &str) -> Result<(WriterId, u64, u64), Rejected> {
        let sb = sealed_bytes(line.as_bytes()).ok_or(Rejected::Unsealed)?;
        let fields = sb.fields().ok_or(Rejected::BadMac)?;
        let w = &fields.writer;
        let ring = self
            .rings
            .get_mut(w.host.as_str())
            .ok_or_else(|| Rejected::NoKey(w.host.clone()))?;
        let id = (w.host.clone(), w.instance.clone(), fields.epoch);
        let key = match self.cache.get(&id) {
            Some(k) => k,
            None => {
                let k = ring
                    .writer_key(&w.instance, fields.epoch)
                    .map_err(|_| Rejected::BadMac)?;
                self.cache.entry(id).or_insert(k)
            }
        };
        if !key.verify(sb.body, &sb.mac) {
            return Err(Rejected::BadMac);
        }
        Ok((fields.writer, fields.run, fields.seq))
    }
}

/// Checks `lines` against `keys`; returns the lines that may be evidence
/// (all of them when no key is given) and what was set aside. A line is
/// evidence only if its seal verifies and the fields the parser read are
/// the ones under the seal.
pub fn authenticate(lines: Vec<Candidate>, keys: &[VerifyKey]) -> (Vec<Candidate>, AuthOutcome) {
    if keys.is_empty() {
        return (lines, AuthOutcome::default());
    }
    let mut checker = Checker::new(keys);
    let mut seen = HashSet::new();
    let mut out = AuthOutcome {
        keyed: true,
        ..AuthOutcome::default()
    };
    let mut kept = Vec::with_capacity(lines.len());
    for c in lines {
        let checked = checker.check(&c.text).and_then(|id| {
            // The parser's reading of the seal must be the verified one.
            match &c.parsed.seal {
                Some(tag)
                    if (&tag.fields.writer, tag.fields.run, tag.fields.seq)
                        == (&id.0, id.1, id.2) =>
                {
                    Ok(id)
                }
                Some(_) => Err(Rejected::BadMac),
                None => Err(Rejected::Unsealed),
            }
        });
        match checked {
            Err(why) => out.rejected.push((c, why)),
            Ok(id) => {
                out.verified += 1;
                if seen.insert(id) {
                    kept.push(c);
                } else {
                    out.duplicates += 1;
                }
            }
        }
    }
    (kept, out)
}
