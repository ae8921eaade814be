//! A global allocator that counts, for tests that prove a hot path does not allocate.
//!
//! It lives here because this is the one crate of the workspace allowed `unsafe`, and a
//! [`GlobalAlloc`] cannot be written without it. It is compiled only with the `test-support`
//! feature; the ring's own tests and the server's zero-allocation test use it.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};

/// The system allocator, counting every allocation (`alloc`, `alloc_zeroed`, `realloc`) made
/// by any thread of the process.
///
/// # Examples
///
/// ```
/// use ring::counting_alloc::CountingAlloc;
///
/// #[global_allocator]
/// static ALLOC: CountingAlloc = CountingAlloc::new();
///
/// let before = ALLOC.allocations();
/// let boxed = Box::new(7);
/// assert!(ALLOC.allocations() > before);
/// # drop(boxed);
/// ```
#[derive(Debug, Default)]
pub struct CountingAlloc {
    allocations: AtomicU64,
}

impl CountingAlloc {
    /// A counter at zero.
    #[must_use]
    pub const fn new() -> Self {
        Self {
            allocations: AtomicU64::new(0),
        }
    }

    /// Allocations made so far. Take it before and after the code under test: the difference
    /// is what that code (and every other thread meanwhile) allocated.
    pub fn allocations(&self) -> u64 {
        // SeqCst: the threads under test learn that the phase began through other means
        // (sockets, a ring); the strongest ordering keeps that question out of the count.
        self.allocations.load(Ordering::SeqCst)
    }

    fn count(&self) {
        // Counting touches one atomic and nothing else, so it cannot allocate (and recurse).
        self.allocations.fetch_add(1, Ordering::SeqCst);
    }
}

// SAFETY: every method hands its arguments unchanged to `System`, which upholds the
// `GlobalAlloc` contract; the counting around it neither allocates nor touches the memory.
unsafe impl GlobalAlloc for CountingAlloc {
    /// # Safety
    ///
    /// The contract of [`GlobalAlloc::alloc`], which this passes on to [`System`] unchanged.
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        self.count();
        // SAFETY: our caller upholds `alloc`'s contract (a non-zero size), passed on as is.
        unsafe { System.alloc(layout) }
    }

    /// # Safety
    ///
    /// The contract of [`GlobalAlloc::alloc_zeroed`], which this passes on to [`System`] unchanged.
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        self.count();
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    /// # Safety
    ///
    /// The contract of [`GlobalAlloc::realloc`], which this passes on to [`System`] unchanged.
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        self.count();
        // SAFETY: `ptr` came from this allocator, that is from `System`, with `layout`, and
        // `new_size` is valid: our caller's guarantees, passed on as is.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    /// # Safety
    ///
    /// The contract of [`GlobalAlloc::dealloc`], which this passes on to [`System`] unchanged.
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from this allocator, that is from `System`, with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }
}
