//! Reads NDJSON (files or stdin) into [`RawBatch`]es of lines with their line numbers.
//!
//! The embedded-default source of delink. The inputs of a run are read one
//! after another as one lane, so replays are recognised across them. The design
//! decision to know is identity: a file's segments are named after a digest
//! of its whole content (read once before processing), so re-running the
//! same content adds nothing wherever the file lives, and a file regenerated
//! at the same path adds its rows; every stdin run gets a fresh random
//! identity, since nothing can tell two streams apart. Batches are bounded
//! by lines and by bytes, and oversized lines are kept only up to a cap with
//! their full length, so megabyte-long lines cost bounded memory yet are
//! still quarantined.

mod identity;
mod reader;
mod stdin;

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use delink_model::{LaneId, Source, SourceContext, SourceError};

use crate::stdin::StoppableStdin;

pub use identity::{content_identity, fresh_identity};
pub use reader::LineReader;

/// Tunes batching and memory.
#[derive(Debug, Clone)]
pub struct SourceOptions {
    /// Lines per batch (upper bound).
    pub batch_lines: usize,
    /// Kept bytes per batch: a batch ends once it holds this many.
    pub batch_bytes: usize,
    /// Lines per segment, the unit of publication.
    pub segment_lines: u64,
    /// Bytes of an oversized line that are kept (for the quarantine).
    pub keep_bytes: usize,
    /// Segments of stdin also close once this old, so a slow stream still publishes.
    pub stream_segment_age: std::time::Duration,
}

/// Explains why an input could not be read.
#[derive(Debug, thiserror::Error)]
#[error("reading {input} failed")]
pub struct ReadError {
    /// The input's name, as the operator gave it.
    pub input: String,
    /// The operating-system error.
    pub source: io::Error,
}

/// Reads NDJSON inputs in order, as one lane; `-` is standard input.
pub struct NdjsonSource {
    inputs: Vec<PathBuf>,
    options: SourceOptions,
    /// Ends a silent stdin when set (the pipeline's stop flag).
    stop: Arc<AtomicBool>,
}

impl NdjsonSource {
    /// Prepares to read `inputs` in order; nothing is opened yet. `stop` is the flag
    /// that asks the run to stop: a stdin that stays silent then reads as ended.
    pub fn new(inputs: Vec<PathBuf>, options: SourceOptions, stop: Arc<AtomicBool>) -> Self {
        NdjsonSource {
            inputs,
            options,
            stop,
        }
    }

    fn open(&self, path: &Path) -> Result<LineReader, ReadError> {
        let read_error = |source| ReadError {
            input: path.display().to_string(),
            source,
        };
        if path == Path::new("-") {
            let identity = fresh_identity().map_err(read_error)?;
            let stdin = StoppableStdin::spawn(Arc::clone(&self.stop)).map_err(read_error)?;
            return Ok(
                LineReader::new(identity, Box::new(stdin), self.options.clone())
                    .with_max_age(self.options.stream_segment_age),
            );
        }
        let identity = content_identity(path).map_err(read_error)?;
        let file = File::open(path).map_err(read_error)?;
        Ok(LineReader::new(
            identity,
            Box::new(file),
            self.options.clone(),
        ))
    }
}

impl Source for NdjsonSource {
    fn run(&mut self, mut context: Box<dyn SourceContext + Send>) -> Result<(), SourceError> {
        let lane: LaneId = 0;
        for path in &self.inputs {
            let mut reader = self.open(path)?;
            tracing::debug!(input = %path.display(), "reading");
            loop {
                if context.stop_requested() {
                    // Publish what was read: the segment closes where the reading stopped.
                    if let Some(batch) = reader.close_early(lane) {
                        context.emit(batch)?;
                    }
                    return Ok(());
                }
                let Some(batch) = reader.next_batch(lane, context.buffer())? else {
                    break;
                };
                context.emit(batch)?;
            }
        }
        Ok(())
    }
}

/// The identity type every reader is named by.
pub type Identity = Arc<str>;

#[cfg(test)]
mod tests;
