//! The `masqlog` command: forensics and tooling around the MASQLOG plugin.

use std::io;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use masqlog_command::lookup::LookupError;
use masqlog_command::portblock::PortblockError;

mod cli;

/// NAT forensics for ulogd2: who was public ip:port at time T.
///
/// masqlog's plugin for ulogd2 (ulogd_output_MASQLOG.so) logs every
/// translated conntrack flow to syslog with its three endpoints (client,
/// masquerade, remote), times and bytes. This command installs the plugin
/// and runs the tools around it.
#[derive(Parser, Debug)]
#[command(name = "masqlog", version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Install the built plugin as ulogd_output_MASQLOG.so in ulogd's plugin
    /// directory (atomic copy, checked with `ulogd -i`).
    InstallPlugin(cli::install::InstallArgs),
    /// Run masqlog end to end in network namespaces: a client, a NAT router
    /// with stock ulogd and the plugin, a server, a real rsyslog; makes flows
    /// as the users alice and bob and prints the log lines (needs root).
    ///
    /// Runs `masqlog-lab` (built with the source tree, not packaged) with
    /// the arguments as given; `masqlog lab --help` lists its options.
    Lab(cli::lab::LabArgs),
    #[command(
        about = "Deterministic port-block NAT: plan, apply (with history) and test SNAT port blocks"
    )]
    Portblock(cli::portblock::PortblockArgs),
    /// Who was public ip:port at time T: answers an abuse report from
    /// masqlog's log lines (and port-block rule files), with the evidence.
    Lookup(cli::lookup::LookupArgs),
    /// Check a ulogd.conf for MASQLOG, and the machine around it.
    ///
    /// Reads the file as ulogd 2.0.8 reads it, validates every key of each
    /// MASQLOG instance with the plugin's own code, and checks what the
    /// plugin needs around it: the plugin file, the NFCT section, the
    /// conntrack sysctls, the syslog destination and, for transparent
    /// IDENT, the router's policy routing. Run it as root on the router
    /// before restarting ulogd.
    CheckConfig(cli::checkconfig::CheckConfigArgs),
    /// The PostgreSQL database routers write to: init, upgrade,
    /// partitions, retention, status.
    Db(cli::db::DbArgs),
    /// Turn masqlog on in ulogd's config (one step on a Debian router).
    ///
    /// Adds a MASQLOG stack and its two sections to the config ulogd2.service
    /// reads, keeping every other stack; turns the conntrack sysctls on (now
    /// and at boot); restarts ulogd2. `masqlog disable` undoes exactly that.
    Enable(cli::enable::EnableArgs),
    /// Undo `masqlog enable`: the config back as it was, the sysctl files
    /// removed, ulogd2 restarted.
    Disable(cli::enable::DisableArgs),
    /// Make the key that seals this router's records: the sealing state
    /// for the plugin, and the verification key to keep elsewhere.
    Keygen(cli::keygen::KeygenArgs),
    /// Check sealed logs: every record there, unaltered, in order.
    Verify(cli::verify::VerifyArgs),
    /// Index rotated log files (in .masqlog-index/ beside them) so that lookup answers from
    /// them in milliseconds.
    Index(cli::index::IndexArgs),
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::InstallPlugin(args) => {
            cli::install::run(&args)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Lab(args) => {
            cli::lab::run(&args)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Portblock(args) => Ok(cli::portblock::run(&args)?),
        Command::Lookup(args) => Ok(cli::lookup::run(&args)?),
        Command::CheckConfig(args) => cli::checkconfig::run(&args),
        Command::Db(args) => cli::db::run(&args),
        Command::Enable(args) => {
            cli::enable::run_enable(&args)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Disable(args) => {
            cli::enable::run_disable(&args)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Keygen(args) => {
            cli::keygen::run(&args)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Verify(args) => cli::verify::run(&args),
        Command::Index(args) => cli::index::run(&args),
    }
}

fn main() -> ExitCode {
    // `masqlog gen-docs` (packaging) is no subcommand of `Cli`, so that no
    // completion, man page or --help offers it.
    if std::env::args_os().nth(1).is_some_and(|a| a == "gen-docs") {
        let docs = cli::gendocs::GenDocsCli::parse_from(std::env::args_os().skip(1));
        return exit_status(
            cli::gendocs::run(&docs.args, <Cli as clap::CommandFactory>::command())
                .map(|()| ExitCode::SUCCESS),
        );
    }
    exit_status(run(Cli::parse()))
}

/// The exit status for what [`run`] returned. An error prints as
/// `error: {err:#}` (the prefix of clap's usage errors) and exits 2, except a broken pipe anywhere in its
/// chain: the reader of the output went away (`masqlog lookup ... | head`),
/// which is no failure of ours and there is no one left to tell, so it
/// exits 0 quietly, as ripgrep does.
fn exit_status(result: anyhow::Result<ExitCode>) -> ExitCode {
    match result {
        Ok(code) => code,
        Err(err) if is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(2)
        }
    }
}

/// Whether an error, or any error in its chain, is a broken pipe.
fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain()
        .filter_map(io_error)
        .any(|e| e.kind() == io::ErrorKind::BrokenPipe)
}

/// The I/O error that `e` is or carries. The errors of lookup and portblock
/// keep an I/O cause in their message, not as a `source()` (so that `{:#}`
/// prints it once), so they are looked into here.
fn io_error<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a io::Error> {
    fn portblock(e: &PortblockError) -> Option<&io::Error> {
        match e {
            PortblockError::Io { cause, .. } => Some(cause),
            _ => None,
        }
    }
    if let Some(io) = e.downcast_ref::<io::Error>() {
        return Some(io);
    }
    if let Some(e) = e.downcast_ref::<LookupError>() {
        return match e {
            LookupError::Output(io) => Some(io),
            LookupError::Portblock(p) => portblock(p),
            _ => None,
        };
    }
    e.downcast_ref::<PortblockError>().and_then(portblock)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pipe() -> io::Error {
        io::Error::from(io::ErrorKind::BrokenPipe)
    }

    #[test]
    fn a_broken_pipe_anywhere_in_the_chain_exits_0() {
        for err in [
            anyhow::Error::from(pipe()),
            anyhow::Error::from(pipe()).context("writing the report"),
            LookupError::Output(pipe()).into(),
            LookupError::Portblock(PortblockError::Io {
                what: "cannot write to",
                path: "standard output".into(),
                cause: pipe(),
            })
            .into(),
            PortblockError::Io {
                what: "cannot write to",
                path: "standard output".into(),
                cause: pipe(),
            }
            .into(),
        ] {
            assert!(is_broken_pipe(&err), "{err:#}");
            assert_eq!(exit_status(Err(err)), ExitCode::SUCCESS);
        }
    }

    #[test]
    fn other_errors_exit_2_and_codes_pass_through() {
        let err = anyhow::Error::from(io::Error::from(io::ErrorKind::PermissionDenied));
        assert!(!is_broken_pipe(&err));
        assert_eq!(exit_status(Err(err)), ExitCode::from(2));
        assert_eq!(
            exit_status(Err(LookupError::NoInput.into())),
            ExitCode::from(2)
        );
        assert_eq!(exit_status(Ok(ExitCode::from(1))), ExitCode::from(1));
    }
}
