//! `masqlog-lab`: the namespace lab as a program of its own. `masqlog lab`
//! runs it; it is built with the workspace and never packaged.

use std::process::ExitCode;

use clap::Parser;
use masqlog_lab::cli::{self, LabArgs};

fn main() -> ExitCode {
    let args = LabArgs::parse();
    match cli::run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("masqlog-lab: {err:#}");
            ExitCode::from(2)
        }
    }
}
