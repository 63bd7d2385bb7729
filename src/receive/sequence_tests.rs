// SPDX-License-Identifier: MPL-2.0
//! Unit tests of `sequence.rs`.

use super::*;

#[test]
fn numbers_older_than_the_start_are_not_counted_as_recovered_losses() {
    let mut t = SequenceTracker::default();
    t.track(100);
    assert_eq!(t.track(99), SeqEvent::Reordered); // sent before we started counting
    t.track(102); // 101 lost
    assert_eq!(t.lost(), 1);
}

#[test]
fn sequence_tracker_follows_a_run_of_unplaceable_numbers() {
    let mut t = SequenceTracker::default();
    t.track(1 << 30); // a stray number far away
    t.track(10);
    assert_eq!(t.track(11), SeqEvent::TooOld);
    for k in 12..12 + SEQ_RESYNC_RUN {
        t.track(k);
    }
    assert_eq!(t.track(100), SeqEvent::InOrder);
}

#[test]
fn sequence_tracker_counts_loss_reorder_and_duplicates() {
    let mut t = SequenceTracker::default();
    assert_eq!(t.track(u32::MAX - 1), SeqEvent::InOrder);
    assert_eq!(t.track(1), SeqEvent::InOrder); // skips MAX and 0
    assert_eq!(t.lost(), 2);
    assert_eq!(t.track(0), SeqEvent::Reordered);
    assert_eq!(t.lost(), 1);
    assert_eq!(t.track(0), SeqEvent::Duplicate);
    assert_eq!(t.track(1), SeqEvent::Duplicate);
    assert_eq!(t.track(1u32.wrapping_sub(SEQ_WINDOW + 5)), SeqEvent::TooOld);
    // A huge jump is a resync, not a loss of millions.
    assert_eq!(t.track(1 << 30), SeqEvent::InOrder);
    assert_eq!(t.lost(), 1);
}
