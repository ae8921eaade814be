//! The consumer endpoint and its [`Batch`]: everything published so far, released at once.

use crate::error::{Disconnected, TryReadError};
use crate::producer::IterMut;
use crate::shared::{Shared, SlotArray};
use crate::sync::{Arc, Ordering};
use crate::{Sleep, WaitStrategy};
use std::cell::Cell;
use std::marker::PhantomData;
use std::{fmt, ops, slice};

/// The reading end of a ring. Made by [`channel`](crate::channel) or
/// [`Builder::build`](crate::Builder::build).
///
/// `Consumer<T>` is [`Send`] when `T` is, and never [`Sync`]: every method takes `&mut self`, and
/// there is exactly one consumer.
///
/// ```compile_fail
/// fn assert_sync<S: Sync>() {}
/// assert_sync::<ring::Consumer<u64>>();
/// ```
///
/// ```compile_fail
/// fn assert_send<S: Send>() {}
/// assert_send::<ring::Consumer<std::rc::Rc<u64>>>();
/// ```
///
/// ```
/// fn assert_send<S: Send>() {}
/// assert_send::<ring::Consumer<u64>>();
/// ```
// Aligned to a cache-line pair, for the reason given on `Producer`.
#[repr(align(128))]
pub struct Consumer<T> {
    shared: Arc<Shared<T>>,
    /// The sequence the next batch starts at. The consumer is the only writer of `released`, so
    /// this *is* `released`, read without touching the shared line.
    next: u64,
    /// A copy of `published` that is never newer than the real one, so every event below it
    /// is readable. Refreshed only when the events below it are all read.
    /// Range: `next ..= next + capacity`.
    published_cache: u64,
    /// Where the slots are, copied here so that the hot path needs no load through the `Arc`.
    slots: SlotArray<T>,
    wait: WaitStrategy,
    /// Whether the producer can be asleep, so that every release must look for its announcement.
    wake_producer: bool,
    /// `Cell` is `Send` but not `Sync`, which is exactly what an endpoint is.
    _not_sync: PhantomData<Cell<()>>,
}

impl<T> Consumer<T> {
    pub(crate) fn new(shared: Arc<Shared<T>>, wait: WaitStrategy, wake_producer: bool) -> Self {
        Self {
            slots: shared.slot_array(),
            shared,
            next: 0,
            published_cache: 0,
            wait,
            wake_producer,
            _not_sync: PhantomData,
        }
    }

    /// The number of slots in the ring.
    pub fn capacity(&self) -> usize {
        self.slots.capacity()
    }

    /// The number of events published and not yet read.
    ///
    /// # Examples
    ///
    /// ```
    /// let (mut producer, mut consumer) = ring::channel(4, |_| 0u8).unwrap();
    /// assert_eq!(consumer.available(), 0);
    /// producer.try_push(1).unwrap();
    /// producer.try_push(2).unwrap();
    /// assert_eq!(consumer.available(), 2);
    /// ```
    pub fn available(&mut self) -> usize {
        self.published_cache = self.shared.published.load(Ordering::Acquire);
        self.cached_available()
    }

    /// Whether the producer has been dropped. Events it published before may still be waiting.
    ///
    /// # Examples
    ///
    /// ```
    /// let (producer, consumer) = ring::channel(4, |_| 0u8).unwrap();
    /// drop(producer);
    /// assert!(consumer.is_abandoned());
    /// ```
    pub fn is_abandoned(&self) -> bool {
        self.shared.producer_closed.load(Ordering::Acquire)
    }

    #[inline]
    fn cached_available(&self) -> usize {
        let available = self.published_cache - self.next;
        debug_assert!(available <= self.capacity() as u64);
        available as usize
    }

    /// Takes every event published so far as one batch, without waiting.
    ///
    /// # Errors
    ///
    /// [`TryReadError::Empty`] if nothing is waiting, [`TryReadError::Disconnected`] if nothing
    /// is waiting and the producer is gone.
    ///
    /// # Examples
    ///
    /// ```
    /// let (mut producer, mut consumer) = ring::channel(4, |_| 0u8).unwrap();
    /// assert_eq!(consumer.try_read().unwrap_err(), ring::TryReadError::Empty);
    /// producer.try_push(1).unwrap();
    /// producer.try_push(2).unwrap();
    /// let batch = consumer.try_read().unwrap();
    /// assert_eq!(batch.len(), 2);
    /// ```
    #[inline]
    pub fn try_read(&mut self) -> Result<Batch<'_, T>, TryReadError> {
        self.try_read_up_to(usize::MAX)
    }

    /// Takes at most `max` of the events published so far as one batch, without waiting.
    ///
    /// It succeeds whenever something is waiting, so `max == 0` gives an empty batch then.
    ///
    /// # Errors
    ///
    /// As [`try_read`](Self::try_read).
    ///
    /// # Examples
    ///
    /// ```
    /// let (mut producer, mut consumer) = ring::channel(4, |_| 0u8).unwrap();
    /// for b in 1..=3 {
    ///     producer.try_push(b).unwrap();
    /// }
    /// assert_eq!(consumer.try_read_up_to(2).unwrap().len(), 2);
    /// assert_eq!(consumer.try_read_up_to(2).unwrap().len(), 1);
    /// ```
    #[inline]
    pub fn try_read_up_to(&mut self, max: usize) -> Result<Batch<'_, T>, TryReadError> {
        let mut available = self.cached_available();
        // The cached copy answers only when it holds all the caller asked for: `try_read` means
        // everything published so far, not everything seen last time.
        if available == 0 || available < max {
            available = self.available();
            if available == 0 {
                // Acquire: pairs with the producer's Release store of the flag, after its last
                // publish. Checked inline: this is the loop of a consumer polling an empty ring.
                if !self.shared.producer_closed.load(Ordering::Acquire) {
                    return Err(TryReadError::Empty);
                }
                available = self.after_disconnect()?;
            }
        }
        Ok(Batch {
            start: self.next,
            len: available.min(max),
            consumer: self,
        })
    }

    /// What is left once the producer is gone: the flag was seen with Acquire after its last
    /// publish, so this reload sees every event it ever published.
    #[cold]
    #[inline(never)]
    fn after_disconnect(&mut self) -> Result<usize, TryReadError> {
        match self.available() {
            0 => Err(TryReadError::Disconnected),
            available => Ok(available),
        }
    }

    /// Takes every event published so far as one batch, waiting for at least one with the
    /// ring's [`WaitStrategy`].
    ///
    /// # Errors
    ///
    /// [`Disconnected`] once every event is read and the producer is gone.
    ///
    /// # Examples
    ///
    /// ```
    /// let (mut producer, mut consumer) = ring::channel(4, |_| 0u8).unwrap();
    /// std::thread::spawn(move || producer.push(42).unwrap());
    /// assert_eq!(consumer.read().unwrap()[0], 42);
    /// assert_eq!(consumer.read().unwrap_err(), ring::Disconnected);
    /// ```
    pub fn read(&mut self) -> Result<Batch<'_, T>, Disconnected> {
        self.read_up_to(usize::MAX)
    }

    /// Takes at most `max` of the events published so far as one batch, waiting for at least
    /// one with the ring's [`WaitStrategy`].
    ///
    /// # Errors
    ///
    /// As [`read`](Self::read).
    pub fn read_up_to(&mut self, max: usize) -> Result<Batch<'_, T>, Disconnected> {
        if self.cached_available() == 0 {
            self.wait_for_events();
        }
        self.try_read_up_to(max).map_err(|_| Disconnected)
    }

    /// Waits until an event is published or the producer is gone.
    #[cold]
    fn wait_for_events(&mut self) {
        let shared = &*self.shared;
        let next = self.next;
        let mut published = self.published_cache;
        self.wait.wait_until(&shared.consumer_sleep, || {
            published = shared.published.load(Ordering::Acquire);
            published != next || shared.producer_closed.load(Ordering::Acquire)
        });
        self.published_cache = published;
    }

    /// Announces that this consumer is about to sleep outside the ring (in its own
    /// `epoll_wait`, say) until something is published, so that the producer calls the hook
    /// given to [`Builder::wake_consumer_with`](crate::Builder::wake_consumer_with) when it next
    /// publishes, or when it is dropped.
    ///
    /// Returns `None`, announcing nothing, when there is no need to sleep: events are waiting
    /// or the producer is gone. Otherwise sleep while the returned [`Sleep`] is alive, then
    /// drop it; the hook may also fire spuriously, for example just after the drop.
    ///
    /// # Panics
    ///
    /// If the ring was built without a consumer wake hook: the sleep could never end.
    ///
    /// # Examples
    ///
    /// A consumer that sleeps on a channel of its own, as the server's worker sleeps in
    /// `epoll_wait` on an eventfd:
    ///
    /// ```
    /// use std::sync::mpsc;
    ///
    /// let (bell_tx, bell_rx) = mpsc::sync_channel(1);
    /// let (mut producer, mut consumer) = ring::Builder::new(8)
    ///     .wake_consumer_with(move || { let _ = bell_tx.try_send(()); })
    ///     .build(|_| 0u32)
    ///     .unwrap();
    /// let writer = std::thread::spawn(move || {
    ///     for i in 0..100 {
    ///         producer.push(i).unwrap();
    ///     }
    /// });
    /// let mut sum = 0;
    /// loop {
    ///     match consumer.try_read() {
    ///         Ok(batch) => {
    ///             sum += batch.iter().sum::<u32>();
    ///             continue;
    ///         }
    ///         Err(ring::TryReadError::Disconnected) => break,
    ///         Err(ring::TryReadError::Empty) => {}
    ///     }
    ///     // Announce, then sleep only if nothing arrived in between.
    ///     if let Some(_sleep) = consumer.announce_sleep() {
    ///         bell_rx.recv().unwrap();
    ///     }
    /// }
    /// writer.join().unwrap();
    /// assert_eq!(sum, 4950);
    /// ```
    pub fn announce_sleep(&mut self) -> Option<Sleep<'_>> {
        let shared = &*self.shared;
        assert!(
            shared.consumer_sleep.has_hook(),
            "Consumer::announce_sleep needs a hook from Builder::wake_consumer_with"
        );
        if self.cached_available() > 0 {
            return None;
        }
        shared.consumer_sleep.announce_external();
        let published = shared.published.load(Ordering::Acquire);
        if published != self.next || shared.producer_closed.load(Ordering::Acquire) {
            shared.consumer_sleep.withdraw();
            self.published_cache = published;
            return None;
        }
        Some(Sleep::new(&shared.consumer_sleep))
    }

    /// Gives every slot below `end` back to the producer with one `Release` store.
    #[inline]
    fn release_to(&mut self, end: u64) {
        debug_assert!(self.next <= end && end <= self.published_cache);
        // Release: pairs with the producer's Acquire load of `released`, so it reuses a slot
        // only after this consumer is done with it.
        self.shared.released.store(end, Ordering::Release);
        // After the store, for the same reason as in `Producer::publish_to`.
        self.next = end;
        if self.wake_producer {
            self.shared.producer_sleep.wake();
        }
    }
}

impl<T> Drop for Consumer<T> {
    fn drop(&mut self) {
        self.shared.consumer_closed.store(true, Ordering::Release);
        // A producer parked or asleep waiting for space must learn that none will come.
        self.shared.producer_sleep.wake();
    }
}

impl<T> fmt::Debug for Consumer<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Consumer")
            .field("capacity", &self.capacity())
            .field("next", &self.next)
            .field("wait", &self.wait)
            .finish_non_exhaustive()
    }
}

/// Published events taken by the [`Consumer`], readable and writable in place.
///
/// A batch of `n` events covers the sequences `start .. start + n`. It indexes (`batch[i]`),
/// iterates ([`iter`](Self::iter), [`iter_mut`](Self::iter_mut), an [`ExactSizeIterator`]) and
/// slices ([`as_mut_slices`](Self::as_mut_slices)).
///
/// Dropping a batch releases all of it, with one `Release` store;
/// [`release_first`](Self::release_first) releases a prefix and leaves the rest for the next
/// read. A released slot may be overwritten at once, so copy out whatever is still needed first.
#[must_use = "dropping a batch releases its events unread"]
pub struct Batch<'a, T> {
    consumer: &'a mut Consumer<T>,
    start: u64,
    len: usize,
}

impl<T> Batch<'_, T> {
    /// The number of events in the batch.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the batch holds no event.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The sequence of the first event: the number of events read before it.
    pub fn sequence(&self) -> u64 {
        self.start
    }

    /// The events as at most two slices, in order: the ring wraps around between them.
    pub fn as_slices(&self) -> (&[T], &[T]) {
        let ((a, a_len), (b, b_len)) =
            self.consumer
                .slots
                .runs(self.start, self.len, &self.consumer.shared.trackers);
        // SAFETY: the batch lies below `published`, which the producer no longer touches, and
        // at or above `released`, which it cannot reuse yet; the `&mut Consumer` it borrows
        // makes it the only batch. The runs are disjoint, and the borrows are tied to `&self`.
        unsafe {
            (
                slice::from_raw_parts(a, a_len),
                slice::from_raw_parts(b, b_len),
            )
        }
    }

    /// The events as at most two mutable slices, in order.
    ///
    /// # Examples
    ///
    /// ```
    /// let (mut producer, mut consumer) = ring::channel(2, |_| Vec::<u8>::with_capacity(16)).unwrap();
    /// let mut claim = producer.try_claim(1).unwrap();
    /// claim[0].clear();
    /// claim[0].extend_from_slice(b"olleh");
    /// claim.publish();
    ///
    /// let mut batch = consumer.try_read().unwrap();
    /// let (events, _) = batch.as_mut_slices();
    /// events[0].reverse(); // in place, in the slot
    /// assert_eq!(events[0], b"hello");
    /// ```
    pub fn as_mut_slices(&mut self) -> (&mut [T], &mut [T]) {
        let ((a, a_len), (b, b_len)) =
            self.consumer
                .slots
                .runs(self.start, self.len, &self.consumer.shared.trackers);
        // SAFETY: as in `as_slices`, and `&mut self` makes these the only borrows.
        unsafe {
            (
                slice::from_raw_parts_mut(a, a_len),
                slice::from_raw_parts_mut(b, b_len),
            )
        }
    }

    /// Iterates over the events in order.
    pub fn iter(&self) -> std::iter::Chain<slice::Iter<'_, T>, slice::Iter<'_, T>> {
        let (first, second) = self.as_slices();
        first.iter().chain(second)
    }

    /// Iterates over the events in order, mutably: an [`ExactSizeIterator`] of `&mut T`.
    pub fn iter_mut(&mut self) -> IterMut<'_, T> {
        let (first, second) = self.as_mut_slices();
        IterMut::new(first, second)
    }

    /// Releases the whole batch: the same as dropping it.
    pub fn release(self) {}

    /// Releases the first `n` events only; the rest stay for the next read.
    ///
    /// # Panics
    ///
    /// If `n` exceeds the length of the batch.
    ///
    /// # Examples
    ///
    /// ```
    /// let (mut producer, mut consumer) = ring::channel(4, |_| 0u8).unwrap();
    /// for b in 1..=3 {
    ///     producer.try_push(b).unwrap();
    /// }
    /// consumer.try_read().unwrap().release_first(1);
    /// assert_eq!(consumer.try_read().unwrap()[0], 2);
    /// ```
    pub fn release_first(mut self, n: usize) {
        assert!(
            n <= self.len,
            "cannot release {n} events of a batch of {}",
            self.len
        );
        self.len = n;
    }

    #[inline]
    fn slot(&self, index: usize) -> *mut T {
        assert!(
            index < self.len,
            "index {index} out of a batch of {}",
            self.len
        );
        self.consumer
            .slots
            .slot(self.start + index as u64, &self.consumer.shared.trackers)
    }
}

impl<T> Drop for Batch<'_, T> {
    #[inline]
    fn drop(&mut self) {
        let end = self.start + self.len as u64;
        self.consumer.release_to(end);
    }
}

impl<T> ops::Index<usize> for Batch<'_, T> {
    type Output = T;

    fn index(&self, index: usize) -> &T {
        // SAFETY: `slot` checked that the index is inside the batch, which only this consumer
        // may touch (see `as_slices`); the borrow is tied to `&self`.
        unsafe { &*self.slot(index) }
    }
}

impl<T> ops::IndexMut<usize> for Batch<'_, T> {
    fn index_mut(&mut self, index: usize) -> &mut T {
        // SAFETY: as for `Index`, and `&mut self` makes this the only borrow of the slot.
        unsafe { &mut *self.slot(index) }
    }
}

impl<'b, T> IntoIterator for &'b mut Batch<'_, T> {
    type Item = &'b mut T;
    type IntoIter = IterMut<'b, T>;

    fn into_iter(self) -> IterMut<'b, T> {
        self.iter_mut()
    }
}

impl<T> fmt::Debug for Batch<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Batch")
            .field("sequence", &self.start)
            .field("len", &self.len)
            .finish()
    }
}
