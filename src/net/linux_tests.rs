// SPDX-License-Identifier: MPL-2.0
//! Unit tests of `linux.rs`.

use super::super::*;
use std::time::Duration;

fn loopback_pair() -> (Sender, Receiver) {
    let rx = Receiver::open(&ReceiverConfig {
        address: "127.0.0.1".parse().unwrap(),
        port: 0,
        multicast_iface: 0,
        buffer_size: 4 << 20,
        reuse: false,
    })
    .unwrap();
    let tx = Sender::open(&SenderConfig::new(rx.local_addr())).unwrap();
    (tx, rx)
}

fn recv_all(rx: &Receiver, batch: &mut RecvBatch, want: usize, waker: &Waker) -> Vec<Vec<u8>> {
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
            got.push(batch.get(i).unwrap().to_vec());
        }
    }
    got
}

#[test]
fn sendmmsg_batch_arrives_in_order_on_loopback() {
    let (tx, rx) = loopback_pair();
    let waker = Waker::new().unwrap();
    let headers: Vec<[u8; 4]> = (0..100u32).map(|i| i.to_be_bytes()).collect();
    let payload = vec![7u8; 1000];
    let mut batch = SendBatch::new();
    let report = batch
        .send(&tx, 100, |i| [&headers[i][..], &payload[..100 + i]], &waker)
        .unwrap();
    assert_eq!(report.sent, 100);
    assert_eq!(report.errors, 0);
    let mut rb = RecvBatch::new(32, 2048);
    let got = recv_all(&rx, &mut rb, 100, &waker);
    assert_eq!(got.len(), 100);
    for (i, d) in got.iter().enumerate() {
        assert_eq!(&d[..4], &(i as u32).to_be_bytes());
        assert_eq!(d.len(), 4 + 100 + i);
    }
}

/// 300 datagrams of 1472 bytes (the last one shorter), numbered.
fn numbered(n: usize) -> (Vec<[u8; 4]>, Vec<u8>) {
    let headers = (0..n as u32).map(|i| i.to_be_bytes()).collect();
    (headers, (0..1468u32).map(|i| i as u8).collect())
}

fn check_numbered(got: &[Vec<u8>], n: usize, payload: &[u8]) {
    assert_eq!(got.len(), n);
    for (i, d) in got.iter().enumerate() {
        assert_eq!(&d[..4], &(i as u32).to_be_bytes());
        let want = if i == n - 1 { &payload[..100] } else { payload };
        assert_eq!(&d[4..], want, "datagram {i}");
    }
}

fn send_numbered(tx: &Sender, batch: &mut SendBatch, n: usize) -> (SendReport, Vec<u8>) {
    let waker = Waker::new().unwrap();
    let (headers, payload) = numbered(n);
    let report = batch
        .send(
            tx,
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
fn gso_send_arrives_as_separate_datagrams() {
    let (tx, rx) = loopback_pair();
    assert!(tx.gso_supported(), "this kernel has UDP GSO");
    let mut batch = SendBatch::new();
    let (report, payload) = send_numbered(&tx, &mut batch, 300);
    assert_eq!(batch.gso(), Some(true));
    assert_eq!(report.sent, 300);
    assert_eq!(report.bytes, 299 * 1472 + 104);
    let waker = Waker::new().unwrap();
    let mut rb = RecvBatch::new(64, 2048);
    let got = recv_all(&rx, &mut rb, 300, &waker);
    check_numbered(&got, 300, &payload);
}

#[test]
fn gro_receive_splits_coalesced_datagrams_back() {
    let (tx, rx) = loopback_pair();
    assert!(rx.enable_gro(), "this kernel has UDP GRO");
    let (_, payload) = send_numbered(&tx, &mut SendBatch::new(), 300);
    let waker = Waker::new().unwrap();
    let mut rb = RecvBatch::new(16, 65536);
    let mut got = Vec::new();
    let mut messages = 0;
    let deadline = Instant::now() + Duration::from_secs(5);
    while got.len() < 300 && Instant::now() < deadline {
        if rb.recv(&rx).unwrap() == 0 {
            waker
                .wait(Some(rx.fd()), libc::POLLIN, Some(deadline))
                .unwrap();
            continue;
        }
        messages += rb.messages();
        got.extend((0..rb.len()).map(|i| rb.get(i).unwrap().to_vec()));
    }
    check_numbered(&got, 300, &payload);
    assert!(messages < 30, "coalesced into {messages} receives");
}

#[test]
fn sending_without_gso_still_batches() {
    let (tx, rx) = loopback_pair();
    let mut batch = SendBatch::without_gso();
    let (report, payload) = send_numbered(&tx, &mut batch, 300);
    assert_eq!(batch.gso(), Some(false));
    assert_eq!(report.sent, 300);
    let waker = Waker::new().unwrap();
    let mut rb = RecvBatch::new(64, 2048);
    check_numbered(&recv_all(&rx, &mut rb, 300, &waker), 300, &payload);
}

#[test]
fn sender_options_reach_the_socket() {
    let (_tx, rx) = loopback_pair();
    let mut cfg = SenderConfig::new(rx.local_addr());
    cfg.dscp = Some(46);
    cfg.ttl = Some(7);
    cfg.buffer_size = 1 << 20;
    let tx = Sender::open(&cfg).unwrap();
    assert_eq!(tx.sock.tos_v4().unwrap(), 46 << 2);
    assert_eq!(tx.sock.ttl_v4().unwrap(), 7);
    assert!(!tx.buffer_size().capped(), "{:?}", tx.buffer_size());
    let mut cfg6 = SenderConfig::new("[::1]:9".parse().unwrap());
    cfg6.dscp = Some(10);
    let tx6 = Sender::open(&cfg6).unwrap();
    assert_eq!(tx6.sock.tclass_v6().unwrap(), 10 << 2);
}

#[test]
fn refused_datagram_after_an_icmp_error_is_sent_again() {
    // Nobody listens on this port at first: the kernel gets an ICMP port unreachable.
    let probe = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let dest = probe.local_addr().unwrap();
    drop(probe);
    let tx = Sender::open(&SenderConfig::new(dest)).unwrap();
    let waker = Waker::new().unwrap();
    let mut batch = SendBatch::new();
    batch
        .send(&tx, 1, |_| [&b"lost"[..], &[][..]], &waker)
        .unwrap();
    std::thread::sleep(Duration::from_millis(50));
    // A receiver starts; the pending error must not cost it the next datagram.
    let rx = Receiver::open(&ReceiverConfig {
        address: dest.ip(),
        port: dest.port(),
        multicast_iface: 0,
        buffer_size: 0,
        reuse: false,
    })
    .unwrap();
    let report = batch
        .send(&tx, 1, |_| [&b"kept"[..], &[][..]], &waker)
        .unwrap();
    assert_eq!(report.sent, 1, "{report:?}");
    let mut rb = RecvBatch::new(4, 2048);
    let got = recv_all(&rx, &mut rb, 1, &waker);
    assert_eq!(got, vec![b"kept".to_vec()]);
}

#[test]
fn truncated_datagram_is_reported_not_returned() {
    let (tx, rx) = loopback_pair();
    let waker = Waker::new().unwrap();
    let big = vec![1u8; 4000];
    SendBatch::new()
        .send(&tx, 1, |_| [&big[..], &[][..]], &waker)
        .unwrap();
    let mut rb = RecvBatch::new(4, 1024);
    let deadline = Some(Instant::now() + Duration::from_secs(5));
    assert_eq!(
        waker.wait(Some(rx.fd()), libc::POLLIN, deadline).unwrap(),
        Wait::Ready
    );
    assert_eq!(rb.recv(&rx).unwrap(), 1);
    assert!(rb.get(0).is_none());
}

#[test]
fn waker_interrupts_a_wait_until_reset() {
    let (_tx, rx) = loopback_pair();
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
    let (_tx, rx) = loopback_pair();
    let err = Receiver::open(&ReceiverConfig {
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
