// SPDX-License-Identifier: MPL-2.0
//! The `videoipsink` element: glue between GStreamer and the sender session
//! ([`crate::send::Session`]), which its driver thread ([`super::driver`]) runs. `render()`
//! maps each buffer (no copy) and hands it over with its timestamps and flags; it never
//! waits for the network, so pacing never holds the streaming thread.
//!
//! Locks: `settings` (properties), `driver` (the running driver, taken briefly to reach
//! it), `stream` (what the streaming thread found out about the stream), the driver's
//! `queue` and `stats`, and the announcement's own. Never two at a time, never across a
//! system call, and no message is posted and no property notified while one is held.

use crate::elements::{any_pad_template, apply_uri_params, lock, opt_string, uri_while_running};
use crate::elements::{props, uri};
use crate::net::{self, SenderConfig, UdpSocket};
use crate::protocol::{self, fec, flags, reference_clock};
use crate::send::packetizer::{self, FrameMeta};
use crate::send::{self, rate, schedule, ClockSample, Frame, Session};
use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::prelude::*;
use gst_base::subclass::prelude::*;
use std::hash::{BuildHasher, Hasher};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use super::announce::Announce;
use super::driver::{Driver, Item, Published, Setup, Shared};
use super::Pacing;

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "videoipsink",
        gst::DebugColorFlags::empty(),
        Some("videoip sender"),
    )
});

/// Resends may take at most this share of the bytes sent, so that a broken link cannot make
/// the sender flood it.
const DEFAULT_MAX_RETRANSMISSION_PERCENTAGE: u32 = 50;

/// The session-level settings, `videoipsink`'s and `videoipsinkbin`'s alike.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) host: String,
    pub(crate) port: u32,
    pub(crate) bind_address: Option<String>,
    pub(crate) bind_port: u32,
    pub(crate) mtu: u32,
    pub(crate) ttl: u32,
    pub(crate) ttl_mc: u32,
    pub(crate) multicast_iface: Option<String>,
    pub(crate) multicast_loop: bool,
    pub(crate) qos_dscp: i32,
    pub(crate) buffer_size: u32,
    pub(crate) batch_size: u32,
    pub(crate) max_retransmission_percentage: u32,
    pub(crate) passphrase: String,
    pub(crate) pbkeylen: u32,
    pub(crate) pacing: Pacing,
    /// Bits per second, 0: unlimited.
    pub(crate) max_bitrate: u64,
    pub(crate) fec_percentage: u32,
    /// The name the stream is offered under.
    pub(crate) source_name: Option<String>,
    /// Whether `host` was set: a named sink without one sends to its subscribers.
    pub(crate) host_set: bool,
    /// Most subscribers at once (0: up to [`crate::send::receivers::MAX_RECEIVERS`]).
    pub(crate) max_receivers: u32,
    /// Whether a named stream is announced by DNS-SD.
    pub(crate) announce: bool,
}

impl Settings {
    /// Subscription mode: named, and no `host` to send to.
    pub(crate) fn subscription(&self) -> bool {
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
            passphrase: String::new(),
            pbkeylen: 16,
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

/// The running driver, and what the streaming thread needs to hand it buffers.
struct Running {
    driver: Driver,
    /// Payload bytes per datagram.
    frag: u16,
}

/// What the streaming thread found out about the stream.
#[derive(Debug, Default)]
struct Stream {
    /// Whether frames over the rate are dropped (a clock-synchronised sink with a live
    /// source) rather than waited for; found at the first frame after caps.
    live: Option<bool>,
}

#[derive(Default)]
pub struct VideoIpSink {
    settings: Mutex<Settings>,
    running: Mutex<Option<Running>>,
    stream: Mutex<Stream>,
    /// The driver's counters, kept after it stops (for the `stats` property).
    last_stats: Mutex<Option<Arc<Shared>>>,
    /// The DNS-SD announcement (`source-name`); its lock is taken alone.
    announce: Announce,
}

fn random_u32() -> u32 {
    std::hash::RandomState::new().build_hasher().finish() as u32
}

/// Opens the socket `s` says: (it, the destination, payload bytes per datagram).
fn open(s: &Settings) -> Result<(UdpSocket, SocketAddr, u16), gst::ErrorMessage> {
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
    // A passphrase adds the AUTH extension and the tag to every datagram.
    let auth = if s.passphrase.is_empty() {
        0
    } else {
        crate::crypto::OVERHEAD
    };
    let frag = packetizer::fragment_size(s.mtu, dest.is_ipv6())
        .saturating_sub(auth as u16)
        .max(1);
    // Datagrams larger than the interface they leave by are refused (the socket never
    // fragments): `mtu` above it is a mistake that would reach no one at `host`. (A
    // multicast interface set by name is the socket's, not the route's: not checked
    // here; a send refused later is a warning, see `send::Session::handle_send_error`.)
    if !s.subscription() && iface == 0 {
        let size = usize::from(frag)
            + protocol::MEDIA_HEADER_LEN
            + auth
            + 8
            + if dest.is_ipv6() { 40 } else { 20 };
        if let Some(m) = sender.path_mtu(dest).filter(|&m| (m as usize) < size) {
            return Err(gst::error_msg!(
                    gst::ResourceError::Settings,
                    [
                        "the network interface towards {} carries at most {} bytes per datagram, less than mtu={}; set mtu={} or lower",
                        dest,
                        m,
                        s.mtu,
                        m
                    ]
                ));
        }
    }
    Ok((sender, dest, frag))
}

/// A sender started: its driver (with the session) and what the element needs of it.
pub(crate) struct Started {
    pub driver: Driver,
    /// Payload bytes per datagram.
    pub frag: u16,
    pub session_id: u64,
    /// The socket's own port (where subscribers, reports and NACKs come).
    pub own_port: u16,
    /// The `host` destination (unspecified in subscription mode).
    pub dest: SocketAddr,
}

/// Checks `settings`, opens the socket, makes the session (its first track `track`) and
/// starts the driver thread, whose errors and warnings go to `element`.
pub(crate) fn start_sender(
    settings: &Settings,
    element: &gst::Element,
    track: u16,
    cat: &gst::DebugCategory,
) -> Result<Started, gst::ErrorMessage> {
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
    let master = props::master_key(&settings.passphrase, settings.pbkeylen)?;
    let (socket, dest, frag) = open(settings)?;
    if settings.subscription() {
        gst::info!(
            *cat,
            obj = element,
            "sending to receivers that subscribe at {}, {} payload bytes per datagram",
            socket.local_addr(),
            frag
        );
    } else {
        gst::info!(
            *cat,
            obj = element,
            "sending from {} to {}, {} payload bytes per datagram",
            socket.local_addr(),
            dest,
            frag
        );
    }
    let auth = master.as_ref().map_or(0, |_| crate::crypto::OVERHEAD);
    let gso_align = if socket.gso_supported() {
        net::gso_segments(protocol::MEDIA_HEADER_LEN + auth + usize::from(frag))
    } else {
        1
    };
    let own_port = socket.local_addr().port();
    let session_id = packetizer::random_session_id();
    // A named stream takes subscribers (at its own port, which it announces), besides its
    // host if it has one: receivers that find it by name subscribe, also to a multicast
    // stream (they get it by unicast; the group is for those that join it).
    let max_subscribers = settings
        .source_name
        .is_some()
        .then_some(match settings.max_receivers {
            0 => send::receivers::MAX_RECEIVERS,
            n => n as usize,
        });
    let mut session = Session::new(send::Config {
        session: session_id,
        track,
        first_seq: random_u32(),
        frag,
        dest: (!settings.subscription()).then_some(dest),
        max_subscribers,
        pacing: match settings.pacing {
            Pacing::None => schedule::Pacing::None,
            Pacing::Frame => schedule::Pacing::Frame,
        },
        batch_size: settings.batch_size.max(1) as usize,
        gso_align,
        max_bitrate: (settings.max_bitrate != 0).then_some(settings.max_bitrate),
        fec_percentage: settings.fec_percentage,
        max_retransmission_percentage: settings.max_retransmission_percentage,
    });
    if let Some(m) = master {
        session.protect(m);
    }
    let driver = Driver::spawn(
        session,
        Setup {
            socket,
            element: element.downgrade(),
        },
    )
    .map_err(|e| {
        gst::error_msg!(
            gst::ResourceError::OpenWrite,
            ["could not start the thread that sends: {}", e]
        )
    })?;
    Ok(Started {
        driver,
        frag,
        session_id,
        own_port,
        dest,
    })
}

impl VideoIpSink {
    /// The driver's shared half, while running.
    fn shared(&self) -> Option<(Arc<Shared>, u16)> {
        lock(&self.running)
            .as_ref()
            .map(|r| (r.driver.shared.clone(), r.frag))
    }

    /// Whether this sink drops frames over the rate (live) or waits: found once per caps.
    fn live(&self) -> bool {
        if let Some(live) = lock(&self.stream).live {
            return live;
        }
        let obj = self.obj();
        let upstream_live = obj.query_latency().is_ok_and(|(_, up, _, _)| up);
        let live = obj.is_sync() && upstream_live;
        gst::debug!(
            CAT,
            imp = self,
            "{} frames over the rate",
            if live { "dropping" } else { "waiting for" }
        );
        lock(&self.stream).live = Some(live);
        live
    }

    fn stats(&self) -> gst::Structure {
        let base = self.obj().upcast_ref::<gst_base::BaseSink>().stats();
        let shared = lock(&self.last_stats).clone();
        session_stats("videoipsink-stats", Some(&base), shared.as_deref())
    }
}

/// The `stats` structure `name`: the fields of `base` (BaseSink's), then the session's
/// counters and its receivers' reports.
pub(crate) fn session_stats(
    name: &str,
    base: Option<&gst::Structure>,
    shared: Option<&Shared>,
) -> gst::Structure {
    let mut s = gst::Structure::builder(name);
    for (name, value) in base.iter().flat_map(|b| b.iter()) {
        s = s.field(name.as_str(), value.clone());
    }
    let (p, queue_dropped) = shared.map_or((Published::default(), 0), |sh| {
        let p = lock(&sh.stats).clone();
        let dropped = lock(&sh.queue).dropped;
        (p, dropped)
    });
    let st = &p.session;
    let per_receiver: Vec<glib::SendValue> = st
        .receivers
        .iter()
        .map(|r| {
            let i = &r.info;
            gst::Structure::builder("videoipsink-receiver")
                .field("address", i.addr.to_string())
                .field("rtt", i.rtt.map_or(-1i64, |d| d.as_micros() as i64))
                .field("datagrams-received", i.datagrams_received)
                .field("datagrams-lost", i.datagrams_lost)
                .field("frames-complete", u64::from(i.frames_complete))
                .field("frames-dropped", u64::from(i.frames_dropped))
                .field("frames-not-sent", r.frames_not_sent)
                .field("allowed-bitrate", r.allowed_bitrate.unwrap_or(0))
                .build()
                .to_send_value()
        })
        .collect();
    s.field("datagrams-sent", st.datagrams_sent)
        .field("bytes-sent", st.bytes_sent)
        .field("frames-sent", st.frames_sent)
        .field("send-errors", p.send_errors)
        .field("nacks-received", st.nacks_received)
        .field("nacks-refused", st.nacks_refused)
        .field("datagrams-unverified", st.datagrams_unverified)
        .field("challenges-sent", st.challenges_sent)
        .field("datagrams-unauthenticated", st.datagrams_unauthenticated)
        .field("datagrams-replayed", st.datagrams_replayed)
        .field("datagrams-retransmitted", st.datagrams_retransmitted)
        .field("allowed-bitrate", st.allowed_bitrate.unwrap_or(0))
        .field("frames-dropped", st.frames_dropped + queue_dropped)
        .field("rate-decreases", st.rate_decreases)
        .field("fec-datagrams-sent", st.fec_datagrams_sent)
        .field("receivers", st.receivers.len() as u64)
        .field("subscribers", st.subscribers)
        .field("subscribers-refused", st.subscribers_refused)
        .field("receiver-stats", gst::Array::from_values(per_receiver))
        .build()
}

/// The pipeline's clock now, for sender reports: its running time, and the same instant
/// on a clock that all streams of this host share: the pipeline's own clock when it is
/// a network clock (PTP, NTP), else the system's real-time clock.
pub(crate) fn clock_sample(obj: &gst::Element) -> Option<ClockSample> {
    let (clock, base) = (obj.clock()?, obj.base_time()?);
    let clock_time = clock.time();
    let at = Instant::now();
    let running_time = clock_time.checked_sub(base)?;
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
    Some(ClockSample {
        at,
        running_time: running_time.nseconds(),
        reference_time,
        clock: kind,
    })
}

/// Maps a refused hand-over to the flow return: flushing, or the driver's error (posted
/// by the driver).
pub(crate) fn handover_failed(flushing: bool) -> gst::FlowError {
    if flushing {
        gst::FlowError::Flushing
    } else {
        gst::FlowError::Error
    }
}

/// The frame's flags, and its timestamps in running time: streams of one sender pipeline
/// then share one timeline, whatever their segments (buffers outside the segment, or of a
/// segment not in time, keep their own timestamps).
pub(crate) fn frame_meta(buffer: &gst::BufferRef, segment: &gst::Segment) -> FrameMeta {
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

/// The session-level properties (all but `stats`), `videoipsink`'s and
/// `videoipsinkbin`'s: one name, type, range, default and blurb for both.
pub(crate) fn session_properties() -> Vec<glib::ParamSpec> {
    let d = Settings::default();
    vec![
                glib::ParamSpecString::builder("host")
                    .nick("Host")
                    .blurb("The host name, IPv4/IPv6 address or multicast group to send to")
                    .default_value(Some(d.host.as_str()))
                    .mutable_ready()
                    .build(),
                props::port(
                    "The UDP port to send to; with source-name and no host, the port to listen on for subscribers (0: any free port, read back once started)",
                    d.port,
                ),
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
                props::multicast_iface("Network interface to send multicast from, by name (default: routing table)"),
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
                props::buffer_size(
                    "Send Buffer Size",
                    "Size of the kernel send buffer in bytes (0: system default)",
                    d.buffer_size,
                ),
                props::batch_size("Datagrams handed to the kernel per system call", d.batch_size),
                props::passphrase(
                    "Encrypt and authenticate every datagram with a key from this passphrase \
                     (10 to 79 characters; receivers need the same one; empty: off)",
                ),
                props::pbkeylen("AES key length in bytes with a passphrase: 16 or 32"),
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
                props::source_name("The name the stream is offered under, announced by DNS-SD (multicast DNS) so receivers and device monitors find it. Without host set, the sink sends to the receivers that subscribe to it (videoipsrc sender-address), each by unicast, and nothing when none does; it listens for them on port"),
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
    ]
}

impl Settings {
    /// Sets the property `name`; false when there is none of that name.
    pub(crate) fn set(&mut self, name: &str, value: &glib::Value) -> bool {
        let s = self;
        match name {
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
            "passphrase" => s.passphrase = props::passphrase_value(value),
            "pbkeylen" => s.pbkeylen = value.get().unwrap_or(16),
            "max-retransmission-percentage" => {
                s.max_retransmission_percentage =
                    value.get().unwrap_or(DEFAULT_MAX_RETRANSMISSION_PERCENTAGE)
            }
            "pacing" => s.pacing = value.get().unwrap_or_default(),
            "max-bitrate" => s.max_bitrate = value.get().unwrap_or(0),
            "fec-percentage" => s.fec_percentage = value.get().unwrap_or(0),
            _ => return false,
        }
        true
    }

    /// The value of the property `name`, None when there is none of that name.
    pub(crate) fn get(&self, name: &str) -> Option<glib::Value> {
        let s = self;
        Some(match name {
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
            // Written only; never read back.
            "passphrase" => None::<String>.to_value(),
            "pbkeylen" => s.pbkeylen.to_value(),
            "max-retransmission-percentage" => s.max_retransmission_percentage.to_value(),
            "pacing" => s.pacing.to_value(),
            "max-bitrate" => s.max_bitrate.to_value(),
            "fec-percentage" => s.fec_percentage.to_value(),
            _ => return None,
        })
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
            let mut v = session_properties();
            v.push(props::stats("BaseSink statistics plus datagrams-sent, bytes-sent, frames-sent, send-errors, allowed-bitrate, frames-dropped and the receivers' reports"));
            v
        });
        PROPERTIES.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        if !lock(&self.settings).set(pspec.name(), value) {
            gst::warning!(CAT, imp = self, "unknown property {}", pspec.name());
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        if pspec.name() == "stats" {
            return self.stats().to_value();
        }
        lock(&self.settings)
            .get(pspec.name())
            .unwrap_or_else(|| pspec.default_value().clone())
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
        let started = start_sender(&settings, self.obj().upcast_ref(), 0, &CAT)?;
        if settings.subscription() && settings.port != u32::from(started.own_port) {
            // Port 0 took any free port: it reads back the one subscribers must use.
            lock(&self.settings).port = u32::from(started.own_port);
            self.obj().notify("port");
        }
        let Started {
            driver,
            frag,
            session_id,
            own_port,
            dest,
        } = started;
        *lock(&self.last_stats) = Some(driver.shared.clone());
        *lock(&self.running) = Some(Running { driver, frag });
        *lock(&self.stream) = Stream::default();
        if let (Some(name), true) = (settings.source_name.as_deref(), settings.announce) {
            let auth = (!settings.passphrase.is_empty()).then_some(settings.pbkeylen);
            match self.announce.start(name, session_id, own_port, dest, auth) {
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
        // Dropping the driver stops and joins its thread (outside the lock).
        let running = lock(&self.running).take();
        drop(running);
        Ok(())
    }

    fn set_caps(&self, caps: &gst::Caps) -> Result<(), gst::LoggableError> {
        let caps_str = caps.to_string();
        // Caps longer than one datagram are sent in pieces; only the protocol's limit applies.
        if caps_str.len() > protocol::MAX_CAPS_LEN {
            gst::element_imp_error!(
                self,
                gst::StreamError::Format,
                [
                    "caps of {} bytes are longer than the protocol's {} bytes",
                    caps_str.len(),
                    protocol::MAX_CAPS_LEN
                ]
            );
            return Err(gst::loggable_error!(CAT, "caps too large"));
        }
        // Receivers refuse caps nested deeper than the protocol allows (PROTOCOL §8.5):
        // announcing them would only leave every receiver without a stream.
        if let Err(why) = protocol::check_caps_text(&caps_str) {
            gst::element_imp_error!(
                self,
                gst::StreamError::Format,
                ["caps receivers would refuse ({}): {}", why, caps_str]
            );
            return Err(gst::loggable_error!(CAT, "caps receivers would refuse"));
        }
        let Some((shared, _)) = self.shared() else {
            return Err(gst::loggable_error!(CAT, "caps set while stopped"));
        };
        gst::debug!(CAT, imp = self, "new caps: {caps_str}");
        lock(&self.stream).live = None;
        if shared
            .push(0, Item::Caps(caps_str), false, Duration::ZERO)
            .is_err()
        {
            return Err(gst::loggable_error!(CAT, "the sender has stopped"));
        }
        if let Err(e) = self.announce.caps(caps) {
            gst::warning!(CAT, imp = self, "could not announce the new caps: {e}");
        }
        Ok(())
    }

    fn render(&self, buffer: &gst::Buffer) -> Result<gst::FlowSuccess, gst::FlowError> {
        let Some((shared, frag)) = self.shared() else {
            return Err(gst::FlowError::Flushing);
        };
        let len = buffer.size();
        if let Err(e) = send::check_frame(len, frag) {
            gst::element_imp_error!(self, gst::StreamError::Format, ["{}", e]);
            return Err(gst::FlowError::Error);
        }
        let data = buffer.clone().into_mapped_buffer_readable().map_err(|_| {
            gst::element_imp_error!(self, gst::CoreError::Failed, ["could not map the buffer"]);
            gst::FlowError::Error
        })?;
        let live = self.live();
        let duration = buffer
            .duration()
            .map(|d| Duration::from_nanos(d.nseconds()));
        if let Some(c) = clock_sample(self.obj().upcast_ref()) {
            shared.push_clock(c).map_err(handover_failed)?;
        }
        let frame = Frame {
            data,
            meta: frame_meta(buffer, &self.obj().segment()),
            duration,
            key: !buffer.flags().contains(gst::BufferFlags::DELTA_UNIT),
            live,
            arrived: Instant::now(),
        };
        // A live frame never waits for room: it replaces the oldest frame waiting (which is
        // late already). A non-live one waits: the link slows its upstream.
        shared
            .push(0, Item::Frame(frame), live, Duration::ZERO)
            .map_err(handover_failed)?;
        Ok(gst::FlowSuccess::Ok)
    }

    fn event(&self, event: gst::Event) -> bool {
        match event.view() {
            gst::EventView::Eos(_) => {
                if let Some((shared, _)) = self.shared() {
                    // Everything before the end of stream goes out before it is done.
                    if shared.push(0, Item::Eos, false, Duration::ZERO).is_ok()
                        && !shared.wait_eos_sent(0, shared.eos_handed(0))
                    {
                        gst::debug!(CAT, imp = self, "end of stream not confirmed sent");
                    }
                    gst::debug!(CAT, imp = self, "sent end of stream");
                }
            }
            gst::EventView::FlushStop(_) => {
                if let Some((shared, _)) = self.shared() {
                    shared.flush(0, true);
                }
            }
            _ => {}
        }
        self.parent_event(event)
    }

    fn unlock(&self) -> Result<(), gst::ErrorMessage> {
        if let Some((shared, _)) = self.shared() {
            shared.set_flushing(0, true);
        }
        Ok(())
    }

    fn unlock_stop(&self) -> Result<(), gst::ErrorMessage> {
        if let Some((shared, _)) = self.shared() {
            shared.set_flushing(0, false);
        }
        Ok(())
    }
}
