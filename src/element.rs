// SPDX-License-Identifier: MPL-2.0
//! Small pieces both elements' glue uses: lock handling, property values and pad templates.

use gst::glib;
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
