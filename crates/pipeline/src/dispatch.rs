//! The pipeline's side of the source seam: numbers batches per lane, picks each
//! segment's quarantine day, and passes publication reports back.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender};
use std::time::Duration;

use anyhow::Context;
use delink_datadir::{CheckpointFile, DataLayout, OutputStore, QuarantineDays, utc_day};
use delink_model::{
    Checkpoint, LaneId, PipelineStopped, Published, RawBatch, SegmentId, SourceContext, SourceError,
};

use crate::fence::Fence;
use crate::in_flight::InFlight;

/// One batch on its way to a worker.
pub(crate) struct Work {
    /// The batch's number within its lane (0, 1, …).
    pub(crate) sequence: u64,
    /// The UTC day of the quarantine partition of its segment.
    pub(crate) quarantine_day: i32,
    /// The records.
    pub(crate) batch: RawBatch,
}

/// Where each lane stands.
#[derive(Default)]
struct LaneCursor {
    next_sequence: u64,
    /// The open segment and its quarantine day.
    segment: Option<(SegmentId, i32)>,
}

/// Implements [`SourceContext`] over the pipeline's channels.
pub(crate) struct Dispatch {
    work: SyncSender<Work>,
    recycled: Receiver<Vec<u8>>,
    published: Receiver<Published>,
    stop: Arc<AtomicBool>,
    in_flight: Arc<InFlight>,
    fence: Arc<Fence>,
    layout: DataLayout,
    quarantine_days: QuarantineDays,
    lanes: HashMap<LaneId, LaneCursor>,
}

/// The channels between a source and the pipeline.
pub(crate) struct Channels {
    /// Batches to the workers.
    pub(crate) work: SyncSender<Work>,
    /// Input buffers back from the workers.
    pub(crate) recycled: Receiver<Vec<u8>>,
    /// Publication reports from the publisher.
    pub(crate) published: Receiver<Published>,
}

impl Dispatch {
    pub(crate) fn new(
        channels: Channels,
        stop: Arc<AtomicBool>,
        in_flight: Arc<InFlight>,
        fence: Arc<Fence>,
        layout: DataLayout,
        outputs: &OutputStore,
    ) -> anyhow::Result<Self> {
        Ok(Dispatch {
            work: channels.work,
            recycled: channels.recycled,
            published: channels.published,
            stop,
            in_flight,
            fence,
            quarantine_days: QuarantineDays::load(outputs)
                .context("reading the days of quarantined segments")?,
            layout,
            lanes: HashMap::new(),
        })
    }
}

impl SourceContext for Dispatch {
    fn emit(&mut self, batch: RawBatch) -> Result<(), PipelineStopped> {
        let cursor = self.lanes.entry(batch.lane).or_default();
        let sequence = cursor.next_sequence;
        cursor.next_sequence += 1;

        let quarantine_day = if batch.discards_segment {
            if let Some((segment, _)) = cursor.segment.take() {
                // Never published: it no longer holds the worker's watermark back.
                self.in_flight.published(batch.lane, segment.first_position);
            }
            0
        } else if batch.already_published {
            0
        } else {
            let now_us = chrono::Utc::now().timestamp_micros();
            let open = cursor
                .segment
                .as_ref()
                .filter(|(segment, _)| *segment == batch.segment);
            let day = match open {
                Some((_, day)) => *day,
                None => {
                    // A segment processed again keeps the quarantine day (and file) it had.
                    let today = utc_day(now_us);
                    let day = self
                        .quarantine_days
                        .day_of(&batch.segment.stem(), today)
                        .unwrap_or_else(|error| {
                            // Publishing to the same store fails next, and stops the worker.
                            tracing::warn!(error = %format!("{error:#}"), "cannot look up a segment's quarantine day");
                            None
                        })
                        .unwrap_or(today);
                    self.in_flight
                        .opened(batch.lane, batch.segment.first_position, now_us);
                    cursor.segment = Some((batch.segment.clone(), day));
                    day
                }
            };
            if batch.closes_segment {
                cursor.segment = None;
            }
            day
        };
        if batch.closes_lane {
            // The ordered stage forgets the lane too, once this batch is through.
            self.lanes.remove(&batch.lane);
        }
        self.send(sequence, quarantine_day, batch)
    }

    fn buffer(&mut self) -> Vec<u8> {
        let mut buffer = self.recycled.try_recv().unwrap_or_default();
        buffer.clear();
        buffer
    }

    fn next_published(&mut self, timeout: Duration) -> Option<Published> {
        self.published.recv_timeout(timeout).ok()
    }

    fn stop_requested(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    fn checkpoint(&mut self, source: &str) -> Result<Checkpoint, SourceError> {
        Ok(CheckpointFile::new(&self.layout, source)?.read()?)
    }

    fn fence(&mut self, lane: LaneId) {
        self.fence.close(lane);
    }
}

impl Dispatch {
    fn send(
        &self,
        sequence: u64,
        quarantine_day: i32,
        batch: RawBatch,
    ) -> Result<(), PipelineStopped> {
        self.work
            .send(Work {
                sequence,
                quarantine_day,
                batch,
            })
            .map_err(|_| PipelineStopped)
    }
}
