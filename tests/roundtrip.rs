// SPDX-License-Identifier: MPL-2.0
//! Streams through real videoipsink → loopback UDP → videoipsrc pipelines arrive byte-exact,
//! with the sender's caps, timestamps and flags.

// Each test binary uses only some of the shared helpers.
#[allow(dead_code)]
mod common;

use common::*;
use gst::prelude::*;
use std::str::FromStr;
use std::time::Duration;

const SECOND: Duration = Duration::from_secs(1);

/// Sends `n` frames of `caps` with random content and checks every byte, the caps and the
/// durations on the receiving side.
fn round_trip(caps: &gst::Caps, frame_len: usize, n: usize, sink_props: &str) {
    // These senders push faster than real time and the check is byte-exactness: a long
    // window and maximum latency keep a loaded machine from aging frames out.
    let rx = Rx::new("latency=1000");
    let mut tx = Tx::new("127.0.0.1", rx.port, caps, sink_props);
    let frames: Vec<Vec<u8>> = (0..n).map(|i| pattern(frame_len, i as u64 + 1)).collect();
    let dur = gst::ClockTime::from_mseconds(20);
    for f in &frames {
        tx.push(f, dur);
    }
    let samples = rx.pull(n, 20 * SECOND);
    tx.finish();
    assert_eq!(
        samples.len(),
        n,
        "every frame arrives; stats: {}",
        rx.stats()
    );
    for (i, (s, want)) in samples.iter().zip(&frames).enumerate() {
        assert_eq!(s.caps().expect("caps"), caps.as_ref(), "frame {i} caps");
        let got = sample_bytes(s);
        assert!(
            got == *want,
            "frame {i} differs ({} vs {} bytes)",
            got.len(),
            want.len()
        );
        assert_eq!(s.buffer().and_then(|b| b.duration()), Some(dur));
    }
    assert_eq!(rx.stat("frames-complete"), n as u64);
    assert_eq!(rx.stat("frames-dropped"), 0);
    assert_eq!(rx.stat("datagrams-invalid"), 0);
}

fn video_caps(format: &str, w: u32, h: u32) -> (gst::Caps, usize) {
    init();
    let format = gst_video::VideoFormat::from_string(format);
    assert_ne!(format, gst_video::VideoFormat::Unknown, "known format");
    let info = gst_video::VideoInfo::builder(format, w, h)
        .fps(gst::Fraction::new(50, 1))
        .build()
        .expect("video info");
    (info.to_caps().expect("caps"), info.size())
}

#[test]
fn test_roundtrip_uyvy_1080p_byte_exact() {
    let (caps, size) = video_caps("UYVY", 1920, 1080);
    round_trip(&caps, size, 10, "");
}

#[test]
fn test_roundtrip_i420_odd_size_byte_exact() {
    let (caps, size) = video_caps("I420", 321, 241);
    round_trip(&caps, size, 10, "");
}

#[test]
fn test_roundtrip_rgba_nv12_gray8_v210_bgrx_byte_exact() {
    for (format, w, h) in [
        ("RGBA", 640, 480),
        ("NV12", 1279, 719),
        ("GRAY8", 17, 9),
        ("v210", 1280, 720),
        ("BGRx", 333, 111),
        ("I420_10LE", 1920, 1080),
    ] {
        let (caps, size) = video_caps(format, w, h);
        round_trip(&caps, size, 4, "");
    }
}

#[test]
fn test_roundtrip_with_loopback_mtu_and_no_pacing() {
    let (caps, size) = video_caps("UYVY", 1280, 720);
    round_trip(&caps, size, 10, "mtu=65535 pacing=none batch-size=8");
}

#[test]
fn test_roundtrip_raw_audio_byte_exact() {
    init();
    let caps = gst::Caps::builder("audio/x-raw")
        .field("format", "S16LE")
        .field("layout", "interleaved")
        .field("rate", 48000i32)
        .field("channels", 2i32)
        .field("channel-mask", gst::Bitmask::new(0x3))
        .build();
    // 10 ms of stereo S16 at 48 kHz: one datagram each.
    round_trip(&caps, 1920, 50, "");
}

/// Five UYVY frames from a sender to `host` reach a receiver on `address`, byte-exact.
fn five_frames(address: &str, host: &str) {
    let rx = Rx::with_address(address, "");
    let (caps, size) = video_caps("UYVY", 640, 360);
    let mut tx = Tx::new(host, rx.port, &caps, "");
    let frames: Vec<Vec<u8>> = (0..5).map(|i| pattern(size, i + 100)).collect();
    for f in &frames {
        tx.push(f, gst::ClockTime::from_mseconds(20));
    }
    let samples = rx.pull(5, 10 * SECOND);
    assert_eq!(samples.len(), 5, "{address} from {host}: {}", rx.stats());
    for (s, want) in samples.iter().zip(&frames) {
        assert!(sample_bytes(s) == *want);
    }
}

#[test]
fn test_roundtrip_ipv6_loopback() {
    five_frames("::1", "::1");
}

/// The receiver's address may be a host name, as udpsrc's may.
#[test]
fn test_receiver_address_may_be_a_host_name() {
    five_frames("localhost", "127.0.0.1");
}

/// `address=::` is dual-stack, as udpsrc's is: IPv4 senders reach it too.
#[test]
fn test_receiver_on_unspecified_ipv6_takes_ipv4_senders() {
    five_frames("::", "127.0.0.1");
}

#[test]
fn test_roundtrip_jpeg_variable_size_frames_byte_exact() {
    init();
    let rx = Rx::new("");
    let desc = format!(
        "videotestsrc num-buffers=30 pattern=ball ! video/x-raw,width=320,height=240,framerate=30/1 \
         ! jpegenc ! tee name=t ! queue ! videoipsink host=127.0.0.1 port={} sync=false \
         t. ! queue ! appsink name=ref sync=false",
        rx.port
    );
    let tx = gst::parse::launch(&desc)
        .unwrap()
        .downcast::<gst::Pipeline>()
        .unwrap();
    let reference = tx
        .by_name("ref")
        .unwrap()
        .downcast::<gst_app::AppSink>()
        .unwrap();
    tx.set_state(gst::State::Playing).unwrap();
    let mut want = Vec::new();
    while let Some(s) = reference.try_pull_sample(gst::ClockTime::from_seconds(10)) {
        want.push(sample_bytes(&s));
    }
    let got = rx.pull(30, 10 * SECOND);
    tx.set_state(gst::State::Null).unwrap();
    assert_eq!(want.len(), 30);
    assert_eq!(got.len(), 30, "stats: {}", rx.stats());
    let sizes: std::collections::HashSet<usize> = want.iter().map(Vec::len).collect();
    assert!(sizes.len() > 1, "jpeg frames vary in size");
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert!(sample_bytes(g) == *w, "jpeg frame {i} differs");
        let caps = g.caps().unwrap();
        assert_eq!(caps.structure(0).unwrap().name(), "image/jpeg");
        let flags = g.buffer().unwrap().flags();
        assert!(
            !flags.contains(gst::BufferFlags::DELTA_UNIT),
            "jpeg frames are key frames"
        );
    }
}

#[test]
fn test_roundtrip_delta_unit_and_header_flags_travel() {
    init();
    let caps = gst::Caps::builder("video/x-h264")
        .field("stream-format", "byte-stream")
        .field("alignment", "au")
        .build();
    let rx = Rx::new("");
    // In real time, so that the sender's timestamp spacing is what the receiver sees.
    let tx = Tx::new("127.0.0.1", rx.port, &caps, "sync=true");
    for (i, flags) in [
        gst::BufferFlags::HEADER,
        gst::BufferFlags::empty(),
        gst::BufferFlags::DELTA_UNIT,
        gst::BufferFlags::DELTA_UNIT | gst::BufferFlags::DROPPABLE,
    ]
    .into_iter()
    .enumerate()
    {
        let mut buf = gst::Buffer::from_slice(pattern(5000 + i * 1000, i as u64));
        {
            let b = buf.get_mut().unwrap();
            b.set_pts(gst::ClockTime::from_mseconds(100 + 40 * i as u64));
            b.set_dts(gst::ClockTime::from_mseconds(20 + 40 * i as u64));
            b.set_duration(gst::ClockTime::from_mseconds(40));
            b.set_flags(flags);
        }
        tx.appsrc.push_buffer(buf).unwrap();
    }
    let got = rx.pull(4, 10 * SECOND);
    assert_eq!(got.len(), 4);
    let f = |i: usize| got[i].buffer().unwrap().flags();
    assert!(f(0).contains(gst::BufferFlags::HEADER));
    assert!(!f(1).contains(gst::BufferFlags::DELTA_UNIT));
    assert!(f(2).contains(gst::BufferFlags::DELTA_UNIT));
    assert!(f(3).contains(gst::BufferFlags::DROPPABLE));
    // The sender's PTS spacing and PTS-DTS offset survive the trip.
    let pts = |i: usize| got[i].buffer().unwrap().pts().unwrap();
    let dts = |i: usize| got[i].buffer().unwrap().dts();
    let spacing = (pts(3) - pts(2)).nseconds();
    assert!(
        spacing.abs_diff(40_000_000) < 3_000_000,
        "PTS spacing {spacing} ns"
    );
    assert_eq!(dts(2), Some(pts(2) - gst::ClockTime::from_mseconds(80)));
}

#[test]
fn test_roundtrip_timestamps_are_running_time_and_increasing() {
    let (caps, size) = video_caps("UYVY", 320, 240);
    let rx = Rx::new("");
    let mut tx = Tx::new("127.0.0.1", rx.port, &caps, "");
    // In real time, as a live sender sends.
    for i in 0..20 {
        tx.push(&pattern(size, i), gst::ClockTime::from_mseconds(20));
        std::thread::sleep(Duration::from_millis(20));
    }
    let got = rx.pull(20, 10 * SECOND);
    assert_eq!(got.len(), 20);
    let clock = rx.pipeline.clock().unwrap();
    let now_rt = clock.time() - rx.pipeline.base_time().unwrap();
    let pts: Vec<gst::ClockTime> = got
        .iter()
        .map(|s| s.buffer().unwrap().pts().unwrap())
        .collect();
    assert!(pts.windows(2).all(|w| w[1] > w[0]), "PTS increase: {pts:?}");
    // On the receiver's running time: at most the latency ahead of now (a first frame that
    // came late is corrected slowly, so later ones may be stamped a little ahead).
    let latency = gst::ClockTime::from_mseconds(70);
    assert!(
        pts[19] <= now_rt + latency,
        "PTS are in the receiver's running time"
    );
    assert!(now_rt - pts[0] < gst::ClockTime::from_seconds(10));
    // The first buffer starts a stream: DISCONT.
    assert!(got[0]
        .buffer()
        .unwrap()
        .flags()
        .contains(gst::BufferFlags::DISCONT));
}

#[test]
fn test_caps_change_mid_stream_renegotiates() {
    let (caps_a, size_a) = video_caps("UYVY", 320, 240);
    let (caps_b, size_b) = video_caps("I420", 640, 360);
    let rx = Rx::new("");
    let mut tx = Tx::new("127.0.0.1", rx.port, &caps_a, "");
    for i in 0..5 {
        tx.push(&pattern(size_a, i), gst::ClockTime::from_mseconds(20));
    }
    let first = rx.pull(5, 10 * SECOND);
    tx.set_caps(&caps_b);
    let frames_b: Vec<Vec<u8>> = (0..5).map(|i| pattern(size_b, 50 + i)).collect();
    for f in &frames_b {
        tx.push(f, gst::ClockTime::from_mseconds(20));
    }
    let second = rx.pull(5, 10 * SECOND);
    assert_eq!(first.len(), 5);
    assert_eq!(second.len(), 5, "stats: {}", rx.stats());
    assert!(first.iter().all(|s| s.caps().unwrap() == caps_a.as_ref()));
    for (s, want) in second.iter().zip(&frames_b) {
        assert_eq!(s.caps().unwrap(), caps_b.as_ref());
        assert!(sample_bytes(s) == *want);
    }
}

#[test]
fn test_eos_from_sender_ends_the_receiver_pipeline() {
    let (caps, size) = video_caps("UYVY", 320, 240);
    let rx = Rx::new("");
    let mut tx = Tx::new("127.0.0.1", rx.port, &caps, "");
    for i in 0..3 {
        tx.push(&pattern(size, i), gst::ClockTime::from_mseconds(20));
    }
    tx.finish();
    let got = rx.pull(3, 10 * SECOND);
    assert_eq!(got.len(), 3);
    assert!(rx.wait_eos(10 * SECOND), "receiver pipeline posts EOS");
}

#[test]
fn test_late_joiner_locks_on_within_a_second() {
    init();
    // A live sender already streaming before the receiver exists: the receiver binds a free
    // port first, then the sender starts, then the receiver starts listening 700 ms later.
    let probe = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = probe.local_addr().unwrap().port();
    drop(probe);
    let tx = gst::parse::launch(&format!(
        "videotestsrc is-live=true ! video/x-raw,format=UYVY,width=640,height=360,framerate=30/1 \
         ! videoipsink host=127.0.0.1 port={port}"
    ))
    .unwrap();
    tx.set_state(gst::State::Playing).unwrap();
    std::thread::sleep(Duration::from_millis(700));
    let start = std::time::Instant::now();
    let rx = Rx::new(&format!("port={port}"));
    let got = rx.pull(1, 3 * SECOND);
    let waited = start.elapsed();
    tx.set_state(gst::State::Null).unwrap();
    assert_eq!(
        got.len(),
        1,
        "a late receiver gets frames; stats {}",
        rx.stats()
    );
    assert!(
        waited < Duration::from_millis(1000),
        "locked on after {waited:?}"
    );
    let caps = got[0].caps().unwrap();
    assert_eq!(caps.structure(0).unwrap().get::<i32>("width").unwrap(), 640);
}

#[test]
fn test_latency_query_covers_the_window_and_the_senders_pacing_spread() {
    let rx = Rx::new("latency=80");
    std::thread::sleep(Duration::from_millis(100));
    let mut q = gst::query::Latency::new();
    assert!(rx.src.static_pad("src").unwrap().query(&mut q));
    let (live, min, max) = q.result();
    assert!(live);
    // The window plus the most a sender spreads a frame (20 ms), and a finite maximum: one
    // window more, how long a frame may wait for downstream before it is dropped.
    assert_eq!(min, gst::ClockTime::from_mseconds(100));
    assert_eq!(max, Some(gst::ClockTime::from_mseconds(180)));
}

#[test]
fn test_sink_stats_keep_basesink_fields_and_count_datagrams() {
    let (caps, size) = video_caps("UYVY", 640, 480);
    let rx = Rx::new("");
    let mut tx = Tx::new("127.0.0.1", rx.port, &caps, "");
    for i in 0..4 {
        tx.push(&pattern(size, i), gst::ClockTime::from_mseconds(20));
    }
    assert_eq!(rx.pull(4, 10 * SECOND).len(), 4);
    // After EOS, both ends have counted everything (the EOS datagrams included).
    tx.finish();
    assert!(rx.wait_eos(10 * SECOND));
    let s = tx.stats();
    assert!(s.has_field("rendered"), "BaseSink's own fields stay: {s}");
    assert!(s.has_field("average-rate"));
    assert_eq!(s.get::<u64>("frames-sent").unwrap(), 4);
    let per_frame = size.div_ceil(1420) as u64;
    assert!(s.get::<u64>("datagrams-sent").unwrap() >= 4 * per_frame);
    assert!(s.get::<u64>("bytes-sent").unwrap() > 4 * size as u64);
    assert_eq!(s.get::<u64>("send-errors").unwrap(), 0);
    // Every datagram arrived but the repeats of the end-of-stream datagram that came after
    // the receiver had already stopped on the first one.
    let sent = s.get::<u64>("datagrams-sent").unwrap();
    let received = rx.stat("datagrams-received");
    assert!(
        received <= sent && sent - received <= 2,
        "{received} of {sent}"
    );
}

#[test]
fn test_caps_property_overrides_the_senders_caps() {
    let (caps, size) = video_caps("GRAY8", 64, 64);
    // The receiver reinterprets the same bytes as 32x64 GRAY16_LE.
    let (override_caps, override_size) = video_caps("GRAY16_LE", 32, 64);
    assert_eq!(size, override_size);
    let rx = Rx::new(&format!("caps=\"{override_caps}\""));
    let mut tx = Tx::new("127.0.0.1", rx.port, &caps, "");
    let frame = pattern(size, 5);
    tx.push(&frame, gst::ClockTime::from_mseconds(20));
    let got = rx.pull(1, 10 * SECOND);
    assert_eq!(got.len(), 1, "{}", rx.stats());
    assert_eq!(got[0].caps().unwrap(), override_caps.as_ref());
    assert!(sample_bytes(&got[0]) == frame);
}

#[test]
fn test_roundtrip_caps_larger_than_a_datagram_arrive_intact() {
    init();
    // About 7 KB of caps: five or six stream info datagrams at the default MTU.
    let text = format!("application/x-test, blob=(string){}", "x".repeat(7000));
    let caps = gst::Caps::from_str(&text).expect("caps parse");
    let rx = Rx::new("");
    let mut tx = Tx::new("127.0.0.1", rx.port, &caps, "");
    let frames: Vec<Vec<u8>> = (0..3).map(|i| pattern(1000, i)).collect();
    for f in &frames {
        tx.push(f, gst::ClockTime::from_mseconds(20));
    }
    let got = rx.pull(3, 10 * SECOND);
    assert_eq!(got.len(), 3, "{}", rx.stats());
    for (s, want) in got.iter().zip(&frames) {
        assert_eq!(s.caps().expect("caps"), caps.as_ref());
        assert!(sample_bytes(s) == *want);
    }
    assert!(
        rx.stat("stream-info-received") >= 5,
        "the caps came in pieces: {}",
        rx.stats()
    );
}
