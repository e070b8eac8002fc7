//! Orphaned spools: directories under a configured `spool_dir` that hold
//! records no instance of the config sends. A renamed instance (or one
//! whose `spool_dir` changed) leaves its records under the old name, and
//! `spool_size_mb=0` leaves them where the spool was; either way they wait
//! until an operator acts. The plugin says so at start (a NOTICE, see
//! `src/sink/orphans.rs`); the words here are the same, with the number
//! of records.

use std::io;
use std::path::{Path, PathBuf};

use super::{Report, System};

/// What a spool directory still holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SpoolContents {
    /// Whole records past the head: not delivered yet.
    pub records: u64,
    /// Their bytes, as the plugin's NOTICE counts them
    /// ([`masqlog_core::spool_files::pending_bytes`]).
    pub bytes: u64,
}

/// How one MASQLOG instance of the config uses its `spool_dir`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpoolUse {
    /// The instance's id: its spool is `<root>/<id>`.
    pub id: String,
    /// `spool_dir` as configured, also with the spool off; `None` when it
    /// is not an absolute path.
    pub root: Option<PathBuf>,
    /// Whether the spool is on (`spool_size_mb` above 0).
    pub on: bool,
}

impl SpoolUse {
    fn dir(&self) -> Option<PathBuf> {
        self.root.as_ref().map(|r| r.join(&self.id))
    }
}

/// Warns about every directory under the `spool_dir`s of `uses` that holds
/// records and is not the spool of an instance with the spool on. The
/// directories named after an instance in `refused` (whose section the
/// plugin refuses, a failure already) are left alone: where that one
/// spools is not known.
pub fn check_spools(r: &mut Report, uses: &[SpoolUse], refused: &[String], sys: &dyn System) {
    let mut roots: Vec<&Path> = uses.iter().filter_map(|u| u.root.as_deref()).collect();
    roots.sort_unstable();
    roots.dedup();
    for root in roots {
        check_root(r, root, sys);
        let names = match sys.subdirs(root) {
            Ok(names) => names,
            // the plugin creates it at the first start
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => {
                r.warn(
                    format!("spool_dir {}", root.display()),
                    format!("cannot be read ({e}): spools a renamed instance left there are not looked for"),
                );
                continue;
            }
        };
        for name in names {
            let here = uses
                .iter()
                .find(|u| u.id == name && u.root.as_deref() == Some(root));
            if here.is_some_and(|u| u.on) || refused.contains(&name) {
                continue;
            }
            let dir = root.join(&name);
            let subject = format!("spool {}", dir.display());
            let held = match sys.spool_contents(&dir) {
                Ok(Some(c)) if c.records > 0 => c,
                Ok(_) => continue,
                Err(e) => {
                    r.warn(
                        subject,
                        format!("cannot be read ({e}): whether it holds records that no instance sends is not known"),
                    );
                    continue;
                }
            };
            let move_to = move_targets(uses, root, &name);
            let holds = format!(
                "holds {} record{} ({} bytes)",
                held.records,
                if held.records == 1 { "" } else { "s" },
                held.bytes
            );
            let message = if here.is_some() {
                format!(
                    "{holds} from a run with a spool; with spool_size_mb=0 they are not sent: set spool_size_mb again to send them, {}",
                    match move_to {
                        Some(t) => format!(
                            "or stop ulogd and, once {t} holds no records, put this directory in its place (rm -r {t}; mv {} {t})",
                            dir.display()
                        ),
                        None => "or save the directory elsewhere and remove it".to_string(),
                    }
                )
            } else {
                format!(
                    "{holds} that no instance sends (an instance renamed, or its spool_dir changed): only an instance named {name} with spool_dir={} sends them; {}",
                    root.display(),
                    match move_to {
                        Some(t) => format!("rename it back, or stop ulogd and, once {t} holds no records, put this directory in its place (rm -r {t}; mv {} {t})", dir.display()),
                        None => "rename it back (with spool_size_mb above 0), or save the directory elsewhere and remove it".to_string(),
                    }
                )
            };
            r.warn(subject, message);
        }
    }
}

/// The spool root itself (`spool_dir`): the plugin creates one directory
/// per instance in it, mode 0700, refusing one that is a symlink or that
/// others may write to. The root, which it opens as named, must not let
/// others write either: they could take an instance's name first (its
/// spool then refused) or fill the disk; and a symlink there chooses where
/// ulogd writes as root.
fn check_root(r: &mut Report, root: &Path, sys: &dyn System) {
    use super::FileKind;
    let subject = format!("spool_dir {}", root.display());
    let Ok(info) = sys.file_info(root) else {
        return; // not made yet: the plugin creates it
    };
    match info.kind {
        FileKind::Dir => {}
        FileKind::Symlink => {
            return r.warn(
                subject,
                "is a symlink: whoever can change it chooses where ulogd writes as root; make it a directory (install -d -o ulog -m 0700)",
            );
        }
        _ => return r.fail(subject, "is not a directory"),
    }
    let owner = super::user_name(sys, info.uid);
    if info.mode & 0o022 != 0 && info.mode & 0o1000 == 0 {
        r.fail(
            subject,
            format!(
                "mode {:04o}: others may write to it (take an instance's spool name first, fill the disk); chmod 0700 {}",
                info.mode,
                root.display()
            ),
        );
    } else {
        r.ok(
            subject,
            format!("a directory, owner {owner}, mode {:04o}", info.mode),
        );
    }
}

/// Where the records of the orphan `<root>/<name>` could be sent from: the
/// spool of the instance `name` if it now spools elsewhere, else of the
/// instances spooling under `root`, else of any instance with a spool.
fn move_targets(uses: &[SpoolUse], root: &Path, name: &str) -> Option<String> {
    let on = || uses.iter().filter(|u| u.on);
    let pick: Vec<PathBuf> = [
        on().filter(|u| u.id == name)
            .filter_map(SpoolUse::dir)
            .collect(),
        on().filter(|u| u.root.as_deref() == Some(root))
            .filter_map(SpoolUse::dir)
            .collect(),
        on().filter_map(SpoolUse::dir).collect::<Vec<_>>(),
    ]
    .into_iter()
    .find(|v| !v.is_empty())?;
    Some(
        pick.iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(" or "),
    )
}
