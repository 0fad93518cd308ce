//! Criterion benches of the pure stages: decode, pseudonymise/transform, Parquet encode;
//! and of key lookup: the pipeline's key cache, and the embedded store behind it.
//!
//! `cargo bench --bench pipeline`; data in `benches/data/` (the spec's example and a
//! worst case near the size cap) and a synthetic mix from `delink-synth`.

// `criterion_group!` generates an undocumented public function.
#![allow(missing_docs)]

use std::hint::black_box;
use std::sync::Arc;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use delink_decode::{DecodeLimits, decode};
use delink_keystore::{EmbeddedKeyStore, Entity, KekSource, KeyStore};
use delink_model::Dataset;
use delink_model::Scope;
use delink_pipeline::bench_support::KeyLookups;
use delink_synth::{Generator, SynthConfig};
use delink_transform::{DatasetBatchBuilder, ObservationKeys, arrow_schema, pseudonym_hex};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

const SPEC_EXAMPLE: &[u8] = include_bytes!("data/spec-example.json");
const WORST_CASE: &[u8] = include_bytes!("data/worst-case.json");
const POLICY: &str = include_str!("../config/policy.toml");

/// One key for every entity: the benches measure work, not key lookup.
const KEY: [u8; 32] = [7; 32];

fn same_key_everywhere<'k>(component_keys: &'k [&'k [u8; 32]]) -> ObservationKeys<'k> {
    ObservationKeys {
        subject: Some(&KEY),
        installation: Some(&KEY),
        device: &KEY,
        components: component_keys,
        dataset: &KEY,
    }
}

fn synthetic_lines(count: u64) -> Vec<Vec<u8>> {
    Generator::new(SynthConfig::new(count, 42))
        .map(|generated| generated.line)
        .collect()
}

fn bench_decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode");
    let limits = DecodeLimits::default();
    for (name, bytes) in [("spec_example", SPEC_EXAMPLE), ("worst_case", WORST_CASE)] {
        group.throughput(Throughput::Bytes(bytes.len() as u64));
        group.bench_function(name, |b| {
            b.iter(|| black_box(decode(black_box(bytes), &limits)).is_ok())
        });
    }
    let lines = synthetic_lines(1000);
    let bytes: u64 = lines.iter().map(|l| l.len() as u64).sum();
    group.throughput(Throughput::Bytes(bytes));
    group.bench_function("synthetic_mix_1000", |b| {
        b.iter(|| {
            lines
                .iter()
                .filter(|line| decode(line, &limits).is_ok())
                .count()
        })
    });
    group.finish();
}

fn bench_transform(c: &mut Criterion) {
    let plan = delink_policy::compile(POLICY).expect("shipped policy");
    let mut group = c.benchmark_group("pseudonymise");
    group.throughput(Throughput::Elements(1));
    group.bench_function("one_identifier", |b| {
        b.iter(|| {
            pseudonym_hex(
                &KEY,
                "delink pseudonym v1 history/user.rfid",
                black_box("04a224b2c13f80"),
            )
        })
    });
    let lines = synthetic_lines(4096);
    let limits = DecodeLimits::default();
    let decoded: Vec<_> = lines
        .iter()
        .filter_map(|line| decode(line, &limits).ok())
        .collect();
    let component_keys = [&KEY; 4];
    let keys = same_key_everywhere(&component_keys);
    group.throughput(Throughput::Elements(decoded.len() as u64));
    for dataset in Dataset::ALL {
        let dataset_plan = plan.dataset(dataset);
        let schema = arrow_schema(dataset_plan);
        group.bench_function(format!("{}_rows_4096", dataset.as_str()), |b| {
            b.iter_batched(
                || DatasetBatchBuilder::new(dataset_plan, schema.clone()),
                |mut builder| {
                    for item in &decoded {
                        builder.append(&item.observation, &keys);
                    }
                    builder.finish()
                },
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

fn bench_parquet(c: &mut Criterion) {
    let plan = delink_policy::compile(POLICY).expect("shipped policy");
    let lines = synthetic_lines(16_384);
    let limits = DecodeLimits::default();
    let component_keys = [&KEY; 4];
    let keys = same_key_everywhere(&component_keys);
    let mut group = c.benchmark_group("parquet_encode");
    for dataset in Dataset::ALL {
        let dataset_plan = plan.dataset(dataset);
        let mut builder = DatasetBatchBuilder::new(dataset_plan, arrow_schema(dataset_plan));
        for line in &lines {
            if let Ok(decoded) = decode(line, &limits) {
                builder.append(&decoded.observation, &keys);
            }
        }
        let batch = builder.finish();
        let properties = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::try_new(1).expect("level")))
            .build();
        group.throughput(Throughput::Elements(batch.num_rows() as u64));
        group.bench_function(format!("{}_zstd1_16k_rows", dataset.as_str()), |b| {
            b.iter(|| {
                let mut writer =
                    ArrowWriter::try_new(Vec::new(), batch.schema(), Some(properties.clone()))
                        .expect("writer");
                writer.write(&batch).expect("write");
                writer.into_inner().expect("close").len()
            })
        });
    }
    group.finish();
}

/// A KEK for the bench stores only.
const BENCH_KEK: &str = "1:000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

fn bench_keys(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let kek = KekSource::Env(BENCH_KEK.to_owned());
    let store: Arc<dyn KeyStore> =
        Arc::new(EmbeddedKeyStore::open(&dir.path().join("keys"), &kek).expect("store"));
    let lines = synthetic_lines(4096);
    let limits = DecodeLimits::default();
    let decoded: Vec<_> = lines
        .iter()
        .filter_map(|line| decode(line, &limits).ok())
        .collect();
    let mut group = c.benchmark_group("keys");

    // Every key already cached: the hot path of a worker.
    let mut lookups = KeyLookups::new(Arc::clone(&store)).expect("lookups");
    lookups.revalidate().expect("revalidate");
    let observations: Vec<_> = decoded.iter().map(|item| &item.observation).collect();
    lookups
        .fetch_all(observations.iter().copied())
        .expect("warm up");
    group.throughput(Throughput::Elements(observations.len() as u64));
    group.bench_function("cache_hit_observations_4096", |b| {
        b.iter(|| {
            lookups
                .fetch_all(observations.iter().copied())
                .expect("fetch")
        })
    });

    // A cache miss on a key the store already holds.
    let entity = Entity::new(Scope::Subject, "account:bench");
    store.key_for(&entity).expect("create");
    group.throughput(Throughput::Elements(1));
    group.bench_function("embedded_store_key_for_existing", |b| {
        b.iter(|| store.key_for(black_box(&entity)).expect("key_for"))
    });
    group.finish();
}

criterion_group!(
    benches,
    bench_decode,
    bench_transform,
    bench_parquet,
    bench_keys
);
criterion_main!(benches);
