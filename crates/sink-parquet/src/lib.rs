//! Writes record batches as Hive-partitioned Parquet (`<root>/date=YYYY-MM-DD/part-….parquet`).
//!
//! One [`PartitionedWriter`] per output; `history/`, `devices/` and the
//! quarantine are three instances with their own schema and root. The design
//! decision to know: publishing is two-phase. [`PartitionedWriter::seal_segment`]
//! closes every open file (footer written, fsynced) under `.staging/`, and
//! only [`publish`] renames them into place, after the caller has made the
//! keys they use durable. Readers (DuckDB, Spark, pyarrow) skip dot-prefixed
//! directories, so a crash leaves nothing partial in view, and names derived
//! from the input position make a re-run replace files instead of adding
//! copies.

mod error;
mod writer;

pub use error::{Result, SinkError};
pub use writer::{PartitionedWriter, SealedFile, WriterOptions, publish};
