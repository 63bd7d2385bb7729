// SPDX-License-Identifier: MPL-2.0
//! `videoiptracksrc`: the single-track child source inside `videoipsrcbin`, one per track,
//! behind a ghost pad of the bin. A live PushSrc that takes its track's frames from the
//! track's [`Port`] (filled by the bin's receive thread) on its own streaming thread, maps
//! their timestamps through a [`StreamClock`] that shares the bin's [`ClockTable`] (one
//! offset for every track of the session: lip sync), and pushes them with the sender's caps.
//! Not registered as a factory: only the bin makes it.
//!
//! Locks: `binding` and `out`, never together with another but the port's queue (taken
//! after `out` released) and the clock table (taken inside `out`, briefly).

use super::router::{Item, Port};
use crate::elements::videoipsrc::rawsize::FrameSize;
use crate::elements::{any_pad_template, lock};
use crate::ratelimit::RateLimit;
use crate::receive::clock::{self, ClockTable, StreamClock};
use crate::receive::{self, Origin};
use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::prelude::*;
use gst_base::subclass::base_src::CreateSuccess;
use gst_base::subclass::prelude::*;
use std::str::FromStr;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "videoiptracksrc",
        gst::DebugColorFlags::empty(),
        Some("videoip receiver: one track of videoipsrcbin"),
    )
});

/// The stream a track's pad announces: its id under the bin's group, and the session's
/// collection (the bin replaces both when the sender's table changes).
#[derive(Clone)]
pub(crate) struct Announce {
    pub stream: gst::Stream,
    pub collection: gst::StreamCollection,
}

/// What the bin gives a track's source.
#[derive(Clone)]
pub(crate) struct Binding {
    pub port: Arc<Port>,
    pub clocks: Arc<ClockTable>,
    pub mode: clock::Mode,
    pub min_latency: Duration,
    pub max_latency: Duration,
    pub group_id: gst::GroupId,
    pub announce: Arc<Mutex<Option<Announce>>>,
}

/// The streaming thread's output state.
struct Out {
    clock: StreamClock,
    caps_set: Option<String>,
    refused_caps: Option<String>,
    frame_size: Option<(String, Option<FrameSize>)>,
    discont: bool,
    /// The collection last pushed.
    collection: Option<gst::StreamCollection>,
}

pub struct TrackSrc {
    binding: Mutex<Option<Binding>>,
    out: Mutex<Option<Out>>,
    warnings: Mutex<RateLimit>,
}

impl Default for TrackSrc {
    fn default() -> Self {
        TrackSrc {
            binding: Default::default(),
            out: Default::default(),
            warnings: Mutex::new(RateLimit::new(Duration::from_secs(2))),
        }
    }
}

#[glib::object_subclass]
impl ObjectSubclass for TrackSrc {
    const NAME: &'static str = "GstVideoIpTrackSrc";
    type Type = super::TrackSrc;
    type ParentType = gst_base::PushSrc;
}

impl ObjectImpl for TrackSrc {
    fn constructed(&self) {
        self.parent_constructed();
        let obj = self.obj();
        obj.set_live(true);
        obj.set_format(gst::Format::Time);
        obj.set_do_timestamp(false);
        // BaseSrc's own STREAM_START becomes the track's: its stream-id and the bin's
        // group-id, so that decodebin3/playbin3 see the tracks as one group.
        let weak = obj.downgrade();
        obj.src_pad()
            .add_probe(gst::PadProbeType::EVENT_DOWNSTREAM, move |_pad, info| {
                let Some(obj) = weak.upgrade() else {
                    return gst::PadProbeReturn::Ok;
                };
                let Some(gst::PadProbeData::Event(ev)) = &info.data else {
                    return gst::PadProbeReturn::Ok;
                };
                if ev.type_() != gst::EventType::StreamStart {
                    return gst::PadProbeReturn::Ok;
                }
                if let Some(new) = obj.imp().stream_start() {
                    info.data = Some(gst::PadProbeData::Event(new));
                }
                gst::PadProbeReturn::Ok
            });
    }
}

impl GstObjectImpl for TrackSrc {}

impl ElementImpl for TrackSrc {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static METADATA: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "videoip Track Source",
                "Source/Network",
                "One track of a videoip session, inside videoipsrcbin",
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
}

impl TrackSrc {
    pub(crate) fn bind(&self, b: Binding) {
        *lock(&self.binding) = Some(b);
    }

    fn binding(&self) -> Option<Binding> {
        lock(&self.binding).clone()
    }

    /// The track's STREAM_START.
    fn stream_start(&self) -> Option<gst::Event> {
        let b = self.binding()?;
        let a = lock(&b.announce).clone()?;
        let id = a.stream.stream_id()?;
        Some(
            gst::event::StreamStart::builder(&id)
                .group_id(b.group_id)
                .stream(a.stream)
                .build(),
        )
    }

    fn running_time(&self) -> Option<u64> {
        let obj = self.obj();
        let clock = obj.clock()?;
        let base = obj.base_time()?;
        clock.time().checked_sub(base).map(|t| t.nseconds())
    }

    fn warn(&self, msg: String) {
        let Some(held_back) = lock(&self.warnings).check(Instant::now()) else {
            return;
        };
        let more = if held_back > 0 {
            format!(" ({held_back} more such warnings held back)")
        } else {
            String::new()
        };
        gst::element_imp_warning!(self, gst::CoreError::Negotiation, ["{}{}", msg, more]);
    }

    /// Waits for the next item of the port, or `unlock()`.
    fn next(port: &Port) -> Option<(Item, bool)> {
        let mut q = lock(&port.queue);
        loop {
            if q.flushing {
                return None;
            }
            q.drop_stale(Instant::now(), port.max_age);
            if let Some(next) = q.pop() {
                return Some(next);
            }
            q = port
                .ready
                .wait_timeout(q, Duration::from_millis(500))
                .map(|(g, _)| g)
                .unwrap_or_else(|e| e.into_inner().0);
        }
    }

    /// A frame as a buffer, and caps to set first if they changed (Err: dropped, with what
    /// to warn about, if anything).
    #[allow(clippy::type_complexity)]
    fn output(
        &self,
        b: &Binding,
        f: receive::Frame<crate::elements::videoipsrc::receiver::FrameBuf>,
        caps_str: &str,
        origin: Origin,
        queue_discont: bool,
    ) -> Result<(gst::Buffer, Option<(gst::Caps, String)>), Option<String>> {
        let base_time = self.obj().base_time().map(|t| t.nseconds());
        let arrival_rt = self.running_time().map(|rt| {
            rt.saturating_sub(
                Instant::now()
                    .saturating_duration_since(f.arrival)
                    .as_nanos() as u64,
            )
        });
        let mut guard = lock(&self.out);
        let Some(out) = guard.as_mut() else {
            return Err(None);
        };
        if out.refused_caps.as_deref() == Some(caps_str) {
            out.discont = true;
            return Err(None);
        }
        let new_caps = if out.caps_set.as_deref() != Some(caps_str) {
            match gst::Caps::from_str(caps_str) {
                Ok(c) if c.is_fixed() && raw_video_complete(&c) => {
                    out.frame_size = Some((caps_str.to_owned(), FrameSize::of(&c)));
                    Some((c, caps_str.to_owned()))
                }
                _ => {
                    out.refused_caps = Some(caps_str.to_owned());
                    out.discont = true;
                    return Err(Some(format!(
                        "track {}: the sender announced caps that are not usable fixed caps; ignoring its frames until it announces others: {caps_str:.200}",
                        b.port.id
                    )));
                }
            }
        } else {
            None
        };
        let rule = match &out.frame_size {
            Some((s, r)) if s == caps_str => *r,
            _ => None,
        };
        if let Some(Err(expected)) = rule.map(|r| r.check(f.info.len as usize)) {
            out.discont = true;
            return Err(Some(format!(
                "track {}: dropping a frame of {} bytes: its caps ask for {expected}",
                b.port.id, f.info.len
            )));
        }
        let stamped = out
            .clock
            .map(&b.clocks, &origin, base_time, arrival_rt, &f.info);
        out.discont |= stamped.discont;
        let mut buffer = f.buf.into_buffer();
        {
            let bm = buffer.make_mut();
            bm.set_pts(stamped.pts.map(gst::ClockTime::from_nseconds));
            bm.set_dts(stamped.dts.map(gst::ClockTime::from_nseconds));
            bm.set_duration(stamped.duration.map(gst::ClockTime::from_nseconds));
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
            bm.set_flags(flags);
        }
        Ok((buffer, new_caps))
    }

    /// Pushes the session's stream collection if it is new on this pad.
    fn push_collection(&self, b: &Binding) {
        let Some(a) = lock(&b.announce).clone() else {
            return;
        };
        let new = match lock(&self.out).as_mut() {
            Some(out) if out.collection.as_ref() != Some(&a.collection) => {
                out.collection = Some(a.collection.clone());
                true
            }
            _ => false,
        };
        if new {
            let _ = self
                .obj()
                .src_pad()
                .push_event(gst::event::StreamCollection::new(&a.collection));
        }
    }

    /// Sets caps on the pad if downstream takes them (false: refused, its frames dropped).
    fn push_caps(&self, b: &Binding, caps: gst::Caps, caps_str: String) -> bool {
        gst::info!(CAT, imp = self, "track {}: caps {caps}", b.port.id);
        let obj = self.obj();
        let pad = obj.src_pad();
        let linked = pad.peer().is_some_and(|p| {
            p.downcast_ref::<gst::ProxyPad>()
                .and_then(|pp| pp.internal())
                .is_none_or(|ghost| ghost.is_linked())
        });
        let accepted =
            (!linked || pad.peer_query_accept_caps(&caps)) && obj.set_caps(&caps).is_ok();
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
            self.warn(format!(
                "track {}: downstream does not accept the sender's caps {caps}; dropping its frames",
                b.port.id
            ));
        }
        accepted
    }
}

/// False for raw video caps that do not describe a frame.
fn raw_video_complete(caps: &gst::Caps) -> bool {
    let is_raw_video = caps.structure(0).is_some_and(|s| s.name() == "video/x-raw");
    !is_raw_video || gst_video::VideoInfo::from_caps(caps).is_ok()
}

impl BaseSrcImpl for TrackSrc {
    fn start(&self) -> Result<(), gst::ErrorMessage> {
        let Some(b) = self.binding() else {
            return Err(gst::error_msg!(
                gst::CoreError::Failed,
                ["a track source runs only inside videoipsrcbin"]
            ));
        };
        *lock(&self.out) = Some(Out {
            clock: StreamClock::new(b.mode, b.min_latency.as_nanos() as u64),
            caps_set: None,
            refused_caps: None,
            frame_size: None,
            discont: true,
            collection: None,
        });
        Ok(())
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        *lock(&self.out) = None;
        Ok(())
    }

    fn is_seekable(&self) -> bool {
        false
    }

    /// Caps come from the sender (see `create`); nothing to choose here.
    fn negotiate(&self) -> Result<(), gst::LoggableError> {
        Ok(())
    }

    fn query(&self, query: &mut gst::QueryRef) -> bool {
        if let gst::QueryViewMut::Latency(q) = query.view_mut() {
            let Some(b) = self.binding() else {
                return false;
            };
            let ns = |d: Duration| gst::ClockTime::from_nseconds(d.as_nanos() as u64);
            q.set(true, ns(b.min_latency), ns(b.max_latency));
            return true;
        }
        BaseSrcImplExt::parent_query(self, query)
    }

    fn unlock(&self) -> Result<(), gst::ErrorMessage> {
        if let Some(b) = self.binding() {
            lock(&b.port.queue).flushing = true;
            b.port.ready.notify_all();
        }
        Ok(())
    }

    fn unlock_stop(&self) -> Result<(), gst::ErrorMessage> {
        if let Some(b) = self.binding() {
            lock(&b.port.queue).flushing = false;
        }
        Ok(())
    }
}

impl PushSrcImpl for TrackSrc {
    fn create(
        &self,
        _buffer: Option<&mut gst::BufferRef>,
    ) -> Result<CreateSuccess, gst::FlowError> {
        let Some(b) = self.binding() else {
            return Err(gst::FlowError::Flushing);
        };
        loop {
            let Some((item, discont)) = Self::next(&b.port) else {
                return Err(gst::FlowError::Flushing);
            };
            match item {
                Item::Frame(f, caps, origin) => {
                    self.push_collection(&b);
                    let (buffer, new_caps) = match self.output(&b, f, &caps, origin, discont) {
                        Ok(made) => made,
                        Err(None) => continue,
                        Err(Some(msg)) => {
                            self.warn(msg);
                            continue;
                        }
                    };
                    match new_caps {
                        None => return Ok(CreateSuccess::NewBuffer(buffer)),
                        Some((c, s)) => {
                            if self.push_caps(&b, c, s) {
                                return Ok(CreateSuccess::NewBuffer(buffer));
                            }
                        }
                    }
                }
                Item::Eos => {
                    gst::info!(CAT, imp = self, "the sender ended track {}", b.port.id);
                    return Err(gst::FlowError::Eos);
                }
                Item::Error => return Err(gst::FlowError::Error),
            }
        }
    }
}
