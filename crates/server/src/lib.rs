//! The two-thread epoll reverse server, as a library: bind, then run until stopped.
//!
//! Thread 1, the **reader**, accepts connections and reads client bytes in an edge-triggered
//! epoll loop, each read landing straight in a preallocated ring slot that it publishes with
//! the connection's identity (index and generation). Thread 2, the **worker**, consumes the
//! ring in batches, frames the bytes (`line`, `chunk` or `frame`), reverses them in place and
//! writes them back, keeping what a socket will not take in that connection's pending output.
//! A client's exit line, SIGINT/SIGTERM (once [`Server::stop_on_signals`] is called) or a
//! [`StopHandle`] stops the server: it answers everything already received, gives clients a
//! few seconds to take their replies, and returns a [`Summary`].
//!
//! `main.rs` is a thin command line over this; tests run the same server in process.
//!
//! # Examples
//!
//! ```
//! use std::io::{BufRead, BufReader, Write};
//! use std::net::TcpStream;
//!
//! let mut config = server::Config::new(0); // port 0: any free port
//! config.quiet = true;
//! let server = server::Server::bind(config).unwrap();
//! let addr = server.local_addrs()[0];
//! let running = std::thread::spawn(move || server.run());
//!
//! let mut client = TcpStream::connect(addr).unwrap();
//! client.write_all(b"hello\nexit\n").unwrap();
//! let mut reply = String::new();
//! BufReader::new(&client).read_line(&mut reply).unwrap();
//! assert_eq!(reply, "olleh\n");
//!
//! let summary = running.join().unwrap().unwrap();
//! assert_eq!(summary.reason, Some(server::StopReason::Exit { peer: client.local_addr().unwrap() }));
//! ```

#![forbid(unsafe_code)]

mod activity;
mod buffers;
pub mod cli;
mod config;
mod conn;
mod control;
mod gate;
mod reader;
mod slot;
mod stats;
mod worker;

pub use config::{Config, ExitPolicy, InvalidConfig, WaitMode};
pub use control::{StopHandle, StopReason};

use control::Control;
use gate::Gates;
use log::warn;
use poller::{Listener, Waker};
use reader::Reader;
use slot::Slot;
use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::thread;
use std::time::{Duration, Instant};
use worker::Worker;

/// A server with its listening sockets bound, ready to [`run`](Self::run).
#[derive(Debug)]
pub struct Server {
    config: Config,
    listeners: Vec<Listener>,
    local_addrs: Vec<SocketAddr>,
    control: Arc<Control>,
    /// The read end of the self-pipe that SIGINT and SIGTERM write to.
    signals: Option<UnixStream>,
}

/// Why [`Server::bind`] failed.
#[derive(Debug)]
pub enum BindError {
    /// A setting the server cannot run with.
    Config(InvalidConfig),
    /// A listening address that could not be bound.
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: io::Error,
    },
    /// A descriptor the server needs could not be made.
    Setup(io::Error),
}

impl fmt::Display for BindError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Config(invalid) => write!(f, "invalid configuration: {invalid}"),
            Self::Listen { addr, source } => {
                write!(f, "cannot listen on {addr}: {}", plain(source))
            }
            Self::Setup(source) => write!(f, "cannot set up the server: {}", plain(source)),
        }
    }
}

impl std::error::Error for BindError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Config(invalid) => Some(invalid),
            Self::Listen { source, .. } | Self::Setup(source) => Some(source),
        }
    }
}

/// An I/O error's message without std's ` (os error N)` suffix: `Address already in use`.
fn plain(error: &io::Error) -> String {
    let message = error.to_string();
    match error.raw_os_error() {
        Some(code) => message
            .strip_suffix(&format!(" (os error {code})"))
            .map_or_else(|| message.clone(), str::to_owned),
        None => message,
    }
}

/// What a run did, printed as the `summary:` line when the server stops.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Summary {
    /// Why it stopped.
    pub reason: Option<StopReason>,
    /// Connections served.
    pub connections: u64,
    /// Connections closed at once because `--max-connections` was reached.
    pub rejected: u64,
    /// Queued connections closed because the process ran out of descriptors.
    pub shed: u64,
    /// Events through the ring (opens, reads, ends).
    pub ring_events: u64,
    /// Bytes read from clients.
    pub bytes_in: u64,
    /// Bytes written to clients.
    pub bytes_out: u64,
    /// Replies a socket did not take whole: the rest waited in pending output for EPOLLOUT.
    pub short_writes: u64,
    /// Connections that had not taken all their replies when the stop's grace period (5 s)
    /// ran out.
    pub left_pending: u64,
    /// Connections closed because they made no progress for `--idle-timeout`.
    pub timed_out: u64,
    /// Times reading from a connection was paused for back-pressure (its pending output passed
    /// `--max-pending`, or the buffer pool ran out).
    pub pauses: u64,
    /// The most output pending for one connection at once, in bytes.
    pub pending_high_water: u64,
    /// The most bytes buffered for all connections at once (pool blocks in use).
    pub buffered_high_water: u64,
    /// How long it ran.
    pub elapsed: Duration,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(reason) = &self.reason {
            write!(f, "stopped by {reason}; ")?;
        }
        write!(
            f,
            "{} connections ({} rejected, {} shed, {} timed out), {} ring events, {} bytes in, {} bytes out, {} short writes, {} pauses, pending high-water {} bytes, buffered high-water {} bytes, {} left with pending output, ran {:.3} s",
            self.connections,
            self.rejected,
            self.shed,
            self.timed_out,
            self.ring_events,
            self.bytes_in,
            self.bytes_out,
            self.short_writes,
            self.pauses,
            self.pending_high_water,
            self.buffered_high_water,
            self.left_pending,
            self.elapsed.as_secs_f64()
        )
    }
}

impl Server {
    /// Binds the listening sockets `config` names.
    ///
    /// With no `bind` addresses it listens on 127.0.0.1 and, where it can, on `::1` with the
    /// same port (with port 0, the one 127.0.0.1 got); when `::1` cannot be bound it logs a
    /// warning and serves IPv4 alone. Addresses given explicitly must all bind; with port 0
    /// they all take the port the first one got.
    ///
    /// # Errors
    ///
    /// [`BindError`]: a setting [`Config::validate`] refuses, an address that could not be
    /// bound, or the eventfd the reader needs.
    pub fn bind(config: Config) -> Result<Self, BindError> {
        config.validate().map_err(BindError::Config)?;
        let mut listeners = Vec::new();
        let mut local_addrs = Vec::new();
        let mut port = config.port;
        let explicit = !config.bind.is_empty();
        let addrs: Vec<IpAddr> = if explicit {
            config.bind.clone()
        } else {
            vec![Ipv4Addr::LOCALHOST.into(), Ipv6Addr::LOCALHOST.into()]
        };
        for (n, ip) in addrs.into_iter().enumerate() {
            let addr = SocketAddr::new(ip, port);
            let bound = Listener::bind(addr).and_then(|l| Ok((l.local_addr()?, l)));
            match bound {
                Ok((local, listener)) => {
                    port = local.port();
                    local_addrs.push(local);
                    listeners.push(listener);
                }
                Err(source) if !explicit && n > 0 => {
                    warn!(
                        "cannot listen on {addr}: {}; serving IPv4 only",
                        plain(&source)
                    );
                }
                Err(source) => return Err(BindError::Listen { addr, source }),
            }
        }
        let waker = Waker::new().map_err(BindError::Setup)?;
        Ok(Self {
            config,
            listeners,
            local_addrs,
            control: Arc::new(Control::new(waker)),
            signals: None,
        })
    }

    /// The addresses it listens on, with the real port.
    #[must_use]
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.local_addrs
    }

    /// A handle that stops the server from another thread.
    #[must_use]
    pub fn stop_handle(&self) -> StopHandle {
        StopHandle {
            control: Arc::clone(&self.control),
        }
    }

    /// Makes SIGINT and SIGTERM stop the server the way an exit line does. A second one while
    /// the server is stopping (it may give clients up to 5 seconds to take their replies) ends
    /// the process at once with exit status 1: the impatient operator's double Ctrl-C.
    ///
    /// The handlers stay installed for the life of the process, so call this only in a
    /// process that is this server; a library user may prefer a [`StopHandle`].
    ///
    /// # Errors
    ///
    /// If the self-pipe cannot be made or the handlers cannot be installed.
    pub fn stop_on_signals(&mut self) -> io::Result<()> {
        let (pipe, writer) = UnixStream::pair()?;
        pipe.set_nonblocking(true)?;
        let signalled = Arc::new(AtomicBool::new(false));
        for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            // Actions run in the order they are registered: the exit comes first, so it fires
            // only from the second signal on.
            signal_hook::flag::register_conditional_shutdown(signal, 1, Arc::clone(&signalled))?;
            signal_hook::flag::register(signal, Arc::clone(&signalled))?;
            signal_hook::low_level::pipe::register(signal, writer.try_clone()?)?;
        }
        self.signals = Some(pipe);
        Ok(())
    }

    /// Runs the server on this thread (the reader) and one more (the worker) until it is
    /// stopped, then returns what it did.
    ///
    /// # Errors
    ///
    /// If the ring or an epoll instance cannot be set up, if `epoll_wait` fails, or if the
    /// worker thread panics.
    pub fn run(mut self) -> io::Result<Summary> {
        let started = Instant::now();
        let config = &self.config;
        let block = config.wait == WaitMode::Block;
        let strategy = match config.wait {
            WaitMode::Spin => ring::WaitStrategy::Spin,
            WaitMode::Yield => ring::WaitStrategy::Yield,
            WaitMode::Block => ring::WaitStrategy::Block,
        };
        // The worker sleeps in its epoll only with `block`; the reader sleeps in its epoll
        // whenever the ring is full, so it always has a hook.
        let worker_waker = if block {
            Some(Arc::new(Waker::new()?))
        } else {
            None
        };
        let mut builder = ring::Builder::new(config.ring_size).wait_strategy(strategy);
        let control = Arc::clone(&self.control);
        builder = builder.wake_producer_with(move || control.wake_reader());
        if let Some(waker) = &worker_waker {
            let waker = Arc::clone(waker);
            builder = builder.wake_consumer_with(move || {
                // Fails only when the counter is full, and then a wake-up is pending.
                let _ = waker.wake();
            });
        }
        let buffer_size = config.buffer_size;
        let (producer, consumer) = builder
            .build(|_| Slot::new(buffer_size))
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        // Worker to reader: notices about connection indices (done with it, resume reading
        // it). At most one of each kind per index is in flight, so a ring of twice the
        // connection cap never fills. The reader looks at it every round and the worker wakes
        // it after a resume, so it needs no hook.
        let gates = Arc::new(Gates::new(config.max_connections));
        let notice_slots = (2 * config.max_connections).next_power_of_two();
        let (notice_tx, notice_rx) = ring::Builder::new(notice_slots)
            .wait_strategy(ring::WaitStrategy::Spin)
            .build(|_| 0u32)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;

        let worker = Worker::new(
            consumer,
            notice_tx,
            Arc::clone(&gates),
            worker_waker,
            Arc::clone(&self.control),
            config,
        )?;
        let signal_pipe = self.signals.take();
        let reader = Reader::new(
            std::mem::take(&mut self.listeners),
            signal_pipe,
            Arc::clone(&self.control),
            producer,
            notice_rx,
            gates,
            config,
        )?;
        let worker = thread::Builder::new()
            .name("worker".into())
            .spawn(move || worker.run())?;
        let read = reader.run();
        // The reader is dropped by now, and with it the producer: the worker sees the end of
        // the ring once it has handled every event.
        let worked = match worker.join() {
            Ok(result) => result,
            Err(_) => Err(io::Error::other("the worker thread panicked")),
        };
        let (read, worked) = (read?, worked?);
        // The worker handles every event the reader published before it sees the end.
        debug_assert_eq!(read.events, worked.events, "ring events lost");
        Ok(Summary {
            reason: self.control.reason(),
            connections: read.accepted,
            rejected: read.rejected,
            shed: read.shed,
            ring_events: read.events,
            bytes_in: read.bytes_in,
            bytes_out: worked.bytes_out,
            short_writes: worked.short_writes,
            left_pending: worked.left_pending,
            timed_out: worked.timed_out,
            pauses: worked.pauses,
            pending_high_water: worked.pending_high_water,
            buffered_high_water: worked.buffered_high_water,
            elapsed: started.elapsed(),
        })
    }
}
