// SPDX-License-Identifier: MPL-2.0
//! The `videoipsrc` element, GStreamer glue only: a live PushSrc whose properties set up a
//! receiver session ([`crate::receive`]) driven by a thread of its own ([`super::receiver`]).
//! `create()` takes complete frames from the thread's queue, has their timestamps mapped
//! onto local running time ([`crate::receive::clock`], with the element's clock readings)
//! and pushes them with the sender's caps; warnings and errors become bus messages.
//!
//! Locks: `settings` (properties), `io` (socket and waker, opened in NULL→READY so that the
//! bound port can be read back), `rx` (the receive thread's handle, taken by start/stop),
//! `out` (the streaming thread's output state, held while it maps a frame), and the queue and
//! stats locks inside [`receiver::Shared`], each taken briefly. Order: `out` before `rx`, and
//! `out` before the shared clock table and an offset estimator (inside `SHARED_CLOCKS`,
//! each taken briefly);
//! no other lock is held together with another, and nothing is posted, notified or negotiated
//! while one is held.

use super::byname::{self, Change};
use super::rawsize::FrameSize;
use super::receiver::{self, FrameBuf, Item, Shared};
use super::TimestampMode;
use crate::elements::{any_pad_template, apply_uri_params, lock, opt_string, uri_while_running};
use crate::elements::{props, uri};
use crate::net::{self, ReceiverConfig, UdpSocket, Waker};
use crate::ratelimit::RateLimit;
use crate::receive::clock::{self, ClockTable, StreamClock};
use crate::receive::{self, Origin, Warning};
use crate::send::schedule;
use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::prelude::*;
use gst_base::subclass::base_src::CreateSuccess;
use gst_base::subclass::prelude::*;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

pub(super) static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "videoipsrc",
        gst::DebugColorFlags::empty(),
        Some("videoip receiver"),
    )
});

#[derive(Debug, Clone)]
struct Settings {
    address: String,
    port: u32,
    multicast_iface: Option<String>,
    buffer_size: u32,
    batch_size: u32,
    latency_ms: u32,
    timeout_ns: u64,
    caps: Option<gst::Caps>,
    max_frame_size: u32,
    reuse: bool,
    timestamp_mode: TimestampMode,
    /// A sender to subscribe to, and its port.
    sender_address: Option<String>,
    sender_port: u32,
    /// Whether `port` was set (a subscriber that did not choose one takes any free port).
    port_set: bool,
    /// A sender to find by name and subscribe to.
    source_name: Option<String>,
    passphrase: String,
    pbkeylen: u32,
    /// The track of the session followed (0: the primary essence).
    track: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            address: "0.0.0.0".into(),
            port: 5004,
            multicast_iface: None,
            buffer_size: 32 << 20,
            batch_size: 64,
            latency_ms: 50,
            timeout_ns: 0,
            caps: None,
            max_frame_size: 128 << 20,
            reuse: false,
            timestamp_mode: TimestampMode::SenderClock,
            sender_address: None,
            sender_port: 5004,
            port_set: false,
            source_name: None,
            passphrase: String::new(),
            pbkeylen: 16,
            track: 0,
        }
    }
}

impl Settings {
    /// The reassembly window.
    fn window(&self) -> Duration {
        Duration::from_millis(u64::from(self.latency_ms))
    }

    /// The latency the source adds: the reassembly window plus the most a sender spreads a
    /// frame over (a frame's last datagram may come that much after its first, whose arrival
    /// the frame is stamped with).
    fn min_latency(&self) -> Duration {
        self.window() + schedule::MAX_SPREAD
    }

    /// The most the source can hold a frame for downstream: one window more. Frames queued
    /// longer are dropped.
    fn max_latency(&self) -> Duration {
        self.min_latency() + self.window()
    }
}

struct Io {
    receiver: Arc<UdpSocket>,
    waker: Arc<Waker>,
    /// What the socket was opened with (the port as bound).
    cfg: ReceiverConfig,
}

/// The streaming thread's output state.
struct Out {
    /// Sender clocks → local running time, estimators shared through [`SHARED_CLOCKS`].
    clock: StreamClock,
    caps_override: Option<gst::Caps>,
    /// The caps string last put on the pad.
    caps_set: Option<String>,
    /// Caps downstream refused: frames with them are dropped, not renegotiated again.
    refused_caps: Option<String>,
    timeout: Option<Duration>,
    max_age: Duration,
    discont: bool,
    /// The size raw frames must have for the caps string last parsed (None: any size).
    frame_size: Option<(String, Option<FrameSize>)>,
}

pub struct VideoIpSrc {
    settings: Mutex<Settings>,
    io: Mutex<Option<Io>>,
    shared: Arc<Shared>,
    rx: Mutex<Option<receiver::Thread>>,
    out: Mutex<Option<Out>>,
    caps_warnings: Mutex<RateLimit>,
    /// Raw frames dropped because their size does not match their caps.
    frames_wrong_size: AtomicU64,
    size_warnings: Mutex<RateLimit>,
    /// The sender the receive thread subscribes to (set from sender-address, or by the
    /// finder of a source named by source-name).
    /// Where to subscribe, in order of preference (the receive thread tries the next when
    /// one gives no stream).
    target: Arc<Mutex<Vec<SocketAddr>>>,
    finder: Mutex<Option<byname::Finder>>,
}

impl Default for VideoIpSrc {
    fn default() -> Self {
        VideoIpSrc {
            settings: Default::default(),
            io: Default::default(),
            shared: Default::default(),
            rx: Default::default(),
            out: Default::default(),
            caps_warnings: Mutex::new(RateLimit::new(Duration::from_secs(2))),
            frames_wrong_size: AtomicU64::new(0),
            size_warnings: Mutex::new(RateLimit::new(Duration::from_secs(2))),
            target: Default::default(),
            finder: Default::default(),
        }
    }
}

/// The offset estimators shared by the sources of this process, by sender clock: the
/// sources of one pipeline following streams of one sender host keep their relative timing.
static SHARED_CLOCKS: LazyLock<ClockTable> = LazyLock::new(Default::default);

/// What a warning of the session says, and which property to change, for a receiver with
/// `latency_ms` and `max_frame` bytes of max-frame-size.
pub(crate) fn describe(w: &Warning, latency_ms: u32, max_frame: u32) -> String {
    match *w {
        Warning::WindowTooShort { frames, late } => format!(
            "{frames} frames dropped incomplete in the last 2 s while {late} of their datagrams came after the reassembly window: raise the latency property (now {latency_ms} ms)"
        ),
        Warning::FrameTooLarge { datagrams, largest } => format!(
            "{datagrams} datagrams in the last 2 s belonged to frames of up to {largest} bytes, larger than max-frame-size ({max_frame} bytes): raise the max-frame-size property"
        ),
        Warning::Loss { frames, lost } => format!(
            "{frames} frames dropped incomplete in the last 2 s: {lost} datagrams lost on the way (a network that drops them, or a receive buffer too small: raise buffer-size)"
        ),
        Warning::Unprotected { datagrams, from } => format!(
            "{datagrams} datagrams from {from} dropped: they carry no authentication, and this receiver has a passphrase; set the same passphrase on the sender (or none on both)"
        ),
        Warning::BadTag { datagrams, from } => format!(
            "{datagrams} datagrams from {from} dropped: they do not authenticate; the sender's passphrase (or pbkeylen) differs from this receiver's: set the same passphrase and pbkeylen on both"
        ),
        Warning::Encrypted { datagrams, from } => format!(
            "{datagrams} datagrams from {from} dropped: the stream is encrypted; set the sender's passphrase (and pbkeylen) on this receiver"
        ),
    }
}

/// False for raw video caps that do not describe a frame (no width, say): elements
/// downstream would fail on them with an error of their own, so they are never pushed.
fn raw_video_complete(caps: &gst::Caps) -> bool {
    let is_raw_video = caps.structure(0).is_some_and(|s| s.name() == "video/x-raw");
    !is_raw_video || gst_video::VideoInfo::from_caps(caps).is_ok()
}

/// A buffer, and new caps (with the string they came as) to set before it.
type Output = (gst::Buffer, Option<(gst::Caps, String)>);

/// Why a frame was not pushed, and the warning to post about it.
enum Dropped {
    /// Its caps were refused before: nothing new to say.
    Quietly,
    /// Its caps are unusable.
    Caps(String),
    /// It is raw and its size does not match its caps.
    WrongSize(String),
}

/// What `create()` got (moved once per frame: boxing the item would allocate per frame) from the queue.
#[allow(clippy::large_enum_variant)]
enum Next {
    Item(Item, bool),
    Flushing,
    Timeout(u64),
}

impl VideoIpSrc {
    /// The socket configuration the properties ask for.
    fn receiver_config(&self) -> Result<ReceiverConfig, gst::ErrorMessage> {
        let s = lock(&self.settings).clone();
        let address = match IpAddr::from_str(s.address.trim()) {
            Ok(ip) => ip,
            // A host name, as udpsrc takes: its address (IPv4 first).
            Err(_) => net::resolve(&s.address, 0)
                .map_err(|e| gst::error_msg!(gst::ResourceError::Settings, ["{}", e]))?
                .ip(),
        };
        let iface = net::interface_index(s.multicast_iface.as_deref().unwrap_or(""))
            .map_err(|e| gst::error_msg!(gst::ResourceError::Settings, ["{}", e]))?;
        // A subscriber is sent to wherever it subscribes from: unless told otherwise it takes
        // any free port (5004 may well be its sender's, on this very host), and an address
        // of its sender's family.
        let subscriber = s.sender_address.is_some() || s.source_name.is_some();
        let port = if subscriber && !s.port_set {
            0
        } else {
            u16::try_from(s.port).unwrap_or(0)
        };
        let address = match (subscriber, address) {
            (true, IpAddr::V4(a)) if a.is_unspecified() => match self.subscribe_target(&s)? {
                Some(SocketAddr::V6(_)) => IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
                _ => address,
            },
            _ => address,
        };
        Ok(ReceiverConfig {
            address,
            port,
            multicast_iface: iface,
            buffer_size: s.buffer_size as usize,
            reuse: s.reuse,
        })
    }

    /// The sender to subscribe to (`sender-address`:`sender-port`), if one is set.
    fn subscribe_target(&self, s: &Settings) -> Result<Option<SocketAddr>, gst::ErrorMessage> {
        let Some(host) = s.sender_address.as_deref() else {
            return Ok(None);
        };
        let port = u16::try_from(s.sender_port).map_err(|_| {
            gst::error_msg!(
                gst::ResourceError::Settings,
                ["sender-port {} is out of range", s.sender_port]
            )
        })?;
        net::resolve(host, port).map(Some).map_err(|e| {
            gst::error_msg!(
                gst::ResourceError::NotFound,
                [
                    "sender-address: {}; set it to the address of the sender to subscribe to",
                    e
                ]
            )
        })
    }

    fn open_socket(&self) -> Result<(), gst::ErrorMessage> {
        let mut cfg = self.receiver_config()?;
        // Close a previous socket first, so that reopening on the same port works.
        *lock(&self.io) = None;
        if cfg.reuse && !cfg.address.is_multicast() {
            gst::warning!(
                CAT,
                imp = self,
                "reuse=true: other receivers that set it may bind port {} too, and then each gets only part of the stream",
                cfg.port
            );
        }
        let receiver = UdpSocket::open_receiver(&cfg).map_err(|e| {
            gst::error_msg!(gst::ResourceError::OpenRead, ["{}", open_error(&cfg, &e)])
        })?;
        let waker = Waker::new().map_err(|e| {
            gst::error_msg!(
                gst::ResourceError::OpenRead,
                ["could not create a waker: {}", e]
            )
        })?;
        let local = receiver.local_addr();
        let gro = receiver.enable_gro();
        gst::info!(CAT, imp = self, "listening on {local} (GRO: {gro})");
        cfg.port = local.port();
        *lock(&self.io) = Some(Io {
            receiver: Arc::new(receiver),
            waker: Arc::new(waker),
            cfg,
        });
        let port_changed = {
            let mut st = lock(&self.settings);
            let changed = st.port != u32::from(local.port());
            st.port = u32::from(local.port());
            changed
        };
        if port_changed {
            self.obj().notify("port");
        }
        Ok(())
    }

    fn stats_structure(&self) -> gst::Structure {
        let rx = *lock(&self.shared.stats);
        let dropped_late = lock(&self.shared.queue).dropped_late;
        let s = rx.session;
        gst::Structure::builder("videoipsrc-stats")
            .field("datagrams-received", s.datagrams_received)
            .field("bytes-received", s.bytes_received)
            .field("frames-complete", s.frames_complete)
            .field("frames-recovered", s.frames_recovered)
            .field("frames-dropped", s.frames_dropped)
            .field("frames-without-caps", s.frames_without_info)
            .field("frames-dropped-late", dropped_late)
            .field(
                "frames-wrong-size",
                self.frames_wrong_size.load(Ordering::Relaxed),
            )
            .field("datagrams-lost", s.datagrams_lost)
            .field("datagrams-duplicate", s.datagrams_duplicate)
            .field("datagrams-reordered", s.datagrams_reordered)
            .field("datagrams-late", s.datagrams_late)
            .field("datagrams-invalid", s.datagrams_invalid)
            .field("datagrams-foreign", s.datagrams_foreign)
            .field("challenges-received", s.challenges_received)
            .field("datagrams-unauthenticated", s.datagrams_unauthenticated)
            .field("datagrams-replayed", s.datagrams_replayed)
            .field("datagrams-unknown", s.datagrams_unknown)
            .field("extensions-ignored", s.extensions_ignored)
            .field("stream-info-received", s.info_received)
            .field("datagrams-requested", s.datagrams_requested)
            .field("datagrams-retransmitted", s.datagrams_retransmitted)
            .field("nacks-sent", s.nacks_sent)
            .field("rtt", rx.rtt.map_or(-1i64, |d| d.as_micros() as i64))
            .field("datagrams-recovered-fec", s.datagrams_recovered_fec)
            .field("largest-burst", rx.largest_burst)
            .field("receives", rx.receives)
            .build()
    }

    /// Local running time now, if the element has a clock.
    fn running_time(&self) -> Option<u64> {
        let obj = self.obj();
        let clock = obj.clock()?;
        let base = obj.base_time()?;
        clock.time().checked_sub(base).map(|t| t.nseconds())
    }

    /// Waits for the next item of the queue, the timeout, or `unlock()`.
    fn next(&self, timeout: Option<Duration>, max_age: Duration) -> Next {
        let mut q = lock(&self.shared.queue);
        loop {
            if q.flushing {
                return Next::Flushing;
            }
            let now = Instant::now();
            q.drop_stale(now, max_age);
            if let Some(item) = q.items.pop_front() {
                let discont = std::mem::take(&mut q.discont);
                return Next::Item(item, discont);
            }
            let wait = match timeout {
                Some(t) => {
                    let since = *q.last_data.get_or_insert(now);
                    let at = since + t;
                    if now >= at {
                        q.last_data = Some(now);
                        return Next::Timeout(t.as_nanos() as u64);
                    }
                    at - now
                }
                // Wake up now and then all the same: a missed notification must not hang.
                None => Duration::from_millis(500),
            };
            q = self
                .shared
                .ready
                .wait_timeout(q, wait)
                .map(|(g, _)| g)
                .unwrap_or_else(|e| e.into_inner().0);
        }
    }

    /// Turns a complete frame into a buffer, with caps if they changed. Err: the frame is
    /// dropped (its caps are refused or unusable, or it is raw and its size does not match
    /// them), with the warning to post.
    fn output(
        &self,
        out: &mut Out,
        f: receive::Frame<FrameBuf>,
        frame_caps: &str,
        origin: Origin,
        queue_discont: bool,
    ) -> Result<Output, Dropped> {
        // The caps of the frame's own stream info generation, not the newest announced: a
        // batch may hold the end of the old frames and the new info together.
        let caps_str = match &out.caps_override {
            Some(c) => c.to_string(),
            None => frame_caps.to_owned(),
        };
        if out.refused_caps.as_deref() == Some(caps_str.as_str()) {
            out.discont = true;
            return Err(Dropped::Quietly);
        }
        let new_caps = if out.caps_set.as_deref() != Some(caps_str.as_str()) {
            let caps = match &out.caps_override {
                Some(c) => c.clone(),
                None => match gst::Caps::from_str(&caps_str) {
                    Ok(c) if c.is_fixed() && raw_video_complete(&c) => c,
                    _ => {
                        // Never fatal: a bad announcement is counted and the frames wait
                        // for the next stream info.
                        if let Some(rx) = lock(&self.rx).as_ref() {
                            rx.reject_info();
                        }
                        out.discont = true;
                        return Err(Dropped::Caps(format!(
                            "the sender announced caps that are not usable fixed caps; ignoring its frames until it announces others: {caps_str:.200}"
                        )));
                    }
                },
            };
            out.frame_size = Some((caps_str.clone(), FrameSize::of(&caps)));
            Some((caps, caps_str.clone()))
        } else {
            None
        };
        let size_rule = match &out.frame_size {
            Some((s, rule)) if *s == caps_str => *rule,
            _ => None,
        };
        if let Some(Err(expected)) = size_rule.map(|r| r.check(f.info.len as usize)) {
            // Garbage to every element downstream: dropped, as a frame lost on the way.
            self.frames_wrong_size.fetch_add(1, Ordering::Relaxed);
            out.discont = true;
            return Err(Dropped::WrongSize(format!(
                "dropping a frame of {} bytes: its caps ask for {expected} ({caps_str:.200}); the sender sends frames its caps do not describe",
                f.info.len
            )));
        }

        let base_time = self.obj().base_time().map(|t| t.nseconds());
        let arrival_rt = self.running_time().map(|rt| {
            rt.saturating_sub(
                Instant::now()
                    .saturating_duration_since(f.arrival)
                    .as_nanos() as u64,
            )
        });
        let stamped = out
            .clock
            .map(&SHARED_CLOCKS, &origin, base_time, arrival_rt, &f.info);
        if stamped.resynced {
            gst::debug!(CAT, imp = self, "sender timeline jumped: mapping restarted");
        }
        out.discont |= stamped.discont;
        let mut buffer = f.buf.into_buffer();
        {
            let b = buffer.make_mut();
            b.set_pts(stamped.pts.map(gst::ClockTime::from_nseconds));
            b.set_dts(stamped.dts.map(gst::ClockTime::from_nseconds));
            b.set_duration(stamped.duration.map(gst::ClockTime::from_nseconds));
            let mut flags = gst::BufferFlags::empty();
            use crate::protocol::flags as wire;
            for (w, g) in [
                (wire::DELTA_UNIT, gst::BufferFlags::DELTA_UNIT),
                (wire::HEADER, gst::BufferFlags::HEADER),
                (wire::GAP, gst::BufferFlags::GAP),
                (wire::DROPPABLE, gst::BufferFlags::DROPPABLE),
                (wire::MARKER, gst::BufferFlags::MARKER),
            ] {
                if f.info.flags & w != 0 {
                    flags |= g;
                }
            }
            if f.discont || queue_discont || out.discont || f.info.flags & wire::DISCONT != 0 {
                flags |= gst::BufferFlags::DISCONT;
            }
            out.discont = false;
            b.set_flags(flags);
        }
        gst::trace!(
            CAT,
            imp = self,
            "frame {} of {} bytes out, {} µs after its first datagram",
            f.info.frame,
            f.info.len,
            f.arrival.elapsed().as_micros()
        );
        Ok((buffer, new_caps))
    }

    /// Pushes caps downstream if it accepts them. False: refused (a warning is posted).
    fn push_caps(&self, caps: gst::Caps, caps_str: String) -> bool {
        gst::info!(CAT, imp = self, "caps from the sender: {caps}");
        // Pushing caps "succeeds" as a sticky event even when downstream cannot take them
        // (the buffer then fails not-negotiated): ask first.
        let obj = self.obj();
        let pad = obj.src_pad();
        let accepted = pad.peer_query_accept_caps(&caps) && obj.set_caps(&caps).is_ok();
        if accepted {
            // Downstream may still fail to set caps that matched its template (a raw-video
            // element and interlace-mode=alternate, or caps without a width); the buffer then
            // fails not-negotiated. With a reconfigure pending, BaseSrc calls `negotiate`
            // instead of stopping the pipeline, and that finds out whether they were taken.
            pad.mark_reconfigure();
        }
        if let Some(out) = lock(&self.out).as_mut() {
            if accepted {
                out.caps_set = Some(caps_str);
                out.refused_caps = None;
            } else {
                out.refused_caps = Some(caps_str);
                out.discont = true;
            }
        }
        if !accepted {
            // Not fatal: what a sender announces must not stop the pipeline. Its frames are
            // dropped until it announces caps that downstream accepts.
            self.warn_caps(format!(
                "downstream does not accept the sender's caps {caps}; dropping its frames"
            ));
        }
        accepted
    }

    /// What the receive thread calls to post its warnings on the bus.
    fn warner(&self, latency_ms: u32, max_frame: u32) -> Box<dyn Fn(Warning) + Send> {
        let weak = self.obj().downgrade();
        Box::new(move |w| {
            let Some(obj) = weak.upgrade() else {
                return;
            };
            let text = describe(&w, latency_ms, max_frame);
            if matches!(w, Warning::Loss { .. }) {
                // Not a property of this element: the network, or the host.
                gst::element_warning!(obj, gst::ResourceError::Read, ["{}", text]);
            } else {
                gst::element_warning!(obj, gst::ResourceError::Settings, ["{}", text]);
            }
        })
    }

    /// What the receive thread calls to post the error that stops it.
    fn failer(&self) -> Box<dyn Fn(String) + Send> {
        let weak = self.obj().downgrade();
        Box::new(move |msg| {
            if let Some(obj) = weak.upgrade() {
                gst::element_error!(obj, gst::ResourceError::Read, ["{}", msg]);
            }
        })
    }

    /// Posts a warning about the sender's caps, at most once per 2 s (a sender announcing
    /// ever new caps must not flood the bus).
    fn warn_caps(&self, msg: String) {
        let limit = &self.caps_warnings;
        self.warn_limited(
            limit,
            gst::CoreError::Negotiation,
            msg,
            "more caps warnings held back",
        );
    }

    /// Posts a warning about a frame of the wrong size, at most once per 2 s (every frame of
    /// a stream may be wrong).
    fn warn_size(&self, msg: String) {
        let limit = &self.size_warnings;
        let more = "more such frames since the last warning";
        self.warn_limited(limit, gst::StreamError::Format, msg, more);
    }

    /// Posts a warning unless `limit` holds it back; says how many it held back before.
    fn warn_limited<E: gst::MessageErrorDomain>(
        &self,
        limit: &Mutex<RateLimit>,
        domain: E,
        msg: String,
        held_back_are: &str,
    ) {
        let Some(held_back) = lock(limit).check(Instant::now()) else {
            return;
        };
        let more = if held_back > 0 {
            format!(" ({held_back} {held_back_are})")
        } else {
            String::new()
        };
        gst::element_imp_warning!(self, domain, ["{}{}", msg, more]);
    }

    /// Stops the receive thread and forgets the queue.
    /// Starts looking for the sender named `name`: each time one is picked or lost, the
    /// receive thread is pointed at it and an element message says so.
    fn find(&self, name: String) -> Result<(), gst::ErrorMessage> {
        let weak = self.obj().downgrade();
        let finder = byname::Finder::start(name.clone(), self.target.clone(), move |change| {
            let Some(obj) = weak.upgrade() else {
                return;
            };
            let imp = obj.imp();
            if let Some(rx) = lock(&imp.rx).as_ref() {
                rx.retarget();
            }
            let (kind, source) = match &change {
                Change::Found(s) => ("videoip-source-found", s),
                Change::Lost(s) => ("videoip-source-lost", s),
            };
            gst::info!(CAT, obj = obj, "{kind}: {:?}", source.display_name());
            let address = source
                .addresses
                .first()
                .map(|a| a.to_string())
                .unwrap_or_default();
            let structure = gst::Structure::builder(kind)
                .field("source-name", &source.name)
                .field("display-name", source.display_name())
                .field("instance", &source.instance)
                .field("address", address)
                .field("port", i32::from(source.port))
                .build();
            let _ = obj.post_message(gst::message::Element::builder(structure).src(&obj).build());
        })
        .map_err(|e| {
            gst::error_msg!(
                gst::ResourceError::OpenRead,
                ["cannot look for source-name \"{}\": {}", name, e]
            )
        })?;
        gst::info!(CAT, imp = self, "looking for a source named {name:?}");
        *lock(&self.finder) = Some(finder);
        Ok(())
    }

    fn stop_thread(&self) {
        let thread = lock(&self.rx).take();
        drop(thread);
        let mut q = lock(&self.shared.queue);
        q.items.clear();
        q.discont = false;
    }
}

#[glib::object_subclass]
impl ObjectSubclass for VideoIpSrc {
    const NAME: &'static str = "GstVideoIpSrc";
    type Type = super::VideoIpSrc;
    type ParentType = gst_base::PushSrc;
    type Interfaces = (gst::URIHandler,);
}

impl ObjectImpl for VideoIpSrc {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPERTIES: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            let d = Settings::default();
            vec![
                glib::ParamSpecString::builder("address")
                    .nick("Address")
                    .blurb("Local address to receive on; a multicast group is joined")
                    .default_value(Some(d.address.as_str()))
                    .mutable_ready()
                    .build(),
                props::port(
                    "UDP port to receive on (0: any free port, read back in READY)",
                    d.port,
                ),
                props::source_name("Name of an announced sender (videoipsink source-name) to find by DNS-SD and subscribe to, following it if it moves; element messages videoip-source-found and videoip-source-lost say when. sender-address, if set, is used instead"),
                glib::ParamSpecString::builder("sender-address")
                    .nick("Sender Address")
                    .blurb("Address or host name of a sender to subscribe to (a videoipsink with source-name and no host): it then sends this receiver the stream by unicast while it stays subscribed. With it set and port not, this receiver takes any free port")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecInt::builder("sender-port")
                    .nick("Sender Port")
                    .blurb("Port of the sender to subscribe to (its port property)")
                    .minimum(0)
                    .maximum(65535)
                    .default_value(d.sender_port as i32)
                    .mutable_ready()
                    .build(),
                props::multicast_iface("Network interface to join the multicast group on, by name (default: system's choice)"),
                props::buffer_size(
                    "Receive Buffer Size",
                    "Size of the kernel receive buffer in bytes (0: system default); a warning says when the kernel caps it",
                    d.buffer_size,
                ),
                props::batch_size("Datagrams taken from the kernel per system call", d.batch_size),
                props::passphrase(
                    "Take only datagrams encrypted and authenticated with a key from this \
                     passphrase, the sender's (10 to 79 characters; empty: off)",
                ),
                props::pbkeylen("AES key length in bytes with a passphrase: 16 or 32, the sender's"),
                glib::ParamSpecUInt::builder("track")
                    .nick("Track")
                    .blurb("Which track of the sender's session to receive: 0 is its primary essence (its video, if it has video); a source of several tracks lists them in its track table (PROTOCOL §7.12)")
                    .maximum(u32::from(crate::protocol::tracks::CONTROL_TRACK) - 1)
                    .default_value(d.track)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("latency")
                    .nick("Latency")
                    .blurb("Reassembly window in milliseconds: how long an incomplete frame waits for a missing datagram after its latest one; the source reports this plus 20 ms (the most a sender spreads a frame) as its latency")
                    .minimum(1)
                    .maximum(60_000)
                    .default_value(d.latency_ms)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt64::builder("timeout")
                    .nick("Timeout")
                    .blurb("Post a GstVideoIpSrcTimeout element message after this many nanoseconds without data (0: never)")
                    .default_value(d.timeout_ns)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecBoxed::builder::<gst::Caps>("caps")
                    .nick("Caps")
                    .blurb("Caps to use instead of those the sender announces (default: the sender's)")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("max-frame-size")
                    .nick("Maximum Frame Size")
                    .blurb("Largest frame accepted, in bytes; datagrams of larger frames are counted invalid")
                    .minimum(1)
                    .maximum(u32::MAX)
                    .default_value(d.max_frame_size)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecBoolean::builder("reuse")
                    .nick("Reuse")
                    .blurb("Let other unicast receivers that also set reuse bind the same address and port (each then gets only part of the stream); a multicast group is always shared")
                    .default_value(d.reuse)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecEnum::builder_with_default("timestamp-mode", d.timestamp_mode)
                    .nick("Timestamp Mode")
                    .blurb("How buffers are timestamped: the sender's timestamps offset onto local running time (sender-clock), or each frame's arrival time (arrival)")
                    .mutable_ready()
                    .build(),
                props::stats("Datagrams and bytes received; frames complete, dropped, dropped late, without caps and of the wrong size for raw caps; datagrams lost, duplicate, reordered, late, invalid and foreign"),
            ]
        });
        PROPERTIES.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        let mut s = lock(&self.settings);
        match pspec.name() {
            "address" => s.address = opt_string(value).unwrap_or_else(|| "0.0.0.0".into()),
            "port" => {
                s.port = value.get::<i32>().unwrap_or(5004).max(0) as u32;
                s.port_set = true;
            }
            "sender-address" => s.sender_address = opt_string(value),
            "source-name" => s.source_name = opt_string(value),
            "sender-port" => s.sender_port = value.get::<i32>().unwrap_or(5004).max(0) as u32,
            "multicast-iface" => s.multicast_iface = opt_string(value),
            "buffer-size" => s.buffer_size = value.get::<i32>().unwrap_or(0).max(0) as u32,
            "batch-size" => s.batch_size = value.get().unwrap_or(64),
            "track" => s.track = value.get().unwrap_or(0),
            "passphrase" => s.passphrase = props::passphrase_value(value),
            "pbkeylen" => s.pbkeylen = value.get().unwrap_or(16),
            "latency" => s.latency_ms = value.get().unwrap_or(50),
            "timeout" => s.timeout_ns = value.get().unwrap_or(0),
            "caps" => s.caps = value.get::<Option<gst::Caps>>().ok().flatten(),
            "max-frame-size" => s.max_frame_size = value.get().unwrap_or(128 << 20),
            "reuse" => s.reuse = value.get().unwrap_or(false),
            "timestamp-mode" => s.timestamp_mode = value.get().unwrap_or_default(),
            other => gst::warning!(CAT, imp = self, "unknown property {other}"),
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        if pspec.name() == "stats" {
            return self.stats_structure().to_value();
        }
        let s = lock(&self.settings);
        match pspec.name() {
            "address" => s.address.to_value(),
            "port" => (s.port as i32).to_value(),
            "sender-address" => s.sender_address.to_value(),
            "source-name" => s.source_name.to_value(),
            "sender-port" => (s.sender_port as i32).to_value(),
            "multicast-iface" => s.multicast_iface.to_value(),
            "buffer-size" => (s.buffer_size as i32).to_value(),
            "batch-size" => s.batch_size.to_value(),
            "track" => s.track.to_value(),
            // Written only; never read back.
            "passphrase" => None::<String>.to_value(),
            "pbkeylen" => s.pbkeylen.to_value(),
            "latency" => s.latency_ms.to_value(),
            "timeout" => s.timeout_ns.to_value(),
            "caps" => s.caps.to_value(),
            "max-frame-size" => s.max_frame_size.to_value(),
            "reuse" => s.reuse.to_value(),
            "timestamp-mode" => s.timestamp_mode.to_value(),
            _ => pspec.default_value().clone(),
        }
    }

    fn constructed(&self) {
        self.parent_constructed();
        let obj = self.obj();
        obj.set_live(true);
        obj.set_format(gst::Format::Time);
        obj.set_do_timestamp(false);
    }
}

impl GstObjectImpl for VideoIpSrc {}

impl URIHandlerImpl for VideoIpSrc {
    const URI_TYPE: gst::URIType = gst::URIType::Src;

    fn protocols() -> &'static [&'static str] {
        &[uri::SCHEME]
    }

    fn uri(&self) -> Option<String> {
        let s = lock(&self.settings);
        if let (Some(name), None) = (s.source_name.as_deref(), s.sender_address.as_ref()) {
            return Some(uri::name_uri(name));
        }
        Some(match s.sender_address.as_deref() {
            Some(sender) => uri::address_uri(sender, s.sender_port as u16),
            None if s.address == "0.0.0.0" => uri::address_uri("", s.port as u16),
            None => uri::address_uri(&s.address, s.port as u16),
        })
    }

    /// `videoip://HOST:PORT?property=value&...`, as SRT's caller/listener URIs: no host (or
    /// an unspecified address) listens on PORT, a multicast group is joined on PORT, and
    /// any other host is a sender to subscribe to at PORT (see [`uri`]).
    fn set_uri(&self, text: &str) -> Result<(), glib::Error> {
        if self.obj().current_state() > gst::State::Ready {
            return Err(uri_while_running());
        }
        let parsed = uri::parse(text)
            .map_err(|e| glib::Error::new(gst::URIError::BadUri, &e.to_string()))?;
        let (host, port) = match parsed.target {
            uri::Target::Address { host, port } => (host, port),
            uri::Target::Name(name) => {
                let obj = self.obj();
                apply_uri_params(&*obj, &parsed.params)?;
                obj.set_property("sender-address", None::<String>);
                obj.set_property("source-name", name);
                return Ok(());
            }
        };
        let obj = self.obj();
        apply_uri_params(&*obj, &parsed.params)?;
        match uri::receiver_role(&host) {
            uri::Role::Listen => {
                let any = if host.is_empty() { "0.0.0.0" } else { &host };
                obj.set_property("address", any);
                obj.set_property("port", i32::from(port));
                obj.set_property("sender-address", None::<String>);
                obj.set_property("source-name", None::<String>);
            }
            uri::Role::Join(group) => {
                obj.set_property("address", group.to_string());
                obj.set_property("port", i32::from(port));
                obj.set_property("sender-address", None::<String>);
                obj.set_property("source-name", None::<String>);
            }
            uri::Role::Subscribe(sender) => {
                obj.set_property("sender-address", sender);
                obj.set_property("sender-port", i32::from(port));
            }
        }
        Ok(())
    }
}

impl ElementImpl for VideoIpSrc {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static METADATA: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "videoip Source",
                "Source/Network",
                "Receives live video or any timed media sent by videoipsink over UDP/IP",
                "The videoip developers",
            )
        });
        Some(&*METADATA)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static TEMPLATES: LazyLock<Vec<gst::PadTemplate>> =
            LazyLock::new(|| any_pad_template("src", gst::PadDirection::Src));
        TEMPLATES.as_ref()
    }

    fn change_state(
        &self,
        transition: gst::StateChange,
    ) -> Result<gst::StateChangeSuccess, gst::StateChangeError> {
        match transition {
            gst::StateChange::NullToReady => {
                if let Err(msg) = self.open_socket() {
                    self.post_error_message(msg);
                    return Err(gst::StateChangeError);
                }
            }
            gst::StateChange::PausedToPlaying => {
                // What queued up while paused (or between start and PLAYING) is stale: the
                // stream goes on from what arrives from now on, and running time itself moved,
                // so the timestamp mapping starts over too.
                lock(&self.shared.queue).clear_frames();
                if let Some(out) = lock(&self.out).as_mut() {
                    out.clock.restart();
                    out.discont = true;
                }
            }
            _ => {}
        }
        let ret = self.parent_change_state(transition);
        let closing = transition == gst::StateChange::ReadyToNull;
        let failed_opening = transition == gst::StateChange::NullToReady && ret.is_err();
        if closing || failed_opening {
            *lock(&self.io) = None;
        }
        ret
    }
}

impl BaseSrcImpl for VideoIpSrc {
    fn start(&self) -> Result<(), gst::ErrorMessage> {
        // Socket properties changed in READY take effect here.
        let wanted = self.receiver_config()?;
        let stale = lock(&self.io).as_ref().is_some_and(|io| io.cfg != wanted);
        if stale {
            gst::info!(CAT, imp = self, "socket settings changed: reopening");
            self.open_socket()?;
        }
        let s = lock(&self.settings).clone();
        let (receiver, waker) = match lock(&self.io).as_ref() {
            Some(io) => (io.receiver.clone(), io.waker.clone()),
            None => {
                return Err(gst::error_msg!(
                    gst::ResourceError::OpenRead,
                    ["no socket: the element was not brought to READY"]
                ))
            }
        };
        let buffer = receiver.buffer_size();
        if buffer.capped() {
            gst::element_imp_warning!(
                self,
                gst::ResourceError::Settings,
                [
                    "the kernel capped the receive buffer at {} bytes instead of {}: frames may be lost; raise it with 'sysctl -w net.core.rmem_max={}'",
                    buffer.granted / 2,
                    buffer.requested,
                    buffer.requested
                ]
            );
        }
        let max_age = s.max_latency();
        let mode = match s.timestamp_mode {
            TimestampMode::SenderClock => clock::Mode::SenderClock,
            TimestampMode::Arrival => clock::Mode::Arrival,
        };
        *lock(&self.out) = Some(Out {
            // Arrivals consistently later than the latency would make every buffer late:
            // past that the mapping starts over.
            clock: StreamClock::new(mode, s.min_latency().as_nanos() as u64),
            caps_override: s.caps.clone(),
            caps_set: None,
            refused_caps: None,
            timeout: (s.timeout_ns > 0).then(|| Duration::from_nanos(s.timeout_ns)),
            max_age,
            discont: true,
            frame_size: None,
        });
        self.frames_wrong_size.store(0, Ordering::Relaxed);
        *lock(&self.shared.stats) = Default::default();
        *lock(&self.shared.queue) = Default::default();
        let cfg = receiver::Config {
            session: {
                let defaults = receive::Config::default();
                receive::Config {
                    max_frame_size: s.max_frame_size as usize,
                    window: s.window(),
                    // Every frame of the window may still be waiting for a resend: at up to
                    // 120 fps that is one per 8.3 ms (the byte budget bounds the memory).
                    max_in_flight: (s.latency_ms as usize / 8).clamp(defaults.max_in_flight, 1024),
                    // Room for two of the largest frames, so raising max-frame-size still works.
                    max_bytes_in_flight: defaults
                        .max_bytes_in_flight
                        .max((s.max_frame_size as usize).saturating_mul(2)),
                    tracks: match u16::try_from(s.track) {
                        Ok(0) | Err(_) => receive::TrackSelection::Primary,
                        Ok(t) => receive::TrackSelection::Only(vec![t]),
                    },
                    ..defaults
                }
            },
            batch_size: s.batch_size as usize,
            max_age,
            master: props::master_key(&s.passphrase, s.pbkeylen)?,
            warn: self.warner(s.latency_ms, s.max_frame_size),
            fail: self.failer(),
            subscribe_to: {
                *lock(&self.target) = self.subscribe_target(&s)?.into_iter().collect();
                self.target.clone()
            },
            route: None,
        };
        let thread =
            receiver::Thread::spawn(receiver, waker, self.shared.clone(), cfg).map_err(|e| {
                gst::error_msg!(
                    gst::ResourceError::OpenRead,
                    ["could not start the receive thread: {}", e]
                )
            })?;
        *lock(&self.rx) = Some(thread);
        if let (Some(name), None) = (s.source_name.clone(), s.sender_address.as_ref()) {
            self.find(name)?;
        }
        Ok(())
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        *lock(&self.finder) = None;
        self.stop_thread();
        *lock(&self.out) = None;
        Ok(())
    }

    fn is_seekable(&self) -> bool {
        false
    }

    /// Caps come from the sender, set before the first buffer of each generation; BaseSrc's
    /// own negotiation has nothing to choose from. It runs at start, when downstream asks to
    /// reconfigure, and after a buffer with new caps (see `push_caps`): then it checks that
    /// downstream took the caps. If not, their frames are dropped with a warning, never
    /// turned into a not-negotiated error: what a sender announces must not stop the pipeline.
    fn negotiate(&self) -> Result<(), gst::LoggableError> {
        let Some(caps_str) = lock(&self.out).as_ref().and_then(|s| s.caps_set.clone()) else {
            return Ok(());
        };
        let Ok(caps) = gst::Caps::from_str(&caps_str) else {
            return Ok(());
        };
        let obj = self.obj();
        let pad = obj.src_pad();
        let taken = pad
            .peer()
            .and_then(|p| p.current_caps())
            .is_some_and(|c| c == caps);
        gst::debug!(
            CAT,
            imp = self,
            "negotiate: caps taken downstream: {taken}, last flow {:?}",
            pad.last_flow_result()
        );
        if taken && pad.last_flow_result() != Err(gst::FlowError::NotNegotiated) {
            return Ok(());
        }
        // Downstream could not set them, or could not use them for a buffer: drop the
        // stream's frames, not the pipeline.
        if let Some(out) = lock(&self.out).as_mut() {
            out.caps_set = None;
            out.refused_caps = Some(caps_str);
            out.discont = true;
        }
        self.warn_caps(format!(
            "downstream does not accept the sender's caps {caps}; dropping its frames"
        ));
        Ok(())
    }

    fn query(&self, query: &mut gst::QueryRef) -> bool {
        if let gst::QueryViewMut::Latency(q) = query.view_mut() {
            let s = lock(&self.settings).clone();
            let ns = |d: Duration| gst::ClockTime::from_nseconds(d.as_nanos() as u64);
            q.set(true, ns(s.min_latency()), ns(s.max_latency()));
            return true;
        }
        BaseSrcImplExt::parent_query(self, query)
    }

    fn unlock(&self) -> Result<(), gst::ErrorMessage> {
        lock(&self.shared.queue).flushing = true;
        self.shared.ready.notify_all();
        Ok(())
    }

    fn unlock_stop(&self) -> Result<(), gst::ErrorMessage> {
        lock(&self.shared.queue).flushing = false;
        Ok(())
    }
}

impl PushSrcImpl for VideoIpSrc {
    fn create(
        &self,
        _buffer: Option<&mut gst::BufferRef>,
    ) -> Result<CreateSuccess, gst::FlowError> {
        loop {
            let (timeout, max_age) = match lock(&self.out).as_ref() {
                Some(out) => (out.timeout, out.max_age),
                None => return Err(gst::FlowError::Flushing),
            };
            let (item, queue_discont) = match self.next(timeout, max_age) {
                Next::Item(item, discont) => (item, discont),
                Next::Flushing => return Err(gst::FlowError::Flushing),
                Next::Timeout(ns) => {
                    let s = gst::Structure::builder("GstVideoIpSrcTimeout")
                        .field("timeout", ns)
                        .build();
                    let _ = self
                        .obj()
                        .post_message(gst::message::Element::builder(s).src(&*self.obj()).build());
                    continue;
                }
            };
            match item {
                Item::Frame(f, caps, origin) => {
                    let made = match lock(&self.out).as_mut() {
                        Some(out) => self.output(out, f, &caps, origin, queue_discont),
                        None => return Err(gst::FlowError::Flushing),
                    };
                    // (The out lock is released here: warnings are posted without it.)
                    let (buffer, new_caps) = match made {
                        Ok(made) => made,
                        Err(Dropped::Quietly) => continue,
                        Err(Dropped::Caps(msg)) => {
                            self.warn_caps(msg);
                            continue;
                        }
                        Err(Dropped::WrongSize(msg)) => {
                            self.warn_size(msg);
                            continue;
                        }
                    };
                    match new_caps {
                        None => return Ok(CreateSuccess::NewBuffer(buffer)),
                        Some((caps, caps_str)) => {
                            if self.push_caps(caps, caps_str) {
                                return Ok(CreateSuccess::NewBuffer(buffer));
                            }
                        }
                    }
                }
                Item::Eos => {
                    gst::info!(CAT, imp = self, "the sender ended the stream");
                    return Err(gst::FlowError::Eos);
                }
                // (Posted by the receive thread as it happened.)
                Item::Error => return Err(gst::FlowError::Error),
            }
        }
    }
}

/// Why the socket did not open: for a port held by another socket, which one and what to do
/// (as udpsrc without reuse, a second unicast receiver on one port is refused rather than
/// left to take part of the other's datagrams).
pub(crate) fn open_error(cfg: &ReceiverConfig, e: &net::NetError) -> String {
    if !e.is_addr_in_use() {
        return e.to_string();
    }
    let port = cfg.port;
    let reuse = if cfg.address.is_multicast() {
        "receivers of a multicast group share its port, but not with a unicast receiver"
    } else if cfg.reuse {
        "reuse=true shares it only with receivers that set reuse=true too"
    } else {
        "two unicast receivers on one port would each get only part of the stream"
    };
    format!(
        "could not {}: port {port} is already in use by another receiver: pick another port, or port=0 to take any free one ({reuse})",
        e.what
    )
}
