// SPDX-License-Identifier: MPL-2.0
//! The track table (PROTOCOL §5.12): which tracks a session carries, of what kind, under
//! which names. A sender sends it as a TRACKS datagram on the [`CONTROL_TRACK`]; a receiver
//! learns from it every track of the session (and that there are no others) before their
//! stream info comes, and which track is a lower-resolution variant of which.
//!
//! Entry (8 bytes, then the name): track id u16, kind u8, name length u8, variant of u16
//! ([`NO_VARIANT`] when none), reserved u16 (sent 0, ignored), name bytes.

use super::Tracks;

/// The track of session-wide messages (CHALLENGE, TRACKS): its own sequence, no media.
pub const CONTROL_TRACK: u16 = 0xFFFF;
/// Most tracks one session's table lists.
pub const MAX_TRACKS: usize = 32;
/// Longest track name in bytes.
pub const MAX_NAME_LEN: usize = 32;
/// "Variant of" when the track is nobody's variant.
pub const NO_VARIANT: u16 = 0xFFFF;
const ENTRY_LEN: usize = 8;

/// What a track carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum TrackKind {
    /// 0: video (raw or compressed).
    #[default]
    Video,
    /// 1: audio.
    Audio,
    /// 2: timed metadata (captions, KLV, ONVIF XML, text).
    Metadata,
    /// 3: any other timed data.
    Data,
    /// A kind this implementation does not know (kept, not acted on).
    Unknown(u8),
}

impl TrackKind {
    /// From the entry's kind byte.
    pub fn from_u8(v: u8) -> Self {
        match v {
            0 => Self::Video,
            1 => Self::Audio,
            2 => Self::Metadata,
            3 => Self::Data,
            other => Self::Unknown(other),
        }
    }

    /// The entry's kind byte.
    pub fn to_u8(self) -> u8 {
        match self {
            Self::Video => 0,
            Self::Audio => 1,
            Self::Metadata => 2,
            Self::Data => 3,
            Self::Unknown(v) => v,
        }
    }
}

/// One track of a session.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TrackEntry {
    /// Its track id (the common header's), never [`CONTROL_TRACK`].
    pub id: u16,
    /// What it carries.
    pub kind: TrackKind,
    /// The track this one is a lower-resolution variant (a proxy) of.
    pub variant_of: Option<u16>,
    /// Its name: 1 to [`MAX_NAME_LEN`] bytes of ASCII letters, digits, `_` and `-` (the
    /// sender's pad name, for example `video_0`, `audio_0`).
    pub name: String,
}

/// True when `name` is a valid track name.
pub fn valid_name(name: &str) -> bool {
    (1..=MAX_NAME_LEN).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// The TRACKS body and payload for `entries`, or why they are not a valid table.
pub fn encode(generation: u16, entries: &[TrackEntry]) -> Result<(Tracks, Vec<u8>), &'static str> {
    if entries.len() > MAX_TRACKS {
        return Err("more tracks than a table lists");
    }
    let mut payload = Vec::with_capacity(entries.len() * (ENTRY_LEN + 8));
    for e in entries {
        if !valid_name(&e.name) {
            return Err("track name not 1 to 32 letters, digits, '_' or '-'");
        }
        payload.extend_from_slice(&e.id.to_be_bytes());
        payload.push(e.kind.to_u8());
        payload.push(e.name.len() as u8);
        payload.extend_from_slice(&e.variant_of.unwrap_or(NO_VARIANT).to_be_bytes());
        payload.extend_from_slice(&[0, 0]);
        payload.extend_from_slice(e.name.as_bytes());
    }
    let body = Tracks {
        generation,
        count: entries.len() as u16,
    };
    validate(&body, &payload)?;
    Ok((body, payload))
}

/// The entries of a TRACKS payload (a datagram that `protocol::decode` accepted has valid
/// ones).
pub fn decode(payload: &[u8]) -> Result<Vec<TrackEntry>, &'static str> {
    let mut out = Vec::new();
    let mut rest = payload;
    while !rest.is_empty() {
        if rest.len() < ENTRY_LEN {
            return Err("track entry cut short");
        }
        let name_len = usize::from(rest[3]);
        let name = rest
            .get(ENTRY_LEN..ENTRY_LEN + name_len)
            .ok_or("track name cut short")?;
        let name = std::str::from_utf8(name).map_err(|_| "track name not UTF-8")?;
        let variant = u16::from_be_bytes([rest[4], rest[5]]);
        out.push(TrackEntry {
            id: u16::from_be_bytes([rest[0], rest[1]]),
            kind: TrackKind::from_u8(rest[2]),
            variant_of: (variant != NO_VARIANT).then_some(variant),
            name: name.to_string(),
        });
        if out.len() > MAX_TRACKS {
            return Err("more tracks than a table lists");
        }
        rest = &rest[ENTRY_LEN + name_len..];
    }
    Ok(out)
}

/// Checks a TRACKS datagram: its entries parse to the payload's end, as many as the body
/// says (at most [`MAX_TRACKS`]), with valid distinct names and distinct ids other than
/// [`CONTROL_TRACK`], and every "variant of" names another listed track.
pub(super) fn validate(t: &Tracks, payload: &[u8]) -> Result<(), &'static str> {
    let entries = decode(payload)?;
    if entries.len() != usize::from(t.count) {
        return Err("track count differs from the entries");
    }
    for (i, e) in entries.iter().enumerate() {
        if e.id == CONTROL_TRACK {
            return Err("the control track listed as a track");
        }
        if !valid_name(&e.name) {
            return Err("track name not 1 to 32 letters, digits, '_' or '-'");
        }
        if entries[..i]
            .iter()
            .any(|o| o.id == e.id || o.name == e.name)
        {
            return Err("track id or name listed twice");
        }
        if let Some(v) = e.variant_of {
            if v == e.id || !entries.iter().any(|o| o.id == v) {
                return Err("variant of a track not listed");
            }
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "tracks_tests.rs"]
mod tests;
