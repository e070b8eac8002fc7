//! The state directory: every rule file ever applied, named by the UNIX time
//! it was written (`rules.<timestamp>.<nft|iptables>`), never changed or
//! removed, and the `current` symlink to the one in force. Which rules were
//! in force at time T is the file with the highest timestamp <= T.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::PortblockError;
use super::plan::Method;
use super::rulefile::RuleFile;

/// The symlink to the rule file in force.
pub const CURRENT: &str = "current";

/// The lock file `apply` holds (flock) while it works.
pub const LOCK: &str = ".lock";

/// Appended to a rule file whose reload failed: it was never in force, so
/// it is kept for evidence but left out of the history.
pub const FAILED_SUFFIX: &str = ".failed";

/// `rules.<t>.<method>`.
pub fn rule_file_name(t: i64, method: Method) -> String {
    format!("rules.{t}.{}", method.name())
}

/// The timestamp and method of a rule file name; `None` for any other name
/// (temporary files, `current`, `*.failed`).
pub fn parse_rule_file_name(name: &str) -> Option<(i64, Method)> {
    let rest = name.strip_prefix("rules.")?;
    let (t, ext) = rest.split_once('.')?;
    if t.is_empty() || t.len() > 18 || !t.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if t.len() > 1 && t.starts_with('0') {
        return None;
    }
    Some((t.parse().ok()?, ext.parse().ok()?))
}

/// One rule file of a state directory, not yet read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub timestamp: i64,
    pub method: Method,
    pub path: PathBuf,
}

/// The rule files of `state_dir`, sorted by timestamp. Two files for the same
/// second are an error: which one was in force could not be told.
pub fn list(state_dir: &Path) -> Result<Vec<Entry>, PortblockError> {
    let rd = fs::read_dir(state_dir).map_err(PortblockError::io("cannot list", state_dir))?;
    let mut out = Vec::new();
    for e in rd {
        let e = e.map_err(PortblockError::io("cannot list", state_dir))?;
        let name = e.file_name();
        let Some((timestamp, method)) = name.to_str().and_then(parse_rule_file_name) else {
            continue;
        };
        out.push(Entry {
            timestamp,
            method,
            path: e.path(),
        });
    }
    out.sort_by_key(|e| e.timestamp);
    for w in out.windows(2) {
        if w[0].timestamp == w[1].timestamp {
            return Err(PortblockError::SameSecond {
                a: w[0].path.clone(),
                b: w[1].path.clone(),
            });
        }
    }
    Ok(out)
}

/// Every rule file of `state_dir`, read and parsed, sorted by timestamp.
/// A file that does not parse is an error naming it: a gap in the history
/// must not pass unnoticed.
pub fn history(state_dir: &Path) -> Result<Vec<RuleFile>, PortblockError> {
    list(state_dir)?
        .iter()
        .map(|e| RuleFile::read(&e.path))
        .collect()
}

/// The rule file in force at `t_unix`: the one with the highest timestamp
/// <= `t_unix`. `history` must be sorted by timestamp, as [`history`] gives
/// it.
pub fn active_at(history: &[RuleFile], t_unix: i64) -> Option<&RuleFile> {
    let n = history.partition_point(|f| f.timestamp <= t_unix);
    history.get(n.checked_sub(1)?)
}

/// The same for [`Entry`]s.
pub fn entry_at(entries: &[Entry], t_unix: i64) -> Option<&Entry> {
    let n = entries.partition_point(|e| e.timestamp <= t_unix);
    entries.get(n.checked_sub(1)?)
}

/// The file name `current` points to, if the symlink exists. A `current`
/// that is not a symlink to a rule file in the directory is refused: it was
/// not made by `apply`.
pub fn current_target(state_dir: &Path) -> Result<Option<String>, PortblockError> {
    let link = state_dir.join(CURRENT);
    match fs::symlink_metadata(&link) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(PortblockError::io("cannot stat", &link)(e)),
        Ok(m) if !m.file_type().is_symlink() => {
            return Err(PortblockError::CurrentNotOurs {
                path: link,
                reason: "it is not a symlink".into(),
            });
        }
        Ok(_) => {}
    }
    let target =
        fs::read_link(&link).map_err(PortblockError::io("cannot read the symlink", &link))?;
    let name = target
        .to_str()
        .map(String::from)
        .filter(|n| parse_rule_file_name(n).is_some());
    match name {
        Some(n) => Ok(Some(n)),
        None => Err(PortblockError::CurrentNotOurs {
            path: link,
            reason: format!(
                "it points to {}, not to a rules.<timestamp>.<method> file beside it",
                target.display()
            ),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::portblock::render::render;
    use crate::portblock::render::tests::small_plan;
    use crate::portblock::testutil::temp_dir;

    #[test]
    fn names() {
        assert_eq!(
            rule_file_name(1_732_390_000, Method::Nft),
            "rules.1732390000.nft"
        );
        assert_eq!(
            parse_rule_file_name("rules.1732390000.nft"),
            Some((1_732_390_000, Method::Nft))
        );
        assert_eq!(
            parse_rule_file_name("rules.5.iptables"),
            Some((5, Method::Iptables))
        );
        for bad in [
            "rules.1732390000.nft.failed",
            "rules..nft",
            "rules.01.nft",
            "rules.x.nft",
            "rules.1.txt",
            "current",
            ".current.tmp.1",
            "rules.99999999999999999999.nft",
        ] {
            assert_eq!(parse_rule_file_name(bad), None, "{bad}");
        }
    }

    fn write(dir: &Path, t: i64, method: Method) {
        let text = render(&small_plan(method, None), t);
        fs::write(dir.join(rule_file_name(t, method)), text).unwrap();
    }

    #[test]
    fn history_is_sorted_and_skips_other_files() {
        let d = temp_dir("history");
        write(d.path(), 1000, Method::Nft);
        write(d.path(), 300, Method::Iptables);
        write(d.path(), 20000, Method::Nft);
        fs::write(d.path().join("rules.500.nft.failed"), "whatever").unwrap();
        fs::write(d.path().join("notes.txt"), "x").unwrap();
        std::os::unix::fs::symlink("rules.20000.nft", d.path().join(CURRENT)).unwrap();
        let h = history(d.path()).unwrap();
        let ts: Vec<i64> = h.iter().map(|f| f.timestamp).collect();
        assert_eq!(ts, [300, 1000, 20000]);
        assert_eq!(h[0].params.method, Method::Iptables);
        assert_eq!(
            current_target(d.path()).unwrap().as_deref(),
            Some("rules.20000.nft")
        );
    }

    #[test]
    fn active_at_edges() {
        let d = temp_dir("active");
        for t in [100, 200, 300] {
            write(d.path(), t, Method::Nft);
        }
        let h = history(d.path()).unwrap();
        let at = |t| active_at(&h, t).map(|f| f.timestamp);
        assert_eq!(at(99), None); // before the first file: nothing known
        assert_eq!(at(100), Some(100)); // the second it was written
        assert_eq!(at(199), Some(100));
        assert_eq!(at(200), Some(200));
        assert_eq!(at(299), Some(200));
        assert_eq!(at(300), Some(300));
        assert_eq!(at(i64::MAX), Some(300));
        assert_eq!(at(i64::MIN), None);
        assert_eq!(active_at(&[], 100).map(|f| f.timestamp), None);
        let e = list(d.path()).unwrap();
        assert_eq!(entry_at(&e, 250).map(|e| e.timestamp), Some(200));
    }

    #[test]
    fn a_broken_file_or_two_in_one_second_is_an_error() {
        let d = temp_dir("broken");
        write(d.path(), 100, Method::Nft);
        write(d.path(), 100, Method::Iptables);
        let e = history(d.path()).unwrap_err().to_string();
        assert!(e.contains("same second"), "{e}");
        let d = temp_dir("broken2");
        write(d.path(), 100, Method::Nft);
        fs::write(d.path().join("rules.200.nft"), "garbage\n").unwrap();
        let e = history(d.path()).unwrap_err().to_string();
        assert!(
            e.contains("rules.200.nft") && e.contains("not a masqlog"),
            "{e}"
        );
    }

    #[test]
    fn current_must_be_our_symlink() {
        let d = temp_dir("current");
        assert_eq!(current_target(d.path()).unwrap(), None);
        fs::write(d.path().join(CURRENT), "x").unwrap();
        assert!(
            current_target(d.path())
                .unwrap_err()
                .to_string()
                .contains("not a symlink")
        );
        fs::remove_file(d.path().join(CURRENT)).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", d.path().join(CURRENT)).unwrap();
        assert!(
            current_target(d.path())
                .unwrap_err()
                .to_string()
                .contains("/etc/passwd")
        );
    }
}
