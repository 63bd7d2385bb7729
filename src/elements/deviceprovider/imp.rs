// SPDX-License-Identifier: MPL-2.0
//! The device provider's glue: a [`Browser`] while started, one [`VideoIpDevice`] per
//! source it finds.
//!
//! Locks: `browser` and `devices`, never both at once, and no device is added or removed
//! (which posts on the bus) while one is held. The browser's thread calls in with no lock of
//! the browser's held; `stop` drops the browser (joining that thread) outside `browser`'s lock.

use crate::discovery::{Browser, Event, Mode, Source};
use crate::elements::lock;
use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use std::collections::HashMap;
use std::sync::{LazyLock, Mutex, OnceLock};
use std::time::{Duration, Instant};

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "videoipdeviceprovider",
        gst::DebugColorFlags::empty(),
        Some("videoip device provider"),
    )
});

/// How long `probe` browses when the provider is not started.
const PROBE_TIME: Duration = Duration::from_millis(1500);
/// How long starting waits for the sources on the network to answer.
const START_TIME: Duration = Duration::from_millis(1200);

#[derive(Default)]
pub struct VideoIpDeviceProvider {
    browser: Mutex<Option<Browser>>,
    /// Devices by DNS-SD instance name.
    devices: Mutex<HashMap<String, super::VideoIpDevice>>,
}

#[glib::object_subclass]
impl ObjectSubclass for VideoIpDeviceProvider {
    const NAME: &'static str = "GstVideoIpDeviceProvider";
    type Type = super::VideoIpDeviceProvider;
    type ParentType = gst::DeviceProvider;
}

impl ObjectImpl for VideoIpDeviceProvider {}

impl GstObjectImpl for VideoIpDeviceProvider {}

impl DeviceProviderImpl for VideoIpDeviceProvider {
    fn metadata() -> Option<&'static gst::subclass::DeviceProviderMetadata> {
        static METADATA: LazyLock<gst::subclass::DeviceProviderMetadata> = LazyLock::new(|| {
            gst::subclass::DeviceProviderMetadata::new(
                "videoip Device Provider",
                "Source/Audio/Video/Network",
                "Lists the videoip sources announced on the network (DNS-SD)",
                "The videoip developers",
            )
        });
        Some(&*METADATA)
    }

    fn probe(&self) -> Vec<gst::Device> {
        if lock(&self.browser).is_some() {
            return lock(&self.devices)
                .values()
                .map(|d| d.clone().upcast())
                .collect();
        }
        // Not started: browse for a while and list what answered.
        let browser = match Browser::new(|_| {}) {
            Ok(b) => b,
            Err(e) => {
                gst::warning!(CAT, imp = self, "cannot browse: {e}");
                return Vec::new();
            }
        };
        let end = Instant::now() + PROBE_TIME;
        while Instant::now() < end {
            std::thread::sleep(Duration::from_millis(50));
        }
        let sources = browser.sources();
        drop(browser);
        sources
            .iter()
            .map(|s| super::VideoIpDevice::new(s).upcast())
            .collect()
    }

    fn start(&self) -> Result<(), gst::LoggableError> {
        if lock(&self.browser).is_some() {
            return Ok(());
        }
        let weak = self.obj().downgrade();
        let browser = Browser::new(move |event| {
            if let Some(provider) = weak.upgrade() {
                provider.imp().on_event(event);
            }
        })
        .map_err(|e| gst::loggable_error!(CAT, "cannot browse for videoip sources: {}", e))?;
        *lock(&self.browser) = Some(browser);
        // Sources answer within about a second: wait for them, so that a monitor that lists
        // its devices right after starting (gst-device-monitor-1.0 without -f) shows them.
        // They are added (device_add) as they answer, meanwhile and after.
        std::thread::sleep(START_TIME);
        Ok(())
    }

    fn stop(&self) {
        let browser = lock(&self.browser).take();
        drop(browser);
        let devices: Vec<_> = lock(&self.devices).drain().map(|(_, d)| d).collect();
        for d in devices {
            self.obj().device_remove(&d);
        }
    }
}

impl VideoIpDeviceProvider {
    fn on_event(&self, event: Event) {
        match event {
            Event::Found(s) => {
                gst::debug!(CAT, imp = self, "found {}", s.display_name());
                let device = super::VideoIpDevice::new(&s);
                let old = lock(&self.devices).insert(s.instance.clone(), device.clone());
                match old {
                    Some(old) => self.obj().device_changed(&device, &old),
                    None => self.obj().device_add(&device),
                }
            }
            Event::Updated(s) => {
                gst::debug!(CAT, imp = self, "updated {}", s.display_name());
                let device = super::VideoIpDevice::new(&s);
                let old = lock(&self.devices).insert(s.instance.clone(), device.clone());
                match old {
                    Some(old) => self.obj().device_changed(&device, &old),
                    None => self.obj().device_add(&device),
                }
            }
            Event::Lost(s) => {
                gst::debug!(CAT, imp = self, "lost {}", s.display_name());
                let old = lock(&self.devices).remove(&s.instance);
                if let Some(old) = old {
                    self.obj().device_remove(&old);
                }
            }
        }
    }
}

#[derive(Default)]
pub struct VideoIpDevice {
    source: OnceLock<Source>,
}

#[glib::object_subclass]
impl ObjectSubclass for VideoIpDevice {
    const NAME: &'static str = "GstVideoIpDevice";
    type Type = super::VideoIpDevice;
    type ParentType = gst::Device;
}

impl ObjectImpl for VideoIpDevice {}

impl GstObjectImpl for VideoIpDevice {}

impl DeviceImpl for VideoIpDevice {
    fn create_element(&self, name: Option<&str>) -> Result<gst::Element, gst::LoggableError> {
        let s = self
            .source
            .get()
            .ok_or_else(|| gst::loggable_error!(CAT, "device without a source"))?;
        let (address, port) = s.receive_at().ok_or_else(|| {
            gst::loggable_error!(CAT, "source {} does not say how to receive it", s.name)
        })?;
        let element = gst::ElementFactory::make("videoipsrc")
            .name_if_some(name)
            .build()
            .map_err(|e| gst::loggable_error!(CAT, "cannot make a videoipsrc: {}", e))?;
        // A protected source: its key length, so the application sets only the passphrase
        // (`videoip.auth` on the device says one is needed).
        if let (Some(len), Some(_)) = (s.txt.auth, element.find_property("pbkeylen")) {
            element.set_property("pbkeylen", len);
        }
        match s.txt.mode {
            Some(Mode::Multicast(_)) => {
                element.set_property("address", address.to_string());
                element.set_property("port", i32::from(port));
            }
            _ => {
                // Subscribing needs a videoipsrc that can ask a sender (sender-address and
                // sender-port); without them there is no way to receive a unicast source.
                if element.find_property("sender-address").is_none()
                    || element.find_property("sender-port").is_none()
                {
                    return Err(gst::loggable_error!(
                        CAT,
                        "source {} is received by subscribing, which this videoipsrc cannot do (no sender-address property)",
                        s.name
                    ));
                }
                element.set_property("sender-address", address.to_string());
                element.set_property("sender-port", i32::from(port));
            }
        }
        Ok(element)
    }
}

/// Caps from what the TXT record says: the media type with size, rate and format where
/// given; ANY when the media type is unknown.
fn caps_of(s: &Source) -> gst::Caps {
    let t = &s.txt;
    let Some(media) = t.media.as_deref() else {
        return gst::Caps::new_any();
    };
    // A media type from the network: only a plain `type/subtype` is used.
    let plain = media.split_once('/').is_some_and(|(a, b)| {
        !a.is_empty()
            && !b.is_empty()
            && media
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "/-+._".contains(c))
    });
    if !plain {
        return gst::Caps::new_any();
    }
    let int = |v: Option<u32>| v.and_then(|v| i32::try_from(v).ok());
    let mut b = gst::Structure::builder(media);
    if let Some(f) = t.format.as_deref() {
        b = b.field("format", f);
    }
    if let Some(w) = int(t.width) {
        b = b.field("width", w);
    }
    if let Some(h) = int(t.height) {
        b = b.field("height", h);
    }
    if let Some((n, d)) = t.framerate {
        if let (Ok(n), Ok(d)) = (i32::try_from(n), i32::try_from(d)) {
            b = b.field("framerate", gst::Fraction::new(n, d));
        }
    }
    if let Some(r) = int(t.rate) {
        b = b.field("rate", r);
    }
    if let Some(c) = int(t.channels) {
        b = b.field("channels", c);
    }
    gst::Caps::builder_full().structure(b.build()).build()
}

impl super::VideoIpDevice {
    fn new(s: &Source) -> super::VideoIpDevice {
        let class = match s.txt.media.as_deref() {
            Some(m) if m.starts_with("video/") || m.starts_with("image/") => "Source/Video/Network",
            Some(m) if m.starts_with("audio/") => "Source/Audio/Network",
            _ => "Source/Network",
        };
        let mut props = gst::Structure::builder("videoip-device")
            .field("device.api", "videoip")
            .field("videoip.source-name", s.name.as_str())
            .field("videoip.instance", s.instance.as_str())
            .field("videoip.host", s.host.as_str())
            .field("videoip.port", i32::from(s.port));
        if let Some(a) = s.addresses.first() {
            props = props.field("videoip.address", a.to_string());
        }
        if let Some(id) = s.txt.session {
            props = props.field("videoip.session", format!("{id:016x}"));
        }
        if let Some(len) = s.txt.auth {
            props = props.field("videoip.auth", format!("aes{}", len * 8));
        }
        match s.txt.mode {
            Some(Mode::Subscribe) => props = props.field("videoip.mode", "subscribe"),
            Some(Mode::Multicast(g)) => {
                props = props
                    .field("videoip.mode", "multicast")
                    .field("videoip.group", g.to_string());
                if let Some(p) = s.txt.port {
                    props = props.field("videoip.group-port", i32::from(p));
                }
            }
            None => {}
        }
        let device: super::VideoIpDevice = glib::Object::builder()
            .property("caps", caps_of(s))
            .property("display-name", s.display_name())
            .property("device-class", class)
            .property("properties", props.build())
            .build();
        let _ = device.imp().source.set(s.clone());
        device
    }
}
