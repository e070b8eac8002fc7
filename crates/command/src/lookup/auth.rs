//! Which lines lookup may answer from. With verification keys (`--key`),
//! only a line whose seal verifies can be evidence: unsealed lines, lines
//! whose MAC does not verify and sealed lines of hosts without a key are
//! set aside, counted and named, never ranked with the verified ones; a
//! record seen twice (same writer, run and sequence number: a resend,
//! overlapping files) counts once. Without keys nothing is authenticated,
//! and the answer says so; a sealed record repeated with the same body
//! still counts once.

use std::collections::HashSet;

use masqlog_core::seal::VerifyKey;

use super::scan::Candidate;
pub use crate::verify::{Checker, Rejected};

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
/// (all of them when no key is given) and what was set aside. A line is
/// evidence only if its seal verifies and the fields the parser read are
/// the ones under the seal.
pub fn authenticate(lines: Vec<Candidate>, keys: &[VerifyKey]) -> (Vec<Candidate>, AuthOutcome) {
    if keys.is_empty() {
        // Unverified, but a sealed record repeated byte for byte (a resend,
        // overlapping files) is still one record: the same writer, run and
        // sequence number with the same body count once.
        let mut seen = HashSet::new();
        let mut out = AuthOutcome::default();
        let kept = lines
            .into_iter()
            .filter(|c| {
                let Some(tag) = &c.parsed.seal else {
                    return true;
                };
                let body = masqlog_core::format::message_start(c.text.as_bytes())
                    .map_or(c.text.as_str(), |at| &c.text[at..]);
                let id = (tag.fields.writer.clone(), tag.fields.run, tag.fields.seq);
                let fresh = seen.insert((id, body.to_string()));
                out.duplicates += usize::from(!fresh);
                fresh
            })
            .collect();
        return (kept, out);
    }
    let mut checker = Checker::new(keys);
    let mut seen = HashSet::new();
    let mut out = AuthOutcome {
        keyed: true,
        ..AuthOutcome::default()
    };
    let mut kept = Vec::with_capacity(lines.len());
    for c in lines {
        let checked = checker.check(c.text.as_bytes()).and_then(|v| {
            // The parser's reading of the seal must be the verified one.
            match &c.parsed.seal {
                Some(tag) if tag.fields == v.fields && tag.mac == v.mac => {
                    Ok((v.fields.writer, v.fields.run, v.fields.seq))
                }
                Some(_) => Err(Rejected::Damaged),
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
