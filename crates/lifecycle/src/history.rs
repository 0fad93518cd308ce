//! Reading and atomically rewriting the Parquet files of `history/`.

use std::collections::{HashMap, HashSet};
use std::fs::{self, File};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow};
use arrow_array::cast::AsArray;
use arrow_array::{Array, BooleanArray, RecordBatch, RecordBatchReader};
use arrow_schema::SchemaRef;
use delink_datadir::create_private_file;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};

/// Lists `date=YYYY-MM-DD` partitions under `root` as (date, directory), oldest first.
pub(crate) fn partitions(root: &Path) -> Result<Vec<(String, PathBuf)>> {
    if !root.exists() {
        return Ok(Vec::new());
    }
    let mut found = Vec::new();
    for entry in fs::read_dir(root).with_context(|| format!("cannot list {}", root.display()))? {
        let path = entry?.path();
        let date = path
            .file_name()
            .and_then(|name| name.to_str())
            .and_then(|name| name.strip_prefix("date="))
            .filter(|date| chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d").is_ok());
        if let Some(date) = date {
            found.push((date.to_owned(), path.clone()));
        }
    }
    found.sort();
    Ok(found)
}

/// Lists the visible Parquet files of a partition, in name order.
pub(crate) fn parquet_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .with_context(|| format!("cannot list {}", dir.display()))?
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| {
            path.file_name()
                .and_then(|name| name.to_str())
                .is_some_and(|name| name.ends_with(".parquet") && !name.starts_with('.'))
        })
        .collect();
    files.sort();
    Ok(files)
}

/// Reads a whole Parquet file.
pub(crate) fn read(path: &Path) -> Result<(SchemaRef, Vec<RecordBatch>)> {
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .with_context(|| format!("{} is not readable Parquet", path.display()))?
        .build()?;
    let schema = reader.schema();
    let batches = reader
        .collect::<std::result::Result<Vec<_>, _>>()
        .with_context(|| format!("cannot read {}", path.display()))?;
    Ok((schema, batches))
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

/// Replaces `path` with `batches` atomically: written to a hidden sibling, fsynced, renamed.
pub(crate) fn replace(
    path: &Path,
    schema: &SchemaRef,
    batches: &[RecordBatch],
    zstd_level: i32,
) -> Result<()> {
    let name = path
        .file_name()
        .and_then(|name| name.to_str())
        .ok_or_else(|| anyhow!("{} has no file name", path.display()))?;
    let staged = path.with_file_name(format!(".{name}.rewrite"));
    // The rewrite keeps the file's provenance: the rows left are the rows it was written with.
    let provenance = File::open(path)
        .map_err(anyhow::Error::from)
        .and_then(|file| Ok(ParquetRecordBatchReaderBuilder::try_new(file)?))
        .with_context(|| format!("cannot read the metadata of {}", path.display()))?
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .cloned();
    let properties = WriterProperties::builder()
        .set_key_value_metadata(provenance)
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(zstd_level)?))
        .set_statistics_enabled(EnabledStatistics::Chunk)
        .build();
    let file = create_private_file(&staged)
        .with_context(|| format!("cannot create {}", staged.display()))?;
    let mut writer = ArrowWriter::try_new(file, schema.clone(), Some(properties))?;
    for batch in batches {
        writer.write(batch)?;
    }
    let file = writer.into_inner()?;
    file.sync_all()?;
    fs::rename(&staged, path).with_context(|| format!("cannot replace {}", path.display()))?;
    sync_dir(path)
}

/// Fsyncs the directory holding `path`, so a rename or deletion is durable.
pub(crate) fn sync_dir(path: &Path) -> Result<()> {
    if let Some(parent) = path.parent() {
        File::open(parent)
            .and_then(|dir| dir.sync_all())
            .with_context(|| format!("cannot sync {}", parent.display()))?;
    }
    Ok(())
}

/// Removes hidden `.*.rewrite` files an interrupted rewrite left behind.
pub(crate) fn remove_leftovers(dir: &Path) -> Result<()> {
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        let leftover = path
            .file_name()
            .and_then(|name| name.to_str())
            .is_some_and(|name| name.starts_with('.') && name.ends_with(".rewrite"));
        if leftover {
            fs::remove_file(&path)?;
        }
    }
    Ok(())
}
