//! The test harness: one-shot references, streaming drivers, and a search over every split.
//!
//! Every decoder is described to the harness as a [`Harness`]: a streaming driver that feeds it
//! chunks and turns what it reports into [`Token`]s, and a one-shot reference, written as
//! plainly as possible and independently of the decoder, that says which tokens a whole input
//! (or a prefix of it, before the end of the stream) must give.
//!
//! The property checked for a split is stronger than "the same result at the end": after each
//! chunk, the tokens emitted so far must be exactly the reference's tokens for the input so far.
//! That catches data released too late (held back needlessly) as well as too early (an exit
//! line partly echoed, a long line reported late).

#![allow(dead_code, unreachable_pub)]

use std::fmt::Write as _;
use std::ops::Range;

use protocol::{
    ExitDetector, FrameDecoder, FrameEvent, IncompleteFrame, LineFramer, LinesEnd, Terminator,
};
use std::ops::ControlFlow;

/// One thing a decoder reported, in stream order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Token {
    /// A byte of data (exit detector), of a line body, or of a frame payload, not reversed.
    Byte(u8),
    /// The exit detector found an exit line.
    Exit,
    /// A line ended.
    LineEnd { terminator: Terminator, exit: bool },
    /// The stream ended with an unterminated last line.
    LastLine { exit: bool },
    /// A line was too long; the stream is over for the decoder.
    TooLong,
    /// A frame of this length started.
    FrameStart(u32),
    /// A frame's payload ended.
    FrameEnd { exit: bool },
    /// A header announced this too large length; the stream is over for the decoder.
    TooLarge(u32),
    /// The stream ended inside a frame.
    Incomplete,
}

/// Renders tokens for `check` expectations: bytes as quoted runs, the rest as words.
pub fn render(tokens: &[Token]) -> String {
    let mut out = String::new();
    let mut in_bytes = false;
    for token in tokens {
        if let Token::Byte(byte) = *token {
            if !in_bytes {
                out.push_str(if out.is_empty() { "\"" } else { " \"" });
                in_bytes = true;
            }
            out.extend(std::ascii::escape_default(byte).map(char::from));
            continue;
        }
        if in_bytes {
            out.push('"');
            in_bytes = false;
        }
        if !out.is_empty() {
            out.push(' ');
        }
        let exit = |exit: bool| if exit { ":exit" } else { "" };
        match *token {
            Token::Byte(_) => unreachable!("handled above"),
            Token::Exit => out.push_str("EXIT"),
            Token::LineEnd {
                terminator,
                exit: e,
            } => {
                let name = match terminator {
                    Terminator::Lf => "LF",
                    Terminator::CrLf => "CRLF",
                };
                let _ = write!(out, "{name}{}", exit(e));
            }
            Token::LastLine { exit: e } => {
                let _ = write!(out, "EOF{}", exit(e));
            }
            Token::TooLong => out.push_str("TOO-LONG"),
            Token::FrameStart(len) => {
                let _ = write!(out, "START({len})");
            }
            Token::FrameEnd { exit: e } => {
                let _ = write!(out, "END{}", exit(e));
            }
            Token::TooLarge(len) => {
                let _ = write!(out, "TOO-LARGE({len})");
            }
            Token::Incomplete => out.push_str("INCOMPLETE"),
        }
    }
    if in_bytes {
        out.push('"');
    }
    out
}

/// A decoder under test, with its reference.
pub trait Harness {
    /// Everything the driver keeps between chunks (the decoder and the caller's bookkeeping).
    type State: Clone + PartialEq + std::fmt::Debug;

    /// The state at the start of a stream.
    fn start(&self) -> Self::State;

    /// Feeds `input[chunk]` (the bytes before it were fed already) and emits what it reports.
    fn feed(
        &self,
        state: &mut Self::State,
        input: &[u8],
        chunk: Range<usize>,
        out: &mut Checker<'_>,
    );

    /// Ends the stream after `input`.
    fn finish(&self, state: &mut Self::State, input: &[u8], out: &mut Checker<'_>);

    /// The one-shot reference: the tokens for `input`, followed by the end of the stream when
    /// `eof`, or, when not, the tokens that must already have been emitted after `input`.
    fn reference(&self, input: &[u8], eof: bool, out: &mut Vec<Token>);
}

fn bytes(out: &mut Vec<Token>, bytes: &[u8]) {
    out.extend(bytes.iter().map(|&byte| Token::Byte(byte)));
}

/// The exit detector (all of `chunk` framing).
pub struct Exits;

impl Harness for Exits {
    type State = ExitDetector;

    fn start(&self) -> ExitDetector {
        ExitDetector::new()
    }

    fn feed(
        &self,
        detector: &mut ExitDetector,
        input: &[u8],
        chunk: Range<usize>,
        out: &mut Checker<'_>,
    ) {
        let end = chunk.end;
        let chunk = &input[chunk];
        let mut pos = 0;
        loop {
            let scan = detector.feed(&chunk[pos..]);
            out.bytes(scan.released);
            out.bytes(&chunk[pos..pos + scan.data]);
            match scan.exit {
                Some(exit_end) => {
                    assert!(scan.data < exit_end, "{scan:?}");
                    out.token(Token::Exit);
                    pos += exit_end;
                }
                None => {
                    // Everything not reported as data is held: the input's last bytes, and no
                    // more than `exit\r`.
                    let held = detector.held();
                    assert!(pos + scan.data + held.len() >= chunk.len(), "{scan:?}");
                    assert!(held.len() <= 5);
                    assert_eq!(held, &input[end - held.len()..end], "held bytes");
                    return;
                }
            }
        }
    }

    fn finish(&self, detector: &mut ExitDetector, _input: &[u8], out: &mut Checker<'_>) {
        let eof = detector.finish();
        assert_eq!(*detector, ExitDetector::new(), "a new stream after finish");
        out.bytes(eof.released);
        if eof.exit {
            out.token(Token::Exit);
        }
    }

    fn reference(&self, input: &[u8], eof: bool, out: &mut Vec<Token>) {
        let mut rest = input;
        while let Some(newline) = rest.iter().position(|&b| b == b'\n') {
            let line = &rest[..=newline];
            if line == b"exit\n" || line == b"exit\r\n" {
                out.push(Token::Exit);
            } else {
                bytes(out, line);
            }
            rest = &rest[newline + 1..];
        }
        if eof && rest == b"exit" {
            out.push(Token::Exit);
        } else if eof || !b"exit\r".starts_with(rest) {
            // Anything that can no longer become an exit line is data at once.
            bytes(out, rest);
        }
    }
}

/// `line` framing, with the caller's carry kept as a range of the input.
pub struct Lines {
    pub max_line: usize,
    /// Whether the driver uses `decode_lines` (one call per chunk, stopping after every exit
    /// line and resuming, as a server that honours `exit` would) rather than `decode`.
    pub batch: bool,
}

impl Lines {
    /// Both drivers, with this limit.
    pub fn both(max_line: usize) -> [Self; 2] {
        [false, true].map(|batch| Self { max_line, batch })
    }
}

/// The line driver's state.
#[derive(Clone, Debug, PartialEq)]
pub struct LineState {
    framer: LineFramer,
    /// Where the unfinished line starts: the caller's carry is `input[line_start..fed]`.
    line_start: usize,
    failed: bool,
}

impl Harness for Lines {
    type State = LineState;

    fn start(&self) -> LineState {
        LineState {
            framer: LineFramer::new(self.max_line),
            line_start: 0,
            failed: false,
        }
    }

    fn feed(
        &self,
        state: &mut LineState,
        input: &[u8],
        chunk: Range<usize>,
        out: &mut Checker<'_>,
    ) {
        if state.failed {
            return;
        }
        if self.batch {
            return self.feed_batches(state, input, chunk, out);
        }
        let mut pos = chunk.start;
        loop {
            match state.framer.decode(&input[pos..chunk.end]) {
                Ok(Some(line)) => {
                    let carry = state.line_start..state.line_start + line.carried;
                    assert!(
                        carry.end <= pos,
                        "carried more than the caller kept: {line:?}"
                    );
                    let body = pos + line.body.start..pos + line.body.end;
                    out.bytes(&input[carry]);
                    out.bytes(&input[body]);
                    out.token(Token::LineEnd {
                        terminator: line.terminator,
                        exit: line.exit,
                    });
                    pos += line.end;
                    state.line_start = pos;
                }
                Ok(None) => {
                    // The caller keeps the rest; the framer must count exactly that.
                    assert_eq!(state.framer.carried(), chunk.end - state.line_start);
                    return;
                }
                Err(err) => {
                    assert_eq!(err.max_line, self.max_line);
                    assert_eq!(state.framer.carried(), 0, "nothing carried after an error");
                    assert_eq!(state.framer.decode(b"\n"), Err(err), "errors stick");
                    out.token(Token::TooLong);
                    state.failed = true;
                    return;
                }
            }
        }
    }

    fn finish(&self, state: &mut LineState, input: &[u8], out: &mut Checker<'_>) {
        self.finish_lines(state, input, out);
    }

    fn reference(&self, input: &[u8], eof: bool, out: &mut Vec<Token>) {
        self.line_reference(input, eof, out);
    }
}

impl Lines {
    /// The `decode_lines` driver: the chunk is copied into a buffer of its own, as if read.
    fn feed_batches(
        &self,
        state: &mut LineState,
        input: &[u8],
        chunk: Range<usize>,
        out: &mut Checker<'_>,
    ) {
        let mut small = [0; 64];
        let mut large = Vec::new();
        let buffer: &mut [u8] = if chunk.len() <= small.len() {
            small[..chunk.len()].copy_from_slice(&input[chunk.clone()]);
            &mut small[..chunk.len()]
        } else {
            large.extend_from_slice(&input[chunk.clone()]);
            &mut large
        };
        let LineState {
            framer, line_start, ..
        } = state;
        let mut pos = 0;
        loop {
            let base = chunk.start + pos;
            let result = framer.decode_lines(&mut buffer[pos..], |buffer, line| {
                let carry = *line_start..*line_start + line.carried;
                assert!(carry.end <= base + line.body.start, "{line:?}");
                out.bytes(&input[carry]);
                out.bytes(&buffer[line.body.clone()]);
                out.token(Token::LineEnd {
                    terminator: line.terminator,
                    exit: line.exit,
                });
                *line_start = base + line.end;
                if line.exit {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            });
            match result {
                Ok(LinesEnd::Stopped { at }) => {
                    assert_eq!(base + at, *line_start, "stopped after the exit line");
                    pos += at;
                }
                Ok(LinesEnd::Kept { from }) => {
                    // The unfinished line's part in this chunk: from its start, or from the
                    // chunk's start when it began in an earlier one.
                    assert_eq!(base + from, (*line_start).max(base), "kept from");
                    assert_eq!(framer.carried(), chunk.end - *line_start);
                    return;
                }
                Err(err) => {
                    assert_eq!(err.max_line, self.max_line);
                    assert_eq!(framer.carried(), 0, "nothing carried after an error");
                    out.token(Token::TooLong);
                    state.failed = true;
                    return;
                }
            }
        }
    }

    fn finish_lines(&self, state: &mut LineState, input: &[u8], out: &mut Checker<'_>) {
        if state.failed {
            return;
        }
        match state.framer.finish() {
            Ok(Some(last)) => {
                assert_eq!(last.len, input.len() - state.line_start);
                out.bytes(&input[state.line_start..]);
                out.token(Token::LastLine { exit: last.exit });
            }
            Ok(None) => assert_eq!(state.line_start, input.len()),
            Err(_) => {
                out.token(Token::TooLong);
                return;
            }
        }
        assert_eq!(
            state.framer,
            LineFramer::new(self.max_line),
            "a new stream after finish"
        );
    }

    fn line_reference(&self, input: &[u8], eof: bool, out: &mut Vec<Token>) {
        let max = self.max_line;
        let mut rest = input;
        while let Some(newline) = rest.iter().position(|&b| b == b'\n') {
            let (body, terminator) = match rest[..newline].strip_suffix(b"\r") {
                Some(body) => (body, Terminator::CrLf),
                None => (&rest[..newline], Terminator::Lf),
            };
            if body.len() > max {
                out.push(Token::TooLong);
                return;
            }
            bytes(out, body);
            out.push(Token::LineEnd {
                terminator,
                exit: body == b"exit",
            });
            rest = &rest[newline + 1..];
        }
        if eof {
            if rest.len() > max {
                out.push(Token::TooLong);
            } else if !rest.is_empty() {
                bytes(out, rest);
                out.push(Token::LastLine {
                    exit: rest == b"exit",
                });
            }
        } else if let over @ 1.. = rest.len().saturating_sub(max)
            && (over > 1 || !rest.ends_with(b"\r"))
        {
            // Whatever comes next, this line's body is longer than the limit.
            out.push(Token::TooLong);
        }
    }
}

/// `frame` framing.
pub struct Frames {
    pub max_frame: u32,
}

/// The frame driver's state.
#[derive(Clone, Debug, PartialEq)]
pub struct FrameState {
    decoder: FrameDecoder,
    failed: bool,
}

impl Harness for Frames {
    type State = FrameState;

    fn start(&self) -> FrameState {
        FrameState {
            decoder: FrameDecoder::new(self.max_frame),
            failed: false,
        }
    }

    fn feed(
        &self,
        state: &mut FrameState,
        input: &[u8],
        chunk: Range<usize>,
        out: &mut Checker<'_>,
    ) {
        if state.failed {
            return;
        }
        let mut pos = chunk.start;
        // Each step consumes a byte or moves the decoder on; a frame takes at most 3 steps
        // that consume nothing, so this bounds the loop.
        for _ in 0..4 * (chunk.len() + 1) {
            match state.decoder.decode(&input[pos..chunk.end]) {
                Ok(step) => {
                    match step.event {
                        Some(FrameEvent::Start { len }) => out.token(Token::FrameStart(len)),
                        Some(FrameEvent::Payload(range)) => {
                            assert!(!range.is_empty());
                            assert_eq!(range.end, step.consumed);
                            out.bytes(&input[pos + range.start..pos + range.end]);
                        }
                        Some(FrameEvent::End { exit }) => out.token(Token::FrameEnd { exit }),
                        None => {
                            assert_eq!(pos + step.consumed, chunk.end);
                            return;
                        }
                    }
                    pos += step.consumed;
                }
                Err(err) => {
                    assert_eq!(err.max_frame, self.max_frame);
                    out.token(Token::TooLarge(err.len));
                    state.failed = true;
                    return;
                }
            }
        }
        panic!("the frame decoder made no progress");
    }

    fn finish(&self, state: &mut FrameState, _input: &[u8], out: &mut Checker<'_>) {
        if state.failed {
            assert_eq!(state.decoder.finish(), Ok(()));
            assert!(
                state.decoder.decode(&[0; 4]).is_err(),
                "failure sticks after finish"
            );
            return;
        }
        match state.decoder.finish() {
            Ok(()) => {}
            Err(IncompleteFrame::Header { got }) => {
                assert!((1..4).contains(&got));
                out.token(Token::Incomplete);
            }
            Err(IncompleteFrame::Payload { got, len }) => {
                assert!(got < len);
                out.token(Token::Incomplete);
            }
        }
        assert_eq!(
            state.decoder,
            FrameDecoder::new(self.max_frame),
            "a new stream after finish"
        );
    }

    fn reference(&self, input: &[u8], eof: bool, out: &mut Vec<Token>) {
        let mut rest = input;
        loop {
            let Some((header, payload)) = rest.split_first_chunk::<4>() else {
                if eof && !rest.is_empty() {
                    out.push(Token::Incomplete);
                }
                return;
            };
            let len = u32::from_be_bytes(*header);
            if len > self.max_frame {
                out.push(Token::TooLarge(len));
                return;
            }
            out.push(Token::FrameStart(len));
            let len = len as usize;
            if payload.len() < len {
                bytes(out, payload);
                if eof {
                    out.push(Token::Incomplete);
                }
                return;
            }
            bytes(out, &payload[..len]);
            out.push(Token::FrameEnd {
                exit: &payload[..len] == b"exit",
            });
            rest = &payload[len..];
        }
    }
}

/// Compares emitted tokens with the expected ones as they come.
pub struct Checker<'a> {
    expected: &'a [Token],
    emitted: usize,
    mismatch: Option<(usize, Token)>,
}

impl Checker<'_> {
    /// Emits one token.
    pub fn token(&mut self, token: Token) {
        if self.mismatch.is_none() && self.expected.get(self.emitted) != Some(&token) {
            self.mismatch = Some((self.emitted, token));
        }
        self.emitted += 1;
    }

    /// Emits a [`Token::Byte`] for each byte.
    pub fn bytes(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.token(Token::Byte(byte));
        }
    }
}

/// Buffers reused from one input to the next, so the exhaustive tests allocate nothing per input.
pub struct Scratch<S> {
    full: Vec<Token>,
    prefix: Vec<Token>,
    counts: Vec<usize>,
    seen: Vec<(usize, S, usize)>,
    stack: Vec<(usize, S, usize, u64)>,
}

impl<S> Default for Scratch<S> {
    fn default() -> Self {
        Self {
            full: Vec::new(),
            prefix: Vec::new(),
            counts: Vec::new(),
            seen: Vec::new(),
            stack: Vec::new(),
        }
    }
}

/// Fills `full` with the reference's tokens for the whole stream and `counts` with how many
/// tokens each prefix `input[..end]` has, for each of `ends` in order, checking each prefix's
/// tokens start `full`.
fn references<H: Harness>(
    harness: &H,
    input: &[u8],
    ends: impl IntoIterator<Item = usize>,
    full: &mut Vec<Token>,
    prefix: &mut Vec<Token>,
    counts: &mut Vec<usize>,
) {
    full.clear();
    counts.clear();
    harness.reference(input, true, full);
    for end in ends {
        prefix.clear();
        harness.reference(&input[..end], false, prefix);
        assert!(
            full.starts_with(prefix),
            "reference bug: {:?} gives {} before the end and {} with it",
            input[..end].escape_ascii().to_string(),
            render(prefix),
            render(full)
        );
        counts.push(prefix.len());
    }
}

/// Runs one split: `cuts` are the chunk ends (increasing, the last one `input.len()`).
/// Panics with the input and the split when the tokens differ from the reference's at any cut.
pub fn check_split<H: Harness>(harness: &H, input: &[u8], cuts: &[usize]) {
    let (mut full, mut counts) = (Vec::new(), Vec::new());
    references(
        harness,
        input,
        cuts.iter().copied(),
        &mut full,
        &mut Vec::new(),
        &mut counts,
    );
    let mut checker = Checker {
        expected: &full,
        emitted: 0,
        mismatch: None,
    };
    let mut state = harness.start();
    let mut from = 0;
    for (&to, &count) in cuts.iter().zip(&counts) {
        harness.feed(&mut state, input, from..to, &mut checker);
        assert_split(&checker, count, input, || cuts.to_vec(), to);
        from = to;
    }
    harness.finish(&mut state, input, &mut checker);
    assert_split(&checker, full.len(), input, || cuts.to_vec(), input.len());
}

fn assert_split(
    checker: &Checker<'_>,
    count: usize,
    input: &[u8],
    cuts: impl FnOnce() -> Vec<usize>,
    at: usize,
) {
    if checker.mismatch.is_none() && checker.emitted == count {
        return;
    }
    panic!(
        "input {:?} split at {:?}: after {at} bytes, emitted {} token(s) (first wrong: {:?}), \
         expected {count} of: {}",
        input.escape_ascii().to_string(),
        cuts(),
        checker.emitted,
        checker.mismatch,
        render(checker.expected),
    );
}

/// The chunk ends recorded in a bit set (bit `i` set: a chunk ends after `i` bytes).
fn cuts_of(bits: u64) -> Vec<usize> {
    (1..64).filter(|i| bits & (1 << i) != 0).collect()
}

/// Checks every way to split `input` (at most 63 bytes) into non-empty chunks.
///
/// Splits share prefixes, and the decoders are deterministic: two splits that reach the same
/// configuration (bytes fed, driver state, tokens emitted) behave the same from there on. So
/// this walks the tree of splits and explores each configuration once, which reaches the same
/// set of outcomes as running all `2^(n-1)` splits one by one, in O(n^2) feeds. Returns the
/// number of configurations explored.
pub fn check_all_splits<H: Harness>(
    harness: &H,
    input: &[u8],
    scratch: &mut Scratch<H::State>,
) -> usize {
    let n = input.len();
    assert!(n < 64, "cuts are recorded in a u64");
    let Scratch {
        full,
        prefix,
        counts,
        seen,
        stack,
    } = scratch;
    references(harness, input, 0..=n, full, prefix, counts);
    // The configurations seen: (bytes fed, state, tokens emitted). With a correct decoder there
    // is one per position. The stack also carries the cuts that led to each.
    seen.clear();
    stack.clear();
    stack.push((0, harness.start(), 0, 0_u64));
    let mut explored = 0;
    while let Some((from, state, emitted, cuts)) = stack.pop() {
        explored += 1;
        if from == n {
            let mut state = state;
            let mut checker = Checker {
                expected: full,
                emitted,
                mismatch: None,
            };
            harness.finish(&mut state, input, &mut checker);
            assert_split(&checker, full.len(), input, || cuts_of(cuts), n);
            continue;
        }
        for (to, &count) in counts.iter().enumerate().skip(from + 1) {
            let mut next = state.clone();
            let mut checker = Checker {
                expected: full,
                emitted,
                mismatch: None,
            };
            harness.feed(&mut next, input, from..to, &mut checker);
            // Empty reads change nothing.
            harness.feed(&mut next, input, to..to, &mut checker);
            let cuts = cuts | 1 << to;
            assert_split(&checker, count, input, || cuts_of(cuts), to);
            let emitted = checker.emitted;
            if !seen
                .iter()
                .any(|(at, seen, e)| *at == to && *e == emitted && *seen == next)
            {
                seen.push((to, next.clone(), emitted));
                stack.push((to, next, emitted, cuts));
            }
        }
    }
    explored
}

/// The matklad-style check: the reference renders `input` as `expected`, and every split of
/// `input` gives the same tokens at every cut.
pub fn check<H: Harness>(harness: &H, input: &[u8], expected: &str) {
    let mut tokens = Vec::new();
    harness.reference(input, true, &mut tokens);
    assert_eq!(
        render(&tokens),
        expected,
        "reference for {:?}",
        input.escape_ascii().to_string()
    );
    check_all_splits(harness, input, &mut Scratch::default());
}

/// Calls `f` with every input of length `0..=max_len` over `alphabet`, reusing one buffer.
pub fn for_every_input(alphabet: &[u8], max_len: usize, mut f: impl FnMut(&[u8])) -> usize {
    let mut count = 0;
    let mut input = Vec::with_capacity(max_len);
    for len in 0..=max_len {
        // `digits` counts in base `alphabet.len()`.
        let mut digits = vec![0; len];
        loop {
            input.clear();
            input.extend(digits.iter().map(|&d| alphabet[d]));
            f(&input);
            count += 1;
            let Some(i) = digits.iter().rposition(|&d| d + 1 < alphabet.len()) else {
                break;
            };
            digits[i] += 1;
            digits[i + 1..].fill(0);
        }
    }
    count
}
