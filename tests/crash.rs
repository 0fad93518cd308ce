//! A run killed with SIGKILL leaves no partial file in view, and the re-run
//! completes with exactly-once rows and unchanged pseudonyms.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use crate::util::{Input, Snapshot, column_text, delink, run_ok, visible_files};

fn devices_rows(snapshot: &Snapshot) -> Vec<String> {
    let mut rows = Vec::new();
    for batch in &snapshot.devices {
        let observations = column_text(batch, "observation_pseudonym");
        let chargers = column_text(batch, "charger_pseudonym");
        rows.extend(
            observations
                .into_iter()
                .zip(chargers)
                .map(|(o, c)| format!("{o} {c}")),
        );
    }
    rows
}

#[test]
fn sigkill_mid_run_leaves_only_whole_files_and_the_rerun_is_exact() {
    let input = Input::generate(300_000, 11, 0.01);
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let run = || {
        let mut command = delink();
        command
            .arg("run")
            .arg(&input.path)
            .arg("--data-dir")
            .arg(&data)
            .args([
                "--segment-records",
                "15000",
                "--workers",
                "2",
                "--progress",
                "never",
            ]);
        command
    };

    let mut child = run()
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    let started = Instant::now();
    loop {
        let published = visible_files(&data.join("devices")).len();
        if published >= 6 {
            break;
        }
        assert!(
            child.try_wait().expect("wait").is_none(),
            "the run ended before it could be killed"
        );
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no file published in time"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(
        child.try_wait().expect("wait").is_none(),
        "the run must still be going when killed"
    );
    child.kill().expect("SIGKILL");
    child.wait().expect("reaped");

    // Everything in view is a complete Parquet file (Snapshot::read fails on a partial one).
    for output in ["history", "devices", "quarantine"] {
        for file in visible_files(&data.join(output)) {
            assert_eq!(
                file.extension().and_then(|e| e.to_str()),
                Some("parquet"),
                "{}",
                file.display()
            );
        }
    }
    let before = Snapshot::read(&data);
    let rows_before = devices_rows(&before);
    assert!(!rows_before.is_empty());

    run_ok(&mut run());
    let after = Snapshot::read(&data);
    let rows_after = devices_rows(&after);
    let distinct: HashSet<&String> = rows_after.iter().collect();
    assert_eq!(distinct.len(), rows_after.len(), "no duplicate rows");
    assert_eq!(
        rows_after.len(),
        input.first_valid().len(),
        "every valid observation once"
    );
    let after_set: HashSet<&String> = rows_after.iter().collect();
    for row in &rows_before {
        assert!(
            after_set.contains(row),
            "a row published before the crash changed its pseudonyms"
        );
    }
}
