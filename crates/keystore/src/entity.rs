//! Names one entity whose key a store keeps.

use delink_model::{Scope, SubjectId};

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

/// Names an entity: its scope, its normalised identifier and, for devices, its key epoch.
///
/// Epoch 0 means "no epoch": the entity keeps one key until it is erased.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Entity<'a> {
    /// The kind of entity.
    pub scope: Scope,
    /// The normalised identifier (never stored; only its lookup tag is).
    pub id: &'a str,
    /// The key epoch of a device key; 0 for every other scope.
    pub epoch: u32,
}

impl<'a> Entity<'a> {
    /// Names an entity without epochs.
    pub fn new(scope: Scope, id: &'a str) -> Self {
        Entity {
            scope,
            id,
            epoch: 0,
        }
    }

    /// Names one epoch of a device key (`epoch` 0 when device keys do not rotate).
    pub fn device(serial: &'a str, epoch: u32) -> Self {
        Entity {
            scope: Scope::Device,
            id: serial,
            epoch,
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
