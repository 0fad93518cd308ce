//! Fetches the keys one observation needs, through a per-worker cache in
//! front of the key store.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use delink_keystore::{Entity, EntityKey, KeyStore, Result, subject_entity};
use delink_model::{Observation, Scope, SubjectId};
use delink_telemetry::{KeystoreOperation, Metrics};
use delink_transform::ObservationKeys;

/// Entries a worker caches before starting afresh; bounds memory per worker.
const MAX_CACHED_KEYS: usize = 250_000;

/// Remembers keys a worker has fetched, so the hot path skips the store's lookup tag.
///
/// Emptied whenever the store's generation moves: an erased key is never
/// used from the cache once the store has learnt of its erasure.
pub(crate) struct KeyCache {
    /// The store generation the cached keys belong to; `None` before the first batch.
    generation: Option<u64>,
    /// Device-key epoch length in days; 0 = no epochs.
    epoch_days: u32,
    /// How often the store is asked for erasures made elsewhere.
    refresh_interval: Duration,
    /// When the store was last asked; `None` before the first batch.
    last_refresh: Option<Instant>,
    accounts: HashMap<Box<str>, EntityKey>,
    rfids: HashMap<Box<str>, EntityKey>,
    installations: HashMap<Box<str>, EntityKey>,
    /// Device keys by epoch, then serial.
    devices: HashMap<u32, HashMap<Box<str>, EntityKey>>,
}

impl KeyCache {
    /// Starts an empty cache for device keys rotating every `epoch_days` (0 = never),
    /// asking the store for erasures every `refresh_interval`.
    pub(crate) fn new(epoch_days: u32, refresh_interval: Duration) -> Self {
        KeyCache {
            generation: None,
            epoch_days,
            refresh_interval,
            last_refresh: None,
            accounts: HashMap::new(),
            rfids: HashMap::new(),
            installations: HashMap::new(),
            devices: HashMap::new(),
        }
    }

    fn len(&self) -> usize {
        let devices: usize = self.devices.values().map(HashMap::len).sum();
        self.accounts.len() + self.rfids.len() + self.installations.len() + devices
    }

    /// Asks the store for erasures when the refresh interval has passed, and
    /// empties the cache when the store learnt of one or the cache outgrew its
    /// bound (at most one batch's keys over it). Called before each batch.
    pub(crate) fn revalidate(&mut self, store: &dyn KeyStore, metrics: &Metrics) -> Result<()> {
        if self
            .last_refresh
            .is_none_or(|last| last.elapsed() >= self.refresh_interval)
        {
            metrics.count_keystore_operations(KeystoreOperation::Refresh, 1);
            store
                .refresh()
                .inspect_err(|_| metrics.count_keystore_error(KeystoreOperation::Refresh))?;
            self.last_refresh = Some(Instant::now());
        }
        let generation = Some(store.generation());
        if generation != self.generation {
            if self.generation.is_some() {
                metrics.count_erasure_applied();
            }
            self.clear();
            self.generation = generation;
        } else if self.len() > MAX_CACHED_KEYS {
            self.clear();
        }
        Ok(())
    }

    fn clear(&mut self) {
        self.accounts.clear();
        self.rfids.clear();
        self.installations.clear();
        self.devices.clear();
    }

    fn subject(&mut self, store: &dyn KeyStore, subject: SubjectId<'_>) -> Result<EntityKey> {
        let (map, id) = match subject {
            SubjectId::Account(id) => (&mut self.accounts, id),
            SubjectId::Rfid(tag) => (&mut self.rfids, tag),
        };
        if let Some(key) = map.get(id) {
            return Ok(key.clone());
        }
        let key = store.key_for(&Entity::new(Scope::Subject, &subject_entity(subject)))?;
        map.insert(id.into(), key.clone());
        Ok(key)
    }

    fn installation(&mut self, store: &dyn KeyStore, id: &str) -> Result<EntityKey> {
        if let Some(key) = self.installations.get(id) {
            return Ok(key.clone());
        }
        let key = store.key_for(&Entity::new(Scope::Installation, id))?;
        self.installations.insert(id.into(), key.clone());
        Ok(key)
    }

    fn device(
        &mut self,
        store: &dyn KeyStore,
        serial: &str,
        observed_at_us: i64,
    ) -> Result<EntityKey> {
        let epoch = delink_config::device_epoch(self.epoch_days, observed_at_us);
        let devices = self.devices.entry(epoch).or_default();
        if let Some(key) = devices.get(serial) {
            return Ok(key.clone());
        }
        let key = store.key_for(&Entity::device(serial, epoch))?;
        devices.insert(serial.into(), key.clone());
        Ok(key)
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
    pub(crate) fn fetch(
        store: &dyn KeyStore,
        cache: &mut KeyCache,
        observation: &Observation<'_>,
    ) -> Result<Self> {
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
        let observed_at = observation.observed_at_us;
        let device = cache.device(store, &observation.charger.serial, observed_at)?;
        let components = observation
            .charger
            .components
            .iter()
            .map(|component| cache.device(store, &component.serial, observed_at))
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
