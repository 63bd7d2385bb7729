// SPDX-License-Identifier: MPL-2.0
//! Warnings a user must act on reach the bus, say what to change, and are rate-limited so
//! that no input can flood a bus that nobody reads.

#[allow(dead_code)]
mod common;

use common::*;
use gst::prelude::*;
use std::time::{Duration, Instant};

/// The texts of the warnings on the pipeline's bus so far.
fn warnings(p: &gst::Pipeline) -> Vec<String> {
    let bus = p.bus().expect("bus");
    std::iter::from_fn(|| bus.pop_filtered(&[gst::MessageType::Warning]))
        .filter_map(|m| match m.view() {
            gst::MessageView::Warning(w) => Some(format!("{} ({:?})", w.error(), w.debug())),
            _ => None,
        })
        .collect()
}

/// Warnings and errors on the bus so far, as "warning: …" / "error: …" (popping only one
/// kind would discard the other).
fn warnings_and_errors(p: &gst::Pipeline) -> Vec<String> {
    let bus = p.bus().expect("bus");
    std::iter::from_fn(|| bus.pop_filtered(&[gst::MessageType::Warning, gst::MessageType::Error]))
        .filter_map(|m| match m.view() {
            gst::MessageView::Warning(w) => {
                Some(format!("warning: {} ({:?})", w.error(), w.debug()))
            }
            gst::MessageView::Error(e) => Some(format!("error: {} ({:?})", e.error(), e.debug())),
            _ => None,
        })
        .collect()
}

fn gray8(w: i32) -> gst::Caps {
    gst::Caps::builder("video/x-raw")
        .field("format", "GRAY8")
        .field("width", w)
        .field("height", 1i32)
        .field("framerate", gst::Fraction::new(60, 1))
        .build()
}

#[test]
fn test_frames_lost_on_the_way_give_a_warning_that_names_buffer_size() {
    let rx = Rx::new("");
    let relay = Relay::new(
        format!("127.0.0.1:{}", rx.port).parse().expect("addr"),
        Mangle::DropEvery(40, 7),
    );
    let caps = gst::Caps::builder("video/x-raw")
        .field("format", "UYVY")
        .field("width", 320i32)
        .field("height", 240i32)
        .field("framerate", gst::Fraction::new(60, 1))
        .build();
    let mut tx = Tx::new("127.0.0.1", relay.port, &caps, "");
    let start = Instant::now();
    let frame = vec![7u8; 320 * 240 * 2];
    let mut got = Vec::new();
    for i in 0..200u32 {
        let at = start + Duration::from_micros(u64::from(i) * 16_667);
        std::thread::sleep(at.saturating_duration_since(Instant::now()));
        tx.push(&frame, gst::ClockTime::from_nseconds(16_666_667));
        got.extend(warnings(&rx.pipeline));
    }
    std::thread::sleep(Duration::from_millis(300));
    got.extend(warnings(&rx.pipeline));
    drop(relay);
    assert!(rx.stat("frames-dropped") > 0, "{}", rx.stats());
    let loss: Vec<&String> = got.iter().filter(|w| w.contains("buffer-size")).collect();
    assert!(!loss.is_empty(), "a loss warning: {got:?}");
    // 3.3 s of loss: one warning per 2 s at most.
    assert!(loss.len() <= 2, "{loss:?}");
}

#[test]
fn test_a_sender_changing_to_refused_caps_all_the_time_posts_few_warnings() {
    // Downstream takes only width 1; the sender announces a new width with every frame.
    let rx = Rx::launch(
        "videoipsrc name=src address=127.0.0.1 port=0 ! capsfilter caps=video/x-raw,width=1 ! appsink name=sink sync=false",
    );
    let mut tx = Tx::new("127.0.0.1", rx.port, &gray8(2), "");
    for w in 2..302 {
        tx.set_caps(&gray8(w));
        tx.push(&vec![1u8; w as usize], gst::ClockTime::from_mseconds(5));
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(300));
    let got = warnings_and_errors(&rx.pipeline);
    let refused = got.iter().filter(|w| w.contains("does not accept")).count();
    // 300 refused caps in about 2 s: at most one warning per 2 s gets through, and the
    // pipeline runs on.
    assert!((1..=2).contains(&refused), "{got:?}");
    assert!(!got.iter().any(|w| w.starts_with("error")), "{got:?}");
    assert!(rx.stat("datagrams-received") > 300, "{}", rx.stats());
}

/// Caps that a raw-video element accepts as a template match but cannot set.
fn unusable_video_caps() -> Vec<gst::Caps> {
    init();
    let base = || {
        gst::Caps::builder("video/x-raw")
            .field("format", "UYVY")
            .field("height", 48i32)
            .field("framerate", gst::Fraction::new(30, 1))
    };
    vec![
        base()
            .field("width", 64i32)
            .field("interlace-mode", "alternate")
            .build(),
        // No width.
        base().build(),
    ]
}

#[test]
fn test_caps_downstream_cannot_set_drop_the_stream_and_the_pipeline_runs_on() {
    for bad in unusable_video_caps() {
        let rx = Rx::launch(
            "videoipsrc name=src address=127.0.0.1 port=0 ! videoconvert ! appsink name=sink sync=false",
        );
        let mut tx = Tx::new("127.0.0.1", rx.port, &bad, "");
        for _ in 0..5 {
            tx.push(&[3u8; 64 * 48 * 2], gst::ClockTime::from_mseconds(33));
            std::thread::sleep(Duration::from_millis(30));
        }
        std::thread::sleep(Duration::from_millis(300));
        let got = warnings_and_errors(&rx.pipeline);
        assert!(
            got.iter()
                .any(|w| w.contains("does not accept") || w.contains("not usable")),
            "{bad}: {got:?}"
        );
        assert!(
            !got.iter().any(|w| w.starts_with("error")),
            "{bad}: {got:?}"
        );
        // The same sender with caps downstream can use is received: the pipeline ran on.
        let good = gst::Caps::builder("video/x-raw")
            .field("format", "UYVY")
            .field("width", 64i32)
            .field("height", 48i32)
            .field("framerate", gst::Fraction::new(30, 1))
            .build();
        tx.set_caps(&good);
        let frame = vec![9u8; 64 * 48 * 2];
        for _ in 0..3 {
            tx.push(&frame, gst::ClockTime::from_mseconds(33));
        }
        let samples = rx.pull(1, Duration::from_secs(5));
        assert_eq!(samples.len(), 1, "{bad}: {}", rx.stats());
        assert_eq!(sample_bytes(&samples[0]), frame);
        let got = warnings_and_errors(&rx.pipeline);
        assert!(
            !got.iter().any(|w| w.starts_with("error")),
            "{bad}: {got:?}"
        );
    }
}
