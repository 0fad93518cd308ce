//! Fetches the keys one observation needs, through the one key cache that
//! every worker thread of the process shares.
//!
//! The key stores keep no unwrapped key (each lookup unwraps, or queries), so
//! this cache is the only place a process holds entity keys in the clear: at
//! most [`MAX_CACHED_KEYS`] of them, and none from before an erasure the
//! store has announced. A hit is one hash lookup under a read lock (taken
//! once per observation); a miss asks the store outside any lock of the cache, so two workers missing the same
//! key both get the store's (race-free) answer.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use delink_keystore::{Entity, EntityKey, KeyStore, Result, subject_entity};
use delink_model::{Observation, Scope, SubjectId};
use delink_telemetry::{KeystoreOperation, Metrics};
use delink_transform::ObservationKeys;

/// Keys the cache holds before it starts afresh; bounds the unwrapped keys in memory.
pub(crate) const MAX_CACHED_KEYS: usize = 250_000;

/// Caches the keys workers fetch from the store, shared by every worker thread.
///
/// Keyed by scope, epoch and normalised identifier (a subject's as
/// [`subject_entity`] names it). Emptied whenever the store's generation
/// moves: an erased key is never used from the cache once a worker's
/// revalidation has seen the store learn of its erasure.
pub(crate) struct KeyCache {
    max_entries: usize,
    /// Device-key epoch length in days; 0 = no epochs.
    epoch_days: u32,
    /// How often the store is asked for erasures made elsewhere.
    refresh_interval: Duration,
    /// When the store was last asked; `None` before the first batch. Held
    /// while asking, so one worker asks per interval and the others wait for
    /// its answer instead of starting a batch without it.
    last_refresh: Mutex<Option<Instant>>,
    cached: RwLock<CachedKeys>,
}

/// The cached keys and the store generation they belong to.
struct CachedKeys {
    /// `None` before the first revalidation.
    generation: Option<u64>,
    keys: HashMap<Box<[u8]>, EntityKey>,
}

impl KeyCache {
    /// Starts an empty cache of at most `max_entries` keys, for device keys
    /// rotating every `epoch_days` (0 = never), asking the store for erasures
    /// every `refresh_interval`.
    pub(crate) fn new(max_entries: usize, epoch_days: u32, refresh_interval: Duration) -> Self {
        KeyCache {
            max_entries: max_entries.max(1),
            epoch_days,
            refresh_interval,
            last_refresh: Mutex::new(None),
            cached: RwLock::new(CachedKeys {
                generation: None,
                keys: HashMap::new(),
            }),
        }
    }

    fn read(&self) -> RwLockReadGuard<'_, CachedKeys> {
        self.cached.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, CachedKeys> {
        self.cached.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// Counts the cached keys.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.read().keys.len()
    }

    /// Asks the store for erasures when the refresh interval has passed, and
    /// empties the cache when the store has learnt of one since the cache was
    /// filled. Called by every worker before each batch.
    pub(crate) fn revalidate(&self, store: &dyn KeyStore, metrics: &Metrics) -> Result<()> {
        self.refresh_when_due(store, metrics)?;
        let generation = store.generation();
        if self.read().generation == Some(generation) {
            return Ok(());
        }
        let mut cached = self.write();
        match cached.generation {
            // Another worker moved the cache on already, or this reading is older than its.
            Some(seen) if seen >= generation => {}
            seen => {
                if seen.is_some() {
                    metrics.count_erasure_applied();
                }
                cached.keys.clear();
                cached.generation = Some(generation);
            }
        }
        Ok(())
    }

    fn refresh_when_due(&self, store: &dyn KeyStore, metrics: &Metrics) -> Result<()> {
        let mut last_refresh = self
            .last_refresh
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if last_refresh.is_some_and(|last| last.elapsed() < self.refresh_interval) {
            return Ok(());
        }
        let started = Instant::now();
        metrics.count_keystore_operations(KeystoreOperation::Refresh, 1);
        store
            .refresh()
            .inspect_err(|_| metrics.count_keystore_error(KeystoreOperation::Refresh))?;
        *last_refresh = Some(started);
        Ok(())
    }

    /// Returns the cached key under `cache_key`, or the generation a key
    /// fetched now would belong to.
    fn cached(&self, cache_key: &[u8]) -> std::result::Result<EntityKey, Option<u64>> {
        let cached = self.read();
        match cached.keys.get(cache_key) {
            Some(key) => Ok(key.clone()),
            None => Err(cached.generation),
        }
    }

    /// Caches a key fetched at `generation`, unless the cache has moved on
    /// since (the key may be an erased one); starts afresh when full.
    fn remember(&self, generation: Option<u64>, cache_key: &[u8], key: &EntityKey) {
        let mut cached = self.write();
        if cached.generation != generation {
            return;
        }
        if cached.keys.contains_key(cache_key) {
            // Another worker fetched it meanwhile; the store gave both the same key.
            return;
        }
        if cached.keys.len() >= self.max_entries {
            cached.keys.clear();
        }
        cached.keys.insert(cache_key.into(), key.clone());
    }

    /// Starts the key lookups of one batch.
    pub(crate) fn lookups<'c>(
        &'c self,
        store: &'c dyn KeyStore,
        metrics: &'c Metrics,
    ) -> KeyLookups<'c> {
        KeyLookups {
            cache: self,
            store,
            metrics,
            cache_key: Vec::with_capacity(64),
            misses: 0,
        }
    }
}

/// One key an observation needs, named without allocating.
#[derive(Clone, Copy)]
enum Wanted<'a> {
    Subject(SubjectId<'a>),
    Installation(&'a str),
    Device {
        serial: &'a str,
        epoch: u32,
    },
    /// A component's key is its own, in the key group of the charger it is fitted to.
    Component {
        charger: &'a str,
        serial: &'a str,
        epoch: u32,
    },
}

impl Wanted<'_> {
    /// Writes the cache key: scope code ‖ epoch ‖ owner (a charger's serial,
    /// length-prefixed, for a component; a marker otherwise) ‖ normalised identifier.
    fn write_cache_key(self, buffer: &mut Vec<u8>) {
        let (scope, epoch, owner, parts): (Scope, u32, Option<&str>, [&str; 2]) = match self {
            Wanted::Subject(SubjectId::Account(id)) => (Scope::Subject, 0, None, ["account:", id]),
            Wanted::Subject(SubjectId::Rfid(tag)) => (Scope::Subject, 0, None, ["rfid:", tag]),
            Wanted::Installation(id) => (Scope::Installation, 0, None, ["", id]),
            Wanted::Device { serial, epoch } => (Scope::Device, epoch, None, ["", serial]),
            Wanted::Component {
                charger,
                serial,
                epoch,
            } => (Scope::Device, epoch, Some(charger), ["", serial]),
        };
        buffer.clear();
        buffer.push(scope.code());
        buffer.extend_from_slice(&epoch.to_le_bytes());
        match owner {
            Some(charger) => {
                buffer.push(1);
                buffer.extend_from_slice(&(charger.len() as u32).to_le_bytes());
                buffer.extend_from_slice(charger.as_bytes());
            }
            None => buffer.push(0),
        }
        for part in parts {
            buffer.extend_from_slice(part.as_bytes());
        }
    }

    fn fetch(self, store: &dyn KeyStore) -> Result<EntityKey> {
        match self {
            Wanted::Subject(subject) => {
                store.key_for(&Entity::new(Scope::Subject, &subject_entity(subject)))
            }
            Wanted::Installation(id) => store.key_for(&Entity::new(Scope::Installation, id)),
            Wanted::Device { serial, epoch } => store.key_for(&Entity::device(serial, epoch)),
            Wanted::Component {
                charger,
                serial,
                epoch,
            } => store.key_for(&Entity::component(charger, serial, epoch)),
        }
    }
}

/// The key lookups of one batch: through the shared cache, counting the
/// misses that went to the store.
pub(crate) struct KeyLookups<'c> {
    cache: &'c KeyCache,
    store: &'c dyn KeyStore,
    metrics: &'c Metrics,
    /// Reused for every cache key of the batch, so that a hit allocates nothing.
    cache_key: Vec<u8>,
    misses: u64,
}

/// The cache's read lock, held across the lookups of one observation until one misses.
type HeldKeys<'c> = Option<RwLockReadGuard<'c, CachedKeys>>;

impl<'c> KeyLookups<'c> {
    #[cfg(test)]
    fn key(&mut self, wanted: Wanted<'_>) -> Result<EntityKey> {
        self.key_holding(&mut None, wanted)
    }

    /// Looks `wanted` up under `held` (or a read lock of its own), and on a
    /// miss releases the lock and asks the store.
    fn key_holding(&mut self, held: &mut HeldKeys<'c>, wanted: Wanted<'_>) -> Result<EntityKey> {
        wanted.write_cache_key(&mut self.cache_key);
        let looked_up = match held {
            Some(cached) => match cached.keys.get(self.cache_key.as_slice()) {
                Some(key) => Ok(key.clone()),
                None => Err(cached.generation),
            },
            None => self.cache.cached(&self.cache_key),
        };
        let generation = match looked_up {
            Ok(key) => return Ok(key),
            Err(generation) => generation,
        };
        // Never ask the store, or take the write lock, holding the read lock.
        *held = None;
        self.misses += 1;
        let key = wanted
            .fetch(self.store)
            .inspect_err(|_| self.metrics.count_keystore_error(KeystoreOperation::KeyFor))?;
        self.cache.remember(generation, &self.cache_key, &key);
        Ok(key)
    }

    /// Fetches (or creates) every key the observation needs.
    ///
    /// Takes the cache's read lock once for the whole observation, and lets it
    /// go at the first miss.
    pub(crate) fn fetch(&mut self, observation: &Observation<'_>) -> Result<EntityKeys> {
        let epoch = delink_config::device_epoch(self.cache.epoch_days, observation.observed_at_us);
        let mut held = Some(self.cache.read());
        let subject = observation
            .user
            .as_ref()
            .and_then(|user| user.subject())
            .map(|subject| self.key_holding(&mut held, Wanted::Subject(subject)))
            .transpose()?;
        let installation = observation
            .installation
            .as_ref()
            .and_then(|installation| installation.id.as_deref())
            .map(|id| self.key_holding(&mut held, Wanted::Installation(id)))
            .transpose()?;
        let serial = observation.charger.serial.as_ref();
        let device = self.key_holding(&mut held, Wanted::Device { serial, epoch })?;
        let components = observation
            .charger
            .components
            .iter()
            .map(|component| {
                let wanted = Wanted::Component {
                    charger: serial,
                    serial: component.serial.as_ref(),
                    epoch,
                };
                self.key_holding(&mut held, wanted)
            })
            .collect::<Result<Vec<_>>>()?;
        drop(held);
        Ok(EntityKeys {
            subject,
            installation,
            device,
            components,
        })
    }

    /// Counts the batch's store lookups (`key_for`, failed ones included), once per batch.
    pub(crate) fn finish(self) {
        if self.misses > 0 {
            self.metrics
                .count_keystore_operations(KeystoreOperation::KeyFor, self.misses);
        }
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

#[cfg(test)]
mod tests;
