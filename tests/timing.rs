// SPDX-License-Identifier: MPL-2.0
//! Timing as users' receivers see it: a sink that waits on the clock straight after
//! `videoipsrc` (no queue), audio and video of one sender kept in sync, late frames, a
//! downstream that stalls, and a receiver paused and resumed. Senders send in real time.

#[allow(dead_code)]
mod common;

use common::*;
use gst::prelude::*;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const FRAME_NS: u64 = 16_666_667;
const SECOND: Duration = Duration::from_secs(1);

fn uyvy(w: u32, h: u32, fps: i32) -> (gst::Caps, usize) {
    let caps = gst::Caps::builder("video/x-raw")
        .field("format", "UYVY")
        .field("width", w as i32)
        .field("height", h as i32)
        .field("framerate", gst::Fraction::new(fps, 1))
        .build();
    (caps, (w * h * 2) as usize)
}

/// A frame of `len` bytes whose first 8 bytes are `index` and whose other bytes are all the
/// index's low byte (cheap to make, even in a debug build).
fn stamped(len: usize, index: u64) -> Vec<u8> {
    let mut f = vec![index as u8; len];
    f[..8].copy_from_slice(&index.to_le_bytes());
    f
}

fn index_of(s: &gst::Sample) -> u64 {
    let buf = s.buffer().expect("buffer");
    let map = buf.map_readable().expect("maps");
    let mut b = [0u8; 8];
    b.copy_from_slice(&map[..8]);
    u64::from_le_bytes(b)
}

fn pts_ns(s: &gst::Sample) -> u64 {
    s.buffer()
        .and_then(|b| b.pts())
        .expect("buffer has a PTS")
        .nseconds()
}

fn is_discont(s: &gst::Sample) -> bool {
    s.buffer()
        .is_some_and(|b| b.flags().contains(gst::BufferFlags::DISCONT))
}

/// Sleeps until `t`.
fn sleep_until(t: Instant) {
    let left = t.saturating_duration_since(Instant::now());
    if !left.is_zero() {
        std::thread::sleep(left);
    }
}

/// Keeps one core busy until dropped, as other work on a user's machine would.
struct Busy(Arc<AtomicBool>, Option<std::thread::JoinHandle<()>>);

impl Busy {
    fn new() -> Busy {
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let h = std::thread::spawn(move || {
            let end = Instant::now() + Duration::from_secs(60);
            let mut x = 0u64;
            while !s.load(Ordering::Relaxed) && Instant::now() < end {
                for i in 0..10_000u64 {
                    x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
                }
            }
        });
        Busy(stop, Some(h))
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
        if let Some(h) = self.1.take() {
            let _ = h.join();
        }
    }
}

/// Sends `n` frames at 60 fps in real time from the calling thread, `frame(i)` each.
fn send_realtime(tx: &mut Tx, n: u64, frame: impl Fn(u64) -> Vec<u8>) {
    let start = Instant::now();
    let dur = gst::ClockTime::from_nseconds(FRAME_NS);
    for i in 0..n {
        sleep_until(start + Duration::from_nanos(i * FRAME_NS));
        tx.push(&frame(i), dur);
    }
}

#[test]
fn test_synced_sink_straight_after_the_source_gets_every_1080p60_frame_on_time() {
    // The README's receiver shape: a sink that waits on the clock, no queue, with another
    // core's worth of work on the machine.
    let rx = Rx::launch(
        "videoipsrc name=src address=127.0.0.1 port=0 ! videoconvert ! appsink name=sink sync=true max-buffers=0",
    );
    let (caps, size) = uyvy(1920, 1080, 60);
    let mut tx = Tx::new("127.0.0.1", rx.port, &caps, "");
    let _busy = Busy::new();
    let n = 240;
    let puller = {
        let sink = rx.sink.clone();
        std::thread::spawn(move || {
            let mut got = Vec::new();
            let end = Instant::now() + Duration::from_secs(30);
            while got.len() < n as usize && Instant::now() < end {
                if let Some(s) = sink.try_pull_sample(gst::ClockTime::from_mseconds(100)) {
                    got.push((index_of(&s), pts_ns(&s)));
                }
            }
            got
        })
    };
    send_realtime(&mut tx, n, |i| stamped(size, i));
    let got = puller.join().expect("puller");
    assert_eq!(
        got.len(),
        n as usize,
        "every frame arrives at the synced sink; stats: {}",
        rx.stats()
    );
    for (k, w) in got.windows(2).enumerate() {
        assert_eq!(w[1].0, w[0].0 + 1, "frames in order at {k}");
        let step = w[1].1 as i64 - w[0].1 as i64;
        assert!(
            (step - FRAME_NS as i64).abs() < 1_000_000,
            "PTS step {step} ns at frame {} (want 16.7 ms ± 1 ms)",
            k + 1
        );
    }
    assert_eq!(rx.stat("frames-dropped-late"), 0);
}

#[test]
fn test_audio_and_video_of_one_sender_on_two_ports_stay_in_sync_at_synced_sinks() {
    let worst = av_offset(Duration::ZERO, 30);
    assert!(
        worst < 1_000_000,
        "audio/video offset reached {worst} ns (want < 1 ms)"
    );
}

#[test]
fn test_video_sent_30ms_after_its_audio_keeps_lip_sync_through_the_sender_clock() {
    // As a video encoder would: each video buffer leaves the sender 30 ms after audio of the
    // same time. Mapping each stream by its own arrivals would put video 30 ms late; the
    // sender reports put both on the sender's clock.
    let worst = av_offset(Duration::from_millis(30), 10);
    assert!(
        worst < 1_000_000,
        "audio/video offset reached {worst} ns (want < 1 ms)"
    );
}

/// Sends `secs` seconds of video (16.7 ms frames, each `video_delay` after its time) and
/// audio (10 ms buffers) from one sender pipeline on two ports, into two sources of one
/// receiving pipeline, each followed directly by a synced sink. Returns the largest
/// difference between the two streams' receiver-minus-sender timestamp offsets, after the
/// first second.
fn av_offset(video_delay: Duration, secs: u64) -> i64 {
    init();
    // One receiving pipeline, two sources, each followed directly by a synced sink.
    let rx = gst::parse::launch(
        "videoipsrc name=vsrc address=127.0.0.1 port=0 ! appsink name=vsink sync=true max-buffers=0 \
         videoipsrc name=asrc address=127.0.0.1 port=0 ! appsink name=asink sync=true max-buffers=0",
    )
    .expect("parses")
    .downcast::<gst::Pipeline>()
    .expect("pipeline");
    rx.set_state(gst::State::Ready).expect("READY");
    let port = |name: &str| rx.by_name(name).expect("src").property::<i32>("port");
    let (vport, aport) = (port("vsrc"), port("asrc"));
    rx.set_state(gst::State::Playing).expect("PLAYING");
    let sink = |name: &str| {
        rx.by_name(name)
            .expect("sink")
            .downcast::<gst_app::AppSink>()
            .expect("appsink")
    };
    let (vsink, asink) = (sink("vsink"), sink("asink"));

    // One sending pipeline with a video and an audio branch on one timeline.
    let tx = gst::parse::launch(&format!(
        "appsrc name=v format=time is-live=true ! videoipsink host=127.0.0.1 port={vport} sync=false \
         appsrc name=a format=time is-live=true ! videoipsink host=127.0.0.1 port={aport} sync=false"
    ))
    .expect("parses")
    .downcast::<gst::Pipeline>()
    .expect("pipeline");
    let appsrc = |name: &str| {
        tx.by_name(name)
            .expect("appsrc")
            .downcast::<gst_app::AppSrc>()
            .expect("appsrc")
    };
    let (vsrc, asrc) = (appsrc("v"), appsrc("a"));
    vsrc.set_caps(Some(&uyvy(320, 240, 60).0));
    asrc.set_caps(Some(
        &gst::Caps::builder("audio/x-raw")
            .field("format", "S16LE")
            .field("rate", 48000i32)
            .field("channels", 2i32)
            .field("layout", "interleaved")
            .build(),
    ));
    tx.set_state(gst::State::Playing).expect("sender PLAYING");

    // Each sink's samples: (sender PTS stamped in the payload, receiver PTS).
    let collect = |s: gst_app::AppSink| {
        std::thread::spawn(move || {
            let mut got = Vec::new();
            let end = Instant::now() + Duration::from_secs(45);
            while Instant::now() < end {
                match s.try_pull_sample(gst::ClockTime::from_mseconds(200)) {
                    Some(smp) => got.push((index_of(&smp), pts_ns(&smp))),
                    None if s.is_eos() => break,
                    None if !got.is_empty() && Instant::now() + Duration::from_secs(2) > end => {
                        break
                    }
                    None => {}
                }
            }
            got
        })
    };
    let (vthread, athread) = (collect(vsink), collect(asink));

    // Video every 16.7 ms, audio every 10 ms, each stamped with its sender PTS.
    let start = Instant::now();
    let total = Duration::from_secs(secs).as_nanos() as u64;
    let delay = video_delay.as_nanos() as u64;
    let (mut next_v, mut next_a) = (0u64, 0u64);
    while next_v < total || next_a < total {
        let t = (next_v + delay).min(next_a);
        sleep_until(start + Duration::from_nanos(t));
        let push = |src: &gst_app::AppSrc, len: usize, pts: u64, dur: u64| {
            let mut buf = gst::Buffer::from_slice(stamped(len, pts));
            {
                let b = buf.get_mut().expect("writable");
                b.set_pts(gst::ClockTime::from_nseconds(pts));
                b.set_duration(gst::ClockTime::from_nseconds(dur));
            }
            src.push_buffer(buf).expect("pushed");
        };
        if next_v + delay == t {
            push(&vsrc, 320 * 240 * 2, next_v, FRAME_NS);
            next_v += FRAME_NS;
        }
        if next_a == t {
            push(&asrc, 1920, next_a, 10_000_000);
            next_a += 10_000_000;
        }
    }
    let _ = vsrc.end_of_stream();
    let _ = asrc.end_of_stream();
    let video = vthread.join().expect("video");
    let audio = athread.join().expect("audio");
    let _ = tx.set_state(gst::State::Null);
    let _ = rx.set_state(gst::State::Null);

    let want = secs as usize;
    assert!(video.len() > want * 57, "video frames: {}", video.len());
    assert!(audio.len() > want * 97, "audio buffers: {}", audio.len());
    // Receiver PTS − sender PTS of each stream, after the first second.
    let offsets = |v: &[(u64, u64)]| -> Vec<(u64, i64)> {
        v.iter()
            .filter(|(s, _)| *s >= 1_000_000_000)
            .map(|&(s, r)| (s, r as i64 - s as i64))
            .collect()
    };
    let (ov, oa) = (offsets(&video), offsets(&audio));
    // Compare each video frame with the audio buffer nearest to it in sender time.
    let mut worst = 0i64;
    for &(s, o) in &ov {
        let i = oa.partition_point(|&(t, _)| t < s).min(oa.len() - 1);
        worst = worst.max((o - oa[i].1).abs());
    }
    worst
}

#[test]
fn test_one_frame_delayed_80ms_neither_reverses_pts_nor_restarts_the_mapping() {
    // Single-datagram frames whose last byte is their index: the relay holds frame 60 back.
    fn frame_60(d: &[u8]) -> bool {
        d.len() > 700 && d[d.len() - 1] == 60
    }
    let rx = Rx::new("");
    let relay = Relay::new(
        format!("127.0.0.1:{}", rx.port).parse().expect("addr"),
        Mangle::Delay(frame_60, Duration::from_millis(80)),
    );
    let caps = gst::Caps::builder("video/x-raw")
        .field("format", "GRAY8")
        .field("width", 32i32)
        .field("height", 24i32)
        .field("framerate", gst::Fraction::new(60, 1))
        .build();
    let mut tx = Tx::new("127.0.0.1", relay.port, &caps, "");
    let puller = {
        let sink = rx.sink.clone();
        std::thread::spawn(move || {
            let mut got = Vec::new();
            let end = Instant::now() + Duration::from_secs(10);
            while got.len() < 120 && Instant::now() < end {
                if let Some(s) = sink.try_pull_sample(gst::ClockTime::from_mseconds(100)) {
                    got.push((index_of(&s), pts_ns(&s), is_discont(&s)));
                }
            }
            got
        })
    };
    send_realtime(&mut tx, 120, |i| stamped(768, i));
    std::thread::sleep(Duration::from_millis(300));
    drop(relay);
    let got = puller.join().expect("puller");
    assert!(got.len() >= 115, "frames: {} ({})", got.len(), rx.stats());
    for w in got.windows(2) {
        assert!(w[1].1 >= w[0].1, "PTS went back: {:?} → {:?}", w[0], w[1]);
        // Each step keeps the sender's spacing (the mapping only ever slews, by at most 1 %
        // of it): across the late frame too, so the mapping never restarted.
        let want = (w[1].0 - w[0].0) * FRAME_NS;
        let step = (w[1].1 - w[0].1) as i64;
        assert!(
            (step - want as i64).abs() < 1_000_000,
            "step {step} ns from frame {} to {} (want {want})",
            w[0].0,
            w[1].0
        );
    }
}

#[test]
fn test_downstream_that_stalls_gets_fresh_frames_and_a_discont_after() {
    // A sink that takes one buffer and then nothing for a second.
    let rx = Rx::launch(
        "videoipsrc name=src address=127.0.0.1 port=0 ! appsink name=sink sync=false max-buffers=1 drop=false",
    );
    let (caps, size) = uyvy(320, 240, 60);
    let mut tx = Tx::new("127.0.0.1", rx.port, &caps, "");
    let sender = std::thread::spawn(move || {
        send_realtime(&mut tx, 150, |i| stamped(size, i));
        tx
    });
    // Let frames flow, then stall for a second.
    let first = rx.pull(10, 5 * SECOND);
    assert_eq!(first.len(), 10);
    std::thread::sleep(Duration::from_millis(1000));
    let after = rx.pull(20, 5 * SECOND);
    let _tx = sender.join().expect("sender");
    assert_eq!(after.len(), 20);
    // The queue held at most its maximum latency of frames (180 ms: 11 frames), plus the one
    // in the sink and the one being pushed, not a second's worth.
    let sent_by_now = 10 + 60;
    let stale = after
        .iter()
        .take_while(|s| index_of(s) + 14 < sent_by_now)
        .count();
    assert!(
        stale <= 2,
        "{stale} stale frames after the stall: {:?}",
        after.iter().map(index_of).collect::<Vec<_>>()
    );
    assert!(
        after.iter().take(4).any(is_discont),
        "a DISCONT marks the dropped frames"
    );
    assert!(rx.stat("frames-dropped-late") >= 40, "{}", rx.stats());
}

#[test]
fn test_resumed_receiver_does_not_push_what_queued_while_paused() {
    let rx = Rx::new("");
    let (caps, size) = uyvy(320, 240, 60);
    let mut tx = Tx::new("127.0.0.1", rx.port, &caps, "");
    let sender = std::thread::spawn(move || {
        send_realtime(&mut tx, 150, |i| stamped(size, i));
        tx
    });
    let before = rx.pull(10, 5 * SECOND);
    assert_eq!(before.len(), 10);
    rx.pipeline.set_state(gst::State::Paused).expect("PAUSED");
    // Whatever reached the sink before the pause took effect is not the source's doing.
    let mut last_before = index_of(&before[9]);
    while let Some(s) = rx.sink.try_pull_sample(gst::ClockTime::ZERO) {
        last_before = index_of(&s);
    }
    std::thread::sleep(Duration::from_millis(700));
    rx.pipeline.set_state(gst::State::Playing).expect("PLAYING");
    let resumed = Instant::now();
    let mut times = Vec::new();
    while times.len() < 10 && resumed.elapsed() < 5 * SECOND {
        if let Some(s) = rx.sink.try_pull_sample(gst::ClockTime::from_mseconds(100)) {
            times.push((resumed.elapsed(), index_of(&s), is_discont(&s)));
        }
    }
    let _tx = sender.join().expect("sender");
    assert_eq!(times.len(), 10);
    // Frames come at the stream's pace from the resume on, not as a burst of old ones.
    let burst = times
        .iter()
        .filter(|(t, ..)| *t < Duration::from_millis(40))
        .count();
    assert!(burst <= 3, "{burst} frames in the first 40 ms: {times:?}");
    // A sink prerolls in PAUSED on the buffer pushed as the pause took effect and renders it
    // on resume: that one comes from before the pause. The next is the source's first after
    // it: marked DISCONT, and fresh (the 40 or so frames sent meanwhile were dropped).
    let first = usize::from(times[0].1 <= last_before + 1);
    assert!(times[first].2, "DISCONT after the pause: {times:?}");
    assert!(
        times[first].1 >= last_before + 30,
        "fresh after the pause (the last frame before it was {last_before}): {times:?}"
    );
}
