// SPDX-License-Identifier: MPL-2.0
//! `videoipsinkbin`: a camera and its microphone as two tracks of one named source, through
//! real pipelines on loopback. Live sources as users have them; the receivers end in
//! clock-synchronised sinks; each receiver subscribes (by address) to the one track it wants.
//!
//! Bounds are counts and ratios loose enough for a busy 2-core machine.

#[allow(dead_code)]
mod common;

use common::*;
use gst::prelude::*;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One test at a time: each streams in real time, and two at once would measure each other.
static SERIAL: Mutex<()> = Mutex::new(());

const VIDEO_CAPS: &str = "video/x-raw,format=UYVY,width=320,height=240,framerate=30/1";
const AUDIO_CAPS: &str = "audio/x-raw,format=S16LE,rate=48000,channels=2";
/// Bytes per second of each: 320 x 240 x 2 at 30 fps, 48000 x 4.
const VIDEO_RATE: u64 = 320 * 240 * 2 * 30;
const AUDIO_RATE: u64 = 48_000 * 4;

fn launch(desc: &str) -> gst::Pipeline {
    init();
    gst::parse::launch(desc)
        .unwrap_or_else(|e| panic!("{desc}: {e}"))
        .downcast::<gst::Pipeline>()
        .expect("a pipeline")
}

/// What went into one of the bin's pads: each buffer's bytes, and its lateness (the
/// pipeline's running time when it arrived, minus its PTS) in ms.
#[derive(Default)]
struct Tap {
    bytes: Vec<Vec<u8>>,
    late_ms: Vec<f64>,
}

fn tap(pipeline: &gst::Pipeline, pad: &gst::Pad) -> Arc<Mutex<Tap>> {
    let tap = Arc::new(Mutex::new(Tap::default()));
    let t = tap.clone();
    let p = pipeline.downgrade();
    pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
        if let (Some(buf), Some(p)) = (info.buffer(), p.upgrade()) {
            let late = match (p.clock(), p.base_time(), buf.pts()) {
                (Some(clock), Some(base), Some(pts)) => {
                    let now = clock.time().saturating_sub(base);
                    Some((now.nseconds() as f64 - pts.nseconds() as f64) / 1e6)
                }
                _ => None,
            };
            let bytes = buf
                .map_readable()
                .map(|m| m.as_slice().to_vec())
                .unwrap_or_default();
            if let Ok(mut t) = t.lock() {
                t.bytes.push(bytes);
                t.late_ms.extend(late);
            }
        }
        gst::PadProbeReturn::Ok
    });
    tap
}

/// A sender pipeline around `videoipsinkbin name=b source-name=CAM port=0`, in PAUSED (its
/// session runs: receivers can subscribe), and the port it listens on.
fn sender(branches: &str) -> (gst::Pipeline, gst::Element, u16) {
    let tx = launch(&format!(
        "videoipsinkbin name=b source-name=CAM port=0 announce=false {branches}"
    ));
    if tx.set_state(gst::State::Paused).is_err() {
        panic!(
            "the sender does not start: {:?}",
            wait_end(&tx, Duration::ZERO)
        );
    }
    let bin = tx.by_name("b").expect("the bin");
    let port = bin.property::<i32>("port") as u16;
    assert_ne!(port, 0, "the bin reads back the port it listens on");
    (tx, bin, port)
}

fn live_branches(video_buffers: i32, audio_buffers: i32) -> String {
    format!(
        "videotestsrc name=vsrc is-live=true pattern=snow num-buffers={video_buffers} ! \
         {VIDEO_CAPS} ! b.video_0 \
         audiotestsrc name=asrc is-live=true samplesperbuffer=480 wave=white-noise \
         num-buffers={audio_buffers} ! {AUDIO_CAPS} ! b.audio_0"
    )
}

/// A receiver of track `track` subscribing at `port`, into `appsink sync=true`.
fn receiver(port: u16, track: u32) -> Rx {
    Rx::launch(&format!(
        "videoipsrc name=src sender-address=127.0.0.1 sender-port={port} track={track} ! \
         appsink name=sink sync=true"
    ))
}

fn stats(bin: &gst::Element) -> gst::Structure {
    bin.property::<gst::Structure>("stats")
}

fn wait_subscribers(bin: &gst::Element, n: u64) {
    let start = Instant::now();
    while stats(bin).get::<u64>("subscribers").unwrap_or(0) < n {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{} subscribers after 5 s\n{}",
            stats(bin).get::<u64>("subscribers").unwrap_or(0),
            stats(bin)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits for the pipeline's EOS or error, at most `timeout`: the error, if any.
fn wait_end(pipeline: &gst::Pipeline, timeout: Duration) -> Option<String> {
    let bus = pipeline.bus().expect("bus");
    let msg = bus.timed_pop_filtered(
        gst::ClockTime::from_nseconds(timeout.as_nanos() as u64),
        &[gst::MessageType::Eos, gst::MessageType::Error],
    );
    match msg.as_ref().map(|m| m.view()) {
        Some(gst::MessageView::Eos(_)) => None,
        Some(gst::MessageView::Error(e)) => Some(format!("{} ({:?})", e.error(), e.debug())),
        _ => Some("no end of stream in time".into()),
    }
}

/// What a run of the camera-and-microphone sender gave.
struct Run {
    video_sent: Vec<Vec<u8>>,
    audio_sent: Vec<Vec<u8>>,
    video_late: Vec<f64>,
    audio_late: Vec<f64>,
    video_got: Vec<gst::Sample>,
    audio_got: Vec<gst::Sample>,
    video_rx: gst::Structure,
    audio_rx: gst::Structure,
    tx: gst::Structure,
    error: Option<String>,
}

/// 3 s of live video (30 fps) and audio (100 buffers a second) into one bin, a receiver of
/// each track subscribed before the first frame; runs to the bin's end of stream.
fn camera_and_microphone() -> Run {
    const VIDEO: i32 = 90;
    const AUDIO: i32 = 300;
    let (tx, bin, port) = sender(&live_branches(VIDEO, AUDIO));
    let video_tap = tap(&tx, &bin.static_pad("video_0").expect("video_0"));
    let audio_tap = tap(&tx, &bin.static_pad("audio_0").expect("audio_0"));
    let (video, audio) = (receiver(port, 0), receiver(port, 1));
    wait_subscribers(&bin, 2);
    tx.set_state(gst::State::Playing).expect("the sender plays");
    let (v, a) = std::thread::scope(|s| {
        let v = s.spawn(|| video.pull(VIDEO as usize, Duration::from_secs(15)));
        let a = s.spawn(|| audio.pull(AUDIO as usize, Duration::from_secs(15)));
        (v.join().expect("video"), a.join().expect("audio"))
    });
    let error = wait_end(&tx, Duration::from_secs(10));
    let tx_stats = stats(&bin);
    let _ = tx.set_state(gst::State::Null);
    let take = |t: &Arc<Mutex<Tap>>| {
        let t = t.lock().expect("tap");
        (t.bytes.clone(), t.late_ms.clone())
    };
    let ((video_sent, video_late), (audio_sent, audio_late)) = (take(&video_tap), take(&audio_tap));
    Run {
        video_sent,
        audio_sent,
        video_late,
        audio_late,
        video_got: v,
        audio_got: a,
        video_rx: video.stats(),
        audio_rx: audio.stats(),
        tx: tx_stats,
        error,
    }
}

/// True when `got` is `sent` with some items left out, in order.
fn is_subsequence(got: &[Vec<u8>], sent: &[Vec<u8>]) -> bool {
    let mut it = sent.iter();
    got.iter().all(|g| it.any(|s| s == g))
}

fn all_bytes(samples: &[gst::Sample]) -> Vec<Vec<u8>> {
    samples.iter().map(sample_bytes).collect()
}

#[test]
fn test_video_and_audio_of_one_bin_reach_their_track_receivers_byte_exact() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let run = camera_and_microphone();
    assert_eq!(run.error, None, "{}", run.tx);
    assert_eq!(run.video_sent.len(), 90);
    assert_eq!(run.audio_sent.len(), 300);
    let (video, audio) = (all_bytes(&run.video_got), all_bytes(&run.audio_got));
    // Every video frame, byte for byte, in order.
    assert!(
        video == run.video_sent,
        "video: {} of {} frames, {} equal\n{}\n{}",
        video.len(),
        run.video_sent.len(),
        video.iter().filter(|f| run.video_sent.contains(f)).count(),
        run.video_rx,
        run.tx
    );
    // Every audio buffer received is one sent, byte for byte, in order; a live sender may
    // drop one on a busy machine (it never falls behind real time), and then counts it.
    assert!(
        is_subsequence(&audio, &run.audio_sent),
        "audio out of order or altered\n{}",
        run.audio_rx
    );
    let missing = (run.audio_sent.len() - audio.len()) as u64;
    let dropped = run.tx.get::<u64>("frames-dropped").unwrap_or(0);
    eprintln!("audio: {} of {} buffers", audio.len(), run.audio_sent.len());
    assert!(
        missing <= 3 && missing <= dropped,
        "audio: {} of {} buffers, {dropped} counted dropped\n{}\n{}",
        audio.len(),
        run.audio_sent.len(),
        run.audio_rx,
        run.tx
    );
    let caps = run.audio_got[0].caps().expect("caps");
    let s = caps.structure(0).expect("a structure");
    assert_eq!(s.name(), "audio/x-raw", "{caps}");
    assert_eq!(s.get::<i32>("rate").ok(), Some(48000), "{caps}");
    let vcaps = run.video_got[0].caps().expect("caps");
    assert_eq!(
        vcaps.structure(0).map(|s| s.name().to_string()),
        Some("video/x-raw".to_string())
    );
    // The track table names the tracks after the pads.
    let tracks = run
        .tx
        .get::<gst::Array>("track-stats")
        .expect("track-stats");
    let names: Vec<(u32, String)> = tracks
        .iter()
        .filter_map(|v| v.get::<gst::Structure>().ok())
        .map(|t| {
            (
                t.get::<u32>("track").unwrap_or(99),
                t.get::<String>("name").unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        names,
        vec![(0, "video_0".to_string()), (1, "audio_0".to_string())]
    );
}

fn summary(late: &[f64]) -> (f64, f64) {
    (
        late.last().copied().unwrap_or(f64::NAN),
        late.iter().copied().fold(f64::MIN, f64::max),
    )
}

#[test]
fn test_the_bin_keeps_real_time_on_both_pads() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let run = camera_and_microphone();
    assert_eq!(run.error, None, "{}", run.tx);
    for (name, late) in [("video_0", &run.video_late), ("audio_0", &run.audio_late)] {
        let (last, worst) = summary(late);
        eprintln!(
            "{name}: {} buffers, lateness last {last:.1} ms, worst {worst:.1} ms",
            late.len()
        );
        assert!(late.len() >= 90, "{name}: {} buffers", late.len());
        // A sink that falls behind never catches up: its last buffer shows it.
        assert!(
            last < 150.0,
            "{name}: the last buffer was {last:.1} ms late"
        );
        assert!(worst < 400.0, "{name}: a buffer was {worst:.1} ms late");
        // No drift: the last tenth no later than the first, give or take.
        let n = late.len() / 10;
        let avg = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
        let (first, end) = (avg(&late[..n]), avg(&late[late.len() - n..]));
        assert!(
            end < first + 50.0,
            "{name}: first tenth {first:.1} ms, last {end:.1} ms"
        );
    }
}

#[test]
fn test_an_audio_only_subscriber_is_sent_no_video() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let run = camera_and_microphone();
    assert_eq!(run.error, None, "{}", run.tx);
    let bytes = |s: &gst::Structure| s.get::<u64>("bytes-received").unwrap_or(0);
    let (audio, video) = (bytes(&run.audio_rx), bytes(&run.video_rx));
    let audio_payload = 3 * AUDIO_RATE;
    let video_payload = 3 * VIDEO_RATE;
    eprintln!(
        "audio-only subscriber: {audio} bytes in 3 s (audio alone {audio_payload}); \
         video subscriber: {video} bytes (video alone {video_payload})"
    );
    // Audio's own bytes plus headers and control, nowhere near video's 15 times more.
    assert!(audio >= audio_payload, "{}", run.audio_rx);
    assert!(audio < audio_payload * 3 / 2, "{}", run.audio_rx);
    assert!(video >= video_payload, "{}", run.video_rx);
    assert!(video < video_payload * 3 / 2, "{}", run.video_rx);
}

/// Pulls from `rx` for `within`: how many samples came.
fn count_for(rx: &Rx, within: Duration) -> usize {
    let deadline = Instant::now() + within;
    let mut n = 0;
    while Instant::now() < deadline {
        if rx
            .sink
            .try_pull_sample(gst::ClockTime::from_mseconds(50))
            .is_some()
        {
            n += 1;
        } else if rx.sink.is_eos() {
            break;
        }
    }
    n
}

/// Takes what `rx` holds already, so that what is counted next is what arrives next.
fn drain(rx: &Rx) {
    while rx.sink.try_pull_sample(gst::ClockTime::ZERO).is_some() {}
}

/// The bin's tracks as its stats list them: (id, name, ended).
fn tracks(bin: &gst::Element) -> Vec<(u32, String, bool)> {
    stats(bin)
        .get::<gst::Array>("track-stats")
        .map(|a| {
            a.iter()
                .filter_map(|v| v.get::<gst::Structure>().ok())
                .map(|t| {
                    (
                        t.get::<u32>("track").unwrap_or(99),
                        t.get::<String>("name").unwrap_or_default(),
                        t.get::<bool>("ended").unwrap_or(false),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn test_releasing_the_audio_pad_ends_the_audio_track_while_video_goes_on() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (tx, bin, port) = sender(&live_branches(-1, -1));
    let (video, audio) = (receiver(port, 0), receiver(port, 1));
    wait_subscribers(&bin, 2);
    tx.set_state(gst::State::Playing).expect("the sender plays");
    assert!(
        count_for(&audio, Duration::from_secs(1)) >= 50,
        "audio flows"
    );
    assert!(
        count_for(&video, Duration::from_millis(500)) >= 10,
        "video flows"
    );

    // The audio branch stops, then its pad is released while the pipeline plays.
    let pad = bin.static_pad("audio_0").expect("audio_0");
    let peer = pad.peer().expect("linked");
    let upstream = peer.parent_element().expect("the capsfilter");
    let asrc = tx.by_name("asrc").expect("asrc");
    let _ = asrc.set_state(gst::State::Null);
    let _ = upstream.set_state(gst::State::Null);
    let _ = peer.unlink(&pad);
    bin.release_request_pad(&pad);
    let released = Instant::now();

    // The audio receiver gets the track's end of stream (after what it still holds: an
    // appsink hands its end of stream over once its samples are taken).
    let rest = audio.pull(usize::MAX, Duration::from_secs(5));
    assert!(
        audio.sink.is_eos(),
        "no end of stream at the audio receiver ({} buffers after the release)\n{}",
        rest.len(),
        audio.stats()
    );
    eprintln!(
        "audio receiver at EOS {:?} after the release",
        released.elapsed()
    );
    drain(&video);
    // Video goes on at its rate: 2 s of it at 30 fps.
    let frames = count_for(&video, Duration::from_secs(2));
    eprintln!("video after the release: {frames} frames in 2 s");
    assert!(
        frames >= 45,
        "{frames} video frames in 2 s\n{}",
        video.stats()
    );
    let error = tx
        .bus()
        .and_then(|b| b.pop_filtered(&[gst::MessageType::Error]))
        .map(|m| format!("{m:?}"));
    assert_eq!(error, None);
    // The table lists video_0 alone.
    let t = tracks(&bin);
    assert_eq!(
        t.iter()
            .map(|(id, n, _)| (*id, n.as_str()))
            .collect::<Vec<_>>(),
        vec![(0, "video_0")],
        "{}",
        stats(&bin)
    );
    let _ = tx.set_state(gst::State::Null);
}

#[test]
fn test_a_stalled_audio_branch_never_holds_video_back() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (tx, bin, port) = sender(&format!(
        "videotestsrc is-live=true pattern=snow ! {VIDEO_CAPS} ! b.video_0 \
         audiotestsrc is-live=true samplesperbuffer=480 ! {AUDIO_CAPS} ! valve name=v ! b.audio_0"
    ));
    let video = receiver(port, 0);
    wait_subscribers(&bin, 1);
    let late = tap(&tx, &bin.static_pad("video_0").expect("video_0"));
    tx.set_state(gst::State::Playing).expect("the sender plays");
    let before = count_for(&video, Duration::from_secs(2));
    drain(&video);
    // The audio branch stops delivering: nothing reaches its pad any more.
    tx.by_name("v").expect("valve").set_property("drop", true);
    let audio_frames = |bin: &gst::Element| {
        stats(bin)
            .get::<gst::Array>("track-stats")
            .ok()
            .and_then(|a| a.get(1).and_then(|v| v.get::<gst::Structure>().ok()))
            .and_then(|t| t.get::<u64>("frames-sent").ok())
            .unwrap_or(0)
    };
    std::thread::sleep(Duration::from_millis(200));
    let audio_at_stall = audio_frames(&bin);
    drain(&video);
    let during = count_for(&video, Duration::from_secs(3));
    let audio_after = audio_frames(&bin);
    let _ = tx.set_state(gst::State::Null);
    eprintln!(
        "video: {before} frames in 2 s before the stall, {during} in 3 s during it; \
         audio frames sent during it: {}",
        audio_after - audio_at_stall
    );
    assert!(before >= 45, "{before} frames in 2 s before");
    assert_eq!(audio_after, audio_at_stall, "audio stalled");
    // 90 frames in 3 s at 30 fps: the stall takes nothing from video.
    assert!(
        during >= 80,
        "{during} video frames in 3 s of stalled audio"
    );
    let (last, worst) = summary(&late.lock().expect("tap").late_ms);
    assert!(
        last < 150.0 && worst < 400.0,
        "video lateness last {last:.1} ms, worst {worst:.1}"
    );
}

#[test]
fn test_the_bin_offers_request_pads_and_videoipsinks_session_properties() {
    init();
    let bin = gst::ElementFactory::make("videoipsinkbin")
        .build()
        .expect("videoipsinkbin is registered");
    let templates: Vec<(String, gst::PadPresence)> = bin
        .pad_template_list()
        .iter()
        .map(|t| (t.name_template().to_string(), t.presence()))
        .collect();
    for name in ["video_%u", "audio_%u", "meta_%u"] {
        assert!(
            templates.contains(&(name.to_string(), gst::PadPresence::Request)),
            "{templates:?}"
        );
    }
    let sink = gst::ElementFactory::make("videoipsink")
        .build()
        .expect("videoipsink");
    for name in [
        "host",
        "port",
        "source-name",
        "passphrase",
        "pbkeylen",
        "mtu",
        "max-receivers",
        "max-bitrate",
        "pacing",
        "fec-percentage",
        "stats",
        "announce",
        "bind-address",
    ] {
        let (a, b) = (
            bin.find_property(name)
                .unwrap_or_else(|| panic!("the bin has no {name}")),
            sink.find_property(name).expect("videoipsink has it"),
        );
        assert_eq!(a.value_type(), b.value_type(), "{name}");
        assert_eq!(a.flags(), b.flags(), "{name}");
        if name != "stats" {
            assert_eq!(a.blurb(), b.blurb(), "{name}");
        }
    }
    // Pads are named after their template, and each kind counts on its own.
    let v = bin.request_pad_simple("video_%u").expect("a video pad");
    let a = bin.request_pad_simple("audio_%u").expect("an audio pad");
    let m = bin.request_pad_simple("meta_%u").expect("a meta pad");
    let a1 = bin
        .request_pad_simple("audio_%u")
        .expect("another audio pad");
    assert_eq!(
        [&v, &a, &m, &a1].map(|p| p.name().to_string()),
        ["video_0", "audio_0", "meta_0", "audio_1"]
    );
    bin.release_request_pad(&a);
    assert!(bin.static_pad("audio_0").is_none());
    assert_eq!(
        bin.request_pad_simple("audio_%u")
            .map(|p| p.name().to_string()),
        Some("audio_0".to_string())
    );
}

#[test]
fn test_a_bad_property_value_fails_naming_the_property() {
    init();
    let pipeline = launch(
        "audiotestsrc is-live=true ! b.audio_0 videoipsinkbin name=b host=127.0.0.1 port=5999 max-bitrate=1000",
    );
    assert!(pipeline.set_state(gst::State::Playing).is_err());
    let msg = pipeline
        .bus()
        .and_then(|b| b.pop_filtered(&[gst::MessageType::Error]))
        .expect("an error message");
    // The reason is in the message's debug text, as videoipsink gives it.
    let text = match msg.view() {
        gst::MessageView::Error(e) => format!("{} {:?}", e.error(), e.debug()),
        _ => String::new(),
    };
    assert!(text.contains("max-bitrate"), "{text}");
    let _ = pipeline.set_state(gst::State::Null);
}

#[test]
fn test_an_audio_pad_requested_first_is_track_0_until_a_video_pad_comes_first() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let ids = |branches: &str| {
        let tx = launch(&format!(
            "videoipsinkbin name=b host=127.0.0.1 port=5999 {branches}"
        ));
        let bin = tx.by_name("b").expect("b");
        tx.set_state(gst::State::Playing).expect("plays");
        let start = Instant::now();
        let mut t = tracks(&bin);
        while t
            .iter()
            .any(|(_, n, _)| n == "video_0" && !branches.contains("video"))
            || t.is_empty()
        {
            assert!(start.elapsed() < Duration::from_secs(2), "{t:?}");
            std::thread::sleep(Duration::from_millis(20));
            t = tracks(&bin);
        }
        std::thread::sleep(Duration::from_millis(100));
        let t = tracks(&bin);
        let _ = tx.set_state(gst::State::Null);
        t.into_iter().map(|(id, n, _)| (id, n)).collect::<Vec<_>>()
    };
    // Audio alone: the audio pad is track 0 (single-stream receivers follow it).
    assert_eq!(
        ids("audiotestsrc is-live=true ! b.audio_0"),
        vec![(0, "audio_0".to_string())]
    );
    // Audio requested first, then video, before the bin starts: video is track 0.
    let both = ids(&format!(
        "audiotestsrc is-live=true ! b.audio_0 \
         videotestsrc is-live=true ! {VIDEO_CAPS} ! b.video_0"
    ));
    let mut sorted = both.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        vec![(0, "video_0".to_string()), (1, "audio_0".to_string())],
        "{both:?}"
    );
}

#[test]
fn test_a_single_stream_receiver_of_a_bin_with_a_host_plays_its_video_track() {
    // Audio is requested first: the video pad is still track 0, declared first.
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // A plain receiver, as for videoipsink: no track asked for, so track 0.
    let rx = Rx::launch("videoipsrc name=src port=0 ! appsink name=sink sync=true");
    let tx = launch(&format!(
        "videoipsinkbin name=b host=127.0.0.1 port={} \
         audiotestsrc is-live=true samplesperbuffer=480 ! {AUDIO_CAPS} ! b.audio_0 \
         videotestsrc is-live=true num-buffers=30 ! {VIDEO_CAPS} ! b.video_0",
        rx.port
    ));
    tx.set_state(gst::State::Playing).expect("the sender plays");
    let got = rx.pull(30, Duration::from_secs(10));
    let error = tx
        .bus()
        .and_then(|b| b.pop_filtered(&[gst::MessageType::Error]))
        .map(|m| format!("{m:?}"));
    assert_eq!(error, None);
    let bin = tx.by_name("b").expect("b");
    let t = tracks(&bin);
    let _ = tx.set_state(gst::State::Null);
    assert!(
        got.len() >= 28,
        "{} of 30 frames\n{}",
        got.len(),
        rx.stats()
    );
    let caps = got[0].caps().expect("caps");
    assert_eq!(
        caps.structure(0).map(|s| s.name().to_string()),
        Some("video/x-raw".to_string()),
        "{caps}"
    );
    assert_eq!(
        t.iter()
            .map(|(id, n, _)| (*id, n.as_str()))
            .collect::<Vec<_>>(),
        vec![(0, "video_0"), (1, "audio_0")],
        "audio requested first is track 1 all the same"
    );
}

/// Adds `audiotestsrc ! capsfilter` to `tx`, linked to a new audio pad of `bin`, playing.
fn add_audio_branch(tx: &gst::Pipeline, bin: &gst::Element) -> (gst::Pad, [gst::Element; 2]) {
    let src = gst::ElementFactory::make("audiotestsrc")
        .property("is-live", true)
        .property("samplesperbuffer", 480i32)
        .build()
        .expect("audiotestsrc");
    let caps = gst::ElementFactory::make("capsfilter")
        .property("caps", AUDIO_CAPS.parse::<gst::Caps>().expect("caps"))
        .build()
        .expect("capsfilter");
    tx.add_many([&src, &caps]).expect("added");
    src.link(&caps).expect("linked");
    let pad = bin.request_pad_simple("audio_%u").expect("an audio pad");
    caps.static_pad("src")
        .expect("src")
        .link(&pad)
        .expect("linked to the bin");
    for e in [&caps, &src] {
        e.sync_state_with_parent().expect("plays");
    }
    (pad, [src, caps])
}

#[test]
fn test_a_pad_requested_while_playing_adds_a_track_and_a_released_id_is_reused() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (tx, bin, port) = sender(&format!(
        "videotestsrc is-live=true ! {VIDEO_CAPS} ! b.video_0"
    ));
    let video = receiver(port, 0);
    wait_subscribers(&bin, 1);
    tx.set_state(gst::State::Playing).expect("the sender plays");
    assert!(
        count_for(&video, Duration::from_millis(500)) >= 5,
        "video flows"
    );

    // A microphone joins while the camera runs: track 1.
    let (pad, branch) = add_audio_branch(&tx, &bin);
    assert_eq!(pad.name(), "audio_0");
    let audio = receiver(port, 1);
    let got = audio.pull(50, Duration::from_secs(5));
    assert_eq!(got.len(), 50, "{}\n{}", audio.stats(), stats(&bin));

    // It leaves, and another takes its place: the same id, a track of its own again.
    for e in &branch {
        let _ = e.set_state(gst::State::Null);
    }
    if let Some(peer) = pad.peer() {
        let _ = peer.unlink(&pad);
    }
    bin.release_request_pad(&pad);
    for e in &branch {
        let _ = tx.remove(e);
    }
    let _ = audio.pull(usize::MAX, Duration::from_secs(5));
    assert!(audio.sink.is_eos(), "the first microphone's receiver ended");
    let (pad2, _branch2) = add_audio_branch(&tx, &bin);
    let again = receiver(port, 1);
    let got = again.pull(50, Duration::from_secs(5));
    assert_eq!(got.len(), 50, "{}\n{}", again.stats(), stats(&bin));
    let t = tracks(&bin);
    assert_eq!(
        t.iter()
            .map(|(id, n, _)| (*id, n.as_str()))
            .collect::<Vec<_>>(),
        vec![(0, "video_0"), (1, pad2.name().as_str())]
    );
    drain(&video);
    let frames = count_for(&video, Duration::from_secs(1));
    assert!(frames >= 20, "video went on: {frames} frames in 1 s");
    let _ = tx.set_state(gst::State::Null);
}
