//! Files laid out for queries: rows sorted by whose they are then time, the
//! order named in the footer, Bloom filters and the page index on the
//! columns analysts filter by.

use std::fs::File;
use std::path::Path;

use parquet::file::metadata::{PageIndexPolicy, ParquetMetaData, ParquetMetaDataReader};

use crate::util::{column_text, read_parquet, two_runs, visible_files};

fn footer(path: &Path) -> ParquetMetaData {
    let file = File::open(path).expect("open parquet");
    ParquetMetaDataReader::new()
        .with_page_index_policy(PageIndexPolicy::Required)
        .parse_and_finish(&file)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn sort_order(metadata: &ParquetMetaData) -> Option<String> {
    metadata
        .file_metadata()
        .key_value_metadata()?
        .iter()
        .find(|entry| entry.key == "delink.sort_order")?
        .value
        .clone()
}

fn position(path: &Path, metadata: &ParquetMetaData, column: &str) -> usize {
    metadata
        .file_metadata()
        .schema_descr()
        .columns()
        .iter()
        .position(|descriptor| descriptor.path().string() == column)
        .unwrap_or_else(|| panic!("{} has no column {column}", path.display()))
}

/// Every row group of the file has a Bloom filter for `column`.
fn assert_bloom_filter(path: &Path, metadata: &ParquetMetaData, column: &str) {
    let position = position(path, metadata, column);
    for (index, group) in metadata.row_groups().iter().enumerate() {
        assert!(
            group.column(position).bloom_filter_offset().is_some(),
            "{} row group {index}: no Bloom filter on {column}",
            path.display()
        );
    }
}

/// Every row group of the file has page statistics (column index) and page
/// locations (offset index) for `column`, and both read back.
fn assert_page_index(path: &Path, metadata: &ParquetMetaData, column: &str) {
    let position = position(path, metadata, column);
    let (Some(column_index), Some(offset_index)) =
        (metadata.column_index(), metadata.offset_index())
    else {
        panic!("{}: no page index", path.display());
    };
    for (index, group) in metadata.row_groups().iter().enumerate() {
        let chunk = group.column(position);
        assert!(
            chunk.column_index_offset().is_some() && chunk.offset_index_offset().is_some(),
            "{} row group {index}: no page index on {column}",
            path.display()
        );
        assert!(
            !offset_index[index][position].page_locations().is_empty()
                && !matches!(
                    column_index[index][position],
                    parquet::file::page_index::column_index::ColumnIndexMetaData::NONE
                ),
            "{} row group {index}: the page index of {column} is empty",
            path.display()
        );
    }
}

/// Each row's sort key as text, in file order (nulls render as "", which
/// sorts first, as nulls do).
fn keys(path: &Path, columns: &[&str]) -> Vec<Vec<String>> {
    let batch = read_parquet(path);
    let texts: Vec<Vec<String>> = columns
        .iter()
        .map(|column| column_text(&batch, column))
        .collect();
    (0..batch.num_rows())
        .map(|row| texts.iter().map(|column| column[row].clone()).collect())
        .collect()
}

#[test]
fn history_rows_are_sorted_by_subject_then_time_in_every_file() {
    let runs = two_runs();
    let files = visible_files(&runs.data.join("history"));
    assert!(!files.is_empty(), "no history files");
    let mut subjects_seen_twice = 0;
    for path in &files {
        let keys: Vec<(String, i64, String)> = keys(
            path,
            &["account_pseudonym", "rfid_pseudonym", "observed_at"],
        )
        .into_iter()
        .map(|row| {
            let subject = if row[0].is_empty() { &row[1] } else { &row[0] };
            let at = row[2].parse().expect("observed_at as microseconds");
            (subject.clone(), at, row[0].clone())
        })
        .collect();
        for (index, pair) in keys.windows(2).enumerate() {
            let (before, after) = ((&pair[0].0, pair[0].1), (&pair[1].0, pair[1].1));
            assert!(
                before <= after,
                "{} rows {index} and {}: out of order",
                path.display(),
                index + 1
            );
            subjects_seen_twice += usize::from(pair[0].0 == pair[1].0);
        }
        assert_eq!(
            sort_order(&footer(path)).as_deref(),
            Some(
                "coalesce(account_pseudonym, rfid_pseudonym), observed_at, \
                 observation_pseudonym, charger_pseudonym, installation_pseudonym, \
                 session_pseudonym"
            ),
            "{}",
            path.display()
        );
    }
    assert!(
        subjects_seen_twice > 1000,
        "subjects' rows are adjacent: {subjects_seen_twice} neighbours share one"
    );
}

#[test]
fn devices_rows_are_sorted_by_charger_in_every_file() {
    let runs = two_runs();
    let files = visible_files(&runs.data.join("devices"));
    assert!(!files.is_empty(), "no devices files");
    for path in &files {
        let keys = keys(path, &["charger_pseudonym", "observation_pseudonym"]);
        assert!(
            keys.windows(2).all(|pair| pair[0] <= pair[1]),
            "{}: rows not sorted by charger, then observation",
            path.display()
        );
        let order = sort_order(&footer(path)).expect("sort order in the footer");
        assert!(
            order.starts_with("charger_pseudonym, observed_day, observation_pseudonym"),
            "{}: {order}",
            path.display()
        );
    }
}

#[test]
fn pseudonym_columns_carry_bloom_filters_and_the_page_index() {
    let runs = two_runs();
    for path in visible_files(&runs.data.join("history")) {
        let metadata = footer(&path);
        for column in ["account_pseudonym", "rfid_pseudonym", "charger_pseudonym"] {
            assert_bloom_filter(&path, &metadata, column);
        }
        for column in ["account_pseudonym", "rfid_pseudonym", "observed_at"] {
            assert_page_index(&path, &metadata, column);
        }
    }
    for path in visible_files(&runs.data.join("devices")) {
        let metadata = footer(&path);
        assert_bloom_filter(&path, &metadata, "charger_pseudonym");
        assert_page_index(&path, &metadata, "charger_pseudonym");
    }
}
