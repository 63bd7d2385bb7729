// SPDX-License-Identifier: MPL-2.0
//! Keyed cookies for stateless checks (a SUBSCRIBE's return routability): a MAC of what the
//! cookie vouches for, under a random key of the process, so the checker keeps no state.

use super::KeyError;
use aws_lc_rs::{constant_time, hmac, rand};

/// Length of a cookie in bytes.
pub const COOKIE_LEN: usize = 16;

/// A random key for cookies: HMAC-SHA256 truncated to [`COOKIE_LEN`] bytes.
pub struct CookieKey(hmac::Key);

impl std::fmt::Debug for CookieKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CookieKey(..)")
    }
}

impl CookieKey {
    /// A new key of 32 random bytes from the system's generator.
    pub fn new() -> Result<Self, KeyError> {
        let mut bytes = [0u8; 32];
        rand::fill(&mut bytes).map_err(|_| KeyError::Crypto)?;
        Ok(Self::from_bytes(&bytes))
    }

    /// A key of the given bytes (tests, and a fallback when the generator fails).
    pub fn from_bytes(bytes: &[u8]) -> Self {
        Self(hmac::Key::new(hmac::HMAC_SHA256, bytes))
    }

    /// The cookie of `data`: the first 16 bytes of HMAC-SHA256(key, data). Put everything
    /// the cookie vouches for in `data` (address, port, time slot, …).
    pub fn cookie(&self, data: &[u8]) -> [u8; COOKIE_LEN] {
        let tag = hmac::sign(&self.0, data);
        let mut out = [0u8; COOKIE_LEN];
        out.copy_from_slice(&tag.as_ref()[..COOKIE_LEN]);
        out
    }

    /// Whether `cookie` is the cookie of `data`, compared in constant time.
    pub fn verify(&self, data: &[u8], cookie: &[u8]) -> bool {
        constant_time::verify_slices_are_equal(&self.cookie(data), cookie).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cookie_verifies_for_its_data_and_key_only() {
        let key = CookieKey::new().unwrap();
        let c = key.cookie(b"192.0.2.1:5000 slot 7");
        assert!(key.verify(b"192.0.2.1:5000 slot 7", &c));
        assert!(!key.verify(b"192.0.2.1:5001 slot 7", &c));
        assert!(!key.verify(b"192.0.2.1:5000 slot 7", &c[..15]));
        let mut flipped = c;
        flipped[3] ^= 0x10;
        assert!(!key.verify(b"192.0.2.1:5000 slot 7", &flipped));
        let other = CookieKey::new().unwrap();
        assert!(!other.verify(b"192.0.2.1:5000 slot 7", &c));
    }

    #[test]
    fn a_cookie_is_truncated_hmac_sha256() {
        // RFC 4231 test case 2.
        let key = CookieKey::from_bytes(b"Jefe");
        let c = key.cookie(b"what do ya want for nothing?");
        let want = [
            0x5b, 0xdc, 0xc1, 0x46, 0xbf, 0x60, 0x75, 0x4e, 0x6a, 0x04, 0x24, 0x26, 0x08, 0x95,
            0x75, 0xc7,
        ];
        assert_eq!(c, want);
    }
}
