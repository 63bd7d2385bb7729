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
//! A loss at the end of a frame leaves no gap until something later arrives, which may be
//! a frame interval away, or never (the last frame of a stream). So the tracker is told
//! which number a frame ends with ([`NackTracker::expect_through`]); when the stream falls
//! silent short of it for longer than the pauses within frames have been, the rest of the
//! frame is missing too. Since a sender that pauses (descheduled on a busy machine) cannot
//! be told from one whose datagrams were lost, that silence must also outlast the frame's
//! duration (at most half the give-up time): where frames follow each other, the next
//! frame's first datagram reveals a lost end sooner, as a gap.
//!
//! FEC first: while the sender sends repair symbols ([`NackTracker::fec_seen`]), a missing
//! number is first asked for only once its block's repairs have come and could not restore
//! it, or after [`Config::fec_wait`] if they never come. Numbers FEC restores are forgotten
//! ([`NackTracker::forget`]) and never asked for.

use crate::protocol::{self, seq_diff, Media};
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
    /// How many times it was asked for.
    times: u8,
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
    /// How much the round trip varies (mean deviation, smoothed).
    rttvar: Duration,
    /// Numbers asked for, in all.
    pub asked: u64,
    /// The last number of the frame being received, when beyond `highest`.
    expected: Option<u32>,
    /// When the newest number arrived.
    last_arrival: Option<Instant>,
    /// The longest recent pause between two datagrams of one frame (decays slowly).
    pause: Duration,
    /// The duration of the frame being received, if it said.
    frame_duration: Duration,
    /// Until when the sender counts as sending FEC.
    fec_until: Option<Instant>,
    /// Numbers before this one have had their block's repairs.
    fec_horizon: Option<u32>,
}

/// Shortest silence after which the rest of a frame counts as missing.
pub const MIN_TAIL_WAIT: Duration = Duration::from_millis(4);

impl NackTracker {
    /// An empty tracker.
    pub fn new(cfg: Config) -> Self {
        NackTracker {
            cfg,
            missing: VecDeque::new(),
            highest: None,
            srtt: None,
            rttvar: Duration::ZERO,
            asked: 0,
            expected: None,
            last_arrival: None,
            pause: Duration::ZERO,
            frame_duration: Duration::ZERO,
            fec_until: None,
            fec_horizon: None,
        }
    }

    /// The round trip measured so far (request to resend), smoothed.
    pub fn rtt(&self) -> Option<Duration> {
        self.srtt
    }

    /// How long to wait for a resend before asking again: the configured retry, or the
    /// measured round trip plus three times its variation if that is longer (asking again
    /// before an answer can come only makes the sender resend twice, and a busy machine
    /// makes round trips vary).
    fn retry(&self) -> Duration {
        self.srtt
            .map_or(self.cfg.retry, |r| self.cfg.retry.max(r + self.rttvar * 3))
    }

    /// Forgets everything (a new stream).
    pub fn reset(&mut self) {
        self.missing.clear();
        self.highest = None;
        self.expected = None;
        self.last_arrival = None;
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

    /// Takes a received sequence number, sent for the first time.
    pub fn received(&mut self, seq: u32, now: Instant) {
        self.arrived(seq, now, false);
    }

    /// Takes a received sequence number that was resent (flag R): if it was asked for, the
    /// time since gives the round trip.
    pub fn resent(&mut self, seq: u32, now: Instant) {
        self.arrived(seq, now, true);
    }

    /// Takes the header of media datagram `seq`, sent for the first time (after
    /// [`received`](Self::received)): where its frame ends, so that a lost end is found.
    pub fn media_received(&mut self, m: &Media, seq: u32) {
        if m.frag_size == 0 {
            return;
        }
        let count = protocol::fragment_count(m.frame_len, m.frag_size);
        let index = m.offset / u32::from(m.frag_size);
        if index < count {
            let duration =
                (m.duration != protocol::TIME_NONE).then(|| Duration::from_nanos(m.duration));
            self.expect_through(seq.wrapping_add(count - 1 - index), duration);
        }
    }

    /// Says that the frame being received ends with number `last` and lasts `duration`: if
    /// the stream stops short of it, the rest is asked for (see the module's documentation).
    pub fn expect_through(&mut self, last: u32, duration: Option<Duration>) {
        self.frame_duration = duration.unwrap_or_default();
        let Some(highest) = self.highest else {
            return;
        };
        let ahead = seq_diff(last, highest);
        if ahead > 0 && ahead as u32 <= MAX_GAP {
            self.expected = match self.expected {
                Some(e) if seq_diff(e, last) >= 0 => Some(e),
                Some(_) => Some(last),
                None => {
                    // A new frame: pauses of frames long past are forgotten.
                    self.pause = self.pause * 7 / 8;
                    Some(last)
                }
            };
        }
    }

    /// How long a silence short of the expected end must last before the rest counts as
    /// missing: twice the longest recent pause within a frame, and the frame's duration (at
    /// most half the give-up time), at least [`MIN_TAIL_WAIT`].
    fn tail_wait(&self) -> Duration {
        (self.pause * 2)
            .max(self.frame_duration.min(self.cfg.give_up / 2))
            .max(MIN_TAIL_WAIT)
    }

    /// Adds `first ..= last` to the missing numbers (oldest forgotten beyond the bound).
    fn add_missing(&mut self, first: u32, count: u32, since: Instant) {
        for k in 0..count {
            self.missing.push_back(Missing {
                seq: first.wrapping_add(k),
                since,
                asked: None,
                first_asked: None,
                times: 0,
            });
        }
        while self.missing.len() > MAX_MISSING {
            self.missing.pop_front();
        }
    }

    fn arrived(&mut self, seq: u32, now: Instant, resent: bool) {
        let Some(highest) = self.highest else {
            self.highest = Some(seq);
            self.last_arrival = Some(now);
            return;
        };
        let d = seq_diff(seq, highest);
        if d > 0 {
            // Pauses within a frame (between paced batches) tell how long a silence may
            // last before a frame's end counts as lost.
            if let (Some(e), Some(t)) = (self.expected, self.last_arrival) {
                if seq_diff(seq, e) <= 0 {
                    let pause = now.saturating_duration_since(t);
                    self.pause = self.pause.max(pause.min(Duration::from_millis(100)));
                }
            }
            let gap = (d - 1) as u32;
            if gap > 0 && gap <= MAX_GAP {
                self.add_missing(highest.wrapping_add(1), gap, now);
            } else if gap > MAX_GAP {
                self.missing.clear();
            }
            self.highest = Some(seq);
            self.last_arrival = Some(now);
            if self.expected.is_some_and(|e| seq_diff(e, seq) <= 0) {
                self.expected = None;
            }
        } else if let Some(i) = self.missing.iter().position(|m| m.seq == seq) {
            // A late original or a resend: no longer missing. A resend of a number asked
            // for once gives a round trip sample; one asked for several times does not, as
            // which request it answers is unknown (Karn's rule), except as a first estimate
            // (the time since the first request is at least the round trip): without it, a
            // round trip longer than the retry interval would never be learnt. Smoothed as
            // TCP does (RFC 6298).
            if let Some(m) = self.missing.remove(i) {
                if let (true, Some(first)) = (resent, m.first_asked) {
                    let sample = now.saturating_duration_since(first);
                    match self.srtt {
                        None => {
                            self.srtt = Some(sample);
                            self.rttvar = sample / 4;
                        }
                        Some(r) if m.times == 1 => {
                            self.rttvar = (self.rttvar * 3 + r.abs_diff(sample)) / 4;
                            self.srtt = Some((r * 7 + sample) / 8);
                        }
                        Some(_) => {}
                    }
                }
            }
        }
    }

    /// The ranges (first, count) to ask for now; None when nothing is due.
    pub fn poll(&mut self, now: Instant) -> Option<Vec<(u32, u32)>> {
        if let (Some(e), Some(h), Some(t)) = (self.expected, self.highest, self.last_arrival) {
            if now.saturating_duration_since(t) >= self.tail_wait() {
                // The stream fell silent short of the frame's end: the rest is missing, and
                // has been since its silence began (so it is asked for at once).
                self.add_missing(h.wrapping_add(1), seq_diff(e, h) as u32, t);
                self.highest = Some(e);
                self.expected = None;
            }
        }
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
            m.times = m.times.saturating_add(1);
            m.asked = Some(now);
            self.asked += 1;
        }
        (!ranges.is_empty()).then_some(ranges)
    }

    /// When [`poll`](Self::poll) may next have something to ask for.
    pub fn next_deadline(&self) -> Option<Instant> {
        let retry = self.retry();
        let tail = self
            .expected
            .and(self.last_arrival)
            .map(|t| t + self.tail_wait());
        self.missing
            .iter()
            .map(|m| match m.asked {
                None => self.first_due(m),
                Some(t) => t + retry,
            })
            .chain(tail)
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
