//! The seam between sources and the pipeline, and the delivery model.
//!
//! # Checkpoints and the exactly-once effect
//!
//! A source cuts its input into **lanes** (an input file, a stdin run, a Kafka
//! topic-partition) and each lane into **segments**: contiguous runs of
//! records, named by [`SegmentId`] (source identity + first position). The
//! pipeline keeps order, replay detection and open files per lane, so a slow
//! or revoked lane never holds the others.
//!
//! A segment is published all at once: every file it produced (in `history/`,
//! `devices/` and the quarantine) is sealed in the worker's staging space,
//! the keys it used are made durable, and only then are the files renamed
//! into view. The pipeline then reports a [`Published`] position back through
//! [`SourceContext::next_published`]; it is the position just past the
//! segment. Segments of one lane are published in order, so a source that
//! commits only reported positions commits only positions that are published
//! and contiguous.
//!
//! A resumable source (Kafka) also finds, through [`SourceContext::checkpoint`],
//! what the output holds of each of its identities: the end of the last
//! published segment, and a segment whose publication began but may not have
//! finished (the pipeline records it durably before renaming any of its
//! files). After a crash the source resumes from the later of its committed
//! position and the published end, so nothing published is read again; a
//! segment caught mid-publication is rebuilt with exactly the same first and
//! end positions, under the same name, and replaces its own files: each
//! record's effect is in the output exactly once. File names come from the source identity, never from the wall
//! clock, and an identity covers the input's content, so different input
//! never shares a name and re-running the same input adds nothing.
//!
//! A source that gives a lane away (a revoked partition) before its segments
//! are published fences the lane ([`SourceContext::fence`]): what this worker
//! has not begun to publish of it is dropped, so the next owner, which resumes
//! from the checkpoint and may cut segments elsewhere, is the only one to
//! publish those records.
//!
//! # Shutdown
//!
//! When [`SourceContext::stop_requested`] turns true, a source stops reading,
//! closes every open segment (a closing batch may carry no record), waits for
//! their publication within its deadline, commits, and returns.

use std::time::Duration;

use crate::{LaneId, RawBatch};

/// A position of a lane that is durably published: every record before it is in the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Published {
    /// The lane.
    pub lane: LaneId,
    /// First position of the segment that was published.
    pub segment_first: u64,
    /// The position just past the segment.
    pub end_position: u64,
}

/// What the output holds of one resumable source identity.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Checkpoint {
    /// The position just past the last segment whose publication finished.
    pub published_end: Option<u64>,
    /// A segment whose publication began and may not have finished: rebuild it with
    /// exactly these positions.
    pub publishing: Option<SegmentRange>,
}

/// The positions of one segment: `first` up to, not including, `end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SegmentRange {
    /// Position of the first record.
    pub first: u64,
    /// The position just past the segment.
    pub end: u64,
}

/// The pipeline has stopped taking batches (it failed or is shutting down); the source
/// should return.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the pipeline stopped taking input")]
pub struct PipelineStopped;

/// What a source reads into and hears back from; implemented by the pipeline.
pub trait SourceContext {
    /// Hands a batch to the pipeline, blocking while it is full (backpressure).
    fn emit(&mut self, batch: RawBatch) -> Result<(), PipelineStopped>;

    /// Returns an empty byte buffer to read the next batch into, recycled when possible.
    fn buffer(&mut self) -> Vec<u8>;

    /// Waits at most `timeout` for the next publication report.
    fn next_published(&mut self, timeout: Duration) -> Option<Published>;

    /// Tells whether shutdown was requested.
    fn stop_requested(&self) -> bool;

    /// Returns what the output holds of a resumable source identity.
    fn checkpoint(&mut self, source: &str) -> Result<Checkpoint, SourceError>;

    /// Stops publishing `lane` for good: its segments that have not begun publication
    /// are dropped, and one whose publication began is waited for. A source calls it
    /// before it gives a lane's input away with segments still unpublished, so that the
    /// next owner, which resumes from the checkpoint, is the only one to publish them.
    fn fence(&mut self, lane: LaneId);
}

/// Any error a source stops with; the pipeline reports it with its context.
pub type SourceError = Box<dyn std::error::Error + Send + Sync>;

/// Reads one kind of input into lanes and segments (see the module documentation).
pub trait Source: Send {
    /// Reads until the input ends or a stop is requested, emitting batches into
    /// `context`; returns once everything it emitted is closed. The context is
    /// owned so that a source may hand it to its client library's callbacks.
    fn run(&mut self, context: Box<dyn SourceContext + Send>) -> Result<(), SourceError>;

    /// Tells whether the source reports its own readiness (a consumer joins its group
    /// first); otherwise the pipeline counts it ready once it starts.
    fn reports_readiness(&self) -> bool {
        false
    }
}
