//! Runtime configuration of delink: paths, sizes and limits (not the field
//! policy, which is a separate file).
//!
//! Layers, later wins: built-in defaults, a TOML file, then `DELINK__SECTION__KEY`
//! environment variables; the binary applies its flags last. The design
//! decision to know: [`Config::validate`] checks everything without IO and
//! reports every problem at once.

mod kafka;
mod layers;

use std::path::{Path, PathBuf};

use serde::Deserialize;

pub use kafka::{ASSIGNMENT_STRATEGIES, KafkaConfig, RESERVED_KAFKA_PROPERTIES};
pub use layers::{ENV_PREFIX, load};

/// Holds the whole runtime configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Format version; only `1` exists.
    pub version: u32,
    /// Root of everything delink writes: `history/`, `devices/`, `quarantine/`, `keys/`.
    pub data_dir: PathBuf,
    /// Field policy file; the built-in policy (`config/policy.toml`) when unset.
    pub policy_file: Option<PathBuf>,
    /// Input reading.
    pub input: InputConfig,
    /// Parquet layout.
    pub output: OutputConfig,
    /// Key store.
    pub keystore: KeystoreConfig,
    /// Quarantine of rejected records.
    pub quarantine: QuarantineConfig,
    /// Parallelism.
    pub pipeline: PipelineConfig,
    /// Retention of `history/` (the `delink retention` job).
    pub retention: RetentionConfig,
    /// The admin HTTP server (`/metrics`, `/healthz`, `/readyz`).
    pub admin: AdminConfig,
    /// The Kafka source of stream workers (`delink run --kafka`).
    pub kafka: KafkaConfig,
    /// Limits of `delink risk`.
    pub risk: RiskConfig,
    /// Where default keyrings live, from the environment (see [`Config::kek_file`]).
    #[serde(skip)]
    pub keyring_dir: Option<PathBuf>,
}

/// Configures the admin HTTP server of `delink run`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// Address to serve `/metrics`, `/healthz` and `/readyz` on, e.g. `0.0.0.0:9464`
    /// (port 0 picks a free one); unset = no server.
    pub listen: Option<std::net::SocketAddr>,
}

/// Configures how input is read.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InputConfig {
    /// Records per batch handed to a worker.
    pub batch_records: usize,
    /// Kept bytes per batch handed to a worker: with the channel depths, this bounds
    /// the memory taken by records in flight, whatever their size.
    pub batch_bytes: usize,
    /// Records per segment, the unit of publication (one file per partition and segment).
    pub segment_records: u64,
    /// A segment of stdin also closes once this many seconds old, so a slow stream publishes.
    pub stream_segment_age_secs: u64,
    /// Records longer than this are rejected as `too_large`.
    pub max_record_bytes: usize,
    /// Distinct observation ids remembered for replay detection: a replay is written
    /// once when its first occurrence is among the last `replay_window` to
    /// `replay_window / 2` distinct ids. Costs about 36 bytes per id at most.
    pub replay_window: usize,
}

/// Configures the Parquet files.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutputConfig {
    /// Where `history/`, `devices/` and `quarantine/` are published: an object-store
    /// URL (`s3://bucket/prefix`, `gs://…`, `az://…`) or `file:///path`; the data
    /// directory when unset. Credentials come from the environment, never from here.
    pub location: Option<String>,
    /// Rows per row group (upper bound).
    pub row_group_rows: usize,
    /// zstd level, 1 (fastest) to 22.
    pub zstd_level: i32,
    /// Encoded row-group bytes buffered per output before the largest is flushed.
    pub buffer_budget_mib: usize,
}

/// Configures the key store.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KeystoreConfig {
    /// `embedded` (a file under `<data_dir>/keys`) or `postgres` (shared by many workers).
    pub backend: String,
    /// Connection string of the `postgres` backend, e.g.
    /// `host=127.0.0.1 user=delink dbname=delink`; `DELINK_POSTGRES_URL` takes precedence.
    pub postgres_url: Option<String>,
    /// Keyring (KEK) file, kept apart from the data directory; when unset, a
    /// per-user file (see [`Config::kek_file`]). `DELINK_KEK` takes precedence.
    pub kek_file: Option<PathBuf>,
    /// How often a running worker looks for erasures in the store, in milliseconds.
    pub refresh_interval_ms: u64,
    /// The bound announced by `delink erase`: every worker stops using an erased key
    /// at most this many seconds after the erasure is stored.
    pub erasure_propagation_secs: u64,
    /// Device keys rotate every this many days of observation time; 0 = one key per device.
    pub device_epoch_days: u32,
    /// Device keys of an epoch are destroyed by `delink keys retire` this many days after the epoch ends.
    pub device_epoch_retention_days: u32,
}

impl std::fmt::Debug for KeystoreConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeystoreConfig")
            .field("backend", &self.backend)
            .field(
                "postgres_url",
                &self.postgres_url.as_ref().map(|_| "<redacted>"),
            )
            .field("kek_file", &self.kek_file)
            .field("refresh_interval_ms", &self.refresh_interval_ms)
            .field("erasure_propagation_secs", &self.erasure_propagation_secs)
            .field("device_epoch_days", &self.device_epoch_days)
            .field(
                "device_epoch_retention_days",
                &self.device_epoch_retention_days,
            )
            .finish()
    }
}

/// Configures how long `history/` is kept.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionConfig {
    /// `history/` partitions older than this many days are deleted; 0 = no age limit
    /// (erased subjects' rows are removed regardless).
    pub history_days: u32,
}

/// Configures the limits `delink risk` holds the outputs to.
#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RiskConfig {
    /// Largest share of history rows that may match exactly one devices row.
    pub max_unique_join_rate: f64,
    /// Largest share of history chargers a sequence alignment may link.
    pub max_sequence_link_rate: f64,
    /// Largest share of device pseudonyms a lifetime counter may link across a key change.
    pub max_counter_link_rate: f64,
    /// The k a device profile needs (distinct chargers sharing it on a day).
    pub k: usize,
    /// Smallest share of devices rows whose profile has at least `k` chargers.
    pub min_k_anonymous_share: f64,
    /// How far a counter may move between two pseudonyms and still count as continued, in Wh.
    pub counter_tolerance_wh: f64,
    /// `delink run` assesses the data directory when it finishes, and stream
    /// workers at every housekeeping pass: figures in the summary and `/metrics`.
    pub assess_after_run: bool,
}

impl Default for RiskConfig {
    fn default() -> Self {
        RiskConfig {
            max_unique_join_rate: 0.05,
            max_sequence_link_rate: 0.05,
            max_counter_link_rate: 0.05,
            k: 10,
            min_k_anonymous_share: 0.99,
            counter_tolerance_wh: 50_000.0,
            assess_after_run: true,
        }
    }
}

/// Configures the quarantine.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QuarantineConfig {
    /// Days a quarantined record is kept (at most 35, the backup window).
    pub retention_days: u32,
    /// Bytes of an oversized record kept in the quarantine.
    pub keep_bytes: usize,
}

/// Configures parallelism and shutdown.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PipelineConfig {
    /// Decode/transform threads; 0 means one per core.
    pub workers: usize,
    /// After SIGTERM or SIGINT, the time allowed to publish what was read and exit;
    /// past it the process exits with code 4. Keep it below Kubernetes'
    /// `terminationGracePeriodSeconds`.
    pub shutdown_timeout_secs: u64,
    /// How often a running worker purges the quarantine days and device-key
    /// epochs past their retention (also done at the start and end of a run).
    pub housekeeping_interval_secs: u64,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            workers: 0,
            shutdown_timeout_secs: 25,
            housekeeping_interval_secs: 600,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            version: 1,
            data_dir: PathBuf::from("delink-data"),
            policy_file: None,
            input: InputConfig::default(),
            output: OutputConfig::default(),
            keystore: KeystoreConfig::default(),
            quarantine: QuarantineConfig::default(),
            pipeline: PipelineConfig::default(),
            retention: RetentionConfig::default(),
            admin: AdminConfig::default(),
            kafka: KafkaConfig::default(),
            risk: RiskConfig::default(),
            keyring_dir: None,
        }
    }
}

impl Default for InputConfig {
    fn default() -> Self {
        InputConfig {
            batch_records: 16384,
            batch_bytes: 8 * 1024 * 1024,
            segment_records: 1_000_000,
            stream_segment_age_secs: 30,
            max_record_bytes: 64 * 1024,
            replay_window: 2_000_000,
        }
    }
}

impl Default for OutputConfig {
    fn default() -> Self {
        OutputConfig {
            location: None,
            row_group_rows: 128 * 1024,
            zstd_level: 1,
            buffer_budget_mib: 8,
        }
    }
}

impl Default for KeystoreConfig {
    fn default() -> Self {
        KeystoreConfig {
            backend: "embedded".to_owned(),
            postgres_url: None,
            kek_file: None,
            refresh_interval_ms: 1000,
            erasure_propagation_secs: 5,
            device_epoch_days: 1,
            device_epoch_retention_days: 35,
        }
    }
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig { history_days: 1825 }
    }
}

impl Default for QuarantineConfig {
    fn default() -> Self {
        QuarantineConfig {
            retention_days: 35,
            keep_bytes: 1024 * 1024,
        }
    }
}

/// Lists every problem found in a configuration.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("configuration refused:\n  - {}", .problems.join("\n  - "))]
pub struct ConfigError {
    /// One line per problem.
    pub problems: Vec<String>,
}

impl Config {
    /// Checks every limit, without IO, and reports all problems at once.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut problems = Vec::new();
        let mut check = |ok: bool, problem: &str| {
            if !ok {
                problems.push(problem.to_owned());
            }
        };
        check(self.version == 1, "version must be 1");
        check(
            self.input.batch_records >= 1,
            "input.batch_records must be at least 1",
        );
        check(
            (64 * 1024..=256 * 1024 * 1024).contains(&self.input.batch_bytes),
            "input.batch_bytes must be between 64 KiB and 256 MiB",
        );
        check(
            self.input.segment_records >= 1,
            "input.segment_records must be at least 1",
        );
        check(
            (1..=86_400).contains(&self.input.stream_segment_age_secs),
            "input.stream_segment_age_secs must be 1..=86400",
        );
        check(
            (1024..=64 * 1024 * 1024).contains(&self.input.max_record_bytes),
            "input.max_record_bytes must be between 1 KiB and 64 MiB",
        );
        check(
            self.input.replay_window >= 2,
            "input.replay_window must be at least 2",
        );
        check(
            self.quarantine.keep_bytes > self.input.max_record_bytes,
            "quarantine.keep_bytes must exceed input.max_record_bytes",
        );
        check(
            (1..=35).contains(&self.quarantine.retention_days),
            "quarantine.retention_days must be 1..=35 (the privacy policy keeps logs at most 5 weeks)",
        );
        check(
            (1..=22).contains(&self.output.zstd_level),
            "output.zstd_level must be 1..=22",
        );
        check(
            self.output.row_group_rows >= 1024,
            "output.row_group_rows must be at least 1024",
        );
        check(
            self.output.buffer_budget_mib >= 1,
            "output.buffer_budget_mib must be at least 1",
        );
        check(
            ["embedded", "postgres"].contains(&self.keystore.backend.as_str()),
            "keystore.backend must be \"embedded\" or \"postgres\"",
        );
        check(
            self.keystore.backend != "postgres"
                || self.keystore.postgres_url.is_some()
                || std::env::var_os(POSTGRES_URL_ENV).is_some(),
            "keystore.postgres_url (or DELINK_POSTGRES_URL) must be set for the postgres backend",
        );
        check(
            (10..=60_000).contains(&self.keystore.refresh_interval_ms),
            "keystore.refresh_interval_ms must be 10..=60000",
        );
        check(
            self.keystore.refresh_interval_ms < self.keystore.erasure_propagation_secs * 1000,
            "keystore.erasure_propagation_secs must exceed keystore.refresh_interval_ms",
        );
        check(
            self.keystore.device_epoch_days <= 3650,
            "keystore.device_epoch_days must be at most 3650 (0 turns epochs off)",
        );
        check(
            self.pipeline.workers <= 256,
            "pipeline.workers must be at most 256",
        );
        check(
            (1..=3600).contains(&self.pipeline.shutdown_timeout_secs),
            "pipeline.shutdown_timeout_secs must be 1..=3600",
        );
        check(
            (1..=86_400).contains(&self.pipeline.housekeeping_interval_secs),
            "pipeline.housekeeping_interval_secs must be 1..=86400",
        );
        let rate = |value: f64| (0.0..=1.0).contains(&value);
        check(
            rate(self.risk.max_unique_join_rate)
                && rate(self.risk.max_sequence_link_rate)
                && rate(self.risk.max_counter_link_rate)
                && rate(self.risk.min_k_anonymous_share),
            "risk.max_*_rate and risk.min_k_anonymous_share must be shares in 0..=1",
        );
        check((1..=1000).contains(&self.risk.k), "risk.k must be 1..=1000");
        check(
            self.risk.counter_tolerance_wh.is_finite() && self.risk.counter_tolerance_wh >= 0.0,
            "risk.counter_tolerance_wh must be a non-negative number",
        );
        self.kafka.check(
            self.pipeline.shutdown_timeout_secs,
            self.input.replay_window,
            &mut problems,
        );
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError { problems })
        }
    }

    /// Returns the keyring file in effect: `keystore.kek_file`; else a keyring
    /// an older release generated at `<data_dir>/keys/kek`, while one is there;
    /// else `<keyring dir>/<data dir name>-<16 hex of its absolute path>.kek`,
    /// where the keyring dir is `DELINK_KEYRING_DIR`, else
    /// `$XDG_CONFIG_HOME/delink/keyrings`, else `~/.config/delink/keyrings`.
    /// So a backup of the data directory never holds the KEK that unwraps it.
    pub fn kek_file(&self) -> PathBuf {
        if let Some(path) = &self.keystore.kek_file {
            return path.clone();
        }
        let legacy = self.data_dir.join("keys").join("kek");
        if legacy.exists() {
            return legacy;
        }
        let dir = self
            .keyring_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(".delink-keyrings"));
        let absolute =
            std::path::absolute(&self.data_dir).unwrap_or_else(|_| self.data_dir.clone());
        let digest = blake3::hash(absolute.as_os_str().as_encoded_bytes()).to_hex();
        let name: String = absolute
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default()
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .take(64)
            .collect();
        dir.join(format!("{name}-{}.kek", &digest[..16]))
    }

    /// Tells whether the keyring in effect is a file inside the data directory,
    /// where every backup of the data would carry it (and undo crypto-shredding).
    pub fn kek_inside_data_dir(&self) -> bool {
        let kek_from_env = std::env::var(KEK_ENV).is_ok_and(|text| !text.trim().is_empty());
        if kek_from_env {
            return false;
        }
        let absolute = |path: &Path| {
            let path = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
            path.canonicalize().unwrap_or(path)
        };
        let kek = self.kek_file();
        let kek = match kek.parent() {
            Some(parent) => absolute(parent).join(kek.file_name().unwrap_or_default()),
            None => absolute(&kek),
        };
        kek.starts_with(absolute(&self.data_dir))
    }

    /// Returns the connection string of the `postgres` backend in effect.
    pub fn postgres_url(&self) -> Option<String> {
        std::env::var(POSTGRES_URL_ENV)
            .ok()
            .filter(|url| !url.trim().is_empty())
            .or_else(|| self.keystore.postgres_url.clone())
    }

    /// Returns the device-key epoch of an observation time (µs); 0 when epochs are off.
    pub fn device_epoch(&self, observed_at_us: i64) -> u32 {
        device_epoch(self.keystore.device_epoch_days, observed_at_us)
    }

    /// Returns the number of worker threads in effect.
    pub fn workers(&self) -> usize {
        if self.pipeline.workers > 0 {
            return self.pipeline.workers;
        }
        std::thread::available_parallelism().map_or(2, usize::from)
    }
}

/// Environment variable that may carry the `postgres` backend's connection string.
pub const POSTGRES_URL_ENV: &str = "DELINK_POSTGRES_URL";

/// The environment variable that may carry the keyring itself (read by the key store).
const KEK_ENV: &str = "DELINK_KEK";

/// The environment variable naming the directory of default keyrings.
pub const KEYRING_DIR_ENV: &str = "DELINK_KEYRING_DIR";

/// Numbers device-key epochs from 1: epoch `n` covers days `[(n-1)·d, n·d)` since 1970.
pub fn device_epoch(epoch_days: u32, observed_at_us: i64) -> u32 {
    if epoch_days == 0 {
        return 0;
    }
    let day = observed_at_us.div_euclid(86_400_000_000).max(0);
    u32::try_from(day / i64::from(epoch_days) + 1).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests;
