//! Thread 1, the reader: accepts connections and publishes every read into the ring.
//!
//! It is kept lean: it never looks at the bytes. Per round it waits in `epoll_wait`, takes the
//! worker's notices (done with an index, resume reading one), accepts, and then serves the
//! *ready queue*: the connections whose last edge has not been read to `WouldBlock` yet. Each
//! fills at most [`READ_BUDGET`] slots per round before it goes to the back of the queue, so one
//! flooding client cannot starve the others; and when the ring is full the queue simply waits
//! (the reader sleeps in epoll, and the worker's next release wakes it through the ring's
//! hook). Under load it does not race the worker either: while the worker has a batch to get
//! through, the reader sleeps until its next release and then takes every event that arrived
//! meanwhile with one `epoll_wait` (see [`WORKER_BEHIND`]).
//!
//! Before every read it looks at the connection's [gate](crate::gate): a connection the worker
//! paused (its client does not take its replies, or the buffer pool ran out) leaves the queue
//! unread until the worker's resume notice puts it back.

use crate::config::Config;
use crate::conn::{ConnId, MAX_INDICES, own_token};
use crate::control::{Control, StopReason};
use crate::gate::{Gates, Notice, PAUSED, PENDING_FULL};
use crate::slot::{Kind, Opened, Slot};
use crate::stats::ReaderStats;
use log::{debug, error, info, warn};
use poller::{Event, Events, Interest, Listener, Poller, Stream, Token};
use ring::{Consumer, Producer, TryClaimError};
use std::collections::VecDeque;
use std::io::{self, IoSliceMut, Read};
use std::net::SocketAddr;
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Ring slots one connection may fill per round before the next ready connection's turn.
const READ_BUDGET: usize = 32;
/// The most slots one `readv` fills: a turn's whole budget in one system call.
const SLOTS_PER_READ: usize = 32;
/// On stop, the bytes read from a connection whose receive buffer size cannot be read.
const DRAIN_FALLBACK: usize = 4 << 20;
/// Polls of epoll without blocking, the CPU yielded between them, before the reader blocks in
/// `epoll_wait` after a round that found work. Under load the next events are microseconds
/// away, and sleeping and being woken every round costs far more than these yields (measured at
/// 64 x 64 B ping-pong on 2 cores: about a third more messages per second and a quarter less
/// CPU per message); with no traffic the reader still sleeps after a handful of them.
const IDLE_POLLS: u32 = 10;
/// Events the worker must have left to get through before the reader, with no connection
/// waiting for its turn, sleeps until the worker's next release instead of polling epoll for
/// the next event. Under load the reader is the faster of the two threads: polling, it finds
/// about one event per `epoll_wait` and pays a poll and a yield for each (0.5 to 1.2 of each per
/// message at 64 x 64 B ping-pong). Asleep while the worker works, it lets the events gather and
/// takes them with one `epoll_wait`, for one wake-up per batch of the worker. Below this the
/// worker is nearly idle and the reader polls as before, so light traffic (one connection)
/// pays no wake-up per message. Measured on 2 cores, 64 B ping-pong, medians of interleaved
/// runs: at 64 connections 4 to 64 are level, at about 10% less CPU and 15% more messages per
/// second than never sleeping (128 rarely sleeps); at 8 connections, where the worker is
/// rarely 8 behind, 4 gave 60k msgs/s against 39k for never sleeping and 33k to 35k for 8
/// and 16.
const WORKER_BEHIND: usize = 4;
/// How long to wait before retrying `accept` after it failed for lack of kernel memory.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);
/// The least time between two warnings about rejected connections.
const REJECT_WARNING_INTERVAL: Duration = Duration::from_secs(1);

pub(crate) const WAKE: Token = own_token(0);
const SIGNALS: Token = own_token(1);
const FIRST_LISTENER: u32 = 2;

/// The reader's side of one connection.
struct Conn {
    id: ConnId,
    /// `None` once the last event (`Eof` or `Reset`) is published: the reader is done with the
    /// socket, and waits for the worker's notice to free the index.
    stream: Option<Arc<Stream>>,
    peer: SocketAddr,
    /// Whether the `Open` event is published.
    announced: bool,
    /// Whether the connection is in the ready queue.
    queued: bool,
    /// Whether epoll reported the peer's end (RDHUP, HUP or an error): reads then go on to end
    /// of stream, since no further edge will come for it.
    closing: bool,
    /// Whether its last read filled every slot it had: the client streams, and its next turn
    /// starts with a multi-slot `readv`.
    streaming: bool,
}

struct Entry {
    generation: u32,
    conn: Option<Conn>,
}

/// Connections by index. An index is freed only when the worker says it is done with it, and
/// its generation is bumped then.
#[derive(Default)]
struct Table {
    entries: Vec<Entry>,
    free: Vec<u32>,
    live: usize,
}

impl Table {
    fn insert(&mut self, stream: Arc<Stream>, peer: SocketAddr) -> ConnId {
        let index = self.free.pop().unwrap_or_else(|| {
            // The connection cap keeps the table far below `MAX_INDICES`.
            debug_assert!(self.entries.len() < MAX_INDICES);
            self.entries.push(Entry {
                generation: 0,
                conn: None,
            });
            (self.entries.len() - 1) as u32
        });
        let entry = &mut self.entries[index as usize];
        let id = ConnId {
            index,
            generation: entry.generation,
        };
        entry.conn = Some(Conn {
            id,
            stream: Some(stream),
            peer,
            announced: false,
            // Every new connection goes to the ready queue at once.
            queued: true,
            closing: false,
            streaming: false,
        });
        self.live += 1;
        id
    }

    fn get_mut(&mut self, id: ConnId) -> Option<&mut Conn> {
        let entry = self.entries.get_mut(id.index as usize)?;
        if entry.generation != id.generation {
            return None;
        }
        entry.conn.as_mut()
    }

    fn by_index(&mut self, index: u32) -> Option<&mut Conn> {
        self.entries.get_mut(index as usize)?.conn.as_mut()
    }

    /// The worker is done with `index`: free it for a new connection.
    fn release(&mut self, index: u32) {
        let Some(entry) = self.entries.get_mut(index as usize) else {
            return;
        };
        if let Some(conn) = entry.conn.take() {
            debug_assert!(conn.stream.is_none(), "released while still reading");
            entry.generation = entry.generation.wrapping_add(1);
            self.free.push(index);
            self.live -= 1;
        }
    }
}

/// How serving one ready connection ended.
enum Served {
    /// Read to `WouldBlock`, end of stream or an error: wait for the next edge.
    Drained,
    /// The budget ran out with bytes maybe still waiting.
    Budget,
    /// No free slot: try again when the worker releases some.
    RingFull,
    /// The worker paused reading it: wait for its resume notice.
    Paused,
    /// The worker is gone.
    WorkerGone,
}

pub(crate) struct Reader {
    poller: Poller,
    /// An epoll with only the wake-up eventfd and the signal pipe: where the reader sleeps
    /// while it waits for the worker (see [`WORKER_BEHIND`]), deaf to the sockets.
    worker_wait: Poller,
    listeners: Vec<Listener>,
    signals: Option<UnixStream>,
    control: Arc<Control>,
    producer: Producer<Slot>,
    notices: Consumer<u32>,
    gates: Arc<Gates>,
    table: Table,
    ready: VecDeque<u32>,
    max_connections: usize,
    buffer_size: usize,
    retry_accept: bool,
    /// Non-blocking polls since the last one that found an event (see [`IDLE_POLLS`]).
    idle_polls: u32,
    last_reject_warning: Option<Instant>,
    stats: ReaderStats,
}

impl Reader {
    pub(crate) fn new(
        listeners: Vec<Listener>,
        signals: Option<UnixStream>,
        control: Arc<Control>,
        producer: Producer<Slot>,
        notices: Consumer<u32>,
        gates: Arc<Gates>,
        config: &Config,
    ) -> io::Result<Self> {
        let poller = Poller::new()?;
        let worker_wait = Poller::new()?;
        for epoll in [&poller, &worker_wait] {
            // Edge-triggered: every wake is an edge, so the counter need not be read back.
            epoll.add(
                &control.reader_waker,
                WAKE,
                Interest::READABLE | Interest::EDGE,
            )?;
            if let Some(signals) = &signals {
                epoll.add(signals, SIGNALS, Interest::READABLE)?;
            }
        }
        for (n, listener) in (FIRST_LISTENER..).zip(&listeners) {
            poller.add(listener, own_token(n), Interest::READABLE | Interest::EDGE)?;
        }
        Ok(Self {
            poller,
            worker_wait,
            listeners,
            signals,
            control,
            producer,
            notices,
            gates,
            table: Table::default(),
            ready: VecDeque::new(),
            max_connections: config.max_connections,
            buffer_size: config.buffer_size,
            retry_accept: false,
            idle_polls: 0,
            last_reject_warning: None,
            stats: ReaderStats::default(),
        })
    }

    /// Runs until a stop is requested (or the worker is gone), then reads what every
    /// connection already sent and returns; dropping the reader then tells the worker that
    /// nothing more will come.
    pub(crate) fn run(mut self) -> io::Result<ReaderStats> {
        // Created here: an `Events` list belongs to the thread that waits.
        let mut events = Events::with_capacity(1024);
        while !self.control.stop_requested() {
            if self.producer.is_abandoned() {
                self.control.request_stop(StopReason::WorkerGone);
                break;
            }
            if let Err(err) = self.wait(&mut events) {
                // Returning drops the producer: the worker finishes what was published.
                error!("epoll_wait failed in the reader: {err}");
                return Err(err);
            }
            self.take_notices();
            for event in &events {
                self.on_event(event);
            }
            if self.retry_accept {
                self.retry_accept = false;
                for n in 0..self.listeners.len() {
                    self.accept(n);
                }
            }
            self.serve_ready();
            self.control.reader_stats.publish(&self.stats);
        }
        self.drain();
        Ok(self.stats)
    }

    /// One `epoll_wait`: it does not block while there is work in the ready queue and room in
    /// the ring, nor for the first few polls after events (see [`IDLE_POLLS`]); with work but
    /// no room it sleeps until the worker releases slots. With no work and the worker behind
    /// (see [`WORKER_BEHIND`]), the `epoll_wait` comes after a sleep until the worker's next
    /// release.
    fn wait(&mut self, events: &mut Events) -> io::Result<()> {
        let mut timeout = self.retry_accept.then_some(ACCEPT_RETRY);
        let mut sleep = None;
        if !self.ready.is_empty() {
            if self.producer.free_slots() > 0 {
                timeout = Some(Duration::ZERO);
            } else {
                sleep = self.producer.announce_sleep();
                if sleep.is_none() {
                    timeout = Some(Duration::ZERO);
                }
            }
        } else if timeout.is_none() && self.wait_for_worker(events)? {
            // Whatever arrived while the reader slept, in one call.
            timeout = Some(Duration::ZERO);
        }
        if timeout.is_none() && self.idle_polls < IDLE_POLLS {
            self.idle_polls += 1;
            // Lets the client (or the worker) run if it waits for a core: it is the one about
            // to make the next event.
            std::thread::yield_now();
            timeout = Some(Duration::ZERO);
        }
        let result = self.poller.wait(events, timeout);
        drop(sleep);
        if matches!(result, Ok(n) if n > 0) {
            self.idle_polls = 0;
        }
        result.map(drop)
    }

    /// Sleeps until the worker's next release if it has at least [`WORKER_BEHIND`] events to
    /// get through; returns whether it slept. A stop request or a signal ends the sleep too
    /// (the stop handle writes the same eventfd as the ring's hook).
    fn wait_for_worker(&mut self, events: &mut Events) -> io::Result<bool> {
        let behind = self.producer.capacity() - self.producer.free_slots();
        if behind < WORKER_BEHIND {
            return Ok(false);
        }
        let Some(sleep) = self.producer.announce_sleep_until_release() else {
            return Ok(false);
        };
        self.worker_wait.wait(events, None)?;
        drop(sleep);
        Ok(true)
    }

    /// Takes the worker's notices: frees the indices it is done with, and puts resumed
    /// connections back in the ready queue (no edge will report what arrived while paused).
    fn take_notices(&mut self) {
        // Copied out and released before they are acted on: a resume notice's slot must be
        // free by the time `resume_taken` lets the worker send the next one, so that the ring
        // never holds more than two notices per index (a resume and a done).
        let mut words = [0; 64];
        loop {
            let count = match self.notices.try_read_up_to(words.len()) {
                Ok(batch) => {
                    for (word, &notice) in words.iter_mut().zip(batch.iter()) {
                        *word = notice;
                    }
                    batch.len()
                }
                Err(_) => return,
            };
            for &word in &words[..count] {
                match Notice::decode(word) {
                    Notice::Done(index) => self.table.release(index),
                    Notice::Resume(index) => {
                        self.gates.resume_taken(index);
                        if let Some(conn) = self.table.by_index(index)
                            && conn.stream.is_some()
                            && !conn.queued
                        {
                            conn.queued = true;
                            self.ready.push_back(index);
                        }
                    }
                }
            }
        }
    }

    fn on_event(&mut self, event: Event) {
        match event.token() {
            // The stop flag and the ring are looked at every round; the wake-up only ended the
            // wait (and, edge-triggered, needs no reading back).
            WAKE => {}
            SIGNALS => {
                if let Some(signals) = &mut self.signals {
                    let mut buf = [0; 64];
                    while matches!(signals.read(&mut buf), Ok(n) if n > 0) {}
                }
                info!("signal received: stopping");
                self.control.request_stop(StopReason::Signal);
            }
            token => match ConnId::from_token(token) {
                Some(id) => {
                    if let Some(conn) = self.table.get_mut(id)
                        && conn.stream.is_some()
                    {
                        if event.is_read_closed() || event.is_hangup() || event.is_error() {
                            conn.closing = true;
                        }
                        if !conn.queued {
                            conn.queued = true;
                            self.ready.push_back(id.index);
                        }
                    }
                }
                None => {
                    let n = (token.0 >> 32) as u32 - FIRST_LISTENER;
                    self.accept(n as usize);
                }
            },
        }
    }

    /// Accepts everything queued on listener `n`.
    fn accept(&mut self, n: usize) {
        let Self {
            poller,
            listeners,
            table,
            ready,
            stats,
            max_connections,
            last_reject_warning,
            ..
        } = self;
        let Some(listener) = listeners.get_mut(n) else {
            return;
        };
        let result = listener.accept_all(|stream, peer| {
            if table.live >= *max_connections {
                stats.rejected += 1;
                let now = Instant::now();
                if last_reject_warning.is_none_or(|last| now - last >= REJECT_WARNING_INTERVAL) {
                    *last_reject_warning = Some(now);
                    warn!(
                        "connection from {peer} closed: --max-connections {max_connections} reached ({} rejected so far)",
                        stats.rejected
                    );
                }
                return;
            }
            // Replies are small and should leave at once; failing to say so costs latency only.
            let _ = stream.set_nodelay(true);
            let stream = Arc::new(stream);
            let id = table.insert(Arc::clone(&stream), peer);
            let interest = Interest::READABLE | Interest::READ_CLOSED | Interest::EDGE;
            if let Err(err) = poller.add(&*stream, id.token(), interest) {
                warn!("connection from {peer} closed: cannot watch it: {err}");
                if let Some(conn) = table.get_mut(id) {
                    conn.stream = None;
                }
                table.release(id.index);
                return;
            }
            stats.accepted += 1;
            debug!("connection {} from {peer} opened", id.index);
            // Bytes may have arrived before the registration: read at once (`insert` marks
            // the connection as queued).
            ready.push_back(id.index);
        });
        match result {
            Ok(drained) if drained.shed > 0 => {
                stats.shed += drained.shed as u64;
                warn!(
                    "out of file descriptors: closed {} queued connection(s)",
                    drained.shed
                );
            }
            Ok(_) => {}
            Err(err) => {
                warn!("accept failed: {err}; retrying shortly");
                self.retry_accept = true;
            }
        }
    }

    /// Gives each ready connection its turn, in order, until the queue has gone round once
    /// or the ring is full.
    fn serve_ready(&mut self) {
        for _ in 0..self.ready.len() {
            let Some(index) = self.ready.pop_front() else {
                break;
            };
            match self.serve(index, READ_BUDGET, PAUSED) {
                Served::Drained | Served::Paused => {
                    if let Some(conn) = self.table.by_index(index) {
                        conn.queued = false;
                    }
                }
                Served::Budget => self.ready.push_back(index),
                Served::RingFull => {
                    self.ready.push_front(index);
                    break;
                }
                Served::WorkerGone => {
                    self.ready.push_front(index);
                    self.control.request_stop(StopReason::WorkerGone);
                    break;
                }
            }
        }
    }

    /// Reads connection `index` into ring slots, at most `budget` of them, unless the worker
    /// paused it for one of `reasons`; publishes its `Open` first if that is still due.
    fn serve(&mut self, index: u32, budget: usize, reasons: u8) -> Served {
        let Self {
            poller,
            table,
            producer,
            gates,
            stats,
            ..
        } = self;
        let Some(conn) = table.by_index(index) else {
            return Served::Drained;
        };
        let Some(stream) = &conn.stream else {
            return Served::Drained;
        };
        if !conn.announced {
            let mut claim = match producer.try_claim(1) {
                Ok(claim) => claim,
                Err(error) => return claim_failed(error),
            };
            let slot = &mut claim[0];
            slot.set(conn.id, Kind::Open);
            slot.open = Some(Opened {
                stream: Arc::clone(stream),
                peer: conn.peer,
            });
            claim.publish();
            stats.events += 1;
            conn.announced = true;
        }
        let mut last = None;
        let mut slots_left = budget;
        // Whether the last read filled every slot it had: the client sends faster than one
        // slot a read, and the next read takes several.
        let mut filled = conn.streaming;
        while slots_left > 0 {
            if gates.is_paused(index, reasons) {
                return Served::Paused;
            }
            // One slot per read until a read fills its slot: then one `readv` fills as many
            // as the socket has bytes for (the rest go back unpublished), so that a streaming
            // client costs one system call per run of slots, from its next turn on too. Not
            // from the start: in ping-pong a read never fills a slot, and claiming and
            // gathering many costs time.
            let want = if filled {
                slots_left
                    .min(SLOTS_PER_READ)
                    .min(producer.free_slots().max(1))
            } else {
                1
            };
            let mut claim = match producer.try_claim(want) {
                Ok(claim) => claim,
                Err(error) => return claim_failed(error),
            };
            let result = if want == 1 {
                stream.read(&mut claim[0].buf)
            } else {
                let mut bufs: [IoSliceMut<'_>; SLOTS_PER_READ] =
                    std::array::from_fn(|_| IoSliceMut::new(&mut []));
                for (buf, slot) in bufs.iter_mut().zip(claim.iter_mut()) {
                    *buf = IoSliceMut::new(&mut slot.buf);
                }
                stream.read_vectored(&mut bufs[..want])
            };
            match result {
                Ok(0) => {
                    claim[0].set(conn.id, Kind::Eof);
                    claim.publish_first(1);
                    stats.events += 1;
                    last = Some(Kind::Eof);
                    break;
                }
                Ok(n) => {
                    let mut left = n;
                    let mut used = 0;
                    let mut capacity = 0;
                    for slot in claim.iter_mut() {
                        capacity += slot.buf.len();
                        if left == 0 {
                            continue;
                        }
                        slot.set(conn.id, Kind::Data);
                        slot.len = left.min(slot.buf.len());
                        left -= slot.len;
                        used += 1;
                    }
                    claim.publish_first(used);
                    stats.events += used as u64;
                    stats.bytes_in += n as u64;
                    slots_left = slots_left.saturating_sub(used);
                    filled = n == capacity;
                    conn.streaming = filled;
                    // A read that did not fill its slots took everything the socket had, and
                    // bytes that arrive later raise a new edge: the read that would only say
                    // `WouldBlock` is saved (one system call per message in ping-pong). Not when
                    // the peer's end was reported: that edge has been and gone.
                    if !filled && !conn.closing {
                        return Served::Drained;
                    }
                }
                // The claim is dropped unpublished: the next claim reuses the slots.
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                    conn.streaming = false;
                    return Served::Drained;
                }
                Err(err) => {
                    debug!("connection {index} from {}: read failed: {err}", conn.peer);
                    claim[0].set(conn.id, Kind::Reset);
                    claim.publish_first(1);
                    stats.events += 1;
                    last = Some(Kind::Reset);
                    break;
                }
            }
        }
        match last {
            None => Served::Budget,
            Some(kind) => {
                // The last event is out: the reader is done with this socket.
                if let Some(stream) = conn.stream.take() {
                    let _ = poller.delete(&*stream);
                }
                if kind == Kind::Eof {
                    debug!("connection {index} from {}: end of stream", conn.peer);
                }
                Served::Drained
            }
        }
    }

    /// The stop: no more accepting; read what every connection already sent, waiting for
    /// room in the ring as needed, so that the worker answers all of it.
    fn drain(&mut self) {
        for listener in self.listeners.drain(..) {
            let _ = self.poller.delete(&listener);
        }
        for index in 0..self.table.entries.len() as u32 {
            // "What it already sent" is at most what its receive buffer holds: reading that
            // much (and one buffer more) takes all of it, and a client that goes on sending
            // cannot keep the stop waiting.
            let Some(stream) = self.table.by_index(index).and_then(|c| c.stream.as_ref()) else {
                continue;
            };
            let buffered = stream.recv_buffer_size().unwrap_or(DRAIN_FALLBACK);
            let mut reads_left = buffered.div_ceil(self.buffer_size) + 1;
            while reads_left > 0 {
                let budget = reads_left.min(READ_BUDGET);
                // A client paused because it does not take its replies is not read: its input
                // would only add to output it does not take. One paused because the pool ran
                // out is read like the others.
                match self.serve(index, budget, PENDING_FULL) {
                    Served::Drained | Served::Paused => break,
                    Served::WorkerGone => return,
                    Served::Budget => reads_left -= budget,
                    Served::RingFull => {
                        // Waits with the ring's strategy for the worker to release a slot;
                        // the claim is dropped unpublished.
                        if self.producer.claim(1).is_err() {
                            return;
                        }
                    }
                }
            }
        }
    }
}

fn claim_failed(error: TryClaimError) -> Served {
    match error {
        TryClaimError::Full { .. } => Served::RingFull,
        // One slot never exceeds the capacity: only the worker's absence is left.
        _ => Served::WorkerGone,
    }
}
