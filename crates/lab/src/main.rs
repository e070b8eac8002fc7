//! `masqlog-lab`: the namespace lab as a program of its own. `masqlog lab`
//! runs it; it is built with the workspace and never packaged.

use std::process::ExitCode;

use clap::Parser;

/// The namespace lab (run as `masqlog lab` or `masqlog-lab`).
#[derive(Parser, Debug)]
#[command(name = "masqlog lab", version)]
struct Cli {
    #[command(flatten)]
    args: masqlog_lab::cli::LabArgs,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match masqlog_lab::cli::run(&cli.args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("masqlog: {err:#}");
            ExitCode::from(2)
        }
    }
}
