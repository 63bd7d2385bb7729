// SPDX-License-Identifier: MPL-2.0
//! Unit tests of `subscribers.rs`, on a virtual clock.

use super::*;

const MS: Duration = Duration::from_millis(1);

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([192, 0, 2, 1], port))
}

#[test]
fn subscribers_get_the_stream_until_their_lease_lapses_or_they_leave() {
    let t0 = Instant::now();
    let mut t = Subscribers::new(8);
    assert!(t.subscribe(addr(1), 5000 * MS, t0));
    assert!(t.subscribe(addr(2), 5000 * MS, t0));
    let (now, g1) = t.current(t0);
    assert_eq!(now, vec![addr(1), addr(2)]);
    // Renewals change nothing but the lease.
    assert!(t.subscribe(addr(1), 5000 * MS, t0 + 4000 * MS));
    assert_eq!(t.generation(), g1);
    // 2 never renews: gone once its lease ends; 1 leaves with a zero lease.
    let (now, g2) = t.current(t0 + 5000 * MS);
    assert_eq!(now, vec![addr(1)]);
    assert_ne!(g2, g1);
    assert!(t.subscribe(addr(1), Duration::ZERO, t0 + 5001 * MS));
    assert!(t.current(t0 + 5001 * MS).0.is_empty());
}

#[test]
fn subscribers_are_bounded_and_leases_capped() {
    let t0 = Instant::now();
    let mut t = Subscribers::new(2);
    assert!(t.subscribe(addr(1), Duration::from_secs(3600), t0));
    assert!(t.subscribe(addr(2), 1000 * MS, t0));
    assert!(!t.subscribe(addr(3), 1000 * MS, t0), "full");
    assert_eq!(t.refused, 1);
    // A lease asked for an hour lasts MAX_LEASE.
    assert_eq!(t.current(t0 + MAX_LEASE).0, vec![]);
    assert!(t.subscribe(addr(3), 1000 * MS, t0 + MAX_LEASE));
}
