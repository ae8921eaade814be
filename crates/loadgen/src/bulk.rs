//! Bulk: every connection streams its lines as fast as the socket takes them while reading the
//! replies, then half-closes; the server answers the rest and closes.
//!
//! The measured time ends when the last connection has all its replies verified, not at the
//! server's closes: how soon a server notices a half-close is no part of its throughput. The
//! closes are still owed, within [`CLOSE_GRACE`] of that moment.
//!
//! Neither direction is ever held whole: lines are generated a chunk at a time into one
//! reusable buffer per connection, and replies are checked as they arrive against the expected
//! reversal, generated a chunk at a time into another.

use crate::engine::{
    self, Clock, Mismatch, Progress, ReadEnd, Tally, flush, nanos, read_available,
};
use crate::payload::{FILLER_PERIOD, Payload};
use crate::procstat::Monitor;
use crate::{Bulk, Error, Report, Target, Workload};
use poller::{Events, Poller, Stream, Token};
use std::collections::VecDeque;
use std::io;
use std::time::Duration;

/// Bytes generated per chunk, each way, per connection (whole lines, at least one).
pub(crate) const CHUNK: usize = 64 * 1024;

/// Read buffer shared by all connections.
const READ_BUFFER: usize = 256 * 1024;

/// A run in which no byte moves either way for this long has a stuck server: what is missing
/// then is counted as short.
const STALL_TIMEOUT: Duration = Duration::from_secs(10);

/// How long after the last reply is verified the server may take to close the connections it
/// has answered in full. A server that never closes after the client's half-close would leave
/// its clients hanging; one that closes promptly does so in well under a millisecond.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// Bulk runs print progress lines from this point on.
const PROGRESS_FROM: Duration = Duration::from_secs(3);

/// One chunk of lines, or of their replies: `buf[..len]` generated, `buf[..pos]` done with.
/// The buffer is made once and overwritten chunk after chunk.
#[derive(Debug)]
struct Chunk {
    buf: Box<[u8]>,
    len: usize,
    pos: usize,
    /// The whole buffer holds a full chunk of lines whose filler every later full chunk
    /// shares, so the next chunk only needs its headers rewritten.
    template: bool,
}

impl Chunk {
    fn new(bytes: usize) -> Self {
        Self {
            buf: vec![0; bytes].into_boxed_slice(),
            len: 0,
            pos: 0,
            template: false,
        }
    }

    fn is_done(&self) -> bool {
        self.pos == self.len
    }
}

/// What one connection sends: enough to generate any chunk of it, either way.
#[derive(Clone, Copy, Debug)]
struct Lines {
    conn: u64,
    line: usize,
    /// Lines to send in all.
    lines: u64,
    /// Lines per chunk.
    chunk_lines: u64,
}

impl Lines {
    /// Writes the chunk of lines from line `first` on (or of their replies) over `chunk` and
    /// returns how many lines it holds.
    fn fill(self, payload: &Payload, first: u64, reversed: bool, chunk: &mut Chunk) -> u64 {
        let count = self.chunk_lines.min(self.lines - first);
        let lines = chunk.buf.chunks_exact_mut(self.line).take(count as usize);
        if chunk.template {
            // Chunks start at multiples of the filler period: only the headers differ.
            for (msg, dst) in (first..).zip(lines) {
                Payload::write_header(self.conn, msg, reversed, dst);
            }
        } else {
            for (msg, dst) in (first..).zip(lines) {
                payload.write(self.conn, msg, reversed, dst);
            }
            chunk.template =
                count == self.chunk_lines && self.chunk_lines.is_multiple_of(FILLER_PERIOD);
        }
        chunk.len = count as usize * self.line;
        chunk.pos = 0;
        count
    }
}

/// One connection's two streams.
#[derive(Debug)]
struct Flow {
    lines: Lines,
    /// Lines generated into `out` so far.
    generated: u64,
    out: Chunk,
    write_closed: bool,
    /// Lines whose replies were generated into `expect` so far.
    expected: u64,
    expect: Chunk,
    /// When each chunk sent and not yet answered was wholly taken by the kernel.
    chunk_sent_at: VecDeque<u64>,
}

impl Flow {
    fn new(conn: u64, spec: &Bulk) -> Self {
        // A multiple of the filler period when there is room for one, so that chunks after the
        // first are made by rewriting headers (lines over 1 KiB cost their copy anyway).
        let mut chunk_lines = (CHUNK / spec.line).max(1) as u64;
        if chunk_lines >= FILLER_PERIOD {
            chunk_lines -= chunk_lines % FILLER_PERIOD;
        }
        let chunk_lines = chunk_lines as usize;
        let chunk_bytes = chunk_lines * spec.line;
        Self {
            lines: Lines {
                conn,
                line: spec.line,
                lines: spec.lines(),
                chunk_lines: chunk_lines as u64,
            },
            generated: 0,
            out: Chunk::new(chunk_bytes),
            write_closed: false,
            expected: 0,
            expect: Chunk::new(chunk_bytes),
            // Chunks in flight are bounded by the socket buffers and the server's pending
            // output, a few MiB: a few dozen chunks.
            chunk_sent_at: VecDeque::with_capacity(128),
        }
    }

    /// Whether every reply byte came and matched.
    fn complete(&self) -> bool {
        self.expected == self.lines.lines && self.expect.is_done()
    }

    /// Sends until the socket is full or everything is sent; then half-closes.
    fn pump(&mut self, stream: &Stream, payload: &Payload, clock: &Clock) -> io::Result<()> {
        loop {
            if self.out.is_done() {
                if self.generated == self.lines.lines {
                    if !self.write_closed {
                        stream.shutdown_write()?;
                        self.write_closed = true;
                    }
                    return Ok(());
                }
                self.generated += self
                    .lines
                    .fill(payload, self.generated, false, &mut self.out);
            }
            flush(stream, &self.out.buf[..self.out.len], &mut self.out.pos)?;
            if !self.out.is_done() {
                return Ok(());
            }
            self.chunk_sent_at.push_back(clock.now());
        }
    }

    /// Checks received bytes against the replies owed, however they are split.
    fn receive(
        &mut self,
        payload: &Payload,
        mut data: &[u8],
        now: u64,
        tally: &mut Tally,
    ) -> Result<(), Mismatch> {
        while !data.is_empty() {
            if self.expect.is_done() {
                if self.expected == self.lines.lines {
                    // Bytes nobody asked for.
                    return Err(Mismatch);
                }
                self.expected += self
                    .lines
                    .fill(payload, self.expected, true, &mut self.expect);
            }
            let expect = &mut self.expect;
            let take = data.len().min(expect.len - expect.pos);
            if data[..take] != expect.buf[expect.pos..expect.pos + take] {
                return Err(Mismatch);
            }
            expect.pos += take;
            data = &data[take..];
            tally.bytes += take as u64;
            if expect.is_done() {
                // A chunk's last reply: its latency (from the chunk's last byte leaving)
                // stands for every line in it.
                let lines = (expect.len / self.lines.line) as u64;
                tally.messages += lines;
                if let Some(sent_at) = self.chunk_sent_at.pop_front() {
                    tally
                        .latency
                        .saturating_record_n(now.saturating_sub(sent_at), lines);
                }
            }
        }
        Ok(())
    }
}

#[derive(Debug)]
struct Conn {
    stream: Option<Stream>,
    flow: Flow,
    /// Done with, as far as the measured time goes: every reply verified, or closed without.
    settled: bool,
}

/// Connections not yet settled, and when the last one was.
#[derive(Debug)]
struct Settling {
    unsettled: usize,
    at: Option<u64>,
}

impl Settling {
    /// Marks `conn` settled if its replies are all verified or it is closed; the last one to
    /// settle ends the measured time.
    fn check(&mut self, conn: &mut Conn, now: u64) {
        if conn.settled || (conn.stream.is_some() && !conn.flow.complete()) {
            return;
        }
        conn.settled = true;
        self.unsettled -= 1;
        if self.unsettled == 0 {
            self.at = Some(now);
        }
    }
}

pub(crate) fn run(target: &Target, spec: &Bulk) -> Result<Report, Error> {
    let payload = Payload::new(spec.line);
    let poller = Poller::new()?;
    let mut conns = Vec::with_capacity(spec.connections);
    for conn in 0..spec.connections {
        let stream = engine::connect(target.addr, target.congestion.as_deref())?;
        poller.add(&stream, Token(conn as u64), engine::interest())?;
        conns.push(Conn {
            stream: Some(stream),
            flow: Flow::new(conn as u64, spec),
            settled: false,
        });
    }
    let mut open = conns.len();
    let mut settling = Settling {
        unsettled: conns.len(),
        at: None,
    };
    let mut events = Events::with_capacity(1024);
    let mut buf = vec![0u8; READ_BUFFER];
    let mut tally = Tally::new();
    let monitor = target
        .server_pid
        .map(Monitor::start)
        .transpose()
        .map_err(Error::Proc)?;
    let clock = Clock::new();
    let mut progress = Progress::new(target.progress);
    let progress_from = nanos(PROGRESS_FROM);

    for conn in &mut conns {
        pump(conn, &payload, &clock, &mut tally, &mut open);
        settling.check(conn, clock.now());
    }
    let mut last_progress = 0;
    let mut moved = 0;

    while open > 0 {
        let now = clock.now();
        let moved_now = tally.bytes + conns.iter().map(|c| c.flow.generated).sum::<u64>();
        if moved_now != moved {
            moved = moved_now;
            last_progress = now;
        }
        let stall_at = last_progress.saturating_add(nanos(STALL_TIMEOUT));
        let grace_at = settling
            .at
            .map_or(u64::MAX, |at| at.saturating_add(nanos(CLOSE_GRACE)));
        if now >= grace_at {
            // Every reply came, but not the end of the stream: the server's close is owed too.
            for conn in &mut conns {
                if conn.stream.is_some() {
                    tally.short += 1;
                }
                close(conn, &mut open);
            }
            break;
        }
        if now >= stall_at {
            for conn in &mut conns {
                if conn.stream.is_some() && !conn.flow.complete() {
                    tally.short += 1;
                }
                close(conn, &mut open);
            }
            break;
        }
        if now >= progress_from {
            progress.tick(now, "streaming", &tally);
        }
        let next = stall_at
            .min(grace_at)
            .min(progress.due().unwrap_or(u64::MAX).max(progress_from));
        poller.wait(
            &mut events,
            Some(Duration::from_nanos(next.saturating_sub(now))),
        )?;

        for event in events.iter() {
            let Some(conn) = usize::try_from(event.token().0)
                .ok()
                .and_then(|index| conns.get_mut(index))
            else {
                continue;
            };
            let closing = event.is_read_closed() || event.is_hangup() || event.is_error();
            if let (Some(stream), true) = (&conn.stream, event.is_readable() || closing) {
                let flow = &mut conn.flow;
                let end = read_available(stream, &mut buf, closing, |data| {
                    flow.receive(&payload, data, clock.now(), &mut tally)
                });
                match end {
                    ReadEnd::Drained => {}
                    ReadEnd::Eof => {
                        if !conn.flow.complete() {
                            tally.short += 1;
                        }
                        close(conn, &mut open);
                    }
                    ReadEnd::Failed => {
                        tally.resets += 1;
                        close(conn, &mut open);
                    }
                    ReadEnd::Mismatch => {
                        tally.mismatches += 1;
                        close(conn, &mut open);
                    }
                }
            }
            if event.is_writable() || event.is_error() {
                pump(conn, &payload, &clock, &mut tally, &mut open);
            }
            settling.check(conn, clock.now());
        }
    }

    // Without every connection settled (a stall), the run ends now.
    let elapsed = Duration::from_nanos(settling.at.unwrap_or_else(|| clock.now()));
    let server = Monitor::usage(monitor.as_ref())?;
    Ok(tally.into_report(Workload::Bulk(spec.clone()), elapsed, server))
}

fn pump(conn: &mut Conn, payload: &Payload, clock: &Clock, tally: &mut Tally, open: &mut usize) {
    let Some(stream) = conn.stream.as_ref() else {
        return;
    };
    if conn.flow.pump(stream, payload, clock).is_err() {
        tally.resets += 1;
        close(conn, open);
    }
}

fn close(conn: &mut Conn, open: &mut usize) {
    if conn.stream.take().is_some() {
        *open -= 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(line: usize, bytes: u64) -> Bulk {
        Bulk {
            connections: 1,
            bytes_per_connection: bytes,
            line,
        }
    }

    /// The whole reply stream of connection `conn`, made the slow, obvious way.
    fn replies(payload: &Payload, conn: u64, spec: &Bulk) -> Vec<u8> {
        let mut stream = Vec::new();
        for msg in 0..spec.lines() {
            payload.line(conn, msg, spec.line, true, &mut stream);
        }
        stream
    }

    #[test]
    fn replies_in_any_pieces_are_verified_across_chunks() {
        let payload = Payload::new(100);
        // Lines that do not divide the chunk, several chunks, a last chunk that is short.
        let spec = spec(37, 3 * CHUNK as u64 + 1000);
        let stream = replies(&payload, 3, &spec);
        assert!(
            Flow::new(3, &spec)
                .lines
                .chunk_lines
                .is_multiple_of(FILLER_PERIOD)
        );
        for piece in [1, 7, 36, 37, 38, 4096, CHUNK - 1, CHUNK + 1, stream.len()] {
            let mut flow = Flow::new(3, &spec);
            let mut tally = Tally::new();
            for data in stream.chunks(piece) {
                flow.receive(&payload, data, 0, &mut tally).unwrap();
            }
            assert!(flow.complete(), "{piece}");
            assert_eq!(tally.messages, spec.lines(), "{piece}");
            assert_eq!(tally.bytes, stream.len() as u64, "{piece}");
        }
    }

    #[test]
    fn chunks_sent_make_the_whole_request_stream() {
        let payload = Payload::new(1500);
        for line in [2, 14, 37, 100, 1000, 1500] {
            let spec = spec(line, 5 * CHUNK as u64 + 333);
            let mut expected = Vec::new();
            for msg in 0..spec.lines() {
                payload.line(7, msg, line, false, &mut expected);
            }
            let mut flow = Flow::new(7, &spec);
            let mut sent = Vec::new();
            while flow.generated < spec.lines() {
                flow.generated += flow
                    .lines
                    .fill(&payload, flow.generated, false, &mut flow.out);
                sent.extend_from_slice(&flow.out.buf[..flow.out.len]);
            }
            assert!(sent == expected, "line {line}");
        }
    }

    #[test]
    fn a_wrong_byte_in_a_later_chunk_is_a_mismatch() {
        let payload = Payload::new(100);
        let spec = spec(100, 2 * CHUNK as u64);
        let mut stream = replies(&payload, 0, &spec);
        let at = CHUNK + 12_345;
        stream[at] = if stream[at] == b'a' { b'b' } else { b'a' };
        let mut flow = Flow::new(0, &spec);
        let mut tally = Tally::new();
        let result = stream
            .chunks(1000)
            .try_for_each(|data| flow.receive(&payload, data, 0, &mut tally));
        assert_eq!(result, Err(Mismatch));
    }

    #[test]
    fn extra_bytes_after_the_last_reply_are_a_mismatch() {
        let payload = Payload::new(100);
        let spec = spec(10, 100);
        let mut stream = replies(&payload, 0, &spec);
        stream.extend_from_slice(b"more\n");
        let mut flow = Flow::new(0, &spec);
        let mut tally = Tally::new();
        assert_eq!(
            flow.receive(&payload, &stream, 0, &mut tally),
            Err(Mismatch)
        );
    }

    #[test]
    fn bytes_round_up_to_whole_lines() {
        assert_eq!(spec(100, 1000).lines(), 10);
        assert_eq!(spec(100, 1001).lines(), 11);
        assert_eq!(spec(100, 1).lines(), 1);
    }
}
