//! Back-pressure between the threads: the worker pauses reading from a connection whose output
//! is backed up, and tells the reader when to go on.
//!
//! Each connection index has a gate, a byte of flags both threads see. The worker sets a pause
//! bit for each reason it has ([`PENDING_FULL`], [`POOL_EMPTY`]); the reader looks before every
//! read and leaves a paused connection alone (TCP flow control then slows its client down). Edge-triggered epoll will not report the bytes that
//! arrived meanwhile again, so un-pausing is not enough: the worker also sends a
//! [`Notice::Resume`] through the notice ring and wakes the reader, which then reads that
//! connection at once. `RESUME_QUEUED` keeps at most one such notice per index in the ring, so
//! the ring (two entries per connection there can be) never fills.

use std::sync::atomic::{AtomicU8, Ordering};

/// Paused because the connection's pending output passed `--max-pending`: its client does not
/// take its replies.
pub(crate) const PENDING_FULL: u8 = 1;
/// Paused because the buffer pool is used up and the connection asked for more.
pub(crate) const POOL_EMPTY: u8 = 2;
/// Every reason to pause.
pub(crate) const PAUSED: u8 = PENDING_FULL | POOL_EMPTY;
const RESUME_QUEUED: u8 = 4;

/// One gate per connection index.
pub(crate) struct Gates {
    flags: Box<[AtomicU8]>,
}

impl Gates {
    pub(crate) fn new(connections: usize) -> Self {
        Self {
            flags: (0..connections).map(|_| AtomicU8::new(0)).collect(),
        }
    }

    fn flags(&self, index: u32) -> Option<&AtomicU8> {
        let flags = self.flags.get(index as usize);
        debug_assert!(flags.is_some(), "index {index} has no gate");
        flags
    }

    /// Reader: whether reading from `index` is paused, for any of `reasons`.
    pub(crate) fn is_paused(&self, index: u32, reasons: u8) -> bool {
        self.flags(index)
            .is_some_and(|f| f.load(Ordering::Acquire) & reasons != 0)
    }

    /// Worker: stop reading from `index`, for `reason`.
    pub(crate) fn pause(&self, index: u32, reason: u8) {
        if let Some(flags) = self.flags(index) {
            flags.fetch_or(reason & PAUSED, Ordering::Release);
        }
    }

    /// Worker: `reason` no longer holds for `index`. Returns whether the caller must send a
    /// [`Notice::Resume`]: true when no reason is left and no resume notice is in the ring.
    pub(crate) fn resume(&self, index: u32, reason: u8) -> bool {
        self.flags(index).is_some_and(|flags| {
            let old = flags.fetch_update(Ordering::AcqRel, Ordering::Acquire, |f| {
                let f = f & !(reason & PAUSED);
                Some(if f & PAUSED == 0 {
                    f | RESUME_QUEUED
                } else {
                    f
                })
            });
            // The closure never refuses, so both arms hold the old value.
            let old = old.unwrap_or_else(|old| old);
            old & PAUSED & !reason == 0 && old & RESUME_QUEUED == 0
        })
    }

    /// Reader: a resume notice for `index` was taken from the ring (and its slot released).
    /// Cleared before the reader looks at the pause bits, so that a pause and resume after
    /// this point sends a new notice.
    pub(crate) fn resume_taken(&self, index: u32) {
        if let Some(flags) = self.flags(index) {
            flags.fetch_and(!RESUME_QUEUED, Ordering::AcqRel);
        }
    }

    /// Worker: the connection at `index` is over; the next one there starts unpaused. (The
    /// reader no longer reads it, and any resume notice for it is ahead of the `Done` notice
    /// in the ring.)
    pub(crate) fn clear_paused(&self, index: u32) {
        if let Some(flags) = self.flags(index) {
            flags.fetch_and(!PAUSED, Ordering::Release);
        }
    }
}

/// What the worker tells the reader about a connection index, through the notice ring.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Notice {
    /// The worker is done with the index: it may be given to a new connection.
    Done(u32),
    /// Reading from the index was paused and may go on: read it now.
    Resume(u32),
}

/// The bit that marks a resume notice; indices stay below it (see `limits::MAX_CONNECTIONS`).
const RESUME_BIT: u32 = 1 << 31;

impl Notice {
    pub(crate) fn encode(self) -> u32 {
        match self {
            Self::Done(index) => index,
            Self::Resume(index) => index | RESUME_BIT,
        }
    }

    pub(crate) fn decode(word: u32) -> Self {
        if word & RESUME_BIT == 0 {
            Self::Done(word)
        } else {
            Self::Resume(word & !RESUME_BIT)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_resume_is_notified_once_until_the_reader_takes_it() {
        let gates = Gates::new(4);
        assert!(!gates.is_paused(2, PAUSED));
        gates.pause(2, PENDING_FULL);
        assert!(gates.is_paused(2, PAUSED) && !gates.is_paused(1, PAUSED));
        assert!(
            gates.resume(2, PENDING_FULL),
            "the first resume sends a notice"
        );
        assert!(!gates.is_paused(2, PAUSED));
        gates.pause(2, PENDING_FULL);
        assert!(
            !gates.resume(2, PENDING_FULL),
            "the first notice is still in the ring"
        );
        gates.resume_taken(2);
        gates.pause(2, POOL_EMPTY);
        assert!(
            gates.resume(2, POOL_EMPTY),
            "taken: the next resume sends a notice again"
        );
        gates.pause(2, PENDING_FULL);
        gates.clear_paused(2);
        assert!(!gates.is_paused(2, PAUSED));
    }

    #[test]
    fn reasons_are_kept_apart_and_the_last_one_gone_resumes() {
        let gates = Gates::new(1);
        gates.pause(0, PENDING_FULL);
        gates.pause(0, POOL_EMPTY);
        assert!(gates.is_paused(0, PENDING_FULL) && gates.is_paused(0, POOL_EMPTY));
        assert!(
            !gates.resume(0, POOL_EMPTY),
            "still paused for its pending output"
        );
        assert!(gates.is_paused(0, PENDING_FULL) && !gates.is_paused(0, POOL_EMPTY));
        assert!(gates.resume(0, PENDING_FULL), "no reason left: resume");
        assert!(!gates.is_paused(0, PENDING_FULL | POOL_EMPTY));
    }

    #[test]
    fn notices_round_trip() {
        for notice in [
            Notice::Done(0),
            Notice::Resume(0),
            Notice::Done(crate::config::limits::MAX_CONNECTIONS as u32 - 1),
            Notice::Resume(crate::config::limits::MAX_CONNECTIONS as u32 - 1),
        ] {
            assert_eq!(Notice::decode(notice.encode()), notice);
        }
    }
}
