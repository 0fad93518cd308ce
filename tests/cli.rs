//! The command line: help, validation and errors that say what to do.

use std::path::{Path, PathBuf};

use crate::util::{delink, kek_path, run_ok};

/// A scratch directory holding a generated input and room for a data directory.
struct Scratch {
    dir: tempfile::TempDir,
    input: PathBuf,
    data: PathBuf,
}

/// Generates an input with `delink gen <gen_args>` into a fresh scratch directory.
fn scratch(gen_args: &[&str]) -> Scratch {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("in.ndjson");
    let data = dir.path().join("data");
    run_ok(
        delink()
            .arg("gen")
            .args(gen_args)
            .arg("--output")
            .arg(&input),
    );
    Scratch { dir, input, data }
}

#[test]
fn help_lists_the_commands() {
    let output = run_ok(delink().arg("--help"));
    let text = String::from_utf8_lossy(&output.stdout);
    for command in ["run", "gen", "validate"] {
        assert!(text.contains(command), "{text}");
    }
    let output = run_ok(delink().args(["run", "--help"]));
    assert!(String::from_utf8_lossy(&output.stdout).contains("--data-dir"));
}

#[test]
fn validate_prints_the_columns_of_the_built_in_policy() {
    let output = run_ok(delink().arg("validate"));
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("account_pseudonym"), "{text}");
    assert!(text.contains("pseudonymise under subject key"), "{text}");
}

#[test]
fn a_policy_that_writes_personal_data_in_clear_is_refused_before_any_work() {
    let dir = tempfile::tempdir().expect("tempdir");
    let policy = include_str!("../config/policy.toml")
        .replace("\"user.email\" = \"drop\"", "\"user.email\" = \"keep\"");
    let path = dir.path().join("policy.toml");
    std::fs::write(&path, policy).expect("write");
    let data = dir.path().join("data");
    let output = delink()
        .args(["run", "-"])
        .arg("--policy")
        .arg(&path)
        .arg("--data-dir")
        .arg(&data)
        .output()
        .expect("runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("user.email") && stderr.contains("pseudonymise or drop"),
        "{stderr}"
    );
    assert!(
        !data.exists(),
        "nothing is written when the policy is refused"
    );
}

#[test]
fn a_store_without_its_kek_is_refused() {
    let Scratch {
        dir: _dir,
        input,
        data,
    } = scratch(&["--count", "50"]);
    run_ok(delink().arg("run").arg(&input).arg("--data-dir").arg(&data));
    std::fs::remove_file(kek_path(&data)).expect("remove kek");
    let output = delink()
        .arg("run")
        .arg(&input)
        .arg("--data-dir")
        .arg(&data)
        .output()
        .expect("runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("no KEK was found"), "{stderr}");
}

/// Runs `delink <args> --data-dir <data>` expecting a refusal; returns stderr.
fn refused(data: &Path, args: &[&str]) -> String {
    let output = delink()
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .output()
        .expect("runs");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        !output.status.success(),
        "{args:?} was not refused: {stderr}"
    );
    stderr
}

#[test]
fn a_store_that_is_missing_cut_or_older_than_the_output_is_refused() {
    let Scratch { dir, input, data } = scratch(&["--count", "3000", "--seed", "5"]);
    let later = dir.path().join("later.ndjson");
    run_ok(
        delink()
            .args(["gen", "--count", "3000", "--seed", "6", "--output"])
            .arg(&later),
    );
    let run = |path: &Path| {
        run_ok(delink().arg("run").arg(path).arg("--data-dir").arg(&data));
    };
    run(&input);
    let keys = data.join("keys");
    let older = dir.path().join("keys-backup");
    let copied = std::process::Command::new("cp")
        .arg("-a")
        .arg(&keys)
        .arg(&older)
        .status()
        .expect("cp");
    assert!(copied.success());
    run(&later);
    let pristine = std::fs::read(keys.join("entities.log")).expect("log");

    // An older store (restored from the backup) lacks keys the output was written with.
    let current = dir.path().join("keys-current");
    std::fs::rename(&keys, &current).expect("move");
    std::fs::rename(&older, &keys).expect("restore");
    let stderr = refused(&data, &["run", later.to_str().expect("path")]);
    assert!(
        stderr.contains("shorter than the published output"),
        "{stderr}"
    );
    let stderr = refused(&data, &["keys", "status"]);
    assert!(
        stderr.contains("shorter than the published output"),
        "{stderr}"
    );
    std::fs::remove_dir_all(&keys).expect("remove");
    std::fs::rename(&current, &keys).expect("back");

    // A log cut at a record boundary.
    let cut = &pristine[..pristine.len() - 3 * 209];
    std::fs::write(keys.join("entities.log"), cut).expect("cut");
    let stderr = refused(&data, &["run", later.to_str().expect("path")]);
    assert!(stderr.contains("cut off"), "{stderr}");
    std::fs::write(keys.join("entities.log"), &pristine).expect("restore");

    // No store at all next to published output: never a fresh one.
    std::fs::remove_dir_all(&keys).expect("delete keys/");
    for args in [
        vec!["run", later.to_str().expect("path")],
        vec!["keys", "status"],
        vec!["retention"],
    ] {
        let stderr = refused(&data, &args);
        assert!(
            stderr.contains("restore the key store from backup"),
            "{args:?}: {stderr}"
        );
        assert!(!keys.exists(), "{args:?} created a store");
    }
}

#[test]
fn generated_input_is_deterministic() {
    const GEN: [&str; 7] = [
        "gen",
        "--count",
        "200",
        "--seed",
        "9",
        "--bad-fraction",
        "0.1",
    ];
    let first = run_ok(delink().args(GEN));
    let second = run_ok(delink().args(GEN));
    assert_eq!(first.stdout, second.stdout);
    assert_eq!(first.stdout.iter().filter(|b| **b == b'\n').count(), 200);
}

#[test]
fn quarantined_records_can_be_listed_exported_and_replayed() {
    let Scratch { dir, input, data } =
        scratch(&["--count", "2000", "--seed", "5", "--bad-fraction", "0.1"]);
    run_ok(delink().arg("run").arg(&input).arg("--data-dir").arg(&data));
    let listed = run_ok(
        delink()
            .args(["quarantine", "list", "--data-dir"])
            .arg(&data),
    );
    let listing = String::from_utf8_lossy(&listed.stdout);
    let date_line = listing.lines().next().expect("a date line");
    let date = date_line
        .split_whitespace()
        .next()
        .expect("date")
        .to_owned();
    assert!(listing.contains("not_json"), "{listing}");

    let exported = dir.path().join("quarantine.ndjson");
    run_ok(
        delink()
            .args(["quarantine", "export", "--date", &date, "--data-dir"])
            .arg(&data)
            .arg("--output")
            .arg(&exported),
    );
    let original = std::fs::read(&input).expect("input");
    let original_lines: Vec<&[u8]> = original.split(|b| *b == b'\n').collect();
    let exported_bytes = std::fs::read(&exported).expect("export");
    let exported_lines: Vec<&[u8]> = exported_bytes
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    let total: u64 = date_line
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .expect("count");
    assert_eq!(exported_lines.len() as u64, total);
    for line in &exported_lines {
        // Every exported record is a line of the input, byte for byte (or its kept prefix).
        assert!(
            original_lines.iter().any(|o| o.starts_with(line)),
            "an exported record is not from the input"
        );
    }
    // Replaying the export quarantines every record again (they are still broken).
    let summary = dir.path().join("replay.json");
    run_ok(
        delink()
            .arg("run")
            .arg(&exported)
            .arg("--data-dir")
            .arg(dir.path().join("replay"))
            .arg("--summary-json")
            .arg(&summary),
    );
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&summary).expect("summary")).expect("json");
    assert_eq!(summary["quarantined"], total);
}

#[test]
fn a_wrong_kek_stops_the_run_before_anything_is_written() {
    const KEK: &str = "1:0101010101010101010101010101010101010101010101010101010101010101";
    const OTHER: &str = "1:0202020202020202020202020202020202020202020202020202020202020202";
    let Scratch {
        dir: _dir,
        input,
        data,
    } = scratch(&["--count", "300"]);
    run_ok(
        delink()
            .arg("run")
            .arg(&input)
            .arg("--data-dir")
            .arg(&data)
            .env("DELINK_KEK", KEK),
    );
    assert!(
        !kek_path(&data).exists(),
        "a KEK from the environment is never written to disk"
    );
    let listing = |root: &std::path::Path| {
        let mut files = Vec::new();
        for output in ["history", "devices", "quarantine"] {
            files.extend(crate::util::visible_files(&root.join(output)));
        }
        files
            .iter()
            .map(|f| {
                (
                    f.clone(),
                    std::fs::metadata(f)
                        .expect("meta")
                        .modified()
                        .expect("mtime"),
                )
            })
            .collect::<Vec<_>>()
    };
    let before = listing(&data);
    let output = delink()
        .arg("run")
        .arg(&input)
        .arg("--data-dir")
        .arg(&data)
        .env("DELINK_KEK", OTHER)
        .output()
        .expect("runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("fails authentication"), "{stderr}");
    assert!(
        !stderr.contains("0202020202"),
        "the KEK never appears in an error"
    );
    assert_eq!(listing(&data), before, "nothing was rewritten");
}

#[test]
fn a_keyring_inside_the_data_directory_is_never_created_and_when_found_nothing_is_complete() {
    let Scratch {
        dir: _dir,
        input,
        data,
    } = scratch(&["--count", "500", "--seed", "12"]);
    let inside = data.join("keys/kek");
    let output = delink()
        .arg("run")
        .arg(&input)
        .arg("--data-dir")
        .arg(&data)
        .env("DELINK__KEYSTORE__KEK_FILE", &inside)
        .output()
        .expect("runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("refusing to create the keyring"),
        "{stderr}"
    );
    assert!(!inside.exists() && !data.join("keys").exists());

    // A keyring an older release generated inside the data directory.
    run_ok(delink().arg("run").arg(&input).arg("--data-dir").arg(&data));
    std::fs::rename(kek_path(&data), &inside).expect("move the keyring in");
    let account = std::fs::read_to_string(&input)
        .expect("input")
        .lines()
        .find_map(|line| {
            let value: serde_json::Value = serde_json::from_str(line).ok()?;
            Some(value.pointer("/user/account_id")?.as_str()?.to_owned())
        })
        .expect("an account");
    let lifecycle = |args: &[&str]| run_ok(delink().args(args).arg("--data-dir").arg(&data));
    let erased = lifecycle(&[
        "erase",
        "--no-wait",
        "--request-id",
        "req-in",
        "--subject",
        &account,
    ]);
    assert!(
        String::from_utf8_lossy(&erased.stderr)
            .contains("THE KEYRING IS INSIDE THE DATA DIRECTORY"),
        "{}",
        String::from_utf8_lossy(&erased.stderr)
    );
    lifecycle(&["keys", "rotate"]);
    lifecycle(&["keys", "retire", "--older-than", "0s"]);
    let status = String::from_utf8_lossy(&lifecycle(&["keys", "status"]).stdout).into_owned();
    assert!(status.contains("req-in"), "{status}");
    assert!(!status.contains("complete since"), "{status}");
    assert!(
        status.contains("WARNING: no erasure is complete"),
        "{status}"
    );
    assert!(
        status.contains("assumes the keyring is kept apart"),
        "{status}"
    );
}

#[test]
fn every_command_but_run_and_keys_init_refuses_a_missing_key_store_and_creates_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mistyped = dir.path().join("mistyped");
    let out = dir.path().join("out");
    let out_text = out.to_str().expect("utf-8 path");
    let commands: [&[&str]; 7] = [
        &["erase", "--subject", "acct-1", "--no-wait"],
        &["export", "--subject", "acct-1", "-o", out_text],
        &["keys", "status"],
        &["keys", "rotate"],
        &["keys", "retire"],
        &["retention", "--wait", "0s"],
        &[
            "quarantine",
            "export",
            "--date",
            "2026-01-01",
            "-o",
            out_text,
        ],
    ];
    for args in commands {
        let output = delink()
            .args(args)
            .arg("--data-dir")
            .arg(&mistyped)
            .env_remove("DELINK_KEK")
            .output()
            .expect("delink starts");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{args:?} succeeded");
        assert!(stderr.contains("no key store at"), "{args:?}: {stderr}");
        assert!(!mistyped.exists(), "{args:?} created the data directory");
        assert!(!out.exists(), "{args:?} wrote its output");
    }
    run_ok(
        delink()
            .args(["keys", "init", "--data-dir"])
            .arg(&mistyped)
            .env_remove("DELINK_KEK"),
    );
    assert!(mistyped.join("keys").join("entities.log").is_file());
    run_ok(
        delink()
            .args(["keys", "status", "--data-dir"])
            .arg(&mistyped)
            .env_remove("DELINK_KEK"),
    );
}

#[test]
fn an_erasure_names_each_target_that_had_no_key_by_kind_and_rank_never_by_identifier() {
    let scratch = scratch(&["--count", "2000", "--seed", "17"]);
    run_ok(
        delink()
            .args(["run", "--progress", "never", "--data-dir"])
            .arg(&scratch.data)
            .arg(&scratch.input),
    );
    let text = std::fs::read_to_string(&scratch.input).expect("input");
    let account = text
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .find_map(|value| value["user"]["account_id"].as_str().map(str::to_owned))
        .expect("an account in the input");
    let unknown_tag = "04deadbeef0000";
    let output = run_ok(
        delink()
            .args([
                "erase",
                "--no-wait",
                "--rfid",
                unknown_tag,
                "--subject",
                &account,
            ])
            .args(["--installation", "inst-never-seen", "--data-dir"])
            .arg(&scratch.data),
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("2 of 3 targets had none"), "{stdout}");
    let missing: Vec<&str> = stdout
        .lines()
        .filter(|line| line.contains("no key found"))
        .collect();
    assert_eq!(missing.len(), 2, "{stdout}");
    assert!(
        missing.iter().any(|line| line.starts_with("rfid #1 ")),
        "{stdout}"
    );
    assert!(
        missing
            .iter()
            .any(|line| line.starts_with("installation #1 ")),
        "{stdout}"
    );
    assert!(!stdout.contains(unknown_tag) && !stdout.contains("inst-never-seen"));
    assert!(!stdout.contains(&account), "{stdout}");
    drop(scratch.dir);
}

/// Every file and directory below `root` (itself included), with its permission bits.
fn modes_below(root: &std::path::Path) -> Vec<(PathBuf, u32)> {
    use std::os::unix::fs::PermissionsExt;
    let mut found = Vec::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(path) = pending.pop() {
        let metadata = std::fs::metadata(&path).expect("metadata");
        found.push((path.clone(), metadata.permissions().mode() & 0o777));
        if metadata.is_dir() {
            for entry in std::fs::read_dir(&path).expect("read_dir") {
                pending.push(entry.expect("entry").path());
            }
        }
    }
    found
}

#[test]
fn every_file_that_can_hold_personal_data_is_owner_only() {
    let scratch = scratch(&["--count", "3000", "--seed", "23", "--bad-fraction", "0.05"]);
    // Under the usual umask 022, files come out world-readable unless made otherwise.
    let delink = || {
        let mut command = std::process::Command::new("sh");
        command
            .args(["-c", "umask 022 && exec \"$0\" \"$@\""])
            .arg(env!("CARGO_BIN_EXE_delink"))
            .env(delink_config::KEYRING_DIR_ENV, crate::util::keyring_dir());
        command
    };
    let run =
        |command: &mut std::process::Command| run_ok(command.arg("--data-dir").arg(&scratch.data));
    run(delink()
        .args(["run", "--progress", "never"])
        .arg(&scratch.input));
    let bytes = std::fs::read(&scratch.input).expect("input");
    let text = String::from_utf8_lossy(&bytes);
    let account = text
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .find_map(|value| value["user"]["account_id"].as_str().map(str::to_owned))
        .expect("an account in the input");
    let export = scratch.dir.path().join("export");
    run(delink()
        .args(["export", "--subject", &account, "-o"])
        .arg(&export));
    let day = std::fs::read_dir(scratch.data.join("quarantine"))
        .expect("quarantine")
        .find_map(|entry| {
            let name = entry.ok()?.file_name().into_string().ok()?;
            name.strip_prefix("date=").map(str::to_owned)
        })
        .expect("a quarantine day");
    let replay = scratch.dir.path().join("replay.ndjson");
    run(delink()
        .args(["quarantine", "export", "--date", &day, "-o"])
        .arg(&replay));
    run(delink().args(["erase", "--no-wait", "--subject", &account]));

    let mut checked = 0;
    for root in [
        scratch.data.join("history"),
        scratch.data.join("quarantine"),
        scratch.data.join("retention"),
        scratch.data.join("keys"),
        kek_path(&scratch.data),
        export,
        replay,
    ] {
        assert!(root.exists(), "{} was not written", root.display());
        for (path, mode) in modes_below(&root) {
            assert_eq!(mode & 0o077, 0, "{} is {mode:o}", path.display());
            checked += 1;
        }
    }
    assert!(checked > 10, "only {checked} paths checked");
}

/// Every quarantined record of the data directory, opened (`quarantine export` per day).
fn quarantined_in_clear(data: &std::path::Path) -> Vec<Vec<u8>> {
    let mut records = Vec::new();
    for entry in std::fs::read_dir(data.join("quarantine")).expect("quarantine") {
        let name = entry
            .expect("entry")
            .file_name()
            .into_string()
            .expect("name");
        let Some(day) = name.strip_prefix("date=") else {
            continue;
        };
        let output = run_ok(
            delink()
                .args(["quarantine", "export", "--date", day, "--data-dir"])
                .arg(data),
        );
        records.extend(
            output
                .stdout
                .split(|byte| *byte == b'\n')
                .map(<[u8]>::to_vec),
        );
    }
    records.retain(|record| !record.is_empty());
    records
}

fn mentions(record: &[u8], identifier: &str) -> bool {
    let record = record.to_ascii_lowercase();
    let identifier = identifier.to_lowercase();
    record
        .windows(identifier.len())
        .any(|window| window == identifier.as_bytes())
}

#[test]
fn an_erasure_removes_the_quarantined_records_that_mention_the_subject_and_keeps_the_rest() {
    let scratch = scratch(&["--count", "6000", "--seed", "29", "--bad-fraction", "0.2"]);
    run_ok(
        delink()
            .args(["run", "--progress", "never", "--data-dir"])
            .arg(&scratch.data)
            .arg(&scratch.input),
    );
    let before = quarantined_in_clear(&scratch.data);
    // The account mentioned by the most quarantined records.
    let mut counts: std::collections::BTreeMap<String, usize> = Default::default();
    for record in &before {
        let text = String::from_utf8_lossy(record);
        for part in text.split("\"account_id\":\"").skip(1) {
            if let Some(id) = part.split('"').next().filter(|id| id.len() >= 6) {
                *counts.entry(id.to_owned()).or_default() += 1;
            }
        }
    }
    let (account, _) = counts
        .into_iter()
        .max_by_key(|(_, count)| *count)
        .expect("quarantined records name accounts");
    let mentioning = before.iter().filter(|r| mentions(r, &account)).count();
    assert!(mentioning > 0);

    let output = run_ok(
        delink()
            .args(["erase", "--no-wait", "--subject", &account, "--data-dir"])
            .arg(&scratch.data),
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains(&format!(
            "{mentioning} quarantined records mentioning the erased identifiers removed"
        )),
        "{stdout}"
    );
    let after = quarantined_in_clear(&scratch.data);
    assert!(
        after.iter().all(|record| !mentions(record, &account)),
        "a quarantined record of the erased subject can still be exported"
    );
    let mut others: Vec<&Vec<u8>> = before.iter().filter(|r| !mentions(r, &account)).collect();
    let mut kept: Vec<&Vec<u8>> = after.iter().collect();
    others.sort();
    kept.sort();
    assert_eq!(kept, others, "other records are intact");
}

#[test]
fn log_lines_written_to_a_file_carry_no_colour_codes() {
    let scratch = scratch(&["--count", "200", "--seed", "31"]);
    let output = run_ok(
        delink()
            .args(["run", "--progress", "never", "--data-dir"])
            .arg(&scratch.data)
            .arg(&scratch.input)
            .env("RUST_LOG", "info"),
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("INFO"), "no log line to check: {stderr}");
    assert!(
        !stderr.contains('\u{1b}'),
        "escape codes in a log file: {stderr:?}"
    );
}

/// The key-value metadata of a Parquet file.
fn file_metadata(path: &std::path::Path) -> std::collections::BTreeMap<String, String> {
    let file = std::fs::File::open(path).expect("open");
    let builder = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .expect("parquet");
    builder
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .into_iter()
        .flatten()
        .map(|kv| (kv.key.clone(), kv.value.clone().unwrap_or_default()))
        .collect()
}

#[test]
fn every_published_file_carries_its_provenance_and_keeps_it_through_retention() {
    let scratch = scratch(&["--count", "4000", "--seed", "37", "--bad-fraction", "0.05"]);
    run_ok(
        delink()
            .args([
                "run",
                "--progress",
                "never",
                "--segment-records",
                "1500",
                "--data-dir",
            ])
            .arg(&scratch.data)
            .arg(&scratch.input),
    );
    let policy = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/config/policy.toml"))
        .expect("shipped policy");
    let digest = blake3::hash(&policy).to_hex().to_string();
    let check = |dataset: &str| {
        let files = crate::util::visible_files(&scratch.data.join(dataset));
        assert!(!files.is_empty(), "no {dataset} file");
        for path in files {
            let meta = file_metadata(&path);
            let field = |key: &str| {
                meta.get(key)
                    .unwrap_or_else(|| panic!("{} lacks {key}: {meta:?}", path.display()))
                    .as_str()
            };
            assert_eq!(field("delink.dataset"), dataset);
            assert_eq!(field("delink.version"), env!("CARGO_PKG_VERSION"));
            assert_eq!(field("delink.input_schema"), "charger.observation.v1");
            assert_eq!(field("delink.output_schema_version"), "2");
            assert_eq!(field("delink.policy_digest"), digest);
            assert_eq!(field("delink.kek_version"), "1");
            if dataset == "devices" {
                assert!(field("delink.anonymity").starts_with("status_fault_code:withhold;"));
                assert_eq!(field("delink.microaggregated"), "session_energy_wh");
            }
            let first: u64 = field("delink.first_position").parse().expect("first");
            let end: u64 = field("delink.end_position").parse().expect("end");
            assert!(end > first && end - first <= 1500, "{first}..{end}");
            let name = path.file_name().and_then(|n| n.to_str()).expect("name");
            assert_eq!(
                name,
                format!("part-{}-{first:012}.parquet", field("delink.source"))
            );
        }
    };
    for dataset in ["history", "devices", "quarantine"] {
        check(dataset);
    }
    // A rewrite by retention keeps the file's provenance.
    let bytes = std::fs::read(&scratch.input).expect("input");
    let account = String::from_utf8_lossy(&bytes)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .find_map(|value| value["user"]["account_id"].as_str().map(str::to_owned))
        .expect("an account");
    let history_rows = || -> usize {
        crate::util::visible_files(&scratch.data.join("history"))
            .iter()
            .map(|path| crate::util::read_parquet(path).num_rows())
            .sum()
    };
    let rows_before = history_rows();
    let before = crate::util::visible_files(&scratch.data.join("history"));
    run_ok(
        delink()
            .args(["erase", "--subject", &account, "--data-dir"])
            .arg(&scratch.data),
    );
    run_ok(
        delink()
            .args(["retention", "--wait", "0s", "--data-dir"])
            .arg(&scratch.data),
    );
    let after = crate::util::visible_files(&scratch.data.join("history"));
    assert_eq!(before, after, "the erased subject's rows are spread thin");
    assert!(history_rows() < rows_before, "retention rewrote no file");
    check("history");
}

#[test]
fn a_run_whose_stderr_is_closed_finishes_its_work_and_exits_zero() {
    let scratch = scratch(&["--count", "3000", "--bad-fraction", "0.01"]);
    let mut child = delink()
        .arg("run")
        .arg(&scratch.input)
        .arg("--data-dir")
        .arg(&scratch.data)
        .args(["--progress", "always"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("delink starts");
    // The reader goes away at once: every status line meets a closed pipe.
    drop(child.stderr.take());
    let status = child.wait().expect("delink ends");
    assert!(status.success(), "{status}");
    let files = crate::util::visible_files(&scratch.data.join("devices"));
    assert!(!files.is_empty(), "no devices/ files written");
    drop(scratch.dir);
}
