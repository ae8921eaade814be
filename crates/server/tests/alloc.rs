//! No allocation in steady state (invariant 4): once its connections are warmed up, the server
//! answers thousands of lines, some split across writes, without a single heap allocation in
//! the whole process, counted by a global allocator that wraps the system's.
//!
//! This binary holds exactly one test: the counter sees every thread of the process, so a
//! second test running beside it would allocate during the measured phase.

mod common;

use common::{PATIENCE, Running, config, connect};
use ring::counting_alloc::CountingAlloc;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Instant;

/// The ring crate's counting allocator (the one crate allowed the `unsafe` it takes).
#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc::new();

/// Counts the allocations `phase` makes, in the whole process.
fn allocations_during(phase: impl FnOnce()) -> u64 {
    let before = ALLOC.allocations();
    phase();
    ALLOC.allocations() - before
}

const CONNECTIONS: usize = 64;
/// Messages exchanged while counting.
const MEASURED: usize = 10_000;
/// Rounds of every template on every connection before counting: enough for every buffer on
/// the path to reach the size this traffic needs.
const WARM_UP_ROUNDS: usize = 3;

/// The line lengths (body bytes) each connection cycles through, short to near a ring slot's
/// 4096 bytes (so that each write is read whole, and only a split write splits a line).
const BODY_LENGTHS: [usize; 8] = [0, 1, 9, 40, 200, 700, 1_500, 3_000];

/// One line to send and what must come back.
struct Message {
    line: Vec<u8>,
    /// Where the line is cut in two writes; `line.len()` for one write.
    split: usize,
    reply: Vec<u8>,
}

/// Connection `conn`'s `n`th template: a line that says whose it is (so a misdelivered reply
/// is caught) and, but for the shortest, is no palindrome (so an unreversed echo is caught).
/// Every other template is written in two pieces, cut right before the newline or in the
/// middle; some end in `\r\n`.
fn template(conn: usize, n: usize) -> Message {
    let body_len = BODY_LENGTHS[n];
    let tag = format!("c{conn:02}t{n} ");
    let filler = (0..).map(|j| b'a' + (j % 26) as u8);
    let body: Vec<u8> = tag.bytes().chain(filler).take(body_len).collect();
    let terminator: &[u8] = if n % 3 == 2 { b"\r\n" } else { b"\n" };
    let mut line = body.clone();
    line.extend_from_slice(terminator);
    let split = match n % 4 {
        // Split right before the newline: the whole body (and any `\r`) waits in the carry.
        1 => line.len() - 1,
        // Split in the middle.
        3 => line.len() / 2,
        _ => line.len(),
    };
    let mut reply: Vec<u8> = body.iter().rev().copied().collect();
    reply.extend_from_slice(terminator);
    Message { line, split, reply }
}

/// Sends `message`, in one or two writes, and checks the reply, read into `buf`; `what` (the
/// connection and the exchange's number) names it if it fails. Allocates nothing unless it
/// fails.
fn exchange(client: &mut TcpStream, message: &Message, buf: &mut [u8], what: (usize, usize)) {
    let (first, second) = message.line.split_at(message.split);
    client.write_all(first).expect("send");
    if !second.is_empty() {
        client.write_all(second).expect("send");
    }
    let reply = &mut buf[..message.reply.len()];
    client.read_exact(reply).expect("reply");
    if *reply != message.reply[..] {
        panic!(
            "connection {} exchange {}: sent {:?}, got {:?}",
            what.0,
            what.1,
            String::from_utf8_lossy(&message.line),
            String::from_utf8_lossy(reply)
        );
    }
}

/// Makes connection `conn`'s carry hold the longest line there is: sends all of its longest
/// template but the newline, then exchanges a whole line on the next connection. The reader
/// serves connections in the order their bytes arrived and the worker handles reads in ring
/// order, so when that reply is back the first piece has been read and carried on its own;
/// only then does the newline follow.
fn fill_the_carry(
    clients: &mut [TcpStream],
    conn: usize,
    templates: &[Vec<Message>],
    buf: &mut [u8],
) {
    let longest = templates[conn]
        .iter()
        .max_by_key(|m| m.line.len())
        .expect("templates");
    let (body, newline) = longest.line.split_at(longest.line.len() - 1);
    clients[conn].write_all(body).expect("send");
    let next = (conn + 1) % clients.len();
    exchange(&mut clients[next], &templates[next][0], buf, (next, 0));
    clients[conn].write_all(newline).expect("send");
    let reply = &mut buf[..longest.reply.len()];
    clients[conn].read_exact(reply).expect("reply");
    assert_eq!(*reply, longest.reply[..], "connection {conn}");
}

#[test]
fn the_data_path_does_not_allocate_in_steady_state() {
    let server = Running::start(config());
    let templates: Vec<Vec<Message>> = (0..CONNECTIONS)
        .map(|conn| (0..BODY_LENGTHS.len()).map(|n| template(conn, n)).collect())
        .collect();
    let longest_reply = templates
        .iter()
        .flatten()
        .map(|m| m.reply.len())
        .max()
        .unwrap();
    let mut buf = vec![0; longest_reply];
    let mut clients: Vec<TcpStream> = (0..CONNECTIONS).map(|_| connect(server.addr())).collect();

    // Warm-up. Every template on every connection, several times over.
    for number in 0..WARM_UP_ROUNDS * BODY_LENGTHS.len() {
        let n = number % BODY_LENGTHS.len();
        for (conn, client) in clients.iter_mut().enumerate() {
            exchange(client, &templates[conn][n], &mut buf, (conn, number));
        }
    }
    // Every carry at its largest, whatever the timing of the split writes above.
    for conn in 0..CONNECTIONS {
        fill_the_carry(&mut clients, conn, &templates, &mut buf);
    }
    // All connections readable at once: the reader's queue of ready connections grows to all
    // of them here, not later.
    for (conn, client) in clients.iter_mut().enumerate() {
        client.write_all(&templates[conn][3].line).expect("send");
    }
    for (conn, client) in clients.iter_mut().enumerate() {
        let reply = &mut buf[..templates[conn][3].reply.len()];
        client.read_exact(reply).expect("reply");
        assert_eq!(*reply, templates[conn][3].reply[..], "connection {conn}");
    }

    // The counter counts: an allocation made on purpose is seen.
    let on_purpose = allocations_during(|| drop(std::hint::black_box(Box::new(7_u64))));
    assert!(on_purpose >= 1, "the counter missed an allocation");

    // The measured phase: round-robin over the connections, each message a template of its
    // own connection, the templates taken in turn.
    let deadline = Instant::now() + PATIENCE;
    let mut done = 0;
    let allocations = allocations_during(|| {
        for i in 0..MEASURED {
            // The socket timeouts bound each exchange; this bounds them all together.
            if Instant::now() > deadline {
                break;
            }
            let conn = i % CONNECTIONS;
            let n = (i / CONNECTIONS) % BODY_LENGTHS.len();
            exchange(&mut clients[conn], &templates[conn][n], &mut buf, (conn, i));
            done += 1;
        }
    });
    assert_eq!(
        done, MEASURED,
        "the exchanges took longer than {PATIENCE:?}"
    );
    assert_eq!(
        allocations, 0,
        "{allocations} allocations while {MEASURED} lines were answered"
    );

    drop(clients);
    let summary = server.stop();
    assert_eq!(summary.connections, CONNECTIONS as u64, "{summary}");
}
