//! Project automation, run as `cargo xtask <command>` (the cargo-xtask pattern).
//!
//! This binary has no dependencies so that it builds in a moment: everything it does is done with
//! `std`. Each subcommand lives in a module of its own.

#![forbid(unsafe_code)]

mod bench;
mod process;
mod smoke;
mod tidy;

use std::env;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

const USAGE: &str = "\
usage: cargo xtask <command>

commands:
  tidy    check the source tree's house rules (`//!` headers, `// SAFETY:` comments,
          `# Safety` docs, no `unsafe` outside crates/ring)
  smoke   build the server and check it end to end with OpenBSD netcat (`nc -N`)
  bench   build in release and measure our server against a tokio and a single-thread
          epoll baseline with `loadgen`, interleaved rounds; print a markdown table of the
          medians and write results.md, raw.txt, sweep.txt and chart.svg
          [--quick]          1 round, 2 s runs, 8 MiB bulk: a check, not a measurement
          [--rounds N]       rounds to take the median of (default 3)
          [--out DIR]        where the files go (default target/bench)
          [--only WORKLOAD]  one of 1x64 64x64 64x512d4 1000x64 bulk8x64MiB storm idle
                             8x64 512x64, or `sweep` (1x64 8x64 64x64 512x64 and the chart)
          [--render]         run nothing: write results.md and sweep.txt anew from the
                             raw.txt in --out (after a change to the report)
  help    print this message
";

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    let Some(command) = args.first() else {
        eprint!("error: no command given\n\n{USAGE}");
        return ExitCode::from(2);
    };
    let rest = &args[1..];
    match command.as_str() {
        "help" | "-h" | "--help" => {
            print!("{USAGE}");
            ExitCode::SUCCESS
        }
        "tidy" if rest.is_empty() => tidy_command(),
        "tidy" => {
            eprint!("error: `tidy` takes no arguments\n\n{USAGE}");
            ExitCode::from(2)
        }
        "smoke" if rest.is_empty() => smoke::command(&project_root()),
        "smoke" => {
            eprint!("error: `smoke` takes no arguments\n\n{USAGE}");
            ExitCode::from(2)
        }
        "bench" => bench::command(&project_root(), rest),
        other => {
            eprint!("error: unknown command `{other}`\n\n{USAGE}");
            ExitCode::from(2)
        }
    }
}

/// Runs the tidy checks on the whole tree: exit 0 if clean, 1 listing the violations.
fn tidy_command() -> ExitCode {
    match tidy::check_tree(&project_root()) {
        Ok(report) if report.violations.is_empty() => {
            println!("tidy: ok ({} files checked)", report.files_checked);
            ExitCode::SUCCESS
        }
        Ok(report) => {
            for violation in &report.violations {
                eprintln!("{violation}");
            }
            eprintln!(
                "tidy: {} violation(s) in {} files checked",
                report.violations.len(),
                report.files_checked
            );
            ExitCode::from(1)
        }
        Err(err) => {
            eprintln!("error: tidy could not read the source tree: {err}");
            ExitCode::from(1)
        }
    }
}

/// The workspace root: the parent of this crate's manifest directory.
fn project_root() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir.parent().unwrap_or(manifest_dir).to_path_buf()
}
