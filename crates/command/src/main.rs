//! The `masqlog` command: forensics and tooling around the MASQLOG plugin.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

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
    /// Write the generated man pages, shell completions and example config
    /// into a directory (for packaging).
    #[command(hide = true)]
    GenDocs(cli::gendocs::GenDocsArgs),
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
        Command::GenDocs(args) => {
            cli::gendocs::run(&args, <Cli as clap::CommandFactory>::command())?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("masqlog: {err:#}");
            ExitCode::from(2)
        }
    }
}
