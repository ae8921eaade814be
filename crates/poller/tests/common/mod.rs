//! Helpers shared by the integration tests: loopback addresses, bounded waits, descriptor flags.

// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

use poller::{Event, Events, Interest, Listener, Poller, Stream, Token};
use rustix::fd::AsFd;
use rustix::fs::{OFlags, fcntl_getfl};
use rustix::io::{FdFlags, fcntl_getfd};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// The longest any test waits for something that should take microseconds on loopback.
pub(crate) const PATIENCE: Duration = Duration::from_secs(10);

/// The most rounds any test loop runs, whatever the clock says.
pub(crate) const MAX_ROUNDS: usize = 10_000;

/// A wait that is expected to time out: long enough for an event that was coming to show up.
pub(crate) const QUIET: Duration = Duration::from_millis(50);

pub(crate) fn ipv4_loopback() -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, 0))
}

/// `[::1]:0`, or `None` (with a line saying so) on a machine without IPv6 loopback.
pub(crate) fn ipv6_loopback() -> Option<SocketAddr> {
    let addr = SocketAddr::from((Ipv6Addr::LOCALHOST, 0));
    match std::net::TcpListener::bind(addr) {
        Ok(_) => Some(addr),
        Err(error) => {
            println!("skipped: IPv6 loopback [::1] is not available here ({error})");
            None
        }
    }
}

pub(crate) fn assert_close_on_exec(fd: impl AsFd, what: &str) {
    let flags = fcntl_getfd(fd).expect("fcntl(F_GETFD)");
    assert!(
        flags.contains(FdFlags::CLOEXEC),
        "{what} is not close-on-exec"
    );
}

pub(crate) fn assert_nonblocking(fd: impl AsFd, what: &str) {
    let flags = fcntl_getfl(fd).expect("fcntl(F_GETFL)");
    assert!(flags.contains(OFlags::NONBLOCK), "{what} is blocking");
}

/// A poller watching `fd` as `token` with `interest`, and an events list for it.
pub(crate) fn watched(fd: impl AsFd, token: Token, interest: Interest) -> (Poller, Events) {
    let poller = Poller::new().expect("poller");
    poller.add(fd, token, interest).expect("register");
    (poller, Events::with_capacity(8))
}

/// Waits until an event for `token` satisfies `wanted` and returns it. Bounded by [`PATIENCE`]
/// and [`MAX_ROUNDS`]; panics if it does not come.
pub(crate) fn wait_for(
    poller: &Poller,
    events: &mut Events,
    token: Token,
    wanted: impl Fn(&Event) -> bool,
) -> Event {
    let deadline = Instant::now() + PATIENCE;
    for _ in 0..MAX_ROUNDS {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "no wanted event for {token:?} within {PATIENCE:?}"
        );
        poller.wait(events, Some(left)).expect("wait");
        if let Some(event) = events.iter().find(|e| e.token() == token && wanted(e)) {
            return event;
        }
    }
    panic!("no wanted event for {token:?} in {MAX_ROUNDS} rounds");
}

/// A client that gives up on reads and writes after [`PATIENCE`] instead of hanging the test.
pub(crate) fn connect(addr: SocketAddr) -> TcpStream {
    let client = TcpStream::connect(addr).expect("connect");
    client
        .set_read_timeout(Some(PATIENCE))
        .expect("read timeout");
    client
        .set_write_timeout(Some(PATIENCE))
        .expect("write timeout");
    client
}

/// Accepts one connection on `listener`, waiting for it as long as [`PATIENCE`].
pub(crate) fn accept_one(listener: &mut Listener) -> (Stream, SocketAddr) {
    let poller = Poller::new().expect("poller");
    poller
        .add(&*listener, Token(0), Interest::READABLE)
        .expect("register listener");
    let mut events = Events::with_capacity(4);
    wait_for(&poller, &mut events, Token(0), Event::is_readable);
    listener.accept().expect("accept")
}

/// The server's end of a fresh connection on `addr` (port 0), and the client's.
pub(crate) fn connected_pair(addr: SocketAddr) -> (Stream, TcpStream) {
    let mut listener = Listener::bind(addr).expect("bind");
    let client = connect(listener.local_addr().expect("local addr"));
    let (stream, _peer) = accept_one(&mut listener);
    (stream, client)
}
