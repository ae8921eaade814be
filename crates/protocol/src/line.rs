//! `line` framing: lines ended by `\n` (or `\r\n`), found in chunks without copying them.
//!
//! The framer never owns line bytes. It finds line ends in the chunk it is given and reports
//! ranges into it; the bytes of a line that is not finished when a chunk ends are the caller's
//! to keep (in a per-connection carry buffer), and the framer counts them, so it can say how
//! many of them belong to the line that finally ends. That keeps the common case, a chunk full
//! of whole lines, free of copies: the caller reverses each body in place and writes the chunk.

use core::fmt;
use core::ops::{ControlFlow, Range};

use crate::exit::{EXIT, EXIT_CR, continues};

/// How a line ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Terminator {
    /// `\n`.
    Lf,
    /// `\r\n`: a `\r` right before the `\n` belongs to the terminator, not to the line.
    CrLf,
}

impl Terminator {
    /// The terminator's bytes, to send after the reversed body.
    #[must_use]
    pub const fn as_bytes(self) -> &'static [u8] {
        match self {
            Self::Lf => b"\n",
            Self::CrLf => b"\r\n",
        }
    }
}

/// A line that ended in the chunk given to [`LineFramer::decode`].
///
/// Its body is the first `carried` bytes the caller kept from earlier chunks followed by
/// `chunk[body]`; its reply is therefore `reverse(chunk[body])`, then `reverse(carry[..carried])`,
/// then the terminator. The caller's carry may hold one byte more than `carried`: a `\r` that
/// turned out to be the first half of a `\r\n` split between chunks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line {
    /// How many bytes of the body came in earlier chunks (0 unless this is the chunk's first
    /// line).
    pub carried: usize,
    /// The part of the body in this chunk.
    pub body: Range<usize>,
    /// How the line ended.
    pub terminator: Terminator,
    /// The end of the line, terminator included: decoding goes on at `chunk[end..]`.
    pub end: usize,
    /// Whether the body is exactly `exit`. The framer only says so; whether that stops
    /// anything is the caller's policy.
    pub exit: bool,
}

impl Line {
    /// The length of the whole body, carried part included.
    #[must_use]
    pub fn len(&self) -> usize {
        self.carried + self.body.len()
    }

    /// Whether the body is empty (the line was only a terminator).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The last line of a stream that ended without a terminator, from [`LineFramer::finish`].
///
/// Its body is everything the caller carried; a trailing `\r` is part of it (`abc\r`, then the
/// end of the stream, is the line `abc\r`, reversed as `\rcba`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FinalLine {
    /// The body's length: all the bytes the caller kept.
    pub len: usize,
    /// Whether the body is exactly `exit`.
    pub exit: bool,
}

/// Where [`LineFramer::decode_lines`] left the chunk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use = "the caller must keep the start of an unfinished line, or resume after a stop"]
pub enum LinesEnd {
    /// Every line that ends in the chunk was handed over; `chunk[from..]` is the unfinished
    /// line's part of the chunk (its start, or, when `from` is 0, possibly the continuation
    /// of a line begun in an earlier chunk), which the caller appends to what it keeps. It may
    /// be empty.
    Kept {
        /// Where the unfinished line starts.
        from: usize,
    },
    /// The callback stopped after the line that ends at `chunk[..at]`. The rest of the chunk
    /// was not looked at; the framer is at a line start, so decoding may resume at
    /// `chunk[at..]`.
    Stopped {
        /// The end of the last line handed over.
        at: usize,
    },
}

/// A line grew past the limit: more than `max_line` body bytes without a `\n`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LineTooLong {
    /// The limit that was exceeded.
    pub max_line: usize,
}

impl fmt::Display for LineTooLong {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line longer than {} bytes", self.max_line)
    }
}

impl std::error::Error for LineTooLong {}

/// Splits a stream of chunks into lines; O(1) state, no allocation.
///
/// Call [`decode`](Self::decode) on a chunk, then on the rest of it after each line, until it
/// returns `Ok(None)`: the remaining bytes are the start of an unfinished line, which the caller
/// keeps. At the end of the stream, [`finish`](Self::finish) says whether the kept bytes are a
/// last line.
///
/// A line whose body (terminator not counted) exceeds `max_line` bytes is an error as soon as
/// that is certain: when more than `max_line` bytes without a `\n` have arrived, unless the only
/// extra byte is a `\r` that may yet be the start of a `\r\n`. So the caller never keeps more
/// than `max_line + 1` bytes. After an error the framer stays failed: every later call returns
/// the same error.
///
/// # Examples
///
/// A line split over two chunks, with the caller's carry:
///
/// ```
/// use protocol::{LineFramer, Terminator, reverse};
///
/// let mut framer = LineFramer::new(1024);
/// let mut carry = Vec::new();
/// let mut replies = Vec::new();
///
/// for chunk in [&b"hel"[..], b"lo\r\nab\n"] {
///     let mut chunk = chunk.to_vec();
///     let mut pos = 0;
///     while let Some(line) = framer.decode(&chunk[pos..]).expect("short lines") {
///         let body = pos + line.body.start..pos + line.body.end;
///         reverse(&mut chunk[body.clone()]);
///         reverse(&mut carry[..line.carried]);
///         replies.extend_from_slice(&chunk[body]);
///         replies.extend_from_slice(&carry[..line.carried]);
///         replies.extend_from_slice(line.terminator.as_bytes());
///         carry.clear();
///         pos += line.end;
///     }
///     carry.extend_from_slice(&chunk[pos..]);
/// }
/// assert_eq!(replies, b"olleh\r\nba\n");
/// assert_eq!(framer.finish(), Ok(None));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LineFramer {
    max_line: usize,
    /// Bytes of the unfinished line the caller keeps, or `FAILED`.
    carried: usize,
    /// Whether the carried bytes are a prefix of `exit\r`: the line may still be `exit`.
    exit_prefix: bool,
    /// Whether the last carried byte is a `\r` (it may be half of a `\r\n`).
    cr: bool,
}

/// `carried` after a [`LineTooLong`]; no real carry gets near it.
const FAILED: usize = usize::MAX;

impl LineFramer {
    /// A framer for lines of at most `max_line` body bytes.
    #[must_use]
    pub const fn new(max_line: usize) -> Self {
        Self {
            max_line,
            carried: 0,
            exit_prefix: true,
            cr: false,
        }
    }

    /// The limit on a line's body.
    #[must_use]
    pub const fn max_line(&self) -> usize {
        self.max_line
    }

    /// How many bytes of an unfinished line the caller keeps (0 after an error).
    #[must_use]
    pub const fn carried(&self) -> usize {
        if self.carried == FAILED {
            0
        } else {
            self.carried
        }
    }

    /// Finds the next line that ends in `chunk`.
    ///
    /// [`decode_lines`](Self::decode_lines) does the same for every line of a chunk in one
    /// call, which is faster when lines are short.
    ///
    /// `Ok(Some(line))`: a line ends at `chunk[..line.end]`; go on with `chunk[line.end..]`.
    /// `Ok(None)`: no line ends in `chunk`; the caller keeps all of `chunk`, the next bytes of
    /// an unfinished line.
    ///
    /// # Errors
    ///
    /// [`LineTooLong`] when the current line's body is known to exceed `max_line` bytes, and on
    /// every call after that.
    // Inlined into the caller's loop: a call per line would cost more than the framing.
    #[inline]
    pub fn decode(&mut self, chunk: &[u8]) -> Result<Option<Line>, LineTooLong> {
        if self.carried == FAILED {
            return Err(self.too_long());
        }
        match memchr::memchr(b'\n', chunk) {
            Some(newline) if self.carried > 0 => self.carried_line(chunk, newline).map(Some),
            Some(newline) => {
                let line = uncarried_line(chunk, 0, newline);
                if line.body.len() > self.max_line {
                    return Err(self.fail());
                }
                Ok(Some(line))
            }
            None => self.keep(chunk).map(|()| None),
        }
    }

    /// Hands every line that ends in `chunk` to `on_line`, in order, then counts the rest of
    /// the chunk as the start of an unfinished line, which the caller keeps.
    ///
    /// `on_line` gets the whole chunk, mutably, and the line, whose `body` and `end` are
    /// offsets in the whole chunk, so it can reverse the body in place. It returns
    /// [`ControlFlow::Break`] to stop after that line (at an honoured `exit`, say); see
    /// [`LinesEnd`] for where the chunk was left.
    ///
    /// This is [`decode`](Self::decode) in a loop, but one call per chunk instead of one per
    /// line: the loop over lines is compiled into the caller, with `on_line`, so the framing
    /// costs little more than finding the newlines (`BENCHMARKS.md` has the figures).
    ///
    /// # Errors
    ///
    /// [`LineTooLong`] as for [`decode`](Self::decode); the lines before the long one have been
    /// handed to `on_line`.
    ///
    /// # Examples
    ///
    /// ```
    /// use protocol::{LineFramer, LinesEnd, reverse};
    /// use std::ops::ControlFlow;
    ///
    /// let mut framer = LineFramer::new(1024);
    /// let mut chunk = *b"abc\nexit\nxyz\nrest";
    /// let mut ends = Vec::new();
    /// let end = framer.decode_lines(&mut chunk, |chunk, line| {
    ///     if line.exit {
    ///         return ControlFlow::Break(());
    ///     }
    ///     reverse(&mut chunk[line.body.clone()]);
    ///     ends.push(line.end);
    ///     ControlFlow::Continue(())
    /// });
    /// assert_eq!(end, Ok(LinesEnd::Stopped { at: 9 }));
    /// assert_eq!((&chunk[..4], &ends[..]), (&b"cba\n"[..], &[4][..]));
    ///
    /// let mut rest = *b"xyz\nrest";
    /// let end = framer.decode_lines(&mut rest, |_, _| ControlFlow::Continue(()));
    /// assert_eq!(end, Ok(LinesEnd::Kept { from: 4 }));
    /// assert_eq!(framer.carried(), 4);
    /// ```
    #[inline]
    pub fn decode_lines<F>(
        &mut self,
        chunk: &mut [u8],
        mut on_line: F,
    ) -> Result<LinesEnd, LineTooLong>
    where
        F: FnMut(&mut [u8], Line) -> ControlFlow<()>,
    {
        let mut start = 0;
        // Only the first line can have started in an earlier chunk.
        if self.carried != 0 {
            match self.decode(chunk)? {
                Some(line) => {
                    start = line.end;
                    if on_line(chunk, line).is_break() {
                        return Ok(LinesEnd::Stopped { at: start });
                    }
                }
                None => return Ok(LinesEnd::Kept { from: 0 }),
            }
        }
        // From here on nothing is carried, so the framer's state cannot change but by an error:
        // the loop keeps the limit in a register and stores nothing per line.
        let max_line = self.max_line;
        while let Some(newline) = memchr::memchr(b'\n', &chunk[start..]) {
            let line = uncarried_line(chunk, start, start + newline);
            if line.body.len() > max_line {
                return Err(self.fail());
            }
            start = line.end;
            if on_line(chunk, line).is_break() {
                return Ok(LinesEnd::Stopped { at: start });
            }
        }
        self.keep(&chunk[start..])?;
        Ok(LinesEnd::Kept { from: start })
    }

    /// Ends the stream: the bytes the caller kept, if any, are a last line without terminator.
    ///
    /// The framer is ready for a new stream afterwards (unless it had failed).
    ///
    /// # Errors
    ///
    /// [`LineTooLong`] when the kept bytes exceed `max_line` (a `\r` kept at the end counts now:
    /// it is data), or when the framer had already failed.
    pub fn finish(&mut self) -> Result<Option<FinalLine>, LineTooLong> {
        if self.carried == FAILED {
            return Err(self.too_long());
        }
        if self.carried > self.max_line {
            return Err(self.fail());
        }
        let last = (self.carried > 0).then_some(FinalLine {
            len: self.carried,
            exit: self.exit_prefix && self.carried == EXIT.len(),
        });
        *self = Self::new(self.max_line);
        Ok(last)
    }

    /// The line that began in earlier chunks (`self.carried` bytes, perhaps ending in a `\r`)
    /// and whose `\n` is `chunk[newline]`.
    fn carried_line(&mut self, chunk: &[u8], newline: usize) -> Result<Line, LineTooLong> {
        let mut line = uncarried_line(chunk, 0, newline);
        line.carried = self.carried;
        // A carried `\r` right before the `\n` belongs to the terminator, not to the body.
        if newline == 0 && self.cr {
            line.carried -= 1;
            line.terminator = Terminator::CrLf;
        }
        if line.len() > self.max_line {
            return Err(self.fail());
        }
        line.exit = line.len() == EXIT.len()
            && self.exit_prefix
            && continues(EXIT, line.carried, &chunk[line.body.clone()]);
        *self = Self::new(self.max_line);
        Ok(line)
    }

    /// Counts `chunk` as kept bytes of the unfinished line.
    fn keep(&mut self, chunk: &[u8]) -> Result<(), LineTooLong> {
        let Some(&last) = chunk.last() else {
            return Ok(());
        };
        let carried = self.carried + chunk.len();
        // One byte over is allowed while it is a `\r`, which a `\n` may yet make a terminator.
        if carried > self.max_line && !(carried == self.max_line + 1 && last == b'\r') {
            return Err(self.fail());
        }
        self.exit_prefix = self.exit_prefix && continues(EXIT_CR, self.carried, chunk);
        self.carried = carried;
        self.cr = last == b'\r';
        Ok(())
    }

    fn fail(&mut self) -> LineTooLong {
        self.carried = FAILED;
        self.too_long()
    }

    const fn too_long(&self) -> LineTooLong {
        LineTooLong {
            max_line: self.max_line,
        }
    }
}

/// The line from `chunk[start]`, with nothing carried, to the `\n` at `chunk[newline]`; the
/// limit is the caller's to check. The one place that says a `\r` right before the `\n`
/// belongs to the terminator (`carried_line` adds the case of a carried `\r`).
#[inline]
pub(crate) fn uncarried_line(chunk: &[u8], start: usize, newline: usize) -> Line {
    let (body, terminator) = if newline > start && chunk[newline - 1] == b'\r' {
        (start..newline - 1, Terminator::CrLf)
    } else {
        (start..newline, Terminator::Lf)
    };
    // Rare, so tested last: most lines fail the length test.
    let exit = body.len() == EXIT.len() && chunk[body.clone()] == *EXIT;
    Line {
        carried: 0,
        body,
        terminator,
        end: newline + 1,
        exit,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_in_one_chunk() {
        let mut framer = LineFramer::new(16);
        let line = framer.decode(b"abc\r\nx").unwrap().unwrap();
        assert_eq!(
            line,
            Line {
                carried: 0,
                body: 0..3,
                terminator: Terminator::CrLf,
                end: 5,
                exit: false
            }
        );
        assert_eq!(framer.decode(b"x"), Ok(None));
        assert_eq!(framer.carried(), 1);
    }

    #[test]
    fn a_carriage_return_split_from_its_newline() {
        let mut framer = LineFramer::new(16);
        assert_eq!(framer.decode(b"exit\r"), Ok(None));
        let line = framer.decode(b"\n").unwrap().unwrap();
        assert_eq!(
            (line.carried, line.body, line.terminator),
            (4, 0..0, Terminator::CrLf)
        );
        assert!(line.exit);
    }

    #[test]
    fn the_limit_allows_a_pending_carriage_return() {
        let mut framer = LineFramer::new(3);
        assert_eq!(framer.decode(b"abc\r"), Ok(None));
        assert_eq!(framer.decode(b"\n").unwrap().unwrap().len(), 3);
        assert_eq!(framer.decode(b"abc\r"), Ok(None));
        assert_eq!(framer.decode(b"d"), Err(LineTooLong { max_line: 3 }));
        assert_eq!(framer.decode(b"\n"), Err(LineTooLong { max_line: 3 }));
        assert_eq!(framer.finish(), Err(LineTooLong { max_line: 3 }));
    }
}
