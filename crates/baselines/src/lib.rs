//! What the two baseline servers share: their command line and the reversal of one line.
//!
//! `tokio-server` and `epoll-server` exist only to be measured against the real server by
//! `cargo xtask bench`. They speak its wire protocol (`line` and `chunk` framing; no `exit`
//! command, no `frame` framing) and take the same few options the bench passes:
//!
//! ```text
//! NAME [--framing line|chunk] [-q] PORT
//! ```
//!
//! Both listen on 127.0.0.1:PORT (0 picks a free port), print `listening on 127.0.0.1:PORT` on
//! stderr, and serve until SIGTERM or SIGINT, then exit 0. Without `-q` they copy every byte
//! they receive to stdout, as the real server does.

#![forbid(unsafe_code)]

use protocol::Framing;
use std::ffi::OsString;
use std::fmt;

/// The longest line body either baseline accepts, as the real server's default `--max-line`.
pub const MAX_LINE: usize = protocol::DEFAULT_MAX_LINE;

/// What the command line asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Options {
    /// `line` or `chunk`; `frame` is refused by [`parse_args`].
    pub framing: Framing,
    /// `-q`: do not copy received bytes to stdout.
    pub quiet: bool,
    /// The port on 127.0.0.1; 0 picks a free one.
    pub port: u16,
}

/// What the command line means: run, or print the help and stop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    /// Serve with these options.
    Run(Options),
    /// `-h` / `--help`: print [`usage`] on stdout and exit 0.
    Help,
}

/// A command line that does not parse; its message names the bad value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UsageError(pub String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// The help text for the binary called `name`.
#[must_use]
pub fn usage(name: &str) -> String {
    format!(
        "usage: {name} [--framing line|chunk] [-q] PORT\n\
         \n\
         A baseline for `cargo xtask bench`: reverses each line (or each read, with\n\
         --framing chunk) it receives on 127.0.0.1:PORT (0 picks a free port).\n\
         \n\
         options:\n  \
           -f, --framing <line|chunk>  what is reversed, default line\n  \
           -q, --quiet                 do not copy received bytes to stdout\n  \
           -h, --help                  print this help\n"
    )
}

/// Parses the command line; `args` includes the program name first, as
/// [`std::env::args_os`] gives it.
///
/// The parser is by hand because the bench needs three options and the crate keeps its
/// dependencies to what the servers themselves use.
///
/// # Errors
///
/// A [`UsageError`] naming the unknown option, the bad framing or port, or the missing port.
pub fn parse_args(args: impl IntoIterator<Item = OsString>) -> Result<Command, UsageError> {
    let mut args = args.into_iter().skip(1);
    let mut framing = Framing::Line;
    let mut quiet = false;
    let mut port = None;
    while let Some(arg) = args.next() {
        let Some(arg) = arg.to_str() else {
            return Err(UsageError(format!(
                "error: argument is not UTF-8: {}",
                arg.to_string_lossy()
            )));
        };
        match arg {
            "-h" | "--help" => return Ok(Command::Help),
            "-q" | "--quiet" => quiet = true,
            "-f" | "--framing" => {
                let value = args.next().ok_or_else(|| {
                    UsageError(format!("error: {arg} needs a value: line or chunk"))
                })?;
                framing = parse_framing(&value.to_string_lossy())?;
            }
            _ if arg.starts_with("--framing=") => {
                framing = parse_framing(&arg["--framing=".len()..])?;
            }
            _ if arg.starts_with('-') && arg.len() > 1 => {
                return Err(UsageError(format!("error: unknown option {arg}")));
            }
            _ if port.is_some() => {
                return Err(UsageError(format!("error: unexpected argument {arg}")));
            }
            _ => {
                let parsed = arg.parse::<u16>().map_err(|_| {
                    UsageError(format!(
                        "error: invalid port {arg}: a number from 0 to 65535"
                    ))
                })?;
                port = Some(parsed);
            }
        }
    }
    let port = port.ok_or_else(|| UsageError("error: missing <PORT>".to_owned()))?;
    Ok(Command::Run(Options {
        framing,
        quiet,
        port,
    }))
}

fn parse_framing(value: &str) -> Result<Framing, UsageError> {
    match value.parse::<Framing>() {
        Ok(framing @ (Framing::Line | Framing::Chunk)) => Ok(framing),
        // The baselines exist for the bench, which measures lines; frames are not worth a
        // third implementation in each.
        Ok(Framing::Frame) | Err(_) => Err(UsageError(format!(
            "error: invalid framing {value}: line or chunk"
        ))),
    }
}

/// Reverses one line in place as the wire protocol says: a line that ends in `\n` keeps its
/// terminator (`\n`, or `\r\n`: a `\r` right before the `\n` belongs to it) and has its body
/// reversed; a last line without `\n`, cut off by the end of the stream, is reversed whole
/// (`abc\r` becomes `\rcba`).
///
/// # Examples
///
/// ```
/// let mut line = b"abc\r\n".to_vec();
/// baselines::reverse_line(&mut line);
/// assert_eq!(line, b"cba\r\n");
/// ```
pub fn reverse_line(line: &mut [u8]) {
    let body = body_len(line);
    line[..body].reverse();
}

/// The length of a line's body as [`reverse_line`] sees it: without its `\n` or `\r\n`, or all
/// of it when it has no `\n`.
///
/// # Examples
///
/// ```
/// assert_eq!(baselines::body_len(b"abc\r\n"), 3);
/// assert_eq!(baselines::body_len(b"abc\r"), 4);
/// ```
#[must_use]
pub fn body_len(line: &[u8]) -> usize {
    match line {
        [.., b'\r', b'\n'] => line.len() - 2,
        [.., b'\n'] => line.len() - 1,
        _ => line.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Command, UsageError> {
        parse_args(
            std::iter::once("name")
                .chain(args.iter().copied())
                .map(OsString::from),
        )
    }

    fn run(framing: Framing, quiet: bool, port: u16) -> Result<Command, UsageError> {
        Ok(Command::Run(Options {
            framing,
            quiet,
            port,
        }))
    }

    #[test]
    fn the_bench_command_lines_parse() {
        assert_eq!(parse(&["-q", "0"]), run(Framing::Line, true, 0));
        assert_eq!(parse(&["0"]), run(Framing::Line, false, 0));
        assert_eq!(
            parse(&["--framing", "chunk", "-q", "9000"]),
            run(Framing::Chunk, true, 9000)
        );
        assert_eq!(
            parse(&["8080", "--framing=line", "--quiet"]),
            run(Framing::Line, true, 8080)
        );
        assert_eq!(parse(&["-f", "chunk", "1"]), run(Framing::Chunk, false, 1));
        assert_eq!(parse(&["--help"]), Ok(Command::Help));
        assert_eq!(parse(&["-q", "-h", "bogus"]), Ok(Command::Help));
    }

    #[test]
    fn bad_command_lines_name_the_bad_value() {
        for (args, named) in [
            (&["--framing", "frame", "0"][..], "frame"),
            (&["--framing=words", "0"], "words"),
            (&["--framing"], "--framing"),
            (&["--bogus", "0"], "--bogus"),
            (&["70000"], "70000"),
            (&["port"], "port"),
            (&["-1"], "-1"),
            (&["1", "2"], "2"),
            (&[], "<PORT>"),
            (&["-q"], "<PORT>"),
        ] {
            let Err(UsageError(message)) = parse(args) else {
                panic!("{args:?} parsed");
            };
            assert!(message.starts_with("error: "), "{args:?}: {message}");
            assert!(message.contains(named), "{args:?}: {message}");
            assert!(!message.contains('\n'), "{args:?}: {message}");
        }
    }

    #[test]
    fn lines_are_reversed_without_their_terminator() {
        for (line, reply) in [
            (&b"abc\n"[..], &b"cba\n"[..]),
            (b"abc\r\n", b"cba\r\n"),
            (b"a\rb\n", b"b\ra\n"),
            (b"\r\r\n", b"\r\r\n"),
            (b"\n", b"\n"),
            (b"\r\n", b"\r\n"),
            (b"abc", b"cba"),
            (b"abc\r", b"\rcba"),
            (b"\r", b"\r"),
            (b"", b""),
        ] {
            let mut line = line.to_vec();
            reverse_line(&mut line);
            assert_eq!(line, reply, "{:?}", String::from_utf8_lossy(reply));
        }
    }

    #[test]
    fn the_usage_names_every_option() {
        let text = usage("tokio-server");
        for option in ["--framing", "-q", "--help", "PORT", "tokio-server"] {
            assert!(text.contains(option), "{option}");
        }
    }
}
