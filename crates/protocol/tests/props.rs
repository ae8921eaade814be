//! Property tests: long random streams, cut at random places, against the one-shot references.
//!
//! The exhaustive tests in `splits.rs` cover every short input; these cover what short inputs
//! cannot: long lines near a large limit, many lines per chunk, frames whose payload spans many
//! chunks, and exit lines deep in a stream.

mod common;

use common::{Exits, Frames, Lines, check_split};
use proptest::prelude::*;

/// A stream of text: fragments that make exit lines, near misses, terminators and filler.
fn text(max_fragments: usize) -> impl Strategy<Value = Vec<u8>> {
    let fragment = prop_oneof![
        4 => proptest::collection::vec(prop_oneof![Just(b'a'), Just(b'b'), Just(b' ')], 0..40),
        2 => Just(b"\n".to_vec()),
        1 => Just(b"\r\n".to_vec()),
        1 => Just(b"\r".to_vec()),
        1 => Just(b"exit\n".to_vec()),
        1 => Just(b"exit\r\n".to_vec()),
        1 => Just(b"exit".to_vec()),
        1 => Just(b"exi".to_vec()),
        1 => Just(b"exiting".to_vec()),
        1 => any::<u8>().prop_map(|byte| vec![byte]),
    ];
    proptest::collection::vec(fragment, 0..max_fragments).prop_map(|parts| parts.concat())
}

/// A stream of frames: mostly well-formed (some `exit`, some empty), sometimes cut short or
/// followed by a header past the limit.
fn frames() -> impl Strategy<Value = Vec<u8>> {
    let frame = prop_oneof![
        6 => proptest::collection::vec(any::<u8>(), 0..300),
        1 => Just(b"exit".to_vec()),
        1 => Just(Vec::new()),
    ]
    .prop_map(|payload| {
        let len = u32::try_from(payload.len()).expect("short payloads");
        let mut frame = protocol::frame_header(len).to_vec();
        frame.extend_from_slice(&payload);
        frame
    });
    (
        proptest::collection::vec(frame, 0..20),
        proptest::collection::vec(any::<u8>(), 0..8),
    )
        .prop_map(|(frames, tail)| {
            let mut stream = frames.concat();
            stream.extend_from_slice(&tail);
            stream
        })
}

/// Random cut points for `input`: sorted, deduplicated, ending at `input.len()`.
fn cuts(len: usize, raw: &[usize]) -> Vec<usize> {
    let mut cuts: Vec<usize> = raw.iter().map(|&cut| cut % (len + 1)).collect();
    cuts.push(len);
    cuts.sort_unstable();
    cuts.dedup();
    cuts.retain(|&cut| cut > 0 || len == 0);
    cuts
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn exit_detector_matches_the_reference(
        input in text(200),
        raw in proptest::collection::vec(any::<usize>(), 0..40),
    ) {
        check_split(&Exits, &input, &cuts(input.len(), &raw));
    }

    #[test]
    fn lines_match_the_reference(
        input in text(200),
        raw in proptest::collection::vec(any::<usize>(), 0..40),
        max_line in prop_oneof![0..8_usize, 30..60_usize, Just(usize::MAX)],
    ) {
        for lines in &Lines::both(max_line) {
            check_split(lines, &input, &cuts(input.len(), &raw));
        }
    }

    #[test]
    fn frames_match_the_reference(
        input in frames(),
        raw in proptest::collection::vec(any::<usize>(), 0..40),
        max_frame in prop_oneof![0..8_u32, 200..400_u32, Just(u32::MAX)],
    ) {
        check_split(&Frames { max_frame }, &input, &cuts(input.len(), &raw));
    }

    /// Chunks of one byte: the most boundaries a stream can have.
    #[test]
    fn byte_at_a_time(input in text(60), max_line in 0..12_usize) {
        let every: Vec<usize> = (1..=input.len()).collect();
        check_split(&Exits, &input, &every);
        for lines in &Lines::both(max_line) {
            check_split(lines, &input, &every);
        }
    }
}
