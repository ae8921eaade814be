//! The built `server` binary run out of file descriptors (RLIMIT_NOFILE 64) by a storm of 100
//! connections: the ones it cannot hold are closed with a warning, the others are served, and
//! once the storm is gone it serves new clients again and stops cleanly.
//!
//! A test binary of its own: it changes its process's RLIMIT_NOFILE, and this binary holds
//! only this test, so nothing else runs while the limit is low.

mod common;

use common::{Binary, PATIENCE, connect, read_to_end};
use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// The server's descriptor limit: its own descriptors (standard streams, two epolls, wakers,
/// the signal pipe, two listeners and their spares) take about 15, so well under 100
/// connections fit.
const NOFILE: u64 = 64;

/// Connections in the storm, all open at once.
const STORM: usize = 100;

/// How soon after the storm a new client must be served.
const RECOVERY: Duration = Duration::from_secs(3);

/// What the server did with one client.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    /// It got exactly its reversed line.
    Served,
    /// The server closed it (end of stream or reset) without a byte of reply.
    Closed,
    /// Neither, by the deadline: a connection left in limbo.
    Hung,
}

/// Sends `line` (unless the connection is already gone) and reads what comes back, waiting
/// until `deadline`. A reply that is wrong or cut short fails.
fn outcome(client: &mut TcpStream, line: &[u8], deadline: Instant) -> Outcome {
    if client.write_all(line).is_err() {
        // Reset before the line went out: the server closed it.
        return Outcome::Closed;
    }
    let want: Vec<u8> = line[..line.len() - 1]
        .iter()
        .rev()
        .chain(b"\n")
        .copied()
        .collect();
    let mut got = Vec::new();
    let mut buf = [0; 256];
    for _ in 0..common::MAX_ROUNDS {
        if got.len() >= want.len() {
            break;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            assert!(got.is_empty(), "{line:?}: partial reply {got:?}");
            return Outcome::Hung;
        }
        client.set_read_timeout(Some(left)).unwrap();
        match client.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(err) if err.kind() == ErrorKind::ConnectionReset => break,
            Err(err) if matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(err) if err.kind() == ErrorKind::Interrupted => {}
            Err(err) => panic!("{line:?}: {err}"),
        }
    }
    if got.is_empty() {
        return Outcome::Closed;
    }
    // Part of a reply and then a close would be a connection dropped after it was taken.
    assert_eq!(got, want, "{line:?}: wrong or partial reply");
    Outcome::Served
}

/// The number just before `label` in the summary line (`... 3 connections (0 rejected, ...`).
fn count_before(summary: &str, label: &str) -> u64 {
    let end = summary.find(label).unwrap_or_else(|| panic!("{summary}"));
    let start = summary[..end].rfind([' ', '(']).map_or(0, |i| i + 1);
    summary[start..end]
        .parse()
        .unwrap_or_else(|_| panic!("{summary}"))
}

#[test]
fn out_of_descriptors_it_sheds_the_excess_warns_and_recovers() {
    // The child inherits the limit; ours goes back at once, since this process needs more
    // than 64 descriptors for the storm's clients.
    let ours = getrlimit(Resource::Nofile);
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(NOFILE),
            maximum: ours.maximum,
        },
    )
    .unwrap();
    let mut server = Binary::spawn(&["-q", "0"]);
    setrlimit(Resource::Nofile, ours).unwrap();
    let addr = server.listening();

    // Every connect succeeds (the listen backlog holds them); the server takes what fits.
    let mut storm: Vec<TcpStream> = (0..STORM).map(|_| connect(addr)).collect();
    let deadline = Instant::now() + PATIENCE;
    let outcomes: Vec<Outcome> = storm
        .iter_mut()
        .enumerate()
        .map(|(n, client)| {
            outcome(
                client,
                format!("storm client {n:03}\n").as_bytes(),
                deadline,
            )
        })
        .collect();
    let served = outcomes.iter().filter(|o| **o == Outcome::Served).count();
    let closed = outcomes.iter().filter(|o| **o == Outcome::Closed).count();
    eprintln!("storm of {STORM} with RLIMIT_NOFILE {NOFILE}: {served} served, {closed} closed");
    assert_eq!(served + closed, STORM, "some were neither: {outcomes:?}");
    assert!(closed > 0, "the limit did not bite: all {STORM} served");
    assert!(served > 0, "nothing served under a limit of {NOFILE}");
    server.wait_for_line(|l| l.contains("WARN") && l.contains("out of file descriptors"));

    // The served ones leave in order: the server's FIN says their end was handled, so their
    // descriptors are about to be freed.
    for (client, outcome) in storm.iter_mut().zip(&outcomes) {
        if *outcome == Outcome::Served {
            client.shutdown(Shutdown::Write).unwrap();
            assert_eq!(read_to_end(client), b"");
        }
    }
    drop(storm);

    let (attempts, took) = served_after_the_storm(addr);
    eprintln!("after the storm: served in {took:?}, attempt {attempts}");
    assert!(took < RECOVERY, "a new client waited {took:?}");

    let summary = server.terminate();
    // Each client that saw its connection close was one the server shed, and every
    // connection it took was served.
    let shed_after = (attempts - 1) as u64;
    assert_eq!(
        count_before(&summary, " shed,"),
        closed as u64 + shed_after,
        "{summary}"
    );
    assert_eq!(
        count_before(&summary, " connections ("),
        served as u64 + 1,
        "{summary}"
    );
}

/// Connects new clients until one is served, within [`RECOVERY`] of the first connect: a
/// client that comes while the server still holds the storm's last descriptors may be shed,
/// which is right, so the next one tries again. Returns the attempts and the time taken.
fn served_after_the_storm(addr: SocketAddr) -> (usize, Duration) {
    let start = Instant::now();
    let deadline = start + RECOVERY;
    for attempt in 1..=100 {
        assert!(
            Instant::now() < deadline,
            "not served after {attempt} attempts"
        );
        let mut client = connect(addr);
        match outcome(&mut client, b"after the storm\n", deadline) {
            Outcome::Served => return (attempt, start.elapsed()),
            Outcome::Closed => {}
            Outcome::Hung => panic!("attempt {attempt}: no reply within {RECOVERY:?}"),
        }
    }
    panic!("100 new clients in a row were closed");
}
