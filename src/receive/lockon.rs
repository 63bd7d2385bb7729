// SPDX-License-Identifier: MPL-2.0
//! Lock-on: which sender's session a receiver follows. A receiver follows one session at a
//! time (its id and the address it sends from, whatever the track: PROTOCOL §8.2);
//! everything but stream info counts only from it, so a flood of forged datagrams with
//! other ids cannot touch the stream. Another session's complete stream info takes over
//! only once the one followed has ended (EOS on every track followed) or fallen silent for
//! [`SESSION_IDLE`]. I/O-free, driven by `now`.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// A session silent this long (or ended with EOS) may be replaced by another session's
/// complete stream info on the same port. Short, so that a restarted sender (which picks a
/// new session id) is followed within about one stream info interval (250 ms in
/// `videoipsink`); long enough that a sender sending at least every 200 ms cannot be pushed
/// off its port by someone else's stream info.
pub const SESSION_IDLE: Duration = Duration::from_millis(200);

/// Who sent a datagram: a receiver follows one of these at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Source {
    /// The sender's session id.
    pub session: u64,
    /// The address it sends from.
    pub from: SocketAddr,
}

/// The session followed, and whether another may take over.
#[derive(Debug, Clone, Default)]
pub struct LockOn {
    locked: Option<Source>,
    /// Whether any session was ever locked on to (a later one starts discontinuous).
    had_lock: bool,
    /// When the session followed last sent anything.
    last_seen: Option<Instant>,
    /// The session followed ended its stream.
    ended: bool,
}

impl LockOn {
    /// The session followed, if any.
    pub fn locked(&self) -> Option<Source> {
        self.locked
    }

    /// True when `source` is the session followed.
    pub fn follows(&self, source: Source) -> bool {
        self.locked == Some(source)
    }

    /// Notes a datagram of the session followed.
    pub fn seen(&mut self, now: Instant) {
        self.last_seen = Some(now);
    }

    /// True when another session's complete stream info may lock on now: nothing is
    /// followed, or the session followed ended or fell silent for [`SESSION_IDLE`].
    pub fn open_to_others(&self, now: Instant) -> bool {
        self.locked.is_none()
            || self.ended
            || self
                .last_seen
                .is_none_or(|t| now.saturating_duration_since(t) >= SESSION_IDLE)
    }

    /// Follows `source` from now on. True when another session was followed before (the new
    /// stream starts discontinuous).
    pub fn lock(&mut self, source: Source, now: Instant) -> bool {
        self.locked = Some(source);
        self.last_seen = Some(now);
        self.ended = false;
        std::mem::replace(&mut self.had_lock, true)
    }

    /// Follows nothing (its caps could not be used): the next valid stream info, from it or
    /// from another sender, locks on afresh.
    pub fn release(&mut self) {
        self.locked = None;
    }

    /// Notes that the session followed ended its stream.
    pub fn end(&mut self) {
        self.ended = true;
    }

    /// Notes that the session followed goes on after all (a track of it locked on after
    /// the others had ended).
    pub fn resume(&mut self) {
        self.ended = false;
    }

    /// True when the session followed ended its stream.
    pub fn ended(&self) -> bool {
        self.ended
    }
}

#[cfg(test)]
#[path = "lockon_tests.rs"]
mod tests;
