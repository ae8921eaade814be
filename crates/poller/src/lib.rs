//! A thin, safe layer over [rustix] for an edge-triggered epoll server on Linux.
//!
//! Four types and one function, each a small wrapper over the system calls it names:
//!
//! - [`Poller`] is an epoll instance. Descriptors are registered with a [`Token`] and an
//!   [`Interest`]; [`Poller::wait`] fills a preallocated [`Events`] list and never allocates.
//! - [`Listener`] is a listening TCP socket. [`Listener::accept_all`] runs `accept4` until the
//!   queue is empty, which is what an edge-triggered listener needs, and keeps going when the
//!   process runs out of descriptors (`EMFILE`) instead of stalling.
//! - [`Stream`] is a connected TCP socket: `recv`, `send`, `sendmsg` and the socket options a
//!   server sets.
//! - [`Waker`] is an eventfd: any thread can wake a thread blocked in [`Poller::wait`].
//! - [`is_loopback`] says whether a peer address is this machine.
//!
//! # Examples
//!
//! A listener and a connection, both edge-triggered, on one poller:
//!
//! ```
//! use poller::{Events, Interest, Listener, Poller, Token};
//! use std::io::Write;
//! use std::net::{SocketAddr, TcpStream};
//! use std::time::Duration;
//!
//! const LISTENER: Token = Token(0);
//! const CONNECTION: Token = Token(1);
//! // Every wait below is bounded, so a broken machine fails the example instead of hanging it.
//! let timeout = Some(Duration::from_secs(10));
//!
//! let mut listener = Listener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))?;
//! let poller = Poller::new()?;
//! poller.add(&listener, LISTENER, Interest::READABLE | Interest::EDGE)?;
//!
//! let mut client = TcpStream::connect(listener.local_addr()?)?;
//! client.write_all(b"hello\n")?;
//!
//! let mut events = Events::with_capacity(64);
//! poller.wait(&mut events, timeout)?;
//! assert_eq!(events.iter().next().map(|event| event.token()), Some(LISTENER));
//!
//! // Edge-triggered: take every queued connection now, there will be no reminder.
//! let mut streams = Vec::new();
//! let drained = listener.accept_all(|stream, _peer| streams.push(stream))?;
//! assert_eq!((drained.accepted, drained.shed), (1, 0));
//!
//! let stream = &streams[0];
//! let interest = Interest::READABLE | Interest::READ_CLOSED | Interest::EDGE;
//! poller.add(stream, CONNECTION, interest)?;
//! poller.wait(&mut events, timeout)?;
//! assert!(events.iter().any(|event| event.token() == CONNECTION && event.is_readable()));
//!
//! let mut buffer = [0; 64];
//! let n = stream.read(&mut buffer)?;
//! assert_eq!(&buffer[..n], b"hello\n");
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! # Guarantees
//!
//! - Every descriptor the crate creates is close-on-exec, so a child process never inherits a
//!   client's connection, and every socket it creates is non-blocking.
//! - `EINTR` is retried inside every call that can block or be interrupted (`wait`, `accept`,
//!   `read`, `send`), so callers never see
//!   [`Interrupted`](std::io::ErrorKind::Interrupted).
//! - Sends use `MSG_NOSIGNAL`: writing to a closed connection is an `EPIPE` error, never a
//!   `SIGPIPE`, even in a host program that did not ignore the signal (Rust binaries do).
//! - [`Poller::wait`] does not allocate; nothing else does after construction either, apart from
//!   what the kernel does.
//! - No `unsafe` code: rustix makes the system calls safe.
//!
//! # What it deliberately does not do
//!
//! It is Linux-only, has no timers, keeps no table of registrations (a [`Token`] is whatever
//! the caller says it is), implements no `Read`/`Write` traits and knows nothing of futures.
//! Those belong to the program that uses it; this crate only makes the system calls hard to get
//! wrong.

#![forbid(unsafe_code)]

mod addr;
mod listener;
mod poll;
mod stream;
mod waker;

pub use addr::is_loopback;
pub use listener::{DEFAULT_BACKLOG, Drained, Listener};
pub use poll::{Event, Events, Interest, Iter, Poller, Token};
pub use stream::{IOV_MAX, Stream};
pub use waker::Waker;
