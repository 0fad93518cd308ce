//! Erasure, KEK rotation and retention, played against the adversary of the
//! privacy model: every Parquet file, the current store and KEK, a store
//! backup from before the erasure, and the erased subject's raw identifiers.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use arrow_array::RecordBatch;
use delink_keystore::{EmbeddedKeyStore, Entity, KekSource, KeyStore, Keyring};
use delink_model::{Field, Scope};
use delink_policy::{Action, Plan};
use delink_transform::pseudonym_hex;

use crate::util::{
    Input, Snapshot, column_text, columns_text, delink, kek_path, run_ok, sorted_rows,
};

const POLICY: &str = include_str!("../config/policy.toml");

/// One generated observation's identifiers, normalised as the decoder does.
#[derive(Debug, Clone, Default)]
struct Ids {
    observation: String,
    account: Option<String>,
    rfid: Option<String>,
    installation: Option<String>,
    serials: Vec<String>,
}

fn ids_of(input: &Input) -> Vec<Ids> {
    let normal = |field, text: &str| delink_decode::normalise_identifier(field, text).expect("id");
    input
        .lines
        .iter()
        .filter(|line| matches!(line.truth, delink_synth::Truth::Valid { .. }))
        .map(|line| {
            let value: serde_json::Value = serde_json::from_slice(&line.line).expect("json");
            let text = |pointer: &str| value.pointer(pointer).and_then(|v| v.as_str());
            let mut serials = vec![normal(
                Field::ChargerSerial,
                text("/charger/serial").expect("serial"),
            )];
            for component in value
                .pointer("/charger/components")
                .and_then(|v| v.as_array())
                .into_iter()
                .flatten()
            {
                if let Some(serial) = component.get("serial").and_then(|v| v.as_str()) {
                    serials.push(normal(Field::ChargerSerial, serial));
                }
            }
            Ids {
                observation: text("/observation_id").expect("id").trim().to_lowercase(),
                account: text("/user/account_id").map(|id| normal(Field::UserAccountId, id)),
                rfid: text("/user/rfid").map(|tag| normal(Field::UserRfid, tag)),
                installation: text("/installation/id").map(|id| normal(Field::InstallationId, id)),
                serials,
            }
        })
        .collect()
}

/// The account with the most observations whose chargers nobody else uses;
/// with `with_components`, one whose charger has components fitted.
fn pick_subject(ids: &[Ids], with_components: bool) -> (String, Vec<String>) {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for ids in ids {
        if let Some(account) = &ids.account {
            *counts.entry(account).or_insert(0) += 1;
        }
    }
    let mut ranked: Vec<(&str, usize)> = counts.into_iter().collect();
    ranked.sort_by_key(|(_, count)| std::cmp::Reverse(*count));
    for (account, _) in ranked {
        let homes: BTreeSet<&str> = ids
            .iter()
            .filter(|ids| ids.account.as_deref() == Some(account))
            .filter_map(|ids| ids.installation.as_deref())
            .collect();
        let identifiers = subject_identifiers(ids, account);
        let shared = ids.iter().any(|other| {
            other.account.is_some()
                && other.account.as_deref() != Some(account)
                && other
                    .installation
                    .as_deref()
                    .is_some_and(|home| homes.contains(home))
        });
        let fitted = ids.iter().any(|other| {
            other.serials.len() > 1
                && other
                    .installation
                    .as_deref()
                    .is_some_and(|home| homes.contains(home))
        });
        if !homes.is_empty() && !shared && (fitted || !with_components) {
            return (account.to_owned(), identifiers);
        }
    }
    panic!("no subject with a charger of their own in the generated input");
}

/// Every raw identifier of an account: itself, its tags, installations and their chargers.
fn subject_identifiers(ids: &[Ids], account: &str) -> Vec<String> {
    let mine: Vec<&Ids> = ids
        .iter()
        .filter(|ids| ids.account.as_deref() == Some(account))
        .collect();
    let homes: BTreeSet<&str> = mine
        .iter()
        .filter_map(|ids| ids.installation.as_deref())
        .collect();
    let mut found: BTreeSet<String> = [account.to_owned()].into();
    found.extend(mine.iter().filter_map(|ids| ids.rfid.clone()));
    found.extend(homes.iter().map(|home| (*home).to_owned()));
    for ids in ids {
        if ids
            .installation
            .as_deref()
            .is_some_and(|home| homes.contains(home))
        {
            found.extend(ids.serials.iter().cloned());
        }
    }
    found.into_iter().collect()
}

/// Every key the adversary can unwrap from a store file with a keyring, and how many failed.
fn obtainable_keys(log: &Path, keyring: &Keyring) -> (Vec<[u8; 32]>, usize) {
    let copy = delink_keystore::read_copy(log, keyring).expect("read store copy");
    let keys = copy.keys.iter().map(|(_, key)| *key.expose()).collect();
    (keys, copy.failed)
}

/// Copies a directory tree as a backup would (`cp -a`).
fn copy_dir(from: &Path, to: &Path) {
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .expect("cp");
    assert!(status.success());
}

/// Tells whether any file under `dir` contains `needle`.
fn dir_contains(dir: &Path, needle: &[u8]) -> bool {
    std::fs::read_dir(dir).expect("list").any(|entry| {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            return dir_contains(&path, needle);
        }
        let bytes = std::fs::read(&path).expect("read");
        bytes.windows(needle.len()).any(|window| window == needle)
    })
}

/// One entity of a subject's household, owned (an [`Entity`] borrows).
struct OwnedEntity {
    scope: Scope,
    id: String,
}

impl OwnedEntity {
    fn as_entity(&self) -> Entity<'_> {
        Entity::new(self.scope, &self.id)
    }
}

/// The store entities of a subject's identifiers: account, tags, installations, chargers.
fn subject_entities(ids: &[Ids], subject: &str, identifiers: &[String]) -> Vec<OwnedEntity> {
    identifiers
        .iter()
        .map(|id| {
            if id == subject {
                OwnedEntity {
                    scope: Scope::Subject,
                    id: format!("account:{id}"),
                }
            } else if ids.iter().any(|i| i.rfid.as_deref() == Some(id)) {
                OwnedEntity {
                    scope: Scope::Subject,
                    id: format!("rfid:{id}"),
                }
            } else if ids.iter().any(|i| i.installation.as_deref() == Some(id)) {
                OwnedEntity {
                    scope: Scope::Installation,
                    id: id.clone(),
                }
            } else {
                OwnedEntity {
                    scope: Scope::Device,
                    id: id.clone(),
                }
            }
        })
        .collect()
}

/// Counts the entities whose lookup tags the adversary can compute for a store
/// copy and finds in it: membership, without unwrapping any entity key.
fn members_found(log: &Path, keyring: &Keyring, entities: &[OwnedEntity]) -> usize {
    let copy = delink_keystore::read_copy(log, keyring).expect("read store copy");
    let Some(index_key) = copy.index_key else {
        return 0;
    };
    entities
        .iter()
        .filter(|entity| {
            copy.tags.contains(&delink_keystore::lookup_tag(
                &index_key,
                &entity.as_entity(),
            ))
        })
        .count()
}

/// Every pseudonymisation context of the policy.
fn contexts(plan: &Plan) -> Vec<String> {
    [&plan.history, &plan.devices]
        .iter()
        .flat_map(|dataset| dataset.columns.iter())
        .filter_map(|column| match &column.action {
            Action::Pseudonymise { context, .. } => Some(context.clone()),
            _ => None,
        })
        .collect()
}

/// Counts rows of history and devices holding any pseudonym of `identifiers`
/// under any of `keys`, in any column, with any context.
fn rows_linked(
    snapshot: &Snapshot,
    plan: &Plan,
    keys: &[[u8; 32]],
    identifiers: &[String],
) -> usize {
    let mut candidates = HashSet::new();
    for key in keys {
        for context in contexts(plan) {
            for id in identifiers {
                candidates.insert(pseudonym_hex(key, &context, id));
                candidates.insert(pseudonym_hex(key, &context, &format!("account:{id}")));
                candidates.insert(pseudonym_hex(key, &context, &format!("rfid:{id}")));
            }
        }
    }
    let mut linked = 0;
    for batch in snapshot.history.iter().chain(&snapshot.devices) {
        let columns = columns_text(batch);
        for row in 0..batch.num_rows() {
            if columns.iter().any(|column| {
                column[row]
                    .split(|c: char| !c.is_ascii_hexdigit())
                    .any(|cell| candidates.contains(cell))
            }) {
                linked += 1;
            }
        }
    }
    linked
}

fn history_context(plan: &Plan, field: Field) -> (String, String) {
    plan.history
        .columns
        .iter()
        .find(|column| column.field == field)
        .and_then(|column| match &column.action {
            Action::Pseudonymise { context, .. } => Some((column.name.clone(), context.clone())),
            _ => None,
        })
        .expect("a pseudonymised history column")
}

/// Rows of `batches` whose `column` is not `value`, rendered and sorted.
fn rows_without(batches: &[RecordBatch], column: &str, value: &str) -> Vec<String> {
    let kept: Vec<RecordBatch> = batches
        .iter()
        .map(|batch| {
            let mask: arrow_array::BooleanArray = column_text(batch, column)
                .iter()
                .map(|cell| Some(cell != value))
                .collect();
            arrow_select::filter::filter_record_batch(batch, &mask).expect("filter")
        })
        .collect();
    sorted_rows(&kept)
}

fn command(data: &Path, args: &[&str]) -> String {
    let output = run_ok(
        delink()
            .args(args)
            .arg("--data-dir")
            .arg(data)
            .env("RUST_LOG", "debug"),
    );
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    text
}

#[test]
fn the_adversary_finds_nothing_of_an_erased_subject_once_the_old_kek_is_gone() {
    let input = Input::generate(20_000, 31, 0.0);
    let ids = ids_of(&input);
    let (subject, identifiers) = pick_subject(&ids, false);
    let plan = delink_policy::compile(POLICY).expect("policy");
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let mut logs = command(
        &data,
        &[
            "run",
            input.path.to_str().expect("path"),
            "--progress",
            "never",
        ],
    );
    let before = Snapshot::read(&data);
    let keyring_path = kek_path(&data);
    assert!(
        keyring_path.exists() && !keyring_path.starts_with(&data),
        "the shipped defaults keep the keyring apart from the data directory"
    );
    // The backup: the whole data directory, as a backup job would copy it.
    let backup_dir = dir.path().join("backup");
    copy_dir(&data, &backup_dir);
    let backup: PathBuf = backup_dir.join("keys/entities.log");
    let old_kek = std::fs::read_to_string(&keyring_path).expect("kek");
    let old_hex = old_kek
        .trim()
        .split(':')
        .next_back()
        .expect("hex")
        .to_owned();
    assert!(
        !dir_contains(&backup_dir, old_hex.as_bytes()),
        "the backup holds the KEK"
    );
    let entities = subject_entities(&ids, &subject, &identifiers);

    // The subject's history pseudonym, and the export of another subject, before erasure.
    let (account_column, account_context) = history_context(&plan, Field::UserAccountId);
    let subject_key = {
        let store =
            EmbeddedKeyStore::open(&data.join("keys"), &KekSource::File(keyring_path.clone()))
                .expect("store");
        *store
            .existing_key(&Entity::new(Scope::Subject, &format!("account:{subject}")))
            .expect("lookup")
            .expect("the subject has a key")
            .expose()
    };
    let subject_pseudonym = pseudonym_hex(&subject_key, &account_context, &subject);

    let mut erase = vec!["erase", "--no-wait", "--request-id", "req-A", "--subject"];
    erase.push(&subject);
    let mut request = String::new();
    for id in identifiers.iter().filter(|id| **id != subject) {
        let kind = if ids.iter().any(|i| i.rfid.as_deref() == Some(id)) {
            "rfid"
        } else if ids.iter().any(|i| i.installation.as_deref() == Some(id)) {
            "installation"
        } else {
            "device"
        };
        request.push_str(&format!("{kind} {id}\n"));
    }
    let request_file = dir.path().join("requests.txt");
    std::fs::write(&request_file, request).expect("requests");
    erase.extend(["--file", request_file.to_str().expect("path")]);
    logs.push_str(&command(&data, &erase));
    logs.push_str(&command(&data, &["keys", "rotate"]));

    // Before retirement the backup still unwraps with the old KEK: the attack works.
    let both = Keyring::load(&KekSource::File(keyring_path.clone()), false)
        .expect("keyring")
        .expect("present");
    let (backup_keys, _) = obtainable_keys(&backup, &both);
    let backed_up = Snapshot::read(&backup_dir);
    assert!(
        rows_linked(&backed_up, &plan, &backup_keys, &identifiers) > 0,
        "the adversary must be able to succeed before retirement"
    );
    assert!(
        members_found(&backup, &both, &entities) > 0,
        "before retirement the backup's index key confirms the subject was there"
    );

    logs.push_str(&command(&data, &["keys", "retire", "--older-than", "0s"]));
    let status = command(&data, &["keys", "status"]);
    assert!(
        status.contains("req-A") && status.contains("complete since"),
        "{status}"
    );
    logs.push_str(&status);

    let after = Snapshot::read(&data);
    let current = Keyring::load(&KekSource::File(keyring_path.clone()), false)
        .expect("keyring")
        .expect("present");
    let (backup_keys, backup_failures) = obtainable_keys(&backup, &current);
    assert!(
        backup_keys.is_empty(),
        "no backup key unwraps after retirement"
    );
    assert!(backup_failures > 0);
    assert_eq!(
        members_found(&backup, &current, &entities),
        0,
        "nothing current confirms the subject was in the backup"
    );
    let current_index = delink_keystore::read_copy(&data.join("keys/entities.log"), &current)
        .expect("current store")
        .index_key
        .expect("the current index key unwraps");
    let backup_tags = delink_keystore::read_copy(&backup, &current)
        .expect("backup")
        .tags;
    for entity in &entities {
        let tag = delink_keystore::lookup_tag(&current_index, &entity.as_entity());
        assert!(
            !backup_tags.contains(&tag),
            "the current index key recomputes a tag of the backup"
        );
    }
    let old_only = Keyring::from_text(old_kek.trim()).expect("old kek text");
    let (current_keys, _) = obtainable_keys(&data.join("keys/entities.log"), &current);
    assert!(!current_keys.is_empty());
    let mut every_key = current_keys.clone();
    every_key.extend(obtainable_keys(&backup, &current).0);
    assert_eq!(rows_linked(&after, &plan, &every_key, &identifiers), 0);
    assert_eq!(rows_linked(&backed_up, &plan, &every_key, &identifiers), 0);
    assert!(
        obtainable_keys(&data.join("keys/entities.log"), &old_only)
            .0
            .is_empty(),
        "the current store is wrapped under the new KEK only"
    );

    // Every other subject's rows are untouched, and devices/ entirely.
    assert_eq!(sorted_rows(&after.devices), sorted_rows(&before.devices));
    let others_before = rows_without(&before.history, &account_column, &subject_pseudonym);
    assert_eq!(
        rows_without(&after.history, &account_column, &subject_pseudonym),
        others_before
    );

    // Retention deletes the subject's rows physically; the others keep their rows.
    logs.push_str(&command(&data, &["retention"]));
    let retained = Snapshot::read(&data);
    let all_rows: usize = retained.history.iter().map(RecordBatch::num_rows).sum();
    assert_eq!(all_rows, others_before.len());
    assert_eq!(
        rows_without(&retained.history, &account_column, &subject_pseudonym),
        others_before
    );
    assert_eq!(sorted_rows(&retained.devices), sorted_rows(&before.devices));

    // Export for another subject returns exactly their observations.
    let other = ids
        .iter()
        .filter_map(|i| i.account.clone())
        .find(|account| *account != subject)
        .expect("another subject");
    let export_dir = dir.path().join("export");
    logs.push_str(&command(
        &data,
        &[
            "export",
            "--subject",
            &other,
            "-o",
            export_dir.to_str().expect("path"),
        ],
    ));
    let other_key = {
        let store = EmbeddedKeyStore::open(&data.join("keys"), &KekSource::File(keyring_path))
            .expect("store");
        *store
            .existing_key(&Entity::new(Scope::Subject, &format!("account:{other}")))
            .expect("lookup")
            .expect("key")
            .expose()
    };
    let (_, observation_context) = history_context(&plan, Field::ObservationId);
    let expected: BTreeSet<String> = ids
        .iter()
        .filter(|i| i.account.as_deref() == Some(other.as_str()))
        .map(|i| pseudonym_hex(&other_key, &observation_context, &i.observation))
        .collect();
    let exported: BTreeSet<String> = std::fs::read_to_string(export_dir.join("rows.jsonl"))
        .expect("rows.jsonl")
        .lines()
        .map(|line| {
            let row: serde_json::Value = serde_json::from_str(line).expect("json line");
            row["observation_pseudonym"]
                .as_str()
                .expect("pseudonym")
                .to_owned()
        })
        .collect();
    assert!(!expected.is_empty());
    assert_eq!(exported, expected);
    let csv_rows = std::fs::read_to_string(export_dir.join("rows.csv"))
        .expect("rows.csv")
        .lines()
        .count();
    assert_eq!(
        csv_rows,
        expected.len() + 1,
        "a header and one line per row"
    );
    assert!(export_dir.join("columns.json").exists());

    // No secret and no identifier of the subject in any command's output.
    let new_kek = std::fs::read_to_string(kek_path(&data)).expect("kek");
    for secret in [old_kek.trim(), new_kek.trim()] {
        let hex = secret.split(':').next_back().expect("hex");
        assert!(!logs.contains(&hex[..16]), "a KEK appears in the logs");
    }
    for key in [subject_key, other_key] {
        let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
        assert!(
            !logs.contains(&hex[..16]),
            "an entity key appears in the logs"
        );
    }
    for id in &identifiers {
        assert!(
            !logs.contains(id.as_str()),
            "an identifier appears in the logs"
        );
    }
}

#[test]
fn no_row_hashed_after_an_erasure_is_effective_uses_the_erased_key() {
    let input = Input::generate(6_000, 41, 0.0);
    let ids = ids_of(&input);
    let half = input.lines.len() / 2;
    // Replays are written once, at their first sighting.
    let mut seen = HashSet::new();
    let first_sightings: Vec<(usize, &Ids)> = ids
        .iter()
        .enumerate()
        .filter(|(_, i)| seen.insert(i.observation.clone()))
        .collect();
    let in_half = |account: &str, second: bool| {
        first_sightings
            .iter()
            .filter(|(index, i)| {
                (*index >= half) == second && i.account.as_deref() == Some(account)
            })
            .count()
    };
    let subject = ids
        .iter()
        .filter_map(|i| i.account.clone())
        .max_by_key(|account| in_half(account, false).min(in_half(account, true)))
        .expect("a subject");
    let (first_half, second_half) = (in_half(&subject, false), in_half(&subject, true));
    assert!(first_half > 0 && second_half > 0);

    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let settings = [
        ("DELINK__INPUT__BATCH_RECORDS", "100"),
        ("DELINK__INPUT__SEGMENT_RECORDS", "1000"),
        ("DELINK__KEYSTORE__REFRESH_INTERVAL_MS", "200"),
        ("DELINK__KEYSTORE__ERASURE_PROPAGATION_SECS", "2"),
    ];
    let mut run = delink()
        .args(["run", "-", "--progress", "never", "--data-dir"])
        .arg(&data)
        .envs(settings)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("run starts");
    let mut stdin = run.stdin.take().expect("stdin");
    let write_lines = |stdin: &mut std::process::ChildStdin, lines: &[delink_synth::Generated]| {
        for line in lines {
            stdin.write_all(&line.line).expect("write");
            stdin.write_all(b"\n").expect("write");
        }
        stdin.flush().expect("flush");
    };
    write_lines(&mut stdin, &input.lines[..half]);

    // Wait until the running worker has published the first half (three whole
    // segments), so none of it can be hashed after the erasure; then take the key.
    let first_half_observations = first_sightings
        .iter()
        .filter(|(index, _)| *index < half)
        .count();
    let published = || -> usize {
        Snapshot::read(&data)
            .devices
            .iter()
            .map(RecordBatch::num_rows)
            .sum()
    };
    let started = Instant::now();
    while published() < first_half_observations {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the run never published the first half"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let kek = KekSource::File(kek_path(&data));
    let entity_id = format!("account:{subject}");
    let started = Instant::now();
    let old_key = loop {
        if let Ok(store) = EmbeddedKeyStore::open(&data.join("keys"), &kek)
            && let Ok(Some(key)) = store.existing_key(&Entity::new(Scope::Subject, &entity_id))
        {
            break *key.expose();
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the run never keyed the subject"
        );
        std::thread::sleep(Duration::from_millis(100));
    };

    // `delink erase` returns once the erasure is effective; only then does more input arrive.
    let erased = run_ok(
        delink()
            .args(["erase", "--subject", &subject, "--data-dir"])
            .arg(&data)
            .envs(settings),
    );
    let announced = String::from_utf8_lossy(&erased.stdout).into_owned();
    assert!(announced.contains("effective"), "{announced}");
    write_lines(&mut stdin, &input.lines[half..]);
    drop(stdin);
    assert!(run.wait().expect("run ends").success());

    let plan = delink_policy::compile(POLICY).expect("policy");
    let (column, context) = history_context(&plan, Field::UserAccountId);
    let store = EmbeddedKeyStore::open(&data.join("keys"), &kek).expect("store");
    let new_key = *store
        .existing_key(&Entity::new(Scope::Subject, &entity_id))
        .expect("lookup")
        .expect("a fresh key for the later observations")
        .expose();
    assert_ne!(new_key, old_key);
    let snapshot = Snapshot::read(&data);
    let count = |pseudonym: &str| -> usize {
        snapshot
            .history
            .iter()
            .map(|batch| {
                column_text(batch, &column)
                    .iter()
                    .filter(|c| *c == pseudonym)
                    .count()
            })
            .sum()
    };
    assert_eq!(
        count(&pseudonym_hex(&old_key, &context, &subject)),
        first_half
    );
    assert_eq!(
        count(&pseudonym_hex(&new_key, &context, &subject)),
        second_half
    );
}

#[test]
fn erase_then_retention_while_two_workers_run_removes_the_subject_and_the_workers_go_on() {
    let input = Input::generate(12_000, 43, 0.0);
    let later = Input::generate(2_000, 44, 0.0);
    let ids = ids_of(&input);
    let half = input.lines.len() / 2;
    let subject = ids
        .iter()
        .filter_map(|i| i.account.clone())
        .max_by_key(|account| {
            ids.iter()
                .filter(|i| i.account.as_ref() == Some(account))
                .count()
        })
        .expect("a subject");
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let settings = [
        (
            "DELINK_KEK",
            "1:000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
        ),
        ("DELINK__INPUT__BATCH_RECORDS", "200"),
        ("DELINK__INPUT__STREAM_SEGMENT_AGE_SECS", "1"),
        ("DELINK__KEYSTORE__REFRESH_INTERVAL_MS", "200"),
        ("DELINK__KEYSTORE__ERASURE_PROPAGATION_SECS", "2"),
    ];
    let start_worker = || {
        delink()
            .args(["run", "-", "--progress", "never", "--data-dir"])
            .arg(&data)
            .envs(settings)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("worker starts")
    };
    let feed = |stdin: &mut std::process::ChildStdin, lines: &[delink_synth::Generated]| {
        for line in lines {
            stdin.write_all(&line.line).expect("write");
            stdin.write_all(b"\n").expect("write");
        }
        stdin.flush().expect("flush");
    };
    let mut workers = [start_worker(), start_worker()];
    let mut inputs: Vec<_> = workers
        .iter_mut()
        .map(|worker| worker.stdin.take().expect("stdin"))
        .collect();
    feed(&mut inputs[0], &input.lines[..half]);
    feed(&mut inputs[1], &input.lines[half..]);

    // Both workers publish everything they read (each half's distinct observations).
    let distinct = |lines: &[delink_synth::Generated]| {
        lines
            .iter()
            .filter_map(|line| match &line.truth {
                delink_synth::Truth::Valid { observation_id, .. } => {
                    Some(observation_id.trim().to_lowercase())
                }
                delink_synth::Truth::Broken { .. } => None,
            })
            .collect::<HashSet<_>>()
            .len()
    };
    let expected = distinct(&input.lines[..half]) + distinct(&input.lines[half..]);
    let devices_rows = || -> usize {
        Snapshot::read(&data)
            .devices
            .iter()
            .map(RecordBatch::num_rows)
            .sum()
    };
    let started = Instant::now();
    while devices_rows() < expected {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the workers never published"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    let plan = delink_policy::compile(POLICY).expect("policy");
    let (column, context) = history_context(&plan, Field::UserAccountId);
    let kek = KekSource::Env(settings[0].1.to_owned());
    let key = *EmbeddedKeyStore::open(&data.join("keys"), &kek)
        .expect("store")
        .existing_key(&Entity::new(Scope::Subject, &format!("account:{subject}")))
        .expect("lookup")
        .expect("the subject has a key")
        .expose();
    let pseudonym = pseudonym_hex(&key, &context, &subject);
    let subject_rows = || -> usize {
        Snapshot::read(&data)
            .history
            .iter()
            .map(|batch| {
                column_text(batch, &column)
                    .iter()
                    .filter(|c| **c == pseudonym)
                    .count()
            })
            .sum()
    };
    let before = subject_rows();
    assert!(before > 0);

    run_ok(
        delink()
            .args(["erase", "--subject", &subject, "--data-dir"])
            .arg(&data)
            .envs(settings),
    );
    let retention = run_ok(
        delink()
            .args(["retention", "--json", "--wait", "60s", "--data-dir"])
            .arg(&data)
            .envs(settings),
    );
    let report: serde_json::Value =
        serde_json::from_slice(&retention.stdout).expect("report is json");
    assert_eq!(report["erasures_applied"], 1, "{report}");
    assert_eq!(report["erasures_waiting"], 0, "{report}");
    assert_eq!(report["rows_removed"], before, "{report}");
    assert_eq!(subject_rows(), 0);
    for worker in &mut workers {
        assert!(
            worker.try_wait().expect("wait").is_none(),
            "a worker stopped"
        );
    }

    // The workers go on: more input is published, then they end with their input.
    let before_more = devices_rows();
    for stdin in &mut inputs {
        feed(stdin, &later.lines);
    }
    drop(inputs);
    for mut worker in workers {
        assert!(worker.wait().expect("worker ends").success());
    }
    assert_eq!(devices_rows(), before_more + 2 * distinct(&later.lines));
}

/// Writes an erasure request file for every identifier but the account itself.
fn household_requests(ids: &[Ids], subject: &str, identifiers: &[String], path: &Path) {
    let mut request = String::new();
    for entity in subject_entities(ids, subject, identifiers) {
        let line = match (entity.scope, entity.id.split_once(':')) {
            (Scope::Subject, Some(("rfid", tag))) => format!("rfid {tag}"),
            (Scope::Subject, _) => continue,
            (Scope::Installation, _) => format!("installation {}", entity.id),
            _ => format!("device {}", entity.id),
        };
        request.push_str(&line);
        request.push('\n');
    }
    std::fs::write(path, request).expect("requests");
}

/// Counts devices/ rows whose observation pseudonym is one of `observations` under any of `keys`.
fn observations_found(
    snapshot: &Snapshot,
    plan: &Plan,
    keys: &[[u8; 32]],
    observations: &[String],
) -> usize {
    let (column, context) = plan
        .devices
        .columns
        .iter()
        .find(|column| column.field == Field::ObservationId)
        .and_then(|column| match &column.action {
            Action::Pseudonymise { context, .. } => Some((column.name.clone(), context.clone())),
            _ => None,
        })
        .expect("devices/ pseudonymises observation ids");
    let candidates: HashSet<String> = keys
        .iter()
        .flat_map(|key| {
            observations
                .iter()
                .map(|id| pseudonym_hex(key, &context, id))
        })
        .collect();
    snapshot
        .devices
        .iter()
        .flat_map(|batch| column_text(batch, &column))
        .filter(|cell| candidates.contains(cell))
        .count()
}

#[test]
fn erasing_a_household_unlinks_its_charger_and_components_in_every_epoch() {
    let input = Input::generate(12_000, 47, 0.0);
    let ids = ids_of(&input);
    let (subject, identifiers) = pick_subject(&ids, true);
    let entities = subject_entities(&ids, &subject, &identifiers);
    let chargers: BTreeSet<String> = ids
        .iter()
        .filter(|i| {
            i.installation
                .as_ref()
                .is_some_and(|home| identifiers.contains(home))
        })
        .map(|i| i.serials[0].clone())
        .collect();
    let serials: Vec<String> = entities
        .iter()
        .filter(|entity| entity.scope == Scope::Device)
        .map(|entity| entity.id.clone())
        .collect();
    let observations: Vec<String> = ids
        .iter()
        .filter(|i| chargers.contains(&i.serials[0]))
        .map(|i| i.observation.clone())
        .collect();
    assert!(
        serials.len() > chargers.len(),
        "the household has components"
    );
    let plan = delink_policy::compile(POLICY).expect("policy");
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let daily_epochs = [("DELINK__KEYSTORE__DEVICE_EPOCH_DAYS", "1")];
    run_ok(
        delink()
            .args(["run", "--progress", "never", "--data-dir"])
            .arg(&data)
            .arg(&input.path)
            .envs(daily_epochs),
    );
    let keyring = Keyring::load(&KekSource::File(kek_path(&data)), false)
        .expect("keyring")
        .expect("present");
    let log = data.join("keys/entities.log");
    let before = Snapshot::read(&data);
    let (keys, _) = obtainable_keys(&log, &keyring);
    assert!(rows_linked(&before, &plan, &keys, &serials) > 0);
    assert!(observations_found(&before, &plan, &keys, &observations) > 0);

    // The household's keys span several epochs, for the charger and for its components.
    let store = crate::util::open_store(&data);
    // Epochs are days since 1970 (plus one); the input spans 2026-11-18..21.
    let day = |d: u32| {
        let at = chrono::NaiveDate::from_ymd_opt(2026, 11, d)
            .expect("date")
            .and_hms_opt(12, 0, 0)
            .expect("time")
            .and_utc();
        delink_config::device_epoch(1, at.timestamp_micros())
    };
    let epochs = day(10)..day(30);
    let keyed_epochs = |component: Option<&str>| {
        epochs
            .clone()
            .filter(|epoch| {
                chargers.iter().any(|charger| {
                    let entity = match component {
                        Some(serial) => Entity::component(charger, serial, *epoch),
                        None => Entity::device(charger, *epoch),
                    };
                    store.existing_key(&entity).expect("lookup").is_some()
                })
            })
            .collect::<Vec<u32>>()
    };
    let components: Vec<&String> = serials.iter().filter(|s| !chargers.contains(*s)).collect();
    assert!(keyed_epochs(None).len() > 1, "{:?}", keyed_epochs(None));
    let component_epochs: Vec<u32> = components
        .iter()
        .flat_map(|serial| keyed_epochs(Some(serial)))
        .collect();
    assert!(component_epochs.len() > 1, "{component_epochs:?}");
    drop(store);

    let requests = dir.path().join("requests.txt");
    household_requests(&ids, &subject, &identifiers, &requests);
    let erased = run_ok(
        delink()
            .args(["erase", "--no-wait", "--subject", &subject, "--data-dir"])
            .arg(&data)
            .arg("--file")
            .arg(&requests)
            .envs(daily_epochs),
    );
    assert!(erased.status.success());

    let after = Snapshot::read(&data);
    let (keys, _) = obtainable_keys(&log, &keyring);
    assert!(!keys.is_empty(), "other households keep their keys");
    assert_eq!(rows_linked(&after, &plan, &keys, &serials), 0);
    assert_eq!(observations_found(&after, &plan, &keys, &observations), 0);
    let store = crate::util::open_store(&data);
    for charger in &chargers {
        for epoch in epochs.clone().chain([0]) {
            assert!(
                store
                    .existing_key(&Entity::device(charger, epoch))
                    .expect("lookup")
                    .is_none()
            );
            for component in &components {
                let entity = Entity::component(charger, component, epoch);
                assert!(store.existing_key(&entity).expect("lookup").is_none());
            }
        }
    }
    assert_eq!(sorted_rows(&after.devices), sorted_rows(&before.devices));
}
