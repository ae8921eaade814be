//! Connection identities: a table index plus a generation, never a bare file descriptor.

use poller::Token;

/// Names one connection for its whole life, in both threads and in every ring event.
///
/// The index is reused once both threads are done with a connection; the generation is bumped
/// each time, so an event or a readiness report left over from the old connection never
/// matches the new one. This is what the original program lacked: it named connections by fd,
/// and a new connection that got a reused fd number received another client's bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct ConnId {
    pub(crate) index: u32,
    pub(crate) generation: u32,
}

/// The index no connection ever gets: epoll tokens with it name the server's own descriptors.
const RESERVED_INDEX: u32 = u32::MAX;

impl ConnId {
    /// The epoll token for this connection: generation in the high half, index in the low.
    pub(crate) fn token(self) -> Token {
        Token((u64::from(self.generation) << 32) | u64::from(self.index))
    }

    /// The connection a token names, or `None` for one of the server's own descriptors.
    pub(crate) fn from_token(token: Token) -> Option<Self> {
        // Splitting a u64 in halves: both casts are lossless.
        let index = token.0 as u32;
        let generation = (token.0 >> 32) as u32;
        (index != RESERVED_INDEX).then_some(Self { index, generation })
    }
}

/// A token for one of the server's own descriptors (listeners, wakers, the signal pipe).
pub(crate) const fn own_token(n: u32) -> Token {
    Token(((n as u64) << 32) | RESERVED_INDEX as u64)
}

/// The most connection indices there can be: every other `u32` but the reserved one.
pub(crate) const MAX_INDICES: usize = RESERVED_INDEX as usize;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_own_tokens_are_no_connection() {
        for (index, generation) in [
            (0, 0),
            (1, 0),
            (0, 1),
            (12_345, 678),
            (u32::MAX - 1, u32::MAX),
        ] {
            let id = ConnId { index, generation };
            assert_eq!(ConnId::from_token(id.token()), Some(id));
        }
        for n in [0, 1, 7, u32::MAX] {
            assert_eq!(ConnId::from_token(own_token(n)), None);
        }
        assert_ne!(own_token(0), own_token(1));
    }
}
