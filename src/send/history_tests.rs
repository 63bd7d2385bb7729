// SPDX-License-Identifier: MPL-2.0
//! Unit tests of `history.rs`, on a virtual clock.

use super::*;

const MS: Duration = Duration::from_millis(1);
/// The receiver asking.
const WHO: SocketAddr = SocketAddr::new(
    std::net::IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 7)),
    5004,
);

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
    let header = h.resend(102, t0, WHO).expect("kept");
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
        h.resend(103, t0, WHO).is_none(),
        "not a datagram of a kept frame"
    );
}

#[test]
fn many_requests_for_one_datagram_resend_it_once_per_interval() {
    let t0 = Instant::now();
    let mut h = History::new(100);
    h.push(frame(0, 3, vec![1; 30], t0), t0);
    assert!(h.resend(1, t0, WHO).is_some());
    assert!(h.resend(1, t0 + MS, WHO).is_none());
    assert!(h.resend(1, t0 + RESEND_INTERVAL, WHO).is_some());
}

#[test]
fn resends_stay_within_the_budget_and_old_frames_are_forgotten() {
    let t0 = Instant::now();
    // 10 % of a 1000-byte frame (plus headers): about one 10-byte datagram's worth... none
    // of 74 bytes fits twice.
    let mut h = History::new(10);
    h.push(frame(0, 100, vec![0; 1000], t0), t0);
    let resent = (0..100).filter(|&s| h.resend(s, t0, WHO).is_some()).count();
    assert!(resent <= (1000 + 100 * MEDIA_HEADER_LEN) / 10 / (10 + MEDIA_HEADER_LEN));
    let later = t0 + HISTORY_KEEP + MS;
    h.push(frame(100, 1, vec![0; 10], later), later);
    assert!(h.resend(5, later, WHO).is_none(), "forgotten");
}

#[test]
fn datagrams_not_yet_sent_are_not_resent() {
    let t0 = Instant::now();
    let mut h = History::new(100);
    h.push(frame(0, 30, vec![1; 300], t0), t0);
    // The first batch (0..10) is out; the sender pauses before the next.
    h.sent_through(9);
    assert!(h.resend(9, t0, WHO).is_some());
    assert!(h.resend(10, t0, WHO).is_none(), "still to be sent");
    h.sent_through(29);
    assert!(h.resend(10, t0, WHO).is_some());
}

#[test]
fn a_receiver_that_asks_for_everything_spends_its_own_budget_only() {
    let mut h = History::new(50);
    let t0 = Instant::now();
    h.push(frame(0, 100, vec![1; 1000], t0), t0);
    h.sent_through(99);
    let hostile = SocketAddr::from(([192, 0, 2, 66], 5004));
    let drained = (0..100)
        .filter(|&s| h.resend(s, t0, hostile).is_some())
        .count();
    assert!(drained < 100, "bounded: {drained}");
    assert!(
        h.resend(99, t0 + RESEND_INTERVAL, hostile).is_none(),
        "spent"
    );
    // The real receiver's budget is whole: its requests are answered.
    let later = t0 + RESEND_INTERVAL;
    let answered = (0..drained as u32)
        .filter(|&s| h.resend(s, later, WHO).is_some())
        .count();
    assert_eq!(answered, drained);
}
