//! What the three workloads share: the clock, the tally of results, connecting, and the
//! non-blocking read and write loops.

use crate::procstat::ServerUsage;
use crate::{Error, Report, Workload};
use hdrhistogram::Histogram;
use poller::{Interest, Stream};
use rustix::io::Errno;
use rustix::net::{self, AddressFamily, SocketFlags, SocketType, sockopt};
use std::io::{self, ErrorKind};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

/// How long setting up one connection may take before the run gives up on the server.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long the replies still owed at the end of a timed run may take: a healthy server answers
/// in milliseconds, so what is missing after this is counted as short.
pub(crate) const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Every connection is watched for everything, edge-triggered: one registration for its life,
/// no `epoll_ctl` per message. Writable edges that come while nothing is pending cost a flag
/// test.
pub(crate) fn interest() -> Interest {
    Interest::READABLE | Interest::WRITABLE | Interest::READ_CLOSED | Interest::EDGE
}

/// Nanoseconds since the start of the run: one `clock_gettime` (vDSO, no system call).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Clock {
    base: Instant,
}

impl Clock {
    pub(crate) fn new() -> Self {
        Self {
            base: Instant::now(),
        }
    }

    pub(crate) fn now(&self) -> u64 {
        nanos(self.base.elapsed())
    }
}

/// A duration in nanoseconds, saturating (584 years is enough for a benchmark).
pub(crate) fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

/// The latency histogram every report carries: nanoseconds from 1 ns to an hour, three
/// significant digits (about 250 KiB).
///
/// # Panics
///
/// Never: the bounds are constants that `hdrhistogram` accepts.
#[must_use]
pub fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000_000, 3).expect("constant, valid bounds")
}

/// What a run counted.
#[derive(Debug)]
pub(crate) struct Tally {
    pub(crate) messages: u64,
    pub(crate) bytes: u64,
    pub(crate) latency: Histogram<u64>,
    pub(crate) mismatches: u64,
    pub(crate) resets: u64,
    pub(crate) short: u64,
}

impl Tally {
    /// The report of a run of `workload` whose measured phase lasted `elapsed`.
    pub(crate) fn into_report(
        self,
        workload: Workload,
        elapsed: Duration,
        server: Option<ServerUsage>,
    ) -> Report {
        Report {
            workload,
            elapsed,
            messages: self.messages,
            bytes: self.bytes,
            latency_ns: self.latency,
            mismatches: self.mismatches,
            resets: self.resets,
            short: self.short,
            server,
        }
    }

    pub(crate) fn new() -> Self {
        Self {
            messages: 0,
            bytes: 0,
            latency: latency_histogram(),
            mismatches: 0,
            resets: 0,
            short: 0,
        }
    }

    pub(crate) fn errors(&self) -> u64 {
        self.mismatches + self.resets + self.short
    }
}

/// A progress line on stderr every second, for long runs; silent otherwise.
#[derive(Debug)]
pub(crate) struct Progress {
    enabled: bool,
    next: u64,
    last_messages: u64,
    last_at: u64,
}

impl Progress {
    const PERIOD: u64 = 1_000_000_000;

    pub(crate) fn new(enabled: bool) -> Self {
        Self {
            enabled,
            next: Self::PERIOD,
            last_messages: 0,
            last_at: 0,
        }
    }

    /// When the next line is due, if lines are printed at all.
    pub(crate) fn due(&self) -> Option<u64> {
        self.enabled.then_some(self.next)
    }

    /// Prints a line if one is due at `now`.
    pub(crate) fn tick(&mut self, now: u64, phase: &str, tally: &Tally) {
        if !self.enabled || now < self.next {
            return;
        }
        let interval = now.saturating_sub(self.last_at).max(1) as f64 / 1e9;
        let rate = tally.messages.saturating_sub(self.last_messages) as f64 / interval;
        eprintln!(
            "progress: {:.0} s {phase}: {rate:.0} msgs/s, {} messages, {} errors",
            now as f64 / 1e9,
            tally.messages,
            tally.errors()
        );
        self.last_messages = tally.messages;
        self.last_at = now;
        // Skip ticks missed while busy rather than printing a burst of them.
        while self.next <= now {
            self.next += Self::PERIOD;
        }
    }
}

/// A client socket for `addr`, close-on-exec, with its TCP congestion control set to
/// `congestion` if one is given.
///
/// The algorithm is set before the connect on purpose: one set afterwards is swapped in after the
/// first one was set up, and on Linux a socket that started with `bbr` keeps being paced.
pub(crate) fn socket(
    addr: SocketAddr,
    congestion: Option<&str>,
    flags: SocketFlags,
) -> io::Result<OwnedFd> {
    let family = match addr {
        SocketAddr::V4(_) => AddressFamily::INET,
        SocketAddr::V6(_) => AddressFamily::INET6,
    };
    let socket = net::socket_with(
        family,
        SocketType::STREAM,
        flags | SocketFlags::CLOEXEC,
        None,
    )?;
    if let Some(name) = congestion {
        sockopt::set_tcp_congestion(&socket, name)?;
    }
    Ok(socket)
}

/// Connects with a blocking `connect` (setup is not measured), then makes the socket
/// non-blocking with `TCP_NODELAY`, so small requests leave at once.
pub(crate) fn connect(addr: SocketAddr, congestion: Option<&str>) -> Result<Stream, Error> {
    let setup = || -> io::Result<Stream> {
        let socket = socket(addr, congestion, SocketFlags::empty())?;
        // A blocking connect waits at most the send timeout; past it, Linux says `EINPROGRESS`.
        sockopt::set_socket_timeout(&socket, sockopt::Timeout::Send, Some(CONNECT_TIMEOUT))?;
        match net::connect(&socket, &addr) {
            Ok(()) => {}
            Err(Errno::INPROGRESS) => {
                return Err(io::Error::new(
                    ErrorKind::TimedOut,
                    format!("no connection within {CONNECT_TIMEOUT:?}"),
                ));
            }
            Err(err) => return Err(err.into()),
        }
        let stream = TcpStream::from(socket);
        stream.set_nonblocking(true)?;
        stream.set_nodelay(true)?;
        Ok(Stream::from(stream))
    };
    setup().map_err(|source| Error::Connect { addr, source })
}

/// Sends `out[*pos..]` until it is all sent or the socket takes no more, advancing `*pos`.
///
/// A send that takes less than it was offered means the send buffer is full; the kernel has
/// then marked the socket to report writable when room frees up, so the loop stops there
/// rather than spend a system call on the `EAGAIN` that would follow.
pub(crate) fn flush(stream: &Stream, out: &[u8], pos: &mut usize) -> io::Result<()> {
    while *pos < out.len() {
        let offered = out.len() - *pos;
        match stream.send(&out[*pos..]) {
            Ok(sent) => {
                *pos += sent;
                if sent < offered {
                    break;
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The peer's bytes were not the reply owed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Mismatch;

/// How a [`read_available`] ended.
#[derive(Debug)]
pub(crate) enum ReadEnd {
    /// Nothing more to read for now; a new edge will say when there is.
    Drained,
    /// The peer closed its side (after the bytes it sent, which were all handed over).
    Eof,
    /// The read failed: reset, or worse.
    Failed,
    /// The callback found bytes that were not owed.
    Mismatch,
}

/// Reads everything the socket has, handing each piece to `on_data` as it comes.
///
/// A read that fills less than the buffer took everything the socket had at that moment, and
/// anything arriving later raises a new edge, so the loop stops there instead of making the
/// `EAGAIN` read: one system call fewer per wake-up. The exception is an event that already
/// reported the end of the stream or an error (`closing`): no new edge comes for those, so the
/// loop reads on until it sees them.
pub(crate) fn read_available(
    stream: &Stream,
    buf: &mut [u8],
    closing: bool,
    mut on_data: impl FnMut(&[u8]) -> Result<(), Mismatch>,
) -> ReadEnd {
    loop {
        match stream.read(buf) {
            Ok(0) => return ReadEnd::Eof,
            Ok(n) => {
                if on_data(&buf[..n]).is_err() {
                    return ReadEnd::Mismatch;
                }
                if n < buf.len() && !closing {
                    return ReadEnd::Drained;
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => return ReadEnd::Drained,
            Err(_) => return ReadEnd::Failed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_congestion_control_is_set_before_the_connect() {
        let addr: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let fd = socket(addr, Some("reno"), SocketFlags::empty()).unwrap();
        assert_eq!(sockopt::tcp_congestion(&fd).unwrap(), "reno");
        let err = socket(addr, Some("no-such-algorithm"), SocketFlags::empty()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    }

    #[test]
    fn a_connection_gets_the_congestion_control_asked_for() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let stream = connect(addr, Some("reno")).unwrap();
        assert_eq!(stream.congestion().unwrap(), "reno");
        assert!(stream.nodelay().unwrap());
        let stream = connect(addr, None).unwrap();
        let default = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_congestion_control").unwrap();
        assert_eq!(stream.congestion().unwrap(), default.trim());
    }
}
