// SPDX-License-Identifier: MPL-2.0
//! Helpers shared by the integration tests: plugin registration, sender and receiver
//! pipelines on loopback, a datagram relay that misbehaves on purpose, and network
//! namespaces made by the test itself.

pub mod tracks;

use gst::prelude::*;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Once};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub fn init() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        gst::init().expect("GStreamer initializes");
        gstvideoip::plugin_register_static().expect("the videoip plugin registers");
    });
}

/// A receiving pipeline: `videoipsrc port=0 {props} ! appsink`, brought to PLAYING.
pub struct Rx {
    pub pipeline: gst::Pipeline,
    pub src: gst::Element,
    pub sink: gst_app::AppSink,
    pub port: u16,
}

impl Rx {
    pub fn new(props: &str) -> Rx {
        Self::with_address("127.0.0.1", props)
    }

    pub fn with_address(address: &str, props: &str) -> Rx {
        Self::launch(&format!(
            "videoipsrc name=src address={address} port=0 {props} ! appsink name=sink sync=false"
        ))
    }

    /// Any receiving pipeline with a `videoipsrc name=src` (on port 0) and an
    /// `appsink name=sink`, brought to PLAYING.
    pub fn launch(desc: &str) -> Rx {
        init();
        let pipeline = gst::parse::launch(desc)
            .expect("receiver pipeline parses")
            .downcast::<gst::Pipeline>()
            .expect("a pipeline");
        let src = pipeline.by_name("src").expect("src");
        let sink = pipeline
            .by_name("sink")
            .expect("sink")
            .downcast::<gst_app::AppSink>()
            .expect("appsink");
        pipeline
            .set_state(gst::State::Ready)
            .expect("receiver goes to READY");
        let port = src.property::<i32>("port") as u16;
        assert_ne!(port, 0, "the bound port is readable in READY");
        pipeline
            .set_state(gst::State::Playing)
            .expect("receiver goes to PLAYING");
        Rx {
            pipeline,
            src,
            sink,
            port,
        }
    }

    /// Pulls samples until `n` arrived or `timeout` passed.
    pub fn pull(&self, n: usize, timeout: Duration) -> Vec<gst::Sample> {
        let deadline = Instant::now() + timeout;
        let mut out = Vec::new();
        while out.len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            let t = gst::ClockTime::from_nseconds(left.as_nanos() as u64)
                .min(gst::ClockTime::from_mseconds(100));
            match self.sink.try_pull_sample(t) {
                Some(s) => out.push(s),
                None if self.sink.is_eos() => break,
                None => {}
            }
        }
        out
    }

    pub fn stats(&self) -> gst::Structure {
        self.src.property::<gst::Structure>("stats")
    }

    pub fn stat(&self, name: &str) -> u64 {
        self.stats()
            .get::<u64>(name)
            .unwrap_or_else(|_| panic!("stats has field {name}"))
    }

    /// Waits for EOS or an error on the bus.
    pub fn wait_eos(&self, timeout: Duration) -> bool {
        let bus = self.pipeline.bus().expect("bus");
        let msg = bus.timed_pop_filtered(
            gst::ClockTime::from_nseconds(timeout.as_nanos() as u64),
            &[gst::MessageType::Eos, gst::MessageType::Error],
        );
        matches!(msg.map(|m| m.type_()), Some(gst::MessageType::Eos))
    }
}

impl Drop for Rx {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

/// A sending pipeline: `appsrc ! videoipsink host={host} port={port} {props}`.
pub struct Tx {
    pub pipeline: gst::Pipeline,
    pub appsrc: gst_app::AppSrc,
    pub sink: gst::Element,
    pts: gst::ClockTime,
}

impl Tx {
    pub fn new(host: &str, port: u16, caps: &gst::Caps, props: &str) -> Tx {
        Self::with_sink_props(caps, &format!("host={host} port={port} {props}"))
    }

    /// A sender whose `videoipsink` gets exactly `props`.
    pub fn with_sink_props(caps: &gst::Caps, props: &str) -> Tx {
        init();
        let desc = format!(
            "appsrc name=src format=time is-live=false ! videoipsink name=sink sync=false {props}"
        );
        let pipeline = gst::parse::launch(&desc)
            .expect("sender pipeline parses")
            .downcast::<gst::Pipeline>()
            .expect("a pipeline");
        let appsrc = pipeline
            .by_name("src")
            .expect("src")
            .downcast::<gst_app::AppSrc>()
            .expect("appsrc");
        appsrc.set_caps(Some(caps));
        appsrc.set_property("block", true);
        appsrc.set_property("max-bytes", 64u64 << 20);
        let sink = pipeline.by_name("sink").expect("sink");
        pipeline
            .set_state(gst::State::Playing)
            .expect("sender goes to PLAYING");
        Tx {
            pipeline,
            appsrc,
            sink,
            pts: gst::ClockTime::ZERO,
        }
    }

    /// Pushes one frame lasting `duration`.
    pub fn push(&mut self, data: &[u8], duration: gst::ClockTime) {
        let mut buf = gst::Buffer::from_slice(data.to_vec());
        {
            let b = buf.get_mut().expect("new buffer is writable");
            b.set_pts(self.pts);
            b.set_duration(duration);
        }
        self.pts += duration;
        self.appsrc
            .push_buffer(buf)
            .expect("appsrc accepts the buffer");
    }

    pub fn set_caps(&self, caps: &gst::Caps) {
        self.appsrc.set_caps(Some(caps));
    }

    /// Ends the stream and waits until the sink has handled the EOS.
    pub fn finish(&self) {
        let _ = self.appsrc.end_of_stream();
        let bus = self.pipeline.bus().expect("bus");
        let _ = bus.timed_pop_filtered(
            gst::ClockTime::from_seconds(20),
            &[gst::MessageType::Eos, gst::MessageType::Error],
        );
    }

    pub fn stats(&self) -> gst::Structure {
        self.sink.property::<gst::Structure>("stats")
    }
}

impl Drop for Tx {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

/// Caps of UYVY video, `w`x`h` at `fps`.
pub fn uyvy_caps(w: i32, h: i32, fps: i32) -> gst::Caps {
    gst::Caps::builder("video/x-raw")
        .field("format", "UYVY")
        .field("width", w)
        .field("height", h)
        .field("framerate", gst::Fraction::new(fps, 1))
        .build()
}

/// Caps of GRAY8 video, `w`x`h` at 25 fps.
pub fn gray_caps(w: i32, h: i32) -> gst::Caps {
    gst::Caps::builder("video/x-raw")
        .field("format", "GRAY8")
        .field("width", w)
        .field("height", h)
        .field("framerate", gst::Fraction::new(25, 1))
        .build()
}

/// A hand-built v2 datagram of session `session` (track 0) with sequence number `seq`.
/// `d` (a datagram made by [`datagram`]) again, with a COOKIE extension echoing `cookie`.
pub fn with_cookie(d: &[u8], cookie: &[u8]) -> Vec<u8> {
    use gstvideoip::protocol;
    let p = protocol::decode(d).expect("a valid datagram");
    let ext = [protocol::Extension::Other {
        kind: protocol::ext::COOKIE,
        value: cookie,
    }];
    let mut out = Vec::new();
    protocol::encode(&p.header, &ext, &p.body, &mut out).expect("encodes");
    out.extend_from_slice(p.payload);
    out
}

/// Sends `d` from `sock` to `to` as a receiver that proves it receives: waits (at most 2 s)
/// for the CHALLENGE it is answered with, then sends `d` again echoing its cookie. Returns
/// the cookie.
pub fn send_verified(sock: &std::net::UdpSocket, to: std::net::SocketAddr, d: &[u8]) -> Vec<u8> {
    use gstvideoip::protocol::{self, Body};
    sock.send_to(d, to).expect("sends");
    sock.set_read_timeout(Some(std::time::Duration::from_millis(200)))
        .expect("timeout");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    let mut buf = [0u8; 65536];
    while std::time::Instant::now() < deadline {
        let Ok((n, from)) = sock.recv_from(&mut buf) else {
            continue;
        };
        if from != to {
            continue;
        }
        if let Ok(p) = protocol::decode(&buf[..n]) {
            if let Body::Challenge(_) = p.body {
                let cookie = p.payload.to_vec();
                sock.send_to(&with_cookie(d, &cookie), to).expect("sends");
                return cookie;
            }
        }
    }
    panic!("no CHALLENGE from {to} within 2 s");
}

pub fn datagram(
    session: u64,
    seq: u32,
    body: gstvideoip::protocol::Body,
    payload: &[u8],
) -> Vec<u8> {
    let h = gstvideoip::protocol::CommonHeader {
        session,
        seq,
        ..Default::default()
    };
    let mut d = Vec::new();
    gstvideoip::protocol::encode(&h, &[], &body, &mut d).expect("no extensions to overflow");
    d.extend_from_slice(payload);
    d
}

/// A stream info datagram carrying all of `caps` in one piece.
pub fn info_datagram(session: u64, seq: u32, caps: &[u8]) -> Vec<u8> {
    let body = gstvideoip::protocol::Body::StreamInfo(gstvideoip::protocol::StreamInfo {
        caps_len: caps.len() as u32,
        ..Default::default()
    });
    datagram(session, seq, body, caps)
}

/// Deterministic pseudo-random bytes.
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

pub fn sample_bytes(s: &gst::Sample) -> Vec<u8> {
    let buf = s.buffer().expect("sample has a buffer");
    let map = buf.map_readable().expect("buffer maps");
    map.as_slice().to_vec()
}

/// What a [`Relay`] does to each datagram it forwards.
#[derive(Clone, Copy, Debug)]
pub enum Mangle {
    /// Drop datagram `i` when `i % n == k`.
    DropEvery(u64, u64),
    /// Swap each pair of datagrams and send every `n`th one twice.
    SwapAndDuplicate(u64),
    /// Hold back the datagrams the predicate picks for the given time; pass the rest.
    Delay(fn(&[u8]) -> bool, Duration),
    /// Lose datagrams at random, this many per million, in both directions, and delay the
    /// rest by the given one-way time: what the receiver sends back (reports, NACKs) is
    /// relayed to the sender, lost and delayed alike.
    LoseBoth(u32, Duration),
    /// As `LoseBoth`, but lost datagrams go in runs: this many per million are lost, in bursts
    /// of the given length (each direction on its own).
    BurstBoth(u32, u32, Duration),
    /// Lose datagrams at random toward the receiver, this many per million, and drop
    /// everything it sends back: a one-way link, no reports or NACKs reach the sender.
    LoseOneWay(u32),
}

impl Mangle {
    /// The lossy modes' path: loss per million, burst length, one-way delay, and whether
    /// what the receiver sends back reaches the sender.
    fn lossy(self) -> Option<LossyPath> {
        let path = |per_million, burst: u32, delay, back| LossyPath {
            per_million,
            burst: burst.max(1),
            delay,
            back,
        };
        match self {
            Mangle::LoseBoth(p, by) => Some(path(p, 1, by, true)),
            Mangle::BurstBoth(p, len, by) => Some(path(p, len, by, true)),
            Mangle::LoseOneWay(p) => Some(path(p, 1, Duration::ZERO, false)),
            _ => None,
        }
    }
}

/// See [`Mangle::lossy`].
#[derive(Clone, Copy, Debug)]
struct LossyPath {
    per_million: u32,
    burst: u32,
    delay: Duration,
    back: bool,
}

/// Decides which datagrams a lossy path loses: bursts of `len` start at random so that
/// `per_million` of all datagrams are lost.
struct Loss {
    rng: u64,
    left: u32,
}

impl Loss {
    fn new(seed: u64) -> Loss {
        Loss {
            rng: seed | 1,
            left: 0,
        }
    }

    fn lose(&mut self, per_million: u32, len: u32) -> bool {
        if self.left > 0 {
            self.left -= 1;
            return true;
        }
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        if (self.rng % 1_000_000) * u64::from(len) < u64::from(per_million) {
            self.left = len - 1;
            return true;
        }
        false
    }
}

/// A UDP relay on loopback between a sender and a receiver that loses, reorders or
/// duplicates datagrams on purpose. Runs until dropped, bounded to 60 s.
pub struct Relay {
    pub port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<u64>>,
}

impl Relay {
    pub fn new(to: SocketAddr, mangle: Mangle) -> Relay {
        if let Some(path) = mangle.lossy() {
            return Relay::lossy(to, path);
        }
        let sock = UdpSocket::bind("127.0.0.1:0").expect("relay binds");
        force_recv_buffer(&sock, 32 << 20);
        let tick = match mangle {
            Mangle::Delay(..) | Mangle::LoseBoth(..) | Mangle::BurstBoth(..) => {
                Duration::from_millis(1)
            }
            _ => Duration::from_millis(20),
        };
        sock.set_read_timeout(Some(tick)).expect("timeout");
        let port = sock.local_addr().expect("addr").port();
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let thread = std::thread::spawn(move || {
            let out = UdpSocket::bind("127.0.0.1:0").expect("relay out binds");
            out.set_nonblocking(true).expect("nonblocking");
            let mut buf = vec![0u8; 65536];
            let mut held: Option<Vec<u8>> = None;
            // Held back until their time, in order (every datagram of one mode is held alike).
            let mut delayed: std::collections::VecDeque<(Instant, Vec<u8>)> = Default::default();
            let mut i = 0u64;
            let end = Instant::now() + Duration::from_secs(60);
            while !stop2.load(Ordering::Relaxed) && Instant::now() < end {
                let now = Instant::now();
                while delayed.front().is_some_and(|(at, _)| *at <= now) {
                    if let Some((_, d)) = delayed.pop_front() {
                        let _ = out.send_to(&d, to);
                    }
                }
                let n = match sock.recv_from(&mut buf) {
                    Ok((n, _)) => n,
                    Err(_) => {
                        if let Some(h) = held.take() {
                            let _ = out.send_to(&h, to);
                        }
                        continue;
                    }
                };
                let d = &buf[..n];
                match mangle {
                    Mangle::DropEvery(m, k) => {
                        if i % m != k {
                            let _ = out.send_to(d, to);
                        }
                    }
                    // The first datagram (the stream info the receiver locks on to) passes
                    // straight through; every later pair is swapped.
                    Mangle::SwapAndDuplicate(_) if i == 0 => {
                        let _ = out.send_to(d, to);
                    }
                    // Handled by `Relay::lossy`.
                    Mangle::LoseBoth(..) | Mangle::BurstBoth(..) | Mangle::LoseOneWay(_) => {}
                    Mangle::Delay(pick, by) => {
                        if pick(d) {
                            delayed.push_back((Instant::now() + by, d.to_vec()));
                        } else {
                            let _ = out.send_to(d, to);
                        }
                    }
                    Mangle::SwapAndDuplicate(dup) => match held.take() {
                        None => held = Some(d.to_vec()),
                        Some(h) => {
                            let _ = out.send_to(d, to);
                            let _ = out.send_to(&h, to);
                            if i.is_multiple_of(dup) {
                                let _ = out.send_to(&h, to);
                            }
                        }
                    },
                }
                i += 1;
            }
            i
        });
        Relay {
            port,
            stop,
            thread: Some(thread),
        }
    }

    /// A relay that loses datagrams both ways and delays the rest by a one-way time, as
    /// [`Mangle::lossy`] says; what the receiver sends back is relayed to the sender alike.
    /// It moves datagrams in batches (recvmmsg/sendmmsg, through the plugin's own socket
    /// layer), so that it keeps up with 1080p60 (175,000 datagrams a second) by itself.
    fn lossy(to: SocketAddr, path: LossyPath) -> Relay {
        let LossyPath {
            per_million,
            burst,
            delay: by,
            back: relay_back,
        } = path;
        use gstvideoip::net::{self, RecvBatch, SendBatch, Waker};
        use std::collections::VecDeque;
        let open = |address: &str| {
            let cfg = net::ReceiverConfig {
                address: address.parse().expect("address"),
                port: 0,
                multicast_iface: 0,
                buffer_size: 4 << 20,
                reuse: false,
            };
            let sock = net::UdpSocket::open_receiver(&cfg).expect("relay binds");
            force_recv_buffer_fd(sock.fd(), 64 << 20);
            sock
        };
        let (sock, out) = (open("127.0.0.1"), open("127.0.0.1"));
        let port = sock.local_addr().port();
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let thread = std::thread::spawn(move || {
            let waker = Waker::new().expect("waker");
            let (mut rx, mut rx_back) = (RecvBatch::new(64, 2048), RecvBatch::new(16, 2048));
            let mut tx = SendBatch::new();
            let (mut loss, mut loss_back) = (
                Loss::new(0x2545_F491_4F6C_DD1D),
                Loss::new(0x9E37_79B9_7F4A_7C15),
            );
            type Queue = VecDeque<(Instant, Vec<u8>)>;
            let (mut ahead, mut back): (Queue, Queue) = Default::default();
            let mut sender: Option<SocketAddr> = None;
            let mut seen = 0u64;
            // Sends what is due from `q` to `dest` in one batch.
            let mut flush = |q: &mut Queue, from: &net::UdpSocket, dest: SocketAddr| {
                let now = Instant::now();
                let due = q.iter().take_while(|(at, _)| *at <= now).count();
                if due > 0 {
                    let _ = tx.send(from, dest, due, |i| [&q[i].1[..]], &waker);
                    q.drain(..due);
                }
            };
            let end = Instant::now() + Duration::from_secs(60);
            while !stop2.load(Ordering::Relaxed) && Instant::now() < end {
                let n = rx.recv(&sock).unwrap_or(0);
                let now = Instant::now();
                for i in 0..n {
                    seen += 1;
                    if let Some(m) = rx.meta(i) {
                        sender = Some(m.source);
                    }
                    if let Some(d) = rx.get(i) {
                        if !loss.lose(per_million, burst) {
                            ahead.push_back((now + by, d.to_vec()));
                        }
                    }
                }
                let m = rx_back.recv(&out).unwrap_or(0);
                for i in 0..m {
                    if let Some(d) = rx_back.get(i) {
                        // A one-way path drops everything on the way back.
                        if relay_back && !loss_back.lose(per_million, burst) {
                            back.push_back((now + by, d.to_vec()));
                        }
                    }
                }
                flush(&mut ahead, &out, to);
                if let Some(s) = sender {
                    flush(&mut back, &sock, s);
                }
                if n == 0 && m == 0 {
                    let next = [ahead.front(), back.front()]
                        .into_iter()
                        .flatten()
                        .map(|(at, _)| *at)
                        .min();
                    let tick = Instant::now() + Duration::from_micros(500);
                    let until = next.map_or(tick, |t| t.min(tick));
                    let _ = waker.wait(Some(sock.fd()), libc::POLLIN, Some(until));
                }
            }
            seen
        });
        Relay {
            port,
            stop,
            thread: Some(thread),
        }
    }

    /// Stops the relay and returns how many datagrams it saw.
    pub fn stop(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().and_then(|t| t.join().ok()).unwrap_or(0)
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Raises a socket's receive buffer past net.core.rmem_max (SO_RCVBUFFORCE, as root), so
/// that the relay itself loses nothing.
pub fn force_recv_buffer(sock: &UdpSocket, bytes: i32) {
    use std::os::fd::AsRawFd;
    force_recv_buffer_fd(sock.as_raw_fd(), bytes)
}

/// [`force_recv_buffer`] for a raw socket descriptor.
pub fn force_recv_buffer_fd(fd: std::os::fd::RawFd, bytes: i32) {
    // SAFETY: setsockopt with a live int; failure (not root) only leaves the default.
    unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            (&bytes as *const i32).cast(),
            4,
        );
    }
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// A network namespace made by the test, with its loopback up and multicast routed to it.
/// Deleted on drop.
pub struct NetNs {
    pub name: String,
}

impl NetNs {
    pub fn new(tag: &str) -> Option<NetNs> {
        if !is_root() {
            eprintln!("skipping: network namespaces need root");
            return None;
        }
        let name = format!("videoip-{tag}-{}", std::process::id());
        let ip = |args: &[&str]| {
            std::process::Command::new("ip")
                .args(args)
                .status()
                .map(|s| s.success())
                .unwrap_or(false)
        };
        let _ = ip(&["netns", "del", &name]);
        if !ip(&["netns", "add", &name]) {
            eprintln!("skipping: cannot create network namespace {name} here");
            return None;
        }
        let ns = NetNs { name };
        assert!(ip(&["-n", &ns.name, "link", "set", "lo", "up"]));
        assert!(ip(&[
            "-n",
            &ns.name,
            "route",
            "add",
            "224.0.0.0/4",
            "dev",
            "lo"
        ]));
        Some(ns)
    }
}

/// Moves the calling thread into the named namespace (sockets it opens then live there).
/// Threads take the name, not the
/// [`NetNs`], so that the test's own thread deletes the namespace even if they panic.
/// Runs `f` on a thread inside a network namespace the test makes (and deletes after).
/// Without one (not root, no `ip`) it prints "skipped" and does not run `f`.
pub fn in_netns(tag: &str, f: impl FnOnce() + Send + 'static) {
    init();
    let Some(ns) = NetNs::new(tag) else {
        eprintln!("skipped: {tag} needs a network namespace of its own (root and ip)");
        return;
    };
    let name = ns.name.clone();
    std::thread::spawn(move || {
        enter_netns(&name);
        f()
    })
    .join()
    .expect("the namespace thread finishes");
    drop(ns);
}

pub fn enter_netns(name: &str) {
    {
        let path = format!("/var/run/netns/{name}");
        let f = std::fs::File::open(&path).expect("namespace file opens");
        use std::os::fd::AsRawFd;
        // SAFETY: setns on a valid namespace fd affects only the calling thread.
        let rc = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns into {name}");
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// The internet checksum (RFC 1071) of `parts` taken as one run of bytes: for the IP, ICMP
/// and UDP headers tests forge in their own namespaces.
pub fn internet_checksum(parts: &[&[u8]]) -> u16 {
    let bytes: Vec<u8> = parts.concat();
    let mut sum: u32 = bytes
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}
