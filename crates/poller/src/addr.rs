//! Socket addresses: from the kernel's form to `std`'s, and the loopback test.

use rustix::net::SocketAddrAny;
use std::io;
use std::net::{IpAddr, SocketAddr};

/// Whether `ip` is this machine's loopback: `127.0.0.0/8`, `::1`, or an IPv4-mapped
/// `::ffff:127.x.y.z`.
///
/// The mapped form is what a dual-stack IPv6 socket shows for a local IPv4 client, so it counts.
/// The deprecated IPv4-*compatible* form `::127.x.y.z` (RFC 4291, section 2.5.5.1) does not: the
/// kernel never hands it out for an IPv4 peer, and it is not a loopback address, so trusting it
/// would trust a peer that is not local.
///
/// # Examples
///
/// ```
/// use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
///
/// assert!(poller::is_loopback(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1))));
/// assert!(poller::is_loopback(IpAddr::V6(Ipv6Addr::LOCALHOST)));
/// assert!(poller::is_loopback(Ipv4Addr::new(127, 0, 0, 1).to_ipv6_mapped().into()));
/// assert!(!poller::is_loopback(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1))));
/// ```
pub fn is_loopback(ip: IpAddr) -> bool {
    // `to_canonical` unwraps only the mapped form, which is exactly the rule above.
    ip.to_canonical().is_loopback()
}

/// The address of an IPv4 or IPv6 socket as `std` spells it.
pub(crate) fn to_std(addr: SocketAddrAny) -> io::Result<SocketAddr> {
    // Any other family fails with `EAFNOSUPPORT`; for a TCP socket it cannot happen.
    Ok(SocketAddr::try_from(addr)?)
}

/// The peer address `accept4` or `getpeername` gave, which only unnamed sockets lack.
pub(crate) fn peer_to_std(peer: Option<SocketAddrAny>) -> io::Result<SocketAddr> {
    match peer {
        Some(addr) => to_std(addr),
        None => Err(io::Error::new(
            io::ErrorKind::NotConnected,
            "the socket's peer has no address",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(address: &str, expected: bool) {
        let ip: IpAddr = address.parse().unwrap();
        assert_eq!(is_loopback(ip), expected, "{address}");
    }

    #[test]
    fn ipv4_loopback_is_the_whole_127_network() {
        check("127.0.0.1", true);
        check("127.0.0.0", true);
        check("127.1.2.3", true);
        check("127.255.255.254", true);
        check("127.255.255.255", true);
        check("126.255.255.255", false);
        check("128.0.0.0", false);
        check("10.0.0.1", false);
        check("192.168.1.1", false);
        check("0.0.0.0", false);
        check("255.255.255.255", false);
    }

    #[test]
    fn ipv6_loopback_is_one_address() {
        check("::1", true);
        check("::", false);
        check("::2", false);
        check("fe80::1", false);
        check("fd00::1", false);
        check("2001:db8::1", false);
    }

    #[test]
    fn ipv4_mapped_loopback_counts_and_ipv4_compatible_does_not() {
        check("::ffff:127.0.0.1", true);
        check("::ffff:127.255.255.254", true);
        check("::ffff:10.0.0.1", false);
        check("::ffff:0.0.0.0", false);
        check("::127.0.0.1", false);
        check("64:ff9b::127.0.0.1", false);
    }

    #[test]
    fn addresses_convert_from_the_kernel_form() {
        for address in ["127.0.0.1:80", "[::1]:443", "[fe80::1%2]:9"] {
            let std_addr: SocketAddr = address.parse().unwrap();
            let kernel = SocketAddrAny::from(std_addr);
            assert_eq!(to_std(kernel).unwrap(), std_addr);
        }
    }

    #[test]
    fn a_missing_peer_address_is_an_error_not_a_panic() {
        let error = peer_to_std(None).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::NotConnected);
    }
}
