// SPDX-License-Identifier: MPL-2.0
//! The one AEAD this module uses, behind a trait so that the library providing it is a
//! one-file swap. Today: AES-GCM from `aws-lc-rs`. `ring` has nearly the same API (its
//! `aead::LessSafeKey`): an implementation of [`Aead`] for it would go here, chosen by a
//! cargo feature in the `type PacketAead` line below (it has no out-of-place seal: it would
//! copy the plaintext into the output and seal in place).

use super::{KeyLength, TAG_LEN};

/// Length of an AES-GCM nonce.
pub(crate) const NONCE_LEN: usize = 12;

/// The library failed, or a tag did not verify; it says no more on purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Failure;

/// An AEAD key, ready to seal or open with any nonce.
pub(crate) trait Aead: Sized {
    /// A key for `len`'s algorithm from `key` (`len.key_len()` bytes).
    fn new(len: KeyLength, key: &[u8]) -> Result<Self, Failure>;
    /// Encrypts `plaintext` into `ciphertext` (of the same length) and writes the tag over
    /// `aad` and the ciphertext to `tag`: the plaintext is read once, by the cipher.
    fn seal_out_of_place(
        &self,
        nonce: [u8; NONCE_LEN],
        aad: &[u8],
        plaintext: &[u8],
        ciphertext: &mut [u8],
        tag: &mut [u8; TAG_LEN],
    ) -> Result<(), Failure>;
    /// Verifies and decrypts `in_out`: ciphertext followed by its [`TAG_LEN`]-byte tag. On
    /// success the ciphertext part holds the plaintext; on failure its content is unspecified.
    fn open_in_place(
        &self,
        nonce: [u8; NONCE_LEN],
        aad: &[u8],
        in_out: &mut [u8],
    ) -> Result<(), Failure>;
    /// Verifies `ciphertext` and its `tag` and decrypts it into `plaintext` (of the same
    /// length): the ciphertext is read once, by the cipher. On failure the content of
    /// `plaintext` is unspecified.
    fn open_out_of_place(
        &self,
        nonce: [u8; NONCE_LEN],
        aad: &[u8],
        ciphertext: &[u8],
        tag: &[u8],
        plaintext: &mut [u8],
    ) -> Result<(), Failure>;
}

/// The AEAD used for packets.
pub(crate) type PacketAead = AwsLc;

/// AES-128-GCM or AES-256-GCM from `aws-lc-rs`.
pub(crate) struct AwsLc(aws_lc_rs::aead::LessSafeKey);

impl Aead for AwsLc {
    fn new(len: KeyLength, key: &[u8]) -> Result<Self, Failure> {
        use aws_lc_rs::aead::{LessSafeKey, UnboundKey, AES_128_GCM, AES_256_GCM};
        let algorithm = match len {
            KeyLength::Aes128 => &AES_128_GCM,
            KeyLength::Aes256 => &AES_256_GCM,
        };
        let key = UnboundKey::new(algorithm, key).map_err(|_| Failure)?;
        Ok(Self(LessSafeKey::new(key)))
    }

    fn seal_out_of_place(
        &self,
        nonce: [u8; NONCE_LEN],
        aad: &[u8],
        plaintext: &[u8],
        ciphertext: &mut [u8],
        tag: &mut [u8; TAG_LEN],
    ) -> Result<(), Failure> {
        use aws_lc_rs::aead::{Aad, Nonce};
        self.0
            .seal_out_of_place_scatter(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                plaintext,
                ciphertext,
                &[],
                tag,
            )
            .map_err(|_| Failure)
    }

    fn open_in_place(
        &self,
        nonce: [u8; NONCE_LEN],
        aad: &[u8],
        in_out: &mut [u8],
    ) -> Result<(), Failure> {
        use aws_lc_rs::aead::{Aad, Nonce};
        let at = in_out.len().checked_sub(TAG_LEN).ok_or(Failure)?;
        let (ciphertext, tag) = in_out.split_at_mut(at);
        // With the tag apart: `open_in_place` would also move the plaintext onto itself.
        self.0
            .open_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                tag,
                ciphertext,
            )
            .map(|_| ())
            .map_err(|_| Failure)
    }

    fn open_out_of_place(
        &self,
        nonce: [u8; NONCE_LEN],
        aad: &[u8],
        ciphertext: &[u8],
        tag: &[u8],
        plaintext: &mut [u8],
    ) -> Result<(), Failure> {
        use aws_lc_rs::aead::{Aad, Nonce};
        if tag.len() != TAG_LEN || ciphertext.len() != plaintext.len() {
            return Err(Failure);
        }
        self.0
            .open_separate_gather(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                ciphertext,
                tag,
                plaintext,
            )
            .map_err(|_| Failure)
    }
}
