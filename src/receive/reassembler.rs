// SPDX-License-Identifier: MPL-2.0
//! Datagrams → frames for the session locked on to: fragments are copied into their frame's
//! buffer, complete frames come out in frame order, and an incomplete frame is given up once
//! the reassembly window has passed since its latest datagram. I/O-free, driven by `now`.
//!
//! Memory is bounded: at most `max_in_flight` frames of at most `max_frame_size` bytes, and
//! at most `max_bytes_in_flight` bytes in all, are being assembled at once; per-frame
//! bookkeeping is bounded by [`MAX_FRAGMENTS`]. Repair symbols kept for FEC are handled in
//! [`super::fec`].

use super::Config;
use crate::protocol::fec::{self, FrameFec};
use crate::protocol::{self, seq_diff, Media};
use std::collections::VecDeque;
use std::time::Instant;

/// Most fragments one frame may have (bounds the per-frame bitmap to 128 KiB).
pub use crate::protocol::MAX_FRAGMENTS;
/// A frame number further ahead of the last frame handed out than this is not believed
/// (unless nothing else has made progress for a while, see [`Reassembler::push`]).
pub const MAX_FRAME_JUMP: i32 = 1024;

/// Why a fragment of a frame larger than the configured maximum is refused.
pub(super) const TOO_LARGE: &str = "frame larger than max-frame-size";
/// Why a fragment of a new frame is refused when the byte budget has no room for it.
pub(super) const NO_ROOM: &str = "memory budget for frames in flight exhausted";

/// Timing, flags and identity of a frame, from its datagrams' headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameInfo {
    /// Frame number.
    pub frame: u32,
    /// [`protocol::flags`].
    pub flags: u16,
    /// Sender PTS (ns) or [`protocol::TIME_NONE`].
    pub pts: u64,
    /// Sender DTS (ns) or [`protocol::TIME_NONE`].
    pub dts: u64,
    /// Duration (ns) or [`protocol::TIME_NONE`].
    pub duration: u64,
    /// Stream info generation the frame belongs to.
    pub info_gen: u16,
    /// Length in bytes.
    pub len: u32,
}

/// A complete frame.
#[derive(Debug)]
pub struct Frame<B> {
    /// The frame's bytes.
    pub buf: B,
    /// Its header information.
    pub info: FrameInfo,
    /// When its first datagram arrived.
    pub arrival: Instant,
    /// True when frames were lost or dropped just before this one.
    pub discont: bool,
}

/// A fragment's bytes: to copy into the frame, or already there.
#[derive(Debug, Clone, Copy)]
pub(super) enum Fragment<'a> {
    /// To copy.
    Bytes(&'a [u8]),
    /// This many bytes already written where [`Reassembler::place`] said.
    Placed(usize),
}

/// What a [`Reassembler::push`] did with a fragment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    /// Stored.
    Accepted,
    /// Already had it.
    Duplicate,
    /// Its frame was already pushed or dropped.
    Late,
    /// Contradicts its frame or the limits.
    Invalid(&'static str),
    /// No memory could be had for the frame.
    NoBuffer,
}

pub(super) struct Slot<B> {
    pub(super) info: FrameInfo,
    pub(super) frag_size: u16,
    /// Sequence number of fragment 0 (a fragment's number less its index), to place what
    /// FEC restores; None once fragments disagree on it (FEC is then not used).
    pub(super) first_seq: Option<u32>,
    /// Repair symbols kept for the frame's incomplete blocks.
    pub(super) fec: FrameFec,
    pub(super) buf: B,
    pub(super) received: Vec<u64>,
    pub(super) missing: u32,
    pub(super) arrival: Instant,
    /// When its latest datagram arrived: the window runs from here, so that a frame still
    /// arriving (slowly paced, or read by a receiver that fell behind) is not given up.
    pub(super) latest: Instant,
    /// Some of its datagrams were recovered (resent, or rebuilt): it would have been lost.
    pub(super) repaired: bool,
}

/// Reassembles one stream's frames from fragments, in frame order, within a window.
pub struct Reassembler<B> {
    pub(super) cfg: Config,
    pub(super) pending: VecDeque<Slot<B>>,
    pub(super) last_out: Option<u32>,
    pub(super) discont: bool,
    pub(super) frames_complete: u64,
    pub(super) frames_dropped: u64,
    /// Frames complete only thanks to recovered datagrams.
    pub(super) frames_recovered: u64,
    /// When a fragment was last accepted.
    pub(super) last_progress: Option<Instant>,
    /// Sum of the lengths of the frames in `pending`.
    pub(super) bytes_in_flight: usize,
    pub(super) fec_decoder: fec::Decoder,
    /// Sequence numbers restored by FEC, not yet taken.
    pub(super) recovered: Vec<u32>,
    /// Most bytes its frames in flight may hold now: `max_bytes_in_flight` less what the
    /// session's other tracks hold (see [`set_budget`](Self::set_budget)).
    pub(super) budget: usize,
}

impl<B> std::fmt::Debug for Reassembler<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reassembler")
            .field("pending", &self.pending.len())
            .field("last_out", &self.last_out)
            .finish()
    }
}

impl<B: AsMut<[u8]>> Reassembler<B> {
    /// An empty reassembler.
    pub fn new(cfg: Config) -> Self {
        Reassembler {
            pending: VecDeque::new(),
            last_out: None,
            discont: false,
            frames_complete: 0,
            frames_dropped: 0,
            frames_recovered: 0,
            last_progress: None,
            bytes_in_flight: 0,
            fec_decoder: fec::Decoder::default(),
            recovered: Vec::new(),
            budget: cfg.max_bytes_in_flight,
            cfg,
        }
    }

    /// Marks the next frame handed out as discontinuous (frames were lost on the way).
    pub fn mark_discont(&mut self) {
        self.discont = true;
    }

    /// True when no fragment has been accepted for twice the window: the stream
    /// moved on (a long outage, or a forged frame number pushed `last_out` astray), so
    /// datagrams that look late or far ahead are believed again.
    fn stalled(&self, now: Instant) -> bool {
        self.last_progress
            .is_none_or(|t| now.saturating_duration_since(t) >= 2 * self.cfg.window)
    }

    /// Forgets every frame in flight (a new stream starts).
    pub fn reset(&mut self) {
        self.discont |= self.last_out.is_some() || !self.pending.is_empty();
        self.pending.clear();
        self.bytes_in_flight = 0;
        self.last_out = None;
    }

    /// Sets the most bytes its frames in flight may hold from now on (at most
    /// `max_bytes_in_flight`): the session's one byte budget less what its other tracks
    /// hold. A new frame that does not fit evicts this reassembler's older frames only.
    pub fn set_budget(&mut self, bytes: usize) {
        self.budget = bytes.min(self.cfg.max_bytes_in_flight);
    }

    /// Drops the oldest frame in flight (to make room for another track's), counting it;
    /// false when there is none.
    pub fn drop_oldest(&mut self) -> bool {
        let any = !self.pending.is_empty();
        self.drop_front();
        any
    }

    /// Bytes of the frames being assembled.
    pub fn bytes_in_flight(&self) -> usize {
        self.bytes_in_flight
    }

    fn pop_front_slot(&mut self) -> Option<Slot<B>> {
        let s = self.pending.pop_front()?;
        self.bytes_in_flight -= s.info.len as usize;
        Some(s)
    }

    /// Frames being assembled.
    pub fn in_flight(&self) -> usize {
        self.pending.len()
    }

    /// Bytes of FEC repair symbols kept with the frames being assembled.
    pub fn fec_bytes(&self) -> usize {
        self.pending.iter().map(|s| s.fec.bytes()).sum()
    }

    /// Stores one media fragment, which came with sequence number `seq`. `alloc(len)` is
    /// called for the first fragment of a frame to get `len` writable bytes.
    pub fn push(
        &mut self,
        h: &Media,
        seq: u32,
        payload: &[u8],
        now: Instant,
        alloc: impl FnOnce(usize) -> Option<B>,
    ) -> Pushed {
        self.push_fragment(h, seq, Fragment::Bytes(payload), now, alloc)
    }

    /// Where the `len` bytes of the fragment `h` describes go in its frame, if that frame
    /// is being assembled, the fragment is not there yet and `len` is its exact length:
    /// a protected fragment is decrypted straight into it, then
    /// [`push_placed`](Self::push_placed) once it proved authentic. Nothing is marked
    /// received here, so bytes written and then refused are overwritten later.
    pub fn place(&mut self, h: &Media, len: usize) -> Option<&mut [u8]> {
        let slot = self.pending.iter_mut().find(|s| s.info.frame == h.frame)?;
        if slot.info.len != h.frame_len || slot.frag_size != h.frag_size || h.frag_size == 0 {
            return None;
        }
        let idx = h.offset / u32::from(h.frag_size);
        if !h.offset.is_multiple_of(u32::from(h.frag_size)) || has(&slot.received, idx) {
            return None;
        }
        let start = h.offset as usize;
        let expected = usize::from(h.frag_size).min((h.frame_len as usize).checked_sub(start)?);
        if len != expected {
            return None;
        }
        slot.buf.as_mut().get_mut(start..start + len)
    }

    /// Stores the fragment whose `len` bytes [`place`](Self::place) gave room for and the
    /// caller wrote there, as [`push`](Self::push) would have.
    pub fn push_placed(&mut self, h: &Media, seq: u32, len: usize, now: Instant) -> Pushed {
        self.push_fragment(h, seq, Fragment::Placed(len), now, |_| None)
    }

    fn push_fragment(
        &mut self,
        h: &Media,
        seq: u32,
        payload: Fragment<'_>,
        now: Instant,
        alloc: impl FnOnce(usize) -> Option<B>,
    ) -> Pushed {
        if h.frame_len as usize > self.cfg.max_frame_size {
            return Pushed::Invalid(TOO_LARGE);
        }
        if h.frame_len as usize > self.cfg.max_bytes_in_flight {
            return Pushed::Invalid("frame larger than the memory budget");
        }
        let nfrags = protocol::fragment_count(h.frame_len, h.frag_size);
        if nfrags > MAX_FRAGMENTS {
            return Pushed::Invalid("too many fragments");
        }
        if let Some(last) = self.last_out {
            let d = seq_diff(h.frame, last);
            if d <= 0 || d > MAX_FRAME_JUMP {
                if !self.stalled(now) {
                    return if d <= 0 {
                        Pushed::Late
                    } else {
                        Pushed::Invalid("frame number too far ahead")
                    };
                }
                // Start over from this datagram's frame.
                while !self.pending.is_empty() {
                    self.drop_front();
                }
                self.last_out = None;
                self.discont = true;
            }
        }
        let mut opened = false;
        let pos = match self.pending.iter().position(|s| s.info.frame == h.frame) {
            Some(pos) => {
                let s = &self.pending[pos];
                if s.info.len != h.frame_len || s.frag_size != h.frag_size {
                    return Pushed::Invalid("fragment disagrees with its frame's length");
                }
                pos
            }
            None => match self.open_slot(h, nfrags, now, alloc) {
                Ok(pos) => {
                    opened = true;
                    pos
                }
                Err(p) => return p,
            },
        };
        let slot = &mut self.pending[pos];
        let idx = if h.frag_size == 0 {
            0
        } else {
            h.offset / u32::from(h.frag_size)
        };
        if idx >= protocol::fragment_count(slot.info.len, slot.frag_size) {
            return Pushed::Invalid("fragment index out of range");
        }
        let first_seq = seq.wrapping_sub(idx);
        if opened {
            slot.first_seq = Some(first_seq);
        } else if slot.first_seq != Some(first_seq) {
            slot.first_seq = None;
        }
        let pushed = self.insert(pos, idx, payload, now);
        if pushed == Pushed::Accepted {
            // Repairs kept for this block may suffice now (a datagram that came late).
            self.repair_block_of(pos, idx, now);
        }
        pushed
    }

    /// Stores fragment `idx` of frame `pending[pos]`: the one path for received and
    /// restored fragments alike.
    pub(super) fn insert(
        &mut self,
        pos: usize,
        idx: u32,
        payload: Fragment<'_>,
        now: Instant,
    ) -> Pushed {
        let Some(slot) = self.pending.get_mut(pos) else {
            return Pushed::Late;
        };
        let (word, bit) = ((idx / 64) as usize, 1u64 << (idx % 64));
        match slot.received.get_mut(word) {
            Some(w) if *w & bit != 0 => return Pushed::Duplicate,
            Some(w) => *w |= bit,
            None => return Pushed::Invalid("fragment index out of range"),
        }
        let start = idx as usize * usize::from(slot.frag_size);
        let len = match payload {
            Fragment::Bytes(b) => b.len(),
            Fragment::Placed(len) => len,
        };
        match (slot.buf.as_mut().get_mut(start..start + len), payload) {
            (Some(dst), Fragment::Bytes(b)) => dst.copy_from_slice(b),
            (Some(_), Fragment::Placed(_)) => {}
            (None, _) => {
                if let Some(w) = slot.received.get_mut(word) {
                    *w &= !bit;
                }
                return Pushed::Invalid("fragment outside the frame");
            }
        }
        slot.missing -= 1;
        slot.latest = now;
        self.last_progress = Some(now);
        Pushed::Accepted
    }

    fn open_slot(
        &mut self,
        h: &Media,
        nfrags: u32,
        now: Instant,
        alloc: impl FnOnce(usize) -> Option<B>,
    ) -> Result<usize, Pushed> {
        // Keep frames ordered; make room by dropping the oldest frame when full.
        if self.pending.len() >= self.cfg.max_in_flight.max(1) {
            let oldest = self.pending.front().map(|s| s.info.frame);
            match oldest {
                Some(o) if seq_diff(h.frame, o) > 0 => self.drop_front(),
                _ => return Err(Pushed::Late),
            }
        }
        let len = h.frame_len as usize;
        let budget = self.budget;
        if self.bytes_in_flight + len > budget {
            // Only frames older than the new one may make room for it.
            let older: usize = self
                .pending
                .iter()
                .take_while(|s| seq_diff(h.frame, s.info.frame) > 0)
                .map(|s| s.info.len as usize)
                .sum();
            if self.bytes_in_flight - older + len > budget {
                return Err(Pushed::Invalid(NO_ROOM));
            }
            while self.bytes_in_flight + len > budget && !self.pending.is_empty() {
                self.drop_front();
            }
        }
        let newer_than_all = self
            .pending
            .back()
            .is_none_or(|b| seq_diff(h.frame, b.info.frame) > 0);
        let mut buf = alloc(len).ok_or(Pushed::NoBuffer)?;
        if buf.as_mut().len() < h.frame_len as usize {
            return Err(Pushed::NoBuffer);
        }
        let slot = Slot {
            info: FrameInfo {
                frame: h.frame,
                flags: h.flags,
                pts: h.pts,
                dts: h.dts,
                duration: h.duration,
                info_gen: h.info_gen,
                len: h.frame_len,
            },
            frag_size: h.frag_size,
            first_seq: None,
            fec: FrameFec::default(),
            buf,
            received: vec![0u64; nfrags.div_ceil(64) as usize],
            missing: nfrags,
            arrival: now,
            latest: now,
            repaired: false,
        };
        self.bytes_in_flight += len;
        if newer_than_all {
            self.pending.push_back(slot);
            Ok(self.pending.len() - 1)
        } else {
            let pos = self
                .pending
                .iter()
                .position(|s| seq_diff(h.frame, s.info.frame) < 0)
                .unwrap_or(self.pending.len());
            self.pending.insert(pos, slot);
            Ok(pos)
        }
    }

    fn drop_front(&mut self) {
        if let Some(s) = self.pop_front_slot() {
            self.note_out(s.info.frame);
            self.frames_dropped += 1;
            self.discont = true;
        }
    }

    /// Records that `frame` left (pushed or dropped), counting frames skipped before it.
    fn note_out(&mut self, frame: u32) {
        if let Some(last) = self.last_out {
            let gap = seq_diff(frame, last);
            if gap > 1 {
                self.frames_dropped += (gap - 1) as u64;
                self.discont = true;
            }
        }
        self.last_out = Some(frame);
    }

    /// True when the oldest frame in flight is complete.
    pub fn head_ready(&self) -> bool {
        self.pending.front().is_some_and(|s| s.missing == 0)
    }

    /// The next complete frame, in order, without dropping any frame.
    pub fn pop_ready(&mut self) -> Option<Frame<B>> {
        if self.pending.front()?.missing == 0 {
            return self.poll_at(None);
        }
        None
    }

    /// The next complete frame, in order, after dropping frames whose window has passed.
    pub fn poll(&mut self, now: Instant) -> Option<Frame<B>> {
        self.poll_at(Some(now))
    }

    fn poll_at(&mut self, now: Option<Instant>) -> Option<Frame<B>> {
        loop {
            let head = self.pending.front()?;
            if head.missing == 0 {
                let s = self.pop_front_slot()?;
                self.note_out(s.info.frame);
                self.frames_complete += 1;
                self.frames_recovered += u64::from(s.repaired);
                let discont = std::mem::take(&mut self.discont);
                return Some(Frame {
                    buf: s.buf,
                    info: s.info,
                    arrival: s.arrival,
                    discont,
                });
            }
            match now {
                Some(now) if now >= head.latest + self.cfg.window => self.drop_front(),
                _ => return None,
            }
        }
    }

    /// Drops every frame in flight (end of stream), counting them.
    pub fn drain(&mut self) {
        while !self.pending.is_empty() {
            self.drop_front();
        }
    }

    /// When [`poll`](Self::poll) may next have something to do without new datagrams.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.pending.front().map(|s| s.latest + self.cfg.window)
    }

    /// (frames complete, frames dropped).
    pub fn frame_counts(&self) -> (u64, u64) {
        (self.frames_complete, self.frames_dropped)
    }

    /// Frames handed out complete that needed recovered datagrams.
    pub fn frames_recovered(&self) -> u64 {
        self.frames_recovered
    }

    /// Notes that frame `frame` (in flight) got a datagram that loss recovery brought.
    pub fn note_repaired(&mut self, frame: u32) {
        if let Some(s) = self.pending.iter_mut().find(|s| s.info.frame == frame) {
            s.repaired = true;
        }
    }
}

/// True when bit `i` of the fragment bitmap is set.
pub(super) fn has(received: &[u64], i: u32) -> bool {
    received
        .get((i / 64) as usize)
        .is_some_and(|w| w & (1u64 << (i % 64)) != 0)
}
