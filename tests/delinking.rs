//! De-linking holds on `delink gen` output with the shipped policy: an
//! adversary holding `history/` and `devices/` joins no rows, aligns no
//! charger's sequence, follows no counter across an epoch change or an
//! erasure, and finds every device profile shared by k chargers — on a large
//! fleet and on a small one — while the analysts' questions stay answerable.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::util::{delink, python, risk, run_ok};

/// Observations per fleet (the attacks need volume to bite).
const COUNT: u64 = 200_000;

/// Generates `COUNT` observations of a fleet of `chargers` into `path`.
fn generate(path: &Path, seed: u64, chargers: u64) -> Vec<Value> {
    run_ok(
        delink()
            .args([
                "gen",
                "--count",
                &COUNT.to_string(),
                "--seed",
                &seed.to_string(),
            ])
            .args(["--chargers", &chargers.to_string(), "--output"])
            .arg(path),
    );
    let text = std::fs::read_to_string(path).expect("generated input");
    text.lines()
        .map(|line| serde_json::from_str(line).expect("valid JSON"))
        .collect()
}

/// Runs `lines` (NDJSON) into `data` with the shipped configuration.
fn run(data: &Path, input: &Path) {
    run_ok(
        delink()
            .args(["run", "--progress", "never", "--data-dir"])
            .arg(data)
            .arg(input),
    );
}

/// Runs the first half of a fleet's input, erases its busiest charger, runs
/// the second half (the charger carries on under a new key), and plays the attacks.
fn attacked_fleet(dir: &Path, seed: u64, chargers: u64) -> (Value, Vec<Value>) {
    let input = dir.join(format!("fleet-{chargers}.ndjson"));
    let observations = generate(&input, seed, chargers);
    let text = std::fs::read_to_string(&input).expect("input");
    let lines: Vec<&str> = text.lines().collect();
    let (first, second) = lines.split_at(lines.len() / 2);
    let (first_path, second_path) = (dir.join("first.ndjson"), dir.join("second.ndjson"));
    std::fs::write(&first_path, first.join("\n") + "\n").expect("first half");
    std::fs::write(&second_path, second.join("\n") + "\n").expect("second half");
    let data = dir.join(format!("data-{chargers}"));
    run(&data, &first_path);
    let mut per_charger: BTreeMap<&str, usize> = BTreeMap::new();
    for observation in &observations {
        if let Some(serial) = observation["charger"]["serial"].as_str() {
            *per_charger.entry(serial).or_default() += 1;
        }
    }
    let busiest = per_charger
        .iter()
        .max_by_key(|(_, count)| **count)
        .map(|(serial, _)| serial.to_string())
        .expect("a charger");
    run_ok(
        delink()
            .args(["erase", "--device", &busiest, "--data-dir"])
            .arg(&data),
    );
    run(&data, &second_path);
    let (code, report, _) = risk(&data);
    assert_eq!(
        code, 0,
        "the shipped policy stays within the risk limits: {report}"
    );
    (report, observations)
}

fn rate(report: &Value, name: &str) -> f64 {
    report[name]
        .as_f64()
        .unwrap_or_else(|| panic!("{name} in {report}"))
}

fn assert_delinked(report: &Value, fleet: &str) {
    eprintln!(
        "{fleet}: unique joins {:.4}, sequence links {:.4}, counter links {:.4} of {}, k-anonymous rows {:.4}",
        rate(report, "unique_join_rate"),
        rate(report, "sequence_link_rate"),
        rate(report, "counter_link_rate"),
        report["counter_pseudonyms"],
        rate(report, "k_anonymous_share"),
    );
    assert!(rate(report, "history_rows") > 10_000.0, "{report}");
    assert!(
        rate(report, "unique_join_rate") <= 0.05,
        "{fleet}: {report}"
    );
    assert!(
        rate(report, "sequence_link_rate") <= 0.05,
        "{fleet}: {report}"
    );
    assert!(
        rate(report, "counter_link_rate") <= 0.05,
        "{fleet}: {report}"
    );
    assert!(
        rate(report, "k_anonymous_share") >= 0.99,
        "{fleet}: {report}"
    );
    // Every join column an adversary has was considered.
    let shared = report["shared_fields"].to_string();
    for field in [
        "observed_at",
        "kind",
        "charger.firmware",
        "installation.country",
        "session.energy_wh",
    ] {
        assert!(shared.contains(field), "{field} not attacked: {shared}");
    }
}

/// One answer: (question, UTC day, attribute value) → figure.
type Answers = BTreeMap<(&'static str, String, String), f64>;

/// The analysts' questions answered from the generated input: energy per
/// day and country, faults per day and firmware, sessions started per day
/// and property type, and per day the share of status reports neither
/// offline nor faulted.
fn truth(observations: &[Value]) -> Answers {
    let mut seen = std::collections::HashSet::new();
    let mut answers = Answers::new();
    let mut status: BTreeMap<String, (f64, f64)> = BTreeMap::new();
    for observation in observations {
        let id = observation["observation_id"]
            .as_str()
            .expect("id")
            .to_lowercase();
        if !seen.insert(id) {
            continue;
        }
        let observed = observation["observed_at"].as_str().expect("time");
        let day = chrono::DateTime::parse_from_rfc3339(observed)
            .expect("RFC 3339")
            .with_timezone(&chrono::Utc)
            .format("%Y-%m-%d")
            .to_string();
        let text = |pointer: &str| observation.pointer(pointer).and_then(Value::as_str);
        let mut add = |question, attribute: Option<&str>, value: f64| {
            if let Some(attribute) = attribute {
                *answers
                    .entry((question, day.clone(), attribute.to_owned()))
                    .or_default() += value;
            }
        };
        match observation["kind"].as_str().expect("kind") {
            "session_stop" => add(
                "energy",
                text("/installation/country"),
                observation["session"]["energy_wh"].as_f64().unwrap_or(0.0),
            ),
            "fault" => add("faults", text("/charger/firmware"), 1.0),
            "session_start" => add("sessions", text("/installation/property_type"), 1.0),
            "status" => {
                if let Some(state) = text("/status/state") {
                    let entry = status.entry(day.clone()).or_default();
                    entry.1 += 1.0;
                    if state != "offline" && state != "faulted" {
                        entry.0 += 1.0;
                    }
                }
            }
            _ => {}
        }
    }
    for (day, (online, reports)) in status {
        answers.insert(("uptime", day, String::new()), online / reports);
    }
    answers
}

/// The same questions answered from `devices/`, as an analyst does with DuckDB.
fn answered(data: &Path) -> Answers {
    let day = "strftime(observed_day, '%Y-%m-%d')";
    let queries = [
        (
            "energy",
            "country",
            "sum(session_energy_wh)",
            "kind = 'session_stop'",
        ),
        ("faults", "charger_firmware", "count(*)", "kind = 'fault'"),
        (
            "sessions",
            "property_type",
            "count(*)",
            "kind = 'session_start'",
        ),
        (
            "uptime",
            "''",
            "avg(case when status_state in ('offline', 'faulted') then 0.0 else 1.0 end)",
            "kind = 'status' and status_state is not null",
        ),
    ];
    let mut answers = Answers::new();
    for (question, by, measure, filter) in queries {
        let query = format!(
            "select {day}, {by}, {measure} from read_parquet('{}/devices/**/*.parquet') \
             where {filter} and {by} is not null group by all",
            data.display()
        );
        let script =
            format!("import duckdb, json\nprint(json.dumps(duckdb.sql({query:?}).fetchall()))");
        let output = Command::new(python())
            .args(["-c", &script])
            .output()
            .expect("python runs");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let rows: Vec<(String, String, f64)> =
            serde_json::from_slice(&output.stdout).expect("query result");
        for (day, attribute, value) in rows {
            answers.insert((question, day, attribute), value);
        }
    }
    answers
}

#[test]
fn the_shipped_policy_defeats_every_attack_on_a_large_and_a_small_fleet_and_answers_the_analysts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (large, observations) = attacked_fleet(dir.path(), 91, 4_000);
    assert_delinked(&large, "large fleet (4,000 chargers)");
    let (small, _) = attacked_fleet(dir.path(), 92, 50);
    assert_delinked(&small, "small fleet (50 chargers)");

    let expected = truth(&observations);
    let got = answered(&dir.path().join("data-4000"));
    assert!(
        expected.len() > 60,
        "every question has its groups: {expected:?}"
    );
    for (key, want) in &expected {
        let have = got.get(key).copied().unwrap_or(0.0);
        let error = (have - want).abs() / want.abs().max(1e-9);
        eprintln!(
            "{key:?}: truth {want:.3}, devices/ {have:.3} ({:.3} %)",
            100.0 * error
        );
        assert!(error <= 0.02, "{key:?}: {have} against {want}");
    }
}
