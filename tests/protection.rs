// SPDX-License-Identifier: MPL-2.0
//! Packet protection over real sockets and pipelines: with one passphrase every frame
//! arrives byte-exact through loss; a wrong or missing passphrase gives no frame and a
//! warning naming it; an attacker on the path (it sends from the sender's very address)
//! injects nothing, ends nothing with a forged end of stream, and replays nothing.

#[allow(dead_code)]
mod common;

use common::*;
use gst::prelude::*;
use gstvideoip::protocol::{self, Body, EndOfStream};
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const PASS: &str = "correct horse battery";

/// A free UDP port on loopback (bound, read, released).
fn free_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// The warnings posted on `pipeline`'s bus so far, as text (message and debug).
fn warnings(pipeline: &gst::Pipeline) -> Vec<String> {
    let bus = pipeline.bus().expect("bus");
    let mut out = Vec::new();
    while let Some(m) = bus.pop_filtered(&[gst::MessageType::Warning]) {
        if let gst::MessageView::Warning(w) = m.view() {
            out.push(format!("{} {:?}", w.error(), w.debug()));
        }
    }
    out
}

#[test]
fn two_receivers_with_one_passphrase_get_every_frame_byte_exact_one_through_a_lossy_relay() {
    let a = Rx::new(&format!("passphrase=\"{PASS}\" latency=200"));
    let relay = Relay::new(
        format!("127.0.0.1:{}", a.port).parse().expect("addr"),
        Mangle::LoseBoth(10_000, Duration::from_millis(5)),
    );
    let own = free_port();
    let caps = uyvy_caps(640, 480, 25);
    let mut tx = Tx::with_sink_props(
        &caps,
        &format!(
            "host=127.0.0.1 port={} bind-port={own} source-name=SECRET announce=false \
             passphrase=\"{PASS}\"",
            relay.port
        ),
    );
    let b = Rx::launch(&format!(
        "videoipsrc name=src sender-address=127.0.0.1 sender-port={own} passphrase=\"{PASS}\" \
         latency=200 ! appsink name=sink sync=false"
    ));
    // B subscribes (with its cookie) before the stream starts.
    let deadline = Instant::now() + Duration::from_secs(3);
    while tx.stats().get::<u64>("subscribers").unwrap_or(0) < 1 {
        assert!(Instant::now() < deadline, "B did not subscribe");
        std::thread::sleep(Duration::from_millis(20));
    }
    let frames: Vec<Vec<u8>> = (0..50).map(|i| pattern(640 * 480 * 2, i + 1)).collect();
    for f in &frames {
        tx.push(f, gst::ClockTime::from_mseconds(40));
    }
    for (name, rx) in [("A (lossy)", &a), ("B", &b)] {
        let got = rx.pull(frames.len(), Duration::from_secs(10));
        let stats = rx.stats();
        eprintln!("{name}: {} frames\n{stats}", got.len());
        let exact = got
            .iter()
            .zip(&frames)
            .filter(|(s, f)| sample_bytes(s) == **f)
            .count();
        assert_eq!(exact, frames.len(), "{name}: {stats}");
        assert_eq!(rx.stat("datagrams-unauthenticated"), 0, "{stats}");
    }
    assert!(
        a.stat("datagrams-retransmitted") > 0,
        "A recovered by resends"
    );
    let lost = relay.stop();
    assert!(lost > 20, "the relay lost {lost}");
}

/// A sender of `n` live-timed 320x240 frames to `port` with `props`, on a thread.
fn send_frames(port: u16, props: String, n: u64) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut tx = Tx::new("127.0.0.1", port, &uyvy_caps(320, 240, 25), &props);
        for i in 0..n {
            tx.push(
                &pattern(320 * 240 * 2, i + 1),
                gst::ClockTime::from_mseconds(40),
            );
            std::thread::sleep(Duration::from_millis(40));
        }
        tx.finish();
    })
}

#[test]
fn a_wrong_or_missing_passphrase_gives_no_frame_and_a_warning_naming_it() {
    for (receiver, expect) in [
        (
            "passphrase=\"wrong horse battery\"".to_string(),
            "passphrase",
        ),
        (String::new(), "passphrase"),
    ] {
        let rx = Rx::new(&receiver);
        let t0 = Instant::now();
        let sender = send_frames(rx.port, format!("passphrase=\"{PASS}\""), 50);
        let mut warned = None;
        while warned.is_none() && t0.elapsed() < Duration::from_secs(4) {
            if warnings(&rx.pipeline).iter().any(|w| w.contains(expect)) {
                warned = Some(t0.elapsed());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let got = rx.pull(1, Duration::from_millis(500));
        let stats = rx.stats();
        eprintln!(
            "receiver {receiver:?}: warned after {warned:?}, {} frames\n{stats}",
            got.len()
        );
        assert!(got.is_empty(), "no frame: {stats}");
        let at = warned.expect("a warning naming the passphrase");
        assert!(at < Duration::from_secs(2), "warned after {at:?}");
        assert!(rx.stat("datagrams-unauthenticated") > 0, "{stats}");
        sender.join().expect("sender");
    }
}

#[test]
fn an_unprotected_stream_is_refused_by_a_receiver_with_a_passphrase() {
    // A spoofed sender without the passphrase: stream info and frames of its own.
    let rx = Rx::new(&format!("passphrase=\"{PASS}\""));
    let sock = UdpSocket::bind("127.0.0.1:0").expect("binds");
    let to: SocketAddr = ([127, 0, 0, 1], rx.port).into();
    let caps = b"video/x-raw,format=GRAY8,width=8,height=8,framerate=25/1";
    for k in 0..100u32 {
        sock.send_to(&info_datagram(0xbad, 2 * k, caps), to)
            .expect("sends");
        let media = Body::Media(protocol::Media {
            frame: k,
            frame_len: 64,
            frag_size: 64,
            ..Default::default()
        });
        sock.send_to(&datagram(0xbad, 2 * k + 1, media, &[7; 64]), to)
            .expect("sends");
        std::thread::sleep(Duration::from_millis(2));
    }
    let got = rx.pull(1, Duration::from_millis(500));
    let stats = rx.stats();
    assert!(got.is_empty(), "nothing injected: {stats}");
    assert_eq!(rx.stat("datagrams-unauthenticated"), 200, "{stats}");
    assert!(warnings(&rx.pipeline)
        .iter()
        .any(|w| w.contains("passphrase")));
}

/// A relay on the path between a sender and a receiver that records what it forwards, and
/// on `inject` sends from its own socket (for the receiver: the sender's address) a forged
/// unprotected END_OF_STREAM of the stream's session, then every datagram it recorded,
/// again.
struct OnPath {
    port: u16,
    inject: Arc<AtomicBool>,
    replayed: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl OnPath {
    fn new(to: SocketAddr) -> OnPath {
        let sock = UdpSocket::bind("127.0.0.1:0").expect("binds");
        force_recv_buffer(&sock, 8 << 20);
        sock.set_read_timeout(Some(Duration::from_millis(5)))
            .expect("timeout");
        let port = sock.local_addr().expect("addr").port();
        let inject = Arc::new(AtomicBool::new(false));
        let replayed = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (i, r, s) = (inject.clone(), replayed.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut sender: Option<SocketAddr> = None;
            let recorded: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());
            let mut session = 0u64;
            let mut buf = vec![0u8; 65536];
            let end = Instant::now() + Duration::from_secs(30);
            while !s.load(Ordering::Relaxed) && Instant::now() < end {
                if i.swap(false, Ordering::Relaxed) {
                    let eos = datagram(session, 0, Body::EndOfStream(EndOfStream::default()), &[]);
                    let _ = sock.send_to(&eos, to);
                    let all = recorded.lock().map(|v| v.clone()).unwrap_or_default();
                    for d in &all {
                        let _ = sock.send_to(d, to);
                    }
                    r.store(all.len() as u64, Ordering::Relaxed);
                }
                let Ok((n, from)) = sock.recv_from(&mut buf) else {
                    continue;
                };
                let d = &buf[..n];
                if from == to {
                    if let Some(snd) = sender {
                        let _ = sock.send_to(d, snd);
                    }
                    continue;
                }
                sender = Some(from);
                if let Ok(p) = protocol::decode(d) {
                    session = p.header.session;
                }
                if let Ok(mut v) = recorded.lock() {
                    if v.len() < 20_000 {
                        v.push(d.to_vec());
                    }
                }
                let _ = sock.send_to(d, to);
            }
        });
        OnPath {
            port,
            inject,
            replayed,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for OnPath {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[test]
fn an_attacker_on_the_path_ends_nothing_with_a_forged_eos_and_replays_nothing() {
    let rx = Rx::new(&format!("passphrase=\"{PASS}\""));
    let path = OnPath::new(([127, 0, 0, 1], rx.port).into());
    let sender = send_frames(path.port, format!("passphrase=\"{PASS}\""), 40);
    let first = rx.pull(20, Duration::from_secs(5));
    assert_eq!(first.len(), 20);
    // Halfway: a forged end of stream from the sender's address, then the first half of
    // the stream again.
    path.inject.store(true, Ordering::Relaxed);
    let rest = rx.pull(40, Duration::from_secs(5));
    sender.join().expect("sender");
    let stats = rx.stats();
    let replayed = path.replayed.load(Ordering::Relaxed);
    eprintln!(
        "{} + {} frames, {replayed} datagrams replayed\n{stats}",
        first.len(),
        rest.len()
    );
    assert!(replayed > 100, "{replayed}");
    // Every frame once, in order: the replay output nothing, the forged EOS ended nothing.
    let all: Vec<Vec<u8>> = first.iter().chain(&rest).map(sample_bytes).collect();
    let want: Vec<Vec<u8>> = (0..40).map(|i| pattern(320 * 240 * 2, i + 1)).collect();
    assert_eq!(all.len(), want.len(), "{stats}");
    assert!(all == want, "every frame once, in order");
    assert!(rx.stat("datagrams-replayed") >= replayed, "{stats}");
    assert!(
        rx.stat("datagrams-unauthenticated") >= 1,
        "the forged EOS: {stats}"
    );
    assert!(rx.sink.is_eos(), "the real end of stream came through");
}
