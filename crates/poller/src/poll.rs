//! The epoll instance: registrations go in, readiness events come out.

use rustix::buffer::spare_capacity;
use rustix::event::{Nsecs, Secs, Timespec, epoll};
use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use rustix::io::Errno;
use std::fmt;
use std::io;
use std::ops::{BitOr, BitOrAssign};
use std::time::{Duration, Instant};

/// The caller's name for a registered descriptor, handed back in every [`Event`] for it.
///
/// It travels in epoll's `data` field, so any `u64` will do: an index into a table of
/// connections, with a generation in the high bits, is the usual choice. The poller never looks
/// at it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Token(pub u64);

/// What a registration asks to be told about, combined with `|`.
///
/// `EPOLLERR` and `EPOLLHUP` are always reported whatever the interest, as the kernel does.
///
/// # Examples
///
/// ```
/// use poller::Interest;
///
/// let interest = Interest::READABLE | Interest::READ_CLOSED | Interest::EDGE;
/// assert!(interest.is_readable() && interest.is_edge());
/// assert!(!interest.is_writable());
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
// The epoll flags themselves: nothing to translate on each registration.
pub struct Interest(epoll::EventFlags);

impl Interest {
    /// Data can be read (`EPOLLIN`); for a listener, a connection can be accepted.
    pub const READABLE: Self = Self(epoll::EventFlags::IN);
    /// Data can be written (`EPOLLOUT`).
    pub const WRITABLE: Self = Self(epoll::EventFlags::OUT);
    /// The peer shut down its writing side (`EPOLLRDHUP`), reported even when no byte came with
    /// the FIN, so the end of a connection is never missed.
    pub const READ_CLOSED: Self = Self(epoll::EventFlags::RDHUP);
    /// Edge-triggered (`EPOLLET`): one event per change of readiness instead of one per wait
    /// while the descriptor stays ready. Whoever asks for it must read or accept until
    /// `WouldBlock` on every event, or the rest waits for a change that may never come.
    pub const EDGE: Self = Self(epoll::EventFlags::ET);

    /// Whether [`READABLE`](Self::READABLE) is asked for.
    pub const fn is_readable(self) -> bool {
        self.contains(Self::READABLE)
    }

    /// Whether [`WRITABLE`](Self::WRITABLE) is asked for.
    pub const fn is_writable(self) -> bool {
        self.contains(Self::WRITABLE)
    }

    /// Whether [`READ_CLOSED`](Self::READ_CLOSED) is asked for.
    pub const fn is_read_closed(self) -> bool {
        self.contains(Self::READ_CLOSED)
    }

    /// Whether the registration is edge-triggered ([`EDGE`](Self::EDGE)).
    pub const fn is_edge(self) -> bool {
        self.contains(Self::EDGE)
    }

    /// Whether every interest in `other` is also in `self`.
    pub const fn contains(self, other: Self) -> bool {
        self.0.bits() & other.0.bits() == other.0.bits()
    }

    const fn to_epoll(self) -> epoll::EventFlags {
        self.0
    }
}

impl BitOr for Interest {
    type Output = Self;

    fn bitor(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }
}

impl BitOrAssign for Interest {
    fn bitor_assign(&mut self, other: Self) {
        self.0 |= other.0;
    }
}

impl fmt::Debug for Interest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = [
            (Self::READABLE, "READABLE"),
            (Self::WRITABLE, "WRITABLE"),
            (Self::READ_CLOSED, "READ_CLOSED"),
            (Self::EDGE, "EDGE"),
        ];
        let mut set = names
            .into_iter()
            .filter(|&(interest, _)| self.contains(interest));
        match set.next() {
            None => f.write_str("(empty)"),
            Some((_, first)) => {
                f.write_str(first)?;
                set.try_for_each(|(_, name)| write!(f, " | {name}"))
            }
        }
    }
}

/// An epoll instance (`epoll_create1(EPOLL_CLOEXEC)`).
///
/// All methods take `&self`: the kernel serialises registrations, so one thread may wait while
/// another adds or removes descriptors.
#[derive(Debug)]
pub struct Poller {
    epoll: OwnedFd,
}

impl Poller {
    /// Creates an epoll instance, close-on-exec.
    ///
    /// # Errors
    ///
    /// What [`epoll_create1(2)`](https://man7.org/linux/man-pages/man2/epoll_create1.2.html)
    /// reports, such as `EMFILE` when the process is out of descriptors.
    pub fn new() -> io::Result<Self> {
        let epoll = epoll::create(epoll::CreateFlags::CLOEXEC)?;
        Ok(Self { epoll })
    }

    /// Registers `fd` (`EPOLL_CTL_ADD`): its events will carry `token`.
    ///
    /// A descriptor that is already ready when it is added is reported by the next wait, edge
    /// or not, so nothing is lost between `accept` and `add`.
    ///
    /// # Errors
    ///
    /// `EEXIST` ([`AlreadyExists`](io::ErrorKind::AlreadyExists)) if `fd` is registered already,
    /// `EPERM` if it cannot be polled (a regular file), and what else
    /// [`epoll_ctl(2)`](https://man7.org/linux/man-pages/man2/epoll_ctl.2.html) reports.
    pub fn add(&self, fd: impl AsFd, token: Token, interest: Interest) -> io::Result<()> {
        epoll::add(&self.epoll, fd, data(token), interest.to_epoll())?;
        Ok(())
    }

    /// Changes the token and interest of a registered `fd` (`EPOLL_CTL_MOD`).
    ///
    /// # Errors
    ///
    /// `ENOENT` ([`NotFound`](io::ErrorKind::NotFound)) if `fd` is not registered, and what else
    /// [`epoll_ctl(2)`](https://man7.org/linux/man-pages/man2/epoll_ctl.2.html) reports.
    pub fn modify(&self, fd: impl AsFd, token: Token, interest: Interest) -> io::Result<()> {
        epoll::modify(&self.epoll, fd, data(token), interest.to_epoll())?;
        Ok(())
    }

    /// Removes `fd` from the poller (`EPOLL_CTL_DEL`).
    ///
    /// Closing a descriptor removes it too, but only once every duplicate of it is closed;
    /// deleting first is the way to be sure no event for it is still to come.
    ///
    /// # Errors
    ///
    /// `ENOENT` ([`NotFound`](io::ErrorKind::NotFound)) if `fd` is not registered, and what else
    /// [`epoll_ctl(2)`](https://man7.org/linux/man-pages/man2/epoll_ctl.2.html) reports.
    pub fn delete(&self, fd: impl AsFd) -> io::Result<()> {
        epoll::delete(&self.epoll, fd)?;
        Ok(())
    }

    /// Waits for events, puts them in `events` (cleared first) and returns how many there are.
    ///
    /// At most [`events.capacity()`](Events::capacity) events are taken per call; the rest stay
    /// with the kernel for the next one. The list is filled in place, so waiting never
    /// allocates.
    ///
    /// `timeout` is `None` to wait for ever, or how long to wait at most. It is rounded **up**
    /// to whole milliseconds, so a tiny timeout still sleeps instead of spinning, and
    /// `Some(Duration::ZERO)` polls without blocking. Timeouts longer than `i32::MAX`
    /// milliseconds (about 24.8 days) are cut to that: the call then returns with no events,
    /// which a loop handles like any timeout. The cut keeps the timeout in plain
    /// `epoll_pwait`'s range, so rustix always makes that call, which every kernel has, and
    /// never needs `epoll_pwait2` (Linux 5.11), which older kernels and some seccomp filters
    /// refuse. (A build that turns on rustix's `linux_5_11` feature gets `epoll_pwait2`
    /// regardless; that is its choice.)
    ///
    /// A signal that interrupts the wait (`EINTR`) does not end it: the call waits again for
    /// what is left of the timeout, measured from the first attempt, so a storm of signals
    /// cannot stretch the wait.
    ///
    /// # Errors
    ///
    /// What [`epoll_wait(2)`](https://man7.org/linux/man-pages/man2/epoll_wait.2.html) reports
    /// apart from `EINTR`; none of them is expected with a valid poller.
    pub fn wait(&self, events: &mut Events, timeout: Option<Duration>) -> io::Result<usize> {
        // The deadline is fixed before the first attempt; a timeout too large to be an instant
        // is, in practice, no deadline. A zero timeout never blocks, so it needs no clock read.
        let deadline = timeout
            .filter(|timeout| !timeout.is_zero())
            .and_then(|timeout| Instant::now().checked_add(timeout));
        let mut remaining = timeout;
        loop {
            events.list.clear();
            let timespec = remaining.map(|left| millis_timespec(timeout_millis(left)));
            let buffer = spare_capacity(&mut events.list);
            match epoll::wait(&self.epoll, buffer, timespec.as_ref()) {
                Err(Errno::INTR) => {
                    remaining = deadline.map_or(timeout, |deadline| {
                        Some(deadline.saturating_duration_since(Instant::now()))
                    });
                }
                result => return Ok(result?),
            }
        }
    }
}

impl AsFd for Poller {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.epoll.as_fd()
    }
}

fn data(token: Token) -> epoll::EventData {
    epoll::EventData::new_u64(token.0)
}

/// A timeout in whole milliseconds for `epoll_wait`: rounded up, so that a wait shorter than a
/// millisecond is not turned into a busy poll, and at most `i32::MAX`, the largest timeout
/// plain `epoll_pwait` takes.
fn timeout_millis(timeout: Duration) -> i32 {
    let millis = timeout.as_nanos().div_ceil(1_000_000);
    i32::try_from(millis).unwrap_or(i32::MAX)
}

/// `millis` as a `Timespec` that rustix converts back to exactly `millis`, which keeps it on
/// the `epoll_pwait` path.
fn millis_timespec(millis: i32) -> Timespec {
    Timespec {
        tv_sec: Secs::from(millis / 1000),
        tv_nsec: Nsecs::from(millis % 1000 * 1_000_000),
    }
}

/// A preallocated list of events, filled by [`Poller::wait`].
///
/// It is neither `Send` nor `Sync`: rustix's epoll event record carries a pointer-sized
/// user-data field (`*mut c_void`), and this crate has no `unsafe` with which to vouch for it.
/// Create the list on the thread that waits; the `Poller` itself can be created anywhere and
/// moved.
///
/// ```compile_fail
/// fn assert_send<T: Send>() {}
/// assert_send::<poller::Events>();
/// ```
///
/// # Examples
///
/// ```
/// let events = poller::Events::with_capacity(1024);
/// assert!(events.is_empty());
/// assert!(events.capacity() >= 1024);
/// ```
pub struct Events {
    list: Vec<epoll::Event>,
}

impl Events {
    /// Allocates room for `capacity` events, the most one wait can return.
    ///
    /// A capacity of zero is raised to one, because `epoll_wait` refuses an empty list.
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            list: Vec::with_capacity(capacity.max(1)),
        }
    }

    /// How many events one wait can return.
    pub fn capacity(&self) -> usize {
        self.list.capacity()
    }

    /// How many events the last wait returned.
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// Whether the last wait returned no events (it timed out).
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// The events of the last wait, in the order the kernel gave them.
    pub fn iter(&self) -> Iter<'_> {
        Iter {
            inner: self.list.iter(),
        }
    }
}

impl fmt::Debug for Events {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl<'a> IntoIterator for &'a Events {
    type Item = Event;
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

/// Iterator over the [`Event`]s in an [`Events`] list.
pub struct Iter<'a> {
    inner: std::slice::Iter<'a, epoll::Event>,
}

impl fmt::Debug for Iter<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.inner.clone().map(Event::from_epoll))
            .finish()
    }
}

impl Iterator for Iter<'_> {
    type Item = Event;

    fn next(&mut self) -> Option<Event> {
        self.inner.next().map(Event::from_epoll)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.size_hint()
    }
}

impl ExactSizeIterator for Iter<'_> {}

/// One descriptor's readiness, as one wait reported it.
///
/// Several conditions can come together: data and the peer's FIN typically arrive as one
/// event that is both readable and read-closed. Read first, then act on the close, or the last
/// bytes are lost.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Event {
    token: Token,
    flags: epoll::EventFlags,
}

impl Event {
    fn from_epoll(event: &epoll::Event) -> Self {
        // The kernel's struct is packed on x86-64: copy the fields out, never borrow them.
        let (flags, data) = (event.flags, event.data);
        Self {
            token: Token(data.u64()),
            flags,
        }
    }

    /// The token the descriptor was registered with.
    pub fn token(&self) -> Token {
        self.token
    }

    /// Data can be read, or a connection accepted (`EPOLLIN`).
    pub fn is_readable(&self) -> bool {
        self.flags.contains(epoll::EventFlags::IN)
    }

    /// Data can be written (`EPOLLOUT`).
    pub fn is_writable(&self) -> bool {
        self.flags.contains(epoll::EventFlags::OUT)
    }

    /// Nothing more will come from the peer (`EPOLLRDHUP` or `EPOLLHUP`); what already came can
    /// still be read, until `read` returns 0.
    pub fn is_read_closed(&self) -> bool {
        self.flags
            .intersects(epoll::EventFlags::RDHUP | epoll::EventFlags::HUP)
    }

    /// The socket has a pending error (`EPOLLERR`), such as a reset; the next read or send
    /// returns it.
    pub fn is_error(&self) -> bool {
        self.flags.contains(epoll::EventFlags::ERR)
    }

    /// Both directions are closed (`EPOLLHUP`): the peer reset the connection, or both sides
    /// shut down.
    pub fn is_hangup(&self) -> bool {
        self.flags.contains(epoll::EventFlags::HUP)
    }
}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Event")
            .field("token", &self.token)
            .field("readable", &self.is_readable())
            .field("writable", &self.is_writable())
            .field("read_closed", &self.is_read_closed())
            .field("error", &self.is_error())
            .field("hangup", &self.is_hangup())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_round_up_to_whole_milliseconds() {
        let check = |timeout: Duration, millis: i32| {
            assert_eq!(timeout_millis(timeout), millis, "{timeout:?}");
        };
        check(Duration::ZERO, 0);
        check(Duration::from_nanos(1), 1);
        check(Duration::from_micros(999), 1);
        check(Duration::from_millis(1), 1);
        check(Duration::from_millis(1) + Duration::from_nanos(1), 2);
        check(Duration::from_millis(1500), 1500);
    }

    #[test]
    fn timeouts_beyond_i32_milliseconds_are_cut_to_the_largest() {
        let largest = Duration::from_millis(i32::MAX as u64);
        assert_eq!(timeout_millis(largest), i32::MAX);
        assert_eq!(timeout_millis(largest + Duration::from_nanos(1)), i32::MAX);
        assert_eq!(timeout_millis(Duration::from_secs(u64::MAX)), i32::MAX);
        assert_eq!(timeout_millis(Duration::MAX), i32::MAX);
    }

    #[test]
    fn millisecond_timespecs_split_into_seconds_and_nanoseconds() {
        for millis in [0, 1, 999, 1000, 1001, 123_456, i32::MAX] {
            let timespec = millis_timespec(millis);
            assert!((0..1_000_000_000).contains(&timespec.tv_nsec), "{millis}");
            let total = timespec.tv_sec * 1000 + timespec.tv_nsec / 1_000_000;
            assert_eq!(total, i64::from(millis));
        }
    }

    #[test]
    fn interests_map_to_their_epoll_flags() {
        use epoll::EventFlags as Flags;
        assert_eq!(Interest::READABLE.to_epoll(), Flags::IN);
        assert_eq!(Interest::WRITABLE.to_epoll(), Flags::OUT);
        let all = Interest::READABLE | Interest::WRITABLE | Interest::READ_CLOSED | Interest::EDGE;
        assert_eq!(
            all.to_epoll(),
            Flags::IN | Flags::OUT | Flags::RDHUP | Flags::ET
        );
    }

    #[test]
    fn interests_combine_and_print_by_name() {
        let mut interest = Interest::READABLE;
        interest |= Interest::EDGE;
        assert!(interest.contains(Interest::READABLE | Interest::EDGE));
        assert!(!interest.contains(Interest::WRITABLE));
        assert_eq!(format!("{interest:?}"), "READABLE | EDGE");
        assert_eq!(
            format!("{:?}", Interest(epoll::EventFlags::empty())),
            "(empty)"
        );
    }

    #[test]
    fn events_read_token_and_flags_from_the_kernel_struct() {
        let kernel = epoll::Event {
            flags: epoll::EventFlags::IN | epoll::EventFlags::RDHUP,
            data: epoll::EventData::new_u64(7),
        };
        let event = Event::from_epoll(&kernel);
        assert_eq!(event.token(), Token(7));
        assert!(event.is_readable() && event.is_read_closed());
        assert!(!event.is_writable() && !event.is_error() && !event.is_hangup());

        let hangup = Event::from_epoll(&epoll::Event {
            flags: epoll::EventFlags::HUP | epoll::EventFlags::ERR,
            data: epoll::EventData::new_u64(u64::MAX),
        });
        assert_eq!(hangup.token(), Token(u64::MAX));
        assert!(hangup.is_read_closed() && hangup.is_hangup() && hangup.is_error());
    }

    #[test]
    fn an_empty_event_list_still_has_room_for_one() {
        assert!(Events::with_capacity(0).capacity() >= 1);
    }
}
