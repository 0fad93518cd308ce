//! The parallel stage: decode, fetch keys and transform one batch.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use delink_datadir::{QuarantineRows, QuarantineSealer, date_partition, day_key, utc_day};
use delink_decode::{DecodeLimits, decode};
use delink_keystore::{EntityKey, KeyStore, Result};
use delink_model::{Dataset, Field, LaneId, Rejection, RejectionReason, SegmentId};
use delink_policy::{Plan, Withheld};
use delink_telemetry::LogLimit;
use delink_transform::DatasetBatchBuilder;

use crate::dispatch::Work;
use crate::keys::{KeyCache, KeyLookups};

/// Everything a worker needs, shared by all workers of a run.
pub(crate) struct WorkerContext {
    pub(crate) plan: Arc<Plan>,
    pub(crate) history_schema: SchemaRef,
    pub(crate) devices_schema: SchemaRef,
    pub(crate) store: Arc<dyn KeyStore>,
    pub(crate) metrics: Arc<delink_telemetry::Metrics>,
    pub(crate) limits: DecodeLimits,
    pub(crate) history_key: EntityKey,
    pub(crate) devices_key: EntityKey,
    pub(crate) quarantine: QuarantineKeys,
    /// Keys the in-memory replay digests; random per run, never stored.
    pub(crate) replay_key: EntityKey,
    /// The entity keys the workers fetched, shared by all of them.
    pub(crate) keys: KeyCache,
}

/// Rows of one dataset and UTC day from one batch.
pub(crate) struct PartitionRows {
    pub(crate) dataset: Dataset,
    pub(crate) day: i32,
    pub(crate) batch: RecordBatch,
    /// For each row, the index of its observation in `ProcessedBatch::digests`.
    pub(crate) observations: Vec<u32>,
}

/// The quarantine sealers of the days seen so far, shared by the workers.
#[derive(Default)]
pub(crate) struct QuarantineKeys {
    by_day: Mutex<HashMap<i32, Arc<QuarantineSealer>>>,
}

impl QuarantineKeys {
    /// Returns the sealer of a UTC day, creating the day's key when it is new.
    fn sealer(&self, store: &dyn KeyStore, day: i32) -> Result<Arc<QuarantineSealer>> {
        let mut by_day = self.by_day.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(sealer) = by_day.get(&day) {
            return Ok(Arc::clone(sealer));
        }
        let partition = date_partition(day);
        let date = partition.trim_start_matches("date=");
        let sealer = Arc::new(QuarantineSealer {
            key: store.key_for(&day_key(date))?,
        });
        by_day.insert(day, Arc::clone(&sealer));
        Ok(sealer)
    }
}

/// What one batch turned into, handed back to the ordered stage.
pub(crate) struct ProcessedBatch {
    pub(crate) lane: LaneId,
    pub(crate) sequence: u64,
    pub(crate) segment: SegmentId,
    pub(crate) closes_segment: bool,
    pub(crate) end_position: u64,
    /// Only the replay digests count: the records were published before.
    pub(crate) already_published: bool,
    pub(crate) resumable: bool,
    pub(crate) closes_lane: bool,
    pub(crate) discards_segment: bool,
    pub(crate) quarantine_day: i32,
    /// One replay digest per valid observation, in input order.
    pub(crate) digests: Vec<u128>,
    pub(crate) partitions: Vec<PartitionRows>,
    pub(crate) quarantine: Option<RecordBatch>,
    pub(crate) records: u64,
    pub(crate) input_bytes: u64,
    pub(crate) blank_lines: u64,
    pub(crate) rejected: BTreeMap<RejectionReason, u64>,
    pub(crate) unknown_fields: HashMap<String, u64>,
    /// Kept values left out for being outside their domain: (dataset, field, reason, count).
    pub(crate) withheld: Vec<(Dataset, Field, Withheld, u64)>,
}

struct DayRows<'p> {
    history: DatasetBatchBuilder<'p>,
    history_observations: Vec<u32>,
    devices: DatasetBatchBuilder<'p>,
    devices_observations: Vec<u32>,
}

/// Decodes, keys and transforms one batch, and hands back its byte buffer for reuse.
/// Fails only when the key store does.
pub(crate) fn process(
    context: &WorkerContext,
    mut work: Work,
) -> (Result<ProcessedBatch>, Vec<u8>) {
    let store = context.store.as_ref();
    if !work.batch.records.is_empty() {
        let records = work.batch.records.len() as f64;
        context.metrics.batch_records.observe(records);
    }
    let processed = context
        .keys
        .revalidate(store, &context.metrics)
        .and_then(|()| {
            let mut lookups = context.keys.lookups(store, &context.metrics);
            let processed = transform_batch(context, &mut lookups, &work);
            lookups.finish();
            processed
        });
    (processed, std::mem::take(&mut work.batch.data))
}

fn transform_batch(
    context: &WorkerContext,
    lookups: &mut KeyLookups<'_>,
    work: &Work,
) -> Result<ProcessedBatch> {
    let batch = &work.batch;
    let plan = context.plan.as_ref();
    let mut days: BTreeMap<i32, DayRows<'_>> = BTreeMap::new();
    let mut digests = Vec::with_capacity(batch.records.len());
    let mut rejected = BTreeMap::new();
    let mut unknown_fields = HashMap::new();
    let stem = batch.segment.stem();
    let mut quarantine = QuarantineRows::new(&stem);
    let mut sealer = None;
    for record in &batch.records {
        let bytes = batch.bytes(record);
        let verdict = if record.full_len > context.limits.max_record_bytes as u64 {
            Err(Rejection::new(RejectionReason::TooLarge))
        } else {
            decode(bytes, &context.limits)
        };
        let decoded = match verdict {
            Ok(decoded) => decoded,
            Err(_) if batch.already_published => continue,
            Err(rejection) => {
                *rejected.entry(rejection.reason).or_insert(0) += 1;
                warn_rejected(&batch.segment.source, record.position, &rejection);
                let sealer = match &sealer {
                    Some(sealer) => sealer,
                    None => sealer.insert(
                        context
                            .quarantine
                            .sealer(context.store.as_ref(), work.quarantine_day)?,
                    ),
                };
                sealer.push(&mut quarantine, record, bytes, rejection)?;
                continue;
            }
        };
        if batch.already_published {
            digests.push(replay_digest(
                &context.replay_key,
                &decoded.observation.observation_id,
            ));
            continue;
        }
        for name in decoded.unknown_fields {
            *unknown_fields.entry(name).or_insert(0) += 1;
        }
        let observation = &decoded.observation;
        let keys = lookups.fetch(observation)?;
        let component_keys = keys.component_keys();
        let index = digests.len() as u32;
        digests.push(replay_digest(
            &context.replay_key,
            &observation.observation_id,
        ));
        let day = days
            .entry(utc_day(observation.observed_at_us))
            .or_insert_with(|| DayRows {
                history: DatasetBatchBuilder::new(&plan.history, context.history_schema.clone()),
                history_observations: Vec::new(),
                devices: DatasetBatchBuilder::new(&plan.devices, context.devices_schema.clone()),
                devices_observations: Vec::new(),
            });
        day.devices.append(
            observation,
            &keys.lend(&component_keys, &context.devices_key),
        );
        day.devices_observations.push(index);
        if keys.has_subject() {
            day.history.append(
                observation,
                &keys.lend(&component_keys, &context.history_key),
            );
            day.history_observations.push(index);
        }
    }
    let mut partitions = Vec::with_capacity(days.len() * 2);
    let mut withheld = Vec::new();
    for (day, mut rows) in days {
        for (dataset, builder) in [
            (Dataset::History, &mut rows.history),
            (Dataset::Devices, &mut rows.devices),
        ] {
            let taken = builder.take_withheld().into_iter();
            withheld.extend(taken.map(|(field, reason, count)| (dataset, field, reason, count)));
        }
        if !rows.history.is_empty() {
            partitions.push(PartitionRows {
                dataset: Dataset::History,
                day,
                batch: rows.history.finish(),
                observations: rows.history_observations,
            });
        }
        partitions.push(PartitionRows {
            dataset: Dataset::Devices,
            day,
            batch: rows.devices.finish(),
            observations: rows.devices_observations,
        });
    }
    Ok(ProcessedBatch {
        lane: batch.lane,
        sequence: work.sequence,
        segment: batch.segment.clone(),
        closes_segment: batch.closes_segment,
        end_position: batch.end_position,
        already_published: batch.already_published,
        resumable: batch.resumable,
        closes_lane: batch.closes_lane,
        discards_segment: batch.discards_segment,
        quarantine_day: work.quarantine_day,
        digests,
        partitions,
        quarantine: quarantine.finish(),
        records: batch.records.len() as u64,
        input_bytes: batch.input_bytes,
        blank_lines: batch.blank_lines,
        rejected,
        unknown_fields,
        withheld,
    })
}

/// Per-record warnings: a burst of 20 per 10 s across all workers, then a count.
static REJECTION_WARNINGS: LogLimit = LogLimit::new(20, Duration::from_secs(10));

/// Logs a quarantined record by where it is and why, never by what it holds.
fn warn_rejected(source: &str, position: u64, rejection: &Rejection) {
    if let Some(admitted) = REJECTION_WARNINGS.admit() {
        tracing::warn!(
            source,
            position,
            reason = rejection.reason.as_str(),
            field = rejection.field.unwrap_or("-"),
            suppressed_before = admitted.suppressed_before,
            "record quarantined"
        );
    }
}

/// Digests an observation id for replay detection (128 bits: collisions are negligible).
fn replay_digest(key: &EntityKey, observation_id: &str) -> u128 {
    let digest = blake3::keyed_hash(key.expose(), observation_id.as_bytes());
    let mut first = [0u8; 16];
    first.copy_from_slice(&digest.as_bytes()[..16]);
    u128::from_le_bytes(first)
}
