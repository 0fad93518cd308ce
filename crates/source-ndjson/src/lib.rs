//! Reads NDJSON (files or stdin) into [`RawBatch`]es of lines with their line numbers.
//!
//! The embedded-default source of delink. The design decision to know:
//! batches are cut at segment boundaries (every `segment_lines` lines), and
//! each segment is named after a tag of the input's name and its first line,
//! so re-running the same file produces the same output file names.
//! Oversized lines are kept only up to a cap, with their full length, so a
//! megabyte-long line costs bounded memory yet is still quarantined.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use delink_model::{RawBatch, RawRecord};

/// Tunes batching and memory.
#[derive(Debug, Clone)]
pub struct SourceOptions {
    /// Lines per batch (upper bound).
    pub batch_lines: usize,
    /// Lines per segment, the unit of publication; a multiple of nothing in particular.
    pub segment_lines: u64,
    /// Bytes of an oversized line that are kept (for the quarantine).
    pub keep_bytes: usize,
}

/// Explains why the input could not be read.
#[derive(Debug, thiserror::Error)]
#[error("reading {input} failed")]
pub struct SourceError {
    /// The input's name, as the operator gave it.
    pub input: String,
    /// The operating-system error.
    pub source: io::Error,
}

/// Reads one NDJSON input.
pub struct NdjsonSource {
    name: String,
    tag: String,
    reader: Box<dyn BufRead + Send>,
    options: SourceOptions,
    next_line: u64,
    finished: bool,
    /// A batch of the current segment went out without closing it.
    segment_open: bool,
}

impl NdjsonSource {
    /// Opens a file, or standard input when `path` is `-`.
    pub fn open(path: &Path, options: SourceOptions) -> Result<Self, SourceError> {
        if path == Path::new("-") {
            return Ok(Self::from_reader("stdin", Box::new(io::stdin()), options));
        }
        let name = path.display().to_string();
        let file = File::open(path).map_err(|source| SourceError {
            input: name.clone(),
            source,
        })?;
        let canonical = path.canonicalize().unwrap_or_else(|_| PathBuf::from(path));
        let mut source =
            Self::from_reader(&canonical.display().to_string(), Box::new(file), options);
        source.name = name;
        Ok(source)
    }

    /// Reads from any byte stream; `identity` names it in output file names (hashed).
    pub fn from_reader(
        identity: &str,
        reader: Box<dyn Read + Send>,
        options: SourceOptions,
    ) -> Self {
        let digest = blake3::hash(identity.as_bytes());
        let tag = digest.to_hex()[..12].to_owned();
        NdjsonSource {
            name: identity.to_owned(),
            tag,
            reader: Box::new(BufReader::with_capacity(1 << 20, reader)),
            options,
            next_line: 1,
            finished: false,
            segment_open: false,
        }
    }

    /// Reads the next batch; `None` once the input is exhausted.
    pub fn next_batch(&mut self) -> Result<Option<RawBatch>, SourceError> {
        self.next_batch_into(Vec::new())
    }

    /// Reads the next batch into `buffer` (cleared first), so callers can recycle
    /// the byte buffers of batches they are done with.
    pub fn next_batch_into(
        &mut self,
        mut buffer: Vec<u8>,
    ) -> Result<Option<RawBatch>, SourceError> {
        buffer.clear();
        if self.finished && !self.segment_open {
            return Ok(None);
        }
        let segment_lines = self.options.segment_lines.max(1);
        let segment = (self.next_line - 1) / segment_lines;
        let segment_first_line = segment * segment_lines + 1;
        let segment_last_line = segment_first_line + segment_lines - 1;
        let mut batch = RawBatch {
            segment_stem: format!("{}-{segment_first_line:012}", self.tag),
            data: buffer,
            ..RawBatch::default()
        };
        while batch.records.len() < self.options.batch_lines && self.next_line <= segment_last_line
        {
            let line_number = self.next_line;
            let Some(line) = self.read_line(&mut batch).map_err(|source| SourceError {
                input: self.name.clone(),
                source,
            })?
            else {
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
        batch.closes_segment = self.finished || self.next_line > segment_last_line;
        let nothing_new = batch.records.is_empty() && batch.blank_lines == 0;
        if nothing_new && self.finished && !self.segment_open {
            return Ok(None);
        }
        self.segment_open = !batch.closes_segment;
        Ok(Some(batch))
    }

    /// Appends one line to `batch.data`. Returns `None` at end of input, `Some(None)` for
    /// a blank line, else the record (position filled in by the caller).
    fn read_line(&mut self, batch: &mut RawBatch) -> io::Result<Option<Option<RawRecord>>> {
        let start = batch.data.len();
        let mut full_len: u64 = 0;
        let mut saw_anything = false;
        loop {
            let available = self.reader.fill_buf()?;
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

#[cfg(test)]
mod tests;
