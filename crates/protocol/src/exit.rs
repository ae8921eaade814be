//! The streaming exit detector: finds `exit` lines in a byte stream cut into arbitrary chunks.
//!
//! A stream is a sequence of lines, each ended by `\n`; the first byte of the stream and every
//! byte after a `\n` start a line. A line is an *exit line* when it is exactly `exit\n`,
//! `exit\r\n`, or `exit` followed by the end of the stream. `exit\r` at the end of the stream is
//! not one: without its `\n`, the `\r` is data, as in line framing, where `abc\r` at the end of
//! the stream is the line `abc\r`.
//!
//! The detector sees one chunk at a time and keeps O(1) state: how many bytes of a possible exit
//! line it has seen at the current line start (at most five, `exit\r`). Those bytes are *held
//! back*: they are not reported as data until the detector knows they do not start an exit line.
//! Because held bytes are always a prefix of `exit\r`, the detector can give them back itself as
//! a `&'static [u8]`; the caller never has to keep them.

/// The body of an exit line.
pub(crate) const EXIT: &[u8; 4] = b"exit";

/// An exit line as far as it can go without its `\n`: held bytes, and the bytes a line framer
/// carries while the line may still be `exit`, are always a prefix of it.
pub(crate) const EXIT_CR: &[u8] = b"exit\r";

/// Whether `piece`, coming after `seen` bytes that matched `target[..seen]`, goes on matching:
/// `target[seen..]` starts with `piece`. False when it would run past `target`, so callers
/// need no guard of their own.
#[inline]
pub(crate) fn continues(target: &[u8], seen: usize, piece: &[u8]) -> bool {
    target.get(seen..seen + piece.len()) == Some(piece)
}

/// Finds exit lines in a stream of chunks.
///
/// A stream is a sequence of lines, each ended by `\n`; the first byte of the stream and every
/// byte after a `\n` start a line. A line is an *exit line* when it is exactly `exit\n`,
/// `exit\r\n`, or `exit` followed by the end of the stream. `exit\r` at the end of the stream
/// is not one: without its `\n`, the `\r` is data, as in line framing.
///
/// This is the whole of `chunk` framing: each chunk is passed through, but the few bytes at a
/// line start that could still become `exit` are held back until the next chunk (or the end of
/// the stream) decides, so an exit line is never echoed, not even partly.
///
/// # Examples
///
/// `exit` split over three reads, after some ordinary data:
///
/// ```
/// use protocol::ExitDetector;
///
/// let mut detector = ExitDetector::new();
///
/// // "ab\n" is data; "ex" starts a line and could become "exit": it is held back.
/// let scan = detector.feed(b"ab\nex");
/// assert_eq!((scan.released, scan.data, scan.exit), (&b""[..], 3, None));
/// assert_eq!(detector.held(), b"ex");
///
/// // "it" extends it; still held.
/// let scan = detector.feed(b"it");
/// assert_eq!((scan.data, scan.exit), (0, None));
///
/// // "\n" completes the exit line, which ends one byte into this chunk.
/// let scan = detector.feed(b"\nmore");
/// assert_eq!((scan.released, scan.data, scan.exit), (&b""[..], 0, Some(1)));
/// ```
///
/// Held bytes that turn out to be data come back as `released`, before the chunk's own data:
///
/// ```
/// use protocol::ExitDetector;
///
/// let mut detector = ExitDetector::new();
/// assert_eq!(detector.feed(b"exi").data, 0);
/// let scan = detector.feed(b"sting\n");
/// assert_eq!((scan.released, scan.data, scan.exit), (&b"exi"[..], 6, None));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExitDetector {
    state: State,
}

/// Where the detector is in the current line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// At a line start, having seen `EXIT_CR[..held]` of it (0 to 5 bytes).
    Candidate { held: u8 },
    /// Inside a line that is not an exit line; the next line starts after the next `\n`.
    Ordinary,
}

impl Default for State {
    fn default() -> Self {
        // The first byte of a stream starts a line.
        Self::Candidate { held: 0 }
    }
}

/// What [`ExitDetector::feed`] found in one chunk.
///
/// The ordinary data of the chunk, in stream order, is `released` followed by `chunk[..data]`.
/// What follows depends on `exit`:
///
/// - `None`: `chunk[data..]` (at most five bytes) is held back; [`ExitDetector::held`] returns
///   those bytes, and a later call releases them or finds they were an exit line.
/// - `Some(end)`: an exit line ends at `chunk[..end]` (terminator included). It started at
///   `chunk[data]`, or, when `data` is 0, possibly in bytes held back from earlier chunks. The
///   detector is at a line start again, so the caller may go on with `feed(&chunk[end..])`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use = "the scan says which bytes are data and where an exit line is"]
pub struct Scan {
    /// Bytes held back by earlier calls that turned out to be ordinary data. They come before
    /// `chunk[..data]` in the stream.
    pub released: &'static [u8],
    /// `chunk[..data]` is ordinary data.
    pub data: usize,
    /// The end of an exit line in the chunk, if one ended in it.
    pub exit: Option<usize>,
}

/// What [`ExitDetector::finish`] found at the end of the stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use = "held bytes may still be data, or the stream may end with an exit line"]
pub struct Eof {
    /// Held bytes that turned out to be ordinary data (empty when `exit` is true).
    pub released: &'static [u8],
    /// Whether the stream ended with an exit line without terminator (`exit`, then EOF).
    pub exit: bool,
}

/// How one byte moves a candidate line on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    /// Still a possible exit line, `held` bytes long.
    Candidate(u8),
    /// The exit line is complete (the byte was its `\n`).
    Exit,
    /// Not an exit line. `at_line_start` when the byte was the line's `\n`.
    Ordinary { at_line_start: bool },
}

/// Moves a candidate that has seen `EXIT_CR[..held]` on by one byte.
fn step(held: u8, byte: u8) -> Step {
    match (held, byte) {
        (0..=3, _) if byte == EXIT[usize::from(held)] => Step::Candidate(held + 1),
        (4, b'\r') => Step::Candidate(5),
        (4 | 5, b'\n') => Step::Exit,
        _ => Step::Ordinary {
            at_line_start: byte == b'\n',
        },
    }
}

/// How a candidate line that started before `chunk` ends, or how far it gets.
enum Resolution {
    /// Still a candidate after the whole chunk.
    Held(u8),
    /// An exit line ending at `chunk[..end]`.
    Exit { end: usize },
    /// Ordinary data; the rest of the line (if any) starts at `chunk[next]`, in state `state`.
    Ordinary { next: usize, state: State },
}

/// Follows a candidate that has seen `EXIT_CR[..held]` through the start of `chunk`.
fn resolve(mut held: u8, chunk: &[u8]) -> Resolution {
    for (i, &byte) in chunk.iter().enumerate() {
        match step(held, byte) {
            Step::Candidate(next) => held = next,
            Step::Exit => return Resolution::Exit { end: i + 1 },
            Step::Ordinary { at_line_start } => {
                let state = if at_line_start {
                    State::Candidate { held: 0 }
                } else {
                    State::Ordinary
                };
                return Resolution::Ordinary { next: i + 1, state };
            }
        }
    }
    Resolution::Held(held)
}

impl ExitDetector {
    /// A detector at the start of a stream (which is a line start).
    #[must_use]
    pub const fn new() -> Self {
        Self {
            state: State::Candidate { held: 0 },
        }
    }

    /// The bytes held back at the end of the last chunk: a prefix of `exit\r`, at most five
    /// bytes, empty when nothing is held.
    #[must_use]
    pub fn held(&self) -> &'static [u8] {
        match self.state {
            State::Candidate { held } => &EXIT_CR[..usize::from(held)],
            State::Ordinary => &[],
        }
    }

    /// Scans the next chunk of the stream; see [`Scan`] for how to read the result.
    ///
    /// It stops at the first exit line that ends in `chunk`. It looks at no more than the first
    /// six bytes of each line and jumps from line to line with `memchr`; the bytes in between
    /// are never looked at one by one.
    pub fn feed(&mut self, chunk: &[u8]) -> Scan {
        let mut released: &'static [u8] = &[];
        // `from` is the first byte not yet scanned; `at_line_start` says whether a line starts
        // there (otherwise the next line starts after the next `\n`).
        let (mut from, mut at_line_start) = match self.state {
            State::Ordinary => (0, false),
            State::Candidate { held } => match resolve(held, chunk) {
                Resolution::Held(held) => {
                    self.state = State::Candidate { held };
                    return Scan {
                        released,
                        data: 0,
                        exit: None,
                    };
                }
                Resolution::Exit { end } => {
                    self.state = State::default();
                    return Scan {
                        released,
                        data: 0,
                        exit: Some(end),
                    };
                }
                Resolution::Ordinary { next, state } => {
                    // The held bytes were data after all.
                    released = &EXIT_CR[..usize::from(held)];
                    (next, state != State::Ordinary)
                }
            },
        };
        loop {
            let start = if at_line_start {
                from
            } else if let Some(newline) = memchr::memchr(b'\n', &chunk[from..]) {
                from + newline + 1
            } else {
                self.state = State::Ordinary;
                return Scan {
                    released,
                    data: chunk.len(),
                    exit: None,
                };
            };
            // `chunk[start..]` begins a line: most lines fail on their first byte.
            match resolve(0, &chunk[start..]) {
                Resolution::Held(held) => {
                    self.state = State::Candidate { held };
                    return Scan {
                        released,
                        data: start,
                        exit: None,
                    };
                }
                Resolution::Exit { end } => {
                    self.state = State::default();
                    return Scan {
                        released,
                        data: start,
                        exit: Some(start + end),
                    };
                }
                Resolution::Ordinary { next, state } => {
                    from = start + next;
                    at_line_start = state != State::Ordinary;
                }
            }
        }
    }

    /// Ends the stream: held bytes are either an exit line (`exit`, then EOF) or data.
    ///
    /// The detector is at the start of a new stream afterwards.
    pub fn finish(&mut self) -> Eof {
        let held = self.held();
        self.state = State::default();
        if held == EXIT {
            Eof {
                released: &[],
                exit: true,
            }
        } else {
            Eof {
                released: held,
                exit: false,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_follows_exit_line() {
        assert_eq!(step(0, b'e'), Step::Candidate(1));
        assert_eq!(step(3, b't'), Step::Candidate(4));
        assert_eq!(step(4, b'\r'), Step::Candidate(5));
        assert_eq!(step(4, b'\n'), Step::Exit);
        assert_eq!(step(5, b'\n'), Step::Exit);
        assert_eq!(
            step(5, b'\r'),
            Step::Ordinary {
                at_line_start: false
            }
        );
        assert_eq!(
            step(2, b'\n'),
            Step::Ordinary {
                at_line_start: true
            }
        );
        assert_eq!(
            step(0, b'E'),
            Step::Ordinary {
                at_line_start: false
            }
        );
    }

    #[test]
    fn held_bytes_are_a_prefix_of_the_exit_line() {
        let mut detector = ExitDetector::new();
        assert_eq!(detector.held(), b"");
        let _ = detector.feed(b"exit\r");
        assert_eq!(detector.held(), b"exit\r");
        let _ = detector.feed(b"x");
        assert_eq!(detector.held(), b"");
    }
}
