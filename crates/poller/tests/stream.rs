//! Streams on real loopback connections: the peer's FIN, resets without SIGPIPE, partial writes,
//! vectored reads and sends, half-close, options and addresses.

mod common;

use common::{
    MAX_ROUNDS, PATIENCE, connected_pair, ipv4_loopback, ipv6_loopback, wait_for, watched,
};
use poller::{Event, Events, IOV_MAX, Interest, Poller, Stream, Token};
use rustix::fd::OwnedFd;
use rustix::net::sockopt;
use std::io::{self, IoSlice, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

const CONNECTION: Token = Token(1);

/// The client sends a line and its FIN (by `close`), the server reads it all: the event that
/// reports the close also reports the data, and the data must be read before the close is acted on.
///
/// `close` returns the client if it is still open, so that it stays open until the end.
fn check_data_with_fin_is_read(
    addr: SocketAddr,
    close: impl FnOnce(TcpStream) -> Option<TcpStream>,
) {
    let (stream, mut client) = connected_pair(addr);
    let interest = Interest::READABLE | Interest::READ_CLOSED | Interest::EDGE;
    let (poller, mut events) = watched(&stream, CONNECTION, interest);

    client.write_all(b"hello\n").unwrap();
    let _still_open = close(client);
    let event = wait_for(&poller, &mut events, CONNECTION, Event::is_read_closed);
    assert!(
        event.is_readable(),
        "the FIN came without the data: {event:?}"
    );

    let mut buffer = [0; 64];
    assert_eq!(stream.read(&mut buffer).unwrap(), 6);
    assert_eq!(&buffer[..6], b"hello\n");
    assert_eq!(stream.read(&mut buffer).unwrap(), 0);
}

#[test]
fn data_that_comes_with_a_half_close_is_read_over_ipv4() {
    check_data_with_fin_is_read(ipv4_loopback(), |client| {
        client.shutdown(Shutdown::Write).unwrap();
        Some(client)
    });
}

#[test]
fn data_that_comes_with_a_half_close_is_read_over_ipv6() {
    let Some(addr) = ipv6_loopback() else { return };
    check_data_with_fin_is_read(addr, |client| {
        client.shutdown(Shutdown::Write).unwrap();
        Some(client)
    });
}

#[test]
fn data_that_comes_before_a_close_is_read() {
    check_data_with_fin_is_read(ipv4_loopback(), |client| {
        drop(client);
        None
    });
}

#[test]
fn reading_before_anything_arrives_would_block() {
    let (stream, _client) = connected_pair(ipv4_loopback());
    let error = stream.read(&mut [0; 16]).unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::WouldBlock, "{error}");
}

#[test]
fn a_vectored_read_fills_the_buffers_in_order_then_reports_end_of_stream() {
    let (stream, mut client) = connected_pair(ipv4_loopback());
    client.write_all(b"abcdefghij").unwrap();
    client.shutdown(Shutdown::Write).unwrap();
    let interest = Interest::READABLE | Interest::READ_CLOSED | Interest::EDGE;
    let (poller, mut events) = watched(&stream, CONNECTION, interest);
    wait_for(&poller, &mut events, CONNECTION, Event::is_read_closed);
    let (mut a, mut b, mut c) = ([0; 4], [0; 4], [0; 4]);
    let mut bufs = [
        io::IoSliceMut::new(&mut a),
        io::IoSliceMut::new(&mut b),
        io::IoSliceMut::new(&mut c),
    ];
    assert_eq!(stream.read_vectored(&mut bufs).unwrap(), 10);
    assert_eq!((&a, &b, &c[..2]), (b"abcd", b"efgh", &b"ij"[..]));
    let mut more = [0; 4];
    let mut bufs = [io::IoSliceMut::new(&mut more)];
    assert_eq!(stream.read_vectored(&mut bufs).unwrap(), 0, "end of stream");
}

#[test]
fn a_vectored_read_before_anything_arrives_would_block() {
    let (stream, _client) = connected_pair(ipv4_loopback());
    let mut buf = [0; 16];
    let error = stream
        .read_vectored(&mut [io::IoSliceMut::new(&mut buf)])
        .unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::WouldBlock, "{error}");
}

#[test]
fn shutdown_write_ends_the_peers_stream_after_the_data() {
    let (stream, mut client) = connected_pair(ipv4_loopback());
    assert_eq!(stream.send(b"olleh\n").unwrap(), 6);
    stream.shutdown_write().unwrap();

    let mut received = Vec::new();
    client.read_to_end(&mut received).unwrap();
    assert_eq!(received, b"olleh\n");

    // Half-closed, not closed: the client can still talk to the server.
    client.write_all(b"still here").unwrap();
    let poller = Poller::new().unwrap();
    poller.add(&stream, CONNECTION, Interest::READABLE).unwrap();
    let mut events = Events::with_capacity(8);
    wait_for(&poller, &mut events, CONNECTION, Event::is_readable);
    let mut buffer = [0; 64];
    let n = stream.read(&mut buffer).unwrap();
    assert_eq!(&buffer[..n], b"still here");
}

#[test]
fn shutdown_both_wakes_an_edge_triggered_reader_with_end_of_stream() {
    let (stream, mut client) = connected_pair(ipv4_loopback());
    let (poller, mut events) = watched(&stream, CONNECTION, Interest::READABLE | Interest::EDGE);
    // The reader has drained the socket and waits for the next edge.
    assert_eq!(
        stream.read(&mut [0; 8]).unwrap_err().kind(),
        io::ErrorKind::WouldBlock
    );

    // Another thread gives up on the connection: the reader must hear of it.
    assert_eq!(stream.send(b"bye\n").unwrap(), 4);
    stream.shutdown_both().unwrap();
    wait_for(&poller, &mut events, CONNECTION, Event::is_readable);
    assert_eq!(stream.read(&mut [0; 8]).unwrap(), 0);

    // The client gets what was sent, then end of stream.
    let mut received = Vec::new();
    client.read_to_end(&mut received).unwrap();
    assert_eq!(received, b"bye\n");
}

#[test]
fn send_vectored_sends_the_pieces_in_order() {
    let (stream, mut client) = connected_pair(ipv4_loopback());
    let pieces = [
        IoSlice::new(b"cba"),
        IoSlice::new(b""),
        IoSlice::new(b"\n"),
        IoSlice::new(b"fed\n"),
    ];
    assert_eq!(stream.send_vectored(&pieces).unwrap(), 8);
    stream.shutdown_write().unwrap();

    let mut received = Vec::new();
    client.read_to_end(&mut received).unwrap();
    assert_eq!(received, b"cba\nfed\n");
}

#[test]
fn send_vectored_sends_a_single_piece() {
    let (stream, mut client) = connected_pair(ipv4_loopback());
    assert_eq!(
        stream.send_vectored(&[IoSlice::new(b"olleh\n")]).unwrap(),
        6
    );
    assert_eq!(stream.send_vectored(&[]).unwrap(), 0);
    stream.shutdown_write().unwrap();

    let mut received = Vec::new();
    client.read_to_end(&mut received).unwrap();
    assert_eq!(received, b"olleh\n");
}

/// More pieces than one `sendmsg` takes are a short send, not an `EMSGSIZE` error.
#[test]
fn send_vectored_sends_at_most_iov_max_pieces() {
    let (stream, mut client) = connected_pair(ipv4_loopback());
    let bytes: Vec<u8> = (0..2 * IOV_MAX).map(|i| (i % 251) as u8).collect();
    let pieces: Vec<IoSlice<'_>> = bytes.chunks(1).map(IoSlice::new).collect();
    let sent = stream.send_vectored(&pieces).unwrap();
    assert_eq!(sent, IOV_MAX);
    stream.shutdown_write().unwrap();

    let mut received = Vec::new();
    client.read_to_end(&mut received).unwrap();
    assert_eq!(received, bytes[..IOV_MAX]);
}

/// Sends until the peer's reset shows up as an error, and returns it.
fn send_until_error(stream: &Stream, send: impl Fn(&Stream) -> io::Result<usize>) -> io::Error {
    for _ in 0..MAX_ROUNDS {
        if let Err(error) = send(stream) {
            return error;
        }
    }
    panic!("sending to a reset connection kept succeeding");
}

#[test]
fn sending_to_a_reset_connection_fails_instead_of_raising_sigpipe() {
    let (stream, client) = connected_pair(ipv4_loopback());
    let poller = Poller::new().unwrap();
    poller.add(&stream, CONNECTION, Interest::READABLE).unwrap();
    let mut events = Events::with_capacity(8);

    // Linger 0: closing sends a reset instead of a FIN.
    sockopt::set_socket_linger(&client, Some(Duration::ZERO)).unwrap();
    drop(client);
    let event = wait_for(&poller, &mut events, CONNECTION, Event::is_hangup);
    assert!(event.is_read_closed());

    // Had the send raised SIGPIPE with its default action, the test process would be dead
    // here; Rust ignores SIGPIPE, so what is checked is that the reset comes back as an error.
    let peer_gone = [io::ErrorKind::ConnectionReset, io::ErrorKind::BrokenPipe];
    let error = send_until_error(&stream, |stream| stream.send(b"anyone?"));
    assert!(peer_gone.contains(&error.kind()), "{error}");
    let error = send_until_error(&stream, |stream| stream.send(b"anyone?"));
    assert_eq!(error.kind(), io::ErrorKind::BrokenPipe, "{error}");
    let error = send_until_error(&stream, |stream| {
        stream.send_vectored(&[IoSlice::new(b"any"), IoSlice::new(b"one?")])
    });
    assert_eq!(error.kind(), io::ErrorKind::BrokenPipe, "{error}");
    let error = send_until_error(&stream, |stream| {
        stream.send_vectored(&[IoSlice::new(b"anyone?")])
    });
    assert_eq!(error.kind(), io::ErrorKind::BrokenPipe, "{error}");
}

#[test]
fn partial_writes_deliver_every_byte_in_order() {
    const TOTAL: usize = 1 << 20;
    let (stream, mut client) = connected_pair(ipv4_loopback());
    // The server's small send buffer is what makes sends partial. The client's receive buffer
    // is small too, but not tiny: far below the loopback MSS (64 KiB) the receiver holds back
    // its window updates and the transfer crawls on TCP's persist timer.
    stream.set_send_buffer_size(4096).unwrap();
    sockopt::set_socket_recv_buffer_size(&client, 64 << 10).unwrap();
    let data: Vec<u8> = (0..TOTAL).map(|i| (i % 251) as u8).collect();

    let first = stream.send(&data).unwrap();
    assert!(
        first > 0 && first < TOTAL,
        "one send took {first} of {TOTAL} bytes"
    );

    let mut sent = first;
    let mut received = Vec::with_capacity(TOTAL);
    let mut buffer = vec![0; 64 << 10];
    let mut would_block = false;
    let deadline = Instant::now() + PATIENCE;
    for _ in 0..MAX_ROUNDS {
        if received.len() == TOTAL || Instant::now() > deadline {
            break;
        }
        // Fill the socket until it refuses...
        for _ in 0..MAX_ROUNDS {
            if sent == TOTAL {
                break;
            }
            match stream.send(&data[sent..]) {
                Ok(n) => sent += n,
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                    would_block = true;
                    break;
                }
                Err(error) => panic!("send failed: {error}"),
            }
        }
        // ...then let the client take some. Bytes are in flight, so this read does not wait.
        let n = client.read(&mut buffer).unwrap();
        assert!(n > 0, "end of stream after {} bytes", received.len());
        received.extend_from_slice(&buffer[..n]);
    }
    assert!(would_block, "the small buffers never filled");
    assert_eq!(received.len(), TOTAL, "not everything arrived in time");
    assert!(
        received == data,
        "the bytes arrived changed or out of order"
    );
}

#[test]
fn socket_options_read_back_what_was_set() {
    let (stream, _client) = connected_pair(ipv4_loopback());
    stream.set_nodelay(true).unwrap();
    assert!(stream.nodelay().unwrap());
    stream.set_nodelay(false).unwrap();
    assert!(!stream.nodelay().unwrap());

    // The kernel doubles what it is given, and has a floor of its own.
    stream.set_send_buffer_size(4096).unwrap();
    assert!(stream.send_buffer_size().unwrap() >= 8192);
    stream.set_recv_buffer_size(8192).unwrap();
    assert!(stream.recv_buffer_size().unwrap() >= 8192);
    let small = stream.recv_buffer_size().unwrap();
    stream.set_recv_buffer_size(1 << 20).unwrap();
    assert!(stream.recv_buffer_size().unwrap() > small);
}

#[test]
fn congestion_control_reads_back_and_an_unknown_one_is_refused() {
    let (stream, _client) = connected_pair(ipv4_loopback());
    // Reno is built into every Linux kernel: it is the fallback of all the others.
    stream.set_congestion("reno").unwrap();
    assert_eq!(stream.congestion().unwrap(), "reno");
    let err = stream.set_congestion("no-such-algorithm").unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::NotFound, "{err}");
    assert_eq!(stream.congestion().unwrap(), "reno");
}

fn check_addresses(addr: SocketAddr) {
    let (stream, client) = connected_pair(addr);
    assert_eq!(stream.peer_addr().unwrap(), client.local_addr().unwrap());
    assert_eq!(stream.local_addr().unwrap(), client.peer_addr().unwrap());
    assert!(stream.peer_is_loopback().unwrap());
}

#[test]
fn addresses_match_the_clients_and_the_peer_is_loopback_over_ipv4() {
    check_addresses(ipv4_loopback());
}

#[test]
fn addresses_match_the_clients_and_the_peer_is_loopback_over_ipv6() {
    let Some(addr) = ipv6_loopback() else { return };
    check_addresses(addr);
}

#[test]
fn conversions_to_and_from_std_keep_the_connection() {
    let (stream, mut client) = connected_pair(ipv4_loopback());
    let local = stream.local_addr().unwrap();

    let std_stream = TcpStream::from(stream);
    assert_eq!(std_stream.local_addr().unwrap(), local);
    let stream = Stream::from(std_stream);
    assert_eq!(stream.send(b"via std\n").unwrap(), 8);
    let fd = OwnedFd::from(stream);
    drop(fd);

    let mut received = Vec::new();
    client.read_to_end(&mut received).unwrap();
    assert_eq!(received, b"via std\n");
}
