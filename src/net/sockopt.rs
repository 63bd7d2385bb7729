// SPDX-License-Identifier: MPL-2.0
//! Socket options that socket2 does not cover (Linux): forced buffer sizes, IPv4 multicast
//! interface by index, don't-fragment, kernel receive timestamps and the path MTU. Shared by
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

/// Sets don't-fragment (path MTU discovery "do"): a datagram larger than the path MTU is
/// refused with EMSGSIZE instead of being fragmented by IP.
pub(super) fn set_dont_fragment(fd: RawFd, ipv6: bool) -> io::Result<()> {
    if ipv6 {
        setsockopt_int(
            fd,
            libc::IPPROTO_IPV6,
            libc::IPV6_MTU_DISCOVER,
            libc::IPV6_PMTUDISC_DO,
        )
    } else {
        setsockopt_int(
            fd,
            libc::IPPROTO_IP,
            libc::IP_MTU_DISCOVER,
            libc::IP_PMTUDISC_DO,
        )
    }
}

/// Whether don't-fragment is set (for tests).
#[cfg(test)]
pub(super) fn dont_fragment(fd: RawFd, ipv6: bool) -> io::Result<bool> {
    Ok(if ipv6 {
        getsockopt_int(fd, libc::IPPROTO_IPV6, libc::IPV6_MTU_DISCOVER)? == libc::IPV6_PMTUDISC_DO
    } else {
        getsockopt_int(fd, libc::IPPROTO_IP, libc::IP_MTU_DISCOVER)? == libc::IP_PMTUDISC_DO
    })
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
    set_dont_fragment(sock.as_raw_fd(), dest.is_ipv6())?;
    Ok(sock)
}

/// The MTU of the path to `dest` as the kernel knows it (the route's, or a smaller one
/// learnt from ICMP "fragmentation needed"), read by connecting `probe` (a socket of `dest`'s
/// family, from [`mtu_probe`]) to `dest`. None when it cannot be found.
pub(super) fn path_mtu(probe: &Socket, dest: SocketAddr) -> Option<u32> {
    probe.connect(&SockAddr::from(dest)).ok()?;
    let mtu = if dest.is_ipv4() {
        getsockopt_int(probe.as_raw_fd(), libc::IPPROTO_IP, libc::IP_MTU)
    } else {
        getsockopt_int(probe.as_raw_fd(), libc::IPPROTO_IPV6, libc::IPV6_MTU)
    };
    mtu.ok()
        .and_then(|m| u32::try_from(m).ok())
        .filter(|&m| m > 0)
}
