//! An eventfd that lets any thread wake a thread blocked in `Poller::wait`.

use rustix::event::{EventfdFlags, eventfd};
use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use rustix::io::{self as rio, Errno, retry_on_intr};
use std::io;

/// Wakes a [`Poller`](crate::Poller) from another thread: register it with
/// [`Interest::READABLE`](crate::Interest::READABLE), call [`wake`](Self::wake) from anywhere,
/// and [`drain`](Self::drain) it when its token comes out of the wait.
///
/// It is an eventfd (`eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)`): a counter in the kernel that is
/// readable while it is not zero. Wakes before the drain add up and are drained together, so a
/// burst of wakes costs one wakeup. It is [`Send`] and [`Sync`]; share it behind an `Arc`.
///
/// # Examples
///
/// ```
/// use poller::{Events, Interest, Poller, Token, Waker};
/// use std::sync::Arc;
///
/// let poller = Poller::new()?;
/// let waker = Arc::new(Waker::new()?);
/// poller.add(&*waker, Token(0), Interest::READABLE)?;
///
/// let remote = Arc::clone(&waker);
/// std::thread::spawn(move || remote.wake()).join().unwrap()?;
///
/// let mut events = Events::with_capacity(8);
/// poller.wait(&mut events, None)?;
/// assert_eq!(events.iter().next().map(|event| event.token()), Some(Token(0)));
/// waker.drain()?;
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct Waker {
    eventfd: OwnedFd,
}

// Waking from any thread is the point; fail the build if that ever stops being true.
const _: fn() = || {
    fn send_and_sync<T: Send + Sync>() {}
    send_and_sync::<Waker>();
};

impl Waker {
    /// Creates the eventfd, non-blocking and close-on-exec.
    ///
    /// # Errors
    ///
    /// What [`eventfd(2)`](https://man7.org/linux/man-pages/man2/eventfd.2.html) reports, such
    /// as `EMFILE`.
    pub fn new() -> io::Result<Self> {
        let eventfd = eventfd(0, EventfdFlags::NONBLOCK | EventfdFlags::CLOEXEC)?;
        Ok(Self { eventfd })
    }

    /// Makes the eventfd readable, which wakes the poller it is registered with.
    ///
    /// A full counter (`EAGAIN`, after about 2^64 wakes nobody drained) counts as success: the
    /// eventfd is readable already, so the wake this call was for is pending anyway.
    ///
    /// # Errors
    ///
    /// What [`write(2)`](https://man7.org/linux/man-pages/man2/write.2.html) on an eventfd
    /// reports apart from `EAGAIN`; nothing is expected.
    pub fn wake(&self) -> io::Result<()> {
        match retry_on_intr(|| rio::write(&self.eventfd, &1u64.to_ne_bytes())) {
            Ok(_) | Err(Errno::AGAIN) => Ok(()),
            Err(errno) => Err(errno.into()),
        }
    }

    /// Resets the counter to zero, so the eventfd stops being readable until the next wake.
    ///
    /// One read empties the counter whatever it held, so one call is enough; a drain with no
    /// wake pending (`EAGAIN`) does nothing and succeeds.
    ///
    /// # Errors
    ///
    /// What [`read(2)`](https://man7.org/linux/man-pages/man2/read.2.html) on an eventfd reports
    /// apart from `EAGAIN`; nothing is expected.
    pub fn drain(&self) -> io::Result<()> {
        let mut counter = [0u8; 8];
        match retry_on_intr(|| rio::read(&self.eventfd, &mut counter)) {
            Ok(_) | Err(Errno::AGAIN) => Ok(()),
            Err(errno) => Err(errno.into()),
        }
    }
}

impl AsFd for Waker {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.eventfd.as_fd()
    }
}
