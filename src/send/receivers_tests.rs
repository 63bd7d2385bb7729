// SPDX-License-Identifier: MPL-2.0
//! Unit tests of `receivers.rs`, on a virtual clock.

use super::*;

const MS: Duration = Duration::from_millis(1);

fn report(session: u64, echo: u32, delay_us: u32, lost: u64) -> ReceiverReport {
    ReceiverReport {
        session,
        track: 0,
        highest_seq: 100,
        datagrams_received: 1000,
        datagrams_lost: lost,
        frames_complete: 50,
        frames_dropped: 1,
        echoed_report_seq: echo,
        delay_us,
    }
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([192, 0, 2, 1], port))
}

#[test]
fn round_trip_is_the_time_since_the_echoed_report_less_the_receivers_delay() {
    let t0 = Instant::now();
    let mut s = Receivers::new(7, 0);
    s.report_sent(41, t0);
    s.report_sent(42, t0 + 250 * MS);
    // Echoes report 42, which it held for 30 ms; arrives 40 ms after 42 left.
    assert!(s
        .on_receiver_report(addr(1), 9, &report(7, 42, 30_000, 3), t0 + 290 * MS)
        .is_ok());
    let r = s.receivers(t0 + 290 * MS);
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].rtt, Some(10 * MS));
    assert_eq!(r[0].datagrams_lost, 3);
    assert_eq!(r[0].frames_dropped, 1);
}

#[test]
fn reports_on_another_session_or_without_an_echo_change_no_round_trip() {
    let t0 = Instant::now();
    let mut s = Receivers::new(7, 0);
    s.report_sent(1, t0);
    assert!(s
        .on_receiver_report(addr(1), 9, &report(8, 1, 0, 0), t0 + MS)
        .is_err());
    assert!(s.receivers(t0 + MS).is_empty());
    assert!(s
        .on_receiver_report(addr(1), 9, &report(7, 0, NO_DELAY, 0), t0 + MS)
        .is_ok());
    assert_eq!(s.receivers(t0 + MS)[0].rtt, None);
    // An echo of a report we never sent gives no round trip either.
    assert!(s
        .on_receiver_report(addr(1), 9, &report(7, 999, 0, 0), t0 + MS)
        .is_ok());
    assert_eq!(s.receivers(t0 + MS)[0].rtt, None);
}

#[test]
fn receivers_silent_for_two_seconds_are_no_longer_listed() {
    let t0 = Instant::now();
    let mut s = Receivers::new(7, 0);
    let _ = s.on_receiver_report(addr(1), 1, &report(7, 0, NO_DELAY, 0), t0);
    let _ = s.on_receiver_report(addr(2), 2, &report(7, 0, NO_DELAY, 0), t0 + 1500 * MS);
    assert_eq!(s.receivers(t0 + 1600 * MS).len(), 2);
    let later = s.receivers(t0 + 2100 * MS);
    assert_eq!(later.len(), 1);
    assert_eq!(later[0].addr, addr(2));
}

#[test]
fn forged_reports_from_many_addresses_keep_the_table_bounded() {
    let t0 = Instant::now();
    let mut s = Receivers::new(7, 0);
    for i in 0..(MAX_RECEIVERS as u64 + 500) {
        let _ = s.on_receiver_report(addr((i % 60000) as u16), i, &report(7, 0, NO_DELAY, 0), t0);
    }
    assert_eq!(s.receivers(t0).len(), MAX_RECEIVERS);
}
