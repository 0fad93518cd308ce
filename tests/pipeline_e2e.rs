//! Exactly-once output, quarantine reasons, idempotent re-runs, stable pseudonyms.

use std::collections::{BTreeMap, HashMap, HashSet};

use delink_datadir::open_quarantined;
use delink_keystore::subject_entity;
use delink_keystore::{Entity, KeyStore};
use delink_model::{Scope, SubjectId};
use delink_transform::pseudonym_hex;

use crate::util::{column_text, open_store, sorted_rows, two_runs};

const HISTORY_OBSERVATION: &str = "delink pseudonym v1 history/observation_id";

fn column_values<'a>(
    batches: impl IntoIterator<Item = &'a arrow_array::RecordBatch>,
    name: &str,
) -> Vec<String> {
    batches
        .into_iter()
        .flat_map(|batch| column_text(batch, name))
        .collect()
}

/// Finds the subject of each valid observation from the raw line, per the spec's normalisation.
fn subjects(runs: &crate::util::TwoRuns) -> HashMap<u64, String> {
    let mut found = HashMap::new();
    for (index, line) in runs.input.lines.iter().enumerate() {
        let Ok(value) = serde_json::from_slice::<serde_json::Value>(&line.line) else {
            continue;
        };
        let account = value["user"]["account_id"]
            .as_str()
            .map(|a| a.trim().to_lowercase());
        let rfid = value["user"]["rfid"].as_str().map(|r| {
            r.chars()
                .filter(|c| !c.is_whitespace())
                .collect::<String>()
                .to_lowercase()
        });
        let subject = match (&account, &rfid) {
            (Some(account), _) => Some(subject_entity(SubjectId::Account(account))),
            (None, Some(rfid)) => Some(subject_entity(SubjectId::Rfid(rfid))),
            (None, None) => None,
        };
        if let Some(subject) = subject {
            found.insert(index as u64 + 1, subject);
        }
    }
    found
}

#[test]
fn every_valid_observation_is_in_devices_exactly_once() {
    let runs = two_runs();
    let store = open_store_after_runs();
    let expected: Vec<String> = runs.input.devices_observation_pseudonyms(store);
    let mut written = column_values(&runs.first.devices, "observation_pseudonym");
    assert_eq!(
        written.len(),
        expected.len(),
        "devices rows vs distinct valid observations"
    );
    written.sort();
    let mut expected_sorted = expected.clone();
    expected_sorted.sort();
    assert_eq!(written, expected_sorted);
    assert!(
        expected.len() > 90_000,
        "the input has {} valid observations",
        expected.len()
    );
}

#[test]
fn every_valid_observation_with_a_subject_is_in_history_exactly_once() {
    let runs = two_runs();
    let store = open_store_after_runs();
    let subjects = subjects(runs);
    let mut expected = Vec::new();
    for (line, id, has_subject) in runs.input.first_valid() {
        assert_eq!(subjects.contains_key(&line), has_subject, "line {line}");
        if has_subject {
            let key = store
                .existing_key(&Entity::new(Scope::Subject, &subjects[&line]))
                .expect("store")
                .expect("subject key");
            expected.push(pseudonym_hex(key.expose(), HISTORY_OBSERVATION, &id));
        }
    }
    let mut written = column_values(&runs.first.history, "observation_pseudonym");
    assert_eq!(written.len(), expected.len());
    written.sort();
    expected.sort();
    assert_eq!(written, expected);
    assert!(expected.len() > 10_000);
}

#[test]
fn every_broken_line_is_quarantined_with_its_reason_and_can_be_opened() {
    let runs = two_runs();
    let expected = runs.input.broken();
    assert!(
        expected.len() >= 1_000,
        "at least 1% broken: {}",
        expected.len()
    );
    let store = open_store_after_runs();
    let mut found = BTreeMap::new();
    for (day, batch) in &runs.first.quarantine {
        let positions = column_text(batch, "position");
        let reasons = column_text(batch, "reason");
        let segments = column_text(batch, "segment");
        let sealed = batch
            .column_by_name("sealed_record")
            .expect("sealed")
            .as_any()
            .downcast_ref::<arrow_array::BinaryArray>()
            .expect("binary");
        for row in 0..batch.num_rows() {
            let position: u64 = positions[row].parse().expect("position");
            assert!(
                found.insert(position, reasons[row].clone()).is_none(),
                "line {position} twice"
            );
            let original = &runs.input.lines[position as usize - 1].line;
            let opened = open_quarantined(store, day, &segments[row], position, sealed.value(row))
                .expect("opens")
                .expect("day key exists");
            let kept = opened.len().min(original.len());
            assert_eq!(&opened[..kept], &original[..kept], "line {position}");
            if original.len() >= 16 {
                let head = &original[..16];
                assert!(
                    !sealed.value(row).windows(16).any(|w| w == head),
                    "line {position} in clear"
                );
            }
        }
    }
    let expected: BTreeMap<u64, String> = expected
        .into_iter()
        .map(|(l, r)| (l, r.to_owned()))
        .collect();
    assert_eq!(found, expected);
    let reasons: HashSet<&str> = expected.values().map(String::as_str).collect();
    assert!(
        reasons.len() >= 10,
        "every kind of breakage is exercised: {reasons:?}"
    );
}

#[test]
fn a_second_run_leaves_the_same_rows_and_pseudonyms() {
    let runs = two_runs();
    assert_eq!(
        sorted_rows(&runs.first.devices),
        sorted_rows(&runs.second.devices)
    );
    assert_eq!(
        sorted_rows(&runs.first.history),
        sorted_rows(&runs.second.history)
    );
    let quarantine = |s: &crate::util::Snapshot| {
        let batches: Vec<_> = s.quarantine.iter().map(|(_, b)| b.clone()).collect();
        let mut positions = column_values(&batches, "position");
        positions.sort();
        positions
    };
    assert_eq!(quarantine(&runs.first), quarantine(&runs.second));
}

#[test]
fn pseudonyms_are_stable_per_column_and_differ_across_columns() {
    let runs = two_runs();
    let history_chargers: HashSet<String> = column_values(&runs.first.history, "charger_pseudonym")
        .into_iter()
        .collect();
    let devices_chargers: HashSet<String> = column_values(&runs.first.devices, "charger_pseudonym")
        .into_iter()
        .collect();
    // The same chargers appear in both, under unrelated pseudonyms.
    assert!(history_chargers.len() > 10 && devices_chargers.len() > 10);
    assert!(history_chargers.is_disjoint(&devices_chargers));
    // Same identifier, same pseudonym: far fewer distinct chargers than rows.
    assert!(
        devices_chargers.len() * 10 < column_values(&runs.first.devices, "charger_pseudonym").len()
    );
    // No identifier column of devices/ equals any value of any history/ column.
    let mut history_values = HashSet::new();
    for batch in &runs.first.history {
        for field in batch.schema().fields() {
            history_values.extend(column_text(batch, field.name()));
        }
    }
    for column in [
        "observation_pseudonym",
        "charger_pseudonym",
        "component_pseudonyms",
    ] {
        for value in column_values(&runs.first.devices, column) {
            if !value.is_empty() {
                assert!(
                    !history_values.contains(&value),
                    "{column} value {value} appears in history/"
                );
            }
        }
    }
}

#[test]
fn the_summary_and_metrics_account_for_every_line() {
    let runs = two_runs();
    let summary = &runs.summary;
    let lines = runs.input.lines.len() as u64;
    let valid = runs.input.first_valid().len() as u64;
    assert_eq!(summary["observations_in"], lines);
    assert_eq!(summary["devices_rows"], valid);
    assert_eq!(summary["quarantined"], runs.input.broken().len() as u64);
    assert_eq!(
        summary["valid"].as_u64().expect("valid") + summary["quarantined"].as_u64().expect("q"),
        lines
    );
    assert!(runs.metrics.contains(&format!(
        "delink_output_rows_total{{output=\"devices\"}} {valid}"
    )));
    // Every stage reports: source, decode, replay check, sinks, publisher.
    for series in [
        format!("delink_input_records_total {lines}"),
        "delink_input_bytes_total ".to_owned(),
        "delink_records_rejected_total{reason=\"not_json\"}".to_owned(),
        "delink_records_duplicate_total ".to_owned(),
        "delink_unknown_fields_total{field=".to_owned(),
        "delink_output_rows_total{output=\"history\"}".to_owned(),
        "delink_output_files_total{output=\"quarantine\"}".to_owned(),
        "delink_segments_published_total 3".to_owned(),
        "delink_segment_publish_duration_seconds_count 3".to_owned(),
    ] {
        assert!(
            runs.metrics.contains(&series),
            "missing {series} in\n{}",
            runs.metrics
        );
    }
    let logs = String::from_utf8_lossy(&runs.logs);
    assert!(logs.contains("progress:") || logs.contains("delink run summary"));
}

fn open_store_after_runs() -> &'static delink_keystore::EmbeddedKeyStore {
    static STORE: std::sync::OnceLock<delink_keystore::EmbeddedKeyStore> =
        std::sync::OnceLock::new();
    // The embedded store is locked by one opener at a time; the tests share one.
    STORE.get_or_init(|| open_store(&two_runs().data))
}
