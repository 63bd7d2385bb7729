// SPDX-License-Identifier: MPL-2.0
//! Packet protection, as specified in `docs/PROTOCOL.md` §4.2: every datagram sealed with
//! AES-GCM under a key of its own (direction, session, track, key epoch), derived from a
//! passphrase. Header, extensions and body stay readable and are authenticated; the payload
//! is encrypted; a 16-byte tag ends the datagram. No I/O, no GStreamer; all cryptography is
//! `aws-lc-rs`'s.
//!
//! - [`MasterKey::from_passphrase`]: the passphrase's master key (PBKDF2; slow, cached).
//! - [`Sealer::seal`]: an unprotected datagram → the protected one (AUTH extension first,
//!   flag A, payload encrypted, tag appended).
//! - [`Opener::open`]: verifies and decrypts in place, and says which extended sequence
//!   number it was, for a [`ReplayWindow`] to refuse duplicates.
//! - [`CookieKey`]: keyed cookies for stateless return-routability checks.
//!
//! ```
//! use gstvideoip::crypto::{Direction, KeyLength, MasterKey, Opener, ReplayWindow, Sealer};
//! use gstvideoip::protocol::{self, Body, CommonHeader, EndOfStream};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let master = MasterKey::from_passphrase("correct horse battery", KeyLength::Aes128)?;
//! let mut sealer = Sealer::new(master.clone(), Direction::FromSender);
//! let mut opener = Opener::new(master, Direction::FromSender);
//! let mut window = ReplayWindow::default();
//!
//! let header = CommonHeader { session: 0x1234, seq: 7, ..Default::default() };
//! let mut head = Vec::new();
//! protocol::encode(&header, &[], &Body::EndOfStream(EndOfStream { next_frame: 3 }), &mut head)?;
//! let mut datagram = Vec::new();
//! sealer.seal(&head, &[], 7, &mut datagram)?;
//!
//! let opened = opener.open(&mut datagram)?;
//! window.check_and_set(opened.ext_seq)?;
//! let packet = protocol::decode(&datagram)?;
//! assert_eq!(packet.header.seq, 7);
//! // The same datagram again is a replay.
//! assert!(window.check_and_set(opened.ext_seq).is_err());
//! # Ok(())
//! # }
//! ```

mod aead;
mod cookie;
mod keys;
mod replay;
pub mod session;

pub use cookie::{CookieKey, COOKIE_LEN};
pub use keys::{
    MasterKey, HKDF_SALT, IV_LABEL, KEY_LABEL, MAX_PASSPHRASE_CHARS, MIN_PASSPHRASE_CHARS,
    PASSPHRASE_SALT, PBKDF2_ITERATIONS,
};
pub use replay::{Replay, ReplayWindow};
pub use session::{Protection, Refused, Side};

use crate::protocol::{ext, header_flags, PacketType, AUTH_VALUE_LEN, COMMON_LEN, MAGIC, VERSION};
use aead::Aead;
use keys::{KeyCache, KeyId};
use std::fmt;
use std::sync::Arc;

/// Length of the authentication tag that ends a protected datagram.
pub const TAG_LEN: usize = 16;
/// Bytes the AUTH extension adds to the extension area (TLV header and 8-byte value).
pub const AUTH_EXT_LEN: usize = 4 + AUTH_VALUE_LEN;
/// Bytes protection adds to a datagram: the AUTH extension and the tag.
pub const OVERHEAD: usize = AUTH_EXT_LEN + TAG_LEN;
/// A key epoch covers this many consecutive extended sequence numbers (2^22): a key seals
/// at most that many datagrams, half of AES-GCM's limit in RFC 9001 §6.6.
pub const EPOCH_DATAGRAMS: u64 = 1 << EPOCH_SHIFT;
const EPOCH_SHIFT: u32 = 22;
/// Longest head a datagram can have: common header, 255 extension words, longest body.
const MAX_HEAD: usize = COMMON_LEN + 255 * 4 + 64;
/// Derived keys an [`Opener`] keeps: two epochs of each track of a session (and its control
/// track), so a receiver of every track never derives a key twice.
const OPENER_KEYS: usize = 2 * (crate::protocol::tracks::MAX_TRACKS + 1);
/// Derived keys a [`Sealer`] keeps: the current and previous epoch (resends) of each track
/// of the session and of its control track.
const SEALER_KEYS: usize = 2 * (crate::protocol::tracks::MAX_TRACKS + 1);

/// The key length, and so the algorithm: SRT's `pbkeylen` 16 or 32.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum KeyLength {
    /// AES-128-GCM (AUTH algorithm 1).
    #[default]
    Aes128,
    /// AES-256-GCM (AUTH algorithm 2).
    Aes256,
}

impl KeyLength {
    /// Key length in bytes: 16 or 32.
    pub fn key_len(self) -> usize {
        match self {
            Self::Aes128 => 16,
            Self::Aes256 => 32,
        }
    }

    /// The AUTH extension's algorithm value: 1 (AES-128-GCM) or 2 (AES-256-GCM).
    pub fn algorithm(self) -> u8 {
        match self {
            Self::Aes128 => 1,
            Self::Aes256 => 2,
        }
    }
}

impl TryFrom<u32> for KeyLength {
    type Error = KeyError;

    /// From a `pbkeylen` property value: 16 or 32.
    fn try_from(pbkeylen: u32) -> Result<Self, KeyError> {
        match pbkeylen {
            16 => Ok(Self::Aes128),
            32 => Ok(Self::Aes256),
            other => Err(KeyError::KeyLength(other)),
        }
    }
}

/// Who sealed a datagram: each direction has keys of its own, so a datagram cannot be
/// reflected back to its sender.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// A sender: media, stream info, end of stream, sender reports, FEC (HKDF value 0).
    FromSender,
    /// A receiver: receiver reports, NACK, SUBSCRIBE, key frame requests (HKDF value 1).
    FromReceiver,
}

impl Direction {
    fn to_u8(self) -> u8 {
        match self {
            Self::FromSender => 0,
            Self::FromReceiver => 1,
        }
    }
}

/// Why there is no master key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyError {
    /// The passphrase has this many characters, not 10 to 79.
    PassphraseLength(usize),
    /// A `pbkeylen` other than 16 or 32.
    KeyLength(u32),
    /// The cryptographic library failed (it should not).
    Crypto,
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::PassphraseLength(n) => write!(
                f,
                "passphrase must be {MIN_PASSPHRASE_CHARS} to {MAX_PASSPHRASE_CHARS} characters long, not {n}"
            ),
            Self::KeyLength(n) => {
                write!(f, "pbkeylen must be 16 (AES-128) or 32 (AES-256), not {n}")
            }
            Self::Crypto => write!(f, "the cryptographic library failed"),
        }
    }
}

impl std::error::Error for KeyError {}

/// Why a datagram could not be sealed. All are the caller's bugs, except `Crypto`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SealError {
    /// The head is not a videoip v2 header, or its length is not that of its header,
    /// extensions and body.
    BadHead,
    /// Flag A is already set.
    AlreadyProtected,
    /// The extension area has no room for the AUTH extension (it would pass 255 words).
    ExtensionsTooLong,
    /// `ext_seq as u32` differs from the header's sequence number.
    SeqMismatch,
    /// `ext_seq` needs an epoch beyond 2^32 − 1.
    EpochsExhausted,
    /// Key derivation or the cipher failed.
    Crypto,
}

impl fmt::Display for SealError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::BadHead => "not the headers of a videoip datagram",
            Self::AlreadyProtected => "datagram already has flag A",
            Self::ExtensionsTooLong => "no room for the AUTH extension",
            Self::SeqMismatch => "extended sequence number does not match the header's",
            Self::EpochsExhausted => "sequence numbers exhausted every key epoch",
            Self::Crypto => "the cryptographic library failed",
        })
    }
}

impl std::error::Error for SealError {}

/// Why a datagram did not open. A receiver counts any of them as invalid and drops the
/// datagram; none is fatal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenError {
    /// Shorter than a protected datagram of its type can be.
    TooShort,
    /// Not a videoip v2 datagram.
    NotVideoip,
    /// Flag A is not set.
    NotProtected,
    /// The extension area does not start with an 8-byte AUTH extension.
    NoAuth,
    /// The AUTH algorithm is not that of our key length (or is unknown).
    WrongAlgorithm(u8),
    /// The AUTH tag length is not 16.
    WrongTagLength(u8),
    /// The low 10 bits of the key epoch differ from the top 10 bits of the sequence number.
    EpochMismatch,
    /// The tag did not verify: wrong key (passphrase, direction, session, track, epoch) or
    /// altered bytes.
    BadTag,
    /// Key derivation failed.
    Crypto,
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooShort => write!(f, "too short for a protected datagram"),
            Self::NotVideoip => write!(f, "not a videoip v2 datagram"),
            Self::NotProtected => write!(f, "flag A is not set"),
            Self::NoAuth => write!(f, "extension area does not start with AUTH"),
            Self::WrongAlgorithm(a) => write!(f, "AUTH algorithm {a} is not our key's"),
            Self::WrongTagLength(n) => write!(f, "AUTH tag length {n} is not 16"),
            Self::EpochMismatch => write!(f, "key epoch does not match the sequence number"),
            Self::BadTag => write!(f, "authentication tag does not verify"),
            Self::Crypto => write!(f, "the cryptographic library failed"),
        }
    }
}

impl std::error::Error for OpenError {}

/// What [`Opener::open`] learnt from a datagram that opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Opened {
    /// Extended sequence number: `(epoch << 22) | (seq & 0x3FFFFF)`; for a [`ReplayWindow`].
    pub ext_seq: u64,
    /// Key epoch from the AUTH extension.
    pub epoch: u32,
}

/// Where the parts of a datagram are, from its first 20 bytes.
struct Layout {
    ext_words: usize,
    /// End of the body: start of the payload.
    body_end: usize,
}

fn layout(bytes: &[u8]) -> Option<Layout> {
    let head = bytes.get(..COMMON_LEN)?;
    if u16::from_be_bytes([head[0], head[1]]) != MAGIC || head[2] != VERSION {
        return None;
    }
    let ext_words = usize::from(head[5]);
    let body_len = PacketType::from_u8(head[3]).body_len();
    Some(Layout {
        ext_words,
        body_end: COMMON_LEN + 4 * ext_words + body_len,
    })
}

fn seq_of(bytes: &[u8]) -> u32 {
    let mut seq = [0u8; 4];
    seq.copy_from_slice(&bytes[16..20]);
    u32::from_be_bytes(seq)
}

fn key_id(bytes: &[u8], direction: Direction, epoch: u32) -> KeyId {
    let mut session = [0u8; 8];
    session.copy_from_slice(&bytes[8..16]);
    KeyId {
        direction,
        session: u64::from_be_bytes(session),
        track: u16::from_be_bytes([bytes[6], bytes[7]]),
        epoch,
    }
}

/// Seals datagrams in one direction. One per sending session (it keeps the current key of
/// a few (session, track, epoch)s, so it serves several tracks).
pub struct Sealer {
    keys: KeyCache,
    direction: Direction,
}

impl Sealer {
    /// A sealer of datagrams sent in `direction` (a sender: [`Direction::FromSender`]).
    pub fn new(master: Arc<MasterKey>, direction: Direction) -> Self {
        Self {
            keys: KeyCache::new(master, SEALER_KEYS),
            direction,
        }
    }

    /// Seals one datagram into `out` (its contents replaced; reusing one `out` for datagrams
    /// of one size costs no allocation and no clearing).
    ///
    /// `plain_head` is an unprotected datagram's bytes up to the end of its body, as
    /// [`crate::protocol::encode`] makes them (flag A clear, any extensions); `payload` is
    /// its payload. The protected datagram has the AUTH extension inserted first in the
    /// extension area (3 words more), flag A set, the payload encrypted and the tag appended:
    /// [`OVERHEAD`] bytes longer.
    ///
    /// `ext_seq` is the sender's extended sequence number of the datagram (wraps × 2^32 +
    /// seq); `ext_seq as u32` must be the header's sequence number. It picks the key epoch
    /// (`ext_seq >> 22`) and the nonce. Sealing the same bytes with the same `ext_seq` gives
    /// the same datagram, and flag R is not authenticated, so a resend may reuse the sealed
    /// original with R set. **Never seal different bytes under one `ext_seq`**: that reuses a
    /// nonce, which breaks AES-GCM.
    pub fn seal(
        &mut self,
        plain_head: &[u8],
        payload: &[u8],
        ext_seq: u64,
        out: &mut Vec<u8>,
    ) -> Result<(), SealError> {
        let layout = layout(plain_head).ok_or(SealError::BadHead)?;
        if plain_head.len() != layout.body_end {
            return Err(SealError::BadHead);
        }
        let flags = plain_head[4];
        if flags & header_flags::AUTH_TAG != 0 {
            return Err(SealError::AlreadyProtected);
        }
        let words = u8::try_from(layout.ext_words + AUTH_EXT_LEN / 4)
            .map_err(|_| SealError::ExtensionsTooLong)?;
        let seq = seq_of(plain_head);
        if ext_seq as u32 != seq {
            return Err(SealError::SeqMismatch);
        }
        let epoch =
            u32::try_from(ext_seq >> EPOCH_SHIFT).map_err(|_| SealError::EpochsExhausted)?;
        let len = self.keys.key_length();
        let key = self
            .keys
            .get(key_id(plain_head, self.direction, epoch))
            .map_err(|_| SealError::Crypto)?;

        // Every byte of `out` is written below, so a buffer reused for datagrams of one size
        // is neither cleared nor zeroed; and the payload goes from the caller's memory
        // through the cipher into `out`, not copied in first (the frame is read once).
        let body_end = plain_head.len() + AUTH_EXT_LEN;
        let ct_end = body_end + payload.len();
        out.resize(ct_end + TAG_LEN, 0);
        out[..COMMON_LEN].copy_from_slice(&plain_head[..COMMON_LEN]);
        // Flag R is left out of the tag (cleared here, restored below).
        out[4] = (flags | header_flags::AUTH_TAG) & !header_flags::RETRANSMISSION;
        out[5] = words;
        let auth = &mut out[COMMON_LEN..COMMON_LEN + AUTH_EXT_LEN];
        auth[..2].copy_from_slice(&ext::AUTH.to_be_bytes());
        auth[2..4].copy_from_slice(&(AUTH_VALUE_LEN as u16).to_be_bytes());
        auth[4..8].copy_from_slice(&epoch.to_be_bytes());
        auth[8..].copy_from_slice(&[len.algorithm(), TAG_LEN as u8, 0, 0]);
        out[COMMON_LEN + AUTH_EXT_LEN..body_end].copy_from_slice(&plain_head[COMMON_LEN..]);
        let (aad, rest) = out.split_at_mut(body_end);
        let (ciphertext, tag) = rest.split_at_mut(payload.len());
        let tag: &mut [u8; TAG_LEN] = tag.try_into().map_err(|_| SealError::Crypto)?;
        key.aead
            .seal_out_of_place(key.nonce(seq), aad, payload, ciphertext, tag)
            .map_err(|_| SealError::Crypto)?;
        out[4] |= flags & header_flags::RETRANSMISSION;
        Ok(())
    }
}

/// Opens datagrams sealed in one direction. It keeps the last 66 keys it derived (two epochs
/// of every track of a session), so its datagrams open without deriving again.
///
/// A receiver should open only datagrams of sessions it wants: each new (session, track,
/// epoch) costs a key derivation (two HKDF expansions and an AES key schedule).
pub struct Opener {
    keys: KeyCache,
    direction: Direction,
}

impl Opener {
    /// An opener of datagrams sealed in `direction` (a receiver opens
    /// [`Direction::FromSender`]).
    pub fn new(master: Arc<MasterKey>, direction: Direction) -> Self {
        Self {
            keys: KeyCache::new(master, OPENER_KEYS),
            direction,
        }
    }

    /// Verifies and decrypts `datagram` in place.
    ///
    /// Afterwards it is a datagram [`crate::protocol::decode`] accepts, with the plaintext
    /// payload: flag A, the AUTH extension and the tag are still there (`decode` leaves the
    /// tag out of the payload). Returns the extended sequence number, for the caller's
    /// [`ReplayWindow`] (check it only after `open` succeeds), and the epoch.
    ///
    /// Any failure is an [`OpenError`], never a panic; after one, the datagram's content is
    /// unspecified.
    pub fn open(&mut self, datagram: &mut [u8]) -> Result<Opened, OpenError> {
        let (body_end, opened) = self.check(datagram)?;
        let key = self.key(datagram, opened.epoch)?;
        let seq = seq_of(datagram);
        let flags = datagram[4];
        datagram[4] = flags & !header_flags::RETRANSMISSION;
        let (aad, in_out) = datagram.split_at_mut(body_end);
        let result = key.aead.open_in_place(key.nonce(seq), aad, in_out);
        datagram[4] = flags;
        result.map_err(|_| OpenError::BadTag)?;
        Ok(opened)
    }

    /// Verifies `datagram` and decrypts its payload into `plaintext` (exactly the payload's
    /// length, or [`OpenError::TooShort`]), leaving the datagram as it came: a receiver
    /// decrypts a fragment straight into its frame. On failure the content of `plaintext`
    /// is unspecified (never mark it as received).
    pub fn open_into(
        &mut self,
        datagram: &[u8],
        plaintext: &mut [u8],
    ) -> Result<Opened, OpenError> {
        let (body_end, opened) = self.check(datagram)?;
        let key = self.key(datagram, opened.epoch)?;
        let seq = seq_of(datagram);
        let tag_at = datagram.len() - TAG_LEN;
        if tag_at - body_end != plaintext.len() {
            return Err(OpenError::TooShort);
        }
        let (head, rest) = datagram.split_at(body_end);
        let (ciphertext, tag) = rest.split_at(tag_at - body_end);
        // Flag R is not authenticated: a resend's head is authenticated with it clear, from
        // a copy on the stack (resends are few).
        let mut copy = [0u8; MAX_HEAD];
        let aad = if head[4] & header_flags::RETRANSMISSION != 0 {
            let copy = copy.get_mut(..head.len()).ok_or(OpenError::TooShort)?;
            copy.copy_from_slice(head);
            copy[4] &= !header_flags::RETRANSMISSION;
            &*copy
        } else {
            head
        };
        key.aead
            .open_out_of_place(key.nonce(seq), aad, ciphertext, tag, plaintext)
            .map_err(|_| OpenError::BadTag)?;
        Ok(opened)
    }

    /// Everything but the tag: the end of the body and what the datagram says of itself.
    fn check(&self, datagram: &[u8]) -> Result<(usize, Opened), OpenError> {
        let layout = layout(datagram).ok_or(if datagram.len() < COMMON_LEN {
            OpenError::TooShort
        } else {
            OpenError::NotVideoip
        })?;
        let flags = datagram[4];
        if flags & header_flags::AUTH_TAG == 0 {
            return Err(OpenError::NotProtected);
        }
        if layout.ext_words < AUTH_EXT_LEN / 4 {
            return Err(OpenError::NoAuth);
        }
        if datagram.len() < layout.body_end + TAG_LEN {
            return Err(OpenError::TooShort);
        }
        let auth = &datagram[COMMON_LEN..COMMON_LEN + AUTH_EXT_LEN];
        if auth[..4] != [0x80, 0x01, 0x00, AUTH_VALUE_LEN as u8] {
            return Err(OpenError::NoAuth);
        }
        let epoch = u32::from_be_bytes([auth[4], auth[5], auth[6], auth[7]]);
        if auth[8] != self.keys.key_length().algorithm() {
            return Err(OpenError::WrongAlgorithm(auth[8]));
        }
        if usize::from(auth[9]) != TAG_LEN {
            return Err(OpenError::WrongTagLength(auth[9]));
        }
        let seq = seq_of(datagram);
        if epoch & 0x3FF != seq >> EPOCH_SHIFT {
            return Err(OpenError::EpochMismatch);
        }
        let ext_seq = u64::from(epoch) << EPOCH_SHIFT | u64::from(seq & 0x3F_FFFF);
        Ok((layout.body_end, Opened { ext_seq, epoch }))
    }

    fn key(&mut self, datagram: &[u8], epoch: u32) -> Result<&keys::PacketKey, OpenError> {
        self.keys
            .get(key_id(datagram, self.direction, epoch))
            .map_err(|_| OpenError::Crypto)
    }
}

#[cfg(test)]
#[path = "crypto_tests.rs"]
mod tests;
