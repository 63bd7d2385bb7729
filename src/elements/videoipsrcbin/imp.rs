// SPDX-License-Identifier: MPL-2.0
//! The `videoipsrcbin` element, GStreamer glue only: a bin that opens one socket (in
//! NULL→READY, so that the bound port can be read back), runs one receive thread and
//! session for every track of a source (READY→PAUSED), and gives each track it receives a
//! sometimes src pad: the ghost of a [`super::TrackSrc`] fed from that track's queue
//! ([`super::router`]).
//!
//! Pads are made on a thread of GStreamer's pool (`call_async`), never on the receive
//! thread: the router only says that something changed, and [`VideoIpSrcBin::reconcile`]
//! compares what the router saw with the pads the bin has. A track gets its pad once the
//! sender's table is known (its pad is named after the sender's), or [`TABLE_WAIT`] after
//! its first frame without one (named by its caps). `no-more-pads` follows once every track
//! of the table wanted has one.
//!
//! Locks: `settings`, `io`, `running`, `pads`, each taken briefly and never two at once;
//! nothing is posted, added or emitted while one is held.

use super::router::{self, Router, TABLE_WAIT};
use super::tracksrc::{Announce, Binding};
use crate::elements::videoipsrc::byname::{self, Change};
use crate::elements::videoipsrc::receiver::{self, Shared};
use crate::elements::videoipsrc::{describe, open_error};
use crate::elements::{lock, opt_string, props};
use crate::net::{self, ReceiverConfig, UdpSocket, Waker};
use crate::protocol::tracks::TrackKind;
use crate::receive::clock::{self, ClockTable};
use crate::receive::{self, Warning};
use crate::send::schedule;
use crate::TimestampMode;
use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "videoipsrcbin",
        gst::DebugColorFlags::empty(),
        Some("videoip receiver of every track"),
    )
});

#[derive(Debug, Clone)]
struct Settings {
    address: String,
    port: u32,
    port_set: bool,
    multicast_iface: Option<String>,
    buffer_size: u32,
    batch_size: u32,
    latency_ms: u32,
    max_frame_size: u32,
    timestamp_mode: TimestampMode,
    sender_address: Option<String>,
    sender_port: u32,
    source_name: Option<String>,
    passphrase: String,
    pbkeylen: u32,
    /// The tracks wanted (None: every track).
    tracks: Option<Vec<u16>>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            address: "0.0.0.0".into(),
            port: 5004,
            port_set: false,
            multicast_iface: None,
            buffer_size: 32 << 20,
            batch_size: 64,
            latency_ms: 50,
            max_frame_size: 128 << 20,
            timestamp_mode: TimestampMode::SenderClock,
            sender_address: None,
            sender_port: 5004,
            source_name: None,
            passphrase: String::new(),
            pbkeylen: 16,
            tracks: None,
        }
    }
}

impl Settings {
    fn window(&self) -> Duration {
        Duration::from_millis(u64::from(self.latency_ms))
    }
    /// As videoipsrc: the window plus the most a sender spreads a frame.
    fn min_latency(&self) -> Duration {
        self.window() + schedule::MAX_SPREAD
    }
    fn max_latency(&self) -> Duration {
        self.min_latency() + self.window()
    }
    fn tracks_text(&self) -> String {
        match &self.tracks {
            None => String::new(),
            Some(t) => t
                .iter()
                .map(|i| i.to_string())
                .collect::<Vec<_>>()
                .join(","),
        }
    }
}

/// A `tracks` value: empty or `all` for every track, else track ids separated by commas.
fn parse_tracks(text: &str) -> Result<Option<Vec<u16>>, String> {
    let t = text.trim();
    if t.is_empty() || t.eq_ignore_ascii_case("all") {
        return Ok(None);
    }
    let mut ids = Vec::new();
    for part in t.split(',') {
        let id: u16 = part
            .trim()
            .parse()
            .ok()
            .filter(|&i| i != crate::protocol::tracks::CONTROL_TRACK)
            .ok_or_else(|| format!("'{part}' is no track id (0 to 65534)"))?;
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    Ok(Some(ids))
}

struct Io {
    receiver: Arc<UdpSocket>,
    waker: Arc<Waker>,
    cfg: ReceiverConfig,
}

/// What runs between READY→PAUSED and PAUSED→READY.
struct Running {
    thread: receiver::Thread,
    router: Arc<Router>,
    clocks: Arc<ClockTable>,
    mode: clock::Mode,
    min_latency: Duration,
    max_latency: Duration,
    group_id: gst::GroupId,
    wanted: Option<Vec<u16>>,
}

struct PadEntry {
    child: super::TrackSrc,
    ghost: gst::GhostPad,
    announce: Arc<Mutex<Option<Announce>>>,
}

/// The pads made, and the streams announced.
#[derive(Default)]
struct Pads {
    /// +1 at every start and stop: a reconcile of an older run keeps nothing.
    epoch: u64,
    tracks: BTreeMap<u16, PadEntry>,
    streams: BTreeMap<u16, gst::Stream>,
    /// The collection announced, and the (track, stream-id) list it was made of.
    collection: Option<(Vec<(u16, String)>, gst::StreamCollection)>,
    no_more_pads: bool,
}

#[derive(Default)]
pub struct VideoIpSrcBin {
    settings: Mutex<Settings>,
    io: Mutex<Option<Io>>,
    shared: Arc<Shared>,
    running: Mutex<Option<Running>>,
    pads: Mutex<Pads>,
    target: Arc<Mutex<Vec<SocketAddr>>>,
    finder: Mutex<Option<byname::Finder>>,
}

impl VideoIpSrcBin {
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

    /// The socket configuration the properties ask for (as videoipsrc's).
    fn receiver_config(&self) -> Result<ReceiverConfig, gst::ErrorMessage> {
        let s = lock(&self.settings).clone();
        let address = match IpAddr::from_str(s.address.trim()) {
            Ok(ip) => ip,
            Err(_) => net::resolve(&s.address, 0)
                .map_err(|e| gst::error_msg!(gst::ResourceError::Settings, ["{}", e]))?
                .ip(),
        };
        let iface = net::interface_index(s.multicast_iface.as_deref().unwrap_or(""))
            .map_err(|e| gst::error_msg!(gst::ResourceError::Settings, ["{}", e]))?;
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
            reuse: false,
        })
    }

    fn open_socket(&self) -> Result<(), gst::ErrorMessage> {
        let mut cfg = self.receiver_config()?;
        *lock(&self.io) = None;
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
        receiver.enable_gro();
        gst::info!(CAT, imp = self, "listening on {local}");
        cfg.port = local.port();
        *lock(&self.io) = Some(Io {
            receiver: Arc::new(receiver),
            waker: Arc::new(waker),
            cfg,
        });
        let changed = {
            let mut st = lock(&self.settings);
            let changed = st.port != u32::from(local.port());
            st.port = u32::from(local.port());
            changed
        };
        if changed {
            self.obj().notify("port");
        }
        Ok(())
    }

    fn warner(&self, latency_ms: u32, max_frame: u32) -> Box<dyn Fn(Warning) + Send> {
        let weak = self.obj().downgrade();
        Box::new(move |w| {
            let Some(obj) = weak.upgrade() else {
                return;
            };
            let text = describe(&w, latency_ms, max_frame);
            if matches!(w, Warning::Loss { .. }) {
                gst::element_warning!(obj, gst::ResourceError::Read, ["{}", text]);
            } else {
                gst::element_warning!(obj, gst::ResourceError::Settings, ["{}", text]);
            }
        })
    }

    fn failer(&self) -> Box<dyn Fn(String) + Send> {
        let weak = self.obj().downgrade();
        Box::new(move |msg| {
            if let Some(obj) = weak.upgrade() {
                gst::element_error!(obj, gst::ResourceError::Read, ["{}", msg]);
            }
        })
    }

    /// Starts the receive thread (READY→PAUSED).
    fn start(&self) -> Result<(), gst::ErrorMessage> {
        let wanted = self.receiver_config()?;
        let stale = lock(&self.io).as_ref().is_none_or(|io| io.cfg != wanted);
        if stale {
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
        let weak = self.obj().downgrade();
        let router = Arc::new(Router::new(
            s.max_latency(),
            Box::new(move || {
                if let Some(obj) = weak.upgrade() {
                    obj.call_async(|obj| obj.imp().reconcile());
                }
            }),
        ));
        *lock(&self.shared.stats) = Default::default();
        let defaults = receive::Config::default();
        let cfg = receiver::Config {
            session: receive::Config {
                max_frame_size: s.max_frame_size as usize,
                window: s.window(),
                max_in_flight: (s.latency_ms as usize / 8).clamp(defaults.max_in_flight, 1024),
                max_bytes_in_flight: defaults
                    .max_bytes_in_flight
                    .max((s.max_frame_size as usize).saturating_mul(2)),
                tracks: match &s.tracks {
                    None => receive::TrackSelection::All,
                    Some(ids) => receive::TrackSelection::Only(ids.clone()),
                },
                ..defaults
            },
            batch_size: s.batch_size as usize,
            max_age: s.max_latency(),
            master: props::master_key(&s.passphrase, s.pbkeylen)?,
            warn: self.warner(s.latency_ms, s.max_frame_size),
            fail: self.failer(),
            subscribe_to: {
                *lock(&self.target) = self.subscribe_target(&s)?.into_iter().collect();
                self.target.clone()
            },
            route: Some(router.clone()),
        };
        {
            let mut p = lock(&self.pads);
            p.epoch += 1;
            p.no_more_pads = false;
            p.collection = None;
            p.streams.clear();
        }
        let thread =
            receiver::Thread::spawn(receiver, waker, self.shared.clone(), cfg).map_err(|e| {
                gst::error_msg!(
                    gst::ResourceError::OpenRead,
                    ["could not start the receive thread: {}", e]
                )
            })?;
        *lock(&self.running) = Some(Running {
            thread,
            router,
            clocks: Arc::new(ClockTable::default()),
            mode: match s.timestamp_mode {
                TimestampMode::SenderClock => clock::Mode::SenderClock,
                TimestampMode::Arrival => clock::Mode::Arrival,
            },
            min_latency: s.min_latency(),
            max_latency: s.max_latency(),
            group_id: gst::GroupId::next(),
            wanted: s.tracks.clone(),
        });
        if let (Some(name), None) = (s.source_name.clone(), s.sender_address.as_ref()) {
            self.find(name)?;
        }
        Ok(())
    }

    /// Stops the receive thread and removes the track pads (PAUSED→READY).
    fn stop(&self) {
        *lock(&self.finder) = None;
        let running = lock(&self.running).take();
        if let Some(r) = &running {
            for p in r.router.ports() {
                lock(&p.queue).flushing = true;
                p.ready.notify_all();
            }
        }
        drop(running);
        let entries = {
            let mut p = lock(&self.pads);
            p.epoch += 1;
            p.collection = None;
            p.streams.clear();
            std::mem::take(&mut p.tracks)
        };
        let obj = self.obj();
        for (_, e) in entries {
            let _ = e.child.set_state(gst::State::Null);
            let _ = obj.remove(&e.child);
            let _ = e.ghost.set_active(false);
            let _ = obj.remove_pad(&e.ghost);
        }
    }

    /// Makes the pads of the tracks that have none and are ready for one, and announces
    /// the session's streams (see the module's text).
    fn reconcile(&self) {
        let (router, binding, wanted, epoch) = {
            let Some(r) = lock(&self.running).as_ref().map(|r| {
                (
                    r.router.clone(),
                    (
                        r.clocks.clone(),
                        r.mode,
                        r.min_latency,
                        r.max_latency,
                        r.group_id,
                    ),
                    r.wanted.clone(),
                )
            }) else {
                return;
            };
            (r.0, r.1, r.2, lock(&self.pads).epoch)
        };
        let (ports, table, session, ended) = {
            let st = lock(&router.state);
            (
                st.ports.values().cloned().collect::<Vec<_>>(),
                st.table.clone(),
                st.session,
                st.ended,
            )
        };
        // Until the table comes (or is waited for long enough), names and stream-ids are
        // not known: nothing is announced that the table would change.
        let ready =
            |p: &router::Port| table.is_some() || ended || p.first_seen.elapsed() >= TABLE_WAIT;
        if !ports.iter().any(|p| ready(p)) {
            return;
        }
        let table_entries = table.as_ref().map(|(_, t)| t.clone());
        let is_wanted = |id: u16| wanted.as_ref().is_none_or(|w| w.contains(&id));
        let caps_of = |id: u16| -> Option<Arc<str>> {
            ports
                .iter()
                .find(|p| p.id == id)
                .and_then(|p| lock(&p.caps).clone())
        };
        // The streams of the session: the table's wanted tracks, and any track seen that it
        // does not list.
        let mut listed: Vec<(u16, String, Option<TrackKind>)> = Vec::new();
        if let Some(t) = &table_entries {
            for e in t.iter().filter(|e| is_wanted(e.id)) {
                listed.push((e.id, e.name.clone(), Some(e.kind)));
            }
        }
        for p in &ports {
            if !listed.iter().any(|(id, ..)| *id == p.id) {
                let caps = caps_of(p.id);
                let name = router::pad_name(p.id, table_entries.as_deref(), caps.as_deref());
                listed.push((p.id, name, None));
            }
        }
        let session_hex = format!("{:016x}", session.unwrap_or(0));
        let ids: Vec<(u16, String)> = listed
            .iter()
            .map(|(id, name, _)| (*id, format!("videoip/{session_hex}/{name}")))
            .collect();
        let new_collection = {
            let mut pads = lock(&self.pads);
            if pads.epoch != epoch {
                return;
            }
            for ((id, _, kind), (_, sid)) in listed.iter().zip(&ids) {
                let caps = caps_of(*id).and_then(|c| gst::Caps::from_str(&c).ok());
                let stream = pads.streams.entry(*id).or_insert_with(|| {
                    gst::Stream::new(
                        Some(sid),
                        caps.as_ref(),
                        router::stream_type(*kind, caps_of(*id).as_deref()),
                        gst::StreamFlags::empty(),
                    )
                });
                if stream.caps().is_none() && caps.is_some() {
                    stream.set_caps(caps.as_ref());
                }
            }
            let changed = pads.collection.as_ref().is_none_or(|(k, _)| *k != ids);
            if changed && !ids.is_empty() {
                let streams: Vec<gst::Stream> = ids
                    .iter()
                    .filter_map(|(id, _)| pads.streams.get(id).cloned())
                    .collect();
                let c = gst::StreamCollection::builder(Some(&format!("videoip/{session_hex}")))
                    .streams(streams)
                    .build();
                pads.collection = Some((ids.clone(), c.clone()));
                for (id, e) in &pads.tracks {
                    if let Some(s) = pads.streams.get(id) {
                        *lock(&e.announce) = Some(Announce {
                            stream: s.clone(),
                            collection: c.clone(),
                        });
                    }
                }
                Some(c)
            } else {
                None
            }
        };
        let obj = self.obj();
        if let Some(c) = &new_collection {
            gst::info!(CAT, imp = self, "streams: {ids:?}");
            let _ = obj.post_message(
                gst::message::StreamCollection::builder(c)
                    .src(&*obj)
                    .build(),
            );
        }
        let mut added = false;
        for p in &ports {
            if !ready(p) || p.padded.swap(true, Ordering::SeqCst) {
                continue;
            }
            let Some((_, name, kind)) = listed.iter().find(|(id, ..)| *id == p.id).cloned() else {
                continue;
            };
            let announce = {
                let pads = lock(&self.pads);
                let a = match (&pads.collection, pads.streams.get(&p.id)) {
                    (Some((_, c)), Some(s)) => Some(Announce {
                        stream: s.clone(),
                        collection: c.clone(),
                    }),
                    _ => None,
                };
                Arc::new(Mutex::new(a))
            };
            let child: super::TrackSrc = glib::Object::new();
            child.imp().bind(Binding {
                port: p.clone(),
                clocks: binding.0.clone(),
                mode: binding.1,
                min_latency: binding.2,
                max_latency: binding.3,
                group_id: binding.4,
                announce: announce.clone(),
            });
            if obj.add(&child).is_err() {
                continue;
            }
            let ty = router::stream_type(kind, caps_of(p.id).as_deref());
            let templ_name = match ty {
                t if t == gst::StreamType::VIDEO => "video_%u",
                t if t == gst::StreamType::AUDIO => "audio_%u",
                _ => "meta_%u",
            };
            let Some(templ) = obj.pad_template(templ_name) else {
                continue;
            };
            let pad_name = if obj.static_pad(&name).is_some() {
                format!("{name}_{}", p.id)
            } else {
                name
            };
            let target = child.static_pad("src");
            let Some(target) = target else {
                continue;
            };
            let ghost = match gst::GhostPad::builder_from_template_with_target(&templ, &target) {
                Ok(b) => b.name(pad_name.as_str()).build(),
                Err(_) => continue,
            };
            // An unlinked pad's frames are dropped, never an error that stops every track.
            let weak = ghost.downgrade();
            target.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
                match weak.upgrade() {
                    Some(g) if !g.is_linked() => gst::PadProbeReturn::Drop,
                    _ => gst::PadProbeReturn::Ok,
                }
            });
            let _ = ghost.set_active(true);
            {
                let mut pads = lock(&self.pads);
                if pads.epoch != epoch {
                    drop(pads);
                    let _ = obj.remove(&child);
                    return;
                }
                pads.tracks.insert(
                    p.id,
                    PadEntry {
                        child: child.clone(),
                        ghost: ghost.clone(),
                        announce,
                    },
                );
            }
            gst::info!(CAT, imp = self, "track {} on pad {pad_name}", p.id);
            if obj.add_pad(&ghost).is_err() {
                continue;
            }
            let _ = child.sync_state_with_parent();
            added = true;
        }
        if added {
            let _ = obj.post_message(gst::message::Latency::builder().src(&*obj).build());
        }
        // Every wanted track of the table has its pad: no more to come. Without a table
        // (a sender of track 0 alone may send none), the session is the tracks seen.
        let padded = |id: u16| {
            ports
                .iter()
                .any(|p| p.id == id && p.padded.load(Ordering::SeqCst))
        };
        let complete = match &table_entries {
            Some(t) => t.iter().filter(|e| is_wanted(e.id)).all(|e| padded(e.id)),
            None => ports.iter().all(|p| padded(p.id)),
        };
        if complete {
            let first = {
                let mut pads = lock(&self.pads);
                let first = pads.epoch == epoch && !pads.no_more_pads;
                pads.no_more_pads |= first;
                first
            };
            if first {
                gst::info!(CAT, imp = self, "every track has its pad");
                obj.no_more_pads();
            }
        }
    }

    fn find(&self, name: String) -> Result<(), gst::ErrorMessage> {
        let weak = self.obj().downgrade();
        let finder = byname::Finder::start(name.clone(), self.target.clone(), move |change| {
            let Some(obj) = weak.upgrade() else {
                return;
            };
            if let Some(r) = lock(&obj.imp().running).as_ref() {
                r.thread.retarget();
            }
            let (kind, source) = match &change {
                Change::Found(s) => ("videoip-source-found", s),
                Change::Lost(s) => ("videoip-source-lost", s),
            };
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
        *lock(&self.finder) = Some(finder);
        Ok(())
    }

    fn stats_structure(&self) -> gst::Structure {
        let rx = *lock(&self.shared.stats);
        let s = rx.session;
        let ports = lock(&self.running)
            .as_ref()
            .map(|r| r.router.ports())
            .unwrap_or_default();
        let names: BTreeMap<u16, String> = lock(&self.pads)
            .tracks
            .iter()
            .map(|(id, e)| (*id, e.ghost.name().to_string()))
            .collect();
        let tracks: Vec<glib::SendValue> = ports
            .iter()
            .map(|p| {
                let q = lock(&p.queue);
                gst::Structure::builder("videoipsrcbin-track")
                    .field("track", u32::from(p.id))
                    .field("pad", names.get(&p.id).cloned().unwrap_or_default())
                    .field("frames-pushed", q.taken)
                    .field("frames-dropped-late", q.dropped_late)
                    .field("frames-queued", q.items.len() as u64)
                    .field("bytes-queued", q.bytes as u64)
                    .field("bytes-queued-peak", q.peak_bytes as u64)
                    .build()
                    .to_send_value()
            })
            .collect();
        gst::Structure::builder("videoipsrcbin-stats")
            .field("datagrams-received", s.datagrams_received)
            .field("bytes-received", s.bytes_received)
            .field("frames-complete", s.frames_complete)
            .field("frames-recovered", s.frames_recovered)
            .field("frames-dropped", s.frames_dropped)
            .field("frames-without-caps", s.frames_without_info)
            .field("datagrams-lost", s.datagrams_lost)
            .field("datagrams-duplicate", s.datagrams_duplicate)
            .field("datagrams-reordered", s.datagrams_reordered)
            .field("datagrams-late", s.datagrams_late)
            .field("datagrams-invalid", s.datagrams_invalid)
            .field("datagrams-foreign", s.datagrams_foreign)
            .field("datagrams-other-track", s.datagrams_other_track)
            .field("datagrams-unauthenticated", s.datagrams_unauthenticated)
            .field("datagrams-retransmitted", s.datagrams_retransmitted)
            .field("nacks-sent", s.nacks_sent)
            .field("rtt", rx.rtt.map_or(-1i64, |d| d.as_micros() as i64))
            .field("tracks", gst::Array::from_values(tracks))
            .build()
    }
}

#[glib::object_subclass]
impl ObjectSubclass for VideoIpSrcBin {
    const NAME: &'static str = "GstVideoIpSrcBin";
    type Type = super::VideoIpSrcBin;
    type ParentType = gst::Bin;
}

impl ObjectImpl for VideoIpSrcBin {
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
                    .blurb("Address or host name of a sender to subscribe to: it then sends this receiver the tracks wanted by unicast while it stays subscribed. With it set and port not, this receiver takes any free port")
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
                glib::ParamSpecString::builder("tracks")
                    .nick("Tracks")
                    .blurb("Which tracks of the sender's session to receive, by id, separated by commas (\"1\", \"0,2\"); empty or \"all\": every track of its table. Each gets a pad named after the sender's")
                    .default_value(Some(""))
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("latency")
                    .nick("Latency")
                    .blurb("Reassembly window in milliseconds: how long an incomplete frame waits for a missing datagram after its latest one; each track reports this plus 20 ms (the most a sender spreads a frame) as its latency")
                    .minimum(1)
                    .maximum(60_000)
                    .default_value(d.latency_ms)
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
                glib::ParamSpecEnum::builder_with_default("timestamp-mode", d.timestamp_mode)
                    .nick("Timestamp Mode")
                    .blurb("How buffers are timestamped: the sender's timestamps offset onto local running time, one offset for every track (sender-clock), or each frame's arrival time (arrival)")
                    .mutable_ready()
                    .build(),
                props::stats("Datagrams and bytes received, frames complete and dropped, datagrams lost, duplicate, reordered, late, invalid and foreign; per track (tracks): its pad, frames pushed, frames dropped late (nobody took them in time), frames and bytes queued"),
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
            "passphrase" => s.passphrase = props::passphrase_value(value),
            "pbkeylen" => s.pbkeylen = value.get().unwrap_or(16),
            "tracks" => {
                let text = opt_string(value).unwrap_or_default();
                match parse_tracks(&text) {
                    Ok(t) => s.tracks = t,
                    Err(e) => {
                        drop(s);
                        gst::element_imp_warning!(
                            self,
                            gst::ResourceError::Settings,
                            ["tracks=\"{}\" ignored: {}", text, e]
                        );
                    }
                }
            }
            "latency" => s.latency_ms = value.get().unwrap_or(50),
            "max-frame-size" => s.max_frame_size = value.get().unwrap_or(128 << 20),
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
            "passphrase" => None::<String>.to_value(),
            "pbkeylen" => s.pbkeylen.to_value(),
            "tracks" => s.tracks_text().to_value(),
            "latency" => s.latency_ms.to_value(),
            "max-frame-size" => s.max_frame_size.to_value(),
            "timestamp-mode" => s.timestamp_mode.to_value(),
            _ => pspec.default_value().clone(),
        }
    }
}

impl GstObjectImpl for VideoIpSrcBin {}

impl ElementImpl for VideoIpSrcBin {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static METADATA: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "videoip Source Bin",
                "Source/Network",
                "Receives every track of a videoip session (video, audio, metadata) over UDP/IP, one sometimes pad per track, named after the sender's pads",
                "The videoip developers",
            )
        });
        Some(&*METADATA)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
            ["video_%u", "audio_%u", "meta_%u"]
                .iter()
                .filter_map(|n| {
                    gst::PadTemplate::new(
                        n,
                        gst::PadDirection::Src,
                        gst::PadPresence::Sometimes,
                        &gst::Caps::new_any(),
                    )
                    .ok()
                })
                .collect()
        });
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
            gst::StateChange::ReadyToPaused => {
                if let Err(msg) = self.start() {
                    self.post_error_message(msg);
                    return Err(gst::StateChangeError);
                }
            }
            _ => {}
        }
        let ret = self.parent_change_state(transition);
        match transition {
            gst::StateChange::PausedToReady => self.stop(),
            gst::StateChange::ReadyToNull => *lock(&self.io) = None,
            gst::StateChange::ReadyToPaused if ret.is_err() => self.stop(),
            _ => {}
        }
        let ret = ret?;
        // A live source: nothing to preroll.
        Ok(match transition {
            gst::StateChange::ReadyToPaused | gst::StateChange::PlayingToPaused => {
                gst::StateChangeSuccess::NoPreroll
            }
            _ => ret,
        })
    }
}

impl BinImpl for VideoIpSrcBin {}

#[cfg(test)]
mod tests {
    use super::parse_tracks;

    #[test]
    fn tracks_values_parse_or_name_what_is_wrong() {
        assert_eq!(parse_tracks(""), Ok(None));
        assert_eq!(parse_tracks("all"), Ok(None));
        assert_eq!(parse_tracks("1"), Ok(Some(vec![1])));
        assert_eq!(parse_tracks(" 0, 2,2"), Ok(Some(vec![0, 2])));
        assert!(parse_tracks("audio").is_err());
        assert!(parse_tracks("65535").is_err());
    }
}
