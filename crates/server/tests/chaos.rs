//! Chaos: a seeded random mix of clients, well-behaved and rude, against two server binaries
//! (`line` and `frame` framing) for a bounded time. Every reply is checked byte for byte, the
//! servers' memory is watched, and at the end both must still serve and stop cleanly.
//!
//! `CHAOS_SECS` sets how long clients keep starting (default 20, decimals allowed) and
//! `CHAOS_SEED` the seed (default: from the clock). The seed is printed and every failure
//! names it: each client thread's sequence of runs, and every byte in them, follows from it.

mod common;

use common::{Binary, MAX_ROUNDS, reversed_lines, try_status_kib};
use rustix::net::sockopt;
use rustix::process::Signal;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const MAX_LINE: usize = 4096;
const MAX_FRAME: usize = 65536;
const LINE_SERVER: &[&str] = &[
    "-q",
    "--exit",
    "off",
    "--max-line",
    "4096",
    "--max-pending",
    "262144",
    "--max-buffered",
    "8388608",
    "0",
];
const FRAME_SERVER: &[&str] = &[
    "-q",
    "--framing",
    "frame",
    "--exit",
    "off",
    "--max-frame",
    "65536",
    "--max-pending",
    "262144",
    "--max-buffered",
    "8388608",
    "0",
];
/// Client threads: enough that several kinds of client are always in flight together.
const CLIENTS: usize = 16;
/// The bound on each server's resident memory. By the configuration it needs the ring
/// (1024 x 4 KiB), the buffer pool (`--max-buffered`, 8 MiB) and, past the pool's limit, at
/// most what the ring holds again (see ARCHITECTURE.md): 16 MiB, plus code, stacks and the
/// allocator's slack. A server that ignored `--max-pending` or the pool reaches 30 MiB and
/// more here.
const RSS_LIMIT_KB: u64 = 28 * 1024;
const SAMPLE_EVERY: Duration = Duration::from_millis(100);
/// The longest one client run may take, and so any read or write in it. A run normally takes
/// well under a second; this only bounds how long a stuck server holds the test up.
const RUN_LIMIT: Duration = Duration::from_secs(10);
const DEFAULT_SECS: f64 = 20.0;
/// How far the deadline must be for a slow reader to take 5 to 8 MiB (it reads 2 to 3 MB/s).
const BIG_SLOW_READER: Duration = Duration::from_secs(5);

/// SplitMix64: tiny, and good enough to drive a test; the same seed gives the same sequence.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Self(seed)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`); the modulo bias is irrelevant at these sizes.
    fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// A number in `0..=n`.
    fn upto(&mut self, n: usize) -> usize {
        self.below(n + 1)
    }

    /// A number in `lo..=hi`.
    fn between(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.upto(hi - lo)
    }

    /// True `num` times in `den`.
    fn chance(&mut self, num: usize, den: usize) -> bool {
        self.below(den) < num
    }

    fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let bytes = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
    }

    /// An independent generator, so that what one part draws does not shift another's.
    fn fork(&mut self) -> Self {
        Self::new(self.next_u64())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Lines,
    Unterminated,
    Reset,
    SlowReader,
    LongLine,
    Frames,
    BigFrame,
}

impl Kind {
    /// Every kind with its weight in the mix; the long runs (slow readers) are rarer.
    const MIX: [(Self, usize); 7] = [
        (Self::Lines, 4),
        (Self::Unterminated, 2),
        (Self::Reset, 3),
        (Self::SlowReader, 1),
        (Self::LongLine, 2),
        (Self::Frames, 4),
        (Self::BigFrame, 2),
    ];

    fn pick(rng: &mut Rng) -> Self {
        let total: usize = Self::MIX.iter().map(|(_, w)| w).sum();
        let mut n = rng.below(total);
        for (kind, weight) in Self::MIX {
            if n < weight {
                return kind;
            }
            n -= weight;
        }
        unreachable!("the weights add up to the total")
    }

    fn index(self) -> usize {
        Self::MIX.iter().position(|(k, _)| *k == self).unwrap()
    }

    fn name(self) -> &'static str {
        match self {
            Self::Lines => "well-behaved line",
            Self::Unterminated => "unterminated last line",
            Self::Reset => "abrupt reset",
            Self::SlowReader => "slow reader",
            Self::LongLine => "oversize line",
            Self::Frames => "frame",
            Self::BigFrame => "oversize frame",
        }
    }
}

/// What the client threads share.
struct Ctx {
    seed: u64,
    line: SocketAddr,
    frame: SocketAddr,
    /// No client run starts after this.
    deadline: Instant,
    /// Set by the first failing client, so that the others stop early.
    failed: AtomicBool,
}

/// What one client thread did.
#[derive(Default)]
struct Tally {
    runs: [u64; Kind::MIX.len()],
    /// Connections opened to the line and the frame server, and how many of them were reset.
    line: u64,
    frame: u64,
    line_resets: u64,
    frame_resets: u64,
}

#[test]
fn a_seeded_mix_of_clients_gets_exact_replies_within_bounded_memory() {
    let (seed, duration) = settings();
    println!(
        "chaos: seed {seed}, {:.1} s; replay with CHAOS_SEED={seed} CHAOS_SECS={}",
        duration.as_secs_f64(),
        duration.as_secs_f64()
    );
    let started = Instant::now();
    let mut line_server = Binary::spawn(LINE_SERVER);
    let mut frame_server = Binary::spawn(FRAME_SERVER);
    let ctx = Ctx {
        seed,
        line: line_server.listening(),
        frame: frame_server.listening(),
        deadline: Instant::now() + duration,
        failed: AtomicBool::new(false),
    };
    let pids = [line_server.pid(), frame_server.pid()];
    let mut master = Rng::new(seed);
    let rngs: Vec<Rng> = (0..CLIENTS).map(|_| master.fork()).collect();
    let (stop_watching, stopped) = mpsc::channel::<()>();

    let (results, rss) = thread::scope(|s| {
        let monitor = s.spawn(move || watch_rss(pids, &stopped));
        let clients: Vec<_> = rngs
            .into_iter()
            .enumerate()
            .map(|(n, rng)| {
                let ctx = &ctx;
                s.spawn(move || client_thread(n, rng, ctx))
            })
            .collect();
        let results: Vec<Result<Tally, String>> = clients
            .into_iter()
            .enumerate()
            .map(|(n, client)| {
                client.join().unwrap_or_else(|panic| {
                    Err(format!(
                        "CHAOS_SEED={seed}: client thread {n} panicked: {}",
                        panic_message(&*panic)
                    ))
                })
            })
            .collect();
        drop(stop_watching);
        let rss = monitor
            .join()
            .unwrap_or_else(|_| Err("the memory monitor panicked".into()));
        (results, rss)
    });
    let clients_done = started.elapsed();

    // Counted and printed first, as context for a failure.
    let mut total = Tally::default();
    for tally in results.iter().flatten() {
        for (sum, n) in total.runs.iter_mut().zip(tally.runs) {
            *sum += n;
        }
        total.line += tally.line;
        total.frame += tally.frame;
        total.line_resets += tally.line_resets;
        total.frame_resets += tally.frame_resets;
    }
    for ((kind, _), runs) in Kind::MIX.iter().zip(total.runs) {
        println!("chaos: {runs:6} {} clients", kind.name());
    }

    if let Ok((max_rss, samples)) = &rss {
        println!(
            "chaos: max VmRSS {} KiB (line server), {} KiB (frame server), {samples} samples",
            max_rss[0], max_rss[1]
        );
    }
    let failures: Vec<&String> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(
        failures.is_empty(),
        "{} client thread(s) failed:\n{}",
        failures.len(),
        failures
            .iter()
            .map(|f| f.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    );
    // Each thread's first run is of the kind its number says, so every kind ran.
    assert!(total.runs.iter().all(|&n| n > 0), "a kind never ran");
    let (max_rss, _) = rss.unwrap_or_else(|err| panic!("CHAOS_SEED={seed}: {err}"));
    for (name, kb) in ["line", "frame"].iter().zip(max_rss) {
        assert!(
            kb < RSS_LIMIT_KB,
            "CHAOS_SEED={seed}: the {name} server's VmRSS reached {kb} KiB (limit {RSS_LIMIT_KB})"
        );
    }

    // Both still serve a fresh client.
    let mut rng = Rng::new(seed);
    let still = b"still here\n";
    let fresh = |addr, request: &[u8], expected: &[u8], unit, rng: &mut Rng| {
        let stream = open(addr).unwrap_or_else(|err| panic!("CHAOS_SEED={seed}: {err}"));
        let session = Session::replies(request, expected, unit);
        let result = session.run(&stream, rng, Instant::now() + RUN_LIMIT);
        result.unwrap_or_else(|err| panic!("CHAOS_SEED={seed}: a fresh client at the end: {err}"));
    };
    fresh(ctx.line, still, b"ereh llits\n", Unit::Line, &mut rng);
    let (request, expected) = frames_of(&[b"still here"]);
    fresh(ctx.frame, &request, &expected, Unit::Frame, &mut rng);

    let line_summary = stop(line_server, "line", total.line + 1, total.line_resets);
    let frame_summary = stop(frame_server, "frame", total.frame + 1, total.frame_resets);
    println!("chaos: line server {line_summary}");
    println!("chaos: frame server {frame_summary}");
    println!(
        "chaos: clients ran {:.1} s, {:.1} s in all",
        clients_done.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
}

/// The seed and the duration, from `CHAOS_SEED` and `CHAOS_SECS`.
fn settings() -> (u64, Duration) {
    let seed = match std::env::var("CHAOS_SEED") {
        Ok(text) => {
            let text = text.trim();
            let parsed = match text.strip_prefix("0x") {
                Some(hex) => u64::from_str_radix(hex, 16),
                None => text.parse(),
            };
            parsed.unwrap_or_else(|_| panic!("CHAOS_SEED={text:?} is not a number"))
        }
        Err(_) => {
            let nanos = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64);
            // Mixed once, so that seeds from close times look unrelated.
            Rng::new(nanos ^ u64::from(std::process::id()) << 32).next_u64()
        }
    };
    let secs = match std::env::var("CHAOS_SECS") {
        Ok(text) => text
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|s| s.is_finite() && *s > 0.0 && *s <= 3600.0)
            .unwrap_or_else(|| panic!("CHAOS_SECS={text:?} is not a number of seconds")),
        Err(_) => DEFAULT_SECS,
    };
    (seed, Duration::from_secs_f64(secs))
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> &str {
    panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("(not a string)")
}

/// One client thread: client runs of random kinds until the deadline (or another's failure).
fn client_thread(n: usize, mut rng: Rng, ctx: &Ctx) -> Result<Tally, String> {
    let mut tally = Tally::default();
    for run in 0..MAX_ROUNDS {
        if ctx.failed.load(Ordering::Relaxed) || (run > 0 && Instant::now() >= ctx.deadline) {
            break;
        }
        let kind = if run == 0 {
            Kind::MIX[n % Kind::MIX.len()].0
        } else {
            Kind::pick(&mut rng)
        };
        // In every byte the client sends: a reply with another's tag is cross-talk.
        let tag = format!("<{n:02}/{run:05}/{}>", kind.index());
        let mut run_rng = rng.fork();
        if let Err(err) = one_run(kind, tag.as_bytes(), &mut run_rng, ctx, &mut tally) {
            ctx.failed.store(true, Ordering::Relaxed);
            return Err(format!(
                "CHAOS_SEED={}: {} client {tag} (thread {n}, run {run}): {err}",
                ctx.seed,
                kind.name()
            ));
        }
        tally.runs[kind.index()] += 1;
    }
    Ok(tally)
}

fn one_run(
    kind: Kind,
    tag: &[u8],
    rng: &mut Rng,
    ctx: &Ctx,
    tally: &mut Tally,
) -> Result<(), String> {
    let deadline = Instant::now() + RUN_LIMIT;
    match kind {
        Kind::Lines => {
            let size = budget(rng, 4 << 10, 64 << 10, 512 << 10);
            let input = lines(rng, tag, size);
            let stream = open(ctx.line)?;
            tally.line += 1;
            Session::replies(&input, &reversed_lines(&input), Unit::Line)
                .run(&stream, rng, deadline)
        }
        Kind::Unterminated => {
            let size = rng.upto(16 << 10);
            let mut input = lines(rng, tag, size);
            let last = rng.between(1, MAX_LINE);
            tagged(rng, tag, last, &mut input, true);
            let stream = open(ctx.line)?;
            tally.line += 1;
            Session::replies(&input, &reversed_lines(&input), Unit::Line)
                .run(&stream, rng, deadline)
        }
        Kind::SlowReader => {
            // Mostly 1 to 4 MiB, which the kernel's socket buffers take whole (the server's
            // send buffer grows up to `tcp_wmem`'s 4 MiB). One in three sends 5 to 8 MiB, so
            // that the server's writes come up short and its pending output (bounded by
            // `--max-pending`) is used; those take seconds, so only if the deadline is as far.
            let big = rng.chance(1, 3);
            let (small, large) = ((1 << 20) + rng.upto(3 << 20), (5 << 20) + rng.upto(3 << 20));
            let time_left = ctx.deadline.saturating_duration_since(Instant::now());
            let size = if big && time_left > BIG_SLOW_READER {
                large
            } else {
                small
            };
            let input = lines(rng, tag, size);
            let stream = open(ctx.line)?;
            tally.line += 1;
            // A window of 64 or 128 KiB. Not smaller: below 32 KiB, loopback TCP stalls on
            // delayed acknowledgements and delivers some 50 to 130 KB/s, whatever the server.
            let window = (64 << 10) << rng.below(2);
            sockopt::set_socket_recv_buffer_size(&stream, window)
                .map_err(|e| format!("SO_RCVBUF: {e}"))?;
            let expected = reversed_lines(&input);
            let mut session = Session::replies(&input, &expected, Unit::Line);
            session.slow = true;
            session.run(&stream, rng, deadline)
        }
        Kind::LongLine => {
            let size = rng.upto(32 << 10);
            let good = lines(rng, tag, size);
            let mut input = good.clone();
            let long = rng.between(MAX_LINE + 1, 12_000);
            tagged(rng, tag, long, &mut input, true);
            // A `\r` last could still be half of a terminator: this line is too long whatever
            // follows.
            if input.last() == Some(&b'\r') {
                *input.last_mut().unwrap() = b'x';
            }
            if rng.chance(1, 2) {
                let size = rng.upto(8 << 10);
                input.extend(lines(rng, tag, size));
            }
            let mut expected = reversed_lines(&good);
            expected.extend_from_slice(b"error: line longer than 4096 bytes\n");
            let stream = open(ctx.line)?;
            tally.line += 1;
            let mut session = Session::replies(&input, &expected, Unit::Line);
            session.half_close = rng.chance(1, 2);
            session.run(&stream, rng, deadline)
        }
        Kind::Frames => {
            let size = budget(rng, 16 << 10, 256 << 10, 1 << 20);
            let (mut input, expected) = frames(rng, tag, size);
            if rng.chance(1, 4) {
                // An incomplete frame at the end is dropped without a reply.
                let len = rng.between(1, MAX_FRAME);
                let header = (len as u32).to_be_bytes();
                if rng.chance(1, 2) {
                    input.extend_from_slice(&header[..rng.between(1, 3)]);
                } else {
                    input.extend_from_slice(&header);
                    let part = rng.below(len);
                    tagged(rng, tag, part, &mut input, false);
                }
            }
            let stream = open(ctx.frame)?;
            tally.frame += 1;
            Session::replies(&input, &expected, Unit::Frame).run(&stream, rng, deadline)
        }
        Kind::BigFrame => {
            // One to three good frames (a size of 1 makes exactly one).
            let (mut input, mut expected) = (Vec::new(), Vec::new());
            for _ in 0..rng.between(1, 3) {
                let (frame, reply) = frames(rng, tag, 1);
                input.extend(frame);
                expected.extend(reply);
            }
            let announced = if rng.chance(1, 2) {
                MAX_FRAME as u32 + 1
            } else {
                MAX_FRAME as u32 + 1 + (rng.next_u64() as u32 % (u32::MAX - MAX_FRAME as u32))
            };
            input.extend_from_slice(&announced.to_be_bytes());
            if rng.chance(1, 2) {
                let extra = rng.upto(2048);
                tagged(rng, tag, extra, &mut input, false);
            }
            let stream = open(ctx.frame)?;
            tally.frame += 1;
            let mut session = Session::replies(&input, &expected, Unit::Frame);
            session.half_close = rng.chance(1, 2);
            // The server closes the connection, with a reset if our bytes are still unread.
            session.end = End::EofOrReset;
            session.writes_may_fail = true;
            session.run(&stream, rng, deadline)
        }
        Kind::Reset => {
            let on_lines = rng.chance(1, 2);
            // At most what the server takes in without our reading (its pending output limit
            // plus the socket buffers), so that the sending never waits.
            let size = rng.upto(128 << 10);
            let input = if on_lines {
                lines(rng, tag, size)
            } else {
                frames(rng, tag, size).0
            };
            let cut = rng.upto(input.len());
            let stream = open(if on_lines { ctx.line } else { ctx.frame })?;
            if on_lines {
                tally.line += 1;
                tally.line_resets += 1;
            } else {
                tally.frame += 1;
                tally.frame_resets += 1;
            }
            let pieces = cuts(rng, cut);
            // Nothing to verify: the server may answer, or find the reset, at any point.
            let _ = send(
                &stream,
                &input[..cut],
                &pieces,
                rng.chance(1, 4),
                rng,
                deadline,
            );
            sockopt::set_socket_linger(&stream, Some(Duration::ZERO))
                .map_err(|e| format!("SO_LINGER: {e}"))?;
            drop(stream);
            Ok(())
        }
    }
}

/// A size for a client's input: often small, sometimes medium, now and then large.
fn budget(rng: &mut Rng, small: usize, medium: usize, large: usize) -> usize {
    match rng.below(100) {
        0..50 => rng.upto(small),
        50..85 => rng.upto(medium),
        _ => rng.upto(large),
    }
}

/// Appends `len` random bytes that start with (as much as fits of) `tag`; with `lines`, none
/// is a newline.
fn tagged(rng: &mut Rng, tag: &[u8], len: usize, out: &mut Vec<u8>, lines: bool) {
    let start = out.len();
    out.resize(start + len, 0);
    let bytes = &mut out[start..];
    rng.fill(bytes);
    let n = tag.len().min(len);
    bytes[..n].copy_from_slice(&tag[..n]);
    if lines {
        for byte in bytes.iter_mut().filter(|b| **b == b'\n') {
            *byte = b'.';
        }
    }
}

/// Lines of random bytes, up to `--max-line` long, until there are at least `size` bytes.
fn lines(rng: &mut Rng, tag: &[u8], size: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(size + MAX_LINE + 1);
    // Every line adds at least its newline.
    while out.len() < size {
        let len = match rng.below(100) {
            0..55 => rng.upto(80),
            55..80 => rng.upto(1024),
            80..95 => rng.upto(MAX_LINE),
            _ => MAX_LINE,
        };
        tagged(rng, tag, len, &mut out, true);
        // Often enough a `\r\n` terminator, whose `\r` stays in place in the reply.
        if len > 0 && rng.chance(1, 8) {
            *out.last_mut().unwrap() = b'\r';
        }
        out.push(b'\n');
    }
    out
}

/// Frames of random payloads, up to `--max-frame` long, until there are at least `size`
/// bytes; and the replies due.
fn frames(rng: &mut Rng, tag: &[u8], size: usize) -> (Vec<u8>, Vec<u8>) {
    let mut input = Vec::with_capacity(size + MAX_FRAME + 4);
    let mut expected = Vec::with_capacity(size + MAX_FRAME + 4);
    // Every frame adds at least its header.
    while input.len() < size {
        let len = match rng.below(100) {
            0..40 => rng.upto(64),
            40..65 => rng.upto(4096),
            65..90 => rng.upto(MAX_FRAME),
            90..95 => MAX_FRAME,
            _ => 0,
        };
        let header = (len as u32).to_be_bytes();
        input.extend_from_slice(&header);
        let start = input.len();
        tagged(rng, tag, len, &mut input, false);
        expected.extend_from_slice(&header);
        expected.extend(input[start..].iter().rev());
    }
    (input, expected)
}

/// `payloads` as frames, and the replies due.
fn frames_of(payloads: &[&[u8]]) -> (Vec<u8>, Vec<u8>) {
    let (mut input, mut expected) = (Vec::new(), Vec::new());
    for payload in payloads {
        let header = (payload.len() as u32).to_be_bytes();
        input.extend_from_slice(&header);
        input.extend_from_slice(payload);
        expected.extend_from_slice(&header);
        expected.extend(payload.iter().rev());
    }
    (input, expected)
}

/// Where to cut `len` bytes into pieces (the end of each): single bytes to 64 KiB.
fn cuts(rng: &mut Rng, len: usize) -> Vec<usize> {
    let mut ends = Vec::new();
    let mut at = 0;
    // Every piece is at least one byte.
    while at < len {
        let piece = match rng.below(100) {
            0..10 => rng.between(1, 3),
            10..40 => rng.between(1, 64),
            40..80 => rng.between(1, 4096),
            _ => rng.between(1, 65536),
        };
        at = (at + piece).min(len);
        ends.push(at);
    }
    ends
}

fn open(addr: SocketAddr) -> Result<TcpStream, String> {
    let stream = TcpStream::connect(addr).map_err(|e| format!("connect to {addr}: {e}"))?;
    let setup = (|| {
        stream.set_read_timeout(Some(RUN_LIMIT))?;
        stream.set_write_timeout(Some(RUN_LIMIT))?;
        stream.set_nodelay(true)
    })();
    setup.map_err(|e| format!("socket options: {e}"))?;
    Ok(stream)
}

/// Sends `input` cut at `ends`, then half-closes if asked.
fn send(
    stream: &TcpStream,
    input: &[u8],
    ends: &[usize],
    half_close: bool,
    rng: &mut Rng,
    deadline: Instant,
) -> io::Result<()> {
    let mut writer = stream;
    let mut from = 0;
    for &to in ends {
        if Instant::now() > deadline {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("still sending at byte {from} of {}", input.len()),
            ));
        }
        writer.write_all(&input[from..to])?;
        from = to;
        // Pacing, not synchronisation: now and then a pause, so that pieces also arrive in
        // reads of their own.
        if rng.chance(1, 32) {
            thread::sleep(Duration::from_micros(rng.below(1000) as u64));
        }
    }
    if half_close {
        stream.shutdown(Shutdown::Write)?;
    }
    Ok(())
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Unit {
    Line,
    Frame,
}

/// How the reply stream must end after the last reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum End {
    Eof,
    EofOrReset,
}

/// One connection's exchange: the input sent in random pieces by one thread while this one
/// reads and checks the replies, then the end of the stream.
struct Session<'a> {
    input: &'a [u8],
    expected: &'a [u8],
    half_close: bool,
    end: End,
    unit: Unit,
    /// Read in small pieces, with pauses.
    slow: bool,
    /// The server may close before it has all the input (the sending's failure is expected).
    writes_may_fail: bool,
}

impl<'a> Session<'a> {
    fn replies(input: &'a [u8], expected: &'a [u8], unit: Unit) -> Self {
        Self {
            input,
            expected,
            half_close: true,
            end: End::Eof,
            unit,
            slow: false,
            writes_may_fail: false,
        }
    }

    fn run(&self, stream: &TcpStream, rng: &mut Rng, deadline: Instant) -> Result<(), String> {
        let ends = cuts(rng, self.input.len());
        let mut writer_rng = rng.fork();
        thread::scope(|s| {
            let writer = s.spawn(move || {
                send(
                    stream,
                    self.input,
                    &ends,
                    self.half_close,
                    &mut writer_rng,
                    deadline,
                )
            });
            let pace = self.slow.then_some(rng);
            let read = check_replies(stream, self.expected, self.end, self.unit, pace, deadline);
            if read.is_err() {
                // Unblocks the writer at once.
                let _ = stream.shutdown(Shutdown::Both);
            }
            let wrote = writer
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("the sending thread panicked")));
            match (read, wrote) {
                (Err(read), Err(wrote)) if !self.writes_may_fail => Err(format!(
                    "{read} (sending {} bytes failed too: {wrote})",
                    self.input.len()
                )),
                (Err(read), _) => Err(read),
                (Ok(()), Err(wrote)) if !self.writes_may_fail => Err(format!(
                    "sending {} bytes failed: {wrote}",
                    self.input.len()
                )),
                _ => Ok(()),
            }
        })
    }
}

/// Reads exactly `expected`, comparing as it goes, then the end of the stream.
fn check_replies(
    stream: &TcpStream,
    expected: &[u8],
    end: End,
    unit: Unit,
    mut pace: Option<&mut Rng>,
    deadline: Instant,
) -> Result<(), String> {
    let mut reader = stream;
    let mut buf = vec![0; 64 << 10];
    let mut got = 0;
    let of = expected.len();
    // Every read but an interrupted one brings at least one byte.
    for _ in 0..=of + 1000 {
        if got == of {
            break;
        }
        if Instant::now() > deadline {
            return Err(format!("timed out after {got} of {of} reply bytes"));
        }
        let want = match pace.as_deref_mut() {
            Some(rng) => {
                // A slow reader: a pause now and then, small reads always.
                if rng.chance(1, 8) {
                    thread::sleep(Duration::from_millis(rng.between(1, 3) as u64));
                }
                if rng.chance(1, 4) {
                    rng.between(1, 64)
                } else {
                    rng.between(1, 2048)
                }
            }
            None => buf.len(),
        }
        .min(of - got);
        match reader.read(&mut buf[..want]) {
            Ok(0) => {
                return Err(format!(
                    "end of stream after {got} of {of} reply bytes, in {}",
                    locate(unit, expected, got)
                ));
            }
            Ok(n) => {
                if buf[..n] != expected[got..got + n] {
                    let i = (0..n).find(|&i| buf[i] != expected[got + i]).unwrap_or(0);
                    let at = got + i;
                    let shown =
                        |bytes: &[u8]| bytes[..bytes.len().min(32)].escape_ascii().to_string();
                    return Err(format!(
                        "first difference at reply byte {at} of {of}, in {}: expected \"{}\", got \"{}\"",
                        locate(unit, expected, at),
                        shown(&expected[at..]),
                        shown(&buf[i..n])
                    ));
                }
                got += n;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                return Err(format!(
                    "read failed after {got} of {of} reply bytes, in {}: {e}",
                    locate(unit, expected, got)
                ));
            }
        }
    }
    if got < of {
        return Err(format!("only {got} of {of} reply bytes in too many reads"));
    }
    match (reader.read(&mut buf), end) {
        (Ok(0), _) => Ok(()),
        (Err(e), End::EofOrReset) if e.kind() == io::ErrorKind::ConnectionReset => Ok(()),
        (Ok(n), _) => Err(format!(
            "{n} bytes after all {of} reply bytes: \"{}\"",
            buf[..n.min(32)].escape_ascii()
        )),
        (Err(e), _) => Err(format!("no end of stream after all {of} reply bytes: {e}")),
    }
}

/// Where reply byte `at` lies, in words: which line or frame.
fn locate(unit: Unit, expected: &[u8], at: usize) -> String {
    match unit {
        Unit::Line => {
            let before = &expected[..at];
            let line = before.iter().filter(|&&b| b == b'\n').count();
            let start = before
                .iter()
                .rposition(|&b| b == b'\n')
                .map_or(0, |p| p + 1);
            format!("reply line {line} (from 0), byte {} of it", at - start)
        }
        Unit::Frame => {
            let mut start = 0;
            // Every frame is at least its 4-byte header long.
            for frame in 0..=expected.len() / 4 {
                let Some(header) = expected.get(start..start + 4) else {
                    break;
                };
                let len = u32::from_be_bytes(header.try_into().unwrap()) as usize;
                if at < start + 4 {
                    return format!("the header of reply frame {frame} (from 0)");
                }
                if at < start + 4 + len {
                    return format!(
                        "reply frame {frame} (from 0, payload {len} bytes), payload byte {}",
                        at - start - 4
                    );
                }
                start += 4 + len;
            }
            "no reply frame (after the last one)".into()
        }
    }
}

/// Samples both servers' VmRSS until told to stop; returns the maxima (KiB) and the number
/// of samples.
fn watch_rss(pids: [u32; 2], stop: &mpsc::Receiver<()>) -> Result<([u64; 2], usize), String> {
    let mut max = [0; 2];
    for samples in 1..=MAX_ROUNDS {
        for (max, pid) in max.iter_mut().zip(pids) {
            *max = (*max).max(try_status_kib(pid, "VmRSS")?);
        }
        // The sampling interval, which the end of the clients cuts short.
        match stop.recv_timeout(SAMPLE_EVERY) {
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            _ => return Ok((max, samples)),
        }
    }
    Ok((max, MAX_ROUNDS))
}

/// SIGTERM: the server stops with status 0 and a `summary:` line counting the connections it
/// had (all of them, but maybe not those reset before it accepted them), nothing rejected or
/// shed and nothing left pending. Returns the summary.
fn stop(server: Binary, name: &str, opened: u64, resets: u64) -> String {
    server.signal(Signal::TERM);
    let (status, lines, _) = server.wait();
    assert_eq!(status.code(), Some(0), "the {name} server: {lines:?}");
    assert!(
        !lines
            .iter()
            .any(|l| l.contains("ERROR") || l.contains("panicked")),
        "the {name} server: {lines:?}"
    );
    let summary = lines
        .iter()
        .find_map(|l| l.strip_prefix("summary: "))
        .unwrap_or_else(|| panic!("the {name} server printed no summary: {lines:?}"));
    let counted = summary
        .split_once("stopped by signal; ")
        .and_then(|(_, rest)| rest.split_once(" connections (0 rejected, 0 shed, 0 timed out)"))
        .and_then(|(n, _)| n.parse::<u64>().ok())
        .unwrap_or_else(|| panic!("the {name} server's summary: {summary}"));
    assert!(
        (opened - resets..=opened).contains(&counted),
        "the {name} server counted {counted} connections of {opened} ({resets} reset): {summary}"
    );
    assert!(
        summary.contains(", 0 left with pending output"),
        "the {name} server: {summary}"
    );
    summary.to_owned()
}
