// SPDX-License-Identifier: MPL-2.0
//! Unit tests of `timestamps.rs`.

use super::*;

const MS: u64 = 1_000_000;

#[test]
fn first_frame_is_stamped_with_its_arrival() {
    let mut m = TimeMapper::new(1000 * MS);
    let r = m.map(5000 * MS, Some(100 * MS), None);
    assert_eq!(r.pts, Some(5000 * MS));
    assert!(!r.resynced);
    // With a DTS, the decoding time is the arrival and the PTS keeps its distance.
    let mut m = TimeMapper::new(1000 * MS);
    let r = m.map(5000 * MS, Some(100 * MS), Some(90 * MS));
    assert_eq!(r.dts, Some(5000 * MS));
    assert_eq!(r.pts, Some(5010 * MS));
}

#[test]
fn jitter_does_not_reach_the_timestamps() {
    let mut m = TimeMapper::new(1000 * MS);
    m.map(1000 * MS, Some(0), None);
    // Frame 1 is 3 ms late on the network: still stamped at the sender's spacing.
    let r = m.map(1020 * MS, Some(17 * MS), None);
    let pts = r.pts.unwrap();
    assert!(pts.abs_diff(1017 * MS) < MS / 50, "{pts}");
    // An early arrival pulls the mapping earlier at once.
    let r = m.map(1030 * MS, Some(33 * MS), None);
    assert_eq!(r.pts, Some(1030 * MS));
}

#[test]
fn a_jump_beyond_the_tolerance_resyncs() {
    let mut m = TimeMapper::new(1000 * MS);
    m.map(1000 * MS, Some(0), None);
    let r = m.map(1016 * MS, Some(3_600_000 * MS), None);
    assert!(r.resynced);
    assert_eq!(r.pts, Some(1016 * MS));
}

#[test]
fn frames_without_timestamps_get_their_arrival() {
    let mut m = TimeMapper::new(1000 * MS);
    let r = m.map(77, None, None);
    assert_eq!(r.pts, Some(77));
    assert_eq!(r.dts, None);
    // A DTS alone stays a DTS: no PTS is invented.
    let r = m.map(100, None, Some(50));
    assert_eq!(r.pts, None);
    assert_eq!(r.dts, Some(100));
}
