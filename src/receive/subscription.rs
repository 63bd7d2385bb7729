// SPDX-License-Identifier: MPL-2.0
//! Subscription (PROTOCOL §6.4): a receiver that names a sender to subscribe to sends it a
//! SUBSCRIBE every [`SUBSCRIBE_INTERVAL`], each a lease of [`SUBSCRIBE_LEASE`]; the sender
//! sends to it by unicast while a lease holds. When the target changes (a source found by
//! name moved) the old sender is left at once with a zero lease and the new one subscribed
//! to; when the receiver stops, it leaves the same way. I/O-free, driven by `now`.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// How often a subscriber renews its subscription...
pub const SUBSCRIBE_INTERVAL: Duration = Duration::from_secs(1);
/// ...and for how long each renewal holds: a receiver that goes away without a word stops
/// costing its sender within this.
pub const SUBSCRIBE_LEASE: Duration = Duration::from_secs(5);

/// With several candidates, how long one is tried without a stream from it that this
/// receiver took (locked on to: with a passphrase, one that authenticates) before the next
/// is: a source found by name may have an address that does not reach it (a link-local
/// one), or a forged announcement may have put an attacker's first.
pub const TRY_NEXT_AFTER: Duration = Duration::from_secs(2);

/// Whom to subscribe to, and when the subscription was last sent.
#[derive(Debug, Clone, Default)]
pub struct Subscription {
    /// The senders to try, in order of preference.
    candidates: Vec<SocketAddr>,
    /// The one tried now.
    current: usize,
    target: Option<SocketAddr>,
    /// Since when the target was tried, or last heard from (a stream taken from it).
    heard: Option<Instant>,
    /// The sender subscribed to, and when the subscription was last sent (renewed).
    subscribed: Option<(SocketAddr, Instant)>,
}

impl Subscription {
    /// Subscribes to `target` from now on (None: to nobody).
    pub fn set_target(&mut self, target: Option<SocketAddr>) {
        self.set_candidates(target.into_iter().collect());
    }

    /// Subscribes to the first of `candidates` from now on (or goes on with the target if
    /// it is among them), and to the next when one gives no stream for [`TRY_NEXT_AFTER`]
    /// (empty: to nobody). The same list again changes nothing.
    pub fn set_candidates(&mut self, candidates: Vec<SocketAddr>) {
        if candidates == self.candidates {
            return;
        }
        // A target still among them is kept, with its time: a list that only grew (another
        // source of the name found) does not start the tries over.
        match self
            .target
            .and_then(|t| candidates.iter().position(|c| *c == t))
        {
            Some(i) => self.current = i,
            None => {
                self.target = candidates.first().copied();
                self.current = 0;
                self.heard = None;
            }
        }
        self.candidates = candidates;
    }

    /// A stream from `from` was taken (a datagram of the session locked on to).
    pub fn heard_from(&mut self, from: SocketAddr, now: Instant) {
        if self.target == Some(from) {
            self.heard = Some(now);
        }
    }

    /// Moves on to the next candidate when the target gave nothing for [`TRY_NEXT_AFTER`].
    fn try_next(&mut self, now: Instant) {
        if self.target.is_none() {
            return;
        }
        let since = *self.heard.get_or_insert(now);
        if self.candidates.len() > 1 && now.saturating_duration_since(since) >= TRY_NEXT_AFTER {
            self.current = (self.current + 1) % self.candidates.len();
            self.target = self.candidates.get(self.current).copied();
            self.heard = Some(now);
        }
    }

    /// The SUBSCRIBE to send now, if one is due: where, and for what lease (zero:
    /// unsubscribe). Call until None: a change of target gives the old sender's zero lease,
    /// then the new sender's lease.
    pub fn poll(&mut self, now: Instant) -> Option<(SocketAddr, Duration)> {
        self.try_next(now);
        match (self.subscribed, self.target) {
            (Some((old, _)), new) if Some(old) != new => {
                self.subscribed = None;
                return Some((old, Duration::ZERO));
            }
            (Some((_, t)), _) if now.saturating_duration_since(t) < SUBSCRIBE_INTERVAL => {
                return None;
            }
            _ => {}
        }
        let to = self.target?;
        self.subscribed = Some((to, now));
        Some((to, SUBSCRIBE_LEASE))
    }

    /// The sender subscribed to (or to be), if any.
    pub fn target(&self) -> Option<SocketAddr> {
        self.target
    }

    /// Renews at the next [`poll`](Self::poll) (a cookie came: the sender waits for it).
    pub fn renew_now(&mut self) {
        if self.subscribed.map(|(a, _)| a) == self.target {
            self.subscribed = None;
        }
    }

    /// When the next renewal is due (a change of target is due at once: poll after it).
    pub fn next_deadline(&self) -> Option<Instant> {
        let next = (self.candidates.len() > 1)
            .then(|| self.heard.map(|t| t + TRY_NEXT_AFTER))
            .flatten();
        [self.subscribed.map(|(_, t)| t + SUBSCRIBE_INTERVAL), next]
            .into_iter()
            .flatten()
            .min()
    }
}

#[cfg(test)]
#[path = "subscription_tests.rs"]
mod tests;
