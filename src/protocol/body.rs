// SPDX-License-Identifier: MPL-2.0
//! The fixed bodies of the v2 packet types (`docs/PROTOCOL.md` §5), one struct per type.
//!
//! Every body has a fixed length per type ([`PacketType::body_len`]); bodies grow only
//! through extensions. Reserved fields are written as zero and ignored when read.

use super::PacketType;

/// Reads big-endian integers from a slice whose length the caller has checked. Reading past
/// the end yields zeros rather than panicking.
pub(super) struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(super) fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes, pos: 0 }
    }

    fn take<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        if let Some(b) = self.bytes.get(self.pos..self.pos + N) {
            out.copy_from_slice(b);
        }
        self.pos += N;
        out
    }

    pub(super) fn u8(&mut self) -> u8 {
        self.take::<1>()[0]
    }

    pub(super) fn u16(&mut self) -> u16 {
        u16::from_be_bytes(self.take())
    }

    pub(super) fn u32(&mut self) -> u32 {
        u32::from_be_bytes(self.take())
    }

    pub(super) fn u64(&mut self) -> u64 {
        u64::from_be_bytes(self.take())
    }

    pub(super) fn skip(&mut self, n: usize) {
        self.pos += n;
    }
}

/// Appends big-endian integers to a byte vector.
pub(super) struct Writer<'a>(pub(super) &'a mut Vec<u8>);

impl Writer<'_> {
    pub(super) fn u8(&mut self, v: u8) -> &mut Self {
        self.0.push(v);
        self
    }

    pub(super) fn u16(&mut self, v: u16) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }

    pub(super) fn u32(&mut self, v: u32) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }

    pub(super) fn u64(&mut self, v: u64) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }

    pub(super) fn zeros(&mut self, n: usize) -> &mut Self {
        self.0.extend(std::iter::repeat_n(0u8, n));
        self
    }
}

/// MEDIA (0x00): one fragment of a frame. Body of 44 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Media {
    /// Frame number, +1 per frame, wrapping.
    pub frame: u32,
    /// Byte offset of this datagram's payload within the frame.
    pub offset: u32,
    /// Total length of the frame in bytes.
    pub frame_len: u32,
    /// Presentation timestamp in ns, or [`super::TIME_NONE`].
    pub pts: u64,
    /// Decoding timestamp in ns, or [`super::TIME_NONE`].
    pub dts: u64,
    /// Duration in ns, or [`super::TIME_NONE`].
    pub duration: u64,
    /// Frame flags, see [`super::flags`].
    pub flags: u16,
    /// Generation of the stream info (caps) the frame belongs to.
    pub info_gen: u16,
    /// Payload bytes of every fragment of this frame but the last.
    pub frag_size: u16,
}

impl Default for Media {
    fn default() -> Self {
        Media {
            frame: 0,
            offset: 0,
            frame_len: 0,
            pts: super::TIME_NONE,
            dts: super::TIME_NONE,
            duration: super::TIME_NONE,
            flags: 0,
            info_gen: 0,
            frag_size: 0,
        }
    }
}

/// STREAM_INFO (0x01): one piece of the stream's caps. Body of 20 bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamInfo {
    /// Generation of the caps, +1 on every caps change, wrapping.
    pub info_gen: u16,
    /// Length of the whole caps string in bytes (at most [`super::MAX_CAPS_LEN`]).
    pub caps_len: u32,
    /// Offset within the caps string of this datagram's payload.
    pub offset: u32,
    /// The frame number the next frame will get.
    pub next_frame: u32,
}

/// END_OF_STREAM (0x02). Body of 4 bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EndOfStream {
    /// The frame number the next frame would have got.
    pub next_frame: u32,
}

/// Values of [`SenderReport::clock`]: what the reference time is measured on.
pub mod reference_clock {
    /// No reference clock: the reference time is meaningless.
    pub const NONE: u8 = 0;
    /// The system real-time clock (`CLOCK_REALTIME`), ns since the Unix epoch.
    pub const REALTIME: u8 = 1;
    /// PTP, TAI ns.
    pub const PTP: u8 = 2;
    /// An NTP-synchronised network clock.
    pub const NTP: u8 = 3;
}

/// SENDER_REPORT (0x03). Body of 36 bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SenderReport {
    /// Pipeline running time (ns) the report was taken at, on the timeline of the PTS/DTS
    /// the sender writes.
    pub running_time: u64,
    /// The same instant on the reference clock, in ns.
    pub reference_time: u64,
    /// Which reference clock, see [`reference_clock`].
    pub clock: u8,
    /// Datagrams sent on this track so far.
    pub datagrams_sent: u64,
    /// Frames sent on this track so far, wrapping.
    pub frames_sent: u32,
}

/// Value of [`ReceiverReport::delay_us`] before any sender report was received.
pub const NO_DELAY: u32 = u32::MAX;

/// RECEIVER_REPORT (0x04), receiver → sender. Body of 48 bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReceiverReport {
    /// The sender session reported on.
    pub session: u64,
    /// The track reported on.
    pub track: u16,
    /// Highest sequence number received.
    pub highest_seq: u32,
    /// Datagrams received.
    pub datagrams_received: u64,
    /// Datagrams lost.
    pub datagrams_lost: u64,
    /// Frames complete, wrapping.
    pub frames_complete: u32,
    /// Frames dropped, wrapping.
    pub frames_dropped: u32,
    /// Sequence number of the last sender report received.
    pub echoed_report_seq: u32,
    /// Microseconds since that sender report arrived, or [`NO_DELAY`].
    pub delay_us: u32,
}

/// NACK (0x05), receiver → sender. Body of 12 bytes; the payload holds (first sequence,
/// count) pairs, see [`super::nack_entries`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Nack {
    /// The sender session asked.
    pub session: u64,
    /// The track asked.
    pub track: u16,
}

/// Values of [`Fec::scheme`].
pub mod fec_scheme {
    /// Systematic Reed-Solomon over GF(2^8): reserved, never specified further.
    pub const REED_SOLOMON: u8 = 1;
    /// Leopard-RS's systematic Reed-Solomon code over GF(2^16), as `reed-solomon-simd` 3
    /// computes it (`docs/PROTOCOL.md` §5.7).
    pub const LEOPARD_GF16: u8 = 2;
}

/// FEC (0x06): one repair symbol. Body of 16 bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Fec {
    /// Code, see [`fec_scheme`].
    pub scheme: u8,
    /// Index of this repair symbol within its block.
    pub repair_index: u16,
    /// Sequence number of the first datagram protected.
    pub first_seq: u32,
    /// Datagrams protected (consecutive sequence numbers).
    pub protected_count: u16,
    /// Repair symbols of the block.
    pub repair_count: u16,
    /// Length of a symbol in bytes (equals the payload length).
    pub symbol_len: u32,
}

/// SUBSCRIBE (0x07), receiver → sender. Body of 16 bytes; the payload lists u16 track ids,
/// see [`super::subscribe_tracks`] (empty: all).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Subscribe {
    /// The session wanted, 0 for whatever sends to this address.
    pub session: u64,
    /// Lease in ms; 0 unsubscribes.
    pub lease_ms: u32,
    /// Flags, none defined yet (sent 0).
    pub flags: u32,
}

/// KEYFRAME_REQUEST (0x08), receiver → sender. Body of 12 bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KeyframeRequest {
    /// The sender session asked.
    pub session: u64,
    /// The track asked.
    pub track: u16,
}

/// Bits of [`Tally::state`].
pub mod tally {
    /// On air (program).
    pub const PROGRAM: u32 = 1 << 0;
    /// In preview.
    pub const PREVIEW: u32 = 1 << 1;
}

/// TALLY (0x09). Body of 12 bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    /// The session the tally is about.
    pub session: u64,
    /// See [`tally`].
    pub state: u32,
}

/// METADATA (0x0A): UTF-8 text in the payload. Body of 12 bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Metadata {
    /// The frame the metadata belongs to, or `u32::MAX`.
    pub frame: u32,
    /// PTS in ns, or [`super::TIME_NONE`].
    pub pts: u64,
}

/// CHALLENGE (0x0B), sender → receiver: a return-routability cookie for the receiver whose
/// id is echoed here, which it puts in a COOKIE extension on what it sends next. Body of 12
/// bytes; the payload is the cookie (1 to [`super::MAX_COOKIE_LEN`] opaque bytes).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Challenge {
    /// The receiver id (the session id field) of the datagram this answers.
    pub receiver: u64,
}

/// TRACKS (0x0C), sender → receivers, on the control track: the session's track table.
/// Body of 8 bytes; the payload is the table's entries ([`super::tracks`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tracks {
    /// +1 whenever the table changes, wrapping.
    pub generation: u16,
    /// Entries in the payload.
    pub count: u16,
}

/// The typed fixed body of a datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    /// See [`Media`].
    Media(Media),
    /// See [`StreamInfo`].
    StreamInfo(StreamInfo),
    /// See [`EndOfStream`].
    EndOfStream(EndOfStream),
    /// See [`SenderReport`].
    SenderReport(SenderReport),
    /// See [`ReceiverReport`].
    ReceiverReport(ReceiverReport),
    /// See [`Nack`].
    Nack(Nack),
    /// See [`Fec`].
    Fec(Fec),
    /// See [`Subscribe`].
    Subscribe(Subscribe),
    /// See [`KeyframeRequest`].
    KeyframeRequest(KeyframeRequest),
    /// See [`Tally`].
    Tally(Tally),
    /// See [`Metadata`].
    Metadata(Metadata),
    /// See [`Challenge`].
    Challenge(Challenge),
    /// See [`Tracks`].
    Tracks(Tracks),
    /// A type this implementation does not know: no body, everything after the extensions
    /// is payload.
    Unknown(u8),
}

impl Body {
    /// The packet type of this body.
    pub fn packet_type(&self) -> PacketType {
        match self {
            Body::Media(_) => PacketType::Media,
            Body::StreamInfo(_) => PacketType::StreamInfo,
            Body::EndOfStream(_) => PacketType::EndOfStream,
            Body::SenderReport(_) => PacketType::SenderReport,
            Body::ReceiverReport(_) => PacketType::ReceiverReport,
            Body::Nack(_) => PacketType::Nack,
            Body::Fec(_) => PacketType::Fec,
            Body::Subscribe(_) => PacketType::Subscribe,
            Body::KeyframeRequest(_) => PacketType::KeyframeRequest,
            Body::Tally(_) => PacketType::Tally,
            Body::Metadata(_) => PacketType::Metadata,
            Body::Challenge(_) => PacketType::Challenge,
            Body::Tracks(_) => PacketType::Tracks,
            Body::Unknown(t) => PacketType::Unknown(*t),
        }
    }

    /// Reads the body of type `t` from `b`, which holds at least `t.body_len()` bytes.
    pub(super) fn read(t: PacketType, b: &[u8]) -> Body {
        let mut r = Reader::new(b);
        match t {
            PacketType::Media => {
                let m = Media {
                    frame: r.u32(),
                    offset: r.u32(),
                    frame_len: r.u32(),
                    pts: r.u64(),
                    dts: r.u64(),
                    duration: r.u64(),
                    flags: r.u16() & super::flags::ALL,
                    info_gen: r.u16(),
                    frag_size: r.u16(),
                };
                Body::Media(m)
            }
            PacketType::StreamInfo => {
                let info_gen = r.u16();
                r.skip(2);
                Body::StreamInfo(StreamInfo {
                    info_gen,
                    caps_len: r.u32(),
                    offset: r.u32(),
                    next_frame: r.u32(),
                })
            }
            PacketType::EndOfStream => Body::EndOfStream(EndOfStream {
                next_frame: r.u32(),
            }),
            PacketType::SenderReport => {
                let running_time = r.u64();
                let reference_time = r.u64();
                let clock = r.u8();
                r.skip(3);
                Body::SenderReport(SenderReport {
                    running_time,
                    reference_time,
                    clock,
                    datagrams_sent: r.u64(),
                    frames_sent: r.u32(),
                })
            }
            PacketType::ReceiverReport => {
                let session = r.u64();
                let track = r.u16();
                r.skip(2);
                Body::ReceiverReport(ReceiverReport {
                    session,
                    track,
                    highest_seq: r.u32(),
                    datagrams_received: r.u64(),
                    datagrams_lost: r.u64(),
                    frames_complete: r.u32(),
                    frames_dropped: r.u32(),
                    echoed_report_seq: r.u32(),
                    delay_us: r.u32(),
                })
            }
            PacketType::Nack => Body::Nack(Nack {
                session: r.u64(),
                track: r.u16(),
            }),
            PacketType::Fec => {
                let scheme = r.u8();
                r.skip(1);
                Body::Fec(Fec {
                    scheme,
                    repair_index: r.u16(),
                    first_seq: r.u32(),
                    protected_count: r.u16(),
                    repair_count: r.u16(),
                    symbol_len: r.u32(),
                })
            }
            PacketType::Subscribe => Body::Subscribe(Subscribe {
                session: r.u64(),
                lease_ms: r.u32(),
                flags: r.u32(),
            }),
            PacketType::KeyframeRequest => Body::KeyframeRequest(KeyframeRequest {
                session: r.u64(),
                track: r.u16(),
            }),
            PacketType::Tally => Body::Tally(Tally {
                session: r.u64(),
                state: r.u32(),
            }),
            PacketType::Metadata => Body::Metadata(Metadata {
                frame: r.u32(),
                pts: r.u64(),
            }),
            PacketType::Challenge => Body::Challenge(Challenge { receiver: r.u64() }),
            PacketType::Tracks => Body::Tracks(Tracks {
                generation: r.u16(),
                count: r.u16(),
            }),
            PacketType::Unknown(t) => Body::Unknown(t),
        }
    }

    /// Appends the body's [`PacketType::body_len`] bytes to `out`.
    pub(super) fn write(&self, out: &mut Vec<u8>) {
        let mut w = Writer(out);
        match self {
            Body::Media(m) => {
                w.u32(m.frame).u32(m.offset).u32(m.frame_len);
                w.u64(m.pts).u64(m.dts).u64(m.duration);
                w.u16(m.flags).u16(m.info_gen).u16(m.frag_size).zeros(2);
            }
            Body::StreamInfo(s) => {
                w.u16(s.info_gen).zeros(2).u32(s.caps_len).u32(s.offset);
                w.u32(s.next_frame).zeros(4);
            }
            Body::EndOfStream(e) => {
                w.u32(e.next_frame);
            }
            Body::SenderReport(s) => {
                w.u64(s.running_time)
                    .u64(s.reference_time)
                    .u8(s.clock)
                    .zeros(3);
                w.u64(s.datagrams_sent).u32(s.frames_sent).zeros(4);
            }
            Body::ReceiverReport(r) => {
                w.u64(r.session).u16(r.track).zeros(2).u32(r.highest_seq);
                w.u64(r.datagrams_received).u64(r.datagrams_lost);
                w.u32(r.frames_complete).u32(r.frames_dropped);
                w.u32(r.echoed_report_seq).u32(r.delay_us);
            }
            Body::Nack(n) => {
                w.u64(n.session).u16(n.track).zeros(2);
            }
            Body::Fec(f) => {
                w.u8(f.scheme).zeros(1).u16(f.repair_index).u32(f.first_seq);
                w.u16(f.protected_count)
                    .u16(f.repair_count)
                    .u32(f.symbol_len);
            }
            Body::Subscribe(s) => {
                w.u64(s.session).u32(s.lease_ms).u32(s.flags);
            }
            Body::KeyframeRequest(k) => {
                w.u64(k.session).u16(k.track).zeros(2);
            }
            Body::Tally(t) => {
                w.u64(t.session).u32(t.state);
            }
            Body::Metadata(m) => {
                w.u32(m.frame).u64(m.pts);
            }
            Body::Challenge(c) => {
                w.u64(c.receiver).zeros(4);
            }
            Body::Tracks(t) => {
                w.u16(t.generation).u16(t.count).zeros(4);
            }
            Body::Unknown(_) => {}
        }
    }
}
