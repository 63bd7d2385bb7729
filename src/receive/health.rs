// SPDX-License-Identifier: MPL-2.0
//! What a user must act on: once per [`HEALTH_INTERVAL`], the counters are compared with
//! those of the last look, and frames dropped for a cause the user can remove become a
//! [`Warning`]: frames larger than allowed, a reassembly window too short for the datagrams
//! that came late, or loss on the way. I/O-free, driven by `now`.

use super::Stats;
use std::time::{Duration, Instant};

/// How often the counters are looked at (and so the most often each warning comes).
pub const HEALTH_INTERVAL: Duration = Duration::from_secs(2);

/// A problem for the user, with the figures of the last [`HEALTH_INTERVAL`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Warning {
    /// Frames were dropped incomplete while some of their datagrams came after the window
    /// (the fix: a longer reassembly window).
    WindowTooShort {
        /// Frames dropped.
        frames: u64,
        /// Datagrams that came too late.
        late: u64,
    },
    /// Frames were dropped incomplete because datagrams were lost (the fix: the network, or
    /// a larger receive buffer).
    Loss {
        /// Frames dropped.
        frames: u64,
        /// Datagrams lost.
        lost: u64,
    },
    /// With a passphrase: datagrams came without an authentication tag (the sender has no
    /// passphrase, or they are not videoip's), and were dropped.
    Unprotected {
        /// Datagrams dropped so far.
        datagrams: u64,
        /// Where the latest came from.
        from: std::net::SocketAddr,
    },
    /// With a passphrase: datagrams did not authenticate (another passphrase or `pbkeylen`
    /// at the sender, or forged), and were dropped.
    BadTag {
        /// Datagrams dropped so far.
        datagrams: u64,
        /// Where the latest came from.
        from: std::net::SocketAddr,
    },
    /// Without a passphrase: the stream is encrypted, and was dropped.
    Encrypted {
        /// Datagrams dropped so far.
        datagrams: u64,
        /// Where the latest came from.
        from: std::net::SocketAddr,
    },
    /// Datagrams of frames larger than the maximum frame size were refused (the fix: a
    /// larger maximum).
    FrameTooLarge {
        /// Datagrams refused.
        datagrams: u64,
        /// The largest frame length they claimed.
        largest: u32,
    },
}

/// When the counters were last looked at, and what they were then.
#[derive(Debug, Clone, Default)]
pub struct Health {
    at: Option<Instant>,
    prev: Stats,
}

impl Health {
    /// Looks at `stats` if [`HEALTH_INTERVAL`] has passed since the last look (the first
    /// call only starts the interval), and gives the warnings due.
    pub fn check(&mut self, now: Instant, stats: Stats) -> Vec<Warning> {
        let Some(at) = self.at else {
            self.at = Some(now);
            return Vec::new();
        };
        if now.saturating_duration_since(at) < HEALTH_INTERVAL {
            return Vec::new();
        }
        let (s, p) = (stats, std::mem::replace(&mut self.prev, stats));
        self.at = Some(now);
        let mut warnings = Vec::new();
        let too_large = s.datagrams_too_large.saturating_sub(p.datagrams_too_large);
        if too_large > 0 {
            warnings.push(Warning::FrameTooLarge {
                datagrams: too_large,
                largest: s.largest_refused_frame,
            });
        }
        let frames = s.frames_dropped.saturating_sub(p.frames_dropped);
        if frames == 0 {
            return warnings;
        }
        let late = s.datagrams_late.saturating_sub(p.datagrams_late);
        let lost = s.datagrams_lost.saturating_sub(p.datagrams_lost);
        if late > 0 {
            warnings.push(Warning::WindowTooShort { frames, late });
        } else if lost > 0 {
            warnings.push(Warning::Loss { frames, lost });
        }
        warnings
    }
}

#[cfg(test)]
#[path = "health_tests.rs"]
mod tests;
