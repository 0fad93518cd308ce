//! Workers sharing one PostgreSQL key store: every entity gets one key,
//! whichever worker sees it first, so their pseudonyms agree.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::Stdio;

use delink_test_support::postgres::cluster;

use crate::util::{Input, Snapshot, delink, sorted_rows};

#[test]
fn two_workers_on_one_postgres_key_store_write_the_same_pseudonyms() {
    let input = Input::generate(20_000, 61, 0.01);
    let url = cluster().fresh_database(None);
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let settings = [
        ("DELINK__KEYSTORE__BACKEND", "postgres"),
        ("DELINK_POSTGRES_URL", url.as_str()),
        (
            "DELINK_KEK",
            "1:202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f",
        ),
        ("DELINK__INPUT__BATCH_RECORDS", "500"),
    ];
    let bytes = std::fs::read(&input.path).expect("input");
    // Both read the same observations at the same time, each from its own stdin.
    let outputs: Vec<std::process::Output> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..2)
            .map(|_| {
                let bytes = &bytes;
                let data = &data;
                scope.spawn(move || {
                    let mut child = delink()
                        .args(["run", "-", "--progress", "never", "--data-dir"])
                        .arg(data)
                        .envs(settings)
                        .stdin(Stdio::piped())
                        .stdout(Stdio::piped())
                        .stderr(Stdio::piped())
                        .spawn()
                        .expect("worker starts");
                    let mut stdin = child.stdin.take().expect("stdin");
                    stdin.write_all(bytes).expect("feed");
                    drop(stdin);
                    child.wait_with_output().expect("worker ends")
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|worker| worker.join().expect("thread"))
            .collect()
    });
    for output in &outputs {
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    assert!(
        !data.join("keys").exists(),
        "the postgres backend keeps no keys in the data directory"
    );
    let snapshot = Snapshot::read(&data);
    for (name, batches, expected) in [
        ("devices", &snapshot.devices, input.first_valid().len()),
        (
            "history",
            &snapshot.history,
            input
                .first_valid()
                .iter()
                .filter(|(_, _, subject)| *subject)
                .count(),
        ),
    ] {
        let rows = sorted_rows(batches);
        assert_eq!(rows.len(), 2 * expected, "{name}");
        let mut copies: BTreeMap<&str, usize> = BTreeMap::new();
        for row in &rows {
            *copies.entry(row.as_str()).or_insert(0) += 1;
        }
        // Each worker wrote every row once, with the same pseudonyms.
        assert!(
            copies.values().all(|count| *count == 2),
            "{name}: the workers disagree"
        );
    }
}
