use super::*;
use crate::testkit::{self, Backend, TEST_KEK};

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

#[test]
fn erasure_overwrites_the_record_in_place() {
    let backend = Embedded::new();
    let store = open(&backend);
    let subject = Entity::new(Scope::Subject, "account:gone");
    store.key_for(&subject).expect("key");
    store.sync().expect("sync");
    let tag = lookup_tag(&store.index_key, &subject);
    let before = log_bytes(&backend);
    let at = before
        .windows(32)
        .position(|window| window == tag)
        .expect("the record is there");
    let wrapped = before[at + 40..at + 40 + WRAPPED_LEN].to_vec();
    assert!(store.erase(&subject).expect("erase"));
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
fn a_torn_tail_is_cut_and_tampering_is_detected() {
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
    {
        let store = open(&backend);
        let reloaded = store.existing_key(&entity).expect("lookup");
        assert_eq!(reloaded.expect("kept").expose(), key.expose());
    }
    let mut bytes = fs::read(&log).expect("read");
    assert_eq!((bytes.len() as u64 - HEADER_LEN) % RECORD_LEN as u64, 0);
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    fs::write(&log, bytes).expect("tamper");
    let env = KekSource::Env(TEST_KEK.to_owned());
    assert!(matches!(
        EmbeddedKeyStore::open(&backend.keys_dir(), &env),
        Err(KeyStoreError::Unwrap { .. })
    ));
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
    let tag = lookup_tag(&store.index_key, &entity);
    let slot = *store.read_keys().get(&tag).expect("indexed");
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
