// SPDX-License-Identifier: MPL-2.0
//! The `videoipsrc` element: a live PushSrc that receives datagrams in `recvmmsg` batches,
//! reassembles frames into pooled buffers and pushes them with the sender's caps.
//!
//! Locks: `settings` (properties), `io` (socket and waker, opened in NULL→READY so that the
//! bound port can be read back; `unlock` only takes it briefly), `state` (the streaming
//! thread's, held while it receives), `stats` (a snapshot for the `stats` property). Never
//! more than one at a time, and nothing is posted, notified or negotiated while one is held.

use crate::element::{any_pad_template, lock, opt_string};
use crate::net::{self, Receiver, ReceiverConfig, RecvBatch, Waker};
use crate::reassembly::{self, Event, Session, Stats};
use crate::timestamps::TimeMapper;
use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::prelude::*;
use gst_base::subclass::base_src::CreateSuccess;
use gst_base::subclass::prelude::*;
use std::net::IpAddr;
use std::str::FromStr;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "videoipsrc",
        gst::DebugColorFlags::empty(),
        Some("videoip receiver"),
    )
});

/// Receive slot size: the largest UDP payload.
const SLOT_SIZE: usize = 65536;
/// Frame sizes at least this large, seen this many times in a row, get a buffer pool.
const POOL_MIN_SIZE: usize = 64 * 1024;
const POOL_AFTER_REPEATS: u32 = 3;

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
            reuse: true,
        }
    }
}

struct Io {
    receiver: Arc<Receiver>,
    waker: Arc<Waker>,
    /// What the socket was opened with (the port as bound).
    cfg: ReceiverConfig,
}

type FrameBuf = gst::MappedBuffer<gst::buffer::Writable>;

/// Output buffers: a pool for the stream's steady frame size, plain allocations otherwise.
#[derive(Default)]
struct FramePool {
    pool: Option<gst::BufferPool>,
    size: usize,
    candidate: usize,
    repeats: u32,
}

impl FramePool {
    fn alloc(&mut self, len: usize) -> Option<FrameBuf> {
        if len != self.size || self.pool.is_none() {
            if len == self.candidate {
                self.repeats += 1;
            } else {
                self.candidate = len;
                self.repeats = 1;
            }
            if self.repeats >= POOL_AFTER_REPEATS && len >= POOL_MIN_SIZE {
                self.make_pool(len);
            }
        }
        let buffer = match &self.pool {
            Some(pool) if len == self.size => pool.acquire_buffer(None).ok(),
            _ => None,
        };
        let buffer = match buffer {
            Some(b) => b,
            None => gst::Buffer::with_size(len).ok()?,
        };
        buffer.into_mapped_buffer_writable().ok()
    }

    fn make_pool(&mut self, len: usize) {
        self.release();
        let Ok(size) = u32::try_from(len) else {
            return;
        };
        let pool = gst::BufferPool::new();
        let mut config = pool.config();
        config.set_params(None, size, 0, 0);
        if pool.set_config(config).is_ok() && pool.set_active(true).is_ok() {
            self.pool = Some(pool);
            self.size = len;
        }
    }

    fn release(&mut self) {
        if let Some(pool) = self.pool.take() {
            let _ = pool.set_active(false);
        }
    }
}

struct State {
    receiver: Arc<Receiver>,
    waker: Arc<Waker>,
    batch: RecvBatch,
    /// Next datagram of `batch` to hand to the session, and when the batch arrived.
    batch_pos: usize,
    batch_time: Instant,
    session: Session<FrameBuf>,
    /// Frames and events taken from the session, not yet pushed (at most one batch's worth).
    ready: std::collections::VecDeque<Event<FrameBuf>>,
    pool: FramePool,
    mapper: TimeMapper,
    caps_override: Option<gst::Caps>,
    /// The caps string last put on the pad.
    caps_set: Option<String>,
    timeout: Option<Duration>,
    last_data: Instant,
    discont: bool,
    /// The reassembly window, and when frames were last checked against it.
    window: Duration,
    last_expiry: Instant,
    /// The stream the timestamp mapping belongs to.
    mapped_stream: Option<u64>,
    /// Most datagrams one receive found queued: how bursty the stream arrives (a paced
    /// sender keeps it near one batch; a burst sender's whole frame can queue up).
    largest_burst: u64,
    /// Receives that returned datagrams.
    receives: u64,
    /// Caps downstream refused: frames with them are dropped, not renegotiated again.
    refused_caps: Option<String>,
}

impl Drop for State {
    fn drop(&mut self) {
        self.pool.release();
    }
}

/// What one turn of the streaming loop produced.
enum Step {
    /// A buffer, and new caps (with the string they came as) to set before it.
    Buffer(gst::Buffer, Option<(gst::Caps, String)>),
    Eos,
    Flushing,
    Timeout(u64),
    Error(gst::ErrorMessage),
}

#[derive(Default)]
pub struct VideoIpSrc {
    settings: Mutex<Settings>,
    io: Mutex<Option<Io>>,
    state: Mutex<Option<State>>,
    /// Counters for the `stats` property: the session's, the largest burst, the receives.
    stats: Mutex<(Stats, u64, u64)>,
}

impl VideoIpSrc {
    /// The socket configuration the properties ask for.
    fn receiver_config(&self) -> Result<ReceiverConfig, gst::ErrorMessage> {
        let s = lock(&self.settings).clone();
        let address = IpAddr::from_str(s.address.trim()).map_err(|_| {
            gst::error_msg!(
                gst::ResourceError::Settings,
                ["address \"{}\" is not an IPv4 or IPv6 address", s.address]
            )
        })?;
        let iface = net::interface_index(s.multicast_iface.as_deref().unwrap_or(""))
            .map_err(|e| gst::error_msg!(gst::ResourceError::Settings, ["{}", e]))?;
        Ok(ReceiverConfig {
            address,
            port: u16::try_from(s.port).unwrap_or(0),
            multicast_iface: iface,
            buffer_size: s.buffer_size as usize,
            reuse: s.reuse,
        })
    }

    fn open_socket(&self) -> Result<(), gst::ErrorMessage> {
        let mut cfg = self.receiver_config()?;
        // Close a previous socket first, so that reopening on the same port works.
        *lock(&self.io) = None;
        let receiver = Receiver::open(&cfg)
            .map_err(|e| gst::error_msg!(gst::ResourceError::OpenRead, ["{}", e]))?;
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
        let (s, largest_burst, receives) = *lock(&self.stats);
        gst::Structure::builder("videoipsrc-stats")
            .field("datagrams-received", s.datagrams_received)
            .field("bytes-received", s.bytes_received)
            .field("frames-complete", s.frames_complete)
            .field("frames-dropped", s.frames_dropped)
            .field("frames-without-caps", s.frames_without_info)
            .field("datagrams-lost", s.datagrams_lost)
            .field("datagrams-duplicate", s.datagrams_duplicate)
            .field("datagrams-reordered", s.datagrams_reordered)
            .field("datagrams-late", s.datagrams_late)
            .field("datagrams-invalid", s.datagrams_invalid)
            .field("datagrams-foreign", s.datagrams_foreign)
            .field("datagrams-unknown", s.datagrams_unknown)
            .field("extensions-ignored", s.extensions_ignored)
            .field("stream-info-received", s.info_received)
            .field("largest-burst", largest_burst)
            .field("receives", receives)
            .build()
    }

    /// Publishes the streaming thread's counters for the `stats` property.
    fn snapshot_stats(&self, state: &State) {
        *lock(&self.stats) = (state.session.stats(), state.largest_burst, state.receives);
    }

    /// Local running time now, if the element has a clock.
    fn running_time(&self) -> Option<u64> {
        let obj = self.obj();
        let clock = obj.clock()?;
        let base = obj.base_time()?;
        clock.time().checked_sub(base).map(|t| t.nseconds())
    }

    /// Turns a complete frame into a buffer, with caps if they changed. None: no caps yet.
    fn output(
        &self,
        state: &mut State,
        f: reassembly::Frame<FrameBuf>,
        frame_caps: &str,
    ) -> Option<(gst::Buffer, Option<(gst::Caps, String)>)> {
        // The caps of the frame's own stream info generation, not the newest announced: a
        // batch may hold the end of the old frames and the new info together.
        let caps_str = match &state.caps_override {
            Some(c) => c.to_string(),
            None => frame_caps.to_owned(),
        };
        if state.refused_caps.as_deref() == Some(caps_str.as_str()) {
            state.session.mark_discont();
            return None;
        }
        let new_caps = if state.caps_set.as_deref() != Some(caps_str.as_str()) {
            let caps = match &state.caps_override {
                Some(c) => c.clone(),
                None => match gst::Caps::from_str(&caps_str) {
                    Ok(c) if c.is_fixed() => c,
                    _ => {
                        // Never fatal: a bad announcement is counted and the frames wait
                        // for the next stream info.
                        gst::warning!(CAT, imp = self, "ignoring unusable caps: {caps_str}");
                        state.session.reject_info();
                        state.session.mark_discont();
                        return None;
                    }
                },
            };
            Some((caps, caps_str))
        } else {
            None
        };

        let none_if_max = |t: u64| (t != crate::protocol::TIME_NONE).then_some(t);
        let now_rt = self.running_time();
        let arrival_rt = now_rt.map(|rt| {
            rt.saturating_sub(
                Instant::now()
                    .saturating_duration_since(f.arrival)
                    .as_nanos() as u64,
            )
        });
        let mut buffer = f.buf.into_buffer();
        {
            let b = buffer.make_mut();
            if let Some(arrival) = arrival_rt {
                if state.mapped_stream != state.session.session_id() {
                    // A new sender: its timeline has nothing to do with the last one's.
                    state.mapper.reset();
                    state.mapped_stream = state.session.session_id();
                }
                let m = state
                    .mapper
                    .map(arrival, none_if_max(f.info.pts), none_if_max(f.info.dts));
                b.set_pts(m.pts.map(gst::ClockTime::from_nseconds));
                b.set_dts(m.dts.map(gst::ClockTime::from_nseconds));
                if m.resynced {
                    state.discont = true;
                }
            }
            b.set_duration(none_if_max(f.info.duration).map(gst::ClockTime::from_nseconds));
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
            if f.discont || state.discont || f.info.flags & wire::DISCONT != 0 {
                flags |= gst::BufferFlags::DISCONT;
            }
            state.discont = false;
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
        Some((buffer, new_caps))
    }

    /// Receives until a frame is ready, the stream ends, the timeout fires or we are woken.
    fn step(&self, state: &mut State) -> Step {
        loop {
            // Checked on every pass, so that a stream of datagrams that never lets the
            // socket drain cannot keep a state change waiting.
            if state.waker.is_woken() {
                return Step::Flushing;
            }
            while let Some(ev) = state.ready.pop_front() {
                match ev {
                    Event::Eos => return Step::Eos,
                    Event::Frame(f, caps) => {
                        if let Some((buf, caps)) = self.output(state, f, &caps) {
                            return Step::Buffer(buf, caps);
                        }
                    }
                }
            }
            // Datagrams of the last receive not yet handed to the session: hand them over
            // until a frame completes, and push that frame before going on, so that a large
            // batch does not hold a complete frame back.
            if state.batch_pos < state.batch.len() {
                let now = state.batch_time;
                let State {
                    batch,
                    batch_pos,
                    session,
                    pool,
                    ready,
                    ..
                } = state;
                while *batch_pos < batch.len() && ready.is_empty() {
                    match batch.get(*batch_pos) {
                        // TODO(net-v2): source address from RecvMeta
                        Some(d) => match session.push(
                            d,
                            std::net::SocketAddr::from(([0, 0, 0, 0], 0)),
                            now,
                            |len| pool.alloc(len),
                        ) {
                            // Complete frames come out at once so that they never count
                            // against the frames in flight.
                            Ok(true) => ready.extend(std::iter::from_fn(|| session.poll_ready())),
                            Ok(false) => {}
                            Err(e) => gst::trace!(CAT, imp = self, "dropped a datagram: {e}"),
                        },
                        None => session.count_invalid(),
                    }
                    *batch_pos += 1;
                }
                if state.batch_pos < state.batch.len() {
                    continue;
                }
                self.snapshot_stats(state);
                // Frames are timed out when the socket is drained, and under traffic that
                // never lets it drain once per window: a frame that got no datagram for a
                // window while later ones kept arriving (in order) has lost the rest. A
                // frame whose datagrams are merely still queued is not at risk, as the window
                // runs from its latest datagram read.
                if now < state.last_expiry + state.window {
                    continue;
                }
            } else {
                match state.batch.recv(&state.receiver) {
                    Ok(0) => {}
                    Ok(n) => {
                        state.largest_burst = state.largest_burst.max(n as u64);
                        state.receives += 1;
                        state.batch_pos = 0;
                        state.batch_time = Instant::now();
                        state.last_data = state.batch_time;
                        continue;
                    }
                    Err(e) => {
                        return Step::Error(gst::error_msg!(
                            gst::ResourceError::Read,
                            ["receiving from the network failed: {}", e]
                        ))
                    }
                }
            }
            // The socket is drained (or a window went by): frames whose window has passed
            // may now be dropped.
            let now = Instant::now();
            state.last_expiry = now;
            let State { session, ready, .. } = state;
            ready.extend(std::iter::from_fn(|| session.poll(now)));
            if !state.ready.is_empty() {
                continue;
            }
            self.snapshot_stats(state);
            let timeout_at = state.timeout.map(|t| state.last_data + t);
            let deadline = match (state.session.next_deadline(), timeout_at) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            match state
                .waker
                .wait(Some(state.receiver.fd()), libc::POLLIN, deadline)
            {
                Ok(net::Wait::Woken) => return Step::Flushing,
                Ok(net::Wait::Ready) => {}
                Ok(net::Wait::TimedOut) => {
                    if let (Some(t), Some(at)) = (state.timeout, timeout_at) {
                        if Instant::now() >= at {
                            state.last_data = Instant::now();
                            return Step::Timeout(t.as_nanos() as u64);
                        }
                    }
                }
                Err(e) => {
                    return Step::Error(gst::error_msg!(
                        gst::ResourceError::Read,
                        ["waiting for the network failed: {}", e]
                    ))
                }
            }
        }
    }
}

#[glib::object_subclass]
impl ObjectSubclass for VideoIpSrc {
    const NAME: &'static str = "GstVideoIpSrc";
    type Type = super::VideoIpSrc;
    type ParentType = gst_base::PushSrc;
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
                glib::ParamSpecInt::builder("port")
                    .nick("Port")
                    .blurb("UDP port to receive on (0: any free port, read back in READY)")
                    .minimum(0)
                    .maximum(65535)
                    .default_value(d.port as i32)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("multicast-iface")
                    .nick("Multicast Interface")
                    .blurb("Network interface to join the multicast group on, by name (default: system's choice)")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecInt::builder("buffer-size")
                    .nick("Receive Buffer Size")
                    .blurb("Size of the kernel receive buffer in bytes (0: system default); a warning says when the kernel caps it")
                    .minimum(0)
                    .maximum(i32::MAX)
                    .default_value(d.buffer_size as i32)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("batch-size")
                    .nick("Batch Size")
                    .blurb("Datagrams taken from the kernel per system call")
                    .minimum(1)
                    .maximum(1024)
                    .default_value(d.batch_size)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("latency")
                    .nick("Latency")
                    .blurb("Reassembly window in milliseconds: how long an incomplete frame waits for a missing datagram after its latest one; reported as the source's latency")
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
                    .blurb("Allow other sockets to bind the same address and port")
                    .default_value(d.reuse)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecBoxed::builder::<gst::Structure>("stats")
                    .nick("Statistics")
                    .blurb("Datagrams and bytes received; frames complete, dropped and without caps; datagrams lost, duplicate, reordered, late, invalid and foreign")
                    .read_only()
                    .build(),
            ]
        });
        PROPERTIES.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        let mut s = lock(&self.settings);
        match pspec.name() {
            "address" => s.address = opt_string(value).unwrap_or_else(|| "0.0.0.0".into()),
            "port" => s.port = value.get::<i32>().unwrap_or(5004).max(0) as u32,
            "multicast-iface" => s.multicast_iface = opt_string(value),
            "buffer-size" => s.buffer_size = value.get::<i32>().unwrap_or(0).max(0) as u32,
            "batch-size" => s.batch_size = value.get().unwrap_or(64),
            "latency" => s.latency_ms = value.get().unwrap_or(50),
            "timeout" => s.timeout_ns = value.get().unwrap_or(0),
            "caps" => s.caps = value.get::<Option<gst::Caps>>().ok().flatten(),
            "max-frame-size" => s.max_frame_size = value.get().unwrap_or(128 << 20),
            "reuse" => s.reuse = value.get().unwrap_or(true),
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
            "multicast-iface" => s.multicast_iface.to_value(),
            "buffer-size" => (s.buffer_size as i32).to_value(),
            "batch-size" => s.batch_size.to_value(),
            "latency" => s.latency_ms.to_value(),
            "timeout" => s.timeout_ns.to_value(),
            "caps" => s.caps.to_value(),
            "max-frame-size" => s.max_frame_size.to_value(),
            "reuse" => s.reuse.to_value(),
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
        if transition == gst::StateChange::NullToReady {
            if let Err(msg) = self.open_socket() {
                self.post_error_message(msg);
                return Err(gst::StateChangeError);
            }
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
        let window = Duration::from_millis(u64::from(s.latency_ms));
        let defaults = reassembly::Config::default();
        let cfg = reassembly::Config {
            max_frame_size: s.max_frame_size as usize,
            window,
            // Room for two of the largest frames, so raising max-frame-size still works.
            max_bytes_in_flight: defaults
                .max_bytes_in_flight
                .max((s.max_frame_size as usize).saturating_mul(2)),
            ..defaults
        };
        *lock(&self.stats) = Default::default();
        *lock(&self.state) = Some(State {
            receiver,
            waker,
            batch: RecvBatch::new(s.batch_size as usize, SLOT_SIZE),
            batch_pos: 0,
            batch_time: Instant::now(),
            session: Session::new(cfg),
            ready: Default::default(),
            pool: FramePool::default(),
            // Arrivals further than the window from the mapping would make buffers late (or
            // hold them back): start the mapping over instead.
            mapper: TimeMapper::new(window.as_nanos() as u64),
            caps_override: s.caps,
            caps_set: None,
            timeout: (s.timeout_ns > 0).then(|| Duration::from_nanos(s.timeout_ns)),
            last_data: Instant::now(),
            discont: true,
            window,
            last_expiry: Instant::now(),
            mapped_stream: None,
            largest_burst: 0,
            receives: 0,
            refused_caps: None,
        });
        Ok(())
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        *lock(&self.state) = None;
        Ok(())
    }

    fn is_seekable(&self) -> bool {
        false
    }

    /// Caps come from the sender, set before the first buffer of each generation; BaseSrc's
    /// own negotiation (at start, and when downstream asks to reconfigure) has nothing to
    /// choose from. Caps downstream refuses are handled (and warned about) in `create`,
    /// never turned into a not-negotiated error.
    fn negotiate(&self) -> Result<(), gst::LoggableError> {
        let current = lock(&self.state)
            .as_ref()
            .and_then(|s| s.caps_set.clone())
            .and_then(|c| gst::Caps::from_str(&c).ok());
        if let Some(caps) = current {
            if self.obj().set_caps(&caps).is_err() {
                gst::warning!(CAT, imp = self, "downstream no longer accepts {caps}");
            }
        }
        Ok(())
    }

    fn query(&self, query: &mut gst::QueryRef) -> bool {
        if let gst::QueryViewMut::Latency(q) = query.view_mut() {
            let latency = gst::ClockTime::from_mseconds(u64::from(lock(&self.settings).latency_ms));
            q.set(true, latency, gst::ClockTime::NONE);
            return true;
        }
        BaseSrcImplExt::parent_query(self, query)
    }

    fn unlock(&self) -> Result<(), gst::ErrorMessage> {
        if let Some(io) = lock(&self.io).as_ref() {
            io.waker.wake();
        }
        Ok(())
    }

    fn unlock_stop(&self) -> Result<(), gst::ErrorMessage> {
        if let Some(io) = lock(&self.io).as_ref() {
            io.waker.reset();
        }
        Ok(())
    }
}

impl PushSrcImpl for VideoIpSrc {
    fn create(
        &self,
        _buffer: Option<&mut gst::BufferRef>,
    ) -> Result<CreateSuccess, gst::FlowError> {
        loop {
            let step = match lock(&self.state).as_mut() {
                Some(state) => self.step(state),
                None => Step::Flushing,
            };
            match step {
                Step::Buffer(buffer, caps) => {
                    let Some((caps, caps_str)) = caps else {
                        return Ok(CreateSuccess::NewBuffer(buffer));
                    };
                    gst::info!(CAT, imp = self, "caps from the sender: {caps}");
                    // Pushing caps "succeeds" as a sticky event even when downstream cannot
                    // take them (the buffer then fails not-negotiated): ask first.
                    let obj = self.obj();
                    let accepted =
                        obj.src_pad().peer_query_accept_caps(&caps) && obj.set_caps(&caps).is_ok();
                    if let Some(state) = lock(&self.state).as_mut() {
                        if accepted {
                            state.caps_set = Some(caps_str);
                            state.refused_caps = None;
                        } else {
                            state.refused_caps = Some(caps_str);
                            state.session.mark_discont();
                        }
                    }
                    if accepted {
                        return Ok(CreateSuccess::NewBuffer(buffer));
                    }
                    // Not fatal: what a sender announces must not stop the pipeline. Its
                    // frames are dropped until it announces caps that downstream accepts.
                    gst::element_imp_warning!(
                        self,
                        gst::CoreError::Negotiation,
                        [
                            "downstream does not accept the sender's caps {}; dropping its frames",
                            caps
                        ]
                    );
                }
                Step::Eos => {
                    gst::info!(CAT, imp = self, "the sender ended the stream");
                    if let Some(state) = lock(&self.state).as_ref() {
                        self.snapshot_stats(state);
                    }
                    return Err(gst::FlowError::Eos);
                }
                Step::Flushing => return Err(gst::FlowError::Flushing),
                Step::Timeout(ns) => {
                    let s = gst::Structure::builder("GstVideoIpSrcTimeout")
                        .field("timeout", ns)
                        .build();
                    let _ = self
                        .obj()
                        .post_message(gst::message::Element::builder(s).src(&*self.obj()).build());
                }
                Step::Error(msg) => {
                    self.post_error_message(msg);
                    return Err(gst::FlowError::Error);
                }
            }
        }
    }
}
