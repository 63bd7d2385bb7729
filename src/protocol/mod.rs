// SPDX-License-Identifier: MPL-2.0
//! The videoip wire format, version 2, as specified in `docs/PROTOCOL.md`.
//!
//! Every datagram is a 20-byte [`CommonHeader`], an extension area of TLVs
//! ([`Extensions`]), the fixed body of its packet type ([`Body`]), the payload, and, when
//! flag A is set, an authentication tag. This module only encodes and decodes bytes: no I/O,
//! no GStreamer. [`decode`] never panics on untrusted input; it returns a [`DecodeError`].
//!
//! ```
//! use gstvideoip::protocol::{self, Body, CommonHeader, Media, MEDIA_HEADER_LEN};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//!
//! // The second 1408-byte fragment of a 10,000-byte frame.
//! let header = CommonHeader { session: 0x1234, seq: 7, ..Default::default() };
//! let body = Body::Media(Media { frame_len: 10_000, frag_size: 1408, offset: 1408, ..Default::default() });
//! let mut datagram = Vec::new();
//! protocol::encode(&header, &[], &body, &mut datagram)?;
//! assert_eq!(datagram.len(), MEDIA_HEADER_LEN);
//! datagram.extend_from_slice(&[0xAB; 1408]);
//!
//! let packet = protocol::decode(&datagram)?;
//! assert_eq!(packet.header, header);
//! assert_eq!(packet.body, body);
//! assert_eq!(packet.payload.len(), 1408);
//! // Bytes that are not videoip are an error, never a panic.
//! assert!(protocol::decode(b"hello").is_err());
//! # Ok(())
//! # }
//! ```

mod body;
mod caps;
pub mod fec;
pub mod tracks;

pub use body::{
    fec_scheme, reference_clock, tally, Body, Challenge, EndOfStream, Fec, KeyframeRequest, Media,
    Metadata, Nack, ReceiverReport, SenderReport, StreamInfo, Subscribe, Tally, Tracks, NO_DELAY,
};
use body::{Reader, Writer};
pub use caps::{
    check_caps_bytes, check_caps_text, MAX_CAPS_BRACKETS, MAX_CAPS_DEPTH, MAX_CAPS_SQUARE_DEPTH,
};
use std::fmt;

/// The two bytes every videoip datagram starts with: ASCII `"VI"`.
pub const MAGIC: u16 = 0x5649;
/// The protocol version this module speaks.
pub const VERSION: u8 = 2;
/// Size of the common header in bytes.
pub const COMMON_LEN: usize = 20;
/// Size of a media datagram's headers (common header and media body, no extensions).
pub const MEDIA_HEADER_LEN: usize = COMMON_LEN + 44;
/// Size of a stream info datagram's headers (no extensions).
pub const INFO_HEADER_LEN: usize = COMMON_LEN + 20;
/// Size of an end-of-stream datagram (no extensions, no payload).
pub const EOS_HEADER_LEN: usize = COMMON_LEN + 4;
/// Size of an FEC datagram's headers (common header and FEC body, no extensions).
pub const FEC_HEADER_LEN: usize = COMMON_LEN + 16;
/// Most fragments one frame may have; receivers reject frames that claim more.
pub const MAX_FRAGMENTS: u32 = 1 << 20;
/// Longest caps string a stream info may announce; receivers refuse longer ones.
pub const MAX_CAPS_LEN: usize = 65_536;
/// Timestamp value meaning "no timestamp" (`GST_CLOCK_TIME_NONE`).
pub const TIME_NONE: u64 = u64::MAX;

/// Bits of the common header's flags byte.
pub mod header_flags {
    /// R: a retransmission, carrying its original's sequence number.
    pub const RETRANSMISSION: u8 = 1 << 0;
    /// A: an authentication tag ends the datagram (described by the AUTH extension).
    pub const AUTH_TAG: u8 = 1 << 1;
}

/// Frame flags carried in the media body (mirroring `GstBufferFlags`).
pub mod flags {
    /// The frame is not a key frame (`GST_BUFFER_FLAG_DELTA_UNIT`).
    pub const DELTA_UNIT: u16 = 1 << 0;
    /// The frame follows a discontinuity at the sender (`GST_BUFFER_FLAG_DISCONT`).
    pub const DISCONT: u16 = 1 << 1;
    /// The frame is stream header data (`GST_BUFFER_FLAG_HEADER`).
    pub const HEADER: u16 = 1 << 2;
    /// The frame is a gap (`GST_BUFFER_FLAG_GAP`).
    pub const GAP: u16 = 1 << 3;
    /// The frame may be dropped (`GST_BUFFER_FLAG_DROPPABLE`).
    pub const DROPPABLE: u16 = 1 << 4;
    /// The frame carries a marker (`GST_BUFFER_FLAG_MARKER`).
    pub const MARKER: u16 = 1 << 5;
    /// All flags defined; other bits must be zero and are ignored.
    pub const ALL: u16 = DELTA_UNIT | DISCONT | HEADER | GAP | DROPPABLE | MARKER;
}

/// Extension types (`docs/PROTOCOL.md` §4).
pub mod ext {
    /// Types with this bit set must be understood: a receiver that does not know one drops
    /// the datagram.
    pub const MUST_UNDERSTAND: u16 = 0x8000;
    /// Padding: no meaning, skipped without being counted.
    pub const PAD: u16 = 0x0000;
    /// AUTH: describes the authentication tag (see [`super::Auth`]).
    pub const AUTH: u16 = 0x8001;
    /// COOKIE: a return-routability cookie a CHALLENGE gave, echoed (ignorable).
    pub const COOKIE: u16 = 0x0002;
}

/// Packet types. 0x00–0x7F are defined by the specification, 0x80–0xFF are private or
/// experimental; a type this implementation does not know is [`PacketType::Unknown`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PacketType {
    /// 0x00: a fragment of a media frame.
    Media,
    /// 0x01: a piece of the stream's caps.
    StreamInfo,
    /// 0x02: the stream has ended.
    EndOfStream,
    /// 0x03: sender report (timing and counts).
    SenderReport,
    /// 0x04: receiver report, receiver → sender.
    ReceiverReport,
    /// 0x05: retransmission request, receiver → sender.
    Nack,
    /// 0x06: forward error correction repair symbol.
    Fec,
    /// 0x07: subscription, receiver → sender.
    Subscribe,
    /// 0x08: key frame request, receiver → sender.
    KeyframeRequest,
    /// 0x09: tally state.
    Tally,
    /// 0x0A: timed text metadata.
    Metadata,
    /// 0x0B: return-routability cookie, sender → receiver.
    Challenge,
    /// 0x0C: the session's track table, sender → receivers.
    Tracks,
    /// Any other value.
    Unknown(u8),
}

impl PacketType {
    /// The type of a packet type byte.
    pub fn from_u8(v: u8) -> Self {
        match v {
            0x00 => Self::Media,
            0x01 => Self::StreamInfo,
            0x02 => Self::EndOfStream,
            0x03 => Self::SenderReport,
            0x04 => Self::ReceiverReport,
            0x05 => Self::Nack,
            0x06 => Self::Fec,
            0x07 => Self::Subscribe,
            0x08 => Self::KeyframeRequest,
            0x09 => Self::Tally,
            0x0A => Self::Metadata,
            0x0B => Self::Challenge,
            0x0C => Self::Tracks,
            other => Self::Unknown(other),
        }
    }

    /// The packet type byte.
    pub fn to_u8(self) -> u8 {
        match self {
            Self::Media => 0x00,
            Self::StreamInfo => 0x01,
            Self::EndOfStream => 0x02,
            Self::SenderReport => 0x03,
            Self::ReceiverReport => 0x04,
            Self::Nack => 0x05,
            Self::Fec => 0x06,
            Self::Subscribe => 0x07,
            Self::KeyframeRequest => 0x08,
            Self::Tally => 0x09,
            Self::Metadata => 0x0A,
            Self::Challenge => 0x0B,
            Self::Tracks => 0x0C,
            Self::Unknown(v) => v,
        }
    }

    /// Length of the type's fixed body in bytes (0 for unknown types).
    pub fn body_len(self) -> usize {
        match self {
            Self::Media => 44,
            Self::StreamInfo => 20,
            Self::EndOfStream => 4,
            Self::SenderReport => 36,
            Self::ReceiverReport => 48,
            Self::Nack | Self::KeyframeRequest | Self::Tally | Self::Metadata => 12,
            Self::Challenge => 12,
            Self::Tracks => 8,
            Self::Fec | Self::Subscribe => 16,
            Self::Unknown(_) => 0,
        }
    }
}

/// The fields of the common header that are not derived from the rest of the datagram
/// (magic, version, packet type and extension length are).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CommonHeader {
    /// See [`header_flags`]; bits 2–7 are sent 0 and ignored.
    pub flags: u8,
    /// Track within the session ([`tracks::CONTROL_TRACK`] for session-wide messages).
    pub track: u16,
    /// Session id: ≥ 64 random bits per sender run (a receiver's own id in its messages).
    pub session: u64,
    /// Per (session, track) datagram counter, wrapping.
    pub seq: u32,
}

/// The AUTH extension (0x8001): how to find and check the authentication tag.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Auth {
    /// Key epoch.
    pub epoch: u32,
    /// Algorithm; 1 is reserved for an AEAD tag over everything before the tag.
    pub algorithm: u8,
    /// Tag length in bytes, at the end of the datagram.
    pub tag_len: u8,
}

/// Length of the AUTH extension's value in bytes.
pub const AUTH_VALUE_LEN: usize = 8;
/// Longest cookie a CHALLENGE may carry (and a COOKIE extension echo).
pub const MAX_COOKIE_LEN: usize = 64;

/// An extension to encode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Extension<'a> {
    /// The AUTH extension.
    Auth(Auth),
    /// Any other extension, by type and value (padded with zeros on the wire).
    Other {
        /// Extension type.
        kind: u16,
        /// Value bytes.
        value: &'a [u8],
    },
}

/// The decoded extension area of a datagram.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Extensions<'a> {
    /// The raw extension area (a multiple of 4 bytes).
    pub raw: &'a [u8],
    /// The AUTH extension, if present.
    pub auth: Option<Auth>,
    /// The COOKIE extension's value, if present (the first one: later ones are ignored).
    pub cookie: Option<&'a [u8]>,
    /// Ignorable extensions of unknown type that were skipped.
    pub ignored: u16,
}

/// A decoded datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet<'a> {
    /// The common header.
    pub header: CommonHeader,
    /// The extensions.
    pub extensions: Extensions<'a>,
    /// The typed fixed body (which also gives the packet type).
    pub body: Body,
    /// The payload: from the end of the body to the end of the datagram or the tag.
    pub payload: &'a [u8],
    /// The authentication tag (empty unless flag A is set).
    pub tag: &'a [u8],
}

impl Packet<'_> {
    /// The packet type.
    pub fn packet_type(&self) -> PacketType {
        self.body.packet_type()
    }

    /// Encodes the packet again, extensions verbatim; the inverse of [`decode`] up to
    /// reserved bits and fields, which are written as zero.
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        encode_raw(&self.header, self.extensions.raw, &self.body, out)?;
        out.extend_from_slice(self.payload);
        out.extend_from_slice(self.tag);
        Ok(())
    }
}

/// Why a datagram could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// Shorter than its headers (the length is given).
    TooShort(usize),
    /// Does not start with [`MAGIC`].
    BadMagic,
    /// A version this implementation does not speak.
    UnsupportedVersion(u8),
    /// A must-understand extension this implementation does not know.
    UnknownExtension(u16),
    /// Fields that contradict each other or the payload.
    Inconsistent(&'static str),
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::TooShort(n) => {
                write!(f, "datagram of {n} bytes is shorter than its headers")
            }
            DecodeError::BadMagic => write!(f, "not a videoip datagram (bad magic)"),
            DecodeError::UnsupportedVersion(v) => write!(f, "unsupported protocol version {v}"),
            DecodeError::UnknownExtension(t) => {
                write!(f, "unknown must-understand extension {t:#06x}")
            }
            DecodeError::Inconsistent(why) => write!(f, "inconsistent datagram: {why}"),
        }
    }
}

impl std::error::Error for DecodeError {}

/// Why a datagram could not be encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EncodeError {
    /// The extensions take more than 255 words, or one value more than 65,535 bytes.
    ExtensionsTooLong,
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "extensions longer than the header can describe")
    }
}

impl std::error::Error for EncodeError {}

fn pad4(n: usize) -> usize {
    n.div_ceil(4) * 4
}

/// Appends the headers of a datagram (common header, extensions, body) to `out`; the
/// payload, and the tag if flag A is set, are the caller's to append.
pub fn encode(
    header: &CommonHeader,
    extensions: &[Extension<'_>],
    body: &Body,
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    let mut raw = Vec::new();
    for e in extensions {
        let mut w = Writer(&mut raw);
        match e {
            Extension::Auth(a) => {
                w.u16(ext::AUTH).u16(AUTH_VALUE_LEN as u16).u32(a.epoch);
                w.u8(a.algorithm).u8(a.tag_len).zeros(2);
            }
            Extension::Other { kind, value } => {
                let len = u16::try_from(value.len()).map_err(|_| EncodeError::ExtensionsTooLong)?;
                w.u16(*kind).u16(len);
                w.0.extend_from_slice(value);
                w.zeros(pad4(value.len()) - value.len());
            }
        }
    }
    encode_raw(header, &raw, body, out)
}

fn encode_raw(
    header: &CommonHeader,
    ext_raw: &[u8],
    body: &Body,
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    let words = u8::try_from(ext_raw.len() / 4).map_err(|_| EncodeError::ExtensionsTooLong)?;
    let mut w = Writer(out);
    w.u16(MAGIC).u8(VERSION).u8(body.packet_type().to_u8());
    w.u8(header.flags).u8(words).u16(header.track);
    w.u64(header.session).u32(header.seq);
    out.extend_from_slice(ext_raw);
    out.extend(std::iter::repeat_n(
        0u8,
        pad4(ext_raw.len()) - ext_raw.len(),
    ));
    body.write(out);
    Ok(())
}

/// Encodes headers without extensions into an array of `N` bytes (their length for the
/// body's type: [`MEDIA_HEADER_LEN`], [`INFO_HEADER_LEN`], [`EOS_HEADER_LEN`]; a longer
/// array is zero-filled, a shorter one truncated).
pub fn encode_fixed<const N: usize>(header: &CommonHeader, body: &Body) -> [u8; N] {
    let mut v = Vec::with_capacity(COMMON_LEN + body.packet_type().body_len());
    // Cannot fail: there are no extensions.
    let _ = encode_raw(header, &[], body, &mut v);
    let mut out = [0u8; N];
    let n = v.len().min(N);
    out[..n].copy_from_slice(&v[..n]);
    out
}

/// Encodes a media datagram's headers (no extensions): the sender's hot path encodes this
/// once per frame and then only [`patch_seq_offset`]s it.
pub fn encode_media_header(header: &CommonHeader, media: &Media) -> [u8; MEDIA_HEADER_LEN] {
    encode_fixed(header, &Body::Media(*media))
}

/// Rewrites only the sequence number and offset of a header made by
/// [`encode_media_header`], for consecutive fragments that differ in nothing else.
pub fn patch_seq_offset(out: &mut [u8; MEDIA_HEADER_LEN], seq: u32, offset: u32) {
    out[16..20].copy_from_slice(&seq.to_be_bytes());
    out[24..28].copy_from_slice(&offset.to_be_bytes());
}

fn decode_extensions(raw: &[u8]) -> Result<Extensions<'_>, DecodeError> {
    let mut out = Extensions {
        raw,
        auth: None,
        cookie: None,
        ignored: 0,
    };
    let mut rest = raw;
    while !rest.is_empty() {
        if rest.len() < 4 {
            return Err(DecodeError::Inconsistent("truncated extension"));
        }
        let mut r = Reader::new(rest);
        let (kind, len) = (r.u16(), usize::from(r.u16()));
        let value = rest
            .get(4..4 + len)
            .ok_or(DecodeError::Inconsistent("extension runs past its area"))?;
        rest = rest.get(4 + pad4(len)..).unwrap_or(&[]);
        match kind {
            ext::PAD => {}
            ext::AUTH => {
                if len != AUTH_VALUE_LEN || out.auth.is_some() {
                    return Err(DecodeError::Inconsistent("malformed AUTH extension"));
                }
                let mut r = Reader::new(value);
                out.auth = Some(Auth {
                    epoch: r.u32(),
                    algorithm: r.u8(),
                    tag_len: r.u8(),
                });
            }
            ext::COOKIE => {
                if value.is_empty() || value.len() > MAX_COOKIE_LEN {
                    return Err(DecodeError::Inconsistent("malformed COOKIE extension"));
                }
                out.cookie.get_or_insert(value);
            }
            k if k & ext::MUST_UNDERSTAND != 0 => return Err(DecodeError::UnknownExtension(k)),
            _ => out.ignored = out.ignored.saturating_add(1),
        }
    }
    Ok(out)
}

/// Decodes a datagram into its header, extensions, body, payload and tag. Never panics.
///
/// Unknown packet types decode (as [`Body::Unknown`]); unknown must-understand extensions,
/// flag A without an AUTH extension, and bodies that contradict their payload are errors.
pub fn decode(datagram: &[u8]) -> Result<Packet<'_>, DecodeError> {
    if datagram.len() < COMMON_LEN {
        return Err(DecodeError::TooShort(datagram.len()));
    }
    let mut r = Reader::new(datagram);
    if r.u16() != MAGIC {
        return Err(DecodeError::BadMagic);
    }
    let version = r.u8();
    if version != VERSION {
        return Err(DecodeError::UnsupportedVersion(version));
    }
    let packet_type = PacketType::from_u8(r.u8());
    let flags = r.u8();
    let ext_end = COMMON_LEN + 4 * usize::from(r.u8());
    let header = CommonHeader {
        flags: flags & (header_flags::RETRANSMISSION | header_flags::AUTH_TAG),
        track: r.u16(),
        session: r.u64(),
        seq: r.u32(),
    };
    let ext_raw = datagram
        .get(COMMON_LEN..ext_end)
        .ok_or(DecodeError::TooShort(datagram.len()))?;
    let extensions = decode_extensions(ext_raw)?;
    let tag_len = if header.flags & header_flags::AUTH_TAG != 0 {
        let auth = extensions.auth.ok_or(DecodeError::Inconsistent(
            "flag A without an AUTH extension",
        ))?;
        usize::from(auth.tag_len)
    } else {
        0
    };
    let rest = &datagram[ext_end..];
    let body_len = packet_type.body_len();
    if rest.len() < body_len + tag_len {
        return Err(DecodeError::TooShort(datagram.len()));
    }
    let (body_bytes, after) = rest.split_at(body_len);
    let (payload, tag) = after.split_at(after.len() - tag_len);
    let body = Body::read(packet_type, body_bytes);
    validate(&body, payload)?;
    Ok(Packet {
        header,
        extensions,
        body,
        payload,
        tag,
    })
}

/// Checks what a single datagram can be checked for on its own.
fn validate(body: &Body, payload: &[u8]) -> Result<(), DecodeError> {
    let bad = |why| Err(DecodeError::Inconsistent(why));
    match body {
        Body::Media(m) => validate_media(m, payload.len()),
        Body::StreamInfo(s) => {
            let end = u64::from(s.offset) + payload.len() as u64;
            if s.caps_len == 0 || s.caps_len as usize > MAX_CAPS_LEN {
                bad("caps length out of range")
            } else if payload.is_empty() || end > u64::from(s.caps_len) {
                bad("stream info piece outside the caps")
            } else {
                Ok(())
            }
        }
        Body::Nack(_) if !payload.len().is_multiple_of(8) => bad("NACK entries are 8 bytes each"),
        Body::Subscribe(_) if !payload.len().is_multiple_of(2) => bad("track ids are 2 bytes each"),
        Body::Fec(f) if f.symbol_len as usize != payload.len() => {
            bad("FEC symbol length differs from the payload")
        }
        Body::Metadata(_) if std::str::from_utf8(payload).is_err() => bad("metadata is not UTF-8"),
        Body::Challenge(_) if payload.is_empty() || payload.len() > MAX_COOKIE_LEN => {
            bad("cookie length out of range")
        }
        Body::Tracks(t) => tracks::validate(t, payload).map_err(DecodeError::Inconsistent),
        _ => Ok(()),
    }
}

fn validate_media(m: &Media, payload_len: usize) -> Result<(), DecodeError> {
    let bad = |why| Err(DecodeError::Inconsistent(why));
    let offset = u64::from(m.offset);
    let end = offset + payload_len as u64;
    let frame_len = u64::from(m.frame_len);
    let frag = u64::from(m.frag_size);
    if end > frame_len {
        return bad("payload runs past the frame's end");
    }
    if frame_len == 0 {
        return Ok(());
    }
    if payload_len == 0 {
        return bad("empty fragment of a non-empty frame");
    }
    if frag == 0 {
        return bad("zero fragment size");
    }
    if offset % frag != 0 {
        return bad("offset is not a multiple of the fragment size");
    }
    let is_last = end == frame_len;
    if payload_len as u64 > frag || (!is_last && payload_len as u64 != frag) {
        return bad("payload size does not match the fragment size");
    }
    Ok(())
}

/// The (first sequence, count) entries of a NACK payload (a trailing partial entry is
/// ignored; [`decode`] refuses one).
pub fn nack_entries(payload: &[u8]) -> impl Iterator<Item = (u32, u32)> + '_ {
    payload.chunks_exact(8).map(|c| {
        let mut r = Reader::new(c);
        (r.u32(), r.u32())
    })
}

/// Appends a NACK entry to a payload.
pub fn push_nack_entry(payload: &mut Vec<u8>, first_seq: u32, count: u32) {
    Writer(payload).u32(first_seq).u32(count);
}

/// The track ids of a SUBSCRIBE payload (empty: all tracks).
pub fn subscribe_tracks(payload: &[u8]) -> impl Iterator<Item = u16> + '_ {
    payload
        .chunks_exact(2)
        .map(|c| u16::from_be_bytes([c[0], c[1]]))
}

/// Number of fragments of `frag_size` bytes needed for a frame of `frame_len` bytes
/// (a zero-length frame still takes one datagram).
pub fn fragment_count(frame_len: u32, frag_size: u16) -> u32 {
    if frame_len == 0 || frag_size == 0 {
        1
    } else {
        frame_len.div_ceil(u32::from(frag_size))
    }
}

/// Signed distance from `b` to `a` for wrapping 32-bit counters: positive when `a` is newer.
pub fn seq_diff(a: u32, b: u32) -> i32 {
    a.wrapping_sub(b) as i32
}

#[cfg(test)]
#[path = "protocol_tests.rs"]
pub(crate) mod tests;
