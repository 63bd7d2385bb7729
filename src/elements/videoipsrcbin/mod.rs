// SPDX-License-Identifier: MPL-2.0
//! `videoipsrcbin`: one receiver for every track of a videoip session. One socket, one
//! subscription, one receive thread ([`crate::elements::videoipsrc`]'s driver); each track
//! it receives gets a sometimes src pad named after the sender's pad (`video_0`, `audio_0`,
//! …), the ghost of a small single-track source of its own with its own streaming thread.
//!
//! ```text
//! gst-launch-1.0 videoipsrcbin port=5004 name=rx \
//!     rx.video_0 ! queue ! videoconvert ! autovideosink \
//!     rx.audio_0 ! queue ! audioconvert ! autoaudiosink
//! ```

use gst::glib;
use gst::prelude::*;

mod imp;
pub(crate) mod router;
mod tracksrc;

glib::wrapper! {
    /// The videoip receiver of every track of a session.
    pub struct VideoIpSrcBin(ObjectSubclass<imp::VideoIpSrcBin>)
        @extends gst::Bin, gst::Element, gst::Object,
        @implements gst::ChildProxy;
}

glib::wrapper! {
    /// One track inside [`VideoIpSrcBin`] (not registered as a factory).
    pub struct TrackSrc(ObjectSubclass<tracksrc::TrackSrc>)
        @extends gst_base::PushSrc, gst_base::BaseSrc, gst::Element, gst::Object;
}

/// Registers `videoipsrcbin` with `plugin`.
pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    gst::Element::register(
        Some(plugin),
        "videoipsrcbin",
        gst::Rank::NONE,
        VideoIpSrcBin::static_type(),
    )
}
