use super::*;

const KEK: &str = "1:000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
const OTHER_KEK: &str = "1:ff0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

fn open(dir: &Path, kek: &str) -> Result<EmbeddedKeyStore> {
    EmbeddedKeyStore::open(dir, &KekSource::Env(kek.to_owned()))
}

#[test]
fn keys_are_stable_per_entity_and_distinct_across_entities_and_scopes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path(), KEK).expect("open");
    let first = store.key_for(Scope::Subject, "acct-1").expect("key");
    let again = store.key_for(Scope::Subject, "acct-1").expect("key");
    let other = store.key_for(Scope::Subject, "acct-2").expect("key");
    let other_scope = store.key_for(Scope::Device, "acct-1").expect("key");
    assert_eq!(first.expose(), again.expose());
    assert_ne!(first.expose(), other.expose());
    assert_ne!(first.expose(), other_scope.expose());
    assert_eq!(store.len(), 3);
}

#[test]
fn synced_keys_survive_reopen_and_unsynced_keys_do_not() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (kept, lost) = {
        let store = open(dir.path(), KEK).expect("open");
        let kept = store.key_for(Scope::Device, "ZAP1").expect("key");
        store.sync().expect("sync");
        let lost = store.key_for(Scope::Device, "ZAP2").expect("key");
        (kept, lost)
    };
    let store = open(dir.path(), KEK).expect("reopen");
    let reloaded = store
        .existing_key(Scope::Device, "ZAP1")
        .expect("lookup")
        .expect("kept");
    assert_eq!(reloaded.expose(), kept.expose());
    let fresh = store.key_for(Scope::Device, "ZAP2").expect("key");
    assert_ne!(fresh.expose(), lost.expose());
}

#[test]
fn the_store_never_holds_the_raw_identifier() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path(), KEK).expect("open");
    store
        .key_for(Scope::Subject, "kari.nordmann@example.no")
        .expect("key");
    store.sync().expect("sync");
    let bytes = fs::read(dir.path().join(LOG_FILE)).expect("read");
    assert!(!bytes.windows(4).any(|w| w == b"kari"));
}

#[test]
fn wrong_kek_missing_kek_and_second_process_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let store = open(dir.path(), KEK).expect("open");
        store.key_for(Scope::Subject, "a").expect("key");
        let second = open(dir.path(), KEK).expect_err("locked");
        assert!(matches!(second, KeyStoreError::Locked { .. }), "{second}");
        store.sync().expect("sync");
    }
    let wrong = open(dir.path(), OTHER_KEK).expect_err("wrong kek");
    assert!(matches!(wrong, KeyStoreError::Unwrap { .. }), "{wrong}");
    let missing = EmbeddedKeyStore::open(dir.path(), &KekSource::File(dir.path().join("absent")))
        .expect_err("missing kek");
    assert!(
        matches!(missing, KeyStoreError::KekMissing { .. }),
        "{missing}"
    );
}

#[test]
fn a_torn_tail_is_cut_and_tampering_is_detected() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join(LOG_FILE);
    let key = {
        let store = open(dir.path(), KEK).expect("open");
        let key = store.key_for(Scope::Installation, "site").expect("key");
        store.sync().expect("sync");
        key
    };
    let mut file = OpenOptions::new().append(true).open(&log).expect("log");
    file.write_all(&[7u8; 50]).expect("torn write");
    drop(file);
    {
        let store = open(dir.path(), KEK).expect("reopen after torn write");
        let reloaded = store
            .existing_key(Scope::Installation, "site")
            .expect("lookup");
        assert_eq!(reloaded.expect("kept").expose(), key.expose());
    }
    let mut bytes = fs::read(&log).expect("read");
    assert_eq!((bytes.len() - HEADER_LEN) % RECORD_LEN, 0);
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    fs::write(&log, bytes).expect("tamper");
    assert!(matches!(
        open(dir.path(), KEK),
        Err(KeyStoreError::Unwrap { .. })
    ));
}
