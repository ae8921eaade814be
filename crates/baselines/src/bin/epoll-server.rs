//! `epoll-server [--framing line|chunk] [-q] PORT`: the reverse protocol on one thread and one
//! edge-triggered epoll, as a baseline for `cargo xtask bench`.
//!
//! This is the design the real two-thread server must justify itself against, so it is meant to
//! be good, not naive:
//!
//! - one thread does everything: accept (`accept4` until the queue is empty), read, frame,
//!   reverse, write. Its only companion is a thread that sleeps until SIGTERM or SIGINT and
//!   then wakes the loop through an eventfd; the crate has no safe way to handle a signal on
//!   the loop's own thread, and the sleeper costs nothing while it sleeps;
//! - every connection is registered once, for reading and writing, edge-triggered, so the loop
//!   makes no `epoll_ctl` call per message;
//! - one 64 KiB read buffer serves every connection: lines are framed with protocol's
//!   `LineFramer` and reversed in place in that buffer, and the reply is sent from it at once.
//!   Only the start of an unfinished line is copied (into the connection's carry) and only
//!   output the socket does not take is kept (in its pending buffer), so an idle connection
//!   owns no buffer at all;
//! - what the socket does not take is written on the next `EPOLLOUT` edge, behind one
//!   `sendmsg` with the new output; while more than 1 MiB is pending the connection is not read,
//!   so a client that does not read its replies is held back by TCP instead of growing memory;
//! - a read that does not fill the buffer took all the socket had, so the read that would only
//!   say `WouldBlock` is skipped (unless the peer's FIN was reported: that edge has been and
//!   gone), which saves a system call per message in ping-pong;
//! - a connection reads at most 16 buffers per turn and then goes to the back of a ready queue,
//!   so one fast sender cannot starve the others.
//!
//! Wire protocol as the real server's, minus the `exit` command; a line longer than 64 KiB gets
//! `error: line longer than 65536 bytes`, then the write side is shut and the input discarded.

#![forbid(unsafe_code)]

use baselines::{Command, MAX_LINE, UsageError};
use poller::{Event, Events, Interest, Listener, Poller, Stream, Token, Waker};
use protocol::{Framing, LineFramer, LinesEnd};
use std::collections::VecDeque;
use std::io::{self, BufWriter, IoSlice, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::ops::ControlFlow;
use std::process::ExitCode;
use std::sync::{Arc, mpsc};
use std::thread;
use std::time::Duration;

/// The listening socket's token; connection tokens are a generation and an index below it.
const LISTENER: Token = Token(u64::MAX);
/// The eventfd the signal thread wakes.
const WAKE: Token = Token(u64::MAX - 1);

/// The one read buffer: big enough for a bulk sender's whole socket buffer in a few reads.
const READ_SIZE: usize = 64 * 1024;
/// Output kept for a connection before it stops being read (as the real server's default).
const MAX_PENDING: usize = 1024 * 1024;
/// Reads per connection per turn, for fairness (as the real server's reader).
const READ_BUDGET: usize = 16;
/// Events taken per `epoll_wait`.
const EVENTS: usize = 1024;
/// How soon to try `accept4` again after it failed for lack of kernel memory: the failed call
/// may have left connections queued, and an edge-triggered listener would not report them
/// again until another one arrived.
const ACCEPT_RETRY: Duration = Duration::from_millis(10);

fn main() -> ExitCode {
    let options = match baselines::parse_args(std::env::args_os()) {
        Ok(Command::Run(options)) => options,
        Ok(Command::Help) => {
            print!("{}", baselines::usage("epoll-server"));
            return ExitCode::SUCCESS;
        }
        Err(UsageError(message)) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    let waker = match Waker::new() {
        Ok(waker) => Arc::new(waker),
        Err(error) => {
            eprintln!("error: cannot create the eventfd: {error}");
            return ExitCode::from(1);
        }
    };
    // Before the `listening on` line: whoever reads it may send SIGTERM at once, and without a
    // handler that would kill the process instead of stopping it with status 0.
    if let Err(error) = stop_on_signals(Arc::clone(&waker)) {
        eprintln!("error: cannot install the SIGINT/SIGTERM handlers: {error}");
        return ExitCode::from(1);
    }
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, options.port));
    let listener = match Listener::bind(addr) {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!("error: cannot listen on {addr}: {error}");
            return ExitCode::from(1);
        }
    };
    let mut server = match listener
        .local_addr()
        .and_then(|local| Ok((local, Server::new(listener, waker, options.framing)?)))
    {
        Ok((local, server)) => {
            eprintln!("listening on {local}");
            server
        }
        Err(error) => {
            eprintln!("error: cannot start the event loop: {error}");
            return ExitCode::from(1);
        }
    };
    if !options.quiet {
        server.stdout = Some(BufWriter::with_capacity(READ_SIZE, io::stdout()));
    }
    match server.run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: the event loop failed: {error}");
            ExitCode::from(1)
        }
    }
}

/// Starts the thread that waits for SIGTERM or SIGINT and then wakes the loop; returns once
/// the handlers are installed.
///
/// tokio's signal support is the only safe signal handling among this crate's dependencies; a
/// current-thread runtime that does nothing else costs one sleeping thread.
fn stop_on_signals(waker: Arc<Waker>) -> io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};

    let (installed, result) = mpsc::channel();
    thread::Builder::new()
        .name("signals".to_owned())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_io()
                .build()
            {
                Ok(runtime) => runtime,
                Err(error) => {
                    let _ = installed.send(Err(error));
                    return;
                }
            };
            runtime.block_on(async move {
                let (mut terminate, mut interrupt) = match (
                    signal(SignalKind::terminate()),
                    signal(SignalKind::interrupt()),
                ) {
                    (Ok(terminate), Ok(interrupt)) => (terminate, interrupt),
                    (Err(error), _) | (_, Err(error)) => {
                        let _ = installed.send(Err(error));
                        return;
                    }
                };
                let _ = installed.send(Ok(()));
                tokio::select! {
                    _ = terminate.recv() => {}
                    _ = interrupt.recv() => {}
                }
                if let Err(error) = waker.wake() {
                    // Nothing else can tell the loop; a second signal would not help either.
                    eprintln!("error: cannot wake the event loop to stop: {error}");
                }
            });
        })?;
    result.recv().unwrap_or_else(|_| {
        Err(io::Error::other(
            "the signal thread ended before installing its handlers",
        ))
    })
}

/// The event loop and everything it owns.
struct Server {
    poller: Poller,
    listener: Listener,
    /// Kept so the eventfd stays open as long as it is registered.
    _waker: Arc<Waker>,
    table: Table,
    /// Connections whose read budget ran out with bytes perhaps still waiting: edge-triggered,
    /// nothing will remind the loop of them, so it keeps the list itself.
    ready: VecDeque<u32>,
    buf: Vec<u8>,
    framing: Framing,
    /// Received bytes are copied here unless `-q`; flushed once per round.
    stdout: Option<BufWriter<io::Stdout>>,
    /// `accept4` failed with connections perhaps still queued: try again soon.
    accept_again: bool,
}

/// What a connection's turn ended with.
enum Turn {
    /// Nothing more to do until its next event.
    Wait,
    /// The read budget ran out: maybe more to read.
    Budget,
    /// Finished (all input read, all output sent) or failed: close it.
    Done,
}

impl Server {
    fn new(listener: Listener, waker: Arc<Waker>, framing: Framing) -> io::Result<Self> {
        let poller = Poller::new()?;
        poller.add(&listener, LISTENER, Interest::READABLE | Interest::EDGE)?;
        poller.add(&*waker, WAKE, Interest::READABLE)?;
        Ok(Self {
            poller,
            listener,
            _waker: waker,
            table: Table::default(),
            ready: VecDeque::new(),
            buf: vec![0; READ_SIZE],
            framing,
            stdout: None,
            accept_again: false,
        })
    }

    /// Serves until the signal thread wakes it.
    fn run(&mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(EVENTS);
        loop {
            let timeout = if !self.ready.is_empty() {
                Some(Duration::ZERO)
            } else if self.accept_again {
                Some(ACCEPT_RETRY)
            } else {
                None
            };
            self.poller.wait(&mut events, timeout)?;
            let mut stop = false;
            for event in events.iter() {
                match event.token() {
                    LISTENER => self.accept(),
                    WAKE => stop = true,
                    token => self.on_event(token, event),
                }
            }
            if self.accept_again {
                self.accept();
            }
            // Each connection left over from earlier rounds gets one more turn, in order;
            // those that use up their budget again go to the back.
            for _ in 0..self.ready.len() {
                let Some(index) = self.ready.pop_front() else {
                    break;
                };
                if let Some(conn) = self.table.by_index(index) {
                    conn.queued = false;
                    self.drive(index);
                }
            }
            if let Some(stdout) = &mut self.stdout {
                // A closed stdout must not stop the serving.
                let _ = stdout.flush();
            }
            if stop {
                return Ok(());
            }
        }
    }

    /// Accepts every queued connection and registers it for everything, edge-triggered.
    fn accept(&mut self) {
        self.accept_again = false;
        let Self {
            poller,
            listener,
            table,
            ..
        } = self;
        let result = listener.accept_all(|stream, _peer| {
            // Replies are small and must leave at once; failing to say so costs latency only.
            let _ = stream.set_nodelay(true);
            let (index, token) = table.insert(Conn::new(stream));
            let interest =
                Interest::READABLE | Interest::WRITABLE | Interest::READ_CLOSED | Interest::EDGE;
            let added = match table.by_index(index) {
                Some(conn) => poller.add(&conn.stream, token, interest),
                None => Ok(()),
            };
            if let Err(error) = added {
                eprintln!("warning: connection closed: cannot watch it: {error}");
                table.remove(index);
            }
        });
        match result {
            Ok(drained) if drained.shed > 0 => eprintln!(
                "warning: out of descriptors: {} connections closed at once",
                drained.shed
            ),
            Ok(_) => {}
            Err(error) => {
                eprintln!("warning: accept failed: {error}; retrying shortly");
                self.accept_again = true;
            }
        }
    }

    fn on_event(&mut self, token: Token, event: Event) {
        let Some((index, conn)) = self.table.by_token(token) else {
            // A connection closed earlier in this round; its slot may be someone else's now,
            // which the generation in the token tells apart.
            return;
        };
        if event.is_read_closed() || event.is_hangup() || event.is_error() {
            conn.peer_closed = true;
        }
        if event.is_writable() || event.is_hangup() || event.is_error() {
            conn.write_blocked = false;
        }
        self.drive(index);
    }

    /// Gives connection `index` a turn and acts on how it ended.
    fn drive(&mut self, index: u32) {
        let Self {
            table,
            ready,
            buf,
            framing,
            stdout,
            ..
        } = self;
        let Some(conn) = table.by_index(index) else {
            return;
        };
        match conn.turn(buf, *framing, stdout.as_mut()) {
            Ok(Turn::Wait) => {}
            Ok(Turn::Budget) => {
                if !conn.queued {
                    conn.queued = true;
                    ready.push_back(index);
                }
            }
            // A failed read or send means the client is gone (reset, broken pipe): there is
            // nobody left to tell, so the connection just ends.
            Ok(Turn::Done) | Err(_) => table.remove(index),
        }
    }
}

/// One client.
struct Conn {
    stream: Stream,
    framer: LineFramer,
    /// The start of an unfinished line (line framing), as the framer counts it.
    carry: Vec<u8>,
    /// Output the socket has not taken yet: `out[sent..]`.
    out: Vec<u8>,
    sent: usize,
    /// The last send was short: wait for `EPOLLOUT` before sending again.
    write_blocked: bool,
    /// The peer's FIN (or a reset) was reported: read to the end, short reads included.
    peer_closed: bool,
    /// A read returned end of stream.
    eof: bool,
    /// A line was too long: the error is queued, the rest of the input is thrown away.
    discarding: bool,
    /// The write side was shut after the error line.
    write_shut: bool,
    /// In the server's ready queue.
    queued: bool,
}

impl Conn {
    fn new(stream: Stream) -> Self {
        Self {
            stream,
            framer: LineFramer::new(MAX_LINE),
            carry: Vec::new(),
            out: Vec::new(),
            sent: 0,
            write_blocked: false,
            peer_closed: false,
            eof: false,
            discarding: false,
            write_shut: false,
            queued: false,
        }
    }

    fn pending(&self) -> usize {
        self.out.len() - self.sent
    }

    /// Sends what is pending if the socket may take it, then reads and answers until the socket
    /// is drained, the budget is used, or too much output is pending.
    fn turn(
        &mut self,
        buf: &mut [u8],
        framing: Framing,
        mut stdout: Option<&mut BufWriter<io::Stdout>>,
    ) -> io::Result<Turn> {
        self.flush()?;
        let mut turn = Turn::Wait;
        if !self.eof {
            turn = Turn::Budget;
            for _ in 0..READ_BUDGET {
                if self.pending() > MAX_PENDING {
                    // Paused: the `EPOLLOUT` that drains the output starts the next turn.
                    turn = Turn::Wait;
                    break;
                }
                match self.stream.read(buf) {
                    Ok(0) => {
                        self.end_of_input(framing)?;
                        turn = Turn::Wait;
                        break;
                    }
                    Ok(n) => {
                        if let Some(stdout) = stdout.as_mut() {
                            let _ = stdout.write_all(&buf[..n]);
                        }
                        self.received(&mut buf[..n], framing)?;
                        // A short read took everything; bytes that come later raise a new edge.
                        if n < buf.len() && !self.peer_closed {
                            turn = Turn::Wait;
                            break;
                        }
                    }
                    Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                        turn = Turn::Wait;
                        break;
                    }
                    Err(error) => return Err(error),
                }
            }
        }
        if self.pending() == 0 {
            if self.eof {
                return Ok(Turn::Done);
            }
            if self.discarding && !self.write_shut {
                // The error line is out: FIN, as the real server does, and keep discarding
                // input until the client closes, so it sees no reset.
                self.stream.shutdown_write()?;
                self.write_shut = true;
            }
        }
        Ok(turn)
    }

    fn received(&mut self, chunk: &mut [u8], framing: Framing) -> io::Result<()> {
        if self.discarding {
            return Ok(());
        }
        if framing == Framing::Chunk {
            chunk.reverse();
            return self.send(chunk);
        }
        let Self {
            framer, carry, out, ..
        } = self;
        // Lines reversed in place in `chunk[whole]`; a line begun in an earlier read is
        // assembled behind the pending output instead.
        let mut whole = 0..0;
        let end = framer.decode_lines(chunk, |chunk, line| {
            if carry.is_empty() {
                chunk[line.body.clone()].reverse();
            } else {
                out.extend(chunk[line.body.clone()].iter().rev());
                out.extend(carry[..line.carried].iter().rev());
                out.extend_from_slice(line.terminator.as_bytes());
                carry.clear();
                whole.start = line.end;
            }
            whole.end = line.end;
            ControlFlow::Continue(())
        });
        self.send(&chunk[whole])?;
        match end {
            Ok(LinesEnd::Kept { from }) => self.carry.extend_from_slice(&chunk[from..]),
            // Only a callback that breaks stops the framer, and this one never does.
            Ok(LinesEnd::Stopped { .. }) => {}
            Err(error) => {
                self.out
                    .extend_from_slice(format!("error: {error}\n").as_bytes());
                self.carry = Vec::new();
                self.discarding = true;
                self.flush()?;
            }
        }
        Ok(())
    }

    /// The client's end of stream: a last line without terminator is answered now.
    fn end_of_input(&mut self, framing: Framing) -> io::Result<()> {
        self.eof = true;
        if self.discarding || framing == Framing::Chunk {
            return Ok(());
        }
        match self.framer.finish() {
            Ok(Some(last)) => {
                let mut line = std::mem::take(&mut self.carry);
                line.truncate(last.len);
                line.reverse();
                self.send(&line)
            }
            Ok(None) => Ok(()),
            Err(error) => {
                self.out
                    .extend_from_slice(format!("error: {error}\n").as_bytes());
                self.flush()
            }
        }
    }

    /// Sends what is pending, if the socket may take it.
    fn flush(&mut self) -> io::Result<()> {
        if self.pending() > 0 && !self.write_blocked {
            self.send(&[])
        } else {
            Ok(())
        }
    }

    /// Sends `data` behind what is pending, in one system call, and keeps what the socket does
    /// not take.
    fn send(&mut self, data: &[u8]) -> io::Result<()> {
        if self.write_blocked {
            self.out.extend_from_slice(data);
            return Ok(());
        }
        let queued = &self.out[self.sent..];
        let total = queued.len() + data.len();
        if total == 0 {
            return Ok(());
        }
        let result = if queued.is_empty() {
            self.stream.send(data)
        } else if data.is_empty() {
            self.stream.send(queued)
        } else {
            self.stream
                .send_vectored(&[IoSlice::new(queued), IoSlice::new(data)])
        };
        let taken = match result {
            Ok(taken) => taken,
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => 0,
            Err(error) => return Err(error),
        };
        // A short send filled the socket's buffer, so the kernel will report `EPOLLOUT` when
        // room comes back; until then sending again would only fail.
        self.write_blocked = taken < total;
        let queued = queued.len();
        if taken >= queued {
            self.out.clear();
            self.sent = 0;
            self.out.extend_from_slice(&data[taken - queued..]);
        } else {
            self.sent += taken;
            self.out.extend_from_slice(data);
            // Drop the sent front once it is half the buffer: each byte is moved at most once
            // on average, and the buffer stays within twice what is pending.
            if self.sent >= self.out.len() / 2 {
                self.out.drain(..self.sent);
                self.sent = 0;
            }
        }
        Ok(())
    }
}

/// The connections, by index; an index is reused after its connection closes, with the next
/// generation, and a token carries both so an event can never reach the wrong connection.
#[derive(Default)]
struct Table {
    slots: Vec<Slot>,
    free: Vec<u32>,
}

#[derive(Default)]
struct Slot {
    generation: u32,
    conn: Option<Conn>,
}

impl Table {
    fn insert(&mut self, conn: Conn) -> (u32, Token) {
        let index = match self.free.pop() {
            Some(index) => index,
            None => {
                // Connections are bounded by the descriptor limit, so the index fits in 32
                // bits and never reaches `u32::MAX - 1`, which only the fixed tokens use.
                let index = self.slots.len() as u32;
                self.slots.push(Slot::default());
                index
            }
        };
        let slot = &mut self.slots[index as usize];
        slot.conn = Some(conn);
        let token = Token(u64::from(slot.generation) << 32 | u64::from(index));
        (index, token)
    }

    fn by_index(&mut self, index: u32) -> Option<&mut Conn> {
        self.slots.get_mut(index as usize)?.conn.as_mut()
    }

    fn by_token(&mut self, token: Token) -> Option<(u32, &mut Conn)> {
        let index = (token.0 & u64::from(u32::MAX)) as u32;
        let generation = (token.0 >> 32) as u32;
        let slot = self.slots.get_mut(index as usize)?;
        if slot.generation != generation {
            return None;
        }
        Some((index, slot.conn.as_mut()?))
    }

    /// Closes the connection (dropping the socket takes it out of the epoll set too).
    fn remove(&mut self, index: u32) {
        if let Some(slot) = self.slots.get_mut(index as usize)
            && slot.conn.take().is_some()
        {
            slot.generation = slot.generation.wrapping_add(1);
            self.free.push(index);
        }
    }
}
