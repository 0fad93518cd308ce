//! `delink gen --kafka-brokers`: what it produces into a real broker, read back.

use std::collections::HashMap;

use delink_synth::{Generator, SynthConfig};

use crate::broker::{Moto, Record, Tansu, read_topic};
use crate::util::{delink, run_ok};

const COUNT: u64 = 20_000;
const BAD_FRACTION: &str = "0.01";

/// Runs `delink gen` into `topic`, returning its stderr.
fn gen_into(tansu: &Tansu, topic: &str, args: &[&str]) -> String {
    let output = run_ok(
        delink()
            .args([
                "gen",
                "--kafka-brokers",
                &tansu.bootstrap(),
                "--topic",
                topic,
            ])
            .args(args),
    );
    String::from_utf8(output.stderr).expect("utf-8 stderr")
}

fn sorted_values(records: &[Record]) -> Vec<&[u8]> {
    let mut values: Vec<&[u8]> = records.iter().map(|r| r.value.as_slice()).collect();
    values.sort_unstable();
    values
}

#[test]
fn gen_produces_every_generated_line_keyed_by_its_charger_serial() {
    let tansu = Tansu::start_memory();
    let count = COUNT.to_string();
    let stderr = gen_into(
        &tansu,
        "observations",
        &[
            "--partitions",
            "4",
            "--count",
            &count,
            "--bad-fraction",
            BAD_FRACTION,
        ],
    );
    assert!(
        stderr.contains("20000 delivered, 0 failed"),
        "summary missing: {stderr}"
    );
    let records = read_topic(&tansu.bootstrap(), "observations");
    assert_eq!(records.len() as u64, COUNT);

    // The same lines, byte for byte, as `delink gen` writes to a file with the same seed.
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("observations.ndjson");
    run_ok(
        delink()
            .args([
                "gen",
                "--count",
                &count,
                "--bad-fraction",
                BAD_FRACTION,
                "-o",
            ])
            .arg(&file),
    );
    let written = std::fs::read(&file).expect("read generated file");
    let mut lines: Vec<&[u8]> = written
        .strip_suffix(b"\n")
        .expect("trailing newline")
        .split(|&b| b == b'\n')
        .collect();
    lines.sort_unstable();
    assert!(
        sorted_values(&records) == lines,
        "values differ from the file"
    );

    // Keyed by the serial of the charger that sent each line (null only for garbage).
    let mut expected: Vec<(Option<Vec<u8>>, Vec<u8>)> = Generator::new(SynthConfig {
        bad_fraction: 0.01,
        ..SynthConfig::new(COUNT, 1)
    })
    .map(|generated| (generated.serial.map(String::into_bytes), generated.line))
    .collect();
    expected.sort_unstable();
    let mut keyed: Vec<(Option<Vec<u8>>, Vec<u8>)> = records
        .iter()
        .map(|record| (record.key.clone(), record.value.clone()))
        .collect();
    keyed.sort_unstable();
    assert!(keyed == expected, "keys differ from the chargers' serials");

    // Spread over all four partitions, each charger's records in one of them.
    let mut partition_of_key: HashMap<&[u8], i32> = HashMap::new();
    let mut per_partition = [0u64; 4];
    for record in &records {
        per_partition[usize::try_from(record.partition).expect("partition")] += 1;
        let Some(key) = &record.key else { continue };
        let first = *partition_of_key.entry(key).or_insert(record.partition);
        assert_eq!(first, record.partition, "a key in two partitions");
    }
    assert!(
        per_partition.iter().all(|&n| n > COUNT / 10),
        "{per_partition:?}"
    );
    assert!(
        partition_of_key.len() > 50,
        "{} keys",
        partition_of_key.len()
    );
}

#[test]
fn gen_fails_naming_the_count_when_records_are_not_delivered() {
    let tansu = Tansu::start_memory();
    // librdkafka refuses every observation longer than 1000 bytes, some of each run.
    let output = delink()
        .args([
            "gen",
            "--kafka-brokers",
            &tansu.bootstrap(),
            "--topic",
            "refused",
        ])
        .args(["--count", "200", "-X", "message.max.bytes=1000"])
        .output()
        .expect("delink runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains(" of 200 records were not delivered to topic refused")
            && stderr.contains("Message size too large"),
        "{stderr}"
    );
    assert!(!stderr.contains("ZAP"), "a serial reached stderr: {stderr}");
}

#[test]
fn gen_hides_the_values_of_bad_client_properties() {
    let output = delink()
        .args(["gen", "--kafka-brokers", "127.0.0.1:9", "--topic", "t"])
        .args(["-X", "sasl.pasword=hunter2-secret"])
        .output()
        .expect("delink runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains("sasl.pasword"), "{stderr}");
    assert!(
        !stderr.contains("hunter2"),
        "a property value reached stderr: {stderr}"
    );
}

#[test]
fn gen_paces_records_to_the_rate() {
    let tansu = Tansu::start_memory();
    let started = std::time::Instant::now();
    gen_into(&tansu, "paced", &["--count", "300", "--rate", "200"]);
    let elapsed = started.elapsed();
    // 300 records at 200/s: 1.5 s, plus start-up.
    assert!(
        elapsed >= std::time::Duration::from_millis(1400),
        "{elapsed:?}"
    );
    assert_eq!(read_topic(&tansu.bootstrap(), "paced").len(), 300);
}

#[test]
fn s3_backed_broker_keeps_a_topic_across_a_restart() {
    let moto = Moto::start();
    let mut tansu = Tansu::start_s3(&moto);
    gen_into(&tansu, "kept", &["--partitions", "2", "--count", "2000"]);
    let before = read_topic(&tansu.bootstrap(), "kept");
    assert_eq!(before.len(), 2000);

    tansu.restart();
    let after = read_topic(&tansu.bootstrap(), "kept");
    assert!(after == before, "{} records after the restart", after.len());

    // Offsets go on from where they were.
    gen_into(&tansu, "kept", &["--count", "500", "--seed", "2"]);
    let more = read_topic(&tansu.bootstrap(), "kept");
    assert_eq!(more.len(), 2500);
    let mut offsets: Vec<(i32, i64)> = more.iter().map(|r| (r.partition, r.offset)).collect();
    offsets.dedup();
    assert_eq!(offsets.len(), 2500, "an offset was reused");
}
