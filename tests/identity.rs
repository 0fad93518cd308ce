//! What makes output file names unique to their input: different input adds
//! rows, the same input adds nothing, whatever the path or the clock says.

use std::io::Write;
use std::path::Path;
use std::process::Stdio;

use crate::util::{Input, Snapshot, delink, run_ok};

fn rows(batches: &[arrow_array::RecordBatch]) -> usize {
    batches.iter().map(|batch| batch.num_rows()).sum()
}

fn quarantined(snapshot: &Snapshot) -> usize {
    snapshot
        .quarantine
        .iter()
        .map(|(_, batch)| batch.num_rows())
        .sum()
}

fn run(data: &Path, input: &Path) {
    run_ok(
        delink()
            .arg("run")
            .arg(input)
            .arg("--data-dir")
            .arg(data)
            .args(["--progress", "never"]),
    );
}

fn run_stdin(data: &Path, input: &Input) {
    let mut child = delink()
        .args(["run", "-", "--progress", "never", "--data-dir"])
        .arg(data)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let bytes = std::fs::read(&input.path).expect("input");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(&bytes)
        .expect("feed stdin");
    let output = child.wait_with_output().expect("wait");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn two_stdin_runs_of_different_input_add_up() {
    let first = Input::generate(20_000, 101, 0.0);
    let second = Input::generate(30_000, 102, 0.0);
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    run_stdin(&data, &first);
    run_stdin(&data, &second);
    let expected = first.first_valid().len() + second.first_valid().len();
    assert_eq!(rows(&Snapshot::read(&data).devices), expected);
}

#[test]
fn the_same_file_twice_adds_nothing_and_a_regenerated_file_adds_its_rows() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let first = Input::generate(10_000, 103, 0.02);
    let path = dir.path().join("observations.ndjson");
    std::fs::copy(&first.path, &path).expect("copy");
    run(&data, &path);
    let once = Snapshot::read(&data);
    run(&data, &path);
    let twice = Snapshot::read(&data);
    assert_eq!(rows(&twice.devices), first.first_valid().len());
    assert_eq!(rows(&twice.devices), rows(&once.devices));
    assert_eq!(quarantined(&twice), first.broken().len());

    // A copy of the same content elsewhere is the same input.
    run(&data, &first.path);
    assert_eq!(
        rows(&Snapshot::read(&data).devices),
        first.first_valid().len()
    );

    // New content at the same path is new input.
    let second = Input::generate(7_000, 104, 0.02);
    std::fs::copy(&second.path, &path).expect("regenerate");
    run(&data, &path);
    let after = Snapshot::read(&data);
    assert_eq!(
        rows(&after.devices),
        first.first_valid().len() + second.first_valid().len()
    );
    assert_eq!(
        quarantined(&after),
        first.broken().len() + second.broken().len()
    );
}

#[test]
fn a_rerun_puts_quarantined_records_back_on_the_day_they_were_first_quarantined() {
    let input = Input::generate(5_000, 105, 0.05);
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    run(&data, &input.path);
    // As if the first run had been days ago: move its partition to an earlier day.
    let quarantine = data.join("quarantine");
    let partitions: Vec<_> = std::fs::read_dir(&quarantine)
        .expect("quarantine")
        .map(|entry| entry.expect("entry").path())
        .filter(|path| path.is_dir() && !path.ends_with(".staging"))
        .collect();
    assert_eq!(partitions.len(), 1, "{partitions:?}");
    // Within retention, so the run's housekeeping keeps it.
    let day = (chrono::Utc::now() - chrono::Duration::days(3))
        .format("%Y-%m-%d")
        .to_string();
    let earlier = quarantine.join(format!("date={day}"));
    std::fs::rename(&partitions[0], &earlier).expect("move");
    run(&data, &input.path);
    let snapshot = Snapshot::read(&data);
    assert_eq!(quarantined(&snapshot), input.broken().len());
    let dates: Vec<&str> = snapshot
        .quarantine
        .iter()
        .map(|(date, _)| date.as_str())
        .collect();
    assert!(dates.iter().all(|date| *date == day), "{dates:?}");
}
