// SPDX-License-Identifier: MPL-2.0
//! Unit tests of `rate.rs`, on a virtual clock.

use super::*;

const MS: Duration = Duration::from_millis(1);
/// 1080p UYVY: 4,147,200 bytes.
const FRAME_BITS: u64 = 4_147_200 * 8;
const FRAME_60: Duration = Duration::from_micros(16_667);
const DATAGRAM: usize = 1500;

/// A report of a receiver that took `gbps` over 250 ms, with `dropped` frames dropped and
/// `backlog` datagrams outstanding.
fn took(gbps: f64, dropped: u32, backlog: u64) -> ReportDelta {
    ReportDelta {
        elapsed: 250 * MS,
        received: (gbps * 1e9 * 0.25 / (DATAGRAM * 8) as f64) as u64,
        frames_dropped: dropped,
        frames_complete: 0,
        recent_dropped: dropped,
        recent_complete: 0,
        backlog,
        rtt: Some(MS),
        other_tracks_rate: 0,
    }
}

/// Offers a frame every `interval` for `frames` frames; returns how many were admitted.
fn offer_live(rc: &mut RateControl, t: &mut Instant, frames: usize, interval: Duration) -> usize {
    let mut sent = 0;
    for _ in 0..frames {
        if rc.admit(*t, FRAME_BITS, true, true) == Admit::Now {
            sent += 1;
        }
        *t += interval;
    }
    sent
}

#[test]
fn an_unlimited_sender_sends_every_frame_at_once() {
    let mut rc = RateControl::new(None, DATAGRAM);
    let t0 = Instant::now();
    for k in 0..1000 {
        assert_eq!(rc.admit(t0 + k * MS, FRAME_BITS, true, true), Admit::Now);
    }
    assert_eq!(rc.rate(), None);
    assert_eq!(rc.min_spread(FRAME_BITS), Duration::ZERO);
    // Loss without dropped frames or backlog (repaired by retransmission) changes nothing.
    rc.on_report(&took(2.0, 0, 100), t0 + 2 * HOLD);
    assert_eq!(rc.rate(), None);
}

#[test]
fn a_live_sender_over_its_ceiling_drops_whole_frames_to_fit_it() {
    // 1080p60 is 2 Gbit/s; a 1 Gbit/s ceiling carries half the frames.
    let mut rc = RateControl::new(Some(1_000_000_000), DATAGRAM);
    let mut t = Instant::now();
    let sent = offer_live(&mut rc, &mut t, 600, FRAME_60);
    // 10 s at 1 Gbit/s is 301 frames, plus the bucket's first fill.
    assert!((295..=310).contains(&sent), "{sent}");
    assert_eq!(rc.frames_dropped(), 600 - sent as u64);
    // Each sent frame is spread over at least its time at the ceiling.
    assert_eq!(rc.min_spread(FRAME_BITS).as_millis(), 33);
}

#[test]
fn a_non_live_sender_waits_for_the_rate_instead_of_dropping() {
    let mut rc = RateControl::new(Some(1_000_000_000), DATAGRAM);
    let t0 = Instant::now();
    let mut t = t0;
    for _ in 0..100 {
        loop {
            match rc.admit(t, FRAME_BITS, true, false) {
                Admit::Now => break,
                Admit::At(at) => {
                    assert!(at > t);
                    t = at;
                }
                Admit::Drop => panic!("a non-live sender never drops"),
            }
        }
    }
    assert_eq!(rc.frames_dropped(), 0);
    // 100 frames of 33.2 Mbit at 1 Gbit/s, less the bucket's first fill.
    let secs = (t - t0).as_secs_f64();
    assert!((3.2..3.35).contains(&secs), "{secs}");
}

#[test]
fn key_frames_are_the_last_to_go_and_their_deltas_follow_them() {
    // 2 Mbit/s ceiling, a 25 fps stream of 200 kbit key frames and 80 kbit deltas.
    let mut rc = RateControl::new(Some(2_000_000), DATAGRAM);
    let mut t = Instant::now();
    let (mut keys, mut deltas) = (0, 0);
    for k in 0..250 {
        let key = k % 25 == 0;
        let bits = if key { 200_000 } else { 80_000 };
        if rc.admit(t, bits, key, true) == Admit::Now {
            if key {
                keys += 1;
            } else {
                deltas += 1;
            }
        }
        t += 40 * MS;
    }
    assert_eq!(keys, 10, "every key frame goes");
    assert!(deltas > 150 && deltas < 240, "{deltas}");

    // A key frame that cannot go takes its deltas with it, until the next key frame.
    let mut rc = RateControl::new(Some(MIN_RATE), DATAGRAM);
    let t0 = Instant::now();
    // A stream with delta frames (only there do key frames borrow).
    assert_eq!(rc.admit(t0, 1, false, true), Admit::Now);
    let t = t0 + 60_000 * MS;
    // The first fills the bucket, the second borrows its depth, the third cannot go.
    assert_eq!(rc.admit(t, 10_000_000, true, true), Admit::Now);
    assert_eq!(rc.admit(t, 10_000_000, true, true), Admit::Now);
    assert_eq!(rc.admit(t, 10_000_000, true, true), Admit::Drop);
    assert_eq!(rc.admit(t + 60_000 * MS, 1000, false, true), Admit::Drop);
    assert_eq!(rc.admit(t + 60_000 * MS, 1000, true, true), Admit::Now);
    assert_eq!(rc.admit(t + 60_000 * MS, 1000, false, true), Admit::Now);
}

#[test]
fn a_receiver_dropping_frames_lowers_the_rate_below_what_it_took() {
    let mut rc = RateControl::new(None, DATAGRAM);
    let t0 = Instant::now();
    rc.on_report(&took(1.5, 3, 0), t0);
    let r = rc.rate().expect("limited") as f64;
    assert!((r / 1.5e9 - DECREASE).abs() < 0.01, "{r}");
    assert_eq!(rc.decreases(), 1);
    // The next report, still showing the old rate's damage, does not cut again.
    rc.on_report(&took(1.0, 3, 0), t0 + 250 * MS);
    assert_eq!(rc.decreases(), 1);
    // After the hold, it does.
    rc.on_report(&took(1.0, 2, 0), t0 + HOLD);
    assert_eq!(rc.decreases(), 2);
    assert!(rc.rate().expect("limited") < 900_000_000);
}

#[test]
fn a_growing_backlog_lowers_the_rate_before_anything_is_lost() {
    let mut rc = RateControl::new(None, DATAGRAM);
    let t0 = Instant::now();
    // At 8 Gbit/s, 20 ms of backlog is 13,333 datagrams: no sign yet.
    rc.on_report(&took(8.0, 0, 13_333), t0);
    assert_eq!(rc.rate(), None);
    // 50 ms is.
    rc.on_report(&took(8.0, 0, 33_333), t0 + 250 * MS);
    assert!(rc.rate().is_some());
    // The round trip is not backlog: 100 ms of it in flight is normal on a long path.
    let mut rc = RateControl::new(None, DATAGRAM);
    let mut d = took(1.0, 0, 8_333);
    d.rtt = Some(100 * MS);
    rc.on_report(&d, t0);
    assert_eq!(rc.rate(), None);
}

#[test]
fn the_rate_recovers_gently_while_it_holds_the_sender_back_and_never_passes_the_ceiling() {
    let ceiling = 3_000_000_000u64;
    let mut rc = RateControl::new(Some(ceiling), DATAGRAM);
    let t0 = Instant::now();
    rc.on_report(&took(1.0, 5, 0), t0);
    let low = rc.rate().expect("limited");
    assert!(low < 1_000_000_000);
    // A live 2 Gbit/s stream held back by the rate: it grows 1 % per interval after the hold.
    let mut t = t0;
    offer_live(&mut rc, &mut t, 60, FRAME_60);
    let after_1s = rc.rate().expect("limited");
    assert!(
        after_1s > low && (after_1s as f64) < low as f64 * 1.03,
        "{low} → {after_1s}"
    );
    // Once nobody has fallen behind for a while it grows fast: within ten seconds it
    // carries the whole stream again (overshooting by less than one step), and grows no
    // further.
    offer_live(&mut rc, &mut t, 60 * 10, FRAME_60);
    let carried = rc.rate().expect("limited");
    assert!(
        (2_000_000_000..=(2_000_000_000.0 * RECOVERY_INCREASE) as u64).contains(&carried),
        "{carried}"
    );
    assert_eq!(offer_live(&mut rc, &mut t, 60, FRAME_60), 60);
    // A 4 Gbit/s stream takes it to the ceiling, and no further.
    offer_live(&mut rc, &mut t, 120 * 120, FRAME_60 / 2);
    assert_eq!(rc.rate(), Some(ceiling));
    // A rate that holds nobody back does not grow.
    let mut rc = RateControl::new(None, DATAGRAM);
    rc.on_report(&took(4.0, 5, 0), t0);
    let r = rc.rate();
    let mut t = t0;
    offer_live(&mut rc, &mut t, 600, FRAME_60);
    assert_eq!(rc.rate(), r);
}

#[test]
fn a_non_live_sender_starts_at_its_stream_rate_and_probes_upward() {
    let mut rc = RateControl::new(None, DATAGRAM);
    let t0 = Instant::now();
    rc.start_at(2_000_000_000, t0);
    assert_eq!(rc.rate(), Some(2_500_000_000));
    let mut t = t0;
    // Pushed as fast as it may go for 2 s, no receiver falling behind: 5 % per 250 ms.
    while t < t0 + 2000 * MS {
        match rc.admit(t, FRAME_BITS, true, false) {
            Admit::At(at) => t = at,
            _ => t += MS,
        }
    }
    let r = rc.rate().expect("limited") as f64 / 2.5e9;
    assert!((1.4..1.55).contains(&r), "{r}");
    // Once set, start_at changes nothing.
    rc.start_at(1_000_000_000, t);
    assert!(rc.rate().expect("limited") > 3_000_000_000);
}

#[test]
fn reports_over_too_short_an_interval_or_of_nothing_received_are_ignored() {
    let mut rc = RateControl::new(None, DATAGRAM);
    let t0 = Instant::now();
    let mut d = took(1.0, 10, 1_000_000);
    d.elapsed = 10 * MS;
    rc.on_report(&d, t0);
    d.elapsed = 250 * MS;
    d.received = 0;
    rc.on_report(&d, t0);
    assert_eq!(rc.rate(), None);
}

#[test]
fn a_live_stream_of_key_frames_only_is_cut_to_the_lowered_rate_by_dropping_frames() {
    // Raw video: every frame is a key frame. A receiver that took 880 Mbit/s and dropped
    // frames lowers the rate to 748 Mbit/s; a 2 Gbit/s live stream must then lose frames
    // (not be stretched in time), about 5 of every 8.
    let mut rc = RateControl::new(None, DATAGRAM);
    let mut t = Instant::now();
    offer_live(&mut rc, &mut t, 10, FRAME_60);
    rc.on_report(&took(0.88, 3, 0), t);
    let rate = rc.rate().expect("lowered") as f64;
    assert!((740e6..760e6).contains(&rate), "{rate}");
    let sent = offer_live(&mut rc, &mut t, 120, FRAME_60);
    // 2 s at 748 Mbit/s carries 45 frames of 33 Mbit, the bucket about one more; whole
    // frames fit the rate less closely (one in three here).
    assert!((38..=46).contains(&sent), "{sent} of 120 sent");
}

#[test]
fn a_frame_now_and_then_lost_to_the_network_does_not_slow_the_sender() {
    let mut rc = RateControl::new(None, DATAGRAM);
    let t0 = Instant::now();
    // One frame dropped in the last second: noise.
    rc.on_report(&took(2.0, 1, 0), t0);
    // Bursty loss: 1 of 30 frames over the last second.
    let mut d = took(2.0, 1, 0);
    (d.frames_complete, d.recent_dropped, d.recent_complete) = (14, 1, 29);
    rc.on_report(&d, t0 + HOLD);
    assert_eq!(rc.rate(), None);
    // A receiver that cannot keep up drops frames report after report: that lowers it.
    (
        d.frames_dropped,
        d.frames_complete,
        d.recent_dropped,
        d.recent_complete,
    ) = (2, 13, 4, 26);
    rc.on_report(&d, t0 + 2 * HOLD);
    assert!(rc.rate().is_some());
}

#[test]
fn a_rate_lowered_by_reports_that_stop_recovers_within_seconds() {
    // Two reports (forged, or from a receiver that then left) lower a live 1080p60 raw
    // stream (about 2 Gbit/s) to the least rate; no report follows.
    let mut rc = RateControl::new(None, 1500);
    let t0 = Instant::now();
    rc.decrease(0.0, t0);
    assert_eq!(rc.rate(), Some(MIN_RATE));
    let frame_bits = 1920 * 1080 * 2 * 8;
    let interval = Duration::from_micros(16_667);
    let mut now = t0;
    let mut recovered_at = None;
    for k in 0..60 * 30 {
        now = t0 + interval * k;
        if rc.admit(now, frame_bits, true, true) == Admit::Now && recovered_at.is_none() {
            recovered_at = Some(now - t0);
        }
    }
    let at = recovered_at.expect("frames go again");
    assert!(at < Duration::from_secs(12), "{at:?}");
    // And then every frame goes.
    let last: Vec<Admit> = (0..60)
        .map(|k| rc.admit(now + interval * (k + 1), frame_bits, true, true))
        .collect();
    assert!(last.iter().all(|a| *a == Admit::Now), "{last:?}");
}

#[test]
fn a_receiver_falling_behind_on_one_track_is_held_below_what_it_takes_on_all() {
    let rc = RateControl::new(None, DATAGRAM);
    // Its audio track's report shows frames dropped; it took 2 Mbit/s of audio and, by
    // its video track's latest report, 1 Gbit/s of video.
    let audio = ReportDelta {
        other_tracks_rate: (1e9 / (DATAGRAM * 8) as f64) as u64,
        ..took(0.002, 5, 0)
    };
    let took = rc.observe(&audio).expect("falling behind");
    assert!((took - 1.002e9).abs() < 1e6, "{took}");
    // Its backlog is timed at the track's own rate: 100 audio datagrams at 2 Mbit/s are
    // 600 ms, however fast video goes.
    let backlogged = ReportDelta {
        backlog: 100,
        ..audio
    };
    let backlogged = ReportDelta {
        frames_dropped: 0,
        recent_dropped: 0,
        ..backlogged
    };
    assert!(rc.observe(&backlogged).is_some());
}
