// SPDX-License-Identifier: MPL-2.0
//! `videoipsink`: sends timestamped buffers of any caps as videoip datagrams.
//!
//! ```text
//! gst-launch-1.0 videotestsrc ! video/x-raw,format=UYVY,width=1920,height=1080,framerate=60/1 \
//!     ! videoipsink host=127.0.0.1 port=5004
//! ```

use gst::glib;
use gst::prelude::*;

pub(crate) mod announce;
pub(crate) mod driver;
pub(crate) mod imp;

/// How a frame's datagrams are spread in time.
#[derive(Debug, Eq, PartialEq, Ord, PartialOrd, Hash, Clone, Copy, Default, glib::Enum)]
#[repr(u32)]
#[enum_type(name = "GstVideoIpSinkPacing")]
pub enum Pacing {
    /// Send each frame's datagrams as fast as the socket takes them.
    #[enum_value(name = "None: send each frame as one burst", nick = "none")]
    None = 0,
    /// Spread each frame's datagrams evenly over 0.8 of its duration (at most 20 ms, or
    /// longer to keep a rate limit).
    #[default]
    #[enum_value(
        name = "Frame: spread each frame over 0.8 of its duration, at most 20 ms unless a rate limit needs more",
        nick = "frame"
    )]
    Frame = 1,
}

glib::wrapper! {
    /// The videoip sender element.
    pub struct VideoIpSink(ObjectSubclass<imp::VideoIpSink>)
        @extends gst_base::BaseSink, gst::Element, gst::Object,
        @implements gst::URIHandler;
}

/// Registers `videoipsink` with `plugin`.
pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    Pacing::static_type().mark_as_plugin_api(gst::PluginAPIFlags::empty());
    gst::Element::register(
        Some(plugin),
        "videoipsink",
        gst::Rank::NONE,
        VideoIpSink::static_type(),
    )
}
