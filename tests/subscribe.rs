// SPDX-License-Identifier: MPL-2.0
//! Subscription, NDI's model: a named sink with no host sends to the receivers that
//! subscribe to it, each by unicast, and nothing when none does.

#[allow(dead_code)]
mod common;

use common::*;
use gst::prelude::*;
use std::time::{Duration, Instant};

/// A named sender with no host, on a port of its own choosing: (sender, its port).
fn named_sender(caps: &gst::Caps) -> (Tx, u16) {
    init();
    // Not announced: multicast DNS must not leave this machine's own network namespace.
    let tx = Tx::with_sink_props(caps, "source-name=CAM port=0 announce=false");
    let port = tx.sink.property::<i32>("port") as u16;
    assert_ne!(port, 0, "the sink reads back the port it listens on");
    (tx, port)
}

fn subscriber(port: u16) -> Rx {
    Rx::launch(&format!(
        "videoipsrc name=src sender-address=127.0.0.1 sender-port={port} ! appsink name=sink sync=false"
    ))
}

fn stat(tx: &Tx, name: &str) -> u64 {
    tx.stats()
        .get::<u64>(name)
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// Waits (at most `within`) until the sender counts `n` subscribers.
fn wait_subscribers(tx: &Tx, n: u64, within: Duration) -> Duration {
    let start = Instant::now();
    while stat(tx, "subscribers") != n {
        assert!(
            start.elapsed() < within,
            "{} subscribers after {within:?}, not {n}",
            stat(tx, "subscribers")
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    start.elapsed()
}

#[test]
fn test_two_subscribers_of_one_named_sender_both_get_every_frame() {
    init();
    let caps = gray_caps(320, 240);
    let (mut tx, port) = named_sender(&caps);
    let (a, b) = (subscriber(port), subscriber(port));
    wait_subscribers(&tx, 2, Duration::from_secs(3));
    let frames: Vec<Vec<u8>> = (0..10).map(|i| pattern(320 * 240, i + 1)).collect();
    for f in &frames {
        tx.push(f, gst::ClockTime::from_mseconds(40));
    }
    for rx in [&a, &b] {
        let got: Vec<Vec<u8>> = rx
            .pull(frames.len(), Duration::from_secs(5))
            .iter()
            .map(sample_bytes)
            .collect();
        assert_eq!(got, frames);
    }
    // Each by unicast: every frame went out twice.
    assert_eq!(stat(&tx, "frames-sent"), 10);
    assert!(stat(&tx, "datagrams-sent") >= 2 * 10 * 55, "{}", tx.stats());
}

#[test]
fn test_a_named_sender_nobody_subscribes_to_sends_no_datagram() {
    init();
    let caps = gray_caps(320, 240);
    let (mut tx, _port) = named_sender(&caps);
    for i in 0..20 {
        tx.push(&pattern(320 * 240, i), gst::ClockTime::from_mseconds(10));
    }
    tx.finish();
    assert_eq!(stat(&tx, "subscribers"), 0);
    // Nothing of the stream (a CHALLENGE may go out: a receiver of another test may still
    // report to the port this sink got).
    let challenges = stat(&tx, "challenges-sent");
    assert_eq!(stat(&tx, "datagrams-sent"), challenges, "{}", tx.stats());
    assert_eq!(stat(&tx, "bytes-sent"), 48 * challenges);
}

#[test]
fn test_a_subscriber_that_stops_is_dropped_at_once_and_one_gone_silent_within_its_lease() {
    init();
    let caps = gray_caps(64, 48);
    let (mut tx, port) = named_sender(&caps);
    let a = subscriber(port);
    wait_subscribers(&tx, 1, Duration::from_secs(3));
    // Stopping unsubscribes.
    a.pipeline.set_state(gst::State::Null).expect("stops");
    wait_subscribers(&tx, 0, Duration::from_millis(500));

    // A receiver that subscribes once and then goes silent (it crashed, or its network
    // went away) is dropped when its 5 s lease lapses.
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").expect("binds");
    let sub = datagram(
        7,
        0,
        gstvideoip::protocol::Body::Subscribe(gstvideoip::protocol::Subscribe {
            session: 0,
            lease_ms: 5000,
            flags: 0,
        }),
        &[],
    );
    send_verified(&sock, ([127, 0, 0, 1], port).into(), &sub);
    wait_subscribers(&tx, 1, Duration::from_secs(2));
    // While subscribed it is sent the stream.
    tx.push(&pattern(64 * 48, 1), gst::ClockTime::from_mseconds(40));
    let mut buf = [0u8; 2048];
    sock.set_read_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    assert!(sock.recv(&mut buf).is_ok(), "the subscriber is sent to");
    let gone = wait_subscribers(&tx, 0, Duration::from_secs(8));
    assert!(gone > Duration::from_secs(2), "dropped after {gone:?}");
}

#[test]
fn test_a_subscribe_uri_receives_from_a_named_sender() {
    init();
    init();
    let caps = gray_caps(64, 48);
    let (mut tx, port) = named_sender(&caps);
    let pipeline = gst::parse::launch(&format!(
        "uridecodebin uri=videoip://127.0.0.1:{port} ! appsink name=sink sync=false"
    ))
    .expect("parses");
    let appsink = pipeline
        .downcast_ref::<gst::Bin>()
        .and_then(|b| b.by_name("sink"))
        .and_then(|s| s.downcast::<gst_app::AppSink>().ok())
        .expect("appsink");
    let _ = pipeline.set_state(gst::State::Playing);
    wait_subscribers(&tx, 1, Duration::from_secs(3));
    let frames: Vec<Vec<u8>> = (0..3).map(|i| pattern(64 * 48, i + 1)).collect();
    for f in &frames {
        tx.push(f, gst::ClockTime::from_mseconds(40));
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut got = Vec::new();
    while got.len() < frames.len() && Instant::now() < deadline {
        if let Some(s) = appsink.try_pull_sample(gst::ClockTime::from_mseconds(100)) {
            got.push(sample_bytes(&s));
        }
    }
    let _ = pipeline.set_state(gst::State::Null);
    assert_eq!(got, frames);
}

#[test]
fn test_subscribers_over_max_receivers_are_refused_and_counted() {
    init();
    let caps = gray_caps(64, 48);
    let tx = Tx::with_sink_props(
        &caps,
        "source-name=CAM port=0 announce=false max-receivers=1",
    );
    let port = tx.sink.property::<i32>("port") as u16;
    let (_a, _b) = (subscriber(port), subscriber(port));
    let start = Instant::now();
    while stat(&tx, "subscribers-refused") == 0 && start.elapsed() < Duration::from_secs(3) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(stat(&tx, "subscribers"), 1);
    assert!(stat(&tx, "subscribers-refused") >= 1, "{}", tx.stats());
}
