// SPDX-License-Identifier: MPL-2.0
//! Unit tests of `lockon.rs`, on a virtual clock.

use super::*;

fn source(session: u64) -> Source {
    Source {
        session,
        from: SocketAddr::from(([192, 0, 2, 1], 5004)),
    }
}

#[test]
fn a_session_followed_is_kept_until_it_falls_silent() {
    let t0 = Instant::now();
    let mut l = LockOn::default();
    assert!(l.open_to_others(t0), "nothing followed yet");
    assert!(
        !l.lock(source(1), t0),
        "the first session is no discontinuity"
    );
    assert!(l.follows(source(1)) && !l.follows(source(2)));
    l.seen(t0 + Duration::from_millis(100));
    assert!(!l.open_to_others(t0 + Duration::from_millis(299)));
    assert!(l.open_to_others(t0 + Duration::from_millis(100) + SESSION_IDLE));
    assert!(
        l.lock(source(2), t0 + Duration::from_secs(1)),
        "a later one is"
    );
}

#[test]
fn an_ended_or_released_session_may_be_replaced_at_once() {
    let t0 = Instant::now();
    let mut l = LockOn::default();
    l.lock(source(1), t0);
    l.end();
    assert!(l.ended() && l.open_to_others(t0));
    l.lock(source(2), t0);
    assert!(!l.ended() && !l.open_to_others(t0));
    l.release();
    assert_eq!(l.locked(), None);
    assert!(l.open_to_others(t0));
}
