use std::sync::{Arc, Mutex};
use std::time::Duration;

use delink_model::{Checkpoint, PipelineStopped, Published, RawBatch, SourceContext, SourceError};

use super::*;

fn options(batch_lines: usize, segment_lines: u64) -> SourceOptions {
    SourceOptions {
        batch_lines,
        batch_bytes: 1 << 20,
        segment_lines,
        keep_bytes: 16,
        stream_segment_age: Duration::from_secs(3600),
    }
}

fn all_batches(text: &'static [u8], options: SourceOptions) -> Vec<RawBatch> {
    let mut reader = LineReader::new("test".into(), Box::new(text), options);
    let mut batches = Vec::new();
    while let Some(batch) = reader.next_batch(0, Vec::new()).expect("read") {
        batches.push(batch);
    }
    batches
}

#[test]
fn lines_keep_their_numbers_and_blank_lines_are_skipped() {
    let batches = all_batches(b"a\n\nb\r\n  \nc", options(10, 100));
    assert_eq!(batches.len(), 1);
    let batch = &batches[0];
    let lines: Vec<(u64, &[u8])> = batch
        .records
        .iter()
        .map(|r| (r.position, batch.bytes(r)))
        .collect();
    assert_eq!(lines, vec![(1, &b"a"[..]), (3, b"b"), (5, b"c")]);
    assert_eq!(batch.blank_lines, 2);
    assert!(batch.closes_segment);
    assert_eq!(batch.input_bytes, 10);
    assert_eq!(batch.end_position, 6);
}

#[test]
fn batches_never_span_segments_and_segments_follow_positions() {
    let batches = all_batches(b"1\n2\n3\n4\n5\n", options(2, 3));
    let shape: Vec<(Vec<u64>, bool, u64)> = batches
        .iter()
        .map(|b| {
            (
                b.records.iter().map(|r| r.position).collect(),
                b.closes_segment,
                b.end_position,
            )
        })
        .collect();
    assert_eq!(
        shape,
        vec![
            (vec![1, 2], false, 3),
            (vec![3], true, 4),
            (vec![4, 5], false, 6),
            (vec![], true, 6)
        ]
    );
    assert_eq!(batches[0].segment.stem(), "test-000000000001");
    assert_eq!(batches[2].segment.first_position, 4);
}

#[test]
fn batches_are_bounded_by_bytes_as_well_as_lines() {
    let mut options = options(1000, 1000);
    options.batch_bytes = 8;
    let batches = all_batches(b"aaaa\nbbbb\ncccc\ndddd\n", options);
    let sizes: Vec<usize> = batches.iter().map(|b| b.records.len()).collect();
    // The last, empty batch closes the segment at the end of input.
    assert_eq!(sizes, vec![2, 2, 0]);
    assert!(batches.iter().all(|b| b.data.len() <= 8));
}

#[test]
fn oversized_lines_are_cut_but_keep_their_length() {
    let batches = all_batches(b"0123456789abcdefghijXYZ\nok\n", options(10, 100));
    let batch = &batches[0];
    assert_eq!(batch.bytes(&batch.records[0]), b"0123456789abcdef");
    assert_eq!(batch.records[0].full_len, 23);
    assert_eq!(batch.bytes(&batch.records[1]), b"ok");
}

#[test]
fn file_identity_follows_content_not_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).expect("write");
        content_identity(&path).expect("identity")
    };
    let first = write("a.ndjson", "one\ntwo\n");
    assert_eq!(first, write("copy.ndjson", "one\ntwo\n"));
    assert_ne!(
        first,
        write("a.ndjson", "one\nthree\n"),
        "regenerated in place"
    );
    assert!(first.chars().all(|c| c.is_ascii_hexdigit()) && first.len() == 16);
}

#[test]
fn every_stdin_run_gets_a_fresh_identity() {
    let first = fresh_identity().expect("identity");
    assert_ne!(first, fresh_identity().expect("identity"));
}

/// Collects emitted batches; requests a stop after `stop_after` batches.
struct Collect {
    batches: Arc<Mutex<Vec<RawBatch>>>,
    stop_after: usize,
}

impl SourceContext for Collect {
    fn emit(&mut self, batch: RawBatch) -> Result<(), PipelineStopped> {
        self.batches.lock().expect("lock").push(batch);
        Ok(())
    }
    fn buffer(&mut self) -> Vec<u8> {
        Vec::new()
    }
    fn next_published(&mut self, _timeout: Duration) -> Option<Published> {
        None
    }
    fn stop_requested(&self) -> bool {
        self.batches.lock().expect("lock").len() >= self.stop_after
    }
    fn checkpoint(&mut self, _source: &str) -> Result<Checkpoint, SourceError> {
        Ok(Checkpoint::default())
    }
    fn fence(&mut self, _lane: LaneId) {
        unreachable!("a file source never gives a lane away");
    }
}

/// Runs a source to its end, stopping after `stop_after` batches; returns what it emitted.
fn run_source(inputs: Vec<std::path::PathBuf>, stop_after: usize) -> Vec<RawBatch> {
    let batches = Arc::new(Mutex::new(Vec::new()));
    let mut source = NdjsonSource::new(inputs, options(2, 100), Arc::default());
    source
        .run(Box::new(Collect {
            batches: Arc::clone(&batches),
            stop_after,
        }))
        .expect("run");
    std::mem::take(&mut *batches.lock().expect("lock"))
}

#[test]
fn a_stop_closes_the_open_segment_where_reading_stopped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("in.ndjson");
    std::fs::write(&path, "1\n2\n3\n4\n5\n6\n").expect("write");
    let batches = run_source(vec![path.clone(), path], 1);
    let shape: Vec<(usize, bool, u64)> = batches
        .iter()
        .map(|b| (b.records.len(), b.closes_segment, b.end_position))
        .collect();
    assert_eq!(shape, vec![(2, false, 3), (0, true, 3)]);
    assert_eq!(batches[0].segment, batches[1].segment);
}

#[test]
fn inputs_share_one_lane_in_order_each_with_its_own_identity() {
    let dir = tempfile::tempdir().expect("tempdir");
    let first = dir.path().join("a.ndjson");
    let second = dir.path().join("b.ndjson");
    std::fs::write(&first, "1\n2\n").expect("write");
    std::fs::write(&second, "3\n").expect("write");
    let batches = run_source(vec![first, second], usize::MAX);
    let lanes: Vec<(u32, usize, bool)> = batches
        .iter()
        .map(|b| (b.lane, b.records.len(), b.closes_segment))
        .collect();
    assert_eq!(lanes, vec![(0, 2, false), (0, 0, true), (0, 1, true)]);
    assert_ne!(batches[0].segment.source, batches[2].segment.source);
}

/// Yields its chunks one read at a time; `None` reads as a quiet stream.
struct Bursts(std::collections::VecDeque<Option<&'static [u8]>>);

impl std::io::Read for Bursts {
    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        match self.0.pop_front() {
            None => Ok(0),
            Some(None) => Err(std::io::ErrorKind::WouldBlock.into()),
            Some(Some(chunk)) => {
                buffer[..chunk.len()].copy_from_slice(chunk);
                Ok(chunk.len())
            }
        }
    }
}

#[test]
fn a_quiet_stream_sends_the_lines_read_so_far_and_keeps_a_partial_line() {
    let bursts = Bursts(
        [
            Some(&b"a\nb\n"[..]),
            None,
            Some(b"c"),
            None,
            Some(b"d\ne\n"),
            None,
            None,
        ]
        .into_iter()
        .collect(),
    );
    let mut reader = LineReader::new("s".into(), Box::new(bursts), options(100, 100));
    let mut batches = Vec::new();
    while let Some(batch) = reader.next_batch(0, Vec::new()).expect("read") {
        batches.push(batch);
    }
    let lines: Vec<Vec<Vec<u8>>> = batches
        .iter()
        .map(|b| b.records.iter().map(|r| b.bytes(r).to_vec()).collect())
        .collect();
    assert_eq!(
        lines,
        vec![
            vec![b"a".to_vec(), b"b".to_vec()],
            vec![b"cd".to_vec(), b"e".to_vec()],
            vec![]
        ]
    );
    assert!(batches[2].closes_segment && !batches[1].closes_segment);
}

#[test]
fn a_stream_segment_closes_once_old_even_when_quiet() {
    let bursts = Bursts(
        [Some(&b"a\nb\n"[..]), None, None, Some(b"c\n")]
            .into_iter()
            .collect(),
    );
    let mut reader = LineReader::new("s".into(), Box::new(bursts), options(100, 100))
        .with_max_age(Duration::ZERO);
    let mut batches = Vec::new();
    while let Some(batch) = reader.next_batch(0, Vec::new()).expect("read") {
        batches.push(batch);
    }
    let shape: Vec<(u64, usize, bool)> = batches
        .iter()
        .map(|b| (b.segment.first_position, b.records.len(), b.closes_segment))
        .collect();
    // "a", "b" go out when the stream turns quiet; the quiet segment is then old and closes.
    assert_eq!(shape, vec![(1, 2, false), (1, 0, true), (3, 1, true)]);
}
