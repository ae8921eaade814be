//! `frame` framing: a 4-byte big-endian length, then that many payload bytes.
//!
//! The decoder keeps O(1) state (a partial header of up to four bytes, or the number of payload
//! bytes still due) and reports payload pieces as ranges of the chunk it is given, so the caller
//! decides where payload bytes go. It rejects a header that announces more than `max_frame`
//! bytes before reporting anything of that frame, so the caller never takes a buffer for it.

use core::fmt;
use core::ops::Range;

use crate::exit::{EXIT, continues};

/// The length of a frame header.
pub const HEADER_LEN: usize = 4;

/// The header of a frame with `len` payload bytes.
///
/// # Examples
///
/// ```
/// assert_eq!(protocol::frame_header(5), [0, 0, 0, 5]);
/// ```
#[must_use]
pub const fn frame_header(len: u32) -> [u8; HEADER_LEN] {
    len.to_be_bytes()
}

/// One step of [`FrameDecoder::decode`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FrameEvent {
    /// A header is complete: a frame of `len` payload bytes starts (`len <= max_frame`).
    Start {
        /// The payload length the header announced.
        len: u32,
    },
    /// `chunk[range]` is the next piece of the current frame's payload (never empty).
    Payload(Range<usize>),
    /// The current frame's payload is complete; the next byte starts a header.
    End {
        /// Whether the payload was exactly `exit`.
        exit: bool,
    },
}

/// What one call of [`FrameDecoder::decode`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
#[must_use = "a step says how much of the chunk was consumed"]
pub struct FrameStep {
    /// How many bytes of the chunk this step consumed; go on at `chunk[consumed..]`.
    pub consumed: usize,
    /// What happened, or `None` when the whole chunk was consumed (into a partial header) and
    /// the decoder needs the next chunk.
    pub event: Option<FrameEvent>,
}

/// A header announced a frame larger than the limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameTooLarge {
    /// The length the header announced.
    pub len: u32,
    /// The limit.
    pub max_frame: u32,
}

impl fmt::Display for FrameTooLarge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "frame of {} bytes announced, more than the limit of {} bytes",
            self.len, self.max_frame
        )
    }
}

impl std::error::Error for FrameTooLarge {}

/// The stream ended inside a frame (`FrameDecoder::finish`); the partial frame is dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IncompleteFrame {
    /// The stream ended after `got` of the four header bytes.
    Header {
        /// Header bytes received.
        got: usize,
    },
    /// The stream ended after `got` of the frame's `len` payload bytes.
    Payload {
        /// Payload bytes received.
        got: u32,
        /// Payload bytes announced.
        len: u32,
    },
}

impl fmt::Display for IncompleteFrame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Header { got } => write!(f, "stream ended after {got} of 4 header bytes"),
            Self::Payload { got, len } => {
                write!(f, "stream ended after {got} of {len} payload bytes")
            }
        }
    }
}

impl std::error::Error for IncompleteFrame {}

/// Decodes length-prefixed frames from a stream of chunks; O(1) state, no allocation.
///
/// Call [`decode`](Self::decode) on a chunk, then on `chunk[step.consumed..]`, until a step has
/// no event. Every call either consumes bytes or moves the decoder on, so the loop ends.
///
/// # Examples
///
/// A frame whose header is split between two chunks:
///
/// ```
/// use protocol::{FrameDecoder, FrameEvent, frame_header};
///
/// let mut decoder = FrameDecoder::new(1024);
/// let mut stream = frame_header(3).to_vec();
/// stream.extend_from_slice(b"abc");
/// let mut events = Vec::new();
/// for chunk in stream.chunks(2) {
///     let mut pos = 0;
///     loop {
///         let step = decoder.decode(&chunk[pos..]).expect("small frames");
///         if let Some(FrameEvent::Payload(range)) = &step.event {
///             events.push(format!("payload {:?}", &chunk[pos + range.start..pos + range.end]));
///         } else if let Some(event) = &step.event {
///             events.push(format!("{event:?}"));
///         }
///         pos += step.consumed;
///         if step.event.is_none() {
///             break;
///         }
///     }
/// }
/// assert_eq!(
///     events,
///     ["Start { len: 3 }", "payload [97, 98]", "payload [99]", "End { exit: false }"]
/// );
/// assert_eq!(decoder.finish(), Ok(()));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FrameDecoder {
    max_frame: u32,
    state: State,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// `header[..got]` has arrived.
    Header { header: [u8; HEADER_LEN], got: u8 },
    /// Inside a frame of `len` bytes, `remaining` still due; `exit_prefix` while the payload
    /// so far is a prefix of `exit` and `len` is 4.
    Payload {
        len: u32,
        remaining: u32,
        exit_prefix: bool,
    },
    /// A header was too large; every call repeats the error.
    Failed { len: u32 },
}

const NO_HEADER: State = State::Header {
    header: [0; HEADER_LEN],
    got: 0,
};

impl FrameDecoder {
    /// A decoder that accepts frames of at most `max_frame` payload bytes.
    #[must_use]
    pub const fn new(max_frame: u32) -> Self {
        Self {
            max_frame,
            state: NO_HEADER,
        }
    }

    /// The limit on a frame's payload.
    #[must_use]
    pub const fn max_frame(&self) -> u32 {
        self.max_frame
    }

    /// Whether the decoder is between frames (no partial header or payload).
    #[must_use]
    pub const fn at_boundary(&self) -> bool {
        matches!(self.state, State::Header { got: 0, .. })
    }

    /// Decodes the next step from `chunk`; see [`FrameStep`] and [`FrameEvent`].
    ///
    /// # Errors
    ///
    /// [`FrameTooLarge`] when a header announces more than `max_frame` bytes, and on every call
    /// after that.
    pub fn decode(&mut self, chunk: &[u8]) -> Result<FrameStep, FrameTooLarge> {
        match self.state {
            State::Failed { len } => Err(self.too_large(len)),
            State::Header { mut header, got } => {
                let got = usize::from(got);
                let take = chunk.len().min(HEADER_LEN - got);
                header[got..got + take].copy_from_slice(&chunk[..take]);
                if got + take < HEADER_LEN {
                    // Fewer than four bytes: the cast is lossless.
                    let got = (got + take) as u8;
                    self.state = State::Header { header, got };
                    return Ok(FrameStep {
                        consumed: take,
                        event: None,
                    });
                }
                let len = u32::from_be_bytes(header);
                if len > self.max_frame {
                    self.state = State::Failed { len };
                    return Err(self.too_large(len));
                }
                self.state = State::Payload {
                    len,
                    remaining: len,
                    exit_prefix: len == 4,
                };
                Ok(FrameStep {
                    consumed: take,
                    event: Some(FrameEvent::Start { len }),
                })
            }
            State::Payload {
                remaining: 0,
                exit_prefix,
                ..
            } => {
                self.state = NO_HEADER;
                Ok(FrameStep {
                    consumed: 0,
                    event: Some(FrameEvent::End { exit: exit_prefix }),
                })
            }
            State::Payload {
                len,
                remaining,
                exit_prefix,
            } => {
                let take = chunk.len().min(remaining as usize);
                if take == 0 {
                    return Ok(FrameStep {
                        consumed: 0,
                        event: None,
                    });
                }
                // `take <= remaining`: the cast is lossless.
                let taken = take as u32;
                let seen = (len - remaining) as usize;
                let exit_prefix = exit_prefix && continues(EXIT, seen, &chunk[..take]);
                self.state = State::Payload {
                    len,
                    remaining: remaining - taken,
                    exit_prefix,
                };
                Ok(FrameStep {
                    consumed: take,
                    event: Some(FrameEvent::Payload(0..take)),
                })
            }
        }
    }

    /// Ends the stream.
    ///
    /// The decoder is ready for a new stream afterwards (unless it had failed).
    ///
    /// # Errors
    ///
    /// [`IncompleteFrame`] when the stream ended inside a header or a payload. A frame whose
    /// payload is complete but whose [`FrameEvent::End`] was not yet taken counts as complete.
    pub fn finish(&mut self) -> Result<(), IncompleteFrame> {
        let result = match self.state {
            State::Header { got: 0, .. }
            | State::Payload { remaining: 0, .. }
            | State::Failed { .. } => Ok(()),
            State::Header { got, .. } => Err(IncompleteFrame::Header {
                got: usize::from(got),
            }),
            State::Payload { len, remaining, .. } => Err(IncompleteFrame::Payload {
                got: len - remaining,
                len,
            }),
        };
        if !matches!(self.state, State::Failed { .. }) {
            self.state = NO_HEADER;
        }
        result
    }

    const fn too_large(&self, len: u32) -> FrameTooLarge {
        FrameTooLarge {
            len,
            max_frame: self.max_frame,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_frame_starts_and_ends() {
        let mut decoder = FrameDecoder::new(8);
        let step = decoder.decode(&[0, 0, 0, 0, 9]).unwrap();
        assert_eq!(step.consumed, 4);
        assert_eq!(step.event, Some(FrameEvent::Start { len: 0 }));
        let step = decoder.decode(&[9]).unwrap();
        assert_eq!(
            (step.consumed, step.event),
            (0, Some(FrameEvent::End { exit: false }))
        );
        assert!(decoder.at_boundary());
    }

    #[test]
    fn a_large_header_fails_before_any_payload() {
        let mut decoder = FrameDecoder::new(8);
        let err = FrameTooLarge {
            len: 9,
            max_frame: 8,
        };
        assert_eq!(decoder.decode(&[0, 0, 0, 9, 1, 2]), Err(err));
        assert_eq!(decoder.decode(&[1]), Err(err));
        assert_eq!(
            err.to_string(),
            "frame of 9 bytes announced, more than the limit of 8 bytes"
        );
    }

    #[test]
    fn a_frame_whose_end_is_not_yet_taken_is_complete() {
        let mut decoder = FrameDecoder::new(8);
        let step = decoder.decode(b"\0\0\0\x02hi").unwrap();
        assert_eq!(step.event, Some(FrameEvent::Start { len: 2 }));
        let step = decoder.decode(b"hi").unwrap();
        assert_eq!(step.event, Some(FrameEvent::Payload(0..2)));
        assert_eq!(decoder.finish(), Ok(()));
        assert!(decoder.at_boundary());
    }

    #[test]
    fn an_exit_frame_is_flagged() {
        let mut decoder = FrameDecoder::new(8);
        let _ = decoder.decode(&[0, 0, 0, 4]).unwrap();
        let _ = decoder.decode(b"ex").unwrap();
        let _ = decoder.decode(b"it").unwrap();
        assert_eq!(
            decoder.decode(b"").unwrap().event,
            Some(FrameEvent::End { exit: true })
        );
    }
}
