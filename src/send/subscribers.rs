// SPDX-License-Identifier: MPL-2.0
//! The receivers that subscribed to a sender: each gets the stream by unicast until its lease
//! lapses or it unsubscribes. I/O-free, driven by `now`.

use super::receivers::MAX_RECEIVERS;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Longest lease a subscriber may ask for: one that went away without a word is dropped
/// within it.
pub const MAX_LEASE: Duration = Duration::from_secs(30);

/// The receivers that subscribed to a sender with no fixed destination: each gets the
/// stream by unicast until its lease lapses or it unsubscribes. An I/O-free table driven by
/// `now`, bounded by `max` entries.
#[derive(Debug)]
pub struct Subscribers {
    max: usize,
    /// Subscriber, and when its lease ends, in order of subscription.
    leases: Vec<(SocketAddr, Instant)>,
    /// Changes whenever the set of subscribers does.
    generation: u64,
    /// Subscriptions refused because the table was full.
    pub refused: u64,
}

impl Subscribers {
    /// An empty table of at most `max` subscribers (at least 1, at most [`MAX_RECEIVERS`]).
    pub fn new(max: usize) -> Self {
        Subscribers {
            max: max.clamp(1, MAX_RECEIVERS),
            leases: Vec::new(),
            generation: 0,
            refused: 0,
        }
    }

    /// Takes a SUBSCRIBE from `from` asking for a lease of `lease` (zero: unsubscribe),
    /// capped at [`MAX_LEASE`]. False when refused (the table is full).
    pub fn subscribe(&mut self, from: SocketAddr, lease: Duration, now: Instant) -> bool {
        self.expire(now);
        let pos = self.leases.iter().position(|(a, _)| *a == from);
        if lease.is_zero() {
            if let Some(i) = pos {
                self.leases.remove(i);
                self.generation += 1;
            }
            return true;
        }
        let until = now + lease.min(MAX_LEASE);
        match pos {
            Some(i) => self.leases[i].1 = until,
            None if self.leases.len() >= self.max => {
                self.refused += 1;
                return false;
            }
            None => {
                self.leases.push((from, until));
                self.generation += 1;
            }
        }
        true
    }

    /// Drops `addr`'s subscription (it could not be sent to). False when it had none.
    pub fn remove(&mut self, addr: SocketAddr) -> bool {
        let before = self.leases.len();
        self.leases.retain(|(a, _)| *a != addr);
        let removed = self.leases.len() != before;
        if removed {
            self.generation += 1;
        }
        removed
    }

    /// Drops the subscribers whose lease has lapsed.
    pub fn expire(&mut self, now: Instant) {
        let before = self.leases.len();
        self.leases.retain(|(_, until)| *until > now);
        if self.leases.len() != before {
            self.generation += 1;
        }
    }

    /// The subscribers now, after expiring lapsed leases, and the table's generation.
    pub fn current(&mut self, now: Instant) -> (Vec<SocketAddr>, u64) {
        self.expire(now);
        (
            self.leases.iter().map(|(a, _)| *a).collect(),
            self.generation,
        )
    }

    /// The table's generation: it changes whenever a subscriber comes or goes.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// True when `addr` holds a lease (lapsed ones included until the next expiry).
    pub fn contains(&self, addr: SocketAddr) -> bool {
        self.leases.iter().any(|(a, _)| *a == addr)
    }

    /// Number of subscribers (lapsed leases included until the next expiry).
    pub fn len(&self) -> usize {
        self.leases.len()
    }

    /// True when nobody subscribed.
    pub fn is_empty(&self) -> bool {
        self.leases.is_empty()
    }
}

#[cfg(test)]
#[path = "subscribers_tests.rs"]
mod tests;
