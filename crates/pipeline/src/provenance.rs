//! Checks a key store against the output published with it.
//!
//! Every published Parquet file names the key store it was written with and
//! that store's position (`delink.keystore_id`, `delink.keystore_position`).
//! A data directory with output must not run on a store that is missing,
//! another one, or shorter than the output needs: a store cut, deleted or
//! restored from an older backup would silently give identifiers new keys,
//! and every later pseudonym would differ from the published ones.

use std::collections::BTreeMap;

use anyhow::{Context, Result, bail};
use delink_datadir::{OutputStore, QUARANTINE, read_footer_metadata};
use delink_keystore::KeyStore;
use delink_model::Dataset;
use parquet::file::metadata::KeyValue;

/// What the published output says about the key stores it was written with.
#[derive(Debug, Default)]
pub(crate) struct PublishedOutput {
    /// Published Parquet files (history/, devices/, quarantine/).
    pub(crate) files: usize,
    /// The highest store position a file needs, per store id.
    pub(crate) needs: BTreeMap<String, u64>,
}

impl PublishedOutput {
    /// Reads the footers of every published file in the output store.
    pub(crate) fn read(outputs: &OutputStore) -> Result<Self> {
        let mut output = PublishedOutput::default();
        let roots = [
            Dataset::History.as_str(),
            Dataset::Devices.as_str(),
            QUARANTINE,
        ];
        for root in roots {
            for file in outputs.list(root)? {
                if !file.key.ends_with(".parquet") {
                    continue;
                }
                output.files += 1;
                let metadata = read_footer_metadata(outputs, &file)?;
                if let Some((store_id, position)) = store_of(metadata.as_deref())
                    .with_context(|| format!("in {}", outputs.describe(&file.key)))?
                {
                    let needed = output.needs.entry(store_id).or_insert(0);
                    *needed = (*needed).max(position);
                }
            }
        }
        Ok(output)
    }

    /// Tells whether anything was published.
    pub(crate) fn exists(&self) -> bool {
        self.files > 0
    }

    /// Refuses a store the output was not written with, or one shorter than it needs.
    pub(crate) fn check(&self, store: &dyn KeyStore) -> Result<()> {
        let current = store.position()?;
        for (store_id, needed) in &self.needs {
            if *store_id != current.store_id {
                bail!(
                    "the published output was written with another key store (id {}…) than this one (id {}…); \
                     restore the key store this data directory was written with",
                    &store_id[..8.min(store_id.len())],
                    &current.store_id[..8.min(current.store_id.len())],
                );
            }
            if *needed > current.position {
                bail!(
                    "the key store is shorter than the published output needs (position {} < {needed}): \
                     it was cut or restored from an older backup, and keys made since are missing; \
                     restore its newest backup",
                    current.position
                );
            }
        }
        Ok(())
    }
}

/// Reads the key store a file was written with, when its metadata names one.
fn store_of(metadata: Option<&[KeyValue]>) -> Result<Option<(String, u64)>> {
    let value = |key: &str| {
        metadata
            .and_then(|pairs| pairs.iter().find(|pair| pair.key == key))
            .and_then(|pair| pair.value.clone())
    };
    let (Some(store_id), Some(position)) = (
        value("delink.keystore_id"),
        value("delink.keystore_position"),
    ) else {
        return Ok(None);
    };
    let position = position.parse().context("a malformed key-store position")?;
    Ok(Some((store_id, position)))
}
