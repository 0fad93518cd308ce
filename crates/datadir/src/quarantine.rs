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

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::builder::{BinaryBuilder, StringBuilder, UInt64Builder};
use arrow_array::cast::AsArray;
use arrow_array::types::UInt64Type;
use arrow_array::{ArrayRef, BinaryArray, RecordBatch, StringArray, UInt64Array};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use delink_keystore::{Entity, EntityKey, KeyStore, Result, open_sealed, seal};
use delink_model::Scope;
use delink_model::{RawRecord, Rejection};

use crate::{OutputStore, date_partition, parse_day, purge_expired};

/// Key prefix of the quarantine in the output store.
pub const QUARANTINE: &str = "quarantine";

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
    outputs: &OutputStore,
    store: &dyn KeyStore,
    today: i32,
    retention_days: u32,
) -> anyhow::Result<u64> {
    let purged = purge_expired(outputs, QUARANTINE, today, retention_days)?;
    let oldest_kept = today - i32::try_from(retention_days).unwrap_or(i32::MAX);
    // Day d has epoch d + 1: the keys of days before `oldest_kept` have epochs up to `oldest_kept`.
    let before_epoch = u32::try_from(oldest_kept + 1).unwrap_or(0);
    store.erase_epochs_before(Scope::Quarantine, before_epoch)?;
    Ok(purged)
}

/// The day of each quarantined segment's file: a segment processed again keeps
/// the day (and file) it was first quarantined on.
pub struct QuarantineDays {
    outputs: OutputStore,
    known: HashMap<String, i32>,
}

impl QuarantineDays {
    /// Reads the days of every quarantine file published so far (one listing).
    pub fn load(outputs: &OutputStore) -> anyhow::Result<Self> {
        let mut known = HashMap::new();
        for object in outputs.list(QUARANTINE)? {
            let mut parts = object.key.rsplit('/');
            let stem = parts
                .next()
                .and_then(|name| name.strip_prefix("part-")?.strip_suffix(".parquet"));
            let day = parts
                .next()
                .and_then(|partition| parse_day(partition.strip_prefix("date=")?));
            if let (Some(stem), Some(day)) = (stem, day) {
                known.insert(stem.to_owned(), day);
            }
        }
        Ok(QuarantineDays {
            outputs: outputs.clone(),
            known,
        })
    }

    /// Returns the day of `stem`'s quarantine file, if any: one known at load, or one
    /// another worker published since, on `today` or the day before.
    pub fn day_of(&self, stem: &str, today: i32) -> anyhow::Result<Option<i32>> {
        if let Some(day) = self.known.get(stem) {
            return Ok(Some(*day));
        }
        for day in [today, today - 1] {
            let key = format!("{QUARANTINE}/{}/part-{stem}.parquet", date_partition(day));
            if self.outputs.exists(&key)? {
                return Ok(Some(day));
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_segment_keeps_the_day_it_was_first_quarantined_on() {
        let dir = tempfile::tempdir().expect("tempdir");
        let outputs = OutputStore::local(dir.path()).expect("outputs");
        let empty = QuarantineDays::load(&outputs).expect("load");
        assert_eq!(empty.day_of("abc", 20_000).expect("day"), None);
        let partition = dir.path().join("quarantine/date=2026-10-17");
        std::fs::create_dir_all(&partition).expect("mkdir");
        std::fs::write(partition.join("part-abc-000000000001.parquet"), b"x").expect("write");
        let days = QuarantineDays::load(&outputs).expect("load");
        let today = parse_day("2026-11-20").expect("day");
        assert_eq!(
            days.day_of("abc-000000000001", today).expect("day"),
            parse_day("2026-10-17")
        );
        assert_eq!(days.day_of("abc-000000000002", today).expect("day"), None);
        // Published by another worker after the load, today.
        let recent = dir.path().join("quarantine/date=2026-11-20");
        std::fs::create_dir_all(&recent).expect("mkdir");
        std::fs::write(recent.join("part-abc-000000000002.parquet"), b"x").expect("write");
        assert_eq!(
            days.day_of("abc-000000000002", today).expect("day"),
            Some(today)
        );
    }

    #[test]
    fn expired_day_keys_are_destroyed_and_recent_ones_kept() {
        use delink_keystore::{EmbeddedKeyStore, KekSource};
        let dir = tempfile::tempdir().expect("tempdir");
        let layout = crate::DataLayout::new(dir.path());
        let outputs = OutputStore::local(dir.path()).expect("outputs");
        let kek = KekSource::Env(
            "1:000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f".to_owned(),
        );
        let store = EmbeddedKeyStore::open(&layout.keys(), &kek).expect("store");
        let dates = ["2026-10-01", "2026-10-17", "2026-11-20"];
        for date in dates {
            store.key_for(&day_key(date)).expect("key");
        }
        let today = crate::utc_day(1_795_178_712_345_000); // 2026-11-20
        purge_quarantine(&outputs, &store, today, 35).expect("purge");
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
