// SPDX-License-Identifier: MPL-2.0
//! The receivers that subscribed to a sender: each gets the stream by unicast until its lease
//! lapses or it unsubscribes. I/O-free, driven by `now`.

use super::receivers::MAX_RECEIVERS;
use crate::protocol::tracks::MAX_TRACKS;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Longest lease a subscriber may ask for: one that went away without a word is dropped
/// within it.
pub const MAX_LEASE: Duration = Duration::from_secs(30);

/// One subscriber: where, until when, and the tracks it chose (empty: all).
#[derive(Debug)]
struct Lease {
    addr: SocketAddr,
    until: Instant,
    tracks: Vec<u16>,
}

/// The receivers that subscribed to a sender with no fixed destination: each gets the
/// stream (the tracks it chose) by unicast until its lease lapses or it unsubscribes. An
/// I/O-free table driven by `now`, bounded by `max` entries of at most [`MAX_TRACKS`]
/// track ids each.
#[derive(Debug)]
pub struct Subscribers {
    max: usize,
    /// The subscribers, in order of subscription.
    leases: Vec<Lease>,
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
    /// capped at [`MAX_LEASE`], for every track. False when refused (the table is full).
    pub fn subscribe(&mut self, from: SocketAddr, lease: Duration, now: Instant) -> bool {
        self.subscribe_tracks(from, lease, &[], now)
    }

    /// Takes a SUBSCRIBE from `from` asking for a lease of `lease` (zero: unsubscribe),
    /// capped at [`MAX_LEASE`], for the tracks `tracks` (empty: all; a renewal's list
    /// replaces the one before; ids past the first [`MAX_TRACKS`] distinct ones are not
    /// kept). False when refused (the table is full).
    pub fn subscribe_tracks(
        &mut self,
        from: SocketAddr,
        lease: Duration,
        tracks: &[u16],
        now: Instant,
    ) -> bool {
        self.expire(now);
        let pos = self.leases.iter().position(|l| l.addr == from);
        if lease.is_zero() {
            if let Some(i) = pos {
                self.leases.remove(i);
                self.generation += 1;
            }
            return true;
        }
        let until = now + lease.min(MAX_LEASE);
        let mut chosen: Vec<u16> = Vec::with_capacity(tracks.len().min(MAX_TRACKS));
        for t in tracks {
            if chosen.len() >= MAX_TRACKS {
                break;
            }
            if !chosen.contains(t) {
                chosen.push(*t);
            }
        }
        chosen.sort_unstable();
        match pos {
            Some(i) => {
                let l = &mut self.leases[i];
                l.until = until;
                if l.tracks != chosen {
                    l.tracks = chosen;
                    self.generation += 1;
                }
            }
            None if self.leases.len() >= self.max => {
                self.refused += 1;
                return false;
            }
            None => {
                self.leases.push(Lease {
                    addr: from,
                    until,
                    tracks: chosen,
                });
                self.generation += 1;
            }
        }
        true
    }

    /// True when `addr` holds a lease that takes `track` (it chose it, or every track).
    pub fn wants(&self, addr: SocketAddr, track: u16) -> bool {
        self.leases
            .iter()
            .any(|l| l.addr == addr && (l.tracks.is_empty() || l.tracks.contains(&track)))
    }

    /// The tracks `addr` chose (empty: all), if it holds a lease.
    pub fn tracks_of(&self, addr: SocketAddr) -> Option<&[u16]> {
        self.leases
            .iter()
            .find(|l| l.addr == addr)
            .map(|l| &l.tracks[..])
    }

    /// Drops `addr`'s subscription (it could not be sent to). False when it had none.
    pub fn remove(&mut self, addr: SocketAddr) -> bool {
        let before = self.leases.len();
        self.leases.retain(|l| l.addr != addr);
        let removed = self.leases.len() != before;
        if removed {
            self.generation += 1;
        }
        removed
    }

    /// Drops the subscribers whose lease has lapsed.
    pub fn expire(&mut self, now: Instant) {
        let before = self.leases.len();
        self.leases.retain(|l| l.until > now);
        if self.leases.len() != before {
            self.generation += 1;
        }
    }

    /// The subscribers now, after expiring lapsed leases, and the table's generation.
    pub fn current(&mut self, now: Instant) -> (Vec<SocketAddr>, u64) {
        self.expire(now);
        (
            self.leases.iter().map(|l| l.addr).collect(),
            self.generation,
        )
    }

    /// The table's generation: it changes whenever a subscriber comes or goes.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// True when `addr` holds a lease (lapsed ones included until the next expiry).
    pub fn contains(&self, addr: SocketAddr) -> bool {
        self.leases.iter().any(|l| l.addr == addr)
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
