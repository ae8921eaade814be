//! `server [OPTIONS] <PORT>`: the command line over the `server` library.
//!
//! Exit codes: 0 when stopped (exit line or signal), 1 when it cannot run (a port that cannot
//! be bound, say), 2 for a bad command line.

#![forbid(unsafe_code)]

use server::Server;
use server::cli::{self, Command};
use std::io::Write;
use std::process::ExitCode;

fn main() -> ExitCode {
    let config = match cli::parse(std::env::args_os()) {
        Ok(Command::Run(config)) => config,
        Ok(Command::Print(text)) => {
            print!("{text}");
            let _ = std::io::stdout().flush();
            return ExitCode::SUCCESS;
        }
        Err(usage) => {
            eprintln!("{usage}");
            return ExitCode::from(2);
        }
    };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();

    // Plain lines, not log records: scripts and tests read them whatever RUST_LOG says.
    let mut server = match Server::bind(config) {
        Ok(server) => server,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(1);
        }
    };
    if let Err(error) = server.stop_on_signals() {
        eprintln!("error: cannot install the SIGINT/SIGTERM handlers: {error}");
        return ExitCode::from(1);
    }
    for addr in server.local_addrs() {
        eprintln!("listening on {addr}");
    }
    match server.run() {
        Ok(summary) => {
            eprintln!("summary: {summary}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::from(1)
        }
    }
}
