// SPDX-License-Identifier: MPL-2.0
//! Issue 12's back-channel attacks, rerun as an attacker would: over real sockets, on a LAN
//! of network namespaces the tests make (a bridge in the sender's namespace S, with the
//! attacker A, the victim V and a real receiver R on veths), the attacker forging
//! datagrams whose IPv4 source is someone else's (a raw socket, `IP_HDRINCL`, only inside
//! those namespaces). Each test asserts the defence with a figure, and prints it.
//!
//! Bytes are counted alike on both sides: whole IP datagrams (IPv4 header, UDP header and
//! payload). The attacker's are the datagrams it forged; the victim's are what reaches its
//! kernel for the ports it is aimed at (a raw UDP socket in V's namespace, which sees them
//! whether a socket is bound there or not), or what its open sockets received (payload
//! plus 28 bytes each) if that is more.

// Each test binary uses only some of the shared helpers.
#[allow(dead_code)]
mod common;

use common::*;
use gst::prelude::*;
use gstvideoip::protocol::{Body, Nack, ReceiverReport, Subscribe, NO_DELAY};
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// One test at a time: each streams 720p30 (55 MB/s per destination) on a 2-core machine,
/// and two at once would starve each other.
static SERIAL: Mutex<()> = Mutex::new(());

const S: Ipv4Addr = Ipv4Addr::new(10, 215, 0, 1);
const A: Ipv4Addr = Ipv4Addr::new(10, 215, 0, 2);
const V: Ipv4Addr = Ipv4Addr::new(10, 215, 0, 3);
const R: Ipv4Addr = Ipv4Addr::new(10, 215, 0, 4);
/// Addresses the victim's namespace answers for besides V (an AnyIP route): the hosts of a
/// victim network, for forgeries from many addresses.
const VICTIM_NET: &str = "10.215.1.0/24";
/// The port the sender listens on (or sends from).
const SENDER_PORT: u16 = 5500;

const SOURCE: &str = "videotestsrc is-live=true \
    ! video/x-raw,format=UYVY,width=1280,height=720,framerate=30/1";
const FRAME: Duration = Duration::from_nanos(33_333_333);

/// The namespaces of one test: S (with the bridge, 10.215.0.1), A (.2), V (.3, and
/// [`VICTIM_NET`]) and R (.4). Deleted on drop.
struct Lan {
    s: NetNs,
    a: NetNs,
    v: NetNs,
    r: NetNs,
}

fn ip(args: &[&str]) {
    let ok = std::process::Command::new("ip")
        .args(args)
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(ok, "ip {args:?}");
}

impl Lan {
    /// None (and "skipped") where namespaces cannot be made (not root, no `ip`, no bridge).
    fn new(tag: &str) -> Option<Lan> {
        init();
        let make = |x: &str| NetNs::new(&format!("{tag}{x}"));
        let (Some(s), Some(a), Some(v), Some(r)) = (make("s"), make("a"), make("v"), make("r"))
        else {
            eprintln!("skipped: {tag} needs network namespaces of its own (root and ip)");
            return None;
        };
        let bridge = std::process::Command::new("ip")
            .args(["-n", &s.name, "link", "add", "br0", "type", "bridge"])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if !bridge {
            eprintln!("skipped: {tag} needs a bridge device");
            return None;
        }
        ip(&["-n", &s.name, "addr", "add", "10.215.0.1/24", "dev", "br0"]);
        ip(&["-n", &s.name, "link", "set", "br0", "up"]);
        for (ns, host, dev) in [(&a, A, "s-a"), (&v, V, "s-v"), (&r, R, "s-r")] {
            ip(&[
                "-n", &s.name, "link", "add", dev, "type", "veth", "peer", "name", "eth0", "netns",
                &ns.name,
            ]);
            ip(&["-n", &s.name, "link", "set", dev, "master", "br0"]);
            ip(&["-n", &s.name, "link", "set", dev, "up"]);
            ip(&[
                "-n",
                &ns.name,
                "addr",
                "add",
                &format!("{host}/24"),
                "dev",
                "eth0",
            ]);
            ip(&["-n", &ns.name, "link", "set", "eth0", "up"]);
        }
        ip(&[
            "-n", &v.name, "route", "add", "local", VICTIM_NET, "dev", "lo",
        ]);
        ip(&[
            "-n",
            &s.name,
            "route",
            "add",
            VICTIM_NET,
            "via",
            &V.to_string(),
        ]);
        Some(Lan { s, a, v, r })
    }
}

/// Runs `f` on a thread of its own inside namespace `ns` and waits for its result.
/// Sockets (and pipelines brought to PLAYING) made there stay in `ns` wherever they are
/// used from later.
fn in_ns<T: Send + 'static>(ns: &NetNs, f: impl FnOnce() -> T + Send + 'static) -> T {
    let name = ns.name.clone();
    std::thread::spawn(move || {
        enter_netns(&name);
        f()
    })
    .join()
    .expect("the namespace thread finishes")
}

/// A pipeline brought to PLAYING inside a namespace, and back to NULL when dropped (also
/// when a test fails, so that no stream outlives its test).
struct Running(gst::Pipeline);

impl std::ops::Deref for Running {
    type Target = gst::Pipeline;
    fn deref(&self) -> &gst::Pipeline {
        &self.0
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.set_state(gst::State::Null);
    }
}

/// A pipeline parsed and brought to PLAYING inside `ns`.
fn launch_in(ns: &NetNs, desc: &str) -> Running {
    let desc = desc.to_string();
    Running(in_ns(ns, move || {
        let p = gst::parse::launch(&desc)
            .unwrap_or_else(|e| panic!("{desc}: {e}"))
            .downcast::<gst::Pipeline>()
            .expect("a pipeline");
        p.set_state(gst::State::Playing)
            .unwrap_or_else(|e| panic!("{desc} plays: {e}"));
        p
    }))
}

fn stats(p: &gst::Pipeline, name: &str) -> gst::Structure {
    p.by_name(name)
        .unwrap_or_else(|| panic!("{name} in the pipeline"))
        .property::<gst::Structure>("stats")
}

fn stat(s: &gst::Structure, field: &str) -> u64 {
    s.get::<u64>(field).unwrap_or(0)
}

/// A raw socket in the attacker's namespace that sends UDP datagrams with any IPv4 source
/// address (`IPPROTO_RAW` implies `IP_HDRINCL`), counting what it sent.
struct Forger {
    fd: OwnedFd,
    bytes: u64,
    datagrams: u64,
}

impl Forger {
    fn new(attacker: &NetNs) -> Forger {
        let fd = in_ns(attacker, || {
            // SAFETY: socket() has no preconditions; the descriptor is owned from here on.
            let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_RAW) };
            assert!(fd >= 0, "a raw socket: {}", std::io::Error::last_os_error());
            // SAFETY: a fresh descriptor nobody else owns.
            unsafe { OwnedFd::from_raw_fd(fd) }
        });
        Forger {
            fd,
            bytes: 0,
            datagrams: 0,
        }
    }

    /// Sends `payload` as a UDP datagram from `from` to `to`, with a correct UDP checksum.
    fn send(&mut self, from: SocketAddrV4, to: SocketAddrV4, payload: &[u8]) {
        let udp_len = (8 + payload.len()) as u16;
        let total = 20 + udp_len;
        let mut ip = vec![0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 17, 0, 0];
        ip[2..4].copy_from_slice(&total.to_be_bytes());
        ip[4..6].copy_from_slice(&(self.datagrams as u16 | 1).to_be_bytes());
        ip.extend_from_slice(&from.ip().octets());
        ip.extend_from_slice(&to.ip().octets());
        let c = internet_checksum(&[&ip]);
        ip[10..12].copy_from_slice(&c.to_be_bytes());
        let mut udp = Vec::with_capacity(usize::from(udp_len));
        udp.extend_from_slice(&from.port().to_be_bytes());
        udp.extend_from_slice(&to.port().to_be_bytes());
        udp.extend_from_slice(&udp_len.to_be_bytes());
        udp.extend_from_slice(&[0, 0]);
        udp.extend_from_slice(payload);
        let mut pseudo = Vec::with_capacity(12);
        pseudo.extend_from_slice(&from.ip().octets());
        pseudo.extend_from_slice(&to.ip().octets());
        pseudo.extend_from_slice(&[0, 17]);
        pseudo.extend_from_slice(&udp_len.to_be_bytes());
        let c = match internet_checksum(&[&pseudo, &udp]) {
            0 => 0xffff,
            c => c,
        };
        udp[6..8].copy_from_slice(&c.to_be_bytes());
        let packet = [ip, udp].concat();
        let dest = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: 0,
            sin_addr: libc::in_addr {
                s_addr: u32::from(*to.ip()).to_be(),
            },
            sin_zero: [0; 8],
        };
        // SAFETY: the buffer and address are live locals of the lengths given.
        let n = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                packet.as_ptr().cast(),
                packet.len(),
                0,
                (&dest as *const libc::sockaddr_in).cast(),
                std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
            )
        };
        assert_eq!(
            n,
            packet.len() as isize,
            "forged datagram: {}",
            std::io::Error::last_os_error()
        );
        self.bytes += packet.len() as u64;
        self.datagrams += 1;
    }
}

/// A raw UDP socket in namespace `ns`: it gets a copy of every UDP datagram arriving there,
/// whether a socket is bound to its port or not.
fn raw_udp_socket(ns: &NetNs, rcvbuf: i32) -> OwnedFd {
    in_ns(ns, move || {
        // SAFETY: socket() has no preconditions; the descriptor is owned from here on.
        let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_UDP) };
        assert!(fd >= 0, "a raw socket: {}", std::io::Error::last_os_error());
        // SAFETY: a fresh descriptor nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        if rcvbuf > 0 {
            force_recv_buffer_fd(fd.as_raw_fd(), rcvbuf);
        } else {
            let small: libc::c_int = 1;
            // SAFETY: setsockopt with a live int; the kernel rounds it up to its minimum.
            unsafe {
                libc::setsockopt(
                    fd.as_raw_fd(),
                    libc::SOL_SOCKET,
                    libc::SO_RCVBUF,
                    (&small as *const libc::c_int).cast(),
                    4,
                );
            }
        }
        fd
    })
}

/// Receives one datagram from `fd` without waiting longer than `wait`: its length, or None.
fn recv_within(fd: RawFd, buf: &mut [u8], wait: Duration) -> Option<usize> {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one live pollfd.
    let ready = unsafe { libc::poll(&mut pfd, 1, wait.as_millis() as libc::c_int) };
    if ready <= 0 {
        return None;
    }
    // SAFETY: `buf` is live and writable for its length.
    let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT) };
    (n > 0).then_some(n as usize)
}

/// Bounded background work: stopped and joined on drop, and in any case over after 60 s.
struct Worker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Worker {
    fn spawn(f: impl FnOnce(&AtomicBool, Instant) + Send + 'static) -> Worker {
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let thread = std::thread::spawn(move || f(&s, Instant::now() + Duration::from_secs(60)));
        Worker {
            stop,
            thread: Some(thread),
        }
    }

    fn running(stop: &AtomicBool, end: Instant) -> bool {
        !stop.load(Ordering::Relaxed) && Instant::now() < end
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The victim: UDP sockets bound to some of its ports (the others closed), and a raw
/// socket counting every UDP byte its kernel gets for a range of ports, from now on.
struct Victim {
    kernel: Arc<AtomicU64>,
    sockets: Arc<AtomicU64>,
    _worker: Worker,
}

impl Victim {
    /// Counts UDP to `counted` ports in `ns`, with sockets bound to the `open` ones.
    fn new(ns: &NetNs, open: std::ops::Range<u16>, counted: std::ops::Range<u16>) -> Victim {
        let raw = raw_udp_socket(ns, 64 << 20);
        let socks: Vec<UdpSocket> = in_ns(ns, move || {
            open.map(|p| {
                let s = UdpSocket::bind(("0.0.0.0", p)).expect("the victim's port binds");
                s.set_nonblocking(true).expect("nonblocking");
                force_recv_buffer(&s, 32 << 20);
                s
            })
            .collect()
        });
        let (kernel, sockets) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let (k, so) = (kernel.clone(), sockets.clone());
        let worker = Worker::spawn(move |stop, end| {
            let mut buf = vec![0u8; 65536];
            let mut fds: Vec<libc::pollfd> = std::iter::once(raw.as_raw_fd())
                .chain(socks.iter().map(|s| s.as_raw_fd()))
                .map(|fd| libc::pollfd {
                    fd,
                    events: libc::POLLIN,
                    revents: 0,
                })
                .collect();
            while Worker::running(stop, end) {
                // SAFETY: `fds` is a live array of its length.
                let ready = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 20) };
                if ready <= 0 {
                    continue;
                }
                for _ in 0..256 {
                    // SAFETY: `buf` is live and writable for its length.
                    let n = unsafe {
                        libc::recv(
                            raw.as_raw_fd(),
                            buf.as_mut_ptr().cast(),
                            buf.len(),
                            libc::MSG_DONTWAIT,
                        )
                    };
                    if n <= 0 {
                        break;
                    }
                    let n = n as usize;
                    let ihl = usize::from(buf[0] & 0x0f) * 4;
                    if n >= ihl + 8 {
                        let port = u16::from_be_bytes([buf[ihl + 2], buf[ihl + 3]]);
                        if counted.contains(&port) {
                            k.fetch_add(n as u64, Ordering::Relaxed);
                        }
                    }
                }
                for s in &socks {
                    for _ in 0..256 {
                        match s.recv(&mut buf) {
                            Ok(n) => {
                                so.fetch_add(n as u64 + 28, Ordering::Relaxed);
                            }
                            Err(_) => break,
                        }
                    }
                }
                for f in &mut fds {
                    f.revents = 0;
                }
            }
        });
        Victim {
            kernel,
            sockets,
            _worker: worker,
        }
    }

    /// (bytes that reached it: the larger count, its kernel's count, its sockets' count).
    fn got(&self) -> (u64, u64, u64) {
        let (k, s) = (
            self.kernel.load(Ordering::Relaxed),
            self.sockets.load(Ordering::Relaxed),
        );
        (k.max(s), k, s)
    }
}

/// What an attacker on the receiver's side learns by looking at the stream: the sender's
/// session id and (roughly, within a few ms) its latest media sequence number. A raw UDP
/// socket in namespace `ns`, with a buffer so small that the kernel drops nearly everything,
/// read every few ms for datagrams from the sender's port.
struct Sniffer {
    session: Arc<AtomicU64>,
    first_seq: Arc<AtomicU64>,
    latest_seq: Arc<AtomicU64>,
    _worker: Worker,
}

/// Not seen yet.
const NONE: u64 = u64::MAX;

impl Sniffer {
    fn new(ns: &NetNs, sender_port: u16) -> Sniffer {
        let raw = raw_udp_socket(ns, 0);
        let session = Arc::new(AtomicU64::new(NONE));
        let first_seq = Arc::new(AtomicU64::new(NONE));
        let latest_seq = Arc::new(AtomicU64::new(NONE));
        let (se, fi, la) = (session.clone(), first_seq.clone(), latest_seq.clone());
        let worker = Worker::spawn(move |stop, end| {
            let mut buf = vec![0u8; 65536];
            while Worker::running(stop, end) {
                for _ in 0..16 {
                    let Some(n) = recv_within(raw.as_raw_fd(), &mut buf, Duration::from_millis(5))
                    else {
                        break;
                    };
                    let ihl = usize::from(buf[0] & 0x0f) * 4;
                    let d = &buf[ihl.min(n)..n];
                    if d.len() < 8 + 20 || u16::from_be_bytes([d[0], d[1]]) != sender_port {
                        continue;
                    }
                    let v = &d[8..];
                    if &v[0..3] != b"VI\x02" {
                        continue;
                    }
                    se.store(
                        u64::from_be_bytes(v[8..16].try_into().expect("8 bytes")),
                        Ordering::Relaxed,
                    );
                    // A media datagram, not a resend.
                    if v[3] == 0 && v[4] & 1 == 0 {
                        let seq = u64::from(u32::from_be_bytes(v[16..20].try_into().expect("4")));
                        let _ =
                            fi.compare_exchange(NONE, seq, Ordering::Relaxed, Ordering::Relaxed);
                        la.store(seq, Ordering::Relaxed);
                        break;
                    }
                }
                std::thread::sleep(Duration::from_millis(3));
            }
        });
        Sniffer {
            session,
            first_seq,
            latest_seq,
            _worker: worker,
        }
    }

    /// Waits (at most `within`) until the session and a media sequence number were seen.
    fn wait(&self, within: Duration) -> (u64, u32) {
        let end = Instant::now() + within;
        while Instant::now() < end {
            let (s, q) = (
                self.session.load(Ordering::Relaxed),
                self.first_seq.load(Ordering::Relaxed),
            );
            if s != NONE && q != NONE {
                return (s, q as u32);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("the attacker never saw the stream within {within:?}");
    }

    fn latest(&self) -> u32 {
        self.latest_seq.load(Ordering::Relaxed) as u32
    }
}

/// When each frame reached a point of a pipeline, and its PTS there.
type Seen = Arc<Mutex<Vec<(Instant, Option<gst::ClockTime>)>>>;

/// Records the buffers a `fakesink signal-handoffs=true` named `name` renders.
fn rendered(p: &gst::Pipeline, name: &str) -> Seen {
    let seen: Seen = Default::default();
    let s = seen.clone();
    p.by_name(name)
        .unwrap_or_else(|| panic!("{name} in the pipeline"))
        .connect("handoff", false, move |v| {
            let pts = v[1].get::<gst::Buffer>().ok().and_then(|b| b.pts());
            if let Ok(mut s) = s.lock() {
                s.push((Instant::now(), pts));
            }
            None
        });
    seen
}

/// Records the buffers arriving at the sink pad of `name`: the frames the sender is offered.
fn offered(p: &gst::Pipeline, name: &str) -> Seen {
    let seen: Seen = Default::default();
    let s = seen.clone();
    p.by_name(name)
        .unwrap_or_else(|| panic!("{name} in the pipeline"))
        .static_pad("sink")
        .expect("a sink pad")
        .add_probe(gst::PadProbeType::BUFFER, move |_, info| {
            let pts = info.buffer().and_then(|b| b.pts());
            if let Ok(mut s) = s.lock() {
                s.push((Instant::now(), pts));
            }
            gst::PadProbeReturn::Ok
        });
    seen
}

/// Frames of `seen` within `[from, to)`, and the frames missing between them (gaps in
/// their PTS, in whole frame durations).
fn window(seen: &Seen, from: Instant, to: Instant) -> (usize, u64) {
    let v = seen.lock().map(|v| v.clone()).unwrap_or_default();
    let pts: Vec<gst::ClockTime> = v
        .iter()
        .filter(|(at, _)| *at >= from && *at < to)
        .filter_map(|(_, p)| *p)
        .collect();
    let gaps = pts
        .windows(2)
        .map(|w| {
            let d = w[1].nseconds().saturating_sub(w[0].nseconds()) as f64;
            ((d / FRAME.as_nanos() as f64).round() as u64).saturating_sub(1)
        })
        .sum();
    let n = v.iter().filter(|(at, _)| *at >= from && *at < to).count();
    (n, gaps)
}

/// What a real receiver kept of what the sender was offered over `[from, to)`.
struct Kept {
    offered: usize,
    got: usize,
    gaps: u64,
}

impl Kept {
    fn measure(offered_at: &Seen, rendered_at: &Seen, from: Instant, to: Instant) -> Kept {
        let (offered, _) = window(offered_at, from, to);
        let (got, gaps) = window(rendered_at, from, to);
        Kept { offered, got, gaps }
    }

    /// Frames kept over frames offered.
    fn share(&self) -> f64 {
        self.got as f64 / self.offered.max(1) as f64
    }

    /// Frames kept over frames kept and missed between them (no edge effects).
    fn share_between(&self) -> f64 {
        self.got as f64 / (self.got as u64 + self.gaps).max(1) as f64
    }
}

impl std::fmt::Display for Kept {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} frames rendered for {} offered to the sender ({:.1} %), {} missing between them ({:.1} % kept)",
            self.got,
            self.offered,
            100.0 * self.share(),
            self.gaps,
            100.0 * self.share_between()
        )
    }
}

fn subscribe(id: u64, seq: u32) -> Vec<u8> {
    datagram(
        id,
        seq,
        Body::Subscribe(Subscribe {
            session: 0,
            lease_ms: 30_000,
            flags: 0,
        }),
        &[],
    )
}

fn sock(ip: Ipv4Addr, port: u16) -> SocketAddrV4 {
    SocketAddrV4::new(ip, port)
}

/// Waits until `seen` has at least one frame, at most `within`.
fn wait_frames(seen: &Seen, within: Duration) -> bool {
    let end = Instant::now() + within;
    while Instant::now() < end {
        if seen.lock().map(|v| !v.is_empty()).unwrap_or(false) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// A named sender nobody subscribes to (`source-name=CAM`, no host), and 64 forged
/// SUBSCRIBEs from the victim's address: from 16 of its ports (8 with a socket bound, 8
/// closed), each sent again every second for 4 s. The victim may get at most 3 times what
/// the attacker sent: a small answer it can ignore (a return-routability cookie), never
/// the stream.
#[test]
fn a_forged_subscribe_gets_the_victim_at_most_three_times_the_attackers_bytes() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(lan) = Lan::new("atsub") else {
        return;
    };
    let tx = launch_in(
        &lan.s,
        &format!(
            "{SOURCE} ! videoipsink name=sink source-name=CAM announce=false port={SENDER_PORT}"
        ),
    );
    let victim = Victim::new(&lan.v, 5004..5012, 5004..5020);
    let mut forger = Forger::new(&lan.a);
    std::thread::sleep(Duration::from_millis(500));
    let start = Instant::now();
    for round in 0..4u32 {
        for port in 5004..5020u16 {
            let d = subscribe(0x5eed_0000 + u64::from(port), round);
            forger.send(sock(V, port), sock(S, SENDER_PORT), &d);
        }
        let next = start + Duration::from_secs(u64::from(round) + 1);
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
    // One second more: what the last renewals bought.
    std::thread::sleep(Duration::from_secs(1));
    let (got, kernel, sockets) = victim.got();
    let st = stats(&tx, "sink");
    eprintln!(
        "forged SUBSCRIBE: victim got {got} bytes (kernel {kernel}, open sockets {sockets}) \
         in {:.1} s for {} bytes sent ({} forged datagrams): {:.0}x; sender: {} subscribers, \
         {} refused, {} bytes sent",
        start.elapsed().as_secs_f64(),
        forger.bytes,
        forger.datagrams,
        got as f64 / forger.bytes as f64,
        stat(&st, "subscribers"),
        stat(&st, "subscribers-refused"),
        stat(&st, "bytes-sent"),
    );
    assert_eq!(forger.datagrams, 64);
    assert!(
        got <= 3 * forger.bytes,
        "the victim got {got} bytes for {} the attacker sent\n{st}",
        forger.bytes
    );
}

/// Every 10 ms for 5 s, a NACK forged from the victim's address asks for the 4,096 most
/// recent datagrams of the stream (sniffed on the receiver's side, as an attacker on that
/// path sees them) of `sender`, at `to` in S; meanwhile R, behind a relay that loses 1 %
/// both ways, needs its own resends. Returns (victim's bytes, attacker's bytes, what R
/// kept), after printing them with `what`.
fn forged_nacks(lan: &Lan, tx: &gst::Pipeline, rx: &gst::Pipeline, what: &str) -> (u64, u64, Kept) {
    let offered_at = offered(tx, "sink");
    let rendered_at = rendered(rx, "out");
    assert!(
        wait_frames(&rendered_at, Duration::from_secs(10)),
        "R renders frames before the attack"
    );
    let sniffer = Sniffer::new(&lan.s, SENDER_PORT);
    let (session, _) = sniffer.wait(Duration::from_secs(5));
    let victim = Victim::new(&lan.v, 5004..5005, 5004..5005);
    let mut forger = Forger::new(&lan.a);
    // Let R settle after lock-on.
    std::thread::sleep(Duration::from_secs(1));
    let from = Instant::now();
    let to = from + Duration::from_secs(5);
    let mut seq = 0u32;
    while Instant::now() < to {
        let latest = sniffer.latest();
        let mut entry = Vec::with_capacity(8);
        entry.extend_from_slice(&latest.wrapping_sub(4095).to_be_bytes());
        entry.extend_from_slice(&4096u32.to_be_bytes());
        let d = datagram(
            0xbad0_0001,
            seq,
            Body::Nack(Nack { session, track: 0 }),
            &entry,
        );
        forger.send(sock(V, 5004), sock(S, SENDER_PORT), &d);
        seq += 1;
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(500));
    let (got, kernel, sockets) = victim.got();
    let kept = Kept::measure(&offered_at, &rendered_at, from, to);
    let (st, rs) = (stats(tx, "sink"), stats(rx, "src"));
    eprintln!(
        "forged NACK, {what}: victim got {got} bytes (kernel {kernel}, open socket {sockets}) \
         for {} bytes sent ({} forged NACKs): {:.2}x; R: {kept}; sender: {} NACKs, {} refused, \
         {} resent; R: {} lost, {} asked for, {} resent to it",
        forger.bytes,
        forger.datagrams,
        got as f64 / forger.bytes as f64,
        stat(&st, "nacks-received"),
        stat(&st, "nacks-refused"),
        stat(&st, "datagrams-retransmitted"),
        stat(&rs, "datagrams-lost"),
        stat(&rs, "datagrams-requested"),
        stat(&rs, "datagrams-retransmitted"),
    );
    (got, forger.bytes, kept)
}

fn receiver_sink() -> &'static str {
    "fakesink name=out sync=true signal-handoffs=true"
}

/// A sender with `host` (unicast to R, through a relay that loses 1 % both ways, R and the
/// relay on S's loopback) and NACKs forged from the victim's address: the victim gets
/// nothing (resends go only where the stream goes), and R still gets its resends: at least
/// 99 % of the frames.
#[test]
fn a_forged_nack_gets_the_victim_nothing_and_leaves_the_real_receiver_its_resends() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(lan) = Lan::new("atnack") else {
        return;
    };
    let rx = launch_in(
        &lan.s,
        &format!(
            "videoipsrc name=src address=127.0.0.1 port=0 ! {}",
            receiver_sink()
        ),
    );
    let rx_port = bound_port(&rx);
    let relay = in_ns(&lan.s, move || {
        Relay::new(
            format!("127.0.0.1:{rx_port}").parse().expect("an address"),
            Mangle::LoseBoth(10_000, Duration::ZERO),
        )
    });
    let tx = launch_in(
        &lan.s,
        &format!(
            "{SOURCE} ! videoipsink name=sink host=127.0.0.1 port={} bind-port={SENDER_PORT}",
            relay.port
        ),
    );
    let (got, sent, kept) = forged_nacks(&lan, &tx, &rx, "unicast host");
    drop((tx, rx, relay));
    assert!(got <= 3 * sent, "the victim got {got} bytes for {sent}");
    assert!(kept.share_between() >= 0.99, "R: {kept}");
    assert!(kept.share() >= 0.95, "R: {kept}");
}

/// The named-sender variant: R subscribes (through the lossy relay), the victim never did;
/// NACKs forged from the victim's address get it nothing, and R its resends.
#[test]
fn a_forged_nack_gets_a_named_senders_non_subscriber_nothing_and_the_subscriber_its_resends() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(lan) = Lan::new("atnackn") else {
        return;
    };
    let tx = launch_in(
        &lan.s,
        &format!(
            "{SOURCE} ! videoipsink name=sink source-name=CAM announce=false port={SENDER_PORT}"
        ),
    );
    let relay = in_ns(&lan.s, || {
        Relay::new(
            format!("127.0.0.1:{SENDER_PORT}")
                .parse()
                .expect("an address"),
            Mangle::LoseBoth(10_000, Duration::ZERO),
        )
    });
    let rx = launch_in(
        &lan.s,
        &format!(
            "videoipsrc name=src sender-address=127.0.0.1 sender-port={} ! {}",
            relay.port,
            receiver_sink()
        ),
    );
    let (got, sent, kept) = forged_nacks(&lan, &tx, &rx, "named sender");
    drop((tx, rx, relay));
    assert!(got <= 3 * sent, "the victim got {got} bytes for {sent}");
    assert!(kept.share_between() >= 0.99, "R: {kept}");
    assert!(kept.share() >= 0.95, "R: {kept}");
}

/// The port `videoipsrc name=src` of `p` is bound to.
fn bound_port(p: &gst::Pipeline) -> u16 {
    let port = p.by_name("src").expect("src").property::<i32>("port") as u16;
    assert_ne!(port, 0, "the receiver's port is readable once it plays");
    port
}

/// Forges RECEIVER_REPORTs about the stream R gets (its session id sniffed in R's
/// namespace) that say the receiver falls far behind: frames dropped by the hundred, almost
/// nothing received, the highest sequence number stuck at the first one seen. For 5 s from
/// the attacker's own address (4 receiver ids, 4 ports: no spoofing needed), then for 5 s
/// spoofed from R's own address and port (4 more ids); each id reports twice a second.
/// R must keep at least 90 % of the frames in each phase.
fn forged_reports(lan: &Lan, tx: &gst::Pipeline, rx: &gst::Pipeline, what: &str) {
    let offered_at = offered(tx, "sink");
    let rendered_at = rendered(rx, "out");
    assert!(
        wait_frames(&rendered_at, Duration::from_secs(10)),
        "R renders frames before the attack"
    );
    let rx_port = bound_port(rx);
    let sniffer = Sniffer::new(&lan.r, SENDER_PORT);
    let (session, first_seq) = sniffer.wait(Duration::from_secs(5));
    drop(sniffer);
    let mut forger = Forger::new(&lan.a);
    std::thread::sleep(Duration::from_secs(1));
    let phases = [
        (
            "from the attacker's own address",
            A,
            7000u16,
            0x0a77_0000u64,
        ),
        ("spoofed from R's address", R, rx_port, 0x0a77_1000),
    ];
    let mut results = Vec::new();
    for (name, ip, port, ids) in phases {
        let from = Instant::now();
        let to = from + Duration::from_secs(5);
        let sent_before = forger.bytes;
        let mut n = 0u32;
        while Instant::now() < to {
            for k in 0..4u16 {
                let report = ReceiverReport {
                    session,
                    track: 0,
                    highest_seq: first_seq,
                    datagrams_received: u64::from(n) + 1,
                    datagrams_lost: u64::from(n) * 100_000,
                    frames_complete: 0,
                    frames_dropped: n * 100,
                    echoed_report_seq: 0,
                    delay_us: NO_DELAY,
                };
                let d = datagram(ids + u64::from(k), n, Body::ReceiverReport(report), &[]);
                let src_port = if ip == R { port } else { port + k };
                forger.send(sock(ip, src_port), sock(S, SENDER_PORT), &d);
            }
            n += 1;
            let next = from + Duration::from_millis(500) * n;
            std::thread::sleep(next.saturating_duration_since(Instant::now()));
        }
        let kept = Kept::measure(&offered_at, &rendered_at, from, to);
        let st = stats(tx, "sink");
        eprintln!(
            "forged reports, {what}, {name}: R {kept}; {} bytes forged; sender: allowed \
             bitrate {}, {} rate decreases, {} frames dropped",
            forger.bytes - sent_before,
            stat(&st, "allowed-bitrate"),
            stat(&st, "rate-decreases"),
            stat(&st, "frames-dropped"),
        );
        results.push((name, kept));
    }
    for (name, kept) in &results {
        assert!(kept.share() >= 0.9, "{what}, {name}: R {kept}");
    }
}

/// A unicast sender (`host` = R, over the LAN) and forged receiver reports: R keeps its
/// frames.
#[test]
fn forged_receiver_reports_leave_the_real_receiver_its_frames() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(lan) = Lan::new("atrr") else {
        return;
    };
    let rx = launch_in(
        &lan.r,
        &format!(
            "videoipsrc name=src address={R} port=0 ! {}",
            receiver_sink()
        ),
    );
    let rx_port = bound_port(&rx);
    let tx = launch_in(
        &lan.s,
        &format!(
            "{SOURCE} ! videoipsink name=sink host={R} port={rx_port} bind-port={SENDER_PORT}"
        ),
    );
    forged_reports(&lan, &tx, &rx, "unicast host");
}

/// A named sender that R subscribes to over the LAN, and forged receiver reports: R keeps
/// its frames.
#[test]
fn forged_receiver_reports_leave_a_subscriber_its_frames() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(lan) = Lan::new("atrrn") else {
        return;
    };
    let tx = launch_in(
        &lan.s,
        &format!(
            "{SOURCE} ! videoipsink name=sink source-name=CAM announce=false port={SENDER_PORT}"
        ),
    );
    let rx = launch_in(
        &lan.r,
        &format!(
            "videoipsrc name=src sender-address={S} sender-port={SENDER_PORT} ! {}",
            receiver_sink()
        ),
    );
    forged_reports(&lan, &tx, &rx, "named sender");
}

/// A named sender with `max-receivers=4`; SUBSCRIBEs forged from 64 addresses of the
/// victim's network, each renewed every second, from 1 s before a real receiver subscribes
/// and all the while after: R gets at least 90 % of the frames over the 5 s after its first
/// second.
#[test]
fn forged_leases_cannot_fill_max_receivers() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(lan) = Lan::new("atmax") else {
        return;
    };
    let tx = launch_in(
        &lan.s,
        &format!(
            "{SOURCE} ! videoipsink name=sink source-name=CAM announce=false \
             port={SENDER_PORT} max-receivers=4"
        ),
    );
    let offered_at = offered(&tx, "sink");
    let victim = Victim::new(&lan.v, 5004..5004, 5004..5005);
    let forger = Arc::new(Mutex::new(Forger::new(&lan.a)));
    let f = forger.clone();
    let attack = Worker::spawn(move |stop, end| {
        let mut round = 0u32;
        let start = Instant::now();
        while Worker::running(stop, end) {
            if let Ok(mut f) = f.lock() {
                for host in 1..=64u8 {
                    let d = subscribe(0x5eed_1000 + u64::from(host), round);
                    f.send(
                        sock(Ipv4Addr::new(10, 215, 1, host), 5004),
                        sock(S, SENDER_PORT),
                        &d,
                    );
                }
            }
            round += 1;
            let next = start + Duration::from_secs(1) * round;
            while Worker::running(stop, end) && Instant::now() < next {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    });
    std::thread::sleep(Duration::from_secs(1));
    let rx = launch_in(
        &lan.r,
        &format!(
            "videoipsrc name=src sender-address={S} sender-port={SENDER_PORT} ! {}",
            receiver_sink()
        ),
    );
    let subscribed = Instant::now();
    let rendered_at = rendered(&rx, "out");
    let from = subscribed + Duration::from_secs(1);
    let to = from + Duration::from_secs(5);
    std::thread::sleep(to.saturating_duration_since(Instant::now()) + Duration::from_millis(200));
    drop(attack);
    let kept = Kept::measure(&offered_at, &rendered_at, from, to);
    let (st, rs) = (stats(&tx, "sink"), stats(&rx, "src"));
    let (got, _, _) = victim.got();
    let forged = forger
        .lock()
        .map(|f| (f.bytes, f.datagrams))
        .unwrap_or((0, 0));
    eprintln!(
        "forged leases, max-receivers=4: R {kept}; {} SUBSCRIBEs forged ({} bytes) from 64 \
         addresses, which got {got} bytes; sender: {} subscribers, {} refused; R: {} frames \
         complete",
        forged.1,
        forged.0,
        stat(&st, "subscribers"),
        stat(&st, "subscribers-refused"),
        stat(&rs, "frames-complete"),
    );
    assert!(kept.share() >= 0.9, "R: {kept}\n{st}");
}
