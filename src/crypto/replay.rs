// SPDX-License-Identifier: MPL-2.0
//! Anti-replay window over extended sequence numbers: the bitmap of RFC 6479, whose cost per
//! datagram does not grow with the window.

use std::fmt;

/// Why a sequence number was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replay {
    /// Seen before.
    Duplicate,
    /// Older than the window remembers.
    TooOld,
}

impl fmt::Display for Replay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Duplicate => "replayed datagram (sequence number seen before)",
            Self::TooOld => "datagram older than the replay window",
        })
    }
}

impl std::error::Error for Replay {}

/// Remembers which of the last `bits` extended sequence numbers below the highest one were
/// seen. Feed it only datagrams whose tag verified, or a forger could move it.
#[derive(Debug, Clone)]
pub struct ReplayWindow {
    /// A ring of 64-bit blocks; bit `s % 64` of block `(s / 64) % len` is sequence number s.
    blocks: Vec<u64>,
    /// Sequence numbers remembered below (and including) `top`.
    bits: u64,
    /// Highest sequence number seen.
    top: Option<u64>,
}

impl ReplayWindow {
    /// For a sender's media: 2^18 sequence numbers (32 KiB), more than 200 ms of resends
    /// at 2160p60 (about 720,000 datagrams a second).
    pub const MEDIA_BITS: usize = 1 << 18;
    /// For a back-channel peer (a receiver's reports and requests): 2^10.
    pub const BACK_CHANNEL_BITS: usize = 1 << 10;

    /// A window of at least `bits` sequence numbers (at least 64; rounded up to a multiple
    /// of 64). It takes `bits / 8 + 8` bytes.
    pub fn new(bits: usize) -> Self {
        let blocks = bits.max(64).div_ceil(64);
        Self {
            // One block more than the window: the block of `top` is only partly in it.
            blocks: vec![0; blocks + 1],
            bits: blocks as u64 * 64,
            top: None,
        }
    }

    /// A window for a back-channel peer: [`Self::BACK_CHANNEL_BITS`].
    pub fn back_channel() -> Self {
        Self::new(Self::BACK_CHANNEL_BITS)
    }

    /// How many sequence numbers the window covers.
    pub fn bits(&self) -> u64 {
        self.bits
    }

    /// Accepts `ext_seq` and remembers it, or says why not (a duplicate, or older than
    /// the window). A jump forward of any size is accepted.
    pub fn check_and_set(&mut self, ext_seq: u64) -> Result<(), Replay> {
        let len = self.blocks.len() as u64;
        match self.top {
            Some(top) if ext_seq > top => {
                // Clear the blocks the window slides over (all of them at most).
                let (from, to) = (top / 64, ext_seq / 64);
                for b in (from + 1)..=to.min(from + len) {
                    self.blocks[(b % len) as usize] = 0;
                }
                self.top = Some(ext_seq);
            }
            Some(top) if top - ext_seq >= self.bits => return Err(Replay::TooOld),
            Some(_) => {}
            None => self.top = Some(ext_seq),
        }
        let block = &mut self.blocks[((ext_seq / 64) % len) as usize];
        let bit = 1u64 << (ext_seq % 64);
        if *block & bit != 0 {
            return Err(Replay::Duplicate);
        }
        *block |= bit;
        Ok(())
    }
}

impl Default for ReplayWindow {
    /// A window for media: [`Self::MEDIA_BITS`].
    fn default() -> Self {
        Self::new(Self::MEDIA_BITS)
    }
}

#[cfg(test)]
#[path = "replay_tests.rs"]
mod tests;
