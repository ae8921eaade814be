//! The poller on real sockets and eventfds: edge and level triggering, modify and delete,
//! timeouts, the event list's capacity, and waking a blocked thread.

mod common;

use common::{PATIENCE, QUIET, connected_pair, ipv4_loopback, wait_for, watched};
use poller::{Event, Events, Interest, Poller, Token, Waker};
use std::io::{self, Write};
use std::sync::{Arc, mpsc};
use std::thread;
use std::time::{Duration, Instant};

const CONNECTION: Token = Token(7);

fn tokens(events: &Events) -> Vec<Token> {
    events.iter().map(|event| event.token()).collect()
}

#[test]
fn edge_triggered_readiness_is_reported_once_per_edge() {
    let (stream, mut client) = connected_pair(ipv4_loopback());
    let (poller, mut events) = watched(&stream, CONNECTION, Interest::READABLE | Interest::EDGE);

    client.write_all(b"first").unwrap();
    assert_eq!(poller.wait(&mut events, Some(PATIENCE)).unwrap(), 1);
    let event = events.iter().next().unwrap();
    assert_eq!(event.token(), CONNECTION);
    assert!(event.is_readable());

    // The bytes are still unread, but there was no new edge: silence until the timeout.
    assert_eq!(poller.wait(&mut events, Some(QUIET)).unwrap(), 0);
    assert!(events.is_empty());

    // New data is a new edge.
    client.write_all(b"second").unwrap();
    assert_eq!(poller.wait(&mut events, Some(PATIENCE)).unwrap(), 1);
    assert_eq!(tokens(&events), [CONNECTION]);

    let mut buffer = [0; 64];
    let n = stream.read(&mut buffer).unwrap();
    assert_eq!(&buffer[..n], b"firstsecond");
}

#[test]
fn level_triggered_readiness_repeats_while_data_is_unread() {
    let (stream, mut client) = connected_pair(ipv4_loopback());
    let poller = Poller::new().unwrap();
    poller.add(&stream, CONNECTION, Interest::READABLE).unwrap();
    let mut events = Events::with_capacity(8);

    client.write_all(b"ping").unwrap();
    wait_for(&poller, &mut events, CONNECTION, Event::is_readable);
    // No new data, yet the event comes again at once: the data is still there.
    for _ in 0..3 {
        assert_eq!(poller.wait(&mut events, Some(PATIENCE)).unwrap(), 1);
        assert_eq!(tokens(&events), [CONNECTION]);
    }

    let mut buffer = [0; 64];
    assert_eq!(stream.read(&mut buffer).unwrap(), 4);
    assert_eq!(poller.wait(&mut events, Some(QUIET)).unwrap(), 0);
}

#[test]
fn modify_changes_the_kind_of_event_and_delete_silences_it() {
    let (stream, mut client) = connected_pair(ipv4_loopback());
    let poller = Poller::new().unwrap();
    let mut events = Events::with_capacity(8);

    // An idle connection is writable but not readable.
    poller.add(&stream, CONNECTION, Interest::READABLE).unwrap();
    assert_eq!(poller.wait(&mut events, Some(QUIET)).unwrap(), 0);

    let other = Token(8);
    poller.modify(&stream, other, Interest::WRITABLE).unwrap();
    let event = wait_for(&poller, &mut events, other, Event::is_writable);
    assert!(!event.is_readable());

    poller
        .modify(&stream, CONNECTION, Interest::READABLE)
        .unwrap();
    client.write_all(b"x").unwrap();
    let event = wait_for(&poller, &mut events, CONNECTION, Event::is_readable);
    assert!(!event.is_writable());

    poller.delete(&stream).unwrap();
    client.write_all(b"y").unwrap();
    assert_eq!(poller.wait(&mut events, Some(QUIET)).unwrap(), 0);
}

#[test]
fn registering_twice_or_removing_a_stranger_fails() {
    let poller = Poller::new().unwrap();
    let waker = Waker::new().unwrap();
    let error = poller.delete(&waker).unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::NotFound, "{error}");
    let error = poller
        .modify(&waker, Token(0), Interest::READABLE)
        .unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::NotFound, "{error}");

    poller.add(&waker, Token(0), Interest::READABLE).unwrap();
    let error = poller
        .add(&waker, Token(0), Interest::READABLE)
        .unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::AlreadyExists, "{error}");
}

#[test]
fn a_one_nanosecond_timeout_sleeps_a_whole_millisecond() {
    let poller = Poller::new().unwrap();
    let mut events = Events::with_capacity(8);
    let start = Instant::now();
    assert_eq!(
        poller
            .wait(&mut events, Some(Duration::from_nanos(1)))
            .unwrap(),
        0
    );
    // Rounded up, not down to a busy poll. Only the lower bound is certain.
    assert!(
        start.elapsed() >= Duration::from_millis(1),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn a_zero_timeout_polls_and_still_reports_what_is_ready() {
    let poller = Poller::new().unwrap();
    let waker = Waker::new().unwrap();
    poller.add(&waker, Token(3), Interest::READABLE).unwrap();
    let mut events = Events::with_capacity(8);

    assert_eq!(poller.wait(&mut events, Some(Duration::ZERO)).unwrap(), 0);
    waker.wake().unwrap();
    assert_eq!(poller.wait(&mut events, Some(Duration::ZERO)).unwrap(), 1);
    assert_eq!(tokens(&events), [Token(3)]);
}

#[test]
fn a_wait_takes_at_most_capacity_events_and_leaves_the_rest_for_the_next() {
    let poller = Poller::new().unwrap();
    let wakers: Vec<Waker> = (0..3).map(|_| Waker::new().unwrap()).collect();
    for (i, waker) in (0..).zip(&wakers) {
        poller.add(waker, Token(i), Interest::READABLE).unwrap();
        waker.wake().unwrap();
    }
    let mut events = Events::with_capacity(2);
    let capacity = events.capacity();

    let mut seen = Vec::new();
    for _ in 0..2 {
        let n = poller.wait(&mut events, Some(PATIENCE)).unwrap();
        assert!(
            n >= 1 && n <= capacity,
            "{n} events with room for {capacity}"
        );
        assert_eq!(events.len(), n);
        seen.extend(tokens(&events));
    }
    // Level-triggered events go to the back of the kernel's ready list once reported, so the
    // second wait starts with the one the first had no room for.
    seen.sort();
    seen.dedup();
    assert_eq!(seen, [Token(0), Token(1), Token(2)]);
    // Filled in place, never grown.
    assert_eq!(events.capacity(), capacity);
}

#[test]
fn a_waker_releases_a_thread_blocked_without_timeout() {
    const WAKER: Token = Token(99);
    let poller = Arc::new(Poller::new().unwrap());
    let waker = Arc::new(Waker::new().unwrap());
    poller.add(&*waker, WAKER, Interest::READABLE).unwrap();

    let (sender, receiver) = mpsc::channel();
    let waiter = {
        let poller = Arc::clone(&poller);
        thread::spawn(move || {
            let mut events = Events::with_capacity(8);
            let result = poller.wait(&mut events, None).map(|_| tokens(&events));
            sender.send(result).unwrap();
        })
    };

    // Whether the waiter is asleep yet or not, the eventfd stays readable until drained.
    waker.wake().unwrap();
    let woken = receiver
        .recv_timeout(PATIENCE)
        .expect("the waiting thread was not released");
    assert_eq!(woken.unwrap(), [WAKER]);
    waiter.join().unwrap();

    waker.drain().unwrap();
    let mut events = Events::with_capacity(8);
    assert_eq!(poller.wait(&mut events, Some(QUIET)).unwrap(), 0);
}

#[test]
fn wakes_from_many_threads_add_up_and_drain_at_once() {
    fn send_and_sync<T: Send + Sync>() {}
    send_and_sync::<Waker>();
    send_and_sync::<Poller>();

    let poller = Poller::new().unwrap();
    let waker = Arc::new(Waker::new().unwrap());
    poller.add(&*waker, Token(1), Interest::READABLE).unwrap();
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let waker = Arc::clone(&waker);
            thread::spawn(move || (0..100).try_for_each(|_| waker.wake()))
        })
        .collect();
    for thread in threads {
        thread.join().unwrap().unwrap();
    }

    let mut events = Events::with_capacity(8);
    assert_eq!(poller.wait(&mut events, Some(PATIENCE)).unwrap(), 1);
    waker.drain().unwrap();
    assert_eq!(poller.wait(&mut events, Some(QUIET)).unwrap(), 0);
    // Draining when nothing is pending is harmless.
    waker.drain().unwrap();
}
