//! The synchronisation primitives the ring is built on: `std`'s normally, loom's under `cfg(loom)`.
//!
//! Every atomic, fence, thread and mutex the ring touches comes through this module, so that the
//! loom models in `tests/loom.rs` explore exactly the code that ships (the crossbeam and tokio
//! habit). Slot contents are never loom cells: the slots must stay a plain `[UnsafeCell<T>]` so
//! that batches can be handed out as slices. Instead, under loom every slot has a shadow
//! [`AccessTrackers`] that records each access, which lets loom report a slot that is touched
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

/// Under loom, one tracked cell per slot, so that loom sees every slot access; elsewhere a
/// zero-sized no-op that compiles to nothing.
#[cfg(loom)]
pub(crate) struct AccessTrackers(Box<[loom::cell::UnsafeCell<()>]>);

#[cfg(loom)]
impl AccessTrackers {
    pub(crate) fn new(capacity: usize) -> Self {
        Self(
            (0..capacity)
                .map(|_| loom::cell::UnsafeCell::new(()))
                .collect(),
        )
    }

    /// Records an exclusive access to `len` slots from `index`, wrapping around.
    ///
    /// Loom panics with a causality violation if the other side's last access to one of them
    /// does not happen-before this one.
    pub(crate) fn touch(&self, index: usize, len: usize) {
        for i in 0..len {
            self.0[(index + i) % self.0.len()].with_mut(|_| ());
        }
    }
}

/// Under loom, one tracked cell per slot, so that loom sees every slot access; elsewhere a
/// zero-sized no-op that compiles to nothing.
#[cfg(not(loom))]
pub(crate) struct AccessTrackers;

#[cfg(not(loom))]
impl AccessTrackers {
    #[inline(always)]
    pub(crate) fn new(_capacity: usize) -> Self {
        Self
    }

    #[inline(always)]
    pub(crate) fn touch(&self, _index: usize, _len: usize) {}
}
