//! `loadgen`: runs one workload against a reverse server and prints one `result` line.
//!
//! Exit status: 0 when every reply was right, 1 when errors were counted or the server could
//! not be reached, 2 for bad arguments.
#![forbid(unsafe_code)]

use clap::{Parser, Subcommand};
use loadgen::{Bulk, Error, PingPong, Storm, Target, Workload};
use std::net::{SocketAddr, ToSocketAddrs};
use std::process::ExitCode;
use std::time::Duration;

/// A verifying load generator for the reverse server: every reply is checked byte for byte.
///
/// Prints a human summary on stderr and exactly one line on stdout: `result` and
/// space-separated key=value pairs.
#[derive(Debug, Parser)]
#[command(name = "loadgen", version)]
struct Cli {
    /// The server's address, such as 127.0.0.1:9090.
    #[arg(long, value_parser = parse_addr)]
    addr: SocketAddr,
    /// The server's process id: report its CPU time and peak memory from /proc.
    #[arg(long)]
    server_pid: Option<u32>,
    /// TCP congestion control for the client's sockets, such as cubic or reno (default: the
    /// system's). Set before connecting; `cargo xtask bench` uses cubic, since bbr paces
    /// loopback traffic and makes the bulk client the limit.
    #[arg(long, value_name = "NAME")]
    congestion: Option<String>,
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Debug, Subcommand)]
enum Mode {
    /// N connections, each keeping K lines in flight and sending the next on each reply.
    Pingpong {
        /// Connections.
        #[arg(long, default_value_t = 1)]
        connections: usize,
        /// Bytes per line, including the '\n'.
        #[arg(long, default_value_t = 64)]
        size: usize,
        /// Lines in flight per connection.
        #[arg(long, default_value_t = 1)]
        depth: usize,
        /// Seconds measured (decimals allowed).
        #[arg(long, default_value = "5", value_parser = parse_secs)]
        duration: Duration,
        /// Seconds of traffic before measuring (decimals allowed).
        #[arg(long, default_value = "1", value_parser = parse_secs)]
        warmup: Duration,
    },
    /// N connections each streaming X MiB of lines while reading the replies.
    Bulk {
        /// Connections.
        #[arg(long, default_value_t = 8)]
        connections: usize,
        /// MiB each connection sends (decimals allowed), rounded up to whole lines.
        #[arg(long, default_value = "64", value_parser = parse_mib)]
        mib: u64,
        /// Bytes per line, including the '\n'.
        #[arg(long, default_value_t = 100)]
        line: usize,
    },
    /// C connections at a time, each: connect, one line, its reply, close; repeated.
    Storm {
        /// Seconds of new connections (decimals allowed).
        #[arg(long, default_value = "5", value_parser = parse_secs)]
        duration: Duration,
        /// Connections at once.
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
        /// Bytes of each connection's line, including the '\n'.
        #[arg(long, default_value_t = 64)]
        size: usize,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let workload = match cli.mode {
        Mode::Pingpong {
            connections,
            size,
            depth,
            duration,
            warmup,
        } => Workload::PingPong(PingPong {
            connections,
            size,
            depth,
            duration,
            warmup,
        }),
        Mode::Bulk {
            connections,
            mib,
            line,
        } => Workload::Bulk(Bulk {
            connections,
            bytes_per_connection: mib,
            line,
        }),
        Mode::Storm {
            duration,
            concurrency,
            size,
        } => Workload::Storm(Storm {
            duration,
            concurrency,
            size,
        }),
    };
    let target = Target {
        addr: cli.addr,
        server_pid: cli.server_pid,
        progress: true,
        congestion: cli.congestion,
    };
    match loadgen::run(&target, &workload) {
        Ok(report) => {
            eprintln!("{}", report.summary());
            println!("{}", report.result_line());
            if report.is_success() {
                ExitCode::SUCCESS
            } else {
                eprintln!("loadgen: {} errors counted", report.errors());
                ExitCode::from(1)
            }
        }
        Err(error @ Error::Invalid(_)) => {
            eprintln!("loadgen: {error}");
            ExitCode::from(2)
        }
        Err(error) => {
            eprintln!("loadgen: {error}");
            ExitCode::from(1)
        }
    }
}

/// An address as `IP:PORT`, or a name that resolves (the first address it gives).
fn parse_addr(text: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = text.parse() {
        return Ok(addr);
    }
    text.to_socket_addrs()
        .map_err(|e| format!("cannot resolve {text}: {e}"))?
        .next()
        .ok_or_else(|| format!("{text} resolves to no address"))
}

/// Seconds, decimals allowed: `5`, `0.25`.
fn parse_secs(text: &str) -> Result<Duration, String> {
    let secs: f64 = text
        .parse()
        .map_err(|_| format!("not a number of seconds: {text}"))?;
    Duration::try_from_secs_f64(secs).map_err(|_| format!("not a usable number of seconds: {text}"))
}

/// MiB, decimals allowed, as bytes: more than 0.
fn parse_mib(text: &str) -> Result<u64, String> {
    let mib: f64 = text
        .parse()
        .map_err(|_| format!("not a number of MiB: {text}"))?;
    let bytes = (mib * f64::from(1u32 << 20)).round();
    if bytes.is_finite() && bytes >= 1.0 && bytes <= u64::MAX as f64 {
        Ok(bytes as u64)
    } else {
        Err(format!("not a usable number of MiB: {text}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn seconds_and_mib_take_decimals() {
        assert_eq!(parse_secs("0.25"), Ok(Duration::from_millis(250)));
        assert!(parse_secs("-1").is_err());
        assert!(parse_secs("soon").is_err());
        assert_eq!(parse_mib("64"), Ok(64 << 20));
        assert_eq!(parse_mib("0.5"), Ok(512 << 10));
        assert!(parse_mib("0").is_err());
        assert!(parse_mib("nan").is_err());
    }

    #[test]
    fn the_spec_command_lines_parse() {
        let cli = Cli::try_parse_from([
            "loadgen",
            "--addr",
            "127.0.0.1:9",
            "--server-pid",
            "42",
            "pingpong",
            "--connections",
            "64",
            "--size",
            "512",
            "--depth",
            "4",
        ])
        .unwrap();
        assert_eq!(cli.server_pid, Some(42));
        assert_eq!(cli.congestion, None);
        assert!(matches!(
            cli.mode,
            Mode::Pingpong {
                connections: 64,
                size: 512,
                depth: 4,
                ..
            }
        ));
        let cli = Cli::try_parse_from(["loadgen", "--addr", "127.0.0.1:9", "bulk", "--mib", "8"])
            .unwrap();
        assert!(matches!(
            cli.mode,
            Mode::Bulk {
                connections: 8,
                mib: 0x80_0000,
                line: 100
            }
        ));
        let cli = Cli::try_parse_from(["loadgen", "--addr", "127.0.0.1:9", "storm"]).unwrap();
        assert!(matches!(cli.mode, Mode::Storm { concurrency: 8, .. }));
        let cli = Cli::try_parse_from([
            "loadgen",
            "--addr",
            "127.0.0.1:9",
            "--congestion",
            "cubic",
            "storm",
        ])
        .unwrap();
        assert_eq!(cli.congestion.as_deref(), Some("cubic"));
    }
}
