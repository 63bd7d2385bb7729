// SPDX-License-Identifier: MPL-2.0
//! The README's sender and receiver lines, run as written: only the receiver's fixed port
//! becomes an ephemeral one and the sender's documentation address becomes loopback (or, for
//! the multicast pair, a namespace made here with an `eth0` of its own). The receivers end in
//! `autovideosink` / `autoaudiosink`, sinks that wait on the clock.

#[allow(dead_code)]
mod common;

use common::*;
use gst::prelude::*;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// (sender line, receiver line) pairs of the README's Usage section, without `gst-launch-1.0`.
fn readme_pairs() -> Vec<(String, String)> {
    let readme = include_str!("../README.md");
    let usage = readme
        .split("## Usage")
        .nth(1)
        .and_then(|u| u.split("### Example scripts").next())
        .expect("README has a Usage section");
    let lines: Vec<&str> = usage
        .lines()
        .filter_map(|l| l.trim().strip_prefix("gst-launch-1.0 "))
        .collect();
    let mut pairs = Vec::new();
    let mut sender = None;
    for l in lines {
        // The bins' pair has a test of its own.
        if l.contains("videoipsinkbin") || l.starts_with("videoipsrcbin") {
            continue;
        }
        if l.contains("videoipsink") {
            sender = Some(l.to_string());
        } else if l.starts_with("videoipsrc ") {
            pairs.push((
                sender.take().expect("a sender line before each receiver"),
                l.into(),
            ));
        }
    }
    pairs
}

/// The README's lines stream in real time to synced sinks: run one pair at a time, so that
/// on a 2-core machine they measure the lines, not each other.
fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Headless, autovideosink tries sinks that need a display server and misbehave without
/// one: DirectFB's crashes the process (inside libfusion), GTK-Wayland's hangs in its state
/// change. Leave those out, so that it falls back as on a headless server.
fn init_headless() {
    init();
    for name in ["dfbvideosink", "gtkwaylandsink"] {
        if let Some(f) = gst::Registry::get().lookup_feature(name) {
            f.set_rank(gst::Rank::NONE);
        }
    }
}

fn element_of(p: &gst::Pipeline, factory: &str) -> gst::Element {
    p.iterate_recurse()
        .into_iter()
        .flatten()
        .find(|e| e.factory().is_some_and(|f| f.name() == factory))
        .unwrap_or_else(|| panic!("pipeline has a {factory}"))
}

fn launch(line: &str) -> gst::Pipeline {
    gst::parse::launch(line)
        .unwrap_or_else(|e| panic!("{line}: {e}"))
        .downcast::<gst::Pipeline>()
        .expect("a pipeline")
}

fn errors(p: &gst::Pipeline) -> Vec<String> {
    let bus = p.bus().expect("bus");
    std::iter::from_fn(|| bus.pop_filtered(&[gst::MessageType::Error]))
        .map(|m| format!("{m:?}"))
        .collect()
}

/// Counts the buffers `src` pushes.
fn count_buffers(src: &gst::Element) -> Arc<AtomicU64> {
    let pushed = Arc::new(AtomicU64::new(0));
    let p2 = pushed.clone();
    src.static_pad("src")
        .expect("src pad")
        .add_probe(gst::PadProbeType::BUFFER, move |_, _| {
            p2.fetch_add(1, Ordering::Relaxed);
            gst::PadProbeReturn::Ok
        });
    pushed
}

/// Runs one pair for `secs` seconds; returns the buffers the receiver pushed and its stats.
fn run_pair(sender: &str, receiver: &str, sender_host: &str, secs: u64) -> (u64, gst::Structure) {
    let rx_line = receiver
        .split_whitespace()
        .map(|w| if w.starts_with("port=") { "port=0" } else { w })
        .collect::<Vec<_>>()
        .join(" ");
    let rx = launch(&rx_line);
    rx.set_state(gst::State::Ready).expect("receiver READY");
    let src = element_of(&rx, "videoipsrc");
    let port = src.property::<i32>("port");
    let pushed = count_buffers(&src);
    rx.set_state(gst::State::Playing).expect("receiver PLAYING");
    let tx_line = sender
        .split_whitespace()
        .map(|w| {
            if w.starts_with("host=") {
                format!("host={sender_host}")
            } else if w.starts_with("port=") {
                format!("port={port}")
            } else {
                w.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(" ");
    let tx = launch(&tx_line);
    tx.set_state(gst::State::Playing).expect("sender PLAYING");
    std::thread::sleep(Duration::from_secs(secs));
    let stats = src.property::<gst::Structure>("stats");
    let (tx_err, rx_err) = (errors(&tx), errors(&rx));
    let _ = tx.set_state(gst::State::Null);
    let _ = rx.set_state(gst::State::Null);
    assert!(tx_err.is_empty(), "{tx_line}: {tx_err:?}");
    assert!(rx_err.is_empty(), "{rx_line}: {rx_err:?}");
    (pushed.load(Ordering::Relaxed), stats)
}

#[test]
fn test_every_unicast_receiver_line_of_the_readme_runs_as_written() {
    let _serial = one_at_a_time();
    init_headless();
    let pairs: Vec<_> = readme_pairs()
        .into_iter()
        .filter(|(_, r)| {
            !r.contains("multicast-iface")
                && !r.contains("sender-address")
                && !r.contains("source-name")
        })
        .collect();
    assert_eq!(
        pairs.len(),
        4,
        "video, encrypted video, compressed video and audio: {pairs:?}"
    );
    for (sender, receiver) in &pairs {
        let (pushed, stats) = run_pair(sender, receiver, "127.0.0.1", 3);
        // At least a second's worth of the stream (30 fps at the least) got through the
        // receiver's synced sink, nothing was dropped for being late or incomplete.
        assert!(pushed >= 30, "{receiver}: {pushed} buffers; {stats}");
        let stat = |n: &str| stats.get::<u64>(n).expect("field");
        assert_eq!(stat("frames-dropped"), 0, "{receiver}: {stats}");
        assert_eq!(stat("frames-dropped-late"), 0, "{receiver}: {stats}");
    }
}

#[test]
fn test_the_readme_multicast_lines_run_as_written_on_an_eth0() {
    let _serial = one_at_a_time();
    let Some(ns) = NetNs::new("readme-mc") else {
        eprintln!("skipped: the multicast lines need a network namespace (root)");
        return;
    };
    let ip = |args: &[&str]| {
        std::process::Command::new("ip")
            .args(["-n", &ns.name])
            .args(args)
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    };
    // An eth0 of the namespace's own (one end of a veth pair), with the multicast route
    // pointing at it.
    assert!(ip(&[
        "link", "add", "eth0", "type", "veth", "peer", "name", "eth1"
    ]));
    assert!(ip(&["link", "set", "eth1", "up"]));
    assert!(ip(&["link", "set", "eth0", "up"]));
    assert!(ip(&["addr", "add", "10.203.0.1/24", "dev", "eth0"]));
    let _ = ip(&["route", "del", "224.0.0.0/4"]);
    assert!(ip(&["route", "add", "224.0.0.0/4", "dev", "eth0"]));
    let (sender, receiver) = readme_pairs()
        .into_iter()
        .find(|(_, r)| r.contains("multicast-iface"))
        .expect("the README has a multicast pair");
    let name = ns.name.clone();
    let (done, result) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        enter_netns(&name);
        init_headless();
        // The receiver keeps its own group address; only the port is made ephemeral.
        let host = sender
            .split_whitespace()
            .find_map(|w| w.strip_prefix("host="))
            .expect("host")
            .to_string();
        let _ = done.send(run_pair(&sender, &receiver, &host, 3));
    });
    let (pushed, stats) = result
        .recv_timeout(Duration::from_secs(60))
        .expect("the multicast pair ran within a minute");
    assert!(pushed >= 30, "{pushed} buffers; {stats}");
}

#[test]
fn test_the_readme_subscription_lines_run_as_written() {
    let _serial = one_at_a_time();
    init_headless();
    let pairs: Vec<_> = readme_pairs()
        .into_iter()
        .filter(|(_, r)| r.contains("sender-address"))
        .collect();
    assert_eq!(pairs.len(), 1, "a named sender and a subscriber: {pairs:?}");
    let (sender, receiver) = &pairs[0];
    // The sender listens on a free port here rather than 5004, and is not announced
    // (multicast DNS must not leave this machine's own namespace); the receiver subscribes
    // to it on this host.
    let tx = launch(&format!("{sender} port=0 announce=false"));
    tx.set_state(gst::State::Playing).expect("sender PLAYING");
    let sink = element_of(&tx, "videoipsink");
    let port = sink.property::<i32>("port");
    let rx_line = receiver
        .split_whitespace()
        .map(|w| {
            if w.starts_with("sender-address=") {
                format!("sender-address=127.0.0.1 sender-port={port}")
            } else {
                w.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(" ");
    let rx = launch(&rx_line);
    let src = element_of(&rx, "videoipsrc");
    let pushed = count_buffers(&src);
    rx.set_state(gst::State::Playing).expect("receiver PLAYING");
    std::thread::sleep(Duration::from_secs(3));
    let subscribers = sink
        .property::<gst::Structure>("stats")
        .get::<u64>("subscribers")
        .expect("subscribers");
    let stats = src.property::<gst::Structure>("stats");
    let (tx_err, rx_err) = (errors(&tx), errors(&rx));
    let _ = rx.set_state(gst::State::Null);
    let _ = tx.set_state(gst::State::Null);
    assert!(tx_err.is_empty(), "{sender}: {tx_err:?}");
    assert!(rx_err.is_empty(), "{rx_line}: {rx_err:?}");
    assert_eq!(subscribers, 1);
    // 30 fps for 3 s, less the time to subscribe: over a second's worth through the synced
    // sink, nothing dropped.
    let pushed = pushed.load(Ordering::Relaxed);
    assert!(pushed >= 30, "{pushed} buffers; {stats}");
    let stat = |n: &str| stats.get::<u64>(n).expect("field");
    assert_eq!(stat("frames-dropped"), 0, "{stats}");
    assert_eq!(stat("frames-dropped-late"), 0, "{stats}");
}

#[test]
fn test_the_readme_by_name_lines_run_in_a_private_namespace() {
    let _serial = one_at_a_time();
    let pairs: Vec<_> = readme_pairs()
        .into_iter()
        .filter(|(_, r)| r.contains("source-name"))
        .collect();
    assert_eq!(
        pairs.len(),
        1,
        "a named sender and a by-name receiver: {pairs:?}"
    );
    let Some(ns) = NetNs::new("readme-name") else {
        eprintln!("skipped: finding by name uses multicast DNS, which needs a namespace (root)");
        return;
    };
    let (sender, receiver) = pairs[0].clone();
    let (tx_line, rx_line) = (sender.clone(), receiver.clone());
    let name = ns.name.clone();
    let (done, result) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        enter_netns(&name);
        init_headless();
        // Both lines as written, in a namespace whose multicast stays on its loopback.
        let tx = launch(&tx_line);
        tx.set_state(gst::State::Playing).expect("sender PLAYING");
        let rx = launch(&rx_line);
        let src = element_of(&rx, "videoipsrc");
        let pushed = count_buffers(&src);
        rx.set_state(gst::State::Playing).expect("receiver PLAYING");
        std::thread::sleep(Duration::from_secs(4));
        let errs = (errors(&tx), errors(&rx));
        let stats = src.property::<gst::Structure>("stats");
        let _ = rx.set_state(gst::State::Null);
        let _ = tx.set_state(gst::State::Null);
        let _ = done.send((pushed.load(Ordering::Relaxed), stats, errs));
    });
    let (pushed, stats, (tx_err, rx_err)) = result
        .recv_timeout(Duration::from_secs(60))
        .expect("the by-name pair ran within a minute");
    assert!(tx_err.is_empty(), "{sender}: {tx_err:?}");
    assert!(rx_err.is_empty(), "{receiver}: {rx_err:?}");
    // Found, subscribed to, and over a second's worth of the stream through the synced sink.
    assert!(pushed >= 30, "{pushed} buffers; {stats}");
}

#[test]
fn test_the_readme_picture_and_sound_lines_run_as_written() {
    let _serial = one_at_a_time();
    init_headless();
    let readme = include_str!("../README.md");
    let line = |starts: &str, has: &str| {
        readme
            .lines()
            .filter_map(|l| l.trim().strip_prefix("gst-launch-1.0 "))
            .find(|l| l.starts_with(starts) && l.contains(has))
            .unwrap_or_else(|| panic!("README has a {has} line"))
            .to_string()
    };
    let sender = line("", "videoipsinkbin");
    let receiver = line("videoipsrcbin", "rx.audio_0");
    let rx_line = receiver.replace("port=5004", "port=0");
    let rx = launch(&rx_line);
    rx.set_state(gst::State::Ready).expect("receiver READY");
    let bin = element_of(&rx, "videoipsrcbin");
    let port = bin.property::<i32>("port");
    assert!(port > 0, "the bin took a port: {port}");
    type Counts = std::sync::Mutex<Vec<(String, Arc<AtomicU64>)>>;
    let counts: Arc<Counts> = Arc::default();
    let c2 = counts.clone();
    bin.connect_pad_added(move |_, pad| {
        let n = Arc::new(AtomicU64::new(0));
        let n2 = n.clone();
        pad.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
            n2.fetch_add(1, Ordering::Relaxed);
            gst::PadProbeReturn::Ok
        });
        c2.lock().expect("counts").push((pad.name().to_string(), n));
    });
    rx.set_state(gst::State::Playing).expect("receiver PLAYING");
    let tx_line = sender
        .replace("host=192.0.2.10", "host=127.0.0.1")
        .replace("port=5004", &format!("port={port}"));
    let tx = launch(&tx_line);
    tx.set_state(gst::State::Playing).expect("sender PLAYING");
    std::thread::sleep(Duration::from_secs(4));
    let (tx_err, rx_err) = (errors(&tx), errors(&rx));
    let _ = tx.set_state(gst::State::Null);
    let _ = rx.set_state(gst::State::Null);
    assert!(tx_err.is_empty(), "{tx_line}: {tx_err:?}");
    assert!(rx_err.is_empty(), "{rx_line}: {rx_err:?}");
    let counts = counts.lock().expect("counts");
    let got = |name: &str| {
        counts
            .iter()
            .find(|(n, _)| n == name)
            .map_or(0, |(_, c)| c.load(Ordering::Relaxed))
    };
    // A second's worth of each through synced sinks (30 fps; audiotestsrc's 1024-sample
    // buffers at 48 kHz are 47 a second), after the pads appeared.
    assert!(got("video_0") >= 30, "video: {counts:?}");
    assert!(got("audio_0") >= 47, "audio: {counts:?}");
}
