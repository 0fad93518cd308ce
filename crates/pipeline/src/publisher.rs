//! The publishing stage: makes a segment's keys durable, then its files visible,
//! then tells the source.
//!
//! Runs on its own thread so the fsyncs of one segment overlap with the
//! processing of the next. Segments are published in the order they were
//! sealed, so each lane's are in lane order; keys are synced before each
//! segment's renames, so no visible file ever uses a key that a crash could lose.
//! A lane the source gave away is fenced (see [`crate::fence`]): what is left of
//! it is dropped here.

use std::collections::BTreeMap;
use std::sync::mpsc::{Receiver, Sender};

use anyhow::{Context, Result, anyhow};
use delink_datadir::{CheckpointFile, DataLayout, OutputStore, UploadArea};
use delink_keystore::KeyStore;
use delink_model::{Dataset, DeadLetters, LaneId, Published, SegmentId, SegmentRange};
use delink_sink_parquet::SealedFile;
use delink_telemetry::{KeystoreOperation, Metrics, Output};

use crate::fence::{Fence, Publishing};
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

/// Where and how segments are published.
pub(crate) struct Destination<'a> {
    pub(crate) layout: &'a DataLayout,
    pub(crate) outputs: &'a OutputStore,
    pub(crate) uploads: UploadArea,
    pub(crate) store: &'a dyn KeyStore,
    pub(crate) dead_letters: Option<&'a dyn DeadLetters>,
    pub(crate) fence: &'a Fence,
}

/// Publishes segments as they arrive until the channel closes, reporting each to the source.
pub(crate) fn publish_segments(
    segments: Receiver<SealedSegment>,
    destination: &Destination<'_>,
    metrics: &Metrics,
    in_flight: &InFlight,
    reports: Sender<Published>,
) -> Result<()> {
    for segment in segments {
        let timer = metrics.publish_duration.start_timer();
        let (lane, first, end_position) = (
            segment.lane,
            segment.segment.first_position,
            segment.end_position,
        );
        let published = publish_segment(segment, destination, metrics)
            .inspect_err(|_| metrics.publish_errors.inc())?;
        // Published or dropped, it no longer holds the worker's watermark back.
        in_flight.published(lane, first);
        // Held until the report is sent, so a fence that waited for it finds the report.
        let Some(_publishing) = published else {
            timer.stop_and_discard();
            continue;
        };
        metrics.segments_published.inc();
        timer.observe_duration();
        // A source that has finished no longer listens.
        let _ = reports.send(Published {
            lane,
            segment_first: first,
            end_position,
        });
    }
    Ok(())
}

/// Makes one segment's keys durable and its files visible, and returns its lane's
/// publication under way; `None` when it dropped the segment of a fenced lane.
fn publish_segment<'a>(
    segment: SealedSegment,
    destination: &Destination<'a>,
    metrics: &Metrics,
) -> Result<Option<Publishing<'a>>> {
    let mut outputs = Vec::with_capacity(segment.files.len());
    let mut sizes = Vec::with_capacity(segment.files.len());
    let mut staged = Vec::with_capacity(segment.files.len());
    for (output, file) in segment.files {
        outputs.push(output);
        sizes.push(file.bytes);
        match file.stage(destination.outputs, &destination.uploads) {
            Ok(upload) => staged.push(upload),
            Err(error) => {
                destination.outputs.abandon(staged);
                return Err(error.into());
            }
        }
    }
    let range = SegmentRange {
        first: segment.segment.first_position,
        end: segment.end_position,
    };
    let Some(publishing) = destination.fence.enter(segment.lane) else {
        destination.outputs.abandon(staged);
        tracing::info!(
            segment = %segment.segment.stem(),
            "a segment of input given away is not published; its next owner publishes it"
        );
        return Ok(None);
    };
    let checkpoint = segment
        .resumable
        .then(|| CheckpointFile::new(destination.layout, &segment.segment.source))
        .transpose()?;
    if let Err(error) = make_durable(destination, metrics, checkpoint.as_ref(), range) {
        destination.outputs.abandon(staged);
        return Err(error);
    }
    destination.outputs.commit(staged)?;
    if let Some(checkpoint) = &checkpoint {
        checkpoint.finish(range)?;
    }
    for (output, bytes) in outputs.iter().zip(sizes) {
        metrics.count_published_file(*output, bytes);
    }
    for (dataset, rows) in segment.rows {
        metrics
            .rows_written
            .with_label_values(&[dataset.as_str()])
            .inc_by(rows);
    }
    Ok(Some(publishing))
}

/// Delivers the segment's dead letters, syncs its keys and records that it is being published.
fn make_durable(
    destination: &Destination<'_>,
    metrics: &Metrics,
    checkpoint: Option<&CheckpointFile>,
    range: SegmentRange,
) -> Result<()> {
    // Before anything is visible: a published position implies its dead letters arrived.
    if let Some(dead_letters) = destination.dead_letters {
        dead_letters
            .flush()
            .map_err(|error| anyhow!(error))
            .context("dead letters were not delivered; the segment is not published")?;
    }
    metrics.count_keystore_operations(KeystoreOperation::Sync, 1);
    destination
        .store
        .sync()
        .inspect_err(|_| {
            metrics.count_keystore_error(KeystoreOperation::Sync);
        })
        .context("cannot make new keys durable; the segment is not published")?;
    if let Some(checkpoint) = checkpoint {
        checkpoint.begin(range)?;
    }
    Ok(())
}
