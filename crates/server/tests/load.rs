//! Many clients, slow clients and rude clients, on a server run in process: partial writes,
//! a full ring, and waves of connections with resets, every reply checked to be its own
//! client's (the reused-fd cross-talk of the original).

mod common;

use common::{Running, config, connect, read_n, read_to_end, reversed_lines};
use rustix::net::sockopt;
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

/// A client that reads nothing until it has sent everything: the server's writes to it come
/// up short and the rest waits in pending output, then goes out in order on EPOLLOUT.
///
/// Short writes are certain once the replies written exceed what the sockets can hold
/// unread: the server's send buffer (at most `net.ipv4.tcp_wmem`'s 4 MiB) plus the client's
/// small receive buffer. The requests still in flight when `write_all` returns fit in the
/// client's send buffer and the server's receive buffer (4 and 6 MiB at most by default), so
/// 16 MiB of requests is enough.
#[test]
fn partial_writes_to_a_late_reader_deliver_every_byte_in_order() {
    let server = Running::start(config());
    let mut client = connect(server.addr());
    // A small receive buffer on the client keeps the window small.
    sockopt::set_socket_recv_buffer_size(&client, 64 * 1024).unwrap();
    let input = tagged_lines(1, 160_000, 100);
    client.write_all(&input).unwrap();
    client.shutdown(Shutdown::Write).unwrap();
    // Another client stops the server meanwhile: it still delivers everything pending, as
    // long as the client takes it within the grace period.
    let mut stopper = connect(server.addr());
    stopper.write_all(b"exit\n").unwrap();
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
    let server = Running::start(config());
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
    let clients: Vec<_> = (0..16)
        .map(|n| {
            let addr = server.addr();
            thread::spawn(move || {
                let input = tagged_lines(n, 300, 30 + n);
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
    server.stop();
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
