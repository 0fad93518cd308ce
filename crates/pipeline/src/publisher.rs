//! The publishing stage: makes a segment's keys durable, then its files visible.
//!
//! Runs on its own thread so the fsyncs of one segment overlap with the
//! processing of the next. Segments are published in order; keys are synced
//! before each segment's renames, so no visible file ever uses a key that a
//! crash could lose.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::mpsc::Receiver;

use anyhow::{Context, Result};
use delink_keystore::KeyStore;
use delink_model::Dataset;
use delink_sink_parquet::{SealedFile, publish};
use delink_telemetry::Metrics;

/// The sealed files of one segment, with the rows they hold.
pub(crate) struct SealedSegment {
    pub(crate) files: Vec<(&'static str, SealedFile)>,
    pub(crate) rows: BTreeMap<Dataset, u64>,
}

/// What the publisher made visible.
#[derive(Debug, Default)]
pub(crate) struct Published {
    pub(crate) files: u64,
    pub(crate) segments: u64,
}

/// Publishes segments as they arrive until the channel closes.
pub(crate) fn publish_segments(
    segments: Receiver<SealedSegment>,
    store: Arc<dyn KeyStore>,
    metrics: Arc<Metrics>,
) -> Result<Published> {
    let mut published = Published::default();
    for segment in segments {
        let timer = metrics.publish_duration.start_timer();
        store
            .sync()
            .context("cannot make new keys durable; the segment is not published")?;
        let (outputs, files): (Vec<&'static str>, Vec<SealedFile>) =
            segment.files.into_iter().unzip();
        publish(&files)?;
        for output in outputs {
            metrics.files_published.with_label_values(&[output]).inc();
        }
        for (dataset, rows) in segment.rows {
            metrics
                .rows_written
                .with_label_values(&[dataset.as_str()])
                .inc_by(rows);
        }
        metrics.segments_published.inc();
        published.files += files.len() as u64;
        published.segments += 1;
        timer.observe_duration();
    }
    Ok(published)
}
