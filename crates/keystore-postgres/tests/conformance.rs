//! The key-store conformance suite and PostgreSQL-specific checks, against a
//! real server on loopback (see `support`).

mod support;

use std::collections::HashMap;
use std::sync::{Arc, Barrier};

use delink_keystore::testkit::{Backend, keyring_file};
use delink_keystore::{Entity, KeyStore, KeyStoreError, Keyring};
use delink_keystore_postgres::PostgresKeyStore;
use delink_model::Scope;

delink_keystore::conformance_tests!(support::fresh_store());

/// Many threads over several handles asking for the same new identifiers at
/// the same instant get one key per identifier, the one in the table.
#[test]
fn simultaneous_first_sightings_agree_on_one_key() {
    const HANDLES: usize = 4;
    const THREADS: usize = 16;
    const IDS: usize = 60;
    let backend = support::fresh_store();
    let kek = keyring_file(&backend);
    let handles: Vec<Arc<dyn KeyStore>> = (0..HANDLES)
        .map(|_| Arc::from(backend.open(&kek).expect("open")))
        .collect();
    let ids: Vec<String> = (0..IDS).map(|n| format!("account:race-{n}")).collect();
    let barrier = Barrier::new(THREADS);
    let seen: Vec<HashMap<String, [u8; 32]>> = std::thread::scope(|scope| {
        let tasks: Vec<_> = (0..THREADS)
            .map(|thread| {
                let store = Arc::clone(&handles[thread % HANDLES]);
                let (ids, barrier) = (&ids, &barrier);
                scope.spawn(move || {
                    let mut seen = HashMap::new();
                    for id in ids {
                        // Everyone asks for this new identifier at once.
                        barrier.wait();
                        let key = store
                            .key_for(&Entity::new(Scope::Subject, id))
                            .expect("key_for");
                        seen.insert(id.clone(), *key.expose());
                    }
                    seen
                })
            })
            .collect();
        tasks
            .into_iter()
            .map(|task| task.join().expect("thread"))
            .collect()
    });

    let mut database = support::connect(&backend.url);
    let rows: i64 = database
        .query_one("SELECT count(*) FROM delink_keys", &[])
        .expect("count")
        .get(0);
    assert_eq!(rows, IDS as i64, "exactly one row per identifier");
    let fresh = backend.open(&kek).expect("open");
    for id in &ids {
        let stored = fresh
            .existing_key(&Entity::new(Scope::Subject, id))
            .expect("existing_key")
            .expect("stored");
        for thread in &seen {
            assert_eq!(
                &thread[id],
                stored.expose(),
                "every thread saw the stored key"
            );
        }
    }
}

/// Processes opening a new, empty store at once all succeed and share one index key.
#[test]
fn simultaneous_opens_of_a_new_store_share_one_index_key() {
    const OPENERS: usize = 8;
    let backend = support::fresh_store();
    let kek = keyring_file(&backend);
    let barrier = Barrier::new(OPENERS);
    let keys: Vec<[u8; 32]> = std::thread::scope(|scope| {
        let tasks: Vec<_> = (0..OPENERS)
            .map(|_| {
                let (backend, kek, barrier) = (&backend, &kek, &barrier);
                scope.spawn(move || {
                    barrier.wait();
                    let store = backend.open(kek).expect("open");
                    let key = store
                        .key_for(&Entity::new(Scope::Installation, "site:1"))
                        .expect("key_for");
                    *key.expose()
                })
            })
            .collect();
        tasks
            .into_iter()
            .map(|task| task.join().expect("thread"))
            .collect()
    });
    assert!(
        keys.windows(2).all(|pair| pair[0] == pair[1]),
        "one key for the entity"
    );
    let journal = backend
        .open(&kek)
        .expect("open")
        .journal()
        .expect("journal");
    assert_eq!(
        journal.len(),
        1,
        "one store creation journalled: {journal:?}"
    );
}

/// A handle learns of a rotation made by another on refresh, and wraps new keys under it.
#[test]
fn refresh_picks_up_a_rotation_made_elsewhere() {
    let backend = support::fresh_store();
    let kek = keyring_file(&backend);
    let rotator = backend.open(&kek).expect("open");
    let worker = backend.open(&kek).expect("open");
    worker
        .key_for(&Entity::new(Scope::Subject, "account:old"))
        .expect("key_for");
    let mut keyring = Keyring::load(&kek, false).expect("load").expect("ring");
    assert_eq!(keyring.add_version().expect("add"), 2);
    assert_eq!(rotator.rewrap().expect("rewrap"), 1);
    worker.refresh().expect("refresh");
    worker
        .key_for(&Entity::new(Scope::Subject, "account:new"))
        .expect("key_for");
    assert_eq!(
        rotator.keys_per_kek_version().expect("versions"),
        [(2, 2)].into(),
        "the worker wraps new keys under the new version"
    );
}

/// The store's `Debug` output names the server but never the URL's password.
#[test]
fn debug_output_hides_the_url_password() {
    let url = support::cluster().fresh_database(Some("pw-hunter2-secret"));
    let scratch = tempfile::tempdir().expect("scratch");
    let kek = delink_keystore::KekSource::File(scratch.path().join("kek"));
    let store = PostgresKeyStore::open(&url, &kek).expect("open");
    let shown = format!("{store:?}");
    assert!(!shown.contains("hunter2"), "{shown}");
    assert!(shown.contains("127.0.0.1"), "{shown}");
}

/// A store with keys refuses to open without its KEK, and says so without secrets.
#[test]
fn a_store_with_keys_and_no_kek_is_refused() {
    let backend = support::fresh_store();
    let kek = keyring_file(&backend);
    let store = backend.open(&kek).expect("open");
    store
        .key_for(&Entity::new(Scope::Subject, "account:1"))
        .expect("key_for");
    drop(store);
    let missing = delink_keystore::KekSource::File(backend.scratch().join("no-such-kek"));
    let error = backend.open(&missing).map(|_| ()).expect_err("no KEK");
    assert!(
        matches!(error, delink_keystore::KeyStoreError::KekMissing { .. }),
        "{error:?}"
    );
    assert!(
        !backend.scratch().join("no-such-kek").exists(),
        "no KEK generated for a used store"
    );
}

/// The store keeps no key in memory: a row changed or deleted behind its
/// back is what the very next lookup sees.
#[test]
fn every_lookup_reads_the_row_so_no_key_outlives_it() {
    let backend = support::fresh_store();
    let kek = keyring_file(&backend);
    let store = backend.open(&kek).expect("open");
    let entity = Entity::new(Scope::Subject, "account:uncached");
    let made = store.key_for(&entity).expect("key_for");
    let seen = store.existing_key(&entity).expect("existing_key");
    assert_eq!(seen.expect("stored").expose(), made.expose());

    let mut database = support::connect(&backend.url);
    database
        .execute(
            "UPDATE delink_keys SET wrapped = set_byte(wrapped, 30, get_byte(wrapped, 30) # 1)",
            &[],
        )
        .expect("tamper");
    assert!(matches!(
        store.existing_key(&entity),
        Err(KeyStoreError::Unwrap { .. })
    ));
    assert!(matches!(
        store.key_for(&entity),
        Err(KeyStoreError::Unwrap { .. })
    ));

    database
        .execute("DELETE FROM delink_keys", &[])
        .expect("delete");
    assert!(store.existing_key(&entity).expect("existing_key").is_none());
    let fresh = store.key_for(&entity).expect("key_for");
    assert_ne!(fresh.expose(), made.expose(), "a fresh key, not a kept one");
}

/// A database without a store is never turned into one by a command that only reads.
#[test]
fn opening_an_existing_store_refuses_a_database_that_holds_none_and_creates_nothing() {
    let backend = support::fresh_store();
    let kek = keyring_file(&backend);
    let error = PostgresKeyStore::open_existing(&backend.url, &kek)
        .map(|_| ())
        .expect_err("no store yet");
    assert!(
        matches!(error, KeyStoreError::StoreMissing { .. }),
        "{error}"
    );
    let mut database = support::connect(&backend.url);
    let tables: i64 = database
        .query_one(
            "SELECT count(*) FROM pg_tables WHERE tablename LIKE 'delink%'",
            &[],
        )
        .expect("count")
        .get(0);
    assert_eq!(tables, 0, "no schema was created");
    let created = PostgresKeyStore::open(&backend.url, &kek).expect("create");
    let key = created
        .key_for(&Entity::new(Scope::Subject, "account:a"))
        .expect("key");
    let reopened = PostgresKeyStore::open_existing(&backend.url, &kek).expect("exists now");
    let same = reopened
        .existing_key(&Entity::new(Scope::Subject, "account:a"))
        .expect("read")
        .expect("stored");
    assert_eq!(same.expose(), key.expose());
}
