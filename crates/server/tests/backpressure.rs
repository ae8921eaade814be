//! Back-pressure: a client that does not read its replies makes the server stop reading from
//! it, so that memory stays bounded and the other clients keep being served; and one client's
//! flood does not starve another.

mod common;

use common::{
    Binary, MAX_ROUNDS, PATIENCE, Running, config, connect, frame, join, read_n, reversed_lines,
    status_kib,
};
use rustix::net::sockopt;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

/// Every flood line is this long, terminator included.
const LINE: usize = 64;

/// The slowest round trip a bystander may see, whatever another client does.
const ROUND_TRIP_LIMIT: Duration = Duration::from_millis(200);

/// The pause between a bystander's round trips: it asks often enough to notice a stall
/// without taking a core away from the server on a two-core machine.
const PACE: Duration = Duration::from_millis(20);

/// Both tests time round trips: run at the same time on two cores they would time each other.
static ALONE: Mutex<()> = Mutex::new(());

/// Line `i` of a flood: its number in 16 digits, 47 letters that shift with the number, `\n`.
/// Neither side keeps the flood in memory: both make any line from its number.
fn line(i: u64) -> [u8; LINE] {
    let mut out = [0; LINE];
    let mut n = i;
    for digit in out[..16].iter_mut().rev() {
        *digit = b'0' + (n % 10) as u8;
        n /= 10;
    }
    for (j, letter) in (i % 26..).zip(&mut out[16..LINE - 1]) {
        *letter = b'a' + (j % 26) as u8;
    }
    out[LINE - 1] = b'\n';
    out
}

/// The server's reply to [`line`]`(i)`: the body reversed (digits last), the `\n` kept.
fn reply(i: u64) -> [u8; LINE] {
    let mut out = line(i);
    out[..LINE - 1].reverse();
    out
}

/// Sends flood lines `0..lines` through `client`, adding to `sent` every byte the socket
/// takes (so that the test can see where the server stopped taking them), then half-closes.
fn flood(mut client: TcpStream, lines: u64, sent: &AtomicU64) -> io::Result<()> {
    // 1024 lines, 64 KiB, are made at a time.
    const BATCH: u64 = 1024;
    let deadline = Instant::now() + 3 * PATIENCE;
    let mut batch = Vec::with_capacity(BATCH as usize * LINE);
    let (mut next, mut from) = (0, 0);
    // Each round makes a batch, or writes at least one byte, or fails: the count of rounds
    // is bounded by the bytes to send.
    for _ in 0..=2 * lines * LINE as u64 {
        if from == batch.len() {
            if next == lines {
                return client.shutdown(Shutdown::Write);
            }
            let last = (next + BATCH).min(lines);
            batch.clear();
            for i in next..last {
                batch.extend_from_slice(&line(i));
            }
            (next, from) = (last, 0);
        }
        if Instant::now() > deadline {
            return Err(io::Error::new(
                ErrorKind::TimedOut,
                "the flood took too long",
            ));
        }
        match client.write(&batch[from..]) {
            Ok(0) => return Err(ErrorKind::WriteZero.into()),
            Ok(n) => {
                from += n;
                sent.fetch_add(n as u64, Ordering::Relaxed);
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::other("the flood loop ran out of rounds"))
}

/// Checks `bytes`, which came at `offset` of the replies to a flood, against [`reply`];
/// panics at the first wrong byte, naming its offset.
fn verify(mut offset: u64, mut bytes: &[u8]) {
    while !bytes.is_empty() {
        let i = offset / LINE as u64;
        let at = (offset % LINE as u64) as usize;
        let expected = reply(i);
        let take = (LINE - at).min(bytes.len());
        if bytes[..take] != expected[at..at + take] {
            let diff = bytes
                .iter()
                .zip(&expected[at..at + take])
                .position(|(got, want)| got != want)
                .unwrap_or(0);
            panic!(
                "first wrong reply byte at offset {}: {:?} where the reply to line {i} has {:?}; \
                 got {:?}, expected {:?}",
                offset + diff as u64,
                bytes[diff] as char,
                expected[at + diff] as char,
                String::from_utf8_lossy(&bytes[..take]),
                String::from_utf8_lossy(&expected[at..at + take]),
            );
        }
        offset += take as u64;
        bytes = &bytes[take..];
    }
}

/// Reads the replies to a flood of `lines` lines up to end of stream, checking every byte as
/// it comes; asserts that exactly all of them came.
fn check_replies(mut client: TcpStream, lines: u64) {
    let total = lines * LINE as u64;
    let deadline = Instant::now() + 3 * PATIENCE;
    let mut buf = vec![0; 64 * 1024];
    let mut offset = 0;
    // Each round reads at least one byte or ends.
    for _ in 0..=total {
        assert!(
            Instant::now() < deadline,
            "the replies took too long: {offset} of {total} bytes"
        );
        let n = match client.read(&mut buf) {
            Ok(0) => {
                assert_eq!(offset, total, "end of stream before all the replies");
                return;
            }
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => panic!("reading the replies at offset {offset} of {total}: {e}"),
        };
        assert!(
            offset + n as u64 <= total,
            "more than the {total} bytes of replies: {}",
            offset + n as u64
        );
        verify(offset, &buf[..n]);
        offset += n as u64;
    }
    panic!("the replies did not end: {offset} of {total} bytes");
}

/// A bystander's round trip number `round`: one line, and its reply checked; returns how
/// long it took.
fn round_trip(client: &mut TcpStream, round: usize) -> Duration {
    let line = format!("bystander round {round:06}\n");
    let start = Instant::now();
    client.write_all(line.as_bytes()).expect("bystander send");
    let reply = read_n(client, line.len());
    let took = start.elapsed();
    assert_eq!(reply, reversed_lines(line.as_bytes()), "round {round}");
    took
}

/// The headline case: client A sends 64 MiB and reads nothing. With `--max-pending 256 KiB`
/// the server must stop reading A once that much output waits for it, so A's writes stall
/// well short of 64 MiB, the server's memory stays small, and client B's round trips stay
/// fast. Once A reads, every byte comes back, in order, and then end of stream.
#[test]
fn a_client_that_does_not_read_is_paused_and_memory_stays_bounded() {
    const LINES: u64 = 1 << 20;
    const TOTAL: u64 = LINES * LINE as u64;
    const RSS_LIMIT_KIB: u64 = 64 * 1024;
    let _alone = ALONE.lock().unwrap_or_else(PoisonError::into_inner);

    let mut server = Binary::spawn(&["-q", "--max-pending", "262144", "0"]);
    let addr = server.listening();
    let pid = server.pid();
    let a = connect(addr);
    // Small buffers on A's side: what the kernel can hold of A's traffic is then mostly the
    // server's socket buffers, far less than 64 MiB, so that A's writes can only all succeed
    // if the server keeps reading and buffers the replies itself.
    sockopt::set_socket_recv_buffer_size(&a, 64 * 1024).unwrap();
    sockopt::set_socket_send_buffer_size(&a, 64 * 1024).unwrap();
    let sent = Arc::new(AtomicU64::new(0));
    let writer = {
        let a = a.try_clone().unwrap();
        let sent = Arc::clone(&sent);
        thread::spawn(move || flood(a, LINES, &sent))
    };

    let mut b = connect(addr);
    let window = Duration::from_millis(2500);
    // A's writes must have stopped for this long at the end of the window: a server that
    // merely reads slowly would let them go on.
    let stalled_for = Duration::from_secs(1);
    let start = Instant::now();
    let (mut rounds, mut slowest, mut max_rss) = (0, Duration::ZERO, 0);
    let (mut seen, mut last_change) = (0, start);
    while start.elapsed() < window && rounds < 1000 {
        slowest = slowest.max(round_trip(&mut b, rounds));
        max_rss = max_rss.max(status_kib(pid, "VmRSS"));
        let now_sent = sent.load(Ordering::Relaxed);
        if now_sent != seen {
            (seen, last_change) = (now_sent, Instant::now());
        }
        rounds += 1;
        thread::sleep(PACE);
    }
    let quiet = last_change.elapsed();
    println!(
        "while A did not read: {rounds} round trips for B, the slowest {slowest:?}; \
         A sent {seen} of {TOTAL} bytes, the last of them {quiet:?} before the end; \
         max server RSS {max_rss} KiB"
    );
    assert!(
        slowest < ROUND_TRIP_LIMIT,
        "a round trip of B took {slowest:?} while A flooded"
    );
    assert!(
        max_rss < RSS_LIMIT_KIB,
        "the server's RSS reached {max_rss} KiB while A did not read (A had sent {seen} \
         bytes)"
    );
    assert!(
        seen < TOTAL,
        "A sent all {TOTAL} bytes without reading a reply: the server kept reading it"
    );
    assert!(
        quiet >= stalled_for,
        "A was still sending {quiet:?} before the end of the window ({seen} bytes so far): \
         the server kept reading it"
    );

    // A reads now: the server resumes, and everything comes back.
    let reader = thread::spawn(move || check_replies(a, LINES));
    let deadline = Instant::now() + 3 * PATIENCE;
    for _ in 0..MAX_ROUNDS {
        if reader.is_finished() || Instant::now() > deadline {
            break;
        }
        max_rss = max_rss.max(status_kib(pid, "VmRSS"));
        thread::sleep(PACE);
    }
    join(reader);
    join(writer).expect("A's flood");
    println!(
        "A got all {TOTAL} bytes back {:?} after it started; max server RSS {max_rss} KiB",
        start.elapsed()
    );
    assert!(
        max_rss < RSS_LIMIT_KIB,
        "the server's RSS reached {max_rss} KiB while A caught up"
    );
    // B is still served.
    round_trip(&mut b, rounds);

    let summary = server.terminate();
    assert!(
        !summary.contains(" 0 pauses,"),
        "A was never paused: {summary}"
    );
}

/// A client that sends 32 MiB as fast as it can while reading its replies keeps the server
/// busy the whole time; another client's round trips must stay fast all along.
#[test]
fn a_flooding_client_does_not_starve_another() {
    const LINES: u64 = 1 << 19;
    let _alone = ALONE.lock().unwrap_or_else(PoisonError::into_inner);

    let server = Running::start(config());
    let flooder = connect(server.addr());
    let sent = Arc::new(AtomicU64::new(0));
    let writer = {
        let flooder = flooder.try_clone().unwrap();
        let sent = Arc::clone(&sent);
        thread::spawn(move || flood(flooder, LINES, &sent))
    };
    let reader = thread::spawn(move || check_replies(flooder, LINES));

    let mut b = connect(server.addr());
    let start = Instant::now();
    let deadline = start + 3 * PATIENCE;
    let (mut rounds, mut slowest) = (0, Duration::ZERO);
    while !reader.is_finished() && Instant::now() < deadline && rounds < MAX_ROUNDS {
        slowest = slowest.max(round_trip(&mut b, rounds));
        rounds += 1;
        // The flood lasts well under a second here: B asks more often to sample it enough.
        thread::sleep(PACE / 4);
    }
    let flood_took = start.elapsed();
    join(reader);
    join(writer).expect("the flood");
    println!(
        "flood of {} bytes took {flood_took:?}: {rounds} round trips for B, the slowest \
         {slowest:?}",
        LINES * LINE as u64
    );
    // A flood over before B got going would prove nothing.
    assert!(
        rounds >= 5,
        "only {rounds} round trips during the flood: too short to tell"
    );
    assert!(
        slowest < ROUND_TRIP_LIMIT,
        "a round trip of B took {slowest:?} during the flood"
    );
    drop(b);
    server.stop();
}

/// The pool for unfinished frames runs out: the connections that want more are paused
/// instead of given memory, and resumed as blocks come back, one at a time while it is
/// tight, so every frame is finished and answered.
///
/// A holds most of a 64 KiB pool with an unfinished frame; then four clients send half a
/// 64 KiB frame each, then the rest.
#[test]
fn when_the_buffer_pool_runs_out_reading_pauses_and_every_frame_is_still_answered() {
    const FRAME: usize = 64 * 1024;
    const POOL: usize = 64 * 1024;
    const CLIENTS: usize = 4;
    let mut config = config();
    config.framing = protocol::Framing::Frame;
    config.max_frame = FRAME as u32;
    config.max_buffered = POOL;
    config.ring_size = 16;
    config.buffer_size = 4096;
    let server = Running::start(config);

    let payload = |n: usize| -> Vec<u8> { (0..FRAME).map(|i| (i * 7 + n) as u8).collect() };
    let reversed = |n: usize| -> Vec<u8> {
        let mut p = payload(n);
        p.reverse();
        frame(&p)
    };
    let mut a = connect(server.addr());
    let a_frame = frame(&payload(99));
    let split = 4 + 60_000;
    a.write_all(&a_frame[..split]).unwrap();
    // A's 60 000 bytes are in the pool once the server answers a frame sent after them on
    // another connection: connections are read in the order their bytes come.
    let mut probe = connect(server.addr());
    probe.write_all(&frame(b"probe")).unwrap();
    assert_eq!(read_n(&mut probe, 9), frame(b"eborp"));

    // Each client sends half its frame, then waits for the word to send the rest: all four
    // are then in the middle of a frame at once.
    let (sent, halves_sent) = std::sync::mpsc::channel();
    let (clients, goes): (Vec<_>, Vec<_>) = (0..CLIENTS)
        .map(|n| {
            let addr = server.addr();
            let (request, reply) = (frame(&payload(n)), reversed(n));
            let sent = sent.clone();
            let (go, gone) = std::sync::mpsc::channel::<()>();
            let client = thread::spawn(move || {
                let mut client = connect(addr);
                let (first, rest) = request.split_at(request.len() / 2);
                client.write_all(first).unwrap();
                sent.send(()).unwrap();
                gone.recv_timeout(PATIENCE).expect("no word to go on");
                client.write_all(rest).unwrap();
                assert_eq!(read_n(&mut client, reply.len()), reply, "client {n}");
            });
            (client, go)
        })
        .unzip();
    for _ in 0..CLIENTS {
        halves_sent
            .recv_timeout(PATIENCE)
            .expect("a client could not send");
    }
    // The same ordering again: once this reply is back, the server has taken in what the
    // clients sent, up to the point where it paused them.
    probe.write_all(&frame(b"probe")).unwrap();
    assert_eq!(read_n(&mut probe, 9), frame(b"eborp"));
    for go in goes {
        go.send(()).unwrap();
    }
    // A finishes its frame: its blocks come back, and the paused clients go on.
    a.write_all(&a_frame[split..]).unwrap();
    assert_eq!(read_n(&mut a, a_frame.len()), reversed(99));
    for client in clients {
        join(client);
    }
    let summary = server.stop();
    // Past its limit the pool lets one connection finish its frame, and a connection paused
    // for it may still add what the server had read from it by then (at most the half frame
    // it sent, and a block): well below A's 60 KiB plus four whole frames in assembly, which
    // is where a server that never paused would go.
    let bound = POOL + FRAME + CLIENTS * (FRAME / 2 + 4096);
    assert!(summary.pauses > 0, "nobody was paused: {summary}");
    assert!(
        summary.buffered_high_water <= bound as u64,
        "the pool reached {} bytes, more than {bound}: {summary}",
        summary.buffered_high_water
    );
}

/// A client that floods without reading is paused for its pending output, and while its output
/// fills the pool it must not also hold the pool's right of way: another client whose line
/// comes in two pieces (so it needs a block to keep the first) is still answered every time.
/// (The holder that could not finish its line, because its own client did not read, used to
/// keep the others paused until the idle timeout, which is off here.)
#[test]
fn a_client_that_does_not_read_cannot_hold_the_pool_from_the_others() {
    // 10 MB: more than the server's send buffer (`tcp_wmem` allows 4 MiB) and the flooder's
    // small receive buffer hold, so that replies must wait in pending output.
    const LINES: usize = 100_000;
    let _alone = ALONE.lock().unwrap_or_else(PoisonError::into_inner);
    let mut config = config();
    config.max_line = 128;
    // The flooder's pending output alone uses the pool up, and a 100-byte line rarely ends a
    // 4 KiB read, so its carry is nearly always a half line.
    config.max_pending = 16 * 1024;
    config.max_buffered = 16 * 1024;
    config.ring_size = 16;
    config.idle_timeout = None;
    let server = Running::start(config);
    let line = |i: usize| format!("{i:099}\n").into_bytes();

    let flooder = connect(server.addr());
    sockopt::set_socket_recv_buffer_size(&flooder, 64 * 1024).unwrap();
    let writer = {
        let mut flooder = flooder.try_clone().unwrap();
        // One buffer, written whole: the server's 4 KiB reads then cut it anywhere, so the
        // flooder nearly always has half a line carried.
        let flood: Vec<u8> = (0..LINES).flat_map(line).collect();
        thread::spawn(move || flooder.write_all(&flood).expect("flood"))
    };
    let mut t = connect(server.addr());
    let mut probe = connect(server.addr());
    // Long enough for the flood to fill every buffer on the way and be paused.
    let window = Duration::from_millis(1500);
    let start = Instant::now();
    let mut round = 0;
    while round < 20 || start.elapsed() < window && round < 2000 {
        round += 1;
        t.write_all(b"abc").unwrap();
        // Once the probe's reply is back, T's first piece has been taken in (and kept in a
        // block, or T paused for one).
        probe.write_all(b"probe\n").unwrap();
        assert_eq!(read_n(&mut probe, 6), b"eborp\n", "round {round}");
        t.write_all(b"def\n").unwrap();
        assert_eq!(read_n(&mut t, 7), b"fedcba\n", "round {round}");
    }
    // The flooder reads now: every line comes back.
    let mut flooder = flooder;
    for i in 0..LINES {
        let mut want = line(i);
        want[..99].reverse();
        assert_eq!(read_n(&mut flooder, 100), want, "line {i}");
    }
    join(writer);
    let summary = server.stop();
    println!("{round} rounds in {:?}: {summary}", start.elapsed());
    assert!(
        summary.pauses >= 1,
        "the flooder was never paused: {summary}"
    );
}
