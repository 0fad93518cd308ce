//! Reading the quarantine back: what operators use to inspect and replay rejected input.

use std::collections::BTreeMap;

use anyhow::{Context, Result, anyhow};
use arrow_array::cast::AsArray;
use arrow_array::{Array, RecordBatch};
use delink_keystore::KeyStore;

use crate::quarantine::{QUARANTINE, QuarantineColumns, open_quarantined};
use crate::{OutputStore, read_parquet};

/// One quarantined record, decrypted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuarantinedRecord {
    /// The input segment it came from (source tag and first line).
    pub segment: String,
    /// Its position (line number) in the input.
    pub position: u64,
    /// Why it was rejected.
    pub reason: String,
    /// Its full length; more than `bytes.len()` when an oversized record was cut.
    pub record_bytes: u64,
    /// The kept bytes, as received.
    pub bytes: Vec<u8>,
}

/// Counts quarantined records by partition date and reason, without decrypting anything.
pub fn quarantine_counts(outputs: &OutputStore) -> Result<BTreeMap<String, BTreeMap<String, u64>>> {
    let mut counts: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    for (date, key) in quarantine_files(outputs, None)? {
        for batch in read_parquet(outputs, &key)?.batches {
            let reasons = batch
                .column_by_name("reason")
                .ok_or_else(|| anyhow!("{} has no reason column", outputs.describe(&key)))?
                .as_string::<i32>();
            for reason in reasons.iter().flatten() {
                *counts
                    .entry(date.clone())
                    .or_default()
                    .entry(reason.to_owned())
                    .or_insert(0) += 1;
            }
        }
    }
    Ok(counts)
}

/// Decrypts every quarantined record of one partition date (`YYYY-MM-DD`), in input order.
pub fn quarantined_records(
    outputs: &OutputStore,
    store: &dyn KeyStore,
    date: &str,
) -> Result<Vec<QuarantinedRecord>> {
    let mut records = Vec::new();
    for (_, key) in quarantine_files(outputs, Some(date))? {
        for batch in read_parquet(outputs, &key)?.batches {
            records.extend(
                decrypt_batch(&batch, store, date)
                    .with_context(|| format!("in {}", outputs.describe(&key)))?,
            );
        }
    }
    records.sort_by(|a, b| (&a.segment, a.position).cmp(&(&b.segment, b.position)));
    Ok(records)
}

fn decrypt_batch(
    batch: &RecordBatch,
    store: &dyn KeyStore,
    date: &str,
) -> Result<Vec<QuarantinedRecord>> {
    let QuarantineColumns {
        segments,
        positions,
        reasons,
        record_bytes: lengths,
        sealed,
        ..
    } = QuarantineColumns::of(batch)?;
    let mut records = Vec::with_capacity(batch.num_rows());
    for row in 0..batch.num_rows() {
        if sealed.is_null(row) {
            continue;
        }
        let bytes = open_quarantined(
            store,
            date,
            segments.value(row),
            positions.value(row),
            sealed.value(row),
        )?
        .ok_or_else(|| {
            anyhow!("the quarantine key of {date} is gone; these records can no longer be read")
        })?;
        records.push(QuarantinedRecord {
            segment: segments.value(row).to_owned(),
            position: positions.value(row),
            reason: reasons.value(row).to_owned(),
            record_bytes: lengths.value(row),
            bytes,
        });
    }
    Ok(records)
}

/// Lists `(date, key)` of the visible quarantine files, optionally of one date.
pub(crate) fn quarantine_files(
    outputs: &OutputStore,
    only: Option<&str>,
) -> Result<Vec<(String, String)>> {
    let mut files = Vec::new();
    for (date, partition) in outputs.partitions(QUARANTINE)? {
        if only.is_some_and(|wanted| wanted != date) {
            continue;
        }
        for object in outputs.list(&partition)? {
            if object.key.ends_with(".parquet") {
                files.push((date.clone(), object.key));
            }
        }
    }
    Ok(files)
}
