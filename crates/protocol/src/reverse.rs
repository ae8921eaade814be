//! Reversal in place: the server's inner loop.
//!
//! `<[u8]>::reverse` already compiles to vector code (on baseline x86-64, LLVM turns its
//! two-ended swap loop into 16-byte SSE2 shuffles, `pshufd` and `punpck`/`packuswb`), so the
//! helpers here add no tricks of their own: they name the operations the server needs, and the
//! benchmark in `benches/framing.rs` keeps the claim that they cost no more than a plain loop
//! honest.

use crate::line::uncarried_line;

/// Reverses `bytes` in place.
///
/// # Examples
///
/// ```
/// let mut line = *b"hello";
/// protocol::reverse(&mut line);
/// assert_eq!(&line, b"olleh");
/// ```
#[inline]
pub fn reverse(bytes: &mut [u8]) {
    bytes.reverse();
}

/// Reverses every whole line of `bytes` in place, keeping each terminator (`\n` or `\r\n`)
/// where it is, and returns the length of the prefix made of whole lines.
///
/// It is the fast path for a chunk that holds no part of a line begun elsewhere: the returned
/// prefix is ready to send as it is, and the rest is the start of an unfinished line. It applies
/// no length limit and does not look for `exit`; use [`LineFramer`](crate::LineFramer) for those.
///
/// # Examples
///
/// ```
/// let mut chunk = *b"abc\r\nde\nfg";
/// let whole = protocol::reverse_lines(&mut chunk);
/// assert_eq!(&chunk[..whole], b"cba\r\ned\n");
/// assert_eq!(&chunk[whole..], b"fg");
/// ```
pub fn reverse_lines(bytes: &mut [u8]) -> usize {
    let mut start = 0;
    while let Some(newline) = memchr::memchr(b'\n', &bytes[start..]) {
        let line = uncarried_line(bytes, start, start + newline);
        bytes[line.body].reverse();
        start = line.end;
    }
    start
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reverse_lines_leaves_the_unfinished_tail() {
        let mut chunk = *b"\n\r\nab\r\r\nx";
        assert_eq!(reverse_lines(&mut chunk), 8);
        assert_eq!(&chunk, b"\n\r\n\rba\r\nx");
        let mut empty: [u8; 0] = [];
        assert_eq!(reverse_lines(&mut empty), 0);
    }
}
