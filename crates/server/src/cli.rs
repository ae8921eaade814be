//! The command line: clap parses it, this module checks the values and turns them into a
//! [`Config`], and reports a bad one in a single line that names it.

use crate::config::{Config, ExitPolicy, WaitMode, check, defaults};
use clap::Parser;
use protocol::Framing;
use std::ffi::OsString;
use std::net::IpAddr;
use std::time::Duration;

/// A two-thread epoll server that sends every line back reversed.
///
/// Thread 1 accepts and reads (edge-triggered epoll), publishing each read into a
/// disruptor-style ring; thread 2 reverses and writes back. A client line `exit` stops it.
#[derive(Debug, Parser)]
#[command(name = "server", version, about, long_about = None)]
struct Args {
    /// Port to listen on; 0 picks a free one.
    #[arg(value_name = "PORT")]
    port: u16,

    /// Listen address, repeatable [default: loopback: 127.0.0.1, and ::1 where present].
    #[arg(short, long = "bind", value_name = "ADDR")]
    bind: Vec<IpAddr>,

    /// How the byte stream is cut into units to reverse.
    #[arg(short, long, value_name = "FRAMING", default_value = "line", value_parser = parse_framing)]
    framing: Framing,

    /// Who may stop the server with an `exit` line.
    #[arg(long, value_enum, value_name = "WHO", default_value_t = ExitPolicy::Loopback)]
    exit: ExitPolicy,

    /// Do not print received bytes to stdout.
    #[arg(short, long)]
    quiet: bool,

    /// Ring entries, a power of two.
    #[arg(long, value_name = "N", default_value_t = defaults::RING_SIZE, value_parser = parse_ring_size)]
    ring_size: usize,

    /// Bytes per ring entry (the most one read takes).
    #[arg(long, value_name = "BYTES", default_value_t = defaults::BUFFER_SIZE, value_parser = parse_buffer_size)]
    buffer_size: usize,

    /// Longest line, terminator not counted (line framing).
    #[arg(long, value_name = "BYTES", default_value_t = protocol::DEFAULT_MAX_LINE, value_parser = parse_positive)]
    max_line: usize,

    /// Largest frame payload (frame framing).
    #[arg(long, value_name = "BYTES", default_value_t = protocol::DEFAULT_MAX_FRAME)]
    max_frame: u32,

    /// Connections served at once; more are accepted and closed at once, with a log line.
    #[arg(long, value_name = "N", default_value_t = defaults::MAX_CONNECTIONS, value_parser = parse_max_connections)]
    max_connections: usize,

    /// Output kept per connection before the server stops reading from it.
    #[arg(long, value_name = "BYTES", default_value_t = defaults::MAX_PENDING, value_parser = parse_positive)]
    max_pending: usize,

    /// Bytes all connections together may keep between reads (unfinished lines and frames,
    /// pending output); past it, connections that need more are paused.
    #[arg(long, value_name = "BYTES", default_value_t = defaults::MAX_BUFFERED, value_parser = parse_max_buffered)]
    max_buffered: usize,

    /// Close a connection with no progress in either direction for this long; 0 = never;
    /// decimals allowed.
    #[arg(long, value_name = "SECS", default_value_t = defaults::IDLE_TIMEOUT_SECS, value_parser = parse_seconds)]
    idle_timeout: f64,

    /// How the worker waits for the ring: `block` polls briefly (yielding the CPU), then sleeps.
    #[arg(long, value_enum, value_name = "HOW", default_value_t = WaitMode::Block)]
    wait: WaitMode,
}

/// What the command line asks for.
#[derive(Debug)]
pub enum Command {
    /// Run the server.
    Run(Config),
    /// Print this text (help or version) to stdout and exit 0.
    Print(String),
}

/// A command line that cannot be run: the one-line message to print, and exit code 2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// Parses a command line (program name first).
///
/// # Errors
///
/// [`UsageError`] with one line that names the bad value, for instance
/// `error: invalid value '1000' for '--ring-size <N>': not a power of two (see --help)`.
///
/// # Examples
///
/// ```
/// use server::cli::{parse, Command};
///
/// let Ok(Command::Run(config)) = parse(["server", "--exit", "off", "9090"]) else { panic!() };
/// assert_eq!((config.port, config.exit), (9090, server::ExitPolicy::Off));
///
/// let error = parse(["server", "--ring-size", "1000", "9090"]).unwrap_err();
/// assert!(error.0.contains("'1000'"), "{error}");
/// ```
pub fn parse<I, T>(args: I) -> Result<Command, UsageError>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let args = match Args::try_parse_from(args) {
        Ok(args) => args,
        Err(error) => {
            use clap::error::ErrorKind;
            return match error.kind() {
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
                    Ok(Command::Print(error.render().to_string()))
                }
                _ => Err(UsageError(one_line(&error.render().to_string()))),
            };
        }
    };
    let config = Config {
        port: args.port,
        bind: args.bind,
        framing: args.framing,
        exit: args.exit,
        quiet: args.quiet,
        ring_size: args.ring_size,
        buffer_size: args.buffer_size,
        max_line: args.max_line,
        max_frame: args.max_frame,
        max_connections: args.max_connections,
        max_pending: args.max_pending,
        max_buffered: args.max_buffered,
        idle_timeout: (args.idle_timeout > 0.0).then(|| Duration::from_secs_f64(args.idle_timeout)),
        wait: args.wait,
    };
    // Each value was checked on its own above; what is left is the settings together.
    match config.validate() {
        Ok(()) => Ok(Command::Run(config)),
        Err(invalid) => Err(UsageError(format!("error: {invalid} (see --help)"))),
    }
}

/// clap's message, up to its first blank line, as one line with a pointer to `--help`.
fn one_line(rendered: &str) -> String {
    let head = rendered.split("\n\n").next().unwrap_or(rendered);
    let words: Vec<&str> = head.split_whitespace().collect();
    format!("{} (see --help)", words.join(" "))
}

fn parse_framing(value: &str) -> Result<Framing, String> {
    value
        .parse()
        .map_err(|_| "expected line, chunk or frame".to_owned())
}

/// A whole number that passes `check`.
fn parse_checked(value: &str, check: fn(usize) -> Result<(), String>) -> Result<usize, String> {
    let n = value
        .parse::<usize>()
        .map_err(|_| "not a whole number".to_owned())?;
    check(n)?;
    Ok(n)
}

fn parse_positive(value: &str) -> Result<usize, String> {
    parse_checked(value, check::at_least_one)
}

fn parse_ring_size(value: &str) -> Result<usize, String> {
    parse_checked(value, check::ring_size)
}

fn parse_buffer_size(value: &str) -> Result<usize, String> {
    parse_checked(value, check::buffer_size)
}

fn parse_max_connections(value: &str) -> Result<usize, String> {
    parse_checked(value, check::max_connections)
}

fn parse_max_buffered(value: &str) -> Result<usize, String> {
    parse_checked(value, check::max_buffered)
}

fn parse_seconds(value: &str) -> Result<f64, String> {
    let secs: f64 = value.parse().map_err(|_| "not a number".to_owned())?;
    // Whole years are plenty; `Duration::from_secs_f64` would panic far beyond.
    if !secs.is_finite() || !(0.0..=1e9).contains(&secs) {
        return Err("must be between 0 and 1e9 seconds".to_owned());
    }
    Ok(secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Config {
        let args = std::iter::once("server").chain(args.iter().copied());
        match parse(args) {
            Ok(Command::Run(config)) => config,
            other => panic!("did not parse: {other:?}"),
        }
    }

    fn usage_error(args: &[&str]) -> String {
        let args = std::iter::once("server").chain(args.iter().copied());
        match parse(args) {
            Err(UsageError(message)) => message,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        assert_eq!(run(&["9090"]), Config::new(9090));
        let config = Config::new(0);
        assert_eq!(config.idle_timeout, Some(Duration::from_secs(300)));
        assert_eq!(config.max_frame, 1 << 20);
        assert_eq!(config.max_line, 65_536);
        assert_eq!(config.max_connections, 10_000);
        assert_eq!(config.max_pending, 1 << 20);
        assert_eq!(config.max_buffered, 64 << 20);
        assert_eq!((config.ring_size, config.buffer_size), (1024, 4096));
        assert_eq!(config.wait, WaitMode::Block);
        assert!(config.bind.is_empty() && !config.quiet);
    }

    #[test]
    fn every_option_is_read() {
        let config = run(&[
            "-b",
            "127.0.0.1",
            "--bind",
            "::1",
            "-f",
            "frame",
            "--exit",
            "any",
            "-q",
            "--ring-size",
            "64",
            "--buffer-size",
            "100",
            "--max-line",
            "10",
            "--max-frame",
            "20",
            "--max-connections",
            "30",
            "--max-pending",
            "40",
            "--max-buffered",
            "50",
            "--idle-timeout",
            "1.5",
            "--wait",
            "spin",
            "0",
        ]);
        assert_eq!(
            config.bind,
            [
                "127.0.0.1".parse::<IpAddr>().unwrap(),
                "::1".parse().unwrap()
            ]
        );
        assert_eq!(config.framing, Framing::Frame);
        assert_eq!(config.exit, ExitPolicy::Any);
        assert!(config.quiet);
        assert_eq!((config.ring_size, config.buffer_size), (64, 100));
        assert_eq!((config.max_line, config.max_frame), (10, 20));
        assert_eq!((config.max_connections, config.max_pending), (30, 40));
        assert_eq!(config.max_buffered, 50);
        assert_eq!(config.idle_timeout, Some(Duration::from_millis(1500)));
        assert_eq!(config.wait, WaitMode::Spin);
        assert_eq!(run(&["--idle-timeout", "0", "1"]).idle_timeout, None);
        assert_eq!(run(&["--wait", "yield", "1"]).wait, WaitMode::Yield);
        assert_eq!(run(&["-f", "chunk", "1"]).framing, Framing::Chunk);
    }

    #[test]
    fn bad_values_get_one_line_naming_them() {
        for (args, named) in [
            (&["--ring-size", "1000", "1"][..], "'1000'"),
            (&["--ring-size", "0", "1"], "'0'"),
            (&["--ring-size", "4194304", "1"], "'4194304'"),
            (&["--buffer-size", "0", "1"], "'0'"),
            (&["--max-line", "x", "1"], "'x'"),
            (&["--max-connections", "0", "1"], "'0'"),
            (&["--max-buffered", "0", "1"], "'0'"),
            (&["--max-buffered", "2000000000000", "1"], "'2000000000000'"),
            // One connection alone must be able to finish the longest line.
            (&["--max-buffered", "100", "--max-line", "200", "1"], "100"),
            (&["-f", "frame", "--max-buffered", "100", "1"], "1048576"),
            (&["--idle-timeout", "-1", "1"], "'-1'"),
            (&["--idle-timeout", "nan", "1"], "'nan'"),
            (&["--framing", "words", "1"], "'words'"),
            (&["--exit", "maybe", "1"], "'maybe'"),
            (&["--wait", "sleep", "1"], "'sleep'"),
            (&["--bind", "localhost", "1"], "'localhost'"),
            (&["65536"], "'65536'"),
            (&["--no-such-option", "1"], "'--no-such-option'"),
            (&[], "<PORT>"),
            (
                &["--ring-size", "1048576", "--buffer-size", "8192", "1"],
                "1048576",
            ),
        ] {
            let message = usage_error(args);
            assert!(message.starts_with("error: "), "{args:?}: {message}");
            assert!(message.contains(named), "{args:?}: {message}");
            assert!(!message.contains('\n'), "{args:?}: {message:?}");
        }
    }

    #[test]
    fn help_and_version_are_printed_not_errors() {
        for flag in ["--help", "-h", "--version", "-V"] {
            match parse(["server", flag]) {
                Ok(Command::Print(text)) => assert!(text.contains("server"), "{text}"),
                other => panic!("{flag}: {other:?}"),
            }
        }
    }
}
