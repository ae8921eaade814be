//! The ring across real threads, for every wait strategy: streams in order, disconnection that
//! wakes a blocked side, and the external wake hooks with a side sleeping outside the ring.

mod common;

use common::{Doorbell, Progress, Rng, STRATEGIES, Watchdog};
use ring::{
    Builder, ClaimError, Consumer, Producer, PushError, TryClaimError, TryPushError, TryReadError,
    WaitStrategy,
};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};

/// Events per stream: many laps of a small ring natively, a few under Miri, which is slow.
const EVENTS: u64 = if cfg!(miri) { 150 } else { 100_000 };

fn ring_of(capacity: usize, strategy: WaitStrategy) -> (ring::Producer<u64>, Consumer<u64>) {
    Builder::new(capacity)
        .wait_strategy(strategy)
        .build(|_| u64::MAX)
        .unwrap()
}

/// A short name for thread names, which Linux cuts at 15 bytes.
fn short(strategy: WaitStrategy) -> &'static str {
    match strategy {
        WaitStrategy::Spin => "spin",
        WaitStrategy::Yield => "yield",
        WaitStrategy::Block => "block",
    }
}

/// Spins (boundedly) until `flag` is set by another thread.
#[track_caller]
fn wait_for(flag: &AtomicBool, what: &'static str) {
    let mut watchdog = Watchdog::new(what);
    while !flag.load(Ordering::Acquire) {
        watchdog.tick();
        std::thread::yield_now();
    }
}

/// Lets the thread called `name`, which announced that it is about to wait in the ring, get into
/// that wait. With `Block` it waits until the thread is parked (see
/// [`common::wait_until_parked`]). The spinning strategies never leave a trace to wait for, so it
/// just gives them some turns; the test's assertions hold whether or not the thread got there.
fn let_it_block(name: &str, strategy: WaitStrategy) {
    if strategy == WaitStrategy::Block {
        common::wait_until_parked(name);
    } else {
        for _ in 0..if cfg!(miri) { 20 } else { 1000 } {
            std::thread::yield_now();
        }
    }
}

/// Reads until the producer is gone, checking that the events are `0, 1, 2, ...` with no gap or
/// repeat, that each batch starts at the sequence it should, and that the end is `Disconnected`
/// for good. With `rng`, it takes batches of random size and releases random prefixes of them.
/// Returns the number of events read, which it also reports to `progress` as it goes.
fn drain(consumer: &mut Consumer<u64>, mut rng: Option<Rng>, progress: &Progress) -> u64 {
    let capacity = consumer.capacity();
    let mut watchdog = Watchdog::new("reading the stream");
    let mut next = 0;
    loop {
        watchdog.tick();
        let max = rng
            .as_mut()
            .map_or(usize::MAX, |rng| 1 + rng.below(capacity + 1));
        let Ok(batch) = consumer.read_up_to(max) else {
            break;
        };
        assert!(!batch.is_empty(), "a blocking read returned nothing");
        assert!(
            batch.len() <= max,
            "batch of {} for at most {max}",
            batch.len()
        );
        assert_eq!(
            batch.sequence(),
            next,
            "the batch starts where the last release ended"
        );
        for (i, &event) in batch.iter().enumerate() {
            assert_eq!(event, next + i as u64, "event {i} of a batch at {next}");
        }
        // Sometimes all, sometimes a prefix, sometimes nothing: the rest is read again.
        let released = match rng.as_mut().map(|rng| (rng.below(3), rng)) {
            Some((0, rng)) => rng.below(batch.len() + 1),
            _ => batch.len(),
        };
        batch.release_first(released);
        if released > 0 {
            next += released as u64;
            progress.set(next);
            watchdog.progressed();
        }
    }
    // Once disconnected, it stays so.
    assert_eq!(consumer.read().unwrap_err(), ring::Disconnected);
    assert_eq!(consumer.try_read().unwrap_err(), TryReadError::Disconnected);
    assert!(consumer.is_abandoned());
    next
}

#[test]
fn single_pushes_arrive_in_order() {
    for strategy in STRATEGIES {
        for capacity in [4, 8] {
            let (mut producer, mut consumer) = ring_of(capacity, strategy);
            let writer = common::spawn("push-writer", move || {
                for event in 0..EVENTS {
                    producer.push(event).unwrap();
                }
            });
            // On its own thread too, so that a read that never returns fails the test.
            let progress = Progress::default();
            let read = progress.clone();
            let reader = common::spawn("push-reader", move || drain(&mut consumer, None, &read));
            writer.join_while(&progress);
            let read = reader.join_while(&progress);
            assert_eq!(read, EVENTS, "{strategy:?}, capacity {capacity}");
        }
    }
}

#[test]
fn random_claims_and_batches_arrive_in_order() {
    for strategy in STRATEGIES {
        for (capacity, seed) in [(4, 1), (8, 2)] {
            let (mut producer, mut consumer) = ring_of(capacity, strategy);
            let writer = common::spawn("claim-writer", move || {
                let mut rng = Rng::new(seed);
                let mut watchdog = Watchdog::new("writing random claims");
                let mut next = 0;
                while next < EVENTS {
                    watchdog.tick();
                    let n = (1 + rng.below(capacity)).min((EVENTS - next) as usize);
                    let mut claim = producer.claim(n).unwrap();
                    assert_eq!(claim.sequence(), next);
                    for (i, slot) in claim.iter_mut().enumerate() {
                        *slot = next + i as u64;
                    }
                    // Usually all of it; sometimes a prefix, and the rest is claimed again.
                    let published = if rng.below(4) == 0 {
                        rng.below(n + 1)
                    } else {
                        n
                    };
                    claim.publish_first(published);
                    if published > 0 {
                        next += published as u64;
                        watchdog.progressed();
                    }
                }
            });
            let progress = Progress::default();
            let read = progress.clone();
            let reader = common::spawn("claim-reader", move || {
                drain(&mut consumer, Some(Rng::new(seed + 100)), &read)
            });
            writer.join_while(&progress);
            let read = reader.join_while(&progress);
            assert_eq!(read, EVENTS, "{strategy:?}, capacity {capacity}");
        }
    }
}

/// The producer publishes some events, possibly filling the ring, and leaves; the consumer, on
/// another thread, gets every one of them and then `Disconnected`.
#[test]
fn the_consumer_drains_everything_then_disconnects() {
    for strategy in STRATEGIES {
        for published in [0, 1, 3, 4] {
            let (mut producer, mut consumer) = ring_of(4, strategy);
            let reader = common::spawn("drain-reader", move || {
                drain(&mut consumer, None, &Progress::default())
            });
            for event in 0..published {
                producer.push(event).unwrap();
            }
            drop(producer);
            assert_eq!(reader.join(), published, "{strategy:?}");
        }
    }
}

/// How a blocked producer waits.
#[derive(Clone, Copy, Debug)]
enum Blocked {
    Claim,
    Push,
}

/// A producer blocked on a full ring (parked, for `Block`) is woken by the consumer's drop on
/// another thread and told `Disconnected`.
#[test]
fn a_blocked_producer_is_disconnected_by_the_consumer_drop() {
    for strategy in STRATEGIES {
        for how in [Blocked::Claim, Blocked::Push] {
            let (mut producer, consumer) = ring_of(2, strategy);
            producer.try_push(0).unwrap();
            producer.try_push(1).unwrap();

            let name = format!("pd-{}-{how:?}", short(strategy));
            let about_to_block = Arc::new(AtomicBool::new(false));
            let flag = Arc::clone(&about_to_block);
            let writer = common::spawn(&name, move || {
                flag.store(true, Ordering::Release);
                match how {
                    Blocked::Claim => {
                        assert_eq!(producer.claim(2).unwrap_err(), ClaimError::Disconnected);
                    }
                    Blocked::Push => assert_eq!(producer.push(7), Err(PushError(7))),
                }
                assert!(producer.is_abandoned());
            });
            wait_for(&about_to_block, "the producer to start its wait");
            let_it_block(&name, strategy);
            drop(consumer);
            writer.join();
        }
    }
}

/// A consumer blocked on an empty ring (parked, for `Block`) is woken by the producer's drop on
/// another thread and told `Disconnected`.
#[test]
fn a_blocked_consumer_is_disconnected_by_the_producer_drop() {
    for strategy in STRATEGIES {
        for up_to in [false, true] {
            let (producer, mut consumer) = ring_of(2, strategy);
            let name = format!("cd-{}-{up_to}", short(strategy));
            let about_to_block = Arc::new(AtomicBool::new(false));
            let flag = Arc::clone(&about_to_block);
            let reader = common::spawn(&name, move || {
                flag.store(true, Ordering::Release);
                let result = if up_to {
                    consumer.read_up_to(1).map(|batch| batch.len())
                } else {
                    consumer.read().map(|batch| batch.len())
                };
                assert_eq!(result, Err(ring::Disconnected));
            });
            wait_for(&about_to_block, "the consumer to start its wait");
            let_it_block(&name, strategy);
            drop(producer);
            reader.join();
        }
    }
}

/// A consumer blocked in `read` (parked, for `Block`) is woken by a publish.
#[test]
fn a_blocked_consumer_is_woken_by_a_publish() {
    for strategy in STRATEGIES {
        let (mut producer, mut consumer) = ring_of(2, strategy);
        let name = format!("cw-{}", short(strategy));
        let about_to_block = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&about_to_block);
        let reader = common::spawn(&name, move || {
            flag.store(true, Ordering::Release);
            let batch = consumer.read().unwrap();
            common::values(&batch)
        });
        wait_for(&about_to_block, "the consumer to start its wait");
        let_it_block(&name, strategy);
        producer.try_push(42).unwrap();
        assert_eq!(reader.join(), [42], "{strategy:?}");
    }
}

/// A producer blocked in `claim` on a full ring (parked, for `Block`) is woken by a release.
#[test]
fn a_blocked_producer_is_woken_by_a_release() {
    for strategy in STRATEGIES {
        let (mut producer, mut consumer) = ring_of(2, strategy);
        producer.try_push(0).unwrap();
        producer.try_push(1).unwrap();
        let name = format!("pw-{}", short(strategy));
        let about_to_block = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&about_to_block);
        let writer = common::spawn(&name, move || {
            flag.store(true, Ordering::Release);
            // Both slots: it must wait for the whole batch to go.
            let mut claim = producer.claim(2).unwrap();
            claim[0] = 2;
            claim[1] = 3;
            claim.publish();
            producer
        });
        wait_for(&about_to_block, "the producer to start its wait");
        let_it_block(&name, strategy);
        assert_eq!(common::values(&consumer.try_read().unwrap()), [0, 1]);
        let producer = writer.join();
        drop(producer);
        assert_eq!(drain_values(&mut consumer), [2, 3], "{strategy:?}");
    }
}

/// Every event left, once the producer is gone.
fn drain_values(consumer: &mut Consumer<u64>) -> Vec<u64> {
    let mut values = Vec::new();
    // Each successful read takes at least one event, so the capacity bounds the reads.
    for _ in 0..=consumer.capacity() {
        match consumer.read() {
            Ok(batch) => values.extend(batch.iter().copied()),
            Err(ring::Disconnected) => return values,
        }
    }
    panic!(
        "still reading after {} reads: {values:?}",
        consumer.capacity() + 1
    )
}

/// Counts a hook's calls.
fn counter() -> (Arc<AtomicUsize>, impl Fn() + Send + Sync + 'static) {
    let calls = Arc::new(AtomicUsize::new(0));
    let hook = {
        let calls = Arc::clone(&calls);
        move || {
            calls.fetch_add(1, Ordering::SeqCst);
        }
    };
    (calls, hook)
}

/// The consumer sleeps on a channel of its own, as a server's worker sleeps in `epoll_wait`,
/// after `announce_sleep`; the producer's hook rings it. Nothing is lost.
#[test]
fn a_consumer_sleeping_outside_the_ring_is_woken_by_the_hook() {
    for strategy in STRATEGIES {
        let (bell_tx, bell) = mpsc::sync_channel(1);
        let (hook_calls, count) = counter();
        let (mut producer, mut consumer) = Builder::new(4)
            .wait_strategy(strategy)
            .wake_consumer_with(move || {
                count();
                // A full channel means the bell is ringing already.
                let _ = bell_tx.try_send(());
            })
            .build(|_| u64::MAX)
            .unwrap();
        let (go_tx, go) = mpsc::channel();
        let writer = common::spawn("hook-writer", move || {
            go.recv_timeout(common::time_limit())
                .expect("the consumer never said go");
            for event in 0..EVENTS {
                producer.push(event).unwrap();
            }
        });

        // The first sleep is certain: nothing can be published before `go`.
        let sleep = consumer.announce_sleep().expect("nothing is published yet");
        go_tx.send(()).unwrap();
        bell.recv_timeout(common::time_limit())
            .expect("the first sleep was never woken");
        drop(sleep);
        let (mut announced, mut slept) = (1, 1);

        let progress = Progress::default();
        let mut watchdog = Watchdog::new("the sleeping consumer");
        let mut next = 0;
        loop {
            watchdog.tick();
            match consumer.try_read() {
                Ok(batch) => {
                    for &event in batch.iter() {
                        assert_eq!(event, next);
                        next += 1;
                    }
                    progress.set(next);
                    watchdog.progressed();
                    continue;
                }
                Err(TryReadError::Disconnected) => break,
                Err(TryReadError::Empty) => {}
            }
            announced += 1;
            if let Some(_sleep) = consumer.announce_sleep() {
                slept += 1;
                // A bound, not a guess: the hook must come, at the latest on the producer's drop.
                bell.recv_timeout(common::time_limit())
                    .unwrap_or_else(|_| panic!("{strategy:?}: a lost wake-up after {next} events"));
            }
        }
        writer.join_while(&progress);
        assert_eq!(next, EVENTS, "{strategy:?}");
        let calls = hook_calls.load(Ordering::SeqCst);
        // Every real sleep needed a call; no announcement gets two.
        assert!(
            calls >= 1 && calls <= announced,
            "{calls} calls for {announced} announcements"
        );
        assert!(slept >= 1);
    }
}

/// A ring of `capacity` whose producer hook counts its calls and rings a doorbell, for a
/// producer that sleeps outside the ring: the endpoints, the doorbell and the call count.
fn with_producer_bell(
    capacity: usize,
    strategy: WaitStrategy,
) -> (
    Producer<u64>,
    Consumer<u64>,
    Arc<Doorbell>,
    Arc<AtomicUsize>,
) {
    let doorbell = Arc::new(Doorbell::default());
    let (hook_calls, count) = counter();
    let bell = Arc::clone(&doorbell);
    let (producer, consumer) = Builder::new(capacity)
        .wait_strategy(strategy)
        .wake_producer_with(move || {
            count();
            bell.ring();
        })
        .build(|_| u64::MAX)
        .unwrap();
    (producer, consumer, doorbell, hook_calls)
}

/// The producer sleeps on a `Condvar` doorbell after `announce_sleep` on a full ring; the
/// consumer's hook rings it. Nothing is lost.
#[test]
fn a_producer_sleeping_outside_the_ring_is_woken_by_the_hook() {
    for strategy in STRATEGIES {
        let (mut producer, mut consumer, doorbell, hook_calls) = with_producer_bell(4, strategy);
        let (go_tx, go) = mpsc::channel();
        let writer = common::spawn("hook-writer", move || {
            for event in 0..4 {
                producer.try_push(event).unwrap();
            }
            // The first sleep is certain: the consumer reads nothing before `go`.
            let sleep = producer.announce_sleep().expect("the ring is full");
            go_tx.send(()).unwrap();
            doorbell.wait("the producer's first sleep");
            drop(sleep);
            let mut announced = 1;

            let mut watchdog = Watchdog::new("the sleeping producer");
            let mut next = 4;
            while next < EVENTS {
                watchdog.tick();
                match producer.try_push(next) {
                    Ok(()) => {
                        next += 1;
                        watchdog.progressed();
                    }
                    Err(TryPushError::Full(_)) => {
                        announced += 1;
                        if let Some(_sleep) = producer.announce_sleep() {
                            doorbell.wait("the sleeping producer");
                        }
                    }
                    Err(error) => panic!("{error} after {next} events"),
                }
            }
            announced
        });
        go.recv_timeout(common::time_limit())
            .expect("the producer never said go");
        let progress = Progress::default();
        let read = progress.clone();
        let reader = common::spawn("hook-reader", move || drain(&mut consumer, None, &read));
        let announced = writer.join_while(&progress);
        assert_eq!(reader.join_while(&progress), EVENTS, "{strategy:?}");
        let calls = hook_calls.load(Ordering::SeqCst);
        assert!(
            calls >= 1 && calls <= announced,
            "{calls} calls for {announced} announcements"
        );
    }
}

/// The hooks are for sleepers only: a thousand publishes and releases with nobody asleep, and
/// the endpoints' drops, call neither. Neither does a withdrawn announcement.
#[test]
fn hooks_are_not_called_without_a_sleeper() {
    for strategy in STRATEGIES {
        let (consumer_calls, wake_consumer) = counter();
        let (producer_calls, wake_producer) = counter();
        let (mut producer, mut consumer) = Builder::new(4)
            .wait_strategy(strategy)
            .wake_consumer_with(wake_consumer)
            .wake_producer_with(wake_producer)
            .build(|_| 0u64)
            .unwrap();
        for event in 0..1000 {
            if event % 2 == 0 {
                producer.try_push(event).unwrap();
            } else {
                let mut claim = producer.try_claim(2).unwrap();
                claim[0] = event;
                claim.publish_first(1);
            }
            let batch = consumer.try_read().unwrap();
            assert_eq!(batch[0], event);
            batch.release();
        }
        // Announced, then withdrawn before anything happened: no call either.
        drop(consumer.announce_sleep().expect("the ring is empty"));
        producer.try_push(0).unwrap();
        for _ in 1..4 {
            producer.try_push(0).unwrap();
        }
        drop(producer.announce_sleep().expect("the ring is full"));
        consumer.try_read().unwrap().release();

        drop(producer);
        drop(consumer);
        assert_eq!(
            consumer_calls.load(Ordering::SeqCst),
            0,
            "{strategy:?}: consumer hook"
        );
        assert_eq!(
            producer_calls.load(Ordering::SeqCst),
            0,
            "{strategy:?}: producer hook"
        );
    }
}

/// A consumer parked inside `read` (the `Block` strategy's own sleep) is woken by unparking, not
/// by the hook, which is for sleeps outside the ring.
#[test]
fn a_parked_consumer_does_not_trigger_the_hook() {
    let (hook_calls, hook) = counter();
    let (mut producer, mut consumer) = Builder::new(4)
        .wait_strategy(WaitStrategy::Block)
        .wake_consumer_with(hook)
        .build(|_| 0u64)
        .unwrap();
    let progress = Progress::default();
    let read = progress.clone();
    let reader = common::spawn("parked-reader", move || drain(&mut consumer, None, &read));
    let events = if cfg!(miri) { 20 } else { 1000 };
    for event in 0..events {
        producer.push(event).unwrap();
    }
    drop(producer);
    assert_eq!(reader.join_while(&progress), events);
    assert_eq!(hook_calls.load(Ordering::SeqCst), 0);
}

/// One announcement, one call, however much happens before the sleeper withdraws; and the
/// other side's drop calls it too, so that a sleeper learns of the disconnection.
#[test]
fn hooks_are_called_once_per_announcement_and_on_drop() {
    for strategy in STRATEGIES {
        // The consumer's hook: woken by the first of several publishes.
        let (calls, hook) = counter();
        let (mut producer, mut consumer) = Builder::new(4)
            .wait_strategy(strategy)
            .wake_consumer_with(hook)
            .build(|_| 0u64)
            .unwrap();
        let sleep = consumer.announce_sleep().expect("the ring is empty");
        producer.try_push(1).unwrap();
        assert_eq!(
            calls.load(Ordering::SeqCst),
            1,
            "{strategy:?}: the first publish"
        );
        producer.try_push(2).unwrap();
        producer.try_claim(1).unwrap().publish();
        assert_eq!(
            calls.load(Ordering::SeqCst),
            1,
            "{strategy:?}: later publishes"
        );
        drop(sleep);
        consumer.try_read().unwrap().release();
        // Asleep again, and the producer leaves: that wakes it too.
        let sleep = consumer.announce_sleep().expect("the ring is empty again");
        drop(producer);
        assert_eq!(
            calls.load(Ordering::SeqCst),
            2,
            "{strategy:?}: the producer's drop"
        );
        drop(sleep);
        assert_eq!(consumer.try_read().unwrap_err(), TryReadError::Disconnected);

        // The producer's hook: woken by the first of several releases.
        let (calls, hook) = counter();
        let (mut producer, mut consumer) = Builder::new(2)
            .wait_strategy(strategy)
            .wake_producer_with(hook)
            .build(|_| 0u64)
            .unwrap();
        producer.try_push(1).unwrap();
        producer.try_push(2).unwrap();
        let sleep = producer.announce_sleep().expect("the ring is full");
        consumer.try_read().unwrap().release_first(1);
        assert_eq!(
            calls.load(Ordering::SeqCst),
            1,
            "{strategy:?}: the first release"
        );
        consumer.try_read().unwrap().release();
        assert_eq!(
            calls.load(Ordering::SeqCst),
            1,
            "{strategy:?}: later releases"
        );
        drop(sleep);
        producer.try_push(3).unwrap();
        producer.try_push(4).unwrap();
        let sleep = producer.announce_sleep().expect("the ring is full again");
        drop(consumer);
        assert_eq!(
            calls.load(Ordering::SeqCst),
            2,
            "{strategy:?}: the consumer's drop"
        );
        drop(sleep);
        assert_eq!(
            producer.try_claim(1).unwrap_err(),
            TryClaimError::Disconnected
        );
    }
}

/// A side asleep outside the ring learns of the other side's drop through its hook, on
/// another thread.
#[test]
fn a_side_sleeping_outside_the_ring_is_woken_by_the_drop() {
    // The consumer sleeps; the producer leaves.
    let doorbell = Arc::new(Doorbell::default());
    let bell = Arc::clone(&doorbell);
    let (producer, mut consumer) = Builder::new(2)
        .wake_consumer_with(move || bell.ring())
        .build(|_| 0u8)
        .unwrap();
    let (asleep_tx, asleep) = mpsc::channel();
    let reader = common::spawn("drop-sleeper", move || {
        let sleep = consumer.announce_sleep().expect("the ring is empty");
        asleep_tx.send(()).unwrap();
        doorbell.wait("the consumer asleep outside the ring");
        drop(sleep);
        consumer.try_read().unwrap_err()
    });
    asleep
        .recv_timeout(common::time_limit())
        .expect("the consumer never slept");
    drop(producer);
    assert_eq!(reader.join(), TryReadError::Disconnected);

    // The producer sleeps on a full ring; the consumer leaves.
    let doorbell = Arc::new(Doorbell::default());
    let bell = Arc::clone(&doorbell);
    let (mut producer, consumer) = Builder::new(1)
        .wake_producer_with(move || bell.ring())
        .build(|_| 0u8)
        .unwrap();
    producer.try_push(1).unwrap();
    let (asleep_tx, asleep) = mpsc::channel();
    let writer = common::spawn("drop-sleeper", move || {
        let sleep = producer.announce_sleep().expect("the ring is full");
        asleep_tx.send(()).unwrap();
        doorbell.wait("the producer asleep outside the ring");
        drop(sleep);
        producer.try_push(2).unwrap_err().into_inner()
    });
    asleep
        .recv_timeout(common::time_limit())
        .expect("the producer never slept");
    drop(consumer);
    assert_eq!(writer.join(), 2);
}

/// `announce_sleep` declines, announcing nothing, whenever there is no reason to sleep.
#[test]
fn consumer_announce_sleep_declines_when_there_is_no_need() {
    let (calls, hook) = counter();
    let (mut producer, mut consumer) = Builder::new(4)
        .wake_consumer_with(hook)
        .build(|_| 0u64)
        .unwrap();
    assert!(
        consumer.announce_sleep().is_some(),
        "empty, producer alive: sleep"
    );

    // Published after the consumer last looked: the re-check after the announcement sees it.
    assert_eq!(consumer.try_read().unwrap_err(), TryReadError::Empty);
    producer.try_push(1).unwrap();
    producer.try_push(2).unwrap();
    assert!(
        consumer.announce_sleep().is_none(),
        "events waiting, not yet seen"
    );
    // Seen, and partly read: the cached view says so without looking.
    consumer.try_read_up_to(1).unwrap().release();
    assert!(
        consumer.announce_sleep().is_none(),
        "an event waiting, seen"
    );
    consumer.try_read().unwrap().release();
    assert!(consumer.announce_sleep().is_some(), "all read: sleep");

    drop(producer);
    assert!(consumer.announce_sleep().is_none(), "the producer is gone");
    // Only the withdrawn announcements' calls could have happened, and none did: each one above
    // was dropped before the next step.
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

#[test]
fn producer_announce_sleep_declines_when_there_is_no_need() {
    let (calls, hook) = counter();
    let (mut producer, mut consumer) = Builder::new(2)
        .wake_producer_with(hook)
        .build(|_| 0u64)
        .unwrap();
    assert!(producer.announce_sleep().is_none(), "empty ring");
    producer.try_push(1).unwrap();
    assert!(producer.announce_sleep().is_none(), "a slot is free");
    producer.try_push(2).unwrap();
    assert!(
        producer.announce_sleep().is_some(),
        "full, consumer alive: sleep"
    );

    // Released after the producer last looked: the re-check after the announcement sees it.
    consumer.try_read_up_to(1).unwrap().release();
    assert!(
        producer.announce_sleep().is_none(),
        "a slot was released, not yet seen"
    );
    producer.try_push(3).unwrap();
    assert!(producer.announce_sleep().is_some(), "full again");

    drop(consumer);
    assert!(producer.announce_sleep().is_none(), "the consumer is gone");
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

/// `announce_sleep_until_release` sleeps whenever a release is still to come, full ring or
/// not, and declines when none is to come or one came already.
#[test]
fn producer_announce_sleep_until_release_declines_when_there_is_no_need() {
    let (calls, hook) = counter();
    let (mut producer, mut consumer) = Builder::new(4)
        .wake_producer_with(hook)
        .build(|_| 0u64)
        .unwrap();
    assert!(
        producer.announce_sleep_until_release().is_none(),
        "nothing published"
    );
    producer.try_push(1).unwrap();
    assert!(
        producer.announce_sleep_until_release().is_some(),
        "one event out, three slots free: sleep"
    );
    consumer.try_read().unwrap().release();
    assert!(
        producer.announce_sleep_until_release().is_none(),
        "everything released"
    );

    producer.try_push(2).unwrap();
    producer.try_push(3).unwrap();
    // The consumer releases one of two; the producer has not looked since.
    consumer.try_read_up_to(1).unwrap().release();
    assert!(
        producer.announce_sleep_until_release().is_some(),
        "one still out: the announcement waits for the next release"
    );

    drop(consumer);
    assert!(
        producer.announce_sleep_until_release().is_none(),
        "the consumer is gone"
    );
    // Announcements dropped before any release call nothing.
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

/// The producer publishes one event at a time and, with slots still free, sleeps on a doorbell
/// until the consumer has released it; the consumer's hook rings the doorbell. Every event
/// arrives, and every sleep is ended by a release.
#[test]
fn a_producer_sleeping_until_each_release_is_woken_by_the_hook() {
    const ROUNDS: u64 = if cfg!(miri) { 50 } else { 1000 };
    for strategy in STRATEGIES {
        let (mut producer, mut consumer, doorbell, hook_calls) = with_producer_bell(8, strategy);
        let writer = common::spawn("release-sleeper", move || {
            let mut slept = 0;
            let mut watchdog = Watchdog::new("the producer waiting for releases");
            for event in 0..ROUNDS {
                producer.try_push(event).unwrap();
                while producer.free_slots() < 8 {
                    watchdog.tick();
                    if let Some(_sleep) = producer.announce_sleep_until_release() {
                        slept += 1;
                        doorbell.wait("the producer waiting for a release");
                    }
                }
                watchdog.progressed();
            }
            slept
        });
        let progress = Progress::default();
        let read = progress.clone();
        let reader = common::spawn("release-reader", move || drain(&mut consumer, None, &read));
        let slept = writer.join_while(&progress);
        assert_eq!(reader.join_while(&progress), ROUNDS, "{strategy:?}");
        let calls = hook_calls.load(Ordering::SeqCst);
        assert!(
            calls <= slept,
            "{strategy:?}: {calls} hook calls for {slept} sleeps"
        );
    }
}

#[test]
#[should_panic(
    expected = "Producer::announce_sleep_until_release needs a hook from Builder::wake_producer_with"
)]
fn producer_announce_sleep_until_release_without_a_hook_panics() {
    let (mut producer, _consumer) = ring::channel(2, |_| 0u8).unwrap();
    producer.try_push(1).unwrap();
    drop(producer.announce_sleep_until_release());
}

#[test]
#[should_panic(expected = "Consumer::announce_sleep needs a hook from Builder::wake_consumer_with")]
fn consumer_announce_sleep_without_a_hook_panics() {
    // The producer's hook is not the consumer's.
    let (_producer, mut consumer) = Builder::new(2)
        .wake_producer_with(|| {})
        .build(|_| 0u8)
        .unwrap();
    let _sleep = consumer.announce_sleep();
}

#[test]
#[should_panic(expected = "Producer::announce_sleep needs a hook from Builder::wake_producer_with")]
fn producer_announce_sleep_without_a_hook_panics() {
    let (mut producer, _consumer) = Builder::new(2)
        .wake_consumer_with(|| {})
        .build(|_| 0u8)
        .unwrap();
    producer.try_push(1).unwrap();
    producer.try_push(2).unwrap();
    let _sleep = producer.announce_sleep();
}
