use std::path::PathBuf;

use super::*;

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[test]
fn every_file_in_config_dir_parses() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../config");
    let mut checked = 0;
    for entry in std::fs::read_dir(dir).expect("config dir") {
        let path = entry.expect("entry").path();
        let name = path
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        if name.ends_with(".toml") && name != "policy.toml" {
            load(Some(&path), env(&[])).unwrap_or_else(|e| panic!("{name}: {e}"));
            checked += 1;
        }
    }
    assert!(checked >= 1);
}

#[test]
fn environment_overrides_file_and_defaults() {
    let config = load(
        None,
        env(&[
            ("DELINK__INPUT__SEGMENT_RECORDS", "5000"),
            ("DELINK__DATA_DIR", "/tmp/somewhere"),
            ("DELINK_KEK", "not an override"),
            ("HOME", "/root"),
        ]),
    )
    .expect("valid");
    assert_eq!(config.input.segment_records, 5000);
    assert_eq!(config.data_dir, PathBuf::from("/tmp/somewhere"));
    let kek = config.kek_file();
    assert!(
        kek.starts_with("/root/.config/delink/keyrings/") && !kek.starts_with("/tmp/somewhere"),
        "{kek:?}"
    );
    assert_eq!(
        config.input.batch_records,
        InputConfig::default().batch_records
    );
}

#[test]
fn all_problems_are_reported_at_once() {
    let error = load(
        None,
        env(&[
            ("DELINK__QUARANTINE__RETENTION_DAYS", "90"),
            ("DELINK__OUTPUT__ZSTD_LEVEL", "0"),
            ("DELINK__KEYSTORE__BACKEND", "postgres"),
        ]),
    )
    .expect_err("invalid");
    assert_eq!(error.problems.len(), 3, "{error}");
    assert!(error.to_string().contains("5 weeks"));
}

#[test]
fn unknown_keys_are_refused() {
    let error = load(None, env(&[("DELINK__INPUT__BATCH_SIZE", "3")])).expect_err("unknown");
    assert!(error.to_string().contains("batch_size"), "{error}");
}

#[test]
fn the_postgres_backend_needs_a_url_and_debug_hides_it() {
    let config = load(
        None,
        env(&[
            ("DELINK__KEYSTORE__BACKEND", "postgres"),
            (
                "DELINK__KEYSTORE__POSTGRES_URL",
                "postgres://delink:s3cret@db/delink",
            ),
        ]),
    )
    .expect("valid");
    assert!(!format!("{config:?}").contains("s3cret"));
    let error = load(
        None,
        env(&[("DELINK__KEYSTORE__ERASURE_PROPAGATION_SECS", "0")]),
    )
    .expect_err("propagation must exceed the refresh interval");
    assert!(
        error.to_string().contains("erasure_propagation_secs"),
        "{error}"
    );
}

#[test]
fn device_epochs_number_periods_of_observation_time_from_one() {
    let day = 86_400_000_000_i64;
    assert_eq!(device_epoch(0, 5 * day), 0, "epochs off");
    assert_eq!(device_epoch(30, 0), 1);
    assert_eq!(device_epoch(30, 29 * day), 1);
    assert_eq!(device_epoch(30, 30 * day), 2);
    assert_eq!(
        device_epoch(30, -day),
        1,
        "before 1970 clamps to the first epoch"
    );
}

#[test]
fn kafka_topics_come_from_a_list_or_a_comma_separated_override() {
    let config = load(None, env(&[("DELINK__KAFKA__TOPICS", "a.b, c-d")])).expect("valid");
    assert_eq!(
        config.kafka.topics,
        vec!["a.b".to_owned(), "c-d".to_owned()]
    );
    let defaults = load(None, env(&[])).expect("defaults");
    assert_eq!(defaults.kafka.assignment_strategy, "cooperative-sticky");
}

#[test]
fn a_dead_letter_topic_is_optional_valid_and_never_one_the_workers_read() {
    let defaults = load(None, env(&[])).expect("defaults");
    assert_eq!(defaults.kafka.dead_letter_topic, None);
    let config = load(
        None,
        env(&[("DELINK__KAFKA__DEAD_LETTER_TOPIC", "observations.dead")]),
    )
    .expect("valid");
    assert_eq!(
        config.kafka.dead_letter_topic.as_deref(),
        Some("observations.dead")
    );
    for (topic, problem) in [
        ("charger-observations", "must not be one of kafka.topics"),
        ("dead letters", "kafka.dead_letter_topic must be a name"),
    ] {
        let error =
            load(None, env(&[("DELINK__KAFKA__DEAD_LETTER_TOPIC", topic)])).expect_err("invalid");
        assert!(error.to_string().contains(problem), "{error}");
    }
}

#[test]
fn kafka_drain_timeout_stays_below_session_and_shutdown_and_every_problem_is_told() {
    let error = load(
        None,
        env(&[
            ("DELINK__KAFKA__SESSION_TIMEOUT_MS", "2000"),
            ("DELINK__KAFKA__HEARTBEAT_INTERVAL_MS", "400"),
            ("DELINK__KAFKA__DRAIN_TIMEOUT_MS", "30000"),
            ("DELINK__KAFKA__TOPICS", "bad/topic"),
            ("DELINK__KAFKA__ASSIGNMENT_STRATEGY", "sticky"),
        ]),
    )
    .expect_err("invalid");
    let text = error.to_string();
    assert!(text.contains("below kafka.session_timeout_ms"), "{text}");
    assert!(
        text.contains("below pipeline.shutdown_timeout_secs"),
        "{text}"
    );
    assert!(text.contains("kafka.topics"), "{text}");
    assert!(text.contains("kafka.assignment_strategy"), "{text}");
    assert_eq!(error.problems.len(), 4, "{text}");
}

#[test]
fn kafka_properties_pass_through_but_reserved_ones_are_refused_and_secrets_never_show() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("kafka.toml");
    std::fs::write(
        &path,
        "[kafka.properties]\n\"security.protocol\" = \"SASL_SSL\"\n\"sasl.password\" = \"hunter2\"\n\"ssl.key.password\" = \"k3y\"\n",
    )
    .expect("written");
    let config = load(Some(&path), env(&[])).expect("valid");
    assert_eq!(config.kafka.properties["security.protocol"], "SASL_SSL");
    let shown = format!("{config:?}");
    assert!(shown.contains("SASL_SSL"), "{shown}");
    assert!(
        !shown.contains("hunter2") && !shown.contains("k3y"),
        "{shown}"
    );

    std::fs::write(
        &path,
        "[kafka.properties]\n\"enable.auto.commit\" = \"true\"\n",
    )
    .expect("written");
    let error = load(Some(&path), env(&[])).expect_err("reserved");
    assert!(error.to_string().contains("enable.auto.commit"), "{error}");
}

#[test]
fn the_default_keyring_lives_outside_the_data_directory_one_per_directory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let keyrings = dir.path().join("keyrings");
    let at = |data: &str, xdg: Option<&str>| {
        let mut vars = vec![
            ("DELINK__DATA_DIR", data.to_owned()),
            ("HOME", "/home/someone".to_owned()),
        ];
        match xdg {
            Some(xdg) => vars.push(("XDG_CONFIG_HOME", xdg.to_owned())),
            None => vars.push((crate::KEYRING_DIR_ENV, keyrings.display().to_string())),
        }
        load(None, vars.into_iter().map(|(k, v)| (k.to_owned(), v))).expect("valid")
    };
    let first = dir.path().join("data-a");
    let second = dir.path().join("data-b");
    let a = at(first.to_str().expect("path"), None);
    let b = at(second.to_str().expect("path"), None);
    assert!(a.kek_file().starts_with(&keyrings), "{:?}", a.kek_file());
    assert_ne!(a.kek_file(), b.kek_file());
    assert!(!a.kek_inside_data_dir());
    let xdg = at(first.to_str().expect("path"), Some("/xdg"));
    assert!(xdg.kek_file().starts_with("/xdg/delink/keyrings"));

    // A keyring an older release left inside the data directory is still used, and flagged.
    std::fs::create_dir_all(first.join("keys")).expect("mkdir");
    std::fs::write(first.join("keys/kek"), "x").expect("write");
    assert_eq!(a.kek_file(), first.join("keys/kek"));
    assert!(a.kek_inside_data_dir());
}

#[test]
fn a_value_of_the_wrong_type_names_its_key_and_where_it_was_set() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("delink.toml");
    std::fs::write(&path, "[output]\nzstd_level = \"high\"\n").expect("write");
    let error = load(Some(&path), env(&[])).expect_err("a string level");
    let text = error.to_string();
    assert!(text.contains("output.zstd_level"), "{text}");
    assert!(text.contains(&path.display().to_string()), "{text}");
    assert!(text.contains("expected i32"), "{text}");

    let error = load(None, env(&[("DELINK__INPUT__BATCH_RECORDS", "many")])).expect_err("a string");
    let text = error.to_string();
    assert!(
        text.contains("input.batch_records (set by DELINK__INPUT__BATCH_RECORDS)"),
        "{text}"
    );

    let error = load(None, env(&[("DELINK__KAFKA__TOPICS", "[1, 2]")])).expect_err("numbers");
    assert!(error.to_string().contains("kafka.topics"), "{error}");
}

#[test]
fn a_misfit_value_of_a_secret_key_is_named_but_never_shown() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("delink.toml");
    std::fs::write(&path, "[kafka.properties]\n\"sasl.password\" = 918273645\n").expect("write");
    let text = load(Some(&path), env(&[]))
        .expect_err("a number")
        .to_string();
    assert!(text.contains("kafka.properties.sasl.password"), "{text}");
    assert!(!text.contains("918273645"), "{text}");

    let text = load(None, env(&[("DELINK__KEYSTORE__POSTGRES_URL", "5551234")]))
        .expect_err("a number")
        .to_string();
    assert!(text.contains("keystore.postgres_url"), "{text}");
    assert!(!text.contains("5551234"), "{text}");
    // Other keys keep serde's message, value included.
    let text = load(None, env(&[("DELINK__OUTPUT__ZSTD_LEVEL", "high")]))
        .expect_err("a string")
        .to_string();
    assert!(text.contains("\"high\""), "{text}");
}
