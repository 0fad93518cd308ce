use std::os::unix::fs::PermissionsExt;

use super::*;

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .expect("metadata")
        .permissions()
        .mode()
        & 0o777
}

#[test]
fn a_local_store_lists_reads_and_replaces_objects_atomically_and_privately() {
    let dir = tempfile::tempdir().expect("tempdir");
    let outputs = OutputStore::local(&dir.path().join("data")).expect("outputs");
    assert!(outputs.list("history").expect("list").is_empty());
    assert!(!dir.path().join("data").exists(), "opening created nothing");
    let key = "history/date=2026-11-20/part-a.parquet";
    outputs
        .put(key, Bytes::from_static(b"one"), true)
        .expect("put");
    outputs
        .put(key, Bytes::from_static(b"two!"), true)
        .expect("replace");
    outputs
        .put(
            "devices/date=2026-11-20/part-a.parquet",
            Bytes::from_static(b"d"),
            false,
        )
        .expect("put");
    let file = dir.path().join("data").join(key);
    assert_eq!(mode(&file), 0o600);
    assert_eq!(mode(file.parent().expect("partition")), 0o700);
    // A rewrite interrupted before its rename is hidden, then cleared.
    let leftover = file.with_file_name(".part-b.parquet.put");
    std::fs::write(&leftover, b"half").expect("leftover");
    assert_eq!(
        outputs.list("history").expect("list"),
        vec![StoredObject {
            key: key.to_owned(),
            size: 4
        }]
    );
    assert_eq!(outputs.get(key).expect("get"), Bytes::from_static(b"two!"));
    assert_eq!(
        outputs.get_range(key, 1..3).expect("range"),
        Bytes::from_static(b"wo")
    );
    assert!(outputs.exists(key).expect("exists"));
    outputs
        .clear_leftovers("history/date=2026-11-20")
        .expect("clear");
    assert!(!leftover.exists());
    assert_eq!(
        outputs.partitions("history").expect("partitions"),
        vec![(
            "2026-11-20".to_owned(),
            "history/date=2026-11-20".to_owned()
        )]
    );
    assert_eq!(
        outputs
            .delete_prefix("history/date=2026-11-20")
            .expect("delete"),
        1
    );
    assert!(!outputs.exists(key).expect("exists"));
    outputs
        .delete(key)
        .expect("deleting a missing object is fine");
    assert_eq!(
        outputs
            .probe(std::time::Duration::from_secs(5))
            .expect("probe"),
        vec!["devices".to_owned(), "history".to_owned()]
    );
}

#[test]
fn a_staged_file_is_invisible_until_committed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let outputs = OutputStore::local(dir.path()).expect("outputs");
    let staged = dir.path().join("staged.tmp");
    std::fs::write(&staged, b"PAR1").expect("write");
    let file = File::open(&staged).expect("open");
    let area = UploadArea::of_worker("test");
    let key = "quarantine/date=2026-11-20/part-s.parquet";
    let upload = outputs
        .stage(&file, &staged, key, true, &area)
        .expect("stage");
    assert!(outputs.list("quarantine").expect("list").is_empty());
    outputs.commit(vec![upload]).expect("commit");
    assert_eq!(outputs.get(key).expect("get"), Bytes::from_static(b"PAR1"));
    assert!(!staged.exists());
    assert_eq!(mode(&dir.path().join("quarantine")), 0o700);
}

#[test]
fn locations_name_their_store_and_never_carry_credentials() {
    let dir = tempfile::tempdir().expect("tempdir");
    let remote = OutputStore::open(Some("s3://lake/delink/"), dir.path()).expect("s3");
    assert!(remote.local_root().is_none());
    assert_eq!(remote.describe("history"), "s3://lake/delink/history");
    assert_eq!(
        remote
            .path("history/date=2026-11-20/x.parquet")
            .expect("path")
            .as_ref(),
        "delink/history/date=2026-11-20/x.parquet"
    );
    let local = OutputStore::open(Some("file:///srv/lake"), dir.path()).expect("file");
    assert_eq!(local.local_root(), Some(Path::new("/srv/lake")));
    for (location, complaint) in [
        ("s3://AKIA:secret@lake/delink", "must not carry credentials"),
        (
            "s3://lake/delink?access_key=x",
            "must not carry credentials",
        ),
        ("ftp://lake/delink", "cannot write to"),
        ("lake/delink", "not a URL"),
    ] {
        let error = OutputStore::open(Some(location), dir.path())
            .expect_err(location)
            .to_string();
        assert!(error.contains(complaint), "{location}: {error}");
        assert!(!error.contains("secret"), "{error}");
    }
}

/// An object store in memory, behind the same code as S3, GCS and Azure.
fn in_memory() -> OutputStore {
    OutputStore::new(
        Arc::new(object_store::memory::InMemory::new()),
        Backend::Remote,
        "delink".to_owned(),
        "memory://lake/delink".to_owned(),
    )
}

fn sealed(dir: &Path, name: &str, bytes: &[u8]) -> (File, PathBuf) {
    let path = dir.join(name);
    std::fs::write(&path, bytes).expect("write");
    (File::open(&path).expect("open"), path)
}

fn every_key(outputs: &OutputStore) -> Vec<String> {
    outputs
        .list("")
        .expect("list")
        .into_iter()
        .map(|object| object.key)
        .collect()
}

#[test]
fn an_object_store_shows_a_staged_file_only_once_committed_and_keeps_no_staged_copy() {
    let dir = tempfile::tempdir().expect("tempdir");
    let outputs = in_memory();
    let area = UploadArea::of_worker("0123456789abcdef");
    let key = "history/date=2026-11-20/part-s.parquet";
    let (file, path) = sealed(dir.path(), "one.tmp", b"PAR1 whole file");
    let upload = outputs
        .stage(&file, &path, key, true, &area)
        .expect("stage");
    assert!(outputs.list("history").expect("list").is_empty());
    assert_eq!(
        every_key(&outputs),
        vec!["_staging/0123456789abcdef/history/date=2026-11-20/part-s.parquet.staged"],
        "staged outside every dataset, under a name no *.parquet glob matches"
    );
    outputs.commit(vec![upload]).expect("commit");
    assert_eq!(every_key(&outputs), vec![key]);
    assert_eq!(
        outputs.get(key).expect("get"),
        Bytes::from_static(b"PAR1 whole file")
    );
}

#[test]
fn abandoned_and_leftover_uploads_are_deleted_and_other_workers_keep_theirs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let outputs = in_memory();
    let gone = UploadArea::of_worker("aaaaaaaaaaaaaaaa");
    let live = UploadArea::of_worker("bbbbbbbbbbbbbbbb");
    let (file, path) = sealed(dir.path(), "one.tmp", b"one");
    let abandoned = outputs
        .stage(
            &file,
            &path,
            "devices/date=2026-11-20/part-a.parquet",
            false,
            &live,
        )
        .expect("stage");
    outputs.abandon(vec![abandoned]);
    assert!(
        every_key(&outputs).is_empty(),
        "an abandoned upload is deleted"
    );
    for key in [
        "history/date=2026-11-20/part-b.parquet",
        "quarantine/date=2026-11-20/part-b.parquet",
    ] {
        let (file, path) = sealed(dir.path(), "two.tmp", b"two");
        outputs
            .stage(&file, &path, key, true, &gone)
            .expect("stage");
    }
    let (file, path) = sealed(dir.path(), "three.tmp", b"three");
    let kept = outputs
        .stage(
            &file,
            &path,
            "history/date=2026-11-20/part-c.parquet",
            true,
            &live,
        )
        .expect("stage");
    assert_eq!(outputs.clear_area(&gone).expect("clear"), 2);
    outputs
        .commit(vec![kept])
        .expect("the live worker's upload is intact");
    assert_eq!(
        every_key(&outputs),
        vec!["history/date=2026-11-20/part-c.parquet"]
    );
}
