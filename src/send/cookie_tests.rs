// SPDX-License-Identifier: MPL-2.0
use super::*;

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("test address")
}

#[test]
fn a_cookie_is_valid_for_its_address_only() {
    let mut c = Cookies::new();
    let now = Instant::now();
    let a = addr("10.0.0.1:5000");
    let cookie = c.make(a, now);
    assert_eq!(c.check(a, Some(&cookie), now), Verdict::Valid);
    assert_eq!(
        c.check(addr("10.0.0.2:5000"), Some(&cookie), now),
        Verdict::Invalid
    );
    assert_eq!(
        c.check(addr("10.0.0.1:5001"), Some(&cookie), now),
        Verdict::Invalid
    );
    assert_eq!(c.check(a, None, now), Verdict::Invalid);
    assert_eq!(c.check(a, Some(&cookie[..8]), now), Verdict::Invalid);
    let mut flipped = cookie;
    flipped[3] ^= 1;
    assert_eq!(c.check(a, Some(&flipped), now), Verdict::Invalid);
}

#[test]
fn a_cookie_holds_one_to_two_periods_then_expires() {
    let mut c = Cookies::new();
    let t0 = Instant::now();
    let a = addr("[2001:db8::1]:7000");
    let cookie = c.make(a, t0);
    assert_eq!(
        c.check(
            a,
            Some(&cookie),
            t0 + COOKIE_PERIOD - Duration::from_secs(1)
        ),
        Verdict::Valid
    );
    assert_eq!(
        c.check(a, Some(&cookie), t0 + COOKIE_PERIOD),
        Verdict::Stale
    );
    assert_eq!(
        c.check(a, Some(&cookie), t0 + COOKIE_PERIOD * 2),
        Verdict::Invalid
    );
}

#[test]
fn another_sessions_cookie_is_invalid() {
    let now = Instant::now();
    let a = addr("10.0.0.1:5000");
    let cookie = Cookies::new().make(a, now);
    let mut other = Cookies::new();
    assert_eq!(other.check(a, Some(&cookie), now), Verdict::Invalid);
}

#[test]
fn challenges_are_rate_limited() {
    let mut c = Cookies::new();
    let t0 = Instant::now();
    let burst = (0..5000).filter(|_| c.may_challenge(t0)).count();
    assert_eq!(burst, CHALLENGE_BURST as usize);
    let later = (0..5000)
        .filter(|_| c.may_challenge(t0 + Duration::from_millis(10)))
        .count();
    assert_eq!(later, 200);
    assert_eq!(c.limited, 10_000 - 2_200);
}
