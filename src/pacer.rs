// SPDX-License-Identifier: MPL-2.0
//! Pacing: when may the next batch of a frame's datagrams leave?
//!
//! A frame's batches are spread evenly over a window derived from the frame's duration, so the
//! network (and the receiver's socket buffer) sees a steady stream instead of a burst of a
//! whole frame. The pacer only computes instants; the caller sleeps.

use std::time::{Duration, Instant};

/// Fraction of a frame's duration its datagrams are spread over, leaving headroom for the
/// next frame to start on time.
pub const SPREAD_FRACTION: f64 = 0.5;
/// Upper bound of the spread, so that slow frame rates do not hold a frame back longer than a
/// receiver's default reassembly window allows.
pub const MAX_SPREAD: Duration = Duration::from_millis(20);

/// Smallest gap between two paced batches: shorter sleeps cost more in wake-ups and timer
/// slack than they gain in smoothness, so batches grow instead.
pub const MIN_INTERVAL: Duration = Duration::from_micros(200);

/// Pacing policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Pacing {
    /// Send each batch as soon as the previous one is out.
    None,
    /// Spread each frame's batches across its duration.
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
    /// starting at `now`, under `pacing`. Batches hold at least `batch_size` datagrams,
    /// rounded up to a multiple of `align` (the datagrams one GSO send carries), and grow
    /// further so that paced batches are at least [`MIN_INTERVAL`] apart.
    pub fn new(
        pacing: Pacing,
        now: Instant,
        duration: Option<Duration>,
        datagrams: usize,
        batch_size: usize,
        align: usize,
    ) -> Self {
        let align = align.max(1);
        let mut batch_len = batch_size.max(1).div_ceil(align) * align;
        let spread = match (pacing, duration) {
            (Pacing::Frame, Some(d)) if datagrams > batch_len => {
                d.mul_f64(SPREAD_FRACTION).min(MAX_SPREAD)
            }
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
mod tests {
    use super::*;

    const FRAME_60: Duration = Duration::from_micros(16_667);

    #[test]
    fn no_pacing_sends_everything_now() {
        let now = Instant::now();
        let s = FrameSchedule::new(Pacing::None, now, Some(FRAME_60), 6400, 64, 1);
        assert_eq!(s.batches(), 100);
        assert_eq!(s.send_at(0), now);
        assert_eq!(s.send_at(99), now);
    }

    #[test]
    fn frame_pacing_spreads_batches_evenly_within_the_frame() {
        let now = Instant::now();
        let s = FrameSchedule::new(Pacing::Frame, now, Some(FRAME_60), 640, 64, 1);
        assert_eq!(s.batches(), 10);
        assert_eq!(s.send_at(0), now);
        let step = s.send_at(1) - s.send_at(0);
        for k in 1..9 {
            let gap = s.send_at(k + 1) - s.send_at(k);
            assert!(
                gap.abs_diff(step) < Duration::from_micros(2),
                "batch {k}: {gap:?}"
            );
        }
        assert!(s.send_at(9) < now + FRAME_60);
        assert_eq!(s.spread(), FRAME_60.mul_f64(SPREAD_FRACTION));
    }

    #[test]
    fn slow_frames_are_spread_over_at_most_max_spread() {
        let now = Instant::now();
        let s = FrameSchedule::new(
            Pacing::Frame,
            now,
            Some(Duration::from_millis(100)),
            640,
            64,
            1,
        );
        assert_eq!(s.spread(), MAX_SPREAD);
        assert!(s.send_at(9) <= now + MAX_SPREAD);
    }

    #[test]
    fn batches_are_whole_gso_sends_and_never_closer_than_the_minimum_interval() {
        let now = Instant::now();
        // 2160p UYVY at mtu 1500: 11,700 datagrams, 44 per GSO send.
        let s = FrameSchedule::new(Pacing::Frame, now, Some(FRAME_60), 11_700, 64, 44);
        assert_eq!(s.batch_len() % 44, 0);
        assert!(s.batch_len() >= 88);
        let gap = s.send_at(2) - s.send_at(1);
        assert!(gap >= MIN_INTERVAL - Duration::from_micros(1), "{gap:?}");
        assert!(s.batches() * s.batch_len() >= 11_700);
        assert!((s.batches() - 1) * s.batch_len() < 11_700);
    }

    #[test]
    fn unknown_duration_or_single_batch_is_not_delayed() {
        let now = Instant::now();
        assert_eq!(
            FrameSchedule::new(Pacing::Frame, now, None, 640, 64, 1).send_at(5),
            now
        );
        let one = FrameSchedule::new(Pacing::Frame, now, Some(FRAME_60), 10, 64, 1);
        assert_eq!(one.batches(), 1);
        assert_eq!(one.send_at(0), now);
    }
}
