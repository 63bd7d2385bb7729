// SPDX-License-Identifier: MPL-2.0
//! `videoiptracksink`, the bin's child of one track: a BaseSink whose render path is
//! `videoipsink`'s (the same live test, clock readings, frame metadata, caps checks), handing
//! its buffers to the bin's shared driver on its own lane (see
//! [`crate::elements::videoipsink::driver`]). Private to the bin: not registered.
//!
//! Locks: `link` and `stream` are each taken briefly and alone, and never across a wait on
//! the driver.

use super::Hub;
use crate::elements::lock;
use crate::elements::videoipsink::driver::Item;
use crate::elements::videoipsink::imp::{clock_sample, frame_meta, handover_failed};
use crate::protocol;
use crate::send::{self, Frame};
use gst::glib;
use gst::subclass::prelude::*;
use std::sync::{Arc, LazyLock};

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "videoiptracksink",
        gst::DebugColorFlags::empty(),
        Some("videoip sender, one track of videoipsinkbin"),
    )
});

glib::wrapper! {
    /// One track of a `videoipsinkbin`.
    pub struct TrackSink(ObjectSubclass<imp::TrackSink>)
        @extends gst_base::BaseSink, gst::Element, gst::Object;
}

impl TrackSink {
    /// A sink feeding track `track` of `hub`'s session.
    pub(super) fn new(hub: Arc<Hub>, track: u16) -> TrackSink {
        let sink: TrackSink = glib::Object::new();
        *lock(&sink.imp().link) = Some((hub, track));
        sink
    }

    /// Its track now (the bin may renumber its tracks when it starts).
    pub(super) fn set_track(&self, track: u16) {
        if let Some(l) = lock(&self.imp().link).as_mut() {
            l.1 = track;
        }
    }
}

mod imp {
    use super::{
        clock_sample, frame_meta, handover_failed, lock, protocol, send, Frame, Hub, Item, CAT,
    };
    use gst::glib;
    use gst::prelude::*;
    use gst::subclass::prelude::*;
    use gst_base::prelude::*;
    use gst_base::subclass::prelude::*;
    use std::sync::{Arc, LazyLock, Mutex};
    use std::time::{Duration, Instant};

    #[derive(Default)]
    pub struct TrackSink {
        /// The bin's hub and this sink's track.
        pub(super) link: Mutex<Option<(Arc<Hub>, u16)>>,
        /// Whether frames over the rate are dropped (live) rather than waited for; found at
        /// the first frame after caps, as videoipsink does.
        live: Mutex<Option<bool>>,
    }

    impl TrackSink {
        fn link(&self) -> Option<(Arc<Hub>, u16)> {
            lock(&self.link).clone()
        }

        /// The driver's shared half and the payload size while the bin runs, and the track.
        fn running(&self) -> Option<(Arc<crate::elements::videoipsink::driver::Shared>, u16, u16)> {
            let (hub, track) = self.link()?;
            let (shared, frag) = hub.running()?;
            Some((shared, frag, track))
        }

        fn live(&self) -> bool {
            if let Some(live) = *lock(&self.live) {
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
            *lock(&self.live) = Some(live);
            live
        }
    }

    #[glib::object_subclass]
    impl ObjectSubclass for TrackSink {
        const NAME: &'static str = "GstVideoIpTrackSink";
        type Type = super::TrackSink;
        type ParentType = gst_base::BaseSink;
    }

    impl ObjectImpl for TrackSink {}
    impl GstObjectImpl for TrackSink {}

    impl ElementImpl for TrackSink {
        fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
            static METADATA: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
                gst::subclass::ElementMetadata::new(
                    "videoip Track Sink",
                    "Sink/Network",
                    "One track of a videoipsinkbin's session",
                    "The videoip developers",
                )
            });
            Some(&*METADATA)
        }

        fn pad_templates() -> &'static [gst::PadTemplate] {
            static TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
                crate::elements::any_pad_template("sink", gst::PadDirection::Sink)
            });
            TEMPLATES.as_ref()
        }
    }

    impl BaseSinkImpl for TrackSink {
        fn start(&self) -> Result<(), gst::ErrorMessage> {
            *lock(&self.live) = None;
            match self.running() {
                Some((shared, _, track)) => {
                    shared.set_flushing(track, false);
                    Ok(())
                }
                None => Err(gst::error_msg!(
                    gst::CoreError::StateChange,
                    ["the videoipsinkbin of this track has not started its sender"]
                )),
            }
        }

        fn stop(&self) -> Result<(), gst::ErrorMessage> {
            Ok(())
        }

        fn set_caps(&self, caps: &gst::Caps) -> Result<(), gst::LoggableError> {
            let caps_str = caps.to_string();
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
            if let Err(why) = protocol::check_caps_text(&caps_str) {
                gst::element_imp_error!(
                    self,
                    gst::StreamError::Format,
                    ["caps receivers would refuse ({}): {}", why, caps_str]
                );
                return Err(gst::loggable_error!(CAT, "caps receivers would refuse"));
            }
            let (Some((hub, _)), Some((shared, _, track))) = (self.link(), self.running()) else {
                return Err(gst::loggable_error!(CAT, "caps set while stopped"));
            };
            gst::debug!(CAT, imp = self, "track {track}: new caps {caps_str}");
            *lock(&self.live) = None;
            if shared
                .push(track, Item::Caps(caps_str), false, Duration::ZERO)
                .is_err()
            {
                return Err(gst::loggable_error!(CAT, "the sender has stopped"));
            }
            // The announcement describes the primary essence.
            if track == 0 {
                if let Err(e) = hub.announce.caps(caps) {
                    gst::warning!(CAT, imp = self, "could not announce the new caps: {e}");
                }
            }
            Ok(())
        }

        fn render(&self, buffer: &gst::Buffer) -> Result<gst::FlowSuccess, gst::FlowError> {
            let Some((shared, frag, track)) = self.running() else {
                return Err(gst::FlowError::Flushing);
            };
            if let Err(e) = send::check_frame(buffer.size(), frag) {
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
            // As videoipsink: a live frame never waits for room in its lane (it replaces the
            // oldest waiting there); a non-live one waits, slowing its own upstream alone.
            shared
                .push(track, Item::Frame(frame), live, Duration::ZERO)
                .map_err(handover_failed)?;
            Ok(gst::FlowSuccess::Ok)
        }

        fn event(&self, event: gst::Event) -> bool {
            match event.view() {
                gst::EventView::Eos(_) => {
                    if let Some((shared, _, track)) = self.running() {
                        // Everything of this track before its end goes out before it is done.
                        if shared.push(track, Item::Eos, false, Duration::ZERO).is_ok()
                            && !shared.wait_eos_sent(track, shared.eos_handed(track))
                        {
                            gst::debug!(CAT, imp = self, "end of stream not confirmed sent");
                        }
                        gst::debug!(CAT, imp = self, "track {track}: sent end of stream");
                    }
                }
                gst::EventView::FlushStop(_) => {
                    if let Some((shared, _, track)) = self.running() {
                        shared.flush(track, false);
                    }
                }
                _ => {}
            }
            self.parent_event(event)
        }

        fn unlock(&self) -> Result<(), gst::ErrorMessage> {
            if let Some((shared, _, track)) = self.running() {
                shared.set_flushing(track, true);
            }
            Ok(())
        }

        fn unlock_stop(&self) -> Result<(), gst::ErrorMessage> {
            if let Some((shared, _, track)) = self.running() {
                shared.set_flushing(track, false);
            }
            Ok(())
        }
    }
}
