//! The publishing stage: makes a segment's keys durable, then its files visible,
//! then tells the source.
//!
//! Runs on its own thread so the fsyncs of one segment overlap with the
//! processing of the next. Segments are published in the order they were
//! sealed, so each lane's are in lane order; keys are synced before each
//! segment's renames, so no visible file ever uses a key that a crash could lose.

use std::collections::BTreeMap;
use std::sync::mpsc::{Receiver, Sender};

use anyhow::{Context, Result};
use delink_keystore::KeyStore;
use delink_model::{Dataset, LaneId, Published};
use delink_sink_parquet::{SealedFile, publish};
use delink_telemetry::{KeystoreOperation, Metrics, Output};

use crate::in_flight::InFlight;

/// The sealed files of one segment, with the rows they hold.
pub(crate) struct SealedSegment {
    pub(crate) lane: LaneId,
    pub(crate) segment_first: u64,
    pub(crate) end_position: u64,
    pub(crate) files: Vec<(Output, SealedFile)>,
    pub(crate) rows: BTreeMap<Dataset, u64>,
}

/// Publishes segments as they arrive until the channel closes, reporting each to the source.
pub(crate) fn publish_segments(
    segments: Receiver<SealedSegment>,
    store: &dyn KeyStore,
    metrics: &Metrics,
    in_flight: &InFlight,
    reports: Sender<Published>,
) -> Result<()> {
    for segment in segments {
        let timer = metrics.publish_duration.start_timer();
        metrics.count_keystore_operations(KeystoreOperation::Sync, 1);
        store
            .sync()
            .inspect_err(|_| {
                metrics.count_keystore_error(KeystoreOperation::Sync);
            })
            .context("cannot make new keys durable; the segment is not published")?;
        let (outputs, files): (Vec<Output>, Vec<SealedFile>) = segment.files.into_iter().unzip();
        publish(&files)?;
        for (output, file) in outputs.iter().zip(&files) {
            metrics.count_published_file(*output, file.bytes);
        }
        for (dataset, rows) in segment.rows {
            metrics
                .rows_written
                .with_label_values(&[dataset.as_str()])
                .inc_by(rows);
        }
        metrics.segments_published.inc();
        timer.observe_duration();
        in_flight.published(segment.lane, segment.segment_first);
        // A source that has finished no longer listens.
        let _ = reports.send(Published {
            lane: segment.lane,
            segment_first: segment.segment_first,
            end_position: segment.end_position,
        });
    }
    Ok(())
}
