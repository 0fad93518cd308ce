//! Shared fixtures: generated input, runs of the binary, Parquet read back.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Mutex, OnceLock, PoisonError};

use arrow_array::RecordBatch;
use arrow_cast::display::{ArrayFormatter, FormatOptions};
use delink_keystore::{EmbeddedKeyStore, Entity, KekSource, KeyStore};
use delink_synth::{Generated, Generator, SynthConfig, Truth};
use delink_transform::pseudonym_hex;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

/// The pseudonymisation context of `devices/` observation ids (shipped policy).
pub(crate) const DEVICES_OBSERVATION: &str = "delink pseudonym v1 devices/observation_id";

/// Path of the binary under test, with default keyrings kept under the test target dir.
pub(crate) fn delink() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_delink"));
    command.env(delink_config::KEYRING_DIR_ENV, keyring_dir());
    command
}

/// Where the tests' default keyrings live: apart from every data directory
/// (one file per data directory), never in the user's home.
pub(crate) fn keyring_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("keyrings")
}

/// The keyring file delink uses by default for the data directory `data`.
pub(crate) fn kek_path(data: &Path) -> PathBuf {
    let config = delink_config::Config {
        data_dir: data.to_path_buf(),
        keyring_dir: Some(keyring_dir()),
        ..delink_config::Config::default()
    };
    config.kek_file()
}

/// Runs the binary to completion, failing the test with its output when it fails.
pub(crate) fn run_ok(command: &mut Command) -> Output {
    let output = command.output().expect("the delink binary starts");
    assert!(
        output.status.success(),
        "delink failed: {}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// Runs `delink risk --json` on `data`: exit code, report, stderr.
pub(crate) fn risk(data: &Path) -> (i32, serde_json::Value, String) {
    let output = delink()
        .args(["risk", "--json"])
        .arg(data)
        .output()
        .expect("risk runs");
    let report = serde_json::from_slice(&output.stdout).expect("a JSON report");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    (output.status.code().unwrap_or(-1), report, stderr)
}

/// Generated input: the lines, what each was meant to be, and the file holding them.
pub(crate) struct Input {
    pub(crate) lines: Vec<Generated>,
    pub(crate) path: PathBuf,
    _dir: tempfile::TempDir,
}

impl Input {
    pub(crate) fn generate(count: u64, seed: u64, bad_fraction: f64) -> Input {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("input.ndjson");
        let lines: Vec<Generated> = Generator::new(SynthConfig {
            bad_fraction,
            ..SynthConfig::new(count, seed)
        })
        .collect();
        let mut bytes = Vec::new();
        for line in &lines {
            bytes.extend_from_slice(&line.line);
            bytes.push(b'\n');
        }
        std::fs::write(&path, bytes).expect("write input");
        Input {
            lines,
            path,
            _dir: dir,
        }
    }

    /// Valid, first-seen observations: (line number, observation id, has subject).
    pub(crate) fn first_valid(&self) -> Vec<(u64, String, bool)> {
        let mut seen = std::collections::HashSet::new();
        let mut found = Vec::new();
        for (index, line) in self.lines.iter().enumerate() {
            if let Truth::Valid {
                observation_id,
                has_subject,
                ..
            } = &line.truth
            {
                let normalised = observation_id.trim().to_lowercase();
                if seen.insert(normalised.clone()) {
                    found.push((index as u64 + 1, normalised, *has_subject));
                }
            }
        }
        found
    }

    /// The normalised charger serial of a valid line (numbered from 1).
    pub(crate) fn charger_serial(&self, line: u64) -> String {
        let value: serde_json::Value =
            serde_json::from_slice(&self.lines[line as usize - 1].line).expect("json");
        let serial = value
            .pointer("/charger/serial")
            .and_then(|serial| serial.as_str())
            .expect("a valid line has a charger serial");
        delink_decode::normalise_identifier(delink_model::Field::ChargerSerial, serial)
            .expect("a valid serial")
    }

    /// The `observed_at` of a valid line (numbered from 1), in microseconds since the epoch.
    pub(crate) fn observed_at_us(&self, line: u64) -> i64 {
        let value: serde_json::Value = serde_json::from_slice(&self.lines[line as usize - 1].line)
            .expect("a valid line is JSON");
        let text = value["observed_at"]
            .as_str()
            .expect("a valid line has observed_at");
        chrono::DateTime::parse_from_rfc3339(text)
            .expect("RFC 3339")
            .timestamp_micros()
    }

    /// The `devices/` observation pseudonyms of the valid first sightings, each
    /// under its charger's key of the observation's epoch (default configuration).
    pub(crate) fn devices_observation_pseudonyms(&self, store: &dyn KeyStore) -> Vec<String> {
        let mut keys: HashMap<(String, u32), [u8; 32]> = HashMap::new();
        self.first_valid()
            .iter()
            .map(|(line, id, _)| {
                let serial = self.charger_serial(*line);
                let epoch =
                    delink_config::Config::default().device_epoch(self.observed_at_us(*line));
                let key = keys
                    .entry((serial, epoch))
                    .or_insert_with_key(|(serial, epoch)| {
                        *store
                            .existing_key(&Entity::device(serial, *epoch))
                            .expect("store")
                            .expect("every charger has a key")
                            .expose()
                    });
                pseudonym_hex(key, DEVICES_OBSERVATION, id)
            })
            .collect()
    }

    /// Broken lines: (line number, expected reason).
    pub(crate) fn broken(&self) -> BTreeMap<u64, &'static str> {
        self.lines
            .iter()
            .enumerate()
            .filter_map(|(index, line)| match line.truth {
                Truth::Broken { reason } => Some((index as u64 + 1, reason)),
                Truth::Valid { .. } => None,
            })
            .collect()
    }
}

/// The generated 100k-observation input and two complete runs over it, shared by tests.
pub(crate) struct TwoRuns {
    pub(crate) input: Input,
    pub(crate) data: PathBuf,
    pub(crate) first: Snapshot,
    pub(crate) second: Snapshot,
    pub(crate) logs: Vec<u8>,
    pub(crate) summary: serde_json::Value,
    pub(crate) metrics: String,
    _dir: tempfile::TempDir,
}

pub(crate) fn two_runs() -> &'static TwoRuns {
    static RUNS: OnceLock<TwoRuns> = OnceLock::new();
    RUNS.get_or_init(|| {
        let input = Input::generate(100_000, 7, 0.015);
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        let summary_path = dir.path().join("summary.json");
        let metrics_path = dir.path().join("metrics.prom");
        let mut logs = Vec::new();
        let mut run = || {
            let output = run_ok(
                delink()
                    .arg("run")
                    .arg(&input.path)
                    .arg("--data-dir")
                    .arg(&data)
                    .args(["--segment-records", "40000", "--progress", "always"])
                    .arg("--summary-json")
                    .arg(&summary_path)
                    .arg("--metrics-file")
                    .arg(&metrics_path)
                    .env("RUST_LOG", "debug"),
            );
            logs.extend_from_slice(&output.stdout);
            logs.extend_from_slice(&output.stderr);
            Snapshot::read(&data)
        };
        let first = run();
        let second = run();
        let summary = serde_json::from_slice(&std::fs::read(&summary_path).expect("summary"))
            .expect("summary is json");
        let metrics = std::fs::read_to_string(&metrics_path).expect("metrics");
        TwoRuns {
            input,
            data,
            first,
            second,
            logs,
            summary,
            metrics,
            _dir: dir,
        }
    })
}

/// Every row of every visible Parquet file under a data directory, by output.
pub(crate) struct Snapshot {
    pub(crate) history: Vec<RecordBatch>,
    pub(crate) devices: Vec<RecordBatch>,
    pub(crate) quarantine: Vec<(String, RecordBatch)>,
}

impl Snapshot {
    pub(crate) fn read(data: &Path) -> Snapshot {
        Snapshot {
            history: visible_files(&data.join("history"))
                .iter()
                .map(|p| read_parquet(p))
                .collect(),
            devices: visible_files(&data.join("devices"))
                .iter()
                .map(|p| read_parquet(p))
                .collect(),
            quarantine: visible_files(&data.join("quarantine"))
                .iter()
                .map(|p| (partition_date(p), read_parquet(p)))
                .collect(),
        }
    }
}

fn partition_date(path: &Path) -> String {
    let dir = path
        .parent()
        .and_then(Path::file_name)
        .expect("partition dir");
    dir.to_string_lossy().trim_start_matches("date=").to_owned()
}

/// Lists files in the partition directories of an output root (dot-directories skipped).
pub(crate) fn visible_files(root: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let Ok(partitions) = std::fs::read_dir(root) else {
        return files;
    };
    for partition in partitions {
        let partition = partition.expect("entry").path();
        let name = partition
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        if name.starts_with('.') {
            continue;
        }
        assert!(
            name.starts_with("date="),
            "unexpected entry {}",
            partition.display()
        );
        for file in std::fs::read_dir(&partition).expect("partition") {
            files.push(file.expect("entry").path());
        }
    }
    files.sort();
    files
}

/// Reads a whole Parquet file into one batch.
pub(crate) fn read_parquet(path: &Path) -> RecordBatch {
    let file = File::open(path).expect("open parquet");
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap_or_else(|e| panic!("{} is not readable parquet: {e}", path.display()))
        .build()
        .expect("reader");
    let batches: Vec<RecordBatch> = reader.map(|b| b.expect("batch")).collect();
    let schema = batches
        .first()
        .map(|b| b.schema())
        .expect("at least one batch");
    arrow_select::concat::concat_batches(&schema, &batches).expect("concat")
}

/// Renders every cell of a column as text (lists as `[a, b]`, nulls as empty).
pub(crate) fn column_text(batch: &RecordBatch, name: &str) -> Vec<String> {
    let mut column = batch
        .column_by_name(name)
        .unwrap_or_else(|| panic!("column {name}"))
        .clone();
    if matches!(column.data_type(), arrow_schema::DataType::Timestamp(..)) {
        // Shown as microseconds: formatting named time zones needs chrono-tz.
        column = arrow_cast::cast(&column, &arrow_schema::DataType::Int64).expect("cast");
    }
    let formatter =
        ArrayFormatter::try_new(column.as_ref(), &FormatOptions::default()).expect("formatter");
    (0..batch.num_rows())
        .map(|row| formatter.value(row).to_string())
        .collect()
}

/// Renders every column of a batch as text, in schema order.
pub(crate) fn columns_text(batch: &RecordBatch) -> Vec<Vec<String>> {
    batch
        .schema()
        .fields()
        .iter()
        .map(|field| column_text(batch, field.name()))
        .collect()
}

/// Renders every row of a set of batches as one line of text, sorted.
pub(crate) fn sorted_rows(batches: &[RecordBatch]) -> Vec<String> {
    let mut rows = Vec::new();
    for batch in batches {
        let columns = columns_text(batch);
        for row in 0..batch.num_rows() {
            rows.push(
                columns
                    .iter()
                    .map(|c| c[row].as_str())
                    .collect::<Vec<_>>()
                    .join("|"),
            );
        }
    }
    rows.sort();
    rows
}

/// Opens the key store a run left behind, with the KEK it generated.
pub(crate) fn open_store(data: &Path) -> EmbeddedKeyStore {
    EmbeddedKeyStore::open(&data.join("keys"), &KekSource::File(kek_path(data)))
        .expect("key store opens with its KEK")
}

/// A Python with pyarrow and duckdb, installed on first use by tests/support/python-env.sh.
pub(crate) fn python() -> PathBuf {
    let python = test_venv().join("bin/python");
    let ready = python.exists()
        && Command::new(&python)
            .args(["-c", "import pyarrow, duckdb"])
            .status()
            .is_ok_and(|s| s.success());
    if !ready {
        install_test_venv();
    }
    python
}

/// `target/test-venv`: the readers, broker and S3 server the tests run beside the binary.
pub(crate) fn test_venv() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/test-venv")
}

/// Runs tests/support/python-env.sh (idempotent), one test at a time.
pub(crate) fn install_test_venv() {
    static INSTALLING: Mutex<()> = Mutex::new(());
    let _one_at_a_time = INSTALLING.lock().unwrap_or_else(PoisonError::into_inner);
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/support/python-env.sh");
    let status = Command::new("bash")
        .arg(script)
        .status()
        .expect("bash runs");
    assert!(status.success(), "tests/support/python-env.sh failed");
}
