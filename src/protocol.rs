// SPDX-License-Identifier: MPL-2.0
//! The videoip wire format, version 1, as specified in `docs/PROTOCOL.md`.
//!
//! Every datagram starts with a fixed [`HEADER_LEN`]-byte header in network byte order,
//! followed by the payload. This module only encodes and decodes bytes: no I/O, no
//! GStreamer. Decoding never panics on untrusted input; it returns a [`DecodeError`].
//!
//! ```
//! use gstvideoip::protocol::{Header, PacketType, HEADER_LEN};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//!
//! // The second 1420-byte fragment of a 10,000-byte frame.
//! let mut h = Header::new(PacketType::Media);
//! h.frame_len = 10_000;
//! h.frag_size = 1420;
//! h.offset = 1420;
//! let mut header = [0u8; HEADER_LEN];
//! h.encode(&mut header);
//! let datagram = [&header[..], &[0xAB; 1420][..]].concat();
//!
//! let (back, payload) = Header::decode(&datagram)?;
//! assert_eq!(back, h);
//! assert_eq!(payload.len(), 1420);
//! // Bytes that are not videoip are an error, never a panic.
//! assert!(Header::decode(b"hello").is_err());
//! # Ok(())
//! # }
//! ```

use std::fmt;

/// The two bytes every videoip datagram starts with: ASCII `"VI"`.
pub const MAGIC: u16 = 0x5649;
/// The protocol version this module speaks.
pub const VERSION: u8 = 1;
/// Size of the fixed header in bytes.
pub const HEADER_LEN: usize = 52;
/// Most fragments one frame may have; receivers reject frames that claim more.
pub const MAX_FRAGMENTS: u32 = 1 << 20;
/// Timestamp value meaning "no timestamp" (`GST_CLOCK_TIME_NONE`).
pub const TIME_NONE: u64 = u64::MAX;

/// Packet types. Values 3..=5 are reserved for FEC, NACK and keep-alive; a v1 receiver
/// ignores them (they are counted, not treated as errors).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum PacketType {
    /// A fragment of a media frame.
    Media = 0,
    /// Stream info: the caps string of the stream, UTF-8, in one datagram.
    StreamInfo = 1,
    /// The stream has ended.
    EndOfStream = 2,
    /// Reserved: forward error correction.
    Fec = 3,
    /// Reserved: negative acknowledgement (retransmission request).
    Nack = 4,
    /// Reserved: keep-alive.
    KeepAlive = 5,
}

impl PacketType {
    fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            0 => Self::Media,
            1 => Self::StreamInfo,
            2 => Self::EndOfStream,
            3 => Self::Fec,
            4 => Self::Nack,
            5 => Self::KeepAlive,
            _ => return None,
        })
    }
}

/// Frame flags carried in the header's `flags` field (mirroring `GstBufferFlags`).
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
    /// All flags defined in version 1; other bits must be zero and are ignored.
    pub const ALL: u16 = DELTA_UNIT | DISCONT | HEADER | GAP | DROPPABLE | MARKER;
}

/// The fixed header at the start of every datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// What the datagram carries.
    pub packet_type: PacketType,
    /// Frame flags, see [`flags`].
    pub flags: u16,
    /// Identifies one run of a sender; chosen at random when the sender starts.
    pub stream_id: u16,
    /// Per-stream datagram sequence number, incremented by one for every datagram, wrapping.
    pub seq: u32,
    /// Frame number, incremented by one for every frame, wrapping.
    pub frame: u32,
    /// Byte offset of this payload within the frame.
    pub offset: u32,
    /// Total length of the frame in bytes.
    pub frame_len: u32,
    /// Presentation timestamp in nanoseconds, or [`TIME_NONE`].
    pub pts: u64,
    /// Decoding timestamp in nanoseconds, or [`TIME_NONE`].
    pub dts: u64,
    /// Duration in nanoseconds, or [`TIME_NONE`].
    pub duration: u64,
    /// Generation of the stream info (caps) the frame belongs to.
    pub info_gen: u16,
    /// Payload size of every fragment of this frame but the last (the last may be shorter).
    pub frag_size: u16,
}

impl Header {
    /// A header with every field zero/none, of the given type.
    pub fn new(packet_type: PacketType) -> Self {
        Header {
            packet_type,
            flags: 0,
            stream_id: 0,
            seq: 0,
            frame: 0,
            offset: 0,
            frame_len: 0,
            pts: TIME_NONE,
            dts: TIME_NONE,
            duration: TIME_NONE,
            info_gen: 0,
            frag_size: 0,
        }
    }

    /// Writes the header into the first [`HEADER_LEN`] bytes of `out`.
    pub fn encode(&self, out: &mut [u8; HEADER_LEN]) {
        out[0..2].copy_from_slice(&MAGIC.to_be_bytes());
        out[2] = VERSION;
        out[3] = self.packet_type as u8;
        out[4..6].copy_from_slice(&self.flags.to_be_bytes());
        out[6..8].copy_from_slice(&self.stream_id.to_be_bytes());
        out[8..12].copy_from_slice(&self.seq.to_be_bytes());
        out[12..16].copy_from_slice(&self.frame.to_be_bytes());
        out[16..20].copy_from_slice(&self.offset.to_be_bytes());
        out[20..24].copy_from_slice(&self.frame_len.to_be_bytes());
        out[24..32].copy_from_slice(&self.pts.to_be_bytes());
        out[32..40].copy_from_slice(&self.dts.to_be_bytes());
        out[40..48].copy_from_slice(&self.duration.to_be_bytes());
        out[48..50].copy_from_slice(&self.info_gen.to_be_bytes());
        out[50..52].copy_from_slice(&self.frag_size.to_be_bytes());
    }

    /// Rewrites only the sequence number and offset of an encoded header, for the sender's
    /// hot path where consecutive fragments differ in nothing else.
    pub fn patch_seq_offset(out: &mut [u8; HEADER_LEN], seq: u32, offset: u32) {
        out[8..12].copy_from_slice(&seq.to_be_bytes());
        out[16..20].copy_from_slice(&offset.to_be_bytes());
    }

    /// Decodes a datagram into its header and payload. Never panics.
    pub fn decode(datagram: &[u8]) -> Result<(Header, &[u8]), DecodeError> {
        if datagram.len() < HEADER_LEN {
            return Err(DecodeError::TooShort(datagram.len()));
        }
        let (h, payload) = datagram.split_at(HEADER_LEN);
        let u16_at = |i: usize| u16::from_be_bytes([h[i], h[i + 1]]);
        let u32_at = |i: usize| u32::from_be_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]);
        let u64_at = |i: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&h[i..i + 8]);
            u64::from_be_bytes(b)
        };
        if u16_at(0) != MAGIC {
            return Err(DecodeError::BadMagic);
        }
        if h[2] != VERSION {
            return Err(DecodeError::UnsupportedVersion(h[2]));
        }
        let packet_type = PacketType::from_u8(h[3]).ok_or(DecodeError::UnknownType(h[3]))?;
        let header = Header {
            packet_type,
            flags: u16_at(4) & flags::ALL,
            stream_id: u16_at(6),
            seq: u32_at(8),
            frame: u32_at(12),
            offset: u32_at(16),
            frame_len: u32_at(20),
            pts: u64_at(24),
            dts: u64_at(32),
            duration: u64_at(40),
            info_gen: u16_at(48),
            frag_size: u16_at(50),
        };
        header.validate(payload.len())?;
        Ok((header, payload))
    }

    /// Checks the invariants that a single datagram can be checked for on its own.
    fn validate(&self, payload_len: usize) -> Result<(), DecodeError> {
        if self.packet_type != PacketType::Media {
            return Ok(());
        }
        let offset = u64::from(self.offset);
        let end = offset + payload_len as u64;
        let frame_len = u64::from(self.frame_len);
        let frag = u64::from(self.frag_size);
        if end > frame_len {
            return Err(DecodeError::Inconsistent(
                "payload runs past the frame's end",
            ));
        }
        if frame_len == 0 {
            return Ok(());
        }
        if payload_len == 0 {
            return Err(DecodeError::Inconsistent(
                "empty fragment of a non-empty frame",
            ));
        }
        if frag == 0 {
            return Err(DecodeError::Inconsistent("zero fragment size"));
        }
        if offset % frag != 0 {
            return Err(DecodeError::Inconsistent(
                "offset is not a multiple of the fragment size",
            ));
        }
        let is_last = end == frame_len;
        if payload_len as u64 > frag || (!is_last && payload_len as u64 != frag) {
            return Err(DecodeError::Inconsistent(
                "payload size does not match the fragment size",
            ));
        }
        Ok(())
    }
}

/// Why a datagram could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// Shorter than the fixed header (the length is given).
    TooShort(usize),
    /// Does not start with [`MAGIC`].
    BadMagic,
    /// A version this implementation does not speak.
    UnsupportedVersion(u8),
    /// A packet type outside the defined range.
    UnknownType(u8),
    /// Header fields that contradict each other or the payload.
    Inconsistent(&'static str),
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::TooShort(n) => {
                write!(f, "datagram of {n} bytes is shorter than the header")
            }
            DecodeError::BadMagic => write!(f, "not a videoip datagram (bad magic)"),
            DecodeError::UnsupportedVersion(v) => write!(f, "unsupported protocol version {v}"),
            DecodeError::UnknownType(t) => write!(f, "unknown packet type {t}"),
            DecodeError::Inconsistent(why) => write!(f, "inconsistent header: {why}"),
        }
    }
}

impl std::error::Error for DecodeError {}

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
mod tests;
