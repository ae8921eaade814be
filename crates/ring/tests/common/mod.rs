//! Helpers shared by the integration tests: time limits, threads awaited with a limit, a doorbell,
//! and a way to know that a thread is really parked.
//!
//! Every wait here is bounded: a test that would hang fails instead, with a message that says
//! what it was waiting for. The limits are bounds, never synchronisation; nothing here sleeps for
//! a fixed time hoping that another thread got somewhere.

// Each test file uses a different subset of these helpers.
#![allow(dead_code)]

use ring::WaitStrategy;
use std::any::Any;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// Every strategy, so that each threaded test runs once per way of waiting.
pub(crate) const STRATEGIES: [WaitStrategy; 3] =
    [WaitStrategy::Spin, WaitStrategy::Yield, WaitStrategy::Block];

/// How long a test waits for another thread before it fails.
///
/// Generous, because a loaded CI machine can stall a thread for a long time. Miri's clock runs at
/// roughly the speed of the interpreter, a thousand times slower than native code, so a limit
/// that is generous natively would fail a correct test there.
pub(crate) fn time_limit() -> Duration {
    if cfg!(miri) {
        Duration::from_secs(600)
    } else {
        Duration::from_secs(10)
    }
}

/// The longest a long stream may take in all, however steadily it progresses: a machine that
/// runs many spinning threads on few cores is slow, and that is not a failure; only a stall is.
pub(crate) fn overall_limit() -> Duration {
    time_limit() * 12
}

/// Work done so far (events read, say), shared with the threads doing it, so that a test can tell
/// a slow stream from a stuck one.
#[derive(Clone, Default)]
pub(crate) struct Progress(Arc<AtomicU64>);

impl Progress {
    pub(crate) fn set(&self, done: u64) {
        self.0.store(done, Ordering::Relaxed);
    }

    pub(crate) fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Bounds a loop in iterations and in time: [`tick`](Self::tick) once per iteration, and
/// [`progressed`](Self::progressed) whenever the loop got somewhere. It fails the test after
/// [`time_limit`] without progress, or [`overall_limit`] in all.
pub(crate) struct Watchdog {
    what: &'static str,
    start: Instant,
    last_progress: Instant,
    ticks: u64,
}

impl Watchdog {
    /// A backstop in case the clock misbehaves: no loop here gets near it within the time limit,
    /// since every tick reads the clock.
    const MAX_TICKS: u64 = 1 << 32;

    pub(crate) fn new(what: &'static str) -> Self {
        let now = Instant::now();
        Self {
            what,
            start: now,
            last_progress: now,
            ticks: 0,
        }
    }

    /// Records that the loop got somewhere: the stall limit counts from here.
    pub(crate) fn progressed(&mut self) {
        self.last_progress = Instant::now();
    }

    /// Fails the test if the loop has stalled, run too long, or run too often.
    #[track_caller]
    pub(crate) fn tick(&mut self) {
        self.ticks += 1;
        assert!(
            self.ticks < Self::MAX_TICKS,
            "{}: still looping after {} iterations",
            self.what,
            self.ticks
        );
        let now = Instant::now();
        let stalled = now - self.last_progress;
        assert!(
            stalled < time_limit(),
            "{}: no progress for {stalled:?} ({} iterations); is it deadlocked?",
            self.what,
            self.ticks
        );
        let elapsed = now - self.start;
        assert!(
            elapsed < overall_limit(),
            "{}: not done after {elapsed:?} ({} iterations)",
            self.what,
            self.ticks
        );
    }
}

/// A thread whose result is awaited with a time limit, so that a deadlocked thread fails the test
/// instead of hanging it (a scoped thread would hang the scope's implicit join).
pub(crate) struct Bounded<R> {
    name: String,
    result: mpsc::Receiver<R>,
    handle: JoinHandle<()>,
}

/// Runs `f` on a new thread called `name`.
pub(crate) fn spawn<R: Send + 'static>(
    name: &str,
    f: impl FnOnce() -> R + Send + 'static,
) -> Bounded<R> {
    let (tx, result) = mpsc::channel();
    let handle = thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            // The receiver is gone only if the test already failed.
            let _ = tx.send(f());
        })
        .expect("cannot spawn a thread");
    Bounded {
        name: name.to_owned(),
        result,
        handle,
    }
}

impl<R> Bounded<R> {
    /// The thread's result, or its panic, re-raised here. Fails the test if the thread does not
    /// finish within [`time_limit`]; the stuck thread is then left behind.
    #[track_caller]
    pub(crate) fn join(self) -> R {
        self.join_while(&Progress::default())
    }

    /// Like [`join`](Self::join), for a long stream: waits as long as `progress` keeps moving,
    /// failing after [`time_limit`] without a move, or after [`overall_limit`] in all.
    #[track_caller]
    pub(crate) fn join_while(self, progress: &Progress) -> R {
        let start = Instant::now();
        let mut seen = progress.get();
        loop {
            match self.result.recv_timeout(time_limit()) {
                Ok(result) => {
                    self.handle.join().expect("the thread sent its result");
                    return result;
                }
                Err(RecvTimeoutError::Timeout) => {
                    let now = progress.get();
                    assert!(
                        now != seen,
                        "thread {:?} neither finished nor progressed in {:?} (at {now}); is it deadlocked?",
                        self.name,
                        time_limit()
                    );
                    assert!(
                        start.elapsed() < overall_limit(),
                        "thread {:?} not done after {:?} (at {now})",
                        self.name,
                        start.elapsed()
                    );
                    seen = now;
                }
                // The sender was dropped without sending: the thread panicked.
                Err(RecvTimeoutError::Disconnected) => match self.handle.join() {
                    Err(panic) => resume(panic),
                    Ok(()) => unreachable!("thread {:?} ended without a result", self.name),
                },
            }
        }
    }
}

fn resume(panic: Box<dyn Any + Send>) -> ! {
    std::panic::resume_unwind(panic)
}

/// Waits, boundedly, until the thread called `name` is asleep in the kernel: for a thread that
/// announced it is about to block in the ring with [`WaitStrategy::Block`], that means parked.
///
/// This is what lets a test say "the drop must wake a *parked* thread" rather than hoping it got
/// that far. On Linux it reads the thread's state from `/proc`; the state is `S` only while the
/// thread waits in the kernel, and the tested threads call nothing else that can block there.
/// Where `/proc` is not available (Miri, other systems) it yields a while instead, which makes
/// parking likely but not certain; the test's assertions hold either way, they just may cover the
/// spinning path instead of the parked one.
///
/// `name` must be unique in the process (tests run in parallel) and at most 15 bytes, the length
/// Linux keeps.
#[track_caller]
pub(crate) fn wait_until_parked(name: &str) {
    assert!(
        name.len() <= 15,
        "Linux truncates thread names to 15 bytes: {name:?}"
    );
    let mut watchdog = Watchdog::new("waiting for a thread to park");
    // Twice in a row, so that a brief wait in the kernel on the way (a contended lock) does not
    // count; parked in the ring, the thread stays asleep until the test wakes it.
    let mut asleep = 0;
    loop {
        match kernel_state(name) {
            Some('S') => asleep += 1,
            Some(_) => asleep = 0,
            None => break,
        }
        if asleep == 2 {
            return;
        }
        watchdog.tick();
        thread::yield_now();
    }
    // No `/proc`: give the other thread plenty of turns to spin, yield and park.
    for _ in 0..if cfg!(miri) { 200 } else { 10_000 } {
        thread::yield_now();
    }
}

/// The state letter of the thread called `name` from `/proc/self/task/*/stat` (`?` while no
/// thread has that name), or `None` if `/proc` cannot be read.
fn kernel_state(name: &str) -> Option<char> {
    if cfg!(miri) {
        // Miri's isolation forbids the file system.
        return None;
    }
    let tasks = std::fs::read_dir("/proc/self/task").ok()?;
    for task in tasks.flatten() {
        let path = task.path();
        // A task can end while we look; skip it.
        let Ok(comm) = std::fs::read_to_string(path.join("comm")) else {
            continue;
        };
        if comm.trim_end() != name {
            continue;
        }
        let stat = std::fs::read_to_string(path.join("stat")).ok()?;
        // "tid (comm) S ...": the name can hold anything, so look after its last ')'.
        let (_, rest) = stat.rsplit_once(')')?;
        return rest.trim_start().chars().next();
    }
    // Not there (yet): a new thread takes its name only once it runs, so a moment after the
    // spawn it still bears its parent's. Not asleep, then; a thread that ended instead is
    // caught by the caller's watchdog.
    Some('?')
}

/// A doorbell built on a `Condvar`: one side rings it from a wake hook, the other waits for it.
#[derive(Default)]
pub(crate) struct Doorbell {
    rung: Mutex<bool>,
    bell: Condvar,
}

impl Doorbell {
    /// Rings the bell; quick and non-blocking in practice, as a wake hook must be.
    pub(crate) fn ring(&self) {
        *self.rung.lock().unwrap() = true;
        self.bell.notify_one();
    }

    /// Waits until the bell has rung since the last wait, then silences it. Fails the test after
    /// [`time_limit`]: that is a lost wake-up.
    #[track_caller]
    pub(crate) fn wait(&self, what: &str) {
        let rung = self.rung.lock().unwrap();
        let (mut rung, timeout) = self
            .bell
            .wait_timeout_while(rung, time_limit(), |rung| !*rung)
            .unwrap();
        assert!(
            !timeout.timed_out(),
            "{what}: the bell did not ring within {:?}, a lost wake-up",
            time_limit()
        );
        *rung = false;
    }
}

/// A small deterministic generator (xorshift64*), so that the threaded tests vary their claim and
/// batch sizes without a dependency and reproduce exactly.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        // xorshift must not start at zero.
        Self(seed | 1)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `0..n`; `n` must not be zero.
    pub(crate) fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

/// The values of a batch, in order.
pub(crate) fn values<T: Copy>(batch: &ring::Batch<'_, T>) -> Vec<T> {
    batch.iter().copied().collect()
}
