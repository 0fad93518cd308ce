//! Whole Parquet files read from and written to the output store, for the jobs
//! that rewrite published files (erasure, quarantine redaction).

use anyhow::{Context, Result};
use arrow_array::{RecordBatch, RecordBatchReader};
use arrow_schema::SchemaRef;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::file::metadata::{FooterTail, KeyValue, ParquetMetaDataReader};
use parquet::file::properties::WriterProperties;

use crate::{OutputStore, StoredObject};

/// Bytes read from the end of a file in one request, enough for most footers.
const FOOTER_GUESS: u64 = 64 << 10;

/// A Parquet file read whole.
pub struct ParquetContent {
    /// Its Arrow schema.
    pub schema: SchemaRef,
    /// Its rows.
    pub batches: Vec<RecordBatch>,
    /// Its key-value metadata (provenance).
    pub metadata: Option<Vec<KeyValue>>,
}

/// Reads the Parquet file at `key` whole.
pub fn read_parquet(outputs: &OutputStore, key: &str) -> Result<ParquetContent> {
    let bytes = outputs.get(key)?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(bytes)
        .with_context(|| format!("{} is not readable Parquet", outputs.describe(key)))?;
    let metadata = builder
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .cloned();
    let reader = builder.build()?;
    let schema = reader.schema();
    let batches = reader
        .collect::<std::result::Result<Vec<_>, _>>()
        .with_context(|| format!("cannot read {}", outputs.describe(key)))?;
    Ok(ParquetContent {
        schema,
        batches,
        metadata,
    })
}

/// Reads the key-value metadata of a Parquet file from its footer alone (one or two
/// ranged reads, whatever the file's size).
pub fn read_footer_metadata(
    outputs: &OutputStore,
    object: &StoredObject,
) -> Result<Option<Vec<KeyValue>>> {
    let not_parquet = || format!("{} is not readable Parquet", outputs.describe(&object.key));
    let size = object.size;
    let mut tail = outputs.get_range(&object.key, size.saturating_sub(FOOTER_GUESS)..size)?;
    let footer: &[u8; 8] = tail
        .len()
        .checked_sub(8)
        .and_then(|start| tail[start..].try_into().ok())
        .with_context(not_parquet)?;
    let metadata_len = FooterTail::try_new(footer)
        .with_context(not_parquet)?
        .metadata_length() as u64;
    let needed = metadata_len + 8;
    if needed > size {
        anyhow::bail!("{}", not_parquet());
    }
    if needed > tail.len() as u64 {
        tail = outputs.get_range(&object.key, size - needed..size)?;
    }
    let start = tail.len() - usize::try_from(needed)?;
    let metadata = ParquetMetaDataReader::decode_metadata(&tail[start..tail.len() - 8])
        .with_context(not_parquet)?;
    Ok(metadata.file_metadata().key_value_metadata().cloned())
}

/// Replaces the file at `key` with `batches`, atomically.
pub fn write_parquet(
    outputs: &OutputStore,
    key: &str,
    schema: &SchemaRef,
    batches: &[RecordBatch],
    properties: WriterProperties,
    private: bool,
) -> Result<()> {
    let mut writer = ArrowWriter::try_new(Vec::new(), schema.clone(), Some(properties))?;
    for batch in batches {
        writer.write(batch)?;
    }
    let bytes = writer.into_inner()?;
    outputs.put(key, bytes.into(), private)
}
