// SPDX-License-Identifier: MPL-2.0
//! The socket layer: two-way UDP sockets opened for sending or receiving (unicast or
//! multicast, IPv4 or IPv6, buffer sizes, TTL, DSCP), batched I/O with per-datagram metadata,
//! and a cancellable wait.
//!
//! No GStreamer here. The I/O backend is chosen at build time: `linux` (`sendmmsg`,
//! `recvmmsg`, UDP GSO/GRO, kernel timestamps) on Linux, or `fallback` (one `send_to` /
//! `recv_from` per datagram) on other systems and with the `portable-net` feature. Both offer
//! the same [`SendBatch`] and [`RecvBatch`]; this file holds what they share.

#[cfg(all(target_os = "linux", not(feature = "portable-net")))]
mod linux;
#[cfg(all(target_os = "linux", not(feature = "portable-net")))]
use linux as backend;

#[cfg(any(not(target_os = "linux"), feature = "portable-net"))]
mod fallback;
#[cfg(any(not(target_os = "linux"), feature = "portable-net"))]
use fallback as backend;

mod sockopt;
mod waker;

pub use backend::{RecvBatch, SendBatch};
pub use waker::{Deadline, Wait, Waker};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Instant, SystemTime};

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

    /// Whether the address and port asked for are held by another socket.
    pub fn is_addr_in_use(&self) -> bool {
        self.source.kind() == io::ErrorKind::AddrInUse
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
    if sockopt::force_buffer_size(sock.as_raw_fd(), size, send).is_err() {
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

/// Most segments the kernel accepts in one GSO send (`UDP_MAX_SEGMENTS`).
const MAX_GSO_SEGMENTS: usize = 64;
/// Most bytes of UDP payload in one datagram, and so in one GSO send.
const MAX_UDP_PAYLOAD: usize = 65507;

/// How many datagrams of `size` bytes one GSO send carries.
pub fn gso_segments(size: usize) -> usize {
    MAX_UDP_PAYLOAD
        .checked_div(size)
        .map_or(1, |n| n.clamp(1, MAX_GSO_SEGMENTS))
}

/// What a [`SendBatch::send`] call did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SendReport {
    /// Datagrams handed to the kernel.
    pub sent: usize,
    /// Bytes handed to the kernel (headers included).
    pub bytes: usize,
    /// Datagrams the kernel refused (counted and skipped).
    pub errors: usize,
    /// The first error seen, if any.
    pub first_error: Option<io::ErrorKind>,
    /// True when datagrams were refused as too large (EMSGSIZE: larger than the MTU of the
    /// interface they leave by; the socket does not fragment).
    pub too_large: bool,
    /// Then the MTU they must fit, if it can be found ([`UdpSocket::path_mtu`]): datagrams
    /// must be at most this many bytes, IP and UDP headers included.
    pub path_mtu: Option<u32>,
    /// True when the waker interrupted the send (the rest was not sent).
    pub interrupted: bool,
}

/// What a backend does next after a send call failed (see [`SendErrors::handle`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AfterError {
    /// Send the same message again.
    Again,
    /// Its datagrams were counted as refused: go on with the next message.
    Skip,
    /// The waker interrupted a wait: stop, the report says so.
    Interrupted,
}

/// The error policy both backends share for sends: wait (cancellably) while the socket
/// buffer is full, send once more after an ICMP error from earlier, find the path MTU for
/// datagrams too large for it, count and skip what else the kernel refuses.
#[derive(Debug, Default)]
struct SendErrors {
    /// Waits in a row on a full buffer: bounded so that a send can never spin forever.
    spins: u32,
    /// The head message was already sent again after ECONNREFUSED.
    retried: bool,
}

impl SendErrors {
    /// A send call succeeded.
    fn sent(&mut self) {
        self.spins = 0;
        self.retried = false;
    }

    /// Handles `err` from sending the message at the head, of `n` datagrams, to `dest`.
    fn handle(
        &mut self,
        err: io::Error,
        n: usize,
        socket: &UdpSocket,
        dest: SocketAddr,
        waker: &Waker,
        report: &mut SendReport,
    ) -> io::Result<AfterError> {
        match err.raw_os_error() {
            Some(libc::EINTR) => return Ok(AfterError::Again),
            Some(libc::EAGAIN) | Some(libc::ENOBUFS) => {
                self.spins += 1;
                if self.spins > 1000 {
                    return Err(err);
                }
                let deadline = Some(Instant::now() + std::time::Duration::from_millis(100));
                if waker.wait(Some(socket.fd()), libc::POLLOUT, deadline)? == Wait::Woken {
                    report.interrupted = true;
                    return Ok(AfterError::Interrupted);
                }
                return Ok(AfterError::Again);
            }
            Some(libc::ECONNREFUSED) if !self.retried => {
                // An ICMP "port unreachable" from earlier (no receiver was listening then)
                // is reported on this call and cleared by it; the datagrams themselves were
                // not at fault, so they are sent again once.
                report.errors += 1;
                report.first_error.get_or_insert(err.kind());
                self.retried = true;
                return Ok(AfterError::Again);
            }
            Some(libc::EMSGSIZE) if !report.too_large => {
                // Larger than the interface MTU, and the socket does not fragment: say what
                // it carries, so the caller can tell the user.
                report.too_large = true;
                report.path_mtu = socket.path_mtu(dest);
            }
            _ => {}
        }
        // The message was refused: count its datagrams and go on with the rest.
        report.errors += n;
        report.first_error.get_or_insert(err.kind());
        self.retried = false;
        Ok(AfterError::Skip)
    }
}

/// What is known about one received datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecvMeta {
    /// Who sent it (an IPv4-mapped IPv6 source is given as IPv4). Replies go here.
    pub source: SocketAddr,
    /// Its length in bytes (what was kept of it, if it was truncated).
    pub len: usize,
    /// The segment size of the message it came in: its length, unless the kernel coalesced
    /// several datagrams into one receive (UDP GRO).
    pub stride: usize,
    /// When the kernel received it (CLOCK_REALTIME), where the backend can tell.
    pub timestamp: Option<SystemTime>,
}

impl RecvMeta {
    /// The kernel receive time on the monotonic clock (see [`system_time_to_instant`]).
    pub fn arrival(&self) -> Option<Instant> {
        self.timestamp.map(system_time_to_instant)
    }
}

/// Maps a wall-clock time from the recent past (a kernel receive timestamp) to the monotonic
/// clock: now − (wall-clock now − `ts`). A time in the future maps to now.
pub fn system_time_to_instant(ts: SystemTime) -> Instant {
    system_time_to_instant_at(ts, SystemTime::now(), Instant::now())
}

/// [`system_time_to_instant`] against a given pair of "now" readings. An age the monotonic
/// clock cannot go back by (older than its origin) saturates near its earliest instant.
pub fn system_time_to_instant_at(
    ts: SystemTime,
    now_system: SystemTime,
    now_instant: Instant,
) -> Instant {
    match now_system.duration_since(ts) {
        Ok(age) => now_instant.checked_sub(age).unwrap_or_else(|| {
            // Saturate: step back by halves of the age until it fits.
            let mut back = age;
            loop {
                back /= 2;
                if let Some(t) = now_instant.checked_sub(back) {
                    return t;
                }
            }
        }),
        Err(_) => now_instant,
    }
}

/// What both backends' receive batches hold alike: the datagrams of the last receive.
impl RecvBatch {
    /// Datagram `i` of the last [`recv`](Self::recv), or None if it was truncated.
    pub fn get(&self, i: usize) -> Option<&[u8]> {
        let &(start, len) = self.dgrams.get(i)?;
        if len == usize::MAX {
            return None;
        }
        self.buf.get(start..start + len)
    }

    /// Datagram `i` of the last [`recv`](Self::recv), writable (a protected datagram is
    /// opened in place), or None if it was truncated.
    pub fn get_mut(&mut self, i: usize) -> Option<&mut [u8]> {
        let &(start, len) = self.dgrams.get(i)?;
        if len == usize::MAX {
            return None;
        }
        self.buf.get_mut(start..start + len)
    }

    /// What is known about datagram `i` of the last [`recv`](Self::recv): its source, length,
    /// segment size and kernel receive time (where the backend has it). Given for truncated
    /// datagrams too.
    pub fn meta(&self, i: usize) -> Option<&RecvMeta> {
        self.metas.get(i)
    }

    /// Number of datagrams the last [`recv`](Self::recv) returned.
    pub fn len(&self) -> usize {
        self.dgrams.len()
    }

    /// True if the last [`recv`](Self::recv) returned nothing.
    pub fn is_empty(&self) -> bool {
        self.dgrams.is_empty()
    }
}

/// An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`, what a dual-stack socket reports for an
/// IPv4 peer) as plain IPv4; anything else unchanged.
fn canonical(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V6(a) => match a.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(IpAddr::V4(v4), a.port()),
            None => addr,
        },
        SocketAddr::V4(_) => addr,
    }
}

/// How to open a sending socket.
#[derive(Debug, Clone)]
pub struct SenderConfig {
    /// Where the datagrams will go: picks the address family and the multicast options.
    pub dest: SocketAddr,
    /// Local address to bind to (None: any address of the destination's family).
    pub bind: Option<IpAddr>,
    /// Local port to bind to (0: any). Replies from receivers arrive on it.
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

/// How to open a receiving socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiverConfig {
    /// Address to bind to; when it is a multicast group, the group is also joined. The
    /// unspecified IPv6 address `::` also receives IPv4 (dual-stack); any other IPv6 address
    /// only IPv6.
    pub address: IpAddr,
    /// Port to bind to (0: any, read it back with [`UdpSocket::local_addr`]).
    pub port: u16,
    /// Interface index for the multicast join (0: the system's choice).
    pub multicast_iface: u32,
    /// SO_RCVBUF size (0: system default).
    pub buffer_size: usize,
    /// Let other unicast receivers that also ask for it bind the same address and port
    /// (SO_REUSEADDR); the kernel then hands each unicast datagram to only one of them. A
    /// multicast group is always shared (every member gets every datagram), whatever this
    /// says. With port 0 it is set after the bind: before, it would let the kernel hand out
    /// a port in use.
    pub reuse: bool,
}

impl ReceiverConfig {
    /// Whether the socket lets others bind its port: a multicast group always (each of its
    /// members gets every datagram), a unicast address only when asked, since there two
    /// receivers would each get part of the stream.
    pub fn shares_port(&self) -> bool {
        self.reuse || self.address.is_multicast()
    }
}

/// A bound, unconnected, non-blocking UDP socket that both sends and receives: a sender
/// gets replies on it, a receiver answers through it.
#[derive(Debug)]
pub struct UdpSocket {
    sock: Socket,
    local: SocketAddr,
    buffer: BufferSize,
    gso: bool,
    timestamps: sockopt::Timestamps,
    /// A sender's socket for finding path MTUs (made in its network namespace).
    mtu_probe: Option<std::sync::Mutex<Socket>>,
}

impl UdpSocket {
    /// Opens a socket to send to `cfg.dest`: configures it (TTL, multicast, DSCP,
    /// path MTU mode, send buffer) and binds it to `cfg.bind`/`cfg.bind_port`. It is not
    /// connected: each send names its destination, and replies from anywhere arrive.
    pub fn open_sender(cfg: &SenderConfig) -> Result<Self, NetError> {
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
                            sockopt::set_multicast_if_v4_index(
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
            // Datagrams larger than the interface MTU are refused (EMSGSIZE), never
            // fragmented here; ICMP cannot lower what is sent (see `set_pmtu_interface`).
            sockopt::set_pmtu_interface(sock.as_raw_fd(), dest.is_ipv6())
        };
        setup().map_err(|e| NetError::new(format!("configure the socket for {dest}"), e))?;
        let buffer = set_buffer_size(&sock, cfg.buffer_size, true)
            .map_err(|e| NetError::new("set the send buffer size", e))?;
        sock.bind(&SockAddr::from(bind_addr))
            .map_err(|e| NetError::new(format!("bind to {bind_addr}"), e))?;
        let probe = sockopt::mtu_probe(dest)
            .map_err(|e| NetError::new("create a UDP socket for path MTU discovery", e))?;
        Ok(UdpSocket {
            mtu_probe: Some(std::sync::Mutex::new(probe)),
            ..Self::finish(sock, bind_addr, buffer)
        })
    }

    /// Opens a socket to receive as `cfg` says, joining a multicast group if `cfg.address` is
    /// one. Replies can be sent through it to the source of what it received.
    pub fn open_receiver(cfg: &ReceiverConfig) -> Result<Self, NetError> {
        let bind_addr = SocketAddr::new(cfg.address, cfg.port);
        let sock =
            new_udp_socket(&bind_addr).map_err(|e| NetError::new("create a UDP socket", e))?;
        // SO_REUSEADDR before an ephemeral (port 0) bind lets the kernel pick a port another
        // reusing socket holds: then it is only set after the bind, when the port is the
        // socket's own and others can still join it.
        let set_reuse = |sock: &Socket| {
            sock.set_reuse_address(true)
                .map_err(|e| NetError::new("set SO_REUSEADDR", e))
        };
        if cfg.shares_port() && cfg.port != 0 {
            set_reuse(&sock)?;
        }
        if cfg.address.is_ipv6() {
            // `::` takes IPv4 too, as udpsrc's does; a specific IPv6 address only IPv6.
            let v6only = !cfg.address.is_unspecified();
            sock.set_only_v6(v6only)
                .map_err(|e| NetError::new("set IPV6_V6ONLY", e))?;
        }
        let buffer = set_buffer_size(&sock, cfg.buffer_size, false)
            .map_err(|e| NetError::new("set the receive buffer size", e))?;
        sock.bind(&SockAddr::from(bind_addr))
            .map_err(|e| NetError::new(format!("bind to {bind_addr}"), e))?;
        if cfg.shares_port() && cfg.port == 0 {
            set_reuse(&sock)?;
        }
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
        Ok(Self::finish(sock, bind_addr, buffer))
    }

    fn finish(sock: Socket, bind_addr: SocketAddr, buffer: BufferSize) -> Self {
        let local = sock
            .local_addr()
            .ok()
            .and_then(|a| a.as_socket())
            .unwrap_or(bind_addr);
        let gso = backend::probe_gso(sock.as_raw_fd());
        let timestamps = backend::enable_timestamps(sock.as_raw_fd());
        UdpSocket {
            sock,
            local,
            buffer,
            gso,
            timestamps,
            mtu_probe: None,
        }
    }

    /// The local address and port the socket is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The send (sender) or receive (receiver) buffer size asked for and granted.
    pub fn buffer_size(&self) -> BufferSize {
        self.buffer
    }

    /// The raw file descriptor, for waiting on.
    pub fn fd(&self) -> RawFd {
        self.sock.as_raw_fd()
    }

    /// Whether sends may use UDP GSO (`UDP_SEGMENT`) on this socket.
    pub fn gso_supported(&self) -> bool {
        self.gso
    }

    /// Whether received datagrams carry the kernel's receive time ([`RecvMeta::timestamp`]).
    pub fn timestamps(&self) -> bool {
        self.timestamps != sockopt::Timestamps::Off
    }

    /// Asks the kernel to coalesce datagrams (UDP GRO), so that one receive can return many;
    /// [`RecvBatch`] then needs 64 KiB slots. Returns false where the kernel (or the backend)
    /// cannot.
    pub fn enable_gro(&self) -> bool {
        backend::enable_gro(self.sock.as_raw_fd())
    }

    /// The largest datagram (IP header included) this socket can send to `dest`: the MTU of
    /// the interface the route to `dest` leaves by (a sender ignores path MTUs learnt from
    /// ICMP, which anyone can forge), if it can be found. A sender asks in the network
    /// namespace it was opened in; a receiver in the calling thread's.
    pub fn path_mtu(&self, dest: SocketAddr) -> Option<u32> {
        let dest = canonical(dest);
        let probe = self.mtu_probe.as_ref().and_then(|p| p.lock().ok());
        match probe {
            Some(probe) if probe.local_addr().ok()?.is_ipv4() == dest.is_ipv4() => {
                sockopt::path_mtu(&probe, dest)
            }
            _ => sockopt::path_mtu(&sockopt::mtu_probe(dest).ok()?, dest),
        }
    }

    /// `dest` in this socket's address family (IPv4 as IPv4-mapped IPv6 on an IPv6 socket).
    fn dest_addr(&self, dest: SocketAddr) -> SockAddr {
        match (self.local, dest) {
            (SocketAddr::V6(_), SocketAddr::V4(d)) => SockAddr::from(SocketAddr::new(
                IpAddr::V6(d.ip().to_ipv6_mapped()),
                d.port(),
            )),
            _ => SockAddr::from(dest),
        }
    }
}

#[cfg(test)]
mod tests;
