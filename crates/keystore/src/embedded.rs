//! The embedded key store: one log file under the data directory, shared by
//! every process on the machine through an advisory lock.
//!
//! Layout: a 16-byte header (`DLKS`, format version, a random file id that
//! changes whenever the file is rewritten), then fixed-size records
//! `kind (1) ‖ lookup tag (32) ‖ KEK version (4) ‖ epoch (4) ‖ wrapped key (72)`.
//! Kind 0 is the index key, 1–5 an entity key of that scope, [`ERASURE`] an
//! erasure notice naming a record number, [`SHREDDED`] a record whose key
//! was overwritten in place. Scope, epoch and tag are bound into the AEAD.
//!
//! Every change happens under an exclusive `flock` on `LOCK`, after catching
//! up with what other handles appended, which makes key creation race-free.
//! The in-memory index maps each lookup tag to its record, with the key still
//! wrapped: every `key_for`/`existing_key` unwraps it again, so the store holds
//! no unwrapped entity key (callers that need speed cache keys themselves, and
//! drop them when [`KeyStore::generation`] moves). Reading a record (on open,
//! on catch-up) still unwraps it once, so tampering is caught there.
//! An erasure appends a notice and overwrites the key's record in place;
//! other handles learn of it from the notice when they next catch up.
//! Rotation rewrites the file without erased records (new file id); handles
//! that notice the new file reload it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use delink_model::{BuildPrehashedHasher, Scope};

use crate::entity::Redacted;
use crate::tag::{LookupTag, lookup_tag, wrap_aad};
use crate::{
    Entity, EntityKey, JournalEvent, JournalKind, KekSource, KeyStore, KeyStoreError, Keyring,
    Result, UnwrapFailure, WRAPPED_LEN,
};

const MAGIC: &[u8; 4] = b"DLKS";
const FORMAT_VERSION: u32 = 2;
const HEADER_LEN: u64 = 16;
const RECORD_LEN: usize = 1 + 32 + 4 + 4 + WRAPPED_LEN;
const INDEX: u8 = 0;
/// Record kind of an erasure notice; its tag field starts with the erased record's number.
const ERASURE: u8 = 0xFE;
/// Record kind of a record whose key was overwritten in place.
const SHREDDED: u8 = 0xFF;
const LOG_FILE: &str = "entities.log";
const JOURNAL_FILE: &str = "journal.log";
const LOCK_FILE: &str = "LOCK";

/// One live key, wrapped as stored, and where it is stored.
///
/// The key stays wrapped in memory: [`Slot::unwrap`] opens it for each lookup.
#[derive(Clone, Copy)]
struct Slot {
    wrapped: [u8; WRAPPED_LEN],
    record: u64,
    scope_code: u8,
    epoch: u32,
    kek_version: u32,
}

impl Slot {
    /// Unwraps the key, bound to its scope, epoch and tag as when it was wrapped.
    fn unwrap(&self, keyring: &Keyring, tag: &LookupTag) -> Result<EntityKey> {
        keyring
            .unwrap_key(
                self.kek_version,
                &self.wrapped,
                &wrap_aad(self.scope_code, self.epoch, tag),
            )
            .map_err(|failure| unwrap_error(failure, self.record, self.kek_version))
    }
}

/// The open log file and how much of it this handle has applied.
struct Log {
    file: File,
    /// Device and inode of `file`: a different pair at the log's path means it was rewritten.
    identity: (u64, u64),
    /// Bytes applied so far, always `HEADER_LEN + n * RECORD_LEN`.
    applied: u64,
}

impl Log {
    fn new(file: File, applied: u64, path: &Path) -> Result<Self> {
        let metadata = file.metadata().map_err(io("reading the key store", path))?;
        Ok(Log {
            file,
            identity: (metadata.dev(), metadata.ino()),
            applied,
        })
    }
}

/// Keeps entity keys in one file under the data directory; any number of
/// handles and processes may share it.
///
/// Holds no unwrapped entity key: lookups unwrap the record's key each time.
/// Lock order: `log`, then `keyring`, then `keys`.
pub struct EmbeddedKeyStore {
    dir: PathBuf,
    keyring: RwLock<Keyring>,
    index_key: EntityKey,
    keys: RwLock<HashMap<LookupTag, Slot, BuildPrehashedHasher>>,
    /// Serialises this handle's reads and writes of the log; taken before the file lock.
    log: Mutex<Log>,
    lock_file: File,
    generation: AtomicU64,
    unsynced: AtomicBool,
}

impl std::fmt::Debug for EmbeddedKeyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedKeyStore")
            .field("dir", &self.dir)
            .field("keyring", &*self.read_keyring())
            .field("keys", &self.read_keys().len())
            .field("generation", &self.generation())
            .finish_non_exhaustive()
    }
}

/// Holds the advisory file lock until dropped.
struct FileLock<'f>(&'f File);

impl Drop for FileLock<'_> {
    fn drop(&mut self) {
        // Closing the handle releases the lock too; an unlock error leaves nothing to undo.
        let _ = self.0.unlock();
    }
}

impl EmbeddedKeyStore {
    /// Opens (or creates) the store in `dir`.
    ///
    /// A keyring file is generated only for a store that holds no key yet; a
    /// store with keys and no KEK, or a KEK that does not unwrap them, is
    /// refused (fail closed).
    pub fn open(dir: &Path, kek_source: &KekSource) -> Result<Self> {
        Self::open_or_create(dir, kek_source, true)
    }

    /// Opens the store in `dir` only if it exists, creating nothing (no directory, no
    /// KEK): so a mistyped directory never becomes a new, empty store.
    pub fn open_existing(dir: &Path, kek_source: &KekSource) -> Result<Self> {
        Self::open_or_create(dir, kek_source, false)
    }

    fn open_or_create(dir: &Path, kek_source: &KekSource, create: bool) -> Result<Self> {
        if !create && !dir.join(LOG_FILE).is_file() {
            return Err(KeyStoreError::StoreMissing {
                location: dir.display().to_string(),
            });
        }
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io("creating the key store directory", dir))?;
        let lock_path = dir.join(LOCK_FILE);
        let lock_file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&lock_path)
            .map_err(io("opening the lock file", &lock_path))?;
        let exclusive = lock_exclusive(&lock_file, &lock_path)?;
        let log_path = dir.join(LOG_FILE);
        let created = create_if_absent(&log_path)?;
        let file = open_log(&log_path)?;
        let records = read_records(&file, &log_path, HEADER_LEN, true)?;
        let keyring =
            Keyring::load(kek_source, create && records.is_empty())?.ok_or_else(|| {
                KeyStoreError::KekMissing {
                    path: dir.to_path_buf(),
                }
            })?;
        let loaded = load(&keyring, &records)?;
        for record in &loaded.unshredded {
            shred(&file, *record, &log_path)?;
        }
        let mut applied = HEADER_LEN + (records.len() * RECORD_LEN) as u64;
        let index_key = match loaded.index_key {
            Some(key) => key,
            None => {
                let key = EntityKey::random()?;
                let bytes = encode(&keyring, INDEX, &[0; 32], 0, &key)?;
                write_record(&file, applied, &bytes, &log_path)?;
                file.sync_data()
                    .map_err(io("writing the key store", &log_path))?;
                applied += RECORD_LEN as u64;
                key
            }
        };
        drop(exclusive);
        let store = EmbeddedKeyStore {
            dir: dir.to_path_buf(),
            keyring: RwLock::new(keyring),
            index_key,
            keys: RwLock::new(loaded.keys),
            log: Mutex::new(Log::new(file, applied, &log_path)?),
            lock_file,
            generation: AtomicU64::new(0),
            unsynced: AtomicBool::new(false),
        };
        if created {
            let kek_version = store.read_keyring().current_version();
            store.write_journal(&JournalEvent::now(JournalKind::KekInUse { kek_version }))?;
        }
        Ok(store)
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join(LOG_FILE)
    }

    fn read_keyring(&self) -> RwLockReadGuard<'_, Keyring> {
        self.keyring.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write_keyring(&self) -> RwLockWriteGuard<'_, Keyring> {
        self.keyring.write().unwrap_or_else(PoisonError::into_inner)
    }

    fn read_keys(&self) -> RwLockReadGuard<'_, HashMap<LookupTag, Slot, BuildPrehashedHasher>> {
        self.keys.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write_keys(&self) -> RwLockWriteGuard<'_, HashMap<LookupTag, Slot, BuildPrehashedHasher>> {
        self.keys.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// Unwraps the live key of `tag`, if the index has one.
    ///
    /// Holds the keyring and the index together, so a rotation in this handle
    /// cannot swap the slot's wrapping between reading it and unwrapping it.
    fn live_key(&self, tag: &LookupTag) -> Result<Option<EntityKey>> {
        let keyring = self.read_keyring();
        let keys = self.read_keys();
        keys.get(tag)
            .map(|slot| slot.unwrap(&keyring, tag))
            .transpose()
    }

    /// Runs `change` holding this handle's log and the exclusive file lock, caught up.
    fn exclusively<T>(&self, change: impl FnOnce(&mut Log) -> Result<T>) -> Result<T> {
        let mut log = lock(&self.log);
        let _lock = lock_exclusive(&self.lock_file, &self.dir.join(LOCK_FILE))?;
        self.catch_up(&mut log)?;
        change(&mut log)
    }

    /// Runs `read` holding this handle's log and a shared file lock, caught up.
    fn shared<T>(&self, read: impl FnOnce(&mut Log) -> Result<T>) -> Result<T> {
        let mut log = lock(&self.log);
        let _lock = lock_shared(&self.lock_file, &self.dir.join(LOCK_FILE))?;
        self.catch_up(&mut log)?;
        read(&mut log)
    }

    /// Applies what other handles wrote since this one last looked.
    fn catch_up(&self, log: &mut Log) -> Result<()> {
        let path = self.log_path();
        let on_disk = fs::metadata(&path).map_err(io("reading the key store", &path))?;
        if (on_disk.dev(), on_disk.ino()) != log.identity {
            return self.reload(log);
        }
        if on_disk.len() < log.applied + RECORD_LEN as u64 {
            return Ok(());
        }
        let records = read_records(&log.file, &path, log.applied, false)?;
        let first = (log.applied - HEADER_LEN) / RECORD_LEN as u64;
        let mut erased = HashSet::new();
        {
            let keyring = self.read_keyring();
            let mut keys = self.write_keys();
            for (offset, record) in records.iter().enumerate() {
                let number = first + offset as u64;
                match record[0] {
                    ERASURE => {
                        erased.insert(erased_record(record));
                    }
                    INDEX | SHREDDED => {}
                    _ => {
                        let slot = verified_slot(&keyring, number, record)?;
                        keys.entry(tag_of(record)).or_insert(slot);
                    }
                }
            }
            if !erased.is_empty() {
                keys.retain(|_, slot| !erased.contains(&slot.record));
            }
        }
        if !erased.is_empty() {
            self.generation.fetch_add(1, Ordering::AcqRel);
        }
        log.applied += (records.len() * RECORD_LEN) as u64;
        Ok(())
    }

    /// Re-reads a log another handle rewrote (rotation).
    fn reload(&self, log: &mut Log) -> Result<()> {
        let path = self.log_path();
        let file = open_log(&path)?;
        let records = read_records(&file, &path, HEADER_LEN, false)?;
        let loaded = {
            let mut keyring = self.write_keyring();
            match load(&keyring, &records) {
                Err(KeyStoreError::KekVersionMissing { .. }) => {
                    keyring.reload()?;
                    load(&keyring, &records)?
                }
                other => other?,
            }
        };
        *self.write_keys() = loaded.keys;
        *log = Log::new(
            file,
            HEADER_LEN + (records.len() * RECORD_LEN) as u64,
            &path,
        )?;
        self.generation.fetch_add(1, Ordering::AcqRel);
        Ok(())
    }

    /// Appends an erasure notice and shreds the records in place, durably.
    fn shred_records(&self, log: &mut Log, records: &[u64]) -> Result<()> {
        let path = self.log_path();
        for record in records {
            let mut notice = [0u8; RECORD_LEN];
            notice[0] = ERASURE;
            notice[1..9].copy_from_slice(&record.to_le_bytes());
            write_record(&log.file, log.applied, &notice, &path)?;
            log.applied += RECORD_LEN as u64;
            shred(&log.file, *record, &path)?;
        }
        log.file
            .sync_data()
            .map_err(io("erasing from the key store", &path))?;
        let erased: HashSet<u64> = records.iter().copied().collect();
        self.write_keys()
            .retain(|_, slot| !erased.contains(&slot.record));
        self.generation.fetch_add(1, Ordering::AcqRel);
        Ok(())
    }

    fn write_journal(&self, event: &JournalEvent) -> Result<()> {
        let path = self.dir.join(JOURNAL_FILE);
        let mut line = event.to_json();
        line.push('\n');
        OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&path)
            .and_then(|mut file| {
                file.write_all(line.as_bytes())?;
                file.sync_data()
            })
            .map_err(io("appending to the key journal", &path))
    }
}

impl KeyStore for EmbeddedKeyStore {
    fn key_for(&self, entity: &Entity<'_>) -> Result<EntityKey> {
        let tag = lookup_tag(&self.index_key, entity);
        if let Some(key) = self.live_key(&tag)? {
            return Ok(key);
        }
        self.exclusively(|log| {
            if let Some(key) = self.live_key(&tag)? {
                return Ok(key);
            }
            let key = EntityKey::random()?;
            let scope_code = entity.scope.code();
            let (bytes, kek_version) = {
                let keyring = self.read_keyring();
                (
                    encode(&keyring, scope_code, &tag, entity.epoch, &key)?,
                    keyring.current_version(),
                )
            };
            write_record(&log.file, log.applied, &bytes, &self.log_path())?;
            let record = (log.applied - HEADER_LEN) / RECORD_LEN as u64;
            log.applied += RECORD_LEN as u64;
            self.unsynced.store(true, Ordering::Release);
            tracing::trace!(entity = ?Redacted(entity), "created an entity key");
            self.write_keys().insert(
                tag,
                Slot {
                    wrapped: wrapped_of(&bytes),
                    record,
                    scope_code,
                    epoch: entity.epoch,
                    kek_version,
                },
            );
            Ok(key)
        })
    }

    fn existing_key(&self, entity: &Entity<'_>) -> Result<Option<EntityKey>> {
        let tag = lookup_tag(&self.index_key, entity);
        if let Some(key) = self.live_key(&tag)? {
            return Ok(Some(key));
        }
        self.shared(|_| self.live_key(&tag))
    }

    fn sync(&self) -> Result<()> {
        let log = lock(&self.log);
        if self.unsynced.swap(false, Ordering::AcqRel) {
            log.file
                .sync_data()
                .map_err(io("syncing the key store", &self.log_path()))?;
        }
        Ok(())
    }

    fn erase(&self, entity: &Entity<'_>) -> Result<bool> {
        let tag = lookup_tag(&self.index_key, entity);
        self.exclusively(|log| {
            let Some(record) = self.read_keys().get(&tag).map(|slot| slot.record) else {
                return Ok(false);
            };
            self.shred_records(log, &[record])?;
            Ok(true)
        })
    }

    fn refresh(&self) -> Result<u64> {
        self.shared(|_| Ok(self.generation()))
    }

    fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    fn rewrap(&self) -> Result<u64> {
        self.exclusively(|log| {
            let mut keyring = self.write_keyring();
            let mut keys = self.write_keys();
            // Unwrapped under the keyring that verified them, before the reload
            // can drop a version; held only until they are wrapped again.
            let live = keys
                .iter()
                .map(|(tag, slot)| Ok((*tag, slot.unwrap(&keyring, tag)?)))
                .collect::<Result<Vec<(LookupTag, EntityKey)>>>()?;
            keyring.reload()?;
            let current = keyring.current_version();
            let path = self.log_path();
            let staged = path.with_extension("new");
            let _ = fs::remove_file(&staged);
            create_if_absent(&staged)?;
            let file = open_log(&staged)?;
            let mut offset = HEADER_LEN;
            let index = encode(&keyring, INDEX, &[0; 32], 0, &self.index_key)?;
            write_record(&file, offset, &index, &staged)?;
            offset += RECORD_LEN as u64;
            let mut rewrapped = 0;
            for (tag, key) in &live {
                let Some(slot) = keys.get_mut(tag) else {
                    continue;
                };
                let bytes = encode(&keyring, slot.scope_code, tag, slot.epoch, key)?;
                write_record(&file, offset, &bytes, &staged)?;
                slot.record = (offset - HEADER_LEN) / RECORD_LEN as u64;
                slot.wrapped = wrapped_of(&bytes);
                if slot.kek_version != current {
                    rewrapped += 1;
                    slot.kek_version = current;
                }
                offset += RECORD_LEN as u64;
            }
            file.sync_all()
                .map_err(io("writing the key store", &staged))?;
            fs::rename(&staged, &path).map_err(io("replacing the key store", &path))?;
            sync_dir(&self.dir)?;
            *log = Log::new(file, offset, &path)?;
            Ok(rewrapped)
        })
    }

    fn keys_per_kek_version(&self) -> Result<BTreeMap<u32, u64>> {
        self.shared(|_| {
            let mut counts = BTreeMap::new();
            for slot in self.read_keys().values() {
                *counts.entry(slot.kek_version).or_insert(0) += 1;
            }
            Ok(counts)
        })
    }

    fn erase_epochs_before(&self, scope: Scope, before_epoch: u32) -> Result<u64> {
        let scope_code = scope.code();
        self.exclusively(|log| {
            let records: Vec<u64> = self
                .read_keys()
                .values()
                .filter(|slot| {
                    slot.scope_code == scope_code && (1..before_epoch).contains(&slot.epoch)
                })
                .map(|slot| slot.record)
                .collect();
            if !records.is_empty() {
                self.shred_records(log, &records)?;
            }
            Ok(records.len() as u64)
        })
    }

    fn append_journal(&self, event: &JournalEvent) -> Result<()> {
        self.exclusively(|_| self.write_journal(event))
    }

    fn journal(&self) -> Result<Vec<JournalEvent>> {
        let path = self.dir.join(JOURNAL_FILE);
        self.shared(|_| {
            let text = match fs::read_to_string(&path) {
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => String::new(),
                other => other.map_err(io("reading the key journal", &path))?,
            };
            text.lines()
                .filter(|line| !line.trim().is_empty())
                .map(|line| {
                    JournalEvent::from_json(line).ok_or_else(|| KeyStoreError::Corrupt {
                        path: path.clone(),
                        reason: "a journal line is not a journal event",
                    })
                })
                .collect()
        })
    }

    fn len(&self) -> Result<u64> {
        self.shared(|_| Ok(self.read_keys().len() as u64))
    }

    fn kek_version(&self) -> u32 {
        self.read_keyring().current_version()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> KeyStoreError {
    let path = path.to_path_buf();
    move |source| KeyStoreError::Io {
        action,
        path,
        source,
    }
}

fn lock_exclusive<'f>(file: &'f File, path: &Path) -> Result<FileLock<'f>> {
    file.lock().map_err(io("locking the key store", path))?;
    Ok(FileLock(file))
}

fn lock_shared<'f>(file: &'f File, path: &Path) -> Result<FileLock<'f>> {
    file.lock_shared()
        .map_err(io("locking the key store", path))?;
    Ok(FileLock(file))
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|dir| dir.sync_all())
        .map_err(io("syncing the key store directory", dir))
}

/// Creates a log holding only its header; returns whether it was created.
fn create_if_absent(path: &Path) -> Result<bool> {
    if path.exists() {
        return Ok(false);
    }
    let mut file_id = [0u8; 8];
    getrandom::fill(&mut file_id).map_err(|_| KeyStoreError::Random)?;
    let mut header = MAGIC.to_vec();
    header.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    header.extend_from_slice(&file_id);
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io("creating the key store", path))?;
    file.write_all(&header)
        .and_then(|()| file.sync_all())
        .map_err(io("creating the key store", path))?;
    if let Some(parent) = path.parent() {
        sync_dir(parent)?;
    }
    Ok(true)
}

fn open_log(path: &Path) -> Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(io("opening the key store", path))?;
    let mut header = [0u8; HEADER_LEN as usize];
    file.read_exact_at(&mut header, 0)
        .map_err(|_| KeyStoreError::Corrupt {
            path: path.to_path_buf(),
            reason: "bad header",
        })?;
    if &header[..4] != MAGIC {
        return Err(KeyStoreError::Corrupt {
            path: path.to_path_buf(),
            reason: "bad header",
        });
    }
    if header[4..8] != FORMAT_VERSION.to_le_bytes() {
        return Err(KeyStoreError::Corrupt {
            path: path.to_path_buf(),
            reason: "unsupported format version (made by another delink release)",
        });
    }
    Ok(file)
}

/// Reads every complete record from `from`; with `repair`, cuts a torn tail
/// left by an interrupted write (never synced, so never used by a published file).
fn read_records(
    file: &File,
    path: &Path,
    from: u64,
    repair: bool,
) -> Result<Vec<[u8; RECORD_LEN]>> {
    let length = file
        .metadata()
        .map_err(io("reading the key store", path))?
        .len();
    let available = length.saturating_sub(from);
    let complete = available - available % RECORD_LEN as u64;
    let mut bytes = vec![0u8; complete as usize];
    file.read_exact_at(&mut bytes, from)
        .map_err(io("reading the key store", path))?;
    if repair && complete != available {
        tracing::warn!(
            torn_bytes = available - complete,
            "key store ends in a torn record from an interrupted write; cutting it off"
        );
        file.set_len(from + complete)
            .and_then(|()| file.sync_all())
            .map_err(io("repairing the key store", path))?;
    }
    Ok(bytes
        .chunks_exact(RECORD_LEN)
        .map(|chunk| {
            let mut record = [0u8; RECORD_LEN];
            record.copy_from_slice(chunk);
            record
        })
        .collect())
}

/// What a full read of the log found.
struct Loaded {
    index_key: Option<EntityKey>,
    keys: HashMap<LookupTag, Slot, BuildPrehashedHasher>,
    /// Erased records whose bytes are still there (a crash between notice and shredding).
    unshredded: Vec<u64>,
}

fn load(keyring: &Keyring, records: &[[u8; RECORD_LEN]]) -> Result<Loaded> {
    let erased: HashSet<u64> = records
        .iter()
        .filter(|record| record[0] == ERASURE)
        .map(erased_record)
        .collect();
    let mut loaded = Loaded {
        index_key: None,
        keys: HashMap::with_hasher(BuildPrehashedHasher::default()),
        unshredded: Vec::new(),
    };
    for (number, record) in records.iter().enumerate() {
        let number = number as u64;
        match record[0] {
            ERASURE | SHREDDED => {}
            _ if erased.contains(&number) => loaded.unshredded.push(number),
            INDEX => {
                let (_, key) = unwrap_record(keyring, number, record)?;
                loaded.index_key.get_or_insert(key);
            }
            _ => {
                let slot = verified_slot(keyring, number, record)?;
                loaded.keys.entry(tag_of(record)).or_insert(slot);
            }
        }
    }
    Ok(loaded)
}

fn tag_of(record: &[u8; RECORD_LEN]) -> LookupTag {
    let mut tag = [0u8; 32];
    tag.copy_from_slice(&record[1..33]);
    tag
}

fn erased_record(record: &[u8; RECORD_LEN]) -> u64 {
    let mut number = [0u8; 8];
    number.copy_from_slice(&record[1..9]);
    u64::from_le_bytes(number)
}

fn encode(
    keyring: &Keyring,
    kind: u8,
    tag: &LookupTag,
    epoch: u32,
    key: &EntityKey,
) -> Result<[u8; RECORD_LEN]> {
    let (version, wrapped) = keyring.wrap(key, &wrap_aad(kind, epoch, tag))?;
    let mut record = [0u8; RECORD_LEN];
    record[0] = kind;
    record[1..33].copy_from_slice(tag);
    record[33..37].copy_from_slice(&version.to_le_bytes());
    record[37..41].copy_from_slice(&epoch.to_le_bytes());
    record[41..].copy_from_slice(&wrapped);
    Ok(record)
}

fn wrapped_of(record: &[u8; RECORD_LEN]) -> [u8; WRAPPED_LEN] {
    let mut wrapped = [0u8; WRAPPED_LEN];
    wrapped.copy_from_slice(&record[41..]);
    wrapped
}

fn unwrap_error(failure: UnwrapFailure, record: u64, version: u32) -> KeyStoreError {
    match failure {
        UnwrapFailure::VersionMissing => KeyStoreError::KekVersionMissing { record, version },
        UnwrapFailure::Authentication => KeyStoreError::Unwrap { record },
    }
}

/// Reads an entity record into a slot, checking that its key unwraps (so
/// tampering is caught when the record is read) and dropping the unwrapped key.
fn verified_slot(keyring: &Keyring, number: u64, record: &[u8; RECORD_LEN]) -> Result<Slot> {
    unwrap_record(keyring, number, record).map(|(slot, _)| slot)
}

/// Reads a record into a slot and unwraps its key.
fn unwrap_record(
    keyring: &Keyring,
    number: u64,
    record: &[u8; RECORD_LEN],
) -> Result<(Slot, EntityKey)> {
    let kind = record[0];
    let tag = tag_of(record);
    let mut field = [0u8; 4];
    field.copy_from_slice(&record[33..37]);
    let kek_version = u32::from_le_bytes(field);
    field.copy_from_slice(&record[37..41]);
    let epoch = u32::from_le_bytes(field);
    if kind != INDEX && Scope::from_code(kind).is_none() {
        return Err(KeyStoreError::Unwrap { record: number });
    }
    let slot = Slot {
        wrapped: wrapped_of(record),
        record: number,
        scope_code: kind,
        epoch,
        kek_version,
    };
    let key = slot.unwrap(keyring, &tag)?;
    Ok((slot, key))
}

fn write_record(file: &File, offset: u64, bytes: &[u8], path: &Path) -> Result<()> {
    file.write_all_at(bytes, offset)
        .map_err(io("writing the key store", path))
}

/// Overwrites a record in place: its tag and wrapped key are gone from the file.
fn shred(file: &File, record: u64, path: &Path) -> Result<()> {
    let mut shredded = [0u8; RECORD_LEN];
    shredded[0] = SHREDDED;
    write_record(
        file,
        HEADER_LEN + record * RECORD_LEN as u64,
        &shredded,
        path,
    )
}

#[cfg(test)]
mod tests;
