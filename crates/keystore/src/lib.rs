//! Entity keys for pseudonymisation, and the stores that keep them
//! (privacy model, "finding an entity's key" and "erasure = crypto-shredding").
//!
//! Every entity (subject, installation, device, dataset, quarantine day) gets
//! a random 256-bit key the first time it is seen. A store finds it by a
//! lookup tag — a BLAKE3 keyed hash of the entity's digest (scope, epoch,
//! owner, normalised identifier) under the store's index key — so the raw
//! identifier is never stored, and keeps it wrapped (XChaCha20-Poly1305)
//! under the newest KEK of a [`Keyring`], together with the digests of the
//! entity and of its key group. Erasing deletes the key and its group (every
//! pseudonym made with them becomes unlinkable); rotation re-wraps every live
//! key under a new KEK and re-tags it under a new index key; destroying the
//! old KEK makes copies of erased keys in backups useless, and their tags
//! impossible to recompute.
//!
//! The design decisions to know: [`KeyStore::key_for`] may hand out a new key
//! before it is durable, so callers must [`KeyStore::sync`] before
//! publishing anything made with it; and erasures reach other processes
//! through the store itself — each handle's [`KeyStore::generation`] grows
//! once [`KeyStore::refresh`] has seen an erasure.
//!
//! Stores are authoritative and cache no unwrapped key: the embedded store
//! keeps an index of wrapped keys and unwraps one per lookup, the PostgreSQL
//! store queries its table. The one cache of unwrapped keys in a process is
//! the caller's (the pipeline keeps one, shared by its worker threads), and it
//! is dropped whenever the generation moves.

mod embedded;
mod entity;
mod error;
mod journal;
mod key;
mod keyring;
mod payload;
mod seal;
mod tag;
#[cfg(any(test, feature = "testkit"))]
pub mod testkit;

pub use embedded::{CopyContents, EmbeddedKeyStore, read_copy};
pub use entity::{Entity, EntityDigest, subject_entity};
pub use error::{KeyStoreError, Result};
pub use journal::{JournalEvent, JournalKind};
pub use key::EntityKey;
pub use keyring::{KEK_ENV, KekSource, Keyring, UnwrapFailure};
pub use payload::{KeyPayload, WRAPPED_LEN};
pub use seal::{open_sealed, seal};
pub use tag::{LookupTag, group_tag, lookup_tag, tag_of_digest};

use std::collections::BTreeMap;

use delink_model::Scope;

/// Names a store and how far it has grown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorePosition {
    /// A random id made when the store was created, as 32 hex digits; kept across rotations.
    pub store_id: String,
    /// A count that only grows: records appended over the store's life
    /// (embedded), or keys ever created (PostgreSQL).
    pub position: u64,
}

/// Finds, creates and erases entity keys. Implementations are shared by every worker thread
/// of a process, and several processes may use one store at once.
///
/// Implementations keep no cache of unwrapped keys: each [`KeyStore::key_for`] and
/// [`KeyStore::existing_key`] unwraps the stored key (and may cost IO). Callers on a
/// hot path cache the keys they get, and empty that cache when
/// [`KeyStore::generation`] moves.
pub trait KeyStore: Send + Sync + std::fmt::Debug {
    /// Returns the key of the entity, creating it when it is new.
    ///
    /// Race-free: every handle on the store gets the same key for the same entity.
    /// A created key is durable only after the next [`KeyStore::sync`].
    /// Unwraps the stored key on every call; nothing unwrapped is kept.
    fn key_for(&self, entity: &Entity<'_>) -> Result<EntityKey>;

    /// Returns the key of the entity if it exists, never creating one.
    /// Unwraps the stored key on every call, like [`KeyStore::key_for`].
    fn existing_key(&self, entity: &Entity<'_>) -> Result<Option<EntityKey>>;

    /// Makes every key handed out so far durable.
    fn sync(&self) -> Result<()>;

    /// Deletes the entity's key and every key in its key group, durably; returns
    /// how many keys went. Erasing a charger erases each of its epochs and each
    /// component key under it (see [`Entity`]).
    ///
    /// The embedded store overwrites the records in place; a database may keep
    /// old copies in pages, WAL and backups, which KEK rotation and retirement
    /// make undecryptable. Other handles (and this one's [`KeyStore::generation`])
    /// learn of it once their [`KeyStore::refresh`] has run.
    fn erase(&self, entity: &Entity<'_>) -> Result<u64>;

    /// Catches up with changes other handles made (erasures, and rotations: new keys are
    /// then wrapped under the newest KEK version); returns the generation.
    fn refresh(&self) -> Result<u64>;

    /// Returns a number that grows (never shrinks) whenever this handle has learnt of an
    /// erasure. Cheap (no IO): callers caching keys compare it and drop their caches when
    /// it moves; a smaller number than one seen before is an older reading.
    fn generation(&self) -> u64;

    /// Re-wraps every live key under the keyring's newest KEK version; returns how many.
    fn rewrap(&self) -> Result<u64>;

    /// Counts live entity keys per KEK version that wraps them.
    fn keys_per_kek_version(&self) -> Result<BTreeMap<u32, u64>>;

    /// Deletes every key of `scope` with an epoch in `1..before_epoch` (expired device
    /// epochs, quarantine days); returns how many.
    fn erase_epochs_before(&self, scope: Scope, before_epoch: u32) -> Result<u64>;

    /// Appends an event to the lifecycle journal, durably.
    fn append_journal(&self, event: &JournalEvent) -> Result<()>;

    /// Reads the lifecycle journal, oldest first.
    fn journal(&self) -> Result<Vec<JournalEvent>>;

    /// Counts the live entity keys.
    fn len(&self) -> Result<u64>;

    /// The KEK version new keys are wrapped under (what a file written now depends on).
    fn kek_version(&self) -> u32;

    /// The store's identity and its position: every key handed out so far is
    /// within it once the next [`KeyStore::sync`] returns. Published files
    /// record it, so a store later found shorter (cut, or restored from an
    /// older backup) is refused instead of silently re-keying.
    fn position(&self) -> Result<StorePosition>;

    /// Tells whether the store holds no entity key.
    fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }
}
