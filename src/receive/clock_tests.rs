// SPDX-License-Identifier: MPL-2.0
//! Unit tests of `clock.rs`, on a virtual clock.

use super::*;

const MS: u64 = 1_000_000;
const FRAME: u64 = 16_666_667;

fn mapper() -> (TimeMapper, OffsetEstimator) {
    (
        TimeMapper::new(Mode::SenderClock),
        OffsetEstimator::new(70 * MS),
    )
}

#[test]
fn first_frame_is_stamped_with_its_arrival() {
    let (mut m, mut e) = mapper();
    let r = m.map(&mut e, 5000 * MS, Some(100 * MS), None);
    assert_eq!(r.pts, Some(5000 * MS));
    assert!(!r.resynced);
    // With a DTS, the decoding time is the arrival and the PTS keeps its distance.
    let (mut m, mut e) = mapper();
    let r = m.map(&mut e, 5000 * MS, Some(100 * MS), Some(90 * MS));
    assert_eq!(r.dts, Some(5000 * MS));
    assert_eq!(r.pts, Some(5010 * MS));
}

/// A deterministic jitter pattern of 0..4 ms.
fn jitter(i: u64) -> u64 {
    (i * 7919 % 41) * MS / 10
}

#[test]
fn jitter_never_reaches_the_timestamps() {
    let (mut m, mut e) = mapper();
    let mut last: Option<u64> = None;
    for i in 0..600 {
        let sent = i * FRAME;
        let r = m.map(&mut e, 1000 * MS + sent + jitter(i), Some(sent), None);
        let pts = r.pts.unwrap();
        if let Some(prev) = last {
            let step = pts - prev;
            assert!(step.abs_diff(FRAME) < MS, "frame {i}: step {step} ns");
        }
        assert!(!r.resynced);
        last = Some(pts);
    }
    // After a while the mapping sits at the fastest arrival seen (jitter 0).
    let off = e.offset().unwrap();
    assert!((off - 1000 * MS as i128).abs() < MS as i128 / 2, "{off}");
}

#[test]
fn one_frame_80ms_late_neither_reverses_nor_restarts_the_mapping() {
    let (mut m, mut e) = mapper();
    let mut pts = Vec::new();
    for i in 0..120u64 {
        let sent = i * FRAME;
        let late = if i == 60 { 80 * MS } else { 0 };
        let r = m.map(&mut e, 1000 * MS + sent + late, Some(sent), None);
        assert!(!r.resynced, "frame {i} restarted the mapping");
        pts.push(r.pts.unwrap());
    }
    for (i, w) in pts.windows(2).enumerate() {
        assert!(w[1] >= w[0], "PTS went back at frame {}", i + 1);
        assert!(
            w[1] - w[0] > FRAME - MS,
            "step {} at {}",
            w[1] - w[0],
            i + 1
        );
    }
    // The late frame keeps its place on the sender's timeline.
    assert_eq!(pts[60] - pts[59], FRAME);
}

#[test]
fn a_late_first_frame_is_corrected_slowly_without_a_step() {
    let (mut m, mut e) = mapper();
    // The first frame is 30 ms late; every later one is on time.
    let mut last = m.map(&mut e, 1030 * MS, Some(0), None).pts.unwrap();
    for i in 1..400u64 {
        let sent = i * FRAME;
        let pts = m
            .map(&mut e, 1000 * MS + sent, Some(sent), None)
            .pts
            .unwrap();
        let step = pts - last;
        assert!(step.abs_diff(FRAME) < MS, "frame {i}: step {step}");
        last = pts;
    }
    // 1 % of 400 frames' 6.7 s is 67 ms: the 30 ms are long caught up.
    assert_eq!(e.offset(), Some(1000 * MS as i128));
}

#[test]
fn a_sender_clock_running_slow_is_followed() {
    // The sender's clock runs 100 ppm slow: arrivals drift later and later.
    let (mut m, mut e) = mapper();
    let mut max_lag = 0i128;
    for i in 0..3600u64 {
        let sent = i * FRAME;
        let arrival = 1000 * MS + sent + sent / 10_000;
        let pts = m.map(&mut e, arrival, Some(sent), None).pts.unwrap();
        max_lag = max_lag.max(i128::from(arrival) - i128::from(pts));
    }
    // Within the windowed minimum's memory (≤ 2 s × 100 ppm = 0.2 ms) of the arrivals.
    assert!(max_lag < MS as i128 / 2, "lag {max_lag} ns");
}

#[test]
fn a_persistent_jump_restarts_the_mapping_once() {
    let (mut m, mut e) = mapper();
    for i in 0..10u64 {
        m.map(&mut e, 1000 * MS + i * FRAME, Some(i * FRAME), None);
    }
    // The sender paused for 2 s: its timeline goes on where it stopped.
    let mut resyncs = 0;
    let mut last = 0;
    for i in 10..20u64 {
        let r = m.map(&mut e, 3000 * MS + i * FRAME, Some(i * FRAME), None);
        resyncs += u32::from(r.resynced);
        assert!(r.pts.unwrap() >= last);
        last = r.pts.unwrap();
    }
    assert_eq!(resyncs, 1);
    // Mapped onto the new arrivals from the resync on.
    assert_eq!(last, 3000 * MS + 19 * FRAME);
}

#[test]
fn a_timeline_jumping_back_never_makes_timestamps_decrease() {
    let (mut m, mut e) = mapper();
    let mut last = 0;
    for i in 0..30u64 {
        // At frame 10 the sender's timestamps restart from 0 (a new segment).
        let sent = if i < 10 {
            (1000 + i) * FRAME
        } else {
            (i - 10) * FRAME
        };
        let r = m.map(&mut e, 500 * MS + i * FRAME, Some(sent), None);
        assert!(r.pts.unwrap() >= last, "frame {i}");
        last = r.pts.unwrap();
    }
}

#[test]
fn streams_sharing_an_estimator_keep_their_relative_timing() {
    // Video every 16.7 ms and audio every 10 ms from one sender clock, with different
    // network delays: both mapped through one estimator stay aligned on the sender timeline.
    let mut e = OffsetEstimator::new(70 * MS);
    let (mut v, mut a) = (
        TimeMapper::new(Mode::SenderClock),
        TimeMapper::new(Mode::SenderClock),
    );
    let mut av = Vec::new();
    for t in (0..3000 * MS).step_by(MS as usize) {
        if t % FRAME < MS {
            let s = t - t % FRAME;
            let pv = v.map(
                &mut e,
                200 * MS + s + 3 * MS + jitter(t / MS),
                Some(s),
                None,
            );
            av.push((s, pv.pts.unwrap()));
        }
        if t % (10 * MS) == 0 {
            let pa = a.map(
                &mut e,
                200 * MS + t + MS / 2 + jitter(t / MS + 3),
                Some(t),
                None,
            );
            av.push((t, pa.pts.unwrap()));
        }
    }
    // Once settled, every mapped timestamp is its sender time plus one common offset.
    let settled: Vec<i128> = av[av.len() / 2..]
        .iter()
        .map(|&(s, p)| i128::from(p) - i128::from(s))
        .collect();
    let (lo, hi) = (settled.iter().min().unwrap(), settled.iter().max().unwrap());
    assert!(hi - lo < MS as i128 / 10, "offsets spread {lo}..{hi}");
}

#[test]
fn arrival_mode_follows_arrivals_and_never_decreases() {
    let mut m = TimeMapper::new(Mode::Arrival);
    let mut e = OffsetEstimator::new(70 * MS);
    assert_eq!(m.map(&mut e, 100 * MS, Some(5), None).pts, Some(100 * MS));
    assert_eq!(m.map(&mut e, 120 * MS, Some(6), None).pts, Some(120 * MS));
    // An arrival stamped earlier than the last one (clock step) is held at the last.
    assert_eq!(m.map(&mut e, 110 * MS, Some(7), None).pts, Some(120 * MS));
    assert_eq!(e.offset(), None, "arrival mode learns no offset");
}

#[test]
fn frames_without_timestamps_get_their_arrival() {
    let (mut m, mut e) = mapper();
    let r = m.map(&mut e, 77, None, None);
    assert_eq!(r.pts, Some(77));
    assert_eq!(r.dts, None);
    // A DTS alone stays a DTS: no PTS is invented.
    let r = m.map(&mut e, 100, None, Some(50));
    assert_eq!(r.pts, None);
    assert_eq!(r.dts, Some(100));
}

/// A frame with sender PTS `pts` (ns) and no DTS.
fn frame_at(pts: u64) -> FrameInfo {
    FrameInfo {
        frame: 0,
        flags: 0,
        pts,
        dts: TIME_NONE,
        duration: FRAME,
        info_gen: 0,
        len: 1,
    }
}

/// A stream of session `session` from `host`, reporting its clock as `report` says.
fn origin(session: u64, host: [u8; 4], report: Option<SenderReport>) -> Origin {
    Origin {
        session: Some(session),
        from: Some(std::net::SocketAddr::from((host, 5004))),
        report,
    }
}

use crate::protocol::SenderReport;

/// A sender report on the real-time clock, `shift` ns ahead of the sender's running time.
fn realtime(shift: u64) -> SenderReport {
    SenderReport {
        running_time: 0,
        reference_time: shift,
        clock: reference_clock::REALTIME,
        ..Default::default()
    }
}

#[test]
fn a_new_sender_starts_the_mapping_over_as_a_discontinuity() {
    let table = ClockTable::default();
    let mut c = StreamClock::new(Mode::SenderClock, 70 * MS);
    let a = origin(1, [192, 0, 2, 1], None);
    let s = c.map(&table, &a, Some(0), Some(1000 * MS), &frame_at(10 * MS));
    assert_eq!(
        (s.pts, s.discont, s.duration),
        (Some(1000 * MS), false, Some(FRAME))
    );
    let s = c.map(
        &table,
        &a,
        Some(0),
        Some(1000 * MS + FRAME),
        &frame_at(10 * MS + FRAME),
    );
    assert_eq!(s.pts, Some(1000 * MS + FRAME));
    // Another session: its own timeline, mapped afresh from its first frame's arrival.
    let b = origin(2, [192, 0, 2, 1], None);
    let s = c.map(&table, &b, Some(0), Some(1100 * MS), &frame_at(5_000 * MS));
    assert_eq!((s.pts, s.discont), (Some(1100 * MS), true));
    // Without a running time there is nothing to map onto.
    let s = c.map(&table, &b, Some(0), None, &frame_at(5_000 * MS + FRAME));
    assert_eq!((s.pts, s.dts, s.discont), (None, None, false));
}

#[test]
fn streams_of_one_sender_host_on_a_real_clock_share_one_estimator() {
    let table = ClockTable::default();
    let host = [192, 0, 2, 1];
    let mut video = StreamClock::new(Mode::SenderClock, 70 * MS);
    let mut audio = StreamClock::new(Mode::SenderClock, 70 * MS);
    // Two sessions with different running times, one real-time clock: video's running
    // time is 1 s behind the clock, audio's 3 s.
    let v = origin(1, host, Some(realtime(1000 * MS)));
    let a = origin(2, host, Some(realtime(3000 * MS)));
    let s = video.map(&table, &v, Some(0), Some(500 * MS), &frame_at(4000 * MS));
    assert_eq!(s.pts, Some(500 * MS));
    // The same clock instant (5 s), the audio frame arriving 2 ms later than the video one:
    // placed at the same running time, not at its own arrival.
    let s = audio.map(&table, &a, Some(0), Some(502 * MS), &frame_at(2000 * MS));
    assert_eq!(s.pts, Some(500 * MS));
    // Another pipeline (base time) or another host has an estimator of its own.
    let mut other = StreamClock::new(Mode::SenderClock, 70 * MS);
    let s = other.map(&table, &a, Some(7), Some(502 * MS), &frame_at(2000 * MS));
    assert_eq!(s.pts, Some(502 * MS));
    let o = origin(3, [192, 0, 2, 2], Some(realtime(3000 * MS)));
    let s = StreamClock::new(Mode::SenderClock, 70 * MS).map(
        &table,
        &o,
        Some(0),
        Some(502 * MS),
        &frame_at(2000 * MS),
    );
    assert_eq!(s.pts, Some(502 * MS));
}

#[test]
fn arrival_mode_ignores_the_sender_clock() {
    let table = ClockTable::default();
    let mut c = StreamClock::new(Mode::Arrival, 70 * MS);
    let o = origin(1, [192, 0, 2, 1], Some(realtime(1000 * MS)));
    let s = c.map(&table, &o, Some(0), Some(700 * MS), &frame_at(4000 * MS));
    assert_eq!(s.pts, Some(700 * MS));
    c.restart();
    let s = c.map(
        &table,
        &o,
        Some(0),
        Some(10 * MS),
        &frame_at(4000 * MS + FRAME),
    );
    assert_eq!((s.pts, s.discont), (Some(10 * MS), false));
}

#[test]
fn tracks_of_one_session_share_one_estimator_without_a_reference_clock() {
    let table = ClockTable::default();
    let host = [192, 0, 2, 1];
    let mut video = StreamClock::new(Mode::SenderClock, 70 * MS);
    let mut audio = StreamClock::new(Mode::SenderClock, 70 * MS);
    let session = origin(1, host, None);
    // The video frame at sender time 4 s arrives at 500 ms; the audio frame of the same
    // instant 3 ms later (it came another way, or waited behind the video): both are
    // placed at 500 ms, so the sender's relative timing is kept.
    let s = video.map(
        &table,
        &session,
        Some(0),
        Some(500 * MS),
        &frame_at(4000 * MS),
    );
    assert_eq!(s.pts, Some(500 * MS));
    let s = audio.map(
        &table,
        &session,
        Some(0),
        Some(503 * MS),
        &frame_at(4000 * MS),
    );
    assert_eq!(s.pts, Some(500 * MS));
    // Another session of the same host has a timeline of its own.
    let other = origin(2, host, None);
    let s = StreamClock::new(Mode::SenderClock, 70 * MS).map(
        &table,
        &other,
        Some(0),
        Some(503 * MS),
        &frame_at(4000 * MS),
    );
    assert_eq!(s.pts, Some(503 * MS));
}
