// SPDX-License-Identifier: MPL-2.0
//! Pacing: when may the next batch of a frame's datagrams leave?
//!
//! A frame's batches are spread evenly over a window derived from the frame's duration, so the
//! network (and the receiver's socket buffer) sees a steady stream instead of a burst of a
//! whole frame. The pacer only computes instants; the caller sleeps.

use std::time::{Duration, Instant};

/// Fraction of a frame's duration its datagrams are spread over: most of it, as SMPTE
/// ST 2110-21 senders do, so the peak rate is only 1.25 × the stream's mean rate (a 2 Gbit/s
/// stream fits a 2.5 Gbit/s link with a small queue). Not more: the last batch leaves
/// after this share of the interval, and the receiver needs the rest (about 2 ms for
/// 1080p here) for the frame to be out within one frame interval of its push.
pub const SPREAD_FRACTION: f64 = 0.8;
/// Upper bound of the default spread: pacing adds its spread to the latency, so slow frame
/// rates must not hold a frame back for longer than `videoipsrc` adds to its reported
/// latency for it. Only a rate limit ([`FrameSchedule::new`]'s `min_spread`) spreads longer.
pub const MAX_SPREAD: Duration = Duration::from_millis(20);

/// Smallest gap between two paced batches: shorter sleeps cost more in wake-ups and timer
/// slack than they gain in smoothness, so batches grow instead. (At 200 µs, with frames
/// spread over 0.8 of their interval, 2160p60 cost 12-30 % more CPU per frame than before
/// the wider spread; at 300 µs it costs the same, and a 2.5 Gbit/s bottleneck with a 1 MB
/// queue still passes every 1080p60 frame.)
pub const MIN_INTERVAL: Duration = Duration::from_micros(300);

/// Pacing policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Pacing {
    /// Send each batch as soon as the previous one is out.
    None,
    /// Spread each frame's batches over [`SPREAD_FRACTION`] of its duration, at most
    /// [`MAX_SPREAD`] (or longer, when a rate limit asks for it).
    #[default]
    Frame,
}

/// The schedule of one frame's batches.
#[derive(Debug, Clone, Copy)]
pub struct FrameSchedule {
    start: Instant,
    spread: Duration,
    batches: usize,
    batch_len: usize,
}

impl FrameSchedule {
    /// Schedules a frame of `datagrams` datagrams lasting `duration` (None if unknown),
    /// starting at `now`, under `pacing`. With [`Pacing::Frame`] the spread is at least
    /// `min_spread` (the frame's bits over the allowed bit rate), even beyond
    /// [`MAX_SPREAD`]: a rate limit is kept within the frame too, not only on average.
    /// Batches hold at least `batch_size` datagrams, rounded up to a multiple of `align`
    /// (the datagrams one GSO send carries), and grow further so that paced batches are at
    /// least [`MIN_INTERVAL`] apart.
    pub fn new(
        pacing: Pacing,
        now: Instant,
        duration: Option<Duration>,
        min_spread: Duration,
        datagrams: usize,
        batch_size: usize,
        align: usize,
    ) -> Self {
        let align = align.max(1);
        let mut batch_len = batch_size.max(1).div_ceil(align) * align;
        let spread = match pacing {
            Pacing::Frame if datagrams > batch_len => duration
                .map_or(Duration::ZERO, |d| {
                    d.mul_f64(SPREAD_FRACTION).min(MAX_SPREAD)
                })
                .max(min_spread),
            _ => Duration::ZERO,
        };
        if !spread.is_zero() {
            let max_batches = (spread.as_nanos() / MIN_INTERVAL.as_nanos()).max(1) as usize;
            let min_len = datagrams.div_ceil(max_batches).div_ceil(align) * align;
            batch_len = batch_len.max(min_len);
        }
        FrameSchedule {
            start: now,
            spread,
            batches: datagrams.div_ceil(batch_len).max(1),
            batch_len,
        }
    }

    /// Number of batches.
    pub fn batches(&self) -> usize {
        self.batches
    }

    /// Datagrams per batch (the last batch may have fewer).
    pub fn batch_len(&self) -> usize {
        self.batch_len
    }

    /// The instant batch `k` may leave: batch 0 at once, the others evenly over the spread.
    pub fn send_at(&self, k: usize) -> Instant {
        if self.spread.is_zero() || k == 0 {
            return self.start;
        }
        let k = k.min(self.batches) as u32;
        self.start + self.spread * k / self.batches as u32
    }

    /// The window the frame's batches are spread over.
    pub fn spread(&self) -> Duration {
        self.spread
    }
}

#[cfg(test)]
#[path = "schedule_tests.rs"]
mod tests;
