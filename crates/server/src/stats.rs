//! What the reader counts, and the copy of it the worker reads for its periodic `debug` line.

use std::sync::atomic::{AtomicU64, Ordering};

/// What the reader counted, for the summary.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct ReaderStats {
    pub(crate) accepted: u64,
    pub(crate) rejected: u64,
    pub(crate) shed: u64,
    pub(crate) events: u64,
    pub(crate) bytes_in: u64,
}

/// The reader's counts as of its last round, for the other thread. Each field has one writer
/// (the reader) and is only ever read for a log line, so relaxed stores and loads are enough.
#[derive(Debug, Default)]
pub(crate) struct SharedReaderStats {
    accepted: AtomicU64,
    rejected: AtomicU64,
    shed: AtomicU64,
    events: AtomicU64,
    bytes_in: AtomicU64,
}

impl SharedReaderStats {
    pub(crate) fn publish(&self, stats: &ReaderStats) {
        self.accepted.store(stats.accepted, Ordering::Relaxed);
        self.rejected.store(stats.rejected, Ordering::Relaxed);
        self.shed.store(stats.shed, Ordering::Relaxed);
        self.events.store(stats.events, Ordering::Relaxed);
        self.bytes_in.store(stats.bytes_in, Ordering::Relaxed);
    }

    pub(crate) fn load(&self) -> ReaderStats {
        ReaderStats {
            accepted: self.accepted.load(Ordering::Relaxed),
            rejected: self.rejected.load(Ordering::Relaxed),
            shed: self.shed.load(Ordering::Relaxed),
            events: self.events.load(Ordering::Relaxed),
            bytes_in: self.bytes_in.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn published_counts_are_read_back() {
        let shared = SharedReaderStats::default();
        let stats = ReaderStats {
            accepted: 1,
            rejected: 2,
            shed: 3,
            events: 4,
            bytes_in: 5,
        };
        shared.publish(&stats);
        assert_eq!(shared.load(), stats);
    }
}
