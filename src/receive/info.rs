// SPDX-License-Identifier: MPL-2.0
//! Stream info (caps) at the receiver: per track, one generation assembled from its pieces
//! at a time (at most [`crate::protocol::MAX_CAPS_LEN`] bytes) besides the one in use.
//! I/O-free.

use super::lockon::Source;
use crate::protocol::{seq_diff, StreamInfo};
use std::sync::Arc;

/// The stream info in use: generation, caps, and the newest sequence number it came with.
#[derive(Debug)]
pub struct StoredInfo {
    /// Its generation.
    pub gen: u16,
    /// Its caps string.
    pub caps: Arc<str>,
    /// The newest sequence number it came with.
    pub seq: u32,
}

/// One stream info generation being assembled from its pieces.
#[derive(Debug)]
pub struct InfoAssembly {
    /// Who sends it.
    pub source: Source,
    /// The track it describes.
    pub track: u16,
    /// Its generation.
    pub gen: u16,
    /// The caps bytes so far.
    pub buf: Vec<u8>,
    /// One bit per caps byte received.
    have: Vec<u64>,
    missing: usize,
    /// The newest sequence number of its pieces.
    pub seq: u32,
}

impl InfoAssembly {
    /// An empty assembly of `len` caps bytes, begun by the piece numbered `seq`.
    pub fn new(source: Source, track: u16, gen: u16, len: usize, seq: u32) -> Self {
        InfoAssembly {
            source,
            track,
            gen,
            buf: vec![0; len],
            have: vec![0; len.div_ceil(64)],
            missing: len,
            seq,
        }
    }

    /// Adds a piece (already checked to lie inside the caps); true once complete.
    pub fn add(&mut self, offset: usize, piece: &[u8], seq: u32) -> bool {
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

impl StoredInfo {
    /// True when `piece` (of stream info `si`) repeats part of this info: it only says how
    /// recent the info is, and the newest sequence number is remembered.
    pub fn repeated_by(&mut self, si: &StreamInfo, piece: &[u8], seq: u32) -> bool {
        let start = si.offset as usize;
        let same = self.gen == si.info_gen
            && self.caps.len() == si.caps_len as usize
            && self.caps.as_bytes().get(start..start + piece.len()) == Some(piece);
        if same && seq_diff(seq, self.seq) > 0 {
            self.seq = seq;
        }
        same
    }
}

/// Stores the caps a complete assembly `a` gave, unless they are an older announcement
/// overtaken on the way. True when the info in use changed.
pub fn store(info: &mut Option<StoredInfo>, a: &InfoAssembly, caps: &str) -> bool {
    match info {
        Some(i) if i.gen == a.gen && *i.caps == *caps => {
            if seq_diff(a.seq, i.seq) > 0 {
                i.seq = a.seq;
            }
            false
        }
        // An older announcement overtaken on the way: ignore it.
        Some(i) if seq_diff(a.seq, i.seq) <= 0 => false,
        _ => {
            *info = Some(StoredInfo {
                gen: a.gen,
                caps: Arc::from(caps),
                seq: a.seq,
            });
            true
        }
    }
}
