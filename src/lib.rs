// SPDX-License-Identifier: MPL-2.0
//! videoip: live video and any timed media over plain UDP/IP.
//!
//! The plugin registers `videoipsink`, `videoipsinkbin`, `videoipsrc`, `videoipsrcbin` and
//! `videoipdeviceprovider` (all in `elements/`, GStreamer glue only). The modules below them are free of GStreamer:
//! [`protocol`] (the wire format), [`send`] (the sender: packetizing, pacing, rate control,
//! resends, receivers and subscribers), [`receive`] (the receiver session: lock-on,
//! reassembly, recovery, reports, subscription, the clock mapping), [`net`] (sockets) and
//! [`discovery`] (finding sources by name), and [`crypto`] (packet protection).

use gst::glib;

pub mod crypto;
pub mod discovery;
mod elements;
pub mod net;
pub mod protocol;
pub mod ratelimit;
pub mod receive;
pub mod send;
#[cfg(test)]
mod sim;

pub use elements::deviceprovider::{VideoIpDevice, VideoIpDeviceProvider};
pub use elements::uri;
pub use elements::videoipsink::{Pacing, VideoIpSink};
pub use elements::videoipsrc::{TimestampMode, VideoIpSrc};
pub use elements::videoipsrcbin::VideoIpSrcBin;

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
    elements::videoipsink::register(plugin)?;
    elements::videoipsinkbin::register(plugin)?;
    elements::videoipsrc::register(plugin)?;
    elements::videoipsrcbin::register(plugin)?;
    elements::deviceprovider::register(plugin)?;
    Ok(())
}
