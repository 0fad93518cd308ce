use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, UInt8Type};
use arrow_array::{ArrayRef, Float64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use delink_policy::{Anonymity, Generalisation, SortKey, Step};

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
        steps_by_kind: std::collections::BTreeMap::new(),
        kind_column: Some("kind".into()),
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

fn run(input: &RecordBatch, anonymity: &Anonymity) -> (RecordBatch, crate::Outcome) {
    let published = published_schema(&input.schema(), Some(anonymity));
    let schema = input.schema();
    let other_pseudonyms = schema
        .fields()
        .iter()
        .filter(|field| {
            crate::is_pseudonym(field)
                && *field.data_type() == DataType::Utf8
                && *field.name() != anonymity.charger_column
        })
        .map(|field| field.name().clone());
    let order = SortKey {
        identity: vec![anonymity.charger_column.clone()],
        time: None,
        then: other_pseudonyms.collect(),
    };
    let (rows, outcome) = anonymise(input, anonymity, &published, &order).expect("anonymised");
    (rows.slice(0, rows.num_rows()).expect("rows"), outcome)
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
    let (output, outcome) = run(&input, &anonymity);
    let rows = published(&output);
    let kinds = crate::columns::text(output.column_by_name("kind").expect("kind")).expect("text");
    let mut members: HashMap<_, HashSet<String>> = HashMap::new();
    for ((profile, charger), kind) in rows.iter().zip(&kinds) {
        members
            .entry((profile.clone(), kind.clone()))
            .or_default()
            .insert(charger.clone());
    }
    for (profile, chargers) in &members {
        assert!(
            chargers.len() >= K,
            "{profile:?} has {} chargers",
            chargers.len()
        );
    }
    assert_eq!(outcome.rows_below_k, 0);
    // Most of the town keeps its full detail; the rare chargers never show their own.
    let full = rows.iter().filter(|(p, _)| p.0 == 0).count();
    assert!(full >= 24, "{full} of 53 rows at level 0: {rows:?}");
    for (profile, charger) in &rows {
        if charger == "lone" {
            assert_eq!(profile.1, None, "the lone charger's country is withheld");
        }
        if ["r1", "r2", "r3", "r4"].contains(&charger.as_str()) {
            assert_ne!(profile.2.as_deref(), Some("52.700000"));
            assert_ne!(profile.2.as_deref(), Some("52.500000"));
            assert_ne!(profile.2.as_deref(), Some("52.100000"));
        }
    }
    // Every published value is the row's own, coarsened by exactly its level's steps.
    // Each fixture charger has one profile as written: compare by charger (rows are reordered).
    let original = published_original(&input);
    for (row, (profile, charger)) in rows.iter().enumerate() {
        let mut expected = original[charger].clone();
        for step in &anonymity.steps[..usize::from(profile.0)] {
            for (name, value) in [
                ("country", &mut expected.0),
                ("lat", &mut expected.1),
                ("firmware", &mut expected.2),
            ] {
                if step.columns.iter().any(|c| c == name) {
                    *value = step.generalisation.apply(value.as_deref());
                }
            }
        }
        assert_eq!(
            (profile.1.clone(), profile.2.clone(), profile.3.clone()),
            expected,
            "row {row}"
        );
    }
    assert_eq!(outcome.rows_by_level.iter().sum::<u64>(), 53);
}

/// (country, lat, firmware) of a charger.
type ChargerProfile = (Option<String>, Option<String>, Option<String>);

/// The profile of each input charger.
fn published_original(input: &RecordBatch) -> HashMap<String, ChargerProfile> {
    let text = |name: &str| {
        crate::columns::text(input.column_by_name(name).expect("column")).expect("text")
    };
    let (country, lat, firmware) = (text("country"), text("lat"), text("firmware"));
    let chargers = text("charger");
    (0..input.num_rows())
        .map(|row| {
            let profile = (
                country[row].clone(),
                lat[row].clone(),
                firmware[row].clone(),
            );
            (chargers[row].clone().expect("charger"), profile)
        })
        .collect()
}

#[test]
fn numbers_take_the_mean_of_k_chargers_and_their_sum_is_kept() {
    let input = batch(&fleet());
    let anonymity = anonymity();
    let (output, outcome) = run(&input, &anonymity);
    let energy = |batch: &RecordBatch| -> Vec<Option<f64>> {
        batch
            .column_by_name("energy")
            .expect("energy")
            .as_primitive::<Float64Type>()
            .iter()
            .collect()
    };
    let (before, after) = (energy(&input), energy(&output));
    let total = |values: &[Option<f64>]| values.iter().flatten().sum::<f64>();
    assert!(
        (total(&before) - total(&after)).abs() < 1e-6,
        "the sum is kept"
    );
    // Nulls stay null; every published value is held by at least k chargers.
    let chargers =
        crate::columns::text(output.column_by_name("charger").expect("charger")).expect("text");
    let mut holders: HashMap<String, HashSet<String>> = HashMap::new();
    let nulls = |values: &[Option<f64>]| values.iter().filter(|v| v.is_none()).count();
    assert_eq!(
        nulls(&before),
        nulls(&after),
        "nulls stay null, no number is withheld"
    );
    for row in 0..output.num_rows() {
        if let Some(value) = after[row] {
            holders
                .entry(format!("{value}"))
                .or_default()
                .insert(chargers[row].clone().expect("charger"));
        }
    }
    for (value, chargers) in &holders {
        assert!(chargers.len() >= K, "{value} is held by {chargers:?}");
    }
    assert!(
        holders.len() >= 3,
        "neighbouring values share means: {holders:?}"
    );
    assert_eq!(before[51], Some(99_000.0));
    assert!(
        !after.contains(&Some(99_000.0)),
        "the rare session's energy is not published"
    );
    assert!(
        outcome.numbers_withheld.is_empty(),
        "{:?}",
        outcome.numbers_withheld
    );
}

#[test]
fn a_fleet_where_every_profile_has_k_chargers_is_left_as_it_is() {
    // Without microaggregation a number is part of the profile: leave it out.
    let rows: Vec<Row> = fleet()
        .into_iter()
        .take(48)
        .map(|row| (row.0, row.1, row.2, row.3, row.4, None))
        .collect();
    // Written in the order the output keeps: by charger pseudonym.
    let mut rows = rows;
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    let input = batch(&rows);
    let mut anonymity = anonymity();
    anonymity.microaggregate.clear();
    let (output, outcome) = run(&input, &anonymity);
    for index in 0..input.num_columns() {
        assert_eq!(input.column(index), output.column(index));
    }
    assert_eq!(outcome.rows_below_k, 0);
}

#[test]
fn a_day_with_fewer_than_k_chargers_publishes_no_profile_and_no_number() {
    let rows: Vec<Row> = ["a", "b"]
        .iter()
        .map(|charger| {
            let row: Row = (
                charger.to_string(),
                "session_stop",
                Some("DE"),
                Some(52.3),
                "2.4.1",
                Some(7000.0),
            );
            row
        })
        .collect();
    let input = batch(&rows);
    let (output, outcome) = run(&input, &anonymity());
    for (profile, _) in published(&output) {
        assert_eq!(profile, (5, None, None, None));
    }
    let energy = output.column_by_name("energy").expect("energy");
    assert_eq!(energy.null_count(), 2, "both energies withheld");
    assert_eq!(outcome.rows_below_k, 2);
    assert_eq!(outcome.numbers_withheld.get("energy"), Some(&2));
}

#[test]
fn rows_come_out_ordered_by_their_charger_pseudonym_not_in_input_order() {
    // Input order interleaves the chargers; the output must not keep it.
    let mut rows = fleet();
    rows.reverse();
    let input = batch(&rows);
    let (output, _) = run(&input, &anonymity());
    let chargers: Vec<String> = published(&output).into_iter().map(|(_, c)| c).collect();
    let mut sorted = chargers.clone();
    sorted.sort();
    assert_eq!(chargers, sorted);
    assert_eq!(output.num_rows(), input.num_rows());
}

#[test]
fn rows_sharing_a_charger_are_ordered_by_their_whole_other_pseudonyms() {
    let field = |name: &str| {
        Field::new(name, DataType::Utf8, true).with_metadata(HashMap::from([(
            "delink.action".to_owned(),
            "pseudonymise(device)".to_owned(),
        )]))
    };
    let schema = Arc::new(Schema::new(vec![field("charger"), field("observation")]));
    // Equal first eight bytes, a shorter value, a NUL byte, and a null.
    let observations = [
        Some("abcdefgh2"),
        Some("abcdefgh10"),
        Some("abcdefgh"),
        Some("abc\0"),
        Some("abc"),
        None,
        Some("abcdefgh1"),
    ];
    let chargers = ["b", "a", "a", "a", "a", "a", "a"];
    let input = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(chargers.iter().map(|c| Some(*c)).collect::<StringArray>()),
            Arc::new(observations.iter().copied().collect::<StringArray>()),
        ],
    )
    .expect("batch");
    let anonymity = Anonymity {
        k: 1,
        charger_column: "charger".into(),
        steps: Vec::new(),
        steps_by_kind: std::collections::BTreeMap::new(),
        kind_column: None,
        microaggregate: Vec::new(),
    };
    let (output, _) = run(&input, &anonymity);
    let column = |name: &str| crate::columns::text(output.column_by_name(name).expect(name));
    let pairs: Vec<(Option<String>, Option<String>)> = column("charger")
        .expect("text")
        .into_iter()
        .zip(column("observation").expect("text"))
        .collect();
    let mut expected: Vec<(Option<String>, Option<String>)> = chargers
        .iter()
        .map(|c| Some(c.to_string()))
        .zip(observations.iter().map(|o| o.map(str::to_owned)))
        .collect();
    expected.sort();
    assert_eq!(pairs, expected);
}

#[test]
fn values_are_coded_by_their_text_in_the_order_first_seen() {
    use arrow_array::types::Int32Type;
    use arrow_array::{Int64Array, ListArray};

    let coded = |array: ArrayRef, rows: &[u32]| {
        let (dictionary, codes) = crate::columns::coded(&array, rows).expect("coded");
        (dictionary.values, codes)
    };
    let text = |values: &[Option<&str>]| -> Vec<Option<String>> {
        values.iter().map(|v| v.map(str::to_owned)).collect()
    };
    // Floats that print alike at six decimals share a code; -0 prints apart from 0.
    let floats: ArrayRef = Arc::new(Float64Array::from(vec![
        Some(1.000_000_1),
        None,
        Some(-0.0),
        Some(1.000_000_2),
        Some(0.0),
        None,
    ]));
    let (values, codes) = coded(floats, &[0, 1, 2, 3, 4, 5]);
    assert_eq!(
        values,
        text(&[Some("1.000000"), None, Some("-0.000000"), Some("0.000000")])
    );
    assert_eq!(codes, [0, 1, 2, 0, 3, 1]);
    // Only the rows asked for, in their order.
    let strings: ArrayRef = Arc::new(StringArray::from(vec![
        Some("b"),
        Some("a"),
        None,
        Some("b"),
    ]));
    let (values, codes) = coded(strings, &[3, 1, 0]);
    assert_eq!(values, text(&[Some("b"), Some("a")]));
    assert_eq!(codes, [0, 1, 0]);
    let integers: ArrayRef = Arc::new(Int64Array::from(vec![Some(-7), Some(12), Some(-7)]));
    let (values, codes) = coded(integers, &[0, 1, 2]);
    assert_eq!(values, text(&[Some("-7"), Some("12")]));
    assert_eq!(codes, [0, 1, 0]);
    // Lists are coded by their displayed text.
    let lists: ArrayRef = Arc::new(ListArray::from_iter_primitive::<Int32Type, _, _>(vec![
        Some(vec![Some(1), Some(2)]),
        None,
        Some(vec![Some(1), Some(2)]),
    ]));
    let (values, codes) = coded(lists, &[0, 1, 2]);
    assert_eq!(values, text(&[Some("[1, 2]"), None]));
    assert_eq!(codes, [0, 1, 0]);
}
