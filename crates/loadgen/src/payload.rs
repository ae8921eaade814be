//! The request lines: derived from a connection and a message number, so every reply can be
//! checked without keeping what was sent.
//!
//! A line of `len` bytes is a body of `len - 1` bytes and `'\n'`. The body is
//!
//! - one uppercase letter, which varies with the connection and the message,
//! - a tag mixing the message and connection numbers (see [`tag`]) in 12 lowercase hex digits,
//!   least significant first,
//! - filler: a slice of a fixed pseudo-random table of printable bytes (no uppercase), starting
//!   at an offset that varies with the connection and with the message number modulo
//!   [`FILLER_PERIOD`],
//!
//! cut to the body's length. The body is thus printable and never holds `'\r'` or `'\n'` (which
//! the server would treat as a terminator), never equals `exit` (which would stop a server that
//! honours it: its first byte is uppercase), and, from two bytes on, is never a palindrome (its
//! first byte is the only uppercase one), so a peer that echoes without reversing is caught by
//! every line. Generation is a few copies per line from a table, not work per byte, in either
//! direction: a reply is written reversed straight away. Since the filler repeats every
//! [`FILLER_PERIOD`] lines, a buffer of a multiple of that many lines, once written, becomes
//! the next such run of lines by rewriting the headers alone ([`Payload::write_header`]).
//!
//! Lines shorter than the header keep only its start, which is why the digits run least
//! significant first and carry the connection too: then each digit kept tells apart more of
//! the neighbours that a misbehaving server could mix up. With a letter and two digits (4-byte
//! lines) and more, a line differs from the 3327 lines either side on its connection (a
//! reordering) and from the same line of the 3327 connections either side (cross-talk); with
//! one digit (3-byte lines), from 207. A 2-byte line is a letter alone: only 26 neighbours.

/// Bytes of filler before the table repeats. A power of two is not needed; 4 KiB keeps the
/// table and its use in the first-level cache.
const TABLE_LEN: usize = 4096;

/// The filler alphabet: 64 printable ASCII bytes without uppercase letters (the first body byte
/// is the only uppercase one), quotes or backslash (easier on anyone reading a capture).
const ALPHABET: &[u8; 64] = b"abcdefghijklmnopqrstuvwxyz0123456789!#$%&()*+,-./:;<=>?@[]^_{|}~";

/// Bytes of the header: the letter and 12 hex digits.
const HEADER_LEN: usize = 13;

/// What a connection number is multiplied by in the tag. Odd, so that connections differing by
/// less than `16^n` differ in the tag's first `n` digits; 31 in particular keeps lines apart
/// when both numbers differ at once (at 4 bytes, any two within 54 of each other both ways).
const CONN_STRIDE: u64 = 31;

/// Lines `msg` and `msg + FILLER_PERIOD` of a connection differ only in their headers.
pub(crate) const FILLER_PERIOD: u64 = 64;

/// The filler tables, made once per run.
#[derive(Clone, Debug)]
pub(crate) struct Payload {
    /// The 4 KiB pattern, repeated far enough that any line's filler is one slice of it.
    forward: Box<[u8]>,
    /// `forward` reversed: a reply's reversed filler is one slice of it too.
    backward: Box<[u8]>,
}

impl Payload {
    /// Builds the tables for lines of up to `max_len` bytes, from a fixed seed, so runs are
    /// repeatable.
    pub(crate) fn new(max_len: usize) -> Self {
        // xorshift64*: any decent spread of the alphabet will do; nothing depends on quality.
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        let pattern: Vec<u8> = (0..TABLE_LEN)
            .map(|_| {
                state ^= state >> 12;
                state ^= state << 25;
                state ^= state >> 27;
                let random = state.wrapping_mul(0x2545_F491_4F6C_DD1D);
                ALPHABET[(random >> 58) as usize]
            })
            .collect();
        let forward: Box<[u8]> = pattern
            .iter()
            .copied()
            .cycle()
            .take(TABLE_LEN + max_len)
            .collect();
        let mut backward = forward.clone();
        backward.reverse();
        Self { forward, backward }
    }

    /// Appends line `msg` of connection `conn`, `len` bytes including its `'\n'`, to `out`;
    /// with `reversed`, the reply the server owes for it. See [`write`](Self::write).
    pub(crate) fn line(&self, conn: u64, msg: u64, len: usize, reversed: bool, out: &mut Vec<u8>) {
        let start = out.len();
        out.resize(start + len, 0);
        self.write(conn, msg, reversed, &mut out[start..]);
    }

    /// Writes line `msg` of connection `conn` over all of `dst` (its last byte the `'\n'`);
    /// with `reversed`, the reply the server owes for it: the body reversed, then `'\n'`.
    ///
    /// `dst` is at least 1 byte and at most the `max_len` the tables were made for; callers
    /// check their sizes once, up front. Three copies and a dozen digits, whatever the length.
    pub(crate) fn write(&self, conn: u64, msg: u64, reversed: bool, dst: &mut [u8]) {
        let Some((newline, body)) = dst.split_last_mut() else {
            return;
        };
        *newline = b'\n';
        let header = header(conn, msg);
        let head = body.len().min(HEADER_LEN);
        let filler = body.len() - head;
        // Odd multipliers walk the whole pattern; the offset differs between connections too.
        let offset = (conn
            .wrapping_mul(977)
            .wrapping_add((msg % FILLER_PERIOD) * 131)
            % TABLE_LEN as u64) as usize;
        if reversed {
            // reverse(header + forward[offset..offset + filler])
            //   = backward[end - offset - filler..end - offset] + reverse(header)
            let end = self.backward.len();
            let from = end - offset - filler;
            body[..filler].copy_from_slice(&self.backward[from..from + filler]);
            reverse_into(&header[..head], &mut body[filler..]);
        } else {
            body[..head].copy_from_slice(&header[..head]);
            body[head..].copy_from_slice(&self.forward[offset..offset + filler]);
        }
    }

    /// Turns `dst`, which holds line (or reply) `msg - k * FILLER_PERIOD` of connection `conn`
    /// as [`write`](Self::write) made it, into line (or reply) `msg`: only the header differs.
    ///
    /// This runs for every line of a bulk run, so the usual case stores whole words straight
    /// into `dst`: byte stores to a stack array read back as words stall the CPU (failed store
    /// forwarding), which made this the client's hottest spot.
    pub(crate) fn write_header(conn: u64, msg: u64, reversed: bool, dst: &mut [u8]) {
        let body = dst.len().saturating_sub(1);
        if body < HEADER_LEN {
            let mut header = header(conn, msg);
            if reversed {
                header.reverse();
                dst[..body].copy_from_slice(&header[HEADER_LEN - body..]);
            } else {
                dst[..body].copy_from_slice(&header[..body]);
            }
            return;
        }
        let letter = letter(conn, msg);
        let tag = tag(conn, msg);
        let high = hex_digits((tag >> 32) as u32);
        let low = hex_digits(tag as u32);
        if reversed {
            // Reversed, the digits run most significant first: the words in big-endian order.
            let at = body - HEADER_LEN;
            dst[at..at + 4].copy_from_slice(&high.to_be_bytes()[4..]);
            dst[at + 4..at + 12].copy_from_slice(&low.to_be_bytes());
            dst[at + 12] = letter;
        } else {
            dst[0] = letter;
            dst[1..9].copy_from_slice(&low.to_le_bytes());
            dst[9..13].copy_from_slice(&high.to_le_bytes()[..4]);
        }
    }
}

/// A line's header: a letter, then the [`tag`] in 12 hex digits, least significant first.
fn header(conn: u64, msg: u64) -> [u8; HEADER_LEN] {
    let tag = tag(conn, msg);
    let mut header = [0u8; HEADER_LEN];
    header[0] = letter(conn, msg);
    header[1..9].copy_from_slice(&hex_digits(tag as u32).to_le_bytes());
    header[9..].copy_from_slice(&hex_digits((tag >> 32) as u32).to_le_bytes()[..4]);
    header
}

/// The number a header spells (its low 48 bits): the message number, offset by the connection
/// so that the digits a short line keeps tell connections apart, not only messages. On
/// connection 0 it is the message number itself, which helps anyone reading a capture.
fn tag(conn: u64, msg: u64) -> u64 {
    msg.wrapping_add(conn.wrapping_mul(CONN_STRIDE))
}

/// The first byte of a line: connection and message both move it, so neighbouring lines differ
/// at once.
fn letter(conn: u64, msg: u64) -> u8 {
    b'A' + (conn.wrapping_add(msg) % 26) as u8
}

/// `value`'s 8 hex digits (lowercase ASCII) in one word, least significant digit in the lowest
/// byte: `to_be_bytes` spells the number, `to_le_bytes` spells it backwards. Arithmetic on the
/// whole word, no loop per digit.
fn hex_digits(value: u32) -> u64 {
    // Spread the nibbles one per byte...
    let mut x = u64::from(value);
    x = (x | (x << 16)) & 0x0000_FFFF_0000_FFFF;
    x = (x | (x << 8)) & 0x00FF_00FF_00FF_00FF;
    x = (x | (x << 4)) & 0x0F0F_0F0F_0F0F_0F0F;
    // ...then to ASCII: '0' + n, and 39 more ('a' - '0' - 10) where n is 10 or more.
    let letters = ((x + 0x0606_0606_0606_0606) >> 4) & 0x0101_0101_0101_0101;
    x + 0x3030_3030_3030_3030 + letters * 39
}

fn reverse_into(from: &[u8], to: &mut [u8]) {
    for (to, byte) in to.iter_mut().zip(from.iter().rev()) {
        *to = *byte;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LONGEST: usize = 3 * TABLE_LEN + 7;

    fn line(payload: &Payload, conn: u64, msg: u64, len: usize, reversed: bool) -> Vec<u8> {
        let mut out = Vec::new();
        payload.line(conn, msg, len, reversed, &mut out);
        out
    }

    #[test]
    fn lines_have_the_asked_length_and_one_newline_at_the_end() {
        let payload = Payload::new(LONGEST);
        for len in [
            1,
            2,
            3,
            13,
            14,
            15,
            64,
            100,
            512,
            TABLE_LEN + 100,
            3 * TABLE_LEN + 7,
        ] {
            for reversed in [false, true] {
                let bytes = line(&payload, 3, 77, len, reversed);
                assert_eq!(bytes.len(), len);
                assert_eq!(bytes.last(), Some(&b'\n'));
                assert!(!bytes[..len - 1].contains(&b'\n'), "{len}");
                assert!(!bytes.contains(&b'\r'), "{len}");
                assert!(
                    bytes[..len - 1].iter().all(|b| (b' '..=b'~').contains(b)),
                    "{len}"
                );
            }
        }
    }

    #[test]
    fn the_reply_is_the_body_reversed() {
        let payload = Payload::new(LONGEST);
        for len in [2, 5, 64, 5000, 9000] {
            let request = line(&payload, 11, 123_456, len, false);
            let mut expected = request[..len - 1].to_vec();
            expected.reverse();
            expected.push(b'\n');
            assert_eq!(line(&payload, 11, 123_456, len, true), expected);
        }
    }

    #[test]
    fn bodies_are_never_palindromes_nor_exit() {
        let payload = Payload::new(LONGEST);
        for len in 3..80 {
            for msg in 0..50 {
                let bytes = line(&payload, msg % 7, msg, len, false);
                let body = &bytes[..len - 1];
                let mut reversed = body.to_vec();
                reversed.reverse();
                assert_ne!(body, &reversed[..], "len {len} msg {msg}");
                assert_ne!(body, b"exit");
            }
        }
    }

    #[test]
    fn lines_differ_between_messages_and_connections() {
        let payload = Payload::new(LONGEST);
        for len in [2, 64] {
            assert_ne!(
                line(&payload, 0, 0, len, false),
                line(&payload, 0, 1, len, false)
            );
            assert_ne!(
                line(&payload, 0, 0, len, false),
                line(&payload, 1, 0, len, false)
            );
        }
        // Past the header the filler moves too, between connections and between messages,
        // repeating every `FILLER_PERIOD` messages.
        let filler = |conn, msg| line(&payload, conn, msg, 64, false)[HEADER_LEN..].to_vec();
        assert_ne!(filler(0, 0), filler(1, 0));
        assert_ne!(filler(0, 0), filler(0, 1));
        assert_eq!(filler(0, 0), filler(0, FILLER_PERIOD));
    }

    #[test]
    fn short_lines_tell_neighbouring_lines_and_connections_apart() {
        let payload = Payload::new(LONGEST);
        // Neighbours up to 26 * 26 apart, around a base away from zero and across a carry.
        const NEAR: u64 = 26 * 26;
        for (conn, msg) in [(1_000, 5_000), (0xfff, 0xffff)] {
            for len in [4, 5, 13, 14] {
                for reversed in [false, true] {
                    let base = line(&payload, conn, msg, len, reversed);
                    for d in 1..=NEAR {
                        for (c, m) in [(conn, msg + d), (conn, msg - d), (conn + d, msg)] {
                            assert_ne!(
                                line(&payload, c, m, len, reversed),
                                base,
                                "len {len}: ({conn}, {msg}) and ({c}, {m})"
                            );
                        }
                        assert_ne!(line(&payload, conn - d, msg, len, reversed), base);
                    }
                    // Both numbers off at once: no short line can tell every such pair apart,
                    // but near ones are.
                    for c in conn - 54..=conn + 54 {
                        for m in msg - 54..=msg + 54 {
                            if (c, m) != (conn, msg) {
                                assert_ne!(line(&payload, c, m, len, reversed), base);
                            }
                        }
                    }
                }
            }
        }
        // A single digit still parts the 207 neighbours either side each way.
        let base = line(&payload, 1_000, 5_000, 3, false);
        for d in 1..208 {
            assert_ne!(line(&payload, 1_000, 5_000 + d, 3, false), base);
            assert_ne!(line(&payload, 1_000 + d, 5_000, 3, false), base);
        }
    }

    #[test]
    fn headers_spell_the_tag_in_hex_least_significant_first() {
        for msg in [
            0,
            1,
            9,
            10,
            15,
            16,
            0xabc,
            0x1234_5678_9abc,
            u64::MAX,
            0xdead_beef,
        ] {
            for conn in [0, 30] {
                let header = header(conn, msg);
                let tag = msg.wrapping_add(conn * CONN_STRIDE);
                let expected: Vec<u8> = format!("{:012x}", tag & 0xffff_ffff_ffff)
                    .bytes()
                    .rev()
                    .collect();
                assert_eq!(&header[1..], &expected[..], "{conn} {msg:#x}");
                assert!(header[0].is_ascii_uppercase());
            }
        }
        assert_eq!(hex_digits(0x0123_abcf).to_be_bytes(), *b"0123abcf");
        assert_eq!(hex_digits(0x0123_abcf).to_le_bytes(), *b"fcba3210");
        assert_eq!(hex_digits(u32::MAX).to_be_bytes(), *b"ffffffff");
    }

    #[test]
    fn rewriting_the_header_turns_a_line_into_the_one_a_period_later() {
        let payload = Payload::new(LONGEST);
        for len in [1, 2, 5, 13, 14, 15, 100, 5000] {
            for reversed in [false, true] {
                for msg in [0, 7, 63] {
                    let mut bytes = line(&payload, 9, msg, len, reversed);
                    let later = msg + 5 * FILLER_PERIOD;
                    Payload::write_header(9, later, reversed, &mut bytes);
                    assert_eq!(
                        bytes,
                        line(&payload, 9, later, len, reversed),
                        "{len} {msg}"
                    );
                }
            }
        }
    }
}
