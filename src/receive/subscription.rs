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

/// Whom to subscribe to, and when the subscription was last sent.
#[derive(Debug, Clone, Default)]
pub struct Subscription {
    target: Option<SocketAddr>,
    /// The sender subscribed to, and when the subscription was last sent (renewed).
    subscribed: Option<(SocketAddr, Instant)>,
}

impl Subscription {
    /// Subscribes to `target` from now on (None: to nobody).
    pub fn set_target(&mut self, target: Option<SocketAddr>) {
        self.target = target;
    }

    /// The SUBSCRIBE to send now, if one is due: where, and for what lease (zero:
    /// unsubscribe). Call until None: a change of target gives the old sender's zero lease,
    /// then the new sender's lease.
    pub fn poll(&mut self, now: Instant) -> Option<(SocketAddr, Duration)> {
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
        self.subscribed.map(|(_, t)| t + SUBSCRIBE_INTERVAL)
    }
}

#[cfg(test)]
#[path = "subscription_tests.rs"]
mod tests;
