use std::collections::BTreeMap;

use delink_model::RejectionReason;

/// Counts what a run has done so far; shown as progress and in the summary.
#[derive(Debug, Clone, Default)]
pub struct Progress {
    /// Records read (blank lines excluded).
    pub records: u64,
    /// Input bytes read.
    pub input_bytes: u64,
    /// Blank lines skipped.
    pub blank_lines: u64,
    /// Valid observations (replays included).
    pub valid: u64,
    /// Replays dropped because their `observation_id` was already written.
    pub duplicates: u64,
    /// Rows written to `history/`.
    pub history_rows: u64,
    /// Rows written to `devices/`.
    pub devices_rows: u64,
    /// Records quarantined, by reason.
    pub rejected: BTreeMap<RejectionReason, u64>,
    /// Unknown fields seen, by sanitised name.
    pub unknown_fields: BTreeMap<String, u64>,
    /// Files published.
    pub files_published: u64,
    /// Segments published.
    pub segments_published: u64,
}

impl Progress {
    /// Returns the number of quarantined records.
    pub fn quarantined(&self) -> u64 {
        self.rejected.values().sum()
    }
}
