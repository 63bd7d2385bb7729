// SPDX-License-Identifier: MPL-2.0
//! The browser's sockets: UDP port 5353 (shared, with SO_REUSEADDR and SO_REUSEPORT, with
//! any other mDNS socket of the machine, mdns-sd's announcers in this process included),
//! one IPv4 socket, member of 224.0.0.251 on every interface with an IPv4 address, loopback
//! included, and one IPv6 socket (when the system has IPv6), member of ff02::fb on every
//! multicast interface with an IPv6 address; queries go out of each of them, so that
//! sources on a link with IPv6 only are found too.

use socket2::{Domain, Protocol, SockAddr, Socket as Sock, Type};
use std::io;
use std::mem::MaybeUninit;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::AsRawFd;
use std::time::Duration;

const GROUP: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 251);
const GROUP_V6: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0xfb);
const PORT: u16 = super::browse::MDNS_PORT;
/// Most interfaces joined.
const MAX_INTERFACES: usize = 64;

pub(super) struct Socket {
    sock: Sock,
    /// The address of each interface joined.
    joined: Vec<Ipv4Addr>,
    /// The IPv6 socket, if IPv6 is there.
    v6: Option<Sock>,
    /// The index of each interface it joined.
    joined_v6: Vec<u32>,
}

/// The IPv4 addresses of the interfaces that are up, loopback included, and the indexes of
/// the multicast interfaces that are up with an IPv6 address.
fn interfaces() -> (Vec<Ipv4Addr>, Vec<u32>) {
    let mut out = Vec::new();
    let mut v6 = Vec::new();
    let mut ifap: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills ifap with a list we free below with freeifaddrs.
    if unsafe { libc::getifaddrs(&mut ifap) } != 0 {
        return (out, v6);
    }
    let mut p = ifap;
    while !p.is_null() && out.len() < MAX_INTERFACES {
        // SAFETY: p is a node of the list getifaddrs returned, not yet freed.
        let ifa = unsafe { &*p };
        p = ifa.ifa_next;
        if ifa.ifa_addr.is_null() || ifa.ifa_flags & libc::IFF_UP as u32 == 0 {
            continue;
        }
        // SAFETY: ifa_addr is non-null and points at a sockaddr of the family it names.
        let family = unsafe { (*ifa.ifa_addr).sa_family };
        if i32::from(family) == libc::AF_INET6
            && ifa.ifa_flags & libc::IFF_MULTICAST as u32 != 0
            && ifa.ifa_flags & libc::IFF_LOOPBACK as u32 == 0
            && v6.len() < MAX_INTERFACES
        {
            // SAFETY: ifa_name is the interface's NUL-terminated name.
            let index = unsafe { libc::if_nametoindex(ifa.ifa_name) };
            if index != 0 && !v6.contains(&index) {
                v6.push(index);
            }
            continue;
        }
        if i32::from(family) != libc::AF_INET {
            continue;
        }
        // SAFETY: an AF_INET address is a sockaddr_in.
        let sin = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in) };
        let a = Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
        if !out.contains(&a) {
            out.push(a);
        }
    }
    // SAFETY: ifap came from getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(ifap) };
    (out, v6)
}

/// The IPv6 socket: [::]:5353, IPv6 only, or None when the system has no IPv6.
fn open_v6() -> Option<Sock> {
    let sock = Sock::new(Domain::IPV6, Type::DGRAM, Some(Protocol::UDP)).ok()?;
    sock.set_only_v6(true).ok()?;
    sock.set_reuse_address(true).ok()?;
    sock.set_reuse_port(true).ok()?;
    sock.set_multicast_loop_v6(true).ok()?;
    sock.set_multicast_hops_v6(255).ok()?;
    sock.bind(&SockAddr::from(SocketAddrV6::new(
        Ipv6Addr::UNSPECIFIED,
        PORT,
        0,
        0,
    )))
    .ok()?;
    Some(sock)
}

impl Socket {
    pub fn open() -> io::Result<Socket> {
        let sock = Sock::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
        sock.set_reuse_address(true)?;
        sock.set_reuse_port(true)?;
        sock.set_multicast_loop_v4(true)?;
        sock.set_multicast_ttl_v4(255)?;
        sock.bind(&SockAddr::from(SocketAddrV4::new(
            Ipv4Addr::UNSPECIFIED,
            PORT,
        )))?;
        let mut s = Socket {
            sock,
            joined: Vec::new(),
            v6: open_v6(),
            joined_v6: Vec::new(),
        };
        s.join_all();
        Ok(s)
    }

    /// Joins the group on the interfaces that have appeared, forgets the ones gone.
    pub fn join_all(&mut self) {
        let (now, v6) = interfaces();
        if let Some(sock) = &self.v6 {
            self.joined_v6.retain(|i| v6.contains(i));
            for i in v6 {
                if self.joined_v6.contains(&i) {
                    continue;
                }
                match sock.join_multicast_v6(&GROUP_V6, i) {
                    Ok(()) => self.joined_v6.push(i),
                    Err(e) if e.raw_os_error() == Some(libc::EADDRINUSE) => self.joined_v6.push(i),
                    Err(_) => {}
                }
            }
        }
        self.joined.retain(|a| now.contains(a));
        for a in now {
            if self.joined.contains(&a) {
                continue;
            }
            match self.sock.join_multicast_v4(&GROUP, &a) {
                Ok(()) => self.joined.push(a),
                // Joined already (another address of the same interface).
                Err(e) if e.raw_os_error() == Some(libc::EADDRINUSE) => self.joined.push(a),
                Err(_) => {}
            }
        }
    }

    /// Waits up to `wait` for a datagram on either socket; its length and where it came
    /// from.
    pub fn recv(&self, buf: &mut [u8], wait: Duration) -> Option<(usize, SocketAddr)> {
        let mut fds = [libc::pollfd {
            fd: self.sock.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        }; 2];
        let mut n = 1;
        if let Some(v6) = &self.v6 {
            fds[1].fd = v6.as_raw_fd();
            n = 2;
        }
        let ms = wait.as_millis().clamp(1, i32::MAX as u128) as libc::c_int;
        // SAFETY: fds holds n initialised pollfds, and poll writes only their revents.
        if unsafe { libc::poll(fds.as_mut_ptr(), n as libc::nfds_t, ms) } <= 0 {
            return None;
        }
        // SAFETY: u8 and MaybeUninit<u8> have the same layout; recv only writes into it.
        let uninit = unsafe {
            std::slice::from_raw_parts_mut(buf.as_mut_ptr().cast::<MaybeUninit<u8>>(), buf.len())
        };
        for (fd, sock) in fds[..n].iter().zip([Some(&self.sock), self.v6.as_ref()]) {
            if fd.revents == 0 {
                continue;
            }
            if let Some(Ok((len, from))) =
                sock.map(|s| s.recv_from_with_flags(uninit, libc::MSG_DONTWAIT))
            {
                if let Some(from) = from.as_socket() {
                    return Some((len, from));
                }
            }
        }
        None
    }

    /// Multicasts `datagram` out of every interface joined.
    pub fn send(&self, datagram: &[u8]) {
        let to = SockAddr::from(SocketAddr::V4(SocketAddrV4::new(GROUP, PORT)));
        for a in &self.joined {
            if self.sock.set_multicast_if_v4(a).is_ok() {
                let _ = self.sock.send_to(datagram, &to);
            }
        }
        if let Some(v6) = &self.v6 {
            for &i in &self.joined_v6 {
                let to = SockAddr::from(SocketAddrV6::new(GROUP_V6, PORT, 0, i));
                if v6.set_multicast_if_v6(i).is_ok() {
                    let _ = v6.send_to(datagram, &to);
                }
            }
        }
    }
}
