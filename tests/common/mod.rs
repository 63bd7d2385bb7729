// SPDX-License-Identifier: MPL-2.0
//! Helpers shared by the integration tests: plugin registration, sender and receiver
//! pipelines on loopback, a datagram relay that misbehaves on purpose, and network
//! namespaces made by the test itself.

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
        init();
        let desc = format!(
            "appsrc name=src format=time is-live=false ! videoipsink name=sink host={host} port={port} sync=false {props}"
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

/// A hand-built v2 datagram of session `session` (track 0) with sequence number `seq`.
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
    /// Lose datagrams at random toward the receiver, this many per million, and drop
    /// everything it sends back: a one-way link, no reports or NACKs reach the sender.
    LoseOneWay(u32),
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
        let sock = UdpSocket::bind("127.0.0.1:0").expect("relay binds");
        force_recv_buffer(&sock, 32 << 20);
        let tick = match mangle {
            Mangle::Delay(..) | Mangle::LoseBoth(..) => Duration::from_millis(1),
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
            let mut back = vec![0u8; 65536];
            // Where the sender sends from, to relay what comes back to it.
            let mut sender: Option<SocketAddr> = None;
            let mut rng = 0x2545_F491_4F6C_DD1Du64;
            let mut lose = move |per_million: u32| {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                (rng % 1_000_000) < u64::from(per_million)
            };
            let mut held: Option<Vec<u8>> = None;
            // Held back until their time, in order (every datagram of one mode is held alike).
            let mut delayed: std::collections::VecDeque<(Instant, Vec<u8>)> = Default::default();
            let mut delayed_back: std::collections::VecDeque<(Instant, Vec<u8>)> =
                Default::default();
            let mut i = 0u64;
            let end = Instant::now() + Duration::from_secs(60);
            while !stop2.load(Ordering::Relaxed) && Instant::now() < end {
                let now = Instant::now();
                while delayed.front().is_some_and(|(at, _)| *at <= now) {
                    if let Some((_, d)) = delayed.pop_front() {
                        let _ = out.send_to(&d, to);
                    }
                }
                if let (Mangle::LoseBoth(p, by), Some(to_sender)) = (mangle, sender) {
                    while let Ok(n) = out.recv(&mut back) {
                        if !lose(p) {
                            delayed_back.push_back((now + by, back[..n].to_vec()));
                        }
                    }
                    while delayed_back.front().is_some_and(|(at, _)| *at <= now) {
                        if let Some((_, d)) = delayed_back.pop_front() {
                            let _ = sock.send_to(&d, to_sender);
                        }
                    }
                }
                if let Mangle::LoseOneWay(_) = mangle {
                    while out.recv(&mut back).is_ok() {}
                }
                let n = match sock.recv_from(&mut buf) {
                    Ok((n, from)) => {
                        sender = Some(from);
                        n
                    }
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
                    Mangle::LoseBoth(p, by) => {
                        if !lose(p) {
                            delayed.push_back((Instant::now() + by, d.to_vec()));
                        }
                    }
                    Mangle::LoseOneWay(p) => {
                        if !lose(p) {
                            let _ = out.send_to(d, to);
                        }
                    }
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
    // SAFETY: setsockopt with a live int; failure (not root) only leaves the default.
    unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
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
