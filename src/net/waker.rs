// SPDX-License-Identifier: MPL-2.0
//! A cancellable wait on a socket: an eventfd woken from another thread, and a
//! nanosecond-precision `ppoll`. Linux only for now; apart from the socket code so that the
//! portable socket fallback can use it too.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Instant;

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
