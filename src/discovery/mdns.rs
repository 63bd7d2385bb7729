// SPDX-License-Identifier: MPL-2.0
//! The browser's one socket: UDP port 5353 (shared, with SO_REUSEADDR and SO_REUSEPORT, with
//! any other mDNS socket of the machine, mdns-sd's announcers in this process included),
//! member of 224.0.0.251 on every interface with an IPv4 address, loopback included, and
//! sending queries out of each of them. IPv4 only: the responders answer a query on every
//! address family they announce on, and a source's AAAA records are still taken.

use socket2::{Domain, Protocol, SockAddr, Socket as Sock, Type};
use std::io;
use std::mem::MaybeUninit;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

const GROUP: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 251);
const PORT: u16 = super::browse::MDNS_PORT;
/// Most interfaces joined.
const MAX_INTERFACES: usize = 64;

pub(super) struct Socket {
    sock: Sock,
    /// The address of each interface joined.
    joined: Vec<Ipv4Addr>,
}

/// The IPv4 addresses of the interfaces that are up, loopback included.
fn interface_addresses() -> Vec<Ipv4Addr> {
    let mut out = Vec::new();
    let mut ifap: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills ifap with a list we free below with freeifaddrs.
    if unsafe { libc::getifaddrs(&mut ifap) } != 0 {
        return out;
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
    out
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
        };
        s.join_all();
        Ok(s)
    }

    /// Joins the group on the interfaces that have appeared, forgets the ones gone.
    pub fn join_all(&mut self) {
        let now = interface_addresses();
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

    /// Waits up to `wait` for a datagram; its length and where it came from.
    pub fn recv(&self, buf: &mut [u8], wait: Duration) -> Option<(usize, SocketAddr)> {
        self.sock.set_read_timeout(Some(wait)).ok()?;
        // SAFETY: u8 and MaybeUninit<u8> have the same layout; recv only writes into it.
        let uninit = unsafe {
            std::slice::from_raw_parts_mut(buf.as_mut_ptr().cast::<MaybeUninit<u8>>(), buf.len())
        };
        let (n, from) = self.sock.recv_from(uninit).ok()?;
        Some((n, from.as_socket()?))
    }

    /// Multicasts `datagram` out of every interface joined.
    pub fn send(&self, datagram: &[u8]) {
        let to = SockAddr::from(SocketAddr::V4(SocketAddrV4::new(GROUP, PORT)));
        for a in &self.joined {
            if self.sock.set_multicast_if_v4(a).is_ok() {
                let _ = self.sock.send_to(datagram, &to);
            }
        }
    }
}
