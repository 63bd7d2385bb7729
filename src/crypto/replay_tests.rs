// SPDX-License-Identifier: MPL-2.0
//! Unit tests of the replay window.

use super::*;

#[test]
fn duplicates_are_refused_and_reordering_is_not() {
    let mut w = ReplayWindow::new(1024);
    for s in [10u64, 12, 11, 9, 100, 50] {
        assert_eq!(w.check_and_set(s), Ok(()), "{s}");
    }
    for s in [10u64, 12, 11, 9, 100, 50] {
        assert_eq!(w.check_and_set(s), Err(Replay::Duplicate), "{s}");
    }
    // The first number seen may be anything, including 0.
    let mut w = ReplayWindow::back_channel();
    assert_eq!(w.check_and_set(0), Ok(()));
    assert_eq!(w.check_and_set(0), Err(Replay::Duplicate));
}

#[test]
fn numbers_older_than_the_window_are_too_old() {
    let mut w = ReplayWindow::new(1024);
    assert_eq!(w.bits(), 1024);
    w.check_and_set(5000).unwrap();
    // 5000 - 1023 is the oldest still remembered.
    assert_eq!(w.check_and_set(5000 - 1023), Ok(()));
    assert_eq!(w.check_and_set(5000 - 1024), Err(Replay::TooOld));
    assert_eq!(w.check_and_set(0), Err(Replay::TooOld));
    // Sizes round up to whole 64-bit blocks.
    assert_eq!(ReplayWindow::new(1000).bits(), 1024);
    assert_eq!(ReplayWindow::new(1).bits(), 64);
    assert_eq!(ReplayWindow::default().bits(), 1 << 18);
}

#[test]
fn every_number_in_the_window_is_remembered_as_it_slides() {
    let mut w = ReplayWindow::new(256);
    for s in 0..5000u64 {
        w.check_and_set(s).unwrap();
        // Everything in the window is a duplicate, the one below it too old.
        for back in [0u64, 1, 63, 64, 65, 200, 255] {
            if back <= s {
                assert_eq!(
                    w.check_and_set(s - back),
                    Err(Replay::Duplicate),
                    "{s} {back}"
                );
            }
        }
        if s >= 256 {
            assert_eq!(w.check_and_set(s - 256), Err(Replay::TooOld));
        }
    }
}

#[test]
fn a_large_jump_forgets_the_old_numbers() {
    let mut w = ReplayWindow::new(1024);
    for s in 0..1024u64 {
        w.check_and_set(s).unwrap();
    }
    // A jump of exactly a ring's length and more: nothing old may alias a new number.
    for jump in [1024u64 + 64, 1 << 40] {
        let top = 1023 + jump;
        w.check_and_set(top).unwrap();
        for s in (top - 1023)..top {
            assert_eq!(w.check_and_set(s), Ok(()), "jump {jump}, {s}");
        }
    }
}

#[test]
fn the_window_spans_the_32_bit_wrap() {
    let mut w = ReplayWindow::default();
    let wrap = 1u64 << 32;
    for s in (wrap - 1000)..(wrap + 1000) {
        w.check_and_set(s).unwrap();
    }
    // Same 32-bit seq, other wrap: not a duplicate of each other.
    let mut w = ReplayWindow::default();
    w.check_and_set(5).unwrap();
    w.check_and_set(wrap + 5).unwrap();
    assert_eq!(w.check_and_set(wrap + 5), Err(Replay::Duplicate));
    assert_eq!(w.check_and_set(5), Err(Replay::TooOld));
    assert_eq!(w.check_and_set(wrap - 5), Ok(()));
    assert_eq!(w.check_and_set(u64::MAX), Ok(()));
    assert_eq!(w.check_and_set(u64::MAX), Err(Replay::Duplicate));
}
