//! Fetches the keys one observation needs from the key store.

use delink_keystore::{EntityKey, KeyStore, Result};
use delink_model::{Observation, Scope, SubjectId};
use delink_transform::ObservationKeys;

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

/// Owns the keys of one observation; lend them to `transform` with [`EntityKeys::lend`].
pub(crate) struct EntityKeys {
    subject: Option<EntityKey>,
    installation: Option<EntityKey>,
    device: EntityKey,
    components: Vec<EntityKey>,
}

impl EntityKeys {
    /// Fetches (or creates) every key the observation needs.
    pub(crate) fn fetch(store: &dyn KeyStore, observation: &Observation<'_>) -> Result<Self> {
        let subject = observation
            .user
            .as_ref()
            .and_then(|user| user.subject())
            .map(|subject| store.key_for(Scope::Subject, &subject_entity(subject)))
            .transpose()?;
        let installation = observation
            .installation
            .as_ref()
            .and_then(|installation| installation.id.as_deref())
            .map(|id| store.key_for(Scope::Installation, id))
            .transpose()?;
        let device = store.key_for(Scope::Device, &observation.charger.serial)?;
        let components = observation
            .charger
            .components
            .iter()
            .map(|component| store.key_for(Scope::Device, &component.serial))
            .collect::<Result<Vec<_>>>()?;
        Ok(EntityKeys {
            subject,
            installation,
            device,
            components,
        })
    }

    /// Tells whether the observation has a subject (and so belongs in `history/`).
    pub(crate) fn has_subject(&self) -> bool {
        self.subject.is_some()
    }

    /// Lends the keys as plain values, with the key of the dataset being written.
    pub(crate) fn lend<'k>(
        &'k self,
        component_keys: &'k [&'k [u8; 32]],
        dataset: &'k EntityKey,
    ) -> ObservationKeys<'k> {
        ObservationKeys {
            subject: self.subject.as_ref().map(EntityKey::expose),
            installation: self.installation.as_ref().map(EntityKey::expose),
            device: self.device.expose(),
            components: component_keys,
            dataset: dataset.expose(),
        }
    }

    /// Returns the component keys as plain references, in component order.
    pub(crate) fn component_keys(&self) -> Vec<&[u8; 32]> {
        self.components.iter().map(EntityKey::expose).collect()
    }
}
