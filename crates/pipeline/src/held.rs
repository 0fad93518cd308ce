//! Rows a segment holds until its seal, spilled to disk as they arrive.
//!
//! A day's rows are written whole at the seal (sorted, devices/ anonymised),
//! so they wait somewhere until then. They wait in an Arrow IPC stream file
//! in the worker's private staging directory, not in memory: a worker's
//! memory stays flat however long its segments run, and the page cache, not
//! the heap, absorbs what the seal reads back. The file is deleted when its
//! rows are taken or the segment is dropped.

use std::fs::File;
use std::io::{BufReader, BufWriter};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use arrow_array::RecordBatch;
use arrow_ipc::reader::StreamReader;
use arrow_ipc::writer::StreamWriter;
use arrow_schema::SchemaRef;
use arrow_select::concat::concat_batches;
use delink_datadir::create_private_file;

/// One dataset's rows of one day, held for a segment's seal.
pub(crate) struct HeldRows {
    path: PathBuf,
    schema: SchemaRef,
    writer: Option<StreamWriter<BufWriter<File>>>,
}

impl HeldRows {
    /// Starts holding rows of `schema` in a new private file at `path`.
    pub(crate) fn create(path: PathBuf, schema: SchemaRef) -> Result<Self> {
        let file = create_private_file(&path)
            .with_context(|| format!("cannot create {}", path.display()))?;
        let writer = StreamWriter::try_new(BufWriter::with_capacity(1 << 20, file), &schema)
            .with_context(|| format!("cannot write {}", path.display()))?;
        Ok(HeldRows {
            path,
            schema,
            writer: Some(writer),
        })
    }

    /// Adds rows.
    pub(crate) fn push(&mut self, batch: &RecordBatch) -> Result<()> {
        let writer = self.writer.as_mut().context("held rows already taken")?;
        writer
            .write(batch)
            .with_context(|| format!("cannot write {}", self.path.display()))
    }

    /// Finishes the file, so that nothing more is buffered in memory.
    pub(crate) fn finish(&mut self) -> Result<()> {
        if let Some(mut writer) = self.writer.take() {
            writer
                .finish()
                .and_then(|()| writer.into_inner())
                .with_context(|| format!("cannot write {}", self.path.display()))?;
        }
        Ok(())
    }

    /// Reads every held row back, as one batch; the file is deleted.
    pub(crate) fn take(mut self) -> Result<RecordBatch> {
        self.finish()?;
        let read = |path: &Path| -> Result<RecordBatch> {
            let file = File::open(path)?;
            let reader = StreamReader::try_new(BufReader::with_capacity(1 << 20, file), None)?;
            let batches = reader.collect::<Result<Vec<_>, _>>()?;
            Ok(concat_batches(&self.schema, &batches)?)
        };
        read(&self.path).with_context(|| format!("cannot read back {}", self.path.display()))
    }
}

impl Drop for HeldRows {
    fn drop(&mut self) {
        // Rows taken, or a segment given up: either way nothing here is wanted.
        // A worker that dies first leaves the file to the sweep of its space.
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{Int64Array, StringArray};
    use arrow_schema::{DataType, Field, Schema};

    use super::*;

    fn rows(from: i64, count: i64) -> RecordBatch {
        let schema = Schema::new(vec![
            Field::new("n", DataType::Int64, false),
            Field::new("text", DataType::Utf8, true),
        ]);
        let numbers: Vec<i64> = (from..from + count).collect();
        let texts: Vec<Option<String>> = numbers
            .iter()
            .map(|n| (n % 3 != 0).then(|| format!("row {n}")))
            .collect();
        RecordBatch::try_new(
            Arc::new(schema),
            vec![
                Arc::new(Int64Array::from(numbers)),
                Arc::new(StringArray::from(texts)),
            ],
        )
        .expect("batch")
    }

    #[test]
    fn held_rows_come_back_in_order_and_the_file_goes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("held");
        let mut held = HeldRows::create(path.clone(), rows(0, 1).schema()).expect("create");
        held.push(&rows(0, 1000)).expect("push");
        held.push(&rows(1000, 0)).expect("push");
        held.push(&rows(1000, 24)).expect("push");
        assert!(path.exists());
        let back = held.take().expect("take");
        let expected =
            concat_batches(&back.schema(), &[rows(0, 1000), rows(1000, 24)]).expect("concat");
        assert_eq!(back, expected);
        assert!(!path.exists(), "the file outlived its rows");
    }

    #[test]
    fn rows_of_a_dropped_segment_leave_no_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("held");
        let mut held = HeldRows::create(path.clone(), rows(0, 1).schema()).expect("create");
        held.push(&rows(0, 10)).expect("push");
        drop(held);
        assert!(!path.exists());
    }

    #[cfg(unix)]
    #[test]
    fn held_rows_are_readable_by_their_owner_alone() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("held");
        let _held = HeldRows::create(path.clone(), rows(0, 1).schema()).expect("create");
        let mode = std::fs::metadata(&path)
            .expect("metadata")
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "mode {mode:o}");
    }
}
