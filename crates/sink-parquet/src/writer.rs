use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;

use delink_datadir::{OutputStore, StagedUpload, UploadArea, create_private_file};

use crate::error::io;
use crate::{Result, SinkError};

/// How often a Bloom filter lets through a value its row group lacks.
const BLOOM_FILTER_FPP: f64 = 0.05;

/// Tunes file layout and memory.
#[derive(Debug, Clone)]
pub struct WriterOptions {
    /// Rows per row group (upper bound).
    pub row_group_rows: usize,
    /// zstd level (1 = fastest).
    pub zstd_level: i32,
    /// Bytes of encoded-but-unwritten row groups allowed across a segment's open files
    /// before the largest is flushed early; bounds memory whatever the number of partitions.
    pub buffer_budget_bytes: usize,
    /// Written into every file's key-value metadata as `delink.dataset`; also names
    /// the output's staged files.
    pub dataset: String,
    /// Columns written without a dictionary because their values are nearly all distinct.
    pub plain_columns: Vec<String>,
    /// Columns given a Bloom filter in every row group (sized for a row group of
    /// distinct values): a lookup by value skips the row groups that lack it.
    pub bloom_filter_columns: Vec<String>,
    /// Columns given page-level statistics (the column index): those the rows are
    /// sorted by, where a lookup can skip pages within a row group.
    pub page_index_columns: Vec<String>,
    /// The output may hold personal data: locally, its directories and files are owner-only.
    pub owner_only: bool,
    /// Key-value metadata of every file (provenance), besides `delink.dataset`.
    pub metadata: Vec<(String, String)>,
}

/// A closed file (footer written) waiting in the staging directory to be published.
#[derive(Debug)]
pub struct SealedFile {
    file: File,
    staged: PathBuf,
    key: String,
    private: bool,
    /// Rows in the file.
    pub rows: u64,
    /// Size of the file in bytes.
    pub bytes: u64,
}

impl SealedFile {
    /// Returns the key the file will be visible under once published
    /// (`<output>/<partition>/part-<stem>.parquet`).
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Sends the file to `outputs` without making it visible (see [`OutputStore::stage`]);
    /// [`OutputStore::commit`] publishes it. The staged copy goes once this returns.
    pub fn stage(self, outputs: &OutputStore, area: &UploadArea) -> Result<StagedUpload> {
        let staged = outputs
            .stage(&self.file, &self.staged, &self.key, self.private, area)
            .map_err(|source| SinkError::Publish {
                key: self.key.clone(),
                source,
            })?;
        if outputs.local_root().is_none() {
            // Uploaded: the local copy has served its purpose.
            let _ = fs::remove_file(&self.staged);
        }
        Ok(staged)
    }
}

struct OpenFile {
    writer: ArrowWriter<File>,
    staged: PathBuf,
    key: String,
    rows: u64,
}

/// Describes one output (its key prefix, schema and file properties) and starts its segments.
#[derive(Debug)]
pub struct PartitionedWriter {
    prefix: String,
    staging: PathBuf,
    schema: SchemaRef,
    properties: WriterProperties,
    options: WriterOptions,
}

impl PartitionedWriter {
    /// Prepares the output published under the key `prefix` (e.g. `history`), staging
    /// its files in `staging` (a directory of the calling worker's own, on the same
    /// filesystem as a local output, outside every dataset root).
    pub fn create(
        prefix: &str,
        staging: &Path,
        schema: SchemaRef,
        options: WriterOptions,
    ) -> Result<Arc<Self>> {
        fs::create_dir_all(staging).map_err(io("creating the staging directory", staging))?;
        let level =
            ZstdLevel::try_new(options.zstd_level).map_err(|source| SinkError::Parquet {
                path: staging.to_path_buf(),
                source: Box::new(source),
            })?;
        let mut properties = WriterProperties::builder()
            .set_compression(Compression::ZSTD(level))
            // Chunk statistics prune row groups; page-level ones cost ~5% throughput for little gain
            // at this row-group size.
            .set_statistics_enabled(EnabledStatistics::Chunk)
            .set_max_row_group_size(options.row_group_rows)
            .set_created_by(format!("delink {}", env!("CARGO_PKG_VERSION")))
            .set_key_value_metadata(Some(
                std::iter::once(("delink.dataset".to_owned(), options.dataset.clone()))
                    .chain(options.metadata.iter().cloned())
                    .map(|(key, value)| KeyValue::new(key, value))
                    .collect(),
            ));
        for column in &options.plain_columns {
            properties =
                properties.set_column_dictionary_enabled(ColumnPath::from(column.as_str()), false);
        }
        for column in &options.bloom_filter_columns {
            let path = ColumnPath::from(column.as_str());
            properties = properties
                .set_column_bloom_filter_enabled(path.clone(), true)
                .set_column_bloom_filter_fpp(path.clone(), BLOOM_FILTER_FPP)
                .set_column_bloom_filter_ndv(path, options.row_group_rows as u64);
        }
        for column in &options.page_index_columns {
            properties = properties.set_column_statistics_enabled(
                ColumnPath::from(column.as_str()),
                EnabledStatistics::Page,
            );
        }
        let properties = properties.build();
        Ok(Arc::new(PartitionedWriter {
            prefix: prefix.to_owned(),
            staging: staging.to_path_buf(),
            schema,
            properties,
            options,
        }))
    }

    /// Starts the files of one segment: every file it opens is named `part-<stem>.parquet`.
    pub fn start_segment(self: &Arc<Self>, stem: &str) -> SegmentFiles {
        SegmentFiles {
            output: Arc::clone(self),
            stem: stem.to_owned(),
            open: BTreeMap::new(),
        }
    }
}

/// The open files of one segment of one output, one per partition.
pub struct SegmentFiles {
    output: Arc<PartitionedWriter>,
    stem: String,
    open: BTreeMap<String, OpenFile>,
}

impl SegmentFiles {
    /// Appends `batch` to the segment's file of `partition` (a `key=value` directory name).
    pub fn write(&mut self, partition: &str, batch: &RecordBatch) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let file = match self.open.entry(partition.to_owned()) {
            Entry::Occupied(open) => open.into_mut(),
            Entry::Vacant(slot) => slot.insert(open_file(&self.output, partition, &self.stem)?),
        };
        write_to(file, batch)?;
        self.keep_within_budget()
    }

    /// The files of `partitions` (opened when new), in that order, each to be
    /// written on its own (by one thread each). Their buffered row groups are
    /// left out of the budget until the next [`SegmentFiles::write`].
    pub fn partition_files(&mut self, partitions: &[String]) -> Result<Vec<PartitionFile<'_>>> {
        for partition in partitions {
            if !self.open.contains_key(partition) {
                let file = open_file(&self.output, partition, &self.stem)?;
                self.open.insert(partition.clone(), file);
            }
        }
        let mut files: HashMap<&String, &mut OpenFile> = self.open.iter_mut().collect();
        partitions
            .iter()
            .map(|partition| {
                files
                    .remove(partition)
                    .map(|file| PartitionFile { file })
                    .ok_or_else(|| SinkError::DuplicatePartition(partition.clone()))
            })
            .collect()
    }

    /// Flushes the largest buffered row group while the total exceeds the budget.
    fn keep_within_budget(&mut self) -> Result<()> {
        loop {
            let buffered: usize = self
                .open
                .values()
                .map(|f| f.writer.in_progress_size())
                .sum();
            if buffered <= self.output.options.buffer_budget_bytes {
                return Ok(());
            }
            let Some(largest) = self
                .open
                .values_mut()
                .max_by_key(|f| f.writer.in_progress_size())
            else {
                return Ok(());
            };
            if largest.writer.in_progress_size() == 0 {
                return Ok(());
            }
            largest
                .writer
                .flush()
                .map_err(|source| SinkError::Parquet {
                    path: largest.staged.clone(),
                    source: Box::new(source),
                })?;
        }
    }

    /// Closes every file of the segment (footer written, with `metadata` added to its
    /// key-value metadata) without making it visible; the caller publishes them with
    /// [`SealedFile::stage`] and [`OutputStore::commit`].
    pub fn seal(self, metadata: &[(String, String)]) -> Result<Vec<SealedFile>> {
        let mut sealed = Vec::with_capacity(self.open.len());
        for mut file in self.open.into_values() {
            for (key, value) in metadata {
                file.writer
                    .append_key_value_metadata(KeyValue::new(key.clone(), value.clone()));
            }
            let staged = file.staged;
            let inner = file
                .writer
                .into_inner()
                .map_err(|source| SinkError::Parquet {
                    path: staged.clone(),
                    source: Box::new(source),
                })?;
            let bytes = inner
                .metadata()
                .map_err(io("reading a staged file's size", &staged))?
                .len();
            sealed.push(SealedFile {
                file: inner,
                staged,
                key: file.key,
                private: self.output.options.owner_only,
                rows: file.rows,
                bytes,
            });
        }
        Ok(sealed)
    }
}

/// One partition's file of a segment, written apart from the others.
pub struct PartitionFile<'s> {
    file: &'s mut OpenFile,
}

impl PartitionFile<'_> {
    /// Appends `batch` to the file.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        write_to(self.file, batch)
    }
}

fn write_to(file: &mut OpenFile, batch: &RecordBatch) -> Result<()> {
    file.writer
        .write(batch)
        .map_err(|source| SinkError::Parquet {
            path: file.staged.clone(),
            source: Box::new(source),
        })?;
    file.rows += batch.num_rows() as u64;
    Ok(())
}

/// Opens the staged file of one partition and segment.
fn open_file(output: &PartitionedWriter, partition: &str, stem: &str) -> Result<OpenFile> {
    let file_name = format!("part-{stem}.parquet");
    let staged = output.staging.join(format!(
        "{}--{partition}--{file_name}.tmp",
        output.options.dataset
    ));
    let file = if output.options.owner_only {
        create_private_file(&staged)
    } else {
        File::create(&staged)
    }
    .map_err(io("creating a staged file", &staged))?;
    let writer = ArrowWriter::try_new(file, output.schema.clone(), Some(output.properties.clone()))
        .map_err(|source| SinkError::Parquet {
            path: staged.clone(),
            source: Box::new(source),
        })?;
    Ok(OpenFile {
        writer,
        staged,
        key: format!("{}/{partition}/{file_name}", output.prefix),
        rows: 0,
    })
}

#[cfg(test)]
mod tests;
