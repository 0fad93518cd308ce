//! Removing an erased person's records from the quarantine.
//!
//! A quarantined record is raw input, so it can carry an erased person's
//! account id, tag, name or address in clear once opened. At erasure every
//! record that mentions one of the erased identifiers is removed: each
//! affected file is rewritten without those rows (staged, fsynced, renamed over
//! the original), or deleted when none is left.

use anyhow::{Context, Result};
use arrow_array::{BooleanArray, RecordBatch};
use arrow_select::filter::filter_record_batch;
use delink_keystore::KeyStore;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

use super::inspect::quarantine_files;
use crate::{OutputStore, QuarantineColumns, open_quarantined, read_parquet, write_parquet};

/// Shortest identifier also matched with separators (spaces, `:`, `-`) ignored.
const MIN_COMPACT_MATCH: usize = 8;

/// Removes every quarantined record that mentions any of `identifiers` (matched
/// case-insensitively, and without separators for long ones); returns how many went.
/// Records whose day key is gone can no longer be read by anyone and are left.
pub fn remove_quarantined_mentions(
    outputs: &OutputStore,
    store: &dyn KeyStore,
    identifiers: &[String],
) -> Result<u64> {
    let needles = Needles::new(identifiers);
    if needles.is_empty() {
        return Ok(0);
    }
    let mut removed = 0;
    for (date, key) in quarantine_files(outputs, None)? {
        let batches = read_parquet(outputs, &key)?.batches;
        let mut kept_batches = Vec::with_capacity(batches.len());
        let mut removed_here = 0;
        for batch in &batches {
            let keep = rows_to_keep(batch, store, &date, &needles)
                .with_context(|| format!("in {}", outputs.describe(&key)))?;
            removed_here += keep.false_count() as u64;
            kept_batches.push(filter_record_batch(batch, &keep)?);
        }
        if removed_here > 0 {
            replace_file(outputs, &key, &kept_batches)?;
            removed += removed_here;
        }
    }
    Ok(removed)
}

/// The identifiers to look for, lowercased, with and without separators.
struct Needles {
    plain: Vec<Vec<u8>>,
    compact: Vec<Vec<u8>>,
}

impl Needles {
    fn new(identifiers: &[String]) -> Self {
        let plain: Vec<Vec<u8>> = identifiers
            .iter()
            .map(|id| id.to_lowercase().into_bytes())
            .filter(|id| !id.is_empty())
            .collect();
        let compact = plain
            .iter()
            .map(|id| compact(id))
            .filter(|id| id.len() >= MIN_COMPACT_MATCH)
            .collect();
        Needles { plain, compact }
    }

    fn is_empty(&self) -> bool {
        self.plain.is_empty()
    }

    fn found_in(&self, record: &[u8]) -> bool {
        let lower = record.to_ascii_lowercase();
        if self.plain.iter().any(|needle| contains(&lower, needle)) {
            return true;
        }
        let squeezed = compact(&lower);
        self.compact
            .iter()
            .any(|needle| contains(&squeezed, needle))
    }
}

fn compact(bytes: &[u8]) -> Vec<u8> {
    bytes
        .iter()
        .copied()
        .filter(|byte| !byte.is_ascii_whitespace() && !b":-".contains(byte))
        .collect()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

/// Marks the rows to keep: those that do not mention an identifier (or cannot be read).
fn rows_to_keep(
    batch: &RecordBatch,
    store: &dyn KeyStore,
    date: &str,
    needles: &Needles,
) -> Result<BooleanArray> {
    let columns = QuarantineColumns::of(batch)?;
    let (segments, positions, sealed) = (columns.segments, columns.positions, columns.sealed);
    let mut keep = Vec::with_capacity(batch.num_rows());
    for row in 0..batch.num_rows() {
        let opened = open_quarantined(
            store,
            date,
            segments.value(row),
            positions.value(row),
            sealed.value(row),
        )?;
        keep.push(!opened.is_some_and(|bytes| needles.found_in(&bytes)));
    }
    Ok(BooleanArray::from(keep))
}

/// Writes `batches` over `key` atomically, or deletes it when they hold no row.
fn replace_file(outputs: &OutputStore, key: &str, batches: &[RecordBatch]) -> Result<()> {
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    match batches.first() {
        Some(first) if rows > 0 => {
            let properties = WriterProperties::builder()
                .set_compression(Compression::ZSTD(ZstdLevel::try_new(1)?))
                .build();
            write_parquet(outputs, key, &first.schema(), batches, properties, true)
        }
        _ => outputs.delete(key),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_found_whatever_their_case_and_long_ones_whatever_their_separators() {
        let needles = Needles::new(&["acct-7f3a".to_owned(), "04a7ee8f2865cf".to_owned()]);
        assert!(needles.found_in(br#"{"user":{"account_id":"ACCT-7F3A""#));
        assert!(needles.found_in(b"rfid 04:A7:EE:8F:28:65:CF, truncated"));
        assert!(needles.found_in(b"04 a7 ee 8f 28 65 cf"));
        assert!(!needles.found_in(br#"{"user":{"account_id":"acct-7f3b"}}"#));
        // Short identifiers are matched as written only, so as not to match noise.
        let short = Needles::new(&["ab-12".to_owned()]);
        assert!(!short.found_in(b"ab12"));
        assert!(Needles::new(&[String::new()]).is_empty());
    }
}
