//! The PostgreSQL key store: one row per entity key, shared by every handle.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError, RwLock, RwLockReadGuard};
use std::time::Duration;

use delink_keystore::{
    Entity, EntityKey, JournalEvent, JournalKind, KekSource, KeyPayload, KeyStore, KeyStoreError,
    Keyring, LookupTag, Result, StorePosition, UnwrapFailure, group_tag, lookup_tag, tag_of_digest,
};
use delink_model::Scope;
use postgres::config::Host;
use postgres::{Client, Config, GenericClient};

use crate::error::{backend, broken};
use crate::pool::{Connection, Pool};
use crate::schema;

/// Connections per handle: enough that worker threads missing their cache at
/// once rarely wait, few enough that many processes fit `max_connections`.
const POOL_SIZE: usize = 4;
/// How long opening a connection may take when the URL sets no `connect_timeout`.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How often `key_for` retries when the row it lost a race to is erased before
/// it is read, or a rotation changed the index key meanwhile.
const CREATE_ATTEMPTS: usize = 3;
/// The record number errors give for the index key.
const INDEX_RECORD: u64 = 0;

/// Inserts a key only while the index key is the one its tags were made with:
/// a rotation locks the table, re-tags every row and bumps the serial, so an
/// insert racing it inserts nothing and retries under the new index key.
const INSERT_KEY: &str = "INSERT INTO delink_keys (tag, grp, scope, epoch, kek_version, wrapped) \
     SELECT $1, $2, $3, $4, $5, $6 WHERE EXISTS \
     (SELECT 1 FROM delink_index_key WHERE serial = $7) ON CONFLICT (tag) DO NOTHING";
const SELECT_KEY: &str = "SELECT record, kek_version, wrapped, grp FROM delink_keys WHERE tag = $1";
const BUMP_GENERATION: &str = "UPDATE delink_generation SET value = value + 1";

/// The index key and the store's identity, as this handle last read them.
struct Index {
    key: EntityKey,
    serial: i64,
    store_id: [u8; 16],
}

/// Keeps entity keys in PostgreSQL, so that several pipeline processes share them.
///
/// Holds no entity key: every `key_for` and `existing_key` reads the row
/// (one round trip on a prepared statement) and unwraps it, and a new key is
/// committed before it is handed out. Callers that need speed cache keys
/// themselves. Erasures reach them through a generation counter row that
/// [`KeyStore::refresh`] reads; rotations, through the index key's serial.
pub struct PostgresKeyStore {
    /// The connection target without its password, for messages.
    target: String,
    pool: Pool,
    keyring: RwLock<Keyring>,
    index: RwLock<Index>,
    /// The store's generation counter as this handle last read it.
    store_generation: Mutex<i64>,
    /// This handle's generation: moves when it learns of an erasure.
    generation: AtomicU64,
}

impl std::fmt::Debug for PostgresKeyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresKeyStore")
            .field("target", &self.target)
            .field("kek_versions", &self.keyring().versions())
            .field("generation", &self.generation())
            .finish_non_exhaustive()
    }
}

impl PostgresKeyStore {
    /// Opens the store at `url` (a `postgres://` URL or a libpq key-value
    /// string), creating its tables and index key when the database has none.
    ///
    /// The KEK is generated (when `kek` names a missing file) only for a store
    /// without an index key; a store with one refuses a missing KEK and a
    /// keyring that cannot unwrap its index key (fail closed).
    pub fn open(url: &str, kek: &KekSource) -> Result<Self> {
        Self::open_or_create(url, kek, true)
    }

    /// Opens the store only if the database holds one, creating nothing (no schema, no
    /// index key): so a mistyped URL never becomes a new, empty store.
    pub fn open_existing(url: &str, kek: &KekSource) -> Result<Self> {
        Self::open_or_create(url, kek, false)
    }

    fn open_or_create(url: &str, kek: &KekSource, create: bool) -> Result<Self> {
        let mut config: Config = url
            .parse()
            .map_err(|_| broken("reading the connection url", "malformed url"))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name("delink");
        }
        let target = describe(&config);
        let pool = Pool::new(config, POOL_SIZE);
        if !create && !pool.with_client(holds_a_store)? {
            return Err(KeyStoreError::StoreMissing { location: target });
        }
        pool.with_client(|client| schema::ensure(client).map_err(backend("creating the schema")))?;
        let stored = pool.with_client(read_index_key)?;
        let mut keyring =
            Keyring::load(kek, stored.is_none())?.ok_or_else(|| KeyStoreError::KekMissing {
                path: PathBuf::from(&target),
            })?;
        let index = match stored {
            Some(stored) => stored.unwrap_with(&keyring)?,
            None => create_index_key(&pool, &mut keyring)?,
        };
        let store_generation = pool.with_client(|client| {
            client
                .query_one("SELECT value FROM delink_generation", &[])
                .map(|row| row.get::<_, i64>(0))
                .map_err(backend("reading the generation"))
        })?;
        Ok(PostgresKeyStore {
            target,
            pool,
            keyring: RwLock::new(keyring),
            index: RwLock::new(index),
            store_generation: Mutex::new(store_generation),
            generation: AtomicU64::new(0),
        })
    }

    fn keyring(&self) -> RwLockReadGuard<'_, Keyring> {
        self.keyring.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn index(&self) -> RwLockReadGuard<'_, Index> {
        self.index.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// Notes an erasure this handle made or learnt of: callers caching keys drop them.
    fn note_erasure(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// Reads the index key again after another handle rotated it; reloads the
    /// keyring when the new index key is wrapped under a version it lacks.
    fn reload_index(&self) -> Result<()> {
        let stored = self
            .pool
            .with_client(read_index_key)?
            .ok_or_else(|| broken("reading the index key", "the index key is gone"))?;
        if stored.serial == self.index().serial {
            return Ok(());
        }
        let unwrapped = stored.unwrap_with(&self.keyring());
        let index = match unwrapped {
            Err(KeyStoreError::KekVersionMissing { .. }) => {
                let mut keyring = self.keyring.write().unwrap_or_else(PoisonError::into_inner);
                keyring.reload()?;
                stored.unwrap_with(&keyring)?
            }
            other => other?,
        };
        *self.index.write().unwrap_or_else(PoisonError::into_inner) = index;
        Ok(())
    }

    /// Reads the entity's row and unwraps it.
    fn read_key(
        &self,
        connection: &mut Connection,
        keyring: &Keyring,
        index: &Index,
        entity: &Entity<'_>,
    ) -> Result<Option<EntityKey>> {
        let tag = lookup_tag(&index.key, entity);
        let select = connection
            .statement(SELECT_KEY)
            .map_err(backend("reading a key"))?;
        let row = connection
            .client
            .query_opt(&select, &[&&tag[..]])
            .map_err(backend("reading a key"))?;
        let Some(row) = row else {
            return Ok(None);
        };
        let stored = StoredKey {
            record: row.get(0),
            kek_version: row.get(1),
            wrapped: row.get(2),
        };
        let grp: &[u8] = row.get(3);
        let aad = row_aad(
            &index.store_id,
            stored.record,
            (&tag, grp),
            (i16::from(entity.scope.code()), i64::from(entity.epoch)),
            stored.kek_version,
        )?;
        stored
            .unwrap_with(keyring, &aad)
            .map(|payload| Some(payload.key))
    }

    /// Tries once to find or create the entity's key under the index key as it is.
    fn find_or_create(&self, entity: &Entity<'_>) -> Result<Option<EntityKey>> {
        // Held across the insert so a rotation in this handle cannot slip
        // between wrapping under the old version and the row landing.
        let keyring = self.keyring();
        let index = self.index();
        self.pool.with_connection(|connection| {
            if let Some(existing) = self.read_key(connection, &keyring, &index, entity)? {
                return Ok(Some(existing));
            }
            let fresh = EntityKey::random()?;
            let tag = lookup_tag(&index.key, entity);
            let grp = group_tag(&index.key, entity);
            let scope_code = i16::from(entity.scope.code());
            let epoch = i64::from(entity.epoch);
            let kek_version = i64::from(keyring.current_version());
            let aad = row_aad(
                &index.store_id,
                0,
                (&tag, &grp),
                (scope_code, epoch),
                kek_version,
            )?;
            let payload = KeyPayload {
                key: fresh.clone(),
                digest: entity.digest(),
                group: entity.group_digest(),
            };
            let (_, wrapped) = payload.wrap(&keyring, &aad)?;
            let insert = connection
                .statement(INSERT_KEY)
                .map_err(backend("creating a key"))?;
            let inserted = connection
                .client
                .execute(
                    &insert,
                    &[
                        &&tag[..],
                        &&grp[..],
                        &scope_code,
                        &epoch,
                        &kek_version,
                        &&wrapped[..],
                        &index.serial,
                    ],
                )
                .map_err(backend("creating a key"))?;
            if inserted == 1 {
                return Ok(Some(fresh));
            }
            // Another handle created it first (ON CONFLICT waited for its
            // commit): everyone uses that one. None: it was erased in between,
            // or a rotation changed the index key.
            self.read_key(connection, &keyring, &index, entity)
        })
    }

    /// Deletes rows in one transaction with the generation bump; returns how many.
    fn delete(
        &self,
        action: &'static str,
        query: &str,
        params: &[&(dyn postgres::types::ToSql + Sync)],
    ) -> Result<u64> {
        self.pool.with_client(|client| {
            let mut transaction = client.transaction().map_err(backend(action))?;
            let deleted = transaction
                .execute(query, params)
                .map_err(backend(action))?;
            if deleted > 0 {
                transaction
                    .execute(BUMP_GENERATION, &[])
                    .map_err(backend(action))?;
            }
            transaction.commit().map_err(backend(action))?;
            Ok(deleted)
        })
    }

    /// Compacts the key table after an erasure. PostgreSQL keeps deleted
    /// tuples until vacuumed; vacuuming frees their space for reuse, but the
    /// bytes may survive in pages, WAL and backups. What makes them useless is
    /// that they are wrapped: rotating the KEK and destroying the old version
    /// (privacy model, "erasure = crypto-shredding") finishes the erasure.
    fn vacuum(&self) {
        let vacuumed = self.pool.with_client(|client| {
            client
                .batch_execute("VACUUM delink_keys")
                .map_err(backend("vacuuming the key table"))
        });
        if let Err(error) = vacuumed {
            tracing::warn!(%error, "could not vacuum the key table after an erasure; autovacuum will");
        }
    }
}

impl KeyStore for PostgresKeyStore {
    /// Reads the row first (most calls find a key), and creates it only when absent.
    fn key_for(&self, entity: &Entity<'_>) -> Result<EntityKey> {
        for _ in 0..CREATE_ATTEMPTS {
            if let Some(key) = self.find_or_create(entity)? {
                return Ok(key);
            }
            self.reload_index()?;
        }
        Err(broken(
            "creating a key",
            "the key kept being erased or re-tagged while created",
        ))
    }

    fn existing_key(&self, entity: &Entity<'_>) -> Result<Option<EntityKey>> {
        let keyring = self.keyring();
        let index = self.index();
        self.pool
            .with_connection(|connection| self.read_key(connection, &keyring, &index, entity))
    }

    /// Does nothing: `key_for` commits every new key before handing it out
    /// (the insert must commit anyway for other handles to see it and agree
    /// on one key), so every key handed out is already durable.
    fn sync(&self) -> Result<()> {
        Ok(())
    }

    fn erase(&self, entity: &Entity<'_>) -> Result<u64> {
        let (tag, grp) = {
            let index = self.index();
            (
                lookup_tag(&index.key, entity),
                group_tag(&index.key, entity),
            )
        };
        let deleted = self.delete(
            "erasing a key",
            "DELETE FROM delink_keys WHERE tag = $1 OR grp = $2",
            &[&&tag[..], &&grp[..]],
        )?;
        if deleted > 0 {
            self.note_erasure();
            self.vacuum();
        }
        Ok(deleted)
    }

    fn refresh(&self) -> Result<u64> {
        let (store_generation, serial) = self.pool.with_client(|client| {
            client
                .query_one(
                    "SELECT (SELECT value FROM delink_generation), \
                            (SELECT serial FROM delink_index_key)",
                    &[],
                )
                .map(|row| (row.get::<_, i64>(0), row.get::<_, Option<i64>>(1)))
                .map_err(backend("reading the generation"))
        })?;
        {
            let mut seen = self
                .store_generation
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if *seen != store_generation {
                self.note_erasure();
                *seen = store_generation;
            }
        }
        // Another process rotated: pick up the new index key (and KEK version,
        // so new keys are not wrapped under the one about to be retired).
        if serial.is_some_and(|serial| serial != self.index().serial) {
            self.reload_index()?;
            self.keyring
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .reload()?;
        }
        Ok(self.generation())
    }

    fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Re-wraps every row under the newest version of the reloaded keyring and
    /// re-tags it under a new index key, in one transaction that locks out
    /// inserts meanwhile.
    ///
    /// Other processes learn of the new index key when an insert of theirs
    /// finds the serial moved, or on their next [`KeyStore::refresh`]; a key
    /// one of them creates before that is still wrapped under the old version,
    /// so check [`KeyStore::keys_per_kek_version`] (and rewrap again) before
    /// destroying it.
    fn rewrap(&self) -> Result<u64> {
        const ACTION: &str = "re-wrapping keys";
        let mut keyring = self.keyring.write().unwrap_or_else(PoisonError::into_inner);
        let mut index = self.index.write().unwrap_or_else(PoisonError::into_inner);
        let rotated = self.pool.with_client(|client| {
            let mut transaction = client.transaction().map_err(backend(ACTION))?;
            transaction
                .batch_execute(
                    "LOCK TABLE delink_keys IN EXCLUSIVE MODE; \
                     SELECT 1 FROM delink_index_key FOR UPDATE",
                )
                .map_err(backend(ACTION))?;
            let current_index = read_index_key(&mut transaction)?
                .ok_or_else(|| broken(ACTION, "the index key is gone"))?
                .unwrap_with(&keyring)?;
            let rows = transaction
                .query(
                    "SELECT record, kek_version, wrapped, tag, grp, scope, epoch FROM delink_keys",
                    &[],
                )
                .map_err(backend(ACTION))?;
            // Unwrapped under the keyring that wrapped them, before the reload.
            let mut live = Vec::with_capacity(rows.len());
            for row in &rows {
                let stored = StoredKey {
                    record: row.get(0),
                    kek_version: row.get(1),
                    wrapped: row.get(2),
                };
                let tags = (row.get::<_, &[u8]>(3), row.get::<_, &[u8]>(4));
                let fields = (row.get::<_, i16>(5), row.get::<_, i64>(6));
                let aad = row_aad(
                    &current_index.store_id,
                    stored.record,
                    tags,
                    fields,
                    stored.kek_version,
                )?;
                let payload = stored.unwrap_with(&keyring, &aad)?;
                live.push((stored, fields, payload));
            }
            keyring.reload()?;
            let current = i64::from(keyring.current_version());
            let next = Index {
                key: EntityKey::random()?,
                serial: current_index.serial + 1,
                store_id: current_index.store_id,
            };
            let (version, wrapped) = index_payload(&next).wrap(&keyring, &index_aad(&next))?;
            transaction
                .execute(
                    "UPDATE delink_index_key SET serial = $1, kek_version = $2, wrapped = $3",
                    &[&next.serial, &i64::from(version), &&wrapped[..]],
                )
                .map_err(backend(ACTION))?;
            let update = transaction
                .prepare(
                    "UPDATE delink_keys SET tag = $2, grp = $3, kek_version = $4, wrapped = $5 \
                     WHERE record = $1",
                )
                .map_err(backend(ACTION))?;
            let mut rewrapped = 0;
            for (stored, fields, payload) in &live {
                let tag = tag_of_digest(&next.key, &payload.digest);
                let grp = tag_of_digest(&next.key, &payload.group);
                let aad = row_aad(
                    &next.store_id,
                    stored.record,
                    (&tag, &grp),
                    *fields,
                    current,
                )?;
                let (_, wrapped) = payload.wrap(&keyring, &aad)?;
                transaction
                    .execute(
                        &update,
                        &[
                            &stored.record,
                            &&tag[..],
                            &&grp[..],
                            &current,
                            &&wrapped[..],
                        ],
                    )
                    .map_err(backend(ACTION))?;
                if stored.kek_version != current {
                    rewrapped += 1;
                }
            }
            transaction.commit().map_err(backend(ACTION))?;
            Ok((next, rewrapped))
        })?;
        *index = rotated.0;
        Ok(rotated.1)
    }

    fn keys_per_kek_version(&self) -> Result<BTreeMap<u32, u64>> {
        const ACTION: &str = "counting keys per KEK version";
        let rows = self.pool.with_client(|client| {
            client
                .query(
                    "SELECT kek_version, count(*) FROM delink_keys GROUP BY kek_version",
                    &[],
                )
                .map_err(backend(ACTION))
        })?;
        let mut counts = BTreeMap::new();
        for row in rows {
            let version = u32::try_from(row.get::<_, i64>(0))
                .map_err(|_| broken(ACTION, "a KEK version out of range"))?;
            counts.insert(version, count(row.get(1)));
        }
        Ok(counts)
    }

    fn erase_epochs_before(&self, scope: Scope, before_epoch: u32) -> Result<u64> {
        if before_epoch <= 1 {
            return Ok(0);
        }
        let last_purged = before_epoch - 1;
        let deleted = self.delete(
            "purging key epochs",
            "DELETE FROM delink_keys WHERE scope = $1 AND epoch BETWEEN 1 AND $2",
            &[&i16::from(scope.code()), &i64::from(last_purged)],
        )?;
        if deleted > 0 {
            self.note_erasure();
            self.vacuum();
        }
        Ok(deleted)
    }

    fn append_journal(&self, event: &JournalEvent) -> Result<()> {
        self.pool.with_client(|client| {
            client
                .execute(
                    "INSERT INTO delink_journal (event) VALUES ($1)",
                    &[&event.to_json()],
                )
                .map(|_| ())
                .map_err(backend("appending to the journal"))
        })
    }

    fn journal(&self) -> Result<Vec<JournalEvent>> {
        const ACTION: &str = "reading the journal";
        let rows = self.pool.with_client(|client| {
            client
                .query("SELECT event FROM delink_journal ORDER BY seq", &[])
                .map_err(backend(ACTION))
        })?;
        rows.iter()
            .map(|row| {
                JournalEvent::from_json(row.get(0))
                    .ok_or_else(|| broken(ACTION, "a journal line is not a journal event"))
            })
            .collect()
    }

    fn len(&self) -> Result<u64> {
        self.pool.with_client(|client| {
            client
                .query_one("SELECT count(*) FROM delink_keys", &[])
                .map(|row| count(row.get(0)))
                .map_err(backend("counting keys"))
        })
    }

    fn kek_version(&self) -> u32 {
        self.keyring().current_version()
    }

    /// The position is the key table's record sequence: it counts every key
    /// ever created (and insert attempts), and never goes back.
    fn position(&self) -> Result<StorePosition> {
        let position = self.pool.with_client(|client| {
            client
                .query_one(
                    "SELECT coalesce(pg_sequence_last_value(\
                     pg_get_serial_sequence('delink_keys', 'record')), 0)",
                    &[],
                )
                .map(|row| count(row.get(0)))
                .map_err(backend("reading the store position"))
        })?;
        Ok(StorePosition {
            store_id: self
                .index()
                .store_id
                .iter()
                .map(|byte| format!("{byte:02x}"))
                .collect(),
            position,
        })
    }
}

/// A wrapped key as stored, before it is checked and unwrapped.
struct StoredKey {
    record: i64,
    kek_version: i64,
    wrapped: Vec<u8>,
}

impl StoredKey {
    fn unwrap_with(&self, keyring: &Keyring, aad: &[u8]) -> Result<KeyPayload> {
        let record = u64::try_from(self.record).unwrap_or_default();
        let version = u32::try_from(self.kek_version)
            .map_err(|_| broken("unwrapping a key", "a KEK version out of range"))?;
        KeyPayload::unwrap(keyring, version, &self.wrapped, aad).map_err(|failure| match failure {
            UnwrapFailure::VersionMissing => KeyStoreError::KekVersionMissing { record, version },
            UnwrapFailure::Authentication => KeyStoreError::Unwrap { record },
        })
    }
}

/// The index key's row, read on open, before the keyring is loaded.
struct StoredIndexKey {
    serial: i64,
    store_id: [u8; 16],
    key: StoredKey,
}

impl StoredIndexKey {
    fn unwrap_with(&self, keyring: &Keyring) -> Result<Index> {
        let mut index = Index {
            key: EntityKey::from_bytes([0; 32]),
            serial: self.serial,
            store_id: self.store_id,
        };
        index.key = self.key.unwrap_with(keyring, &index_aad(&index))?.key;
        Ok(index)
    }
}

/// Tells whether the database holds a store: its index key exists.
fn holds_a_store(client: &mut Client) -> Result<bool> {
    let table = client
        .query_one("SELECT to_regclass('delink_index_key') IS NOT NULL", &[])
        .map_err(backend("looking for the key store"))?;
    if !table.get::<_, bool>(0) {
        return Ok(false);
    }
    Ok(read_index_key(client)?.is_some())
}

fn read_index_key(client: &mut impl GenericClient) -> Result<Option<StoredIndexKey>> {
    const ACTION: &str = "reading the index key";
    let row = client
        .query_opt(
            "SELECT format, store_id, serial, kek_version, wrapped FROM delink_index_key",
            &[],
        )
        .map_err(backend(ACTION))?;
    let Some(row) = row else {
        return Ok(None);
    };
    if row.get::<_, i32>(0) != schema::FORMAT {
        return Err(broken(
            ACTION,
            "the store was made by another delink release (unsupported layout)",
        ));
    }
    let store_id: &[u8] = row.get(1);
    Ok(Some(StoredIndexKey {
        store_id: store_id
            .try_into()
            .map_err(|_| broken(ACTION, "a store id of the wrong length"))?,
        serial: row.get(2),
        key: StoredKey {
            record: i64::try_from(INDEX_RECORD).unwrap_or_default(),
            kek_version: row.get(3),
            wrapped: row.get(4),
        },
    }))
}

/// Creates the index key of a new store; when another process created one
/// at the same moment, theirs is used.
fn create_index_key(pool: &Pool, keyring: &mut Keyring) -> Result<Index> {
    const ACTION: &str = "creating the index key";
    let mut store_id = [0u8; 16];
    getrandom::fill(&mut store_id).map_err(|_| KeyStoreError::Random)?;
    let fresh = Index {
        key: EntityKey::random()?,
        serial: 1,
        store_id,
    };
    let (kek_version, wrapped) = index_payload(&fresh).wrap(keyring, &index_aad(&fresh))?;
    pool.with_client(|client| {
        let mut transaction = client.transaction().map_err(backend(ACTION))?;
        let inserted = transaction
            .execute(
                "INSERT INTO delink_index_key (format, store_id, serial, kek_version, wrapped) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                &[
                    &schema::FORMAT,
                    &&fresh.store_id[..],
                    &fresh.serial,
                    &i64::from(kek_version),
                    &&wrapped[..],
                ],
            )
            .map_err(backend(ACTION))?;
        if inserted == 1 {
            let event = JournalEvent::now(JournalKind::KekInUse { kek_version });
            transaction
                .execute(
                    "INSERT INTO delink_journal (event) VALUES ($1)",
                    &[&event.to_json()],
                )
                .map_err(backend(ACTION))?;
        }
        transaction.commit().map_err(backend(ACTION))
    })?;
    // Read back whichever index key won, with the keyring as it is now on
    // disk: if two first runs generated the KEK file at once, the loser's
    // copy in memory is not the one kept, and it must not wrap anything.
    keyring.reload()?;
    let stored = pool
        .with_client(read_index_key)?
        .ok_or_else(|| broken(ACTION, "the index key vanished after it was created"))?;
    stored.unwrap_with(keyring)
}

fn index_payload(index: &Index) -> KeyPayload {
    KeyPayload {
        key: index.key.clone(),
        digest: [0; 32],
        group: [0; 32],
    }
}

/// The associated data of the index key: the store id and the rotation serial.
fn index_aad(index: &Index) -> Vec<u8> {
    let mut aad = b"delink pg index v3".to_vec();
    aad.extend_from_slice(&index.store_id);
    aad.extend_from_slice(&index.serial.to_le_bytes());
    aad
}

/// Rebuilds the associated data a row's key is bound to from its columns:
/// the store id, both tags, scope, epoch and KEK version.
fn row_aad(
    store_id: &[u8; 16],
    record: i64,
    (tag, grp): (&[u8], &[u8]),
    (scope, epoch): (i16, i64),
    kek_version: i64,
) -> Result<Vec<u8>> {
    let record = u64::try_from(record).unwrap_or_default();
    let malformed = || KeyStoreError::Unwrap { record };
    let tag: &LookupTag = tag.try_into().map_err(|_| malformed())?;
    let grp: &LookupTag = grp.try_into().map_err(|_| malformed())?;
    let scope = u8::try_from(scope).map_err(|_| malformed())?;
    let epoch = u32::try_from(epoch).map_err(|_| malformed())?;
    let kek_version = u32::try_from(kek_version).map_err(|_| malformed())?;
    let mut aad = b"delink pg key v3".to_vec();
    aad.extend_from_slice(store_id);
    aad.push(scope);
    aad.extend_from_slice(&epoch.to_le_bytes());
    aad.extend_from_slice(&kek_version.to_le_bytes());
    aad.extend_from_slice(tag);
    aad.extend_from_slice(grp);
    Ok(aad)
}

fn count(value: i64) -> u64 {
    u64::try_from(value).unwrap_or_default()
}

/// Describes the connection target without its password: `postgres://user@host:port/db`.
fn describe(config: &Config) -> String {
    let user = config.get_user().unwrap_or_default();
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .map(|host| match host {
            Host::Tcp(name) => name.clone(),
            Host::Unix(path) => path.display().to_string(),
        })
        .collect();
    let ports: Vec<String> = config.get_ports().iter().map(u16::to_string).collect();
    let database = config.get_dbname().unwrap_or(user);
    format!(
        "postgres://{user}@{}:{}/{database}",
        hosts.join(","),
        ports.join(",")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_description_leaves_out_the_password() {
        let config: Config = "postgres://delink:s3cret-pw@db.example:5433/keys"
            .parse()
            .expect("url");
        let shown = describe(&config);
        assert_eq!(shown, "postgres://delink@db.example:5433/keys");
    }

    #[test]
    fn a_malformed_url_says_so_without_echoing_it() {
        let kek = KekSource::Env(delink_keystore::testkit::TEST_KEK.to_owned());
        let error = PostgresKeyStore::open("postgres://u:pw-secret@host:notaport/db", &kek)
            .map(|_| ())
            .expect_err("malformed");
        let shown = error.to_string();
        assert!(shown.contains("malformed url"), "{shown}");
        assert!(!shown.contains("pw-secret"), "{shown}");
    }
}
