//! `delink retention`: removes erased subjects' rows from `history/`, deletes
//! partitions past their retention, and purges the quarantine.
//!
//! Idempotent and resumable: each file is replaced atomically, and the list
//! of pending erasures is dropped only once every file is done. It holds the
//! data directory's run lock, so every row a run made before an erasure is
//! published before the job looks for it.

use std::collections::{HashMap, HashSet};
use std::fs;

use anyhow::{Context, Result};
use arrow_array::BooleanArray;
use arrow_select::filter::filter_record_batch;
use delink_config::Config;
use delink_keystore::KeyStore;
use delink_model::Dataset;
use delink_pipeline::{DataLayout, RunLock, purge_quarantine, utc_day};
use serde::Serialize;

use crate::history;
use crate::pending::PendingList;

/// Says what a retention pass did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RetentionReport {
    /// Erasures applied (subjects whose rows were looked for).
    pub erasures_applied: u64,
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

/// Runs one retention pass over the data directory.
pub fn retention(config: &Config, store: &dyn KeyStore) -> Result<RetentionReport> {
    let layout = DataLayout::new(&config.data_dir);
    let _run_lock = RunLock::take(&layout)?;
    let today = utc_day(chrono::Utc::now().timestamp_micros());
    let mut report = RetentionReport::default();
    let history_root = layout.dataset(Dataset::History);
    if config.retention.history_days > 0 {
        report.partitions_expired =
            delink_pipeline::purge_expired(&history_root, today, config.retention.history_days)
                .context("deleting expired history partitions")?;
    }
    let list = PendingList::new(&layout.retention());
    let pending = {
        let lock = list.lock()?;
        list.read(&lock)?
    };
    let mut wanted: HashMap<String, HashSet<String>> = HashMap::new();
    for entry in &pending {
        wanted
            .entry(entry.column.clone())
            .or_default()
            .insert(entry.pseudonym.clone());
    }
    for (_, partition) in history::partitions(&history_root)? {
        history::remove_leftovers(&partition)?;
        if wanted.is_empty() {
            continue;
        }
        for file in history::parquet_files(&partition)? {
            remove_rows(&file, &wanted, config.output.zstd_level, &mut report)?;
        }
    }
    if !pending.is_empty() {
        let lock = list.lock()?;
        list.drop_applied(&lock, &pending)?;
        report.erasures_applied = pending.len() as u64;
    }
    report.quarantine_purged =
        purge_quarantine(&layout, store, today, config.quarantine.retention_days)?;
    Ok(report)
}

fn remove_rows(
    file: &std::path::Path,
    wanted: &HashMap<String, HashSet<String>>,
    zstd_level: i32,
    report: &mut RetentionReport,
) -> Result<()> {
    let (schema, batches) = history::read(file)?;
    let mut kept = Vec::with_capacity(batches.len());
    let mut removed = 0;
    for batch in &batches {
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
        fs::remove_file(file).with_context(|| format!("cannot delete {}", file.display()))?;
        history::sync_dir(file)?;
        report.files_deleted += 1;
    } else {
        history::replace(file, &schema, &kept, zstd_level)?;
        report.files_rewritten += 1;
    }
    tracing::info!(file = %file.display(), rows = removed, "removed erased subjects' rows");
    Ok(())
}
