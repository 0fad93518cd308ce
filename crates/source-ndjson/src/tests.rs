use super::*;

fn options(batch_lines: usize, segment_lines: u64) -> SourceOptions {
    SourceOptions {
        batch_lines,
        segment_lines,
        keep_bytes: 16,
    }
}

fn all_batches(text: &'static [u8], options: SourceOptions) -> Vec<RawBatch> {
    let mut source = NdjsonSource::from_reader("test", Box::new(text), options);
    let mut batches = Vec::new();
    while let Some(batch) = source.next_batch().expect("read") {
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
}

#[test]
fn batches_never_span_segments_and_stems_follow_positions() {
    let batches = all_batches(b"1\n2\n3\n4\n5\n", options(2, 3));
    let shape: Vec<(Vec<u64>, bool)> = batches
        .iter()
        .map(|b| {
            (
                b.records.iter().map(|r| r.position).collect(),
                b.closes_segment,
            )
        })
        .collect();
    assert_eq!(
        shape,
        vec![
            (vec![1, 2], false),
            (vec![3], true),
            (vec![4, 5], false),
            (vec![], true)
        ]
    );
    assert!(batches[0].segment_stem.ends_with("-000000000001"));
    assert!(batches[2].segment_stem.ends_with("-000000000004"));
    assert!(batches.last().expect("last").closes_segment);
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
fn the_same_name_gives_the_same_stems() {
    let first = all_batches(b"x\n", options(10, 100));
    let second = all_batches(b"y\n", options(10, 100));
    assert_eq!(first[0].segment_stem, second[0].segment_stem);
    let other = NdjsonSource::from_reader("other", Box::new(&b"x\n"[..]), options(10, 100))
        .next_batch()
        .expect("read")
        .expect("batch");
    assert_ne!(other.segment_stem, first[0].segment_stem);
}
