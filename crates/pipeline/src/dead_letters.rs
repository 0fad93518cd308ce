//! Copies a segment's quarantine rows to the configured dead-letter destination.

use anyhow::{Context, Result, anyhow};
use arrow_array::cast::AsArray;
use arrow_array::types::UInt64Type;
use arrow_array::{Array, RecordBatch};
use delink_model::{DeadLetter, DeadLetters};

/// Sends every row of a quarantine batch (the quarantine schema) as a dead letter.
pub(crate) fn send_rows(
    destination: &dyn DeadLetters,
    quarantine_day: &str,
    rows: &RecordBatch,
) -> Result<()> {
    let column = |name: &str| {
        rows.column_by_name(name)
            .ok_or_else(|| anyhow!("a quarantine batch without its {name} column"))
    };
    let segments = column("segment")?.as_string::<i32>();
    let positions = column("position")?.as_primitive::<UInt64Type>();
    let reasons = column("reason")?.as_string::<i32>();
    let fields = column("field")?.as_string::<i32>();
    let record_bytes = column("record_bytes")?.as_primitive::<UInt64Type>();
    let sealed = column("sealed_record")?.as_binary::<i32>();
    for row in 0..rows.num_rows() {
        let letter = DeadLetter {
            segment: segments.value(row),
            position: positions.value(row),
            reason: reasons.value(row),
            field: fields.is_valid(row).then(|| fields.value(row)),
            quarantine_day,
            record_bytes: record_bytes.value(row),
            sealed: sealed.value(row),
        };
        destination
            .send(&letter)
            .map_err(|error| anyhow!(error))
            .context("cannot hand a quarantined record to the dead-letter destination")?;
    }
    Ok(())
}
