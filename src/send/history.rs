// SPDX-License-Identifier: MPL-2.0
//! Recently sent frames, kept by reference for resending, and the resend budget of each
//! receiver that asks.
//! I/O-free, driven by `now`.

use crate::protocol::{header_flags, patch_seq_offset, seq_diff, MEDIA_HEADER_LEN};
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// How long sent frames are kept for resending: a receiver gives up on a datagram after its
/// window (50 ms by default), and holding buffers longer could starve an upstream pool.
pub const HISTORY_KEEP: Duration = Duration::from_millis(200);
/// A datagram is resent at most once per this interval, however many receivers ask (one
/// resend to a multicast group serves them all).
pub const RESEND_INTERVAL: Duration = Duration::from_millis(5);

/// One sent frame, kept (by reference to its buffer) for resending.
#[derive(Debug)]
pub struct SentFrame<B> {
    /// Sequence number of its first datagram.
    pub first_seq: u32,
    /// Its datagrams.
    pub count: u32,
    /// Payload bytes per datagram (all but the last).
    pub frag: usize,
    /// Its encoded media headers (sequence number and offset of the first datagram).
    pub header: [u8; MEDIA_HEADER_LEN],
    /// The frame's bytes.
    pub data: B,
    /// When it was sent.
    pub at: Instant,
}

/// Recently sent frames, and what was resent when: answers NACKs.
#[derive(Debug)]
pub struct History<B> {
    frames: VecDeque<SentFrame<B>>,
    /// Datagrams resent within the last [`RESEND_INTERVAL`], and when. (Each is resent once
    /// per request: sending repeats twice was tried and, through a congested bottleneck,
    /// doubled the congestion that had lost them.)
    resent: HashMap<u32, Instant>,
    /// The newest sequence number sent: later ones of a frame being paced out are not
    /// resent (they are on their way; a receiver that asks for them took a pause of the
    /// sender's for their loss).
    sent_through: Option<u32>,
    /// Bytes of resends granted so far to every receiver that asks: each frame sent adds
    /// its share ([`limit_percent`](Self::limit_percent)) of its bytes.
    credit: u64,
    /// Most bytes a receiver may have in hand: one second's worth, roughly.
    cap: u64,
    /// Each receiver's budget: what it had in hand, and the credit as of then. A receiver
    /// asking for resends spends its own budget only, so no one (a hostile receiver, or
    /// one on a bad link) drains another's recovery.
    budgets: HashMap<SocketAddr, (u64, u64)>,
    /// The share of the bytes sent that each receiver's resends may take, in percent.
    limit_percent: usize,
}

/// Most receivers with a budget of their own; beyond, those with a full budget (idle) are
/// forgotten (they start full again).
pub const MAX_BUDGETS: usize = 1024;

impl<B: AsRef<[u8]>> History<B> {
    /// An empty history whose resends may take at most `limit_percent` % of the bytes sent.
    pub fn new(limit_percent: usize) -> Self {
        History {
            frames: VecDeque::new(),
            resent: HashMap::new(),
            sent_through: None,
            credit: 0,
            cap: 0,
            budgets: HashMap::new(),
            limit_percent,
        }
    }

    /// Keeps a frame about to be sent; forgets frames older than [`HISTORY_KEEP`].
    pub fn push(&mut self, frame: SentFrame<B>, now: Instant) {
        let bytes = frame.data.as_ref().len() + frame.count as usize * MEDIA_HEADER_LEN;
        // Budgets refill with each frame and hold at most one second's worth of the
        // current rate (roughly: the frames kept).
        self.credit += (bytes * self.limit_percent / 100) as u64;
        self.cap = (bytes.saturating_mul(self.limit_percent).saturating_mul(60) / 100) as u64;
        self.frames.push_back(frame);
        while self
            .frames
            .front()
            .is_some_and(|f| now.saturating_duration_since(f.at) > HISTORY_KEEP)
        {
            self.frames.pop_front();
        }
        self.resent
            .retain(|_, t| now.saturating_duration_since(*t) < RESEND_INTERVAL);
    }

    /// Records that every datagram up to `seq` has been sent.
    pub fn sent_through(&mut self, seq: u32) {
        self.sent_through = Some(seq);
    }

    /// The payload of datagram `seq`, if its frame is kept.
    pub fn payload(&self, seq: u32) -> Option<&[u8]> {
        let f = self.frame_of(seq)?;
        let data = f.data.as_ref();
        let start = (seq.wrapping_sub(f.first_seq) as usize * f.frag).min(data.len());
        data.get(start..(start + f.frag).min(data.len()))
    }

    /// The header, with the R flag, of datagram `seq` to resend now (its payload is
    /// [`payload`](Self::payload)), or None: not kept (too old, not media), not sent yet,
    /// resent too recently, or over the budget.
    pub fn resend(
        &mut self,
        seq: u32,
        now: Instant,
        requester: SocketAddr,
    ) -> Option<[u8; MEDIA_HEADER_LEN]> {
        if self.sent_through.is_some_and(|s| seq_diff(seq, s) > 0) {
            return None;
        }
        if self
            .resent
            .get(&seq)
            .is_some_and(|t| now.saturating_duration_since(*t) < RESEND_INTERVAL)
        {
            return None;
        }
        let f = self.frame_of(seq)?;
        let start = (seq.wrapping_sub(f.first_seq) as usize * f.frag).min(f.data.as_ref().len());
        let mut header = f.header;
        let cost = (self.payload(seq)?.len() + MEDIA_HEADER_LEN) as u64;
        let budget = self.budget(requester);
        if cost > budget {
            return None;
        }
        if !self.budgets.contains_key(&requester) && self.budgets.len() >= MAX_BUDGETS {
            let (credit, cap) = (self.credit, self.cap);
            self.budgets
                .retain(|_, (had, seen)| (*had + (credit - *seen)) < cap);
            if self.budgets.len() >= MAX_BUDGETS {
                return None;
            }
        }
        self.budgets.insert(requester, (budget - cost, self.credit));
        self.resent.insert(seq, now);
        patch_seq_offset(&mut header, seq, start as u32);
        header[4] |= header_flags::RETRANSMISSION;
        Some(header)
    }

    /// Bytes `requester` may have resent now (a receiver not heard before: what one that
    /// never asked would have).
    pub fn budget(&self, requester: SocketAddr) -> u64 {
        let (had, seen) = self.budgets.get(&requester).copied().unwrap_or((0, 0));
        (had + (self.credit - seen)).min(self.cap)
    }

    /// The first sequence number of the kept frame datagram `seq` belongs to.
    pub fn frame_first_seq(&self, seq: u32) -> Option<u32> {
        self.frame_of(seq).map(|f| f.first_seq)
    }

    /// The bytes of the kept frame whose first datagram is `first_seq` (the newest frames
    /// are looked at first: the one being sent is the last).
    pub fn frame_data(&self, first_seq: u32) -> Option<&[u8]> {
        self.frames
            .iter()
            .rev()
            .find(|f| f.first_seq == first_seq)
            .map(|f| f.data.as_ref())
    }

    /// Frames kept.
    pub fn len(&self) -> usize {
        self.frames.len()
    }

    /// True when no frame is kept.
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// Forgets every kept frame (their buffers go back upstream).
    pub fn clear(&mut self) {
        self.frames.clear();
        self.resent.clear();
    }

    /// The kept frame datagram `seq` belongs to.
    fn frame_of(&self, seq: u32) -> Option<&SentFrame<B>> {
        self.frames
            .iter()
            .find(|f| seq.wrapping_sub(f.first_seq) < f.count)
    }
}

#[cfg(test)]
#[path = "history_tests.rs"]
mod tests;
