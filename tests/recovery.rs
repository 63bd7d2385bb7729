// SPDX-License-Identifier: MPL-2.0
//! Loss recovery: receivers ask for what they miss, senders resend it.

#[allow(dead_code)]
mod common;

use common::*;
use std::time::{Duration, Instant};

/// Sends 50 frames of 640x480 UYVY at 25 fps through a relay that loses `per_million`
/// datagrams both ways; returns the frames that arrived exact, and the stats of both ends.
fn through_loss(per_million: u32, rx_props: &str) -> (usize, gst::Structure, gst::Structure) {
    let rx = Rx::new(rx_props);
    let relay = Relay::new(
        format!("127.0.0.1:{}", rx.port).parse().expect("addr"),
        Mangle::LoseBoth(per_million),
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
    // Each frame's first datagram tells which frame it is, if frames come out of order.
    let got = rx.pull(frames.len(), Duration::from_secs(5));
    let exact = got
        .iter()
        .filter(|s| frames.iter().any(|f| sample_bytes(s) == *f))
        .count();
    let (stats, tx_stats) = (rx.stats(), tx.stats());
    drop(relay);
    (exact, stats, tx_stats)
}

#[test]
fn test_one_percent_random_loss_both_ways_every_frame_arrives_exact() {
    // About 4 of each frame's 437 datagrams are lost on the way: without recovery no frame
    // would arrive whole.
    let (exact, stats, tx_stats) = through_loss(10_000, "");
    assert_eq!(exact, 50, "{stats}\n{tx_stats}");
    let requested = stats.get::<u64>("datagrams-requested").expect("requested");
    let resent = tx_stats
        .get::<u64>("datagrams-retransmitted")
        .expect("resent");
    assert!(requested > 100, "{stats}");
    assert!(resent > 100, "{tx_stats}");
    // Retransmission stays close to what was lost: within 1.5 x the requests.
    assert!(
        resent <= requested * 3 / 2,
        "resent {resent} of {requested} asked"
    );
}

#[test]
#[ignore = "a measurement: cargo test --test recovery -- --ignored --nocapture"]
fn measure_frames_recovered_at_five_percent_loss() {
    for latency in [50, 100] {
        let (exact, stats, _) = through_loss(50_000, &format!("latency={latency}"));
        eprintln!(
            "5 % loss both ways, latency {latency} ms: {exact}/50 frames exact; requested {}",
            stats.get::<u64>("datagrams-requested").unwrap_or(0)
        );
    }
}
