//! Runtime configuration of delink: paths, sizes and limits (not the field
//! policy, which is a separate file).
//!
//! Layers, later wins: built-in defaults, a TOML file, then `DELINK__SECTION__KEY`
//! environment variables; the binary applies its flags last. The design
//! decision to know: [`Config::validate`] checks everything without IO and
//! reports every problem at once.

mod layers;

use std::path::PathBuf;

use serde::Deserialize;

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
}

/// Configures how input is read.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InputConfig {
    /// Records per batch handed to a worker.
    pub batch_records: usize,
    /// Records per segment, the unit of publication (one file per partition and segment).
    pub segment_records: u64,
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
    /// Rows per row group (upper bound).
    pub row_group_rows: usize,
    /// zstd level, 1 (fastest) to 22.
    pub zstd_level: i32,
    /// Encoded row-group bytes buffered per output before the largest is flushed.
    pub buffer_budget_mib: usize,
}

/// Configures the key store.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KeystoreConfig {
    /// `embedded` (a file under the data directory); shared backends follow.
    pub backend: String,
    /// KEK file; `<data_dir>/keys/kek` when unset. `DELINK_KEK` takes precedence.
    pub kek_file: Option<PathBuf>,
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

/// Configures parallelism.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PipelineConfig {
    /// Decode/transform threads; 0 means one per core.
    pub workers: usize,
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
        }
    }
}

impl Default for InputConfig {
    fn default() -> Self {
        InputConfig {
            batch_records: 16384,
            segment_records: 1_000_000,
            max_record_bytes: 64 * 1024,
            replay_window: 2_000_000,
        }
    }
}

impl Default for OutputConfig {
    fn default() -> Self {
        OutputConfig {
            row_group_rows: 64 * 1024,
            zstd_level: 1,
            buffer_budget_mib: 8,
        }
    }
}

impl Default for KeystoreConfig {
    fn default() -> Self {
        KeystoreConfig {
            backend: "embedded".to_owned(),
            kek_file: None,
        }
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
            self.input.segment_records >= 1,
            "input.segment_records must be at least 1",
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
            self.keystore.backend == "embedded",
            "keystore.backend must be \"embedded\" (the only backend in this build)",
        );
        check(
            self.pipeline.workers <= 256,
            "pipeline.workers must be at most 256",
        );
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError { problems })
        }
    }

    /// Returns the KEK file in effect.
    pub fn kek_file(&self) -> PathBuf {
        self.keystore
            .kek_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join("keys").join("kek"))
    }

    /// Returns the number of worker threads in effect.
    pub fn workers(&self) -> usize {
        if self.pipeline.workers > 0 {
            return self.pipeline.workers;
        }
        std::thread::available_parallelism().map_or(2, usize::from)
    }
}

#[cfg(test)]
mod tests;
