use std::ops::Range;

/// Holds a run of input records, as bytes, with their positions in the input.
///
/// Every source (NDJSON files, Kafka partitions) yields these; everything
/// downstream is the same whatever the source. Batches never span segments:
/// a segment is the unit of publication, and its files are named after
/// `segment_stem`, so replaying the same input rewrites the same files.
#[derive(Debug, Default)]
pub struct RawBatch {
    /// Names the segment (source tag and first position); used in output file names.
    pub segment_stem: String,
    /// Set on the last batch of a segment: after it, the segment's files are published.
    pub closes_segment: bool,
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
