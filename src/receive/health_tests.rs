// SPDX-License-Identifier: MPL-2.0
//! Unit tests of `health.rs`, on a virtual clock.

use super::*;

#[test]
fn drops_are_blamed_on_late_datagrams_before_loss_at_most_once_per_interval() {
    let t0 = Instant::now();
    let mut h = Health::default();
    assert!(h.check(t0, Stats::default()).is_empty());
    let mut s = Stats {
        frames_dropped: 3,
        datagrams_late: 2,
        datagrams_lost: 9,
        ..Default::default()
    };
    assert!(
        h.check(t0 + Duration::from_secs(1), s).is_empty(),
        "too soon"
    );
    let t1 = t0 + HEALTH_INTERVAL;
    assert_eq!(
        h.check(t1, s),
        vec![Warning::WindowTooShort { frames: 3, late: 2 }]
    );
    // Two more frames dropped, only to loss this time.
    s.frames_dropped = 5;
    s.datagrams_lost = 12;
    assert_eq!(
        h.check(t1 + HEALTH_INTERVAL, s),
        vec![Warning::Loss { frames: 2, lost: 3 }]
    );
    // Nothing new: nothing said.
    assert!(h.check(t1 + 2 * HEALTH_INTERVAL, s).is_empty());
}

#[test]
fn frames_too_large_are_warned_of_even_without_drops() {
    let t0 = Instant::now();
    let mut h = Health::default();
    h.check(t0, Stats::default());
    let s = Stats {
        datagrams_too_large: 40,
        largest_refused_frame: 1 << 28,
        ..Default::default()
    };
    assert_eq!(
        h.check(t0 + HEALTH_INTERVAL, s),
        vec![Warning::FrameTooLarge {
            datagrams: 40,
            largest: 1 << 28
        }]
    );
}
