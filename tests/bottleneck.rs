// SPDX-License-Identifier: MPL-2.0
//! A bottleneck the test builds itself: sender namespace — router namespace — receiver
//! namespace, joined by veth pairs, with an htb shaper and a 1 MB queue on the router's
//! egress toward the receiver, as a switch port of a slower link would be.
//!
//! `VIDEOIP_BOTTLENECK_MBIT` (default 2500) and `VIDEOIP_BOTTLENECK_PACING` (`frame`,
//! `none`) run other figures by hand:
//! `VIDEOIP_BOTTLENECK_MBIT=5000 cargo test --test bottleneck -- --nocapture`.

// Each test binary uses only some of the shared helpers.
#[allow(dead_code)]
mod common;

use common::*;
use std::process::Command;
use std::time::{Duration, Instant};

fn run(args: &[&str]) -> bool {
    Command::new(args[0])
        .args(&args[1..])
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// sender `s` (10.214.1.1, dev `vs`) — router `r` (10.214.1.2 on `vr1`, 10.214.2.1 on `vr2`)
/// — receiver `c` (10.214.2.2, dev `vc`), with `vr2` shaped to `mbit` Mbit/s behind a
/// 1,000,000-byte FIFO. False when this kernel lacks what it needs.
fn bottleneck(s: &NetNs, r: &NetNs, c: &NetNs, mbit: u32) -> bool {
    let ip = |ns: &NetNs, args: &str| {
        let mut v = vec!["ip", "-n", &ns.name];
        v.extend(args.split_whitespace());
        run(&v)
    };
    let ok = ip(
        s,
        &format!("link add vs type veth peer name vr1 netns {}", r.name),
    ) && ip(
        r,
        &format!("link add vr2 type veth peer name vc netns {}", c.name),
    ) && ip(s, "addr add 10.214.1.1/24 dev vs")
        && ip(r, "addr add 10.214.1.2/24 dev vr1")
        && ip(r, "addr add 10.214.2.1/24 dev vr2")
        && ip(c, "addr add 10.214.2.2/24 dev vc")
        && ip(s, "link set vs up")
        && ip(r, "link set vr1 up")
        && ip(r, "link set vr2 up")
        && ip(c, "link set vc up")
        && ip(s, "route add default via 10.214.1.2")
        && ip(c, "route add default via 10.214.2.1")
        && run(&[
            "ip",
            "netns",
            "exec",
            &r.name,
            "sysctl",
            "-qw",
            "net.ipv4.ip_forward=1",
        ]);
    assert!(ok, "the namespaces and their links are made");
    let rate = format!("{mbit}mbit");
    let tc = |args: &str| {
        let mut v = vec!["ip", "netns", "exec", &r.name, "tc"];
        v.extend(args.split_whitespace());
        run(&v)
    };
    tc("qdisc add dev vr2 root handle 1: htb default 1")
        && tc(&format!(
            "class add dev vr2 parent 1: classid 1:1 htb rate {rate} ceil {rate}"
        ))
        && tc("qdisc add dev vr2 parent 1:1 handle 10: bfifo limit 1000000")
}

/// 1080p60 UYVY, 2 Gbit/s, pushed in real time through a 2.5 Gbit/s bottleneck with a 1 MB
/// queue: with each frame spread over 0.8 of its interval, the peak (2.5 Gbit/s) fits
/// the link and every frame arrives byte-exact. (Spread over half the interval, it peaked at
/// 4 Gbit/s and overflowed the queue.)
#[test]
fn test_videoipsink_pacing_fits_a_bottleneck_link_and_every_frame_arrives() {
    init();
    if !is_root() || !run(&["tc", "-V"]) {
        eprintln!("skipped: needs root and tc");
        return;
    }
    let (Some(s), Some(r), Some(c)) = (NetNs::new("bn-s"), NetNs::new("bn-r"), NetNs::new("bn-c"))
    else {
        eprintln!("skipped: no network namespaces");
        return;
    };
    let mbit: u32 = std::env::var("VIDEOIP_BOTTLENECK_MBIT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2500);
    let pacing = std::env::var("VIDEOIP_BOTTLENECK_PACING").unwrap_or_else(|_| "frame".into());
    if !bottleneck(&s, &r, &c, mbit) {
        eprintln!("skipped: this kernel has no htb or bfifo");
        return;
    }
    const FRAMES: u64 = 180;
    const RING: u64 = 4;
    let (w, h) = (1920usize, 1080usize);
    let caps = gst::Caps::builder("video/x-raw")
        .field("format", "UYVY")
        .field("width", w as i32)
        .field("height", h as i32)
        .field("framerate", gst::Fraction::new(60, 1))
        .build();
    let ring: Vec<Vec<u8>> = (0..RING).map(|i| pattern(w * h * 2, i)).collect();

    let (port_tx, port_rx) = std::sync::mpsc::channel();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let c_name = c.name.clone();
    let expected = ring.clone();
    let receiver = std::thread::spawn(move || {
        enter_netns(&c_name);
        // The stream's peak is the link's rate, so the 1 MB queue overflows now and then
        // when the sender catches up after a late wake-up; the receiver gets the time to
        // ask again for what the queue dropped (resends cross the same full queue).
        let rx = Rx::with_address("10.214.2.2", "buffer-size=33554432 latency=120");
        port_tx.send(rx.port).expect("the test waits for the port");
        // Each frame is checked as it comes and let go: 180 frames of 4 MB are not kept.
        let deadline = Instant::now() + Duration::from_secs(20);
        let (mut exact, mut wrong) = (0u64, 0u64);
        while exact + wrong < FRAMES && Instant::now() < deadline {
            let Some(sample) = rx.sink.try_pull_sample(gst::ClockTime::from_mseconds(200)) else {
                if rx.sink.is_eos() {
                    break;
                }
                continue;
            };
            let bytes = sample_bytes(&sample);
            if expected.contains(&bytes) {
                exact += 1;
            } else {
                wrong += 1;
            }
        }
        let _ = done_rx.recv_timeout(Duration::from_secs(10));
        (exact, wrong, rx.stats().to_string())
    });
    let port = port_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the receiver starts");

    let s_name = s.name.clone();
    let tx_stats = std::thread::spawn(move || {
        enter_netns(&s_name);
        let mut tx = Tx::new(
            "10.214.2.2",
            port,
            &caps,
            &format!("pacing={pacing} buffer-size=33554432"),
        );
        // Pushed in real time, as a camera would.
        let interval = Duration::from_nanos(16_666_667);
        let t0 = Instant::now();
        for k in 0..FRAMES {
            let at = t0 + interval * k as u32;
            std::thread::sleep(at.saturating_duration_since(Instant::now()));
            tx.push(
                &ring[(k % RING) as usize],
                gst::ClockTime::from_nseconds(16_666_667),
            );
        }
        tx.finish();
        tx.stats().to_string()
    })
    .join()
    .expect("the sender thread finishes");
    let _ = done_tx.send(());
    let (exact, wrong, rx_stats) = receiver.join().expect("the receiver thread finishes");
    // Where datagrams were lost: the router's queue, or the receiver's socket.
    let _ = Command::new("ip")
        .args([
            "netns", "exec", &r.name, "tc", "-s", "qdisc", "show", "dev", "vr2",
        ])
        .status();
    println!(
        "bottleneck {mbit} Mbit/s: {exact} of {FRAMES} frames exact, {wrong} wrong\n  sender: {tx_stats}\n  receiver: {rx_stats}"
    );
    assert_eq!(wrong, 0, "no frame is ever wrong");
    assert_eq!(exact, FRAMES, "every frame arrives: {rx_stats}");
}
