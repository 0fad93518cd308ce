//! The data directory of delink: where the key store and the workers' own
//! spaces live, where the outputs (`history/`, `devices/`, the quarantine) are
//! stored — beside them or in an object store — how partitions are named and
//! expire, and how workers tell others what they have published.
//!
//! Both the pipeline (which writes) and the lifecycle jobs (retention,
//! erasure, export) use it. The design decision to know: nothing here is a
//! directory-wide lock. Every worker stages in a space of its own
//! (`_workers/<id>/`, held by a lock only it holds, so a crashed worker's
//! space is recognised and cleared by the next), and publishes a watermark
//! — "everything I read before this instant is published" — that lets a
//! retention pass run while workers run.

mod checkpoint;
mod expiry;
mod layout;
mod parquet_io;
mod private;
mod quarantine;
mod store;
mod worker_space;

pub use checkpoint::CheckpointFile;
pub use expiry::purge_expired;
pub use layout::{DataLayout, date_partition, format_day, parse_day, utc_day};
pub use parquet_io::{ParquetContent, read_footer_metadata, read_parquet, write_parquet};
pub use private::{
    PRIVATE_DIR_MODE, PRIVATE_FILE_MODE, append_private_file, create_private_dir_all,
    create_private_file,
};
pub use quarantine::inspect::{QuarantinedRecord, quarantine_counts, quarantined_records};
pub use quarantine::redact::remove_quarantined_mentions;
pub use quarantine::{
    QUARANTINE, QuarantineColumns, QuarantineDays, QuarantineRows, QuarantineSealer, day_key,
    open_quarantined, purge_quarantine, quarantine_schema,
};
pub use store::{OutputStore, StagedUpload, StoredObject, UploadArea};
pub use worker_space::{Watermark, WorkerSpace, live_watermarks};
