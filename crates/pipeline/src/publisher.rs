//! The publishing stage: makes a segment's keys durable, then its files visible,
//! then tells the source.
//!
//! Runs on its own thread so the fsyncs of one segment overlap with the
//! processing of the next. Segments are published in the order they were
//! sealed, so each lane's are in lane order; keys are synced before each
//! segment's renames, so no visible file ever uses a key that a crash could lose.

use std::collections::BTreeMap;
use std::sync::mpsc::{Receiver, Sender};

use anyhow::{Context, Result, anyhow};
use delink_datadir::{CheckpointFile, DataLayout};
use delink_keystore::KeyStore;
use delink_model::{Dataset, DeadLetters, LaneId, Published, SegmentId, SegmentRange};
use delink_sink_parquet::{SealedFile, publish};
use delink_telemetry::{KeystoreOperation, Metrics, Output};

use crate::in_flight::InFlight;

/// The sealed files of one segment, with the rows they hold.
pub(crate) struct SealedSegment {
    pub(crate) lane: LaneId,
    pub(crate) segment: SegmentId,
    pub(crate) end_position: u64,
    /// Record the published positions under the segment's source identity.
    pub(crate) resumable: bool,
    pub(crate) files: Vec<(Output, SealedFile)>,
    pub(crate) rows: BTreeMap<Dataset, u64>,
}

/// Publishes segments as they arrive until the channel closes, reporting each to the source.
pub(crate) fn publish_segments(
    segments: Receiver<SealedSegment>,
    layout: &DataLayout,
    store: &dyn KeyStore,
    metrics: &Metrics,
    in_flight: &InFlight,
    reports: Sender<Published>,
    dead_letters: Option<&dyn DeadLetters>,
) -> Result<()> {
    for segment in segments {
        let timer = metrics.publish_duration.start_timer();
        let (lane, end_position) = (segment.lane, segment.end_position);
        let first = publish_segment(segment, layout, store, metrics, dead_letters)
            .inspect_err(|_| metrics.publish_errors.inc())?;
        metrics.segments_published.inc();
        timer.observe_duration();
        in_flight.published(lane, first);
        // A source that has finished no longer listens.
        let _ = reports.send(Published {
            lane,
            segment_first: first,
            end_position,
        });
    }
    Ok(())
}

/// Makes one segment's keys durable and its files visible; returns its first position.
fn publish_segment(
    segment: SealedSegment,
    layout: &DataLayout,
    store: &dyn KeyStore,
    metrics: &Metrics,
    dead_letters: Option<&dyn DeadLetters>,
) -> Result<u64> {
    // Before anything is visible: a published position implies its dead letters arrived.
    if let Some(destination) = dead_letters {
        destination
            .flush()
            .map_err(|error| anyhow!(error))
            .context("dead letters were not delivered; the segment is not published")?;
    }
    metrics.count_keystore_operations(KeystoreOperation::Sync, 1);
    store
        .sync()
        .inspect_err(|_| {
            metrics.count_keystore_error(KeystoreOperation::Sync);
        })
        .context("cannot make new keys durable; the segment is not published")?;
    let range = SegmentRange {
        first: segment.segment.first_position,
        end: segment.end_position,
    };
    let checkpoint = segment
        .resumable
        .then(|| CheckpointFile::new(layout, &segment.segment.source))
        .transpose()?;
    if let Some(checkpoint) = &checkpoint {
        checkpoint.begin(range)?;
    }
    let (outputs, files): (Vec<Output>, Vec<SealedFile>) = segment.files.into_iter().unzip();
    publish(&files)?;
    if let Some(checkpoint) = &checkpoint {
        checkpoint.finish(range)?;
    }
    for (output, file) in outputs.iter().zip(&files) {
        metrics.count_published_file(*output, file.bytes);
    }
    for (dataset, rows) in segment.rows {
        metrics
            .rows_written
            .with_label_values(&[dataset.as_str()])
            .inc_by(rows);
    }
    Ok(range.first)
}
