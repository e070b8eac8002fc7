//! `masqlog gen-docs --out DIR` (hidden): everything the package ships that
//! is generated from the code: a man page per command (clap_mangen, from
//! the same definitions as `--help`), ulogd_output_MASQLOG(5) from the key
//! table, shell completions (clap_complete), and the example ulogd config
//! with Debian's paths. `debian-pkg/build` runs it.
//!
//! ```text
//! DIR/man/man8/masqlog.8, masqlog-lab.8, masqlog-portblock-plan.8, ...
//! DIR/man/man5/ulogd_output_MASQLOG.5
//! DIR/completions/masqlog.bash, _masqlog, masqlog.fish
//! DIR/ulogd-masqlog.conf
//! ```

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use clap_complete::Shell;
use masqlog_core::ulogd_conf::{Example, Substitutions, UlogdConf};

use super::man5;

/// Debian's ulogd plugin directory.
pub const DEBIAN_PLUGIN_DIR: &str = "/usr/lib/x86_64-linux-gnu/ulogd";
/// Where Debian's ulogd2 keeps its logs (owned by the ulog user).
pub const DEBIAN_ULOGD_LOG: &str = "/var/log/ulog/ulogd.log";

#[derive(clap::Args, Debug)]
pub struct GenDocsArgs {
    /// Directory to write into (created if missing).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// ulogd's plugin directory on the target system, for the example
    /// config (Debian: /usr/lib/<multiarch>/ulogd).
    #[arg(long, value_name = "DIR", default_value = DEBIAN_PLUGIN_DIR)]
    pub plugin_dir: PathBuf,
}

fn write(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(|e| anyhow::anyhow!("creating {}: {e}", dir.display()))?;
    }
    fs::write(path, bytes).map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))
}

/// Writes every generated file; `cmd` is the whole `masqlog` command.
pub fn run(args: &GenDocsArgs, cmd: clap::Command) -> anyhow::Result<()> {
    let version = cmd.get_version().unwrap_or_default().to_string();
    let mut cmd = cmd.disable_help_subcommand(true);
    cmd.build();
    let man8 = args.out.join("man/man8");
    let mut pages = Vec::new();
    man_pages(&cmd, None, &version, &mut pages)?;
    for page in &pages {
        let roff = format!("{}{}", page.roff, see_also(page));
        write(&man8.join(format!("{}.8", page.name)), roff.as_bytes())?;
    }
    write(
        &args.out.join("man/man5/ulogd_output_MASQLOG.5"),
        man5::render(&version).as_bytes(),
    )?;
    let completions = args.out.join("completions");
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        let mut buf = Vec::new();
        clap_complete::generate(shell, &mut cmd.clone(), "masqlog", &mut buf);
        let file = match shell {
            Shell::Bash => "masqlog.bash",
            Shell::Zsh => "_masqlog",
            _ => "masqlog.fish",
        };
        write(&completions.join(file), &buf)?;
    }
    write(
        &args.out.join("ulogd-masqlog.conf"),
        debian_example(&args.plugin_dir)?.as_bytes(),
    )?;
    eprintln!(
        "wrote {} man pages, 3 completions and ulogd-masqlog.conf to {}",
        pages.len() + 1,
        args.out.display()
    );
    Ok(())
}

/// One generated man page and its place in the command tree.
struct Page {
    name: String,
    roff: String,
    parent: Option<String>,
    children: Vec<String>,
}

/// Renders `cmd` and every visible subcommand, depth first, into `out`.
fn man_pages(
    cmd: &clap::Command,
    parent: Option<&str>,
    version: &str,
    out: &mut Vec<Page>,
) -> io::Result<()> {
    let name = cmd.get_display_name().unwrap_or(cmd.get_name()).to_string();
    let mut buf = Vec::new();
    clap_mangen::Man::new(cmd.clone())
        .section("8")
        .manual("masqlog")
        .source(format!("masqlog {version}"))
        .render(&mut buf)?;
    let subs: Vec<&clap::Command> = cmd.get_subcommands().filter(|s| !s.is_hide_set()).collect();
    out.push(Page {
        name: name.clone(),
        roff: String::from_utf8_lossy(&buf).into_owned(),
        parent: parent.map(str::to_string),
        children: subs
            .iter()
            .map(|s| s.get_display_name().unwrap_or(s.get_name()).to_string())
            .collect(),
    });
    for sub in subs {
        man_pages(sub, Some(&name), version, out)?;
    }
    Ok(())
}

/// A SEE ALSO section: the parent, the children, the plugin's page.
fn see_also(page: &Page) -> String {
    let mut refs: Vec<String> = page
        .parent
        .iter()
        .chain(&page.children)
        .map(|n| format!("\\fB{}\\fR(8)", man5::esc(n)))
        .collect();
    refs.push("\\fBulogd_output_MASQLOG\\fR(5)".into());
    refs.push("\\fBulogd\\fR(8)".into());
    format!(".SH \"SEE ALSO\"\n{}\n", refs.join(", "))
}

/// ulogd-conf/masqlog-local.conf with Debian's paths: plugins in
/// `plugin_dir`, ulogd's log in /var/log/ulog, the records to the package socket.
pub fn debian_example(plugin_dir: &Path) -> anyhow::Result<String> {
    let subs = Substitutions {
        plugin_dir: plugin_dir.to_path_buf(),
        masqlog_so: plugin_dir.join("ulogd_output_MASQLOG.so"),
        logfile: DEBIAN_ULOGD_LOG.into(),
        syslog_socket: Some(masqlog_command::package::SYSLOG_SOCKET.into()),
        remote: None,
    };
    let ex = Example::Local;
    let conf = UlogdConf::render(ex.template(), ex.file_name(), &subs)
        .map_err(|e| anyhow::anyhow!("rendering {}: {e}", ex.file_name()))?;
    // The comments explain the placeholders the lab fills in: here they
    // are filled in already.
    let mut out = String::from(
        "# /etc/ulogd-masqlog.conf: a complete ulogd config that logs every\n\
         # masqueraded flow through masqlog (installed by the masqlog package from\n\
         # ulogd-conf/masqlog-local.conf, Debian's paths filled in).\n\
         #\n\
         # To turn masqlog on, `masqlog enable` adds these sections to\n\
         # /etc/ulogd.conf, keeping what else it does. This file is for running\n\
         # ulogd with masqlog alone: `ulogd -c /etc/ulogd-masqlog.conf`. Check it with\n\
         #   masqlog check-config /etc/ulogd-masqlog.conf\n\
         # The records go to /run/masqlog/log, the socket that\n\
         # /etc/rsyslog.d/30-masqlog.conf opens; rsyslog files them in\n\
         # /var/log/masqlog.log (not through journald: see README.Debian).\n\
         #\n",
    );
    let mut skipping = false;
    for line in conf.text().lines() {
        if line.starts_with("# Placeholders:") {
            skipping = true;
            continue;
        }
        if skipping {
            if line.trim() == "#" {
                skipping = false;
            }
            continue;
        }
        let line = line
            .replace("@MASQLOG_SO@", &subs.masqlog_so.to_string_lossy())
            .replace("@PLUGIN_DIR@", &plugin_dir.to_string_lossy());
        out.push_str(&line);
        out.push('\n');
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    /// The packaged transparent-IDENT script runs README's commands.
    #[test]
    fn the_ident_example_is_the_readmes() {
        let readme = include_str!("../../../../README.md");
        let script = include_str!("../../../../debian-pkg/examples/ident-transparent.sh");
        let start = readme
            .find("table inet masqlog_ident {")
            .expect("README shows the nft table");
        let end = readme[start..].find("```").expect("the block ends") + start;
        let lines: Vec<&str> = script.lines().map(str::trim).collect();
        for l in readme[start..end].lines().map(str::trim) {
            if l.is_empty() || l == "EOF" {
                continue;
            }
            assert!(
                lines.contains(&l),
                "ident-transparent.sh lacks README's `{l}`"
            );
        }
    }

    #[test]
    fn the_debian_example_has_debian_paths_and_no_placeholders() {
        let c = super::debian_example(super::DEBIAN_PLUGIN_DIR.as_ref()).unwrap();
        assert!(!c.contains('@'), "{c}");
        assert!(c.contains("plugin=\"/usr/lib/x86_64-linux-gnu/ulogd/ulogd_output_MASQLOG.so\""));
        assert!(c.contains("logfile=\"/var/log/ulog/ulogd.log\""));
        assert!(c.contains("destination=unix:/run/masqlog/log"));
    }
}
