//! Lookup tags: how a store finds a key without storing the identifier.
//!
//! A tag is a keyed hash of the entity's digest under the store's index key.
//! The index key changes with every KEK rotation (stores re-tag each live key
//! from the digest kept wrapped in its record), so tags in an old backup
//! cannot be recomputed from anything current once the old KEK is destroyed.

use crate::{Entity, EntityDigest, EntityKey};

/// A keyed hash of an entity's digest under the store's index key.
pub type LookupTag = [u8; 32];

/// Computes the tag of a digest (an entity's, or its group's).
pub fn tag_of_digest(index_key: &EntityKey, digest: &EntityDigest) -> LookupTag {
    *blake3::keyed_hash(index_key.expose(), digest).as_bytes()
}

/// Computes the lookup tag of an entity.
pub fn lookup_tag(index_key: &EntityKey, entity: &Entity<'_>) -> LookupTag {
    tag_of_digest(index_key, &entity.digest())
}

/// Computes the tag of the entity's key group.
pub fn group_tag(index_key: &EntityKey, entity: &Entity<'_>) -> LookupTag {
    tag_of_digest(index_key, &entity.group_digest())
}
