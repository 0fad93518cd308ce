use super::*;
use crate::testkit::{self, Backend};

/// A fresh embedded store in a temporary directory.
struct Embedded {
    dir: tempfile::TempDir,
}

impl Embedded {
    fn new() -> Self {
        Embedded {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    fn keys_dir(&self) -> PathBuf {
        self.dir.path().join("keys")
    }
}

impl Backend for Embedded {
    fn open(&self, keyring: &KekSource) -> Result<Box<dyn KeyStore>> {
        Ok(Box::new(EmbeddedKeyStore::open(&self.keys_dir(), keyring)?))
    }

    fn scratch(&self) -> &Path {
        self.dir.path()
    }
}

crate::conformance_tests!(Embedded::new());

fn open(backend: &Embedded) -> EmbeddedKeyStore {
    EmbeddedKeyStore::open(&backend.keys_dir(), &testkit::keyring_file(backend)).expect("open")
}

fn log_bytes(backend: &Embedded) -> Vec<u8> {
    fs::read(backend.keys_dir().join(LOG_FILE)).expect("read log")
}

#[test]
fn the_store_never_holds_the_raw_identifier() {
    let backend = Embedded::new();
    let store = open(&backend);
    store
        .key_for(&Entity::new(Scope::Subject, "kari.nordmann@example.no"))
        .expect("key");
    store.sync().expect("sync");
    assert!(!log_bytes(&backend).windows(4).any(|w| w == b"kari"));
}

fn index_key_of(store: &EmbeddedKeyStore) -> EntityKey {
    store.read_index().keys.index_key.clone()
}

#[test]
fn erasure_overwrites_the_record_in_place() {
    let backend = Embedded::new();
    let store = open(&backend);
    let subject = Entity::new(Scope::Subject, "account:gone");
    store.key_for(&subject).expect("key");
    store.sync().expect("sync");
    let tag = lookup_tag(&index_key_of(&store), &subject);
    let before = log_bytes(&backend);
    let at = before
        .windows(32)
        .position(|window| window == tag)
        .expect("the record is there");
    let wrapped = before[at + FIELDS_LEN - 1..at + FIELDS_LEN - 1 + WRAPPED_LEN].to_vec();
    assert_eq!(store.erase(&subject).expect("erase"), 1);
    let after = log_bytes(&backend);
    assert!(
        !after.windows(32).any(|window| window == tag),
        "tag shredded"
    );
    assert!(
        !after.windows(WRAPPED_LEN).any(|window| window == wrapped),
        "wrapped key shredded"
    );
}

#[test]
fn missing_kek_is_refused_once_the_store_holds_keys() {
    let backend = Embedded::new();
    open(&backend)
        .key_for(&Entity::new(Scope::Subject, "a"))
        .expect("key");
    let absent = KekSource::File(backend.scratch().join("absent"));
    let error = EmbeddedKeyStore::open(&backend.keys_dir(), &absent).expect_err("missing");
    assert!(matches!(error, KeyStoreError::KekMissing { .. }), "{error}");
}

#[test]
fn a_torn_tail_beyond_the_head_is_cut_and_the_keys_stay() {
    let backend = Embedded::new();
    let log = backend.keys_dir().join(LOG_FILE);
    let entity = Entity::new(Scope::Installation, "site");
    let key = {
        let store = open(&backend);
        let key = store.key_for(&entity).expect("key");
        store.sync().expect("sync");
        key
    };
    let mut file = OpenOptions::new().append(true).open(&log).expect("log");
    file.write_all(&[7u8; 50]).expect("torn write");
    drop(file);
    let store = open(&backend);
    let reloaded = store.existing_key(&entity).expect("lookup");
    assert_eq!(reloaded.expect("kept").expose(), key.expose());
    let length = fs::metadata(&log).expect("meta").len();
    assert_eq!((length - HEADER_LEN) % RECORD_LEN as u64, 0);
}

/// A store with records of every kind: the index key, keys of several scopes
/// and epochs, an erasure notice and the shredded record it names.
fn store_of_every_kind(backend: &Embedded) -> Vec<(u8, u64)> {
    let store = open(backend);
    for entity in [
        Entity::new(Scope::Subject, "account:kept"),
        Entity::new(Scope::Installation, "site:kept"),
        Entity::device("ZAP-T", 3),
        Entity::component("ZAP-T", "SENSE-T", 3),
        Entity::new(Scope::Dataset, "devices"),
        Entity::new(Scope::Subject, "account:erased"),
    ] {
        store.key_for(&entity).expect("key");
    }
    store
        .erase(&Entity::new(Scope::Subject, "account:erased"))
        .expect("erase");
    store.sync().expect("sync");
    let bytes = log_bytes(backend);
    let kinds = bytes[HEADER_LEN as usize..]
        .chunks_exact(RECORD_LEN)
        .map(|record| record[0]);
    (0u64..)
        .zip(kinds)
        .map(|(number, kind)| (kind, number))
        .collect()
}

#[test]
fn a_change_to_any_byte_of_any_record_kind_fails_closed() {
    let backend = Embedded::new();
    let records = store_of_every_kind(&backend);
    let mut sampled = HashMap::new();
    for (kind, number) in &records {
        sampled.entry(*kind).or_insert(*number);
    }
    assert_eq!(
        sampled.len(),
        7,
        "index, five scopes... and markers: {records:?}"
    );
    let log = backend.keys_dir().join(LOG_FILE);
    let pristine = fs::read(&log).expect("read");
    let kek = testkit::keyring_file(&backend);
    let mut changes = 0;
    for number in sampled.values() {
        let at = record_offset(*number) as usize;
        for byte in 0..RECORD_LEN {
            for flip in [0x01u8, 0x80] {
                let mut bytes = pristine.clone();
                bytes[at + byte] ^= flip;
                fs::write(&log, &bytes).expect("tamper");
                let opened = EmbeddedKeyStore::open_existing(&backend.keys_dir(), &kek);
                assert!(
                    opened.is_err(),
                    "record {number} byte {byte} ^ {flip:#x} went unnoticed"
                );
                changes += 1;
            }
        }
        // Every other kind byte, too: a key record turned into a notice, and so on.
        for kind in [INDEX, 1, 2, 3, 4, 5, ERASURE, SHREDDED, 0x42] {
            let mut bytes = pristine.clone();
            if bytes[at] == kind {
                continue;
            }
            bytes[at] = kind;
            fs::write(&log, &bytes).expect("tamper");
            assert!(
                EmbeddedKeyStore::open_existing(&backend.keys_dir(), &kek).is_err(),
                "record {number} relabelled {kind} went unnoticed"
            );
            changes += 1;
        }
    }
    // The identity part of the header is bound into every record, and each
    // head slot is MAC'd.
    for byte in 8..HEADER_LEN as usize {
        let mut bytes = pristine.clone();
        bytes[byte] ^= 1;
        fs::write(&log, &bytes).expect("tamper");
        assert!(
            EmbeddedKeyStore::open_existing(&backend.keys_dir(), &kek).is_err(),
            "header byte {byte} went unnoticed"
        );
        changes += 1;
    }
    assert!(changes > 3000, "{changes}");
    fs::write(&log, &pristine).expect("restore");
    EmbeddedKeyStore::open_existing(&backend.keys_dir(), &kek).expect("the pristine store opens");
}

#[test]
fn a_log_cut_at_a_record_boundary_or_without_its_head_is_refused() {
    let backend = Embedded::new();
    let records = store_of_every_kind(&backend).len() as u64;
    let log = backend.keys_dir().join(LOG_FILE);
    let pristine = fs::read(&log).expect("read");
    let kek = testkit::keyring_file(&backend);
    for kept in 1..records {
        let cut = &pristine[..record_offset(kept) as usize];
        fs::write(&log, cut).expect("cut");
        let error = EmbeddedKeyStore::open_existing(&backend.keys_dir(), &kek)
            .map(|_| ())
            .expect_err("a cut log");
        assert!(error.to_string().contains("cut off"), "{kept}: {error}");
        // A cut that leaves a partial record is no torn tail either.
        let mut torn = cut.to_vec();
        torn.extend_from_slice(&pristine[cut.len()..cut.len() + 20]);
        fs::write(&log, &torn).expect("cut");
        assert!(EmbeddedKeyStore::open_existing(&backend.keys_dir(), &kek).is_err());
    }
    let mut headless = pristine.clone();
    headless[IDENTITY_LEN..HEADER_LEN as usize].fill(0);
    fs::write(&log, &headless).expect("no head");
    let error = EmbeddedKeyStore::open_existing(&backend.keys_dir(), &kek)
        .map(|_| ())
        .expect_err("no head");
    assert!(error.to_string().contains("head"), "{error}");
    fs::remove_file(&log).expect("delete");
    let error = EmbeddedKeyStore::open(&backend.keys_dir(), &kek)
        .map(|_| ())
        .expect_err("a deleted log is not a new store");
    assert!(error.to_string().contains("journal remains"), "{error}");
    assert!(!log.exists(), "nothing was created in its place");
}

#[test]
fn rotation_re_tags_every_key_under_a_new_index_key() {
    let backend = Embedded::new();
    let source = testkit::keyring_file(&backend);
    let store = open(&backend);
    let entities = [
        Entity::new(Scope::Subject, "account:tagged"),
        Entity::device("ZAP-TAG", 2),
    ];
    for entity in &entities {
        store.key_for(entity).expect("key");
    }
    store.sync().expect("sync");
    let old_index = index_key_of(&store);
    let old_tags: Vec<LookupTag> = entities.iter().map(|e| lookup_tag(&old_index, e)).collect();
    let mut keyring = Keyring::load(&source, false).expect("load").expect("ring");
    keyring.add_version().expect("add");
    store.rewrap().expect("rewrap");
    keyring.destroy(&[1]).expect("destroy v1");
    let current = Keyring::load(&source, false).expect("load").expect("ring");
    let copy = read_copy(&backend.keys_dir().join(LOG_FILE), &current).expect("copy");
    let new_index = copy.index_key.expect("the index key unwraps");
    assert_ne!(new_index.expose(), old_index.expose());
    for tag in &old_tags {
        assert!(!copy.tags.contains(tag), "an old tag is still current");
    }
    let reopened = EmbeddedKeyStore::open_existing(&backend.keys_dir(), &source).expect("open");
    for entity in &entities {
        assert!(reopened.existing_key(entity).expect("lookup").is_some());
    }
}

#[test]
fn a_new_store_journals_its_first_kek_version() {
    let backend = Embedded::new();
    let store = open(&backend);
    let journal = store.journal().expect("journal");
    assert!(matches!(
        journal.as_slice(),
        [JournalEvent {
            kind: JournalKind::KekInUse { kek_version: 1 },
            ..
        }]
    ));
}

#[test]
fn the_index_keeps_keys_wrapped_and_every_lookup_unwraps_them() {
    let backend = Embedded::new();
    let store = open(&backend);
    let entity = Entity::new(Scope::Subject, "account:wrapped");
    let key = store.key_for(&entity).expect("key");
    store.sync().expect("sync");
    let tag = lookup_tag(&index_key_of(&store), &entity);
    let slot = *store.read_index().slots.get(&tag).expect("indexed");
    assert!(
        log_bytes(&backend)
            .windows(WRAPPED_LEN)
            .any(|window| window == slot.wrapped),
        "the index holds the key as the log stores it"
    );
    assert!(
        !slot
            .wrapped
            .windows(32)
            .any(|window| window == key.expose()),
        "not the key itself"
    );

    // Without the KEK that wrapped it, the store has no key to hand out.
    *store.write_keyring() = Keyring::from_text(testkit::OTHER_KEK).expect("keyring");
    assert!(matches!(
        store.key_for(&entity),
        Err(KeyStoreError::Unwrap { .. })
    ));
    assert!(matches!(
        store.existing_key(&entity),
        Err(KeyStoreError::Unwrap { .. })
    ));
}

#[test]
fn the_rotating_handle_keeps_its_keys_once_the_old_kek_is_gone() {
    let backend = Embedded::new();
    let source = testkit::keyring_file(&backend);
    let store = open(&backend);
    let entity = Entity::device("ZAP-ROT", 3);
    let key = store.key_for(&entity).expect("key");
    store.sync().expect("sync");
    let mut keyring = Keyring::load(&source, false).expect("load").expect("ring");
    keyring.add_version().expect("add");
    assert_eq!(store.rewrap().expect("rewrap"), 1);
    keyring.destroy(&[1]).expect("destroy v1");
    store.write_keyring().reload().expect("reload");
    let again = store.existing_key(&entity).expect("lookup").expect("kept");
    assert_eq!(again.expose(), key.expose());
    assert_eq!(store.key_for(&entity).expect("key").expose(), key.expose());
}

#[test]
fn opening_an_existing_store_refuses_a_missing_one_and_creates_nothing() {
    let backend = Embedded::new();
    let kek_path = backend.scratch().join("kek-never-made");
    let kek = KekSource::File(kek_path.clone());
    let error = EmbeddedKeyStore::open_existing(&backend.keys_dir(), &kek)
        .map(|_| ())
        .expect_err("no store yet");
    assert!(
        matches!(error, KeyStoreError::StoreMissing { .. }),
        "{error}"
    );
    assert!(!backend.keys_dir().exists(), "a directory was created");
    assert!(!kek_path.exists(), "a KEK was created");
    drop(EmbeddedKeyStore::open(&backend.keys_dir(), &kek).expect("create"));
    EmbeddedKeyStore::open_existing(&backend.keys_dir(), &kek).expect("exists now");
}
