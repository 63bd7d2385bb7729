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

#[test]
fn reports_on_two_tracks_keep_their_own_counters_and_tell_what_the_other_took() {
    let t0 = Instant::now();
    let mut s = Receivers::new(7, 0);
    s.add_track(1);
    let on = |track: u16, received: u64| ReceiverReport {
        track,
        datagrams_received: received,
        frames_dropped: 0,
        ..report(7, 0, NO_DELAY, 0)
    };
    let rx = addr(1);
    // First reports on each track: no delta yet.
    assert_eq!(s.on_receiver_report(rx, 9, &on(0, 0), t0), Ok(None));
    assert_eq!(s.on_receiver_report(rx, 9, &on(1, 0), t0 + MS), Ok(None));
    // 250 ms on: video counted 50,000 datagrams, audio 50. Had they been one counter,
    // audio's report would look like the count went back (no delta at all).
    let video = s
        .on_receiver_report(rx, 9, &on(0, 50_000), t0 + 250 * MS)
        .expect("ours")
        .expect("a delta");
    assert_eq!(video.received, 50_000);
    assert_eq!(video.other_tracks_rate, 0, "audio's rate is not known yet");
    let audio = s
        .on_receiver_report(rx, 9, &on(1, 50), t0 + 251 * MS)
        .expect("ours")
        .expect("a delta");
    assert_eq!(audio.received, 50);
    // What it took on video: 50,000 datagrams in 250 ms.
    assert_eq!(audio.other_tracks_rate, 200_000);
    // One receiver, its counts summed over its tracks.
    let r = s.receivers(t0 + 251 * MS);
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].datagrams_received, 50_050);
    // A track not sent is not ours.
    assert!(s
        .on_receiver_report(rx, 9, &on(2, 5), t0 + 300 * MS)
        .is_err());
    s.remove_track(1);
    assert!(s
        .on_receiver_report(rx, 9, &on(1, 60), t0 + 500 * MS)
        .is_err());
}
