// SPDX-License-Identifier: MPL-2.0
//! Tests across network namespaces the tests make themselves: multicast routed to a private
//! loopback, and a veth link that cannot offload, so nothing leaves the machine.

// Each test binary uses only some of the shared helpers.
#[allow(dead_code)]
mod common;

use common::*;
use std::time::Duration;

#[test]
fn test_multicast_reaches_two_receivers_in_a_private_namespace() {
    init();
    let Some(ns) = NetNs::new("mc") else {
        return;
    };
    // Sockets belong to the namespace of the thread that opens them.
    let name = ns.name.clone();
    let result = std::thread::spawn(move || {
        enter_netns(&name);
        let group = "239.255.12.34";
        let rx1 = Rx::with_address(group, "multicast-iface=lo");
        let rx2 = Rx::with_address(group, &format!("multicast-iface=lo port={}", rx1.port));
        let caps = gst::Caps::builder("video/x-raw")
            .field("format", "GRAY8")
            .field("width", 64i32)
            .field("height", 64i32)
            .field("framerate", gst::Fraction::new(25, 1))
            .build();
        let mut tx = Tx::new(group, rx1.port, &caps, "multicast-iface=lo ttl-mc=1");
        let frames: Vec<Vec<u8>> = (0..5).map(|i| pattern(64 * 64, i)).collect();
        for f in &frames {
            tx.push(f, gst::ClockTime::from_mseconds(40));
        }
        let a = rx1.pull(5, Duration::from_secs(10));
        let b = rx2.pull(5, Duration::from_secs(10));
        let ok = |got: &[gst::Sample]| {
            got.len() == 5 && got.iter().zip(&frames).all(|(s, f)| sample_bytes(s) == *f)
        };
        (ok(&a), ok(&b), rx1.stats().to_string())
    })
    .join()
    .expect("the namespace thread finishes");
    assert!(result.0, "first receiver got every frame: {}", result.2);
    assert!(result.1, "second receiver got every frame");
}

/// Two namespaces joined by a veth pair with a 1000-byte MTU, and a sender left at
/// `mtu=1500`: the kernel refuses GSO sends of datagrams larger than the path MTU (EINVAL),
/// so the sender must fall back to one datagram per message (which IP then fragments), and
/// everything must still arrive.
#[test]
fn test_sender_falls_back_when_the_path_refuses_gso() {
    init();
    let (Some(a), Some(b)) = (NetNs::new("gso-a"), NetNs::new("gso-b")) else {
        return;
    };
    let ip = |args: &[&str]| {
        let ok = std::process::Command::new("ip")
            .args(args)
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(ok, "ip {args:?}");
    };
    ip(&[
        "-n", &a.name, "link", "add", "va", "mtu", "1000", "type", "veth", "peer", "name", "vb",
        "netns", &b.name,
    ]);
    ip(&["-n", &b.name, "link", "set", "vb", "mtu", "1000"]);
    ip(&["-n", &a.name, "addr", "add", "10.213.0.1/24", "dev", "va"]);
    ip(&["-n", &b.name, "addr", "add", "10.213.0.2/24", "dev", "vb"]);
    ip(&["-n", &a.name, "link", "set", "va", "up"]);
    ip(&["-n", &b.name, "link", "set", "vb", "up"]);

    // The receiver in namespace b.
    let (port_tx, port_rx) = std::sync::mpsc::channel();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let b_name = b.name.clone();
    let receiver = std::thread::spawn(move || {
        enter_netns(&b_name);
        let rx = Rx::with_address("10.213.0.2", "");
        port_tx.send(rx.port).unwrap();
        let got = rx.pull(5, Duration::from_secs(10));
        let _ = done_rx.recv_timeout(Duration::from_secs(10));
        (
            got.iter().map(sample_bytes).collect::<Vec<_>>(),
            rx.stats().to_string(),
        )
    });
    let port = port_rx.recv_timeout(Duration::from_secs(10)).unwrap();

    // The sender in namespace a: first the socket layer alone, then the element.
    let a_name = a.name.clone();
    let sent = std::thread::spawn(move || {
        enter_netns(&a_name);
        let dest = format!("10.213.0.2:{}", port + 1).parse().unwrap();
        let tx = gstvideoip::net::Sender::open(&gstvideoip::net::SenderConfig::new(dest)).unwrap();
        let waker = gstvideoip::net::Waker::new().unwrap();
        let mut batch = gstvideoip::net::SendBatch::new();
        let payload = [7u8; 1400];
        let report = batch
            .send(&tx, 10, |_| [&payload[..], &[][..]], &waker)
            .unwrap();
        assert_eq!(report.sent, 10, "{report:?}");
        assert_eq!(batch.gso(), Some(false), "GSO was refused and dropped");

        let caps = gst::Caps::builder("video/x-raw")
            .field("format", "GRAY8")
            .field("width", 320i32)
            .field("height", 240i32)
            .field("framerate", gst::Fraction::new(25, 1))
            .build();
        let mut tx = Tx::new("10.213.0.2", port, &caps, "");
        let frames: Vec<Vec<u8>> = (0..5).map(|i| pattern(320 * 240, i + 40)).collect();
        for f in &frames {
            tx.push(f, gst::ClockTime::from_mseconds(40));
        }
        tx.finish();
        (frames, tx.stats().get::<u64>("send-errors").unwrap_or(99))
    })
    .join()
    .expect("the sender thread finishes");
    let _ = done_tx.send(());
    let (got, stats) = receiver.join().expect("the receiver thread finishes");
    let (frames, send_errors) = sent;
    assert_eq!(got.len(), 5, "{stats}");
    assert!(
        got == frames,
        "frames arrive byte-exact over the fallback path"
    );
    // The one refused GSO send is retried, not counted as lost.
    assert_eq!(send_errors, 0);
}
