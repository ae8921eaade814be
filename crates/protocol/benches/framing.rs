//! Line framing plus reversal on 4 KiB chunks of 100-byte lines, against a plain `memchr` +
//! `reverse` loop measured in the same run.
//!
//! The input is what a client sending 100-byte lines looks like to the server: a stream of
//! 2048 lines (99 body bytes and `\n`, or 98 and `\r\n`, printable bytes from a fixed
//! pseudo-random sequence), cut into 4096-byte chunks as the reads land in ring entries. 4096
//! is not a multiple of 100, so 48 of the 49 chunk boundaries fall inside a line, and that
//! line's start has to be carried over to the next chunk. (No boundary falls between a `\r` and
//! its `\n`, as both sizes are even; every row handles that case all the same.) One iteration
//! is one pass over the whole stream (204 800 bytes, so it stays in L2), reversing every line
//! body in place; criterion's `thrpt` is input bytes per second (GB/s, decimal).
//!
//! Every row does the same work, with the same per-connection state (a carry buffer reserved
//! for the longest line), and writes nothing out: replying is the server's business, not the
//! framing's. The rows:
//!
//! - `memchr-reverse`, the baseline: the loop one would write by hand with no framer. `memchr`
//!   for each `\n`, `<[u8]>::reverse` on the body (less a `\r` before the `\n`), the start of an
//!   unfinished line copied into the carry, and the carried line finished by the next chunk's
//!   first line (carried part and chunk part reversed separately, as the server must). It
//!   applies no length limit and does not look for `exit`.
//! - `line-framer`: [`LineFramer::decode`] until `None` and [`reverse`], the usage loop of the
//!   crate docs, with the default 64 KiB line limit. The `exit` flag of every line is counted,
//!   so the framer's `exit` check cannot be optimised away.
//! - `decode-lines`: [`LineFramer::decode_lines`], one call per chunk with a closure that
//!   reverses each line, what the server uses. Same limit and `exit` counting.
//! - `reverse-lines`: the chunk's first line finished by hand as in the baseline, then
//!   [`reverse_lines`] on the rest of the chunk.
//!
//! Each pass works in place, so the next one reverses the bodies back: every pass does the same
//! work. Before anything is timed, `check` runs one pass of every row on a fresh copy of each
//! input, collecting the reply bytes (each line's reversed body and its terminator, in stream
//! order), and asserts that they are the same for all rows and equal to a reference built line
//! by line.
//!
//! After the criterion groups, the rows run again in interleaved rounds, and each row's median
//! rate is printed with the median over rounds of its ratio to the baseline of the same round:
//! on this shared two-vCPU virtual machine the speed of a core changes from one second to the
//! next (a neighbour's job, the host's placement), which can slow down one criterion row and
//! not the next, while the rows of one short round see the same machine.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use protocol::{DEFAULT_MAX_LINE, LineFramer, LinesEnd, reverse, reverse_lines};
use std::ops::ControlFlow;

/// Bytes per line, terminator included.
const LINE: usize = 100;

/// Bytes per chunk: one read into one ring entry (`--buffer-size`, 4096 by default).
const CHUNK: usize = 4096;

/// Bytes per pass. 102 400 is the least common multiple of [`LINE`] and [`CHUNK`], so the stream
/// is 50 full chunks and 2048 whole lines: every pass starts and ends at a line start, with an
/// empty carry, and the next pass sees the same boundaries.
const STREAM: usize = 2 * 102_400;

/// A stream of [`STREAM`] bytes of [`LINE`]-byte lines ended by `terminator`.
///
/// The bodies are printable ASCII from an xorshift generator: no `\r` or `\n` inside a line, and
/// no line that reads the same reversed (`check` asserts it), so a body left unreversed, or
/// reversed twice, shows in the check.
fn stream(terminator: &[u8]) -> Vec<u8> {
    let mut state: u32 = 0x9E37_79B9;
    let mut bytes = Vec::with_capacity(STREAM);
    while bytes.len() < STREAM {
        for _ in 0..LINE - terminator.len() {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            // `!` to `~`: 94 printable bytes.
            bytes.push(b'!' + (state % 94) as u8);
        }
        bytes.extend_from_slice(terminator);
    }
    assert_eq!(bytes.len(), STREAM, "STREAM is a multiple of LINE");
    bytes
}

/// What the server keeps per connection between two reads.
struct Conn {
    framer: LineFramer,
    /// The start of an unfinished line, reserved once for the longest line the framer allows
    /// (and its `\r`), so no pass allocates.
    carry: Vec<u8>,
}

impl Conn {
    fn new() -> Self {
        Self {
            framer: LineFramer::new(DEFAULT_MAX_LINE),
            carry: Vec::with_capacity(DEFAULT_MAX_LINE + 1),
        }
    }
}

/// The ways of framing and reversing a stream that are compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Row {
    MemchrReverse,
    LineFramer,
    DecodeLines,
    ReverseLines,
}

impl Row {
    const ALL: [Self; 4] = [
        Self::MemchrReverse,
        Self::LineFramer,
        Self::DecodeLines,
        Self::ReverseLines,
    ];

    fn name(self) -> &'static str {
        match self {
            Self::MemchrReverse => "memchr-reverse",
            Self::LineFramer => "line-framer",
            Self::DecodeLines => "decode-lines",
            Self::ReverseLines => "reverse-lines",
        }
    }

    /// One pass over `stream`, chunk by chunk, handing every piece of every reply to `reply`
    /// in stream order; returns the number of `exit` lines seen (always 0 here, but counting
    /// them keeps the framer's check alive).
    ///
    /// The dispatch costs one branch per pass of 50 chunks; each arm is compiled with `reply`
    /// inlined, so in the timed runs, where it does nothing, it costs nothing.
    #[inline(always)]
    fn pass(self, conn: &mut Conn, stream: &mut [u8], reply: &mut impl FnMut(&[u8])) -> usize {
        match self {
            Self::MemchrReverse => {
                for chunk in stream.chunks_mut(CHUNK) {
                    let start = finish_carried_line(&mut conn.carry, chunk, reply);
                    let whole = start + memchr_reverse(&mut chunk[start..], reply);
                    conn.carry.extend_from_slice(&chunk[whole..]);
                }
                0
            }
            Self::LineFramer => framer_pass(conn, stream, reply),
            Self::DecodeLines => decode_lines_pass(conn, stream, reply),
            Self::ReverseLines => {
                for chunk in stream.chunks_mut(CHUNK) {
                    let start = finish_carried_line(&mut conn.carry, chunk, reply);
                    let whole = start + reverse_lines(&mut chunk[start..]);
                    reply(&chunk[start..whole]);
                    conn.carry.extend_from_slice(&chunk[whole..]);
                }
                0
            }
        }
    }
}

/// Finishes the line begun in earlier chunks (held in `carry`) with the first line of `chunk`,
/// by hand, and returns where the rest of `chunk` starts: after that first line, or at the end
/// of the chunk when no line ends in it (the whole chunk is then carried).
#[inline(always)]
fn finish_carried_line(
    carry: &mut Vec<u8>,
    chunk: &mut [u8],
    reply: &mut impl FnMut(&[u8]),
) -> usize {
    let Some(newline) = memchr::memchr(b'\n', chunk) else {
        carry.extend_from_slice(chunk);
        return chunk.len();
    };
    // A `\r` before the `\n` is the terminator's, even when it was the last carried byte.
    let (body_end, carried) = if newline > 0 && chunk[newline - 1] == b'\r' {
        (newline - 1, carry.len())
    } else if newline == 0 && carry.last() == Some(&b'\r') {
        (0, carry.len() - 1)
    } else {
        (newline, carry.len())
    };
    chunk[..body_end].reverse();
    carry[..carried].reverse();
    reply(&chunk[..body_end]);
    reply(&carry[..carried]);
    reply(&chunk[body_end..=newline]);
    carry.clear();
    newline + 1
}

/// The baseline's inner loop: reverses every whole line of `chunk` (which starts at a line
/// start) with `memchr` and `<[u8]>::reverse`, and returns the length of those whole lines.
#[inline(always)]
fn memchr_reverse(chunk: &mut [u8], reply: &mut impl FnMut(&[u8])) -> usize {
    let mut start = 0;
    while let Some(newline) = memchr::memchr(b'\n', &chunk[start..]) {
        let end = start + newline;
        let body_end = if end > start && chunk[end - 1] == b'\r' {
            end - 1
        } else {
            end
        };
        chunk[start..body_end].reverse();
        reply(&chunk[start..=end]);
        start = end + 1;
    }
    start
}

/// One pass with [`LineFramer`], written as the crate docs show it; the `exit` flag is
/// counted instead of stopping the pass.
#[inline(always)]
fn framer_pass(conn: &mut Conn, stream: &mut [u8], reply: &mut impl FnMut(&[u8])) -> usize {
    let Conn { framer, carry } = conn;
    let mut exits = 0;
    for chunk in stream.chunks_mut(CHUNK) {
        let mut pos = 0;
        while let Some(line) = framer.decode(&chunk[pos..]).expect("lines are 99 bytes") {
            exits += usize::from(line.exit);
            let body = pos + line.body.start..pos + line.body.end;
            reverse(&mut chunk[body.clone()]);
            reverse(&mut carry[..line.carried]);
            reply(&chunk[body]);
            reply(&carry[..line.carried]);
            reply(line.terminator.as_bytes());
            carry.clear();
            pos += line.end;
        }
        carry.extend_from_slice(&chunk[pos..]);
    }
    exits
}

/// One pass with [`LineFramer::decode_lines`]: one call per chunk, the line loop compiled
/// here with the closure. The `exit` flag is counted instead of stopping the pass.
#[inline(always)]
fn decode_lines_pass(conn: &mut Conn, stream: &mut [u8], reply: &mut impl FnMut(&[u8])) -> usize {
    let Conn { framer, carry } = conn;
    let mut exits = 0;
    for chunk in stream.chunks_mut(CHUNK) {
        let end = framer.decode_lines(chunk, |chunk, line| {
            exits += usize::from(line.exit);
            reverse(&mut chunk[line.body.clone()]);
            reply(&chunk[line.body]);
            // Only a chunk's first line can have a carried start (and a carried `\r`).
            if !carry.is_empty() {
                reverse(&mut carry[..line.carried]);
                reply(&carry[..line.carried]);
                carry.clear();
            }
            reply(line.terminator.as_bytes());
            ControlFlow::Continue(())
        });
        match end.expect("lines are 99 bytes") {
            LinesEnd::Kept { from } => carry.extend_from_slice(&chunk[from..]),
            LinesEnd::Stopped { .. } => unreachable!("the closure never stops"),
        }
    }
    exits
}

/// The two inputs: `\n` and `\r\n` terminators.
fn inputs() -> [(&'static str, Vec<u8>); 2] {
    [
        ("framing-lf", stream(b"\n")),
        ("framing-crlf", stream(b"\r\n")),
    ]
}

/// Asserts, before anything is timed, that one pass of every row gives the same reply bytes as
/// a reference that reverses each line on its own, and leaves the connection at a line start.
fn check(name: &str, input: &[u8]) {
    let mut expected = Vec::with_capacity(STREAM);
    for line in input.split_inclusive(|&byte| byte == b'\n') {
        let body_len = line.len() - if line.ends_with(b"\r\n") { 2 } else { 1 };
        let body = &line[..body_len];
        assert!(
            !body.iter().eq(body.iter().rev()),
            "{name}: a palindrome would hide a missed reversal"
        );
        expected.extend(body.iter().rev());
        expected.extend_from_slice(&line[body_len..]);
    }
    for row in Row::ALL {
        let (mut conn, mut stream, mut replies) = (Conn::new(), input.to_vec(), Vec::new());
        let exits = row.pass(&mut conn, &mut stream, &mut |piece: &[u8]| {
            replies.extend_from_slice(piece);
        });
        assert!(
            replies == expected,
            "{name}/{}: replies differ from the reference",
            row.name()
        );
        assert_eq!(exits, 0, "{name}/{}: no line is `exit`", row.name());
        assert!(conn.carry.is_empty(), "{name}/{}: carry left", row.name());
        assert_eq!(conn.framer.finish(), Ok(None), "{name}/{}", row.name());
    }
}

/// Times `passes` passes of `row` over `stream`, replying nowhere.
fn run(row: Row, conn: &mut Conn, stream: &mut [u8], passes: u64) -> Duration {
    let start = Instant::now();
    for _ in 0..passes {
        black_box(row.pass(conn, black_box(&mut *stream), &mut |_| {}));
    }
    start.elapsed()
}

/// Criterion on a noisy two-vCPU machine: 30 samples of 3 s after 1 s of warm-up, so the six
/// rows take about 30 s, plus whatever the command line says.
fn criterion() -> Criterion {
    Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args()
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Runs every row for `passes` passes, round after round, and prints each row's median rate
/// and its median ratio to the baseline of the same round.
fn interleaved(name: &str, input: &[u8], passes: u64, rounds: usize) {
    let mut rates = vec![Vec::with_capacity(rounds); Row::ALL.len()];
    let mut streams: Vec<Vec<u8>> = Row::ALL.iter().map(|_| input.to_vec()).collect();
    let mut conns: Vec<Conn> = Row::ALL.iter().map(|_| Conn::new()).collect();
    for _ in 0..rounds {
        for (k, row) in Row::ALL.into_iter().enumerate() {
            let elapsed = run(row, &mut conns[k], &mut streams[k], passes);
            rates[k].push((passes * STREAM as u64) as f64 / elapsed.as_secs_f64() / 1e9);
        }
    }
    for (k, row) in Row::ALL.into_iter().enumerate() {
        let mut ratios: Vec<f64> = (0..rounds).map(|r| rates[k][r] / rates[0][r]).collect();
        let mut own = rates[k].clone();
        let (min, max) = (
            own.iter().copied().fold(f64::INFINITY, f64::min),
            own.iter().copied().fold(0.0, f64::max),
        );
        let label = format!("{name}/{}", row.name());
        println!(
            "interleaved {label:<27} median {:>5.2} GB/s  min {min:>5.2}  max {max:>5.2}  \
             ratio to memchr-reverse {:.3}  ({rounds} rounds of {passes} passes)",
            median(&mut own),
            median(&mut ratios),
        );
    }
}

fn main() {
    let inputs = inputs();
    for (name, input) in &inputs {
        check(name, input);
    }

    let mut c = criterion();
    for (name, input) in &inputs {
        let mut group = c.benchmark_group(*name);
        group.throughput(Throughput::BytesDecimal(STREAM as u64));
        for row in Row::ALL {
            let (mut conn, mut stream) = (Conn::new(), input.clone());
            group.bench_function(row.name(), |b| {
                b.iter_custom(|passes| run(row, &mut conn, &mut stream, passes));
            });
        }
        group.finish();
    }
    c.final_summary();

    // `cargo bench` passes `--bench`; under `cargo test --benches` run a token amount. A round
    // of 200 passes is 41 MB, 6 to 15 ms per row, so the 41 rounds take about 3 s in all.
    let full = std::env::args().any(|arg| arg == "--bench");
    let (passes, rounds) = if full { (200, 41) } else { (1, 1) };
    for (name, input) in &inputs {
        interleaved(name, input, passes, rounds);
    }
}
