//! The synchronisation primitives the ring is built on: `std`'s normally, loom's under `cfg(loom)`.
//!
//! Every atomic, fence, thread and mutex the ring touches comes through this module, so that the
//! loom models in `tests/loom.rs` explore exactly the code that ships (the crossbeam and tokio
//! habit). Slot contents are never loom cells: the slots must stay a plain `[UnsafeCell<T>]` so
//! that batches can be handed out as slices. Instead, under loom every slot has a shadow
//! [`AccessTracker`] that records each access, which lets loom report a slot that is touched
//! by both sides without a happens-before edge between them.

#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering, fence};
#[cfg(not(loom))]
pub(crate) use std::sync::{Arc, Mutex};
#[cfg(not(loom))]
pub(crate) use std::thread;

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering, fence};
#[cfg(loom)]
pub(crate) use loom::sync::{Arc, Mutex};
#[cfg(loom)]
pub(crate) use loom::thread;

/// Tells the processor (or loom's scheduler) that this thread is spinning.
#[inline]
pub(crate) fn spin_hint() {
    #[cfg(not(loom))]
    std::hint::spin_loop();
    #[cfg(loom)]
    loom::thread::yield_now();
}

/// Under loom, one tracked cell per slot; elsewhere a zero-sized no-op.
#[cfg(loom)]
pub(crate) struct AccessTracker(loom::cell::UnsafeCell<()>);

#[cfg(loom)]
impl AccessTracker {
    pub(crate) fn new() -> Self {
        Self(loom::cell::UnsafeCell::new(()))
    }

    /// Records an exclusive access to the slot this tracker shadows.
    ///
    /// Loom panics with a causality violation if the other side's last access to the same slot
    /// does not happen-before this one.
    pub(crate) fn touch(&self) {
        self.0.with_mut(|_| ());
    }
}

/// Under loom, one tracked cell per slot; elsewhere a zero-sized no-op.
#[cfg(not(loom))]
pub(crate) struct AccessTracker;

#[cfg(not(loom))]
impl AccessTracker {
    #[inline(always)]
    pub(crate) fn new() -> Self {
        Self
    }

    #[inline(always)]
    pub(crate) fn touch(&self) {}
}
