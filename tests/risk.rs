//! `delink risk`: the adversary's attacks on a data directory, against limits.

use crate::util::{Input, delink, risk, run_ok};

const SHIPPED: &str = include_str!("../config/policy.toml");

/// The shipped policy without its protections: no k-anonymity, minutes
/// instead of days, exact session details and the lifetime meter counter.
fn weak_policy() -> String {
    let (fields, _) = SHIPPED
        .split_once("[devices.anonymity]")
        .expect("an anonymity section");
    fields
        .replace(
            r#"truncate = "day", column = "observed_day""#,
            r#"truncate = "minute""#,
        )
        .replace(
            r#""meter.energy_total_wh" = "drop""#,
            r#""meter.energy_total_wh" = { action = "keep", range = [0, 10_000_000_000] }"#,
        )
        .replace(
            r#""session.started_at" = "drop""#,
            r#""session.started_at" = { action = "generalise", truncate = "minute" }"#,
        )
}

#[test]
fn risk_fails_a_weak_policy_naming_each_attack_and_passes_the_shipped_one() {
    let input = Input::generate(30_000, 41, 0.0);
    let dir = tempfile::tempdir().expect("tempdir");
    let policy = dir.path().join("weak.toml");
    std::fs::write(&policy, weak_policy()).expect("policy");
    let weak = dir.path().join("weak");
    run_ok(
        delink()
            .args(["run", "--progress", "never", "--data-dir"])
            .arg(&weak)
            .arg("--policy")
            .arg(&policy)
            .arg(&input.path),
    );
    let (code, report, stderr) = risk(&weak);
    assert_eq!(code, 5, "{stderr}");
    assert!(
        report["unique_join_rate"].as_f64().expect("rate") > 0.3,
        "{report}"
    );
    let failures = report["failures"].to_string();
    for attack in ["unique joins", "counter continuity", "k-anonymity"] {
        assert!(failures.contains(attack), "{attack} not named: {failures}");
    }
    assert!(stderr.contains("privacy risk limits exceeded"), "{stderr}");

    let shipped = dir.path().join("shipped");
    run_ok(
        delink()
            .args(["run", "--progress", "never", "--data-dir"])
            .arg(&shipped)
            .arg(&input.path),
    );
    let (code, report, stderr) = risk(&shipped);
    assert_eq!(code, 0, "{report} {stderr}");
    assert!(report["unique_join_rate"].as_f64().expect("rate") <= 0.05);
    assert!(report["k_anonymous_share"].as_f64().expect("share") >= 0.99);
    assert_eq!(report["failures"], serde_json::json!([]));
}
