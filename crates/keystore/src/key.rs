use std::fmt;

use zeroize::Zeroizing;

/// Holds one entity's 256-bit key; redacted in `Debug`, zeroed on drop.
#[derive(Clone)]
pub struct EntityKey(Zeroizing<[u8; 32]>);

impl EntityKey {
    /// Wraps raw key bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        EntityKey(Zeroizing::new(bytes))
    }

    /// Draws a fresh key from the operating system's CSPRNG.
    pub fn random() -> crate::Result<Self> {
        let mut bytes = Zeroizing::new([0u8; 32]);
        getrandom::fill(bytes.as_mut()).map_err(|_| crate::KeyStoreError::Random)?;
        Ok(EntityKey(bytes))
    }

    /// Exposes the key bytes to a hash or cipher.
    pub fn expose(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for EntityKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EntityKey(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_key_bytes() {
        let key = EntityKey::from_bytes([0xAB; 32]);
        let shown = format!("{key:?}");
        assert!(!shown.contains("ab") && !shown.contains("171"), "{shown}");
    }

    #[test]
    fn random_keys_differ() {
        let first = EntityKey::random().expect("rng");
        let second = EntityKey::random().expect("rng");
        assert_ne!(first.expose(), second.expose());
    }
}
