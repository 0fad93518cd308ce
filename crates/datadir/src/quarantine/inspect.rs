//! Reading the quarantine back: what operators use to inspect and replay rejected input.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow};
use arrow_array::cast::AsArray;
use arrow_array::{Array, RecordBatch};
use delink_keystore::KeyStore;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::DataLayout;
use crate::quarantine::{QuarantineColumns, open_quarantined};

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
pub fn quarantine_counts(layout: &DataLayout) -> Result<BTreeMap<String, BTreeMap<String, u64>>> {
    let mut counts: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    for (date, path) in quarantine_files(&layout.quarantine(), None)? {
        for batch in read_file(&path)? {
            let reasons = batch
                .column_by_name("reason")
                .ok_or_else(|| anyhow!("{} has no reason column", path.display()))?
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
    layout: &DataLayout,
    store: &dyn KeyStore,
    date: &str,
) -> Result<Vec<QuarantinedRecord>> {
    let mut records = Vec::new();
    for (_, path) in quarantine_files(&layout.quarantine(), Some(date))? {
        for batch in read_file(&path)? {
            records.extend(
                decrypt_batch(&batch, store, date)
                    .with_context(|| format!("in {}", path.display()))?,
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

/// Lists `(date, file)` of the visible quarantine files, optionally of one date.
pub(crate) fn quarantine_files(root: &Path, only: Option<&str>) -> Result<Vec<(String, PathBuf)>> {
    let mut files = Vec::new();
    if !root.exists() {
        return Ok(files);
    }
    for partition in
        std::fs::read_dir(root).with_context(|| format!("reading {}", root.display()))?
    {
        let partition = partition?.path();
        let Some(date) = partition
            .file_name()
            .and_then(|name| name.to_str())
            .and_then(|name| name.strip_prefix("date="))
            .map(str::to_owned)
        else {
            continue;
        };
        if only.is_some_and(|wanted| wanted != date) {
            continue;
        }
        for file in std::fs::read_dir(&partition)? {
            let file = file?.path();
            if file
                .extension()
                .is_some_and(|extension| extension == "parquet")
            {
                files.push((date.clone(), file));
            }
        }
    }
    files.sort();
    Ok(files)
}

pub(crate) fn read_file(path: &Path) -> Result<Vec<RecordBatch>> {
    let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .with_context(|| format!("{} is not a parquet file", path.display()))?
        .build()?;
    reader.map(|batch| batch.map_err(Into::into)).collect()
}
