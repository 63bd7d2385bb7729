// SPDX-License-Identifier: MPL-2.0
//! `videoipsrc`: a live source that receives a videoip stream and pushes its frames with the
//! caps the sender announced.
//!
//! ```text
//! gst-launch-1.0 videoipsrc port=5004 ! videoconvert ! autovideosink
//! ```

use gst::glib;
use gst::prelude::*;

mod imp;

glib::wrapper! {
    /// The videoip receiver element.
    pub struct VideoIpSrc(ObjectSubclass<imp::VideoIpSrc>)
        @extends gst_base::PushSrc, gst_base::BaseSrc, gst::Element, gst::Object;
}

/// Registers `videoipsrc` with `plugin`.
pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    gst::Element::register(
        Some(plugin),
        "videoipsrc",
        gst::Rank::NONE,
        VideoIpSrc::static_type(),
    )
}
