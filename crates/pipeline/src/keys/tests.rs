use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use delink_keystore::{EmbeddedKeyStore, JournalEvent, KekSource, StorePosition};

use super::*;

const TEST_KEK: &str = "1:000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
/// Long enough that no test sees a second refresh unless it asks for one.
const NEVER: Duration = Duration::from_secs(3600);

/// An embedded store that counts the `key_for` calls reaching it.
#[derive(Debug)]
struct CountingStore {
    inner: EmbeddedKeyStore,
    key_for_calls: AtomicU64,
}

impl CountingStore {
    fn calls(&self) -> u64 {
        self.key_for_calls.load(Ordering::SeqCst)
    }
}

impl KeyStore for CountingStore {
    fn key_for(&self, entity: &Entity<'_>) -> Result<EntityKey> {
        self.key_for_calls.fetch_add(1, Ordering::SeqCst);
        self.inner.key_for(entity)
    }
    fn existing_key(&self, entity: &Entity<'_>) -> Result<Option<EntityKey>> {
        self.inner.existing_key(entity)
    }
    fn sync(&self) -> Result<()> {
        self.inner.sync()
    }
    fn erase(&self, entity: &Entity<'_>) -> Result<u64> {
        self.inner.erase(entity)
    }
    fn position(&self) -> Result<StorePosition> {
        self.inner.position()
    }
    fn refresh(&self) -> Result<u64> {
        self.inner.refresh()
    }
    fn generation(&self) -> u64 {
        self.inner.generation()
    }
    fn rewrap(&self) -> Result<u64> {
        self.inner.rewrap()
    }
    fn keys_per_kek_version(&self) -> Result<BTreeMap<u32, u64>> {
        self.inner.keys_per_kek_version()
    }
    fn kek_version(&self) -> u32 {
        self.inner.kek_version()
    }
    fn erase_epochs_before(&self, scope: Scope, before_epoch: u32) -> Result<u64> {
        self.inner.erase_epochs_before(scope, before_epoch)
    }
    fn append_journal(&self, event: &JournalEvent) -> Result<()> {
        self.inner.append_journal(event)
    }
    fn journal(&self) -> Result<Vec<JournalEvent>> {
        self.inner.journal()
    }
    fn len(&self) -> Result<u64> {
        self.inner.len()
    }
}

struct Fixture {
    dir: tempfile::TempDir,
    store: CountingStore,
    metrics: Metrics,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = CountingStore {
            inner: EmbeddedKeyStore::open(&dir.path().join("keys"), &kek()).expect("store"),
            key_for_calls: AtomicU64::new(0),
        };
        Fixture {
            dir,
            store,
            metrics: Metrics::new().expect("metrics"),
        }
    }

    /// Opens another handle on the store, as `delink erase` in another process would.
    fn other_handle(&self) -> EmbeddedKeyStore {
        EmbeddedKeyStore::open(&self.dir.path().join("keys"), &kek()).expect("store")
    }

    fn key(&self, cache: &KeyCache, wanted: Wanted<'_>) -> EntityKey {
        let mut lookups = cache.lookups(&self.store, &self.metrics);
        let key = lookups.key(wanted).expect("key");
        lookups.finish();
        key
    }

    /// Reads a counter off the rendered metrics; 0 when it has no sample yet.
    fn counter(&self, series: &str) -> u64 {
        self.metrics
            .render()
            .lines()
            .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
            .map_or(0, |value| value.trim().parse().expect("a counter value"))
    }
}

fn kek() -> KekSource {
    KekSource::Env(TEST_KEK.to_owned())
}

fn device(serial: &str) -> Wanted<'_> {
    Wanted::Device { serial, epoch: 0 }
}

const KEY_FOR: &str = "delink_keystore_operations_total{operation=\"key_for\"}";
const REFRESH: &str = "delink_keystore_operations_total{operation=\"refresh\"}";
const ERASURES_APPLIED: &str = "delink_erasures_applied_total";

#[test]
fn a_second_lookup_is_a_hit_that_asks_the_store_nothing() {
    let fixture = Fixture::new();
    let cache = KeyCache::new(100, 0, NEVER);
    cache
        .revalidate(&fixture.store, &fixture.metrics)
        .expect("revalidate");
    let first = fixture.key(&cache, Wanted::Installation("site-1"));
    let second = fixture.key(&cache, Wanted::Installation("site-1"));
    assert_eq!(first.expose(), second.expose());
    assert_eq!(fixture.store.calls(), 1, "only the miss reached the store");
    assert_eq!(fixture.counter(KEY_FOR), 1, "misses are counted");
    assert_eq!(cache.len(), 1);
}

#[test]
fn every_worker_thread_hits_what_another_fetched() {
    let fixture = Fixture::new();
    let cache = KeyCache::new(100, 0, NEVER);
    cache
        .revalidate(&fixture.store, &fixture.metrics)
        .expect("revalidate");
    let serials: Vec<String> = (0..50).map(|n| format!("ZAP{n:06}")).collect();
    let fetched: Vec<EntityKey> = serials
        .iter()
        .map(|serial| fixture.key(&cache, device(serial)))
        .collect();
    std::thread::scope(|scope| {
        for _ in 0..2 {
            scope.spawn(|| {
                cache
                    .revalidate(&fixture.store, &fixture.metrics)
                    .expect("revalidate");
                for (serial, expected) in serials.iter().zip(&fetched) {
                    let key = fixture.key(&cache, device(serial));
                    assert_eq!(key.expose(), expected.expose());
                }
            });
        }
    });
    assert_eq!(fixture.store.calls(), 50, "the other threads only hit");
}

#[test]
fn threads_missing_the_same_key_at_once_get_the_same_key() {
    let fixture = Fixture::new();
    let cache = KeyCache::new(1000, 0, NEVER);
    cache
        .revalidate(&fixture.store, &fixture.metrics)
        .expect("revalidate");
    let serials: Vec<String> = (0..200).map(|n| format!("RACE{n:04}")).collect();
    let seen: Vec<Vec<[u8; 32]>> = std::thread::scope(|scope| {
        let tasks: Vec<_> = (0..4)
            .map(|_| {
                scope.spawn(|| {
                    serials
                        .iter()
                        .map(|serial| *fixture.key(&cache, device(serial)).expose())
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        tasks
            .into_iter()
            .map(|task| task.join().expect("thread"))
            .collect()
    });
    for (index, serial) in serials.iter().enumerate() {
        let stored = fixture
            .store
            .existing_key(&Entity::device(serial, 0))
            .expect("lookup")
            .expect("stored");
        for thread in &seen {
            assert_eq!(&thread[index], stored.expose());
        }
    }
}

#[test]
fn a_new_generation_empties_the_cache_and_counts_one_erasure() {
    let fixture = Fixture::new();
    let cache = KeyCache::new(100, 0, Duration::ZERO);
    cache
        .revalidate(&fixture.store, &fixture.metrics)
        .expect("revalidate");
    let subject = Wanted::Subject(SubjectId::Account("acct-erased"));
    let old = fixture.key(&cache, subject);
    fixture.key(&cache, Wanted::Installation("site-kept"));
    assert_eq!(cache.len(), 2);

    let erased = fixture
        .other_handle()
        .erase(&Entity::new(Scope::Subject, "account:acct-erased"))
        .expect("erase");
    assert_eq!(erased, 1);
    std::thread::scope(|scope| {
        for _ in 0..3 {
            scope.spawn(|| {
                cache
                    .revalidate(&fixture.store, &fixture.metrics)
                    .expect("revalidate")
            });
        }
    });
    assert_eq!(cache.len(), 0, "nothing from before the erasure is left");
    assert_eq!(
        fixture.counter(ERASURES_APPLIED),
        1,
        "once, not once per thread"
    );
    let fresh = fixture.key(&cache, subject);
    assert_ne!(
        fresh.expose(),
        old.expose(),
        "a fresh key after the erasure"
    );

    cache
        .revalidate(&fixture.store, &fixture.metrics)
        .expect("revalidate");
    assert_eq!(cache.len(), 1, "an unchanged generation keeps the cache");
    assert_eq!(fixture.counter(ERASURES_APPLIED), 1);
}

#[test]
fn a_key_fetched_before_an_erasure_is_not_cached_after_it() {
    let fixture = Fixture::new();
    let cache = KeyCache::new(100, 0, Duration::ZERO);
    cache
        .revalidate(&fixture.store, &fixture.metrics)
        .expect("revalidate");
    let entity = Entity::new(Scope::Subject, "account:slow-miss");
    let mut cache_key = Vec::new();
    Wanted::Subject(SubjectId::Account("slow-miss")).write_cache_key(&mut cache_key);
    // A worker misses and fetches the key from the store...
    let generation = cache.cached(&cache_key).expect_err("a miss");
    let fetched = fixture.store.key_for(&entity).expect("key");
    // ...while the key is erased and another worker's revalidation sees it.
    assert_eq!(fixture.other_handle().erase(&entity).expect("erase"), 1);
    cache
        .revalidate(&fixture.store, &fixture.metrics)
        .expect("revalidate");
    cache.remember(generation, &cache_key, &fetched);
    assert_eq!(
        cache.len(),
        0,
        "the stale key stays out of the new generation"
    );
}

#[test]
fn the_cache_never_holds_more_keys_than_its_bound() {
    let fixture = Fixture::new();
    let cache = KeyCache::new(3, 0, NEVER);
    cache
        .revalidate(&fixture.store, &fixture.metrics)
        .expect("revalidate");
    for n in 0..10 {
        let serial = format!("BOUND{n}");
        let key = fixture.key(&cache, device(&serial));
        assert!(cache.len() <= 3, "{} keys cached", cache.len());
        let stored = fixture
            .store
            .existing_key(&Entity::device(&serial, 0))
            .expect("lookup")
            .expect("stored");
        assert_eq!(key.expose(), stored.expose());
    }
    assert_eq!(fixture.store.calls(), 10);
}

#[test]
fn the_store_is_asked_for_erasures_once_per_interval_whatever_the_threads() {
    let fixture = Fixture::new();
    let cache = KeyCache::new(100, 0, NEVER);
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| {
                for _ in 0..5 {
                    cache
                        .revalidate(&fixture.store, &fixture.metrics)
                        .expect("revalidate");
                }
            });
        }
    });
    assert_eq!(fixture.counter(REFRESH), 1);
    let every_time = KeyCache::new(100, 0, Duration::ZERO);
    every_time
        .revalidate(&fixture.store, &fixture.metrics)
        .expect("revalidate");
    every_time
        .revalidate(&fixture.store, &fixture.metrics)
        .expect("revalidate");
    assert_eq!(fixture.counter(REFRESH), 3);
}

#[test]
fn cache_keys_tell_scopes_kinds_and_epochs_apart() {
    let encoded = |wanted: Wanted<'_>| {
        let mut buffer = Vec::new();
        wanted.write_cache_key(&mut buffer);
        buffer
    };
    let account = encoded(Wanted::Subject(SubjectId::Account("x1")));
    assert_eq!(
        &account[6..],
        subject_entity(SubjectId::Account("x1")).as_bytes(),
        "a subject is named as the store names it"
    );
    let keys = [
        account,
        encoded(Wanted::Subject(SubjectId::Rfid("x1"))),
        encoded(Wanted::Installation("x1")),
        encoded(Wanted::Device {
            serial: "x1",
            epoch: 0,
        }),
        encoded(Wanted::Device {
            serial: "x1",
            epoch: 1,
        }),
        encoded(Wanted::Component {
            charger: "x",
            serial: "1",
            epoch: 1,
        }),
        encoded(Wanted::Component {
            charger: "",
            serial: "x1",
            epoch: 1,
        }),
        encoded(Wanted::Component {
            charger: "z9",
            serial: "x1",
            epoch: 1,
        }),
    ];
    for (index, key) in keys.iter().enumerate() {
        for other in &keys[index + 1..] {
            assert_ne!(key, other);
        }
    }
}
