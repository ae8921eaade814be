//! What travels through the ring: one read of one connection, or a change in its life.

use crate::conn::ConnId;
use poller::Stream;
use std::net::SocketAddr;
use std::sync::Arc;

/// One ring entry. The buffer is allocated once, with the ring, and a read fills it in place;
/// the worker reverses it in place and writes from it.
pub(crate) struct Slot {
    pub(crate) conn: ConnId,
    pub(crate) kind: Kind,
    /// `buf[..len]` holds the bytes of a [`Kind::Data`] event.
    pub(crate) len: usize,
    pub(crate) buf: Box<[u8]>,
    /// The socket and peer of a [`Kind::Open`] event; the worker takes them.
    pub(crate) open: Option<Opened>,
}

/// The kinds of ring events. For each connection the reader publishes one `Open`, then `Data`
/// events, then exactly one of `Eof` or `Reset`, after which it never reads that socket again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A new connection; [`Slot::open`] holds it.
    Open,
    /// Bytes read from the connection.
    Data,
    /// The client closed its writing side: answer everything, then close ours.
    Eof,
    /// Reading failed (a reset, say): nothing more will be answered.
    Reset,
}

/// A connection as the worker receives it. The socket is shared: it is closed when the last
/// of the two threads drops it, so its number cannot be reused while either still uses it.
pub(crate) struct Opened {
    pub(crate) stream: Arc<Stream>,
    pub(crate) peer: SocketAddr,
}

impl Slot {
    pub(crate) fn new(buffer_size: usize) -> Self {
        Self {
            conn: ConnId {
                index: 0,
                generation: 0,
            },
            kind: Kind::Data,
            len: 0,
            buf: vec![0; buffer_size].into_boxed_slice(),
            open: None,
        }
    }

    /// Marks the slot as an event without bytes.
    pub(crate) fn set(&mut self, conn: ConnId, kind: Kind) {
        self.conn = conn;
        self.kind = kind;
        self.len = 0;
    }
}
