//! Clients that send faster than they are answered, on a server run in process: the reader then
//! fills a run of ring slots per `readv` and the worker answers a run with one `sendmsg`. The
//! replies must be exactly those of one read and one write at a time, in every framing with a
//! defined answer, whatever the slot size.

mod common;

use common::{
    Running, config, connect, frames, join, read_to_end, reversed_frames, reversed_lines,
};
use protocol::Framing;
use server::Config;
use std::io::Write;
use std::net::{Shutdown, SocketAddr};
use std::thread;

fn with(framing: Framing, edit: impl FnOnce(&mut Config)) -> Running {
    let mut config = config();
    config.framing = framing;
    edit(&mut config);
    Running::start(config)
}

/// Sends `request` from a thread of its own and half-closes, while this one reads every reply
/// up to the server's end of stream: a stream as fast as loopback takes it, both ways at once.
fn stream(addr: SocketAddr, request: Vec<u8>) -> Vec<u8> {
    let mut client = connect(addr);
    let mut writer = client.try_clone().expect("clone");
    let sender = thread::spawn(move || {
        writer.write_all(&request).expect("send");
        writer.shutdown(Shutdown::Write).expect("half-close");
    });
    let reply = read_to_end(&mut client);
    join(sender);
    reply
}

/// `count` lines of lengths that go round 0..`longest`, ended by `\n` or `\r\n` in turn, of
/// bytes that are never a palindrome and differ from line to line.
fn lines(count: usize, longest: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for i in 0..count {
        let len = (i * 7919) % longest;
        out.extend((0..len).map(|j| b'!' + ((i + j * 3) % 90) as u8));
        out.extend_from_slice(if i % 3 == 0 { b"\r\n" } else { b"\n" });
    }
    out
}

#[test]
fn a_stream_of_lines_some_longer_than_a_slot_comes_back_exact() {
    let server = with(Framing::Line, |_| {});
    // About 4 MiB, lines up to 9 KiB: many span two or three 4 KiB slots.
    let input = lines(1_000, 9_000);
    assert!(input.len() > 4 << 20);
    let reply = stream(server.addr(), input.clone());
    assert_eq!(reply.len(), input.len());
    assert!(reply == reversed_lines(&input), "replies differ");
    server.stop();
}

#[test]
fn a_stream_of_lines_through_tiny_slots_comes_back_exact() {
    // Seven-byte slots: one `readv` fills sixteen of them, and most lines span several.
    let server = with(Framing::Line, |c| c.buffer_size = 7);
    let input = lines(20_000, 60);
    let reply = stream(server.addr(), input.clone());
    assert!(reply == reversed_lines(&input), "replies differ");
    server.stop();
}

#[test]
fn a_stream_of_frames_some_longer_than_a_slot_comes_back_exact() {
    let server = with(Framing::Frame, |_| {});
    let payloads: Vec<Vec<u8>> = (0..600)
        .map(|i| {
            let len = (i * 7919) % 10_000;
            (0..len).map(|j| (i * 31 + j * 7) as u8).collect()
        })
        .collect();
    let payloads: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
    let reply = stream(server.addr(), frames(&payloads));
    assert!(reply == reversed_frames(&payloads), "replies differ");
    server.stop();
}

#[test]
fn an_oversize_line_deep_in_a_stream_ends_it_after_every_reply_due() {
    let server = with(Framing::Line, |c| c.max_line = 5_000);
    let due = lines(400, 5_000);
    let mut input = due.clone();
    input.extend(std::iter::repeat_n(b'x', 6_000));
    input.extend(lines(400, 5_000));
    let reply = stream(server.addr(), input);
    let mut expected = reversed_lines(&due);
    expected.extend_from_slice(b"error: line longer than 5000 bytes\n");
    assert_eq!(reply.len(), expected.len());
    assert!(reply == expected, "replies differ");
    server.stop();
}
