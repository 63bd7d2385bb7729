// SPDX-License-Identifier: MPL-2.0
//! The receiver's use of FEC (§5.7): repair symbols are kept with the frame whose datagrams
//! they protect, and a block is restored as soon as it has as many repairs as it misses.
//! The erasure code itself is in [`crate::protocol::fec`]; the restored fragments go into the
//! frame through the same path as received ones ([`Reassembler`]).

use super::reassembler::{has, Fragment, Pushed, Reassembler};
use crate::protocol::fec::{self, Layout};
use crate::protocol::{self, fec_scheme, Fec};
use std::time::Instant;

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

impl<B: AsMut<[u8]>> Reassembler<B> {
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
            if self.insert(pos, i, Fragment::Bytes(&payload), now) == Pushed::Accepted {
                self.recovered.push(first_seq.wrapping_add(i));
                if let Some(slot) = self.pending.get_mut(pos) {
                    slot.repaired = true;
                }
            }
        }
    }

    /// Restores the block of fragment `idx` of frame `pending[pos]` if repairs kept for it
    /// now suffice.
    pub(super) fn repair_block_of(&mut self, pos: usize, idx: u32, now: Instant) {
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
}

/// Fragments block `b` misses.
fn block_missing(received: &[u64], layout: &Layout, b: u32) -> u32 {
    let (first, count) = layout.block(b);
    (first..first + count)
        .filter(|&i| !has(received, i))
        .count() as u32
}
