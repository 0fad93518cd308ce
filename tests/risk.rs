//! `delink risk`: the adversary's attacks on a data directory, against limits.

use std::path::Path;

use crate::util::{Input, delink, run_ok};

const SHIPPED: &str = include_str!("../config/policy.toml");

/// The shipped policy with `devices/` cut down to the day and the kind (and
/// the charger pseudonym the attacks group by).
fn coarse_policy() -> String {
    let (history, devices) = SHIPPED.split_once("[devices.fields]").expect("sections");
    let mut coarse = format!("{history}[devices.fields]\n");
    for line in devices.lines() {
        let Some((path, _)) = line.split_once(" = ") else {
            coarse.push_str(line);
            coarse.push('\n');
            continue;
        };
        let rule = match path {
            "\"observed_at\"" => {
                r#"{ action = "generalise", truncate = "day", column = "observed_day" }"#.to_owned()
            }
            "\"kind\"" | "\"charger.serial\"" => line
                .split_once(" = ")
                .map(|(_, rule)| rule.to_owned())
                .expect("rule"),
            _ => "\"drop\"".to_owned(),
        };
        coarse.push_str(&format!("{path} = {rule}\n"));
    }
    coarse
}

fn risk(data: &Path) -> (i32, serde_json::Value, String) {
    let output = delink()
        .args(["risk", "--json"])
        .arg(data)
        .output()
        .expect("risk runs");
    let report = serde_json::from_slice(&output.stdout).expect("a JSON report");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    (output.status.code().unwrap_or(-1), report, stderr)
}

#[test]
fn risk_fails_a_policy_whose_datasets_join_and_passes_one_whose_do_not() {
    let input = Input::generate(30_000, 41, 0.0);
    let dir = tempfile::tempdir().expect("tempdir");
    let weak = dir.path().join("weak");
    run_ok(
        delink()
            .args(["run", "--progress", "never", "--data-dir"])
            .arg(&weak)
            .arg(&input.path),
    );
    let (code, report, stderr) = risk(&weak);
    assert_eq!(code, 5, "{stderr}");
    assert!(
        report["unique_join_rate"].as_f64().expect("rate") > 0.3,
        "{report}"
    );
    let failures = report["failures"].to_string();
    assert!(
        failures.contains("unique joins") && failures.contains("k-anonymity"),
        "{failures}"
    );
    assert!(stderr.contains("privacy risk limits exceeded"), "{stderr}");

    let policy = dir.path().join("coarse.toml");
    std::fs::write(&policy, coarse_policy()).expect("policy");
    let coarse = dir.path().join("coarse");
    run_ok(
        delink()
            .args(["run", "--progress", "never", "--data-dir"])
            .arg(&coarse)
            .arg("--policy")
            .arg(&policy)
            .arg(&input.path),
    );
    let (code, report, stderr) = risk(&coarse);
    assert_eq!(code, 0, "{report} {stderr}");
    assert!(report["unique_join_rate"].as_f64().expect("rate") <= 0.05);
    assert!(report["k_anonymous_share"].as_f64().expect("share") >= 0.99);
    assert_eq!(report["failures"], serde_json::json!([]));
}
