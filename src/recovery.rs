// SPDX-License-Identifier: MPL-2.0
//! Loss recovery at the receiver: which datagrams to ask the sender for, and when. An
//! I/O-free state machine driven by `now`.
//!
//! Every gap in the sequence numbers of the session locked on to becomes a set of missing
//! numbers. A number is asked for (in a NACK, as ranges) once it has been missing for the
//! reorder allowance, and again every retry interval while it is still missing, until the
//! give-up time (the reassembly window: after that its frame is gone anyway). At most
//! [`MAX_MISSING`] numbers are tracked, so a burst of forged or stray numbers cannot grow it.
//!
//! FEC first: while the sender sends repair symbols ([`NackTracker::fec_seen`]), a missing
//! number is first asked for only once its block's repairs have come and could not restore
//! it, or after [`Config::fec_wait`] if they never come. Numbers FEC restores are forgotten
//! ([`NackTracker::forget`]) and never asked for.

use crate::protocol::seq_diff;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Most missing numbers tracked at once (the oldest are forgotten first).
pub const MAX_MISSING: usize = 8192;
/// A forward jump larger than this is a resynchronisation, not loss: nothing is asked for.
pub const MAX_GAP: u32 = 4096;
/// Most ranges in one NACK (each 8 bytes: one NACK stays well inside one datagram).
pub const MAX_RANGES: usize = 128;
/// The sender counts as sending FEC for this long after its latest repair symbol.
pub const FEC_IN_USE: Duration = Duration::from_secs(1);

/// Timing of the requests.
#[derive(Debug, Clone, Copy)]
pub struct Config {
    /// How long a number may be missing before it is asked for (datagrams reordered on the
    /// way arrive within it).
    pub reorder: Duration,
    /// How long to wait for a resend before asking again.
    pub retry: Duration,
    /// When to stop asking, from when the number went missing.
    pub give_up: Duration,
    /// While the sender sends FEC: how much longer than `reorder` a missing number waits for
    /// its block's repairs when neither they nor the next frame come. They follow its frame,
    /// which a sender may spread over 20 ms: longer than that, shorter than `give_up`.
    pub fec_wait: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            reorder: Duration::from_millis(2),
            retry: Duration::from_millis(15),
            give_up: Duration::from_millis(50),
            fec_wait: Duration::from_millis(30),
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Missing {
    seq: u32,
    since: Instant,
    asked: Option<Instant>,
    /// When it was first asked for.
    first_asked: Option<Instant>,
}

/// The missing numbers of one stream and their request schedule.
#[derive(Debug, Clone)]
pub struct NackTracker {
    cfg: Config,
    /// In sequence order (oldest first).
    missing: VecDeque<Missing>,
    highest: Option<u32>,
    /// Smoothed round trip, from requests to the resends they brought.
    srtt: Option<Duration>,
    /// Numbers asked for, in all.
    pub asked: u64,
    /// Until when the sender counts as sending FEC.
    fec_until: Option<Instant>,
    /// Numbers before this one have had their block's repairs.
    fec_horizon: Option<u32>,
}

impl NackTracker {
    /// An empty tracker.
    pub fn new(cfg: Config) -> Self {
        NackTracker {
            cfg,
            missing: VecDeque::new(),
            highest: None,
            srtt: None,
            asked: 0,
            fec_until: None,
            fec_horizon: None,
        }
    }

    /// The round trip measured so far (request to resend), smoothed.
    pub fn rtt(&self) -> Option<Duration> {
        self.srtt
    }

    /// How long to wait for a resend before asking again: the configured retry, or one and
    /// a half measured round trips if that is longer (asking again before an answer can
    /// come only makes the sender resend twice).
    fn retry(&self) -> Duration {
        self.srtt
            .map_or(self.cfg.retry, |r| self.cfg.retry.max(r * 3 / 2))
    }

    /// Forgets everything (a new stream).
    pub fn reset(&mut self) {
        self.missing.clear();
        self.highest = None;
        self.fec_until = None;
        self.fec_horizon = None;
    }

    /// Takes a repair symbol, sequence number `seq`, of index `index` among the `repairs`
    /// of the block of `count` numbers from `first`. Earlier blocks, and this one once its
    /// last repair is in, have had their chance: their missing numbers are asked for as
    /// usual. The block's repairs go out with consecutive numbers, so the earlier ones
    /// missing are not worth asking for (the sender keeps no repairs).
    pub fn fec_seen(
        &mut self,
        seq: u32,
        first: u32,
        count: u16,
        index: u16,
        repairs: u16,
        now: Instant,
    ) {
        self.fec_until = Some(now + FEC_IN_USE);
        let horizon = if index.saturating_add(1) >= repairs {
            first.wrapping_add(u32::from(count))
        } else {
            first
        };
        self.fec_release(horizon, seq);
        let first_repair = seq.wrapping_sub(u32::from(index));
        self.missing
            .retain(|m| !(seq_diff(m.seq, first_repair) >= 0 && seq_diff(m.seq, seq) < 0));
    }

    /// Numbers before `upto` have had their repairs (all were sent before `seq`, which just
    /// came: a later block's repair, or the first datagram of a later frame). Never moves
    /// back, nor past `seq`.
    pub fn fec_release(&mut self, upto: u32, seq: u32) {
        if seq_diff(upto, seq) <= 0 && self.fec_horizon.is_none_or(|h| seq_diff(upto, h) > 0) {
            self.fec_horizon = Some(upto);
        }
    }

    /// Forgets a missing number restored otherwise (by FEC): never asked for, and no round
    /// trip measured from it.
    pub fn forget(&mut self, seq: u32) {
        if let Some(i) = self.missing.iter().position(|m| m.seq == seq) {
            self.missing.remove(i);
        }
    }

    /// When a number that has not been asked for yet is first due.
    fn first_due(&self, m: &Missing) -> Instant {
        first_due(&self.cfg, self.fec_until, self.fec_horizon, m)
    }

    /// Sets how long to wait before asking again (e.g. from a measured round trip).
    pub fn set_retry(&mut self, retry: Duration) {
        self.cfg.retry = retry;
    }

    /// Missing numbers tracked.
    pub fn len(&self) -> usize {
        self.missing.len()
    }

    /// True when nothing is missing.
    pub fn is_empty(&self) -> bool {
        self.missing.is_empty()
    }

    /// Takes a received sequence number.
    pub fn received(&mut self, seq: u32, now: Instant) {
        let Some(highest) = self.highest else {
            self.highest = Some(seq);
            return;
        };
        let d = seq_diff(seq, highest);
        if d > 0 {
            let gap = (d - 1) as u32;
            if gap > 0 && gap <= MAX_GAP {
                for k in 1..=gap {
                    self.missing.push_back(Missing {
                        seq: highest.wrapping_add(k),
                        since: now,
                        asked: None,
                        first_asked: None,
                    });
                }
                while self.missing.len() > MAX_MISSING {
                    self.missing.pop_front();
                }
            } else if gap > MAX_GAP {
                self.missing.clear();
            }
            self.highest = Some(seq);
        } else if let Some(i) = self.missing.iter().position(|m| m.seq == seq) {
            // A late original or a resend: no longer missing. The time since it was first
            // asked for is the round trip when the first request was answered (the first
            // answer to come, on a path that keeps order), longer when that one was lost:
            // the estimate follows shorter samples at once and longer ones slowly.
            if let Some(m) = self.missing.remove(i) {
                if let Some(first) = m.first_asked {
                    let sample = now.saturating_duration_since(first);
                    self.srtt = Some(match self.srtt {
                        Some(r) if sample >= r => (r * 15 + sample) / 16,
                        _ => sample,
                    });
                }
            }
        }
    }

    /// The ranges (first, count) to ask for now; None when nothing is due.
    pub fn poll(&mut self, now: Instant) -> Option<Vec<(u32, u32)>> {
        let give_up = self.cfg.give_up;
        self.missing
            .retain(|m| now.saturating_duration_since(m.since) < give_up);
        let mut ranges: Vec<(u32, u32)> = Vec::new();
        let retry = self.retry();
        let (cfg, until, horizon) = (self.cfg, self.fec_until, self.fec_horizon);
        for m in self.missing.iter_mut() {
            let due = match m.asked {
                None => now >= first_due(&cfg, until, horizon, m),
                Some(t) => now.saturating_duration_since(t) >= retry,
            };
            if !due {
                continue;
            }
            let extends = ranges
                .last()
                .is_some_and(|(first, count)| first.wrapping_add(*count) == m.seq);
            if extends {
                if let Some((_, count)) = ranges.last_mut() {
                    *count += 1;
                }
            } else if ranges.len() >= MAX_RANGES {
                break;
            } else {
                ranges.push((m.seq, 1));
            }
            m.first_asked = m.first_asked.or(Some(now));
            m.asked = Some(now);
            self.asked += 1;
        }
        (!ranges.is_empty()).then_some(ranges)
    }

    /// When [`poll`](Self::poll) may next have something to ask for.
    pub fn next_deadline(&self) -> Option<Instant> {
        let retry = self.retry();
        self.missing
            .iter()
            .map(|m| match m.asked {
                None => self.first_due(m),
                Some(t) => t + retry,
            })
            .min()
    }
}

/// When a number not asked for yet is first due: after the reorder allowance, and while the
/// sender sends FEC (`fec_until`), not before its block's repairs had their chance (it lies
/// before `horizon`) or [`Config::fec_wait`] more has passed.
fn first_due(
    cfg: &Config,
    fec_until: Option<Instant>,
    horizon: Option<u32>,
    m: &Missing,
) -> Instant {
    let due = m.since + cfg.reorder;
    let fec = fec_until.is_some_and(|u| m.since < u);
    let had_repairs = horizon.is_some_and(|h| seq_diff(m.seq, h) < 0);
    if fec && !had_repairs {
        due + cfg.fec_wait
    } else {
        due
    }
}

#[cfg(test)]
#[path = "recovery_tests.rs"]
mod tests;
