//! How a blocking call waits for the other side: spinning, yielding, or parking.

use crate::shared::Sleeper;
use crate::sync::{spin_hint, thread};

/// How the blocking calls ([`Producer::claim`](crate::Producer::claim),
/// [`Consumer::read`](crate::Consumer::read), ...) wait for the other side.
///
/// The `try_` calls never wait, whatever the strategy. The strategy also decides what a publish
/// or a release costs: with [`Block`](Self::Block), or with a wake hook installed (see
/// [`Builder::wake_consumer_with`](crate::Builder::wake_consumer_with)), the other side may be
/// asleep, so every publish and every release ends with a `SeqCst` fence and one load to find out.
/// With [`Spin`](Self::Spin) or [`Yield`](Self::Yield) and no hook, nobody ever sleeps and that
/// check is skipped. The fence is the price of sleeping without lost wakeups and without a
/// system call while nobody sleeps: in the crate's benchmarks it costs about two thirds of the
/// throughput when every publish carries one event, and about a seventh with claims of 64, so
/// claim several slots per publish where you can.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum WaitStrategy {
    /// Busy-spin with a spin-loop hint: the lowest latency, and a whole core burnt while waiting.
    Spin,
    /// Spin briefly, then `thread::yield_now` in a loop: gives the core away between checks,
    /// still never sleeps.
    Yield,
    /// Spin briefly, yield a few times, then park the thread until the other side makes
    /// progress or disconnects. An idle side costs no CPU. The default.
    #[default]
    Block,
}

/// Spins before yielding. Under loom every spin is a scheduling point, so keep the models small.
#[cfg(not(loom))]
const SPINS: u32 = 64;
#[cfg(loom)]
const SPINS: u32 = 1;

/// Yields (after the spins) before parking.
#[cfg(not(loom))]
const YIELDS: u32 = 16;
#[cfg(loom)]
const YIELDS: u32 = 0;

impl WaitStrategy {
    /// Waits until `ready()` holds. `sleeper` is the calling side's own announcement, used by
    /// [`Block`](Self::Block) to park.
    pub(crate) fn wait_until(self, sleeper: &Sleeper, mut ready: impl FnMut() -> bool) {
        let mut step: u32 = 0;
        while !ready() {
            match self {
                Self::Spin => spin_hint(),
                Self::Yield if step < SPINS => spin_hint(),
                Self::Yield => thread::yield_now(),
                Self::Block if step < SPINS => spin_hint(),
                Self::Block if step < SPINS + YIELDS => thread::yield_now(),
                Self::Block => sleeper.park_unless(&mut ready),
            }
            step = step.saturating_add(1);
        }
    }
}
