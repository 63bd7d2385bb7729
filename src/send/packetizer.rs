// SPDX-License-Identifier: MPL-2.0
//! Frame → datagrams: splits a frame into MTU-sized fragments and writes their headers.
//!
//! The packetizer never touches payload bytes. For a frame it hands out, batch by batch, the
//! encoded headers; datagram `i` of the frame is `header[i]` followed by the slice
//! `payload[i * frag_size ..]` of the caller's mapped buffer (see [`FramePlan::batch`] and
//! [`Batch::parts`]),
//! which the socket layer sends as a two-element iovec. The stream info goes out the same
//! way, as headers plus slices of the caps ([`Packetizer::info_datagrams`]). No GStreamer,
//! no I/O.

use crate::protocol::{
    self, Body, CommonHeader, EndOfStream, Fec, Media, SenderReport, StreamInfo, EOS_HEADER_LEN,
    FEC_HEADER_LEN, INFO_HEADER_LEN, MEDIA_HEADER_LEN,
};
use std::hash::{BuildHasher, Hasher};

/// IPv4 + UDP header bytes inside an MTU.
pub const IPV4_UDP_OVERHEAD: usize = 20 + 8;
/// IPv6 + UDP header bytes inside an MTU.
pub const IPV6_UDP_OVERHEAD: usize = 40 + 8;
/// Smallest MTU accepted: IPv6's minimum link MTU.
pub const MIN_MTU: u32 = 576;
/// Largest MTU accepted: a whole UDP datagram over IPv4.
pub const MAX_MTU: u32 = 65535;

/// Timing and flags of one frame, as carried in every one of its datagrams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameMeta {
    /// PTS in ns or [`protocol::TIME_NONE`].
    pub pts: u64,
    /// DTS in ns or [`protocol::TIME_NONE`].
    pub dts: u64,
    /// Duration in ns or [`protocol::TIME_NONE`].
    pub duration: u64,
    /// [`protocol::flags`].
    pub flags: u16,
}

impl Default for FrameMeta {
    fn default() -> Self {
        FrameMeta {
            pts: protocol::TIME_NONE,
            dts: protocol::TIME_NONE,
            duration: protocol::TIME_NONE,
            flags: 0,
        }
    }
}

/// Why a frame cannot be packetized.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PacketizeError {
    /// The frame is longer than the 32-bit length field allows.
    FrameTooLarge(usize),
    /// The caps are longer than [`protocol::MAX_CAPS_LEN`].
    CapsTooLarge(usize),
    /// The frame needs more fragments than a receiver accepts at this MTU.
    TooManyFragments(usize),
}

impl std::fmt::Display for PacketizeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PacketizeError::FrameTooLarge(n) => {
                write!(
                    f,
                    "frame of {n} bytes is larger than the protocol's 4 GiB limit"
                )
            }
            PacketizeError::TooManyFragments(n) => write!(
                f,
                "frame of {n} bytes needs more than {} datagrams: raise the mtu",
                protocol::MAX_FRAGMENTS
            ),
            PacketizeError::CapsTooLarge(n) => write!(
                f,
                "caps of {n} bytes are longer than the protocol's {} bytes",
                protocol::MAX_CAPS_LEN
            ),
        }
    }
}

impl std::error::Error for PacketizeError {}

/// Payload bytes per datagram for a given MTU and address family.
pub fn fragment_size(mtu: u32, ipv6: bool) -> u16 {
    let overhead = if ipv6 {
        IPV6_UDP_OVERHEAD
    } else {
        IPV4_UDP_OVERHEAD
    } + MEDIA_HEADER_LEN;
    let mtu = mtu.clamp(MIN_MTU, MAX_MTU) as usize;
    // A UDP payload is at most 65507 bytes over IPv4.
    let max_udp_payload = 65507;
    (mtu - overhead)
        .min(max_udp_payload - MEDIA_HEADER_LEN)
        .min(u16::MAX as usize) as u16
}

/// A random session id (never 0, which SUBSCRIBE uses for "any session"): 64 bits from
/// the standard library's randomly keyed hasher, no extra dependency.
pub fn random_session_id() -> u64 {
    loop {
        let mut h = std::hash::RandomState::new().build_hasher();
        h.write_u64(std::hash::RandomState::new().hash_one(0x5649u64));
        let id = h.finish();
        if id != 0 {
            return id;
        }
    }
}

/// Stateful packetizer of one track of a session: owns the session id and the sequence and
/// frame counters.
#[derive(Debug)]
pub struct Packetizer {
    session: u64,
    track: u16,
    seq: u32,
    frame: u32,
    frag_size: u16,
    info_gen: u16,
    headers: Vec<[u8; MEDIA_HEADER_LEN]>,
}

/// The headers of one stream info datagram, to be followed by its caps slice.
pub type InfoHeader = [u8; INFO_HEADER_LEN];

/// The datagrams of one frame. Borrowing the packetizer, it hands out headers batch by batch.
#[derive(Debug)]
pub struct FramePlan<'p> {
    packetizer: &'p mut Packetizer,
    template: [u8; MEDIA_HEADER_LEN],
    frag: usize,
    first_seq: u32,
    len: usize,
    count: usize,
}

impl Packetizer {
    /// A packetizer for track `track` of session `session` whose first datagram gets
    /// sequence number `first_seq`, cutting frames into fragments of `frag_size` payload
    /// bytes.
    pub fn new(session: u64, track: u16, first_seq: u32, frag_size: u16) -> Self {
        Packetizer {
            session,
            track,
            seq: first_seq,
            frame: 0,
            frag_size: frag_size.max(1),
            info_gen: 0,
            headers: Vec::new(),
        }
    }

    /// Payload bytes per fragment.
    pub fn frag_size(&self) -> u16 {
        self.frag_size
    }

    /// The session id.
    pub fn session(&self) -> u64 {
        self.session
    }

    /// Caps bytes per stream info datagram: as many as make the datagram as large as a full
    /// media datagram, so it fits the same MTU.
    pub fn info_piece_size(&self) -> usize {
        usize::from(self.frag_size) + MEDIA_HEADER_LEN - INFO_HEADER_LEN
    }

    /// Moves to a new stream info generation (call when the caps change).
    pub fn next_info_gen(&mut self) {
        self.info_gen = self.info_gen.wrapping_add(1);
    }

    fn take_seq(&mut self, n: u32) -> u32 {
        let s = self.seq;
        self.seq = self.seq.wrapping_add(n);
        s
    }

    fn common(&mut self, seqs: u32) -> CommonHeader {
        CommonHeader {
            flags: 0,
            track: self.track,
            session: self.session,
            seq: self.take_seq(seqs),
        }
    }

    /// The stream info datagrams of `caps`: one header and caps slice per datagram, each
    /// with its own sequence number. Caps longer than [`protocol::MAX_CAPS_LEN`] are
    /// refused.
    pub fn info_datagrams<'c>(
        &mut self,
        caps: &'c str,
    ) -> Result<Vec<(InfoHeader, &'c [u8])>, PacketizeError> {
        if caps.is_empty() || caps.len() > protocol::MAX_CAPS_LEN {
            return Err(PacketizeError::CapsTooLarge(caps.len()));
        }
        let piece = self.info_piece_size();
        let mut out = Vec::with_capacity(caps.len().div_ceil(piece));
        for (i, chunk) in caps.as_bytes().chunks(piece).enumerate() {
            let body = Body::StreamInfo(StreamInfo {
                info_gen: self.info_gen,
                caps_len: caps.len() as u32,
                offset: (i * piece) as u32,
                next_frame: self.frame,
            });
            let common = self.common(1);
            out.push((protocol::encode_fixed(&common, &body), chunk));
        }
        Ok(out)
    }

    /// The end-of-stream datagram (no payload).
    pub fn eos_datagram(&mut self) -> [u8; EOS_HEADER_LEN] {
        let body = Body::EndOfStream(EndOfStream {
            next_frame: self.frame,
        });
        let common = self.common(1);
        protocol::encode_fixed(&common, &body)
    }

    /// The headers of an FEC datagram (one repair symbol, which follows them), with the
    /// next sequence number: a frame's repairs go out right after its media datagrams.
    pub fn fec_header(&mut self, fec: &Fec) -> [u8; FEC_HEADER_LEN] {
        let common = self.common(1);
        protocol::encode_fixed(&common, &Body::Fec(*fec))
    }

    /// A sender report datagram, and the sequence number it took (receivers echo it back).
    pub fn sender_report(&mut self, report: SenderReport) -> (u32, Vec<u8>) {
        let common = self.common(1);
        let mut out = Vec::with_capacity(protocol::COMMON_LEN + 40);
        // Cannot fail: there are no extensions.
        let _ = protocol::encode(&common, &[], &Body::SenderReport(report), &mut out);
        (common.seq, out)
    }

    /// Plans the datagrams of the next frame, `len` bytes long.
    pub fn frame(&mut self, len: usize, meta: FrameMeta) -> Result<FramePlan<'_>, PacketizeError> {
        let frame_len = u32::try_from(len).map_err(|_| PacketizeError::FrameTooLarge(len))?;
        let count = protocol::fragment_count(frame_len, self.frag_size);
        if count > protocol::MAX_FRAGMENTS {
            return Err(PacketizeError::TooManyFragments(len));
        }
        let count = count as usize;
        let common = self.common(count as u32);
        let media = Media {
            frame: self.frame,
            offset: 0,
            frame_len,
            pts: meta.pts,
            dts: meta.dts,
            duration: meta.duration,
            flags: meta.flags,
            info_gen: self.info_gen,
            frag_size: self.frag_size,
        };
        let template = protocol::encode_media_header(&common, &media);
        self.frame = self.frame.wrapping_add(1);
        Ok(FramePlan {
            frag: usize::from(self.frag_size),
            packetizer: self,
            template,
            first_seq: common.seq,
            len,
            count,
        })
    }
}

impl FramePlan<'_> {
    /// The frame's encoded media headers (as of its first datagram), the first datagram's
    /// sequence number, and the payload bytes per datagram: what a resend rebuilds any of
    /// its datagrams from.
    pub fn template(&self) -> ([u8; MEDIA_HEADER_LEN], u32, usize) {
        (self.template, self.first_seq, self.frag)
    }

    /// Number of datagrams of the frame.
    pub fn count(&self) -> usize {
        self.count
    }

    /// Encodes the headers of datagrams `first .. first + n` (clamped to the frame) and
    /// returns them with the frame's bytes `data` as a batch ready to send.
    pub fn batch<'s, 'd>(&'s mut self, data: &'d [u8], first: usize, n: usize) -> Batch<'s, 'd> {
        let end = (first + n).min(self.count);
        let n = end.saturating_sub(first);
        let headers = &mut self.packetizer.headers;
        headers.resize(n, [0u8; MEDIA_HEADER_LEN]);
        let frag = self.frag;
        for (k, out) in headers.iter_mut().enumerate() {
            let i = first + k;
            *out = self.template;
            protocol::patch_seq_offset(
                out,
                self.first_seq.wrapping_add(i as u32),
                (i * frag) as u32,
            );
        }
        Batch {
            headers,
            data: &data[..self.len.min(data.len())],
            first,
            frag,
        }
    }
}

/// Consecutive datagrams of one frame: encoded headers plus the frame's bytes.
#[derive(Debug)]
pub struct Batch<'s, 'd> {
    headers: &'s [[u8; MEDIA_HEADER_LEN]],
    data: &'d [u8],
    first: usize,
    frag: usize,
}

impl<'s, 'd> Batch<'s, 'd> {
    /// Datagrams in the batch.
    pub fn len(&self) -> usize {
        self.headers.len()
    }

    /// True if the batch holds no datagram.
    pub fn is_empty(&self) -> bool {
        self.headers.is_empty()
    }

    /// Datagram `k` of the batch as `[header, payload]`, the payload borrowed from the frame.
    pub fn parts(&self, k: usize) -> [&[u8]; 2] {
        let i = self.first + k;
        let start = (i * self.frag).min(self.data.len());
        let end = (start + self.frag).min(self.data.len());
        let header: &'s [u8] = self.headers.get(k).map_or(&[][..], |h| &h[..]);
        let payload: &'d [u8] = &self.data[start..end];
        [header, payload]
    }
}

#[cfg(test)]
#[path = "packetizer_tests.rs"]
mod tests;
