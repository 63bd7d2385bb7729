// SPDX-License-Identifier: MPL-2.0
//! `videoipsrc`: a live source that receives a videoip stream and pushes its frames with the
//! caps the sender announced.
//!
//! ```text
//! gst-launch-1.0 videoipsrc port=5004 ! videoconvert ! autovideosink
//! ```

use gst::glib;
use gst::prelude::*;

pub(crate) mod byname;
mod imp;
pub(crate) use imp::{describe, open_error};
pub(crate) mod rawsize;
pub(crate) mod receiver;

/// How `videoipsrc` timestamps the buffers it pushes.
#[derive(Debug, Eq, PartialEq, Ord, PartialOrd, Hash, Clone, Copy, Default, glib::Enum)]
#[repr(u32)]
#[enum_type(name = "GstVideoIpSrcTimestampMode")]
pub enum TimestampMode {
    /// The sender's timestamps, moved onto local running time by an offset learnt from the
    /// fastest arrivals: the sender's spacing is kept and network jitter never shows.
    #[default]
    #[enum_value(
        name = "Sender clock: the sender's timestamps, offset onto local running time",
        nick = "sender-clock"
    )]
    SenderClock = 0,
    /// Each frame's arrival time (of its first datagram), never decreasing.
    #[enum_value(
        name = "Arrival: when each frame's first datagram arrived",
        nick = "arrival"
    )]
    Arrival = 1,
}

glib::wrapper! {
    /// The videoip receiver element.
    pub struct VideoIpSrc(ObjectSubclass<imp::VideoIpSrc>)
        @extends gst_base::PushSrc, gst_base::BaseSrc, gst::Element, gst::Object,
        @implements gst::URIHandler;
}

/// Registers `videoipsrc` with `plugin`.
pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    TimestampMode::static_type().mark_as_plugin_api(gst::PluginAPIFlags::empty());
    gst::Element::register(
        Some(plugin),
        "videoipsrc",
        gst::Rank::NONE,
        VideoIpSrc::static_type(),
    )
}
