// SPDX-License-Identifier: MPL-2.0
//! Unit tests of `subscription.rs`, on a virtual clock.

use super::*;

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([192, 0, 2, 1], port))
}

#[test]
fn renewals_come_every_second_each_a_five_second_lease() {
    let t0 = Instant::now();
    let mut s = Subscription::default();
    assert_eq!(s.poll(t0), None, "no target, nothing to send");
    s.set_target(Some(addr(5004)));
    assert_eq!(s.poll(t0), Some((addr(5004), SUBSCRIBE_LEASE)));
    assert_eq!(s.poll(t0), None);
    assert_eq!(s.next_deadline(), Some(t0 + SUBSCRIBE_INTERVAL));
    assert_eq!(s.poll(t0 + Duration::from_millis(999)), None);
    let t1 = t0 + SUBSCRIBE_INTERVAL;
    assert_eq!(s.poll(t1), Some((addr(5004), SUBSCRIBE_LEASE)));
    assert_eq!(s.next_deadline(), Some(t1 + SUBSCRIBE_INTERVAL));
}

#[test]
fn a_new_target_leaves_the_old_sender_at_once_and_subscribes_to_the_new() {
    let t0 = Instant::now();
    let mut s = Subscription::default();
    s.set_target(Some(addr(1)));
    s.poll(t0);
    s.set_target(Some(addr(2)));
    let t = t0 + Duration::from_millis(10);
    assert_eq!(s.poll(t), Some((addr(1), Duration::ZERO)));
    assert_eq!(s.poll(t), Some((addr(2), SUBSCRIBE_LEASE)));
    assert_eq!(s.poll(t), None);
}

#[test]
fn stopping_leaves_with_a_zero_lease_once() {
    let t0 = Instant::now();
    let mut s = Subscription::default();
    s.set_target(Some(addr(1)));
    s.poll(t0);
    s.set_target(None);
    assert_eq!(s.poll(t0), Some((addr(1), Duration::ZERO)));
    assert_eq!(s.poll(t0 + Duration::from_secs(10)), None);
    assert_eq!(s.next_deadline(), None);
}

#[test]
fn of_several_candidates_the_next_is_tried_when_one_gives_no_stream() {
    let t0 = Instant::now();
    let mut s = Subscription::default();
    s.set_candidates(vec![addr(1), addr(2)]);
    assert_eq!(s.poll(t0), Some((addr(1), SUBSCRIBE_LEASE)));
    // The first one streams: it is kept while it does.
    let mut t = t0;
    for _ in 0..5 {
        t += SUBSCRIBE_INTERVAL;
        s.heard_from(addr(1), t);
        assert_eq!(s.poll(t), Some((addr(1), SUBSCRIBE_LEASE)));
    }
    // It goes quiet (or never authenticated): after TRY_NEXT_AFTER the next is tried,
    // and the first left with a zero lease.
    let quiet = t + TRY_NEXT_AFTER;
    assert_eq!(s.next_deadline(), Some(t + SUBSCRIBE_INTERVAL));
    assert_eq!(s.poll(quiet), Some((addr(1), Duration::ZERO)));
    assert_eq!(s.poll(quiet), Some((addr(2), SUBSCRIBE_LEASE)));
    // The same list again changes nothing.
    s.set_candidates(vec![addr(1), addr(2)]);
    assert_eq!(s.target(), Some(addr(2)));
    // A single candidate is kept however quiet.
    s.set_target(Some(addr(3)));
    s.poll(quiet);
    assert_eq!(
        s.poll(quiet + TRY_NEXT_AFTER * 10),
        Some((addr(3), SUBSCRIBE_LEASE))
    );
}
