//! Fetches the keys one observation needs, through a per-worker cache in
//! front of the key store.

use std::collections::HashMap;

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

/// Entries a worker caches before starting afresh; bounds memory per worker.
const MAX_CACHED_KEYS: usize = 250_000;

/// Remembers keys a worker has fetched, so the hot path skips the store's lookup tag.
#[derive(Default)]
pub(crate) struct KeyCache {
    accounts: HashMap<Box<str>, EntityKey>,
    rfids: HashMap<Box<str>, EntityKey>,
    installations: HashMap<Box<str>, EntityKey>,
    devices: HashMap<Box<str>, EntityKey>,
}

impl KeyCache {
    fn len(&self) -> usize {
        self.accounts.len() + self.rfids.len() + self.installations.len() + self.devices.len()
    }

    fn subject(&mut self, store: &dyn KeyStore, subject: SubjectId<'_>) -> Result<EntityKey> {
        let (map, id) = match subject {
            SubjectId::Account(id) => (&mut self.accounts, id),
            SubjectId::Rfid(tag) => (&mut self.rfids, tag),
        };
        cached(map, id, || {
            store.key_for(Scope::Subject, &subject_entity(subject))
        })
    }

    fn installation(&mut self, store: &dyn KeyStore, id: &str) -> Result<EntityKey> {
        cached(&mut self.installations, id, || {
            store.key_for(Scope::Installation, id)
        })
    }

    fn device(&mut self, store: &dyn KeyStore, serial: &str) -> Result<EntityKey> {
        cached(&mut self.devices, serial, || {
            store.key_for(Scope::Device, serial)
        })
    }
}

fn cached(
    map: &mut HashMap<Box<str>, EntityKey>,
    id: &str,
    fetch: impl FnOnce() -> Result<EntityKey>,
) -> Result<EntityKey> {
    if let Some(key) = map.get(id) {
        return Ok(key.clone());
    }
    let key = fetch()?;
    map.insert(id.into(), key.clone());
    Ok(key)
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
    pub(crate) fn fetch(
        store: &dyn KeyStore,
        cache: &mut KeyCache,
        observation: &Observation<'_>,
    ) -> Result<Self> {
        if cache.len() > MAX_CACHED_KEYS {
            *cache = KeyCache::default();
        }
        let subject = observation
            .user
            .as_ref()
            .and_then(|user| user.subject())
            .map(|subject| cache.subject(store, subject))
            .transpose()?;
        let installation = observation
            .installation
            .as_ref()
            .and_then(|installation| installation.id.as_deref())
            .map(|id| cache.installation(store, id))
            .transpose()?;
        let device = cache.device(store, &observation.charger.serial)?;
        let components = observation
            .charger
            .components
            .iter()
            .map(|component| cache.device(store, &component.serial))
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
