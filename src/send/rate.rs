// SPDX-License-Identifier: MPL-2.0
//! Rate control: how fast may the sender send, and may this frame go now?
//!
//! An I/O-free state machine handed `now`. It holds the allowed bit rate: unlimited or the
//! `max-bitrate` ceiling at first, lowered when receiver reports show that a receiver
//! cannot keep up, raised again gently while they keep up. Before each frame the sender asks
//! [`RateControl::admit`], a token bucket at the allowed rate:
//!
//! - a **live** sender (clock-synchronised to a live source) that cannot send a frame within
//!   the rate drops it whole, before any of its datagrams leave, so receivers lose whole
//!   frames, never datagrams spread over many frames; key frames (buffers without
//!   `DELTA_UNIT`) may borrow one bucket's depth, so delta frames go first, and once a key
//!   frame is dropped its delta frames go too, until the next key frame;
//! - a **non-live** sender (`sync=false`, or a file) waits instead: it is slowed to what its
//!   receivers take. It starts a little above the stream's own (real-time) rate and
//!   probes upward.
//!
//! A receiver is not keeping up when its reports show many frames dropped lately (at
//! least [`MIN_DROPPED`] in the last [`DROP_WINDOW`], over [`DROPPED_SHARE`] of those it
//! saw), or a backlog (how
//! far its highest sequence number lags behind the sender's, less the round trip) longer
//! than [`BACKLOG_LIMIT`] at the rate it takes: its socket buffer is filling, and loss
//! follows. Loss alone is not a
//! signal: random loss on a link is repaired by retransmission and is no reason to slow
//! down. The decrease goes straight to a share ([`DECREASE`]) of what that receiver took in
//! the last report interval, so one report is enough to get below it.

use std::time::{Duration, Instant};

/// The least allowed rate, and the least `max-bitrate`: below it a frame of raw video
/// would take minutes.
pub const MIN_RATE: u64 = 1_000_000;
/// A receiver that falls behind gets this share of what it took in its last report.
pub const DECREASE: f64 = 0.85;
/// Growth of the allowed rate per [`INCREASE_INTERVAL`] while the rate held the sender back,
/// until the first sign of overload.
pub const PROBE_INCREASE: f64 = 1.05;
/// Growth per [`INCREASE_INTERVAL`] once a receiver has fallen behind: slow, so that the
/// next overload comes late.
pub const STEADY_INCREASE: f64 = 1.01;
/// Growth per [`INCREASE_INTERVAL`] once no receiver has fallen behind for
/// [`RECOVER_AFTER`]: the rate comes back within seconds from wherever it was lowered to
/// (from 1 Mbit/s to 2 Gbit/s in about 7 s), when the receiver that slowed it went away
/// or recovered, or its reports were lies.
pub const RECOVERY_INCREASE: f64 = 1.5;
/// How long without a receiver falling behind before the rate recovers quickly.
pub const RECOVER_AFTER: Duration = Duration::from_secs(3);
/// A non-live sender starts at this multiple of its stream's own rate: headroom to catch up
/// after a stall, while well below what floods a receiver.
pub const START_HEADROOM: f64 = 1.25;
/// How often the rate may grow.
pub const INCREASE_INTERVAL: Duration = Duration::from_millis(250);
/// After a decrease, neither another decrease nor an increase for this long: the next
/// report must show the effect of the new rate (reports come every 250 ms).
pub const HOLD: Duration = Duration::from_millis(500);
/// Backlog (beyond the round trip) above which a receiver is falling behind. Its socket
/// buffer (32 MiB by default) holds about 40 ms of 2160p60 UYVY; one burst of a frame
/// (`pacing=none`) can be in flight at any time, so less than two frame intervals would
/// misfire.
pub const BACKLOG_LIMIT: Duration = Duration::from_millis(35);
/// A receiver is falling behind when it dropped at least this many frames over the last
/// [`DROP_WINDOW`]...
pub const MIN_DROPPED: u32 = 2;
/// ...and more than this share of the frames it saw then.
pub const DROPPED_SHARE: f64 = 0.05;
/// How far back dropped frames are counted.
pub const DROP_WINDOW: Duration = Duration::from_secs(1);
/// Depth of the token bucket: how far ahead of the rate a sender may get (at least one
/// frame).
pub const BUCKET_DEPTH: Duration = Duration::from_millis(50);

/// What one receiver's report says happened since its previous one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportDelta {
    /// Time between the two reports' arrivals.
    pub elapsed: Duration,
    /// Datagrams it received in between.
    pub received: u64,
    /// Frames it dropped in between.
    pub frames_dropped: u32,
    /// Frames it completed in between.
    pub frames_complete: u32,
    /// Frames it dropped over the last [`DROP_WINDOW`], this interval included.
    pub recent_dropped: u32,
    /// Frames it completed over the last [`DROP_WINDOW`], this interval included.
    pub recent_complete: u32,
    /// Datagrams sent but not yet seen by it, as of this report.
    pub backlog: u64,
    /// Its round trip, if measured.
    pub rtt: Option<Duration>,
    /// Datagrams per second it took lately on the session's other tracks (0 with one
    /// track): what it takes in all is what a decrease goes below.
    pub other_tracks_rate: u64,
}

/// What to do with a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Send it now.
    Now,
    /// Not before this instant (a non-live sender waits, then asks again).
    At(Instant),
    /// Drop it whole (a live sender over its rate).
    Drop,
}

/// The rate controller of one sender.
#[derive(Debug, Clone)]
pub struct RateControl {
    /// `max-bitrate`, bits per second.
    ceiling: Option<f64>,
    /// The allowed rate below the ceiling, if lowered (or started low for a non-live sender).
    rate: Option<f64>,
    /// Bits of one datagram, headers included: turns reported datagrams into bits.
    datagram_bits: f64,
    tokens: f64,
    refilled: Option<Instant>,
    /// No decrease nor increase before this.
    held_until: Option<Instant>,
    last_increase: Option<Instant>,
    /// When a receiver last fell behind (the last [`decrease`](Self::decrease)).
    last_decrease: Option<Instant>,
    /// The rate held a frame back since the last increase: only then is more rate wanted.
    limited: bool,
    /// A receiver has fallen behind at least once: probe slowly from then on.
    overloaded_once: bool,
    /// [`start_at`](Self::start_at) was called.
    started: bool,
    /// A key frame was dropped: its delta frames are dropped too, until the next key frame.
    key_dropped: bool,
    /// A delta frame was seen: only then are key frames rare enough to borrow from the
    /// bucket (in raw video every frame is a key frame, and none may borrow).
    deltas_seen: bool,
    decreases: u64,
    frames_dropped: u64,
}

impl RateControl {
    /// A controller capped at `ceiling` bits per second (None: unlimited), for datagrams of
    /// `datagram_bytes` bytes on the wire.
    pub fn new(ceiling: Option<u64>, datagram_bytes: usize) -> Self {
        RateControl {
            ceiling: ceiling.map(|c| c.max(MIN_RATE) as f64),
            rate: None,
            datagram_bits: (datagram_bytes.max(1) * 8) as f64,
            tokens: 0.0,
            refilled: None,
            held_until: None,
            last_increase: None,
            last_decrease: None,
            limited: false,
            overloaded_once: false,
            started: false,
            key_dropped: false,
            deltas_seen: false,
            decreases: 0,
            frames_dropped: 0,
        }
    }

    /// The allowed rate in bits per second, None when unlimited.
    pub fn rate(&self) -> Option<u64> {
        self.allowed().map(|r| r as u64)
    }

    /// How many times a receiver falling behind lowered the rate.
    pub fn decreases(&self) -> u64 {
        self.decreases
    }

    /// Frames [`admit`](Self::admit) told the sender to drop.
    pub fn frames_dropped(&self) -> u64 {
        self.frames_dropped
    }

    fn allowed(&self) -> Option<f64> {
        match (self.rate, self.ceiling) {
            (Some(r), Some(c)) => Some(r.min(c)),
            (r, c) => r.or(c),
        }
    }

    /// A non-live sender starts at [`START_HEADROOM`] × its stream's own rate,
    /// `bits_per_second`, and probes
    /// upward from there, rather than flooding receivers before their first report. Only
    /// the first call counts, and none after a receiver fell behind.
    pub fn start_at(&mut self, bits_per_second: u64, now: Instant) {
        if !std::mem::replace(&mut self.started, true) && !self.overloaded_once {
            self.rate = Some((bits_per_second as f64 * START_HEADROOM).max(MIN_RATE as f64));
            self.last_increase = Some(now);
        }
    }

    /// The least time a frame of `bits` takes at the allowed rate (zero when unlimited).
    pub fn min_spread(&self, bits: u64) -> Duration {
        self.allowed()
            .map_or(Duration::ZERO, |r| Duration::from_secs_f64(bits as f64 / r))
    }

    /// Whether a frame of `bits` may be sent at `now`. `key`: not a delta frame. `live`:
    /// drop rather than wait. A frame admitted is charged to the bucket.
    pub fn admit(&mut self, now: Instant, bits: u64, key: bool, live: bool) -> Admit {
        self.maybe_increase(now);
        self.deltas_seen |= !key;
        if key {
            self.key_dropped = false;
        } else if live && self.key_dropped {
            self.frames_dropped += 1;
            return Admit::Drop;
        }
        let Some(rate) = self.allowed() else {
            return Admit::Now;
        };
        let bits = bits as f64;
        let depth = (rate * BUCKET_DEPTH.as_secs_f64()).max(bits);
        self.tokens = match self.refilled {
            Some(t) => {
                (self.tokens + rate * now.saturating_duration_since(t).as_secs_f64()).min(depth)
            }
            None => depth,
        };
        self.refilled = Some(now);
        // A key frame of a live stream with delta frames may borrow one bucket's depth. (Not
        // in a stream of key frames only, raw video: every frame would borrow, and none
        // would ever be dropped however far over the rate the stream is.)
        let need = if live && key && self.deltas_seen {
            bits - depth
        } else {
            bits
        };
        // Within a microsecond's worth: a wait shorter than that never comes out even.
        if self.tokens + rate * 1e-6 >= need {
            self.tokens -= bits;
            return Admit::Now;
        }
        self.limited = true;
        if live {
            self.frames_dropped += 1;
            self.key_dropped = key;
            Admit::Drop
        } else {
            Admit::At(now + Duration::from_secs_f64((bits - self.tokens) / rate))
        }
    }

    /// Takes what one receiver reported since its previous report, received at `now`, and
    /// gives the rate it took over the interval, in bits per second, when it is falling
    /// behind (many frames dropped lately, or a backlog beyond [`BACKLOG_LIMIT`]); None when
    /// it keeps up, or the report says too little. Changes no rate: see
    /// [`decrease`](Self::decrease), or [`on_report`](Self::on_report) for both.
    pub fn observe(&self, d: &ReportDelta) -> Option<f64> {
        // Too short an interval, or nothing received, says nothing about the rate it takes.
        if d.elapsed < Duration::from_millis(50) || d.received == 0 {
            return None;
        }
        let took = d.received as f64 * self.datagram_bits / d.elapsed.as_secs_f64();
        // The backlog is in the track's own datagrams: its time is at the track's own rate.
        let backlog_time = Duration::from_secs_f64(d.backlog as f64 * self.datagram_bits / took)
            .saturating_sub(d.rtt.unwrap_or_default());
        let took = took + d.other_tracks_rate as f64 * self.datagram_bits;
        // Dropped frames say the receiver cannot keep up only when they are many over the
        // last [`DROP_WINDOW`]: one frame lost now and then to the network beyond repair (or
        // the one before lock-on) is no reason to slow down, and slowing down for it
        // spirals: the next report, taking less, would lower the rate again.
        let (dropped, complete) = (u64::from(d.recent_dropped), u64::from(d.recent_complete));
        let share = dropped as f64 / ((dropped + complete) as f64).max(1.0);
        let dropping = dropped >= u64::from(MIN_DROPPED) && share > DROPPED_SHARE;
        (dropping || backlog_time > BACKLOG_LIMIT).then_some(took)
    }

    /// Takes what one receiver reported since its previous report, received at `now`, and
    /// lowers the rate if it shows that receiver falling behind.
    pub fn on_report(&mut self, d: &ReportDelta, now: Instant) {
        if let Some(took) = self.observe(d) {
            self.decrease(took, now);
        }
    }

    /// Lowers the rate below `took`, what a receiver falling behind took (unless a decrease
    /// was just made: its effect is not reported yet).
    pub fn decrease(&mut self, took: f64, now: Instant) {
        if self.held_until.is_some_and(|t| now < t) {
            return;
        }
        let target = (took * DECREASE).max(MIN_RATE as f64);
        if self.allowed().is_none_or(|r| target < r) {
            self.rate = Some(target);
            self.tokens = self.tokens.min(target * BUCKET_DEPTH.as_secs_f64());
            self.decreases += 1;
        }
        self.overloaded_once = true;
        self.held_until = Some(now + HOLD);
        self.last_increase = Some(now);
        self.last_decrease = Some(now);
    }

    fn maybe_increase(&mut self, now: Instant) {
        let Some(rate) = self.rate else {
            return;
        };
        if self.held_until.is_some_and(|t| now < t)
            || self
                .last_increase
                .is_some_and(|t| now.saturating_duration_since(t) < INCREASE_INTERVAL)
        {
            return;
        }
        self.last_increase = Some(now);
        if !std::mem::take(&mut self.limited) {
            return;
        }
        let calm = self
            .last_decrease
            .is_some_and(|t| now.saturating_duration_since(t) >= RECOVER_AFTER);
        let factor = if calm {
            RECOVERY_INCREASE
        } else if self.overloaded_once {
            STEADY_INCREASE
        } else {
            PROBE_INCREASE
        };
        let grown = rate * factor;
        self.rate = match self.ceiling {
            // At the ceiling, the ceiling alone limits.
            Some(c) if grown >= c => None,
            _ => Some(grown),
        };
    }
}

#[cfg(test)]
#[path = "rate_tests.rs"]
mod tests;
