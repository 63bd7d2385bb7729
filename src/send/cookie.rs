// SPDX-License-Identifier: MPL-2.0
//! Return routability (PROTOCOL §7.11): before a sender acts on what an address sends it
//! (a subscription, a report, a request for resends), that address must show that it
//! receives what is sent to it, by echoing a cookie the sender sent it in a CHALLENGE.
//!
//! The cookie is stateless, as QUIC's Retry token or a DTLS cookie: a keyed MAC of the
//! address and a time bucket, under a random key drawn per session. Nothing is stored per
//! address, so a flood of forged source addresses costs the sender no memory, and what an
//! unverified address gets back is one CHALLENGE (48 bytes) per datagram it sent, within a
//! global rate. I/O-free, driven by `now`.

use crate::crypto::CookieKey;
pub use crate::crypto::COOKIE_LEN;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

/// A cookie is made for the current period and accepted for that one and the one before:
/// it holds between one and two periods.
pub const COOKIE_PERIOD: Duration = Duration::from_secs(60);
/// Most CHALLENGEs sent per second, whatever the flood of unverified datagrams (each is no
/// larger than the datagram it answers, so this bounds only the CPU and the bytes a flood
/// can cost: about 10 ms of MACs and 1 MB a second). A real receiver is crowded out only by
/// a flood faster than this, and then only for as long as it lasts...
pub const CHALLENGE_RATE: f64 = 20_000.0;
/// ...and in one burst.
pub const CHALLENGE_BURST: f64 = 2_000.0;

/// What a datagram's cookie says about its source address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Made for this address in the current period.
    Valid,
    /// Made for this address in the period before: valid, but worth refreshing.
    Stale,
    /// Missing, or not made for this address lately.
    Invalid,
}

/// The sender's cookie key and the rate of its CHALLENGEs.
pub struct Cookies {
    key: CookieKey,
    /// The start of period 0: the first instant the session was handed.
    origin: Option<Instant>,
    tokens: f64,
    refilled: Option<Instant>,
    /// CHALLENGEs not sent because of [`CHALLENGE_RATE`].
    pub limited: u64,
}

impl std::fmt::Debug for Cookies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cookies")
            .field("origin", &self.origin)
            .field("limited", &self.limited)
            .finish_non_exhaustive()
    }
}

impl Default for Cookies {
    fn default() -> Self {
        Self::new()
    }
}

impl Cookies {
    /// A fresh random key. Should the system's random source fail, the key is made from
    /// the time and the process instead (cookies then only resist an attacker who cannot
    /// guess both; the sender still works).
    pub fn new() -> Self {
        let key = CookieKey::new().unwrap_or_else(|_| {
            let seed = format!("{:?}{}", std::time::SystemTime::now(), std::process::id());
            CookieKey::from_bytes(seed.as_bytes())
        });
        Cookies {
            key,
            origin: None,
            tokens: CHALLENGE_BURST,
            refilled: None,
            limited: 0,
        }
    }

    fn period(&mut self, now: Instant) -> u64 {
        let origin = *self.origin.get_or_insert(now);
        let secs = now.saturating_duration_since(origin).as_secs();
        secs / COOKIE_PERIOD.as_secs()
    }

    /// What a cookie vouches for: `"videoip v2 cookie"`, the address (IPv4 mapped into
    /// IPv6), the port and the period, big-endian.
    fn data(addr: SocketAddr, period: u64) -> [u8; 17 + 16 + 2 + 8] {
        let ip = match addr.ip() {
            IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
            IpAddr::V6(v6) => v6.octets(),
        };
        let mut d = [0u8; 43];
        d[..17].copy_from_slice(b"videoip v2 cookie");
        d[17..33].copy_from_slice(&ip);
        d[33..35].copy_from_slice(&addr.port().to_be_bytes());
        d[35..].copy_from_slice(&period.to_be_bytes());
        d
    }

    /// The cookie for `addr` now.
    pub fn make(&mut self, addr: SocketAddr, now: Instant) -> [u8; COOKIE_LEN] {
        let period = self.period(now);
        self.key.cookie(&Self::data(addr, period))
    }

    /// Whether `cookie` (a COOKIE extension's value, if any) proves that `addr` received a
    /// CHALLENGE lately. Compared in constant time.
    pub fn check(&mut self, addr: SocketAddr, cookie: Option<&[u8]>, now: Instant) -> Verdict {
        let Some(cookie) = cookie.filter(|c| c.len() == COOKIE_LEN) else {
            return Verdict::Invalid;
        };
        let period = self.period(now);
        if self.key.verify(&Self::data(addr, period), cookie) {
            Verdict::Valid
        } else if period > 0 && self.key.verify(&Self::data(addr, period - 1), cookie) {
            Verdict::Stale
        } else {
            Verdict::Invalid
        }
    }

    /// Whether a CHALLENGE may be sent now ([`CHALLENGE_RATE`]); counts it if not.
    pub fn may_challenge(&mut self, now: Instant) -> bool {
        let elapsed = self
            .refilled
            .map_or(0.0, |t| now.saturating_duration_since(t).as_secs_f64());
        self.refilled = Some(now);
        self.tokens = (self.tokens + elapsed * CHALLENGE_RATE).min(CHALLENGE_BURST);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            self.limited += 1;
            false
        }
    }
}

#[cfg(test)]
#[path = "cookie_tests.rs"]
mod tests;
