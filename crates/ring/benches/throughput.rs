//! Throughput of `ring` against its peers: one `u64` event per publish, then batches of 64.
//!
//! Every peer gets a ring or channel of 1024 slots, a producer thread pinned to core 0 and a
//! consumer thread pinned to core 1. The producer sends `0, 1, 2, ...`; the consumer checks,
//! once at the end, that exactly those values arrived in that order (see `common::InOrder`).
//! One criterion iteration is one event (single) or one batch of 64 events (batch), and the
//! time of a sample runs from the start barrier until the consumer has seen the last event, so
//! criterion's `thrpt` line is delivered events per second.
//!
//! After the criterion groups, the same runs are repeated in 12 interleaved rounds (each round
//! runs every row once, for 2^22 events single and 2^18 batches of 64) and the median rate of
//! each row is printed, with its median ratio to the best row of the same round: see
//! `interleaved` for why.
//!
//! How each peer is driven:
//!
//! - `ring` (`ours-spin`, `ours-block`): producer `try_push` (single) or `try_claim(64)`, fill,
//!   `publish` (batch), retried in a spin loop; consumer `try_read()`, which takes everything
//!   published as one batch and releases it with one store when dropped. `ours-block` is the
//!   same code on a ring built with `WaitStrategy::Block`, so every publish and every release
//!   also pays the `SeqCst` fence that looks for a sleeper.
//! - `rtrb`: `push` / `pop` in spin loops (single); `write_chunk_uninit(64)` +
//!   `fill_from_iter` / `read_chunk(slots())` + `commit_all` (batch).
//! - `disruptor` (v4, `build_single_producer` with `BusySpin`): the library's own consumer
//!   thread, pinned with `pin_at_core(1)`, runs the checking closure; the producer calls
//!   `publish` (single) or `batch_publish(64, ..)` (batch). A sentinel event, sent before the
//!   clock starts, makes sure that thread is up.
//! - `crossbeam-channel` (`bounded(1024)`) and `std::sync::mpsc::sync_channel(1024)`: blocking
//!   `send` / `recv`. They have no batch API, so they have no batch row.

mod common;

use common::{CAPACITY, CONSUMER_CORE, InOrder, PRODUCER_CORE, pin, run_pinned_pair};
use criterion::{Criterion, Throughput};
use disruptor::{BusySpin, ProcessorSettings as _, Producer as _};
use ring::{TryClaimError, TryPushError, TryReadError, WaitStrategy};
use std::hint::spin_loop;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// Events per publish in the batch group.
const BATCH: usize = 64;

/// Writes `start, start + 1, ...` into `slots`.
#[inline(always)]
fn fill(slots: &mut [u64], start: u64) {
    for (k, slot) in slots.iter_mut().enumerate() {
        *slot = start + k as u64;
    }
}

/// The `ring` consumer loop: every available event as one batch, until `n` were seen.
fn ring_consume(consumer: &mut ring::Consumer<u64>, n: u64) {
    let mut check = InOrder::default();
    while check.seen() < n {
        match consumer.try_read() {
            Ok(batch) => {
                let (first, second) = batch.as_slices();
                check.see_slice(first);
                check.see_slice(second);
            }
            Err(TryReadError::Empty) => spin_loop(),
            Err(TryReadError::Disconnected) => break,
        }
    }
    check.verify(n, "ring");
}

fn ring_pair(wait: WaitStrategy) -> (ring::Producer<u64>, ring::Consumer<u64>) {
    ring::Builder::new(CAPACITY)
        .wait_strategy(wait)
        .build(|_| 0u64)
        .expect("1024 is a power of two")
}

fn ours_single(n: u64, wait: WaitStrategy) -> Duration {
    let (mut producer, mut consumer) = ring_pair(wait);
    run_pinned_pair(
        move || {
            for i in 0..n {
                let mut value = i;
                loop {
                    match producer.try_push(value) {
                        Ok(()) => break,
                        Err(TryPushError::Full(v)) => {
                            value = v;
                            spin_loop();
                        }
                        Err(TryPushError::Disconnected(_)) => panic!("ring consumer gone"),
                    }
                }
            }
        },
        move || ring_consume(&mut consumer, n),
    )
}

fn ours_batch(batches: u64, wait: WaitStrategy) -> Duration {
    let n = batches * BATCH as u64;
    let (mut producer, mut consumer) = ring_pair(wait);
    run_pinned_pair(
        move || {
            let mut next = 0;
            while next < n {
                match producer.try_claim(BATCH) {
                    Ok(mut claim) => {
                        let (first, second) = claim.as_mut_slices();
                        let split = first.len() as u64;
                        fill(first, next);
                        fill(second, next + split);
                        claim.publish();
                        next += BATCH as u64;
                    }
                    Err(TryClaimError::Full { .. }) => spin_loop(),
                    Err(e) => panic!("ring claim failed: {e}"),
                }
            }
        },
        move || ring_consume(&mut consumer, n),
    )
}

fn rtrb_single(n: u64) -> Duration {
    let (mut producer, mut consumer) = rtrb::RingBuffer::<u64>::new(CAPACITY);
    run_pinned_pair(
        move || {
            for i in 0..n {
                let mut value = i;
                while let Err(rtrb::PushError::Full(v)) = producer.push(value) {
                    value = v;
                    spin_loop();
                }
            }
        },
        move || {
            let mut check = InOrder::default();
            while check.seen() < n {
                match consumer.pop() {
                    Ok(value) => check.see(value),
                    Err(rtrb::PopError::Empty) => spin_loop(),
                }
            }
            check.verify(n, "rtrb");
        },
    )
}

fn rtrb_batch(batches: u64) -> Duration {
    let n = batches * BATCH as u64;
    let (mut producer, mut consumer) = rtrb::RingBuffer::<u64>::new(CAPACITY);
    run_pinned_pair(
        move || {
            let mut next = 0;
            while next < n {
                match producer.write_chunk_uninit(BATCH) {
                    Ok(chunk) => {
                        let written = chunk.fill_from_iter(next..next + BATCH as u64);
                        debug_assert_eq!(written, BATCH);
                        next += BATCH as u64;
                    }
                    Err(_) => spin_loop(),
                }
            }
        },
        move || {
            let mut check = InOrder::default();
            while check.seen() < n {
                let available = consumer.slots();
                if available == 0 {
                    spin_loop();
                    continue;
                }
                let chunk = consumer
                    .read_chunk(available)
                    .expect("slots() said they were there");
                let (first, second) = chunk.as_slices();
                check.see_slice(first);
                check.see_slice(second);
                chunk.commit_all();
            }
            check.verify(n, "rtrb");
        },
    )
}

/// What the disruptor's consumer closure hands back: when it saw the last event, and its check.
type Finish = Arc<Mutex<Option<(Instant, InOrder)>>>;

/// `n` events through a disruptor, published `per_publish` at a time (1 or [`BATCH`]).
fn disruptor_run(n: u64, per_publish: usize) -> Duration {
    let up = Arc::new(AtomicBool::new(false));
    let finish: Finish = Arc::default();
    let (consumer_up, consumer_finish) = (Arc::clone(&up), Arc::clone(&finish));
    let mut check = InOrder::default();
    let handler = move |event: &u64, sequence: i64, _end_of_batch: bool| {
        if sequence == 0 {
            // The sentinel: the consumer thread is up and pinned.
            consumer_up.store(true, Ordering::Release);
            return;
        }
        check.see(*event);
        if check.seen() == n {
            let done = (Instant::now(), std::mem::take(&mut check));
            *consumer_finish.lock().expect("not poisoned") = Some(done);
        }
    };
    // Built here, on the unpinned calling thread: `pin_at_core` checks the core against the
    // calling thread's own affinity mask.
    let mut producer = disruptor::build_single_producer(CAPACITY, || 0u64, BusySpin)
        .pin_at_core(CONSUMER_CORE)
        .handle_events_with(handler)
        .build();
    thread::scope(|s| {
        s.spawn(|| {
            pin(PRODUCER_CORE);
            producer.publish(|event| *event = u64::MAX);
            while !up.load(Ordering::Acquire) {
                spin_loop();
            }
            let start = Instant::now();
            if per_publish == 1 {
                for i in 0..n {
                    producer.publish(|event| *event = i);
                }
            } else {
                let mut next = 0;
                while next < n {
                    producer.batch_publish(per_publish, |events| {
                        for (k, event) in events.enumerate() {
                            *event = next + k as u64;
                        }
                    });
                    next += per_publish as u64;
                }
            }
            // Dropping the producer shuts the disruptor down and joins its consumer thread.
            drop(producer);
            let (end, check) = finish
                .lock()
                .expect("not poisoned")
                .take()
                .expect("the consumer saw every event");
            check.verify(n, "disruptor");
            end - start
        })
        .join()
        .expect("disruptor producer panicked")
    })
}

fn crossbeam_single(n: u64) -> Duration {
    let (sender, receiver) = crossbeam_channel::bounded::<u64>(CAPACITY);
    run_pinned_pair(
        move || {
            for i in 0..n {
                sender.send(i).expect("crossbeam receiver gone");
            }
        },
        move || {
            let mut check = InOrder::default();
            for _ in 0..n {
                check.see(receiver.recv().expect("crossbeam sender gone"));
            }
            check.verify(n, "crossbeam-channel");
        },
    )
}

fn std_single(n: u64) -> Duration {
    let (sender, receiver) = std::sync::mpsc::sync_channel::<u64>(CAPACITY);
    run_pinned_pair(
        move || {
            for i in 0..n {
                sender.send(i).expect("mpsc receiver gone");
            }
        },
        move || {
            let mut check = InOrder::default();
            for _ in 0..n {
                check.see(receiver.recv().expect("mpsc sender gone"));
            }
            check.verify(n, "std-mpsc");
        },
    )
}

/// How to run `iters` iterations of one row: events (single) or batches of 64 (batch).
type Run = fn(u64) -> Duration;

fn ours_spin_single(n: u64) -> Duration {
    ours_single(n, WaitStrategy::Spin)
}

fn ours_block_single(n: u64) -> Duration {
    ours_single(n, WaitStrategy::Block)
}

fn disruptor_single(n: u64) -> Duration {
    disruptor_run(n, 1)
}

fn ours_spin_batch(batches: u64) -> Duration {
    ours_batch(batches, WaitStrategy::Spin)
}

fn ours_block_batch(batches: u64) -> Duration {
    ours_batch(batches, WaitStrategy::Block)
}

fn disruptor_batch(batches: u64) -> Duration {
    disruptor_run(batches * BATCH as u64, BATCH)
}

const SINGLE: [(&str, Run); 6] = [
    ("ours-spin", ours_spin_single),
    ("ours-block", ours_block_single),
    ("rtrb", rtrb_single),
    ("disruptor", disruptor_single),
    ("crossbeam-channel", crossbeam_single),
    ("std-mpsc", std_single),
];

const BATCHED: [(&str, Run); 4] = [
    ("ours-spin", ours_spin_batch),
    ("ours-block", ours_block_batch),
    ("rtrb", rtrb_batch),
    ("disruptor", disruptor_batch),
];

fn group(c: &mut Criterion, name: &str, per_iter: u64, rows: &[(&str, Run)]) {
    let mut group = c.benchmark_group(name);
    group.throughput(Throughput::Elements(per_iter));
    for &(row, run) in rows {
        group.bench_function(row, |b| b.iter_custom(run));
    }
    group.finish();
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Runs every row `iters` iterations, round after round, and prints each row's median rate
/// and its median ratio to the best row of the same round.
///
/// On a virtual machine the host moves the two vCPUs between physical cores every few
/// seconds, and the cost of a cache-line transfer between them changes by up to 4x with it.
/// Criterion measures one row after the other, so a row can land on a good or a bad
/// placement; interleaving the rows in short rounds gives them all the same placements.
fn interleaved(name: &str, per_iter: u64, rows: &[(&str, Run)], iters: u64, rounds: usize) {
    let mut rates = vec![Vec::with_capacity(rounds); rows.len()];
    for _ in 0..rounds {
        for (row, &(_, run)) in rows.iter().enumerate() {
            let events = (iters * per_iter) as f64;
            rates[row].push(events / run(iters).as_secs_f64() / 1e6);
        }
    }
    for (row, &(row_name, _)) in rows.iter().enumerate() {
        let mut ratios: Vec<f64> = (0..rounds)
            .map(|round| {
                let best = rates.iter().map(|r| r[round]).fold(0.0, f64::max);
                rates[row][round] / best
            })
            .collect();
        let mut own = rates[row].clone();
        let (min, max) = (
            own.iter().copied().fold(f64::INFINITY, f64::min),
            own.iter().copied().fold(0.0, f64::max),
        );
        println!(
            "interleaved {name}/{row_name:<18} median {:>8.1} Melem/s  min {min:>8.1}  \
             max {max:>8.1}  ratio to round best {:.2}  ({rounds} rounds of {} events)",
            median(&mut own),
            median(&mut ratios),
            iters * per_iter,
        );
    }
}

fn main() {
    let mut c = common::criterion();
    group(&mut c, "throughput-single", 1, &SINGLE);
    group(&mut c, "throughput-batch64", BATCH as u64, &BATCHED);
    c.final_summary();

    // `cargo bench` passes `--bench`; under `cargo test --benches` run a token amount.
    let full = std::env::args().any(|arg| arg == "--bench");
    let rounds = if full { 12 } else { 1 };
    let events = if full { 1 << 22 } else { 1 << 12 };
    interleaved("throughput-single", 1, &SINGLE, events, rounds);
    let batches = if full { 1 << 18 } else { 1 << 6 };
    interleaved(
        "throughput-batch64",
        BATCH as u64,
        &BATCHED,
        batches,
        rounds,
    );
}
