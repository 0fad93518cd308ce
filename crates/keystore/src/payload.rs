//! What a stored key record seals: the key, and the digests that let a KEK
//! rotation re-tag it under a new index key.

use zeroize::Zeroizing;

use crate::seal::{NONCE_LEN, TAG_LEN};
use crate::{EntityDigest, EntityKey, Keyring, Result, UnwrapFailure};

/// Length of a sealed payload before wrapping: key ‖ digest ‖ group digest.
pub(crate) const PAYLOAD_LEN: usize = 96;

/// Length of a wrapped payload: nonce ‖ ciphertext ‖ tag.
pub const WRAPPED_LEN: usize = NONCE_LEN + PAYLOAD_LEN + TAG_LEN;

/// A key with the digests of its entity and of its key group, as sealed in a record.
pub struct KeyPayload {
    /// The entity key (or, in a store's index record, the index key).
    pub key: EntityKey,
    /// The entity's digest; zeros in an index record.
    pub digest: EntityDigest,
    /// The digest of the entity's key group; zeros in an index record.
    pub group: EntityDigest,
}

impl KeyPayload {
    /// Wraps the payload under the keyring's newest KEK, binding `aad`.
    pub fn wrap(&self, keyring: &Keyring, aad: &[u8]) -> Result<(u32, [u8; WRAPPED_LEN])> {
        let mut plain = Zeroizing::new([0u8; PAYLOAD_LEN]);
        plain[..32].copy_from_slice(self.key.expose());
        plain[32..64].copy_from_slice(&self.digest);
        plain[64..].copy_from_slice(&self.group);
        let (version, wrapped) = keyring.wrap(plain.as_slice(), aad)?;
        let mut fixed = [0u8; WRAPPED_LEN];
        fixed.copy_from_slice(&wrapped);
        Ok((version, fixed))
    }

    /// Unwraps a payload made by [`KeyPayload::wrap`] under `version` with the same `aad`.
    pub fn unwrap(
        keyring: &Keyring,
        version: u32,
        wrapped: &[u8],
        aad: &[u8],
    ) -> std::result::Result<KeyPayload, UnwrapFailure> {
        let plain = keyring.unwrap(version, wrapped, aad)?;
        if plain.len() != PAYLOAD_LEN {
            return Err(UnwrapFailure::Authentication);
        }
        let part = |range: std::ops::Range<usize>| {
            let mut bytes = [0u8; 32];
            bytes.copy_from_slice(&plain[range]);
            bytes
        };
        Ok(KeyPayload {
            key: EntityKey::from_bytes(part(0..32)),
            digest: part(32..64),
            group: part(64..96),
        })
    }
}

impl std::fmt::Debug for KeyPayload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyPayload(<redacted>)")
    }
}
