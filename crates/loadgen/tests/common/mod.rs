//! Helpers shared by loadgen's tests: our server in process, and small wrong peers on std
//! sockets that loadgen must catch.

// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, JoinHandle};
use std::time::Duration;

/// The longest a peer waits for a byte before it gives up on the connection.
pub(crate) const PATIENCE: Duration = Duration::from_secs(10);

/// The most connections a peer serves, whatever happens.
const MAX_CONNECTIONS: usize = 100_000;

/// The most lines a peer answers on one connection, whatever happens.
const MAX_LINES: usize = 10_000_000;

/// Our server, running in process on port 0.
pub(crate) struct Running {
    addrs: Vec<SocketAddr>,
    stop: server::StopHandle,
    thread: JoinHandle<io::Result<server::Summary>>,
}

impl Running {
    pub(crate) fn start() -> Self {
        let mut config = server::Config::new(0);
        config.quiet = true;
        let server = server::Server::bind(config).expect("bind");
        let addrs = server.local_addrs().to_vec();
        let stop = server.stop_handle();
        let thread = thread::spawn(move || server.run());
        Self {
            addrs,
            stop,
            thread,
        }
    }

    /// The IPv4 address.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addrs[0]
    }

    /// The IPv6 address, where the machine has `::1`.
    pub(crate) fn addr_v6(&self) -> Option<SocketAddr> {
        self.addrs.iter().copied().find(SocketAddr::is_ipv6)
    }

    /// Stops the server and returns its summary.
    pub(crate) fn stop(self) -> server::Summary {
        self.stop.stop();
        self.thread
            .join()
            .expect("server thread")
            .expect("server run")
    }
}

/// A peer on a plain std listener that serves one connection at a time with `serve`, until
/// [`finish`](Self::finish).
pub(crate) struct Peer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

impl Peer {
    pub(crate) fn spawn(serve: fn(TcpStream) -> io::Result<()>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        let thread = thread::spawn(move || {
            for _ in 0..MAX_CONNECTIONS {
                let Ok((stream, _)) = listener.accept() else {
                    continue;
                };
                if stopped.load(Ordering::SeqCst) {
                    break;
                }
                stream.set_read_timeout(Some(PATIENCE)).expect("timeout");
                stream.set_write_timeout(Some(PATIENCE)).expect("timeout");
                // The client going away mid-conversation is what these peers provoke.
                let _ = serve(stream);
            }
        });
        Self { addr, stop, thread }
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops the peer: the flag, then a connection to wake its `accept`.
    pub(crate) fn finish(self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect_timeout(&self.addr, PATIENCE);
        self.thread.join().expect("peer thread");
    }
}

/// Sends back what it receives, unreversed.
pub(crate) fn echo(mut stream: TcpStream) -> io::Result<()> {
    let mut buf = [0u8; 64 * 1024];
    loop {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        stream.write_all(&buf[..n])?;
    }
}

/// The reply a correct server sends for one line (with its `'\n'`).
pub(crate) fn reversed(line: &[u8]) -> Vec<u8> {
    let body = line.strip_suffix(b"\n").unwrap_or(line);
    let mut reply: Vec<u8> = body.iter().rev().copied().collect();
    reply.push(b'\n');
    reply
}

/// Reverses each line correctly, but writes every reply a byte at a time with `TCP_NODELAY`,
/// so they arrive in many pieces.
pub(crate) fn reverse_in_pieces(stream: TcpStream) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    let mut line = Vec::new();
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            return Ok(());
        }
        for byte in reversed(&line) {
            writer.write_all(&[byte])?;
        }
    }
}

/// Reverses the first two lines, then sends the third reply without its last byte and closes.
pub(crate) fn truncate_third_reply(stream: TcpStream) -> io::Result<()> {
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    let mut line = Vec::new();
    for n in 0..3 {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            return Ok(());
        }
        let mut reply = reversed(&line);
        if n == 2 {
            reply.pop();
        }
        writer.write_all(&reply)?;
    }
    // Whatever the client sends next is answered by the end of the stream.
    writer.shutdown(std::net::Shutdown::Write)?;
    Ok(())
}

/// Reverses every line, but leaves one byte out of the third reply and carries on.
pub(crate) fn drop_a_byte(stream: TcpStream) -> io::Result<()> {
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    let mut line = Vec::new();
    for n in 0..MAX_LINES {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            return Ok(());
        }
        let mut reply = reversed(&line);
        if n == 2 {
            reply.remove(0);
        }
        writer.write_all(&reply)?;
    }
    Ok(())
}

/// Reads the whole request stream, then replies to all of it correctly but for the last byte,
/// and closes.
pub(crate) fn all_but_the_last_byte(mut stream: TcpStream) -> io::Result<()> {
    let mut request = Vec::new();
    stream.read_to_end(&mut request)?;
    let mut reply = Vec::with_capacity(request.len());
    for line in request.split_inclusive(|&b| b == b'\n') {
        reply.extend_from_slice(&reversed(line));
    }
    reply.pop();
    stream.write_all(&reply)
}
