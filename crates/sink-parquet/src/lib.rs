//! Writes record batches as Hive-partitioned Parquet (`<output>/date=YYYY-MM-DD/part-….parquet`).
//!
//! One [`PartitionedWriter`] per output; `history/`, `devices/` and the
//! quarantine are three instances with their own schema and key prefix. Each
//! segment gets its own [`SegmentFiles`], whose files are all named after
//! the segment's stem. The design decision to know: publishing is two-phase.
//! [`SegmentFiles::seal`] closes every open file (footer written) in the
//! worker's staging directory, outside every dataset root;
//! [`SealedFile::stage`] hands each to the output store without making it
//! visible, and only the store's commit, after the caller has made the keys
//! they use durable, puts them in view. A crash leaves nothing partial in view, and
//! names derived from the segment make a replay replace files instead of
//! adding copies.

mod error;
mod writer;

pub use error::{Result, SinkError};
pub use writer::{PartitionFile, PartitionedWriter, SealedFile, SegmentFiles, WriterOptions};
