// SPDX-License-Identifier: MPL-2.0
//! The `videoipsinkbin` element: request pads, track ids, the shared driver, the
//! announcement. What goes out and when is the session's (run by `videoipsink`'s driver);
//! what each buffer becomes is the child sink's ([`super::tracksink`]).
//!
//! Locks: `settings`, `state` (the pads and their tracks), the hub's `running` and
//! `last_stats`, the driver's, the announcement's. Never two at a time, except `state` then
//! the hub's `running` (taken briefly inside it); never across a system call or a state
//! change of a child, and no message is posted while one is held.

use super::tracksink::TrackSink;
use crate::elements::lock;
use crate::elements::props;
use crate::elements::videoipsink::announce::Announce;
use crate::elements::videoipsink::driver::{Driver, Item, Shared};
use crate::elements::videoipsink::imp::{
    session_properties, session_stats, start_sender, Settings, Started,
};
use crate::protocol::tracks::{TrackEntry, TrackKind, MAX_TRACKS};
use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "videoipsinkbin",
        gst::DebugColorFlags::empty(),
        Some("videoip sender of several tracks"),
    )
});

/// What the bin's children share: the running driver's half and the announcement.
#[derive(Default)]
pub(crate) struct Hub {
    /// The driver's shared half and the payload bytes per datagram, while the bin runs.
    running: Mutex<Option<(Arc<Shared>, u16)>>,
    /// The driver's counters, kept after it stops (for the `stats` property).
    last_stats: Mutex<Option<Arc<Shared>>>,
    /// The DNS-SD announcement (`source-name`); its lock is taken alone.
    pub(super) announce: Announce,
}

impl Hub {
    /// The driver's shared half and the payload size, while running.
    pub(super) fn running(&self) -> Option<(Arc<Shared>, u16)> {
        lock(&self.running).clone()
    }
}

/// One request pad and its track.
struct PadEntry {
    pad: gst::GhostPad,
    sink: TrackSink,
    kind: TrackKind,
    track: u16,
}

impl PadEntry {
    fn entry(&self) -> TrackEntry {
        TrackEntry {
            id: self.track,
            kind: self.kind,
            variant_of: None,
            name: self.pad.name().to_string(),
        }
    }
}

#[derive(Default)]
struct State {
    /// In the order requested.
    pads: Vec<PadEntry>,
    /// The tracks were declared to the session (the bin went to PAUSED since it started).
    running: bool,
    /// The bin started with no pad: the session's track 0 waits for the first one.
    zero_waiting: bool,
}

impl State {
    fn used(&self, track: u16) -> bool {
        self.pads.iter().any(|p| p.track == track)
    }

    /// The lowest id from 1 no pad has.
    fn lowest_free(&self) -> u16 {
        (1..u16::MAX).find(|&t| !self.used(t)).unwrap_or(1)
    }

    /// The track of a pad of `kind` requested now (see the module's rule).
    fn track_for(&mut self, kind: TrackKind) -> u16 {
        if self.running && self.zero_waiting {
            self.zero_waiting = false;
            return 0;
        }
        if kind == TrackKind::Video && !self.used(0) {
            return 0;
        }
        self.lowest_free()
    }

    /// The ids as the bin starts: track 0 to the first video pad (or, with none, the first
    /// pad), the others from 1 in the order requested.
    fn assign(&mut self) {
        let zero = self
            .pads
            .iter()
            .position(|p| p.kind == TrackKind::Video)
            .or((!self.pads.is_empty()).then_some(0));
        let mut next = 1;
        for (i, p) in self.pads.iter_mut().enumerate() {
            if Some(i) == zero {
                p.track = 0;
            } else {
                p.track = next;
                next += 1;
            }
            p.sink.set_track(p.track);
        }
    }
}

#[derive(Default)]
pub struct VideoIpSinkBin {
    settings: Mutex<Settings>,
    state: Mutex<State>,
    hub: Arc<Hub>,
    /// The driver thread while running (dropping it stops it).
    driver: Mutex<Option<Driver>>,
}

/// The kind of the pads of template `name`.
fn kind_of(template: &str) -> Option<TrackKind> {
    match template {
        "video_%u" => Some(TrackKind::Video),
        "audio_%u" => Some(TrackKind::Audio),
        "meta_%u" => Some(TrackKind::Metadata),
        _ => None,
    }
}

fn caps_of(names: &[&str]) -> gst::Caps {
    let mut caps = gst::Caps::new_empty();
    if let Some(c) = caps.get_mut() {
        for n in names {
            c.append_structure(gst::Structure::new_empty(*n));
        }
    }
    caps
}

impl VideoIpSinkBin {
    fn start(&self) -> Result<(), gst::ErrorMessage> {
        let settings = lock(&self.settings).clone();
        let obj = self.obj();
        let started = start_sender(&settings, obj.upcast_ref(), 0, &CAT)?;
        if settings.subscription() && settings.port != u32::from(started.own_port) {
            lock(&self.settings).port = u32::from(started.own_port);
            obj.notify("port");
        }
        let Started {
            driver,
            frag,
            session_id,
            own_port,
            dest,
        } = started;
        let shared = driver.shared.clone();
        *lock(&self.hub.last_stats) = Some(shared.clone());
        *lock(&self.hub.running) = Some((shared.clone(), frag));
        *lock(&self.driver) = Some(driver);
        if let (Some(name), true) = (settings.source_name.as_deref(), settings.announce) {
            let auth = (!settings.passphrase.is_empty()).then_some(settings.pbkeylen);
            match self
                .hub
                .announce
                .start(name, session_id, own_port, dest, auth)
            {
                Ok(()) => gst::info!(
                    CAT,
                    imp = self,
                    "announced as {:?}",
                    self.hub.announce.instance()
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

    /// Numbers the pads' tracks and declares them to the session, once per start (when the
    /// bin first goes to PAUSED: the pads requested by then are the ones it starts with).
    fn declare(&self) {
        let Some((shared, _)) = self.hub.running() else {
            return;
        };
        let entries: Vec<TrackEntry> = {
            let mut st = lock(&self.state);
            if st.running {
                return;
            }
            st.assign();
            st.running = true;
            st.zero_waiting = st.pads.is_empty();
            let mut e: Vec<TrackEntry> = st.pads.iter().map(PadEntry::entry).collect();
            // Track 0 first: it takes over the session's first track (and its name) before
            // any other track is named.
            e.sort_by_key(|e| e.id != 0);
            e
        };
        for e in entries {
            gst::info!(CAT, imp = self, "track {} is {}", e.id, e.name);
            let _ = shared.push(e.id, Item::Add(e), false, Duration::ZERO);
        }
    }

    fn stop(&self) {
        self.hub.announce.stop();
        lock(&self.state).running = false;
        *lock(&self.hub.running) = None;
        // Dropping the driver stops and joins its thread (outside the lock).
        let driver = lock(&self.driver).take();
        drop(driver);
    }

    fn stats(&self) -> gst::Structure {
        let shared = lock(&self.hub.last_stats).clone();
        let mut s = session_stats("videoipsinkbin-stats", None, shared.as_deref());
        let (tracks, lanes) = shared.map_or((Vec::new(), Vec::new()), |sh| {
            let tracks = lock(&sh.stats).session.tracks.clone();
            let q = lock(&sh.queue);
            let lanes = tracks
                .iter()
                .map(|t| q.lane_of(t.entry.id).map_or(0, |l| l.dropped))
                .collect();
            (tracks, lanes)
        });
        let per_track: Vec<glib::SendValue> = tracks
            .iter()
            .zip(lanes)
            .map(|(t, dropped)| {
                gst::Structure::builder("videoipsinkbin-track")
                    .field("track", u32::from(t.entry.id))
                    .field("name", t.entry.name.as_str())
                    .field(
                        "kind",
                        match t.entry.kind {
                            TrackKind::Video => "video",
                            TrackKind::Audio => "audio",
                            TrackKind::Metadata => "meta",
                            _ => "data",
                        },
                    )
                    .field("datagrams-sent", t.datagrams_sent)
                    .field("frames-sent", t.frames_sent)
                    .field("frames-dropped", dropped)
                    .field("ended", t.ended)
                    .build()
                    .to_send_value()
            })
            .collect();
        s.set("track-stats", gst::Array::from_values(per_track));
        s
    }
}

#[glib::object_subclass]
impl ObjectSubclass for VideoIpSinkBin {
    const NAME: &'static str = "GstVideoIpSinkBin";
    type Type = super::VideoIpSinkBin;
    type ParentType = gst::Bin;
    type Interfaces = (gst::ChildProxy,);
}

impl ObjectImpl for VideoIpSinkBin {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPERTIES: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            let mut v = session_properties();
            v.push(props::stats("The session's counters (datagrams-sent, bytes-sent, frames-sent, send-errors, allowed-bitrate, frames-dropped, the receivers' reports) and track-stats: each track's id, name, kind, datagrams-sent, frames-sent, frames-dropped and whether it ended"));
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

impl GstObjectImpl for VideoIpSinkBin {}

impl ChildProxyImpl for VideoIpSinkBin {
    fn child_by_index(&self, index: u32) -> Option<glib::Object> {
        self.parent_child_by_index(index)
    }

    fn children_count(&self) -> u32 {
        self.parent_children_count()
    }

    fn child_by_name(&self, name: &str) -> Option<glib::Object> {
        self.parent_child_by_name(name)
    }
}

impl ElementImpl for VideoIpSinkBin {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static METADATA: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "videoip Sink Bin",
                "Sink/Network",
                "Sends video, audio and metadata as tracks of one videoip session over UDP/IP",
                "The videoip developers",
            )
        });
        Some(&*METADATA)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
            let video = caps_of(&[
                "video/x-raw",
                "video/x-h264",
                "video/x-h265",
                "video/x-vp8",
                "video/x-vp9",
                "video/x-av1",
                "image/jpeg",
                "video/mpeg",
            ]);
            let audio = caps_of(&[
                "audio/x-raw",
                "audio/x-opus",
                "audio/mpeg",
                "audio/x-ac3",
                "audio/x-eac3",
                "audio/x-flac",
                "audio/x-alaw",
                "audio/x-mulaw",
            ]);
            [
                ("video_%u", video),
                ("audio_%u", audio),
                ("meta_%u", gst::Caps::new_any()),
            ]
            .into_iter()
            .filter_map(|(name, caps)| {
                gst::PadTemplate::new(
                    name,
                    gst::PadDirection::Sink,
                    gst::PadPresence::Request,
                    &caps,
                )
                .ok()
            })
            .collect()
        });
        TEMPLATES.as_ref()
    }

    fn request_new_pad(
        &self,
        templ: &gst::PadTemplate,
        name: Option<&str>,
        _caps: Option<&gst::Caps>,
    ) -> Option<gst::Pad> {
        let template = templ.name_template();
        let kind = kind_of(template)?;
        let prefix = template.trim_end_matches("%u");
        let obj = self.obj();
        let (sink, ghost, track, running) = {
            let mut st = lock(&self.state);
            if st.pads.len() >= MAX_TRACKS {
                drop(st);
                gst::warning!(
                    CAT,
                    imp = self,
                    "no {template} pad: a session carries at most {MAX_TRACKS} tracks; release a pad first"
                );
                return None;
            }
            let taken = |n: &str| st.pads.iter().any(|p| p.pad.name() == n);
            let pad_name = match name {
                Some(n) => {
                    let index_ok = n
                        .strip_prefix(prefix)
                        .is_some_and(|i| i.parse::<u32>().is_ok());
                    if !index_ok || taken(n) {
                        drop(st);
                        gst::warning!(CAT, imp = self, "no pad {n}: taken, or not {template}");
                        return None;
                    }
                    n.to_string()
                }
                None => (0u32..)
                    .map(|i| format!("{prefix}{i}"))
                    .find(|n| !taken(n))?,
            };
            let track = st.track_for(kind);
            let sink = TrackSink::new(self.hub.clone(), track);
            let ghost = gst::GhostPad::builder_from_template(templ)
                .name(pad_name.as_str())
                .build();
            st.pads.push(PadEntry {
                pad: ghost.clone(),
                sink: sink.clone(),
                kind,
                track,
            });
            (sink, ghost, track, st.running)
        };
        let failed = |what: &str| {
            gst::warning!(CAT, imp = self, "could not add the pad's {what}");
            lock(&self.state).pads.retain(|p| p.pad != ghost);
        };
        // The target is set once the child is in the bin.
        let target = sink.static_pad("sink");
        if obj.add(&sink).is_err() || target.is_none_or(|t| ghost.set_target(Some(&t)).is_err()) {
            failed("sink");
            if sink.parent().is_some() {
                let _ = obj.remove(&sink);
            }
            return None;
        }
        if running {
            if let Some((shared, _)) = self.hub.running() {
                let entry = TrackEntry {
                    id: track,
                    kind,
                    variant_of: None,
                    name: ghost.name().to_string(),
                };
                gst::info!(CAT, imp = self, "track {} is {}", track, entry.name);
                let _ = shared.push(track, Item::Add(entry), false, Duration::ZERO);
            }
        }
        if obj.current_state() > gst::State::Ready {
            // Joining a running pipeline: no preroll to wait for (an async sink would make
            // the pipeline lose its state, and sit in PAUSED meanwhile).
            sink.set_property("async", false);
            let _ = ghost.set_active(true);
        }
        if obj.add_pad(&ghost).is_err() {
            failed("pad");
            let _ = obj.remove(&sink);
            return None;
        }
        let _ = sink.sync_state_with_parent();
        Some(ghost.upcast())
    }

    fn release_pad(&self, pad: &gst::Pad) {
        let entry = {
            let mut st = lock(&self.state);
            let Some(i) = st
                .pads
                .iter()
                .position(|p| p.pad.upcast_ref::<gst::Pad>() == pad)
            else {
                return;
            };
            st.pads.remove(i)
        };
        let obj = self.obj();
        // The child stops first (its streaming thread lets go), then its track ends: what it
        // handed over goes out, then its end of stream, then the new table.
        let _ = entry.sink.set_state(gst::State::Null);
        if let Some((shared, _)) = self.hub.running() {
            gst::info!(
                CAT,
                imp = self,
                "track {} ({}) ends",
                entry.track,
                pad.name()
            );
            let _ = shared.push(entry.track, Item::Remove, false, Duration::ZERO);
        }
        let _ = entry.pad.set_active(false);
        let _ = obj.remove_pad(&entry.pad);
        if entry.sink.parent().is_some() {
            let _ = obj.remove(&entry.sink);
        }
    }

    fn change_state(
        &self,
        transition: gst::StateChange,
    ) -> Result<gst::StateChangeSuccess, gst::StateChangeError> {
        // As videoipsink: the socket opens (and the port reads back) in READY; the tracks
        // are numbered and declared when the bin first goes to PAUSED.
        match transition {
            gst::StateChange::NullToReady => {
                if let Err(msg) = self.start() {
                    self.stop();
                    self.post_error_message(msg);
                    return Err(gst::StateChangeError);
                }
            }
            gst::StateChange::ReadyToPaused => self.declare(),
            _ => {}
        }
        let result = self.parent_change_state(transition);
        if result.is_err() && transition == gst::StateChange::NullToReady
            || transition == gst::StateChange::ReadyToNull
        {
            self.stop();
        }
        result
    }
}

impl BinImpl for VideoIpSinkBin {}
