//! Ping-pong: every connection keeps `depth` lines in flight and answers each reply with the
//! next line, batching what one read completes into one send.

use crate::engine::{
    self, Clock, DRAIN_TIMEOUT, Mismatch, Progress, ReadEnd, Tally, flush, nanos, read_available,
};
use crate::payload::Payload;
use crate::procstat::Monitor;
use crate::{Error, PingPong, Report, Target, Workload};
use poller::{Events, Poller, Stream, Token};
use std::time::Duration;

/// Read buffer shared by all connections: one read takes everything a connection has.
const READ_BUFFER: usize = 64 * 1024;

/// Runs longer than this print progress lines.
const LONG_RUN: Duration = Duration::from_secs(3);

/// One connection's side of the conversation: what it sent, what it is owed.
#[derive(Debug)]
struct Lines {
    conn: u64,
    size: usize,
    depth: usize,
    /// Lines generated (and sent or queued in `out`).
    sent: u64,
    /// Replies completed.
    done: u64,
    /// Bytes for the socket, `out[out_pos..]` not yet taken.
    out: Vec<u8>,
    out_pos: usize,
    /// The reply owed for line `done` (`size` bytes), `expect[..expect_pos]` already received.
    expect: Vec<u8>,
    expect_pos: usize,
    /// When each line in flight was sent, by line number modulo `depth`.
    sent_at: Box<[u64]>,
}

impl Lines {
    fn new(conn: u64, size: usize, depth: usize) -> Self {
        Self {
            conn,
            size,
            depth,
            sent: 0,
            done: 0,
            out: Vec::with_capacity(size * depth),
            out_pos: 0,
            expect: vec![0; size],
            expect_pos: 0,
            sent_at: vec![0; depth].into_boxed_slice(),
        }
    }

    fn owed(&self) -> u64 {
        self.sent - self.done
    }

    fn has_output(&self) -> bool {
        self.out_pos < self.out.len()
    }

    /// Queues lines until `depth` are in flight, stamped `now`.
    fn top_up(&mut self, payload: &Payload, now: u64) {
        if self.owed() >= self.depth as u64 {
            return;
        }
        // Keep only the unsent tail; a move within the buffer, never an allocation.
        self.out.drain(..self.out_pos);
        self.out_pos = 0;
        while self.owed() < self.depth as u64 {
            payload.line(self.conn, self.sent, self.size, false, &mut self.out);
            self.sent_at[(self.sent % self.depth as u64) as usize] = now;
            self.sent += 1;
        }
    }

    /// Checks received bytes against the replies owed, however they are split, and calls
    /// `complete` with the send time of each reply that ends in them.
    fn receive(
        &mut self,
        payload: &Payload,
        mut data: &[u8],
        mut complete: impl FnMut(u64),
    ) -> Result<(), Mismatch> {
        while !data.is_empty() {
            if self.expect_pos == 0 {
                if self.owed() == 0 {
                    // Bytes nobody asked for.
                    return Err(Mismatch);
                }
                payload.write(self.conn, self.done, true, &mut self.expect);
            }
            let take = data.len().min(self.size - self.expect_pos);
            if data[..take] != self.expect[self.expect_pos..self.expect_pos + take] {
                return Err(Mismatch);
            }
            self.expect_pos += take;
            data = &data[take..];
            if self.expect_pos == self.size {
                self.expect_pos = 0;
                complete(self.sent_at[(self.done % self.depth as u64) as usize]);
                self.done += 1;
            }
        }
        Ok(())
    }
}

#[derive(Debug)]
struct Conn {
    /// `None` once closed.
    stream: Option<Stream>,
    lines: Lines,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Warmup,
    Measure,
    /// No new lines; waiting for the replies owed.
    Drain,
}

pub(crate) fn run(target: &Target, spec: &PingPong) -> Result<Report, Error> {
    let payload = Payload::new(spec.size);
    let poller = Poller::new()?;
    let mut conns = Vec::with_capacity(spec.connections);
    for conn in 0..spec.connections {
        let stream = engine::connect(target.addr, target.congestion.as_deref())?;
        poller.add(&stream, Token(conn as u64), engine::interest())?;
        conns.push(Conn {
            stream: Some(stream),
            lines: Lines::new(conn as u64, spec.size, spec.depth),
        });
    }
    let mut open = conns.len();
    let mut events = Events::with_capacity(1024);
    let mut buf = vec![0u8; READ_BUFFER];
    let mut tally = Tally::new();

    let clock = Clock::new();
    let measure_from = nanos(spec.warmup);
    let measure_until = measure_from.saturating_add(nanos(spec.duration));
    let mut progress =
        Progress::new(target.progress && spec.warmup.saturating_add(spec.duration) > LONG_RUN);
    let mut phase = Phase::Warmup;
    let mut monitor = None;
    let mut server = None;
    let mut drain_until = u64::MAX;
    let mut measured_end = None;

    // First lines out, then the loop keeps each connection topped up.
    let now = clock.now();
    for conn in &mut conns {
        conn.lines.top_up(&payload, now);
        send(conn, &mut tally, &mut open);
    }

    loop {
        let now = clock.now();
        if phase == Phase::Warmup && now >= measure_from {
            phase = Phase::Measure;
            monitor = target
                .server_pid
                .map(Monitor::start)
                .transpose()
                .map_err(Error::Proc)?;
        }
        if phase == Phase::Measure && now >= measure_until {
            phase = Phase::Drain;
            measured_end = Some(measure_until);
            server = Monitor::usage(monitor.as_ref())?;
            drain_until = now.saturating_add(nanos(DRAIN_TIMEOUT));
            for conn in &mut conns {
                if conn.stream.is_some() && conn.lines.owed() == 0 {
                    close(conn, &mut open);
                }
            }
        }
        if open == 0 {
            break;
        }
        if phase == Phase::Drain && now >= drain_until {
            // Replies still owed after the wait will not come.
            for conn in &mut conns {
                if conn.stream.is_some() {
                    tally.short += 1;
                    close(conn, &mut open);
                }
            }
            break;
        }
        progress.tick(
            now,
            if phase == Phase::Warmup {
                "warm-up"
            } else {
                "measured"
            },
            &tally,
        );

        let next = match phase {
            Phase::Warmup => measure_from,
            Phase::Measure => measure_until,
            Phase::Drain => drain_until,
        }
        .min(progress.due().unwrap_or(u64::MAX));
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
            if conn.stream.is_none() {
                continue;
            }
            if (event.is_writable() || event.is_error()) && conn.lines.has_output() {
                send(conn, &mut tally, &mut open);
            }
            let closing = event.is_read_closed() || event.is_hangup() || event.is_error();
            if !(event.is_readable() || closing) {
                continue;
            }
            let Some(stream) = conn.stream.as_ref() else {
                continue;
            };
            let lines = &mut conn.lines;
            let size = spec.size as u64;
            let end = read_available(stream, &mut buf, closing, |data| {
                // One clock read per read: every reply it completes arrived together.
                let now = clock.now();
                let counted = (measure_from..measure_until).contains(&now);
                lines.receive(&payload, data, |sent_at| {
                    if counted {
                        tally.latency.saturating_record(now.saturating_sub(sent_at));
                        tally.messages += 1;
                        tally.bytes += size;
                    }
                })
            });
            match end {
                ReadEnd::Drained => {}
                ReadEnd::Eof => {
                    if conn.lines.owed() > 0 {
                        tally.short += 1;
                    } else if phase != Phase::Drain {
                        tally.resets += 1;
                    }
                    close(conn, &mut open);
                    continue;
                }
                ReadEnd::Failed => {
                    tally.resets += 1;
                    close(conn, &mut open);
                    continue;
                }
                ReadEnd::Mismatch => {
                    tally.mismatches += 1;
                    close(conn, &mut open);
                    continue;
                }
            }
            if phase == Phase::Drain {
                if conn.lines.owed() == 0 {
                    close(conn, &mut open);
                }
            } else {
                conn.lines.top_up(&payload, clock.now());
                send(conn, &mut tally, &mut open);
            }
        }
    }

    // Every connection failed before the end: the measured phase ends with the last of them.
    let end = measured_end.unwrap_or_else(|| clock.now().min(measure_until));
    if server.is_none() {
        server = Monitor::usage(monitor.as_ref())?;
    }
    Ok(tally.into_report(
        Workload::PingPong(spec.clone()),
        Duration::from_nanos(end.saturating_sub(measure_from)),
        server,
    ))
}

fn send(conn: &mut Conn, tally: &mut Tally, open: &mut usize) {
    let Some(stream) = conn.stream.as_ref() else {
        return;
    };
    let lines = &mut conn.lines;
    if flush(stream, &lines.out, &mut lines.out_pos).is_err() {
        tally.resets += 1;
        close(conn, open);
    }
}

fn close(conn: &mut Conn, open: &mut usize) {
    // Dropping the socket closes it, which also takes it out of the poller.
    if conn.stream.take().is_some() {
        *open -= 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reply stream for lines `0..count` of connection `conn`.
    fn replies(payload: &Payload, conn: u64, size: usize, count: u64) -> Vec<u8> {
        let mut stream = Vec::new();
        for msg in 0..count {
            payload.line(conn, msg, size, true, &mut stream);
        }
        stream
    }

    #[test]
    fn replies_split_anywhere_are_verified() {
        let payload = Payload::new(1024);
        let (size, depth) = (7, 3);
        let stream = replies(&payload, 5, size, depth as u64);
        // Every way of cutting the stream into three pieces.
        for a in 0..=stream.len() {
            for b in a..=stream.len() {
                let mut lines = Lines::new(5, size, depth);
                lines.top_up(&payload, 42);
                let mut completed = Vec::new();
                for piece in [&stream[..a], &stream[a..b], &stream[b..]] {
                    lines
                        .receive(&payload, piece, |sent_at| completed.push(sent_at))
                        .unwrap();
                }
                assert_eq!(completed, [42, 42, 42], "cut at {a} and {b}");
                assert_eq!(lines.owed(), 0);
            }
        }
    }

    #[test]
    fn one_byte_at_a_time_is_verified_too() {
        let payload = Payload::new(1024);
        let stream = replies(&payload, 0, 64, 4);
        let mut lines = Lines::new(0, 64, 4);
        lines.top_up(&payload, 0);
        let mut completed = 0;
        for byte in stream.chunks(1) {
            lines.receive(&payload, byte, |_| completed += 1).unwrap();
        }
        assert_eq!(completed, 4);
    }

    #[test]
    fn a_wrong_byte_anywhere_is_a_mismatch() {
        let payload = Payload::new(1024);
        let stream = replies(&payload, 1, 10, 2);
        for at in 0..stream.len() {
            let mut bad = stream.clone();
            bad[at] ^= 0x20;
            let mut lines = Lines::new(1, 10, 2);
            lines.top_up(&payload, 0);
            assert_eq!(lines.receive(&payload, &bad, |_| ()), Err(Mismatch), "{at}");
        }
    }

    #[test]
    fn bytes_beyond_the_replies_owed_are_a_mismatch() {
        let payload = Payload::new(1024);
        let mut stream = replies(&payload, 0, 10, 1);
        stream.push(b'x');
        let mut lines = Lines::new(0, 10, 1);
        lines.top_up(&payload, 0);
        assert_eq!(lines.receive(&payload, &stream, |_| ()), Err(Mismatch));
    }

    #[test]
    fn an_unreversed_echo_is_a_mismatch() {
        let payload = Payload::new(1024);
        let mut lines = Lines::new(2, 64, 1);
        lines.top_up(&payload, 0);
        let echo = lines.out.clone();
        assert_eq!(lines.receive(&payload, &echo, |_| ()), Err(Mismatch));
    }

    #[test]
    fn top_up_keeps_depth_lines_in_flight_and_keeps_the_unsent_tail() {
        let payload = Payload::new(1024);
        let mut lines = Lines::new(0, 8, 2);
        lines.top_up(&payload, 1);
        assert_eq!((lines.sent, lines.out.len()), (2, 16));
        lines.out_pos = 12; // the kernel took a line and a half
        let stream = replies(&payload, 0, 8, 1);
        lines.receive(&payload, &stream, |_| ()).unwrap();
        lines.top_up(&payload, 2);
        assert_eq!(lines.sent, 3);
        assert_eq!(lines.out_pos, 0);
        assert_eq!(lines.out.len(), 4 + 8);
        let mut third = Vec::new();
        payload.line(0, 2, 8, false, &mut third);
        assert_eq!(lines.out[4..], third[..]);
        assert_eq!(lines.sent_at[..], [2, 1]);
    }
}
