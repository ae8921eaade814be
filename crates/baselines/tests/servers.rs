//! The built `tokio-server` and `epoll-server` binaries, each run as a process on a free port:
//! the wire protocol (line and chunk framing), many clients at once, a client that reads its
//! replies late, the command line, and SIGTERM/SIGINT ending them with status 0.
//!
//! Every check is written once, as a function of the binary's path, and the `suite!` macro
//! below instantiates all of them for each binary, so a failure names the server.

use poller::{Events, Interest, Poller, Stream, Token};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// The longest any test waits for something that takes milliseconds on loopback.
const PATIENCE: Duration = Duration::from_secs(30);

/// The most rounds any loop runs, whatever the clock says.
const MAX_ROUNDS: usize = 1_000_000;

/// A baseline server running as a child process.
struct Server {
    child: Child,
    stderr: mpsc::Receiver<String>,
    lines: Vec<String>,
    addr: SocketAddr,
}

impl Server {
    /// Starts `binary` with `args` and waits for its `listening on` line.
    fn start(binary: &str, args: &[&str]) -> Self {
        let mut child = Command::new(binary)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn the server");
        let stderr = stderr_lines(child.stderr.take().expect("stderr"));
        let mut server = Self {
            child,
            stderr,
            lines: Vec::new(),
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        };
        let line = server.wait_for_line(|line| line.starts_with("listening on "));
        server.addr = line["listening on ".len()..]
            .parse()
            .unwrap_or_else(|_| panic!("not an address: {line}"));
        assert!(server.addr.ip().is_loopback(), "{line}");
        assert_ne!(server.addr.port(), 0, "{line}");
        server
    }

    /// Starts `binary -q PORT-0` with `args` in front.
    fn quiet(binary: &str, args: &[&str]) -> Self {
        let mut all = args.to_vec();
        all.extend(["-q", "0"]);
        Self::start(binary, &all)
    }

    fn wait_for_line(&mut self, wanted: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + PATIENCE;
        for _ in 0..MAX_ROUNDS {
            if let Some(line) = self.lines.iter().find(|line| wanted(line)) {
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

    /// Sends it a signal by name (`TERM`, `INT`) with `kill`, as `cargo xtask bench` does.
    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name}: {status}");
    }

    /// Waits, bounded, for the process to end; returns its status, stderr lines and stdout.
    fn wait(mut self) -> (ExitStatus, Vec<String>, Vec<u8>) {
        // stderr closes when the process exits: that is the bounded wait.
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

    /// SIGTERM, then the exit status must be 0.
    fn stop(self) {
        self.signal("TERM");
        let (status, lines, _) = self.wait();
        assert_eq!(status.code(), Some(0), "{status}; stderr: {lines:?}");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // A test that failed half-way must not leave a server running.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Forwards stderr lines from a thread; the channel closes when the process closes stderr.
fn stderr_lines(stderr: impl Read + Send + 'static) -> mpsc::Receiver<String> {
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

/// Runs `binary` with `args` to its end (for command lines that must not start a server).
fn run_to_end(binary: &str, args: &[&str]) -> (Option<i32>, String, String) {
    let mut child = Command::new(binary)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let stderr = stderr_lines(child.stderr.take().expect("stderr"));
    let mut lines = Vec::new();
    let deadline = Instant::now() + PATIENCE;
    for _ in 0..MAX_ROUNDS {
        let left = deadline.saturating_duration_since(Instant::now());
        match stderr.recv_timeout(left) {
            Ok(line) => lines.push(line),
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let _ = child.kill();
                panic!("{args:?} did not exit; stderr: {lines:?}");
            }
        }
    }
    let status = child.wait().expect("wait");
    let mut stdout = String::new();
    if let Some(mut out) = child.stdout.take() {
        out.read_to_string(&mut stdout).expect("stdout");
    }
    (status.code(), stdout, lines.join("\n"))
}

/// A client whose reads and writes give up after [`PATIENCE`] instead of hanging the test.
fn connect(addr: SocketAddr) -> TcpStream {
    let client = TcpStream::connect(addr).expect("connect");
    client.set_read_timeout(Some(PATIENCE)).expect("timeout");
    client.set_write_timeout(Some(PATIENCE)).expect("timeout");
    client.set_nodelay(true).expect("nodelay");
    client
}

fn send(client: &mut TcpStream, bytes: &[u8]) {
    client.write_all(bytes).expect("send");
    client.flush().expect("flush");
}

/// Reads exactly `expected.len()` bytes and compares them with `expected`.
fn expect(client: &mut TcpStream, expected: &[u8]) {
    let mut reply = vec![0; expected.len()];
    client.read_exact(&mut reply).expect("reply");
    assert_eq!(
        String::from_utf8_lossy(&reply),
        String::from_utf8_lossy(expected)
    );
}

/// Reads until the server closes its side.
fn read_to_end(client: &mut TcpStream) -> Vec<u8> {
    let mut reply = Vec::new();
    client
        .read_to_end(&mut reply)
        .expect("reply up to end of stream");
    reply
}

/// The whole line-framing reply to `input` followed by end of stream: each line reversed with
/// its terminator (`\n` or `\r\n`) kept, a last unterminated line reversed whole.
fn reversed_lines(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for line in input.split_inclusive(|&b| b == b'\n') {
        let mut line = line.to_vec();
        let body = match &line[..] {
            [.., b'\r', b'\n'] => line.len() - 2,
            [.., b'\n'] => line.len() - 1,
            _ => line.len(),
        };
        line[..body].reverse();
        out.extend_from_slice(&line);
    }
    out
}

/// Printable, non-palindromic lines, different for every `(client, n)`, `len` bytes with `\n`.
fn line(client: usize, n: usize, len: usize) -> Vec<u8> {
    let mut line = format!("c{client}-n{n}-").into_bytes();
    let mut seed = client * 7919 + n * 104_729 + 1;
    while line.len() + 1 < len {
        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        line.push(b'!' + (seed >> 40) as u8 % 90);
    }
    line.push(b'\n');
    line
}

fn several_lines_in_one_write(binary: &str) {
    let server = Server::quiet(binary, &[]);
    let mut client = connect(server.addr);
    let input = b"hello\nworld\n\nab\r\na\rb\n\r\n\r\r\nexit\n";
    send(&mut client, input);
    expect(&mut client, b"olleh\ndlrow\n\nba\r\nb\ra\n\r\n\r\r\ntixe\n");
    // The connection goes on.
    send(&mut client, b"abc\n");
    expect(&mut client, b"cba\n");
    client.shutdown(Shutdown::Write).expect("half-close");
    assert_eq!(read_to_end(&mut client), b"");
    server.stop();
}

fn lines_split_across_writes(binary: &str) {
    let server = Server::quiet(binary, &[]);
    let mut client = connect(server.addr);
    // Each write ends in the middle of a line, and the reply to the line before it proves the
    // server has read that write (one small write arrives as one segment): the next write
    // then really continues a line the server holds.
    send(&mut client, b"abc\nde");
    expect(&mut client, b"cba\n");
    send(&mut client, b"f\nghi\r");
    expect(&mut client, b"fed\n");
    // The `\r` at the end of the last write and this `\n` are one terminator.
    send(&mut client, b"\nj\r");
    expect(&mut client, b"ihg\r\n");
    // Here the held `\r` is data: `j\rk` is the body.
    send(&mut client, b"k\nxy\r");
    expect(&mut client, b"k\rj\n");
    send(&mut client, b"z\r\n");
    expect(&mut client, b"z\ryx\r\n");
    server.stop();
}

fn lines_cut_anywhere(binary: &str) {
    let server = Server::quiet(binary, &[]);
    let mut client = connect(server.addr);
    let mut input = Vec::new();
    for n in 0..2000 {
        let mut line = line(1, n, 1 + n % 97);
        if n % 3 == 0 {
            line.insert(line.len() - 1, b'\r');
        }
        input.extend_from_slice(&line);
    }
    input.extend_from_slice(b"no newline\r");
    let expected = reversed_lines(&input);
    let mut writer = client.try_clone().expect("clone");
    let sender = thread::spawn(move || {
        // Pieces of 1 to 13 bytes, each its own write, so the server's reads end anywhere.
        let mut rest = &input[..];
        let mut size = 1;
        while !rest.is_empty() {
            let (piece, tail) = rest.split_at(size.min(rest.len()));
            writer.write_all(piece).expect("send");
            rest = tail;
            size = size % 13 + 1;
        }
        writer.shutdown(Shutdown::Write).expect("half-close");
    });
    let reply = read_to_end(&mut client);
    sender.join().expect("sender");
    assert_eq!(reply.len(), expected.len());
    assert!(
        reply == expected,
        "the replies differ from the reversed lines"
    );
    server.stop();
}

fn a_final_unterminated_line_is_answered_at_half_close(binary: &str) {
    let server = Server::quiet(binary, &[]);
    for (input, reply) in [
        (&b"abc\ndef\r"[..], &b"cba\n\rfed"[..]),
        (b"abc\n", b"cba\n"),
        (b"xyz", b"zyx"),
        (b"", b""),
    ] {
        let mut client = connect(server.addr);
        send(&mut client, input);
        client.shutdown(Shutdown::Write).expect("half-close");
        // read_to_end returns only at the server's end of stream: it closed its side.
        assert_eq!(
            String::from_utf8_lossy(&read_to_end(&mut client)),
            String::from_utf8_lossy(reply)
        );
    }
    server.stop();
}

fn a_line_too_long_gets_an_error_then_end_of_stream(binary: &str) {
    let server = Server::quiet(binary, &[]);
    let mut client = connect(server.addr);
    let mut input = b"ab\n".to_vec();
    input.resize(input.len() + baselines::MAX_LINE + 100, b'x');
    send(&mut client, &input);
    // No half-close: the server ends the reply by itself.
    let reply = read_to_end(&mut client);
    assert_eq!(
        String::from_utf8_lossy(&reply),
        format!(
            "ba\nerror: line longer than {} bytes\n",
            baselines::MAX_LINE
        )
    );
    // Other clients are served as before.
    let mut other = connect(server.addr);
    send(&mut other, b"fine\n");
    expect(&mut other, b"enif\n");
    drop(client);
    server.stop();
}

fn chunk_framing(binary: &str) {
    let server = Server::quiet(binary, &["--framing", "chunk"]);
    let mut client = connect(server.addr);
    // One small write is one read: each is reversed whole, newlines and all.
    send(&mut client, b"abc\n");
    expect(&mut client, b"\ncba");
    send(&mut client, b"hello\r\nworld");
    expect(&mut client, b"dlrow\n\rolleh");
    send(&mut client, b"x\r");
    expect(&mut client, b"\rx");
    client.shutdown(Shutdown::Write).expect("half-close");
    assert_eq!(read_to_end(&mut client), b"");

    // However the bytes are cut, every byte comes back, and nothing more.
    let mut client = connect(server.addr);
    let input: Vec<u8> = (0..200_000u32).map(|i| b'a' + (i % 26) as u8).collect();
    let mut writer = client.try_clone().expect("clone");
    let sender = thread::spawn(move || {
        writer.write_all(&input).expect("send");
        writer.shutdown(Shutdown::Write).expect("half-close");
        input
    });
    let mut reply = read_to_end(&mut client);
    let mut input = sender.join().expect("sender");
    reply.sort_unstable();
    input.sort_unstable();
    assert!(reply == input, "chunk replies are not the bytes sent");
    server.stop();
}

fn many_concurrent_clients(binary: &str) {
    const CLIENTS: usize = 100;
    const ROUNDS: usize = 20;
    const DEPTH: usize = 4;
    let server = Server::quiet(binary, &[]);
    let addr = server.addr;
    thread::scope(|scope| {
        let clients: Vec<_> = (0..CLIENTS)
            .map(|c| {
                scope.spawn(move || {
                    let mut client = connect(addr);
                    for round in 0..ROUNDS {
                        // A few lines in flight at once, then all their replies.
                        let mut batch = Vec::new();
                        for k in 0..DEPTH {
                            batch.extend(line(c, round * DEPTH + k, 20 + (c + k) % 50));
                        }
                        send(&mut client, &batch);
                        expect(&mut client, &reversed_lines(&batch));
                    }
                    client.shutdown(Shutdown::Write).expect("half-close");
                    assert_eq!(read_to_end(&mut client), b"");
                })
            })
            .collect();
        for client in clients {
            client.join().expect("client");
        }
    });
    server.stop();
}

/// The client sends 16 MiB of lines without reading any reply until its socket takes no more,
/// well past what the socket buffers hold, so the server has output it cannot send (the epoll
/// server keeps up to 1 MiB of it, then stops reading; the tokio server waits in `write_all`).
/// While it is stuck another client is served; then the client reads and every reply arrives,
/// in order.
fn a_client_that_reads_late(binary: &str) {
    const TOTAL: usize = 16 << 20;
    /// How long the socket must refuse to take more before the client counts the server as
    /// stuck. Only how much is pending when the client starts reading depends on it, never
    /// whether the test passes: a slow machine makes the test weaker, not flaky.
    const STUCK: Duration = Duration::from_millis(300);
    const CLIENT: Token = Token(1);

    let server = Server::quiet(binary, &[]);
    let mut input = Vec::with_capacity(TOTAL + 200);
    let mut n = 0;
    while input.len() < TOTAL {
        input.extend(line(7, n, 100));
        n += 1;
    }
    let expected = reversed_lines(&input);

    let client = connect(server.addr);
    client.set_nonblocking(true).expect("nonblocking");
    let client = Stream::from(client);
    let poller = Poller::new().expect("poller");
    poller
        .add(&client, CLIENT, Interest::WRITABLE)
        .expect("register");
    let mut events = Events::with_capacity(4);
    let deadline = Instant::now() + PATIENCE * 2;

    // Write only, until the socket stays full.
    let mut written = 0;
    for _ in 0..MAX_ROUNDS {
        assert!(Instant::now() < deadline, "writing took too long");
        match client.send(&input[written..]) {
            Ok(n) => written += n,
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                if poller.wait(&mut events, Some(STUCK)).expect("wait") == 0 {
                    break;
                }
            }
            Err(error) => panic!("send: {error}"),
        }
        if written == input.len() {
            break;
        }
    }
    assert!(written > 0);

    // The server is stuck on this client; others do not notice.
    let mut other = connect(server.addr);
    send(&mut other, b"still here\n");
    expect(&mut other, b"ereh llits\n");

    // Now read everything, writing the rest as the socket takes it.
    let mut received = 0;
    let mut buf = vec![0; 64 * 1024];
    let mut half_closed = false;
    for _ in 0..MAX_ROUNDS {
        if written == input.len() && !half_closed {
            client.shutdown_write().expect("half-close");
            half_closed = true;
        }
        if received == expected.len() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{received} of {} reply bytes after {written} of {} sent",
            expected.len(),
            input.len()
        );
        let interest = if written < input.len() {
            Interest::READABLE | Interest::WRITABLE
        } else {
            Interest::READABLE
        };
        poller.modify(&client, CLIENT, interest).expect("modify");
        poller
            .wait(&mut events, Some(PATIENCE))
            .expect("wait for the server");
        if written < input.len() {
            match client.send(&input[written..]) {
                Ok(n) => written += n,
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
                Err(error) => panic!("send: {error}"),
            }
        }
        match client.read(&mut buf) {
            Ok(0) => panic!("end of stream after {received} bytes"),
            Ok(n) => {
                assert!(
                    buf[..n] == expected[received..received + n],
                    "reply bytes {received}..{} differ",
                    received + n
                );
                received += n;
            }
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
            Err(error) => panic!("read: {error}"),
        }
    }
    assert_eq!(received, expected.len());
    // After the last reply, the end of stream.
    let mut client = TcpStream::from(client);
    client.set_nonblocking(false).expect("blocking");
    assert_eq!(read_to_end(&mut client), b"");
    server.stop();
}

fn signals_stop_it_with_status_0(binary: &str) {
    for signal in ["TERM", "INT"] {
        let server = Server::quiet(binary, &[]);
        // A connection with an unfinished line must not keep it from stopping.
        let mut client = connect(server.addr);
        send(&mut client, b"ab\ncd");
        expect(&mut client, b"ba\n");
        server.signal(signal);
        let (status, lines, stdout) = server.wait();
        assert_eq!(status.code(), Some(0), "SIG{signal}: {status}; {lines:?}");
        assert!(stdout.is_empty(), "-q printed {stdout:?}");
    }
}

fn received_bytes_go_to_stdout_unless_quiet(binary: &str) {
    let server = Server::start(binary, &["0"]);
    let mut client = connect(server.addr);
    send(&mut client, b"hello\nwor");
    expect(&mut client, b"olleh\n");
    send(&mut client, b"ld\n");
    expect(&mut client, b"dlrow\n");
    server.signal("TERM");
    let (status, lines, stdout) = server.wait();
    assert_eq!(status.code(), Some(0), "{status}; {lines:?}");
    assert_eq!(String::from_utf8_lossy(&stdout), "hello\nworld\n");
}

fn bad_arguments_exit_2_and_a_port_in_use_exits_1(binary: &str) {
    for (args, named) in [
        (&["--framing", "frame", "0"][..], "frame"),
        (&["--bogus", "0"], "--bogus"),
        (&["70000"], "70000"),
        (&[], "<PORT>"),
    ] {
        let (code, stdout, stderr) = run_to_end(binary, args);
        assert_eq!(code, Some(2), "{args:?}: {stderr}");
        assert!(stderr.starts_with("error: "), "{args:?}: {stderr}");
        assert!(stderr.contains(named), "{args:?}: {stderr}");
        assert!(stdout.is_empty(), "{args:?}: {stdout}");
    }
    let (code, stdout, _) = run_to_end(binary, &["--help"]);
    assert_eq!(code, Some(0));
    assert!(stdout.contains("--framing"), "{stdout}");

    let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port().to_string();
    let (code, _, stderr) = run_to_end(binary, &["-q", &port]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.starts_with(&format!("error: cannot listen on 127.0.0.1:{port}: ")),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}

/// Every check above, as one test each, for the binary `$name`.
macro_rules! suite {
    ($module:ident, $name:literal) => {
        mod $module {
            const BINARY: &str = env!(concat!("CARGO_BIN_EXE_", $name));

            #[test]
            fn several_lines_in_one_write() {
                super::several_lines_in_one_write(BINARY);
            }

            #[test]
            fn lines_split_across_writes() {
                super::lines_split_across_writes(BINARY);
            }

            #[test]
            fn lines_cut_anywhere() {
                super::lines_cut_anywhere(BINARY);
            }

            #[test]
            fn a_final_unterminated_line_is_answered_at_half_close() {
                super::a_final_unterminated_line_is_answered_at_half_close(BINARY);
            }

            #[test]
            fn a_line_too_long_gets_an_error_then_end_of_stream() {
                super::a_line_too_long_gets_an_error_then_end_of_stream(BINARY);
            }

            #[test]
            fn chunk_framing() {
                super::chunk_framing(BINARY);
            }

            #[test]
            fn many_concurrent_clients() {
                super::many_concurrent_clients(BINARY);
            }

            #[test]
            fn a_client_that_reads_late() {
                super::a_client_that_reads_late(BINARY);
            }

            #[test]
            fn signals_stop_it_with_status_0() {
                super::signals_stop_it_with_status_0(BINARY);
            }

            #[test]
            fn received_bytes_go_to_stdout_unless_quiet() {
                super::received_bytes_go_to_stdout_unless_quiet(BINARY);
            }

            #[test]
            fn bad_arguments_exit_2_and_a_port_in_use_exits_1() {
                super::bad_arguments_exit_2_and_a_port_in_use_exits_1(BINARY);
            }
        }
    };
}

suite!(tokio_server, "tokio-server");
suite!(epoll_server, "epoll-server");
