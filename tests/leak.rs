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

#[test]
fn personal_data_in_kept_strings_and_in_field_names_reaches_no_output_log_metric_or_summary() {
    let input = crate::util::Input::generate(4000, 77, 0.0);
    let dir = tempfile::tempdir().expect("tempdir");
    let mut planted: HashSet<String> = HashSet::new();
    let mut lines = Vec::new();
    for (index, line) in input.lines.iter().enumerate() {
        let mut value: serde_json::Value = serde_json::from_slice(&line.line).expect("json");
        let text = |pointer: &str| {
            value
                .pointer(pointer)
                .and_then(|v| v.as_str())
                .map(str::to_owned)
        };
        let personal: Vec<String> = [
            "/user/email",
            "/user/name",
            "/user/phone",
            "/user/account_id",
            "/installation/site_name",
            "/installation/address",
        ]
        .iter()
        .filter_map(|pointer| text(pointer))
        .collect();
        let serial = text("/charger/serial").expect("serial");
        let rfid = text("/user/rfid");
        let ip = text("/network/ip");
        if !personal.is_empty() {
            let pick = |slot: usize| personal[(index + slot) % personal.len()].clone();
            value["charger"]["model"] = pick(0).into();
            value["charger"]["firmware"] = pick(1).into();
            value["status"]["fault_code"] = pick(2).into();
            value["operator"]["cpo_id"] = pick(3).into();
            if value["user"].is_object() {
                value["user"]["roles"] = serde_json::json!([pick(4)]);
            }
            if let Some(component) = value["charger"]["components"].get_mut(0) {
                component["kind"] = pick(5).into();
            }
            planted.extend(personal);
        }
        // Objects keyed by identifiers: a tag, a serial, an address.
        value["charger"][serial.to_lowercase()] = 1.into();
        planted.insert(serial);
        if let Some(rfid) = rfid
            && value["user"].is_object()
        {
            let compact: String = rfid.chars().filter(|c| !c.is_whitespace()).collect();
            value["user"][compact.to_lowercase()] = 1.into();
            planted.insert(compact);
        }
        if let Some(ip) = ip {
            value["network"][ip.as_str()] = 1.into();
            planted.insert(ip);
        }
        lines.push(serde_json::to_string(&value).expect("json"));
    }
    let path = dir.path().join("leaky.ndjson");
    std::fs::write(&path, lines.join("\n")).expect("write");
    let data = dir.path().join("data");
    let summary_path = dir.path().join("summary.json");
    let metrics_path = dir.path().join("metrics.prom");
    let output = crate::util::run_ok(
        crate::util::delink()
            .args(["run", "--progress", "always", "--data-dir"])
            .arg(&data)
            .arg("--summary-json")
            .arg(&summary_path)
            .arg("--metrics-file")
            .arg(&metrics_path)
            .arg(&path)
            .env("RUST_LOG", "debug"),
    );
    let summary = std::fs::read_to_string(&summary_path).expect("summary");
    let metrics = std::fs::read_to_string(&metrics_path).expect("metrics");
    let mut logs = output.stdout.clone();
    logs.extend_from_slice(&output.stderr);

    let planted: HashSet<String> = planted
        .iter()
        .flat_map(|value| [value.clone(), value.to_lowercase(), value.to_uppercase()])
        .collect();
    let patterns = searchable(&planted);
    assert!(patterns.len() > 1000, "{} planted values", patterns.len());
    let matcher = AhoCorasick::new(&patterns).expect("matcher");
    let mut files = Vec::new();
    files_under(&data, &mut files);
    for (what, bytes) in files
        .iter()
        .map(|file| {
            (
                file.display().to_string(),
                std::fs::read(file).expect("read"),
            )
        })
        .chain([
            ("the logs".to_owned(), logs),
            ("the summary".to_owned(), summary.clone().into_bytes()),
            ("the metrics".to_owned(), metrics.into_bytes()),
        ])
    {
        if let Some(hit) = matcher.find(&bytes) {
            panic!("{what} holds {:?}", patterns[hit.pattern().as_usize()]);
        }
    }
    // The values were seen and withheld, the names counted as unnameable.
    let summary: serde_json::Value = serde_json::from_str(&summary).expect("json");
    for field in [
        "charger.model",
        "charger.firmware",
        "status.fault_code",
        "operator.cpo_id",
        "user.roles",
        "charger.components.kind",
    ] {
        let withheld: u64 = summary["values_withheld"]
            .as_object()
            .expect("withheld counts")
            .iter()
            .filter(|(key, _)| key.split(' ').nth(1) == Some(field))
            .filter_map(|(_, count)| count.as_u64())
            .sum();
        assert!(withheld > 0, "{field}: {}", summary["values_withheld"]);
    }
    assert!(
        summary["unknown_fields"]["(unnameable)"]
            .as_u64()
            .unwrap_or(0)
            >= 4000,
        "{}",
        summary["unknown_fields"]
    );
}

#[test]
fn json_logs_parse_line_by_line_name_no_identifier_and_limit_per_record_warnings() {
    let input = &two_runs().input;
    let dir = tempfile::tempdir().expect("tempdir");
    let started = std::time::Instant::now();
    let output = crate::util::run_ok(
        crate::util::delink()
            .args(["--log-format", "json", "run", "--progress", "always"])
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .arg(&input.path)
            .env("RUST_LOG", "debug"),
    );
    let elapsed = started.elapsed().as_secs();
    let stderr = String::from_utf8(output.stderr).expect("utf-8 logs");
    let mut events = Vec::new();
    for line in stderr.lines() {
        let event: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|error| panic!("not a JSON log line ({error}): {line}"));
        assert!(event["level"].is_string() && event["timestamp"].is_string());
        events.push(event);
    }
    let message =
        |event: &serde_json::Value| event["fields"]["message"].as_str().map(str::to_owned);
    assert!(
        events
            .iter()
            .any(|event| message(event).is_some_and(|m| m.starts_with("progress: "))),
        "progress lines are log events"
    );
    let quarantined: Vec<_> = events
        .iter()
        .filter(|event| message(event).as_deref() == Some("record quarantined"))
        .collect();
    let bad_lines = input
        .lines
        .iter()
        .filter(|line| !matches!(line.truth, delink_synth::Truth::Valid { .. }))
        .count();
    assert!(bad_lines > 500, "{bad_lines} bad lines");
    assert!(!quarantined.is_empty(), "quarantined records are logged");
    // 20 per 10 s window: far fewer warnings than rejected records.
    let allowed = 20 * (elapsed as usize / 10 + 1);
    assert!(
        quarantined.len() <= allowed,
        "{} warnings in {elapsed} s",
        quarantined.len()
    );
    for event in &quarantined {
        let fields = &event["fields"];
        assert!(fields["reason"].is_string() && fields["position"].is_u64());
    }

    let identifiers = raw_identifiers();
    let patterns = searchable(&identifiers);
    let matcher = AhoCorasick::new(&patterns).expect("matcher");
    if let Some(hit) = matcher.find(&stderr) {
        panic!(
            "the JSON log holds {:?}",
            patterns[hit.pattern().as_usize()]
        );
    }
}
