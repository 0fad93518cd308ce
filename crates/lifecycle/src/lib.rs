//! The key and data lifecycle (privacy model, "erasure = crypto-shredding,
//! and rotation closes the backups"): erasure requests, KEK rotation and
//! retirement, the retention job, and subject access exports.
//!
//! The design decision to know: an erasure first records the erased
//! subject's history pseudonyms (the retention job needs them to find the
//! rows, and they cannot be computed once the key is gone), then deletes the
//! keys, then journals what it did. Each step is durable before the next.

mod erase;
mod export;
mod history;
mod kek;
mod pending;
mod retention;
mod subject;

pub use erase::{ErasureReport, Target, erase, parse_targets};
pub use export::{ExportReport, export_subject};
pub use kek::{
    BACKUP_WINDOW, ErasureStatus, KekVersionStatus, KeyStatus, RetireReport, RotationReport,
    key_status, purge_device_epochs, retire, rotate,
};
pub use retention::{RetentionReport, retention};
pub use subject::SubjectRef;

/// Returns the current Unix time in seconds.
pub(crate) fn unix_now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Formats Unix seconds as an RFC 3339 UTC timestamp.
pub fn format_time(unix_seconds: i64) -> String {
    chrono::DateTime::from_timestamp(unix_seconds, 0)
        .map(|moment| moment.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(|| unix_seconds.to_string())
}
