//! Names one entity whose key a store keeps, and the digests stores find it by.

use delink_model::{Scope, SubjectId};

/// A digest of an entity's name: scope, epoch, owner and identifier, hashed.
///
/// Stores keep it only wrapped (inside the sealed key record), so that a KEK
/// rotation can compute new lookup tags under a new index key.
pub type EntityDigest = [u8; 32];

const DIGEST_CONTEXT: &str = "delink 2026-11 entity digest v1";

/// Returns the key-store identifier of a subject.
///
/// Accounts and anonymous RFID tags share the subject scope, so each is
/// prefixed with its kind and the two can never name the same entity.
pub fn subject_entity(subject: SubjectId<'_>) -> String {
    match subject {
        SubjectId::Account(id) => format!("account:{id}"),
        SubjectId::Rfid(tag) => format!("rfid:{tag}"),
    }
}

/// Names an entity: its scope, its normalised identifier, for device keys its
/// epoch, and for a component the charger it is fitted to.
///
/// Epoch 0 means "no epoch": the entity keeps one key until it is erased.
/// Every key of a charger — each epoch, and each epoch of each of its
/// components — belongs to the charger's key group, and erasing the charger
/// erases the whole group (see [`Entity::group_digest`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Entity<'a> {
    /// The kind of entity.
    pub scope: Scope,
    /// The normalised identifier (never stored; only digests of it are, wrapped).
    pub id: &'a str,
    /// The key epoch of a device key; 0 for every other scope.
    pub epoch: u32,
    /// For a component, the serial of the charger it is fitted to.
    pub owner: Option<&'a str>,
}

impl<'a> Entity<'a> {
    /// Names an entity without epochs.
    pub fn new(scope: Scope, id: &'a str) -> Self {
        Entity {
            scope,
            id,
            epoch: 0,
            owner: None,
        }
    }

    /// Names one epoch of a charger's key (`epoch` 0 when device keys do not rotate).
    pub fn device(serial: &'a str, epoch: u32) -> Self {
        Entity {
            scope: Scope::Device,
            id: serial,
            epoch,
            owner: None,
        }
    }

    /// Names one epoch of the key of a component fitted to `charger`: the same
    /// component on another charger has another key, in that charger's group.
    pub fn component(charger: &'a str, serial: &'a str, epoch: u32) -> Self {
        Entity {
            scope: Scope::Device,
            id: serial,
            epoch,
            owner: Some(charger),
        }
    }

    /// Hashes the entity's full name (length-prefixed, so no two names collide).
    pub fn digest(&self) -> EntityDigest {
        let mut hasher = blake3::Hasher::new_derive_key(DIGEST_CONTEXT);
        hasher.update(&[self.scope.code()]);
        hasher.update(&self.epoch.to_le_bytes());
        match self.owner {
            Some(owner) => {
                hasher.update(&[1]);
                hasher.update(&(owner.len() as u64).to_le_bytes());
                hasher.update(owner.as_bytes());
            }
            None => {
                hasher.update(&[0]);
            }
        }
        hasher.update(self.id.as_bytes());
        *hasher.finalize().as_bytes()
    }

    /// The digest of the entity's key group: for device keys, the charger's
    /// epoch-0 name (so a charger's epochs and components erase together);
    /// for every other entity, its own digest.
    pub fn group_digest(&self) -> EntityDigest {
        match self.scope {
            Scope::Device => Entity::device(self.owner.unwrap_or(self.id), 0).digest(),
            _ => self.digest(),
        }
    }
}

/// Debug output of an entity shows its scope and epoch, never the identifier.
pub(crate) struct Redacted<'e, 'a>(pub(crate) &'e Entity<'a>);

impl std::fmt::Debug for Redacted<'_, '_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}#{}", self.0.scope.as_str(), self.0.epoch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_separate_every_part_of_the_name() {
        let names = [
            Entity::new(Scope::Subject, "a"),
            Entity::new(Scope::Installation, "a"),
            Entity::device("a", 0),
            Entity::device("a", 1),
            Entity::component("a", "b", 0),
            Entity::component("ab", "", 0),
            Entity::device("ab", 0),
        ];
        let digests: std::collections::HashSet<_> = names.iter().map(Entity::digest).collect();
        assert_eq!(digests.len(), names.len());
    }

    #[test]
    fn a_chargers_epochs_and_components_share_its_group() {
        let group = Entity::device("ZAP1", 0).digest();
        assert_eq!(Entity::device("ZAP1", 7).group_digest(), group);
        assert_eq!(Entity::component("ZAP1", "SENSE9", 7).group_digest(), group);
        assert_ne!(Entity::device("SENSE9", 7).group_digest(), group);
        let subject = Entity::new(Scope::Subject, "account:1");
        assert_eq!(subject.group_digest(), subject.digest());
    }
}
