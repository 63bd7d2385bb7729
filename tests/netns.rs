// SPDX-License-Identifier: MPL-2.0
//! Tests across network namespaces the tests make themselves: multicast routed to a private
//! loopback, and a veth link that cannot offload, so nothing leaves the machine.

// Each test binary uses only some of the shared helpers.
#[allow(dead_code)]
mod common;

use common::*;
use gst::prelude::*;
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
        // Both receivers answer the multicast sender by unicast, and it lists both (they
        // share an address and port here, and are told apart by their ids).
        let deadline = std::time::Instant::now() + Duration::from_secs(3);
        let mut listed = 0;
        while listed < 2 && std::time::Instant::now() < deadline {
            tx.push(&frames[0], gst::ClockTime::from_mseconds(40));
            std::thread::sleep(Duration::from_millis(40));
            listed = tx.stats().get::<u64>("receivers").unwrap_or(0);
        }
        (
            ok(&a),
            ok(&b),
            rx1.stats().to_string(),
            listed,
            tx.stats().to_string(),
        )
    })
    .join()
    .expect("the namespace thread finishes");
    assert!(result.0, "first receiver got every frame: {}", result.2);
    assert!(result.1, "second receiver got every frame");
    assert_eq!(result.3, 2, "the sender lists both receivers: {}", result.4);
}

/// Joins namespaces `a` (10.213.0.1, device `va`) and `b` (10.213.0.2, `vb`) with a veth
/// pair whose MTU is `mtu`.
fn veth_pair(a: &NetNs, b: &NetNs, mtu: u32) {
    let ip = |args: &[&str]| {
        let ok = std::process::Command::new("ip")
            .args(args)
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(ok, "ip {args:?}");
    };
    let mtu = mtu.to_string();
    ip(&[
        "-n", &a.name, "link", "add", "va", "mtu", &mtu, "type", "veth", "peer", "name", "vb",
        "netns", &b.name,
    ]);
    ip(&["-n", &b.name, "link", "set", "vb", "mtu", &mtu]);
    ip(&["-n", &a.name, "addr", "add", "10.213.0.1/24", "dev", "va"]);
    ip(&["-n", &b.name, "addr", "add", "10.213.0.2/24", "dev", "vb"]);
    ip(&["-n", &a.name, "link", "set", "va", "up"]);
    ip(&["-n", &b.name, "link", "set", "vb", "up"]);
}

/// Two namespaces joined by a veth pair with a 1000-byte MTU. The socket layer: GSO sends of
/// datagrams larger than the path MTU are refused (EINVAL), so the batch falls back to one
/// datagram per message; those are refused too (EMSGSIZE: the socket does not fragment), and
/// the report gives the path MTU. The element at `mtu=1000` fits the path: every frame
/// arrives.
#[test]
fn test_sender_falls_back_when_the_path_refuses_gso() {
    init();
    let (Some(a), Some(b)) = (NetNs::new("gso-a"), NetNs::new("gso-b")) else {
        return;
    };
    veth_pair(&a, &b, 1000);

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
        use gstvideoip::net::{SendBatch, SenderConfig, UdpSocket, Waker};
        let dest = format!("10.213.0.2:{}", port + 1).parse().unwrap();
        let tx = UdpSocket::open_sender(&SenderConfig::new(dest)).unwrap();
        let waker = Waker::new().unwrap();
        let mut batch = SendBatch::new();
        let payload = [7u8; 1400];
        let report = batch
            .send(&tx, dest, 10, |_| [&payload[..]], &waker)
            .unwrap();
        assert_eq!(batch.gso(), Some(false), "GSO was refused and dropped");
        assert_eq!((report.sent, report.errors), (0, 10), "{report:?}");
        assert_eq!(report.path_mtu, Some(1000), "{report:?}");
        // Datagrams that fit the path still go, with or without GSO.
        let report = batch
            .send(&tx, dest, 10, |_| [&payload[..900]], &waker)
            .unwrap();
        assert_eq!(report.sent, 10, "{report:?}");

        let mut tx = Tx::new("10.213.0.2", port, &gray_caps(320, 240), "mtu=1000");
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
        "frames arrive byte-exact over the narrow path"
    );
    assert_eq!(send_errors, 0);
}

/// A sender left at `mtu=1500` over a path that carries 1000 bytes: its datagrams are not
/// fragmented (don't-fragment is set) but refused, and the bus gets an error that names the
/// destination, the path MTU and the `mtu` property.
#[test]
fn test_mtu_above_the_path_mtu_is_an_error_naming_it() {
    init();
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let (Some(a), Some(b)) = (NetNs::new("pmtu-a"), NetNs::new("pmtu-b")) else {
        return;
    };
    veth_pair(&a, &b, 1000);
    let a_name = a.name.clone();
    let error = std::thread::spawn(move || {
        enter_netns(&a_name);
        let mut tx = Tx::new("10.213.0.2", 5004, &gray_caps(320, 240), "");
        for i in 0..3 {
            tx.push(&pattern(320 * 240, i), gst::ClockTime::from_mseconds(40));
        }
        let bus = tx.pipeline.bus().expect("bus");
        let msg =
            bus.timed_pop_filtered(gst::ClockTime::from_seconds(10), &[gst::MessageType::Error]);
        msg.map(|m| match m.view() {
            gst::MessageView::Error(e) => format!("{} ({:?})", e.error(), e.debug()),
            _ => unreachable!(),
        })
    })
    .join()
    .expect("the sender thread finishes")
    .expect("an error on the bus");
    assert!(error.contains("10.213.0.2:5004"), "{error}");
    assert!(error.contains("at most 1000 bytes"), "{error}");
    assert!(error.contains("mtu=1000"), "{error}");
    assert!(error.contains("mtu=1500"), "{error}");
}

/// A destination the network cannot reach (a namespace with no route to it): every datagram
/// is refused. The stream goes on, and the bus gets a warning that names the destination,
/// at most one per 2 s.
#[test]
fn test_unreachable_destination_is_a_rate_limited_warning() {
    init();
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let Some(ns) = NetNs::new("unreach") else {
        return;
    };
    let name = ns.name.clone();
    let warnings = std::thread::spawn(move || {
        enter_netns(&name);
        let mut tx = Tx::new("10.99.0.1", 5004, &gray_caps(64, 64), "");
        for i in 0..20 {
            tx.push(&pattern(64 * 64, i), gst::ClockTime::from_mseconds(40));
        }
        let _ = tx.appsrc.end_of_stream();
        let bus = tx.pipeline.bus().expect("bus");
        let mut warnings = Vec::new();
        let kinds = [
            gst::MessageType::Warning,
            gst::MessageType::Error,
            gst::MessageType::Eos,
        ];
        while let Some(m) = bus.timed_pop_filtered(gst::ClockTime::from_seconds(10), &kinds) {
            match m.view() {
                gst::MessageView::Warning(w) => {
                    warnings.push(format!("{} ({:?})", w.error(), w.debug()))
                }
                gst::MessageView::Eos(_) => break,
                _ => warnings.push(format!("unexpected: {m:?}")),
            }
        }
        (warnings, tx.stats().get::<u64>("send-errors").unwrap_or(0))
    })
    .join()
    .expect("the sender thread finishes");
    let (warnings, send_errors) = warnings;
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("10.99.0.1:5004"), "{warnings:?}");
    assert!(send_errors >= 20, "{send_errors}");
}

/// Receivers answer a multicast sender by unicast, to the source address of what they got;
/// the sender's socket (bound, not connected) receives the answer.
#[test]
fn test_receiver_answers_a_multicast_sender_by_unicast() {
    init();
    let Some(ns) = NetNs::new("mcreply") else {
        return;
    };
    let name = ns.name.clone();
    std::thread::spawn(move || {
        enter_netns(&name);
        use gstvideoip::net::{
            interface_index, ReceiverConfig, RecvBatch, SendBatch, SenderConfig, UdpSocket, Wait,
            Waker,
        };
        let lo = interface_index("lo").unwrap();
        let group = "239.255.12.35".parse().unwrap();
        let rx = UdpSocket::open_receiver(&ReceiverConfig {
            address: group,
            port: 0,
            multicast_iface: lo,
            buffer_size: 0,
            reuse: true,
        })
        .unwrap();
        let dest = std::net::SocketAddr::new(group, rx.local_addr().port());
        let tx = UdpSocket::open_sender(&SenderConfig {
            multicast_iface: lo,
            ..SenderConfig::new(dest)
        })
        .unwrap();
        let waker = Waker::new().unwrap();
        let mut batch = SendBatch::new();
        let recv_one = |sock: &UdpSocket| {
            let mut rb = RecvBatch::new(4, 2048);
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            loop {
                if rb.recv(sock).unwrap() > 0 {
                    return (rb.get(0).unwrap().to_vec(), rb.meta(0).unwrap().source);
                }
                let w = waker.wait(Some(sock.fd()), libc::POLLIN, Some(deadline));
                assert_eq!(w.unwrap(), Wait::Ready, "a datagram arrives");
            }
        };
        let r = batch
            .send(&tx, dest, 1, |_| [&b"hello"[..]], &waker)
            .unwrap();
        assert_eq!(r.sent, 1, "{r:?}");
        let (got, source) = recv_one(&rx);
        assert_eq!(got, b"hello");
        assert!(!source.ip().is_multicast());
        let r = batch
            .send(&rx, source, 1, |_| [&b"ack"[..]], &waker)
            .unwrap();
        assert_eq!(r.sent, 1, "{r:?}");
        let (got, from) = recv_one(&tx);
        assert_eq!(got, b"ack");
        assert_eq!(from.port(), rx.local_addr().port());
        assert!(!from.ip().is_multicast(), "answered by unicast: {from}");
    })
    .join()
    .expect("the namespace thread finishes");
}
