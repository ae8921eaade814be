//! Many clients, slow clients and rude clients, on a server run in process: partial writes,
//! a full ring, and waves of connections with resets, every reply checked to be its own
//! client's (the reused-fd cross-talk of the original).

mod common;

use common::{Running, config, connect, read_n, read_to_end, reversed_lines};
use rustix::net::sockopt;
use server::WaitMode;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::thread;
use std::time::Duration;

/// Lines that say whose they are, so that a misdelivered reply is caught; none is a
/// palindrome, so an unreversed echo is caught too.
fn tagged_lines(client: usize, lines: usize, width: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for i in 0..lines {
        let line = format!("client {client:05} line {i:06} ");
        out.extend_from_slice(line.as_bytes());
        out.extend((0..width.saturating_sub(line.len())).map(|j| b'a' + ((i + j) % 26) as u8));
        out.push(b'\n');
    }
    out
}

/// A server that keeps up to 64 MiB of output for a client that reads late, instead of
/// pausing it at the default 1 MiB: the tests below write everything before they read, which
/// against the default would stall both sides (see tests/backpressure.rs for the pause).
fn roomy() -> server::Config {
    let mut config = config();
    config.max_pending = 64 << 20;
    config.max_buffered = 64 << 20;
    config
}

/// A client that reads nothing until it has sent everything, then `exit`: the server's writes
/// to it come up short, the rest waits in pending output, and when the exit stops the server
/// the client still gets every byte, in order, within the grace period.
///
/// Short writes are certain: the exit line is handled after every line before it, so by then
/// the server has replied to all 16 MiB, more than the sockets can hold unread (the server's
/// send buffer is at most `net.ipv4.tcp_wmem`'s 4 MiB, the client's receive buffer is set
/// small here).
#[test]
fn partial_writes_to_a_late_reader_deliver_every_byte_in_order() {
    let server = Running::start(roomy());
    let mut client = connect(server.addr());
    sockopt::set_socket_recv_buffer_size(&client, 64 * 1024).unwrap();
    let input = tagged_lines(1, 160_000, 100);
    client.write_all(&input).unwrap();
    client.write_all(b"exit\n").unwrap();
    assert_eq!(read_to_end(&mut client), reversed_lines(&input));
    let summary = server.finished();
    assert!(
        summary.short_writes > 0,
        "no write came up short: {summary}"
    );
    assert_eq!(summary.bytes_out, input.len() as u64);
}

/// Several clients behind one late reader: replies for the late one are queued, the others
/// are answered at once.
#[test]
fn a_late_reader_does_not_hold_up_the_others() {
    let server = Running::start(roomy());
    let mut late = connect(server.addr());
    sockopt::set_socket_recv_buffer_size(&late, 64 * 1024).unwrap();
    let input = tagged_lines(0, 20_000, 100);
    late.write_all(&input).unwrap();
    for n in 1..=5 {
        let mut client = connect(server.addr());
        let line = tagged_lines(n, 1, 40);
        client.write_all(&line).unwrap();
        assert_eq!(read_n(&mut client, line.len()), reversed_lines(&line));
    }
    late.shutdown(Shutdown::Write).unwrap();
    assert_eq!(read_to_end(&mut late), reversed_lines(&input));
    server.stop();
}

/// A ring of two 16-byte entries is full all the time: the reader waits for the worker,
/// and nothing is lost or reordered.
#[test]
fn a_tiny_ring_full_all_the_time_loses_nothing() {
    let mut config = config();
    config.ring_size = 2;
    config.buffer_size = 16;
    let server = Running::start(config);
    all_at_once(server.addr(), 16, |n| tagged_lines(n, 300, 30 + n));
    server.stop();
}

/// Runs `clients` clients at once, client `n` sending `input(n)` while it reads the replies
/// (so neither side waits for the other), then half-closing; checks each one's replies.
fn all_at_once(addr: SocketAddr, clients: usize, input: impl Fn(usize) -> Vec<u8>) {
    let clients: Vec<_> = (0..clients)
        .map(|n| {
            let input = input(n);
            thread::spawn(move || {
                let mut client = connect(addr);
                let mut writer = client.try_clone().unwrap();
                let sent = input.clone();
                let sending = thread::spawn(move || {
                    writer.write_all(&sent).unwrap();
                    writer.shutdown(Shutdown::Write).unwrap();
                });
                let reply = read_to_end(&mut client);
                sending.join().unwrap();
                assert_eq!(reply, reversed_lines(&input), "client {n}");
            })
        })
        .collect();
    for client in clients {
        client.join().unwrap();
    }
}

/// Ends a connection with a reset (RST) instead of a FIN.
fn reset(client: TcpStream) {
    sockopt::set_socket_linger(&client, Some(Duration::ZERO)).unwrap();
    drop(client);
}

/// Waves of connections: in each, some clients reset at once, some reset after sending a lot
/// without reading (so the server's writes to them fail), and the rest talk and check that
/// every reply is theirs. Connection indices and descriptor numbers are reused from wave to
/// wave, which is where the original sent one client's bytes to another.
#[test]
fn waves_of_connections_with_resets_never_cross_talk() {
    let server = Running::start(config());
    let addr = server.addr();
    for wave in 0..8 {
        let clients: Vec<_> = (0..24)
            .map(|n| thread::spawn(move || client_in_wave(addr, wave * 100 + n, n % 3)))
            .collect();
        for client in clients {
            client.join().unwrap();
        }
    }
    // The server is still fine.
    let mut client = connect(addr);
    client.write_all(b"still here\n").unwrap();
    assert_eq!(read_n(&mut client, 11), b"ereh llits\n");
    drop(client);
    let summary = server.stop();
    assert_eq!(summary.connections, 8 * 24 + 1);
}

fn client_in_wave(addr: SocketAddr, id: usize, kind: usize) {
    let mut client = connect(addr);
    match kind {
        // Connect and reset at once.
        0 => reset(client),
        // Send plenty, read nothing, reset: the replies cannot be delivered.
        1 => {
            let _ = client.write_all(&tagged_lines(id, 2_000, 60));
            reset(client);
        }
        // Talk: every reply must be this client's own.
        _ => {
            for round in 0..5 {
                let line = tagged_lines(id, round + 1, 50);
                client.write_all(&line).unwrap();
                let reply = read_n(&mut client, line.len());
                assert_eq!(
                    reply,
                    reversed_lines(&line),
                    "client {id} got another's bytes"
                );
            }
            client.shutdown(Shutdown::Write).unwrap();
            let mut rest = Vec::new();
            client.read_to_end(&mut rest).unwrap();
            assert!(rest.is_empty(), "client {id} got extra bytes: {rest:?}");
        }
    }
}

/// Many clients at once, each with its own interleaving of writes and reads.
#[test]
fn many_concurrent_clients_each_get_exactly_their_own_replies() {
    let mut config = config();
    config.buffer_size = 64;
    let server = Running::start(config);
    let clients: Vec<_> = (0..64)
        .map(|n| {
            let addr = server.addr();
            thread::spawn(move || {
                let mut client = connect(addr);
                for round in 0..20 {
                    let line = tagged_lines(n, 1 + round % 4, 20 + (n * 7 + round) % 90);
                    client.write_all(&line).unwrap();
                    assert_eq!(read_n(&mut client, line.len()), reversed_lines(&line));
                }
            })
        })
        .collect();
    for client in clients {
        client.join().unwrap();
    }
    server.stop();
}

/// Past `--max-connections`, new clients are accepted and closed at once; the others are
/// served, and once one leaves a new client is served again.
#[test]
fn past_max_connections_new_clients_are_closed_and_the_others_served() {
    let mut config = config();
    config.max_connections = 2;
    let server = Running::start(config);
    let mut first = connect(server.addr());
    let mut second = connect(server.addr());
    for client in [&mut first, &mut second] {
        client.write_all(b"in\n").unwrap();
        assert_eq!(read_n(client, 3), b"ni\n");
    }
    let mut rejected = connect(server.addr());
    assert_eq!(read_to_end(&mut rejected), b"");
    second.write_all(b"still\n").unwrap();
    assert_eq!(read_n(&mut second, 6), b"llits\n");

    // The first leaves; once it has seen the server's FIN, its place is free.
    first.shutdown(Shutdown::Write).unwrap();
    assert_eq!(read_to_end(&mut first), b"");
    let mut third = connect(server.addr());
    third.write_all(b"new\n").unwrap();
    assert_eq!(read_n(&mut third, 4), b"wen\n");
    drop((second, third));
    let summary = server.stop();
    assert_eq!((summary.connections, summary.rejected), (3, 1));
}

/// Every `--wait` mode serves the same traffic the same way; a tiny ring makes both threads
/// wait for each other all the time.
#[test]
fn every_wait_mode_serves_a_full_ring_correctly() {
    for wait in [WaitMode::Spin, WaitMode::Yield, WaitMode::Block] {
        let mut config = config();
        config.wait = wait;
        config.ring_size = 4;
        config.buffer_size = 8;
        let server = Running::start(config);
        all_at_once(server.addr(), 4, |n| tagged_lines(n, 200, 40));
        server.stop();
    }
}

/// After short writes and a full drain, the connection's EPOLLOUT registration must not be
/// counted again: EPOLLOUT without pending output (more room, the client's FIN or reset) used
/// to decrement the count of connections with pending output a second time. A miscount trips
/// a debug assertion in the worker, or leaves the stop waiting for writers that do not exist.
#[test]
fn after_a_drained_short_write_the_end_of_the_connection_is_counted_once() {
    for reset_at_end in [false, true] {
        let server = Running::start(roomy());
        let mut client = connect(server.addr());
        sockopt::set_socket_recv_buffer_size(&client, 64 * 1024).unwrap();
        let input = tagged_lines(2, 160_000, 100);
        client.write_all(&input).unwrap();
        assert_eq!(read_n(&mut client, input.len()), reversed_lines(&input));
        // Written straight from the slot now: nothing is pending.
        client.write_all(b"abc\n").unwrap();
        assert_eq!(read_n(&mut client, 4), b"cba\n");
        if reset_at_end {
            reset(client);
        } else {
            client.shutdown(Shutdown::Write).unwrap();
            assert_eq!(read_to_end(&mut client), b"");
        }
        let summary = server.stop();
        assert!(summary.short_writes > 0, "{summary}");
        assert_eq!(summary.left_pending, 0, "{summary}");
    }
}

/// Clients that reset with replies pending: their pending output is dropped and no longer
/// counted, so the stop does not wait for them.
#[test]
fn a_reset_with_pending_output_drops_it() {
    let server = Running::start(config());
    for n in 0..4 {
        let client = connect(server.addr());
        sockopt::set_socket_recv_buffer_size(&client, 16 * 1024).unwrap();
        let mut writer = &client;
        let _ = writer.write_all(&tagged_lines(n, 40_000, 100));
        reset(client);
    }
    let mut client = connect(server.addr());
    client.write_all(b"after\n").unwrap();
    assert_eq!(read_n(&mut client, 6), b"retfa\n");
    drop(client);
    let summary = server.stop();
    assert_eq!(summary.left_pending, 0, "{summary}");
}

/// A stop while the ring is full and clients keep sending: it ends, and every client gets a
/// prefix of its replies, in order.
#[test]
fn a_stop_while_the_ring_is_full_ends_and_keeps_order() {
    for wait in [WaitMode::Block, WaitMode::Spin] {
        let mut config = config();
        config.ring_size = 2;
        config.buffer_size = 16;
        config.wait = wait;
        let server = Running::start(config);
        let addr = server.addr();
        let (started, traffic) = std::sync::mpsc::channel();
        let clients: Vec<_> = (0..8)
            .map(|n| {
                let started = started.clone();
                thread::spawn(move || {
                    let input = tagged_lines(n, 300, 30 + n);
                    let mut client = connect(addr);
                    let mut writer = client.try_clone().unwrap();
                    let sent = input.clone();
                    let sending = thread::spawn(move || {
                        // The server may close before all is sent.
                        let _ = writer.write_all(&sent);
                    });
                    let mut reply = vec![0; 1];
                    client.read_exact(&mut reply).unwrap();
                    started.send(()).unwrap();
                    let _ = client.read_to_end(&mut reply);
                    let _ = sending.join();
                    assert!(
                        reversed_lines(&input).starts_with(&reply),
                        "client {n} got a wrong reply"
                    );
                })
            })
            .collect();
        // Stop once every client has had a first reply: the ring is full by then.
        for _ in 0..8 {
            traffic.recv_timeout(common::PATIENCE).unwrap();
        }
        server.stop();
        for client in clients {
            client.join().unwrap();
        }
    }
}
