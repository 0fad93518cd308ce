//! Reading and atomically rewriting the Parquet files of `history/`, wherever the outputs live.

use std::collections::{HashMap, HashSet};

use anyhow::{Result, anyhow};
use arrow_array::cast::AsArray;
use arrow_array::{Array, BooleanArray, RecordBatch};
use delink_datadir::{OutputStore, ParquetContent, write_parquet};
use delink_model::Dataset;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};

/// Lists the `date=YYYY-MM-DD` partitions of `history/` as (date, key prefix), oldest first.
pub(crate) fn partitions(outputs: &OutputStore) -> Result<Vec<(String, String)>> {
    outputs.partitions(Dataset::History.as_str())
}

/// Lists the visible Parquet files of a partition, in key order.
pub(crate) fn parquet_files(outputs: &OutputStore, partition: &str) -> Result<Vec<String>> {
    Ok(outputs
        .list(partition)?
        .into_iter()
        .map(|object| object.key)
        .filter(|key| key.ends_with(".parquet"))
        .collect())
}

/// Marks the rows whose value in any named column is one of that column's values.
pub(crate) fn matching_rows(
    batch: &RecordBatch,
    wanted: &HashMap<String, HashSet<String>>,
) -> Result<BooleanArray> {
    let mut matches = vec![false; batch.num_rows()];
    for (column, values) in wanted {
        let array = batch
            .column_by_name(column)
            .ok_or_else(|| anyhow!("history has no column {column}"))?;
        let strings = array
            .as_string_opt::<i32>()
            .ok_or_else(|| anyhow!("history column {column} is not a string column"))?;
        for (row, flag) in matches.iter_mut().enumerate() {
            if strings.is_valid(row) && values.contains(strings.value(row)) {
                *flag = true;
            }
        }
    }
    Ok(BooleanArray::from(matches))
}

/// Replaces the file at `key` with `batches` atomically, keeping the provenance it
/// was read with (the rows left are the rows it was written with).
pub(crate) fn replace(
    outputs: &OutputStore,
    key: &str,
    original: &ParquetContent,
    batches: &[RecordBatch],
    zstd_level: i32,
) -> Result<()> {
    let provenance = original.metadata.clone();
    let properties = WriterProperties::builder()
        .set_key_value_metadata(provenance)
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(zstd_level)?))
        .set_statistics_enabled(EnabledStatistics::Chunk)
        .build();
    write_parquet(outputs, key, &original.schema, batches, properties, true)
}
