//! One-way latency of `ring` against its peers, by ping-pong over two links.
//!
//! A pinging thread on core 0 sends `i` over one link and waits for it to come back over the
//! other; an echoing thread on core 1 sends back whatever arrives. One-way latency is half a
//! round trip. Every link carries `u64` events and has 1024 slots; the values are checked on
//! both sides (see `common::InOrder`).
//!
//! Two measurements of each peer:
//!
//! - criterion's `latency-oneway` group: one iteration is one round trip, and `iter_custom`
//!   reports half the time of `iters` back-to-back round trips (after 1 000 untimed ones), so
//!   criterion's time per iteration is the mean one-way latency;
//! - percentiles, printed after the criterion group: 30 rounds, each of which runs every peer in
//!   turn for 2 000 untimed round trips and then 4 000 timed groups of 16 round trips. A group
//!   is timed with `Instant::now` around all 16 (so one clock read is amortised over 16 round
//!   trips), and its time divided by 32 is one one-way sample. The line per peer gives the p50,
//!   p99 and p99.9 of all its samples, its fastest group, and the medians over the rounds of
//!   its p50 and p99 divided by the floor's p50 and p99 in the same round.
//!
//! Why rounds: on a virtual machine the host moves the two vCPUs between physical cores every
//! few seconds (sibling hyperthreads, the same core complex, or different ones), and the cost of
//! a cache-line transfer, so the floor itself, changes by up to 4x with it. Criterion measures
//! one peer after the other, so each may land on a different placement; interleaved rounds give
//! every peer the same placements, and the per-round ratio to the floor cancels them.
//!
//! How each peer is driven:
//!
//! - `floor`: two `crossbeam_utils::CachePadded<AtomicU64>`, one per direction: `store`
//!   (Release) and spin on `load` (Acquire): one cache line moved each way per round trip,
//!   which no queue that keeps its data and its index on separate lines can beat.
//! - `ours-spin`: two `ring`s built with `WaitStrategy::Spin`; `try_push` and
//!   `try_read_up_to(1)` in spin loops.
//! - `rtrb`: two `rtrb` rings; `push` and `pop` in spin loops.
//! - `disruptor`: two v4 disruptors with `BusySpin`. The echo is the library's own consumer
//!   thread on the outgoing disruptor (`pin_at_core(1)`), whose closure publishes each event
//!   into the returning disruptor; the pinging thread reads that one with an `EventPoller`.
//! - `crossbeam-channel`: two `bounded(1024)` channels, blocking `send` / `recv` (which spin
//!   briefly before they park).

mod common;

use common::{CAPACITY, CONSUMER_CORE, InOrder, PRODUCER_CORE, pin};
use criterion::{BenchmarkGroup, measurement::WallTime};
use crossbeam_utils::CachePadded;
use disruptor::{
    BusySpin, EventPoller, Polling, ProcessorSettings as _, Producer as _, SingleConsumerBarrier,
    SingleProducer, SingleProducerBarrier,
};
use ring::{TryPushError, TryReadError, WaitStrategy};
use std::hint::spin_loop;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

/// One side's ends of the two links: it sends on one and receives on the other.
trait End: Send {
    /// Sends `value`, spinning (or blocking, for channels) while the link is full.
    fn send(&mut self, value: u64);
    /// Receives the next value, spinning (or blocking) until there is one.
    fn recv(&mut self) -> u64;
}

/// How many round trips to make, and how to time them.
#[derive(Clone, Copy, Debug)]
struct Plan {
    /// Round trips before the clock starts: both threads are up, caches and predictors warm.
    warmup: u64,
    /// Timed groups.
    groups: usize,
    /// Round trips per timed group.
    group_len: u64,
}

impl Plan {
    fn round_trips(self) -> u64 {
        self.warmup + self.groups as u64 * self.group_len
    }
}

/// Runs the ping-pong: `ping` on core 0, `echo` (if the peer needs a thread of ours to echo)
/// on core 1. Returns the time of each group of round trips.
fn ping_pong(mut ping: impl End, echo: Option<impl End>, plan: Plan) -> Vec<Duration> {
    thread::scope(|s| {
        if let Some(mut echo) = echo {
            s.spawn(move || {
                pin(CONSUMER_CORE);
                let mut check = InOrder::default();
                for _ in 0..plan.round_trips() {
                    let value = echo.recv();
                    echo.send(value);
                    check.see(value);
                }
                check.verify(plan.round_trips(), "echo");
            });
        }
        s.spawn(move || {
            pin(PRODUCER_CORE);
            let mut check = InOrder::default();
            let mut next = 0;
            for _ in 0..plan.warmup {
                ping.send(next);
                check.see(ping.recv());
                next += 1;
            }
            let mut groups = Vec::with_capacity(plan.groups);
            for _ in 0..plan.groups {
                let start = Instant::now();
                for _ in 0..plan.group_len {
                    ping.send(next);
                    check.see(ping.recv());
                    next += 1;
                }
                groups.push(start.elapsed());
            }
            check.verify(plan.round_trips(), "ping");
            groups
            // `ping` is dropped here, which ends the disruptor's echo thread.
        })
        .join()
        .expect("ping panicked")
    })
}

/// A peer: makes the pinging end and, unless the peer echoes by itself, the echoing end.
trait Peer {
    type Ping: End;
    type Echo: End;
    fn make() -> (Self::Ping, Option<Self::Echo>);
}

// ----- floor: two cache-padded atomics -----

struct AtomicEnd {
    out: Arc<CachePadded<AtomicU64>>,
    inp: Arc<CachePadded<AtomicU64>>,
    last: u64,
}

impl End for AtomicEnd {
    #[inline(always)]
    fn send(&mut self, value: u64) {
        // `value + 1`: zero means nothing sent yet.
        self.out.store(value + 1, Ordering::Release);
    }

    #[inline(always)]
    fn recv(&mut self) -> u64 {
        loop {
            let seen = self.inp.load(Ordering::Acquire);
            if seen != self.last {
                self.last = seen;
                return seen - 1;
            }
            spin_loop();
        }
    }
}

struct Floor;

impl Peer for Floor {
    type Ping = AtomicEnd;
    type Echo = AtomicEnd;
    fn make() -> (AtomicEnd, Option<AtomicEnd>) {
        let there = Arc::new(CachePadded::new(AtomicU64::new(0)));
        let back = Arc::new(CachePadded::new(AtomicU64::new(0)));
        let ping = AtomicEnd {
            out: Arc::clone(&there),
            inp: Arc::clone(&back),
            last: 0,
        };
        let echo = AtomicEnd {
            out: back,
            inp: there,
            last: 0,
        };
        (ping, Some(echo))
    }
}

// ----- ours -----

struct RingEnd {
    tx: ring::Producer<u64>,
    rx: ring::Consumer<u64>,
}

impl End for RingEnd {
    #[inline(always)]
    fn send(&mut self, mut value: u64) {
        loop {
            match self.tx.try_push(value) {
                Ok(()) => return,
                Err(TryPushError::Full(v)) => {
                    value = v;
                    spin_loop();
                }
                Err(TryPushError::Disconnected(_)) => panic!("ring consumer gone"),
            }
        }
    }

    #[inline(always)]
    fn recv(&mut self) -> u64 {
        loop {
            match self.rx.try_read_up_to(1) {
                Ok(batch) => return batch[0],
                Err(TryReadError::Empty) => spin_loop(),
                Err(TryReadError::Disconnected) => panic!("ring producer gone"),
            }
        }
    }
}

struct Ours;

impl Peer for Ours {
    type Ping = RingEnd;
    type Echo = RingEnd;
    fn make() -> (RingEnd, Option<RingEnd>) {
        let link = || {
            ring::Builder::new(CAPACITY)
                .wait_strategy(WaitStrategy::Spin)
                .build(|_| 0u64)
                .expect("1024 is a power of two")
        };
        let (there_tx, there_rx) = link();
        let (back_tx, back_rx) = link();
        let ping = RingEnd {
            tx: there_tx,
            rx: back_rx,
        };
        let echo = RingEnd {
            tx: back_tx,
            rx: there_rx,
        };
        (ping, Some(echo))
    }
}

// ----- rtrb -----

struct RtrbEnd {
    tx: rtrb::Producer<u64>,
    rx: rtrb::Consumer<u64>,
}

impl End for RtrbEnd {
    #[inline(always)]
    fn send(&mut self, mut value: u64) {
        while let Err(rtrb::PushError::Full(v)) = self.tx.push(value) {
            value = v;
            spin_loop();
        }
    }

    #[inline(always)]
    fn recv(&mut self) -> u64 {
        loop {
            match self.rx.pop() {
                Ok(value) => return value,
                Err(rtrb::PopError::Empty) => spin_loop(),
            }
        }
    }
}

struct Rtrb;

impl Peer for Rtrb {
    type Ping = RtrbEnd;
    type Echo = RtrbEnd;
    fn make() -> (RtrbEnd, Option<RtrbEnd>) {
        let (there_tx, there_rx) = rtrb::RingBuffer::new(CAPACITY);
        let (back_tx, back_rx) = rtrb::RingBuffer::new(CAPACITY);
        let ping = RtrbEnd {
            tx: there_tx,
            rx: back_rx,
        };
        let echo = RtrbEnd {
            tx: back_tx,
            rx: there_rx,
        };
        (ping, Some(echo))
    }
}

// ----- disruptor -----

struct DisruptorPing {
    /// Dropped first: shuts the outgoing disruptor down and joins its echo thread, which drops
    /// the returning disruptor's producer.
    tx: SingleProducer<u64, SingleConsumerBarrier>,
    rx: EventPoller<u64, SingleProducerBarrier>,
}

impl End for DisruptorPing {
    #[inline(always)]
    fn send(&mut self, value: u64) {
        self.tx.publish(|event| *event = value);
    }

    #[inline(always)]
    fn recv(&mut self) -> u64 {
        loop {
            match self.rx.poll() {
                Ok(mut events) => {
                    return *(&mut events).next().expect("a poll yields an event");
                }
                Err(Polling::NoEvents) => spin_loop(),
                Err(Polling::Shutdown) => panic!("disruptor shut down"),
            }
        }
    }
}

/// Never made: the disruptor echoes on its own consumer thread.
struct NoEcho;

impl End for NoEcho {
    fn send(&mut self, _: u64) {
        unreachable!()
    }
    fn recv(&mut self) -> u64 {
        unreachable!()
    }
}

struct Disruptor;

impl Peer for Disruptor {
    type Ping = DisruptorPing;
    type Echo = NoEcho;
    fn make() -> (DisruptorPing, Option<NoEcho>) {
        let (rx, back) =
            disruptor::build_single_producer(CAPACITY, || 0u64, BusySpin).new_event_poller();
        let mut back = back.build();
        let tx = disruptor::build_single_producer(CAPACITY, || 0u64, BusySpin)
            .pin_at_core(CONSUMER_CORE)
            .handle_events_with(move |event: &u64, _sequence, _end_of_batch| {
                let value = *event;
                back.publish(|slot| *slot = value);
            })
            .build();
        (DisruptorPing { tx, rx }, None)
    }
}

// ----- crossbeam-channel -----

struct CrossbeamEnd {
    tx: crossbeam_channel::Sender<u64>,
    rx: crossbeam_channel::Receiver<u64>,
}

impl End for CrossbeamEnd {
    #[inline(always)]
    fn send(&mut self, value: u64) {
        self.tx.send(value).expect("crossbeam receiver gone");
    }

    #[inline(always)]
    fn recv(&mut self) -> u64 {
        self.rx.recv().expect("crossbeam sender gone")
    }
}

struct Crossbeam;

impl Peer for Crossbeam {
    type Ping = CrossbeamEnd;
    type Echo = CrossbeamEnd;
    fn make() -> (CrossbeamEnd, Option<CrossbeamEnd>) {
        let (there_tx, there_rx) = crossbeam_channel::bounded(CAPACITY);
        let (back_tx, back_rx) = crossbeam_channel::bounded(CAPACITY);
        let ping = CrossbeamEnd {
            tx: there_tx,
            rx: back_rx,
        };
        let echo = CrossbeamEnd {
            tx: back_tx,
            rx: there_rx,
        };
        (ping, Some(echo))
    }
}

// ----- the runs -----

/// Mean one-way latency over `iters` round trips, for criterion.
fn one_way<P: Peer>(iters: u64) -> Duration {
    let (ping, echo) = P::make();
    let plan = Plan {
        warmup: 1_000,
        groups: 1,
        group_len: iters,
    };
    ping_pong(ping, echo, plan)[0] / 2
}

fn bench<P: Peer>(group: &mut BenchmarkGroup<'_, WallTime>, name: &str) {
    group.bench_function(name, |b| b.iter_custom(one_way::<P>));
}

/// The `q`-quantile of sorted samples (nearest rank).
fn quantile(sorted: &[f64], q: f64) -> f64 {
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// One-way latencies in nanoseconds, one per timed group of round trips.
fn one_way_samples<P: Peer>(plan: Plan) -> Vec<f64> {
    let (ping, echo) = P::make();
    let one_way = (plan.group_len * 2) as f64;
    ping_pong(ping, echo, plan)
        .into_iter()
        .map(|group| group.as_nanos() as f64 / one_way)
        .collect()
}

type Sampler = fn(Plan) -> Vec<f64>;

const PEERS: [(&str, Sampler); 5] = [
    ("floor", one_way_samples::<Floor>),
    ("ours-spin", one_way_samples::<Ours>),
    ("rtrb", one_way_samples::<Rtrb>),
    ("disruptor", one_way_samples::<Disruptor>),
    ("crossbeam-channel", one_way_samples::<Crossbeam>),
];

fn sorted(mut values: Vec<f64>) -> Vec<f64> {
    values.sort_by(f64::total_cmp);
    values
}

/// Measures every peer in short interleaved rounds and prints, per peer, the percentiles of
/// all its samples, and the medians over rounds of its p50 and p99 divided by the floor's p50
/// and p99 of the same round.
///
/// On a virtual machine the host moves the two vCPUs between physical cores every few
/// seconds, and the cost of a cache-line transfer changes by up to 4x with it. Interleaving
/// gives every peer the same placements, and the per-round ratios cancel them (the pooled p99
/// mostly says how long the slow placements lasted).
fn percentiles(plan: Plan, rounds: usize) {
    let mut samples = vec![Vec::new(); PEERS.len()];
    let mut round_p50 = vec![Vec::with_capacity(rounds); PEERS.len()];
    let mut round_p99 = vec![Vec::with_capacity(rounds); PEERS.len()];
    for _ in 0..rounds {
        for (peer, &(_, sampler)) in PEERS.iter().enumerate() {
            let round = sorted(sampler(plan));
            round_p50[peer].push(quantile(&round, 0.5));
            round_p99[peer].push(quantile(&round, 0.99));
            samples[peer].extend(round);
        }
    }
    let median_ratio = |of: &[Vec<f64>], peer: usize| {
        let ratios = sorted((0..rounds).map(|r| of[peer][r] / of[0][r]).collect());
        quantile(&ratios, 0.5)
    };
    for (peer, &(name, _)) in PEERS.iter().enumerate() {
        let all = sorted(std::mem::take(&mut samples[peer]));
        println!(
            "latency-percentiles {name:<18} p50 {:>7.1} ns  p99 {:>7.1} ns  p99.9 {:>8.1} ns  \
             min {:>6.1} ns  p50/floor {:.2}  p99/floor {:.2}  (one-way; {rounds} rounds x {} \
             groups of {} round trips)",
            quantile(&all, 0.50),
            quantile(&all, 0.99),
            quantile(&all, 0.999),
            all[0],
            median_ratio(&round_p50, peer),
            median_ratio(&round_p99, peer),
            plan.groups,
            plan.group_len,
        );
    }
}

fn main() {
    let mut c = common::criterion();

    let mut group = c.benchmark_group("latency-oneway");
    bench::<Floor>(&mut group, "floor");
    bench::<Ours>(&mut group, "ours-spin");
    bench::<Rtrb>(&mut group, "rtrb");
    bench::<Disruptor>(&mut group, "disruptor");
    bench::<Crossbeam>(&mut group, "crossbeam-channel");
    group.finish();
    c.final_summary();

    // `cargo bench` passes `--bench`; under `cargo test --benches` run a token amount.
    let full = std::env::args().any(|arg| arg == "--bench");
    let plan = Plan {
        warmup: if full { 2_000 } else { 100 },
        groups: if full { 4_000 } else { 100 },
        group_len: 16,
    };
    percentiles(plan, if full { 30 } else { 1 });
}
