//! Wires the stages of delink: source → decode → keys → transform → sinks.
//!
//! A reader thread runs the source (files, stdin or Kafka), worker threads
//! (one per core) decode and transform batches in parallel, the calling
//! thread takes their results back in order within each lane, drops replays
//! of an `observation_id`, and writes `history/`, `devices/` and the
//! quarantine, and a publisher thread makes each sealed segment visible and
//! reports it back to the source.
//!
//! The design decision to know is the publication protocol, per segment:
//! seal every file (footer) in the worker's own staging space, make every key
//! they use durable, and only then rename them into place, then report the
//! segment's end position to the source, which commits it. A crash at any
//! point leaves only complete files in view, and a replay — same names from
//! the same input positions, same keys from the store — replaces them with
//! identical rows. Any key-store or sink failure stops the run (fail closed).

#[doc(hidden)]
pub mod bench_support;
mod dead_letters;
mod dispatch;
mod fence;
mod held;
mod in_flight;
mod keys;
mod lanes;
mod progress;
mod provenance;
mod publisher;
mod replay;
mod run;
mod summary;
mod worker;

pub use progress::Progress;
pub use run::{Pipeline, StoreAccess, open_key_store};
pub use summary::RunSummary;
