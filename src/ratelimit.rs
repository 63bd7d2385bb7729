// SPDX-License-Identifier: MPL-2.0
//! A rate limit for warnings: at most one per interval, counting the ones held back, so that
//! no input (however hostile) can flood a bus that nobody reads.

use std::time::{Duration, Instant};

/// Lets an event through at most once per interval.
#[derive(Debug, Clone)]
pub struct RateLimit {
    interval: Duration,
    last: Option<Instant>,
    suppressed: u64,
}

impl RateLimit {
    /// At most one event per `interval`.
    pub fn new(interval: Duration) -> Self {
        RateLimit {
            interval,
            last: None,
            suppressed: 0,
        }
    }

    /// Whether an event at `now` may go through: `Some(n)` with the number of events held
    /// back since the last one that went through, or `None` (this one is held back).
    pub fn check(&mut self, now: Instant) -> Option<u64> {
        match self.last {
            Some(t) if now.saturating_duration_since(t) < self.interval => {
                self.suppressed += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.suppressed))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_event_per_interval_goes_through_and_the_rest_are_counted() {
        let t0 = Instant::now();
        let mut r = RateLimit::new(Duration::from_secs(2));
        assert_eq!(r.check(t0), Some(0));
        for ms in 1..100_000u64 {
            assert_eq!(r.check(t0 + Duration::from_micros(ms * 10)), None);
        }
        assert_eq!(r.check(t0 + Duration::from_secs(2)), Some(99_999));
        assert_eq!(r.check(t0 + Duration::from_secs(3)), None);
        assert_eq!(r.check(t0 + Duration::from_secs(4)), Some(1));
    }
}
