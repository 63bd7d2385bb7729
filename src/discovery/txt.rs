// SPDX-License-Identifier: MPL-2.0
//! The TXT record of a videoip DNS-SD service: what a chooser needs without connecting, and
//! how to receive. Encoding and decoding are pure functions; decoding takes whatever the
//! network sends and never panics: a record that is not a videoip one is an error, a field
//! that is missing, too long or does not parse is left out (a partial record).
//!
//! | key | value |
//! |-----|-------|
//! | `v` | protocol version (`2`); required |
//! | `name` | the source name as the user set it (the instance name may be shortened) |
//! | `session` | the sender's session id, 16 hex digits |
//! | `media` | the caps' media type, e.g. `video/x-raw` |
//! | `width`, `height` | video size in pixels |
//! | `framerate` | `N/D` |
//! | `format` | raw video or audio format, e.g. `UYVY`, `S16LE` |
//! | `rate`, `channels` | audio |
//! | `mode` | `subscribe` (ask the sender at its address and `port`) or `multicast` (join `group`:`port`) |
//! | `group` | the multicast group (mode `multicast`) |
//! | `auth` | `aes128` or `aes256`: the stream is protected; receivers need the passphrase |
//! | `port` | the port to subscribe at (the sender's own) or the group's port |

use std::fmt;
use std::net::IpAddr;

/// The protocol version announced.
pub const VERSION: u8 = crate::protocol::VERSION;
/// Longest source name carried, in bytes (a TXT string holds 255 bytes with its key).
pub const MAX_NAME_LEN: usize = 240;
/// Longest media type or format carried, in bytes.
pub const MAX_TOKEN_LEN: usize = 64;
/// Most key/value pairs looked at when decoding.
pub const MAX_PAIRS: usize = 64;
/// Longest number accepted, in characters.
const MAX_NUMBER_LEN: usize = 20;

/// How a receiver gets the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Subscribe at the sender's address and port, which then sends by unicast.
    Subscribe,
    /// Join this group; the sender sends there whoever listens.
    Multicast(IpAddr),
}

/// What a source's TXT record says. Every field but the version may be missing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceTxt {
    /// Protocol version.
    pub version: u8,
    /// The source name.
    pub name: Option<String>,
    /// The sender's session id.
    pub session: Option<u64>,
    /// Media type of the caps, e.g. `video/x-raw`.
    pub media: Option<String>,
    /// Video width in pixels.
    pub width: Option<u32>,
    /// Video height in pixels.
    pub height: Option<u32>,
    /// Frame rate as numerator and denominator.
    pub framerate: Option<(u32, u32)>,
    /// Raw video or audio format.
    pub format: Option<String>,
    /// Audio sample rate.
    pub rate: Option<u32>,
    /// Audio channels.
    pub channels: Option<u32>,
    /// How to receive.
    pub mode: Option<Mode>,
    /// Port to subscribe at (mode subscribe) or of the group (mode multicast).
    pub port: Option<u16>,
    /// With a passphrase: the AES key length in bytes (16 or 32); receivers need the
    /// passphrase to play the source.
    pub auth: Option<u32>,
}

/// Why a TXT record is not a videoip record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxtError {
    /// No `v` key, or one that is not a number.
    NoVersion,
    /// A version this code does not speak.
    Version(u32),
}

impl fmt::Display for TxtError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TxtError::NoVersion => f.write_str("no protocol version in the TXT record"),
            TxtError::Version(v) => write!(f, "protocol version {v} is not supported"),
        }
    }
}

impl std::error::Error for TxtError {}

/// Cuts `s` to at most `max` bytes at a character boundary.
pub fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// The TXT key/value pairs for `txt`, in a fixed order. Strings over their bound are cut
/// (the name) or left out (tokens).
pub fn encode(txt: &SourceTxt) -> Vec<(String, String)> {
    let mut out = vec![("v".to_string(), txt.version.to_string())];
    let mut put = |k: &str, v: Option<String>| {
        if let Some(v) = v {
            out.push((k.to_string(), v));
        }
    };
    put(
        "name",
        txt.name
            .as_deref()
            .map(|n| truncate(n, MAX_NAME_LEN).into()),
    );
    put("session", txt.session.map(|s| format!("{s:016x}")));
    let token = |t: &Option<String>| t.clone().filter(|t| t.len() <= MAX_TOKEN_LEN);
    put("media", token(&txt.media));
    put("width", txt.width.map(|v| v.to_string()));
    put("height", txt.height.map(|v| v.to_string()));
    put("framerate", txt.framerate.map(|(n, d)| format!("{n}/{d}")));
    put("format", token(&txt.format));
    put("rate", txt.rate.map(|v| v.to_string()));
    put("channels", txt.channels.map(|v| v.to_string()));
    match txt.mode {
        Some(Mode::Subscribe) => put("mode", Some("subscribe".into())),
        Some(Mode::Multicast(group)) => {
            put("mode", Some("multicast".into()));
            put("group", Some(group.to_string()));
        }
        None => {}
    }
    put("port", txt.port.map(|v| v.to_string()));
    put("auth", txt.auth.map(|v| format!("aes{}", v * 8)));
    out
}

fn number<T: std::str::FromStr>(v: &str) -> Option<T> {
    (v.len() <= MAX_NUMBER_LEN && !v.starts_with('+'))
        .then(|| v.parse().ok())
        .flatten()
}

/// Decodes TXT key/value pairs as received (keys compared without case, as DNS-SD says; a
/// key given twice counts the first time; values need not be UTF-8). Fails only when the
/// record has no usable version; anything else that is wrong is left out.
pub fn decode<'a, I>(pairs: I) -> Result<SourceTxt, TxtError>
where
    I: IntoIterator<Item = (&'a str, Option<&'a [u8]>)>,
{
    let mut version = None;
    let mut txt = SourceTxt::default();
    let mut mode = None;
    let mut group = None;
    let mut seen: Vec<String> = Vec::new();
    for (key, value) in pairs.into_iter().take(MAX_PAIRS) {
        if key.len() > 16 {
            continue;
        }
        let key = key.to_ascii_lowercase();
        if seen.contains(&key) {
            continue;
        }
        seen.push(key.clone());
        let Some(Ok(v)) = value.map(std::str::from_utf8) else {
            continue;
        };
        let small = |max: usize| (v.len() <= max && !v.is_empty()).then(|| v.to_string());
        match key.as_str() {
            "v" => version = Some(number::<u32>(v).ok_or(TxtError::NoVersion)?),
            "name" => txt.name = small(MAX_NAME_LEN).filter(|n| !n.trim().is_empty()),
            "session" => {
                txt.session = (v.len() <= 16)
                    .then(|| u64::from_str_radix(v, 16).ok())
                    .flatten()
            }
            "media" => txt.media = small(MAX_TOKEN_LEN),
            "width" => txt.width = number(v),
            "height" => txt.height = number(v),
            "framerate" => {
                txt.framerate = v
                    .split_once('/')
                    .and_then(|(n, d)| Some((number(n)?, number(d)?)))
                    .filter(|&(_, d)| d != 0)
            }
            "format" => txt.format = small(MAX_TOKEN_LEN),
            "rate" => txt.rate = number(v),
            "channels" => txt.channels = number(v),
            "mode" => mode = Some(v.to_string()).filter(|m| m.len() <= 16),
            "group" => group = (v.len() <= 64).then(|| v.parse::<IpAddr>().ok()).flatten(),
            "port" => txt.port = number::<u16>(v).filter(|&p| p != 0),
            "auth" => {
                txt.auth = match v {
                    "aes128" => Some(16),
                    "aes256" => Some(32),
                    _ => None,
                }
            }
            _ => {}
        }
    }
    let version = version.ok_or(TxtError::NoVersion)?;
    if version != u32::from(VERSION) {
        return Err(TxtError::Version(version));
    }
    txt.version = VERSION;
    txt.mode = match (mode.as_deref(), group) {
        (Some("subscribe"), _) => Some(Mode::Subscribe),
        (Some("multicast"), Some(g)) if g.is_multicast() => Some(Mode::Multicast(g)),
        _ => None,
    };
    Ok(txt)
}

#[cfg(test)]
#[path = "txt_tests.rs"]
mod tests;
