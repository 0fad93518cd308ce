use std::sync::Arc;

use arrow_array::{Int64Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::*;

fn options(budget: usize) -> WriterOptions {
    WriterOptions {
        row_group_rows: 1000,
        zstd_level: 1,
        buffer_budget_bytes: budget,
        dataset: "test".into(),
        plain_columns: vec!["n".into()],
        bloom_filter_columns: Vec::new(),
        page_index_columns: Vec::new(),
        owner_only: false,
        metadata: Vec::new(),
    }
}

fn batch(values: std::ops::Range<i64>) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, true)]));
    RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from_iter_values(values))])
        .expect("batch")
}

fn visible_parquet(root: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    if !root.exists() {
        return found;
    }
    for partition in fs::read_dir(root).expect("root") {
        let partition = partition.expect("entry").path();
        if partition
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        {
            continue;
        }
        for file in fs::read_dir(&partition).expect("partition") {
            found.push(file.expect("entry").path());
        }
    }
    found.sort();
    found
}

fn publish(outputs: &OutputStore, sealed: Vec<SealedFile>, area: &UploadArea) {
    let staged = sealed
        .into_iter()
        .map(|file| file.stage(outputs, area).expect("stage"))
        .collect();
    outputs.commit(staged).expect("commit");
}

fn rows_in(path: &Path) -> usize {
    let reader = ParquetRecordBatchReaderBuilder::try_new(File::open(path).expect("open"))
        .expect("parquet")
        .build()
        .expect("reader");
    reader.map(|b| b.expect("batch").num_rows()).sum()
}

#[test]
fn nothing_is_visible_until_published_and_rerun_replaces() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("out");
    let staging = dir.path().join("staging");
    let outputs = OutputStore::local(dir.path()).expect("outputs");
    let area = UploadArea::of_worker("test");
    for _run in 0..2 {
        let output =
            PartitionedWriter::create("out", &staging, batch(0..1).schema(), options(1 << 20))
                .expect("create");
        let mut segment = output.start_segment("src-0000000000");
        segment
            .write("date=2026-11-20", &batch(0..10))
            .expect("write");
        segment
            .write("date=2026-11-21", &batch(10..15))
            .expect("write");
        segment
            .write("date=2026-11-20", &batch(15..20))
            .expect("write");
        let sealed = segment.seal(&[]).expect("seal");
        assert!(sealed.iter().all(|f| f.bytes > 0));
        let keys: Vec<&str> = sealed.iter().map(SealedFile::key).collect();
        assert_eq!(
            keys,
            [
                "out/date=2026-11-20/part-src-0000000000.parquet",
                "out/date=2026-11-21/part-src-0000000000.parquet"
            ]
        );
        assert_eq!(sealed.iter().map(|f| f.rows).sum::<u64>(), 20);
        let visible_before = visible_parquet(&root);
        publish(&outputs, sealed, &area);
        let visible = visible_parquet(&root);
        assert_eq!(visible.len(), 2);
        assert!(visible_before.is_empty() || visible_before == visible);
        assert_eq!(visible.iter().map(|p| rows_in(p)).sum::<usize>(), 20);
    }
}

#[test]
fn a_tiny_budget_flushes_row_groups_early() {
    let dir = tempfile::tempdir().expect("tempdir");
    let outputs = OutputStore::local(dir.path()).expect("outputs");
    let output = PartitionedWriter::create(
        "out",
        &dir.path().join("staging"),
        batch(0..1).schema(),
        options(1),
    )
    .expect("create");
    let mut segment = output.start_segment("s");
    for start in 0..5 {
        segment
            .write("date=2026-11-20", &batch(start * 100..start * 100 + 100))
            .expect("write");
    }
    let sealed = segment.seal(&[]).expect("seal");
    let path = dir.path().join(sealed[0].key());
    publish(&outputs, sealed, &UploadArea::of_worker("test"));
    let file = File::open(path).expect("open");
    let metadata = ParquetRecordBatchReaderBuilder::try_new(file)
        .expect("parquet")
        .metadata()
        .clone();
    assert!(
        metadata.num_row_groups() >= 5,
        "{}",
        metadata.num_row_groups()
    );
}

#[test]
fn partition_files_are_written_apart_on_their_own_threads_and_sealed_with_the_rest() {
    let dir = tempfile::tempdir().expect("tempdir");
    let outputs = OutputStore::local(dir.path()).expect("outputs");
    let output = PartitionedWriter::create(
        "out",
        &dir.path().join("staging"),
        batch(0..1).schema(),
        options(1 << 20),
    )
    .expect("create");
    let mut segment = output.start_segment("s");
    segment
        .write("date=2026-11-20", &batch(0..3))
        .expect("write");
    let partitions = ["date=2026-11-21".to_owned(), "date=2026-11-20".to_owned()];
    let files = segment.partition_files(&partitions).expect("files");
    std::thread::scope(|scope| {
        for (rows, mut file) in [10..20, 100..150].into_iter().zip(files) {
            scope.spawn(move || file.write(&batch(rows)).expect("write"));
        }
    });
    let sealed = segment.seal(&[]).expect("seal");
    let rows: Vec<(String, u64)> = sealed
        .iter()
        .map(|file| (file.key().to_owned(), file.rows))
        .collect();
    assert_eq!(
        rows,
        [
            ("out/date=2026-11-20/part-s.parquet".to_owned(), 53),
            ("out/date=2026-11-21/part-s.parquet".to_owned(), 10),
        ]
    );
    let paths: Vec<PathBuf> = sealed.iter().map(|f| dir.path().join(f.key())).collect();
    publish(&outputs, sealed, &UploadArea::of_worker("test"));
    assert_eq!(
        paths.iter().map(|p| rows_in(p)).collect::<Vec<_>>(),
        [53, 10]
    );
}

#[test]
fn a_partition_asked_for_twice_in_one_parallel_write_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let output = PartitionedWriter::create(
        "out",
        &dir.path().join("staging"),
        batch(0..1).schema(),
        options(1 << 20),
    )
    .expect("create");
    let mut segment = output.start_segment("s");
    let twice = ["date=2026-11-20".to_owned(), "date=2026-11-20".to_owned()];
    assert!(matches!(
        segment.partition_files(&twice),
        Err(SinkError::DuplicatePartition(partition)) if partition == "date=2026-11-20"
    ));
}

#[test]
fn bloom_filters_and_the_page_index_are_written_for_the_columns_named() {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    use parquet::file::serialized_reader::ReadOptionsBuilder;

    let dir = tempfile::tempdir().expect("tempdir");
    let outputs = OutputStore::local(dir.path()).expect("outputs");
    let schema = Arc::new(Schema::new(vec![
        Field::new("n", DataType::Int64, true),
        Field::new("m", DataType::Int64, true),
    ]));
    let values = || Arc::new(Int64Array::from_iter_values(0..2500)) as _;
    let rows = RecordBatch::try_new(schema.clone(), vec![values(), values()]).expect("batch");
    let mut options = options(1 << 20);
    options.bloom_filter_columns = vec!["n".into()];
    options.page_index_columns = vec!["n".into()];
    let output = PartitionedWriter::create("out", &dir.path().join("staging"), schema, options)
        .expect("create");
    let mut segment = output.start_segment("s");
    segment.write("date=2026-11-20", &rows).expect("write");
    let sealed = segment.seal(&[]).expect("seal");
    let path = dir.path().join(sealed[0].key());
    publish(&outputs, sealed, &UploadArea::of_worker("test"));

    let read = ReadOptionsBuilder::new()
        .with_page_index()
        .with_reader_properties(
            parquet::file::properties::ReaderProperties::builder()
                .set_read_bloom_filter(true)
                .build(),
        )
        .build();
    let reader = SerializedFileReader::new_with_options(File::open(&path).expect("open"), read)
        .expect("parquet");
    let metadata = reader.metadata();
    // 2,500 rows in row groups of at most 1,000.
    assert_eq!(metadata.num_row_groups(), 3);
    for group in 0..3 {
        let row_group = reader.get_row_group(group).expect("row group");
        let bloom = row_group
            .get_column_bloom_filter(0)
            .expect("a Bloom filter on n");
        let first = (group * 1000) as i64;
        assert!(
            bloom.check(&first),
            "the filter holds its row group's values"
        );
        assert!(row_group.get_column_bloom_filter(1).is_none(), "none on m");
    }
    let column_index = metadata.column_index().expect("a column index");
    let has_page_statistics = |column: usize| {
        !matches!(
            column_index[0][column],
            parquet::file::page_index::column_index::ColumnIndexMetaData::NONE
        )
    };
    assert!(has_page_statistics(0), "page statistics on n");
    assert!(!has_page_statistics(1), "only chunk statistics on m");
    assert!(metadata.offset_index().is_some(), "the offset index");
}
