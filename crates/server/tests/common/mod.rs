//! Helpers shared by the server's tests: a server run in process or as the built binary, and
//! clients that never wait longer than [`PATIENCE`].

// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

use rustix::process::{Pid, Signal, kill_process};
use server::{Config, Server, StopHandle, Summary};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, ChildStderr, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// The longest any test waits for something that takes milliseconds on loopback.
pub(crate) const PATIENCE: Duration = Duration::from_secs(20);

/// The most rounds any polling loop in the tests runs, whatever the clock says.
pub(crate) const MAX_ROUNDS: usize = 100_000;

/// A configuration for tests: port 0, nothing printed to stdout.
pub(crate) fn config() -> Config {
    let mut config = Config::new(0);
    config.quiet = true;
    config
}

/// A server running in process, on a thread of its own (the reader) plus its worker.
pub(crate) struct Running {
    pub(crate) addrs: Vec<SocketAddr>,
    stop: StopHandle,
    result: mpsc::Receiver<io::Result<Summary>>,
}

impl Running {
    pub(crate) fn start(config: Config) -> Self {
        let server = Server::bind(config).expect("bind");
        let addrs = server.local_addrs().to_vec();
        let stop = server.stop_handle();
        let (sender, result) = mpsc::channel();
        thread::spawn(move || {
            // The test may have given up on the result already: nobody to tell then.
            let _ = sender.send(server.run());
        });
        Self {
            addrs,
            stop,
            result,
        }
    }

    /// The IPv4 loopback address it listens on.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addrs[0]
    }

    /// Waits for the server to stop by itself (an exit line) and returns its summary.
    pub(crate) fn finished(self) -> Summary {
        self.result
            .recv_timeout(PATIENCE)
            .expect("the server did not stop")
            .expect("the server failed")
    }

    /// Whether the server is still running (has not returned).
    pub(crate) fn is_running(&self) -> bool {
        matches!(self.result.try_recv(), Err(mpsc::TryRecvError::Empty))
    }

    /// Stops the server with its handle and returns its summary.
    pub(crate) fn stop(self) -> Summary {
        self.stop.stop();
        self.finished()
    }
}

/// A client with read and write timeouts, so that a missing reply fails the test instead of
/// hanging it.
pub(crate) fn connect(addr: SocketAddr) -> TcpStream {
    let client = TcpStream::connect(addr).expect("connect");
    client.set_read_timeout(Some(PATIENCE)).expect("timeout");
    client.set_write_timeout(Some(PATIENCE)).expect("timeout");
    client.set_nodelay(true).expect("nodelay");
    client
}

/// Reads exactly `n` bytes.
pub(crate) fn read_n(client: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut reply = vec![0; n];
    client.read_exact(&mut reply).expect("reply");
    reply
}

/// Reads until the server closes its side.
pub(crate) fn read_to_end(client: &mut TcpStream) -> Vec<u8> {
    let mut reply = Vec::new();
    client
        .read_to_end(&mut reply)
        .expect("reply up to end of stream");
    reply
}

/// Sends `request`, half-closes, and returns everything the server sends back.
pub(crate) fn exchange(addr: SocketAddr, request: &[u8]) -> Vec<u8> {
    let mut client = connect(addr);
    client.write_all(request).expect("send");
    client
        .shutdown(std::net::Shutdown::Write)
        .expect("half-close");
    read_to_end(&mut client)
}

/// What line framing answers: every line reversed, its terminator kept (`\r\n` or `\n`), and a
/// last unterminated line reversed whole.
pub(crate) fn reversed_lines(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for line in input.split_inclusive(|&b| b == b'\n') {
        let (body, terminator): (&[u8], &[u8]) = if let Some(body) = line.strip_suffix(b"\r\n") {
            (body, b"\r\n")
        } else if let Some(body) = line.strip_suffix(b"\n") {
            (body, b"\n")
        } else {
            (line, b"")
        };
        out.extend(body.iter().rev());
        out.extend_from_slice(terminator);
    }
    out
}

/// The built `server` binary, run with `args`; stdout and stderr are kept.
pub(crate) struct Binary {
    child: Child,
    stderr: mpsc::Receiver<String>,
    pub(crate) lines: Vec<String>,
}

impl Binary {
    pub(crate) fn spawn(args: &[&str]) -> Self {
        Self::spawn_logging(args, "info")
    }

    /// As [`spawn`](Self::spawn), with `RUST_LOG` set to `log`.
    pub(crate) fn spawn_logging(args: &[&str], log: &str) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_server"))
            .args(args)
            .env("RUST_LOG", log)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn the server binary");
        let stderr = child.stderr.take().expect("stderr");
        Self {
            child,
            stderr: stderr_lines(stderr),
            lines: Vec::new(),
        }
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends it `signal` (SIGTERM stops it gracefully).
    pub(crate) fn signal(&self, signal: Signal) {
        let pid = Pid::from_raw(i32::try_from(self.pid()).expect("pid")).expect("pid");
        kill_process(pid, signal).expect("kill");
    }

    /// Waits for a stderr line that satisfies `wanted`; returns it.
    pub(crate) fn wait_for_line(&mut self, wanted: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + PATIENCE;
        for _ in 0..MAX_ROUNDS {
            if let Some(line) = self.lines.iter().find(|l| wanted(l)) {
                return line.clone();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stderr.recv_timeout(left) {
                Ok(line) => self.lines.push(line),
                Err(_) => break,
            }
        }
        panic!("no such line on stderr; got {:?}", self.lines);
    }

    /// The addresses from the `listening on` lines (waits for the first one).
    pub(crate) fn listening(&mut self) -> SocketAddr {
        let line = self.wait_for_line(|l| l.starts_with("listening on 127.0.0.1:"));
        line["listening on ".len()..].parse().expect("address")
    }

    /// Stops it with SIGTERM, checks that it exits with status 0, and returns its `summary:`
    /// line.
    pub(crate) fn terminate(self) -> String {
        self.signal(Signal::TERM);
        let (status, lines, _) = self.wait();
        assert_eq!(status.code(), Some(0), "{lines:?}");
        let summary = lines.iter().find(|l| l.starts_with("summary: ")).cloned();
        summary.unwrap_or_else(|| panic!("no summary line: {lines:?}"))
    }

    /// Waits for the process to end and returns its status, every stderr line and stdout.
    pub(crate) fn wait(mut self) -> (ExitStatus, Vec<String>, Vec<u8>) {
        // The stderr pipe closes when the process exits: wait for that, bounded.
        let deadline = Instant::now() + PATIENCE;
        for _ in 0..MAX_ROUNDS {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stderr.recv_timeout(left) {
                Ok(line) => self.lines.push(line),
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    panic!("the server did not exit; stderr: {:?}", self.lines)
                }
            }
        }
        let status = self.child.wait().expect("wait");
        let mut stdout = Vec::new();
        if let Some(mut out) = self.child.stdout.take() {
            out.read_to_end(&mut stdout).expect("stdout");
        }
        (status, std::mem::take(&mut self.lines), stdout)
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        // A test that failed half-way must not leave a server running.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Forwards stderr lines from a thread; the channel closes when the process closes stderr.
fn stderr_lines(stderr: ChildStderr) -> mpsc::Receiver<String> {
    let (sender, receiver) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if sender.send(line).is_err() {
                break;
            }
        }
    });
    receiver
}

/// Sends `bytes` in the given pieces, flushing each.
pub(crate) fn send_pieces(client: &mut TcpStream, pieces: &[&[u8]]) {
    for piece in pieces {
        client.write_all(piece).expect("send");
        client.flush().expect("flush");
    }
}

/// A field of `/proc/<pid>/status` counted in KiB (`VmRSS`, `VmData`), or why it cannot be read.
pub(crate) fn try_status_kib(pid: u32, field: &str) -> Result<u64, String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|e| format!("server {pid} is gone? /proc/{pid}/status: {e}"))?;
    // `VmRSS:	    1234 kB`
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .ok_or_else(|| format!("no {field} in /proc/{pid}/status"))
}

/// As [`try_status_kib`], failing the test if the field cannot be read.
pub(crate) fn status_kib(pid: u32, field: &str) -> u64 {
    try_status_kib(pid, field).unwrap_or_else(|e| panic!("{e}"))
}

/// Joins a test thread, passing its panic on as it was.
pub(crate) fn join<T>(thread: JoinHandle<T>) -> T {
    thread
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

/// Frames with these payloads, one after the other.
pub(crate) fn frames(payloads: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for payload in payloads {
        out.extend_from_slice(&protocol::frame_header(payload.len() as u32));
        out.extend_from_slice(payload);
    }
    out
}

/// What `frame` framing answers to [`frames`]`(payloads)`.
pub(crate) fn reversed_frames(payloads: &[&[u8]]) -> Vec<u8> {
    let reversed: Vec<Vec<u8>> = payloads
        .iter()
        .map(|p| p.iter().rev().copied().collect())
        .collect();
    frames(&reversed.iter().map(Vec::as_slice).collect::<Vec<_>>())
}

/// One frame with `payload`.
pub(crate) fn frame(payload: &[u8]) -> Vec<u8> {
    frames(&[payload])
}
