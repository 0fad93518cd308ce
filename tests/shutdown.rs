//! SIGTERM: a run stops reading, publishes everything it read, prints its
//! summary and exits 0; while it runs, /metrics, /healthz and /readyz answer.

use std::io::Write;
use std::process::Stdio;
use std::time::{Duration, Instant};

use delink_telemetry::MetricName;

use crate::admin_http::{admin_address, get, value};
use crate::util::{Input, Snapshot, delink};

/// `delink run -` into `data`, serving the admin endpoints on a free port, its stdio piped.
fn stdin_run(data: &std::path::Path) -> std::process::Command {
    let mut command = delink();
    command
        .args(["run", "-", "--progress", "never"])
        .args(["--admin-listen", "127.0.0.1:0"])
        .arg("--data-dir")
        .arg(data)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

#[test]
fn sigterm_publishes_what_was_read_and_exits_zero_while_the_admin_server_answers() {
    let input = Input::generate(30_000, 201, 0.01);
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let summary_path = dir.path().join("summary.json");
    let mut child = stdin_run(&data)
        .arg("--summary-json")
        .arg(&summary_path)
        .spawn()
        .expect("spawn");
    let (admin, stderr) = admin_address(&mut child);
    // Feed everything but keep stdin open: the run would wait for more forever.
    let mut stdin = child.stdin.take().expect("stdin");
    stdin
        .write_all(&std::fs::read(&input.path).expect("input"))
        .expect("feed");
    stdin.flush().expect("flush");

    let deadline = Instant::now() + Duration::from_secs(60);
    let scrape = loop {
        let (status, scrape) = get(admin, "/metrics").expect("metrics answers");
        assert_eq!(status, 200);
        if value(&scrape, "delink_input_records_total") == Some(30_000) {
            break scrape;
        }
        assert!(
            Instant::now() < deadline,
            "the run never read all its input"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    // Every metric is there, but those with a series per assigned Kafka partition.
    let per_partition = [
        MetricName::KafkaConsumerLag,
        MetricName::KafkaCommittedOffset,
    ];
    for name in MetricName::ALL
        .into_iter()
        .filter(|name| !per_partition.contains(name))
    {
        assert!(
            scrape.contains(name.as_str()),
            "{} missing from /metrics",
            name.as_str()
        );
    }
    assert_eq!(get(admin, "/healthz").expect("healthz").0, 200);
    assert_eq!(
        get(admin, "/readyz").expect("readyz"),
        (200, "ready".to_owned())
    );
    // Nothing is published yet: the segment is still open.
    assert_eq!(Snapshot::read(&data).devices.len(), 0);

    let signalled = Instant::now();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let mut saw_not_ready = false;
    while let Some((status, body)) = get(admin, "/readyz") {
        if status == 503 {
            assert!(
                body.contains("shutting down") || body.contains("draining"),
                "{body}"
            );
            saw_not_ready = true;
            break;
        }
    }
    let output = child.wait_with_output().expect("wait");
    drop(stderr);
    drop(stdin);
    assert!(output.status.success(), "exit {:?}", output.status);
    assert!(
        signalled.elapsed() < Duration::from_secs(25),
        "stopped too slowly"
    );
    assert!(
        saw_not_ready,
        "/readyz never turned not ready after SIGTERM"
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("delink run summary"), "{stdout}");

    let snapshot = Snapshot::read(&data);
    let devices: usize = snapshot.devices.iter().map(|b| b.num_rows()).sum();
    assert_eq!(devices, input.first_valid().len());
    let quarantined: usize = snapshot.quarantine.iter().map(|(_, b)| b.num_rows()).sum();
    assert_eq!(quarantined, input.broken().len());
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&summary_path).expect("summary")).expect("json");
    assert_eq!(summary["observations_in"], 30_000);
    assert_eq!(summary["devices_rows"], devices);
    assert_eq!(
        value(&scrape, "delink_records_duplicate_total"),
        summary["duplicates"].as_u64()
    );
    // The worker's space is gone with it: nothing staged is left behind.
    let leftovers: Vec<_> = std::fs::read_dir(data.join("_workers"))
        .expect("workers dir")
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn huge_records_are_quarantined_in_bounded_memory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("huge.ndjson");
    let mut file = std::io::BufWriter::new(std::fs::File::create(&path).expect("create"));
    let filler = "x".repeat(1 << 20);
    for index in 0..1_500 {
        writeln!(
            file,
            "{{\"schema\":\"charger.observation.v1\",\"observation_id\":\"{index}\",\"blob\":\"{filler}\"}}"
        )
        .expect("write");
    }
    drop(file);
    let summary_path = dir.path().join("summary.json");
    let output = delink()
        .arg("run")
        .arg(&path)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args(["--progress", "never", "--summary-json"])
        .arg(&summary_path)
        .output()
        .expect("run");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&summary_path).expect("summary")).expect("json");
    assert_eq!(summary["quarantined_by_reason"]["too_large"], 1_500);
    let peak = summary["peak_rss_bytes"]
        .as_u64()
        .expect("peak RSS is known on Linux");
    assert!(peak < 512 * 1024 * 1024, "peak RSS {} MiB", peak >> 20);
}

#[test]
fn a_running_worker_purges_quarantine_days_past_retention_without_stopping() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let mut child = stdin_run(&data)
        .env("DELINK__PIPELINE__HOUSEKEEPING_INTERVAL_SECS", "1")
        .spawn()
        .expect("spawn");
    let (admin, stderr) = admin_address(&mut child);
    // A day long past retention appears after the start-of-run purge (the run is ready after it).
    let deadline = Instant::now() + Duration::from_secs(30);
    while get(admin, "/readyz").map(|(status, _)| status) != Some(200) {
        assert!(Instant::now() < deadline, "the run never turned ready");
        std::thread::sleep(Duration::from_millis(50));
    }
    let expired = data.join("quarantine").join("date=2001-01-01");
    std::fs::create_dir_all(&expired).expect("expired partition");
    std::fs::write(expired.join("part-old-000000000001.parquet"), b"old").expect("old file");
    let recent = data
        .join("quarantine")
        .join(format!("date={}", chrono::Utc::now().format("%Y-%m-%d")));
    std::fs::create_dir_all(&recent).expect("recent partition");

    let deadline = Instant::now() + Duration::from_secs(30);
    while expired.exists() {
        assert!(
            Instant::now() < deadline,
            "the expired quarantine day was never purged"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(recent.exists(), "a day within retention was purged");
    assert_eq!(
        get(admin, "/readyz").expect("readyz").0,
        200,
        "the worker stopped"
    );

    drop(child.stdin.take());
    let output = child.wait_with_output().expect("wait");
    drop(stderr);
    assert!(output.status.success(), "exit {:?}", output.status);
}
