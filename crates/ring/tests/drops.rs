//! Drop accounting: every value the factory makes, every value pushed or written into a slot, and
//! every clone is dropped exactly once, whatever the ring's state when its endpoints go.

mod common;

use ring::{Builder, PushError, TryPushError};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex, MutexGuard};

/// The books on every [`Tracked`] value of one test: which were made and how often each was
/// dropped. Each test has its own, so tests running in parallel do not see each other's values.
#[derive(Default)]
struct Registry {
    /// `drops[id]` is how many times value `id` was dropped; the length is how many were made.
    drops: Mutex<Vec<usize>>,
}

impl Registry {
    fn new() -> Arc<Self> {
        Arc::default()
    }

    fn books(&self) -> MutexGuard<'_, Vec<usize>> {
        // A test that panicked while holding the lock leaves the books intact; do not panic
        // again in a `drop` during unwinding.
        self.drops
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn make(self: &Arc<Self>, payload: u64) -> Tracked {
        let mut books = self.books();
        books.push(0);
        Tracked {
            id: books.len() - 1,
            payload,
            registry: Arc::clone(self),
        }
    }

    fn made(&self) -> usize {
        self.books().len()
    }

    /// How many times value `id` was dropped.
    fn drops_of(&self, id: usize) -> usize {
        self.books()[id]
    }

    /// Checks that exactly `expected` values are alive and none was dropped twice.
    #[track_caller]
    fn check_live(&self, expected: usize, context: &str) {
        let books = self.books();
        let twice: Vec<usize> = (0..books.len()).filter(|&id| books[id] > 1).collect();
        assert!(
            twice.is_empty(),
            "{context}: values dropped twice: {twice:?}"
        );
        let live = books.iter().filter(|&&drops| drops == 0).count();
        assert_eq!(
            live,
            expected,
            "{context}: live values ({} made)",
            books.len()
        );
    }

    /// Checks that every value made was dropped exactly once.
    #[track_caller]
    fn check_all_dropped_once(&self) {
        let books = self.books();
        let wrong: Vec<(usize, usize)> = books
            .iter()
            .copied()
            .enumerate()
            .filter(|&(_, drops)| drops != 1)
            .collect();
        assert!(
            wrong.is_empty(),
            "values not dropped exactly once, as (id, drops): {wrong:?} of {} made",
            books.len()
        );
    }
}

/// A value that reports its drop, and counts its clones as new values.
struct Tracked {
    id: usize,
    payload: u64,
    registry: Arc<Registry>,
}

impl Clone for Tracked {
    fn clone(&self) -> Self {
        self.registry.make(self.payload)
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.registry.books()[self.id] += 1;
    }
}

impl std::fmt::Debug for Tracked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tracked#{}({})", self.id, self.payload)
    }
}

/// Which endpoint goes first.
#[derive(Clone, Copy, Debug)]
enum Order {
    ProducerFirst,
    ConsumerFirst,
}

/// Builds a ring of `capacity` tracked values, runs `scenario` on it, drops the endpoints in
/// `order`, and checks that nothing is dropped before the second endpoint goes and everything is
/// dropped exactly once after. `scenario` may take values out, but must drop them itself.
fn check(
    capacity: usize,
    order: Order,
    scenario: impl FnOnce(&Arc<Registry>, &mut ring::Producer<Tracked>, &mut ring::Consumer<Tracked>),
) {
    let registry = Registry::new();
    let (mut producer, mut consumer) =
        ring::channel(capacity, |i| registry.make(1000 + i as u64)).unwrap();
    registry.check_live(capacity, "after the factory");
    scenario(&registry, &mut producer, &mut consumer);
    // Whatever happened, the slots hold exactly `capacity` values and nothing else is alive.
    let context = format!("capacity {capacity}, {order:?}");
    registry.check_live(capacity, &format!("{context}, before the drops"));
    drop_in_order(order, producer, consumer, || {
        // The other endpoint still holds the slots.
        registry.check_live(capacity, &format!("{context}, after the first drop"));
    });
    registry.check_all_dropped_once();
}

const ORDERS: [Order; 2] = [Order::ProducerFirst, Order::ConsumerFirst];

/// Drops the endpoints in `order`, running `between` after the first drop.
fn drop_in_order<P, C>(order: Order, producer: P, consumer: C, between: impl FnOnce()) {
    match order {
        Order::ProducerFirst => {
            drop(producer);
            between();
            drop(consumer);
        }
        Order::ConsumerFirst => {
            drop(consumer);
            between();
            drop(producer);
        }
    }
}

#[test]
fn an_untouched_ring_drops_the_factory_values() {
    for order in ORDERS {
        for capacity in [1, 2, 8] {
            check(capacity, order, |_, _, _| {});
        }
    }
}

#[test]
fn unread_events_are_dropped_with_the_ring() {
    for order in ORDERS {
        for capacity in [1, 4, 8] {
            for pushed in [1, capacity / 2, capacity] {
                check(capacity, order, |registry, producer, _| {
                    for i in 0..pushed {
                        producer.try_push(registry.make(i as u64)).unwrap();
                    }
                });
            }
        }
    }
}

/// A push drops the value it replaces at once, not later: the ring never holds more than its
/// capacity, however many values pass through.
#[test]
fn a_push_drops_the_value_it_replaces() {
    for order in ORDERS {
        check(4, order, |registry, producer, consumer| {
            let rounds = if cfg!(miri) { 10 } else { 250 };
            for round in 0..rounds {
                let value = registry.make(round);
                let id = value.id;
                producer.try_push(value).unwrap();
                // The slot held the factory's value first, then the push from four rounds ago.
                let replaced = if round < 4 { round as usize } else { id - 4 };
                assert_eq!(registry.drops_of(replaced), 1, "round {round}");
                assert_eq!(registry.drops_of(id), 0, "round {round}: the pushed value");
                registry.check_live(4, &format!("round {round}"));
                if round % 3 == 2 {
                    consumer.try_read().unwrap().release();
                }
                // Keep the ring from filling: three pushes per read of everything.
            }
        });
    }
}

/// A value that could not be pushed comes back to the caller, who drops it: once.
#[test]
fn failed_pushes_give_the_value_back() {
    let registry = Registry::new();
    let (mut producer, consumer) = ring::channel(1, |_| registry.make(0)).unwrap();
    producer.push(registry.make(1)).unwrap();

    let value = match producer.try_push(registry.make(2)) {
        Err(TryPushError::Full(value)) => value,
        other => panic!("expected Full, got {other:?}"),
    };
    assert_eq!(value.payload, 2);
    registry.check_live(2, "after Full: the slot's value and the returned one");
    drop(value);

    drop(consumer);
    let error = producer.try_push(registry.make(3)).unwrap_err();
    assert!(matches!(error, TryPushError::Disconnected(_)), "{error:?}");
    assert_eq!(error.into_inner().payload, 3);
    let PushError(value) = producer.push(registry.make(4)).unwrap_err();
    assert_eq!(value.payload, 4);
    drop(value);
    registry.check_live(1, "the slot's value only");
    drop(producer);
    registry.check_all_dropped_once();
}

/// Values written into a claim that is dropped unpublished stay in the slots: the next claim
/// finds them, and the ring drops them in the end.
#[test]
fn unpublished_claims_keep_their_values_in_the_slots() {
    for order in ORDERS {
        check(4, order, |registry, producer, consumer| {
            let mut claim = producer.try_claim(3).unwrap();
            for i in 0..3 {
                // The assignment drops the factory value at once.
                claim[i] = registry.make(10 + i as u64);
            }
            registry.check_live(4, "inside the claim");
            drop(claim);

            let mut claim = producer.try_claim(4).unwrap();
            let payloads: Vec<u64> = claim.iter_mut().map(|value| value.payload).collect();
            assert_eq!(payloads, [10, 11, 12, 1003]);
            claim[3] = registry.make(13);
            claim.publish_first(2);
            let batch = consumer.try_read().unwrap();
            assert_eq!(
                batch.iter().map(|v| v.payload).collect::<Vec<_>>(),
                [10, 11]
            );
            batch.release_first(1);
        });
    }
}

/// The consumer can move values out of the slots and put others in; the ring drops what is in
/// the slots, the test drops what it took.
#[test]
fn values_swapped_out_of_a_batch_are_owned_by_the_taker() {
    for order in ORDERS {
        check(4, order, |registry, producer, consumer| {
            for i in 0..3 {
                producer.try_push(registry.make(i)).unwrap();
            }
            let mut batch = consumer.try_read().unwrap();
            let taken = std::mem::replace(&mut batch[1], registry.make(100));
            let copy = batch[0].clone();
            batch.release_first(2);
            registry.check_live(6, "four slots, the taken value and the copy");
            assert_eq!((taken.payload, copy.payload), (1, 0));
            drop((taken, copy));
        });
    }
}

/// A panic while a claim is open drops the claim unpublished; one while a batch is open releases
/// it. Either way nothing leaks and the ring goes on working.
#[test]
fn panics_inside_claims_and_batches_leak_nothing() {
    for order in ORDERS {
        check(2, order, |registry, producer, consumer| {
            let panicked = catch_unwind(AssertUnwindSafe(|| {
                let mut claim = producer.try_claim(2).unwrap();
                claim[0] = registry.make(1);
                panic!("a panic with a claim open (this is expected)");
            }));
            assert!(panicked.is_err());
            assert_eq!(
                consumer.available(),
                0,
                "a claim dropped in a panic published"
            );

            let mut claim = producer.try_claim(2).unwrap();
            assert_eq!(
                claim[0].payload, 1,
                "the write before the panic stays in the slot"
            );
            claim[1] = registry.make(2);
            claim.publish();

            let panicked = catch_unwind(AssertUnwindSafe(|| {
                let batch = consumer.try_read().unwrap();
                assert_eq!(batch.len(), 2);
                panic!("a panic with a batch open (this is expected)");
            }));
            assert!(panicked.is_err());
            assert_eq!(
                producer.free_slots(),
                2,
                "a batch dropped in a panic kept its slots"
            );
        });
    }
}

/// A factory that panics halfway leaves no value behind.
#[test]
fn a_panicking_factory_drops_what_it_made() {
    let registry = Registry::new();
    let built = catch_unwind(AssertUnwindSafe(|| {
        ring::channel(8, |i| {
            assert!(i < 5, "the factory fails at slot 5 (this is expected)");
            registry.make(i as u64)
        })
    }));
    assert!(built.is_err());
    assert_eq!(registry.made(), 5);
    registry.check_all_dropped_once();
}

/// The wake hooks are owned by the ring: what they capture is dropped with it, once.
#[test]
fn wake_hooks_are_dropped_with_the_ring() {
    for order in ORDERS {
        let registry = Registry::new();
        let for_consumer = registry.make(0);
        let for_producer = registry.make(1);
        // Each hook owns its whole value: naming only a field would capture only that field.
        let (producer, consumer) = Builder::new(2)
            .wake_consumer_with(move || assert_eq!(for_consumer.clone().payload, 0))
            .wake_producer_with(move || assert_eq!(for_producer.clone().payload, 1))
            .build(|_| 0u8)
            .unwrap();
        registry.check_live(2, "the hooks' values");
        drop_in_order(order, producer, consumer, || {
            registry.check_live(2, "after the first drop");
        });
        registry.check_all_dropped_once();
    }
}

/// Values made on the producer's thread and dropped on the consumer's (or with the ring, on
/// whichever thread drops it last) are dropped exactly once, for every strategy.
#[test]
fn values_crossing_threads_are_dropped_once() {
    let events: u64 = if cfg!(miri) { 100 } else { 20_000 };
    for strategy in common::STRATEGIES {
        let registry = Registry::new();
        let (mut producer, mut consumer) = Builder::new(4)
            .wait_strategy(strategy)
            .build(|i| registry.make(u64::MAX - i as u64))
            .unwrap();

        let maker = Arc::clone(&registry);
        let writer = common::spawn("drops-writer", move || {
            for i in 0..events {
                producer.push(maker.make(i)).unwrap();
            }
        });
        let progress = common::Progress::default();
        let read = progress.clone();
        let reader = common::spawn("drops-reader", move || {
            let mut watchdog = common::Watchdog::new("reading tracked values");
            let mut taken = Vec::new();
            let mut next = 0;
            while let Ok(mut batch) = consumer.read() {
                watchdog.tick();
                for value in batch.iter_mut() {
                    assert_eq!(value.payload, next);
                    // Take every third value out, leaving a copy in the slot; the copy dies
                    // when the slot is next written.
                    if next % 3 == 0 {
                        let copy = value.clone();
                        taken.push(std::mem::replace(value, copy));
                    }
                    next += 1;
                }
                read.set(next);
                watchdog.progressed();
            }
            assert_eq!(next, events, "events read");
            taken.len()
        });
        writer.join_while(&progress);
        let taken = reader.join_while(&progress);
        assert_eq!(taken as u64, events.div_ceil(3));
        // Both endpoints are gone, so the ring is too, on one of the threads.
        registry.check_all_dropped_once();
    }
}

/// The consumer leaves halfway: the producer's next push fails and gives its value back, and
/// every value, read, unread or returned, is dropped once.
#[test]
fn a_consumer_leaving_halfway_leaks_nothing() {
    let read_before_leaving: u64 = if cfg!(miri) { 10 } else { 5_000 };
    for strategy in common::STRATEGIES {
        let registry = Registry::new();
        let (mut producer, mut consumer) = Builder::new(4)
            .wait_strategy(strategy)
            .build(|_| registry.make(u64::MAX))
            .unwrap();

        let maker = Arc::clone(&registry);
        let progress = common::Progress::default();
        let pushed = progress.clone();
        let writer = common::spawn("drops-writer", move || {
            let mut watchdog = common::Watchdog::new("pushing until the consumer leaves");
            for i in 0.. {
                watchdog.tick();
                if let Err(PushError(value)) = producer.push(maker.make(i)) {
                    assert_eq!(value.payload, i, "the value given back");
                    return i;
                }
                pushed.set(i);
                watchdog.progressed();
            }
            unreachable!()
        });
        let reader = common::spawn("drops-reader", move || {
            let mut next = 0;
            while next < read_before_leaving {
                let batch = consumer.read_up_to(3).unwrap();
                for value in batch.iter() {
                    assert_eq!(value.payload, next);
                    next += 1;
                }
            }
            // The batch left unread (up to three events) goes with the consumer.
        });
        reader.join_while(&progress);
        let refused = writer.join_while(&progress);
        assert!(refused >= read_before_leaving, "refused push {refused}");
        assert_eq!(registry.made() as u64, 4 + refused + 1);
        registry.check_all_dropped_once();
    }
}
