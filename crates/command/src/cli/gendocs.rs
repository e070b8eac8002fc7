//! `masqlog gen-docs --out DIR` (for packaging; no subcommand of the
//! command's definition, so that no completion or page offers it): everything the package ships that
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

/// `masqlog gen-docs`: read by main before the command's own parser.
#[derive(clap::Parser, Debug)]
#[command(name = "masqlog gen-docs")]
pub struct GenDocsCli {
    #[command(flatten)]
    pub args: GenDocsArgs,
}

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
        let buf = completion(shell, &mut cmd);
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

/// The completion script for `shell`.
pub fn completion(shell: Shell, cmd: &mut clap::Command) -> Vec<u8> {
    let mut buf = Vec::new();
    clap_complete::generate(shell, cmd, "masqlog", &mut buf);
    buf
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
    let buf = render_page(cmd, &name, version)?;
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

/// One command's page: clap_mangen's title, NAME, OPTIONS and
/// SUBCOMMANDS; our own SYNOPSIS (with each option's value: `--at <TIME>`),
/// DESCRIPTION and, from the help's "Examples:" and "Exit status:"
/// paragraphs, EXAMPLES (unfilled, one command a line) and EXIT STATUS.
fn render_page(cmd: &clap::Command, name: &str, version: &str) -> io::Result<Vec<u8>> {
    let man = clap_mangen::Man::new(cmd.clone())
        .section("8")
        .manual("masqlog")
        .source(format!("masqlog {version}"));
    let mut buf = Vec::new();
    man.render_title(&mut buf)?;
    man.render_name_section(&mut buf)?;
    let mut text = String::new();
    text.push_str(&format!(".SH SYNOPSIS\n{}\n", synopsis(cmd, name)));
    let mut examples = Vec::new();
    let mut exit = Vec::new();
    let about = cmd
        .get_long_about()
        .or(cmd.get_about())
        .map(|a| a.to_string())
        .unwrap_or_default();
    text.push_str(".SH DESCRIPTION\n");
    text.push_str(&prose(&about, &mut examples, &mut exit));
    if let Some(after) = cmd.get_after_long_help().or(cmd.get_after_help()) {
        let notes = prose(&after.to_string(), &mut examples, &mut exit);
        if !notes.trim().is_empty() {
            text.push_str(".PP\n");
            text.push_str(&notes);
        }
    }
    buf.extend_from_slice(text.as_bytes());
    if cmd.get_arguments().any(|a| !a.is_hide_set()) {
        man.render_options_section(&mut buf)?;
    }
    if cmd.get_subcommands().any(|s| !s.is_hide_set()) {
        man.render_subcommands_section(&mut buf)?;
    }
    let mut tail = String::new();
    if !examples.is_empty() {
        tail.push_str(".SH EXAMPLES\n");
        for (title, lines) in &examples {
            if !title.is_empty() {
                tail.push_str(&format!(".PP\n{}\n", man5::esc(title)));
            }
            tail.push_str(".PP\n.RS 4\n.EX\n");
            for l in lines {
                tail.push_str(&man5::esc(l));
                tail.push('\n');
            }
            tail.push_str(".EE\n.RE\n");
        }
    }
    if !exit.is_empty() {
        tail.push_str(".SH \"EXIT STATUS\"\n");
        tail.push_str(&man5::esc(&exit.join(" ")));
        tail.push('\n');
    }
    buf.extend_from_slice(tail.as_bytes());
    if cmd.get_version().is_some() {
        man.render_version_section(&mut buf)?;
    }
    Ok(buf)
}

/// `masqlog lookup [-t|--at <TIME>] ... [PUBLIC] [LOG]...`, in roff.
fn synopsis(cmd: &clap::Command, name: &str) -> String {
    let name = cmd.get_bin_name().unwrap_or(name);
    let mut parts = vec![format!("\\fB{}\\fR", man5::esc(name))];
    // options first, then the operands
    let mut args: Vec<&clap::Arg> = cmd.get_arguments().filter(|a| !a.is_hide_set()).collect();
    args.sort_by_key(|a| a.is_positional());
    for a in args {
        let values: Vec<String> = a
            .get_value_names()
            .map(|v| v.iter().map(|n| n.to_string()).collect())
            .unwrap_or_else(|| vec![a.get_id().as_str().to_uppercase()]);
        let takes = a.get_num_args().is_some_and(|r| r.takes_values())
            && !matches!(
                a.get_action(),
                clap::ArgAction::SetTrue
                    | clap::ArgAction::SetFalse
                    | clap::ArgAction::Count
                    | clap::ArgAction::Help
                    | clap::ArgAction::HelpLong
                    | clap::ArgAction::Version
            );
        let many = matches!(a.get_action(), clap::ArgAction::Append)
            || a.get_num_args().is_some_and(|r| r.max_values() > 1);
        let dots = if many { "..." } else { "" };
        let value = values
            .iter()
            .map(|v| format!("\\fI<{}>\\fR", man5::esc(v)))
            .collect::<Vec<_>>()
            .join(" ");
        let body = if a.is_positional() {
            format!("{value}{dots}")
        } else {
            let mut flags = Vec::new();
            if let Some(c) = a.get_short() {
                flags.push(format!("\\fB\\-{c}\\fR"));
            }
            if let Some(l) = a.get_long() {
                flags.push(format!("\\fB\\-\\-{}\\fR", man5::esc(l)));
            }
            let flags = flags.join("|");
            if takes {
                format!("{flags} {value}{dots}")
            } else {
                flags
            }
        };
        if a.is_required_set() {
            parts.push(body);
        } else {
            parts.push(format!("[{body}]"));
        }
    }
    if cmd.get_subcommands().any(|s| !s.is_hide_set()) {
        parts.push("\\fI<COMMAND>\\fR".into());
    }
    parts.join(" ")
}

/// Help text as roff paragraphs. A paragraph that is a heading ending in
/// ":" ("Examples:", "Example (crontab):") followed by indented lines goes
/// to `examples` (those lines, unfilled); one starting "Exit status:" to
/// `exit`; indented lines elsewhere stay as they are (`.nf`).
fn prose(text: &str, examples: &mut Vec<(String, Vec<String>)>, exit: &mut Vec<String>) -> String {
    let mut out = String::new();
    let paras: Vec<Vec<&str>> = text
        .split("\n\n")
        .map(|p| p.lines().collect::<Vec<_>>())
        .filter(|p| !p.is_empty())
        .collect();
    let indented = |p: &Vec<&str>| p.iter().all(|l| l.starts_with(' ') || l.is_empty());
    let mut i = 0;
    while i < paras.len() {
        let p = &paras[i];
        let first = p[0].trim();
        let is_heading = first.starts_with("Example") && first.ends_with(':');
        if is_heading {
            // the heading's own paragraph may hold the example lines
            let mut lines = dedent(&p[1..]);
            while i + 1 < paras.len() && indented(&paras[i + 1]) {
                i += 1;
                if !lines.is_empty() {
                    lines.push(String::new());
                }
                lines.extend(dedent(&paras[i]));
            }
            let title = if first == "Examples:" || first == "Example:" {
                String::new()
            } else {
                first.trim_end_matches(':').to_string()
            };
            examples.push((title, lines));
        } else if let Some(rest) = first.strip_prefix("Exit status:") {
            exit.push(rest.trim().to_string());
            exit.extend(p[1..].iter().map(|l| l.trim().to_string()));
        } else if indented(p) || p.iter().skip(1).any(|l| l.starts_with("  ")) {
            out.push_str(".PP\n.nf\n");
            for l in p {
                out.push_str(&man5::esc(l));
                out.push('\n');
            }
            out.push_str(".fi\n");
        } else {
            out.push_str(".PP\n");
            for l in p {
                out.push_str(&man5::esc(l.trim()));
                out.push('\n');
            }
        }
        i += 1;
    }
    out
}

/// The lines without the indentation they share (continuation lines keep
/// theirs beyond it).
fn dedent(lines: &[&str]) -> Vec<String> {
    let indent = lines
        .iter()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.len() - l.trim_start().len())
        .min()
        .unwrap_or(0);
    lines
        .iter()
        .map(|l| l.get(indent..).unwrap_or("").trim_end().to_string())
        .collect()
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
    let mut conf = UlogdConf::render(ex.template(), ex.file_name(), &subs)
        .map_err(|e| anyhow::anyhow!("rendering {}: {e}", ex.file_name()))?;
    conf.set("masq1", "store_dir", masqlog_command::package::STORE_DIR);
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
         # /var/log/masqlog.log (not through journald: see README.Debian), and\n\
         # into the evidence store /var/lib/masqlog/store, indexed for\n\
         #   masqlog lookup PUBLIC:PORT --at TIME --store /var/lib/masqlog/store\n\
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
    use std::path::Path;

    /// Runs gen-docs for the whole `masqlog` command into a temporary
    /// directory.
    fn generated() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let args = super::GenDocsArgs {
            out: dir.path().to_path_buf(),
            plugin_dir: super::DEBIAN_PLUGIN_DIR.into(),
        };
        super::run(&args, <crate::Cli as clap::CommandFactory>::command()).unwrap();
        dir
    }

    fn read(dir: &Path, rel: &str) -> String {
        std::fs::read_to_string(dir.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
    }

    #[test]
    fn completions_offer_every_command_and_not_gen_docs() {
        let d = generated();
        for f in [
            "completions/masqlog.bash",
            "completions/_masqlog",
            "completions/masqlog.fish",
        ] {
            let text = read(d.path(), f);
            assert!(
                !text.contains("gen-docs") && !text.contains("gen_docs"),
                "{f} offers gen-docs"
            );
            for sub in ["lookup", "enable", "disable", "check-config", "portblock"] {
                assert!(text.contains(sub), "{f} lacks {sub}");
            }
        }
        assert!(!d.path().join("man/man8/masqlog-gen-docs.8").exists());
    }

    #[test]
    fn man_pages_have_examples_unfilled_and_option_values_in_the_synopsis() {
        let d = generated();
        let apply = read(d.path(), "man/man8/masqlog-portblock-apply.8");
        assert!(apply.contains(".SH EXAMPLES\n"), "{apply}");
        // the crontab line is one line, between .EX and .EE
        let ex = &apply[apply.find(".SH EXAMPLES").unwrap()..];
        let block = &ex[ex.find(".EX\n").unwrap()..ex.find(".EE\n").unwrap()];
        assert!(
            block.lines().any(|l| l
                .starts_with("*/10 * * * * masqlog portblock apply \\-\\-state\\-dir")
                && l.ends_with("\\-\\-per\\-client 64")),
            "{block}"
        );
        assert!(apply.contains(".SH \"EXIT STATUS\"\n"), "{apply}");
        let lookup = read(d.path(), "man/man8/masqlog-lookup.8");
        assert!(
            lookup.contains("\\fB\\-\\-at\\fR \\fI<TIME>\\fR"),
            "{lookup}"
        );
        assert!(lookup.contains(".SH EXAMPLES\n"));
        for entry in std::fs::read_dir(d.path().join("man/man8"))
            .unwrap()
            .flatten()
        {
            let page = std::fs::read_to_string(entry.path()).unwrap();
            assert!(!page.contains(".SH EXTRA"), "{}", entry.path().display());
        }
    }

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
        assert!(c.contains("\nstore_dir=/var/lib/masqlog/store\n"), "{c}");
    }
}
