//! A cache-padded, disruptor-style single-producer single-consumer sequence ring.
//!
//! The ring is an array of preallocated slots and two counters. The [`Producer`] claims free
//! slots, fills them **in place** and publishes the whole [`Claim`] with one store; the
//! [`Consumer`] takes everything published so far as one [`Batch`], reads or rewrites it in
//! place, and releases it with one store. Nothing is allocated after [`channel`] returns, and
//! nothing is copied in or out unless you choose to: a slot can be a 4 KiB buffer that a
//! `read(2)` fills and the consumer answers from.
//!
//! - **Batches on both sides.** One claim or one batch costs one `Release` store, however many
//!   slots it covers.
//! - **Cached sequences.** Each side keeps a copy of the other's counter and looks at the shared
//!   one only when the copy runs out, so the steady state hardly touches shared cache lines.
//!   Every shared counter sits on its own [`CachePadded`](crossbeam_utils::CachePadded) line.
//! - **Waiting your way.** Blocking calls [spin, yield or park](WaitStrategy). A side can also
//!   sleep *outside* the ring, in its own `epoll_wait`: it
//!   [announces](Consumer::announce_sleep) the sleep, and the other side calls a hook (write an
//!   eventfd, say) only then. While nobody sleeps, a publish pays one fence and one load to find
//!   that out: no system call and no read-modify-write.
//! - **Disconnection.** Dropping either endpoint is seen by the other, and wakes it.
//!
//! # Examples
//!
//! ```
//! // Slots are byte buffers, made once; the consumer reverses them in place.
//! let (mut producer, mut consumer) = ring::channel(8, |_| Vec::<u8>::with_capacity(64)).unwrap();
//!
//! let writer = std::thread::spawn(move || {
//!     for word in ["olleh", "dlrow"] {
//!         let mut claim = producer.claim(1).unwrap();
//!         claim[0].clear();
//!         claim[0].extend_from_slice(word.as_bytes());
//!         claim.publish();
//!     }
//!     // Dropping the producer tells the consumer that nothing more will come.
//! });
//!
//! let mut words = Vec::new();
//! while let Ok(mut batch) = consumer.read() {
//!     for buffer in batch.iter_mut() {
//!         buffer.reverse();
//!         words.push(String::from_utf8(buffer.clone()).unwrap());
//!     }
//!     // Dropping the batch releases its slots to the producer.
//! }
//! writer.join().unwrap();
//! assert_eq!(words, ["hello", "world"]);
//! ```
//!
//! # Guarantees
//!
//! - Events are read in the order they were published, each exactly once.
//! - Every value the factory made, and every value moved in by [`Producer::push`], is dropped
//!   exactly once: values replaced in a slot when they are replaced, the rest with the ring.
//! - [`Producer`] and [`Consumer`] are [`Send`] when `T` is, and never [`Sync`].
//! - The crate does no I/O; the only system calls it can make are the parking and unparking
//!   of [`WaitStrategy::Block`].

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs, clippy::undocumented_unsafe_blocks)]

mod consumer;
#[cfg(feature = "test-support")]
pub mod counting_alloc;
mod error;
mod producer;
mod shared;
mod sync;
mod wait;

pub use consumer::{Batch, Consumer};
pub use error::{
    CapacityError, ClaimError, Disconnected, PushError, TryClaimError, TryPushError, TryReadError,
};
pub use producer::{Claim, IterMut, Producer};
pub use wait::WaitStrategy;

use shared::{Shared, Sleeper, WakeHook};
use std::fmt;
use sync::Arc;

/// Builds a ring of `capacity` slots with the default [`WaitStrategy::Block`] and no wake hooks.
///
/// `factory(i)` makes the initial value of slot `i`; it is called `capacity` times, here, and
/// never again. Shorthand for `Builder::new(capacity).build(factory)`.
///
/// # Errors
///
/// [`CapacityError`], naming the value, if `capacity` is zero or not a power of two.
///
/// # Examples
///
/// ```
/// let (mut producer, mut consumer) = ring::channel(1024, |_| 0u64).unwrap();
/// producer.try_push(42).unwrap();
/// assert_eq!(consumer.try_read().unwrap()[0], 42);
///
/// let error = ring::channel(1000, |_| 0u64).unwrap_err();
/// assert_eq!(error.to_string(), "ring capacity must be a power of two greater than zero, got 1000");
/// ```
pub fn channel<T>(
    capacity: usize,
    factory: impl FnMut(usize) -> T,
) -> Result<(Producer<T>, Consumer<T>), CapacityError> {
    Builder::new(capacity).build(factory)
}

/// Configures a ring: capacity, [`WaitStrategy`], and the hooks that wake a side sleeping
/// outside the ring.
///
/// # Examples
///
/// ```
/// let (producer, consumer) = ring::Builder::new(256)
///     .wait_strategy(ring::WaitStrategy::Spin)
///     .build(|_| [0u8; 32])
///     .unwrap();
/// assert_eq!(producer.capacity(), 256);
/// # drop((producer, consumer));
/// ```
pub struct Builder {
    capacity: usize,
    wait: WaitStrategy,
    consumer_hook: Option<WakeHook>,
    producer_hook: Option<WakeHook>,
}

impl Builder {
    /// Starts a ring of `capacity` slots; the capacity is checked by [`build`](Self::build).
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            wait: WaitStrategy::default(),
            consumer_hook: None,
            producer_hook: None,
        }
    }

    /// Sets how both sides' blocking calls wait. Default: [`WaitStrategy::Block`].
    pub fn wait_strategy(mut self, wait: WaitStrategy) -> Self {
        self.wait = wait;
        self
    }

    /// Installs the hook that wakes a consumer sleeping outside the ring: the producer calls it
    /// (from its own thread) on its first publish, or on its drop, after the consumer
    /// [announced sleep](Consumer::announce_sleep). It is called at most once per announcement
    /// and should be quick and non-blocking: write an eventfd, unpark a thread.
    pub fn wake_consumer_with(mut self, hook: impl Fn() + Send + Sync + 'static) -> Self {
        self.consumer_hook = Some(Box::new(hook));
        self
    }

    /// Installs the hook that wakes a producer sleeping outside the ring: the consumer calls it
    /// on its first release, or on its drop, after the producer announced sleep
    /// ([until a slot is free](Producer::announce_sleep) or
    /// [until a release](Producer::announce_sleep_until_release)). Same rules as
    /// [`wake_consumer_with`](Self::wake_consumer_with).
    pub fn wake_producer_with(mut self, hook: impl Fn() + Send + Sync + 'static) -> Self {
        self.producer_hook = Some(Box::new(hook));
        self
    }

    /// Allocates the slots, filling slot `i` with `factory(i)`, and returns the two endpoints.
    ///
    /// # Errors
    ///
    /// [`CapacityError`], naming the value, if the capacity is zero or not a power of two.
    pub fn build<T>(
        self,
        factory: impl FnMut(usize) -> T,
    ) -> Result<(Producer<T>, Consumer<T>), CapacityError> {
        if !self.capacity.is_power_of_two() {
            return Err(CapacityError {
                capacity: self.capacity,
            });
        }
        // A side that can sleep must be looked for after every step of the other side.
        let blocking = self.wait == WaitStrategy::Block;
        let wake_consumer = blocking || self.consumer_hook.is_some();
        let wake_producer = blocking || self.producer_hook.is_some();
        let shared = Arc::new(Shared::new(
            self.capacity,
            factory,
            self.consumer_hook,
            self.producer_hook,
        ));
        Ok((
            Producer::new(Arc::clone(&shared), self.wait, wake_consumer),
            Consumer::new(shared, self.wait, wake_producer),
        ))
    }
}

impl fmt::Debug for Builder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("capacity", &self.capacity)
            .field("wait", &self.wait)
            .field("wake_consumer_hook", &self.consumer_hook.is_some())
            .field("wake_producer_hook", &self.producer_hook.is_some())
            .finish()
    }
}

/// A side's announcement that it sleeps outside the ring, from
/// [`Consumer::announce_sleep`], [`Producer::announce_sleep`] or
/// [`Producer::announce_sleep_until_release`].
///
/// While it is alive, the other side calls the wake hook on its next step. Drop it once awake,
/// whatever woke you: that withdraws the announcement, so the other side stops looking.
#[must_use = "dropping the announcement withdraws it at once"]
pub struct Sleep<'a> {
    sleeper: &'a Sleeper,
}

impl<'a> Sleep<'a> {
    fn new(sleeper: &'a Sleeper) -> Self {
        Self { sleeper }
    }
}

impl Drop for Sleep<'_> {
    fn drop(&mut self) {
        self.sleeper.withdraw();
    }
}

impl fmt::Debug for Sleep<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Sleep")
    }
}
