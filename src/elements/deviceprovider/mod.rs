// SPDX-License-Identifier: MPL-2.0
//! `videoipdeviceprovider`: lists the videoip sources announced on the network (DNS-SD, see
//! [`crate::discovery`]) as devices of class `Source/Video/Network`, `Source/Audio/Network`
//! or `Source/Network`; each one's `create_element()` returns a `videoipsrc` set to receive
//! it.
//!
//! ```text
//! gst-device-monitor-1.0 Source/Network
//! ```

use gst::glib;
use gst::prelude::*;

mod imp;

glib::wrapper! {
    /// The videoip device provider.
    pub struct VideoIpDeviceProvider(ObjectSubclass<imp::VideoIpDeviceProvider>)
        @extends gst::DeviceProvider, gst::Object;
}

glib::wrapper! {
    /// A videoip source found on the network.
    pub struct VideoIpDevice(ObjectSubclass<imp::VideoIpDevice>)
        @extends gst::Device, gst::Object;
}

/// Registers `videoipdeviceprovider` with `plugin`.
pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    gst::DeviceProvider::register(
        Some(plugin),
        "videoipdeviceprovider",
        gst::Rank::PRIMARY,
        VideoIpDeviceProvider::static_type(),
    )
}
