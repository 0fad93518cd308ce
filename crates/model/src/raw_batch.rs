use std::ops::Range;
use std::sync::Arc;

/// Numbers one input lane of a run: an input file, a stdin run, or one Kafka
/// topic-partition. Ordering, replay detection and segments are per lane.
pub type LaneId = u32;

/// Names one segment, the unit of publication: the identity of its source
/// and the position of its first record.
///
/// Every output file of the segment is named after [`SegmentId::stem`], so
/// replaying the same input rewrites the same files, and the source identity
/// keeps different input from ever sharing a name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct SegmentId {
    /// The source's identity, safe for a file name (`[a-z0-9._-]`): a digest of a
    /// file's content, a fresh random tag per stdin run, or `<topic>-<partition>`.
    pub source: Arc<str>,
    /// Position of the segment's first record (line number, or Kafka offset).
    pub first_position: u64,
}

impl SegmentId {
    /// Returns the stem of the segment's file names: `<source>-<first position>`.
    pub fn stem(&self) -> String {
        format!("{}-{:012}", self.source, self.first_position)
    }
}

/// Holds a run of input records, as bytes, with their coordinates in the input.
///
/// Every source (NDJSON files, Kafka partitions) yields these; everything
/// downstream is the same whatever the source. Batches never span segments.
#[derive(Debug, Default)]
pub struct RawBatch {
    /// The lane the batch belongs to.
    pub lane: LaneId,
    /// The segment the batch belongs to.
    pub segment: SegmentId,
    /// Set on the last batch of a segment: after it, the segment's files are published.
    pub closes_segment: bool,
    /// The position just past this batch (the next line, or the next Kafka offset):
    /// what the source may commit once the segment is published.
    pub end_position: u64,
    /// The records were published before (a resumed source re-reads them only to
    /// recognise replays of their observation ids); nothing of them is written again.
    pub already_published: bool,
    /// The source resumes from checkpoints: the pipeline records this lane's
    /// published positions under the source identity (see [`crate::Checkpoint`]).
    pub resumable: bool,
    /// The last batch of the lane (with `closes_segment`): the pipeline forgets the
    /// lane once its segment is sealed (a revoked Kafka partition).
    pub closes_lane: bool,
    /// The lane was lost (a Kafka partition now owned by another consumer): its open
    /// segment is dropped unpublished, whatever was written of it. Comes with
    /// `closes_lane` and no record.
    pub discards_segment: bool,
    /// Bytes of all records, back to back.
    pub data: Vec<u8>,
    /// The records, in input order.
    pub records: Vec<RawRecord>,
    /// Input bytes consumed for this batch (record bytes, separators, skipped blanks).
    pub input_bytes: u64,
    /// Blank lines skipped while reading this batch.
    pub blank_lines: u64,
}

/// Locates one record inside a [`RawBatch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawRecord {
    /// Position in the source (line number, or Kafka offset).
    pub position: u64,
    /// Where the kept bytes are in `RawBatch::data`.
    pub range: Range<usize>,
    /// The record's full length; larger than the range when an oversized record was cut.
    pub full_len: u64,
}

impl RawBatch {
    /// Returns the kept bytes of a record.
    pub fn bytes(&self, record: &RawRecord) -> &[u8] {
        &self.data[record.range.clone()]
    }
}
