//! The quarantine: every rejected record, encrypted, with a reason that names no personal data.
//!
//! Rows live under `quarantine/date=<day>/`, where the day is the UTC day a
//! segment was first quarantined: a segment that is processed again (a re-run,
//! a replay after a crash) goes back to the day and file it had, so re-running
//! never adds quarantine rows, whatever the clock says. The raw bytes are
//! sealed (XChaCha20-Poly1305) under a key per quarantine day, bound to the
//! record's segment and position, so an operator holding the key store can
//! inspect and replay them, and nobody else can read them.

pub(crate) mod inspect;
pub(crate) mod redact;

use std::fs;
use std::path::Path;
use std::sync::Arc;

use arrow_array::builder::{BinaryBuilder, StringBuilder, UInt64Builder};
use arrow_array::cast::AsArray;
use arrow_array::types::UInt64Type;
use arrow_array::{ArrayRef, BinaryArray, RecordBatch, StringArray, UInt64Array};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use delink_keystore::{Entity, EntityKey, KeyStore, Result, open_sealed, seal};
use delink_model::Scope;
use delink_model::{RawRecord, Rejection};

use crate::{parse_day, purge_expired};

/// Builds the schema of quarantine files.
pub fn quarantine_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("segment", DataType::Utf8, false),
        Field::new("position", DataType::UInt64, false),
        Field::new("reason", DataType::Utf8, false),
        Field::new("field", DataType::Utf8, true),
        Field::new("record_bytes", DataType::UInt64, false),
        Field::new("kept_bytes", DataType::UInt64, false),
        Field::new("sealed_record", DataType::Binary, false),
    ]))
}

/// The columns of a quarantine batch, typed; how every reader of the quarantine sees it.
pub struct QuarantineColumns<'a> {
    /// `segment`: the input segment a record was read in.
    pub segments: &'a StringArray,
    /// `position`: its position in the source.
    pub positions: &'a UInt64Array,
    /// `reason`: why it was rejected.
    pub reasons: &'a StringArray,
    /// `field`: the schema field the rejection names, if any.
    pub fields: &'a StringArray,
    /// `record_bytes`: its full length.
    pub record_bytes: &'a UInt64Array,
    /// `sealed_record`: the kept bytes, sealed.
    pub sealed: &'a BinaryArray,
}

impl<'a> QuarantineColumns<'a> {
    /// Reads the columns of `batch`; fails when it is not a quarantine batch.
    pub fn of(batch: &'a RecordBatch) -> anyhow::Result<Self> {
        let column = |name: &str| {
            batch
                .column_by_name(name)
                .ok_or_else(|| anyhow::anyhow!("a quarantine batch without its {name} column"))
        };
        let strings = |name: &str| {
            column(name)?
                .as_string_opt::<i32>()
                .ok_or_else(|| anyhow::anyhow!("quarantine column {name} is not text"))
        };
        let numbers = |name: &str| {
            column(name)?
                .as_primitive_opt::<UInt64Type>()
                .ok_or_else(|| anyhow::anyhow!("quarantine column {name} is not a count"))
        };
        Ok(QuarantineColumns {
            segments: strings("segment")?,
            positions: numbers("position")?,
            reasons: strings("reason")?,
            fields: strings("field")?,
            record_bytes: numbers("record_bytes")?,
            sealed: column("sealed_record")?
                .as_binary_opt::<i32>()
                .ok_or_else(|| anyhow::anyhow!("quarantine column sealed_record is not binary"))?,
        })
    }
}

/// Seals rejected records under the quarantine key of their day.
pub struct QuarantineSealer {
    /// The day's key.
    pub key: EntityKey,
}

impl QuarantineSealer {
    /// Seals one rejected record and appends its row.
    pub fn push(
        &self,
        rows: &mut QuarantineRows,
        record: &RawRecord,
        kept: &[u8],
        rejection: Rejection,
    ) -> Result<()> {
        let aad = sealing_context(&rows.segment, record.position);
        let sealed = seal(&self.key, aad.as_bytes(), kept)?;
        rows.segments.append_value(&rows.segment);
        rows.positions.append_value(record.position);
        rows.reasons.append_value(rejection.reason.as_str());
        rows.fields.append_option(rejection.field);
        rows.record_bytes.append_value(record.full_len);
        rows.kept_bytes.append_value(kept.len() as u64);
        rows.sealed.append_value(sealed);
        rows.count += 1;
        Ok(())
    }
}

/// Decrypts a quarantined record: `day` is its partition date (`YYYY-MM-DD`), `segment`
/// and `position` its row's columns. Fails when the day's key is gone or the row was altered.
pub fn open_quarantined(
    store: &dyn KeyStore,
    day: &str,
    segment: &str,
    position: u64,
    sealed: &[u8],
) -> Result<Option<Vec<u8>>> {
    let Some(key) = store.existing_key(&day_key(day))? else {
        return Ok(None);
    };
    open_sealed(&key, sealing_context(segment, position).as_bytes(), sealed).map(Some)
}

/// Returns the associated data a quarantined record is sealed with.
fn sealing_context(segment: &str, position: u64) -> String {
    format!("delink quarantine v1 {segment}/{position}")
}

/// Accumulates quarantine rows of one batch.
pub struct QuarantineRows {
    segment: String,
    segments: StringBuilder,
    positions: UInt64Builder,
    reasons: StringBuilder,
    fields: StringBuilder,
    record_bytes: UInt64Builder,
    kept_bytes: UInt64Builder,
    sealed: BinaryBuilder,
    count: usize,
}

impl QuarantineRows {
    /// Starts the rows of one batch of `segment` (its stem).
    pub fn new(segment: &str) -> Self {
        QuarantineRows {
            segment: segment.to_owned(),
            segments: StringBuilder::new(),
            positions: UInt64Builder::new(),
            reasons: StringBuilder::new(),
            fields: StringBuilder::new(),
            record_bytes: UInt64Builder::new(),
            kept_bytes: UInt64Builder::new(),
            sealed: BinaryBuilder::new(),
            count: 0,
        }
    }

    /// Hands out the rows, or `None` when the batch had no rejection.
    pub fn finish(mut self) -> Option<RecordBatch> {
        if self.count == 0 {
            return None;
        }
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.segments.finish()),
            Arc::new(self.positions.finish()),
            Arc::new(self.reasons.finish()),
            Arc::new(self.fields.finish()),
            Arc::new(self.record_bytes.finish()),
            Arc::new(self.kept_bytes.finish()),
            Arc::new(self.sealed.finish()),
        ];
        // The columns follow quarantine_schema() one for one.
        RecordBatch::try_new(quarantine_schema(), columns).ok()
    }
}

/// Names the key of one UTC day (`YYYY-MM-DD`) of quarantine. Its epoch is the
/// day number + 1, so every expired day key goes with one epoch purge.
pub fn day_key(date: &str) -> Entity<'_> {
    let epoch = parse_day(date).map_or(0, |day| u32::try_from(day + 1).unwrap_or(0));
    Entity {
        scope: Scope::Quarantine,
        id: date,
        epoch,
        owner: None,
    }
}

/// Deletes quarantine partitions older than `retention_days` before `today`
/// (a UTC day) and destroys their day keys; returns how many partitions went.
pub fn purge_quarantine(
    layout: &crate::DataLayout,
    store: &dyn KeyStore,
    today: i32,
    retention_days: u32,
) -> anyhow::Result<u64> {
    let purged = purge_expired(&layout.quarantine(), today, retention_days)?;
    let oldest_kept = today - i32::try_from(retention_days).unwrap_or(i32::MAX);
    // Day d has epoch d + 1: the keys of days before `oldest_kept` have epochs up to `oldest_kept`.
    let before_epoch = u32::try_from(oldest_kept + 1).unwrap_or(0);
    store.erase_epochs_before(Scope::Quarantine, before_epoch)?;
    Ok(purged)
}

/// Returns the UTC day of the quarantine partition holding `stem`'s file, if any: a
/// segment processed again keeps the day it was first quarantined on.
pub fn find_segment_day(root: &Path, stem: &str) -> Option<i32> {
    let file_name = format!("part-{stem}.parquet");
    fs::read_dir(root).ok()?.find_map(|entry| {
        let path = entry.ok()?.path();
        let day = path
            .file_name()?
            .to_str()?
            .strip_prefix("date=")
            .and_then(parse_day)?;
        path.join(&file_name).exists().then_some(day)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_segment_keeps_the_day_it_was_first_quarantined_on() {
        let dir = tempfile::tempdir().expect("tempdir");
        let partition = dir.path().join("date=2026-10-17");
        fs::create_dir_all(&partition).expect("mkdir");
        fs::write(partition.join("part-abc-000000000001.parquet"), b"x").expect("write");
        assert_eq!(
            find_segment_day(dir.path(), "abc-000000000001"),
            parse_day("2026-10-17")
        );
        assert_eq!(find_segment_day(dir.path(), "abc-000000000002"), None);
        assert_eq!(find_segment_day(&dir.path().join("missing"), "abc"), None);
    }

    #[test]
    fn expired_day_keys_are_destroyed_and_recent_ones_kept() {
        use delink_keystore::{EmbeddedKeyStore, KekSource};
        let dir = tempfile::tempdir().expect("tempdir");
        let layout = crate::DataLayout::new(dir.path());
        let kek = KekSource::Env(
            "1:000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f".to_owned(),
        );
        let store = EmbeddedKeyStore::open(&layout.keys(), &kek).expect("store");
        let dates = ["2026-10-01", "2026-10-17", "2026-11-20"];
        for date in dates {
            store.key_for(&day_key(date)).expect("key");
        }
        let today = crate::utc_day(1_795_178_712_345_000); // 2026-11-20
        purge_quarantine(&layout, &store, today, 35).expect("purge");
        let kept: Vec<bool> = dates
            .iter()
            .map(|date| {
                store
                    .existing_key(&day_key(date))
                    .expect("lookup")
                    .is_some()
            })
            .collect();
        assert_eq!(kept, [false, true, true]);
    }
}
