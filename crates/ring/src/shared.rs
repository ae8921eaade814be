//! The state both endpoints share: the slots, the two sequences, and the sleep/wake protocol.
//!
//! # Sequences
//!
//! A *sequence* is a `u64` that counts events since the ring was built; slot `s & mask` holds
//! event `s`. Two sequences are shared, each written by one side only:
//!
//! - `published` (written by the producer): every event `< published` is readable.
//! - `released` (written by the consumer): every event `< released` is done with, so its slot
//!   may be claimed again.
//!
//! They always satisfy `released <= published <= released + capacity`. Neither wraps in practice
//! (at 10⁹ events a second a `u64` lasts for 584 years); the arithmetic is checked in debug
//! builds.
//!
//! # Memory ordering
//!
//! - The producer writes slots, then stores `published` with `Release`; the consumer loads it with
//!   `Acquire` before it reads those slots. That pair hands the slot contents over.
//! - The consumer finishes with slots, then stores `released` with `Release`; the producer loads
//!   it with `Acquire` before it claims those slots again. That pair hands the slots back.
//! - The `closed` flags are stored with `Release` after the side's last publish or release and
//!   loaded with `Acquire`, so a side that sees the flag also sees the last sequence.
//! - Sleeping is a Dekker handshake, explained on [`Sleeper`].

use crate::sync::{
    AccessTrackers, AtomicBool, AtomicU8, AtomicU64, Mutex, Ordering, fence, thread,
};
use crossbeam_utils::CachePadded;
use std::cell::UnsafeCell;
use std::ptr::NonNull;

/// What wakes a side that sleeps outside the ring (an eventfd write, say).
pub(crate) type WakeHook = Box<dyn Fn() + Send + Sync>;

pub(crate) struct Shared<T> {
    /// Written by the producer only; read by the consumer when its cached copy runs out.
    pub(crate) published: CachePadded<AtomicU64>,
    /// Written by the consumer only; read by the producer when its cached copy runs out.
    pub(crate) released: CachePadded<AtomicU64>,
    /// The consumer's sleep announcement: written by the consumer when it goes to sleep, read by
    /// the producer after every publish (when the consumer can sleep at all).
    pub(crate) consumer_sleep: CachePadded<Sleeper>,
    /// The producer's sleep announcement, the mirror of `consumer_sleep`.
    pub(crate) producer_sleep: CachePadded<Sleeper>,
    /// Set once each, when an endpoint is dropped. Written twice in the ring's life, so reading
    /// it costs a cache hit.
    pub(crate) producer_closed: AtomicBool,
    pub(crate) consumer_closed: AtomicBool,
    slots: Box<[UnsafeCell<T>]>,
    /// Under loom, one tracked cell per slot (see `sync.rs`); elsewhere nothing.
    pub(crate) trackers: AccessTrackers,
}

// SAFETY: `Shared` is reachable only through one `Producer` and one `Consumer`, neither of which
// is `Sync`. Each slot is accessed by exactly one of them at a time: the producer only between
// `released` and `released + capacity`, the consumer only below `published`, with the
// Release/Acquire pairs above ordering the hand-overs. So a `T` is only ever *moved* between
// threads in effect, never shared, which is what `T: Send` permits (the reasoning of
// `Mutex<T>: Sync where T: Send`).
unsafe impl<T: Send> Sync for Shared<T> {}

impl<T> Shared<T> {
    pub(crate) fn new(
        capacity: usize,
        mut factory: impl FnMut(usize) -> T,
        consumer_hook: Option<WakeHook>,
        producer_hook: Option<WakeHook>,
    ) -> Self {
        debug_assert!(capacity.is_power_of_two());
        let slots = (0..capacity).map(|i| UnsafeCell::new(factory(i))).collect();
        Self {
            published: CachePadded::new(AtomicU64::new(0)),
            released: CachePadded::new(AtomicU64::new(0)),
            consumer_sleep: CachePadded::new(Sleeper::new(consumer_hook)),
            producer_sleep: CachePadded::new(Sleeper::new(producer_hook)),
            producer_closed: AtomicBool::new(false),
            consumer_closed: AtomicBool::new(false),
            slots,
            trackers: AccessTrackers::new(capacity),
        }
    }

    /// Where the slots are, for an endpoint to keep.
    pub(crate) fn slot_array(&self) -> SlotArray<T> {
        SlotArray {
            // `UnsafeCell<T>` has the layout of `T`, so the slots are an array of `T`; a pointer
            // taken through `&UnsafeCell` may write.
            base: NonNull::from(&*self.slots).cast::<T>(),
            // The length is a power of two (checked by `Builder::build`).
            mask: self.slots.len() as u64 - 1,
        }
    }
}

/// Where the slots are: each endpoint keeps a copy, so that reaching a slot costs no load
/// through the `Arc`.
pub(crate) struct SlotArray<T> {
    /// The first slot, inside the `Shared<T>` that the same endpoint keeps alive.
    base: NonNull<T>,
    /// `capacity - 1`; the capacity is a power of two.
    mask: u64,
}

// SAFETY: `base` points into the `Shared<T>` that the endpoint holding this copy keeps alive
// through its `Arc`, so sending the copy is sending that endpoint's access to the slots, which
// is sound when `T: Send`, the same bound under which `Shared<T>` is `Sync`. `NonNull` keeps the
// type `!Sync`, as an endpoint must be.
unsafe impl<T: Send> Send for SlotArray<T> {}

impl<T> SlotArray<T> {
    #[inline]
    pub(crate) fn capacity(&self) -> usize {
        self.mask as usize + 1
    }

    /// The slot of `sequence`, as a raw pointer. Under loom it records an access to that slot.
    #[inline]
    pub(crate) fn slot(&self, sequence: u64, trackers: &AccessTrackers) -> *mut T {
        let index = (sequence & self.mask) as usize;
        trackers.touch(index, 1);
        // SAFETY: `index <= mask < capacity`, so the offset stays inside the slot array.
        unsafe { self.base.as_ptr().add(index) }
    }

    /// The slots of `len` events from `start`, as at most two runs: up to the end of the
    /// array, then from its start. Each run is a pointer and a length. Under loom it records an
    /// access to every slot in the range.
    #[inline]
    pub(crate) fn runs(
        &self,
        start: u64,
        len: usize,
        trackers: &AccessTrackers,
    ) -> ((*mut T, usize), (*mut T, usize)) {
        debug_assert!(len <= self.capacity());
        let index = (start & self.mask) as usize;
        trackers.touch(index, len);
        let first = len.min(self.capacity() - index);
        // SAFETY: `index <= mask < capacity`, so the offset stays inside the slot array.
        let head = unsafe { self.base.as_ptr().add(index) };
        ((head, first), (self.base.as_ptr(), len - first))
    }
}

/// Nobody is asleep.
const AWAKE: u8 = 0;
/// The side is parked in [`thread::park`]; wake it with `unpark`.
const PARKED: u8 = 1;
/// The side sleeps somewhere else (an `epoll_wait`); wake it with its hook.
const EXTERNAL: u8 = 2;

/// One side's announcement that it is going to sleep until the other side makes progress.
///
/// The protocol is a Dekker handshake with a `SeqCst` fence on each side:
///
/// ```text
/// sleeper                               waker
/// state = PARKED | EXTERNAL             published / released / closed = ...
/// fence(SeqCst)                         fence(SeqCst)
/// re-check the other side's sequence    if state != AWAKE { swap(AWAKE); wake }
/// sleep only if it had not moved
/// ```
///
/// The two fences are ordered one way or the other in the single total order of `SeqCst`
/// operations, so at least one side sees the other's store: either the sleeper sees the
/// progress and does not sleep, or the waker sees the announcement and wakes it. A lost wakeup
/// would need both loads to miss, which the fences rule out (`tests/loom.rs` checks it).
///
/// The waker's fast path, when nobody sleeps, is that fence and one load of a cache line that
/// only the sleeper writes and only when it goes to sleep: no read-modify-write and no system
/// call. The swap that claims the wake-up runs only when somebody announced sleep, so one
/// sleep costs at most one `unpark` or one hook call.
pub(crate) struct Sleeper {
    state: AtomicU8,
    /// The parked thread; set before `state` becomes `PARKED`.
    thread: Mutex<Option<thread::Thread>>,
    hook: Option<WakeHook>,
}

impl Sleeper {
    fn new(hook: Option<WakeHook>) -> Self {
        Self {
            state: AtomicU8::new(AWAKE),
            thread: Mutex::new(None),
            hook,
        }
    }

    pub(crate) fn has_hook(&self) -> bool {
        self.hook.is_some()
    }

    /// Announces that this side sleeps outside the ring until the hook is called.
    ///
    /// The caller must re-check its condition after this and [`withdraw`](Self::withdraw) if it
    /// no longer needs to sleep.
    pub(crate) fn announce_external(&self) {
        debug_assert!(self.hook.is_some());
        self.state.store(EXTERNAL, Ordering::Relaxed);
        fence(Ordering::SeqCst);
    }

    /// Takes the announcement back. A wake-up already claimed by the other side may still
    /// arrive; sleepers treat it as spurious.
    pub(crate) fn withdraw(&self) {
        self.state.store(AWAKE, Ordering::Relaxed);
    }

    /// Parks the calling thread unless `ready()` holds once the announcement is visible.
    ///
    /// May return spuriously; callers loop.
    pub(crate) fn park_unless(&self, ready: impl FnOnce() -> bool) {
        // A poisoned lock only means a thread panicked while storing a handle; the slot is
        // still a valid `Option<Thread>`.
        *self.thread.lock().unwrap_or_else(|e| e.into_inner()) = Some(thread::current());
        // Release: the waker that swaps `PARKED` out with Acquire then sees the handle.
        self.state.store(PARKED, Ordering::Release);
        fence(Ordering::SeqCst);
        if !ready() {
            thread::park();
        }
        self.withdraw();
    }

    /// Wakes this side if it announced sleep. Called by the other side after it made progress.
    #[inline]
    pub(crate) fn wake(&self) {
        fence(Ordering::SeqCst);
        if self.state.load(Ordering::Relaxed) != AWAKE {
            self.wake_slow();
        }
    }

    #[cold]
    #[inline(never)]
    fn wake_slow(&self) {
        // Only one waker claims each announcement, so one sleep costs at most one wake-up.
        match self.state.swap(AWAKE, Ordering::Acquire) {
            PARKED => {
                let thread = self.thread.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(thread) = thread.as_ref() {
                    thread.unpark();
                }
            }
            EXTERNAL => {
                if let Some(hook) = &self.hook {
                    hook();
                }
            }
            _ => {}
        }
    }
}
