//! Names every directory under the data directory, and the UTC-day partitions.

use std::path::{Path, PathBuf};

use delink_model::Dataset;

/// Names every directory under the data directory.
#[derive(Debug, Clone)]
pub struct DataLayout {
    root: PathBuf,
}

impl DataLayout {
    /// Lays out `root` (nothing is created here).
    pub fn new(root: &Path) -> Self {
        DataLayout {
            root: root.to_path_buf(),
        }
    }

    /// Returns the root of one dataset (`history/` or `devices/`).
    pub fn dataset(&self, dataset: Dataset) -> PathBuf {
        self.root.join(dataset.as_str())
    }

    /// Returns the root of the quarantine.
    pub fn quarantine(&self) -> PathBuf {
        self.root.join("quarantine")
    }

    /// Returns the root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Returns the directory of the retention job's state (erasures not yet applied).
    pub fn retention(&self) -> PathBuf {
        self.root.join("retention")
    }

    /// Returns the directory of the embedded key store.
    pub fn keys(&self) -> PathBuf {
        self.root.join("keys")
    }

    /// Returns the directory of resumable sources' published positions.
    pub fn checkpoints(&self) -> PathBuf {
        self.root.join("_checkpoints")
    }

    /// Returns the directory holding each worker's own space (staging, watermark).
    /// Its name starts with `_`, so readers that glob the datasets never see it.
    pub fn workers(&self) -> PathBuf {
        self.root.join("_workers")
    }
}

/// Names the Hive partition directory of a UTC day (days since the Unix epoch).
pub fn date_partition(day: i32) -> String {
    format!("date={}", format_day(day))
}

/// Formats a UTC day (days since 1970-01-01) as `YYYY-MM-DD`.
pub fn format_day(day: i32) -> String {
    chrono::DateTime::from_timestamp(i64::from(day) * 86_400, 0)
        .map(|moment| moment.date_naive())
        .unwrap_or_default()
        .format("%Y-%m-%d")
        .to_string()
}

/// Returns the UTC day of a timestamp in microseconds.
pub fn utc_day(micros: i64) -> i32 {
    // Days since 1970 fit an i32 for any timestamp chrono accepts.
    i32::try_from(micros.div_euclid(86_400_000_000)).unwrap_or(i32::MAX)
}

/// Parses `YYYY-MM-DD` into a UTC day (days since 1970).
pub fn parse_day(date: &str) -> Option<i32> {
    let midnight = chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d")
        .ok()?
        .and_hms_opt(0, 0, 0)?;
    Some(utc_day(midnight.and_utc().timestamp_micros()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_name_their_utc_date() {
        assert_eq!(
            date_partition(utc_day(1_795_178_712_345_000)),
            "date=2026-11-20"
        );
        assert_eq!(date_partition(utc_day(-1)), "date=1969-12-31");
        assert_eq!(
            parse_day("2026-11-20"),
            Some(utc_day(1_795_178_712_345_000))
        );
        assert_eq!(parse_day("2026-13-01"), None);
    }
}
