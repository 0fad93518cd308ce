use std::time::Duration;

use delink_model::{Checkpoint, SegmentRange, SourceError};

use super::*;

/// Records what a lane emits.
#[derive(Default)]
struct Recorder {
    batches: Vec<RawBatch>,
}

impl SourceContext for Recorder {
    fn emit(&mut self, batch: RawBatch) -> Result<(), PipelineStopped> {
        self.batches.push(batch);
        Ok(())
    }

    fn buffer(&mut self) -> Vec<u8> {
        Vec::new()
    }

    fn next_published(&mut self, _timeout: Duration) -> Option<Published> {
        None
    }

    fn stop_requested(&self) -> bool {
        false
    }

    fn checkpoint(&mut self, _source: &str) -> Result<Checkpoint, SourceError> {
        Ok(Checkpoint::default())
    }

    fn fence(&mut self, _lane: LaneId) {
        unreachable!("a lane never fences itself");
    }
}

fn limits() -> LaneLimits {
    LaneLimits {
        batch_records: 4,
        batch_bytes: 1 << 20,
        keep_bytes: 8,
        linger: Duration::from_millis(10),
        segment_max_records: 10,
        segment_max_bytes: 1 << 30,
        segment_max_age: Duration::from_secs(5),
    }
}

fn lane_at(resume: &Resume) -> Lane {
    Lane::new(7, "orders".into(), 3, limits(), resume, None)
}

fn fresh() -> Resume {
    Resume::decide(&Checkpoint::default(), None, 100)
}

fn positions(batch: &RawBatch) -> Vec<u64> {
    batch.records.iter().map(|record| record.position).collect()
}

#[test]
fn a_fresh_partition_starts_at_zero_with_nothing_to_rebuild() {
    assert_eq!(
        fresh(),
        Resume {
            resume: 0,
            fetch_from: 0,
            rebuild_end: None,
            commit_now: None
        }
    );
}

#[test]
fn resume_is_the_later_of_published_end_and_committed_less_the_lookback_for_fetching() {
    let checkpoint = Checkpoint {
        published_end: Some(500),
        publishing: None,
    };
    let ahead = Resume::decide(&checkpoint, Some(300), 100);
    assert_eq!((ahead.resume, ahead.fetch_from), (500, 400));
    assert_eq!(
        ahead.commit_now,
        Some(500),
        "the checkpoint is ahead: commit it"
    );
    let behind = Resume::decide(&checkpoint, Some(800), 1000);
    assert_eq!((behind.resume, behind.fetch_from), (800, 0));
    assert_eq!(behind.commit_now, None);
    let no_checkpoint = Resume::decide(&Checkpoint::default(), Some(42), 10);
    assert_eq!((no_checkpoint.resume, no_checkpoint.fetch_from), (42, 32));
}

#[test]
fn a_segment_caught_mid_publication_is_rebuilt_with_its_own_end() {
    let checkpoint = Checkpoint {
        published_end: Some(100),
        publishing: Some(SegmentRange {
            first: 100,
            end: 117,
        }),
    };
    let resume = Resume::decide(&checkpoint, Some(100), 50);
    assert_eq!(resume.resume, 100);
    assert_eq!(resume.rebuild_end, Some(117));
    let mut lane = lane_at(&resume);
    let mut out = Recorder::default();
    let now = Instant::now();
    for offset in 50..130 {
        lane.take(offset, b"{}", now, &mut out).expect("emit");
    }
    let real: Vec<&RawBatch> = out
        .batches
        .iter()
        .filter(|batch| !batch.already_published)
        .collect();
    let closing = real
        .iter()
        .find(|batch| batch.closes_segment)
        .expect("the rebuilt segment closes");
    assert_eq!(closing.segment.first_position, 100);
    assert_eq!(
        closing.end_position, 117,
        "the size limit (10 records) does not cut a rebuilt segment"
    );
    let rebuilt: Vec<u64> = real
        .iter()
        .filter(|batch| batch.segment.first_position == 100)
        .flat_map(|batch| positions(batch))
        .collect();
    assert_eq!(rebuilt, (100..117).collect::<Vec<_>>());
    let next = real
        .iter()
        .find(|batch| batch.segment.first_position == 117);
    assert!(
        next.is_some(),
        "the next segment starts where the rebuilt one ended"
    );
}

#[test]
fn a_rebuild_is_not_triggered_by_a_publication_behind_the_resume_point() {
    let checkpoint = Checkpoint {
        published_end: Some(100),
        publishing: Some(SegmentRange { first: 40, end: 60 }),
    };
    assert_eq!(Resume::decide(&checkpoint, None, 0).rebuild_end, None);
    let only_publishing = Checkpoint {
        published_end: None,
        publishing: Some(SegmentRange { first: 0, end: 60 }),
    };
    let resume = Resume::decide(&only_publishing, None, 10);
    assert_eq!((resume.resume, resume.rebuild_end), (0, Some(60)));
}

#[test]
fn records_before_the_resume_point_only_refill_the_replay_window() {
    let checkpoint = Checkpoint {
        published_end: Some(20),
        publishing: None,
    };
    let mut lane = lane_at(&Resume::decide(&checkpoint, None, 6));
    let mut out = Recorder::default();
    let now = Instant::now();
    for offset in 14..23 {
        lane.take(offset, b"{}", now, &mut out).expect("emit");
    }
    lane.tick(now + Duration::from_secs(1), &mut out)
        .expect("emit");
    let published: Vec<u64> = out
        .batches
        .iter()
        .filter(|batch| batch.already_published)
        .flat_map(positions)
        .collect();
    assert_eq!(published, (14..20).collect::<Vec<_>>());
    let new: Vec<u64> = out
        .batches
        .iter()
        .filter(|batch| !batch.already_published)
        .flat_map(positions)
        .collect();
    assert_eq!(new, vec![20, 21, 22]);
    assert!(out.batches.iter().all(|batch| batch.resumable));
    let first_new = out
        .batches
        .iter()
        .find(|batch| !batch.already_published)
        .expect("new records");
    assert_eq!(first_new.segment.first_position, 20);
    assert_eq!(&*first_new.segment.source, "orders-3");
}

#[test]
fn batches_are_bounded_and_segments_close_at_their_record_limit() {
    let mut lane = lane_at(&fresh());
    let mut out = Recorder::default();
    let now = Instant::now();
    for offset in 0..25 {
        lane.take(offset, b"{\"x\":1}", now, &mut out)
            .expect("emit");
    }
    assert!(out.batches.iter().all(|batch| batch.records.len() <= 4));
    let closes: Vec<(u64, u64)> = out
        .batches
        .iter()
        .filter(|batch| batch.closes_segment)
        .map(|batch| (batch.segment.first_position, batch.end_position))
        .collect();
    assert_eq!(closes, vec![(0, 10), (10, 20)]);
    let mut taken: Vec<u64> = out.batches.iter().flat_map(positions).collect();
    taken.sort_unstable();
    assert_eq!(
        taken,
        (0..24).collect::<Vec<_>>(),
        "24 went out, one lingers"
    );
    assert!(lane.is_awaiting());
}

#[test]
fn long_values_are_cut_to_keep_bytes_with_their_full_length() {
    let mut lane = lane_at(&fresh());
    let mut out = Recorder::default();
    let now = Instant::now();
    lane.take(0, &[b'a'; 100], now, &mut out).expect("emit");
    lane.tick(now + Duration::from_secs(1), &mut out)
        .expect("emit");
    let batch = &out.batches[0];
    assert_eq!(batch.bytes(&batch.records[0]).len(), 8);
    assert_eq!(batch.records[0].full_len, 100);
    assert_eq!(batch.input_bytes, 100);
}

#[test]
fn a_quiet_segment_closes_by_age_with_an_empty_batch() {
    let mut lane = lane_at(&fresh());
    let mut out = Recorder::default();
    let start = Instant::now();
    lane.take(0, b"{}", start, &mut out).expect("emit");
    lane.take(1, b"{}", start, &mut out).expect("emit");
    lane.tick(start + Duration::from_millis(20), &mut out)
        .expect("linger");
    assert_eq!(out.batches.len(), 1);
    assert!(!out.batches[0].closes_segment);
    assert_eq!(out.batches[0].end_position, 2);
    lane.tick(start + Duration::from_secs(6), &mut out)
        .expect("age");
    let closing = &out.batches[1];
    assert!(closing.closes_segment && closing.records.is_empty());
    assert_eq!(
        (closing.segment.first_position, closing.end_position),
        (0, 2)
    );
    lane.published(&Published {
        lane: 7,
        segment_first: 0,
        end_position: 2,
    });
    assert!(!lane.is_awaiting());
    assert_eq!(lane.uncommitted(), Some(2));
    lane.committed(2);
    assert_eq!(lane.uncommitted(), None);
}

#[test]
fn closing_a_lane_closes_its_segment_and_the_lane() {
    let mut lane = lane_at(&fresh());
    let mut out = Recorder::default();
    let now = Instant::now();
    lane.take(5, b"{}", now, &mut out).expect("emit");
    lane.close(&mut out).expect("emit");
    let last = out.batches.last().expect("closing batch");
    assert!(last.closes_segment && last.closes_lane && !last.discards_segment);
    assert_eq!(positions(last), vec![5]);
    assert_eq!(last.end_position, 6);

    let mut idle = lane_at(&fresh());
    let mut out = Recorder::default();
    idle.close(&mut out).expect("emit");
    let only = &out.batches[0];
    assert!(only.closes_lane && only.already_published && only.records.is_empty());
    assert!(!idle.is_awaiting(), "nothing to wait for");
}

#[test]
fn a_lost_lane_or_an_unfinished_rebuild_is_dropped_unpublished() {
    let mut lane = lane_at(&fresh());
    let mut out = Recorder::default();
    let now = Instant::now();
    lane.take(0, b"{}", now, &mut out).expect("emit");
    lane.discard(&mut out).expect("emit");
    let last = out.batches.last().expect("discarding batch");
    assert!(last.discards_segment && last.closes_lane && last.records.is_empty());

    let checkpoint = Checkpoint {
        published_end: Some(10),
        publishing: Some(SegmentRange { first: 10, end: 20 }),
    };
    let mut rebuilding = lane_at(&Resume::decide(&checkpoint, None, 0));
    let mut out = Recorder::default();
    rebuilding.take(10, b"{}", now, &mut out).expect("emit");
    rebuilding
        .tick(now + Duration::from_secs(60), &mut out)
        .expect("no age close while rebuilding");
    assert!(out.batches.iter().all(|batch| !batch.closes_segment));
    rebuilding.close(&mut out).expect("emit");
    let last = out.batches.last().expect("discarding batch");
    assert!(
        last.discards_segment,
        "a shorter segment would not replace every file of the original"
    );
}

#[test]
fn records_delivered_twice_are_taken_once() {
    let mut lane = lane_at(&fresh());
    let mut out = Recorder::default();
    let now = Instant::now();
    for offset in [0, 1, 1, 0, 2] {
        lane.take(offset, b"{}", now, &mut out).expect("emit");
    }
    lane.close(&mut out).expect("emit");
    let taken: Vec<u64> = out.batches.iter().flat_map(positions).collect();
    assert_eq!(taken, vec![0, 1, 2]);
}

#[test]
fn lag_counts_from_the_position_to_the_partition_end() {
    let mut lane = lane_at(&fresh());
    let mut out = Recorder::default();
    assert_eq!(lane.lag(), None);
    lane.high_watermark = Some(10);
    lane.take(0, b"{}", Instant::now(), &mut out).expect("emit");
    assert_eq!(lane.lag(), Some(9));
    lane.reached_end();
    assert_eq!(lane.lag(), Some(0));
}
