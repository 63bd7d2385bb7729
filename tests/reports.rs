// SPDX-License-Identifier: MPL-2.0
//! The back-channel: receivers report to their sender, which lists them in its stats.

#[allow(dead_code)]
mod common;

use common::*;
use std::time::{Duration, Instant};

/// The sender's `receiver-stats` entries.
pub fn receiver_stats(tx: &Tx) -> Vec<gst::Structure> {
    tx.stats()
        .get::<gst::Array>("receiver-stats")
        .expect("receiver-stats is an array")
        .iter()
        .map(|v| v.get::<gst::Structure>().expect("a structure"))
        .collect()
}

#[test]
fn test_sender_lists_its_receiver_with_round_trip_and_counts() {
    let rx = Rx::new("");
    let caps = gst::Caps::builder("video/x-raw")
        .field("format", "GRAY8")
        .field("width", 64i32)
        .field("height", 48i32)
        .field("framerate", gst::Fraction::new(50, 1))
        .build();
    let mut tx = Tx::new("127.0.0.1", rx.port, &caps, "");
    assert_eq!(tx.stats().get::<u64>("receivers").expect("receivers"), 0);
    let start = Instant::now();
    for i in 0..50u32 {
        std::thread::sleep((start + Duration::from_millis(u64::from(i) * 20)) - Instant::now());
        tx.push(&[i as u8; 64 * 48], gst::ClockTime::from_mseconds(20));
    }
    assert_eq!(rx.pull(50, Duration::from_secs(5)).len(), 50);
    std::thread::sleep(Duration::from_millis(300));
    let stats = tx.stats();
    assert_eq!(
        stats.get::<u64>("receivers").expect("receivers"),
        1,
        "{stats}"
    );
    let r = &receiver_stats(&tx)[0];
    let addr = r.get::<String>("address").expect("address");
    assert!(addr.starts_with("127.0.0.1:"), "{r}");
    assert_eq!(
        addr,
        format!("127.0.0.1:{}", rx.port),
        "reports come from the receiver's socket"
    );
    let rtt = r.get::<i64>("rtt").expect("rtt");
    assert!(
        (0..100_000).contains(&rtt),
        "round trip {rtt} µs over loopback"
    );
    assert!(
        r.get::<u64>("frames-complete").expect("frames") >= 40,
        "{r}"
    );
    assert_eq!(r.get::<u64>("datagrams-lost").expect("lost"), 0, "{r}");
}

#[test]
fn test_a_receiver_that_stops_is_no_longer_listed_after_two_seconds() {
    let rx = Rx::new("");
    let caps = gst::Caps::builder("video/x-raw")
        .field("format", "GRAY8")
        .field("width", 8i32)
        .field("height", 8i32)
        .field("framerate", gst::Fraction::new(50, 1))
        .build();
    let mut tx = Tx::new("127.0.0.1", rx.port, &caps, "");
    let push_for = |tx: &mut Tx, ms: u64| {
        let end = Instant::now() + Duration::from_millis(ms);
        while Instant::now() < end {
            tx.push(&[1u8; 64], gst::ClockTime::from_mseconds(20));
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    push_for(&mut tx, 600);
    assert_eq!(tx.stats().get::<u64>("receivers").expect("n"), 1);
    drop(rx);
    push_for(&mut tx, 2300);
    assert_eq!(tx.stats().get::<u64>("receivers").expect("n"), 0);
}
