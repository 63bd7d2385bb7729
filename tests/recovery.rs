// SPDX-License-Identifier: MPL-2.0
//! Loss recovery: receivers ask for what they miss, senders resend it.

#[allow(dead_code)]
mod common;

use common::*;
use std::time::{Duration, Instant};

#[test]
fn test_one_percent_random_loss_both_ways_every_frame_arrives_exact() {
    let rx = Rx::new("");
    let relay = Relay::new(
        format!("127.0.0.1:{}", rx.port).parse().expect("addr"),
        Mangle::LoseBoth(10_000),
    );
    let caps = gst::Caps::builder("video/x-raw")
        .field("format", "UYVY")
        .field("width", 640i32)
        .field("height", 480i32)
        .field("framerate", gst::Fraction::new(25, 1))
        .build();
    let mut tx = Tx::new("127.0.0.1", relay.port, &caps, "");
    let frames: Vec<Vec<u8>> = (0..50).map(|i| pattern(640 * 480 * 2, i + 1)).collect();
    let start = Instant::now();
    for (i, f) in frames.iter().enumerate() {
        std::thread::sleep(
            (start + Duration::from_millis(40 * i as u64))
                .saturating_duration_since(Instant::now()),
        );
        tx.push(f, gst::ClockTime::from_mseconds(40));
    }
    let got = rx.pull(frames.len(), Duration::from_secs(10));
    let stats = rx.stats();
    let tx_stats = tx.stats();
    drop(relay);
    // About 4 of each frame's 437 datagrams are lost on the way: without recovery no frame
    // would arrive whole.
    assert_eq!(got.len(), frames.len(), "{stats}\n{tx_stats}");
    for (i, (s, want)) in got.iter().zip(&frames).enumerate() {
        assert!(sample_bytes(s) == *want, "frame {i} exact");
    }
    let requested = stats.get::<u64>("datagrams-requested").expect("requested");
    let resent = tx_stats
        .get::<u64>("datagrams-retransmitted")
        .expect("resent");
    assert!(requested > 100, "{stats}");
    assert!(resent > 100, "{tx_stats}");
    eprintln!("requested {requested}, resent {resent}; {stats}");
    // Retransmission stays close to what was lost: within 1.5 x the requests.
    assert!(
        resent <= requested * 3 / 2,
        "resent {resent} of {requested} asked"
    );
}
