//! The ordered stage: takes processed batches back in order within each lane,
//! drops replays, writes each segment's files, and hands sealed segments to
//! the publisher. Lanes never wait for each other.

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::SyncSender;
use std::sync::{Mutex, PoisonError};

use anyhow::{Result, anyhow};
use arrow_array::BooleanArray;
use arrow_schema::SchemaRef;
use arrow_select::filter::filter_record_batch;
use delink_anonymise::{Outcome, anonymise};
use delink_datadir::{date_partition, format_day};
use delink_keystore::KeyStore;
use delink_model::{Dataset, DeadLetters, LaneId, SegmentId};
use delink_policy::{Anonymity, SortKey, Withheld};
use delink_sink_parquet::{PartitionFile, PartitionedWriter, SegmentFiles};
use delink_sort::sort;
use delink_telemetry::{Metrics, Output};

use crate::held::HeldRows;
use crate::publisher::SealedSegment;
use crate::replay::ReplayWindow;
use crate::worker::ProcessedBatch;

/// The three outputs every segment writes to.
pub(crate) struct Outputs {
    pub(crate) history: Arc<PartitionedWriter>,
    pub(crate) devices: Arc<PartitionedWriter>,
    pub(crate) quarantine: Arc<PartitionedWriter>,
    /// The order of history/ rows within a file.
    pub(crate) history_order: SortKey,
    /// The order of devices/ rows within a file.
    pub(crate) devices_order: SortKey,
    /// devices/ rows are anonymised per day as the segment seals.
    pub(crate) devices_anonymity: Option<Anonymity>,
    /// The schema devices/ files are written with (the level column added).
    pub(crate) devices_published: SchemaRef,
    /// Where segments hold their rows until the seal (the worker's private staging).
    pub(crate) held_dir: PathBuf,
}

/// The open files of one segment.
struct OpenSegment {
    segment: SegmentId,
    history: SegmentFiles,
    devices: SegmentFiles,
    quarantine: SegmentFiles,
    rows: BTreeMap<Dataset, u64>,
    /// history/ and devices/ rows waiting for the seal, by dataset and UTC day:
    /// each day's file is written sorted (and devices/ anonymised) whole.
    held: BTreeMap<(Dataset, i32), HeldRows>,
}

/// One lane's order, replay window and open segment.
struct Lane {
    next_sequence: u64,
    waiting: BTreeMap<u64, ProcessedBatch>,
    replays: ReplayWindow,
    open: Option<OpenSegment>,
}

/// Takes processed batches of every lane and turns them into sealed segments.
pub(crate) struct OrderedStage<'p> {
    outputs: Outputs,
    lanes: HashMap<LaneId, Lane>,
    replay_window: usize,
    metrics: &'p Metrics,
    publisher: SyncSender<SealedSegment>,
    dead_letters: Option<&'p dyn DeadLetters>,
    /// Read at each seal: a long-running worker sees KEK rotations.
    store: &'p dyn KeyStore,
}

impl<'p> OrderedStage<'p> {
    pub(crate) fn new(
        outputs: Outputs,
        replay_window: usize,
        metrics: &'p Metrics,
        publisher: SyncSender<SealedSegment>,
        dead_letters: Option<&'p dyn DeadLetters>,
        store: &'p dyn KeyStore,
    ) -> Self {
        OrderedStage {
            outputs,
            lanes: HashMap::new(),
            replay_window,
            metrics,
            publisher,
            dead_letters,
            store,
        }
    }

    /// Takes one processed batch; absorbs every batch of its lane that is now in order.
    pub(crate) fn accept(&mut self, processed: ProcessedBatch) -> Result<()> {
        let lane_id = processed.lane;
        let window = self.replay_window;
        let lane = self.lanes.entry(lane_id).or_insert_with(|| Lane {
            next_sequence: 0,
            waiting: BTreeMap::new(),
            replays: ReplayWindow::new(window),
            open: None,
        });
        lane.waiting.insert(processed.sequence, processed);
        let mut lane_closed = false;
        while let Some(next) = lane.waiting.remove(&lane.next_sequence) {
            lane.next_sequence += 1;
            lane_closed = next.closes_lane;
            let sealed = absorb(
                lane,
                &self.outputs,
                self.metrics,
                self.dead_letters,
                self.store,
                next,
            )?;
            if let Some(sealed) = sealed {
                self.publisher
                    .send(sealed)
                    .map_err(|_| anyhow!("the publisher stopped"))?;
            }
        }
        if lane_closed {
            self.lanes.remove(&lane_id);
        }
        Ok(())
    }

    /// Tells whether any lane holds batches that arrived out of order and never got their turn.
    pub(crate) fn has_stragglers(&self) -> bool {
        self.lanes.values().any(|lane| !lane.waiting.is_empty())
    }

    /// Tells whether a segment is still open (its closing batch never came).
    pub(crate) fn has_open_segment(&self) -> bool {
        self.lanes.values().any(|lane| lane.open.is_some())
    }
}

/// Writes one batch of a lane; returns the sealed segment when the batch closes it.
fn absorb(
    lane: &mut Lane,
    outputs: &Outputs,
    metrics: &Metrics,
    dead_letters: Option<&dyn DeadLetters>,
    store: &dyn KeyStore,
    mut processed: ProcessedBatch,
) -> Result<Option<SealedSegment>> {
    let first_seen: Vec<bool> = processed
        .digests
        .iter()
        .map(|digest| lane.replays.first_sighting(*digest))
        .collect();
    if processed.already_published {
        return Ok(None);
    }
    if processed.discards_segment {
        // A lost lane: its staged files are left for the worker space's next sweep.
        lane.open = None;
        return Ok(None);
    }
    let open = match &mut lane.open {
        Some(open) if open.segment == processed.segment => open,
        slot => {
            if slot.is_some() {
                return Err(anyhow!(
                    "a lane started a new segment before closing the last one"
                ));
            }
            let stem = processed.segment.stem();
            slot.insert(OpenSegment {
                segment: processed.segment.clone(),
                history: outputs.history.start_segment(&stem),
                devices: outputs.devices.start_segment(&stem),
                quarantine: outputs.quarantine.start_segment(&stem),
                rows: BTreeMap::new(),
                held: BTreeMap::new(),
            })
        }
    };
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
        *open.rows.entry(partition.dataset).or_insert(0) += batch.num_rows() as u64;
        let held = match open.held.entry((partition.dataset, partition.day)) {
            Entry::Occupied(held) => held.into_mut(),
            Entry::Vacant(slot) => {
                let name = format!(
                    "held--{}--{}--{}.arrows",
                    partition.dataset.as_str(),
                    format_day(partition.day),
                    open.segment.stem()
                );
                slot.insert(HeldRows::create(
                    outputs.held_dir.join(name),
                    batch.schema(),
                )?)
            }
        };
        held.push(&batch)?;
    }
    if let Some(rows) = &processed.quarantine {
        open.quarantine
            .write(&date_partition(processed.quarantine_day), rows)?;
        if let Some(destination) = dead_letters {
            let day = format_day(processed.quarantine_day);
            crate::dead_letters::send_rows(destination, &day, rows)?;
        }
    }
    count(metrics, &processed, duplicates);
    if !processed.closes_segment {
        return Ok(None);
    }
    let Some(mut open) = lane.open.take() else {
        return Ok(None);
    };
    write_held(&mut open, outputs, metrics)?;
    // Where the file's rows came from, and the key store (identity, position and
    // KEK version) as it is sealed: the publisher syncs the store before the
    // file is visible, so the store is at least this long whenever it is.
    let store_position = store.position()?;
    let coordinates = [
        ("delink.source", open.segment.source.to_string()),
        (
            "delink.first_position",
            open.segment.first_position.to_string(),
        ),
        ("delink.end_position", processed.end_position.to_string()),
        ("delink.kek_version", store.kek_version().to_string()),
        ("delink.keystore_id", store_position.store_id),
        (
            "delink.keystore_position",
            store_position.position.to_string(),
        ),
    ]
    .map(|(key, value)| (key.to_owned(), value));
    let mut files = Vec::new();
    for (output, segment_files) in [
        (Output::History, open.history),
        (Output::Devices, open.devices),
        (Output::Quarantine, open.quarantine),
    ] {
        files.extend(
            segment_files
                .seal(&coordinates)?
                .into_iter()
                .map(|file| (output, file)),
        );
    }
    Ok(Some(SealedSegment {
        lane: processed.lane,
        segment: open.segment,
        end_position: processed.end_position,
        resumable: processed.resumable,
        files,
        rows: open.rows,
    }))
}

/// Rows of a sorted day copied out and written at a time: the sorted day is
/// never copied whole.
const WRITE_CHUNK_ROWS: usize = 32_768;

/// One day's held rows and the file they go to.
enum HeldDay<'f> {
    History(HeldRows, PartitionFile<'f>),
    Devices(HeldRows, PartitionFile<'f>),
}

/// Reads each held day's rows back and writes them sorted, devices/ days
/// anonymised first. The days are sorted and written in parallel, each by one
/// thread, up to one thread a core (the workers wait on the segment's close
/// anyway); a day's rows are dropped as soon as its file has them.
fn write_held(open: &mut OpenSegment, outputs: &Outputs, metrics: &Metrics) -> Result<()> {
    let (mut devices, mut history) = (Vec::new(), Vec::new());
    for ((dataset, day), mut held) in std::mem::take(&mut open.held) {
        held.finish()?;
        let days = match dataset {
            Dataset::History => &mut history,
            Dataset::Devices => &mut devices,
        };
        days.push((date_partition(day), held));
    }
    let devices_files = open.devices.partition_files(&partitions(&devices))?;
    let history_files = open.history.partition_files(&partitions(&history))?;
    // The heavier devices/ days first, so the threads finish together.
    let jobs: Vec<HeldDay<'_>> = devices
        .into_iter()
        .zip(devices_files)
        .map(|((_, held), file)| HeldDay::Devices(held, file))
        .chain(
            history
                .into_iter()
                .zip(history_files)
                .map(|((_, held), file)| HeldDay::History(held, file)),
        )
        .collect();
    let write_day = |day: HeldDay<'_>| -> Result<Option<Outcome>> {
        let (held, mut file, devices) = match day {
            HeldDay::History(held, file) => (held, file, false),
            HeldDay::Devices(held, file) => (held, file, true),
        };
        let rows = held.take()?;
        let (sorted, outcome) = match (&outputs.devices_anonymity, devices) {
            (Some(anonymity), true) => {
                let (anonymised, outcome) = anonymise(
                    &rows,
                    anonymity,
                    &outputs.devices_published,
                    &outputs.devices_order,
                )?;
                (anonymised, Some(outcome))
            }
            (None, true) => (sort(&rows, &outputs.devices_order)?, None),
            (_, false) => (sort(&rows, &outputs.history_order)?, None),
        };
        // `sorted` shares the columns it takes rows from; this frees the
        // ones the anonymiser replaced.
        drop(rows);
        for chunk in sorted.chunks(WRITE_CHUNK_ROWS) {
            file.write(&chunk?)?;
        }
        Ok(outcome)
    };
    for outcome in in_parallel(jobs, write_day)?.into_iter().flatten() {
        count_anonymised(metrics, &outcome, &outputs.devices_published);
    }
    Ok(())
}

fn partitions(days: &[(String, HeldRows)]) -> Vec<String> {
    days.iter()
        .map(|(partition, _)| partition.clone())
        .collect()
}

/// Counts what anonymising one day did.
fn count_anonymised(metrics: &Metrics, outcome: &Outcome, published: &SchemaRef) {
    metrics.count_profiles(&outcome.rows_by_level, outcome.rows_below_k);
    for (column, count) in &outcome.numbers_withheld {
        let field = published
            .field_with_name(column)
            .ok()
            .and_then(|field| field.metadata().get("delink.source"))
            .map_or("", String::as_str);
        metrics
            .values_withheld
            .with_label_values(&[
                Dataset::Devices.as_str(),
                field,
                Withheld::FewerThanK.as_str(),
            ])
            .inc_by(*count);
    }
}

/// Runs `job` on every item, on up to as many threads as there are cores;
/// returns the results in the items' order.
fn in_parallel<T: Send, R: Send>(
    items: Vec<T>,
    job: impl Fn(T) -> Result<R> + Sync,
) -> Result<Vec<R>> {
    let threads = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .min(items.len());
    if threads <= 1 {
        return items.into_iter().map(job).collect();
    }
    let queue = Mutex::new(items.into_iter().enumerate());
    let mut done: Vec<(usize, Result<R>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut mine = Vec::new();
                    loop {
                        let next = queue.lock().unwrap_or_else(PoisonError::into_inner).next();
                        let Some((index, item)) = next else {
                            return mine;
                        };
                        mine.push((index, job(item)));
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|handle| {
                handle
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    });
    done.sort_by_key(|(index, _)| *index);
    done.into_iter().map(|(_, result)| result).collect()
}

/// Counts one absorbed batch, once per batch.
fn count(metrics: &Metrics, processed: &ProcessedBatch, duplicates: u64) {
    metrics.records_received.inc_by(processed.records);
    metrics.input_bytes.inc_by(processed.input_bytes);
    metrics.blank_lines.inc_by(processed.blank_lines);
    metrics.records_duplicate.inc_by(duplicates);
    for (reason, count) in &processed.rejected {
        metrics
            .records_rejected
            .with_label_values(&[reason.as_str()])
            .inc_by(*count);
    }
    for (name, count) in &processed.unknown_fields {
        metrics.count_unknown_field(name, *count);
    }
    for (dataset, field, reason, count) in &processed.withheld {
        metrics
            .values_withheld
            .with_label_values(&[dataset.as_str(), field.path(), reason.as_str()])
            .inc_by(*count);
    }
}
