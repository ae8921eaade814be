//! The listener on real loopback sockets: descriptor flags, socket options, accept and accept_all.

mod common;

use common::{
    MAX_ROUNDS, PATIENCE, accept_one, assert_close_on_exec, assert_nonblocking, connect,
    ipv4_loopback, ipv6_loopback, wait_for,
};
use poller::{Drained, Event, Events, Interest, Listener, Poller, Token, Waker};
use rustix::net::sockopt;
use std::collections::BTreeSet;
use std::io;
use std::net::{SocketAddr, TcpStream};
use std::time::Instant;

fn check_accepted_stream_flags(addr: SocketAddr) {
    let mut listener = Listener::bind(addr).unwrap();
    let _client = connect(listener.local_addr().unwrap());
    let (stream, _peer) = accept_one(&mut listener);
    assert_nonblocking(&stream, "accepted stream");
    assert_close_on_exec(&stream, "accepted stream");
}

#[test]
fn accepted_streams_are_nonblocking_and_close_on_exec_over_ipv4() {
    check_accepted_stream_flags(ipv4_loopback());
}

#[test]
fn accepted_streams_are_nonblocking_and_close_on_exec_over_ipv6() {
    let Some(addr) = ipv6_loopback() else { return };
    check_accepted_stream_flags(addr);
}

#[test]
fn listener_poller_and_waker_descriptors_are_close_on_exec() {
    let listener = Listener::bind(ipv4_loopback()).unwrap();
    assert_nonblocking(&listener, "listener");
    assert_close_on_exec(&listener, "listener");

    let poller = Poller::new().unwrap();
    assert_close_on_exec(&poller, "poller");

    let waker = Waker::new().unwrap();
    assert_nonblocking(&waker, "waker");
    assert_close_on_exec(&waker, "waker");
}

#[test]
fn listeners_reuse_addresses() {
    let listener = Listener::bind(ipv4_loopback()).unwrap();
    assert!(sockopt::socket_reuseaddr(&listener).unwrap());
}

#[test]
fn ipv6_listeners_are_v6_only_and_refuse_ipv4_mapped_addresses() {
    let Some(addr) = ipv6_loopback() else { return };
    let listener = Listener::bind(addr).unwrap();
    assert!(sockopt::ipv6_v6only(&listener).unwrap());

    // A v6-only socket cannot even be bound to an IPv4 address in IPv6 clothing.
    let mapped: SocketAddr = "[::ffff:127.0.0.1]:0".parse().unwrap();
    let error = Listener::bind(mapped).unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::InvalidInput, "{error}");
}

#[test]
fn binding_a_port_in_use_fails_with_addr_in_use() {
    let first = Listener::bind(ipv4_loopback()).unwrap();
    let error = Listener::bind(first.local_addr().unwrap()).unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::AddrInUse, "{error}");
}

#[test]
fn tiny_and_huge_backlogs_both_listen() {
    for backlog in [1, u32::MAX] {
        let mut listener = Listener::bind_with(ipv4_loopback(), backlog).unwrap();
        let client = connect(listener.local_addr().unwrap());
        let (_stream, peer) = accept_one(&mut listener);
        assert_eq!(peer, client.local_addr().unwrap(), "backlog {backlog}");
    }
}

#[test]
fn an_empty_queue_would_block() {
    let mut listener = Listener::bind(ipv4_loopback()).unwrap();
    let error = listener.accept().unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::WouldBlock, "{error}");
    assert_eq!(listener.accept_all(|_, _| {}).unwrap(), Drained::default());
}

/// Connects three clients, then drains an edge-triggered listener until all three are in.
fn check_accept_all(addr: SocketAddr) {
    const LISTENER: Token = Token(1);
    let mut listener = Listener::bind(addr).unwrap();
    let poller = Poller::new().unwrap();
    poller
        .add(&listener, LISTENER, Interest::READABLE | Interest::EDGE)
        .unwrap();
    let server_addr = listener.local_addr().unwrap();
    let clients: Vec<TcpStream> = (0..3).map(|_| connect(server_addr)).collect();
    let expected: BTreeSet<SocketAddr> = clients.iter().map(|c| c.local_addr().unwrap()).collect();

    let mut events = Events::with_capacity(8);
    let mut peers = BTreeSet::new();
    let mut streams = Vec::new();
    let deadline = Instant::now() + PATIENCE;
    for _ in 0..MAX_ROUNDS {
        if peers.len() == clients.len() || Instant::now() > deadline {
            break;
        }
        // Three connections may make one edge or several; each edge gets one full drain.
        wait_for(&poller, &mut events, LISTENER, Event::is_readable);
        let drained = listener
            .accept_all(|stream, peer| {
                streams.push(stream);
                peers.insert(peer);
            })
            .unwrap();
        assert_eq!(drained.shed, 0);
    }
    assert_eq!(peers, expected);
    assert_eq!(streams.len(), 3);
    // Drained to empty: the queue has nothing left.
    assert_eq!(listener.accept_all(|_, _| {}).unwrap(), Drained::default());
}

#[test]
fn accept_all_takes_every_queued_connection_with_its_peer_over_ipv4() {
    check_accept_all(ipv4_loopback());
}

#[test]
fn accept_all_takes_every_queued_connection_with_its_peer_over_ipv6() {
    let Some(addr) = ipv6_loopback() else { return };
    check_accept_all(addr);
}

#[test]
fn the_real_port_is_reported_for_port_zero() {
    let listener = Listener::bind(ipv4_loopback()).unwrap();
    let addr = listener.local_addr().unwrap();
    assert_ne!(addr.port(), 0);
    assert_eq!(addr.ip(), ipv4_loopback().ip());
}

/// The server's default binding: 127.0.0.1 picks the port, and ::1 takes the same one, which
/// works because the IPv6 socket is v6-only. Both then accept on their own family.
#[test]
fn ipv4_and_ipv6_loopback_share_a_port() {
    let Some(ipv6) = ipv6_loopback() else {
        return;
    };
    let mut v4 = Listener::bind(ipv4_loopback()).unwrap();
    let port = v4.local_addr().unwrap().port();
    let mut v6 = Listener::bind(SocketAddr::new(ipv6.ip(), port)).unwrap();
    assert_eq!(v6.local_addr().unwrap().port(), port);

    let _v4_client = connect(v4.local_addr().unwrap());
    let _v6_client = connect(v6.local_addr().unwrap());
    let (_, v4_peer) = accept_one(&mut v4);
    let (_, v6_peer) = accept_one(&mut v6);
    assert!(v4_peer.is_ipv4(), "{v4_peer}");
    assert!(v6_peer.is_ipv6(), "{v6_peer}");
}
