// SPDX-License-Identifier: MPL-2.0
//! The GStreamer elements: glue between GStreamer and the sessions in [`crate::send`] and
//! [`crate::receive`]. One folder per element; this file holds the small pieces they share
//! (lock handling, property values, pad templates, URI parameters).

pub mod deviceprovider;
pub(crate) mod props;
pub mod uri;
pub mod videoipsink;
pub mod videoipsinkbin;
pub mod videoipsrc;
pub mod videoipsrcbin;

use gst::glib;
use gst::prelude::*;
use std::sync::{Mutex, MutexGuard};

/// Locks `m`, recovering the data if another thread panicked while holding it (the
/// settings and counters it guards stay usable; a panic must not take the pipeline down).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A string property's value, None when unset, empty or blank.
pub(crate) fn opt_string(v: &glib::Value) -> Option<String> {
    v.get::<Option<String>>()
        .ok()
        .flatten()
        .filter(|s| !s.trim().is_empty())
}

/// The one always-present pad, of ANY caps, that each element has.
pub(crate) fn any_pad_template(name: &str, direction: gst::PadDirection) -> Vec<gst::PadTemplate> {
    gst::PadTemplate::new(
        name,
        direction,
        gst::PadPresence::Always,
        &gst::Caps::new_any(),
    )
    .map(|t| vec![t])
    .unwrap_or_default()
}

/// Sets the properties a `videoip://` URI's query names on `obj`, each value parsed as
/// gst-launch would parse it. Refuses (naming the parameter) an unknown or read-only
/// property and a value that does not parse, before setting any.
pub(crate) fn apply_uri_params(
    obj: &impl IsA<glib::Object>,
    params: &[(String, String)],
) -> Result<(), glib::Error> {
    use gst::prelude::GstValueExt;
    let bad = |why: String| glib::Error::new(gst::URIError::BadUri, &why);
    let mut values = Vec::with_capacity(params.len());
    for (name, text) in params {
        let pspec = obj
            .find_property(name)
            .filter(|p| {
                p.flags().contains(glib::ParamFlags::WRITABLE)
                    && !p.flags().contains(glib::ParamFlags::CONSTRUCT_ONLY)
            })
            .ok_or_else(|| {
                bad(format!(
                    "the URI sets '{name}', which is no writable property"
                ))
            })?;
        let value = glib::Value::deserialize_with_pspec(text, &pspec).map_err(|_| {
            bad(format!(
                "the URI sets '{name}' to '{text}', which is no valid {}",
                pspec.value_type().name()
            ))
        })?;
        values.push((name.as_str(), value));
    }
    for (name, value) in values {
        obj.set_property_from_value(name, &value);
    }
    Ok(())
}

/// The error for a URI change while the element is past READY (its socket is open).
pub(crate) fn uri_while_running() -> glib::Error {
    glib::Error::new(
        gst::URIError::BadState,
        "the URI can only be changed in the NULL or READY state",
    )
}
