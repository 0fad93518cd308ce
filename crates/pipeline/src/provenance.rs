//! Checks a key store against the output published with it.
//!
//! Every published Parquet file names the key store it was written with and
//! that store's position (`delink.keystore_id`, `delink.keystore_position`).
//! A data directory with output must not run on a store that is missing,
//! another one, or shorter than the output needs: a store cut, deleted or
//! restored from an older backup would silently give identifiers new keys,
//! and every later pseudonym would differ from the published ones.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use delink_datadir::DataLayout;
use delink_keystore::KeyStore;
use delink_model::Dataset;
use parquet::file::reader::{FileReader, SerializedFileReader};

/// What the published output says about the key stores it was written with.
#[derive(Debug, Default)]
pub(crate) struct PublishedOutput {
    /// Published Parquet files (history/, devices/, quarantine/).
    pub(crate) files: usize,
    /// The highest store position a file needs, per store id.
    pub(crate) needs: BTreeMap<String, u64>,
}

impl PublishedOutput {
    /// Reads the footers of every published file under the data directory.
    pub(crate) fn read(layout: &DataLayout) -> Result<Self> {
        let mut output = PublishedOutput::default();
        let roots = [
            layout.dataset(Dataset::History),
            layout.dataset(Dataset::Devices),
            layout.quarantine(),
        ];
        for root in roots {
            for file in published_files(&root)? {
                output.files += 1;
                if let Some((store_id, position)) = store_of(&file)? {
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

/// Lists visible `.parquet` files under `root`, recursively (date partitions).
fn published_files(root: &Path) -> Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let entries = match fs::read_dir(&dir) {
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => continue,
            other => other.with_context(|| format!("cannot list {}", dir.display()))?,
        };
        for entry in entries {
            let entry = entry?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with('.') || name.starts_with('_') {
                continue;
            }
            let path = entry.path();
            if entry.file_type()?.is_dir() {
                pending.push(path);
            } else if name.ends_with(".parquet") {
                found.push(path);
            }
        }
    }
    Ok(found)
}

/// Reads the key store a file was written with, when its footer names one.
fn store_of(path: &Path) -> Result<Option<(String, u64)>> {
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let reader = SerializedFileReader::new(file)
        .with_context(|| format!("{} is not readable Parquet", path.display()))?;
    let metadata = reader.metadata().file_metadata().key_value_metadata();
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
    let position = position
        .parse()
        .with_context(|| format!("{} names a malformed key-store position", path.display()))?;
    Ok(Some((store_id, position)))
}
