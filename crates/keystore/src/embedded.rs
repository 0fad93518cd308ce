//! The embedded key store: one log file under the data directory, shared by
//! every process on the machine through an advisory lock.
//!
//! Layout: a header — the file's identity (`DLKS`, format version, a random
//! store id kept for the store's life, a random file id that changes whenever
//! the file is rewritten, and the base position: records the store had
//! appended before this file) and two head slots — then fixed-size records
//! `kind (1) ‖ lookup tag (32) ‖ group tag (32) ‖ KEK version (4) ‖ epoch (4)
//! ‖ wrapped payload (136)`. Record 0 is the index key; kinds 1–5 are entity
//! keys of that scope; [`ERASURE`] is an erasure notice naming a record
//! number; [`SHREDDED`] is a record whose key was overwritten in place.
//!
//! Every byte is authenticated. A key record's fields, its number and the
//! file identity are the associated data of its AEAD; a notice or shredded
//! record ends in a MAC over the same, under a key derived from the index
//! key. A head slot holds a MAC'd record count, written after each sync, so
//! a log cut at a record boundary (or a deleted head) is told apart from a
//! torn tail: records beyond the head were never synced, so a partial record
//! there is an interrupted write and is cut off; fewer records than the head
//! counts is a cut and the store is refused.
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
//! Rotation rewrites the file without erased records, under a new index key
//! (every tag changes) and a new file id; handles that notice the new file
//! reload it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use delink_model::{BuildPrehashedHasher, Scope};

use crate::entity::Redacted;
use crate::tag::{LookupTag, group_tag, lookup_tag, tag_of_digest};
use crate::{
    Entity, EntityKey, JournalEvent, JournalKind, KekSource, KeyPayload, KeyStore, KeyStoreError,
    Keyring, Result, StorePosition, UnwrapFailure, WRAPPED_LEN,
};

const MAGIC: &[u8; 4] = b"DLKS";
const FORMAT_VERSION: u32 = 3;
/// magic ‖ format version ‖ store id ‖ file id ‖ base position.
const IDENTITY_LEN: usize = 4 + 4 + 16 + 8 + 8;
/// counter ‖ records ‖ MAC.
const HEAD_SLOT_LEN: usize = 8 + 8 + MAC_LEN;
const HEADER_LEN: u64 = (IDENTITY_LEN + 2 * HEAD_SLOT_LEN) as u64;
/// kind ‖ tag ‖ group ‖ KEK version ‖ epoch: what precedes the wrapped payload.
const FIELDS_LEN: usize = 1 + 32 + 32 + 4 + 4;
const RECORD_LEN: usize = FIELDS_LEN + WRAPPED_LEN;
const MAC_LEN: usize = 32;
const MAC_CONTEXT: &str = "delink 2026-11 key store MAC v1";
const INDEX: u8 = 0;
/// Record kind of an erasure notice; bytes 1..9 hold the erased record's number.
const ERASURE: u8 = 0xFE;
/// Record kind of a record whose key was overwritten in place.
const SHREDDED: u8 = 0xFF;
const LOG_FILE: &str = "entities.log";
const JOURNAL_FILE: &str = "journal.log";
const LOCK_FILE: &str = "LOCK";

/// The identity part of a log's header, bound into every record.
#[derive(Clone, Copy, PartialEq, Eq)]
struct FileIdentity([u8; IDENTITY_LEN]);

impl FileIdentity {
    /// A new file of the store `store_id`, starting at `base`, with a fresh file id.
    fn new(store_id: [u8; 16], base: u64) -> Result<Self> {
        let mut file_id = [0u8; 8];
        getrandom::fill(&mut file_id).map_err(|_| KeyStoreError::Random)?;
        let mut bytes = [0u8; IDENTITY_LEN];
        bytes[..4].copy_from_slice(MAGIC);
        bytes[4..8].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        bytes[8..24].copy_from_slice(&store_id);
        bytes[24..32].copy_from_slice(&file_id);
        bytes[32..40].copy_from_slice(&base.to_le_bytes());
        Ok(FileIdentity(bytes))
    }

    fn fresh_store() -> Result<Self> {
        let mut store_id = [0u8; 16];
        getrandom::fill(&mut store_id).map_err(|_| KeyStoreError::Random)?;
        Self::new(store_id, 0)
    }

    fn store_id(&self) -> [u8; 16] {
        let mut id = [0u8; 16];
        id.copy_from_slice(&self.0[8..24]);
        id
    }

    fn base(&self) -> u64 {
        u64_at(&self.0, 32)
    }
}

/// The record count a head slot vouches for, and the slot's write counter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Head {
    counter: u64,
    records: u64,
}

/// The keys that authenticate one log file: derived from its index key.
struct FileKeys {
    identity: FileIdentity,
    index_key: EntityKey,
    mac_key: EntityKey,
}

impl FileKeys {
    fn new(identity: FileIdentity, index_key: EntityKey) -> Self {
        let mac_key = EntityKey::from_bytes(blake3::derive_key(MAC_CONTEXT, index_key.expose()));
        FileKeys {
            identity,
            index_key,
            mac_key,
        }
    }

    /// Binds a record's number and bytes to this file.
    fn aad(&self, number: u64, fields: &[u8]) -> Vec<u8> {
        let mut aad = Vec::with_capacity(IDENTITY_LEN + 8 + fields.len());
        aad.extend_from_slice(&self.identity.0);
        aad.extend_from_slice(&number.to_le_bytes());
        aad.extend_from_slice(fields);
        aad
    }

    fn mac(&self, number: u64, body: &[u8]) -> [u8; MAC_LEN] {
        *blake3::keyed_hash(self.mac_key.expose(), &self.aad(number, body)).as_bytes()
    }

    /// Builds an erasure notice (or, with `SHREDDED`, a shredded record) at `number`.
    fn marker(&self, number: u64, kind: u8, erased: u64) -> [u8; RECORD_LEN] {
        let mut record = [0u8; RECORD_LEN];
        record[0] = kind;
        if kind == ERASURE {
            record[1..9].copy_from_slice(&erased.to_le_bytes());
        }
        let mac = self.mac(number, &record[..RECORD_LEN - MAC_LEN]);
        record[RECORD_LEN - MAC_LEN..].copy_from_slice(&mac);
        record
    }

    fn marker_is_authentic(&self, number: u64, record: &[u8; RECORD_LEN]) -> bool {
        let expected = self.mac(number, &record[..RECORD_LEN - MAC_LEN]);
        constant_time_eq(&expected, &record[RECORD_LEN - MAC_LEN..])
    }

    fn head_slot(&self, head: Head) -> [u8; HEAD_SLOT_LEN] {
        let mut slot = [0u8; HEAD_SLOT_LEN];
        slot[..8].copy_from_slice(&head.counter.to_le_bytes());
        slot[8..16].copy_from_slice(&head.records.to_le_bytes());
        let mac = self.mac(u64::MAX, &slot[..16]);
        slot[16..].copy_from_slice(&mac);
        slot
    }

    /// Reads the newest head; `Ok(None)` when no slot was ever written, an
    /// error when a slot is neither blank nor authentic.
    fn head(&self, header: &[u8]) -> std::result::Result<Option<Head>, &'static str> {
        let mut newest: Option<Head> = None;
        for index in 0..2 {
            let at = IDENTITY_LEN + index * HEAD_SLOT_LEN;
            let slot = &header[at..at + HEAD_SLOT_LEN];
            if slot.iter().all(|byte| *byte == 0) {
                continue;
            }
            let head = Head {
                counter: u64_at(slot, 0),
                records: u64_at(slot, 8),
            };
            if head.counter == 0 || !constant_time_eq(&self.head_slot(head)[16..], &slot[16..]) {
                return Err("the key log's head is altered; restore it from backup");
            }
            if newest.is_none_or(|seen| head.counter > seen.counter) {
                newest = Some(head);
            }
        }
        Ok(newest)
    }

    /// Encodes a key record at `number`, wrapped under the keyring's newest KEK.
    fn encode(
        &self,
        keyring: &Keyring,
        number: u64,
        kind: u8,
        tags: (&LookupTag, &LookupTag),
        epoch: u32,
        payload: &KeyPayload,
    ) -> Result<[u8; RECORD_LEN]> {
        let mut record = [0u8; RECORD_LEN];
        record[0] = kind;
        record[1..33].copy_from_slice(tags.0);
        record[33..65].copy_from_slice(tags.1);
        record[65..69].copy_from_slice(&keyring.current_version().to_le_bytes());
        record[69..73].copy_from_slice(&epoch.to_le_bytes());
        let (_, wrapped) = payload.wrap(keyring, &self.aad(number, &record[..FIELDS_LEN]))?;
        record[FIELDS_LEN..].copy_from_slice(&wrapped);
        Ok(record)
    }

    /// Unwraps a key record read at `number`.
    fn unwrap(
        &self,
        keyring: &Keyring,
        number: u64,
        record: &[u8; RECORD_LEN],
    ) -> Result<KeyPayload> {
        let version = u32_at(record, 65);
        KeyPayload::unwrap(
            keyring,
            version,
            &record[FIELDS_LEN..],
            &self.aad(number, &record[..FIELDS_LEN]),
        )
        .map_err(|failure| unwrap_error(failure, number, version))
    }

    /// Checks an entity record and indexes it; the unwrapped key is dropped.
    fn slot(&self, keyring: &Keyring, number: u64, record: &[u8; RECORD_LEN]) -> Result<Slot> {
        let payload = self.unwrap(keyring, number, record)?;
        let consistent = Scope::from_code(record[0]).is_some()
            && tag_of_digest(&self.index_key, &payload.digest)[..] == record[1..33]
            && tag_of_digest(&self.index_key, &payload.group)[..] == record[33..65];
        if !consistent {
            return Err(KeyStoreError::Unwrap { record: number });
        }
        Ok(Slot::of(number, record))
    }
}

/// One live key, wrapped as stored, and where it is stored.
///
/// The key stays wrapped in memory: [`Slot::unwrap`] opens it for each lookup.
#[derive(Clone, Copy)]
struct Slot {
    fields: [u8; FIELDS_LEN],
    wrapped: [u8; WRAPPED_LEN],
    record: u64,
}

impl Slot {
    fn of(number: u64, record: &[u8; RECORD_LEN]) -> Self {
        let mut fields = [0u8; FIELDS_LEN];
        fields.copy_from_slice(&record[..FIELDS_LEN]);
        let mut wrapped = [0u8; WRAPPED_LEN];
        wrapped.copy_from_slice(&record[FIELDS_LEN..]);
        Slot {
            fields,
            wrapped,
            record: number,
        }
    }

    fn scope_code(&self) -> u8 {
        self.fields[0]
    }

    fn group(&self) -> &[u8] {
        &self.fields[33..65]
    }

    fn kek_version(&self) -> u32 {
        u32_at(&self.fields, 65)
    }

    fn epoch(&self) -> u32 {
        u32_at(&self.fields, 69)
    }

    fn bytes(&self) -> [u8; RECORD_LEN] {
        let mut record = [0u8; RECORD_LEN];
        record[..FIELDS_LEN].copy_from_slice(&self.fields);
        record[FIELDS_LEN..].copy_from_slice(&self.wrapped);
        record
    }

    /// Unwraps the key, bound to the record as stored.
    fn unwrap(&self, keyring: &Keyring, keys: &FileKeys) -> Result<KeyPayload> {
        keys.unwrap(keyring, self.record, &self.bytes())
    }
}

/// What this handle knows of the log file it has open: its keys and live records.
struct Index {
    keys: FileKeys,
    slots: HashMap<LookupTag, Slot, BuildPrehashedHasher>,
}

/// The open log file and how much of it this handle has applied.
struct Log {
    file: File,
    /// Device and inode of `file`: a different pair at the log's path means it was rewritten.
    inode: (u64, u64),
    /// Bytes applied so far, always `HEADER_LEN + n * RECORD_LEN`.
    applied: u64,
    /// The newest head this handle has read or written.
    head: Head,
}

impl Log {
    fn new(file: File, applied: u64, head: Head, path: &Path) -> Result<Self> {
        let metadata = file.metadata().map_err(io("reading the key store", path))?;
        Ok(Log {
            file,
            inode: (metadata.dev(), metadata.ino()),
            applied,
            head,
        })
    }

    fn records(&self) -> u64 {
        (self.applied - HEADER_LEN) / RECORD_LEN as u64
    }
}

/// Keeps entity keys in one file under the data directory; any number of
/// handles and processes may share it.
///
/// Holds no unwrapped entity key: lookups unwrap the record's key each time.
/// Lock order: `log`, then `keyring`, then `index`.
pub struct EmbeddedKeyStore {
    dir: PathBuf,
    keyring: RwLock<Keyring>,
    index: RwLock<Index>,
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
            .field("keys", &self.read_index().slots.len())
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
    /// refused (fail closed), and so is a store whose log is gone while its
    /// journal remains, or whose log is shorter than its head records.
    pub fn open(dir: &Path, kek_source: &KekSource) -> Result<Self> {
        Self::open_or_create(dir, kek_source, true)
    }

    /// Opens the store in `dir` only if it exists, creating nothing (no directory, no
    /// KEK): so a mistyped directory never becomes a new, empty store.
    pub fn open_existing(dir: &Path, kek_source: &KekSource) -> Result<Self> {
        Self::open_or_create(dir, kek_source, false)
    }

    /// Tells whether `dir` holds a store (its log file).
    pub fn exists(dir: &Path) -> bool {
        dir.join(LOG_FILE).is_file()
    }

    fn open_or_create(dir: &Path, kek_source: &KekSource, create: bool) -> Result<Self> {
        let log_path = dir.join(LOG_FILE);
        if !log_path.is_file() {
            if !create {
                return Err(KeyStoreError::StoreMissing {
                    location: dir.display().to_string(),
                });
            }
            if dir.join(JOURNAL_FILE).is_file() {
                return Err(KeyStoreError::Corrupt {
                    path: log_path,
                    reason: "the key log is gone but its journal remains; restore the key store from backup",
                });
            }
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
        let created = create_if_absent(&log_path, FileIdentity::fresh_store()?)?;
        let (file, identity) = open_log(&log_path)?;
        let contents = read_records(&file, &log_path, HEADER_LEN)?;
        let keyring = Keyring::load(kek_source, create && contents.records.is_empty())?
            .ok_or_else(|| KeyStoreError::KekMissing {
                path: dir.to_path_buf(),
            })?;
        let (index, head) = if contents.records.is_empty() {
            let index_key = EntityKey::random()?;
            let keys = FileKeys::new(identity, index_key);
            let record = index_record(&keys, &keyring)?;
            write_record(&file, HEADER_LEN, &record, &log_path)?;
            let head = Head {
                counter: 1,
                records: 1,
            };
            sync_then_write_head(&file, &keys, head, &log_path)?;
            let index = Index {
                keys,
                slots: HashMap::with_hasher(BuildPrehashedHasher::default()),
            };
            (index, head)
        } else {
            let loaded = load(&keyring, identity, &contents, &log_path)?;
            if contents.torn > 0 {
                tracing::warn!(
                    torn_bytes = contents.torn,
                    "key store ends in a torn record from an interrupted write; cutting it off"
                );
                let complete = HEADER_LEN + (contents.records.len() * RECORD_LEN) as u64;
                file.set_len(complete)
                    .and_then(|()| file.sync_all())
                    .map_err(io("repairing the key store", &log_path))?;
            }
            for record in &loaded.unshredded {
                let shredded = loaded.index.keys.marker(*record, SHREDDED, 0);
                write_record(&file, record_offset(*record), &shredded, &log_path)?;
            }
            let head = match loaded.head {
                Some(head) => head,
                // A store that crashed between writing its index key and its first head.
                None => {
                    let head = Head {
                        counter: 1,
                        records: 1,
                    };
                    sync_then_write_head(&file, &loaded.index.keys, head, &log_path)?;
                    head
                }
            };
            if !loaded.unshredded.is_empty() {
                file.sync_data()
                    .map_err(io("erasing from the key store", &log_path))?;
            }
            (loaded.index, head)
        };
        let applied = HEADER_LEN + (contents.records.len().max(1) * RECORD_LEN) as u64;
        drop(exclusive);
        let store = EmbeddedKeyStore {
            dir: dir.to_path_buf(),
            keyring: RwLock::new(keyring),
            index: RwLock::new(index),
            log: Mutex::new(Log::new(file, applied, head, &log_path)?),
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

    fn read_index(&self) -> RwLockReadGuard<'_, Index> {
        self.index.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write_index(&self) -> RwLockWriteGuard<'_, Index> {
        self.index.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// Unwraps the live key of `entity`, if the index has one.
    ///
    /// Holds the keyring and the index together, so a rotation in this handle
    /// cannot swap the slot's wrapping between reading it and unwrapping it.
    fn live_key(&self, entity: &Entity<'_>) -> Result<Option<EntityKey>> {
        let keyring = self.read_keyring();
        let index = self.read_index();
        let tag = lookup_tag(&index.keys.index_key, entity);
        index
            .slots
            .get(&tag)
            .map(|slot| {
                slot.unwrap(&keyring, &index.keys)
                    .map(|payload| payload.key)
            })
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
        if (on_disk.dev(), on_disk.ino()) != log.inode {
            return self.reload(log);
        }
        if on_disk.len() < log.applied {
            return Err(KeyStoreError::Corrupt {
                path,
                reason: "the key log shrank while open: records were cut off its end",
            });
        }
        if on_disk.len() < log.applied + RECORD_LEN as u64 {
            return Ok(());
        }
        let contents = read_records(&log.file, &path, log.applied)?;
        let first = log.records();
        let mut erased = HashSet::new();
        {
            let keyring = self.read_keyring();
            let mut index = self.write_index();
            for (offset, record) in contents.records.iter().enumerate() {
                let number = first + offset as u64;
                match record[0] {
                    ERASURE | SHREDDED => {
                        let Some(target) = authentic_marker(&index.keys, number, record) else {
                            return Err(KeyStoreError::Unwrap { record: number });
                        };
                        erased.extend(target);
                    }
                    _ => {
                        let slot = index.keys.slot(&keyring, number, record)?;
                        index.slots.entry(tag_of(record)).or_insert(slot);
                    }
                }
            }
            if !erased.is_empty() {
                index.slots.retain(|_, slot| !erased.contains(&slot.record));
            }
        }
        if !erased.is_empty() {
            self.generation.fetch_add(1, Ordering::AcqRel);
        }
        log.applied += (contents.records.len() * RECORD_LEN) as u64;
        Ok(())
    }

    /// Re-reads a log another handle rewrote (rotation).
    fn reload(&self, log: &mut Log) -> Result<()> {
        let path = self.log_path();
        let (file, identity) = open_log(&path)?;
        let contents = read_records(&file, &path, HEADER_LEN)?;
        let loaded = {
            let mut keyring = self.write_keyring();
            match load(&keyring, identity, &contents, &path) {
                Err(KeyStoreError::KekVersionMissing { .. }) => {
                    keyring.reload()?;
                    load(&keyring, identity, &contents, &path)?
                }
                other => other?,
            }
        };
        let head = loaded.head.ok_or(KeyStoreError::Corrupt {
            path: path.clone(),
            reason: "the rewritten key log has no authentic head",
        })?;
        *self.write_index() = loaded.index;
        *log = Log::new(
            file,
            HEADER_LEN + (contents.records.len() * RECORD_LEN) as u64,
            head,
            &path,
        )?;
        self.generation.fetch_add(1, Ordering::AcqRel);
        Ok(())
    }

    /// Appends an erasure notice and shreds each record in place, durably.
    fn shred_records(&self, log: &mut Log, records: &[u64]) -> Result<()> {
        let path = self.log_path();
        {
            let index = self.read_index();
            for record in records {
                let notice = index.keys.marker(log.records(), ERASURE, *record);
                write_record(&log.file, log.applied, &notice, &path)?;
                log.applied += RECORD_LEN as u64;
                let shredded = index.keys.marker(*record, SHREDDED, 0);
                write_record(&log.file, record_offset(*record), &shredded, &path)?;
            }
        }
        self.write_head(log)?;
        let erased: HashSet<u64> = records.iter().copied().collect();
        self.write_index()
            .slots
            .retain(|_, slot| !erased.contains(&slot.record));
        self.generation.fetch_add(1, Ordering::AcqRel);
        Ok(())
    }

    /// Makes every applied record durable, then vouches for them in the head.
    /// Called under the exclusive file lock.
    fn write_head(&self, log: &mut Log) -> Result<()> {
        let path = self.log_path();
        let mut header = [0u8; HEADER_LEN as usize];
        log.file
            .read_exact_at(&mut header, 0)
            .map_err(io("reading the key store", &path))?;
        let index = self.read_index();
        let on_disk = index
            .keys
            .head(&header)
            .map_err(|reason| KeyStoreError::Corrupt {
                path: path.clone(),
                reason,
            })?
            .unwrap_or(log.head);
        let newest = if on_disk.counter > log.head.counter {
            on_disk
        } else {
            log.head
        };
        let head = Head {
            counter: newest.counter + 1,
            records: log.records().max(newest.records),
        };
        sync_then_write_head(&log.file, &index.keys, head, &path)?;
        log.head = head;
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
        if let Some(key) = self.live_key(entity)? {
            return Ok(key);
        }
        self.exclusively(|log| {
            if let Some(key) = self.live_key(entity)? {
                return Ok(key);
            }
            let key = EntityKey::random()?;
            let number = log.records();
            let (tag, record) = {
                let keyring = self.read_keyring();
                let index = self.read_index();
                let tag = lookup_tag(&index.keys.index_key, entity);
                let group = group_tag(&index.keys.index_key, entity);
                let payload = KeyPayload {
                    key: key.clone(),
                    digest: entity.digest(),
                    group: entity.group_digest(),
                };
                let record = index.keys.encode(
                    &keyring,
                    number,
                    entity.scope.code(),
                    (&tag, &group),
                    entity.epoch,
                    &payload,
                )?;
                (tag, record)
            };
            write_record(&log.file, log.applied, &record, &self.log_path())?;
            log.applied += RECORD_LEN as u64;
            self.unsynced.store(true, Ordering::Release);
            tracing::trace!(entity = ?Redacted(entity), "created an entity key");
            self.write_index()
                .slots
                .insert(tag, Slot::of(number, &record));
            Ok(key)
        })
    }

    fn existing_key(&self, entity: &Entity<'_>) -> Result<Option<EntityKey>> {
        if let Some(key) = self.live_key(entity)? {
            return Ok(Some(key));
        }
        self.shared(|_| self.live_key(entity))
    }

    fn sync(&self) -> Result<()> {
        let mut log = lock(&self.log);
        let unsynced = self.unsynced.swap(false, Ordering::AcqRel);
        if !unsynced && log.head.records >= log.records() {
            return Ok(());
        }
        let _lock = lock_exclusive(&self.lock_file, &self.dir.join(LOCK_FILE))?;
        self.write_head(&mut log).inspect_err(|_| {
            self.unsynced.store(true, Ordering::Release);
        })
    }

    fn erase(&self, entity: &Entity<'_>) -> Result<u64> {
        self.exclusively(|log| {
            let records: Vec<u64> = {
                let index = self.read_index();
                let tag = lookup_tag(&index.keys.index_key, entity);
                let group = group_tag(&index.keys.index_key, entity);
                index
                    .slots
                    .iter()
                    .filter(|(slot_tag, slot)| **slot_tag == tag || slot.group() == group)
                    .map(|(_, slot)| slot.record)
                    .collect()
            };
            if !records.is_empty() {
                self.shred_records(log, &records)?;
            }
            Ok(records.len() as u64)
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
            let mut index = self.write_index();
            // Unwrapped under the keyring that verified them, before the reload
            // can drop a version; held only until they are wrapped again.
            let live = index
                .slots
                .values()
                .map(|slot| Ok((*slot, slot.unwrap(&keyring, &index.keys)?)))
                .collect::<Result<Vec<(Slot, KeyPayload)>>>()?;
            keyring.reload()?;
            let current = keyring.current_version();
            let path = self.log_path();
            let staged = path.with_extension("new");
            let _ = fs::remove_file(&staged);
            let identity = FileIdentity::new(
                index.keys.identity.store_id(),
                index.keys.identity.base() + log.records(),
            )?;
            create_if_absent(&staged, identity)?;
            let (file, _) = open_log(&staged)?;
            let keys = FileKeys::new(identity, EntityKey::random()?);
            write_record(&file, HEADER_LEN, &index_record(&keys, &keyring)?, &staged)?;
            let mut slots = HashMap::with_hasher(BuildPrehashedHasher::default());
            let mut rewrapped = 0;
            for (number, (old, payload)) in (1u64..).zip(&live) {
                let tag = tag_of_digest(&keys.index_key, &payload.digest);
                let group = tag_of_digest(&keys.index_key, &payload.group);
                let record = keys.encode(
                    &keyring,
                    number,
                    old.scope_code(),
                    (&tag, &group),
                    old.epoch(),
                    payload,
                )?;
                write_record(&file, record_offset(number), &record, &staged)?;
                slots.insert(tag, Slot::of(number, &record));
                if old.kek_version() != current {
                    rewrapped += 1;
                }
            }
            let records = live.len() as u64 + 1;
            let head = Head {
                counter: 1,
                records,
            };
            sync_then_write_head(&file, &keys, head, &staged)?;
            fs::rename(&staged, &path).map_err(io("replacing the key store", &path))?;
            sync_dir(&self.dir)?;
            *index = Index { keys, slots };
            *log = Log::new(file, record_offset(records), head, &path)?;
            Ok(rewrapped)
        })
    }

    fn keys_per_kek_version(&self) -> Result<BTreeMap<u32, u64>> {
        self.shared(|_| {
            let mut counts = BTreeMap::new();
            for slot in self.read_index().slots.values() {
                *counts.entry(slot.kek_version()).or_insert(0) += 1;
            }
            Ok(counts)
        })
    }

    fn erase_epochs_before(&self, scope: Scope, before_epoch: u32) -> Result<u64> {
        let scope_code = scope.code();
        self.exclusively(|log| {
            let records: Vec<u64> = self
                .read_index()
                .slots
                .values()
                .filter(|slot| {
                    slot.scope_code() == scope_code && (1..before_epoch).contains(&slot.epoch())
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
        self.shared(|_| Ok(self.read_index().slots.len() as u64))
    }

    fn kek_version(&self) -> u32 {
        self.read_keyring().current_version()
    }

    /// Counts every record this handle has applied: the next [`KeyStore::sync`]
    /// makes them durable, and the head then vouches for them.
    fn position(&self) -> Result<StorePosition> {
        self.shared(|log| {
            let identity = self.read_index().keys.identity;
            Ok(StorePosition {
                store_id: hex(&identity.store_id()),
                position: identity.base() + log.records(),
            })
        })
    }
}

/// What a copy of a store file yields to someone holding a keyring: every key
/// record that unwraps, and how many did not. Reads a file that is not open
/// as a store (a backup, say) and checks nothing else: it is what an auditor,
/// or the adversary of the privacy tests, can get from the copy.
#[derive(Debug, Default)]
pub struct CopyContents {
    /// The index key, when its record unwraps.
    pub index_key: Option<EntityKey>,
    /// Lookup tag and key of every entity record that unwraps.
    pub keys: Vec<(LookupTag, EntityKey)>,
    /// Lookup tags of every entity record, unwrapped or not.
    pub tags: Vec<LookupTag>,
    /// Key records that did not unwrap under the keyring.
    pub failed: usize,
}

/// Reads a copy of a store file with `keyring`; see [`CopyContents`].
pub fn read_copy(path: &Path, keyring: &Keyring) -> Result<CopyContents> {
    let (file, identity) = open_log(path)?;
    let contents = read_records(&file, path, HEADER_LEN)?;
    let mut copy = CopyContents::default();
    // Only the record's number and the file identity are needed to unwrap.
    let binding = FileKeys::new(identity, EntityKey::from_bytes([0; 32]));
    for (number, record) in (0u64..).zip(&contents.records) {
        if record[0] == ERASURE || record[0] == SHREDDED {
            continue;
        }
        match binding.unwrap(keyring, number, record) {
            Ok(payload) if record[0] == INDEX => copy.index_key = Some(payload.key),
            Ok(payload) => copy.keys.push((tag_of(record), payload.key)),
            Err(_) => copy.failed += 1,
        }
        if record[0] != INDEX {
            copy.tags.push(tag_of(record));
        }
    }
    Ok(copy)
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
fn create_if_absent(path: &Path, identity: FileIdentity) -> Result<bool> {
    if path.exists() {
        return Ok(false);
    }
    let mut header = vec![0u8; HEADER_LEN as usize];
    header[..IDENTITY_LEN].copy_from_slice(&identity.0);
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

fn open_log(path: &Path) -> Result<(File, FileIdentity)> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(io("opening the key store", path))?;
    let corrupt = |reason| KeyStoreError::Corrupt {
        path: path.to_path_buf(),
        reason,
    };
    let mut header = [0u8; HEADER_LEN as usize];
    file.read_exact_at(&mut header, 0)
        .map_err(|_| corrupt("bad header"))?;
    if &header[..4] != MAGIC {
        return Err(corrupt("bad header"));
    }
    if header[4..8] != FORMAT_VERSION.to_le_bytes() {
        return Err(corrupt(
            "unsupported format version (made by another delink release)",
        ));
    }
    let mut identity = [0u8; IDENTITY_LEN];
    identity.copy_from_slice(&header[..IDENTITY_LEN]);
    Ok((file, FileIdentity(identity)))
}

/// The complete records of a log from some offset, and the bytes of a torn tail.
struct Contents {
    header: [u8; HEADER_LEN as usize],
    records: Vec<[u8; RECORD_LEN]>,
    torn: u64,
}

fn read_records(file: &File, path: &Path, from: u64) -> Result<Contents> {
    let length = file
        .metadata()
        .map_err(io("reading the key store", path))?
        .len();
    let mut header = [0u8; HEADER_LEN as usize];
    file.read_exact_at(&mut header, 0)
        .map_err(io("reading the key store", path))?;
    let available = length.saturating_sub(from);
    let complete = available - available % RECORD_LEN as u64;
    let mut bytes = vec![0u8; complete as usize];
    file.read_exact_at(&mut bytes, from)
        .map_err(io("reading the key store", path))?;
    let records = bytes
        .chunks_exact(RECORD_LEN)
        .map(|chunk| {
            let mut record = [0u8; RECORD_LEN];
            record.copy_from_slice(chunk);
            record
        })
        .collect();
    Ok(Contents {
        header,
        records,
        torn: available - complete,
    })
}

/// What a full read of the log found.
struct Loaded {
    index: Index,
    head: Option<Head>,
    /// Erased records whose bytes are still there (a crash between notice and shredding).
    unshredded: Vec<u64>,
}

/// Verifies and indexes every record of a log; refuses one cut shorter than its head.
fn load(
    keyring: &Keyring,
    identity: FileIdentity,
    contents: &Contents,
    path: &Path,
) -> Result<Loaded> {
    let records = &contents.records;
    let corrupt = |reason| KeyStoreError::Corrupt {
        path: path.to_path_buf(),
        reason,
    };
    let first = records.first().ok_or(corrupt("the index key is missing"))?;
    if first[0] != INDEX || first[1..65].iter().any(|byte| *byte != 0) {
        return Err(KeyStoreError::Unwrap { record: 0 });
    }
    let binding = FileKeys::new(identity, EntityKey::from_bytes([0; 32]));
    let index_key = binding.unwrap(keyring, 0, first)?.key;
    let keys = FileKeys::new(identity, index_key);
    let head = keys.head(&contents.header).map_err(corrupt)?;
    match head {
        Some(head) if head.records > records.len() as u64 => {
            return Err(corrupt(
                "the key log is shorter than its head records: records were cut off its end; restore it from backup",
            ));
        }
        None if records.len() > 1 => {
            return Err(corrupt(
                "the key log's head is missing or altered; restore it from backup",
            ));
        }
        _ => {}
    }
    let mut erased = HashSet::new();
    for (number, record) in (0u64..).zip(records).skip(1) {
        if matches!(record[0], ERASURE | SHREDDED) {
            match authentic_marker(&keys, number, record) {
                Some(target) => erased.extend(target),
                None => return Err(KeyStoreError::Unwrap { record: number }),
            }
        }
    }
    let mut loaded = Loaded {
        index: Index {
            keys,
            slots: HashMap::with_hasher(BuildPrehashedHasher::default()),
        },
        head,
        unshredded: Vec::new(),
    };
    for (number, record) in (0u64..).zip(records).skip(1) {
        match record[0] {
            ERASURE | SHREDDED => {}
            // Erased but not yet overwritten (a crash in between): still an authentic key record.
            _ if erased.contains(&number) => {
                loaded.index.keys.slot(keyring, number, record)?;
                loaded.unshredded.push(number);
            }
            _ => {
                let slot = loaded.index.keys.slot(keyring, number, record)?;
                loaded.index.slots.entry(tag_of(record)).or_insert(slot);
            }
        }
    }
    Ok(loaded)
}

/// Checks a notice or shredded record's MAC; returns the record a notice erases.
fn authentic_marker(
    keys: &FileKeys,
    number: u64,
    record: &[u8; RECORD_LEN],
) -> Option<Option<u64>> {
    if !keys.marker_is_authentic(number, record) {
        return None;
    }
    match record[0] {
        ERASURE => {
            let erased = u64_at(record, 1);
            (erased > 0 && erased < number).then_some(Some(erased))
        }
        _ => Some(None),
    }
}

/// The index key's record: record 0, no tags, no epoch.
fn index_record(keys: &FileKeys, keyring: &Keyring) -> Result<[u8; RECORD_LEN]> {
    let payload = KeyPayload {
        key: keys.index_key.clone(),
        digest: [0; 32],
        group: [0; 32],
    };
    keys.encode(keyring, 0, INDEX, (&[0; 32], &[0; 32]), 0, &payload)
}

/// Makes the log durable, then writes `head` to its slot and makes that durable.
fn sync_then_write_head(file: &File, keys: &FileKeys, head: Head, path: &Path) -> Result<()> {
    file.sync_data()
        .map_err(io("syncing the key store", path))?;
    let slot = IDENTITY_LEN as u64 + (head.counter % 2) * HEAD_SLOT_LEN as u64;
    write_record(file, slot, &keys.head_slot(head), path)?;
    file.sync_data().map_err(io("syncing the key store", path))
}

fn record_offset(number: u64) -> u64 {
    HEADER_LEN + number * RECORD_LEN as u64
}

fn tag_of(record: &[u8; RECORD_LEN]) -> LookupTag {
    let mut tag = [0u8; 32];
    tag.copy_from_slice(&record[1..33]);
    tag
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    let mut field = [0u8; 8];
    field.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(field)
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    let mut field = [0u8; 4];
    field.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(field)
}

fn constant_time_eq(left: &[u8], right: &[u8]) -> bool {
    left.len() == right.len()
        && left
            .iter()
            .zip(right)
            .fold(0u8, |diff, (a, b)| diff | (a ^ b))
            == 0
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn unwrap_error(failure: UnwrapFailure, record: u64, version: u32) -> KeyStoreError {
    match failure {
        UnwrapFailure::VersionMissing => KeyStoreError::KekVersionMissing { record, version },
        UnwrapFailure::Authentication => KeyStoreError::Unwrap { record },
    }
}

fn write_record(file: &File, offset: u64, bytes: &[u8], path: &Path) -> Result<()> {
    file.write_all_at(bytes, offset)
        .map_err(io("writing the key store", path))
}

#[cfg(test)]
mod tests;
