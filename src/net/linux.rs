// SPDX-License-Identifier: MPL-2.0
//! Linux system calls behind the socket layer: batched `sendmmsg`/`recvmmsg`, an eventfd
//! waker and a nanosecond-precision `ppoll` wait.

use super::{Deadline, Receiver, Sender, Wait};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Instant;

pub(super) fn setsockopt_int(
    fd: RawFd,
    level: libc::c_int,
    name: libc::c_int,
    val: libc::c_int,
) -> io::Result<()> {
    // SAFETY: the option value is a plain int that lives across the call.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&val as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
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
    // SAFETY: `mreqn` is a valid ip_mreqn that lives across the call.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::IPPROTO_IP,
            libc::IP_MULTICAST_IF,
            (&mreqn as *const libc::ip_mreqn).cast(),
            std::mem::size_of::<libc::ip_mreqn>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Wakes a thread blocked in [`Waker::wait`] from another thread, and keeps waking every
/// later wait until [`Waker::reset`]: the element's `unlock()` / `unlock_stop()` pair.
#[derive(Debug)]
pub struct Waker {
    fd: OwnedFd,
    woken: std::sync::atomic::AtomicBool,
}

impl Waker {
    /// Creates a waker (an eventfd).
    pub fn new() -> io::Result<Self> {
        // SAFETY: eventfd has no memory arguments; a non-negative result is a new fd we own.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just returned by eventfd and is owned by nobody else.
        Ok(Waker {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
            woken: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// Makes every wait return [`Wait::Woken`] until [`reset`](Self::reset).
    pub fn wake(&self) {
        self.woken.store(true, std::sync::atomic::Ordering::SeqCst);
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a live u64. A full counter (EAGAIN) is still readable,
        // which is all that matters.
        unsafe {
            libc::write(self.fd.as_raw_fd(), (&one as *const u64).cast(), 8);
        }
    }

    /// Clears a previous [`wake`](Self::wake).
    pub fn reset(&self) {
        self.woken.store(false, std::sync::atomic::Ordering::SeqCst);
        let mut v: u64 = 0;
        // SAFETY: reads at most 8 bytes into a live u64; EAGAIN (not woken) is fine.
        unsafe {
            libc::read(self.fd.as_raw_fd(), (&mut v as *mut u64).cast(), 8);
        }
    }

    /// True between [`wake`](Self::wake) and [`reset`](Self::reset), without a system call.
    pub fn is_woken(&self) -> bool {
        self.woken.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Waits until `fd` has one of `events` (`libc::POLLIN`/`POLLOUT`), the waker is woken, or
    /// the deadline passes. With `fd` None it only sleeps, cancellably.
    pub fn wait(
        &self,
        fd: Option<RawFd>,
        events: libc::c_short,
        deadline: Deadline,
    ) -> io::Result<Wait> {
        let mut fds = [
            libc::pollfd {
                fd: self.fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: fd.unwrap_or(-1),
                events,
                revents: 0,
            },
        ];
        loop {
            let ts = deadline.map(|d| {
                let left = d.saturating_duration_since(Instant::now());
                libc::timespec {
                    tv_sec: left.as_secs() as libc::time_t,
                    tv_nsec: left.subsec_nanos() as libc::c_long,
                }
            });
            let ts_ptr = ts
                .as_ref()
                .map_or(std::ptr::null(), |t| t as *const libc::timespec);
            // SAFETY: `fds` and `ts` outlive the call; a negative fd is ignored by ppoll.
            let rc = unsafe { libc::ppoll(fds.as_mut_ptr(), 2, ts_ptr, std::ptr::null()) };
            if rc < 0 {
                let err = io::Error::last_os_error();
                if err.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(err);
            }
            if fds[0].revents != 0 {
                return Ok(Wait::Woken);
            }
            if rc > 0 && fds[1].revents != 0 {
                return Ok(Wait::Ready);
            }
            if rc == 0 {
                return Ok(Wait::TimedOut);
            }
        }
    }
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
    /// True when the waker interrupted the send (the rest was not sent).
    pub interrupted: bool,
}

/// `UDP_SEGMENT` (Linux ≥ 4.18): a send carries many equal-sized datagrams, cut by the
/// kernel or the NIC (generic segmentation offload).
const UDP_SEGMENT: libc::c_int = 103;
/// `UDP_GRO` (Linux ≥ 5.0): a receive may return many coalesced datagrams at once, with
/// their size in a control message.
const UDP_GRO: libc::c_int = 104;
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

/// Whether the kernel takes `UDP_SEGMENT` on this socket.
pub(super) fn probe_gso(fd: RawFd) -> bool {
    setsockopt_int(fd, libc::SOL_UDP, UDP_SEGMENT, 0).is_ok()
}

/// Asks the kernel to coalesce received datagrams (`UDP_GRO`). False where it cannot.
pub(super) fn enable_gro(fd: RawFd) -> bool {
    setsockopt_int(fd, libc::SOL_UDP, UDP_GRO, 1).is_ok()
}

/// Control-message space for one `u16` or `int` (UDP_SEGMENT / UDP_GRO), 8-byte aligned.
type CmsgBuf = [u64; 4];

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
// borrows every pointed-to slice for its whole duration; between calls they are dangling
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
    fn plan<'a>(&mut self, next: usize, count: usize, parts: &impl Fn(usize) -> [&'a [u8]; 2]) {
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

    /// Sends `count` datagrams, datagram `i` being the concatenation of the slices that
    /// `parts(i)` returns (typically `[header, payload]`), in as few system calls as the kernel
    /// allows. Waits (cancellably, through `waker`) while the socket buffer is full.
    /// Datagrams the kernel refuses are counted in the report and skipped.
    pub fn send<'a>(
        &mut self,
        sender: &Sender,
        count: usize,
        parts: impl Fn(usize) -> [&'a [u8]; 2],
        waker: &Waker,
    ) -> io::Result<SendReport> {
        if self.gso.is_none() {
            self.gso = Some(sender.gso_supported());
        }
        let mut report = SendReport::default();
        let mut next = 0usize;
        // Bound the retries on a socket that keeps failing so a send can never spin forever.
        let mut spins = 0u32;
        let mut retried = false;
        while next < count {
            self.plan(next, count, &parts);
            self.iov.clear();
            self.msgs.clear();
            self.cmsgs.clear();
            self.cmsgs.resize(self.groups.len(), [0; 4]);
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
                // offsets stay within `iov` (2 entries per datagram) and `cmsgs` (one per
                // group), taken once above so that no reborrow invalidates them.
                let mut m: libc::mmsghdr = unsafe { std::mem::zeroed() };
                m.msg_hdr.msg_iov = unsafe { iov.add(iov_at) };
                m.msg_hdr.msg_iovlen = 2 * n;
                iov_at += 2 * n;
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
            // msgs point into `self.iov` and `self.cmsgs`, untouched until the call returns.
            let rc = unsafe {
                libc::sendmmsg(
                    sender.fd(),
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
                spins = 0;
                retried = false;
                continue;
            }
            let err = io::Error::last_os_error();
            let head = self.groups.first().map_or(1, |g| g.1);
            match err.raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::EAGAIN) | Some(libc::ENOBUFS) => {
                    spins += 1;
                    if spins > 1000 {
                        return Err(err);
                    }
                    let deadline = Some(Instant::now() + std::time::Duration::from_millis(100));
                    if waker.wait(Some(sender.fd()), libc::POLLOUT, deadline)? == Wait::Woken {
                        report.interrupted = true;
                        return Ok(report);
                    }
                }
                Some(libc::EIO) | Some(libc::EINVAL) | Some(libc::EMSGSIZE) if head > 1 => {
                    // The path cannot segment for us (no checksum offload, or segments larger
                    // than its MTU, which plain sends leave to IP fragmentation): send one
                    // datagram per message from now on.
                    self.gso = Some(false);
                }
                Some(libc::ECONNREFUSED) if !retried => {
                    // An ICMP "port unreachable" from earlier (no receiver was listening then)
                    // is reported on this call and cleared by it; the datagrams themselves
                    // were not at fault, so they are sent again once.
                    report.errors += 1;
                    report.first_error.get_or_insert(err.kind());
                    retried = true;
                }
                _ => {
                    // The message at the head was refused (e.g. EMSGSIZE): count its
                    // datagrams and go on with the rest.
                    report.errors += head;
                    report.first_error.get_or_insert(err.kind());
                    next += head;
                    retried = false;
                }
            }
        }
        Ok(report)
    }
}

/// Reusable receive buffers for `recvmmsg`: `batch` slots of `slot_size` bytes each.
///
/// With GRO enabled on the socket ([`Receiver::enable_gro`]), one slot may hold many
/// coalesced datagrams; [`get`](Self::get) hands them out one by one all the same.
pub struct RecvBatch {
    buf: Vec<u8>,
    slot: usize,
    iov: Vec<libc::iovec>,
    msgs: Vec<libc::mmsghdr>,
    cmsgs: Vec<CmsgBuf>,
    /// (start in `buf`, length) of each datagram received; length usize::MAX: truncated.
    dgrams: Vec<(usize, usize)>,
    messages: usize,
}

// SAFETY: the raw pointers point into `self.buf` and `self.cmsgs`, are rebuilt before every
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
            cmsgs: vec![[0; 4]; batch],
            dgrams: Vec::with_capacity(batch),
            messages: 0,
        }
    }

    /// Receives whatever is queued, up to the batch size, without blocking. Returns the number
    /// of datagrams (0 when nothing is queued).
    pub fn recv(&mut self, receiver: &Receiver) -> io::Result<usize> {
        let batch = self.cmsgs.len();
        self.iov.clear();
        self.msgs.clear();
        self.dgrams.clear();
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
        for i in 0..batch {
            // SAFETY: an all-zero mmsghdr is a valid "no name, no control" message; `i` is
            // within both `iov` and `cmsgs`, which hold `batch` elements.
            let mut m: libc::mmsghdr = unsafe { std::mem::zeroed() };
            m.msg_hdr.msg_iov = unsafe { iov.add(i) };
            m.msg_hdr.msg_iovlen = 1;
            m.msg_hdr.msg_control = unsafe { cmsgs.add(i) }.cast();
            m.msg_hdr.msg_controllen = std::mem::size_of::<CmsgBuf>();
            self.msgs.push(m);
        }
        loop {
            // SAFETY: each message points at one iovec into `self.buf` of `slot` bytes and at
            // its own control buffer; all live, unmoved, until the call returns.
            let rc = unsafe {
                libc::recvmmsg(
                    receiver.fd(),
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
        if m.msg_flags & libc::MSG_TRUNC != 0 {
            // A truncated datagram: marked so that the caller can count and drop it.
            self.dgrams.push((start, usize::MAX));
            return;
        }
        let len = (self.msgs[i].msg_len as usize).min(self.slot);
        let mut seg = 0usize;
        // SAFETY: the kernel filled msg_control/msg_controllen for this message; the CMSG
        // macros stay within that length, and the GRO value is an int we read unaligned.
        unsafe {
            let mut c = libc::CMSG_FIRSTHDR(m);
            while !c.is_null() {
                if (*c).cmsg_level == libc::SOL_UDP && (*c).cmsg_type == UDP_GRO {
                    seg = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<libc::c_int>()).max(0)
                        as usize;
                }
                c = libc::CMSG_NXTHDR(m, c);
            }
        }
        if seg == 0 || seg >= len {
            self.dgrams.push((start, len));
            return;
        }
        let mut off = 0;
        while off < len {
            let n = seg.min(len - off);
            self.dgrams.push((start + off, n));
            off += n;
        }
    }

    /// Datagram `i` of the last [`recv`](Self::recv), or None if it was truncated.
    pub fn get(&self, i: usize) -> Option<&[u8]> {
        let &(start, len) = self.dgrams.get(i)?;
        if len == usize::MAX {
            return None;
        }
        self.buf.get(start..start + len)
    }

    /// Number of datagrams the last [`recv`](Self::recv) returned.
    pub fn len(&self) -> usize {
        self.dgrams.len()
    }

    /// True if the last [`recv`](Self::recv) returned nothing.
    pub fn is_empty(&self) -> bool {
        self.dgrams.is_empty()
    }

    /// Number of messages (system-level receives, each possibly coalesced) in the last
    /// [`recv`](Self::recv).
    pub fn messages(&self) -> usize {
        self.messages
    }
}

#[cfg(test)]
#[path = "linux_tests.rs"]
mod tests;
