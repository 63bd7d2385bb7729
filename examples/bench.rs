// SPDX-License-Identifier: MPL-2.0
//! Performance benchmark: videoip against RTP (RFC 4175 raw video), and the socket layer
//! alone, on this machine over 127.0.0.1.
//!
//! ```text
//! cargo run --release --example bench -- [--cases all|none|1080p-rt,1080p-rt-burst,1080p-max,2160p-rt,2160p-rt-burst,2160p-max]
//!     [--transports videoip,rtp] [--frames 600] [--seconds 10] [--net-seconds 3]
//! ```
//!
//! The whole default run takes about two minutes and prints a table at the end.
//!
//! # 1. Transports through GStreamer
//!
//! For each case (1080p60 or 2160p60 UYVY; sent in real time, "rt", or as fast as possible,
//! "max") and each transport, the bench starts itself again twice: a receiver process, then a
//! sender process. Both register the plugin statically (the one built into the bench;
//! GST_PLUGIN_PATH is removed from their environment). The pipelines are:
//!
//! | transport | sender | receiver |
//! |-----------|--------|----------|
//! | videoip | `appsrc ! videoipsink mtu=1500 pacing=frame\|none` | `videoipsrc ! appsink` |
//! | rtp | `appsrc ! rtpvrawpay mtu=1500 ! udpsink` | `udpsrc caps=… ! rtpvrawdepay ! appsink` |
//!
//! Both senders get a 32 MiB send buffer and both receivers a 32 MiB receive buffer; sinks
//! run with `sync=false`. The rt cases use `pacing=frame` for videoip, the rt-burst and max
//! cases `pacing=none`; rtpvrawpay sends each frame as fast as it can either way. videoipsink and
//! videoipsrc use UDP GSO and GRO where the kernel offers them; udpsink and udpsrc do not.
//!
//! **Source.** The same for both transports and almost free, so that only the transport is
//! measured: `appsrc` (live, time format, blocking, at most 2 queued buffers) fed from a ring
//! of [`RING`] frames, each filled once with a pattern that depends on its ring index
//! ([`pattern_word`]). Just before frame n is pushed, its ring buffer gets the frame number
//! and CLOCK_MONOTONIC in its first 16 bytes (if the buffer is still in use downstream, a
//! copy is stamped instead, and counted). In rt mode frame n is pushed at start + n/60 s; in
//! max mode at once, so the sender runs as fast as back-pressure lets it. PTS is n/60 s.
//!
//! **Delivered.** The receiver's appsink checks every frame: the stamp must name a frame
//! later than the last intact one, and one 8-byte word in every KiB must be the pattern's.
//! Every datagram of either transport covers such a word, and once a buffer is done with,
//! its check words are overwritten with a value no frame carries, so a pooled buffer that
//! comes back with a datagram missing fails too. Every 10th buffer is compared in full. Only
//! frames that pass count as delivered: rtpvrawdepay pushes incomplete frames when datagrams
//! are lost ("damaged"), videoipsrc drops them. **Latency**: receiver's CLOCK_MONOTONIC at
//! appsink minus the sender's stamp (one clock for both processes). videoip's rt latency is
//! by design at least the pacing spread (`pacing=frame` spreads each frame over part of its
//! duration, see `src/pacer.rs`); rt-burst shows the latency without pacing.
//! In max mode latency is mostly time queued behind earlier frames.
//!
//! **CPU** of each process comes from `wait4()` (user + system). Subtracted from it is what
//! the child measures as not transport work: its CPU before streaming starts (GStreamer
//! init, pipelines, filling the ring) and the bench's own work while streaming (the
//! receiver's frame checks, shown in the details, and the sender's rare ring copies). Without
//! IRQ time accounting (the usual kernel build) softirq work is charged to the process it
//! interrupts; on loopback the receive path up to the socket queue runs in the sending
//! process, so "tx" includes part of what a network would charge the receiving machine.
//! Softirq work deferred to `ksoftirqd` is charged to neither and shown in the details.
//! **Wall** runs from the first frame pushed to the last buffer received (or the sender's end
//! of stream, if later); **fps** and **Gbit/s** (frame bytes only, no headers) count delivered
//! frames over it; **cores** is the CPU of both processes over it.
//!
//! **Loopback flatters GSO.** The loopback device takes 64 KiB packets, so a GSO send is never
//! cut into 1500-byte datagrams, and with GRO the receiver gets it whole: videoip moves ~44
//! datagrams per packet through the kernel here, while over a NIC the kernel (or a NIC with
//! UDP segmentation offload) cuts them and the receiving NIC path coalesces them again. RTP
//! pays the kernel's per-datagram cost on loopback as it would on a network.
//!
//! # 2. The socket layer alone
//!
//! Two threads, no GStreamer, 1472-byte UDP payloads (the MTU of 1500 minus IPv4 and UDP
//! headers), 32 MiB socket buffers: a sender moving datagrams as fast as it can for
//! `--net-seconds`, and a receiver draining them. Three ways: `gstvideoip::net` as the
//! elements use it (`SendBatch` with UDP GSO, `RecvBatch` on a socket with UDP GRO),
//! `gstvideoip::net` with neither (plain `sendmmsg`/`recvmmsg`), and `std::net::UdpSocket`
//! (one system call per datagram). Received datagrams are counted as bytes / 1472, whatever
//! the kernel coalesced. The received rate is what the kernel moves on this machine, the
//! ceiling for the pipelines; CPU is per thread (CLOCK_THREAD_CPUTIME_ID).
//!
//! Every wait is bounded: children that overrun are killed, and a run that fails is reported
//! as failed while the others go on. The kernel's UDP receive-buffer drop counter
//! (`RcvbufErrors`, system-wide, one per packet: a GSO packet counts once) is shown per run.

use gst::prelude::*;
use std::collections::HashMap;
use std::fmt::{Display, Write as _};
use std::io::{BufRead, Write as _};
use std::process::{ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

/// Frames in the sender's ring: enough that a buffer is free again when its turn comes.
const RING: usize = 8;
/// Frame rate of every case.
const FPS: u64 = 60;
/// IP MTU of both transports.
const MTU: u32 = 1500;
/// UDP payload of the socket-layer test: an MTU of 1500 minus 20 (IPv4) and 8 (UDP).
const NET_PAYLOAD: usize = 1472;
/// Socket buffers of both ends, both transports.
const SOCKET_BUFFER: usize = 32 << 20;
/// One check word every this many bytes; below the payload of any datagram.
const CHECK_STRIDE: usize = 1024;
/// Every this many received frames, one is compared in full.
const FULL_CHECK_EVERY: u64 = 10;
/// The receiver stops this long after the last frame once the sender has finished.
const RX_IDLE: Duration = Duration::from_secs(1);

type Result<T> = std::result::Result<T, String>;

/// Adds what was being done to an error.
trait Context<T> {
    fn context(self, what: impl Display) -> Result<T>;
}

impl<T, E: Display> Context<T> for std::result::Result<T, E> {
    fn context(self, what: impl Display) -> Result<T> {
        self.map_err(|e| format!("{what}: {e}"))
    }
}

impl<T> Context<T> for Option<T> {
    fn context(self, what: impl Display) -> Result<T> {
        self.ok_or_else(|| what.to_string())
    }
}

// ---------------------------------------------------------------------------------------
// Clocks, CPU time, the frame pattern
// ---------------------------------------------------------------------------------------

fn clock_ns(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into a timespec we own; both clocks used here exist on
    // every Linux, so it cannot fail.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// CLOCK_MONOTONIC in ns: the same clock in every process of this machine.
fn mono_ns() -> u64 {
    clock_ns(libc::CLOCK_MONOTONIC)
}

/// CPU time of the calling thread in ns.
fn thread_cpu_ns() -> u64 {
    clock_ns(libc::CLOCK_THREAD_CPUTIME_ID)
}

fn rusage_us(ru: &libc::rusage) -> u64 {
    let tv = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// CPU time (user + system) of this process and its reaped children, in µs.
fn process_cpu_us() -> u64 {
    let mut total = 0;
    for who in [libc::RUSAGE_SELF, libc::RUSAGE_CHILDREN] {
        // SAFETY: getrusage writes into a zeroed rusage we own.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        if unsafe { libc::getrusage(who, &mut ru) } == 0 {
            total += rusage_us(&ru);
        }
    }
    total
}

/// Word `k` (bytes 8k..8k+8, little endian) of the frame pattern of ring buffer `ring`.
/// Distinct for every word and every ring index; ring index [`RING`] is never sent and
/// serves as poison.
fn pattern_word(k: usize, ring: usize) -> u64 {
    (k as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ (ring as u64 + 1).wrapping_mul(0xD1B5_4A32_D192_ED03)
}

fn fill_pattern(buf: &mut [u8], ring: usize) {
    for (k, chunk) in buf.chunks_mut(8).enumerate() {
        chunk.copy_from_slice(&pattern_word(k, ring).to_le_bytes()[..chunk.len()]);
    }
}

/// True if word `k` of `data` (possibly a short last word) is the pattern's.
fn word_ok(data: &[u8], k: usize, ring: usize) -> bool {
    let start = k * 8;
    let end = (start + 8).min(data.len());
    data[start..end] == pattern_word(k, ring).to_le_bytes()[..end - start]
}

/// Indices of the check words: the last word, and one every [`CHECK_STRIDE`] bytes from
/// the first KiB on (words 0 and 1 hold the stamp).
fn check_words(len: usize) -> impl Iterator<Item = usize> {
    let last = len.div_ceil(8).saturating_sub(1);
    (CHECK_STRIDE / 8..last)
        .step_by(CHECK_STRIDE / 8)
        .chain(std::iter::once(last))
}

/// True if the whole frame past the stamp is the pattern of ring buffer `ring`. Written to
/// compile to a tight loop: word-at-a-time, differences OR-ed together.
fn frame_ok(data: &[u8], ring: usize) -> bool {
    let (words, tail) = data.split_at(data.len() / 8 * 8);
    let mut diff = 0u64;
    for (k, c) in words.chunks_exact(8).enumerate().skip(2) {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        diff |= u64::from_le_bytes(w) ^ pattern_word(k, ring);
    }
    diff == 0 && tail == &pattern_word(words.len() / 8, ring).to_le_bytes()[..tail.len()]
}

fn frame_bytes(width: u32, height: u32) -> usize {
    width as usize * height as usize * 2 // UYVY: 2 bytes per pixel
}

// ---------------------------------------------------------------------------------------
// Command line
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transport {
    VideoIp,
    Rtp,
}

impl Transport {
    fn name(self) -> &'static str {
        match self {
            Transport::VideoIp => "videoip",
            Transport::Rtp => "rtp",
        }
    }

    fn parse(s: &str) -> Result<Self> {
        match s {
            "videoip" => Ok(Transport::VideoIp),
            "rtp" => Ok(Transport::Rtp),
            _ => Err(format!("unknown transport \"{s}\" (videoip, rtp)")),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Case {
    name: &'static str,
    width: u32,
    height: u32,
    realtime: bool,
    /// videoipsink pacing=frame (else none); rtpvrawpay never paces.
    paced: bool,
}

const CASES: [Case; 6] = [
    Case {
        name: "1080p-rt",
        width: 1920,
        height: 1080,
        realtime: true,
        paced: true,
    },
    Case {
        name: "1080p-rt-burst",
        width: 1920,
        height: 1080,
        realtime: true,
        paced: false,
    },
    Case {
        name: "1080p-max",
        width: 1920,
        height: 1080,
        realtime: false,
        paced: false,
    },
    Case {
        name: "2160p-rt",
        width: 3840,
        height: 2160,
        realtime: true,
        paced: true,
    },
    Case {
        name: "2160p-rt-burst",
        width: 3840,
        height: 2160,
        realtime: true,
        paced: false,
    },
    Case {
        name: "2160p-max",
        width: 3840,
        height: 2160,
        realtime: false,
        paced: false,
    },
];

/// The bench's own options.
#[derive(Debug, Clone)]
struct BenchOpts {
    cases: Vec<Case>,
    transports: Vec<Transport>,
    frames: u64,
    seconds: u64,
    net_seconds: u64,
}

/// Options of a sender or receiver child.
#[derive(Debug, Clone)]
struct ChildOpts {
    transport: Transport,
    width: u32,
    height: u32,
    realtime: bool,
    paced: bool,
    frames: u64,
    seconds: u64,
    port: u16,
}

enum Role {
    Bench(BenchOpts),
    Sender(ChildOpts),
    Receiver(ChildOpts),
}

const USAGE: &str = "usage: bench [--cases all|none|LIST] [--transports videoip,rtp] \
[--frames N] [--seconds S] [--net-seconds S]
  --cases        comma-separated from 1080p-rt,1080p-rt-burst,1080p-max,2160p-rt,2160p-rt-burst,2160p-max (default all)
  --transports   comma-separated from videoip,rtp (default both)
  --frames       frames per run (default 600: 10 s in real time)
  --seconds      cap on the sending time of each run (default 10)
  --net-seconds  duration of each socket-layer test; 0 skips them (default 3)";

fn parse_args(args: &[String]) -> Result<Role> {
    let mut bench = BenchOpts {
        cases: CASES.to_vec(),
        transports: vec![Transport::VideoIp, Transport::Rtp],
        frames: 600,
        seconds: 10,
        net_seconds: 3,
    };
    let mut child = ChildOpts {
        transport: Transport::VideoIp,
        width: 1920,
        height: 1080,
        realtime: true,
        paced: true,
        frames: 600,
        seconds: 10,
        port: 0,
    };
    let mut role = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "--help" || a == "-h" {
            return Err(USAGE.into());
        }
        let v = it.next().context(format!("{a} needs a value\n{USAGE}"))?;
        let num = |v: &str| v.parse::<u64>().context(format!("{a}: not a number"));
        match a.as_str() {
            "--cases" => {
                bench.cases = match v.as_str() {
                    "all" => CASES.to_vec(),
                    "none" => Vec::new(),
                    list => list
                        .split(',')
                        .map(|n| {
                            CASES
                                .iter()
                                .find(|c| c.name == n.trim())
                                .copied()
                                .context(format!("unknown case \"{n}\"\n{USAGE}"))
                        })
                        .collect::<Result<_>>()?,
                }
            }
            "--transports" => {
                bench.transports = v
                    .split(',')
                    .map(|t| Transport::parse(t.trim()))
                    .collect::<Result<_>>()?
            }
            "--frames" => {
                bench.frames = num(v)?.max(1);
                child.frames = bench.frames;
            }
            "--seconds" => {
                bench.seconds = num(v)?.max(1);
                child.seconds = bench.seconds;
            }
            "--net-seconds" => bench.net_seconds = num(v)?,
            // The options below are how the bench starts its children.
            "--role" => role = Some(v.clone()),
            "--transport" => child.transport = Transport::parse(v)?,
            "--width" => child.width = u32::try_from(num(v)?).context("--width")?,
            "--height" => child.height = u32::try_from(num(v)?).context("--height")?,
            "--mode" => {
                child.realtime = match v.as_str() {
                    "rt" => true,
                    "max" => false,
                    _ => return Err(format!("--mode: rt or max, not {v}")),
                }
            }
            "--port" => child.port = u16::try_from(num(v)?).context("--port")?,
            "--pacing" => {
                child.paced = match v.as_str() {
                    "frame" => true,
                    "none" => false,
                    _ => return Err(format!("--pacing: frame or none, not {v}")),
                }
            }
            _ => return Err(format!("unknown option {a}\n{USAGE}")),
        }
    }
    match role.as_deref() {
        None => Ok(Role::Bench(bench)),
        Some("sender") => Ok(Role::Sender(child)),
        Some("receiver") => Ok(Role::Receiver(child)),
        Some(r) => Err(format!("unknown role {r}")),
    }
}

// ---------------------------------------------------------------------------------------
// Children: shared helpers
// ---------------------------------------------------------------------------------------

fn gst_init() -> Result<()> {
    gst::init().context("GStreamer does not initialize")?;
    gstvideoip::plugin_register_static().context("the videoip plugin does not register")
}

fn launch(desc: &str) -> Result<gst::Pipeline> {
    gst::parse::launch(desc)
        .context(format!("pipeline \"{desc}\""))?
        .downcast::<gst::Pipeline>()
        .map_err(|_| format!("\"{desc}\" is not a pipeline"))
}

/// Sets `pipeline` to PLAYING. Both pipelines are live, so the change completes only when
/// the first buffer reaches the sink; errors after this show up on the bus.
fn start(pipeline: &gst::Pipeline, what: &str) -> Result<()> {
    pipeline
        .set_state(gst::State::Playing)
        .map_err(|_| format!("the {what} pipeline does not start"))?;
    match bus_error(pipeline) {
        Some(e) => Err(format!("the {what} pipeline does not start: {e}")),
        None => Ok(()),
    }
}

/// The first error on the bus, if any, as text.
fn bus_error(pipeline: &gst::Pipeline) -> Option<String> {
    let bus = pipeline.bus()?;
    let msg = bus.pop_filtered(&[gst::MessageType::Error])?;
    match msg.view() {
        gst::MessageView::Error(e) => Some(format!(
            "{} ({})",
            e.error(),
            e.debug().map(|d| d.to_string()).unwrap_or_default()
        )),
        _ => None,
    }
}

fn stat(s: &gst::Structure, name: &str) -> u64 {
    s.get::<u64>(name).unwrap_or(0)
}

fn video_caps(width: u32, height: u32) -> String {
    format!(
        "video/x-raw,format=UYVY,width={width},height={height},framerate={FPS}/1,\
         pixel-aspect-ratio=1/1,interlace-mode=progressive,colorimetry=bt709"
    )
}

/// The caps rtpvrawpay puts on its output for [`video_caps`] (checked with
/// `gst-launch-1.0 -v`), minus the random ssrc, timestamp-offset and seqnum-offset.
fn rtp_caps(width: u32, height: u32) -> String {
    format!(
        "application/x-rtp,media=(string)video,clock-rate=(int)90000,encoding-name=(string)RAW,\
         sampling=(string)YCbCr-4:2:2,depth=(string)8,width=(string){width},\
         height=(string){height},colorimetry=(string)BT709-2,payload=(int)96,\
         a-framerate=(string){FPS}"
    )
}

// ---------------------------------------------------------------------------------------
// Sender child
// ---------------------------------------------------------------------------------------

/// Stamps `buf` as frame `n`: number and CLOCK_MONOTONIC in the first 16 bytes, PTS and
/// duration. Fails if the buffer or its memory is shared.
fn stamp(buf: &mut gst::Buffer, n: u64) -> bool {
    let Some(b) = buf.get_mut() else {
        return false;
    };
    let frame = 1_000_000_000 / FPS;
    b.set_pts(gst::ClockTime::from_nseconds(n * frame));
    b.set_duration(gst::ClockTime::from_nseconds(frame));
    let Ok(mut map) = b.map_writable() else {
        return false;
    };
    map[0..8].copy_from_slice(&n.to_le_bytes());
    map[8..16].copy_from_slice(&mono_ns().to_le_bytes());
    true
}

fn run_sender(o: &ChildOpts) -> Result<()> {
    gst_init()?;
    let len = frame_bytes(o.width, o.height);
    let desc = match o.transport {
        Transport::VideoIp => format!(
            "appsrc name=src ! videoipsink name=sink host=127.0.0.1 port={} sync=false \
             mtu={MTU} pacing={} buffer-size={SOCKET_BUFFER}",
            o.port,
            if o.paced { "frame" } else { "none" }
        ),
        Transport::Rtp => format!(
            "appsrc name=src ! rtpvrawpay mtu={MTU} ! udpsink name=sink host=127.0.0.1 \
             port={} sync=false buffer-size={SOCKET_BUFFER}",
            o.port
        ),
    };
    let pipeline = launch(&desc)?;
    let appsrc = pipeline
        .by_name("src")
        .context("no appsrc")?
        .downcast::<gst_app::AppSrc>()
        .map_err(|_| "src is not an appsrc")?;
    let caps = video_caps(o.width, o.height)
        .parse::<gst::Caps>()
        .context("video caps")?;
    appsrc.set_caps(Some(&caps));
    appsrc.set_format(gst::Format::Time);
    appsrc.set_is_live(true);
    appsrc.set_block(true);
    appsrc.set_max_buffers(2);
    appsrc.set_max_bytes(0);

    let mut ring = Vec::with_capacity(RING);
    for r in 0..RING {
        let mut buf = gst::Buffer::with_size(len).context("allocate a frame")?;
        {
            let b = buf.get_mut().context("a new buffer is writable")?;
            let mut map = b.map_writable().context("map a new frame")?;
            fill_pattern(&mut map, r);
        }
        ring.push(buf);
    }
    start(&pipeline, "sender")?;
    let bus = pipeline.bus().context("no bus")?;

    let setup_cpu_us = process_cpu_us();
    let mut copies = 0u64;
    let mut copy_cpu_ns = 0u64;
    let mut pushed = 0u64;
    let t_first = mono_ns();
    let start_at = Instant::now();
    let cap = Duration::from_secs(o.seconds);
    let mut push_error = None;
    for n in 0..o.frames {
        let due = Duration::from_nanos(n * 1_000_000_000 / FPS);
        if (o.realtime && due >= cap) || start_at.elapsed() >= cap {
            break;
        }
        if o.realtime {
            if let Some(wait) = due.checked_sub(start_at.elapsed()) {
                std::thread::sleep(wait);
            }
        }
        let slot = n as usize % RING;
        if !stamp(&mut ring[slot], n) {
            // Still in use downstream: work on a copy (bench work, not transport work).
            let t0 = thread_cpu_ns();
            ring[slot] = ring[slot].copy_deep().context("copy a frame")?;
            copy_cpu_ns += thread_cpu_ns() - t0;
            copies += 1;
            if !stamp(&mut ring[slot], n) {
                return Err("a fresh copy of a frame is not writable".into());
            }
        }
        if let Err(e) = appsrc.push_buffer(ring[slot].clone()) {
            push_error = Some(e);
            break;
        }
        pushed += 1;
    }
    let t_last_push = mono_ns();
    if let Some(e) = push_error {
        let detail = bus_error(&pipeline).unwrap_or_default();
        let _ = pipeline.set_state(gst::State::Null);
        return Err(format!("pushing frame {pushed} failed: {e:?} {detail}"));
    }
    appsrc
        .end_of_stream()
        .map_err(|e| format!("end of stream refused: {e:?}"))?;
    let msg = bus.timed_pop_filtered(
        gst::ClockTime::from_seconds(30),
        &[gst::MessageType::Eos, gst::MessageType::Error],
    );
    let t_eos = mono_ns();
    let sink = pipeline.by_name("sink").context("no sink")?;
    let extra = match o.transport {
        Transport::VideoIp => {
            let s = sink.property::<gst::Structure>("stats");
            format!(
                " frames_sent={} datagrams_sent={} send_errors={}",
                stat(&s, "frames-sent"),
                stat(&s, "datagrams-sent"),
                stat(&s, "send-errors")
            )
        }
        Transport::Rtp => String::new(),
    };
    let _ = pipeline.set_state(gst::State::Null);
    match msg.as_ref().map(|m| m.view()) {
        Some(gst::MessageView::Eos(_)) => {}
        Some(gst::MessageView::Error(e)) => return Err(format!("sender: {}", e.error())),
        _ => return Err("sender: no end of stream within 30 s".into()),
    }
    println!(
        "result pushed={pushed} copies={copies} t_first_ns={t_first} t_last_push_ns={t_last_push} \
         t_eos_ns={t_eos} setup_cpu_us={setup_cpu_us} excluded_cpu_us={}{extra}",
        copy_cpu_ns / 1000
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Receiver child
// ---------------------------------------------------------------------------------------

/// What the receiver's appsink saw.
#[derive(Debug, Default)]
struct RxState {
    frame_len: usize,
    total_frames: u64,
    /// Buffers that reached appsink.
    buffers: u64,
    /// Buffers that passed every check.
    intact: u64,
    /// Buffers that failed a check (wrong size, stamp, check word or full comparison).
    damaged: u64,
    /// Buffers compared in full, and how many of those differed.
    verified: u64,
    mismatched: u64,
    /// Buffers that could not be mapped writable, so their check words were not poisoned.
    unpoisoned: u64,
    /// The last buffer checked, held until the next one arrives, then poisoned.
    pending: Option<gst::Buffer>,
    last_frame_no: Option<u64>,
    latencies_ns: Vec<u64>,
    first_ns: u64,
    last_ns: u64,
    /// CLOCK_MONOTONIC of the last buffer of any kind (for the idle stop).
    last_activity_ns: u64,
    /// CPU spent checking frames (bench work, excluded from the receiver's CPU).
    check_cpu_ns: u64,
}

impl RxState {
    /// Checks one buffer that arrived at `now` (CLOCK_MONOTONIC ns). The previous buffer,
    /// which upstream has let go of by now, gets its stamp and check words poisoned.
    fn on_buffer(&mut self, buffer: gst::Buffer, now: u64) {
        let t0 = thread_cpu_ns();
        self.buffers += 1;
        self.last_activity_ns = now;
        if let Some(prev) = self.pending.take() {
            self.poison(prev);
        }
        let full = (self.buffers - 1).is_multiple_of(FULL_CHECK_EVERY);
        let verdict = match buffer.map_readable() {
            Ok(map) => self.check(&map, full),
            Err(_) => None,
        };
        self.pending = Some(buffer);
        match verdict {
            Some((n, sent_ns)) => {
                self.intact += 1;
                self.last_frame_no = Some(n);
                self.latencies_ns.push(now.saturating_sub(sent_ns));
                if self.first_ns == 0 {
                    self.first_ns = now;
                }
                self.last_ns = now;
            }
            None => self.damaged += 1,
        }
        self.check_cpu_ns += thread_cpu_ns() - t0;
    }

    /// Overwrites the stamp and check words of a buffer with the poison pattern, so that if
    /// its pool hands it out again, it fails the check unless new data covers them all. A
    /// buffer still shared cannot be written; it is counted.
    fn poison(&mut self, mut buffer: gst::Buffer) {
        let map = buffer.get_mut().and_then(|b| b.map_writable().ok());
        let Some(mut map) = map.filter(|m| m.len() >= 16) else {
            self.unpoisoned += 1;
            return;
        };
        for k in [0, 1].into_iter().chain(check_words(map.len())) {
            let start = k * 8;
            let end = (start + 8).min(map.len());
            map[start..end].copy_from_slice(&pattern_word(k, RING).to_le_bytes()[..end - start]);
        }
    }

    /// The frame number and send time of an intact frame, None for a damaged one.
    fn check(&mut self, data: &[u8], full: bool) -> Option<(u64, u64)> {
        if data.len() != self.frame_len || data.len() < 16 {
            return None;
        }
        let word = |i: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&data[i * 8..i * 8 + 8]);
            u64::from_le_bytes(w)
        };
        let (n, sent_ns) = (word(0), word(1));
        let stamp_ok = n < self.total_frames && self.last_frame_no.is_none_or(|l| n > l);
        let ring = (n % RING as u64) as usize;
        let words_ok = stamp_ok && check_words(data.len()).all(|k| word_ok(data, k, ring));
        let mut ok = words_ok;
        if full {
            self.verified += 1;
            if !(stamp_ok && frame_ok(data, ring)) {
                self.mismatched += 1;
                ok = false;
            }
        }
        ok.then_some((n, sent_ns))
    }
}

fn percentile_us(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1] as f64 / 1000.0
}

fn run_receiver(o: &ChildOpts) -> Result<()> {
    gst_init()?;
    let desc = match o.transport {
        Transport::VideoIp => format!(
            "videoipsrc name=src address=127.0.0.1 port={} buffer-size={SOCKET_BUFFER} \
             ! appsink name=sink",
            o.port
        ),
        Transport::Rtp => format!(
            "udpsrc name=src address=127.0.0.1 port={} buffer-size={SOCKET_BUFFER} \
             ! rtpvrawdepay ! appsink name=sink",
            o.port
        ),
    };
    let pipeline = launch(&desc)?;
    let src = pipeline.by_name("src").context("no src")?;
    if o.transport == Transport::Rtp {
        let caps = rtp_caps(o.width, o.height)
            .parse::<gst::Caps>()
            .context("RTP caps")?;
        src.set_property("caps", &caps);
    }
    let appsink = pipeline
        .by_name("sink")
        .context("no appsink")?
        .downcast::<gst_app::AppSink>()
        .map_err(|_| "sink is not an appsink")?;
    appsink.set_property("sync", false);
    appsink.set_property("enable-last-sample", false);
    let state = Arc::new(Mutex::new(RxState {
        frame_len: frame_bytes(o.width, o.height),
        total_frames: o.frames,
        latencies_ns: Vec::with_capacity(o.frames as usize),
        ..RxState::default()
    }));
    let cb_state = state.clone();
    appsink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |sink| {
                let now = mono_ns();
                let sample = sink.pull_sample().map_err(|_| gst::FlowError::Flushing)?;
                let buffer = sample.buffer_owned().ok_or(gst::FlowError::Error)?;
                drop(sample);
                let mut st = cb_state.lock().map_err(|_| gst::FlowError::Error)?;
                st.on_buffer(buffer, now);
                Ok(gst::FlowSuccess::Ok)
            })
            .build(),
    );

    pipeline
        .set_state(gst::State::Ready)
        .map_err(|_| "the receiver cannot open its socket")?;
    let port = match o.transport {
        Transport::VideoIp => u16::try_from(src.property::<i32>("port")).unwrap_or(0),
        Transport::Rtp => o.port,
    };
    start(&pipeline, "receiver")?;
    let setup_cpu_us = process_cpu_us();
    println!("ready port={port}");
    std::io::stdout().flush().context("write to the bench")?;

    // The bench says "stop" (or closes stdin) once the sender has finished.
    let stop_ns = Arc::new(AtomicU64::new(0));
    {
        let stop_ns = stop_ns.clone();
        std::thread::spawn(move || {
            let stdin = std::io::stdin();
            for line in stdin.lock().lines() {
                match line {
                    Ok(l) if l.trim() == "stop" => break,
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
            stop_ns.store(mono_ns(), Ordering::SeqCst);
        });
    }

    let bus = pipeline.bus().context("no bus")?;
    let hard_deadline = Instant::now() + Duration::from_secs(o.seconds + 60);
    let outcome: Result<&str> = loop {
        let msg = bus.timed_pop_filtered(
            gst::ClockTime::from_mseconds(50),
            &[gst::MessageType::Eos, gst::MessageType::Error],
        );
        match msg.as_ref().map(|m| m.view()) {
            Some(gst::MessageView::Eos(_)) => break Ok("eos"),
            Some(gst::MessageView::Error(e)) => break Err(format!("receiver: {}", e.error())),
            _ => {}
        }
        let stopped = stop_ns.load(Ordering::SeqCst);
        if stopped != 0 {
            let last = state.lock().map(|s| s.last_activity_ns).unwrap_or(0);
            if mono_ns().saturating_sub(last.max(stopped)) > RX_IDLE.as_nanos() as u64 {
                break Ok("idle");
            }
        }
        if Instant::now() > hard_deadline {
            break Err("receiver: the stream did not end".into());
        }
    };
    let extra = match o.transport {
        Transport::VideoIp => {
            let s = src.property::<gst::Structure>("stats");
            format!(
                " frames_dropped={} datagrams_late={} datagrams_lost={} datagrams_received={} \
                 largest_burst={} mean_burst={:.1}",
                stat(&s, "frames-dropped"),
                stat(&s, "datagrams-late"),
                stat(&s, "datagrams-lost"),
                stat(&s, "datagrams-received"),
                stat(&s, "largest-burst"),
                stat(&s, "datagrams-received") as f64 / stat(&s, "receives").max(1) as f64
            )
        }
        Transport::Rtp => String::new(),
    };
    let _ = pipeline.set_state(gst::State::Null);
    let how = outcome?;
    let mut st = state.lock().map_err(|_| "receiver state poisoned")?;
    st.pending = None;
    st.latencies_ns.sort_unstable();
    let l = &st.latencies_ns;
    println!(
        "result end={how} buffers={} intact={} damaged={} verified={} mismatched={} \
         unpoisoned={} lat_p50_us={:.0} lat_p90_us={:.0} lat_p99_us={:.0} lat_max_us={:.0} \
         t_first_ns={} t_last_ns={} t_last_any_ns={} setup_cpu_us={setup_cpu_us} \
         excluded_cpu_us={}{extra}",
        st.buffers,
        st.intact,
        st.damaged,
        st.verified,
        st.mismatched,
        st.unpoisoned,
        percentile_us(l, 50.0),
        percentile_us(l, 90.0),
        percentile_us(l, 99.0),
        percentile_us(l, 100.0),
        st.first_ns,
        st.last_ns,
        st.last_activity_ns,
        st.check_cpu_ns / 1000
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Bench: child processes
// ---------------------------------------------------------------------------------------

/// A child process of the bench, reaped with `wait4()` for its CPU time, and killed if it
/// is dropped before it has been reaped.
struct Proc {
    name: String,
    pid: libc::pid_t,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
    reaped: bool,
}

/// How a child ended.
struct Exit {
    /// CPU (user + system) of the whole process, in µs.
    cpu_us: u64,
    success: bool,
    /// What went wrong, if it did not succeed.
    detail: String,
}

impl Proc {
    fn spawn(name: &str, args: &[String]) -> Result<Proc> {
        let exe = std::env::current_exe().context("locate the bench executable")?;
        // The children register the plugin built into this executable; a plugin directory in
        // GST_PLUGIN_PATH would offer a second, possibly different, videoip.
        let mut child = Command::new(&exe)
            .args(args)
            .env_remove("GST_PLUGIN_PATH")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context(format!("start the {name}"))?;
        let pid = libc::pid_t::try_from(child.id()).context("pid")?;
        let stdout = child.stdout.take().context("child stdout")?;
        let stdin = child.stdin.take();
        // The Child handle is dropped without waiting: the process is reaped by wait4 below.
        drop(child);
        let (tx, rx) = mpsc::channel();
        let tag = name.to_owned();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if line.starts_with("ready ") || line.starts_with("result ") {
                    if tx.send(line).is_err() {
                        break;
                    }
                } else {
                    eprintln!("[{tag}] {line}");
                }
            }
        });
        Ok(Proc {
            name: name.to_owned(),
            pid,
            stdin,
            lines: rx,
            reaped: false,
        })
    }

    /// The next line starting with `prefix`, parsed as `key=value` pairs.
    fn wait_line(&self, prefix: &str, timeout: Duration) -> Result<HashMap<String, String>> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    if let Some(rest) = line.strip_prefix(prefix) {
                        return Ok(rest
                            .split_whitespace()
                            .filter_map(|kv| kv.split_once('='))
                            .map(|(k, v)| (k.to_owned(), v.to_owned()))
                            .collect());
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    return Err(format!(
                        "no \"{prefix}\" line from the {} within {timeout:?}",
                        self.name
                    ))
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    return Err(format!(
                        "the {} ended without a \"{prefix}\" line",
                        self.name
                    ))
                }
            }
        }
    }

    /// Asks a receiver to stop once it is idle.
    fn tell_stop(&mut self) {
        if let Some(mut stdin) = self.stdin.take() {
            let _ = stdin.write_all(b"stop\n");
            // Dropping stdin closes it, which also means stop.
        }
    }

    /// Waits for the process to end, killing it once `timeout` has passed.
    fn wait(&mut self, timeout: Duration) -> Result<Exit> {
        let deadline = Instant::now() + timeout;
        let mut killed = false;
        loop {
            let mut status = 0;
            // SAFETY: wait4 writes into a zeroed rusage and an int we own.
            let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
            let flags = if killed { 0 } else { libc::WNOHANG };
            let rc = unsafe { libc::wait4(self.pid, &mut status, flags, &mut ru) };
            if rc == self.pid {
                self.reaped = true;
                let success = !killed && libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
                let detail = if killed {
                    format!("killed after {timeout:?}")
                } else if libc::WIFEXITED(status) {
                    format!("exit status {}", libc::WEXITSTATUS(status))
                } else {
                    format!("signal {}", libc::WTERMSIG(status))
                };
                return Ok(Exit {
                    cpu_us: rusage_us(&ru),
                    success,
                    detail,
                });
            }
            if rc < 0 {
                let e = std::io::Error::last_os_error();
                if e.kind() != std::io::ErrorKind::Interrupted {
                    self.reaped = true;
                    return Err(format!("wait for the {}: {e}", self.name));
                }
                continue;
            }
            if Instant::now() >= deadline {
                // SAFETY: sends a signal to our own, not yet reaped, child.
                unsafe { libc::kill(self.pid, libc::SIGKILL) };
                killed = true;
            } else {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if !self.reaped {
            let mut status = 0;
            // SAFETY: kill and reap our own child, which has not been reaped yet.
            unsafe {
                libc::kill(self.pid, libc::SIGKILL);
                libc::waitpid(self.pid, &mut status, 0);
            }
        }
    }
}

/// The kernel's UDP receive-buffer overflow counter (RcvbufErrors in /proc/net/snmp).
fn udp_rcvbuf_errors() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/net/snmp").ok()?;
    let mut udp = text.lines().filter(|l| l.starts_with("Udp: "));
    let names = udp.next()?;
    let values = udp.next()?;
    let idx = names.split_whitespace().position(|n| n == "RcvbufErrors")?;
    values.split_whitespace().nth(idx)?.parse().ok()
}

/// Machine-wide CPU seconds so far from /proc/stat: (busy, steal). Busy is user, nice,
/// system, irq and softirq of every CPU, whoever ran; steal is time the hypervisor gave
/// to others, which in a VM also inflates the CPU time of whatever was running.
fn machine_cpu_s() -> (f64, f64) {
    // SAFETY: sysconf has no memory arguments.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let text = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(line) = text.lines().find(|l| l.starts_with("cpu ")) else {
        return (0.0, 0.0);
    };
    let f: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|v| v.parse().unwrap_or(0))
        .collect();
    let at = |i: usize| f.get(i).copied().unwrap_or(0) as f64 / hz;
    // user nice system idle iowait irq softirq steal
    (at(0) + at(1) + at(2) + at(5) + at(6), at(7))
}

/// CPU seconds used so far by the kernel's softirq threads (`ksoftirqd/N`): network work
/// that the kernel deferred there is charged to neither process.
fn ksoftirqd_cpu_s() -> f64 {
    // SAFETY: sysconf has no memory arguments.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0.0;
    };
    let mut ticks = 0u64;
    for entry in dir.flatten() {
        let path = entry.path();
        let is_softirqd =
            std::fs::read_to_string(path.join("comm")).is_ok_and(|c| c.starts_with("ksoftirqd/"));
        if !is_softirqd {
            continue;
        }
        // Fields 14 and 15 (utime, stime) follow the ")" that closes the command name.
        if let Ok(stat) = std::fs::read_to_string(path.join("stat")) {
            if let Some((_, rest)) = stat.rsplit_once(')') {
                let f: Vec<&str> = rest.split_whitespace().collect();
                for i in [11, 12] {
                    ticks += f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
                }
            }
        }
    }
    ticks as f64 / hz
}

fn get<T: std::str::FromStr>(m: &HashMap<String, String>, key: &str, who: &str) -> Result<T> {
    m.get(key)
        .context(format!("the {who} did not report {key}"))?
        .parse()
        .map_err(|_| format!("the {who} reported a bad {key}"))
}

/// Results of one case with one transport.
#[derive(Debug, Clone)]
struct Run {
    case: Case,
    transport: Transport,
    sent: u64,
    buffers: u64,
    intact: u64,
    damaged: u64,
    verified: u64,
    mismatched: u64,
    tx_cpu_s: f64,
    rx_cpu_s: f64,
    tx_cpu_raw_s: f64,
    rx_cpu_raw_s: f64,
    /// Frames per second the sender pushed, up to its end of stream.
    tx_fps: f64,
    /// CPU the receiver spent checking frames (not counted in `rx_cpu_s`).
    rx_check_s: f64,
    wall_s: f64,
    lat_us: [f64; 4],
    kernel_drops: Option<u64>,
    softirqd_s: f64,
    /// Machine-wide busy and stolen CPU over the whole run, start-up and idle stop included.
    machine_busy_s: f64,
    steal_s: f64,
    copies: u64,
    notes: String,
}

impl Run {
    fn frame_len(&self) -> usize {
        frame_bytes(self.case.width, self.case.height)
    }
    fn per_frame_ms(&self, cpu_s: f64) -> f64 {
        if self.intact == 0 {
            f64::NAN
        } else {
            cpu_s * 1000.0 / self.intact as f64
        }
    }
    fn total_ms(&self) -> f64 {
        self.per_frame_ms(self.tx_cpu_s + self.rx_cpu_s)
    }
    fn gbps(&self) -> f64 {
        self.intact as f64 * self.frame_len() as f64 * 8.0 / self.wall_s / 1e9
    }
    fn cores(&self) -> f64 {
        (self.tx_cpu_s + self.rx_cpu_s) / self.wall_s
    }
}

fn run_one(case: Case, transport: Transport, o: &BenchOpts) -> Result<Run> {
    let port = match transport {
        Transport::VideoIp => 0, // videoipsrc picks one and reports it
        Transport::Rtp => {
            let probe = std::net::UdpSocket::bind("127.0.0.1:0").context("find a free port")?;
            probe.local_addr().context("find a free port")?.port()
        }
    };
    let common = |role: &str, port: u16| -> Vec<String> {
        [
            "--role",
            role,
            "--transport",
            transport.name(),
            "--width",
            &case.width.to_string(),
            "--height",
            &case.height.to_string(),
            "--mode",
            if case.realtime { "rt" } else { "max" },
            "--pacing",
            if case.paced { "frame" } else { "none" },
            "--frames",
            &o.frames.to_string(),
            "--seconds",
            &o.seconds.to_string(),
            "--port",
            &port.to_string(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let drops_before = udp_rcvbuf_errors();
    let softirqd_before = ksoftirqd_cpu_s();
    let machine_before = machine_cpu_s();
    let mut rx = Proc::spawn("receiver", &common("receiver", port))?;
    let ready = rx.wait_line("ready ", Duration::from_secs(30))?;
    let port: u16 = get(&ready, "port", "receiver")?;
    let mut tx = Proc::spawn("sender", &common("sender", port))?;
    let tx_exit = tx.wait(Duration::from_secs(o.seconds + 60))?;
    let tx_res = if tx_exit.success {
        tx.wait_line("result ", Duration::from_secs(5))
    } else {
        Err(format!("the sender failed ({})", tx_exit.detail))
    };
    rx.tell_stop();
    let rx_exit = rx.wait(Duration::from_secs(30))?;
    let tx_res = tx_res?;
    if !rx_exit.success {
        return Err(format!("the receiver failed ({})", rx_exit.detail));
    }
    let rx_res = rx.wait_line("result ", Duration::from_secs(5))?;
    let drops = drops_before
        .zip(udp_rcvbuf_errors())
        .map(|(a, b)| b.saturating_sub(a));
    let softirqd_s = ksoftirqd_cpu_s() - softirqd_before;
    let machine_after = machine_cpu_s();
    let machine_busy_s = machine_after.0 - machine_before.0;
    let steal_s = machine_after.1 - machine_before.1;

    // (transport CPU, whole process CPU, bench work while streaming), in seconds.
    let cpu = |exit: &Exit, res: &HashMap<String, String>, who: &str| -> Result<(f64, f64, f64)> {
        let setup: u64 = get(res, "setup_cpu_us", who)?;
        let excluded: u64 = get(res, "excluded_cpu_us", who)?;
        Ok((
            exit.cpu_us.saturating_sub(setup + excluded) as f64 / 1e6,
            exit.cpu_us as f64 / 1e6,
            excluded as f64 / 1e6,
        ))
    };
    let (tx_cpu_s, tx_cpu_raw_s, _) = cpu(&tx_exit, &tx_res, "sender")?;
    let (rx_cpu_s, rx_cpu_raw_s, rx_check_s) = cpu(&rx_exit, &rx_res, "receiver")?;
    let t_first: u64 = get(&tx_res, "t_first_ns", "sender")?;
    let t_eos: u64 = get(&tx_res, "t_eos_ns", "sender")?;
    let sent: u64 = get(&tx_res, "pushed", "sender")?;
    let tx_fps = sent as f64 / (t_eos.saturating_sub(t_first).max(1) as f64 / 1e9);
    let t_last: u64 = get(&rx_res, "t_last_any_ns", "receiver")?;
    let wall_s = t_last.max(t_eos).saturating_sub(t_first).max(1) as f64 / 1e9;
    let mut notes = String::new();
    match transport {
        Transport::VideoIp => {
            let _ = write!(
                notes,
                "sink frames-sent {} send-errors {}; src frames-dropped {} datagrams-late {} \
                 datagrams-lost {}; datagrams found queued per receive: mean {}, largest {}",
                tx_res.get("frames_sent").map_or("?", |s| s.as_str()),
                tx_res.get("send_errors").map_or("?", |s| s.as_str()),
                rx_res.get("frames_dropped").map_or("?", |s| s.as_str()),
                rx_res.get("datagrams_late").map_or("?", |s| s.as_str()),
                rx_res.get("datagrams_lost").map_or("?", |s| s.as_str()),
                rx_res.get("mean_burst").map_or("?", |s| s.as_str()),
                rx_res.get("largest_burst").map_or("?", |s| s.as_str()),
            );
        }
        Transport::Rtp => {}
    }
    let unpoisoned: u64 = get(&rx_res, "unpoisoned", "receiver")?;
    if unpoisoned > 0 {
        let _ = write!(notes, "; {unpoisoned} buffers could not be poisoned");
    }
    Ok(Run {
        case,
        transport,
        sent,
        tx_fps,
        rx_check_s,
        buffers: get(&rx_res, "buffers", "receiver")?,
        intact: get(&rx_res, "intact", "receiver")?,
        damaged: get(&rx_res, "damaged", "receiver")?,
        verified: get(&rx_res, "verified", "receiver")?,
        mismatched: get(&rx_res, "mismatched", "receiver")?,
        tx_cpu_s,
        rx_cpu_s,
        tx_cpu_raw_s,
        rx_cpu_raw_s,
        wall_s,
        lat_us: [
            get(&rx_res, "lat_p50_us", "receiver")?,
            get(&rx_res, "lat_p90_us", "receiver")?,
            get(&rx_res, "lat_p99_us", "receiver")?,
            get(&rx_res, "lat_max_us", "receiver")?,
        ],
        kernel_drops: drops,
        softirqd_s,
        machine_busy_s,
        steal_s,
        copies: get(&tx_res, "copies", "sender")?,
        notes,
    })
}

// ---------------------------------------------------------------------------------------
// Bench: the socket layer alone
// ---------------------------------------------------------------------------------------

/// One socket-layer test.
struct NetRun {
    name: &'static str,
    sent: u64,
    received: u64,
    /// Time from the first datagram sent to the last received.
    wall_s: f64,
    tx_cpu_s: f64,
    rx_cpu_s: f64,
    /// Machine-wide CPU stolen by the hypervisor during the test.
    steal_s: f64,
}

/// What a receiving thread counted.
struct RxCount {
    bytes: u64,
    last: Instant,
    cpu_s: f64,
}

/// Runs `send` on one thread until `seconds` have passed and `recv` on another until the
/// sender is done and nothing arrived for 200 ms (or 10 s more have passed).
fn net_pair<S, R>(name: &'static str, seconds: u64, send: S, recv: R) -> Result<NetRun>
where
    S: FnOnce(Instant) -> Result<u64> + Send + 'static,
    R: FnOnce(&AtomicBool) -> Result<RxCount> + Send + 'static,
{
    let steal_before = machine_cpu_s().1;
    let done = Arc::new(AtomicBool::new(false));
    let rx_done = done.clone();
    let receiver = std::thread::spawn(move || recv(&rx_done));
    let start = Instant::now();
    let deadline = start + Duration::from_secs(seconds);
    let sender = std::thread::spawn(move || -> Result<(u64, f64)> {
        let t0 = thread_cpu_ns();
        let sent = send(deadline)?;
        Ok((sent, (thread_cpu_ns() - t0) as f64 / 1e9))
    });
    let sent = sender
        .join()
        .map_err(|_| format!("{name}: the sender panicked"));
    done.store(true, Ordering::SeqCst);
    let got = receiver
        .join()
        .map_err(|_| format!("{name}: the receiver panicked"))??;
    let (sent, tx_cpu_s) = sent??;
    Ok(NetRun {
        name,
        sent,
        received: got.bytes / NET_PAYLOAD as u64,
        wall_s: got
            .last
            .saturating_duration_since(start)
            .as_secs_f64()
            .max(1e-9),
        tx_cpu_s,
        rx_cpu_s: got.cpu_s,
        steal_s: machine_cpu_s().1 - steal_before,
    })
}

/// Whether a receiving loop should end: the sender is done and nothing came for 200 ms,
/// or it has gone on far too long.
fn rx_should_end(done: &AtomicBool, last: Instant, started: Instant, seconds: u64) -> bool {
    (done.load(Ordering::SeqCst) && last.elapsed() > Duration::from_millis(200))
        || started.elapsed() > Duration::from_secs(seconds + 10)
}

/// The socket layer of the elements: `SendBatch`/`RecvBatch` on two `UdpSocket`s, with
/// UDP GSO and GRO as the elements use them when `offload` is true, without them otherwise.
fn net_videoip(seconds: u64, offload: bool) -> Result<NetRun> {
    use gstvideoip::net::{
        gso_segments, ReceiverConfig, RecvBatch, SendBatch, SenderConfig, UdpSocket, Waker,
    };
    let receiver = UdpSocket::open_receiver(&ReceiverConfig {
        address: std::net::Ipv4Addr::LOCALHOST.into(),
        port: 0,
        multicast_iface: 0,
        buffer_size: SOCKET_BUFFER,
        reuse: false,
    })
    .context("open the receiving socket")?;
    let dest = receiver.local_addr();
    let sender = UdpSocket::open_sender(&SenderConfig {
        buffer_size: SOCKET_BUFFER,
        ..SenderConfig::new(dest)
    })
    .context("open the sending socket")?;
    let gro = offload && receiver.enable_gro();
    let gso = offload && sender.gso_supported();
    let name = match (offload, gso, gro) {
        (false, _, _) => "gstvideoip::net, sendmmsg/recvmmsg",
        (true, true, true) => "gstvideoip::net, + UDP GSO/GRO",
        (true, true, false) => "gstvideoip::net, + UDP GSO (no GRO)",
        (true, false, true) => "gstvideoip::net, + UDP GRO (no GSO)",
        (true, false, false) => "gstvideoip::net (GSO/GRO refused)",
    };
    // Datagrams per send() call: 4 full GSO messages, or as many single ones.
    let per_call = 4 * gso_segments(NET_PAYLOAD);
    // Receive slots as videoipsrc sizes them: 64 KiB for coalesced messages.
    let slot = if gro { 65536 } else { 2048 };
    net_pair(
        name,
        seconds,
        move |deadline| {
            let waker = Waker::new().context("create a waker")?;
            let payload = vec![0x5au8; NET_PAYLOAD];
            let mut batch = if gso {
                SendBatch::new()
            } else {
                SendBatch::without_gso()
            };
            let mut bytes = 0u64;
            while Instant::now() < deadline {
                let r = batch
                    .send(&sender, dest, per_call, |_| [&payload[..]], &waker)
                    .context("sendmmsg")?;
                bytes += r.bytes as u64;
            }
            Ok(bytes / NET_PAYLOAD as u64)
        },
        move |done| {
            let t0 = thread_cpu_ns();
            let waker = Waker::new().context("create a waker")?;
            let mut batch = RecvBatch::new(64, slot);
            let started = Instant::now();
            let mut last = started;
            let mut bytes = 0u64;
            loop {
                let n = batch.recv(&receiver).context("recvmmsg")?;
                if n == 0 {
                    if rx_should_end(done, last, started, seconds) {
                        break;
                    }
                    let until = Some(Instant::now() + Duration::from_millis(50));
                    waker
                        .wait(Some(receiver.fd()), libc::POLLIN, until)
                        .context("wait for datagrams")?;
                    continue;
                }
                last = Instant::now();
                if last.duration_since(started) > Duration::from_secs(seconds + 10) {
                    break;
                }
                for i in 0..batch.len() {
                    bytes += batch.get(i).map_or(0, |d| d.len() as u64);
                }
            }
            Ok(RxCount {
                bytes,
                last,
                cpu_s: (thread_cpu_ns() - t0) as f64 / 1e9,
            })
        },
    )
}

fn net_std(seconds: u64) -> Result<NetRun> {
    let rx = std::net::UdpSocket::bind("127.0.0.1:0").context("bind a std UdpSocket")?;
    let rx = socket2::Socket::from(rx);
    rx.set_recv_buffer_size(SOCKET_BUFFER)
        .context("set the receive buffer size")?;
    let rx: std::net::UdpSocket = rx.into();
    rx.set_read_timeout(Some(Duration::from_millis(50)))
        .context("set a read timeout")?;
    let dest = rx.local_addr().context("local address")?;
    let tx = std::net::UdpSocket::bind("127.0.0.1:0").context("bind a std UdpSocket")?;
    tx.connect(dest).context("connect")?;
    net_pair(
        "std::net::UdpSocket, send/recv",
        seconds,
        move |deadline| {
            let payload = vec![0x5au8; NET_PAYLOAD];
            let mut sent = 0u64;
            while Instant::now() < deadline {
                for _ in 0..64 {
                    // Refusals (no buffer space) are simply not counted as sent.
                    if tx.send(&payload).is_ok() {
                        sent += 1;
                    }
                }
            }
            Ok(sent)
        },
        move |done| {
            let t0 = thread_cpu_ns();
            let mut buf = vec![0u8; 2048];
            let started = Instant::now();
            let mut last = started;
            let mut bytes = 0u64;
            loop {
                match rx.recv(&mut buf) {
                    Ok(n) => {
                        bytes += n as u64;
                        last = Instant::now();
                        if last.duration_since(started) > Duration::from_secs(seconds + 10) {
                            break;
                        }
                    }
                    Err(e)
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                        ) =>
                    {
                        if rx_should_end(done, last, started, seconds) {
                            break;
                        }
                    }
                    Err(e) => return Err(format!("recv: {e}")),
                }
            }
            Ok(RxCount {
                bytes,
                last,
                cpu_s: (thread_cpu_ns() - t0) as f64 / 1e9,
            })
        },
    )
}

// ---------------------------------------------------------------------------------------
// Bench: report
// ---------------------------------------------------------------------------------------

fn machine() -> String {
    let nproc = std::thread::available_parallelism().map_or(0, |n| n.get());
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".into());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "unknown".into());
    let sysctl = |p: &str| {
        std::fs::read_to_string(p)
            .map(|s| s.trim().to_owned())
            .unwrap_or_else(|_| "?".into())
    };
    format!(
        "machine: {nproc} CPUs, {cpu}, Linux {kernel}, net.core.rmem_max {} wmem_max {}\n\
         software: {}, gst-plugin-videoip {}",
        sysctl("/proc/sys/net/core/rmem_max"),
        sysctl("/proc/sys/net/core/wmem_max"),
        gst::version_string(),
        env!("CARGO_PKG_VERSION"),
    )
}

fn fmt_f(v: f64, prec: usize) -> String {
    if v.is_finite() {
        format!("{v:.prec$}")
    } else {
        "-".into()
    }
}

fn print_runs(runs: &[std::result::Result<Run, (Case, Transport, String)>]) {
    println!();
    println!(
        "{:<10} {:<9} {:>5} {:>15} {:>7} {:>6} {:>8} {:>8} {:>8} {:>6} {:>7} {:>9} {:>9} {:>8}",
        "case",
        "transport",
        "sent",
        "delivered",
        "damaged",
        "fps",
        "tx ms/f",
        "rx ms/f",
        "tot ms/f",
        "cores",
        "Gbit/s",
        "lat p50",
        "lat p99",
        "rtp/vip"
    );
    let ok: Vec<&Run> = runs.iter().filter_map(|r| r.as_ref().ok()).collect();
    let us = |r: &Run, v: f64| {
        if r.intact > 0 {
            format!("{v:.0} µs")
        } else {
            "-".into()
        }
    };
    for r in runs {
        match r {
            Ok(r) => {
                let ratio = match r.transport {
                    Transport::Rtp => ok
                        .iter()
                        .find(|v| v.case == r.case && v.transport == Transport::VideoIp)
                        .map(|v| r.total_ms() / v.total_ms()),
                    Transport::VideoIp => None,
                };
                println!(
                    "{:<10} {:<9} {:>5} {:>6} ({:>5.1}%) {:>7} {:>6.0} {:>8} {:>8} {:>8} {:>6} {:>7} {:>9} {:>9} {:>8}",
                    r.case.name,
                    r.transport.name(),
                    r.sent,
                    r.intact,
                    100.0 * r.intact as f64 / r.sent.max(1) as f64,
                    r.damaged,
                    r.intact as f64 / r.wall_s,
                    fmt_f(r.per_frame_ms(r.tx_cpu_s), 2),
                    fmt_f(r.per_frame_ms(r.rx_cpu_s), 2),
                    fmt_f(r.total_ms(), 2),
                    fmt_f(r.cores(), 2),
                    fmt_f(r.gbps(), 2),
                    us(r, r.lat_us[0]),
                    us(r, r.lat_us[2]),
                    ratio.map_or(String::new(), |x| format!("{}x", fmt_f(x, 2))),
                );
            }
            Err((case, t, e)) => println!("{:<10} {:<9} FAILED: {e}", case.name, t.name()),
        }
    }
    println!();
    println!("details:");
    for r in ok {
        println!(
            "  {} {}: wall {:.2} s, sender pushed {:.0} fps; CPU sender {:.2} s, receiver {:.2} s \
             (whole processes {:.2} s / {:.2} s; receiver's frame checks {:.2} ms/buffer, excluded)",
            r.case.name,
            r.transport.name(),
            r.wall_s,
            r.tx_fps,
            r.tx_cpu_s,
            r.rx_cpu_s,
            r.tx_cpu_raw_s,
            r.rx_cpu_raw_s,
            r.rx_check_s * 1000.0 / r.buffers.max(1) as f64,
        );
        println!(
            "      buffers out {}, compared in full {} (mismatched {}); latency p90 {:.0} µs, \
             max {:.0} µs; kernel rcvbuf drops {}; ksoftirqd {:.2} s; ring copies {}",
            r.buffers,
            r.verified,
            r.mismatched,
            r.lat_us[1],
            r.lat_us[3],
            r.kernel_drops.map_or("?".into(), |d| d.to_string()),
            r.softirqd_s,
            r.copies,
        );
        println!(
            "      machine over the run: busy {:.2} s, of which not these two processes {:.2} s; \
             stolen by the hypervisor {:.2} s",
            r.machine_busy_s,
            (r.machine_busy_s - r.tx_cpu_raw_s - r.rx_cpu_raw_s).max(0.0),
            r.steal_s,
        );
        if !r.notes.is_empty() {
            println!("      {}", r.notes);
        }
    }
}

fn print_net(runs: &[Result<NetRun>]) {
    println!();
    println!("socket layer alone, {NET_PAYLOAD}-byte UDP payloads over 127.0.0.1:");
    println!(
        "{:<38} {:>10} {:>16} {:>7} {:>9} {:>9} {:>8} {:>8} {:>7}",
        "path",
        "sent",
        "received",
        "Gbit/s",
        "tx CPU s",
        "rx CPU s",
        "tx ns/d",
        "rx ns/d",
        "steal s"
    );
    for r in runs {
        match r {
            Ok(r) => println!(
                "{:<38} {:>10} {:>9} ({:>3.0}%) {:>7.2} {:>9.2} {:>9.2} {:>8.0} {:>8.0} {:>7.2}",
                r.name,
                r.sent,
                r.received,
                100.0 * r.received as f64 / r.sent.max(1) as f64,
                r.received as f64 * NET_PAYLOAD as f64 * 8.0 / r.wall_s / 1e9,
                r.tx_cpu_s,
                r.rx_cpu_s,
                r.tx_cpu_s * 1e9 / r.sent.max(1) as f64,
                r.rx_cpu_s * 1e9 / r.received.max(1) as f64,
                r.steal_s,
            ),
            Err(e) => println!("FAILED: {e}"),
        }
    }
    println!(
        "ns/d: CPU ns per datagram of each thread; steal s: machine-wide CPU the hypervisor \
         took meanwhile (noise)"
    );
}

fn run_bench(o: &BenchOpts, args: &[String]) -> Result<()> {
    gst::init().context("GStreamer does not initialize")?;
    println!("videoip benchmark");
    println!("{}", machine());
    let exe = std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "bench".into());
    println!("command: {exe} {}", args.join(" "));
    println!(
        "(from the source tree: cargo run --release --example bench -- {})",
        args.join(" ")
    );
    println!(
        "settings: {} frames per run, sending capped at {} s, mtu {MTU}, UYVY @ {FPS} fps, \
         socket buffers {} MiB",
        o.frames,
        o.seconds,
        SOCKET_BUFFER >> 20
    );
    let mut runs = Vec::new();
    for &case in &o.cases {
        for &t in &o.transports {
            eprintln!("bench: {} over {} ...", case.name, t.name());
            runs.push(run_one(case, t, o).map_err(|e| (case, t, e)));
        }
    }
    let mut net = Vec::new();
    if o.net_seconds > 0 {
        eprintln!("bench: socket layer, gstvideoip::net with GSO/GRO ...");
        net.push(net_videoip(o.net_seconds, true));
        eprintln!("bench: socket layer, gstvideoip::net without GSO/GRO ...");
        net.push(net_videoip(o.net_seconds, false));
        eprintln!("bench: socket layer, std::net ...");
        net.push(net_std(o.net_seconds));
    }
    if !runs.is_empty() {
        print_runs(&runs);
    }
    if !net.is_empty() {
        print_net(&net);
    }
    println!();
    println!(
        "delivered: intact frames (stamp, check words, full comparison of every 10th); \
         damaged: incomplete or corrupt frames pushed out\n\
         fps, Gbit/s: delivered frames (frame bytes only) per wall second, wall = first push \
         to last buffer out\n\
         ms/f: CPU ms per delivered frame, GStreamer set-up and the bench's checks excluded; \
         cores: CPU of both processes / wall\n\
         latency: sender's stamp before appsrc to appsink; rtp/vip: total CPU per frame, rtp \
         over videoip"
    );
    let failed =
        runs.iter().filter(|r| r.is_err()).count() + net.iter().filter(|r| r.is_err()).count();
    if failed > 0 {
        return Err(format!("{failed} run(s) failed"));
    }
    Ok(())
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = parse_args(&args).and_then(|role| match role {
        Role::Bench(o) => run_bench(&o, &args),
        Role::Sender(o) => run_sender(&o),
        Role::Receiver(o) => run_receiver(&o),
    });
    if let Err(e) = result {
        eprintln!("bench: {e}");
        std::process::exit(1);
    }
}
