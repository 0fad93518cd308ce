//! The run loop: threads, ordering, replay detection and segment publication.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use arrow_array::BooleanArray;
use arrow_select::filter::filter_record_batch;
use delink_config::Config;
use delink_decode::DecodeLimits;
use delink_keystore::{EmbeddedKeyStore, Entity, EntityKey, KekSource, KeyStore};
use delink_keystore_postgres::PostgresKeyStore;
use delink_model::{Dataset, RawBatch, Scope};
use delink_policy::Plan;
use delink_sink_parquet::{PartitionedWriter, WriterOptions};
use delink_source_ndjson::{NdjsonSource, SourceOptions};
use delink_telemetry::Metrics;
use delink_transform::{arrow_schema, distinct_valued_columns};

use crate::Progress;
use crate::keys::KeyCache;
use crate::layout::{DataLayout, RunLock, date_partition, utc_day};
use crate::publisher::{SealedSegment, publish_segments};
use crate::quarantine::{QuarantineSealer, day_key, purge_quarantine, quarantine_schema};
use crate::replay::ReplayWindow;
use crate::summary::RunSummary;
use crate::worker::{ProcessedBatch, WorkerContext, process};

/// Opens the key store the configuration names, creating it (and its KEK) when new.
pub fn open_key_store(config: &Config) -> Result<Arc<dyn KeyStore>> {
    let kek = KekSource::from_env_or_file(config.kek_file());
    let store: Arc<dyn KeyStore> = match config.keystore.backend.as_str() {
        "postgres" => {
            let url = config
                .postgres_url()
                .context("keystore.postgres_url (or DELINK_POSTGRES_URL) is not set")?;
            Arc::new(
                PostgresKeyStore::open(&url, &kek)
                    .context("cannot open the PostgreSQL key store")?,
            )
        }
        _ => {
            let layout = DataLayout::new(&config.data_dir);
            Arc::new(
                EmbeddedKeyStore::open(&layout.keys(), &kek)
                    .context("cannot open the key store")?,
            )
        }
    };
    Ok(store)
}

/// How often the progress callback is called at most.
const PROGRESS_INTERVAL: Duration = Duration::from_secs(1);

/// A configured pipeline over one data directory, holding its key store open.
pub struct Pipeline {
    config: Config,
    plan: Arc<Plan>,
    store: Arc<dyn KeyStore>,
    metrics: Arc<Metrics>,
    layout: DataLayout,
    /// Holds the data directory's run lock: one `delink run` per data directory.
    _run_lock: RunLock,
}

impl Pipeline {
    /// Opens the key store of the data directory (fail closed on any doubt about it).
    pub fn open(config: Config, plan: Plan, metrics: Arc<Metrics>) -> Result<Self> {
        let layout = DataLayout::new(&config.data_dir);
        let run_lock = RunLock::take(&layout)?;
        let store = open_key_store(&config).context("nothing was processed")?;
        Ok(Pipeline {
            config,
            plan: Arc::new(plan),
            store,
            metrics,
            layout,
            _run_lock: run_lock,
        })
    }

    /// Processes every input in order and returns the summary. `on_progress` is called
    /// about once a second.
    pub fn run(
        &self,
        inputs: &[PathBuf],
        on_progress: &mut dyn FnMut(&Progress),
    ) -> Result<RunSummary> {
        let started = Instant::now();
        let today = utc_day(chrono::Utc::now().timestamp_micros());
        let today_name = date_partition(today);
        let context = Arc::new(self.worker_context(&today_name)?);
        let (publish_tx, publish_rx) = sync_channel(1);
        let mut ordered = OrderedStage::new(self, &context, today_name, publish_tx)?;
        let workers = self.config.workers();
        let (work_tx, work_rx) = sync_channel::<(u64, RawBatch)>(workers * 2);
        let (done_tx, done_rx) = sync_channel(workers * 2);
        // Input buffers go back to the reader, sparing an allocation and its page faults per batch.
        let (recycle_tx, recycle_rx) = sync_channel::<Vec<u8>>(workers * 4);
        let work_rx = Arc::new(Mutex::new(work_rx));

        let outcome = std::thread::scope(|scope| {
            let store = Arc::clone(&self.store);
            let metrics = Arc::clone(&self.metrics);
            let publisher = std::thread::Builder::new()
                .name("delink-publisher".to_owned())
                .spawn_scoped(scope, move || publish_segments(publish_rx, store, metrics))?;
            let reader = std::thread::Builder::new()
                .name("delink-reader".to_owned())
                .spawn_scoped(scope, || self.read_inputs(inputs, work_tx, recycle_rx))?;
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
            let ordered_result = ordered.consume(done_rx, on_progress);
            ordered.publisher = None;
            let reader_result = reader
                .join()
                .unwrap_or_else(|_| Err(anyhow!("the input reader panicked")));
            let published = publisher
                .join()
                .unwrap_or_else(|_| Err(anyhow!("the publisher panicked")));
            // The publisher's own error explains an ordered stage that found it gone.
            published.and_then(|published| ordered_result.and(reader_result).map(|()| published))
        });
        let published = outcome?;
        ordered.progress.files_published = published.files;
        ordered.progress.segments_published = published.segments;
        if ordered.segment_open {
            return Err(anyhow!(
                "the input ended inside a segment that was never closed"
            ));
        }
        let purged = purge_quarantine(
            &self.layout,
            self.store.as_ref(),
            today,
            self.config.quarantine.retention_days,
        )
        .context("purging the expired quarantine")?;
        Ok(RunSummary::new(
            ordered.progress,
            started.elapsed(),
            purged,
            self.layout.clone(),
        ))
    }

    fn worker_context(&self, today_name: &str) -> Result<WorkerContext> {
        let store = self.store.as_ref();
        let quarantine_day = today_name.trim_start_matches("date=");
        Ok(WorkerContext {
            plan: Arc::clone(&self.plan),
            history_schema: arrow_schema(&self.plan.history),
            devices_schema: arrow_schema(&self.plan.devices),
            store: Arc::clone(&self.store),
            limits: DecodeLimits {
                max_record_bytes: self.config.input.max_record_bytes,
            },
            history_key: store.key_for(&Entity::new(Scope::Dataset, Dataset::History.as_str()))?,
            devices_key: store.key_for(&Entity::new(Scope::Dataset, Dataset::Devices.as_str()))?,
            quarantine: QuarantineSealer {
                key: store.key_for(&day_key(quarantine_day))?,
            },
            replay_key: EntityKey::random()?,
            device_epoch_days: self.config.keystore.device_epoch_days,
            refresh_interval: Duration::from_millis(self.config.keystore.refresh_interval_ms),
        })
    }

    fn read_inputs(
        &self,
        inputs: &[PathBuf],
        work_tx: SyncSender<(u64, RawBatch)>,
        recycled: Receiver<Vec<u8>>,
    ) -> Result<()> {
        let options = SourceOptions {
            batch_lines: self.config.input.batch_records,
            segment_lines: self.config.input.segment_records,
            keep_bytes: self.config.quarantine.keep_bytes,
        };
        let mut sequence = 0;
        for input in inputs {
            let mut source = NdjsonSource::open(input, options.clone())?;
            loop {
                let buffer = recycled.try_recv().unwrap_or_default();
                let Some(batch) = source.next_batch_into(buffer)? else {
                    break;
                };
                if work_tx.send((sequence, batch)).is_err() {
                    // The ordered stage stopped; it reports why.
                    return Ok(());
                }
                sequence += 1;
            }
        }
        Ok(())
    }
}

fn work(
    work_rx: &Mutex<Receiver<(u64, RawBatch)>>,
    done_tx: &SyncSender<(u64, delink_keystore::Result<ProcessedBatch>)>,
    recycle_tx: &SyncSender<Vec<u8>>,
    context: &WorkerContext,
) {
    let mut cache = KeyCache::new(context.device_epoch_days, context.refresh_interval);
    loop {
        let next = work_rx
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .recv();
        let Ok((sequence, batch)) = next else {
            return;
        };
        let (processed, buffer) = process(context, &mut cache, batch);
        // A full recycling channel just means the buffer is freed instead.
        let _ = recycle_tx.try_send(buffer);
        if done_tx.send((sequence, processed)).is_err() {
            return;
        }
    }
}

/// The single-threaded stage that sees batches in input order.
struct OrderedStage<'p> {
    pipeline: &'p Pipeline,
    history: PartitionedWriter,
    devices: PartitionedWriter,
    quarantine: PartitionedWriter,
    quarantine_partition: String,
    replays: ReplayWindow,
    progress: Progress,
    segment_open: bool,
    segment_rows: BTreeMap<Dataset, u64>,
    /// Hands sealed segments to the publisher thread; dropped to let it finish.
    publisher: Option<SyncSender<SealedSegment>>,
}

impl<'p> OrderedStage<'p> {
    fn new(
        pipeline: &'p Pipeline,
        context: &WorkerContext,
        quarantine_partition: String,
        publisher: SyncSender<SealedSegment>,
    ) -> Result<Self> {
        let output = &pipeline.config.output;
        let plan = &pipeline.plan;
        let options = |dataset: &str, plain_columns: Vec<String>| WriterOptions {
            row_group_rows: output.row_group_rows,
            zstd_level: output.zstd_level,
            buffer_budget_bytes: output.buffer_budget_mib * 1024 * 1024,
            dataset: dataset.to_owned(),
            plain_columns,
        };
        let layout = &pipeline.layout;
        Ok(OrderedStage {
            pipeline,
            history: PartitionedWriter::create(
                &layout.dataset(Dataset::History),
                context.history_schema.clone(),
                options("history", distinct_valued_columns(&plan.history)),
            )?,
            devices: PartitionedWriter::create(
                &layout.dataset(Dataset::Devices),
                context.devices_schema.clone(),
                options("devices", distinct_valued_columns(&plan.devices)),
            )?,
            quarantine: PartitionedWriter::create(
                &layout.quarantine(),
                quarantine_schema(),
                options("quarantine", vec!["sealed_record".to_owned()]),
            )?,
            quarantine_partition,
            replays: ReplayWindow::new(pipeline.config.input.replay_window),
            progress: Progress::default(),
            segment_open: false,
            segment_rows: BTreeMap::new(),
            publisher: Some(publisher),
        })
    }

    fn consume(
        &mut self,
        done_rx: Receiver<(u64, delink_keystore::Result<ProcessedBatch>)>,
        on_progress: &mut dyn FnMut(&Progress),
    ) -> Result<()> {
        let mut waiting = BTreeMap::new();
        let mut next = 0u64;
        let mut last_progress = Instant::now();
        for (sequence, processed) in done_rx {
            waiting.insert(sequence, processed);
            while let Some(processed) = waiting.remove(&next) {
                self.absorb(processed.context(
                    "key store failure; stopping before anything unprotected is written",
                )?)?;
                next += 1;
            }
            if last_progress.elapsed() >= PROGRESS_INTERVAL {
                on_progress(&self.progress);
                last_progress = Instant::now();
            }
        }
        if !waiting.is_empty() {
            return Err(anyhow!("a worker stopped before finishing its batch"));
        }
        Ok(())
    }

    fn absorb(&mut self, mut processed: ProcessedBatch) -> Result<()> {
        let first_seen: Vec<bool> = processed
            .digests
            .iter()
            .map(|digest| self.replays.first_sighting(*digest))
            .collect();
        let duplicates = first_seen.iter().filter(|first| !**first).count() as u64;
        for partition in std::mem::take(&mut processed.partitions) {
            let keep_all = partition
                .observations
                .iter()
                .all(|&index| first_seen[index as usize]);
            let batch = if keep_all {
                partition.batch
            } else {
                let mask: BooleanArray = partition
                    .observations
                    .iter()
                    .map(|&index| Some(first_seen[index as usize]))
                    .collect();
                filter_record_batch(&partition.batch, &mask)?
            };
            let partition_name = date_partition(partition.day);
            let writer = match partition.dataset {
                Dataset::History => &mut self.history,
                Dataset::Devices => &mut self.devices,
            };
            writer.write(&partition_name, &processed.segment_stem, &batch)?;
            *self.segment_rows.entry(partition.dataset).or_insert(0) += batch.num_rows() as u64;
        }
        if let Some(rows) = &processed.quarantine {
            self.quarantine
                .write(&self.quarantine_partition, &processed.segment_stem, rows)?;
        }
        self.count(&processed, duplicates);
        self.segment_open = !processed.closes_segment;
        if processed.closes_segment {
            self.seal_segment()?;
        }
        Ok(())
    }

    fn count(&mut self, processed: &ProcessedBatch, duplicates: u64) {
        let metrics: &Metrics = &self.pipeline.metrics;
        let progress = &mut self.progress;
        progress.records += processed.records;
        progress.input_bytes += processed.input_bytes;
        progress.blank_lines += processed.blank_lines;
        progress.valid += processed.digests.len() as u64;
        progress.duplicates += duplicates;
        metrics.records_received.inc_by(processed.records);
        metrics.input_bytes.inc_by(processed.input_bytes);
        metrics.blank_lines.inc_by(processed.blank_lines);
        metrics.records_duplicate.inc_by(duplicates);
        for (reason, count) in &processed.rejected {
            *progress.rejected.entry(*reason).or_insert(0) += count;
            metrics
                .records_rejected
                .with_label_values(&[reason.as_str()])
                .inc_by(*count);
        }
        for (name, count) in &processed.unknown_fields {
            *progress.unknown_fields.entry(name.clone()).or_insert(0) += count;
            metrics.count_unknown_field(name, *count);
        }
    }

    /// Seals every file of the segment and hands them to the publisher.
    fn seal_segment(&mut self) -> Result<()> {
        let mut files = Vec::new();
        for (output, writer) in [
            ("history", &mut self.history),
            ("devices", &mut self.devices),
            ("quarantine", &mut self.quarantine),
        ] {
            files.extend(
                writer
                    .seal_segment()?
                    .into_iter()
                    .map(|file| (output, file)),
            );
        }
        let rows = std::mem::take(&mut self.segment_rows);
        for (dataset, count) in &rows {
            match dataset {
                Dataset::History => self.progress.history_rows += count,
                Dataset::Devices => self.progress.devices_rows += count,
            }
        }
        let Some(publisher) = &self.publisher else {
            return Err(anyhow!("the publisher has already been closed"));
        };
        publisher
            .send(SealedSegment { files, rows })
            .map_err(|_| anyhow!("the publisher stopped"))
    }
}
