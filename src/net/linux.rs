// SPDX-License-Identifier: MPL-2.0
//! The Linux I/O backend: batched `sendmmsg`/`recvmmsg`, UDP GSO and GRO, and kernel receive
//! timestamps.

use super::sockopt::{self, setsockopt_int, Timestamps};
use super::{
    canonical, gso_segments, AfterError, RecvMeta, SendErrors, SendReport, UdpSocket, Waker,
};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::RawFd;
use std::time::{Duration, SystemTime};

/// `UDP_SEGMENT` (Linux ≥ 4.18): a send carries many equal-sized datagrams, cut by the
/// kernel or the NIC (generic segmentation offload).
const UDP_SEGMENT: libc::c_int = 103;
/// `UDP_GRO` (Linux ≥ 5.0): a receive may return many coalesced datagrams at once, with
/// their size in a control message.
const UDP_GRO: libc::c_int = 104;

/// Whether the kernel takes `UDP_SEGMENT` on this socket.
pub(super) fn probe_gso(fd: RawFd) -> bool {
    setsockopt_int(fd, libc::SOL_UDP, UDP_SEGMENT, 0).is_ok()
}

/// Asks the kernel to coalesce received datagrams (`UDP_GRO`). False where it cannot.
pub(super) fn enable_gro(fd: RawFd) -> bool {
    setsockopt_int(fd, libc::SOL_UDP, UDP_GRO, 1).is_ok()
}

/// Asks for kernel receive timestamps.
pub(super) fn enable_timestamps(fd: RawFd) -> Timestamps {
    sockopt::enable_timestamps(fd)
}

/// Control-message space, 8-byte aligned: on send one `u16` (UDP_SEGMENT); on receive an
/// `int` (UDP_GRO, 24 bytes with its header) and a `timespec` (SCM_TIMESTAMPNS, 32 bytes).
type CmsgBuf = [u64; 8];

/// Reusable scratch space for `sendmmsg`: no allocation once warmed up.
///
/// Consecutive datagrams of equal size are handed to the kernel as one GSO message (up to 64
/// segments, 64 KiB) where the socket allows it, and several messages per `sendmmsg`. If the
/// kernel refuses GSO at run time (EIO, EINVAL: a device that cannot offload), the batch falls
/// back to one message per datagram for the rest of its life.
pub struct SendBatch {
    iov: Vec<libc::iovec>,
    msgs: Vec<libc::mmsghdr>,
    cmsgs: Vec<CmsgBuf>,
    /// (first datagram, segment count, segment size) of each message.
    groups: Vec<(usize, usize, usize)>,
    gso: Option<bool>,
}

// SAFETY: the raw pointers inside are only set and used within one `send` call, which
// borrows every pointed-to slice (and holds the destination address) for its whole
// duration; between calls they are dangling
// but never dereferenced (the vectors are cleared before reuse).
unsafe impl Send for SendBatch {}

impl std::fmt::Debug for SendBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SendBatch")
            .field("capacity", &self.msgs.capacity())
            .field("gso", &self.gso)
            .finish()
    }
}

impl Default for SendBatch {
    fn default() -> Self {
        Self::new()
    }
}

impl SendBatch {
    /// Empty scratch space; GSO is used where the socket supports it.
    pub fn new() -> Self {
        SendBatch {
            iov: Vec::new(),
            msgs: Vec::new(),
            cmsgs: Vec::new(),
            groups: Vec::new(),
            gso: None,
        }
    }

    /// Scratch space that never uses GSO (one message per datagram).
    pub fn without_gso() -> Self {
        SendBatch {
            gso: Some(false),
            ..Self::new()
        }
    }

    /// Whether GSO is in use (None until the first send).
    pub fn gso(&self) -> Option<bool> {
        self.gso
    }

    /// Groups datagrams `next..count` into messages: runs of equal-sized datagrams (the last
    /// of a run may be shorter) when GSO is on, single datagrams otherwise.
    fn plan<'a, const N: usize>(
        &mut self,
        next: usize,
        count: usize,
        parts: &impl Fn(usize) -> [&'a [u8]; N],
    ) {
        self.groups.clear();
        let gso = self.gso == Some(true);
        let size = |i: usize| parts(i).iter().map(|p| p.len()).sum::<usize>();
        let mut i = next;
        while i < count {
            let seg = size(i);
            let mut n = 1;
            if gso && seg > 0 {
                let max = gso_segments(seg);
                while n < max && i + n < count {
                    let s = size(i + n);
                    if s > seg || s == 0 {
                        break;
                    }
                    n += 1;
                    if s < seg {
                        break;
                    }
                }
            }
            self.groups.push((i, n, seg));
            i += n;
        }
    }

    /// Sends `count` datagrams to `dest`, datagram `i` being the concatenation of the `N`
    /// slices that `parts(i)` returns (e.g. `[header, payload]`; empty slices are fine), in as
    /// few system calls as the kernel allows. Waits (cancellably, through `waker`) while the
    /// socket buffer is full. Datagrams the kernel refuses are counted in the report and
    /// skipped; when they are too large for the path, the report gives its MTU.
    pub fn send<'a, const N: usize>(
        &mut self,
        socket: &UdpSocket,
        dest: SocketAddr,
        count: usize,
        parts: impl Fn(usize) -> [&'a [u8]; N],
        waker: &Waker,
    ) -> io::Result<SendReport> {
        if self.gso.is_none() {
            self.gso = Some(socket.gso_supported());
        }
        let name = socket.dest_addr(dest);
        let mut report = SendReport::default();
        let mut next = 0usize;
        let mut errors = SendErrors::default();
        while next < count {
            self.plan(next, count, &parts);
            self.iov.clear();
            self.msgs.clear();
            self.cmsgs.clear();
            self.cmsgs.resize(self.groups.len(), [0; 8]);
            for &(first, n, _) in &self.groups {
                for i in first..first + n {
                    for p in parts(i) {
                        self.iov.push(libc::iovec {
                            iov_base: p.as_ptr() as *mut libc::c_void,
                            iov_len: p.len(),
                        });
                    }
                }
            }
            let mut iov_at = 0usize;
            let iov = self.iov.as_mut_ptr();
            let cmsgs = self.cmsgs.as_mut_ptr();
            for (g, &(_, n, seg)) in self.groups.iter().enumerate() {
                // SAFETY: an all-zero mmsghdr is a valid "no name, no control" message; the
                // offsets stay within `iov` (N entries per datagram) and `cmsgs` (one per
                // group), taken once above so that no reborrow invalidates them. The name
                // is only read by the kernel.
                let mut m: libc::mmsghdr = unsafe { std::mem::zeroed() };
                m.msg_hdr.msg_name = name.as_ptr() as *mut libc::c_void;
                m.msg_hdr.msg_namelen = name.len();
                m.msg_hdr.msg_iov = unsafe { iov.add(iov_at) };
                m.msg_hdr.msg_iovlen = N * n;
                iov_at += N * n;
                if n > 1 {
                    m.msg_hdr.msg_control = unsafe { cmsgs.add(g) }.cast();
                    // SAFETY: CMSG_SPACE/CMSG_LEN are pure arithmetic.
                    m.msg_hdr.msg_controllen = unsafe { libc::CMSG_SPACE(2) } as usize;
                    // SAFETY: msg_control points at 32 zeroed, 8-aligned bytes, more than
                    // CMSG_SPACE(2); FIRSTHDR returns its start, DATA a pointer inside it.
                    unsafe {
                        let c = libc::CMSG_FIRSTHDR(&m.msg_hdr);
                        (*c).cmsg_level = libc::SOL_UDP;
                        (*c).cmsg_type = UDP_SEGMENT;
                        (*c).cmsg_len = libc::CMSG_LEN(2) as usize;
                        std::ptr::write_unaligned(libc::CMSG_DATA(c).cast::<u16>(), seg as u16);
                    }
                }
                self.msgs.push(m);
            }
            // SAFETY: every iovec points into a slice borrowed for 'a, alive for this call;
            // msgs point into `self.iov`, `self.cmsgs` and `name`, untouched until the call
            // returns.
            let rc = unsafe {
                libc::sendmmsg(
                    socket.fd(),
                    self.msgs.as_mut_ptr(),
                    self.msgs.len() as libc::c_uint,
                    0,
                )
            };
            if rc > 0 {
                let sent = rc as usize;
                for (m, &(_, n, _)) in self.msgs[..sent].iter().zip(&self.groups) {
                    report.bytes += m.msg_len as usize;
                    report.sent += n;
                    next += n;
                }
                errors.sent();
                continue;
            }
            let err = io::Error::last_os_error();
            let head = self.groups.first().map_or(1, |g| g.1);
            if head > 1
                && matches!(
                    err.raw_os_error(),
                    Some(libc::EIO) | Some(libc::EINVAL) | Some(libc::EMSGSIZE)
                )
            {
                // The path cannot segment for us (no checksum offload, or segments larger
                // than its MTU): send one datagram per message from now on. Datagrams too
                // large for the path then fail on their own, with EMSGSIZE.
                self.gso = Some(false);
                continue;
            }
            match errors.handle(err, head, socket, dest, waker, &mut report)? {
                AfterError::Again => {}
                AfterError::Skip => next += head,
                AfterError::Interrupted => return Ok(report),
            }
        }
        Ok(report)
    }
}

/// Reusable receive buffers for `recvmmsg`: `batch` slots of `slot_size` bytes each.
///
/// With GRO enabled on the socket ([`UdpSocket::enable_gro`]), one slot may hold many
/// coalesced datagrams; [`get`](Self::get) and [`meta`](Self::meta) hand them out one by one
/// all the same.
pub struct RecvBatch {
    pub(super) buf: Vec<u8>,
    slot: usize,
    iov: Vec<libc::iovec>,
    msgs: Vec<libc::mmsghdr>,
    cmsgs: Vec<CmsgBuf>,
    names: Vec<libc::sockaddr_storage>,
    /// (start in `buf`, length) of each datagram received; length usize::MAX: truncated.
    pub(super) dgrams: Vec<(usize, usize)>,
    pub(super) metas: Vec<RecvMeta>,
    messages: usize,
}

// SAFETY: the raw pointers point into `self.buf`, `self.cmsgs` and `self.names`, are rebuilt before every
// call and only dereferenced by the kernel inside `recv`, while `self` is mutably borrowed.
unsafe impl Send for RecvBatch {}

impl std::fmt::Debug for RecvBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecvBatch")
            .field("batch", &self.msgs.capacity())
            .field("slot", &self.slot)
            .field("datagrams", &self.dgrams.len())
            .finish()
    }
}

impl RecvBatch {
    /// Buffers for up to `batch` messages of up to `slot_size` bytes per `recvmmsg`. With GRO
    /// the slot size should be 65536, the largest coalesced message.
    pub fn new(batch: usize, slot_size: usize) -> Self {
        let batch = batch.max(1);
        RecvBatch {
            buf: vec![0u8; batch * slot_size],
            slot: slot_size,
            iov: Vec::with_capacity(batch),
            msgs: Vec::with_capacity(batch),
            cmsgs: vec![[0; 8]; batch],
            // SAFETY: an all-zero sockaddr_storage is valid (family AF_UNSPEC).
            names: vec![unsafe { std::mem::zeroed() }; batch],
            dgrams: Vec::with_capacity(batch),
            metas: Vec::with_capacity(batch),
            messages: 0,
        }
    }

    /// Receives whatever is queued, up to the batch size, without blocking. Returns the number
    /// of datagrams (0 when nothing is queued).
    pub fn recv(&mut self, socket: &UdpSocket) -> io::Result<usize> {
        let batch = self.cmsgs.len();
        self.iov.clear();
        self.msgs.clear();
        self.dgrams.clear();
        self.metas.clear();
        self.messages = 0;
        // One base pointer per buffer, offsets from it: reborrowing a vector per element
        // would invalidate the pointers taken before it.
        let buf = self.buf.as_mut_ptr();
        for i in 0..batch {
            self.iov.push(libc::iovec {
                // SAFETY: slot i lies within `buf` (batch * slot bytes).
                iov_base: unsafe { buf.add(i * self.slot) }.cast(),
                iov_len: self.slot,
            });
        }
        let iov = self.iov.as_mut_ptr();
        let cmsgs = self.cmsgs.as_mut_ptr();
        let names = self.names.as_mut_ptr();
        for i in 0..batch {
            // SAFETY: an all-zero mmsghdr is a valid "no name, no control" message; `i` is
            // within `iov`, `cmsgs` and `names`, which hold `batch` elements.
            let mut m: libc::mmsghdr = unsafe { std::mem::zeroed() };
            m.msg_hdr.msg_name = unsafe { names.add(i) }.cast();
            m.msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as u32;
            m.msg_hdr.msg_iov = unsafe { iov.add(i) };
            m.msg_hdr.msg_iovlen = 1;
            m.msg_hdr.msg_control = unsafe { cmsgs.add(i) }.cast();
            m.msg_hdr.msg_controllen = std::mem::size_of::<CmsgBuf>();
            self.msgs.push(m);
        }
        loop {
            // SAFETY: each message points at one iovec into `self.buf` of `slot` bytes, at its
            // own control buffer and its own address; all live, unmoved, until the call
            // returns.
            let rc = unsafe {
                libc::recvmmsg(
                    socket.fd(),
                    self.msgs.as_mut_ptr(),
                    batch as libc::c_uint,
                    libc::MSG_DONTWAIT,
                    std::ptr::null_mut(),
                )
            };
            if rc >= 0 {
                self.messages = rc as usize;
                for i in 0..self.messages {
                    self.split(i);
                }
                return Ok(self.dgrams.len());
            }
            let err = io::Error::last_os_error();
            match err.raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::EAGAIN) => return Ok(0),
                // An ICMP error queued on the socket: not fatal for a receiver.
                Some(libc::ECONNREFUSED) => continue,
                _ => return Err(err),
            }
        }
    }

    /// Records the datagrams of message `i`: one, or several of `gso_size` bytes (the last
    /// may be shorter) when the kernel coalesced them.
    fn split(&mut self, i: usize) {
        let m = &self.msgs[i].msg_hdr;
        let start = i * self.slot;
        let len = (self.msgs[i].msg_len as usize).min(self.slot);
        let source = canonical(sockaddr_to_std(&self.names[i], m.msg_namelen));
        let mut seg = 0usize;
        let mut timestamp = None;
        // SAFETY: the kernel filled msg_control/msg_controllen for this message; the CMSG
        // macros stay within that length, and the values (an int, a timespec or a timeval)
        // are read unaligned from within their control message.
        unsafe {
            let mut c = libc::CMSG_FIRSTHDR(m);
            while !c.is_null() {
                let (level, kind) = ((*c).cmsg_level, (*c).cmsg_type);
                let data = libc::CMSG_DATA(c);
                if level == libc::SOL_UDP && kind == UDP_GRO {
                    seg = std::ptr::read_unaligned(data.cast::<libc::c_int>()).max(0) as usize;
                } else if level == libc::SOL_SOCKET && kind == libc::SCM_TIMESTAMPNS {
                    let ts = std::ptr::read_unaligned(data.cast::<libc::timespec>());
                    timestamp = wall_clock(ts.tv_sec as i64, ts.tv_nsec as i64);
                } else if level == libc::SOL_SOCKET && kind == libc::SCM_TIMESTAMP {
                    let tv = std::ptr::read_unaligned(data.cast::<libc::timeval>());
                    timestamp = wall_clock(tv.tv_sec as i64, tv.tv_usec as i64 * 1000);
                }
                c = libc::CMSG_NXTHDR(m, c);
            }
        }
        let stride = if seg == 0 || seg >= len { len } else { seg };
        let meta = |len| RecvMeta {
            source,
            len,
            stride,
            timestamp,
        };
        if m.msg_flags & libc::MSG_TRUNC != 0 {
            // A truncated datagram: marked so that the caller can count and drop it.
            self.dgrams.push((start, usize::MAX));
            self.metas.push(meta(len));
            return;
        }
        if stride >= len {
            self.dgrams.push((start, len));
            self.metas.push(meta(len));
            return;
        }
        let mut off = 0;
        while off < len {
            let n = stride.min(len - off);
            self.dgrams.push((start + off, n));
            self.metas.push(meta(n));
            off += n;
        }
    }

    /// Number of messages (system-level receives, each possibly coalesced) in the last
    /// [`recv`](Self::recv).
    pub fn messages(&self) -> usize {
        self.messages
    }
}

/// A kernel timestamp (seconds and nanoseconds since the Unix epoch) as a `SystemTime`.
fn wall_clock(secs: i64, nanos: i64) -> Option<SystemTime> {
    let secs = u64::try_from(secs).ok()?;
    let nanos = u32::try_from(nanos).ok().filter(|&n| n < 1_000_000_000)?;
    SystemTime::UNIX_EPOCH.checked_add(Duration::new(secs, nanos))
}

/// The address the kernel wrote into a `sockaddr_storage` (unspecified if it is neither IPv4
/// nor IPv6).
fn sockaddr_to_std(ss: &libc::sockaddr_storage, len: libc::socklen_t) -> SocketAddr {
    let len = len as usize;
    match libc::c_int::from(ss.ss_family) {
        libc::AF_INET if len >= std::mem::size_of::<libc::sockaddr_in>() => {
            // SAFETY: the family says the storage holds a sockaddr_in, which it is large and
            // aligned enough for.
            let a = unsafe { &*(ss as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            SocketAddr::V4(SocketAddrV4::new(
                Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr)),
                u16::from_be(a.sin_port),
            ))
        }
        libc::AF_INET6 if len >= std::mem::size_of::<libc::sockaddr_in6>() => {
            // SAFETY: as above, for a sockaddr_in6.
            let a = unsafe { &*(ss as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(a.sin6_addr.s6_addr),
                u16::from_be(a.sin6_port),
                a.sin6_flowinfo,
                a.sin6_scope_id,
            ))
        }
        _ => SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0),
    }
}

#[cfg(test)]
#[path = "linux_tests.rs"]
mod tests;
