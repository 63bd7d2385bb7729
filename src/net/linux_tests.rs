// SPDX-License-Identifier: MPL-2.0
//! Unit tests of what only the Linux backend does: GSO, GRO and kernel receive timestamps.
//! The API tests both backends share are in `tests.rs`.

use super::super::tests::{check_numbered, loopback_pair, recv_all, send_numbered};
use super::super::*;
use std::time::Duration;

#[test]
fn gso_send_arrives_as_separate_datagrams() {
    let (tx, rx, dest) = loopback_pair();
    assert!(tx.gso_supported(), "this kernel has UDP GSO");
    let mut batch = SendBatch::new();
    let (report, payload) = send_numbered(&tx, dest, &mut batch, 300);
    assert_eq!(batch.gso(), Some(true));
    assert_eq!(report.sent, 300);
    assert_eq!(report.bytes, 299 * 1472 + 104);
    let waker = Waker::new().unwrap();
    let mut rb = RecvBatch::new(64, 2048);
    let got: Vec<Vec<u8>> = recv_all(&rx, &mut rb, 300, &waker)
        .into_iter()
        .map(|(d, _)| d)
        .collect();
    check_numbered(&got, 300, &payload);
}

#[test]
fn gro_receive_splits_coalesced_datagrams_back() {
    let (tx, rx, dest) = loopback_pair();
    assert!(rx.enable_gro(), "this kernel has UDP GRO");
    let (_, payload) = send_numbered(&tx, dest, &mut SendBatch::new(), 300);
    let waker = Waker::new().unwrap();
    let mut rb = RecvBatch::new(16, 65536);
    let mut got = Vec::new();
    let mut messages = 0;
    let deadline = Instant::now() + Duration::from_secs(5);
    while got.len() < 300 && Instant::now() < deadline {
        if rb.recv(&rx).unwrap() == 0 {
            waker
                .wait(Some(rx.fd()), libc::POLLIN, Some(deadline))
                .unwrap();
            continue;
        }
        messages += rb.messages();
        for i in 0..rb.len() {
            let meta = rb.meta(i).unwrap();
            // Every datagram of a coalesced message has its stride, its own length and
            // the sender as source.
            assert_eq!(meta.stride, 1472, "{meta:?}");
            assert_eq!(meta.len, rb.get(i).unwrap().len());
            assert_eq!(meta.source.port(), tx.local_addr().port());
            got.push(rb.get(i).unwrap().to_vec());
        }
    }
    check_numbered(&got, 300, &payload);
    assert!(messages < 30, "coalesced into {messages} receives");
}

#[test]
fn received_datagrams_carry_the_kernel_receive_time() {
    let (tx, rx, dest) = loopback_pair();
    assert!(rx.timestamps(), "this kernel has SO_TIMESTAMPNS");
    assert!(rx.enable_gro());
    let waker = Waker::new().unwrap();
    // The kernel turns arrival stamping on for the whole system from a work queue, which a
    // busy machine may run late; until then datagrams are stamped when read. Wait for it.
    let mut stamping = false;
    for _ in 0..100 {
        send_numbered(&tx, dest, &mut SendBatch::new(), 1);
        std::thread::sleep(Duration::from_millis(20));
        let read_at = Instant::now();
        let got = recv_all(&rx, &mut RecvBatch::new(16, 65536), 1, &waker);
        if got.iter().any(|(_, m)| {
            m.arrival()
                .is_some_and(|a| a + Duration::from_millis(10) < read_at)
        }) {
            stamping = true;
            break;
        }
    }
    assert!(stamping, "the kernel never stamped a datagram on arrival");
    let before = SystemTime::now();
    let sent_at = Instant::now();
    send_numbered(&tx, dest, &mut SendBatch::new(), 10);
    // Wait until they are queued (on a busy machine loopback may deliver them in a deferred
    // softirq, well after the send), then read much later, so that a time taken when read is
    // unmistakable.
    let queued = waker.wait(
        Some(rx.fd()),
        libc::POLLIN,
        Some(Instant::now() + Duration::from_secs(10)),
    );
    assert!(matches!(queued, Ok(crate::net::Wait::Ready)), "{queued:?}");
    let seen = Instant::now();
    std::thread::sleep(Duration::from_millis(200));
    let read_from = Instant::now();
    let got = recv_all(&rx, &mut RecvBatch::new(16, 65536), 10, &waker);
    assert_eq!(got.len(), 10);
    for (_, meta) in &got {
        let ts = meta.timestamp.expect("a kernel timestamp");
        let age = ts.duration_since(before).expect("received after the send");
        assert!(age < Duration::from_secs(10), "{age:?}");
        let arrival = meta.arrival().unwrap();
        // Stamped on arrival, not when read. The margins allow for the wall clock being slewed
        // while the test runs.
        assert!(
            arrival + Duration::from_millis(50) >= sent_at,
            "before it was sent"
        );
        assert!(arrival <= seen + Duration::from_millis(50), "stamped late");
        assert!(
            arrival + Duration::from_millis(100) < read_from,
            "stamped when read"
        );
    }
}
