// SPDX-License-Identifier: MPL-2.0
//! `videoip://` URIs: both elements are URI handlers, so that playbin, uridecodebin and
//! applications that take a URL can send and receive videoip.

#[allow(dead_code)]
mod common;

use common::*;
use gst::prelude::*;
use std::time::{Duration, Instant};

#[test]
fn test_videoipsrc_made_from_a_uri_listens_where_it_says_with_its_properties() {
    init();
    let src = gst::Element::make_from_uri(
        gst::URIType::Src,
        "videoip://239.1.2.3:6000?latency=120&timestamp-mode=arrival",
        None,
    )
    .expect("a videoip URI makes a source");
    assert_eq!(
        src.factory().map(|f| f.name().to_string()),
        Some("videoipsrc".into())
    );
    assert_eq!(src.property::<String>("address"), "239.1.2.3");
    assert_eq!(src.property::<i32>("port"), 6000);
    assert_eq!(src.property::<u32>("latency"), 120);
    let uri = src
        .dynamic_cast_ref::<gst::URIHandler>()
        .and_then(|h| h.uri());
    assert_eq!(uri.as_deref(), Some("videoip://239.1.2.3:6000"));
}

#[test]
fn test_videoipsink_made_from_a_uri_sends_there() {
    init();
    let rx = Rx::new("");
    let sink = gst::Element::make_from_uri(
        gst::URIType::Sink,
        &format!("videoip://127.0.0.1:{}?mtu=1400", rx.port),
        None,
    )
    .expect("a videoip URI makes a sink");
    assert_eq!(sink.property::<String>("host"), "127.0.0.1");
    assert_eq!(sink.property::<u32>("mtu"), 1400);
    let pipeline = gst::Pipeline::new();
    let appsrc = gst_app::AppSrc::builder()
        .caps(&gray_caps(320, 240))
        .format(gst::Format::Time)
        .build();
    sink.set_property("sync", false);
    pipeline
        .add_many([appsrc.upcast_ref(), &sink])
        .expect("add");
    appsrc.link(&sink).expect("link");
    pipeline.set_state(gst::State::Playing).expect("playing");
    let frame = pattern(320 * 240, 7);
    let mut buf = gst::Buffer::from_slice(frame.clone());
    buf.get_mut()
        .expect("writable")
        .set_pts(gst::ClockTime::ZERO);
    appsrc.push_buffer(buf).expect("pushed");
    let got = rx.pull(1, Duration::from_secs(5));
    pipeline.set_state(gst::State::Null).expect("null");
    assert_eq!(got.len(), 1);
    assert_eq!(sample_bytes(&got[0]), frame);
}

#[test]
fn test_uridecodebin_plays_a_videoip_uri_byte_exact() {
    init();
    // The receiver is made by uridecodebin from the URI, on a port of its own choosing
    // (port 0), read back once it is bound.
    let pipeline =
        gst::parse::launch("uridecodebin name=dec uri=videoip://:0 ! appsink name=sink sync=false")
            .expect("parses")
            .downcast::<gst::Pipeline>()
            .expect("pipeline");
    let dec = pipeline.by_name("dec").expect("dec");
    let (tx_src, rx_src) = std::sync::mpsc::channel();
    dec.connect("source-setup", false, move |args| {
        if let Some(src) = args.get(1).and_then(|v| v.get::<gst::Element>().ok()) {
            let _ = tx_src.send(src);
        }
        None
    });
    let appsink = pipeline
        .by_name("sink")
        .expect("sink")
        .downcast::<gst_app::AppSink>()
        .expect("appsink");
    let _ = pipeline.set_state(gst::State::Playing);
    let src = rx_src
        .recv_timeout(Duration::from_secs(5))
        .expect("uridecodebin made a source");
    assert_eq!(
        src.factory().map(|f| f.name().to_string()),
        Some("videoipsrc".into())
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut port = 0;
    while port == 0 && Instant::now() < deadline {
        port = src.property::<i32>("port") as u16;
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_ne!(port, 0, "the source bound a port");
    let mut tx = Tx::new("127.0.0.1", port, &gray_caps(64, 48), "");
    let frames: Vec<Vec<u8>> = (0..5).map(|i| pattern(64 * 48, i + 1)).collect();
    for f in &frames {
        tx.push(f, gst::ClockTime::from_mseconds(40));
    }
    let mut got = Vec::new();
    while got.len() < frames.len() && Instant::now() < deadline + Duration::from_secs(5) {
        if let Some(s) = appsink.try_pull_sample(gst::ClockTime::from_mseconds(100)) {
            got.push(sample_bytes(&s));
        }
    }
    let _ = pipeline.set_state(gst::State::Null);
    assert_eq!(got, frames);
}

#[test]
fn test_bad_videoip_uris_are_refused_with_the_reason() {
    init();
    let src = gst::ElementFactory::make("videoipsrc")
        .build()
        .expect("src");
    let handler = src
        .dynamic_cast_ref::<gst::URIHandler>()
        .expect("a handler");
    for (uri, says) in [
        ("videoip://127.0.0.1:70000", "port"),
        ("videoip://127.0.0.1:5004?no-such-thing=1", "no-such-thing"),
        ("videoip://127.0.0.1:5004?latency=soon", "latency"),
        ("videoip://127.0.0.1:5004?stats=x", "stats"),
        ("udp://127.0.0.1:5004", "scheme"),
    ] {
        let e = handler.set_uri(uri).expect_err(uri);
        assert!(e.message().contains(says), "{uri}: {e}");
    }
    // Nothing was half applied.
    assert_eq!(src.property::<u32>("latency"), 50);
    let sink = gst::ElementFactory::make("videoipsink")
        .build()
        .expect("sink");
    let handler = sink
        .dynamic_cast_ref::<gst::URIHandler>()
        .expect("a handler");
    let e = handler.set_uri("videoip:///CAM%201").expect_err("no host");
    assert!(e.message().contains("HOST"), "{e}");
}
