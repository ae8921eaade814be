//! The listening socket: bound with the options a server wants, drained with `accept4`, and
//! kept alive when the process runs out of descriptors.

use crate::{Stream, addr};
use rustix::event::{EventfdFlags, eventfd};
use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use rustix::io::Errno;
use rustix::net::{self, AddressFamily, SocketAddrAny, SocketFlags, SocketType, ipproto, sockopt};
use std::io;
use std::net::SocketAddr;

/// The accept queue length [`Listener::bind`] asks for. The kernel cuts it to
/// `net.core.somaxconn` (4096 on recent kernels, 128 on old ones).
pub const DEFAULT_BACKLOG: u32 = 1024;

/// What one [`Listener::accept_all`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Drained {
    /// Connections accepted and handed to the callback.
    pub accepted: usize,
    /// Connections accepted and closed at once because the process was out of descriptors
    /// (`EMFILE` or `ENFILE`). Their clients saw the connection close; more than zero is worth
    /// a warning in the log.
    pub shed: usize,
}

/// A listening TCP socket, non-blocking and close-on-exec.
///
/// # Edge-triggered use
///
/// Register it with [`Interest::READABLE`](crate::Interest::READABLE) `|`
/// [`Interest::EDGE`](crate::Interest::EDGE) and call [`accept_all`](Self::accept_all) on every
/// readable event. When that returns `Ok`, the accept queue was empty at some moment during the
/// call, so every connection that arrives later brings a new event: the listener never stalls.
/// (An `Err` means the kernel ran short of memory with connections perhaps still queued; see
/// [`accept_all`](Self::accept_all).)
///
/// # Running out of descriptors
///
/// When the process has no descriptor left, `accept4` fails with `EMFILE` (or `ENFILE`, for
/// the whole system) and the connection stays queued. An edge-triggered listener gets no
/// further event for the connections already queued, so their clients would hang, unanswered,
/// until some other connection happened to arrive; and with the queue never drained, the
/// server would keep retrying for nothing.
///
/// The listener therefore holds one spare descriptor (an eventfd, opened at bind time), as
/// libuv does (`uv__emfile_trick`). On `EMFILE` or `ENFILE`, [`accept_all`](Self::accept_all)
/// closes the spare, which lets `accept4` succeed, accepts and closes every queued connection
/// until `WouldBlock`, then opens the spare again. The queued clients see their connection close
/// at once instead of hanging, the queue is empty so the next connection brings a new event,
/// and the count comes back in [`Drained::shed`]. nginx instead stops accepting and retries on a
/// timer; that needs a timer, and leaves clients waiting on a server that cannot take them.
///
/// If the spare cannot be opened again (descriptors are still short), the next `accept_all`
/// tries again first; should `EMFILE` come while it is missing, `accept_all` returns the error
/// and the caller can log it. The trick assumes no other thread grabs the freed descriptor
/// in the moment between closing the spare and accepting; if one does, the error is returned.
#[derive(Debug)]
pub struct Listener {
    socket: OwnedFd,
    spare: Option<OwnedFd>,
}

impl Listener {
    /// Binds a listening socket to `addr` with a backlog of [`DEFAULT_BACKLOG`].
    ///
    /// See [`bind_with`](Self::bind_with) for the options it sets.
    ///
    /// # Errors
    ///
    /// As [`bind_with`](Self::bind_with).
    pub fn bind(addr: SocketAddr) -> io::Result<Self> {
        Self::bind_with(addr, DEFAULT_BACKLOG)
    }

    /// Binds a listening socket to `addr` and listens with an accept queue of `backlog`
    /// connections (the kernel cuts it to `net.core.somaxconn`). Port 0 picks a free port; see
    /// [`local_addr`](Self::local_addr).
    ///
    /// The socket is created non-blocking and close-on-exec in one call, so no child process
    /// can inherit it between two calls. It has `SO_REUSEADDR`, so a restarted server can bind
    /// its port while the previous run's connections linger in `TIME_WAIT`. An IPv6 socket has
    /// `IPV6_V6ONLY` set explicitly rather than left to the `net.ipv6.bindv6only` sysctl: it
    /// then takes IPv6 connections only, never IPv4 ones in disguise (`::ffff:a.b.c.d`), and
    /// `[::]:p` and `0.0.0.0:p` can be bound side by side.
    ///
    /// # Errors
    ///
    /// [`AddrInUse`](io::ErrorKind::AddrInUse) if the port is taken,
    /// [`AddrNotAvailable`](io::ErrorKind::AddrNotAvailable) if `addr` is not an address of this
    /// machine, [`PermissionDenied`](io::ErrorKind::PermissionDenied) for a privileged port, an
    /// error if the spare descriptor cannot be opened, and what else
    /// [`socket(2)`](https://man7.org/linux/man-pages/man2/socket.2.html),
    /// [`bind(2)`](https://man7.org/linux/man-pages/man2/bind.2.html) and
    /// [`listen(2)`](https://man7.org/linux/man-pages/man2/listen.2.html) report.
    pub fn bind_with(addr: SocketAddr, backlog: u32) -> io::Result<Self> {
        let socket = listening_socket(addr, backlog)?;
        let spare = open_spare()?;
        Ok(Self {
            socket,
            spare: Some(spare),
        })
    }

    /// The address the socket is bound to, with the real port when it was bound to port 0.
    ///
    /// # Errors
    ///
    /// What [`getsockname(2)`](https://man7.org/linux/man-pages/man2/getsockname.2.html)
    /// reports.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        addr::to_std(net::getsockname(&self.socket)?)
    }

    /// Accepts one connection (`accept4` with `SOCK_NONBLOCK | SOCK_CLOEXEC`) and returns it
    /// with its peer's address.
    ///
    /// `EINTR` is retried, and so are the errors that concern one connection and not the
    /// listener: `ECONNABORTED` (that client gave up while it waited in the queue) and the
    /// network errors that accept4(2) says to treat like `EAGAIN` and retry (`EPROTO`,
    /// `ENOPROTOOPT`, `EHOSTDOWN`, `ENONET`, `EHOSTUNREACH`, `EOPNOTSUPP`, `ENETUNREACH`,
    /// `ENETDOWN`), and `EPERM`, a firewall refusing that one connection. `EMFILE` is returned
    /// as it is; only [`accept_all`](Self::accept_all) recovers from it.
    ///
    /// # Errors
    ///
    /// [`WouldBlock`](io::ErrorKind::WouldBlock) when the queue is empty, `EMFILE`/`ENFILE` when
    /// descriptors run out, and what else
    /// [`accept4(2)`](https://man7.org/linux/man-pages/man2/accept4.2.html) reports.
    pub fn accept(&mut self) -> io::Result<(Stream, SocketAddr)> {
        let (socket, peer) = self.accept4()?;
        accepted(socket, peer)
    }

    /// Accepts until the queue is empty, handing each connection to `on_accept`; returns how
    /// many were accepted and how many were shed for want of descriptors.
    ///
    /// This is the call for every readable event of an edge-triggered listener; see
    /// [the type's docs](Self#edge-triggered-use) for why it never stalls and
    /// [how it survives `EMFILE`](Self#running-out-of-descriptors). It accepts for as long as
    /// connections keep coming: a queue that refills faster than it drains keeps it busy.
    ///
    /// # Errors
    ///
    /// What is left once the per-connection failures are skipped (see [`accept`](Self::accept))
    /// is a shortage of the kernel's memory (`ENOBUFS`, `ENOMEM`), or `EMFILE`/`ENFILE` when
    /// the spare descriptor could not be reopened since the last time. Connections accepted
    /// before the error have been handed over already, but the queue may not be empty, and an
    /// edge-triggered listener gets no event for what is still queued: after an error, call
    /// `accept_all` again later (the server does on its next timer tick). This is the one case
    /// where the listener needs a retry from outside.
    pub fn accept_all(
        &mut self,
        mut on_accept: impl FnMut(Stream, SocketAddr),
    ) -> io::Result<Drained> {
        self.rearm_spare();
        let mut drained = Drained::default();
        loop {
            match self.accept4() {
                Ok((socket, peer)) => {
                    // A TCP connection always has a peer address; should one come without,
                    // it is closed and the drain goes on, rather than stopping with work
                    // still queued.
                    if let Ok((stream, peer)) = accepted(socket, peer) {
                        drained.accepted += 1;
                        on_accept(stream, peer);
                    }
                }
                Err(Errno::WOULDBLOCK) => return Ok(drained),
                Err(cause @ (Errno::MFILE | Errno::NFILE)) => {
                    drained.shed = self.shed_queue(cause)?;
                    return Ok(drained);
                }
                Err(errno) => return Err(errno.into()),
            }
        }
    }

    /// `accept4`, retrying the failures that concern one connection and not the listener.
    fn accept4(&self) -> rustix::io::Result<(OwnedFd, Option<SocketAddrAny>)> {
        let flags = SocketFlags::NONBLOCK | SocketFlags::CLOEXEC;
        loop {
            match net::acceptfrom_with(&self.socket, flags) {
                Err(errno) if is_per_connection(errno) => continue,
                result => return result,
            }
        }
    }

    /// The EMFILE trick: give the spare descriptor back, accept and close everything queued,
    /// take the spare again. Returns how many connections were closed.
    fn shed_queue(&mut self, cause: Errno) -> io::Result<usize> {
        // Without a spare there is nothing to give back, and accepting would fail again.
        let Some(spare) = self.spare.take() else {
            return Err(cause.into());
        };
        drop(spare);
        let mut shed = 0;
        let end = loop {
            match self.accept4() {
                // Dropped at once: the client sees its connection close.
                Ok(_connection) => shed += 1,
                Err(errno) => break errno,
            }
        };
        self.rearm_spare();
        match end {
            Errno::WOULDBLOCK => Ok(shed),
            errno => Err(errno.into()),
        }
    }

    /// Opens the spare descriptor if it is missing. Failing is not an error yet: it only
    /// matters if `EMFILE` comes before the next try.
    fn rearm_spare(&mut self) {
        if self.spare.is_none() {
            self.spare = open_spare().ok();
        }
    }
}

impl AsFd for Listener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.socket.as_fd()
    }
}

fn listening_socket(addr: SocketAddr, backlog: u32) -> io::Result<OwnedFd> {
    let family = match addr {
        SocketAddr::V4(_) => AddressFamily::INET,
        SocketAddr::V6(_) => AddressFamily::INET6,
    };
    let flags = SocketFlags::NONBLOCK | SocketFlags::CLOEXEC;
    let socket = net::socket_with(family, SocketType::STREAM, flags, Some(ipproto::TCP))?;
    sockopt::set_socket_reuseaddr(&socket, true)?;
    if addr.is_ipv6() {
        sockopt::set_ipv6_v6only(&socket, true)?;
    }
    net::bind(&socket, &addr)?;
    // `listen` takes an `int`; anything larger is cut by the kernel anyway.
    net::listen(&socket, i32::try_from(backlog).unwrap_or(i32::MAX))?;
    Ok(socket)
}

/// Whether an `accept4` failure concerns only the connection it was taking, so the next one
/// may succeed: an interrupted call, a client that gave up, the pending network errors that
/// accept4(2) says to treat like `EAGAIN`, and a firewall's `EPERM` for that connection.
fn is_per_connection(errno: Errno) -> bool {
    matches!(
        errno,
        Errno::INTR
            | Errno::CONNABORTED
            | Errno::PROTO
            | Errno::NOPROTOOPT
            | Errno::HOSTDOWN
            | Errno::NONET
            | Errno::HOSTUNREACH
            | Errno::OPNOTSUPP
            | Errno::NETUNREACH
            | Errno::NETDOWN
            | Errno::PERM
    )
}

/// The descriptor held in reserve for `EMFILE`. Any cheap descriptor will do; an eventfd needs
/// no path in the file system (a chroot may have no `/dev/null`) and is close-on-exec here.
fn open_spare() -> io::Result<OwnedFd> {
    Ok(eventfd(0, EventfdFlags::CLOEXEC)?)
}

fn accepted(socket: OwnedFd, peer: Option<SocketAddrAny>) -> io::Result<(Stream, SocketAddr)> {
    let peer = addr::peer_to_std(peer)?;
    Ok((Stream::from_socket(socket), peer))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_errors_of_one_connection_are_skipped() {
        for errno in [
            Errno::INTR,
            Errno::CONNABORTED,
            Errno::PROTO,
            Errno::NETDOWN,
            Errno::PERM,
        ] {
            assert!(is_per_connection(errno), "{errno}");
        }
        // The listener's own troubles end the drain: out of descriptors, out of memory, or
        // simply done.
        for errno in [
            Errno::MFILE,
            Errno::NFILE,
            Errno::NOBUFS,
            Errno::NOMEM,
            Errno::WOULDBLOCK,
        ] {
            assert!(!is_per_connection(errno), "{errno}");
        }
    }

    #[test]
    fn the_spare_is_close_on_exec() {
        let spare = open_spare().unwrap();
        let flags = rustix::io::fcntl_getfd(&spare).unwrap();
        assert!(flags.contains(rustix::io::FdFlags::CLOEXEC));
    }
}
