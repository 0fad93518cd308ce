//! Lookup tags: how a store finds a key without storing the identifier.

use std::hash::{BuildHasherDefault, Hasher};

use delink_model::Scope;

use crate::EntityKey;

/// A keyed hash of scope and normalised identifier under the store's index key.
pub(crate) type LookupTag = [u8; 32];

/// Computes the lookup tag of an entity.
pub(crate) fn lookup_tag(index_key: &EntityKey, scope: Scope, normalised_id: &str) -> LookupTag {
    let mut hasher = blake3::Hasher::new_keyed(index_key.expose());
    hasher.update(&[scope.code()]);
    hasher.update(normalised_id.as_bytes());
    *hasher.finalize().as_bytes()
}

/// Hashes a lookup tag for a `HashMap` by taking its first eight bytes.
///
/// Tags are outputs of a keyed hash an attacker cannot predict, so they are
/// already uniformly distributed and collision-flooding is not possible.
#[derive(Default)]
pub(crate) struct TagHasher(u64);

impl Hasher for TagHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8).take(1) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 ^= u64::from_le_bytes(word);
        }
    }
}

/// Builds [`TagHasher`]s.
pub(crate) type BuildTagHasher = BuildHasherDefault<TagHasher>;
