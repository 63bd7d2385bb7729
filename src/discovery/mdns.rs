// SPDX-License-Identifier: MPL-2.0
//! The browser's sockets: UDP port 5353 (shared, with SO_REUSEADDR and SO_REUSEPORT, with
//! any other mDNS socket of the machine, mdns-sd's announcers in this process included),
//! one IPv4 socket, member of 224.0.0.251 on every interface with an IPv4 address, loopback
//! included, and one IPv6 socket (when the system has IPv6), member of ff02::fb on every
//! multicast interface with an IPv6 address; queries go out of each of them, so that
//! sources on a link with IPv6 only are found too.
//!
//! **On-link answers only** (RFC 6762 §11). An answer sent to the group is on-link whatever
//! its source; one sent to this host alone (unicast, which a browser that never sets the QU
//! bit does not ask for) is taken only from an address on a subnet of one of our
//! interfaces, or an IPv6 link-local one: [`Socket::recv`] says which.

use socket2::{Domain, Protocol, SockAddr, Socket as Sock, Type};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
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
    /// Our interfaces' addresses and netmasks.
    subnets: Vec<(IpAddr, IpAddr)>,
}

/// Whether `a` is in the subnet of `net` under `mask` (both of its family).
fn in_subnet(a: IpAddr, net: IpAddr, mask: IpAddr) -> bool {
    match (a, net, mask) {
        (IpAddr::V4(a), IpAddr::V4(n), IpAddr::V4(m)) => {
            u32::from(a) & u32::from(m) == u32::from(n) & u32::from(m)
        }
        (IpAddr::V6(a), IpAddr::V6(n), IpAddr::V6(m)) => {
            u128::from(a) & u128::from(m) == u128::from(n) & u128::from(m)
        }
        _ => false,
    }
}

/// Whether a datagram from `from`, sent to `to` (None: not known), is on-link (RFC 6762
/// §11): sent to a multicast group, or from a local subnet, or from an IPv6 link-local
/// address.
pub(super) fn on_link(from: IpAddr, to: Option<IpAddr>, subnets: &[(IpAddr, IpAddr)]) -> bool {
    let link_local_v6 = matches!(from, IpAddr::V6(a) if a.segments()[0] & 0xffc0 == 0xfe80);
    to.is_none_or(|t| t.is_multicast())
        || link_local_v6
        || subnets.iter().any(|&(n, m)| in_subnet(from, n, m))
}

/// The address a sockaddr holds, if IPv4 or IPv6.
///
/// # Safety
/// `sa` is null or points at a sockaddr of the family it names.
unsafe fn sockaddr_ip(sa: *const libc::sockaddr) -> Option<IpAddr> {
    if sa.is_null() {
        return None;
    }
    // SAFETY: sa is non-null and a sockaddr of its family (the caller's promise).
    unsafe {
        match i32::from((*sa).sa_family) {
            libc::AF_INET => {
                let sin = &*(sa as *const libc::sockaddr_in);
                Some(IpAddr::V4(Ipv4Addr::from(u32::from_be(
                    sin.sin_addr.s_addr,
                ))))
            }
            libc::AF_INET6 => {
                let sin6 = &*(sa as *const libc::sockaddr_in6);
                Some(IpAddr::V6(Ipv6Addr::from(sin6.sin6_addr.s6_addr)))
            }
            _ => None,
        }
    }
}

/// Receives one datagram without waiting: its length, source and destination address
/// (from IP_PKTINFO / IPV6_PKTINFO, None if the kernel gave none).
fn recv_one(sock: &Sock, buf: &mut [u8]) -> Option<(usize, SocketAddr, Option<IpAddr>)> {
    // SAFETY: all-zero is a valid sockaddr_storage and msghdr.
    let mut name: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut control = [0u64; 32];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: as above.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_name = (&mut name as *mut libc::sockaddr_storage).cast();
    msg.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control) as _;
    // SAFETY: msg points at live buffers of the sizes it gives.
    let n = unsafe { libc::recvmsg(sock.as_raw_fd(), &mut msg, libc::MSG_DONTWAIT) };
    if n < 0 {
        return None;
    }
    let sa = (&name as *const libc::sockaddr_storage).cast::<libc::sockaddr>();
    // SAFETY: recvmsg wrote the source, a sockaddr of the family it names, into name, which
    // is large enough for any.
    let from = match (unsafe { sockaddr_ip(sa) }, i32::from(name.ss_family)) {
        (Some(IpAddr::V4(a)), libc::AF_INET) => {
            // SAFETY: an AF_INET address is a sockaddr_in.
            let sin = unsafe { &*sa.cast::<libc::sockaddr_in>() };
            SocketAddr::V4(SocketAddrV4::new(a, u16::from_be(sin.sin_port)))
        }
        (Some(IpAddr::V6(a)), libc::AF_INET6) => {
            // SAFETY: an AF_INET6 address is a sockaddr_in6.
            let sin6 = unsafe { &*sa.cast::<libc::sockaddr_in6>() };
            SocketAddr::V6(SocketAddrV6::new(
                a,
                u16::from_be(sin6.sin6_port),
                sin6.sin6_flowinfo,
                sin6.sin6_scope_id,
            ))
        }
        _ => return None,
    };
    let mut to = None;
    // SAFETY: the control messages are those recvmsg wrote into control, walked with the
    // CMSG macros within msg_controllen; their data is read unaligned.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            let (level, kind) = ((*c).cmsg_level, (*c).cmsg_type);
            if level == libc::IPPROTO_IP && kind == libc::IP_PKTINFO {
                let info: libc::in_pktinfo = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast());
                to = Some(IpAddr::V4(Ipv4Addr::from(u32::from_be(
                    info.ipi_addr.s_addr,
                ))));
            } else if level == libc::IPPROTO_IPV6 && kind == libc::IPV6_PKTINFO {
                let info: libc::in6_pktinfo = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast());
                to = Some(IpAddr::V6(Ipv6Addr::from(info.ipi6_addr.s6_addr)));
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    Some((n as usize, from, to))
}

/// Sets an int socket option to 1.
fn enable(sock: &Sock, level: libc::c_int, name: libc::c_int) -> io::Result<()> {
    let one: libc::c_int = 1;
    // SAFETY: the option value is a live c_int of the size given.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            level,
            name,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// What the interfaces that are up have.
struct Interfaces {
    /// IPv4 addresses, loopback included.
    v4: Vec<Ipv4Addr>,
    /// Indexes of the multicast ones with an IPv6 address.
    v6: Vec<u32>,
    /// Every address and its netmask.
    subnets: Vec<(IpAddr, IpAddr)>,
}

fn interfaces() -> Interfaces {
    let mut out = Vec::new();
    let mut v6 = Vec::new();
    let mut subnets = Vec::new();
    let mut ifap: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills ifap with a list we free below with freeifaddrs.
    if unsafe { libc::getifaddrs(&mut ifap) } != 0 {
        return Interfaces {
            v4: out,
            v6,
            subnets,
        };
    }
    let mut p = ifap;
    while !p.is_null() && out.len() < MAX_INTERFACES {
        // SAFETY: p is a node of the list getifaddrs returned, not yet freed.
        let ifa = unsafe { &*p };
        p = ifa.ifa_next;
        if ifa.ifa_addr.is_null() || ifa.ifa_flags & libc::IFF_UP as u32 == 0 {
            continue;
        }
        // SAFETY: getifaddrs's addresses and netmasks are null or sockaddrs of their family.
        let subnet = unsafe { (sockaddr_ip(ifa.ifa_addr), sockaddr_ip(ifa.ifa_netmask)) };
        if let (Some(a), Some(m)) = subnet {
            if subnets.len() < 4 * MAX_INTERFACES {
                subnets.push((a, m));
            }
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
    Interfaces {
        v4: out,
        v6,
        subnets,
    }
}

/// The IPv6 socket: [::]:5353, IPv6 only, or None when the system has no IPv6.
fn open_v6() -> Option<Sock> {
    let sock = Sock::new(Domain::IPV6, Type::DGRAM, Some(Protocol::UDP)).ok()?;
    sock.set_only_v6(true).ok()?;
    sock.set_reuse_address(true).ok()?;
    sock.set_reuse_port(true).ok()?;
    sock.set_multicast_loop_v6(true).ok()?;
    sock.set_multicast_hops_v6(255).ok()?;
    enable(&sock, libc::IPPROTO_IPV6, libc::IPV6_RECVPKTINFO).ok()?;
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
        enable(&sock, libc::IPPROTO_IP, libc::IP_PKTINFO)?;
        sock.bind(&SockAddr::from(SocketAddrV4::new(
            Ipv4Addr::UNSPECIFIED,
            PORT,
        )))?;
        let mut s = Socket {
            sock,
            joined: Vec::new(),
            v6: open_v6(),
            joined_v6: Vec::new(),
            subnets: Vec::new(),
        };
        s.join_all();
        Ok(s)
    }

    /// Joins the group on the interfaces that have appeared, forgets the ones gone.
    pub fn join_all(&mut self) {
        let Interfaces {
            v4: now,
            v6,
            subnets,
        } = interfaces();
        self.subnets = subnets;
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

    /// Waits up to `wait` for a datagram on either socket; its length, where it came from,
    /// and whether it is on-link (RFC 6762 §11: see [`on_link`]).
    pub fn recv(&self, buf: &mut [u8], wait: Duration) -> Option<(usize, SocketAddr, bool)> {
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
        for (fd, sock) in fds[..n].iter().zip([Some(&self.sock), self.v6.as_ref()]) {
            if fd.revents == 0 {
                continue;
            }
            if let Some((len, from, to)) = sock.and_then(|s| recv_one(s, buf)) {
                return Some((len, from, on_link(from.ip(), to, &self.subnets)));
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

#[cfg(test)]
#[path = "mdns_tests.rs"]
mod tests;
