//! Entity keys for pseudonymisation, and the stores that keep them
//! (privacy model, "finding an entity's key without storing the identifier").
//!
//! Every entity (subject, installation, device, dataset, quarantine day) gets
//! a random 256-bit key the first time it is seen. A store finds it by a
//! lookup tag — a BLAKE3 keyed hash of scope and normalised identifier under
//! a long-lived index key — so the raw identifier is never stored, and keeps
//! it wrapped (XChaCha20-Poly1305) under the key-encryption key (KEK).
//! Deleting a key makes every pseudonym made with it unlinkable
//! (crypto-shredding).
//!
//! The design decision to know: [`KeyStore::key_for`] may hand out a new key
//! before it is durable; callers must [`KeyStore::sync`] before publishing
//! anything made with it, so a crash can never give one identifier two
//! pseudonyms.

mod embedded;
mod error;
mod kek;
mod key;
mod seal;
mod tag;

pub use embedded::EmbeddedKeyStore;
pub use error::{KeyStoreError, Result};
pub use kek::{Kek, KekSource};
pub use key::EntityKey;
pub use seal::{open_sealed, seal};

use delink_model::Scope;

/// Finds and creates entity keys. Implementations are shared by every worker thread.
pub trait KeyStore: Send + Sync {
    /// Returns the key of the entity, creating it when it is new.
    ///
    /// A created key is durable only after the next [`KeyStore::sync`].
    fn key_for(&self, scope: Scope, normalised_id: &str) -> Result<EntityKey>;

    /// Returns the key of the entity if it exists, never creating one.
    fn existing_key(&self, scope: Scope, normalised_id: &str) -> Result<Option<EntityKey>>;

    /// Makes every key handed out so far durable.
    fn sync(&self) -> Result<()>;

    /// Returns how many entity keys the store holds.
    fn len(&self) -> usize;

    /// Tells whether the store holds no entity key.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
