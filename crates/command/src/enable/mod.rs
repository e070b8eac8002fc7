//! `masqlog enable` / `masqlog disable` as pure edits of a ulogd.conf's
//! text: enable adds a MASQLOG stack to `[global]` and its two sections at
//! the end, each between marker comments and under section names no other
//! part of the file uses; disable removes exactly the marked lines, so the
//! file is again what it was, byte for byte, apart from the user's own
//! edits elsewhere. The file is read the way ulogd reads it
//! ([`crate::checkconfig::ulogdconf`]).
//!
//! What this keeps from the file it is given: every other stack, plugin and
//! section. When `[global]` names no `plugin=` (Debian's default), ulogd
//! loads every plugin of its directory, the package's among them, and so no
//! `plugin=` line is added: one would stop ulogd from loading the rest and
//! break the other stacks. When it names some, the two this stack needs are
//! added if missing.

pub mod files;

use std::path::Path;

use masqlog_core::ulogd_conf::{Example, Substitutions, UlogdConf};

use crate::checkconfig::ulogdconf::{ConfFile, MAX_ID_LEN, parse_stack};
use crate::package;

/// The first line of the block enable adds to `[global]`.
pub const GLOBAL_BEGIN: &str =
    "# >>> masqlog enable: [global] lines (`masqlog disable` removes them; do not edit)";
/// The first line of the block of sections enable adds at the end.
pub const SECTIONS_BEGIN: &str =
    "# >>> masqlog enable: sections (`masqlog disable` removes them; do not edit)";
/// The same, when enable added the missing newline of the file's last line.
pub const SECTIONS_BEGIN_NL: &str = "# >>> masqlog enable: sections, after a newline added to the file's last line (`masqlog disable` removes them; do not edit)";
/// The last line of each block.
pub const END: &str = "# <<< masqlog enable";

/// Why a config cannot be enabled or disabled.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum EnableError {
    #[error(
        "{file} has no [global] section: is it a ulogd config? (ulogd reads it from `--configfile`, by default /etc/ulogd.conf)"
    )]
    NoGlobal { file: String },
    #[error("ulogd cannot read {file}: {why}; correct it first")]
    Unreadable { file: String, why: String },
    #[error(
        "{file} already names a MASQLOG instance on line {line} (`{stack}`), set up by hand: masqlog enable leaves it alone. Check it with `masqlog check-config {file}`, or remove that stack and its sections and run masqlog enable again"
    )]
    HandMade {
        file: String,
        line: usize,
        stack: String,
    },
    #[error(
        "{file}: the lines masqlog enable added are damaged (line {line}: {what}); put the file back from its backup ({file}.masqlog.bak) or remove the marked lines by hand"
    )]
    Damaged {
        file: String,
        line: usize,
        what: String,
    },
}

/// What enable or disable makes of a file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Edit {
    /// The new text (the old one when nothing changes).
    pub text: String,
    /// Whether the text changed.
    pub changed: bool,
    /// The ids of the NFCT and MASQLOG instances.
    pub ids: Option<(String, String)>,
    /// What was done, for the operator.
    pub notes: Vec<String>,
}

/// The plugin files of the two instances.
#[derive(Clone, Debug)]
pub struct Plugins {
    pub nfct: String,
    pub masqlog: String,
}

impl Plugins {
    /// In ulogd's plugin directory `dir`.
    pub fn in_dir(dir: &Path) -> Plugins {
        Plugins {
            nfct: dir.join("ulogd_inpflow_NFCT.so").display().to_string(),
            masqlog: dir
                .join(masqlog_core::ulogd_conf::PLUGIN_FILE)
                .display()
                .to_string(),
        }
    }
}

/// A marked block: the indexes of its first and last line.
#[derive(Clone, Copy, Debug)]
struct Block {
    begin: usize,
    end: usize,
}

/// The marked blocks of a file: the `[global]` one, and the sections' one
/// with whether enable added a newline before it.
type Blocks = (Option<Block>, Option<(Block, bool)>);

/// The lines of `text`, each with its newline (the last may lack one).
fn lines(text: &str) -> Vec<&str> {
    text.split_inclusive('\n').collect()
}

/// Finds the marked blocks; errors if a begin has no end.
fn blocks(file: &str, lines: &[&str]) -> Result<Blocks, EnableError> {
    let mut global = None;
    let mut sections = None;
    let mut open: Option<(usize, u8)> = None;
    for (i, l) in lines.iter().enumerate() {
        let t = l.trim_end_matches(['\n', '\r']);
        let kind = match t {
            GLOBAL_BEGIN => Some(0),
            SECTIONS_BEGIN => Some(1),
            SECTIONS_BEGIN_NL => Some(2),
            _ => None,
        };
        if let Some(k) = kind {
            if open.is_some() {
                return Err(EnableError::Damaged {
                    file: file.into(),
                    line: i + 1,
                    what: "a block begins inside another".into(),
                });
            }
            open = Some((i, k));
        } else if t == END {
            let Some((b, k)) = open.take() else {
                return Err(EnableError::Damaged {
                    file: file.into(),
                    line: i + 1,
                    what: "an end mark without its beginning".into(),
                });
            };
            let block = Block { begin: b, end: i };
            let slot_taken = match k {
                0 => global.replace(block).is_some(),
                _ => sections.replace((block, k == 2)).is_some(),
            };
            if slot_taken {
                return Err(EnableError::Damaged {
                    file: file.into(),
                    line: b + 1,
                    what: "a block appears twice".into(),
                });
            }
        }
    }
    if let Some((b, _)) = open {
        return Err(EnableError::Damaged {
            file: file.into(),
            line: b + 1,
            what: "a block without its end mark".into(),
        });
    }
    Ok((global, sections))
}

/// The sections of the package's config (`ulogd-conf/masqlog-local.conf`)
/// under the names `ct` and `masq`, sending to `destination` and, with
/// `store_dir`, keeping the evidence store there.
pub fn sections_text(ct: &str, masq: &str, destination: &str, store_dir: Option<&str>) -> String {
    let subs = Substitutions {
        plugin_dir: "/".into(),
        masqlog_so: "/".into(),
        logfile: "/".into(),
        syslog_socket: Some("/".into()),
        remote: None,
    };
    let ex = Example::Local;
    let mut conf = UlogdConf::render(ex.template(), ex.file_name(), &subs)
        .expect("the local example has no other placeholder");
    conf.set("masq1", "destination", destination);
    if let Some(dir) = store_dir {
        conf.set("masq1", "store_dir", dir);
    }
    let text = conf.text();
    let start = text.find("\n[ct1]\n").expect("the example has [ct1]") + 1;
    let mut out = String::new();
    for l in text[start..].lines() {
        let l = match l.trim() {
            "[ct1]" => format!("[{ct}]"),
            "[masq1]" => format!("[{masq}]"),
            _ => l.to_string(),
        };
        out.push_str(&l);
        out.push('\n');
    }
    out
}

/// A name `base`, `base2`, `base3`, ... that is no section of the file
/// (as ulogd finds sections) and no id in a stack.
fn free_name(conf: &ConfFile, stack_ids: &[String], base: &str) -> String {
    for n in 1.. {
        let name = if n == 1 {
            base.to_string()
        } else {
            format!("{base}{n}")
        };
        let taken = !matches!(conf.section(&name), Ok(None)) || stack_ids.contains(&name);
        if !taken && name.len() <= MAX_ID_LEN {
            return name;
        }
    }
    unreachable!("some name is free")
}

/// Adds the MASQLOG stack and its sections to `text` (the file `file`).
/// Already enabled: the text unchanged.
pub fn enable(
    file: &str,
    text: &str,
    plugins: &Plugins,
    destination: &str,
    store_dir: Option<&str>,
) -> Result<Edit, EnableError> {
    let ls = lines(text);
    let (gblock, sblock) = blocks(file, &ls)?;
    if gblock.is_some() || sblock.is_some() {
        if gblock.is_none() || sblock.is_none() {
            return Err(EnableError::Damaged {
                file: file.into(),
                line: gblock.or(sblock.map(|s| s.0)).map_or(0, |b| b.begin + 1),
                what: "one of the two blocks is missing".into(),
            });
        }
        let g = gblock.expect("checked");
        let ids = ls[g.begin..=g.end]
            .iter()
            .find_map(|l| l.trim().strip_prefix("stack="))
            .and_then(|v| parse_stack(v.trim()).ok())
            .and_then(|els| Some((els.first()?.id.clone(), els.last()?.id.clone())));
        return Ok(Edit {
            text: text.to_string(),
            changed: false,
            ids,
            notes: vec![format!("{file}: masqlog is enabled already (no change)")],
        });
    }
    let conf = ConfFile::parse(text.as_bytes());
    let global = match conf.section("global") {
        Ok(Some(g)) => g,
        Ok(None) => return Err(EnableError::NoGlobal { file: file.into() }),
        Err(e) => {
            return Err(EnableError::Unreadable {
                file: file.into(),
                why: e.to_string(),
            });
        }
    };
    let mut stack_ids = Vec::new();
    for e in global.all("stack") {
        if let Ok(els) = parse_stack(&e.value) {
            if els.iter().any(|el| el.plugin == "MASQLOG") {
                return Err(EnableError::HandMade {
                    file: file.into(),
                    line: e.line,
                    stack: format!("stack={}", e.value),
                });
            }
            stack_ids.extend(els.into_iter().map(|el| el.id));
        }
    }
    let ct = free_name(&conf, &stack_ids, "masqlog_ct");
    let masq = free_name(&conf, &stack_ids, "masqlog");
    let mut notes = Vec::new();

    // [global]: after its last entry (or its header), so that every plugin
    // and stack of the file comes first.
    let after = global
        .entries
        .iter()
        .map(|e| e.line)
        .max()
        .unwrap_or(global.line);
    // line numbers count newlines, as `lines` does
    let insert_at = after.min(ls.len());
    let plugin_lines: Vec<&str> = global.all("plugin").map(|e| e.value.as_str()).collect();
    let mut gtext = format!("{GLOBAL_BEGIN}\n");
    if plugin_lines.is_empty() {
        notes.push(format!(
            "{file}: [global] names no plugin=, so ulogd loads every plugin of its directory, the package's too: no plugin= line added"
        ));
    } else {
        for p in [&plugins.nfct, &plugins.masqlog] {
            let name = Path::new(p)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned());
            let have = plugin_lines.iter().any(|l| {
                Path::new(l)
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    == name
            });
            if !have {
                gtext.push_str(&format!("plugin=\"{p}\"\n"));
            }
        }
    }
    gtext.push_str(&format!("stack={ct}:NFCT,{masq}:MASQLOG\n{END}\n"));

    let mut out = String::with_capacity(text.len() + 4096);
    for l in &ls[..insert_at] {
        out.push_str(l);
    }
    // the line before may lack its newline only at the end of the file
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    out.push_str(&gtext);
    for l in &ls[insert_at..] {
        out.push_str(l);
    }
    let begin = if out.ends_with('\n') || out.is_empty() {
        SECTIONS_BEGIN
    } else {
        out.push('\n');
        SECTIONS_BEGIN_NL
    };
    out.push_str(&format!(
        "{begin}\n\n{}{END}\n",
        sections_text(&ct, &masq, destination, store_dir)
    ));
    notes.push(format!(
        "{file}: added stack={ct}:NFCT,{masq}:MASQLOG to [global] and the sections [{ct}] and [{masq}] (destination={destination}{})",
        store_dir.map(|d| format!(", store_dir={d}")).unwrap_or_default()
    ));
    Ok(Edit {
        text: out,
        changed: true,
        ids: Some((ct, masq)),
        notes,
    })
}

/// Removes what [`enable`] added. Not enabled: the text unchanged.
pub fn disable(file: &str, text: &str) -> Result<Edit, EnableError> {
    let ls = lines(text);
    let (gblock, sblock) = blocks(file, &ls)?;
    if gblock.is_none() && sblock.is_none() {
        return Ok(Edit {
            text: text.to_string(),
            changed: false,
            ids: None,
            notes: vec![format!(
                "{file}: no lines of masqlog enable in it (nothing to remove)"
            )],
        });
    }
    let mut out = String::with_capacity(text.len());
    for (i, l) in ls.iter().enumerate() {
        let inside = [gblock, sblock.map(|s| s.0)]
            .iter()
            .flatten()
            .any(|b| (b.begin..=b.end).contains(&i));
        if !inside {
            out.push_str(l);
        }
    }
    if sblock.is_some_and(|s| s.1) && out.ends_with('\n') {
        out.pop();
    }
    Ok(Edit {
        text: out,
        changed: true,
        ids: None,
        notes: vec![format!(
            "{file}: removed the [global] lines and sections masqlog enable added"
        )],
    })
}

/// The destination enable writes: the package's.
pub fn default_destination() -> &'static str {
    package::DESTINATION
}

/// The evidence store enable configures: the package's.
pub fn default_store_dir() -> Option<&'static str> {
    Some(package::STORE_DIR)
}

#[cfg(test)]
mod tests;
