//! No raw identifier reaches any output file, decoded value or log line.

use std::collections::HashSet;
use std::path::Path;

use aho_corasick::AhoCorasick;

use crate::util::{column_text, two_runs};

/// Shorter values could match compressed bytes by chance.
const MIN_SEARCH_LEN: usize = 8;

const STRING_PATHS: &[&[&str]] = &[
    &["observation_id"],
    &["charger", "serial"],
    &["installation", "id"],
    &["installation", "site_name"],
    &["installation", "address"],
    &["user", "account_id"],
    &["user", "email"],
    &["user", "name"],
    &["user", "phone"],
    &["user", "rfid"],
    &["session", "id"],
    &["network", "ip"],
    &["network", "mac"],
    &["user", "driver_license"],
    &["installation", "owner_national_id"],
];

/// Every identifier value of the input, raw and normalised, however short.
fn raw_identifiers() -> HashSet<String> {
    let mut values = HashSet::new();
    for line in &two_runs().input.lines {
        let Ok(value) = serde_json::from_slice::<serde_json::Value>(&line.line) else {
            continue;
        };
        let mut found: Vec<String> = Vec::new();
        for path in STRING_PATHS {
            let mut cursor = &value;
            for key in *path {
                cursor = &cursor[*key];
            }
            if let Some(text) = cursor.as_str() {
                found.push(text.to_owned());
            }
        }
        if let Some(components) = value["charger"]["components"].as_array() {
            found.extend(
                components
                    .iter()
                    .filter_map(|c| c["serial"].as_str().map(str::to_owned)),
            );
        }
        for text in found {
            let trimmed = text.trim().to_owned();
            values.insert(trimmed.to_lowercase());
            values.insert(trimmed.to_uppercase());
            values.insert(
                trimmed
                    .chars()
                    .filter(|c| !c.is_whitespace())
                    .collect::<String>()
                    .to_lowercase(),
            );
            values.insert(trimmed);
            values.insert(text);
        }
    }
    values.retain(|v| !v.is_empty());
    values
}

/// The identifiers long enough to search for inside bytes and text.
fn searchable(identifiers: &HashSet<String>) -> Vec<&String> {
    identifiers
        .iter()
        .filter(|v| v.len() >= MIN_SEARCH_LEN)
        .collect()
}

fn files_under(root: &Path, found: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(root).expect("dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            files_under(&path, found);
        } else {
            found.push(path);
        }
    }
}

#[test]
fn no_raw_identifier_appears_in_files_values_or_logs() {
    let runs = two_runs();
    let identifiers = raw_identifiers();
    assert!(
        identifiers.len() > 100_000,
        "collected {} identifier values",
        identifiers.len()
    );
    let patterns = searchable(&identifiers);
    let matcher = AhoCorasick::new(&patterns).expect("matcher");

    let mut files = Vec::new();
    files_under(&runs.data, &mut files);
    assert!(files.len() > 10);
    for file in &files {
        let bytes = std::fs::read(file).expect("read");
        if let Some(hit) = matcher.find(&bytes) {
            panic!(
                "{} holds {:?} in clear",
                file.display(),
                patterns[hit.pattern().as_usize()]
            );
        }
    }

    for batch in runs.first.history.iter().chain(&runs.first.devices) {
        for field in batch.schema().fields() {
            for value in column_text(batch, field.name()) {
                assert!(
                    !identifiers.contains(&value),
                    "column {} holds an identifier",
                    field.name()
                );
                if let Some(hit) = matcher.find(&value) {
                    panic!(
                        "column {} holds {:?}",
                        field.name(),
                        patterns[hit.pattern().as_usize()]
                    );
                }
            }
        }
    }

    if let Some(hit) = matcher.find(&runs.logs) {
        panic!("the log holds {:?}", patterns[hit.pattern().as_usize()]);
    }
}

#[test]
fn the_leak_check_can_fail() {
    // The matcher finds an identifier that is present, so a clean result above means something.
    let identifiers = raw_identifiers();
    let sample = searchable(&identifiers)[0].clone();
    let matcher = AhoCorasick::new([&sample]).expect("matcher");
    let haystack = format!("prefix {sample} suffix");
    assert!(matcher.find(&haystack).is_some());
}

#[test]
fn unknown_personal_fields_are_counted_not_written() {
    let runs = two_runs();
    let unknown = &runs.summary["unknown_fields"];
    assert!(
        unknown["user.driver_license"].as_u64().unwrap_or(0) > 0,
        "{unknown}"
    );
    assert!(
        runs.metrics
            .contains("delink_unknown_fields_total{field=\"user.driver_license\"}")
    );
    let logs = String::from_utf8_lossy(&runs.logs);
    assert!(
        logs.contains("user.driver_license"),
        "the summary names the field"
    );
    let licences: Vec<String> = runs
        .input
        .lines
        .iter()
        .filter_map(|l| serde_json::from_slice::<serde_json::Value>(&l.line).ok())
        .filter_map(|v| v["user"]["driver_license"].as_str().map(str::to_owned))
        .collect();
    assert!(!licences.is_empty());
    for batch in runs.first.history.iter().chain(&runs.first.devices) {
        assert!(
            batch
                .schema()
                .fields()
                .iter()
                .all(|f| !f.name().contains("license"))
        );
    }
}
