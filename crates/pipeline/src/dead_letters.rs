//! Copies a segment's quarantine rows to the configured dead-letter destination.

use anyhow::{Context, Result, anyhow};
use arrow_array::{Array, RecordBatch};
use delink_datadir::QuarantineColumns;
use delink_model::{DeadLetter, DeadLetters};

/// Sends every row of a quarantine batch (the quarantine schema) as a dead letter.
pub(crate) fn send_rows(
    destination: &dyn DeadLetters,
    quarantine_day: &str,
    rows: &RecordBatch,
) -> Result<()> {
    let columns = QuarantineColumns::of(rows)?;
    for row in 0..rows.num_rows() {
        let letter = DeadLetter {
            segment: columns.segments.value(row),
            position: columns.positions.value(row),
            reason: columns.reasons.value(row),
            field: columns
                .fields
                .is_valid(row)
                .then(|| columns.fields.value(row)),
            quarantine_day,
            record_bytes: columns.record_bytes.value(row),
            sealed: columns.sealed.value(row),
        };
        destination
            .send(&letter)
            .map_err(|error| anyhow!(error))
            .context("cannot hand a quarantined record to the dead-letter destination")?;
    }
    Ok(())
}
