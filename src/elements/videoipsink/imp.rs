// SPDX-License-Identifier: MPL-2.0
//! The `videoipsink` element: a BaseSink that packetizes each buffer and sends it in paced
//! `sendmmsg` batches, straight from the mapped buffer.
//!
//! Locks: `settings` (properties), `state` (held by the streaming thread while it renders),
//! `waker` (only to reach the waker from `unlock`). Never more than one at a time, and no
//! message is posted and no property notified while one is held.

use crate::elements::uri;
use crate::elements::{any_pad_template, apply_uri_params, lock, opt_string, uri_while_running};
use crate::net::{self, SendBatch, SenderConfig, UdpSocket, Waker};
use crate::protocol::fec;
use crate::protocol::{self, flags, reference_clock, SenderReport};
use crate::send::history::{History, SentFrame};
use crate::send::packetizer::{self, FrameMeta, Packetizer};
use crate::send::rate::{self, Admit, RateControl};
use crate::send::receivers::SenderSession;
use crate::send::schedule::{self, FrameSchedule};
use crate::send::subscribers::Subscribers;
use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::prelude::*;
use gst_base::subclass::prelude::*;
use std::hash::{BuildHasher, Hasher};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use super::announce::Announce;
use super::reports::{Kept, ReportThread, Resender};
use super::Pacing;

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "videoipsink",
        gst::DebugColorFlags::empty(),
        Some("videoip sender"),
    )
});

/// How often the stream info is repeated so that late receivers get the caps, and a
/// restarted sender is followed quickly (receivers let a new session take over a port after
/// 200 ms of silence, but only with its complete stream info).
const INFO_INTERVAL: Duration = Duration::from_millis(250);
/// How many times the end-of-stream datagram is sent.
const EOS_REPEAT: usize = 3;
/// Resends may take at most this share of the bytes sent, so that a broken link cannot make
/// the sender flood it.
const DEFAULT_MAX_RETRANSMISSION_PERCENTAGE: u32 = 50;
/// Least time between two warnings about frames the network refused.
const SEND_WARNING_INTERVAL: Duration = Duration::from_secs(2);
/// Bytes each datagram adds to its payload on the wire: the media header, UDP and IPv4 (the
/// rate control counts what the link carries; IPv6 adds 20 more, a rounding error).
const WIRE_OVERHEAD: usize = protocol::MEDIA_HEADER_LEN + 8 + 20;

#[derive(Debug, Clone)]
struct Settings {
    host: String,
    port: u32,
    bind_address: Option<String>,
    bind_port: u32,
    mtu: u32,
    ttl: u32,
    ttl_mc: u32,
    multicast_iface: Option<String>,
    multicast_loop: bool,
    qos_dscp: i32,
    buffer_size: u32,
    batch_size: u32,
    max_retransmission_percentage: u32,
    pacing: Pacing,
    /// Bits per second, 0: unlimited.
    max_bitrate: u64,
    fec_percentage: u32,
    /// The name the stream is offered under.
    source_name: Option<String>,
    /// Whether `host` was set: a named sink without one sends to its subscribers.
    host_set: bool,
    /// Most subscribers at once (0: up to [`crate::send::receivers::MAX_RECEIVERS`]).
    max_receivers: u32,
    /// Whether a named stream is announced by DNS-SD.
    announce: bool,
}

impl Settings {
    /// Subscription mode: named, and no `host` to send to.
    fn subscription(&self) -> bool {
        self.source_name.is_some() && !self.host_set
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            host: "127.0.0.1".into(),
            port: 5004,
            bind_address: None,
            bind_port: 0,
            mtu: 1500,
            ttl: 64,
            ttl_mc: 1,
            multicast_iface: None,
            multicast_loop: true,
            qos_dscp: -1,
            buffer_size: 0,
            batch_size: 64,
            max_retransmission_percentage: DEFAULT_MAX_RETRANSMISSION_PERCENTAGE,
            pacing: Pacing::Frame,
            max_bitrate: 0,
            fec_percentage: 0,
            source_name: None,
            host_set: false,
            max_receivers: 0,
            announce: true,
        }
    }
}

/// Counters read by the `stats` property without taking the streaming lock.
#[derive(Debug, Default)]
struct Counters {
    datagrams_sent: AtomicU64,
    bytes_sent: AtomicU64,
    frames_sent: AtomicU64,
    send_errors: AtomicU64,
    /// Shared with the report thread, which counts these.
    nacks_received: Arc<AtomicU64>,
    retransmitted: Arc<AtomicU64>,
    fec_sent: AtomicU64,
}

struct State {
    /// Frames kept for resending, shared with the report thread.
    history: Arc<Mutex<History<Kept>>>,
    /// What receivers report, and the rate control it drives; shared with the report
    /// thread and the `stats` property.
    table: Arc<Mutex<SenderSession>>,
    /// Whether frames over the rate are dropped (a clock-synchronised sink with a live
    /// source) rather than waited for; found at the first frame after caps.
    live: Option<bool>,
    sender: Arc<UdpSocket>,
    /// The destination (`host`:`port`), or in subscription mode the unspecified address (no
    /// destination of its own; named in errors).
    dest: SocketAddr,
    /// The destination set by `host`, if any.
    fixed: Option<SocketAddr>,
    /// Where datagrams go now: the fixed destination and the subscribers.
    dests: Vec<SocketAddr>,
    /// In subscription mode, the receivers that subscribed (shared with the report thread),
    /// and the generation of the table `dests` was taken from.
    subscribers: Option<(Arc<Mutex<Subscribers>>, u64)>,
    /// The `mtu` property, to name in errors.
    mtu: u32,
    /// Payload bytes per datagram.
    frag: u16,
    /// When a warning about refused frames was last posted.
    send_warning: Option<Instant>,
    packetizer: Packetizer,
    batch: SendBatch,
    waker: Arc<Waker>,
    batch_size: usize,
    /// Datagrams per GSO send (1 without GSO): batches are whole multiples of it.
    gso_align: usize,
    pacing: schedule::Pacing,
    caps: Option<String>,
    info_sent: Option<Instant>,
    /// Repair symbols per block, in percent of its datagrams (0: no FEC).
    fec_percentage: u32,
    fec: fec::Encoder,
}

#[derive(Default)]
pub struct VideoIpSink {
    settings: Mutex<Settings>,
    state: Mutex<Option<State>>,
    waker: Mutex<Option<Arc<Waker>>>,
    /// What receivers report, filled by the report thread. Lock order: `state`, then
    /// `session`, then the table inside it (the streaming thread records the sender reports
    /// it sends; the `stats` property and the report thread take only the last two).
    session: Mutex<Option<Arc<Mutex<SenderSession>>>>,
    reports: Mutex<Option<ReportThread>>,
    /// In subscription mode, the subscribers (for the `stats` property).
    subscribers: Mutex<Option<Arc<Mutex<Subscribers>>>>,
    counters: Counters,
    /// The DNS-SD announcement (`source-name`); its lock is taken alone.
    announce: Announce,
}

fn random_u32() -> u32 {
    std::hash::RandomState::new().build_hasher().finish() as u32
}

impl VideoIpSink {
    fn open(&self, s: &Settings) -> Result<(UdpSocket, SocketAddr, u16), gst::ErrorMessage> {
        let port = u16::try_from(s.port).map_err(|_| {
            gst::error_msg!(
                gst::ResourceError::Settings,
                ["port {} is out of range", s.port]
            )
        })?;
        let bind = match s.bind_address.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(a) => Some(a.parse::<IpAddr>().map_err(|_| {
                gst::error_msg!(
                    gst::ResourceError::Settings,
                    ["bind-address \"{}\" is not an IP address", a]
                )
            })?),
        };
        // In subscription mode the sink listens on `port` for subscribers and has no
        // destination of its own (an unspecified address of the family to use).
        let dest = if s.subscription() {
            let any = match bind {
                Some(IpAddr::V6(_)) => IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
                _ => IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
            };
            SocketAddr::new(any, 0)
        } else {
            if s.host.trim().is_empty() {
                return Err(gst::error_msg!(
                    gst::ResourceError::Settings,
                    [
                        "no host set: set the host property to the receiver's address, or \
                         source-name to send to receivers that subscribe"
                    ]
                ));
            }
            if port == 0 {
                return Err(gst::error_msg!(
                    gst::ResourceError::Settings,
                    ["port 0: set port to the receiver's port"]
                ));
            }
            net::resolve(&s.host, port)
                .map_err(|e| gst::error_msg!(gst::ResourceError::NotFound, ["{}", e]))?
        };
        let bind_port = if s.subscription() {
            port
        } else {
            u16::try_from(s.bind_port).unwrap_or(0)
        };
        let iface = net::interface_index(s.multicast_iface.as_deref().unwrap_or(""))
            .map_err(|e| gst::error_msg!(gst::ResourceError::Settings, ["{}", e]))?;
        let cfg = SenderConfig {
            bind,
            bind_port,
            ttl: Some(s.ttl),
            ttl_mc: s.ttl_mc,
            multicast_iface: iface,
            multicast_loop: s.multicast_loop,
            dscp: u8::try_from(s.qos_dscp).ok(),
            buffer_size: s.buffer_size as usize,
            ..SenderConfig::new(dest)
        };
        let sender = UdpSocket::open_sender(&cfg)
            .map_err(|e| gst::error_msg!(gst::ResourceError::OpenWrite, ["{}", e]))?;
        let frag = packetizer::fragment_size(s.mtu, dest.is_ipv6());
        Ok((sender, dest, frag))
    }

    /// Takes the current subscribers (and the fixed destination) as the destinations; a new
    /// one gets the stream info with the next frame.
    fn refresh_subscribers(&self, state: &mut State, now: Instant) {
        let Some((table, seen)) = state.subscribers.as_mut() else {
            return;
        };
        let (mut current, generation) = lock(table).current(now);
        if generation == *seen {
            return;
        }
        *seen = generation;
        if let Some(fixed) = state.fixed {
            current.retain(|a| *a != fixed);
            current.insert(0, fixed);
        }
        if current.iter().any(|a| !state.dests.contains(a)) {
            state.info_sent = None;
        }
        gst::debug!(CAT, imp = self, "subscribers now: {:?}", current);
        state.dests = current;
    }

    /// Sends the stream info if it is due (first frame, caps change, or periodically).
    fn send_info_if_due(&self, state: &mut State, now: Instant) -> Result<(), Fail> {
        let due = state
            .info_sent
            .is_none_or(|t| now.saturating_duration_since(t) >= INFO_INTERVAL);
        let Some(caps) = state.caps.as_deref() else {
            return Ok(());
        };
        if !due {
            return Ok(());
        }
        // Caps longer than one datagram go out in several pieces.
        let pieces = state
            .packetizer
            .info_datagrams(caps)
            .map_err(|e| Fail::Error(gst::error_msg!(gst::StreamError::Format, ["{}", e])))?;
        for &dest in &state.dests {
            let report = state
                .batch
                .send(
                    &state.sender,
                    dest,
                    pieces.len(),
                    |k| match pieces.get(k) {
                        Some((header, slice)) => [&header[..], slice],
                        None => [&[][..], &[][..]],
                    },
                    &state.waker,
                )
                .map_err(send_failed)?;
            self.check_sent(&report, dest, state.mtu)?;
        }
        state.info_sent = Some(now);
        self.send_sender_report(state, now)
    }

    /// Sends a sender report: the pipeline's running time now, and the same instant on a
    /// clock that all streams of this host share: the pipeline's own clock when it is a
    /// network clock (PTP, NTP), else the system's real-time clock.
    fn send_sender_report(&self, state: &mut State, now: Instant) -> Result<(), Fail> {
        let obj = self.obj();
        let (Some(clock), Some(base)) = (obj.clock(), obj.base_time()) else {
            return Ok(());
        };
        let clock_time = clock.time();
        let Some(running_time) = clock_time.checked_sub(base) else {
            return Ok(());
        };
        // A pipeline on a network clock shares it with other hosts: report its time. Any
        // other clock is this host's: report the real-time clock at the same instant.
        let (reference_time, kind) = match clock.type_().name() {
            "GstPtpClock" => (clock_time.nseconds(), reference_clock::PTP),
            "GstNetClientClock" | "GstNtpClock" => (clock_time.nseconds(), reference_clock::NTP),
            _ => (
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos() as u64),
                reference_clock::REALTIME,
            ),
        };
        let c = &self.counters;
        let (seq, datagram) = state.packetizer.sender_report(SenderReport {
            running_time: running_time.nseconds(),
            reference_time,
            clock: kind,
            datagrams_sent: c.datagrams_sent.load(Ordering::Relaxed),
            frames_sent: c.frames_sent.load(Ordering::Relaxed) as u32,
        });
        for &dest in &state.dests {
            let report = state
                .batch
                .send(&state.sender, dest, 1, |_| [&datagram[..]], &state.waker)
                .map_err(send_failed)?;
            self.count(&report);
        }
        if let Some(table) = lock(&self.session).as_ref() {
            lock(table).report_sent(seq, now);
        }
        Ok(())
    }

    /// Counts what a send to `dest` did; an error when the path refused datagrams as too
    /// large (naming `mtu`), Flushing when the send was interrupted.
    fn check_sent(&self, r: &net::SendReport, dest: SocketAddr, mtu: u32) -> Result<(), Fail> {
        self.count(r);
        too_large(dest, mtu, r)?;
        if r.interrupted {
            return Err(Fail::Flushing);
        }
        Ok(())
    }

    fn count(&self, r: &net::SendReport) {
        let c = &self.counters;
        c.datagrams_sent.fetch_add(r.sent as u64, Ordering::Relaxed);
        c.bytes_sent.fetch_add(r.bytes as u64, Ordering::Relaxed);
        c.send_errors.fetch_add(r.errors as u64, Ordering::Relaxed);
        if let Some(kind) = r.first_error {
            gst::debug!(CAT, imp = self, "{} datagrams refused: {}", r.errors, kind);
        }
    }

    /// Sends one frame: stream info if due, then the frame's datagrams in paced batches.
    /// Returns a warning to post (once no lock is held) when the network refused every
    /// datagram of the frame, at most one per [`SEND_WARNING_INTERVAL`].
    fn send_frame(
        &self,
        state: &mut State,
        buffer: &gst::Buffer,
        data: &[u8],
    ) -> Result<Option<String>, Fail> {
        let mut now = Instant::now();
        self.refresh_subscribers(state, now);
        if state.dests.is_empty() {
            // Nobody subscribed: nothing is sent (nor packetized).
            return Ok(None);
        }
        let duration = buffer
            .duration()
            .map(|d| Duration::from_nanos(d.nseconds()));
        let Some(min_spread) = self.admit(state, buffer, data.len(), duration, &mut now)? else {
            return Ok(None);
        };
        self.send_info_if_due(state, now)?;
        let mut plan = state
            .packetizer
            .frame(data.len(), frame_meta(buffer, &self.obj().segment()))
            .map_err(|e| Fail::Error(gst::error_msg!(gst::StreamError::Format, ["{}", e])))?;
        let count = plan.count();
        let (header, first_seq, frag) = plan.template();
        // Kept (a reference, no copy) before its datagrams leave: a receiver may ask for an
        // early one again while the frame is still being paced out.
        if let Ok(kept) = buffer.clone().into_mapped_buffer_readable() {
            let frame = SentFrame {
                first_seq,
                count: count as u32,
                frag,
                header,
                data: kept,
                at: now,
            };
            lock(&state.history).push(frame, now);
        }
        let schedule = FrameSchedule::new(
            state.pacing,
            now,
            duration,
            min_spread,
            count,
            state.batch_size,
            state.gso_align,
        );
        let batch_size = schedule.batch_len();
        let (mut sent, mut refused) = (0usize, None);
        // After a stall (the thread was not scheduled in time) the batches due catch up at
        // twice the paced rate, not in one burst that would overflow a bottleneck's queue.
        let catch_up = schedule.spread() / (2 * schedule.batches().max(1)) as u32;
        let mut prev: Option<Instant> = None;
        for b in 0..schedule.batches() {
            let at = prev.map_or(schedule.send_at(b), |p| {
                schedule.send_at(b).max(p + catch_up)
            });
            if at > Instant::now() {
                match state.waker.wait(None, 0, Some(at)) {
                    Ok(net::Wait::Woken) => return Err(Fail::Flushing),
                    Ok(_) => {}
                    Err(e) => return Err(send_failed(e)),
                }
            }
            prev = Some(Instant::now());
            let batch = plan.batch(data, b * batch_size, batch_size);
            // One batch to each destination in turn (one, or each subscriber).
            for &dest in &state.dests {
                let report = state
                    .batch
                    .send(
                        &state.sender,
                        dest,
                        batch.len(),
                        |k| batch.parts(k),
                        &state.waker,
                    )
                    .map_err(send_failed)?;
                self.check_sent(&report, dest, state.mtu)?;
                sent += report.sent;
                refused = refused.or(report.first_error);
            }
            let last = (b * batch_size + batch.len()).saturating_sub(1) as u32;
            lock(&state.history).sent_through(first_seq.wrapping_add(last));
        }
        if state.fec_percentage > 0 {
            self.send_fec(state, data, first_seq, frag)?;
        }
        let mut warning = None;
        if let (0, Some(kind)) = (sent, refused) {
            if state
                .send_warning
                .is_none_or(|t| now.saturating_duration_since(t) >= SEND_WARNING_INTERVAL)
            {
                state.send_warning = Some(now);
                warning = Some(format!(
                    "could not send to {}: {}; frames are being lost",
                    state.dest,
                    std::io::Error::from(kind)
                ));
            }
        }
        lock(&state.table).on_sent(first_seq.wrapping_add(count as u32).wrapping_sub(1));
        self.counters.frames_sent.fetch_add(1, Ordering::Relaxed);
        gst::trace!(
            CAT,
            imp = self,
            "sent frame of {} bytes in {} datagrams in {} µs",
            data.len(),
            count,
            now.elapsed().as_micros()
        );
        Ok(warning)
    }

    /// Asks the rate control whether the frame may go: waits (cancellably) while a non-live
    /// sender is over its rate, and answers None when a live one drops the frame whole.
    /// Otherwise the least spread the rate asks of the frame; `now` is when it may start.
    fn admit(
        &self,
        state: &mut State,
        buffer: &gst::BufferRef,
        len: usize,
        duration: Option<Duration>,
        now: &mut Instant,
    ) -> Result<Option<Duration>, Fail> {
        let live = match state.live {
            Some(live) => live,
            None => {
                let obj = self.obj();
                let upstream_live = obj.query_latency().is_ok_and(|(_, up, _, _)| up);
                let live = obj.is_sync() && upstream_live;
                gst::debug!(
                    CAT,
                    imp = self,
                    "{} frames over the rate",
                    if live { "dropping" } else { "waiting for" }
                );
                state.live = Some(live);
                live
            }
        };
        let datagrams = len.div_ceil(usize::from(state.frag)).max(1);
        let bits = ((len + datagrams * WIRE_OVERHEAD) * 8) as u64;
        let key = !buffer.flags().contains(gst::BufferFlags::DELTA_UNIT);
        loop {
            let (admit, spread) = {
                let mut table = lock(&state.table);
                let rc = table.rate_control();
                if let (false, Some(d)) = (live, duration.filter(|d| !d.is_zero())) {
                    rc.start_at((bits as f64 / d.as_secs_f64()) as u64, *now);
                }
                (rc.admit(*now, bits, key, live), rc.min_spread(bits))
            };
            match admit {
                Admit::Now => return Ok(Some(spread)),
                Admit::Drop => {
                    gst::log!(
                        CAT,
                        imp = self,
                        "over the rate: dropping a frame of {len} bytes"
                    );
                    return Ok(None);
                }
                Admit::At(at) => {
                    match state.waker.wait(None, 0, Some(at)) {
                        Ok(net::Wait::Woken) => return Err(Fail::Flushing),
                        Ok(_) => {}
                        Err(e) => return Err(send_failed(e)),
                    }
                    *now = Instant::now();
                }
            }
        }
    }

    /// Sends the FEC repair symbols of the frame `data`, whose datagrams took sequence
    /// numbers from `first_seq` on, right after them (§5.7).
    fn send_fec(
        &self,
        state: &mut State,
        data: &[u8],
        first_seq: u32,
        frag: usize,
    ) -> Result<(), Fail> {
        let State {
            fec,
            packetizer,
            batch,
            sender,
            dests,
            waker,
            ..
        } = state;
        let n = fec.encode(data, frag as u16, first_seq, state.fec_percentage);
        let headers: Vec<_> = (0..n)
            .filter_map(|i| fec.repair(i))
            .map(|(body, _)| packetizer.fec_header(&body))
            .collect();
        for &dest in dests.iter() {
            let report = batch
                .send(
                    sender,
                    dest,
                    headers.len(),
                    |k| match (headers.get(k), fec.repair(k)) {
                        (Some(h), Some((_, symbol))) => [&h[..], symbol],
                        _ => [&[][..], &[][..]],
                    },
                    waker,
                )
                .map_err(send_failed)?;
            self.count(&report);
            self.counters
                .fec_sent
                .fetch_add(report.sent as u64, Ordering::Relaxed);
            if report.interrupted {
                return Err(Fail::Flushing);
            }
        }
        Ok(())
    }

    fn stats(&self) -> gst::Structure {
        let base = self.obj().upcast_ref::<gst_base::BaseSink>().stats();
        let mut s = gst::Structure::builder("videoipsink-stats");
        for (name, value) in base.iter() {
            s = s.field(name.as_str(), value.clone());
        }
        let c = &self.counters;
        let now = Instant::now();
        let (receivers, rate) = lock(&self.session)
            .as_ref()
            .map(|t| {
                let mut t = lock(t);
                let rc = t.rate_control();
                let rate = (rc.rate(), rc.frames_dropped(), rc.decreases());
                (t.receivers(now), rate)
            })
            .unwrap_or_default();
        // (Taken apart from the builder below: a guard there would live to its end.)
        let subscribers = lock(&self.subscribers).as_ref().map_or((0, 0), |t| {
            let mut t = lock(t);
            (t.current(now).0.len() as u64, t.refused)
        });
        let per_receiver: Vec<glib::SendValue> = receivers
            .iter()
            .map(|r| {
                gst::Structure::builder("videoipsink-receiver")
                    .field("address", r.addr.to_string())
                    .field("rtt", r.rtt.map_or(-1i64, |d| d.as_micros() as i64))
                    .field("datagrams-received", r.datagrams_received)
                    .field("datagrams-lost", r.datagrams_lost)
                    .field("frames-complete", u64::from(r.frames_complete))
                    .field("frames-dropped", u64::from(r.frames_dropped))
                    .build()
                    .to_send_value()
            })
            .collect();
        s.field("datagrams-sent", c.datagrams_sent.load(Ordering::Relaxed))
            .field("bytes-sent", c.bytes_sent.load(Ordering::Relaxed))
            .field("frames-sent", c.frames_sent.load(Ordering::Relaxed))
            .field("send-errors", c.send_errors.load(Ordering::Relaxed))
            .field("nacks-received", c.nacks_received.load(Ordering::Relaxed))
            .field(
                "datagrams-retransmitted",
                c.retransmitted.load(Ordering::Relaxed),
            )
            .field("allowed-bitrate", rate.0.unwrap_or(0))
            .field("frames-dropped", rate.1)
            .field("rate-decreases", rate.2)
            .field("fec-datagrams-sent", c.fec_sent.load(Ordering::Relaxed))
            .field("receivers", receivers.len() as u64)
            .field("subscribers", subscribers.0)
            .field("subscribers-refused", subscribers.1)
            .field("receiver-stats", gst::Array::from_values(per_receiver))
            .build()
    }
}

/// Why a frame was not sent.
enum Fail {
    /// The element is flushing (unlock was called).
    Flushing,
    /// A fatal error, to be posted once no lock is held.
    Error(gst::ErrorMessage),
}

/// The fatal error for datagrams too large for the path (the socket does not fragment).
fn too_large(dest: SocketAddr, mtu: u32, report: &net::SendReport) -> Result<(), Fail> {
    match report.path_mtu {
        Some(path_mtu) => Err(Fail::Error(gst::error_msg!(
            gst::ResourceError::Write,
            [
                "the path to {} carries at most {} bytes per datagram, less than mtu={}; set mtu={} or lower",
                dest,
                path_mtu,
                mtu,
                path_mtu
            ]
        ))),
        None => Ok(()),
    }
}

fn send_failed(e: std::io::Error) -> Fail {
    Fail::Error(gst::error_msg!(
        gst::ResourceError::Write,
        ["sending to the network failed: {}", e]
    ))
}

/// The frame's flags, and its timestamps in running time: streams of one sender pipeline
/// then share one timeline, whatever their segments (buffers outside the segment, or of a
/// segment not in time, keep their own timestamps).
fn frame_meta(buffer: &gst::BufferRef, segment: &gst::Segment) -> FrameMeta {
    let bf = buffer.flags();
    let mut f = 0u16;
    for (gst_flag, wire) in [
        (gst::BufferFlags::DELTA_UNIT, flags::DELTA_UNIT),
        (gst::BufferFlags::DISCONT, flags::DISCONT),
        (gst::BufferFlags::HEADER, flags::HEADER),
        (gst::BufferFlags::GAP, flags::GAP),
        (gst::BufferFlags::DROPPABLE, flags::DROPPABLE),
        (gst::BufferFlags::MARKER, flags::MARKER),
    ] {
        if bf.contains(gst_flag) {
            f |= wire;
        }
    }
    let time_segment = segment.downcast_ref::<gst::ClockTime>();
    let ns = |t: Option<gst::ClockTime>| {
        t.map_or(protocol::TIME_NONE, |t| {
            time_segment
                .and_then(|seg| seg.to_running_time(t))
                .unwrap_or(t)
                .nseconds()
        })
    };
    FrameMeta {
        pts: ns(buffer.pts()),
        dts: ns(buffer.dts()),
        duration: ns(buffer.duration()),
        flags: f,
    }
}

#[glib::object_subclass]
impl ObjectSubclass for VideoIpSink {
    const NAME: &'static str = "GstVideoIpSink";
    type Type = super::VideoIpSink;
    type ParentType = gst_base::BaseSink;
    type Interfaces = (gst::URIHandler,);
}

impl ObjectImpl for VideoIpSink {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPERTIES: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            let d = Settings::default();
            vec![
                glib::ParamSpecString::builder("host")
                    .nick("Host")
                    .blurb("The host name, IPv4/IPv6 address or multicast group to send to")
                    .default_value(Some(d.host.as_str()))
                    .mutable_ready()
                    .build(),
                glib::ParamSpecInt::builder("port")
                    .nick("Port")
                    .blurb("The UDP port to send to; with source-name and no host, the port to listen on for subscribers (0: any free port, read back once started)")
                    .minimum(0)
                    .maximum(65535)
                    .default_value(d.port as i32)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("bind-address")
                    .nick("Bind Address")
                    .blurb("Local address to send from (default: any)")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecInt::builder("bind-port")
                    .nick("Bind Port")
                    .blurb("Local port to send from (0: any)")
                    .minimum(0)
                    .maximum(65535)
                    .default_value(d.bind_port as i32)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("mtu")
                    .nick("MTU")
                    .blurb("Largest IP datagram to send, headers included, in bytes")
                    .minimum(packetizer::MIN_MTU)
                    .maximum(packetizer::MAX_MTU)
                    .default_value(d.mtu)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecInt::builder("ttl")
                    .nick("Unicast TTL")
                    .blurb("Time to live / hop limit of unicast datagrams")
                    .minimum(0)
                    .maximum(255)
                    .default_value(d.ttl as i32)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecInt::builder("ttl-mc")
                    .nick("Multicast TTL")
                    .blurb("Time to live / hop limit of multicast datagrams")
                    .minimum(0)
                    .maximum(255)
                    .default_value(d.ttl_mc as i32)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("multicast-iface")
                    .nick("Multicast Interface")
                    .blurb("Network interface to send multicast from, by name (default: routing table)")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecBoolean::builder("loop")
                    .nick("Multicast Loopback")
                    .blurb("Deliver multicast to receivers on this host too")
                    .default_value(d.multicast_loop)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecInt::builder("qos-dscp")
                    .nick("QoS DSCP")
                    .blurb("Differentiated Services Code Point of the datagrams (-1: leave as is)")
                    .minimum(-1)
                    .maximum(63)
                    .default_value(d.qos_dscp)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecInt::builder("buffer-size")
                    .nick("Send Buffer Size")
                    .blurb("Size of the kernel send buffer in bytes (0: system default)")
                    .minimum(0)
                    .maximum(i32::MAX)
                    .default_value(d.buffer_size as i32)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("batch-size")
                    .nick("Batch Size")
                    .blurb("Datagrams handed to the kernel per system call")
                    .minimum(1)
                    .maximum(1024)
                    .default_value(d.batch_size)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("max-retransmission-percentage")
                    .nick("Maximum Retransmission Percentage")
                    .blurb("Most bytes resent to receivers that ask (NACK), as a percentage of the bytes sent, so that a broken link cannot make the sender flood (0: never resend)")
                    .minimum(0)
                    .maximum(100)
                    .default_value(d.max_retransmission_percentage)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecEnum::builder_with_default("pacing", d.pacing)
                    .nick("Pacing")
                    .blurb("How each frame's datagrams are spread in time")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt64::builder("max-bitrate")
                    .nick("Maximum Bit Rate")
                    .blurb("Most bits per second to send, headers included, for a link of known capacity: frames are spread to keep it, and a live stream over it loses whole frames (0: unlimited; else at least 1000000)")
                    .default_value(d.max_bitrate)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("source-name")
                    .nick("Source Name")
                    .blurb("The name the stream is offered under, announced by DNS-SD (multicast DNS) so receivers and device monitors find it. Without host set, the sink sends to the receivers that subscribe to it (videoipsrc sender-address), each by unicast, and nothing when none does; it listens for them on port")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecBoolean::builder("announce")
                    .nick("Announce")
                    .blurb("Announce a named stream (source-name) by DNS-SD over multicast DNS; false keeps it off the network's multicast, for receivers that subscribe by address")
                    .default_value(true)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("max-receivers")
                    .nick("Maximum Receivers")
                    .blurb("Most receivers subscribed at once (0: up to 1024); more are refused")
                    .maximum(crate::send::receivers::MAX_RECEIVERS as u32)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("fec-percentage")
                    .nick("FEC Percentage")
                    .blurb("Forward error correction: repair datagrams sent per frame, in percent of its datagrams (at least one per block of up to 200); this much more bandwidth. 0: off")
                    .minimum(0)
                    .maximum(fec::MAX_PERCENT)
                    .default_value(d.fec_percentage)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecBoxed::builder::<gst::Structure>("stats")
                    .nick("Statistics")
                    .blurb("BaseSink statistics plus datagrams-sent, bytes-sent, frames-sent, send-errors, allowed-bitrate, frames-dropped and the receivers' reports")
                    .read_only()
                    .build(),
            ]
        });
        PROPERTIES.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        let mut s = lock(&self.settings);
        match pspec.name() {
            "host" => {
                s.host = opt_string(value).unwrap_or_default();
                s.host_set = true;
            }
            "source-name" => s.source_name = opt_string(value),
            "max-receivers" => s.max_receivers = value.get().unwrap_or(0),
            "announce" => s.announce = value.get().unwrap_or(true),
            "port" => s.port = value.get::<i32>().unwrap_or(5004).max(0) as u32,
            "bind-address" => s.bind_address = opt_string(value),
            "bind-port" => s.bind_port = value.get::<i32>().unwrap_or(0).max(0) as u32,
            "mtu" => s.mtu = value.get().unwrap_or(1500),
            "ttl" => s.ttl = value.get::<i32>().unwrap_or(64).max(0) as u32,
            "ttl-mc" => s.ttl_mc = value.get::<i32>().unwrap_or(1).max(0) as u32,
            "multicast-iface" => s.multicast_iface = opt_string(value),
            "loop" => s.multicast_loop = value.get().unwrap_or(true),
            "qos-dscp" => s.qos_dscp = value.get().unwrap_or(-1),
            "buffer-size" => s.buffer_size = value.get::<i32>().unwrap_or(0).max(0) as u32,
            "batch-size" => s.batch_size = value.get().unwrap_or(64),
            "max-retransmission-percentage" => {
                s.max_retransmission_percentage =
                    value.get().unwrap_or(DEFAULT_MAX_RETRANSMISSION_PERCENTAGE)
            }
            "pacing" => s.pacing = value.get().unwrap_or_default(),
            "max-bitrate" => s.max_bitrate = value.get().unwrap_or(0),
            "fec-percentage" => s.fec_percentage = value.get().unwrap_or(0),
            other => gst::warning!(CAT, imp = self, "unknown property {other}"),
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        if pspec.name() == "stats" {
            return self.stats().to_value();
        }
        let s = lock(&self.settings);
        match pspec.name() {
            "host" => s.host.to_value(),
            "source-name" => s.source_name.to_value(),
            "max-receivers" => s.max_receivers.to_value(),
            "announce" => s.announce.to_value(),
            "port" => (s.port as i32).to_value(),
            "bind-address" => s.bind_address.to_value(),
            "bind-port" => (s.bind_port as i32).to_value(),
            "mtu" => s.mtu.to_value(),
            "ttl" => (s.ttl as i32).to_value(),
            "ttl-mc" => (s.ttl_mc as i32).to_value(),
            "multicast-iface" => s.multicast_iface.to_value(),
            "loop" => s.multicast_loop.to_value(),
            "qos-dscp" => s.qos_dscp.to_value(),
            "buffer-size" => (s.buffer_size as i32).to_value(),
            "batch-size" => s.batch_size.to_value(),
            "max-retransmission-percentage" => s.max_retransmission_percentage.to_value(),
            "pacing" => s.pacing.to_value(),
            "max-bitrate" => s.max_bitrate.to_value(),
            "fec-percentage" => s.fec_percentage.to_value(),
            _ => pspec.default_value().clone(),
        }
    }
}

impl GstObjectImpl for VideoIpSink {}

impl URIHandlerImpl for VideoIpSink {
    const URI_TYPE: gst::URIType = gst::URIType::Sink;

    fn protocols() -> &'static [&'static str] {
        &[uri::SCHEME]
    }

    fn uri(&self) -> Option<String> {
        let s = lock(&self.settings);
        let host = if s.subscription() { "" } else { &s.host };
        Some(uri::address_uri(host, s.port as u16))
    }

    /// `videoip://HOST:PORT?property=value&...`: send to HOST (unicast or a multicast
    /// group) and PORT, as udpsink's `udp://` URIs do. With no host
    /// (`videoip://:PORT?source-name=NAME`), send to the receivers that subscribe at PORT.
    fn set_uri(&self, text: &str) -> Result<(), glib::Error> {
        if self.obj().current_state() > gst::State::Ready {
            return Err(uri_while_running());
        }
        let parsed = uri::parse(text)
            .map_err(|e| glib::Error::new(gst::URIError::BadUri, &e.to_string()))?;
        let uri::Target::Address { host, port } = parsed.target else {
            return Err(glib::Error::new(
                gst::URIError::BadUri,
                &format!("'{text}' names no host: a sender's URI says where to send, videoip://HOST:PORT"),
            ));
        };
        let obj = self.obj();
        if host.is_empty() {
            let named = parsed.params.iter().any(|(k, _)| k == "source-name")
                || lock(&self.settings).source_name.is_some();
            if !named {
                return Err(glib::Error::new(
                    gst::URIError::BadUri,
                    &format!(
                        "'{text}' names no host: to send to receivers that subscribe, name the \
                         stream (videoip://:PORT?source-name=NAME), else give videoip://HOST:PORT"
                    ),
                ));
            }
            apply_uri_params(&*obj, &parsed.params)?;
            let mut s = lock(&self.settings);
            s.host_set = false;
            s.port = u32::from(port);
            return Ok(());
        }
        apply_uri_params(&*obj, &parsed.params)?;
        obj.set_property("host", host);
        obj.set_property("port", i32::from(port));
        Ok(())
    }
}

impl ElementImpl for VideoIpSink {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static METADATA: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "videoip Sink",
                "Sink/Network",
                "Sends live video or any timed media over UDP/IP with the videoip protocol",
                "The videoip developers",
            )
        });
        Some(&*METADATA)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static TEMPLATES: LazyLock<Vec<gst::PadTemplate>> =
            LazyLock::new(|| any_pad_template("sink", gst::PadDirection::Sink));
        TEMPLATES.as_ref()
    }
}

impl BaseSinkImpl for VideoIpSink {
    fn start(&self) -> Result<(), gst::ErrorMessage> {
        let settings = lock(&self.settings).clone();
        if settings.max_bitrate != 0 && settings.max_bitrate < rate::MIN_RATE {
            return Err(gst::error_msg!(
                gst::ResourceError::Settings,
                [
                    "max-bitrate={} is below the least usable {} bits per second; set 0 for no limit",
                    settings.max_bitrate,
                    rate::MIN_RATE
                ]
            ));
        }
        let (sender, dest, frag) = self.open(&settings)?;
        let waker = Arc::new(Waker::new().map_err(|e| {
            gst::error_msg!(
                gst::ResourceError::OpenWrite,
                ["could not create a waker: {}", e]
            )
        })?);
        if settings.subscription() {
            gst::info!(
                CAT,
                imp = self,
                "sending to receivers that subscribe at {}, {} payload bytes per datagram",
                sender.local_addr(),
                frag
            );
        } else {
            gst::info!(
                CAT,
                imp = self,
                "sending from {} to {}, {} payload bytes per datagram",
                sender.local_addr(),
                dest,
                frag
            );
        }
        let gso_align = if sender.gso_supported() {
            net::gso_segments(protocol::MEDIA_HEADER_LEN + usize::from(frag))
        } else {
            1
        };
        let bound = sender.local_addr().port();
        if settings.subscription() && settings.port != u32::from(bound) {
            // Port 0 took any free port: it reads back the one subscribers must use.
            lock(&self.settings).port = u32::from(bound);
            self.obj().notify("port");
        }
        let sender = Arc::new(sender);
        let table = Arc::new(Mutex::new(SenderSession::new(
            packetizer::random_session_id(),
            0,
        )));
        lock(&table).set_rate_control(RateControl::new(
            (settings.max_bitrate != 0).then_some(settings.max_bitrate),
            usize::from(frag) + WIRE_OVERHEAD,
        ));
        let session_id = lock(&table).session();
        let history = Arc::new(Mutex::new(History::new(
            settings.max_retransmission_percentage as usize,
        )));
        // A named stream takes subscribers (at its own port, which it announces), besides its
        // host if it has one: receivers that find it by name subscribe, also to a multicast
        // stream (they get it by unicast; the group is for those that join it).
        let subscribers = settings.source_name.is_some().then(|| {
            let max = match settings.max_receivers {
                0 => crate::send::receivers::MAX_RECEIVERS,
                n => n as usize,
            };
            Arc::new(Mutex::new(Subscribers::new(max)))
        });
        *lock(&self.subscribers) = subscribers.clone();
        let resender = Resender {
            history: history.clone(),
            subscribers: subscribers.clone(),
            dest,
            session: session_id,
            nacks_received: self.counters.nacks_received.clone(),
            retransmitted: self.counters.retransmitted.clone(),
        };
        let reports =
            ReportThread::spawn(sender.clone(), table.clone(), resender).map_err(|e| {
                gst::error_msg!(
                    gst::ResourceError::OpenWrite,
                    [
                        "could not start the thread that reads receiver reports: {}",
                        e
                    ]
                )
            })?;
        let own_port = sender.local_addr().port();
        *lock(&self.session) = Some(table.clone());
        *lock(&self.reports) = Some(reports);
        let state = State {
            history,
            table,
            live: None,
            frag,
            sender,
            dest,
            fixed: (!settings.subscription()).then_some(dest),
            dests: if settings.subscription() {
                Vec::new()
            } else {
                vec![dest]
            },
            subscribers: subscribers.map(|s| (s, u64::MAX)),
            mtu: settings.mtu,
            send_warning: None,
            packetizer: Packetizer::new(session_id, 0, random_u32(), frag),
            batch: SendBatch::new(),
            waker: waker.clone(),
            batch_size: settings.batch_size.max(1) as usize,
            gso_align,
            pacing: match settings.pacing {
                Pacing::None => schedule::Pacing::None,
                Pacing::Frame => schedule::Pacing::Frame,
            },
            caps: None,
            info_sent: None,
            fec_percentage: settings.fec_percentage,
            fec: fec::Encoder::new(),
        };
        *lock(&self.waker) = Some(waker);
        *lock(&self.state) = Some(state);
        let c = &self.counters;
        for a in [
            &c.datagrams_sent,
            &c.bytes_sent,
            &c.frames_sent,
            &c.send_errors,
            &*c.nacks_received,
            &*c.retransmitted,
            &c.fec_sent,
        ] {
            a.store(0, Ordering::Relaxed);
        }
        if let (Some(name), true) = (settings.source_name.as_deref(), settings.announce) {
            match self.announce.start(name, session_id, own_port, dest) {
                Ok(()) => gst::info!(
                    CAT,
                    imp = self,
                    "announced as {:?}",
                    self.announce.instance()
                ),
                Err(e) => gst::element_imp_warning!(
                    self,
                    gst::ResourceError::OpenWrite,
                    ["could not announce source-name \"{}\": {}", name, e]
                ),
            }
        }
        Ok(())
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        self.announce.stop();
        *lock(&self.reports) = None;
        *lock(&self.session) = None;
        *lock(&self.subscribers) = None;
        *lock(&self.state) = None;
        *lock(&self.waker) = None;
        Ok(())
    }

    fn set_caps(&self, caps: &gst::Caps) -> Result<(), gst::LoggableError> {
        let caps_str = caps.to_string();
        let mut guard = lock(&self.state);
        let Some(state) = guard.as_mut() else {
            return Err(gst::loggable_error!(CAT, "caps set while stopped"));
        };
        // Caps longer than one datagram are sent in pieces; only the protocol's limit applies.
        if caps_str.len() > protocol::MAX_CAPS_LEN {
            let len = caps_str.len();
            drop(guard);
            gst::element_imp_error!(
                self,
                gst::StreamError::Format,
                [
                    "caps of {} bytes are longer than the protocol's {} bytes",
                    len,
                    protocol::MAX_CAPS_LEN
                ]
            );
            return Err(gst::loggable_error!(CAT, "caps too large"));
        }
        if state.caps.as_deref() != Some(caps_str.as_str()) {
            if state.caps.is_some() {
                state.packetizer.next_info_gen();
            }
            gst::debug!(CAT, imp = self, "new caps: {caps_str}");
            state.caps = Some(caps_str);
            state.info_sent = None;
            state.live = None;
        }
        drop(guard);
        if let Err(e) = self.announce.caps(caps) {
            gst::warning!(CAT, imp = self, "could not announce the new caps: {e}");
        }
        Ok(())
    }

    fn render(&self, buffer: &gst::Buffer) -> Result<gst::FlowSuccess, gst::FlowError> {
        let map = buffer.map_readable().map_err(|_| {
            gst::element_imp_error!(self, gst::CoreError::Failed, ["could not map the buffer"]);
            gst::FlowError::Error
        })?;
        let result = match lock(&self.state).as_mut() {
            Some(state) => self.send_frame(state, buffer, map.as_slice()),
            None => Err(Fail::Flushing),
        };
        match result {
            Ok(warning) => {
                if let Some(w) = warning {
                    gst::element_imp_warning!(self, gst::ResourceError::Write, ["{}", w]);
                }
                Ok(gst::FlowSuccess::Ok)
            }
            Err(Fail::Flushing) => Err(gst::FlowError::Flushing),
            Err(Fail::Error(msg)) => {
                self.post_error_message(msg);
                Err(gst::FlowError::Error)
            }
        }
    }

    fn event(&self, event: gst::Event) -> bool {
        if let gst::EventView::Eos(_) = event.view() {
            let mut guard = lock(&self.state);
            if let Some(state) = guard.as_mut() {
                for _ in 0..EOS_REPEAT {
                    let header = state.packetizer.eos_datagram();
                    for &dest in &state.dests {
                        if let Ok(r) = state.batch.send(
                            &state.sender,
                            dest,
                            1,
                            |_| [&header[..]],
                            &state.waker,
                        ) {
                            self.count(&r);
                        }
                    }
                }
                gst::debug!(CAT, imp = self, "sent end of stream");
            }
        }
        self.parent_event(event)
    }

    fn unlock(&self) -> Result<(), gst::ErrorMessage> {
        if let Some(w) = lock(&self.waker).as_ref() {
            w.wake();
        }
        Ok(())
    }

    fn unlock_stop(&self) -> Result<(), gst::ErrorMessage> {
        if let Some(w) = lock(&self.waker).as_ref() {
            w.reset();
        }
        Ok(())
    }
}
