//! Helpers shared by the throughput and latency benchmarks: pinning, the in-order check, and
//! running a pinned producer/consumer pair.

use std::sync::Barrier;
use std::thread;
use std::time::{Duration, Instant};

/// Slots in every ring and channel under test.
pub(crate) const CAPACITY: usize = 1024;

/// The core of the producer (throughput) or the pinging side (latency).
pub(crate) const PRODUCER_CORE: usize = 0;

/// The core of the consumer (throughput) or the echoing side (latency).
pub(crate) const CONSUMER_CORE: usize = 1;

/// Pins the calling thread to `core`.
///
/// # Panics
///
/// If the thread cannot be pinned there (the machine has fewer cores, say).
pub(crate) fn pin(core: usize) {
    assert!(
        core_affinity::set_for_current(core_affinity::CoreId { id: core }),
        "cannot pin to core {core}: the benchmarks need cores 0 and 1"
    );
}

/// Checks, cheaply and without a branch per event, that the values `0, 1, 2, ...` arrive in
/// order, none lost and none repeated: every value is XORed with the one expected, and the
/// differences are ORed together, to be checked once at the end.
#[derive(Debug, Default)]
pub(crate) struct InOrder {
    expected: u64,
    mismatch: u64,
}

impl InOrder {
    /// The number of values seen so far.
    #[inline(always)]
    #[allow(dead_code, reason = "the latency bench uses only part of this module")]
    pub(crate) fn seen(&self) -> u64 {
        self.expected
    }

    /// Sees one value.
    #[inline(always)]
    pub(crate) fn see(&mut self, value: u64) {
        self.mismatch |= value ^ self.expected;
        self.expected += 1;
    }

    /// Sees a run of values (vectorisable).
    #[inline(always)]
    #[allow(dead_code, reason = "the latency bench uses only part of this module")]
    pub(crate) fn see_slice(&mut self, values: &[u64]) {
        let base = self.expected;
        let mut mismatch = 0;
        for (k, &value) in values.iter().enumerate() {
            mismatch |= value ^ (base + k as u64);
        }
        self.mismatch |= mismatch;
        self.expected += values.len() as u64;
    }

    /// Panics unless exactly `0..n` were seen, in order.
    pub(crate) fn verify(&self, n: u64, who: &str) {
        assert_eq!(self.expected, n, "{who}: wrong number of events");
        assert_eq!(self.mismatch, 0, "{who}: events out of order or corrupted");
    }
}

/// Runs `produce` on [`PRODUCER_CORE`] and `consume` on [`CONSUMER_CORE`], each in its own
/// scoped thread, and returns the time from the moment the first of them leaves a start
/// barrier (both pinned and ready) to the moment `consume` returns. Spawning and pinning are not
/// timed. Both closures must return by themselves (the consumer after a known number of events).
#[allow(dead_code, reason = "the latency bench uses only part of this module")]
pub(crate) fn run_pinned_pair(
    produce: impl FnOnce() + Send,
    consume: impl FnOnce() + Send,
) -> Duration {
    let ready = Barrier::new(2);
    thread::scope(|s| {
        let producer = s.spawn(|| {
            pin(PRODUCER_CORE);
            ready.wait();
            let start = Instant::now();
            produce();
            start
        });
        let consumer = s.spawn(|| {
            pin(CONSUMER_CORE);
            ready.wait();
            let start = Instant::now();
            consume();
            (start, Instant::now())
        });
        let producer_start = producer.join().expect("producer panicked");
        let (consumer_start, end) = consumer.join().expect("consumer panicked");
        // Whichever side left the barrier first starts the clock: a producer with a head start
        // must not get its first 1024 events for free.
        end - producer_start.min(consumer_start)
    })
}

/// Criterion as both benches use it: 20 samples of 3 s after 1 s of warm-up, so that a whole
/// `cargo bench -p ring` stays near 90 s, plus whatever the command line says.
pub(crate) fn criterion() -> criterion::Criterion {
    criterion::Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .nresamples(20_000)
        .configure_from_args()
}
