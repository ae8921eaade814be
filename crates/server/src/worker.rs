//! Thread 2, the worker: consumes the ring in batches, frames, reverses in place, and writes.
//!
//! Every reply is first written straight from the ring slot it was read into. Only when the
//! socket will not take all of it is the rest copied into the connection's pending output,
//! EPOLLOUT registered in the worker's own epoll, and every later reply for that connection
//! queued behind it, so replies are never reordered. A slot is released when its batch is
//! done, by which time its bytes are written or copied.
//!
//! The exception is a *run*: consecutive events in a batch carrying data from one connection
//! (a client streaming faster than it is answered). Their replies are copied into one staging
//! buffer and go out with a single `sendmsg` when the run ends, because on loopback each send
//! is a trip through the TCP stack, which costs far more than copying the bytes once. Ping-pong
//! never makes runs, so it keeps the straight-from-the-slot path.
//!
//! When the ring is empty the worker waits as `--wait` says; with `block` it announces the
//! sleep to the ring and sleeps in `epoll_wait` on its epoll, where an eventfd that the
//! reader's next publish writes sits beside the sockets waiting for EPOLLOUT.
//!
//! What a connection keeps between reads (the reversed start of an unfinished line or frame,
//! output its socket has not taken) lives in [pool](crate::buffers) blocks. When a
//! connection's pending output passes `--max-pending`, or the pool is used up, the worker
//! pauses reading from it through its [gate](crate::gate) and resumes it once the output has
//! drained to half that (or a quarter of the pool is free again). Every connection is on an
//! [activity](crate::activity) list ordered by its last progress; one that makes none for
//! `--idle-timeout` is closed.

use crate::activity::Activity;
use crate::buffers::{Chain, Pool};
use crate::config::{Config, WaitMode};
use crate::conn::{ConnId, own_token};
use crate::control::{Control, StopReason};
use crate::gate::{Gates, Notice, PENDING_FULL, POOL_EMPTY};
use crate::slot::{Kind, Slot};
use log::{debug, info, log_enabled, warn};
use poller::{Events, Interest, Poller, Stream, Token, Waker};
use protocol::{
    ExitDetector, FrameDecoder, FrameEvent, Framing, LineFramer, LineTooLong, LinesEnd,
    frame_header, reverse,
};
use ring::{Consumer, Producer, TryReadError};
use std::io::{self, IoSlice, Write};
use std::net::SocketAddr;
use std::ops::{ControlFlow, Range};
use std::sync::Arc;
use std::time::{Duration, Instant};

const WAKE: Token = own_token(0);
/// Empty polls of the ring before a `block` worker goes to sleep, the CPU yielded between them:
/// under load the next publish is microseconds away, and going to sleep and being woken through
/// the eventfd costs more than a few yields. Yielding rather than spinning gives the core to
/// the reader or the client, which are the ones to make the next publish (the machines this is
/// measured on have 2 cores for all three).
const SPINS_BEFORE_SLEEP: u32 = 10;
/// Empty polls of the ring between two housekeeping rounds of a `spin` or `yield` worker.
const TICK_EVERY_IDLE_SPINS: u32 = 1024;
/// How long clients get to take their pending output once the server stops.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// The least time between two periodic stats lines (`debug`, only while there is traffic).
const STATS_INTERVAL: Duration = Duration::from_secs(2);
/// The most pieces one `sendmsg` gathers; a reply with more sends the rest from pending output.
const MAX_SLICES: usize = 64;
/// The most reply bytes held back to go out with the next event's (see [`Ctx::staged`]): what
/// the reader's longest run of reads of one connection brings, with room for the lines those
/// reads cut.
const STAGE_CAPACITY: usize = 256 * 1024;

/// What the worker counted, for the summary.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct WorkerStats {
    pub(crate) events: u64,
    pub(crate) bytes_out: u64,
    /// Replies the socket did not take whole, whose rest went to pending output.
    pub(crate) short_writes: u64,
    /// Connections that still had output pending when the stop's grace period ran out.
    pub(crate) left_pending: u64,
    pub(crate) timed_out: u64,
    pub(crate) pauses: u64,
    pub(crate) pending_high_water: u64,
    pub(crate) buffered_high_water: u64,
}

/// How a connection's framing state is kept.
enum Decoder {
    /// `chunk` framing for a client that may stop the server: bytes that could still become
    /// an exit line are held back.
    Chunk(ExitDetector),
    /// `chunk` framing for a client that may not: every read is reversed whole.
    Plain,
    Line(LineFramer),
    Frame {
        decoder: FrameDecoder,
        /// The current frame's announced length.
        len: u32,
        /// Where the current frame's payload lies in the chunk, when all of it came in one
        /// read: it is then reversed in place instead of copied.
        whole: Option<Range<usize>>,
    },
}

/// One piece of a reply: bytes from the ring slot (or the stack), or a range of the
/// connection's carry.
#[derive(Clone)]
enum Part<'a> {
    Bytes(&'a [u8]),
    Carried(Range<usize>),
}

impl Part<'_> {
    fn len(&self) -> usize {
        match self {
            Self::Bytes(bytes) => bytes.len(),
            Self::Carried(range) => range.len(),
        }
    }
}

/// The first line of a chunk when it began in an earlier one.
#[derive(Clone, Copy)]
struct FirstLine {
    /// The end of its body's part in the chunk.
    body_end: usize,
    /// Its body bytes in the carry.
    carried: usize,
    terminator: &'static [u8],
    /// Its end in the chunk.
    end: usize,
}

/// How a connection ends once its pending output is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum End {
    /// Shut down our writing side: the client reads everything, then end of stream.
    Write,
    /// Shut down both sides: the reader sees end of stream and stops reading.
    Both,
}

/// The worker's side of one connection.
struct Conn {
    id: ConnId,
    stream: Arc<Stream>,
    peer: SocketAddr,
    /// Whether this client may stop the server (the `--exit` policy and its address).
    may_exit: bool,
    decoder: Decoder,
    /// The start of an unfinished line, or the payload of an unfinished frame, reversed:
    /// whatever comes next goes in front of it (see [`Chain::push_front_reversed`]).
    carry: Chain,
    /// Output the socket has not taken yet.
    pending: Chain,
    /// Why reading from it is paused: [`PENDING_FULL`], [`POOL_EMPTY`], or 0.
    paused_for: u8,
    /// Whether the socket is registered for EPOLLOUT.
    watching_output: bool,
    /// Whether input is still answered (false after an oversize line or frame).
    answering: bool,
    /// How to end the connection once the pending output is written.
    end: Option<End>,
    /// A write failed: nothing more is sent.
    broken: bool,
    /// The reader's last event (`Eof` or `Reset`) has been handled.
    last_event_seen: bool,
}

impl Conn {
    fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }
}

/// Tells the reader to stop if the worker thread unwinds, so that it does not sleep on in
/// `epoll_wait` with nobody consuming the ring.
struct StopOnPanic(Arc<Control>);

impl Drop for StopOnPanic {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.request_stop(StopReason::WorkerGone);
        }
    }
}

pub(crate) struct Worker {
    consumer: Consumer<Slot>,
    core: Core,
}

/// Everything but the ring's consumer, so that the worker can sleep on its announcement.
struct Core {
    conns: Vec<Option<Conn>>,
    ctx: Ctx,
}

/// What connection handlers share.
struct Ctx {
    poller: Poller,
    /// The eventfd the reader's publishes write (with `--wait block`): held so that it lives
    /// as long as its registration in `poller`; edge-triggered, it is never read.
    _waker: Option<Arc<Waker>>,
    notices: Producer<u32>,
    gates: Arc<Gates>,
    control: Arc<Control>,
    framing: Framing,
    exit: crate::ExitPolicy,
    max_line: usize,
    max_frame: u32,
    max_pending: usize,
    idle_timeout: Option<Duration>,
    wait: WaitMode,
    pool: Pool,
    /// Connections paused because the pool ran out, oldest first, to resume when it has room.
    pool_waiters: Vec<ConnId>,
    /// The one connection allowed past the pool's limit while it is used up, so that some
    /// line or frame always gets finished (and its blocks freed) even when every block is
    /// held by unfinished ones.
    pool_holder: Option<ConnId>,
    activity: Activity,
    /// The time of the batch or readiness round being handled.
    now: Instant,
    stdout: Option<io::BufWriter<io::Stdout>>,
    /// Connections with pending output.
    writers: usize,
    /// Replies held back while the next event in the batch is more data from the same
    /// connection, so that a run of reads (a client streaming faster than it is answered) is
    /// answered with one `sendmsg` instead of one per read: on loopback each send costs a trip
    /// through the TCP stack, which is most of the CPU per byte. Staged bytes always belong to
    /// the connection being handled, which then has no pending output; they are sent before
    /// anything else happens to its socket. Allocated once, never grown.
    staged: Vec<u8>,
    /// Whether [`Ctx::send`] may stage (the next event is more data from this connection).
    staging: bool,
    stats: WorkerStats,
}

impl Worker {
    pub(crate) fn new(
        consumer: Consumer<Slot>,
        notices: Producer<u32>,
        gates: Arc<Gates>,
        waker: Option<Arc<Waker>>,
        control: Arc<Control>,
        config: &Config,
    ) -> io::Result<Self> {
        let poller = Poller::new()?;
        if let Some(waker) = &waker {
            // Edge-triggered: every wake is an edge, so the counter need not be read back.
            poller.add(&**waker, WAKE, Interest::READABLE | Interest::EDGE)?;
        }
        let stdout = (!config.quiet).then(|| io::BufWriter::with_capacity(64 * 1024, io::stdout()));
        Ok(Self {
            consumer,
            core: Core {
                conns: Vec::new(),
                ctx: Ctx {
                    poller,
                    _waker: waker,
                    notices,
                    gates,
                    control,
                    framing: config.framing,
                    exit: config.exit,
                    max_line: config.max_line,
                    max_frame: config.max_frame,
                    max_pending: config.max_pending,
                    idle_timeout: config.idle_timeout,
                    wait: config.wait,
                    pool: Pool::new(config.max_buffered),
                    pool_waiters: Vec::new(),
                    pool_holder: None,
                    activity: Activity::new(),
                    now: Instant::now(),
                    stdout,
                    writers: 0,
                    staged: Vec::with_capacity(STAGE_CAPACITY),
                    staging: false,
                    stats: WorkerStats::default(),
                },
            },
        })
    }

    /// Runs until the reader is gone and every event is handled, then gives clients
    /// [`STOP_GRACE`] to take their pending output and closes every connection.
    pub(crate) fn run(mut self) -> io::Result<WorkerStats> {
        let _guard = StopOnPanic(Arc::clone(&self.core.ctx.control));
        let mut events = Events::with_capacity(256);
        let mut idle: u32 = 0;
        let mut last_stats = StatsMark {
            at: Instant::now(),
            events: 0,
        };
        loop {
            let empty = match self.consumer.try_read() {
                Ok(mut batch) => {
                    self.core.ctx.now = Instant::now();
                    let count = batch.len();
                    let mut slots = batch.iter_mut().peekable();
                    while let Some(slot) = slots.next() {
                        let more = slots
                            .peek()
                            .is_some_and(|next| next.conn == slot.conn && next.kind == Kind::Data);
                        self.core.handle(slot, more);
                    }
                    // Dropping the batch releases its slots: their bytes are written or copied.
                    drop(batch);
                    self.core.ctx.stats.events += count as u64;
                    self.core.ctx.flush_stdout();
                    false
                }
                Err(TryReadError::Empty) => true,
                Err(TryReadError::Disconnected) => break,
            };
            if !empty {
                self.core.tick(&mut last_stats);
                idle = 0;
                // Under steady load the ring is never empty: look for writable sockets here
                // too, without blocking, or pending output would wait for a lull.
                if self.core.ctx.writers > 0 {
                    self.core.poll(&mut events, Some(Duration::ZERO))?;
                }
                continue;
            }
            // Housekeeping costs a clock read: not on every empty poll of the ring, but before
            // sleeping and every so often while spinning.
            idle = idle.wrapping_add(1);
            match self.core.ctx.wait {
                WaitMode::Spin | WaitMode::Yield => {
                    if idle.is_multiple_of(TICK_EVERY_IDLE_SPINS) {
                        self.core.tick(&mut last_stats);
                    }
                    if self.core.ctx.writers > 0 {
                        self.core.poll(&mut events, Some(Duration::ZERO))?;
                    } else if self.core.ctx.wait == WaitMode::Spin {
                        std::hint::spin_loop();
                    } else {
                        std::thread::yield_now();
                    }
                }
                WaitMode::Block if idle <= SPINS_BEFORE_SLEEP => std::thread::yield_now(),
                WaitMode::Block => {
                    self.core.tick(&mut last_stats);
                    if let Some(sleep) = self.consumer.announce_sleep() {
                        // Asleep until a publish, a writable socket or the next idle deadline.
                        let timeout = self.core.next_deadline();
                        self.core.poll(&mut events, timeout)?;
                        drop(sleep);
                    }
                    idle = 0;
                }
            }
        }
        self.core.close_all(&mut events)?;
        let ctx = &mut self.core.ctx;
        ctx.stats.buffered_high_water = ctx.pool.high_water_bytes() as u64;
        Ok(ctx.stats)
    }
}

/// When the last periodic stats line was considered, and the event count then.
struct StatsMark {
    at: Instant,
    events: u64,
}

impl Core {
    /// Handles one ring event; `more` says whether the next one in the batch is more data from
    /// the same connection (its reply may then wait to go out with that one's).
    fn handle(&mut self, slot: &mut Slot, more: bool) {
        let index = slot.conn.index as usize;
        if slot.kind == Kind::Open {
            let Some(opened) = slot.open.take() else {
                return;
            };
            if self.conns.len() <= index {
                self.conns.resize_with(index + 1, || None);
            }
            debug_assert!(
                self.conns[index].is_none(),
                "index {index} reused too early"
            );
            self.conns[index] = Some(self.ctx.open(slot.conn, opened.stream, opened.peer));
            self.ctx.activity.touch(slot.conn.index, self.ctx.now);
            return;
        }
        let Some(Some(conn)) = self.conns.get_mut(index) else {
            debug_assert!(false, "event for unknown connection {index}");
            return;
        };
        debug_assert_eq!(conn.id, slot.conn);
        match slot.kind {
            Kind::Open => unreachable!("handled above"),
            Kind::Data => {
                self.ctx.staging = more;
                self.ctx.data(conn, &mut slot.buf[..slot.len]);
                self.ctx.staging = false;
                if !more {
                    self.ctx.send_staged(conn);
                }
            }
            Kind::Eof => {
                self.ctx.eof(conn);
                conn.last_event_seen = true;
            }
            Kind::Reset => {
                // The client is gone: nothing more can be delivered.
                self.ctx.abandon(conn);
                conn.last_event_seen = true;
            }
        }
        self.settle(index);
    }

    /// Ends connection `index` if it is finished: its last event seen and its output written
    /// (or undeliverable). The reader is then told the index is free.
    fn settle(&mut self, index: usize) {
        let Some(slot) = self.conns.get_mut(index) else {
            return;
        };
        let Some(conn) = slot else {
            return;
        };
        if conn.has_pending() && !conn.broken {
            return;
        }
        if !conn.last_event_seen {
            // The reader still reads: end our side now if that is due (the FIN after an
            // oversize line, the close after an oversize frame).
            if let Some(end) = conn.end.take()
                && !conn.broken
            {
                self.ctx.shut_down(conn, end);
            }
            return;
        }
        let Some(mut conn) = slot.take() else {
            return;
        };
        // `output_done` unregistered it when the pending output was written or dropped.
        debug_assert!(!conn.watching_output);
        let ctx = &mut self.ctx;
        ctx.activity.remove(conn.id.index);
        conn.carry.clear(&mut ctx.pool);
        conn.pending.clear(&mut ctx.pool);
        // The reader is done with the socket; the next connection at this index starts
        // unpaused (a resume notice still in the ring is ahead of the done notice).
        if conn.paused_for != 0 {
            ctx.gates.clear_paused(conn.id.index);
        }
        // The notice goes first, so that by the time the client sees our FIN the reader has
        // been told the index is free. The notice ring holds two entries per connection there
        // can be, so it is never full; it is disconnected once the reader has stopped, and
        // then nobody needs the notice.
        ctx.notify(Notice::Done(conn.id.index));
        if let Some(end) = conn.end.take()
            && !conn.broken
        {
            ctx.shut_down(&mut conn, end);
        }
        debug!("connection {index} from {} closed", conn.peer);
        // Dropping `conn` drops the worker's share of the socket; the reader has dropped its
        // own already, so this closes it.
    }

    /// One `epoll_wait` on the worker's epoll: writes pending output to the sockets that
    /// became writable.
    fn poll(&mut self, events: &mut Events, timeout: Option<Duration>) -> io::Result<()> {
        self.ctx.poller.wait(events, timeout)?;
        self.ctx.now = Instant::now();
        for event in events.iter() {
            if event.token() == WAKE {
                continue;
            }
            let Some(id) = ConnId::from_token(event.token()) else {
                continue;
            };
            let index = id.index as usize;
            if let Some(Some(conn)) = self.conns.get_mut(index)
                && conn.id == id
            {
                self.ctx.flush(conn);
                self.settle(index);
            }
        }
        Ok(())
    }

    /// Housekeeping between batches: idle timeouts, connections waiting for the pool, and
    /// the periodic stats line.
    fn tick(&mut self, last_stats: &mut StatsMark) {
        self.ctx.now = Instant::now();
        self.expire();
        self.share_pool();
        if self.ctx.now.duration_since(last_stats.at) >= STATS_INTERVAL {
            if self.ctx.stats.events != last_stats.events && log_enabled!(log::Level::Debug) {
                self.ctx.log_stats();
            }
            *last_stats = StatsMark {
                at: self.ctx.now,
                events: self.ctx.stats.events,
            };
        }
    }

    /// Resumes connections that wait for the pool: all of them once a quarter of it is free;
    /// else, when no connection holds the right to go past the limit, the oldest waiter, which
    /// takes that right on its next block. The holder keeps it until its unfinished line or
    /// frame is done (its carry is empty), so the pool can run out but never seize up: there
    /// is always one unit being finished. (Connections whose client stalls with a unit half
    /// sent are reclaimed by the idle timeout.)
    fn share_pool(&mut self) {
        let ctx = &mut self.ctx;
        if let Some(id) = ctx.pool_holder {
            // Done, or unable to finish: a holder whose client does not take its replies is
            // not read until it does.
            let done = match self.conns.get(id.index as usize) {
                Some(Some(conn)) if conn.id == id => {
                    conn.carry.is_empty() || conn.broken || conn.paused_for & PENDING_FULL != 0
                }
                _ => true,
            };
            if done {
                ctx.pool_holder = None;
            }
        }
        let all = ctx.pool.has_room();
        if ctx.pool_waiters.is_empty() || !all && ctx.pool_holder.is_some() {
            return;
        }
        // Taken out and put back, so that its capacity is kept.
        let mut waiters = std::mem::take(&mut ctx.pool_waiters);
        let mut taken = 0;
        for &id in &waiters {
            taken += 1;
            // Entries of connections that closed, or were resumed otherwise, are skipped: the
            // one resumed when the pool is tight must be one that waits.
            if let Some(Some(conn)) = self.conns.get_mut(id.index as usize)
                && conn.id == id
                && conn.paused_for & POOL_EMPTY != 0
            {
                ctx.resume(conn, POOL_EMPTY);
                if !all {
                    // It may go past the limit: it is the one whose unit gets finished.
                    ctx.pool_holder = Some(id);
                    break;
                }
            }
        }
        waiters.drain(..taken);
        ctx.pool_waiters = waiters;
    }

    /// Closes every connection that made no progress for the idle timeout. Only the front of
    /// the activity list can have timed out, so this looks at one connection more than it
    /// closes.
    fn expire(&mut self) {
        let Some(timeout) = self.ctx.idle_timeout else {
            return;
        };
        while let Some((index, at)) = self.ctx.activity.oldest() {
            let idle = self.ctx.now.saturating_duration_since(at);
            if idle < timeout {
                break;
            }
            self.ctx.activity.remove(index);
            let Some(Some(conn)) = self.conns.get_mut(index as usize) else {
                continue;
            };
            debug!(
                "connection {index} from {}: no progress for {:.1} s{}; closing",
                conn.peer,
                idle.as_secs_f64(),
                if conn.has_pending() {
                    " (its client does not take its replies)"
                } else {
                    ""
                }
            );
            self.ctx.stats.timed_out += 1;
            // Shut down both ways: the reader then reads end of stream and publishes the
            // connection's last event, and `settle` closes it.
            self.ctx.abandon(conn);
            let _ = conn.stream.shutdown_both();
            self.settle(index as usize);
        }
    }

    /// How long the worker may sleep before the oldest connection times out.
    fn next_deadline(&self) -> Option<Duration> {
        let timeout = self.ctx.idle_timeout?;
        let (_, at) = self.ctx.activity.oldest()?;
        // `epoll_wait` counts whole milliseconds, rounding down: add one so that the wake-up
        // comes after the deadline, not just before it.
        // A timeout too long for the clock to add means no deadline at all.
        let left = at
            .checked_add(timeout)?
            .saturating_duration_since(Instant::now());
        Some(left + Duration::from_millis(1))
    }

    /// The stop: the end of the ring is the end of every stream, so each connection's held
    /// bytes and unfinished line are answered as at end of stream. Clients then get
    /// [`STOP_GRACE`] to take their pending output; then every connection is shut down and
    /// closed.
    fn close_all(&mut self, events: &mut Events) -> io::Result<()> {
        for conn in self.conns.iter_mut().flatten() {
            if !conn.last_event_seen {
                self.ctx.eof(conn);
            }
        }
        let deadline = Instant::now() + STOP_GRACE;
        while self.ctx.writers > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                warn!(
                    "{} connection(s) did not take their replies within {STOP_GRACE:?}",
                    self.ctx.writers
                );
                self.ctx.stats.left_pending = self.ctx.writers as u64;
                break;
            }
            self.poll(events, Some(left))?;
        }
        let mut scratch = [0; 4096];
        for mut conn in self.conns.iter_mut().filter_map(Option::take) {
            conn.carry.clear(&mut self.ctx.pool);
            conn.pending.clear(&mut self.ctx.pool);
            if !conn.broken {
                let _ = conn.stream.shutdown_write();
            }
            // Closing a socket with unread input resets the connection, and a reset makes
            // the client's kernel drop replies it has not handed over yet. Input that came
            // after the stop is not answered; it is read and dropped so that the close is a
            // FIN.
            for _ in 0..64 {
                match conn.stream.read(&mut scratch) {
                    Ok(n) if n > 0 => continue,
                    _ => break,
                }
            }
        }
        self.ctx.flush_stdout();
        Ok(())
    }
}

/// Writes `parts` with one `sendmsg` of at most [`MAX_SLICES`] pieces. Pieces that do not fit count as not
/// sent, so the caller keeps them as pending output: correct, and rare (a frame in many blocks).
fn write_parts(pool: &Pool, conn: &Conn, parts: &[Part<'_>]) -> io::Result<usize> {
    let mut slices = [IoSlice::new(&[]); MAX_SLICES];
    let mut count = 0;
    for part in parts {
        match part {
            Part::Bytes(bytes) if !bytes.is_empty() && count < MAX_SLICES => {
                slices[count] = IoSlice::new(bytes);
                count += 1;
            }
            Part::Bytes(_) => {}
            Part::Carried(range) => {
                let (n, _) = conn.carry.slices(pool, range.clone(), &mut slices[count..]);
                count += n;
            }
        }
    }
    conn.stream.send_vectored(&slices[..count])
}

impl Ctx {
    fn open(&mut self, id: ConnId, stream: Arc<Stream>, peer: SocketAddr) -> Conn {
        let may_exit = self.exit.allows(peer);
        let decoder = match self.framing {
            Framing::Chunk if may_exit => Decoder::Chunk(ExitDetector::new()),
            Framing::Chunk => Decoder::Plain,
            Framing::Line => Decoder::Line(LineFramer::new(self.max_line)),
            Framing::Frame => Decoder::Frame {
                decoder: FrameDecoder::new(self.max_frame),
                len: 0,
                whole: None,
            },
        };
        Conn {
            id,
            stream,
            peer,
            may_exit,
            decoder,
            carry: Chain::default(),
            pending: Chain::default(),
            paused_for: 0,
            watching_output: false,
            answering: true,
            end: None,
            broken: false,
            last_event_seen: false,
        }
    }

    /// Bytes from the client: print them, then answer them as the framing says.
    fn data(&mut self, conn: &mut Conn, chunk: &mut [u8]) {
        if let Some(out) = &mut self.stdout
            && let Err(err) = out.write_all(chunk)
        {
            warn!("cannot print received bytes to stdout any more: {err}");
            self.stdout = None;
        }
        if conn.broken {
            // Timed out or failed: only the end of stream is awaited, and the clock is off.
            return;
        }
        self.activity.touch(conn.id.index, self.now);
        if !conn.answering {
            return;
        }
        match conn.decoder {
            Decoder::Plain => {
                reverse(chunk);
                self.send(conn, &[Part::Bytes(chunk)]);
            }
            Decoder::Chunk(_) => self.chunk(conn, chunk),
            Decoder::Line(_) => self.lines(conn, chunk),
            Decoder::Frame { .. } => self.frames(conn, chunk),
        }
    }

    /// `chunk` framing with exit detection: each read is reversed as a whole, less the bytes
    /// held back as a possible exit line (they lead the next read's reply).
    fn chunk(&mut self, conn: &mut Conn, chunk: &mut [u8]) {
        let mut from = 0;
        loop {
            let Decoder::Chunk(detector) = &mut conn.decoder else {
                return;
            };
            let part = &mut chunk[from..];
            let scan = detector.feed(part);
            // `released ++ part[..data]` reversed is `reverse(part[..data]) ++ reverse(released)`.
            reverse(&mut part[..scan.data]);
            let mut released = [0; 8];
            let released = &mut released[..scan.released.len()];
            released.copy_from_slice(scan.released);
            reverse(released);
            self.send(
                conn,
                &[Part::Bytes(&part[..scan.data]), Part::Bytes(released)],
            );
            match scan.exit {
                Some(end) => {
                    self.exit(conn);
                    from += end;
                    if from == chunk.len() {
                        return;
                    }
                }
                None => return,
            }
        }
    }

    /// `line` framing: whole lines are reversed in place in the slot; only the start of an
    /// unfinished line is copied, reversed, into `carry`, until its end arrives.
    fn lines(&mut self, conn: &mut Conn, chunk: &mut [u8]) {
        let mut from = 0;
        loop {
            let Decoder::Line(framer) = &mut conn.decoder else {
                return;
            };
            let may_exit = conn.may_exit;
            let part = &mut chunk[from..];
            // Only the first line of a chunk can have begun in an earlier one (its start is in
            // `carry`); every other line is contiguous in the chunk once reversed in place. So
            // the reply is `part[..body_end]`, the carried body (reversed already), that
            // line's terminator, then `part[line_end..last_end]`.
            let mut carried_line = !conn.carry.is_empty();
            let mut first: Option<FirstLine> = None;
            let mut last_end = 0;
            let end = framer.decode_lines(part, |buf, line| {
                if line.exit && may_exit {
                    return ControlFlow::Break(());
                }
                reverse(&mut buf[line.body.clone()]);
                if std::mem::take(&mut carried_line) {
                    first = Some(FirstLine {
                        body_end: line.body.end,
                        carried: line.carried,
                        terminator: line.terminator.as_bytes(),
                        end: line.end,
                    });
                }
                last_end = line.end;
                ControlFlow::Continue(())
            });
            match first {
                Some(line) => {
                    // The carry is `reverse(carried bytes)`; when the carried bytes end with a
                    // `\r` that turned out to be part of `\r\n`, it is the carry's first byte,
                    // so the body is always the carry's last `line.carried` bytes.
                    let len = conn.carry.len();
                    self.send(
                        conn,
                        &[
                            Part::Bytes(&part[..line.body_end]),
                            Part::Carried(len - line.carried..len),
                            Part::Bytes(line.terminator),
                            Part::Bytes(&part[line.end..last_end]),
                        ],
                    );
                    self.clear_carry(conn);
                }
                None => self.send(conn, &[Part::Bytes(&part[..last_end])]),
            }
            match end {
                Ok(LinesEnd::Kept { from: kept }) => {
                    conn.carry
                        .push_front_reversed(&mut self.pool, &part[kept..]);
                    self.grew(conn);
                    return;
                }
                Ok(LinesEnd::Stopped { at }) => {
                    // An exit line, honoured: it is not echoed, and whatever of it was
                    // carried goes with it.
                    self.clear_carry(conn);
                    self.exit(conn);
                    from += at;
                    if from == chunk.len() {
                        return;
                    }
                }
                Err(LineTooLong { max_line }) => {
                    self.refuse_line(conn, max_line);
                    return;
                }
            }
        }
    }

    /// A line grew past `--max-line`: send the error line after the replies already due, then
    /// end our writing side; input is discarded until the client closes.
    fn refuse_line(&mut self, conn: &mut Conn, max_line: usize) {
        debug!(
            "connection {} from {}: line longer than {max_line} bytes; closing",
            conn.id.index, conn.peer
        );
        // The number is written on the stack: the data path does not allocate.
        let mut digits = [0; 20];
        let mut cursor = io::Cursor::new(&mut digits[..]);
        // Twenty digits hold any `usize`.
        let _ = write!(cursor, "{max_line}");
        let len = cursor.position() as usize;
        self.send(
            conn,
            &[
                Part::Bytes(b"error: line longer than "),
                Part::Bytes(&digits[..len]),
                Part::Bytes(b" bytes\n"),
            ],
        );
        self.clear_carry(conn);
        conn.answering = false;
        conn.end = Some(End::Write);
    }

    /// `frame` framing: each payload is reversed and sent back with the same header.
    fn frames(&mut self, conn: &mut Conn, chunk: &mut [u8]) {
        let mut from = 0;
        loop {
            let Decoder::Frame {
                decoder,
                len,
                whole,
            } = &mut conn.decoder
            else {
                return;
            };
            let step = match decoder.decode(&chunk[from..]) {
                Ok(step) => step,
                Err(too_large) => {
                    debug!(
                        "connection {} from {}: {too_large}; closing",
                        conn.id.index, conn.peer
                    );
                    self.clear_carry(conn);
                    conn.answering = false;
                    conn.end = Some(End::Both);
                    return;
                }
            };
            let at = from;
            from += step.consumed;
            match step.event {
                None => return,
                Some(FrameEvent::Start { len: announced }) => {
                    // Nothing is taken for the frame yet: its blocks come as its bytes do.
                    *len = announced;
                    *whole = None;
                    self.clear_carry(conn);
                }
                Some(FrameEvent::Payload(range)) => {
                    let range = at + range.start..at + range.end;
                    if conn.carry.is_empty() && range.len() == *len as usize {
                        *whole = Some(range);
                    } else {
                        conn.carry
                            .push_front_reversed(&mut self.pool, &chunk[range]);
                        self.grew(conn);
                    }
                }
                Some(FrameEvent::End { exit }) => {
                    let header = frame_header(*len);
                    let whole = whole.take();
                    if exit && conn.may_exit {
                        self.clear_carry(conn);
                        self.exit(conn);
                        continue;
                    }
                    match whole {
                        Some(range) => {
                            reverse(&mut chunk[range.clone()]);
                            self.send(conn, &[Part::Bytes(&header), Part::Bytes(&chunk[range])]);
                        }
                        None => {
                            let carried = Part::Carried(0..conn.carry.len());
                            self.send(conn, &[Part::Bytes(&header), carried]);
                            self.clear_carry(conn);
                        }
                    }
                }
            }
        }
    }

    /// The client closed its writing side: answer what is left, then end ours.
    fn eof(&mut self, conn: &mut Conn) {
        if conn.answering {
            match &mut conn.decoder {
                Decoder::Plain => {}
                Decoder::Chunk(detector) => {
                    let eof = detector.finish();
                    if eof.exit {
                        self.exit(conn);
                    } else {
                        let mut released = [0; 8];
                        let released = &mut released[..eof.released.len()];
                        released.copy_from_slice(eof.released);
                        reverse(released);
                        self.send(conn, &[Part::Bytes(released)]);
                    }
                }
                Decoder::Line(framer) => match framer.finish() {
                    Ok(None) => {}
                    Ok(Some(last)) if last.exit && conn.may_exit => self.exit(conn),
                    Ok(Some(last)) => {
                        let len = conn.carry.len();
                        self.send(conn, &[Part::Carried(len - last.len..len)]);
                    }
                    Err(LineTooLong { max_line }) => self.refuse_line(conn, max_line),
                },
                Decoder::Frame { decoder, .. } => {
                    if let Err(incomplete) = decoder.finish() {
                        debug!(
                            "connection {} from {}: {incomplete}; frame dropped",
                            conn.id.index, conn.peer
                        );
                    }
                }
            }
        }
        self.clear_carry(conn);
        conn.answering = false;
        conn.end.get_or_insert(End::Write);
    }

    /// An exit line from a client that may stop the server.
    fn exit(&mut self, conn: &Conn) {
        if !self.control.stop_requested() {
            info!("exit from {}: stopping", conn.peer);
        }
        self.control
            .request_stop(StopReason::Exit { peer: conn.peer });
    }

    /// Sends `parts` in order: straight from where they are if nothing is pending and the
    /// socket takes them, else (the rest) into the pending output, behind what is there.
    fn send(&mut self, conn: &mut Conn, parts: &[Part<'_>]) {
        if conn.broken {
            return;
        }
        let total: usize = parts.iter().map(Part::len).sum();
        if total == 0 {
            return;
        }
        // Staged replies go first: the last reply of a run joins them, and they go out together.
        if (self.staging || !self.staged.is_empty()) && !conn.has_pending() {
            if self.staged.len() + total > STAGE_CAPACITY {
                self.send_staged(conn);
                if conn.broken {
                    return;
                }
            }
            if self.staged.len() + total <= STAGE_CAPACITY && !conn.has_pending() {
                self.stage(conn, parts);
                return;
            }
        }
        let mut written = 0;
        if !conn.has_pending() {
            let result = write_parts(&self.pool, conn, parts);
            match result {
                Ok(n) => written = n,
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
                Err(err) => return self.fail(conn, &err),
            }
            self.stats.bytes_out += written as u64;
            if written > 0 {
                self.activity.touch(conn.id.index, self.now);
            }
            if written == total {
                return;
            }
            self.stats.short_writes += 1;
        }
        let was_pending = conn.has_pending();
        let mut skip = written;
        for part in parts {
            let taken = skip.min(part.len());
            skip -= taken;
            match part {
                Part::Bytes(bytes) => conn.pending.push_back(&mut self.pool, &bytes[taken..]),
                Part::Carried(range) => {
                    self.pool.copy(
                        &conn.carry,
                        range.start + taken..range.end,
                        &mut conn.pending,
                    );
                }
            }
        }
        if !was_pending {
            self.output_pending(conn);
        }
        self.grew(conn);
    }

    /// Copies `parts` to the end of [`Ctx::staged`], which has room for them.
    fn stage(&mut self, conn: &Conn, parts: &[Part<'_>]) {
        for part in parts {
            match part {
                Part::Bytes(bytes) => self.staged.extend_from_slice(bytes),
                Part::Carried(range) => {
                    let mut from = range.start;
                    while from < range.end {
                        let mut slices = [IoSlice::new(&[]); MAX_SLICES];
                        let (count, bytes) =
                            conn.carry.slices(&self.pool, from..range.end, &mut slices);
                        for slice in &slices[..count] {
                            self.staged.extend_from_slice(slice);
                        }
                        if bytes == 0 {
                            break;
                        }
                        from += bytes;
                    }
                }
            }
        }
    }

    /// Sends the staged replies (see [`Ctx::staged`]) of `conn`, the connection being handled.
    fn send_staged(&mut self, conn: &mut Conn) {
        if self.staged.is_empty() {
            return;
        }
        // Taken out for the send and put back emptied: the buffer is moved, not reallocated.
        let staged = std::mem::take(&mut self.staged);
        let staging = std::mem::replace(&mut self.staging, false);
        self.send(conn, &[Part::Bytes(&staged)]);
        self.staging = staging;
        self.staged = staged;
        self.staged.clear();
    }

    /// Writes pending output until the socket is full or nothing is left.
    fn flush(&mut self, conn: &mut Conn) {
        // An event already fetched may come after the output was written or dropped (by an
        // earlier event in the same batch): then there is nothing to do, and nothing to count.
        if !conn.has_pending() {
            return;
        }
        let mut progress = false;
        while conn.has_pending() {
            let result = {
                let mut slices = [IoSlice::new(&[]); MAX_SLICES];
                let (count, _) =
                    conn.pending
                        .slices(&self.pool, 0..conn.pending.len(), &mut slices);
                conn.stream.send_vectored(&slices[..count])
            };
            match result {
                Ok(0) => break,
                Ok(n) => {
                    conn.pending.consume(&mut self.pool, n);
                    self.stats.bytes_out += n as u64;
                    progress = true;
                }
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => break,
                Err(err) => return self.fail(conn, &err),
            }
        }
        if progress {
            self.activity.touch(conn.id.index, self.now);
        }
        if !conn.has_pending() {
            self.output_done(conn);
        }
        // The low-water mark: half of `--max-pending`, so that a reader that keeps up does not
        // flip between paused and running on every reply.
        if conn.pending.len() <= self.max_pending / 2 {
            self.resume(conn, PENDING_FULL);
        }
    }

    /// A connection's carry or pending output grew: pause reading from it if its output is
    /// past `--max-pending` or the pool is used up.
    fn grew(&mut self, conn: &mut Conn) {
        let pending = conn.pending.len();
        self.stats.pending_high_water = self.stats.pending_high_water.max(pending as u64);
        if pending > self.max_pending {
            self.pause(conn, PENDING_FULL);
        }
        if self.pool.exhausted() {
            match self.pool_holder {
                Some(holder) if holder == conn.id => {}
                // The first to ask becomes the holder, unless it cannot finish its unit (it is
                // paused) or others asked before it (they go first, in order).
                None if conn.paused_for == 0 && self.pool_waiters.is_empty() => {
                    self.pool_holder = Some(conn.id);
                }
                _ => self.pause(conn, POOL_EMPTY),
            }
        }
    }

    fn pause(&mut self, conn: &mut Conn, why: u8) {
        if conn.paused_for & why != 0 {
            return;
        }
        self.gates.pause(conn.id.index, why);
        if why == PENDING_FULL && self.pool_holder == Some(conn.id) {
            // It cannot finish its unit until its client reads: let another one go.
            self.pool_holder = None;
        }
        if conn.paused_for == 0 {
            self.stats.pauses += 1;
            debug!(
                "connection {} from {}: reading paused ({})",
                conn.id.index,
                conn.peer,
                if why == PENDING_FULL {
                    "its client does not take its replies"
                } else {
                    "the buffer pool is used up"
                }
            );
        }
        conn.paused_for |= why;
        if why == POOL_EMPTY {
            self.pool_waiters.push(conn.id);
            // The server holds it up, not its client: off the idle clock until resumed.
            self.activity.remove(conn.id.index);
        }
    }

    /// Takes back reasons for a pause; with none left, the reader is told to read again.
    fn resume(&mut self, conn: &mut Conn, why: u8) {
        let cleared = conn.paused_for & why;
        if cleared == 0 {
            return;
        }
        conn.paused_for &= !cleared;
        if cleared & POOL_EMPTY != 0 && !conn.broken {
            // Back on the idle clock, from now: the wait was the server's doing.
            self.activity.touch(conn.id.index, self.now);
        }
        if conn.paused_for == 0 {
            debug!(
                "connection {} from {}: reading resumed",
                conn.id.index, conn.peer
            );
        }
        if self.gates.resume(conn.id.index, cleared) {
            self.notify(Notice::Resume(conn.id.index));
            self.control.wake_reader();
        }
    }

    /// Empties a connection's carry: its unit is done (or dropped). If it was the pool's
    /// holder, another connection's turn comes.
    fn clear_carry(&mut self, conn: &mut Conn) {
        conn.carry.clear(&mut self.pool);
        if self.pool_holder == Some(conn.id) {
            self.pool_holder = None;
        }
    }

    /// Pushes a notice to the reader. The ring has room for two per connection there can be
    /// (a done and a resume), so it is never full; it is disconnected once the reader has
    /// stopped, and then nobody needs the notice.
    fn notify(&mut self, notice: Notice) {
        let pushed = self.notices.try_push(notice.encode());
        debug_assert!(
            !matches!(pushed, Err(ring::TryPushError::Full(_))),
            "notice ring full"
        );
    }

    /// A write failed (a reset, EPIPE): this connection is over, nobody else is affected. The
    /// socket is shut down, so that the reader sees end of stream and stops reading it.
    fn fail(&mut self, conn: &mut Conn, err: &io::Error) {
        debug!(
            "connection {} from {}: write failed: {err}",
            conn.id.index, conn.peer
        );
        self.abandon(conn);
        let _ = conn.stream.shutdown_both();
    }

    /// Nothing more can be delivered to this connection: its pending output and carry are
    /// dropped, nothing more is answered or sent, and the reader reads on to the end of
    /// stream (a paused connection is resumed for that).
    fn abandon(&mut self, conn: &mut Conn) {
        self.staged.clear();
        if conn.has_pending() {
            self.output_done(conn);
        }
        conn.pending.clear(&mut self.pool);
        self.clear_carry(conn);
        conn.broken = true;
        conn.answering = false;
        self.activity.remove(conn.id.index);
        self.resume(conn, PENDING_FULL | POOL_EMPTY);
    }

    /// A connection's pending output became non-empty: count it and ask for EPOLLOUT.
    fn output_pending(&mut self, conn: &mut Conn) {
        self.writers += 1;
        let interest = Interest::WRITABLE | Interest::EDGE;
        match self.poller.add(&*conn.stream, conn.id.token(), interest) {
            Ok(()) => conn.watching_output = true,
            Err(err) => self.fail(conn, &err),
        }
    }

    /// A connection's pending output is gone (written or dropped): stop counting it and stop
    /// watching for EPOLLOUT, which would otherwise wake the worker on every acknowledgement.
    fn output_done(&mut self, conn: &mut Conn) {
        debug_assert!(self.writers > 0, "writers miscounted");
        self.writers = self.writers.saturating_sub(1);
        if std::mem::take(&mut conn.watching_output) {
            let _ = self.poller.delete(&*conn.stream);
        }
    }

    fn shut_down(&mut self, conn: &mut Conn, end: End) {
        // Replies held back go out before the end of stream.
        self.send_staged(conn);
        let result = match end {
            End::Write => conn.stream.shutdown_write(),
            End::Both => conn.stream.shutdown_both(),
        };
        if let Err(err) = result {
            debug!(
                "connection {} from {}: shutdown failed: {err}",
                conn.id.index, conn.peer
            );
        }
    }

    /// The periodic `debug` line: what both threads counted so far.
    fn log_stats(&self) {
        let read = self.control.reader_stats.load();
        debug!(
            "stats: {} connections ({} rejected, {} shed, {} timed out), {} ring events, {} bytes in, {} bytes out, {} pauses, pending high-water {} bytes, buffered {} bytes (high-water {})",
            read.accepted,
            read.rejected,
            read.shed,
            self.stats.timed_out,
            read.events,
            read.bytes_in,
            self.stats.bytes_out,
            self.stats.pauses,
            self.stats.pending_high_water,
            self.pool.bytes_in_use(),
            self.pool.high_water_bytes(),
        );
    }

    fn flush_stdout(&mut self) {
        if let Some(out) = &mut self.stdout
            && let Err(err) = out.flush()
        {
            warn!("cannot print received bytes to stdout any more: {err}");
            self.stdout = None;
        }
    }
}
