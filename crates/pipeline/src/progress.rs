use std::collections::BTreeMap;

use delink_model::{Dataset, RejectionReason};
use delink_telemetry::{Metrics, Output};

/// Counts what a run has done so far; shown as progress and in the summary.
///
/// Read off the [`Metrics`] registry, the one place where counts live, so the
/// summary, the progress line and `/metrics` always agree.
#[derive(Debug, Clone, Default)]
pub struct Progress {
    /// Records read (blank lines excluded).
    pub records: u64,
    /// Input bytes read.
    pub input_bytes: u64,
    /// Blank lines skipped.
    pub blank_lines: u64,
    /// Replays dropped because their `observation_id` was already written.
    pub duplicates: u64,
    /// Rows published to `history/`.
    pub history_rows: u64,
    /// Rows published to `devices/`.
    pub devices_rows: u64,
    /// Records quarantined, by reason.
    pub rejected: BTreeMap<RejectionReason, u64>,
    /// Unknown fields seen, by sanitised name (capped like the metric's labels).
    pub unknown_fields: BTreeMap<String, u64>,
    /// Kept values left out for being outside their domain, as `dataset field reason`.
    pub withheld: BTreeMap<String, u64>,
    /// Files published.
    pub files_published: u64,
    /// Segments published.
    pub segments_published: u64,
}

impl Progress {
    /// Reads the counts off the metrics.
    pub fn of(metrics: &Metrics) -> Self {
        let rows = |dataset: Dataset| {
            metrics
                .rows_written
                .with_label_values(&[dataset.as_str()])
                .get()
        };
        let rejected = RejectionReason::ALL
            .into_iter()
            .map(|reason| {
                let count = metrics
                    .records_rejected
                    .with_label_values(&[reason.as_str()])
                    .get();
                (reason, count)
            })
            .filter(|(_, count)| *count > 0)
            .collect();
        let files_published = Output::ALL
            .into_iter()
            .map(|output| {
                metrics
                    .files_published
                    .with_label_values(&[output.as_str()])
                    .get()
            })
            .sum();
        Progress {
            records: metrics.records_received.get(),
            input_bytes: metrics.input_bytes.get(),
            blank_lines: metrics.blank_lines.get(),
            duplicates: metrics.records_duplicate.get(),
            history_rows: rows(Dataset::History),
            devices_rows: rows(Dataset::Devices),
            rejected,
            unknown_fields: metrics.unknown_field_counts(),
            withheld: metrics.withheld_counts(),
            files_published,
            segments_published: metrics.segments_published.get(),
        }
    }

    /// Returns the number of quarantined records.
    pub fn quarantined(&self) -> u64 {
        self.rejected.values().sum()
    }

    /// Returns the number of valid observations (replays included).
    pub fn valid(&self) -> u64 {
        self.records - self.quarantined()
    }
}
