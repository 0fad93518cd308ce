//! Lookup tags: how a store finds a key without storing the identifier.

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
