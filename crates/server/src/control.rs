//! Stopping the server: the reason, the flag both threads read, and the handle that sets it.

use crate::stats::SharedReaderStats;
use poller::Waker;
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// Why the server stopped, for the summary line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// A client sent an exit line and the `--exit` policy honoured it.
    Exit {
        /// The client that sent it.
        peer: SocketAddr,
    },
    /// SIGINT or SIGTERM.
    Signal,
    /// [`StopHandle::stop`] was called.
    Handle,
    /// The worker thread ended without being asked to (it panicked).
    WorkerGone,
}

impl fmt::Display for StopReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Exit { peer } => write!(f, "exit from {peer}"),
            Self::Signal => f.write_str("signal"),
            Self::Handle => f.write_str("stop handle"),
            Self::WorkerGone => f.write_str("worker gone"),
        }
    }
}

/// What both threads and every [`StopHandle`] share: the stop request and the reader's waker.
#[derive(Debug)]
pub(crate) struct Control {
    stopping: AtomicBool,
    reason: Mutex<Option<StopReason>>,
    /// Wakes the reader from `epoll_wait`; also the ring's hook for "slots were released".
    pub(crate) reader_waker: Waker,
    /// The reader's counts, for the worker's periodic stats line.
    pub(crate) reader_stats: SharedReaderStats,
}

impl Control {
    pub(crate) fn new(reader_waker: Waker) -> Self {
        Self {
            stopping: AtomicBool::new(false),
            reason: Mutex::new(None),
            reader_waker,
            reader_stats: SharedReaderStats::default(),
        }
    }

    /// Asks the reader to stop; the first reason given is the one kept.
    pub(crate) fn request_stop(&self, reason: StopReason) {
        {
            let mut kept = self.reason.lock().unwrap_or_else(PoisonError::into_inner);
            if kept.is_none() {
                *kept = Some(reason);
            }
        }
        // Release: a reader that sees the flag sees the reason.
        self.stopping.store(true, Ordering::Release);
        self.wake_reader();
    }

    pub(crate) fn stop_requested(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }

    pub(crate) fn reason(&self) -> Option<StopReason> {
        self.reason
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn wake_reader(&self) {
        // An eventfd write fails only if its counter would overflow, and then a wake-up is
        // pending anyway. (The reader watches it edge-triggered and never reads it back: the
        // counter grows by one per wake, and 2^64 wakes do not happen.)
        let _ = self.reader_waker.wake();
    }
}

/// Stops a running server from another thread, as the exit command or a signal would: it
/// stops accepting, answers what every connection already sent, and returns from
/// [`Server::run`](crate::Server::run).
///
/// # Examples
///
/// ```
/// let server = server::Server::bind(server::Config::new(0)).unwrap();
/// let stop = server.stop_handle();
/// let running = std::thread::spawn(move || server.run());
/// stop.stop();
/// let summary = running.join().unwrap().unwrap();
/// assert_eq!(summary.reason, Some(server::StopReason::Handle));
/// ```
#[derive(Clone, Debug)]
pub struct StopHandle {
    pub(crate) control: Arc<Control>,
}

impl StopHandle {
    /// Asks the server to stop; returns at once. Calling it again does nothing more.
    pub fn stop(&self) {
        self.control.request_stop(StopReason::Handle);
    }
}
