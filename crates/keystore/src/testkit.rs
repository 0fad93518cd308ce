//! The conformance suite every [`KeyStore`] backend passes (feature `testkit`).
//!
//! A backend's tests implement [`Backend`] and call
//! [`conformance_tests!`](crate::conformance_tests), which expands to one
//! `#[test]` per check.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use delink_model::Scope;

use crate::{Entity, EntityKey, JournalEvent, JournalKind, KekSource, KeyStore, Keyring, Result};

/// The first KEK of every test keyring.
pub const TEST_KEK: &str = "1:000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
/// A KEK that never wrapped anything in the tests.
pub const OTHER_KEK: &str = "1:ff0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

/// One fresh, empty store under test.
pub trait Backend: Send + Sync {
    /// Opens a new handle on this store, as another process would, with `keyring`.
    fn open(&self, keyring: &KekSource) -> Result<Box<dyn KeyStore>>;
    /// Returns a scratch directory private to this store (for keyring files).
    fn scratch(&self) -> &Path;
}

/// Expands to one `#[test]` per conformance check; `$fixture` makes a fresh [`Backend`].
#[macro_export]
macro_rules! conformance_tests {
    ($fixture:expr) => {
        $crate::conformance_tests!(@each $fixture;
            keys_are_stable_per_entity_and_distinct_otherwise,
            handles_agree_and_synced_keys_survive_reopening,
            erasure_deletes_the_key_and_reaches_other_handles,
            rotation_rewraps_every_key_so_the_old_kek_can_go,
            open_handles_keep_their_keys_across_a_rotation,
            a_wrong_kek_is_refused,
            device_epochs_are_purged_by_age,
            the_journal_keeps_events_in_order,
            concurrent_handles_create_one_key_per_entity,
            debug_output_shows_no_secret,
            erasing_a_charger_erases_every_epoch_and_component_key,
            the_position_grows_and_the_identity_stays_across_rotation,
        );
    };
    (@each $fixture:expr; $($check:ident),* $(,)?) => {
        $(
            #[test]
            fn $check() {
                let backend = $fixture;
                $crate::testkit::$check(&backend);
            }
        )*
    };
}

/// Writes a keyring file holding [`TEST_KEK`] and returns its source.
pub fn keyring_file(backend: &dyn Backend) -> KekSource {
    let path: PathBuf = backend.scratch().join("kek");
    if !path.exists() {
        std::fs::write(&path, format!("{TEST_KEK}\n")).expect("write keyring");
    }
    KekSource::File(path)
}

fn open(backend: &dyn Backend) -> Box<dyn KeyStore> {
    backend.open(&keyring_file(backend)).expect("open store")
}

fn key(store: &dyn KeyStore, entity: Entity<'_>) -> EntityKey {
    store.key_for(&entity).expect("key_for")
}

fn existing(store: &dyn KeyStore, entity: Entity<'_>) -> Option<[u8; 32]> {
    store
        .existing_key(&entity)
        .expect("existing_key")
        .map(|key| *key.expose())
}

/// Same entity → same key; other id, scope or epoch → another key.
pub fn keys_are_stable_per_entity_and_distinct_otherwise(backend: &dyn Backend) {
    let store = open(backend);
    assert!(store.is_empty().expect("len"));
    let first = key(&*store, Entity::new(Scope::Subject, "account:a1"));
    let again = key(&*store, Entity::new(Scope::Subject, "account:a1"));
    let others = [
        key(&*store, Entity::new(Scope::Subject, "account:a2")),
        key(&*store, Entity::new(Scope::Installation, "account:a1")),
        key(&*store, Entity::device("account:a1", 0)),
        key(&*store, Entity::device("account:a1", 7)),
    ];
    assert_eq!(first.expose(), again.expose());
    for other in &others {
        assert_ne!(first.expose(), other.expose());
    }
    assert_ne!(others[2].expose(), others[3].expose());
    assert_eq!(store.len().expect("len"), 5);
    assert_eq!(
        existing(&*store, Entity::new(Scope::Subject, "nobody")),
        None
    );
}

/// A second handle sees keys the first made; synced keys survive closing every handle.
pub fn handles_agree_and_synced_keys_survive_reopening(backend: &dyn Backend) {
    let made = {
        let first = open(backend);
        let second = open(backend);
        let made = key(&*first, Entity::device("ZAP000001", 0));
        first.sync().expect("sync");
        second.refresh().expect("refresh");
        let seen = key(&*second, Entity::device("ZAP000001", 0));
        assert_eq!(made.expose(), seen.expose());
        *made.expose()
    };
    let reopened = open(backend);
    assert_eq!(
        existing(&*reopened, Entity::device("ZAP000001", 0)),
        Some(made)
    );
    assert_eq!(reopened.len().expect("len"), 1);
}

/// Erasure deletes the key, other handles learn of it through the store, and
/// the next sighting of the identifier gets a fresh key.
pub fn erasure_deletes_the_key_and_reaches_other_handles(backend: &dyn Backend) {
    let eraser = open(backend);
    let worker = open(backend);
    let subject = Entity::new(Scope::Subject, "account:erase-me");
    let bystander = Entity::new(Scope::Subject, "account:keep-me");
    let old = key(&*worker, subject);
    let kept = key(&*worker, bystander);
    worker.sync().expect("sync");
    let before = worker.generation();

    assert_eq!(eraser.erase(&subject).expect("erase"), 1);
    assert_eq!(
        eraser.erase(&subject).expect("erase again"),
        0,
        "already gone"
    );
    assert_eq!(existing(&*eraser, subject), None);

    worker.refresh().expect("refresh");
    assert_ne!(
        worker.generation(),
        before,
        "the erasure reached the worker"
    );
    assert_eq!(existing(&*worker, subject), None);
    let fresh = key(&*worker, subject);
    assert_ne!(fresh.expose(), old.expose(), "a fresh key after erasure");
    worker.sync().expect("sync");
    eraser.refresh().expect("refresh");
    assert_eq!(existing(&*eraser, subject), Some(*fresh.expose()));
    assert_eq!(existing(&*eraser, bystander), Some(*kept.expose()));
    drop((eraser, worker));
    let reopened = open(backend);
    assert_eq!(existing(&*reopened, subject), Some(*fresh.expose()));
    assert_eq!(reopened.len().expect("len"), 2);
}

/// After rotation every key is wrapped under the new KEK, so a keyring
/// without the old version opens the store, with the same keys.
pub fn rotation_rewraps_every_key_so_the_old_kek_can_go(backend: &dyn Backend) {
    let source = keyring_file(backend);
    let store = open(backend);
    let entities: Vec<String> = (0..50).map(|n| format!("account:{n}")).collect();
    let keys: Vec<[u8; 32]> = entities
        .iter()
        .map(|id| *key(&*store, Entity::new(Scope::Subject, id)).expose())
        .collect();
    store.sync().expect("sync");
    assert_eq!(
        store.keys_per_kek_version().expect("versions"),
        [(1, 50)].into()
    );
    let mut keyring = Keyring::load(&source, false).expect("load").expect("ring");
    assert_eq!(keyring.add_version().expect("add"), 2);
    assert_eq!(store.rewrap().expect("rewrap"), 50);
    assert_eq!(
        store.keys_per_kek_version().expect("versions"),
        [(2, 50)].into()
    );
    keyring.destroy(&[1]).expect("destroy v1");
    drop(store);
    let reopened = open(backend);
    for (id, expected) in entities.iter().zip(&keys) {
        assert_eq!(
            existing(&*reopened, Entity::new(Scope::Subject, id)),
            Some(*expected)
        );
    }
    let old_only = KekSource::Env(TEST_KEK.to_owned());
    assert!(
        backend.open(&old_only).is_err(),
        "the destroyed KEK no longer opens the store"
    );
}

/// The rotating handle, and another that has caught up, still hand out the
/// same keys once the old KEK is destroyed: what a handle keeps in memory is
/// wrapped the way the store is.
pub fn open_handles_keep_their_keys_across_a_rotation(backend: &dyn Backend) {
    let source = keyring_file(backend);
    let rotating = open(backend);
    let other = open(backend);
    let entities = [
        Entity::new(Scope::Subject, "account:rotated"),
        Entity::new(Scope::Installation, "site:rotated"),
        Entity::device("ZAP-ROTATED", 4),
    ];
    let keys: Vec<[u8; 32]> = entities
        .iter()
        .map(|entity| *key(&*rotating, *entity).expose())
        .collect();
    rotating.sync().expect("sync");
    other.refresh().expect("refresh");
    for (entity, expected) in entities.iter().zip(&keys) {
        assert_eq!(existing(&*other, *entity), Some(*expected));
    }
    let mut keyring = Keyring::load(&source, false).expect("load").expect("ring");
    keyring.add_version().expect("add");
    assert_eq!(rotating.rewrap().expect("rewrap"), 3);
    keyring.destroy(&[1]).expect("destroy v1");
    other.refresh().expect("refresh");
    for (entity, expected) in entities.iter().zip(&keys) {
        assert_eq!(existing(&*rotating, *entity), Some(*expected));
        assert_eq!(key(&*rotating, *entity).expose(), expected);
        assert_eq!(existing(&*other, *entity), Some(*expected));
        assert_eq!(key(&*other, *entity).expose(), expected);
    }
    assert_eq!(other.len().expect("len"), 3);
}

/// A store with keys refuses a keyring that did not wrap them (fail closed).
pub fn a_wrong_kek_is_refused(backend: &dyn Backend) {
    let store = open(backend);
    key(&*store, Entity::new(Scope::Subject, "account:x"));
    store.sync().expect("sync");
    drop(store);
    let wrong = KekSource::Env(OTHER_KEK.to_owned());
    let error = backend.open(&wrong).map(|_| ()).expect_err("wrong KEK");
    assert!(!error.to_string().contains("ff0102"), "{error}");
}

/// Device keys of epochs before the cut are deleted; everything else stays.
pub fn device_epochs_are_purged_by_age(backend: &dyn Backend) {
    let store = open(backend);
    for epoch in 0..4 {
        key(&*store, Entity::device("ZAP1", epoch));
    }
    key(&*store, Entity::new(Scope::Subject, "account:1"));
    store.sync().expect("sync");
    assert_eq!(
        store.erase_epochs_before(Scope::Device, 3).expect("purge"),
        2
    );
    assert_eq!(existing(&*store, Entity::device("ZAP1", 1)), None);
    assert_eq!(existing(&*store, Entity::device("ZAP1", 2)), None);
    assert!(existing(&*store, Entity::device("ZAP1", 3)).is_some());
    assert!(existing(&*store, Entity::device("ZAP1", 0)).is_some());
    assert!(existing(&*store, Entity::new(Scope::Subject, "account:1")).is_some());
    assert_eq!(store.len().expect("len"), 3);
}

/// Journal events come back in the order they were appended, from any handle.
pub fn the_journal_keeps_events_in_order(backend: &dyn Backend) {
    let store = open(backend);
    let before = store.journal().expect("journal").len();
    let events = [
        JournalEvent {
            at: 1,
            kind: JournalKind::Erasure {
                request_id: "r1".to_owned(),
                scope: "subject".to_owned(),
                keys: 1,
                kek_version: 1,
            },
        },
        JournalEvent {
            at: 2,
            kind: JournalKind::Retirement {
                kek_versions: vec![1],
            },
        },
    ];
    for event in &events {
        store.append_journal(event).expect("append");
    }
    let other = open(backend);
    let journal = other.journal().expect("journal");
    assert_eq!(journal[before..], events);
}

/// Many threads on several handles creating keys for overlapping
/// identifiers at once end up with one key per identifier.
pub fn concurrent_handles_create_one_key_per_entity(backend: &dyn Backend) {
    let handles: Vec<Arc<dyn KeyStore>> = (0..3).map(|_| Arc::from(open(backend))).collect();
    let ids: Vec<String> = (0..120).map(|n| format!("account:{n}")).collect();
    let seen: Vec<HashMap<String, [u8; 32]>> = std::thread::scope(|scope| {
        let tasks: Vec<_> = (0..12)
            .map(|task| {
                let store = Arc::clone(&handles[task % handles.len()]);
                let ids = &ids;
                scope.spawn(move || {
                    let mut seen = HashMap::new();
                    // Every task walks the ids from another starting point.
                    for step in 0..ids.len() {
                        let id = &ids[(step + task * 37) % ids.len()];
                        let key = key(&*store, Entity::new(Scope::Subject, id));
                        seen.insert(id.clone(), *key.expose());
                    }
                    store.sync().expect("sync");
                    seen
                })
            })
            .collect();
        tasks
            .into_iter()
            .map(|task| task.join().expect("task"))
            .collect()
    });
    let fresh = open(backend);
    for id in &ids {
        let stored = existing(&*fresh, Entity::new(Scope::Subject, id)).expect("stored");
        for task in &seen {
            assert_eq!(task[id], stored, "one key per entity");
        }
    }
    assert_eq!(fresh.len().expect("len"), ids.len() as u64);
}

/// Neither the store's `Debug` output nor its errors show a key or the KEK.
pub fn debug_output_shows_no_secret(backend: &dyn Backend) {
    let store = open(backend);
    let made = key(
        &*store,
        Entity::new(Scope::Subject, "account:secret-holder"),
    );
    store.sync().expect("sync");
    let shown = format!("{store:?} {made:?}");
    let key_hex: String = made.expose().iter().map(|b| format!("{b:02x}")).collect();
    assert!(!shown.contains(&key_hex[..16]), "{shown}");
    assert!(!shown.contains("0a0b0c0d"), "{shown}");
    assert!(!shown.contains("secret-holder"), "{shown}");
}

/// Erasing a charger erases each of its epochs (future ones included) and each
/// component key under it; the same component on another charger keeps its key.
pub fn erasing_a_charger_erases_every_epoch_and_component_key(backend: &dyn Backend) {
    let store = open(backend);
    let mut household = Vec::new();
    for epoch in [0, 1, 5, 900] {
        household.push(Entity::device("ZAP-HOME", epoch));
        household.push(Entity::component("ZAP-HOME", "SENSE-1", epoch));
    }
    for entity in &household {
        key(&*store, *entity);
    }
    let elsewhere = Entity::component("ZAP-OTHER", "SENSE-1", 1);
    let neighbour = Entity::device("ZAP-OTHER", 1);
    let kept = [key(&*store, elsewhere), key(&*store, neighbour)];
    store.sync().expect("sync");
    assert_eq!(
        store.erase(&Entity::device("ZAP-HOME", 0)).expect("erase"),
        household.len() as u64
    );
    let other = open(backend);
    for handle in [&store, &other] {
        handle.refresh().expect("refresh");
        for entity in &household {
            assert_eq!(
                existing(&**handle, *entity),
                None,
                "{:?} survived",
                entity.epoch
            );
        }
        assert_eq!(existing(&**handle, elsewhere), Some(*kept[0].expose()));
        assert_eq!(existing(&**handle, neighbour), Some(*kept[1].expose()));
    }
}

/// A store keeps its identity for life, and its position only grows: with new
/// keys, with erasures and across a rotation.
pub fn the_position_grows_and_the_identity_stays_across_rotation(backend: &dyn Backend) {
    let source = keyring_file(backend);
    let store = open(backend);
    let start = store.position().expect("position");
    assert_eq!(start.store_id.len(), 32);
    key(&*store, Entity::new(Scope::Subject, "account:p1"));
    store.sync().expect("sync");
    let grown = store.position().expect("position");
    assert!(grown.position > start.position, "{grown:?} after {start:?}");
    assert_eq!(
        store
            .erase(&Entity::new(Scope::Subject, "account:p1"))
            .expect("erase"),
        1
    );
    key(&*store, Entity::new(Scope::Subject, "account:p2"));
    store.sync().expect("sync");
    let erased = store.position().expect("position");
    assert!(
        erased.position > grown.position,
        "{erased:?} after {grown:?}"
    );
    let mut keyring = Keyring::load(&source, false).expect("load").expect("ring");
    keyring.add_version().expect("add");
    store.rewrap().expect("rewrap");
    let rotated = store.position().expect("position");
    assert_eq!(rotated.store_id, start.store_id);
    assert!(
        rotated.position >= erased.position,
        "{rotated:?} after {erased:?}"
    );
    let reopened = open(backend);
    assert_eq!(reopened.position().expect("position"), rotated);
}
