//! Sealing: a forward-secure, sequenced MAC on every record a writer emits,
//! and the key files that carry the keys (the router's sealing state, the
//! verification key that is copied off the router).
//!
//! The keys: `masqlog keygen` draws a 256-bit seed `M0` for a router. Time
//! is cut into epochs of `epoch_secs` seconds from `t0`; the master key of
//! epoch `e + 1` is `M(e+1) = SHA-256("masqlog evolve v1" || M(e))`, and a
//! writer (one plugin instance) seals with `K(e) = HMAC-SHA256(M(e),
//! "masqlog writer v1" || 0 || instance)`. The router keeps only the master
//! of the current epoch: when an epoch ends the plugin computes the next one,
//! replaces the state file with it and wipes the old value from memory, so a
//! later compromise of the router yields keys of the present and the future,
//! never of the past (SHA-256 cannot be run backwards). The verification key
//! is `M0` itself: whoever holds it derives every epoch's key, so it belongs
//! off the router.
//!
//! The record: the plugin writes `w=HOST/INSTANCE run=R seq=N ep=E
//! prev=MAC(N-1)` into the record and ends it with `mac=`, an HMAC-SHA256
//! (truncated to 128 bits) of the record's bytes from its first byte to the
//! byte before the `mac` field, under `K(E)`. A record thus verifies on its
//! own; the sequence number shows what is missing or out of order; `prev`
//! ties each record to the one before it; the run number and the chain
//! records at start and stop show restarts.

use std::fmt;

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use zeroize::Zeroize;

/// The bytes of a record's MAC (HMAC-SHA256 truncated; 32 hex digits).
pub const MAC_LEN: usize = 16;

/// The default epoch: 15 minutes.
pub const DEFAULT_EPOCH_SECS: u32 = 900;

/// The shortest and longest epoch a key may have.
pub const EPOCH_SECS_RANGE: std::ops::RangeInclusive<u32> = 60..=86_400;

/// How many epochs a key may be evolved over at once: 100 years of
/// one-minute epochs (a bound on the work a bad time can ask for).
pub const MAX_EPOCH: u64 = 100 * 366 * 24 * 60;

const EVOLVE_LABEL: &[u8] = b"masqlog evolve v1";
const WRITER_LABEL: &[u8] = b"masqlog writer v1";
const VERIFY_HEADER: &str = "masqlog-verify-key/1";
const STATE_HEADER: &str = "masqlog-seal-state/1";

/// A MAC as it is written.
pub type MacBytes = [u8; MAC_LEN];

/// Why a key file could not be read, or a key not used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum SealError {
    /// The text is not a key file of the expected kind.
    #[error("not a {expected} (the first word is {found:?})")]
    WrongKind {
        expected: &'static str,
        found: String,
    },
    /// A field is missing.
    #[error("{kind}: no `{field}=` field")]
    Missing {
        kind: &'static str,
        field: &'static str,
    },
    /// A field's value is not valid.
    #[error("{kind}: `{field}={value}` {why}")]
    Invalid {
        kind: &'static str,
        field: &'static str,
        value: String,
        why: &'static str,
    },
    /// The time asked for lies before the key's first epoch, or too far on.
    #[error("time {secs} is outside the key's epochs (t0 {t0}, {epoch_secs} s each)")]
    OutOfRange { secs: i64, t0: i64, epoch_secs: u32 },
    /// The state file's epoch is later than the one asked for: a key cannot
    /// be turned back.
    #[error("the key is at epoch {have}; epoch {want} is past and its key is gone")]
    Past { have: u64, want: u64 },
}

/// A 256-bit secret, wiped when dropped; its `Debug` shows nothing.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret([u8; 32]);

impl Secret {
    pub fn from_bytes(bytes: [u8; 32]) -> Secret {
        Secret(bytes)
    }

    /// A fresh random secret from the kernel (`getrandom`).
    pub fn random() -> std::io::Result<Secret> {
        let mut b = [0u8; 32];
        getrandom::fill(&mut b).map_err(|e| std::io::Error::other(e.to_string()))?;
        Ok(Secret(b))
    }

    fn hex(&self) -> String {
        hex_string(&self.0)
    }

    fn parse_hex(
        kind: &'static str,
        field: &'static str,
        value: &str,
    ) -> Result<Secret, SealError> {
        let mut b = [0u8; 32];
        if !parse_hex_into(value, &mut b) {
            return Err(SealError::Invalid {
                kind,
                field,
                value: "…".into(),
                why: "is not 64 hexadecimal digits",
            });
        }
        Ok(Secret(b))
    }

    /// The master key of the next epoch.
    fn evolved(&self) -> Secret {
        let mut h = Sha256::new();
        h.update(EVOLVE_LABEL);
        h.update(self.0);
        Secret(h.finalize().into())
    }

    /// Replaces the secret with the next epoch's, wiping the old one.
    fn evolve(&mut self) {
        let next = self.evolved();
        self.0.zeroize();
        *self = next;
    }

    /// The key writer `instance` seals with in this master's epoch.
    pub fn writer_key(&self, instance: &str) -> WriterKey {
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(&self.0).expect("any key length");
        m.update(WRITER_LABEL);
        m.update(&[0]);
        m.update(instance.as_bytes());
        WriterKey(Secret(m.finalize().into_bytes().into()))
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(…)")
    }
}

/// One writer's key of one epoch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WriterKey(Secret);

impl WriterKey {
    /// The MAC of a record's bytes (everything before its `mac` field).
    pub fn mac(&self, body: &[u8]) -> MacBytes {
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(&self.0.0).expect("any key length");
        m.update(body);
        let full = m.finalize().into_bytes();
        let mut out = [0u8; MAC_LEN];
        out.copy_from_slice(&full[..MAC_LEN]);
        out
    }

    /// Whether `mac` is the MAC of `body`, compared in constant time.
    pub fn verify(&self, body: &[u8], mac: &MacBytes) -> bool {
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(&self.0.0).expect("any key length");
        m.update(body);
        m.verify_truncated_left(mac).is_ok()
    }
}

/// The epochs of a key: where they start and how long each is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Epochs {
    /// UNIX seconds at which epoch 0 begins.
    pub t0: i64,
    pub epoch_secs: u32,
}

impl Epochs {
    /// The epoch that holds UNIX second `secs`.
    pub fn at(&self, secs: i64) -> Result<u64, SealError> {
        let out = || SealError::OutOfRange {
            secs,
            t0: self.t0,
            epoch_secs: self.epoch_secs,
        };
        let since = secs.checked_sub(self.t0).ok_or_else(out)?;
        if since < 0 {
            return Err(out());
        }
        let e = since as u64 / u64::from(self.epoch_secs);
        if e > MAX_EPOCH {
            return Err(out());
        }
        Ok(e)
    }

    /// The UNIX seconds `[from, to)` of epoch `e`.
    pub fn span(&self, e: u64) -> (i64, i64) {
        let len = i64::from(self.epoch_secs);
        let from = self.t0.saturating_add((e as i64).saturating_mul(len));
        (from, from.saturating_add(len))
    }
}

/// A router's verification key: the seed of every epoch's key. Written by
/// `masqlog keygen` and meant to be kept off the router.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyKey {
    /// The router's name, the `HOST` of its writers' `w=HOST/INSTANCE`.
    pub host: String,
    pub epochs: Epochs,
    seed: Secret,
}

/// A router's sealing state: the master key of the current epoch. Kept on
/// the router, replaced at every epoch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SealState {
    pub host: String,
    pub epochs: Epochs,
    epoch: u64,
    master: Secret,
}

/// Checks a host name for `w=HOST/INSTANCE`: 1 to 64 of `A-Za-z0-9.-_`.
pub fn check_name(kind: &'static str, field: &'static str, v: &str) -> Result<(), SealError> {
    if v.is_empty()
        || v.len() > 64
        || !v
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b'_')
    {
        return Err(SealError::Invalid {
            kind,
            field,
            value: v.chars().take(80).collect(),
            why: "is not 1 to 64 letters, digits, '.', '-' or '_'",
        });
    }
    Ok(())
}

impl VerifyKey {
    /// A new key for `host`, with epochs from `t0`.
    pub fn generate(host: &str, t0: i64, epoch_secs: u32) -> Result<VerifyKey, SealError> {
        const KIND: &str = "verification key";
        check_name(KIND, "host", host)?;
        check_epoch_secs(KIND, epoch_secs)?;
        let seed = Secret::random().map_err(|_| SealError::Invalid {
            kind: KIND,
            field: "seed",
            value: String::new(),
            why: "could not be drawn: the kernel's random source failed",
        })?;
        Ok(VerifyKey {
            host: host.to_string(),
            epochs: Epochs { t0, epoch_secs },
            seed,
        })
    }

    /// The sealing state of epoch 0, for the router.
    pub fn initial_state(&self) -> SealState {
        SealState {
            host: self.host.clone(),
            epochs: self.epochs,
            epoch: 0,
            master: self.seed.clone(),
        }
    }

    /// The key-file text (one line, with a trailing newline).
    pub fn to_text(&self) -> String {
        format!(
            "{VERIFY_HEADER} host={} t0={} epoch_secs={} seed={}\n",
            self.host,
            self.epochs.t0,
            self.epochs.epoch_secs,
            self.seed.hex()
        )
    }

    /// Reads a key file's text.
    pub fn parse(text: &str) -> Result<VerifyKey, SealError> {
        let f = Fields::parse(text, VERIFY_HEADER, "verification key")?;
        Ok(VerifyKey {
            host: f.name("host")?,
            epochs: f.epochs()?,
            seed: f.secret("seed")?,
        })
    }

    /// A key ring that derives epoch keys from this key, caching as it goes.
    pub fn ring(&self) -> KeyRing<'_> {
        KeyRing {
            key: self,
            cached: Vec::new(),
        }
    }
}

/// Derives epoch keys from a verification key. Keeps every 1024th master
/// so that keys of earlier epochs are found again without starting over.
#[derive(Debug)]
pub struct KeyRing<'a> {
    key: &'a VerifyKey,
    /// `(epoch, master)` at multiples of [`KeyRing::STRIDE`], ascending.
    cached: Vec<(u64, Secret)>,
}

impl KeyRing<'_> {
    const STRIDE: u64 = 1024;

    pub fn host(&self) -> &str {
        &self.key.host
    }

    pub fn epochs(&self) -> Epochs {
        self.key.epochs
    }

    /// The master key of epoch `e`.
    pub fn master(&mut self, e: u64) -> Result<Secret, SealError> {
        if e > MAX_EPOCH {
            return Err(SealError::OutOfRange {
                secs: i64::MAX,
                t0: self.key.epochs.t0,
                epoch_secs: self.key.epochs.epoch_secs,
            });
        }
        if self.cached.is_empty() {
            self.cached.push((0, self.key.seed.clone()));
        }
        let slot = (e / Self::STRIDE) as usize;
        while self.cached.len() <= slot {
            let (at, last) = self.cached.last().expect("not empty");
            let mut m = last.clone();
            for _ in 0..Self::STRIDE {
                m.evolve();
            }
            let next = at + Self::STRIDE;
            self.cached.push((next, m));
        }
        let (at, base) = &self.cached[slot];
        let mut m = base.clone();
        for _ in *at..e {
            m.evolve();
        }
        Ok(m)
    }

    /// Writer `instance`'s key of epoch `e`.
    pub fn writer_key(&mut self, instance: &str, e: u64) -> Result<WriterKey, SealError> {
        Ok(self.master(e)?.writer_key(instance))
    }
}

impl SealState {
    /// The epoch whose master the state holds.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Moves the state on to epoch `e`, wiping every master before it.
    /// Returns whether it moved. Asking for an epoch it is already past is
    /// [`SealError::Past`]: the state never goes back.
    pub fn advance_to(&mut self, e: u64) -> Result<bool, SealError> {
        if e < self.epoch {
            return Err(SealError::Past {
                have: self.epoch,
                want: e,
            });
        }
        if e > MAX_EPOCH {
            return Err(SealError::OutOfRange {
                secs: i64::MAX,
                t0: self.epochs.t0,
                epoch_secs: self.epochs.epoch_secs,
            });
        }
        let moved = e > self.epoch;
        while self.epoch < e {
            self.master.evolve();
            self.epoch += 1;
        }
        Ok(moved)
    }

    /// Writer `instance`'s key of the current epoch.
    pub fn writer_key(&self, instance: &str) -> WriterKey {
        self.master.writer_key(instance)
    }

    /// The state-file text (one line, with a trailing newline).
    pub fn to_text(&self) -> String {
        format!(
            "{STATE_HEADER} host={} t0={} epoch_secs={} epoch={} master={}\n",
            self.host,
            self.epochs.t0,
            self.epochs.epoch_secs,
            self.epoch,
            self.master.hex()
        )
    }

    /// Reads a state file's text.
    pub fn parse(text: &str) -> Result<SealState, SealError> {
        const KIND: &str = "sealing state";
        let f = Fields::parse(text, STATE_HEADER, KIND)?;
        let epoch = f.num("epoch")?;
        if epoch > MAX_EPOCH {
            return Err(SealError::Invalid {
                kind: KIND,
                field: "epoch",
                value: epoch.to_string(),
                why: "is beyond the last epoch a key may reach",
            });
        }
        Ok(SealState {
            host: f.name("host")?,
            epochs: f.epochs()?,
            epoch,
            master: f.secret("master")?,
        })
    }
}

/// Who wrote a record: the router (`host`, from its key) and the plugin
/// instance (ulogd's id of the stack entry, e.g. `masq1`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WriterId {
    pub host: String,
    pub instance: String,
}

impl fmt::Display for WriterId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.host, self.instance)
    }
}

impl WriterId {
    /// Reads `HOST/INSTANCE`.
    pub fn parse(s: &str) -> Option<WriterId> {
        let (host, instance) = s.split_once('/')?;
        check_name("writer", "host", host).ok()?;
        check_name("writer", "instance", instance).ok()?;
        Some(WriterId {
            host: host.to_string(),
            instance: instance.to_string(),
        })
    }
}

/// The sealing fields of one record, written before its MAC: who, which
/// run of the writer, the place in that run, the epoch of the key, and the
/// MAC of the record before it (all zeros for the first of a run).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SealFields {
    pub writer: WriterId,
    pub run: u64,
    pub seq: u64,
    pub epoch: u64,
    pub prev: MacBytes,
}

/// One writer's chain: the sealing state and where the writer is in its
/// run. The plugin's writer thread keeps one per instance; records are
/// sealed in the order they are written.
#[derive(Debug)]
pub struct Chain {
    state: SealState,
    writer: WriterId,
    key: WriterKey,
    run: u64,
    seq: u64,
    prev: MacBytes,
}

impl Chain {
    /// Starts run `run` of writer `instance` (sequence numbers from 1).
    pub fn start(state: SealState, instance: &str, run: u64) -> Result<Chain, SealError> {
        check_name("writer", "instance", instance)?;
        let key = state.writer_key(instance);
        Ok(Chain {
            writer: WriterId {
                host: state.host.clone(),
                instance: instance.to_string(),
            },
            state,
            key,
            run,
            seq: 0,
            prev: [0; MAC_LEN],
        })
    }

    pub fn writer(&self) -> &WriterId {
        &self.writer
    }

    pub fn run(&self) -> u64 {
        self.run
    }

    /// The sequence number of the last record sealed (0: none yet).
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// The MAC of the last record sealed.
    pub fn last_mac(&self) -> MacBytes {
        self.prev
    }

    /// The sealing state (for writing it back after the epoch moved).
    pub fn state(&self) -> &SealState {
        &self.state
    }

    /// Moves to the epoch of UNIX second `now` if it is later than the
    /// current one, wiping the old keys. A clock that went back keeps the
    /// current epoch (a key is never turned back). Returns whether the
    /// epoch moved, so that the caller writes the new state out.
    pub fn tick(&mut self, now: i64) -> Result<bool, SealError> {
        let e = self.state.epochs.at(now)?;
        if e <= self.state.epoch {
            return Ok(false);
        }
        self.state.advance_to(e)?;
        self.key = self.state.writer_key(&self.writer.instance);
        Ok(true)
    }

    /// The fields of the next record (which then must be [`Chain::sign`]ed).
    pub fn next_fields(&mut self) -> SealFields {
        self.seq += 1;
        SealFields {
            writer: self.writer.clone(),
            run: self.run,
            seq: self.seq,
            epoch: self.state.epoch,
            prev: self.prev,
        }
    }

    /// The MAC of the record whose bytes (up to its `mac` field) are
    /// `body`; it becomes the next record's `prev`.
    pub fn sign(&mut self, body: &[u8]) -> MacBytes {
        let mac = self.key.mac(body);
        self.prev = mac;
        mac
    }
}

/// What a writer's run is known to have written, kept on the router next
/// to the sealing state: the next run starts with a chain record naming it,
/// so a restart or a crash is visible in the log. `clean` is set by a stop
/// that sealed everything it had; a checkpoint of a run still going has it
/// unset (after a crash, records after the checkpoint may have been written
/// or lost).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainMark {
    pub writer: WriterId,
    pub run: u64,
    pub seq: u64,
    pub mac: MacBytes,
    pub clean: bool,
}

const MARK_HEADER: &str = "masqlog-chain/1";

impl ChainMark {
    /// The mark of `chain` as it stands.
    pub fn of(chain: &Chain, clean: bool) -> ChainMark {
        ChainMark {
            writer: chain.writer.clone(),
            run: chain.run,
            seq: chain.seq,
            mac: chain.prev,
            clean,
        }
    }

    /// The mark-file text (one line, with a trailing newline).
    pub fn to_text(&self) -> String {
        format!(
            "{MARK_HEADER} writer={} run={} seq={} mac={} clean={}\n",
            self.writer,
            self.run,
            self.seq,
            hex_string(&self.mac),
            u8::from(self.clean)
        )
    }

    /// Reads a mark file's text.
    pub fn parse(text: &str) -> Result<ChainMark, SealError> {
        const KIND: &str = "chain mark";
        let f = Fields::parse(text, MARK_HEADER, KIND)?;
        let w = f.get("writer")?;
        let writer =
            WriterId::parse(w).ok_or_else(|| f.invalid("writer", w, "is not HOST/INSTANCE"))?;
        let m = f.get("mac")?;
        let mut mac = [0u8; MAC_LEN];
        if !parse_hex_into(m, &mut mac) {
            return Err(f.invalid("mac", m, "is not 32 hexadecimal digits"));
        }
        let clean = match f.get("clean")? {
            "1" => true,
            "0" => false,
            other => return Err(f.invalid("clean", other, "is not 0 or 1")),
        };
        Ok(ChainMark {
            writer,
            run: f.num("run")?,
            seq: f.num("seq")?,
            mac,
            clean,
        })
    }
}

fn check_epoch_secs(kind: &'static str, v: u32) -> Result<(), SealError> {
    if !EPOCH_SECS_RANGE.contains(&v) {
        return Err(SealError::Invalid {
            kind,
            field: "epoch_secs",
            value: v.to_string(),
            why: "is not 60 to 86400 seconds",
        });
    }
    Ok(())
}

/// The `key=value` words of a one-line key file after its header word.
struct Fields<'a> {
    kind: &'static str,
    words: Vec<(&'a str, &'a str)>,
}

impl<'a> Fields<'a> {
    fn parse(text: &'a str, header: &str, kind: &'static str) -> Result<Fields<'a>, SealError> {
        let mut it = text.split_ascii_whitespace();
        let first = it.next().unwrap_or("");
        if first != header {
            return Err(SealError::WrongKind {
                expected: kind,
                found: first.chars().take(40).collect(),
            });
        }
        let words = it.filter_map(|w| w.split_once('=')).collect();
        Ok(Fields { kind, words })
    }

    fn get(&self, field: &'static str) -> Result<&'a str, SealError> {
        self.words
            .iter()
            .find(|(k, _)| *k == field)
            .map(|(_, v)| *v)
            .ok_or(SealError::Missing {
                kind: self.kind,
                field,
            })
    }

    fn invalid(&self, field: &'static str, value: &str, why: &'static str) -> SealError {
        SealError::Invalid {
            kind: self.kind,
            field,
            value: value.chars().take(80).collect(),
            why,
        }
    }

    fn num(&self, field: &'static str) -> Result<u64, SealError> {
        let v = self.get(field)?;
        v.parse()
            .map_err(|_| self.invalid(field, v, "is not a decimal number"))
    }

    fn name(&self, field: &'static str) -> Result<String, SealError> {
        let v = self.get(field)?;
        check_name(self.kind, field, v)?;
        Ok(v.to_string())
    }

    fn secret(&self, field: &'static str) -> Result<Secret, SealError> {
        Secret::parse_hex(self.kind, field, self.get(field)?)
    }

    fn epochs(&self) -> Result<Epochs, SealError> {
        let t0 = self.get("t0")?;
        let t0: i64 = t0
            .parse()
            .map_err(|_| self.invalid("t0", t0, "is not UNIX seconds"))?;
        let secs = self.get("epoch_secs")?;
        let epoch_secs: u32 = secs
            .parse()
            .map_err(|_| self.invalid("epoch_secs", secs, "is not a number of seconds"))?;
        check_epoch_secs(self.kind, epoch_secs)?;
        Ok(Epochs { t0, epoch_secs })
    }
}

/// Lowercase hexadecimal digits of `bytes`.
pub fn hex_string(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    write_hex(bytes, &mut s);
    s
}

/// Appends the lowercase hexadecimal digits of `bytes`.
pub fn write_hex(bytes: &[u8], out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for b in bytes {
        out.push(HEX[usize::from(b >> 4)] as char);
        out.push(HEX[usize::from(b & 15)] as char);
    }
}

/// Reads exactly `out.len() * 2` hexadecimal digits (either case).
pub fn parse_hex_into(s: &str, out: &mut [u8]) -> bool {
    let b = s.as_bytes();
    if b.len() != out.len() * 2 {
        return false;
    }
    let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    for (i, slot) in out.iter_mut().enumerate() {
        match (digit(b[2 * i]), digit(b[2 * i + 1])) {
            (Some(h), Some(l)) => *slot = h << 4 | l,
            _ => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> VerifyKey {
        VerifyKey {
            host: "gw1".into(),
            epochs: Epochs {
                t0: 1_764_000_000,
                epoch_secs: 900,
            },
            seed: Secret([7; 32]),
        }
    }

    #[test]
    fn key_files_read_back_as_written() {
        let k = key();
        assert_eq!(VerifyKey::parse(&k.to_text()).unwrap(), k);
        let mut s = k.initial_state();
        s.advance_to(5).unwrap();
        assert_eq!(SealState::parse(&s.to_text()).unwrap(), s);
        assert!(
            k.to_text()
                .starts_with("masqlog-verify-key/1 host=gw1 t0=1764000000")
        );
    }

    #[test]
    fn key_files_of_the_wrong_kind_or_with_bad_fields_are_refused() {
        let k = key();
        let e = SealState::parse(&k.to_text()).unwrap_err();
        assert!(matches!(e, SealError::WrongKind { .. }), "{e}");
        let bad = k.to_text().replace("epoch_secs=900", "epoch_secs=5");
        assert!(
            VerifyKey::parse(&bad)
                .unwrap_err()
                .to_string()
                .contains("60 to 86400")
        );
        let bad = k.to_text().replace("host=gw1", "host=g/w");
        assert!(VerifyKey::parse(&bad).is_err());
        let bad = k.to_text().replace(&"07".repeat(32), &"07".repeat(31));
        let e = VerifyKey::parse(&bad).unwrap_err().to_string();
        assert!(
            e.contains("64 hexadecimal digits") && !e.contains("0707"),
            "{e}"
        );
        assert!(matches!(
            VerifyKey::parse("masqlog-verify-key/1 host=gw1 t0=0 epoch_secs=900").unwrap_err(),
            SealError::Missing { field: "seed", .. }
        ));
    }

    #[test]
    fn the_router_and_the_verifier_derive_the_same_keys() {
        let k = key();
        let mut ring = k.ring();
        let mut state = k.initial_state();
        for e in [0u64, 1, 2, 1023, 1024, 1025, 3000] {
            state.advance_to(e).unwrap();
            assert_eq!(
                state.writer_key("masq1"),
                ring.writer_key("masq1", e).unwrap(),
                "epoch {e}"
            );
        }
        // Going back in the ring (a log read out of order) gives the same.
        let early = ring.writer_key("masq1", 2).unwrap();
        let mut s2 = k.initial_state();
        s2.advance_to(2).unwrap();
        assert_eq!(early, s2.writer_key("masq1"));
    }

    #[test]
    fn epochs_and_writers_get_different_keys() {
        let k = key();
        let mut ring = k.ring();
        let a = ring.writer_key("masq1", 0).unwrap();
        let b = ring.writer_key("masq1", 1).unwrap();
        let c = ring.writer_key("masq2", 0).unwrap();
        assert_ne!(a, b);
        assert_ne!(a, c);
        let body = b"masqlog/1 ev=start";
        assert_ne!(a.mac(body), b.mac(body));
        assert!(a.verify(body, &a.mac(body)));
        assert!(!b.verify(body, &a.mac(body)));
        assert!(!a.verify(b"masqlog/1 ev=end", &a.mac(body)));
    }

    #[test]
    fn a_state_never_goes_back() {
        let mut s = key().initial_state();
        assert!(s.advance_to(3).unwrap());
        assert!(!s.advance_to(3).unwrap());
        assert_eq!(
            s.advance_to(2).unwrap_err(),
            SealError::Past { have: 3, want: 2 }
        );
        assert!(s.advance_to(MAX_EPOCH + 1).is_err());
        assert_eq!(s.epoch(), 3);
    }

    #[test]
    fn epochs_are_cut_from_t0() {
        let e = Epochs {
            t0: 1000,
            epoch_secs: 60,
        };
        assert_eq!(e.at(1000).unwrap(), 0);
        assert_eq!(e.at(1059).unwrap(), 0);
        assert_eq!(e.at(1060).unwrap(), 1);
        assert!(e.at(999).is_err());
        assert!(e.at(i64::MIN).is_err());
        assert!(e.at(i64::MAX).is_err());
        assert_eq!(e.span(2), (1120, 1180));
    }

    #[test]
    fn hmac_matches_rfc_4231_case_2() {
        // RFC 4231 test case 2 (key "Jefe"): the HMAC-SHA256 the MACs are
        // truncated from.
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(b"Jefe").unwrap();
        m.update(b"what do ya want for nothing?");
        assert_eq!(
            hex_string(&m.finalize().into_bytes()),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn a_chain_numbers_links_and_seals_what_a_ring_verifies() {
        let k = key();
        let mut c = Chain::start(k.initial_state(), "masq1", 4).unwrap();
        let t0 = k.epochs.t0;
        assert!(!c.tick(t0 + 10).unwrap());
        let f1 = c.next_fields();
        assert_eq!((f1.run, f1.seq, f1.epoch, f1.prev), (4, 1, 0, [0; MAC_LEN]));
        assert_eq!(f1.writer.to_string(), "gw1/masq1");
        let m1 = c.sign(b"one");
        assert!(c.tick(t0 + 2 * 900 + 1).unwrap());
        let f2 = c.next_fields();
        assert_eq!((f2.seq, f2.epoch, f2.prev), (2, 2, m1));
        let m2 = c.sign(b"two");
        // A clock that steps back keeps the epoch.
        assert!(!c.tick(t0 + 5).unwrap());
        assert_eq!(c.state().epoch(), 2);
        let mut ring = k.ring();
        assert!(ring.writer_key("masq1", 0).unwrap().verify(b"one", &m1));
        assert!(ring.writer_key("masq1", 2).unwrap().verify(b"two", &m2));
        assert!(!ring.writer_key("masq1", 0).unwrap().verify(b"two", &m2));
    }

    #[test]
    fn chain_marks_read_back() {
        let mut c = Chain::start(key().initial_state(), "masq1", 9).unwrap();
        c.next_fields();
        c.sign(b"x");
        for clean in [true, false] {
            let m = ChainMark::of(&c, clean);
            assert_eq!(ChainMark::parse(&m.to_text()).unwrap(), m);
            assert_eq!((m.run, m.seq, m.mac), (9, 1, c.last_mac()));
        }
        let bad = ChainMark::of(&c, true)
            .to_text()
            .replace("clean=1", "clean=yes");
        assert!(ChainMark::parse(&bad).is_err());
    }

    #[test]
    fn writer_ids_read_back() {
        let w = WriterId::parse("gw1/masq1").unwrap();
        assert_eq!(w.to_string(), "gw1/masq1");
        for bad in ["gw1", "/masq1", "gw1/", "g w/x", "a/b/c"] {
            assert_eq!(WriterId::parse(bad), None, "{bad}");
        }
        assert!(Chain::start(key().initial_state(), "m q", 1).is_err());
    }

    #[test]
    fn debug_shows_no_secret() {
        let s = format!("{:?}", key());
        assert!(!s.contains("7, 7") && !s.contains("0707"), "{s}");
    }
}
