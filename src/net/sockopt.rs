// SPDX-License-Identifier: MPL-2.0
//! Socket options that socket2 does not cover (Linux): forced buffer sizes, IPv4 multicast
//! interface by index, path MTU discovery mode, kernel receive timestamps and the MTU to a
//! destination. Shared by
//! both I/O backends.

use socket2::{SockAddr, Socket};
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};

/// setsockopt with a plain-data value (an int, a C struct).
fn setsockopt<T: Copy>(
    fd: RawFd,
    level: libc::c_int,
    name: libc::c_int,
    val: &T,
) -> io::Result<()> {
    // SAFETY: `val` points at a live, plain-data T of the size given.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (val as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

pub(super) fn setsockopt_int(
    fd: RawFd,
    level: libc::c_int,
    name: libc::c_int,
    val: libc::c_int,
) -> io::Result<()> {
    setsockopt(fd, level, name, &val)
}

fn getsockopt_int(fd: RawFd, level: libc::c_int, name: libc::c_int) -> io::Result<libc::c_int> {
    let mut val: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `val` and `len` are live locals; the kernel writes at most `len` bytes.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            level,
            name,
            (&mut val as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if rc == 0 {
        Ok(val)
    } else {
        Err(io::Error::last_os_error())
    }
}

/// IP_MULTICAST_IF by interface index (socket2 only takes an address for IPv4).
pub(super) fn set_multicast_if_v4_index(fd: RawFd, index: u32) -> io::Result<()> {
    let mreqn = libc::ip_mreqn {
        imr_multiaddr: libc::in_addr { s_addr: 0 },
        imr_address: libc::in_addr { s_addr: 0 },
        imr_ifindex: index as libc::c_int,
    };
    setsockopt(fd, libc::IPPROTO_IP, libc::IP_MULTICAST_IF, &mreqn)
}

/// SO_SNDBUFFORCE / SO_RCVBUFFORCE: not bounded by `net.core.wmem_max`/`rmem_max`, but
/// needs CAP_NET_ADMIN.
pub(super) fn force_buffer_size(fd: RawFd, size: usize, send: bool) -> io::Result<()> {
    let val = libc::c_int::try_from(size).unwrap_or(libc::c_int::MAX);
    let name = if send {
        libc::SO_SNDBUFFORCE
    } else {
        libc::SO_RCVBUFFORCE
    };
    setsockopt_int(fd, libc::SOL_SOCKET, name, val)
}

/// Sets path MTU discovery to "interface" (`IP_PMTUDISC_INTERFACE`,
/// `IPV6_PMTUDISC_INTERFACE`, Linux ≥ 3.15): datagrams are sized against the MTU of the
/// interface they leave by, never fragmented here (one larger than it is refused with
/// EMSGSIZE), and ICMP "fragmentation needed" / "packet too big" quoting this socket's
/// datagrams is ignored: the kernel neither lowers what this socket may send nor records a
/// lower path MTU for the destination (which every other socket to it would then use, for
/// 10 minutes). Anyone who can forge ICMP could otherwise stop the stream.
///
/// The price: over IPv4 the kernel leaves the don't-fragment bit clear in this mode, so a
/// router before a narrower link fragments the datagrams instead of dropping them (the
/// receiver reassembles them); over IPv6 routers never fragment, and such a link drops them.
/// Where the kernel refuses the mode, `PROBE` (ICMP ignored for this socket's sends,
/// don't-fragment set) and then `DO` are tried.
pub(super) fn set_pmtu_interface(fd: RawFd, ipv6: bool) -> io::Result<()> {
    let (level, name, modes) = if ipv6 {
        (
            libc::IPPROTO_IPV6,
            libc::IPV6_MTU_DISCOVER,
            [
                libc::IPV6_PMTUDISC_INTERFACE,
                libc::IPV6_PMTUDISC_PROBE,
                libc::IPV6_PMTUDISC_DO,
            ],
        )
    } else {
        (
            libc::IPPROTO_IP,
            libc::IP_MTU_DISCOVER,
            [
                libc::IP_PMTUDISC_INTERFACE,
                libc::IP_PMTUDISC_PROBE,
                libc::IP_PMTUDISC_DO,
            ],
        )
    };
    let mut result = Ok(());
    for mode in modes {
        result = setsockopt_int(fd, level, name, mode);
        if result.is_ok() {
            break;
        }
    }
    result
}

/// The path MTU discovery mode set (`IP_MTU_DISCOVER` / `IPV6_MTU_DISCOVER`), for tests.
#[cfg(test)]
pub(super) fn pmtu_mode(fd: RawFd, ipv6: bool) -> io::Result<libc::c_int> {
    if ipv6 {
        getsockopt_int(fd, libc::IPPROTO_IPV6, libc::IPV6_MTU_DISCOVER)
    } else {
        getsockopt_int(fd, libc::IPPROTO_IP, libc::IP_MTU_DISCOVER)
    }
}

/// Which kernel receive timestamp a socket delivers with each datagram.
// The portable backend asks for none.
#[cfg_attr(feature = "portable-net", allow(dead_code))]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Timestamps {
    /// None (the kernel refused both options).
    Off,
    /// `SCM_TIMESTAMPNS`: a `timespec`.
    Nanos,
    /// `SCM_TIMESTAMP`: a `timeval`.
    Micros,
}

/// Asks for the kernel's receive time (CLOCK_REALTIME) with each datagram: SO_TIMESTAMPNS,
/// or SO_TIMESTAMP where that is refused.
#[cfg_attr(feature = "portable-net", allow(dead_code))]
pub(super) fn enable_timestamps(fd: RawFd) -> Timestamps {
    if setsockopt_int(fd, libc::SOL_SOCKET, libc::SO_TIMESTAMPNS, 1).is_ok() {
        Timestamps::Nanos
    } else if setsockopt_int(fd, libc::SOL_SOCKET, libc::SO_TIMESTAMP, 1).is_ok() {
        Timestamps::Micros
    } else {
        Timestamps::Off
    }
}

/// A socket for [`path_mtu`], of `dest`'s family. The network namespace of a socket is the
/// one of the thread that creates it: a sender makes its probe when it opens, so that the
/// probe sees the sender's routes even when a thread elsewhere asks.
pub(super) fn mtu_probe(dest: SocketAddr) -> io::Result<Socket> {
    let sock = super::new_udp_socket(&dest)?;
    set_pmtu_interface(sock.as_raw_fd(), dest.is_ipv6())?;
    Ok(sock)
}

/// The largest datagram, IP header included, that a sending socket (in the "interface"
/// mode of [`set_pmtu_interface`]) can send to `dest`: the MTU of the interface the route to
/// `dest` leaves by. Found by connecting `probe` (a socket of `dest`'s family, from
/// [`mtu_probe`]) to `dest` and looking up the interface that holds the local address the
/// route picked. Where no interface holds it, the route's MTU (`IP_MTU`, which includes what
/// ICMP taught the kernel). None when neither can be found.
pub(super) fn path_mtu(probe: &Socket, dest: SocketAddr) -> Option<u32> {
    probe.connect(&SockAddr::from(dest)).ok()?;
    let local = probe.local_addr().ok().and_then(|a| a.as_socket());
    if let Some(mtu) = local.and_then(|l| interface_mtu(probe.as_raw_fd(), l.ip())) {
        return Some(mtu);
    }
    let mtu = if dest.is_ipv4() {
        getsockopt_int(probe.as_raw_fd(), libc::IPPROTO_IP, libc::IP_MTU)
    } else {
        getsockopt_int(probe.as_raw_fd(), libc::IPPROTO_IPV6, libc::IPV6_MTU)
    };
    mtu.ok()
        .and_then(|m| u32::try_from(m).ok())
        .filter(|&m| m > 0)
}

/// The MTU of the interface that holds address `ip` (SIOCGIFMTU through `fd`, so in the
/// socket's network namespace).
fn interface_mtu(fd: RawFd, ip: std::net::IpAddr) -> Option<u32> {
    let name = interface_holding(ip)?;
    // SAFETY: an all-zero ifreq is valid; the name is copied in NUL-terminated (at most
    // IFNAMSIZ - 1 bytes), and the kernel writes only the union.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    let bytes = name.as_bytes();
    if bytes.len() >= req.ifr_name.len() {
        return None;
    }
    for (d, s) in req.ifr_name.iter_mut().zip(bytes) {
        *d = *s as libc::c_char;
    }
    // SAFETY: `req` is a live ifreq for the duration of the call.
    let rc = unsafe { libc::ioctl(fd, libc::SIOCGIFMTU, &mut req) };
    if rc != 0 {
        return None;
    }
    // SAFETY: SIOCGIFMTU filled the union's `ifru_mtu`.
    let mtu = unsafe { req.ifr_ifru.ifru_mtu };
    u32::try_from(mtu).ok().filter(|&m| m > 0)
}

/// The name of the interface that holds address `ip`, if one does.
fn interface_holding(ip: std::net::IpAddr) -> Option<String> {
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs writes a list head that freeifaddrs releases below.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return None;
    }
    let mut found = None;
    let mut cur = head;
    while !cur.is_null() {
        // SAFETY: `cur` is a node of the list getifaddrs returned, alive until freed; its
        // address, when not null, is a sockaddr of the family it names, and its name a
        // NUL-terminated string.
        let (addr, name, next) = unsafe { ((*cur).ifa_addr, (*cur).ifa_name, (*cur).ifa_next) };
        cur = next;
        if addr.is_null() || name.is_null() {
            continue;
        }
        // SAFETY: as above.
        let family = libc::c_int::from(unsafe { (*addr).sa_family });
        let holds = match (family, ip) {
            (libc::AF_INET, std::net::IpAddr::V4(v4)) => {
                // SAFETY: the family says it is a sockaddr_in.
                let a = unsafe { &*addr.cast::<libc::sockaddr_in>() };
                u32::from_be(a.sin_addr.s_addr) == u32::from(v4)
            }
            (libc::AF_INET6, std::net::IpAddr::V6(v6)) => {
                // SAFETY: the family says it is a sockaddr_in6.
                let a = unsafe { &*addr.cast::<libc::sockaddr_in6>() };
                a.sin6_addr.s6_addr == v6.octets()
            }
            _ => false,
        };
        if holds {
            // SAFETY: as above.
            let n = unsafe { std::ffi::CStr::from_ptr(name) };
            found = n.to_str().ok().map(str::to_owned);
            break;
        }
    }
    // SAFETY: `head` came from getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(head) };
    found
}
