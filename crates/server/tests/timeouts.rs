//! Idle timeouts: a connection that makes no progress in either direction for
//! `--idle-timeout` is closed, whether its client is silent, never reads its replies, or
//! announces a frame it never finishes; clients that keep talking are not closed.

mod common;

use common::{
    Binary, MAX_ROUNDS, PATIENCE, Running, config, connect, frame, join, read_n, reversed_lines,
    status_kib,
};
use protocol::frame_header;
use rustix::net::sockopt;
use rustix::process::Signal;
use server::Config;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

/// The idle timeout every test here runs with.
const IDLE: Duration = Duration::from_secs(1);

/// How soon after its last progress an idle connection must be closed: the timeout, plus
/// room for however coarsely the server checks it and for a noisy machine.
const CLOSED_WITHIN: Duration = Duration::from_secs(3);

fn idle_config() -> Config {
    let mut config = config();
    config.idle_timeout = Some(IDLE);
    config
}

/// Waits, until `deadline` at most and without reading any reply, for the server to close
/// `client`: end of stream or a reset. Returns whether it did.
fn closed_by(client: &mut TcpStream, deadline: Instant) -> bool {
    let mut byte = [0; 1];
    // A read interrupted by a signal is tried again; anything else ends the loop.
    for _ in 0..MAX_ROUNDS {
        let left = deadline.saturating_duration_since(Instant::now());
        // A zero timeout would mean "no timeout" to std.
        client
            .set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .unwrap();
        match client.read(&mut byte) {
            Ok(0) => return true,
            Ok(_) => panic!("a reply nobody asked for: {byte:?}"),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return true,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return false;
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => panic!("waiting for the close: {e}"),
        }
    }
    false
}

/// One round trip of `client`'s line, checked.
fn round_trip(client: &mut TcpStream, line: &str) {
    client.write_all(line.as_bytes()).expect("send");
    assert_eq!(
        read_n(client, line.len()),
        reversed_lines(line.as_bytes()),
        "reply to {line:?}"
    );
}

/// A client that connects and says nothing is closed after the timeout; one that sends a
/// line every 300 ms for three times as long gets every reply and stays open.
#[test]
fn a_silent_client_is_closed_and_a_talking_one_is_not() {
    let server = Running::start(idle_config());
    let addr = server.addr();
    let silent = thread::spawn(move || {
        let mut client = connect(addr);
        let start = Instant::now();
        let closed = closed_by(&mut client, start + CLOSED_WITHIN);
        (closed, start.elapsed())
    });
    let mut talker = connect(addr);
    for round in 0..10 {
        round_trip(&mut talker, &format!("still talking, round {round}\n"));
        // Pacing on purpose: well inside the timeout, and together three times as long.
        thread::sleep(Duration::from_millis(300));
    }
    let (closed, after) = join(silent);
    assert!(
        closed,
        "the silent client was not closed within {CLOSED_WITHIN:?}"
    );
    assert!(
        after > IDLE.mul_f64(0.9),
        "the silent client was closed after only {after:?}, before the timeout"
    );
    // Past three timeouts, the talker is still served.
    round_trip(&mut talker, "last words\n");
    drop(talker);
    let summary = server.stop();
    assert_eq!(summary.timed_out, 1, "{summary}");
}

/// What the client that never reads saw: how far it got and how it ended.
struct Stalled {
    sent: u64,
    /// When the socket last took bytes of the 8 MiB.
    last_progress: Instant,
    /// When a write failed, and how; `None` if none did within the patience given.
    closed: Option<(Instant, ErrorKind)>,
}

/// Sends `total` bytes of lines and reads nothing; once they are all sent, keeps probing
/// with one byte at a time, so that a close is seen however much the kernel buffered.
/// Returns once a write fails, or 5 s after the last progress.
fn send_without_reading(mut client: TcpStream, total: u64) -> Stalled {
    const PIECE: &[u8] = b"a line whose reply is never read, by a client that only writes\n";
    let give_up = Duration::from_secs(5);
    // Short write timeouts so that the clock is checked while the socket is full.
    client
        .set_write_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let data = PIECE.repeat(1024);
    let mut stalled = Stalled {
        sent: 0,
        last_progress: Instant::now(),
        closed: None,
    };
    for _ in 0..MAX_ROUNDS {
        let now = Instant::now();
        if now.duration_since(stalled.last_progress) > give_up {
            break;
        }
        let probing = stalled.sent >= total;
        let bytes = if probing {
            // Pacing the probes on purpose: they are only there to meet the close.
            thread::sleep(Duration::from_millis(50));
            &b"x"[..]
        } else {
            let at = (stalled.sent % data.len() as u64) as usize;
            let left = usize::try_from(total - stalled.sent).unwrap_or(usize::MAX);
            &data[at..data.len().min(at + left)]
        };
        match client.write(bytes) {
            Ok(n) if !probing => {
                stalled.sent += n as u64;
                stalled.last_progress = Instant::now();
            }
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) => {}
            Err(e) => {
                stalled.closed = Some((Instant::now(), e.kind()));
                break;
            }
        }
    }
    stalled
}

/// A client that sends 8 MiB and never reads: with `--max-pending 65536` the server stops
/// reading it, nothing moves either way, and the timeout closes it (its writes fail), while
/// another client is served all along.
#[test]
fn a_client_that_never_reads_is_closed_once_stalled_and_others_are_served() {
    const TOTAL: u64 = 8 << 20;
    let mut config = idle_config();
    config.max_pending = 65536;
    let server = Running::start(config);
    let stuck = connect(server.addr());
    // Small buffers on the client's side, so that its writes stall soon after the server
    // stops reading.
    sockopt::set_socket_recv_buffer_size(&stuck, 64 * 1024).unwrap();
    sockopt::set_socket_send_buffer_size(&stuck, 64 * 1024).unwrap();
    let writer = thread::spawn(move || send_without_reading(stuck, TOTAL));

    let mut other = connect(server.addr());
    let deadline = Instant::now() + PATIENCE;
    let mut rounds = 0;
    while !writer.is_finished() && Instant::now() < deadline && rounds < MAX_ROUNDS {
        round_trip(&mut other, &format!("served meanwhile, round {rounds}\n"));
        rounds += 1;
        // Pacing on purpose: a client that talks now and then.
        thread::sleep(Duration::from_millis(100));
    }
    let stalled = join(writer);
    let Some((closed_at, how)) = stalled.closed else {
        panic!(
            "the client that never reads was not closed: it sent {} of {TOTAL} bytes, the \
             last of them 5 s before it gave up",
            stalled.sent
        );
    };
    let after = closed_at.duration_since(stalled.last_progress);
    println!(
        "the client that never reads sent {} bytes; closed ({how:?}) {after:?} after its last \
         progress; {rounds} round trips for the other client meanwhile",
        stalled.sent
    );
    assert!(
        matches!(how, ErrorKind::ConnectionReset | ErrorKind::BrokenPipe),
        "the write failed with {how:?}"
    );
    assert!(
        after < CLOSED_WITHIN,
        "closed {after:?} after the last progress"
    );
    assert!(rounds > 0, "the other client was never served");
    round_trip(&mut other, "still served\n");
    drop(other);
    let summary = server.stop();
    assert_eq!(summary.timed_out, 1, "{summary}");
    assert!(
        summary.pauses >= 1,
        "the client was never paused: {summary}"
    );
}

/// Frame slowloris: 100 clients each announce a 1 MiB frame, send 1000 bytes of it and go
/// silent. The server must not take the announced size up front for each, and must close
/// them all once the timeout passes; then it serves a new client.
#[test]
fn unfinished_frames_cost_what_arrived_and_are_closed() {
    const CLIENTS: usize = 100;
    const MIB_KIB: u64 = 1024;
    let mut server = Binary::spawn(&["-q", "--framing", "frame", "--idle-timeout", "1", "0"]);
    let addr = server.listening();
    let pid = server.pid();
    // A first exchange, so that what serving any connection costs is in the baseline.
    let mut warm = connect(addr);
    warm.write_all(&frame(b"warm up")).unwrap();
    assert_eq!(read_n(&mut warm, 11), frame(b"pu mraw"));
    drop(warm);
    // RSS as asked; VmData too, because a buffer reserved but not yet written (a big
    // `Vec::with_capacity`, or zeroed pages from the kernel) is address space, not RSS.
    let (rss_before, data_before) = (status_kib(pid, "VmRSS"), status_kib(pid, "VmData"));

    let mut start = frame_header(1 << 20).to_vec();
    start.extend((0..1000u32).map(|i| b'a' + (i % 26) as u8));
    let mut clients: Vec<(TcpStream, Instant)> = (0..CLIENTS)
        .map(|_| {
            let mut client = connect(addr);
            client.write_all(&start).unwrap();
            (client, Instant::now())
        })
        .collect();
    // A measurement window, not synchronisation: the server has the bytes within
    // milliseconds, and keeps the connections for the timeout.
    let (mut rss, mut data) = (rss_before, data_before);
    let window = Instant::now() + IDLE.mul_f64(0.8);
    for _ in 0..MAX_ROUNDS {
        rss = rss.max(status_kib(pid, "VmRSS"));
        data = data.max(status_kib(pid, "VmData"));
        if Instant::now() > window {
            break;
        }
        thread::sleep(Duration::from_millis(20));
    }
    let (rss_growth, data_growth) = (rss - rss_before, data - data_before);
    println!(
        "{CLIENTS} unfinished 1 MiB frames: RSS {rss_before} -> {rss} KiB (+{rss_growth}), \
         VmData {data_before} -> {data} KiB (+{data_growth})"
    );

    let open: Vec<usize> = clients
        .iter_mut()
        .enumerate()
        .filter_map(|(n, (client, sent))| (!closed_by(client, *sent + CLOSED_WITHIN)).then_some(n))
        .collect();
    assert!(
        rss_growth < 16 * MIB_KIB,
        "RSS grew by {rss_growth} KiB for {CLIENTS} unfinished frames"
    );
    assert!(
        data_growth < 16 * MIB_KIB,
        "VmData grew by {data_growth} KiB for {CLIENTS} unfinished frames"
    );
    assert!(
        open.is_empty(),
        "{} of {CLIENTS} silent clients were not closed within {CLOSED_WITHIN:?} (clients {:?}...)",
        open.len(),
        &open[..open.len().min(5)]
    );
    drop(clients);

    let mut client = connect(addr);
    client.write_all(&frame(b"after them")).unwrap();
    assert_eq!(read_n(&mut client, 14), frame(b"meht retfa"));
    drop(client);
    server.signal(Signal::TERM);
    let (status, lines, _) = server.wait();
    assert_eq!(status.code(), Some(0), "{lines:?}");
}
