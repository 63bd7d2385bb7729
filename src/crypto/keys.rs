// SPDX-License-Identifier: MPL-2.0
//! The key schedule of `docs/PROTOCOL.md` §4.2: passphrase → master key (PBKDF2), master key
//! → one AES-GCM key and IV per (direction, session, track, epoch) (HKDF).

use super::aead::{Aead, PacketAead, NONCE_LEN};
use super::{Direction, KeyError, KeyLength};
use aws_lc_rs::{hkdf, pbkdf2};
use std::collections::VecDeque;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};

/// PBKDF2 salt: the same for every videoip deployment (§4.2).
pub const PASSPHRASE_SALT: &[u8] = b"videoip v2 passphrase";
/// PBKDF2-HMAC-SHA256 iterations. OWASP's 2023 figure for this hash; one derivation takes
/// 0.14 s on the 2-core Xeon this was measured on.
pub const PBKDF2_ITERATIONS: u32 = 600_000;
/// HKDF-Extract salt.
pub const HKDF_SALT: &[u8] = b"videoip v2";
/// HKDF-Expand label of a packet key.
pub const KEY_LABEL: &[u8] = b"videoip v2 key";
/// HKDF-Expand label of a packet IV.
pub const IV_LABEL: &[u8] = b"videoip v2 iv";
/// Fewest characters in a passphrase (as SRT).
pub const MIN_PASSPHRASE_CHARS: usize = 10;
/// Most characters in a passphrase (as SRT).
pub const MAX_PASSPHRASE_CHARS: usize = 79;
/// Master keys kept by [`MasterKey::from_passphrase`] for the process.
const CACHE_ENTRIES: usize = 8;

/// The secret every key of a run is derived from: PBKDF2 of the passphrase. Cheap to
/// share (`Arc`); its bytes never leave this module, and `Debug` does not print them.
pub struct MasterKey {
    len: KeyLength,
    bytes: [u8; 32],
    prk: hkdf::Prk,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MasterKey")
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

type CacheEntry = (String, KeyLength, Arc<MasterKey>);
static CACHE: Mutex<Vec<CacheEntry>> = Mutex::new(Vec::new());

impl MasterKey {
    /// The master key of `passphrase` (10 to 79 characters) for AES-128 or AES-256.
    ///
    /// PBKDF2 takes a noticeable fraction of a second ([`PBKDF2_ITERATIONS`]), so the last
    /// 8 keys are kept for the whole process: several elements given the same passphrase
    /// derive it once. Call it where a pause is acceptable (an element's start), not per
    /// datagram.
    pub fn from_passphrase(passphrase: &str, len: KeyLength) -> Result<Arc<Self>, KeyError> {
        let chars = passphrase.chars().count();
        if !(MIN_PASSPHRASE_CHARS..=MAX_PASSPHRASE_CHARS).contains(&chars) {
            return Err(KeyError::PassphraseLength(chars));
        }
        // Held while deriving, so that elements starting together derive once; nothing else
        // waits on it for long, and it is never held across I/O.
        let mut cache = CACHE
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(i) = cache
            .iter()
            .position(|(p, l, _)| *l == len && p == passphrase)
        {
            let entry = cache.remove(i);
            let key = Arc::clone(&entry.2);
            cache.push(entry);
            return Ok(key);
        }
        let mut bytes = [0u8; 32];
        let iterations = NonZeroU32::new(PBKDF2_ITERATIONS).ok_or(KeyError::Crypto)?;
        pbkdf2::derive(
            pbkdf2::PBKDF2_HMAC_SHA256,
            iterations,
            PASSPHRASE_SALT,
            passphrase.as_bytes(),
            &mut bytes[..len.key_len()],
        );
        let key = Arc::new(Self::from_bytes(len, bytes));
        if cache.len() >= CACHE_ENTRIES {
            cache.remove(0);
        }
        cache.push((passphrase.to_owned(), len, Arc::clone(&key)));
        Ok(key)
    }

    /// A master key from its bytes (the first `len.key_len()` of `bytes`; the rest must be 0).
    pub(crate) fn from_bytes(len: KeyLength, bytes: [u8; 32]) -> Self {
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, HKDF_SALT).extract(&bytes[..len.key_len()]);
        Self { len, bytes, prk }
    }

    /// The key length (and so the algorithm) of every key derived from this one.
    pub fn key_length(&self) -> KeyLength {
        self.len
    }

    /// The master key's bytes (for the test vectors).
    #[cfg(test)]
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.bytes[..self.len.key_len()]
    }

    /// The raw key and IV of one (direction, session, track, epoch), per §4.2.
    pub(crate) fn derive_raw(&self, id: &KeyId) -> Result<([u8; 32], [u8; NONCE_LEN]), KeyError> {
        let dir = [id.direction.to_u8()];
        let session = id.session.to_be_bytes();
        let track = id.track.to_be_bytes();
        let epoch = id.epoch.to_be_bytes();
        let mut key = [0u8; 32];
        let mut iv = [0u8; NONCE_LEN];
        let key_info: [&[u8]; 5] = [KEY_LABEL, &dir, &session, &track, &epoch];
        let iv_info: [&[u8]; 5] = [IV_LABEL, &dir, &session, &track, &epoch];
        let key_len = self.len.key_len();
        self.prk
            .expand(&key_info, OkmLen(key_len))
            .and_then(|okm| okm.fill(&mut key[..key_len]))
            .map_err(|_| KeyError::Crypto)?;
        self.prk
            .expand(&iv_info, OkmLen(NONCE_LEN))
            .and_then(|okm| okm.fill(&mut iv))
            .map_err(|_| KeyError::Crypto)?;
        Ok((key, iv))
    }
}

impl Drop for MasterKey {
    fn drop(&mut self) {
        // Best effort: the optimiser may keep copies, and `Prk` holds its own.
        self.bytes = [0; 32];
    }
}

/// An HKDF output length.
struct OkmLen(usize);

impl hkdf::KeyType for OkmLen {
    fn len(&self) -> usize {
        self.0
    }
}

/// What one packet key is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct KeyId {
    pub direction: Direction,
    pub session: u64,
    pub track: u16,
    pub epoch: u32,
}

/// One derived key, ready to use.
pub(crate) struct PacketKey {
    pub aead: PacketAead,
    pub iv: [u8; NONCE_LEN],
}

impl PacketKey {
    /// The nonce of sequence number `seq`: the IV XOR (8 zero bytes ‖ seq, big-endian).
    pub fn nonce(&self, seq: u32) -> [u8; NONCE_LEN] {
        let mut nonce = self.iv;
        for (n, s) in nonce[8..].iter_mut().zip(seq.to_be_bytes()) {
            *n ^= s;
        }
        nonce
    }
}

/// The last few derived keys, newest last; the oldest goes when it is full.
pub(crate) struct KeyCache {
    master: Arc<MasterKey>,
    entries: VecDeque<(KeyId, PacketKey)>,
    capacity: usize,
}

impl KeyCache {
    pub fn new(master: Arc<MasterKey>, capacity: usize) -> Self {
        Self {
            master,
            entries: VecDeque::with_capacity(capacity),
            capacity: capacity.max(1),
        }
    }

    pub fn key_length(&self) -> KeyLength {
        self.master.len
    }

    /// Keys kept.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// The key of `id`, derived if it is not kept.
    pub fn get(&mut self, id: KeyId) -> Result<&PacketKey, KeyError> {
        // The newest is the one almost every datagram wants: look there first.
        let found = self.entries.iter().rposition(|(k, _)| *k == id);
        let i = match found {
            Some(i) => i,
            None => {
                let (raw, iv) = self.master.derive_raw(&id)?;
                let aead = PacketAead::new(self.master.len, &raw[..self.master.len.key_len()])
                    .map_err(|_| KeyError::Crypto)?;
                // A stream's epochs before the previous one are done with (resends reach
                // back one epoch at most): a few tracks keep two keys each, and the scan
                // above stays short.
                self.entries.retain(|(k, _)| {
                    !(k.direction == id.direction
                        && k.session == id.session
                        && k.track == id.track
                        && k.epoch.wrapping_add(1) < id.epoch)
                });
                if self.entries.len() >= self.capacity {
                    self.entries.pop_front();
                }
                self.entries.push_back((id, PacketKey { aead, iv }));
                self.entries.len() - 1
            }
        };
        self.entries
            .get(i)
            .map(|(_, key)| key)
            .ok_or(KeyError::Crypto)
    }
}
