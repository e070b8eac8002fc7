//! Spools no running instance replays, found at start: a renamed instance
//! leaves its records under its old name, `spool_size_mb=0` leaves them
//! where the spool was. Their records are never sent unless an operator
//! acts, so the start says where they are (`masqlog check-config` lists
//! them too, moved `spool_dir`s included).

use std::fs::File;
use std::path::Path;

use masqlog_core::spool_files::{pending_bytes, spool_names};
use rustix::fs::{FlockOperation, OFlags};

/// Whether another process holds the spool's lock (an instance using it).
fn in_use(dir: &Path) -> bool {
    let Ok(fd) = rustix::fs::open(
        dir.join("lock"),
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK,
        rustix::fs::Mode::empty(),
    ) else {
        return false;
    };
    let lock = File::from(fd);
    // A shared lock, dropped at once: refused only while someone holds it.
    rustix::fs::flock(&lock, FlockOperation::NonBlockingLockShared).is_err()
}

/// Lines for the log: one per spool under `root` (the configured
/// `spool_dir`) that holds records and that neither this instance (`id`,
/// whose spool is on when `spool_on`) nor another running process uses.
pub fn notices(root: &Path, id: &str, spool_on: bool) -> Vec<String> {
    let Ok(names) = spool_names(root) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for name in names {
        let own = name == id;
        if own && spool_on {
            continue;
        }
        let dir = root.join(&name);
        let Ok(Some(bytes)) = pending_bytes(&dir) else {
            continue;
        };
        if bytes == 0 || in_use(&dir) {
            continue;
        }
        out.push(if own {
            format!(
                "spool {} holds {bytes} bytes of records from a run with a spool; with spool_size_mb=0 they are not sent: set spool_size_mb again to send them, or save the directory elsewhere and remove it",
                dir.display()
            )
        } else {
            format!(
                "spool {} holds {bytes} bytes of records that no running instance sends (an instance renamed, or not started yet): only an instance named {name} with spool_dir={} sends them; rename it back, or stop ulogd and, once {to} holds no records, put this directory in its place (rm -r {to}; mv {} {to})",
                dir.display(),
                root.display(),
                dir.display(),
                to = root.join(id).display()
            )
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::spool::Spool;
    use crate::sink::testutil::temp_dir;
    use std::time::Duration;

    fn spool_with(dir: &Path, msgs: &[&str]) -> Spool {
        let (mut s, _) = Spool::open(dir, 1 << 20, Duration::ZERO).unwrap();
        for m in msgs {
            s.append(m.as_bytes()).unwrap();
        }
        s.flush().unwrap();
        s
    }

    #[test]
    fn a_renamed_instances_spool_is_named_and_a_used_or_empty_one_is_not() {
        let root = temp_dir("orphans");
        drop(spool_with(&root.path().join("old"), &["one", "two"]));
        drop(spool_with(&root.path().join("empty"), &[]));
        // Another process's instance holds its lock: not an orphan.
        let held = spool_with(&root.path().join("busy"), &["x"]);
        let n = notices(root.path(), "masq1", true);
        assert_eq!(n.len(), 1, "{n:?}");
        assert!(n[0].contains("/old holds 22 bytes"), "{n:?}");
        assert!(n[0].contains("instance named old"), "{n:?}");
        drop(held);
        assert_eq!(notices(root.path(), "masq1", true).len(), 2);
        // Its own spool is no orphan, unless the spool is off.
        assert_eq!(notices(root.path(), "old", true).len(), 1);
        let off = notices(root.path(), "old", false);
        assert!(off.iter().any(|l| l.contains("spool_size_mb=0")), "{off:?}");
    }
}
