// SPDX-License-Identifier: MPL-2.0
//! Unit tests of `recovery.rs`, on a virtual clock.

use super::*;

const MS: Duration = Duration::from_millis(1);

#[test]
fn a_gap_is_asked_for_after_the_reorder_allowance_as_one_range() {
    let t0 = Instant::now();
    let mut n = NackTracker::new(Config::default());
    n.received(10, t0);
    n.received(14, t0);
    assert_eq!(n.poll(t0 + MS), None, "reordered datagrams get 2 ms");
    assert_eq!(n.poll(t0 + 2 * MS), Some(vec![(11, 3)]));
    // Not again before the retry interval.
    assert_eq!(n.poll(t0 + 10 * MS), None);
    assert_eq!(n.next_deadline(), Some(t0 + 17 * MS));
    // One arrives: only the rest is asked again.
    n.received(12, t0 + 12 * MS);
    assert_eq!(n.poll(t0 + 17 * MS), Some(vec![(11, 1), (13, 1)]));
}

#[test]
fn a_reordered_datagram_is_never_asked_for() {
    let t0 = Instant::now();
    let mut n = NackTracker::new(Config::default());
    n.received(1, t0);
    n.received(3, t0);
    n.received(2, t0 + MS / 2);
    assert_eq!(n.poll(t0 + 5 * MS), None);
    assert!(n.is_empty());
}

#[test]
fn asking_stops_at_the_give_up_time_and_wraps_around() {
    let t0 = Instant::now();
    let mut n = NackTracker::new(Config::default());
    n.received(u32::MAX - 1, t0);
    n.received(1, t0);
    assert_eq!(n.poll(t0 + 2 * MS), Some(vec![(u32::MAX, 2)]));
    assert!(n.poll(t0 + 49 * MS).is_some());
    assert_eq!(n.poll(t0 + 50 * MS), None);
    assert!(n.is_empty());
}

#[test]
fn a_huge_jump_is_a_resync_and_the_tracker_stays_bounded() {
    let t0 = Instant::now();
    let mut n = NackTracker::new(Config::default());
    n.received(0, t0);
    n.received(1_000_000, t0);
    assert!(n.is_empty(), "a jump is not a loss");
    let mut seq = 1_000_000u32;
    for _ in 0..10 {
        seq += MAX_GAP;
        n.received(seq, t0);
    }
    assert!(n.len() <= MAX_MISSING);
    let ranges = n.poll(t0 + 2 * MS).unwrap();
    assert!(ranges.len() <= MAX_RANGES);
}

#[test]
fn requests_wait_for_the_measured_round_trip_before_asking_again() {
    let t0 = Instant::now();
    let mut n = NackTracker::new(Config {
        give_up: 200 * MS,
        ..Config::default()
    });
    n.received(0, t0);
    n.received(2, t0);
    assert_eq!(n.poll(t0 + 2 * MS), Some(vec![(1, 1)]));
    // The resend takes 40 ms to come back: the round trip is learnt.
    n.resent(1, t0 + 42 * MS);
    assert_eq!(n.rtt(), Some(40 * MS));
    n.received(4, t0 + 50 * MS);
    assert_eq!(n.poll(t0 + 52 * MS), Some(vec![(3, 1)]));
    // Not asked again after 15 ms, but after the round trip and three times its variation
    // (a quarter of the first sample): 70 ms.
    assert_eq!(n.poll(t0 + 70 * MS), None);
    assert_eq!(n.next_deadline(), Some(t0 + 122 * MS));
    assert_eq!(n.poll(t0 + 122 * MS), Some(vec![(3, 1)]));
    // An answer to a number asked for twice says nothing of the round trip.
    n.resent(3, t0 + 125 * MS);
    assert_eq!(n.rtt(), Some(40 * MS));
}

#[test]
fn a_late_original_gives_no_round_trip() {
    let t0 = Instant::now();
    let mut n = NackTracker::new(Config::default());
    n.received(0, t0);
    n.received(2, t0);
    assert!(n.poll(t0 + 2 * MS).is_some());
    n.received(1, t0 + 3 * MS);
    assert_eq!(n.rtt(), None);
    assert!(n.is_empty());
}

#[test]
fn a_frame_whose_end_never_comes_has_its_end_asked_for() {
    let t0 = Instant::now();
    let mut n = NackTracker::new(Config::default());
    // A frame of datagrams 0..=9 paced in batches 1 ms apart; 8 and 9 are lost and nothing
    // follows (the stream's last frame).
    n.received(0, t0);
    n.expect_through(9, None);
    for k in 1..8 {
        n.received(k, t0 + k * MS);
    }
    let silent = t0 + 7 * MS;
    assert_eq!(n.poll(silent + 3 * MS), None, "a pause like the others");
    let due = n.next_deadline().expect("a deadline for the end");
    assert_eq!(due, silent + MIN_TAIL_WAIT);
    assert_eq!(n.poll(due), Some(vec![(8, 2)]));
    // When the end does come, nothing more is asked.
    n.resent(8, due + 5 * MS);
    n.resent(9, due + 5 * MS);
    assert!(n.is_empty());
    assert_eq!(n.rtt(), Some(5 * MS));
}

#[test]
fn slow_pacing_lengthens_the_wait_for_a_frame_end() {
    let t0 = Instant::now();
    let mut n = NackTracker::new(Config::default());
    n.received(0, t0);
    n.expect_through(4, Some(16 * MS));
    // Batches 10 ms apart: a 10 ms silence is no loss.
    for k in 1..4 {
        n.received(k, t0 + 10 * k * MS);
    }
    assert_eq!(n.poll(t0 + 45 * MS), None);
    assert_eq!(n.next_deadline(), Some(t0 + 50 * MS));
    n.received(4, t0 + 40 * MS + 9 * MS);
    assert_eq!(n.poll(t0 + 60 * MS), None);
    assert!(n.is_empty());
}

#[test]
fn a_frame_end_is_awaited_for_the_frame_duration_at_most_half_the_give_up_time() {
    let t0 = Instant::now();
    let mut n = NackTracker::new(Config::default());
    n.received(0, t0);
    // A 60 fps frame: its end may follow a pause of the sender's of up to 16.7 ms.
    n.expect_through(5, Some(Duration::from_nanos(16_666_667)));
    n.received(1, t0);
    assert_eq!(
        n.next_deadline(),
        Some(t0 + Duration::from_nanos(16_666_667))
    );
    // A 1 fps frame: half the give-up time (50 ms by default).
    n.expect_through(5, Some(Duration::from_secs(1)));
    assert_eq!(n.next_deadline(), Some(t0 + 25 * MS));
    assert_eq!(n.poll(t0 + 25 * MS), Some(vec![(2, 4)]));
}

#[test]
fn a_round_trip_longer_than_the_retry_is_still_learnt() {
    let t0 = Instant::now();
    let mut n = NackTracker::new(Config {
        give_up: 200 * MS,
        ..Config::default()
    });
    n.received(0, t0);
    n.received(2, t0);
    // Asked at 2, 17 and 32 ms; the first answer comes 40 ms after the first request.
    for at in [2, 17, 32] {
        assert_eq!(n.poll(t0 + at * MS), Some(vec![(1, 1)]));
    }
    n.resent(1, t0 + 42 * MS);
    assert_eq!(n.rtt(), Some(40 * MS));
    // From then on, no request is repeated before an answer could come.
    n.received(4, t0 + 50 * MS);
    assert!(n.poll(t0 + 52 * MS).is_some());
    assert_eq!(n.poll(t0 + 70 * MS), None);
}

#[test]
fn with_fec_a_gap_waits_for_its_blocks_repairs_before_it_is_asked_for() {
    let t0 = Instant::now();
    let mut n = NackTracker::new(Config::default());
    // The last repair of block 80..90: the sender sends FEC.
    n.received(90, t0);
    n.fec_seen(90, 80, 10, 0, 1, t0);
    // Block 91..101 loses 93 and 97; its two repairs come (as 101, 102) 5 ms later.
    for seq in [91, 92, 94, 95, 96, 98, 99, 100] {
        n.received(seq, t0);
    }
    assert_eq!(
        n.poll(t0 + 4 * MS),
        None,
        "the block's repairs may restore them"
    );
    n.received(101, t0 + 5 * MS);
    n.fec_seen(101, 91, 10, 0, 2, t0 + 5 * MS);
    assert_eq!(n.poll(t0 + 5 * MS), None, "one repair in, one to come");
    n.received(102, t0 + 5 * MS);
    n.fec_seen(102, 91, 10, 1, 2, t0 + 5 * MS);
    // FEC restored 97 but not 93.
    n.forget(97);
    assert_eq!(n.poll(t0 + 5 * MS), Some(vec![(93, 1)]));
}

#[test]
fn with_fec_a_gap_whose_repairs_never_come_is_asked_for_after_the_fec_wait() {
    let t0 = Instant::now();
    let cfg = Config::default();
    let mut n = NackTracker::new(cfg);
    n.received(9, t0);
    n.fec_seen(9, 0, 9, 0, 1, t0);
    n.received(10, t0);
    n.received(12, t0);
    assert_eq!(n.poll(t0 + cfg.reorder), None);
    assert_eq!(n.next_deadline(), Some(t0 + cfg.reorder + cfg.fec_wait));
    assert_eq!(n.poll(t0 + cfg.reorder + cfg.fec_wait), Some(vec![(11, 1)]));
}

#[test]
fn without_fec_for_a_second_gaps_are_asked_for_at_once_again() {
    let t0 = Instant::now();
    let cfg = Config::default();
    let mut n = NackTracker::new(cfg);
    n.received(9, t0);
    n.fec_seen(9, 0, 9, 0, 1, t0);
    let t1 = t0 + FEC_IN_USE;
    n.received(10, t1);
    n.received(12, t1);
    assert_eq!(n.poll(t1 + cfg.reorder), Some(vec![(11, 1)]));
}

#[test]
fn a_missing_repair_of_a_block_is_not_asked_for_once_a_later_one_came() {
    let t0 = Instant::now();
    let mut n = NackTracker::new(Config::default());
    n.received(9, t0);
    // Repairs 10, 11, 12 of block 0..10: 10 and 11 lost.
    n.received(12, t0);
    n.fec_seen(12, 0, 10, 2, 3, t0);
    assert!(n.is_empty());
    assert_eq!(n.poll(t0 + 100 * MS), None);
}

#[test]
fn with_fec_a_later_frame_releases_the_gaps_of_the_frames_before_it() {
    let t0 = Instant::now();
    let cfg = Config::default();
    let mut n = NackTracker::new(cfg);
    n.received(9, t0);
    n.fec_seen(9, 0, 9, 0, 1, t0);
    n.received(10, t0);
    n.received(12, t0);
    // The repairs of 10..13 are lost; the next frame starts at 15.
    n.received(15, t0 + MS);
    n.fec_release(15, 15);
    assert_eq!(n.poll(t0 + MS + cfg.reorder), Some(vec![(11, 1), (13, 2)]));
    // Never past the datagram that told it, never back.
    n.fec_release(1000, 16);
    n.fec_release(3, 16);
    n.received(16, t0 + MS);
    n.received(18, t0 + MS);
    assert_eq!(
        n.poll(t0 + MS + cfg.reorder),
        None,
        "17 waits for its repairs"
    );
}
