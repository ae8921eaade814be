//! The errors of the ring's operations. Each says what went wrong and gives back what it can.

use std::fmt;

/// The capacity given to [`channel`](crate::channel) or [`Builder`](crate::Builder) is zero or
/// not a power of two.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CapacityError {
    /// The capacity that was asked for.
    pub capacity: usize,
}

impl fmt::Display for CapacityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ring capacity must be a power of two greater than zero, got {}",
            self.capacity
        )
    }
}

impl std::error::Error for CapacityError {}

/// Why [`Producer::try_claim`](crate::Producer::try_claim) gave no claim.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TryClaimError {
    /// Fewer slots than asked for are free right now.
    Full {
        /// How many slots were free when the producer looked.
        free: usize,
    },
    /// More slots were asked for than the ring has: waiting would never end.
    TooLarge {
        /// How many slots were asked for.
        requested: usize,
        /// How many slots the ring has.
        capacity: usize,
    },
    /// The consumer is gone: nothing published now would ever be read.
    Disconnected,
}

/// Why [`Producer::claim`](crate::Producer::claim) gave no claim.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClaimError {
    /// More slots were asked for than the ring has: waiting would never end.
    TooLarge {
        /// How many slots were asked for.
        requested: usize,
        /// How many slots the ring has.
        capacity: usize,
    },
    /// The consumer is gone: nothing published now would ever be read.
    Disconnected,
}

fn too_large(f: &mut fmt::Formatter<'_>, requested: usize, capacity: usize) -> fmt::Result {
    write!(
        f,
        "cannot claim {requested} slots in a ring of capacity {capacity}"
    )
}

impl fmt::Display for TryClaimError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Full { free } => write!(f, "ring is full ({free} slots free)"),
            Self::TooLarge {
                requested,
                capacity,
            } => too_large(f, requested, capacity),
            Self::Disconnected => f.write_str("the consumer is gone"),
        }
    }
}

impl fmt::Display for ClaimError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::TooLarge {
                requested,
                capacity,
            } => too_large(f, requested, capacity),
            Self::Disconnected => f.write_str("the consumer is gone"),
        }
    }
}

impl std::error::Error for TryClaimError {}
impl std::error::Error for ClaimError {}

/// Why [`Producer::try_push`](crate::Producer::try_push) did not push; the value comes back.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum TryPushError<T> {
    /// No slot is free right now.
    Full(T),
    /// The consumer is gone.
    Disconnected(T),
}

impl<T> TryPushError<T> {
    /// The value that was not pushed.
    pub fn into_inner(self) -> T {
        match self {
            Self::Full(value) | Self::Disconnected(value) => value,
        }
    }
}

// Hand-written so that `T` need not be `Debug`, as std's `TrySendError` does.
impl<T> fmt::Debug for TryPushError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Full(_) => f.write_str("Full(..)"),
            Self::Disconnected(_) => f.write_str("Disconnected(..)"),
        }
    }
}

impl<T> fmt::Display for TryPushError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Full(_) => f.write_str("ring is full"),
            Self::Disconnected(_) => f.write_str("the consumer is gone"),
        }
    }
}

impl<T> std::error::Error for TryPushError<T> {}

/// [`Producer::push`](crate::Producer::push) found the consumer gone; the value comes back.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PushError<T>(pub T);

impl<T> fmt::Debug for PushError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PushError(..)")
    }
}

impl<T> fmt::Display for PushError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the consumer is gone")
    }
}

impl<T> std::error::Error for PushError<T> {}

/// Why [`Consumer::try_read`](crate::Consumer::try_read) gave no batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TryReadError {
    /// Nothing is published that has not been read.
    Empty,
    /// Nothing is left to read and the producer is gone, so nothing ever will be.
    Disconnected,
}

impl fmt::Display for TryReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("ring is empty"),
            Self::Disconnected => f.write_str("ring is empty and the producer is gone"),
        }
    }
}

impl std::error::Error for TryReadError {}

/// Nothing is left to read and the producer is gone, returned by the blocking
/// [`Consumer::read`](crate::Consumer::read).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Disconnected;

impl fmt::Display for Disconnected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ring is empty and the producer is gone")
    }
}

impl std::error::Error for Disconnected {}
