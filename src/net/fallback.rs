// SPDX-License-Identifier: MPL-2.0
//! The portable I/O backend: one `send_to` / `recv_from` per datagram, no GSO, no GRO, no
//! kernel receive timestamps. Used on systems other than Linux, and on Linux with the
//! `portable-net` feature (which is how its tests run).

use super::sockopt::Timestamps;
use super::{canonical, AfterError, RecvMeta, SendErrors, SendReport, UdpSocket, Waker};
use std::io;
use std::mem::MaybeUninit;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::RawFd;

/// No GSO here.
pub(super) fn probe_gso(_fd: RawFd) -> bool {
    false
}

/// No GRO here.
pub(super) fn enable_gro(_fd: RawFd) -> bool {
    false
}

/// No kernel timestamps here.
pub(super) fn enable_timestamps(_fd: RawFd) -> Timestamps {
    Timestamps::Off
}

/// Scratch space for sending: one datagram per system call, its parts copied together.
#[derive(Debug, Default)]
pub struct SendBatch {
    scratch: Vec<u8>,
}

impl SendBatch {
    /// Empty scratch space.
    pub fn new() -> Self {
        Self::default()
    }

    /// The same as [`new`](Self::new): this backend never uses GSO.
    pub fn without_gso() -> Self {
        Self::default()
    }

    /// Whether GSO is in use: never.
    pub fn gso(&self) -> Option<bool> {
        Some(false)
    }

    /// Sends `count` datagrams to `dest`, datagram `i` being the concatenation of the `N`
    /// slices that `parts(i)` returns (empty slices are fine), one system call each. Waits
    /// (cancellably, through `waker`) while the socket buffer is full. Datagrams the kernel
    /// refuses are counted in the report and skipped; when they are too large for the path,
    /// the report gives its MTU.
    pub fn send<'a, const N: usize>(
        &mut self,
        socket: &UdpSocket,
        dest: SocketAddr,
        count: usize,
        parts: impl Fn(usize) -> [&'a [u8]; N],
        waker: &Waker,
    ) -> io::Result<SendReport> {
        let name = socket.dest_addr(dest);
        let mut report = SendReport::default();
        let mut i = 0usize;
        let mut errors = SendErrors::default();
        while i < count {
            self.scratch.clear();
            for p in parts(i) {
                self.scratch.extend_from_slice(p);
            }
            let err = match socket.sock.send_to(&self.scratch, &name) {
                Ok(n) => {
                    report.sent += 1;
                    report.bytes += n;
                    i += 1;
                    errors.sent();
                    continue;
                }
                Err(e) => e,
            };
            match errors.handle(err, 1, socket, dest, waker, &mut report)? {
                AfterError::Again => {}
                AfterError::Skip => i += 1,
                AfterError::Interrupted => return Ok(report),
            }
        }
        Ok(report)
    }
}

/// Reusable receive buffers: up to `batch` datagrams of up to `slot_size` bytes per
/// [`recv`](Self::recv), one system call each.
#[derive(Debug)]
pub struct RecvBatch {
    pub(super) buf: Vec<u8>,
    slot: usize,
    batch: usize,
    /// (start in `buf`, length) of each datagram received; length usize::MAX: truncated.
    pub(super) dgrams: Vec<(usize, usize)>,
    pub(super) metas: Vec<RecvMeta>,
}

impl RecvBatch {
    /// Buffers for up to `batch` datagrams of up to `slot_size` bytes.
    pub fn new(batch: usize, slot_size: usize) -> Self {
        let batch = batch.max(1);
        RecvBatch {
            buf: vec![0u8; batch * slot_size],
            slot: slot_size,
            batch,
            dgrams: Vec::with_capacity(batch),
            metas: Vec::with_capacity(batch),
        }
    }

    /// Receives whatever is queued, up to the batch size, without blocking. Returns the number
    /// of datagrams (0 when nothing is queued).
    pub fn recv(&mut self, socket: &UdpSocket) -> io::Result<usize> {
        self.dgrams.clear();
        self.metas.clear();
        while self.dgrams.len() < self.batch {
            let start = self.dgrams.len() * self.slot;
            let slot = &mut self.buf[start..start + self.slot];
            // SAFETY: u8 and MaybeUninit<u8> have the same layout, and the kernel only writes
            // initialised bytes into an already initialised buffer.
            let slot = unsafe { &mut *(slot as *mut [u8] as *mut [MaybeUninit<u8>]) };
            let mut bufs = [socket2::MaybeUninitSlice::new(slot)];
            match socket.sock.recv_from_vectored(&mut bufs) {
                Ok((n, flags, addr)) => {
                    let source = addr
                        .as_socket()
                        .map_or(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0), |a| {
                            canonical(a)
                        });
                    let len = n.min(self.slot);
                    self.dgrams.push((
                        start,
                        if flags.is_truncated() {
                            usize::MAX
                        } else {
                            len
                        },
                    ));
                    self.metas.push(RecvMeta {
                        source,
                        len,
                        stride: len,
                        timestamp: None,
                    });
                }
                Err(e) => match e.raw_os_error() {
                    // An ICMP error queued on the socket: not fatal for a receiver.
                    Some(libc::EINTR) | Some(libc::ECONNREFUSED) => {}
                    _ if e.kind() == io::ErrorKind::WouldBlock => break,
                    _ => return Err(e),
                },
            }
        }
        Ok(self.dgrams.len())
    }

    /// Number of system-level receives in the last [`recv`](Self::recv): one per datagram.
    pub fn messages(&self) -> usize {
        self.dgrams.len()
    }
}
