//! Output in an S3 bucket (a real S3-protocol server, moto, on loopback): what a
//! run publishes there is whole, read by pyarrow and Polars with the documented
//! schema, and the lifecycle jobs rewrite it in place; what a dead worker staged is
//! never read as data and is deleted by the next worker.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::broker::Moto;
use crate::reader::documented_schema;
use crate::util::{Input, delink, python, run_ok};

const BUCKET: &str = "lake";
const PREFIX: &str = "delink";
const KEK: &str = "1:0808080808080808080808080808080808080808080808080808080808080808";

/// A bucket on a moto server, and the independent client that inspects it.
pub(crate) struct Lake {
    moto: Moto,
}

impl Lake {
    pub(crate) fn start() -> Lake {
        let moto = Moto::start();
        moto.create_bucket(BUCKET);
        Lake { moto }
    }

    /// `output.location` of workers publishing here.
    pub(crate) fn location(&self) -> String {
        format!("s3://{BUCKET}/{PREFIX}")
    }

    /// The settings of a delink process whose outputs live in the bucket.
    pub(crate) fn settings(&self) -> Vec<(&'static str, String)> {
        let mut env = self.moto.client_env();
        env.push(("DELINK__OUTPUT__LOCATION", self.location()));
        env
    }

    /// Runs tests/support/s3_tool.py (boto3, pyarrow, Polars); returns its stdout.
    pub(crate) fn tool(&self, args: &[&str]) -> String {
        let output = self.tool_command(args).output().expect("python runs");
        assert!(
            output.status.success(),
            "s3_tool {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).expect("utf-8")
    }

    pub(crate) fn tool_command(&self, args: &[&str]) -> Command {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/support/s3_tool.py");
        let mut command = Command::new(python());
        command.arg(script).args(args).envs(self.moto.client_env());
        command
    }

    /// Every key below the output prefix.
    pub(crate) fn keys(&self) -> Vec<String> {
        self.tool(&["keys", BUCKET, PREFIX])
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// Keys of the incomplete multipart uploads in the bucket (delink starts none).
    pub(crate) fn uploads(&self) -> Vec<String> {
        serde_json::from_str(&self.tool(&["uploads", BUCKET])).expect("a JSON list")
    }

    /// Keys in the workers' upload areas: files staged and not yet published or deleted.
    pub(crate) fn staged(&self) -> Vec<String> {
        self.tool(&["keys", BUCKET, &format!("{PREFIX}/_staging")])
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// Downloads the outputs into `dir` (as `history/`, `devices/`, `quarantine/`).
    pub(crate) fn mirror(&self, dir: &Path) {
        self.tool(&["mirror", BUCKET, PREFIX, dir.to_str().expect("utf-8 path")]);
    }

    /// Starts the poller that reads every object as soon as it is listed.
    pub(crate) fn poll(&self, stop_file: &Path) -> std::process::Child {
        self.tool_command(&["poll", BUCKET, PREFIX, stop_file.to_str().expect("path")])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("the poller starts")
    }
}

/// Stops a poller started with [`Lake::poll`]; fails on any listed object that was
/// not whole Parquet, and returns how many it read.
pub(crate) fn finish_poll(poller: std::process::Child, stop_file: &Path) -> u64 {
    std::fs::write(stop_file, b"").expect("stop file");
    let output = poller.wait_with_output().expect("the poller ends");
    assert!(output.status.success(), "the poller failed");
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert_eq!(
        report["errors"],
        serde_json::json!([]),
        "partial objects listed"
    );
    report["read"].as_u64().expect("count")
}

fn day_number(date: &str) -> i64 {
    let parts: Vec<i64> = date.split('-').map(|p| p.parse().expect("date")).collect();
    // Days from 1970-01-01 (Howard Hinnant's days_from_civil).
    let (y, m, d) = (parts[0] - i64::from(parts[1] <= 2), parts[1], parts[2]);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468
}

fn partitions(keys: &[String], dataset: &str) -> BTreeSet<String> {
    keys.iter()
        .filter_map(|key| {
            let rest = key.strip_prefix(&format!("{PREFIX}/{dataset}/date="))?;
            Some(rest.split('/').next()?.to_owned())
        })
        .collect()
}

fn history_rows(lake: &Lake) -> u64 {
    let read: serde_json::Value =
        serde_json::from_str(&lake.tool(&["read", BUCKET, PREFIX])).expect("JSON");
    read["history"]["pyarrow_rows"].as_u64().expect("rows")
}

/// Runs a delink subcommand against the bucket; returns its stdout.
fn command(lake: &Lake, data: &Path, args: &[&str]) -> String {
    let output = run_ok(
        delink()
            .args(args)
            .arg("--data-dir")
            .arg(data)
            .env("DELINK_KEK", KEK)
            .env("DELINK__KEYSTORE__ERASURE_PROPAGATION_SECS", "1")
            .env("DELINK__KEYSTORE__REFRESH_INTERVAL_MS", "200")
            .envs(lake.settings()),
    );
    String::from_utf8(output.stdout).expect("utf-8")
}

#[test]
fn a_run_into_a_bucket_is_read_by_pyarrow_and_polars_and_rewritten_by_retention_and_erasure() {
    let lake = Lake::start();
    let input = Input::generate(30_000, 11, 0.01);
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let summary_file = dir.path().join("summary.json");
    let run = run_ok(
        delink()
            .args(["run", "--progress", "never", "--data-dir"])
            .arg(&data)
            .arg("--summary-json")
            .arg(&summary_file)
            .arg(&input.path)
            .env("DELINK_KEK", KEK)
            .env("RUST_LOG", "debug")
            .envs(lake.settings()),
    );
    let logs = format!(
        "{}{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(
        logs.contains("outputs are published here") && logs.contains("s3://lake/delink/"),
        "the run names its outputs"
    );
    for credential in [Moto::ACCESS_KEY_ID, Moto::SECRET_ACCESS_KEY] {
        assert!(!logs.contains(credential), "a credential in the log");
    }
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&summary_file).expect("summary")).expect("JSON");
    for output in ["history", "devices", "quarantine"] {
        assert!(
            !data.join(output).exists(),
            "{output}/ was written locally, not to the bucket"
        );
    }
    assert!(lake.uploads().is_empty(), "uploads left incomplete");
    assert_eq!(lake.staged(), Vec::<String>::new(), "staged files left");

    // Independent readers find the documented schema and every row.
    let read: serde_json::Value =
        serde_json::from_str(&lake.tool(&["read", BUCKET, PREFIX])).expect("JSON");
    let documented = documented_schema();
    for (name, rows) in [
        ("history", &summary["history_rows"]),
        ("devices", &summary["devices_rows"]),
    ] {
        assert!(rows.as_u64().is_some_and(|rows| rows > 0), "{name} rows");
        assert_eq!(&read[name]["pyarrow_rows"], rows, "{name} rows via pyarrow");
        assert_eq!(&read[name]["polars_rows"], rows, "{name} rows via Polars");
        let mut expected = documented.get(name).cloned().unwrap_or_default();
        expected.push("date: string".to_owned());
        let schema: Vec<String> =
            serde_json::from_value(read[name]["pyarrow_schema"].clone()).expect("schema");
        assert_eq!(schema, expected, "{name} schema vs docs/schema.md");
        let columns: Vec<String> =
            serde_json::from_value(read[name]["polars_columns"].clone()).expect("columns");
        let names: Vec<String> = expected
            .iter()
            .map(|field| field.split(':').next().unwrap_or_default().to_owned())
            .collect();
        assert_eq!(columns, names, "{name} columns via Polars");
    }

    // The quarantine, listed from the bucket, holds every rejected record.
    let listing = command(&lake, &data, &["quarantine", "list"]);
    let quarantined: u64 = listing
        .lines()
        .filter(|line| line.ends_with(" records"))
        .filter_map(|line| line.split_whitespace().nth(1)?.parse::<u64>().ok())
        .sum();
    assert_eq!(
        Some(quarantined),
        summary["quarantined"].as_u64(),
        "{listing}"
    );

    // The adversary's attacks read the bucket too, named by its URL.
    let risk = delink()
        .args(["risk", "--json", &lake.location()])
        .envs(lake.settings())
        .output()
        .expect("risk runs");
    assert!(
        matches!(risk.status.code(), Some(0 | 5)),
        "{}",
        String::from_utf8_lossy(&risk.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&risk.stdout).expect("a JSON report");
    assert_eq!(report["history_rows"], summary["history_rows"]);
    assert_eq!(report["devices_rows"], summary["devices_rows"]);

    // Erasure: retention rewrites the bucket's history objects without the subject's rows.
    let account = input
        .lines
        .iter()
        .find_map(|line| {
            let value: serde_json::Value = serde_json::from_slice(&line.line).ok()?;
            Some(value["user"]["account_id"].as_str()?.trim().to_lowercase())
        })
        .expect("an account in the input");
    let export = dir.path().join("export");
    command(
        &lake,
        &data,
        &[
            "export",
            "--subject",
            &account,
            "--output",
            export.to_str().expect("path"),
        ],
    );
    let subject_rows = std::fs::read_to_string(export.join("rows.jsonl"))
        .expect("export")
        .lines()
        .count() as u64;
    assert!(subject_rows > 0, "the subject has history");
    let before = history_rows(&lake);
    let keys_before = lake.keys();
    command(
        &lake,
        &data,
        &[
            "erase",
            "--no-wait",
            "--request-id",
            "r1",
            "--subject",
            &account,
        ],
    );
    let report: serde_json::Value =
        serde_json::from_str(&command(&lake, &data, &["retention", "--json"])).expect("JSON");
    assert_eq!(report["rows_removed"].as_u64(), Some(subject_rows));
    assert!(
        report["files_rewritten"].as_u64().unwrap_or(0)
            + report["files_deleted"].as_u64().unwrap_or(0)
            > 0
    );
    assert_eq!(history_rows(&lake), before - subject_rows);
    assert!(lake.uploads().is_empty());
    assert!(lake.staged().is_empty());
    let keys_after = lake.keys();
    assert!(
        keys_after.iter().all(|key| !key.contains("/.")),
        "hidden objects left"
    );
    assert!(keys_after.len() <= keys_before.len());

    // Expiry: partitions older than the retention go, the others stay.
    let dates = partitions(&keys_after, "history");
    assert!(dates.len() >= 2, "several days of history: {dates:?}");
    let oldest = dates.first().expect("a date").clone();
    let second = dates.iter().nth(1).expect("a second date").clone();
    let today = i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock")
            .as_secs()
            / 86_400,
    )
    .expect("days");
    let keep_days = (today - day_number(&second)).to_string();
    let output = run_ok(
        delink()
            .args(["retention", "--json", "--data-dir"])
            .arg(&data)
            .env("DELINK_KEK", KEK)
            .env("DELINK__RETENTION__HISTORY_DAYS", &keep_days)
            .envs(lake.settings()),
    );
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert_eq!(report["partitions_expired"].as_u64(), Some(1));
    let remaining = partitions(&lake.keys(), "history");
    assert!(!remaining.contains(&oldest), "{oldest} expired");
    assert!(remaining.contains(&second), "{second} kept");
}

#[test]
fn what_a_dead_worker_staged_is_never_read_as_data_and_the_next_worker_deletes_it() {
    let lake = Lake::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    // What a worker killed mid-publication leaves: its space, unlocked, and a file it
    // staged in its upload area (not Parquet, so that any reader of it would fail).
    let space = data.join("_workers/00000000deadbeef");
    std::fs::create_dir_all(&space).expect("space");
    let staged = format!(
        "{PREFIX}/_staging/00000000deadbeef/devices/date=2026-11-20/part-dead-000000000000.parquet.staged"
    );
    lake.tool(&["put", BUCKET, &staged]);
    assert_eq!(lake.staged(), vec![staged.clone()]);

    let input = Input::generate(2_000, 12, 0.0);
    command(
        &lake,
        &data,
        &[
            "run",
            input.path.to_str().expect("path"),
            "--progress",
            "never",
        ],
    );
    assert!(
        lake.staged().is_empty(),
        "the dead worker's upload is deleted"
    );
    assert!(lake.uploads().is_empty());
    assert!(!space.exists(), "the dead worker's space is cleared");
    let keys = lake.keys();
    assert!(
        keys.iter().any(|key| key.contains("/devices/")),
        "the run published"
    );
    // The readers analysts use see only what the run published.
    let read: serde_json::Value =
        serde_json::from_str(&lake.tool(&["read", BUCKET, PREFIX])).expect("JSON");
    assert_eq!(
        read["devices"]["pyarrow_rows"],
        read["devices"]["polars_rows"]
    );
}

#[test]
fn config_check_lists_the_bucket_and_names_one_that_cannot_be_reached() {
    let lake = Lake::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let stdout = command(&lake, &data, &["config", "check"]);
    assert!(
        stdout
            .contains("ok      output store: s3://lake/delink/ reachable (nothing published yet)"),
        "{stdout}"
    );
    let output = delink()
        .args(["config", "check", "--timeout", "5s", "--data-dir"])
        .arg(&data)
        .env("DELINK_KEK", KEK)
        .envs(lake.settings())
        .env("DELINK__OUTPUT__LOCATION", "s3://no-such-bucket/delink")
        .output()
        .expect("delink runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains(
            "FAILED  output store: the outputs at s3://no-such-bucket/delink/ cannot be listed"
        ),
        "{stdout}"
    );
    assert!(!stdout.contains("AWS_SECRET_ACCESS_KEY=") && !stdout.contains("test:test"));
    assert!(!data.exists(), "the check created the data directory");
}
