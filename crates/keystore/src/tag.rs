//! Lookup tags: how a store finds a key without storing the identifier.

use crate::{Entity, EntityKey};

/// A keyed hash of scope, epoch and normalised identifier under the store's index key.
pub type LookupTag = [u8; 32];

/// Computes the lookup tag of an entity.
pub fn lookup_tag(index_key: &EntityKey, entity: &Entity<'_>) -> LookupTag {
    let mut hasher = blake3::Hasher::new_keyed(index_key.expose());
    hasher.update(&[entity.scope.code()]);
    hasher.update(&entity.epoch.to_le_bytes());
    hasher.update(entity.id.as_bytes());
    *hasher.finalize().as_bytes()
}

/// Builds the associated data a wrapped key is bound to: scope ‖ epoch ‖ tag.
pub fn wrap_aad(scope_code: u8, epoch: u32, tag: &LookupTag) -> [u8; 37] {
    let mut aad = [0u8; 37];
    aad[0] = scope_code;
    aad[1..5].copy_from_slice(&epoch.to_le_bytes());
    aad[5..].copy_from_slice(tag);
    aad
}
