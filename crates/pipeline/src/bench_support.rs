//! Hooks for the criterion benches of the root package; not part of the API.

use std::sync::Arc;

use delink_keystore::{KeyStore, Result};
use delink_model::Observation;
use delink_telemetry::Metrics;

use crate::keys::{EntityKeys, KeyCache};

/// Fetches the keys of observations the way a worker does, through the key cache.
pub struct KeyLookups {
    store: Arc<dyn KeyStore>,
    metrics: Metrics,
    cache: KeyCache,
}

impl KeyLookups {
    /// Starts with an empty cache in front of `store`, with no device epochs.
    pub fn new(store: Arc<dyn KeyStore>) -> anyhow::Result<Self> {
        Ok(KeyLookups {
            store,
            metrics: Metrics::new()?,
            cache: KeyCache::new(0, std::time::Duration::from_secs(3600)),
        })
    }

    /// Revalidates the cache, as a worker does before each batch.
    pub fn revalidate(&mut self) -> Result<()> {
        self.cache.revalidate(self.store.as_ref(), &self.metrics)
    }

    /// Fetches every key `observation` needs; tells whether it has a subject.
    pub fn fetch(&mut self, observation: &Observation<'_>) -> Result<bool> {
        EntityKeys::fetch(self.store.as_ref(), &mut self.cache, observation)
            .map(|keys| keys.has_subject())
    }
}
