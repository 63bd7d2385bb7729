// SPDX-License-Identifier: MPL-2.0
//! Unit tests of the socket layer's API, run against whichever backend is built (Linux
//! `sendmmsg`/`recvmmsg`, or the portable fallback with `--features portable-net`).

use super::*;
use std::time::Duration;

pub(super) fn receiver_on(address: &str, port: u16, reuse: bool) -> UdpSocket {
    UdpSocket::open_receiver(&ReceiverConfig {
        address: address.parse().unwrap(),
        port,
        multicast_iface: 0,
        buffer_size: 4 << 20,
        reuse,
    })
    .unwrap()
}

/// A receiver on loopback and a sender to it: (sender, receiver, the receiver's address).
pub(super) fn loopback_pair() -> (UdpSocket, UdpSocket, SocketAddr) {
    let rx = receiver_on("127.0.0.1", 0, false);
    let dest = rx.local_addr();
    let tx = UdpSocket::open_sender(&SenderConfig::new(dest)).unwrap();
    (tx, rx, dest)
}

/// Receives until `want` datagrams (with their metadata) arrived, or 5 s passed.
pub(super) fn recv_all(
    rx: &UdpSocket,
    batch: &mut RecvBatch,
    want: usize,
    waker: &Waker,
) -> Vec<(Vec<u8>, RecvMeta)> {
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while got.len() < want && Instant::now() < deadline {
        let n = batch.recv(rx).unwrap();
        if n == 0 {
            waker
                .wait(Some(rx.fd()), libc::POLLIN, Some(deadline))
                .unwrap();
            continue;
        }
        for i in 0..n {
            got.push((batch.get(i).unwrap().to_vec(), *batch.meta(i).unwrap()));
        }
    }
    got
}

fn bytes_of(got: &[(Vec<u8>, RecvMeta)]) -> Vec<Vec<u8>> {
    got.iter().map(|(d, _)| d.clone()).collect()
}

#[test]
fn batch_arrives_in_order_on_loopback_with_its_source() {
    let (tx, rx, dest) = loopback_pair();
    let waker = Waker::new().unwrap();
    let headers: Vec<[u8; 4]> = (0..100u32).map(|i| i.to_be_bytes()).collect();
    let payload = vec![7u8; 1000];
    let mut batch = SendBatch::new();
    let report = batch
        .send(
            &tx,
            dest,
            100,
            |i| [&headers[i][..], &payload[..100 + i]],
            &waker,
        )
        .unwrap();
    assert_eq!(report.sent, 100);
    assert_eq!(report.errors, 0);
    let mut rb = RecvBatch::new(32, 2048);
    let got = recv_all(&rx, &mut rb, 100, &waker);
    assert_eq!(got.len(), 100);
    for (i, (d, meta)) in got.iter().enumerate() {
        assert_eq!(&d[..4], &(i as u32).to_be_bytes());
        assert_eq!(d.len(), 4 + 100 + i);
        assert_eq!(meta.len, d.len());
        assert_eq!(meta.stride, d.len());
        assert_eq!(meta.source.ip(), dest.ip());
        assert_eq!(meta.source.port(), tx.local_addr().port());
    }
}

#[test]
fn datagrams_of_three_parts_with_empty_ones_arrive_whole() {
    let (tx, rx, dest) = loopback_pair();
    let waker = Waker::new().unwrap();
    let tag = *b"TAG!";
    let report = SendBatch::new()
        .send(
            &tx,
            dest,
            3,
            |i| match i {
                0 => [&b"head"[..], &b"body"[..], &tag[..]],
                1 => [&b"head"[..], &[][..], &tag[..]],
                _ => [&[][..], &[][..], &[][..]],
            },
            &waker,
        )
        .unwrap();
    assert_eq!(report.sent, 3, "{report:?}");
    let got = bytes_of(&recv_all(&rx, &mut RecvBatch::new(8, 2048), 3, &waker));
    assert_eq!(
        got,
        vec![b"headbodyTAG!".to_vec(), b"headTAG!".to_vec(), Vec::new()]
    );
}

/// `n` datagrams of 1472 bytes (the last one 104), numbered.
pub(super) fn numbered(n: usize) -> (Vec<[u8; 4]>, Vec<u8>) {
    let headers = (0..n as u32).map(|i| i.to_be_bytes()).collect();
    (headers, (0..1468u32).map(|i| i as u8).collect())
}

pub(super) fn check_numbered(got: &[Vec<u8>], n: usize, payload: &[u8]) {
    assert_eq!(got.len(), n);
    for (i, d) in got.iter().enumerate() {
        assert_eq!(&d[..4], &(i as u32).to_be_bytes());
        let want = if i == n - 1 { &payload[..100] } else { payload };
        assert_eq!(&d[4..], want, "datagram {i}");
    }
}

pub(super) fn send_numbered(
    tx: &UdpSocket,
    dest: SocketAddr,
    batch: &mut SendBatch,
    n: usize,
) -> (SendReport, Vec<u8>) {
    let waker = Waker::new().unwrap();
    let (headers, payload) = numbered(n);
    let report = batch
        .send(
            tx,
            dest,
            n,
            |i| {
                let p = if i == n - 1 {
                    &payload[..100]
                } else {
                    &payload[..]
                };
                [&headers[i][..], p]
            },
            &waker,
        )
        .unwrap();
    (report, payload)
}

#[test]
fn sending_without_gso_still_arrives() {
    let (tx, rx, dest) = loopback_pair();
    let mut batch = SendBatch::without_gso();
    let (report, payload) = send_numbered(&tx, dest, &mut batch, 300);
    assert_eq!(batch.gso(), Some(false));
    assert_eq!(report.sent, 300);
    assert_eq!(report.bytes, 299 * 1472 + 104);
    let waker = Waker::new().unwrap();
    let mut rb = RecvBatch::new(64, 2048);
    let got = bytes_of(&recv_all(&rx, &mut rb, 300, &waker));
    check_numbered(&got, 300, &payload);
}

#[test]
fn sender_options_reach_the_socket() {
    let (_tx, rx, _) = loopback_pair();
    let mut cfg = SenderConfig::new(rx.local_addr());
    cfg.dscp = Some(46);
    cfg.ttl = Some(7);
    cfg.buffer_size = 1 << 20;
    let tx = UdpSocket::open_sender(&cfg).unwrap();
    assert_eq!(tx.sock.tos_v4().unwrap(), 46 << 2);
    assert_eq!(tx.sock.ttl_v4().unwrap(), 7);
    assert_eq!(
        sockopt::pmtu_mode(tx.fd(), false).unwrap(),
        libc::IP_PMTUDISC_INTERFACE
    );
    assert!(!tx.buffer_size().capped(), "{:?}", tx.buffer_size());
    let mut cfg6 = SenderConfig::new("[::1]:9".parse().unwrap());
    cfg6.dscp = Some(10);
    let tx6 = UdpSocket::open_sender(&cfg6).unwrap();
    assert_eq!(tx6.sock.tclass_v6().unwrap(), 10 << 2);
    assert_eq!(
        sockopt::pmtu_mode(tx6.fd(), true).unwrap(),
        libc::IPV6_PMTUDISC_INTERFACE
    );
}

#[test]
fn the_sender_binds_where_asked() {
    let (_tx, rx, dest) = loopback_pair();
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cfg = SenderConfig {
        bind: Some("127.0.0.1".parse().unwrap()),
        bind_port: port,
        ..SenderConfig::new(dest)
    };
    let tx = UdpSocket::open_sender(&cfg).unwrap();
    assert_eq!(tx.local_addr(), SocketAddr::new(dest.ip(), port));
    let waker = Waker::new().unwrap();
    SendBatch::new()
        .send(&tx, dest, 1, |_| [&b"x"[..]], &waker)
        .unwrap();
    let got = recv_all(&rx, &mut RecvBatch::new(4, 2048), 1, &waker);
    assert_eq!(got[0].1.source, tx.local_addr());
}

#[test]
fn a_receiver_replies_to_the_sender_on_the_same_sockets() {
    let (tx, rx, dest) = loopback_pair();
    let waker = Waker::new().unwrap();
    SendBatch::new()
        .send(&tx, dest, 1, |_| [&b"ping"[..]], &waker)
        .unwrap();
    let got = recv_all(&rx, &mut RecvBatch::new(4, 2048), 1, &waker);
    let source = got[0].1.source;
    // The receiver answers the source of what it got, through its own socket.
    let report = SendBatch::new()
        .send(&rx, source, 1, |_| [&b"pong"[..]], &waker)
        .unwrap();
    assert_eq!(report.sent, 1, "{report:?}");
    // The (unconnected) sender gets the reply, from the receiver's address.
    let back = recv_all(&tx, &mut RecvBatch::new(4, 2048), 1, &waker);
    assert_eq!(bytes_of(&back), vec![b"pong".to_vec()]);
    assert_eq!(back[0].1.source, dest);
}

#[test]
fn refused_datagram_after_an_icmp_error_is_sent_again() {
    // Nobody listens on this port at first: the kernel gets an ICMP port unreachable.
    let probe = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let dest = probe.local_addr().unwrap();
    drop(probe);
    let tx = UdpSocket::open_sender(&SenderConfig::new(dest)).unwrap();
    let waker = Waker::new().unwrap();
    let mut batch = SendBatch::new();
    batch
        .send(&tx, dest, 1, |_| [&b"lost"[..], &[][..]], &waker)
        .unwrap();
    std::thread::sleep(Duration::from_millis(50));
    // A receiver starts; the pending error must not cost it the next datagram.
    let rx = receiver_on("127.0.0.1", dest.port(), false);
    let report = batch
        .send(&tx, dest, 1, |_| [&b"kept"[..], &[][..]], &waker)
        .unwrap();
    assert_eq!(report.sent, 1, "{report:?}");
    let got = recv_all(&rx, &mut RecvBatch::new(4, 2048), 1, &waker);
    assert_eq!(bytes_of(&got), vec![b"kept".to_vec()]);
}

#[test]
fn truncated_datagram_is_reported_not_returned() {
    let (tx, rx, dest) = loopback_pair();
    let waker = Waker::new().unwrap();
    let big = vec![1u8; 4000];
    SendBatch::new()
        .send(&tx, dest, 1, |_| [&big[..]], &waker)
        .unwrap();
    let mut rb = RecvBatch::new(4, 1024);
    let deadline = Some(Instant::now() + Duration::from_secs(5));
    assert_eq!(
        waker.wait(Some(rx.fd()), libc::POLLIN, deadline).unwrap(),
        Wait::Ready
    );
    assert_eq!(rb.recv(&rx).unwrap(), 1);
    assert!(rb.get(0).is_none());
    assert_eq!(
        rb.meta(0).map(|m| m.source.port()),
        Some(tx.local_addr().port())
    );
}

#[test]
fn waker_interrupts_a_wait_until_reset() {
    let (_tx, rx, _) = loopback_pair();
    let waker = std::sync::Arc::new(Waker::new().unwrap());
    let w2 = waker.clone();
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        w2.wake();
    });
    let start = Instant::now();
    let r = waker
        .wait(
            Some(rx.fd()),
            libc::POLLIN,
            Some(start + Duration::from_secs(10)),
        )
        .unwrap();
    assert_eq!(r, Wait::Woken);
    assert!(start.elapsed() < Duration::from_secs(5));
    t.join().unwrap();
    // Stays woken until reset.
    assert_eq!(
        waker.wait(None, 0, Some(Instant::now())).unwrap(),
        Wait::Woken
    );
    waker.reset();
    let r = waker
        .wait(
            Some(rx.fd()),
            libc::POLLIN,
            Some(Instant::now() + Duration::from_millis(20)),
        )
        .unwrap();
    assert_eq!(r, Wait::TimedOut);
}

#[test]
fn binding_a_port_in_use_names_the_address() {
    let (_tx, rx, _) = loopback_pair();
    let err = UdpSocket::open_receiver(&ReceiverConfig {
        address: "127.0.0.1".parse().unwrap(),
        port: rx.local_addr().port(),
        multicast_iface: 0,
        buffer_size: 0,
        reuse: false,
    })
    .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("bind to 127.0.0.1:"), "{msg}");
    assert!(msg.to_lowercase().contains("in use"), "{msg}");
}

#[test]
fn a_unicast_port_is_shared_only_when_every_receiver_asks() {
    let first = receiver_on("127.0.0.1", 0, false);
    let port = first.local_addr().port();
    let cfg = |reuse| ReceiverConfig {
        address: "127.0.0.1".parse().unwrap(),
        port,
        multicast_iface: 0,
        buffer_size: 0,
        reuse,
    };
    for reuse in [false, true] {
        let err = UdpSocket::open_receiver(&cfg(reuse)).unwrap_err();
        assert!(err.is_addr_in_use(), "reuse={reuse}: {err}");
    }
    // Two that both ask share it.
    let a = receiver_on("127.0.0.1", 0, true);
    let shared = ReceiverConfig {
        port: a.local_addr().port(),
        ..cfg(true)
    };
    assert!(shared.shares_port());
    let b = UdpSocket::open_receiver(&shared).unwrap();
    assert_eq!(b.local_addr(), a.local_addr());
    // A multicast group is shared without asking.
    let group = ReceiverConfig {
        address: "239.255.0.1".parse().unwrap(),
        ..cfg(false)
    };
    assert!(group.shares_port());
    assert!(!cfg(false).shares_port());
}

#[test]
fn ephemeral_ports_are_never_shared_even_with_reuse() {
    // SO_REUSEADDR before a port-0 bind lets the kernel hand one port to several sockets.
    let sockets: Vec<UdpSocket> = (0..1000).map(|_| receiver_on("0.0.0.0", 0, true)).collect();
    let mut ports: Vec<u16> = sockets.iter().map(|s| s.local_addr().port()).collect();
    ports.sort_unstable();
    ports.dedup();
    assert_eq!(ports.len(), 1000, "every receiver has a port of its own");
    // The port is still shared with later receivers that ask for it with reuse.
    let port = sockets[0].local_addr().port();
    let other = receiver_on("0.0.0.0", port, true);
    assert_eq!(other.local_addr().port(), port);
}

#[test]
fn unspecified_ipv6_receives_ipv4_and_replies_to_it() {
    let rx = receiver_on("::", 0, false);
    assert!(!rx.sock.only_v6().unwrap());
    let dest: SocketAddr = format!("127.0.0.1:{}", rx.local_addr().port())
        .parse()
        .unwrap();
    let tx = UdpSocket::open_sender(&SenderConfig::new(dest)).unwrap();
    let waker = Waker::new().unwrap();
    SendBatch::new()
        .send(&tx, dest, 1, |_| [&b"v4"[..]], &waker)
        .unwrap();
    let got = recv_all(&rx, &mut RecvBatch::new(4, 2048), 1, &waker);
    assert_eq!(bytes_of(&got), vec![b"v4".to_vec()]);
    // The source is given as plain IPv4, and a reply to it goes out of the IPv6 socket.
    let source = got[0].1.source;
    assert_eq!(source.ip(), "127.0.0.1".parse::<IpAddr>().unwrap());
    let report = SendBatch::new()
        .send(&rx, source, 1, |_| [&b"back"[..]], &waker)
        .unwrap();
    assert_eq!(report.sent, 1, "{report:?}");
    let back = recv_all(&tx, &mut RecvBatch::new(4, 2048), 1, &waker);
    assert_eq!(bytes_of(&back), vec![b"back".to_vec()]);
}

#[test]
fn a_specific_ipv6_address_stays_ipv6_only() {
    let rx = receiver_on("::1", 0, false);
    assert!(rx.sock.only_v6().unwrap());
}

#[test]
fn wall_clock_times_map_to_the_monotonic_clock() {
    let now_sys = SystemTime::now();
    let now = Instant::now();
    let ms = Duration::from_millis(30);
    assert_eq!(
        system_time_to_instant_at(now_sys - ms, now_sys, now),
        now - ms
    );
    // A time in the future (a clock step) is now.
    assert_eq!(system_time_to_instant_at(now_sys + ms, now_sys, now), now);
    // One older than the monotonic clock's origin saturates instead of panicking.
    let ancient = system_time_to_instant_at(SystemTime::UNIX_EPOCH, now_sys, now);
    assert!(ancient <= now);
    let t = system_time_to_instant(SystemTime::now() - ms);
    assert!(t <= Instant::now() - ms);
}

#[test]
fn resolve_accepts_names_and_both_families() {
    assert_eq!(
        resolve("127.0.0.1", 5).unwrap(),
        "127.0.0.1:5".parse().unwrap()
    );
    assert_eq!(resolve("::1", 5).unwrap(), "[::1]:5".parse().unwrap());
    assert_eq!(resolve("[::1]", 5).unwrap(), "[::1]:5".parse().unwrap());
    assert!(resolve("localhost", 5).unwrap().ip().is_loopback());
    let err = resolve("no-such-host.invalid", 5).unwrap_err();
    assert!(err.to_string().contains("no-such-host.invalid"));
}

#[test]
fn interface_index_of_unknown_interface_is_an_error() {
    assert_eq!(interface_index("").unwrap(), 0);
    assert!(interface_index("lo").unwrap() > 0);
    assert!(interface_index("nosuchif0").is_err());
}

#[test]
fn the_path_mtu_of_loopback_is_known() {
    let (tx, rx, dest) = loopback_pair();
    // The loopback device's MTU (65536), capped at the largest IP packet.
    let mtu = tx.path_mtu(dest).expect("a path MTU");
    assert!((60000..=65536).contains(&mtu), "{mtu}");
    let v6 = tx
        .path_mtu("[::1]:9".parse().unwrap())
        .expect("an IPv6 path MTU");
    assert!((60000..=65536).contains(&v6), "{v6}");
    let back = SocketAddr::new(dest.ip(), tx.local_addr().port());
    assert_eq!(rx.path_mtu(back), Some(mtu));
}
