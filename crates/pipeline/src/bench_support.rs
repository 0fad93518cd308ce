//! Hooks for the criterion benches of the root package; not part of the API.

use std::sync::Arc;

use delink_keystore::{KeyStore, Result};
use delink_model::Observation;
use delink_telemetry::Metrics;

use crate::keys::{KeyCache, MAX_CACHED_KEYS};

/// Fetches the keys of observations the way a worker does, through the shared key cache.
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
            cache: KeyCache::new(MAX_CACHED_KEYS, 0, std::time::Duration::from_secs(3600)),
        })
    }

    /// Revalidates the cache, as a worker does before each batch.
    pub fn revalidate(&mut self) -> Result<()> {
        self.cache.revalidate(self.store.as_ref(), &self.metrics)
    }

    /// Fetches every key the observations need, as one batch; counts those with a subject.
    pub fn fetch_all<'o>(
        &mut self,
        observations: impl IntoIterator<Item = &'o Observation<'o>>,
    ) -> Result<usize> {
        let mut lookups = self.cache.lookups(self.store.as_ref(), &self.metrics);
        let mut with_subject = 0;
        let mut fetched = Ok(());
        for observation in observations {
            match lookups.fetch(observation) {
                Ok(keys) => with_subject += usize::from(keys.has_subject()),
                Err(error) => {
                    fetched = Err(error);
                    break;
                }
            }
        }
        lookups.finish();
        fetched.map(|()| with_subject)
    }
}
