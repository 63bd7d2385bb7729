// SPDX-License-Identifier: MPL-2.0
//! Datagrams → frames: an I/O-free state machine.
//!
//! [`Session`] takes every received datagram (`push(bytes, from, now, alloc)`), locks on to
//! one sender's session (session id, track and source address), assembles its stream info
//! (caps) from pieces, keeps datagram statistics, and feeds media fragments to a
//! [`Reassembler`]. [`Session::poll`] then hands out complete frames in frame order, drops
//! frames still incomplete when the reassembly window has passed, and says when to call again.
//!
//! Memory is bounded: at most `max_in_flight` frames of at most `max_frame_size` bytes, and
//! at most `max_bytes_in_flight` bytes in all, are being assembled at once; per-frame
//! bookkeeping is bounded by [`MAX_FRAGMENTS`]; at most one stream info generation is being
//! assembled (at most [`protocol::MAX_CAPS_LEN`] bytes) besides the current one.

use crate::protocol::fec::{self, FrameFec, Layout};
use crate::protocol::{
    self, fec_scheme, header_flags, seq_diff, Body, DecodeError, Fec, Media, Nack, ReceiverReport,
    SenderReport, StreamInfo, MAX_CAPS_LEN, NO_DELAY,
};
use crate::recovery::{self, NackTracker};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Most fragments one frame may have (bounds the per-frame bitmap to 128 KiB).
pub use crate::protocol::MAX_FRAGMENTS;
/// A session silent this long (or ended with EOS) may be replaced by another session's
/// complete stream info on the same port. Short, so that a restarted sender (which picks a
/// new session id) is followed within about one stream info interval (250 ms in
/// `videoipsink`); long enough that a sender sending at least every 200 ms cannot be pushed
/// off its port by someone else's stream info.
pub const SESSION_IDLE: Duration = Duration::from_millis(200);
/// A frame number further ahead of the last frame handed out than this is not believed
/// (unless nothing else has made progress for a while, see [`Reassembler::push`]).
pub const MAX_FRAME_JUMP: i32 = 1024;

/// Reassembly limits.
#[derive(Debug, Clone, Copy)]
pub struct Config {
    /// Largest frame accepted, in bytes.
    pub max_frame_size: usize,
    /// Most frames assembled at once.
    pub max_in_flight: usize,
    /// How long an incomplete frame waits for a missing datagram after its latest one
    /// arrived.
    pub window: Duration,
    /// Most bytes of frames being assembled at once. A new frame that would exceed it
    /// evicts older frames in flight if that makes room; otherwise its datagram is dropped.
    /// A frame longer than this is refused outright.
    pub max_bytes_in_flight: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_frame_size: 128 << 20,
            max_in_flight: 32,
            window: Duration::from_millis(50),
            max_bytes_in_flight: 256 << 20,
        }
    }
}

/// Counters, all monotonic except `datagrams_lost`, which a late arrival corrects.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Datagrams received, valid or not.
    pub datagrams_received: u64,
    /// Bytes received, headers included.
    pub bytes_received: u64,
    /// Datagrams that were malformed, contradicted their frame, were too large, carried an
    /// authentication tag (not verifiable yet) or an unknown must-understand extension, or
    /// completed unacceptable caps.
    pub datagrams_invalid: u64,
    /// Datagrams of no session locked on to: before the first stream info, or from another
    /// session or source address while this one is active.
    pub datagrams_foreign: u64,
    /// Datagrams of a packet type this receiver does not know (ignored).
    pub datagrams_unknown: u64,
    /// Ignorable extensions of unknown type that were skipped.
    pub extensions_ignored: u64,
    /// Sequence numbers never seen (net of late arrivals).
    pub datagrams_lost: u64,
    /// Datagrams received twice.
    pub datagrams_duplicate: u64,
    /// Datagrams that arrived after a later one.
    pub datagrams_reordered: u64,
    /// Datagrams for frames already pushed or dropped.
    pub datagrams_late: u64,
    /// Frames complete and handed out.
    pub frames_complete: u64,
    /// Of those, frames that were complete only thanks to recovered datagrams.
    pub frames_recovered: u64,
    /// Frames dropped incomplete (window passed, evicted, or never seen at all).
    pub frames_dropped: u64,
    /// Complete frames dropped because their stream info (caps) had not arrived.
    pub frames_without_info: u64,
    /// Stream info datagrams (pieces) accepted.
    pub info_received: u64,
    /// Resent datagrams (retransmissions) received and kept.
    pub datagrams_retransmitted: u64,
    /// Datagrams asked for again (counted once per request).
    pub datagrams_requested: u64,
    /// NACKs sent (each request goes out as [`NACK_COPIES`] datagrams).
    pub nacks_sent: u64,
    /// Lost datagrams restored from FEC repair symbols.
    pub datagrams_recovered_fec: u64,
    /// Datagrams of frames larger than max-frame-size (also counted invalid).
    pub datagrams_too_large: u64,
    /// The largest frame length such a datagram claimed.
    pub largest_refused_frame: u32,
}

/// A request for datagrams to be sent again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NackRequest {
    /// Where to send it: the session's source address.
    pub to: SocketAddr,
    /// The session and track asked.
    pub nack: Nack,
    /// The datagrams, as (first sequence number, count).
    pub ranges: Vec<(u32, u32)>,
}

/// Copies sent of each NACK: a lost request costs a whole retry interval, a second copy
/// (a few hundred bytes) makes that rare; the sender answers a request once per
/// [`crate::send::history::RESEND_INTERVAL`], so the copy adds no resend.
pub const NACK_COPIES: usize = 2;

/// How often a receiver reports to the sender it is locked on to.
pub const REPORT_INTERVAL: Duration = Duration::from_millis(250);

/// Why a fragment of a frame larger than the configured maximum is refused.
const TOO_LARGE: &str = "frame larger than max-frame-size";

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

/// What a [`Reassembler::push_fec`] did with a repair symbol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FecPushed {
    /// Kept, or used to restore datagrams (see [`Reassembler::take_recovered`]).
    Used,
    /// Not needed: its block is complete or has enough repairs, or its frame is not being
    /// assembled (already complete, or long gone).
    Unneeded,
    /// A scheme this receiver does not know.
    Unknown,
    /// Contradicts its frame.
    Invalid(&'static str),
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

struct Slot<B> {
    info: FrameInfo,
    frag_size: u16,
    /// Sequence number of fragment 0 (a fragment's number less its index), to place what
    /// FEC restores; None once fragments disagree on it (FEC is then not used).
    first_seq: Option<u32>,
    /// Repair symbols kept for the frame's incomplete blocks.
    fec: FrameFec,
    buf: B,
    received: Vec<u64>,
    missing: u32,
    arrival: Instant,
    /// When its latest datagram arrived: the window runs from here, so that a frame still
    /// arriving (slowly paced, or read by a receiver that fell behind) is not given up.
    latest: Instant,
    /// Some of its datagrams were recovered (resent, or rebuilt): it would have been lost.
    repaired: bool,
}

/// Reassembles one stream's frames from fragments, in frame order, within a window.
pub struct Reassembler<B> {
    cfg: Config,
    pending: VecDeque<Slot<B>>,
    last_out: Option<u32>,
    discont: bool,
    frames_complete: u64,
    frames_dropped: u64,
    /// Frames complete only thanks to recovered datagrams.
    frames_recovered: u64,
    /// When a fragment was last accepted.
    last_progress: Option<Instant>,
    /// Sum of the lengths of the frames in `pending`.
    bytes_in_flight: usize,
    fec_decoder: fec::Decoder,
    /// Sequence numbers restored by FEC, not yet taken.
    recovered: Vec<u32>,
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
            cfg,
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
    fn insert(&mut self, pos: usize, idx: u32, payload: &[u8], now: Instant) -> Pushed {
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
        match slot.buf.as_mut().get_mut(start..start + payload.len()) {
            Some(dst) => dst.copy_from_slice(payload),
            None => return Pushed::Invalid("fragment outside the frame"),
        }
        slot.missing -= 1;
        slot.latest = now;
        self.last_progress = Some(now);
        Pushed::Accepted
    }

    /// Takes one FEC repair symbol (§5.7): kept with the frame whose datagrams it protects
    /// (found by sequence number), and used as soon as its block has enough repairs to
    /// restore what it misses.
    pub fn push_fec(&mut self, fec: &Fec, symbol: &[u8], now: Instant) -> FecPushed {
        if fec.scheme != fec_scheme::LEOPARD_GF16 {
            return FecPushed::Unknown;
        }
        let found = self.pending.iter().enumerate().find_map(|(pos, s)| {
            let first = fec.first_seq.wrapping_sub(s.first_seq?);
            (first < protocol::fragment_count(s.info.len, s.frag_size)).then_some((pos, first))
        });
        let Some((pos, first)) = found else {
            return FecPushed::Unneeded;
        };
        let slot = &mut self.pending[pos];
        let Some(layout) = Layout::new(slot.info.len, slot.frag_size) else {
            return FecPushed::Invalid("FEC for an empty frame");
        };
        let b = layout.block_of(first);
        let missing = block_missing(&slot.received, &layout, b);
        match slot.fec.add(&layout, first, fec, symbol, missing) {
            Err(why) => FecPushed::Invalid(why),
            Ok(fec::Added::Unneeded) => FecPushed::Unneeded,
            Ok(fec::Added::Kept(b)) => {
                self.repair_block(pos, &layout, b, now);
                FecPushed::Used
            }
        }
    }

    /// Restores block `b` of frame `pending[pos]` if its repairs suffice.
    fn repair_block(&mut self, pos: usize, layout: &Layout, b: u32, now: Instant) {
        let Some(slot) = self.pending.get_mut(pos) else {
            return;
        };
        let Some(first_seq) = slot.first_seq else {
            return;
        };
        if !slot
            .fec
            .decodable(b, block_missing(&slot.received, layout, b))
        {
            return;
        }
        let frag = usize::from(slot.frag_size);
        let buf: &[u8] = slot.buf.as_mut();
        let received = &slot.received;
        let present = |i: u32| {
            has(received, i).then(|| {
                let start = i as usize * frag;
                buf.get(start..start + layout.payload_len(i))
            })?
        };
        let mut restored = Vec::new();
        let result = slot
            .fec
            .decode(&mut self.fec_decoder, layout, b, present, |i, p| {
                restored.push((i, p.to_vec()))
            });
        if result.is_err() {
            return;
        }
        for (i, payload) in restored {
            if self.insert(pos, i, &payload, now) == Pushed::Accepted {
                self.recovered.push(first_seq.wrapping_add(i));
                if let Some(slot) = self.pending.get_mut(pos) {
                    slot.repaired = true;
                }
            }
        }
    }

    /// Restores the block of fragment `idx` of frame `pending[pos]` if repairs kept for it
    /// now suffice.
    fn repair_block_of(&mut self, pos: usize, idx: u32, now: Instant) {
        let Some(slot) = self.pending.get(pos) else {
            return;
        };
        if slot.missing == 0 || slot.first_seq.is_none() || slot.fec.is_empty() {
            return;
        }
        if let Some(layout) = Layout::new(slot.info.len, slot.frag_size) {
            let b = layout.block_of(idx);
            if slot.fec.waiting(b) {
                self.repair_block(pos, &layout, b, now);
            }
        }
    }

    /// The sequence numbers FEC restored since the last call.
    pub fn take_recovered(&mut self) -> std::vec::Drain<'_, u32> {
        self.recovered.drain(..)
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
        let budget = self.cfg.max_bytes_in_flight;
        if self.bytes_in_flight + len > budget {
            // Only frames older than the new one may make room for it.
            let older: usize = self
                .pending
                .iter()
                .take_while(|s| seq_diff(h.frame, s.info.frame) > 0)
                .map(|s| s.info.len as usize)
                .sum();
            if self.bytes_in_flight - older + len > budget {
                return Err(Pushed::Invalid(
                    "memory budget for frames in flight exhausted",
                ));
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
fn has(received: &[u64], i: u32) -> bool {
    received
        .get((i / 64) as usize)
        .is_some_and(|w| w & (1u64 << (i % 64)) != 0)
}

/// Fragments block `b` misses.
fn block_missing(received: &[u64], layout: &Layout, b: u32) -> u32 {
    let (first, count) = layout.block(b);
    (first..first + count)
        .filter(|&i| !has(received, i))
        .count() as u32
}

/// What happened to one sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeqEvent {
    /// The newest so far.
    InOrder,
    /// Older than the newest, not seen before.
    Reordered,
    /// Seen before.
    Duplicate,
    /// Too old to tell.
    TooOld,
}

/// Sequence numbers remembered (as bits): resends of 1080p60 (175,000 datagrams a second)
/// still count as recovered when they come 150 ms after their loss.
const SEQ_WINDOW: u32 = 1 << 15;
/// A forward jump larger than this is a resynchronisation, not a loss.
const SEQ_MAX_JUMP: i32 = 1 << 16;
/// This many datagrams in a row too old to place make the tracker follow the new numbers.
const SEQ_RESYNC_RUN: u32 = 64;

/// Wrap-safe loss, duplicate and reordering accounting over a window of sequence numbers.
#[derive(Debug, Clone)]
pub struct SequenceTracker {
    highest: Option<u32>,
    seen: Vec<u64>,
    lost: i64,
    duplicate: u64,
    reordered: u64,
    too_old_run: u32,
    /// The number counting started (or restarted) from.
    base: u32,
}

impl Default for SequenceTracker {
    fn default() -> Self {
        SequenceTracker {
            highest: None,
            seen: vec![0; (SEQ_WINDOW / 64) as usize],
            lost: 0,
            duplicate: 0,
            reordered: 0,
            too_old_run: 0,
            base: 0,
        }
    }
}

impl SequenceTracker {
    fn bit(&mut self, seq: u32) -> (&mut u64, u64) {
        let i = seq % SEQ_WINDOW;
        (&mut self.seen[(i / 64) as usize], 1u64 << (i % 64))
    }

    /// Accounts for one received sequence number that was resent: as [`track`](Self::track),
    /// except that one too old to place is no sign that the numbering moved.
    pub fn track_resent(&mut self, seq: u32) -> SeqEvent {
        if let Some(highest) = self.highest {
            let d = seq_diff(seq, highest);
            if d <= 0 && d.unsigned_abs() >= SEQ_WINDOW {
                return SeqEvent::TooOld;
            }
        }
        self.track(seq)
    }

    /// Accounts for one received sequence number.
    pub fn track(&mut self, seq: u32) -> SeqEvent {
        let Some(highest) = self.highest else {
            self.highest = Some(seq);
            self.base = seq;
            let (w, b) = self.bit(seq);
            *w |= b;
            return SeqEvent::InOrder;
        };
        let d = seq_diff(seq, highest);
        if d > 0 {
            self.too_old_run = 0;
            if d > SEQ_MAX_JUMP {
                self.seen.iter_mut().for_each(|w| *w = 0);
                self.base = seq;
            } else {
                self.lost += i64::from(d - 1);
                if d as u32 >= SEQ_WINDOW {
                    self.seen.iter_mut().for_each(|w| *w = 0);
                } else {
                    for k in 1..=d as u32 {
                        let (w, b) = self.bit(highest.wrapping_add(k));
                        *w &= !b;
                    }
                }
            }
            self.highest = Some(seq);
            let (w, b) = self.bit(seq);
            *w |= b;
            return SeqEvent::InOrder;
        }
        if d.unsigned_abs() >= SEQ_WINDOW {
            // A run of them means the sequence moved (a forged or stray jump ahead, or a
            // sender that restarted its count): follow it instead of calling everything old.
            self.too_old_run += 1;
            if self.too_old_run >= SEQ_RESYNC_RUN {
                self.too_old_run = 0;
                self.seen.iter_mut().for_each(|w| *w = 0);
                self.highest = Some(seq);
                self.base = seq;
                let (w, b) = self.bit(seq);
                *w |= b;
                return SeqEvent::InOrder;
            }
            return SeqEvent::TooOld;
        }
        self.too_old_run = 0;
        let (w, b) = self.bit(seq);
        if *w & b != 0 {
            self.duplicate += 1;
            return SeqEvent::Duplicate;
        }
        *w |= b;
        self.reordered += 1;
        // Only numbers after the one counting started from were ever counted lost.
        if seq_diff(seq, self.base) > 0 {
            self.lost -= 1;
        }
        SeqEvent::Reordered
    }

    /// Accounts for a number restored otherwise (by FEC): no longer lost, and a copy that
    /// comes later is a duplicate. Not counted as reordered.
    pub fn recovered(&mut self, seq: u32) {
        let Some(highest) = self.highest else {
            return;
        };
        let d = seq_diff(seq, highest);
        if d >= 0 || d.unsigned_abs() >= SEQ_WINDOW {
            return;
        }
        let (w, b) = self.bit(seq);
        if *w & b != 0 {
            return;
        }
        *w |= b;
        if seq_diff(seq, self.base) > 0 {
            self.lost -= 1;
        }
    }

    /// Sequence numbers not (yet) seen.
    pub fn lost(&self) -> u64 {
        self.lost.max(0) as u64
    }
}

/// What a [`Session`] hands out.
#[derive(Debug)]
pub enum Event<B> {
    /// A complete frame, with the caps string of its stream info generation.
    Frame(Frame<B>, Arc<str>),
    /// The sender ended the stream.
    Eos,
}

/// Who sent a datagram: a receiver follows one of these at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Source {
    session: u64,
    track: u16,
    from: SocketAddr,
}

/// The stream info in use: generation, caps, and the newest sequence number it came with.
#[derive(Debug)]
struct StoredInfo {
    gen: u16,
    caps: Arc<str>,
    seq: u32,
}

/// One stream info generation being assembled from its pieces.
#[derive(Debug)]
struct InfoAssembly {
    source: Source,
    gen: u16,
    buf: Vec<u8>,
    /// One bit per caps byte received.
    have: Vec<u64>,
    missing: usize,
    /// The newest sequence number of its pieces.
    seq: u32,
}

impl InfoAssembly {
    fn new(source: Source, gen: u16, len: usize, seq: u32) -> Self {
        InfoAssembly {
            source,
            gen,
            buf: vec![0; len],
            have: vec![0; len.div_ceil(64)],
            missing: len,
            seq,
        }
    }

    /// Adds a piece (already checked to lie inside the caps); true once complete.
    fn add(&mut self, offset: usize, piece: &[u8], seq: u32) -> bool {
        if let Some(dst) = self.buf.get_mut(offset..offset + piece.len()) {
            dst.copy_from_slice(piece);
            for i in offset..offset + piece.len() {
                if let Some(w) = self.have.get_mut(i / 64) {
                    let bit = 1u64 << (i % 64);
                    if *w & bit == 0 {
                        *w |= bit;
                        self.missing -= 1;
                    }
                }
            }
        }
        if seq_diff(seq, self.seq) > 0 {
            self.seq = seq;
        }
        self.missing == 0
    }
}

/// One receiver's view of the stream on its port: lock-on, stream info, statistics,
/// reassembly and end of stream.
pub struct Session<B> {
    reasm: Reassembler<B>,
    seq: SequenceTracker,
    locked: Option<Source>,
    /// Whether any session was ever locked on to (a later one starts discontinuous).
    had_lock: bool,
    last_seen: Option<Instant>,
    info: Option<StoredInfo>,
    assembly: Option<InfoAssembly>,
    /// The locked session's latest sender report: its sequence number, when it arrived, and
    /// what it said.
    sender_report: Option<(u32, Instant, SenderReport)>,
    /// When the next receiver report is due.
    report_at: Option<Instant>,
    /// Missing datagrams of the locked session, and when to ask for them.
    nacks: NackTracker,
    /// The newest frame number a media datagram carried.
    newest_frame: Option<u32>,
    eos: bool,
    eos_sent: bool,
    stats: Stats,
}

impl<B> std::fmt::Debug for Session<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("locked", &self.locked)
            .field("info", &self.info)
            .field("stats", &self.stats)
            .finish()
    }
}

impl<B: AsMut<[u8]>> Session<B> {
    /// A session that has not seen a stream yet.
    pub fn new(cfg: Config) -> Self {
        Session {
            reasm: Reassembler::new(cfg),
            seq: SequenceTracker::default(),
            locked: None,
            had_lock: false,
            last_seen: None,
            info: None,
            assembly: None,
            sender_report: None,
            report_at: None,
            nacks: NackTracker::new(recovery::Config {
                give_up: cfg.window,
                // FEC first, but leave NACKs two fifths of the window.
                fec_wait: cfg.window * 3 / 5,
                ..Default::default()
            }),
            newest_frame: None,
            eos: false,
            eos_sent: false,
            stats: Stats::default(),
        }
    }

    /// The round trip to the sender, as measured from requests to the resends they brought.
    pub fn rtt(&self) -> Option<Duration> {
        self.nacks.rtt()
    }

    /// The locked session's latest sender report (what it said), if one came.
    pub fn sender_report(&self) -> Option<SenderReport> {
        self.sender_report.map(|(_, _, r)| r)
    }

    /// The report to send the sender now, and where: None until a session is locked on to.
    /// It echoes the latest sender report's sequence number and how long ago it came, so that
    /// the sender can measure the round trip.
    fn receiver_report(&self, now: Instant) -> Option<(SocketAddr, u16, ReceiverReport)> {
        let source = self.locked?;
        let s = self.stats();
        let (echo_seq, delay_us) = match self.sender_report {
            Some((seq, at, _)) => (
                seq,
                u32::try_from(now.saturating_duration_since(at).as_micros())
                    .unwrap_or(NO_DELAY - 1),
            ),
            None => (0, NO_DELAY),
        };
        let report = ReceiverReport {
            session: source.session,
            track: source.track,
            highest_seq: self.seq.highest.unwrap_or(0),
            datagrams_received: s.datagrams_received,
            datagrams_lost: s.datagrams_lost,
            frames_complete: s.frames_complete as u32,
            frames_dropped: s.frames_dropped as u32,
            echoed_report_seq: echo_seq,
            delay_us,
        };
        Some((source.from, source.track, report))
    }

    /// The current stream info: generation and caps string.
    pub fn info(&self) -> Option<(u16, &str)> {
        self.info.as_ref().map(|i| (i.gen, &*i.caps))
    }

    /// The statistics so far.
    pub fn stats(&self) -> Stats {
        let mut s = self.stats;
        s.datagrams_lost = self.seq.lost();
        s.datagrams_duplicate = self.seq.duplicate;
        s.datagrams_reordered = self.seq.reordered;
        (s.frames_complete, s.frames_dropped) = self.reasm.frame_counts();
        s.frames_recovered = self.reasm.frames_recovered();
        s
    }

    /// Counts a datagram that never reached [`push`](Self::push) (e.g. truncated by the
    /// socket layer) as received and invalid.
    pub fn count_invalid(&mut self) {
        self.stats.datagrams_received += 1;
        self.stats.datagrams_invalid += 1;
    }

    /// The session id locked on to, if any.
    pub fn session_id(&self) -> Option<u64> {
        self.locked.map(|l| l.session)
    }

    /// The address the session locked on to sends from.
    pub fn source_addr(&self) -> Option<SocketAddr> {
        self.locked.map(|l| l.from)
    }

    /// Frames being assembled.
    pub fn in_flight(&self) -> usize {
        self.reasm.in_flight()
    }

    /// Bytes of the frames being assembled.
    pub fn bytes_in_flight(&self) -> usize {
        self.reasm.bytes_in_flight()
    }

    /// Bytes of FEC repair symbols kept with them.
    pub fn fec_bytes(&self) -> usize {
        self.reasm.fec_bytes()
    }

    /// Rejects the current stream info (its caps could not be used): counted invalid, and
    /// frames wait for the next stream info.
    pub fn reject_info(&mut self) {
        if self.info.take().is_some() {
            self.stats.datagrams_invalid += 1;
        }
        // A stream without usable caps is not worth staying locked on to: the next valid
        // stream info, from it or from another sender, locks on afresh.
        self.locked = None;
    }

    /// True when the session locked on to may be replaced by another.
    fn may_take_over(&self, now: Instant) -> bool {
        self.eos
            || self
                .last_seen
                .is_none_or(|t| now.saturating_duration_since(t) >= SESSION_IDLE)
    }

    fn switch_to(&mut self, source: Source) {
        self.locked = Some(source);
        self.reasm.reset();
        if std::mem::replace(&mut self.had_lock, true) {
            // Whatever the old session left behind, the new one starts a new stream.
            self.reasm.mark_discont();
        }
        self.seq = SequenceTracker::default();
        self.nacks.reset();
        self.newest_frame = None;
        self.info = None;
        self.sender_report = None;
        self.eos = false;
        self.eos_sent = false;
    }

    /// Takes one received datagram, which came from `from`. `alloc(len)` is called when a
    /// new frame needs `len` bytes. Returns true when a complete frame is ready to be taken
    /// out: call [`poll_ready`](Self::poll_ready) then, as complete frames that were not taken
    /// out still count against the frames in flight. Returns the decode error for a datagram
    /// that is not valid videoip (already counted).
    pub fn push(
        &mut self,
        datagram: &[u8],
        from: SocketAddr,
        now: Instant,
        alloc: impl FnOnce(usize) -> Option<B>,
    ) -> Result<bool, DecodeError> {
        self.stats.datagrams_received += 1;
        self.stats.bytes_received += datagram.len() as u64;
        let p = match protocol::decode(datagram) {
            Ok(p) => p,
            Err(e) => {
                self.stats.datagrams_invalid += 1;
                return Err(e);
            }
        };
        self.stats.extensions_ignored += u64::from(p.extensions.ignored);
        if p.header.flags & header_flags::AUTH_TAG != 0 {
            // Nothing here can verify a tag yet: an unverifiable datagram is not trusted.
            self.stats.datagrams_invalid += 1;
            return Ok(false);
        }
        let source = Source {
            session: p.header.session,
            track: p.header.track,
            from,
        };
        let ours = self.locked == Some(source);
        if let Body::StreamInfo(si) = &p.body {
            self.stream_info(source, ours, si, p.header.seq, p.payload, now);
            return Ok(self.reasm.head_ready());
        }
        if let Body::Unknown(_) = p.body {
            self.stats.datagrams_unknown += 1;
        }
        // Everything else counts only from the session locked on to, from its address: a
        // flood of forged EOS or control datagrams with other ids cannot touch the stream.
        if !ours {
            if !matches!(p.body, Body::Unknown(_)) {
                self.stats.datagrams_foreign += 1;
            }
            return Ok(false);
        }
        self.last_seen = Some(now);
        let resent = p.header.flags & header_flags::RETRANSMISSION != 0;
        let event = if resent {
            self.seq.track_resent(p.header.seq)
        } else {
            self.seq.track(p.header.seq)
        };
        if event == SeqEvent::Duplicate {
            return Ok(false);
        }
        if resent {
            self.nacks.resent(p.header.seq, now);
            self.stats.datagrams_retransmitted += 1;
        } else {
            self.nacks.received(p.header.seq, now);
            if let Body::Media(m) = &p.body {
                // Where this datagram's frame ends, so that a lost end is found.
                if m.frag_size > 0 {
                    let count = protocol::fragment_count(m.frame_len, m.frag_size);
                    let index = m.offset / u32::from(m.frag_size);
                    if index < count {
                        let duration = (m.duration != protocol::TIME_NONE)
                            .then(|| Duration::from_nanos(m.duration));
                        self.nacks
                            .expect_through(p.header.seq.wrapping_add(count - 1 - index), duration);
                    }
                }
            }
        }
        if let Body::Media(m) = &p.body {
            // A later frame has begun: every repair of the frames before it was sent.
            if self.newest_frame.is_none_or(|f| seq_diff(m.frame, f) > 0) {
                self.newest_frame = Some(m.frame);
                let idx = m.offset.checked_div(u32::from(m.frag_size)).unwrap_or(0);
                self.nacks
                    .fec_release(p.header.seq.wrapping_sub(idx), p.header.seq);
            }
        }
        match &p.body {
            Body::Media(m) => match self.reasm.push(m, p.header.seq, p.payload, now, alloc) {
                Pushed::Accepted if resent => self.reasm.note_repaired(m.frame),
                Pushed::Accepted | Pushed::Duplicate => {}
                Pushed::Late => self.stats.datagrams_late += 1,
                Pushed::Invalid(why) if why == TOO_LARGE => {
                    self.stats.datagrams_invalid += 1;
                    self.stats.datagrams_too_large += 1;
                    self.stats.largest_refused_frame =
                        self.stats.largest_refused_frame.max(m.frame_len);
                }
                Pushed::Invalid(_) | Pushed::NoBuffer => self.stats.datagrams_invalid += 1,
            },
            Body::Fec(f) => {
                self.nacks.fec_seen(
                    p.header.seq,
                    f.first_seq,
                    f.protected_count,
                    f.repair_index,
                    f.repair_count,
                    now,
                );
                match self.reasm.push_fec(f, p.payload, now) {
                    FecPushed::Used | FecPushed::Unneeded => {}
                    FecPushed::Unknown => self.stats.datagrams_unknown += 1,
                    FecPushed::Invalid(_) => self.stats.datagrams_invalid += 1,
                }
            }
            Body::EndOfStream(_) => self.eos = true,
            Body::SenderReport(r) => self.sender_report = Some((p.header.seq, now, *r)),
            // Understood, not acted on yet: metadata, and messages a
            // receiver should not get (receiver reports, NACKs, subscriptions, requests).
            _ => {}
        }
        for seq in self.reasm.take_recovered() {
            self.seq.recovered(seq);
            self.nacks.forget(seq);
            self.stats.datagrams_recovered_fec += 1;
        }
        Ok(self.reasm.head_ready())
    }

    /// A stream info piece: assembled, and once complete and acceptable, stored (locking on
    /// to its session first if it may).
    fn stream_info(
        &mut self,
        source: Source,
        ours: bool,
        si: &StreamInfo,
        seq: u32,
        piece: &[u8],
        now: Instant,
    ) {
        if ours {
            self.last_seen = Some(now);
            if self.seq.track(seq) == SeqEvent::Duplicate {
                return;
            }
            self.nacks.received(seq, now);
            // A piece of the info in use, repeated: only remember how recent it is.
            if let Some(info) = &mut self.info {
                let start = si.offset as usize;
                if info.gen == si.info_gen
                    && info.caps.len() == si.caps_len as usize
                    && info.caps.as_bytes().get(start..start + piece.len()) == Some(piece)
                {
                    if seq_diff(seq, info.seq) > 0 {
                        info.seq = seq;
                    }
                    self.stats.info_received += 1;
                    return;
                }
            }
        } else if self.locked.is_some() && !self.may_take_over(now) {
            self.stats.datagrams_foreign += 1;
            return;
        }
        let len = (si.caps_len as usize).min(MAX_CAPS_LEN);
        let same = self
            .assembly
            .as_ref()
            .is_some_and(|a| a.source == source && a.gen == si.info_gen && a.buf.len() == len);
        if !same {
            self.assembly = Some(InfoAssembly::new(source, si.info_gen, len, seq));
        }
        self.stats.info_received += 1;
        let complete = self
            .assembly
            .as_mut()
            .is_some_and(|a| a.add(si.offset as usize, piece, seq));
        if !complete {
            return;
        }
        let Some(a) = self.assembly.take() else {
            return;
        };
        let caps = match protocol::check_caps_bytes(&a.buf) {
            Ok(caps) => caps,
            Err(_) => {
                self.stats.datagrams_invalid += 1;
                return;
            }
        };
        if !ours {
            self.switch_to(source);
            self.last_seen = Some(now);
            self.seq.track(seq);
        }
        match &mut self.info {
            Some(info) if info.gen == a.gen && *info.caps == *caps => {
                if seq_diff(a.seq, info.seq) > 0 {
                    info.seq = a.seq;
                }
            }
            // An older announcement overtaken on the way: ignore it.
            Some(info) if seq_diff(a.seq, info.seq) <= 0 => {}
            _ => {
                self.info = Some(StoredInfo {
                    gen: a.gen,
                    caps: Arc::from(caps),
                    seq: a.seq,
                })
            }
        }
    }

    /// The next complete frame whose stream info is known, dropping nothing. A receiver
    /// calls this after each datagram, and [`poll`](Self::poll) once its socket is drained
    /// (and once per window under traffic that never drains it).
    pub fn poll_ready(&mut self) -> Option<Event<B>> {
        while let Some(f) = self.reasm.pop_ready() {
            if let Some(ev) = self.frame_event(f) {
                return Some(ev);
            }
        }
        None
    }

    /// The next event: a complete frame whose stream info is known, or end of stream, after
    /// dropping frames whose reassembly window has passed.
    pub fn poll(&mut self, now: Instant) -> Option<Event<B>> {
        while let Some(f) = self.reasm.poll(now) {
            if let Some(ev) = self.frame_event(f) {
                return Some(ev);
            }
        }
        // End of stream once the frames still being recovered are complete or given up:
        // the sender's end-of-stream datagram overtakes the resends they wait for.
        if self.eos && self.reasm.in_flight() == 0 && !self.eos_sent {
            self.eos_sent = true;
            return Some(Event::Eos);
        }
        None
    }

    fn frame_event(&mut self, f: Frame<B>) -> Option<Event<B>> {
        match &self.info {
            Some(info) if info.gen == f.info.info_gen => Some(Event::Frame(f, info.caps.clone())),
            _ => {
                self.stats.frames_without_info += 1;
                self.reasm.mark_discont();
                None
            }
        }
    }

    /// Marks the next frame handed out as discontinuous (the caller dropped one).
    pub fn mark_discont(&mut self) {
        self.reasm.mark_discont();
    }

    /// When [`poll`](Self::poll), [`poll_report`](Self::poll_report) or
    /// [`poll_nack`](Self::poll_nack) may next have something to do without new datagrams.
    pub fn next_deadline(&self) -> Option<Instant> {
        let report = self.locked.and(self.report_at);
        let nack = self.locked.and(self.nacks.next_deadline());
        [self.reasm.next_deadline(), report, nack]
            .into_iter()
            .flatten()
            .min()
    }

    /// The datagrams to ask the locked session to send again, if any are due: where to send
    /// the NACK, what it reports on, and the ranges (first, count).
    pub fn poll_nack(&mut self, now: Instant) -> Option<NackRequest> {
        let source = self.locked?;
        let ranges = self.nacks.poll(now)?;
        self.stats.datagrams_requested += ranges.iter().map(|r| u64::from(r.1)).sum::<u64>();
        self.stats.nacks_sent += 1;
        Some(NackRequest {
            to: source.from,
            nack: Nack {
                session: source.session,
                track: source.track,
            },
            ranges,
        })
    }

    /// The receiver report to send now, if one is due: every [`REPORT_INTERVAL`] while a
    /// session is locked on to, the first at once.
    pub fn poll_report(&mut self, now: Instant) -> Option<(SocketAddr, u16, ReceiverReport)> {
        self.locked?;
        if self.report_at.is_some_and(|at| now < at) {
            return None;
        }
        self.report_at = Some(now + REPORT_INTERVAL);
        self.receiver_report(now)
    }
}

#[cfg(test)]
#[path = "reassembly_tests.rs"]
mod tests;
