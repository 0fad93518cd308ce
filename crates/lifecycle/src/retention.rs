//! `delink retention`: removes erased subjects' rows from `history/`, deletes
//! partitions past their retention, and purges the quarantine.
//!
//! Idempotent and resumable: each file is replaced atomically, and the list
//! of pending erasures is dropped only once every file is done. It runs while
//! workers run: an erasure is applied only once every live worker's published
//! watermark has passed the erasure's effective time, so every row hashed
//! with the erased key is in view before the job looks for it; until then it
//! stays pending (the job waits up to a bound first).

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use arrow_array::BooleanArray;
use arrow_select::filter::filter_record_batch;
use delink_config::Config;
use delink_datadir::{
    DataLayout, OutputStore, live_watermarks, purge_expired, purge_quarantine, read_parquet,
    utc_day,
};
use delink_keystore::{JournalKind, KeyStore};
use delink_model::Dataset;
use serde::Serialize;

use crate::history;
use crate::pending::{PendingErasure, PendingList};

/// Says what a retention pass did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RetentionReport {
    /// Erasures applied (subjects whose rows were looked for).
    pub erasures_applied: u64,
    /// Erasures left pending: a live worker may still publish rows hashed before
    /// they took effect (or the erasure was never completed); the next pass applies them.
    pub erasures_waiting: u64,
    /// History files rewritten without erased rows.
    pub files_rewritten: u64,
    /// History files deleted because every row was erased.
    pub files_deleted: u64,
    /// History rows removed.
    pub rows_removed: u64,
    /// History partitions deleted for age.
    pub partitions_expired: u64,
    /// Quarantine partitions purged.
    pub quarantine_purged: u64,
}

/// How often a waiting retention pass looks at the workers' watermarks again.
const WATERMARK_POLL: Duration = Duration::from_millis(250);

/// Runs one retention pass over the data directory, waiting at most `wait` for
/// running workers to publish what they hashed before pending erasures took effect.
pub fn retention(config: &Config, store: &dyn KeyStore, wait: Duration) -> Result<RetentionReport> {
    let layout = DataLayout::new(&config.data_dir);
    let outputs = OutputStore::for_config(config)?;
    let today = utc_day(chrono::Utc::now().timestamp_micros());
    let mut report = RetentionReport::default();
    if config.retention.history_days > 0 {
        report.partitions_expired = purge_expired(
            &outputs,
            Dataset::History.as_str(),
            today,
            config.retention.history_days,
        )
        .context("deleting expired history partitions")?;
    }
    let list = PendingList::new(&layout.retention());
    let recorded = {
        let lock = list.lock()?;
        list.read(&lock)?
    };
    let (pending, waiting) = applicable(config, store, &layout, recorded, wait)?;
    report.erasures_waiting = waiting.len() as u64;
    let mut wanted: HashMap<String, HashSet<String>> = HashMap::new();
    for entry in &pending {
        wanted
            .entry(entry.column.clone())
            .or_default()
            .insert(entry.pseudonym.clone());
    }
    for (_, partition) in history::partitions(&outputs)? {
        outputs.clear_leftovers(&partition)?;
        if wanted.is_empty() {
            continue;
        }
        for file in history::parquet_files(&outputs, &partition)? {
            remove_rows(
                &outputs,
                &file,
                &wanted,
                config.output.zstd_level,
                &mut report,
            )?;
        }
    }
    if !pending.is_empty() {
        let lock = list.lock()?;
        list.drop_applied(&lock, &pending)?;
        report.erasures_applied = pending.len() as u64;
    }
    report.quarantine_purged =
        purge_quarantine(&outputs, store, today, config.quarantine.retention_days)?;
    Ok(report)
}

/// Splits pending erasures into those whose rows are all in view (applicable now)
/// and those still waiting, after waiting up to `wait` for the watermarks to pass.
fn applicable(
    config: &Config,
    store: &dyn KeyStore,
    layout: &DataLayout,
    recorded: Vec<PendingErasure>,
    wait: Duration,
) -> Result<(Vec<PendingErasure>, Vec<PendingErasure>)> {
    let propagation = i64::try_from(config.keystore.erasure_propagation_secs).unwrap_or(i64::MAX);
    let journal = store.journal()?;
    // When each request's keys were deleted and no worker could use them any more (Unix µs).
    let effective_at = |entry: &PendingErasure| {
        journal.iter().find_map(|event| match &event.kind {
            JournalKind::Erasure { request_id, .. } if *request_id == entry.request_id => Some(
                event
                    .at
                    .saturating_add(propagation)
                    .saturating_mul(1_000_000),
            ),
            _ => None,
        })
    };
    let deadline = Instant::now() + wait;
    loop {
        let published_before = live_watermarks(layout)?
            .iter()
            .map(|watermark| watermark.published_before_us)
            .min()
            .unwrap_or(i64::MAX)
            .min(chrono::Utc::now().timestamp_micros());
        let (ready, waiting): (Vec<_>, Vec<_>) = recorded
            .iter()
            .cloned()
            .partition(|entry| effective_at(entry).is_some_and(|at| at <= published_before));
        if waiting.is_empty() || Instant::now() >= deadline {
            if !waiting.is_empty() {
                tracing::warn!(
                    waiting = waiting.len(),
                    "erasures left pending: a running worker has not yet published everything it read before they took effect"
                );
            }
            return Ok((ready, waiting));
        }
        std::thread::sleep(WATERMARK_POLL);
    }
}

fn remove_rows(
    outputs: &OutputStore,
    file: &str,
    wanted: &HashMap<String, HashSet<String>>,
    zstd_level: i32,
    report: &mut RetentionReport,
) -> Result<()> {
    let content = read_parquet(outputs, file)?;
    let mut kept = Vec::with_capacity(content.batches.len());
    let mut removed = 0;
    for batch in &content.batches {
        let matching = history::matching_rows(batch, wanted)?;
        let keep: BooleanArray = matching.iter().map(|hit| Some(hit != Some(true))).collect();
        removed += matching.true_count();
        kept.push(filter_record_batch(batch, &keep)?);
    }
    if removed == 0 {
        return Ok(());
    }
    report.rows_removed += removed as u64;
    if kept.iter().all(|batch| batch.num_rows() == 0) {
        outputs.delete(file)?;
        report.files_deleted += 1;
    } else {
        history::replace(outputs, file, &content, &kept, zstd_level)?;
        report.files_rewritten += 1;
    }
    tracing::info!(file = %outputs.describe(file), rows = removed, "removed erased subjects' rows");
    Ok(())
}
