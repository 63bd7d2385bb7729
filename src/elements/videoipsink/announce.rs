// SPDX-License-Identifier: MPL-2.0
//! The sink's DNS-SD announcement (`source-name`): made at start, updated on caps changes,
//! withdrawn at stop. Apart from the send path: only `start`, `set_caps` and `stop` call in.

use crate::discovery::{txt, Announcer, DiscoveryError, Mode, SourceTxt};
use crate::elements::lock;
use std::net::SocketAddr;
use std::sync::Mutex;

/// The announcement, if `source-name` is set. Its lock is taken alone.
#[derive(Default)]
pub(crate) struct Announce {
    inner: Mutex<Option<(Announcer, SourceTxt)>>,
}

/// The TXT fields the caps give: media type, and size, rate and format where they apply.
pub(crate) fn caps_fields(caps: &gst::CapsRef, txt: &mut SourceTxt) {
    let Some(s) = caps.structure(0) else {
        return;
    };
    let uint = |f: &str| s.get::<i32>(f).ok().and_then(|v| u32::try_from(v).ok());
    txt.media = Some(s.name().to_string()).filter(|m| m.len() <= txt::MAX_TOKEN_LEN);
    txt.width = uint("width");
    txt.height = uint("height");
    txt.framerate = s.get::<gst::Fraction>("framerate").ok().and_then(|f| {
        Some((
            u32::try_from(f.numer()).ok()?,
            u32::try_from(f.denom()).ok()?,
        ))
        .filter(|&(_, d)| d != 0)
    });
    txt.format = s
        .get::<&str>("format")
        .ok()
        .map(str::to_string)
        .filter(|f| f.len() <= txt::MAX_TOKEN_LEN);
    txt.rate = uint("rate");
    txt.channels = uint("channels");
}

impl Announce {
    /// Announces `name`: receivers join `dest` when it is a multicast group, else subscribe
    /// at the sink's own port.
    pub(crate) fn start(
        &self,
        name: &str,
        session: u64,
        own_port: u16,
        dest: SocketAddr,
        auth: Option<u32>,
    ) -> Result<(), DiscoveryError> {
        let (mode, port) = if dest.ip().is_multicast() {
            (Mode::Multicast(dest.ip()), dest.port())
        } else {
            (Mode::Subscribe, own_port)
        };
        let txt = SourceTxt {
            version: txt::VERSION,
            name: Some(name.to_string()),
            session: Some(session),
            mode: Some(mode),
            port: Some(port),
            auth,
            ..Default::default()
        };
        let announcer = Announcer::new(own_port, &txt)?;
        *lock(&self.inner) = Some((announcer, txt));
        Ok(())
    }

    /// Announces the new caps, if they change what the TXT record says.
    pub(crate) fn caps(&self, caps: &gst::CapsRef) -> Result<(), DiscoveryError> {
        let mut guard = lock(&self.inner);
        let Some((announcer, txt)) = guard.as_mut() else {
            return Ok(());
        };
        let mut new = txt.clone();
        caps_fields(caps, &mut new);
        if new == *txt {
            return Ok(());
        }
        *txt = new;
        announcer.update(txt)
    }

    /// The DNS-SD instance announced, if any.
    pub(crate) fn instance(&self) -> Option<String> {
        lock(&self.inner)
            .as_ref()
            .map(|(a, _)| a.instance().to_string())
    }

    /// Withdraws the announcement (goodbye packets).
    pub(crate) fn stop(&self) {
        let old = lock(&self.inner).take();
        drop(old);
    }
}
