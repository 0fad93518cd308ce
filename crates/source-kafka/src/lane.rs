//! One assigned partition: its batches, its segments and its published end.
//!
//! Pure bookkeeping over a [`SourceContext`]; no Kafka client here, so every
//! rule of segment cutting and resuming is tested without a broker.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use delink_model::{
    Checkpoint, LaneId, PipelineStopped, Published, RawBatch, RawRecord, SegmentId, SourceContext,
};

use crate::LaneLimits;

/// Where a newly assigned partition starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Resume {
    /// The first offset that is not published: records before it only refill the replay window.
    pub(crate) resume: u64,
    /// The offset to fetch from: the resume point less the replay look-back.
    pub(crate) fetch_from: u64,
    /// The first segment must end exactly here (it was caught mid-publication).
    pub(crate) rebuild_end: Option<u64>,
    /// The position the output holds, when it is ahead of the group's committed offset.
    pub(crate) commit_now: Option<u64>,
}

impl Resume {
    /// Decides where to start from the output's checkpoint and the group's committed offset.
    pub(crate) fn decide(checkpoint: &Checkpoint, committed: Option<u64>, lookback: u64) -> Self {
        let known_end = match (checkpoint.published_end, committed) {
            (Some(published), Some(committed)) => Some(published.max(committed)),
            (published, committed) => published.or(committed),
        };
        // A segment whose publication began and may not have finished is rebuilt with
        // the same positions, so that it replaces its own files.
        let rebuild = checkpoint
            .publishing
            .filter(|range| range.end > range.first)
            .filter(|range| known_end.is_none_or(|end| range.first >= end));
        let resume = match (known_end, rebuild) {
            (None, Some(range)) => range.first,
            (known, _) => known.unwrap_or(0),
        };
        let commit_now = checkpoint
            .published_end
            .filter(|published| committed.is_none_or(|committed| *published > committed));
        Resume {
            resume,
            fetch_from: resume.saturating_sub(lookback),
            rebuild_end: rebuild.map(|range| range.end),
            commit_now,
        }
    }
}

/// The segment being read.
#[derive(Debug)]
struct OpenSegment {
    id: SegmentId,
    records: u64,
    bytes: u64,
    opened_at: Instant,
}

/// The batch being filled.
#[derive(Debug)]
struct PendingBatch {
    batch: RawBatch,
    since: Instant,
}

impl PendingBatch {
    /// Starts a batch of `segment`; `already_published` marks records re-read only to
    /// refill the replay window.
    fn start(
        lane: LaneId,
        segment: SegmentId,
        already_published: bool,
        now: Instant,
        context: &mut dyn SourceContext,
    ) -> Self {
        PendingBatch {
            batch: RawBatch {
                lane,
                segment,
                already_published,
                resumable: true,
                data: context.buffer(),
                ..RawBatch::default()
            },
            since: now,
        }
    }
}

/// One assignment of one topic-partition.
#[derive(Debug)]
pub(crate) struct Lane {
    pub(crate) id: LaneId,
    pub(crate) topic: Arc<str>,
    pub(crate) partition: i32,
    identity: Arc<str>,
    limits: LaneLimits,
    resume: u64,
    rebuild_end: Option<u64>,
    /// The offset just past the last record taken.
    next_offset: u64,
    segment: Option<OpenSegment>,
    pending: Option<PendingBatch>,
    /// First positions of closed segments whose publication is not reported yet.
    awaiting: VecDeque<u64>,
    /// The position just past the last published segment (what may be committed).
    published_end: Option<u64>,
    /// The last position committed (or asked to be).
    committed: Option<u64>,
    /// The partition's end as last seen (from EOF or the client's statistics).
    pub(crate) high_watermark: Option<u64>,
}

impl Lane {
    pub(crate) fn new(
        id: LaneId,
        topic: Arc<str>,
        partition: i32,
        limits: LaneLimits,
        resume: &Resume,
        committed: Option<u64>,
    ) -> Self {
        Lane {
            id,
            identity: identity(&topic, partition).into(),
            topic,
            partition,
            limits,
            resume: resume.resume,
            rebuild_end: resume.rebuild_end,
            next_offset: resume.fetch_from,
            segment: None,
            pending: None,
            awaiting: VecDeque::new(),
            published_end: resume.commit_now.or(committed),
            committed,
            high_watermark: None,
        }
    }

    /// Takes one record; emits the batches it completes.
    pub(crate) fn take(
        &mut self,
        offset: u64,
        value: &[u8],
        now: Instant,
        context: &mut dyn SourceContext,
    ) -> Result<(), PipelineStopped> {
        if offset < self.next_offset {
            // Delivered again after a client-side retry: already taken.
            return Ok(());
        }
        if offset < self.resume {
            self.next_offset = offset + 1;
            return self.take_published(offset, value, now, context);
        }
        if self.pending_is_published() {
            self.flush(context)?;
        }
        if let Some(end) = self.rebuild_end
            && offset >= end
        {
            // The offsets up to the rebuilt segment's end held no record.
            self.rebuild_end = None;
            if self.segment.is_some() {
                self.close_segment(end, false, context)?;
            }
        }
        let segment = self.segment.get_or_insert_with(|| OpenSegment {
            id: SegmentId {
                source: Arc::clone(&self.identity),
                first_position: offset,
            },
            records: 0,
            bytes: 0,
            opened_at: now,
        });
        segment.records += 1;
        segment.bytes += value.len() as u64;
        let segment_id = segment.id.clone();
        let (records, bytes) = (segment.records, segment.bytes);
        let pending = self
            .pending
            .get_or_insert_with(|| PendingBatch::start(self.id, segment_id, false, now, context));
        append(&mut pending.batch, offset, value, self.limits.keep_bytes);
        self.next_offset = offset + 1;
        let segment_full = match self.rebuild_end {
            Some(end) => self.next_offset >= end,
            None => {
                records >= self.limits.segment_max_records || bytes >= self.limits.segment_max_bytes
            }
        };
        if segment_full {
            self.rebuild_end = None;
            return self.close_segment(self.next_offset, false, context);
        }
        if self.pending_full() {
            self.flush(context)?;
        }
        Ok(())
    }

    /// Sends a quiet partition's batch after the linger, and closes a segment past its age.
    pub(crate) fn tick(
        &mut self,
        now: Instant,
        context: &mut dyn SourceContext,
    ) -> Result<(), PipelineStopped> {
        let lingered = self
            .pending
            .as_ref()
            .is_some_and(|pending| now.duration_since(pending.since) >= self.limits.linger);
        if lingered {
            self.flush(context)?;
        }
        let aged = self.rebuild_end.is_none()
            && self.segment.as_ref().is_some_and(|segment| {
                now.duration_since(segment.opened_at) >= self.limits.segment_max_age
            });
        if aged {
            self.close_segment(self.next_offset, false, context)?;
        }
        Ok(())
    }

    /// Closes the lane for a revoke or a shutdown: the open segment is closed where
    /// reading stopped (a segment being rebuilt is dropped instead, so that the next
    /// owner rebuilds it whole), and the pipeline forgets the lane.
    pub(crate) fn close(&mut self, context: &mut dyn SourceContext) -> Result<(), PipelineStopped> {
        if self.pending_is_published() {
            self.flush(context)?;
        }
        if self.rebuild_end.is_some() && self.segment.is_some() {
            return self.discard(context);
        }
        if self.segment.is_some() {
            return self.close_segment(self.next_offset, true, context);
        }
        // Nothing open: only the pipeline's replay window of the lane is left to forget.
        context.emit(RawBatch {
            lane: self.id,
            segment: SegmentId {
                source: Arc::clone(&self.identity),
                first_position: self.next_offset,
            },
            closes_segment: true,
            end_position: self.next_offset,
            already_published: true,
            resumable: true,
            closes_lane: true,
            ..RawBatch::default()
        })
    }

    /// Drops the lane without publishing its open segment (a lost assignment).
    pub(crate) fn discard(
        &mut self,
        context: &mut dyn SourceContext,
    ) -> Result<(), PipelineStopped> {
        self.pending = None;
        let first_position = self
            .segment
            .take()
            .map_or(self.next_offset, |segment| segment.id.first_position);
        context.emit(RawBatch {
            lane: self.id,
            segment: SegmentId {
                source: Arc::clone(&self.identity),
                first_position,
            },
            closes_segment: true,
            end_position: self.next_offset,
            resumable: true,
            closes_lane: true,
            discards_segment: true,
            ..RawBatch::default()
        })
    }

    /// Records a publication report of this lane.
    pub(crate) fn published(&mut self, report: &Published) {
        debug_assert_eq!(report.lane, self.id);
        self.awaiting.retain(|first| *first != report.segment_first);
        self.published_end = Some(
            self.published_end
                .map_or(report.end_position, |end| end.max(report.end_position)),
        );
    }

    /// Tells whether closed segments still wait for their publication.
    pub(crate) fn is_awaiting(&self) -> bool {
        !self.awaiting.is_empty()
    }

    /// Returns a published position that is not committed yet.
    pub(crate) fn uncommitted(&self) -> Option<u64> {
        self.published_end
            .filter(|end| self.committed.is_none_or(|committed| *end > committed))
    }

    /// Notes that `offset` was committed (or asked to be).
    pub(crate) fn committed(&mut self, offset: u64) {
        self.committed = Some(offset);
    }

    /// Forgets the committed position, so that the next commit sends it again.
    pub(crate) fn recommit(&mut self) {
        self.committed = None;
    }

    /// Notes the partition's end seen at EOF: everything before the position is taken.
    pub(crate) fn reached_end(&mut self) {
        self.high_watermark = Some(self.next_offset);
    }

    /// Returns the records between the position and the partition's end, when known.
    pub(crate) fn lag(&self) -> Option<i64> {
        let end = self.high_watermark?;
        Some(end.saturating_sub(self.next_offset) as i64)
    }

    /// Returns the offset just past the last record taken.
    pub(crate) fn position(&self) -> u64 {
        self.next_offset
    }

    fn take_published(
        &mut self,
        offset: u64,
        value: &[u8],
        now: Instant,
        context: &mut dyn SourceContext,
    ) -> Result<(), PipelineStopped> {
        let segment = SegmentId {
            source: Arc::clone(&self.identity),
            first_position: offset,
        };
        let pending = self
            .pending
            .get_or_insert_with(|| PendingBatch::start(self.id, segment, true, now, context));
        append(&mut pending.batch, offset, value, self.limits.keep_bytes);
        if self.pending_full() {
            self.flush(context)?;
        }
        Ok(())
    }

    fn pending_is_published(&self) -> bool {
        self.pending
            .as_ref()
            .is_some_and(|pending| pending.batch.already_published)
    }

    fn pending_full(&self) -> bool {
        self.pending.as_ref().is_some_and(|pending| {
            pending.batch.records.len() >= self.limits.batch_records
                || pending.batch.data.len() >= self.limits.batch_bytes
        })
    }

    fn flush(&mut self, context: &mut dyn SourceContext) -> Result<(), PipelineStopped> {
        let Some(pending) = self.pending.take() else {
            return Ok(());
        };
        let mut batch = pending.batch;
        batch.end_position = self.next_offset;
        context.emit(batch)
    }

    /// Emits the segment's last batch (empty when nothing is pending) ending at `end`.
    fn close_segment(
        &mut self,
        end: u64,
        closes_lane: bool,
        context: &mut dyn SourceContext,
    ) -> Result<(), PipelineStopped> {
        let Some(segment) = self.segment.take() else {
            return Ok(());
        };
        let mut batch = match self.pending.take() {
            Some(pending) => pending.batch,
            None => RawBatch {
                lane: self.id,
                segment: segment.id.clone(),
                resumable: true,
                ..RawBatch::default()
            },
        };
        debug_assert_eq!(batch.segment, segment.id);
        batch.closes_segment = true;
        batch.closes_lane = closes_lane;
        batch.end_position = end;
        self.awaiting.push_back(segment.id.first_position);
        context.emit(batch)
    }
}

/// Names a partition's segments and checkpoint: `<topic>-<partition>`.
pub(crate) fn identity(topic: &str, partition: i32) -> String {
    format!("{topic}-{partition}")
}

/// Appends one record value, cut to `keep_bytes` with its full length kept.
fn append(batch: &mut RawBatch, offset: u64, value: &[u8], keep_bytes: usize) {
    let start = batch.data.len();
    let kept = &value[..value.len().min(keep_bytes)];
    batch.data.extend_from_slice(kept);
    batch.records.push(RawRecord {
        position: offset,
        range: start..batch.data.len(),
        full_len: value.len() as u64,
    });
    batch.input_bytes += value.len() as u64;
}

#[cfg(test)]
mod tests;
