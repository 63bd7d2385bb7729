// SPDX-License-Identifier: MPL-2.0
//! Pacing: when may the next batch of a frame's datagrams leave?
//!
//! A frame's batches are spread evenly over a window derived from the frame's duration, so the
//! network (and the receiver's socket buffer) sees a steady stream instead of a burst of a
//! whole frame. The pacer only computes instants; the caller sleeps.

use std::time::{Duration, Instant};

/// Fraction of a frame's duration its datagrams are spread over, leaving headroom for the
/// next frame to start on time.
pub const SPREAD_FRACTION: f64 = 0.8;
/// Upper bound of the spread, so that slow frame rates do not hold a frame back longer than a
/// receiver's default reassembly window allows.
pub const MAX_SPREAD: Duration = Duration::from_millis(20);

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
    batches: u32,
}

impl FrameSchedule {
    /// Schedules `batches` batches of a frame lasting `duration` (None if unknown), starting
    /// at `now`, under `pacing`.
    pub fn new(pacing: Pacing, now: Instant, duration: Option<Duration>, batches: usize) -> Self {
        let spread = match (pacing, duration) {
            (Pacing::Frame, Some(d)) if batches > 1 => d.mul_f64(SPREAD_FRACTION).min(MAX_SPREAD),
            _ => Duration::ZERO,
        };
        FrameSchedule {
            start: now,
            spread,
            batches: batches.max(1).min(u32::MAX as usize) as u32,
        }
    }

    /// The instant batch `k` may leave: batch 0 at once, the last one at the end of the
    /// spread minus one interval.
    pub fn send_at(&self, k: usize) -> Instant {
        if self.spread.is_zero() || k == 0 {
            return self.start;
        }
        let k = k.min(self.batches as usize) as u32;
        self.start + self.spread * k / self.batches
    }

    /// The window the frame's batches are spread over.
    pub fn spread(&self) -> Duration {
        self.spread
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_pacing_sends_everything_now() {
        let now = Instant::now();
        let s = FrameSchedule::new(Pacing::None, now, Some(Duration::from_millis(16)), 100);
        assert_eq!(s.send_at(0), now);
        assert_eq!(s.send_at(99), now);
    }

    #[test]
    fn frame_pacing_spreads_batches_evenly_within_the_frame() {
        let now = Instant::now();
        let d = Duration::from_micros(16_667);
        let s = FrameSchedule::new(Pacing::Frame, now, Some(d), 10);
        assert_eq!(s.send_at(0), now);
        let step = s.send_at(1) - s.send_at(0);
        for k in 1..10 {
            let gap = s.send_at(k + 1) - s.send_at(k);
            let diff = gap.abs_diff(step);
            assert!(
                diff < Duration::from_micros(2),
                "batch {k}: {gap:?} vs {step:?}"
            );
        }
        assert!(s.send_at(9) < now + d);
        assert_eq!(s.spread(), d.mul_f64(SPREAD_FRACTION));
    }

    #[test]
    fn slow_frames_are_spread_over_at_most_max_spread() {
        let now = Instant::now();
        let s = FrameSchedule::new(Pacing::Frame, now, Some(Duration::from_millis(100)), 10);
        assert_eq!(s.spread(), MAX_SPREAD);
        assert!(s.send_at(9) <= now + MAX_SPREAD);
    }

    #[test]
    fn unknown_duration_or_single_batch_is_not_delayed() {
        let now = Instant::now();
        assert_eq!(
            FrameSchedule::new(Pacing::Frame, now, None, 10).send_at(5),
            now
        );
        let one = FrameSchedule::new(Pacing::Frame, now, Some(Duration::from_millis(16)), 1);
        assert_eq!(one.send_at(0), now);
    }
}
