//! `masqlog check-config`: the command line around
//! [`masqlog_command::checkconfig`]: reads the file, runs the checks (in another
//! network namespace by running itself through `ip netns exec`), prints one
//! line per check or `--json`.

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::{Command, ExitCode};

use masqlog_command::access;
use masqlog_command::checkconfig::{self, Machine};

const AFTER_HELP: &str = "\
Checks, each reported as ok, warn or FAIL with what to change:
  - [global]: the stack= lines that name MASQLOG instances; the plugin= file
    exists, comes before stack=, and `ulogd -i` lists MASQLOG
  - each MASQLOG section, validated by the plugin's own code: every value,
    unknown keys (ulogd 2.0.8 ignores a misspelt key silently), integers that
    are not numbers (ulogd reads \"abc\" as 0), `key=` without a value (ulogd
    reads it as the key's name), repeated keys, over-long lines and values
  - the NFCT section feeding each stack: hash_enable=0, event_mask with NEW
    and DESTROY (0x5), netlink buffer sizes (size < maxsize), reliable=1
  - sections that appear twice: ulogd reads only the first (Debian's
    /etc/ulogd.conf has an empty [ct1]: one pasted below it is never read)
  - the sysctls net.netfilter.nf_conntrack_acct and nf_conntrack_timestamp
  - the syslog destination: the unix socket accepts a datagram socket, the
    TCP receiver accepts a connection (2 s); UDP cannot be checked. A
    /dev/log that is journald's socket is a warning: journald rate-limits
    (10000 messages in 30 s per service by default) and keeps a second copy
    outside logrotate's retention; destination=unix:/run/masqlog/log (the
    package's rsyslog input) avoids both
  - the sealing state (seal_state): it exists and reads as one, and it is
    safe: a regular file (not a symlink), mode 0600 (no access for group or
    others), in a directory only its owner writes to, owned by root or by
    the state's owner
  - the spool_dir: a directory (a symlink is a warning) that others may not
    write to (the plugin makes each instance's spool in it, mode 0700)
  - orphaned spools: a directory under a spool_dir that holds records no
    instance sends (an instance renamed, or spool_size_mb=0), with the
    number of records and how to get them sent
  - ident=transparent: CAP_NET_ADMIN, the nftables `socket transparent` mark
    rule, the fwmark ip rule and the `local` route of its table

Examples:
  masqlog check-config
  masqlog check-config /etc/ulogd-masqlog.conf --json
  masqlog check-config --netns router /etc/ulogd.conf

Exit status: 0 everything needed is in place (warnings allowed), 1 something
needed is missing or wrong, 2 the file cannot be read.";

// The arguments of `masqlog check-config` (its help is on the `CheckConfig`
// variant in main.rs).
#[derive(clap::Args, Debug)]
#[command(after_long_help = AFTER_HELP)]
pub struct CheckConfigArgs {
    /// The ulogd config to check [default: the one ulogd2.service starts
    /// ulogd with (the -c of its ExecStart), else /etc/ulogd.conf].
    #[arg(value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// Check the sysctls, sockets and routing of this network namespace
    /// (as `ip netns list` names it): where ulogd runs.
    #[arg(long, value_name = "NAME")]
    pub netns: Option<String>,
    /// One JSON object: {"file", "ok", "warnings", "failures", "exit",
    /// "findings": [{"status", "check", "message"}]}.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: &CheckConfigArgs) -> anyhow::Result<ExitCode> {
    let file = args.file.clone().unwrap_or_else(|| {
        checkconfig::ulogd_unit_config(&Machine)
            .unwrap_or_else(|| masqlog_command::package::ULOGD_CONF.into())
    });
    if let Some(ns) = &args.netns {
        return in_netns(ns, &file, args.json);
    }
    let text = match std::fs::read(&file) {
        Ok(t) => t,
        Err(e) => {
            eprintln!(
                "error: cannot read {}: {}",
                file.display(),
                access::why(&file, &e)
            );
            return Ok(ExitCode::from(2));
        }
    };
    let report = checkconfig::check(&file, &text, &Machine);
    let out = if args.json {
        let mut buf = Vec::new();
        report.to_json().write(&mut buf);
        buf.push(b'\n');
        buf
    } else {
        report.render_text().into_bytes()
    };
    io::stdout().lock().write_all(&out)?;
    Ok(ExitCode::from(report.exit_code()))
}

/// Runs this command again inside `ns` (without `--netns`) and passes its
/// exit status on.
fn in_netns(ns: &str, file: &std::path::Path, json: bool) -> anyhow::Result<ExitCode> {
    let path = std::path::Path::new("/run/netns").join(ns);
    if !path.exists() {
        anyhow::bail!(
            "no network namespace {ns} ({} does not exist; see `ip netns list`)",
            path.display()
        );
    }
    let exe = std::env::current_exe()?;
    let ip = masqlog_core::process::find_tool("ip")?;
    let mut cmd = Command::new(ip);
    cmd.args(["netns", "exec", ns])
        .arg(exe)
        .arg("check-config")
        .arg(file);
    if json {
        cmd.arg("--json");
    }
    let status = cmd
        .status()
        .map_err(|e| anyhow::anyhow!("running ip netns exec {ns}: {e}"))?;
    Ok(match status.code() {
        Some(c) => ExitCode::from(u8::try_from(c).unwrap_or(2)),
        None => ExitCode::from(2),
    })
}
