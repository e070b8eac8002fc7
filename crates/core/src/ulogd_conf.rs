//! Writing a ulogd.conf: the examples of `ulogd-conf/` built in, the
//! placeholder substitution that turns one into a working config (the
//! package's, a lab's), and small edits of its keys.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// The name ulogd's plugins have, and the one the plugin is installed as.
pub const PLUGIN_FILE: &str = "ulogd_output_MASQLOG.so";

/// The file `cargo build` makes of the plugin crate.
pub const BUILT_LIBRARY: &str = "libmasqlog.so";

/// Why a config could not be made or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UlogdConfError {
    /// A placeholder has no value.
    #[error("no value for placeholder {placeholder} of {what}")]
    Unfilled { placeholder: String, what: String },
    /// The file could not be written.
    #[error("writing {path}: {source}")]
    Write { path: String, source: io::Error },
}

/// One of the example configs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Example {
    /// `masqlog-local.conf`: local syslog socket, text lines.
    Local,
    /// `masqlog-remote.conf`: remote syslog over TCP, RFC 5424.
    Remote,
    /// `masqlog-json.conf`: local syslog socket, JSON.
    Json,
    /// `masqlog-relp.conf`: remote rsyslog over RELP, RFC 5424, with the
    /// spool.
    Relp,
}

impl Example {
    pub const ALL: [Example; 4] = [
        Example::Local,
        Example::Remote,
        Example::Json,
        Example::Relp,
    ];

    /// The file name in `ulogd-conf/`.
    pub fn file_name(self) -> &'static str {
        match self {
            Example::Local => "masqlog-local.conf",
            Example::Remote => "masqlog-remote.conf",
            Example::Json => "masqlog-json.conf",
            Example::Relp => "masqlog-relp.conf",
        }
    }

    /// The file as it is in the repository.
    pub fn template(self) -> &'static str {
        match self {
            Example::Local => include_str!("../../../ulogd-conf/masqlog-local.conf"),
            Example::Remote => include_str!("../../../ulogd-conf/masqlog-remote.conf"),
            Example::Json => include_str!("../../../ulogd-conf/masqlog-json.conf"),
            Example::Relp => include_str!("../../../ulogd-conf/masqlog-relp.conf"),
        }
    }

    /// The example whose `format=` is `format` (text, rfc5424, json).
    pub fn for_format(format: &str) -> Option<Example> {
        Example::ALL
            .into_iter()
            .find(|e| e.format().eq_ignore_ascii_case(format))
    }

    /// The value of its `format` key.
    pub fn format(self) -> &'static str {
        match self {
            Example::Local => "text",
            Example::Remote | Example::Relp => "rfc5424",
            Example::Json => "json",
        }
    }

    /// Whether it sends to a remote syslog server (`@REMOTE@`).
    pub fn is_remote(self) -> bool {
        matches!(self, Example::Remote | Example::Relp)
    }
}

/// The values of the placeholders.
#[derive(Clone, Debug)]
pub struct Substitutions {
    /// `@PLUGIN_DIR@`: where `ulogd_inpflow_NFCT.so` is.
    pub plugin_dir: PathBuf,
    /// `@MASQLOG_SO@`: the plugin.
    pub masqlog_so: PathBuf,
    /// `@LOGFILE@`: ulogd's log.
    pub logfile: PathBuf,
    /// `@SYSLOG_SOCKET@`: the local syslog socket.
    pub syslog_socket: Option<PathBuf>,
    /// `@REMOTE@`: the remote syslog server.
    pub remote: Option<SocketAddr>,
}

/// Debian's ulogd plugin directory (multiarch), or the first of the usual
/// places that has `ulogd_inpflow_NFCT.so`.
pub fn default_plugin_dir() -> PathBuf {
    let candidates = [
        "/usr/lib/x86_64-linux-gnu/ulogd",
        "/usr/lib/aarch64-linux-gnu/ulogd",
        "/usr/lib/ulogd",
        "/usr/local/lib/ulogd",
    ];
    candidates
        .iter()
        .map(PathBuf::from)
        .find(|d| d.join("ulogd_inpflow_NFCT.so").is_file())
        .unwrap_or_else(|| PathBuf::from(candidates[0]))
}

fn is_comment(line: &str) -> bool {
    line.trim_start().starts_with('#')
}

/// The `@NAME@` placeholders on the non-comment lines of `text`.
pub fn placeholders(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for line in text.lines().filter(|l| !is_comment(l)) {
        let mut rest = line;
        while let Some(a) = rest.find('@') {
            let after = &rest[a + 1..];
            let Some(b) = after.find('@') else { break };
            let name = &after[..b];
            if !name.is_empty()
                && name
                    .bytes()
                    .all(|c| c.is_ascii_uppercase() || c == b'_' || c.is_ascii_digit())
            {
                found.push(format!("@{name}@"));
                rest = &after[b + 1..];
            } else {
                rest = after;
            }
        }
    }
    found
}

/// A ulogd.conf as text, edited in memory and written for one ulogd.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UlogdConf {
    text: String,
}

impl UlogdConf {
    /// Any config text, as it is.
    pub fn from_text(text: &str) -> UlogdConf {
        UlogdConf {
            text: text.to_string(),
        }
    }

    /// An example with its placeholders replaced on every non-comment line;
    /// fails if one is left without a value.
    pub fn from_example(
        example: Example,
        subs: &Substitutions,
    ) -> Result<UlogdConf, UlogdConfError> {
        UlogdConf::render(example.template(), example.file_name(), subs)
    }

    /// Replaces the placeholders of `template` (named `what` in errors).
    pub fn render(
        template: &str,
        what: &str,
        subs: &Substitutions,
    ) -> Result<UlogdConf, UlogdConfError> {
        let path = |p: &Path| p.to_string_lossy().into_owned();
        let pairs: [(&str, Option<String>); 5] = [
            ("@PLUGIN_DIR@", Some(path(&subs.plugin_dir))),
            ("@MASQLOG_SO@", Some(path(&subs.masqlog_so))),
            ("@LOGFILE@", Some(path(&subs.logfile))),
            ("@SYSLOG_SOCKET@", subs.syslog_socket.as_deref().map(path)),
            ("@REMOTE@", subs.remote.map(|a| a.to_string())),
        ];
        let mut out = String::with_capacity(template.len() + 256);
        for line in template.lines() {
            let mut line = line.to_string();
            if !is_comment(&line) {
                for (name, value) in &pairs {
                    if let Some(v) = value {
                        line = line.replace(name, v);
                    }
                }
            }
            out.push_str(&line);
            out.push('\n');
        }
        let left = placeholders(&out);
        if let Some(p) = left.first() {
            return Err(UlogdConfError::Unfilled {
                placeholder: p.clone(),
                what: what.to_string(),
            });
        }
        Ok(UlogdConf { text: out })
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    /// The value of `key` in `[section]` (the last one if repeated).
    pub fn get(&self, section: &str, key: &str) -> Option<String> {
        let mut current = String::new();
        let mut found = None;
        for line in self.text.lines() {
            let t = line.trim();
            if let Some(name) = t.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
                current = name.to_string();
            } else if current == section
                && !is_comment(t)
                && let Some((k, v)) = t.split_once('=')
                && k.trim() == key
            {
                found = Some(v.trim().to_string());
            }
        }
        found
    }

    /// The ids of the MASQLOG instances of every `stack=` line.
    pub fn masqlog_ids(&self) -> Vec<String> {
        let mut ids = Vec::new();
        for line in self.text.lines() {
            let t = line.trim();
            if is_comment(t) {
                continue;
            }
            let Some((k, v)) = t.split_once('=') else {
                continue;
            };
            if k.trim() != "stack" {
                continue;
            }
            for part in v.trim().trim_matches('"').split(',') {
                if let Some((id, plugin)) = part.split_once(':')
                    && plugin.trim() == "MASQLOG"
                    && !ids.iter().any(|i| i == id.trim())
                {
                    ids.push(id.trim().to_string());
                }
            }
        }
        ids
    }

    /// Sets `key=value` in `[section]`: replaces the key's line, or adds one
    /// at the end of the section (a new section at the end if needed).
    pub fn set(&mut self, section: &str, key: &str, value: &str) -> &mut UlogdConf {
        let new_line = format!("{key}={value}");
        let mut lines: Vec<String> = self.text.lines().map(str::to_string).collect();
        let mut current = String::new();
        let mut replaced = false;
        let mut section_end = None;
        for (i, line) in lines.iter_mut().enumerate() {
            let t = line.trim().to_string();
            if let Some(name) = t.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
                current = name.to_string();
                continue;
            }
            if current != section {
                continue;
            }
            if !t.is_empty() && !is_comment(&t) {
                section_end = Some(i + 1);
            }
            if let Some((k, _)) = t.split_once('=')
                && !is_comment(&t)
                && k.trim() == key
            {
                *line = new_line.clone();
                replaced = true;
            }
        }
        if !replaced {
            match section_end {
                Some(i) => lines.insert(i, new_line),
                None if lines.iter().any(|l| l.trim() == format!("[{section}]")) => {
                    let at = lines
                        .iter()
                        .position(|l| l.trim() == format!("[{section}]"))
                        .map_or(lines.len(), |p| p + 1);
                    lines.insert(at, new_line);
                }
                None => {
                    lines.push(String::new());
                    lines.push(format!("[{section}]"));
                    lines.push(new_line);
                }
            }
        }
        self.text = lines.join("\n") + "\n";
        self
    }

    /// Points the `spool_dir` of every MASQLOG instance to `dir` (a lab's or
    /// a test's own, so that it never touches the system's spool).
    pub fn set_spool_dir(&mut self, dir: &Path) -> &mut UlogdConf {
        for id in self.masqlog_ids() {
            self.set(&id, "spool_dir", &dir.to_string_lossy());
        }
        self
    }

    /// Points the `seal_state` of every MASQLOG instance to `path` (a lab's
    /// or a test's own key).
    pub fn set_seal_state(&mut self, path: &Path) -> &mut UlogdConf {
        for id in self.masqlog_ids() {
            self.set(&id, "seal_state", &path.to_string_lossy());
        }
        self
    }

    /// Writes the config to `path`.
    pub fn write(&self, path: &Path) -> Result<(), UlogdConfError> {
        std::fs::write(path, &self.text).map_err(|source| UlogdConfError::Write {
            path: path.display().to_string(),
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subs() -> Substitutions {
        Substitutions {
            plugin_dir: "/plugins".into(),
            masqlog_so: "/lab/ulogd_output_MASQLOG.so".into(),
            logfile: "/lab/ulogd.log".into(),
            syslog_socket: Some("/lab/log.sock".into()),
            remote: Some("203.0.113.7:10514".parse().unwrap()),
        }
    }

    #[test]
    fn every_example_renders_without_leftovers() {
        for ex in Example::ALL {
            let c = UlogdConf::from_example(ex, &subs()).unwrap();
            assert!(placeholders(c.text()).is_empty(), "{}", ex.file_name());
            assert_eq!(c.get("masq1", "format").as_deref(), Some(ex.format()));
            assert_eq!(
                c.get("global", "stack").as_deref(),
                Some("ct1:NFCT,masq1:MASQLOG")
            );
            assert_eq!(
                c.get("global", "plugin").as_deref(),
                Some("\"/lab/ulogd_output_MASQLOG.so\"")
            );
            assert_eq!(c.get("ct1", "hash_enable").as_deref(), Some("0"));
        }
    }

    #[test]
    fn logfile_comes_first_in_global() {
        for ex in Example::ALL {
            let body: Vec<&str> = ex
                .template()
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .collect();
            assert_eq!(body[0], "[global]", "{}", ex.file_name());
            assert!(body[1].starts_with("logfile="), "{}", ex.file_name());
        }
    }

    /// The keys every example spells out (the IDENT keys stay at their
    /// default, off, and are not shown).
    const EXAMPLE_KEYS: &[&str] = &[
        "format",
        "nat",
        "destination",
        "facility",
        "severity",
        "tag",
        "hostname",
        "queue_size",
        "stats_interval",
        "send_timeout_ms",
        "flush_delay_ms",
        "retry_interval_ms",
    ];

    #[test]
    fn every_example_sets_the_documented_masqlog_keys() {
        for ex in Example::ALL {
            let c = UlogdConf::from_example(ex, &subs()).unwrap();
            for key in EXAMPLE_KEYS {
                assert!(
                    crate::keys::CONF_KEYS.iter().any(|k| k.name == *key),
                    "{key} is no longer a key"
                );
                assert!(
                    c.get("masq1", key).is_some(),
                    "{} lacks {key}",
                    ex.file_name()
                );
            }
        }
    }

    #[test]
    fn a_missing_value_is_an_error() {
        let mut s = subs();
        s.remote = None;
        let e = UlogdConf::from_example(Example::Remote, &s).unwrap_err();
        assert!(e.to_string().contains("@REMOTE@"), "{e}");
        // The local example mentions no @REMOTE@ outside comments.
        assert!(UlogdConf::from_example(Example::Local, &s).is_ok());
    }

    #[test]
    fn set_replaces_or_adds_in_the_right_section() {
        let mut c = UlogdConf::from_example(Example::Local, &subs()).unwrap();
        c.set("masq1", "format", "xml");
        assert_eq!(c.get("masq1", "format").as_deref(), Some("xml"));
        c.set("masq1", "hostname", "gw");
        assert_eq!(c.get("masq1", "hostname").as_deref(), Some("gw"));
        assert_eq!(c.get("ct1", "hostname"), None);
        c.set("other", "x", "1");
        assert_eq!(c.get("other", "x").as_deref(), Some("1"));
        assert_eq!(c.text().matches("format=").count(), 1);
    }

    #[test]
    fn placeholders_ignore_comments_and_addresses() {
        assert_eq!(
            placeholders("# @LOGFILE@\nlogfile=\"@LOGFILE@\"\nx=a@b.c@d\n"),
            vec!["@LOGFILE@".to_string()]
        );
    }
}
