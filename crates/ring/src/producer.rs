//! The producer endpoint and its [`Claim`]: slots filled in place, then published at once.

use crate::error::{ClaimError, PushError, TryClaimError, TryPushError};
use crate::shared::{Shared, SlotArray};
use crate::sync::{Arc, Ordering};
use crate::{Sleep, WaitStrategy};
use std::cell::Cell;
use std::marker::PhantomData;
use std::{fmt, ops, slice};

/// The writing end of a ring. Made by [`channel`](crate::channel) or
/// [`Builder::build`](crate::Builder::build).
///
/// `Producer<T>` is [`Send`] when `T` is, so it can move to the thread that produces, and never
/// [`Sync`]: every method takes `&mut self`, and there is exactly one producer.
///
/// ```compile_fail
/// fn assert_sync<S: Sync>() {}
/// assert_sync::<ring::Producer<u64>>();
/// ```
///
/// ```compile_fail
/// fn assert_send<S: Send>() {}
/// assert_send::<ring::Producer<std::rc::Rc<u64>>>();
/// ```
///
/// ```
/// fn assert_send<S: Send>() {}
/// assert_send::<ring::Producer<u64>>();
/// ```
// Aligned to a cache-line pair (as `CachePadded` on x86-64): the endpoint's own sequence and
// cached copy change on every publish or release, and two endpoints made together usually land
// side by side in memory (the two boxed closures of the threads they are moved into, say).
// Unaligned, they can share a line, and every step of one side would then cost the other a
// cache miss. Before this alignment the single-event benchmark was bimodal from one process to
// the next (some capped near half the others' rate); with it, it is not.
#[repr(align(128))]
pub struct Producer<T> {
    shared: Arc<Shared<T>>,
    /// The sequence the next claim starts at. The producer is the only writer of `published`,
    /// so this *is* `published`, read without touching the shared line.
    next: u64,
    /// A copy of `released` that is never newer than the real one, so `next - released_cache`
    /// over-estimates the slots in use: a claim that fits by the copy fits for real. Refreshed
    /// only when the copy says the ring is too full. Range: `next - capacity ..= next`.
    released_cache: u64,
    /// Where the slots are, copied here so that the hot path needs no load through the `Arc`.
    slots: SlotArray<T>,
    wait: WaitStrategy,
    /// Whether the consumer can be asleep, so that every publish must look for its announcement.
    wake_consumer: bool,
    /// `Cell` is `Send` but not `Sync`, which is exactly what an endpoint is.
    _not_sync: PhantomData<Cell<()>>,
}

impl<T> Producer<T> {
    pub(crate) fn new(shared: Arc<Shared<T>>, wait: WaitStrategy, wake_consumer: bool) -> Self {
        Self {
            slots: shared.slot_array(),
            shared,
            next: 0,
            released_cache: 0,
            wait,
            wake_consumer,
            _not_sync: PhantomData,
        }
    }

    /// The number of slots in the ring.
    ///
    /// # Examples
    ///
    /// ```
    /// let (producer, _consumer) = ring::channel(8, |_| 0u8).unwrap();
    /// assert_eq!(producer.capacity(), 8);
    /// ```
    pub fn capacity(&self) -> usize {
        self.slots.capacity()
    }

    /// The number of slots that can be claimed right now.
    ///
    /// It may grow at any moment as the consumer releases slots; it never shrinks except by
    /// this producer's own publishes.
    ///
    /// # Examples
    ///
    /// ```
    /// let (mut producer, mut consumer) = ring::channel(4, |_| 0u8).unwrap();
    /// producer.try_push(1).unwrap();
    /// assert_eq!(producer.free_slots(), 3);
    /// consumer.try_read().unwrap().release();
    /// assert_eq!(producer.free_slots(), 4);
    /// ```
    pub fn free_slots(&mut self) -> usize {
        self.released_cache = self.shared.released.load(Ordering::Acquire);
        self.cached_free()
    }

    /// Whether the consumer has been dropped. Once it has, every claim fails with
    /// `Disconnected`.
    ///
    /// # Examples
    ///
    /// ```
    /// let (producer, consumer) = ring::channel(4, |_| 0u8).unwrap();
    /// assert!(!producer.is_abandoned());
    /// drop(consumer);
    /// assert!(producer.is_abandoned());
    /// ```
    pub fn is_abandoned(&self) -> bool {
        self.shared.consumer_closed.load(Ordering::Acquire)
    }

    #[inline]
    fn cached_free(&self) -> usize {
        let in_use = self.next - self.released_cache;
        debug_assert!(in_use <= self.capacity() as u64);
        self.capacity() - in_use as usize
    }

    /// Claims `n` slots without waiting, to be filled in place and then published.
    ///
    /// The slots still hold whatever was last put in them (first the factory's values, later
    /// old events): overwrite what matters. Nothing is visible to the consumer until
    /// [`Claim::publish`]; a claim dropped unpublished gives its slots back to the next claim.
    /// `n == 0` gives an empty claim.
    ///
    /// # Errors
    ///
    /// [`TryClaimError::Full`] if fewer than `n` slots are free, [`TryClaimError::TooLarge`] if
    /// `n` exceeds the capacity, [`TryClaimError::Disconnected`] if the consumer is gone.
    ///
    /// # Examples
    ///
    /// ```
    /// let (mut producer, mut consumer) = ring::channel(4, |_| 0u32).unwrap();
    /// let mut claim = producer.try_claim(3).unwrap();
    /// for (i, slot) in claim.iter_mut().enumerate() {
    ///     *slot = i as u32 * 10;
    /// }
    /// claim.publish();
    /// assert!(matches!(producer.try_claim(2), Err(ring::TryClaimError::Full { free: 1 })));
    ///
    /// let batch = consumer.try_read().unwrap();
    /// assert_eq!(batch.iter().copied().collect::<Vec<_>>(), [0, 10, 20]);
    /// ```
    #[inline]
    pub fn try_claim(&mut self, n: usize) -> Result<Claim<'_, T>, TryClaimError> {
        if self.shared.consumer_closed.load(Ordering::Relaxed) {
            return Err(TryClaimError::Disconnected);
        }
        if self.cached_free() < n {
            let free = self.free_slots();
            if free < n {
                return Err(self.claim_failure(n, free));
            }
        }
        Ok(Claim {
            start: self.next,
            len: n,
            producer: self,
        })
    }

    #[cold]
    fn claim_failure(&self, n: usize, free: usize) -> TryClaimError {
        if n > self.capacity() {
            TryClaimError::TooLarge {
                requested: n,
                capacity: self.capacity(),
            }
        } else {
            TryClaimError::Full { free }
        }
    }

    /// Claims `n` slots, waiting with the ring's [`WaitStrategy`] until they are free.
    ///
    /// # Errors
    ///
    /// [`ClaimError::TooLarge`] at once if `n` exceeds the capacity (it could never be
    /// satisfied), [`ClaimError::Disconnected`] if the consumer is gone or goes while waiting.
    ///
    /// # Examples
    ///
    /// ```
    /// let (mut producer, mut consumer) = ring::channel(2, |_| 0u8).unwrap();
    /// let reader = std::thread::spawn(move || {
    ///     let mut sum = 0u32;
    ///     while let Ok(batch) = consumer.read() {
    ///         sum += batch.iter().map(|&b| u32::from(b)).sum::<u32>();
    ///     }
    ///     sum
    /// });
    /// for b in 1..=100u8 {
    ///     let mut claim = producer.claim(1).unwrap();
    ///     claim[0] = b;
    ///     claim.publish();
    /// }
    /// drop(producer);
    /// assert_eq!(reader.join().unwrap(), 5050);
    /// ```
    pub fn claim(&mut self, n: usize) -> Result<Claim<'_, T>, ClaimError> {
        if n > self.capacity() {
            return Err(ClaimError::TooLarge {
                requested: n,
                capacity: self.capacity(),
            });
        }
        if self.cached_free() < n {
            self.wait_for_free(n);
        }
        match self.try_claim(n) {
            Ok(claim) => Ok(claim),
            Err(TryClaimError::Disconnected) => Err(ClaimError::Disconnected),
            Err(e) => unreachable!("claim of {n} after waiting for it failed: {e}"),
        }
    }

    /// Waits until `n` slots are free or the consumer is gone.
    #[cold]
    fn wait_for_free(&mut self, n: usize) {
        let shared = &*self.shared;
        let capacity = self.capacity() as u64;
        let next = self.next;
        let mut released = self.released_cache;
        self.wait.wait_until(&shared.producer_sleep, || {
            released = shared.released.load(Ordering::Acquire);
            capacity - (next - released) >= n as u64
                || shared.consumer_closed.load(Ordering::Acquire)
        });
        self.released_cache = released;
    }

    /// Moves `value` into the next slot and publishes it, without waiting.
    ///
    /// The value the slot held before is dropped. To fill a slot in place instead (and skip
    /// the move), use [`try_claim`](Self::try_claim).
    ///
    /// # Errors
    ///
    /// [`TryPushError::Full`] if no slot is free, [`TryPushError::Disconnected`] if the consumer
    /// is gone; both give `value` back.
    ///
    /// # Examples
    ///
    /// ```
    /// let (mut producer, _consumer) = ring::channel(1, |_| 0u64).unwrap();
    /// producer.try_push(7).unwrap();
    /// assert_eq!(producer.try_push(8), Err(ring::TryPushError::Full(8)));
    /// ```
    #[inline]
    pub fn try_push(&mut self, value: T) -> Result<(), TryPushError<T>> {
        // The same steps as `try_claim(1)` and `publish`, without building a `Claim`: this is
        // the hot loop of a producer that sends one event at a time.
        if self.shared.consumer_closed.load(Ordering::Relaxed) {
            return Err(TryPushError::Disconnected(value));
        }
        if self.cached_free() == 0 && self.free_slots() == 0 {
            return Err(TryPushError::Full(value));
        }
        let next = self.next;
        // SAFETY: a slot is free, so `next` lies in `[released, released + capacity)` and is
        // not published: only this producer may touch its slot, and `&mut self` makes this the
        // only access. The assignment drops the value the slot held, exactly once.
        unsafe { *self.slots.slot(next, &self.shared.trackers) = value };
        self.publish_to(next + 1);
        Ok(())
    }

    /// Moves `value` into the next slot and publishes it, waiting for a free slot with the
    /// ring's [`WaitStrategy`].
    ///
    /// # Errors
    ///
    /// [`PushError`], giving `value` back, if the consumer is gone or goes while waiting.
    ///
    /// # Examples
    ///
    /// ```
    /// let (mut producer, consumer) = ring::channel(1, |_| 0u64).unwrap();
    /// producer.push(7).unwrap();
    /// drop(consumer);
    /// assert_eq!(producer.push(8), Err(ring::PushError(8)));
    /// ```
    pub fn push(&mut self, value: T) -> Result<(), PushError<T>> {
        match self.claim(1) {
            Ok(mut claim) => {
                claim[0] = value;
                claim.publish();
                Ok(())
            }
            Err(_) => Err(PushError(value)),
        }
    }

    /// Announces that this producer is about to sleep outside the ring (in its own
    /// `epoll_wait`, say) until a slot is free, so that the consumer calls the hook given to
    /// [`Builder::wake_producer_with`](crate::Builder::wake_producer_with) when it next releases.
    ///
    /// Returns `None`, announcing nothing, when there is no need to sleep: a slot is free
    /// already or the consumer is gone. Otherwise sleep while the returned [`Sleep`] is alive,
    /// then drop it; the hook may also fire spuriously, for example just after the drop.
    ///
    /// # Panics
    ///
    /// If the ring was built without a producer wake hook: the sleep could never end.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    ///
    /// let woken = Arc::new(AtomicUsize::new(0));
    /// let hook = Arc::clone(&woken);
    /// let (mut producer, mut consumer) = ring::Builder::new(1)
    ///     .wake_producer_with(move || { hook.fetch_add(1, Ordering::Relaxed); })
    ///     .build(|_| 0u8)
    ///     .unwrap();
    /// assert!(producer.announce_sleep().is_none()); // a slot is free
    /// producer.try_push(1).unwrap();
    /// let sleep = producer.announce_sleep().expect("the ring is full");
    /// consumer.try_read().unwrap().release(); // calls the hook
    /// assert_eq!(woken.load(Ordering::Relaxed), 1);
    /// drop(sleep);
    /// ```
    pub fn announce_sleep(&mut self) -> Option<Sleep<'_>> {
        let shared = &*self.shared;
        assert!(
            shared.producer_sleep.has_hook(),
            "Producer::announce_sleep needs a hook from Builder::wake_producer_with"
        );
        if self.cached_free() > 0 {
            return None;
        }
        self.announce_unless_released()
    }

    /// Announces that this producer is about to sleep outside the ring until the consumer's
    /// next release, whether or not a slot is free: the consumer calls the hook given to
    /// [`Builder::wake_producer_with`](crate::Builder::wake_producer_with) when it next
    /// releases.
    ///
    /// This is for a producer that has nothing better to do while the consumer works through
    /// what it was given, and would rather gather its next events in one go than claim them
    /// one at a time (a reader whose events wait in the kernel until it looks, say): one
    /// wake-up per release of the consumer then replaces a poll per event.
    ///
    /// Returns `None`, announcing nothing, when no release is to come or one came already:
    /// the consumer has released everything published, released more since the producer last
    /// looked, or is gone. Otherwise sleep while the returned [`Sleep`] is alive, then drop it;
    /// the hook may also fire spuriously, for example just after the drop.
    ///
    /// # Panics
    ///
    /// If the ring was built without a producer wake hook: the sleep could never end.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    ///
    /// let woken = Arc::new(AtomicUsize::new(0));
    /// let hook = Arc::clone(&woken);
    /// let (mut producer, mut consumer) = ring::Builder::new(4)
    ///     .wake_producer_with(move || { hook.fetch_add(1, Ordering::Relaxed); })
    ///     .build(|_| 0u8)
    ///     .unwrap();
    /// assert!(producer.announce_sleep_until_release().is_none()); // nothing to release
    /// producer.try_push(1).unwrap();
    /// let sleep = producer.announce_sleep_until_release().expect("one event is out");
    /// consumer.try_read().unwrap().release(); // calls the hook
    /// assert_eq!(woken.load(Ordering::Relaxed), 1);
    /// drop(sleep);
    /// ```
    pub fn announce_sleep_until_release(&mut self) -> Option<Sleep<'_>> {
        let shared = &*self.shared;
        assert!(
            shared.producer_sleep.has_hook(),
            "Producer::announce_sleep_until_release needs a hook from Builder::wake_producer_with"
        );
        // Fresh, so that the sleep waits for a release that has not happened yet.
        self.released_cache = shared.released.load(Ordering::Acquire);
        if self.released_cache == self.next {
            return None;
        }
        self.announce_unless_released()
    }

    /// The second half of both announcements: announces the sleep, then re-checks behind the
    /// fence that the consumer has not released past `released_cache` or gone away meanwhile
    /// (and takes the announcement back if it has).
    fn announce_unless_released(&mut self) -> Option<Sleep<'_>> {
        let shared = &*self.shared;
        shared.producer_sleep.announce_external();
        let released = shared.released.load(Ordering::Acquire);
        if released != self.released_cache || shared.consumer_closed.load(Ordering::Acquire) {
            shared.producer_sleep.withdraw();
            self.released_cache = released;
            return None;
        }
        Some(Sleep::new(&shared.producer_sleep))
    }

    /// Makes every event below `end` visible to the consumer with one `Release` store.
    #[inline]
    fn publish_to(&mut self, end: u64) {
        debug_assert!(self.next <= end && end - self.released_cache <= self.capacity() as u64);
        // Release: pairs with the consumer's Acquire load of `published`, handing over every slot
        // written before this store.
        self.shared.published.store(end, Ordering::Release);
        // After the store, not before: then nothing between this write and the next push's read
        // of `next` stops the compiler from keeping it in a register.
        self.next = end;
        if self.wake_consumer {
            self.shared.consumer_sleep.wake();
        }
    }
}

impl<T> Drop for Producer<T> {
    fn drop(&mut self) {
        // Release: a consumer that sees the flag with Acquire also sees the last publish.
        self.shared.producer_closed.store(true, Ordering::Release);
        // Always, whatever the strategy: a consumer parked or asleep in epoll must learn that
        // nothing more will come.
        self.shared.consumer_sleep.wake();
    }
}

impl<T> fmt::Debug for Producer<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Producer")
            .field("capacity", &self.capacity())
            .field("next", &self.next)
            .field("wait", &self.wait)
            .finish_non_exhaustive()
    }
}

/// Slots claimed by the [`Producer`], to fill in place and then [`publish`](Self::publish).
///
/// A claim of `n` slots covers the sequences `start .. start + n`. It indexes (`claim[i]`),
/// iterates ([`iter_mut`](Self::iter_mut), an [`ExactSizeIterator`]) and slices
/// ([`as_mut_slices`](Self::as_mut_slices)) like a collection of `&mut T`.
///
/// Dropping a claim without publishing publishes nothing: its slots go to the next claim, which
/// is how a read that ends in `WouldBlock` gives its slot back.
#[must_use = "a claim publishes nothing until `publish` is called"]
pub struct Claim<'a, T> {
    producer: &'a mut Producer<T>,
    start: u64,
    len: usize,
}

impl<T> Claim<'_, T> {
    /// The number of slots claimed.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no slot is claimed.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The sequence of the first claimed slot: the number of events published before it.
    pub fn sequence(&self) -> u64 {
        self.start
    }

    /// The claimed slots as at most two slices, in order: the ring wraps around between them.
    ///
    /// # Examples
    ///
    /// ```
    /// let (mut producer, _consumer) = ring::channel(4, |_| 0u8).unwrap();
    /// let mut claim = producer.try_claim(4).unwrap();
    /// let (first, second) = claim.as_mut_slices();
    /// assert_eq!(first.len() + second.len(), 4);
    /// ```
    pub fn as_mut_slices(&mut self) -> (&mut [T], &mut [T]) {
        let ((a, a_len), (b, b_len)) =
            self.producer
                .slots
                .runs(self.start, self.len, &self.producer.shared.trackers);
        // SAFETY: the claim lies between `released` and `released + capacity`, which only the
        // producer may touch, and the `&mut Producer` it borrows makes it the only claim. The
        // two runs are disjoint parts of the slot array (the claim is at most `capacity` long),
        // and the returned borrows are tied to `&mut self`.
        unsafe {
            (
                slice::from_raw_parts_mut(a, a_len),
                slice::from_raw_parts_mut(b, b_len),
            )
        }
    }

    /// Iterates over the claimed slots in order.
    pub fn iter_mut(&mut self) -> IterMut<'_, T> {
        let (first, second) = self.as_mut_slices();
        IterMut::new(first, second)
    }

    /// Publishes every claimed slot with one `Release` store, waking the consumer if it
    /// announced sleep.
    pub fn publish(self) {
        let end = self.start + self.len as u64;
        self.producer.publish_to(end);
    }

    /// Publishes the first `n` claimed slots only; the rest go back to the next claim.
    ///
    /// # Panics
    ///
    /// If `n` exceeds the length of the claim.
    ///
    /// # Examples
    ///
    /// ```
    /// let (mut producer, mut consumer) = ring::channel(4, |_| 0u8).unwrap();
    /// let mut claim = producer.try_claim(4).unwrap();
    /// claim[0] = 1;
    /// claim[1] = 2;
    /// claim.publish_first(2);
    /// assert_eq!(consumer.try_read().unwrap().len(), 2);
    /// ```
    pub fn publish_first(self, n: usize) {
        assert!(
            n <= self.len,
            "cannot publish {n} slots of a claim of {}",
            self.len
        );
        let end = self.start + n as u64;
        self.producer.publish_to(end);
    }

    #[inline]
    fn slot(&self, index: usize) -> *mut T {
        assert!(
            index < self.len,
            "index {index} out of a claim of {}",
            self.len
        );
        self.producer
            .slots
            .slot(self.start + index as u64, &self.producer.shared.trackers)
    }
}

impl<T> ops::Index<usize> for Claim<'_, T> {
    type Output = T;

    fn index(&self, index: usize) -> &T {
        // SAFETY: `slot` checked that the index is inside the claim, which only this producer
        // may touch (see `as_mut_slices`); the borrow is tied to `&self`.
        unsafe { &*self.slot(index) }
    }
}

impl<T> ops::IndexMut<usize> for Claim<'_, T> {
    fn index_mut(&mut self, index: usize) -> &mut T {
        // SAFETY: as for `Index`, and `&mut self` makes this the only borrow of the slot.
        unsafe { &mut *self.slot(index) }
    }
}

impl<T> fmt::Debug for Claim<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Claim")
            .field("sequence", &self.start)
            .field("len", &self.len)
            .finish()
    }
}

/// An iterator of `&mut T` over a [`Claim`] or a [`Batch`](crate::Batch), in sequence order.
pub struct IterMut<'a, T> {
    first: slice::IterMut<'a, T>,
    second: slice::IterMut<'a, T>,
}

impl<'a, T> IterMut<'a, T> {
    pub(crate) fn new(first: &'a mut [T], second: &'a mut [T]) -> Self {
        Self {
            first: first.iter_mut(),
            second: second.iter_mut(),
        }
    }
}

impl<'a, T> Iterator for IterMut<'a, T> {
    type Item = &'a mut T;

    #[inline]
    fn next(&mut self) -> Option<&'a mut T> {
        match self.first.next() {
            Some(item) => Some(item),
            None => {
                // The wrap-around: continue with the second run (then `second` is empty).
                std::mem::swap(&mut self.first, &mut self.second);
                self.first.next()
            }
        }
    }

    #[inline]
    fn size_hint(&self) -> (usize, Option<usize>) {
        let len = self.first.len() + self.second.len();
        (len, Some(len))
    }
}

impl<T> ExactSizeIterator for IterMut<'_, T> {}
impl<T> std::iter::FusedIterator for IterMut<'_, T> {}

impl<T> fmt::Debug for IterMut<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IterMut")
            .field("remaining", &self.len())
            .finish()
    }
}
