//! Cuts one byte stream into line batches and segments.

use std::io::{self, BufRead, BufReader, Read};
use std::time::{Duration, Instant};

use delink_model::{LaneId, RawBatch, RawRecord, SegmentId};

use crate::{Identity, ReadError, SourceOptions};

/// Reads one NDJSON stream into batches of numbered lines, cut at segment boundaries.
pub struct LineReader {
    identity: Identity,
    reader: Box<dyn BufRead + Send>,
    options: SourceOptions,
    next_line: u64,
    finished: bool,
    /// A batch of the current segment went out without closing it.
    segment_open: bool,
    /// First line of the current segment.
    segment_first_line: u64,
    /// When the current segment's first batch went out.
    segment_opened: Option<Instant>,
    /// Segments of a stream close after this long, so a slow stream still publishes.
    max_age: Option<Duration>,
}

impl LineReader {
    /// Reads from any byte stream, naming its segments after `identity`.
    pub fn new(identity: Identity, reader: Box<dyn Read + Send>, options: SourceOptions) -> Self {
        LineReader {
            identity,
            reader: Box::new(BufReader::with_capacity(1 << 20, reader)),
            options,
            next_line: 1,
            finished: false,
            segment_open: false,
            segment_first_line: 1,
            segment_opened: None,
            max_age: None,
        }
    }

    /// Closes segments once they are `max_age` old as well as at `segment_lines`
    /// (for streams: their segment boundaries depend on timing, never their names).
    pub fn with_max_age(mut self, max_age: Duration) -> Self {
        self.max_age = Some(max_age);
        self
    }

    fn segment(&self) -> (SegmentId, u64) {
        let segment = SegmentId {
            source: self.identity.clone(),
            first_position: self.segment_first_line,
        };
        let last_line = self.segment_first_line + self.options.segment_lines.max(1) - 1;
        (segment, last_line)
    }

    fn segment_too_old(&self) -> bool {
        self.max_age
            .zip(self.segment_opened)
            .is_some_and(|(max_age, opened)| opened.elapsed() >= max_age)
    }

    /// Reads the next batch of `lane` into `buffer` (cleared first); `None` once the
    /// input is exhausted and its last segment closed.
    pub fn next_batch(
        &mut self,
        lane: LaneId,
        mut buffer: Vec<u8>,
    ) -> Result<Option<RawBatch>, ReadError> {
        buffer.clear();
        if self.finished && !self.segment_open {
            return Ok(None);
        }
        let (segment, segment_last_line) = self.segment();
        let mut batch = RawBatch {
            lane,
            segment,
            data: buffer,
            ..RawBatch::default()
        };
        while batch.records.len() < self.options.batch_lines
            && batch.data.len() < self.options.batch_bytes
            && self.next_line <= segment_last_line
        {
            let line_number = self.next_line;
            let line = match self.read_line(&mut batch) {
                Ok(line) => line,
                // A quiet stream: what was read goes out now, the rest later.
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                    let nothing_read = batch.records.is_empty() && batch.blank_lines == 0;
                    if nothing_read && !self.segment_too_old() {
                        continue;
                    }
                    break;
                }
                Err(source) => {
                    return Err(ReadError {
                        input: self.identity.to_string(),
                        source,
                    });
                }
            };
            let Some(line) = line else {
                self.finished = true;
                break;
            };
            self.next_line += 1;
            if let Some(record) = line {
                batch.records.push(RawRecord {
                    position: line_number,
                    ..record
                });
            }
        }
        batch.closes_segment =
            self.finished || self.next_line > segment_last_line || self.segment_too_old();
        batch.end_position = self.next_line;
        let nothing_new = batch.records.is_empty() && batch.blank_lines == 0;
        if nothing_new && !self.segment_open && (self.finished || !batch.closes_segment) {
            return Ok(None);
        }
        self.mark(batch.closes_segment);
        Ok(Some(batch))
    }

    /// Notes that a batch went out, closing its segment or not.
    fn mark(&mut self, closes_segment: bool) {
        if closes_segment {
            self.segment_open = false;
            self.segment_opened = None;
            self.segment_first_line = self.next_line;
        } else {
            self.segment_open = true;
            self.segment_opened.get_or_insert_with(Instant::now);
        }
    }

    /// Closes the open segment where reading stopped: a batch with no record that
    /// closes it, or `None` when no segment is open.
    pub fn close_early(&mut self, lane: LaneId) -> Option<RawBatch> {
        if !self.segment_open {
            return None;
        }
        self.finished = true;
        let batch = RawBatch {
            lane,
            segment: self.segment().0,
            closes_segment: true,
            end_position: self.next_line,
            ..RawBatch::default()
        };
        self.mark(true);
        Some(batch)
    }

    /// Appends one line to `batch.data`. Returns `None` at end of input, `Some(None)` for
    /// a blank line, else the record (position filled in by the caller).
    fn read_line(&mut self, batch: &mut RawBatch) -> io::Result<Option<Option<RawRecord>>> {
        let start = batch.data.len();
        let mut full_len: u64 = 0;
        let mut saw_anything = false;
        loop {
            let available = match self.reader.fill_buf() {
                Ok(available) => available,
                // Mid-line, wait for the rest; at a line start, tell the caller.
                Err(error) if error.kind() == io::ErrorKind::WouldBlock && saw_anything => continue,
                Err(error) => return Err(error),
            };
            if available.is_empty() {
                break;
            }
            saw_anything = true;
            let (chunk, consumed, ends_line) = match memchr::memchr(b'\n', available) {
                Some(at) => (&available[..at], at + 1, true),
                None => (available, available.len(), false),
            };
            let room = self
                .options
                .keep_bytes
                .saturating_sub(batch.data.len() - start);
            batch
                .data
                .extend_from_slice(&chunk[..chunk.len().min(room)]);
            full_len += chunk.len() as u64;
            batch.input_bytes += consumed as u64;
            self.reader.consume(consumed);
            if ends_line {
                break;
            }
        }
        if !saw_anything {
            return Ok(None);
        }
        if batch.data[start..].last() == Some(&b'\r') {
            batch.data.pop();
            full_len -= 1;
        }
        if batch.data[start..].iter().all(u8::is_ascii_whitespace)
            && full_len == (batch.data.len() - start) as u64
        {
            batch.data.truncate(start);
            batch.blank_lines += 1;
            return Ok(Some(None));
        }
        Ok(Some(Some(RawRecord {
            position: 0,
            range: start..batch.data.len(),
            full_len,
        })))
    }
}
