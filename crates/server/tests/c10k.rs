//! Ten thousand connections open at once on the built `server` binary: every client gets
//! exactly its own reversed line, and what the server's memory grows by per connection is
//! measured and bounded.
//!
//! A test binary of its own: it raises its process's RLIMIT_NOFILE (the server inherits it),
//! and this binary holds only this test.

mod common;

use common::{Binary, connect, read_n, read_to_end, status_kib};
use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
use std::io::Write;
use std::net::{Shutdown, TcpStream};
use std::time::Instant;

/// The connections wanted: the server's default `--max-connections`.
const WANTED: usize = 10_000;

/// Descriptors each process needs besides the connections: the server's own (about 15) and
/// this process's (standard streams, pipes to the child, the test harness), with room to spare.
const HEADROOM: u64 = 256;

/// Clients connected before their replies are awaited: well under the listen backlog (1024),
/// so that no SYN is dropped for a full accept queue and retried a second later.
const BATCH: usize = 500;

/// The most a connection may add to the server's resident memory.
///
/// The server keeps per connection only its table entries in both threads (a few hundred
/// bytes; 0.26 KiB measured) and no buffer until one is needed: ring slots are shared, and a
/// connection's carry and pending output are empty vectors (no allocation) while its replies
/// leave at once. Socket buffers are kernel memory, not in RSS. The bound leaves several times
/// that for allocator slack and table growth (vectors double), and still fails for a
/// preallocated buffer of 4 KiB (the default `--buffer-size`) or more per connection: with
/// glibc's malloc each such block touches at least one page (its header) even if never used,
/// so 10,000 of them add at least 4 KiB per connection.
const MAX_RSS_PER_CONNECTION_KIB: u64 = 2;

/// The fewest connections whose memory is worth measuring: with fewer, a few pages of
/// allocator growth would weigh more than the connections themselves.
const MIN_MEASURED: usize = 1_000;

/// The line client `n` sends: distinct for every client, and no palindrome.
fn line(n: usize) -> Vec<u8> {
    format!("c10k client {n:05}\n").into_bytes()
}

fn reversed(line: &[u8]) -> Vec<u8> {
    line[..line.len() - 1]
        .iter()
        .rev()
        .chain(b"\n")
        .copied()
        .collect()
}

/// Raises the soft descriptor limit as far as allowed and returns how many connections fit
/// under it, in this process (the clients) and in the server (which inherits it).
fn raise_nofile() -> usize {
    let limit = getrlimit(Resource::Nofile);
    // An unlimited hard limit is still capped by the kernel (`fs.nr_open`): ask for what the
    // test needs.
    let soft = limit.maximum.unwrap_or(WANTED as u64 + HEADROOM);
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(soft),
            maximum: limit.maximum,
        },
    )
    .unwrap();
    let fit = usize::try_from(soft.saturating_sub(HEADROOM)).unwrap_or(usize::MAX);
    if fit < WANTED {
        eprintln!(
            "c10k: RLIMIT_NOFILE hard limit is {soft}: testing {fit} connections instead of {WANTED}"
        );
    }
    fit.min(WANTED)
}

#[test]
fn ten_thousand_concurrent_connections_are_each_served_in_little_memory() {
    let count = raise_nofile();
    // The default --max-connections is 10,000: the test takes the server as it comes.
    let mut server = Binary::spawn(&["-q", "0"]);
    let addr = server.listening();
    let pid = server.pid();

    // One connection first, so that what any connection costs once (lazy allocations, the
    // first use of each thread's heap) is in the baseline.
    let mut warm = connect(addr);
    warm.write_all(b"warm up\n").unwrap();
    assert_eq!(read_n(&mut warm, 8), b"pu mraw\n");
    // It leaves in order: the server's FIN comes after the reader was told its place is
    // free, so all 10,000 fit under --max-connections.
    warm.shutdown(Shutdown::Write).unwrap();
    assert_eq!(read_to_end(&mut warm), b"");
    drop(warm);
    let before = status_kib(pid, "VmRSS");

    let start = Instant::now();
    let mut clients: Vec<TcpStream> = Vec::with_capacity(count);
    for first in (0..count).step_by(BATCH) {
        let batch = first..(first + BATCH).min(count);
        for n in batch.clone() {
            let mut client = connect(addr);
            client.write_all(&line(n)).unwrap();
            clients.push(client);
        }
        // A reply means the server took the connection: the accept queue is empty again
        // before the next batch.
        for n in batch {
            let want = reversed(&line(n));
            assert_eq!(read_n(&mut clients[n], want.len()), want, "client {n}");
        }
    }
    let took = start.elapsed();
    let after = status_kib(pid, "VmRSS");

    eprintln!(
        "c10k: {count} connections open at once, served in {took:.2?}; server RSS {before} KiB \
         before, {after} KiB after"
    );
    if count >= MIN_MEASURED {
        let per_connection = after.saturating_sub(before) as f64 / count as f64;
        eprintln!("c10k: {per_connection:.2} KiB per connection");
        assert!(
            per_connection < MAX_RSS_PER_CONNECTION_KIB as f64,
            "{per_connection:.2} KiB per connection (bound {MAX_RSS_PER_CONNECTION_KIB} KiB)"
        );
    } else {
        eprintln!(
            "c10k: memory per connection not checked: {count} connections are too few to \
             measure it (at least {MIN_MEASURED} needed)"
        );
    }

    let summary = server.terminate();
    // Every one was taken, none rejected or shed.
    assert!(
        summary.contains(&format!(
            " {} connections (0 rejected, 0 shed, 0 timed out)",
            count + 1
        )),
        "{summary}"
    );
    drop(clients);
}
