// SPDX-License-Identifier: MPL-2.0
//! videoip: live video and any timed media over plain UDP/IP.
//!
//! The plugin registers `videoipsink`, `videoipsrc` and `videoipdeviceprovider`. The
//! modules below them are free of GStreamer: [`protocol`] (the wire format), [`packetizer`]
//! (frame → datagrams), [`pacer`] (when batches leave), [`ratecontrol`] (how fast, and which
//! frames go), [`reassembly`] (datagrams → frames), [`net`] (sockets) and [`discovery`]
//! (finding sources by name).

use gst::glib;

mod deviceprovider;
pub mod discovery;
mod element;
pub mod fec;
pub mod net;
pub mod pacer;
pub mod packetizer;
pub mod protocol;
pub mod ratecontrol;
pub mod ratelimit;
pub mod reassembly;
pub mod recovery;
pub mod sender;
pub mod timestamps;
pub mod uri;
mod videoipsink;
mod videoipsrc;

pub use deviceprovider::{VideoIpDevice, VideoIpDeviceProvider};
pub use videoipsink::{Pacing, VideoIpSink};
pub use videoipsrc::{TimestampMode, VideoIpSrc};

gst::plugin_define!(
    videoip,
    env!("CARGO_PKG_DESCRIPTION"),
    plugin_init,
    concat!(env!("CARGO_PKG_VERSION"), "-", env!("COMMIT_ID")),
    "MPL",
    env!("CARGO_PKG_NAME"),
    env!("CARGO_PKG_NAME"),
    env!("CARGO_PKG_REPOSITORY"),
    env!("BUILD_REL_DATE")
);

fn plugin_init(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    videoipsink::register(plugin)?;
    videoipsrc::register(plugin)?;
    deviceprovider::register(plugin)?;
    Ok(())
}
