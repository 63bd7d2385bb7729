// SPDX-License-Identifier: MPL-2.0
//! Multicast, inside a network namespace the test makes itself (multicast routed to its own
//! loopback, so nothing leaves the machine).

mod common;

use common::*;
use std::time::Duration;

#[test]
fn test_multicast_reaches_two_receivers_in_a_private_namespace() {
    init();
    let Some(ns) = NetNs::new("mc") else {
        return;
    };
    // Sockets belong to the namespace of the thread that opens them.
    let result = std::thread::spawn(move || {
        ns.enter_current_thread();
        let group = "239.255.12.34";
        let rx1 = Rx::with_address(group, "multicast-iface=lo");
        let rx2 = Rx::with_address(group, &format!("multicast-iface=lo port={}", rx1.port));
        let caps = gst::Caps::builder("video/x-raw")
            .field("format", "GRAY8")
            .field("width", 64i32)
            .field("height", 64i32)
            .field("framerate", gst::Fraction::new(25, 1))
            .build();
        let mut tx = Tx::new(group, rx1.port, &caps, "multicast-iface=lo ttl-mc=1");
        let frames: Vec<Vec<u8>> = (0..5).map(|i| pattern(64 * 64, i)).collect();
        for f in &frames {
            tx.push(f, gst::ClockTime::from_mseconds(40));
        }
        let a = rx1.pull(5, Duration::from_secs(10));
        let b = rx2.pull(5, Duration::from_secs(10));
        let ok = |got: &[gst::Sample]| {
            got.len() == 5 && got.iter().zip(&frames).all(|(s, f)| sample_bytes(s) == *f)
        };
        (ok(&a), ok(&b), rx1.stats().to_string())
    })
    .join()
    .expect("the namespace thread finishes");
    assert!(result.0, "first receiver got every frame: {}", result.2);
    assert!(result.1, "second receiver got every frame");
}
