// SPDX-License-Identifier: MPL-2.0
//! Unit tests of `history.rs`, on a virtual clock.

use super::*;

const MS: Duration = Duration::from_millis(1);

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
