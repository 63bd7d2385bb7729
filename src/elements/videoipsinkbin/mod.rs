// SPDX-License-Identifier: MPL-2.0
//! `videoipsinkbin`: one named source of any number of video, audio and metadata inputs, all
//! tracks of one videoip session (PROTOCOL §7.12): one port, one pacer and rate budget, one
//! clock mapping, so receivers keep lip sync by timestamps alone.
//!
//! ```text
//! gst-launch-1.0 videoipsinkbin name=b source-name=CAM \
//!     v4l2src ! videoconvert ! b.video_0 \
//!     pulsesrc ! audioconvert ! audio/x-raw,format=S16LE,rate=48000,channels=2 ! b.audio_0
//! ```
//!
//! Each request pad (`video_%u`, `audio_%u`, `meta_%u`) is a ghost of a small child sink of
//! its own ([`tracksink`]) whose render path is `videoipsink`'s; the children hand their
//! buffers to one shared driver thread and session, each on a lane of its own, so a stalled
//! input never holds another back (webrtcsink's shape, no combiner).
//!
//! **Track ids.** When the bin starts (READY to PAUSED), the first video pad requested gets
//! track 0, the primary essence that single-stream receivers follow; with no video pad, the
//! first pad requested gets it. Every other pad gets the lowest free id from 1, in the order
//! they were requested. A pad requested while the bin runs gets track 0 if it is video and
//! track 0 is free (or if it is the bin's first pad), else the lowest free id from 1. The
//! track table names each track after its pad (`video_0`, `audio_0`, `meta_0`). Releasing a
//! pad ends its track (its end of stream goes out) and takes it out of the table; the bin's
//! end of stream is when every pad got one.
//!
//! **Properties** are `videoipsink`'s session properties, the same specs (names, ranges,
//! defaults, blurbs); `stats` adds `track-stats`, one structure per track. With
//! `source-name` the bin is announced once by DNS-SD, its TXT record describing track 0's
//! caps (the TXT record has no key for the track list yet).

use gst::glib;
use gst::prelude::*;

mod imp;
mod tracksink;

pub(crate) use imp::Hub;

glib::wrapper! {
    /// The videoip sender of several tracks.
    pub struct VideoIpSinkBin(ObjectSubclass<imp::VideoIpSinkBin>)
        @extends gst::Bin, gst::Element, gst::Object,
        @implements gst::ChildProxy;
}

/// Registers `videoipsinkbin` with `plugin`.
pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    gst::Element::register(
        Some(plugin),
        "videoipsinkbin",
        gst::Rank::NONE,
        VideoIpSinkBin::static_type(),
    )
}
