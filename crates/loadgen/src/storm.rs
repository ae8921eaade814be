//! Connect storm: `concurrency` slots, each running connect, one line, its reply, close, over
//! and over. Connects are non-blocking, so the slots overlap.

use crate::engine::{
    self, Clock, DRAIN_TIMEOUT, Mismatch, Progress, ReadEnd, Tally, flush, nanos, read_available,
};
use crate::payload::Payload;
use crate::procstat::Monitor;
use crate::{Error, Report, Storm, Target, Workload};
use poller::{Events, Poller, Stream, Token};
use rustix::io::Errno;
use rustix::net::{self, SocketFlags};
use std::io;
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// Read buffer shared by all slots: a reply is one line.
const READ_BUFFER: usize = 64 * 1024;

/// How soon a slot whose connect failed at once is tried again, so a refusing server makes
/// the loop count resets at a bounded pace instead of spinning.
const RETRY: Duration = Duration::from_millis(1);

/// Runs longer than this print progress lines.
const LONG_RUN: Duration = Duration::from_secs(3);

#[derive(Debug)]
struct Slot {
    /// `None` while the slot waits to be started again.
    stream: Option<Stream>,
    /// Goes up with each connection, and travels in the token: an event for an earlier
    /// connection of the slot is recognised and ignored.
    generation: u32,
    started: u64,
    out: Vec<u8>,
    out_pos: usize,
    expect: Vec<u8>,
    expect_pos: usize,
}

impl Slot {
    fn token(&self, index: usize) -> Token {
        Token(u64::from(self.generation) << 32 | index as u64)
    }

    fn complete(&self) -> bool {
        self.expect_pos == self.expect.len()
    }
}

/// Everything one connection attempt needs.
struct Starter<'a> {
    addr: SocketAddr,
    congestion: Option<&'a str>,
    poller: &'a Poller,
    payload: &'a Payload,
    next_conn: u64,
}

impl Starter<'_> {
    /// Starts a new connection in `slot`: a non-blocking connect and, since a loopback
    /// handshake has usually finished by the time `connect` returns, the line at once (a send
    /// on a socket still connecting just says `WouldBlock`, and the writable edge comes later).
    fn start(&mut self, index: usize, slot: &mut Slot, now: u64) -> io::Result<()> {
        let conn = self.next_conn;
        self.next_conn += 1;
        slot.generation = slot.generation.wrapping_add(1);
        slot.out_pos = 0;
        self.payload.write(conn, 0, false, &mut slot.out);
        slot.expect_pos = 0;
        self.payload.write(conn, 0, true, &mut slot.expect);

        let socket = engine::socket(self.addr, self.congestion, SocketFlags::NONBLOCK)?;
        match net::connect(&socket, &self.addr) {
            Ok(()) | Err(Errno::INPROGRESS) => {}
            Err(e) => return Err(e.into()),
        }
        let stream = Stream::from(TcpStream::from(socket));
        self.poller
            .add(&stream, slot.token(index), engine::interest())?;
        slot.started = now;
        flush(&stream, &slot.out, &mut slot.out_pos)?;
        slot.stream = Some(stream);
        Ok(())
    }
}

pub(crate) fn run(target: &Target, spec: &Storm) -> Result<Report, Error> {
    let payload = Payload::new(spec.size);
    let poller = Poller::new()?;
    let mut starter = Starter {
        addr: target.addr,
        congestion: target.congestion.as_deref(),
        poller: &poller,
        payload: &payload,
        next_conn: 0,
    };
    let mut slots: Vec<Slot> = (0..spec.concurrency)
        .map(|_| Slot {
            stream: None,
            generation: 0,
            started: 0,
            out: vec![0; spec.size],
            out_pos: 0,
            expect: vec![0; spec.size],
            expect_pos: 0,
        })
        .collect();
    let mut events = Events::with_capacity(1024);
    let mut buf = vec![0u8; READ_BUFFER];
    let mut tally = Tally::new();
    let monitor = target
        .server_pid
        .map(Monitor::start)
        .transpose()
        .map_err(Error::Proc)?;
    let clock = Clock::new();
    let until = nanos(spec.duration);
    let mut progress = Progress::new(target.progress && spec.duration > LONG_RUN);

    // A server that cannot take the first connections is not there at all.
    for (index, slot) in slots.iter_mut().enumerate() {
        starter
            .start(index, slot, clock.now())
            .map_err(|source| Error::Connect {
                addr: target.addr,
                source,
            })?;
    }
    // Slots to start again: kept apart so that a connect failing at once is retried on the
    // next round, not in a loop of its own.
    let mut idle: Vec<usize> = Vec::with_capacity(spec.concurrency);
    let mut open = spec.concurrency;
    let mut drain_until = None;
    let mut server = None;

    loop {
        let now = clock.now();
        if drain_until.is_none() && now >= until {
            drain_until = Some(now.saturating_add(nanos(DRAIN_TIMEOUT)));
            server = Monitor::usage(monitor.as_ref())?;
            idle.clear();
        }
        if drain_until.is_none() && !idle.is_empty() {
            // Rare (connects that fail at once), so the list may be rebuilt.
            for index in std::mem::take(&mut idle) {
                match starter.start(index, &mut slots[index], now) {
                    Ok(()) => open += 1,
                    Err(_) => {
                        tally.resets += 1;
                        idle.push(index);
                    }
                }
            }
        }
        if open == 0 && drain_until.is_some() {
            break;
        }
        if let Some(deadline) = drain_until
            && now >= deadline
        {
            for slot in &mut slots {
                if slot.stream.take().is_some() {
                    tally.short += 1;
                }
            }
            break;
        }
        progress.tick(now, "storm", &tally);

        let mut next = drain_until
            .unwrap_or(until)
            .min(progress.due().unwrap_or(u64::MAX));
        if !idle.is_empty() {
            next = next.min(now.saturating_add(nanos(RETRY)));
        }
        poller.wait(
            &mut events,
            Some(Duration::from_nanos(next.saturating_sub(now))),
        )?;

        for event in events.iter() {
            let token = event.token().0;
            let index = (token & u64::from(u32::MAX)) as usize;
            let Some(slot) = slots.get_mut(index) else {
                continue;
            };
            if token >> 32 != u64::from(slot.generation) {
                continue;
            }
            let Some(stream) = slot.stream.as_ref() else {
                continue;
            };
            let mut outcome = None;
            // A refused or reset connect shows up as a failed send.
            if (event.is_writable() || event.is_error())
                && slot.out_pos < slot.out.len()
                && flush(stream, &slot.out, &mut slot.out_pos).is_err()
            {
                outcome = Some(Outcome::Reset);
            }
            let closing = event.is_read_closed() || event.is_hangup() || event.is_error();
            if outcome.is_none() && (event.is_readable() || closing) {
                let (expect, expect_pos) = (&slot.expect, &mut slot.expect_pos);
                let end = read_available(stream, &mut buf, closing, |data| {
                    check(expect, expect_pos, data)
                });
                outcome = match end {
                    ReadEnd::Drained if slot.complete() => Some(Outcome::Done),
                    ReadEnd::Drained => None,
                    ReadEnd::Eof if slot.complete() => Some(Outcome::Done),
                    ReadEnd::Eof => Some(Outcome::Short),
                    ReadEnd::Failed => Some(Outcome::Reset),
                    ReadEnd::Mismatch => Some(Outcome::Mismatch),
                };
            }
            let Some(outcome) = outcome else {
                continue;
            };
            let now = clock.now();
            match outcome {
                Outcome::Done => {
                    if now < until {
                        tally.messages += 1;
                        tally.bytes += spec.size as u64;
                        tally.latency.saturating_record(now - slot.started);
                    }
                }
                Outcome::Reset => tally.resets += 1,
                Outcome::Short => tally.short += 1,
                Outcome::Mismatch => tally.mismatches += 1,
            }
            // Closing the socket takes it out of the poller.
            slot.stream = None;
            open -= 1;
            if drain_until.is_none() && now < until {
                match starter.start(index, slot, now) {
                    Ok(()) => open += 1,
                    Err(_) => {
                        tally.resets += 1;
                        slot.stream = None;
                        idle.push(index);
                    }
                }
            }
        }
    }

    let elapsed = Duration::from_nanos(clock.now().min(until));
    if server.is_none() {
        server = Monitor::usage(monitor.as_ref())?;
    }
    Ok(tally.into_report(Workload::Storm(spec.clone()), elapsed, server))
}

/// How a connection of the storm ended.
#[derive(Clone, Copy, Debug)]
enum Outcome {
    Done,
    Reset,
    Short,
    Mismatch,
}

/// Checks one piece of a reply against `expect[*pos..]`; anything past its end is a mismatch
/// too.
fn check(expect: &[u8], pos: &mut usize, data: &[u8]) -> Result<(), Mismatch> {
    let owed = &expect[*pos..];
    if data.len() > owed.len() || data != &owed[..data.len()] {
        return Err(Mismatch);
    }
    *pos += data.len();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reply_in_pieces_is_checked_and_nothing_past_it_is_taken() {
        let expect = b"olleh\n";
        let mut pos = 0;
        check(expect, &mut pos, b"ol").unwrap();
        check(expect, &mut pos, b"").unwrap();
        check(expect, &mut pos, b"leh").unwrap();
        assert_eq!(check(expect, &mut pos, b"\nx"), Err(Mismatch));
        check(expect, &mut pos, b"\n").unwrap();
        assert_eq!(pos, expect.len());
        assert_eq!(check(expect, &mut pos, b"x"), Err(Mismatch));
        let mut pos = 0;
        assert_eq!(check(expect, &mut pos, b"hello\n"), Err(Mismatch));
    }
}
