//! The ring allocates once, when it is built: claiming, publishing, reading and releasing,
//! across every wrap of the sequence and with the wake hooks in use, allocate nothing.
//!
//! This binary holds one test: the counter sees every thread of the process.

use ring::counting_alloc::CountingAlloc;
use ring::{Builder, WaitStrategy};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc::new();

/// Laps of the ring: few under Miri, which is slow.
const LAPS: u64 = if cfg!(miri) { 4 } else { 1000 };

#[test]
fn steady_state_claims_publishes_and_reads_allocate_nothing() {
    const CAPACITY: usize = 8;
    let woken = Arc::new(AtomicU64::new(0));
    let (hook_p, hook_c) = (Arc::clone(&woken), Arc::clone(&woken));
    let (mut producer, mut consumer) = Builder::new(CAPACITY)
        .wait_strategy(WaitStrategy::Block)
        .wake_producer_with(move || {
            hook_p.fetch_add(1, Ordering::Relaxed);
        })
        .wake_consumer_with(move || {
            hook_c.fetch_add(1, Ordering::Relaxed);
        })
        .build(|_| [0u64; 4])
        .unwrap();

    // The counter counts: a deliberate allocation is seen, so the test cannot pass vacuously.
    let before = ALLOC.allocations();
    drop(std::hint::black_box(vec![1u8; 16]));
    assert!(
        ALLOC.allocations() > before,
        "the counter missed an allocation"
    );

    let before = ALLOC.allocations();
    let mut sum = 0;
    for lap in 0..LAPS {
        // In place, through claims of several sizes, then single pushes.
        let mut claim = producer.try_claim(3).unwrap();
        for (n, slot) in claim.iter_mut().enumerate() {
            slot[0] = lap + n as u64;
        }
        claim.publish();
        producer.claim(2).unwrap().publish();
        producer.try_push([lap; 4]).unwrap();
        producer.push([lap; 4]).unwrap();
        // Sleep announcements wake through the hooks on the next release and publish.
        drop(consumer.announce_sleep());
        drop(producer.announce_sleep_until_release());
        let batch = consumer.try_read_up_to(4).unwrap();
        sum += batch.iter().map(|slot| slot[0]).sum::<u64>();
        drop(batch);
        // Three are left: a blocking read returns them at once.
        let batch = consumer.read().unwrap();
        assert_eq!(batch.len(), 3);
    }
    let allocated = ALLOC.allocations() - before;
    assert_eq!(allocated, 0, "{allocated} allocations in steady state");
    std::hint::black_box(sum);
}
