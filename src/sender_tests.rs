// SPDX-License-Identifier: MPL-2.0
//! Unit tests of `sender.rs`, on a virtual clock.

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
    let mut s = SenderSession::new(7, 0);
    s.report_sent(41, t0);
    s.report_sent(42, t0 + 250 * MS);
    // Echoes report 42, which it held for 30 ms; arrives 40 ms after 42 left.
    assert!(s.on_receiver_report(addr(1), 9, &report(7, 42, 30_000, 3), t0 + 290 * MS));
    let r = s.receivers(t0 + 290 * MS);
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].rtt, Some(10 * MS));
    assert_eq!(r[0].datagrams_lost, 3);
    assert_eq!(r[0].frames_dropped, 1);
}

#[test]
fn reports_on_another_session_or_without_an_echo_change_no_round_trip() {
    let t0 = Instant::now();
    let mut s = SenderSession::new(7, 0);
    s.report_sent(1, t0);
    assert!(!s.on_receiver_report(addr(1), 9, &report(8, 1, 0, 0), t0 + MS));
    assert!(s.receivers(t0 + MS).is_empty());
    assert!(s.on_receiver_report(addr(1), 9, &report(7, 0, NO_DELAY, 0), t0 + MS));
    assert_eq!(s.receivers(t0 + MS)[0].rtt, None);
    // An echo of a report we never sent gives no round trip either.
    assert!(s.on_receiver_report(addr(1), 9, &report(7, 999, 0, 0), t0 + MS));
    assert_eq!(s.receivers(t0 + MS)[0].rtt, None);
}

#[test]
fn receivers_silent_for_two_seconds_are_no_longer_listed() {
    let t0 = Instant::now();
    let mut s = SenderSession::new(7, 0);
    s.on_receiver_report(addr(1), 1, &report(7, 0, NO_DELAY, 0), t0);
    s.on_receiver_report(addr(2), 2, &report(7, 0, NO_DELAY, 0), t0 + 1500 * MS);
    assert_eq!(s.receivers(t0 + 1600 * MS).len(), 2);
    let later = s.receivers(t0 + 2100 * MS);
    assert_eq!(later.len(), 1);
    assert_eq!(later[0].addr, addr(2));
}

#[test]
fn forged_reports_from_many_addresses_keep_the_table_bounded() {
    let t0 = Instant::now();
    let mut s = SenderSession::new(7, 0);
    for i in 0..(MAX_RECEIVERS as u64 + 500) {
        s.on_receiver_report(addr((i % 60000) as u16), i, &report(7, 0, NO_DELAY, 0), t0);
    }
    assert_eq!(s.receivers(t0).len(), MAX_RECEIVERS);
}

fn frame(first_seq: u32, count: u32, data: Vec<u8>, at: Instant) -> SentFrame<Vec<u8>> {
    let mut header = [0u8; MEDIA_HEADER_LEN];
    header[0] = 0x56;
    SentFrame {
        first_seq,
        count,
        frag: 10,
        header,
        data,
        at,
    }
}

#[test]
fn a_kept_frame_gives_back_any_of_its_datagrams_flagged_as_resent() {
    let t0 = Instant::now();
    let mut h = History::new(100);
    let data: Vec<u8> = (0..25u8).collect();
    h.push(frame(100, 3, data, t0), t0);
    let header = h.resend(102, t0).expect("kept");
    assert_eq!(h.payload(102), Some(&[20u8, 21, 22, 23, 24][..]));
    assert_eq!(
        &header[16..20],
        &102u32.to_be_bytes(),
        "its own sequence number"
    );
    assert_eq!(
        header[4] & header_flags::RETRANSMISSION,
        header_flags::RETRANSMISSION
    );
    assert!(
        h.resend(103, t0).is_none(),
        "not a datagram of a kept frame"
    );
}

#[test]
fn many_requests_for_one_datagram_resend_it_once_per_interval() {
    let t0 = Instant::now();
    let mut h = History::new(100);
    h.push(frame(0, 3, vec![1; 30], t0), t0);
    assert!(h.resend(1, t0).is_some());
    assert!(h.resend(1, t0 + MS).is_none());
    assert!(h.resend(1, t0 + RESEND_INTERVAL).is_some());
}

#[test]
fn resends_stay_within_the_budget_and_old_frames_are_forgotten() {
    let t0 = Instant::now();
    // 10 % of a 1000-byte frame (plus headers): about one 10-byte datagram's worth... none
    // of 74 bytes fits twice.
    let mut h = History::new(10);
    h.push(frame(0, 100, vec![0; 1000], t0), t0);
    let resent = (0..100).filter(|&s| h.resend(s, t0).is_some()).count();
    assert!(resent <= (1000 + 100 * MEDIA_HEADER_LEN) / 10 / (10 + MEDIA_HEADER_LEN));
    let later = t0 + HISTORY_KEEP + MS;
    h.push(frame(100, 1, vec![0; 10], later), later);
    assert!(h.resend(5, later).is_none(), "forgotten");
}

#[test]
fn datagrams_not_yet_sent_are_not_resent() {
    let t0 = Instant::now();
    let mut h = History::new(100);
    h.push(frame(0, 30, vec![1; 300], t0), t0);
    // The first batch (0..10) is out; the sender pauses before the next.
    h.sent_through(9);
    assert!(h.resend(9, t0).is_some());
    assert!(h.resend(10, t0).is_none(), "still to be sent");
    h.sent_through(29);
    assert!(h.resend(10, t0).is_some());
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
