// SPDX-License-Identifier: MPL-2.0
//! Sequence numbers of the session locked on to: wrap-safe loss, duplicate and reordering
//! accounting over a window of numbers, without I/O.

use crate::protocol::seq_diff;

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

    /// The highest number seen, if any.
    pub fn highest(&self) -> Option<u32> {
        self.highest
    }

    /// Numbers received twice.
    pub fn duplicate(&self) -> u64 {
        self.duplicate
    }

    /// Numbers that arrived after a later one.
    pub fn reordered(&self) -> u64 {
        self.reordered
    }
}

#[cfg(test)]
#[path = "sequence_tests.rs"]
mod tests;
