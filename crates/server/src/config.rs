//! The server's settings, as the command line gives them, and the policies they select.

use protocol::Framing;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// Everything the server is told at start. [`Config::new`] gives the defaults of the command line.
///
/// # Examples
///
/// ```
/// let config = server::Config::new(0);
/// assert_eq!(config.ring_size, 1024);
/// assert_eq!(config.exit, server::ExitPolicy::Loopback);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// The port to listen on; 0 picks a free one.
    pub port: u16,
    /// The addresses to listen on; empty means loopback (127.0.0.1, and ::1 where present).
    pub bind: Vec<IpAddr>,
    /// How the byte stream is cut into the units that are reversed.
    pub framing: Framing,
    /// Who may stop the server with an exit line.
    pub exit: ExitPolicy,
    /// Do not copy received bytes to stdout.
    pub quiet: bool,
    /// Ring entries: a power of two.
    pub ring_size: usize,
    /// Bytes per ring entry: the most one read takes.
    pub buffer_size: usize,
    /// The longest line body, in bytes (`line` framing).
    pub max_line: usize,
    /// The largest frame payload, in bytes (`frame` framing).
    pub max_frame: u32,
    /// The most connections served at once; more are accepted and closed at once.
    pub max_connections: usize,
    /// Output kept for one connection before reading from it pauses.
    pub max_pending: usize,
    /// Bytes all connections together may keep between reads (unfinished lines and frames,
    /// pending output); a connection that needs more once it is used up is paused.
    pub max_buffered: usize,
    /// Close a connection that makes no progress for this long; `None` never does.
    pub idle_timeout: Option<Duration>,
    /// How the worker waits for the ring when it is empty.
    pub wait: WaitMode,
}

/// Defaults, shared by [`Config::new`] and the command line's help.
pub(crate) mod defaults {
    pub(crate) const RING_SIZE: usize = 1024;
    pub(crate) const BUFFER_SIZE: usize = 4096;
    pub(crate) const MAX_CONNECTIONS: usize = 10_000;
    pub(crate) const MAX_PENDING: usize = 1024 * 1024;
    pub(crate) const MAX_BUFFERED: usize = 64 * 1024 * 1024;
    pub(crate) const IDLE_TIMEOUT_SECS: f64 = 300.0;
}

/// Limits the command line enforces, so that memory stays within reason and indices fit.
pub(crate) mod limits {
    /// Ring entries at most.
    pub(crate) const MAX_RING_SIZE: usize = 1 << 20;
    /// Bytes per entry at most.
    pub(crate) const MAX_BUFFER_SIZE: usize = 16 << 20;
    /// Ring memory (entries times bytes) at most.
    pub(crate) const MAX_RING_BYTES: usize = 4 << 30;
    /// Connections at most: connection indices are 32-bit and the done-ring holds one per
    /// connection.
    pub(crate) const MAX_CONNECTIONS: usize = 1 << 24;
    /// Buffered bytes at most: pool block numbers stay 32-bit with room to spare.
    pub(crate) const MAX_BUFFERED: usize = 1 << 40;
}

impl Config {
    /// The command line's defaults, listening on `port`.
    #[must_use]
    pub fn new(port: u16) -> Self {
        Self {
            port,
            bind: Vec::new(),
            framing: Framing::Line,
            exit: ExitPolicy::Loopback,
            quiet: false,
            ring_size: defaults::RING_SIZE,
            buffer_size: defaults::BUFFER_SIZE,
            max_line: protocol::DEFAULT_MAX_LINE,
            max_frame: protocol::DEFAULT_MAX_FRAME,
            max_connections: defaults::MAX_CONNECTIONS,
            max_pending: defaults::MAX_PENDING,
            max_buffered: defaults::MAX_BUFFERED,
            idle_timeout: Some(Duration::from_secs_f64(defaults::IDLE_TIMEOUT_SECS)),
            wait: WaitMode::Block,
        }
    }
}

impl Config {
    /// Checks the values the way the command line does, so that a server built from a
    /// `Config` made in code cannot start with settings it cannot run with.
    ///
    /// # Errors
    ///
    /// [`InvalidConfig`] naming the first bad setting and its value.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut config = server::Config::new(0);
    /// config.ring_size = 1000;
    /// let error = config.validate().unwrap_err();
    /// assert_eq!(error.to_string(), "ring size must be a power of two, got 1000");
    /// ```
    pub fn validate(&self) -> Result<(), InvalidConfig> {
        fn named(name: &'static str, value: usize) -> impl FnOnce(String) -> InvalidConfig {
            move |why| InvalidConfig(format!("{name} {why}, got {value}"))
        }
        check::ring_size(self.ring_size).map_err(named("ring size", self.ring_size))?;
        check::buffer_size(self.buffer_size).map_err(named("buffer size", self.buffer_size))?;
        check::at_least_one(self.max_line).map_err(named("max line", self.max_line))?;
        check::max_connections(self.max_connections)
            .map_err(named("max connections", self.max_connections))?;
        check::at_least_one(self.max_pending).map_err(named("max pending", self.max_pending))?;
        check::max_buffered(self.max_buffered).map_err(named("max buffered", self.max_buffered))?;
        // One connection alone must be able to finish the longest line or frame, or it would
        // wait for room that never comes.
        let unit = match self.framing {
            Framing::Line => self.max_line,
            Framing::Frame => self.max_frame as usize,
            Framing::Chunk => 0,
        };
        if self.max_buffered < unit {
            return Err(InvalidConfig(format!(
                "max buffered {} is less than the longest {} ({unit} bytes)",
                self.max_buffered,
                if self.framing == Framing::Frame {
                    "frame"
                } else {
                    "line"
                },
            )));
        }
        let ring_bytes = self.ring_size.checked_mul(self.buffer_size);
        if ring_bytes.is_none_or(|bytes| bytes > limits::MAX_RING_BYTES) {
            return Err(InvalidConfig(format!(
                "ring size {} times buffer size {} is more than the {} GiB the ring may take",
                self.ring_size,
                self.buffer_size,
                limits::MAX_RING_BYTES >> 30
            )));
        }
        Ok(())
    }
}

/// The checks on single values, shared by [`Config::validate`] and the command line's value
/// parsers; each says what the value must be.
pub(crate) mod check {
    use super::limits;

    pub(crate) fn ring_size(n: usize) -> Result<(), String> {
        if !n.is_power_of_two() {
            return Err("must be a power of two".to_owned());
        }
        at_most(n, limits::MAX_RING_SIZE)
    }

    pub(crate) fn buffer_size(n: usize) -> Result<(), String> {
        at_least_one(n)?;
        at_most(n, limits::MAX_BUFFER_SIZE)
    }

    pub(crate) fn max_connections(n: usize) -> Result<(), String> {
        at_least_one(n)?;
        at_most(n, limits::MAX_CONNECTIONS)
    }

    pub(crate) fn max_buffered(n: usize) -> Result<(), String> {
        at_least_one(n)?;
        at_most(n, limits::MAX_BUFFERED)
    }

    pub(crate) fn at_least_one(n: usize) -> Result<(), String> {
        if n == 0 {
            return Err("must be at least 1".to_owned());
        }
        Ok(())
    }

    fn at_most(n: usize, max: usize) -> Result<(), String> {
        if n > max {
            return Err(format!("must be at most {max}"));
        }
        Ok(())
    }
}

/// A [`Config`] value the server cannot run with; the message names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidConfig(pub String);

impl fmt::Display for InvalidConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for InvalidConfig {}

/// Who may stop the server with an exit line (`--exit`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum ExitPolicy {
    /// Only clients on a loopback address: 127.0.0.0/8, `::1`, `::ffff:127.x.y.z`.
    #[default]
    Loopback,
    /// Any client.
    Any,
    /// Nobody: an exit line is data like any other.
    Off,
}

impl ExitPolicy {
    /// Whether a client at `peer` may stop the server. An exit line from a client that may not
    /// is ordinary data, reversed like any other line.
    ///
    /// # Examples
    ///
    /// ```
    /// use server::ExitPolicy;
    ///
    /// let local = "127.0.0.1:5000".parse().unwrap();
    /// let remote = "192.0.2.7:5000".parse().unwrap();
    /// assert!(ExitPolicy::Loopback.allows(local));
    /// assert!(!ExitPolicy::Loopback.allows(remote));
    /// assert!(ExitPolicy::Any.allows(remote));
    /// assert!(!ExitPolicy::Off.allows(local));
    /// ```
    #[must_use]
    pub fn allows(self, peer: SocketAddr) -> bool {
        match self {
            Self::Loopback => poller::is_loopback(peer.ip()),
            Self::Any => true,
            Self::Off => false,
        }
    }
}

/// How the worker waits when the ring is empty (`--wait`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum WaitMode {
    /// Busy-spin: the lowest latency, a whole core burnt even with no clients.
    Spin,
    /// Spin, giving the core away with `sched_yield` between checks; still never sleeps.
    Yield,
    /// Spin briefly, then sleep in `epoll_wait` until the reader publishes. Idle costs no CPU.
    #[default]
    Block,
}

impl fmt::Display for ExitPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Loopback => "loopback",
            Self::Any => "any",
            Self::Off => "off",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn peer(ip: impl Into<IpAddr>) -> SocketAddr {
        SocketAddr::new(ip.into(), 40_000)
    }

    /// Tests may only use loopback addresses on the wire, so the judgment on other peers is
    /// checked here, on constructed addresses.
    #[test]
    fn loopback_policy_allows_exactly_the_loopback_peers() {
        let loopback = [
            peer(Ipv4Addr::LOCALHOST),
            peer(Ipv4Addr::new(127, 0, 0, 0)),
            peer(Ipv4Addr::new(127, 1, 2, 3)),
            peer(Ipv4Addr::new(127, 255, 255, 255)),
            peer(Ipv6Addr::LOCALHOST),
            peer(Ipv4Addr::LOCALHOST.to_ipv6_mapped()),
            peer(Ipv4Addr::new(127, 9, 8, 7).to_ipv6_mapped()),
        ];
        let remote = [
            peer(Ipv4Addr::new(10, 0, 0, 1)),
            peer(Ipv4Addr::new(192, 168, 1, 1)),
            peer(Ipv4Addr::new(128, 0, 0, 1)),
            peer(Ipv4Addr::new(126, 255, 255, 255)),
            peer(Ipv4Addr::UNSPECIFIED),
            peer(Ipv4Addr::BROADCAST),
            peer(Ipv6Addr::UNSPECIFIED),
            peer("2001:db8::1".parse::<Ipv6Addr>().unwrap()),
            peer("fe80::1".parse::<Ipv6Addr>().unwrap()),
            peer(Ipv4Addr::new(10, 0, 0, 1).to_ipv6_mapped()),
            // The deprecated IPv4-compatible form is not a loopback address.
            peer("::127.0.0.1".parse::<Ipv6Addr>().unwrap()),
        ];
        for addr in loopback {
            assert!(ExitPolicy::Loopback.allows(addr), "{addr} is loopback");
            assert!(ExitPolicy::Any.allows(addr));
            assert!(!ExitPolicy::Off.allows(addr));
        }
        for addr in remote {
            assert!(!ExitPolicy::Loopback.allows(addr), "{addr} is not loopback");
            assert!(ExitPolicy::Any.allows(addr));
            assert!(!ExitPolicy::Off.allows(addr));
        }
    }
}
