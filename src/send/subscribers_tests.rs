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

#[test]
fn a_subscriber_gets_the_tracks_it_chose_and_a_new_choice_is_a_change() {
    let t0 = Instant::now();
    let mut t = Subscribers::new(4);
    let (audio_only, all) = (addr(1), addr(2));
    let lease = Duration::from_secs(5);
    assert!(t.subscribe_tracks(audio_only, lease, &[1, 1, 1], t0));
    assert!(t.subscribe(all, lease, t0));
    assert!(t.wants(audio_only, 1));
    assert!(!t.wants(audio_only, 0));
    assert!(t.wants(all, 0) && t.wants(all, 7));
    assert_eq!(t.tracks_of(audio_only), Some(&[1][..]));
    // Renewing with the same choice changes nothing; another choice is a change.
    let g = t.generation();
    assert!(t.subscribe_tracks(audio_only, lease, &[1], t0));
    assert_eq!(t.generation(), g);
    assert!(t.subscribe_tracks(audio_only, lease, &[0, 1], t0));
    assert_ne!(t.generation(), g);
    assert!(t.wants(audio_only, 0));
    // A list of thousands keeps at most 32 ids.
    let many: Vec<u16> = (0..5000).collect();
    assert!(t.subscribe_tracks(addr(3), lease, &many, t0));
    assert_eq!(t.tracks_of(addr(3)).map(<[u16]>::len), Some(32));
    assert!(!t.wants(addr(3), 40));
}
