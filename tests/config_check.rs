//! `delink config check` tells a deployment what is wrong before it runs: it names
//! the bad key, opens the key store, asks a real broker about the topics, and
//! changes nothing on the way.

use std::path::Path;

use delink_test_support::postgres::cluster;

use crate::broker::{Tansu, create_topic};
use crate::util::{Input, delink, run_ok};

const KEK: &str = "1:202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f";
const OTHER_KEK: &str = "1:404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f";

/// Runs `delink config check` with `args` and `env`: exit code and stdout + stderr.
fn check(data: &Path, args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let output = delink()
        .args(["config", "check", "--data-dir"])
        .arg(data)
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("delink runs");
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    (output.status.code().unwrap_or(-1), text)
}

/// Runs delink on a few generated observations, creating the key store.
fn run_a_sample(data: &Path, env: &[(&str, &str)]) {
    let input = Input::generate(300, 5, 0.0);
    run_ok(
        delink()
            .args(["run", "--progress", "never", "--data-dir"])
            .arg(data)
            .arg(&input.path)
            .envs(env.iter().copied()),
    );
}

#[test]
fn config_check_opens_the_embedded_store_creates_nothing_and_refuses_the_wrong_kek() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let kek = [("DELINK_KEK", KEK)];
    let (code, text) = check(&data, &[], &kek);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("no embedded store yet"), "{text}");
    assert!(!data.exists(), "the check created {}", data.display());

    run_a_sample(&data, &kek);
    let (code, text) = check(&data, &[], &kek);
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("ok      key store: embedded store opened"),
        "{text}"
    );

    let (code, text) = check(&data, &[], &[("DELINK_KEK", OTHER_KEK)]);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("FAILED  key store"), "{text}");
}

#[test]
fn config_check_names_the_key_of_a_bad_value_and_its_source() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("delink.toml");
    std::fs::write(&file, "[output]\nzstd_level = \"high\"\n").expect("write");
    let output = delink()
        .args(["config", "check", "--config"])
        .arg(&file)
        .output()
        .expect("delink runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("output.zstd_level") && stderr.contains("delink.toml"),
        "{stderr}"
    );
    let (code, text) = check(
        &dir.path().join("data"),
        &[],
        &[("DELINK__KAFKA__SESSION_TIMEOUT_MS", "soon")],
    );
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("kafka.session_timeout_ms (set by DELINK__KAFKA__SESSION_TIMEOUT_MS)"),
        "{text}"
    );
}

#[test]
fn config_check_finds_the_topics_on_a_real_broker_and_names_a_missing_one() {
    let broker = Tansu::start_memory();
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap, "observations", 3);
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let env = [
        ("DELINK_KEK", KEK),
        ("DELINK__KAFKA__BROKERS", bootstrap.as_str()),
        ("DELINK__KAFKA__TOPICS", "observations"),
    ];
    let (code, text) = check(&data, &["--kafka"], &env);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("observations (3 partitions)"), "{text}");

    let mut missing = env.to_vec();
    missing.push(("DELINK__KAFKA__DEAD_LETTER_TOPIC", "no-such-topic"));
    let (code, text) = check(&data, &["--kafka"], &missing);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("know no topic no-such-topic"), "{text}");

    drop(broker);
    let (code, text) = check(&data, &["--kafka", "--timeout", "2s"], &env);
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("FAILED  kafka") && text.contains("did not answer"),
        "{text}"
    );
}

#[test]
fn config_check_reaches_a_real_postgres_store_and_reports_a_refused_connection() {
    let url = cluster().fresh_database(None);
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let env = [
        ("DELINK_KEK", KEK),
        ("DELINK__KEYSTORE__BACKEND", "postgres"),
        ("DELINK_POSTGRES_URL", url.as_str()),
    ];
    let (code, text) = check(&data, &[], &env);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("no postgres store yet"), "{text}");

    run_a_sample(&data, &env);
    let (code, text) = check(&data, &[], &env);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("postgres store opened"), "{text}");

    let refused = [
        ("DELINK_KEK", KEK),
        ("DELINK__KEYSTORE__BACKEND", "postgres"),
        (
            "DELINK_POSTGRES_URL",
            "host=127.0.0.1 port=1 user=delink dbname=delink",
        ),
    ];
    let (code, text) = check(&dir.path().join("other"), &[], &refused);
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("FAILED  key store") && text.contains("connection refused"),
        "{text}"
    );
}
