//! Sans-I/O framing for the reverse server: lines, chunks and length-prefixed frames, with the
//! `exit` line found however the stream is cut.
//!
//! Nothing here reads or writes a socket, allocates per call, or panics on what a client sends.
//! Each decoder is a small state machine fed one chunk at a time (whatever one `read` returned)
//! that reports *ranges* of that chunk, so the caller can reverse bytes in place in the buffer
//! they were read into and send them from there:
//!
//! | framing | type | unit that is reversed |
//! |---|---|---|
//! | `line` | [`LineFramer`] | each line, without its `\n` or `\r\n` terminator |
//! | `chunk` | [`ExitDetector`] | each read as it arrived, less the bytes held back as a possible `exit` |
//! | `frame` | [`FrameDecoder`] | each payload of a 4-byte big-endian length prefix |
//!
//! Every decoder also says when the client asked the server to stop: a line that is exactly
//! `exit` (`exit\n`, `exit\r\n`, or `exit` then the end of the stream), or a frame whose payload
//! is exactly `exit`. Whether to honour it is the caller's policy; the decoders only report it.
//!
//! Limits are errors, not panics: [`LineTooLong`] past `max_line` body bytes, [`FrameTooLarge`]
//! as soon as a header announces more than `max_frame` bytes (before any of the frame's payload
//! is reported, so no buffer is ever taken for it).
//!
//! # Examples
//!
//! Reversing a stream of lines that arrives cut in arbitrary places, the way the server does:
//! whole lines are reversed in the buffer they arrived in, and only the start of an unfinished
//! line is copied, into a carry buffer, until its end arrives.
//!
//! ```
//! use protocol::{LineFramer, reverse};
//!
//! let mut framer = LineFramer::new(64);
//! let mut carry = Vec::new();
//! let mut out = Vec::new();
//! let mut stop = false;
//!
//! for read in [&b"hello\nwor"[..], b"ld\r\nex", b"it\nignored\n"] {
//!     let mut buf = read.to_vec(); // the slot the bytes were read into
//!     let mut pos = 0;
//!     while let Some(line) = framer.decode(&buf[pos..]).expect("lines are short") {
//!         if line.exit {
//!             stop = true;
//!             break;
//!         }
//!         let body = pos + line.body.start..pos + line.body.end;
//!         reverse(&mut buf[body.clone()]);
//!         reverse(&mut carry[..line.carried]);
//!         out.extend_from_slice(&buf[body]);
//!         out.extend_from_slice(&carry[..line.carried]);
//!         out.extend_from_slice(line.terminator.as_bytes());
//!         carry.clear();
//!         pos += line.end;
//!     }
//!     if stop {
//!         break;
//!     }
//!     carry.extend_from_slice(&buf[pos..]);
//! }
//! assert!(stop);
//! assert_eq!(out, b"olleh\ndlrow\r\n");
//! ```
#![forbid(unsafe_code)]

mod exit;
mod frame;
mod line;
mod reverse;

use core::fmt;
use core::str::FromStr;

pub use exit::{Eof, ExitDetector, Scan};
pub use frame::{
    FrameDecoder, FrameEvent, FrameStep, FrameTooLarge, HEADER_LEN, IncompleteFrame, frame_header,
};
pub use line::{FinalLine, Line, LineFramer, LineTooLong, LinesEnd, Terminator};
pub use reverse::{reverse, reverse_lines};

/// The default limit on a line's body, in bytes (`--max-line`).
pub const DEFAULT_MAX_LINE: usize = 64 * 1024;

/// The default limit on a frame's payload, in bytes (`--max-frame`).
pub const DEFAULT_MAX_FRAME: u32 = 1024 * 1024;

/// The unit the server reverses (`--framing`).
///
/// # Examples
///
/// ```
/// use protocol::Framing;
///
/// assert_eq!("chunk".parse::<Framing>(), Ok(Framing::Chunk));
/// assert_eq!(Framing::default().to_string(), "line");
/// assert!("lines".parse::<Framing>().is_err());
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Framing {
    /// Each line, terminated by `\n` ([`LineFramer`]).
    #[default]
    Line,
    /// Each read as it arrived ([`ExitDetector`]).
    Chunk,
    /// Each length-prefixed frame ([`FrameDecoder`]).
    Frame,
}

impl Framing {
    /// Every framing, in the order the command line lists them.
    pub const ALL: [Self; 3] = [Self::Line, Self::Chunk, Self::Frame];

    /// The framing's name on the command line.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Line => "line",
            Self::Chunk => "chunk",
            Self::Frame => "frame",
        }
    }
}

impl fmt::Display for Framing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A framing name that is none of `line`, `chunk`, `frame`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownFraming(pub String);

impl fmt::Display for UnknownFraming {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown framing `{}` (expected one of: line, chunk, frame)",
            self.0
        )
    }
}

impl std::error::Error for UnknownFraming {}

impl FromStr for Framing {
    type Err = UnknownFraming;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|framing| framing.name() == name)
            .ok_or_else(|| UnknownFraming(name.to_owned()))
    }
}
