//! Authenticated encryption of small payloads under an entity key.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

use crate::{EntityKey, KeyStoreError, Result};

/// Length of the random nonce that prefixes every sealed payload.
pub(crate) const NONCE_LEN: usize = 24;
/// Length of the authentication tag that ends every sealed payload.
pub(crate) const TAG_LEN: usize = 16;

/// Encrypts `plaintext` under `key`, binding `aad`; returns nonce ‖ ciphertext ‖ tag.
pub fn seal(key: &EntityKey, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>> {
    let mut nonce = [0u8; NONCE_LEN];
    getrandom::fill(&mut nonce).map_err(|_| KeyStoreError::Random)?;
    let cipher = XChaCha20Poly1305::new(key.expose().into());
    let ciphertext = cipher
        .encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: plaintext,
                aad,
            },
        )
        .map_err(|_| KeyStoreError::Seal)?;
    let mut sealed = Vec::with_capacity(NONCE_LEN + ciphertext.len());
    sealed.extend_from_slice(&nonce);
    sealed.extend_from_slice(&ciphertext);
    Ok(sealed)
}

/// Decrypts a payload made by [`seal`] with the same key and `aad`.
pub fn open_sealed(key: &EntityKey, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>> {
    if sealed.len() < NONCE_LEN + TAG_LEN {
        return Err(KeyStoreError::Seal);
    }
    let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
    let cipher = XChaCha20Poly1305::new(key.expose().into());
    cipher
        .decrypt(
            XNonce::from_slice(nonce),
            Payload {
                msg: ciphertext,
                aad,
            },
        )
        .map_err(|_| KeyStoreError::Seal)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_payload_round_trips_and_hides_plaintext() {
        let key = EntityKey::random().expect("rng");
        let sealed = seal(&key, b"aad", b"kari.nordmann@example.no").expect("seal");
        assert!(!sealed.windows(4).any(|w| w == b"kari"));
        assert_eq!(
            open_sealed(&key, b"aad", &sealed).expect("open"),
            b"kari.nordmann@example.no"
        );
    }

    #[test]
    fn wrong_key_or_aad_or_tampering_fails() {
        let key = EntityKey::random().expect("rng");
        let other = EntityKey::random().expect("rng");
        let mut sealed = seal(&key, b"aad", b"payload").expect("seal");
        assert!(open_sealed(&other, b"aad", &sealed).is_err());
        assert!(open_sealed(&key, b"other", &sealed).is_err());
        let last = sealed.len() - 1;
        sealed[last] ^= 1;
        assert!(open_sealed(&key, b"aad", &sealed).is_err());
    }
}
