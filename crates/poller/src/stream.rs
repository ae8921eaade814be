//! A connected TCP socket: reads, writes that never raise `SIGPIPE`, and its options.

use crate::addr;
use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use rustix::io::retry_on_intr;
use rustix::net::{self, RecvFlags, SendAncillaryBuffer, SendFlags, Shutdown, sockopt};
use std::io::{self, IoSlice, IoSliceMut};
use std::net::{SocketAddr, TcpStream};

/// The most pieces one `sendmsg` takes (`IOV_MAX`, `UIO_MAXIOV` in the kernel: 1024 on Linux).
pub const IOV_MAX: usize = 1024;

/// A connected TCP socket, as [`Listener::accept`](crate::Listener::accept) returns it:
/// non-blocking and close-on-exec. Dropping it closes the socket.
///
/// Every call is one system call (two if a signal interrupts it: `EINTR` is retried). On a
/// non-blocking socket, "not now" is an error of kind [`WouldBlock`](io::ErrorKind::WouldBlock):
/// wait for the next readiness event and try again.
#[derive(Debug)]
pub struct Stream {
    socket: OwnedFd,
}

impl Stream {
    pub(crate) fn from_socket(socket: OwnedFd) -> Self {
        Self { socket }
    }

    /// Reads into `buf` (`recv(2)`) and returns how many bytes came; 0 means the peer will send
    /// nothing more (end of stream), or that `buf` is empty.
    ///
    /// # Errors
    ///
    /// [`WouldBlock`](io::ErrorKind::WouldBlock) when nothing is there yet,
    /// [`ConnectionReset`](io::ErrorKind::ConnectionReset) when the peer reset the connection,
    /// and what else [`recv(2)`](https://man7.org/linux/man-pages/man2/recv.2.html) reports.
    pub fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        let (received, _) =
            retry_on_intr(|| net::recv(&self.socket, &mut *buf, RecvFlags::empty()))?;
        Ok(received)
    }

    /// Reads into the buffers in order, as if they were one (`readv(2)`), and returns how many
    /// bytes came: the first buffer is filled before the second gets any. 0 means end of
    /// stream (or that every buffer is empty).
    ///
    /// One system call can then fill many small buffers: the server reads into several ring
    /// slots at once. At most [`IOV_MAX`] buffers are passed; the rest get nothing.
    ///
    /// # Errors
    ///
    /// As [`read`](Self::read); see [`readv(2)`](https://man7.org/linux/man-pages/man2/readv.2.html).
    pub fn read_vectored(&self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
        let count = bufs.len().min(IOV_MAX);
        Ok(retry_on_intr(|| {
            rustix::io::readv(&self.socket, &mut bufs[..count])
        })?)
    }

    /// Sends from `buf` (`send(2)` with `MSG_NOSIGNAL`) and returns how many bytes the kernel
    /// took, which may be fewer than `buf.len()` when the socket's send buffer fills: keep the
    /// rest and send it when the socket is writable again.
    ///
    /// `MSG_NOSIGNAL` makes a send to a closed connection fail with `EPIPE` instead of raising
    /// `SIGPIPE`, whose default action kills the process. Rust binaries ignore `SIGPIPE`, but a
    /// library cannot count on its host program doing so.
    ///
    /// # Errors
    ///
    /// [`WouldBlock`](io::ErrorKind::WouldBlock) when the send buffer is full,
    /// [`BrokenPipe`](io::ErrorKind::BrokenPipe) or
    /// [`ConnectionReset`](io::ErrorKind::ConnectionReset) when the peer has gone, and what else
    /// [`send(2)`](https://man7.org/linux/man-pages/man2/send.2.html) reports.
    pub fn send(&self, buf: &[u8]) -> io::Result<usize> {
        Ok(retry_on_intr(|| {
            net::send(&self.socket, buf, SendFlags::NOSIGNAL)
        })?)
    }

    /// Sends the buffers in order, as if they were one, with a single `sendmsg(2)` (with
    /// `MSG_NOSIGNAL`), and returns how many bytes the kernel took, counted from the start of
    /// the first buffer. Like [`send`](Self::send), it may take fewer than all.
    ///
    /// One system call for many pieces is what makes answering a batch cheap. At most
    /// [`IOV_MAX`] pieces go in one call; the rest count as not sent. A single piece goes out
    /// with [`send`](Self::send), which spares the kernel copying in a `msghdr` and an iovec.
    ///
    /// # Errors
    ///
    /// As [`send`](Self::send); see
    /// [`sendmsg(2)`](https://man7.org/linux/man-pages/man2/sendmsg.2.html).
    pub fn send_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        if let [only] = bufs {
            return self.send(only);
        }
        // `sendmsg` refuses more than `IOV_MAX` pieces with `EMSGSIZE`; sending the first
        // `IOV_MAX` is a short send, which callers handle already.
        let bufs = &bufs[..bufs.len().min(IOV_MAX)];
        let sent = retry_on_intr(|| {
            // No control messages: an empty ancillary buffer borrows nothing and allocates nothing.
            let mut control = SendAncillaryBuffer::default();
            net::sendmsg(&self.socket, bufs, &mut control, SendFlags::NOSIGNAL)
        })?;
        Ok(sent)
    }

    /// Shuts down the writing side (`shutdown(SHUT_WR)`): the peer reads the bytes already sent,
    /// then end of stream. Reading still works, so a reply can end before the request does.
    ///
    /// # Errors
    ///
    /// [`NotConnected`](io::ErrorKind::NotConnected) if the connection is already gone, and what
    /// else [`shutdown(2)`](https://man7.org/linux/man-pages/man2/shutdown.2.html) reports.
    pub fn shutdown_write(&self) -> io::Result<()> {
        Ok(net::shutdown(&self.socket, Shutdown::Write)?)
    }

    /// Shuts down both sides (`shutdown(SHUT_RDWR)`): the peer reads the bytes already sent,
    /// then end of stream, and reads here return end of stream once the bytes already received
    /// are taken. Unlike dropping the stream, it works while another thread still holds the
    /// socket, and it wakes that thread's readiness wait: this is how one thread ends a
    /// connection that another one reads.
    ///
    /// # Errors
    ///
    /// As [`shutdown_write`](Self::shutdown_write).
    pub fn shutdown_both(&self) -> io::Result<()> {
        Ok(net::shutdown(&self.socket, Shutdown::Both)?)
    }

    /// Turns Nagle's algorithm off (`TCP_NODELAY`) when `nodelay` is true, so small replies
    /// leave at once instead of waiting for the previous segment's acknowledgement.
    ///
    /// # Errors
    ///
    /// What [`setsockopt(2)`](https://man7.org/linux/man-pages/man2/setsockopt.2.html) reports.
    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        Ok(sockopt::set_tcp_nodelay(&self.socket, nodelay)?)
    }

    /// Whether `TCP_NODELAY` is set.
    ///
    /// # Errors
    ///
    /// What [`getsockopt(2)`](https://man7.org/linux/man-pages/man2/getsockopt.2.html) reports.
    pub fn nodelay(&self) -> io::Result<bool> {
        Ok(sockopt::tcp_nodelay(&self.socket)?)
    }

    /// Sets the send buffer size (`SO_SNDBUF`). The kernel doubles the value to leave room for
    /// its bookkeeping and keeps it within its limits (`net.core.wmem_max`), so
    /// [`send_buffer_size`](Self::send_buffer_size) returns what was actually set.
    ///
    /// # Errors
    ///
    /// What [`setsockopt(2)`](https://man7.org/linux/man-pages/man2/setsockopt.2.html) reports.
    pub fn set_send_buffer_size(&self, size: usize) -> io::Result<()> {
        Ok(sockopt::set_socket_send_buffer_size(&self.socket, size)?)
    }

    /// The send buffer size (`SO_SNDBUF`), as the kernel set it.
    ///
    /// # Errors
    ///
    /// What [`getsockopt(2)`](https://man7.org/linux/man-pages/man2/getsockopt.2.html) reports.
    pub fn send_buffer_size(&self) -> io::Result<usize> {
        Ok(sockopt::socket_send_buffer_size(&self.socket)?)
    }

    /// Sets the receive buffer size (`SO_RCVBUF`); doubled and limited like
    /// [`set_send_buffer_size`](Self::set_send_buffer_size) (`net.core.rmem_max`).
    ///
    /// # Errors
    ///
    /// What [`setsockopt(2)`](https://man7.org/linux/man-pages/man2/setsockopt.2.html) reports.
    pub fn set_recv_buffer_size(&self, size: usize) -> io::Result<()> {
        Ok(sockopt::set_socket_recv_buffer_size(&self.socket, size)?)
    }

    /// The receive buffer size (`SO_RCVBUF`), as the kernel set it.
    ///
    /// # Errors
    ///
    /// What [`getsockopt(2)`](https://man7.org/linux/man-pages/man2/getsockopt.2.html) reports.
    pub fn recv_buffer_size(&self) -> io::Result<usize> {
        Ok(sockopt::socket_recv_buffer_size(&self.socket)?)
    }

    /// Sets the socket's TCP congestion control algorithm (`TCP_CONGESTION`), by the name the
    /// kernel knows it by (`cubic`, `reno`, `bbr`, ...; see
    /// `/proc/sys/net/ipv4/tcp_allowed_congestion_control`).
    ///
    /// # Errors
    ///
    /// [`NotFound`](io::ErrorKind::NotFound) for an algorithm the kernel does not have,
    /// [`PermissionDenied`](io::ErrorKind::PermissionDenied) for one it does not allow this
    /// process, and what else [`setsockopt(2)`](https://man7.org/linux/man-pages/man2/setsockopt.2.html)
    /// reports.
    pub fn set_congestion(&self, name: &str) -> io::Result<()> {
        Ok(sockopt::set_tcp_congestion(&self.socket, name)?)
    }

    /// The socket's TCP congestion control algorithm (`TCP_CONGESTION`).
    ///
    /// # Errors
    ///
    /// What [`getsockopt(2)`](https://man7.org/linux/man-pages/man2/getsockopt.2.html) reports.
    pub fn congestion(&self) -> io::Result<String> {
        Ok(sockopt::tcp_congestion(&self.socket)?)
    }

    /// The address of the other end (`getpeername(2)`).
    ///
    /// # Errors
    ///
    /// [`NotConnected`](io::ErrorKind::NotConnected) once the connection is reset or closed, and
    /// what else [`getpeername(2)`](https://man7.org/linux/man-pages/man2/getpeername.2.html)
    /// reports.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        addr::peer_to_std(net::getpeername(&self.socket)?)
    }

    /// The address of this end (`getsockname(2)`).
    ///
    /// # Errors
    ///
    /// What [`getsockname(2)`](https://man7.org/linux/man-pages/man2/getsockname.2.html)
    /// reports.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        addr::to_std(net::getsockname(&self.socket)?)
    }

    /// Whether the peer is on this machine, by [`is_loopback`](crate::is_loopback).
    ///
    /// # Errors
    ///
    /// As [`peer_addr`](Self::peer_addr).
    pub fn peer_is_loopback(&self) -> io::Result<bool> {
        Ok(crate::is_loopback(self.peer_addr()?.ip()))
    }
}

impl AsFd for Stream {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.socket.as_fd()
    }
}

impl From<Stream> for OwnedFd {
    fn from(stream: Stream) -> Self {
        stream.socket
    }
}

impl From<Stream> for TcpStream {
    fn from(stream: Stream) -> Self {
        TcpStream::from(stream.socket)
    }
}

/// Takes over a `std` stream as it is: a blocking stream stays blocking (call
/// [`TcpStream::set_nonblocking`] first to use it with a poller).
impl From<TcpStream> for Stream {
    fn from(stream: TcpStream) -> Self {
        Self::from_socket(OwnedFd::from(stream))
    }
}
