//! `delink run --kafka`: stream workers against a real broker (tansu), with crashes,
//! rebalances, broker restarts and graceful stops, output read back.
//!
//! Every scenario produces generated observations (broken ones and replays included)
//! into a 4-partition topic with `delink gen`, runs worker processes of one group over
//! one data directory, and checks at the end that every valid observation is in
//! `devices/` exactly once, every subject-linked one in `history/` exactly once, every
//! broken one in the quarantine exactly once, and the group's offsets at the end of
//! every partition. A poller reads every Parquet file the moment it is visible, so a
//! partial file would fail the test.

use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use delink_datadir::open_quarantined;
use delink_keystore::{EmbeddedKeyStore, Entity, KekSource, KeyStore, subject_entity};
use delink_model::{Checkpoint, Scope, SubjectId};
use delink_telemetry::MetricName;
use delink_transform::pseudonym_hex;

use crate::admin_http::{admin_address_in, get, labelled_value, summed_value, value};
use crate::broker::{Moto, Tansu, committed_offsets, read_topic};
use crate::object_store::{Lake, finish_poll};
use crate::util::{Input, column_text, delink, read_parquet, run_ok, visible_files};

const TOPIC: &str = "observations";
const GROUP: &str = "delink-workers";
const PARTITIONS: &str = "4";
const SEED: u64 = 1;
const BAD_FRACTION: f64 = 0.01;
const KEK: &str = "1:0707070707070707070707070707070707070707070707070707070707070707";
const HISTORY_OBSERVATION: &str = "delink pseudonym v1 history/observation_id";
/// A safety net for waits that should end in seconds; never what a test asserts.
const PATIENCE: Duration = Duration::from_secs(240);

/// A topic loaded with generated observations, and what each line was meant to be.
struct Loaded {
    inputs: Vec<Input>,
    /// The end offset of every partition.
    ends: BTreeMap<i32, i64>,
}

/// `delink gen` into the topic (created with 4 partitions on first use).
fn gen_command(tansu: &Tansu, count: u64, seed: u64) -> Command {
    let mut command = delink();
    command.args([
        "gen",
        "--kafka-brokers",
        &tansu.bootstrap(),
        "--topic",
        TOPIC,
        "--partitions",
        PARTITIONS,
        "--count",
        &count.to_string(),
        "--bad-fraction",
        &BAD_FRACTION.to_string(),
        "--seed",
        &seed.to_string(),
    ]);
    // Few, large batches: tansu's S3 engine stores each batch as one object and
    // lists them all on every fetch, so thousands of small ones slow every reader.
    command.args(["-X", "linger.ms=200", "-X", "batch.num.messages=10000"]);
    command
}

/// The end offset of every partition, read to EOF.
fn topic_ends(tansu: &Tansu) -> BTreeMap<i32, i64> {
    let mut ends = BTreeMap::new();
    for record in read_topic(&tansu.bootstrap(), TOPIC) {
        let end = ends.entry(record.partition).or_insert(0);
        *end = (*end).max(record.offset + 1);
    }
    ends
}

fn load(tansu: &Tansu, count: u64) -> Loaded {
    run_ok(&mut gen_command(tansu, count, SEED));
    let ends = topic_ends(tansu);
    assert_eq!(
        ends.values().sum::<i64>(),
        count as i64,
        "every record is in"
    );
    Loaded {
        inputs: vec![Input::generate(count, SEED, BAD_FRACTION)],
        ends,
    }
}

/// One `delink run --kafka` process.
struct Worker {
    child: Child,
    log: PathBuf,
    metrics: PathBuf,
}

impl Worker {
    fn start(bootstrap: &str, data: &Path, scratch: &Path, name: &str) -> Worker {
        Worker::start_with(bootstrap, data, scratch, name, &[])
    }

    /// Starts a worker with extra `DELINK__*` settings.
    fn start_with(
        bootstrap: &str,
        data: &Path,
        scratch: &Path,
        name: &str,
        settings: &[(&str, &str)],
    ) -> Worker {
        let log = scratch.join(format!("{name}.log"));
        let metrics = scratch.join(format!("{name}.prom"));
        let child = delink()
            .args(["run", "--kafka", "--kafka-brokers", bootstrap])
            .args(["--topic", TOPIC, "--group", GROUP, "--progress", "never"])
            .arg("--data-dir")
            .arg(data)
            .arg("--metrics-file")
            .arg(&metrics)
            .args(["--admin-listen", "127.0.0.1:0"])
            .arg("--summary-json")
            .arg(scratch.join(format!("{name}.json")))
            .env("DELINK_KEK", KEK)
            .env("DELINK__KAFKA__SESSION_TIMEOUT_MS", "2000")
            .env("DELINK__KAFKA__HEARTBEAT_INTERVAL_MS", "400")
            .env("DELINK__KAFKA__DRAIN_TIMEOUT_MS", "1500")
            .env("DELINK__KAFKA__SEGMENT_MAX_AGE_MS", "1500")
            .env("DELINK__KAFKA__SEGMENT_MAX_RECORDS", "20000")
            .env("DELINK__KAFKA__LINGER_MS", "50")
            .env("DELINK__KAFKA__COMMIT_INTERVAL_MS", "300")
            .env("DELINK__PIPELINE__WORKERS", "2")
            // Small batches keep the pipeline's backlog, and so a drain, short.
            .env("DELINK__INPUT__BATCH_RECORDS", "2000")
            // Eager by default: once, a cooperative rebalance of three members left
            // tansu 0.6.0's group in SyncGroup for good (the unit tests cover the
            // cooperative protocol against librdkafka's mock cluster).
            .env(
                "DELINK__KAFKA__ASSIGNMENT_STRATEGY",
                std::env::var("DELINK_TEST_ASSIGNMENT_STRATEGY")
                    .unwrap_or_else(|_| "range".to_owned()),
            )
            .env("RUST_LOG", "info")
            .envs(settings.iter().copied())
            .stdin(Stdio::null())
            .stdout(File::create(&log).expect("log file"))
            .stderr(File::create(log.with_extension("err")).expect("log file"))
            .spawn()
            .expect("delink starts");
        Worker {
            child,
            log,
            metrics,
        }
    }

    /// Kills the worker at once, as a crash would.
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM and waits for the exit (the shutdown timeout bounds it by itself).
    fn terminate(&mut self) -> ExitStatus {
        self.signal_stop();
        self.wait_exit()
    }

    /// Sends SIGTERM, once: a second one would make the worker exit at once.
    fn signal_stop(&self) {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill runs");
        assert!(sent.success(), "SIGTERM could not be sent");
    }

    fn wait_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(Instant::now() < deadline, "no exit after SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn output(&self) -> String {
        let stdout = std::fs::read_to_string(&self.log).unwrap_or_default();
        let stderr = std::fs::read_to_string(self.log.with_extension("err")).unwrap_or_default();
        let tail_from = stderr.len().saturating_sub(6000);
        let tail_from = (tail_from..stderr.len())
            .find(|at| stderr.is_char_boundary(*at))
            .unwrap_or(0);
        format!("{stdout}\n{}", &stderr[tail_from..])
    }

    /// Stops the worker with SIGTERM and asserts a clean exit.
    fn stop(&mut self) {
        let status = self.terminate();
        assert!(status.success(), "{status}:\n{}", self.output());
    }

    /// The address of the worker's admin server, once it listens.
    fn admin(&self) -> SocketAddr {
        admin_address_in(&self.log.with_extension("err"), PATIENCE)
    }

    /// The run summary the worker wrote at exit.
    fn summary(&self) -> serde_json::Value {
        let path = self.metrics.with_extension("json");
        let text =
            std::fs::read(&path).unwrap_or_else(|_| panic!("no summary:\n{}", self.output()));
        serde_json::from_slice(&text).expect("summary JSON")
    }

    /// A counter of the final metrics the worker wrote.
    fn counter(&self, name: &str) -> u64 {
        let text = std::fs::read_to_string(&self.metrics)
            .unwrap_or_else(|_| panic!("no metrics file:\n{}", self.output()));
        text.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
            .and_then(|value| value.trim().parse::<f64>().ok())
            .map(|value| value as u64)
            .unwrap_or_else(|| panic!("{name} missing"))
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Reads every Parquet file of the data directory as soon as it is visible, until stopped.
struct Poller {
    stop: Arc<AtomicBool>,
    read: Arc<AtomicUsize>,
    thread: Option<JoinHandle<()>>,
}

impl Poller {
    fn start(data: &Path) -> Poller {
        let stop = Arc::new(AtomicBool::new(false));
        let read = Arc::new(AtomicUsize::new(0));
        let data = data.to_path_buf();
        let thread = {
            let stop = Arc::clone(&stop);
            let read = Arc::clone(&read);
            std::thread::spawn(move || {
                let mut seen: HashSet<(PathBuf, u64)> = HashSet::new();
                while !stop.load(Ordering::Relaxed) {
                    for output in ["history", "devices", "quarantine"] {
                        for path in visible_files(&data.join(output)) {
                            let Ok(metadata) = std::fs::metadata(&path) else {
                                continue;
                            };
                            if seen.insert((path.clone(), metadata.len())) {
                                // Panics (failing the test) on a file that is not whole.
                                read_parquet(&path);
                                read.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            })
        };
        Poller {
            stop,
            read,
            thread: Some(thread),
        }
    }

    /// Stops polling; returns how many files were read whole while the workers ran.
    fn finish(mut self) -> usize {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take()
            && let Err(panic) = thread.join()
        {
            std::panic::resume_unwind(panic);
        }
        self.read.load(Ordering::Relaxed)
    }
}

fn committed(tansu: &Tansu) -> BTreeMap<i32, i64> {
    committed_offsets(&tansu.bootstrap(), GROUP, TOPIC)
        .into_iter()
        .map(|(partition, offset)| (partition, offset.unwrap_or(0)))
        .collect()
}

/// Waits until the group has committed at least `fraction` of the records.
fn wait_for_commits(tansu: &Tansu, loaded: &Loaded, fraction: f64, workers: &[Worker]) {
    let total: i64 = loaded.ends.values().sum();
    let wanted = (total as f64 * fraction) as i64;
    let deadline = Instant::now() + PATIENCE;
    loop {
        let done: i64 = committed(tansu).values().sum();
        if done >= wanted {
            return;
        }
        let outputs: Vec<String> = workers.iter().map(Worker::output).collect();
        assert!(
            Instant::now() < deadline,
            "{done} of {wanted} committed; workers:\n{}",
            outputs.join("\n---\n")
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn wait_for_everything_committed(tansu: &Tansu, loaded: &Loaded, workers: &[Worker]) {
    wait_for_commits(tansu, loaded, 1.0, workers);
    assert_eq!(committed(tansu), loaded.ends);
}

fn open_store(data: &Path) -> EmbeddedKeyStore {
    EmbeddedKeyStore::open(&data.join("keys"), &KekSource::Env(KEK.to_owned()))
        .expect("the workers' key store opens")
}

fn pseudonyms(data: &Path, output: &str) -> Vec<String> {
    let mut values: Vec<String> = visible_files(&data.join(output))
        .iter()
        .flat_map(|path| column_text(&read_parquet(path), "observation_pseudonym"))
        .collect();
    values.sort();
    values
}

/// The subject of a valid line, normalised as the spec says.
fn subject_of(line: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(line).ok()?;
    if let Some(account) = value["user"]["account_id"].as_str() {
        return Some(subject_entity(SubjectId::Account(
            &account.trim().to_lowercase(),
        )));
    }
    let rfid = value["user"]["rfid"].as_str()?;
    let rfid: String = rfid
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .to_lowercase();
    Some(subject_entity(SubjectId::Rfid(&rfid)))
}

/// Every valid observation in `devices/` once, every subject-linked one in `history/`
/// once, every broken line in the quarantine once.
fn assert_exactly_once(data: &Path, loaded: &Loaded) {
    let store = open_store(data);
    let mut expected_devices: Vec<String> = loaded
        .inputs
        .iter()
        .flat_map(|input| input.devices_observation_pseudonyms(&store))
        .collect();
    expected_devices.sort();
    let devices = pseudonyms(data, "devices");
    assert_eq!(
        devices.len(),
        expected_devices.len(),
        "devices rows vs distinct valid observations"
    );
    assert!(devices == expected_devices, "devices rows differ");

    let mut expected_history = Vec::new();
    for input in &loaded.inputs {
        for (line, id, has_subject) in input.first_valid() {
            if !has_subject {
                continue;
            }
            let subject = subject_of(&input.lines[line as usize - 1].line).expect("subject");
            let key = store
                .existing_key(&Entity::new(Scope::Subject, &subject))
                .expect("store")
                .expect("subject key");
            expected_history.push(pseudonym_hex(key.expose(), HISTORY_OBSERVATION, &id));
        }
    }
    expected_history.sort();
    let history = pseudonyms(data, "history");
    assert_eq!(history.len(), expected_history.len(), "history rows");
    assert!(history == expected_history, "history rows differ");

    // The quarantine holds each broken line once: opened, they are the broken lines.
    let mut quarantined: Vec<Vec<u8>> = Vec::new();
    let mut places = HashSet::new();
    for path in visible_files(&data.join("quarantine")) {
        let day = path
            .parent()
            .and_then(Path::file_name)
            .expect("partition")
            .to_string_lossy()
            .trim_start_matches("date=")
            .to_owned();
        let batch = read_parquet(&path);
        let positions = column_text(&batch, "position");
        let segments = column_text(&batch, "segment");
        let sealed = batch
            .column_by_name("sealed_record")
            .expect("sealed")
            .as_any()
            .downcast_ref::<arrow_array::BinaryArray>()
            .expect("binary");
        for row in 0..batch.num_rows() {
            let position: u64 = positions[row].parse().expect("position");
            let partition = segments[row]
                .trim_start_matches(&format!("{TOPIC}-"))
                .split('-')
                .next()
                .unwrap_or_default()
                .to_owned();
            assert!(
                places.insert((partition, position)),
                "offset {position} quarantined twice"
            );
            let opened =
                open_quarantined(&store, &day, &segments[row], position, sealed.value(row))
                    .expect("opens")
                    .expect("day key");
            quarantined.push(opened);
        }
    }
    let mut expected_broken: Vec<Vec<u8>> = loaded
        .inputs
        .iter()
        .flat_map(|input| {
            input
                .broken()
                .into_keys()
                .map(|line| input.lines[line as usize - 1].line.clone())
        })
        .collect();
    assert_eq!(
        quarantined.len(),
        expected_broken.len(),
        "quarantined records"
    );
    // Oversized records are kept up to a cap: compare what was kept.
    let mut kept_lengths: Vec<usize> = quarantined.iter().map(Vec::len).collect();
    kept_lengths.sort_unstable();
    let cap = kept_lengths.last().copied().unwrap_or(0);
    for line in &mut expected_broken {
        line.truncate(cap);
    }
    expected_broken.sort();
    quarantined.sort();
    assert!(quarantined == expected_broken, "quarantined records differ");
}

/// What the output holds of each partition: its checkpoint.
fn checkpoints(data: &Path) -> BTreeMap<i32, Checkpoint> {
    (0..4)
        .map(|partition| {
            let path = data
                .join("_checkpoints")
                .join(format!("{TOPIC}-{partition}.json"));
            let checkpoint = std::fs::read(&path)
                .map(|bytes| serde_json::from_slice(&bytes).expect("a checkpoint"))
                .unwrap_or_default();
            (partition, checkpoint)
        })
        .collect()
}

/// Where a group's workers publish.
#[derive(Clone, Copy, PartialEq)]
enum Outputs {
    /// Under the shared data directory.
    Local,
    /// In an S3 bucket (moto).
    Bucket,
    /// In an S3 bucket, with drains (100 ms) shorter than a publication there, so
    /// that partitions are let go with segments unpublished.
    BucketWithShortDrains,
}

/// Runs two workers of one group over the topic, applies `disturb` once a third of
/// the records are committed, stops every worker with SIGTERM (one at a time, as a
/// rolling restart does) once everything is committed, and checks the output: every
/// file whole whenever it was visible, every record exactly once.
fn run_group(
    count: u64,
    s3_broker: bool,
    outputs: Outputs,
    disturb: impl FnOnce(&mut Tansu, &mut Vec<Worker>, &dyn Fn(&str) -> Worker),
) {
    let moto = s3_broker.then(Moto::start);
    let mut tansu = match &moto {
        Some(moto) => Tansu::start_s3(moto),
        None => Tansu::start_memory(),
    };
    let lake = (outputs != Outputs::Local).then(Lake::start);
    let mut settings = lake.as_ref().map(Lake::settings).unwrap_or_default();
    if outputs == Outputs::BucketWithShortDrains {
        settings.push(("DELINK__KAFKA__DRAIN_TIMEOUT_MS", "100".to_owned()));
        // Slower reading and more, smaller segments keep publication behind the
        // reading when the group rebalances.
        settings.push(("DELINK__PIPELINE__WORKERS", "1".to_owned()));
        settings.push(("DELINK__KAFKA__SEGMENT_MAX_RECORDS", "4000".to_owned()));
    }
    let settings: Vec<(&str, &str)> = settings
        .iter()
        .map(|(key, value)| (*key, value.as_str()))
        .collect();
    let bootstrap = tansu.bootstrap();
    let loaded = load(&tansu, count);
    // DELINK_TEST_KEEP_SCRATCH=1 keeps the workers' logs and data for a look afterwards.
    let keep = std::env::var_os("DELINK_TEST_KEEP_SCRATCH").is_some();
    let scratch = tempfile::Builder::new()
        .prefix("delink-group-")
        .disable_cleanup(keep)
        .tempdir()
        .expect("tempdir");
    if keep {
        eprintln!("workers' logs and data: {}", scratch.path().display());
    }
    let data = scratch.path().join("data");
    std::fs::create_dir_all(&data).expect("data dir");
    let start = |name: &str| Worker::start_with(&bootstrap, &data, scratch.path(), name, &settings);
    let stop_polling = scratch.path().join("stop-polling");
    let (poller, bucket_poller) = match &lake {
        None => (Some(Poller::start(&data)), None),
        Some(lake) => (None, Some(lake.poll(&stop_polling))),
    };
    let mut workers: Vec<Worker> = ["a", "b"].into_iter().map(start).collect();
    wait_for_commits(&tansu, &loaded, 0.3, &workers);
    disturb(&mut tansu, &mut workers, &start);
    wait_for_everything_committed(&tansu, &loaded, &workers);
    for worker in &mut workers {
        worker.stop();
    }
    let files_seen = match (poller, bucket_poller) {
        (Some(poller), _) => poller.finish() as u64,
        (None, Some(poller)) => finish_poll(poller, &stop_polling),
        (None, None) => 0,
    };
    assert!(files_seen > 0, "the poller saw no file");
    assert_eq!(committed(&tansu), loaded.ends, "offsets at the end");
    if let Some(lake) = &lake {
        assert!(!data.join("devices").exists(), "devices/ written locally");
        assert!(lake.uploads().is_empty(), "uploads left incomplete");
        assert_eq!(lake.staged(), Vec::<String>::new(), "staged files left");
        lake.mirror(&data);
    }
    assert_exactly_once(&data, &loaded);
}

#[test]
fn two_workers_with_one_killed_and_restarted_write_every_record_exactly_once() {
    run_group(200_000, false, Outputs::Local, |_, workers, start| {
        workers[0].kill();
        workers[0] = start("a-again");
    });
}

#[test]
fn workers_publishing_to_a_bucket_with_one_killed_and_restarted_write_every_record_exactly_once() {
    run_group(200_000, false, Outputs::Bucket, |_, workers, start| {
        workers[0].kill();
        workers[0] = start("a-again");
    });
}

#[test]
fn partitions_let_go_before_their_segments_reach_the_bucket_are_published_once_by_their_next_owner()
{
    run_group(
        200_000,
        false,
        Outputs::BucketWithShortDrains,
        |_, workers, start| {
            workers.push(start("c"));
        },
    );
}

#[test]
fn a_third_worker_joining_mid_run_takes_partitions_without_loss_or_duplicates() {
    run_group(200_000, false, Outputs::Local, |_, workers, start| {
        workers.push(start("c"));
    });
}

#[test]
fn a_broker_restart_mid_run_loses_and_duplicates_nothing() {
    run_group(200_000, true, Outputs::Local, |tansu, _, _| {
        tansu.restart();
    });
}

#[test]
fn sigterm_publishes_and_commits_everything_read_and_a_restart_reads_nothing_again() {
    let tansu = Tansu::start_memory();
    let bootstrap = tansu.bootstrap();
    run_ok(&mut gen_command(&tansu, 40_000, SEED));
    let scratch = tempfile::tempdir().expect("tempdir");
    let data = scratch.path().join("data");
    std::fs::create_dir_all(&data).expect("data dir");

    let mut first = Worker::start(&bootstrap, &data, scratch.path(), "first");
    // More records arrive while the worker runs, so the stop lands mid-stream.
    let mut paced = gen_command(&tansu, 40_000, SEED + 1)
        .args(["--rate", "4000"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("delink gen starts");
    let part = Loaded {
        inputs: Vec::new(),
        ends: BTreeMap::from([(0, 40_000)]),
    };
    wait_for_commits(&tansu, &part, 0.5, std::slice::from_ref(&first));
    let status = first.terminate();
    assert!(status.success(), "{status}:\n{}", first.output());
    let committed_at_stop = committed(&tansu);
    let checkpoints = checkpoints(&data);
    for (partition, offset) in &committed_at_stop {
        let checkpoint = checkpoints[partition];
        assert_eq!(
            checkpoint.publishing, None,
            "partition {partition}: a publication left half done"
        );
        assert_eq!(
            checkpoint.published_end.map_or(0, |end| end as i64),
            *offset,
            "partition {partition}: committed where the output ends"
        );
    }
    let read_before: i64 = committed_at_stop.values().sum();
    assert_eq!(
        first.counter("delink_input_records_total") as i64,
        read_before
    );
    assert!(
        paced.wait().expect("gen exits").success(),
        "the paced gen failed"
    );

    let loaded = Loaded {
        inputs: vec![
            Input::generate(40_000, SEED, BAD_FRACTION),
            Input::generate(40_000, SEED + 1, BAD_FRACTION),
        ],
        ends: topic_ends(&tansu),
    };
    let total: i64 = loaded.ends.values().sum();
    assert_eq!(total, 80_000);
    assert!(read_before < total, "the stop came after the end");
    let mut second = Worker::start(&bootstrap, &data, scratch.path(), "second");
    wait_for_everything_committed(&tansu, &loaded, std::slice::from_ref(&second));
    second.stop();
    assert_eq!(
        second.counter("delink_input_records_total") as i64,
        total - read_before,
        "the restarted worker counts only records it had not published"
    );
    assert_exactly_once(&data, &loaded);
}

/// A memory broker loaded with `count` observations and one worker with `settings`.
fn one_worker(
    count: u64,
    settings: &[(&str, &str)],
) -> (Tansu, Loaded, tempfile::TempDir, PathBuf, Worker) {
    let tansu = Tansu::start_memory();
    let loaded = load(&tansu, count);
    let scratch = tempfile::tempdir().expect("tempdir");
    let data = scratch.path().join("data");
    let worker = Worker::start_with(
        &tansu.bootstrap(),
        &data,
        scratch.path(),
        "worker",
        settings,
    );
    (tansu, loaded, scratch, data, worker)
}

#[test]
fn a_kafka_worker_serves_every_metric_matching_its_summary_and_turns_not_ready_on_stop() {
    // Batches bounded by bytes long before records: every handed-out buffer must start empty.
    let (_tansu, loaded, _scratch, _data, mut worker) =
        one_worker(30_000, &[("DELINK__INPUT__BATCH_BYTES", "262144")]);
    let admin = worker.admin();

    // The scrape itself says when every partition is published and committed.
    let deadline = Instant::now() + PATIENCE;
    let committed_offset = |scrape: &str, partition: &i32| {
        let partition = partition.to_string();
        labelled_value(
            scrape,
            "delink_kafka_committed_offset",
            &[("topic", TOPIC), ("partition", &partition)],
        )
    };
    let scrape = loop {
        let (status, scrape) = get(admin, "/metrics").expect("/metrics answers");
        assert_eq!(status, 200);
        let at_end = loaded
            .ends
            .iter()
            .all(|(partition, end)| committed_offset(&scrape, partition) == Some(*end as f64));
        if at_end {
            break scrape;
        }
        assert!(
            Instant::now() < deadline,
            "never committed:\n{}",
            worker.output()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    for name in MetricName::ALL {
        assert!(scrape.contains(name.as_str()), "{} missing", name.as_str());
    }
    for partition in loaded.ends.keys() {
        let partition = partition.to_string();
        let lag = labelled_value(
            &scrape,
            "delink_kafka_consumer_lag_records",
            &[("topic", TOPIC), ("partition", &partition)],
        );
        assert_eq!(lag, Some(0.0), "partition {partition} caught up");
    }
    assert_eq!(value(&scrape, "delink_kafka_assigned_partitions"), Some(4));
    assert_eq!(
        get(admin, "/readyz").expect("readyz"),
        (200, "ready".to_owned())
    );
    // Batches fill up on a loaded topic rather than leaving a record at a time.
    let batches = value(&scrape, "delink_input_batch_records_count").expect("batch count");
    let batched = value(&scrape, "delink_input_batch_records_sum").expect("batch sum");
    assert!(
        batches > 0 && batched / batches >= 50,
        "{batched} records in {batches} batches"
    );

    worker.signal_stop();
    let mut saw_not_ready = false;
    while let Some((status, body)) = get(admin, "/readyz") {
        if status == 503 {
            assert!(body.contains("shutting down"), "{body}");
            saw_not_ready = true;
            break;
        }
    }
    let status = worker.wait_exit();
    assert!(status.success(), "{status}:\n{}", worker.output());
    assert!(
        saw_not_ready,
        "/readyz never turned not ready after SIGTERM"
    );

    let summary = worker.summary();
    let records = value(&scrape, "delink_input_records_total").expect("records");
    assert_eq!(summary["observations_in"], records);
    assert_eq!(records, 30_000);
    for (output, field) in [("devices", "devices_rows"), ("history", "history_rows")] {
        let rows = labelled_value(&scrape, "delink_output_rows_total", &[("output", output)]);
        assert_eq!(rows, summary[field].as_f64(), "{output} rows");
    }
    assert_eq!(
        Some(summed_value(&scrape, "delink_records_rejected_total")),
        summary["quarantined"].as_f64()
    );
    assert_eq!(
        value(&scrape, "delink_records_duplicate_total"),
        summary["duplicates"].as_u64()
    );
}

#[test]
fn quarantined_records_also_reach_the_dead_letter_topic_sealed_with_their_reason_in_headers() {
    const DEAD_LETTERS: &str = "observations.dead";
    let (tansu, loaded, _scratch, data, mut worker) = one_worker(
        20_000,
        &[("DELINK__KAFKA__DEAD_LETTER_TOPIC", DEAD_LETTERS)],
    );
    wait_for_everything_committed(&tansu, &loaded, std::slice::from_ref(&worker));
    worker.stop();

    let input = &loaded.inputs[0];
    // Each broken record and its reason; an oversized one is kept (and sealed) up to a cap.
    let broken: Vec<(&[u8], &str)> = input
        .broken()
        .into_iter()
        .map(|(line, reason)| (input.lines[line as usize - 1].line.as_slice(), reason))
        .collect();
    let store = open_store(&data);
    let letters = read_topic(&tansu.bootstrap(), DEAD_LETTERS);
    assert_eq!(letters.len(), broken.len(), "one letter per broken record");
    assert_eq!(
        worker.counter("delink_dead_letter_records_total"),
        letters.len() as u64
    );
    let mut places = HashSet::new();
    for letter in &letters {
        let header = |name: &str| {
            letter
                .header(name)
                .unwrap_or_else(|| panic!("a letter without {name}"))
        };
        let segment = header("delink-segment");
        let position: u64 = header("delink-position").parse().expect("position");
        assert!(places.insert((segment.clone(), position)), "a letter twice");
        let opened = open_quarantined(
            &store,
            &header("delink-quarantine-day"),
            &segment,
            position,
            &letter.value,
        )
        .expect("the letter opens with the key store")
        .expect("the day's key exists");
        let record_bytes: usize = header("delink-record-bytes").parse().expect("size");
        let (original, reason) = broken
            .iter()
            .find(|(line, _)| line.len() == record_bytes && line.starts_with(&opened))
            .expect("a letter that is no broken record");
        assert_eq!(header("delink-reason"), *reason);
        if original.len() >= 16 {
            let head = &original[..16];
            assert!(
                !letter.value.windows(16).any(|window| window == head),
                "a letter carries its record in clear"
            );
        }
    }
    assert_exactly_once(&data, &loaded);
}

#[test]
fn a_real_prometheus_scrapes_a_worker_and_every_dashboard_query_and_alert_finds_its_series() {
    let (_tansu, loaded, _scratch, _data, mut worker) = one_worker(20_000, &[]);
    let prometheus = crate::monitoring::Prometheus::scraping(worker.admin());
    let total: i64 = loaded.ends.values().sum();
    let deadline = Instant::now() + PATIENCE;
    // Caught up, as Prometheus saw it, with a few scrapes since for the rates.
    let committed = format!("sum(delink_kafka_committed_offset) >= {total}");
    while prometheus.query(&committed).is_empty() {
        assert!(
            Instant::now() < deadline,
            "never caught up:\n{}",
            worker.output()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    std::thread::sleep(Duration::from_secs(5));
    crate::monitoring::assert_every_query_finds_its_series(&prometheus);
    worker.stop();
}
