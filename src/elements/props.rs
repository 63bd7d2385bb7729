// SPDX-License-Identifier: MPL-2.0
//! The property specs both elements have, built in one place: the same name, type, range
//! and flags on both, each element giving its own blurb (and default, where they differ).

use gst::glib;
use gst::prelude::*;

/// `port`: a UDP port, 0 to 65535.
pub(crate) fn port(blurb: &str, default: u32) -> glib::ParamSpec {
    glib::ParamSpecInt::builder("port")
        .nick("Port")
        .blurb(blurb)
        .minimum(0)
        .maximum(65535)
        .default_value(default.min(65535) as i32)
        .mutable_ready()
        .build()
}

/// `source-name`: the name a stream is announced under, or looked for.
pub(crate) fn source_name(blurb: &str) -> glib::ParamSpec {
    glib::ParamSpecString::builder("source-name")
        .nick("Source Name")
        .blurb(blurb)
        .mutable_ready()
        .build()
}

/// `multicast-iface`: a network interface by name.
pub(crate) fn multicast_iface(blurb: &str) -> glib::ParamSpec {
    glib::ParamSpecString::builder("multicast-iface")
        .nick("Multicast Interface")
        .blurb(blurb)
        .mutable_ready()
        .build()
}

/// `buffer-size`: a kernel socket buffer in bytes, 0 for the system's default.
pub(crate) fn buffer_size(nick: &str, blurb: &str, default: u32) -> glib::ParamSpec {
    glib::ParamSpecInt::builder("buffer-size")
        .nick(nick)
        .blurb(blurb)
        .minimum(0)
        .maximum(i32::MAX)
        .default_value(default.min(i32::MAX as u32) as i32)
        .mutable_ready()
        .build()
}

/// `batch-size`: datagrams per system call, 1 to 1024.
pub(crate) fn batch_size(blurb: &str, default: u32) -> glib::ParamSpec {
    glib::ParamSpecUInt::builder("batch-size")
        .nick("Batch Size")
        .blurb(blurb)
        .minimum(1)
        .maximum(1024)
        .default_value(default)
        .mutable_ready()
        .build()
}

/// `stats`: the read-only statistics structure.
pub(crate) fn stats(blurb: &str) -> glib::ParamSpec {
    glib::ParamSpecBoxed::builder::<gst::Structure>("stats")
        .nick("Statistics")
        .blurb(blurb)
        .read_only()
        .build()
}

/// `passphrase`: the key of packet protection (empty: none), as srtsink/srtsrc's. Written
/// only: reading it back would leak it (gst-inspect, debug logs of properties).
pub(crate) fn passphrase(blurb: &str) -> glib::ParamSpec {
    glib::ParamSpecString::builder("passphrase")
        .nick("Passphrase")
        .blurb(blurb)
        .write_only()
        .mutable_ready()
        .build()
}

/// A `passphrase` value as set (None, or not a string: empty, no passphrase).
pub(crate) fn passphrase_value(value: &glib::Value) -> String {
    value
        .get::<Option<String>>()
        .ok()
        .flatten()
        .unwrap_or_default()
}

/// `pbkeylen`: AES key length in bytes with a passphrase, 16 or 32, as srtsink/srtsrc's.
pub(crate) fn pbkeylen(blurb: &str) -> glib::ParamSpec {
    glib::ParamSpecUInt::builder("pbkeylen")
        .nick("Key Length")
        .blurb(blurb)
        .minimum(16)
        .maximum(32)
        .default_value(16)
        .mutable_ready()
        .build()
}

/// The key of `passphrase` and `pbkeylen` (None without a passphrase), or the error that
/// names what to change. Slow (PBKDF2), once per start and passphrase.
pub(crate) fn master_key(
    passphrase: &str,
    pbkeylen: u32,
) -> Result<Option<std::sync::Arc<crate::crypto::MasterKey>>, gst::ErrorMessage> {
    if passphrase.is_empty() {
        return Ok(None);
    }
    let len = crate::crypto::KeyLength::try_from(pbkeylen).map_err(|_| {
        gst::error_msg!(
            gst::ResourceError::Settings,
            [
                "pbkeylen={} is not a key length: set 16 (AES-128) or 32 (AES-256)",
                pbkeylen
            ]
        )
    })?;
    crate::crypto::MasterKey::from_passphrase(passphrase, len)
        .map(Some)
        .map_err(|e| {
            gst::error_msg!(
                gst::ResourceError::Settings,
                ["the passphrase property is unusable: {}", e]
            )
        })
}
