use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::TimestampMicrosecondType;
use arrow_array::{Float64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use delink_policy::SortKey;
use proptest::prelude::*;

use crate::{order, sort};

type Row = (Option<String>, Option<String>, Option<i64>, Option<String>);

fn history_key() -> SortKey {
    SortKey {
        identity: vec!["account".into(), "rfid".into()],
        time: Some("at".into()),
        then: vec!["observation".into()],
    }
}

fn batch(rows: &[Row]) -> RecordBatch {
    let text = |name: &str| Field::new(name, DataType::Utf8, true);
    let schema = Schema::new(vec![
        text("account"),
        text("rfid"),
        Field::new(
            "at",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            true,
        ),
        text("observation"),
    ]);
    let strings =
        |pick: fn(&Row) -> Option<String>| Arc::new(rows.iter().map(pick).collect::<StringArray>());
    RecordBatch::try_new(
        Arc::new(schema),
        vec![
            strings(|row| row.0.clone()),
            strings(|row| row.1.clone()),
            Arc::new(
                rows.iter()
                    .map(|row| row.2)
                    .collect::<TimestampMicrosecondArray>()
                    .with_timezone("UTC"),
            ),
            strings(|row| row.3.clone()),
        ],
    )
    .expect("batch")
}

/// The order spelled out: owner (account, else RFID), time, the
/// observation, each identity column, then position.
fn expected(rows: &[Row], positions: &[u32]) -> Vec<u32> {
    let mut expected: Vec<u32> = (0..positions.len() as u32).collect();
    expected.sort_by_key(|at| {
        let row = &rows[positions[*at as usize] as usize];
        let owner = row.0.clone().or_else(|| row.1.clone());
        (
            owner,
            row.2,
            row.3.clone(),
            row.0.clone(),
            row.1.clone(),
            *at,
        )
    });
    expected
}

/// Strings that share long prefixes, are prefixes of each other or hold NULs.
fn awkward_text() -> impl Strategy<Value = Option<String>> {
    prop::option::weighted(
        0.8,
        prop::sample::select(vec![
            "",
            "\0",
            "a",
            "abcdefgh",
            "abcdefgh\0",
            "abcdefgh1",
            "abcdefgh10",
            "abcdefgh2",
            "abcdefgi",
            "b",
        ])
        .prop_map(str::to_owned),
    )
}

fn awkward_time() -> impl Strategy<Value = Option<i64>> {
    prop::option::weighted(
        0.9,
        prop::sample::select(vec![
            i64::MIN,
            i64::MIN + 1,
            -1,
            0,
            1,
            1_700_000_000_000_000,
            i64::MAX,
        ]),
    )
}

proptest! {
    #[test]
    fn rows_are_ordered_by_owner_then_time_then_pseudonyms_whatever_their_values(
        rows in prop::collection::vec(
            (awkward_text(), awkward_text(), awkward_time(), awkward_text()),
            0..60,
        ),
        skip in 0usize..3,
    ) {
        let input = batch(&rows);
        // A subset of the rows, as the anonymiser passes one kind's rows.
        let positions: Vec<u32> = (0..rows.len() as u32).filter(|row| *row as usize % 3 != skip).collect();
        let sorted = order(&input, &positions, &history_key()).expect("sortable");
        prop_assert_eq!(sorted, expected(&rows, &positions));
    }
}

#[test]
fn a_row_without_an_account_is_filed_under_its_rfid() {
    let row = |account: Option<&str>, rfid: &str, at: i64, observation: &str| -> Row {
        (
            account.map(str::to_owned),
            Some(rfid.to_owned()),
            Some(at),
            Some(observation.to_owned()),
        )
    };
    let rows = vec![
        row(Some("m"), "x", 5, "o1"),
        row(None, "c", 9, "o2"),
        row(Some("m"), "a", 1, "o3"),
        row(None, "z", 0, "o4"),
        row(Some("b"), "q", 7, "o5"),
        row(None, "c", 2, "o6"),
    ];
    let sorted = sort(&batch(&rows), &history_key()).expect("sortable");
    let sorted = sorted.slice(0, sorted.num_rows()).expect("rows");
    let observations: Vec<&str> = sorted
        .column(3)
        .as_string::<i32>()
        .iter()
        .flatten()
        .collect();
    // Owners b, c (RFID only, by time), m (by time), z.
    assert_eq!(observations, ["o5", "o6", "o2", "o3", "o1", "o4"]);
    let times: Vec<i64> = sorted
        .column(2)
        .as_primitive::<TimestampMicrosecondType>()
        .values()
        .to_vec();
    assert_eq!(times, [7, 2, 9, 1, 5, 0]);
}

#[test]
fn a_column_that_is_neither_text_nor_time_is_refused_by_name() {
    let schema = Schema::new(vec![Field::new("energy", DataType::Float64, true)]);
    let input = RecordBatch::try_new(
        Arc::new(schema),
        vec![Arc::new(Float64Array::from(vec![1.0]))],
    )
    .expect("batch");
    let key = SortKey {
        identity: vec!["energy".into()],
        ..SortKey::default()
    };
    let Err(error) = sort(&input, &key) else {
        panic!("a float is no sort key")
    };
    let error = error.to_string();
    assert!(error.contains("`energy`"), "{error}");
    let missing = SortKey {
        time: Some("absent".into()),
        ..SortKey::default()
    };
    let Err(error) = sort(&input, &missing) else {
        panic!("no such column")
    };
    let error = error.to_string();
    assert!(error.contains("`absent`"), "{error}");
}

#[test]
fn the_order_is_described_column_by_column_with_the_owner_coalesced() {
    assert_eq!(
        crate::describe(&history_key()),
        "coalesce(account, rfid), at, observation"
    );
    let devices = SortKey {
        identity: vec!["charger".into()],
        time: Some("day".into()),
        then: vec!["observation".into()],
    };
    assert_eq!(crate::describe(&devices), "charger, day, observation");
}
