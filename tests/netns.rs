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

/// Two namespaces `<tag>-a` and `<tag>-b` joined as [`veth_pair`] does; None (and
/// "skipped") where namespaces cannot be made (not root, no `ip`).
fn linked_pair(tag: &str, mtu: u32) -> Option<(NetNs, NetNs)> {
    init();
    let (Some(a), Some(b)) = (
        NetNs::new(&format!("{tag}-a")),
        NetNs::new(&format!("{tag}-b")),
    ) else {
        eprintln!("skipped: {tag} needs network namespaces of its own (root and ip)");
        return None;
    };
    veth_pair(&a, &b, mtu);
    Some((a, b))
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

/// A sender left at `mtu=1500` with `host` behind an interface that carries 1000 bytes: its
/// datagrams would never be fragmented but refused, whoever it sent to there, so it is a
/// configuration mistake: the sink fails to start with an error that names the
/// destination, the interface's MTU and the `mtu` property.
#[test]
fn test_mtu_above_the_interface_mtu_is_an_error_at_start_naming_it() {
    let Some((a, _b)) = linked_pair("pmtu", 1000) else {
        return;
    };
    let a_name = a.name.clone();
    let (started, error) = std::thread::spawn(move || {
        enter_netns(&a_name);
        let pipeline = gst::parse::launch(
            "appsrc is-live=false ! videoipsink host=10.213.0.2 port=5004 sync=false",
        )
        .expect("sender pipeline parses");
        let started = pipeline.set_state(gst::State::Playing).is_ok();
        let bus = pipeline.bus().expect("bus");
        let msg =
            bus.timed_pop_filtered(gst::ClockTime::from_seconds(10), &[gst::MessageType::Error]);
        let _ = pipeline.set_state(gst::State::Null);
        (
            started,
            msg.map(|m| match m.view() {
                gst::MessageView::Error(e) => format!("{} ({:?})", e.error(), e.debug()),
                _ => unreachable!(),
            }),
        )
    })
    .join()
    .expect("the sender thread finishes");
    assert!(!started, "the sink does not start");
    let error = error.expect("an error on the bus");
    assert!(error.contains("10.213.0.2:5004"), "{error}");
    assert!(error.contains("at most 1000 bytes"), "{error}");
    assert!(error.contains("mtu=1000"), "{error}");
    assert!(error.contains("mtu=1500"), "{error}");
}

/// The warnings and errors `pipeline` posted so far (taken off its bus).
fn posted(pipeline: &gst::Pipeline) -> (Vec<String>, Vec<String>) {
    let bus = pipeline.bus().expect("bus");
    let (mut warnings, mut errors) = (Vec::new(), Vec::new());
    while let Some(m) = bus.pop_filtered(&[gst::MessageType::Error, gst::MessageType::Warning]) {
        match m.view() {
            gst::MessageView::Warning(w) => {
                warnings.push(format!("{} ({:?})", w.error(), w.debug()))
            }
            gst::MessageView::Error(e) => errors.push(format!("{} ({:?})", e.error(), e.debug())),
            _ => {}
        }
    }
    (warnings, errors)
}

/// Sends, from namespace `ns`, an ICMP "fragmentation needed" (type 3 code 4) with
/// next-hop MTU `mtu` to `quoted_src`'s host, quoting a UDP datagram from `quoted_src` to
/// `quoted_dst`: 56 bytes on the wire, as an attacker who knows the ports sends it.
fn forge_frag_needed(
    ns: &str,
    quoted_src: std::net::SocketAddrV4,
    quoted_dst: std::net::SocketAddrV4,
    mtu: u16,
) {
    let ns = ns.to_string();
    std::thread::spawn(move || {
        enter_netns(&ns);
        let mut ip = vec![0x45, 0, 0x05, 0xdc, 0x12, 0x34, 0x40, 0, 64, 17, 0, 0];
        ip.extend_from_slice(&quoted_src.ip().octets());
        ip.extend_from_slice(&quoted_dst.ip().octets());
        let c = internet_checksum(&[&ip]);
        ip[10..12].copy_from_slice(&c.to_be_bytes());
        let mut icmp = vec![3, 4, 0, 0, 0, 0];
        icmp.extend_from_slice(&mtu.to_be_bytes());
        icmp.extend_from_slice(&ip);
        icmp.extend_from_slice(&quoted_src.port().to_be_bytes());
        icmp.extend_from_slice(&quoted_dst.port().to_be_bytes());
        icmp.extend_from_slice(&[0x05, 0xc8, 0, 0]);
        let c = internet_checksum(&[&icmp]);
        icmp[2..4].copy_from_slice(&c.to_be_bytes());
        assert_eq!(20 + icmp.len(), 56);
        // SAFETY: plain socket calls on a raw ICMP socket this thread owns; the address and
        // buffer are live locals.
        unsafe {
            let fd = libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_ICMP);
            assert!(fd >= 0, "a raw socket: {}", std::io::Error::last_os_error());
            let to = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: 0,
                sin_addr: libc::in_addr {
                    s_addr: u32::from(*quoted_src.ip()).to_be(),
                },
                sin_zero: [0; 8],
            };
            let n = libc::sendto(
                fd,
                icmp.as_ptr().cast(),
                icmp.len(),
                0,
                (&to as *const libc::sockaddr_in).cast(),
                std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
            );
            assert_eq!(
                n,
                icmp.len() as isize,
                "{}",
                std::io::Error::last_os_error()
            );
            libc::close(fd);
        }
    })
    .join()
    .expect("the attacker's thread finishes");
}

/// The path MTU to `dest` the kernel holds for every socket of this namespace (IP_MTU of a
/// fresh connected socket): lowered by an ICMP "fragmentation needed" it believed.
fn kernel_path_mtu(dest: std::net::SocketAddrV4) -> i32 {
    let s = std::net::UdpSocket::bind("0.0.0.0:0").expect("a socket");
    s.connect(dest).expect("connects");
    use std::os::fd::AsRawFd;
    let mut mtu: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `mtu` and `len` are live locals of the sizes given.
    let rc = unsafe {
        libc::getsockopt(
            s.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_MTU,
            (&mut mtu as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    assert_eq!(rc, 0);
    mtu
}

/// A forged ICMP "fragmentation needed" (next-hop MTU 576), sent from the receiver's network
/// to the sender, quoting one of its datagrams (the sender's port is in DNS-SD): the
/// sender's socket ignores it, so nothing stops, nothing it sends gets smaller, and the
/// kernel does not even record the lower MTU. The same ICMP quoting a socket with plain
/// don't-fragment (what the sink had before) does lower the kernel's path MTU to 576 for
/// every socket to the receiver: the sender keeps going at 1500 bytes all the same.
#[test]
fn test_a_forged_icmp_fragmentation_needed_stops_nothing_and_lowers_nothing() {
    let Some((a, b)) = linked_pair("icmp", 1500) else {
        return;
    };
    const FRAMES: usize = 40;
    let (port_tx, port_rx) = std::sync::mpsc::channel();
    let b_name = b.name.clone();
    let receiver = std::thread::spawn(move || {
        enter_netns(&b_name);
        let rx = Rx::with_address("10.213.0.2", "");
        port_tx.send(rx.port).expect("the test waits for the port");
        let got = rx.pull(FRAMES, Duration::from_secs(20));
        (
            got.iter().map(sample_bytes).collect::<Vec<_>>(),
            rx.stats().to_string(),
        )
    });
    let port = port_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the receiver starts");
    let (a_name, b_name) = (a.name.clone(), b.name.clone());
    let sent = std::thread::spawn(move || {
        enter_netns(&a_name);
        let sender = "10.213.0.1:5100".parse().expect("an address");
        let receiver = std::net::SocketAddrV4::new([10, 213, 0, 2].into(), port);
        let mut tx = Tx::new("10.213.0.2", port, &gray_caps(320, 240), "bind-port=5100");
        let frames: Vec<Vec<u8>> = (0..FRAMES as u64).map(|i| pattern(320 * 240, i)).collect();
        for f in &frames[..10] {
            tx.push(f, gst::ClockTime::from_mseconds(40));
        }
        std::thread::sleep(Duration::from_millis(300));
        forge_frag_needed(&b_name, sender, receiver, 576);
        std::thread::sleep(Duration::from_millis(100));
        let after_forgery = kernel_path_mtu(receiver);
        // The control: a socket with plain don't-fragment, quoted the same way.
        let control = std::net::UdpSocket::bind("10.213.0.1:5200").expect("binds");
        use std::os::fd::AsRawFd;
        let dont_fragment = libc::IP_PMTUDISC_DO;
        // SAFETY: setsockopt with a live int.
        let rc = unsafe {
            libc::setsockopt(
                control.as_raw_fd(),
                libc::IPPROTO_IP,
                libc::IP_MTU_DISCOVER,
                (&dont_fragment as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        assert_eq!(rc, 0);
        forge_frag_needed(
            &b_name,
            "10.213.0.1:5200".parse().expect("an address"),
            receiver,
            576,
        );
        std::thread::sleep(Duration::from_millis(100));
        let after_control = kernel_path_mtu(receiver);
        for f in &frames[10..] {
            tx.push(f, gst::ClockTime::from_mseconds(40));
        }
        tx.finish();
        let (warnings, errors) = posted(&tx.pipeline);
        let said = [warnings, errors].concat();
        (
            frames,
            after_forgery,
            after_control,
            said,
            tx.stats().get::<u64>("send-errors").unwrap_or(99),
        )
    })
    .join()
    .expect("the sender thread finishes");
    let (got, stats) = receiver.join().expect("the receiver thread finishes");
    let (frames, after_forgery, after_control, said, send_errors) = sent;
    assert_eq!(after_forgery, 1500, "the forged ICMP lowered nothing");
    assert_eq!(
        after_control, 576,
        "the forgery is one the kernel believes from a don't-fragment socket"
    );
    assert!(said.is_empty(), "no error, no warning: {said:?}");
    assert_eq!(send_errors, 0);
    eprintln!("frames received: {} of {FRAMES}", got.len());
    assert_eq!(got.len(), FRAMES, "{stats}");
    assert!(got == frames, "every frame arrives byte-exact");
}

/// Two subscribers of a named sender, one on its own host (loopback) and one behind a
/// veth whose MTU is 1000: the sender's datagrams (1500 bytes) cannot reach the narrow
/// one. The other gets every frame; the bus gets a warning naming the narrow subscriber,
/// its MTU and the `mtu` to set; no error.
#[test]
fn test_a_subscriber_behind_a_narrow_link_is_a_warning_and_the_other_gets_every_frame() {
    let Some((a, b)) = linked_pair("narrow", 1000) else {
        return;
    };
    const FRAMES: usize = 30;
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let b_name = b.name.clone();
    // The narrow subscriber, in namespace b.
    let narrow = std::thread::spawn(move || {
        enter_netns(&b_name);
        let rx = Rx::launch(
            "videoipsrc name=src sender-address=10.213.0.1 sender-port=5300 \
             ! appsink name=sink sync=false",
        );
        let _ = done_rx.recv_timeout(Duration::from_secs(30));
        rx.stats().to_string()
    });
    let a_name = a.name.clone();
    let result = std::thread::spawn(move || {
        enter_netns(&a_name);
        let mut tx = Tx::with_sink_props(
            &gray_caps(320, 240),
            "source-name=CAM port=5300 announce=false",
        );
        let good = Rx::launch(
            "videoipsrc name=src sender-address=127.0.0.1 sender-port=5300 \
             ! appsink name=sink sync=false",
        );
        let start = std::time::Instant::now();
        while tx.stats().get::<u64>("subscribers").unwrap_or(0) < 2
            && start.elapsed() < Duration::from_secs(5)
        {
            std::thread::sleep(Duration::from_millis(20));
        }
        let subscribed = tx.stats().get::<u64>("subscribers").unwrap_or(0);
        let frames: Vec<Vec<u8>> = (0..FRAMES as u64)
            .map(|i| pattern(320 * 240, i + 7))
            .collect();
        for f in &frames {
            tx.push(f, gst::ClockTime::from_mseconds(40));
        }
        let got: Vec<Vec<u8>> = good
            .pull(FRAMES, Duration::from_secs(10))
            .iter()
            .map(sample_bytes)
            .collect();
        let (warnings, errors) = posted(&tx.pipeline);
        (
            subscribed,
            frames,
            got,
            warnings,
            errors,
            tx.stats().to_string(),
        )
    })
    .join()
    .expect("the sender thread finishes");
    let _ = done_tx.send(());
    let narrow_stats = narrow
        .join()
        .expect("the narrow subscriber's thread finishes");
    let (subscribed, frames, got, warnings, errors, stats) = result;
    assert_eq!(subscribed, 2, "both subscribed: {stats}");
    eprintln!(
        "frames the healthy subscriber received: {} of {FRAMES}",
        got.len()
    );
    assert_eq!(got.len(), FRAMES, "{stats}");
    assert!(got == frames, "every frame arrives byte-exact");
    assert!(errors.is_empty(), "no error: {errors:?}");
    let named: Vec<_> = warnings
        .iter()
        .filter(|w| w.contains("10.213.0.2:"))
        .collect();
    assert!(
        !named.is_empty(),
        "a warning names the narrow subscriber: {warnings:?}"
    );
    assert!(named[0].contains("at most 1000 bytes"), "{named:?}");
    assert!(named[0].contains("mtu=1000"), "{named:?} {narrow_stats}");
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
