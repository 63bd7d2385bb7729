// SPDX-License-Identifier: MPL-2.0
//! What a sender or receiver session needs around [`Sealer`] and [`Opener`]: one side of a
//! protected conversation. It seals what the session sends (counting each track's extended
//! sequence numbers), and opens what it receives, refusing replays with one
//! [`ReplayWindow`] per peer stream (a bounded, least-recently-used set).

use super::{Direction, MasterKey, OpenError, Opened, Opener, Replay, ReplayWindow, Sealer};
use std::collections::VecDeque;
use std::sync::Arc;

/// Which side of the conversation a session is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// It seals as a sender and opens what receivers send.
    Sender,
    /// It seals as a receiver and opens what senders send.
    Receiver,
}

/// Why a received datagram was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// It carries no authentication tag (sent without a passphrase, or not by videoip).
    Unprotected,
    /// Its tag does not verify (another passphrase or key length, or forged).
    BadTag,
    /// Authentic, but seen before (or older than the replay window).
    Replayed,
}

/// Extends a track's 32-bit sequence numbers to 64 bits, for the key epoch: each number is
/// taken as the one nearest to the latest seen (resends are older, never 2^31 older).
#[derive(Debug, Clone, Copy, Default)]
struct SeqExtender {
    latest: Option<u64>,
}

impl SeqExtender {
    fn extend(&mut self, seq: u32) -> u64 {
        let Some(latest) = self.latest else {
            self.latest = Some(u64::from(seq));
            return u64::from(seq);
        };
        let diff = i64::from(seq.wrapping_sub(latest as u32) as i32);
        let ext = latest.checked_add_signed(diff).unwrap_or(0);
        if ext > latest {
            self.latest = Some(ext);
        }
        ext
    }
}

/// What a failed opening tells the session.
fn refusal(e: OpenError) -> Refused {
    match e {
        OpenError::NotProtected | OpenError::NoAuth | OpenError::NotVideoip => Refused::Unprotected,
        _ => Refused::BadTag,
    }
}

/// Most peer streams (session id and track) whose replay windows are kept: a receiver's
/// current sender and those before it, or a sender's receivers.
pub const MAX_WINDOWS: usize = 1024;

/// One session's packet protection.
pub struct Protection {
    sealer: Sealer,
    opener: Opener,
    /// Extended sequence numbers of what this side sends, by track.
    sent: Vec<(u16, SeqExtender)>,
    /// Replay windows of what this side received, by (session id, track), newest last.
    windows: VecDeque<((u64, u16), ReplayWindow)>,
    window_bits: usize,
    max_windows: usize,
    /// The datagram being opened (a copy, for callers that only have it borrowed).
    scratch: Vec<u8>,
}

impl std::fmt::Debug for Protection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Protection")
            .field("windows", &self.windows.len())
            .finish_non_exhaustive()
    }
}

impl Protection {
    /// Protection with `master` for a session on `side`.
    pub fn new(master: Arc<MasterKey>, side: Side) -> Self {
        let (seal, open, bits, max) = match side {
            // A sender hears many receivers, each saying little.
            Side::Sender => (
                Direction::FromSender,
                Direction::FromReceiver,
                ReplayWindow::BACK_CHANNEL_BITS,
                MAX_WINDOWS,
            ),
            // A receiver follows one sender at a time (and its control track); a few
            // before it are remembered, so their datagrams replayed are refused too.
            Side::Receiver => (
                Direction::FromReceiver,
                Direction::FromSender,
                ReplayWindow::MEDIA_BITS,
                8,
            ),
        };
        Protection {
            sealer: Sealer::new(master.clone(), seal),
            opener: Opener::new(master, open),
            sent: Vec::new(),
            windows: VecDeque::new(),
            window_bits: bits,
            max_windows: max,
            scratch: Vec::new(),
        }
    }

    /// Seals an unprotected datagram (`head`: up to the end of its body; `payload`) into
    /// `out`. Its track and sequence number are read from `head`. False if it could not be
    /// sealed (a malformed head: a bug, not the network).
    pub fn seal(&mut self, head: &[u8], payload: &[u8], out: &mut Vec<u8>) -> bool {
        let (Some(track), Some(seq)) = (head.get(6..8), head.get(16..20)) else {
            return false;
        };
        let track = u16::from_be_bytes([track[0], track[1]]);
        let seq = u32::from_be_bytes([seq[0], seq[1], seq[2], seq[3]]);
        let ext = match self.sent.iter_mut().find(|(t, _)| *t == track) {
            Some((_, e)) => e.extend(seq),
            None => {
                let mut e = SeqExtender::default();
                let ext = e.extend(seq);
                self.sent.push((track, e));
                ext
            }
        };
        self.sealer.seal(head, payload, ext, out).is_ok()
    }

    /// Opens `datagram` in place and checks it against its stream's replay window. On
    /// success it is a datagram [`crate::protocol::decode`] takes. `resent`: it carries
    /// flag R (a duplicate resend is no replay for the statistics, but is still refused).
    pub fn open(&mut self, datagram: &mut [u8]) -> Result<Opened, Refused> {
        let opened = self.opener.open(datagram).map_err(refusal)?;
        self.not_replayed(datagram, opened)
    }

    /// Verifies `datagram` and decrypts its payload into `plaintext` (its exact length),
    /// then checks the replay window as [`open`](Self::open) does; `datagram` is left as
    /// it came. After a refusal `plaintext` holds nothing to use.
    pub fn open_into(&mut self, datagram: &[u8], plaintext: &mut [u8]) -> Result<Opened, Refused> {
        let opened = self
            .opener
            .open_into(datagram, plaintext)
            .map_err(refusal)?;
        self.not_replayed(datagram, opened)
    }

    /// Checks an opened datagram against its stream's replay window.
    fn not_replayed(&mut self, datagram: &[u8], opened: Opened) -> Result<Opened, Refused> {
        let (Some(track), Some(session)) = (datagram.get(6..8), datagram.get(8..16)) else {
            return Err(Refused::BadTag);
        };
        let key = (
            u64::from_be_bytes(session.try_into().unwrap_or_default()),
            u16::from_be_bytes([track[0], track[1]]),
        );
        let i = match self.windows.iter().position(|(k, _)| *k == key) {
            Some(i) => i,
            None => {
                if self.windows.len() >= self.max_windows {
                    self.windows.pop_front();
                }
                self.windows
                    .push_back((key, ReplayWindow::new(self.window_bits)));
                self.windows.len() - 1
            }
        };
        let checked = self
            .windows
            .get_mut(i)
            .map_or(Ok(()), |(_, w)| w.check_and_set(opened.ext_seq));
        // The stream heard from last moves to the back: the least recent is forgotten first.
        if i + 1 != self.windows.len() {
            if let Some(w) = self.windows.remove(i) {
                self.windows.push_back(w);
            }
        }
        match checked {
            Ok(()) => Ok(opened),
            Err(Replay::Duplicate | Replay::TooOld) => Err(Refused::Replayed),
        }
    }

    /// Opens a copy of `datagram` (for a caller that has it only borrowed); the opened bytes
    /// are handed to `then`.
    pub fn open_copy<R>(
        &mut self,
        datagram: &[u8],
        then: impl FnOnce(&mut Self, Result<&[u8], Refused>) -> R,
    ) -> R {
        let mut buf = std::mem::take(&mut self.scratch);
        buf.clear();
        buf.extend_from_slice(datagram);
        let r = match self.open(&mut buf) {
            Ok(_) => then(self, Ok(&buf)),
            Err(e) => then(self, Err(e)),
        };
        self.scratch = buf;
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::KeyLength;
    use crate::protocol::{self, Body, CommonHeader, EndOfStream};

    fn head(session: u64, track: u16, seq: u32) -> Vec<u8> {
        let h = CommonHeader {
            session,
            track,
            seq,
            ..Default::default()
        };
        let mut v = Vec::new();
        protocol::encode(&h, &[], &Body::EndOfStream(EndOfStream::default()), &mut v)
            .expect("encodes");
        v
    }

    #[test]
    fn what_one_side_seals_the_other_opens_once() {
        let master = MasterKey::from_passphrase("correct horse battery", KeyLength::Aes128)
            .expect("a valid passphrase");
        let mut tx = Protection::new(master.clone(), Side::Sender);
        let mut rx = Protection::new(master, Side::Receiver);
        // Across a sequence number wrap, the epoch goes on.
        for seq in [u32::MAX - 1, u32::MAX, 0, 1] {
            let mut out = Vec::new();
            assert!(tx.seal(&head(9, 0, seq), b"", &mut out));
            let mut copy = out.clone();
            let opened = rx.open(&mut out).expect("opens");
            assert_eq!(opened.ext_seq as u32, seq);
            assert_eq!(rx.open(&mut copy), Err(Refused::Replayed));
        }
        // A receiver does not open what a receiver sealed (a reflection of its own).
        let mut rx2 = Protection::new(
            MasterKey::from_passphrase("correct horse battery", KeyLength::Aes128).expect("valid"),
            Side::Receiver,
        );
        let mut own = Vec::new();
        assert!(rx2.seal(&head(5, 0, 3), b"", &mut own));
        assert_eq!(rx.open(&mut own), Err(Refused::BadTag));
        let mut plain = head(9, 0, 7);
        assert_eq!(rx.open(&mut plain), Err(Refused::Unprotected));
    }
}
