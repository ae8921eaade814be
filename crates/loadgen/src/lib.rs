//! A verifying load generator for the reverse server: ping-pong, bulk and connect-storm
//! workloads on one thread, edge-triggered on [`poller`], with every reply byte checked.
//!
//! - **Ping-pong** ([`PingPong`]): N connections each keep K lines in flight; each reply is
//!   answered by the next line. Latency is send to reply-complete, per line, after a warm-up.
//! - **Bulk** ([`Bulk`]): N connections each stream X MiB of lines while reading the replies
//!   concurrently, then half-close; the server answers everything and closes.
//! - **Storm** ([`Storm`]): C connections at a time, each connect, one line, its reply, close.
//!
//! Request lines are derived from the connection and message numbers (printable, never a
//! palindrome, never `exit`), so each reply is checked against the reversal it should be,
//! chunk by chunk as it arrives, without keeping what was sent. Mismatches, resets and short
//! replies are counted separately in the [`Report`]; any of them fails the run.
//!
//! # Examples
//!
//! ```no_run
//! use loadgen::{PingPong, Target, Workload};
//! use std::time::Duration;
//!
//! let target = Target::new("127.0.0.1:9090".parse().unwrap());
//! let workload = Workload::PingPong(PingPong {
//!     connections: 64,
//!     duration: Duration::from_secs(5),
//!     ..PingPong::default()
//! });
//! let report = loadgen::run(&target, &workload).unwrap();
//! eprintln!("{}", report.summary());
//! println!("{}", report.result_line());
//! assert!(report.is_success());
//! ```

#![forbid(unsafe_code)]

mod bulk;
mod engine;
mod payload;
mod pingpong;
mod procstat;
mod report;
mod storm;

pub use engine::latency_histogram;
pub use procstat::ServerUsage;
pub use report::Report;

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

/// Where to send the load, and what else to watch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// The server's address.
    pub addr: SocketAddr,
    /// The server's process id, to report its CPU time and peak memory from `/proc`.
    pub server_pid: Option<u32>,
    /// Print a progress line on stderr every second (timed runs over 3 s; bulk runs from their
    /// third second on).
    pub progress: bool,
    /// The TCP congestion control of the client's sockets (`cubic`, `reno`, ...), set before
    /// each connect; `None` keeps the system's default.
    pub congestion: Option<String>,
}

impl Target {
    /// The server at `addr`, without process statistics or progress lines.
    #[must_use]
    pub fn new(addr: SocketAddr) -> Self {
        Self {
            addr,
            server_pid: None,
            progress: false,
            congestion: None,
        }
    }
}

/// Ping-pong: each connection keeps `depth` lines in flight for `warmup + duration`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PingPong {
    /// Connections, each with its own stream of lines.
    pub connections: usize,
    /// Bytes per line including its `'\n'`; at least 2 (3 and more for lines that are not
    /// palindromes).
    pub size: usize,
    /// Lines in flight per connection (pipelining depth).
    pub depth: usize,
    /// The measured phase.
    pub duration: Duration,
    /// Traffic before the measured phase, not counted.
    pub warmup: Duration,
}

impl Default for PingPong {
    /// The command line's defaults: 1 connection, 64 bytes, depth 1, 5 s after 1 s warm-up.
    fn default() -> Self {
        Self {
            connections: 1,
            size: 64,
            depth: 1,
            duration: Duration::from_secs(5),
            warmup: Duration::from_secs(1),
        }
    }
}

/// Bulk: each connection sends `bytes_per_connection` bytes of `line`-byte lines (rounded up to
/// whole lines) while reading, then half-closes and reads until the server closes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bulk {
    /// Connections, all streaming at once.
    pub connections: usize,
    /// Bytes each connection sends, rounded up to whole lines.
    pub bytes_per_connection: u64,
    /// Bytes per line including its `'\n'`; at least 2.
    pub line: usize,
}

impl Default for Bulk {
    /// The command line's defaults: 8 connections, 64 MiB each, 100-byte lines.
    fn default() -> Self {
        Self {
            connections: 8,
            bytes_per_connection: 64 << 20,
            line: 100,
        }
    }
}

impl Bulk {
    /// Lines per connection.
    #[must_use]
    pub fn lines(&self) -> u64 {
        self.bytes_per_connection
            .div_ceil(self.line.max(1) as u64)
            .max(1)
    }
}

/// Connect storm: `concurrency` connections at a time, each sending one `size`-byte line and
/// closing after its reply, for `duration`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Storm {
    /// How long new connections are started.
    pub duration: Duration,
    /// Connections open at once.
    pub concurrency: usize,
    /// Bytes of the one line each connection sends, including its `'\n'`; at least 2.
    pub size: usize,
}

impl Default for Storm {
    /// The command line's defaults: 5 s, 8 at a time, 64-byte lines.
    fn default() -> Self {
        Self {
            duration: Duration::from_secs(5),
            concurrency: 8,
            size: 64,
        }
    }
}

/// The most connections (`--connections`, `--concurrency`): more than one address can have
/// ports for, so any larger number is a typo, not a plan.
const MAX_CONNECTIONS: usize = 100_000;

/// The longest line (`--size`, `--line`), newline included: far past any server's line limit
/// (64 KiB by default for ours), so anything longer is a typo.
const MAX_LINE: usize = 64 << 20;

/// The deepest pipeline (`--depth`).
const MAX_DEPTH: usize = 65_536;

/// The most bytes one bulk connection sends (`--mib`): 1 TiB, minutes even at memory speed.
const MAX_BYTES_PER_CONNECTION: u64 = 1 << 40;

/// The most memory the client's buffers may take, all connections together: each option within
/// its bound can still multiply to more than a machine has, and an allocation that fails aborts
/// the process rather than returning an error.
const MAX_BUFFERS: u64 = 4 << 30;

/// One of the three workloads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Workload {
    /// See [`PingPong`].
    PingPong(PingPong),
    /// See [`Bulk`].
    Bulk(Bulk),
    /// See [`Storm`].
    Storm(Storm),
}

impl Workload {
    /// The mode's name on the command line and in the result line.
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self {
            Self::PingPong(_) => "pingpong",
            Self::Bulk(_) => "bulk",
            Self::Storm(_) => "storm",
        }
    }

    /// Checks the settings before anything is connected.
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`] naming the first setting a run cannot use.
    pub fn validate(&self) -> Result<(), Error> {
        let invalid = |what: &str| Err(Error::Invalid(what.to_owned()));
        let at_most =
            |option: &str, max: u64| Err(Error::Invalid(format!("{option} must be at most {max}")));
        // Widening only: usize is at most 64 bits on every target Rust supports.
        let wide = |n: usize| n as u64;
        // Each count is bounded before the product is taken, so the product cannot overflow.
        let buffers = match self {
            Self::PingPong(p) => {
                if p.connections == 0 {
                    return invalid("--connections must be at least 1");
                }
                if p.connections > MAX_CONNECTIONS {
                    return at_most("--connections", wide(MAX_CONNECTIONS));
                }
                if p.size < 2 {
                    return invalid("--size must be at least 2 (one byte and the newline)");
                }
                if p.size > MAX_LINE {
                    return at_most("--size", wide(MAX_LINE));
                }
                if p.depth == 0 {
                    return invalid("--depth must be at least 1");
                }
                if p.depth > MAX_DEPTH {
                    return at_most("--depth", wide(MAX_DEPTH));
                }
                if p.duration.is_zero() {
                    return invalid("--duration must be more than 0");
                }
                // The lines in flight, and the reply being received.
                wide(p.connections) * wide(p.size) * (wide(p.depth) + 1)
            }
            Self::Bulk(b) => {
                if b.connections == 0 {
                    return invalid("--connections must be at least 1");
                }
                if b.connections > MAX_CONNECTIONS {
                    return at_most("--connections", wide(MAX_CONNECTIONS));
                }
                if b.line < 2 {
                    return invalid("--line must be at least 2 (one byte and the newline)");
                }
                if b.line > MAX_LINE {
                    return at_most("--line", wide(MAX_LINE));
                }
                if b.bytes_per_connection == 0 {
                    return invalid("--mib must be more than 0");
                }
                if b.bytes_per_connection > MAX_BYTES_PER_CONNECTION {
                    return at_most("--mib", MAX_BYTES_PER_CONNECTION >> 20);
                }
                // A chunk of lines each way per connection.
                2 * wide(b.connections) * wide(b.line.max(bulk::CHUNK))
            }
            Self::Storm(s) => {
                if s.concurrency == 0 {
                    return invalid("--concurrency must be at least 1");
                }
                if s.concurrency > MAX_CONNECTIONS {
                    return at_most("--concurrency", wide(MAX_CONNECTIONS));
                }
                if s.size < 2 {
                    return invalid("--size must be at least 2 (one byte and the newline)");
                }
                if s.size > MAX_LINE {
                    return at_most("--size", wide(MAX_LINE));
                }
                if s.duration.is_zero() {
                    return invalid("--duration must be more than 0");
                }
                // The line and its reply per connection.
                2 * wide(s.concurrency) * wide(s.size)
            }
        };
        if buffers > MAX_BUFFERS {
            let options = match self {
                Self::PingPong(_) => "--connections x --size x --depth",
                Self::Bulk(_) => "--connections x --line",
                Self::Storm(_) => "--concurrency x --size",
            };
            return Err(Error::Invalid(format!(
                "{options} would need {} MiB of buffers; at most {} MiB",
                buffers >> 20,
                MAX_BUFFERS >> 20
            )));
        }
        Ok(())
    }
}

/// Why a run could not be made at all (as opposed to a run that counted errors, which is a
/// [`Report`] that is not [a success](Report::is_success)).
#[derive(Debug)]
pub enum Error {
    /// A setting the run cannot use.
    Invalid(String),
    /// A connection of the initial set could not be made.
    Connect {
        /// The server's address.
        addr: SocketAddr,
        /// Why.
        source: io::Error,
    },
    /// The server's `/proc` entries could not be read (wrong pid, or it exited).
    Proc(io::Error),
    /// The poller failed: out of descriptors or memory.
    Io(io::Error),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Invalid(what) => f.write_str(what),
            Self::Connect { addr, source } => write!(f, "cannot connect to {addr}: {source}"),
            Self::Proc(source) => write!(f, "server statistics: {source}"),
            Self::Io(source) => write!(f, "{source}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Invalid(_) => None,
            Self::Connect { source, .. } | Self::Proc(source) | Self::Io(source) => Some(source),
        }
    }
}

impl From<io::Error> for Error {
    fn from(source: io::Error) -> Self {
        Self::Io(source)
    }
}

/// Runs `workload` against `target` on this thread and reports what it measured.
///
/// # Errors
///
/// [`Error::Invalid`] for settings [`Workload::validate`] refuses, [`Error::Connect`] when the
/// initial connections cannot be made (ping-pong, bulk; a storm that cannot make its first
/// connection), [`Error::Proc`] when the server's `/proc` entries cannot be read, and
/// [`Error::Io`] when the poller fails. Errors of the connections once running (mismatches,
/// resets, short replies) are counted in the [`Report`] instead.
pub fn run(target: &Target, workload: &Workload) -> Result<Report, Error> {
    workload.validate()?;
    if let Some(name) = &target.congestion {
        // An algorithm the kernel lacks is a bad argument, found out before any connection.
        engine::socket(target.addr, Some(name), rustix::net::SocketFlags::empty()).map_err(
            |err| Error::Invalid(format!("cannot use TCP congestion control `{name}`: {err}")),
        )?;
    }
    // A wrong pid is found out now, not after a warm-up.
    if let Some(pid) = target.server_pid {
        procstat::Monitor::start(pid).map_err(Error::Proc)?;
    }
    match workload {
        Workload::PingPong(spec) => pingpong::run(target, spec),
        Workload::Bulk(spec) => bulk::run(target, spec),
        Workload::Storm(spec) => storm::run(target, spec),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The message of the error `workload` is refused with.
    fn refusal(workload: Workload) -> String {
        match workload.validate() {
            Err(Error::Invalid(what)) => what,
            other => panic!("{workload:?}: {other:?}"),
        }
    }

    #[test]
    fn absurd_sizes_are_refused_naming_the_option() {
        let pingpong = PingPong::default;
        let bulk = Bulk::default;
        let storm = Storm::default;
        let cases = [
            (
                Workload::PingPong(PingPong {
                    connections: MAX_CONNECTIONS + 1,
                    ..pingpong()
                }),
                "--connections",
            ),
            (
                Workload::PingPong(PingPong {
                    size: usize::MAX,
                    ..pingpong()
                }),
                "--size",
            ),
            (
                Workload::PingPong(PingPong {
                    depth: usize::MAX,
                    ..pingpong()
                }),
                "--depth",
            ),
            (
                Workload::PingPong(PingPong {
                    connections: MAX_CONNECTIONS,
                    size: MAX_LINE,
                    depth: MAX_DEPTH,
                    ..pingpong()
                }),
                "--connections x --size x --depth",
            ),
            (
                Workload::Bulk(Bulk {
                    connections: usize::MAX,
                    ..bulk()
                }),
                "--connections",
            ),
            (
                Workload::Bulk(Bulk {
                    line: MAX_LINE + 1,
                    ..bulk()
                }),
                "--line",
            ),
            (
                Workload::Bulk(Bulk {
                    bytes_per_connection: u64::MAX,
                    ..bulk()
                }),
                "--mib",
            ),
            (
                Workload::Bulk(Bulk {
                    connections: 1000,
                    line: MAX_LINE,
                    ..bulk()
                }),
                "--connections x --line",
            ),
            (
                Workload::Storm(Storm {
                    concurrency: usize::MAX,
                    ..storm()
                }),
                "--concurrency",
            ),
            (
                Workload::Storm(Storm {
                    size: usize::MAX,
                    ..storm()
                }),
                "--size",
            ),
            (
                Workload::Storm(Storm {
                    concurrency: MAX_CONNECTIONS,
                    size: MAX_LINE,
                    ..storm()
                }),
                "--concurrency x --size",
            ),
        ];
        for (workload, option) in cases {
            let what = refusal(workload);
            assert!(what.starts_with(&format!("{option} ")), "{what}");
        }
    }

    #[test]
    fn the_bounds_themselves_are_accepted() {
        let fine = [
            Workload::PingPong(PingPong {
                connections: MAX_CONNECTIONS,
                ..PingPong::default()
            }),
            Workload::PingPong(PingPong {
                size: MAX_LINE,
                ..PingPong::default()
            }),
            Workload::PingPong(PingPong {
                depth: MAX_DEPTH,
                ..PingPong::default()
            }),
            // 64 KiB each way per connection: a quarter of the most connections fits.
            Workload::Bulk(Bulk {
                connections: MAX_CONNECTIONS / 4,
                line: 2,
                bytes_per_connection: MAX_BYTES_PER_CONNECTION,
            }),
            Workload::Bulk(Bulk {
                line: MAX_LINE,
                ..Bulk::default()
            }),
            Workload::Storm(Storm {
                concurrency: MAX_CONNECTIONS,
                size: MAX_LINE / MAX_CONNECTIONS,
                ..Storm::default()
            }),
        ];
        for workload in fine {
            assert!(workload.validate().is_ok(), "{workload:?}");
        }
    }
}
