//! Loom models of the ring's protocol: publish/consume, wrap-around, sleep/wake, disconnect.
//!
//! Run with `RUSTFLAGS="--cfg loom" cargo test -p ring --release --test loom`. Loom runs each
//! model under every interleaving (up to `LOOM_MAX_PREEMPTIONS` preemptions) and every
//! outcome the C11 memory model allows for the atomics. Two kinds of failure matter here:
//!
//! - a slot touched by both sides without a happens-before edge between the accesses (the
//!   ring's access trackers turn that into a loom causality panic), which is what a missing
//!   `Release`/`Acquire` pair would cause;
//! - a lost wakeup: a side that parks (or sleeps on its hook) with nobody left to wake it,
//!   which loom reports as a deadlock.

#![cfg(loom)]

use loom::sync::Arc;
use loom::sync::Notify;
use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::thread;
use ring::{Builder, TryReadError, WaitStrategy};

/// A ring of `u32` events, zero at first, with no wake hooks.
fn ring_of(capacity: usize, wait: WaitStrategy) -> (ring::Producer<u32>, ring::Consumer<u32>) {
    Builder::new(capacity)
        .wait_strategy(wait)
        .build(|_| 0u32)
        .unwrap()
}

/// A spinning ring of `capacity` whose producer hook notifies the returned doorbell: the
/// shape of a producer that sleeps outside the ring.
fn with_producer_bell(capacity: usize) -> (ring::Producer<u32>, ring::Consumer<u32>, Arc<Notify>) {
    let doorbell = Arc::new(Notify::new());
    let bell = Arc::clone(&doorbell);
    let (producer, consumer) = Builder::new(capacity)
        .wait_strategy(WaitStrategy::Spin)
        .wake_producer_with(move || bell.notify())
        .build(|_| 0u32)
        .unwrap();
    (producer, consumer, doorbell)
}

/// Reads until the producer is gone, spinning through loom's scheduler, and returns the events.
fn drain_spinning(consumer: &mut ring::Consumer<u32>) -> Vec<u32> {
    let mut seen = Vec::new();
    loop {
        match consumer.try_read() {
            Ok(batch) => seen.extend(batch.iter().copied()),
            Err(TryReadError::Empty) => thread::yield_now(),
            Err(TryReadError::Disconnected) => return seen,
        }
    }
}

#[test]
fn publish_consume_wraps_around() {
    loom::model(|| {
        let (mut producer, mut consumer) = ring_of(2, WaitStrategy::Spin);
        let writer = thread::spawn(move || {
            for value in 1..=3 {
                while producer.try_push(value).is_err() {
                    thread::yield_now();
                }
            }
        });
        assert_eq!(drain_spinning(&mut consumer), [1, 2, 3]);
        writer.join().unwrap();
    });
}

#[test]
fn claims_and_batches_wrap_around() {
    loom::model(|| {
        let (mut producer, mut consumer) = ring_of(2, WaitStrategy::Spin);
        let writer = thread::spawn(move || {
            // A claim of two, then one that starts in the last slot and one that wraps.
            for (start, len) in [(1, 2), (3, 1), (4, 2)] {
                loop {
                    match producer.try_claim(len) {
                        Ok(mut claim) => {
                            for (i, slot) in claim.iter_mut().enumerate() {
                                *slot = start + i as u32;
                            }
                            claim.publish();
                            break;
                        }
                        Err(_) => thread::yield_now(),
                    }
                }
            }
        });
        let mut seen = Vec::new();
        loop {
            // Release one event at a time at most, so the producer's claims must wait for
            // partial releases.
            match consumer.try_read() {
                Ok(batch) => {
                    seen.push(batch[0]);
                    batch.release_first(1);
                }
                Err(TryReadError::Empty) => thread::yield_now(),
                Err(TryReadError::Disconnected) => break,
            }
        }
        assert_eq!(seen, [1, 2, 3, 4, 5]);
        writer.join().unwrap();
    });
}

#[test]
fn parked_consumer_is_woken_by_publish() {
    loom::model(|| {
        let (mut producer, mut consumer) = ring_of(2, WaitStrategy::Block);
        let writer = thread::spawn(move || {
            producer.try_push(7).unwrap();
            // Keep the producer alive until the consumer has the event, so that only the
            // publish (not the disconnect) can wake it.
            producer
        });
        let batch = consumer.read().unwrap();
        assert_eq!(batch[0], 7);
        drop(batch);
        drop(writer.join().unwrap());
    });
}

#[test]
fn parked_producer_is_woken_by_release() {
    loom::model(|| {
        let (mut producer, mut consumer) = ring_of(1, WaitStrategy::Block);
        producer.try_push(1).unwrap();
        let writer = thread::spawn(move || {
            // The ring is full: this parks until the consumer releases.
            producer.push(2).unwrap();
            producer
        });
        assert_eq!(consumer.read().unwrap()[0], 1);
        let producer = writer.join().unwrap();
        assert_eq!(consumer.read().unwrap()[0], 2);
        drop(producer);
    });
}

#[test]
fn parked_consumer_is_woken_by_disconnect() {
    loom::model(|| {
        let (producer, mut consumer) = ring_of(2, WaitStrategy::Block);
        let dropper = thread::spawn(move || drop(producer));
        assert!(consumer.read().is_err());
        dropper.join().unwrap();
    });
}

#[test]
fn parked_producer_is_woken_by_disconnect() {
    loom::model(|| {
        let (mut producer, consumer) = ring_of(1, WaitStrategy::Block);
        producer.try_push(1).unwrap();
        let dropper = thread::spawn(move || drop(consumer));
        assert_eq!(producer.push(2), Err(ring::PushError(2)));
        dropper.join().unwrap();
    });
}

#[test]
fn disconnect_after_publish_loses_nothing() {
    loom::model(|| {
        let (mut producer, mut consumer) = ring_of(2, WaitStrategy::Spin);
        let writer = thread::spawn(move || {
            producer.try_push(1).unwrap();
            producer.try_push(2).unwrap();
        });
        // However the drop and the publishes interleave with the reads, both events arrive
        // before `Disconnected`.
        assert_eq!(drain_spinning(&mut consumer), [1, 2]);
        writer.join().unwrap();
    });
}

/// The server's shape: the consumer sleeps outside the ring (in epoll, here a `Notify`) and
/// the producer calls the hook only for an announced sleep.
#[test]
fn external_sleeper_is_woken_by_hook() {
    loom::model(|| {
        let doorbell = Arc::new(Notify::new());
        let hook_calls = Arc::new(AtomicUsize::new(0));
        let (bell, calls) = (Arc::clone(&doorbell), Arc::clone(&hook_calls));
        let (mut producer, mut consumer) = Builder::new(2)
            .wait_strategy(WaitStrategy::Spin)
            .wake_consumer_with(move || {
                calls.fetch_add(1, Ordering::Relaxed);
                bell.notify();
            })
            .build(|_| 0u32)
            .unwrap();
        let writer = thread::spawn(move || {
            producer.try_push(1).unwrap();
            producer
        });
        let value = loop {
            match consumer.try_read() {
                Ok(batch) => break batch[0],
                Err(TryReadError::Empty) => {}
                Err(TryReadError::Disconnected) => panic!("the producer is still alive"),
            }
            if let Some(_sleep) = consumer.announce_sleep() {
                doorbell.wait();
            }
        };
        assert_eq!(value, 1);
        // One publish, so at most one call, whatever the interleaving.
        assert!(hook_calls.load(Ordering::Relaxed) <= 1);
        drop(writer.join().unwrap());
    });
}

#[test]
fn external_producer_sleeper_is_woken_by_hook() {
    loom::model(|| {
        let (mut producer, mut consumer, doorbell) = with_producer_bell(1);
        producer.try_push(1).unwrap();
        let reader = thread::spawn(move || {
            assert_eq!(consumer.try_read().map(|batch| batch[0]), Ok(1));
            consumer
        });
        loop {
            match producer.try_push(2) {
                Ok(()) => break,
                Err(ring::TryPushError::Full(_)) => {}
                Err(ring::TryPushError::Disconnected(_)) => panic!("the consumer is still alive"),
            }
            if let Some(_sleep) = producer.announce_sleep() {
                doorbell.wait();
            }
        }
        drop(reader.join().unwrap());
    });
}

/// The server's reader: with a slot still free, the producer sleeps outside the ring until the
/// consumer's next release (`announce_sleep_until_release`), then reuses the released slot.
/// A lost wakeup is a deadlock; a slot reused before its release is a causality panic.
#[test]
fn producer_sleeping_until_a_release_is_woken_by_hook() {
    loom::model(|| {
        let (mut producer, mut consumer, doorbell) = with_producer_bell(2);
        producer.try_push(1).unwrap();
        let reader = thread::spawn(move || {
            assert_eq!(consumer.try_read().map(|batch| batch[0]), Ok(1));
            consumer
        });
        // Wait for the release of event 1 although a slot is free all along.
        while producer.free_slots() < 2 {
            if let Some(_sleep) = producer.announce_sleep_until_release() {
                doorbell.wait();
            }
        }
        producer.try_push(2).unwrap();
        producer.try_push(3).unwrap();
        let mut consumer = reader.join().unwrap();
        let batch = consumer.try_read().unwrap();
        assert_eq!((batch[0], batch[1]), (2, 3));
    });
}
