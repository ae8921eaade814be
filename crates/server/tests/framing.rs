//! The wire protocol end to end, on a server run in process: every framing, lines cut at every
//! byte, half-close, oversize input, and the exit command however it arrives.

mod common;

use common::{
    Running, config, connect, exchange, frames, read_n, read_to_end, reversed_frames,
    reversed_lines, send_pieces,
};
use protocol::{Framing, frame_header};
use server::{Config, ExitPolicy, StopReason};
use std::io::Write;
use std::net::Shutdown;

fn with(framing: Framing, edit: impl FnOnce(&mut Config)) -> Running {
    let mut config = config();
    config.framing = framing;
    edit(&mut config);
    Running::start(config)
}

#[test]
fn lines_come_back_reversed_with_their_terminators() {
    let server = with(Framing::Line, |_| {});
    let input = b"hello\nab\r\n\n\r\nx\ry\n\xff\x00\x80\n";
    assert_eq!(
        exchange(server.addr(), input),
        b"olleh\nba\r\n\n\r\ny\rx\n\x80\x00\xff\n"
    );
    server.stop();
}

#[test]
fn several_lines_in_one_session_each_get_their_reply_before_the_next_is_sent() {
    let server = with(Framing::Line, |_| {});
    let mut client = connect(server.addr());
    for line in [
        "one",
        "two",
        "three",
        "",
        "a much longer line than the others",
    ] {
        client.write_all(format!("{line}\n").as_bytes()).unwrap();
        let reply = read_n(&mut client, line.len() + 1);
        let expected: String = line.chars().rev().chain(['\n']).collect();
        assert_eq!(reply, expected.as_bytes());
    }
    drop(client);
    server.stop();
}

/// With one-byte ring entries every read is one byte: each line is split at every byte, and
/// `\r\n` between two reads, whatever the client does.
#[test]
fn lines_split_at_every_byte_by_the_server_come_back_whole() {
    let input = b"hello\r\nworld\nexi\nexiting\n\rx\r\r\n\nlast";
    for buffer_size in [1, 2, 3, 5, 7] {
        let server = with(Framing::Line, |c| c.buffer_size = buffer_size);
        assert_eq!(
            exchange(server.addr(), input),
            reversed_lines(input),
            "buffer size {buffer_size}"
        );
        server.stop();
    }
}

/// The client cuts the stream at every byte position, sending the two parts separately.
#[test]
fn lines_split_at_every_byte_by_the_client_come_back_whole() {
    let server = with(Framing::Line, |_| {});
    let input = b"abc\r\ndef\nexit now\n\r\n";
    for cut in 0..=input.len() {
        let mut client = connect(server.addr());
        send_pieces(&mut client, &[&input[..cut], &input[cut..]]);
        client.shutdown(Shutdown::Write).unwrap();
        assert_eq!(
            read_to_end(&mut client),
            reversed_lines(input),
            "cut at {cut}"
        );
    }
    server.stop();
}

#[test]
fn half_close_answers_a_trailing_unterminated_line_then_closes() {
    let server = with(Framing::Line, |_| {});
    // `printf 'hello\n' | nc -N`: data and FIN arrive together; the original lost them.
    assert_eq!(exchange(server.addr(), b"hello\n"), b"olleh\n");
    assert_eq!(exchange(server.addr(), b"abc\ndef"), b"cba\nfed");
    assert_eq!(exchange(server.addr(), b"abc\r"), b"\rcba");
    assert_eq!(
        exchange(server.addr(), b"no newline at all"),
        b"lla ta enilwen on"
    );
    assert_eq!(exchange(server.addr(), b""), b"");
    server.stop();
}

#[test]
fn half_close_then_the_client_still_reads_everything() {
    let server = with(Framing::Line, |c| c.buffer_size = 3);
    let input: Vec<u8> = (0..2000)
        .flat_map(|i| format!("line {i}\n").into_bytes())
        .collect();
    assert_eq!(exchange(server.addr(), &input), reversed_lines(&input));
    server.stop();
}

#[test]
fn chunk_framing_reverses_each_read_and_holds_back_a_possible_exit() {
    // One-byte reads make each read's reversal the identity, except where bytes were held
    // back at a line start because they could still be `exit`: `exit` is held, the `i` after
    // it shows it was data, and `exiti` goes out reversed as one unit.
    let server = with(Framing::Chunk, |c| c.buffer_size = 1);
    assert_eq!(
        exchange(server.addr(), b"abc\nexiting\n"),
        b"abc\nitixeng\n"
    );
    // Held bytes at end of stream are data too.
    assert_eq!(exchange(server.addr(), b"ab\nexi"), b"ab\nixe");
    server.stop();

    // Big reads: each is reversed whole.
    let server = with(Framing::Chunk, |_| {});
    assert_eq!(exchange(server.addr(), b"hello world"), b"dlrow olleh");
    server.stop();
}

#[test]
fn frames_come_back_with_the_payload_reversed() {
    let server = with(Framing::Frame, |c| c.buffer_size = 5);
    let payloads = [&b"hello"[..], b"", b"exiting", b"x", &[7u8; 300]];
    assert_eq!(
        exchange(server.addr(), &frames(&payloads)),
        reversed_frames(&payloads)
    );
    server.stop();
}

#[test]
fn frames_in_one_read_are_reversed_in_place() {
    let server = with(Framing::Frame, |_| {});
    let payloads = [&b"abc"[..], b"de"];
    assert_eq!(
        exchange(server.addr(), &frames(&payloads)),
        reversed_frames(&payloads)
    );
    server.stop();
}

#[test]
fn an_incomplete_frame_at_end_of_stream_is_dropped_and_the_connection_closed() {
    let server = with(Framing::Frame, |_| {});
    let mut request = frames(&[b"ok"]);
    request.extend_from_slice(&frame_header(10));
    request.extend_from_slice(b"short");
    assert_eq!(exchange(server.addr(), &request), reversed_frames(&[b"ok"]));
    assert_eq!(exchange(server.addr(), &[0, 0]), b"");
    server.stop();
}

#[test]
fn an_oversize_frame_closes_that_connection_only_after_the_replies_due() {
    let server = with(Framing::Frame, |c| c.max_frame = 8);
    let mut bystander = connect(server.addr());
    let mut client = connect(server.addr());
    client.write_all(&frames(&[b"abc", b"123456789"])).unwrap();
    assert_eq!(read_to_end(&mut client), reversed_frames(&[b"abc"]));

    bystander.write_all(&frames(&[b"12345678"])).unwrap();
    assert_eq!(read_n(&mut bystander, 12), reversed_frames(&[b"12345678"]));
    server.stop();
}

#[test]
fn an_oversize_line_gets_the_error_line_after_the_replies_due() {
    let server = with(Framing::Line, |c| c.max_line = 8);
    let mut bystander = connect(server.addr());
    let mut client = connect(server.addr());
    // Exactly 8 is fine, 9 is not; the error comes as soon as the 9th byte arrives.
    client.write_all(b"12345678\nok\n123456789").unwrap();
    let expected = b"87654321\nko\nerror: line longer than 8 bytes\n";
    assert_eq!(read_n(&mut client, expected.len()), expected);
    // Then end of stream; what the client sends afterwards is discarded.
    client.write_all(b"more\n").unwrap();
    assert_eq!(read_to_end(&mut client), b"");

    bystander.write_all(b"fine\n").unwrap();
    assert_eq!(read_n(&mut bystander, 5), b"enif\n");
    server.stop();
}

#[test]
fn an_oversize_line_is_found_across_reads_and_at_end_of_stream() {
    let server = with(Framing::Line, |c| {
        c.max_line = 4;
        c.buffer_size = 2;
    });
    assert_eq!(
        exchange(server.addr(), b"ab\n1234\r\n12345"),
        b"ba\n4321\r\nerror: line longer than 4 bytes\n"
    );
    // `1234\r` then end of stream: the `\r` is data, so the line is five bytes long.
    assert_eq!(
        exchange(server.addr(), b"1234\r"),
        b"error: line longer than 4 bytes\n"
    );
    server.stop();
}

// --- the exit command ---

fn stopped_by_exit(summary: &server::Summary) -> bool {
    matches!(summary.reason, Some(StopReason::Exit { .. }))
}

#[test]
fn exit_stops_the_server_and_is_not_echoed() {
    for input in [&b"exit\n"[..], b"exit\r\n", b"hello\nexit\n"] {
        let server = with(Framing::Line, |_| {});
        let expected: &[u8] = if input.starts_with(b"hello") {
            b"olleh\n"
        } else {
            b""
        };
        assert_eq!(exchange(server.addr(), input), expected, "{input:?}");
        assert!(stopped_by_exit(&server.finished()));
    }
}

#[test]
fn exit_split_across_reads_stops_the_server_in_every_framing_that_has_lines() {
    for framing in [Framing::Line, Framing::Chunk] {
        for buffer_size in [1, 2, 3] {
            let server = with(framing, |c| c.buffer_size = buffer_size);
            let mut client = connect(server.addr());
            send_pieces(&mut client, &[b"e", b"xi", b"t\r", b"\n"]);
            assert_eq!(read_to_end(&mut client), b"", "{framing:?} {buffer_size}");
            assert!(stopped_by_exit(&server.finished()));
        }
    }
}

#[test]
fn exit_then_end_of_stream_stops_the_server() {
    for framing in [Framing::Line, Framing::Chunk] {
        let server = with(framing, |_| {});
        assert_eq!(exchange(server.addr(), b"exit"), b"");
        assert!(stopped_by_exit(&server.finished()));
    }
}

#[test]
fn exit_frame_stops_the_server() {
    let server = with(Framing::Frame, |_| {});
    let request = frames(&[b"hi", b"exit"]);
    assert_eq!(exchange(server.addr(), &request), reversed_frames(&[b"hi"]));
    assert!(stopped_by_exit(&server.finished()));
}

#[test]
fn lines_that_only_look_like_exit_are_data() {
    let server = with(Framing::Line, |_| {});
    let input = b"exiting\n exit\nfoo exit\nEXIT\nexit \nexi\nexit\r\r\n";
    assert_eq!(exchange(server.addr(), input), reversed_lines(input));
    assert!(server.is_running());
    server.stop();
}

#[test]
fn with_exit_off_an_exit_line_is_reversed_like_any_line() {
    for framing in [Framing::Line, Framing::Chunk] {
        let server = with(framing, |c| c.exit = ExitPolicy::Off);
        let reply = exchange(server.addr(), b"exit\n");
        let expected: &[u8] = if framing == Framing::Line {
            b"tixe\n"
        } else {
            b"\ntixe"
        };
        assert_eq!(reply, expected, "{framing:?}");
        assert_eq!(exchange(server.addr(), b"exit"), b"tixe");
        assert!(server.is_running());
        assert_eq!(server.stop().reason, Some(StopReason::Handle));
    }
}

#[test]
fn data_after_an_exit_line_in_the_same_read_is_still_answered() {
    let server = with(Framing::Line, |_| {});
    assert_eq!(exchange(server.addr(), b"a\nexit\nb\n"), b"a\nb\n");
    assert!(stopped_by_exit(&server.finished()));
}

#[test]
fn everything_other_clients_sent_before_the_exit_is_answered() {
    let server = with(Framing::Line, |c| c.buffer_size = 512);
    // Each client's lines are in the server's socket buffer before the exit arrives: on
    // loopback a write returns once the bytes are queued at the receiver.
    let mut clients = Vec::new();
    for n in 0..8 {
        let mut client = connect(server.addr());
        let input: Vec<u8> = (0..500)
            .flat_map(|i| format!("client {n} line {i}\n").into_bytes())
            .collect();
        client.write_all(&input).unwrap();
        clients.push((client, input));
    }
    let mut stopper = connect(server.addr());
    stopper.write_all(b"exit\n").unwrap();
    for (client, input) in &mut clients {
        assert_eq!(read_to_end(client), reversed_lines(input));
    }
    assert!(stopped_by_exit(&server.finished()));
}

#[test]
fn exit_as_the_first_carried_line_of_a_read_then_more_lines() {
    for buffer_size in 1..=9 {
        for (input, expected) in [
            (&b"ab\nexit\r\ncd\n"[..], &b"ba\ndc\n"[..]),
            (b"exit\nxy\n", b"yx\n"),
            (b"ab\nexit\n", b"ba\n"),
        ] {
            let server = with(Framing::Line, |c| c.buffer_size = buffer_size);
            assert_eq!(
                exchange(server.addr(), input),
                expected,
                "{input:?} buffer size {buffer_size}"
            );
            assert!(stopped_by_exit(&server.finished()));
        }
    }
}

#[test]
fn frames_split_at_every_byte_by_the_server_come_back_whole() {
    let payloads: [&[u8]; 6] = [b"", b"abcd", b"", b"exix", b"exit", b"0123456789abcdef"];
    let (request, expected) = (frames(&payloads), reversed_frames(&payloads));
    for buffer_size in 1..=9 {
        // With `--exit off` the `exit` frame is data too.
        let server = with(Framing::Frame, |c| {
            c.buffer_size = buffer_size;
            c.exit = ExitPolicy::Off;
        });
        assert_eq!(
            exchange(server.addr(), &request),
            expected,
            "buffer size {buffer_size}"
        );
        server.stop();
    }
}

/// At exactly `--max-line` body bytes a `\r` may follow (it may be the terminator's), split
/// anywhere; any other byte is one too many.
#[test]
fn the_max_line_boundary_allows_a_carried_cr() {
    for buffer_size in 1..=6 {
        let server = with(Framing::Line, |c| {
            c.max_line = 3;
            c.buffer_size = buffer_size;
        });
        assert_eq!(exchange(server.addr(), b"abc\r\nxyz\n"), b"cba\r\nzyx\n");
        assert_eq!(
            exchange(server.addr(), b"abc\rd\n"),
            b"error: line longer than 3 bytes\n"
        );
        server.stop();
    }
}

#[test]
fn chunk_framing_exit_split_after_data_on_the_line_before() {
    let server = with(Framing::Chunk, |_| {});
    let mut client = connect(server.addr());
    send_pieces(&mut client, &[b"ab\nex", b"it", b"\r\n"]);
    client.shutdown(Shutdown::Write).unwrap();
    assert_eq!(read_to_end(&mut client), b"\nba");
    assert!(stopped_by_exit(&server.finished()));
}

/// The stop ends every stream: bytes held back as a possible exit line, and an unfinished
/// line, were received and are answered as at end of stream.
#[test]
fn at_a_stop_held_bytes_and_unfinished_lines_are_answered() {
    for (framing, sent, first, last) in [
        (Framing::Chunk, &b"hello\ne"[..], &b"\nolleh"[..], &b"e"[..]),
        (Framing::Line, b"hello\nwor", b"olleh\n", b"row"),
    ] {
        let server = with(framing, |_| {});
        let mut client = connect(server.addr());
        client.write_all(sent).unwrap();
        assert_eq!(read_n(&mut client, first.len()), first);
        let mut stopper = connect(server.addr());
        stopper.write_all(b"exit\n").unwrap();
        assert_eq!(read_to_end(&mut client), last, "{framing:?}");
        assert!(stopped_by_exit(&server.finished()));
    }
}
