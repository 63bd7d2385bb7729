// SPDX-License-Identifier: MPL-2.0
//! Performance benchmark: videoip against RTP (RFC 4175 raw video), and the socket layer
//! alone, on this machine over 127.0.0.1; and, with `--loss`, videoip against RTP, RTP with
//! RFC 4588 retransmission and RIST through a relay that loses datagrams.
//!
//! ```text
//! cargo run --release --example bench -- [--cases all|none|720p-rt,1080p-rt,1080p-rt-burst,1080p-max,
//!         2160p30-rt,2160p-rt,2160p-rt-burst,2160p-max,live-720p60,live-1080p60,live-2160p30]
//!     [--transports videoip,videoip-aes,videoip-aes256,rtp] [--frames 600] [--seconds 10]
//!     [--net-seconds 3]
//! cargo run --release --example bench -- --loss all|0,0.01,0.1,1,5,burst [--runs 1]
//!     [--transports videoip,videoip-default,rtp,rtp-rtx,rist] [--latency 80] [--delay 5]
//! ```
//!
//! The whole default run takes about four minutes and prints its tables at the end; `--loss all`
//! takes about 7 minutes per run of the table (30 cells of ~14 s).
//!
//! # 1. Transports through GStreamer
//!
//! For each case (720p60, 1080p60, 2160p30 or 2160p60 UYVY; sent in real time, "rt", or as
//! fast as possible, "max"; 720p-rt is 720p60, 2160p30-rt 2160p at 30 fps, every other case
//! 60 fps) and each transport, the bench starts itself again twice: a receiver process, then a
//! sender process. Both register the plugin statically (the one built into the bench;
//! GST_PLUGIN_PATH is removed from their environment). The pipelines are:
//!
//! | transport | sender | receiver |
//! |-----------|--------|----------|
//! | videoip | `appsrc ! videoipsink mtu=1500 pacing=frame\|none` | `videoipsrc ! appsink` |
//! | videoip-aes | the same with `passphrase=… pbkeylen=16` | the same with `passphrase=… pbkeylen=16` |
//! | videoip-aes256 | the same with `passphrase=… pbkeylen=32` | the same with `passphrase=… pbkeylen=32` |
//! | rtp | `appsrc ! rtpvrawpay mtu=1500 ! udpsink` | `udpsrc caps=… ! rtpvrawdepay ! appsink` |
//!
//! The two `-aes` transports seal every datagram with AES-128-GCM or AES-256-GCM (the
//! passphrase is [`PASSPHRASE`]; deriving its key is set-up, not counted); run beside
//! `videoip` (`--transports videoip,videoip-aes`) they give the cost of encryption as a ratio
//! within one run, as rtp's is given against videoip. The live cases take them too.
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
//! copy is stamped instead, and counted). In rt mode frame n is pushed at start + n/fps s; in
//! max mode at once, so the sender runs as fast as back-pressure lets it. PTS is n/fps s.
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
//! duration, see `src/send/schedule.rs`); rt-burst shows the latency without pacing.
//! In max mode latency is mostly time queued behind earlier frames.
//!
//! **Lateness** (rt cases, a table of its own): a pad probe in the sender on videoipsink's
//! sink pad (rtp: udpsink's) takes, for every buffer, the pipeline's running time when it
//! reaches the pad (clock time − base time) minus its PTS as running time. A sender that keeps
//! real time stays near its start-up offset; one that falls behind grows from frame to frame.
//! The table gives the last frame's lateness, the worst, p50 and p99 over frames, in ms (an RTP
//! frame is many packets: its lateness is its last packet's). Beside it, what the receiver
//! got: **rx fps**, delivered frames over the span from the first to the last of them (frame
//! intervals / time), the longest time between two delivered frames, and how often frames
//! were missing between two delivered ones. The loss table's details show the same per run.
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
//! **Live** (`live-720p60`, `live-1080p60`, `live-2160p30`; videoip only): what a new user
//! runs, one process each, nothing of the bench's in the pipelines:
//!
//! ```text
//! sender:   videotestsrc is-live=true num-buffers=N ! video/x-raw,format=UYVY,width=W,height=H,framerate=F/1
//!               ! videoipsink host=127.0.0.1 port=P
//! receiver: videoipsrc port=P ! fakesink sync=true
//! ```
//!
//! with N = `--frames` (600), the element's defaults (pacing, mtu, sync, socket buffers) and
//! P a port free at the time. The same children, started the same way, add only pad probes:
//! the lateness probe on videoipsink's sink pad, and on fakesink's sink pad one that counts
//! buffers; a step in PTS of more than 1.5 frame intervals counts as a gap. There is no
//! stamp, so no frame checks and no latency; the sender's CPU includes videotestsrc drawing
//! its pattern (on the same streaming thread), the receiver's fakesink's. The sender's frames
//! are those that reached videoipsink; wall runs from the first of them.
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
//! # 3. The loss table (`--loss`)
//!
//! 720p25 UYVY ([`LOSS_CASE`], 1,299 datagrams a frame, videoip paced as by default), the
//! same children, frame checks and CPU accounting as in 1., but every datagram of every
//! transport, both ways, goes through a [`Relay`] in the bench process (its CPU is charged to
//! neither child). The relay loses datagrams at random, each direction with its own pattern:
//! rows 0, 0.01, 0.1, 1 and 5 % of datagrams, and `burst` (runs of 10 starting at random,
//! 0.5 % lost in all); it delays the rest by `--delay` ms (5) one way, so a round trip takes
//! 10 ms. It reads with `recvmmsg` and sends with `sendmmsg` without GSO, so every receiver
//! gets single datagrams as from a network (over loopback, GSO sends would reach videoipsrc
//! whole). It reports what it relayed and lost, and how late (past its due time) it sent
//! at worst: a busy machine delays it by a few ms.
//!
//! | column | sender | receiver |
//! |--------|--------|----------|
//! | videoip | `videoipsink pacing=frame` | `videoipsrc latency=<budget>` |
//! | videoip-default | the same | `videoipsrc` (latency 50 ms) |
//! | rtp | `rtpvrawpay ! udpsink` | `udpsrc ! rtpvrawdepay`: no jitterbuffer, no recovery |
//! | rtp-rtx | `rtpvrawpay pt=96 ! rtpbin` with `rtprtxsend` (pt 97, 200 ms of history) | `rtpbin latency=<budget> do-retransmission=true` with `rtprtxreceive`, `! rtpvrawdepay` |
//! | rist | `rtpvrawpay pt=96 ! ristsink` | `ristsrc receiver-buffer=<budget> ! rtpvrawdepay` |
//!
//! rtp-rtx uses the AVPF profile (early feedback) on both rtpbins, and RTCP goes both ways
//! through the relay (sender reports ahead, receiver reports and NACKs back, each on a path
//! of its own). RIST sends RTP to an even port and RTCP both ways on the next. The receiving
//! rtpsession of both gets the stream's bandwidth, as an SDP `b=AS` would give it (see
//! [`set_session_bandwidth`]). The budget (`--latency`, 80 ms: README's rule, 4 × RTT + 40 ms)
//! means different things: for videoip how long an incomplete frame waits after its latest
//! datagram, for rtpbin and ristsrc the jitterbuffer's whole latency. Senders stay up
//! [`LINGER_MS`] after their end of stream, to answer requests about the last frames. The
//! details list, per run, the relay's counts, each stack's retransmission counters, and
//! which frames did not arrive. A transport whose elements are missing is "skipped".
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
/// Frame rate of the throughput cases, except 2160p30-rt.
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
    /// videoipsink → videoipsrc; with a key length, both with [`PASSPHRASE`] and that
    /// `pbkeylen` (every datagram sealed with AES-GCM).
    VideoIp { pbkeylen: Option<u32> },
    /// rtpvrawpay ! udpsink → udpsrc ! rtpvrawdepay: no recovery.
    Rtp,
    /// rtpbin on both ends, RFC 4588 retransmission (rtprtxsend/rtprtxreceive), RTCP both ways.
    RtpRtx,
    /// ristsink → ristsrc (RIST simple profile, gst-plugins-bad).
    Rist,
}

/// videoip without a passphrase: what the other transports are compared with.
const VIDEOIP: Transport = Transport::VideoIp { pbkeylen: None };

/// The passphrase of the encrypted videoip transports (`videoip-aes`, `videoip-aes256`).
const PASSPHRASE: &str = "videoip-bench-passphrase";

impl Transport {
    fn name(self) -> &'static str {
        match self {
            Transport::VideoIp { pbkeylen: None } => "videoip",
            Transport::VideoIp { pbkeylen: Some(32) } => "videoip-aes256",
            Transport::VideoIp { pbkeylen: Some(_) } => "videoip-aes",
            Transport::Rtp => "rtp",
            Transport::RtpRtx => "rtp-rtx",
            Transport::Rist => "rist",
        }
    }

    fn parse(s: &str) -> Result<Self> {
        match s {
            "videoip" => Ok(VIDEOIP),
            "videoip-aes" => Ok(Transport::VideoIp { pbkeylen: Some(16) }),
            "videoip-aes256" => Ok(Transport::VideoIp { pbkeylen: Some(32) }),
            "rtp" => Ok(Transport::Rtp),
            "rtp-rtx" => Ok(Transport::RtpRtx),
            "rist" => Ok(Transport::Rist),
            _ => Err(format!(
                "unknown transport \"{s}\" (videoip, videoip-aes, videoip-aes256, rtp; with \
                 --loss also rtp-rtx, rist)"
            )),
        }
    }

    /// What videoipsink and videoipsrc get beyond their other properties: the passphrase
    /// and key length, or nothing.
    fn protection(self) -> String {
        match self {
            Transport::VideoIp {
                pbkeylen: Some(len),
            } => format!(" passphrase={PASSPHRASE} pbkeylen={len}"),
            _ => String::new(),
        }
    }

    /// The GStreamer elements a transport needs beyond the videoip plugin.
    fn elements(self) -> &'static [&'static str] {
        match self {
            Transport::VideoIp { .. } => &[],
            Transport::Rtp => &["rtpvrawpay", "rtpvrawdepay", "udpsink", "udpsrc"],
            Transport::RtpRtx => &[
                "rtpvrawpay",
                "rtpvrawdepay",
                "udpsink",
                "udpsrc",
                "rtpbin",
                "rtprtxsend",
                "rtprtxreceive",
            ],
            Transport::Rist => &["rtpvrawpay", "rtpvrawdepay", "ristsink", "ristsrc"],
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Case {
    name: &'static str,
    width: u32,
    height: u32,
    fps: u64,
    realtime: bool,
    /// videoipsink pacing=frame (else none); rtpvrawpay never paces.
    paced: bool,
    /// What a new user runs: `videotestsrc is-live=true ! videoipsink` with the element's
    /// defaults, `videoipsrc ! fakesink sync=true`; no frame checks (videoip only).
    live: bool,
}

const CASES: [Case; 11] = [
    Case {
        name: "720p-rt",
        width: 1280,
        height: 720,
        fps: FPS,
        realtime: true,
        paced: true,
        live: false,
    },
    Case {
        name: "1080p-rt",
        width: 1920,
        height: 1080,
        fps: FPS,
        realtime: true,
        paced: true,
        live: false,
    },
    Case {
        name: "1080p-rt-burst",
        width: 1920,
        height: 1080,
        fps: FPS,
        realtime: true,
        paced: false,
        live: false,
    },
    Case {
        name: "1080p-max",
        width: 1920,
        height: 1080,
        fps: FPS,
        realtime: false,
        paced: false,
        live: false,
    },
    Case {
        name: "2160p30-rt",
        width: 3840,
        height: 2160,
        fps: 30,
        realtime: true,
        paced: true,
        live: false,
    },
    Case {
        name: "2160p-rt",
        width: 3840,
        height: 2160,
        fps: FPS,
        realtime: true,
        paced: true,
        live: false,
    },
    Case {
        name: "2160p-rt-burst",
        width: 3840,
        height: 2160,
        fps: FPS,
        realtime: true,
        paced: false,
        live: false,
    },
    Case {
        name: "2160p-max",
        width: 3840,
        height: 2160,
        fps: FPS,
        realtime: false,
        paced: false,
        live: false,
    },
    Case {
        name: "live-720p60",
        width: 1280,
        height: 720,
        fps: 60,
        realtime: true,
        paced: true,
        live: true,
    },
    Case {
        name: "live-1080p60",
        width: 1920,
        height: 1080,
        fps: 60,
        realtime: true,
        paced: true,
        live: true,
    },
    Case {
        name: "live-2160p30",
        width: 3840,
        height: 2160,
        fps: 30,
        realtime: true,
        paced: true,
        live: true,
    },
];

/// The stream of the loss table: 720p25 UYVY in real time, videoip paced (its default).
const LOSS_CASE: Case = Case {
    name: "720p25",
    width: 1280,
    height: 720,
    fps: 25,
    realtime: true,
    paced: true,
    live: false,
};

/// One row of the loss table: what the relay loses, in each direction on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct LossRow {
    /// Name on the command line.
    key: &'static str,
    /// Name in the table.
    label: &'static str,
    /// Datagrams lost per million.
    per_million: u32,
    /// Lost datagrams come in runs of this many.
    burst: u32,
}

const LOSS_ROWS: [LossRow; 6] = [
    LossRow {
        key: "0",
        label: "none",
        per_million: 0,
        burst: 1,
    },
    LossRow {
        key: "0.01",
        label: "0.01 %",
        per_million: 100,
        burst: 1,
    },
    LossRow {
        key: "0.1",
        label: "0.1 %",
        per_million: 1_000,
        burst: 1,
    },
    LossRow {
        key: "1",
        label: "1 %",
        per_million: 10_000,
        burst: 1,
    },
    LossRow {
        key: "5",
        label: "5 %",
        per_million: 50_000,
        burst: 1,
    },
    LossRow {
        key: "burst",
        label: "bursts of 10, 0.5 %",
        per_million: 5_000,
        burst: 10,
    },
];

/// One column of the loss table: a transport, with the common recovery budget or, for
/// videoip, also with its defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Column {
    transport: Transport,
    /// Receiver left at its default latency (videoip only).
    default_latency: bool,
}

impl Column {
    fn name(self) -> &'static str {
        if self.default_latency {
            "videoip-default"
        } else {
            self.transport.name()
        }
    }

    fn parse(s: &str) -> Result<Self> {
        if s == "videoip-default" {
            return Ok(Column {
                transport: VIDEOIP,
                default_latency: true,
            });
        }
        Ok(Column {
            transport: Transport::parse(s)?,
            default_latency: false,
        })
    }
}

/// The bench's own options.
#[derive(Debug, Clone)]
struct BenchOpts {
    cases: Vec<Case>,
    transports: Vec<Transport>,
    frames: u64,
    seconds: u64,
    /// --seconds was given: it caps every run, else a run may take as long as its frames.
    seconds_given: bool,
    net_seconds: u64,
    /// The loss table: its rows and columns, runs of each cell, the receivers' budget.
    loss: Vec<LossRow>,
    loss_columns: Vec<Column>,
    loss_frames: u64,
    runs: u32,
    latency_ms: u32,
    delay_ms: u64,
}

/// Options of a sender or receiver child.
#[derive(Debug, Clone)]
struct ChildOpts {
    transport: Transport,
    width: u32,
    height: u32,
    fps: u64,
    realtime: bool,
    paced: bool,
    /// A live videotestsrc and fakesink, as a new user runs them (see [`Case::live`]).
    live: bool,
    frames: u64,
    seconds: u64,
    /// Sender: where to send; receiver: where to listen.
    port: u16,
    /// rtp-rtx: the port this child receives RTCP on, and the one it sends RTCP to.
    rtcp_port: u16,
    rtcp_dest: u16,
    /// Receiver's recovery budget in ms (videoip latency, rtpbin latency, ristsrc
    /// receiver-buffer); None leaves the element's default.
    latency_ms: Option<u32>,
    /// Sender: how long to stay up after its end of stream, to answer late requests.
    linger_ms: u64,
}

enum Role {
    Bench(BenchOpts),
    Sender(ChildOpts),
    Receiver(ChildOpts),
}

const USAGE: &str = "usage: bench [--cases all|none|LIST] [--transports LIST] \
[--frames N] [--seconds S] [--net-seconds S]
             [--loss all|none|LIST [--runs N] [--latency MS] [--delay MS]]
  --cases        comma-separated from 720p-rt,1080p-rt,1080p-rt-burst,1080p-max,2160p30-rt,
                 2160p-rt,2160p-rt-burst,2160p-max (appsrc, checked frames), and
                 live-720p60,live-1080p60,live-2160p30 (videoip only: `videotestsrc is-live=true
                 num-buffers=N ! UYVY caps ! videoipsink host=127.0.0.1 port=P` and
                 `videoipsrc port=P ! fakesink sync=true`, element defaults); default all;
                 2160p30-rt and live-2160p30 at 30 fps, the others at 60
  --transports   comma-separated from videoip,videoip-aes,videoip-aes256 (videoip with a
                 passphrase, pbkeylen 16 or 32, on both ends),rtp (default videoip,rtp); with
                 --loss also videoip-default,rtp-rtx,rist (default videoip,videoip-default,
                 rtp,rtp-rtx,rist)
  --frames       frames per run (default 600: 10 s at 60 fps; with --loss 250: 10 s at 25 fps;
                 a given --seconds caps it)
  --seconds      cap on the sending time of each run (default 10, or for an rt case as long
                 as its --frames take if longer)
  --net-seconds  duration of each socket-layer test; 0 skips them (default 3, with --loss 0)
  --loss         the loss table, 720p25 through a lossy relay: comma-separated rows from
                 0,0.01,0.1,1,5 (percent of datagrams lost at random) and burst (runs of 10,
                 0.5 %), or all; unless --cases is given too, the throughput cases are skipped
  --runs         runs of each loss-table cell (default 1)
  --latency      every receiver's recovery budget in the loss table, ms (default 80)
  --delay        the relay's one-way delay, ms (default 5)";

fn parse_args(args: &[String]) -> Result<Role> {
    let mut bench = BenchOpts {
        cases: CASES.to_vec(),
        transports: vec![VIDEOIP, Transport::Rtp],
        frames: 600,
        seconds: 10,
        seconds_given: false,
        net_seconds: 3,
        loss: Vec::new(),
        loss_columns: vec![
            Column::parse("videoip")?,
            Column::parse("videoip-default")?,
            Column::parse("rtp")?,
            Column::parse("rtp-rtx")?,
            Column::parse("rist")?,
        ],
        loss_frames: 250,
        runs: 1,
        latency_ms: 80,
        delay_ms: 5,
    };
    let mut child = ChildOpts {
        transport: VIDEOIP,
        width: 1920,
        height: 1080,
        fps: FPS,
        realtime: true,
        paced: true,
        live: false,
        frames: 600,
        seconds: 10,
        port: 0,
        rtcp_port: 0,
        rtcp_dest: 0,
        latency_ms: None,
        linger_ms: 0,
    };
    let mut role = None;
    let (mut cases_given, mut net_given, mut frames_given) = (false, false, false);
    let mut transports: Option<Vec<String>> = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "--help" || a == "-h" {
            return Err(USAGE.into());
        }
        let v = it.next().context(format!("{a} needs a value\n{USAGE}"))?;
        let num = |v: &str| v.parse::<u64>().context(format!("{a}: not a number"));
        match a.as_str() {
            "--cases" => {
                cases_given = true;
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
                transports = Some(v.split(',').map(|t| t.trim().to_owned()).collect());
            }
            "--frames" => {
                frames_given = true;
                bench.frames = num(v)?.max(1);
                child.frames = bench.frames;
            }
            "--seconds" => {
                bench.seconds = num(v)?.max(1);
                bench.seconds_given = true;
                child.seconds = bench.seconds;
            }
            "--net-seconds" => {
                net_given = true;
                bench.net_seconds = num(v)?;
            }
            "--loss" => {
                bench.loss = match v.as_str() {
                    "all" => LOSS_ROWS.to_vec(),
                    "none" => Vec::new(),
                    list => list
                        .split(',')
                        .map(|n| {
                            LOSS_ROWS
                                .iter()
                                .find(|r| r.key == n.trim())
                                .copied()
                                .context(format!("unknown loss row \"{n}\"\n{USAGE}"))
                        })
                        .collect::<Result<_>>()?,
                }
            }
            "--runs" => bench.runs = u32::try_from(num(v)?.max(1)).context("--runs")?,
            "--latency" => {
                let ms = u32::try_from(num(v)?.max(1)).context("--latency")?;
                bench.latency_ms = ms;
                child.latency_ms = Some(ms);
            }
            "--delay" => bench.delay_ms = num(v)?,
            // The options below are how the bench starts its children.
            "--role" => role = Some(v.clone()),
            "--transport" => child.transport = Transport::parse(v)?,
            "--width" => child.width = u32::try_from(num(v)?).context("--width")?,
            "--height" => child.height = u32::try_from(num(v)?).context("--height")?,
            "--fps" => child.fps = num(v)?.max(1),
            "--mode" => {
                child.realtime = match v.as_str() {
                    "rt" => true,
                    "max" => false,
                    _ => return Err(format!("--mode: rt or max, not {v}")),
                }
            }
            "--port" => child.port = u16::try_from(num(v)?).context("--port")?,
            "--rtcp-port" => child.rtcp_port = u16::try_from(num(v)?).context("--rtcp-port")?,
            "--rtcp-dest" => child.rtcp_dest = u16::try_from(num(v)?).context("--rtcp-dest")?,
            "--linger" => child.linger_ms = num(v)?,
            "--source" => {
                child.live = match v.as_str() {
                    "live" => true,
                    "appsrc" => false,
                    _ => return Err(format!("--source: live or appsrc, not {v}")),
                }
            }
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
    if !bench.loss.is_empty() {
        if !cases_given {
            bench.cases.clear();
        }
        if !net_given {
            bench.net_seconds = 0;
        }
        if frames_given {
            bench.loss_frames = bench.frames;
        }
    }
    if let Some(list) = transports {
        if bench.loss.is_empty() {
            bench.transports = list
                .iter()
                .map(|t| match Transport::parse(t)? {
                    t @ (Transport::VideoIp { .. } | Transport::Rtp) => Ok(t),
                    _ => Err(format!("{t}: only with --loss\n{USAGE}")),
                })
                .collect::<Result<_>>()?;
        } else {
            bench.loss_columns = list
                .iter()
                .map(|t| Column::parse(t))
                .collect::<Result<_>>()?;
            bench.transports = bench
                .loss_columns
                .iter()
                .map(|c| c.transport)
                .filter(|t| matches!(t, Transport::VideoIp { .. } | Transport::Rtp))
                .collect();
            bench.transports.dedup();
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

fn video_caps(width: u32, height: u32, fps: u64) -> String {
    format!(
        "video/x-raw,format=UYVY,width={width},height={height},framerate={fps}/1,\
         pixel-aspect-ratio=1/1,interlace-mode=progressive,colorimetry=bt709"
    )
}

/// The caps rtpvrawpay puts on its output for [`video_caps`] (checked with
/// `gst-launch-1.0 -v`), minus the random ssrc, timestamp-offset and seqnum-offset.
fn rtp_caps(width: u32, height: u32, fps: u64) -> String {
    format!(
        "application/x-rtp,media=(string)video,clock-rate=(int)90000,encoding-name=(string)RAW,\
         sampling=(string)YCbCr-4:2:2,depth=(string)8,width=(string){width},\
         height=(string){height},colorimetry=(string)BT709-2,payload=(int)96,\
         a-framerate=(string){fps}"
    )
}

/// RTP payload type of the video, and of its RFC 4588 retransmissions (rtp-rtx).
const RTP_PT: u32 = 96;
const RTX_PT: u32 = 97;
/// How long rtprtxsend keeps packets for retransmission, ms (videoipsink keeps 200 ms).
const RTX_HISTORY_MS: u32 = 200;

/// ` x_name=value` for each of `names` in `s`, for the bench's details (dashes become
/// underscores; values without spaces).
fn fields(s: &gst::Structure, names: &[&str]) -> String {
    let mut out = String::new();
    for name in names {
        let v = s
            .value(*name)
            .ok()
            .and_then(|v| v.serialize().ok())
            .map_or_else(|| "?".to_owned(), |v| v.replace(' ', ""));
        let _ = write!(out, " x_{}={v}", name.replace('-', "_"));
    }
    out
}

/// Gives every udpsrc and udpsink inside `bin` (ristsink and ristsrc make their own) the
/// bench's socket buffer size, as the other transports get.
fn set_socket_buffers(bin: &gst::Pipeline) {
    for e in bin.iterate_recurse().into_iter().flatten() {
        let factory = e
            .factory()
            .map(|f| f.name().to_string())
            .unwrap_or_default();
        if factory == "udpsrc" || factory == "udpsink" {
            e.set_property("buffer-size", SOCKET_BUFFER as i32);
        }
    }
}

/// Tells the receiving rtpsession (of rtp-rtx, or inside ristsrc) the stream's bandwidth,
/// as an SDP `b=AS` line would. A receiver that sends no RTP otherwise assumes 64 kbit/s,
/// and its RTCP share of that (5 %) lets only a few NACK packets out per second: at 1 %
/// loss both stacks then recover almost nothing.
fn set_session_bandwidth(pipeline: &gst::Pipeline, o: &ChildOpts) -> Result<()> {
    let session = pipeline
        .by_name("rtpsession0")
        .context("no rtpsession0 in the receiver")?;
    let bytes_per_s = frame_bytes(o.width, o.height) as f64 * o.fps as f64;
    session.set_property("bandwidth", bytes_per_s);
    Ok(())
}

/// Retransmission counters of rtpbin's first session (rtp-rtx).
fn session_stats(pipeline: &gst::Pipeline) -> String {
    match pipeline.by_name("rtpsession0") {
        Some(session) => fields(
            &session.property::<gst::Structure>("stats"),
            &[
                "sent-nack-count",
                "recv-nack-count",
                "sent-rtx-req-count",
                "recv-rtx-req-count",
                "rtx-drop-count",
            ],
        ),
        None => " x_rtpsession=none".into(),
    }
}

fn make(factory: &str, props: &[(&str, &str)]) -> Result<gst::Element> {
    let mut b = gst::ElementFactory::make(factory);
    for (k, v) in props {
        b = b.property_from_str(k, v);
    }
    b.build().context(format!("create {factory}"))
}

/// rtpbin's RFC 4588 element for one session (rtprtxsend or rtprtxreceive, original
/// payload type mapped to the retransmission one), in a bin with the pads rtpbin expects.
fn rtx_aux(
    factory: &str,
    session: u32,
    keep: &Mutex<Option<gst::Element>>,
) -> Option<gst::glib::Value> {
    let map = gst::Structure::builder("application/x-rtp-pt-map")
        .field(RTP_PT.to_string(), RTX_PT)
        .build();
    let rtx = gst::ElementFactory::make(factory)
        .property("payload-type-map", map)
        .build()
        .ok()?;
    if factory == "rtprtxsend" {
        rtx.set_property("max-size-time", RTX_HISTORY_MS);
        rtx.set_property("max-size-packets", 0u32);
    }
    let bin = gst::Bin::new();
    bin.add(&rtx).ok()?;
    for dir in ["src", "sink"] {
        let pad = gst::GhostPad::builder_with_target(&rtx.static_pad(dir)?)
            .ok()?
            .name(format!("{dir}_{session}"))
            .build();
        bin.add_pad(&pad).ok()?;
    }
    if let Ok(mut k) = keep.lock() {
        *k = Some(rtx);
    }
    Some(bin.upcast::<gst::Element>().to_value())
}

/// Sender of rtp-rtx: `appsrc ! rtpvrawpay ! rtpbin (rtprtxsend) ! udpsink`, RTCP out to
/// `rtcp_dest` and in on `rtcp_port`, AVPF profile (early feedback: NACKs at once).
fn rtx_sender_pipeline(
    o: &ChildOpts,
    keep: Arc<Mutex<Option<gst::Element>>>,
) -> Result<gst::Pipeline> {
    let pipeline = gst::Pipeline::new();
    let rtpbin = make("rtpbin", &[("name", "rtpbin"), ("rtp-profile", "avpf")])?;
    rtpbin.connect("request-aux-sender", false, move |args| {
        let session = args.get(1)?.get::<u32>().ok()?;
        rtx_aux("rtprtxsend", session, &keep)
    });
    let head = gst::parse::bin_from_description(
        &format!("appsrc name=src ! rtpvrawpay mtu={MTU} pt={RTP_PT}"),
        true,
    )
    .context("the sender's head")?;
    let port = o.port.to_string();
    let rtcp_dest = o.rtcp_dest.to_string();
    let rtcp_port = o.rtcp_port.to_string();
    let buffer = SOCKET_BUFFER.to_string();
    let out = make(
        "udpsink",
        &[
            ("name", "sink"),
            ("host", "127.0.0.1"),
            ("port", &port),
            ("sync", "false"),
            ("buffer-size", &buffer),
        ],
    )?;
    let rtcp_out = make(
        "udpsink",
        &[
            ("host", "127.0.0.1"),
            ("port", &rtcp_dest),
            ("sync", "false"),
            ("async", "false"),
        ],
    )?;
    let rtcp_in = make("udpsrc", &[("address", "127.0.0.1"), ("port", &rtcp_port)])?;
    pipeline
        .add_many([head.upcast_ref(), &rtpbin, &out, &rtcp_out, &rtcp_in])
        .context("build the sender")?;
    head.link_pads(Some("src"), &rtpbin, Some("send_rtp_sink_0"))
        .context("link rtpvrawpay to rtpbin")?;
    rtpbin
        .link_pads(Some("send_rtp_src_0"), &out, Some("sink"))
        .context("link rtpbin to udpsink")?;
    rtpbin
        .link_pads(Some("send_rtcp_src_0"), &rtcp_out, Some("sink"))
        .context("link rtpbin's RTCP out")?;
    rtcp_in
        .link_pads(Some("src"), &rtpbin, Some("recv_rtcp_sink_0"))
        .context("link rtpbin's RTCP in")?;
    Ok(pipeline)
}

/// Receiver of rtp-rtx: `udpsrc ! rtpbin (rtprtxreceive, jitterbuffer with
/// do-retransmission) ! rtpvrawdepay ! appsink`, RTCP in on `rtcp_port` and out to
/// `rtcp_dest`. The jitterbuffer is kept in `jb` for its stats.
fn rtx_receiver_pipeline(
    o: &ChildOpts,
    keep: Arc<Mutex<Option<gst::Element>>>,
    jb: Arc<Mutex<Option<gst::Element>>>,
) -> Result<gst::Pipeline> {
    let pipeline = gst::Pipeline::new();
    let mut props = vec![
        ("name", "rtpbin".to_owned()),
        ("rtp-profile", "avpf".to_owned()),
        ("do-retransmission", "true".to_owned()),
    ];
    if let Some(ms) = o.latency_ms {
        props.push(("latency", ms.to_string()));
    }
    let props: Vec<(&str, &str)> = props.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let rtpbin = make("rtpbin", &props)?;
    let (w, h, fps) = (o.width, o.height, o.fps);
    rtpbin.connect("request-pt-map", false, move |args| {
        let pt = args.get(2)?.get::<u32>().ok()?;
        let caps = match pt {
            RTP_PT => rtp_caps(w, h, fps),
            RTX_PT => format!(
                "application/x-rtp,media=(string)video,clock-rate=(int)90000,\
                 encoding-name=(string)RTX,apt=(int){RTP_PT},payload=(int){RTX_PT}"
            ),
            _ => return None,
        };
        caps.parse::<gst::Caps>().ok().map(|c| c.to_value())
    });
    rtpbin.connect("request-aux-receiver", false, move |args| {
        let session = args.get(1)?.get::<u32>().ok()?;
        rtx_aux("rtprtxreceive", session, &keep)
    });
    rtpbin.connect("new-jitterbuffer", false, move |args| {
        if let (Some(Ok(e)), Ok(mut j)) = (args.get(1).map(|v| v.get::<gst::Element>()), jb.lock())
        {
            j.get_or_insert(e);
        }
        None
    });
    let port = o.port.to_string();
    let rtcp_dest = o.rtcp_dest.to_string();
    let rtcp_port = o.rtcp_port.to_string();
    let buffer = SOCKET_BUFFER.to_string();
    let caps = rtp_caps(o.width, o.height, o.fps);
    let src = make(
        "udpsrc",
        &[
            ("name", "src"),
            ("address", "127.0.0.1"),
            ("port", &port),
            ("buffer-size", &buffer),
            ("caps", &caps),
        ],
    )?;
    let rtcp_in = make("udpsrc", &[("address", "127.0.0.1"), ("port", &rtcp_port)])?;
    let rtcp_out = make(
        "udpsink",
        &[
            ("host", "127.0.0.1"),
            ("port", &rtcp_dest),
            ("sync", "false"),
            ("async", "false"),
        ],
    )?;
    let tail = gst::parse::bin_from_description("rtpvrawdepay ! appsink name=sink", true)
        .context("the receiver's tail")?;
    pipeline
        .add_many([&src, &rtcp_in, &rtpbin, &rtcp_out, tail.upcast_ref()])
        .context("build the receiver")?;
    src.link_pads(Some("src"), &rtpbin, Some("recv_rtp_sink_0"))
        .context("link udpsrc to rtpbin")?;
    rtcp_in
        .link_pads(Some("src"), &rtpbin, Some("recv_rtcp_sink_0"))
        .context("link rtpbin's RTCP in")?;
    rtpbin
        .link_pads(Some("send_rtcp_src_0"), &rtcp_out, Some("sink"))
        .context("link rtpbin's RTCP out")?;
    set_session_bandwidth(&pipeline, o)?;
    let tail_sink = tail
        .static_pad("sink")
        .context("the tail has no sink pad")?;
    rtpbin.connect_pad_added(move |_, pad| {
        if pad.name().starts_with("recv_rtp_src_") && !tail_sink.is_linked() {
            let _ = pad.link(&tail_sink);
        }
    });
    Ok(pipeline)
}

// ---------------------------------------------------------------------------------------
// Sender child
// ---------------------------------------------------------------------------------------

/// What the probe on the sender's sink pad saw (videoipsink's, or for RTP udpsink's): how
/// late each frame reached it. Lateness of a buffer is the pipeline's running time when it
/// reaches the pad (clock time minus base time) minus its PTS as running time. One entry per
/// frame (run of buffers with one PTS): an RTP frame is many packets, and its entry is its
/// latest packet's, so the last and worst entries are the last and worst buffer's.
#[derive(Debug, Default)]
struct Lateness {
    /// The sink's clock and base time, taken at the first buffer (the pipeline is PLAYING).
    clock: Option<(gst::Clock, gst::ClockTime)>,
    segment: Option<gst::FormattedSegment<gst::ClockTime>>,
    /// Per frame, ns (negative: early).
    late_ns: Vec<i64>,
    last_pts: Option<gst::ClockTime>,
    /// Buffers that reached the pad (every RTP packet counts), and those not measured (no
    /// PTS, segment or clock).
    buffers: u64,
    unmeasured: u64,
    /// CLOCK_MONOTONIC of the first and last buffer at the pad.
    first_ns: u64,
    last_ns: u64,
}

impl Lateness {
    /// The running time now, ns, from `sink`'s clock.
    fn running_time_ns(&mut self, sink: &gst::glib::WeakRef<gst::Element>) -> Option<i64> {
        if self.clock.is_none() {
            let sink = sink.upgrade()?;
            self.clock = Some((sink.clock()?, sink.base_time()?));
        }
        let (clock, base) = self.clock.as_ref()?;
        Some(clock.time().nseconds() as i64 - base.nseconds() as i64)
    }

    /// One buffer with `pts` reached the pad at running time `now` (ns).
    fn record(&mut self, now: Option<i64>, pts: Option<gst::ClockTime>, mono: u64) {
        self.buffers += 1;
        if self.first_ns == 0 {
            self.first_ns = mono;
        }
        self.last_ns = mono;
        let running = pts.and_then(|p| self.segment.as_ref()?.to_running_time(p));
        let (Some(now), Some(pts), Some(running)) = (now, pts, running) else {
            self.unmeasured += 1;
            return;
        };
        let late = now - running.nseconds() as i64;
        match self.late_ns.last_mut() {
            Some(l) if self.last_pts == Some(pts) => *l = (*l).max(late),
            _ => {
                self.late_ns.push(late);
                self.last_pts = Some(pts);
            }
        }
    }

    /// ` late_*=` fields of the sender's result line, µs.
    fn fields(&self) -> String {
        let mut sorted = self.late_ns.clone();
        sorted.sort_unstable();
        let us = |ns: Option<&i64>| ns.map_or(f64::NAN, |&v| v as f64 / 1e3);
        let pct = |p: f64| {
            let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
            us(sorted.get(rank.clamp(1, sorted.len().max(1)) - 1))
        };
        format!(
            " late_frames={} late_buffers={} late_unmeasured={} late_last_us={:.0} \
             late_max_us={:.0} late_p50_us={:.0} late_p99_us={:.0}",
            self.late_ns.len(),
            self.buffers,
            self.unmeasured,
            us(self.late_ns.last()),
            us(sorted.last()),
            pct(50.0),
            pct(99.0),
        )
    }
}

/// Measures, from now on, how late buffers reach `pad` of `sink` (see [`Lateness`]).
fn probe_lateness(sink: &gst::Element, pad: &gst::Pad) -> Arc<Mutex<Lateness>> {
    let state = Arc::new(Mutex::new(Lateness::default()));
    let st = state.clone();
    let sink = sink.downgrade();
    pad.add_probe(
        gst::PadProbeType::BUFFER
            | gst::PadProbeType::BUFFER_LIST
            | gst::PadProbeType::EVENT_DOWNSTREAM,
        move |_, info| {
            let Ok(mut s) = st.lock() else {
                return gst::PadProbeReturn::Ok;
            };
            match &info.data {
                Some(gst::PadProbeData::Buffer(b)) => {
                    let now = s.running_time_ns(&sink);
                    s.record(now, b.pts(), mono_ns());
                }
                Some(gst::PadProbeData::BufferList(list)) => {
                    let now = s.running_time_ns(&sink);
                    let mono = mono_ns();
                    for b in list.iter() {
                        s.record(now, b.pts(), mono);
                    }
                }
                Some(gst::PadProbeData::Event(e)) => {
                    if let gst::EventView::Segment(seg) = e.view() {
                        s.segment = seg.segment().downcast_ref::<gst::ClockTime>().cloned();
                    }
                }
                _ => {}
            }
            gst::PadProbeReturn::Ok
        },
    );
    state
}

/// Stamps `buf` as frame `n`: number and CLOCK_MONOTONIC in the first 16 bytes, PTS and
/// duration. Fails if the buffer or its memory is shared.
fn stamp(buf: &mut gst::Buffer, n: u64, fps: u64) -> bool {
    let Some(b) = buf.get_mut() else {
        return false;
    };
    let frame = 1_000_000_000 / fps;
    b.set_pts(gst::ClockTime::from_nseconds(n * frame));
    b.set_duration(gst::ClockTime::from_nseconds(frame));
    let Ok(mut map) = b.map_writable() else {
        return false;
    };
    map[0..8].copy_from_slice(&n.to_le_bytes());
    map[8..16].copy_from_slice(&mono_ns().to_le_bytes());
    true
}

/// What a new user runs (README): a live test source, the default pacing and sync.
fn live_sender_line(
    width: u32,
    height: u32,
    fps: u64,
    port: impl Display,
    frames: u64,
    protection: &str,
) -> String {
    format!(
        "videotestsrc is-live=true num-buffers={frames} ! \
         video/x-raw,format=UYVY,width={width},height={height},framerate={fps}/1 ! \
         videoipsink host=127.0.0.1 port={port}{protection}"
    )
}

/// The first element of `pipeline` made by `factory`.
fn by_factory(pipeline: &gst::Pipeline, factory: &str) -> Option<gst::Element> {
    pipeline
        .iterate_elements()
        .into_iter()
        .flatten()
        .find(|e| e.factory().is_some_and(|f| f.name() == factory))
}

/// What the sender did up to its end of stream.
struct Sent {
    pushed: u64,
    copies: u64,
    t_first: u64,
    t_last_push: u64,
    setup_cpu_us: u64,
    excluded_cpu_us: u64,
}

fn run_sender(o: &ChildOpts) -> Result<()> {
    gst_init()?;
    // rtp-rtx: the rtprtxsend that rtpbin asked for, to read its counters at the end.
    let rtx: Arc<Mutex<Option<gst::Element>>> = Arc::default();
    // A live source sends no more than the cap allows, as appsrc in rt mode.
    let live_frames = o.frames.min(o.seconds * o.fps);
    let pipeline = match o.transport {
        Transport::VideoIp { .. } if o.live => launch(&live_sender_line(
            o.width,
            o.height,
            o.fps,
            o.port,
            live_frames,
            &o.transport.protection(),
        ))?,
        Transport::VideoIp { .. } => launch(&format!(
            "appsrc name=src ! videoipsink name=sink host=127.0.0.1 port={} sync=false \
             mtu={MTU} pacing={} buffer-size={SOCKET_BUFFER}{}",
            o.port,
            if o.paced { "frame" } else { "none" },
            o.transport.protection()
        ))?,
        _ if o.live => return Err("a live source only with videoip".into()),
        Transport::Rtp => launch(&format!(
            "appsrc name=src ! rtpvrawpay mtu={MTU} ! udpsink name=sink host=127.0.0.1 \
             port={} sync=false buffer-size={SOCKET_BUFFER}",
            o.port
        ))?,
        Transport::RtpRtx => rtx_sender_pipeline(o, rtx.clone())?,
        Transport::Rist => {
            let p = launch(&format!(
                "appsrc name=src ! rtpvrawpay mtu={MTU} pt={RTP_PT} ! ristsink name=sink \
                 address=127.0.0.1 port={}",
                o.port
            ))?;
            set_socket_buffers(&p);
            p
        }
    };
    let sink = if o.live {
        by_factory(&pipeline, "videoipsink").context("no videoipsink")?
    } else {
        pipeline.by_name("sink").context("no sink")?
    };
    let sink_pad = sink.static_pad("sink").context("the sink has no pad")?;
    let late = probe_lateness(&sink, &sink_pad);
    // ristsink never posts EOS (its RTCP sink does not get one): the end of stream reaching
    // the sink's pad counts too, once a second has passed without the message.
    let eos_at_pad = Arc::new(AtomicU64::new(0));
    {
        let flag = eos_at_pad.clone();
        sink_pad.add_probe(gst::PadProbeType::EVENT_DOWNSTREAM, move |_, info| {
            if let Some(gst::PadProbeData::Event(e)) = &info.data {
                if e.type_() == gst::EventType::Eos {
                    flag.store(mono_ns(), Ordering::SeqCst);
                }
            }
            gst::PadProbeReturn::Ok
        });
    }
    let bus = pipeline.bus().context("no bus")?;
    let (sent, eos_deadline) = if o.live {
        start(&pipeline, "sender")?;
        let setup_cpu_us = process_cpu_us();
        // The source ends the stream itself; a sender that falls behind takes longer than
        // its frames, and the bench kills it after --seconds + 60 s.
        let deadline = Instant::now() + Duration::from_secs(o.seconds + 50);
        let sent = Sent {
            pushed: 0,
            copies: 0,
            t_first: 0,
            t_last_push: 0,
            setup_cpu_us,
            excluded_cpu_us: 0,
        };
        (sent, deadline)
    } else {
        let sent = push_frames(o, &pipeline)?;
        (sent, Instant::now() + Duration::from_secs(30))
    };
    let msg = loop {
        let msg = bus.timed_pop_filtered(
            gst::ClockTime::from_mseconds(50),
            &[gst::MessageType::Eos, gst::MessageType::Error],
        );
        let at_pad = eos_at_pad.load(Ordering::SeqCst);
        if msg.is_some() || Instant::now() > eos_deadline {
            break msg;
        }
        if at_pad != 0 && mono_ns().saturating_sub(at_pad) > 1_000_000_000 {
            break Some(gst::message::Eos::new());
        }
    };
    let t_eos = mono_ns();
    if o.linger_ms > 0 {
        // Late requests for the last frames still get answers.
        std::thread::sleep(Duration::from_millis(o.linger_ms));
    }
    let mut extra = match o.transport {
        Transport::VideoIp { .. } => {
            let s = sink.property::<gst::Structure>("stats");
            format!(
                " frames_sent={} datagrams_sent={} send_errors={} x_retransmitted={} \
                 x_nacks_received={}",
                stat(&s, "frames-sent"),
                stat(&s, "datagrams-sent"),
                stat(&s, "send-errors"),
                stat(&s, "datagrams-retransmitted"),
                stat(&s, "nacks-received"),
            )
        }
        Transport::Rtp => String::new(),
        Transport::RtpRtx => {
            let x = match rtx.lock().ok().and_then(|r| r.clone()) {
                Some(r) => format!(
                    " x_rtx_requests={} x_rtx_packets={}",
                    r.property::<u32>("num-rtx-requests"),
                    r.property::<u32>("num-rtx-packets")
                ),
                None => " x_rtprtxsend=none".into(),
            };
            x + &session_stats(&pipeline)
        }
        Transport::Rist => fields(
            &sink.property::<gst::Structure>("stats"),
            &["sent-original-packets", "sent-retransmitted-packets"],
        ),
    };
    let late = late.lock().map_err(|_| "lateness poisoned")?;
    extra += &late.fields();
    let sent = if o.live {
        // Frames count from the first to reach the sink.
        Sent {
            pushed: late.buffers,
            t_first: late.first_ns,
            t_last_push: late.last_ns,
            ..sent
        }
    } else {
        sent
    };
    drop(late);
    let _ = pipeline.set_state(gst::State::Null);
    match msg.as_ref().map(|m| m.view()) {
        Some(gst::MessageView::Eos(_)) => {}
        Some(gst::MessageView::Error(e)) => return Err(format!("sender: {}", e.error())),
        _ => return Err("sender: no end of stream in time".into()),
    }
    println!(
        "result pushed={} copies={} t_first_ns={} t_last_push_ns={} t_eos_ns={t_eos} \
         setup_cpu_us={} excluded_cpu_us={}{extra}",
        sent.pushed,
        sent.copies,
        sent.t_first,
        sent.t_last_push,
        sent.setup_cpu_us,
        sent.excluded_cpu_us,
    );
    Ok(())
}

/// Starts `pipeline` and feeds its appsrc from the ring, then ends the stream.
fn push_frames(o: &ChildOpts, pipeline: &gst::Pipeline) -> Result<Sent> {
    let len = frame_bytes(o.width, o.height);
    let appsrc = pipeline
        .by_name("src")
        .context("no appsrc")?
        .downcast::<gst_app::AppSrc>()
        .map_err(|_| "src is not an appsrc")?;
    let caps = video_caps(o.width, o.height, o.fps)
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
    start(pipeline, "sender")?;

    let setup_cpu_us = process_cpu_us();
    let mut copies = 0u64;
    let mut copy_cpu_ns = 0u64;
    let mut pushed = 0u64;
    let t_first = mono_ns();
    let start_at = Instant::now();
    let cap = Duration::from_secs(o.seconds);
    let mut push_error = None;
    for n in 0..o.frames {
        let due = Duration::from_nanos(n * 1_000_000_000 / o.fps);
        if (o.realtime && due >= cap) || start_at.elapsed() >= cap {
            break;
        }
        if o.realtime {
            if let Some(wait) = due.checked_sub(start_at.elapsed()) {
                std::thread::sleep(wait);
            }
        }
        let slot = n as usize % RING;
        if !stamp(&mut ring[slot], n, o.fps) {
            // Still in use downstream: work on a copy (bench work, not transport work).
            let t0 = thread_cpu_ns();
            ring[slot] = ring[slot].copy_deep().context("copy a frame")?;
            copy_cpu_ns += thread_cpu_ns() - t0;
            copies += 1;
            if !stamp(&mut ring[slot], n, o.fps) {
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
        let detail = bus_error(pipeline).unwrap_or_default();
        let _ = pipeline.set_state(gst::State::Null);
        return Err(format!("pushing frame {pushed} failed: {e:?} {detail}"));
    }
    appsrc
        .end_of_stream()
        .map_err(|e| format!("end of stream refused: {e:?}"))?;
    Ok(Sent {
        pushed,
        copies,
        t_first,
        t_last_push,
        setup_cpu_us,
        excluded_cpu_us: copy_cpu_ns / 1000,
    })
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
    /// Numbers of the intact frames, in order.
    intact_frames: Vec<u64>,
    first_ns: u64,
    last_ns: u64,
    /// Longest time between two delivered frames, ns, and how often the sequence of
    /// delivered frames skipped (frames missing between two delivered ones).
    max_gap_ns: u64,
    gaps: u64,
    /// PTS of the last buffer (live receiver), ns.
    last_pts_ns: Option<u64>,
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
                self.delivered(now, self.last_frame_no.is_some_and(|l| n > l + 1));
                self.last_frame_no = Some(n);
                self.intact_frames.push(n);
                self.latencies_ns.push(now.saturating_sub(sent_ns));
            }
            None => self.damaged += 1,
        }
        self.check_cpu_ns += thread_cpu_ns() - t0;
    }

    /// Counts one delivered frame at `now`, after a gap in the sequence if `skipped`.
    fn delivered(&mut self, now: u64, skipped: bool) {
        self.intact += 1;
        if self.first_ns == 0 {
            self.first_ns = now;
        } else {
            self.max_gap_ns = self.max_gap_ns.max(now.saturating_sub(self.last_ns));
        }
        self.gaps += u64::from(skipped);
        self.last_ns = now;
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

/// What a new user runs to receive (README), on `port`.
fn live_receiver_line(port: impl Display, protection: &str) -> String {
    format!("videoipsrc port={port}{protection} ! fakesink sync=true")
}

/// The `p`th percentile of `sorted` in µs; NaN if there is none (a live receiver has no
/// stamps to take latency from).
fn percentile_us(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1] as f64 / 1000.0
}

fn run_receiver(o: &ChildOpts) -> Result<()> {
    gst_init()?;
    let rtx: Arc<Mutex<Option<gst::Element>>> = Arc::default();
    let jitterbuffer: Arc<Mutex<Option<gst::Element>>> = Arc::default();
    // A live receiver is what a new user runs, on a port that is free now.
    let live_port = if o.live && o.port == 0 {
        let probe = std::net::UdpSocket::bind("0.0.0.0:0").context("find a free port")?;
        probe.local_addr().context("find a free port")?.port()
    } else {
        o.port
    };
    let pipeline = match o.transport {
        Transport::VideoIp { .. } if o.live => {
            launch(&live_receiver_line(live_port, &o.transport.protection()))?
        }
        _ if o.live => return Err("a live receiver only with videoip".into()),
        Transport::VideoIp { .. } => launch(&format!(
            "videoipsrc name=src address=127.0.0.1 port={} buffer-size={SOCKET_BUFFER} {}{} \
             ! appsink name=sink",
            o.port,
            o.latency_ms
                .map_or_else(String::new, |ms| format!("latency={ms}")),
            o.transport.protection()
        ))?,
        Transport::Rtp => launch(&format!(
            "udpsrc name=src address=127.0.0.1 port={} buffer-size={SOCKET_BUFFER} \
             ! rtpvrawdepay ! appsink name=sink",
            o.port
        ))?,
        Transport::RtpRtx => rtx_receiver_pipeline(o, rtx.clone(), jitterbuffer.clone())?,
        Transport::Rist => {
            let p = launch(&format!(
                "ristsrc name=src address=127.0.0.1 port={} {} ! rtpvrawdepay ! appsink name=sink",
                o.port,
                o.latency_ms
                    .map_or_else(String::new, |ms| format!("receiver-buffer={ms}"))
            ))?;
            set_socket_buffers(&p);
            set_session_bandwidth(&p, o)?;
            // ristsrc maps only static payload types to caps; its rtpbin asks on.
            let rtpbin = p
                .by_name("rist_recv_rtpbin")
                .context("ristsrc has no rist_recv_rtpbin")?;
            let (w, h, fps) = (o.width, o.height, o.fps);
            rtpbin.connect("request-pt-map", false, move |args| {
                let pt = args.get(2)?.get::<u32>().ok()?;
                (pt == RTP_PT)
                    .then(|| rtp_caps(w, h, fps).parse::<gst::Caps>().ok())
                    .flatten()
                    .map(|c| c.to_value())
            });
            p
        }
    };
    let src = if o.live {
        by_factory(&pipeline, "videoipsrc").context("no videoipsrc")?
    } else {
        pipeline.by_name("src").context("no src")?
    };
    if o.transport == Transport::Rtp {
        let caps = rtp_caps(o.width, o.height, o.fps)
            .parse::<gst::Caps>()
            .context("RTP caps")?;
        src.set_property("caps", &caps);
    }
    let state = Arc::new(Mutex::new(RxState {
        frame_len: frame_bytes(o.width, o.height),
        total_frames: o.frames,
        latencies_ns: Vec::with_capacity(o.frames as usize),
        ..RxState::default()
    }));
    let cb_state = state.clone();
    if o.live {
        // No stamps to check: every buffer at fakesink's pad counts, and a step in PTS of
        // more than 1.5 frame intervals is a gap.
        let sink = by_factory(&pipeline, "fakesink").context("no fakesink")?;
        let pad = sink.static_pad("sink").context("fakesink has no pad")?;
        let interval = 1_000_000_000 / o.fps;
        pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
            let now = mono_ns();
            if let (Some(gst::PadProbeData::Buffer(b)), Ok(mut st)) = (&info.data, cb_state.lock())
            {
                let pts = b.pts().map(|p| p.nseconds());
                let skipped = matches!(
                    (st.last_pts_ns, pts), (Some(l), Some(p)) if p > l + interval * 3 / 2
                );
                st.last_pts_ns = pts.or(st.last_pts_ns);
                st.buffers += 1;
                st.last_activity_ns = now;
                st.delivered(now, skipped);
            }
            gst::PadProbeReturn::Ok
        });
    } else {
        let appsink = pipeline
            .by_name("sink")
            .context("no appsink")?
            .downcast::<gst_app::AppSink>()
            .map_err(|_| "sink is not an appsink")?;
        appsink.set_property("sync", false);
        appsink.set_property("enable-last-sample", false);
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
    }

    pipeline
        .set_state(gst::State::Ready)
        .map_err(|_| "the receiver cannot open its socket")?;
    let port = match o.transport {
        Transport::VideoIp { .. } => u16::try_from(src.property::<i32>("port")).unwrap_or(0),
        _ => o.port,
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
        Transport::VideoIp { .. } => {
            let s = src.property::<gst::Structure>("stats");
            format!(
                " frames_dropped={} frames_dropped_late={} datagrams_late={} datagrams_lost={} \
                 datagrams_received={} largest_burst={} mean_burst={:.1}",
                stat(&s, "frames-dropped"),
                stat(&s, "frames-dropped-late"),
                stat(&s, "datagrams-late"),
                stat(&s, "datagrams-lost"),
                stat(&s, "datagrams-received"),
                stat(&s, "largest-burst"),
                stat(&s, "datagrams-received") as f64 / stat(&s, "receives").max(1) as f64
            ) + &fields(
                &s,
                &[
                    "datagrams-lost",
                    "datagrams-requested",
                    "datagrams-retransmitted",
                    "nacks-sent",
                    "frames-recovered",
                    "frames-dropped",
                    "datagrams-invalid",
                    "rtt",
                ],
            )
        }
        Transport::Rtp => String::new(),
        Transport::RtpRtx => {
            let mut x = match rtx.lock().ok().and_then(|r| r.clone()) {
                Some(r) => format!(
                    " x_rtx_requests={} x_rtx_packets={} x_rtx_assoc_packets={}",
                    r.property::<u32>("num-rtx-requests"),
                    r.property::<u32>("num-rtx-packets"),
                    r.property::<u32>("num-rtx-assoc-packets")
                ),
                None => " x_rtprtxreceive=none".into(),
            };
            x += &session_stats(&pipeline);
            if let Some(j) = jitterbuffer.lock().ok().and_then(|j| j.clone()) {
                x += &fields(
                    &j.property::<gst::Structure>("stats"),
                    &[
                        "num-pushed",
                        "num-lost",
                        "num-late",
                        "rtx-count",
                        "rtx-success-count",
                        "rtx-rtt",
                    ],
                );
            }
            x
        }
        Transport::Rist => fields(
            &src.property::<gst::Structure>("stats"),
            &[
                "received",
                "recovered",
                "permanently-lost",
                "dropped",
                "duplicates",
                "retransmission-requests-sent",
                "rtx-roundtrip-time",
            ],
        ),
    };
    let _ = pipeline.set_state(gst::State::Null);
    let how = outcome?;
    let mut st = state.lock().map_err(|_| "receiver state poisoned")?;
    // Which frames did not arrive intact (the first few), to tell start, middle and end apart.
    let mut missing = Vec::new();
    let mut next = st.intact_frames.iter().peekable();
    for n in 0..o.frames {
        if next.peek() == Some(&&n) {
            next.next();
        } else if missing.len() < 12 {
            missing.push(n.to_string());
        }
    }
    let extra = if missing.is_empty() || o.frames - st.intact > 100 || o.live {
        extra
    } else {
        format!("{extra} x_missing_frames={}", missing.join(","))
    };
    st.pending = None;
    st.latencies_ns.sort_unstable();
    let l = &st.latencies_ns;
    println!(
        "result end={how} buffers={} intact={} damaged={} verified={} mismatched={} \
         unpoisoned={} lat_p50_us={:.0} lat_p90_us={:.0} lat_p99_us={:.0} lat_max_us={:.0} \
         t_first_ns={} t_last_ns={} t_last_any_ns={} max_gap_us={} gaps={} \
         setup_cpu_us={setup_cpu_us} excluded_cpu_us={}{extra}",
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
        st.max_gap_ns / 1000,
        st.gaps,
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
    /// Delivered frames per second at the receiver: frame intervals over the span from the
    /// first to the last delivered frame.
    rx_fps: f64,
    /// Longest time between two delivered frames, ms; skips in their sequence.
    max_gap_ms: f64,
    gaps: u64,
    /// The sender's lateness at its sink pad, if it measured any.
    late: Option<Late>,
    lat_us: [f64; 4],
    kernel_drops: Option<u64>,
    softirqd_s: f64,
    /// Machine-wide busy and stolen CPU over the whole run, start-up and idle stop included.
    machine_busy_s: f64,
    steal_s: f64,
    copies: u64,
    notes: String,
    /// What the relay did, for a run through it.
    relay: Option<RelayCount>,
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

/// How late frames reached the sender's sink pad (see [`Lateness`]), ms.
#[derive(Debug, Clone, Copy)]
struct Late {
    frames: u64,
    last: f64,
    max: f64,
    p50: f64,
    p99: f64,
}

impl Late {
    /// From the sender's result line; None if it measured nothing.
    fn parse(res: &HashMap<String, String>) -> Option<Late> {
        let ms = |k: &str| get::<f64>(res, k, "sender").map_or(f64::NAN, |v| v / 1e3);
        let frames: u64 = get(res, "late_frames", "sender").ok()?;
        (frames > 0).then(|| Late {
            frames,
            last: ms("late_last_us"),
            max: ms("late_max_us"),
            p50: ms("late_p50_us"),
            p99: ms("late_p99_us"),
        })
    }
}

/// A run through the lossy relay: which row and column of the loss table.
#[derive(Debug, Clone, Copy)]
struct Lossy {
    row: LossRow,
    column: Column,
    /// Seed of the relay's loss pattern.
    seed: u64,
}

/// Extra arguments of the receiver and the sender, and the relay between them, for a run
/// through the relay. Every port is chosen here, before either child starts: the receiver
/// listens on free ports probed now, the sender sends to the relay.
fn wire_relay(
    transport: Transport,
    l: &Lossy,
    o: &BenchOpts,
    seconds: u64,
) -> Result<(Vec<String>, Vec<String>, Relay)> {
    let budget = ["--latency".to_owned(), o.latency_ms.to_string()];
    let linger = ["--linger".to_owned(), LINGER_MS.to_string()];
    let arg = |k: &str, v: u16| [k.to_owned(), v.to_string()];
    let (mut rx, mut tx) = (Vec::new(), Vec::new());
    let mut links = Vec::new();
    match transport {
        Transport::VideoIp { .. } | Transport::Rtp => {
            let q = free_port(false)?;
            let f = relay_socket(0)?;
            rx.extend(arg("--port", q));
            tx.extend(arg("--port", f.local_addr().port()));
            links.push((f, q));
            if transport != Transport::Rtp && !l.column.default_latency {
                rx.extend(budget);
            }
        }
        Transport::RtpRtx => {
            let (q, r, s) = (free_port(false)?, free_port(false)?, free_port(false)?);
            let (f0, f1, f2) = (relay_socket(0)?, relay_socket(0)?, relay_socket(0)?);
            rx.extend(arg("--port", q));
            rx.extend(arg("--rtcp-port", r));
            rx.extend(arg("--rtcp-dest", f2.local_addr().port()));
            rx.extend(budget);
            tx.extend(arg("--port", f0.local_addr().port()));
            tx.extend(arg("--rtcp-port", s));
            tx.extend(arg("--rtcp-dest", f1.local_addr().port()));
            // RTP ahead; sender reports ahead; receiver reports and NACKs back.
            links.extend([(f0, q), (f1, r), (f2, s)]);
        }
        Transport::Rist => {
            // RTP on an even port, RTCP (both ways) on the next one, at both ends.
            let q = free_port(true)?;
            let (f0, f1) = relay_socket_pair()?;
            rx.extend(arg("--port", q));
            rx.extend(budget);
            tx.extend(arg("--port", f0.local_addr().port()));
            links.extend([(f0, q), (f1, q + 1)]);
        }
    }
    if transport != Transport::Rtp {
        tx.extend(linger);
    }
    let relay = Relay::start(
        links,
        l.row,
        Duration::from_millis(o.delay_ms),
        l.seed,
        Duration::from_secs(seconds + 90),
    )?;
    Ok((rx, tx, relay))
}

fn run_one(case: Case, transport: Transport, o: &BenchOpts, lossy: Option<&Lossy>) -> Result<Run> {
    let frames = if lossy.is_some() {
        o.loss_frames
    } else {
        o.frames
    };
    // Unless capped on the command line, a real-time run takes as long as its frames do
    // (600 at 2160p30: 20 s).
    let seconds = if o.seconds_given || !case.realtime {
        o.seconds
    } else {
        o.seconds.max(frames.div_ceil(case.fps))
    };
    let common = |role: &str| -> Vec<String> {
        [
            "--role",
            role,
            "--transport",
            transport.name(),
            "--width",
            &case.width.to_string(),
            "--height",
            &case.height.to_string(),
            "--fps",
            &case.fps.to_string(),
            "--mode",
            if case.realtime { "rt" } else { "max" },
            "--pacing",
            if case.paced { "frame" } else { "none" },
            "--source",
            if case.live { "live" } else { "appsrc" },
            "--frames",
            &frames.to_string(),
            "--seconds",
            &seconds.to_string(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let (mut rx_args, mut tx_args) = (common("receiver"), common("sender"));
    // The sender's port comes from the receiver's "ready" line unless set here.
    let mut tx_port_given = true;
    let mut relay = None;
    match lossy {
        Some(l) => {
            let (rx_extra, tx_extra, r) = wire_relay(transport, l, o, seconds)?;
            rx_args.extend(rx_extra);
            tx_args.extend(tx_extra);
            relay = Some(r);
        }
        None => match transport {
            // videoipsrc picks a port and reports it.
            Transport::VideoIp { .. } => {
                rx_args.extend(["--port".to_owned(), "0".to_owned()]);
                tx_port_given = false;
            }
            Transport::Rtp => {
                let port = free_port(false)?.to_string();
                rx_args.extend(["--port".to_owned(), port.clone()]);
                tx_args.extend(["--port".to_owned(), port]);
            }
            _ => {
                return Err(format!(
                    "{} runs only through the relay (--loss)",
                    transport.name()
                ))
            }
        },
    }
    let drops_before = udp_rcvbuf_errors();
    let softirqd_before = ksoftirqd_cpu_s();
    let machine_before = machine_cpu_s();
    let mut rx = Proc::spawn("receiver", &rx_args)?;
    let ready = rx.wait_line("ready ", Duration::from_secs(30))?;
    if !tx_port_given {
        let port: u16 = get(&ready, "port", "receiver")?;
        tx_args.extend(["--port".to_owned(), port.to_string()]);
    }
    let mut tx = Proc::spawn("sender", &tx_args)?;
    let tx_exit = tx.wait(Duration::from_secs(seconds + 60))?;
    let tx_res = if tx_exit.success {
        tx.wait_line("result ", Duration::from_secs(5))
    } else {
        Err(format!("the sender failed ({})", tx_exit.detail))
    };
    rx.tell_stop();
    let rx_exit = rx.wait(Duration::from_secs(30))?;
    let relay = relay.map(Relay::stop);
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
    let intact: u64 = get(&rx_res, "intact", "receiver")?;
    let rx_first: u64 = get(&rx_res, "t_first_ns", "receiver")?;
    let rx_last: u64 = get(&rx_res, "t_last_ns", "receiver")?;
    let rx_fps = if intact > 1 && rx_last > rx_first {
        (intact - 1) as f64 * 1e9 / (rx_last - rx_first) as f64
    } else {
        f64::NAN
    };
    let mut notes = String::new();
    if let Transport::VideoIp { .. } = transport {
        let _ = write!(
            notes,
            "sink frames-sent {} send-errors {}; src frames-dropped {} frames-dropped-late {} \
             datagrams-late {} datagrams-lost {}; datagrams found queued per receive: mean {}, \
             largest {}",
            tx_res.get("frames_sent").map_or("?", |s| s.as_str()),
            tx_res.get("send_errors").map_or("?", |s| s.as_str()),
            rx_res.get("frames_dropped").map_or("?", |s| s.as_str()),
            rx_res
                .get("frames_dropped_late")
                .map_or("?", |s| s.as_str()),
            rx_res.get("datagrams_late").map_or("?", |s| s.as_str()),
            rx_res.get("datagrams_lost").map_or("?", |s| s.as_str()),
            rx_res.get("mean_burst").map_or("?", |s| s.as_str()),
            rx_res.get("largest_burst").map_or("?", |s| s.as_str()),
        );
    }
    for (who, res) in [("sender", &tx_res), ("receiver", &rx_res)] {
        let mut x: Vec<String> = res
            .iter()
            .filter_map(|(k, v)| k.strip_prefix("x_").map(|k| format!("{k}={v}")))
            .collect();
        if !x.is_empty() {
            x.sort();
            let sep = if notes.is_empty() { "" } else { "\n      " };
            let _ = write!(notes, "{sep}{who}: {}", x.join(" "));
        }
    }
    if case.live {
        let sep = if notes.is_empty() { "" } else { "\n      " };
        let _ = write!(
            notes,
            "{sep}no frame checks; sender `{}`, receiver `{}`",
            live_sender_line(
                case.width,
                case.height,
                case.fps,
                "P",
                frames.min(seconds * case.fps),
                &transport.protection()
            ),
            live_receiver_line("P", &transport.protection()),
        );
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
        intact,
        rx_fps,
        max_gap_ms: get::<f64>(&rx_res, "max_gap_us", "receiver")? / 1e3,
        gaps: get(&rx_res, "gaps", "receiver")?,
        late: Late::parse(&tx_res),
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
        relay,
    })
}

// ---------------------------------------------------------------------------------------
// Bench: the lossy relay
// ---------------------------------------------------------------------------------------

/// How long a sender stays up after its end of stream in the loss table, ms: long enough
/// for requests about the last frames within any receiver's budget.
const LINGER_MS: u64 = 500;

/// A free UDP port on 127.0.0.1 (bound, then let go), even with the next one free too if
/// `pair` (RIST: RTP on an even port, RTCP on the next).
fn free_port(pair: bool) -> Result<u16> {
    for _ in 0..200 {
        let probe = std::net::UdpSocket::bind("127.0.0.1:0").context("find a free port")?;
        let port = probe.local_addr().context("find a free port")?.port();
        if !pair {
            return Ok(port);
        }
        if port % 2 == 0
            && port < u16::MAX
            && std::net::UdpSocket::bind(("127.0.0.1", port + 1)).is_ok()
        {
            return Ok(port);
        }
    }
    Err("no free pair of UDP ports".into())
}

/// A socket of the relay on 127.0.0.1 (`port` 0: any), with a receive buffer that holds
/// whole frames: the relay must not lose what it was not told to.
fn relay_socket(port: u16) -> Result<gstvideoip::net::UdpSocket> {
    gstvideoip::net::UdpSocket::open_receiver(&gstvideoip::net::ReceiverConfig {
        address: std::net::Ipv4Addr::LOCALHOST.into(),
        port,
        multicast_iface: 0,
        buffer_size: SOCKET_BUFFER,
        reuse: false,
    })
    .context(format!("open a relay socket on port {port}"))
}

/// Two relay sockets on an even port and the next.
fn relay_socket_pair() -> Result<(gstvideoip::net::UdpSocket, gstvideoip::net::UdpSocket)> {
    for _ in 0..200 {
        let a = relay_socket(0)?;
        let port = a.local_addr().port();
        if port % 2 == 0 && port < u16::MAX {
            if let Ok(b) = relay_socket(port + 1) {
                return Ok((a, b));
            }
        }
    }
    Err("no free pair of UDP ports for the relay".into())
}

/// Decides which datagrams a path loses: runs of `burst` start at random, so that
/// `per_million` of all datagrams are lost (xorshift64; the same as tests/common's).
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

    fn lose(&mut self, row: LossRow) -> bool {
        if self.left > 0 {
            self.left -= 1;
            return true;
        }
        if row.per_million == 0 {
            return false;
        }
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let burst = row.burst.max(1);
        if (self.rng % 1_000_000) * u64::from(burst) < u64::from(row.per_million) {
            self.left = burst - 1;
            return true;
        }
        false
    }
}

/// What the relay did, summed over its links: datagrams seen and lost in each direction,
/// and how late (past its due time) the latest datagram left.
#[derive(Debug, Default, Clone, Copy)]
struct RelayCount {
    ahead: u64,
    ahead_lost: u64,
    back: u64,
    back_lost: u64,
    max_late_us: u64,
    /// The relay thread ran with real-time priority (SCHED_FIFO).
    realtime: bool,
}

type Delayed = std::collections::VecDeque<(Instant, Vec<u8>)>;

/// One path of the relay: what the sending side sends to `front` leaves `out` for `dest`;
/// what comes back to `out` leaves `front` for whoever last sent to `front`. Both ways lose
/// datagrams (each with its own pattern) and delay the rest.
struct Link {
    front: gstvideoip::net::UdpSocket,
    out: gstvideoip::net::UdpSocket,
    dest: std::net::SocketAddr,
    source: Option<std::net::SocketAddr>,
    ahead: Delayed,
    back: Delayed,
    loss_ahead: Loss,
    loss_back: Loss,
}

/// A lossy, delaying UDP relay on loopback, in a thread of the bench (so its CPU is
/// counted in neither child). It moves datagrams in batches (`recvmmsg`, and `sendmmsg`
/// without GSO, so that every receiver gets single datagrams as from a network) and runs
/// until stopped, or `limit` at most.
struct Relay {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<RelayCount>>,
}

impl Relay {
    /// Starts relaying: `links` are each a front socket and the port on 127.0.0.1 that what
    /// arrives there goes to.
    fn start(
        links: Vec<(gstvideoip::net::UdpSocket, u16)>,
        row: LossRow,
        delay: Duration,
        seed: u64,
        limit: Duration,
    ) -> Result<Relay> {
        let mut paths = Vec::new();
        for (i, (front, port)) in links.into_iter().enumerate() {
            let k = i as u64 + 1;
            paths.push(Link {
                front,
                out: relay_socket(0)?,
                dest: (std::net::Ipv4Addr::LOCALHOST, port).into(),
                source: None,
                ahead: Delayed::new(),
                back: Delayed::new(),
                loss_ahead: Loss::new(seed ^ k.wrapping_mul(0x2545_F491_4F6C_DD1D)),
                loss_back: Loss::new(seed ^ k.wrapping_mul(0x9E37_79B9_7F4A_7C15)),
            });
        }
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let thread = std::thread::Builder::new()
            .name("relay".into())
            .spawn(move || relay_loop(paths, row, delay, &stop2, limit))
            .context("start the relay")?;
        Ok(Relay {
            stop,
            thread: Some(thread),
        })
    }

    /// Stops the relay and says what it did.
    fn stop(mut self) -> RelayCount {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .take()
            .and_then(|t| t.join().ok())
            .unwrap_or_default()
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

fn relay_loop(
    mut links: Vec<Link>,
    row: LossRow,
    delay: Duration,
    stop: &AtomicBool,
    limit: Duration,
) -> RelayCount {
    use gstvideoip::net::{RecvBatch, SendBatch, Waker};
    let mut count = RelayCount::default();
    // A network does not wait for the endpoints' CPU: the relay preempts them (real-time
    // priority, where allowed), so that a busy machine delays datagrams as little as it can.
    let param = libc::sched_param { sched_priority: 10 };
    // SAFETY: sets the scheduling policy of the calling thread from a sched_param we own.
    count.realtime =
        unsafe { libc::pthread_setschedparam(libc::pthread_self(), libc::SCHED_FIFO, &param) } == 0;
    let Ok(waker) = Waker::new() else {
        return count;
    };
    let mut rx = RecvBatch::new(64, 65536);
    let mut tx = SendBatch::without_gso();
    let mut fds: Vec<libc::pollfd> = links
        .iter()
        .flat_map(|l| [l.front.fd(), l.out.fd()])
        .map(|fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    // Sends what is due in `q` from `from` to `dest`, in one batch.
    let mut flush = |q: &mut Delayed,
                     from: &gstvideoip::net::UdpSocket,
                     dest: std::net::SocketAddr,
                     max_late_us: &mut u64| {
        let now = Instant::now();
        let due = q.iter().take_while(|(at, _)| *at <= now).count();
        if due > 0 {
            let late = now.saturating_duration_since(q[0].0).as_micros() as u64;
            *max_late_us = (*max_late_us).max(late);
            let _ = tx.send(from, dest, due, |i| [&q[i].1[..]], &waker);
            q.drain(..due);
        }
    };
    let end = Instant::now() + limit;
    while !stop.load(Ordering::Relaxed) && Instant::now() < end {
        let mut got = 0;
        for l in links.iter_mut() {
            let n = rx.recv(&l.front).unwrap_or(0);
            let now = Instant::now();
            for i in 0..rx.len() {
                if let Some(m) = rx.meta(i) {
                    l.source = Some(m.source);
                }
                let Some(d) = rx.get(i) else { continue };
                count.ahead += 1;
                if l.loss_ahead.lose(row) {
                    count.ahead_lost += 1;
                } else {
                    l.ahead.push_back((now + delay, d.to_vec()));
                }
            }
            let m = rx.recv(&l.out).unwrap_or(0);
            for i in 0..rx.len() {
                let Some(d) = rx.get(i) else { continue };
                count.back += 1;
                if l.loss_back.lose(row) {
                    count.back_lost += 1;
                } else {
                    l.back.push_back((now + delay, d.to_vec()));
                }
            }
            got += n + m;
        }
        for l in links.iter_mut() {
            flush(&mut l.ahead, &l.out, l.dest, &mut count.max_late_us);
            if let Some(src) = l.source {
                flush(&mut l.back, &l.front, src, &mut count.max_late_us);
            }
        }
        if got == 0 {
            let now = Instant::now();
            let next = links
                .iter()
                .flat_map(|l| [l.ahead.front(), l.back.front()])
                .flatten()
                .map(|(at, _)| *at)
                .min();
            let wait = next.map_or(Duration::from_millis(50), |t| {
                t.saturating_duration_since(now)
                    .min(Duration::from_millis(50))
            });
            if wait > Duration::ZERO {
                let ts = libc::timespec {
                    tv_sec: 0,
                    tv_nsec: wait.as_nanos() as libc::c_long,
                };
                // SAFETY: ppoll reads `fds.len()` pollfds we own and a timespec on the stack.
                unsafe {
                    libc::ppoll(
                        fds.as_mut_ptr(),
                        fds.len() as libc::nfds_t,
                        &ts,
                        std::ptr::null(),
                    )
                };
            }
        }
    }
    count
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
// Bench: the loss table
// ---------------------------------------------------------------------------------------

/// One cell's run of the loss table: its result, or why it failed or was skipped.
enum Cell {
    Done(Box<Run>),
    Failed(String),
    Skipped(String),
}

/// Runs every cell of the loss table `o.runs` times, runs of one cell spread over the
/// whole table (so that a busy minute of the machine does not hit one cell only).
fn run_loss_table(o: &BenchOpts) -> Vec<(LossRow, Column, Vec<Cell>)> {
    let mut cells: Vec<(LossRow, Column, Vec<Cell>)> = Vec::new();
    for &row in &o.loss {
        for &col in &o.loss_columns {
            cells.push((row, col, Vec::new()));
        }
    }
    for run in 0..o.runs {
        for (i, (row, col, out)) in cells.iter_mut().enumerate() {
            let missing: Vec<&str> = col
                .transport
                .elements()
                .iter()
                .copied()
                .filter(|e| gst::ElementFactory::find(e).is_none())
                .collect();
            if !missing.is_empty() {
                out.push(Cell::Skipped(format!("no {}", missing.join(", "))));
                continue;
            }
            eprintln!(
                "bench: loss {} over {} (run {}/{}) ...",
                row.label,
                col.name(),
                run + 1,
                o.runs
            );
            let lossy = Lossy {
                row: *row,
                column: *col,
                seed: 0x5EED_0000 + u64::from(run) * 1_000 + i as u64,
            };
            out.push(match run_one(LOSS_CASE, col.transport, o, Some(&lossy)) {
                Ok(r) => Cell::Done(Box::new(r)),
                Err(e) => Cell::Failed(e),
            });
        }
    }
    cells
}

/// "a" or "a–b" of the values, formatted by `f`.
fn range<T: PartialOrd + Copy>(v: &[T], f: impl Fn(T) -> String) -> String {
    let mut lo = v[0];
    let mut hi = v[0];
    for &x in v {
        if x < lo {
            lo = x;
        }
        if x > hi {
            hi = x;
        }
    }
    let (a, b) = (f(lo), f(hi));
    if a == b {
        a
    } else {
        format!("{a}–{b}")
    }
}

fn pct(v: f64) -> String {
    if (99.95..100.0).contains(&v) {
        format!("{v:.2}")
    } else {
        format!("{v:.1}").trim_end_matches(".0").to_owned()
    }
}

fn print_loss_table(o: &BenchOpts, cells: &[(LossRow, Column, Vec<Cell>)]) {
    println!();
    println!(
        "loss table: {}x{} UYVY at {} fps, {} frames per run, {} run(s) per cell; relay on \
         loopback loses datagrams both ways (each way its own pattern) and delays the rest by \
         {} ms one way; recovery budget {ms} ms: videoip latency={ms}, rtpbin latency={ms} \
         (rtp-rtx), ristsrc receiver-buffer={ms} (rist); videoip-default: videoipsrc's own \
         latency; rtp: no jitterbuffer, no recovery",
        LOSS_CASE.width,
        LOSS_CASE.height,
        LOSS_CASE.fps,
        o.loss_frames,
        o.runs,
        o.delay_ms,
        ms = o.latency_ms,
    );
    let cols: Vec<Column> = o.loss_columns.clone();
    let header = |what: &str| {
        let mut h = format!("| {what} |");
        let mut sep = "|---|".to_owned();
        for c in &cols {
            let _ = write!(h, " {} |", c.name());
            sep.push_str("---|");
        }
        println!("{h}\n{sep}");
    };
    let cell_of = |row: LossRow, col: Column| {
        cells
            .iter()
            .find(|(r, c, _)| *r == row && *c == col)
            .map(|(_, _, v)| v.as_slice())
    };
    let done = |v: &[Cell]| -> Vec<Run> {
        v.iter()
            .filter_map(|c| match c {
                Cell::Done(r) => Some((**r).clone()),
                _ => None,
            })
            .collect()
    };
    let other = |v: &[Cell]| -> Option<String> {
        v.iter().find_map(|c| match c {
            Cell::Skipped(e) => Some(format!("skipped ({e})")),
            Cell::Failed(e) => Some(format!("FAILED: {e}")),
            Cell::Done(_) => None,
        })
    };
    println!();
    println!("frames delivered intact (+ damaged frames output):");
    header("datagram loss");
    for &row in &o.loss {
        let mut line = format!("| {} |", row.label);
        for &col in &cols {
            let v = cell_of(row, col).unwrap_or(&[][..]);
            let runs = done(v);
            let text = if runs.is_empty() {
                other(v).unwrap_or_default()
            } else {
                let p: Vec<f64> = runs
                    .iter()
                    .map(|r| 100.0 * r.intact as f64 / r.sent.max(1) as f64)
                    .collect();
                let d: Vec<u64> = runs.iter().map(|r| r.damaged).collect();
                let mut t = format!("{} %", range(&p, pct));
                if d.iter().any(|&x| x > 0) {
                    let _ = write!(t, " (+{})", range(&d, |x| x.to_string()));
                }
                if let Some(e) = other(v) {
                    let _ = write!(t, " [also {e}]");
                }
                t
            };
            let _ = write!(line, " {text} |");
        }
        println!("{line}");
    }
    println!();
    println!("CPU ms per delivered frame, sender + receiver (mean over runs):");
    header("datagram loss");
    for &row in &o.loss {
        let mut line = format!("| {} |", row.label);
        for &col in &cols {
            let runs = done(cell_of(row, col).unwrap_or(&[][..]));
            let intact: u64 = runs.iter().map(|r| r.intact).sum();
            let text = if intact == 0 {
                "-".to_owned()
            } else {
                let tx: f64 = runs.iter().map(|r| r.tx_cpu_s).sum::<f64>() * 1e3 / intact as f64;
                let rx: f64 = runs.iter().map(|r| r.rx_cpu_s).sum::<f64>() * 1e3 / intact as f64;
                format!("{tx:.2} + {rx:.2} = {:.2}", tx + rx)
            };
            let _ = write!(line, " {text} |");
        }
        println!("{line}");
    }
    println!();
    println!("loss table details:");
    for (row, col, v) in cells {
        for (i, c) in v.iter().enumerate() {
            let tag = format!("  {} {} #{}", row.label, col.name(), i + 1);
            match c {
                Cell::Done(r) => {
                    println!(
                        "{tag}: sent {} intact {} damaged {}; CPU {:.2} s + {:.2} s; latency \
                         p50 {:.1} ms p99 {:.1} ms; kernel rcvbuf drops {}; steal {:.2} s, \
                         machine busy {:.2} s",
                        r.sent,
                        r.intact,
                        r.damaged,
                        r.tx_cpu_s,
                        r.rx_cpu_s,
                        r.lat_us[0] / 1e3,
                        r.lat_us[2] / 1e3,
                        r.kernel_drops.map_or("?".into(), |d| d.to_string()),
                        r.steal_s,
                        r.machine_busy_s,
                    );
                    println!(
                        "      sender's lateness at its sink pad: last {} ms, max {} ms, p50 {} \
                         ms, p99 {} ms; receiver: {} fps, longest gap {} ms, {} gaps",
                        ms(r.late.map(|l| l.last)),
                        ms(r.late.map(|l| l.max)),
                        ms(r.late.map(|l| l.p50)),
                        ms(r.late.map(|l| l.p99)),
                        fmt_f(r.rx_fps, 1),
                        fmt_f(r.max_gap_ms, 1),
                        r.gaps,
                    );
                    if let Some(rc) = r.relay {
                        println!(
                            "      relay: ahead {} lost {}, back {} lost {}, at most {} µs late{}",
                            rc.ahead,
                            rc.ahead_lost,
                            rc.back,
                            rc.back_lost,
                            rc.max_late_us,
                            if rc.realtime {
                                ""
                            } else {
                                " (no real-time priority)"
                            }
                        );
                    }
                    if !r.notes.is_empty() {
                        println!("      {}", r.notes);
                    }
                }
                Cell::Failed(e) => println!("{tag}: FAILED: {e}"),
                Cell::Skipped(e) => println!("{tag}: skipped ({e})"),
            }
        }
    }
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
        "{:<14} {:<14} {:>5} {:>15} {:>7} {:>6} {:>8} {:>8} {:>8} {:>6} {:>7} {:>9} {:>9} {:>8}",
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
        "/videoip"
    );
    let ok: Vec<&Run> = runs.iter().filter_map(|r| r.as_ref().ok()).collect();
    let us = |r: &Run, v: f64| {
        if r.intact > 0 && v.is_finite() {
            format!("{v:.0} µs")
        } else {
            "-".into()
        }
    };
    for r in runs {
        match r {
            Ok(r) => {
                let ratio = match r.transport {
                    VIDEOIP => None,
                    _ => ok
                        .iter()
                        .find(|v| v.case == r.case && v.transport == VIDEOIP)
                        .map(|v| r.total_ms() / v.total_ms()),
                };
                println!(
                    "{:<14} {:<14} {:>5} {:>6} ({:>5.1}%) {:>7} {:>6.0} {:>8} {:>8} {:>8} {:>6} {:>7} {:>9} {:>9} {:>8}",
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
            Err((case, t, e)) => println!("{:<14} {:<14} FAILED: {e}", case.name, t.name()),
        }
    }
    print_realtime(&ok);
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
            "      buffers out {}, compared in full {} (mismatched {}); latency p90 {} µs, \
             max {} µs; kernel rcvbuf drops {}; ksoftirqd {:.2} s; ring copies {}",
            r.buffers,
            r.verified,
            r.mismatched,
            fmt_f(r.lat_us[1], 0),
            fmt_f(r.lat_us[3], 0),
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

/// A value in ms with one decimal, or `-` for none.
fn ms(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| fmt_f(v, 1))
}

/// The real-time runs: how late frames reached the sender's sink pad, and the rate the
/// receiver got them at.
fn print_realtime(runs: &[&Run]) {
    let rt: Vec<&&Run> = runs.iter().filter(|r| r.case.realtime).collect();
    if rt.is_empty() {
        return;
    }
    println!();
    println!(
        "real time: the sender's lateness at its sink pad (videoipsink's; rtp: udpsink's), ms: \
         running time at arrival minus PTS, over frames; rx fps: delivered frames at the receiver"
    );
    println!(
        "{:<14} {:<14} {:>6} {:>9} {:>9} {:>9} {:>9} {:>7} {:>8} {:>5}",
        "case",
        "transport",
        "frames",
        "late last",
        "late max",
        "late p50",
        "late p99",
        "rx fps",
        "max gap",
        "gaps"
    );
    for r in rt {
        let l = r.late;
        println!(
            "{:<14} {:<14} {:>6} {:>9} {:>9} {:>9} {:>9} {:>7} {:>8} {:>5}",
            r.case.name,
            r.transport.name(),
            l.map_or("-".into(), |l| l.frames.to_string()),
            ms(l.map(|l| l.last)),
            ms(l.map(|l| l.max)),
            ms(l.map(|l| l.p50)),
            ms(l.map(|l| l.p99)),
            fmt_f(r.rx_fps, 1),
            fmt_f(r.max_gap_ms, 1),
            r.gaps,
        );
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
        "settings: {} frames per run ({} in the loss table), sending capped at {} s{}, mtu {MTU}, \
         UYVY @ {FPS} fps (2160p30 30, {} in the loss table), socket buffers {} MiB (live: \
         videoip's defaults)",
        o.frames,
        o.loss_frames,
        o.seconds,
        if o.seconds_given {
            ""
        } else {
            " (rt: or as long as the frames take)"
        },
        LOSS_CASE.fps,
        SOCKET_BUFFER >> 20
    );
    let mut runs = Vec::new();
    for &case in &o.cases {
        for &t in &o.transports {
            if case.live && !matches!(t, Transport::VideoIp { .. }) {
                continue; // what a new user runs is videoip's
            }
            eprintln!("bench: {} over {} ...", case.name, t.name());
            runs.push(run_one(case, t, o, None).map_err(|e| (case, t, e)));
        }
    }
    let loss = if o.loss.is_empty() {
        Vec::new()
    } else {
        run_loss_table(o)
    };
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
    if !loss.is_empty() {
        print_loss_table(o, &loss);
    }
    println!();
    println!(
        "delivered: intact frames (stamp, check words, full comparison of every 10th); \
         damaged: incomplete or corrupt frames pushed out\n\
         fps, Gbit/s: delivered frames (frame bytes only) per wall second, wall = first push \
         to last buffer out\n\
         ms/f: CPU ms per delivered frame, GStreamer set-up and the bench's checks excluded; \
         cores: CPU of both processes / wall\n\
         latency: sender's stamp before appsrc to appsink; /videoip: total CPU per frame over \
         videoip's (no passphrase) in the same case\n\
         late: pipeline running time when a frame's (last) buffer reaches the sender's sink pad \
         minus its PTS; rx fps: frame intervals / time from the first to the last delivered \
         frame\n\
         max gap: longest time between two delivered frames; gaps: frames missing between two \
         delivered ones"
    );
    let failed = runs.iter().filter(|r| r.is_err()).count()
        + net.iter().filter(|r| r.is_err()).count()
        + loss
            .iter()
            .flat_map(|(_, _, v)| v)
            .filter(|c| matches!(c, Cell::Failed(_)))
            .count();
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
