//! The run loop: threads, channels and the periodic duties of a worker.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, channel, sync_channel};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use delink_anonymise::{MICROAGGREGATED_METADATA, published_schema, steps_metadata};
use delink_config::Config;
use delink_datadir::{
    DataLayout, OutputStore, QUARANTINE, WorkerSpace, purge_quarantine, quarantine_schema, utc_day,
};
use delink_decode::DecodeLimits;
use delink_keystore::{EmbeddedKeyStore, Entity, EntityKey, KekSource, KeyStore, KeyStoreError};
use delink_keystore_postgres::PostgresKeyStore;
use delink_model::{Dataset, DeadLetters, PipelineStopped, SCHEMA_V1, Scope, Source};
use delink_policy::{DatasetPlan, Plan};
use delink_risk::RiskReport;
use delink_sink_parquet::{PartitionedWriter, WriterOptions};
use delink_sort::SORT_ORDER_METADATA;
use delink_source_ndjson::{NdjsonSource, SourceOptions};
use delink_telemetry::{Health, Metrics};
use delink_transform::{arrow_schema, distinct_valued_columns};

use crate::Progress;
use crate::dispatch::{Channels, Dispatch, Work};
use crate::fence::Fence;
use crate::in_flight::InFlight;
use crate::keys::{KeyCache, MAX_CACHED_KEYS};
use crate::lanes::{OrderedStage, Outputs};
use crate::provenance::PublishedOutput;
use crate::publisher::{Destination, publish_segments};
use crate::summary::RunSummary;
use crate::worker::{ProcessedBatch, QuarantineKeys, WorkerContext, process};

/// Opens the key store the configuration names; `access` says whether a missing one
/// is created (with its KEK) or refused.
pub fn open_key_store(config: &Config, access: StoreAccess) -> Result<Arc<dyn KeyStore>> {
    let kek = KekSource::from_env_or_file(config.kek_file());
    if config.kek_inside_data_dir() {
        if !config.kek_file().exists() {
            anyhow::bail!(
                "refusing to create the keyring at {} inside the data directory: every backup of the data \
                 would carry the KEK and undo erasures; set keystore.kek_file to a path outside {} (or DELINK_KEK)",
                config.kek_file().display(),
                config.data_dir.display()
            );
        }
        tracing::warn!(
            keyring = %config.kek_file().display(),
            "THE KEYRING IS INSIDE THE DATA DIRECTORY: every backup of the data holds the KEK, so no erasure \
             is complete; move it out (keystore.kek_file or DELINK_KEK), then `delink keys rotate` and `keys retire`"
        );
    }
    let published = PublishedOutput::read(&OutputStore::for_config(config)?)?;
    // A data directory with output never gets a new store: it would re-key everything.
    let create = access == StoreAccess::CreateIfMissing && !published.exists();
    let store: Arc<dyn KeyStore> = match config.keystore.backend.as_str() {
        "postgres" => {
            let url = config
                .postgres_url()
                .context("keystore.postgres_url (or DELINK_POSTGRES_URL) is not set")?;
            let store = if create {
                PostgresKeyStore::open(&url, &kek)
            } else {
                PostgresKeyStore::open_existing(&url, &kek)
            };
            Arc::new(
                store
                    .map_err(|error| missing_with_output(error, &published))
                    .context("cannot open the PostgreSQL key store")?,
            )
        }
        _ => {
            let dir = DataLayout::new(&config.data_dir).keys();
            let store = if create {
                EmbeddedKeyStore::open(&dir, &kek)
            } else {
                EmbeddedKeyStore::open_existing(&dir, &kek)
            };
            Arc::new(
                store
                    .map_err(|error| missing_with_output(error, &published))
                    .context("cannot open the key store")?,
            )
        }
    };
    published
        .check(&*store)
        .context("the key store does not match the published output; nothing was changed")?;
    Ok(store)
}

/// Explains a missing store next to published output: restore it, never start afresh.
fn missing_with_output(error: KeyStoreError, published: &PublishedOutput) -> anyhow::Error {
    match error {
        KeyStoreError::StoreMissing { location } if published.exists() => anyhow::anyhow!(
            "no key store at {location}, but the data directory holds {} published files written with one; \
             restore the key store from backup (a new store would give every identifier new pseudonyms)",
            published.files
        ),
        other => other.into(),
    }
}

/// Whether opening a key store may create it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreAccess {
    /// `delink run` and `delink keys init`: a missing store is created (with its KEK).
    CreateIfMissing,
    /// Every other command: a missing store is an error, and nothing is created.
    Existing,
}

/// The version of the output columns' layout (`docs/schema.md`), in every file's metadata.
const OUTPUT_SCHEMA_VERSION: &str = "2";

/// How often progress is reported and the published watermark written.
const TICK: Duration = Duration::from_secs(1);

/// A configured pipeline over one data directory, holding its key store open
/// and a worker space of its own.
pub struct Pipeline {
    config: Config,
    plan: Arc<Plan>,
    store: Arc<dyn KeyStore>,
    metrics: Arc<Metrics>,
    layout: DataLayout,
    outputs: OutputStore,
    space: WorkerSpace,
    stop: Arc<AtomicBool>,
    health: Arc<Health>,
    dead_letters: Option<Arc<dyn DeadLetters>>,
}

impl Pipeline {
    /// Opens the key store of the data directory (fail closed on any doubt about it)
    /// and claims a worker space. Any number of pipelines may share a data directory.
    pub fn open(config: Config, plan: Plan, metrics: Arc<Metrics>) -> Result<Self> {
        let layout = DataLayout::new(&config.data_dir);
        std::fs::create_dir_all(layout.root()).with_context(|| {
            format!(
                "cannot create the data directory {}",
                layout.root().display()
            )
        })?;
        let store = open_key_store(&config, StoreAccess::CreateIfMissing)
            .context("nothing was processed")?;
        let outputs = OutputStore::for_config(&config)?;
        tracing::info!(outputs = %outputs.describe(""), "outputs are published here");
        let space = WorkerSpace::claim(&layout, &outputs)?;
        let health = Arc::new(Health::new());
        health.set_key_store_open(true);
        Ok(Pipeline {
            config,
            plan: Arc::new(plan),
            store,
            metrics,
            layout,
            outputs,
            space,
            stop: Arc::new(AtomicBool::new(false)),
            health,
            dead_letters: None,
        })
    }

    /// Copies every quarantined record to `destination` too (a dead-letter topic).
    pub fn with_dead_letters(mut self, destination: Arc<dyn DeadLetters>) -> Self {
        self.dead_letters = Some(destination);
        self
    }

    /// Returns what `/healthz` and `/readyz` report for this pipeline.
    pub fn health(&self) -> Arc<Health> {
        Arc::clone(&self.health)
    }

    /// Returns the flag that asks a running pipeline to stop: its source stops
    /// reading, and everything read so far is published before `run` returns.
    pub fn stop_flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.stop)
    }

    /// Builds the NDJSON source over `inputs` (`-` for stdin) with the configured batching.
    pub fn file_source(&self, inputs: Vec<PathBuf>) -> NdjsonSource {
        let input = &self.config.input;
        NdjsonSource::new(
            inputs,
            SourceOptions {
                batch_lines: input.batch_records,
                batch_bytes: input.batch_bytes,
                segment_lines: input.segment_records,
                keep_bytes: self.config.quarantine.keep_bytes,
                stream_segment_age: Duration::from_secs(input.stream_segment_age_secs),
            },
            Arc::clone(&self.stop),
        )
    }

    /// Runs `source` to its end (or until a stop is requested) and returns the summary.
    /// `on_progress` is called about once a second.
    pub fn run(
        &self,
        source: &mut dyn Source,
        on_progress: &mut dyn FnMut(&Progress),
    ) -> Result<RunSummary> {
        let started = Instant::now();
        let mut purged = self.housekeeping()?;
        if !source.reports_readiness() {
            self.health.set_source_ready(true);
        }
        let context = Arc::new(self.worker_context()?);
        let outputs = self.outputs(&context)?;
        let in_flight = Arc::new(InFlight::default());
        let fence = Arc::new(Fence::default());
        let workers = self.config.workers();
        let (publish_tx, publish_rx) = sync_channel(2);
        let (report_tx, report_rx) = channel();
        let (work_tx, work_rx) = sync_channel::<Work>(workers * 2);
        let (done_tx, done_rx) = sync_channel(workers * 2);
        // Input buffers go back to the reader, sparing an allocation and its page faults per batch.
        let (recycle_tx, recycle_rx) = sync_channel::<Vec<u8>>(workers * 4);
        let work_rx = Arc::new(Mutex::new(work_rx));
        let ordered = OrderedStage::new(
            outputs,
            self.config.input.replay_window,
            &self.metrics,
            publish_tx,
            self.dead_letters.as_deref(),
            self.store.as_ref(),
        );
        let consuming = AtomicBool::new(true);
        let outcome = std::thread::scope(|scope| {
            // Long-running workers reassess the outputs now and then, off the hot threads.
            let consuming = &consuming;
            std::thread::Builder::new()
                .name("delink-risk".to_owned())
                .spawn_scoped(scope, move || self.reassess_while(consuming))?;
            let _stop_reassessing = ClearOnDrop(consuming);
            let dispatch = Dispatch::new(
                Channels {
                    work: work_tx,
                    recycled: recycle_rx,
                    published: report_rx,
                },
                Arc::clone(&self.stop),
                Arc::clone(&in_flight),
                Arc::clone(&fence),
                self.layout.clone(),
                &self.outputs,
            )?;
            let in_flight = in_flight.as_ref();
            let fence = fence.as_ref();
            let publisher = std::thread::Builder::new()
                .name("delink-publisher".to_owned())
                .spawn_scoped(scope, move || {
                    let destination = Destination {
                        layout: &self.layout,
                        outputs: &self.outputs,
                        uploads: self.space.uploads(),
                        store: self.store.as_ref(),
                        dead_letters: self.dead_letters.as_deref(),
                        fence,
                    };
                    publish_segments(
                        publish_rx,
                        &destination,
                        &self.metrics,
                        in_flight,
                        report_tx,
                    )
                })?;
            let reader = std::thread::Builder::new()
                .name("delink-reader".to_owned())
                .spawn_scoped(scope, move || source.run(Box::new(dispatch)))?;
            for index in 0..workers {
                let work_rx = Arc::clone(&work_rx);
                let done_tx = done_tx.clone();
                let recycle_tx = recycle_tx.clone();
                let context = Arc::clone(&context);
                std::thread::Builder::new()
                    .name(format!("delink-worker-{index}"))
                    .spawn_scoped(scope, move || {
                        work(&work_rx, &done_tx, &recycle_tx, &context)
                    })?;
            }
            // Only the workers may hold these, so that a stage that stops unblocks the others.
            drop(work_rx);
            drop(done_tx);
            drop(recycle_tx);
            let ordered_result =
                self.consume(ordered, done_rx, in_flight, on_progress, &mut purged);
            let read = reader
                .join()
                .unwrap_or_else(|_| Err("the input reader panicked".into()));
            let published = publisher
                .join()
                .unwrap_or_else(|_| Err(anyhow!("the publisher panicked")));
            // A reader that found the pipeline stopped says nothing the other stages do not.
            let read = match read {
                Err(error) if error.downcast_ref::<PipelineStopped>().is_some() => Ok(()),
                other => other.map_err(|error| anyhow!(error).context("reading the input")),
            };
            // The publisher's own error explains an ordered stage that found it gone.
            published.and(ordered_result).and(read)
        });
        if let Err(error) = outcome {
            self.health.set_failed(Health::FAILED);
            return Err(error);
        }
        self.health.begin_shutdown();
        purged += self.housekeeping()?;
        self.space
            .publish_watermark(chrono::Utc::now().timestamp_micros())?;
        let mut summary = RunSummary::new(
            &self.metrics,
            started.elapsed(),
            purged,
            self.outputs.clone(),
        );
        summary.risk = self.assess_risk();
        Ok(summary)
    }

    /// Reads the key store's health at once, then reads it again and assesses
    /// the outputs every housekeeping interval while `consuming` holds.
    fn reassess_while(&self, consuming: &AtomicBool) {
        let interval = Duration::from_secs(self.config.pipeline.housekeeping_interval_secs.max(1));
        self.read_key_health();
        let mut last = Instant::now();
        while consuming.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(100));
            if last.elapsed() >= interval && consuming.load(Ordering::Relaxed) {
                last = Instant::now();
                self.read_key_health();
                self.assess_risk();
            }
        }
    }

    /// Sets the KEK's age and the incomplete erasures (what `delink keys status`
    /// shows) in the metrics; a failure to read them is logged, never fatal.
    fn read_key_health(&self) {
        let status = match delink_lifecycle::key_status(&self.config, self.store.as_ref()) {
            Ok(status) => status,
            Err(error) => {
                tracing::warn!(error = %format!("{error:#}"), "cannot read the key store's KEK and erasure status");
                return;
            }
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_secs() as i64);
        let kek_age = status
            .kek_versions
            .iter()
            .filter(|version| version.loaded && version.destroyed_at.is_none())
            .filter_map(|version| version.in_use_since.map(|since| (version.version, since)))
            .max()
            .map_or(-1, |(_, since)| (now - since).max(0));
        let incomplete: Vec<i64> = status
            .erasures
            .iter()
            .filter(|erasure| erasure.complete_since.is_none())
            .map(|erasure| erasure.at)
            .collect();
        let oldest_age = incomplete.iter().min().map_or(0, |at| (now - at).max(0));
        self.metrics
            .set_key_health(kek_age, incomplete.len(), oldest_age);
    }

    /// Plays the adversary's attacks on the data directory (`[risk]`), sets the
    /// figures in the metrics and warns when a limit is exceeded. An
    /// assessment that cannot be made is logged, never fatal: it writes nothing.
    fn assess_risk(&self) -> Option<RiskReport> {
        if !self.config.risk.assess_after_run {
            return None;
        }
        let report = match delink_risk::assess(&self.outputs, &self.config.risk) {
            Ok(report) => report,
            Err(error) => {
                tracing::warn!(error = %format!("{error:#}"), "the privacy-risk assessment failed");
                return None;
            }
        };
        let failures = report.failures();
        self.metrics.set_risk(
            &[
                ("unique_join", report.unique_join_rate),
                ("sequence_link", report.sequence_link_rate),
                ("counter_link", report.counter_link_rate),
                ("k_anonymous", report.k_anonymous_share),
            ],
            failures.len(),
        );
        if !failures.is_empty() {
            tracing::warn!(
                exceeded = %failures.join("; "),
                "the outputs exceed the privacy-risk limits; see `delink risk` and tighten the policy"
            );
        }
        Some(report)
    }

    /// Takes processed batches until every worker is done, ticking once a second
    /// and keeping house every `pipeline.housekeeping_interval_secs`.
    fn consume(
        &self,
        mut ordered: OrderedStage<'_>,
        done: Receiver<delink_keystore::Result<ProcessedBatch>>,
        in_flight: &InFlight,
        on_progress: &mut dyn FnMut(&Progress),
        purged: &mut u64,
    ) -> Result<()> {
        let housekeeping_interval =
            Duration::from_secs(self.config.pipeline.housekeeping_interval_secs);
        let mut last_tick = Instant::now();
        let mut last_housekeeping = Instant::now();
        loop {
            match done.recv_timeout(TICK) {
                Ok(processed) => ordered.accept(processed.context(
                    "key store failure; stopping before anything unprotected is written",
                )?)?,
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            if last_tick.elapsed() >= TICK {
                last_tick = Instant::now();
                if self.stop.load(Ordering::Relaxed) {
                    self.health.begin_shutdown();
                }
                on_progress(&Progress::of(&self.metrics));
                self.space.publish_watermark(
                    in_flight.watermark(chrono::Utc::now().timestamp_micros()),
                )?;
            }
            if last_housekeeping.elapsed() >= housekeeping_interval {
                last_housekeeping = Instant::now();
                *purged += self.housekeeping()?;
            }
        }
        if ordered.has_stragglers() {
            return Err(anyhow!("a worker stopped before finishing its batch"));
        }
        if ordered.has_open_segment() {
            return Err(anyhow!(
                "the input ended inside a segment that was never closed"
            ));
        }
        Ok(())
    }

    /// Purges what is past its retention: quarantine partitions with their day
    /// keys, and device keys of expired epochs. Returns the partitions purged.
    fn housekeeping(&self) -> Result<u64> {
        let today = utc_day(chrono::Utc::now().timestamp_micros());
        let purged = purge_quarantine(
            &self.outputs,
            self.store.as_ref(),
            today,
            self.config.quarantine.retention_days,
        )
        .context("purging the expired quarantine")?;
        delink_lifecycle::purge_device_epochs(&self.config, self.store.as_ref())
            .context("destroying the keys of expired device epochs")?;
        Ok(purged)
    }

    fn worker_context(&self) -> Result<WorkerContext> {
        let store = self.store.as_ref();
        Ok(WorkerContext {
            plan: Arc::clone(&self.plan),
            history_schema: arrow_schema(&self.plan.history),
            devices_schema: arrow_schema(&self.plan.devices),
            store: Arc::clone(&self.store),
            metrics: Arc::clone(&self.metrics),
            limits: DecodeLimits {
                max_record_bytes: self.config.input.max_record_bytes,
            },
            history_key: store.key_for(&Entity::new(Scope::Dataset, Dataset::History.as_str()))?,
            devices_key: store.key_for(&Entity::new(Scope::Dataset, Dataset::Devices.as_str()))?,
            quarantine: QuarantineKeys::default(),
            replay_key: EntityKey::random()?,
            keys: KeyCache::new(
                MAX_CACHED_KEYS,
                self.config.keystore.device_epoch_days,
                Duration::from_millis(self.config.keystore.refresh_interval_ms),
            ),
        })
    }

    fn outputs(&self, context: &WorkerContext) -> Result<Outputs> {
        let output = &self.config.output;
        // history/ and the quarantine hold personal data (pseudonymised or sealed):
        // owner-only; devices/ is de-linked and meant for analysts.
        // What every file of the run is written with; a file's source coordinates and
        // KEK version come at seal.
        let provenance = vec![
            (
                "delink.version".to_owned(),
                env!("CARGO_PKG_VERSION").to_owned(),
            ),
            ("delink.input_schema".to_owned(), SCHEMA_V1.to_owned()),
            (
                "delink.output_schema_version".to_owned(),
                OUTPUT_SCHEMA_VERSION.to_owned(),
            ),
            ("delink.policy_digest".to_owned(), self.plan.digest.clone()),
        ];
        let options = |dataset: &str, plain_columns: Vec<String>| WriterOptions {
            row_group_rows: output.row_group_rows,
            zstd_level: output.zstd_level,
            buffer_budget_bytes: output.buffer_budget_mib * 1024 * 1024,
            dataset: dataset.to_owned(),
            plain_columns,
            bloom_filter_columns: Vec::new(),
            page_index_columns: Vec::new(),
            owner_only: dataset != "devices",
            metadata: provenance.clone(),
        };
        let staging = self.space.staging();
        let plan = &self.plan;
        let sorted_options = |dataset: &DatasetPlan| {
            let key = dataset.sort_key();
            let mut options = options(dataset.dataset.as_str(), distinct_valued_columns(dataset));
            options.bloom_filter_columns = key.identity.iter().chain(&key.then).cloned().collect();
            options.page_index_columns = key.identity.iter().chain(&key.time).cloned().collect();
            options
                .metadata
                .push((SORT_ORDER_METADATA.to_owned(), delink_sort::describe(&key)));
            options
        };
        let anonymity = plan.devices.anonymity.clone();
        let devices_published = published_schema(&context.devices_schema, anonymity.as_ref());
        let mut devices_options = sorted_options(&plan.devices);
        if let Some(anonymity) = &anonymity {
            devices_options.metadata.extend(steps_metadata(anonymity));
            devices_options.metadata.push((
                MICROAGGREGATED_METADATA.to_owned(),
                anonymity.microaggregate.join(","),
            ));
        }
        Ok(Outputs {
            history: PartitionedWriter::create(
                Dataset::History.as_str(),
                &staging,
                context.history_schema.clone(),
                sorted_options(&plan.history),
            )?,
            devices: PartitionedWriter::create(
                Dataset::Devices.as_str(),
                &staging,
                devices_published.clone(),
                devices_options,
            )?,
            quarantine: PartitionedWriter::create(
                QUARANTINE,
                &staging,
                quarantine_schema(),
                options("quarantine", vec!["sealed_record".to_owned()]),
            )?,
            history_order: plan.history.sort_key(),
            devices_order: plan.devices.sort_key(),
            devices_anonymity: anonymity,
            devices_published,
            held_dir: staging,
        })
    }
}

/// Clears a flag when dropped, however the scope holding it ends.
struct ClearOnDrop<'a>(&'a AtomicBool);

impl Drop for ClearOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Relaxed);
    }
}

fn work(
    work_rx: &Mutex<Receiver<Work>>,
    done_tx: &SyncSender<delink_keystore::Result<ProcessedBatch>>,
    recycle_tx: &SyncSender<Vec<u8>>,
    context: &WorkerContext,
) {
    loop {
        let next = work_rx
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .recv();
        let Ok(work) = next else {
            return;
        };
        let (processed, buffer) = process(context, work);
        // A full recycling channel just means the buffer is freed instead.
        let _ = recycle_tx.try_send(buffer);
        if done_tx.send(processed).is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests;
