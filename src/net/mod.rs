// SPDX-License-Identifier: MPL-2.0
//! The socket layer: opening UDP sockets for sending and receiving (unicast or multicast,
//! IPv4 or IPv6, buffer sizes, TTL, DSCP), batched I/O, and a cancellable wait.
//!
//! No GStreamer here. The batched system calls (`sendmmsg`, `recvmmsg`) live in
//! [`linux`]; this file holds what is portable.

mod linux;

pub use linux::{gso_segments, RecvBatch, SendBatch, SendReport, Waker};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::os::fd::{AsRawFd, RawFd};
use std::time::Instant;

/// A socket-layer error that says what was being done when it happened.
#[derive(Debug)]
pub struct NetError {
    /// What was being attempted, e.g. "bind to 0.0.0.0:5004".
    pub what: String,
    /// The OS error.
    pub source: io::Error,
}

impl NetError {
    fn new(what: impl Into<String>, source: io::Error) -> Self {
        NetError {
            what: what.into(),
            source,
        }
    }
}

impl fmt::Display for NetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "could not {}: {}", self.what, self.source)
    }
}

impl std::error::Error for NetError {}

/// Resolves `host` (a name, an IPv4 or an IPv6 address) and `port` to one socket address,
/// preferring IPv4 when a name has both.
pub fn resolve(host: &str, port: u16) -> Result<SocketAddr, NetError> {
    let host = host.trim();
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, port));
    }
    let what = || format!("resolve host \"{host}\"");
    let addrs: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|e| NetError::new(what(), e))?
        .collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or_else(|| addrs.first())
        .copied()
        .ok_or_else(|| NetError::new(what(), io::Error::other("no address found")))
}

/// Looks up the index of a network interface by name ("" means any: index 0).
pub fn interface_index(name: &str) -> Result<u32, NetError> {
    if name.is_empty() {
        return Ok(0);
    }
    let what = || format!("find network interface \"{name}\"");
    let cname = std::ffi::CString::new(name)
        .map_err(|_| NetError::new(what(), io::Error::from(io::ErrorKind::InvalidInput)))?;
    // SAFETY: `cname` is a valid NUL-terminated string for the duration of the call.
    let idx = unsafe { libc::if_nametoindex(cname.as_ptr()) };
    if idx == 0 {
        Err(NetError::new(what(), io::Error::last_os_error()))
    } else {
        Ok(idx)
    }
}

/// The size a socket buffer was asked to be, and what the kernel granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BufferSize {
    /// Bytes asked for (0: left at the system default).
    pub requested: usize,
    /// Bytes the kernel reports (Linux reports twice the size set).
    pub granted: usize,
}

impl BufferSize {
    /// True when the kernel granted less than was asked for (it reports twice the size it
    /// grants, to account for its bookkeeping).
    pub fn capped(&self) -> bool {
        self.requested > 0 && self.granted / 2 < self.requested
    }
}

/// Sets SO_SNDBUF or SO_RCVBUF, trying the privileged `*FORCE` variant first (which is not
/// bounded by `net.core.wmem_max`/`rmem_max`) and falling back to the ordinary option.
fn set_buffer_size(sock: &Socket, size: usize, send: bool) -> io::Result<BufferSize> {
    let read_back = |s: &Socket| {
        if send {
            s.send_buffer_size()
        } else {
            s.recv_buffer_size()
        }
    };
    if size == 0 {
        return Ok(BufferSize {
            requested: 0,
            granted: read_back(sock)?,
        });
    }
    let val = libc::c_int::try_from(size).unwrap_or(libc::c_int::MAX);
    let force = if send {
        libc::SO_SNDBUFFORCE
    } else {
        libc::SO_RCVBUFFORCE
    };
    if linux::setsockopt_int(sock.as_raw_fd(), libc::SOL_SOCKET, force, val).is_err() {
        if send {
            sock.set_send_buffer_size(size)?;
        } else {
            sock.set_recv_buffer_size(size)?;
        }
    }
    Ok(BufferSize {
        requested: size,
        granted: read_back(sock)?,
    })
}

fn new_udp_socket(family: &SocketAddr) -> io::Result<Socket> {
    let domain = if family.is_ipv4() {
        Domain::IPV4
    } else {
        Domain::IPV6
    };
    let sock = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP))?;
    sock.set_nonblocking(true)?;
    sock.set_cloexec(true)?;
    Ok(sock)
}

/// How to open a sending socket.
#[derive(Debug, Clone)]
pub struct SenderConfig {
    /// Destination address.
    pub dest: SocketAddr,
    /// Local address to bind to (None: any address of the destination's family).
    pub bind: Option<IpAddr>,
    /// Local port to bind to (0: any).
    pub bind_port: u16,
    /// Unicast TTL / hop limit (None: system default).
    pub ttl: Option<u32>,
    /// Multicast TTL / hop limit.
    pub ttl_mc: u32,
    /// Interface index for multicast (0: let the routing table choose).
    pub multicast_iface: u32,
    /// Whether multicast is looped back to this host.
    pub multicast_loop: bool,
    /// DSCP value (0..=63) put in the IP header (None: leave as is).
    pub dscp: Option<u8>,
    /// SO_SNDBUF size (0: system default).
    pub buffer_size: usize,
}

impl SenderConfig {
    /// Defaults for sending to `dest`: any local address, system TTL, multicast TTL 1 with
    /// loopback, no DSCP, system buffer size.
    pub fn new(dest: SocketAddr) -> Self {
        SenderConfig {
            dest,
            bind: None,
            bind_port: 0,
            ttl: None,
            ttl_mc: 1,
            multicast_iface: 0,
            multicast_loop: true,
            dscp: None,
            buffer_size: 0,
        }
    }
}

/// A connected, non-blocking UDP socket for sending.
#[derive(Debug)]
pub struct Sender {
    sock: Socket,
    dest: SocketAddr,
    local: SocketAddr,
    buffer: BufferSize,
    gso: bool,
}

impl Sender {
    /// Opens, configures, binds and connects a socket as `cfg` says.
    pub fn open(cfg: &SenderConfig) -> Result<Self, NetError> {
        let dest = cfg.dest;
        let sock = new_udp_socket(&dest).map_err(|e| NetError::new("create a UDP socket", e))?;
        let bind_ip = cfg.bind.unwrap_or(if dest.is_ipv4() {
            IpAddr::V4(Ipv4Addr::UNSPECIFIED)
        } else {
            IpAddr::V6(Ipv6Addr::UNSPECIFIED)
        });
        if bind_ip.is_ipv4() != dest.is_ipv4() {
            return Err(NetError::new(
                format!("bind to {bind_ip} to send to {dest}"),
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "bind-address and host are of different address families",
                ),
            ));
        }
        let bind_addr = SocketAddr::new(bind_ip, cfg.bind_port);
        let mc = dest.ip().is_multicast();
        let setup = || -> io::Result<()> {
            match dest {
                SocketAddr::V4(_) => {
                    if let Some(ttl) = cfg.ttl {
                        sock.set_ttl_v4(ttl)?;
                    }
                    if mc {
                        sock.set_multicast_ttl_v4(cfg.ttl_mc)?;
                        sock.set_multicast_loop_v4(cfg.multicast_loop)?;
                        if cfg.multicast_iface != 0 {
                            linux::set_multicast_if_v4_index(
                                sock.as_raw_fd(),
                                cfg.multicast_iface,
                            )?;
                        }
                    }
                    if let Some(dscp) = cfg.dscp {
                        sock.set_tos_v4(u32::from(dscp) << 2)?;
                    }
                }
                SocketAddr::V6(_) => {
                    if let Some(ttl) = cfg.ttl {
                        sock.set_unicast_hops_v6(ttl)?;
                    }
                    if mc {
                        sock.set_multicast_hops_v6(cfg.ttl_mc)?;
                        sock.set_multicast_loop_v6(cfg.multicast_loop)?;
                        if cfg.multicast_iface != 0 {
                            sock.set_multicast_if_v6(cfg.multicast_iface)?;
                        }
                    }
                    if let Some(dscp) = cfg.dscp {
                        sock.set_tclass_v6(u32::from(dscp) << 2)?;
                    }
                }
            }
            Ok(())
        };
        setup().map_err(|e| NetError::new(format!("configure the socket for {dest}"), e))?;
        let buffer = set_buffer_size(&sock, cfg.buffer_size, true)
            .map_err(|e| NetError::new("set the send buffer size", e))?;
        sock.bind(&SockAddr::from(bind_addr))
            .map_err(|e| NetError::new(format!("bind to {bind_addr}"), e))?;
        sock.connect(&SockAddr::from(dest))
            .map_err(|e| NetError::new(format!("reach {dest}"), e))?;
        let local = sock
            .local_addr()
            .ok()
            .and_then(|a| a.as_socket())
            .unwrap_or(bind_addr);
        let gso = linux::probe_gso(sock.as_raw_fd());
        Ok(Sender {
            sock,
            dest,
            local,
            buffer,
            gso,
        })
    }

    /// The destination.
    pub fn dest(&self) -> SocketAddr {
        self.dest
    }

    /// The local address the socket is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The send buffer size asked for and granted.
    pub fn buffer_size(&self) -> BufferSize {
        self.buffer
    }

    /// The raw file descriptor, for waiting on.
    pub fn fd(&self) -> RawFd {
        self.sock.as_raw_fd()
    }

    /// Whether the kernel accepts UDP GSO (`UDP_SEGMENT`) on this socket.
    pub fn gso_supported(&self) -> bool {
        self.gso
    }
}

/// How to open a receiving socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiverConfig {
    /// Address to bind to; when it is a multicast group, the group is also joined.
    pub address: IpAddr,
    /// Port to bind to (0: any, read it back with [`Receiver::local_addr`]).
    pub port: u16,
    /// Interface index for the multicast join (0: the system's choice).
    pub multicast_iface: u32,
    /// SO_RCVBUF size (0: system default).
    pub buffer_size: usize,
    /// Allow other sockets to bind the same address and port (SO_REUSEADDR).
    pub reuse: bool,
}

/// A bound, non-blocking UDP socket for receiving.
#[derive(Debug)]
pub struct Receiver {
    sock: Socket,
    local: SocketAddr,
    buffer: BufferSize,
}

impl Receiver {
    /// Opens, configures and binds a socket as `cfg` says, joining a multicast group if
    /// `cfg.address` is one.
    pub fn open(cfg: &ReceiverConfig) -> Result<Self, NetError> {
        let bind_addr = SocketAddr::new(cfg.address, cfg.port);
        let sock =
            new_udp_socket(&bind_addr).map_err(|e| NetError::new("create a UDP socket", e))?;
        if cfg.reuse {
            sock.set_reuse_address(true)
                .map_err(|e| NetError::new("set SO_REUSEADDR", e))?;
        }
        if cfg.address.is_ipv6() {
            // Receive only IPv6 on an IPv6 socket, so that 0.0.0.0 and :: can coexist.
            let _ = sock.set_only_v6(true);
        }
        let buffer = set_buffer_size(&sock, cfg.buffer_size, false)
            .map_err(|e| NetError::new("set the receive buffer size", e))?;
        sock.bind(&SockAddr::from(bind_addr))
            .map_err(|e| NetError::new(format!("bind to {bind_addr}"), e))?;
        if cfg.address.is_multicast() {
            let joined = match cfg.address {
                IpAddr::V4(group) => sock.join_multicast_v4_n(
                    &group,
                    &socket2::InterfaceIndexOrAddress::Index(cfg.multicast_iface),
                ),
                IpAddr::V6(group) => sock.join_multicast_v6(&group, cfg.multicast_iface),
            };
            joined
                .map_err(|e| NetError::new(format!("join multicast group {}", cfg.address), e))?;
        }
        let local = sock
            .local_addr()
            .ok()
            .and_then(|a| a.as_socket())
            .unwrap_or(bind_addr);
        Ok(Receiver {
            sock,
            local,
            buffer,
        })
    }

    /// The local address and port the socket is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The receive buffer size asked for and granted.
    pub fn buffer_size(&self) -> BufferSize {
        self.buffer
    }

    /// The raw file descriptor, for waiting on.
    pub fn fd(&self) -> RawFd {
        self.sock.as_raw_fd()
    }

    /// Asks the kernel to coalesce datagrams (UDP GRO), so that one receive can return many;
    /// [`RecvBatch`] then needs 64 KiB slots. Returns false where the kernel cannot.
    pub fn enable_gro(&self) -> bool {
        linux::enable_gro(self.sock.as_raw_fd())
    }
}

/// What ended a [`Waker::wait`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// The socket is ready.
    Ready,
    /// The waker was woken (the element is flushing).
    Woken,
    /// The deadline passed.
    TimedOut,
}

/// When to stop waiting: a deadline, or never.
pub type Deadline = Option<Instant>;
