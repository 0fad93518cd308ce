//! Wires the stages of delink: source → decode → keys → transform → sinks.
//!
//! One reader thread cuts the input into batches, worker threads (one per
//! core) decode and transform them in parallel, and the calling thread takes
//! their results back in input order, drops replays of an `observation_id`,
//! and writes `history/`, `devices/` and `quarantine/`.
//!
//! The design decision to know is the publication protocol, per segment:
//! seal every file (footer, fsync) under `.staging/`, make every key they use
//! durable, and only then rename them into place. A crash at any point leaves
//! only complete files in view, and a re-run — same names from the same
//! input positions, same keys from the store — replaces them with identical
//! rows. Any key-store or sink failure stops the run (fail closed).

mod inspect;
mod keys;
mod layout;
mod progress;
mod publisher;
mod quarantine;
mod replay;
mod run;
mod summary;
mod worker;

pub use inspect::{QuarantinedRecord, quarantine_counts, quarantined_records};
pub use keys::subject_entity;
pub use layout::{DataLayout, RunLock, utc_day};
pub use progress::Progress;
pub use quarantine::{open_quarantined, purge_expired, purge_quarantine};
pub use run::{Pipeline, open_key_store};
pub use summary::RunSummary;
