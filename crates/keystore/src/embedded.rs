//! The embedded key store: one append-only file under the data directory.
//!
//! Layout: an 8-byte header (`DLKS` + format version), then fixed-size
//! records `scope (1) ‖ lookup tag (32) ‖ KEK version (4, LE) ‖ wrapped key
//! (72)`. The scope and tag are bound into the AEAD, so a record moved or
//! altered fails to unwrap. Record scope 0 holds the index key. New keys are
//! appended and fsynced by [`KeyStore::sync`]; a torn last record (a crash
//! mid-append, never synced, so never used by a published file) is cut off
//! on open.

use std::collections::HashMap;
use std::fs::{self, DirBuilder, File, OpenOptions, TryLockError};
use std::io::{Read, Write};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError, RwLock};

use delink_model::{BuildPrehashedHasher, Scope};

use crate::kek::WRAPPED_LEN;
use crate::tag::{LookupTag, lookup_tag};
use crate::{EntityKey, Kek, KekSource, KeyStore, KeyStoreError, Result};

const MAGIC: &[u8; 4] = b"DLKS";
const FORMAT_VERSION: u32 = 1;
const HEADER_LEN: usize = 8;
const RECORD_LEN: usize = 1 + 32 + 4 + WRAPPED_LEN;
const INDEX_SCOPE_CODE: u8 = 0;
const LOG_FILE: &str = "entities.log";
const LOCK_FILE: &str = "LOCK";

/// Keeps entity keys in one file under the data directory, for a single process.
pub struct EmbeddedKeyStore {
    log_path: PathBuf,
    kek: Kek,
    index_key: EntityKey,
    keys: RwLock<HashMap<LookupTag, EntityKey, BuildPrehashedHasher>>,
    /// Records of keys handed out but not yet durable.
    pending: Mutex<Vec<u8>>,
    log: Mutex<File>,
    /// Holds the exclusive lock on the store for the life of the value.
    _lock: File,
}

impl std::fmt::Debug for EmbeddedKeyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedKeyStore")
            .field("log_path", &self.log_path)
            .field("kek_version", &self.kek.version())
            .field("keys", &self.len())
            .finish_non_exhaustive()
    }
}

impl EmbeddedKeyStore {
    /// Opens (or creates) the store in `dir`, taking an exclusive lock on it.
    ///
    /// A KEK is generated only for a store that holds no key yet; a store with
    /// keys and no KEK is refused (fail closed).
    pub fn open(dir: &Path, kek_source: &KekSource) -> Result<Self> {
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io("creating the key store directory", dir))?;
        let lock = take_lock(dir)?;
        let log_path = dir.join(LOG_FILE);
        let body = read_body(&log_path)?;
        let kek =
            Kek::load(kek_source, body.is_empty())?.ok_or_else(|| KeyStoreError::KekMissing {
                path: dir.to_path_buf(),
            })?;
        let log = OpenOptions::new()
            .append(true)
            .open(&log_path)
            .map_err(io("opening the key store", &log_path))?;
        let mut index_key = None;
        let mut keys = HashMap::with_hasher(BuildPrehashedHasher::default());
        for (number, record) in body.chunks_exact(RECORD_LEN).enumerate() {
            let record_number = number as u64;
            let (scope_code, tag, key) = unwrap_record(&kek, record_number, record)?;
            if scope_code == INDEX_SCOPE_CODE {
                index_key.get_or_insert(key);
            } else {
                keys.entry(tag).or_insert(key);
            }
        }
        let store_needs_index = index_key.is_none();
        let index_key = match index_key {
            Some(key) => key,
            None => EntityKey::random()?,
        };
        let store = EmbeddedKeyStore {
            log_path,
            kek,
            index_key,
            keys: RwLock::new(keys),
            pending: Mutex::new(Vec::new()),
            log: Mutex::new(log),
            _lock: lock,
        };
        if store_needs_index {
            let record = store.record(INDEX_SCOPE_CODE, &[0; 32], &store.index_key)?;
            store.pending_records().extend_from_slice(&record);
            store.sync()?;
        }
        Ok(store)
    }

    fn record(&self, scope_code: u8, tag: &LookupTag, key: &EntityKey) -> Result<Vec<u8>> {
        let wrapped = self.kek.wrap(key, &aad(scope_code, tag))?;
        let mut record = Vec::with_capacity(RECORD_LEN);
        record.push(scope_code);
        record.extend_from_slice(tag);
        record.extend_from_slice(&self.kek.version().to_le_bytes());
        record.extend_from_slice(&wrapped);
        Ok(record)
    }

    fn pending_records(&self) -> std::sync::MutexGuard<'_, Vec<u8>> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl KeyStore for EmbeddedKeyStore {
    fn key_for(&self, scope: Scope, normalised_id: &str) -> Result<EntityKey> {
        let tag = lookup_tag(&self.index_key, scope, normalised_id);
        if let Some(key) = self
            .keys
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&tag)
        {
            return Ok(key.clone());
        }
        let mut keys = self.keys.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(key) = keys.get(&tag) {
            return Ok(key.clone());
        }
        let key = EntityKey::random()?;
        let record = self.record(scope.code(), &tag, &key)?;
        self.pending_records().extend_from_slice(&record);
        keys.insert(tag, key.clone());
        Ok(key)
    }

    fn existing_key(&self, scope: Scope, normalised_id: &str) -> Result<Option<EntityKey>> {
        let tag = lookup_tag(&self.index_key, scope, normalised_id);
        let keys = self.keys.read().unwrap_or_else(PoisonError::into_inner);
        Ok(keys.get(&tag).cloned())
    }

    fn sync(&self) -> Result<()> {
        let mut log = self.log.lock().unwrap_or_else(PoisonError::into_inner);
        let records = std::mem::take(&mut *self.pending_records());
        if records.is_empty() {
            return Ok(());
        }
        log.write_all(&records)
            .and_then(|()| log.sync_data())
            .map_err(io("appending to the key store", &self.log_path))
    }

    fn len(&self) -> usize {
        self.keys
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> KeyStoreError {
    let path = path.to_path_buf();
    move |source| KeyStoreError::Io {
        action,
        path,
        source,
    }
}

fn take_lock(dir: &Path) -> Result<File> {
    let path = dir.join(LOCK_FILE);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io("opening the lock file", &path))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(TryLockError::WouldBlock) => Err(KeyStoreError::Locked { path }),
        Err(TryLockError::Error(source)) => Err(io("locking the key store", &path)(source)),
    }
}

/// Reads the records of the log, creating it when absent and cutting a torn tail.
fn read_body(path: &Path) -> Result<Vec<u8>> {
    if !path.exists() {
        let mut file = File::create_new(path).map_err(io("creating the key store", path))?;
        let mut header = MAGIC.to_vec();
        header.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        file.write_all(&header)
            .and_then(|()| file.sync_all())
            .map_err(io("creating the key store", path))?;
        if let Some(parent) = path.parent() {
            File::open(parent)
                .and_then(|dir| dir.sync_all())
                .map_err(io("syncing the key store directory", parent))?;
        }
        return Ok(Vec::new());
    }
    let mut bytes = Vec::new();
    File::open(path)
        .and_then(|mut file| file.read_to_end(&mut bytes))
        .map_err(io("reading the key store", path))?;
    if bytes.len() < HEADER_LEN || &bytes[..4] != MAGIC {
        return Err(KeyStoreError::Corrupt {
            path: path.to_path_buf(),
            reason: "bad header",
        });
    }
    if bytes[4..HEADER_LEN] != FORMAT_VERSION.to_le_bytes() {
        return Err(KeyStoreError::Corrupt {
            path: path.to_path_buf(),
            reason: "unsupported format version",
        });
    }
    let mut body = bytes.split_off(HEADER_LEN);
    let torn = body.len() % RECORD_LEN;
    if torn != 0 {
        let complete = body.len() - torn;
        tracing::warn!(
            torn_bytes = torn,
            "key store ends in a torn record from an interrupted write; cutting it off"
        );
        body.truncate(complete);
        fs::OpenOptions::new()
            .write(true)
            .open(path)
            .and_then(|file| {
                file.set_len((HEADER_LEN + complete) as u64)
                    .and_then(|()| file.sync_all())
            })
            .map_err(io("repairing the key store", path))?;
    }
    Ok(body)
}

fn aad(scope_code: u8, tag: &LookupTag) -> [u8; 33] {
    let mut aad = [0u8; 33];
    aad[0] = scope_code;
    aad[1..].copy_from_slice(tag);
    aad
}

fn unwrap_record(kek: &Kek, number: u64, record: &[u8]) -> Result<(u8, LookupTag, EntityKey)> {
    let scope_code = record[0];
    let mut tag = [0u8; 32];
    tag.copy_from_slice(&record[1..33]);
    let mut version = [0u8; 4];
    version.copy_from_slice(&record[33..37]);
    let version = u32::from_le_bytes(version);
    if version != kek.version() {
        return Err(KeyStoreError::KekVersionMissing {
            record: number,
            version,
        });
    }
    let mut wrapped = [0u8; WRAPPED_LEN];
    wrapped.copy_from_slice(&record[37..]);
    let key = kek
        .unwrap_key(&wrapped, &aad(scope_code, &tag))
        .ok_or(KeyStoreError::Unwrap { record: number })?;
    Ok((scope_code, tag, key))
}

#[cfg(test)]
mod tests;
