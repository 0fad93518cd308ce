use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, UInt8Type};
use arrow_array::{ArrayRef, Float64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use delink_policy::{Anonymity, Generalisation, Step};

use crate::{anonymise, published_schema};

const K: usize = 3;

fn anonymity() -> Anonymity {
    let step = |columns: &[&str], generalisation| Step {
        columns: columns.iter().map(|c| c.to_string()).collect(),
        generalisation,
    };
    Anonymity {
        k: K,
        charger_column: "charger".into(),
        steps: vec![
            step(&["lat"], Generalisation::Grid(1.0)),
            step(&["firmware"], Generalisation::Segments(2)),
            step(&["lat"], Generalisation::Withhold),
            step(&["firmware"], Generalisation::Withhold),
            step(&["country"], Generalisation::Withhold),
        ],
        microaggregate: vec!["energy".into()],
    }
}

fn schema() -> SchemaRef {
    let field = |name: &str, data_type, action: &str| {
        Field::new(name, data_type, true).with_metadata(HashMap::from([(
            "delink.action".to_owned(),
            action.to_owned(),
        )]))
    };
    Arc::new(Schema::new(vec![
        field("charger", DataType::Utf8, "pseudonymise(device)"),
        field("kind", DataType::Utf8, "keep"),
        field("country", DataType::Utf8, "keep"),
        field("lat", DataType::Float64, "generalise(grid=0.1)"),
        field("firmware", DataType::Utf8, "keep"),
        field("energy", DataType::Float64, "keep"),
    ]))
}

/// One row: charger, kind, country, lat, firmware, energy.
type Row = (
    String,
    &'static str,
    Option<&'static str>,
    Option<f64>,
    &'static str,
    Option<f64>,
);

fn batch(rows: &[Row]) -> RecordBatch {
    let strings = |f: &dyn Fn(&Row) -> Option<String>| -> ArrayRef {
        Arc::new(rows.iter().map(f).collect::<StringArray>())
    };
    let floats = |f: &dyn Fn(&Row) -> Option<f64>| -> ArrayRef {
        Arc::new(rows.iter().map(f).collect::<Float64Array>())
    };
    RecordBatch::try_new(
        schema(),
        vec![
            strings(&|r| Some(r.0.clone())),
            strings(&|r| Some(r.1.to_owned())),
            strings(&|r| r.2.map(str::to_owned)),
            floats(&|r| r.3),
            strings(&|r| Some(r.4.to_owned())),
            floats(&|r| r.5),
        ],
    )
    .expect("rows follow the schema")
}

/// A fleet: a big town of many chargers, and a few rare households.
fn fleet() -> Vec<Row> {
    let mut rows = Vec::new();
    for charger in 0..12 {
        for reading in 0..4 {
            let energy = (reading == 0).then_some(1000.0 * (charger + 1) as f64);
            let kind = if reading == 0 {
                "session_stop"
            } else {
                "status"
            };
            rows.push((
                format!("c{charger}"),
                kind,
                Some("DE"),
                Some(52.3),
                "2.4.1",
                energy,
            ));
        }
    }
    // Rare: one charger each in nearby cells, or with a rare firmware.
    rows.push(("r1".into(), "status", Some("DE"), Some(52.7), "2.4.1", None));
    rows.push(("r2".into(), "status", Some("DE"), Some(52.5), "2.4.1", None));
    rows.push(("r3".into(), "status", Some("DE"), Some(52.1), "2.4.0", None));
    rows.push((
        "r4".into(),
        "session_stop",
        Some("DE"),
        Some(52.1),
        "2.4.0",
        Some(99_000.0),
    ));
    rows.push((
        "lone".into(),
        "status",
        Some("NO"),
        Some(60.1),
        "1.9.12",
        None,
    ));
    rows
}

/// A published profile: level, country, lat, firmware.
type Profile = (u8, Option<String>, Option<String>, Option<String>);

/// (level, country, lat, firmware) of every published row, with its charger.
fn published(batch: &RecordBatch) -> Vec<(Profile, String)> {
    let text = |name: &str| {
        crate::columns::text(batch.column_by_name(name).expect("column")).expect("text")
    };
    let (chargers, country, lat, firmware) = (
        text("charger"),
        text("country"),
        text("lat"),
        text("firmware"),
    );
    let levels = batch
        .column_by_name("profile_level")
        .expect("level")
        .as_primitive::<UInt8Type>();
    (0..batch.num_rows())
        .map(|row| {
            let profile = (
                levels.value(row),
                country[row].clone(),
                lat[row].clone(),
                firmware[row].clone(),
            );
            (profile, chargers[row].clone().expect("charger"))
        })
        .collect()
}

#[test]
fn every_published_profile_has_k_chargers_and_rare_ones_are_coarsened_only_as_far_as_needed() {
    let input = batch(&fleet());
    let anonymity = anonymity();
    let (output, outcome) = anonymise(
        &input,
        &anonymity,
        &published_schema(&input.schema(), Some(&anonymity)),
    )
    .expect("anonymised");
    let rows = published(&output);
    let mut members: HashMap<_, HashSet<String>> = HashMap::new();
    for (profile, charger) in &rows {
        members
            .entry(profile.clone())
            .or_default()
            .insert(charger.clone());
    }
    for (profile, chargers) in &members {
        if profile.0 < anonymity.steps.len() as u8 {
            assert!(
                chargers.len() >= K,
                "profile {profile:?} has {} chargers",
                chargers.len()
            );
        }
    }
    // The town keeps its full detail.
    assert!(
        rows[..48]
            .iter()
            .all(|(p, _)| p.0 == 0 && p.2.as_deref() == Some("52.300000"))
    );
    // r1, r2 share the 1° cell 52 with r3 once firmware is cut to 2.4.
    let coarse = (
        2,
        Some("DE".into()),
        Some("52.000000".into()),
        Some("2.4".into()),
    );
    for row in &rows[48..51] {
        assert_eq!(row.0, coarse, "{row:?}");
    }
    // r4 has the same profile but another kind (the kind is compared too),
    // and the lone charger is alone everywhere: every step, counted, not hidden.
    assert_eq!(rows[51].0, (5, None, None, None));
    assert_eq!(rows[52].0, (5, None, None, None));
    assert_eq!(outcome.rows_below_k, 2);
    assert_eq!(outcome.rows_by_level, vec![48, 0, 3, 0, 0, 2]);
}

#[test]
fn numbers_take_the_mean_of_k_chargers_and_their_sum_is_kept() {
    let input = batch(&fleet());
    let anonymity = anonymity();
    let (output, outcome) = anonymise(
        &input,
        &anonymity,
        &published_schema(&input.schema(), Some(&anonymity)),
    )
    .expect("anonymised");
    let energy = |batch: &RecordBatch| -> Vec<Option<f64>> {
        batch
            .column_by_name("energy")
            .expect("energy")
            .as_primitive::<Float64Type>()
            .iter()
            .collect()
    };
    let (before, after) = (energy(&input), energy(&output));
    let total = |values: &[Option<f64>]| values[..48].iter().flatten().sum::<f64>();
    assert!(
        (total(&before) - total(&after)).abs() < 1e-6,
        "the town's sum is kept"
    );
    // Nulls stay null; every published value is held by at least k chargers.
    let chargers =
        crate::columns::text(output.column_by_name("charger").expect("charger")).expect("text");
    let mut holders: HashMap<String, HashSet<String>> = HashMap::new();
    for row in 0..output.num_rows() {
        if row != 51 {
            assert_eq!(before[row].is_none(), after[row].is_none(), "row {row}");
        }
        if let Some(value) = after[row] {
            holders
                .entry(format!("{value}"))
                .or_default()
                .insert(chargers[row].clone().expect("charger"));
        }
    }
    let town: Vec<usize> = holders
        .values()
        .map(HashSet::len)
        .filter(|n| *n >= K)
        .collect();
    assert_eq!(
        town.len(),
        4,
        "12 town chargers make 4 clusters of 3: {holders:?}"
    );
    // r4's session is alone in its profile: its energy is withheld, and counted.
    assert_eq!(before[51], Some(99_000.0));
    assert_eq!(after[51], None);
    assert_eq!(outcome.numbers_below_k, 1);
}

#[test]
fn a_fleet_where_every_profile_has_k_chargers_is_left_as_it_is() {
    // Without microaggregation a number is part of the profile: leave it out.
    let rows: Vec<Row> = fleet()
        .into_iter()
        .take(48)
        .map(|row| (row.0, row.1, row.2, row.3, row.4, None))
        .collect();
    let input = batch(&rows);
    let mut anonymity = anonymity();
    anonymity.microaggregate.clear();
    let (output, outcome) = anonymise(
        &input,
        &anonymity,
        &published_schema(&input.schema(), Some(&anonymity)),
    )
    .expect("anonymised");
    for index in 0..input.num_columns() {
        assert_eq!(input.column(index), output.column(index));
    }
    assert_eq!(outcome.rows_below_k, 0);
}
