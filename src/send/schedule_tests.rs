// SPDX-License-Identifier: MPL-2.0
//! Unit tests of `pacer.rs`.

use super::*;

const FRAME_60: Duration = Duration::from_micros(16_667);

#[test]
fn no_pacing_sends_everything_now() {
    let now = Instant::now();
    let s = FrameSchedule::new(
        Pacing::None,
        now,
        Some(FRAME_60),
        Duration::ZERO,
        6400,
        64,
        1,
    );
    assert_eq!(s.batches(), 100);
    assert_eq!(s.send_at(0), now);
    assert_eq!(s.send_at(99), now);
}

#[test]
fn frame_pacing_spreads_batches_evenly_within_the_frame() {
    let now = Instant::now();
    let s = FrameSchedule::new(
        Pacing::Frame,
        now,
        Some(FRAME_60),
        Duration::ZERO,
        640,
        64,
        1,
    );
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
        Duration::ZERO,
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
    let s = FrameSchedule::new(
        Pacing::Frame,
        now,
        Some(FRAME_60),
        Duration::ZERO,
        11_700,
        64,
        44,
    );
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
        FrameSchedule::new(Pacing::Frame, now, None, Duration::ZERO, 640, 64, 1).send_at(5),
        now
    );
    let one = FrameSchedule::new(
        Pacing::Frame,
        now,
        Some(FRAME_60),
        Duration::ZERO,
        10,
        64,
        1,
    );
    assert_eq!(one.batches(), 1);
    assert_eq!(one.send_at(0), now);
}

#[test]
fn frame_pacing_spreads_a_frame_over_nearly_its_whole_interval() {
    let now = Instant::now();
    // 1080p60 UYVY: 2,921 datagrams, 44 per GSO send.
    let s = FrameSchedule::new(
        Pacing::Frame,
        now,
        Some(FRAME_60),
        Duration::ZERO,
        2921,
        64,
        44,
    );
    assert_eq!(s.spread(), FRAME_60.mul_f64(0.8));
    // The peak rate is the mean rate / 0.8: 2 Gbit/s peaks at 2.5, not 4.
    let last = s.send_at(s.batches() - 1) - now;
    assert!(last < FRAME_60.mul_f64(0.8), "{last:?}");
    assert!(last > FRAME_60.mul_f64(0.75), "{last:?}");
}

#[test]
fn a_rate_limit_spreads_a_frame_longer_than_the_default() {
    let now = Instant::now();
    // 25 fps: the default spread is capped at MAX_SPREAD, a 1 Gbit/s limit needs 33 ms for
    // a 4 MB frame.
    let need = Duration::from_millis(33);
    let s = FrameSchedule::new(
        Pacing::Frame,
        now,
        Some(Duration::from_millis(40)),
        need,
        2921,
        64,
        44,
    );
    assert_eq!(s.spread(), need);
    // Without a duration the limit alone sets the spread.
    let s = FrameSchedule::new(Pacing::Frame, now, None, need, 2921, 64, 44);
    assert_eq!(s.spread(), need);
    // pacing=none sends bursts whatever the limit (the limit then holds between frames).
    let s = FrameSchedule::new(Pacing::None, now, Some(FRAME_60), need, 2921, 64, 44);
    assert_eq!(s.send_at(s.batches() - 1), now);
}
