//! Model-based tests: random operations on a small ring, checked step by step against a `VecDeque`
//! model, and exhaustive tests of the small cases (capacities, wrap-around, errors, panics).

mod common;

use proptest::prelude::*;
use ring::{
    Builder, CapacityError, ClaimError, PushError, TryClaimError, TryPushError, TryReadError,
};
use std::collections::VecDeque;

/// What the factory puts in slot `i`: `FACTORY + i`, far from the small fresh values the tests
/// write, so that a factory value showing up as an event cannot pass for one.
const FACTORY: u32 = 1 << 30;

/// One step of a model test.
#[derive(Clone, Copy, Debug)]
enum Op {
    TryPush,
    /// `try_claim(n)`, fill every claimed slot the `fill` way, then end the claim the `end` way.
    Claim {
        n: usize,
        fill: Fill,
        end: End,
    },
    /// `try_read_up_to(max)` (`try_read` for `None`), rewrite the events in place if `rewrite`,
    /// then end the batch the `end` way.
    Read {
        max: Option<usize>,
        rewrite: bool,
        end: End,
    },
    Available,
    FreeSlots,
}

/// The three ways to reach a claim's slots.
#[derive(Clone, Copy, Debug)]
enum Fill {
    Index,
    IterMut,
    Slices,
}

/// How a claim or a batch ends.
#[derive(Clone, Copy, Debug)]
enum End {
    /// `publish` or `release`.
    All,
    /// `publish_first(k)` or `release_first(k)`, with `k` reduced modulo `len + 1`.
    First(usize),
    /// Dropped: a claim publishes nothing, a batch releases everything.
    Drop,
}

/// What the ring should hold, kept the obvious way.
struct Model {
    capacity: usize,
    /// Published events not yet released, oldest first.
    events: VecDeque<u32>,
    /// What each slot holds, by `sequence % capacity`. The ring hands a slot's old contents out
    /// again in the next claim, and keeps the consumer's in-place writes, so the model must too.
    slots: Vec<u32>,
    /// Events published so far: the sequence of the next claim.
    published: u64,
    /// The next fresh value to write.
    next_value: u32,
}

impl Model {
    fn new(capacity: usize) -> Self {
        Self {
            capacity,
            events: VecDeque::new(),
            slots: (0..capacity).map(factory).collect(),
            published: 0,
            next_value: 1,
        }
    }

    fn released(&self) -> u64 {
        self.published - self.events.len() as u64
    }

    fn free(&self) -> usize {
        self.capacity - self.events.len()
    }

    fn slot(&mut self, sequence: u64) -> &mut u32 {
        &mut self.slots[(sequence % self.capacity as u64) as usize]
    }

    /// The length of the first of the two runs that `len` slots from `sequence` make: up to the
    /// end of the slot array.
    fn first_run(&self, sequence: u64, len: usize) -> usize {
        len.min(self.capacity - (sequence % self.capacity as u64) as usize)
    }

    fn fresh(&mut self, n: usize) -> Vec<u32> {
        let values = (self.next_value..).take(n).collect();
        self.next_value += n as u32;
        values
    }
}

fn factory(i: usize) -> u32 {
    FACTORY + i as u32
}

/// `assert!` for [`check`]: fails the case with a message instead of panicking, so that proptest
/// shrinks a failure quietly. (`prop_assert!` cannot take `{name}` arguments in its message.)
macro_rules! ensure {
    ($condition:expr, $($message:tt)+) => {
        if !$condition {
            return Err(TestCaseError::fail(format!($($message)+)));
        }
    };
}

/// `assert_eq!` for [`check`], as [`ensure!`] is `assert!`.
macro_rules! ensure_eq {
    ($left:expr, $right:expr) => {
        ensure_eq!($left, $right, "values differ")
    };
    ($left:expr, $right:expr, $($message:tt)+) => {{
        let (left, right) = (&$left, &$right);
        ensure!(left == right, "{}\n  left: {left:?}\n right: {right:?}", format!($($message)+));
    }};
}

/// Runs `ops` on a ring of `capacity` slots and on the model, comparing every result, then
/// drains the ring and checks that it disconnects. Failures are returned rather than panicked, so
/// that proptest shrinks them quietly.
fn check(capacity: usize, ops: &[Op]) -> Result<(), TestCaseError> {
    let (mut producer, mut consumer) = ring::channel(capacity, factory).unwrap();
    let mut model = Model::new(capacity);
    for (step, &op) in ops.iter().enumerate() {
        let context = format!("step {step}, {op:?}, capacity {capacity}");
        match op {
            Op::TryPush => {
                let value = model.fresh(1)[0];
                match producer.try_push(value) {
                    Ok(()) => {
                        ensure!(model.free() > 0, "{context}: pushed into a full ring");
                        *model.slot(model.published) = value;
                        model.events.push_back(value);
                        model.published += 1;
                    }
                    Err(error) => {
                        ensure_eq!(model.free(), 0, "{context}: {error} with room left");
                        // The value comes back, unchanged.
                        ensure_eq!(error, TryPushError::Full(value), "{context}");
                    }
                }
            }
            Op::Claim { n, fill, end } => {
                let free = model.free();
                let mut claim = match producer.try_claim(n) {
                    Ok(claim) => claim,
                    Err(error) => {
                        let expected = if n > capacity {
                            TryClaimError::TooLarge {
                                requested: n,
                                capacity,
                            }
                        } else {
                            TryClaimError::Full { free }
                        };
                        ensure_eq!(error, expected, "{context}");
                        ensure!(n > free, "{context}: {error} with {free} free");
                        continue;
                    }
                };
                ensure!(n <= free, "{context}: claimed with only {free} free");
                ensure_eq!(claim.len(), n, "{context}");
                ensure_eq!(claim.is_empty(), n == 0, "{context}");
                ensure_eq!(claim.sequence(), model.published, "{context}");

                // The slots still hold what was last put in them, split where the ring wraps.
                let stale: Vec<u32> = (0..n as u64)
                    .map(|i| *model.slot(model.published + i))
                    .collect();
                let first_run = model.first_run(model.published, n);
                let (first, second) = claim.as_mut_slices();
                ensure_eq!((first.len(), second.len()), (first_run, n - first_run));
                let seen: Vec<u32> = first.iter().chain(&*second).copied().collect();
                ensure_eq!(seen, stale, "{context}: stale slot contents");

                let values = model.fresh(n);
                match fill {
                    Fill::Index => {
                        for (i, &value) in values.iter().enumerate() {
                            claim[i] = value;
                        }
                    }
                    Fill::IterMut => {
                        let slots = claim.iter_mut();
                        ensure_eq!(slots.len(), n, "{context}");
                        for (slot, &value) in slots.zip(&values) {
                            *slot = value;
                        }
                    }
                    Fill::Slices => {
                        let (first, second) = claim.as_mut_slices();
                        for (slot, &value) in first.iter_mut().chain(second).zip(&values) {
                            *slot = value;
                        }
                    }
                }
                for (i, &value) in values.iter().enumerate() {
                    ensure_eq!(claim[i], value, "{context}: slot {i} after the fill");
                }
                let published = match end {
                    End::All => {
                        claim.publish();
                        n
                    }
                    End::First(k) => {
                        let k = k % (n + 1);
                        claim.publish_first(k);
                        k
                    }
                    End::Drop => {
                        drop(claim);
                        0
                    }
                };
                // Even unpublished, the writes stay in the slots for the next claim to see.
                for (i, &value) in values.iter().enumerate() {
                    *model.slot(model.published + i as u64) = value;
                }
                model.events.extend(&values[..published]);
                model.published += published as u64;
            }
            Op::Read { max, rewrite, end } => {
                let result = match max {
                    None => consumer.try_read(),
                    Some(max) => consumer.try_read_up_to(max),
                };
                let mut batch = match result {
                    Ok(batch) => batch,
                    Err(error) => {
                        ensure_eq!(error, TryReadError::Empty, "{context}");
                        ensure!(
                            model.events.is_empty(),
                            "{context}: Empty with {} events published and unread",
                            model.events.len()
                        );
                        continue;
                    }
                };
                ensure!(!model.events.is_empty(), "{context}: a batch from nothing");
                // "Takes every event published so far", or `max` of them.
                let len = max.unwrap_or(usize::MAX).min(model.events.len());
                ensure_eq!(
                    batch.len(),
                    len,
                    "{context}: {} events are published and unread",
                    model.events.len()
                );
                ensure_eq!(batch.is_empty(), len == 0, "{context}");
                ensure_eq!(batch.sequence(), model.released(), "{context}");

                let expected: Vec<u32> = model.events.iter().take(len).copied().collect();
                ensure_eq!(common::values(&batch), expected, "{context}");
                for (i, &value) in expected.iter().enumerate() {
                    ensure_eq!(batch[i], value, "{context}: batch[{i}]");
                }
                let first_run = model.first_run(model.released(), len);
                let (first, second) = batch.as_slices();
                ensure_eq!((first.len(), second.len()), (first_run, len - first_run));

                if rewrite {
                    let events = batch.iter_mut();
                    ensure_eq!(events.len(), len, "{context}");
                    for event in events {
                        *event = !*event;
                    }
                    let released = model.released();
                    for i in 0..len {
                        model.events[i] = !model.events[i];
                        *model.slot(released + i as u64) = model.events[i];
                    }
                    let rewritten: Vec<u32> = model.events.iter().take(len).copied().collect();
                    ensure_eq!(common::values(&batch), rewritten);
                }
                let released = match end {
                    End::All => {
                        batch.release();
                        len
                    }
                    End::First(k) => {
                        let k = k % (len + 1);
                        batch.release_first(k);
                        k
                    }
                    End::Drop => {
                        drop(batch);
                        len
                    }
                };
                model.events.drain(..released);
            }
            Op::Available => {
                ensure_eq!(consumer.available(), model.events.len(), "{context}");
            }
            Op::FreeSlots => {
                ensure_eq!(producer.free_slots(), model.free(), "{context}");
            }
        }
    }

    // Whatever is left comes out in order, then the dropped producer shows.
    drop(producer);
    let mut left = Vec::new();
    // Each read takes at least one event, so this many reads suffice.
    for _ in 0..=capacity {
        match consumer.try_read() {
            Ok(batch) => left.extend(batch.iter().copied()),
            Err(error) => {
                ensure_eq!(error, TryReadError::Disconnected);
                break;
            }
        }
    }
    ensure_eq!(left, Vec::from(model.events), "the events left at the end");
    ensure_eq!(consumer.try_read().unwrap_err(), TryReadError::Disconnected);
    Ok(())
}

fn end() -> impl Strategy<Value = End> {
    prop_oneof![
        Just(End::All),
        (0..9usize).prop_map(End::First),
        Just(End::Drop)
    ]
}

fn op(capacity: usize) -> impl Strategy<Value = Op> {
    let fill = prop_oneof![Just(Fill::Index), Just(Fill::IterMut), Just(Fill::Slices)];
    // Mostly sizes that can fit, sometimes one too many, rarely absurd.
    let n = prop_oneof![8 => 0..=capacity, 1 => Just(capacity + 1), 1 => Just(usize::MAX)];
    let max = prop_oneof![Just(None), (0..=capacity + 1).prop_map(Some)];
    prop_oneof![
        3 => Just(Op::TryPush),
        3 => (n, fill, end()).prop_map(|(n, fill, end)| Op::Claim { n, fill, end }),
        5 => (max, any::<bool>(), end()).prop_map(|(max, rewrite, end)| Op::Read { max, rewrite, end }),
        1 => Just(Op::Available),
        1 => Just(Op::FreeSlots),
    ]
}

fn capacity_and_ops() -> impl Strategy<Value = (usize, Vec<Op>)> {
    let len = if cfg!(miri) { 1..40 } else { 1..300 };
    prop_oneof![Just(1usize), Just(2), Just(4), Just(8)].prop_flat_map(move |capacity| {
        (
            Just(capacity),
            prop::collection::vec(op(capacity), len.clone()),
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: if cfg!(miri) { 4 } else { 256 },
        // A failure found here becomes a named test (`model_partial_read_then_read_everything`)
        // rather than a line in a regressions file; Miri could not write that file anyway.
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn ring_matches_model((capacity, ops) in capacity_and_ops()) {
        check(capacity, &ops)?;
    }
}

/// A regression found by the property: a partial read leaves events in the consumer's cached
/// view; more are published; the next read must take all of them, not only the cached ones.
#[test]
fn model_partial_read_then_read_everything() -> Result<(), TestCaseError> {
    let read = |max, end| Op::Read {
        max,
        rewrite: false,
        end,
    };
    check(
        2,
        &[
            Op::TryPush,
            Op::TryPush,
            read(Some(1), End::Drop),
            Op::TryPush,
            read(None, End::All),
        ],
    )
}

/// Claims of three that publish two, reads of one that release it, and the rest, over and over:
/// the sequences walk around the ring many times, at every offset, and unpublished slots are
/// handed out again with what was written in them.
#[test]
fn model_long_runs_wrap_many_times() -> Result<(), TestCaseError> {
    use End::{All, Drop, First};
    use Fill::{IterMut, Slices};

    let rounds = if cfg!(miri) { 8 } else { 200 };
    for capacity in [1, 2, 4, 8] {
        let round = [
            Op::Claim {
                n: 3,
                fill: Slices,
                end: First(2),
            },
            Op::Read {
                max: Some(1),
                rewrite: true,
                end: First(1),
            },
            Op::Claim {
                n: 1,
                fill: IterMut,
                end: Drop,
            },
            Op::TryPush,
            Op::Available,
            Op::Read {
                max: None,
                rewrite: false,
                end: Drop,
            },
            Op::FreeSlots,
            Op::Read {
                max: None,
                rewrite: true,
                end: All,
            },
        ];
        let ops: Vec<Op> = round
            .iter()
            .copied()
            .cycle()
            .take(round.len() * rounds)
            .collect();
        check(capacity, &ops)?;
    }
    Ok(())
}

#[test]
fn capacity_must_be_a_nonzero_power_of_two() {
    for capacity in [0, 3, 5, 6, 7, 12, 1000, 1023, 1025, usize::MAX] {
        let mut calls = 0;
        let error = ring::channel(capacity, |_| calls += 1).unwrap_err();
        assert_eq!(error, CapacityError { capacity });
        // The message names the value that was refused.
        assert_eq!(
            error.to_string(),
            format!("ring capacity must be a power of two greater than zero, got {capacity}")
        );
        assert_eq!(
            calls, 0,
            "the factory ran for a refused capacity {capacity}"
        );
        let error = Builder::new(capacity).build(|_| 0u8).unwrap_err();
        assert_eq!(error, CapacityError { capacity });
    }
}

#[test]
fn every_power_of_two_builds_and_the_factory_fills_each_slot_once() {
    let largest = if cfg!(miri) { 64 } else { 4096 };
    for capacity in (0..)
        .map(|shift| 1usize << shift)
        .take_while(|&c| c <= largest)
    {
        let mut indices = Vec::new();
        let (mut producer, consumer) = ring::channel(capacity, |i| {
            indices.push(i);
            factory(i)
        })
        .unwrap();
        assert_eq!(indices, (0..capacity).collect::<Vec<_>>());
        assert_eq!(
            (producer.capacity(), consumer.capacity()),
            (capacity, capacity)
        );
        assert_eq!(producer.free_slots(), capacity);

        // The first claim over the whole ring sees slot i's factory value at index i.
        let claim = producer.try_claim(capacity).unwrap();
        for i in 0..capacity {
            assert_eq!(claim[i], factory(i), "capacity {capacity}, slot {i}");
        }
    }
}

/// The smallest rings work for every strategy, pushing and reading many times around.
#[test]
fn capacities_one_and_two_work() {
    for strategy in common::STRATEGIES {
        for capacity in [1, 2] {
            let (mut producer, mut consumer) = Builder::new(capacity)
                .wait_strategy(strategy)
                .build(|_| 0u64)
                .unwrap();
            let mut next = 0;
            let mut expected = 0;
            for round in 0..50 {
                for _ in 0..capacity {
                    // `push` on a ring with room must not wait.
                    producer.push(next).unwrap();
                    next += 1;
                }
                assert_eq!(
                    producer.try_push(u64::MAX),
                    Err(TryPushError::Full(u64::MAX))
                );
                assert_eq!(producer.free_slots(), 0);
                assert_eq!(consumer.available(), capacity);
                // Alternate the blocking and non-blocking reads; neither waits here.
                let batch = if round % 2 == 0 {
                    consumer.read().unwrap()
                } else {
                    consumer.try_read().unwrap()
                };
                assert_eq!(batch.len(), capacity, "{strategy:?}, capacity {capacity}");
                for &value in batch.iter() {
                    assert_eq!(value, expected);
                    expected += 1;
                }
                batch.release();
                assert_eq!(consumer.try_read().unwrap_err(), TryReadError::Empty);
            }
        }
    }
}

/// A claim or batch starting at every offset, of every length: the two slices cover exactly the
/// claimed events, split where the slot array ends.
#[test]
fn wrapping_claims_and_batches_split_into_two_slices() {
    for capacity in [1, 2, 4, 8] {
        for offset in 0..capacity {
            for n in 0..=capacity {
                let context = format!("capacity {capacity}, offset {offset}, n {n}");
                let (mut producer, mut consumer) = ring::channel(capacity, |_| 0usize).unwrap();
                // Move both sequences to `offset`.
                for _ in 0..offset {
                    producer.try_push(0).unwrap();
                    consumer.try_read().unwrap().release();
                }

                let mut claim = producer.try_claim(n).unwrap();
                let (first, second) = claim.as_mut_slices();
                assert_eq!(first.len() + second.len(), n, "{context}");
                assert_eq!(first.len(), n.min(capacity - offset), "{context}");
                for (i, slot) in first.iter_mut().chain(second).enumerate() {
                    *slot = 100 + i;
                }
                claim.publish();

                let expected: Vec<usize> = (100..100 + n).collect();
                match consumer.try_read() {
                    Ok(batch) => {
                        let (first, second) = batch.as_slices();
                        assert_eq!(first.len(), n.min(capacity - offset), "{context}");
                        assert_eq!([first, second].concat(), expected, "{context}");
                    }
                    Err(error) => {
                        assert_eq!(n, 0, "{context}: {error}");
                        assert_eq!(error, TryReadError::Empty);
                    }
                }
            }
        }
    }
}

/// `Batch::iter_mut` and `Claim::iter_mut` report their exact remaining length at every step,
/// across the wrap, and stay exhausted once done.
#[test]
fn iter_mut_is_exact_size_across_the_wrap() {
    let capacity = 8;
    let (mut producer, mut consumer) = ring::channel(capacity, |_| 0u32).unwrap();
    // Start both sequences at 5 so that most lengths wrap.
    for _ in 0..5 {
        producer.try_push(0).unwrap();
        consumer.try_read().unwrap().release();
    }
    for len in 0..=capacity {
        let mut claim = producer.try_claim(len).unwrap();
        let mut slots = claim.iter_mut();
        for (i, remaining) in (1..=len).rev().enumerate() {
            assert_eq!(slots.len(), remaining, "claim of {len}, step {i}");
            *slots.next().unwrap() = i as u32;
        }
        assert_eq!(slots.len(), 0);
        assert!(slots.next().is_none() && slots.next().is_none());
        claim.publish();

        if len == 0 {
            continue;
        }
        let mut batch = consumer.try_read().unwrap();
        assert_eq!(batch.len(), len);
        let mut events = batch.iter_mut();
        for (i, remaining) in (1..=len).rev().enumerate() {
            assert_eq!(events.len(), remaining, "batch of {len}, step {i}");
            assert_eq!(events.size_hint(), (remaining, Some(remaining)));
            assert_eq!(*events.next().unwrap(), i as u32);
        }
        assert_eq!(events.len(), 0);
        assert!(events.next().is_none() && events.next().is_none());
        // `&mut Batch` iterates the same way.
        assert_eq!((&mut batch).into_iter().len(), len);
    }
}

/// The consumer rewrites events in the slots themselves: the batch shows the rewrite, a later
/// read of an unreleased event shows it, and the producer's next claim finds the same buffers.
#[test]
fn consumer_mutates_slots_in_place() {
    let capacity = 2;
    let (mut producer, mut consumer) =
        ring::channel(capacity, |_| Vec::<u8>::with_capacity(16)).unwrap();

    // Where each slot's buffer lives, to show that nothing is copied.
    let mut claim = producer.try_claim(capacity).unwrap();
    let buffers: Vec<*const u8> = claim.iter_mut().map(|buffer| buffer.as_ptr()).collect();
    for (slot, word) in claim.iter_mut().zip(["olleh", "dlrow"]) {
        slot.clear();
        slot.extend_from_slice(word.as_bytes());
    }
    claim.publish();

    let mut batch = consumer.try_read().unwrap();
    for buffer in batch.iter_mut() {
        buffer.reverse();
    }
    assert_eq!(batch.iter().collect::<Vec<_>>(), [b"hello", b"world"]);
    assert_eq!(batch[0].as_ptr(), buffers[0]);
    // Keep the second event: the next read must show it rewritten.
    batch.release_first(1);
    let batch = consumer.try_read().unwrap();
    assert_eq!(batch.len(), 1);
    assert_eq!(batch[0], b"world");
    assert_eq!(batch[0].as_ptr(), buffers[1]);
    batch.release();

    // The producer gets the rewritten buffers back, in place.
    let claim = producer.try_claim(capacity).unwrap();
    assert_eq!(claim[0], b"hello");
    assert_eq!(claim[1], b"world");
    assert_eq!(
        [claim[0].as_ptr(), claim[1].as_ptr()],
        [buffers[0], buffers[1]]
    );
}

/// More slots than the ring has can never be claimed: both claims say so at once, whatever the
/// ring holds, and the blocking one does not wait (a wait would never end: nobody consumes).
#[test]
fn claims_larger_than_the_ring_are_too_large() {
    for strategy in common::STRATEGIES {
        for capacity in [1, 2, 4, 8] {
            for filled in [0, capacity / 2, capacity] {
                // On its own thread, so that a wait fails the test instead of hanging it.
                common::spawn("too-large", move || {
                    let (mut producer, mut consumer) = Builder::new(capacity)
                        .wait_strategy(strategy)
                        .build(|_| 0u8)
                        .unwrap();
                    for _ in 0..filled {
                        producer.try_push(1).unwrap();
                    }
                    for n in [capacity + 1, 2 * capacity, usize::MAX] {
                        let error = producer.try_claim(n).unwrap_err();
                        assert_eq!(
                            error,
                            TryClaimError::TooLarge {
                                requested: n,
                                capacity
                            }
                        );
                        assert_eq!(
                            error.to_string(),
                            format!("cannot claim {n} slots in a ring of capacity {capacity}")
                        );
                        let error = producer.claim(n).unwrap_err();
                        assert_eq!(
                            error,
                            ClaimError::TooLarge {
                                requested: n,
                                capacity
                            }
                        );
                    }
                    // The failures changed nothing.
                    assert_eq!(producer.free_slots(), capacity - filled);
                    assert_eq!(consumer.available(), filled);
                })
                .join();
            }
        }
    }
}

/// Empty claims and empty batches are allowed and change nothing.
#[test]
fn zero_sized_claims_and_reads() {
    let (mut producer, mut consumer) = ring::channel(2, |_| 0u8).unwrap();
    assert_eq!(consumer.try_read_up_to(0).unwrap_err(), TryReadError::Empty);
    producer.try_push(1).unwrap();
    producer.try_push(2).unwrap();

    // Even on a full ring, a claim of nothing succeeds, and publishing it publishes nothing.
    let claim = producer.try_claim(0).unwrap();
    assert!(claim.is_empty());
    claim.publish();
    producer.claim(0).unwrap().publish();
    assert_eq!(consumer.available(), 2);

    // With events waiting, a read of at most zero gives an empty batch that releases nothing.
    let batch = consumer.try_read_up_to(0).unwrap();
    assert!(batch.is_empty());
    batch.release();
    assert!(consumer.read_up_to(0).unwrap().is_empty());
    assert_eq!(producer.free_slots(), 0);
    assert_eq!(common::values(&consumer.try_read().unwrap()), [1, 2]);
}

/// The single-threaded view of disconnection: every call says it, and gives pushed values back.
#[test]
fn a_dropped_consumer_disconnects_every_producer_call() {
    let (mut producer, consumer) = ring::channel(2, |_| String::new()).unwrap();
    producer.try_push("kept".to_owned()).unwrap();
    assert!(!producer.is_abandoned());
    drop(consumer);
    assert!(producer.is_abandoned());
    // There is room, yet nothing can be published any more.
    assert_eq!(producer.free_slots(), 1);
    assert_eq!(
        producer.try_claim(1).unwrap_err(),
        TryClaimError::Disconnected
    );
    assert_eq!(
        producer.try_claim(0).unwrap_err(),
        TryClaimError::Disconnected
    );
    assert_eq!(producer.claim(1).unwrap_err(), ClaimError::Disconnected);
    let error = producer.try_push("a".to_owned()).unwrap_err();
    assert_eq!(error, TryPushError::Disconnected("a".to_owned()));
    assert_eq!(error.into_inner(), "a");
    assert_eq!(
        producer.push("b".to_owned()),
        Err(PushError("b".to_owned()))
    );
}

#[test]
fn a_dropped_producer_leaves_its_events_then_disconnects() {
    let (mut producer, mut consumer) = ring::channel(4, |_| 0u8).unwrap();
    producer.try_push(1).unwrap();
    producer.try_push(2).unwrap();
    producer.try_push(3).unwrap();
    drop(producer);
    assert!(consumer.is_abandoned());
    assert_eq!(consumer.try_read_up_to(1).unwrap()[0], 1);
    // The blocking read does not wait for what is already there.
    assert_eq!(common::values(&consumer.read().unwrap()), [2, 3]);
    assert_eq!(consumer.try_read().unwrap_err(), TryReadError::Disconnected);
    // Nor does it wait for a producer that is gone.
    assert_eq!(consumer.read().unwrap_err(), ring::Disconnected);
    assert_eq!(consumer.read_up_to(1).unwrap_err(), ring::Disconnected);
}

/// `try_read` and `read` take every event published so far, as documented, even when an earlier
/// partial read left some of them in the consumer's cached view.
#[test]
fn a_read_after_a_partial_read_takes_everything_published() {
    let (mut producer, mut consumer) = ring::channel(8, |_| 0u8).unwrap();
    producer.try_push(1).unwrap();
    producer.try_push(2).unwrap();
    consumer.try_read_up_to(1).unwrap().release();
    producer.try_push(3).unwrap();
    producer.try_push(4).unwrap();
    let batch = consumer.try_read().unwrap();
    assert_eq!(common::values(&batch), [2, 3, 4], "try_read");
    batch.release_first(1);
    producer.try_push(5).unwrap();
    let batch = consumer.read().unwrap();
    assert_eq!(common::values(&batch), [3, 4, 5], "read");
}

#[test]
#[should_panic(expected = "cannot publish 3 slots of a claim of 2")]
fn publishing_more_than_the_claim_panics() {
    let (mut producer, _consumer) = ring::channel(4, |_| 0u8).unwrap();
    producer.try_claim(2).unwrap().publish_first(3);
}

#[test]
#[should_panic(expected = "cannot release 3 events of a batch of 2")]
fn releasing_more_than_the_batch_panics() {
    let (mut producer, mut consumer) = ring::channel(4, |_| 0u8).unwrap();
    producer.try_push(1).unwrap();
    producer.try_push(2).unwrap();
    consumer.try_read().unwrap().release_first(3);
}

#[test]
#[should_panic(expected = "index 2 out of a claim of 2")]
fn indexing_past_the_claim_panics() {
    let (mut producer, _consumer) = ring::channel(4, |_| 0u8).unwrap();
    let mut claim = producer.try_claim(2).unwrap();
    // Slot 2 exists in the ring, but it is not part of the claim.
    claim[2] = 1;
}

#[test]
#[should_panic(expected = "index 1 out of a batch of 1")]
fn indexing_past_the_batch_panics() {
    let (mut producer, mut consumer) = ring::channel(4, |_| 0u8).unwrap();
    producer.try_push(1).unwrap();
    producer.try_push(2).unwrap();
    // Event 1 is published, but it is not part of this batch.
    let _ = consumer.try_read_up_to(1).unwrap()[1];
}

/// Zero-sized events carry no bytes but still count: the slot array is a dangling pointer, and
/// every slot and slice must still be formed from it soundly (Miri checks this too).
#[test]
fn zero_sized_events_are_counted_and_wrap() {
    let (mut producer, mut consumer) = ring::channel(2, |_| ()).unwrap();
    for round in 0..5 {
        producer.try_push(()).unwrap();
        let mut claim = producer.try_claim(1).unwrap();
        claim[0] = ();
        claim.publish();
        assert!(
            producer.try_push(()).is_err(),
            "round {round}: two units fill two slots"
        );
        let mut batch = consumer.try_read().unwrap();
        assert_eq!(batch.iter_mut().len(), 2, "round {round}");
        let (first, second) = batch.as_slices();
        assert_eq!(first.len() + second.len(), 2, "round {round}");
    }
    assert_eq!(consumer.try_read().unwrap_err(), ring::TryReadError::Empty);
}
