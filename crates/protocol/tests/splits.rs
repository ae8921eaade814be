//! Every decoder against its one-shot reference: hand-written cases, then every input up to 8
//! bytes over a small alphabet, each split into chunks in every possible way.

mod common;

use common::{Exits, Frames, Harness, Lines, Scratch, check, check_all_splits, for_every_input};

/// The alphabet of the exhaustive line and exit tests: the letters of `exit`, both terminator
/// bytes, and one letter that is in no keyword.
const TEXT: &[u8] = b"exit\r\na";

/// The alphabet of the exhaustive frame tests: length bytes that make headers of 0, 1, 4 and
/// more bytes, and the letters of `exit`.
const BINARY: &[u8] = &[0, 1, 4, b'e', b'x', b'i', b't'];

/// Inputs up to this many bytes are checked exhaustively.
const MAX_LEN: usize = 8;

fn exhaustive<H: Harness>(harness: &H, alphabet: &[u8]) {
    let mut configurations = 0;
    let mut scratch = Scratch::default();
    let inputs = for_every_input(alphabet, MAX_LEN, |input| {
        configurations += check_all_splits(harness, input, &mut scratch);
    });
    let expected_inputs: usize = (0..=MAX_LEN as u32).map(|n| alphabet.len().pow(n)).sum();
    assert_eq!(inputs, expected_inputs);
    // An input of n bytes has at least one configuration per position, n + 1 in all.
    let positions: usize = (0..=MAX_LEN as u32)
        .map(|n| alphabet.len().pow(n) * (n as usize + 1))
        .sum();
    assert!(
        configurations >= positions,
        "{configurations} configurations"
    );
}

#[test]
fn exit_lines_in_every_split() {
    exhaustive(&Exits, TEXT);
}

/// A limit of 5 lets `exit` and `exit\r` through and makes every body of 6 to 8 bytes too long,
/// so one run covers lines that fit, lines that do not, and the `\r` that may end one.
#[test]
fn lines_in_every_split() {
    exhaustive(
        &Lines {
            max_line: 5,
            batch: false,
        },
        TEXT,
    );
}

/// The same for `decode_lines`, stopping after each exit line and resuming.
#[test]
fn line_batches_in_every_split() {
    exhaustive(
        &Lines {
            max_line: 5,
            batch: true,
        },
        TEXT,
    );
}

/// A limit of 4 admits `exit` and rejects any header with a 1 above its last byte or a length
/// byte from the letters, so one run covers frames that fit, frames that do not, and streams
/// that end in a header or a payload.
#[test]
fn frames_in_every_split() {
    exhaustive(&Frames { max_frame: 4 }, BINARY);
}

#[test]
fn exit_detector_cases() {
    let exits = &Exits;
    check(exits, b"", "");
    check(exits, b"exit\n", "EXIT");
    check(exits, b"exit\r\n", "EXIT");
    check(exits, b"exit", "EXIT");
    // `exit\r` at the end is a line `exit\r`, as in line framing.
    check(exits, b"exit\r", "\"exit\\r\"");
    check(exits, b"hello\nexit\nbye\n", "\"hello\\n\" EXIT \"bye\\n\"");
    check(exits, b"exiting\n", "\"exiting\\n\"");
    check(exits, b" exit\n", "\" exit\\n\"");
    check(exits, b"foo exit\n", "\"foo exit\\n\"");
    check(exits, b"EXIT\n", "\"EXIT\\n\"");
    check(exits, b"exit\r\r\n", "\"exit\\r\\r\\n\"");
    check(exits, b"exexit\n", "\"exexit\\n\"");
    check(exits, b"\nexit", "\"\\n\" EXIT");
    check(exits, b"exit\nexit\n", "EXIT EXIT");
    check(exits, b"ex\n", "\"ex\\n\"");
    check(exits, b"ex\nexit\n", "\"ex\\n\" EXIT");
}

#[test]
fn line_cases() {
    for lines in &Lines::both(8) {
        line_cases_with(lines);
    }
}

fn line_cases_with(lines: &Lines) {
    check(lines, b"", "");
    check(lines, b"abc\n", "\"abc\" LF");
    check(lines, b"abc\r\n", "\"abc\" CRLF");
    check(lines, b"\n\r\n", "LF CRLF");
    check(lines, b"a\rb\n", "\"a\\rb\" LF");
    check(lines, b"abc\r\r\n", "\"abc\\r\" CRLF");
    // The last line without terminator keeps its `\r`.
    check(lines, b"abc\r", "\"abc\\r\" EOF");
    check(lines, b"exit\n", "\"exit\" LF:exit");
    check(lines, b"exit\r\n", "\"exit\" CRLF:exit");
    check(lines, b"exit", "\"exit\" EOF:exit");
    check(lines, b"exit\r", "\"exit\\r\" EOF");
    check(
        lines,
        b"exiting\n exit\nEXIT\n",
        "\"exiting\" LF \" exit\" LF \"EXIT\" LF",
    );
    // Eight bytes fit, nine do not; the terminator does not count.
    check(lines, b"12345678\r\n", "\"12345678\" CRLF");
    check(lines, b"123456789\n", "TOO-LONG");
    check(lines, b"ok\n123456789", "\"ok\" LF TOO-LONG");
    check(lines, b"12345678", "\"12345678\" EOF");
    check(lines, b"12345678\r", "TOO-LONG");
}

#[test]
fn frame_cases() {
    let frames = &Frames { max_frame: 8 };
    check(frames, b"", "");
    check(frames, b"\0\0\0\x03abc", "START(3) \"abc\" END");
    check(frames, b"\0\0\0\0", "START(0) END");
    check(frames, b"\0\0\0\x04exit", "START(4) \"exit\" END:exit");
    check(frames, b"\0\0\0\x05exits", "START(5) \"exits\" END");
    check(frames, b"\0\0\0\x04exis", "START(4) \"exis\" END");
    // The limit itself is allowed.
    check(frames, b"\0\0\0\x08abcdefgh", "START(8) \"abcdefgh\" END");
    check(
        frames,
        b"\0\0\0\x02ex\0\0\0\x02it",
        "START(2) \"ex\" END START(2) \"it\" END",
    );
    check(frames, b"\0\0", "INCOMPLETE");
    check(frames, b"\0\0\0\x03ab", "START(3) \"ab\" INCOMPLETE");
    // Rejected from the header alone: none of the payload is reported.
    check(frames, b"\0\0\0\x09abcdefghi", "TOO-LARGE(9)");
    check(frames, b"\xff\xff\xff\xff", "TOO-LARGE(4294967295)");
}
